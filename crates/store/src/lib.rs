//! The durable journal of the Relais inbound pipeline.
//!
//! Every mail Relais receives is written here *before* its source is acknowledged, and every
//! step taken on it afterwards is recorded here, so that a crash at any point loses nothing and
//! files nothing twice, and so that an auditor can replay what happened to any message:
//!
//! - **raw mails** go to a content-addressed [`BlobStore`] (SHA-256 names, fsync then rename),
//!   verified on every read;
//! - **messages** are rows with a [`MessageState`] machine (transitions enforced, optimistic
//!   concurrency) and an **append-only event log** (the audit trail; the database itself
//!   refuses to update or delete events). Duplicates are recognised by source key (IMAP
//!   mailbox + UIDVALIDITY + UID, Maildir name) and by Message-ID + SHA-256;
//! - **documents** are keyed by CDA id and versioned by setId / versionNumber;
//! - **deliveries** form the sink outbox: idempotent enqueue, leases that expire (crash
//!   safety), retries with `not_before`, and per-patient ordering;
//! - a **review queue** holds what needs a human (codes 902..906 or rule codes);
//! - a **patient index** (IPP, INS, traits d'identité, PAM-FR identity status) with ADT A40
//!   merges.
//!
//! All of it sits behind the async [`Journal`] trait; [`SqliteJournal`] implements it on SQLite
//! (WAL, `synchronous=FULL`, one node), [`PgJournal`] on PostgreSQL (several instances on several
//! hosts sharing one database; raw mails stored in the database), each with its migrations
//! folder. [`Leases`] gives one instance at a time a job such as polling a mailbox. Ids are
//! database integers that are never reused. Logs (tracing) carry ids, states and codes only,
//! never patient data; [`PatientRecord`]'s `Debug` is redacted.

pub mod blob;
pub mod codes;
mod error;
mod group;
mod journal;
mod leases;
mod mailhdr;
mod model;
mod outbound;
mod postgres;
mod prune;
mod rows;
mod sqlite;

pub use blob::{BlobRef, BlobStore, sha256_hex};
pub use error::{Result, StoreError, data_dir_full};
pub use group::WriteStats;
pub use journal::Journal;
pub use leases::{LeaseInfo, Leases};
pub use mailhdr::message_id_of;
pub use model::*;
pub use outbound::*;
pub use postgres::{PgConfig, PgJournal};
pub use prune::{BlobReport, ClassReport, PrunePolicy, PruneReport, spawn_pruner};
pub use sqlite::{BLOB_DIR, DATABASE_FILE, SqliteConfig, SqliteJournal};
