//! The SMTP client against a real Postfix + Dovecot (relais-testsupport) with a test PKI shaped
//! like IGC-Santé: MDNs built by relais-mssante are submitted over STARTTLS + password and over
//! the client-certificate port, then read back from the recipient's Maildir and parsed again.
//! Each test writes to mailboxes of its own, so they run in parallel on one server.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use relais_core::Limits;
use relais_mssante::mdn::MdnDecision;
use relais_mssante::{MdnContext, MdnOutcome, ParsedMail, build_mdn, mdn_decision, parse_mail};
use relais_smtp::{
    ClientCertFiles, Credentials, DsnRequest, Security, SendOptions, SmtpConfig, SmtpError, Stage,
    codes, send, send_with,
};
use relais_testsupport::mailserver::{MailServer, MailServerOptions};

const USERS: &[&str] = &[
    "dpi", "starttls", "mtls", "partial", "refused", "dsnfrom", "dsnto",
];

fn server() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let t = Instant::now();
        let s = MailServer::start_with(MailServerOptions {
            users: USERS.iter().map(|u| u.to_string()).collect(),
            ..MailServerOptions::default()
        });
        eprintln!("postfix + dovecot started in {:?}", t.elapsed());
        s
    })
}

/// A server for the wrong-password test: after a failed login Dovecot (Postfix's SASL backend)
/// delays the next logins from the same address, which would slow the other tests down.
fn server_for_refusals() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        MailServer::start_with(MailServerOptions {
            users: vec!["badpw".into()],
            ..MailServerOptions::default()
        })
    })
}

fn submission(s: &MailServer, user: &str) -> SmtpConfig {
    let mut cfg = SmtpConfig::new(
        s.host(),
        s.ports().submission,
        Security::StartTls,
        vec![s.ca_pem().to_path_buf()],
    );
    cfg.auth = Some(Credentials {
        user: s.address(user),
        password: s.password().into(),
    });
    cfg.helo_name = "relais.hopital.test".into();
    cfg
}

fn mtls(s: &MailServer, user: &str) -> SmtpConfig {
    let mut cfg = SmtpConfig::new(
        s.host(),
        s.ports().smtp_mtls,
        Security::StartTls,
        vec![s.ca_pem().to_path_buf()],
    );
    cfg.client_cert = Some(ClientCertFiles {
        chain_pem: s.client_cert_pem(user).to_path_buf(),
        key_pem: s.client_key_pem(user).to_path_buf(),
    });
    cfg.helo_name = "relais.hopital.test".into();
    cfg
}

fn sample() -> Vec<u8> {
    let path = relais_testsupport::workspace_root().join("samples/mail/ldl-ses-n1.eml");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample mail, its MDN request pointed at a mailbox of the test server.
fn original_asking_mdn_to(addr: &str) -> Vec<u8> {
    let text = String::from_utf8(sample()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        skipping = line.starts_with("Disposition-Notification-To:");
        if !skipping {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Disposition-Notification-To: <{addr}>\r\n"));
    format!("{out}\r\n{body}").into_bytes()
}

fn read(raw: &[u8]) -> ParsedMail {
    parse_mail(raw, &Limits::default()).expect("a readable mail")
}

fn ctx(from: &str) -> MdnContext {
    let mut c = MdnContext::new(from, "Relais 0.1.0", "relais.hopital.test");
    c.date = UNIX_EPOCH + Duration::from_secs(1_741_792_200);
    c
}

/// Waits for `count` messages in the user's INBOX and returns their bytes (oldest first), with
/// CRLF line ends as on the wire (Dovecot's Maildir stores LF).
fn delivered(s: &MailServer, user: &str, count: usize) -> Vec<Vec<u8>> {
    s.wait_for_mail(user, "INBOX", count, Duration::from_secs(20));
    let mut files: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(s.maildir(user).join(d))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let stored = std::fs::read(p).unwrap();
            assert!(!stored.contains(&b'\r'), "Maildir files use LF");
            let mut wire = Vec::with_capacity(stored.len() + stored.len() / 40);
            for b in stored {
                if b == b'\n' {
                    wire.push(b'\r');
                }
                wire.push(b);
            }
            wire
        })
        .collect()
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default().parse(raw).expect("a mail")
}

fn raw_body<'a>(msg: &'a Message<'a>, i: usize) -> &'a [u8] {
    let p = &msg.parts[i];
    &msg.raw_message()[p.offset_body as usize..p.offset_end as usize]
}

/// Checks a delivered MDN against what was built, byte for byte below the headers the servers
/// added (Return-Path, Delivered-To, Received).
fn check_delivered_mdn(delivered: &[u8], built: &[u8], original: &[u8], disposition: &str) {
    assert!(
        delivered.ends_with(built),
        "the MDN arrives unchanged below the servers' trace headers"
    );
    let msg = parse(delivered);
    assert_eq!(msg.header_raw("Return-Path").map(str::trim), Some("<>"));
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(
        ct.attribute("report-type"),
        Some("disposition-notification")
    );
    let report = String::from_utf8(raw_body(&msg, 2).to_vec()).unwrap();
    assert!(
        report.contains(&format!("\r\nDisposition: {disposition}\r\n")),
        "{report}"
    );
    assert!(
        report.contains("Original-Message-ID: <ldl-ses-n1.20250312150500@ch-demo.mssante.fr>\r\n")
    );
    assert_eq!(raw_body(&msg, 3), original);
    match &msg.parts[3].body {
        PartType::Message(inner) => assert_eq!(inner.attachments().count(), 2),
        other => panic!("part 3 is not a mail: {other:?}"),
    }
    // Relais's own reader takes the delivered MDN, and would never answer it.
    let parsed = read(delivered);
    assert_eq!(
        mdn_decision(delivered, &parsed),
        MdnDecision::NotRequested,
        "an MDN asks for no MDN"
    );
}

#[tokio::test]
async fn processed_mdn_over_submission_with_starttls_and_password() {
    let s = server();
    let sender_platform = s.address("starttls");
    let original = original_asking_mdn_to(&sender_platform);
    let parsed = read(&original);
    assert_eq!(
        mdn_decision(&original, &parsed),
        MdnDecision::Send {
            to: sender_platform.clone()
        }
    );
    let built = build_mdn(
        &original,
        &parsed,
        MdnOutcome::Processed,
        &ctx(&s.address("dpi")),
    )
    .unwrap();

    let report = send(
        &submission(s, "dpi"),
        &built.envelope_from,
        &built.recipients,
        &built.raw,
    )
    .await
    .unwrap_or_else(|e| panic!("{} {e}\n{}", e.code(), s.logs()));
    assert_eq!(report.accepted, vec![sender_platform]);
    assert!(report.rejected.is_empty());
    assert_eq!(report.reply.code, 250);
    assert_eq!(report.reply.enhanced.as_deref(), Some("2.0.0"));
    assert!(
        report.reply.text.contains("queued as"),
        "{:?}",
        report.reply
    );
    assert_eq!(report.tls.protocol, "TLSv1_3");
    assert!(!report.tls.client_cert_sent);
    assert!(!report.dsn_requested);
    assert_eq!(report.size, built.raw.len());
    assert_eq!(report.server, "mail.hopital.test");

    let mails = delivered(s, "starttls", 1);
    assert_eq!(mails.len(), 1);
    check_delivered_mdn(
        &mails[0],
        &built.raw,
        &original,
        "automatic-action/MDN-sent-automatically; processed",
    );
    let msg = parse(&mails[0]);
    assert_eq!(msg.message_id(), Some(built.message_id.as_str()));
    assert_eq!(
        msg.subject(),
        Some("XDM/1.0/DDM+Lettre de liaison RELAIS-TEST CAMILLE 19790315")
    );
}

#[tokio::test]
async fn error_mdn_over_the_client_certificate_port() {
    let s = server();
    let sender_platform = s.address("mtls");
    let original = original_asking_mdn_to(&sender_platform);
    let parsed = read(&original);
    let outcome = MdnOutcome::ans_error("902").unwrap();
    let built = build_mdn(&original, &parsed, outcome, &ctx(&s.address("dpi"))).unwrap();

    let report = send(
        &mtls(s, "dpi"),
        &built.envelope_from,
        &built.recipients,
        &built.raw,
    )
    .await
    .unwrap_or_else(|e| panic!("{} {e}\n{}", e.code(), s.logs()));
    assert!(report.tls.client_cert_requested && report.tls.client_cert_sent);
    assert_eq!(report.accepted, vec![sender_platform]);

    let mails = delivered(s, "mtls", 1);
    check_delivered_mdn(
        &mails[0],
        &built.raw,
        &original,
        "automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu",
    );
    let msg = parse(&mails[0]);
    assert_eq!(
        msg.subject(),
        Some(
            "[KO Intégration système !][902] XDM/1.0/DDM+Lettre de liaison RELAIS-TEST CAMILLE 19790315"
        )
    );
    // The server saw the certificate (Postfix writes its verification in the Received header).
    let received = msg.header_raw("Received").unwrap_or_default();
    assert!(
        received.contains("client-signature") || received.contains("verified OK"),
        "{received}"
    );
}

#[tokio::test]
async fn the_client_certificate_port_refuses_a_client_without_certificate() {
    let s = server();
    let mut cfg = mtls(s, "dpi");
    cfg.client_cert = None;
    let to = vec![s.address("refused")];
    let err = send(&cfg, &s.address("dpi"), &to, b"Subject: x\r\n\r\nx\r\n")
        .await
        .expect_err("no certificate, no mail");
    // Postfix completes the handshake without a certificate, then answers EHLO with
    // "421 4.7.1 ... No client certificate presented": a 4xx reply, but nothing a retry fixes.
    assert_eq!(err.code(), codes::TLS_CLIENT_CERT_REFUSED, "{err}");
    assert!(
        err.to_string().contains("none was sent") && err.to_string().contains("421 4.7.1"),
        "{err}"
    );
    assert!(!err.is_transient(), "{err}");
}

#[tokio::test]
async fn an_untrusted_ca_fails_with_the_tls_code() {
    let s = server();
    let mut cfg = submission(s, "dpi");
    cfg.ca_pem_files = vec![s.pki().other_root_ca.clone()];
    let to = vec![s.address("refused")];
    let err = send(&cfg, &s.address("dpi"), &to, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TLS_UNTRUSTED, "{err}");
    assert!(err.to_string().contains("ca_pem_files"), "{err}");
    assert!(!err.is_transient());

    // The right CA but a name the certificate does not hold.
    let mut cfg = submission(s, "dpi");
    cfg.tls_server_name = Some("smtp.ailleurs.test".into());
    let err = send(&cfg, &s.address("dpi"), &to, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TLS_NAME_MISMATCH, "{err}");
}

#[tokio::test]
async fn implicit_tls_on_a_clear_text_port_is_reported_as_not_tls() {
    let s = server();
    let mut cfg = submission(s, "dpi");
    cfg.security = Security::ImplicitTls;
    cfg.port = s.ports().smtp;
    let to = vec![s.address("refused")];
    let err = send(&cfg, &s.address("dpi"), &to, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TLS_NOT_TLS, "{err}");
    assert!(err.to_string().contains("StartTls"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_fails_with_smtp_auth() {
    let s = server_for_refusals();
    let mut cfg = submission(s, "badpw");
    cfg.auth = Some(Credentials {
        user: s.address("badpw"),
        password: "not-the-password".into(),
    });
    let to = vec![s.address("badpw")];
    let err = send(&cfg, &s.address("badpw"), &to, b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::AUTH, "{err}");
    let reply = err.reply().expect("the server's reply");
    assert_eq!(reply.code, 535, "{reply}");
    assert!(!err.is_transient());
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("badpw@hopital.test") && !shown.contains("not-the-password"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_rejected_recipient_gives_smtp_rejected_with_the_code() {
    let s = server();
    let cfg = submission(s, "dpi");
    let unknown = s.address("personne");
    let mail = b"From: <dpi@hopital.test>\r\nTo: <personne@hopital.test>\r\nSubject: x\r\nMessage-ID: <r1@hopital.test>\r\n\r\nx\r\n";
    let err = send(
        &cfg,
        &s.address("dpi"),
        std::slice::from_ref(&unknown),
        mail,
    )
    .await
    .unwrap_err();
    match &err {
        SmtpError::Rejected { stage, reply, .. } => {
            assert_eq!(*stage, Stage::RcptTo);
            assert_eq!(reply.code, 550, "{reply}");
            assert_eq!(reply.enhanced.as_deref(), Some("5.1.1"), "{reply}");
            assert!(reply.text.contains("User unknown"), "{reply}");
        }
        other => panic!("{} {other}", other.code()),
    }
    assert_eq!(err.code(), codes::REJECTED);
    assert!(!err.is_transient());
    assert!(err.to_string().contains("550 5.1.1"), "{err}");
}

#[tokio::test]
async fn refused_recipients_are_reported_and_the_others_get_the_mail() {
    let s = server();
    let cfg = submission(s, "dpi");
    let to = vec![s.address("personne"), s.address("partial")];
    let mail = b"From: <dpi@hopital.test>\r\nTo: <partial@hopital.test>\r\nSubject: partial\r\nMessage-ID: <p1@hopital.test>\r\n\r\n.leading dot\r\n..two\r\nend\n";
    let report = send(&cfg, &s.address("dpi"), &to, mail).await.unwrap();
    assert_eq!(report.accepted, vec![s.address("partial")]);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].recipient, s.address("personne"));
    assert_eq!(report.rejected[0].reply.code, 550);
    let mails = delivered(s, "partial", 1);
    assert!(
        mails[0].ends_with(b"\r\n\r\n.leading dot\r\n..two\r\nend\r\n"),
        "dot-stuffing undone by the server, bare LF sent as CRLF: {:?}",
        String::from_utf8_lossy(&mails[0])
    );
}

#[tokio::test]
async fn a_dsn_request_brings_back_a_delivery_report_with_the_envid() {
    let s = server();
    let cfg = submission(s, "dsnfrom");
    let envid = "relais-envid+42=test";
    let opts = SendOptions {
        dsn: Some(DsnRequest::success_and_failure(envid)),
        require_dsn: true,
    };
    let to = vec![s.address("dsnto")];
    let mail = b"From: <dsnfrom@hopital.test>\r\nTo: <dsnto@hopital.test>\r\nSubject: document\r\nMessage-ID: <d1@hopital.test>\r\n\r\nx\r\n";
    let report = send_with(&cfg, &s.address("dsnfrom"), &to, mail, &opts)
        .await
        .unwrap();
    assert!(report.dsn_requested);
    delivered(s, "dsnto", 1);

    // NOTIFY=SUCCESS: Postfix reports the delivery to the envelope sender.
    let dsns = delivered(s, "dsnfrom", 1);
    let dsn = parse(&dsns[0]);
    let ct = dsn.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let text = String::from_utf8_lossy(&dsns[0]);
    assert!(
        text.contains(&format!("Original-Envelope-Id: {envid}")),
        "ENVID comes back (xtext-decoded by the server): {text}"
    );
    assert!(
        text.contains("Original-Recipient: rfc822;dsnto@hopital.test"),
        "ORCPT comes back: {text}"
    );
    assert!(
        text.contains("Action: delivered") || text.contains("Action: relayed"),
        "{text}"
    );
    // RET=HDRS: the returned part holds the headers only.
    assert!(text.contains("text/rfc822-headers"), "{text}");
}

#[tokio::test]
async fn bad_addresses_are_refused_before_connecting() {
    let cfg = SmtpConfig::new(
        "127.0.0.1",
        9,
        Security::StartTls,
        vec![PathBuf::from("/x")],
    );
    for (from, to) in [
        ("dpi@hopital.test", vec![]),
        ("dpi@hopital.test>\r\nRSET", vec!["a@b.fr".to_string()]),
        ("dpi@hopital.test", vec!["a@b.fr> NOTIFY=NEVER".to_string()]),
    ] {
        let err = send(&cfg, from, &to, b"x").await.unwrap_err();
        assert_eq!(err.code(), codes::ADDRESS, "{err}");
        assert!(!err.to_string().contains("RSET"), "{err}");
    }
}

#[tokio::test]
async fn configuration_files_are_checked() {
    let s = server();
    let to = vec![s.address("refused")];
    let mut cfg = submission(s, "dpi");
    cfg.ca_pem_files = vec![];
    assert_eq!(
        send(&cfg, "", &to, b"x").await.unwrap_err().code(),
        codes::CONFIG
    );
    cfg.ca_pem_files = vec![PathBuf::from("/nonexistent/ca.pem")];
    assert_eq!(
        send(&cfg, "", &to, b"x").await.unwrap_err().code(),
        codes::CA_FILE
    );
    let mut cfg = mtls(s, "dpi");
    cfg.client_cert = Some(ClientCertFiles {
        chain_pem: s.client_cert_pem("dpi").to_path_buf(),
        key_pem: s.client_key_pem("mtls").to_path_buf(),
    });
    let err = send(&cfg, "", &to, b"x").await.unwrap_err();
    assert_eq!(err.code(), codes::CLIENT_CERT_FILE, "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");
}
