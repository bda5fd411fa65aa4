//! Tracking: the DSNs and MDNs that come back for sent letters.
//!
//! Both arrive as `multipart/report` mails in an inbound mailbox (the sending mailbox, usually):
//!
//! - a **DSN** (RFC 3464, `report-type=delivery-status`) from a mail server: one field group
//!   per recipient (`Original-Recipient`, `Final-Recipient`, `Action`, `Status`,
//!   `Diagnostic-Code`), the message's `Original-Envelope-Id` (our `ENVID`) and its headers
//!   (`RET=HDRS`) with the original `Message-ID`;
//! - an **MDN** (RFC 8098, `report-type=disposition-notification`) from the receiving system:
//!   `Original-Message-ID`, `Original-Recipient` / `Final-Recipient` and the `Disposition`
//!   (`processed`, or the ANS `processed/Error: <code>^<label>` when integration failed).
//!
//! The inbound pipeline offers every mail to [`Engine::screen_inbound`] before its documents
//! are looked at (an MDN carries the original mail, XDM included, and must not be filed as a
//! document). A report matched to a letter updates each recipient's status and ends `filed`
//! with a `report_tracked` event; an unmatched report is rejected (`MSS-REPORT-UNMATCHED`).
//! The same step quarantines mail from outside the liste blanche when
//! `[outbound.liste_blanche] enforce_on_intake` is set (`MSS-SENDER-NOT-ALLOWED`).

use std::io::Read;

use mail_parser::{MessageParser, MimeHeaders};
use relais_store::{
    Event, Journal, MessageRecord, MessageState, RecipientReport, RecipientStatus, ReportKind,
    TrackedReport,
};

use crate::{Engine, EngineError};

/// Stable codes of the inbound screening.
pub mod codes {
    /// A DSN or MDN that names no letter of this journal.
    pub const REPORT_UNMATCHED: &str = "MSS-REPORT-UNMATCHED";
    /// A mail whose sender's domain is not on the liste blanche.
    pub const SENDER_NOT_ALLOWED: &str = "MSS-SENDER-NOT-ALLOWED";
}

/// How much of a mail is read to see whether it is a report.
const PEEK_BYTES: u64 = 64 * 1024;

/// A DSN or MDN, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    /// DSN or MDN.
    pub kind: ReportKind,
    /// Message-IDs of the original mail it names (without angle brackets), best first.
    pub original_message_ids: Vec<String>,
    /// The DSN `Original-Envelope-Id`.
    pub envelope_id: Option<String>,
    /// What it says per recipient.
    pub recipients: Vec<RecipientReport>,
}

/// Whether the header block of a mail says `multipart/report`.
pub fn is_report_head(head: &[u8]) -> bool {
    let mut block = head.to_vec();
    if !block.ends_with(b"\n\n") && !block.ends_with(b"\r\n\r\n") {
        block.extend_from_slice(b"\r\n\r\n");
    }
    MessageParser::default()
        .parse_headers(&block)
        .and_then(|m| {
            m.content_type().map(|ct| {
                ct.ctype().eq_ignore_ascii_case("multipart")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            })
        })
        .unwrap_or(false)
}

fn unfold(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `rfc822;addr` (or a bare address) → `addr`.
fn address_of(v: &str) -> String {
    let v = unfold(v);
    let addr = match v.split_once(';') {
        Some((_, a)) => a.trim(),
        None => v.trim(),
    };
    addr.trim_matches(|c| c == '<' || c == '>').to_string()
}

fn strip_angles(v: &str) -> String {
    v.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The field groups of a `message/delivery-status` or `message/disposition-notification` body.
fn field_groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut groups = Vec::new();
    for block in text.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let head = format!("{}\n\n", block.trim_matches('\n'));
        let Some(parsed) = MessageParser::default().parse_headers(head.as_bytes()) else {
            continue;
        };
        let fields = parsed
            .headers()
            .iter()
            .filter_map(|h| {
                let value = parsed.header_raw(h.name.as_str())?;
                Some((h.name.as_str().to_ascii_lowercase(), unfold(value)))
            })
            .collect();
        groups.push(fields);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a DSN or MDN; `None` for any other mail.
pub fn parse_report(raw: &[u8]) -> Option<ParsedReport> {
    let message = MessageParser::default().parse(raw)?;
    let ct = message.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("multipart")
        || !ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    let mut report: Option<ParsedReport> = None;
    let mut returned_ids = Vec::new();
    for part in &message.parts {
        let Some(pct) = part.content_type() else {
            continue;
        };
        let t = format!(
            "{}/{}",
            pct.ctype().to_ascii_lowercase(),
            pct.subtype().unwrap_or_default().to_ascii_lowercase()
        );
        match t.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                let groups = field_groups(part.contents());
                let mut r = ParsedReport {
                    kind: ReportKind::Dsn,
                    original_message_ids: Vec::new(),
                    envelope_id: None,
                    recipients: Vec::new(),
                };
                for g in &groups {
                    if let Some(env) = field(g, "original-envelope-id") {
                        r.envelope_id = Some(env.trim().to_string());
                    }
                    let Some(action) = field(g, "action") else {
                        continue;
                    };
                    let Some(addr) =
                        field(g, "original-recipient").or_else(|| field(g, "final-recipient"))
                    else {
                        continue;
                    };
                    let action = action.trim().to_ascii_lowercase();
                    let status = match action.as_str() {
                        "delivered" | "relayed" | "expanded" => RecipientStatus::Delivered,
                        "delayed" => RecipientStatus::Delayed,
                        "failed" => RecipientStatus::Failed,
                        _ => continue,
                    };
                    let code = field(g, "status").map(|s| s.trim().to_string());
                    let diagnostic = field(g, "diagnostic-code")
                        .map(|d| d.split_once(';').map(|(_, t)| t.trim()).unwrap_or(d))
                        .map(|d| format!("{action}: {d}"))
                        .unwrap_or_else(|| action.clone());
                    r.recipients.push(RecipientReport {
                        address: address_of(addr),
                        status,
                        remote_status: code,
                        reason: Some(diagnostic),
                    });
                }
                report = Some(r);
            }
            "message/disposition-notification" | "message/global-disposition-notification" => {
                let groups = field_groups(part.contents());
                let all: Vec<(String, String)> = groups.into_iter().flatten().collect();
                let mut r = ParsedReport {
                    kind: ReportKind::Mdn,
                    original_message_ids: Vec::new(),
                    envelope_id: None,
                    recipients: Vec::new(),
                };
                if let Some(id) = field(&all, "original-message-id") {
                    r.original_message_ids.push(strip_angles(id));
                }
                if let (Some(addr), Some(disposition)) = (
                    field(&all, "original-recipient").or_else(|| field(&all, "final-recipient")),
                    field(&all, "disposition"),
                ) {
                    // "automatic-action/MDN-sent-automatically; processed/Error: 902^label"
                    let kind = disposition
                        .split_once(';')
                        .map(|(_, k)| k.trim())
                        .unwrap_or(disposition)
                        .to_string();
                    let lower = kind.to_ascii_lowercase();
                    let (status, remote) = if lower.contains("/error") {
                        let code = kind
                            .split_once(':')
                            .map(|(_, rest)| rest.trim())
                            .and_then(|rest| rest.split('^').next())
                            .unwrap_or_default()
                            .to_string();
                        (RecipientStatus::Failed, format!("processed/error {code}"))
                    } else if lower.starts_with("processed") || lower.starts_with("displayed") {
                        (RecipientStatus::Read, lower.clone())
                    } else if lower.starts_with("deleted")
                        || lower.starts_with("denied")
                        || lower.starts_with("failed")
                    {
                        (RecipientStatus::Failed, lower.clone())
                    } else {
                        (RecipientStatus::Delivered, lower.clone())
                    };
                    r.recipients.push(RecipientReport {
                        address: address_of(addr),
                        status,
                        remote_status: Some(remote),
                        reason: Some(kind),
                    });
                }
                report = Some(r);
            }
            "text/rfc822-headers" | "message/rfc822-headers" | "message/rfc822" => {
                let contents = part.contents();
                let head_end = contents
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4)
                    .unwrap_or(contents.len());
                let mut head = contents[..head_end].to_vec();
                head.extend_from_slice(b"\r\n");
                if let Some(m) = MessageParser::default().parse_headers(&head)
                    && let Some(id) = m.message_id()
                {
                    returned_ids.push(id.to_string());
                }
            }
            _ => {}
        }
    }
    let mut report = report?;
    report.original_message_ids.extend(returned_ids);
    for h in [message.in_reply_to(), message.references()] {
        if let Some(list) = h.as_text_list() {
            report
                .original_message_ids
                .extend(list.iter().map(|s| strip_angles(s)));
        } else if let Some(one) = h.as_text() {
            report.original_message_ids.push(strip_angles(one));
        }
    }
    report.original_message_ids.dedup();
    Some(report)
}

impl Engine {
    /// Offered every inbound mail as it leaves `parsed`, before its documents are looked at:
    /// a DSN or MDN of an outbound letter is tracked and filed, an unmatched report rejected,
    /// and, when the liste blanche is enforced on intake, a mail from outside it rejected.
    /// Returns the state the message ended in, or `None` to let the pipeline go on. Does nothing
    /// without an `[outbound]` section.
    pub(crate) async fn screen_inbound(
        &self,
        rec: &MessageRecord,
        sender: Option<&str>,
    ) -> Result<Option<MessageState>, EngineError> {
        let Some(o) = &self.outbound else {
            return Ok(None);
        };
        let id = rec.id;
        if self.looks_like_report(o, rec).await {
            let raw = self.journal.read_raw(id).await?;
            let parsed = tokio::task::spawn_blocking(move || parse_report(&raw))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            if let Some(report) = parsed {
                return self.track(o, rec, report).await.map(Some);
            }
        }
        if let (Some(list), Some(settings)) = (o.liste_blanche(), &o.config().liste_blanche)
            && settings.enforce_on_intake
        {
            let decision = match sender {
                Some(s) => list.allows(s),
                None => list.allows(""),
            };
            if !decision.is_allowed() {
                let text = format!(
                    "the sender's domain is outside the espace de confiance MSSanté: {decision}"
                );
                self.journal
                    .transition(
                        id,
                        MessageState::Parsed,
                        MessageState::Rejected,
                        Event::system("rejected").with_error(codes::SENDER_NOT_ALLOWED, &text),
                    )
                    .await?;
                tracing::warn!(message = %id, code = codes::SENDER_NOT_ALLOWED, "mail from outside the liste blanche quarantined");
                return Ok(Some(MessageState::Rejected));
            }
        }
        Ok(None)
    }

    /// Reads the start of the raw mail (without the full read and hash check) to see whether
    /// its top-level type is `multipart/report`.
    async fn looks_like_report(&self, o: &super::Outbound, rec: &MessageRecord) -> bool {
        let Ok(path) = o.journal.blobs().path_of(&rec.sha256) else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            let mut head = Vec::new();
            let read =
                std::fs::File::open(&path).and_then(|f| f.take(PEEK_BYTES).read_to_end(&mut head));
            if read.is_err() {
                return false;
            }
            let end = head
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4)
                .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
                .unwrap_or(head.len());
            head.truncate(end);
            is_report_head(&head)
        })
        .await
        .unwrap_or(false)
    }

    /// Records a report on its letter, or rejects it when it names none.
    async fn track(
        &self,
        o: &super::Outbound,
        rec: &MessageRecord,
        report: ParsedReport,
    ) -> Result<MessageState, EngineError> {
        let id = rec.id;
        let outbox = o.outbox();
        let mut letter = None;
        for mid in &report.original_message_ids {
            if let Some(l) = outbox.find_letter_by_message_id(mid).await? {
                letter = Some(l);
                break;
            }
        }
        if letter.is_none()
            && let Some(env) = &report.envelope_id
        {
            letter = outbox.find_letter_by_envelope_id(env).await?;
        }
        let journal: &dyn Journal = self.journal.as_ref();
        let Some(letter) = letter else {
            journal
                .transition(
                    id,
                    MessageState::Parsed,
                    MessageState::Rejected,
                    Event::system("rejected")
                        .with_detail(serde_json::json!({ "report": report.kind.as_str() }))
                        .with_error(
                            codes::REPORT_UNMATCHED,
                            "a delivery or disposition report that names no letter sent by this Relais",
                        ),
                )
                .await?;
            tracing::warn!(message = %id, kind = report.kind.as_str(), "report matches no outbound letter");
            return Ok(MessageState::Rejected);
        };
        let tracked = outbox
            .record_report(
                letter,
                &TrackedReport {
                    kind: report.kind,
                    inbound_message: Some(id),
                    recipients: report.recipients.clone(),
                },
            )
            .await?;
        let statuses: Vec<&str> = report
            .recipients
            .iter()
            .map(|r| r.status.as_str())
            .collect();
        journal
            .transition(
                id,
                MessageState::Parsed,
                MessageState::Validated,
                Event::system("validated")
                    .with_detail(serde_json::json!({ "report": report.kind.as_str() })),
            )
            .await?;
        journal
            .transition(
                id,
                MessageState::Validated,
                MessageState::Matched,
                Event::system("report_tracked").with_detail(serde_json::json!({
                    "letter": letter.0,
                    "report": report.kind.as_str(),
                    "statuses": statuses,
                    "updated": tracked.updated,
                    "unmatched_recipients": tracked.unmatched,
                })),
            )
            .await?;
        journal
            .transition(
                id,
                MessageState::Matched,
                MessageState::Filed,
                Event::system("filed").with_detail(serde_json::json!({ "letter": letter.0 })),
            )
            .await?;
        tracing::info!(message = %id, letter = %letter, kind = report.kind.as_str(), updated = tracked.updated, "report tracked");
        Ok(MessageState::Filed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@hopital.test\r\n\
To: secretariat@hopital.test\r\n\
Subject: Successful Mail Delivery Report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
delivered\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mail.hopital.test\r\n\
Original-Envelope-Id: abc123\r\n\
\r\n\
Final-Recipient: rfc822; dpi@hopital.test\r\n\
Original-Recipient: rfc822;dpi@hopital.test\r\n\
Action: delivered\r\n\
Status: 2.0.0\r\n\
Diagnostic-Code: smtp; 250 2.0.0 <dpi@hopital.test> Saved\r\n\
\r\n\
Final-Recipient: rfc822; x@elsewhere.test\r\n\
Action: failed\r\n\
Status: 5.7.1\r\n\
Diagnostic-Code: X-Postfix; outbound delivery disabled\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Message-ID: <relais.1234@hopital.test>\r\n\
Subject: XDM/1.0/DDM+x\r\n\
\r\n\
--B--\r\n";

    #[test]
    fn a_dsn_is_read() {
        assert!(is_report_head(
            DSN.split("\r\n\r\n").next().unwrap().as_bytes()
        ));
        let r = parse_report(DSN.as_bytes()).unwrap();
        assert_eq!(r.kind, ReportKind::Dsn);
        assert_eq!(r.envelope_id.as_deref(), Some("abc123"));
        assert_eq!(r.original_message_ids, ["relais.1234@hopital.test"]);
        assert_eq!(r.recipients.len(), 2);
        assert_eq!(r.recipients[0].address, "dpi@hopital.test");
        assert_eq!(r.recipients[0].status, RecipientStatus::Delivered);
        assert_eq!(r.recipients[0].remote_status.as_deref(), Some("2.0.0"));
        assert_eq!(r.recipients[1].status, RecipientStatus::Failed);
        assert!(
            r.recipients[1]
                .reason
                .as_deref()
                .unwrap()
                .contains("outbound delivery disabled")
        );
    }

    #[test]
    fn an_ans_mdn_with_an_error_is_read() {
        let mdn = "From: dpi@hopital.test\r\nTo: secretariat@hopital.test\r\n\
In-Reply-To: <relais.9@hopital.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=disposition-notification; boundary=\"M\"\r\n\r\n\
--M\r\nContent-Type: text/plain\r\n\r\nKO\r\n\
--M\r\nContent-Type: message/disposition-notification\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
Reporting-UA: hopital.test; Relais\r\nFinal-Recipient: rfc822;dpi@hopital.test\r\n\
Original-Message-ID: <relais.9@hopital.test>\r\n\
Disposition: automatic-action/MDN-sent-automatically; processed/Error: 902^Patient inconnu\r\n\r\n\
--M--\r\n";
        let r = parse_report(mdn.as_bytes()).unwrap();
        assert_eq!(r.kind, ReportKind::Mdn);
        assert_eq!(r.original_message_ids[0], "relais.9@hopital.test");
        assert_eq!(r.recipients[0].status, RecipientStatus::Failed);
        assert_eq!(
            r.recipients[0].remote_status.as_deref(),
            Some("processed/error 902")
        );
        assert!(parse_report(b"From: a@b\r\nSubject: x\r\n\r\nhello\r\n").is_none());
    }
}
