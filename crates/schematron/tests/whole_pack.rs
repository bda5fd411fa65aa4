//! Every schematron of the pack through Saxon, every example through its model's schematron
//! and the header rules. Slow (a minute or more): run it after updating the pack or the
//! compiler with `cargo test -p relais-schematron --test whole_pack -- --ignored --nocapture`.

mod common;

use relais_core::Severity;
use relais_schematron::{EngineOptions, codes};
use std::path::Path;

fn key(s: &str) -> String {
    s.to_ascii_lowercase().replace('_', "-")
}

#[test]
#[ignore = "slow: compiles the ~60 ANS schematrons in Saxon"]
fn every_pack_schematron_compiles_and_every_example_is_checked() {
    let engine = common::start(EngineOptions {
        workers: 2,
        ..EngineOptions::default()
    });
    let dir = relais_testsupport::ans_dir().join("schematrons");
    let mut schematrons: Vec<String> = std::fs::read_dir(&dir)
        .expect("schematrons dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("CI-SIS_") && n.ends_with(".sch"))
        .collect();
    schematrons.sort();
    let mut broken = Vec::new();
    let header = "profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch".to_string();
    for sch in schematrons.iter().chain([&header]) {
        let t = std::time::Instant::now();
        match engine.prepare(Path::new(sch), None) {
            Ok(_) => eprintln!("[compiled] {sch} in {:?}", t.elapsed()),
            Err(e) => {
                eprintln!("[BROKEN] {sch}: {e}");
                broken.push(sch.clone());
            }
        }
    }
    for example in relais_testsupport::ans_cda_examples() {
        let name = example
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let doc = std::fs::read(&example).expect("read example");
        let model = schematrons
            .iter()
            .filter(|s| {
                let m = key(s.trim_start_matches("CI-SIS_").trim_end_matches(".sch"));
                key(&name).starts_with(&m)
            })
            .max_by_key(|s| s.len());
        let mut line = format!("[example] {name}:");
        for sch in model
            .map(String::as_str)
            .into_iter()
            .chain(["profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch"])
        {
            let t = std::time::Instant::now();
            match engine.validate(Path::new(sch), &doc) {
                Ok(findings) => {
                    let failed = findings
                        .iter()
                        .filter(|f| f.code == codes::SCH_ASSERT_FAILED)
                        .count();
                    let errors = findings
                        .iter()
                        .filter(|f| f.code == codes::SCH_RULE_ERROR)
                        .count();
                    let warnings = findings
                        .iter()
                        .filter(|f| f.severity != Severity::Error)
                        .count()
                        - errors;
                    line.push_str(&format!(
                        " {sch}: {failed} failed, {warnings} warnings, {errors} rule errors ({:?});",
                        t.elapsed()
                    ));
                    for f in findings
                        .iter()
                        .filter(|f| f.code != codes::SCH_REPORT)
                        .take(3)
                    {
                        line.push_str(&format!(
                            "\n    {} {}: {}",
                            f.code,
                            f.location,
                            f.message.chars().take(300).collect::<String>()
                        ));
                    }
                }
                Err(e) => line.push_str(&format!(" {sch}: ERROR {e};")),
            }
        }
        eprintln!("{line}");
    }
    assert!(
        broken.is_empty(),
        "schematrons Saxon could not compile: {broken:?}"
    );
}
