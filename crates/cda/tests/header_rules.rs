//! Invalid variants of the ANS discharge letter (LDL-SES_2022.01.xml), built by editing its text,
//! each rejected with its rule code; and reading errors on non-CDA input.

mod common;

use common::*;
use relais_cda::{CdaError, PdfError, check_header, read};
use relais_core::{Limits, Severity};

const PATIENT: &str = "/ClinicalDocument/recordTarget/patientRole/patient";

#[test]
fn the_base_document_passes() {
    let f = header_findings(&ldl_ses());
    assert!(f.is_empty(), "{:#?}", summary(&f));
}

fn trait_missing(text: &str, expected_xpath: &str) {
    let f = header_findings(text);
    let found = with_code(&f, "CDA-INS-TRAIT-MISSING");
    assert_eq!(found.len(), 1, "{:#?}", summary(&f));
    assert_eq!(found[0].severity, Severity::Error);
    assert_eq!(xpath(found[0]), expected_xpath);
    assert!(!found[0].message.contains("PAT-TROIS") && !found[0].message.contains("1979"));
}

#[test]
fn ins_trait_birth_time_missing() {
    let text = remove_element(
        &ldl_ses(),
        &["recordTarget", "patientRole", "patient", "birthTime"],
    );
    trait_missing(&text, &format!("{PATIENT}/birthTime"));
}

#[test]
fn ins_trait_birth_family_missing() {
    let text = replace_once(
        &ldl_ses(),
        r#"<family qualifier="BR">PAT-TROIS</family>"#,
        "",
    );
    trait_missing(&text, &format!("{PATIENT}/name/family[@qualifier='BR']"));
}

#[test]
fn ins_trait_first_birth_first_name_missing() {
    let text = replace_once(&ldl_ses(), r#"<given qualifier="BR">DOMINIQUE</given>"#, "");
    trait_missing(&text, &format!("{PATIENT}/name/given[@qualifier='BR']"));
}

#[test]
fn ins_trait_birth_first_names_missing() {
    let text = replace_once(&ldl_ses(), "<given>DOMINIQUE MARIE-LOUISE</given>", "");
    trait_missing(&text, &format!("{PATIENT}/name/given[not(@qualifier)]"));
}

#[test]
fn ins_trait_sex_missing() {
    let text = remove_element(
        &ldl_ses(),
        &[
            "recordTarget",
            "patientRole",
            "patient",
            "administrativeGenderCode",
        ],
    );
    trait_missing(&text, &format!("{PATIENT}/administrativeGenderCode/@code"));
}

#[test]
fn ins_trait_birthplace_missing() {
    let text = remove_element(
        &ldl_ses(),
        &["recordTarget", "patientRole", "patient", "birthplace"],
    );
    trait_missing(&text, &format!("{PATIENT}/birthplace/place/addr/county"));
}

#[test]
fn birthplace_not_a_cog_code_is_a_warning() {
    let text = replace_once(
        &ldl_ses(),
        "<county>51215</county>",
        "<county>Marne</county>",
    );
    let f = header_findings(&text);
    let w = with_code(&f, "CDA-INS-BIRTHPLACE-FORMAT");
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(errors(&f).is_empty(), "{:#?}", summary(&f));
}

#[test]
fn without_ins_the_traits_are_not_required_but_ins_absent_is_reported() {
    let text = replace_once(
        &ldl_ses(),
        r#"<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>"#,
        "",
    );
    let text = remove_element(
        &text,
        &["recordTarget", "patientRole", "patient", "birthplace"],
    );
    let f = header_findings(&text);
    let absent = with_code(&f, "CDA-INS-ABSENT");
    assert_eq!(absent[0].severity, Severity::Warning);
    assert!(errors(&f).is_empty(), "{:#?}", summary(&f));
    assert_eq!(read_ok(&text).header.patient.unwrap().ins, None);
}

#[test]
fn without_ins_birth_time_is_still_required() {
    let text = replace_once(
        &ldl_ses(),
        r#"<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>"#,
        "",
    );
    let text = remove_element(
        &text,
        &["recordTarget", "patientRole", "patient", "birthTime"],
    );
    let f = header_findings(&text);
    let e = with_code(&f, "CDA-PATIENT-ELEMENT-MISSING");
    assert_eq!(xpath(e[0]), format!("{PATIENT}/birthTime"));
}

#[test]
fn unknown_ins_oid() {
    let text = replace_once(
        &ldl_ses(),
        r#"root="1.2.250.1.213.1.4.10""#,
        r#"root="1.2.250.1.213.1.4.99""#,
    );
    let f = header_findings(&text);
    let e = with_code(&f, "CDA-INS-OID-UNKNOWN");
    assert_eq!(e[0].severity, Severity::Error);
    assert_eq!(
        xpath(e[0]),
        "/ClinicalDocument/recordTarget/patientRole/id[1]/@root"
    );
    with_code(&f, "CDA-INS-ABSENT");
}

#[test]
fn social_security_oid_is_not_an_unknown_ins_oid() {
    // CSE models carry the NIR used as social security number under 1.2.250.1.213.1.4.13.
    let text = replace_once(
        &ldl_ses(),
        r#"<id extension="1234567890121" root="1.2.3.4.567.8.9.10"/>"#,
        r#"<id extension="279035121518989" root="1.2.250.1.213.1.4.13"/>"#,
    );
    let f = header_findings(&text);
    assert!(f.is_empty(), "{:#?}", summary(&f));
    assert!(read_ok(&text).header.patient.unwrap().ipps.is_empty());
}

#[test]
fn ins_format_and_key() {
    let short = replace_once(
        &ldl_ses(),
        r#"extension="279035121518989""#,
        r#"extension="27903512151898""#,
    );
    let f = header_findings(&short);
    assert_eq!(with_code(&f, "CDA-INS-FORMAT")[0].severity, Severity::Error);

    let letters = replace_once(
        &ldl_ses(),
        r#"extension="279035121518989""#,
        r#"extension="2790351215189AB""#,
    );
    with_code(&header_findings(&letters), "CDA-INS-FORMAT");

    let key = replace_once(
        &ldl_ses(),
        r#"extension="279035121518989""#,
        r#"extension="279035121518988""#,
    );
    let f = header_findings(&key);
    let w = with_code(&f, "CDA-INS-KEY");
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(
        !w[0].message.contains("27903"),
        "the INS value never appears in messages"
    );
    assert!(errors(&f).is_empty());
}

#[test]
fn several_different_ins() {
    let text = replace_once(
        &ldl_ses(),
        r#"<id extension="1234567890121" root="1.2.3.4.567.8.9.10"/>"#,
        r#"<id extension="277076322082910" root="1.2.250.1.213.1.4.8"/>"#,
    );
    let f = header_findings(&text);
    assert_eq!(
        with_code(&f, "CDA-INS-MULTIPLE")[0].severity,
        Severity::Warning
    );
    let doc = read_ok(&text);
    assert_eq!(doc.header.patient.unwrap().all_ins.len(), 2);
}

#[test]
fn patient_id_without_extension() {
    let text = replace_once(
        &ldl_ses(),
        r#"<id extension="1234567890121" root="1.2.3.4.567.8.9.10"/>"#,
        r#"<id root="1.2.3.4.567.8.9.10"/>"#,
    );
    let f = header_findings(&text);
    assert_eq!(
        xpath(with_code(&f, "CDA-PATIENT-ID")[0]),
        "/ClinicalDocument/recordTarget/patientRole/id[2]"
    );
}

#[test]
fn no_legal_authenticator() {
    let text = remove_element(&ldl_ses(), &["legalAuthenticator"]);
    let f = header_findings(&text);
    let e = with_code(&f, "CDA-LEGALAUTH-MISSING");
    assert_eq!(e.len(), 1);
    assert_eq!(xpath(e[0]), "/ClinicalDocument/legalAuthenticator");
    assert_eq!(errors(&f).len(), 1, "{:#?}", summary(&f));
    assert!(read_ok(&text).header.legal_authenticator.is_none());
}

#[test]
fn legal_authenticator_not_signed() {
    let text = replace_once(
        &ldl_ses(),
        r#"<signatureCode code="S"/>"#,
        r#"<signatureCode code="X"/>"#,
    );
    let f = header_findings(&text);
    with_code(&f, "CDA-LEGALAUTH-SIGNATURE");
    let text = remove_element(&ldl_ses(), &["legalAuthenticator", "time"]);
    with_code(&header_findings(&text), "CDA-LEGALAUTH-INCOMPLETE");
}

#[test]
fn fixed_header_elements() {
    let f = header_findings(&remove_element(&ldl_ses(), &["realmCode"]));
    with_code(&f, "CDA-REALM-CODE");
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<realmCode code="FR"/>"#,
        r#"<realmCode code="US"/>"#,
    ));
    with_code(&f, "CDA-REALM-CODE");
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"extension="POCD_HD000040""#,
        r#"extension="POCD_HD000041""#,
    ));
    with_code(&f, "CDA-TYPEID");
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<templateId root="1.2.250.1.213.1.1.1.29" extension="2022.01"/>"#,
        "",
    ));
    let e = with_code(&f, "CDA-TEMPLATEID-MISSING");
    assert!(e[0].message.contains("model"), "{:?}", e[0]);
    let f = header_findings(&remove_element(&ldl_ses(), &["templateId"]));
    assert!(
        with_code(&f, "CDA-TEMPLATEID-MISSING")[0]
            .message
            .contains("2.16.840.1.113883.2.8.2.1")
    );
}

#[test]
fn exactly_one_header_elements() {
    for name in [
        "id",
        "code",
        "title",
        "effectiveTime",
        "confidentialityCode",
        "languageCode",
        "setId",
        "versionNumber",
    ] {
        let f = header_findings(&remove_element(&ldl_ses(), &[name]));
        let e = with_code(&f, "CDA-HEADER-ELEMENT-MISSING");
        assert_eq!(e.len(), 1, "{name}: {:#?}", summary(&f));
        assert_eq!(xpath(e[0]), format!("/ClinicalDocument/{name}"));
        assert!(e[0].message.contains(name));
    }
    let f = header_findings(&remove_element(&ldl_ses(), &["custodian"]));
    assert!(
        with_code(&f, "CDA-HEADER-ELEMENT-MISSING")[0]
            .message
            .contains("custodian")
    );
    let f = header_findings(&remove_element(&ldl_ses(), &["componentOf"]));
    assert!(
        with_code(&f, "CDA-HEADER-ELEMENT-MISSING")[0]
            .message
            .contains("componentOf")
    );
    let f = header_findings(&remove_element(&ldl_ses(), &["recordTarget"]));
    assert!(
        with_code(&f, "CDA-HEADER-ELEMENT-MISSING")[0]
            .message
            .contains("recordTarget")
    );
    let title = "<title>Lettre de liaison à la sortie de l'établissement de santé</title>";
    let f = header_findings(&replace_once(&ldl_ses(), title, &format!("{title}{title}")));
    assert!(
        with_code(&f, "CDA-HEADER-ELEMENT-REPEATED")[0]
            .message
            .contains("title")
    );
    // A nullFlavor does not count.
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<setId root="1.2.250.1.213.1.1.1.29.2022.1"/>"#,
        r#"<setId nullFlavor="NI"/>"#,
    ));
    assert!(
        with_code(&f, "CDA-HEADER-ELEMENT-MISSING")[0]
            .message
            .contains("setId")
    );
}

#[test]
fn header_attributes_and_language() {
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"codeSystem="2.16.840.1.113883.6.1"  codeSystemName="LOINC"/>"#,
        "/>",
    ));
    assert_eq!(
        xpath(with_code(&f, "CDA-HEADER-ATTRIBUTE-MISSING")[0]),
        "/ClinicalDocument/code/@codeSystem"
    );
    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<languageCode code="fr-FR"/>"#,
        r#"<languageCode code="fr"/>"#,
    ));
    with_code(&f, "CDA-LANGUAGE-CODE");
}

#[test]
fn authors() {
    let f = header_findings(&remove_all(&ldl_ses(), &["author"]));
    with_code(&f, "CDA-AUTHOR-MISSING");

    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<id root="1.2.250.1.71.4.2.1" extension="801234567897"/>"#,
        r#"<id root="1.2.250.1.71.4.2.1" extension="8012"/>"#,
    ));
    let w = with_code(&f, "CDA-AUTHOR-ID");
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(xpath(w[0]), "/ClinicalDocument/author[1]/assignedAuthor/id");

    let f = header_findings(&replace_once(
        &ldl_ses(),
        r#"<id root="1.2.250.1.71.4.2.1" extension="801234567897"/>"#,
        r#"<id root="1.2.250.1.71.4.2.1"/>"#,
    ));
    assert_eq!(with_code(&f, "CDA-AUTHOR-ID")[0].severity, Severity::Error);

    let f = header_findings(&remove_element(&ldl_ses(), &["author", "time"]));
    with_code(&f, "CDA-AUTHOR-TIME");

    let adeli = read_ok(&replace_once(
        &ldl_ses(),
        r#"extension="801234567897""#,
        r#"extension="0751234567""#,
    ));
    assert_eq!(adeli.header.authors[0].adeli.as_deref(), Some("751234567"));
    assert_eq!(adeli.header.authors[0].rpps, None);
}

#[test]
fn custodian_service_event_encounter_related_document() {
    let custodian_id = [
        "custodian",
        "assignedCustodian",
        "representedCustodianOrganization",
        "id",
    ];
    let f = header_findings(&set_attribute(&ldl_ses(), &custodian_id, "root", "1.2.3"));
    with_code(&f, "CDA-CUSTODIAN-ID");

    let f = header_findings(&remove_all(&ldl_ses(), &["documentationOf"]));
    with_code(&f, "CDA-SERVICE-EVENT-MISSING");
    let f = header_findings(&remove_element(
        &ldl_ses(),
        &["documentationOf", "serviceEvent", "performer"],
    ));
    with_code(&f, "CDA-SERVICE-EVENT-PERFORMER");
    let f = header_findings(&remove_element(
        &ldl_ses(),
        &["documentationOf", "serviceEvent", "effectiveTime"],
    ));
    with_code(&f, "CDA-SERVICE-EVENT-TIME");

    let f = header_findings(&remove_element(
        &ldl_ses(),
        &["componentOf", "encompassingEncounter", "effectiveTime"],
    ));
    with_code(&f, "CDA-ENCOUNTER-INCOMPLETE");
    let f = header_findings(&remove_element(
        &ldl_ses(),
        &[
            "componentOf",
            "encompassingEncounter",
            "location",
            "healthCareFacility",
            "code",
        ],
    ));
    with_code(&f, "CDA-ENCOUNTER-INCOMPLETE");

    // A replacement: with a parent id it passes and is read; without, it is rejected.
    let rplc = r#"<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.3.4" extension="42"/><setId root="1.2.3"/><versionNumber value="1"/></parentDocument></relatedDocument>"#;
    let text = replace_once(
        &ldl_ses(),
        "    <!-- Prise en charge --> ",
        &format!("{rplc}\n    <!-- Prise en charge --> "),
    );
    let doc = read_ok(&text);
    assert!(
        check_header(&doc).is_empty(),
        "{:#?}",
        summary(&check_header(&doc))
    );
    let r = &doc.header.related_documents[0];
    assert!(r.is_replacement());
    assert_eq!(
        r.parent_id.as_ref().map(|i| i.to_xds()).as_deref(),
        Some("1.2.3.4^42")
    );
    assert_eq!(r.parent_version.as_deref(), Some("1"));
    let bad = text.replace(
        r#"<id root="1.2.3.4" extension="42"/>"#,
        r#"<id nullFlavor="NI"/>"#,
    );
    with_code(&header_findings(&bad), "CDA-RELATED-DOCUMENT");
}

#[test]
fn body_missing() {
    let text = remove_element(&ldl_ses(), &["component"]);
    let doc = read_ok(&text);
    assert_eq!(doc.level(), None);
    with_code(&check_header(&doc), "CDA-BODY-MISSING");
}

#[test]
fn level1_rules_and_pdf_errors() {
    let n1 = example("DOC_NON_STRUCTURE_CDA-R2-N1.xml");
    assert!(header_findings(&n1).is_empty());
    let extra = replace_once(
        &n1,
        r#"<templateId root="1.3.6.1.4.1.19376.1.2.20"/>"#,
        r#"<templateId root="1.3.6.1.4.1.19376.1.2.20"/><templateId root="1.2.250.1.213.1.1.1.29"/>"#,
    );
    with_code(&header_findings(&extra), "CDA-N1-TEMPLATEID");

    let corrupt = replace_once(&n1, ">JVBERi0x", ">!!!!Ri0x");
    assert!(matches!(
        read_ok(&corrupt).embedded_pdf(),
        Some(Err(PdfError::Base64(_)))
    ));
    let not_pdf = replace_once(&n1, ">JVBERi0x", ">QUJDREVG");
    assert_eq!(
        read_ok(&not_pdf).embedded_pdf(),
        Some(Err(PdfError::NotPdf))
    );
    let text_body = replace_once(
        &n1,
        r#"mediaType="application/pdf""#,
        r#"mediaType="text/plain""#,
    );
    assert_eq!(read_ok(&text_body).embedded_pdf(), None);
}

#[test]
fn not_well_formed() {
    let text = ldl_ses();
    let truncated = &text[..text.len() / 2];
    let err = read(truncated.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "XML-NOT-WELL-FORMED");
    assert!(matches!(
        err.to_finding().location,
        relais_core::Location::Line { .. }
    ));
    let err = read(b"", &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "XML-NOT-WELL-FORMED");
}

#[test]
fn dtd_refused() {
    let text = replace_once(
        &ldl_ses(),
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
    );
    let err = read(text.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "XML-DTD-FORBIDDEN");
}

#[test]
fn root_not_clinical_document() {
    let text = ldl_ses()
        .replace("<ClinicalDocument ", "<ClinicalDoc ")
        .replace("</ClinicalDocument>", "</ClinicalDoc>");
    let err = read(text.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "CDA-NOT-CDA");
    assert!(
        matches!(&err, CdaError::NotCda { found } if found == "{urn:hl7-org:v3}ClinicalDoc"),
        "{err}"
    );

    let other_ns = replace_once(
        &ldl_ses(),
        r#"xmlns="urn:hl7-org:v3""#,
        r#"xmlns="urn:example:other""#,
    );
    assert_eq!(
        read(other_ns.as_bytes(), &Limits::default())
            .unwrap_err()
            .code(),
        "CDA-NOT-CDA"
    );
    let f = read(b"<metadata/>", &Limits::default())
        .unwrap_err()
        .to_finding();
    assert_eq!(f.code, "CDA-NOT-CDA");
    assert!(f.message.contains("metadata (no namespace)"));
}

#[test]
fn limits_are_enforced() {
    let text = ldl_ses();
    let small = Limits {
        max_xml_bytes: 1000,
        ..Limits::default()
    };
    assert_eq!(
        read(text.as_bytes(), &small).unwrap_err().code(),
        "XML-TOO-LARGE"
    );
    let few = Limits {
        max_xml_nodes: 100,
        ..Limits::default()
    };
    assert_eq!(
        read(text.as_bytes(), &few).unwrap_err().code(),
        "XML-TOO-LARGE"
    );
}

#[test]
fn codes_are_unique_and_well_formed() {
    let mut seen = std::collections::BTreeSet::new();
    for code in relais_cda::codes::ALL {
        assert!(seen.insert(code.as_str()), "duplicate {code}");
        assert!(code.as_str().starts_with("CDA-"));
        assert!(
            code.as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '-' || c.is_ascii_digit())
        );
    }
}
