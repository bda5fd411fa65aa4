//! HL7v2 (ER7) messages of the ANS profiles, and their MLLP transport.
//!
//! Relais meets HL7v2 at both ends of its flow. Inbound documents from MSSanté are filed into the
//! hospital's DPI/RIS as MDM^T02/T10/T04 v2.6 (ig-lps-mss, MSH-21 `1.1^CISIS_CDA_HL7_LPS`), which
//! answers with an ACK; producers inside the hospital hand Relais documents to send as ORU^R01
//! v2.5 or MDM v2.6 (ig-trans-cda, MSH-21 `2.1^CISIS_CDA_HL7_V2`) and receive ZAM^Z02/Z03 business
//! acknowledgements; ADT messages of IHE PAM France carry the patient identities (INS).
//!
//! This crate turns bytes into a typed [`Message`] ([`parse`]: bounded, strict about the MSH
//! delimiter line and the character set, never panicking on hostile input), says which profile a
//! message follows and whether it follows it ([`validate_profile`], findings with stable codes
//! from [`codes`]), extracts the documents it carries ([`embedded_documents`]), builds the ACK
//! ([`build_ack`]) and frames messages over TCP ([`mllp::MllpCodec`]).
//!
//! Tokenising is delegated to the `hl7-parser` crate; what it does not do safely (escape
//! decoding, detecting a partial parse) is done here, see [`message`] and the `escape` module.
//! Patient data never appears in errors, findings or `Debug` output.

mod ack;
mod charset;
pub mod codes;
mod ed;
mod error;
mod escape;
pub mod message;
pub mod mllp;
mod profile;
mod structure;

pub use ack::{AckCode, build_ack, build_ack_at};
pub use charset::{TextEncoding, encode_for_wire};
pub use ed::{CodedValue, EdEncoding, EmbeddedDocument, embedded_documents};
pub use error::Hl7Error;
pub use escape::{escape, unescape};
pub use message::{
    Component, Delimiters, DocumentId, Field, Hd, Message, MessageType, Patient, PatientId,
    PersonName, ProfileId, Repetition, Segment, parse,
};
pub use profile::{NS_LPS, NS_V2, Profile, detect_profile, validate_profile};

/// Fuzz entry point: parse with default limits, then validate and extract documents.
/// Must never panic, whatever the input.
pub fn fuzz_entry(data: &[u8]) {
    let limits = relais_core::Limits::default();
    if let Ok(msg) = parse(data, &limits) {
        let _ = detect_profile(&msg);
        let _ = validate_profile(&msg);
        let _ = embedded_documents(&msg);
        let _ = msg.pid();
        let _ = msg.document_id();
        let _ = build_ack(&msg, AckCode::AE, Some(("101", "Required field missing")));
    }
}
