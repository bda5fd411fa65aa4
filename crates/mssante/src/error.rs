//! Fatal errors: the mail is refused as a whole.

use crate::codes;
use relais_core::{Finding, Location, RuleCode};

/// Why a mail was refused without being read. Each variant maps to one stable rule code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The raw mail is over the size limit; nothing was parsed.
    #[error(
        "the mail is {size} bytes, over the limit of {limit} bytes (limits.max_mail_bytes): \
         ask the sender to split the documents over several mails, or raise the limit"
    )]
    TooLarge { size: u64, limit: u64 },
    /// The input has no header block: it is some other kind of file.
    #[error(
        "the input is not a mail: it does not start with header fields such as `From:` or \
         `Message-ID:`; check that the file given is an .eml (RFC 5322) message"
    )]
    NotAMail,
    /// MIME nesting is deeper than the limit.
    #[error(
        "MIME parts are nested more than {limit} levels deep (limits.max_mime_depth): the mail \
         is refused as broken or hostile; ask the sender to resend it without forwarding layers"
    )]
    MimeTooDeep { limit: u32 },
    /// More MIME parts than the limit.
    #[error(
        "the mail has more than {limit} MIME parts (limits.max_mime_parts): the mail is refused \
         as broken or hostile; raise the limit only if such mails are expected"
    )]
    TooManyParts { limit: u32 },
    /// More header fields than the reader accepts.
    #[error(
        "the mail has more than {limit} header fields across its parts: the mail is refused as \
         broken or hostile"
    )]
    TooManyHeaders { limit: usize },
    /// One header block is larger than the reader accepts.
    #[error(
        "a header block is larger than {limit} bytes (often a part whose blank line between \
         headers and body is missing): the mail is refused as broken"
    )]
    HeaderTooLarge { limit: usize },
    /// Too many multiparts whose boundary never appears.
    #[error(
        "{count} multiparts declare a boundary that never appears in the mail: the MIME \
         structure is broken beyond recovery; ask the sender to resend the mail"
    )]
    MimeMalformed { count: usize },
    /// mail-parser failed (panicked) on this mail.
    #[error(
        "the MIME parser failed on this mail (an internal inconsistency of mail-parser on a \
         broken structure): the mail is refused; keep it and report it for analysis"
    )]
    Unreadable,
}

impl MailError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            MailError::TooLarge { .. } => codes::MAIL_TOO_LARGE,
            MailError::NotAMail => codes::MAIL_NOT_A_MAIL,
            MailError::MimeTooDeep { .. } => codes::MAIL_MIME_TOO_DEEP,
            MailError::TooManyParts { .. } => codes::MAIL_TOO_MANY_PARTS,
            MailError::TooManyHeaders { .. } => codes::MAIL_TOO_MANY_HEADERS,
            MailError::HeaderTooLarge { .. } => codes::MAIL_HEADER_TOO_LARGE,
            MailError::MimeMalformed { .. } => codes::MAIL_MIME_MALFORMED,
            MailError::Unreadable => codes::MAIL_MIME_UNREADABLE,
        }
    }

    /// This error as an error-severity finding on the whole input.
    pub fn to_finding(&self) -> Finding {
        Finding::error(self.code(), self.to_string()).at(Location::Whole)
    }
}
