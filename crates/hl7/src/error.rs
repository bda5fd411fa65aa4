//! Why an input was refused as an HL7v2 message.

use crate::codes;
use relais_core::{Finding, Location, RuleCode};

/// Why [`crate::parse`] refused an input. Each variant maps to one stable rule code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    #[error(
        "HL7 message is {size} bytes, above the limit of {limit} bytes (max_hl7_bytes); raise the limit or ask the sender to split the message"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error(
        "HL7 message holds {count} delimiters, above the {limit} Relais parses; a real message this fragmented is unlikely, check the sender"
    )]
    TooManyDelimiters { count: usize, limit: usize },
    #[error("input is not an HL7v2 message: it must start with an MSH segment{hint}")]
    NotHl7 { hint: String },
    #[error("malformed MSH delimiter line: {reason}")]
    BadDelimiters { reason: String },
    #[error("HL7 character set problem: {reason}")]
    Encoding { reason: String },
    #[error("segment {segment} cannot be parsed: {reason}")]
    SegmentSyntax { segment: usize, reason: String },
    #[error(
        "segment {segment} is a second MSH: the input holds several messages; send one message at a time"
    )]
    MultipleMessages { segment: usize },
}

impl Hl7Error {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            Hl7Error::TooLarge { .. } | Hl7Error::TooManyDelimiters { .. } => codes::HL7_TOO_LARGE,
            Hl7Error::NotHl7 { .. } => codes::HL7_NOT_HL7,
            Hl7Error::BadDelimiters { .. } => codes::HL7_BAD_DELIMITERS,
            Hl7Error::Encoding { .. } => codes::HL7_ENCODING,
            Hl7Error::SegmentSyntax { .. } => codes::HL7_SEGMENT_SYNTAX,
            Hl7Error::MultipleMessages { .. } => codes::HL7_MULTIPLE_MESSAGES,
        }
    }

    /// This error as a finding.
    pub fn to_finding(&self) -> Finding {
        let f = Finding::error(self.code(), self.to_string());
        match self {
            Hl7Error::BadDelimiters { .. } => f.at(Location::Hl7Field("MSH[1]-2".into())),
            Hl7Error::Encoding { .. } => f.at(Location::Hl7Field("MSH[1]-18".into())),
            Hl7Error::SegmentSyntax { segment, .. } | Hl7Error::MultipleMessages { segment } => f
                .at(Location::Line {
                    line: *segment as u32,
                    column: 1,
                }),
            _ => f,
        }
    }
}
