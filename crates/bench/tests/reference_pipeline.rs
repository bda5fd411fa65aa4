//! The reference pipeline of the benchmarks (tests/reference/reference_pipeline.py) really
//! validates: on a valid mail, on a mail whose XDM hash is wrong and on a mail whose CDA breaks
//! the XSD, it gives the same verdict as `relais check` (the `relais_check::Checker` the command
//! runs, XSD and no schematron, as the reference runs without --schematron). Needs python3 with
//! lxml (`bash tests/setup.sh`): without them the test fails, saying so.

use relais_check::{CheckOptions, Checker, CodeTables, SchematronMode};
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "python3 -m pip install lxml saxonche (bash tests/setup.sh does it)";

/// The discharge letter sample with an element the CDA schema does not allow, packed as a
/// consistent XDM (right hash and size) in an MSSanté mail.
fn xsd_invalid_mail(root: &Path) -> Vec<u8> {
    let cda = std::fs::read_to_string(root.join("samples/documents/ldl-ses-n1.xml"))
        .expect("samples/documents/ldl-ses-n1.xml");
    let broken = cda.replace(
        "</ClinicalDocument>",
        "<unexpectedBenchElement/></ClinicalDocument>",
    );
    assert_ne!(broken, cda, "the sample CDA ends with </ClinicalDocument>");
    let doc = relais_cda::read(broken.as_bytes(), &Default::default()).expect("readable CDA");
    let entry = relais_check::metadata::document_entry_for(&doc, &CodeTables::embedded());
    let ss = relais_xdm::SubmissionSet {
        unique_id: "1.2.250.1.999.1.1.2".into(),
        source_id: "1.2.250.1.999.1".into(),
        submission_time: Some("20250312120000".into()),
        patient_id: entry.patient_id.clone(),
        authors: entry.authors.clone(),
        ..Default::default()
    };
    let product = relais_xdm::ProductInfo {
        name: "relais-bench-test".into(),
        version: "1".into(),
        vendor: "Relais".into(),
        contact: None,
    };
    let zip = relais_xdm::PackageBuilder::new(product, ss)
        .document(entry, broken.into_bytes())
        .build()
        .expect("package")
        .zip;
    mail_builder::MessageBuilder::new()
        .from(("CH Demo", "expediteur@ch-demo.mssante.fr"))
        .to(("Dr Demo", "destinataire@medecin.mssante.fr"))
        .subject("XDM/1.0/DDM")
        .message_id("reference-test@ch-demo.mssante.fr")
        .text_body("Lettre de liaison.")
        .attachment("application/zip", "IHE_XDM.ZIP", zip)
        .write_to_vec()
        .expect("mail")
}

/// The reference's verdict on each mail, in order.
fn reference_verdicts(root: &Path, xsd: &Path, mails: &[PathBuf]) -> Vec<(bool, String)> {
    let out = Command::new("python3")
        .arg(root.join("tests/reference/reference_pipeline.py"))
        .arg("--xsd")
        .arg(xsd)
        .args(mails)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run ({e}); install it, then {INSTALL}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the reference pipeline failed ({}): {stderr}\nIt needs lxml: {INSTALL}",
        out.status
    );
    let lines: Vec<(bool, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON verdict");
            (
                v["valid"].as_bool().expect("valid"),
                v["errors"].to_string(),
            )
        })
        .collect();
    assert_eq!(lines.len(), mails.len(), "one verdict per mail: {stderr}");
    lines
}

#[test]
fn the_reference_pipeline_gives_the_verdicts_of_relais_check() {
    let root = relais_testsupport::workspace_root();
    let ans = relais_testsupport::ans_dir();
    let xsd = ans.join("xsd/CDA_extended.xsd");
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("xsd-invalid.eml");
    std::fs::write(&broken, xsd_invalid_mail(&root)).expect("write the mail");
    let mails = vec![
        root.join("samples/mail/ldl-ses-n1.eml"),
        root.join("samples/invalid/xdm-hash-mismatch.eml"),
        broken,
    ];
    let expected = [true, false, false];

    let checker = Checker::new(CheckOptions {
        pack: Some(ans.clone()),
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let reference = reference_verdicts(&root, &xsd, &mails);
    for ((mail, want), (ref_valid, ref_errors)) in mails.iter().zip(expected).zip(&reference) {
        let report = checker.check_file(mail).expect("check");
        let codes: Vec<String> = report
            .all_findings()
            .filter(|f| f.is_error())
            .map(|f| f.code.to_string())
            .collect();
        assert_eq!(
            report.valid,
            want,
            "relais check on {}: {codes:?}",
            mail.display()
        );
        assert_eq!(
            *ref_valid,
            want,
            "the reference on {}: {ref_errors} (relais: {codes:?})",
            mail.display()
        );
    }
    // Each rejection for the reason the mail was broken.
    assert!(reference[1].1.contains("hash"), "{}", reference[1].1);
    assert!(reference[2].1.contains("xsd:"), "{}", reference[2].1);
}
