//! The codes the builder writes: OIDs, templateIds, and the closed CI-SIS value sets an intake
//! names by a short word (sex, civility, confidentiality, encounter type, LDL-SES entry values).
//!
//! Facts from the ANS material (Structuration minimale value sets JDV_J143, J245, J246, J142,
//! the LDL-SES 2022.01 model and its example, JDV_ModaliteEntree/Sortie_CISIS,
//! JDV_StatutDoc_CISIS, JDV_AbsentOrUnknownMedication_CISIS, JDV_J07). Open value sets
//! (professions, facility types, practice settings) are given by the intake as codes.

use serde::{Deserialize, Serialize};

/// LOINC.
pub const LOINC: &str = "2.16.840.1.113883.6.1";
/// SNOMED CT.
pub const SNOMED: &str = "2.16.840.1.113883.6.96";
/// HL7 ActCode.
pub const ACT_CODE: &str = "2.16.840.1.113883.5.4";
/// The ANS terminology of CI-SIS entry codes (TA_ASIP).
pub const TA_ASIP: &str = "1.2.250.1.213.1.1.4.322";
/// National health professional identifiers (`8` + RPPS).
pub const PS_ID_OID: &str = relais_cda::PS_ID_OID;
/// National structure identifiers (`1` + FINESS).
pub const STRUCTURE_ID_OID: &str = relais_cda::STRUCTURE_ID_OID;
/// Code system of the professions and specialties (JDV_J01, TRE_G15…).
pub const PROFESSION_SYSTEM: &str = "1.2.250.1.213.1.1.4.5";
/// Code system of the facility types (JDV_J02).
pub const FACILITY_TYPE_SYSTEM: &str = "1.2.250.1.71.4.2.4";
/// Code system of the practice settings (JDV_J04).
pub const PRACTICE_SETTING_SYSTEM: &str = "1.2.250.1.213.1.1.4.9";
/// Code system of the XDS contentTypeCode of the CI-SIS (JDV_J59).
pub const CONTENT_TYPE_SYSTEM: &str = "1.2.250.1.213.2.2";

/// Document type of the discharge letter (lettre de liaison à la sortie, LDL-SES).
pub const TYPE_LDL_SES: &str = "11490-0";
/// Document type of the lab report (CR d'examens biologiques, CR-BIO).
pub const TYPE_CR_BIO: &str = "11502-2";

/// templateId of the HL7 France conformance.
pub const TEMPLATE_HL7_FRANCE: &str = "2.16.840.1.113883.2.8.2.1";
/// templateId of the CI-SIS conformance (Structuration minimale).
pub const TEMPLATE_CISIS: &str = "1.2.250.1.213.1.1.1.1";
/// templateId of a level 1 document (IHE XDS-SD, unstructured body).
pub const TEMPLATE_N1: &str = relais_cda::N1_TEMPLATE_ID;
/// templateId and version of the LDL-SES model.
pub const TEMPLATE_LDL_SES: (&str, &str) = ("1.2.250.1.213.1.1.1.29", "2022.01");

/// Display names of document types (JDV_J07) the builder knows; others must be given.
pub fn known_type_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "11490-0" => "Lettre de liaison à la sortie d'un établissement de soins",
        "11502-2" => "CR d'examens biologiques",
        "18748-4" => "CR d'imagerie médicale",
        "34112-3" => "CR hospitalier (séjour)",
        "11488-4" => "CR ou fiche de consultation ou de visite",
        "15507-7" => "CR de passage aux urgences",
        "34133-9" => "Synthèse d'épisode de soins",
        "60591-5" => "Synthèse médicale",
        _ => return None,
    })
}

/// Display names of the XDS classCodes (JDV_J57) the builder knows.
pub fn class_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "10" => "Compte rendu",
        _ => return None,
    })
}

/// Display names of the XDS formatCodes the builder writes.
pub fn format_display(code: &str) -> Option<&'static str> {
    Some(match code {
        "urn:ihe:iti:xds-sd:pdf:2008" => "Document à corps non structuré en PDF",
        "urn:asip:ci-sis:ldl-ses:2017" => {
            "Lettre de liaison à la sortie d'un établissement de soins"
        }
        _ => return None,
    })
}

/// Administrative sex (JDV_J143: F, M, UN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Féminin.
    F,
    /// Masculin.
    M,
    /// Inconnu (`U` is accepted for it).
    #[serde(alias = "U")]
    UN,
}

impl Sex {
    /// `(code, display)` in HL7 AdministrativeGender (2.16.840.1.113883.5.1).
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            Sex::F => ("F", "Féminin"),
            Sex::M => ("M", "Masculin"),
            Sex::UN => ("UN", "Inconnu"),
        }
    }
}

/// Civility of a professional, the CDA name `prefix` (JDV_J245).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Civility {
    /// Monsieur.
    M,
    /// Madame.
    MME,
}

impl Civility {
    /// The code written in the CDA name `prefix`.
    pub fn code(self) -> &'static str {
        match self {
            Civility::M => "M",
            Civility::MME => "MME",
        }
    }
}

/// Title of a professional, the CDA name `suffix` (JDV_J246).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Title {
    /// Docteur.
    DR,
    /// Professeur.
    PR,
    /// Médecin chef.
    MC,
    /// Médecin général.
    MG,
    /// Pharmacien chef.
    PC,
    /// Pharmacien général.
    PG,
}

impl Title {
    /// The code written in the CDA name `suffix`.
    pub fn code(self) -> &'static str {
        match self {
            Title::DR => "DR",
            Title::PR => "PR",
            Title::MC => "MC",
            Title::MG => "MG",
            Title::PC => "PC",
            Title::PG => "PG",
        }
    }
}

/// The document's confidentiality (HL7 Confidentiality, 2.16.840.1.113883.5.25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Confidentiality {
    /// Normal.
    #[default]
    N,
    /// Restricted.
    R,
    /// Very restricted.
    V,
}

impl Confidentiality {
    /// `(code, display)`.
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            Confidentiality::N => ("N", "Normal"),
            Confidentiality::R => ("R", "Restreint"),
            Confidentiality::V => ("V", "Très restreint"),
        }
    }
}

/// Kind of an INS, by the OID of its assigning authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InsKindName {
    /// INS-NIR (1.2.250.1.213.1.4.8).
    #[serde(rename = "NIR")]
    Nir,
    /// INS-NIA (1.2.250.1.213.1.4.9).
    #[serde(rename = "NIA")]
    Nia,
    /// INS-NIR of test (1.2.250.1.213.1.4.10), for test platforms only.
    #[serde(rename = "NIR-TEST")]
    NirTest,
    /// INS-NIR of demonstration (1.2.250.1.213.1.4.11).
    #[serde(rename = "NIR-DEMO")]
    NirDemo,
}

impl InsKindName {
    /// The INS kind of `relais-cda` (which knows the OIDs).
    pub fn kind(self) -> relais_cda::InsKind {
        match self {
            InsKindName::Nir => relais_cda::InsKind::NirQualified,
            InsKindName::Nia => relais_cda::InsKind::Nia,
            InsKindName::NirTest => relais_cda::InsKind::NirTest,
            InsKindName::NirDemo => relais_cda::InsKind::Demo,
        }
    }

    /// The OID of the assigning authority.
    pub fn oid(self) -> &'static str {
        self.kind().oid()
    }
}

/// Type of the encounter (JDV_J142), `encompassingEncounter/code` and the default
/// `serviceEvent/code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncounterKind {
    /// Hospitalisation (établissement, y compris HAD).
    IMP,
    /// Passage aux urgences.
    EMER,
    /// Ambulatoire (hors établissement).
    AMB,
    /// Terrain (voie publique, hélicoptère, ambulance…).
    FLD,
    /// Soins à domicile.
    HH,
    /// Virtuelle.
    VR,
    /// Acte et consultation externe (établissement).
    EXTERNE,
    /// Séance.
    SEANCE,
}

impl EncounterKind {
    /// `(code, display, code system)`.
    pub fn code(self) -> (&'static str, &'static str, &'static str) {
        const OTHER: &str = "1.2.250.1.213.1.1.4.2.291";
        match self {
            EncounterKind::IMP => (
                "IMP",
                "Hospitalisation (établissement, y compris HAD)",
                ACT_CODE,
            ),
            EncounterKind::EMER => ("EMER", "Passage aux urgences (établissement)", ACT_CODE),
            EncounterKind::AMB => ("AMB", "Ambulatoire (hors établissement)", ACT_CODE),
            EncounterKind::FLD => (
                "FLD",
                "Terrain (voie publique, hélicoptère, ambulance, etc.)",
                ACT_CODE,
            ),
            EncounterKind::HH => ("HH", "Soins à domicile (hors établissement)", ACT_CODE),
            EncounterKind::VR => (
                "VR",
                "Virtuelle (exemple : RCP en l'absence du patient)",
                ACT_CODE,
            ),
            EncounterKind::EXTERNE => (
                "EXTERNE",
                "Acte et consultation externe (établissement)",
                OTHER,
            ),
            EncounterKind::SEANCE => ("SEANCE", "Séance (établissement ou libéral)", OTHER),
        }
    }
}

/// How the patient came in (FR-Modalite-entree, JDV_ModaliteEntree_CISIS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionMode {
    /// Hospitalisation en urgence.
    Emergency,
    /// Hospitalisation programmée.
    Planned,
    /// Transfert du patient.
    Transfer,
    /// Autre modalité d'entrée.
    Other,
}

impl AdmissionMode {
    /// `(code, display, code system)`.
    pub fn code(self) -> (&'static str, &'static str, &'static str) {
        match self {
            AdmissionMode::Emergency => ("183452005", "hospitalisation en urgence", SNOMED),
            AdmissionMode::Planned => ("8715000", "hospitalisation programmée", SNOMED),
            AdmissionMode::Transfer => ("107724000", "transfert du patient", SNOMED),
            AdmissionMode::Other => ("GEN-092.06.07", "Autre modalité d'entrée", TA_ASIP),
        }
    }
}

/// Where the patient went (FR-Modalite-sortie, JDV_ModaliteSortie_CISIS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DischargeDestination {
    /// Retour au domicile.
    Home,
    /// Etablissement de santé privé autorisé en SSR.
    Ssr,
    /// Hospitalisation à domicile.
    Had,
    /// Etablissement d'hébergement pour personnes âgées dépendantes.
    Ehpad,
    /// Autre établissement de santé.
    OtherHospital,
    /// Autre destination.
    Other,
}

impl DischargeDestination {
    /// `(code, display, code system)`.
    pub fn code(self) -> (&'static str, &'static str, &'static str) {
        const FINESS_CAT: &str = "1.2.250.1.213.1.6.1.8";
        match self {
            DischargeDestination::Home => ("160849004", "retour au domicile", SNOMED),
            DischargeDestination::Ssr => (
                "109",
                "Etablissement de santé privé autorisé en SSR",
                FINESS_CAT,
            ),
            DischargeDestination::Had => ("127", "Hospitalisation à Domicile", FINESS_CAT),
            DischargeDestination::Ehpad => (
                "500",
                "Etablissement d'hébergement pour personnes âgées dépendantes",
                FINESS_CAT,
            ),
            DischargeDestination::OtherHospital => {
                ("GEN-092.06.01", "Autre établissement de santé", TA_ASIP)
            }
            DischargeDestination::Other => ("GEN-092.06.03", "Autre destination", TA_ASIP),
        }
    }
}

/// Status of the letter (FR-Statut-document, JDV_StatutDoc_CISIS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// En cours d'exécution.
    InProgress,
    /// Réalisé.
    #[default]
    Completed,
    /// Approuvé.
    Approved,
    /// Clôturé.
    Closed,
}

impl DocumentStatus {
    /// `(code, display)` in SNOMED CT.
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            DocumentStatus::InProgress => ("385651009", "en cours d'exécution"),
            DocumentStatus::Completed => ("398166005", "réalisé"),
            DocumentStatus::Approved => ("9571008", "approuvé"),
            DocumentStatus::Closed => ("29179001", "clôturé"),
        }
    }
}

/// The CIS code system (Code Identifiant de Spécialité, the French medicinal products).
pub const CIS: &str = "1.2.250.1.213.2.3.1";

/// "No medication" as JDV_AbsentOrUnknownMedication_CISIS codes it.
pub const NO_KNOWN_MEDICATION: (&str, &str, &str) = (
    "no-known-medications",
    "Pas de traitement médicamenteux connu",
    "2.16.840.1.113883.5.1150.1",
);
