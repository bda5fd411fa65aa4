//! Every official ANS CDA example reads, carries the expected header facts, and passes the CI-SIS
//! header rules.

mod common;

use common::*;
use relais_cda::{Body, InsKind, Level, check_header, read};
use relais_core::{Limits, Severity};
use std::collections::BTreeMap;

/// The examples whose INS control key is wrong: fictitious matricules, a known property of the
/// ANS material, not a header rule of the ANS schematron (which does not compute the key). They
/// get the `CDA-INS-KEY` warning and nothing else.
const WRONG_INS_KEY: [&str; 4] = [
    "CSE-CS24_2025.01.xml",
    "CSE-MDE_2023.01.xml",
    "OBP-SEM_2024.01.xml",
    "OBP-SNE_2024.01.xml",
];

/// Examples with a production INS-NIR (1.2.250.1.213.1.4.8); all others use the test INS-NIR.
const QUALIFIED_INS: [&str; 6] = [
    "CSE-MDE_2023.01.xml",
    "OBP-SCM_2024.01.xml",
    "OBP-SEM_2024.01.xml",
    "OBP-SNE_2024.01.xml",
    "OBP-SNM_2024.01.xml",
    "eDISP-MED_2024.01.xml",
];

/// Auto-presentable examples: an XSLT stylesheet wrapping the ClinicalDocument.
const AUTO_PRESENTABLE: [&str; 3] = [
    "BIO-CR-BIO_2021.01_Auto-Presentable.xml",
    "BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.xml",
    "CANCER-PPS_2022.01_Autopresentable.xml",
];

/// Level 1 examples (nonXMLBody PDF).
const LEVEL_1: [&str; 3] = [
    "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml",
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
    "TLM-CR_2022.01.xml",
];

#[test]
fn all_examples_read_with_header_facts() {
    let examples = relais_testsupport::ans_cda_examples();
    assert_eq!(examples.len(), 66, "the ANS pack holds 66 CDA examples");
    let mut kinds: BTreeMap<InsKind, usize> = BTreeMap::new();
    for path in &examples {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        let doc = read(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &doc.header;
        let code = h
            .type_code()
            .unwrap_or_else(|| panic!("{name}: no type code"));
        assert!(!code.is_empty(), "{name}");
        let code_system = h.code.as_ref().and_then(|c| c.code_system.as_deref());
        assert!(code_system.is_some(), "{name}: codeSystem");
        assert!(
            h.title.as_deref().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );
        assert!(
            h.effective_time.is_some() && h.id.is_some() && h.set_id.is_some(),
            "{name}"
        );
        assert!(!h.authors.is_empty(), "{name}: authors");
        assert_eq!(
            h.legal_authenticator
                .as_ref()
                .and_then(|l| l.signature_code.as_deref()),
            Some("S"),
            "{name}"
        );
        assert!(
            h.encounter.is_some() && !h.service_events.is_empty(),
            "{name}"
        );
        let patient = h
            .patient
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no patient"));
        let kind = patient
            .ins_kind()
            .unwrap_or_else(|| panic!("{name}: no INS"));
        let expected = if QUALIFIED_INS.contains(&name.as_str()) {
            InsKind::NirQualified
        } else {
            InsKind::NirTest
        };
        assert_eq!(kind, expected, "{name}");
        *kinds.entry(kind).or_default() += 1;
        assert!(
            patient.birth_time.is_some()
                && patient.sex.is_some()
                && patient.birthplace_insee.is_some(),
            "{name}"
        );
        assert_eq!(
            doc.auto_presentable,
            AUTO_PRESENTABLE.contains(&name.as_str()),
            "{name}"
        );
        let expected_level = if LEVEL_1.contains(&name.as_str()) {
            Level::N1
        } else {
            Level::N3
        };
        assert_eq!(doc.level(), Some(expected_level), "{name}");
        assert!(
            !doc.model_template_ids().is_empty(),
            "{name}: model templateId"
        );
        if expected_level == Level::N1 {
            let pdf = doc
                .embedded_pdf()
                .unwrap_or_else(|| panic!("{name}: N1 without PDF"))
                .unwrap();
            assert!(pdf.starts_with(b"%PDF-"), "{name}");
        }
    }
    assert_eq!(kinds.get(&InsKind::NirQualified), Some(&6));
    assert_eq!(kinds.get(&InsKind::NirTest), Some(&60));
}

#[test]
fn discharge_letter_header_in_detail() {
    let doc = read_ok(&ldl_ses());
    let h = &doc.header;
    assert_eq!(doc.root_path, "/ClinicalDocument");
    assert_eq!(h.realm_code.as_deref(), Some("FR"));
    assert_eq!(h.type_code(), Some("11490-0"));
    assert_eq!(
        h.title.as_deref(),
        Some("Lettre de liaison à la sortie de l'établissement de santé")
    );
    assert_eq!(h.effective_time.as_deref(), Some("20191203133000+0100"));
    assert_eq!(h.language_code.as_deref(), Some("fr-FR"));
    assert_eq!(h.version_number.as_deref(), Some("1"));
    assert_eq!(
        h.confidentiality_code
            .as_ref()
            .and_then(|c| c.code.as_deref()),
        Some("N")
    );
    assert_eq!(
        h.id.as_ref().map(|i| i.to_xds()).as_deref(),
        Some("1.2.250.1.213.1.1.1.29.2022.1.1")
    );
    let models: Vec<_> = doc
        .model_template_ids()
        .iter()
        .map(|t| (t.root.clone(), t.extension.clone()))
        .collect();
    assert_eq!(
        models,
        vec![(
            Some("1.2.250.1.213.1.1.1.29".into()),
            Some("2022.01".into())
        )]
    );

    let p = h.patient.as_ref().unwrap();
    let ins = p.ins.as_ref().unwrap();
    assert_eq!(
        (ins.kind, ins.value.as_str()),
        (InsKind::NirTest, "279035121518989")
    );
    assert_eq!(ins.kind.oid(), "1.2.250.1.213.1.4.10");
    assert_eq!(p.ipps.len(), 1);
    assert_eq!(p.ipps[0].root.as_deref(), Some("1.2.3.4.567.8.9.10"));
    assert_eq!(p.birth_family.as_deref(), Some("PAT-TROIS"));
    assert_eq!(p.used_family.as_deref(), Some("PAT-TROIS"));
    assert_eq!(p.given_birth_first.as_deref(), Some("DOMINIQUE"));
    assert_eq!(
        p.birth_given_names.as_deref(),
        Some("DOMINIQUE MARIE-LOUISE")
    );
    assert_eq!(p.birth_time.as_deref(), Some("19790328"));
    assert_eq!(p.sex.as_deref(), Some("F"));
    assert_eq!(p.birthplace_insee.as_deref(), Some("51215"));
    let dbg = format!("{p:?}");
    assert!(
        !dbg.contains("PAT-TROIS") && !dbg.contains("279035") && !dbg.contains("1979"),
        "{dbg}"
    );

    let a = &h.authors[0];
    assert_eq!(a.rpps.as_deref(), Some("01234567897"));
    assert_eq!(a.adeli, None);
    assert_eq!(a.time.as_deref(), Some("20191203133000+0100"));
    assert_eq!(
        a.profession.as_ref().and_then(|c| c.code.as_deref()),
        Some("G15_10/SM27")
    );
    assert_eq!(
        a.name.as_ref().and_then(|n| n.family.as_deref()),
        Some("DAVID")
    );
    let org = a.organization.as_ref().unwrap();
    assert_eq!(org.finess.as_deref(), Some("1750803447"));
    assert_eq!(
        h.custodian.as_ref().and_then(|c| c.finess.as_deref()),
        Some("1750803447")
    );
    let la = h.legal_authenticator.as_ref().unwrap();
    assert_eq!(la.signature_code.as_deref(), Some("S"));
    assert_eq!(la.party.rpps.as_deref(), Some("01234567897"));
    let enc = h.encounter.as_ref().unwrap();
    assert_eq!(
        enc.facility_type.as_ref().and_then(|c| c.code.as_deref()),
        Some("SA01")
    );
    assert_eq!(
        (enc.start.as_deref(), enc.end.as_deref()),
        (Some("20191029111700+0100"), Some("20191203133000+0100"))
    );
    let ev = &h.service_events[0];
    assert_eq!(
        ev.code.as_ref().and_then(|c| c.code.as_deref()),
        Some("IMP")
    );
    assert_eq!(ev.performers.len(), 1);
    assert_eq!(h.informants.len(), 2);
    assert_eq!(h.informants[0].related_class_code.as_deref(), Some("ECON"));
    assert_eq!(h.information_recipients.len(), 2);
    assert_eq!(
        h.participants[0]
            .function_code
            .as_ref()
            .and_then(|c| c.code.as_deref()),
        Some("PCP")
    );
    assert!(h.related_documents.is_empty());
    match &doc.body {
        Body::Structured {
            section_template_ids,
            section_codes,
        } => {
            assert!(
                section_template_ids
                    .iter()
                    .any(|t| t == "1.2.250.1.213.1.1.2.35")
            );
            assert!(!section_codes.is_empty());
        }
        other => panic!("expected a structured body, got {other:?}"),
    }
    assert!(doc.embedded_pdf().is_none(), "LDL-SES has no PDF copy");
}

#[test]
fn level3_pdf_copy_is_extracted() {
    let doc = read_ok(&example("BIO-CR-BIO_2024.01_TSH_1.xml"));
    assert_eq!(doc.header.type_code(), Some("11502-2"));
    let pdf = doc
        .embedded_pdf()
        .expect("the TSH report has a PDF copy section")
        .expect("decodes");
    assert!(pdf.starts_with(b"%PDF-"));
}

#[test]
fn auto_presentable_is_read_from_the_wrapped_document() {
    let doc = read_ok(&example("CANCER-PPS_2022.01_Autopresentable.xml"));
    assert!(doc.auto_presentable);
    assert_eq!(doc.root_path, "/stylesheet/Contenu/ClinicalDocument");
    assert_eq!(doc.header.type_code(), Some("18776-5"));
    let f = check_header(&doc);
    assert!(errors(&f).is_empty(), "{:#?}", summary(&f));
}

/// The header verdict of every example: no error (the ANS examples are expected to pass the
/// Structuration minimale schematron), and the only warnings are the recorded INS-key ones.
#[test]
fn header_verdicts_of_all_examples() {
    let mut key_warned = Vec::new();
    for path in relais_testsupport::ans_cda_examples() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let doc = read(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap();
        let findings = check_header(&doc);
        assert!(
            errors(&findings).is_empty(),
            "{name}: {:#?}",
            summary(&findings)
        );
        for f in &findings {
            assert_eq!(f.severity, Severity::Warning, "{name}: {f:?}");
            assert_eq!(f.code, "CDA-INS-KEY", "{name}: {f:?}");
            assert!(
                xpath(f).ends_with("/recordTarget/patientRole/id[1]/@extension"),
                "{name}: {f:?}"
            );
            assert!(
                !f.message.contains("2210") && !f.message.contains("2230"),
                "no INS in messages"
            );
        }
        if !findings.is_empty() {
            key_warned.push(name);
        }
    }
    assert_eq!(key_warned, WRONG_INS_KEY.map(String::from).to_vec());
}

#[test]
fn fuzz_entry_on_examples_and_garbage() {
    for name in ["LDL-SES_2022.01.xml", "DOC_NON_STRUCTURE_CDA-R2-N1.xml"] {
        let text = example(name);
        relais_cda::fuzz_entry(text.as_bytes());
        // Truncations at many points: must never panic.
        for cut in (0..text.len()).step_by(text.len() / 40 + 1) {
            if text.is_char_boundary(cut) {
                relais_cda::fuzz_entry(&text.as_bytes()[..cut]);
            }
        }
    }
    for junk in [
        &b""[..],
        b"\xff\xfe\x00",
        b"<a/>",
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>",
        b"%PDF-1.4",
    ] {
        relais_cda::fuzz_entry(junk);
    }
}
