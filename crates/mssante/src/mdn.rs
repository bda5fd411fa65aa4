//! Answering the sender of an MSSanté mail: the MDN of the ANS guide (ig-lps-mss, « Structure
//! du message MDN ») and, when no MDN was asked for, a report to the hospital's error mailbox.
//!
//! An MDN (RFC 8098) is a `multipart/report; report-type=disposition-notification` with three
//! parts: a human-readable text, the `message/disposition-notification` fields
//! (`Reporting-UA`, `Original-Recipient`, `Final-Recipient`, `Original-Message-ID`,
//! `Disposition`), and the original mail as `message/rfc822` (its attachments, the XDM archive
//! and the PDF, travel inside it). The ANS conventions on top of RFC 8098:
//!
//! - success: `Disposition: automatic-action/MDN-sent-automatically; processed`, and the
//!   subject of the original mail (`XDM/1.0/DDM+...`);
//! - failure: `Disposition: automatic-action/MDN-sent-automatically; processed/Error: <code>^<libellé>`
//!   with the codes of the table applicationErrorCondition (900 to 906, [`ANS_ERRORS`]) and the
//!   subject `[KO Intégration système !][<code>] ` followed by the original subject.
//!
//! Whether an MDN may be sent automatically is decided by [`mdn_decision`] (RFC 8098 §2.1 as
//! quoted by the guide; see [`MdnDecision`]). Without an MDN, [`build_error_report`] builds the
//! plain mail for the configured error mailbox.
//!
//! Everything is built with mail-builder; nothing here writes MIME encodings by hand. Patient
//! data (the original subject, names in it) only goes where the ANS puts it (the subject line)
//! and never into errors.

use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart, make_boundary};
use mail_parser::MessageParser;

use crate::ParsedMail;
use crate::address::{is_patient_address, redact};

/// Stable codes of the MDN and error-report builders (the `MDN-*` catalogue).
pub mod codes {
    use relais_core::RuleCode;

    /// The original mail has no `Disposition-Notification-To`: there is nobody to send an MDN to.
    pub const MDN_NOT_REQUESTED: RuleCode = RuleCode::new("MDN-NOT-REQUESTED");
    /// The original mail has no usable `Message-ID`: an MDN could not be matched by the sender.
    pub const MDN_NO_MESSAGE_ID: RuleCode = RuleCode::new("MDN-NO-MESSAGE-ID");
    /// An address (mailbox, recipient, `Disposition-Notification-To`) is not a plain ASCII
    /// `local@domain`.
    pub const MDN_ADDRESS_INVALID: RuleCode = RuleCode::new("MDN-ADDRESS-INVALID");
    /// The error code is empty or holds characters other than letters, digits, `.`, `_`, `-`.
    pub const MDN_ERROR_CODE_INVALID: RuleCode = RuleCode::new("MDN-ERROR-CODE-INVALID");
    /// The error label is empty once control characters are removed.
    pub const MDN_ERROR_LABEL_INVALID: RuleCode = RuleCode::new("MDN-ERROR-LABEL-INVALID");
    /// A context field (`reporting_ua`, `message_id_domain`, `nil`) is empty or not printable ASCII.
    pub const MDN_CONTEXT_INVALID: RuleCode = RuleCode::new("MDN-CONTEXT-INVALID");
    /// mail-builder failed to write the mail (should not happen: it writes to memory).
    pub const MDN_BUILD: RuleCode = RuleCode::new("MDN-BUILD");
}

/// The codes and labels of the ANS table applicationErrorCondition (ig-lps-mss, error codes).
pub const ANS_ERRORS: [(&str, &str); 7] = [
    (
        "900",
        "Version du document incorrecte lors d'une demande de remplacement/suppression",
    ),
    (
        "901",
        "Auteur non autorisé à remplacer ou supprimer un document",
    ),
    ("902", "Identifiant patient inconnu"),
    ("903", "INS non présent dans le document"),
    (
        "904",
        "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    ),
    ("905", "L'INS transmis n'est pas complet"),
    ("906", "Erreur 'Autre'"),
];

/// The ANS label of an applicationErrorCondition code (`"902"` → `Identifiant patient inconnu`).
pub fn ans_error_label(code: &str) -> Option<&'static str> {
    ANS_ERRORS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, label)| *label)
}

/// The prefix of the subject of a failure MDN (followed by `[<code>] ` and the original subject).
pub const KO_SUBJECT_PREFIX: &str = "[KO Intégration système !]";

/// The `Disposition` value of every MDN Relais sends, before `; processed`.
pub const DISPOSITION_MODE: &str = "automatic-action/MDN-sent-automatically";

/// Longest error label kept (longer labels, e.g. free text from a DPI, are cut).
pub const MAX_LABEL_CHARS: usize = 200;

/// What happened to the mail, as told to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdnOutcome {
    /// Every document was filed: `Disposition: ...; processed`.
    Processed,
    /// Filing failed: `Disposition: ...; processed/Error: <code>^<label>`.
    Error {
        /// `900` to `906` ([`ANS_ERRORS`]) or another code agreed with the sender.
        code: String,
        /// The label of the code (no patient data).
        label: String,
    },
}

impl MdnOutcome {
    /// The failure outcome for an ANS code with its ANS label; `None` for an unknown code.
    pub fn ans_error(code: &str) -> Option<MdnOutcome> {
        ans_error_label(code).map(|label| MdnOutcome::Error {
            code: code.to_string(),
            label: label.to_string(),
        })
    }
}

/// Who answers, and how the answer is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnContext {
    /// The applicative mailbox that received the mail (`From` and `Final-Recipient`).
    pub from: String,
    /// Product name and version for `Reporting-UA`, e.g. `Relais 0.1.0`.
    pub reporting_ua: String,
    /// Domain of the generated `Message-ID` (and the host part of `Reporting-UA`).
    pub message_id_domain: String,
    /// `Date` of the answer.
    pub date: SystemTime,
    /// `X-MSS-NIL` (product reference, CI-SIS asks for it on every message sent); `None` omits it.
    pub nil: Option<String>,
}

impl MdnContext {
    /// A context dated now, with `X-MSS-NIL` set to `reporting_ua`.
    pub fn new(
        from: impl Into<String>,
        reporting_ua: impl Into<String>,
        message_id_domain: impl Into<String>,
    ) -> MdnContext {
        let reporting_ua = reporting_ua.into();
        MdnContext {
            from: from.into(),
            nil: Some(reporting_ua.clone()),
            reporting_ua,
            message_id_domain: message_id_domain.into(),
            date: SystemTime::now(),
        }
    }
}

/// A mail ready to be handed to SMTP: its bytes and its envelope.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltMail {
    /// The `Message-ID` given to the mail, without angle brackets (for the journal).
    pub message_id: String,
    /// SMTP `MAIL FROM`; empty for the null reverse-path `<>` (RFC 8098 §3 asks it for MDNs, so
    /// that no DSN or auto-reply answers an MDN).
    pub envelope_from: String,
    /// SMTP `RCPT TO` addresses.
    pub recipients: Vec<String>,
    /// The RFC 5322 bytes (CRLF line ends).
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for BuiltMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltMail")
            .field("message_id", &self.message_id)
            .field("envelope_from", &redact(&self.envelope_from))
            .field(
                "recipients",
                &self
                    .recipients
                    .iter()
                    .map(|r| redact(r))
                    .collect::<Vec<_>>(),
            )
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// Why an MDN or an error report could not be built. [`MdnError::code`] gives its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdnError {
    /// No `Disposition-Notification-To` in the original mail.
    #[error(
        "the mail asks for no MDN (no Disposition-Notification-To): report through the error \
         mailbox with build_error_report instead"
    )]
    NotRequested,
    /// No usable `Message-ID` in the original mail.
    #[error(
        "the mail has no usable Message-ID, so the sender could not match an MDN to it: report \
         through the error mailbox with build_error_report instead"
    )]
    NoMessageId,
    /// An address is not a plain ASCII `local@domain` (the value is not repeated here: it may be
    /// a patient address).
    #[error(
        "the {which} address is not a plain ASCII local@domain address; check the configuration \
         (or the original mail's header)"
    )]
    InvalidAddress {
        /// Which address (`"Disposition-Notification-To"`, `"mailbox (from)"`, `"error mailbox"`).
        which: &'static str,
    },
    /// The error code cannot be written in a `Disposition` field.
    #[error(
        "error code {code:?} is not usable: use 1 to 16 letters, digits, '.', '_' or '-' (the ANS \
         codes are 900 to 906)"
    )]
    InvalidErrorCode {
        /// The code given.
        code: String,
    },
    /// The error label is empty.
    #[error("the error label is empty: give the label of the code (see ANS_ERRORS)")]
    InvalidErrorLabel,
    /// A context field is unusable.
    #[error("MdnContext.{field} must be non-empty printable ASCII without line breaks")]
    InvalidContext {
        /// The field name.
        field: &'static str,
    },
    /// mail-builder failed.
    #[error("the mail could not be written: {0}")]
    Build(String),
}

impl MdnError {
    /// The stable code of this error (one of [`codes`]).
    pub fn code(&self) -> relais_core::RuleCode {
        match self {
            MdnError::NotRequested => codes::MDN_NOT_REQUESTED,
            MdnError::NoMessageId => codes::MDN_NO_MESSAGE_ID,
            MdnError::InvalidAddress { .. } => codes::MDN_ADDRESS_INVALID,
            MdnError::InvalidErrorCode { .. } => codes::MDN_ERROR_CODE_INVALID,
            MdnError::InvalidErrorLabel => codes::MDN_ERROR_LABEL_INVALID,
            MdnError::InvalidContext { .. } => codes::MDN_CONTEXT_INVALID,
            MdnError::Build(_) => codes::MDN_BUILD,
        }
    }
}

/// Whether an MDN may be sent automatically for a mail, and if not, why.
#[derive(Clone, PartialEq, Eq)]
pub enum MdnDecision {
    /// Send the MDN to this address (the `Disposition-Notification-To` address).
    Send {
        /// The recipient of the MDN.
        to: String,
    },
    /// No `Disposition-Notification-To`: no MDN (ANS: report through the error mailbox).
    NotRequested,
    /// No usable `Message-ID`: the sender could not match an MDN to its mail.
    NoMessageId,
    /// `Disposition-Notification-To` names more than one distinct address (RFC 8098 §2.1: not
    /// without the user's confirmation, which an automatic system cannot obtain).
    SeveralAddresses,
    /// `Disposition-Notification-To` differs from `Return-Path` (RFC 8098 §2.1, quoted by the
    /// ANS guide: no automatic MDN, to avoid mail loops and MDNs to third parties).
    ReturnPathMismatch,
    /// `Disposition-Notification-To` is a patient address (`@patient.mssante.fr`). The ANS MDN
    /// is an answer between systems (PFI to PFI); Relais does not send automatic integration
    /// reports to patients (a choice of Relais, not a rule of the guide).
    PatientAddress,
    /// The mail is itself automatic (a report such as an MDN or a DSN, `Auto-Submitted` other
    /// than `no`, or a null `Return-Path`): answering it could start a loop (RFC 3834).
    AutomaticOriginal,
    /// The `Disposition-Notification-To` address is not a plain ASCII `local@domain`.
    InvalidAddress,
}

impl MdnDecision {
    /// True for [`MdnDecision::Send`].
    pub fn is_send(&self) -> bool {
        matches!(self, MdnDecision::Send { .. })
    }

    /// A short explanation (no addresses), for logs and the journal.
    pub fn reason(&self) -> &'static str {
        match self {
            MdnDecision::Send { .. } => "an MDN was requested and may be sent automatically",
            MdnDecision::NotRequested => "no Disposition-Notification-To: no MDN requested",
            MdnDecision::NoMessageId => "no Message-ID: an MDN could not be matched by the sender",
            MdnDecision::SeveralAddresses => {
                "Disposition-Notification-To names several addresses (RFC 8098 §2.1)"
            }
            MdnDecision::ReturnPathMismatch => {
                "Disposition-Notification-To differs from Return-Path (RFC 8098 §2.1)"
            }
            MdnDecision::PatientAddress => {
                "Disposition-Notification-To is a patient address: no automatic MDN to patients"
            }
            MdnDecision::AutomaticOriginal => {
                "the mail is itself automatic (report, Auto-Submitted or null Return-Path)"
            }
            MdnDecision::InvalidAddress => {
                "Disposition-Notification-To is not a plain ASCII local@domain address"
            }
        }
    }
}

impl std::fmt::Debug for MdnDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MdnDecision::Send { to } => f.debug_struct("Send").field("to", &redact(to)).finish(),
            MdnDecision::NotRequested => f.write_str("NotRequested"),
            MdnDecision::NoMessageId => f.write_str("NoMessageId"),
            MdnDecision::SeveralAddresses => f.write_str("SeveralAddresses"),
            MdnDecision::ReturnPathMismatch => f.write_str("ReturnPathMismatch"),
            MdnDecision::PatientAddress => f.write_str("PatientAddress"),
            MdnDecision::AutomaticOriginal => f.write_str("AutomaticOriginal"),
            MdnDecision::InvalidAddress => f.write_str("InvalidAddress"),
        }
    }
}

/// Decides whether an MDN may be sent automatically for this mail (see [`MdnDecision`]).
///
/// Reads the header fields [`ParsedMail`] does not keep (`Return-Path`, every address of
/// `Disposition-Notification-To`, `Auto-Submitted`, the top `Content-Type`) from `original_raw`.
/// A missing `Return-Path` does not prevent the MDN: the guide only forbids it when the two
/// differ (a mail read from a Maildir written by hand has none).
pub fn mdn_decision(original_raw: &[u8], original: &ParsedMail) -> MdnDecision {
    let head = RawHead::read(original_raw);
    let dnt: Vec<String> = head
        .values("Disposition-Notification-To")
        .iter()
        .flat_map(|v| addresses_in(v))
        .collect();
    if dnt.is_empty() && original.disposition_notification_to.is_none() {
        return MdnDecision::NotRequested;
    }
    if head.is_automatic() {
        return MdnDecision::AutomaticOriginal;
    }
    let to = match dnt.first().cloned() {
        Some(first) => {
            if dnt.iter().any(|a| !same_address(a, &first)) {
                return MdnDecision::SeveralAddresses;
            }
            first
        }
        None => match &original.disposition_notification_to {
            Some(a) => a.clone(),
            None => return MdnDecision::NotRequested,
        },
    };
    if !is_plain_address(&to) {
        return MdnDecision::InvalidAddress;
    }
    if original
        .message_id
        .as_deref()
        .and_then(valid_message_id)
        .is_none()
    {
        return MdnDecision::NoMessageId;
    }
    if is_patient_address(&to) {
        return MdnDecision::PatientAddress;
    }
    if let Some(rp) = head.return_path()
        && !same_address(&rp, &to)
    {
        return MdnDecision::ReturnPathMismatch;
    }
    MdnDecision::Send { to }
}

/// True when [`mdn_decision`] allows an automatic MDN.
pub fn should_send_mdn(original_raw: &[u8], original: &ParsedMail) -> bool {
    mdn_decision(original_raw, original).is_send()
}

/// Builds the MDN answering `original` (whose raw bytes are `original_raw`).
///
/// The MDN goes to the `Disposition-Notification-To` address, from `ctx.from`, with the null
/// envelope sender; it is `In-Reply-To` the original `Message-ID` and carries
/// `Auto-Submitted: auto-replied` and no MDN request of its own. The original is attached as
/// `message/rfc822` (7bit or 8bit, as its bytes allow; CRLF line ends). A mail that cannot be
/// carried that way (a line over 998 bytes, a NUL byte) is attached as
/// `application/octet-stream` named `message_original.eml` instead, base64-encoded by
/// mail-builder, since RFC 2046 forbids encoding a `message/rfc822` part.
///
/// The error label goes in full (UTF-8) in the human-readable part; in the `Disposition` field,
/// which RFC 8098 §3.1 requires in 7bit, accented letters are written without their accents.
/// Call [`mdn_decision`] first: this function does not judge whether the MDN should be sent.
pub fn build_mdn(
    original_raw: &[u8],
    original: &ParsedMail,
    outcome: MdnOutcome,
    ctx: &MdnContext,
) -> Result<BuiltMail, MdnError> {
    let to = original
        .disposition_notification_to
        .clone()
        .ok_or(MdnError::NotRequested)?;
    if !is_plain_address(&to) {
        return Err(MdnError::InvalidAddress {
            which: "Disposition-Notification-To",
        });
    }
    let original_id = original
        .message_id
        .as_deref()
        .and_then(valid_message_id)
        .ok_or(MdnError::NoMessageId)?;
    check_context(ctx)?;
    let error = match &outcome {
        MdnOutcome::Processed => None,
        MdnOutcome::Error { code, label } => Some((check_code(code)?, clean_label(label)?)),
    };
    let cleaned = match &error {
        None => MdnOutcome::Processed,
        Some((code, label)) => MdnOutcome::Error {
            code: code.to_string(),
            label: label.clone(),
        },
    };

    let original_subject = original.subject.as_deref().unwrap_or("").trim();
    let subject = match &error {
        None => original_subject.to_string(),
        Some((code, _)) => ko_subject(code, original_subject),
    };

    // Part 1: for humans (French, as the guide's example). No patient data.
    let human = match &error {
        None => format!(
            "Le message {id} a été intégré automatiquement dans le DPI.\r\n\r\n\
             Cet accusé de traitement (MDN) est envoyé automatiquement par {ua} ; le message \
             d'origine est joint.\r\n",
            id = angle(original_id),
            ua = ctx.reporting_ua,
        ),
        Some((code, label)) => format!(
            "Le message ci-dessous n'a pas pu être intégré automatiquement dans le DPI pour la \
             raison suivante : {label}\r\n\r\n\
             Code d'erreur : {code}\r\n\
             Libellé : {label}\r\n\
             Message-ID : {id}\r\n\r\n\
             Cet accusé de traitement (MDN) est envoyé automatiquement par {ua} ; le message \
             d'origine est joint.\r\n",
            id = angle(original_id),
            ua = ctx.reporting_ua,
        ),
    };

    // Part 2: for machines (RFC 8098 §3.1, 7bit).
    let mut report = String::new();
    push_field(
        &mut report,
        "Reporting-UA",
        &format!("{}; {}", ctx.message_id_domain, ctx.reporting_ua),
    );
    if let Some(orcpt) = original_recipient(original_raw, original, &ctx.from) {
        push_field(&mut report, "Original-Recipient", &orcpt);
    }
    push_field(
        &mut report,
        "Final-Recipient",
        &format!("rfc822;{}", ctx.from),
    );
    push_field(&mut report, "Original-Message-ID", &angle(original_id));
    push_field(&mut report, "Disposition", &disposition_value(&cleaned));

    // Part 3: the original mail.
    let returned = returned_part(original_raw);

    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "disposition-notification"),
        vec![
            MimePart::new("text/plain", human),
            MimePart::new(
                ContentType::new("message/disposition-notification"),
                BodyPart::Binary(report.into_bytes().into()),
            )
            .transfer_encoding("7bit"),
            returned,
        ],
    );

    let message_id = new_message_id("mdn", &ctx.message_id_domain);
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, ctx.from.as_str()))
        .to(Address::new_address(None::<&str>, to.as_str()))
        .subject(subject)
        .date(unix_seconds(ctx.date))
        .message_id(message_id.as_str())
        .in_reply_to(original_id)
        .references(original_id)
        .header("Auto-Submitted", Raw::new("auto-replied"));
    if let Some(nil) = &ctx.nil {
        builder = builder.header("X-MSS-NIL", Text::new(nil.as_str()));
    }
    let raw = builder
        .body(body)
        .write_to_vec()
        .map_err(|e| MdnError::Build(e.to_string()))?;
    Ok(BuiltMail {
        message_id,
        envelope_from: String::new(),
        recipients: vec![to],
        raw,
    })
}

/// Builds the plain report sent to the configured error mailbox `to` when the sender asked no
/// MDN (or none may be sent, see [`MdnDecision`]): the guide's « courriel standard ».
///
/// Subject: `[KO Intégration système !][<code>] ` + the original subject (the guide's form).
/// Body: ids and codes only: the error code and label, the original `Message-ID`, `Date`,
/// sender (a patient address is written `<patient>@patient.mssante.fr`), the mailbox, and why no
/// MDN went out. With `attach_original`, the original is attached as in [`build_mdn`] (as
/// `message_original.eml`), so the error mailbox can act on it.
pub fn build_error_report(
    original_raw: &[u8],
    original: &ParsedMail,
    code: &str,
    label: &str,
    to: &str,
    attach_original: bool,
    ctx: &MdnContext,
) -> Result<BuiltMail, MdnError> {
    if !is_plain_address(to) {
        return Err(MdnError::InvalidAddress {
            which: "error mailbox",
        });
    }
    check_context(ctx)?;
    let code = check_code(code)?;
    let label = clean_label(label)?;
    let original_id = original.message_id.as_deref().and_then(valid_message_id);
    let subject = ko_subject(code, original.subject.as_deref().unwrap_or("").trim());
    let decision = mdn_decision(original_raw, original);
    let sender = original
        .from
        .first()
        .map(|a| redact(a))
        .unwrap_or_else(|| "(absent)".into());
    let text = format!(
        "Bonjour,\r\n\r\n\
         Un message reçu par {mailbox} n'a pas pu être intégré automatiquement dans le DPI.\r\n\r\n\
         - Code d'erreur : {code}\r\n\
         - Erreur détectée : {label}\r\n\
         - Message-ID : {id}\r\n\
         - Date du message : {date}\r\n\
         - Expéditeur : {sender}\r\n\
         - Accusé de traitement (MDN) : {mdn}\r\n\r\n\
         {attached}\
         Ce courriel est envoyé automatiquement par {ua}.\r\n",
        mailbox = ctx.from,
        id = original_id.map(angle).unwrap_or_else(|| "(absent)".into()),
        date = original.date.as_deref().unwrap_or("(absent)"),
        mdn = match decision {
            MdnDecision::Send { .. } => "demandé par l'expéditeur (envoyé séparément)".to_string(),
            other => format!("non envoyé ({})", other.reason()),
        },
        attached = if attach_original {
            "Le message d'origine est joint (message_original.eml).\r\n\r\n"
        } else {
            "Le message d'origine est conservé par le moteur d'intégration.\r\n\r\n"
        },
        ua = ctx.reporting_ua,
    );
    let mut parts = vec![MimePart::new("text/plain", text)];
    if attach_original {
        let part = returned_part(original_raw).attachment("message_original.eml");
        parts.push(part);
    }
    let body = if parts.len() == 1 {
        parts.remove(0)
    } else {
        MimePart::new("multipart/mixed", parts)
    };
    let message_id = new_message_id("report", &ctx.message_id_domain);
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, ctx.from.as_str()))
        .to(Address::new_address(None::<&str>, to))
        .subject(subject)
        .date(unix_seconds(ctx.date))
        .message_id(message_id.as_str())
        .header("Auto-Submitted", Raw::new("auto-generated"));
    if let Some(id) = original_id {
        builder = builder.references(id);
    }
    if let Some(nil) = &ctx.nil {
        builder = builder.header("X-MSS-NIL", Text::new(nil.as_str()));
    }
    let raw = builder
        .body(body)
        .write_to_vec()
        .map_err(|e| MdnError::Build(e.to_string()))?;
    Ok(BuiltMail {
        message_id,
        envelope_from: ctx.from.clone(),
        recipients: vec![to.to_string()],
        raw,
    })
}

/// The `Disposition` field value for an outcome, as written in the MDN: accented letters of
/// the label are written without their accents (RFC 8098 §3.1 wants this part in 7bit).
pub fn disposition_value(outcome: &MdnOutcome) -> String {
    match outcome {
        MdnOutcome::Processed => format!("{DISPOSITION_MODE}; processed"),
        MdnOutcome::Error { code, label } => format!(
            "{DISPOSITION_MODE}; processed/Error: {code}^{}",
            to_ascii(label)
        ),
    }
}

fn ko_subject(code: &str, original_subject: &str) -> String {
    format!("{KO_SUBJECT_PREFIX}[{code}] {original_subject}")
        .trim_end()
        .to_string()
}

fn angle(id: &str) -> String {
    format!("<{id}>")
}

/// The `message/rfc822` part carrying the original (or its octet-stream fallback).
fn returned_part(original_raw: &[u8]) -> MimePart<'static> {
    let bytes = relais_core::text::to_crlf(original_raw);
    let max_line = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let carriable = max_line <= 998 && !bytes.contains(&0);
    if carriable {
        let cte = if bytes.is_ascii() { "7bit" } else { "8bit" };
        MimePart::new(
            ContentType::new("message/rfc822"),
            BodyPart::Binary(bytes.into_owned().into()),
        )
        .transfer_encoding(cte)
    } else {
        MimePart::new(
            ContentType::new("application/octet-stream"),
            BodyPart::Binary(bytes.into_owned().into()),
        )
        .attachment("message_original.eml")
    }
}

/// `Original-Recipient`: copied from the original's header when it has one (RFC 8098 §3.2.3),
/// else `rfc822;<mailbox>` when the sender addressed the mailbox directly (To or Cc), which is
/// the address "as specified by the sender".
fn original_recipient(raw: &[u8], original: &ParsedMail, mailbox: &str) -> Option<String> {
    let head = RawHead::read(raw);
    if let Some(v) = head.values("Original-Recipient").into_iter().next() {
        let v = v.trim();
        if let Some((kind, addr)) = v.split_once(';')
            && kind.trim().eq_ignore_ascii_case("rfc822")
            && is_plain_address(addr.trim())
        {
            return Some(format!("rfc822;{}", addr.trim()));
        }
    }
    original
        .to
        .iter()
        .chain(&original.cc)
        .any(|a| same_address(a, mailbox))
        .then(|| format!("rfc822;{mailbox}"))
}

/// Appends `Name: value\r\n` on one line. Fields are not folded, even past 78 characters:
/// receiving platforms are known to read the `Disposition` line as one line, as the guide shows
/// it; the label is cut at [`MAX_LABEL_CHARS`], so lines stay far below the 998-byte limit.
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// Letters without their accents, typographic quotes and dashes as ASCII, any other non-ASCII
/// character as `?`.
fn to_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let r: &str = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => "a",
            'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => "A",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'É' | 'È' | 'Ê' | 'Ë' => "E",
            'î' | 'ï' | 'í' | 'ì' => "i",
            'Î' | 'Ï' | 'Í' | 'Ì' => "I",
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => "o",
            'Ô' | 'Ö' | 'Ó' | 'Ò' | 'Õ' => "O",
            'ù' | 'û' | 'ü' | 'ú' => "u",
            'Ù' | 'Û' | 'Ü' | 'Ú' => "U",
            'ÿ' => "y",
            'Ÿ' => "Y",
            'ç' => "c",
            'Ç' => "C",
            'ñ' => "n",
            'Ñ' => "N",
            'œ' => "oe",
            'Œ' => "OE",
            'æ' => "ae",
            'Æ' => "AE",
            '’' | '‘' | '´' => "'",
            '“' | '”' | '«' | '»' => "\"",
            '–' | '—' | '‐' => "-",
            '\u{a0}' | '\u{202f}' => " ",
            c if c.is_ascii() => {
                out.push(c);
                continue;
            }
            _ => "?",
        };
        out.push_str(r);
    }
    out
}

fn check_code(code: &str) -> Result<&str, MdnError> {
    let ok = !code.is_empty()
        && code.len() <= 16
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(code)
    } else {
        Err(MdnError::InvalidErrorCode {
            code: code.chars().take(32).collect(),
        })
    }
}

/// Control characters become spaces, runs of spaces one space; cut at [`MAX_LABEL_CHARS`].
fn clean_label(label: &str) -> Result<String, MdnError> {
    let spaced: String = label
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let joined = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        return Err(MdnError::InvalidErrorLabel);
    }
    Ok(joined.chars().take(MAX_LABEL_CHARS).collect())
}

fn check_context(ctx: &MdnContext) -> Result<(), MdnError> {
    if !is_plain_address(&ctx.from) {
        return Err(MdnError::InvalidAddress {
            which: "mailbox (MdnContext.from)",
        });
    }
    let printable = |s: &str| !s.trim().is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable(&ctx.reporting_ua) {
        return Err(MdnError::InvalidContext {
            field: "reporting_ua",
        });
    }
    let domain_ok = !ctx.message_id_domain.is_empty()
        && ctx
            .message_id_domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !domain_ok {
        return Err(MdnError::InvalidContext {
            field: "message_id_domain",
        });
    }
    if let Some(nil) = &ctx.nil
        && !printable(nil)
    {
        return Err(MdnError::InvalidContext { field: "nil" });
    }
    Ok(())
}

/// A Message-ID (without brackets) that can be written back: printable ASCII, no spaces or
/// angle brackets.
fn valid_message_id(id: &str) -> Option<&str> {
    let id = id.trim();
    let ok = !id.is_empty()
        && id.len() <= 500
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>'));
    ok.then_some(id)
}

/// A plain ASCII `local@domain`: printable, no spaces, no characters that end an address or a
/// command (`<>()[],;:"\`), a non-empty local part and a dotted domain of letters, digits, `-`.
pub(crate) fn is_plain_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'<' | b'>'
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b','
                        | b';'
                        | b':'
                        | b'"'
                        | b'\\'
                        | b'@'
                )
        });
    let domain_ok = !domain.is_empty()
        && domain.len() <= 255
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

fn same_address(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        let s = s.trim();
        s.strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s)
            .trim()
            .to_string()
    };
    strip(a).eq_ignore_ascii_case(&strip(b))
}

/// The addr-specs of an address-list header value: inside `<...>` when present, else the item.
fn addresses_in(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new();
    let (mut quoted, mut angle_depth) = (false, 0u32);
    let mut flush = |item: &mut String| {
        let it = item.trim();
        let addr = match (it.find('<'), it.rfind('>')) {
            (Some(o), Some(c)) if o < c => &it[o + 1..c],
            _ => it,
        };
        let addr = addr.trim();
        if !addr.is_empty() {
            out.push(addr.to_string());
        }
        item.clear();
    };
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle_depth += 1,
            '>' if !quoted => angle_depth = angle_depth.saturating_sub(1),
            ',' if !quoted && angle_depth == 0 => {
                flush(&mut item);
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    flush(&mut item);
    out
}

/// The top-level header fields of a raw mail, read with mail-parser (headers only).
struct RawHead {
    fields: Vec<(String, String)>,
}

impl RawHead {
    fn read(raw: &[u8]) -> RawHead {
        let parsed = std::panic::catch_unwind(|| {
            MessageParser::default().parse_headers(raw).map(|m| {
                m.parts
                    .first()
                    .map(|root| {
                        root.headers
                            .iter()
                            .filter_map(|h| {
                                let v = raw.get(h.offset_start as usize..h.offset_end as usize)?;
                                let v = String::from_utf8_lossy(v)
                                    .split_whitespace()
                                    .collect::<Vec<_>>()
                                    .join(" ");
                                Some((h.name.as_str().to_string(), v))
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
        });
        RawHead {
            fields: parsed.ok().flatten().unwrap_or_default(),
        }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `Return-Path` address, `Some("")` for the null path `<>`, `None` when absent.
    fn return_path(&self) -> Option<String> {
        let v = self.values("Return-Path").into_iter().next()?;
        Some(addresses_in(v).into_iter().next().unwrap_or_default())
    }

    fn is_automatic(&self) -> bool {
        let auto_submitted = self.values("Auto-Submitted").into_iter().any(|v| {
            let token = v.split(';').next().unwrap_or("").trim();
            !token.is_empty() && !token.eq_ignore_ascii_case("no")
        });
        let report = self.values("Content-Type").into_iter().any(|v| {
            let t = v.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("multipart/report")
                || t.eq_ignore_ascii_case("message/disposition-notification")
                || t.eq_ignore_ascii_case("message/delivery-status")
        });
        let null_return_path = self.return_path().is_some_and(|rp| rp.is_empty());
        auto_submitted || report || null_return_path
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A fresh `Message-ID` (without brackets): `<kind>.<unique>@<domain>`.
fn new_message_id(kind: &str, domain: &str) -> String {
    format!("{kind}.{}@{domain}", make_boundary("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_folding_keeps_the_ans_labels_readable() {
        assert_eq!(
            to_ascii("L'INS transmis ne correspond pas exactement à celui stocké"),
            "L'INS transmis ne correspond pas exactement a celui stocke"
        );
        assert_eq!(to_ascii("Auteur non autorisé"), "Auteur non autorise");
        assert_eq!(to_ascii("œuvre – « x » ’y’ 日"), "oeuvre - \" x \" 'y' ?");
    }

    #[test]
    fn fields_stay_on_one_line() {
        let value = format!(
            "{DISPOSITION_MODE}; processed/Error: 904^L'INS transmis ne correspond pas exactement a celui stocke dans la base du consommateur"
        );
        let mut out = String::new();
        push_field(&mut out, "Disposition", &value);
        assert_eq!(out, format!("Disposition: {value}\r\n"));
    }

    #[test]
    fn plain_addresses() {
        assert!(is_plain_address("dpi@hopital.test"));
        assert!(is_plain_address("service.y_auto+x@chb.mssante.fr"));
        for bad in [
            "",
            "a",
            "@b.fr",
            "a@",
            "a b@c.fr",
            "a@b..fr",
            "a@b.fr>",
            "<a@b.fr>",
            "a@b.fr\r\nRCPT TO:<x@y.fr>",
            "é@b.fr",
            "\"a\"@b.fr",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            addresses_in("\"Dupont, Jean\" <j@x.fr>, k@y.fr"),
            vec!["j@x.fr", "k@y.fr"]
        );
        assert_eq!(addresses_in("<>"), Vec::<String>::new());
        assert_eq!(
            addresses_in("=?utf-8?Q?M=C3=A9d?= <m@x.fr>"),
            vec!["m@x.fr"]
        );
    }

    #[test]
    fn codes_and_labels() {
        assert_eq!(ans_error_label("902"), Some("Identifiant patient inconnu"));
        assert_eq!(ans_error_label("907"), None);
        assert!(check_code("902").is_ok());
        assert!(check_code("AE-1.x").is_ok());
        for bad in ["", "9 02", "902^x", "90\r\n2", "12345678901234567"] {
            assert_eq!(
                check_code(bad).unwrap_err().code(),
                codes::MDN_ERROR_CODE_INVALID
            );
        }
        assert_eq!(clean_label(" a\r\n\tb ").unwrap(), "a b");
        assert_eq!(
            clean_label("\r\n").unwrap_err(),
            MdnError::InvalidErrorLabel
        );
        assert_eq!(
            clean_label(&"x".repeat(500)).unwrap().len(),
            MAX_LABEL_CHARS
        );
    }
}
