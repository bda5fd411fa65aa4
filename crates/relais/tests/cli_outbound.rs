//! `relais outbound list | show | resolve` and `relais annuaire import | search`, as an
//! operator runs them, on a journal holding letters and on the Annuaire's sample extraction.

use relais_store::{
    ErrorInfo, LetterBody, LetterIntake, LetterMail, LetterRequest, LetterSource, LetterSourceKind,
    NewRecipient, Outbox, RecipientReport, RecipientStatus, ReportKind, ResolvedBy, SendResult,
    SqliteJournal, TrackedReport, sha256_of_parts,
};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn relais(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .arg("--config")
        .arg(config)
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

fn letter(key: &str, to: &str) -> LetterRequest {
    LetterRequest {
        source: LetterSource {
            kind: LetterSourceKind::Folder,
            key: format!("/srv/drop/{key}.json"),
            sha256: sha256_of_parts(&[key.as_bytes()]),
        },
        document_type: Some("11490-0".into()),
        cda_id: Some(format!("2.999.1^{key}")),
        cda_level: Some(1),
        recipients: vec![NewRecipient {
            address: Some(to.into()),
            rpps: None,
            resolved_by: ResolvedBy::Intake,
        }],
        body: LetterBody::Built(LetterMail {
            message_id: format!("relais.{key}@ch.test"),
            envelope_id: format!("env-{key}"),
            envelope_from: "service@ch.test".into(),
            raw: format!("Message-ID: <relais.{key}@ch.test>\r\n\r\nx\r\n").into_bytes(),
        }),
        detail: serde_json::json!({}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_list_show_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let j = SqliteJournal::open(dir.path().join("data/journal"))
        .await
        .unwrap();
    // Letter 1: sent, delivered and read. The patient's own address stays hidden.
    let LetterIntake::New { id: sent, .. } = j
        .intake_letter(letter("a", "279035121518989@patient.mssante.fr"))
        .await
        .unwrap()
    else {
        panic!()
    };
    j.claim_letter("w", Duration::from_secs(60)).await.unwrap();
    let _ = j
        .start_sending(sent, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let _ = j
        .letter_sent(
            sent,
            &SendResult {
                accepted: vec!["279035121518989@patient.mssante.fr".into()],
                refused: vec![],
                reply: "250 2.0.0 Ok: queued as 4XyZ".into(),
            },
        )
        .await
        .unwrap();
    j.record_report(
        sent,
        &TrackedReport {
            kind: ReportKind::Dsn,
            inbound_message: None,
            recipients: vec![RecipientReport {
                address: "279035121518989@patient.mssante.fr".into(),
                status: RecipientStatus::Delivered,
                remote_status: Some("2.0.0".into()),
                reason: Some("delivered".into()),
            }],
        },
    )
    .await
    .unwrap();
    // Letter 2: interrupted in flight, held for review.
    let LetterIntake::New { id: held, .. } =
        j.intake_letter(letter("b", "dr.b@ch.test")).await.unwrap()
    else {
        panic!()
    };
    j.claim_letter("w", Duration::from_secs(60)).await.unwrap();
    let _ = j
        .start_sending(held, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let _ = j
        .hold_letter(
            held,
            &ErrorInfo {
                code: "OUTBOUND-OUTCOME-UNKNOWN".into(),
                text: "interrupted".into(),
            },
        )
        .await
        .unwrap();
    j.close().await;

    let out = relais(&config, &["outbound", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = text(&out);
    assert!(list.contains("held_for_review"), "{list}");
    assert!(list.contains("OUTBOUND-OUTCOME-UNKNOWN"), "{list}");
    assert!(list.contains("delivered"), "{list}");
    let out = relais(&config, &["outbound", "list", "--state", "sent"]);
    assert_eq!(text(&out).lines().count(), 1, "{}", text(&out));

    let out = relais(&config, &["outbound", "show", &sent.0.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let show = text(&out);
    for expected in [
        "letter 1: sent",
        "<relais.a@ch.test>",
        "<patient>@patient.mssante.fr",
        "delivered",
        "2.0.0",
        "queued as 4XyZ",
        "intake_accepted",
        "sending",
        "dsn",
    ] {
        assert!(show.contains(expected), "{expected}: {show}");
    }
    assert!(!show.contains("279035121518989"), "{show}");
    let out = relais(&config, &["outbound", "show", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The reviewer decides: it went out.
    let out = relais(
        &config,
        &[
            "outbound",
            "resolve",
            &held.0.to_string(),
            "--sent",
            "--user",
            "alice",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = relais(&config, &["outbound", "show", &held.0.to_string()]);
    let show = text(&out);
    assert!(show.contains(": sent"), "{show}");
    assert!(
        show.contains("resolved") && show.contains("alice"),
        "{show}"
    );
    // A second decision changes nothing.
    let out = relais(
        &config,
        &["outbound", "resolve", &held.0.to_string(), "--requeue"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn annuaire_import_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let extract = relais_testsupport::workspace_root()
        .join("crates/annuaire/tests/data/extraction-sample.txt");
    let out = relais(&config, &["annuaire", "import", extract.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("imported"), "{}", text(&out));

    let out = relais(&config, &["annuaire", "search", "--rpps", "10999999001"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let found = text(&out);
    assert!(
        found.contains("sophie.martin@chu-fictif.mssante.test"),
        "{found}"
    );
    assert!(
        found.contains("s.martin@cabinet-fictif.mssante.test"),
        "{found}"
    );

    let out = relais(
        &config,
        &[
            "annuaire",
            "search",
            "--name",
            "lefevre",
            "--profession",
            "medecin",
            "--speciality",
            "SM04",
            "--city",
            "Ville-Fictive",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("eric.lefevre@chu-fictif.mssante.test"));
    assert!(!text(&out).contains("sophie"), "{}", text(&out));

    let out = relais(&config, &["annuaire", "search", "--rpps", "10999999555"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = relais(&config, &["annuaire", "search"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// xorshift64*: kill times spread out, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The Message-IDs of every mail in a Maildir.
fn message_ids(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(maildir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            if let Some(line) = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            {
                out.push(
                    line[11..]
                        .trim()
                        .trim_matches(|c| c == '<' || c == '>')
                        .to_string(),
                );
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_sending_never_sends_a_letter_twice_unseen() {
    use relais_testsupport::mailserver::MailServer;
    let server = MailServer::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let drop_dir = root.join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    std::fs::write(root.join("password"), server.password()).unwrap();
    std::fs::write(root.join("lb.txt"), format!("{}\n", server.domain())).unwrap();
    let config = root.join("relais.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
[validation]
schematron = "off"
[outbound]
mailbox = "{from}"
document_root_oid = "2.999.33.1.2"
source_oid = "2.999.33.1.9"
retry_secs = 1
[[outbound.folder]]
path = "{drop}"
stable_secs = 0
poll_secs = 1
[outbound.smtp]
host = "{host}"
port = {port}
ca_files = ["{ca}"]
user = "{from}"
password_file = "{password}"
[outbound.liste_blanche]
path = "{lb}"
"#,
            data = root.join("data").display(),
            from = server.address("secretariat"),
            drop = drop_dir.display(),
            host = server.host(),
            port = server.ports().submission,
            ca = server.ca_pem().display(),
            password = root.join("password").display(),
            lb = root.join("lb.txt").display(),
        ),
    )
    .unwrap();
    let sample = relais_testsupport::workspace_root().join("samples/outbound/ldl-ses-n1.json");
    let mut intake: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample).unwrap()).unwrap();
    intake["recipients"] = serde_json::json!([{ "mssante": server.address("dpi") }]);
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let letters = 60;
    for i in 0..letters {
        intake["document"]["id"] = serde_json::json!(format!("LDL-KILL-{i}"));
        std::fs::write(drop_dir.join(format!("k{i:03}.pdf")), pdf).unwrap();
        std::fs::write(
            drop_dir.join(format!("k{i:03}.json")),
            serde_json::to_vec(&intake).unwrap(),
        )
        .unwrap();
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill seed {seed}");
    let mut rng = Rng(seed);
    for _ in 0..8 {
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_relais"))
            .args(["run", "--interval", "1", "--config"])
            .arg(&config)
            .env_remove("RELAIS_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400 + rng.next() % 900));
        daemon.kill().unwrap(); // SIGKILL
        daemon.wait().unwrap();
    }
    // Restarted one last time, the daemon finishes what is left.
    for _ in 0..5 {
        let out = relais(&config, &["run", "--once"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let j = SqliteJournal::open(root.join("data/journal"))
        .await
        .unwrap();
    let all = j
        .list_letters(&relais_store::LetterFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), letters, "every drop journaled once");
    let sent = all
        .iter()
        .filter(|l| l.state == relais_store::LetterState::Sent)
        .count();
    let held = all
        .iter()
        .filter(|l| l.state == relais_store::LetterState::HeldForReview)
        .count();
    assert_eq!(sent + held, letters, "{all:?}");
    eprintln!("{sent} sent, {held} held for review after 8 SIGKILLs");
    server.wait_for_mail("dpi", "INBOX", sent, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let ids = message_ids(&server.maildir("dpi"));
    for l in &all {
        let mid = l.message_id.as_deref().unwrap();
        let copies = ids.iter().filter(|i| i.as_str() == mid).count();
        match l.state {
            relais_store::LetterState::Sent => {
                assert_eq!(copies, 1, "letter {} sent {copies} times", l.id)
            }
            _ => assert!(copies <= 1, "held letter {} sent {copies} times", l.id),
        }
    }
    assert_eq!(files_in_dir(&drop_dir.join("done")), 2 * letters);
}

fn files_in_dir(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}
