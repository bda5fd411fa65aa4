//! The journal's vocabulary: ids, states, requests, outcomes and records.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// A point in time: milliseconds since the Unix epoch, UTC (the journal's only time type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`] (times before 1970 are clamped to the epoch).
    pub fn from_system_time(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// This time minus a duration (saturating).
    pub fn minus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2025-03-01T08:15:00.250Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A message in the journal (database-assigned, increasing, never reused).
    MessageId
);
id_type!(
    /// A document registered in the journal.
    DocId
);
id_type!(
    /// A delivery in the sink outbox.
    DeliveryId
);
id_type!(
    /// An entry of the review queue.
    ReviewId
);

/// Where a message came from; also the first dedup key (a source never hands the same item twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceKey {
    /// An IMAP mailbox: (mailbox, UIDVALIDITY, UID) names one message forever (RFC 9051 §2.3.1.1).
    Imap {
        /// The mailbox name (e.g. the MSSanté BAL and folder).
        mailbox: String,
        /// The mailbox's UIDVALIDITY.
        uidvalidity: u32,
        /// The message UID.
        uid: u32,
    },
    /// A Maildir folder: file names are unique within a Maildir by construction.
    Maildir {
        /// The Maildir folder.
        folder: String,
        /// The unique part of the file name (without the `:2,` flags).
        name: String,
    },
    /// A watched folder: not a dedup key (a new file may reuse the name of a processed one).
    Folder {
        /// The file path.
        path: String,
    },
}

impl SourceKey {
    /// "imap", "maildir" or "folder".
    pub fn kind(&self) -> &'static str {
        match self {
            SourceKey::Imap { .. } => "imap",
            SourceKey::Maildir { .. } => "maildir",
            SourceKey::Folder { .. } => "folder",
        }
    }
}

/// A raw mail to journal, as read from its source.
#[derive(Debug, Clone)]
pub struct IngestRequest<'a> {
    /// Where it came from.
    pub source: SourceKey,
    /// The raw RFC 5322 bytes, exactly as received.
    pub raw: &'a [u8],
    /// When the source received it.
    pub received_at: Timestamp,
    /// The Message-ID (without angle brackets), `None` if the mail has none. [`IngestRequest::new`]
    /// fills it from the header; set it yourself when a parser already has it.
    pub message_id: Option<String>,
}

impl<'a> IngestRequest<'a> {
    /// A request whose Message-ID is read from the raw header section ([`crate::message_id_of`]).
    pub fn new(source: SourceKey, raw: &'a [u8], received_at: Timestamp) -> Self {
        IngestRequest {
            source,
            raw,
            received_at,
            message_id: crate::mailhdr::message_id_of(raw),
        }
    }
}

/// Which dedup key recognised a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupBy {
    /// The source key: same IMAP (mailbox, UIDVALIDITY, UID) or same Maildir name.
    Source,
    /// Same Message-ID header and same SHA-256 of the raw bytes.
    MessageIdAndHash,
}

/// What [`crate::Journal::ingest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// A new message, durably journaled (blob fsynced, row committed): the source may acknowledge.
    New(MessageId),
    /// Already journaled: the source may acknowledge, nothing else to do.
    Duplicate {
        /// The message already in the journal.
        existing: MessageId,
        /// The key that matched.
        by: DedupBy,
    },
}

/// The state of a message in the inbound pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Journaled, raw bytes safe on disk.
    Received,
    /// MIME and packages read.
    Parsed,
    /// Documents validated (CI-SIS checks).
    Validated,
    /// Patient identified.
    Matched,
    /// Delivered to the sinks (terminal).
    Filed,
    /// Refused for good (quarantined); may be reprocessed by an operator.
    Rejected,
    /// Waiting for a human in the review queue.
    AwaitingReview,
}

impl MessageState {
    /// Every state, in pipeline order.
    pub const ALL: [MessageState; 7] = [
        MessageState::Received,
        MessageState::Parsed,
        MessageState::Validated,
        MessageState::Matched,
        MessageState::Filed,
        MessageState::Rejected,
        MessageState::AwaitingReview,
    ];

    /// The name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Received => "received",
            MessageState::Parsed => "parsed",
            MessageState::Validated => "validated",
            MessageState::Matched => "matched",
            MessageState::Filed => "filed",
            MessageState::Rejected => "rejected",
            MessageState::AwaitingReview => "awaiting_review",
        }
    }

    /// The state named `s` (as written by [`MessageState::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the state machine allows `self → to`.
    ///
    /// Forward one step at a time (received → parsed → validated → matched → filed); from any
    /// non-terminal state to rejected or awaiting_review; from awaiting_review to matched, filed
    /// or rejected (the reviewer's decision); and back to received from rejected or
    /// awaiting_review, which is an operator's "reprocess" (the event log says who). Filed is
    /// terminal: re-filing is a new delivery, not a state change.
    pub fn can_transition_to(self, to: MessageState) -> bool {
        use MessageState::*;
        matches!(
            (self, to),
            (Received, Parsed)
                | (Parsed, Validated)
                | (Validated, Matched)
                | (Matched, Filed)
                | (
                    Received | Parsed | Validated | Matched,
                    Rejected | AwaitingReview
                )
                | (AwaitingReview, Matched | Filed | Rejected | Received)
                | (Rejected, Received)
        )
    }

    /// Whether the message has an outcome its sender is told about (filed, rejected, waiting
    /// for review).
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            MessageState::Filed | MessageState::Rejected | MessageState::AwaitingReview
        )
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        Self::ALL.iter().all(|&to| !self.can_transition_to(to))
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event: the engine itself or a named user (console, CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// Relais itself.
    System,
    /// A person, by login name.
    User(String),
}

/// An error code and text attached to a message (its `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// A stable rule or error code (e.g. `MSS-NO-XDM`, `902`).
    pub code: String,
    /// Human text, without patient data.
    pub text: String,
}

/// Stable event kinds written by the store itself; callers may use their own kinds too.
pub mod event_kinds {
    /// The message was journaled.
    pub const RECEIVED: &str = "received";
    /// The same message came again and was recognised as a duplicate.
    pub const DUPLICATE_SEEN: &str = "duplicate_seen";
    /// A document of the message was registered.
    pub const DOCUMENT_REGISTERED: &str = "document_registered";
    /// A document's state, patient or validation changed.
    pub const DOCUMENT_UPDATED: &str = "document_updated";
    /// A delivery was put in the outbox.
    pub const DELIVERY_ENQUEUED: &str = "delivery_enqueued";
    /// A sink accepted a delivery.
    pub const DELIVERY_DELIVERED: &str = "delivery_delivered";
    /// A sink refused a delivery for good.
    pub const DELIVERY_REJECTED: &str = "delivery_rejected";
    /// A delivery failed and was rescheduled.
    pub const DELIVERY_RETRY: &str = "delivery_retry";
    /// A review was opened.
    pub const REVIEW_OPENED: &str = "review_opened";
    /// A review was resolved.
    pub const REVIEW_RESOLVED: &str = "review_resolved";
    /// The sender was answered (MDN or error report).
    pub const ANSWER_SENT: &str = "answer_sent";
    /// No answer goes to the sender (none asked, or none allowed), with the reason.
    pub const ANSWER_SKIPPED: &str = "answer_skipped";
    /// Answering failed for good.
    pub const ANSWER_FAILED: &str = "answer_failed";
    /// Answering failed for now; it is tried again.
    pub const ANSWER_RETRY: &str = "answer_retry";
}

/// What a successful delivery closed (see [`crate::Journal::complete_delivered`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed {
    /// The document is filed: every one of its deliveries is delivered.
    pub document_filed: bool,
    /// Its message is filed too: this is the message.
    pub message_filed: Option<MessageId>,
}

/// Where a message stands in answering its sender (see migration `0002_answers.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerState {
    /// The message has an outcome and the answer is still to be sent.
    Due,
    /// Answered.
    Sent,
    /// Nothing to send (no answer asked or allowed, or answers are disabled).
    Skipped,
    /// The answer could not be sent and will not be tried again.
    Failed,
}

impl AnswerState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerState::Due => "due",
            AnswerState::Sent => "sent",
            AnswerState::Skipped => "skipped",
            AnswerState::Failed => "failed",
        }
    }
}

/// An event to append to a message's audit trail (with a transition or on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened (e.g. "parsed", "validation_failed"; see [`event_kinds`]).
    pub kind: String,
    /// Structured detail: ids, codes, counts. Never patient data.
    pub detail: serde_json::Value,
    /// Who did it.
    pub actor: Actor,
    /// The error to record as the message's `last_error`; `None` clears it on a transition and
    /// leaves it unchanged on [`crate::Journal::record_event`].
    pub error: Option<ErrorInfo>,
}

impl Event {
    /// A system event with empty detail.
    pub fn system(kind: &str) -> Self {
        Event {
            kind: kind.to_owned(),
            detail: serde_json::Value::Object(Default::default()),
            actor: Actor::System,
            error: None,
        }
    }

    /// An event by a named user with empty detail.
    pub fn user(kind: &str, user: &str) -> Self {
        Event {
            actor: Actor::User(user.to_owned()),
            ..Event::system(kind)
        }
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// Sets the error recorded on the message.
    pub fn with_error(mut self, code: &str, text: &str) -> Self {
        self.error = Some(ErrorInfo {
            code: code.to_owned(),
            text: text.to_owned(),
        });
        self
    }
}

/// A message row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageRecord {
    /// Its id.
    pub id: MessageId,
    /// Its state.
    pub state: MessageState,
    /// Where it came from.
    pub source: SourceKey,
    /// Its Message-ID, if it has one.
    pub message_id: Option<String>,
    /// SHA-256 of the raw bytes (hex), the blob's name.
    pub sha256: String,
    /// Size of the raw bytes.
    pub size: u64,
    /// When the source received it.
    pub received_at: Timestamp,
    /// When it was journaled.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// The last error recorded.
    pub last_error: Option<ErrorInfo>,
}

/// An event of the audit trail, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Event id (increasing).
    pub id: i64,
    /// The message.
    pub message_id: MessageId,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: String,
    /// State before, for transitions and ingest.
    pub state_before: Option<MessageState>,
    /// State after, for transitions and ingest.
    pub state_after: Option<MessageState>,
    /// Structured detail.
    pub detail: serde_json::Value,
    /// Who.
    pub actor: Actor,
}

/// Selection for [`crate::Journal::list_messages`]; newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this state.
    pub state: Option<MessageState>,
    /// Received at or after.
    pub received_from: Option<Timestamp>,
    /// Received strictly before.
    pub received_until: Option<Timestamp>,
    /// Only ids below this one (paging: pass the last id of the previous page).
    pub before: Option<MessageId>,
    /// At most this many (capped at 10 000).
    pub limit: u32,
}

impl Default for MessageFilter {
    fn default() -> Self {
        MessageFilter {
            state: None,
            received_from: None,
            received_until: None,
            before: None,
            limit: 100,
        }
    }
}

/// The identity of a CDA document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentKey {
    /// `ClinicalDocument/id` as `root^extension` (or `root`).
    pub cda_id: String,
    /// `ClinicalDocument/setId` as `root^extension`.
    pub set_id: String,
    /// `ClinicalDocument/versionNumber`; absent counts as 1.
    pub version: Option<i64>,
}

/// The state of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// Known, not yet attached to a patient.
    Registered,
    /// Attached to a patient.
    Matched,
    /// Delivered.
    Filed,
    /// Refused.
    Rejected,
    /// Waiting in the review queue.
    AwaitingReview,
}

impl DocumentState {
    const ALL: [DocumentState; 5] = [
        DocumentState::Registered,
        DocumentState::Matched,
        DocumentState::Filed,
        DocumentState::Rejected,
        DocumentState::AwaitingReview,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Registered => "registered",
            DocumentState::Matched => "matched",
            DocumentState::Filed => "filed",
            DocumentState::Rejected => "rejected",
            DocumentState::AwaitingReview => "awaiting_review",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for DocumentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store keeps about a document besides its key.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentMeta {
    /// The LOINC type code.
    pub type_code: Option<String>,
    /// The IPP of the patient, when matched.
    pub patient_ipp: Option<String>,
    /// The validation report summary (opaque to the store).
    pub validation: Option<serde_json::Value>,
    /// The initial state.
    pub state: DocumentState,
}

impl Default for DocumentMeta {
    fn default() -> Self {
        DocumentMeta {
            type_code: None,
            patient_ipp: None,
            validation: None,
            state: DocumentState::Registered,
        }
    }
}

/// A change to a document (fields left `None` stay as they are).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentUpdate {
    /// New state.
    pub state: Option<DocumentState>,
    /// New patient IPP.
    pub patient_ipp: Option<String>,
    /// New validation summary.
    pub validation: Option<serde_json::Value>,
}

/// What [`crate::Journal::register_document`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentOutcome {
    /// First document of its set.
    New(DocId),
    /// The same CDA id was already registered (resent document): nothing stored.
    Duplicate(DocId),
    /// A higher version of a known set: stored, and the previous current version is superseded.
    NewVersion {
        /// The new document.
        doc: DocId,
        /// The version it replaces.
        replaces: DocId,
    },
    /// A version not higher than the current one of its set (late or conflicting): nothing
    /// stored; the caller decides (usually a review).
    OlderVersion {
        /// The current version of the set.
        current: DocId,
    },
}

/// One step of a message's processing, for [`crate::Journal::apply_steps`]: each is what the
/// journal method of the same name does, for the message the steps are applied to.
#[derive(Debug, Clone)]
pub enum JournalStep {
    /// [`crate::Journal::transition`].
    Transition {
        /// The state the message must be in.
        from: MessageState,
        /// The state it moves to.
        to: MessageState,
        /// The event appended.
        event: Event,
    },
    /// [`crate::Journal::record_event`].
    RecordEvent(Event),
    /// [`crate::Journal::register_document`] (the document is the message's).
    RegisterDocument {
        /// Its identity.
        key: DocumentKey,
        /// What is known of it.
        meta: DocumentMeta,
    },
    /// [`crate::Journal::update_document`].
    UpdateDocument {
        /// The document (of this message).
        doc: DocId,
        /// The change.
        update: DocumentUpdate,
    },
    /// [`crate::Journal::open_review`].
    OpenReview {
        /// The message, or one of its documents.
        subject: ReviewSubject,
        /// The reason's code.
        code: String,
        /// The reason, for the reviewer.
        text: String,
    },
    /// [`crate::Journal::enqueue_delivery`].
    EnqueueDelivery {
        /// The document (of this message).
        doc: DocId,
        /// The sink's name.
        sink: String,
        /// The key the sink deduplicates on.
        idempotency_key: String,
        /// What is delivered.
        payload: Vec<u8>,
        /// Deliveries with the same key go in order.
        ordering_key: String,
    },
}

/// What a [`JournalStep`] did, in the order of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// A transition or an event: done.
    Done,
    /// A document registered.
    Document(DocumentOutcome),
    /// A review opened (or the open one with the same reason).
    Review(ReviewId),
    /// A delivery enqueued (or the existing one with the same key).
    Delivery(DeliveryId),
}

/// A document row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentRecord {
    /// Its id.
    pub id: DocId,
    /// The message that carried it.
    pub message_id: MessageId,
    /// Its key.
    pub key: DocumentKey,
    /// LOINC type code.
    pub type_code: Option<String>,
    /// Patient IPP when matched.
    pub patient_ipp: Option<String>,
    /// Validation summary.
    pub validation: Option<serde_json::Value>,
    /// Its state.
    pub state: DocumentState,
    /// The version it replaced.
    pub replaces: Option<DocId>,
    /// The version that replaced it.
    pub superseded_by: Option<DocId>,
    /// When registered.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// The state of a delivery in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be claimed (possibly not before some time).
    Pending,
    /// Claimed by a worker under a lease.
    InFlight,
    /// Accepted by the sink (terminal).
    Delivered,
    /// Refused by the sink for good (terminal).
    Rejected,
}

impl DeliveryState {
    const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::InFlight,
        DeliveryState::Delivered,
        DeliveryState::Rejected,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Rejected => "rejected",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The document delivered.
    pub document_id: DocId,
    /// The sink's name.
    pub sink: String,
    /// The key the sink uses to recognise a retry (stable across crashes).
    pub idempotency_key: String,
    /// Deliveries sharing it are handed out in enqueue order (the patient).
    pub ordering_key: String,
    /// What to send.
    pub payload: Vec<u8>,
    /// Its state.
    pub state: DeliveryState,
    /// How many times it was claimed (the current claim included).
    pub attempts: u32,
    /// Not to be claimed before.
    pub not_before: Timestamp,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// Until when the worker holds it.
    pub lease_until: Option<Timestamp>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// The final outcome's code (rejected) or `None`.
    pub outcome_code: Option<String>,
    /// The final outcome's detail (delivered) or text (rejected).
    pub outcome_text: Option<String>,
    /// When enqueued.
    pub created_at: Timestamp,
    /// When completed.
    pub completed_at: Option<Timestamp>,
}

/// The final outcome of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink accepted it (e.g. an HL7 ACK AA, an HTTP 201).
    Delivered {
        /// What the sink answered (ids, ack code).
        detail: String,
    },
    /// The sink refused it for good (retrying would not help).
    Rejected {
        /// The sink's code.
        code: String,
        /// The sink's text.
        text: String,
    },
}

/// What a review is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewSubject {
    /// A whole message (e.g. no document could be read).
    Message(MessageId),
    /// One document of a message.
    Document(DocId),
}

/// The status of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for a human.
    Open,
    /// Resolved by filing to a patient.
    Filed,
    /// Resolved by refusing.
    Rejected,
}

impl ReviewStatus {
    const ALL: [ReviewStatus; 3] = [
        ReviewStatus::Open,
        ReviewStatus::Filed,
        ReviewStatus::Rejected,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Filed => "filed",
            ReviewStatus::Rejected => "rejected",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// File the document (or message) to this patient.
    FiledTo {
        /// The patient's IPP.
        ipp: String,
    },
    /// Refuse it.
    Rejected {
        /// Why (no patient data).
        note: String,
    },
}

/// An entry of the review queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Its id.
    pub id: ReviewId,
    /// The message concerned.
    pub message_id: MessageId,
    /// The document concerned, if the review is about one.
    pub document_id: Option<DocId>,
    /// Why it needs a human: MSSanté/CI-SIS codes 902..906 or a rule code.
    pub reason_code: String,
    /// Explanation.
    pub reason_text: String,
    /// Its status.
    pub status: ReviewStatus,
    /// IPP filed to, when filed.
    pub resolution_ipp: Option<String>,
    /// Note, when rejected.
    pub resolution_note: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<Timestamp>,
    /// When it was opened.
    pub created_at: Timestamp,
}

/// Selection for [`crate::Journal::list_reviews`]; oldest first (a queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only this status.
    pub status: Option<ReviewStatus>,
    /// Only this reason code.
    pub reason_code: Option<String>,
    /// At most this many (capped at 10 000).
    pub limit: u32,
}

impl Default for ReviewFilter {
    fn default() -> Self {
        ReviewFilter {
            status: Some(ReviewStatus::Open),
            reason_code: None,
            limit: 100,
        }
    }
}

/// An INS (Identifiant National de Santé): the OID of its kind (NIR, NIA...) and its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ins {
    /// The assigning authority OID (e.g. 1.2.250.1.213.1.4.8 for the NIR).
    pub oid: String,
    /// The matricule.
    pub value: String,
}

impl fmt::Debug for Ins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ins(<redacted>)")
    }
}

/// A patient of the index, fed by ADT; `Debug` redacts everything (patient data).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    /// The hospital's patient id (IPP).
    pub ipp: String,
    /// The INS, when known.
    pub ins: Option<Ins>,
    /// Nom de naissance.
    pub birth_family: Option<String>,
    /// Premier prénom de naissance.
    pub given_birth_first: Option<String>,
    /// Liste des prénoms de naissance.
    pub birth_given_names: Option<String>,
    /// Date de naissance as received (e.g. `YYYYMMDD`).
    pub birth_date: Option<String>,
    /// Sexe (e.g. M, F, U).
    pub sex: Option<String>,
    /// Code INSEE du lieu de naissance.
    pub birthplace_insee: Option<String>,
    /// Statut de l'identité (PAM-FR reliability: VIDE, PROV, VALI, QUAL, ...), as text.
    pub identity_status: Option<String>,
}

impl fmt::Debug for PatientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientRecord(<redacted>)")
    }
}

impl PatientRecord {
    /// A record with only the IPP set.
    pub fn new(ipp: &str) -> Self {
        PatientRecord {
            ipp: ipp.to_owned(),
            ins: None,
            birth_family: None,
            given_birth_first: None,
            birth_given_names: None,
            birth_date: None,
            sex: None,
            birthplace_insee: None,
            identity_status: None,
        }
    }
}

/// A patient found in the index; `Debug` redacts.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundPatient {
    /// The (surviving) patient.
    pub record: PatientRecord,
    /// The IPP that was looked up, when it was merged into `record.ipp`.
    pub merged_from: Option<String>,
}

impl fmt::Debug for FoundPatient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FoundPatient(<redacted>)")
    }
}

/// The result of a look-up by INS.
#[derive(Clone, PartialEq, Eq)]
pub enum InsMatch {
    /// No patient has this INS.
    None,
    /// Exactly one (surviving) patient has it.
    One(Box<FoundPatient>),
    /// Several surviving patients have it (a doublon awaiting a merge): a human must choose.
    Several(Vec<String>),
}

impl fmt::Debug for InsMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsMatch::None => f.write_str("InsMatch::None"),
            InsMatch::One(_) => f.write_str("InsMatch::One(<redacted>)"),
            InsMatch::Several(v) => write!(f, "InsMatch::Several({} patients)", v.len()),
        }
    }
}

/// Parses a stored enum name, or reports the row as corrupt.
pub(crate) fn parse_col<T>(
    parsed: Option<T>,
    table: &'static str,
    id: impl fmt::Display,
    column: &'static str,
) -> Result<T> {
    parsed.ok_or_else(|| StoreError::CorruptRow {
        table,
        id: id.to_string(),
        column,
    })
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    #[test]
    fn timestamps_print_as_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_700_000_000_123).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp(5).plus(std::time::Duration::from_secs(1)),
            Timestamp(1005)
        );
        assert_eq!(
            Timestamp(i64::MAX).plus(std::time::Duration::MAX),
            Timestamp(i64::MAX)
        );
    }
}
