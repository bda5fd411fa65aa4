//! build_mdm on the ANS material: every ANS CDA example becomes an MDM that relais-hl7 validates
//! as the LPS profile without errors and from which the exact CDA bytes come back; the T10 of the
//! ANS replacement example carries its parent id; the PID matches the ANS MDM examples.

use relais_cda::CdaDocument;
use relais_core::Limits;
use relais_dpi::{
    Endpoints, MailFacts, MdmEvent, MdmInput, MetaFlags, SenderPerson, build_mdm, codes,
};
use relais_hl7::{Message, Profile, detect_profile, embedded_documents, validate_profile};
use relais_testsupport::{ans_cda_examples, ans_file, workspace_root};

fn endpoints() -> Endpoints {
    Endpoints {
        sending_application: "RELAIS".into(),
        sending_facility: "CHU-X".into(),
        receiving_application: "DPI".into(),
        receiving_facility: "CHU-X".into(),
        processing_id: "T".into(),
    }
}

fn mail() -> MailFacts {
    MailFacts {
        message_id: "abc.123@medecin.mssante.fr".into(),
        subject: "XDM/1.0/DDM+CR d'imagerie | ^PAT~TROIS & \\ Dominique é 07/08/2010".into(),
        body_text: "Bonjour,\r\nci-joint le compte rendu.\r\n".into(),
        sender: "thomas.eric@medecin.mssante.fr".into(),
        recipients: vec![
            "dpi@hopitalA.mssante.fr".into(),
            "urologie@hopitalA.mssante.fr".into(),
        ],
        reply_to: vec!["secretariat@medecin.mssante.fr".into()],
        sender_person: Some(SenderPerson {
            id: "801234564895".into(),
            family: "Eric".into(),
            given: "Thomas".into(),
        }),
    }
}

fn read_cda(bytes: &[u8]) -> CdaDocument {
    relais_cda::read(bytes, &Limits::default()).expect("the CDA reads")
}

fn build(
    event: MdmEvent,
    cda: &[u8],
    doc: &CdaDocument,
    mail: &MailFacts,
    meta: MetaFlags,
) -> String {
    build_mdm(&MdmInput {
        event,
        cda,
        header: &doc.header,
        mail,
        endpoints: &endpoints(),
        meta,
        control_id: "R170000000000001",
        timestamp: "20240306111154+0100",
    })
    .expect("the MDM builds")
}

fn parse(text: &str) -> Message {
    relais_hl7::parse(text.as_bytes(), &Limits::default()).expect("the MDM parses")
}

fn errors(msg: &Message) -> Vec<String> {
    validate_profile(msg)
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| format!("{} at {:?}: {}", f.code, f.location, f.message))
        .collect()
}

/// The CDA of the ANS replacement MDM example (a real CDA with relatedDocument RPLC).
fn rplc_cda() -> Vec<u8> {
    let raw = std::fs::read(ans_file(
        "hl7v2-examples/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7",
    ))
    .unwrap();
    let msg = relais_hl7::parse(&raw, &Limits::default()).unwrap();
    embedded_documents(&msg)
        .remove(0)
        .data
        .expect("the example's CDA decodes")
}

#[test]
fn every_ans_cda_example_makes_a_valid_lps_mdm_that_gives_the_cda_back() {
    let mut failures = Vec::new();
    let mut built = 0;
    let mut bad_ins_examples = 0;
    for path in ans_cda_examples() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let cda = std::fs::read(&path).unwrap();
        let doc = read_cda(&cda);
        let event = MdmEvent::for_header(&doc.header);
        let text = match build_mdm(&MdmInput {
            event,
            cda: &cda,
            header: &doc.header,
            mail: &mail(),
            endpoints: &endpoints(),
            meta: MetaFlags::default(),
            control_id: "C1",
            timestamp: "20240306111154",
        }) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        built += 1;
        let msg = parse(&text);
        assert_eq!(detect_profile(&msg), Profile::MdmToLps, "{name}");
        let errs = errors(&msg);
        // A few ANS examples carry an INS whose control key is wrong: the MDM repeats the CDA's
        // INS as it is, and relais-hl7 reports exactly that, nothing else.
        let bad_ins = doc
            .header
            .patient
            .as_ref()
            .and_then(|p| p.ins.as_ref())
            .is_some_and(|ins| relais_cda::ins::check_ins_value(&ins.value).is_some());
        if bad_ins {
            bad_ins_examples += 1;
            let codes: Vec<_> = validate_profile(&msg)
                .into_iter()
                .filter(|f| f.is_error())
                .map(|f| f.code)
                .collect();
            if codes != [relais_hl7::codes::HL7_INS_INVALID] {
                failures.push(format!("{name} (INS with a wrong key): {errs:#?}"));
            }
        } else if !errs.is_empty() {
            failures.push(format!("{name}: {errs:#?}"));
        }
        let docs = embedded_documents(&msg);
        assert_eq!(docs.len(), 2, "{name}: the CDA and the mail");
        assert!(
            docs[0].data.as_deref() == Ok(&cda[..]),
            "{name}: the CDA does not come back byte for byte"
        );
        assert_eq!(
            docs[1].data.as_deref(),
            Ok(mail().body_text.as_bytes()),
            "{name}: the mail body"
        );
        assert_eq!(msg.message_type().trigger, event.trigger(), "{name}");
    }
    assert!(
        failures.is_empty(),
        "{} of {built} examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(built >= 60, "only {built} examples built");
    assert!(
        bad_ins_examples <= 4,
        "{bad_ins_examples} examples with a wrong INS key"
    );
}

#[test]
fn replacement_of_the_ans_example_carries_the_parent_and_the_examples_patient() {
    let cda = rplc_cda();
    let doc = read_cda(&cda);
    assert_eq!(MdmEvent::for_header(&doc.header), MdmEvent::Replace);
    let text = build(MdmEvent::Replace, &cda, &doc, &mail(), MetaFlags::default());
    let msg = parse(&text);
    assert!(errors(&msg).is_empty(), "{:#?}", errors(&msg));
    let txa = msg.segment("TXA", 1).unwrap();
    // The example's ids have no extension: TXA-12/13 are the roots alone.
    assert_eq!(
        txa.value(12).as_deref(),
        Some("1.2.250.1.71.4.2.2.120456789.71024000082")
    );
    assert_eq!(
        txa.value(13).as_deref(),
        Some("1.2.250.1.71.4.2.2.120456789.71024000081")
    );
    assert_eq!(
        msg.parent_document_id().unwrap().root,
        "1.2.250.1.71.4.2.2.120456789.71024000081"
    );
    assert_eq!(txa.value(17).as_deref(), Some("AU"));
    assert_eq!(
        msg.segment("ORC", 1).unwrap().value(1).as_deref(),
        Some("RO")
    );
    assert_eq!(
        msg.segment("OBX", 1).unwrap().value(11).as_deref(),
        Some("C")
    );
    assert_eq!(msg.message_type().trigger, "T10");
    assert_eq!(msg.message_type().structure, "MDM_T02");

    // PID as the ANS MDM examples write it for this patient.
    let ans = relais_hl7::parse(
        &std::fs::read(ans_file(
            "hl7v2-examples/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7",
        ))
        .unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let (ours, theirs) = (
        msg.segment("PID", 1).unwrap(),
        ans.segment("PID", 1).unwrap(),
    );
    let cx = |s: &relais_hl7::Segment<'_>| {
        let r = s.field(3).unwrap().repetition(1).unwrap();
        (1..=5)
            .map(|c| r.component(c).map(|c| c.text()).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(cx(&ours), cx(&theirs), "PID-3 (INS, first five components)");
    for n in [5, 7, 8, 32] {
        assert_eq!(
            ours.field(n).unwrap().raw(),
            theirs.field(n).unwrap().raw(),
            "PID-{n}"
        );
    }
    assert_eq!(
        ours.field(11).unwrap().raw(),
        theirs.field(11).unwrap().repetition(2).unwrap().raw(),
        "PID-11, the birthplace (BDL)"
    );
    // Same document type coding as the example's OBR-4 / OBX-3.
    assert_eq!(
        msg.segment("OBR", 1).unwrap().field(4).unwrap().raw(),
        ans.segment("OBR", 1).unwrap().field(4).unwrap().raw()
    );
    assert_eq!(
        msg.segment("OBX", 1).unwrap().field(3).unwrap().raw(),
        ans.segment("OBX", 1).unwrap().field(3).unwrap().raw()
    );
}

#[test]
fn deletion_and_new_set_order_control_and_status() {
    let cda = rplc_cda();
    let doc = read_cda(&cda);
    for (event, orc, status) in [(MdmEvent::New, "NW", "F"), (MdmEvent::Delete, "CA", "D")] {
        let msg = parse(&build(event, &cda, &doc, &mail(), MetaFlags::default()));
        assert!(errors(&msg).is_empty(), "{event:?}: {:#?}", errors(&msg));
        assert_eq!(
            msg.segment("ORC", 1).unwrap().value(1).as_deref(),
            Some(orc)
        );
        assert_eq!(
            msg.segment("OBX", 1).unwrap().value(11).as_deref(),
            Some(status)
        );
        assert_eq!(
            msg.segment("TXA", 1).unwrap().value(13),
            None,
            "{event:?}: no parent outside T10"
        );
    }
}

#[test]
fn mail_obx_participants_and_flags() {
    let cda = std::fs::read(workspace_root().join("samples/documents/ldl-ses-n1.xml")).unwrap();
    let doc = read_cda(&cda);
    let meta = MetaFlags {
        invisible_patient: true,
        modif_conf_code: true,
        ..MetaFlags::default()
    };
    let text = build(MdmEvent::New, &cda, &doc, &mail(), meta);
    let msg = parse(&text);
    assert!(errors(&msg).is_empty(), "{:#?}", errors(&msg));
    // No warning either: sender identified by PRT-5, every field the guide lists is filled.
    let warnings: Vec<_> = validate_profile(&msg)
        .into_iter()
        .map(|f| format!("{}: {}", f.code, f.message))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");

    let m = mail();
    let obx2 = msg.segment("OBX", 2).unwrap();
    assert_eq!(
        obx2.component_value(3, 1).as_deref(),
        Some(m.message_id.as_str())
    );
    assert_eq!(
        obx2.component_value(3, 2).as_deref(),
        Some(m.subject.as_str()),
        "the subject survives escaping"
    );
    assert_eq!(obx2.value(11).as_deref(), Some("F"));

    let prts: Vec<_> = msg.segments_named("PRT").collect();
    let roles: Vec<_> = prts
        .iter()
        .map(|p| p.component_value(4, 1).unwrap())
        .collect();
    assert_eq!(roles, ["SB", "RCT", "RCT", "REPLY"]);
    let addresses: Vec<_> = prts
        .iter()
        .map(|p| p.component_value(15, 4).unwrap())
        .collect();
    assert_eq!(
        addresses,
        [
            "thomas.eric@medecin.mssante.fr",
            "dpi@hopitalA.mssante.fr",
            "urologie@hopitalA.mssante.fr",
            "secretariat@medecin.mssante.fr"
        ]
    );
    assert_eq!(
        prts[0].component_value(5, 1).as_deref(),
        Some("801234564895")
    );
    // PRT segments follow the document OBX and precede the mail OBX.
    let order: Vec<_> = msg.segments().map(|s| s.name().to_string()).collect();
    assert_eq!(
        order,
        [
            "MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA", "OBX", "PRT", "PRT", "PRT", "PRT",
            "OBX", "OBX", "OBX", "OBX", "OBX"
        ]
    );

    let flags: Vec<_> = (3..=6)
        .map(|k| {
            let o = msg.segment("OBX", k).unwrap();
            (
                o.component_value(3, 1).unwrap(),
                o.component_value(5, 1).unwrap(),
                o.value(1).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        [
            ("MASQUE_PS".to_string(), "N".to_string(), "3".to_string()),
            ("INVISIBLE_PATIENT".into(), "Y".into(), "4".into()),
            ("INVISIBLE_REP_LEGAUX".into(), "N".into(), "5".into()),
            ("MODIF_CONF_CODE".into(), "Y".into(), "6".into()),
        ]
    );
    let msh = msg.msh();
    assert_eq!(msh.value(3).as_deref(), Some("RELAIS"));
    assert_eq!(msh.value(5).as_deref(), Some("DPI"));
    assert_eq!(msh.value(10).as_deref(), Some("R170000000000001"));
    assert_eq!(msh.value(11).as_deref(), Some("T"));
    assert_eq!(msh.value(18).as_deref(), Some("UNICODE UTF-8"));
    assert!(msg.has_profile("CISIS_CDA_HL7_LPS"));
    assert!(!text.contains('\n'), "segments end with CR only");
}

#[test]
fn mail_facts_from_a_parsed_sample_mail() {
    let raw = std::fs::read(workspace_root().join("samples/mail/ldl-ses-n1.eml")).unwrap();
    let parsed = relais_mssante::parse_mail(&raw, &Limits::default()).unwrap();
    let facts = MailFacts::from_mail(&parsed);
    assert_eq!(
        Some(facts.message_id.as_str()),
        parsed.message_id.as_deref()
    );
    assert_eq!(Some(&facts.sender), parsed.from.first());
    assert_eq!(facts.recipients, parsed.to);
    assert!(!facts.message_id.is_empty() && !facts.sender.is_empty());
    let debug = format!("{facts:?}");
    if let Some(subject) = &parsed.subject {
        assert!(
            !debug.contains(subject.as_str()),
            "the subject leaked into Debug"
        );
    }
    let cda = std::fs::read(workspace_root().join("samples/documents/ldl-ses-n1.xml")).unwrap();
    let doc = read_cda(&cda);
    let msg = parse(&build(
        MdmEvent::New,
        &cda,
        &doc,
        &facts,
        MetaFlags::default(),
    ));
    assert!(errors(&msg).is_empty(), "{:#?}", errors(&msg));
}

#[test]
fn empty_mail_body_is_still_a_valid_ed() {
    let cda = rplc_cda();
    let doc = read_cda(&cda);
    let m = MailFacts {
        body_text: String::new(),
        recipients: vec![],
        reply_to: vec![],
        sender_person: None,
        ..mail()
    };
    let msg = parse(&build(MdmEvent::New, &cda, &doc, &m, MetaFlags::default()));
    assert!(errors(&msg).is_empty(), "{:#?}", errors(&msg));
    assert_eq!(
        embedded_documents(&msg)[1].data.as_deref(),
        Ok(&b"\r\n"[..])
    );
    assert_eq!(msg.segments_named("PRT").count(), 1, "only the sender");
}

#[test]
fn incomplete_inputs_are_refused_with_a_code() {
    let cda = rplc_cda();
    let doc = read_cda(&cda);
    let base = |header: &relais_cda::CdaHeader,
                mail: &MailFacts,
                event,
                control_id: &'static str,
                ts: &'static str,
                cda: &[u8]| {
        build_mdm(&MdmInput {
            event,
            cda,
            header,
            mail,
            endpoints: &endpoints(),
            meta: MetaFlags::default(),
            control_id,
            timestamp: ts,
        })
    };
    let m = mail();
    let ok = |e: Result<String, relais_dpi::MdmError>| e.unwrap_err().code();
    let h = &doc.header;

    let mut no_rplc = h.clone();
    no_rplc.related_documents.clear();
    assert_eq!(
        ok(base(
            &no_rplc,
            &m,
            MdmEvent::Replace,
            "C1",
            "20240101",
            &cda
        )),
        codes::DPI_MDM_INCOMPLETE
    );
    let mut no_ids = h.clone();
    if let Some(p) = no_ids.patient.as_mut() {
        p.ids.clear();
        p.ipps.clear();
    }
    let err = base(&no_ids, &m, MdmEvent::New, "C1", "20240101", &cda).unwrap_err();
    assert_eq!(err.code(), codes::DPI_MDM_INCOMPLETE);
    assert!(err.to_string().contains("INS or IPP"), "{err}");
    let mut no_id = h.clone();
    no_id.id = None;
    assert_eq!(
        ok(base(&no_id, &m, MdmEvent::New, "C1", "20240101", &cda)),
        codes::DPI_MDM_INCOMPLETE
    );
    let mut no_code = h.clone();
    no_code.code = None;
    assert_eq!(
        ok(base(&no_code, &m, MdmEvent::New, "C1", "20240101", &cda)),
        codes::DPI_MDM_INCOMPLETE
    );
    let mut no_name = h.clone();
    if let Some(p) = no_name.patient.as_mut() {
        p.birth_family = None;
        p.used_family = None;
        p.unqualified_family = None;
    }
    assert_eq!(
        ok(base(&no_name, &m, MdmEvent::New, "C1", "20240101", &cda)),
        codes::DPI_MDM_INCOMPLETE
    );
    let no_mid = MailFacts {
        message_id: " ".into(),
        ..mail()
    };
    assert_eq!(
        ok(base(h, &no_mid, MdmEvent::New, "C1", "20240101", &cda)),
        codes::DPI_MDM_INCOMPLETE
    );
    let no_from = MailFacts {
        sender: String::new(),
        ..mail()
    };
    assert_eq!(
        ok(base(h, &no_from, MdmEvent::New, "C1", "20240101", &cda)),
        codes::DPI_MDM_INCOMPLETE
    );
    assert_eq!(
        ok(base(h, &m, MdmEvent::New, "C|1", "20240101", &cda)),
        codes::DPI_MDM_INPUT
    );
    assert_eq!(
        ok(base(h, &m, MdmEvent::New, "C1", "2024-01-01", &cda)),
        codes::DPI_MDM_INPUT
    );
    assert_eq!(
        ok(base(h, &m, MdmEvent::New, "C1", "20240101", &[])),
        codes::DPI_MDM_INPUT
    );
    // None of the messages names the patient.
    let text = base(&no_ids, &m, MdmEvent::New, "C1", "20240101", &cda)
        .unwrap_err()
        .to_string();
    assert!(
        !text.contains("PAT-TROIS") && !text.contains("279035121518989"),
        "{text}"
    );
}

#[test]
fn a_cda_with_an_unqualified_name_and_an_ipp_only() {
    let cda = rplc_cda();
    let doc = read_cda(&cda);
    let mut h = doc.header.clone();
    let p = h.patient.as_mut().unwrap();
    p.ids = vec![relais_cda::Ii {
        root: Some("1.2.250.1.999.1".into()),
        extension: Some("IPP^42".into()),
    }];
    p.ipps = p.ids.clone();
    p.ins = None;
    p.all_ins.clear();
    p.unqualified_family = p.birth_family.take();
    let text = build_mdm(&MdmInput {
        event: MdmEvent::New,
        cda: &cda,
        header: &h,
        mail: &mail(),
        endpoints: &endpoints(),
        meta: MetaFlags::default(),
        control_id: "C2",
        timestamp: "20240101",
    })
    .unwrap();
    let msg = parse(&text);
    assert!(errors(&msg).is_empty(), "{:#?}", errors(&msg));
    let pat = msg.pid().unwrap();
    assert_eq!(pat.ids.len(), 1);
    assert_eq!(pat.ids[0].id, "IPP^42", "escaped and unescaped");
    assert_eq!(pat.ids[0].id_type, "PI");
    assert_eq!(
        pat.ids[0].assigning_authority.universal_id,
        "1.2.250.1.999.1"
    );
    assert_eq!(pat.names[0].name_type, "U");
    assert_eq!(pat.identity_reliability, None, "no INS, no VALI");
}
