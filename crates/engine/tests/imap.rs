//! End to end with real servers: mails delivered into Dovecot are read over IMAP (TLS, and TLS
//! with a client certificate as for an applicative mailbox), validated, matched and filed into
//! the DPI peer (hl7apy) as MDM^T02; processed mails move to the processed folder, rejected ones
//! to quarantine.

mod common;

use common::{camille, config, mllp_sink, sample, states};
use relais_engine::Engine;
use relais_engine::config::{Config, ImapSecurity, SchematronSetting, Source};
use relais_store::MessageState;
use relais_testsupport::ans_dir;
use relais_testsupport::dpi_peer::DpiPeer;
use relais_testsupport::mailserver::MailServer;
use std::path::Path;

async fn engine(root: &Path, source: Source, dpi: &str) -> Engine {
    let e = Engine::open(config(root, vec![source], vec![mllp_sink(dpi)], true))
        .await
        .unwrap();
    e.journal()
        .upsert_patient(&camille("IPP-42"))
        .await
        .unwrap();
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_mailbox_to_dpi_over_mllp() {
    let server = MailServer::start();
    let peer = DpiPeer::start(&[]);
    server.deliver_lmtp("dpi", &sample("mail/ldl-ses-n1.eml"));
    server.deliver_lmtp("dpi", &sample("mail/cr-bio-n1.eml"));
    server.deliver_lmtp("dpi", &sample("invalid/xdm-hash-mismatch.eml"));
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, format!("{}\n", server.password())).unwrap();
    let source = Source::Imap {
        address: None,
        name: "bal-dpi".into(),
        host: server.host(),
        port: server.ports().imaps,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("dpi")),
        password_file: Some(password),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    };
    let e = engine(tmp.path(), source, &peer.address()).await;
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.filed, s.rejected), (3, 2, 1), "{s:?}");
    assert_eq!(
        states(&e).await,
        vec![
            MessageState::Filed,
            MessageState::Filed,
            MessageState::Rejected
        ]
    );
    let got = peer.records();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|r| r["answer"] == "AA" && r["event"] == "T02"),
        "{got:?}"
    );
    // Acknowledged at the source only now: moved out of the inbox.
    assert!(server.imap_uids("dpi", "INBOX").is_empty());
    assert_eq!(server.imap_uids("dpi", "Relais-Traites").len(), 2);
    assert_eq!(server.imap_uids("dpi", "Relais-Quarantaine").len(), 1);
    // Polling again: nothing new, nothing sent twice.
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.deliveries), (0, 0), "{s:?}");
    assert_eq!(peer.records().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn applicative_mailbox_with_client_certificate() {
    let server = MailServer::start();
    let peer = DpiPeer::start(&[]);
    server.deliver_lmtp("labo", &sample("mail/cr-bio-n1.eml"));
    let tmp = tempfile::tempdir().unwrap();
    let cert_source = |with_cert: bool| Source::Imap {
        address: None,
        name: "bal-labo".into(),
        host: server.host(),
        port: server.ports().imaps_mtls,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: with_cert.then(|| server.client_cert_pem("labo").to_path_buf()),
        client_key: with_cert.then(|| server.client_key_pem("labo").to_path_buf()),
        user: None,
        password_file: None,
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    };
    let e = engine(tmp.path(), cert_source(true), &peer.address()).await;
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.filed), (1, 1), "{s:?}");
    assert_eq!(peer.records().len(), 1);
    // Without the certificate the configuration itself is refused: no way to authenticate.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut c = Config::parse("", "t").unwrap();
    c.data_dir = tmp2.path().join("d");
    c.sources = vec![cert_source(false)];
    c.validation.schematron = SchematronSetting::Off;
    c.validation.pack = Some(ans_dir());
    let e = Engine::open(c).await.unwrap();
    let err = e.run_once().await.unwrap_err().to_string();
    assert!(err.contains("client certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_wakes_the_daemon_when_mail_arrives() {
    let server = MailServer::start();
    let peer = DpiPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, server.password()).unwrap();
    let source = Source::Imap {
        address: None,
        name: "bal-dpi".into(),
        host: server.host(),
        port: server.ports().imaps,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("dpi")),
        password_file: Some(password),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    };
    let e = std::sync::Arc::new(engine(tmp.path(), source, &peer.address()).await);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let daemon = {
        let e = e.clone();
        // A poll interval far longer than the test: only IDLE can make it file in time.
        tokio::spawn(async move { e.run(std::time::Duration::from_secs(600), stop_rx).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let t0 = std::time::Instant::now();
    server.deliver_lmtp("dpi", &sample("mail/ldl-ses-n1.eml"));
    while peer.records().is_empty() && t0.elapsed() < std::time::Duration::from_secs(15) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let latency = t0.elapsed();
    assert_eq!(
        peer.records().len(),
        1,
        "not filed within 15 s: IDLE did not wake the daemon"
    );
    println!("arrival to filed with IDLE: {latency:?}");
    stop_tx.send(true).unwrap();
    daemon.await.unwrap().unwrap();
    assert_eq!(states(&e).await, vec![MessageState::Filed]);
}

/// A mail over `max_mail_bytes` is not downloaded: it goes, as it is, to the quarantine folder
/// on the server; the mails around it are filed; the mailbox is not blocked by it.
#[tokio::test(flavor = "multi_thread")]
async fn a_mail_over_the_size_limit_is_quarantined_on_the_server_and_blocks_nothing() {
    let server = MailServer::start();
    let peer = DpiPeer::start(&[]);
    let normal = sample("mail/ldl-ses-n1.eml");
    let limit = normal.len() as u64 + 20_000;
    let mut big = b"X-Padding: ".to_vec();
    big.extend(std::iter::repeat_n(b'p', 60_000));
    big.extend_from_slice(b"\r\n");
    big.extend_from_slice(&sample("mail/cr-bio-n1.eml"));
    server.deliver_lmtp("dpi", &big);
    server.deliver_lmtp("dpi", &normal);
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, format!("{}\n", server.password())).unwrap();
    let source = Source::Imap {
        address: None,
        name: "bal-dpi".into(),
        host: server.host(),
        port: server.ports().imaps,
        security: ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("dpi")),
        password_file: Some(password),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    };
    let mut c = config(
        tmp.path(),
        vec![source],
        vec![mllp_sink(&peer.address())],
        true,
    );
    c.limits.max_mail_bytes = limit;
    let e = Engine::open(c).await.unwrap();
    e.journal()
        .upsert_patient(&camille("IPP-42"))
        .await
        .unwrap();
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.filed), (1, 1), "{s:?}");
    assert_eq!(peer.records().len(), 1);
    assert!(server.imap_uids("dpi", "INBOX").is_empty());
    assert_eq!(server.imap_uids("dpi", "Relais-Traites").len(), 1);
    assert_eq!(server.imap_uids("dpi", "Relais-Quarantaine").len(), 1);
    // Nothing is left to take, nothing taken twice.
    let s = e.run_once().await.unwrap();
    assert_eq!((s.journaled, s.deliveries), (0, 0), "{s:?}");
}
