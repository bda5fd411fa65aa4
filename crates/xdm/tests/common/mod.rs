//! Shared material for the integration tests: a real CDA (the ANS LDL-SES example) and
//! metadata describing it as the CI-SIS mapping says.
#![allow(dead_code)]

use relais_core::Limits;
use relais_xdm::{
    Author, Coded, Cx, DocumentEntry, PackageBuilder, ProductInfo, SubmissionSet, XdmError,
    XdmPackage,
};

pub const INS_TEST: &str = "279035121518989";
pub const INS_NIR_TEST_OID: &str = "1.2.250.1.213.1.4.10";
pub const METADATA_PATH: &str = "IHE_XDM/SUBSET01/METADATA.XML";
pub const DOC1_PATH: &str = "IHE_XDM/SUBSET01/DOC0001.XML";

/// The ANS discharge letter example.
pub fn ldl_ses() -> Vec<u8> {
    std::fs::read(relais_testsupport::ans_file(
        "cda-examples/LDL-SES_2022.01.xml",
    ))
    .expect("read LDL-SES")
}

pub fn product() -> ProductInfo {
    ProductInfo {
        name: "Relais".into(),
        version: "0.1.0".into(),
        vendor: "Relais contributors".into(),
        contact: Some("support@example.invalid".into()),
    }
}

/// Metadata of the LDL-SES example, mapped from its CDA header.
pub fn ldl_ses_entry() -> DocumentEntry {
    DocumentEntry {
        unique_id: "1.2.250.1.213.1.1.1.29.2022.1.1".into(),
        mime_type: "text/xml".into(),
        patient_id: Some(Cx::new(INS_TEST, INS_NIR_TEST_OID, "NH")),
        source_patient_id: Some(Cx::new("1234567890121", "1.2.3.4.567.8.9.10", "PI")),
        source_patient_info: vec![
            "PID-3|1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI".into(),
            "PID-5|PAT-TROIS^DOMINIQUE^^^^^L".into(),
            "PID-7|19790328".into(),
            "PID-8|F".into(),
        ],
        class_code: Some(Coded::new("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")),
        type_code: Some(Coded::new(
            "11490-0",
            "2.16.840.1.113883.6.1",
            "Lettre de liaison à la sortie d'un établissement de soins",
        )),
        format_code: Some(Coded::new(
            "urn:asip:ci-sis:ldl-ses:2017",
            "1.2.250.1.213.1.1.4.2.282",
            "Lettre de liaison à la sortie d'un établissement de soins",
        )),
        confidentiality_codes: vec![Coded::new("N", "2.16.840.1.113883.5.25", "Normal")],
        healthcare_facility_type_code: Some(Coded::new(
            "SA01",
            "1.2.250.1.71.4.2.4",
            "Etablissement public de santé",
        )),
        practice_setting_code: Some(Coded::new(
            "ETABLISSEMENT",
            "1.2.250.1.213.1.1.4.9",
            "Etablissement de santé",
        )),
        event_codes: Vec::new(),
        language_code: Some("fr-FR".into()),
        creation_time: Some("20191203123000".into()),
        service_start_time: Some("20191029101700".into()),
        service_stop_time: Some("20191203123000".into()),
        authors: vec![Author {
            person: Some(
                "801234567897^DAVID^Charles^^^DR^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS".into(),
            ),
            institutions: vec![
                "Hôpital Saint-Jean^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000000".into(),
            ],
            roles: Vec::new(),
            specialties: vec![
                "G15_10/SM27^Médecin - Médecine interne (SM)^1.2.250.1.213.1.1.4.5".into(),
            ],
            telecoms: Vec::new(),
        }],
        legal_authenticator: Some(
            "801234567897^DAVID^Charles^^^DR^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS".into(),
        ),
        title: Some("Lettre de liaison à la sortie de l'établissement de santé".into()),
        comments: None,
        ..DocumentEntry::default()
    }
}

pub fn submission_set() -> SubmissionSet {
    SubmissionSet {
        unique_id: "1.2.250.1.999.1.2.3.20191203133000".into(),
        source_id: "1.2.250.1.999.1".into(),
        patient_id: Some(Cx::new(INS_TEST, INS_NIR_TEST_OID, "NH")),
        submission_time: Some("20191203124500".into()),
        content_type_code: Some(Coded::new(
            "03",
            "1.2.250.1.213.1.1.4.12",
            "Hospitalisation complète",
        )),
        authors: vec![Author {
            person: Some(
                "801234567897^DAVID^Charles^^^DR^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS".into(),
            ),
            ..Author::default()
        }],
        title: Some("Sortie d'hospitalisation".into()),
        intended_recipients: vec![
            "|810000000001^MARTIN^Jeanne^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS".into(),
        ],
        ..SubmissionSet::default()
    }
}

/// A builder holding the LDL-SES example.
pub fn builder() -> PackageBuilder {
    PackageBuilder::new(product(), submission_set()).document(ldl_ses_entry(), ldl_ses())
}

/// The package files of [`builder`], for tests that alter them.
pub fn files() -> Vec<(String, Vec<u8>)> {
    builder().files().expect("files")
}

pub fn set_file(files: &mut Vec<(String, Vec<u8>)>, name: &str, content: Vec<u8>) {
    match files.iter_mut().find(|(n, _)| n == name) {
        Some(f) => f.1 = content,
        None => files.push((name.to_string(), content)),
    }
}

pub fn remove_file(files: &mut Vec<(String, Vec<u8>)>, name: &str) {
    let before = files.len();
    files.retain(|(n, _)| n != name);
    assert_eq!(before - 1, files.len(), "{name} was not in the package");
}

pub fn read(zip: &[u8]) -> XdmPackage {
    relais_xdm::read_package(zip, &Limits::default()).expect("package should be readable")
}

pub fn read_files(files: &[(String, Vec<u8>)]) -> XdmPackage {
    read(&relais_xdm::write_zip(files).expect("write zip"))
}

pub fn refuse(zip: &[u8]) -> XdmError {
    relais_xdm::read_package(zip, &Limits::default()).expect_err("package should be refused")
}

pub fn codes(pkg: &XdmPackage) -> Vec<String> {
    pkg.findings.iter().map(|f| f.code.to_string()).collect()
}

/// The findings with `code`; panics (showing all findings) when there is none.
pub fn expect_code<'a>(pkg: &'a XdmPackage, code: &str) -> Vec<&'a relais_core::Finding> {
    let found: Vec<_> = pkg.findings.iter().filter(|f| f.code == code).collect();
    assert!(
        !found.is_empty(),
        "expected {code}, got {:#?}",
        pkg.findings
    );
    found
}
