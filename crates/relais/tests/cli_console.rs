//! The daemon with its console, as an operator starts it: `relais users add` creates an account,
//! `relais run` serves the console, whose `/health` answers and whose `/metrics` shows the
//! engine's counters after a cycle; SIGTERM stops both cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn relais(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_relais"));
    c.current_dir(dir)
        .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
        .env_remove("RELAIS_CONFIG");
    c
}

/// A plain HTTP/1.1 GET on loopback: (status line, body).
fn get(address: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn console_health_and_metrics_from_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for m in ["ldl-ses-n1.eml", "cr-bio-n1.eml"] {
        std::fs::copy(
            relais_testsupport::workspace_root()
                .join("samples/mail")
                .join(m),
            inbox.join(m),
        )
        .unwrap();
    }
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
[validation]
schematron = "off"
[patients]
require_match = false
[[source]]
kind = "maildir"
name = "bal-demo"
path = "{inbox}"
[[sink]]
kind = "folder"
name = "out"
path = "{out}"
[console]
listen = "127.0.0.1:0"
users_file = "{users}"
"#,
            data = dir.path().join("data").display(),
            inbox = inbox.display(),
            out = dir.path().join("out").display(),
            users = dir.path().join("users.toml").display(),
        ),
    )
    .unwrap();
    let check = relais(dir.path())
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // An account, password piped on standard input; a short one is refused.
    let add = |password: &str| {
        let mut child = relais(dir.path())
            .args(["users", "add", "alice", "--role", "operator", "--config"])
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = add("short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));
    let ok = add("correct horse battery staple");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    assert!(
        users.contains("alice") && users.contains("$argon2"),
        "{users}"
    );
    assert!(
        !users.contains("correct horse"),
        "the password itself is never stored"
    );

    let mut daemon = relais(dir.path())
        .args(["run", "--interval", "1", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the daemon printed the console address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("console on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (status, body) = get(&address, "/health");
    assert!(status.contains("200"), "{status} {body}");
    // The first cycle journals and files both mails; the metrics say so.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (status, body) = get(&address, "/metrics");
        assert!(status.contains("200"), "{status} {body}");
        if body.contains("relais_deliveries_total{sink=\"out\",outcome=\"delivered\"} 2") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the deliveries:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        metrics.contains("relais_mails_journaled_total{source=\"bal-demo\"} 2"),
        "{metrics}"
    );
    // Pages need a login.
    let (status, _) = get(&address, "/dashboard");
    assert!(!status.contains("200"), "{status}");

    let pid = daemon.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = daemon.wait().unwrap();
    let mut err = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
}
