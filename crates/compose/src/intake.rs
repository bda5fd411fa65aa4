//! The metadata a DPI drops beside a PDF, read from JSON or TOML, and its validation.
//!
//! An [`Intake`] says who the patient is (INS and identity traits, IPP), who wrote and signed the
//! document, for which organisation and stay, what the document is, who receives it and, for a
//! discharge letter, optionally the structured content of a level 3 LDL-SES ([`LdlSes`]).
//! Field names are English and snake_case; `samples/outbound/` holds complete examples.
//!
//! [`Intake::validate`] lists every problem at once, each with a stable code and the path of
//! the field, so that the DPI team can fix a template in one go. Problems and parse errors never
//! repeat a value: the intake is full of patient data and these texts go to logs and to the
//! `error/` reason file.

use crate::codes::{
    AdmissionMode, Civility, Confidentiality, DischargeDestination, DocumentStatus, EncounterKind,
    InsKindName, Sex, Title,
};
use crate::timestamp::Timestamp;
use relais_core::RuleCode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable codes of intake problems.
pub mod codes {
    use relais_core::RuleCode;

    /// The metadata file is not valid JSON or TOML, or does not have the intake's shape.
    pub const INTAKE_SYNTAX: RuleCode = RuleCode::new("INTAKE-SYNTAX");
    /// A required value is empty.
    pub const INTAKE_VALUE_MISSING: RuleCode = RuleCode::new("INTAKE-VALUE-MISSING");
    /// A text holds a control character, or a line break where one line is expected.
    pub const INTAKE_TEXT_INVALID: RuleCode = RuleCode::new("INTAKE-TEXT-INVALID");
    /// The document type is not a CI-SIS document type (no XDS classCode in NOS ASS_X04).
    pub const INTAKE_TYPE_UNKNOWN: RuleCode = RuleCode::new("INTAKE-TYPE-UNKNOWN");
    /// The document type's display name is needed and not given.
    pub const INTAKE_TYPE_DISPLAY_MISSING: RuleCode = RuleCode::new("INTAKE-TYPE-DISPLAY-MISSING");
    /// Structured content was given for a document type Relais only builds at level 1.
    pub const INTAKE_STRUCTURED_UNSUPPORTED: RuleCode =
        RuleCode::new("INTAKE-STRUCTURED-UNSUPPORTED");
    /// The patient has neither INS nor IPP.
    pub const INTAKE_PATIENT_ID_MISSING: RuleCode = RuleCode::new("INTAKE-PATIENT-ID-MISSING");
    /// The configuration requires a qualified INS and the intake has none.
    pub const INTAKE_INS_REQUIRED: RuleCode = RuleCode::new("INTAKE-INS-REQUIRED");
    /// The INS matricule is malformed or its key is wrong.
    pub const INTAKE_INS_INVALID: RuleCode = RuleCode::new("INTAKE-INS-INVALID");
    /// An identity trait the INS requires is missing.
    pub const INTAKE_INS_TRAIT_MISSING: RuleCode = RuleCode::new("INTAKE-INS-TRAIT-MISSING");
    /// A patient name is not in the INS form.
    pub const INTAKE_NAME_FORMAT: RuleCode = RuleCode::new("INTAKE-NAME-FORMAT");
    /// The birth place is not an INSEE code.
    pub const INTAKE_BIRTHPLACE_FORMAT: RuleCode = RuleCode::new("INTAKE-BIRTHPLACE-FORMAT");
    /// A date was expected and a date-time was given (or the reverse).
    pub const INTAKE_DATE_FORMAT: RuleCode = RuleCode::new("INTAKE-DATE-FORMAT");
    /// An RPPS number is not 11 digits.
    pub const INTAKE_RPPS_FORMAT: RuleCode = RuleCode::new("INTAKE-RPPS-FORMAT");
    /// A FINESS number is not 9 characters.
    pub const INTAKE_FINESS_FORMAT: RuleCode = RuleCode::new("INTAKE-FINESS-FORMAT");
    /// An OID is malformed.
    pub const INTAKE_OID_FORMAT: RuleCode = RuleCode::new("INTAKE-OID-FORMAT");
    /// A mail address is not a plain ASCII `local@domain`.
    pub const INTAKE_ADDRESS_FORMAT: RuleCode = RuleCode::new("INTAKE-ADDRESS-FORMAT");
    /// Dates contradict each other (discharge before admission…).
    pub const INTAKE_DATES_INCONSISTENT: RuleCode = RuleCode::new("INTAKE-DATES-INCONSISTENT");
    /// A discharge letter without a discharge date.
    pub const INTAKE_DISCHARGE_MISSING: RuleCode = RuleCode::new("INTAKE-DISCHARGE-MISSING");
    /// No XDS contentTypeCode can be derived: give `encounter.content_type`.
    pub const INTAKE_CONTENT_TYPE_MISSING: RuleCode = RuleCode::new("INTAKE-CONTENT-TYPE-MISSING");
    /// No recipient, or a recipient with neither address nor RPPS.
    pub const INTAKE_RECIPIENT_MISSING: RuleCode = RuleCode::new("INTAKE-RECIPIENT-MISSING");
}

/// A code from a terminology: the intake gives open value sets (professions, facility types,
/// practice settings) this way. `system` defaults to the usual code system of the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The code, e.g. `G15_10/SM27`.
    pub code: String,
    /// Its label, e.g. `Médecin - Médecine interne (SM)`.
    pub display: String,
    /// Its code system (an OID), when not the field's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

impl Code {
    /// A code of the default system.
    pub fn new(code: impl Into<String>, display: impl Into<String>) -> Code {
        Code {
            code: code.into(),
            display: display.into(),
            system: None,
        }
    }

    /// The code system, or `default`.
    pub fn system_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.system.as_deref().unwrap_or(default)
    }
}

/// An identifier issued by an organisation (IPP, visit number): value and issuer's OID.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalId {
    /// The identifier.
    pub value: String,
    /// The OID of the organisation that issued it.
    pub assigner_oid: String,
}

impl fmt::Debug for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalId")
            .field("value", &"<redacted>")
            .field("assigner_oid", &self.assigner_oid)
            .finish()
    }
}

/// A postal address, in the structured parts the CI-SIS header allows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// House number (`12`, `12 bis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub house_number: Option<String>,
    /// Street name (`rue des Exemples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_name: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What the document is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentInfo {
    /// Document type (LOINC, JDV_J07): `11490-0` (LDL-SES, the default), `11502-2` (CR-BIO)…
    #[serde(default = "default_type_code")]
    pub type_code: String,
    /// The type's label; needed for types Relais does not know (see
    /// [`crate::codes::known_type_display`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_display: Option<String>,
    /// The type's code system when it is not LOINC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_code_system: Option<String>,
    /// Title of the document (CDA `title`, XDS title, the mail subject's libellé by default).
    pub title: String,
    /// Confidentiality: `N` (default), `R` or `V`.
    #[serde(default)]
    pub confidentiality: Confidentiality,
    /// The DPI's number of this document (CDA `id/@extension` under the organisation's
    /// document OID); generated from the build seed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The DPI's number of the document's set of versions (CDA `setId/@extension`); generated
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_id: Option<String>,
    /// When the document was written (CDA `effectiveTime`); the build time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
}

fn default_type_code() -> String {
    crate::codes::TYPE_LDL_SES.to_string()
}

/// The patient's INS: matricule and kind.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsId {
    /// The 15-character matricule (NIR or NIA with its key).
    pub value: String,
    /// `NIR`, `NIA`, `NIR-TEST` or `NIR-DEMO`.
    pub kind: InsKindName,
}

impl fmt::Debug for InsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsId")
            .field("value", &"<redacted>")
            .field("kind", &self.kind)
            .finish()
    }
}

/// The patient. With an INS, the identity traits of the INS are mandatory (birth family name,
/// birth first names, sex, birth date, birth place). `Debug` prints no value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// The INS, when the identity is qualified. Without it the document names the patient by
    /// the IPP only and the mail says `X-MSS-INS: N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ins: Option<InsId>,
    /// Birth family name (nom de naissance), as in the INS.
    pub birth_family_name: String,
    /// Birth first names (prénoms de naissance), in order, one per item.
    pub birth_given_names: Vec<String>,
    /// Used family name (nom utilisé), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_family_name: Option<String>,
    /// Used first name (prénom utilisé), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_given_name: Option<String>,
    /// `F`, `M` or `UN`.
    pub sex: Sex,
    /// Birth date (a date, no time).
    pub birth_date: Timestamp,
    /// INSEE code of the birth place (commune, or `99xxx` for a country), required with an INS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_place_code: Option<String>,
    /// The patient's identifier in the organisation (IPP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipp: Option<LocalId>,
    /// Home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Home phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = |b: bool| if b { "present" } else { "absent" };
        f.debug_struct("Patient")
            .field("ins", &self.ins)
            .field("birth_given_names", &self.birth_given_names.len())
            .field("sex", &self.sex)
            .field(
                "birth_place_code",
                &present(self.birth_place_code.is_some()),
            )
            .field("ipp", &self.ipp)
            .finish_non_exhaustive()
    }
}

/// A health professional (author, legal authenticator, recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Professional {
    /// RPPS number, 11 digits (the CDA writes it `8` + RPPS).
    pub rpps: String,
    /// Family name.
    pub family_name: String,
    /// First name.
    pub given_name: String,
    /// `M` or `MME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub civility: Option<Civility>,
    /// `DR`, `PR`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    /// Profession and specialty (JDV_J01), e.g. `G15_10/SM27`.
    pub profession: Code,
    /// MSSanté address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mssante: Option<String>,
    /// Work phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The organisation producing and keeping the document (author's structure and custodian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    /// FINESS number, 9 characters (the CDA writes it `1` + FINESS).
    pub finess: String,
    /// Name.
    pub name: String,
    /// Facility type (JDV_J02, XDS healthcareFacilityTypeCode), e.g. `SA01`.
    pub facility_type: Code,
    /// Practice setting (JDV_J04, XDS practiceSettingCode); `ETABLISSEMENT` by default.
    #[serde(default = "default_practice_setting")]
    pub practice_setting: Code,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

fn default_practice_setting() -> Code {
    Code::new("ETABLISSEMENT", "Etablissement de santé")
}

/// The stay or visit the document is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encounter {
    /// Start: admission.
    pub start: Timestamp,
    /// End: discharge (required for a discharge letter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// Encounter type (JDV_J142); `IMP` (hospitalisation) by default.
    #[serde(default = "default_encounter_kind")]
    pub kind: EncounterKind,
    /// The ward or unit (service), e.g. `Médecine interne`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The visit number (numéro de séjour/dossier), also the PDF name's last part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<LocalId>,
    /// The documented act (CDA `serviceEvent/code`), when not the encounter type (e.g. the
    /// biology chapter of a lab report, LOINC `18723-7` Hématologie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_event: Option<Code>,
    /// XDS contentTypeCode (JDV_J59); for `IMP`, `03` (hospitalisation complète) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Code>,
}

fn default_encounter_kind() -> EncounterKind {
    EncounterKind::IMP
}

/// A recipient: an MSSanté address, or an RPPS number to resolve through the Annuaire, or both.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// MSSanté address (`…@….mssante.fr`, or `<INS>@patient.mssante.fr` for the patient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mssante: Option<String>,
    /// RPPS number: written in the CDA as an information recipient; resolved to an address by
    /// the Annuaire when `mssante` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpps: Option<String>,
    /// Family name (with `rpps`, written in the CDA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Civility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub civility: Option<Civility>,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A patient address holds the INS: show the domain only.
        let domain = self
            .mssante
            .as_deref()
            .map(|a| format!("<…>@{}", a.rsplit('@').next().unwrap_or_default()));
        f.debug_struct("Recipient")
            .field("mssante", &domain)
            .field("rpps", &self.rpps)
            .finish_non_exhaustive()
    }
}

/// Texts of the mail.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailText {
    /// The libellé of the subject `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>`; the document
    /// title by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_label: Option<String>,
    /// The plain-text body; a short French text naming the document by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl fmt::Debug for MailText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailText")
            .field("subject_label", &self.subject_label)
            .field("body", &self.body.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// A medication at discharge (an entry FR-Traitement of the section Traitements à la sortie).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Medication {
    /// The product as prescribed, e.g. `LEPONEX 100 mg, comprimé sécable`.
    pub name: String,
    /// Its code, with its system: a CIS code (`1.2.250.1.213.2.3.1`) is the product code; any
    /// other (ATC `2.16.840.1.113883.6.73`, CIP…) is written as its translation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    /// Dose, in words (`1 comprimé`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<String>,
    /// Frequency, in words (`matin et soir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// Route, in words (`voie orale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Start of the treatment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    /// End of the treatment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The structured content of a level 3 discharge letter (LDL-SES 2022.01): the four mandatory
/// sections of the model and two optional text sections. `Debug` prints no clinical text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdlSes {
    /// Status of the letter (section FR-Statut-du-document-LDL-SES); `completed` by default.
    #[serde(default)]
    pub status: DocumentStatus,
    /// Reason for the stay (section FR-Raison-de-la-recommandation-non-code).
    pub reason: String,
    /// How the patient came in (entry FR-Modalite-entree).
    pub admission_mode: AdmissionMode,
    /// Where the patient went (entry FR-Modalite-sortie).
    pub discharge_destination: DischargeDestination,
    /// Medical summary of the stay (entry FR-Synthese-medicale-sejour).
    pub summary: String,
    /// Adverse events during the stay (entry FR-Evenement-indesirable-pendant-hospitalisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adverse_events: Option<String>,
    /// Whether multi-resistant or emerging organisms were searched for (entry
    /// FR-Recherche-de-micro-organismes).
    pub multiresistant_screening: bool,
    /// The multi-resistant organisms identified
    /// (FR-Identification-micro-organismes-multiresistants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiresistant_organisms: Option<String>,
    /// Whether blood products were transfused (FR-Transfusion-de-produits-sanguins).
    pub transfusion: bool,
    /// Transfusion accidents (FR-Accidents-transfusionnels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfusion_accidents: Option<String>,
    /// Whether blood derivatives were given (FR-Administration-de-derives-du-sang).
    pub blood_derivatives: bool,
    /// Adverse events after blood derivatives
    /// (FR-Evenement-indesirable-suite-administration-derives-sang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blood_derivatives_adverse_events: Option<String>,
    /// Medications at discharge (section FR-Traitements-a-la-sortie); empty means "no known
    /// medication", which the section then says with the code of
    /// JDV_AbsentOrUnknownMedication_CISIS.
    #[serde(default)]
    pub discharge_medications: Vec<Medication>,
    /// Results awaited, other information (section FR-Resultats-examens-non-code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_results: Option<String>,
    /// Follow-up: appointments, care to organise (section FR-Plan-de-soins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
}

impl fmt::Debug for LdlSes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdlSes")
            .field("status", &self.status)
            .field("admission_mode", &self.admission_mode)
            .field("discharge_destination", &self.discharge_destination)
            .field("discharge_medications", &self.discharge_medications.len())
            .field("pending_results", &self.pending_results.is_some())
            .field("follow_up", &self.follow_up.is_some())
            .finish_non_exhaustive()
    }
}

/// What the DPI drops beside the PDF: everything the CDA header, the XDM metadata and the mail
/// need. Read it with [`Intake::from_json`] or [`Intake::from_toml`], check it with
/// [`Intake::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    /// What the document is.
    pub document: DocumentInfo,
    /// Whom it is about.
    pub patient: Patient,
    /// Who wrote it.
    pub author: Professional,
    /// Who signs it (legal authenticator); the author when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_authenticator: Option<Professional>,
    /// The organisation producing it.
    pub organization: Organization,
    /// The stay or visit.
    pub encounter: Encounter,
    /// The patient's médecin traitant (CDA participant with function `PCP`), when known: by
    /// RPPS and family name. Usually also a recipient of a discharge letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gp: Option<Recipient>,
    /// Who receives it.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// Texts of the mail.
    #[serde(default)]
    pub mail: MailText,
    /// Structured content of a level 3 discharge letter; level 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldl_ses: Option<LdlSes>,
}

/// Rules of the site that tighten validation (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntakePolicy {
    /// Refuse a patient without INS (no qualified identity).
    pub require_ins: bool,
}

/// One problem of an intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable code (see [`codes`]).
    pub code: RuleCode,
    /// Path of the field, e.g. `patient.birth_place_code` or `recipients[1].mssante`.
    pub field: String,
    /// What is wrong and what to do; never the value itself.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.code, self.field, self.message)
    }
}

/// An intake that cannot be used: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IntakeError {
    /// The problems, in field order.
    pub problems: Vec<Problem>,
}

impl IntakeError {
    /// True when one of the problems has this code.
    pub fn has(&self, code: &str) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }
}

impl fmt::Display for IntakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the intake metadata has {} problem(s):",
            self.problems.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl Intake {
    /// Read an intake from JSON. Errors give the line and column and never a value.
    pub fn from_json(bytes: &[u8]) -> Result<Intake, IntakeError> {
        serde_json::from_slice(bytes).map_err(|e| {
            syntax_error(
                "JSON",
                &e.to_string(),
                Some((e.line(), e.column())).filter(|(l, _)| *l > 0),
            )
        })
    }

    /// Read an intake from TOML. Errors give the line and column and never a value.
    pub fn from_toml(text: &str) -> Result<Intake, IntakeError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_column(text, s.start));
            syntax_error("TOML", e.message(), at)
        })
    }

    /// Check the intake with the default policy (an INS is not required).
    pub fn validate(&self) -> Result<(), IntakeError> {
        self.validate_with(&IntakePolicy::default())
    }

    /// Check the intake: every problem, each with its code and field.
    pub fn validate_with(&self, policy: &IntakePolicy) -> Result<(), IntakeError> {
        let mut v = Validator::default();
        v.document(self);
        v.patient(&self.patient, policy);
        v.professional("author", &self.author);
        if let Some(l) = &self.legal_authenticator {
            v.professional("legal_authenticator", l);
        }
        v.organization(&self.organization);
        v.encounter(self);
        v.recipients(&self.recipients);
        if let Some(gp) = &self.gp {
            v.gp(gp);
        }
        v.opt_text(
            "mail.subject_label",
            self.mail.subject_label.as_deref(),
            false,
        );
        v.opt_text("mail.body", self.mail.body.as_deref(), true);
        if let Some(l) = &self.ldl_ses {
            v.ldl_ses(l);
        }
        if v.problems.is_empty() {
            Ok(())
        } else {
            Err(IntakeError {
                problems: v.problems,
            })
        }
    }

    /// The document type's display name (given, or known).
    pub(crate) fn type_display(&self) -> &str {
        self.document
            .type_display
            .as_deref()
            .or_else(|| crate::codes::known_type_display(&self.document.type_code))
            .unwrap_or_default()
    }

    /// The legal authenticator (the author when none is given).
    pub(crate) fn signer(&self) -> &Professional {
        self.legal_authenticator.as_ref().unwrap_or(&self.author)
    }

    /// The XDS contentTypeCode: given, or derived from the encounter type.
    pub(crate) fn content_type(&self) -> Option<(String, String, String)> {
        if let Some(c) = &self.encounter.content_type {
            return Some((
                c.code.clone(),
                c.system_or(crate::codes::CONTENT_TYPE_SYSTEM).to_string(),
                c.display.clone(),
            ));
        }
        match self.encounter.kind {
            EncounterKind::IMP => Some((
                "03".into(),
                crate::codes::CONTENT_TYPE_SYSTEM.into(),
                "Hospitalisation complète (non compris hospitalisation de semaine)".into(),
            )),
            _ => None,
        }
    }
}

/// A syntax error without the value serde may quote: keep field names (unknown / missing /
/// duplicate field), and for a bad value only what was expected.
fn syntax_error(format: &str, raw: &str, at: Option<(usize, usize)>) -> IntakeError {
    let first = raw.lines().next().unwrap_or_default();
    // serde_json appends " at line L column C": the position is given separately.
    let first = first.split(" at line ").next().unwrap_or_default().trim();
    let keeps_names = [
        "unknown field",
        "missing field",
        "duplicate field",
        "duplicate key",
    ];
    let what = if keeps_names.iter().any(|k| first.starts_with(k)) {
        first.to_string()
    } else if let Some(expected) = first.split("expected ").nth(1) {
        format!("a value is not accepted here: expected {expected}")
    } else if first.contains("invalid") || first.contains("unknown variant") {
        "a value is not accepted here".to_string()
    } else if first.starts_with("not a ")
        || first.starts_with("a time of day")
        || first.starts_with("not a valid")
    {
        // Our own timestamp messages: no value in them.
        first.to_string()
    } else {
        format!("the file is not valid {format} or does not have the intake's shape")
    };
    let field = match at {
        Some((line, column)) => format!("line {line}, column {column}"),
        None => "(file)".to_string(),
    };
    IntakeError {
        problems: vec![Problem {
            code: codes::INTAKE_SYNTAX,
            field,
            message: format!("{format}: {what}"),
        }],
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

/// An OID: digits and dots, no empty arc, no leading zero in an arc, at most 64 characters.
pub(crate) fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').count() >= 2
        && s.split('.').all(|arc| {
            !arc.is_empty()
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc == "0" || !arc.starts_with('0'))
        })
}

/// A plain ASCII `local@domain` address (no display name, no angle brackets).
pub(crate) fn is_plain_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    };
    ok(local)
        && ok(domain)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn push(&mut self, code: RuleCode, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            code,
            field: field.into(),
            message: message.into(),
        });
    }

    /// A text that must be present; `multiline` allows line breaks and tabs.
    fn text(&mut self, field: &str, value: &str, multiline: bool) {
        if value.trim().is_empty() {
            self.push(codes::INTAKE_VALUE_MISSING, field, "a value is required");
            return;
        }
        self.text_chars(field, value, multiline);
    }

    fn opt_text(&mut self, field: &str, value: Option<&str>, multiline: bool) {
        if let Some(v) = value {
            self.text(field, v, multiline);
        }
    }

    fn text_chars(&mut self, field: &str, value: &str, multiline: bool) {
        let bad_control = value.chars().any(|c| {
            (c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
                || matches!(c, '\u{FFFE}' | '\u{FFFF}')
        });
        if bad_control {
            let what = if multiline {
                "holds a control character (only line breaks and tabs are allowed)"
            } else {
                "holds a line break or control character: one line of text is expected"
            };
            self.push(codes::INTAKE_TEXT_INVALID, field, what);
        }
    }

    fn oid(&mut self, field: &str, value: &str) {
        if !is_oid(value) {
            self.push(
                codes::INTAKE_OID_FORMAT,
                field,
                "not an OID (digits separated by dots, e.g. 1.2.250.1.71.4.2.2)",
            );
        }
    }

    fn code(&mut self, field: &str, c: &Code) {
        self.text(&format!("{field}.code"), &c.code, false);
        self.text(&format!("{field}.display"), &c.display, false);
        if let Some(s) = &c.system {
            self.oid(&format!("{field}.system"), s);
        }
    }

    fn rpps(&mut self, field: &str, value: &str) {
        if !(value.len() == 11 && value.bytes().all(|b| b.is_ascii_digit())) {
            self.push(
                codes::INTAKE_RPPS_FORMAT,
                field,
                "an RPPS number is 11 digits (without the leading 8 of the CDA identifier)",
            );
        }
    }

    fn address(&mut self, field: &str, value: &str) {
        if !is_plain_address(value) {
            self.push(
                codes::INTAKE_ADDRESS_FORMAT,
                field,
                "not a plain ASCII address local@domain (no display name, no angle brackets)",
            );
        }
    }

    fn identifier(&mut self, field: &str, value: &str) {
        self.text(field, value, false);
        if value.chars().any(char::is_whitespace) {
            self.push(
                codes::INTAKE_TEXT_INVALID,
                field,
                "an identifier holds no space",
            );
        }
    }

    fn local_id(&mut self, field: &str, id: &LocalId) {
        self.identifier(&format!("{field}.value"), &id.value);
        self.oid(&format!("{field}.assigner_oid"), &id.assigner_oid);
    }

    fn postal(&mut self, field: &str, a: &Address) {
        for (name, v) in [
            ("house_number", &a.house_number),
            ("street_name", &a.street_name),
            ("postal_code", &a.postal_code),
            ("city", &a.city),
            ("country", &a.country),
        ] {
            self.opt_text(&format!("{field}.{name}"), v.as_deref(), false);
        }
    }

    fn document(&mut self, intake: &Intake) {
        let d = &intake.document;
        self.text("document.title", &d.title, false);
        if d.title.chars().count() > 255 {
            self.push(
                codes::INTAKE_TEXT_INVALID,
                "document.title",
                "a title is at most 255 characters",
            );
        }
        self.text("document.type_code", &d.type_code, false);
        if let Some(s) = &d.type_code_system {
            self.oid("document.type_code_system", s);
        }
        let tables = crate::code_tables();
        if !d.type_code.trim().is_empty() && tables.class_code_for(&d.type_code).is_none() {
            self.push(
                codes::INTAKE_TYPE_UNKNOWN,
                "document.type_code",
                format!(
                    "{} is not a CI-SIS document type (no XDS classCode for it in NOS ASS_X04); \
                     use a code of JDV_J07, e.g. 11490-0 for a discharge letter",
                    printable(&d.type_code)
                ),
            );
        }
        let type_known = tables.class_code_for(&d.type_code).is_some();
        match &d.type_display {
            Some(t) => self.text("document.type_display", t, false),
            None if type_known && crate::codes::known_type_display(&d.type_code).is_none() => self
                .push(
                    codes::INTAKE_TYPE_DISPLAY_MISSING,
                    "document.type_display",
                    "give the label of the document type (JDV_J07) for this type code",
                ),
            None => {}
        }
        if let Some(id) = &d.id {
            self.identifier("document.id", id);
        }
        if let Some(id) = &d.set_id {
            self.identifier("document.set_id", id);
        }
        if intake.ldl_ses.is_some() && d.type_code != crate::codes::TYPE_LDL_SES {
            self.push(
                codes::INTAKE_STRUCTURED_UNSUPPORTED,
                "ldl_ses",
                "structured sections are built for discharge letters (type 11490-0) only; \
                 other types are sent as level 1 (PDF): remove ldl_ses or change the type",
            );
        }
    }

    fn patient(&mut self, p: &Patient, policy: &IntakePolicy) {
        if p.ins.is_none() && p.ipp.is_none() {
            self.push(
                codes::INTAKE_PATIENT_ID_MISSING,
                "patient",
                "the patient needs an INS (patient.ins) or an IPP (patient.ipp)",
            );
        }
        if policy.require_ins && p.ins.is_none() {
            self.push(
                codes::INTAKE_INS_REQUIRED,
                "patient.ins",
                "the configuration requires a qualified INS: the patient's identity must be \
                 qualified in the DPI before the document is sent",
            );
        }
        if let Some(ins) = &p.ins {
            use relais_cda::ins::{InsValueProblem, check_ins_value};
            match check_ins_value(&ins.value) {
                None => {}
                Some(InsValueProblem::Format) => self.push(
                    codes::INTAKE_INS_INVALID,
                    "patient.ins.value",
                    "an INS matricule is 15 characters: 13 digits (2A/2B allowed for Corsica) \
                     and a 2-digit key",
                ),
                Some(InsValueProblem::Key) => self.push(
                    codes::INTAKE_INS_INVALID,
                    "patient.ins.value",
                    "the INS key (last 2 digits) does not match the matricule: check the INS",
                ),
            }
            if p.birth_place_code.is_none() {
                self.push(
                    codes::INTAKE_INS_TRAIT_MISSING,
                    "patient.birth_place_code",
                    "with an INS, the birth place (INSEE code) is a mandatory identity trait",
                );
            }
        }
        let trait_code = if p.ins.is_some() {
            codes::INTAKE_INS_TRAIT_MISSING
        } else {
            codes::INTAKE_VALUE_MISSING
        };
        if p.birth_family_name.trim().is_empty() {
            self.push(
                trait_code.clone(),
                "patient.birth_family_name",
                "the birth family name is required",
            );
        } else {
            self.text_chars("patient.birth_family_name", &p.birth_family_name, false);
        }
        if p.birth_given_names.is_empty() {
            self.push(
                trait_code,
                "patient.birth_given_names",
                "at least one birth first name is required",
            );
        }
        for (i, n) in p.birth_given_names.iter().enumerate() {
            let field = format!("patient.birth_given_names[{i}]");
            self.text(&field, n, false);
            if n.trim().contains(' ') {
                self.push(
                    codes::INTAKE_NAME_FORMAT,
                    field,
                    "one first name per item (a compound first name is written with a hyphen)",
                );
            }
        }
        self.opt_text(
            "patient.used_family_name",
            p.used_family_name.as_deref(),
            false,
        );
        self.opt_text(
            "patient.used_given_name",
            p.used_given_name.as_deref(),
            false,
        );
        if !p.birth_date.is_date_only() {
            self.push(
                codes::INTAKE_DATE_FORMAT,
                "patient.birth_date",
                "a birth date is a date (YYYY-MM-DD), without time of day",
            );
        }
        if let Some(code) = &p.birth_place_code {
            let b = code.as_bytes();
            let ok = b.len() == 5
                && (b[..2].iter().all(u8::is_ascii_digit) || matches!(&b[..2], b"2A" | b"2B"))
                && b[2..].iter().all(u8::is_ascii_digit);
            if !ok {
                self.push(
                    codes::INTAKE_BIRTHPLACE_FORMAT,
                    "patient.birth_place_code",
                    "the birth place is the 5-character INSEE code of the commune (2A/2B for \
                     Corsica), or 99 and the country code for a birth abroad",
                );
            }
        }
        if let Some(ipp) = &p.ipp {
            self.local_id("patient.ipp", ipp);
        }
        if let Some(a) = &p.address {
            self.postal("patient.address", a);
        }
        self.opt_text("patient.phone", p.phone.as_deref(), false);
    }

    fn professional(&mut self, field: &str, p: &Professional) {
        self.rpps(&format!("{field}.rpps"), &p.rpps);
        self.text(&format!("{field}.family_name"), &p.family_name, false);
        self.text(&format!("{field}.given_name"), &p.given_name, false);
        self.code(&format!("{field}.profession"), &p.profession);
        if let Some(a) = &p.mssante {
            self.address(&format!("{field}.mssante"), a);
        }
        self.opt_text(&format!("{field}.phone"), p.phone.as_deref(), false);
    }

    fn organization(&mut self, o: &Organization) {
        let b = o.finess.as_bytes();
        let ok = b.len() == 9
            && (b[..2].iter().all(u8::is_ascii_digit) || matches!(&b[..2], b"2A" | b"2B"))
            && b[2..].iter().all(u8::is_ascii_digit);
        if !ok {
            self.push(
                codes::INTAKE_FINESS_FORMAT,
                "organization.finess",
                "a FINESS number is 9 characters: digits (2A/2B first for Corsica), without \
                 the leading 1 of the CDA identifier",
            );
        }
        self.text("organization.name", &o.name, false);
        self.code("organization.facility_type", &o.facility_type);
        self.code("organization.practice_setting", &o.practice_setting);
        if let Some(a) = &o.address {
            self.postal("organization.address", a);
        }
        self.opt_text("organization.phone", o.phone.as_deref(), false);
    }

    fn encounter(&mut self, intake: &Intake) {
        let e = &intake.encounter;
        if let Some(end) = &e.end
            && end.is_before(&e.start)
        {
            self.push(
                codes::INTAKE_DATES_INCONSISTENT,
                "encounter.end",
                "the end of the stay is before its start",
            );
        }
        if intake.document.type_code == crate::codes::TYPE_LDL_SES && e.end.is_none() {
            self.push(
                codes::INTAKE_DISCHARGE_MISSING,
                "encounter.end",
                "a discharge letter needs the discharge date and time",
            );
        }
        self.opt_text("encounter.service", e.service.as_deref(), false);
        if let Some(id) = &e.id {
            self.local_id("encounter.id", id);
        }
        if let Some(c) = &e.service_event {
            self.code("encounter.service_event", c);
        }
        match &e.content_type {
            Some(c) => self.code("encounter.content_type", c),
            None if intake.content_type().is_none() => self.push(
                codes::INTAKE_CONTENT_TYPE_MISSING,
                "encounter.content_type",
                "give the XDS contentTypeCode (JDV_J59) of this kind of encounter; only a \
                 hospitalisation (IMP) has a default",
            ),
            None => {}
        }
    }

    fn recipients(&mut self, recipients: &[Recipient]) {
        if recipients.is_empty() {
            self.push(
                codes::INTAKE_RECIPIENT_MISSING,
                "recipients",
                "at least one recipient is required (an MSSanté address or an RPPS number)",
            );
        }
        for (i, r) in recipients.iter().enumerate() {
            let field = format!("recipients[{i}]");
            if r.mssante.is_none() && r.rpps.is_none() {
                self.push(
                    codes::INTAKE_RECIPIENT_MISSING,
                    field.clone(),
                    "a recipient needs an MSSanté address (mssante) or an RPPS number (rpps)",
                );
            }
            if let Some(a) = &r.mssante {
                self.address(&format!("{field}.mssante"), a);
            }
            if let Some(rpps) = &r.rpps {
                self.rpps(&format!("{field}.rpps"), rpps);
            }
            self.opt_text(
                &format!("{field}.family_name"),
                r.family_name.as_deref(),
                false,
            );
            self.opt_text(
                &format!("{field}.given_name"),
                r.given_name.as_deref(),
                false,
            );
        }
    }

    fn gp(&mut self, gp: &Recipient) {
        match &gp.rpps {
            Some(rpps) => self.rpps("gp.rpps", rpps),
            None => self.push(
                codes::INTAKE_VALUE_MISSING,
                "gp.rpps",
                "the médecin traitant is named by RPPS in the CDA",
            ),
        }
        match &gp.family_name {
            Some(n) => self.text("gp.family_name", n, false),
            None => self.push(
                codes::INTAKE_VALUE_MISSING,
                "gp.family_name",
                "the médecin traitant's family name is required",
            ),
        }
        self.opt_text("gp.given_name", gp.given_name.as_deref(), false);
        if let Some(a) = &gp.mssante {
            self.address("gp.mssante", a);
        }
    }

    fn ldl_ses(&mut self, l: &LdlSes) {
        self.text("ldl_ses.reason", &l.reason, true);
        self.text("ldl_ses.summary", &l.summary, true);
        for (name, v) in [
            ("adverse_events", &l.adverse_events),
            ("multiresistant_organisms", &l.multiresistant_organisms),
            ("transfusion_accidents", &l.transfusion_accidents),
            (
                "blood_derivatives_adverse_events",
                &l.blood_derivatives_adverse_events,
            ),
            ("pending_results", &l.pending_results),
            ("follow_up", &l.follow_up),
        ] {
            self.opt_text(&format!("ldl_ses.{name}"), v.as_deref(), true);
        }
        for (i, m) in l.discharge_medications.iter().enumerate() {
            let field = format!("ldl_ses.discharge_medications[{i}]");
            self.text(&format!("{field}.name"), &m.name, false);
            if let Some(c) = &m.code {
                self.code(&format!("{field}.code"), c);
                if c.system.is_none() {
                    self.push(
                        codes::INTAKE_VALUE_MISSING,
                        format!("{field}.code.system"),
                        "a medication code needs its code system (e.g. 1.2.250.1.213.2.3.1 for \
                         CIS, 2.16.840.1.113883.6.73 for ATC)",
                    );
                }
            }
            for (name, v) in [
                ("dose", &m.dose),
                ("frequency", &m.frequency),
                ("route", &m.route),
                ("comment", &m.comment),
            ] {
                self.opt_text(&format!("{field}.{name}"), v.as_deref(), false);
            }
            if let (Some(s), Some(e)) = (&m.start, &m.end)
                && e.is_before(s)
            {
                self.push(
                    codes::INTAKE_DATES_INCONSISTENT,
                    format!("{field}.end"),
                    "the end of the treatment is before its start",
                );
            }
        }
    }
}

/// A code (not patient data) made safe to quote: printable ASCII, at most 32 characters.
fn printable(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!("`{t}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_and_addresses() {
        assert!(is_oid("1.2.250.1.71.4.2.2"));
        assert!(is_oid("2.999.33.1.1"));
        assert!(!is_oid("1..2"));
        assert!(!is_oid("1.02"));
        assert!(!is_oid("12"));
        assert!(!is_oid("1.2.a"));
        assert!(is_plain_address("jean.dupont@medecin.mssante.fr"));
        assert!(!is_plain_address("Jean <jean@x.fr>"));
        assert!(!is_plain_address("jean@localhost"));
        assert!(!is_plain_address("jéan@x.fr"));
    }

    #[test]
    fn syntax_errors_never_quote_values() {
        let e = syntax_error(
            "JSON",
            "invalid type: string \"DUPONT\", expected a sequence at line 3 column 9",
            Some((3, 9)),
        );
        let text = e.to_string();
        assert!(!text.contains("DUPONT"), "{text}");
        assert!(text.contains("expected a sequence"), "{text}");
        assert!(text.contains("line 3, column 9"), "{text}");
        let e = syntax_error(
            "TOML",
            "unknown variant `X`, expected one of `F`, `M`, `UN`",
            None,
        );
        assert!(!e.to_string().contains("`X`"));
        let e = syntax_error("JSON", "unknown field `sexe`, expected one of ...", None);
        assert!(e.to_string().contains("unknown field `sexe`"));
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 0), (1, 1));
    }
}
