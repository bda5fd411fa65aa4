//! The test mail servers start quickly, deliver over LMTP and SMTP, and leave nothing behind.

use std::time::{Duration, Instant};

use relais_testsupport::mailserver::{MailServer, MailServerOptions};

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: sender@hopital.test\r\nTo: dpi@hopital.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@test>\r\n\r\nbody line\r\n.leading dot\r\n"
    )
    .into_bytes()
}

#[test]
fn full_stack_starts_delivers_and_cleans_up() {
    let t0 = Instant::now();
    let server = MailServer::start();
    let started = t0.elapsed();
    eprintln!("full stack start: {started:?}");
    assert!(started < Duration::from_secs(3), "start took {started:?}");
    let dir = server.dir().to_path_buf();
    assert!(server.ca_pem().is_file());
    assert!(server.client_cert_pem("dpi").is_file());
    assert!(server.client_key_pem("dpi@hopital.test").is_file());

    assert!(server.imap_uids("dpi", "INBOX").is_empty());
    let t = Instant::now();
    server.deliver_lmtp("dpi", &mail("one"));
    eprintln!("LMTP delivery: {:?}", t.elapsed());
    assert_eq!(server.imap_uids("dpi", "INBOX"), vec![1]);

    let t = Instant::now();
    server
        .send_smtp("someone@elsewhere.test", &["dpi"], &mail("two"))
        .expect("postfix accepts mail for a known user");
    let uids = server.wait_for_mail("dpi", "INBOX", 2, Duration::from_secs(10));
    eprintln!("SMTP -> LMTP delivery: {:?}", t.elapsed());
    assert_eq!(uids, vec![1, 2]);
    // The dot-stuffed line came back unstuffed.
    let new = std::fs::read_dir(server.maildir("dpi").join("new")).unwrap();
    let texts: Vec<String> = new
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .all(|t| t.contains("\r\n.leading dot\r\n") || t.contains("\n.leading dot\n"))
    );

    // Unknown users and other domains are refused at RCPT.
    let err = server
        .send_smtp("a@hopital.test", &["nobody"], &mail("three"))
        .unwrap_err();
    assert!(err.contains("RCPT"), "{err}");
    let err = server
        .send_smtp("a@hopital.test", &["x@example.org"], &mail("four"))
        .unwrap_err();
    assert!(err.contains("RCPT"), "{err}");

    server.create_folder("labo", "Traites");
    assert!(server.imap_uids("labo", "Traites").is_empty());
    server.delete_folder("labo", "Traites");

    let pgids = std::fs::read_to_string(dir.join("pgids")).unwrap();
    let pgids: Vec<u32> = pgids.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pgids.len(), 3, "dovecot main, dovecot mtls, postfix");
    let t = Instant::now();
    server.stop();
    eprintln!("stop: {:?}", t.elapsed());
    assert!(!dir.exists(), "state dir removed");
    for p in pgids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists()
                || std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .unwrap_or_default()
                    .contains(") Z "),
            "process {p} survived stop"
        );
    }
}

#[test]
fn dovecot_only_starts_fast() {
    let t0 = Instant::now();
    let server = MailServer::start_with(MailServerOptions {
        postfix: false,
        imap_without: vec!["MOVE".into()],
        ..MailServerOptions::default()
    });
    eprintln!("dovecot-only start: {:?}", t0.elapsed());
    assert_eq!(server.ports().smtp, 0);
    server.deliver_lmtp("secretariat@hopital.test", &mail("x"));
    assert_eq!(server.imap_uids("secretariat", "INBOX"), vec![1]);
}

/// Run as a child process by `watchdog_cleans_up_when_the_test_process_dies`: starts a server,
/// prints its directory and process groups, and exits without running any destructor.
#[test]
fn watchdog_child() {
    if std::env::var_os("RELAIS_WATCHDOG_CHILD").is_none() {
        return;
    }
    let server = MailServer::start_with(MailServerOptions {
        postfix: true,
        ..MailServerOptions::default()
    });
    let pgids = std::fs::read_to_string(server.dir().join("pgids")).unwrap();
    println!("DIR={}", server.dir().display());
    for p in pgids.lines() {
        println!("PGID={p}");
    }
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

#[test]
fn watchdog_cleans_up_when_the_test_process_dies() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "watchdog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RELAIS_WATCHDOG_CHILD", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .find_map(|l| l.split_once("DIR=").map(|(_, d)| d))
        .unwrap_or_else(|| {
            panic!(
                "child output: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    let pgids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split_once("PGID=").map(|(_, p)| p))
        .map(str::to_string)
        .collect();
    assert_eq!(pgids.len(), 3, "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = |pgid: &str| -> bool {
        // Any live (non-zombie) process left in the group?
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a.to_string()) else {
                return false;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid
        })
    };
    loop {
        let left: Vec<&String> = pgids.iter().filter(|g| alive(g)).collect();
        if left.is_empty() && !std::path::Path::new(&dir).exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the test process died: process groups {left:?} alive, dir exists: {}",
            std::path::Path::new(&dir).exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
