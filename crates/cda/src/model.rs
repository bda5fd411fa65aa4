//! The owned model of a CDA R2 document: its CI-SIS header and a summary of its body.
//!
//! Everything is copied out of the XML tree, so a [`CdaDocument`] outlives the bytes it was read
//! from. Optional elements are `Option`s; a value is `None` both when the element is absent and when
//! it only carries a `nullFlavor`. [`HeaderShape`] keeps the element counts the header rules need.

use crate::ins::{Ins, InsKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Template ids every CI-SIS document carries besides its model's: HL7 France and CI-SIS.
pub const GENERIC_TEMPLATE_IDS: [&str; 2] = ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1"];
/// Template id of a level 1 (unstructured, nonXMLBody) document, replacing the model's.
pub const N1_TEMPLATE_ID: &str = "1.3.6.1.4.1.19376.1.2.20";
/// Template id of the section holding a PDF copy of a level 3 document.
pub const PDF_COPY_SECTION_TEMPLATE_ID: &str = "1.2.250.1.213.1.1.2.243";
/// OID of the national health professional identifiers (`8`+RPPS, `0`+ADELI, ...).
pub const PS_ID_OID: &str = "1.2.250.1.71.4.2.1";
/// OID of the national structure identifiers (FINESS, SIREN, SIRET with a type prefix).
pub const STRUCTURE_ID_OID: &str = "1.2.250.1.71.4.2.2";

/// An HL7 instance identifier (II): `root` (an OID or UUID) and optional `extension`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Ii {
    pub root: Option<String>,
    pub extension: Option<String>,
}

impl Ii {
    /// True when the root is `oid`.
    pub fn has_root(&self, oid: &str) -> bool {
        self.root.as_deref() == Some(oid)
    }

    /// `root^extension` (or `root` alone), the form used for XDS uniqueId.
    pub fn to_xds(&self) -> String {
        match (&self.root, &self.extension) {
            (Some(r), Some(e)) => format!("{r}^{e}"),
            (Some(r), None) => r.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        }
    }
}

/// An HL7 coded value (CD/CE/CV/CS): code, code system, display name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Cd {
    pub code: Option<String>,
    pub code_system: Option<String>,
    pub display_name: Option<String>,
}

/// A person's name as the header carries it for professionals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PersonName {
    pub prefix: Option<String>,
    pub given: Option<String>,
    pub family: Option<String>,
    pub suffix: Option<String>,
}

/// An organisation (represented, custodian, scoping or receiving organisation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Organization {
    /// Every `id` of the organisation, in document order.
    pub ids: Vec<Ii>,
    /// The national structure identifier (extension of the id under 1.2.250.1.71.4.2.2), e.g. a
    /// FINESS number with its type prefix (`1` + FINESS).
    pub finess: Option<String>,
    pub name: Option<String>,
    /// `standardIndustryClassCode` (practice setting, JDV_J04).
    pub industry_code: Option<Cd>,
}

/// A person acting in the header (legal authenticator, performer, participant, recipient...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Party {
    /// The first identifier.
    pub id: Option<Ii>,
    /// The RPPS number (the id under 1.2.250.1.71.4.2.1 starting with `8`, without that `8`).
    pub rpps: Option<String>,
    /// The ADELI number (the id under 1.2.250.1.71.4.2.1 starting with `0`, without that `0`).
    pub adeli: Option<String>,
    /// Profession / specialty (`code`).
    pub code: Option<Cd>,
    pub name: Option<PersonName>,
    pub organization: Option<Organization>,
}

/// An author of the document (`author/assignedAuthor`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Author {
    /// The first `assignedAuthor/id`.
    pub id: Option<Ii>,
    /// The RPPS number: id root 1.2.250.1.71.4.2.1 and extension `8`+RPPS, given without the `8`.
    pub rpps: Option<String>,
    /// The ADELI number: id root 1.2.250.1.71.4.2.1 and extension `0`+ADELI, given without the `0`.
    pub adeli: Option<String>,
    /// `author/time/@value`.
    pub time: Option<String>,
    /// `author/functionCode`.
    pub function_code: Option<Cd>,
    /// Profession / specialty (`assignedAuthor/code`, JDV_J01).
    pub profession: Option<Cd>,
    /// `assignedPerson/name` (absent for a software author).
    pub name: Option<PersonName>,
    /// `assignedAuthoringDevice/softwareName` for a software author.
    pub device_software: Option<String>,
    /// `representedOrganization`, identified by FINESS under 1.2.250.1.71.4.2.2.
    pub organization: Option<Organization>,
}

/// The legal authenticator (`legalAuthenticator`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LegalAuthenticator {
    pub time: Option<String>,
    /// `signatureCode/@code`; CI-SIS requires `S`.
    pub signature_code: Option<String>,
    pub party: Party,
}

/// The care encounter (`componentOf/encompassingEncounter`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Encounter {
    pub id: Option<Ii>,
    /// Encounter type (JDV_J142).
    pub code: Option<Cd>,
    /// Start (`effectiveTime/low/@value`, or `effectiveTime/@value`).
    pub start: Option<String>,
    /// End (`effectiveTime/high/@value`).
    pub end: Option<String>,
    /// True when `effectiveTime` is present, even with only a nullFlavor (`NA` is usual when the
    /// document does not relate to a stay).
    pub effective_time_present: bool,
    /// `location/healthCareFacility/code`: the XDS healthcareFacilityTypeCode (JDV_J02).
    pub facility_type: Option<Cd>,
    /// `location/healthCareFacility/id`.
    pub facility_id: Option<Ii>,
    /// `location/healthCareFacility/location/name`.
    pub location_name: Option<String>,
    /// `responsibleParty/assignedEntity`.
    pub responsible: Option<Party>,
}

/// A performer of a service event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Performer {
    pub type_code: Option<String>,
    pub party: Party,
}

/// A documented act (`documentationOf/serviceEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceEvent {
    pub code: Option<Cd>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub performers: Vec<Performer>,
}

/// An informant: a professional (`assignedEntity`) or a relative (`relatedEntity`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Informant {
    /// The professional, for `assignedEntity`.
    pub assigned: Option<Party>,
    /// `relatedEntity/@classCode` (e.g. `ECON` emergency contact, `NOK` trusted person).
    pub related_class_code: Option<String>,
    /// `relatedEntity/code` (relationship).
    pub related_code: Option<Cd>,
    pub related_name: Option<PersonName>,
}

/// A participant (`participant`), e.g. the médecin traitant (`functionCode PCP`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Participant {
    pub type_code: Option<String>,
    pub function_code: Option<Cd>,
    /// `associatedEntity/@classCode`.
    pub class_code: Option<String>,
    /// The associated person and `scopingOrganization`.
    pub party: Party,
}

/// A link to an earlier document (`relatedDocument/parentDocument`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RelatedDocument {
    /// `RPLC` (replaces) or `APND` (appends to); other HL7 codes are kept as they are.
    pub type_code: Option<String>,
    pub parent_id: Option<Ii>,
    pub parent_set_id: Option<Ii>,
    pub parent_version: Option<String>,
}

impl RelatedDocument {
    /// True for a replacement (`RPLC`).
    pub fn is_replacement(&self) -> bool {
        self.type_code.as_deref() == Some("RPLC")
    }
}

/// The patient (`recordTarget/patientRole`), with the INS identity traits.
///
/// `Debug` prints which traits are present, never their values: they are patient data.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
pub struct Patient {
    /// Every `patientRole/id`, in document order (nullFlavor ones included, as empty [`Ii`]s).
    pub ids: Vec<Ii>,
    /// The first identifier whose root is an INS OID.
    pub ins: Option<Ins>,
    /// Every INS found, when there are several (normally one).
    pub all_ins: Vec<Ins>,
    /// Local identifiers (IPP): ids with root and extension outside the INS arc 1.2.250.1.213.1.4.
    pub ipps: Vec<Ii>,
    /// Birth family name: `name/family[@qualifier="BR"]`.
    pub birth_family: Option<String>,
    /// Used family name: `name/family[@qualifier="CL"]`.
    pub used_family: Option<String>,
    /// A family name without qualifier (non-INS documents).
    pub unqualified_family: Option<String>,
    /// First birth first name: `name/given[@qualifier="BR"]`.
    pub given_birth_first: Option<String>,
    /// List of birth first names: `name/given` without qualifier (space-separated as written).
    pub birth_given_names: Option<String>,
    /// Used first name: `name/given[@qualifier="CL"]`.
    pub used_given: Option<String>,
    /// `birthTime/@value` (YYYYMMDD...).
    pub birth_time: Option<String>,
    /// `administrativeGenderCode/@code` (F, M, U).
    pub sex: Option<String>,
    /// Birthplace INSEE COG code: `birthplace/place/addr/county` (`99xxx` for a birth abroad).
    pub birthplace_insee: Option<String>,
    /// True when `patientRole/patient` exists (without nullFlavor).
    pub has_patient_element: bool,
    /// True when `patient/name` exists (without nullFlavor).
    pub has_name: bool,
}

impl Patient {
    /// The kind of the patient's INS, if any.
    pub fn ins_kind(&self) -> Option<InsKind> {
        self.ins.as_ref().map(|i| i.kind)
    }
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |o: &Option<String>| if o.is_some() { "present" } else { "absent" };
        f.debug_struct("Patient")
            .field("ids", &self.ids.len())
            .field("ins", &self.ins)
            .field("ipps", &self.ipps.len())
            .field("birth_family", &present(&self.birth_family))
            .field("given_birth_first", &present(&self.given_birth_first))
            .field("birth_given_names", &present(&self.birth_given_names))
            .field("birth_time", &present(&self.birth_time))
            .field("sex", &present(&self.sex))
            .field("birthplace_insee", &present(&self.birthplace_insee))
            .finish_non_exhaustive()
    }
}

/// How many times a direct child of `ClinicalDocument` occurs: in all, and in the form the
/// header rules count (no nullFlavor, required child present, required code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Occurrences {
    pub total: u32,
    /// Occurrences that count for the rules (see [`HeaderShape`]).
    pub usable: u32,
}

/// Counts of the header elements, for the "exactly one" / "at least one" rules.
///
/// "Usable" follows the ANS schematron predicates: `realmCode[@code='FR']`,
/// `typeId[@root='2.16.840.1.113883.1.3'][@extension='POCD_HD000040']`, `author[assignedAuthor]`,
/// `custodian[assignedCustodian]`, `legalAuthenticator[signatureCode/@code='S']`,
/// `documentationOf[serviceEvent]`, `componentOf[encompassingEncounter]`,
/// `relatedDocument[@typeCode='RPLC'][parentDocument]`, and no `nullFlavor` for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HeaderShape {
    pub elements: BTreeMap<String, Occurrences>,
}

impl HeaderShape {
    /// The occurrences of a direct child of `ClinicalDocument`, by local name.
    pub fn get(&self, name: &str) -> Occurrences {
        self.elements.get(name).copied().unwrap_or_default()
    }
}

/// The CI-SIS header of a CDA document.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CdaHeader {
    /// `realmCode/@code` (the first one).
    pub realm_code: Option<String>,
    pub type_id: Option<Ii>,
    /// Every `templateId` of `ClinicalDocument`, in order.
    pub template_ids: Vec<Ii>,
    pub id: Option<Ii>,
    /// The document type (`code`, LOINC from JDV_J07): the XDS typeCode.
    pub code: Option<Cd>,
    pub title: Option<String>,
    /// `effectiveTime/@value`: creation date of the document.
    pub effective_time: Option<String>,
    pub confidentiality_code: Option<Cd>,
    /// `languageCode/@code` (e.g. `fr-FR`).
    pub language_code: Option<String>,
    pub set_id: Option<Ii>,
    /// `versionNumber/@value`, as written.
    pub version_number: Option<String>,
    pub patient: Option<Patient>,
    /// Every `author`, in document order.
    pub authors: Vec<Author>,
    /// `custodian/assignedCustodian/representedCustodianOrganization`.
    pub custodian: Option<Organization>,
    pub legal_authenticator: Option<LegalAuthenticator>,
    pub encounter: Option<Encounter>,
    /// Every `documentationOf/serviceEvent`, in document order.
    pub service_events: Vec<ServiceEvent>,
    pub informants: Vec<Informant>,
    /// `informationRecipient/intendedRecipient`s: the addressees.
    pub information_recipients: Vec<Party>,
    pub participants: Vec<Participant>,
    /// `inFulfillmentOf/order/id`s (order numbers).
    pub in_fulfillment_of: Vec<Ii>,
    pub related_documents: Vec<RelatedDocument>,
    /// Element counts for the header rules.
    pub shape: HeaderShape,
}

impl CdaHeader {
    /// The templateIds that name the document model: all but the two generic ones (for a level 1
    /// document, `1.3.6.1.4.1.19376.1.2.20`).
    pub fn model_template_ids(&self) -> Vec<&Ii> {
        self.template_ids
            .iter()
            .filter(|t| {
                !t.root
                    .as_deref()
                    .is_some_and(|r| GENERIC_TEMPLATE_IDS.contains(&r))
            })
            .collect()
    }

    /// The document type code (`code/@code`), e.g. `11490-0` for a discharge letter.
    pub fn type_code(&self) -> Option<&str> {
        self.code.as_ref().and_then(|c| c.code.as_deref())
    }
}

/// Structuration level of a CDA document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Level {
    /// Level 1: unstructured body (`nonXMLBody`), usually a PDF.
    N1,
    /// Level 3: structured body (`structuredBody`) with coded entries.
    N3,
}

/// A summary of the document body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Body {
    /// Level 1: `component/nonXMLBody/text`.
    NonXml {
        /// `text/@mediaType` (`application/pdf`, `text/plain`, `image/jpeg`...).
        media_type: Option<String>,
        /// `text/@representation` (`B64` for binary content).
        representation: Option<String>,
        /// Length of the base64 text, whitespace included.
        content_b64_len: usize,
    },
    /// Level 3: `component/structuredBody`.
    Structured {
        /// The templateIds of every section (nested ones included), in document order.
        section_template_ids: Vec<String>,
        /// The codes of every section, in document order.
        section_codes: Vec<Cd>,
    },
    /// No `component` with a body.
    Missing,
}

impl Body {
    /// The structuration level, `None` without a body.
    pub fn level(&self) -> Option<Level> {
        match self {
            Body::NonXml { .. } => Some(Level::N1),
            Body::Structured { .. } => Some(Level::N3),
            Body::Missing => None,
        }
    }
}

/// Base64 text kept to decode an embedded PDF on demand; `Debug` prints its size only.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct B64Text {
    pub(crate) text: String,
    pub(crate) media_type: Option<String>,
    pub(crate) representation: Option<String>,
}

impl fmt::Debug for B64Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{} chars of {:?} {:?}>",
            self.text.len(),
            self.representation,
            self.media_type
        )
    }
}

/// Why an embedded PDF could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error(
        "the embedded document is declared with representation {0:?}, not B64: a PDF must be base64-encoded"
    )]
    NotBase64(Option<String>),
    #[error("the embedded PDF is not valid base64 ({0}); the sender must re-encode the document")]
    Base64(String),
    #[error("the embedded content decodes but does not start with %PDF-: it is not a PDF file")]
    NotPdf,
}

/// A CDA R2 document: header and body summary, owned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdaDocument {
    pub header: CdaHeader,
    pub body: Body,
    /// XPath of the `ClinicalDocument` element, the prefix of every finding location
    /// (`/ClinicalDocument`, or deeper in an auto-presentable document).
    pub root_path: String,
    /// True when the document is "auto-presentable": an XSLT stylesheet wrapping the
    /// `ClinicalDocument` (an ANS-accepted form).
    pub auto_presentable: bool,
    #[serde(skip)]
    pub(crate) pdf: Option<B64Text>,
}

impl CdaDocument {
    /// The structuration level, `None` without a body.
    pub fn level(&self) -> Option<Level> {
        self.body.level()
    }

    /// The model templateIds (see [`CdaHeader::model_template_ids`]).
    pub fn model_template_ids(&self) -> Vec<&Ii> {
        self.header.model_template_ids()
    }

    /// The embedded PDF: the level 1 body when it is `application/pdf`, or the PDF copy section
    /// (templateId 1.2.250.1.213.1.1.2.243) of a level 3 document. `None` when there is none;
    /// `Some(Err)` when it is there but cannot be decoded.
    pub fn embedded_pdf(&self) -> Option<Result<Vec<u8>, PdfError>> {
        use base64::Engine;
        let pdf = self.pdf.as_ref()?;
        if !pdf
            .representation
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("B64"))
        {
            return Some(Err(PdfError::NotBase64(pdf.representation.clone())));
        }
        let compact: Vec<u8> = pdf
            .text
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        Some(match engine.decode(&compact) {
            Err(e) => Err(PdfError::Base64(e.to_string())),
            Ok(bytes) if !bytes.starts_with(b"%PDF-") => Err(PdfError::NotPdf),
            Ok(bytes) => Ok(bytes),
        })
    }
}
