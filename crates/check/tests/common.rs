//! Helpers shared by the relais-check integration tests.
#![allow(dead_code)]

use relais_check::{CheckOptions, Checker, CodeTables, SchematronMode};
use relais_testsupport::{ans_dir, ans_file, workspace_root};
use relais_xdm::{PackageBuilder, ProductInfo, SubmissionSet};
use std::sync::OnceLock;

/// A checker on the ANS pack, without schematron (fast).
pub fn offline_pack_checker() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| {
        Checker::new(CheckOptions {
            pack: Some(ans_dir()),
            schematron: SchematronMode::Off,
            ..CheckOptions::default()
        })
        .expect("checker on the ANS pack")
    })
}

/// A checker on the ANS pack with schematrons required (fails loudly without Java/Saxon).
pub fn full_checker() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| {
        Checker::new(CheckOptions {
            pack: Some(ans_dir()),
            schematron: SchematronMode::Require,
            cache_dir: Some(workspace_root().join("target/test-schematron-cache")),
            ..CheckOptions::default()
        })
        .expect("schematron checks need Java 17 and Saxon-HE (bash tests/setup.sh installs them)")
    })
}

pub fn ldl_ses() -> Vec<u8> {
    std::fs::read(ans_file("cda-examples/LDL-SES_2022.01.xml")).unwrap()
}

/// The files of a consistent XDM package around `cda`, metadata derived from its header.
pub fn package_files(cda_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    builder(cda_bytes).files().expect("package files")
}

pub fn builder(cda_bytes: &[u8]) -> PackageBuilder {
    let cda = relais_cda::read(cda_bytes, &Default::default()).expect("readable CDA");
    let entry = relais_check::metadata::document_entry_for(&cda, &CodeTables::embedded());
    let ss = SubmissionSet {
        unique_id: "1.2.250.1.999.1.1.1".into(),
        source_id: "1.2.250.1.999.1".into(),
        submission_time: Some("20240101120000".into()),
        patient_id: entry.patient_id.clone(),
        content_type_code: Some(relais_xdm::Coded::new(
            "04",
            "1.2.250.1.213.1.1.4.12",
            "Hospitalisation",
        )),
        authors: entry.authors.clone(),
        ..SubmissionSet::default()
    };
    PackageBuilder::new(
        ProductInfo {
            name: "Relais tests".into(),
            version: "0".into(),
            vendor: "Relais".into(),
            contact: None,
        },
        ss,
    )
    .document(entry, cda_bytes.to_vec())
}

/// Replace the first occurrence of `from` in the file at `path` of `files`.
pub fn edit(files: &mut [(String, Vec<u8>)], path_suffix: &str, from: &str, to: &str) {
    let (_, data) = files
        .iter_mut()
        .find(|(p, _)| p.ends_with(path_suffix))
        .unwrap_or_else(|| panic!("no file {path_suffix}"));
    let text = String::from_utf8(data.clone()).unwrap();
    assert!(
        text.contains(from),
        "{path_suffix} does not contain {from:?}"
    );
    *data = text.replacen(from, to, 1).into_bytes();
}

pub fn codes(report: &relais_check::InputReport) -> Vec<String> {
    report.all_findings().map(|f| f.code.to_string()).collect()
}
