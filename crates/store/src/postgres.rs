//! [`PgJournal`]: the journal on PostgreSQL, for several Relais instances sharing one database.
//!
//! Same [`Journal`] contract as [`crate::SqliteJournal`], same tables and meanings (migrations
//! in `migrations/postgres/`, version for version with `migrations/sqlite/`). What differs, and
//! why:
//!
//! - **Raw mails are stored in the database** (table `blobs`, BYTEA keyed by SHA-256, identical
//!   content stored once), in the same transaction as the message row. Instances run on several
//!   hosts and any of them must be able to read a mail another one journaled, so the blobs cannot
//!   stay on one host's disk. [`Journal::read_raw`] still verifies the SHA-256 on every read.
//!   Size the database (and its backups) for the mail volume kept.
//! - **Durability** is PostgreSQL's: a call returns `Ok` once its transaction is committed,
//!   which with the default `synchronous_commit = on` means flushed to the WAL (and, with
//!   synchronous replication, to the standby). Do not turn `synchronous_commit` or `fsync` off on
//!   a journal database: a source acknowledges mail as soon as the journal says it is stored.
//! - **Concurrency** between instances comes from the database, not from a single writer:
//!   every method is one transaction (READ COMMITTED); state changes are conditional updates
//!   (`WHERE state = <expected>`, the optimistic check); dedup keys are unique indexes, so two
//!   instances ingesting the same mail at once get exactly one `New` and one `Duplicate`;
//!   sink workers claim deliveries with `FOR UPDATE SKIP LOCKED`; completions lock the message
//!   row so that closing a document and its message never misses a concurrent completion;
//!   enqueues of one ordering key, versions of one document set and patient merges are
//!   serialised by transaction-scoped advisory locks.
//! - **Time** is the database server's clock (`relais_now_ms()`), the one clock all instances
//!   share: leases taken on one host expire at the same moment for every other host. Times
//!   given by callers (`received_at`, `not_before`) are theirs.
//! - **Text** cannot hold NUL characters in PostgreSQL: in free text (error texts, review notes,
//!   sink answers, event details, patient traits) a NUL is stored as U+FFFD; keys (sink names,
//!   idempotency keys, IPPs...) containing NUL are refused as invalid input.
//!
//! The audit trail is append-only here too: statement triggers refuse UPDATE, DELETE and
//! TRUNCATE on `events` with the code `STORE-EVENT-IMMUTABLE`, for raw SQL as well. Only the
//! owner of the tables could drop those triggers: run the migrations as the schema owner and
//! the instances under a role granted SELECT, INSERT, UPDATE (and USAGE on the sequences) only.
//!
//! TLS to the server is configured in the URL (`sslmode=verify-full&sslrootcert=/path/ca.pem`),
//! with rustls; the platform's trust store is used when no root is given. An instance on the
//! database host may use the Unix socket instead
//! (`postgres://relais@localhost/relais?host=/var/run/postgresql`).
//!
//! Latency note: sqlx 0.9.0 does not set `TCP_NODELAY` on its sockets (upstream issue
//! launchbadge/sqlx#4335, fixed after 0.9.0), so a statement carrying a large value (a mail)
//! over TCP can wait for the server's delayed ACK (about 40 ms). Throughput with several
//! workers is less affected; `cargo update -p sqlx-core` once a fixed release is out.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{FromRow, Row};
use tracing::{debug, info, warn};

use crate::blob::sha256_hex;
use crate::error::{Result, StoreError};
use crate::journal::Journal;
use crate::leases::{LeaseInfo, Leases};
use crate::model::*;
use crate::rows::*;

/// How [`PgJournal::open_with`] connects.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`, with optional parameters such as
    /// `sslmode=verify-full&sslrootcert=/etc/relais/pg-ca.pem`, or `host=/var/run/postgresql`
    /// for the Unix socket. The password may also come from `PGPASSWORD` or `~/.pgpass`.
    pub url: String,
    /// Most connections this instance opens (default 10). Each journal call holds one for the
    /// length of its transaction; sink workers and pipeline stages run concurrently.
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing (default 30 s).
    pub acquire_timeout: Duration,
    /// The `application_name` shown in `pg_stat_activity` (default `relais`); naming each
    /// instance (`relais@host-a`) tells the DBA who holds what.
    pub application_name: String,
}

impl PgConfig {
    /// Defaults: 10 connections, 30 s acquire timeout, application name `relais`.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            application_name: "relais".into(),
        }
    }
}

impl std::fmt::Debug for PgConfig {
    /// Never prints the URL, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("application_name", &self.application_name)
            .finish()
    }
}

/// The journal on PostgreSQL (raw mails included, see the module docs).
#[derive(Debug, Clone)]
pub struct PgJournal {
    /// The connection pool (crate-visible so that other stores on the same database can share
    /// it).
    pub(crate) pool: PgPool,
    /// `user@host:port/database`, for messages.
    target: String,
}

/// Longest sink name, idempotency or ordering key, worker name, actor or code accepted.
const MAX_KEY_LEN: usize = 1024;
/// Most rows a list query returns.
const MAX_LIST: u32 = 10_000;

/// Namespaces of the transaction-scoped advisory locks (first key of the two-key form; the
/// second is a hash of what is locked). "RLS" + a small number, unlikely to meet anyone else's.
const LOCK_ENQUEUE: i32 = 0x524C_5301;
const LOCK_DOCUMENT_SET: i32 = 0x524C_5302;
const LOCK_PATIENT_MERGE: i32 = 0x524C_5303;

/// How many times an ingest whose insert conflicted with a row it cannot see is retried (a
/// conflicting transaction that rolled back in between).
const INGEST_ATTEMPTS: u32 = 3;

fn check_key(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} must not contain NUL characters"
        )));
    }
    Ok(())
}

fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// JSON as PostgreSQL's JSONB accepts it (no `\u0000` in strings or keys).
fn json_text(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if !s.contains("\\u0000") {
        return s;
    }
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(o) => {
                let entries = std::mem::take(o);
                for (k, mut v) in entries {
                    scrub(&mut v);
                    o.insert(k.replace('\0', "\u{FFFD}"), v);
                }
            }
            _ => {}
        }
    }
    let mut v = v.clone();
    scrub(&mut v);
    v.to_string()
}

/// A 32-bit key for an advisory lock on `parts` (collisions only serialise a little more).
fn lock_key(parts: &[&str]) -> i32 {
    let mut joined = Vec::new();
    for p in parts {
        joined.extend_from_slice(p.as_bytes());
        joined.push(0x1f);
    }
    let d = Sha256::digest(&joined);
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

async fn advisory_lock(conn: &mut PgConnection, namespace: i32, key: i32) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(namespace)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A blocking task that panicked or was cancelled (shutdown).
fn task_err(op: &'static str, e: tokio::task::JoinError) -> StoreError {
    StoreError::BlobIo {
        op,
        path: "(database)".into(),
        source: std::io::Error::other(e),
    }
}

async fn hash_off_thread(raw: Vec<u8>) -> Result<(Vec<u8>, String)> {
    tokio::task::spawn_blocking(move || {
        let sha = sha256_hex(&raw);
        (raw, sha)
    })
    .await
    .map_err(|e| task_err("hash the mail", e))
}

// --- Rows ------------------------------------------------------------------------------------

// Column lists (JSONB read back as text), as macros so that queries stay `&'static str`.
macro_rules! message_cols {
    () => {
        "id, state, source_kind, imap_mailbox, imap_uidvalidity, imap_uid, maildir_folder, \
         maildir_name, folder_path, message_id, sha256, size, received_at, created_at, \
         updated_at, last_error_code, last_error_text"
    };
}
macro_rules! event_cols {
    () => {
        "id, message_id, at, kind, state_before, state_after, detail::text AS detail, \
         actor_kind, actor_name"
    };
}
macro_rules! document_cols {
    () => {
        "id, message_id, cda_id, set_id, version, type_code, patient_ipp, \
         validation::text AS validation, state, replaces, superseded_by, created_at, updated_at"
    };
}
macro_rules! delivery_cols {
    () => {
        "id, document_id, sink, idempotency_key, ordering_key, payload, state, attempts, \
         not_before, lease_owner, lease_until, last_error, outcome_code, outcome_text, \
         created_at, completed_at"
    };
}
macro_rules! review_cols {
    () => {
        "id, message_id, document_id, reason_code, reason_text, status, resolution_ipp, \
         resolution_note, resolved_by, resolved_at, created_at"
    };
}
macro_rules! patient_cols {
    ($p:literal) => {
        concat!(
            $p,
            "ipp, ",
            $p,
            "ins_oid, ",
            $p,
            "ins_value, ",
            $p,
            "birth_family, ",
            $p,
            "given_birth_first, ",
            $p,
            "birth_given_names, ",
            $p,
            "birth_date, ",
            $p,
            "sex, ",
            $p,
            "birthplace_insee, ",
            $p,
            "identity_status"
        )
    };
}

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

/// Appends an event (the only statement that ever touches `events`), at the transaction's time.
async fn append_event(
    conn: &mut PgConnection,
    id: MessageId,
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
         VALUES ($1, relais_now_ms(), $2, $3, $4, $5::jsonb, $6, $7)",
    )
    .bind(id.0)
    .bind(&event.kind)
    .bind(before.map(MessageState::as_str))
    .bind(after.map(MessageState::as_str))
    .bind(json_text(&event.detail))
    .bind(actor_kind)
    .bind(actor_name)
    .execute(conn)
    .await?;
    Ok(())
}

/// The message already journaled under the same source key or Message-ID + hash, if any.
async fn find_duplicate(
    conn: &mut PgConnection,
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
                 AND imap_mailbox = $1 AND imap_uidvalidity = $2 AND imap_uid = $3",
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
                 AND maildir_folder = $1 AND maildir_name = $2",
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
            "SELECT id FROM messages WHERE message_id = $1 AND sha256 = $2 ORDER BY id LIMIT 1",
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

/// Records the outcome of an in-flight delivery (row locked first, so two completions of one
/// delivery cannot both succeed); returns its new state, document and message.
async fn complete_in(
    tx: &mut PgConnection,
    id: DeliveryId,
    outcome: &Outcome,
) -> Result<(DeliveryState, DocId, MessageId)> {
    let row: Option<(String, i64, String)> =
        sqlx::query_as("SELECT state, document_id, sink FROM deliveries WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
    let (state, doc, sink) = row.ok_or_else(|| unknown("delivery", id))?;
    let state = parse_col(DeliveryState::parse(&state), "deliveries", id.0, "state")?;
    if state != DeliveryState::InFlight {
        return Err(StoreError::DeliveryNotInFlight { id, state });
    }
    let (new_state, code, detail, kind) = match &outcome {
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
    let code = code.map(text);
    sqlx::query(
        "UPDATE deliveries SET state = $1, outcome_code = $2, outcome_text = $3,
                completed_at = relais_now_ms(), updated_at = relais_now_ms(),
                lease_owner = NULL, lease_until = NULL
         WHERE id = $4 AND state = 'in_flight'",
    )
    .bind(new_state.as_str())
    .bind(code.as_deref())
    .bind(text(detail).as_ref())
    .bind(id.0)
    .execute(&mut *tx)
    .await?;
    let message = message_of_document(&mut *tx, DocId(doc)).await?;
    let event = Event::system(kind).with_detail(
        json!({ "delivery": id.0, "doc": doc, "sink": sink, "code": code.as_deref() }),
    );
    append_event(&mut *tx, message, None, None, &event).await?;
    Ok((new_state, DocId(doc), message))
}

async fn message_state(conn: &mut PgConnection, id: MessageId) -> Result<MessageState> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM messages WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    let state = state.ok_or_else(|| unknown("message", id))?;
    parse_col(MessageState::parse(&state), "messages", id.0, "state")
}

async fn message_of_document(conn: &mut PgConnection, doc: DocId) -> Result<MessageId> {
    let id: Option<i64> = sqlx::query_scalar("SELECT message_id FROM documents WHERE id = $1")
        .bind(doc.0)
        .fetch_optional(&mut *conn)
        .await?;
    id.map(MessageId).ok_or_else(|| unknown("document", doc))
}

async fn fetch_patient(conn: &mut PgConnection, ipp: &str) -> Result<Option<PatientRow>> {
    Ok(sqlx::query_as::<_, PatientRow>(concat!(
        "SELECT ",
        patient_cols!(""),
        " FROM patients WHERE ipp = $1"
    ))
    .bind(ipp)
    .fetch_optional(&mut *conn)
    .await?)
}

impl PgJournal {
    /// Connects with default settings (see [`PgConfig`]) and applies the embedded migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(PgConfig::new(url)).await
    }

    /// Connects with explicit settings and applies the embedded migrations (under
    /// PostgreSQL's advisory lock: instances starting together migrate once).
    pub async fn open_with(config: PgConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|source| StoreError::Connect {
                target: "(the configured URL cannot be parsed)".into(),
                source,
            })?
            .application_name(&config.application_name);
        let target = format!(
            "{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                target: target.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        info!(database = %target, "journal opened (postgresql)");
        Ok(PgJournal { pool, target })
    }

    /// The database as `user@host:port/database`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Closes the pool cleanly. Dropping the journal without calling this is safe: every
    /// committed transaction is already durable.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Journal for PgJournal {
    async fn ingest(&self, req: IngestRequest<'_>) -> Result<IngestOutcome> {
        let mid = req.message_id.as_deref().map(text);
        if let Some(mid) = &mid {
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
        let (raw, sha) = hash_off_thread(req.raw.to_vec()).await?;
        let mid = mid.as_deref();
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
        for _ in 0..INGEST_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            // Insert first: a unique dedup key makes a concurrent ingest of the same mail wait
            // for this one and then do nothing (and the other way round).
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (state, source_kind, imap_mailbox, imap_uidvalidity, imap_uid,
                    maildir_folder, maildir_name, folder_path, message_id, sha256, size,
                    received_at, created_at, updated_at)
                 VALUES ('received', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                    relais_now_ms(), relais_now_ms())
                 ON CONFLICT DO NOTHING
                 RETURNING id",
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
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                // A dedup key is taken (the statement waited for its transaction to commit):
                // a new statement sees the message that holds it.
                let Some((existing, by)) = find_duplicate(&mut tx, &req.source, mid, &sha).await?
                else {
                    // The conflicting transaction rolled back after all: try again.
                    tx.rollback().await?;
                    continue;
                };
                let event = Event::system(event_kinds::DUPLICATE_SEEN).with_detail(json!({
                    "by": by,
                    "source": req.source.kind(),
                    "size": size,
                }));
                append_event(&mut tx, existing, None, None, &event).await?;
                tx.commit().await?;
                debug!(message = existing.0, ?by, "duplicate mail");
                return Ok(IngestOutcome::Duplicate { existing, by });
            };
            let id = MessageId(id);
            sqlx::query(
                "INSERT INTO blobs (sha256, size, data, created_at)
                 VALUES ($1, $2, $3, relais_now_ms())
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&sha)
            .bind(size)
            .bind(raw.as_slice())
            .execute(&mut *tx)
            .await?;
            let event = Event::system(event_kinds::RECEIVED).with_detail(json!({
                "source": req.source.kind(),
                "size": size,
            }));
            append_event(&mut tx, id, None, Some(MessageState::Received), &event).await?;
            tx.commit().await?;
            debug!(message = id.0, size, "mail journaled");
            return Ok(IngestOutcome::New(id));
        }
        Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "ingest: a dedup key stayed taken by uncommitted work after {INGEST_ATTEMPTS} attempts"
        ))))
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .map(MessageRow::into_record)
        .transpose()
    }

    async fn read_raw(&self, id: MessageId) -> Result<Vec<u8>> {
        let row: Option<(String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT m.sha256, b.data FROM messages m LEFT JOIN blobs b ON b.sha256 = m.sha256
             WHERE m.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let (sha, data) = row.ok_or_else(|| unknown("message", id))?;
        let result = match data {
            None => Err(StoreError::BlobMissing { sha256: sha }),
            Some(data) => tokio::task::spawn_blocking(move || {
                if sha256_hex(&data) == sha {
                    Ok(data)
                } else {
                    Err(StoreError::BlobCorrupt { sha256: sha })
                }
            })
            .await
            .map_err(|e| task_err("verify the raw mail", e))?,
        };
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
        let mut tx = self.pool.begin().await?;
        let (code, err_text) = match &event.error {
            Some(e) => (Some(text(&e.code)), Some(text(&e.text))),
            None => (None, None),
        };
        // The optimistic check: a concurrent transition of the same message makes this one
        // wait, then find the state changed and update nothing.
        let done = sqlx::query(
            "UPDATE messages SET state = $1, updated_at = relais_now_ms(),
                last_error_code = $2, last_error_text = $3,
                answer = CASE WHEN $4 THEN COALESCE(answer, 'due') ELSE answer END
             WHERE id = $5 AND state = $6",
        )
        .bind(to.as_str())
        .bind(code.as_deref())
        .bind(err_text.as_deref())
        .bind(to.is_outcome())
        .bind(id.0)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            let actual = message_state(&mut tx, id).await?;
            debug!(message = id.0, %from, %actual, "stale transition refused");
            return Err(StoreError::StaleState {
                id,
                expected: from,
                actual,
            });
        }
        append_event(&mut tx, id, Some(from), Some(to), &event).await?;
        tx.commit().await?;
        debug!(message = id.0, %from, %to, "message state changed");
        Ok(())
    }

    async fn record_event(&self, id: MessageId, event: Event) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        message_state(&mut tx, id).await?;
        if let Some(e) = &event.error {
            sqlx::query(
                "UPDATE messages SET last_error_code = $1, last_error_text = $2,
                    updated_at = relais_now_ms()
                 WHERE id = $3",
            )
            .bind(text(&e.code).as_ref())
            .bind(text(&e.text).as_ref())
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        }
        append_event(&mut tx, id, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn oldest_in_state(
        &self,
        state: MessageState,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(state.as_str())
        .bind(after.map_or(0, |id| id.0))
        .bind(i64::from(limit.min(MAX_LIST)))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(MessageRow::into_record)
        .collect()
    }

    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages
             WHERE ($1::text IS NULL OR state = $1)
               AND ($2::bigint IS NULL OR received_at >= $2)
               AND ($3::bigint IS NULL OR received_at < $3)
               AND ($4::bigint IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(filter.state.map(MessageState::as_str))
        .bind(filter.received_from.map(|t| t.0))
        .bind(filter.received_until.map(|t| t.0))
        .bind(filter.before.map(|id| id.0))
        .bind(i64::from(filter.limit.min(MAX_LIST)))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(MessageRow::into_record)
        .collect()
    }

    async fn message_events(&self, id: MessageId) -> Result<Vec<EventRecord>> {
        sqlx::query_as::<_, EventRow>(concat!(
            "SELECT ",
            event_cols!(),
            " FROM events WHERE message_id = $1 ORDER BY id"
        ))
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(EventRow::into_record)
        .collect()
    }

    async fn counts_by_state(&self) -> Result<Vec<(MessageState, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM messages GROUP BY state")
                .fetch_all(&self.pool)
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

    async fn answers_due(&self, limit: u32) -> Result<Vec<MessageId>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM messages WHERE answer = 'due' ORDER BY id LIMIT $1")
                .bind(i64::from(limit.min(MAX_LIST)))
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    async fn record_answer(&self, id: MessageId, answer: AnswerState, event: Event) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        message_state(&mut tx, id).await?;
        sqlx::query("UPDATE messages SET answer = $1, updated_at = relais_now_ms() WHERE id = $2")
            .bind(answer.as_str())
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        append_event(&mut tx, id, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn register_document(
        &self,
        message: MessageId,
        key: &DocumentKey,
        meta: &DocumentMeta,
    ) -> Result<DocumentOutcome> {
        check_key("a CDA id", &key.cda_id)?;
        check_key("a CDA setId", &key.set_id)?;
        if let Some(ipp) = &meta.patient_ipp {
            check_key("an IPP", ipp)?;
        }
        let mut tx = self.pool.begin().await?;
        message_state(&mut tx, message).await?;
        // One registration per document set at a time, across instances: the version check
        // below and the insert must see the same current version.
        advisory_lock(&mut tx, LOCK_DOCUMENT_SET, lock_key(&[&key.set_id])).await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM documents WHERE cda_id = $1")
                .bind(&key.cda_id)
                .fetch_optional(&mut *tx)
                .await?;
        let current: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, version FROM documents WHERE set_id = $1 AND superseded_by IS NULL
             ORDER BY COALESCE(version, 1) DESC, id DESC LIMIT 1",
        )
        .bind(&key.set_id)
        .fetch_optional(&mut *tx)
        .await?;
        let replaces = match (existing, current) {
            (Some(doc), _) => {
                return duplicate_document(tx, message, doc).await;
            }
            (None, Some((cur, cur_version)))
                if key.version.unwrap_or(1) <= cur_version.unwrap_or(1) =>
            {
                let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
                    .with_detail(json!({ "outcome": "older_version", "current": cur }));
                append_event(&mut tx, message, None, None, &event).await?;
                tx.commit().await?;
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
        let doc: Option<i64> = sqlx::query_scalar(
            "INSERT INTO documents (message_id, cda_id, set_id, version, type_code, patient_ipp,
                validation, state, replaces, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, relais_now_ms(), relais_now_ms())
             ON CONFLICT (cda_id) DO NOTHING
             RETURNING id",
        )
        .bind(message.0)
        .bind(&key.cda_id)
        .bind(&key.set_id)
        .bind(key.version)
        .bind(opt_text(&meta.type_code).as_deref())
        .bind(&meta.patient_ipp)
        .bind(meta.validation.as_ref().map(json_text))
        .bind(meta.state.as_str())
        .bind(replaces)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(doc) = doc else {
            // The same CDA id under another setId, registered concurrently: a duplicate.
            let doc: i64 = sqlx::query_scalar("SELECT id FROM documents WHERE cda_id = $1")
                .bind(&key.cda_id)
                .fetch_one(&mut *tx)
                .await?;
            return duplicate_document(tx, message, doc).await;
        };
        if let Some(old) = replaces {
            sqlx::query(
                "UPDATE documents SET superseded_by = $1, updated_at = relais_now_ms()
                 WHERE id = $2",
            )
            .bind(doc)
            .bind(old)
            .execute(&mut *tx)
            .await?;
        }
        let outcome = if replaces.is_some() {
            "new_version"
        } else {
            "new"
        };
        let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
            .with_detail(json!({ "outcome": outcome, "doc": doc, "replaces": replaces }));
        append_event(&mut tx, message, None, None, &event).await?;
        tx.commit().await?;
        debug!(message = message.0, doc, outcome, "document registered");
        Ok(match replaces {
            Some(old) => DocumentOutcome::NewVersion {
                doc: DocId(doc),
                replaces: DocId(old),
            },
            None => DocumentOutcome::New(DocId(doc)),
        })
    }

    async fn get_document(&self, id: DocId) -> Result<Option<DocumentRecord>> {
        sqlx::query_as::<_, DocumentRow>(concat!(
            "SELECT ",
            document_cols!(),
            " FROM documents WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .map(DocumentRow::into_record)
        .transpose()
    }

    async fn documents_of_message(&self, id: MessageId) -> Result<Vec<DocumentRecord>> {
        sqlx::query_as::<_, DocumentRow>(concat!(
            "SELECT ",
            document_cols!(),
            " FROM documents WHERE message_id = $1 ORDER BY id"
        ))
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(DocumentRow::into_record)
        .collect()
    }

    async fn update_document(&self, id: DocId, update: &DocumentUpdate) -> Result<()> {
        if let Some(ipp) = &update.patient_ipp {
            check_key("an IPP", ipp)?;
        }
        let mut tx = self.pool.begin().await?;
        let message = message_of_document(&mut tx, id).await?;
        sqlx::query(
            "UPDATE documents SET state = COALESCE($1, state),
                patient_ipp = COALESCE($2, patient_ipp),
                validation = COALESCE($3::jsonb, validation),
                updated_at = relais_now_ms()
             WHERE id = $4",
        )
        .bind(update.state.map(DocumentState::as_str))
        .bind(&update.patient_ipp)
        .bind(update.validation.as_ref().map(json_text))
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let event = Event::system(event_kinds::DOCUMENT_UPDATED).with_detail(json!({
            "doc": id.0,
            "state": update.state.map(DocumentState::as_str),
            "patient_set": update.patient_ipp.is_some(),
            "validation_set": update.validation.is_some(),
        }));
        append_event(&mut tx, message, None, None, &event).await?;
        tx.commit().await?;
        debug!(doc = id.0, state = ?update.state, "document updated");
        Ok(())
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
        let mut tx = self.pool.begin().await?;
        // Enqueues of one (sink, ordering key) take their ids one after the other, each after
        // the previous one committed: ids then follow commit order within the key, so a
        // claimer never sees a later delivery of the key before an earlier one.
        advisory_lock(&mut tx, LOCK_ENQUEUE, lock_key(&[sink, ordering_key])).await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM deliveries WHERE sink = $1 AND idempotency_key = $2",
        )
        .bind(sink)
        .bind(idempotency_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            debug!(delivery = id, "delivery already enqueued");
            return Ok(DeliveryId(id));
        }
        let message = message_of_document(&mut tx, doc).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deliveries (document_id, sink, idempotency_key, ordering_key, payload,
                state, attempts, not_before, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, relais_now_ms(), relais_now_ms(),
                relais_now_ms())
             ON CONFLICT (sink, idempotency_key) DO NOTHING
             RETURNING id",
        )
        .bind(doc.0)
        .bind(sink)
        .bind(idempotency_key)
        .bind(ordering_key)
        .bind(payload)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            // Enqueued concurrently under another ordering key: the first one stays.
            let id: i64 = sqlx::query_scalar(
                "SELECT id FROM deliveries WHERE sink = $1 AND idempotency_key = $2",
            )
            .bind(sink)
            .bind(idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            debug!(delivery = id, "delivery already enqueued");
            return Ok(DeliveryId(id));
        };
        let event = Event::system(event_kinds::DELIVERY_ENQUEUED)
            .with_detail(json!({ "delivery": id, "doc": doc.0, "sink": sink }));
        append_event(&mut tx, message, None, None, &event).await?;
        tx.commit().await?;
        debug!(delivery = id, doc = doc.0, "delivery enqueued");
        Ok(DeliveryId(id))
    }

    async fn claim_next(
        &self,
        sink: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>> {
        check_key("a sink name", sink)?;
        check_key("a worker name", worker)?;
        // The oldest claimable delivery that no other claimer holds right now (SKIP LOCKED);
        // the ordering rule reads the open deliveries as of this statement, where a delivery
        // being claimed by someone else is still open, so a later one of its key never passes.
        let row = sqlx::query_as::<_, DeliveryRow>(concat!(
            "WITH next AS (
                 SELECT d.id FROM deliveries d
                 WHERE d.sink = $1
                   AND d.state IN ('pending', 'in_flight')
                   AND (d.state = 'pending' OR d.lease_until <= relais_now_ms())
                   AND d.not_before <= relais_now_ms()
                   AND NOT EXISTS (
                       SELECT 1 FROM deliveries e
                       WHERE e.sink = d.sink AND e.ordering_key = d.ordering_key
                         AND e.id < d.id AND e.state IN ('pending', 'in_flight'))
                 ORDER BY d.id
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED)
             UPDATE deliveries
             SET state = 'in_flight', lease_owner = $2, lease_until = relais_now_ms() + $3,
                 attempts = attempts + 1, updated_at = relais_now_ms()
             WHERE id = (SELECT id FROM next)
             RETURNING ",
            delivery_cols!()
        ))
        .bind(sink)
        .bind(worker)
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await?;
        let delivery = row.map(DeliveryRow::into_record).transpose()?;
        if let Some(d) = &delivery {
            debug!(delivery = d.id.0, attempts = d.attempts, "delivery claimed");
        }
        Ok(delivery)
    }

    async fn complete(&self, id: DeliveryId, outcome: Outcome) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (state, _, _) = complete_in(&mut tx, id, &outcome).await?;
        tx.commit().await?;
        debug!(delivery = id.0, state = %state, "delivery completed");
        Ok(())
    }

    async fn complete_delivered(&self, id: DeliveryId, detail: &str) -> Result<Closed> {
        let mut tx = self.pool.begin().await?;
        let outcome = Outcome::Delivered {
            detail: detail.to_string(),
        };
        let (_, doc, message) = complete_in(&mut tx, id, &outcome).await?;
        // Completions of the deliveries of one message queue here, so that the last one sees
        // every other as delivered (without the lock, two concurrent last completions would
        // each see the other still in flight, and nobody would file).
        sqlx::query("SELECT 1 FROM messages WHERE id = $1 FOR NO KEY UPDATE")
            .bind(message.0)
            .execute(&mut *tx)
            .await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE document_id = $1 AND state <> 'delivered'",
        )
        .bind(doc.0)
        .fetch_one(&mut *tx)
        .await?;
        let mut closed = Closed::default();
        if open == 0 {
            sqlx::query(
                "UPDATE documents SET state = 'filed', updated_at = relais_now_ms() WHERE id = $1",
            )
            .bind(doc.0)
            .execute(&mut *tx)
            .await?;
            let event = Event::system(event_kinds::DOCUMENT_UPDATED).with_detail(json!({
                "doc": doc.0,
                "state": DocumentState::Filed.as_str(),
                "patient_set": false,
                "validation_set": false,
            }));
            append_event(&mut tx, message, None, None, &event).await?;
            closed.document_filed = true;
            let unfiled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM documents WHERE message_id = $1 AND state <> 'filed'",
            )
            .bind(message.0)
            .fetch_one(&mut *tx)
            .await?;
            if unfiled == 0 {
                let done = sqlx::query(
                    "UPDATE messages SET state = 'filed', updated_at = relais_now_ms(),
                        answer = COALESCE(answer, 'due')
                     WHERE id = $1 AND state = 'matched'",
                )
                .bind(message.0)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    append_event(
                        &mut tx,
                        message,
                        Some(MessageState::Matched),
                        Some(MessageState::Filed),
                        &Event::system("filed"),
                    )
                    .await?;
                    closed.message_filed = Some(message);
                }
            }
        }
        tx.commit().await?;
        debug!(delivery = id.0, ?closed, "delivery completed");
        Ok(closed)
    }

    async fn retry_later(&self, id: DeliveryId, not_before: Timestamp, error: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT state, document_id, attempts FROM deliveries WHERE id = $1 FOR UPDATE",
        )
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let (state, doc, attempts) = row.ok_or_else(|| unknown("delivery", id))?;
        let state = parse_col(DeliveryState::parse(&state), "deliveries", id.0, "state")?;
        if state != DeliveryState::InFlight {
            return Err(StoreError::DeliveryNotInFlight { id, state });
        }
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', not_before = $1, last_error = $2,
                lease_owner = NULL, lease_until = NULL, updated_at = relais_now_ms()
             WHERE id = $3 AND state = 'in_flight'",
        )
        .bind(not_before.0)
        .bind(text(error).as_ref())
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let message = message_of_document(&mut tx, DocId(doc)).await?;
        let event = Event::system(event_kinds::DELIVERY_RETRY).with_detail(json!({
            "delivery": id.0,
            "attempts": attempts,
            "not_before": not_before.0,
        }));
        append_event(&mut tx, message, None, None, &event).await?;
        tx.commit().await?;
        debug!(delivery = id.0, attempts, "delivery rescheduled");
        Ok(())
    }

    async fn pending_count(&self, sink: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE sink = $1 AND state IN ('pending', 'in_flight')",
        )
        .bind(sink)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>> {
        sqlx::query_as::<_, DeliveryRow>(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM deliveries WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .map(DeliveryRow::into_record)
        .transpose()
    }

    async fn deliveries_of_document(&self, doc: DocId) -> Result<Vec<Delivery>> {
        sqlx::query_as::<_, DeliveryRow>(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM deliveries WHERE document_id = $1 ORDER BY id"
        ))
        .bind(doc.0)
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let (message, doc) = match subject {
            ReviewSubject::Message(m) => {
                message_state(&mut tx, m).await?;
                (m, None)
            }
            ReviewSubject::Document(d) => (message_of_document(&mut tx, d).await?, Some(d.0)),
        };
        let find_open = "SELECT id FROM reviews WHERE message_id = $1
               AND document_id IS NOT DISTINCT FROM $2 AND reason_code = $3 AND status = 'open'";
        let existing: Option<i64> = sqlx::query_scalar(find_open)
            .bind(message.0)
            .bind(doc)
            .bind(reason_code)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(id) = existing {
            return Ok(ReviewId(id));
        }
        // The unique index on open reviews makes a concurrent opening of the same review wait
        // for this one, then do nothing.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO reviews (message_id, document_id, reason_code, reason_text, status, created_at)
             VALUES ($1, $2, $3, $4, 'open', relais_now_ms())
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(message.0)
        .bind(doc)
        .bind(reason_code)
        .bind(text(reason_text).as_ref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            let id: i64 = sqlx::query_scalar(find_open)
                .bind(message.0)
                .bind(doc)
                .bind(reason_code)
                .fetch_one(&mut *tx)
                .await?;
            return Ok(ReviewId(id));
        };
        let event = Event::system(event_kinds::REVIEW_OPENED)
            .with_detail(json!({ "review": id, "doc": doc, "reason_code": reason_code }));
        append_event(&mut tx, message, None, None, &event).await?;
        tx.commit().await?;
        debug!(
            review = id,
            message = message.0,
            reason_code,
            "review opened"
        );
        Ok(ReviewId(id))
    }

    async fn list_reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>> {
        sqlx::query_as::<_, ReviewRow>(concat!(
            "SELECT ",
            review_cols!(),
            " FROM reviews
             WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR reason_code = $2)
             ORDER BY id LIMIT $3"
        ))
        .bind(filter.status.map(ReviewStatus::as_str))
        .bind(&filter.reason_code)
        .bind(i64::from(filter.limit.min(MAX_LIST)))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ReviewRow::into_record)
        .collect()
    }

    async fn get_review(&self, id: ReviewId) -> Result<Option<Review>> {
        sqlx::query_as::<_, ReviewRow>(concat!(
            "SELECT ",
            review_cols!(),
            " FROM reviews WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        // Locked: of two reviewers deciding at once, the second waits and finds it resolved.
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT status, message_id FROM reviews WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let (status, message) = row.ok_or_else(|| unknown("review", id))?;
        if parse_col(ReviewStatus::parse(&status), "reviews", id.0, "status")? != ReviewStatus::Open
        {
            return Err(StoreError::ReviewNotOpen { id });
        }
        let (status, ipp, note) = match &resolution {
            Resolution::FiledTo { ipp } => (ReviewStatus::Filed, Some(ipp.as_str()), None),
            Resolution::Rejected { note } => (ReviewStatus::Rejected, None, Some(text(note))),
        };
        sqlx::query(
            "UPDATE reviews SET status = $1, resolution_ipp = $2, resolution_note = $3,
                resolved_by = $4, resolved_at = relais_now_ms()
             WHERE id = $5 AND status = 'open'",
        )
        .bind(status.as_str())
        .bind(ipp)
        .bind(note.as_deref())
        .bind(actor)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let event = Event::user(event_kinds::REVIEW_RESOLVED, actor)
            .with_detail(json!({ "review": id.0, "resolution": status.as_str() }));
        append_event(&mut tx, MessageId(message), None, None, &event).await?;
        tx.commit().await?;
        debug!(review = id.0, resolution = %status, "review resolved");
        Ok(())
    }

    async fn upsert_patient(&self, record: &PatientRecord) -> Result<()> {
        check_key("an IPP", &record.ipp)?;
        let ins_oid = record.ins.as_ref().map(|i| text(&i.oid));
        let ins_value = record.ins.as_ref().map(|i| text(&i.value));
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO patients (ipp, ins_oid, ins_value, birth_family, given_birth_first,
                birth_given_names, birth_date, sex, birthplace_insee, identity_status,
                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, relais_now_ms(), relais_now_ms())
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
        .bind(ins_oid.as_deref())
        .bind(ins_value.as_deref())
        .bind(opt_text(&record.birth_family).as_deref())
        .bind(opt_text(&record.given_birth_first).as_deref())
        .bind(opt_text(&record.birth_given_names).as_deref())
        .bind(opt_text(&record.birth_date).as_deref())
        .bind(opt_text(&record.sex).as_deref())
        .bind(opt_text(&record.birthplace_insee).as_deref())
        .bind(opt_text(&record.identity_status).as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        debug!("patient upserted");
        Ok(())
    }

    async fn find_patient_by_ins(&self, oid: &str, value: &str) -> Result<InsMatch> {
        let (oid, value) = (text(oid), text(value));
        // One snapshot for both reads: a merge committed in between cannot split them.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT ipp, merged_into FROM patients WHERE ins_oid = $1 AND ins_value = $2
             ORDER BY ipp",
        )
        .bind(oid.as_ref())
        .bind(value.as_ref())
        .fetch_all(&mut *tx)
        .await?;
        let survivors: BTreeSet<&str> = rows
            .iter()
            .map(|(ipp, merged)| merged.as_deref().unwrap_or(ipp))
            .collect();
        let found = match survivors.len() {
            0 => InsMatch::None,
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
                    fetch_patient(&mut tx, &survivor)
                        .await?
                        .ok_or(StoreError::CorruptRow {
                            table: "patients",
                            id: "(IPP)".into(),
                            column: "merged_into",
                        })?;
                InsMatch::One(Box::new(FoundPatient {
                    record: row.into_record(),
                    merged_from,
                }))
            }
            _ => InsMatch::Several(survivors.into_iter().map(str::to_owned).collect()),
        };
        tx.commit().await?;
        Ok(found)
    }

    async fn find_patient_by_ipp(&self, ipp: &str) -> Result<Option<FoundPatient>> {
        // The IPP and its survivor in one statement (one snapshot).
        let row = sqlx::query(concat!(
            "SELECT q.merged_into AS q_merged_into, ",
            patient_cols!("p."),
            " FROM patients q JOIN patients p ON p.ipp = COALESCE(q.merged_into, q.ipp)
             WHERE q.ipp = $1"
        ))
        .bind(ipp)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Unknown, or merged into a row that is gone (impossible with the foreign key).
            return Ok(None);
        };
        let merged: Option<String> = row.try_get("q_merged_into")?;
        let survivor = PatientRow::from_row(&row)?;
        Ok(Some(FoundPatient {
            record: survivor.into_record(),
            merged_from: merged.map(|_| ipp.to_owned()),
        }))
    }

    async fn merge_patients(&self, surviving_ipp: &str, merged_ipp: &str) -> Result<()> {
        check_key("an IPP", surviving_ipp)?;
        check_key("an IPP", merged_ipp)?;
        if surviving_ipp == merged_ipp {
            return Err(StoreError::MergeSelf);
        }
        let mut tx = self.pool.begin().await?;
        // Merges are rare and chain through each other: one at a time, across instances.
        advisory_lock(&mut tx, LOCK_PATIENT_MERGE, 0).await?;
        let survivor: Option<Option<String>> =
            sqlx::query_scalar("SELECT merged_into FROM patients WHERE ipp = $1")
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
        sqlx::query(
            "INSERT INTO patients (ipp, merged_into, created_at, updated_at)
             VALUES ($1, $2, relais_now_ms(), relais_now_ms())
             ON CONFLICT (ipp) DO UPDATE SET merged_into = excluded.merged_into,
                updated_at = excluded.updated_at",
        )
        .bind(merged_ipp)
        .bind(&survivor)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE patients SET merged_into = $1, updated_at = relais_now_ms()
             WHERE merged_into = $2",
        )
        .bind(&survivor)
        .bind(merged_ipp)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        debug!(earlier_merges_moved = moved, "patients merged");
        Ok(())
    }
}

/// Records that `message` carried an already registered document, and commits.
async fn duplicate_document(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    message: MessageId,
    doc: i64,
) -> Result<DocumentOutcome> {
    let event = Event::system(event_kinds::DOCUMENT_REGISTERED)
        .with_detail(json!({ "outcome": "duplicate", "doc": doc }));
    append_event(&mut tx, message, None, None, &event).await?;
    tx.commit().await?;
    debug!(message = message.0, doc, "document already registered");
    Ok(DocumentOutcome::Duplicate(DocId(doc)))
}

// --- Leases ----------------------------------------------------------------------------------

#[derive(FromRow)]
struct LeaseRow {
    holder: String,
    acquired_at: i64,
    renewed_at: i64,
    expires_at: i64,
    expired: bool,
}

#[async_trait]
impl Leases for PgJournal {
    async fn try_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        crate::leases::check_lease_args(name, holder, ttl)?;
        // One statement: a concurrent attempt waits for this one, then sees the new holder.
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at)
             VALUES ($1, $2, relais_now_ms(), relais_now_ms(), relais_now_ms() + $3)
             ON CONFLICT (name) DO UPDATE SET
                holder = excluded.holder,
                acquired_at = CASE WHEN leases.holder = excluded.holder
                                   THEN leases.acquired_at ELSE excluded.acquired_at END,
                renewed_at = excluded.renewed_at,
                expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(millis(ttl))
        .fetch_optional(&self.pool)
        .await?;
        debug!(acquired = got.is_some(), "lease acquisition");
        Ok(got.is_some())
    }

    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        crate::leases::check_lease_args(name, holder, ttl)?;
        let done = sqlx::query(
            "UPDATE leases SET renewed_at = relais_now_ms(), expires_at = relais_now_ms() + $3
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(millis(ttl))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease(&self, name: &str) -> Result<Option<LeaseInfo>> {
        let row = sqlx::query_as::<_, LeaseRow>(
            "SELECT holder, acquired_at, renewed_at, expires_at,
                expires_at <= relais_now_ms() AS expired
             FROM leases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| LeaseInfo {
            holder: r.holder,
            acquired_at: Timestamp(r.acquired_at),
            renewed_at: Timestamp(r.renewed_at),
            expires_at: Timestamp(r.expires_at),
            expired: r.expired,
        }))
    }

    async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<(String, LeaseInfo)>> {
        let rows: Vec<(String, String, i64, i64, i64, bool)> = sqlx::query_as(
            "SELECT name, holder, acquired_at, renewed_at, expires_at,
                expires_at <= relais_now_ms() AS expired
             FROM leases WHERE left(name, char_length($1)) = $1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, holder, acquired_at, renewed_at, expires_at, expired)| {
                    let info = LeaseInfo {
                        holder,
                        acquired_at: Timestamp(acquired_at),
                        renewed_at: Timestamp(renewed_at),
                        expires_at: Timestamp(expires_at),
                        expired,
                    };
                    (name, info)
                },
            )
            .collect())
    }
}
