//! Sending letters: claim, mark in flight, SMTP with a DSN request, record the verdict.
//!
//! The state written before the SMTP transaction is what makes a crash safe: a letter is
//! `in_flight` (committed) before the first byte goes to the server. After a crash, a letter
//! still `claimed` had nothing sent and goes back to the queue; a letter still `in_flight`
//! may or may not have reached the server, so it is **held for review** and a person decides
//! (`relais outbound resolve`). The same holds for an error whose moment says the server may
//! have the message (the connection lost after the message's last line was sent). Errors
//! before that point (server unreachable, 4xx, and problems of trust, certificate or login
//! that a person fixes once for all letters) give the letter back to the queue with a growing
//! delay; only the server's refusal of the letter itself (5xx to its sender, recipients or
//! content, a size it does not take) fails it.

use std::time::Duration;

use relais_smtp::{DsnNotify, DsnRequest, DsnReturn, SendOptions, SmtpError};
use relais_store::{
    ErrorInfo, LetterRecord, LetterState, Moved, RecipientStatus, SendResult, Timestamp,
};

use super::recipients::check_allowed;
use super::{Outbound, OutboundSummary};
use crate::EngineError;

/// How long a worker holds a letter before another may take it over (claimed), or before a
/// letter in flight is judged interrupted.
pub const LEASE: Duration = Duration::from_secs(300);

/// Stable codes of sending outcomes.
pub mod codes {
    /// The send was interrupted (process stopped, connection lost after the message was sent):
    /// the server may or may not have the mail.
    pub const OUTCOME_UNKNOWN: &str = "OUTBOUND-OUTCOME-UNKNOWN";
    /// The worker that claimed the letter stopped before sending.
    pub const WORKER_STOPPED: &str = "OUTBOUND-WORKER-STOPPED";
    /// No recipient left to send to.
    pub const NO_RECIPIENT: &str = "OUTBOUND-NO-RECIPIENT";
    /// No submission server configured.
    pub const NO_SMTP: &str = "OUTBOUND-NO-SMTP";
}

/// Whether an SMTP error leaves the outcome unknown: the message's last line may have reached
/// the server before the connection broke or timed out, so the server may have accepted it.
/// Every other error happened before the end of DATA (the server cannot have the message) or
/// is the server's own refusal of it.
pub fn outcome_unknown(e: &SmtpError) -> bool {
    const AFTER_DATA: [&str; 2] = ["sending the message", "end of DATA"];
    match e {
        SmtpError::Timeout { phase, .. } => AFTER_DATA.contains(phase),
        SmtpError::ConnectionLost { during, .. } => AFTER_DATA.contains(during),
        _ => false,
    }
}

/// Whether an SMTP error is the server's verdict on this letter (a refused sender, recipient
/// or message, a size the server does not take) rather than a problem of the connection or
/// of the configuration (trust, certificate, login), which a person fixes once for every
/// letter: those keep the letter queued.
pub fn refuses_the_letter(e: &SmtpError) -> bool {
    use relais_smtp::Stage;
    match e {
        SmtpError::Rejected { stage, reply, .. } => {
            !reply.is_transient()
                && matches!(
                    stage,
                    Stage::MailFrom | Stage::RcptTo | Stage::Data | Stage::DataEnd
                )
        }
        SmtpError::MessageTooLarge { .. }
        | SmtpError::Address { .. }
        | SmtpError::EightBitUnsupported => true,
        _ => false,
    }
}

fn err(code: &str, text: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        text: text.into(),
    }
}

/// Whether the worker named `owner` is gone for good (a process of this host that no longer
/// runs, see [`crate::worker_is_gone`]).
fn gone(owner: Option<&str>) -> bool {
    owner.is_some_and(crate::worker_is_gone)
}

impl Outbound {
    /// Letters a stopped worker left: claimed ones go back to the queue, in-flight ones are
    /// held for review. Letters of live workers are left alone until their lease runs out.
    pub(crate) async fn recover(&self, s: &mut OutboundSummary) -> Result<(), EngineError> {
        let now = Timestamp::now();
        for letter in self.outbox.unfinished_letters().await? {
            let expired = letter.lease_until.is_none_or(|t| t <= now);
            if !expired && !gone(letter.lease_owner.as_deref()) {
                continue;
            }
            match letter.state {
                LetterState::Claimed => {
                    let moved = self
                        .outbox
                        .retry_letter(
                            letter.id,
                            LetterState::Claimed,
                            now,
                            &err(
                                codes::WORKER_STOPPED,
                                "the worker that took the letter stopped before sending it; nothing was sent",
                            ),
                        )
                        .await?;
                    if moved.is_done() {
                        tracing::info!(letter = %letter.id, "claimed letter of a stopped worker put back in the queue");
                    }
                }
                LetterState::InFlight => {
                    let moved = self
                        .outbox
                        .hold_letter(
                            letter.id,
                            &err(
                                codes::OUTCOME_UNKNOWN,
                                "the sending was interrupted while the mail was being submitted: \
                                 the recipients may or may not have it, so it is not sent again \
                                 automatically; check with the recipient or the server's logs, then \
                                 `relais outbound resolve ID --requeue | --sent | --fail`",
                            ),
                        )
                        .await?;
                    if moved.is_done() {
                        s.held += 1;
                        tracing::warn!(letter = %letter.id, "letter interrupted in flight: held for review, not re-sent");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends every letter that is due, until none is left or the server asks to wait.
    pub(crate) async fn send_due(&self, s: &mut OutboundSummary) -> Result<(), EngineError> {
        self.recover(s).await?;
        loop {
            let Some(letter) = self.outbox.claim_letter(&self.worker, LEASE).await? else {
                return Ok(());
            };
            if !self.send_one(letter, s).await? {
                return Ok(());
            }
        }
    }

    /// Sends one claimed letter; returns false when the server should be left alone for now.
    async fn send_one(
        &self,
        letter: LetterRecord,
        s: &mut OutboundSummary,
    ) -> Result<bool, EngineError> {
        let id = letter.id;
        let fail = |e: ErrorInfo, from: LetterState| async move {
            let moved = self.outbox.letter_failed(id, from, &e).await?;
            tracing::warn!(letter = %id, code = %e.code, "letter failed");
            Ok::<Moved, EngineError>(moved)
        };
        let recipients = self.outbox.letter_recipients(id).await?;
        let to: Vec<String> = recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Pending)
            .filter_map(|r| r.address.clone())
            .collect();
        if to.is_empty() {
            let _ = fail(
                err(codes::NO_RECIPIENT, "no recipient left to send to"),
                LetterState::Claimed,
            )
            .await?;
            s.failed += 1;
            return Ok(true);
        }
        // The liste blanche may have changed since the intake: checked again before sending.
        if let Some(list) = &self.liste_blanche {
            for r in &recipients {
                if let Some(a) = &r.address
                    && let Err(e) = check_allowed(list, r.position as usize, a)
                {
                    let _ = fail(e, LetterState::Claimed).await?;
                    s.failed += 1;
                    return Ok(true);
                }
            }
        }
        let raw = self.outbox.read_letter_mail(id).await?;
        if raw.len() as u64 > self.config.max_mail_bytes {
            let _ = fail(
                err(
                    super::intake::codes::TOO_LARGE,
                    format!(
                        "the mail is {} bytes, more than the {} allowed ([outbound] max_mail_bytes); nothing was cut",
                        raw.len(),
                        self.config.max_mail_bytes
                    ),
                ),
                LetterState::Claimed,
            )
            .await?;
            s.failed += 1;
            return Ok(true);
        }
        let Some(smtp) = &self.smtp else {
            let moved = self
                .outbox
                .retry_letter(
                    id,
                    LetterState::Claimed,
                    Timestamp::now().plus(self.backoff(letter.attempts)),
                    &err(codes::NO_SMTP, "no [outbound.smtp] configured"),
                )
                .await?;
            let _ = moved;
            return Ok(false);
        };
        let from = letter.envelope_from.clone().unwrap_or_default();
        let dsn = DsnRequest {
            notify: vec![DsnNotify::Success, DsnNotify::Failure, DsnNotify::Delay],
            ret: Some(DsnReturn::Headers),
            envid: letter.envelope_id.clone(),
            orcpt: true,
        };
        if self.outbox.start_sending(id, &self.worker, LEASE).await? != Moved::Done {
            return Ok(true);
        }
        let options = SendOptions {
            dsn: Some(dsn),
            require_dsn: false,
        };
        match relais_smtp::send_with(smtp, &from, &to, &raw, &options).await {
            Ok(report) => {
                let result = SendResult {
                    accepted: report.accepted.clone(),
                    refused: report
                        .rejected
                        .iter()
                        .map(|r| (r.recipient.clone(), r.reply.to_string()))
                        .collect(),
                    reply: report.reply.to_string(),
                };
                let _ = self.outbox.letter_sent(id, &result).await?;
                s.sent += 1;
                tracing::info!(
                    letter = %id,
                    accepted = report.accepted.len(),
                    refused = report.rejected.len(),
                    dsn = report.dsn_requested,
                    "letter sent"
                );
                Ok(true)
            }
            Err(e) if outcome_unknown(&e) => {
                let _ = self
                    .outbox
                    .hold_letter(
                        id,
                        &err(
                            codes::OUTCOME_UNKNOWN,
                            format!(
                                "{e}; the server may have accepted the mail: it is not sent again \
                                 automatically (`relais outbound resolve`)"
                            ),
                        ),
                    )
                    .await?;
                s.held += 1;
                tracing::warn!(letter = %id, code = e.code(), "send interrupted after the message was sent: held for review");
                Ok(false)
            }
            Err(e) if e.is_transient() || !refuses_the_letter(&e) => {
                if !e.is_transient() {
                    tracing::error!(letter = %id, code = e.code(), error = %e, "the submission server cannot be used as configured: letters wait in the queue until this is fixed");
                }
                let wait = self.backoff(letter.attempts);
                let _ = self
                    .outbox
                    .retry_letter(
                        id,
                        LetterState::InFlight,
                        Timestamp::now().plus(wait),
                        &err(e.code(), e.to_string()),
                    )
                    .await?;
                s.retried += 1;
                tracing::warn!(letter = %id, code = e.code(), attempt = letter.attempts, retry_in_s = wait.as_secs(), "letter not sent now; tried again later");
                Ok(false)
            }
            Err(e) => {
                let _ = fail(err(e.code(), e.to_string()), LetterState::InFlight).await?;
                s.failed += 1;
                Ok(true)
            }
        }
    }

    /// The wait before the next attempt after `attempts` failed ones.
    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.config.retry_secs.max(1);
        let factor = 2u64.saturating_pow(attempts.saturating_sub(1).min(16));
        Duration::from_secs(
            base.saturating_mul(factor)
                .min(self.config.max_retry_secs.max(base)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_verdict_fails_a_letter() {
        let reply = |code| relais_smtp::Reply {
            code,
            enhanced: None,
            text: "x".into(),
        };
        assert!(refuses_the_letter(&SmtpError::Rejected {
            stage: relais_smtp::Stage::RcptTo,
            reply: reply(550),
            hint: "",
        }));
        assert!(!refuses_the_letter(&SmtpError::Rejected {
            stage: relais_smtp::Stage::RcptTo,
            reply: reply(450),
            hint: "",
        }));
        assert!(!refuses_the_letter(&SmtpError::StartTlsUnavailable));
        assert!(!refuses_the_letter(&SmtpError::Config {
            reason: "x".into()
        }));
    }

    #[test]
    fn only_errors_after_the_data_leave_the_outcome_unknown() {
        let lost = |during| SmtpError::ConnectionLost {
            during,
            reason: "reset".into(),
        };
        assert!(outcome_unknown(&lost("end of DATA")));
        assert!(!outcome_unknown(&lost("RCPT TO")));
        assert!(outcome_unknown(&SmtpError::Timeout {
            phase: "sending the message",
            after: Duration::from_secs(1)
        }));
        assert!(!outcome_unknown(&SmtpError::Connect {
            addr: "x".into(),
            reason: "refused".into()
        }));
    }
}
