//! The rule codes this crate reports: the documented catalogue of XDM and ZIP findings.
//!
//! Codes starting with `ZIP-` (and [`XDM_NOT_A_ZIP`]) are fatal: the archive is refused as a whole
//! and [`crate::read_package`] returns an [`crate::XdmError`]. The others are findings of a
//! package that could be read.

use relais_core::RuleCode;

/// The input is not a ZIP archive (no readable central directory). Fatal.
pub const XDM_NOT_A_ZIP: RuleCode = RuleCode::new("XDM-NOT-A-ZIP");
/// The archive is larger than `Limits::max_zip_bytes`. Fatal.
pub const ZIP_TOO_LARGE: RuleCode = RuleCode::new("ZIP-TOO-LARGE");
/// The archive has more entries than `Limits::max_zip_entries`. Fatal.
pub const ZIP_TOO_MANY_ENTRIES: RuleCode = RuleCode::new("ZIP-TOO-MANY-ENTRIES");
/// An entry path is absolute, carries a drive letter, a NUL byte or `..` components (with `/` or
/// `\`): it would escape the extraction folder ("zip slip"). Fatal.
pub const ZIP_PATH_TRAVERSAL: RuleCode = RuleCode::new("ZIP-PATH-TRAVERSAL");
/// An entry inflates beyond the per-entry, total or ratio limits (declared or actual size). Fatal.
pub const ZIP_BOMB: RuleCode = RuleCode::new("ZIP-BOMB");
/// An entry is encrypted; XDM packages on MSSanté are never encrypted inside the ZIP. Fatal.
pub const ZIP_ENCRYPTED: RuleCode = RuleCode::new("ZIP-ENCRYPTED");
/// An entry uses a compression method other than stored or deflate. Fatal.
pub const ZIP_UNSUPPORTED_COMPRESSION: RuleCode = RuleCode::new("ZIP-UNSUPPORTED-COMPRESSION");
/// Two entries carry the same path, so readers may disagree on which one is meant. Fatal.
pub const ZIP_DUPLICATE_ENTRY: RuleCode = RuleCode::new("ZIP-DUPLICATE-ENTRY");
/// An entry cannot be read: corrupt deflate data, CRC mismatch, or a size that differs from the
/// central directory. Fatal.
pub const ZIP_CORRUPT: RuleCode = RuleCode::new("ZIP-CORRUPT");

/// No `IHE_XDM/<subset>/METADATA.XML` in the archive, or a subset folder without one. Error.
pub const XDM_METADATA_MISSING: RuleCode = RuleCode::new("XDM-METADATA-MISSING");
/// `METADATA.XML` is well-formed XML but not an ebRS `SubmitObjectsRequest` carrying one
/// submission set (XML-level failures carry the `XML-*` codes of relais-core). Error.
pub const XDM_METADATA_INVALID: RuleCode = RuleCode::new("XDM-METADATA-INVALID");
/// A DocumentEntry's `URI` names a file absent from the archive. Error.
pub const XDM_DOCUMENT_MISSING: RuleCode = RuleCode::new("XDM-DOCUMENT-MISSING");
/// A file of a subset folder is referenced by no DocumentEntry (METADATA.XML aside). Warning.
pub const XDM_UNREFERENCED_FILE: RuleCode = RuleCode::new("XDM-UNREFERENCED-FILE");
/// The SHA-1 of a document differs from its DocumentEntry `hash` slot. Error.
pub const XDM_HASH_MISMATCH: RuleCode = RuleCode::new("XDM-HASH-MISMATCH");
/// The byte length of a document differs from its DocumentEntry `size` slot. Error.
pub const XDM_SIZE_MISMATCH: RuleCode = RuleCode::new("XDM-SIZE-MISMATCH");
/// A DocumentEntry has no `hash` slot, so the document's integrity cannot be checked. Warning.
pub const XDM_HASH_MISSING: RuleCode = RuleCode::new("XDM-HASH-MISSING");
/// A DocumentEntry has no `size` slot. Warning.
pub const XDM_SIZE_MISSING: RuleCode = RuleCode::new("XDM-SIZE-MISSING");
/// No `README.TXT` at the root of the archive (required by ITI-32). Warning.
pub const XDM_README_MISSING: RuleCode = RuleCode::new("XDM-README-MISSING");
/// No `INDEX.HTM` at the root of the archive (required by ITI-32). Warning.
pub const XDM_INDEX_MISSING: RuleCode = RuleCode::new("XDM-INDEX-MISSING");
/// DocumentEntries and the submission set do not all carry the same patientId (one patient per
/// MSSanté mail). Error.
pub const XDM_PATIENTID_INCONSISTENT: RuleCode = RuleCode::new("XDM-PATIENTID-INCONSISTENT");
/// A metadata element required by IHE XDM and the CI-SIS (slot, classification or external
/// identifier) is absent; the message names it. Error.
pub const XDM_SLOT_MISSING: RuleCode = RuleCode::new("XDM-SLOT-MISSING");
/// A metadata value is present but malformed (size not an integer, hash not 40 hex digits, time
/// not an HL7 DTM, patientId not a CX, code without codingScheme). Error.
pub const XDM_SLOT_INVALID: RuleCode = RuleCode::new("XDM-SLOT-INVALID");
/// A DocumentEntry `URI` is empty, absolute, or climbs out of the archive with `..`. Error.
pub const XDM_URI_INVALID: RuleCode = RuleCode::new("XDM-URI-INVALID");
/// A DocumentEntry `URI` matches a file only when case is ignored (a Windows-made package). Warning.
pub const XDM_URI_CASE: RuleCode = RuleCode::new("XDM-URI-CASE");
/// A DocumentEntry is not linked to the submission set by a `HasMember` association. Warning.
pub const XDM_ASSOCIATION_MISSING: RuleCode = RuleCode::new("XDM-ASSOCIATION-MISSING");
/// Two DocumentEntries of the archive share an entryUUID or a uniqueId. Error.
pub const XDM_DUPLICATE_ID: RuleCode = RuleCode::new("XDM-DUPLICATE-ID");

/// Every code of this crate, for the catalogue and for tests that check codes are unique.
pub const ALL: &[RuleCode] = &[
    XDM_NOT_A_ZIP,
    ZIP_TOO_LARGE,
    ZIP_TOO_MANY_ENTRIES,
    ZIP_PATH_TRAVERSAL,
    ZIP_BOMB,
    ZIP_ENCRYPTED,
    ZIP_UNSUPPORTED_COMPRESSION,
    ZIP_DUPLICATE_ENTRY,
    ZIP_CORRUPT,
    XDM_METADATA_MISSING,
    XDM_METADATA_INVALID,
    XDM_DOCUMENT_MISSING,
    XDM_UNREFERENCED_FILE,
    XDM_HASH_MISMATCH,
    XDM_SIZE_MISMATCH,
    XDM_HASH_MISSING,
    XDM_SIZE_MISSING,
    XDM_README_MISSING,
    XDM_INDEX_MISSING,
    XDM_PATIENTID_INCONSISTENT,
    XDM_SLOT_MISSING,
    XDM_SLOT_INVALID,
    XDM_URI_INVALID,
    XDM_URI_CASE,
    XDM_ASSOCIATION_MISSING,
    XDM_DUPLICATE_ID,
];
