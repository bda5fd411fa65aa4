//! Invalid variants built programmatically: each is rejected with its specific rule code.

mod common;
use common::*;

fn check_zip(files: &[(String, Vec<u8>)]) -> relais_check::InputReport {
    let zip = relais_xdm::write_zip(files).expect("zip");
    offline_pack_checker().check_bytes("variant.zip", &zip)
}

fn errors(report: &relais_check::InputReport) -> Vec<String> {
    report
        .all_findings()
        .filter(|f| f.is_error())
        .map(|f| format!("{} {}", f.code, f.message))
        .collect()
}

#[test]
fn consistent_package_is_valid() {
    let report = check_zip(&package_files(&ldl_ses()));
    assert!(report.valid, "{:#?}", errors(&report));
    assert_eq!(report.documents.len(), 1);
    let doc = &report.documents[0];
    assert_eq!(doc.type_code.as_deref(), Some("11490-0"));
    assert_eq!(doc.model.as_deref(), Some("LDL-SES 2022.01"));
    assert_eq!(doc.level.as_deref(), Some("N3"));
}

#[test]
fn hash_mismatch() {
    let mut files = package_files(&ldl_ses());
    let good = files
        .iter()
        .find(|(p, _)| p.ends_with("METADATA.XML"))
        .unwrap()
        .1
        .clone();
    let text = String::from_utf8(good).unwrap();
    let start = text.find("name=\"hash\"").unwrap();
    let v = text[start..].find("<rim:Value>").unwrap() + start + "<rim:Value>".len();
    let first = &text[v..v + 1];
    let flipped = if first == "0" { "1" } else { "0" };
    let bad = format!("{}{}{}", &text[..v], flipped, &text[v + 1..]);
    files
        .iter_mut()
        .find(|(p, _)| p.ends_with("METADATA.XML"))
        .unwrap()
        .1 = bad.into_bytes();
    let report = check_zip(&files);
    assert!(!report.valid);
    assert!(report.has_code("XDM-HASH-MISMATCH"), "{:?}", codes(&report));
}

#[test]
fn size_mismatch() {
    let mut files = package_files(&ldl_ses());
    let doc = files
        .iter_mut()
        .find(|(p, _)| p.ends_with("DOC0001.XML"))
        .unwrap();
    doc.1.extend_from_slice(b"\n<!-- trailing -->\n");
    let report = check_zip(&files);
    assert!(report.has_code("XDM-SIZE-MISMATCH"), "{:?}", codes(&report));
}

#[test]
fn missing_metadata() {
    let mut files = package_files(&ldl_ses());
    files.retain(|(p, _)| !p.ends_with("METADATA.XML"));
    let report = check_zip(&files);
    assert!(!report.valid);
    assert!(
        report.has_code("XDM-METADATA-MISSING"),
        "{:?}",
        codes(&report)
    );
}

#[test]
fn patient_id_mismatch_between_metadata_and_cda() {
    let mut files = package_files(&ldl_ses());
    // Another well-formed test INS (valid key) than the document's.
    edit(
        &mut files,
        "METADATA.XML",
        "279035121518989^^^",
        "180012345678987^^^",
    );
    edit(
        &mut files,
        "METADATA.XML",
        "279035121518989^^^",
        "180012345678987^^^",
    );
    let report = check_zip(&files);
    assert!(
        report.has_code("XDM-CDA-PATIENTID-MISMATCH"),
        "{:?}",
        codes(&report)
    );
}

#[test]
fn wrong_format_code() {
    let mut files = package_files(&ldl_ses());
    edit(
        &mut files,
        "METADATA.XML",
        "urn:asip:ci-sis:ldl-ses:2017",
        "urn:asip:ci-sis:ldl-ees:2017",
    );
    let report = check_zip(&files);
    assert!(
        report.has_code("XDM-CDA-FORMATCODE-MISMATCH"),
        "{:?}",
        codes(&report)
    );
}

#[test]
fn wrong_type_and_class_code() {
    let mut files = package_files(&ldl_ses());
    edit(
        &mut files,
        "METADATA.XML",
        "nodeRepresentation=\"11490-0\"",
        "nodeRepresentation=\"11502-2\"",
    );
    let report = check_zip(&files);
    assert!(
        report.has_code("XDM-CDA-TYPECODE-MISMATCH"),
        "{:?}",
        codes(&report)
    );
}

fn cda_text() -> String {
    String::from_utf8(ldl_ses()).unwrap()
}

fn check_cda(text: &str) -> relais_check::InputReport {
    offline_pack_checker().check_bytes("variant.xml", text.as_bytes())
}

#[test]
fn cda_not_well_formed() {
    let text = cda_text().replacen("</recordTarget>", "</recordTargetX>", 1);
    let r = check_cda(&text);
    assert!(r.has_code("XML-NOT-WELL-FORMED"), "{:?}", codes(&r));
    // And inside a package: the package reports it as not a CDA.
    let r = check_zip(&package_files_raw(&text));
    assert!(r.has_code("XDM-DOCUMENT-NOT-CDA"), "{:?}", codes(&r));
}

/// A package whose document is `text` but whose metadata was derived from the valid LDL-SES.
fn package_files_raw(text: &str) -> Vec<(String, Vec<u8>)> {
    let b = builder(&ldl_ses());
    let mut files = b.files().unwrap();
    files
        .iter_mut()
        .find(|(p, _)| p.ends_with("DOC0001.XML"))
        .unwrap()
        .1 = text.as_bytes().to_vec();
    files
}

#[test]
fn missing_ins_trait() {
    let text = cda_text();
    let start = text.find("<birthTime").unwrap();
    let end = text[start..].find("/>").unwrap() + start + 2;
    let bad = format!("{}{}", &text[..start], &text[end..]);
    let r = check_cda(&bad);
    assert!(r.has_code("CDA-INS-TRAIT-MISSING"), "{:?}", codes(&r));
}

#[test]
fn wrong_ins_oid() {
    let text = cda_text().replacen(
        "root=\"1.2.250.1.213.1.4.10\"",
        "root=\"1.2.250.1.213.1.4.99\"",
        1,
    );
    let r = check_cda(&text);
    assert!(r.has_code("CDA-INS-OID-UNKNOWN"), "{:?}", codes(&r));
}

#[test]
fn no_legal_authenticator() {
    let text = cda_text();
    let start = text.find("<legalAuthenticator").unwrap();
    let end = text.find("</legalAuthenticator>").unwrap() + "</legalAuthenticator>".len();
    let bad = format!("{}{}", &text[..start], &text[end..]);
    let r = check_cda(&bad);
    assert!(r.has_code("CDA-LEGALAUTH-MISSING"), "{:?}", codes(&r));
    // The XSD accepts it (legalAuthenticator is optional in CDA R2): the CI-SIS rule catches it.
    assert!(!r.has_code("CDA-XSD-INVALID"), "{:?}", codes(&r));
}

#[test]
fn xsd_violation_is_located() {
    let text = cda_text().replacen("<title>", "<unexpectedElement/><title>", 1);
    let r = check_cda(&text);
    let f = r
        .all_findings()
        .find(|f| f.code == "CDA-XSD-INVALID")
        .expect("XSD finding");
    assert!(
        matches!(f.location, relais_core::Location::Line { line, .. } if line > 1),
        "{f:?}"
    );
}
