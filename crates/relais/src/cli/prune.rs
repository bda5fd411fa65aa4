//! `relais prune [--dry-run]`: retention on demand, with what goes (or would go) per class.
//!
//! Counts, sizes and dates only: never a subject, an address or a patient.

use super::ConfigArg;
use clap::Args;
use relais_engine::config::JournalKind;
use relais_store::{ClassReport, Journal, PruneReport, SqliteJournal, Timestamp};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(super) struct PruneArgs {
    /// Say what would go, change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    config: ConfigArg,
}

/// Who prunes, for the audit record.
fn actor() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.is_empty() && user.len() < 256 => format!("cli:{user}"),
        _ => "cli".into(),
    }
}

fn day(t: Timestamp) -> String {
    t.to_string()[..10].to_string()
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} bytes"),
    }
}

fn span(c: &ClassReport) -> String {
    match (c.oldest, c.newest) {
        (Some(a), Some(b)) => format!("; received {} to {}", day(a), day(b)),
        _ => String::new(),
    }
}

/// The report as printed, one line per class.
fn lines(r: &PruneReport, key_of: impl Fn(&str) -> &'static str) -> Vec<String> {
    let mut out = Vec::new();
    let class = |name: &str, c: &ClassReport, what: String| match c.horizon {
        None => format!("{name}: kept for ever ({} not set)", key_of(name)),
        Some(h) => format!("{name} (finished before {}): {what}{}", day(h), span(c)),
    };
    let e = &r.events;
    out.push(class(
        "messages with their events",
        e,
        format!(
            "{} messages, {} events, {} documents, {} deliveries, {} reviews, {} of raw mail",
            e.messages,
            e.events,
            e.documents,
            e.deliveries,
            e.reviews,
            size(e.bytes)
        ),
    ));
    let d = &r.documents;
    out.push(class(
        "documents",
        d,
        format!(
            "{} documents of {} messages, {} delivery payloads, {}",
            d.documents,
            d.messages,
            d.deliveries,
            size(d.bytes)
        ),
    ));
    let m = &r.raw_mails;
    out.push(class(
        "raw mails",
        m,
        format!("{} raw mails, {}", m.messages, size(m.bytes)),
    ));
    out.push(format!(
        "blob files: {} ({}), of which {} orphans left by an interrupted run",
        r.blobs.files,
        size(r.blobs.bytes),
        r.blobs.orphans
    ));
    out
}

pub(super) async fn run(args: PruneArgs) -> Result<ExitCode, String> {
    let config = super::outbound::config_of(&args.config)?;
    if config.journal.kind == JournalKind::Postgres {
        return Err(
            "relais prune works on the SQLite journal only for now ([journal] kind = \"postgres\")"
                .into(),
        );
    }
    let retention = &config.retention;
    if !retention.is_enabled() {
        println!(
            "relais prune: the configuration has no [retention] period (raw_mail_days, documents_days, events_days): everything is kept, nothing to do"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let journal = SqliteJournal::open(config.data_dir.join("journal"))
        .await
        .map_err(|e| e.to_string())?;
    let policy = retention.policy(&actor());
    let report = journal
        .prune(&policy, args.dry_run, retention.chunk_rows())
        .await
        .map_err(|e| format!("{} ({})", e, e.code()))?;
    if args.dry_run {
        println!("relais prune --dry-run: what would go (nothing was changed)");
    } else {
        println!(
            "relais prune: what went (audit record: prune run {}, {} transactions, as {})",
            report.run.unwrap_or_default(),
            report.chunks,
            policy.actor
        );
    }
    let key_of = |name: &str| match name {
        "documents" => "documents_days",
        "raw mails" => "raw_mail_days",
        _ => "events_days",
    };
    for line in lines(&report, key_of) {
        println!("  {line}");
    }
    journal.close().await;
    Ok(ExitCode::SUCCESS)
}
