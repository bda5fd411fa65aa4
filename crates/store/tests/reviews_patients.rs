//! The review queue and the patient index (with ADT A40 merges).

mod common;

use common::{ingest_new, new_doc, open};
use relais_store::{
    Actor, Ins, InsMatch, Journal, MessageId, PatientRecord, Resolution, ReviewFilter,
    ReviewStatus, ReviewSubject, StoreError, codes, event_kinds,
};

const NIR_OID: &str = "1.2.250.1.213.1.4.8";

#[tokio::test]
async fn review_queue_flow() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
    // Opening the same review again (a retried stage) returns the open one.
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
    // Second reviewer loses.
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
    // Once resolved, the same reason may be opened again as a new review.
    let r4 = j
        .open_review(ReviewSubject::Document(doc), "903", "new arrival")
        .await
        .unwrap();
    assert_ne!(r4, r1);

    // The trail names the reviewer.
    let ev = j.message_events(m).await.unwrap();
    let resolved = ev
        .iter()
        .find(|e| e.kind == event_kinds::REVIEW_RESOLVED)
        .unwrap();
    assert_eq!(resolved.actor, Actor::User("alice".into()));
    assert_eq!(resolved.detail["resolution"], "filed");
    assert!(
        !resolved.detail.to_string().contains("IPP-7"),
        "no patient identifier in the trail"
    );

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
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
    // Debug output never shows patient data.
    let dbg = format!("{found:?} {c:?}");
    assert!(!dbg.contains("DUPONT") && !dbg.contains("IPP-C"), "{dbg}");

    // A doublon: two IPPs share one INS until the hospital merges them.
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

    // ADT A40: B merged into A. Lookups of B resolve to A; the INS now designates A alone.
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
            assert_eq!(p.merged_from, None, "A holds the INS itself");
        }
        other => panic!("{other:?}"),
    }

    // Chains are flattened: A merged into C makes B resolve to C too.
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
            assert!(p.merged_from.is_some(), "found through a merged IPP");
        }
        other => panic!("{other:?}"),
    }
    // Merging into a merged IPP goes to its survivor; an unknown merged IPP becomes a stub.
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
    // An update of a merged IPP keeps it merged.
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

    // Refusals: self merge (direct or through the chain), unknown survivor.
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
    assert!(
        !err.to_string().contains("IPP-NOPE"),
        "no identifier in errors"
    );

    // Upsert replaces the traits.
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
