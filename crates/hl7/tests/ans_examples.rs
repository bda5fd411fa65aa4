//! The official ANS HL7v2 examples: parsing, profile detection, validation verdicts, embedded
//! documents, typed access and ACKs.

mod common;

use common::*;
use relais_core::{Limits, Severity};
use relais_hl7::{
    AckCode, EdEncoding, Profile, build_ack_at, detect_profile, embedded_documents,
    validate_profile,
};

#[test]
fn every_example_parses_with_the_right_profile() {
    let expected = [
        (ACK, Profile::Ack, "ACK^T02^ACK", "016"),
        (Z02, Profile::Zam, "ZAM^Z02^ZAM_Z01", "018"),
        (Z03, Profile::Zam, "ZAM^Z03^ZAM_Z01", "019"),
        (A01, Profile::AdtPamFr, "ADT^A01^ADT_A01", "3975"),
        (INIT, Profile::MdmToLps, "MDM^T02^MDM_T02", "015"),
        (RPLC, Profile::MdmToLps, "MDM^T10^MDM_T02", "015"),
        (ORU, Profile::OruFromProducer, "ORU^R01^ORU_R01", "015"),
        (A03, Profile::AdtPamFr, "ADT^A03^ADT_A03", "3995"),
    ];
    let names = example_names();
    assert_eq!(
        names.len(),
        expected.len(),
        "a new ANS example appeared: add it here: {names:?}"
    );
    for (name, profile, mtype, control) in expected {
        assert!(names.contains(&name.to_string()), "{name} missing");
        let m = parse(&example(name));
        let t = m.message_type();
        assert_eq!(
            format!("{}^{}^{}", t.code, t.trigger, t.structure),
            mtype,
            "{name}"
        );
        assert_eq!(m.control_id(), control, "{name}");
        assert_eq!(detect_profile(&m), profile, "{name}");
    }
}

/// The verdict of every example, recorded in full. No example has an error except the ORU, whose
/// CORPSMAIL_PS body is genuinely truncated (see `oru_mail_body_is_truncated_in_the_example`).
#[test]
fn validation_verdicts() {
    use Severity::{Error, Warning};
    let w = |code: &str, loc: &str| (Warning, code.to_string(), format!("HL7 {loc}"));
    let e = |code: &str, loc: &str| (Error, code.to_string(), format!("HL7 {loc}"));
    let cases = vec![
        (ACK, vec![]),
        (Z02, vec![]),
        (Z03, vec![]),
        (A01, vec![]),
        (A03, vec![]),
        (
            INIT,
            vec![
                // TXA-12 is written `root^Organisation-Y`; the guide wants TXA-12.2 empty.
                w("HL7-FIELD-VALUE", "TXA[1]-12.2"),
                // The example's "CDA" is a placeholder sentence, not XML.
                w("HL7-ED-NOT-XML", "OBX[1]-5"),
            ],
        ),
        (
            RPLC,
            vec![
                w("HL7-FIELD-VALUE", "TXA[1]-12.2"),
                w("HL7-FIELD-VALUE", "TXA[1]-13.2"),
                // The CDA's base64 lacks its final `=`.
                w("HL7-ED-BASE64-PADDING", "OBX[1]-5.5"),
            ],
        ),
        (
            ORU,
            vec![
                w("HL7-ED-NOT-XML", "OBX[1]-5"),
                w("HL7-ED-NOT-XML", "OBX[2]-5"),
                // Genuine deviation: the example's CORPSMAIL_PS base64 is cut short.
                e("HL7-ED-BASE64-INVALID", "OBX[13]-5.5"),
            ],
        ),
    ];
    for (name, expected) in cases {
        let m = parse(&example(name));
        let findings = validate_profile(&m);
        assert_eq!(summary(&findings), expected, "{name}");
        for f in &findings {
            assert!(
                !f.message.contains("279035121518989"),
                "INS leaked: {}",
                f.message
            );
            assert!(
                !f.message.contains("PAT-TROIS"),
                "name leaked: {}",
                f.message
            );
        }
    }
}

/// The ORU example's OBX 13 holds 93 base64 characters (one too many for a complete group): the
/// same body appears complete, ending `dA==`, in the guide's own example (ig-trans-cda).
#[test]
fn oru_mail_body_is_truncated_in_the_example() {
    let m = parse(&example(ORU));
    let docs = embedded_documents(&m);
    let body = docs
        .iter()
        .find(|d| d.observation_id.code == "CORPSMAIL_PS")
        .expect("CORPSMAIL_PS");
    let err = body.data.clone().unwrap_err();
    assert_eq!(err.code, "HL7-ED-BASE64-INVALID");
    let raw = m.segment("OBX", 13).unwrap().component_value(5, 5).unwrap();
    assert_eq!(raw.len(), 93);
    let guide =
        std::fs::read_to_string(relais_testsupport::ans_file("ig-trans-cda/exemples.md")).unwrap();
    let complete = format!("{}A==", &raw[raw.len() - 20..]);
    assert!(
        guide.contains(&complete),
        "the guide carries the complete body ending {complete}"
    );
}

#[test]
fn cda_is_extracted_from_the_replacement_mdm() {
    let m = parse(&example(RPLC));
    let docs = embedded_documents(&m);
    assert_eq!(docs.len(), 2);
    let cda = &docs[0];
    assert_eq!(cda.location, "OBX[1]-5");
    assert_eq!(cda.obx_set_id, Some(1));
    assert_eq!(cda.observation_id.code, "18748-4");
    assert_eq!(cda.observation_id.system, "LN");
    assert_eq!(cda.mime, "text/xml");
    assert_eq!(cda.encoding, EdEncoding::Base64);
    let bytes = cda.data.as_ref().expect("decodes");
    assert_eq!(bytes.len(), 246_221);
    // This example's CDA has no XML declaration: it starts directly with the root element.
    assert!(bytes.starts_with(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\""));
    let text = relais_core::xml::decode(bytes).expect("UTF-8");
    let doc = relais_core::xml::parse(&text, &Limits::default()).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "ClinicalDocument");
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("urn:hl7-org:v3")
    );
    assert!(
        doc.descendants().any(|n| n.has_tag_name("nonXMLBody")),
        "a level-1 CDA carrying a PDF"
    );

    // OBX 2 carries the mail: its Message-ID in OBX-3.1, its body base64.
    assert_eq!(docs[1].observation_id.code, "1");
    assert_eq!(docs[1].mime, "text/plain");
    assert_eq!(docs[1].data.as_deref().unwrap(), b"Corps du courriel");
}

/// The ORU and the initial MDM examples carry a placeholder sentence where the CDA would be;
/// extraction works, and validation says it is not XML (a warning).
#[test]
fn placeholder_documents_of_oru_and_initial_mdm() {
    for name in [ORU, INIT] {
        let m = parse(&example(name));
        let docs = embedded_documents(&m);
        let first = &docs[0];
        assert_eq!(first.mime, "text/xml", "{name}");
        assert_eq!(
            first.data.as_deref().unwrap(),
            b"Document medcial au format CDA niveau 1",
            "{name}"
        );
        assert!(
            has(&validate_profile(&m), "HL7-ED-NOT-XML", "HL7 OBX[1]-5"),
            "{name}"
        );
    }
    let oru = parse(&example(ORU));
    let docs = embedded_documents(&oru);
    assert_eq!(docs.len(), 3, "two CDA (N1 and N3) and the mail body");
    assert_eq!(docs[1].location, "OBX[2]-5");
}

#[test]
fn typed_access_on_the_examples() {
    let m = parse(&example(INIT));
    assert_eq!(m.version(), "2.6");
    assert_eq!(m.processing_id(), "P");
    assert_eq!(m.sending_application().namespace_id, "PFI-Y");
    assert_eq!(m.sending_facility().namespace_id, "Organisation-Y");
    assert_eq!(m.receiving_application().namespace_id, "RIS-Y");
    let ids = m.profile_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        (ids[0].entity_id.as_str(), ids[0].namespace_id.as_str()),
        ("1.1", "CISIS_CDA_HL7_LPS")
    );
    let doc = m.document_id().unwrap();
    assert_eq!(doc.root, "1.2.250.1.71.4.2.2.120456789.71024000081");
    assert_eq!(doc.extension, None);
    assert_eq!(m.parent_document_id(), None);

    let pat = m.pid().unwrap();
    assert_eq!(pat.ids.len(), 1);
    let ins = &pat.ids[0];
    assert!(ins.is_ins());
    assert_eq!(ins.id_type, "INS");
    assert_eq!(ins.assigning_authority.namespace_id, "ASIP-SANTE-INS-NIR");
    assert_eq!(ins.assigning_authority.universal_id, "1.2.250.1.213.1.4.10");
    assert_eq!(ins.id, "279035121518989");
    assert_eq!(pat.names[0].family, "PAT-TROIS");
    assert_eq!(pat.names[0].given, "DOMINIQUE");
    assert_eq!(pat.names[0].name_type, "L");
    assert_eq!(pat.birth_date.as_deref(), Some("19790328"));
    assert_eq!(pat.sex.as_deref(), Some("F"));
    assert_eq!(pat.identity_reliability.as_deref(), Some("VALI"));
    let shown = format!("{pat:?}");
    assert!(
        !shown.contains("279035121518989")
            && !shown.contains("PAT-TROIS")
            && !shown.contains("19790328"),
        "{shown}"
    );

    let r = parse(&example(RPLC));
    assert_eq!(
        r.parent_document_id().unwrap().root,
        "1.2.250.1.71.4.2.2.120456789.71024000081"
    );
    assert_eq!(
        r.document_id().unwrap().root,
        "1.2.250.1.71.4.2.2.120456789.71024000082"
    );

    let adt = parse(&example(A01));
    let pat = adt.pid().unwrap();
    let kinds: Vec<&str> = pat.ids.iter().map(|i| i.id_type.as_str()).collect();
    assert_eq!(kinds, ["PI", "INS"]);
    assert_eq!(pat.ins().count(), 1);
    assert_eq!(pat.ids[0].assigning_authority.universal_id, "000897406");
    assert_eq!(adt.version(), "2.5");
    assert_eq!(adt.profile_ids()[0].namespace_id, "IHE_FRANCE-2.11-PAM");

    // French text with accents, unescaped and decoded from UTF-8.
    let z = parse(&example(Z02));
    assert_eq!(
        z.segment("OBX", 1)
            .unwrap()
            .component_value(3, 2)
            .as_deref(),
        Some("Accusé de réception MSSanté")
    );
    assert_eq!(
        z.segment("OBX", 2)
            .unwrap()
            .component_value(5, 4)
            .as_deref(),
        Some("adam.hoda@test-ci-sis.mssante.fr")
    );
}

#[test]
fn every_example_survives_crlf_and_mllp_framing() {
    for name in example_names() {
        let bytes = example(&name);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let crlf = text.replace('\n', "\r\n");
        let cr = text.replace('\n', "\r");
        let mut framed = vec![0x0B];
        framed.extend_from_slice(cr.as_bytes());
        framed.extend_from_slice(&[0x1C, 0x0D]);
        let base = parse(&bytes);
        for variant in [crlf.as_bytes(), cr.as_bytes(), &framed[..]] {
            let m = parse(variant);
            assert_eq!(m.text(), base.text(), "{name}");
            assert_eq!(
                summary(&validate_profile(&m)),
                summary(&validate_profile(&base)),
                "{name}"
            );
        }
    }
}

#[test]
fn ack_of_the_initial_mdm_matches_the_ans_ack() {
    let m = parse(&example(INIT));
    let ack = build_ack_at(&m, AckCode::AA, None, "202106060932", "016");
    assert_eq!(
        ack,
        "MSH|^~\\&|RIS-Y|Organisation-Y|PFI-Y|Organisation-Y|202106060932||ACK^T02^ACK|016|P|2.6|||||FRA|UNICODE UTF-8\rMSA|AA|015"
    );
    // Byte for byte the ANS example, but for its LF terminators.
    let official = String::from_utf8(example(ACK)).unwrap();
    assert_eq!(ack.replace('\r', "\n") + "\n", official);
    let parsed = parse(ack.as_bytes());
    assert_eq!(detect_profile(&parsed), Profile::Ack);
    assert!(validate_profile(&parsed).is_empty());
}

#[test]
fn negative_acks_follow_the_lps_guide() {
    let m = parse(&example(RPLC));
    // Application error (table applicationErrorCode): ERR-3 207, code in ERR-5.
    let ack = build_ack_at(
        &m,
        AckCode::AE,
        Some(("902", "Identifiant de patient inconnu")),
        "20231003083100",
        "12347",
    );
    let err = ack.split('\r').nth(2).unwrap();
    assert_eq!(
        err,
        "ERR|||207^Application error^messageErrorCondition|E|902^Identifiant de patient inconnu^applicationErrorCode"
    );
    assert!(ack.contains("|ACK^T10^ACK|12347|"));
    // HL7 error (table 0357): in ERR-3.
    let ack = build_ack_at(
        &m,
        AckCode::AR,
        Some(("203", "Unsupported version id")),
        "20231003083100",
        "12348",
    );
    assert!(
        ack.ends_with("\rMSA|AR|015\rERR|||203^Unsupported version id^messageErrorCondition|E")
    );
    // A Relais rule code with delimiters in its text: escaped, and the ACK still validates.
    let ack = build_ack_at(
        &m,
        AckCode::AE,
        Some(("HL7-FIELD-MISSING", "TXA-12 | empty ^ & ~")),
        "20231003083100",
        "12349",
    );
    let parsed = parse(ack.as_bytes());
    assert!(errors(&validate_profile(&parsed)).is_empty(), "{ack}");
    let err = parsed.segment("ERR", 1).unwrap();
    assert_eq!(
        err.component_value(5, 1).as_deref(),
        Some("HL7-FIELD-MISSING")
    );
    assert_eq!(
        err.component_value(5, 2).as_deref(),
        Some("TXA-12 | empty ^ & ~")
    );
    // build_ack stamps a fresh id and time.
    let a = relais_hl7::build_ack(&m, AckCode::AA, None);
    let b = relais_hl7::build_ack(&m, AckCode::AA, None);
    assert_ne!(
        parse(a.as_bytes()).control_id(),
        parse(b.as_bytes()).control_id()
    );
}

#[test]
fn ack_of_adt_mirrors_version_and_charset() {
    let m = parse(&example(A01));
    let ack = build_ack_at(&m, AckCode::AA, None, "20240306111200", "X1");
    let p = parse(ack.as_bytes());
    assert_eq!(p.msh().value(12).as_deref(), Some("2.5"));
    assert_eq!(p.msh().field(12).unwrap().raw(), "2.5^FRA^2.11");
    assert_eq!(p.message_type().trigger, "A01");
    assert_eq!(p.sending_application().namespace_id, "DPI");
    assert_eq!(p.receiving_application().namespace_id, "GAM");
    assert_eq!(relais_hl7::encode_for_wire(&ack), ack.as_bytes());
}
