//! The engine on the PostgreSQL journal (a real server): the samples are filed once, and two
//! instances sharing the database and the same mail folder file each document exactly once.

mod common;

use common::maildir;
use relais_engine::Engine;
use relais_engine::config::{Config, JournalKind, Sink, Source};
use relais_testsupport::postgres::PgServer;
use std::path::Path;

fn config(root: &Path, inbox: &Path, url_file: &Path, out: &Path) -> Config {
    let mut c = common::config(
        root,
        vec![Source::Maildir {
            address: None,
            name: "inbox".into(),
            path: inbox.to_path_buf(),
            consume: false,
        }],
        vec![Sink::Folder {
            name: "out".into(),
            path: out.to_path_buf(),
        }],
        false,
    );
    c.journal.kind = JournalKind::Postgres;
    c.journal.url_file = Some(url_file.to_path_buf());
    c
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_file_each_document_once() {
    let server = PgServer::shared();
    let tmp = tempfile::tempdir().unwrap();
    let url_file = tmp.path().join("pg.url");
    std::fs::write(&url_file, format!("{}\n", server.create_database("engine"))).unwrap();
    let inbox = maildir(
        tmp.path(),
        &[
            "mail/ldl-ses-n1.eml",
            "mail/cr-bio-n1.eml",
            "invalid/xdm-hash-mismatch.eml",
        ],
    );
    let out = tmp.path().join("out");
    // Two instances (own data directories, one database), both reading the same folder.
    let a = Engine::open(config(&tmp.path().join("a"), &inbox, &url_file, &out))
        .await
        .unwrap();
    let b = Engine::open(config(&tmp.path().join("b"), &inbox, &url_file, &out))
        .await
        .unwrap();
    let (sa, sb) = tokio::join!(a.run_once(), b.run_once());
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(sa.journaled + sb.journaled, 3, "{sa:?} {sb:?}");
    assert_eq!(sa.deliveries + sb.deliveries, 2, "{sa:?} {sb:?}");
    assert_eq!(files(&out).len(), 2, "{:?}", files(&out));
    // Again: nothing new, nothing delivered twice.
    let s = a.run_once().await.unwrap();
    assert_eq!((s.journaled, s.deliveries), (0, 0), "{s:?}");
    let counts = a.journal().counts_by_state().await.unwrap();
    let count = |st: relais_store::MessageState| {
        counts
            .iter()
            .find(|(s, _)| *s == st)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    assert_eq!(count(relais_store::MessageState::Filed), 2);
    assert_eq!(count(relais_store::MessageState::Rejected), 1);
}

#[tokio::test]
async fn a_postgres_journal_needs_its_url_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Config::parse("[journal]\nkind = \"postgres\"\n", "t").unwrap();
    c.data_dir = tmp.path().join("data");
    assert!(
        c.problems().iter().any(|p| p.contains("url_file")),
        "{:?}",
        c.problems()
    );
    c.journal.url_file = Some(tmp.path().join("missing"));
    let e = Engine::open(c).await.err().expect("refused");
    assert!(e.to_string().contains("cannot read url_file"), "{e}");
}
