//! The outbound journal: letters Relais sends over MSSanté, their recipients and their audit
//! trail, behind the [`Outbox`] trait (migration `0004_outbound.sql`).
//!
//! A DPI hands Relais a letter (a PDF and its metadata dropped in a watched folder, or an HL7
//! message); the engine checks it, resolves its recipients, builds the mail and journals it here
//! with [`Outbox::intake_letter`] *before* the drop is moved away, so a crash at any point loses
//! nothing. The same drop (same source key and same bytes) is journaled once.
//!
//! A letter then goes through a [`LetterState`] machine whose point is that **a letter is never
//! sent twice without the journal showing it**:
//!
//! ```text
//! intake ──▶ queued ──claim──▶ claimed ──▶ in_flight ──▶ sent
//!    │          ▲                 │            │  └────▶ failed
//!    │          └── retry ────────┴────────────┤ (known not sent: back to queued)
//!    └──▶ failed (refused at intake)           └──▶ held_for_review (outcome unknown)
//! ```
//!
//! `claimed` means a worker took the letter and nothing has gone to the SMTP server yet: after a
//! crash it goes back to `queued`. `in_flight` is written (and committed) before the first byte
//! of the SMTP transaction: after a crash, the server may or may not have accepted the mail, so
//! the letter is **held for review** ([`Outbox::hold_letter`]) and only a person sends it again
//! ([`Outbox::resolve_held`]).
//!
//! The mail is stored in the content-addressed blob store (verified on read), the recipients
//! with their delivery status (pending, sent, delayed, delivered, read, failed, with the remote
//! reason from the DSN or MDN, [`Outbox::record_report`]), and a letter is found again by the
//! `Message-ID` a DSN or MDN quotes ([`Outbox::find_letter_by_message_id`]). Events are
//! append-only (the database refuses to change them). Logs carry ids, states and codes only.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::FromRow;
use sqlx::sqlite::SqliteConnection;
use tracing::{debug, info};

use crate::blob::sha256_hex;
use crate::error::{Result, StoreError};
use crate::model::{Actor, ErrorInfo, MessageId, Timestamp, parse_col};
use crate::sqlite::SqliteJournal;

/// Longest key, address, worker name or code accepted.
const MAX_KEY_LEN: usize = 1024;
/// Most rows a list query returns.
const MAX_LIST: u32 = 10_000;

/// A letter of the outbound journal (database-assigned, increasing, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LetterId(pub i64);

impl fmt::Display for LetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a letter stands (see the module documentation for the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterState {
    /// Built and journaled, waiting to be sent (possibly not before a retry time).
    Queued,
    /// Taken by a worker; nothing sent yet.
    Claimed,
    /// The SMTP transaction may be under way: the outcome is unknown until recorded.
    InFlight,
    /// The submission server accepted the mail (per-recipient delivery is tracked apart).
    Sent,
    /// Refused at intake, or refused for good by the server.
    Failed,
    /// The outcome of a send is unknown (a crash while in flight): a person decides.
    HeldForReview,
}

impl LetterState {
    /// Every state, in the order of a letter's life.
    pub const ALL: [LetterState; 6] = [
        LetterState::Queued,
        LetterState::Claimed,
        LetterState::InFlight,
        LetterState::Sent,
        LetterState::Failed,
        LetterState::HeldForReview,
    ];

    /// The name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterState::Queued => "queued",
            LetterState::Claimed => "claimed",
            LetterState::InFlight => "in_flight",
            LetterState::Sent => "sent",
            LetterState::Failed => "failed",
            LetterState::HeldForReview => "held_for_review",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the machine allows `self → to`.
    pub fn can_transition_to(self, to: LetterState) -> bool {
        use LetterState::*;
        matches!(
            (self, to),
            (Queued, Claimed | Failed)
                | (Claimed, InFlight | Queued | Failed | Claimed)
                | (InFlight, Sent | Failed | Queued | HeldForReview)
                | (HeldForReview, Queued | Sent | Failed)
        )
    }

    /// Sent or failed: nothing more happens to the letter itself.
    pub fn is_final(self) -> bool {
        matches!(self, LetterState::Sent | LetterState::Failed)
    }
}

impl fmt::Display for LetterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a letter reached Relais.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterSourceKind {
    /// A PDF and its metadata file in a watched folder.
    Folder,
    /// An HL7v2 message over MLLP.
    Mllp,
}

impl LetterSourceKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterSourceKind::Folder => "folder",
            LetterSourceKind::Mllp => "mllp",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "folder" => Some(LetterSourceKind::Folder),
            "mllp" => Some(LetterSourceKind::Mllp),
            _ => None,
        }
    }
}

/// The dedup key of a letter: the same source key with the same bytes is the same drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterSource {
    /// Folder or MLLP.
    pub kind: LetterSourceKind,
    /// The metadata file's path (folder), or the sending application and control id (MLLP).
    pub key: String,
    /// SHA-256 (hex) of what was handed over (e.g. the PDF and the metadata file together).
    pub sha256: String,
}

/// How a recipient's address was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedBy {
    /// Given in the intake.
    Intake,
    /// Resolved from the RPPS through the Annuaire.
    Annuaire,
    /// Could not be resolved (the letter is failed).
    Unresolved,
}

impl ResolvedBy {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ResolvedBy::Intake => "intake",
            ResolvedBy::Annuaire => "annuaire",
            ResolvedBy::Unresolved => "unresolved",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "intake" => Some(ResolvedBy::Intake),
            "annuaire" => Some(ResolvedBy::Annuaire),
            "unresolved" => Some(ResolvedBy::Unresolved),
            _ => None,
        }
    }
}

/// What the mail system said last of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    /// Not sent yet.
    Pending,
    /// Accepted by the submission server; no news since.
    Sent,
    /// A DSN said delivery is delayed (the server keeps trying).
    Delayed,
    /// A DSN said it was delivered (or relayed to a system that sends no DSN).
    Delivered,
    /// An MDN said it was processed (integrated) or displayed.
    Read,
    /// Refused by the server, a failure DSN, or an MDN reporting an error.
    Failed,
}

impl RecipientStatus {
    /// Every status.
    pub const ALL: [RecipientStatus; 6] = [
        RecipientStatus::Pending,
        RecipientStatus::Sent,
        RecipientStatus::Delayed,
        RecipientStatus::Delivered,
        RecipientStatus::Read,
        RecipientStatus::Failed,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Delayed => "delayed",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Read => "read",
            RecipientStatus::Failed => "failed",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// How far along a status is: a report never moves a recipient back (a late "delayed" DSN
    /// after the MDN leaves it read). Read and failed are both final news.
    fn rank(self) -> u8 {
        match self {
            RecipientStatus::Pending => 0,
            RecipientStatus::Sent => 1,
            RecipientStatus::Delayed => 2,
            RecipientStatus::Delivered => 3,
            RecipientStatus::Read | RecipientStatus::Failed => 4,
        }
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recipient as the intake resolved it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRecipient {
    /// The MSSanté address, when known.
    pub address: Option<String>,
    /// The RPPS, when given.
    pub rpps: Option<String>,
    /// How the address was found.
    pub resolved_by: ResolvedBy,
}

impl fmt::Debug for NewRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRecipient")
            .field("domain", &self.address.as_deref().map(domain_part))
            .field("resolved_by", &self.resolved_by)
            .finish_non_exhaustive()
    }
}

/// The mail built for a letter.
#[derive(Clone, PartialEq, Eq)]
pub struct LetterMail {
    /// `Message-ID` without angle brackets.
    pub message_id: String,
    /// The DSN `ENVID`.
    pub envelope_id: String,
    /// SMTP `MAIL FROM`: the sending mailbox.
    pub envelope_from: String,
    /// The RFC 5322 bytes.
    pub raw: Vec<u8>,
}

impl fmt::Debug for LetterMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LetterMail")
            .field("message_id", &self.message_id)
            .field("envelope_id", &self.envelope_id)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// What a letter's intake gave: the mail to send, or why it cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LetterBody {
    /// Built: the letter is queued.
    Built(LetterMail),
    /// Refused (intake error, recipient not allowed, too large...): the letter is failed with
    /// this code and text (no patient data in the text).
    Refused(ErrorInfo),
}

/// A letter handed to [`Outbox::intake_letter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterRequest {
    /// Where it came from (the dedup key).
    pub source: LetterSource,
    /// Document type code (LOINC), when known.
    pub document_type: Option<String>,
    /// CDA document id (`root^extension`), when built.
    pub cda_id: Option<String>,
    /// CDA level (1 or 3), when built.
    pub cda_level: Option<i64>,
    /// Recipients in the intake's order.
    pub recipients: Vec<NewRecipient>,
    /// The mail, or the refusal.
    pub body: LetterBody,
    /// Extra detail for the intake event (codes, counts, file names of the DPI; no patient data).
    pub detail: serde_json::Value,
}

/// What [`Outbox::intake_letter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LetterIntake {
    /// A new letter, `queued` or `failed`.
    New {
        /// Its id.
        id: LetterId,
        /// `queued` (built) or `failed` (refused).
        state: LetterState,
    },
    /// The same drop was journaled before: nothing new (a `duplicate_seen` event is appended).
    Duplicate {
        /// The letter journaled first.
        existing: LetterId,
        /// Its state now.
        state: LetterState,
    },
}

/// A letter row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterRecord {
    /// Its id.
    pub id: LetterId,
    /// Its state.
    pub state: LetterState,
    /// Where it came from.
    pub source: LetterSource,
    /// Document type code.
    pub document_type: Option<String>,
    /// CDA id.
    pub cda_id: Option<String>,
    /// CDA level.
    pub cda_level: Option<i64>,
    /// The mail's `Message-ID`.
    pub message_id: Option<String>,
    /// The DSN envelope id.
    pub envelope_id: Option<String>,
    /// The sending mailbox.
    pub envelope_from: Option<String>,
    /// SHA-256 of the mail in the blob store.
    pub mail_sha256: Option<String>,
    /// Size of the mail.
    pub mail_size: Option<u64>,
    /// Claims so far.
    pub attempts: u32,
    /// Not to be claimed before.
    pub not_before: Timestamp,
    /// The worker holding it (claimed, in flight).
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_until: Option<Timestamp>,
    /// The last error (code and text).
    pub last_error: Option<ErrorInfo>,
    /// The submission server's final reply.
    pub smtp_reply: Option<String>,
    /// When journaled.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When the server accepted it.
    pub sent_at: Option<Timestamp>,
}

/// A recipient row; `Debug` shows the domain only (a patient address holds the INS).
#[derive(Clone, PartialEq, Eq)]
pub struct LetterRecipient {
    /// The letter.
    pub letter_id: LetterId,
    /// Position in the intake.
    pub position: u32,
    /// The MSSanté address.
    pub address: Option<String>,
    /// The RPPS given.
    pub rpps: Option<String>,
    /// How the address was found.
    pub resolved_by: ResolvedBy,
    /// What the mail system said last.
    pub status: RecipientStatus,
    /// The remote status: DSN status code (`2.0.0`, `5.1.1`), MDN disposition, SMTP reply code.
    pub remote_status: Option<String>,
    /// The remote reason (DSN diagnostic, MDN disposition, SMTP reply text).
    pub reason: Option<String>,
    /// Last change.
    pub updated_at: Timestamp,
}

impl fmt::Debug for LetterRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LetterRecipient")
            .field("letter_id", &self.letter_id)
            .field("position", &self.position)
            .field("domain", &self.address.as_deref().map(domain_part))
            .field("status", &self.status)
            .field("remote_status", &self.remote_status)
            .finish_non_exhaustive()
    }
}

/// One event of a letter's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct LetterEvent {
    /// Event id (increasing).
    pub id: i64,
    /// The letter.
    pub letter_id: LetterId,
    /// When.
    pub at: Timestamp,
    /// What happened (`intake_accepted`, `claimed`, `sending`, `sent`, `dsn`, `mdn`...).
    pub kind: String,
    /// State before, for transitions.
    pub state_before: Option<LetterState>,
    /// State after, for transitions.
    pub state_after: Option<LetterState>,
    /// Ids, codes, counts.
    pub detail: serde_json::Value,
    /// Who.
    pub actor: Actor,
}

/// Selection for [`Outbox::list_letters`], newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterFilter {
    /// Only this state.
    pub state: Option<LetterState>,
    /// Only letters with a smaller id (paging).
    pub before: Option<LetterId>,
    /// At most this many (capped at 10 000).
    pub limit: u32,
}

impl Default for LetterFilter {
    fn default() -> Self {
        LetterFilter {
            state: None,
            before: None,
            limit: 100,
        }
    }
}

/// The result of a state change asked with the state the caller expects.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Done, committed.
    Done,
    /// The letter was not in the expected state (or not held by this worker): nothing changed.
    /// Another worker, a recovery or an operator moved it first.
    Stale {
        /// The state found.
        actual: LetterState,
    },
}

impl Moved {
    /// True for [`Moved::Done`].
    pub fn is_done(self) -> bool {
        self == Moved::Done
    }
}

/// What the submission server said of a sent letter.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SendResult {
    /// Recipients it accepted.
    pub accepted: Vec<String>,
    /// Recipients it refused, with its reply (code and text).
    pub refused: Vec<(String, String)>,
    /// Its final reply (with its queue id).
    pub reply: String,
}

impl fmt::Debug for SendResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendResult")
            .field("accepted", &self.accepted.len())
            .field("refused", &self.refused.len())
            .field("reply", &self.reply)
            .finish()
    }
}

/// A delivery or disposition report (DSN, MDN) received for a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Delivery status notification (RFC 3464).
    Dsn,
    /// Message disposition notification (RFC 8098), the ANS « accusé de traitement ».
    Mdn,
}

impl ReportKind {
    /// The event kind written for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Dsn => "dsn",
            ReportKind::Mdn => "mdn",
        }
    }
}

/// What a report says of one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The recipient's address as the report names it (Original-Recipient or Final-Recipient).
    pub address: String,
    /// The new status.
    pub status: RecipientStatus,
    /// DSN `Status` (`2.0.0`, `5.1.1`...) or the MDN disposition type and error code.
    pub remote_status: Option<String>,
    /// DSN `Diagnostic-Code`, or the MDN disposition with its error label.
    pub reason: Option<String>,
}

impl fmt::Debug for RecipientReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientReport")
            .field("domain", &domain_part(&self.address))
            .field("status", &self.status)
            .field("remote_status", &self.remote_status)
            .finish_non_exhaustive()
    }
}

/// A report matched to a letter, for [`Outbox::record_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedReport {
    /// DSN or MDN.
    pub kind: ReportKind,
    /// The inbound message that carried it, when it came through the inbound journal.
    pub inbound_message: Option<MessageId>,
    /// What it says, per recipient.
    pub recipients: Vec<RecipientReport>,
}

/// What [`Outbox::record_report`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackOutcome {
    /// Recipients whose status changed.
    pub updated: usize,
    /// Recipients the report names that the letter does not have.
    pub unmatched: usize,
}

/// A person's decision on a letter held for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldDecision {
    /// The mail did not go out: queue it again (it will be sent with the same Message-ID).
    Requeue,
    /// The mail did go out (e.g. the recipient has it): record it as sent.
    MarkSent,
    /// Give up: record it as failed, with a note (no patient data).
    Fail {
        /// Why.
        note: String,
    },
}

/// Stable event kinds written by the outbound journal itself.
pub mod letter_event_kinds {
    /// A letter was journaled and queued.
    pub const INTAKE_ACCEPTED: &str = "intake_accepted";
    /// A letter was journaled as refused.
    pub const INTAKE_REFUSED: &str = "intake_refused";
    /// The same drop came again.
    pub const DUPLICATE_SEEN: &str = "duplicate_seen";
    /// A worker took the letter.
    pub const CLAIMED: &str = "claimed";
    /// The SMTP transaction starts.
    pub const SENDING: &str = "sending";
    /// The server accepted the mail.
    pub const SENT: &str = "sent";
    /// The letter failed for good.
    pub const FAILED: &str = "failed";
    /// The letter goes back to the queue (known not sent).
    pub const RETRY: &str = "retry";
    /// The outcome of a send is unknown.
    pub const HELD_FOR_REVIEW: &str = "held_for_review";
    /// A person decided on a held letter.
    pub const RESOLVED: &str = "resolved";
}

/// The outbound journal, beside the inbound [`crate::Journal`] on the same database.
///
/// Every method is one transaction; state changes take the state the caller expects and answer
/// [`Moved::Stale`] (changing nothing) when the letter is elsewhere. Used as
/// `Arc<dyn Outbox>`.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Journals a letter: the mail blob is fsynced first, then the row, its recipients and its
    /// `intake_accepted` (queued) or `intake_refused` (failed) event are committed. The same
    /// source (kind, key, SHA-256) is journaled once: a second time appends `duplicate_seen`
    /// and answers [`LetterIntake::Duplicate`]. Only after `Ok` may the drop be moved away.
    async fn intake_letter(&self, req: LetterRequest) -> Result<LetterIntake>;

    /// The letter, if any.
    async fn get_letter(&self, id: LetterId) -> Result<Option<LetterRecord>>;

    /// Letters matching `filter`, newest first.
    async fn list_letters(&self, filter: &LetterFilter) -> Result<Vec<LetterRecord>>;

    /// The audit trail of a letter, oldest first.
    async fn letter_events(&self, id: LetterId) -> Result<Vec<LetterEvent>>;

    /// The recipients of a letter, in the intake's order.
    async fn letter_recipients(&self, id: LetterId) -> Result<Vec<LetterRecipient>>;

    /// The mail of a letter, verified against its SHA-256.
    async fn read_letter_mail(&self, id: LetterId) -> Result<Vec<u8>>;

    /// The letter whose mail has this `Message-ID` (with or without angle brackets).
    async fn find_letter_by_message_id(&self, message_id: &str) -> Result<Option<LetterId>>;

    /// The letter sent with this DSN envelope id.
    async fn find_letter_by_envelope_id(&self, envelope_id: &str) -> Result<Option<LetterId>>;

    /// The letter journaled from exactly this source (kind, key and SHA-256), if any.
    async fn find_letter_by_source(&self, source: &LetterSource) -> Result<Option<LetterId>>;

    /// Takes the oldest letter that is due (queued with `not_before` reached, or claimed under
    /// an expired lease: nothing was sent) for `worker` for `lease`. Each claim counts as an
    /// attempt.
    async fn claim_letter(&self, worker: &str, lease: Duration) -> Result<Option<LetterRecord>>;

    /// `claimed` (by `worker`) → `in_flight`, committed before the SMTP transaction starts.
    async fn start_sending(&self, id: LetterId, worker: &str, lease: Duration) -> Result<Moved>;

    /// `in_flight` → `sent`, with the server's verdict per recipient.
    async fn letter_sent(&self, id: LetterId, result: &SendResult) -> Result<Moved>;

    /// `from` (claimed, in flight or held) → `failed`; recipients not sent yet are failed too.
    async fn letter_failed(
        &self,
        id: LetterId,
        from: LetterState,
        error: &ErrorInfo,
    ) -> Result<Moved>;

    /// `from` (claimed, or in flight when the mail certainly did not reach the server) →
    /// `queued`, not to be claimed before `not_before`.
    async fn retry_letter(
        &self,
        id: LetterId,
        from: LetterState,
        not_before: Timestamp,
        error: &ErrorInfo,
    ) -> Result<Moved>;

    /// `in_flight` → `held_for_review`: the outcome of the send is unknown.
    async fn hold_letter(&self, id: LetterId, reason: &ErrorInfo) -> Result<Moved>;

    /// Letters claimed or in flight (for the recovery after a crash), oldest first.
    async fn unfinished_letters(&self) -> Result<Vec<LetterRecord>>;

    /// A person's decision on a letter held for review, recorded with their name.
    async fn resolve_held(
        &self,
        id: LetterId,
        decision: &HeldDecision,
        actor: &str,
    ) -> Result<Moved>;

    /// Records a DSN or MDN for a letter: each recipient it names moves to its new status
    /// (never backwards), with one `dsn` or `mdn` event.
    async fn record_report(&self, id: LetterId, report: &TrackedReport) -> Result<TrackOutcome>;

    /// How many letters are in each state (every state listed).
    async fn letter_counts_by_state(&self) -> Result<Vec<(LetterState, u64)>>;
}

// --- Helpers ---------------------------------------------------------------------------------

fn domain_part(address: &str) -> &str {
    address.rsplit('@').next().unwrap_or_default()
}

fn check_key(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    Ok(())
}

fn unknown(id: LetterId) -> StoreError {
    crate::rows::unknown("letter", id)
}

fn strip_angles(message_id: &str) -> &str {
    let t = message_id.trim();
    t.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(t)
}

fn task_err(op: &'static str, e: tokio::task::JoinError) -> StoreError {
    StoreError::BlobIo {
        op,
        path: std::path::PathBuf::from(crate::sqlite::BLOB_DIR),
        source: std::io::Error::other(e),
    }
}

#[derive(FromRow)]
struct LetterRow {
    id: i64,
    state: String,
    source_kind: String,
    source_key: String,
    source_sha256: String,
    document_type: Option<String>,
    cda_id: Option<String>,
    cda_level: Option<i64>,
    message_id: Option<String>,
    envelope_id: Option<String>,
    envelope_from: Option<String>,
    mail_sha256: Option<String>,
    mail_size: Option<i64>,
    attempts: i64,
    not_before: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error_code: Option<String>,
    last_error_text: Option<String>,
    smtp_reply: Option<String>,
    created_at: i64,
    updated_at: i64,
    sent_at: Option<i64>,
}

impl LetterRow {
    fn into_record(self) -> Result<LetterRecord> {
        const T: &str = "letters";
        let id = self.id;
        Ok(LetterRecord {
            id: LetterId(id),
            state: parse_col(LetterState::parse(&self.state), T, id, "state")?,
            source: LetterSource {
                kind: parse_col(
                    LetterSourceKind::parse(&self.source_kind),
                    T,
                    id,
                    "source_kind",
                )?,
                key: self.source_key,
                sha256: self.source_sha256,
            },
            document_type: self.document_type,
            cda_id: self.cda_id,
            cda_level: self.cda_level,
            message_id: self.message_id,
            envelope_id: self.envelope_id,
            envelope_from: self.envelope_from,
            mail_sha256: self.mail_sha256,
            mail_size: self
                .mail_size
                .map(|s| parse_col(u64::try_from(s).ok(), T, id, "mail_size"))
                .transpose()?,
            attempts: parse_col(u32::try_from(self.attempts).ok(), T, id, "attempts")?,
            not_before: Timestamp(self.not_before),
            lease_owner: self.lease_owner,
            lease_until: self.lease_until.map(Timestamp),
            last_error: self.last_error_code.map(|code| ErrorInfo {
                code,
                text: self.last_error_text.unwrap_or_default(),
            }),
            smtp_reply: self.smtp_reply,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            sent_at: self.sent_at.map(Timestamp),
        })
    }
}

#[derive(FromRow)]
struct RecipientRow {
    letter_id: i64,
    position: i64,
    address: Option<String>,
    rpps: Option<String>,
    resolved_by: String,
    status: String,
    remote_status: Option<String>,
    reason: Option<String>,
    updated_at: i64,
}

impl RecipientRow {
    fn into_record(self) -> Result<LetterRecipient> {
        const T: &str = "letter_recipients";
        let key = format!("{}/{}", self.letter_id, self.position);
        Ok(LetterRecipient {
            letter_id: LetterId(self.letter_id),
            position: parse_col(u32::try_from(self.position).ok(), T, &key, "position")?,
            address: self.address,
            rpps: self.rpps,
            resolved_by: parse_col(ResolvedBy::parse(&self.resolved_by), T, &key, "resolved_by")?,
            status: parse_col(RecipientStatus::parse(&self.status), T, &key, "status")?,
            remote_status: self.remote_status,
            reason: self.reason,
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(FromRow)]
struct EventRow {
    id: i64,
    letter_id: i64,
    at: i64,
    kind: String,
    state_before: Option<String>,
    state_after: Option<String>,
    detail: String,
    actor_kind: String,
    actor_name: Option<String>,
}

impl EventRow {
    fn into_record(self) -> Result<LetterEvent> {
        const T: &str = "letter_events";
        let id = self.id;
        let state = |s: Option<String>, column| {
            s.map(|s| parse_col(LetterState::parse(&s), T, id, column))
                .transpose()
        };
        let actor = match (self.actor_kind.as_str(), self.actor_name) {
            ("system", _) => Actor::System,
            ("user", Some(name)) => Actor::User(name),
            _ => return parse_col(None, T, id, "actor_kind"),
        };
        Ok(LetterEvent {
            id,
            letter_id: LetterId(self.letter_id),
            at: Timestamp(self.at),
            kind: self.kind,
            state_before: state(self.state_before, "state_before")?,
            state_after: state(self.state_after, "state_after")?,
            detail: parse_col(serde_json::from_str(&self.detail).ok(), T, id, "detail")?,
            actor,
        })
    }
}

/// Appends a letter event (the only statement that ever touches `letter_events`).
#[allow(clippy::too_many_arguments)]
async fn append(
    conn: &mut SqliteConnection,
    id: LetterId,
    at: Timestamp,
    kind: &str,
    before: Option<LetterState>,
    after: Option<LetterState>,
    detail: &serde_json::Value,
    actor: &Actor,
) -> Result<()> {
    let (actor_kind, actor_name) = match actor {
        Actor::System => ("system", None),
        Actor::User(name) => {
            check_key("an actor name", name)?;
            ("user", Some(name.as_str()))
        }
    };
    sqlx::query(
        "INSERT INTO letter_events (letter_id, at, kind, state_before, state_after, detail, actor_kind, actor_name)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.0)
    .bind(at.0)
    .bind(kind)
    .bind(before.map(LetterState::as_str))
    .bind(after.map(LetterState::as_str))
    .bind(detail.to_string())
    .bind(actor_kind)
    .bind(actor_name)
    .execute(conn)
    .await?;
    Ok(())
}

async fn state_of(conn: &mut SqliteConnection, id: LetterId) -> Result<LetterState> {
    let s: Option<String> = sqlx::query_scalar("SELECT state FROM letters WHERE id = ?")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    let s = s.ok_or_else(|| unknown(id))?;
    parse_col(LetterState::parse(&s), "letters", id.0, "state")
}

/// One state change: what else changes with it.
struct Change<'a> {
    to: LetterState,
    kind: &'a str,
    detail: serde_json::Value,
    actor: Actor,
    /// `Some(Some(e))` records the error, `Some(None)` clears it, `None` keeps it.
    error: Option<Option<&'a ErrorInfo>>,
    /// The lease to hold (claimed, in flight); cleared otherwise.
    lease: Option<(&'a str, Timestamp)>,
    not_before: Option<Timestamp>,
    smtp_reply: Option<&'a str>,
    sent: bool,
    /// Only when the letter is held by this worker.
    owner: Option<&'a str>,
}

impl<'a> Change<'a> {
    fn new(to: LetterState, kind: &'a str) -> Self {
        Change {
            to,
            kind,
            detail: json!({}),
            actor: Actor::System,
            error: None,
            lease: None,
            not_before: None,
            smtp_reply: None,
            sent: false,
            owner: None,
        }
    }
}

/// Moves `id` from `from` per `change`, inside `tx`; answers `Stale` when it is not there.
async fn move_in(
    tx: &mut SqliteConnection,
    id: LetterId,
    from: LetterState,
    change: &Change<'_>,
) -> Result<Moved> {
    if !from.can_transition_to(change.to) {
        return Err(StoreError::InvalidInput(format!(
            "a letter cannot go from {from} to {}",
            change.to
        )));
    }
    let now = Timestamp::now();
    let (set_error, code, text) = match change.error {
        Some(Some(e)) => (true, Some(e.code.as_str()), Some(e.text.as_str())),
        Some(None) => (true, None, None),
        None => (false, None, None),
    };
    let done = sqlx::query(
        "UPDATE letters SET state = ?1, updated_at = ?2,
                lease_owner = ?3, lease_until = ?4,
                not_before = COALESCE(?5, not_before),
                last_error_code = CASE WHEN ?6 THEN ?7 ELSE last_error_code END,
                last_error_text = CASE WHEN ?6 THEN ?8 ELSE last_error_text END,
                smtp_reply = COALESCE(?9, smtp_reply),
                sent_at = CASE WHEN ?10 THEN ?2 ELSE sent_at END
         WHERE id = ?11 AND state = ?12 AND (?13 IS NULL OR lease_owner = ?13)",
    )
    .bind(change.to.as_str())
    .bind(now.0)
    .bind(change.lease.map(|(w, _)| w))
    .bind(change.lease.map(|(_, t)| t.0))
    .bind(change.not_before.map(|t| t.0))
    .bind(set_error)
    .bind(code)
    .bind(text)
    .bind(change.smtp_reply)
    .bind(change.sent)
    .bind(id.0)
    .bind(from.as_str())
    .bind(change.owner)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        let actual = state_of(tx, id).await?;
        debug!(letter = id.0, %from, %actual, "stale letter transition refused");
        return Ok(Moved::Stale { actual });
    }
    let mut detail = change.detail.clone();
    if let (Some(e), serde_json::Value::Object(map)) = (change.error.flatten(), &mut detail) {
        map.insert("code".into(), json!(e.code));
    }
    append(
        tx,
        id,
        now,
        change.kind,
        Some(from),
        Some(change.to),
        &detail,
        &change.actor,
    )
    .await?;
    Ok(Moved::Done)
}

impl SqliteJournal {
    async fn move_letter(
        &self,
        id: LetterId,
        from: LetterState,
        change: Change<'_>,
    ) -> Result<Moved> {
        let mut tx = self.begin_write().await?;
        let moved = move_in(&mut tx, id, from, &change).await?;
        tx.commit().await?;
        if moved.is_done() {
            debug!(letter = id.0, %from, to = %change.to, "letter moved");
        }
        Ok(moved)
    }

    /// Sets the status of the recipients still in one of `only` (all when empty).
    async fn set_recipients(
        tx: &mut SqliteConnection,
        id: LetterId,
        only: &[RecipientStatus],
        status: RecipientStatus,
        remote_status: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let now = Timestamp::now();
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT position, status FROM letter_recipients WHERE letter_id = ?")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
        for (position, current) in rows {
            let current = RecipientStatus::parse(&current);
            if !only.is_empty() && !current.is_some_and(|c| only.contains(&c)) {
                continue;
            }
            sqlx::query(
                "UPDATE letter_recipients SET status = ?, remote_status = COALESCE(?, remote_status),
                        reason = COALESCE(?, reason), updated_at = ?
                 WHERE letter_id = ? AND position = ?",
            )
            .bind(status.as_str())
            .bind(remote_status)
            .bind(reason)
            .bind(now.0)
            .bind(id.0)
            .bind(position)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for SqliteJournal {
    async fn intake_letter(&self, req: LetterRequest) -> Result<LetterIntake> {
        check_key("a letter source key", &req.source.key)?;
        if req.source.sha256.len() != 64 {
            return Err(StoreError::InvalidInput(
                "a letter source SHA-256 must be 64 hex digits".into(),
            ));
        }
        for r in &req.recipients {
            if let Some(a) = &r.address {
                check_key("a recipient address", a)?;
            }
        }
        let find = "SELECT id, state FROM letters
                    WHERE source_kind = ? AND source_key = ? AND source_sha256 = ?";
        let seen: Option<(i64, String)> = sqlx::query_as(find)
            .bind(req.source.kind.as_str())
            .bind(&req.source.key)
            .bind(&req.source.sha256)
            .fetch_optional(&self.reader)
            .await?;
        // The blob first (fsynced), then the row that references it.
        let mut mail_ref = None;
        if seen.is_none()
            && let LetterBody::Built(mail) = &req.body
        {
            check_key("a Message-ID", &mail.message_id)?;
            check_key("an envelope id", &mail.envelope_id)?;
            check_key("a sending address", &mail.envelope_from)?;
            let blobs = self.blobs.clone();
            let raw = mail.raw.clone();
            let blob = tokio::task::spawn_blocking(move || blobs.put(&raw))
                .await
                .map_err(|e| task_err("write the letter's mail", e))??;
            mail_ref = Some(blob);
        }
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let existing: Option<(i64, String)> = sqlx::query_as(find)
            .bind(req.source.kind.as_str())
            .bind(&req.source.key)
            .bind(&req.source.sha256)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((id, state)) = existing {
            let id = LetterId(id);
            let state = parse_col(LetterState::parse(&state), "letters", id.0, "state")?;
            append(
                &mut tx,
                id,
                now,
                letter_event_kinds::DUPLICATE_SEEN,
                None,
                None,
                &json!({ "source": req.source.kind.as_str() }),
                &Actor::System,
            )
            .await?;
            tx.commit().await?;
            debug!(letter = id.0, "the same drop again: already journaled");
            return Ok(LetterIntake::Duplicate {
                existing: id,
                state,
            });
        }
        let (state, mail, error) = match &req.body {
            LetterBody::Built(m) => (LetterState::Queued, Some(m), None),
            LetterBody::Refused(e) => (LetterState::Failed, None, Some(e)),
        };
        if state == LetterState::Queued && mail_ref.is_none() {
            // Seen as a duplicate a moment ago and no longer one: letters are never deleted,
            // so this cannot happen; never commit a row without its blob.
            return Err(StoreError::InvalidInput(
                "the letter's mail was not stored; try again".into(),
            ));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO letters (state, source_kind, source_key, source_sha256, document_type,
                cda_id, cda_level, message_id, envelope_id, envelope_from, mail_sha256, mail_size,
                not_before, last_error_code, last_error_text, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(state.as_str())
        .bind(req.source.kind.as_str())
        .bind(&req.source.key)
        .bind(&req.source.sha256)
        .bind(&req.document_type)
        .bind(&req.cda_id)
        .bind(req.cda_level)
        .bind(mail.map(|m| strip_angles(&m.message_id)))
        .bind(mail.map(|m| m.envelope_id.as_str()))
        .bind(mail.map(|m| m.envelope_from.as_str()))
        .bind(mail_ref.as_ref().map(|b| b.sha256.as_str()))
        .bind(mail_ref.as_ref().map(|b| b.size as i64))
        .bind(now.0)
        .bind(error.map(|e| e.code.as_str()))
        .bind(error.map(|e| e.text.as_str()))
        .bind(now.0)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?;
        let id = LetterId(id);
        let recipient_status = if state == LetterState::Failed {
            RecipientStatus::Failed
        } else {
            RecipientStatus::Pending
        };
        for (position, r) in req.recipients.iter().enumerate() {
            sqlx::query(
                "INSERT INTO letter_recipients (letter_id, position, address, rpps, resolved_by,
                    status, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.0)
            .bind(position as i64)
            .bind(&r.address)
            .bind(&r.rpps)
            .bind(r.resolved_by.as_str())
            .bind(recipient_status.as_str())
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        }
        let mut detail = match &req.detail {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        detail.insert("source".into(), json!(req.source.kind.as_str()));
        detail.insert("recipients".into(), json!(req.recipients.len()));
        if let Some(m) = mail_ref.as_ref() {
            detail.insert("size".into(), json!(m.size));
        }
        if let Some(e) = error {
            detail.insert("code".into(), json!(e.code));
        }
        let kind = if state == LetterState::Queued {
            letter_event_kinds::INTAKE_ACCEPTED
        } else {
            letter_event_kinds::INTAKE_REFUSED
        };
        append(
            &mut tx,
            id,
            now,
            kind,
            None,
            Some(state),
            &serde_json::Value::Object(detail),
            &Actor::System,
        )
        .await?;
        tx.commit().await?;
        info!(letter = id.0, %state, code = error.map(|e| e.code.as_str()).unwrap_or("-"), "letter journaled");
        Ok(LetterIntake::New { id, state })
    }

    async fn get_letter(&self, id: LetterId) -> Result<Option<LetterRecord>> {
        sqlx::query_as::<_, LetterRow>("SELECT * FROM letters WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .map(LetterRow::into_record)
            .transpose()
    }

    async fn list_letters(&self, filter: &LetterFilter) -> Result<Vec<LetterRecord>> {
        sqlx::query_as::<_, LetterRow>(
            "SELECT * FROM letters
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(filter.state.map(LetterState::as_str))
        .bind(filter.before.map(|id| id.0))
        .bind(filter.limit.min(MAX_LIST))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(LetterRow::into_record)
        .collect()
    }

    async fn letter_events(&self, id: LetterId) -> Result<Vec<LetterEvent>> {
        sqlx::query_as::<_, EventRow>("SELECT * FROM letter_events WHERE letter_id = ? ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(EventRow::into_record)
            .collect()
    }

    async fn letter_recipients(&self, id: LetterId) -> Result<Vec<LetterRecipient>> {
        sqlx::query_as::<_, RecipientRow>(
            "SELECT * FROM letter_recipients WHERE letter_id = ? ORDER BY position",
        )
        .bind(id.0)
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(RecipientRow::into_record)
        .collect()
    }

    async fn read_letter_mail(&self, id: LetterId) -> Result<Vec<u8>> {
        let sha: Option<Option<String>> =
            sqlx::query_scalar("SELECT mail_sha256 FROM letters WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&self.reader)
                .await?;
        let sha = sha.ok_or_else(|| unknown(id))?.ok_or_else(|| {
            StoreError::InvalidInput(format!("letter {id} has no mail (refused at intake)"))
        })?;
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .map_err(|e| task_err("read the letter's mail", e))?
    }

    async fn find_letter_by_message_id(&self, message_id: &str) -> Result<Option<LetterId>> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM letters WHERE message_id = ?")
            .bind(strip_angles(message_id))
            .fetch_optional(&self.reader)
            .await?;
        Ok(id.map(LetterId))
    }

    async fn find_letter_by_envelope_id(&self, envelope_id: &str) -> Result<Option<LetterId>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM letters WHERE envelope_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(envelope_id.trim())
        .fetch_optional(&self.reader)
        .await?;
        Ok(id.map(LetterId))
    }

    async fn find_letter_by_source(&self, source: &LetterSource) -> Result<Option<LetterId>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM letters
             WHERE source_kind = ? AND source_key = ? AND source_sha256 = ?",
        )
        .bind(source.kind.as_str())
        .bind(&source.key)
        .bind(&source.sha256)
        .fetch_optional(&self.reader)
        .await?;
        Ok(id.map(LetterId))
    }

    async fn claim_letter(&self, worker: &str, lease: Duration) -> Result<Option<LetterRecord>> {
        check_key("a worker name", worker)?;
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM letters
             WHERE state IN ('queued', 'claimed') AND not_before <= ?1
               AND (state = 'queued' OR lease_until <= ?1)
             ORDER BY not_before, id LIMIT 1",
        )
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, state)) = row else {
            return Ok(None);
        };
        let id = LetterId(id);
        let from = parse_col(LetterState::parse(&state), "letters", id.0, "state")?;
        let mut change = Change::new(LetterState::Claimed, letter_event_kinds::CLAIMED);
        change.lease = Some((worker, now.plus(lease)));
        change.detail = json!({ "worker": worker });
        if move_in(&mut tx, id, from, &change).await? != Moved::Done {
            return Ok(None);
        }
        sqlx::query("UPDATE letters SET attempts = attempts + 1 WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let record = sqlx::query_as::<_, LetterRow>("SELECT * FROM letters WHERE id = ?")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?
            .into_record()?;
        tx.commit().await?;
        debug!(letter = id.0, attempts = record.attempts, "letter claimed");
        Ok(Some(record))
    }

    async fn start_sending(&self, id: LetterId, worker: &str, lease: Duration) -> Result<Moved> {
        let mut change = Change::new(LetterState::InFlight, letter_event_kinds::SENDING);
        change.lease = Some((worker, Timestamp::now().plus(lease)));
        change.owner = Some(worker);
        change.detail = json!({ "worker": worker });
        self.move_letter(id, LetterState::Claimed, change).await
    }

    async fn letter_sent(&self, id: LetterId, result: &SendResult) -> Result<Moved> {
        let mut tx = self.begin_write().await?;
        let mut change = Change::new(LetterState::Sent, letter_event_kinds::SENT);
        change.error = Some(None);
        change.smtp_reply = Some(&result.reply);
        change.sent = true;
        change.detail = json!({
            "accepted": result.accepted.len(),
            "refused": result.refused.len(),
        });
        let moved = move_in(&mut tx, id, LetterState::InFlight, &change).await?;
        if moved.is_done() {
            let now = Timestamp::now();
            let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
                "SELECT position, address FROM letter_recipients WHERE letter_id = ?",
            )
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await?;
            for (position, address) in rows {
                let address = address.unwrap_or_default();
                let refusal = result
                    .refused
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(&address));
                let accepted = result
                    .accepted
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&address));
                let (status, remote, reason) = match refusal {
                    Some((_, reply)) => (
                        RecipientStatus::Failed,
                        reply.split_whitespace().next().map(str::to_string),
                        Some(reply.clone()),
                    ),
                    None if accepted => (RecipientStatus::Sent, None, None),
                    None => continue,
                };
                sqlx::query(
                    "UPDATE letter_recipients SET status = ?, remote_status = ?, reason = ?,
                            updated_at = ?
                     WHERE letter_id = ? AND position = ?",
                )
                .bind(status.as_str())
                .bind(remote)
                .bind(reason)
                .bind(now.0)
                .bind(id.0)
                .bind(position)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn letter_failed(
        &self,
        id: LetterId,
        from: LetterState,
        error: &ErrorInfo,
    ) -> Result<Moved> {
        let mut tx = self.begin_write().await?;
        let mut change = Change::new(LetterState::Failed, letter_event_kinds::FAILED);
        change.error = Some(Some(error));
        let moved = move_in(&mut tx, id, from, &change).await?;
        if moved.is_done() {
            Self::set_recipients(
                &mut tx,
                id,
                &[RecipientStatus::Pending],
                RecipientStatus::Failed,
                Some(&error.code),
                Some(&error.text),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn retry_letter(
        &self,
        id: LetterId,
        from: LetterState,
        not_before: Timestamp,
        error: &ErrorInfo,
    ) -> Result<Moved> {
        let mut change = Change::new(LetterState::Queued, letter_event_kinds::RETRY);
        change.error = Some(Some(error));
        change.not_before = Some(not_before);
        change.detail = json!({ "not_before": not_before.to_string() });
        self.move_letter(id, from, change).await
    }

    async fn hold_letter(&self, id: LetterId, reason: &ErrorInfo) -> Result<Moved> {
        let mut change = Change::new(
            LetterState::HeldForReview,
            letter_event_kinds::HELD_FOR_REVIEW,
        );
        change.error = Some(Some(reason));
        self.move_letter(id, LetterState::InFlight, change).await
    }

    async fn unfinished_letters(&self) -> Result<Vec<LetterRecord>> {
        sqlx::query_as::<_, LetterRow>(
            "SELECT * FROM letters WHERE state IN ('claimed', 'in_flight') ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(LetterRow::into_record)
        .collect()
    }

    async fn resolve_held(
        &self,
        id: LetterId,
        decision: &HeldDecision,
        actor: &str,
    ) -> Result<Moved> {
        check_key("an actor name", actor)?;
        let mut tx = self.begin_write().await?;
        let (to, label) = match decision {
            HeldDecision::Requeue => (LetterState::Queued, "requeue"),
            HeldDecision::MarkSent => (LetterState::Sent, "mark_sent"),
            HeldDecision::Fail { .. } => (LetterState::Failed, "fail"),
        };
        let error;
        let mut change = Change::new(to, letter_event_kinds::RESOLVED);
        change.actor = Actor::User(actor.to_string());
        change.detail = json!({ "decision": label });
        match decision {
            HeldDecision::Requeue => change.not_before = Some(Timestamp::now()),
            HeldDecision::MarkSent => {
                change.sent = true;
                change.error = Some(None);
            }
            HeldDecision::Fail { note } => {
                error = ErrorInfo {
                    code: "OUTBOUND-REVIEW-FAILED".into(),
                    text: note.clone(),
                };
                change.error = Some(Some(&error));
            }
        }
        let moved = move_in(&mut tx, id, LetterState::HeldForReview, &change).await?;
        if moved.is_done() {
            match decision {
                HeldDecision::MarkSent => {
                    Self::set_recipients(
                        &mut tx,
                        id,
                        &[RecipientStatus::Pending],
                        RecipientStatus::Sent,
                        None,
                        Some("marked as sent by a reviewer"),
                    )
                    .await?
                }
                HeldDecision::Fail { note } => {
                    Self::set_recipients(
                        &mut tx,
                        id,
                        &[RecipientStatus::Pending],
                        RecipientStatus::Failed,
                        Some("OUTBOUND-REVIEW-FAILED"),
                        Some(note),
                    )
                    .await?
                }
                HeldDecision::Requeue => {}
            }
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn record_report(&self, id: LetterId, report: &TrackedReport) -> Result<TrackOutcome> {
        let mut tx = self.begin_write().await?;
        state_of(&mut tx, id).await?;
        let now = Timestamp::now();
        let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(
            "SELECT position, address, status FROM letter_recipients WHERE letter_id = ?",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut outcome = TrackOutcome::default();
        let mut changes = Vec::new();
        for r in &report.recipients {
            let found = rows.iter().find(|(_, a, _)| {
                a.as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(r.address.trim()))
            });
            let Some((position, _, current)) = found else {
                outcome.unmatched += 1;
                continue;
            };
            let current = RecipientStatus::parse(current).unwrap_or(RecipientStatus::Pending);
            if r.status.rank() < current.rank() {
                changes.push(json!({
                    "position": position, "status": r.status.as_str(),
                    "remote_status": r.remote_status, "kept": current.as_str(),
                }));
                continue;
            }
            sqlx::query(
                "UPDATE letter_recipients SET status = ?, remote_status = ?, reason = ?,
                        updated_at = ?
                 WHERE letter_id = ? AND position = ?",
            )
            .bind(r.status.as_str())
            .bind(&r.remote_status)
            .bind(&r.reason)
            .bind(now.0)
            .bind(id.0)
            .bind(position)
            .execute(&mut *tx)
            .await?;
            outcome.updated += 1;
            changes.push(json!({
                "position": position, "status": r.status.as_str(),
                "remote_status": r.remote_status,
            }));
        }
        append(
            &mut tx,
            id,
            now,
            report.kind.as_str(),
            None,
            None,
            &json!({
                "inbound_message": report.inbound_message.map(|m| m.0),
                "recipients": changes,
                "unmatched": outcome.unmatched,
            }),
            &Actor::System,
        )
        .await?;
        tx.commit().await?;
        debug!(
            letter = id.0,
            kind = report.kind.as_str(),
            updated = outcome.updated,
            "report recorded"
        );
        Ok(outcome)
    }

    async fn letter_counts_by_state(&self) -> Result<Vec<(LetterState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM letters GROUP BY state")
                .fetch_all(&self.reader)
                .await?;
        Ok(LetterState::ALL
            .iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .find(|(name, _)| name == s.as_str())
                    .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
                    .unwrap_or(0);
                (*s, n)
            })
            .collect())
    }
}

/// SHA-256 (hex) of several byte strings taken together, each prefixed by its length, so that
/// (`ab`, `c`) and (`a`, `bc`) differ: the source hash of a drop made of several files.
pub fn sha256_of_parts(parts: &[&[u8]]) -> String {
    let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_be_bytes());
        buf.extend_from_slice(p);
    }
    sha256_hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_machine() {
        use LetterState::*;
        assert!(Queued.can_transition_to(Claimed));
        assert!(Claimed.can_transition_to(InFlight));
        assert!(InFlight.can_transition_to(HeldForReview));
        assert!(
            !Queued.can_transition_to(Sent),
            "never sent without being in flight"
        );
        assert!(!Sent.can_transition_to(Queued));
        assert!(!Failed.can_transition_to(Queued));
        assert!(Sent.is_final() && Failed.is_final() && !HeldForReview.is_final());
        for s in LetterState::ALL {
            assert_eq!(LetterState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn recipient_status_never_goes_back() {
        assert!(RecipientStatus::Delivered.rank() > RecipientStatus::Delayed.rank());
        assert!(RecipientStatus::Read.rank() > RecipientStatus::Delivered.rank());
        assert_eq!(strip_angles(" <a@b> "), "a@b");
        assert_ne!(
            sha256_of_parts(&[b"ab", b"c"]),
            sha256_of_parts(&[b"a", b"bc"])
        );
    }
}
