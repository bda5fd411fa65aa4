//! Messages: ingest and dedup, the state machine, the append-only event log, queries, reopening.

mod common;

use std::sync::Arc;

use common::{imap, ingest_new, mail, open};
use relais_store::{
    Actor, DedupBy, Event, IngestOutcome, IngestRequest, Journal, MessageFilter, MessageId,
    MessageState, SourceKey, SqliteJournal, StoreError, Timestamp, codes, event_kinds, sha256_hex,
};
use sqlx::Connection;

#[tokio::test]
async fn ingest_stores_row_blob_and_received_event() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let raw = mail("first", 5_000);
    let at = Timestamp(1_700_000_000_123);
    let id = match j
        .ingest(IngestRequest::new(imap(1), &raw, at))
        .await
        .unwrap()
    {
        IngestOutcome::New(id) => id,
        other => panic!("{other:?}"),
    };
    let m = j.get_message(id).await.unwrap().expect("row");
    assert_eq!(m.state, MessageState::Received);
    assert_eq!(m.source, imap(1));
    assert_eq!(m.message_id.as_deref(), Some("first@relais.test"));
    assert_eq!(m.sha256, sha256_hex(&raw));
    assert_eq!(m.size, raw.len() as u64);
    assert_eq!(m.received_at, at);
    assert!(m.last_error.is_none());
    assert_eq!(j.read_raw(id).await.unwrap(), raw);
    assert!(j.blobs().path_of(&m.sha256).unwrap().is_file());

    let events = j.message_events(id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, event_kinds::RECEIVED);
    assert_eq!(events[0].state_before, None);
    assert_eq!(events[0].state_after, Some(MessageState::Received));
    assert_eq!(events[0].actor, Actor::System);
    assert_eq!(events[0].detail["size"], raw.len());
}

#[tokio::test]
async fn dedup_by_imap_uid_and_by_message_id_plus_hash() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let a = mail("a", 2_000);
    let first = ingest_req(&j, imap(10), &a).await;
    let IngestOutcome::New(first) = first else {
        panic!("{first:?}")
    };

    // Same UID, even with other bytes (server re-delivers the slot): duplicate by source.
    let other = mail("other", 2_000);
    assert_eq!(
        ingest_req(&j, imap(10), &other).await,
        IngestOutcome::Duplicate {
            existing: first,
            by: DedupBy::Source
        }
    );
    // Same bytes under another UID (copied to another folder, fetched twice): by content.
    assert_eq!(
        ingest_req(&j, imap(11), &a).await,
        IngestOutcome::Duplicate {
            existing: first,
            by: DedupBy::MessageIdAndHash
        }
    );
    // Same UID under a new UIDVALIDITY is another message... whose bytes are the same: content.
    let renumbered = SourceKey::Imap {
        mailbox: "INBOX".into(),
        uidvalidity: 8,
        uid: 10,
    };
    assert!(matches!(
        ingest_req(&j, renumbered.clone(), &other).await,
        IngestOutcome::New(_)
    ));
    // Same Message-ID, different bytes (a resend with other headers): a new message.
    let mut resent = a.clone();
    resent.extend_from_slice(b"one more line\r\n");
    assert!(matches!(
        ingest_req(&j, imap(12), &resent).await,
        IngestOutcome::New(_)
    ));
    // No Message-ID: identical bytes from two UIDs are two messages (documented).
    let anonymous = b"From: a@b\r\nSubject: none\r\n\r\nbody".to_vec();
    assert!(matches!(
        ingest_req(&j, imap(20), &anonymous).await,
        IngestOutcome::New(_)
    ));
    assert!(matches!(
        ingest_req(&j, imap(21), &anonymous).await,
        IngestOutcome::New(_)
    ));

    // The duplicates are recorded on the original message, and no extra row or blob exists.
    let events = j.message_events(first).await.unwrap();
    let dups: Vec<_> = events
        .iter()
        .filter(|e| e.kind == event_kinds::DUPLICATE_SEEN)
        .collect();
    assert_eq!(dups.len(), 2);
    assert_eq!(dups[0].detail["by"], "source");
    assert_eq!(dups[1].detail["by"], "message_id_and_hash");
    let all = j.list_messages(&MessageFilter::default()).await.unwrap();
    assert_eq!(all.len(), 5);
    // Blobs: a, other, resent, anonymous (the duplicate `other` under UID 10 was not written).
    let blob_count: usize = std::fs::read_dir(j.blobs().root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "tmp")
        .map(|p| std::fs::read_dir(p).unwrap().count())
        .sum();
    assert_eq!(blob_count, 4);
}

#[tokio::test]
async fn dedup_by_maildir_name_but_not_by_folder_path() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let md = |name: &str| SourceKey::Maildir {
        folder: "/var/mail/relais".into(),
        name: name.into(),
    };
    let IngestOutcome::New(first) = ingest_req(&j, md("1700.M1P2.host"), &mail("m1", 100)).await
    else {
        panic!()
    };
    assert_eq!(
        ingest_req(&j, md("1700.M1P2.host"), &mail("m2", 100)).await,
        IngestOutcome::Duplicate {
            existing: first,
            by: DedupBy::Source
        }
    );
    let f = SourceKey::Folder {
        path: "/srv/out/cr.xml".into(),
    };
    let mut plain = b"no header section, just a file".to_vec();
    assert!(matches!(
        ingest_req(&j, f.clone(), &plain).await,
        IngestOutcome::New(_)
    ));
    plain.push(b'!');
    assert!(matches!(
        ingest_req(&j, f, &plain).await,
        IngestOutcome::New(_)
    ));
}

#[tokio::test]
async fn explicit_message_id_overrides_the_header_scan() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let raw = b"Subject: x\r\n\r\nbody".to_vec();
    let mut req = IngestRequest::new(imap(1), &raw, Timestamp::now());
    assert_eq!(req.message_id, None);
    req.message_id = Some("given@parser".into());
    let IngestOutcome::New(id) = j.ingest(req).await.unwrap() else {
        panic!()
    };
    let mut again = IngestRequest::new(imap(2), &raw, Timestamp::now());
    again.message_id = Some("given@parser".into());
    assert_eq!(
        j.ingest(again).await.unwrap(),
        IngestOutcome::Duplicate {
            existing: id,
            by: DedupBy::MessageIdAndHash
        }
    );
}

#[tokio::test]
async fn legal_path_to_filed_and_illegal_transitions() {
    use MessageState::*;
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let id = ingest_new(&j, 1, "path").await;
    for (from, to) in [
        (Received, Parsed),
        (Parsed, Validated),
        (Validated, AwaitingReview),
        (AwaitingReview, Matched),
        (Matched, Filed),
    ] {
        j.transition(id, from, to, Event::system(to.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
    }
    assert_eq!(j.get_message(id).await.unwrap().unwrap().state, Filed);

    // Filed is terminal; no skipping steps; no same-state "transition".
    for to in MessageState::ALL {
        let err = j
            .transition(id, Filed, to, Event::system("x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::STORE_ILLEGAL_TRANSITION, "filed -> {to}");
    }
    let other = ingest_new(&j, 2, "skip").await;
    for to in [Validated, Matched, Filed, Received] {
        let err = j
            .transition(other, Received, to, Event::system("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::IllegalTransition { .. }),
            "{to}: {err}"
        );
    }
    // Wrong `from`: refused with the actual state, nothing written.
    let err = j
        .transition(other, Parsed, Validated, Event::system("x"))
        .await
        .unwrap_err();
    match err {
        StoreError::StaleState {
            id,
            expected,
            actual,
        } => {
            assert_eq!((id, expected, actual), (other, Parsed, Received));
        }
        e => panic!("{e}"),
    }
    assert_eq!(j.message_events(other).await.unwrap().len(), 1);
    // Unknown message.
    let err = j
        .transition(MessageId(9_999), Received, Parsed, Event::system("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_UNKNOWN_ID);

    // Reject, then an operator reprocesses.
    j.transition(
        other,
        Received,
        Rejected,
        Event::system("rejected").with_error("MSS-NO-XDM", "no IHE_XDM.zip attachment"),
    )
    .await
    .unwrap();
    let m = j.get_message(other).await.unwrap().unwrap();
    assert_eq!(m.last_error.as_ref().unwrap().code, "MSS-NO-XDM");
    j.transition(other, Rejected, Received, Event::user("reprocess", "alice"))
        .await
        .unwrap();
    let m = j.get_message(other).await.unwrap().unwrap();
    assert_eq!(m.state, Received);
    assert!(
        m.last_error.is_none(),
        "a transition without error clears last_error"
    );

    let events = j.message_events(other).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "reprocess");
    assert_eq!(last.actor, Actor::User("alice".into()));
    assert_eq!(
        (last.state_before, last.state_after),
        (Some(Rejected), Some(Received))
    );
    assert_eq!(events.len(), 3);
}

#[test]
fn state_machine_table() {
    use MessageState::*;
    assert!(Filed.is_terminal());
    for s in [
        Received,
        Parsed,
        Validated,
        Matched,
        Rejected,
        AwaitingReview,
    ] {
        assert!(!s.is_terminal(), "{s}");
        assert!(!s.can_transition_to(s), "{s} -> {s}");
        assert_eq!(MessageState::parse(s.as_str()), Some(s));
    }
    assert!(!Rejected.can_transition_to(Filed));
    assert!(!Received.can_transition_to(Matched));
    assert_eq!(MessageState::parse("quarantined"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transitions_only_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(open(dir.path()).await);
    let id = ingest_new(j.as_ref(), 1, "race").await;
    let targets = [
        MessageState::Parsed,
        MessageState::Rejected,
        MessageState::AwaitingReview,
    ];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let j = Arc::clone(&j);
        let to = targets[i % targets.len()];
        tasks.push(tokio::spawn(async move {
            let r = j
                .transition(
                    id,
                    MessageState::Received,
                    to,
                    Event::system("race").with_detail(serde_json::json!({ "worker": i })),
                )
                .await;
            (to, r)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (to, r) = t.await.unwrap();
        match r {
            Ok(()) => winners.push(to),
            Err(StoreError::StaleState { actual, .. }) => {
                assert_ne!(actual, MessageState::Received)
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one worker wins");
    let m = j.get_message(id).await.unwrap().unwrap();
    assert_eq!(m.state, winners[0]);
    assert_eq!(j.message_events(id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_journals_on_one_database_race_fairly() {
    // Two independent handles (like the daemon and a CLI process): SQLite's file lock and the
    // busy timeout arbitrate, the state check decides.
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(open(dir.path()).await);
    let b = Arc::new(open(dir.path()).await);
    let mut ids = Vec::new();
    for uid in 0..20 {
        ids.push(ingest_new(a.as_ref(), uid, &format!("m{uid}")).await);
    }
    let run = |j: Arc<SqliteJournal>, to: MessageState, ids: Vec<MessageId>| {
        tokio::spawn(async move {
            let mut won = 0;
            for id in ids {
                match j
                    .transition(id, MessageState::Received, to, Event::system("race"))
                    .await
                {
                    Ok(()) => won += 1,
                    Err(StoreError::StaleState { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            won
        })
    };
    let ta = run(Arc::clone(&a), MessageState::Parsed, ids.clone());
    let tb = run(Arc::clone(&b), MessageState::Rejected, ids.clone());
    let (wa, wb) = (ta.await.unwrap(), tb.await.unwrap());
    assert_eq!(wa + wb, 20);
    let counts = b.counts_by_state().await.unwrap();
    let get = |s| counts.iter().find(|(st, _)| *st == s).unwrap().1;
    assert_eq!(get(MessageState::Parsed), wa);
    assert_eq!(get(MessageState::Rejected), wb);
    assert_eq!(get(MessageState::Received), 0);
}

#[tokio::test]
async fn events_are_append_only_even_for_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let id = ingest_new(&j, 1, "audit").await;
    j.transition(
        id,
        MessageState::Received,
        MessageState::Parsed,
        Event::system("parsed"),
    )
    .await
    .unwrap();
    let before = j.message_events(id).await.unwrap();

    let url = format!("sqlite://{}", j.database_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for sql in [
        "UPDATE events SET kind = 'forged'",
        "UPDATE events SET actor_kind = 'user', actor_name = 'mallory' WHERE id = 1",
        "DELETE FROM events WHERE id = 1",
        "DELETE FROM events",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains(codes::STORE_EVENT_IMMUTABLE),
            "{sql}: {err}"
        );
    }
    // The message cannot be deleted from under its trail either (foreign key).
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        sqlx::query("DELETE FROM messages WHERE id = ?")
            .bind(id.0)
            .execute(&mut conn)
            .await
            .is_err()
    );
    conn.close().await.unwrap();
    assert_eq!(j.message_events(id).await.unwrap(), before);
}

#[tokio::test]
async fn record_event_keeps_state_and_sets_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let id = ingest_new(&j, 1, "err").await;
    j.record_event(
        id,
        Event::system("parse_retry").with_error("STORE-DB", "transient"),
    )
    .await
    .unwrap();
    let m = j.get_message(id).await.unwrap().unwrap();
    assert_eq!(m.state, MessageState::Received);
    assert_eq!(m.last_error.unwrap().text, "transient");
    let ev = j.message_events(id).await.unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!((ev[1].state_before, ev[1].state_after), (None, None));
    // Empty kinds and unknown messages are refused.
    assert_eq!(
        j.record_event(id, Event::system(""))
            .await
            .unwrap_err()
            .code(),
        codes::STORE_INVALID_INPUT
    );
    assert_eq!(
        j.record_event(MessageId(77), Event::system("x"))
            .await
            .unwrap_err()
            .code(),
        codes::STORE_UNKNOWN_ID
    );
}

#[tokio::test]
async fn list_filters_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let mut ids = Vec::new();
    for uid in 0..6u32 {
        let raw = mail(&format!("l{uid}"), 200);
        let at = Timestamp(1_000_000 + i64::from(uid) * 1000);
        let IngestOutcome::New(id) = j
            .ingest(IngestRequest::new(imap(uid), &raw, at))
            .await
            .unwrap()
        else {
            panic!()
        };
        ids.push(id);
    }
    for &id in &ids[..2] {
        j.transition(
            id,
            MessageState::Received,
            MessageState::Parsed,
            Event::system("p"),
        )
        .await
        .unwrap();
    }
    let parsed = j
        .list_messages(&MessageFilter {
            state: Some(MessageState::Parsed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        parsed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]],
        "newest first"
    );
    let window = j
        .list_messages(&MessageFilter {
            received_from: Some(Timestamp(1_002_000)),
            received_until: Some(Timestamp(1_004_000)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    let page1 = j
        .list_messages(&MessageFilter {
            limit: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 4);
    let page2 = j
        .list_messages(&MessageFilter {
            limit: 4,
            before: Some(page1.last().unwrap().id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );

    let counts = j.counts_by_state().await.unwrap();
    assert_eq!(counts.len(), MessageState::ALL.len());
    assert!(counts.contains(&(MessageState::Received, 4)));
    assert!(counts.contains(&(MessageState::Parsed, 2)));
    assert!(counts.contains(&(MessageState::Filed, 0)));
}

#[tokio::test]
async fn read_raw_detects_a_tampered_blob() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let id = ingest_new(&j, 1, "tamper").await;
    let m = j.get_message(id).await.unwrap().unwrap();
    let path = j.blobs().path_of(&m.sha256).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(
        j.read_raw(id).await.unwrap_err().code(),
        codes::STORE_BLOB_CORRUPT
    );
}

#[tokio::test]
async fn reopening_after_a_drop_keeps_committed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (id, raw) = {
        let j = open(dir.path()).await;
        let raw = mail("persist", 10_000);
        let IngestOutcome::New(id) = j
            .ingest(IngestRequest::new(imap(3), &raw, Timestamp::now()))
            .await
            .unwrap()
        else {
            panic!()
        };
        j.transition(
            id,
            MessageState::Received,
            MessageState::Parsed,
            Event::system("p"),
        )
        .await
        .unwrap();
        // Dropped without close(): the "crash" of a process that did not shut down.
        (id, raw)
    };
    let j = open(dir.path()).await;
    let m = j.get_message(id).await.unwrap().expect("row survives");
    assert_eq!(m.state, MessageState::Parsed);
    assert_eq!(j.read_raw(id).await.unwrap(), raw);
    assert_eq!(j.message_events(id).await.unwrap().len(), 2);
    // Dedup still works across the restart (the source re-delivers after the crash).
    assert_eq!(
        ingest_req(&j, imap(3), &raw).await,
        IngestOutcome::Duplicate {
            existing: id,
            by: DedupBy::Source
        }
    );
    // Migrations are not re-applied destructively: the schema is current and ids keep growing.
    let next = ingest_new(&j, 4, "after").await;
    assert!(next > id);
    j.close().await;
}

async fn ingest_req(j: &SqliteJournal, source: SourceKey, raw: &[u8]) -> IngestOutcome {
    j.ingest(IngestRequest::new(source, raw, Timestamp::now()))
        .await
        .unwrap()
}
