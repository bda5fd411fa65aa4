//! The rule codes this crate reports: the documented catalogue of CDA findings.
//!
//! Reading errors that are plain XML problems (not well-formed, DTD, encoding, size) keep the
//! `XML-*` codes of [`relais_core::xml`]. Header rules come from the ANS "Structuration minimale"
//! header schematron (template 1.2.250.1.213.1.1.1.1) and CI-SIS identity rules; the rule text is
//! re-stated in each finding's message.

use relais_core::RuleCode;

/// The document is XML but not a CDA R2 document: its root is not `ClinicalDocument` in the
/// `urn:hl7-org:v3` namespace (nor an auto-presentable stylesheet wrapping one).
pub const CDA_NOT_CDA: RuleCode = RuleCode::new("CDA-NOT-CDA");

/// `realmCode` must appear exactly once, with `code="FR"`.
pub const CDA_REALM_CODE: RuleCode = RuleCode::new("CDA-REALM-CODE");
/// `typeId` must appear exactly once, with root `2.16.840.1.113883.1.3` and extension `POCD_HD000040`.
pub const CDA_TYPEID: RuleCode = RuleCode::new("CDA-TYPEID");
/// A required `templateId` is missing: HL7 France `2.16.840.1.113883.2.8.2.1`, CI-SIS
/// `1.2.250.1.213.1.1.1.1`, or the templateId of the document model.
pub const CDA_TEMPLATEID_MISSING: RuleCode = RuleCode::new("CDA-TEMPLATEID-MISSING");
/// One of the two generic `templateId`s appears more than once.
pub const CDA_TEMPLATEID_REPEATED: RuleCode = RuleCode::new("CDA-TEMPLATEID-REPEATED");
/// A level 1 (nonXMLBody) document must carry exactly the three templateIds HL7 France, CI-SIS and
/// `1.3.6.1.4.1.19376.1.2.20`, the latter replacing the model's templateId.
pub const CDA_N1_TEMPLATEID: RuleCode = RuleCode::new("CDA-N1-TEMPLATEID");
/// A header element required exactly once is missing (or only present with a nullFlavor).
pub const CDA_HEADER_ELEMENT_MISSING: RuleCode = RuleCode::new("CDA-HEADER-ELEMENT-MISSING");
/// A header element allowed at most once appears several times.
pub const CDA_HEADER_ELEMENT_REPEATED: RuleCode = RuleCode::new("CDA-HEADER-ELEMENT-REPEATED");
/// A required attribute of a header element is missing (e.g. `code/@codeSystem`, `id/@root`).
pub const CDA_HEADER_ATTRIBUTE_MISSING: RuleCode = RuleCode::new("CDA-HEADER-ATTRIBUTE-MISSING");
/// `languageCode/@code` does not have the form `ll-CC` (e.g. `fr-FR`).
pub const CDA_LANGUAGE_CODE: RuleCode = RuleCode::new("CDA-LANGUAGE-CODE");
/// The document has no `legalAuthenticator` at all.
pub const CDA_LEGALAUTH_MISSING: RuleCode = RuleCode::new("CDA-LEGALAUTH-MISSING");
/// The `legalAuthenticator` has no `signatureCode` with `code="S"`.
pub const CDA_LEGALAUTH_SIGNATURE: RuleCode = RuleCode::new("CDA-LEGALAUTH-SIGNATURE");
/// The `legalAuthenticator` lacks its `time`, its `assignedEntity`, or an identifier with root and
/// extension.
pub const CDA_LEGALAUTH_INCOMPLETE: RuleCode = RuleCode::new("CDA-LEGALAUTH-INCOMPLETE");
/// The document has no `author` (with an `assignedAuthor`).
pub const CDA_AUTHOR_MISSING: RuleCode = RuleCode::new("CDA-AUTHOR-MISSING");
/// An author's identifier is missing, lacks root or extension, or does not have the national form
/// (`8` + 11-digit RPPS, `0` + ADELI) under the OID 1.2.250.1.71.4.2.1.
pub const CDA_AUTHOR_ID: RuleCode = RuleCode::new("CDA-AUTHOR-ID");
/// An author has no `time` (with a value).
pub const CDA_AUTHOR_TIME: RuleCode = RuleCode::new("CDA-AUTHOR-TIME");
/// The custodian organisation has no identifier under 1.2.250.1.71.4.2.2 (FINESS / national
/// structure id) or 1.2.250.1.213.4.1 (hosting platform).
pub const CDA_CUSTODIAN_ID: RuleCode = RuleCode::new("CDA-CUSTODIAN-ID");
/// The document has no `documentationOf/serviceEvent`.
pub const CDA_SERVICE_EVENT_MISSING: RuleCode = RuleCode::new("CDA-SERVICE-EVENT-MISSING");
/// The main act (first `documentationOf/serviceEvent`) must have exactly one `performer`.
pub const CDA_SERVICE_EVENT_PERFORMER: RuleCode = RuleCode::new("CDA-SERVICE-EVENT-PERFORMER");
/// The main act (first `documentationOf/serviceEvent`) must have exactly one `effectiveTime`
/// with a `low`.
pub const CDA_SERVICE_EVENT_TIME: RuleCode = RuleCode::new("CDA-SERVICE-EVENT-TIME");
/// The `encompassingEncounter` lacks its `effectiveTime` or its
/// `location/healthCareFacility/code`.
pub const CDA_ENCOUNTER_INCOMPLETE: RuleCode = RuleCode::new("CDA-ENCOUNTER-INCOMPLETE");
/// A `relatedDocument` of type RPLC has no `parentDocument/id` with a root.
pub const CDA_RELATED_DOCUMENT: RuleCode = RuleCode::new("CDA-RELATED-DOCUMENT");
/// The document has no body (`component` with `structuredBody` or `nonXMLBody`).
pub const CDA_BODY_MISSING: RuleCode = RuleCode::new("CDA-BODY-MISSING");
/// The patient (`recordTarget/patientRole`) has no identifier, or an identifier lacks its root or
/// extension.
pub const CDA_PATIENT_ID: RuleCode = RuleCode::new("CDA-PATIENT-ID");
/// A patient element required even without INS is missing: `patientRole/patient`, `name`,
/// `birthTime`, `administrativeGenderCode`.
pub const CDA_PATIENT_ELEMENT_MISSING: RuleCode = RuleCode::new("CDA-PATIENT-ELEMENT-MISSING");
/// No INS among the patient identifiers: the document cannot be matched to a qualified identity
/// automatically (CI-SIS: manual review, error 903 towards the DPI).
pub const CDA_INS_ABSENT: RuleCode = RuleCode::new("CDA-INS-ABSENT");
/// A patient identifier uses an OID of the INS arc 1.2.250.1.213.1.4 that is none of the four INS
/// OIDs (.8 NIR, .9 NIA, .10 NIR test, .11 demo) nor a known social security number OID.
pub const CDA_INS_OID_UNKNOWN: RuleCode = RuleCode::new("CDA-INS-OID-UNKNOWN");
/// The INS value is not 15 characters (13 digits, Corsica `2A`/`2B` allowed, then a 2-digit key).
pub const CDA_INS_FORMAT: RuleCode = RuleCode::new("CDA-INS-FORMAT");
/// The INS control key does not match (97 - (first 13 digits mod 97)). A warning: the official
/// examples carry fictitious INS whose key is not computed.
pub const CDA_INS_KEY: RuleCode = RuleCode::new("CDA-INS-KEY");
/// The patient carries several different INS values.
pub const CDA_INS_MULTIPLE: RuleCode = RuleCode::new("CDA-INS-MULTIPLE");
/// With an INS, an identity trait is missing: birth family name (`family qualifier="BR"`), first
/// birth first name (`given qualifier="BR"`), list of birth first names (`given` without
/// qualifier), `birthTime`, `administrativeGenderCode/@code`, birthplace INSEE code
/// (`birthplace/place/addr/county`).
pub const CDA_INS_TRAIT_MISSING: RuleCode = RuleCode::new("CDA-INS-TRAIT-MISSING");
/// The birthplace code (`county`) is not a 5-character INSEE COG code (`99xxx` for a birth abroad).
pub const CDA_INS_BIRTHPLACE_FORMAT: RuleCode = RuleCode::new("CDA-INS-BIRTHPLACE-FORMAT");

/// The document does not conform to the CDA R2 XSD with the French extensions.
pub const CDA_XSD_INVALID: RuleCode = RuleCode::new("CDA-XSD-INVALID");
/// The XSD validator failed internally on a document (libxml2 returned an internal error).
pub const CDA_XSD_INTERNAL: RuleCode = RuleCode::new("CDA-XSD-INTERNAL");

/// Every code of this crate, for catalogue and uniqueness checks.
pub const ALL: &[RuleCode] = &[
    CDA_NOT_CDA,
    CDA_REALM_CODE,
    CDA_TYPEID,
    CDA_TEMPLATEID_MISSING,
    CDA_TEMPLATEID_REPEATED,
    CDA_N1_TEMPLATEID,
    CDA_HEADER_ELEMENT_MISSING,
    CDA_HEADER_ELEMENT_REPEATED,
    CDA_HEADER_ATTRIBUTE_MISSING,
    CDA_LANGUAGE_CODE,
    CDA_LEGALAUTH_MISSING,
    CDA_LEGALAUTH_SIGNATURE,
    CDA_LEGALAUTH_INCOMPLETE,
    CDA_AUTHOR_MISSING,
    CDA_AUTHOR_ID,
    CDA_AUTHOR_TIME,
    CDA_CUSTODIAN_ID,
    CDA_SERVICE_EVENT_MISSING,
    CDA_SERVICE_EVENT_PERFORMER,
    CDA_SERVICE_EVENT_TIME,
    CDA_ENCOUNTER_INCOMPLETE,
    CDA_RELATED_DOCUMENT,
    CDA_BODY_MISSING,
    CDA_PATIENT_ID,
    CDA_PATIENT_ELEMENT_MISSING,
    CDA_INS_ABSENT,
    CDA_INS_OID_UNKNOWN,
    CDA_INS_FORMAT,
    CDA_INS_KEY,
    CDA_INS_MULTIPLE,
    CDA_INS_TRAIT_MISSING,
    CDA_INS_BIRTHPLACE_FORMAT,
    CDA_XSD_INVALID,
    CDA_XSD_INTERNAL,
];
