//! The journal's error type.

use std::path::PathBuf;

use crate::codes;
use crate::model::{DeliveryId, DeliveryState, MessageId, MessageState, ReviewId};

/// Everything that can go wrong in the journal; [`StoreError::code`] gives the stable code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error(
        "cannot open the journal database {path}: {source}; check that the directory exists, is writable and is not on a network share"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The PostgreSQL journal database could not be reached or refused the login.
    #[error(
        "cannot connect to the journal database {target}: {source}; check the host and port, the user and password, that PostgreSQL accepts connections from this host (pg_hba.conf), and the TLS settings (sslmode, sslrootcert)"
    )]
    Connect {
        /// The database as `user@host:port/database` (never the password).
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied.
    #[error(
        "cannot apply the journal schema migrations: {0}; a database written by a newer Relais cannot be opened by an older one"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("journal database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A blob file operation failed.
    #[error("blob store: cannot {op} {path}: {source}; check free space and permissions")]
    BlobIo {
        /// What was being done ("write", "fsync", "rename", "read"...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A blob does not hash to its name.
    #[error(
        "blob {sha256} is corrupt (its content no longer matches its SHA-256); restore it from backup"
    )]
    BlobCorrupt {
        /// The expected SHA-256 (hex).
        sha256: String,
    },
    /// A blob referenced by the journal is missing.
    #[error("blob {sha256} is missing from the blob store; restore it from backup")]
    BlobMissing {
        /// The expected SHA-256 (hex).
        sha256: String,
    },
    /// An id unknown to the journal.
    #[error("the journal has no {what} with id {id}")]
    UnknownId {
        /// "message", "document", "delivery", "review" or "patient".
        what: &'static str,
        /// The id as given (never a patient identifier: IPPs are reported as "(IPP)").
        id: String,
    },
    /// A transition the state machine forbids.
    #[error("message state cannot go from {from} to {to}")]
    IllegalTransition {
        /// The state the caller claimed.
        from: MessageState,
        /// The state asked for.
        to: MessageState,
    },
    /// Optimistic concurrency: the message was not in the expected state.
    #[error(
        "message {id} is {actual}, not {expected}: another worker changed it first; reload and decide again"
    )]
    StaleState {
        /// The message.
        id: MessageId,
        /// The state the caller expected.
        expected: MessageState,
        /// The state found.
        actual: MessageState,
    },
    /// A delivery not currently claimed.
    #[error(
        "delivery {id} is {state}, not in flight: its lease expired and another worker took it, or it was already completed"
    )]
    DeliveryNotInFlight {
        /// The delivery.
        id: DeliveryId,
        /// Its state now.
        state: DeliveryState,
    },
    /// A review no longer open.
    #[error("review {id} is already resolved")]
    ReviewNotOpen {
        /// The review.
        id: ReviewId,
    },
    /// A merge of an IPP into itself.
    #[error(
        "cannot merge a patient into itself (the two IPPs are the same, or already merged together)"
    )]
    MergeSelf,
    /// A row with a value the code does not understand.
    #[error(
        "journal row {table}#{id} holds an unexpected {column}; was the database edited by hand or by a newer Relais?"
    )]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The row id (or key).
        id: String,
        /// The column.
        column: &'static str,
    },
    /// An argument the store refuses.
    #[error("invalid argument: {0}")]
    InvalidInput(String),
    /// The shared transaction this call was part of could not be committed (see
    /// `group.rs`): nothing of the call was kept.
    #[error(
        "journal commit failed, nothing of this step was kept: {0}; check free space and the journal's disk"
    )]
    GroupCommit(String),
    /// The disk holding the data directory is full (ENOSPC or quota on a blob write, SQLite's
    /// `SQLITE_FULL`): nothing of the step was kept. Not fatal: the daemon leaves new mail on
    /// the mail server and retries until space is freed (see `Engine::run`).
    #[error(
        "data directory full ({0}): nothing of this step was kept and new mail stays on the mail server; free space on the data directory's disk and Relais resumes by itself"
    )]
    DiskFull(String),
    /// The database refused to change or delete an audit event.
    #[error("audit events are append-only: the database refused to change or delete one")]
    EventImmutable,
}

impl StoreError {
    /// The stable code of this error (see [`crate::codes`]).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } | StoreError::Connect { .. } => codes::STORE_OPEN,
            StoreError::Migrate(_) => codes::STORE_MIGRATE,
            StoreError::Database(_) => codes::STORE_DB,
            StoreError::BlobIo { .. } => codes::STORE_BLOB_IO,
            StoreError::BlobCorrupt { .. } => codes::STORE_BLOB_CORRUPT,
            StoreError::BlobMissing { .. } => codes::STORE_BLOB_MISSING,
            StoreError::UnknownId { .. } => codes::STORE_UNKNOWN_ID,
            StoreError::IllegalTransition { .. } => codes::STORE_ILLEGAL_TRANSITION,
            StoreError::StaleState { .. } => codes::STORE_STALE_STATE,
            StoreError::DeliveryNotInFlight { .. } => codes::STORE_DELIVERY_NOT_IN_FLIGHT,
            StoreError::ReviewNotOpen { .. } => codes::STORE_REVIEW_NOT_OPEN,
            StoreError::MergeSelf => codes::STORE_MERGE_SELF,
            StoreError::CorruptRow { .. } => codes::STORE_CORRUPT_ROW,
            StoreError::InvalidInput(_) => codes::STORE_INVALID_INPUT,
            StoreError::EventImmutable => codes::STORE_EVENT_IMMUTABLE,
            StoreError::GroupCommit(reason) if is_full_text(reason) => codes::STORE_DISK_FULL,
            StoreError::GroupCommit(_) => codes::STORE_DB,
            StoreError::DiskFull(_) => codes::STORE_DISK_FULL,
        }
    }

    /// Whether the step failed only because the data directory's disk is full: the caller
    /// may wait and retry once space is freed (nothing was kept).
    pub fn is_disk_full(&self) -> bool {
        self.code() == codes::STORE_DISK_FULL
    }
}

/// Why a write of this process was last refused for lack of space, until a write succeeds.
static LAST_DISK_FULL: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A [`StoreError::DiskFull`] with `reason`, remembered for [`data_dir_full`].
pub(crate) fn disk_full(reason: String) -> StoreError {
    if let Ok(mut last) = LAST_DISK_FULL.lock() {
        *last = Some(reason.clone());
    }
    StoreError::DiskFull(reason)
}

/// A write needing space succeeded: the data directory has room again.
pub(crate) fn disk_space_again() {
    if let Ok(mut last) = LAST_DISK_FULL.lock() {
        *last = None;
    }
}

/// Whether the data directory `dir` is still full, for a readiness probe: `None` when no write
/// of this process was refused for lack of space since the last one that succeeded (no I/O
/// then), or when a probe write of 64 KiB into `dir` now succeeds (space was freed: the
/// daemon's next cycle takes mail again); the reason of the last refusal otherwise.
pub fn data_dir_full(dir: &std::path::Path) -> Option<String> {
    use std::io::Write as _;
    let reason = LAST_DISK_FULL.lock().ok()?.clone()?;
    let probe = dir.join(".relais-space-probe");
    let wrote = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 64 * 1024])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    match wrote {
        Err(e) if is_full_io(&e) => Some(reason),
        _ => {
            disk_space_again();
            None
        }
    }
}

/// `ENOSPC` or `EDQUOT`: the file system has no room left (for this user).
pub(crate) fn is_full_io(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// SQLite's `SQLITE_FULL` message, or the OS's ENOSPC text, in an error turned into a string
/// (the shared commit of `group.rs` keeps only its text).
fn is_full_text(text: &str) -> bool {
    text.contains("database or disk is full") || text.contains("No space left on device")
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.message().contains(codes::STORE_EVENT_IMMUTABLE)
        {
            return StoreError::EventImmutable;
        }
        // SQLITE_FULL (13): the journal database or its WAL could not grow.
        if let sqlx::Error::Database(db) = &e
            && (db.code().as_deref() == Some("13") || is_full_text(db.message()))
        {
            return disk_full(format!("the journal database: {}", db.message()));
        }
        if let sqlx::Error::Io(io) = &e
            && is_full_io(io)
        {
            return disk_full(format!("the journal database: {io}"));
        }
        StoreError::Database(e)
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
