//! No patient data in logs: `relais run --once` over every bundled sample mail (the valid ones
//! and the broken ones under samples/invalid/, which take the error paths) with the most verbose
//! logging (`RELAIS_LOG=trace`, every crate), then `relais check samples/` likewise; stdout and
//! stderr of the run, and the log (stderr) of the check, must hold none of the test patients'
//! names, birth dates, INS, local identifiers or address, all read from the samples themselves.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn root() -> std::path::PathBuf {
    relais_testsupport::workspace_root()
}

fn relais_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .current_dir(dir)
        .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
        .env("RELAIS_LOG", "trace")
        .env_remove("RELAIS_CONFIG")
        .output()
        .expect("run relais")
}

/// The identity of every patient in the samples' HL7 PID segments (the same patient as in the
/// CDA documents and mails), and the other test INS of the patientId-mismatch sample.
fn patient_identity_values() -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    let mut hl7 = Vec::new();
    for dir in ["samples/documents", "samples/outbound/hl7"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "hl7") {
                hl7.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    assert!(hl7.len() >= 3, "expected the sample HL7 messages");
    for msg in &hl7 {
        let pid = msg
            .split(['\r', '\n'])
            .find(|s| s.starts_with("PID|"))
            .expect("a PID segment");
        let f: Vec<&str> = pid.split('|').collect();
        // PID-3: identifiers (INS, local PI), first component of each repetition.
        for rep in f[3].split('~') {
            values.insert(rep.split('^').next().unwrap().to_string());
        }
        // PID-5: family name, given name, other given names.
        for c in f[5].split('^').take(3) {
            values.insert(c.to_string());
        }
        // PID-7: birth date, as written and as a log would print it.
        let b = f[7];
        values.insert(b.to_string());
        values.insert(format!("{}-{}-{}", &b[..4], &b[4..6], &b[6..8]));
        values.insert(format!("{}/{}/{}", &b[6..8], &b[4..6], &b[..4]));
        // PID-11: the street.
        values.insert(f[11].split('^').next().unwrap().to_string());
    }
    // The other test INS written only into the XDM metadata of the patientId-mismatch sample.
    let maker =
        std::fs::read_to_string(root().join("crates/testsupport/src/bin/make-samples.rs")).unwrap();
    let other = maker
        .lines()
        .find_map(|l| l.strip_prefix("const OTHER_INS: &str = \""))
        .and_then(|l| l.strip_suffix("\";"))
        .expect("OTHER_INS in make-samples.rs");
    values.insert(other.to_string());
    values.retain(|v| v.len() >= 4);
    values
}

fn assert_clean(what: &str, text: &str, values: &BTreeSet<String>) {
    let lower = text.to_lowercase();
    let leaks: Vec<_> = values
        .iter()
        .filter(|v| lower.contains(&v.to_lowercase()))
        .collect();
    assert!(
        leaks.is_empty(),
        "{what} shows patient data {leaks:?}:\n{}",
        text.lines()
            .filter(|l| leaks
                .iter()
                .any(|v| l.to_lowercase().contains(&v.to_lowercase())))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn trace_logs_of_a_run_and_a_check_on_the_samples_hold_no_patient_data() {
    let values = patient_identity_values();
    for must in ["279035121518989", "RELAIS-TEST", "CAMILLE", "19790315"] {
        assert!(
            values.contains(must),
            "{must} not found in the samples: {values:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("samples/mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mut mails = 0;
    for sub in ["samples/mail", "samples/invalid"] {
        for e in std::fs::read_dir(root().join(sub)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "eml") {
                std::fs::copy(e.path(), mail.join(e.file_name())).unwrap();
                mails += 1;
            }
        }
    }
    assert!(mails >= 5, "expected the valid and invalid sample mails");

    let run = relais_in(dir.path(), &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{mails} new mail(s) journaled")),
        "{stdout}"
    );
    // Trace logging is really on: relais' own crates and dependencies wrote to stderr.
    assert!(
        stderr.contains("TRACE") && stderr.lines().count() > 20,
        "RELAIS_LOG=trace produced too little:\n{stderr}"
    );
    assert_clean("relais run --once (stdout)", &stdout, &values);
    assert_clean("relais run --once (log)", &stderr, &values);

    let check = relais_in(
        dir.path(),
        &["check", root().join("samples").to_str().unwrap()],
    );
    let log = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.code().is_some(), "relais check crashed: {log}");
    assert_clean("relais check (log)", &log, &values);
}
