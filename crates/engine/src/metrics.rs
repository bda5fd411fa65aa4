//! The engine's metrics, recorded through the `metrics` facade: whoever runs the engine
//! installs a recorder (the daemon installs the Prometheus one and serves `/metrics`); without
//! one, recording costs next to nothing.
//!
//! Labels are configuration names (source, sink) and fixed words (outcome, state), never
//! message or patient data, so their number stays bounded.

use std::time::Duration;

/// Mails journaled, by source. Counter.
pub const MAILS_JOURNALED: &str = "relais_mails_journaled_total";
/// Mails seen again and recognised as duplicates, by source. Counter.
pub const MAILS_DUPLICATE: &str = "relais_mails_duplicate_total";
/// Polls of a source that failed (connection, login, mailbox), by source. Counter.
pub const SOURCE_ERRORS: &str = "relais_source_errors_total";
/// Mails left on the server, in its quarantine folder, because they exceed `max_mail_bytes`.
/// Counter.
pub const MAILS_TOO_LARGE: &str = "relais_mails_too_large_total";
/// 1 when the last poll of a source succeeded, 0 when it failed. Gauge.
pub const SOURCE_UP: &str = "relais_source_up";
/// Messages processed, by source and outcome (filed, rejected, awaiting_review, matched).
/// Counter.
pub const MESSAGES_PROCESSED: &str = "relais_messages_processed_total";
/// Time to read and check one message (mail, XDM, CDA, schematron). Histogram, seconds.
pub const CHECK_SECONDS: &str = "relais_check_seconds";
/// Delivery attempts, by sink and outcome (delivered, rejected, retry). Counter.
pub const DELIVERIES: &str = "relais_deliveries_total";
/// Time of one delivery attempt, by sink. Histogram, seconds.
pub const DELIVERY_SECONDS: &str = "relais_delivery_seconds";
/// Deliveries waiting (pending or in flight), by sink. Gauge.
pub const QUEUE_DEPTH: &str = "relais_queue_depth";
/// Messages in the journal, by state. Gauge.
pub const MESSAGES_BY_STATE: &str = "relais_messages";
/// Answers to senders recorded, by outcome (sent, skipped, failed, retry). Counter.
pub const ANSWERS: &str = "relais_answers_total";
/// Alert conditions firing now (see `alerts`). Gauge.
pub const ALERTS_FIRING: &str = "relais_alerts_firing";
/// Alert and recovery notices, by channel (mail, webhook) and result (sent, failed). Counter.
pub const ALERTS_SENT: &str = "relais_alerts_sent_total";

// The functions below also keep the alerts' status (`alerts::status`) up to date: the alerts
// watch the same facts as the metrics, recorded at the same places.

pub(crate) fn journaled(source: &str, new: usize, duplicates: usize) {
    if new > 0 {
        crate::alerts::status().mail_received(source, crate::alerts::now_ms());
    }
    metrics::counter!(MAILS_JOURNALED, "source" => source.to_string()).increment(new as u64);
    metrics::counter!(MAILS_DUPLICATE, "source" => source.to_string()).increment(duplicates as u64);
}

pub(crate) fn too_large(count: usize) {
    metrics::counter!(MAILS_TOO_LARGE).increment(count as u64);
}

pub(crate) fn source_up(source: &str, up: bool) {
    crate::alerts::status().source_polled(source, up, crate::alerts::now_ms());
    metrics::gauge!(SOURCE_UP, "source" => source.to_string()).set(if up { 1.0 } else { 0.0 });
    if !up {
        metrics::counter!(SOURCE_ERRORS, "source" => source.to_string()).increment(1);
    }
}

pub(crate) fn processed(source: &str, outcome: &'static str) {
    crate::alerts::status().message_outcome(outcome == "rejected", crate::alerts::now_ms());
    metrics::counter!(MESSAGES_PROCESSED, "source" => source.to_string(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn checked(took: Duration) {
    metrics::histogram!(CHECK_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn delivery(sink: &str, outcome: &'static str, took: Duration) {
    crate::alerts::status().delivery_attempt(
        sink,
        outcome != "retry",
        outcome != "delivered",
        crate::alerts::now_ms(),
    );
    metrics::counter!(DELIVERIES, "sink" => sink.to_string(), "outcome" => outcome).increment(1);
    metrics::histogram!(DELIVERY_SECONDS, "sink" => sink.to_string()).record(took.as_secs_f64());
}

pub(crate) fn queue_depth(sink: &str, depth: u64) {
    metrics::gauge!(QUEUE_DEPTH, "sink" => sink.to_string()).set(depth as f64);
}

pub(crate) fn messages_by_state(state: &'static str, count: u64) {
    metrics::gauge!(MESSAGES_BY_STATE, "state" => state).set(count as f64);
}

pub(crate) fn answer(outcome: &'static str) {
    metrics::counter!(ANSWERS, "outcome" => outcome).increment(1);
}

pub(crate) fn alerts_firing(count: usize) {
    metrics::gauge!(ALERTS_FIRING).set(count as f64);
}

pub(crate) fn alert_sent(channel: &'static str, sent: bool) {
    metrics::counter!(ALERTS_SENT, "channel" => channel, "result" => if sent { "sent" } else { "failed" })
        .increment(1);
}
