//! Rule codes of the cross-checks between layers (mail ↔ XDM ↔ CDA) and of `relais check`.

use relais_core::RuleCode;

/// The XDM DocumentEntry patientId does not name the patient of the CDA `recordTarget`.
pub const XDM_CDA_PATIENTID_MISMATCH: RuleCode = RuleCode::new("XDM-CDA-PATIENTID-MISMATCH");
/// The XDM typeCode differs from the CDA `code`.
pub const XDM_CDA_TYPECODE_MISMATCH: RuleCode = RuleCode::new("XDM-CDA-TYPECODE-MISMATCH");
/// The XDM formatCode is not the one the NOS table ASS_A11 gives for the CDA model.
pub const XDM_CDA_FORMATCODE_MISMATCH: RuleCode = RuleCode::new("XDM-CDA-FORMATCODE-MISMATCH");
/// No formatCode is known for the CDA's templateIds (the NOS table may need an update).
pub const XDM_CDA_FORMATCODE_UNKNOWN: RuleCode = RuleCode::new("XDM-CDA-FORMATCODE-UNKNOWN");
/// The XDM classCode is not the one the NOS table ASS_X04 gives for the typeCode.
pub const XDM_CDA_CLASSCODE_MISMATCH: RuleCode = RuleCode::new("XDM-CDA-CLASSCODE-MISMATCH");
/// The XDM uniqueId differs from the CDA `id` (root^extension).
pub const XDM_CDA_UNIQUEID_MISMATCH: RuleCode = RuleCode::new("XDM-CDA-UNIQUEID-MISMATCH");
/// A document of the XDM package declared `text/xml` is not a readable CDA.
pub const XDM_DOCUMENT_NOT_CDA: RuleCode = RuleCode::new("XDM-DOCUMENT-NOT-CDA");
/// The documents of one mail concern more than one patient (one patient per mail).
pub const MAIL_SEVERAL_PATIENTS: RuleCode = RuleCode::new("MAIL-SEVERAL-PATIENTS");
/// `X-MSS-CODECDA` does not list the codes of the CDA documents carried.
pub const MAIL_X_MSS_CODECDA_MISMATCH: RuleCode = RuleCode::new("MAIL-X-MSS-CODECDA-MISMATCH");
/// `X-MSS-INS` says O (qualified INS) but a document has no INS-NIR/INS-NIA, or the reverse.
pub const MAIL_X_MSS_INS_MISMATCH: RuleCode = RuleCode::new("MAIL-X-MSS-INS-MISMATCH");
/// A file of a kind `relais check` does not know.
pub const CHECK_UNKNOWN_INPUT: RuleCode = RuleCode::new("CHECK-UNKNOWN-INPUT");
/// A ZIP that is not an XDM package (no IHE_XDM/ folder).
pub const CHECK_NOT_XDM: RuleCode = RuleCode::new("CHECK-NOT-XDM");
/// A schematron could not be run on a document (worker failure), with the reason.
pub const SCH_NOT_RUN: RuleCode = RuleCode::new("SCH-NOT-RUN");
/// The model's schematron file is named in the model table but absent from the pack.
pub const SCH_FILE_MISSING: RuleCode = RuleCode::new("SCH-FILE-MISSING");
/// A schematron rule could not be evaluated because the validation pack lacks a file it reads.
pub const SCH_PACK_FILE_MISSING: RuleCode = RuleCode::new("SCH-PACK-FILE-MISSING");
