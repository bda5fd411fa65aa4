//! `relais outbound list | show ID | resolve ID`: the letters sent to MSSanté and their life.
//!
//! Reads the journal directly (no validation set-up, no server): a quick look while the daemon
//! runs. Recipient addresses at `patient.mssante.fr` hold the patient's INS and are shown
//! without their local part.

use super::{ConfigArg, EXIT_INVALID, EXIT_VALID};
use clap::Subcommand;
use relais_engine::config::Config;
use relais_store::{
    Actor, HeldDecision, LetterFilter, LetterId, LetterState, Moved, Outbox, SqliteJournal,
};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(super) enum OutboundCommand {
    /// Letters, newest first: state, document type, recipients' delivery status, last error.
    List {
        /// Only this state (queued, claimed, in_flight, sent, failed, held_for_review).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// One letter: its mail, each recipient's status with the remote reason, its audit trail.
    Show {
        id: i64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Decide on a letter held for review (its send was interrupted: the recipient may or may
    /// not have it).
    Resolve {
        id: i64,
        /// Send it again (same Message-ID: a receiver that has it sees a duplicate).
        #[arg(long, conflicts_with_all = ["sent", "fail"])]
        requeue: bool,
        /// It did go out: record it as sent.
        #[arg(long, conflicts_with = "fail")]
        sent: bool,
        /// Give up, with a note (no patient data).
        #[arg(long, value_name = "NOTE")]
        fail: Option<String>,
        /// Who decides (recorded in the audit trail).
        #[arg(long, env = "USER", default_value = "operator")]
        user: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// The configuration named, or the defaults (data in `./relais-data`).
pub(super) fn config_of(arg: &ConfigArg) -> Result<Config, String> {
    match &arg.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Config::parse("", "defaults").map_err(|e| e.to_string()),
    }
}

async fn journal(arg: &ConfigArg) -> Result<SqliteJournal, String> {
    let config = config_of(arg)?;
    SqliteJournal::open(config.data_dir.join("journal"))
        .await
        .map_err(|e| e.to_string())
}

/// An address as the CLI shows it: a patient address without its local part (the INS).
fn shown(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((_, domain)) if domain.eq_ignore_ascii_case("patient.mssante.fr") => {
            format!("<patient>@{domain}")
        }
        _ => address.to_string(),
    }
}

pub(super) async fn run(cmd: OutboundCommand) -> Result<ExitCode, String> {
    match cmd {
        OutboundCommand::List {
            state,
            limit,
            config,
        } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => {
                    Some(LetterState::parse(s).ok_or_else(|| format!("unknown state {s:?}"))?)
                }
            };
            let j = journal(&config).await?;
            let list = j
                .list_letters(&LetterFilter {
                    state,
                    limit,
                    ..LetterFilter::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            if list.is_empty() {
                println!("no letter");
            }
            for l in list {
                let recipients = j.letter_recipients(l.id).await.map_err(|e| e.to_string())?;
                let statuses: Vec<&str> = recipients.iter().map(|r| r.status.as_str()).collect();
                println!(
                    "letter {:>6}  {:<15} {:<8} {:<24} recipients: {:<20} {}",
                    l.id.0,
                    l.state.as_str(),
                    l.document_type.as_deref().unwrap_or("-"),
                    l.created_at.to_string(),
                    statuses.join(","),
                    l.last_error.map(|e| e.code).unwrap_or_default()
                );
            }
            Ok(ExitCode::from(EXIT_VALID))
        }
        OutboundCommand::Show { id, config } => {
            let j = journal(&config).await?;
            let Some(l) = j
                .get_letter(LetterId(id))
                .await
                .map_err(|e| e.to_string())?
            else {
                eprintln!("relais outbound show: no letter {id}");
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            println!("letter {}: {}", l.id, l.state);
            println!("  source:      {} {}", l.source.kind.as_str(), l.source.key);
            println!(
                "  document:    {} (CDA level {}) {}",
                l.document_type.as_deref().unwrap_or("-"),
                l.cda_level
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                l.cda_id.as_deref().unwrap_or("-")
            );
            println!(
                "  mail:        Message-ID <{}>, {} bytes, from {}, DSN envelope id {}",
                l.message_id.as_deref().unwrap_or("-"),
                l.mail_size.unwrap_or(0),
                l.envelope_from.as_deref().unwrap_or("-"),
                l.envelope_id.as_deref().unwrap_or("-")
            );
            println!(
                "  attempts:    {}{}",
                l.attempts,
                match l.sent_at {
                    Some(t) => format!(", sent {t}"),
                    None => String::new(),
                }
            );
            if let Some(reply) = &l.smtp_reply {
                println!("  server:      {reply}");
            }
            if let Some(e) = &l.last_error {
                println!("  last error:  {}: {}", e.code, e.text);
            }
            println!("recipients:");
            for r in j.letter_recipients(l.id).await.map_err(|e| e.to_string())? {
                println!(
                    "  {}. {:<40} {:<10} {:<9} {} {}",
                    r.position + 1,
                    r.address
                        .as_deref()
                        .map(shown)
                        .unwrap_or_else(|| "-".into()),
                    r.resolved_by.as_str(),
                    r.status.as_str(),
                    r.remote_status.as_deref().unwrap_or(""),
                    r.reason.as_deref().unwrap_or("")
                );
            }
            println!("events:");
            for e in j.letter_events(l.id).await.map_err(|e| e.to_string())? {
                let actor = match &e.actor {
                    Actor::System => "relais".to_string(),
                    Actor::User(u) => u.clone(),
                };
                println!(
                    "  {} {:<16} {:>15} -> {:<15} by {:<10} {}",
                    e.at,
                    e.kind,
                    e.state_before.map(|s| s.as_str()).unwrap_or("-"),
                    e.state_after.map(|s| s.as_str()).unwrap_or("-"),
                    actor,
                    e.detail
                );
            }
            Ok(ExitCode::from(EXIT_VALID))
        }
        OutboundCommand::Resolve {
            id,
            requeue,
            sent,
            fail,
            user,
            config,
        } => {
            let decision = match (requeue, sent, fail) {
                (true, false, None) => HeldDecision::Requeue,
                (false, true, None) => HeldDecision::MarkSent,
                (false, false, Some(note)) => HeldDecision::Fail { note },
                _ => {
                    return Err(
                        "relais outbound resolve: give one of --requeue, --sent, --fail NOTE"
                            .into(),
                    );
                }
            };
            let j = journal(&config).await?;
            match j
                .resolve_held(LetterId(id), &decision, &user)
                .await
                .map_err(|e| e.to_string())?
            {
                Moved::Done => {
                    println!("letter {id}: {decision:?} recorded by {user}");
                    Ok(ExitCode::from(EXIT_VALID))
                }
                Moved::Stale { actual } => {
                    eprintln!(
                        "relais outbound resolve: letter {id} is {actual}, not held for review: nothing changed"
                    );
                    Ok(ExitCode::from(EXIT_INVALID))
                }
            }
        }
    }
}
