//! The XDS metadata of an XDM package, as typed Rust values.
//!
//! The model follows the IHE XDS metadata attributes (ITI TF-3 §4.2.3) rather than the ebRIM
//! elements that carry them: a `typeCode` is a [`Coded`] here, whether the XML wrote it as a
//! `Classification` with a `codingScheme` slot or not. [`crate::parse_metadata`] fills it from
//! METADATA.XML and [`crate::write_metadata_xml`] writes it back, so that a package built by this
//! crate reads back to equal values.

/// The classification schemes, identification schemes and object types of XDS (ITI TF-3
/// §4.2.5), as the `urn:uuid:` values METADATA.XML carries.
pub mod uuids {
    /// `DocumentEntry.classCode` classification scheme.
    pub const DOCUMENT_ENTRY_CLASS_CODE: &str = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a";
    /// `DocumentEntry.typeCode` classification scheme.
    pub const DOCUMENT_ENTRY_TYPE_CODE: &str = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983";
    /// `DocumentEntry.formatCode` classification scheme.
    pub const DOCUMENT_ENTRY_FORMAT_CODE: &str = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d";
    /// `DocumentEntry.confidentialityCode` classification scheme.
    pub const DOCUMENT_ENTRY_CONFIDENTIALITY_CODE: &str =
        "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f";
    /// `DocumentEntry.healthcareFacilityTypeCode` classification scheme.
    pub const DOCUMENT_ENTRY_HEALTHCARE_FACILITY_TYPE_CODE: &str =
        "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1";
    /// `DocumentEntry.practiceSettingCode` classification scheme.
    pub const DOCUMENT_ENTRY_PRACTICE_SETTING_CODE: &str =
        "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead";
    /// `DocumentEntry.eventCodeList` classification scheme.
    pub const DOCUMENT_ENTRY_EVENT_CODE: &str = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4";
    /// `DocumentEntry.author` classification scheme.
    pub const DOCUMENT_ENTRY_AUTHOR: &str = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d";
    /// `objectType` of a stable DocumentEntry.
    pub const DOCUMENT_ENTRY_STABLE: &str = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1";
    /// `objectType` of an on-demand DocumentEntry.
    pub const DOCUMENT_ENTRY_ON_DEMAND: &str = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248";
    /// `DocumentEntry.patientId` external identifier scheme.
    pub const DOCUMENT_ENTRY_PATIENT_ID: &str = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427";
    /// `DocumentEntry.uniqueId` external identifier scheme.
    pub const DOCUMENT_ENTRY_UNIQUE_ID: &str = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab";
    /// Classification node that marks a RegistryPackage as a SubmissionSet.
    pub const SUBMISSION_SET_NODE: &str = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd";
    /// Classification node that marks a RegistryPackage as a Folder.
    pub const FOLDER_NODE: &str = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2";
    /// `SubmissionSet.patientId` external identifier scheme.
    pub const SUBMISSION_SET_PATIENT_ID: &str = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446";
    /// `SubmissionSet.sourceId` external identifier scheme.
    pub const SUBMISSION_SET_SOURCE_ID: &str = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832";
    /// `SubmissionSet.uniqueId` external identifier scheme.
    pub const SUBMISSION_SET_UNIQUE_ID: &str = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8";
    /// `SubmissionSet.contentTypeCode` classification scheme.
    pub const SUBMISSION_SET_CONTENT_TYPE_CODE: &str =
        "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500";
    /// `SubmissionSet.author` classification scheme.
    pub const SUBMISSION_SET_AUTHOR: &str = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d";

    /// ebRIM `objectType` of a RegistryPackage.
    pub const REGISTRY_PACKAGE_OBJECT_TYPE: &str =
        "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage";
    /// ebRIM `objectType` of a Classification.
    pub const CLASSIFICATION_OBJECT_TYPE: &str =
        "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification";
    /// ebRIM `objectType` of an ExternalIdentifier.
    pub const EXTERNAL_IDENTIFIER_OBJECT_TYPE: &str =
        "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier";
    /// ebRIM `objectType` of an Association.
    pub const ASSOCIATION_OBJECT_TYPE: &str =
        "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association";
    /// The `HasMember` association type (submission set → document entry).
    pub const ASSOCIATION_HAS_MEMBER: &str =
        "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember";
    /// The `Approved` availability status.
    pub const STATUS_APPROVED: &str = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved";

    /// Namespace of `SubmitObjectsRequest` (ebRS 3.0 LCM).
    pub const NS_LCM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0";
    /// Namespace of the registry information model (ebRIM 3.0).
    pub const NS_RIM: &str = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0";
}

/// A code from a terminology, as XDS carries it in a classification: `nodeRepresentation` is the
/// code, the `codingScheme` slot its system (an OID for the French JDV), `Name` its label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coded {
    /// The code (`nodeRepresentation`), e.g. `11490-0`.
    pub code: String,
    /// The `codingScheme` slot, e.g. `2.16.840.1.113883.6.1` for LOINC.
    pub scheme: String,
    /// The human label (`Name/LocalizedString/@value`), when given.
    pub display: Option<String>,
}

impl Coded {
    /// A code with its scheme and label.
    pub fn new(
        code: impl Into<String>,
        scheme: impl Into<String>,
        display: impl Into<String>,
    ) -> Self {
        Coded {
            code: code.into(),
            scheme: scheme.into(),
            display: Some(display.into()),
        }
    }
}

/// An HL7v2 CX identifier as XDS writes a patientId: `id^^^&OID&ISO^type`, e.g. an INS as
/// `<INS>^^^&1.2.250.1.213.1.4.8&ISO^NH`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cx {
    /// CX.1, the identifier itself.
    pub id: String,
    /// CX.4.2, the assigning authority's universal id (an OID), or CX.4 whole when it has no `&`.
    pub assigning_authority: Option<String>,
    /// CX.5, the identifier type code (`NH` for the INS, `PI` for an IPP).
    pub id_type: Option<String>,
}

impl Cx {
    /// An identifier issued by the authority `oid`, with type code `id_type` (e.g. `NH`).
    pub fn new(id: impl Into<String>, oid: impl Into<String>, id_type: impl Into<String>) -> Self {
        Cx {
            id: id.into(),
            assigning_authority: Some(oid.into()),
            id_type: Some(id_type.into()).filter(|t: &String| !t.is_empty()),
        }
    }

    /// Parse `id^^^&OID&ISO^type`. `None` when the identifier (CX.1) is empty.
    pub fn parse(text: &str) -> Option<Cx> {
        let text = text.trim();
        let mut comps = text.split('^');
        let id = comps.next().unwrap_or_default().trim().to_string();
        if id.is_empty() {
            return None;
        }
        let _check_digit = comps.next();
        let _check_scheme = comps.next();
        let hd = comps.next().unwrap_or_default();
        let id_type = comps
            .next()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from);
        let assigning_authority = if hd.contains('&') {
            hd.split('&')
                .nth(1)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        } else {
            Some(hd.trim()).filter(|s| !s.is_empty()).map(String::from)
        };
        Some(Cx {
            id,
            assigning_authority,
            id_type,
        })
    }

    /// The HL7v2 form `id^^^&OID&ISO^type` (trailing empty components omitted).
    pub fn to_hl7(&self) -> String {
        let mut s = self.id.clone();
        if let Some(aa) = &self.assigning_authority {
            s.push_str("^^^&");
            s.push_str(aa);
            s.push_str("&ISO");
            if let Some(t) = &self.id_type {
                s.push('^');
                s.push_str(t);
            }
        } else if let Some(t) = &self.id_type {
            s.push_str("^^^^");
            s.push_str(t);
        }
        s
    }

    /// True when both name the same patient: same identifier, same assigning authority (the
    /// type code is not compared, senders differ on it).
    pub fn same_patient(&self, other: &Cx) -> bool {
        self.id == other.id && self.assigning_authority == other.assigning_authority
    }
}

/// An author of a document or of a submission set (the `author` classification and its slots).
/// Values are HL7v2 strings as exchanged: XCN for the person, XON for institutions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Author {
    /// `authorPerson` (XCN), e.g. `801234567897^DAVID^Charles^^^^^^&1.2.250.1.71.4.2.1&ISO`.
    pub person: Option<String>,
    /// `authorInstitution` values (XON).
    pub institutions: Vec<String>,
    /// `authorRole` values.
    pub roles: Vec<String>,
    /// `authorSpecialty` values (CE/CWE).
    pub specialties: Vec<String>,
    /// `authorTelecommunication` values (XTN).
    pub telecoms: Vec<String>,
}

/// A slot this model has no field for, kept so that reading then writing loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slot {
    /// The slot name.
    pub name: String,
    /// Its values, in order.
    pub values: Vec<String>,
}

/// One document of the package: an ebRIM `ExtrinsicObject` (XDS DocumentEntry).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocumentEntry {
    /// The `id` attribute (`entryUUID`), e.g. `urn:uuid:…`.
    pub entry_uuid: String,
    /// The `objectType` attribute: [`uuids::DOCUMENT_ENTRY_STABLE`] in practice.
    pub object_type: String,
    /// `uniqueId` external identifier: the CDA `id` as `root^extension` (or `root`).
    pub unique_id: String,
    /// `URI` slot: the document's file name, relative to the subset folder.
    pub uri: Option<String>,
    /// `hash` slot: SHA-1 of the document, hexadecimal.
    pub hash: Option<String>,
    /// `size` slot: length of the document in bytes.
    pub size: Option<u64>,
    /// `mimeType` attribute (`text/xml` for a CDA).
    pub mime_type: String,
    /// `patientId` external identifier (the INS on MSSanté).
    pub patient_id: Option<Cx>,
    /// `sourcePatientId` slot (the IPP, or the INS when there is none).
    pub source_patient_id: Option<Cx>,
    /// `sourcePatientInfo` slot values, `PID-x|value` strings. Patient data: never log them.
    pub source_patient_info: Vec<String>,
    /// `classCode` classification.
    pub class_code: Option<Coded>,
    /// `typeCode` classification (the CDA `code`).
    pub type_code: Option<Coded>,
    /// `formatCode` classification.
    pub format_code: Option<Coded>,
    /// `confidentialityCode` classifications.
    pub confidentiality_codes: Vec<Coded>,
    /// `healthcareFacilityTypeCode` classification.
    pub healthcare_facility_type_code: Option<Coded>,
    /// `practiceSettingCode` classification.
    pub practice_setting_code: Option<Coded>,
    /// `eventCodeList` classifications.
    pub event_codes: Vec<Coded>,
    /// `languageCode` slot, e.g. `fr-FR`.
    pub language_code: Option<String>,
    /// `creationTime` slot, HL7 DTM in UTC (`YYYYMMDDhhmmss`, shorter precision allowed).
    pub creation_time: Option<String>,
    /// `serviceStartTime` slot.
    pub service_start_time: Option<String>,
    /// `serviceStopTime` slot.
    pub service_stop_time: Option<String>,
    /// `author` classifications.
    pub authors: Vec<Author>,
    /// `legalAuthenticator` slot (XCN).
    pub legal_authenticator: Option<String>,
    /// `Name` (title).
    pub title: Option<String>,
    /// `Description` (comments).
    pub comments: Option<String>,
    /// The `status` attribute (`availabilityStatus`).
    pub availability_status: Option<String>,
    /// Other slots, kept as read.
    pub other_slots: Vec<Slot>,
}

/// The submission set: an ebRIM `RegistryPackage` classified as XDSSubmissionSet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmissionSet {
    /// The `id` attribute (`entryUUID`).
    pub entry_uuid: String,
    /// `uniqueId` external identifier (an OID).
    pub unique_id: String,
    /// `sourceId` external identifier (the OID of the sending system).
    pub source_id: String,
    /// `patientId` external identifier.
    pub patient_id: Option<Cx>,
    /// `submissionTime` slot (HL7 DTM, UTC).
    pub submission_time: Option<String>,
    /// `contentTypeCode` classification.
    pub content_type_code: Option<Coded>,
    /// `author` classifications.
    pub authors: Vec<Author>,
    /// `Name` (title).
    pub title: Option<String>,
    /// `Description` (comments).
    pub comments: Option<String>,
    /// `intendedRecipient` slot values (`XON|XCN^XTN`).
    pub intended_recipients: Vec<String>,
    /// The `status` attribute.
    pub availability_status: Option<String>,
    /// Other slots, kept as read.
    pub other_slots: Vec<Slot>,
}

/// An ebRIM `Association`: in an XDM package, `HasMember` from the submission set to each entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Association {
    /// The `id` attribute.
    pub id: String,
    /// The `associationType` attribute (e.g. [`uuids::ASSOCIATION_HAS_MEMBER`]).
    pub association_type: String,
    /// The `sourceObject` attribute.
    pub source: String,
    /// The `targetObject` attribute.
    pub target: String,
    /// The `SubmissionSetStatus` slot (`Original` or `Reference`), when present.
    pub submission_set_status: Option<String>,
}

/// The content of one METADATA.XML: a submission set, its document entries and associations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// The submission set (`None` when METADATA.XML has none, which is reported).
    pub submission_set: Option<SubmissionSet>,
    /// The document entries, in document order.
    pub entries: Vec<DocumentEntry>,
    /// The associations, in document order.
    pub associations: Vec<Association>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cx_ins_round_trip() {
        let cx = Cx::parse("279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH").unwrap();
        assert_eq!(cx.id, "279035121518989");
        assert_eq!(
            cx.assigning_authority.as_deref(),
            Some("1.2.250.1.213.1.4.10")
        );
        assert_eq!(cx.id_type.as_deref(), Some("NH"));
        assert_eq!(
            cx.to_hl7(),
            "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
        );
    }

    #[test]
    fn cx_variants() {
        assert_eq!(Cx::parse(""), None);
        assert_eq!(Cx::parse("^^^&1.2&ISO"), None);
        let bare = Cx::parse("123").unwrap();
        assert_eq!(bare.assigning_authority, None);
        assert_eq!(bare.to_hl7(), "123");
        let ns = Cx::parse("123^^^HOSP").unwrap();
        assert_eq!(ns.assigning_authority.as_deref(), Some("HOSP"));
        let a = Cx::parse("1^^^&1.2&ISO^NH").unwrap();
        let b = Cx::parse("1^^^&1.2&ISO").unwrap();
        assert!(a.same_patient(&b));
        assert!(!a.same_patient(&Cx::parse("2^^^&1.2&ISO").unwrap()));
    }
}
