//! Stable codes of the journal's errors (see [`crate::StoreError::code`]).
//!
//! They appear in logs and in the `relais` CLI output; they never change meaning once released.

/// The database could not be opened or created (path, permissions, disk, lock).
pub const STORE_OPEN: &str = "STORE-OPEN";
/// The schema migrations could not be applied (a newer or edited schema, or a failed statement).
pub const STORE_MIGRATE: &str = "STORE-MIGRATE";
/// Any other database error (I/O, lock timeout, constraint the store did not expect).
pub const STORE_DB: &str = "STORE-DB";
/// Reading, writing or syncing a raw blob file failed.
pub const STORE_BLOB_IO: &str = "STORE-BLOB-IO";
/// The disk of the data directory is full (ENOSPC, quota, SQLite's "database or disk is full"):
/// nothing of the failed step was kept; the daemon leaves new mail on the mail server and
/// resumes once space is freed.
pub const STORE_DISK_FULL: &str = "STORE-DISK-FULL";
/// A raw blob's bytes no longer hash to its name: the file was altered or the disk is failing.
pub const STORE_BLOB_CORRUPT: &str = "STORE-BLOB-CORRUPT";
/// A raw blob referenced by the journal is not on disk.
pub const STORE_BLOB_MISSING: &str = "STORE-BLOB-MISSING";
/// An id (message, document, delivery, review, patient) that the journal does not hold.
pub const STORE_UNKNOWN_ID: &str = "STORE-UNKNOWN-ID";
/// A state change that the message state machine does not allow (e.g. filed → parsed).
pub const STORE_ILLEGAL_TRANSITION: &str = "STORE-ILLEGAL-TRANSITION";
/// The message was not in the expected state: another worker moved it first.
pub const STORE_STALE_STATE: &str = "STORE-STALE-STATE";
/// A delivery was completed or rescheduled while it was not claimed (lease expired and taken
/// over, or already completed).
pub const STORE_DELIVERY_NOT_IN_FLIGHT: &str = "STORE-DELIVERY-NOT-IN-FLIGHT";
/// A review was resolved while it was no longer open.
pub const STORE_REVIEW_NOT_OPEN: &str = "STORE-REVIEW-NOT-OPEN";
/// A patient merge that would merge an IPP into itself (directly or through earlier merges).
pub const STORE_MERGE_SELF: &str = "STORE-MERGE-SELF";
/// A row holds a value the code does not know (a state name, a negative size): the database was
/// edited by hand or written by a newer Relais.
pub const STORE_CORRUPT_ROW: &str = "STORE-CORRUPT-ROW";
/// An argument the store refuses (empty sink name, malformed SHA-256, over-long key).
pub const STORE_INVALID_INPUT: &str = "STORE-INVALID-INPUT";
/// An attempt to change or delete an audit event (refused by the database itself).
pub const STORE_EVENT_IMMUTABLE: &str = "STORE-EVENT-IMMUTABLE";
