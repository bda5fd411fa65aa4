//! MSSanté mail reader: the first stage of Relais's inbound flow.
//!
//! Hospitals receive documents as MSSanté mails: an `IHE_XDM.ZIP` archive holding CDA documents,
//! a PDF copy, sometimes an HL7v2 message, with CI-SIS conventions on the subject
//! (`XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`) and `X-MSS-*` headers. This crate
//! turns the raw mail into a [`ParsedMail`]: the headers the engine journals and routes on, each
//! attachment with its role decided on content ([`AttachmentRole`]), and the problems found, as
//! [`relais_core::Finding`]s with stable `MAIL-*` codes ([`codes`]).
//!
//! Mails come from outside the hospital, so the reader is written for hostile input: size is
//! checked before anything else, the MIME structure is bounded by a cheap pre-scan before
//! mail-parser builds it (depth, part count, header count), base64 is checked strictly (a
//! truncated document must not reach the DPI), and nothing panics. Patient data (subject,
//! patient addresses, file names) never appears in error messages or `Debug` output.
//!
//! Answering the sender is [`mdn`]: the MDN of the ANS guide (`multipart/report`,
//! `processed` or `processed/Error: <code>^<libellé>`) and the report to the error mailbox when
//! no MDN was asked for.

pub mod address;
mod b64;
pub mod codes;
mod error;
pub mod mdn;
mod parse;
mod prescan;
mod sniff;
mod subject;

pub use address::{domain_of, is_patient_address, patient_ins_of};
pub use error::MailError;
pub use mdn::{
    BuiltMail, MdnContext, MdnDecision, MdnError, MdnOutcome, build_error_report, build_mdn,
    mdn_decision, should_send_mdn,
};
pub use parse::{
    Attachment, AttachmentRole, InsFlag, MssHeaders, ParsedMail, fuzz_entry, parse_mail,
};
pub use prescan::{MAX_HEADER_BLOCK_BYTES, MAX_HEADER_FIELDS, MAX_UNTERMINATED_MULTIPARTS};
pub use sniff::sniff_is_mail;
pub use subject::{DDM_MARKER, DdmSubject};
