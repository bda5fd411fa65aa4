//! Secrets stay out of logs, error texts and configuration dumps, and secret files readable by
//! others are flagged when the configuration is loaded.
//!
//! Each secret below is a marker written into the file the configuration names; the tests run
//! the real binary with the most verbose logging and look for the marker in everything it says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const PASSWORD: &str = "Marker-Password-7f3a9c";
const DB_PASSWORD: &str = "Marker-DbPassword-51e0d2";

fn relais(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .current_dir(dir)
        .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
        .env("RELAIS_LOG", "trace")
        .env_remove("RELAIS_CONFIG")
        .output()
        .expect("run relais")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_secret(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, format!("{content}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A port where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An IMAP source with a password file and a client key, on a port where nothing listens.
fn imap_config(dir: &Path) -> std::path::PathBuf {
    let pki = relais_testsupport::pki::TestPki::generate(
        &dir.join("pki"),
        &relais_testsupport::pki::PkiOptions::default(),
    );
    let dpi = pki.client("dpi");
    let config = dir.join("relais.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"

[[source]]
kind = "imap"
name = "bal-test"
host = "127.0.0.1"
port = {port}
ca_files = ["{ca}"]
client_cert = "{chain}"
client_key = "{key}"
user = "bal-test@relais.test"
password_file = "{password}"
"#,
            data = dir.join("data").display(),
            port = closed_port(),
            ca = pki.root_ca.display(),
            chain = dpi.chain.display(),
            key = dpi.key.display(),
            password = dir.join("imap.password").display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn config_check_warns_about_secret_files_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = imap_config(dir.path());
    let password = dir.path().join("imap.password");
    let key = dir.path().join("pki/clients/dpi.key");
    let cfg = config.to_str().unwrap();

    write_secret(&password, PASSWORD, 0o644);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o660)).unwrap();
    let out = relais(dir.path(), &["config", "check", "--config", cfg]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!("password_file {}: mode 0644", password.display()))
            && all.contains("every local user read"),
        "{all}"
    );
    assert!(
        all.contains(&format!("client_key {}: mode 0660", key.display()))
            && all.contains("its group write"),
        "{all}"
    );
    assert!(
        !all.contains(PASSWORD),
        "the password itself was shown:\n{all}"
    );

    // 0600 and 0640 (root:relais) are what the operations guide asks: no warning.
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = relais(dir.path(), &["config", "check", "--config", cfg]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("restrict it to 0600"), "{all}");
}

#[test]
fn a_failing_imap_source_logs_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = imap_config(dir.path());
    write_secret(&dir.path().join("imap.password"), PASSWORD, 0o600);
    let out = relais(
        dir.path(),
        &["run", "--once", "--config", config.to_str().unwrap()],
    );
    let all = text(&out);
    // The connection failed and was reported (so the error paths ran) ...
    assert!(
        all.contains("bal-test") && all.to_lowercase().contains("refused"),
        "expected a refused connection to be reported:\n{all}"
    );
    // ... without the password.
    assert!(!all.contains(PASSWORD), "the IMAP password leaked:\n{all}");
}

#[test]
fn a_failing_postgres_journal_logs_no_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("journal.url");
    write_secret(
        &url_file,
        &format!(
            "postgres://relais:{DB_PASSWORD}@127.0.0.1:{}/relais",
            closed_port()
        ),
        0o600,
    );
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[journal]\nkind = \"postgres\"\nurl_file = \"{}\"\n",
            dir.path().join("data").display(),
            url_file.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    for args in [
        &["config", "check", "--config", cfg][..],
        &["run", "--once", "--config", cfg][..],
    ] {
        let out = relais(dir.path(), args);
        let all = text(&out);
        assert!(!all.contains(DB_PASSWORD), "{args:?} leaked it:\n{all}");
    }
}

#[test]
fn debug_output_of_credentials_is_redacted() {
    let auth = relais_imap::Auth::Password {
        user: "bal@relais.test".into(),
        password: PASSWORD.into(),
    };
    let shown = format!("{auth:?} {auth:#?}");
    assert!(
        shown.contains("bal@relais.test") && !shown.contains(PASSWORD),
        "{shown}"
    );

    let account = relais_console::users::UserEntry {
        name: "alice".into(),
        role: relais_console::Role::parse("admin").unwrap(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${PASSWORD}"),
    };
    let shown = format!("{account:?}");
    assert!(
        shown.contains("alice") && !shown.contains(PASSWORD),
        "{shown}"
    );

    // The whole parsed configuration names secret files, never their content.
    let dir = tempfile::tempdir().unwrap();
    let config = imap_config(dir.path());
    write_secret(&dir.path().join("imap.password"), PASSWORD, 0o600);
    let parsed = relais_engine::config::Config::load(&config).expect("valid configuration");
    let dump = format!("{parsed:#?}");
    assert!(
        dump.contains("imap.password") && !dump.contains(PASSWORD),
        "{dump}"
    );
}
