//! Every ANS CDA example through the full checker: XSD, header rules, and the schematron of the
//! example's own model (the one its `<?oxygen SCHSchema?>` instruction names), plus the
//! Structuration minimale schematron. The verdicts are recorded below, not guessed: run with
//! `RELAIS_RECORD=1 cargo test -p relais-check --test ans_examples -- --nocapture` to print the
//! table after an ANS update, review it, and paste it here.

mod common;
use common::*;
use relais_testsupport::ans_cda_examples;

/// (example file, failed assertions of the model schematron, failed assertions of the
/// Structuration minimale schematron). The XSD and the header rules accept every example.
const EXPECTED: &[(&str, usize, usize)] = &[
    ("AVC-EUNV_2022.01.xml", 0, 0),
    ("AVC-PAVC_2022.01.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_Auto-Presentable.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_CR-2nde-intention.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_Electrophorese.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_Microbiologie_V1.xml", 0, 0),
    ("BIO-CR-BIO_2021.01_Microbiologie_V2.xml", 0, 0),
    ("BIO-CR-BIO_2023.01_Electrophorese.xml", 0, 0),
    ("BIO-CR-BIO_2024.01_CR-2nde-intention-PDF.xml", 0, 0),
    ("BIO-CR-BIO_2024.01_CRP_non_LOINC.xml", 0, 0),
    ("BIO-CR-BIO_2024.01_Electrophorese.xml", 0, 0),
    ("BIO-CR-BIO_2024.01_Microbiologie_V2.xml", 0, 0),
    // Checked with the 2021.01 model (see MODEL_TABLE_EXCEPTIONS): its 2024.01-only section fails.
    ("BIO-CR-BIO_2024.01_TSH_1.xml", 1, 0),
    ("BIO-TROD_2024.01_Angine.xml", 0, 0),
    ("BIO-TROD_2024.01_COVID-19.xml", 0, 0),
    ("BIO-TROD_2024.01_COVID-19_Grippe-A_Grippe-B.xml", 0, 0),
    ("BIO-TROD_2024.01_Cystite.xml", 0, 0),
    ("CANCER-CR-GM_2022.01_AnalyseNonRealisee.xml", 0, 0),
    ("CANCER-D2LM-FIDD_2022.01.xml", 0, 0),
    ("CANCER-FRCP_2022.01_Appareil.xml", 0, 0),
    ("CANCER-FRCP_2022.01_Transversale.xml", 0, 0),
    ("CANCER-PPS_2022.01_Autopresentable.xml", 0, 0),
    ("CANCER-PPS_2022.01_feuille-de-style-externe.xml", 0, 0),
    ("CARD-F-PRC-DCI_2022.01.xml", 0, 0),
    ("CARD-F-PRC-PPV_2022.01.xml", 0, 0),
    ("CARD-F-PRC-PSC_2022.01.xml", 0, 0),
    ("CARD-F-PRC-TAP_2022.01.xml", 0, 0),
    ("CNAM-HR_2021.01.xml", 0, 0),
    ("CSE-CS24_2025.01.xml", 0, 0),
    ("CSE-MDE_2023.01.xml", 0, 0),
    ("DLU-EHPAD-DLU_2022.01.xml", 0, 0),
    ("DLU-EHPAD-FLUDR_2022.01.xml", 0, 0),
    ("DLU-EHPAD-FLUDT_2022.01.xml", 0, 0),
    ("DOC_NON_STRUCTURE_CDA-R2-N1.xml", 0, 0),
    ("IMG-DA-IMG_2024.01_Mammo-Echo-Seins.xml", 0, 0),
    ("IMG-DA-IMG_2024.01_Radiographie_ChevilleGenou.xml", 0, 0),
    (
        "IMG-DA-IMG_2024.01_Radiographie_Echographie_SeinThorax.xml",
        0,
        0,
    ),
    ("IMG-DA-IMG_2024.01_Radiographie_IRM_Genou.xml", 0, 0),
    ("IMG-DA-IMG_2024.01_Radiographie_Scanner_Genou.xml", 0, 0),
    (
        "IMG-DA-IMG_2024.01_Scanner_Crane_ThoraxAbdomenPelvis.xml",
        0,
        0,
    ),
    ("IMG-DA-IMG_2024.01_TEP_Thorax.xml", 0, 0),
    ("IMG_CR_IMG_2024.01.xml", 0, 0),
    ("IPS-FR_2024.01.xml", 0, 0),
    ("IPS-FR_2024.01_DLU.xml", 0, 0),
    ("LDL-EES_2022.01.xml", 0, 0),
    ("LDL-SES_2022.01.xml", 0, 0),
    ("OBP-SCM_2024.01.xml", 0, 0),
    ("OBP-SEM_2024.01.xml", 0, 0),
    ("OBP-SNE_2024.01.xml", 0, 0),
    ("OBP-SNM_2024.01.xml", 0, 0),
    ("OPH-CR-RTN_2022.01.xml", 0, 0),
    ("SDM-MR_2022.01.xml", 0, 0),
    ("SDM-MR_2024.01_patiente-enceinte.xml", 0, 0),
    ("SDM-MR_2024.01_patiente-post-grossesse.xml", 0, 0),
    ("TLM-CR_2022.01.xml", 0, 0),
    ("TLM-DA_2022.01_TCG.xml", 0, 0),
    ("VAC_2023.01.xml", 0, 0),
    ("VSM_1.4_2022.01.xml", 0, 0),
    // The ANS example uses a name qualifier (SP) that Structuration minimale does not allow.
    ("eDISP-MED_2024.01.xml", 0, 1),
    ("eP-MED-DM_2022.01_PosoNonStruct.xml", 0, 0),
    ("eP-MED-DM_2022.01_PosoStruct.xml", 0, 0),
    ("eP-MED-DM_2023.01_PosoStruct.xml", 0, 0),
    ("eP-MED-DM_2024.01_PosoNonStruct.xml", 0, 0),
    ("eP-MED-DM_2024.01_PosoStruct.xml", 0, 0),
];

/// The schematron an example declares for itself (last `CI-SIS_*.sch` in its oxygen PIs).
fn declared_schematron(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.contains("oxygen SCHSchema"))
        .filter_map(|l| {
            let start = l.find("schematrons/CI-SIS_")? + "schematrons/".len();
            let end = l[start..].find(".sch")? + start + 4;
            Some(l[start..end].to_string())
        })
        .next_back()
}

/// Examples where our model table picks another schematron than the example declares, and why.
const MODEL_TABLE_EXCEPTIONS: &[(&str, &str)] = &[(
    "BIO-CR-BIO_2024.01_TSH_1.xml",
    "carries the bare templateId 1.2.250.1.213.1.1.1.55 (no 2024.01 extension); the table maps the bare id to 2021.01",
)];

#[test]
fn every_ans_example() {
    let checker = full_checker();
    let record = std::env::var_os("RELAIS_RECORD").is_some();
    let mut table = Vec::new();
    let mut problems = Vec::new();
    for path in ans_cda_examples() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let report = checker.check_file(&path).unwrap();
        assert_eq!(report.documents.len(), 1, "{name}");
        let doc = &report.documents[0];
        // Type and patient are extracted from every example.
        if doc.type_code.is_none() {
            problems.push(format!("{name}: no type code extracted"));
        }
        if doc.patient_id_kind.is_none() {
            problems.push(format!("{name}: no INS kind extracted"));
        }
        // XSD and header verdicts: the ANS material says every example is valid.
        for f in doc.findings.iter().filter(|f| f.is_error()) {
            let c = f.code.as_str();
            if c.starts_with("CDA-") || c.starts_with("XML-") {
                problems.push(format!("{name}: unexpected {c}: {}", f.message));
            }
        }
        // The model schematron the table selects is the one the example declares.
        let declared = declared_schematron(&text);
        let ran: Vec<&str> = doc
            .checks
            .iter()
            .filter(|c| c.name.starts_with("schematron:CI-SIS_"))
            .map(|c| c.name.trim_start_matches("schematron:"))
            .collect();
        let exception = MODEL_TABLE_EXCEPTIONS.iter().any(|(n, _)| *n == name);
        match &declared {
            Some(d) if !exception && ran != [d.as_str()] => {
                problems.push(format!("{name}: declares {d}, the model table ran {ran:?}"))
            }
            None if !ran.is_empty() => {
                problems.push(format!("{name}: declares no model schematron, ran {ran:?}"))
            }
            _ => {}
        }
        let failed = |source_prefix: &str| {
            doc.findings
                .iter()
                .filter(|f| f.code == "SCH-ASSERT-FAILED")
                .filter(|f| {
                    f.source
                        .as_deref()
                        .is_some_and(|s| s.starts_with(source_prefix))
                })
                .count()
        };
        let model_failed = failed("CI-SIS_");
        let header_failed = failed("ASIP-STRUCT-MIN");
        table.push((name.clone(), model_failed, header_failed));
    }
    if record {
        println!("const EXPECTED: &[(&str, usize, usize)] = &[");
        for (n, m, h) in &table {
            println!("    ({n:?}, {m}, {h}),");
        }
        println!("];");
        return;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let got: Vec<(&str, usize, usize)> =
        table.iter().map(|(n, m, h)| (n.as_str(), *m, *h)).collect();
    assert_eq!(
        got, EXPECTED,
        "schematron verdicts changed: re-record after review"
    );
}
