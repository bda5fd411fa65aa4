//! Two pollers on one mailbox at the same moment (what a lease taken over from a stalled, not
//! dead, instance can give for a short while) must stay harmless: on a PostgreSQL journal (a
//! real server) and a real Dovecot, two engines poll the same INBOX at once; each mail is
//! journaled once (the second fetch is a duplicate by mailbox + UIDVALIDITY + UID), each
//! document filed once, and each mail leaves the inbox for its folder (at worst twice, when both
//! sessions move it at the same instant: a spare copy, never a loss).
//!
//! Both engines run in this test process, so they share one worker name and both hold the
//! mailbox lease: the overlap is forced, not left to timing.

mod common;

use common::{config, sample};
use relais_engine::Engine;
use relais_engine::config::{ImapSecurity, JournalKind, Sink, Source};
use relais_store::{MessageFilter, MessageState};
use relais_testsupport::mailserver::{MailServer, MailServerOptions};
use relais_testsupport::postgres::PgServer;
use std::path::Path;

const SAMPLES: [&str; 3] = [
    "mail/ldl-ses-n1.eml",
    "mail/cr-bio-n1.eml",
    "invalid/xdm-hash-mismatch.eml",
];

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".xml"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pollers_on_one_mailbox_journal_file_and_move_each_mail_once() {
    let pg = PgServer::shared();
    let server = MailServer::start_with(MailServerOptions {
        postfix: false,
        ..MailServerOptions::default()
    });
    for s in SAMPLES {
        server.deliver_lmtp("dpi", &sample(s));
    }
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, server.password()).unwrap();
    let url_file = tmp.path().join("pg.url");
    std::fs::write(&url_file, pg.create_database("overlap")).unwrap();
    let out = tmp.path().join("out");
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
    let open = |n: &str| {
        let mut c = config(
            &tmp.path().join(n),
            vec![source.clone()],
            vec![Sink::Folder {
                name: "out".into(),
                path: out.clone(),
            }],
            false,
        );
        c.journal.kind = JournalKind::Postgres;
        c.journal.url_file = Some(url_file.clone());
        Engine::open(c)
    };
    let (a, b) = (open("a").await.unwrap(), open("b").await.unwrap());

    let (sa, sb) = tokio::join!(a.run_once(), b.run_once());
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(sa.journaled + sb.journaled, 3, "{sa:?} {sb:?}");
    // Both fetched the mails (the second poller's fetches are duplicates): the overlap happened.
    assert!(
        sa.duplicates + sb.duplicates >= 1,
        "the two pollers did not overlap: {sa:?} {sb:?}"
    );
    assert_eq!(sa.deliveries + sb.deliveries, 2, "{sa:?} {sb:?}");
    assert_eq!(files(&out), 2);
    assert_eq!(server.imap_uids("dpi", "INBOX").len(), 0, "INBOX");
    // Each mail reached its folder. Both sessions may move one mail at the same instant (each
    // re-reads the UID list just before moving, which narrows that to a few milliseconds):
    // Dovecot then files a second copy, which nothing reads again (the journal holds the mail
    // once, the DPI got it once).
    let processed = server.imap_uids("dpi", "Relais-Traites").len();
    let quarantined = server.imap_uids("dpi", "Relais-Quarantaine").len();
    assert!(
        (2..=4).contains(&processed) && (1..=2).contains(&quarantined),
        "processed folder {processed}, quarantine {quarantined}"
    );

    let messages = a
        .journal()
        .list_messages(&MessageFilter::default())
        .await
        .unwrap();
    let mut states: Vec<MessageState> = messages.iter().map(|m| m.state).collect();
    states.sort_by_key(|s| s.as_str());
    assert_eq!(
        states,
        [
            MessageState::Filed,
            MessageState::Filed,
            MessageState::Rejected
        ]
    );
    // Again: nothing new, nothing moved or filed twice.
    let s = b.run_once().await.unwrap();
    assert_eq!(
        (s.journaled, s.duplicates, s.deliveries),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(server.imap_uids("dpi", "Relais-Traites").len(), processed);
}
