//! The PostgreSQL journal against a real PostgreSQL server (Debian's, started by the test): the
//! behaviour the SQLite journal's tests check, plus what several instances sharing one database
//! need (each "instance" is its own `PgJournal` with its own connection pool).

mod common;
mod pg;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{imap, ingest_new, mail, new_doc};
use pg::{fresh, open_url, raw, server};
use relais_store::{
    Actor, AnswerState, DedupBy, DeliveryId, DeliveryState, DocId, DocumentKey, DocumentMeta,
    DocumentOutcome, DocumentState, DocumentUpdate, Event, IngestOutcome, IngestRequest, Ins,
    InsMatch, Journal, MessageFilter, MessageId, MessageState, Outcome, PatientRecord, PgConfig,
    PgJournal, Resolution, ReviewFilter, ReviewStatus, ReviewSubject, SourceKey, StoreError,
    Timestamp, codes, event_kinds, sha256_hex,
};
use serde_json::json;
use sqlx::Connection;

const SINK: &str = "dpi-mllp";
const LONG: Duration = Duration::from_secs(60);
const NIR_OID: &str = "1.2.250.1.213.1.4.8";

async fn ingest_req(j: &dyn Journal, source: SourceKey, raw: &[u8]) -> IngestOutcome {
    j.ingest(IngestRequest::new(source, raw, Timestamp::now()))
        .await
        .unwrap()
}

fn key(cda: &str, set: &str, version: Option<i64>) -> DocumentKey {
    DocumentKey {
        cda_id: cda.into(),
        set_id: set.into(),
        version,
    }
}

async fn count(url: &str, sql: &'static str) -> i64 {
    let mut c = raw(url).await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}

// --- Messages --------------------------------------------------------------------------------

#[tokio::test]
async fn ingest_stores_row_blob_in_the_database_and_received_event() {
    let (j, url) = fresh("ingest").await;
    let raw_mail = mail("first", 5_000);
    let at = Timestamp(1_700_000_000_123);
    let IngestOutcome::New(id) = ingest_req(&j, imap(1), &raw_mail).await else {
        panic!("new")
    };
    let m = j.get_message(id).await.unwrap().expect("row");
    assert_eq!(m.state, MessageState::Received);
    assert_eq!(m.source, imap(1));
    assert_eq!(m.message_id.as_deref(), Some("first@relais.test"));
    assert_eq!(m.sha256, sha256_hex(&raw_mail));
    assert_eq!(m.size, raw_mail.len() as u64);
    assert!(m.last_error.is_none());
    assert_eq!(j.read_raw(id).await.unwrap(), raw_mail);
    // The raw mail is in the database (any instance on any host can read it).
    let mut c = raw(&url).await;
    let (size, data): (i64, Vec<u8>) =
        sqlx::query_as("SELECT size, data FROM blobs WHERE sha256 = $1")
            .bind(&m.sha256)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!((size as usize, data), (raw_mail.len(), raw_mail.clone()));

    let events = j.message_events(id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, event_kinds::RECEIVED);
    assert_eq!(events[0].state_before, None);
    assert_eq!(events[0].state_after, Some(MessageState::Received));
    assert_eq!(events[0].actor, Actor::System);
    assert_eq!(events[0].detail["size"], raw_mail.len());
    // Journal times come from the database clock, in milliseconds, shared by row and event.
    assert_eq!(events[0].at, m.created_at);
    assert!((m.created_at.0 - Timestamp::now().0).abs() < 60_000);

    // received_at as given.
    let IngestOutcome::New(id2) = j
        .ingest(IngestRequest::new(imap(2), &mail("second", 100), at))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(j.get_message(id2).await.unwrap().unwrap().received_at, at);
}

#[tokio::test]
async fn dedup_by_imap_uid_and_by_message_id_plus_hash() {
    let (j, url) = fresh("dedup").await;
    let a = mail("a", 2_000);
    let IngestOutcome::New(first) = ingest_req(&j, imap(10), &a).await else {
        panic!()
    };
    let other = mail("other", 2_000);
    assert_eq!(
        ingest_req(&j, imap(10), &other).await,
        IngestOutcome::Duplicate {
            existing: first,
            by: DedupBy::Source
        }
    );
    assert_eq!(
        ingest_req(&j, imap(11), &a).await,
        IngestOutcome::Duplicate {
            existing: first,
            by: DedupBy::MessageIdAndHash
        }
    );
    let renumbered = SourceKey::Imap {
        mailbox: "INBOX".into(),
        uidvalidity: 8,
        uid: 10,
    };
    assert!(matches!(
        ingest_req(&j, renumbered, &other).await,
        IngestOutcome::New(_)
    ));
    let mut resent = a.clone();
    resent.extend_from_slice(b"one more line\r\n");
    assert!(matches!(
        ingest_req(&j, imap(12), &resent).await,
        IngestOutcome::New(_)
    ));
    let anonymous = b"From: a@b\r\nSubject: none\r\n\r\nbody".to_vec();
    assert!(matches!(
        ingest_req(&j, imap(20), &anonymous).await,
        IngestOutcome::New(_)
    ));
    assert!(matches!(
        ingest_req(&j, imap(21), &anonymous).await,
        IngestOutcome::New(_)
    ));

    let events = j.message_events(first).await.unwrap();
    let dups: Vec<_> = events
        .iter()
        .filter(|e| e.kind == event_kinds::DUPLICATE_SEEN)
        .collect();
    assert_eq!(dups.len(), 2);
    assert_eq!(dups[0].detail["by"], "source");
    assert_eq!(dups[1].detail["by"], "message_id_and_hash");
    assert_eq!(
        j.list_messages(&MessageFilter::default())
            .await
            .unwrap()
            .len(),
        5
    );
    // Blobs: a, other, resent, anonymous (stored once for its two messages; the duplicate
    // `other` under UID 10 was not stored).
    assert_eq!(count(&url, "SELECT COUNT(*) FROM blobs").await, 4);
}

#[tokio::test]
async fn dedup_by_maildir_name_but_not_by_folder_path() {
    let (j, _) = fresh("maildir").await;
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
        ingest_req(&j, f.clone(), &plain).await,
        IngestOutcome::New(_)
    ));
    let m = j.get_message(first).await.unwrap().unwrap();
    assert_eq!(m.source, md("1700.M1P2.host"));
}

#[tokio::test]
async fn explicit_message_id_overrides_the_header_scan() {
    let (j, _) = fresh("msgid").await;
    let raw_mail = b"Subject: x\r\n\r\nbody".to_vec();
    let mut req = IngestRequest::new(imap(1), &raw_mail, Timestamp::now());
    req.message_id = Some("given@parser".into());
    let IngestOutcome::New(id) = j.ingest(req).await.unwrap() else {
        panic!()
    };
    let mut again = IngestRequest::new(imap(2), &raw_mail, Timestamp::now());
    again.message_id = Some("given@parser".into());
    assert_eq!(
        j.ingest(again).await.unwrap(),
        IngestOutcome::Duplicate {
            existing: id,
            by: DedupBy::MessageIdAndHash
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ingests_of_one_mail_by_several_instances_store_it_once() {
    let (a, url) = fresh("ingest_race").await;
    let b = open_url(&url).await;
    let c = open_url(&url).await;
    let instances: Vec<Arc<dyn Journal>> = vec![Arc::new(a), Arc::new(b), Arc::new(c)];
    const MAILS: u32 = 40;
    // Round 1: the three instances fetch the same IMAP UID at the same moment.
    // Round 2: the same bytes reach each instance under its own UID (content dedup).
    for round in 0..2u32 {
        let mut per_mail = Vec::new();
        for n in 0..MAILS {
            let raw_mail = mail(&format!("race-{round}-{n}"), 3_000);
            let mut tasks = Vec::new();
            for (i, j) in instances.iter().enumerate() {
                let j = Arc::clone(j);
                let raw_mail = raw_mail.clone();
                let uid = if round == 0 {
                    n
                } else {
                    10_000 + n * 10 + i as u32
                };
                tasks.push(tokio::spawn(async move {
                    j.ingest(IngestRequest::new(imap(uid), &raw_mail, Timestamp::now()))
                        .await
                        .unwrap()
                }));
            }
            per_mail.push(tasks);
        }
        for (n, tasks) in per_mail.into_iter().enumerate() {
            let mut new = Vec::new();
            let mut dups = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    IngestOutcome::New(id) => new.push(id),
                    IngestOutcome::Duplicate { existing, by } => dups.push((existing, by)),
                }
            }
            assert_eq!(new.len(), 1, "round {round} mail {n}: exactly one New");
            assert_eq!(dups.len(), 2, "round {round} mail {n}");
            let expected_by = if round == 0 {
                DedupBy::Source
            } else {
                DedupBy::MessageIdAndHash
            };
            for (existing, by) in dups {
                assert_eq!((existing, by), (new[0], expected_by));
            }
            let events = instances[0].message_events(new[0]).await.unwrap();
            assert_eq!(
                events
                    .iter()
                    .filter(|e| e.kind == event_kinds::DUPLICATE_SEEN)
                    .count(),
                2
            );
        }
    }
    let total = i64::from(MAILS * 2);
    assert_eq!(count(&url, "SELECT COUNT(*) FROM messages").await, total);
    assert_eq!(count(&url, "SELECT COUNT(*) FROM blobs").await, total);
}

#[tokio::test]
async fn legal_path_to_filed_and_illegal_transitions() {
    use MessageState::*;
    let (j, _) = fresh("transitions").await;
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
    match j
        .transition(other, Parsed, Validated, Event::system("x"))
        .await
        .unwrap_err()
    {
        StoreError::StaleState {
            id,
            expected,
            actual,
        } => assert_eq!((id, expected, actual), (other, Parsed, Received)),
        e => panic!("{e}"),
    }
    assert_eq!(j.message_events(other).await.unwrap().len(), 1);
    let err = j
        .transition(MessageId(9_999), Received, Parsed, Event::system("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_UNKNOWN_ID);

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
    assert!(m.last_error.is_none());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transitions_only_one_wins() {
    let (j, url) = fresh("transition_race").await;
    let other = open_url(&url).await;
    let instances: [Arc<dyn Journal>; 2] = [Arc::new(j), Arc::new(other)];
    let id = ingest_new(instances[0].as_ref(), 1, "race").await;
    let targets = [
        MessageState::Parsed,
        MessageState::Rejected,
        MessageState::AwaitingReview,
    ];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let j = Arc::clone(&instances[i % 2]);
        let to = targets[i % targets.len()];
        tasks.push(tokio::spawn(async move {
            let r = j
                .transition(
                    id,
                    MessageState::Received,
                    to,
                    Event::system("race").with_detail(json!({ "worker": i })),
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
    let m = instances[1].get_message(id).await.unwrap().unwrap();
    assert_eq!(m.state, winners[0]);
    assert_eq!(instances[0].message_events(id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_race_fairly() {
    let (a, url) = fresh("fair_race").await;
    let a = Arc::new(a);
    let b = Arc::new(open_url(&url).await);
    let mut ids = Vec::new();
    for uid in 0..20 {
        ids.push(ingest_new(a.as_ref(), uid, &format!("m{uid}")).await);
    }
    let run = |j: Arc<PgJournal>, to: MessageState, ids: Vec<MessageId>| {
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
    let (j, url) = fresh("append_only").await;
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

    let mut conn = raw(&url).await;
    for sql in [
        "UPDATE events SET kind = 'forged'",
        "UPDATE events SET actor_kind = 'user', actor_name = 'mallory' WHERE id = 1",
        "DELETE FROM events WHERE id = 1",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains(codes::STORE_EVENT_IMMUTABLE),
            "{sql}: {err}"
        );
        // The journal's error type recognises the refusal.
        assert!(
            matches!(StoreError::from(err), StoreError::EventImmutable),
            "{sql}"
        );
    }
    // The message cannot be deleted from under its trail either (foreign key).
    assert!(
        sqlx::query("DELETE FROM messages WHERE id = $1")
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
    let (j, _) = fresh("record_event").await;
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
async fn nul_characters_in_free_text_are_kept_readable_and_refused_in_keys() {
    let (j, _) = fresh("nul").await;
    let id = ingest_new(&j, 1, "nul").await;
    // PostgreSQL text cannot hold NUL: free text keeps everything else.
    j.record_event(
        id,
        Event::system("parse_retry")
            .with_error("MSS-PARSE", "bad byte \0 here")
            .with_detail(json!({ "quote": "a\0b", "k\0": [1, "\0"] })),
    )
    .await
    .unwrap();
    let m = j.get_message(id).await.unwrap().unwrap();
    assert_eq!(m.last_error.unwrap().text, "bad byte \u{FFFD} here");
    let ev = j.message_events(id).await.unwrap();
    assert_eq!(
        ev[1].detail,
        json!({ "quote": "a\u{FFFD}b", "k\u{FFFD}": [1, "\u{FFFD}"] })
    );
    let doc = new_doc(&j, id, "D", "S", 1).await;
    let err = j
        .enqueue_delivery(doc, "sink\0", "k", vec![], "P1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_INVALID_INPUT);
}

#[tokio::test]
async fn list_filters_counts_and_oldest_first_pages() {
    let (j, _) = fresh("lists").await;
    let mut ids = Vec::new();
    for uid in 0..6u32 {
        let raw_mail = mail(&format!("l{uid}"), 200);
        let at = Timestamp(1_000_000 + i64::from(uid) * 1000);
        let IngestOutcome::New(id) = j
            .ingest(IngestRequest::new(imap(uid), &raw_mail, at))
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
    let ids_of = |v: Vec<relais_store::MessageRecord>| v.into_iter().map(|m| m.id).collect();
    let parsed: Vec<MessageId> = ids_of(
        j.list_messages(&MessageFilter {
            state: Some(MessageState::Parsed),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(parsed, vec![ids[1], ids[0]], "newest first");
    let window: Vec<MessageId> = ids_of(
        j.list_messages(&MessageFilter {
            received_from: Some(Timestamp(1_002_000)),
            received_until: Some(Timestamp(1_004_000)),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(window, vec![ids[3], ids[2]]);
    let page1 = j
        .list_messages(&MessageFilter {
            limit: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 4);
    let page2: Vec<MessageId> = ids_of(
        j.list_messages(&MessageFilter {
            limit: 4,
            before: Some(page1.last().unwrap().id),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    assert_eq!(page2, vec![ids[1], ids[0]]);

    let counts = j.counts_by_state().await.unwrap();
    assert_eq!(counts.len(), MessageState::ALL.len());
    assert!(counts.contains(&(MessageState::Received, 4)));
    assert!(counts.contains(&(MessageState::Parsed, 2)));
    assert!(counts.contains(&(MessageState::Filed, 0)));

    // Work is taken oldest first, in pages.
    let page = |after, limit| {
        let j = &j;
        async move {
            ids_of(
                j.oldest_in_state(MessageState::Received, after, limit)
                    .await
                    .unwrap(),
            )
        }
    };
    let p: Vec<MessageId> = page(None, 2).await;
    assert_eq!(p, vec![ids[2], ids[3]]);
    let p: Vec<MessageId> = page(Some(ids[3]), 10).await;
    assert_eq!(p, vec![ids[4], ids[5]]);
    let p: Vec<MessageId> = page(Some(ids[5]), 10).await;
    assert!(p.is_empty());
}

#[tokio::test]
async fn an_outcome_makes_the_answer_due_once() {
    let (j, _) = fresh("answers").await;
    let a = ingest_new(&j, 1, "a").await;
    let b = ingest_new(&j, 2, "b").await;
    assert!(j.answers_due(10).await.unwrap().is_empty());
    j.transition(
        a,
        MessageState::Received,
        MessageState::AwaitingReview,
        Event::system("awaiting_review").with_error("902", "Identifiant patient inconnu"),
    )
    .await
    .unwrap();
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
    j.transition(
        b,
        MessageState::Parsed,
        MessageState::Rejected,
        Event::system("rejected").with_error("XDM-HASH-MISMATCH", "hash"),
    )
    .await
    .unwrap();
    assert_eq!(j.answers_due(10).await.unwrap(), vec![b]);
    assert!(
        j.message_events(a)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == event_kinds::ANSWER_SENT)
    );
    assert_eq!(
        j.record_answer(MessageId(404), AnswerState::Sent, Event::system("x"))
            .await
            .unwrap_err()
            .code(),
        codes::STORE_UNKNOWN_ID
    );
}

#[tokio::test]
async fn read_raw_detects_a_tampered_or_missing_blob() {
    let (j, url) = fresh("tamper").await;
    let id = ingest_new(&j, 1, "tamper").await;
    let m = j.get_message(id).await.unwrap().unwrap();
    let mut c = raw(&url).await;
    sqlx::query(
        "UPDATE blobs SET data = set_byte(data, 0, get_byte(data, 0) # 1) WHERE sha256 = $1",
    )
    .bind(&m.sha256)
    .execute(&mut c)
    .await
    .unwrap();
    assert_eq!(
        j.read_raw(id).await.unwrap_err().code(),
        codes::STORE_BLOB_CORRUPT
    );
    sqlx::query("DELETE FROM blobs WHERE sha256 = $1")
        .bind(&m.sha256)
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(
        j.read_raw(id).await.unwrap_err().code(),
        codes::STORE_BLOB_MISSING
    );
    assert_eq!(
        j.read_raw(MessageId(404)).await.unwrap_err().code(),
        codes::STORE_UNKNOWN_ID
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_committed_rows_and_instances_migrate_once() {
    let url = pg::fresh_url("reopen");
    // Three instances start at once on an empty database: the migrations run once.
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open_url(&url).await })
        })
        .collect();
    let mut instances = Vec::new();
    for o in opens {
        instances.push(o.await.unwrap());
    }
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        4,
        "0001, 0002, 0003 and 0005, once each"
    );
    let raw_mail = mail("persist", 10_000);
    let IngestOutcome::New(id) = ingest_req(&instances[0], imap(3), &raw_mail).await else {
        panic!()
    };
    instances[1]
        .transition(
            id,
            MessageState::Received,
            MessageState::Parsed,
            Event::system("p"),
        )
        .await
        .unwrap();
    // Every instance "crashes" (dropped without close).
    drop(instances);
    let j = open_url(&url).await;
    let m = j.get_message(id).await.unwrap().expect("row survives");
    assert_eq!(m.state, MessageState::Parsed);
    assert_eq!(j.read_raw(id).await.unwrap(), raw_mail);
    assert_eq!(j.message_events(id).await.unwrap().len(), 2);
    assert_eq!(
        ingest_req(&j, imap(3), &raw_mail).await,
        IngestOutcome::Duplicate {
            existing: id,
            by: DedupBy::Source
        }
    );
    let next = ingest_new(&j, 4, "after").await;
    assert!(next > id);
    j.close().await;
}

#[tokio::test]
async fn connection_errors_say_what_to_check_without_the_password() {
    let s = server();
    let db = s.create_database_named("conn_errors");
    // A wrong password.
    let bad = s.url_for(&db).replace(
        relais_testsupport::postgres::PgServer::PASSWORD,
        "wrong-secret",
    );
    let err = PgJournal::open(&bad).await.unwrap_err();
    assert_eq!(err.code(), codes::STORE_OPEN);
    let text = err.to_string();
    assert!(text.contains("pg_hba.conf"), "{text}");
    assert!(!text.contains("wrong-secret"), "{text}");
    // Nobody listening.
    let mut cfg = PgConfig::new("postgres://relais:pw@127.0.0.1:1/none");
    cfg.acquire_timeout = Duration::from_secs(5);
    let err = PgJournal::open_with(cfg).await.unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    // Debug output of the configuration never shows the URL.
    let shown = format!("{:?}", PgConfig::new(s.url_for(&db)));
    assert!(
        !shown.contains(relais_testsupport::postgres::PgServer::PASSWORD),
        "{shown}"
    );
}

#[tokio::test]
async fn tls_with_the_server_certificate_verified() {
    let s = server();
    let db = s.create_database_named("tls");
    let j = open_url(&s.tls_url_for(&db)).await;
    let id = ingest_new(&j, 1, "over-tls").await;
    assert_eq!(
        j.get_message(id).await.unwrap().unwrap().state,
        MessageState::Received
    );
    let mut c = raw(&s.tls_url_for(&db)).await;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");
    // A server whose certificate does not chain to the configured root is refused.
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        s.url_for(&db),
        s.pki().other_root_ca.display()
    );
    let err = PgJournal::open(&wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn an_instance_on_the_database_host_may_use_the_unix_socket() {
    let s = server();
    let db = s.create_database_named("socket");
    let j = open_url(&s.socket_url_for(&db)).await;
    let id = ingest_new(&j, 1, "via-socket").await;
    let other = open_url(&s.url_for(&db)).await;
    assert_eq!(
        other.read_raw(id).await.unwrap(),
        j.read_raw(id).await.unwrap()
    );
}

// --- Documents -------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_new_version_and_older_version() {
    let (j, _) = fresh("doc_versions").await;
    let m1 = ingest_new(&j, 1, "d1").await;
    let m2 = ingest_new(&j, 2, "d2").await;
    let m3 = ingest_new(&j, 3, "d3").await;
    let set = "1.2.250.1.999.1^SET-42";
    let meta = DocumentMeta {
        type_code: Some("11490-0".into()),
        validation: Some(json!({ "errors": 0, "warnings": 2 })),
        ..Default::default()
    };
    let DocumentOutcome::New(v1) = j
        .register_document(m1, &key("1.2.250.1.999.2^DOC-1", set, Some(1)), &meta)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        j.register_document(m2, &key("1.2.250.1.999.2^DOC-1", set, Some(1)), &meta)
            .await
            .unwrap(),
        DocumentOutcome::Duplicate(v1)
    );
    let DocumentOutcome::NewVersion { doc: v2, replaces } = j
        .register_document(m2, &key("1.2.250.1.999.2^DOC-2", set, Some(2)), &meta)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(replaces, v1);
    for late in [Some(1), Some(2), None] {
        assert_eq!(
            j.register_document(m3, &key("1.2.250.1.999.2^DOC-LATE", set, late), &meta)
                .await
                .unwrap(),
            DocumentOutcome::OlderVersion { current: v2 },
            "{late:?}"
        );
    }
    let DocumentOutcome::NewVersion { doc: v3, replaces } = j
        .register_document(m3, &key("1.2.250.1.999.2^DOC-3", set, Some(3)), &meta)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(replaces, v2);
    let d1 = j.get_document(v1).await.unwrap().unwrap();
    assert_eq!(d1.superseded_by, Some(v2));
    assert_eq!(d1.type_code.as_deref(), Some("11490-0"));
    assert_eq!(d1.validation, Some(json!({ "errors": 0, "warnings": 2 })));
    assert_eq!(d1.state, DocumentState::Registered);
    assert_eq!(d1.message_id, m1);
    let d3 = j.get_document(v3).await.unwrap().unwrap();
    assert_eq!((d3.replaces, d3.superseded_by), (Some(v2), None));
    assert_eq!(j.documents_of_message(m3).await.unwrap().len(), 1);
    assert_eq!(j.documents_of_message(m2).await.unwrap().len(), 1);
    let outcomes: Vec<String> = j
        .message_events(m3)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == event_kinds::DOCUMENT_REGISTERED)
        .map(|e| e.detail["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        [
            "older_version",
            "older_version",
            "older_version",
            "new_version"
        ]
    );
}

#[tokio::test]
async fn absent_version_counts_as_one_and_sets_are_independent() {
    let (j, _) = fresh("doc_sets").await;
    let m = ingest_new(&j, 1, "v").await;
    let meta = DocumentMeta::default();
    let DocumentOutcome::New(a) = j
        .register_document(m, &key("A", "SET-A", None), &meta)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        j.register_document(m, &key("A2", "SET-A", Some(2)), &meta)
            .await
            .unwrap(),
        DocumentOutcome::NewVersion { replaces, .. } if replaces == a
    ));
    assert!(matches!(
        j.register_document(m, &key("B", "SET-B", Some(5)), &meta)
            .await
            .unwrap(),
        DocumentOutcome::New(_)
    ));
}

#[tokio::test]
async fn update_document_and_refusals() {
    let (j, _) = fresh("doc_update").await;
    let m = ingest_new(&j, 1, "u").await;
    let doc = new_doc(&j, m, "X", "SET-X", 1).await;
    j.update_document(
        doc,
        &DocumentUpdate {
            state: Some(DocumentState::Matched),
            patient_ipp: Some("IPP0001".into()),
            validation: None,
        },
    )
    .await
    .unwrap();
    let d = j.get_document(doc).await.unwrap().unwrap();
    assert_eq!(d.state, DocumentState::Matched);
    assert_eq!(d.patient_ipp.as_deref(), Some("IPP0001"));
    assert_eq!(d.validation, None);
    j.update_document(
        doc,
        &DocumentUpdate {
            validation: Some(json!({ "errors": 1 })),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let d = j.get_document(doc).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.validation),
        (DocumentState::Matched, Some(json!({ "errors": 1 })))
    );
    let err = j
        .update_document(DocId(999), &DocumentUpdate::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_UNKNOWN_ID);
    let err = j
        .register_document(
            MessageId(999),
            &key("Y", "SET-Y", None),
            &DocumentMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_UNKNOWN_ID);
    let err = j
        .register_document(m, &key("", "SET-Y", None), &DocumentMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STORE_INVALID_INPUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_of_one_set_registered_concurrently_keep_one_current_version() {
    let (a, url) = fresh("doc_race").await;
    let b = open_url(&url).await;
    let instances: [Arc<dyn Journal>; 2] = [Arc::new(a), Arc::new(b)];
    let m = ingest_new(instances[0].as_ref(), 1, "versions").await;
    let mut tasks = Vec::new();
    for v in 1..=20i64 {
        let j = Arc::clone(&instances[(v % 2) as usize]);
        tasks.push(tokio::spawn(async move {
            j.register_document(
                m,
                &key(&format!("DOC-{v}"), "SET", Some(v)),
                &DocumentMeta::default(),
            )
            .await
            .unwrap()
        }));
        // The same document twice at once, by both instances: one registration.
        if v == 7 {
            let j = Arc::clone(&instances[1]);
            tasks.push(tokio::spawn(async move {
                j.register_document(m, &key("DOC-7", "SET", Some(7)), &DocumentMeta::default())
                    .await
                    .unwrap()
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let docs = instances[0].documents_of_message(m).await.unwrap();
    let current: Vec<_> = docs.iter().filter(|d| d.superseded_by.is_none()).collect();
    assert_eq!(current.len(), 1, "one current version");
    assert_eq!(current[0].key.version, Some(20));
    let cda_ids: HashSet<_> = docs.iter().map(|d| d.key.cda_id.clone()).collect();
    assert_eq!(cda_ids.len(), docs.len(), "no document stored twice");
    // The stored versions form one chain, each replacing the one before.
    let by_id: HashMap<DocId, &relais_store::DocumentRecord> =
        docs.iter().map(|d| (d.id, d)).collect();
    let mut chain = 1;
    let mut cur = current[0];
    while let Some(prev) = cur.replaces {
        let p = by_id[&prev];
        assert_eq!(p.superseded_by, Some(cur.id));
        assert!(p.key.version < cur.key.version);
        cur = p;
        chain += 1;
    }
    assert_eq!(chain, docs.len());
}

// --- Deliveries ------------------------------------------------------------------------------

async fn setup(j: &dyn Journal, docs: usize) -> Vec<DocId> {
    let m = ingest_new(j, 1, "outbox").await;
    let mut out = Vec::new();
    for i in 0..docs {
        out.push(new_doc(j, m, &format!("DOC-{i}"), &format!("SET-{i}"), 1).await);
    }
    out
}

async fn enqueue(j: &dyn Journal, doc: DocId, key: &str, patient: &str) -> DeliveryId {
    j.enqueue_delivery(doc, SINK, key, key.as_bytes().to_vec(), patient)
        .await
        .unwrap()
}

fn delivered(detail: &str) -> Outcome {
    Outcome::Delivered {
        detail: detail.into(),
    }
}

#[tokio::test]
async fn enqueue_is_idempotent() {
    let (j, _) = fresh("enqueue").await;
    let docs = setup(&j, 1).await;
    let a = j
        .enqueue_delivery(docs[0], SINK, "doc-0@dpi", b"MSH|first".to_vec(), "P1")
        .await
        .unwrap();
    let b = j
        .enqueue_delivery(docs[0], SINK, "doc-0@dpi", b"MSH|second".to_vec(), "P1")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(j.pending_count(SINK).await.unwrap(), 1);
    assert_eq!(
        j.get_delivery(a).await.unwrap().unwrap().payload,
        b"MSH|first"
    );
    let c = j
        .enqueue_delivery(docs[0], "fhir", "doc-0@dpi", b"{}".to_vec(), "P1")
        .await
        .unwrap();
    assert_ne!(a, c);
    assert_eq!(j.pending_count("fhir").await.unwrap(), 1);
    assert_eq!(
        j.enqueue_delivery(DocId(404), SINK, "k", vec![], "P1")
            .await
            .unwrap_err()
            .code(),
        codes::STORE_UNKNOWN_ID
    );
    assert_eq!(
        j.enqueue_delivery(docs[0], "", "k", vec![], "P1")
            .await
            .unwrap_err()
            .code(),
        codes::STORE_INVALID_INPUT
    );
}

#[tokio::test]
async fn in_order_per_patient_other_patients_proceed() {
    let (j, _) = fresh("order").await;
    let docs = setup(&j, 4).await;
    let p1_first = enqueue(&j, docs[0], "k0", "P1").await;
    let p1_second = enqueue(&j, docs[1], "k1", "P1").await;
    let p2_first = enqueue(&j, docs[2], "k2", "P2").await;
    let p1_third = enqueue(&j, docs[3], "k3", "P1").await;

    let c1 = j.claim_next(SINK, "w1", LONG).await.unwrap().unwrap();
    assert_eq!(c1.id, p1_first);
    assert_eq!(c1.state, DeliveryState::InFlight);
    assert_eq!(c1.attempts, 1);
    assert_eq!(c1.lease_owner.as_deref(), Some("w1"));
    assert_eq!(c1.payload, b"k0");
    let until = c1.lease_until.unwrap();
    assert!(until.0 - Timestamp::now().0 > 50_000, "lease of 60 s");
    let c2 = j.claim_next(SINK, "w2", LONG).await.unwrap().unwrap();
    assert_eq!(c2.id, p2_first);
    assert!(j.claim_next(SINK, "w3", LONG).await.unwrap().is_none());
    assert!(j.claim_next("fhir", "w3", LONG).await.unwrap().is_none());

    j.complete(p1_first, delivered("ACK AA")).await.unwrap();
    let c3 = j.claim_next(SINK, "w1", LONG).await.unwrap().unwrap();
    assert_eq!(c3.id, p1_second);
    assert!(j.claim_next(SINK, "w1", LONG).await.unwrap().is_none());
    j.complete(
        p1_second,
        Outcome::Rejected {
            code: "AR".into(),
            text: "unknown patient".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        j.claim_next(SINK, "w1", LONG).await.unwrap().unwrap().id,
        p1_third
    );
    let done = j.get_delivery(p1_second).await.unwrap().unwrap();
    assert_eq!(done.state, DeliveryState::Rejected);
    assert_eq!(done.outcome_code.as_deref(), Some("AR"));
    assert!(done.completed_at.is_some());
    assert_eq!(done.lease_owner, None);
    let ok = j.get_delivery(p1_first).await.unwrap().unwrap();
    assert_eq!(ok.state, DeliveryState::Delivered);
    assert_eq!(ok.outcome_text.as_deref(), Some("ACK AA"));
    assert_eq!(j.pending_count(SINK).await.unwrap(), 2);
    let err = j.complete(p1_first, delivered("again")).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::DeliveryNotInFlight {
            state: DeliveryState::Delivered,
            ..
        }
    ));
    let msg = j.get_document(docs[0]).await.unwrap().unwrap().message_id;
    let kinds: Vec<String> = j
        .message_events(msg)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == event_kinds::DELIVERY_ENQUEUED)
            .count(),
        4
    );
    assert!(kinds.iter().any(|k| k == event_kinds::DELIVERY_DELIVERED));
    assert!(kinds.iter().any(|k| k == event_kinds::DELIVERY_REJECTED));
}

#[tokio::test]
async fn retry_later_honours_not_before_and_keeps_order() {
    let (j, _) = fresh("retry").await;
    let docs = setup(&j, 2).await;
    let first = enqueue(&j, docs[0], "k0", "P1").await;
    let second = enqueue(&j, docs[1], "k1", "P1").await;
    let c = j.claim_next(SINK, "w", LONG).await.unwrap().unwrap();
    assert_eq!(c.id, first);
    let not_before = Timestamp::now().plus(Duration::from_millis(400));
    j.retry_later(first, not_before, "connection refused")
        .await
        .unwrap();
    let d = j.get_delivery(first).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.last_error.as_deref(), Some("connection refused"));
    assert_eq!(d.not_before, not_before);
    assert!(j.claim_next(SINK, "w", LONG).await.unwrap().is_none());
    assert_eq!(
        j.retry_later(first, not_before, "x")
            .await
            .unwrap_err()
            .code(),
        codes::STORE_DELIVERY_NOT_IN_FLIGHT
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let c = j.claim_next(SINK, "w", LONG).await.unwrap().unwrap();
    assert_eq!(c.id, first);
    assert_eq!(c.attempts, 2, "each claim is an attempt");
    j.complete(first, delivered("ok")).await.unwrap();
    assert_eq!(
        j.claim_next(SINK, "w", LONG).await.unwrap().unwrap().id,
        second
    );
}

#[tokio::test]
async fn an_instance_that_dies_leaves_its_claims_to_the_others_once_leases_expire() {
    let (dying, url) = fresh("lease_expiry").await;
    let lease = Duration::from_millis(300);
    let docs = setup(&dying, 2).await;
    let first = enqueue(&dying, docs[0], "k0", "P1").await;
    let second = enqueue(&dying, docs[1], "k1", "P1").await;
    let c = dying
        .claim_next(SINK, "instance-a", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, first);
    drop(dying); // instance A dies with the delivery in flight
    let j = open_url(&url).await;
    assert!(
        j.claim_next(SINK, "instance-b", lease)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(j.pending_count(SINK).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = j
        .claim_next(SINK, "instance-b", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, first, "the expired lease is taken over, in order");
    assert_eq!(c.attempts, 2);
    assert_eq!(c.lease_owner.as_deref(), Some("instance-b"));
    assert!(j.claim_next(SINK, "other", LONG).await.unwrap().is_none());
    j.complete(first, delivered("ok")).await.unwrap();
    assert_eq!(
        j.claim_next(SINK, "other", LONG).await.unwrap().unwrap().id,
        second
    );
    assert_eq!(j.pending_count(SINK).await.unwrap(), 1);
}

#[tokio::test]
async fn deliveries_of_a_document_one_per_sink() {
    let (j, _) = fresh("doc_deliveries").await;
    let docs = setup(&j, 2).await;
    let mllp = enqueue(&j, docs[0], "k0", "P1").await;
    let folder = j
        .enqueue_delivery(docs[0], "folder", "k0", b"cda".to_vec(), "P1")
        .await
        .unwrap();
    enqueue(&j, docs[1], "k1", "P2").await;
    let c = j.claim_next(SINK, "w", LONG).await.unwrap().unwrap();
    j.complete(c.id, delivered("AA")).await.unwrap();
    let of_doc = j.deliveries_of_document(docs[0]).await.unwrap();
    assert_eq!(
        of_doc.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![mllp, folder]
    );
    assert_eq!(
        of_doc.iter().map(|d| d.state).collect::<Vec<_>>(),
        vec![DeliveryState::Delivered, DeliveryState::Pending]
    );
    assert!(
        j.deliveries_of_document(DocId(404))
            .await
            .unwrap()
            .is_empty()
    );
}

/// What the claimers of the concurrency test saw.
#[derive(Default)]
struct Ledger {
    /// The delivery in flight per ordering key (never two at once).
    in_flight: HashMap<String, DeliveryId>,
    /// Completion order per ordering key.
    completed: BTreeMap<String, Vec<DeliveryId>>,
    claims: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_of_three_instances_never_share_a_delivery_and_keep_order() {
    const PATIENTS: usize = 8;
    const DELIVERIES: usize = 160;
    let (a, url) = fresh("claimers").await;
    let b = open_url(&url).await;
    let c = open_url(&url).await;
    let instances: Vec<Arc<dyn Journal>> = vec![Arc::new(a), Arc::new(b), Arc::new(c)];
    let m = ingest_new(instances[0].as_ref(), 1, "many").await;
    let mut docs = Vec::new();
    for i in 0..DELIVERIES {
        docs.push(
            new_doc(
                instances[0].as_ref(),
                m,
                &format!("D{i}"),
                &format!("S{i}"),
                1,
            )
            .await,
        );
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let enqueued = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Two instances enqueue while the claimers already run.
    let enqueuers: Vec<_> = (0..2)
        .map(|e| {
            let j = Arc::clone(&instances[e]);
            let docs = docs.clone();
            tokio::spawn(async move {
                for (i, doc) in docs.iter().enumerate().filter(|(i, _)| i % 2 == e) {
                    let patient = format!("P{}", i % PATIENTS);
                    j.enqueue_delivery(*doc, SINK, &format!("k{i}"), vec![b'x'; 64], &patient)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut workers = Vec::new();
    for (n, j) in instances.iter().enumerate() {
        for w in 0..4 {
            let j = Arc::clone(j);
            let ledger = Arc::clone(&ledger);
            let enqueued = Arc::clone(&enqueued);
            let worker = format!("instance-{n}/worker-{w}");
            workers.push(tokio::spawn(async move {
                let mut idle = 0;
                loop {
                    let claimed = j.claim_next(SINK, &worker, LONG).await.unwrap();
                    let Some(d) = claimed else {
                        if enqueued.load(std::sync::atomic::Ordering::SeqCst)
                            && j.pending_count(SINK).await.unwrap() == 0
                        {
                            return;
                        }
                        idle += 1;
                        assert!(idle < 5_000, "claimers starved");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    assert_eq!(d.attempts, 1, "{:?} claimed twice", d.id);
                    {
                        let mut l = ledger.lock().unwrap();
                        l.claims += 1;
                        if let Some(other) = l.in_flight.insert(d.ordering_key.clone(), d.id) {
                            panic!(
                                "{:?} and {other:?} of {} in flight at once",
                                d.id, d.ordering_key
                            );
                        }
                    }
                    tokio::time::sleep(Duration::from_micros(200 * (d.id.0 as u64 % 5))).await;
                    {
                        // Recorded before completing: once completed, the next one of the key
                        // may be claimed at once.
                        let mut l = ledger.lock().unwrap();
                        l.in_flight.remove(&d.ordering_key);
                        l.completed
                            .entry(d.ordering_key.clone())
                            .or_default()
                            .push(d.id);
                    }
                    j.complete(d.id, delivered("AA")).await.unwrap();
                }
            }));
        }
    }
    for e in enqueuers {
        e.await.unwrap();
    }
    enqueued.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    {
        let l = ledger.lock().unwrap();
        assert_eq!(l.claims, DELIVERIES, "each delivery claimed exactly once");
        let mut total = 0;
        for (patient, order) in &l.completed {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, &sorted, "{patient}: delivered in enqueue order");
            total += order.len();
        }
        assert_eq!(total, DELIVERIES);
    }
    for doc in docs {
        let ds = instances[2].deliveries_of_document(doc).await.unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!((ds[0].state, ds[0].attempts), (DeliveryState::Delivered, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_last_deliveries_file_the_document_and_the_message_exactly_once() {
    let (a, url) = fresh("closing").await;
    let b = open_url(&url).await;
    let instances: [Arc<dyn Journal>; 2] = [Arc::new(a), Arc::new(b)];
    const SINKS: [&str; 2] = ["dpi-mllp", "fhir"];
    for round in 0..8u32 {
        let j0 = instances[0].as_ref();
        let m = ingest_new(j0, 100 + round, &format!("close{round}")).await;
        let mut docs = Vec::new();
        for d in 0..3 {
            docs.push(new_doc(j0, m, &format!("R{round}D{d}"), &format!("R{round}S{d}"), 1).await);
        }
        for (d, doc) in docs.iter().enumerate() {
            for sink in SINKS {
                j0.enqueue_delivery(
                    *doc,
                    sink,
                    &format!("r{round}d{d}"),
                    vec![],
                    &format!("P{d}"),
                )
                .await
                .unwrap();
            }
        }
        for from in [
            MessageState::Received,
            MessageState::Parsed,
            MessageState::Validated,
        ] {
            let to = match from {
                MessageState::Received => MessageState::Parsed,
                MessageState::Parsed => MessageState::Validated,
                _ => MessageState::Matched,
            };
            j0.transition(m, from, to, Event::system(to.as_str()))
                .await
                .unwrap();
        }
        // Claim all six first, then complete them all at once from both instances.
        let mut claimed = Vec::new();
        for sink in SINKS {
            while let Some(d) = j0.claim_next(sink, "w", LONG).await.unwrap() {
                claimed.push(d.id);
            }
        }
        assert_eq!(claimed.len(), 6);
        let tasks: Vec<_> = claimed
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let j = Arc::clone(&instances[i % 2]);
                tokio::spawn(async move { j.complete_delivered(id, "AA").await.unwrap() })
            })
            .collect();
        let mut docs_filed = 0;
        let mut messages_filed = Vec::new();
        for t in tasks {
            let closed = t.await.unwrap();
            docs_filed += usize::from(closed.document_filed);
            messages_filed.extend(closed.message_filed);
        }
        assert_eq!(docs_filed, 3, "round {round}: each document filed once");
        assert_eq!(
            messages_filed,
            vec![m],
            "round {round}: the message filed once"
        );
        let msg = j0.get_message(m).await.unwrap().unwrap();
        assert_eq!(msg.state, MessageState::Filed);
        for doc in &docs {
            assert_eq!(
                j0.get_document(*doc).await.unwrap().unwrap().state,
                DocumentState::Filed
            );
        }
        assert!(j0.answers_due(100).await.unwrap().contains(&m));
        let filed_events = j0
            .message_events(m)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.state_after == Some(MessageState::Filed))
            .count();
        assert_eq!(filed_events, 1);
    }
}

// --- Reviews and patients --------------------------------------------------------------------

#[tokio::test]
async fn review_queue_flow() {
    let (j, _) = fresh("reviews").await;
    let m = ingest_new(&j, 1, "rev").await;
    let doc = new_doc(&j, m, "D", "S", 1).await;
    let m2 = ingest_new(&j, 2, "rev2").await;
    let r1 = j
        .open_review(
            ReviewSubject::Document(doc),
            "903",
            "INS not found in the patient index",
        )
        .await
        .unwrap();
    assert_eq!(
        j.open_review(ReviewSubject::Document(doc), "903", "again")
            .await
            .unwrap(),
        r1
    );
    let r2 = j
        .open_review(
            ReviewSubject::Message(m2),
            "CDA-XSD",
            "document does not validate",
        )
        .await
        .unwrap();
    let r3 = j
        .open_review(ReviewSubject::Message(m), "905", "identity traits differ")
        .await
        .unwrap();
    assert!(r1 != r2 && r2 != r3);
    let open = j.list_reviews(&ReviewFilter::default()).await.unwrap();
    assert_eq!(
        open.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![r1, r2, r3]
    );
    assert_eq!(open[0].message_id, m);
    assert_eq!(open[0].document_id, Some(doc));
    assert_eq!(open[1].document_id, None);
    let only_903 = j
        .list_reviews(&ReviewFilter {
            reason_code: Some("903".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_903.len(), 1);
    j.resolve_review(
        r1,
        Resolution::FiledTo {
            ipp: "IPP-7".into(),
        },
        "alice",
    )
    .await
    .unwrap();
    j.resolve_review(
        r2,
        Resolution::Rejected {
            note: "sender asked".into(),
        },
        "bob",
    )
    .await
    .unwrap();
    let err = j
        .resolve_review(
            r1,
            Resolution::Rejected {
                note: "late".into(),
            },
            "carol",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReviewNotOpen { id } if id == r1));
    let got = j.get_review(r1).await.unwrap().unwrap();
    assert_eq!(got.status, ReviewStatus::Filed);
    assert_eq!(got.resolution_ipp.as_deref(), Some("IPP-7"));
    assert_eq!(got.resolved_by.as_deref(), Some("alice"));
    assert!(got.resolved_at.is_some());
    let got = j.get_review(r2).await.unwrap().unwrap();
    assert_eq!(got.status, ReviewStatus::Rejected);
    assert_eq!(got.resolution_note.as_deref(), Some("sender asked"));
    let still_open = j.list_reviews(&ReviewFilter::default()).await.unwrap();
    assert_eq!(
        still_open.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![r3]
    );
    let all = j
        .list_reviews(&ReviewFilter {
            status: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let r4 = j
        .open_review(ReviewSubject::Document(doc), "903", "new arrival")
        .await
        .unwrap();
    assert_ne!(r4, r1);
    let ev = j.message_events(m).await.unwrap();
    let resolved = ev
        .iter()
        .find(|e| e.kind == event_kinds::REVIEW_RESOLVED)
        .unwrap();
    assert_eq!(resolved.actor, Actor::User("alice".into()));
    assert_eq!(resolved.detail["resolution"], "filed");
    assert!(!resolved.detail.to_string().contains("IPP-7"));
    assert_eq!(
        j.open_review(ReviewSubject::Message(MessageId(404)), "902", "x")
            .await
            .unwrap_err()
            .code(),
        codes::STORE_UNKNOWN_ID
    );
    assert!(
        j.get_review(relais_store::ReviewId(404))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_opening_or_resolving_one_review_at_once() {
    let (a, url) = fresh("review_race").await;
    let b = open_url(&url).await;
    let instances: [Arc<dyn Journal>; 2] = [Arc::new(a), Arc::new(b)];
    let m = ingest_new(instances[0].as_ref(), 1, "rr").await;
    let doc = new_doc(instances[0].as_ref(), m, "D", "S", 1).await;
    for round in 0..10 {
        let code = format!("90{}", round % 5);
        let subject = if round % 2 == 0 {
            ReviewSubject::Document(doc)
        } else {
            ReviewSubject::Message(m)
        };
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let j = Arc::clone(&instances[i % 2]);
                let code = code.clone();
                tokio::spawn(async move { j.open_review(subject, &code, "why").await.unwrap() })
            })
            .collect();
        let mut ids = HashSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap());
        }
        assert_eq!(ids.len(), 1, "round {round}: one review opened");
        let id = ids.into_iter().next().unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let j = Arc::clone(&instances[i]);
                tokio::spawn(async move {
                    j.resolve_review(
                        id,
                        Resolution::FiledTo {
                            ipp: format!("IPP-{i}"),
                        },
                        &format!("reviewer-{i}"),
                    )
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::ReviewNotOpen { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: the first reviewer wins");
    }
    let opened = instances[0]
        .message_events(m)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == event_kinds::REVIEW_OPENED)
        .count();
    assert_eq!(opened, 10);
}

fn patient(ipp: &str, nir: Option<&str>) -> PatientRecord {
    PatientRecord {
        ins: nir.map(|v| Ins {
            oid: NIR_OID.into(),
            value: v.into(),
        }),
        birth_family: Some("DUPONT".into()),
        given_birth_first: Some("MARIE".into()),
        birth_given_names: Some("MARIE CLAIRE".into()),
        birth_date: Some("19800101".into()),
        sex: Some("F".into()),
        birthplace_insee: Some("75056".into()),
        identity_status: Some("VALI".into()),
        ..PatientRecord::new(ipp)
    }
}

#[tokio::test]
async fn patient_index_upsert_lookup_and_merge() {
    let (j, _) = fresh("patients").await;
    j.upsert_patient(&patient("IPP-A", Some("280017512345678")))
        .await
        .unwrap();
    j.upsert_patient(&patient("IPP-B", Some("280017512345678")))
        .await
        .unwrap();
    let mut c = patient("IPP-C", None);
    c.identity_status = Some("PROV".into());
    j.upsert_patient(&c).await.unwrap();
    let found = j.find_patient_by_ipp("IPP-C").await.unwrap().unwrap();
    assert_eq!(found.record, c);
    assert_eq!(found.merged_from, None);
    assert!(j.find_patient_by_ipp("IPP-Z").await.unwrap().is_none());
    match j
        .find_patient_by_ins(NIR_OID, "280017512345678")
        .await
        .unwrap()
    {
        InsMatch::Several(ipps) => assert_eq!(ipps, ["IPP-A", "IPP-B"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        j.find_patient_by_ins(NIR_OID, "199999999999999")
            .await
            .unwrap(),
        InsMatch::None
    );
    j.merge_patients("IPP-A", "IPP-B").await.unwrap();
    let via_b = j.find_patient_by_ipp("IPP-B").await.unwrap().unwrap();
    assert_eq!(via_b.record.ipp, "IPP-A");
    assert_eq!(via_b.merged_from.as_deref(), Some("IPP-B"));
    match j
        .find_patient_by_ins(NIR_OID, "280017512345678")
        .await
        .unwrap()
    {
        InsMatch::One(p) => {
            assert_eq!(p.record.ipp, "IPP-A");
            assert_eq!(p.merged_from, None);
        }
        other => panic!("{other:?}"),
    }
    j.merge_patients("IPP-C", "IPP-A").await.unwrap();
    assert_eq!(
        j.find_patient_by_ipp("IPP-B")
            .await
            .unwrap()
            .unwrap()
            .record
            .ipp,
        "IPP-C"
    );
    match j
        .find_patient_by_ins(NIR_OID, "280017512345678")
        .await
        .unwrap()
    {
        InsMatch::One(p) => {
            assert_eq!(p.record.ipp, "IPP-C");
            assert!(p.merged_from.is_some());
        }
        other => panic!("{other:?}"),
    }
    j.merge_patients("IPP-B", "IPP-OLD").await.unwrap();
    assert_eq!(
        j.find_patient_by_ipp("IPP-OLD")
            .await
            .unwrap()
            .unwrap()
            .record
            .ipp,
        "IPP-C"
    );
    j.upsert_patient(&patient("IPP-B", None)).await.unwrap();
    assert_eq!(
        j.find_patient_by_ipp("IPP-B")
            .await
            .unwrap()
            .unwrap()
            .record
            .ipp,
        "IPP-C"
    );
    assert!(matches!(
        j.merge_patients("IPP-C", "IPP-C").await.unwrap_err(),
        StoreError::MergeSelf
    ));
    assert!(matches!(
        j.merge_patients("IPP-A", "IPP-C").await.unwrap_err(),
        StoreError::MergeSelf
    ));
    let err = j.merge_patients("IPP-NOPE", "IPP-C").await.unwrap_err();
    assert_eq!(err.code(), codes::STORE_UNKNOWN_ID);
    assert!(!err.to_string().contains("IPP-NOPE"));
    let mut c2 = c.clone();
    c2.identity_status = Some("QUAL".into());
    c2.ins = Some(Ins {
        oid: NIR_OID.into(),
        value: "180017512345600".into(),
    });
    j.upsert_patient(&c2).await.unwrap();
    assert_eq!(
        j.find_patient_by_ipp("IPP-C")
            .await
            .unwrap()
            .unwrap()
            .record,
        c2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_merges_from_two_instances_never_make_a_cycle() {
    let (a, url) = fresh("merge_race").await;
    let b = open_url(&url).await;
    let instances: [Arc<dyn Journal>; 2] = [Arc::new(a), Arc::new(b)];
    for round in 0..10 {
        let x = format!("X{round}");
        let y = format!("Y{round}");
        instances[0]
            .upsert_patient(&patient(&x, None))
            .await
            .unwrap();
        instances[0]
            .upsert_patient(&patient(&y, None))
            .await
            .unwrap();
        // A40 X←Y on one instance while another gets Y←X.
        let t1 = {
            let j = Arc::clone(&instances[0]);
            let (x, y) = (x.clone(), y.clone());
            tokio::spawn(async move { j.merge_patients(&x, &y).await })
        };
        let t2 = {
            let j = Arc::clone(&instances[1]);
            let (x, y) = (x.clone(), y.clone());
            tokio::spawn(async move { j.merge_patients(&y, &x).await })
        };
        let results = [t1.await.unwrap(), t2.await.unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StoreError::MergeSelf))),
            "round {round}"
        );
        let fx = instances[1].find_patient_by_ipp(&x).await.unwrap().unwrap();
        let fy = instances[1].find_patient_by_ipp(&y).await.unwrap().unwrap();
        assert_eq!(fx.record.ipp, fy.record.ipp, "one survivor");
    }
}
