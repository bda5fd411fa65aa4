//! The outbound side end to end with real servers (Dovecot + Postfix of relais-testsupport):
//! a PDF and its intake JSON dropped in a watched folder become a mail in the recipient's
//! mailbox, submitted through Postfix's submission port (STARTTLS + login); the receiving
//! side's own engine reads it back over IMAP, finds it valid and files it, and answers with an
//! MDN; Postfix's success DSN and that MDN come back into the sending mailbox and the letter's
//! recipient shows delivered, then read. Then the refusals (liste blanche, size, not a PDF,
//! half-written files), the Annuaire extract, an SMTP server down then up, and a crash while in
//! flight (held for review, never re-sent).

mod common;

use common::{camille, config};
use relais_engine::Engine;
use relais_engine::config::{ImapSecurity, Sink, SmtpSecurity, SmtpSettings, Source};
use relais_engine::outbound::{
    IntakeFolder, ListeBlancheSettings, OutboundConfig, OutboundSummary,
};
use relais_store::{
    LetterFilter, LetterId, LetterRecord, LetterState, MessageFilter, MessageState, Outbox,
    RecipientStatus, ResolvedBy,
};
use relais_testsupport::mailserver::MailServer;
use relais_testsupport::workspace_root;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A one-page PDF 1.4 with a correct cross-reference table.
fn pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT\n/F1 12 Tf\n16 TL\n56 780 Td\n");
    for line in lines {
        content.push_str(&format!("({line}) Tj\nT*\n"));
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
    ];
    let mut out: Vec<u8> = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The sample discharge letter's intake with its recipients replaced: each given as an
/// address or as `rpps:<number>`; `id` makes the document id unique.
fn intake_json(recipients: &[&str], id: &str) -> Vec<u8> {
    let path = workspace_root().join("samples/outbound/ldl-ses-n1.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["document"]["id"] = serde_json::json!(format!("LDL-TEST-{id}"));
    v["document"]["set_id"] = serde_json::json!(format!("LDL-TEST-{id}-S"));
    v["recipients"] = recipients
        .iter()
        .map(|r| match r.strip_prefix("rpps:") {
            Some(rpps) => serde_json::json!({ "rpps": rpps, "family_name": "MARTIN" }),
            None => serde_json::json!({ "mssante": r }),
        })
        .collect();
    serde_json::to_vec_pretty(&v).unwrap()
}

/// Drops `<name>.pdf` then `<name>.json` in `dir`.
fn drop_letter(dir: &Path, name: &str, pdf_bytes: &[u8], json: &[u8]) {
    std::fs::write(dir.join(format!("{name}.pdf")), pdf_bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
}

fn password_file(dir: &Path, server: &MailServer) -> PathBuf {
    let p = dir.join("password");
    std::fs::write(&p, server.password()).unwrap();
    p
}

fn smtp(server: &MailServer, port: u16, user: &str, password: &Path) -> SmtpSettings {
    SmtpSettings {
        host: server.host(),
        port,
        security: SmtpSecurity::Starttls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address(user)),
        password_file: Some(password.to_path_buf()),
        helo_name: None,
        tls_server_name: None,
    }
}

fn imap_source(server: &MailServer, user: &str, password: &Path) -> Source {
    Source::Imap {
        address: Some(server.address(user)),
        name: format!("bal-{user}"),
        host: server.host(),
        port: server.ports().imaps,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address(user)),
        password_file: Some(password.to_path_buf()),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    }
}

/// The sending side's `[outbound]`: mailbox `secretariat`, a watched folder under `root`, the
/// liste blanche holding the test domain only.
fn outbound(root: &Path, server: &MailServer, smtp_port: u16, password: &Path) -> OutboundConfig {
    std::fs::create_dir_all(root).unwrap();
    let lb = root.join("liste-blanche.txt");
    std::fs::write(&lb, format!("# test list\n{}\n", server.domain())).unwrap();
    let mut folder = IntakeFolder::new(root.join("drop"));
    folder.stable_secs = 1;
    folder.poll_secs = 1;
    OutboundConfig {
        folders: vec![folder],
        mailbox: Some(server.address("secretariat")),
        mailbox_name: Some("Secrétariat - CH RELAIS-DEMO".into()),
        smtp: Some(smtp(server, smtp_port, "secretariat", password)),
        document_root_oid: Some("2.999.33.1.2".into()),
        source_oid: Some("2.999.33.1.9".into()),
        retry_secs: 1,
        liste_blanche: Some(ListeBlancheSettings {
            path: lb,
            check_interval_secs: 60,
            enforce_on_intake: false,
        }),
        ..OutboundConfig::default()
    }
}

/// Runs outbound cycles until one takes a drop (or `timeout`); returns what they did.
async fn take(engine: &Engine, timeout: Duration) -> OutboundSummary {
    let o = engine.outbound().expect("outbound configured");
    let deadline = Instant::now() + timeout;
    let mut total = OutboundSummary::default();
    loop {
        let s = o.once().await.unwrap();
        total.queued += s.queued;
        total.refused += s.refused;
        total.duplicates += s.duplicates;
        total.sent += s.sent;
        total.failed += s.failed;
        total.retried += s.retried;
        total.held += s.held;
        if s.queued + s.refused + s.duplicates > 0 || Instant::now() > deadline {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn letters(outbox: &Arc<dyn Outbox>) -> Vec<LetterRecord> {
    outbox.list_letters(&LetterFilter::default()).await.unwrap()
}

async fn event_kinds(outbox: &Arc<dyn Outbox>, id: LetterId) -> Vec<String> {
    outbox
        .letter_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_letter_is_delivered_filed_and_read_with_its_dsn_and_mdn() {
    let server = MailServer::start();
    for user in ["secretariat", "dpi"] {
        server.create_folder(user, "Relais-Traites");
        server.create_folder(user, "Relais-Quarantaine");
    }
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);

    // The sending hospital: a watched folder, and its own mailbox read for DSNs and MDNs.
    let sender_root = tmp.path().join("sender");
    let mut c = config(
        &sender_root,
        vec![imap_source(&server, "secretariat", &password)],
        vec![Sink::Folder {
            name: "out".into(),
            path: sender_root.join("out"),
        }],
        false,
    );
    c.outbound = outbound(&sender_root, &server, server.ports().submission, &password);
    let sender = Arc::new(Engine::open(c).await.unwrap());
    let outbox = sender.outbound().unwrap().outbox().clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let daemon = {
        let e = sender.clone();
        tokio::spawn(async move { e.run(Duration::from_secs(1), stop_rx).await })
    };

    // The DPI drops the letter.
    let dpi = server.address("dpi");
    let dropped = Instant::now();
    drop_letter(
        &sender_root.join("drop"),
        "ldl-0001",
        &pdf(&["Lettre de liaison - test Relais"]),
        &intake_json(&[&dpi], "0001"),
    );
    let inbox = tokio::task::spawn_blocking({
        let server_dir = server.maildir("dpi");
        move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let n = std::fs::read_dir(server_dir.join("new"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                if n > 0 || Instant::now() > deadline {
                    return n;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
    .await
    .unwrap();
    let delivery_time = dropped.elapsed();
    assert_eq!(
        inbox,
        1,
        "the letter reached the recipient's mailbox\n{}",
        server.logs()
    );
    eprintln!("drop → recipient's mailbox: {delivery_time:?}");
    assert!(delivery_time < Duration::from_secs(15), "{delivery_time:?}");
    assert_eq!(
        files_in(&sender_root.join("drop/done")),
        ["ldl-0001.json", "ldl-0001.pdf"]
    );
    let sent = letters(&outbox).await;
    assert_eq!(sent.len(), 1);
    let letter = &sent[0];
    assert_eq!(letter.state, LetterState::Sent, "{letter:?}");
    assert_eq!(letter.document_type.as_deref(), Some("11490-0"));
    assert_eq!(letter.cda_level, Some(1));
    let message_id = letter.message_id.clone().unwrap();

    // The receiving hospital's engine reads its mailbox, validates, matches and files the
    // letter, and answers with the ANS MDN.
    let receiver_root = tmp.path().join("receiver");
    let mut rc = config(
        &receiver_root,
        vec![imap_source(&server, "dpi", &password)],
        vec![Sink::Folder {
            name: "dpi-folder".into(),
            path: receiver_root.join("out"),
        }],
        true,
    );
    rc.answers.smtp = Some(smtp(&server, server.ports().submission, "dpi", &password));
    let receiver = Engine::open(rc).await.unwrap();
    receiver
        .journal()
        .upsert_patient(&camille("IPP-42"))
        .await
        .unwrap();
    let s = receiver.run_once().await.unwrap();
    let received = receiver
        .journal()
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    let events = receiver
        .journal()
        .message_events(received[0].id)
        .await
        .unwrap();
    assert_eq!(
        (s.journaled, s.filed, s.answered),
        (1, 1, 1),
        "{s:?} {:?} {events:?}",
        received[0].last_error
    );
    assert_eq!(received[0].message_id.as_deref(), Some(message_id.as_str()));

    // The success DSN (Postfix) and the MDN (the receiver) flow back and are tracked.
    let deadline = Instant::now() + Duration::from_secs(30);
    let recipient = loop {
        let r = outbox.letter_recipients(letter.id).await.unwrap();
        let kinds = event_kinds(&outbox, letter.id).await;
        if (r[0].status == RecipientStatus::Read && kinds.iter().any(|k| k == "dsn"))
            || Instant::now() > deadline
        {
            break r[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kinds = event_kinds(&outbox, letter.id).await;
    assert_eq!(
        recipient.status,
        RecipientStatus::Read,
        "{recipient:?} {kinds:?}\n{}",
        server.logs()
    );
    assert!(kinds.contains(&"dsn".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"mdn".to_string()), "{kinds:?}");
    let dsn = outbox
        .letter_events(letter.id)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "dsn")
        .unwrap();
    assert_eq!(
        dsn.detail["recipients"][0]["status"], "delivered",
        "{dsn:?}"
    );
    // On the sending side, both reports are filed with a report_tracked event.
    let reports = sender
        .journal()
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    for m in &reports {
        assert_eq!(m.state, MessageState::Filed, "{m:?}");
        let kinds: Vec<String> = sender
            .journal()
            .message_events(m.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&"report_tracked".to_string()), "{kinds:?}");
    }
    let _ = stop_tx.send(true);
    daemon.await.unwrap().unwrap();
    // Sent once.
    assert_eq!(server.imap_uids("dpi", "Relais-Traites").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_go_to_error_with_their_reason_and_rpps_resolve_through_the_annuaire() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("sender");
    // A small fictional extraction of the Annuaire: RPPS 10999999001 has the dpi mailbox.
    let extract = tmp
        .path()
        .join("Extraction_Correspondance_MSSante_202601011200.txt");
    std::fs::write(
        &extract,
        format!(
            "{}\nPER|{}|8|10999999001|810999999001||||DR|MARTIN|Sophie|C|Civil|10|Médecin|SM26|Qualifié en Médecine Générale|O|CH FICTIF||||1||R|DES ESSAIS||99001 VILLE-FICTIVE|99001|99|99100\n",
            relais_annuaire::extract::published_header(),
            server.address("dpi")
        ),
    )
    .unwrap();
    let mut c = config(&root, vec![], vec![], false);
    let db = relais_annuaire::AnnuaireDb::open(relais_engine::outbound::annuaire_dir(&c.data_dir))
        .await
        .unwrap();
    db.import_extract(&extract).await.unwrap();
    db.close().await;
    c.outbound = outbound(&root, &server, server.ports().submission, &password);
    c.outbound.annuaire.extract = true;
    c.outbound.max_mail_bytes = 200_000;
    let engine = Engine::open(c).await.unwrap();
    let outbox = engine.outbound().unwrap().outbox().clone();
    let drop_dir = root.join("drop");
    let letter_pdf = pdf(&["Lettre de liaison"]);

    // A half-written drop (the metadata file not there yet, the PDF just written) is not taken.
    std::fs::write(drop_dir.join("half.pdf"), &letter_pdf[..100]).unwrap();
    let s = engine.outbound().unwrap().once().await.unwrap();
    assert!(s.is_empty(), "{s:?}");
    std::fs::write(drop_dir.join("half.pdf"), &letter_pdf).unwrap();
    std::fs::write(
        drop_dir.join("half.json"),
        intake_json(&["rpps:10999999001"], "half"),
    )
    .unwrap();
    let s = engine.outbound().unwrap().once().await.unwrap();
    assert_eq!(s.queued, 0, "not stable yet: {s:?}");
    assert_eq!(files_in(&drop_dir), ["half.json", "half.pdf"]);
    // Once stable it is taken; its recipient, given by RPPS, resolved through the extract.
    let s = take(&engine, Duration::from_secs(10)).await;
    assert_eq!((s.queued, s.sent), (1, 1), "{s:?}");
    let l = letters(&outbox).await.remove(0);
    let r = outbox.letter_recipients(l.id).await.unwrap();
    assert_eq!(r[0].resolved_by, ResolvedBy::Annuaire);
    assert_eq!(
        r[0].address.as_deref(),
        Some(server.address("dpi").as_str())
    );
    assert_eq!(r[0].status, RecipientStatus::Sent);
    server.wait_for_mail("dpi", "INBOX", 1, Duration::from_secs(20));

    // Refused drops: each in error/ with its reason, each journaled as a failed letter.
    let big = "X".repeat(80);
    let cases: [(&str, Vec<u8>, Vec<u8>, &str); 4] = [
        (
            "outside",
            letter_pdf.clone(),
            intake_json(&["dr.x@clinique-hors-liste.fr"], "outside"),
            "OUTBOUND-RECIPIENT-NOT-ALLOWED",
        ),
        (
            "unknown-rpps",
            letter_pdf.clone(),
            intake_json(&["rpps:10999999777"], "unknown"),
            "OUTBOUND-RPPS-UNKNOWN",
        ),
        (
            "not-a-pdf",
            b"PK\x03\x04 this is a zip".to_vec(),
            intake_json(&[&server.address("dpi")], "notpdf"),
            "OUTBOUND-NOT-PDF",
        ),
        (
            "too-large",
            pdf(&vec![big.as_str(); 4000]),
            intake_json(&[&server.address("dpi")], "large"),
            "OUTBOUND-TOO-LARGE",
        ),
    ];
    for (name, pdf_bytes, json, code) in &cases {
        drop_letter(&drop_dir, name, pdf_bytes, json);
        let s = take(&engine, Duration::from_secs(10)).await;
        assert_eq!(s.refused, 1, "{name}: {s:?}");
        let reason =
            std::fs::read_to_string(drop_dir.join("error").join(format!("{name}.reason.txt")))
                .unwrap_or_else(|e| panic!("{name}: no reason file: {e}"));
        assert!(reason.contains(code), "{name}: {reason}");
        let l = letters(&outbox).await.remove(0);
        assert_eq!(l.state, LetterState::Failed, "{name}");
        assert_eq!(l.last_error.as_ref().unwrap().code, *code, "{name}");
        // No patient data in what the reason says.
        for secret in ["279035121518989", "RELAIS-TEST", "CAMILLE"] {
            assert!(!reason.contains(secret), "{name}: {reason}");
        }
    }
    let errors = files_in(&drop_dir.join("error"));
    assert_eq!(errors.len(), 12, "{errors:?}");
    assert!(files_in(&drop_dir).is_empty());
    // Only the first letter reached the mailbox.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.imap_uids("dpi", "INBOX").len(), 1);
}

/// A TCP relay from a port of ours to `target`, started on demand: the "server" comes up.
async fn relay(listener: tokio::net::TcpListener, target: u16) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_down_then_up_sends_once_and_a_crash_in_flight_is_held_not_resent() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("sender");
    // A port with nothing behind it yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, port, &password);
    let engine = Engine::open(c).await.unwrap();
    let o = engine.outbound().unwrap();
    let outbox = o.outbox().clone();
    let dpi = server.address("dpi");
    drop_letter(
        &root.join("drop"),
        "down",
        &pdf(&["Lettre"]),
        &intake_json(&[&dpi], "down"),
    );
    let s = take(&engine, Duration::from_secs(10)).await;
    assert_eq!((s.queued, s.sent, s.retried), (1, 0, 1), "{s:?}");
    let l = letters(&outbox).await.remove(0);
    assert_eq!(l.state, LetterState::Queued);
    assert_eq!(l.last_error.as_ref().unwrap().code, "SMTP-CONNECT");

    // The server comes up: the letter goes at the next cycle after its retry delay, once.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(relay(listener, server.ports().submission));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = o.once().await.unwrap();
        if s.sent > 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let l = outbox.get_letter(l.id).await.unwrap().unwrap();
    assert_eq!((l.state, l.attempts), (LetterState::Sent, 2), "{l:?}");
    server.wait_for_mail("dpi", "INBOX", 1, Duration::from_secs(20));
    for _ in 0..3 {
        assert_eq!(o.once().await.unwrap().sent, 0);
    }

    // A crash between the claim and the end of the send: the letter is left in flight by a
    // worker that no longer runs. Restarted, the engine holds it for review; it never goes
    // out again on its own.
    drop_letter(
        &root.join("drop"),
        "crash",
        &pdf(&["Lettre 2"]),
        &intake_json(&[&dpi], "crash"),
    );
    // Take the drop without sending: the server looks down to this cycle.
    let held_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    drop(engine);
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, held_port, &password);
    let engine = Engine::open(c).await.unwrap();
    let o = engine.outbound().unwrap();
    let s = take(&engine, Duration::from_secs(10)).await;
    assert_eq!((s.queued, s.retried), (1, 1), "{s:?}");
    let crashed = letters(&outbox).await.remove(0);
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let ghost = format!("relais@{host}:{dead}");
    let outbox = o.outbox().clone();
    // The ghost worker claims it (after its retry delay) and marks it in flight, then dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        if let Some(l) = outbox
            .claim_letter(&ghost, Duration::from_secs(300))
            .await
            .unwrap()
        {
            break l;
        }
        assert!(Instant::now() < deadline, "the letter never became due");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(claimed.id, crashed.id);
    assert!(
        outbox
            .start_sending(claimed.id, &ghost, Duration::from_secs(300))
            .await
            .unwrap()
            .is_done()
    );
    drop(engine);
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, server.ports().submission, &password);
    let engine = Engine::open(c).await.unwrap();
    let o = engine.outbound().unwrap();
    let s = o.once().await.unwrap();
    assert_eq!((s.held, s.sent), (1, 0), "{s:?}");
    for _ in 0..3 {
        assert_eq!(o.once().await.unwrap().sent, 0);
    }
    let l = outbox.get_letter(crashed.id).await.unwrap().unwrap();
    assert_eq!(l.state, LetterState::HeldForReview);
    assert_eq!(
        l.last_error.as_ref().unwrap().code,
        "OUTBOUND-OUTCOME-UNKNOWN"
    );
    let kinds = event_kinds(&outbox, l.id).await;
    assert!(
        kinds.ends_with(&["claimed".into(), "sending".into(), "held_for_review".into()]),
        "{kinds:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.imap_uids("dpi", "INBOX").len(),
        1,
        "the held letter was not sent"
    );
}

/// A stop between the two renames of a drop's move leaves one file in the drop folder and its
/// partner in `done/`. At the next scan the file joins its partner: it is neither taken again as
/// a new letter nor left to become an orphan. A lone file that pairs with no journaled letter
/// (same name, other bytes) stays where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drop_whose_move_was_cut_short_is_finished_not_taken_again() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("sender");
    // Nothing listens there: letters stay queued, which is all this test needs.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, port, &password);
    let engine = Engine::open(c).await.unwrap();
    let o = engine.outbound().unwrap();
    let outbox = o.outbox().clone();
    let drop_dir = root.join("drop");
    let done = drop_dir.join("done");
    let dpi = server.address("dpi");
    let letter_pdf = pdf(&["Lettre interrompue"]);
    drop_letter(
        &drop_dir,
        "half",
        &letter_pdf,
        &intake_json(&[&dpi], "half"),
    );
    let s = take(&engine, Duration::from_secs(10)).await;
    assert_eq!(s.queued, 1, "{s:?}");
    assert_eq!(files_in(&done), ["half.json", "half.pdf"]);

    for (left_behind, kept) in [("half.json", "half.pdf"), ("half.pdf", "half.json")] {
        std::fs::rename(done.join(left_behind), drop_dir.join(left_behind)).unwrap();
        assert_eq!(files_in(&done), [kept]);
        // Past stable_secs (1 s), a few scans.
        for _ in 0..4 {
            let s = o.once().await.unwrap();
            assert_eq!((s.queued, s.refused, s.duplicates), (0, 0, 0), "{s:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(files_in(&drop_dir).is_empty(), "{:?}", files_in(&drop_dir));
        assert_eq!(files_in(&done), ["half.json", "half.pdf"]);
    }
    assert_eq!(letters(&outbox).await.len(), 1, "no second letter");

    // A new PDF under the same name, other bytes: not the journaled pair; it waits for its
    // metadata file like any incomplete drop.
    std::fs::write(drop_dir.join("half.pdf"), pdf(&["Autre lettre"])).unwrap();
    for _ in 0..4 {
        let s = o.once().await.unwrap();
        assert_eq!((s.queued, s.refused, s.duplicates), (0, 0, 0), "{s:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(files_in(&drop_dir), ["half.pdf"]);
    assert_eq!(files_in(&done), ["half.json", "half.pdf"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_mail_from_outside_the_liste_blanche_and_unmatched_reports_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = common::maildir(tmp.path(), &["mail/ldl-ses-n1.eml"]);
    // A DSN for a letter this Relais never sent.
    let dsn = "From: MAILER-DAEMON@operateur.test\r\nTo: service@ch-demo.mssante.fr\r\n\
Message-ID: <dsn-1@operateur.test>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; operateur.test\r\n\r\n\
Final-Recipient: rfc822; someone@elsewhere.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <never-sent@ch-demo.mssante.fr>\r\n\r\n\
--B--\r\n";
    std::fs::write(inbox.join("new/1700000099.dsn.relais-test"), dsn).unwrap();
    let lb = tmp.path().join("liste-blanche.txt");
    std::fs::write(&lb, "autre-hopital.mssante.fr\n").unwrap();
    let mut c = config(
        tmp.path(),
        vec![Source::Maildir {
            address: None,
            name: "inbox".into(),
            path: inbox,
            consume: true,
        }],
        vec![Sink::Folder {
            name: "out".into(),
            path: tmp.path().join("out"),
        }],
        false,
    );
    c.outbound.liste_blanche = Some(ListeBlancheSettings {
        path: lb,
        check_interval_secs: 60,
        enforce_on_intake: true,
    });
    let e = Engine::open(c).await.unwrap();
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.rejected, s.filed), (2, 2, 0), "{s:?}");
    let mut codes: Vec<String> = e
        .journal()
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.last_error.unwrap().code)
        .collect();
    codes.sort();
    assert_eq!(codes, ["MSS-REPORT-UNMATCHED", "MSS-SENDER-NOT-ALLOWED"]);
}
