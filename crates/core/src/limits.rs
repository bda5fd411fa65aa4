//! Bounds on every input, so that one hostile mail cannot exhaust the daemon.

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// Input limits applied by every parser. The defaults fit MSSanté practice (operators cap a
/// message at 10 to 40 MB of attachments) with room for base64 overhead; deployments tighten or
/// loosen them in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest raw mail accepted, in bytes (base64 included).
    pub max_mail_bytes: u64,
    /// Deepest nesting of MIME multiparts / attached messages.
    pub max_mime_depth: u32,
    /// Most MIME parts in one mail.
    pub max_mime_parts: u32,
    /// Largest ZIP archive accepted, in bytes.
    pub max_zip_bytes: u64,
    /// Most entries in one ZIP archive.
    pub max_zip_entries: u32,
    /// Largest uncompressed size of one ZIP entry.
    pub max_zip_entry_bytes: u64,
    /// Largest sum of uncompressed sizes of a ZIP archive.
    pub max_zip_total_bytes: u64,
    /// Largest uncompressed/compressed ratio of one entry (ZIP bombs reach thousands).
    pub max_zip_ratio: u32,
    /// Largest XML document parsed, in bytes.
    pub max_xml_bytes: u64,
    /// Most nodes in one XML document.
    pub max_xml_nodes: u32,
    /// Largest HL7v2 message, in bytes.
    pub max_hl7_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_mail_bytes: 80 * MIB,
            max_mime_depth: 12,
            max_mime_parts: 500,
            max_zip_bytes: 64 * MIB,
            max_zip_entries: 1000,
            max_zip_entry_bytes: 64 * MIB,
            max_zip_total_bytes: 128 * MIB,
            max_zip_ratio: 200,
            max_xml_bytes: 64 * MIB,
            max_xml_nodes: 5_000_000,
            max_hl7_bytes: 80 * MIB,
        }
    }
}

/// An input is larger than any limit allows; it is refused before being read.
pub const INPUT_TOO_LARGE: crate::RuleCode = crate::RuleCode::new("INPUT-TOO-LARGE");
