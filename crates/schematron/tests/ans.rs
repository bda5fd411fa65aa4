//! The official ANS schematrons run on the official ANS CDA examples and on invalid variants.

mod common;

use common::{ans_bytes, engine};
use relais_core::{Finding, Location, Severity};
use relais_schematron::{EngineOptions, SchematronError, codes};
use std::path::Path;
use std::time::Instant;

const LDL_SES_SCH: &str = "CI-SIS_LDL-SES_2022.01.sch";
const STRUC_MIN_SCH: &str = "profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch";
const LDL_SES: &str = "cda-examples/LDL-SES_2022.01.xml";
const LDL_EES: &str = "cda-examples/LDL-EES_2022.01.xml";

fn failed(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.code == codes::SCH_ASSERT_FAILED)
        .collect()
}

fn describe(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} at {}: {}",
                f.source.as_deref().unwrap_or("?"),
                f.location,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The document without the element found by `pick` (its whole byte range cut out).
fn without(doc: &[u8], pick: impl Fn(roxmltree::Node<'_, '_>) -> bool) -> Vec<u8> {
    let text = std::str::from_utf8(doc).expect("UTF-8 example");
    let parsed =
        relais_core::xml::parse(text, &relais_core::Limits::default()).expect("parse example");
    let node = parsed
        .descendants()
        .find(|n| n.is_element() && pick(*n))
        .expect("element to remove");
    let r = node.range();
    let mut out = text[..r.start].to_string();
    out.push_str(&text[r.end..]);
    out.into_bytes()
}

#[test]
fn ldl_ses_example_conforms_to_its_schematron() {
    let findings = engine()
        .validate(Path::new(LDL_SES_SCH), &ans_bytes(LDL_SES))
        .expect("validation runs");
    let failed = failed(&findings);
    assert!(
        failed.is_empty(),
        "unexpected failed assertions:\n{}",
        describe(&failed)
    );
}

#[test]
fn ldl_ees_example_fails_the_ldl_ses_document_code_rule() {
    let findings = engine()
        .validate(Path::new(LDL_SES_SCH), &ans_bytes(LDL_EES))
        .expect("validation runs");
    let failed = failed(&findings);
    let code_rule = failed
        .iter()
        .find(|f| {
            f.assertion
                .as_deref()
                .is_some_and(|a| a.contains("@code=\"11490-0\""))
        })
        .unwrap_or_else(|| {
            panic!(
                "no failed assertion about the document code in:\n{}",
                describe(&failed)
            )
        });
    assert_eq!(code_rule.severity, Severity::Error);
    assert_eq!(
        code_rule.location,
        Location::XPath("/ClinicalDocument".into())
    );
    assert_eq!(
        code_rule.source.as_deref(),
        Some("CI-SIS_LDL-SES_2022.01.sch#Entete_LDL-SES")
    );
    // Whitespace of the official text is collapsed.
    assert_eq!(
        code_rule.assertion.as_deref(),
        Some(
            "[Entete_LDL-SES] Erreur de conformité : L'élément \"code\" de la LDL-SES doit avoir les attributs \
             @code=\"11490-0\" et @codeSystem=\"2.16.840.1.113883.6.1\"."
        )
    );
}

#[test]
fn structuration_minimale_accepts_ldl_ses_and_catches_a_missing_realm_code() {
    let e = engine();
    let doc = ans_bytes(LDL_SES);
    let findings = e
        .validate(Path::new(STRUC_MIN_SCH), &doc)
        .expect("validation runs");
    let failed_list = failed(&findings);
    assert!(
        failed_list.is_empty(),
        "unexpected failed assertions:\n{}",
        describe(&failed_list)
    );

    // The same rules do fire: without <realmCode code="FR"/> the header rule fails.
    let variant = without(&doc, |n| n.has_tag_name("realmCode"));
    let findings = e
        .validate(Path::new(STRUC_MIN_SCH), &variant)
        .expect("validation runs");
    let failed_list = failed(&findings);
    assert!(
        failed_list
            .iter()
            .any(|f| f.assertion.as_deref().is_some_and(
                |a| a.contains("element hl7:realmCode[@code = 'FR'] is required [min 1x]")
            ) && f.location == Location::XPath("/ClinicalDocument".into())),
        "realmCode rule did not fire:\n{}",
        describe(&failed_list)
    );
}

#[test]
fn removing_a_required_section_fires_its_assertion() {
    let doc = ans_bytes(LDL_SES);
    // The <component> whose section is FR-Traitements-a-la-sortie.
    let variant = without(&doc, |n| {
        n.has_tag_name("component")
            && n.children().any(|s| {
                s.has_tag_name("section")
                    && s.children().any(|t| {
                        t.has_tag_name("templateId")
                            && t.attribute("root") == Some("1.3.6.1.4.1.19376.1.5.3.1.3.22")
                    })
            })
    });
    let findings = engine()
        .validate(Path::new(LDL_SES_SCH), &variant)
        .expect("validation runs");
    let failed_list = failed(&findings);
    assert_eq!(
        failed_list.len(),
        1,
        "exactly the section rule fails:\n{}",
        describe(&failed_list)
    );
    let f = failed_list[0];
    assert_eq!(
        f.assertion.as_deref(),
        Some(
            "[CI-SIS_LDL-SES_2021.01] Erreur de conformité : La section FR-Traitements-a-la-sortie \
             (1.3.6.1.4.1.19376.1.5.3.1.3.22) est obligatoire."
        )
    );
    assert_eq!(
        f.source.as_deref(),
        Some("CI-SIS_LDL-SES_2022.01.sch#variables")
    );
    assert_eq!(f.location, Location::XPath("/ClinicalDocument".into()));
}

#[test]
fn value_set_lookup_reads_the_jdv_through_document() {
    let doc = String::from_utf8(ans_bytes(LDL_SES)).expect("UTF-8");
    // The admission mode (ORG-070) is 107724000, which JDV_ModaliteEntree_CISIS lists: the
    // unmodified example passes (see ldl_ses_example_conforms_to_its_schematron). A code the
    // value set does not list must fail the dansJeuDeValeurs rule.
    let needle = "code=\"107724000\"";
    assert_eq!(doc.matches(needle).count(), 1, "the example changed");
    let variant = doc.replace(needle, "code=\"999999999\"");
    let findings = engine()
        .validate(Path::new(LDL_SES_SCH), variant.as_bytes())
        .expect("validation runs");
    let failed_list = failed(&findings);
    assert_eq!(
        failed_list.len(),
        1,
        "exactly the value set rule fails:\n{}",
        describe(&failed_list)
    );
    let f = failed_list[0];
    let a = f.assertion.as_deref().unwrap_or_default();
    assert!(a.starts_with("[dansJeuDeValeurs]"), "{a}");
    // value-of in the message, evaluated on the document.
    assert!(
        a.contains("[999999999:transfert d'un(e) patient(e):2.16.840.1.113883.6.96]"),
        "{a}"
    );
    assert!(
        a.contains(
            "doit faire partie du jeu de valeurs ../jeuxDeValeurs/JDV_ModaliteEntree_CISIS.xml"
        ),
        "{a}"
    );
    assert_eq!(
        f.source.as_deref(),
        Some("CI-SIS_LDL-SES_2022.01.sch#JDV_ModaliteEntree_LDL-SES")
    );
    match &f.location {
        Location::XPath(p) => assert!(
            p.starts_with("/ClinicalDocument/component/structuredBody/component"),
            "{p}"
        ),
        other => panic!("unexpected location {other:?}"),
    }
    assert!(matches!(&f.location, Location::XPath(p) if p.ends_with("/observation/value")));
}

#[test]
fn phases_select_patterns() {
    let e = engine();
    let doc = ans_bytes(LDL_EES);
    // Every pattern (#ALL) still reports the document code, which lives in an active pattern.
    let all = e
        .validate_phase(Path::new(LDL_SES_SCH), Some("#ALL"), &doc)
        .expect("validation runs");
    assert!(
        failed(&all)
            .iter()
            .any(|f| f.source.as_deref() == Some("CI-SIS_LDL-SES_2022.01.sch#Entete_LDL-SES"))
    );
    let err = e
        .validate_phase(Path::new(LDL_SES_SCH), Some("no-such-phase"), &doc)
        .expect_err("unknown phase");
    assert!(
        err.to_string().contains("CI-SIS_LDL-SES_2022.01"),
        "the error lists the phases: {err}"
    );
}

#[test]
fn documents_with_a_dtd_or_not_xml_are_refused_before_saxon() {
    let e = engine();
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&x;</ClinicalDocument>"#;
    match e.validate(Path::new(LDL_SES_SCH), xxe) {
        Err(SchematronError::Document(err)) => {
            assert_eq!(err.code(), relais_core::xml::XML_DTD_FORBIDDEN)
        }
        other => panic!("expected a refused document, got {other:?}"),
    }
    assert!(matches!(
        e.validate(Path::new(LDL_SES_SCH), b"not xml at all"),
        Err(SchematronError::Document(_))
    ));
}

#[test]
fn parallel_validations_agree() {
    let e = engine();
    let ses = ans_bytes(LDL_SES);
    let ees = ans_bytes(LDL_EES);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (ses, ees) = (&ses, &ees);
                s.spawn(move || {
                    for _ in 0..3 {
                        let doc = if i % 2 == 0 { ses } else { ees };
                        let findings = e
                            .validate(Path::new(LDL_SES_SCH), doc)
                            .expect("validation runs");
                        assert_eq!(failed(&findings).is_empty(), i % 2 == 0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    });
}

#[test]
fn a_dead_worker_is_replaced_and_compiled_stylesheets_are_reused() {
    let shared = engine();
    let first_path = shared
        .stylesheet(Path::new(LDL_SES_SCH), None)
        .expect("compile");
    let modified = std::fs::metadata(&first_path)
        .and_then(|m| m.modified())
        .expect("mtime");

    let own = common::start(EngineOptions::default());
    // Same inputs, same cache entry, not rewritten.
    let again = own
        .stylesheet(Path::new(LDL_SES_SCH), None)
        .expect("compile");
    assert_eq!(again, first_path);
    assert_eq!(
        std::fs::metadata(&again)
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );

    let doc = ans_bytes(LDL_EES);
    assert!(!failed(&own.validate(Path::new(LDL_SES_SCH), &doc).expect("runs")).is_empty());
    own.simulate_worker_crash();
    let findings = own
        .validate(Path::new(LDL_SES_SCH), &doc)
        .expect("runs on a new worker");
    assert!(!failed(&findings).is_empty());
}

#[test]
fn timing_of_first_and_later_runs() {
    // A fresh cache: the worker classes are built, the schematron compiled, Saxon compiles the
    // stylesheet on the first run only.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = relais_schematron::EngineConfig {
        cache_dir: dir.path().to_path_buf(),
        ..common::config()
    };
    let t0 = Instant::now();
    let e = relais_schematron::SchematronEngine::start(config).unwrap_or_else(|err| {
        panic!("these tests need Java 17 (java + javac) and Saxon-HE: {err}. Install default-jre-headless, openjdk-17-jdk-headless and libsaxonhe-java.")
    });
    let started = t0.elapsed();
    // (The header rules, StrucMin, are timed by the whole_pack test: their first Saxon
    // compilation takes seconds, too long for every test run.)
    for sch in [LDL_SES_SCH] {
        let doc = ans_bytes(LDL_SES);
        let t1 = Instant::now();
        let findings = e.validate(Path::new(sch), &doc).expect("runs");
        let first = t1.elapsed();
        assert!(failed(&findings).is_empty());
        let t2 = Instant::now();
        let n = 5;
        for _ in 0..n {
            e.validate(Path::new(sch), &doc).expect("runs");
        }
        let later = t2.elapsed() / n;
        eprintln!(
            "[timing] {sch}: engine start (javac + JVM) {started:?}; first validation (compile .sch + Saxon compile + run) {first:?}; later validations {later:?} each"
        );
    }
}
