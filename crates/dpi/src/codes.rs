//! The rule codes this crate reports: the documented catalogue of DPI exchange problems.
//!
//! Codes never change meaning once published. Every error type of the crate maps each of its
//! variants to one of these codes (`code()`), and the ADT listener puts them in ERR-5 of the
//! negative ACKs it sends when no HL7 table 0357 code fits.

use relais_core::RuleCode;

// ---- Building the MDM ----------------------------------------------------------------------

/// The CDA header lacks something the MDM requires (document id, type code, patient ids or
/// name, the replaced document of a T10), or the mail lacks its Message-ID or sender.
pub const DPI_MDM_INCOMPLETE: RuleCode = RuleCode::new("DPI-MDM-INCOMPLETE");
/// A value given to the builder is unusable (empty or over-long control id, malformed timestamp,
/// empty document).
pub const DPI_MDM_INPUT: RuleCode = RuleCode::new("DPI-MDM-INPUT");

// ---- Sending to the DPI (MLLP client) ------------------------------------------------------

/// The TCP connection to the DPI could not be opened (refused, unreachable, connect timeout).
pub const DPI_CONNECT: RuleCode = RuleCode::new("DPI-CONNECT");
/// The DPI did not answer within the ACK timeout.
pub const DPI_ACK_TIMEOUT: RuleCode = RuleCode::new("DPI-ACK-TIMEOUT");
/// The DPI closed the connection without answering.
pub const DPI_CLOSED: RuleCode = RuleCode::new("DPI-CLOSED");
/// An I/O error while sending or receiving (reset connection, broken pipe).
pub const DPI_IO: RuleCode = RuleCode::new("DPI-IO");
/// The DPI's answer is not a usable ACK (unparseable, no MSA, unknown MSA-1, bad framing).
pub const DPI_ACK_INVALID: RuleCode = RuleCode::new("DPI-ACK-INVALID");
/// MSA-2 of the ACK names another message than the one sent.
pub const DPI_ACK_MISMATCH: RuleCode = RuleCode::new("DPI-ACK-MISMATCH");
/// The message given to the client cannot be sent (no MSH-10, framing byte, too large).
pub const DPI_MESSAGE_INVALID: RuleCode = RuleCode::new("DPI-MESSAGE-INVALID");
/// The DPI answered AE/CE: it refused the document (ERR-3/ERR-5 say why; do not resend as is).
pub const DPI_REJECTED: RuleCode = RuleCode::new("DPI-REJECTED");
/// The DPI answered AR/CR: a circumstantial refusal, resend later.
pub const DPI_RETRY: RuleCode = RuleCode::new("DPI-RETRY");

// ---- Receiving identities (ADT listener, CSV import) ---------------------------------------

/// An ADT message could not be parsed as HL7v2 (answered AE).
pub const ADT_UNPARSEABLE: RuleCode = RuleCode::new("ADT-UNPARSEABLE");
/// The message is not an ADT of an accepted event (answered AE 200/201).
pub const ADT_UNSUPPORTED: RuleCode = RuleCode::new("ADT-UNSUPPORTED");
/// The ADT has no PID, or its PID-3 holds neither an IPP (PI) nor an INS (answered AE 100/101).
pub const ADT_NO_IDENTIFIER: RuleCode = RuleCode::new("ADT-NO-IDENTIFIER");
/// An INS of PID-3 (or an A40's MRG-1) is malformed: wrong length or control key (answered AE 102).
pub const ADT_INS_INVALID: RuleCode = RuleCode::new("ADT-INS-INVALID");
/// An A40 merge without MRG-1 IPP (answered AE 101).
pub const ADT_MERGE_INCOMPLETE: RuleCode = RuleCode::new("ADT-MERGE-INCOMPLETE");
/// The patient update could not be handed over (consumer closed or busy): answered AR.
pub const ADT_HANDOVER: RuleCode = RuleCode::new("ADT-HANDOVER");
/// The patients CSV file is unreadable or malformed (the error names the line and column).
pub const PATIENTS_CSV: RuleCode = RuleCode::new("PATIENTS-CSV");

/// Every code of this crate, for catalogue tests and documentation.
pub const ALL: &[RuleCode] = &[
    DPI_MDM_INCOMPLETE,
    DPI_MDM_INPUT,
    DPI_CONNECT,
    DPI_ACK_TIMEOUT,
    DPI_CLOSED,
    DPI_IO,
    DPI_ACK_INVALID,
    DPI_ACK_MISMATCH,
    DPI_MESSAGE_INVALID,
    DPI_REJECTED,
    DPI_RETRY,
    ADT_UNPARSEABLE,
    ADT_UNSUPPORTED,
    ADT_NO_IDENTIFIER,
    ADT_INS_INVALID,
    ADT_MERGE_INCOMPLETE,
    ADT_HANDOVER,
    PATIENTS_CSV,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.split('-').count() >= 2
                    && s.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
                "{s} is not AREA-WHAT"
            );
        }
        // No clash with relais-hl7's catalogue.
        for code in relais_hl7::codes::ALL {
            assert!(
                !seen.contains(code.as_str()),
                "{} is also a relais-hl7 code",
                code.as_str()
            );
        }
    }
}
