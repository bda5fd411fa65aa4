//! Rule codes reported by the mail reader: the documented catalogue of the `MAIL-*` area.
//!
//! Fatal codes come with a [`crate::MailError`] (the mail is refused as a whole); the others are
//! [`relais_core::Finding`]s in [`crate::ParsedMail::findings`].

use relais_core::RuleCode;

/// Fatal: the raw mail is larger than `limits.max_mail_bytes` (checked before any parsing).
pub const MAIL_TOO_LARGE: RuleCode = RuleCode::new("MAIL-TOO-LARGE");
/// Fatal: the input does not start with an RFC 5322 header block; it is not a mail.
pub const MAIL_NOT_A_MAIL: RuleCode = RuleCode::new("MAIL-NOT-A-MAIL");
/// Fatal: MIME multiparts / attached messages are nested deeper than `limits.max_mime_depth`.
pub const MAIL_MIME_TOO_DEEP: RuleCode = RuleCode::new("MAIL-MIME-TOO-DEEP");
/// Fatal: the mail has more MIME parts than `limits.max_mime_parts`.
pub const MAIL_TOO_MANY_PARTS: RuleCode = RuleCode::new("MAIL-TOO-MANY-PARTS");
/// Fatal: the mail has more header fields (all parts together) than the reader accepts.
pub const MAIL_TOO_MANY_HEADERS: RuleCode = RuleCode::new("MAIL-TOO-MANY-HEADERS");
/// Fatal: one header block is larger than the reader accepts (a body glued to its headers).
pub const MAIL_HEADER_TOO_LARGE: RuleCode = RuleCode::new("MAIL-HEADER-TOO-LARGE");
/// Fatal: too many multiparts declare a boundary that never appears in the mail.
pub const MAIL_MIME_MALFORMED: RuleCode = RuleCode::new("MAIL-MIME-MALFORMED");

/// Fatal: the MIME parser (mail-parser) failed on this mail; it is refused and should be kept.
pub const MAIL_MIME_UNREADABLE: RuleCode = RuleCode::new("MAIL-MIME-UNREADABLE");

/// Error: the mail has no `Message-ID` header (required by MSSanté; the MDN needs it).
pub const MAIL_MESSAGE_ID_MISSING: RuleCode = RuleCode::new("MAIL-MESSAGE-ID-MISSING");
/// Warning: an XDM archive is attached but the subject does not follow `XDM/1.0/DDM+...`.
pub const MAIL_SUBJECT_CONVENTION: RuleCode = RuleCode::new("MAIL-SUBJECT-CONVENTION");
/// Warning: `X-MSS-INS` is present but its value is neither `O` nor `N`.
pub const MAIL_X_MSS_INS_INVALID: RuleCode = RuleCode::new("MAIL-X-MSS-INS-INVALID");
/// Error: a base64 part has illegal characters, bad padding or is truncated.
pub const MAIL_BASE64_INVALID: RuleCode = RuleCode::new("MAIL-BASE64-INVALID");
/// Warning: a part's quoted-printable encoding is broken (its raw text is kept).
pub const MAIL_PART_ENCODING: RuleCode = RuleCode::new("MAIL-PART-ENCODING");
/// Error: an attachment is larger than the limit of the layer that will read it (ZIP, XML, HL7).
pub const MAIL_ATTACHMENT_TOO_LARGE: RuleCode = RuleCode::new("MAIL-ATTACHMENT-TOO-LARGE");
/// Warning: no attachment carries a document (no XDM, PDF, CDA or HL7v2).
pub const MAIL_NO_DOCUMENT: RuleCode = RuleCode::new("MAIL-NO-DOCUMENT");
/// Warning: a text part is not UTF-8 (invalid bytes, or another charset declared).
pub const MAIL_TEXT_NOT_UTF8: RuleCode = RuleCode::new("MAIL-TEXT-NOT-UTF8");
/// Error: a part named `*.pdf` or typed `application/pdf` does not start with `%PDF-`.
pub const MAIL_PDF_NOT_PDF: RuleCode = RuleCode::new("MAIL-PDF-NOT-PDF");
/// Warning: a ZIP holding an `IHE_XDM/` folder is attached under another name than `IHE_XDM.ZIP`.
pub const MAIL_XDM_NAME: RuleCode = RuleCode::new("MAIL-XDM-NAME");

/// Every code of this crate, for the documentation catalogue and tests.
pub const ALL: &[RuleCode] = &[
    MAIL_TOO_LARGE,
    MAIL_NOT_A_MAIL,
    MAIL_MIME_TOO_DEEP,
    MAIL_TOO_MANY_PARTS,
    MAIL_TOO_MANY_HEADERS,
    MAIL_HEADER_TOO_LARGE,
    MAIL_MIME_MALFORMED,
    MAIL_MIME_UNREADABLE,
    MAIL_MESSAGE_ID_MISSING,
    MAIL_SUBJECT_CONVENTION,
    MAIL_X_MSS_INS_INVALID,
    MAIL_BASE64_INVALID,
    MAIL_PART_ENCODING,
    MAIL_ATTACHMENT_TOO_LARGE,
    MAIL_NO_DOCUMENT,
    MAIL_TEXT_NOT_UTF8,
    MAIL_PDF_NOT_PDF,
    MAIL_XDM_NAME,
];
