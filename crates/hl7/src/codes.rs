//! The rule codes this crate reports: the documented catalogue of HL7v2 and MLLP findings.
//!
//! Codes never change meaning once published. Parse errors ([`crate::Hl7Error`]) and findings of
//! [`crate::validate_profile`] / [`crate::embedded_documents`] all use codes from this list.

use relais_core::RuleCode;

// ---- Refusals by `parse` -------------------------------------------------------------------

/// The message is larger than `max_hl7_bytes`, or holds more delimiters than Relais parses.
pub const HL7_TOO_LARGE: RuleCode = RuleCode::new("HL7-TOO-LARGE");
/// The input does not start with an `MSH` segment (after MLLP framing and BOM are removed).
pub const HL7_NOT_HL7: RuleCode = RuleCode::new("HL7-NOT-HL7");
/// MSH-1/MSH-2 are malformed: truncated, duplicated, alphanumeric or control delimiters.
pub const HL7_BAD_DELIMITERS: RuleCode = RuleCode::new("HL7-BAD-DELIMITERS");
/// The bytes are not in the character set MSH-18 declares (or it declares one Relais cannot read).
pub const HL7_ENCODING: RuleCode = RuleCode::new("HL7-ENCODING");
/// A segment cannot be parsed (no three-character upper-case name followed by the field separator).
pub const HL7_SEGMENT_SYNTAX: RuleCode = RuleCode::new("HL7-SEGMENT-SYNTAX");
/// The input holds a second `MSH`: several messages in one input (a batch) are refused.
pub const HL7_MULTIPLE_MESSAGES: RuleCode = RuleCode::new("HL7-MULTIPLE-MESSAGES");

// ---- Findings of `validate_profile` --------------------------------------------------------

/// The message matches none of the ANS profiles Relais knows; only generic checks ran (info).
pub const HL7_PROFILE_UNKNOWN: RuleCode = RuleCode::new("HL7-PROFILE-UNKNOWN");
/// MSH-21 does not name the profile the message type calls for (e.g. `1.1^CISIS_CDA_HL7_LPS`).
pub const HL7_MSH21_MISSING: RuleCode = RuleCode::new("HL7-MSH21-MISSING");
/// MSH-12 is not the HL7 version the profile requires (2.6 for MDM/ZAM, 2.5 for ORU and PAM).
pub const HL7_VERSION: RuleCode = RuleCode::new("HL7-VERSION");
/// A segment the profile requires is absent (the message names it).
pub const HL7_SEGMENT_MISSING: RuleCode = RuleCode::new("HL7-SEGMENT-MISSING");
/// A segment appears where the profile does not allow it (e.g. PID after PV1, PRT before OBX).
pub const HL7_SEGMENT_ORDER: RuleCode = RuleCode::new("HL7-SEGMENT-ORDER");
/// A segment appears more often than the profile allows (e.g. two TXA).
pub const HL7_SEGMENT_REPEATED: RuleCode = RuleCode::new("HL7-SEGMENT-REPEATED");
/// A segment the profile does not define (warning: receivers may ignore or reject it).
pub const HL7_SEGMENT_UNEXPECTED: RuleCode = RuleCode::new("HL7-SEGMENT-UNEXPECTED");
/// A field (or component) the profile requires is empty.
pub const HL7_FIELD_MISSING: RuleCode = RuleCode::new("HL7-FIELD-MISSING");
/// A field holds a value the profile does not allow (wrong code, wrong type, wrong form).
pub const HL7_FIELD_VALUE: RuleCode = RuleCode::new("HL7-FIELD-VALUE");
/// ORC-1, the trigger event and the document OBX-11 disagree (NW/T02/F, RO/T10/C, CA/T04/D).
pub const HL7_ORC_OBX_STATUS: RuleCode = RuleCode::new("HL7-ORC-OBX-STATUS");
/// A MetaDMPMSS / AckMetierZAM observation the profile requires is absent.
pub const HL7_METADATA_MISSING: RuleCode = RuleCode::new("HL7-METADATA-MISSING");
/// The MetaDMPMSS observations are not in the order the guides fix.
pub const HL7_METADATA_ORDER: RuleCode = RuleCode::new("HL7-METADATA-ORDER");
/// PID-3 carries an INS but PID-32 does not say the identity is qualified (`VALI`).
pub const HL7_INS_UNQUALIFIED: RuleCode = RuleCode::new("HL7-INS-UNQUALIFIED");
/// An INS in PID-3 is malformed (not 15 characters, or a wrong NIR control key).
pub const HL7_INS_INVALID: RuleCode = RuleCode::new("HL7-INS-INVALID");
/// MSH-2 is not `^~\&`, which the ANS guides require (warning: the message still parses).
pub const HL7_DELIMITERS_NONSTANDARD: RuleCode = RuleCode::new("HL7-DELIMITERS-NONSTANDARD");
/// The bytes were UTF-8 although MSH-18 declares ISO 8859 (warning: read as UTF-8).
pub const HL7_ENCODING_MISMATCH: RuleCode = RuleCode::new("HL7-ENCODING-MISMATCH");

// ---- Findings of `embedded_documents` ------------------------------------------------------

/// The base64 data of an ED value is invalid or truncated.
pub const HL7_ED_BASE64_INVALID: RuleCode = RuleCode::new("HL7-ED-BASE64-INVALID");
/// The base64 data of an ED value lacks its `=` padding (warning: decoded anyway).
pub const HL7_ED_BASE64_PADDING: RuleCode = RuleCode::new("HL7-ED-BASE64-PADDING");
/// The ED encoding (ED-4) is not Base64, Hex or A (ASCII), or its hex data is invalid.
pub const HL7_ED_ENCODING: RuleCode = RuleCode::new("HL7-ED-ENCODING");
/// The ED value has no data (ED-5 empty).
pub const HL7_ED_EMPTY: RuleCode = RuleCode::new("HL7-ED-EMPTY");
/// An ED declared as XML (ED-3) does not decode to something that looks like XML (warning).
pub const HL7_ED_NOT_XML: RuleCode = RuleCode::new("HL7-ED-NOT-XML");

// ---- MLLP ------------------------------------------------------------------------------------

/// An MLLP frame is larger than the configured maximum (`max_hl7_bytes`).
pub const MLLP_FRAME_TOO_LARGE: RuleCode = RuleCode::new("MLLP-FRAME-TOO-LARGE");
/// The connection ended in the middle of an MLLP frame.
pub const MLLP_INCOMPLETE_FRAME: RuleCode = RuleCode::new("MLLP-INCOMPLETE-FRAME");
/// A payload to send contains an MLLP framing byte (0x0B or 0x1C) and cannot be framed.
pub const MLLP_PAYLOAD_INVALID: RuleCode = RuleCode::new("MLLP-PAYLOAD-INVALID");
/// An I/O error on the MLLP connection.
pub const MLLP_IO: RuleCode = RuleCode::new("MLLP-IO");

/// Every code of this crate, for catalogue tests and documentation.
pub const ALL: &[RuleCode] = &[
    HL7_TOO_LARGE,
    HL7_NOT_HL7,
    HL7_BAD_DELIMITERS,
    HL7_ENCODING,
    HL7_SEGMENT_SYNTAX,
    HL7_MULTIPLE_MESSAGES,
    HL7_PROFILE_UNKNOWN,
    HL7_MSH21_MISSING,
    HL7_VERSION,
    HL7_SEGMENT_MISSING,
    HL7_SEGMENT_ORDER,
    HL7_SEGMENT_REPEATED,
    HL7_SEGMENT_UNEXPECTED,
    HL7_FIELD_MISSING,
    HL7_FIELD_VALUE,
    HL7_ORC_OBX_STATUS,
    HL7_METADATA_MISSING,
    HL7_METADATA_ORDER,
    HL7_INS_UNQUALIFIED,
    HL7_INS_INVALID,
    HL7_DELIMITERS_NONSTANDARD,
    HL7_ENCODING_MISMATCH,
    HL7_ED_BASE64_INVALID,
    HL7_ED_BASE64_PADDING,
    HL7_ED_ENCODING,
    HL7_ED_EMPTY,
    HL7_ED_NOT_XML,
    MLLP_FRAME_TOO_LARGE,
    MLLP_INCOMPLETE_FRAME,
    MLLP_PAYLOAD_INVALID,
    MLLP_IO,
];

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_is_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in super::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            assert!(s.starts_with("HL7-") || s.starts_with("MLLP-"), "{s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{s}"
            );
        }
    }
}
