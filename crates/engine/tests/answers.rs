//! Answering senders, end to end with real servers: mails sent through Postfix into the
//! Dovecot mailbox of the DPI are read over IMAP and processed; the engine then answers through
//! Postfix's submission port (STARTTLS + login): the ANS MDN to the sender that asked for one
//! (processed, or the KO form with the error code), and an error report to the configured
//! mailbox for a failure whose sender asked nothing. Each outcome is answered once.

mod common;

use common::{camille, config, sample};
use relais_engine::Engine;
use relais_engine::config::{Answers, ImapSecurity, Sink, SmtpSecurity, SmtpSettings, Source};
use relais_store::{MessageFilter, MessageState, event_kinds};
use relais_testsupport::mailserver::MailServer;
use std::path::Path;
use std::time::Duration;

/// The sample mail with its sender (`From`, and `Disposition-Notification-To` when `mdn`)
/// changed to `sender`; without `mdn`, no MDN is asked.
fn from_sender(raw: &[u8], sender: &str, mdn: bool) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).expect("sample mails are UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("header block");
    let mut out = String::new();
    let mut skipping = false;
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if !skipping {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        skipping = name == "from" || name == "disposition-notification-to";
        if !skipping {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("From: <{sender}>\r\n"));
    if mdn {
        out.push_str(&format!("Disposition-Notification-To: <{sender}>\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// Every mail in a user's Maildir (new and cur), as text.
fn mails_of(server: &MailServer, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(server.maildir(user).join(sub)) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    out
}

fn source(server: &MailServer, password: &Path) -> Source {
    Source::Imap {
        address: None,
        name: "bal-dpi".into(),
        host: server.host(),
        port: server.ports().imaps,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("dpi")),
        password_file: Some(password.to_path_buf()),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mdn_and_error_report_reach_their_mailboxes_once() {
    let server = MailServer::start();
    let labo = server.address("labo");
    let filed = from_sender(&sample("mail/ldl-ses-n1.eml"), &labo, true);
    let rejected = from_sender(&sample("invalid/xdm-hash-mismatch.eml"), &labo, true);
    let silent = from_sender(&sample("invalid/xdm-patientid-mismatch.eml"), &labo, false);
    for raw in [&filed, &rejected, &silent] {
        server.send_smtp(&labo, &["dpi"], raw).unwrap();
    }
    server.wait_for_mail("dpi", "INBOX", 3, Duration::from_secs(20));

    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, server.password()).unwrap();
    let mut c = config(
        tmp.path(),
        vec![source(&server, &password)],
        vec![Sink::Folder {
            name: "out".into(),
            path: tmp.path().join("out"),
        }],
        true,
    );
    c.answers = Answers {
        error_mailbox: Some(server.address("secretariat")),
        smtp: Some(SmtpSettings {
            host: server.host(),
            port: server.ports().submission,
            security: SmtpSecurity::Starttls,
            ca_files: vec![server.ca_pem().to_path_buf()],
            client_cert: None,
            client_key: None,
            user: Some(server.address("dpi")),
            password_file: Some(password.clone()),
            helo_name: None,
            tls_server_name: None,
        }),
        ..Answers::default()
    };
    let e = Engine::open(c).await.unwrap();
    e.journal()
        .upsert_patient(&camille("IPP-42"))
        .await
        .unwrap();
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.filed, s.rejected), (3, 1, 2), "{s:?}");
    assert_eq!(s.answered, 3, "two MDNs sent, one error report: {s:?}");

    let to_labo = server.wait_for_mail("labo", "INBOX", 2, Duration::from_secs(20));
    assert_eq!(to_labo.len(), 2);
    let to_secretariat = server.wait_for_mail("secretariat", "INBOX", 1, Duration::from_secs(20));
    assert_eq!(to_secretariat.len(), 1);

    let mdns = mails_of(&server, "labo");
    let ok = mdns
        .iter()
        .find(|m| m.contains("In-Reply-To: <ldl-ses-n1."))
        .expect("MDN for the filed letter");
    assert!(ok.contains("multipart/report"), "{ok}");
    assert!(
        ok.lines()
            .any(|l| l.trim_end()
                == "Disposition: automatic-action/MDN-sent-automatically; processed"),
        "{ok}"
    );
    assert!(!ok.contains("KO Int"), "{ok}");
    let ko = mdns
        .iter()
        .find(|m| m.contains("In-Reply-To: <xdm-hash-mismatch."))
        .expect("MDN for the rejected mail");
    assert!(
        ko.contains("processed/Error: 906^Erreur 'Autre' : XDM-HASH-MISMATCH"),
        "{ko}"
    );
    // The subject starts with the ANS marker (encoded, it has an accent).
    let subject = mail_parser::MessageParser::default()
        .parse(ko.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap();
    assert!(
        subject.starts_with("[KO Intégration système !][906]"),
        "{subject}"
    );
    let report = &mails_of(&server, "secretariat")[0];
    assert!(report.contains("xdm-patientid-mismatch."), "{report}");
    assert!(
        report.contains("Auto-Submitted: auto-generated"),
        "{report}"
    );

    // The journal says what was sent, and nothing is sent again.
    let all = e
        .journal()
        .list_messages(&MessageFilter {
            limit: 10,
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    for m in &all {
        let kinds: Vec<String> = e
            .journal()
            .message_events(m.id)
            .await
            .unwrap()
            .into_iter()
            .map(|ev| ev.kind)
            .collect();
        assert!(
            kinds.contains(&event_kinds::ANSWER_SENT.to_string()),
            "message {} ({}): {kinds:?}",
            m.id,
            m.state
        );
    }
    assert!(all.iter().any(|m| m.state == MessageState::Filed));
    let s = e.run_once().await.unwrap();
    assert_eq!(s.answered, 0, "{s:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.imap_uids("labo", "INBOX").len(), 2);
    assert_eq!(server.imap_uids("secretariat", "INBOX").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_wait_while_smtp_is_down_then_go() {
    let server = MailServer::start();
    let labo = server.address("labo");
    let filed = from_sender(&sample("mail/ldl-ses-n1.eml"), &labo, true);
    server.send_smtp(&labo, &["dpi"], &filed).unwrap();
    server.wait_for_mail("dpi", "INBOX", 1, Duration::from_secs(20));
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, server.password()).unwrap();
    let smtp = |port: u16| SmtpSettings {
        host: server.host(),
        port,
        security: SmtpSecurity::Starttls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("dpi")),
        password_file: Some(password.clone()),
        helo_name: None,
        tls_server_name: None,
    };
    let make = |port: u16| {
        let mut c = config(
            tmp.path(),
            vec![source(&server, &password)],
            vec![Sink::Folder {
                name: "out".into(),
                path: tmp.path().join("out"),
            }],
            true,
        );
        c.answers.smtp = Some(smtp(port));
        c
    };
    // A port nobody listens on: the answer stays due, the mail is filed all the same.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    {
        let e = Engine::open(make(dead_port)).await.unwrap();
        e.journal()
            .upsert_patient(&camille("IPP-42"))
            .await
            .unwrap();
        let s = e.run_once().await.unwrap();
        assert_eq!((s.filed, s.answered), (1, 0), "{s:?}");
        assert_eq!(e.journal().answers_due(10).await.unwrap().len(), 1);
    }
    // The server is reachable again (here: the right port after a restart): the MDN goes.
    let e = Engine::open(make(server.ports().submission)).await.unwrap();
    let s = e.run_once().await.unwrap();
    assert_eq!(s.answered, 1, "{s:?}");
    server.wait_for_mail("labo", "INBOX", 1, Duration::from_secs(20));
    assert!(e.journal().answers_due(10).await.unwrap().is_empty());
}
