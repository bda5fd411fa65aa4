//! XSD validation agrees with `xmllint --schema` on every ANS example and on invalid variants.

mod common;

use common::*;
use relais_cda::{XsdError, XsdValidator};
use relais_core::Location;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn xsd_path() -> PathBuf {
    relais_testsupport::ans_file("xsd/CDA_extended.xsd")
}

fn validator() -> &'static XsdValidator {
    static V: OnceLock<XsdValidator> = OnceLock::new();
    V.get_or_init(|| XsdValidator::load(xsd_path()).expect("load CDA_extended.xsd"))
}

/// xmllint's verdict on a file: true when it validates.
fn xmllint_valid(file: &Path) -> bool {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(xsd_path())
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "xmllint is needed as the XSD oracle of this test and could not be run ({e}); \
                 install it with `apt-get install libxml2-utils` (tests/setup.sh does)"
            )
        });
    match out.status.code() {
        Some(0) => true,
        Some(3) | Some(4) => false, // validation error / schema-valid error
        other => panic!(
            "xmllint failed unexpectedly on {} (status {other:?}): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn our_valid(bytes: &[u8]) -> bool {
    relais_core::finding::all_valid(&validator().validate(bytes))
}

#[test]
fn verdicts_equal_xmllint_on_all_examples() {
    let examples = relais_testsupport::ans_cda_examples();
    assert_eq!(examples.len(), 66);
    for path in examples {
        let bytes = std::fs::read(&path).unwrap();
        let findings = validator().validate(&bytes);
        let ours = relais_core::finding::all_valid(&findings);
        let theirs = xmllint_valid(&path);
        assert_eq!(
            ours,
            theirs,
            "{}: ours {ours} xmllint {theirs}: {:#?}",
            path.display(),
            summary(&findings)
        );
        // Every example is XSD-valid in the pack.
        assert!(ours, "{}", path.display());
    }
}

#[test]
fn invalid_element_is_reported_with_its_line_and_agrees_with_xmllint() {
    let base = ldl_ses();
    let marker = "    <languageCode code=\"fr-FR\"/>";
    let text = replace_once(
        &base,
        marker,
        &format!("    <unexpectedElement/>\n{marker}"),
    );
    let line = text[..text.find("<unexpectedElement/>").unwrap()]
        .matches('\n')
        .count() as u32
        + 1;
    let findings = validator().validate(text.as_bytes());
    let e = with_code(&findings, "CDA-XSD-INVALID");
    assert_eq!(
        e[0].location,
        Location::Line {
            line,
            column: e_col(&e[0].location)
        }
    );
    assert!(
        e[0].message.contains("unexpectedElement"),
        "{}",
        e[0].message
    );
    assert_eq!(e[0].source.as_deref(), Some("CDA_extended.xsd"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("variant.xml");
    std::fs::write(&file, &text).unwrap();
    assert!(!xmllint_valid(&file));
}

fn e_col(loc: &Location) -> u32 {
    match loc {
        Location::Line { column, .. } => *column,
        other => panic!("expected a line location, got {other:?}"),
    }
}

#[test]
fn invalid_variants_agree_with_xmllint() {
    let base = ldl_ses();
    let variants: Vec<(&str, String)> = vec![
        ("typeId removed", remove_element(&base, &["typeId"])),
        (
            "recordTarget removed",
            remove_element(&base, &["recordTarget"]),
        ),
        (
            "bad attribute",
            replace_once(
                &base,
                r#"<versionNumber value="1"/>"#,
                r#"<versionNumber value="one"/>"#,
            ),
        ),
        ("elements out of order", {
            let t = remove_element(&base, &["title"]);
            replace_once(
                &t,
                "<realmCode code=\"FR\"/>",
                "<realmCode code=\"FR\"/><title>x</title>",
            )
        }),
        (
            "header-only invalid but XSD-valid (no legalAuthenticator)",
            remove_element(&base, &["legalAuthenticator"]),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, text) in variants {
        let file = dir.path().join("variant.xml");
        std::fs::write(&file, &text).unwrap();
        let findings = validator().validate(text.as_bytes());
        assert_eq!(
            relais_core::finding::all_valid(&findings),
            xmllint_valid(&file),
            "{what}: {:#?}",
            summary(&findings)
        );
    }
}

#[test]
fn values_do_not_leak_into_messages() {
    let text = replace_once(
        &ldl_ses(),
        r#"<birthTime value="19790328"/>"#,
        r#"<birthTime value="1979-03-28"/>"#,
    );
    let findings = validator().validate(text.as_bytes());
    let e = with_code(&findings, "CDA-XSD-INVALID");
    for f in e {
        assert!(
            !f.message.contains("1979"),
            "patient data in message: {}",
            f.message
        );
    }
}

#[test]
fn hardened_preparse_refuses_dtd_and_reports_malformed() {
    let base = ldl_ses();
    let dtd = replace_once(
        &base,
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
    );
    let f = validator().validate(dtd.as_bytes());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].code, "XML-DTD-FORBIDDEN");
    let f = validator().validate(&base.as_bytes()[..1000]);
    assert_eq!(f[0].code, "XML-NOT-WELL-FORMED");
    let f = validator().validate(b"");
    assert!(!relais_core::finding::all_valid(&f));
    assert!(!our_valid(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>"));
    assert!(!our_valid(b"<other/>"));
}

#[test]
fn too_many_errors_are_capped() {
    let mut text = ldl_ses();
    let many: String = (0..500).map(|i| format!("<bogus{i}/>")).collect();
    text = replace_once(
        &text,
        "<realmCode code=\"FR\"/>",
        &format!("<realmCode code=\"FR\"/>{many}"),
    );
    let f = validator().validate(text.as_bytes());
    assert!(f.len() <= 201, "{}", f.len());
    assert!(!relais_core::finding::all_valid(&f));
}

#[test]
fn validator_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<XsdValidator>();

    let docs: Vec<Vec<u8>> = [
        "LDL-SES_2022.01.xml",
        "BIO-CR-BIO_2024.01_TSH_1.xml",
        "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
        "CSE-MDE_2023.01.xml",
    ]
    .iter()
    .map(|n| example(n).into_bytes())
    .chain(std::iter::once(
        remove_element(&ldl_ses(), &["typeId"]).into_bytes(),
    ))
    .collect();
    let sequential: Vec<_> = docs.iter().map(|d| validator().validate(d)).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (docs, sequential) = (&docs, &sequential);
            s.spawn(move || {
                for round in 0..3 {
                    for k in 0..docs.len() {
                        let i = (k + t + round) % docs.len();
                        assert_eq!(
                            validator().validate(&docs[i]),
                            sequential[i],
                            "thread {t}, document {i}"
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn load_errors() {
    assert!(matches!(
        XsdValidator::load("/nonexistent/CDA.xsd"),
        Err(XsdError::NotFound(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xsd");
    std::fs::write(
        &bad,
        "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/></xs:schema>",
    )
    .unwrap();
    let err = XsdValidator::load(&bad).unwrap_err();
    assert!(matches!(err, XsdError::Parse { .. }), "{err}");
    std::fs::write(&bad, "not xml at all").unwrap();
    assert!(matches!(
        XsdValidator::load(&bad),
        Err(XsdError::Parse { .. })
    ));
}

/// Deterministic mutations of a real document (letters and digits replaced, so that most mutants
/// stay well-formed and reach libxml2): neither the reader, the header rules nor the validator
/// may panic, and every mutant gets a verdict.
#[test]
fn mutated_documents_never_panic() {
    let base = example("BIO-TROD_2024.01_Angine.xml").into_bytes();
    let alnum = b"abcXYZ019";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut reached_libxml2_invalid = 0;
    for _ in 0..300 {
        let mut doc = base.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % doc.len();
            if doc[at].is_ascii_alphanumeric() {
                doc[at] = alnum[(next() as usize) % alnum.len()];
            }
        }
        relais_cda::fuzz_entry(&doc);
        let findings = validator().validate(&doc);
        if findings.iter().any(|f| f.code == "CDA-XSD-INVALID") {
            reached_libxml2_invalid += 1;
        }
    }
    assert!(
        reached_libxml2_invalid > 10,
        "mutants should reach the XSD validator: {reached_libxml2_invalid}"
    );
}
