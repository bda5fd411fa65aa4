//! Retention: only finished, old messages are pruned, in audited chunks; the audit trail stays
//! append-only for everything else; blobs go after the rows, shared ones stay.

mod common;

use std::time::Duration;

use common::{imap, mail, new_doc, open};
use relais_store::{
    AnswerState, DeliveryId, Event, IngestOutcome, IngestRequest, Journal, MessageId, MessageState,
    PrunePolicy, PruneReport, ReviewSubject, SqliteJournal, StoreError, Timestamp, codes,
    event_kinds,
};
use sqlx::Connection;

const SINK: &str = "folder";

async fn ingest(j: &SqliteJournal, uid: u32, raw: &[u8], with_message_id: bool) -> MessageId {
    let mut req = IngestRequest::new(imap(uid), raw, Timestamp::now());
    if !with_message_id {
        req.message_id = None;
    }
    match j.ingest(req).await.unwrap() {
        IngestOutcome::New(id) => id,
        other => panic!("expected a new message, got {other:?}"),
    }
}

async fn step(j: &SqliteJournal, id: MessageId, from: MessageState, to: MessageState) {
    j.transition(id, from, to, Event::system(to.as_str()))
        .await
        .unwrap();
}

async fn to_matched(j: &SqliteJournal, id: MessageId) {
    step(j, id, MessageState::Received, MessageState::Parsed).await;
    step(j, id, MessageState::Parsed, MessageState::Validated).await;
    step(j, id, MessageState::Validated, MessageState::Matched).await;
}

/// A matched message with one document and one delivery enqueued (not claimed).
async fn with_delivery(j: &SqliteJournal, id: MessageId, tag: &str, sink: &str) -> DeliveryId {
    to_matched(j, id).await;
    let doc = new_doc(j, id, &format!("1.2.3^{tag}"), &format!("9.9^{tag}"), 1).await;
    j.enqueue_delivery(doc, sink, &format!("key-{tag}"), vec![b'x'; 1500], tag)
        .await
        .unwrap()
}

/// A filed message, answered: document delivered.
async fn filed(j: &SqliteJournal, uid: u32, raw: &[u8], with_message_id: bool) -> MessageId {
    let id = ingest(j, uid, raw, with_message_id).await;
    let tag = format!("m{uid}");
    let del = with_delivery(j, id, &tag, SINK).await;
    let claimed = j
        .claim_next(SINK, "w", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!(claimed.id, del);
    let closed = j.complete_delivered(del, "ok").await.unwrap();
    assert_eq!(closed.message_filed, Some(id));
    j.record_answer(
        id,
        AnswerState::Sent,
        Event::system(event_kinds::ANSWER_SENT),
    )
    .await
    .unwrap();
    id
}

async fn rejected(j: &SqliteJournal, uid: u32) -> MessageId {
    let id = ingest(j, uid, &mail(&format!("r{uid}"), 800), true).await;
    step(j, id, MessageState::Received, MessageState::Rejected).await;
    j.record_answer(
        id,
        AnswerState::Skipped,
        Event::system(event_kinds::ANSWER_SKIPPED),
    )
    .await
    .unwrap();
    id
}

async fn awaiting_review(j: &SqliteJournal, uid: u32) -> MessageId {
    let id = ingest(j, uid, &mail(&format!("v{uid}"), 800), true).await;
    step(j, id, MessageState::Received, MessageState::AwaitingReview).await;
    j.open_review(ReviewSubject::Message(id), "902", "no patient")
        .await
        .unwrap();
    j.record_answer(
        id,
        AnswerState::Sent,
        Event::system(event_kinds::ANSWER_SENT),
    )
    .await
    .unwrap();
    id
}

/// A moment that separates what was journaled before it from what comes after.
async fn boundary() -> Timestamp {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

fn policy(now: Timestamp) -> PrunePolicy {
    PrunePolicy {
        now,
        ..PrunePolicy::new("test")
    }
}

async fn raw_conn(j: &SqliteJournal) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", j.database_path().display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

/// The report without what only a real run has.
fn counts(r: &PruneReport) -> PruneReport {
    PruneReport {
        dry_run: false,
        run: None,
        chunks: 0,
        ..r.clone()
    }
}

async fn event_count(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_finished_old_messages_go_with_an_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let a = filed(&j, 1, &mail("a", 3000), true).await;
    let b = rejected(&j, 2).await;
    let review = awaiting_review(&j, 3).await;
    let pending = ingest(&j, 4, &mail("d", 800), true).await;
    with_delivery(&j, pending, "d", "elsewhere").await;
    // Filed, but its sender has not been answered yet.
    let unanswered = ingest(&j, 5, &mail("e", 800), true).await;
    step(
        &j,
        unanswered,
        MessageState::Received,
        MessageState::Rejected,
    )
    .await;
    let horizon = boundary().await;
    let recent = filed(&j, 6, &mail("f", 800), true).await;

    let a_events = j.message_events(a).await.unwrap().len() as u64;
    let b_events = j.message_events(b).await.unwrap().len() as u64;
    let a_sha = j.get_message(a).await.unwrap().unwrap().sha256;
    let b_sha = j.get_message(b).await.unwrap().unwrap().sha256;
    let mut conn = raw_conn(&j).await;
    let events_before = event_count(&mut conn).await;

    let mut p = policy(horizon);
    p.events = Some(Duration::ZERO);
    let dry = j.prune(&p, true, 500).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.run, None);
    assert_eq!(dry.events.messages, 2, "{dry:?}");
    assert_eq!(dry.events.events, a_events + b_events);
    assert_eq!(dry.events.documents, 1);
    assert_eq!(dry.events.deliveries, 1);
    assert_eq!(dry.blobs.files, 2);
    // The dry run changed nothing.
    assert_eq!(event_count(&mut conn).await, events_before);
    assert!(j.get_message(a).await.unwrap().is_some());
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prune_runs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(runs, 0);

    let done = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(counts(&done), counts(&dry), "dry run and real run agree");
    assert!(done.run.is_some());
    assert!(done.chunks >= 1);

    for gone in [a, b] {
        assert!(j.get_message(gone).await.unwrap().is_none());
        assert!(j.message_events(gone).await.unwrap().is_empty());
    }
    for kept in [review, pending, unanswered, recent] {
        assert!(j.get_message(kept).await.unwrap().is_some(), "{kept} kept");
        assert!(!j.message_events(kept).await.unwrap().is_empty());
    }
    assert_eq!(
        event_count(&mut conn).await,
        events_before - (a_events + b_events) as i64
    );
    assert!(!j.blobs().contains(&a_sha).unwrap());
    assert!(!j.blobs().contains(&b_sha).unwrap());
    assert_eq!(j.read_raw(recent).await.unwrap(), mail("f", 800));

    // The audit record: who, which class and horizon, how much.
    let (actor, events_horizon): (String, Option<i64>) =
        sqlx::query_as("SELECT actor, events_horizon FROM prune_runs WHERE id = ?")
            .bind(done.run.unwrap())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(actor, "test");
    assert_eq!(events_horizon, Some(horizon.0));
    let (messages, events, chunk_horizon): (i64, i64, i64) = sqlx::query_as(
        "SELECT SUM(messages), SUM(events), MAX(horizon) FROM prune_chunks
          WHERE run_id = ? AND class = 'events'",
    )
    .bind(done.run.unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((messages, events), (2, (a_events + b_events) as i64));
    assert_eq!(chunk_horizon, horizon.0);
    let blobs: i64 = sqlx::query_scalar(
        "SELECT SUM(blobs) FROM prune_chunks WHERE run_id = ? AND class = 'blobs'",
    )
    .bind(done.run.unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(blobs, 2);

    // A second run finds nothing.
    assert!(j.prune(&p, false, 500).await.unwrap().is_empty());

    // An ordinary DELETE is still refused, on the events, the messages and the prune log; and
    // even the pruning path cannot target a message that is not finished.
    for sql in [
        "DELETE FROM events",
        "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)",
        "UPDATE events SET kind = 'forged'",
        "DELETE FROM prune_chunks",
        "UPDATE prune_runs SET actor = 'mallory'",
        "DELETE FROM prune_runs",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains(codes::STORE_EVENT_IMMUTABLE),
            "{sql}: {err}"
        );
    }
    let err = sqlx::query("DELETE FROM messages WHERE id = ?")
        .bind(recent.0)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(codes::STORE_EVENT_IMMUTABLE),
        "{err}"
    );
    let err = sqlx::query(
        "INSERT INTO prune_targets (message_id, chunk_id)
         SELECT ?, MAX(id) FROM prune_chunks",
    )
    .bind(review.0)
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("only filed or rejected"), "{err}");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn shared_blob_is_kept_while_a_kept_row_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    // Same bytes, no Message-ID: two messages sharing one blob.
    let raw = mail("shared", 2000);
    let old = filed(&j, 1, &raw, false).await;
    let horizon = boundary().await;
    let young = filed(&j, 2, &raw, false).await;
    let sha = j.get_message(old).await.unwrap().unwrap().sha256;
    assert_eq!(sha, j.get_message(young).await.unwrap().unwrap().sha256);

    let mut p = policy(horizon);
    p.events = Some(Duration::ZERO);
    let r = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(r.events.messages, 1);
    assert_eq!(r.blobs.files, 0);
    assert!(j.get_message(old).await.unwrap().is_none());
    assert_eq!(j.read_raw(young).await.unwrap(), raw);

    // Once the last holder goes, the blob goes.
    p.now = Timestamp::now().plus(Duration::from_secs(1));
    let r = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(r.events.messages, 1);
    assert_eq!(r.blobs.files, 1);
    assert_eq!(r.blobs.bytes, raw.len() as u64);
    assert!(!j.blobs().contains(&sha).unwrap());

    // The same content arriving again is journaled with a fresh blob.
    let again = ingest(&j, 3, &raw, false).await;
    assert_eq!(j.read_raw(again).await.unwrap(), raw);
}

#[tokio::test]
async fn raw_mails_and_documents_go_before_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let raw = mail("a", 2500);
    let a = filed(&j, 1, &raw, true).await;
    let horizon = boundary().await;
    let b = filed(&j, 2, &mail("b", 900), true).await;
    let sha = j.get_message(a).await.unwrap().unwrap().sha256;
    let docs = j.documents_of_message(a).await.unwrap();
    let dels = j.deliveries_of_document(docs[0].id).await.unwrap();
    assert_eq!(dels[0].payload.len(), 1500);

    let mut p = policy(horizon);
    p.raw_mail = Some(Duration::ZERO);
    p.documents = Some(Duration::ZERO);
    let dry = j.prune(&p, true, 500).await.unwrap();
    assert_eq!(dry.raw_mails.messages, 1);
    assert_eq!(dry.raw_mails.bytes, raw.len() as u64);
    assert_eq!(dry.documents.messages, 1);
    assert_eq!(dry.documents.deliveries, 1);
    assert_eq!(dry.documents.bytes, 1500);
    assert_eq!(dry.events.messages, 0);
    let done = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(counts(&done), counts(&dry));

    // The message and its trail stay; its raw mail and document bytes are gone.
    let m = j.get_message(a).await.unwrap().expect("row kept");
    assert_eq!(m.state, MessageState::Filed);
    assert!(!j.blobs().contains(&sha).unwrap());
    assert!(matches!(
        j.read_raw(a).await,
        Err(StoreError::BlobMissing { .. })
    ));
    let dels = j.deliveries_of_document(docs[0].id).await.unwrap();
    assert!(dels[0].payload.is_empty());
    assert_eq!(j.documents_of_message(a).await.unwrap().len(), 1);
    assert!(!j.message_events(a).await.unwrap().is_empty());
    // The younger message is untouched.
    assert_eq!(j.read_raw(b).await.unwrap(), mail("b", 900));
    let bdoc = j.documents_of_message(b).await.unwrap();
    assert_eq!(
        j.deliveries_of_document(bdoc[0].id).await.unwrap()[0]
            .payload
            .len(),
        1500
    );
    // Nothing left to do for these classes; later the events class takes the rest.
    assert!(j.prune(&p, false, 500).await.unwrap().is_empty());
    p.events = Some(Duration::ZERO);
    let r = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(r.events.messages, 1);
    assert_eq!(r.events.bytes, 0, "its raw mail was already dropped");
    assert!(j.get_message(a).await.unwrap().is_none());
}

#[tokio::test]
async fn a_crash_between_rows_and_blobs_leaves_orphans_the_next_run_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let a = filed(&j, 1, &mail("a", 1200), true).await;
    let b = rejected(&j, 2).await;
    let horizon = boundary().await;
    let shas = [
        j.get_message(a).await.unwrap().unwrap().sha256,
        j.get_message(b).await.unwrap().unwrap().sha256,
    ];

    let mut p = policy(horizon);
    p.events = Some(Duration::ZERO);
    p.stop_before_blobs = true;
    let r = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(r.events.messages, 2);
    // Rows gone, files still there: orphans, never a row without its blob.
    assert!(j.get_message(a).await.unwrap().is_none());
    assert!(j.get_message(b).await.unwrap().is_none());
    for sha in &shas {
        assert!(j.blobs().contains(sha).unwrap());
    }

    // Young orphans are left alone (an intake may be about to commit their row)...
    p.stop_before_blobs = false;
    let r = j.prune(&p, false, 500).await.unwrap();
    assert!(r.is_empty(), "{r:?}");
    for sha in &shas {
        assert!(j.blobs().contains(sha).unwrap());
    }
    // ...and swept once older than the grace period.
    p.orphan_grace = Duration::ZERO;
    let dry = j.prune(&p, true, 500).await.unwrap();
    assert_eq!((dry.blobs.files, dry.blobs.orphans), (2, 2));
    let r = j.prune(&p, false, 500).await.unwrap();
    assert_eq!(counts(&r), counts(&dry));
    for sha in &shas {
        assert!(!j.blobs().contains(sha).unwrap());
    }
    let mut conn = raw_conn(&j).await;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT SUM(orphans) FROM prune_chunks WHERE run_id = ? AND class = 'blobs'",
    )
    .bind(r.run.unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(orphans, 2);
    conn.close().await.unwrap();
}

#[tokio::test]
async fn pruning_goes_in_small_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let mut ids = Vec::new();
    for uid in 1..=12 {
        ids.push(rejected(&j, uid).await);
    }
    let horizon = boundary().await;
    let per_message = j.message_events(ids[0]).await.unwrap().len() as u32;
    let mut p = policy(horizon);
    p.events = Some(Duration::ZERO);
    // About three messages per chunk.
    let r = j.prune(&p, false, 3 * (per_message + 1)).await.unwrap();
    assert_eq!(r.events.messages, 12);
    assert_eq!(r.chunks, 4);
    let mut conn = raw_conn(&j).await;
    let max: i64 = sqlx::query_scalar(
        "SELECT MAX(messages) FROM prune_chunks WHERE run_id = ? AND class = 'events'",
    )
    .bind(r.run.unwrap())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(max, 3);
    conn.close().await.unwrap();
    for id in ids {
        assert!(j.get_message(id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn the_daemon_task_prunes_on_its_period_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let j = std::sync::Arc::new(open(dir.path()).await);
    let old = rejected(&j, 1).await;
    let horizon = boundary().await;
    let young = rejected(&j, 2).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = relais_store::spawn_pruner(
        j.clone(),
        move || PrunePolicy {
            events: Some(Duration::ZERO),
            ..policy(horizon)
        },
        Duration::from_millis(200),
        500,
        shutdown,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while j.get_message(old).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "not pruned in 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(j.get_message(young).await.unwrap().is_some());
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops on shutdown")
        .unwrap();
}
