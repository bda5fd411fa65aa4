//! Rows of the journal tables as both backends read them (SQLite and PostgreSQL store the same
//! columns with the same types), and their conversion into the model: one copy, so that the two
//! journals cannot drift apart in how they read a message, an event, a document, a delivery or a
//! review. The patient row stays with each backend (SQLite also reads its merge link).

use sqlx::FromRow;

use crate::error::{Result, StoreError};
use crate::model::*;

pub(crate) fn unknown(what: &'static str, id: impl ToString) -> StoreError {
    StoreError::UnknownId {
        what,
        id: id.to_string(),
    }
}

pub(crate) fn to_u32(
    v: Option<i64>,
    table: &'static str,
    id: i64,
    column: &'static str,
) -> Result<u32> {
    parse_col(v.and_then(|v| u32::try_from(v).ok()), table, id, column)
}

pub(crate) fn to_json(
    text: Option<String>,
    table: &'static str,
    id: i64,
    column: &'static str,
) -> Result<Option<serde_json::Value>> {
    text.map(|t| parse_col(serde_json::from_str(&t).ok(), table, id, column))
        .transpose()
}

#[derive(FromRow)]
pub(crate) struct MessageRow {
    id: i64,
    state: String,
    source_kind: String,
    imap_mailbox: Option<String>,
    imap_uidvalidity: Option<i64>,
    imap_uid: Option<i64>,
    maildir_folder: Option<String>,
    maildir_name: Option<String>,
    folder_path: Option<String>,
    message_id: Option<String>,
    sha256: String,
    size: i64,
    received_at: i64,
    created_at: i64,
    updated_at: i64,
    last_error_code: Option<String>,
    last_error_text: Option<String>,
}

impl MessageRow {
    pub(crate) fn into_record(self) -> Result<MessageRecord> {
        const T: &str = "messages";
        let id = self.id;
        let corrupt = |column| StoreError::CorruptRow {
            table: T,
            id: id.to_string(),
            column,
        };
        let source = match self.source_kind.as_str() {
            "imap" => SourceKey::Imap {
                mailbox: self.imap_mailbox.ok_or_else(|| corrupt("imap_mailbox"))?,
                uidvalidity: to_u32(self.imap_uidvalidity, T, id, "imap_uidvalidity")?,
                uid: to_u32(self.imap_uid, T, id, "imap_uid")?,
            },
            "maildir" => SourceKey::Maildir {
                folder: self
                    .maildir_folder
                    .ok_or_else(|| corrupt("maildir_folder"))?,
                name: self.maildir_name.ok_or_else(|| corrupt("maildir_name"))?,
            },
            "folder" => SourceKey::Folder {
                path: self.folder_path.ok_or_else(|| corrupt("folder_path"))?,
            },
            _ => return Err(corrupt("source_kind")),
        };
        let last_error = match (self.last_error_code, self.last_error_text) {
            (Some(code), text) => Some(ErrorInfo {
                code,
                text: text.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        Ok(MessageRecord {
            id: MessageId(id),
            state: parse_col(MessageState::parse(&self.state), T, id, "state")?,
            source,
            message_id: self.message_id,
            sha256: self.sha256,
            size: parse_col(u64::try_from(self.size).ok(), T, id, "size")?,
            received_at: Timestamp(self.received_at),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            last_error,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    id: i64,
    message_id: i64,
    at: i64,
    kind: String,
    state_before: Option<String>,
    state_after: Option<String>,
    detail: String,
    actor_kind: String,
    actor_name: Option<String>,
}

impl EventRow {
    pub(crate) fn into_record(self) -> Result<EventRecord> {
        const T: &str = "events";
        let id = self.id;
        let state = |s: Option<String>, column| {
            s.map(|s| parse_col(MessageState::parse(&s), T, id, column))
                .transpose()
        };
        let actor = match (self.actor_kind.as_str(), self.actor_name) {
            ("system", _) => Actor::System,
            ("user", Some(name)) => Actor::User(name),
            _ => return parse_col(None, T, id, "actor_kind"),
        };
        Ok(EventRecord {
            id,
            message_id: MessageId(self.message_id),
            at: Timestamp(self.at),
            kind: self.kind,
            state_before: state(self.state_before, "state_before")?,
            state_after: state(self.state_after, "state_after")?,
            detail: parse_col(serde_json::from_str(&self.detail).ok(), T, id, "detail")?,
            actor,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DocumentRow {
    id: i64,
    message_id: i64,
    cda_id: String,
    set_id: String,
    version: Option<i64>,
    type_code: Option<String>,
    patient_ipp: Option<String>,
    validation: Option<String>,
    state: String,
    replaces: Option<i64>,
    superseded_by: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl DocumentRow {
    pub(crate) fn into_record(self) -> Result<DocumentRecord> {
        const T: &str = "documents";
        let id = self.id;
        Ok(DocumentRecord {
            id: DocId(id),
            message_id: MessageId(self.message_id),
            key: DocumentKey {
                cda_id: self.cda_id,
                set_id: self.set_id,
                version: self.version,
            },
            type_code: self.type_code,
            patient_ipp: self.patient_ipp,
            validation: to_json(self.validation, T, id, "validation")?,
            state: parse_col(DocumentState::parse(&self.state), T, id, "state")?,
            replaces: self.replaces.map(DocId),
            superseded_by: self.superseded_by.map(DocId),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DeliveryRow {
    id: i64,
    document_id: i64,
    sink: String,
    idempotency_key: String,
    ordering_key: String,
    payload: Vec<u8>,
    state: String,
    attempts: i64,
    not_before: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    outcome_code: Option<String>,
    outcome_text: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
}

impl DeliveryRow {
    pub(crate) fn into_record(self) -> Result<Delivery> {
        const T: &str = "deliveries";
        let id = self.id;
        Ok(Delivery {
            id: DeliveryId(id),
            document_id: DocId(self.document_id),
            sink: self.sink,
            idempotency_key: self.idempotency_key,
            ordering_key: self.ordering_key,
            payload: self.payload,
            state: parse_col(DeliveryState::parse(&self.state), T, id, "state")?,
            attempts: to_u32(Some(self.attempts), T, id, "attempts")?,
            not_before: Timestamp(self.not_before),
            lease_owner: self.lease_owner,
            lease_until: self.lease_until.map(Timestamp),
            last_error: self.last_error,
            outcome_code: self.outcome_code,
            outcome_text: self.outcome_text,
            created_at: Timestamp(self.created_at),
            completed_at: self.completed_at.map(Timestamp),
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ReviewRow {
    id: i64,
    message_id: i64,
    document_id: Option<i64>,
    reason_code: String,
    reason_text: String,
    status: String,
    resolution_ipp: Option<String>,
    resolution_note: Option<String>,
    resolved_by: Option<String>,
    resolved_at: Option<i64>,
    created_at: i64,
}

impl ReviewRow {
    pub(crate) fn into_record(self) -> Result<Review> {
        let id = self.id;
        Ok(Review {
            id: ReviewId(id),
            message_id: MessageId(self.message_id),
            document_id: self.document_id.map(DocId),
            reason_code: self.reason_code,
            reason_text: self.reason_text,
            status: parse_col(ReviewStatus::parse(&self.status), "reviews", id, "status")?,
            resolution_ipp: self.resolution_ipp,
            resolution_note: self.resolution_note,
            resolved_by: self.resolved_by,
            resolved_at: self.resolved_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
        })
    }
}
