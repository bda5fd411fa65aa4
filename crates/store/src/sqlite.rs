//! [`SqliteJournal`]: the journal on SQLite (single node, the default).
//!
//! Files under the data directory: `journal.sqlite` (+ `-wal`, `-shm`) and `blobs/`.
//!
//! Durability first: WAL mode with `synchronous=FULL`, so a commit is on disk (the WAL is
//! fsynced) before the call returns; `NORMAL` would be faster but may lose the last commits on
//! power loss, and a source must never acknowledge a mail the journal could lose. Foreign keys
//! are on; a busy timeout lets several processes (daemon and CLI) share the file.
//!
//! Writes go through one connection and start with `BEGIN IMMEDIATE`, which takes SQLite's write
//! lock up front: in-process writers queue on that connection (no busy-polling), writers in
//! other processes wait for the busy timeout, and a read-then-write transaction can never fail
//! half way with `SQLITE_BUSY`. Concurrent calls share one transaction and one fsync (group
//! commit, see `group.rs`), each in its own savepoint, and each returns once it is committed.
//! Reads use a separate pool and see the last committed state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, FromRow};
use tracing::{debug, info, warn};

use crate::blob::{BlobStore, sha256_hex};
use crate::error::{Result, StoreError};
use crate::group::{GroupWriter, WriteStats, WriteTx};
use crate::journal::Journal;
use crate::model::*;
use crate::rows::*;

/// How [`SqliteJournal::open_with`] opens the journal.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The data directory (created if missing): `journal.sqlite` and `blobs/` live here.
    pub data_dir: PathBuf,
    /// How long a writer waits for another process holding the write lock.
    pub busy_timeout: Duration,
    /// Size of the read connection pool.
    pub read_connections: u32,
}

impl SqliteConfig {
    /// Defaults: 10 s busy timeout, 4 read connections.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            data_dir: data_dir.into(),
            busy_timeout: Duration::from_secs(10),
            read_connections: 4,
        }
    }
}

/// The journal on SQLite plus the on-disk blob store.
#[derive(Debug, Clone)]
pub struct SqliteJournal {
    writer: std::sync::Arc<GroupWriter>,
    /// Read pool (crate-visible so that other stores on the same database, e.g. the outbound
    /// journal, can share it).
    pub(crate) reader: SqlitePool,
    pub(crate) blobs: BlobStore,
    db_path: PathBuf,
}

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "journal.sqlite";
/// Directory of the blob store inside the data directory.
pub const BLOB_DIR: &str = "blobs";
/// Longest sink name, idempotency or ordering key, worker name, actor or code accepted.
const MAX_KEY_LEN: usize = 1024;
/// Most rows a list query returns.
const MAX_LIST: u32 = 10_000;

fn check_key(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    Ok(())
}

/// A blocking blob task that panicked or was cancelled (shutdown).
fn self_task_err(op: &'static str, e: tokio::task::JoinError) -> StoreError {
    StoreError::BlobIo {
        op,
        path: PathBuf::from(BLOB_DIR),
        source: std::io::Error::other(e),
    }
}

// --- Rows: the patient row (its merge link is read here, not by PostgreSQL's) ---

#[derive(FromRow)]
struct PatientRow {
    ipp: String,
    ins_oid: Option<String>,
    ins_value: Option<String>,
    birth_family: Option<String>,
    given_birth_first: Option<String>,
    birth_given_names: Option<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    birthplace_insee: Option<String>,
    identity_status: Option<String>,
    merged_into: Option<String>,
}

impl PatientRow {
    fn into_record(self) -> PatientRecord {
        PatientRecord {
            ipp: self.ipp,
            ins: match (self.ins_oid, self.ins_value) {
                (Some(oid), Some(value)) => Some(Ins { oid, value }),
                _ => None,
            },
            birth_family: self.birth_family,
            given_birth_first: self.given_birth_first,
            birth_given_names: self.birth_given_names,
            birth_date: self.birth_date,
            sex: self.sex,
            birthplace_insee: self.birthplace_insee,
            identity_status: self.identity_status,
        }
    }
}

// --- Helpers on a connection -----------------------------------------------------------------

/// Appends an event (the only statement that ever touches `events`).
async fn append_event(
    conn: &mut SqliteConnection,
    id: MessageId,
    at: Timestamp,
    before: Option<MessageState>,
    after: Option<MessageState>,
    event: &Event,
) -> Result<()> {
    check_key("an event kind", &event.kind)?;
    let (actor_kind, actor_name) = match &event.actor {
        Actor::System => ("system", None),
        Actor::User(name) => {
            check_key("an actor name", name)?;
            ("user", Some(name.as_str()))
        }
    };
    sqlx::query(
        "INSERT INTO events (message_id, at, kind, state_before, state_after, detail, actor_kind, actor_name)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.0)
    .bind(at.0)
    .bind(&event.kind)
    .bind(before.map(MessageState::as_str))
    .bind(after.map(MessageState::as_str))
    .bind(event.detail.to_string())
    .bind(actor_kind)
    .bind(actor_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The message already journaled under the same source key or Message-ID + hash, if any.
async fn find_duplicate(
    conn: &mut SqliteConnection,
    source: &SourceKey,
    message_id: Option<&str>,
    sha256: &str,
) -> Result<Option<(MessageId, DedupBy)>> {
    let by_source: Option<i64> = match source {
        SourceKey::Imap {
            mailbox,
            uidvalidity,
            uid,
        } => {
            sqlx::query_scalar(
                "SELECT id FROM messages WHERE source_kind = 'imap'
                 AND imap_mailbox = ? AND imap_uidvalidity = ? AND imap_uid = ?",
            )
            .bind(mailbox)
            .bind(i64::from(*uidvalidity))
            .bind(i64::from(*uid))
            .fetch_optional(&mut *conn)
            .await?
        }
        SourceKey::Maildir { folder, name } => {
            sqlx::query_scalar(
                "SELECT id FROM messages WHERE source_kind = 'maildir'
                 AND maildir_folder = ? AND maildir_name = ?",
            )
            .bind(folder)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
        }
        SourceKey::Folder { .. } => None,
    };
    if let Some(id) = by_source {
        return Ok(Some((MessageId(id), DedupBy::Source)));
    }
    if let Some(mid) = message_id {
        let by_content: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE message_id = ? AND sha256 = ? ORDER BY id LIMIT 1",
        )
        .bind(mid)
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(id) = by_content {
            return Ok(Some((MessageId(id), DedupBy::MessageIdAndHash)));
        }
    }
    Ok(None)
}

/// Records the outcome of an in-flight delivery; returns its new state, document and message.
async fn complete_in(
    tx: &mut SqliteConnection,
    id: DeliveryId,
    outcome: &Outcome,
) -> Result<(DeliveryState, DocId, MessageId)> {
    let row: Option<(String, i64, String)> =
        sqlx::query_as("SELECT state, document_id, sink FROM deliveries WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
    let (state, doc, sink) = row.ok_or_else(|| unknown("delivery", id))?;
    let state = parse_col(DeliveryState::parse(&state), "deliveries", id.0, "state")?;
    if state != DeliveryState::InFlight {
        return Err(StoreError::DeliveryNotInFlight { id, state });
    }
    let now = Timestamp::now();
    let (new_state, code, text, kind) = match &outcome {
        Outcome::Delivered { detail } => (
            DeliveryState::Delivered,
            None,
            detail.as_str(),
            event_kinds::DELIVERY_DELIVERED,
        ),
        Outcome::Rejected { code, text } => (
            DeliveryState::Rejected,
            Some(code.as_str()),
            text.as_str(),
            event_kinds::DELIVERY_REJECTED,
        ),
    };
    sqlx::query(
        "UPDATE deliveries SET state = ?, outcome_code = ?, outcome_text = ?, completed_at = ?,
                updated_at = ?, lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND state = 'in_flight'",
    )
    .bind(new_state.as_str())
    .bind(code)
    .bind(text)
    .bind(now.0)
    .bind(now.0)
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    let message = message_of_document(&mut *tx, DocId(doc)).await?;
    let event = Event::system(kind)
        .with_detail(json!({ "delivery": id.0, "doc": doc, "sink": sink, "code": code }));
    append_event(&mut *tx, message, now, None, None, &event).await?;
    Ok((new_state, DocId(doc), message))
}

async fn message_state(conn: &mut SqliteConnection, id: MessageId) -> Result<MessageState> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM messages WHERE id = ?")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    let state = state.ok_or_else(|| unknown("message", id))?;
    parse_col(MessageState::parse(&state), "messages", id.0, "state")
}

async fn message_of_document(conn: &mut SqliteConnection, doc: DocId) -> Result<MessageId> {
    let id: Option<i64> = sqlx::query_scalar("SELECT message_id FROM documents WHERE id = ?")
        .bind(doc.0)
        .fetch_optional(&mut *conn)
        .await?;
    id.map(MessageId).ok_or_else(|| unknown("document", doc))
}

async fn fetch_patient(conn: &mut SqliteConnection, ipp: &str) -> Result<Option<PatientRow>> {
    Ok(
        sqlx::query_as::<_, PatientRow>("SELECT * FROM patients WHERE ipp = ?")
            .bind(ipp)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal in `data_dir` with default settings and applies
    /// the embedded migrations.
    pub async fn open(data_dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(SqliteConfig::new(data_dir)).await
    }

    /// Opens the journal with explicit settings.
    pub async fn open_with(config: SqliteConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StoreError::BlobIo {
            op: "create directory",
            path: config.data_dir.clone(),
            source,
        })?;
        let db_path = config.data_dir.join(DATABASE_FILE);
        let open_err = |source| StoreError::Open {
            path: db_path.clone(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(config.busy_timeout)
            .foreign_keys(true);
        let mut writer = options.connect().await.map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await?;
        let writer = GroupWriter::new(writer);
        let reader = SqlitePoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .connect_with(options.read_only(true))
            .await
            .map_err(open_err)?;
        let blobs = BlobStore::open(config.data_dir.join(BLOB_DIR))?;
        info!("journal opened (sqlite, WAL, synchronous=FULL)");
        Ok(SqliteJournal {
            writer,
            reader,
            blobs,
            db_path,
        })
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// How many write calls were committed, in how many transactions (group commit).
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        &self.db_path
    }

    /// Closes the pools cleanly (checkpointing is left to SQLite). Dropping the journal without
    /// calling this is safe: every committed transaction is already durable.
    pub async fn close(self) {
        self.reader.close().await;
        drop(self.writer);
    }

    /// Joins the group-committed write transaction (see `group.rs`).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        self.writer.begin().await
    }

    async fn hash_off_thread(raw: Vec<u8>) -> Result<(Vec<u8>, String)> {
        tokio::task::spawn_blocking(move || {
            let sha = sha256_hex(&raw);
            (raw, sha)
        })
        .await
        .map_err(|e| self_task_err("hash the mail", e))
    }

    async fn put_blob(&self, raw: Vec<u8>) -> Result<Vec<u8>> {
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.put(&raw).map(|_| raw))
            .await
            .map_err(|e| self_task_err("write the blob", e))?
    }
}

async fn transition_in(
    conn: &mut SqliteConnection,
    id: MessageId,
    from: MessageState,
    to: MessageState,
    event: Event,
) -> Result<()> {
    if !from.can_transition_to(to) {
        return Err(StoreError::IllegalTransition { from, to });
    }
    let actual = message_state(conn, id).await?;
    if actual != from {
        debug!(message = id.0, %from, %actual, "stale transition refused");
        return Err(StoreError::StaleState {
            id,
            expected: from,
            actual,
        });
    }
    let now = Timestamp::now();
    let (code, text) = match &event.error {
        Some(e) => (Some(e.code.as_str()), Some(e.text.as_str())),
        None => (None, None),
    };
    let done = sqlx::query(
        "UPDATE messages SET state = ?, updated_at = ?, last_error_code = ?, last_error_text = ?,
            answer = CASE WHEN ? THEN COALESCE(answer, 'due') ELSE answer END
         WHERE id = ? AND state = ?",
    )
    .bind(to.as_str())
    .bind(now.0)
    .bind(code)
    .bind(text)
    .bind(to.is_outcome())
    .bind(id.0)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        // Unreachable under BEGIN IMMEDIATE; kept as the optimistic check of record.
        return Err(StoreError::StaleState {
            id,
            expected: from,
            actual,
        });
    }
    append_event(conn, id, now, Some(from), Some(to), &event).await?;
    debug!(message = id.0, %from, %to, "message state changed");
    Ok(())
}

async fn record_event_in(conn: &mut SqliteConnection, id: MessageId, event: Event) -> Result<()> {
    message_state(conn, id).await?;
    let now = Timestamp::now();
    if let Some(e) = &event.error {
        sqlx::query(
            "UPDATE messages SET last_error_code = ?, last_error_text = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&e.code)
        .bind(&e.text)
        .bind(now.0)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    }
    append_event(conn, id, now, None, None, &event).await?;
    Ok(())
}

async fn register_document_in(
    conn: &mut SqliteConnection,
    message: MessageId,
    key: &DocumentKey,
    meta: &DocumentMeta,
) -> Result<DocumentOutcome> {
    check_key("a CDA id", &key.cda_id)?;
    check_key("a CDA setId", &key.set_id)?;
    message_state(conn, message).await?;
    let now = Timestamp::now();
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM documents WHERE cda_id = ?")
        .bind(&key.cda_id)
        .fetch_optional(&mut *conn)
        .await?;
    let current: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, version FROM documents WHERE set_id = ? AND superseded_by IS NULL
         ORDER BY COALESCE(version, 1) DESC, id DESC LIMIT 1",
    )
    .bind(&key.set_id)
    .fetch_optional(&mut *conn)
    .await?;
    let replaces = match (existing, current) {
        (Some(doc), _) => {
            let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
                .with_detail(json!({ "outcome": "duplicate", "doc": doc }));
            append_event(conn, message, now, None, None, &event).await?;
            debug!(message = message.0, doc, "document already registered");
            return Ok(DocumentOutcome::Duplicate(DocId(doc)));
        }
        (None, Some((cur, cur_version)))
            if key.version.unwrap_or(1) <= cur_version.unwrap_or(1) =>
        {
            let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
                .with_detail(json!({ "outcome": "older_version", "current": cur }));
            append_event(conn, message, now, None, None, &event).await?;
            debug!(
                message = message.0,
                current = cur,
                "document version not newer"
            );
            return Ok(DocumentOutcome::OlderVersion {
                current: DocId(cur),
            });
        }
        (None, Some((cur, _))) => Some(cur),
        (None, None) => None,
    };
    let doc: i64 = sqlx::query_scalar(
        "INSERT INTO documents (message_id, cda_id, set_id, version, type_code, patient_ipp,
            validation, state, replaces, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(message.0)
    .bind(&key.cda_id)
    .bind(&key.set_id)
    .bind(key.version)
    .bind(&meta.type_code)
    .bind(&meta.patient_ipp)
    .bind(meta.validation.as_ref().map(|v| v.to_string()))
    .bind(meta.state.as_str())
    .bind(replaces)
    .bind(now.0)
    .bind(now.0)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(old) = replaces {
        sqlx::query("UPDATE documents SET superseded_by = ?, updated_at = ? WHERE id = ?")
            .bind(doc)
            .bind(now.0)
            .bind(old)
            .execute(&mut *conn)
            .await?;
    }
    let outcome = if replaces.is_some() {
        "new_version"
    } else {
        "new"
    };
    let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
        .with_detail(json!({ "outcome": outcome, "doc": doc, "replaces": replaces }));
    append_event(conn, message, now, None, None, &event).await?;
    debug!(message = message.0, doc, outcome, "document registered");
    Ok(match replaces {
        Some(old) => DocumentOutcome::NewVersion {
            doc: DocId(doc),
            replaces: DocId(old),
        },
        None => DocumentOutcome::New(DocId(doc)),
    })
}

async fn update_document_in(
    conn: &mut SqliteConnection,
    id: DocId,
    update: &DocumentUpdate,
) -> Result<()> {
    let message = message_of_document(conn, id).await?;
    let now = Timestamp::now();
    sqlx::query(
        "UPDATE documents SET state = COALESCE(?, state),
            patient_ipp = COALESCE(?, patient_ipp), validation = COALESCE(?, validation),
            updated_at = ?
         WHERE id = ?",
    )
    .bind(update.state.map(DocumentState::as_str))
    .bind(&update.patient_ipp)
    .bind(update.validation.as_ref().map(|v| v.to_string()))
    .bind(now.0)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    let event = Event::system(event_kinds::DOCUMENT_UPDATED).with_detail(json!({
        "doc": id.0,
        "state": update.state.map(DocumentState::as_str),
        "patient_set": update.patient_ipp.is_some(),
        "validation_set": update.validation.is_some(),
    }));
    append_event(conn, message, now, None, None, &event).await?;
    debug!(doc = id.0, state = ?update.state, "document updated");
    Ok(())
}

async fn enqueue_delivery_in(
    conn: &mut SqliteConnection,
    doc: DocId,
    sink: &str,
    idempotency_key: &str,
    payload: Vec<u8>,
    ordering_key: &str,
) -> Result<DeliveryId> {
    check_key("a sink name", sink)?;
    check_key("an idempotency key", idempotency_key)?;
    check_key("an ordering key", ordering_key)?;
    let existing: Option<i64> =
        sqlx::query_scalar("SELECT id FROM deliveries WHERE sink = ? AND idempotency_key = ?")
            .bind(sink)
            .bind(idempotency_key)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = existing {
        debug!(delivery = id, "delivery already enqueued");
        return Ok(DeliveryId(id));
    }
    let message = message_of_document(conn, doc).await?;
    let now = Timestamp::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (document_id, sink, idempotency_key, ordering_key, payload,
            state, attempts, not_before, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) RETURNING id",
    )
    .bind(doc.0)
    .bind(sink)
    .bind(idempotency_key)
    .bind(ordering_key)
    .bind(payload)
    .bind(now.0)
    .bind(now.0)
    .bind(now.0)
    .fetch_one(&mut *conn)
    .await?;
    let event = Event::system(event_kinds::DELIVERY_ENQUEUED)
        .with_detail(json!({ "delivery": id, "doc": doc.0, "sink": sink }));
    append_event(conn, message, now, None, None, &event).await?;
    debug!(delivery = id, doc = doc.0, "delivery enqueued");
    Ok(DeliveryId(id))
}

async fn open_review_in(
    conn: &mut SqliteConnection,
    subject: ReviewSubject,
    reason_code: &str,
    reason_text: &str,
) -> Result<ReviewId> {
    check_key("a review reason code", reason_code)?;
    let (message, doc) = match subject {
        ReviewSubject::Message(m) => {
            message_state(conn, m).await?;
            (m, None)
        }
        ReviewSubject::Document(d) => (message_of_document(conn, d).await?, Some(d.0)),
    };
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM reviews WHERE message_id = ? AND document_id IS ? AND reason_code = ?
           AND status = 'open'",
    )
    .bind(message.0)
    .bind(doc)
    .bind(reason_code)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = existing {
        return Ok(ReviewId(id));
    }
    let now = Timestamp::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO reviews (message_id, document_id, reason_code, reason_text, status, created_at)
         VALUES (?, ?, ?, ?, 'open', ?) RETURNING id",
    )
    .bind(message.0)
    .bind(doc)
    .bind(reason_code)
    .bind(reason_text)
    .bind(now.0)
    .fetch_one(&mut *conn)
    .await?;
    let event = Event::system(event_kinds::REVIEW_OPENED)
        .with_detail(json!({ "review": id, "doc": doc, "reason_code": reason_code }));
    append_event(conn, message, now, None, None, &event).await?;
    debug!(
        review = id,
        message = message.0,
        reason_code,
        "review opened"
    );
    Ok(ReviewId(id))
}

#[async_trait]
impl Journal for SqliteJournal {
    async fn ingest(&self, req: IngestRequest<'_>) -> Result<IngestOutcome> {
        if let Some(mid) = &req.message_id {
            check_key("a Message-ID", mid)?;
        }
        match &req.source {
            SourceKey::Imap { mailbox, .. } => check_key("an IMAP mailbox name", mailbox)?,
            SourceKey::Maildir { folder, name } => {
                check_key("a Maildir folder", folder)?;
                check_key("a Maildir file name", name)?;
            }
            SourceKey::Folder { path } => check_key("a file path", path)?,
        }
        let size = i64::try_from(req.raw.len())
            .map_err(|_| StoreError::InvalidInput("mail too large".into()))?;
        let (mut raw, sha) = Self::hash_off_thread(req.raw.to_vec()).await?;
        let mid = req.message_id.as_deref();

        // Cheap look-up first so that a duplicate does not write its blob.
        let seen = {
            let mut conn = self.reader.acquire().await?;
            find_duplicate(&mut conn, &req.source, mid, &sha)
                .await?
                .is_some()
        };
        let mut blob_written = false;
        if !seen {
            raw = self.put_blob(raw).await?;
            blob_written = true;
        }
        loop {
            let mut tx = self.begin_write().await?;
            let now = Timestamp::now();
            if let Some((existing, by)) = find_duplicate(&mut tx, &req.source, mid, &sha).await? {
                let event = Event::system(event_kinds::DUPLICATE_SEEN).with_detail(json!({
                    "by": by,
                    "source": req.source.kind(),
                    "size": size,
                }));
                append_event(&mut tx, existing, now, None, None, &event).await?;
                tx.commit().await?;
                debug!(message = existing.0, ?by, "duplicate mail");
                return Ok(IngestOutcome::Duplicate { existing, by });
            }
            // Checked under the write lock: retention pruning removes an unreferenced blob under
            // it too, so the file cannot vanish between this check and the commit.
            if !blob_written || !self.blobs.contains(&sha)? {
                // Seen as a duplicate a moment ago and no longer one (its message was pruned),
                // or the same content's blob was just pruned: never commit a row without its blob.
                drop(tx);
                raw = self.put_blob(raw).await?;
                blob_written = true;
                continue;
            }
            let (mailbox, uidvalidity, uid, folder, name, path) = match &req.source {
                SourceKey::Imap {
                    mailbox,
                    uidvalidity,
                    uid,
                } => (
                    Some(mailbox.as_str()),
                    Some(i64::from(*uidvalidity)),
                    Some(i64::from(*uid)),
                    None,
                    None,
                    None,
                ),
                SourceKey::Maildir { folder, name } => (
                    None,
                    None,
                    None,
                    Some(folder.as_str()),
                    Some(name.as_str()),
                    None,
                ),
                SourceKey::Folder { path } => (None, None, None, None, None, Some(path.as_str())),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (state, source_kind, imap_mailbox, imap_uidvalidity, imap_uid,
                    maildir_folder, maildir_name, folder_path, message_id, sha256, size,
                    received_at, created_at, updated_at)
                 VALUES ('received', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(req.source.kind())
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(uid)
            .bind(folder)
            .bind(name)
            .bind(path)
            .bind(mid)
            .bind(&sha)
            .bind(size)
            .bind(req.received_at.0)
            .bind(now.0)
            .bind(now.0)
            .fetch_one(&mut *tx)
            .await?;
            let id = MessageId(id);
            let event = Event::system(event_kinds::RECEIVED).with_detail(json!({
                "source": req.source.kind(),
                "size": size,
            }));
            append_event(&mut tx, id, now, None, Some(MessageState::Received), &event).await?;
            tx.commit().await?;
            debug!(message = id.0, size, "mail journaled");
            return Ok(IngestOutcome::New(id));
        }
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>("SELECT * FROM messages WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .map(MessageRow::into_record)
            .transpose()
    }

    async fn read_raw(&self, id: MessageId) -> Result<Vec<u8>> {
        let sha: Option<String> = sqlx::query_scalar("SELECT sha256 FROM messages WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        let sha = sha.ok_or_else(|| unknown("message", id))?;
        let blobs = self.blobs.clone();
        let result = tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .map_err(|e| self_task_err("read the blob", e))?;
        if let Err(e) = &result {
            warn!(message = id.0, code = e.code(), "raw mail unreadable");
        }
        result
    }

    async fn transition(
        &self,
        id: MessageId,
        from: MessageState,
        to: MessageState,
        event: Event,
    ) -> Result<()> {
        if !from.can_transition_to(to) {
            return Err(StoreError::IllegalTransition { from, to });
        }
        let mut tx = self.begin_write().await?;
        let out = transition_in(&mut tx, id, from, to, event).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn apply_steps(
        &self,
        message: MessageId,
        steps: Vec<JournalStep>,
    ) -> Result<Vec<StepOutcome>> {
        // One savepoint of the group commit for them all: every step, or none.
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            out.push(match step {
                JournalStep::Transition { from, to, event } => {
                    transition_in(&mut tx, message, from, to, event).await?;
                    StepOutcome::Done
                }
                JournalStep::RecordEvent(event) => {
                    record_event_in(&mut tx, message, event).await?;
                    StepOutcome::Done
                }
                JournalStep::RegisterDocument { key, meta } => StepOutcome::Document(
                    register_document_in(&mut tx, message, &key, &meta).await?,
                ),
                JournalStep::UpdateDocument { doc, update } => {
                    update_document_in(&mut tx, doc, &update).await?;
                    StepOutcome::Done
                }
                JournalStep::OpenReview {
                    subject,
                    code,
                    text,
                } => StepOutcome::Review(open_review_in(&mut tx, subject, &code, &text).await?),
                JournalStep::EnqueueDelivery {
                    doc,
                    sink,
                    idempotency_key,
                    payload,
                    ordering_key,
                } => StepOutcome::Delivery(
                    enqueue_delivery_in(
                        &mut tx,
                        doc,
                        &sink,
                        &idempotency_key,
                        payload,
                        &ordering_key,
                    )
                    .await?,
                ),
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn record_event(&self, id: MessageId, event: Event) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let out = record_event_in(&mut tx, id, event).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn answers_due(&self, limit: u32) -> Result<Vec<MessageId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM messages WHERE answer = 'due' ORDER BY id LIMIT ?")
                .bind(limit.min(MAX_LIST))
                .fetch_all(&self.reader)
                .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    async fn record_answer(&self, id: MessageId, answer: AnswerState, event: Event) -> Result<()> {
        let mut tx = self.begin_write().await?;
        message_state(&mut tx, id).await?;
        let now = Timestamp::now();
        sqlx::query("UPDATE messages SET answer = ?, updated_at = ? WHERE id = ?")
            .bind(answer.as_str())
            .bind(now.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        append_event(&mut tx, id, now, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn oldest_in_state(
        &self,
        state: MessageState,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>(
            "SELECT * FROM messages WHERE state = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(state.as_str())
        .bind(after.map_or(0, |id| id.0))
        .bind(limit.min(MAX_LIST))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(MessageRow::into_record)
        .collect()
    }

    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>(
            "SELECT * FROM messages
             WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR received_at >= ?2)
               AND (?3 IS NULL OR received_at < ?3)
               AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(filter.state.map(MessageState::as_str))
        .bind(filter.received_from.map(|t| t.0))
        .bind(filter.received_until.map(|t| t.0))
        .bind(filter.before.map(|id| id.0))
        .bind(filter.limit.min(MAX_LIST))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(MessageRow::into_record)
        .collect()
    }

    async fn message_events(&self, id: MessageId) -> Result<Vec<EventRecord>> {
        sqlx::query_as::<_, EventRow>("SELECT * FROM events WHERE message_id = ? ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(EventRow::into_record)
            .collect()
    }

    async fn counts_by_state(&self) -> Result<Vec<(MessageState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM messages GROUP BY state")
                .fetch_all(&self.reader)
                .await?;
        let mut counts: Vec<(MessageState, u64)> =
            MessageState::ALL.iter().map(|&s| (s, 0)).collect();
        for (state, n) in rows {
            let state = parse_col(MessageState::parse(&state), "messages", "*", "state")?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    async fn register_document(
        &self,
        message: MessageId,
        key: &DocumentKey,
        meta: &DocumentMeta,
    ) -> Result<DocumentOutcome> {
        check_key("a CDA id", &key.cda_id)?;
        check_key("a CDA setId", &key.set_id)?;
        let mut tx = self.begin_write().await?;
        let out = register_document_in(&mut tx, message, key, meta).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn get_document(&self, id: DocId) -> Result<Option<DocumentRecord>> {
        sqlx::query_as::<_, DocumentRow>("SELECT * FROM documents WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .map(DocumentRow::into_record)
            .transpose()
    }

    async fn documents_of_message(&self, id: MessageId) -> Result<Vec<DocumentRecord>> {
        sqlx::query_as::<_, DocumentRow>("SELECT * FROM documents WHERE message_id = ? ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(DocumentRow::into_record)
            .collect()
    }

    async fn update_document(&self, id: DocId, update: &DocumentUpdate) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let out = update_document_in(&mut tx, id, update).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn enqueue_delivery(
        &self,
        doc: DocId,
        sink: &str,
        idempotency_key: &str,
        payload: Vec<u8>,
        ordering_key: &str,
    ) -> Result<DeliveryId> {
        check_key("a sink name", sink)?;
        check_key("an idempotency key", idempotency_key)?;
        check_key("an ordering key", ordering_key)?;
        let mut tx = self.begin_write().await?;
        let out =
            enqueue_delivery_in(&mut tx, doc, sink, idempotency_key, payload, ordering_key).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn claim_next(
        &self,
        sink: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>> {
        check_key("a sink name", sink)?;
        check_key("a worker name", worker)?;
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let row = sqlx::query_as::<_, DeliveryRow>(
            "UPDATE deliveries
             SET state = 'in_flight', lease_owner = ?3, lease_until = ?4,
                 attempts = attempts + 1, updated_at = ?2
             WHERE id = (
                 SELECT d.id FROM deliveries d
                 WHERE d.sink = ?1
                   AND d.state IN ('pending', 'in_flight')
                   AND (d.state = 'pending' OR d.lease_until <= ?2)
                   AND d.not_before <= ?2
                   AND NOT EXISTS (
                       SELECT 1 FROM deliveries e
                       WHERE e.sink = d.sink AND e.ordering_key = d.ordering_key
                         AND e.id < d.id AND e.state IN ('pending', 'in_flight'))
                 ORDER BY d.id LIMIT 1)
             RETURNING *",
        )
        .bind(sink)
        .bind(now.0)
        .bind(worker)
        .bind(now.plus(lease).0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let delivery = row.map(DeliveryRow::into_record).transpose()?;
        if let Some(d) = &delivery {
            debug!(delivery = d.id.0, attempts = d.attempts, "delivery claimed");
        }
        Ok(delivery)
    }

    async fn complete(&self, id: DeliveryId, outcome: Outcome) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let (state, _, _) = complete_in(&mut tx, id, &outcome).await?;
        tx.commit().await?;
        debug!(delivery = id.0, state = %state, "delivery completed");
        Ok(())
    }

    async fn complete_delivered(&self, id: DeliveryId, detail: &str) -> Result<Closed> {
        let mut tx = self.begin_write().await?;
        let outcome = Outcome::Delivered {
            detail: detail.to_string(),
        };
        let (_, doc, message) = complete_in(&mut tx, id, &outcome).await?;
        let now = Timestamp::now();
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE document_id = ? AND state <> 'delivered'",
        )
        .bind(doc.0)
        .fetch_one(&mut *tx)
        .await?;
        let mut closed = Closed::default();
        if open == 0 {
            sqlx::query("UPDATE documents SET state = 'filed', updated_at = ? WHERE id = ?")
                .bind(now.0)
                .bind(doc.0)
                .execute(&mut *tx)
                .await?;
            let event = Event::system(event_kinds::DOCUMENT_UPDATED).with_detail(json!({
                "doc": doc.0,
                "state": DocumentState::Filed.as_str(),
                "patient_set": false,
                "validation_set": false,
            }));
            append_event(&mut tx, message, now, None, None, &event).await?;
            closed.document_filed = true;
            let unfiled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM documents WHERE message_id = ? AND state <> 'filed'",
            )
            .bind(message.0)
            .fetch_one(&mut *tx)
            .await?;
            let done = sqlx::query(
                "UPDATE messages SET state = 'filed', updated_at = ?,
                    answer = COALESCE(answer, 'due')
                 WHERE id = ? AND state = 'matched' AND ? = 0",
            )
            .bind(now.0)
            .bind(message.0)
            .bind(unfiled)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                append_event(
                    &mut tx,
                    message,
                    now,
                    Some(MessageState::Matched),
                    Some(MessageState::Filed),
                    &Event::system("filed"),
                )
                .await?;
                closed.message_filed = Some(message);
            }
        }
        tx.commit().await?;
        debug!(delivery = id.0, ?closed, "delivery completed");
        Ok(closed)
    }

    async fn retry_later(&self, id: DeliveryId, not_before: Timestamp, error: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT state, document_id, attempts FROM deliveries WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let (state, doc, attempts) = row.ok_or_else(|| unknown("delivery", id))?;
        let state = parse_col(DeliveryState::parse(&state), "deliveries", id.0, "state")?;
        if state != DeliveryState::InFlight {
            return Err(StoreError::DeliveryNotInFlight { id, state });
        }
        let now = Timestamp::now();
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', not_before = ?, last_error = ?,
                lease_owner = NULL, lease_until = NULL, updated_at = ?
             WHERE id = ? AND state = 'in_flight'",
        )
        .bind(not_before.0)
        .bind(error)
        .bind(now.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let message = message_of_document(&mut tx, DocId(doc)).await?;
        let event = Event::system(event_kinds::DELIVERY_RETRY).with_detail(json!({
            "delivery": id.0,
            "attempts": attempts,
            "not_before": not_before.0,
        }));
        append_event(&mut tx, message, now, None, None, &event).await?;
        tx.commit().await?;
        debug!(delivery = id.0, attempts, "delivery rescheduled");
        Ok(())
    }

    async fn pending_count(&self, sink: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE sink = ? AND state IN ('pending', 'in_flight')",
        )
        .bind(sink)
        .fetch_one(&self.reader)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        sqlx::query_as::<_, DeliveryRow>("SELECT * FROM deliveries WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .map(DeliveryRow::into_record)
            .transpose()
    }

    async fn deliveries_of_document(&self, doc: DocId) -> Result<Vec<Delivery>> {
        sqlx::query_as::<_, DeliveryRow>(
            "SELECT * FROM deliveries WHERE document_id = ? ORDER BY id",
        )
        .bind(doc.0)
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(DeliveryRow::into_record)
        .collect()
    }

    async fn open_review(
        &self,
        subject: ReviewSubject,
        reason_code: &str,
        reason_text: &str,
    ) -> Result<ReviewId> {
        check_key("a review reason code", reason_code)?;
        let mut tx = self.begin_write().await?;
        let out = open_review_in(&mut tx, subject, reason_code, reason_text).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn list_reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>> {
        sqlx::query_as::<_, ReviewRow>(
            "SELECT * FROM reviews
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR reason_code = ?2)
             ORDER BY id LIMIT ?3",
        )
        .bind(filter.status.map(ReviewStatus::as_str))
        .bind(&filter.reason_code)
        .bind(filter.limit.min(MAX_LIST))
        .fetch_all(&self.reader)
        .await?
        .into_iter()
        .map(ReviewRow::into_record)
        .collect()
    }

    async fn get_review(&self, id: ReviewId) -> Result<Option<Review>> {
        sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .map(ReviewRow::into_record)
            .transpose()
    }

    async fn resolve_review(
        &self,
        id: ReviewId,
        resolution: Resolution,
        actor: &str,
    ) -> Result<()> {
        check_key("an actor name", actor)?;
        if let Resolution::FiledTo { ipp } = &resolution {
            check_key("an IPP", ipp)?;
        }
        let mut tx = self.begin_write().await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT status, message_id FROM reviews WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let (status, message) = row.ok_or_else(|| unknown("review", id))?;
        if parse_col(ReviewStatus::parse(&status), "reviews", id.0, "status")? != ReviewStatus::Open
        {
            return Err(StoreError::ReviewNotOpen { id });
        }
        let now = Timestamp::now();
        let (status, ipp, note) = match &resolution {
            Resolution::FiledTo { ipp } => (ReviewStatus::Filed, Some(ipp.as_str()), None),
            Resolution::Rejected { note } => (ReviewStatus::Rejected, None, Some(note.as_str())),
        };
        sqlx::query(
            "UPDATE reviews SET status = ?, resolution_ipp = ?, resolution_note = ?,
                resolved_by = ?, resolved_at = ?
             WHERE id = ? AND status = 'open'",
        )
        .bind(status.as_str())
        .bind(ipp)
        .bind(note)
        .bind(actor)
        .bind(now.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let event = Event::user(event_kinds::REVIEW_RESOLVED, actor)
            .with_detail(json!({ "review": id.0, "resolution": status.as_str() }));
        append_event(&mut tx, MessageId(message), now, None, None, &event).await?;
        tx.commit().await?;
        debug!(review = id.0, resolution = %status, "review resolved");
        Ok(())
    }

    async fn upsert_patient(&self, record: &PatientRecord) -> Result<()> {
        check_key("an IPP", &record.ipp)?;
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO patients (ipp, ins_oid, ins_value, birth_family, given_birth_first,
                birth_given_names, birth_date, sex, birthplace_insee, identity_status,
                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
             ON CONFLICT (ipp) DO UPDATE SET
                ins_oid = excluded.ins_oid, ins_value = excluded.ins_value,
                birth_family = excluded.birth_family,
                given_birth_first = excluded.given_birth_first,
                birth_given_names = excluded.birth_given_names,
                birth_date = excluded.birth_date, sex = excluded.sex,
                birthplace_insee = excluded.birthplace_insee,
                identity_status = excluded.identity_status,
                updated_at = excluded.updated_at",
        )
        .bind(&record.ipp)
        .bind(record.ins.as_ref().map(|i| i.oid.as_str()))
        .bind(record.ins.as_ref().map(|i| i.value.as_str()))
        .bind(&record.birth_family)
        .bind(&record.given_birth_first)
        .bind(&record.birth_given_names)
        .bind(&record.birth_date)
        .bind(&record.sex)
        .bind(&record.birthplace_insee)
        .bind(&record.identity_status)
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        debug!("patient upserted");
        Ok(())
    }

    async fn find_patient_by_ins(&self, oid: &str, value: &str) -> Result<InsMatch> {
        let mut conn = self.reader.acquire().await?;
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT ipp, merged_into FROM patients WHERE ins_oid = ? AND ins_value = ? ORDER BY ipp",
        )
        .bind(oid)
        .bind(value)
        .fetch_all(&mut *conn)
        .await?;
        let survivors: BTreeSet<&str> = rows
            .iter()
            .map(|(ipp, merged)| merged.as_deref().unwrap_or(ipp))
            .collect();
        match survivors.len() {
            0 => Ok(InsMatch::None),
            1 => {
                let survivor = survivors.into_iter().next().unwrap_or_default().to_owned();
                let holds_it = rows.iter().any(|(ipp, m)| *ipp == survivor && m.is_none());
                let merged_from = if holds_it {
                    None
                } else {
                    rows.iter()
                        .find(|(_, m)| m.is_some())
                        .map(|(ipp, _)| ipp.clone())
                };
                let row =
                    fetch_patient(&mut conn, &survivor)
                        .await?
                        .ok_or(StoreError::CorruptRow {
                            table: "patients",
                            id: "(IPP)".into(),
                            column: "merged_into",
                        })?;
                Ok(InsMatch::One(Box::new(FoundPatient {
                    record: row.into_record(),
                    merged_from,
                })))
            }
            _ => Ok(InsMatch::Several(
                survivors.into_iter().map(str::to_owned).collect(),
            )),
        }
    }

    async fn find_patient_by_ipp(&self, ipp: &str) -> Result<Option<FoundPatient>> {
        let mut conn = self.reader.acquire().await?;
        let Some(row) = fetch_patient(&mut conn, ipp).await? else {
            return Ok(None);
        };
        let Some(survivor) = row.merged_into.clone() else {
            return Ok(Some(FoundPatient {
                record: row.into_record(),
                merged_from: None,
            }));
        };
        let survivor =
            fetch_patient(&mut conn, &survivor)
                .await?
                .ok_or(StoreError::CorruptRow {
                    table: "patients",
                    id: "(IPP)".into(),
                    column: "merged_into",
                })?;
        Ok(Some(FoundPatient {
            record: survivor.into_record(),
            merged_from: Some(ipp.to_owned()),
        }))
    }

    async fn merge_patients(&self, surviving_ipp: &str, merged_ipp: &str) -> Result<()> {
        check_key("an IPP", surviving_ipp)?;
        check_key("an IPP", merged_ipp)?;
        if surviving_ipp == merged_ipp {
            return Err(StoreError::MergeSelf);
        }
        let mut tx = self.begin_write().await?;
        let survivor: Option<Option<String>> =
            sqlx::query_scalar("SELECT merged_into FROM patients WHERE ipp = ?")
                .bind(surviving_ipp)
                .fetch_optional(&mut *tx)
                .await?;
        let survivor = match survivor {
            None => return Err(unknown("patient", "(IPP)")),
            Some(Some(further)) => further,
            Some(None) => surviving_ipp.to_owned(),
        };
        if survivor == merged_ipp {
            return Err(StoreError::MergeSelf);
        }
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO patients (ipp, merged_into, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (ipp) DO UPDATE SET merged_into = excluded.merged_into,
                updated_at = excluded.updated_at",
        )
        .bind(merged_ipp)
        .bind(&survivor)
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE patients SET merged_into = ?, updated_at = ? WHERE merged_into = ?",
        )
        .bind(&survivor)
        .bind(now.0)
        .bind(merged_ipp)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        debug!(earlier_merges_moved = moved, "patients merged");
        Ok(())
    }

    async fn prune(
        &self,
        policy: &crate::prune::PrunePolicy,
        dry_run: bool,
        chunk_rows: u32,
    ) -> Result<crate::prune::PruneReport> {
        self.prune_sqlite(policy, dry_run, chunk_rows).await
    }
}
