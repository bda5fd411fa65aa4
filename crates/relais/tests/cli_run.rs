//! `relais run --once` on the embedded default, and the journal commands, as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

fn relais_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .current_dir(dir)
        .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
        .env_remove("RELAIS_CONFIG")
        .output()
        .expect("run relais")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn run_once_on_the_embedded_default_files_the_samples_once() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &relais_testsupport::workspace_root().join("samples/mail"),
        &dir.path().join("samples/mail"),
    );
    let first = relais_in(dir.path(), &["run", "--once"]);
    let out = &first;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 new mail(s) journaled") && stdout.contains("2 filed"),
        "{stdout}"
    );
    let filed = std::fs::read_dir(dir.path().join("relais-data/out"))
        .unwrap()
        .count();
    assert_eq!(filed, 4, "two documents and two sidecars");
    // Again: nothing new, nothing filed twice.
    let out = relais_in(dir.path(), &["run", "--once"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 new mail(s) journaled") && stdout.contains("0 deliveries"),
        "{stdout}"
    );
    // The journal commands.
    let out = relais_in(dir.path(), &["messages", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert_eq!(list.matches("filed").count(), 2, "{list}");
    let out = relais_in(dir.path(), &["messages", "show", "1"]);
    let show = String::from_utf8_lossy(&out.stdout);
    for kind in ["received", "parsed", "validated", "matched", "filed"] {
        assert!(
            show.contains(kind),
            "{kind} missing from the audit trail:\n{show}"
        );
    }
    let out = relais_in(dir.path(), &["review", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no open review"));
    // The logs (stderr) never carry the sample patient's identity.
    for o in [&first, &out] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("279035121518989") && !err.contains("RELAIS-TEST"),
            "{err}"
        );
    }
}

#[test]
fn config_check_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = relais_testsupport::workspace_root().join("config/relais.example.toml");
    let out = relais_in(
        dir.path(),
        &["config", "check", "--config", good.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[route]]\nsinks = [\"nowhere\"]\n").unwrap();
    let out = relais_in(
        dir.path(),
        &["config", "check", "--config", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nowhere\""));
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "data_dri = \"x\"\n").unwrap();
    let out = relais_in(
        dir.path(),
        &["config", "check", "--config", typo.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dri"));
}

#[test]
fn run_without_config_or_samples_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = relais_in(dir.path(), &["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("relais.example.toml"));
}

#[test]
fn patients_import_then_matching_files_automatically() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &relais_testsupport::workspace_root().join("samples/mail"),
        &dir.path().join("mail"),
    );
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        r#"
data_dir = "data"
[validation]
schematron = "off"
[patients]
require_match = true
[[source]]
kind = "maildir"
name = "bal"
path = "mail"
consume = false
[[sink]]
kind = "folder"
name = "dpi-import"
path = "out"
"#,
    )
    .unwrap();
    let csv = dir.path().join("patients.csv");
    std::fs::write(
        &csv,
        "ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status\n\
         IPP-1,279035121518989,1.2.250.1.213.1.4.10,RELAIS-TEST,CAMILLE,CAMILLE,19790315,F,51215,VALI\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = relais_in(
        dir.path(),
        &["patients", "import", csv.to_str().unwrap(), "--config", c],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 patient(s) imported"));
    let out = relais_in(dir.path(), &["run", "--once", "--config", c]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 filed") && stdout.contains("0 awaiting review"),
        "{stdout}"
    );
    let sidecars: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(sidecars.len(), 2);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sidecars[0].path()).unwrap()).unwrap();
    assert_eq!(meta["patient_ipp"], "IPP-1");
}

#[test]
fn test_connection_reports_each_step() {
    let server = relais_testsupport::mailserver::MailServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), server.password()).unwrap();
    let write_config = |ca: &Path| {
        let path = dir.path().join("relais.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[[source]]
kind = "imap"
name = "bal-dpi"
host = "{}"
port = {}
security = "tls"
ca_files = ["{}"]
user = "{}"
password_file = "password"
"#,
                server.host(),
                server.ports().imaps,
                ca.display(),
                server.address("dpi")
            ),
        )
        .unwrap();
        path
    };
    let good = write_config(server.ca_pem());
    let out = relais_in(
        dir.path(),
        &["test-connection", "--config", good.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("bal-dpi"), "{text}");
    let bad = write_config(&server.pki().other_root_ca);
    let out = relais_in(
        dir.path(),
        &["test-connection", "--config", bad.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.to_lowercase().contains("not trusted"), "{text}");
    // The password never shows.
    assert!(!text.contains(server.password()), "{text}");
}
