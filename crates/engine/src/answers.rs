//! Answering senders: the ANS MDN, or an error report to the configured mailbox.
//!
//! The journal makes an answer *due* in the same transaction that gives a message its outcome
//! (filed, rejected, waiting for review), once per message. This module sends what is due:
//!
//! - the sender asked for an MDN (`Disposition-Notification-To`) and one may be sent
//!   automatically ([`relais_mssante::mdn_decision`]): the MDN, `processed` when filed,
//!   `processed/Error: <code>^<label>` otherwise;
//! - no MDN, integration failed, and `[answers] error_mailbox` is set: the guide's error report
//!   there;
//! - otherwise nothing, recorded as skipped with the reason.
//!
//! Error codes: the ANS codes 900–906 with their ANS labels (a patient match that failed, a DPI
//! that answered one of them); any other cause (a validation rule, a sink refusal) is told as
//! `906` (« Erreur 'Autre' ») with Relais' rule code, never with free text that could carry
//! patient data.
//!
//! Sending is at least once: a crash between the server's acceptance and the journal's record
//! sends the answer again on restart (an MDN the sender may see twice, never one lost).
//! Transient SMTP failures keep the answer due for the next cycle; permanent ones are recorded
//! as failed.

use relais_mssante::{MdnContext, MdnDecision, MdnOutcome};
use relais_store::{AnswerState, Event, MessageId, MessageRecord, MessageState, event_kinds};

use crate::{Engine, EngineError, RunSummary};

/// Answers looked up per round.
const ANSWER_BATCH: u32 = 100;

/// What became of one due answer.
enum Step {
    /// Recorded (sent, skipped or failed).
    Done,
    /// Still due: try again at the next cycle.
    Later,
}

/// The MDN outcome for a message's state and last error.
pub(crate) fn outcome_of(rec: &MessageRecord) -> MdnOutcome {
    if rec.state == MessageState::Filed {
        return MdnOutcome::Processed;
    }
    let code = rec
        .last_error
        .as_ref()
        .map(|e| e.code.as_str())
        .unwrap_or("906");
    MdnOutcome::ans_error(code).unwrap_or_else(|| MdnOutcome::Error {
        code: "906".into(),
        label: format!("Erreur 'Autre' : {code}"),
    })
}

impl Engine {
    /// Send every due answer (see the module documentation). Store errors stop the cycle;
    /// SMTP problems are recorded and never do.
    pub async fn answer_senders(&self, summary: &mut RunSummary) -> Result<(), EngineError> {
        let settings = &self.config.answers;
        loop {
            let due = self.journal.answers_due(ANSWER_BATCH).await?;
            if due.is_empty() {
                return Ok(());
            }
            if !settings.enabled {
                for id in due {
                    self.journal
                        .record_answer(
                            id,
                            AnswerState::Skipped,
                            Event::system(event_kinds::ANSWER_SKIPPED).with_detail(
                                serde_json::json!({ "reason": "answers are disabled in the configuration" }),
                            ),
                        )
                        .await?;
                }
                continue;
            }
            let Some(smtp) = &self.answer_smtp else {
                if !self
                    .answers_unconfigured_said
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        due = due.len(),
                        "answers to senders (MDN, error reports) are due but [answers.smtp] is not configured: they wait in the journal"
                    );
                }
                return Ok(());
            };
            let mut later = false;
            for id in due {
                match self.answer_one(id, smtp).await? {
                    Step::Done => summary.answered += 1,
                    Step::Later => later = true,
                }
            }
            if later {
                // The server is not taking answers now: the rest waits for the next cycle.
                return Ok(());
            }
        }
    }

    async fn record(
        &self,
        id: MessageId,
        state: AnswerState,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<Step, EngineError> {
        crate::metrics::answer(state.as_str());
        self.journal
            .record_answer(id, state, Event::system(kind).with_detail(detail))
            .await?;
        Ok(Step::Done)
    }

    async fn answer_one(
        &self,
        id: MessageId,
        smtp: &relais_smtp::SmtpConfig,
    ) -> Result<Step, EngineError> {
        let settings = &self.config.answers;
        let Some(rec) = self.journal.get_message(id).await? else {
            return Ok(Step::Later);
        };
        if !rec.state.is_outcome() {
            // Reprocessed by an operator since: answered once it has its new outcome.
            return Ok(Step::Later);
        }
        let raw = self.journal.read_raw(id).await?;
        let limits = self.config.limits.clone();
        let (raw, parsed) = tokio::task::spawn_blocking(move || {
            let parsed = relais_mssante::parse_mail(&raw, &limits);
            (raw, parsed)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mail = match parsed {
            Ok(m) => m,
            Err(e) => {
                return self
                    .record(
                        id,
                        AnswerState::Skipped,
                        event_kinds::ANSWER_SKIPPED,
                        serde_json::json!({ "reason": "the mail cannot be read, so it cannot be answered", "code": e.code().to_string() }),
                    )
                    .await;
            }
        };
        let from = self
            .config
            .sources
            .iter()
            .find(|s| s.name() == Self::source_name(&rec))
            .and_then(|s| s.address())
            .or(settings.from.as_deref());
        let Some(from) = from else {
            return self
                .record(
                    id,
                    AnswerState::Skipped,
                    event_kinds::ANSWER_SKIPPED,
                    serde_json::json!({ "reason": "no answering address: set `address` on the source or `from` in [answers]" }),
                )
                .await;
        };
        let ua = format!("Relais {}", env!("CARGO_PKG_VERSION"));
        let domain = relais_mssante::domain_of(from).unwrap_or("localhost");
        let mut ctx = MdnContext::new(from, ua.clone(), domain);
        ctx.nil = Some(settings.nil.clone().unwrap_or(ua));
        let outcome = outcome_of(&rec);
        let disposition = match &outcome {
            MdnOutcome::Processed => "processed".to_string(),
            MdnOutcome::Error { code, .. } => format!("error {code}"),
        };
        let decision = relais_mssante::mdn_decision(&raw, &mail);
        let built = match (&decision, &outcome, &settings.error_mailbox) {
            (MdnDecision::Send { .. }, _, _) => {
                relais_mssante::build_mdn(&raw, &mail, outcome.clone(), &ctx).map(|m| ("mdn", m))
            }
            (_, MdnOutcome::Error { code, label }, Some(mailbox)) => {
                relais_mssante::build_error_report(
                    &raw,
                    &mail,
                    code,
                    label,
                    mailbox,
                    settings.attach_original,
                    &ctx,
                )
                .map(|m| ("error_report", m))
            }
            (d, _, _) => {
                return self
                    .record(
                        id,
                        AnswerState::Skipped,
                        event_kinds::ANSWER_SKIPPED,
                        serde_json::json!({ "reason": d.reason(), "disposition": disposition }),
                    )
                    .await;
            }
        };
        let (kind, answer) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(message = %id, code = %e.code(), "answer cannot be built");
                return self
                    .record(
                        id,
                        AnswerState::Failed,
                        event_kinds::ANSWER_FAILED,
                        serde_json::json!({ "code": e.code().to_string(), "stage": "build" }),
                    )
                    .await;
            }
        };
        match relais_smtp::send(smtp, &answer.envelope_from, &answer.recipients, &answer.raw).await
        {
            Ok(report) => {
                tracing::info!(message = %id, kind, %disposition, "sender answered");
                self.record(
                    id,
                    AnswerState::Sent,
                    event_kinds::ANSWER_SENT,
                    serde_json::json!({
                        "kind": kind,
                        "disposition": disposition,
                        "answer_message_id": answer.message_id,
                        "refused_recipients": report.rejected.len(),
                    }),
                )
                .await
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(message = %id, code = e.code(), error = %e, "answer not sent now; tried again at the next cycle");
                self.journal
                    .record_event(
                        id,
                        Event::system(event_kinds::ANSWER_RETRY)
                            .with_detail(serde_json::json!({ "kind": kind, "code": e.code() })),
                    )
                    .await?;
                crate::metrics::answer("retry");
                Ok(Step::Later)
            }
            Err(e) => {
                tracing::error!(message = %id, code = e.code(), error = %e, "answer refused by the mail server");
                self.record(
                    id,
                    AnswerState::Failed,
                    event_kinds::ANSWER_FAILED,
                    serde_json::json!({ "kind": kind, "code": e.code(), "stage": "send" }),
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::outcome_of;
    use relais_mssante::MdnOutcome;
    use relais_store::{ErrorInfo, MessageId, MessageRecord, MessageState, SourceKey, Timestamp};

    fn rec(state: MessageState, code: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: MessageId(1),
            state,
            source: SourceKey::Folder { path: "x".into() },
            message_id: None,
            sha256: "0".repeat(64),
            size: 1,
            received_at: Timestamp(0),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            last_error: code.map(|c| ErrorInfo {
                code: c.into(),
                text: "free text that never reaches the sender".into(),
            }),
        }
    }

    #[test]
    fn outcomes_use_ans_codes_or_906_with_the_rule_code() {
        assert_eq!(
            outcome_of(&rec(MessageState::Filed, None)),
            MdnOutcome::Processed
        );
        assert_eq!(
            outcome_of(&rec(MessageState::AwaitingReview, Some("902"))),
            MdnOutcome::ans_error("902").unwrap()
        );
        assert_eq!(
            outcome_of(&rec(MessageState::Rejected, Some("XDM-HASH-MISMATCH"))),
            MdnOutcome::Error {
                code: "906".into(),
                label: "Erreur 'Autre' : XDM-HASH-MISMATCH".into()
            }
        );
        assert_eq!(
            outcome_of(&rec(MessageState::AwaitingReview, None)),
            MdnOutcome::ans_error("906").unwrap()
        );
    }
}
