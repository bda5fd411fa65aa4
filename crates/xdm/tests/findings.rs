//! Packages that can be read but are not conformant: each finding code, from a variant of a
//! valid package built for the purpose.

mod common;

use common::*;
use relais_core::{Location, Severity};
use relais_xdm::{Cx, Metadata, PackageBuilder, write_metadata_xml};

/// The package files with METADATA.XML replaced by `md` written out.
fn files_with_metadata(md: &Metadata) -> Vec<(String, Vec<u8>)> {
    let mut f = files();
    set_file(&mut f, METADATA_PATH, write_metadata_xml(md).into_bytes());
    f
}

fn metadata() -> Metadata {
    builder().metadata()
}

fn only_codes(pkg: &relais_xdm::XdmPackage) -> Vec<String> {
    let mut c = codes(pkg);
    c.sort();
    c.dedup();
    c
}

#[test]
fn hash_mismatch() {
    let mut f = files();
    let mut cda = ldl_ses();
    // Same length, one byte changed: only the hash can tell.
    let pos = cda.iter().position(|&b| b == b'M').unwrap();
    cda[pos] = b'N';
    set_file(&mut f, DOC1_PATH, cda);
    let pkg = read_files(&f);
    assert_eq!(only_codes(&pkg), ["XDM-HASH-MISMATCH"]);
    let f0 = &pkg.findings[0];
    assert!(f0.is_error());
    assert_eq!(f0.location, Location::ZipEntry(DOC1_PATH.into()));
    assert!(
        f0.message.contains("urn:uuid:"),
        "names the entry: {}",
        f0.message
    );
}

#[test]
fn hash_compare_ignores_case() {
    let mut md = metadata();
    let h = md.entries[0].hash.take().unwrap();
    md.entries[0].hash = Some(h.to_uppercase());
    let pkg = read_files(&files_with_metadata(&md));
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
}

#[test]
fn size_mismatch() {
    let mut md = metadata();
    md.entries[0].size = Some(md.entries[0].size.unwrap() + 1);
    let pkg = read_files(&files_with_metadata(&md));
    assert_eq!(only_codes(&pkg), ["XDM-SIZE-MISMATCH"]);
    assert_eq!(
        pkg.findings[0].location,
        Location::ZipEntry(DOC1_PATH.into())
    );
}

#[test]
fn appended_bytes_change_hash_and_size() {
    let mut f = files();
    let mut cda = ldl_ses();
    cda.extend_from_slice(b"<!-- appended -->");
    set_file(&mut f, DOC1_PATH, cda);
    assert_eq!(
        only_codes(&read_files(&f)),
        ["XDM-HASH-MISMATCH", "XDM-SIZE-MISMATCH"]
    );
}

#[test]
fn hash_and_size_missing_are_warnings() {
    let mut md = metadata();
    md.entries[0].hash = None;
    md.entries[0].size = None;
    let pkg = read_files(&files_with_metadata(&md));
    assert_eq!(only_codes(&pkg), ["XDM-HASH-MISSING", "XDM-SIZE-MISSING"]);
    assert!(pkg.findings.iter().all(|f| f.severity == Severity::Warning));
    assert!(pkg.is_valid());
    assert_eq!(
        pkg.documents().count(),
        1,
        "the document is still delivered"
    );
}

#[test]
fn malformed_hash_and_size() {
    let mut md = metadata();
    md.entries[0].hash = Some("not-a-sha1".into());
    let mut f = files_with_metadata(&md);
    let xml =
        String::from_utf8(f.iter().find(|x| x.0 == METADATA_PATH).unwrap().1.clone()).unwrap();
    let size = md.entries[0].size.unwrap().to_string();
    let xml = xml.replace(
        &format!("<rim:Value>{size}</rim:Value>"),
        "<rim:Value>12 kB</rim:Value>",
    );
    set_file(&mut f, METADATA_PATH, xml.into_bytes());
    let pkg = read_files(&f);
    let invalid = expect_code(&pkg, "XDM-SLOT-INVALID");
    assert_eq!(invalid.len(), 2, "{invalid:#?}");
    assert!(invalid.iter().any(|f| f.message.contains("hash")));
    assert!(invalid.iter().any(|f| f.message.contains("size")));
    assert!(
        !codes(&pkg).contains(&"XDM-HASH-MISMATCH".to_string()),
        "no mismatch on top of invalid"
    );
}

#[test]
fn metadata_missing_everywhere() {
    let mut f = files();
    remove_file(&mut f, METADATA_PATH);
    remove_file(&mut f, DOC1_PATH);
    remove_file(&mut f, "IHE_XDM/SUBSET01/");
    remove_file(&mut f, "IHE_XDM/");
    let pkg = read_files(&f);
    assert_eq!(only_codes(&pkg), ["XDM-METADATA-MISSING"]);
    assert_eq!(pkg.findings[0].location, Location::Whole);
    assert!(pkg.subsets.is_empty());
}

#[test]
fn metadata_missing_in_a_subset() {
    let mut f = files();
    remove_file(&mut f, METADATA_PATH);
    let pkg = read_files(&f);
    let missing = expect_code(&pkg, "XDM-METADATA-MISSING");
    assert_eq!(
        missing[0].location,
        Location::ZipEntry("IHE_XDM/SUBSET01/".into())
    );
    // The CDA then belongs to nobody.
    expect_code(&pkg, "XDM-UNREFERENCED-FILE");
    assert!(!pkg.is_valid());
    assert_eq!(pkg.subsets.len(), 1);
    assert!(pkg.subsets[0].metadata.is_none());
}

#[test]
fn second_subset_without_metadata() {
    let mut f = files();
    f.push(("IHE_XDM/SUBSET02/DOC0001.XML".into(), ldl_ses()));
    let pkg = read_files(&f);
    let missing = expect_code(&pkg, "XDM-METADATA-MISSING");
    assert_eq!(
        missing[0].location,
        Location::ZipEntry("IHE_XDM/SUBSET02/".into())
    );
    assert_eq!(pkg.subsets.len(), 2);
}

#[test]
fn metadata_with_dtd_entity_expansion() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">&lol3;</lcm:SubmitObjectsRequest>"#;
    let mut f = files();
    set_file(&mut f, METADATA_PATH, bomb.as_bytes().to_vec());
    let pkg = read_files(&f);
    let dtd = expect_code(&pkg, "XML-DTD-FORBIDDEN");
    assert_eq!(dtd[0].location, Location::ZipEntry(METADATA_PATH.into()));
    assert!(pkg.subsets[0].metadata.is_none());
}

#[test]
fn metadata_with_external_entity() {
    let xxe =
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
    let mut f = files();
    set_file(&mut f, METADATA_PATH, xxe.as_bytes().to_vec());
    expect_code(&read_files(&f), "XML-DTD-FORBIDDEN");
}

#[test]
fn metadata_not_well_formed() {
    let mut f = files();
    let xml = write_metadata_xml(&metadata());
    set_file(
        &mut f,
        METADATA_PATH,
        xml.as_bytes()[..xml.len() / 2].to_vec(),
    );
    let pkg = read_files(&f);
    let nwf = expect_code(&pkg, "XML-NOT-WELL-FORMED");
    assert!(nwf[0].message.contains("line"), "{}", nwf[0].message);
}

#[test]
fn metadata_not_a_submit_objects_request() {
    let mut f = files();
    set_file(&mut f, METADATA_PATH, ldl_ses());
    let pkg = read_files(&f);
    let inv = expect_code(&pkg, "XDM-METADATA-INVALID");
    assert!(
        inv[0].message.contains("ClinicalDocument"),
        "{}",
        inv[0].message
    );
    // SubmitObjectsRequest without RegistryObjectList, and one without a submission set.
    set_file(
        &mut f,
        METADATA_PATH,
        br#"<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>"#.to_vec(),
    );
    expect_code(&read_files(&f), "XDM-METADATA-INVALID");
    let mut md = metadata();
    md.submission_set = None;
    let pkg = read_files(&files_with_metadata(&md));
    let inv = expect_code(&pkg, "XDM-METADATA-INVALID");
    assert!(inv[0].message.contains("submission set"));
}

#[test]
fn two_submission_sets_in_one_metadata() {
    let md = metadata();
    let xml = write_metadata_xml(&md);
    // Duplicate the RegistryPackage and its classification under another id.
    let start = xml.find("    <rim:RegistryPackage").unwrap();
    let end = xml.find("    <rim:ExtrinsicObject").unwrap();
    let ss_id = &md.submission_set.as_ref().unwrap().entry_uuid;
    let copy = xml[start..end].replace(
        ss_id.as_str(),
        "urn:uuid:00000000-0000-4000-8000-000000000000",
    );
    let xml = format!("{}{}{}", &xml[..end], copy, &xml[end..]);
    let mut f = files();
    set_file(&mut f, METADATA_PATH, xml.into_bytes());
    let pkg = read_files(&f);
    let inv = expect_code(&pkg, "XDM-METADATA-INVALID");
    assert!(inv[0].message.contains("2 submission sets"));
}

#[test]
fn document_missing() {
    let mut f = files();
    remove_file(&mut f, DOC1_PATH);
    let pkg = read_files(&f);
    assert_eq!(only_codes(&pkg), ["XDM-DOCUMENT-MISSING"]);
    assert_eq!(
        pkg.findings[0].location,
        Location::ZipEntry(DOC1_PATH.into())
    );
    assert!(pkg.subsets[0].documents.is_empty());
}

#[test]
fn unreferenced_file() {
    let mut f = files();
    f.push(("IHE_XDM/SUBSET01/DOC0002.PDF".into(), b"%PDF-1.4".to_vec()));
    let pkg = read_files(&f);
    assert_eq!(only_codes(&pkg), ["XDM-UNREFERENCED-FILE"]);
    assert_eq!(
        pkg.findings[0].location,
        Location::ZipEntry("IHE_XDM/SUBSET01/DOC0002.PDF".into())
    );
    assert_eq!(pkg.findings[0].severity, Severity::Warning);
    // Files outside the subsets are not the subset's business.
    let mut f = files();
    f.push(("COMPTE-RENDU.PDF".into(), b"%PDF-1.4".to_vec()));
    assert!(read_files(&f).findings.is_empty());
}

#[test]
fn readme_and_index_missing() {
    let mut f = files();
    remove_file(&mut f, "README.TXT");
    remove_file(&mut f, "INDEX.HTM");
    let pkg = read_files(&f);
    assert_eq!(
        only_codes(&pkg),
        ["XDM-INDEX-MISSING", "XDM-README-MISSING"]
    );
    assert!(pkg.is_valid(), "warnings only");
    assert!(pkg.readme.is_none() && pkg.index_htm.is_none());
}

#[test]
fn root_files_match_case_insensitively() {
    let mut f = files();
    for (name, _) in f.iter_mut() {
        if name == "README.TXT" {
            *name = "readme.txt".into();
        }
    }
    let pkg = read_files(&f);
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    assert!(pkg.readme.is_some());
}

#[test]
fn patient_id_inconsistent_between_entries() {
    let mut other = ldl_ses_entry();
    other.unique_id = "1.2.3.4.5".into();
    other.patient_id = Some(Cx::new("190012345678901", "1.2.250.1.213.1.4.10", "NH"));
    let mut ss = submission_set();
    ss.patient_id = None;
    let built = PackageBuilder::new(product(), ss)
        .document(ldl_ses_entry(), ldl_ses())
        .document(other, b"<ClinicalDocument/>".to_vec())
        .build()
        .unwrap();
    let pkg = read(&built.zip);
    let inc = expect_code(&pkg, "XDM-PATIENTID-INCONSISTENT");
    assert_eq!(inc.len(), 1);
    assert!(
        !inc[0].message.contains("190012345678901"),
        "no INS in messages"
    );
}

#[test]
fn patient_id_inconsistent_with_the_submission_set() {
    let mut md = metadata();
    md.submission_set.as_mut().unwrap().patient_id =
        Some(Cx::new("279035121518989", "1.2.250.1.213.1.4.8", "NH"));
    let pkg = read_files(&files_with_metadata(&md));
    assert_eq!(only_codes(&pkg), ["XDM-PATIENTID-INCONSISTENT"]);
    // The type code alone may differ: same patient.
    let mut md = metadata();
    md.entries[0].patient_id.as_mut().unwrap().id_type = None;
    assert!(read_files(&files_with_metadata(&md)).findings.is_empty());
}

#[test]
fn patient_id_inconsistent_across_subsets() {
    let mut md2 = metadata();
    md2.submission_set.as_mut().unwrap().patient_id =
        Some(Cx::new("190012345678901", "1.2.250.1.213.1.4.10", "NH"));
    md2.entries[0].patient_id = md2.submission_set.as_ref().unwrap().patient_id.clone();
    md2.entries[0].unique_id = "1.2.3.4.6".into();
    let mut f = files();
    f.push((
        "IHE_XDM/SUBSET02/METADATA.XML".into(),
        write_metadata_xml(&md2).into_bytes(),
    ));
    f.push(("IHE_XDM/SUBSET02/DOC0001.XML".into(), ldl_ses()));
    let pkg = read_files(&f);
    let inc = expect_code(&pkg, "XDM-PATIENTID-INCONSISTENT");
    assert_eq!(
        inc[0].location,
        Location::ZipEntry("IHE_XDM/SUBSET02/".into())
    );
    assert_eq!(pkg.subsets.len(), 2);
    assert_eq!(pkg.documents().count(), 2);
}

#[test]
fn duplicate_unique_id() {
    let md = metadata();
    let mut f = files();
    f.push((
        "IHE_XDM/SUBSET02/METADATA.XML".into(),
        write_metadata_xml(&md).into_bytes(),
    ));
    f.push(("IHE_XDM/SUBSET02/DOC0001.XML".into(), ldl_ses()));
    assert_eq!(only_codes(&read_files(&f)), ["XDM-DUPLICATE-ID"]);

    let mut second = ldl_ses_entry();
    second.title = Some("Copie".into());
    let built = builder()
        .document(second, b"<x/>".to_vec())
        .build()
        .unwrap();
    assert_eq!(only_codes(&read(&built.zip)), ["XDM-DUPLICATE-ID"]);
}

#[test]
fn each_required_slot_missing_is_named() {
    type Edit = fn(&mut Metadata);
    let cases: &[(&str, Edit)] = &[
        ("uniqueId", |m| m.entries[0].unique_id.clear()),
        ("patientId", |m| m.entries[0].patient_id = None),
        ("typeCode", |m| m.entries[0].type_code = None),
        ("classCode", |m| m.entries[0].class_code = None),
        ("formatCode", |m| m.entries[0].format_code = None),
        ("confidentialityCode", |m| {
            m.entries[0].confidentiality_codes.clear()
        }),
        ("healthcareFacilityTypeCode", |m| {
            m.entries[0].healthcare_facility_type_code = None
        }),
        ("practiceSettingCode", |m| {
            m.entries[0].practice_setting_code = None
        }),
        ("languageCode", |m| m.entries[0].language_code = None),
        ("creationTime", |m| m.entries[0].creation_time = None),
        ("serviceStartTime", |m| {
            m.entries[0].service_start_time = None
        }),
        ("sourcePatientId", |m| m.entries[0].source_patient_id = None),
        ("legalAuthenticator", |m| {
            m.entries[0].legal_authenticator = None
        }),
        ("authorPerson", |m| m.entries[0].authors.clear()),
        ("title", |m| m.entries[0].title = None),
        ("mimeType", |m| m.entries[0].mime_type.clear()),
        ("sourceId", |m| {
            m.submission_set.as_mut().unwrap().source_id.clear()
        }),
        ("submissionTime", |m| {
            m.submission_set.as_mut().unwrap().submission_time = None
        }),
        ("contentTypeCode", |m| {
            m.submission_set.as_mut().unwrap().content_type_code = None
        }),
    ];
    for (slot, edit) in cases {
        let mut md = metadata();
        edit(&mut md);
        let pkg = read_files(&files_with_metadata(&md));
        let missing = expect_code(&pkg, "XDM-SLOT-MISSING");
        assert_eq!(missing.len(), 1, "{slot}: {missing:#?}");
        assert!(
            missing[0].message.contains(&format!(" {slot} ")),
            "{slot}: {}",
            missing[0].message
        );
        assert!(missing[0].is_error());
        assert_eq!(
            missing[0].location,
            Location::ZipEntry(METADATA_PATH.into())
        );
    }
}

#[test]
fn uri_missing_invalid_and_case() {
    let mut md = metadata();
    md.entries[0].uri = None;
    let pkg = read_files(&files_with_metadata(&md));
    assert!(
        expect_code(&pkg, "XDM-SLOT-MISSING")[0]
            .message
            .contains("URI")
    );
    expect_code(&pkg, "XDM-UNREFERENCED-FILE");

    for bad in ["../../../etc/passwd", "/etc/passwd", "file:///etc/passwd"] {
        let mut md = metadata();
        md.entries[0].uri = Some(bad.into());
        let pkg = read_files(&files_with_metadata(&md));
        expect_code(&pkg, "XDM-URI-INVALID");
    }

    let mut md = metadata();
    md.entries[0].uri = Some("doc0001.xml".into());
    let pkg = read_files(&files_with_metadata(&md));
    assert_eq!(only_codes(&pkg), ["XDM-URI-CASE"]);
    assert_eq!(pkg.documents().next().unwrap().zip_path, DOC1_PATH);

    // A URI written from the archive root is accepted as is.
    let mut md = metadata();
    md.entries[0].uri = Some(DOC1_PATH.into());
    let pkg = read_files(&files_with_metadata(&md));
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
}

#[test]
fn slot_invalid_values() {
    let mut md = metadata();
    md.entries[0].creation_time = Some("2019-12-03".into());
    md.entries[0].type_code.as_mut().unwrap().scheme.clear();
    let pkg = read_files(&files_with_metadata(&md));
    let inv = expect_code(&pkg, "XDM-SLOT-INVALID");
    assert!(inv.iter().any(|f| f.message.contains("creationTime")));
    assert!(
        inv.iter()
            .any(|f| f.message.contains("typeCode") && f.message.contains("codingScheme"))
    );

    let xml = write_metadata_xml(&metadata()).replace(
        "value=\"279035121518989^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH\" id=\"urn:uuid",
        "value=\"^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH\" id=\"urn:uuid",
    );
    let mut f = files();
    set_file(&mut f, METADATA_PATH, xml.into_bytes());
    let pkg = read_files(&f);
    assert!(
        expect_code(&pkg, "XDM-SLOT-INVALID")
            .iter()
            .any(|f| f.message.contains("patientId"))
    );
}

#[test]
fn association_missing() {
    let mut md = metadata();
    md.associations.clear();
    let pkg = read_files(&files_with_metadata(&md));
    assert_eq!(only_codes(&pkg), ["XDM-ASSOCIATION-MISSING"]);
    assert!(pkg.is_valid());
}

#[test]
fn lenient_reading_of_other_writers() {
    // Top-level classifications and external identifiers pointing at the entry, no prefixes,
    // and an XDS long URI split in parts: all legal ebRS, read the same.
    let md = metadata();
    let e = &md.entries[0];
    let ss = md.submission_set.as_ref().unwrap();
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:r="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
 <r:RegistryObjectList>
  <r:RegistryPackage id="SS">
   <r:Slot name="submissionTime"><r:ValueList><r:Value>20191203124500</r:Value></r:ValueList></r:Slot>
   <r:ExternalIdentifier identificationScheme="urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8" value="{ssuid}" id="e1" registryObject="SS"/>
   <r:ExternalIdentifier identificationScheme="urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832" value="1.2.3" id="e2" registryObject="SS"/>
  </r:RegistryPackage>
  <r:ExtrinsicObject id="Doc1" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
   <r:Slot name="URI"><r:ValueList><r:Value>2|01.XML</r:Value><r:Value>1|DOC00</r:Value></r:ValueList></r:Slot>
   <r:Slot name="hash"><r:ValueList><r:Value> {hash} </r:Value></r:ValueList></r:Slot>
   <r:Slot name="size"><r:ValueList><r:Value>{size}</r:Value></r:ValueList></r:Slot>
   <r:Name><r:LocalizedString value="Lettre de liaison (\xE9t\xE9)"/></r:Name>
  </r:ExtrinsicObject>
  <r:Classification classificationScheme="urn:uuid:f0306f51-975f-434e-a61c-c59651d33983" classifiedObject="Doc1" nodeRepresentation="11490-0" id="c1">
   <r:Slot name="codingScheme"><r:ValueList><r:Value>2.16.840.1.113883.6.1</r:Value></r:ValueList></r:Slot>
  </r:Classification>
  <r:ExternalIdentifier identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427" value="279035121518989^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH" id="e3" registryObject="Doc1"/>
  <r:Association associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" sourceObject="SS" targetObject="Doc1" id="a1"/>
 </r:RegistryObjectList>
</SubmitObjectsRequest>"#,
        ssuid = ss.unique_id,
        hash = e.hash.as_deref().unwrap(),
        size = e.size.unwrap()
    );
    // Encode as ISO-8859-1, as the declaration says.
    let bytes: Vec<u8> = xml
        .replace("\\xE9", "\u{e9}")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let mut f = files();
    set_file(&mut f, METADATA_PATH, bytes);
    let pkg = read_files(&f);
    let md = pkg.subsets[0].metadata.as_ref().expect("metadata read");
    let e = &md.entries[0];
    assert_eq!(e.uri.as_deref(), Some("DOC0001.XML"));
    assert_eq!(e.type_code.as_ref().unwrap().code, "11490-0");
    assert_eq!(e.patient_id.as_ref().unwrap().id, INS_TEST);
    assert_eq!(e.title.as_deref(), Some("Lettre de liaison (été)"));
    assert_eq!(md.submission_set.as_ref().unwrap().entry_uuid, "SS");
    assert_eq!(pkg.documents().count(), 1);
    let c = codes(&pkg);
    for absent in [
        "XDM-HASH-MISMATCH",
        "XDM-SIZE-MISMATCH",
        "XDM-DOCUMENT-MISSING",
        "XDM-ASSOCIATION-MISSING",
    ] {
        assert!(!c.contains(&absent.to_string()), "{absent} in {c:?}");
    }
    // Still, what it lacks is said.
    assert!(c.contains(&"XDM-SLOT-MISSING".to_string()));
}
