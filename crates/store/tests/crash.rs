//! A real crash: a child process ingests in a loop and is killed with SIGKILL; every message it
//! reported as committed must be in the reopened journal, with an intact blob.
//!
//! The child is this very test binary, re-executed with `--exact <this test>` and an env var.
//! SIGKILL tests process crashes (the kernel keeps what was written); power loss is covered by
//! the fsync discipline (`synchronous=FULL`, blob fsync + rename + directory fsync), not here.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{imap, mail};
use relais_store::{
    Event, IngestOutcome, IngestRequest, Journal, MessageFilter, MessageId, MessageState,
    SqliteJournal, Timestamp,
};
use sqlx::Connection;

const CHILD_ENV: &str = "RELAIS_STORE_CRASH_CHILD_DIR";
const TEST_NAME: &str = "sigkill_during_ingest_keeps_every_committed_message";
/// Commits the parent waits for before it kills the child.
const BEFORE_KILL: usize = 40;

#[test]
fn sigkill_during_ingest_keeps_every_committed_message() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("committed.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("re-exec the test binary");

    let start = Instant::now();
    loop {
        let lines = fs::read_to_string(&log)
            .map(|s| s.lines().filter(|l| l.starts_with("new ")).count())
            .unwrap_or(0);
        if lines >= BEFORE_KILL {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "child too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no close, mid-write.
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL, not exited: {status}"
    );

    // Every line was written after its commit returned.
    let report = fs::read_to_string(&log).unwrap();
    let mut committed = Vec::new();
    let mut parsed = Vec::new();
    for line in report.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["new", id, uid, sha] => committed.push((
                MessageId(id.parse().unwrap()),
                uid.parse::<u32>().unwrap(),
                (*sha).to_owned(),
            )),
            ["parsed", id] => parsed.push(MessageId(id.parse().unwrap())),
            _ => {} // a torn last line cannot happen with O_APPEND small writes, but tolerate it
        }
    }
    assert!(committed.len() >= BEFORE_KILL);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = SqliteJournal::open(dir.path())
            .await
            .expect("reopen after SIGKILL");
        for (id, uid, sha) in &committed {
            let m = j
                .get_message(*id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("committed message {id} lost"));
            assert_eq!(&m.sha256, sha);
            assert_eq!(m.source, imap(*uid));
            assert_eq!(
                j.read_raw(*id).await.unwrap(),
                mail(&format!("crash-{uid}"), size_of(*uid))
            );
        }
        for id in &parsed {
            let m = j.get_message(*id).await.unwrap().unwrap();
            assert_eq!(
                m.state,
                MessageState::Parsed,
                "committed transition of {id} lost"
            );
        }
        // Nothing half-done: every row in the journal (including one committed but not yet
        // reported when the kill came) has its blob, intact, and its received event.
        let all = j
            .list_messages(&MessageFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(all.len() >= committed.len() && all.len() <= committed.len() + 1);
        for m in &all {
            j.blobs().verify(&m.sha256).unwrap();
            let ev = j.message_events(m.id).await.unwrap();
            assert_eq!(ev[0].state_after, Some(MessageState::Received));
        }
        // The database file itself is sound, and the source re-delivering is recognised.
        let url = format!("sqlite://{}", j.database_path().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        conn.close().await.unwrap();
        let (id, uid, _) = &committed[0];
        let raw = mail(&format!("crash-{uid}"), size_of(*uid));
        assert_eq!(
            j.ingest(IngestRequest::new(imap(*uid), &raw, Timestamp::now()))
                .await
                .unwrap(),
            IngestOutcome::Duplicate {
                existing: *id,
                by: relais_store::DedupBy::Source
            }
        );
        j.close().await;
    });
}

fn size_of(uid: u32) -> usize {
    2_000 + (uid as usize % 7) * 9_000
}

/// The child: ingest and transition in a loop, reporting each commit, until killed.
fn child(dir: &Path) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = SqliteJournal::open(dir).await.unwrap();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("committed.log"))
            .unwrap();
        let start = Instant::now();
        for uid in 0u32.. {
            let raw = mail(&format!("crash-{uid}"), size_of(uid));
            let out = j
                .ingest(IngestRequest::new(imap(uid), &raw, Timestamp::now()))
                .await
                .unwrap();
            let IngestOutcome::New(id) = out else {
                panic!("{out:?}")
            };
            let sha = relais_store::sha256_hex(&raw);
            log.write_all(format!("new {id} {uid} {sha}\n").as_bytes())
                .unwrap();
            if uid % 2 == 0 {
                j.transition(
                    id,
                    MessageState::Received,
                    MessageState::Parsed,
                    Event::system("parsed"),
                )
                .await
                .unwrap();
                log.write_all(format!("parsed {id}\n").as_bytes()).unwrap();
            }
            if start.elapsed() > Duration::from_secs(90) {
                break;
            }
        }
    });
    // Never killed: make the parent notice.
    std::process::exit(3);
}
