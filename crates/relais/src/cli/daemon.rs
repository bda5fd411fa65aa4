//! The subcommands that use the engine and the journal (async).

use super::{
    Command, ConfigArg, EXIT_INVALID, EXIT_USAGE, EXIT_VALID, MessagesCommand, ReviewCommand,
    RunArgs,
};
use relais_engine::Engine;
use relais_engine::config::Config;
use relais_store::{MessageFilter, MessageId, MessageState, ReviewFilter, ReviewId};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub(super) async fn dispatch(command: Command) -> ExitCode {
    let result = match command {
        Command::Run(args) => run(args).await,
        Command::Review(cmd) => review(cmd).await,
        Command::Messages(cmd) => messages(cmd).await,
        Command::Patients(cmd) => patients(cmd).await,
        Command::Outbound(cmd) => super::outbound::run(cmd).await,
        Command::Annuaire(cmd) => super::annuaire::run(cmd).await,
        Command::Prune(args) => super::prune::run(args).await,
        Command::TestConnection { source, config } => test_connection(source, config).await,
        Command::Check(_) | Command::Config(_) | Command::Users(_) => {
            unreachable!("handled synchronously")
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("relais: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The configuration named, or the embedded default (bundled samples) when none is.
fn load_config(arg: &ConfigArg) -> Result<Config, String> {
    match &arg.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => {
            let samples = Path::new("samples/mail");
            if !samples.is_dir() {
                return Err(
                    "no configuration given (--config FILE or RELAIS_CONFIG) and no samples/mail here for the embedded default; \
                     see config/relais.example.toml"
                        .into(),
                );
            }
            Ok(Config::embedded_default(samples))
        }
    }
}

async fn open(arg: &ConfigArg) -> Result<Engine, String> {
    let config = load_config(arg)?;
    Engine::open(config).await.map_err(|e| e.to_string())
}

async fn run(args: RunArgs) -> Result<ExitCode, String> {
    let engine = open(&args.config).await?;
    if args.once {
        let s = engine.run_once().await.map_err(|e| e.to_string())?;
        println!(
            "relais run --once: {} new mail(s) journaled ({} already known); {} processed: {} filed, {} rejected (quarantined), {} awaiting review; {} deliveries, {} to retry; {} answer(s) to senders",
            s.journaled,
            s.duplicates,
            s.processed,
            s.filed,
            s.rejected,
            s.awaiting_review,
            s.deliveries,
            s.retries,
            s.answered
        );
        for sink in &engine.config().sinks {
            match sink {
                relais_engine::config::Sink::Folder { name, path } => {
                    println!("  sink {name}: folder {}", path.display())
                }
                relais_engine::config::Sink::Mllp { name, address, .. } => {
                    println!("  sink {name}: HL7 MLLP to {address}")
                }
                relais_engine::config::Sink::Fhir { name, base_url, .. } => {
                    println!("  sink {name}: FHIR R4 at {base_url}")
                }
            }
        }
        println!(
            "  journal: {}",
            engine.config().data_dir.join("journal").display()
        );
        println!("  see `relais messages list`, `relais review list`");
        return Ok(ExitCode::from(EXIT_VALID));
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = engine
        .start_adt(rx.clone())
        .await
        .map_err(|e| e.to_string())?
    {
        println!("ADT listener on {addr}");
    }
    let engine = std::sync::Arc::new(engine);
    let console = match engine.config().console.clone() {
        Some(section) => {
            relais_console::metrics::install()?;
            let cfg =
                relais_console::ConsoleConfig::from_toml(section).map_err(|e| e.to_string())?;
            let running = relais_console::serve(engine.clone(), cfg, rx.clone())
                .await
                .map_err(|e| e.to_string())?;
            println!("console on {} (metrics at /metrics)", running.url());
            Some(running)
        }
        None => None,
    };
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    tracing::info!("relais daemon started");
    engine
        .run(Duration::from_secs(args.interval.max(1)), rx)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(console) = console {
        console.stopped().await;
    }
    Ok(ExitCode::from(EXIT_VALID))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn review(cmd: ReviewCommand) -> Result<ExitCode, String> {
    match cmd {
        ReviewCommand::List(config) => {
            let engine = open(&config).await?;
            let reviews = engine
                .journal()
                .list_reviews(&ReviewFilter::default())
                .await
                .map_err(|e| e.to_string())?;
            if reviews.is_empty() {
                println!("no open review");
            }
            for r in reviews {
                println!(
                    "review {:>5}  message {:>6}  document {:>6}  {:<10} {}",
                    r.id.0,
                    r.message_id.0,
                    r.document_id
                        .map(|d| d.0.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.reason_code,
                    r.reason_text
                );
            }
            Ok(ExitCode::from(EXIT_VALID))
        }
        ReviewCommand::Show { id, config } => {
            let engine = open(&config).await?;
            let Some(r) = engine
                .journal()
                .get_review(ReviewId(id))
                .await
                .map_err(|e| e.to_string())?
            else {
                eprintln!("relais review show: no review {id}");
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            println!(
                "review {}: {:?}, code {}: {}\nmessage {}, document {}",
                r.id.0,
                r.status,
                r.reason_code,
                r.reason_text,
                r.message_id.0,
                r.document_id
                    .map(|d| d.0.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            print_events(&engine, r.message_id).await?;
            Ok(ExitCode::from(EXIT_VALID))
        }
        ReviewCommand::File {
            id,
            patient,
            user,
            config,
        } => {
            let engine = open(&config).await?;
            engine
                .file_reviewed(ReviewId(id), &patient, &user)
                .await
                .map_err(|e| e.to_string())?;
            let mut summary = relais_engine::RunSummary::default();
            engine
                .drain_sinks(&mut summary)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "review {id} filed to the patient: {} delivery(ies) done",
                summary.deliveries
            );
            Ok(ExitCode::from(EXIT_VALID))
        }
        ReviewCommand::Reject {
            id,
            note,
            user,
            config,
        } => {
            let engine = open(&config).await?;
            engine
                .reject_reviewed(ReviewId(id), &note, &user)
                .await
                .map_err(|e| e.to_string())?;
            println!("review {id} rejected");
            Ok(ExitCode::from(EXIT_VALID))
        }
    }
}

async fn print_events(engine: &Engine, id: MessageId) -> Result<(), String> {
    for e in engine
        .journal()
        .message_events(id)
        .await
        .map_err(|e| e.to_string())?
    {
        let actor = match &e.actor {
            relais_store::Actor::System => "relais".to_string(),
            relais_store::Actor::User(u) => u.clone(),
        };
        let error = e
            .detail
            .get("error")
            .map(|v| v.to_string())
            .unwrap_or_default();
        println!(
            "  {} {:<20} {:>16} -> {:<16} by {:<10} {}",
            e.at.as_millis(),
            e.kind,
            e.state_before.map(|s| s.as_str()).unwrap_or("-"),
            e.state_after.map(|s| s.as_str()).unwrap_or("-"),
            actor,
            error
        );
    }
    Ok(())
}

async fn messages(cmd: MessagesCommand) -> Result<ExitCode, String> {
    match cmd {
        MessagesCommand::List {
            state,
            limit,
            config,
        } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => {
                    Some(MessageState::parse(s).ok_or_else(|| format!("unknown state {s:?}"))?)
                }
            };
            let engine = open(&config).await?;
            let list = engine
                .journal()
                .list_messages(&MessageFilter {
                    state,
                    limit,
                    ..MessageFilter::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            for m in list {
                println!(
                    "message {:>6}  {:<16} {:<8} {:>9} bytes  {}",
                    m.id.0,
                    m.state.as_str(),
                    m.source.kind(),
                    m.size,
                    m.last_error.map(|e| e.code).unwrap_or_default()
                );
            }
            Ok(ExitCode::from(EXIT_VALID))
        }
        MessagesCommand::Show { id, config } => {
            let engine = open(&config).await?;
            let Some(m) = engine
                .journal()
                .get_message(MessageId(id))
                .await
                .map_err(|e| e.to_string())?
            else {
                eprintln!("relais messages show: no message {id}");
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            println!(
                "message {}: {} ({} bytes, sha256 {}), Message-ID {}",
                m.id.0,
                m.state.as_str(),
                m.size,
                m.sha256,
                m.message_id.as_deref().unwrap_or("-")
            );
            if let Some(e) = &m.last_error {
                println!("last error {}: {}", e.code, e.text);
            }
            print_events(&engine, m.id).await?;
            Ok(ExitCode::from(EXIT_VALID))
        }
    }
}

async fn patients(cmd: super::PatientsCommand) -> Result<ExitCode, String> {
    match cmd {
        super::PatientsCommand::Import { file, config } => {
            let reader = std::fs::File::open(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let updates = relais_dpi::parse_patients_csv(reader)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let engine = open(&config).await?;
            let mut stats = relais_engine::patients::PatientStats::default();
            for u in &updates {
                relais_engine::patients::apply(engine.journal().as_ref(), u, &mut stats)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            println!(
                "{}: {} patient(s) imported, {} merge(s), {} line(s) without IPP skipped",
                file.display(),
                stats.upserted,
                stats.merged,
                stats.skipped
            );
            Ok(ExitCode::from(EXIT_VALID))
        }
    }
}

async fn test_connection(only: Option<String>, arg: ConfigArg) -> Result<ExitCode, String> {
    let config = load_config(&arg)?;
    let sources: Vec<_> = config
        .sources
        .iter()
        .filter(|s| matches!(s, relais_engine::config::Source::Imap { .. }))
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name()))
        .collect();
    if sources.is_empty() {
        return Err(match only {
            Some(n) => format!("no IMAP source named {n:?} in the configuration"),
            None => "the configuration has no IMAP source".into(),
        });
    }
    let mut all_ok = true;
    for source in sources {
        println!("source {}:", source.name());
        let cfg = relais_engine::sources::imap::imap_config(source, &config.limits)?;
        let report = relais_imap::test_connection(&cfg).await;
        println!("{report}");
        all_ok &= report.is_ok();
    }
    Ok(ExitCode::from(if all_ok {
        EXIT_VALID
    } else {
        EXIT_INVALID
    }))
}
