//! Errors of the Annuaire look-ups and imports (the liste blanche has its own,
//! [`crate::liste_blanche::LoadError`]).

use std::path::PathBuf;

use crate::extract::ExtractError;
use crate::ldap::LdapError;
use crate::model::QueryError;

/// Everything that can go wrong when importing or searching the Annuaire; each message says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query itself is wrong.
    #[error("invalid Annuaire query: {0}")]
    Query(#[from] QueryError),
    /// The database could not be opened or created.
    #[error(
        "cannot open the Annuaire database {}: {source}; check that the data directory exists \
         and is writable",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied.
    #[error(
        "cannot apply the Annuaire database migrations: {0}; a database written by a newer \
         Relais cannot be opened by an older one (delete annuaire.sqlite and import again)"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("Annuaire database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Nothing has been imported yet.
    #[error(
        "the Annuaire database {} holds no extraction yet: import one with \
         `relais annuaire import Extraction_Correspondance_MSSante_<date>.zip`",
        path.display()
    )]
    NothingImported {
        /// The database file.
        path: PathBuf,
    },
    /// The extraction file cannot be opened or read.
    #[error("extraction {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The extraction cannot be read as one.
    #[error("extraction {}: {source}", path.display())]
    Extract {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ExtractError,
    },
    /// The ZIP does not hold exactly one extraction text file, or cannot be read.
    #[error("extraction {}: {reason}", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Too many lines could not be used: the file is probably not what it seems.
    #[error(
        "extraction {}: {malformed} of {lines} lines unusable, more than the {max_percent}% \
         accepted; the previous import stays in use (first problems: {first})",
        path.display()
    )]
    TooManyMalformed {
        /// The file.
        path: PathBuf,
        /// Unusable lines.
        malformed: u64,
        /// Lines read.
        lines: u64,
        /// The limit.
        max_percent: f64,
        /// The first issues, by line number.
        first: String,
    },
    /// The file holds no mailbox.
    #[error(
        "extraction {}: no mailbox in the file; the previous import stays in use",
        path.display()
    )]
    NoRecords {
        /// The file.
        path: PathBuf,
    },
    /// Another import holds the import lock.
    #[error(
        "another Annuaire import is running on {}; wait for it to finish",
        path.display()
    )]
    ImportInProgress {
        /// The lock file.
        path: PathBuf,
    },
    /// A live LDAP look-up failed.
    #[error(transparent)]
    Ldap(#[from] LdapError),
}
