//! Group commit: concurrent calls share transactions, each still returns only once committed,
//! one call's failure never undoes another's work, and answers to senders are owed once.

mod common;

use std::sync::Arc;

use common::{imap, ingest_new, mail, open};
use relais_store::{
    AnswerState, Event, IngestOutcome, IngestRequest, Journal, MessageState, SqliteConfig,
    SqliteJournal, StoreError, Timestamp, event_kinds,
};

#[tokio::test]
async fn sequential_calls_commit_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let before = j.write_stats();
    for uid in 1..=5 {
        ingest_new(&j, uid, &format!("seq{uid}")).await;
    }
    let after = j.write_stats();
    assert_eq!(after.calls - before.calls, 5);
    assert_eq!(after.commits - before.commits, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(open(dir.path()).await);
    let before = j.write_stats();
    let mut tasks = Vec::new();
    for uid in 1..=200u32 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            let raw = mail(&format!("c{uid}"), 2_000);
            let IngestOutcome::New(id) = j
                .ingest(IngestRequest::new(imap(uid), &raw, Timestamp::now()))
                .await
                .unwrap()
            else {
                panic!("duplicate")
            };
            j.transition(
                id,
                MessageState::Received,
                MessageState::Parsed,
                Event::system("parsed"),
            )
            .await
            .unwrap();
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let after = j.write_stats();
    assert_eq!(after.calls - before.calls, 400);
    assert!(
        after.commits - before.commits < 400,
        "200 concurrent ingests and transitions should share commits: {after:?}"
    );
    // Everything is there after a reopen (what a crash right now would leave).
    drop(j);
    let j = open(dir.path()).await;
    for id in ids {
        let m = j.get_message(id).await.unwrap().expect("row");
        assert_eq!(m.state, MessageState::Parsed);
        assert_eq!(j.message_events(id).await.unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_call_does_not_undo_its_batch_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(open(dir.path()).await);
    let ids: Vec<_> = {
        let mut v = Vec::new();
        for uid in 1..=60 {
            v.push(ingest_new(j.as_ref(), uid, &format!("f{uid}")).await);
        }
        v
    };
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().copied().enumerate() {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                // Legal: received → parsed.
                j.transition(
                    id,
                    MessageState::Received,
                    MessageState::Parsed,
                    Event::system("parsed"),
                )
                .await
                .map(|_| true)
            } else {
                // Stale: the message is not validated; must fail and change nothing.
                j.transition(
                    id,
                    MessageState::Validated,
                    MessageState::Matched,
                    Event::system("matched"),
                )
                .await
                .map(|_| false)
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i % 2 == 0 {
            assert!(r.unwrap());
        } else {
            assert!(matches!(r, Err(StoreError::StaleState { .. })), "{r:?}");
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let m = j.get_message(*id).await.unwrap().unwrap();
        let expected = if i % 2 == 0 {
            MessageState::Parsed
        } else {
            MessageState::Received
        };
        assert_eq!(m.state, expected, "message #{i}");
        let events = j.message_events(*id).await.unwrap();
        assert_eq!(events.len(), if i % 2 == 0 { 2 } else { 1 });
    }
}

#[tokio::test]
async fn a_failed_call_does_not_keep_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    // Fails inside its transaction (unknown message): its savepoint is abandoned.
    let e = j
        .record_event(relais_store::MessageId(999), Event::system("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::UnknownId { .. }), "{e:?}");
    // Another process (here: another journal on the same file, short busy timeout) can write:
    // the abandoned batch was closed, not left holding SQLite's write lock.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut cfg = SqliteConfig::new(dir.path());
    cfg.busy_timeout = std::time::Duration::from_millis(500);
    let other = SqliteJournal::open_with(cfg).await.unwrap();
    ingest_new(&other, 1, "other-process").await;
    // And the first journal still works.
    ingest_new(&j, 2, "first-again").await;
}

#[tokio::test]
async fn an_outcome_makes_the_answer_due_once() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let a = ingest_new(&j, 1, "a").await;
    let b = ingest_new(&j, 2, "b").await;
    assert!(j.answers_due(10).await.unwrap().is_empty());
    // a: received → awaiting_review: an outcome, answer due.
    j.transition(
        a,
        MessageState::Received,
        MessageState::AwaitingReview,
        Event::system("awaiting_review").with_error("902", "Identifiant patient inconnu"),
    )
    .await
    .unwrap();
    // b: parsed is no outcome yet.
    j.transition(
        b,
        MessageState::Received,
        MessageState::Parsed,
        Event::system("parsed"),
    )
    .await
    .unwrap();
    assert_eq!(j.answers_due(10).await.unwrap(), vec![a]);
    j.record_answer(
        a,
        AnswerState::Sent,
        Event::system(event_kinds::ANSWER_SENT),
    )
    .await
    .unwrap();
    assert!(j.answers_due(10).await.unwrap().is_empty());
    // A reviewer files it later: the sender was already answered, no second answer.
    j.transition(
        a,
        MessageState::AwaitingReview,
        MessageState::Matched,
        Event::user("review_filed", "alice"),
    )
    .await
    .unwrap();
    j.transition(
        a,
        MessageState::Matched,
        MessageState::Filed,
        Event::system("filed"),
    )
    .await
    .unwrap();
    assert!(j.answers_due(10).await.unwrap().is_empty());
    // b rejected: due.
    j.transition(
        b,
        MessageState::Parsed,
        MessageState::Rejected,
        Event::system("rejected").with_error("XDM-HASH-MISMATCH", "hash"),
    )
    .await
    .unwrap();
    assert_eq!(j.answers_due(10).await.unwrap(), vec![b]);
    let kinds: Vec<String> = j
        .message_events(a)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&event_kinds::ANSWER_SENT.to_string()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn work_is_listed_oldest_first_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let mut ids = Vec::new();
    for uid in 1..=5 {
        ids.push(ingest_new(&j, uid, &format!("o{uid}")).await);
    }
    j.transition(
        ids[1],
        MessageState::Received,
        MessageState::Parsed,
        Event::system("parsed"),
    )
    .await
    .unwrap();
    let page = |after, limit| {
        let j = &j;
        async move {
            j.oldest_in_state(MessageState::Received, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 2).await, vec![ids[0], ids[2]]);
    assert_eq!(page(Some(ids[2]), 10).await, vec![ids[3], ids[4]]);
    assert!(page(Some(ids[4]), 10).await.is_empty());
}
