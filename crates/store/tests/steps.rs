//! `Journal::apply_steps`: a message's processing steps in one call. On SQLite they commit
//! together or not at all; on PostgreSQL (the trait's default) they apply one by one, with the
//! same outcomes.

mod common;
mod pg;

use common::{ingest_new, open};
use relais_store::{
    DocumentKey, DocumentMeta, DocumentOutcome, DocumentState, DocumentUpdate, Event, Journal,
    JournalStep, MessageId, MessageState, StepOutcome, StoreError,
};

fn register(cda: &str) -> JournalStep {
    JournalStep::RegisterDocument {
        key: DocumentKey {
            cda_id: cda.into(),
            set_id: format!("SET-{cda}"),
            version: Some(1),
        },
        meta: DocumentMeta {
            type_code: Some("11490-0".into()),
            ..DocumentMeta::default()
        },
    }
}

fn transition(from: MessageState, to: MessageState, kind: &str) -> JournalStep {
    JournalStep::Transition {
        from,
        to,
        event: Event::system(kind),
    }
}

/// Received → validated with a document, then matched with its delivery enqueued: the outcomes
/// line up with the steps and the journal shows each step's effect and event.
async fn a_whole_processing_in_two_calls(j: &dyn Journal, m: MessageId) {
    let out = j
        .apply_steps(
            m,
            vec![
                transition(MessageState::Received, MessageState::Parsed, "parsed"),
                transition(MessageState::Parsed, MessageState::Validated, "validated"),
                register("DOC-1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(&out[..2], &[StepOutcome::Done, StepOutcome::Done]);
    let StepOutcome::Document(DocumentOutcome::New(doc)) = out[2] else {
        panic!("{out:?}")
    };
    let out = j
        .apply_steps(
            m,
            vec![
                JournalStep::UpdateDocument {
                    doc,
                    update: DocumentUpdate {
                        state: Some(DocumentState::Matched),
                        patient_ipp: Some("IPP-1".into()),
                        ..DocumentUpdate::default()
                    },
                },
                transition(MessageState::Validated, MessageState::Matched, "matched"),
                JournalStep::EnqueueDelivery {
                    doc,
                    sink: "dpi".into(),
                    idempotency_key: "DOC-1".into(),
                    payload: b"{}".to_vec(),
                    ordering_key: "IPP-1".into(),
                },
            ],
        )
        .await
        .unwrap();
    assert!(matches!(out[2], StepOutcome::Delivery(_)), "{out:?}");
    let msg = j.get_message(m).await.unwrap().unwrap();
    assert_eq!(msg.state, MessageState::Matched);
    let d = j.get_document(doc).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.patient_ipp.as_deref()),
        (DocumentState::Matched, Some("IPP-1"))
    );
    assert_eq!(j.deliveries_of_document(doc).await.unwrap().len(), 1);
    let kinds: Vec<String> = j
        .message_events(m)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "received",
        "parsed",
        "validated",
        "document_registered",
        "document_updated",
        "matched",
        "delivery_enqueued",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn sqlite_applies_a_whole_processing_in_two_calls() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let m = ingest_new(&j, 1, "steps").await;
    a_whole_processing_in_two_calls(&j, m).await;
    // Two calls, two write calls for the group commit (besides the ingest).
    assert_eq!(j.write_stats().calls, 3);
}

#[tokio::test]
async fn postgres_applies_a_whole_processing_step_by_step() {
    let (j, _) = pg::fresh("steps").await;
    let m = ingest_new(&j, 1, "steps").await;
    a_whole_processing_in_two_calls(&j, m).await;
}

/// A step that fails (a transition from a state the message is not in) undoes the steps
/// before it in the same call: no document, no state change, no event.
#[tokio::test]
async fn sqlite_steps_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let m = ingest_new(&j, 1, "atomic").await;
    let events_before = j.message_events(m).await.unwrap().len();
    let err = j
        .apply_steps(
            m,
            vec![
                transition(MessageState::Received, MessageState::Parsed, "parsed"),
                register("DOC-ATOMIC"),
                // Wrong: the message is parsed by now, not received.
                transition(MessageState::Received, MessageState::Rejected, "rejected"),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleState { .. }), "{err:?}");
    let msg = j.get_message(m).await.unwrap().unwrap();
    assert_eq!(msg.state, MessageState::Received);
    assert!(j.documents_of_message(m).await.unwrap().is_empty());
    assert_eq!(j.message_events(m).await.unwrap().len(), events_before);
    // The journal goes on: the same steps, right this time, commit.
    j.apply_steps(
        m,
        vec![
            transition(MessageState::Received, MessageState::Parsed, "parsed"),
            register("DOC-ATOMIC"),
            transition(MessageState::Parsed, MessageState::Rejected, "rejected"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        j.get_message(m).await.unwrap().unwrap().state,
        MessageState::Rejected
    );
    assert_eq!(j.documents_of_message(m).await.unwrap().len(), 1);
}
