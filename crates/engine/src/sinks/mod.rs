//! Where documents are filed. Each sink receives [`Filing`]s from the journal's outbox with a
//! stable idempotency key: delivering the same key twice must not file twice.

pub mod fhir;
pub mod folder;
pub mod mllp;

use serde::{Deserialize, Serialize};

/// What the pipeline hands a sink: the document and what is known about it.
/// Serialised as the delivery payload in the journal, so a crash loses nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Filing {
    /// Journal ids.
    pub message: i64,
    pub document: i64,
    /// The mail's Message-ID.
    pub mail_message_id: Option<String>,
    /// The source it came from.
    pub source: String,
    /// CDA id (root^extension), setId and version.
    pub cda_id: String,
    pub set_id: String,
    pub version: Option<i64>,
    /// Replaces this earlier document (CDA id) of the same set, if any.
    pub replaces: Option<String>,
    pub type_code: Option<String>,
    pub title: Option<String>,
    /// The patient's IPP in the hospital, when matched.
    pub patient_ipp: Option<String>,
    /// The INS kind and value from the document (the DPI files by them).
    pub ins_oid: Option<String>,
    pub ins: Option<String>,
    /// The CDA document, base64.
    pub cda_base64: String,
    /// The mail the document came in (the MDM's OBX 2): subject, text body, sender, recipients.
    #[serde(default)]
    pub mail: MailSummary,
}

/// The facts of the mail a document came in, kept for the sinks that pass them on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MailSummary {
    pub subject: String,
    pub body_text: String,
    pub sender: String,
    pub recipients: Vec<String>,
}

/// What a sink says about one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkResult {
    /// Filed (the detail is journaled).
    Delivered(String),
    /// Refused for good: a human must look (code and text are journaled).
    Rejected { code: String, text: String },
    /// Not now: try again later (the text is journaled).
    Retry(String),
}
