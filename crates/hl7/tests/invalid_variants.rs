//! Invalid variants of the ANS examples, built programmatically: each must be caught with the
//! right code at the right place.

mod common;

use common::*;
use relais_core::{Finding, Severity};
use relais_hl7::{Profile, detect_profile, validate_profile};

fn check(segs: &[String]) -> Vec<Finding> {
    validate_profile(&parse_segments(segs))
}

fn assert_has(findings: &[Finding], code: &str, location: &str) {
    assert!(
        has(findings, code, location),
        "expected {code} at {location} in {:#?}",
        summary(findings)
    );
}

#[test]
fn baseline_examples_have_no_errors_here() {
    for name in [INIT, RPLC, ACK, Z02, Z03, A01, A03] {
        assert!(errors(&check(&segments(name))).is_empty(), "{name}");
    }
}

#[test]
fn mdm_missing_and_misplaced_segments() {
    let mut s = segments(INIT);
    remove(&mut s, "TXA", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 TXA");

    let mut s = segments(INIT);
    let pid = s.remove(2);
    s.insert(3, pid); // PID after PV1
    let f = check(&s);
    assert_has(&f, "HL7-SEGMENT-ORDER", "HL7 PID[1]");
    assert!(
        !has(&f, "HL7-SEGMENT-MISSING", "HL7 PID"),
        "misplaced, not missing"
    );

    let mut s = segments(INIT);
    let txa = s[6].clone();
    s.insert(7, txa);
    assert_has(&check(&s), "HL7-SEGMENT-REPEATED", "HL7 TXA[2]");

    let mut s = segments(INIT);
    remove(&mut s, "EVN", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 EVN");

    let mut s = segments(INIT);
    s.insert(1, "ZXY|1".into());
    let f = check(&s);
    assert_has(&f, "HL7-SEGMENT-UNEXPECTED", "HL7 ZXY[1]");
    assert!(errors(&f).is_empty(), "an unknown segment is a warning");
}

#[test]
fn mdm_txa_fields() {
    let mut s = segments(INIT);
    set_field(&mut s, "TXA", 1, 12, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 TXA[1]-12.1");

    // A T10 must name the document it replaces.
    let mut s = segments(RPLC);
    set_field(&mut s, "TXA", 1, 13, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 TXA[1]-13.1");

    let mut s = segments(RPLC);
    set_field(
        &mut s,
        "TXA",
        1,
        13,
        "1.2.250.1.71.4.2.2.120456789.71024000082^Organisation-Y",
    );
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 TXA[1]-13");

    let mut s = segments(INIT);
    set_field(&mut s, "TXA", 1, 3, "PDF");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 TXA[1]-3.1");

    // The guides' form with an extension is accepted without remark.
    let mut s = segments(INIT);
    set_field(&mut s, "TXA", 1, 12, "58132^^1.2.250.2345.3245.13^ISO");
    let m = parse_segments(&s);
    assert!(
        validate_profile(&m)
            .iter()
            .all(|f| f.location.to_string() != "HL7 TXA[1]-12.2")
    );
    let id = m.document_id().unwrap();
    assert_eq!(
        (id.root.as_str(), id.extension.as_deref()),
        ("1.2.250.2345.3245.13", Some("58132"))
    );
}

#[test]
fn orc_trigger_and_obx_status_must_agree() {
    // T02 with OBX-11 D.
    let mut s = segments(INIT);
    set_field(&mut s, "OBX", 1, 11, "D");
    let f = check(&s);
    assert_has(&f, "HL7-ORC-OBX-STATUS", "HL7 OBX[1]-11");

    // T10 announced, but ORC-1 says NW.
    let mut s = segments(RPLC);
    set_field(&mut s, "ORC", 1, 1, "NW");
    let f = check(&s);
    assert_has(&f, "HL7-ORC-OBX-STATUS", "HL7 ORC[1]-1");
    assert_has(&f, "HL7-ORC-OBX-STATUS", "HL7 OBX[1]-11");

    // A coherent deletion request passes.
    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 9, "MDM^T04^MDM_T02");
    set_field(&mut s, "ORC", 1, 1, "CA");
    set_field(&mut s, "OBX", 1, 11, "D");
    assert!(errors(&check(&s)).is_empty());

    let mut s = segments(INIT);
    set_field(&mut s, "ORC", 1, 1, "XO");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 ORC[1]-1.1");

    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 9, "MDM^T01^MDM_T01");
    let f = check(&s);
    assert_has(&f, "HL7-FIELD-VALUE", "HL7 MSH[1]-9.2");
    assert_has(&f, "HL7-FIELD-VALUE", "HL7 MSH[1]-9.3");
}

#[test]
fn mdm_header_version_and_profile() {
    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 12, "2.5");
    assert_has(&check(&s), "HL7-VERSION", "HL7 MSH[1]-12");

    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 21, "");
    let m = parse_segments(&s);
    assert_eq!(detect_profile(&m), Profile::MdmUndeclared);
    assert_has(&validate_profile(&m), "HL7-MSH21-MISSING", "HL7 MSH[1]-21");

    // The producer's profile id turns the same MDM into a producer MDM, which requires the
    // eight MetaDMPMSS observations the LPS version does not carry.
    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 21, "2.1^CISIS_CDA_HL7_V2");
    let m = parse_segments(&s);
    assert_eq!(detect_profile(&m), Profile::MdmFromProducer);
    assert_has(&validate_profile(&m), "HL7-METADATA-MISSING", "HL7 OBX");

    // Spaces around the namespace, as in the guide's own header example: recognised, warned.
    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 21, "1.1^ CISIS_CDA_HL7_LPS");
    let m = parse_segments(&s);
    assert_eq!(detect_profile(&m), Profile::MdmToLps);
    let f = validate_profile(&m);
    assert!(
        f.iter()
            .any(|x| x.location.to_string() == "HL7 MSH[1]-21" && x.severity == Severity::Warning)
    );
    assert!(errors(&f).is_empty());

    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 10, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 MSH[1]-10");

    let mut s = segments(INIT);
    set_field(&mut s, "MSH", 1, 11, "X");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 MSH[1]-11.1");
}

#[test]
fn lps_specific_rules() {
    let mut s = segments(INIT);
    set_field(&mut s, "PV1", 1, 2, "I");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 PV1[1]-2.1");

    // No sender PRT.
    let mut s = segments(INIT);
    remove(&mut s, "PRT", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 PRT");

    // PRT without the mail address.
    let mut s = segments(INIT);
    set_field(&mut s, "PRT", 2, 15, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 PRT[2]-15.4");

    // The second OBX (the mail) missing: the metadata are then the second OBX.
    let mut s = segments(INIT);
    remove(&mut s, "OBX", 2);
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 OBX[2]-2");

    // The document OBX must be ED, with OBX-3 = OBR-4.
    let mut s = segments(INIT);
    set_field(&mut s, "OBX", 1, 3, "11502-2^CR de biologie^LN");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 OBX[1]-3.1");
    let mut s = segments(INIT);
    set_field(&mut s, "OBX", 1, 5, "^text^XML^UUencode^abc");
    let f = check(&s);
    assert_has(&f, "HL7-FIELD-VALUE", "HL7 OBX[1]-5.4");
    assert_has(&f, "HL7-ED-ENCODING", "HL7 OBX[1]-5.5");
}

#[test]
fn metadata_presence_order_and_values() {
    let mut s = segments(INIT);
    remove(&mut s, "OBX", 4); // INVISIBLE_PATIENT
    assert_has(&check(&s), "HL7-METADATA-MISSING", "HL7 OBX");

    let mut s = segments(INIT);
    let n = s.len();
    s.swap(n - 1, n - 2); // MODIF_CONF_CODE before INVISIBLE_REP_LEGAUX
    assert_has(&check(&s), "HL7-METADATA-ORDER", "HL7 OBX[6]-3.1");

    let mut s = segments(INIT);
    set_field(&mut s, "OBX", 3, 5, "maybe^^expandedYes-NoIndicator");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 OBX[3]-5.1");
}

#[test]
fn identity_rules() {
    // An INS with a provisional identity.
    let mut s = segments(INIT);
    set_field(&mut s, "PID", 1, 32, "PROV");
    assert_has(&check(&s), "HL7-INS-UNQUALIFIED", "HL7 PID[1]-32");

    let mut s = segments(A01);
    set_field(&mut s, "PID", 1, 32, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 PID[1]-32");

    // A wrong NIR key; the message must not show the INS.
    let mut s = segments(INIT);
    set_field(
        &mut s,
        "PID",
        1,
        3,
        "279035121518988^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207",
    );
    let f = check(&s);
    assert_has(&f, "HL7-INS-INVALID", "HL7 PID[1]-3~1");
    assert!(f.iter().all(|x| !x.message.contains("27903512151898")));

    // Type INS but not an INS authority.
    let mut s = segments(A03);
    set_field(
        &mut s,
        "PID",
        1,
        3,
        "000003^^^CHU-X&000897406&N^PI~279035121518989^^^HOSP&1.2.3.4&ISO^INS",
    );
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 PID[1]-3~2");

    // An INS requires the traits birth date and sex.
    let mut s = segments(A01);
    set_field(&mut s, "PID", 1, 7, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 PID[1]-7");

    let mut s = segments(INIT);
    set_field(&mut s, "PID", 1, 3, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 PID[1]-3");
}

#[test]
fn oru_rules() {
    let mut s = segments(ORU);
    set_field(&mut s, "ORC", 1, 1, "CA");
    let f = check(&s);
    assert_has(&f, "HL7-ORC-OBX-STATUS", "HL7 OBX[1]-11");
    assert_has(&f, "HL7-ORC-OBX-STATUS", "HL7 OBX[2]-11");

    let mut s = segments(ORU);
    set_field(&mut s, "MSH", 1, 21, "");
    assert_has(&check(&s), "HL7-MSH21-MISSING", "HL7 MSH[1]-21");

    let mut s = segments(ORU);
    set_field(&mut s, "MSH", 1, 12, "2.6");
    assert_has(&check(&s), "HL7-VERSION", "HL7 MSH[1]-12");

    // DESTMSSANTEPS/PAT are Y: recipients (PRT RCT) are required.
    let mut s = segments(ORU);
    s.retain(|l| !l.starts_with("PRT||UC||RCT"));
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 PRT");

    // PV1-2 I requires PV1-19.
    let mut s = segments(ORU);
    set_field(&mut s, "PV1", 1, 19, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 PV1[1]-19");

    // A third CDA is one too many.
    let mut s = segments(ORU);
    let doc = s.iter().find(|l| l.starts_with("OBX|2|")).unwrap().clone();
    s.insert(9, doc);
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 OBX[3]-5");

    // Metadata out of order.
    let mut s = segments(ORU);
    let i = s.iter().position(|l| l.contains("|DESTDMP^")).unwrap();
    s.swap(i, i + 1);
    assert_has(&check(&s), "HL7-METADATA-ORDER", "HL7 OBX[9]-3.1");
}

#[test]
fn ack_rules() {
    let mut s = segments(ACK);
    set_field(&mut s, "MSA", 1, 1, "OK");
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 MSA[1]-1.1");

    let mut s = segments(ACK);
    set_field(&mut s, "MSA", 1, 2, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 MSA[1]-2");

    let mut s = segments(ACK);
    set_field(&mut s, "MSA", 1, 1, "AE");
    let f = check(&s);
    assert!(
        f.iter()
            .any(|x| x.code == "HL7-SEGMENT-MISSING" && x.severity == Severity::Warning)
    );

    let mut s = segments(ACK);
    set_field(&mut s, "MSA", 1, 1, "AE");
    s.push("ERR|||207^Application error^messageErrorCondition|E".into());
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 ERR[1]-5.1");

    let mut s = segments(ACK);
    remove(&mut s, "MSA", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 MSA");
}

#[test]
fn zam_rules() {
    let mut s = segments(Z02);
    set_field(&mut s, "OBX", 1, 5, "N^^expandedYes-NoIndicator");
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 ERR");
    s.push(
        "ERR|||207^Application error^messageErrorCondition|E|550^Mailbox unavailable^SMTPERRORCODE"
            .into(),
    );
    assert!(errors(&check(&s)).is_empty());

    // Z03 carrying the Z02 observation.
    let mut s = segments(Z03);
    set_field(
        &mut s,
        "OBX",
        1,
        3,
        "ACK_RECEPTION_MSS^Accusé de réception MSSanté^AckMetierZAM",
    );
    assert_has(&check(&s), "HL7-FIELD-VALUE", "HL7 OBX[1]-3.1");

    let mut s = segments(Z02);
    remove(&mut s, "OBX", 2);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 OBX");

    let mut s = segments(Z02);
    set_field(&mut s, "OBX", 1, 4, "");
    assert_has(&check(&s), "HL7-FIELD-MISSING", "HL7 OBX[1]-4");
}

#[test]
fn adt_rules() {
    let mut s = segments(A01);
    remove(&mut s, "EVN", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 EVN");

    let mut s = segments(A03);
    remove(&mut s, "PV1", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 PV1");

    let mut s = segments(A01);
    set_field(&mut s, "MSH", 1, 21, "");
    let f = check(&s);
    assert!(
        f.iter()
            .any(|x| x.code == "HL7-MSH21-MISSING" && x.severity == Severity::Warning)
    );
    assert!(errors(&f).is_empty());

    // A40 needs MRG.
    let mut s = segments(A03);
    set_field(&mut s, "MSH", 1, 9, "ADT^A40^ADT_A39");
    remove(&mut s, "ZBE", 1);
    assert_has(&check(&s), "HL7-SEGMENT-MISSING", "HL7 MRG");
    s.insert(3, "MRG|000002^^^CHU-X&000897406&N^PI".into());
    assert!(errors(&check(&s)).is_empty(), "{:?}", summary(&check(&s)));

    // Another message type: info only.
    let mut s = segments(A01);
    set_field(&mut s, "MSH", 1, 9, "SIU^S12^SIU_S12");
    let m = parse_segments(&s);
    assert_eq!(detect_profile(&m), Profile::Unknown);
    let f = validate_profile(&m);
    assert_eq!(
        summary(&f),
        vec![(
            Severity::Info,
            "HL7-PROFILE-UNKNOWN".to_string(),
            "HL7 MSH[1]-9".to_string()
        )]
    );
}

#[test]
fn generic_header_warnings() {
    // Non-standard delimiters: parsed, warned.
    let text = String::from_utf8(example(ACK))
        .unwrap()
        .replace('|', "#")
        .replace('^', "@");
    let m = parse(text.as_bytes());
    assert_eq!(m.control_id(), "016");
    assert_has(
        &validate_profile(&m),
        "HL7-DELIMITERS-NONSTANDARD",
        "HL7 MSH[1]-2",
    );

    // UTF-8 bytes under an 8859/15 declaration: read as UTF-8, warned.
    let mut s = segments(Z02);
    set_field(&mut s, "MSH", 1, 18, "8859/15");
    let m = parse_segments(&s);
    assert!(m.encoding_mismatch());
    assert_has(
        &validate_profile(&m),
        "HL7-ENCODING-MISMATCH",
        "HL7 MSH[1]-18",
    );
    assert_eq!(
        m.segment("OBX", 1)
            .unwrap()
            .component_value(3, 2)
            .as_deref(),
        Some("Accusé de réception MSSanté")
    );
}
