//! Test-only helpers shared by the crates' tests.
//!
//! The official ANS material (CDA examples, XSD, schematrons, value sets, HL7v2 examples) is not
//! part of this repository: tests find it at `../shared/ans` beside the workspace, or in the
//! directory named by `RELAIS_ANS_DIR`. A test that needs it and cannot find it fails with a
//! message saying where it looked; it never skips.
//!
//! [`mailserver`] starts real Dovecot (IMAP, LMTP) and Postfix (SMTP) servers in a temporary
//! directory for the mail tests, with a throw-away IGC-Santé-like PKI from [`pki`].

use std::path::{Path, PathBuf};

pub mod browser;
pub mod dpi_peer;
pub mod fhir_peer;
pub mod mailserver;
pub mod pki;
pub mod postgres;
pub mod slapd;

/// The workspace root (the folder holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testsupport sits two levels below the workspace root")
        .to_path_buf()
}

/// The ANS conformance material directory. Panics, naming where it looked, when absent.
pub fn ans_dir() -> PathBuf {
    let candidate = match std::env::var_os("RELAIS_ANS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/ans"),
    };
    if !candidate.join("cda-examples").is_dir() {
        panic!(
            "ANS material not found at {} (expected cda-examples/, xsd/, schematrons/ inside). \
             Put the ANS material at ../shared/ans beside the workspace or set RELAIS_ANS_DIR.",
            candidate.display()
        );
    }
    candidate.canonicalize().unwrap_or(candidate)
}

/// A file of the ANS material, e.g. `ans_file("cda-examples/LDL-SES_2022.01.xml")`.
pub fn ans_file(rel: &str) -> PathBuf {
    let p = ans_dir().join(rel);
    assert!(p.exists(), "ANS file missing: {}", p.display());
    p
}

/// Every CDA example of the ANS material, sorted by name.
pub fn ans_cda_examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ans_dir().join("cda-examples"))
        .expect("read cda-examples")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no CDA example found in the ANS material");
    v
}
