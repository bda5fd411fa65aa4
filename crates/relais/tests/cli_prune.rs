//! `relais prune [--dry-run]` on a journal holding old finished messages, a message waiting for
//! review and a new one: the dry run changes nothing and announces exactly what the
//! real run then removes, with an audit record, and neither prints patient data.

use relais_store::{
    Event, IngestOutcome, IngestRequest, Journal, MessageId, MessageState, SourceKey,
    SqliteJournal, Timestamp,
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
        .env("USER", "operator1")
        .output()
        .expect("run relais")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "relais failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mail(n: usize) -> Vec<u8> {
    format!(
        "From: dr.martin@hopital-a.mssante.fr\r\nTo: b@hopital-b.mssante.fr\r\n\
         Message-ID: <cli-prune-{n}@relais.test>\r\nSubject: CR DUPONT Jean\r\n\r\nCompte rendu {n}.\r\n"
    )
    .into_bytes()
}

/// Messages 1..=4 that are still in the journal, and their events.
async fn present(j: &SqliteJournal) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut events = 0;
    for id in 1..=4 {
        if j.get_message(MessageId(id)).await.unwrap().is_some() {
            ids.push(id);
            events += j.message_events(MessageId(id)).await.unwrap().len();
        }
    }
    (ids, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_then_prune_old_finished_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[retention]\nraw_mail_days = 30\ndocuments_days = 30\nevents_days = 30\nrun_every_secs = 0\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    // Two filed messages 400 days old (5 events each), and two received now: one waiting for
    // review, one just journaled.
    let j = SqliteJournal::open(data.join("journal")).await.unwrap();
    let mut blobs = Vec::new();
    for n in 0..2 {
        let b = j.blobs().put(&mail(n)).unwrap();
        blobs.push((b.sha256, b.size));
    }
    let old = Timestamp::now().minus(Duration::from_secs(400 * 86_400));
    j.bulk_load_finished(&blobs, 5, 200, old).await.unwrap();
    for n in [8, 9] {
        let raw = mail(n);
        let req = IngestRequest::new(
            SourceKey::Folder {
                path: format!("/srv/in/{n}.eml"),
            },
            &raw,
            Timestamp::now(),
        );
        let IngestOutcome::New(id) = j.ingest(req).await.unwrap() else {
            panic!("new message expected")
        };
        if n == 8 {
            j.transition(
                id,
                MessageState::Received,
                MessageState::AwaitingReview,
                Event::system("awaiting_review"),
            )
            .await
            .unwrap();
        }
    }
    let (ids, events_before) = present(&j).await;
    assert_eq!(ids, [1, 2, 3, 4]);

    let dry = stdout(&relais(&config, &["prune", "--dry-run"]));
    assert!(dry.contains("what would go"), "{dry}");
    assert!(
        dry.contains("2 messages, 10 events, 2 documents, 2 deliveries, 0 reviews"),
        "{dry}"
    );
    assert!(dry.contains("blob files: 2 ("), "{dry}");
    assert_eq!(present(&j).await, (ids.clone(), events_before));

    let done = stdout(&relais(&config, &["prune"]));
    assert!(
        done.contains("what went (audit record: prune run 1"),
        "{done}"
    );
    assert!(done.contains("as cli:operator1"), "{done}");
    // The real run removed what the dry run announced, line for line.
    let per_class = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(per_class(&done), per_class(&dry));
    for out in [&dry, &done] {
        assert!(!out.contains('@') && !out.contains("DUPONT"), "{out}");
    }
    assert_eq!(present(&j).await, (vec![3, 4], events_before - 10));
    for (sha, _) in &blobs {
        assert!(!j.blobs().contains(sha).unwrap());
    }
    assert_eq!(j.read_raw(MessageId(3)).await.unwrap(), mail(8));

    // Nothing left to prune; and without [retention], nothing is ever pruned.
    let again = stdout(&relais(&config, &["prune", "--dry-run"]));
    assert!(again.contains("0 messages, 0 events"), "{again}");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    let none = stdout(&relais(&config, &["prune"]));
    assert!(none.contains("everything is kept"), "{none}");
}

#[test]
fn config_check_refuses_a_retention_that_contradicts_itself() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        "[retention]\nraw_mail_days = 365\nevents_days = 30\nchunk_rows = 5\n",
    )
    .unwrap();
    let out = relais(&config, &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for expected in [
        "events_days = 30 deletes each message entirely, so raw_mail_days must be set to at most 30",
        "so documents_days must be set to at most 30",
        "chunk_rows must be between 10 and 100000",
    ] {
        assert!(text.contains(expected), "{text}");
    }
}
