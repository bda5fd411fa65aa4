//! Why an archive is refused as a whole.

use crate::codes;
use relais_core::{Finding, Location, RuleCode};

/// A fatal problem: the archive is not read further. Messages never quote entry names (they
/// may carry patient names); the entry path goes into the finding's location instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdmError {
    /// Not a ZIP archive at all.
    #[error("the attachment is not a ZIP archive ({reason}); an XDM package must be a ZIP file")]
    NotAZip {
        /// What the ZIP reader said.
        reason: String,
    },
    /// Larger than `Limits::max_zip_bytes`.
    #[error(
        "the ZIP archive is {size} bytes, above the limit of {limit} bytes (raise max_zip_bytes if legitimate)"
    )]
    TooLarge {
        /// Size of the archive.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// More entries than `Limits::max_zip_entries`.
    #[error("the ZIP archive has {count} entries, above the limit of {limit}")]
    TooManyEntries {
        /// Number of entries (as declared by the central directory).
        count: u64,
        /// The configured limit.
        limit: u32,
    },
    /// An entry path escapes the archive root.
    #[error(
        "ZIP entry #{index} has an unsafe path ({why}); the archive is refused to rule out path traversal"
    )]
    PathTraversal {
        /// Position of the entry in the central directory (0-based).
        index: usize,
        /// The entry path (for the location only).
        path: String,
        /// What makes it unsafe.
        why: &'static str,
    },
    /// An entry inflates beyond the limits.
    #[error("ZIP entry #{index} looks like a ZIP bomb: {reason}")]
    Bomb {
        /// Position of the entry.
        index: usize,
        /// The entry path (for the location only).
        path: String,
        /// Which limit is exceeded, with figures.
        reason: String,
    },
    /// An entry is encrypted.
    #[error(
        "ZIP entry #{index} is encrypted; XDM packages must not be encrypted inside the ZIP (the mail channel is already secured)"
    )]
    Encrypted {
        /// Position of the entry.
        index: usize,
        /// The entry path (for the location only).
        path: String,
    },
    /// Compression method other than stored/deflate.
    #[error(
        "ZIP entry #{index} uses compression method {method}; only stored (0) and deflate (8) are accepted"
    )]
    UnsupportedCompression {
        /// Position of the entry.
        index: usize,
        /// The entry path (for the location only).
        path: String,
        /// The method as the ZIP reader names it.
        method: String,
    },
    /// Two entries share a path.
    #[error(
        "the ZIP archive holds two entries with the same path; readers could disagree on which one is meant"
    )]
    DuplicateEntry,
    /// An entry cannot be read back.
    #[error("ZIP entry #{index} is corrupt: {reason}")]
    Corrupt {
        /// Position of the entry.
        index: usize,
        /// The entry path (for the location only).
        path: String,
        /// What the reader found.
        reason: String,
    },
}

impl XdmError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            XdmError::NotAZip { .. } => codes::XDM_NOT_A_ZIP,
            XdmError::TooLarge { .. } => codes::ZIP_TOO_LARGE,
            XdmError::TooManyEntries { .. } => codes::ZIP_TOO_MANY_ENTRIES,
            XdmError::PathTraversal { .. } => codes::ZIP_PATH_TRAVERSAL,
            XdmError::Bomb { .. } => codes::ZIP_BOMB,
            XdmError::Encrypted { .. } => codes::ZIP_ENCRYPTED,
            XdmError::UnsupportedCompression { .. } => codes::ZIP_UNSUPPORTED_COMPRESSION,
            XdmError::DuplicateEntry => codes::ZIP_DUPLICATE_ENTRY,
            XdmError::Corrupt { .. } => codes::ZIP_CORRUPT,
        }
    }

    /// The path of the entry concerned, when the error is about one entry.
    pub fn entry_path(&self) -> Option<&str> {
        match self {
            XdmError::PathTraversal { path, .. }
            | XdmError::Bomb { path, .. }
            | XdmError::Encrypted { path, .. }
            | XdmError::UnsupportedCompression { path, .. }
            | XdmError::Corrupt { path, .. } => Some(path),
            XdmError::NotAZip { .. }
            | XdmError::TooLarge { .. }
            | XdmError::TooManyEntries { .. }
            | XdmError::DuplicateEntry => None,
        }
    }

    /// This error as an error finding, located at the entry when there is one.
    pub fn to_finding(&self) -> Finding {
        let f = Finding::error(self.code(), self.to_string());
        match self.entry_path() {
            Some(p) => f.at(Location::ZipEntry(p.to_string())),
            None => f,
        }
    }
}
