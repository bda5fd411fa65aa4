//! The IMAP client against a real Dovecot (started by relais-testsupport) with a test PKI shaped
//! like IGC-Santé. Each test uses its own mailbox, so they run in parallel on one server.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use relais_imap::{
    Auth, ClientCertFiles, Fetched, IdleOutcome, ImapConfig, ImapError, MoveMethod, Security,
    StepKind, StepStatus, TlsProblem, codes, connect, test_connection,
};
use relais_testsupport::mailserver::{MailServer, MailServerOptions};

const USERS: &[&str] = &[
    "tls", "starttls", "report", "fetch", "since", "move", "idle", "uidv", "mtls", "many",
];

fn server() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let t = Instant::now();
        let s = MailServer::start_with(MailServerOptions {
            users: USERS.iter().map(|u| u.to_string()).collect(),
            postfix: false,
            ..MailServerOptions::default()
        });
        eprintln!("dovecot (with MOVE) started in {:?}", t.elapsed());
        s
    })
}

/// A server for wrong-password attempts: after a failed login Dovecot delays the next logins from
/// the same address by 2 s or more (its auth penalty), which would slow the other tests down.
fn server_for_refusals() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        MailServer::start_with(MailServerOptions {
            users: vec!["badpw".into()],
            postfix: false,
            ..MailServerOptions::default()
        })
    })
}

/// A second server whose IMAP capabilities leave MOVE out.
fn server_without_move() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        MailServer::start_with(MailServerOptions {
            users: vec!["nomove".into()],
            postfix: false,
            imap_without: vec!["MOVE".into()],
            ..MailServerOptions::default()
        })
    })
}

/// A third one without MOVE, UIDPLUS and IDLE (an old or minimal server).
fn minimal_server() -> &'static MailServer {
    static SERVER: OnceLock<MailServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        MailServer::start_with(MailServerOptions {
            users: vec!["minimal".into(), "poll".into()],
            postfix: false,
            imap_without: vec!["MOVE".into(), "UIDPLUS".into(), "IDLE".into()],
            ..MailServerOptions::default()
        })
    })
}

fn config_for(server: &MailServer, user: &str, security: Security) -> ImapConfig {
    let port = match security {
        Security::Tls => server.ports().imaps,
        Security::StartTls => server.ports().imap,
    };
    ImapConfig::new(
        server.host(),
        port,
        security,
        vec![server.ca_pem().to_path_buf()],
        Auth::Password {
            user: server.address(user),
            password: server.password().to_string(),
        },
    )
}

fn config(user: &str) -> ImapConfig {
    config_for(server(), user, Security::Tls)
}

fn client_cert(server: &MailServer, user: &str) -> ClientCertFiles {
    ClientCertFiles {
        cert_chain_pem: server.client_cert_pem(user).to_path_buf(),
        key_pem: server.client_key_pem(user).to_path_buf(),
    }
}

fn mail(id: &str) -> Vec<u8> {
    format!(
        "From: labo@hopital.test\r\nTo: dest@hopital.test\r\nSubject: test {id}\r\n\
         Message-ID: <{id}@relais.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu {id}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn implicit_tls_with_password() {
    let t = Instant::now();
    let mut session = connect(&config("tls")).await.expect("connect over TLS");
    eprintln!("connect (TLS + LOGIN): {:?}", t.elapsed());
    let caps = session.capabilities();
    assert!(caps.idle && caps.move_command && caps.uidplus, "{caps:?}");
    let st = session.select().await.unwrap();
    assert_eq!(st.exists, 0);
    assert!(st.uid_validity > 0);
    assert_eq!(st.uid_next, Some(1));
    session.logout().await.unwrap();
}

#[tokio::test]
async fn starttls_with_password() {
    let s = server();
    let cfg = config_for(s, "starttls", Security::StartTls);
    let (result, report) = relais_imap::connect_with_report(&cfg).await;
    let mut session = result.unwrap_or_else(|e| panic!("{e}\n{report}"));
    let kinds: Vec<StepKind> = report.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds[..5],
        [
            StepKind::Configuration,
            StepKind::Tcp,
            StepKind::Greeting,
            StepKind::StartTls,
            StepKind::TlsHandshake
        ]
    );
    session.select().await.unwrap();
    session.logout().await.unwrap();

    // Implicit TLS on the STARTTLS port: the clear-text greeting is not TLS.
    let mut wrong = cfg.clone();
    wrong.security = Security::Tls;
    let err = connect(&wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            ImapError::Tls {
                problem: TlsProblem::NotTls,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("StartTls"), "{err}");

    // STARTTLS on the implicit-TLS port: the handshake cannot even start.
    let mut wrong = cfg.clone();
    wrong.port = s.ports().imaps;
    wrong.timeouts.handshake = Duration::from_millis(500);
    let err = connect(&wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            ImapError::Timeout { .. }
                | ImapError::ConnectionLost { .. }
                | ImapError::Protocol { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn untrusted_ca_is_refused_with_a_clear_tls_error() {
    let s = server();
    let mut cfg = config("tls");
    cfg.ca_pem_files = vec![s.pki().other_root_ca.clone()];
    let err = connect(&cfg).await.unwrap_err();
    match &err {
        ImapError::Tls {
            problem: TlsProblem::UntrustedServerCertificate,
            ..
        } => {}
        other => panic!("expected an untrusted-certificate error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("server certificate not trusted: unknown issuer"),
        "{msg}"
    );
    assert!(msg.contains("ca_pem_files"), "{msg}");
    assert_eq!(err.code(), codes::TLS_UNTRUSTED);

    let report = test_connection(&cfg).await;
    let failed = report.failed_step().expect("a failed step");
    assert_eq!(failed.kind, StepKind::ServerCertificate, "{report}");
    assert_eq!(failed.code, Some(codes::TLS_UNTRUSTED));

    // The intermediate alone is not a trust anchor that the server chain ends at... but it is
    // accepted by webpki as an anchor, which is the usual "CA bundle with intermediates" case.
    cfg.ca_pem_files = vec![s.pki().intermediate_ca.clone()];
    connect(&cfg)
        .await
        .expect("intermediate CA as anchor")
        .logout()
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_server_name_is_refused() {
    let mut cfg = config("tls");
    cfg.tls_server_name = Some("imap.elsewhere.test".into());
    let err = connect(&cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            ImapError::Tls {
                problem: TlsProblem::ServerNameMismatch,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("tls_server_name"), "{err}");
    // A name the certificate holds works even when connecting by IP.
    cfg.tls_server_name = Some("mail.hopital.test".into());
    connect(&cfg).await.unwrap().logout().await.unwrap();
}

#[tokio::test]
async fn client_certificate_required_refused_without_accepted_with() {
    let s = server();
    let mut cfg = config("mtls");
    cfg.port = s.ports().imaps_mtls;

    // Without a certificate.
    let t = Instant::now();
    let err = connect(&cfg).await.unwrap_err();
    eprintln!(
        "mTLS without certificate refused in {:?}: {err}",
        t.elapsed()
    );
    assert!(
        matches!(
            err,
            ImapError::ClientCertificateRequired { .. }
                | ImapError::Tls {
                    problem: TlsProblem::ClientCertificateRefused,
                    ..
                }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("client_cert"), "{err}");
    let report = test_connection(&cfg).await;
    let cc = report
        .step(StepKind::ClientCertificate)
        .expect("client cert step");
    assert!(
        cc.message
            .contains("requested by the server, none configured"),
        "{report}"
    );
    assert!(!report.is_ok());

    // Certificate + password (the applicative mailbox case).
    cfg.client_cert = Some(client_cert(s, "mtls"));
    let report = test_connection(&cfg).await;
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.step(StepKind::ClientCertificate).unwrap().message,
        "requested by the server and sent"
    );
    let mut session = connect(&cfg).await.unwrap();
    session.select().await.unwrap();
    session.logout().await.unwrap();

    // SASL EXTERNAL: the certificate is the credential.
    let mut ext = cfg.clone();
    ext.auth = Auth::External { authzid: None };
    let mut session = connect(&ext).await.expect("AUTHENTICATE EXTERNAL");
    session.select().await.unwrap();
    session.logout().await.unwrap();

    // A revoked certificate is refused (Dovecot checks the CRLs).
    let mut revoked = cfg.clone();
    revoked.client_cert = Some(client_cert(s, "revoked"));
    let err = connect(&revoked).await.unwrap_err();
    assert!(
        matches!(
            err,
            ImapError::ClientCertificateRequired { .. }
                | ImapError::Tls {
                    problem: TlsProblem::ClientCertificateRefused,
                    ..
                }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not accepted")
            || err.to_string().contains("refused the client certificate"),
        "{err}"
    );

    // The password-only listener does not ask for a certificate: a configured one is not sent.
    let mut plain = config("mtls");
    plain.client_cert = Some(client_cert(s, "mtls"));
    let report = test_connection(&plain).await;
    assert!(report.is_ok(), "{report}");
    let step = report.step(StepKind::ClientCertificate).unwrap();
    assert_eq!(step.status, StepStatus::Warning);
}

#[tokio::test]
async fn test_connection_reports_each_step_and_the_failing_one() {
    let s = server();
    let t = Instant::now();
    let report = test_connection(&config("report")).await;
    eprintln!("test_connection: {:?}\n{report}", t.elapsed());
    assert!(report.is_ok(), "{report}");
    let kinds: Vec<StepKind> = report.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Configuration,
            StepKind::Tcp,
            StepKind::TlsHandshake,
            StepKind::ServerCertificate,
            StepKind::ClientCertificate,
            StepKind::Greeting,
            StepKind::Login,
            StepKind::Capabilities,
            StepKind::Select,
            StepKind::Folders,
        ]
    );
    // The folders do not exist yet: a warning, not a failure.
    assert_eq!(
        report.step(StepKind::Folders).unwrap().status,
        StepStatus::Warning
    );
    let text = report.to_string();
    assert!(
        text.contains("[ok  ] Server certificate: chain of 2 certificate(s) verified"),
        "{text}"
    );

    // Wrong password: the Login step fails, with the server's answer.
    let refusals = server_for_refusals();
    let mut cfg = config_for(refusals, "badpw", Security::Tls);
    cfg.auth = Auth::Password {
        user: refusals.address("badpw"),
        password: "not-the-password".into(),
    };
    let report = test_connection(&cfg).await;
    let failed = report.failed_step().unwrap();
    assert_eq!(failed.kind, StepKind::Login, "{report}");
    assert_eq!(failed.code, Some(codes::AUTH_FAILED));
    assert!(
        failed.message.contains("badpw@hopital.test"),
        "{}",
        failed.message
    );
    assert!(
        !failed.message.contains("not-the-password"),
        "password leaked"
    );
    assert_eq!(report.steps.last().unwrap().kind, StepKind::Login);

    // Nothing listens: the TCP step fails.
    let mut cfg = config("report");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.port = closed.local_addr().unwrap().port();
    drop(closed);
    let report = test_connection(&cfg).await;
    assert_eq!(
        report.failed_step().unwrap().kind,
        StepKind::Tcp,
        "{report}"
    );
    assert_eq!(report.failed_step().unwrap().code, Some(codes::CONNECT));

    // Unreadable CA file / EXTERNAL without certificate: the configuration step fails.
    let mut cfg = config("report");
    cfg.ca_pem_files = vec![PathBuf::from("/nonexistent/ca.pem")];
    let report = test_connection(&cfg).await;
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.failed_step().unwrap().code, Some(codes::CA_FILE));
    let mut cfg = config("report");
    cfg.auth = Auth::External { authzid: None };
    let err = connect(&cfg).await.unwrap_err();
    assert_eq!(err.code(), codes::CONFIG);
    // A CA "file" that holds no certificate.
    let mut cfg = config("report");
    cfg.ca_pem_files = vec![s.client_key_pem("report").to_path_buf()];
    let err = connect(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    // A key that does not match the certificate.
    let mut cfg = config("report");
    cfg.client_cert = Some(ClientCertFiles {
        cert_chain_pem: s.client_cert_pem("report").to_path_buf(),
        key_pem: s.client_key_pem("tls").to_path_buf(),
    });
    let err = connect(&cfg).await.unwrap_err();
    assert_eq!(err.code(), codes::CLIENT_CERT_FILE, "{err}");
}

#[tokio::test]
async fn fetch_by_uid_after_lmtp_delivery_does_not_set_seen() {
    let s = server();
    s.deliver_lmtp("fetch", &mail("f1"));
    s.deliver_lmtp("fetch", &mail("f2"));
    let mut session = connect(&config("fetch")).await.unwrap();
    let err = session.uids_since(0).await.unwrap_err();
    assert_eq!(err.code(), codes::NOT_SELECTED);
    let st = session.select().await.unwrap();
    assert_eq!(st.exists, 2);
    let uids = session.uids_since(0).await.unwrap();
    assert_eq!(uids, s.imap_uids("fetch", "INBOX"));
    assert_eq!(uids.len(), 2);
    let t = Instant::now();
    let body = session.fetch(uids[1]).await.unwrap().expect("message");
    eprintln!("fetch one message: {:?}", t.elapsed());
    let text = String::from_utf8(body).unwrap();
    // Dovecot prepends Return-Path/Delivered-To/Received; the message itself is intact.
    assert!(
        text.ends_with(&String::from_utf8(mail("f2")).unwrap()),
        "{text}"
    );
    assert!(session.fetch(9999).await.unwrap().is_none());

    let flags = s.doveadm(&[
        "fetch",
        "-u",
        &s.address("fetch"),
        "flags",
        "mailbox",
        "INBOX",
        "uid",
        &uids[1].to_string(),
    ]);
    assert!(
        !flags.contains("\\Seen"),
        "fetch must not set \\Seen: {flags}"
    );

    session.logout().await.unwrap();
    let mut small = config("fetch");
    small.max_message_bytes = 10;
    let mut session = connect(&small).await.unwrap();
    session.select().await.unwrap();
    let err = session.fetch(uids[0]).await.unwrap_err();
    assert_eq!(err.code(), codes::MESSAGE_TOO_LARGE, "{err}");
    // The session is still usable after a refused fetch.
    assert_eq!(session.uids_since(0).await.unwrap(), uids);
}

/// Many messages in two commands: bodies in the order asked, the one over the size limit
/// refused without download, a UID that is not there reported gone, `\Seen` left alone.
#[tokio::test]
async fn fetch_many_answers_each_uid_in_two_commands() {
    let s = server();
    let big = {
        let mut m = mail("big");
        m.extend(std::iter::repeat_n(b'x', 4000));
        m.extend_from_slice(b"\r\n");
        m
    };
    s.deliver_lmtp("many", &mail("a"));
    s.deliver_lmtp("many", &big);
    s.deliver_lmtp("many", &mail("c"));
    let mut cfg = config("many");
    cfg.max_message_bytes = 3000;
    let mut session = connect(&cfg).await.unwrap();
    session.select().await.unwrap();
    let uids = session.uids_since(0).await.unwrap();
    assert_eq!(uids.len(), 3);
    let asked = [uids[2], 9999, uids[0], uids[1]];
    let got = session.fetch_many(&asked).await.unwrap();
    assert_eq!(
        got.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        asked.to_vec()
    );
    let body = |f: &Fetched| match f {
        Fetched::Body(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(body(&got[0].1).ends_with(&String::from_utf8(mail("c")).unwrap()));
    assert_eq!(got[1].1, Fetched::Gone);
    assert!(body(&got[2].1).ends_with(&String::from_utf8(mail("a")).unwrap()));
    assert!(
        matches!(got[3].1, Fetched::TooLarge { size, limit: 3000 } if size > 4000),
        "{:?}",
        got[3].1
    );
    assert!(session.fetch_many(&[]).await.unwrap().is_empty());
    let flags = s.doveadm(&[
        "fetch",
        "-u",
        &s.address("many"),
        "flags",
        "mailbox",
        "INBOX",
        "all",
    ]);
    assert!(!flags.contains("\\Seen"), "{flags}");
    session.logout().await.unwrap();
}

#[tokio::test]
async fn uids_since_returns_only_newer_uids() {
    let s = server();
    for i in 0..3 {
        s.deliver_lmtp("since", &mail(&format!("s{i}")));
    }
    let mut session = connect(&config("since")).await.unwrap();
    session.select().await.unwrap();
    assert_eq!(session.uids_since(0).await.unwrap(), vec![1, 2, 3]);
    assert_eq!(session.uids_since(1).await.unwrap(), vec![2, 3]);
    // "4:*" matches the last message on the wire; it must not come back.
    assert_eq!(session.uids_since(3).await.unwrap(), Vec::<u32>::new());
    assert_eq!(session.uids_since(100).await.unwrap(), Vec::<u32>::new());
    assert_eq!(
        session.uids_since(u32::MAX).await.unwrap(),
        Vec::<u32>::new()
    );
    s.deliver_lmtp("since", &mail("s3"));
    assert_eq!(session.uids_since(3).await.unwrap(), vec![4]);
    session.logout().await.unwrap();
}

#[tokio::test]
async fn move_to_processed_folder_with_move() {
    let s = server();
    s.deliver_lmtp("move", &mail("m1"));
    s.deliver_lmtp("move", &mail("m2"));
    let mut session = connect(&config("move")).await.unwrap();
    session.select().await.unwrap();
    // A French folder name (modified UTF-7 on the wire), created on first use.
    let t = Instant::now();
    let how = session.move_to(1, "Traités").await.unwrap();
    eprintln!("move_to (creating the folder): {:?}", t.elapsed());
    assert_eq!(how, MoveMethod::Move);
    assert_eq!(s.imap_uids("move", "INBOX"), vec![2]);
    assert_eq!(s.imap_uids("move", "Traités"), vec![1]);
    assert!(
        !session.ensure_folder("Traités").await.unwrap(),
        "already exists"
    );
    assert!(
        session.ensure_folder("Quarantaine").await.unwrap(),
        "created"
    );
    assert_eq!(
        session.move_to(2, "Quarantaine").await.unwrap(),
        MoveMethod::Move
    );
    // Moving again (already moved) is harmless.
    session.move_to(2, "Quarantaine").await.unwrap();
    assert!(s.imap_uids("move", "INBOX").is_empty());
    assert_eq!(s.imap_uids("move", "Quarantaine"), vec![1]);
    assert!(session.uids_since(0).await.unwrap().is_empty());
    session.logout().await.unwrap();
}

#[tokio::test]
async fn move_falls_back_to_copy_store_expunge_without_move() {
    let s = server_without_move();
    s.deliver_lmtp("nomove", &mail("n1"));
    s.deliver_lmtp("nomove", &mail("n2"));
    let mut session = connect(&config_for(s, "nomove", Security::Tls))
        .await
        .unwrap();
    let caps = session.capabilities();
    assert!(!caps.move_command && caps.uidplus, "{caps:?}");
    session.select().await.unwrap();
    assert_eq!(
        session.move_to(1, "Relais-Traites").await.unwrap(),
        MoveMethod::CopyStoreExpunge
    );
    // Only the moved message is gone from INBOX; the other one is untouched.
    assert_eq!(s.imap_uids("nomove", "INBOX"), vec![2]);
    assert_eq!(s.imap_uids("nomove", "Relais-Traites"), vec![1]);
    assert_eq!(session.uids_since(0).await.unwrap(), vec![2]);
    let flags = s.doveadm(&[
        "fetch",
        "-u",
        &s.address("nomove"),
        "flags",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ]);
    assert!(!flags.contains("Deleted"), "{flags}");
    session.logout().await.unwrap();
}

#[tokio::test]
async fn idle_wakes_on_new_delivery_and_times_out_otherwise() {
    let mut session = connect(&config("idle")).await.unwrap();
    session.select().await.unwrap();

    let t = Instant::now();
    let outcome = session.idle(Duration::from_millis(800)).await.unwrap();
    let waited = t.elapsed();
    assert_eq!(outcome, IdleOutcome::Timeout);
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    let deliverer = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        server().deliver_lmtp("idle", &mail("i1"));
        Instant::now()
    });
    let outcome = session.idle(Duration::from_secs(20)).await.unwrap();
    let woke = Instant::now();
    let delivered = deliverer.join().unwrap();
    let latency = woke.duration_since(delivered);
    eprintln!("IDLE woke {latency:?} after the LMTP delivery");
    assert_eq!(outcome, IdleOutcome::NewData);
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    assert_eq!(session.uids_since(0).await.unwrap(), vec![1]);

    // The session is usable after IDLE, and IDLE can start again.
    let body = session.fetch(1).await.unwrap().unwrap();
    assert!(!body.is_empty());
    let _ = session.idle(Duration::from_millis(200)).await.unwrap();
    session.logout().await.unwrap();
}

#[tokio::test]
async fn uidvalidity_is_reported_and_changes_when_the_mailbox_is_recreated() {
    let s = server();
    s.create_folder("uidv", "Arrivee");
    let mut cfg = config("uidv");
    cfg.mailbox = "Arrivee".into();
    let mut session = connect(&cfg).await.unwrap();
    let first = session.select().await.unwrap();
    assert!(first.uid_validity > 0);
    session.logout().await.unwrap();

    s.delete_folder("uidv", "Arrivee");
    s.create_folder("uidv", "Arrivee");
    let mut session = connect(&cfg).await.unwrap();
    let second = session.select().await.unwrap();
    assert_ne!(first.uid_validity, second.uid_validity);
    assert_eq!(session.selected(), Some(second));
    session.logout().await.unwrap();

    // A missing mailbox gives a clear error.
    cfg.mailbox = "NoSuchFolder".into();
    let mut session = connect(&cfg).await.unwrap();
    let err = session.select().await.unwrap_err();
    assert_eq!(err.code(), codes::MAILBOX, "{err}");
    assert!(err.to_string().contains("NoSuchFolder"), "{err}");
}

#[tokio::test]
async fn without_move_nor_uidplus_the_original_is_only_flagged_deleted() {
    let s = minimal_server();
    s.deliver_lmtp("minimal", &mail("x1"));
    s.deliver_lmtp("minimal", &mail("x2"));
    let cfg = config_for(s, "minimal", Security::Tls);
    let report = test_connection(&cfg).await;
    let caps = report.step(StepKind::Capabilities).unwrap();
    assert_eq!(caps.status, StepStatus::Warning, "{report}");
    assert!(caps.message.contains("polling"), "{report}");
    let mut session = connect(&cfg).await.unwrap();
    let caps = session.capabilities();
    assert!(
        !caps.move_command && !caps.uidplus && !caps.idle,
        "{caps:?}"
    );
    session.select().await.unwrap();
    assert_eq!(
        session.move_to(1, "Relais-Traites").await.unwrap(),
        MoveMethod::CopyStoreFlagged
    );
    assert_eq!(s.imap_uids("minimal", "Relais-Traites"), vec![1]);
    // Not expunged (that could remove other clients' deleted messages): flagged only.
    assert_eq!(s.imap_uids("minimal", "INBOX"), vec![1, 2]);
    let flags = |uid: &str| {
        s.doveadm(&[
            "fetch",
            "-u",
            &s.address("minimal"),
            "flags",
            "mailbox",
            "INBOX",
            "uid",
            uid,
        ])
    };
    assert!(flags("1").contains("\\Deleted"), "{}", flags("1"));
    assert!(!flags("2").contains("\\Deleted"), "{}", flags("2"));
    session.logout().await.unwrap();
}

#[tokio::test]
async fn without_idle_the_wait_polls_with_noop() {
    let s = minimal_server();
    let mut session = connect(&config_for(s, "poll", Security::Tls))
        .await
        .unwrap();
    session.select().await.unwrap();
    let t = Instant::now();
    assert_eq!(
        session.idle(Duration::from_millis(300)).await.unwrap(),
        IdleOutcome::Timeout
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    s.deliver_lmtp("poll", &mail("p1"));
    assert_eq!(
        session.idle(Duration::from_millis(300)).await.unwrap(),
        IdleOutcome::NewData
    );
    assert_eq!(session.uids_since(0).await.unwrap(), vec![1]);
    session.logout().await.unwrap();
}
