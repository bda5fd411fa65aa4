//! The sink outbox: idempotent enqueue, per-patient order, leases, retries.

mod common;

use std::time::Duration;

use common::{ingest_new, new_doc, open};
use relais_store::{
    DeliveryId, DeliveryState, Journal, Outcome, SqliteJournal, StoreError, Timestamp, codes,
    event_kinds,
};

const SINK: &str = "dpi-mllp";
const LONG: Duration = Duration::from_secs(60);

async fn setup(j: &SqliteJournal, docs: usize) -> Vec<relais_store::DocId> {
    let m = ingest_new(j, 1, "outbox").await;
    let mut out = Vec::new();
    for i in 0..docs {
        out.push(new_doc(j, m, &format!("DOC-{i}"), &format!("SET-{i}"), 1).await);
    }
    out
}

async fn enqueue(
    j: &SqliteJournal,
    doc: relais_store::DocId,
    key: &str,
    patient: &str,
) -> DeliveryId {
    j.enqueue_delivery(doc, SINK, key, key.as_bytes().to_vec(), patient)
        .await
        .unwrap()
}

#[tokio::test]
async fn enqueue_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
    // The same key on another sink is another delivery.
    let c = j
        .enqueue_delivery(docs[0], "fhir", "doc-0@dpi", b"{}".to_vec(), "P1")
        .await
        .unwrap();
    assert_ne!(a, c);
    assert_eq!(j.pending_count("fhir").await.unwrap(), 1);
    // Unknown document, empty names.
    assert_eq!(
        j.enqueue_delivery(relais_store::DocId(404), SINK, "k", vec![], "P1")
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
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
    // P1's second must wait for the first; P2 proceeds.
    let c2 = j.claim_next(SINK, "w2", LONG).await.unwrap().unwrap();
    assert_eq!(c2.id, p2_first);
    assert!(j.claim_next(SINK, "w3", LONG).await.unwrap().is_none());
    // Another sink is independent.
    assert!(j.claim_next("fhir", "w3", LONG).await.unwrap().is_none());

    j.complete(
        p1_first,
        Outcome::Delivered {
            detail: "ACK AA".into(),
        },
    )
    .await
    .unwrap();
    let c3 = j.claim_next(SINK, "w1", LONG).await.unwrap().unwrap();
    assert_eq!(c3.id, p1_second);
    assert!(
        j.claim_next(SINK, "w1", LONG).await.unwrap().is_none(),
        "P1 third waits"
    );
    j.complete(
        p1_second,
        Outcome::Rejected {
            code: "AR".into(),
            text: "unknown patient".into(),
        },
    )
    .await
    .unwrap();
    // A rejected delivery is finished: it no longer blocks the patient.
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
    assert_eq!(
        j.pending_count(SINK).await.unwrap(),
        2,
        "P2 first and P1 third in flight"
    );

    // Completing twice is refused; the message trail records each outcome.
    let err = j
        .complete(
            p1_first,
            Outcome::Delivered {
                detail: "again".into(),
            },
        )
        .await
        .unwrap_err();
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
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
    // Neither the retried one (too early) nor the patient's next one (order) is claimable.
    assert!(j.claim_next(SINK, "w", LONG).await.unwrap().is_none());
    // Retrying something not claimed is refused.
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
    j.complete(
        first,
        Outcome::Delivered {
            detail: "ok".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        j.claim_next(SINK, "w", LONG).await.unwrap().unwrap().id,
        second
    );
}

#[tokio::test]
async fn lease_expiry_after_a_crash_makes_work_claimable_again() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(300);
    let (first, second) = {
        let j = open(dir.path()).await;
        let docs = setup(&j, 2).await;
        let first = enqueue(&j, docs[0], "k0", "P1").await;
        let second = enqueue(&j, docs[1], "k1", "P1").await;
        let c = j
            .claim_next(SINK, "worker-before-crash", lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.id, first);
        // The worker "crashes": the journal is dropped without completing.
        (first, second)
    };
    let j = open(dir.path()).await;
    // Still leased right after the restart: neither it nor the patient's next one is handed out.
    assert!(
        j.claim_next(SINK, "worker-after", lease)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(j.pending_count(SINK).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = j
        .claim_next(SINK, "worker-after", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, first, "the expired lease is taken over, in order");
    assert_eq!(c.attempts, 2);
    assert_eq!(c.lease_owner.as_deref(), Some("worker-after"));
    assert!(j.claim_next(SINK, "other", LONG).await.unwrap().is_none());
    j.complete(
        first,
        Outcome::Delivered {
            detail: "ok".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        j.claim_next(SINK, "other", LONG).await.unwrap().unwrap().id,
        second
    );
    assert_eq!(j.pending_count(SINK).await.unwrap(), 1);
}

#[tokio::test]
async fn deliveries_of_a_document_one_per_sink() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let docs = setup(&j, 2).await;
    let mllp = enqueue(&j, docs[0], "k0", "P1").await;
    let folder = j
        .enqueue_delivery(docs[0], "folder", "k0", b"cda".to_vec(), "P1")
        .await
        .unwrap();
    enqueue(&j, docs[1], "k1", "P2").await;
    let c = j.claim_next(SINK, "w", LONG).await.unwrap().unwrap();
    j.complete(
        c.id,
        Outcome::Delivered {
            detail: "AA".into(),
        },
    )
    .await
    .unwrap();
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
        j.deliveries_of_document(relais_store::DocId(404))
            .await
            .unwrap()
            .is_empty()
    );
}
