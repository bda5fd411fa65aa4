//! Documents: duplicates by CDA id, versions by setId / versionNumber.

mod common;

use common::{ingest_new, open};
use relais_store::{
    DocId, DocumentKey, DocumentMeta, DocumentOutcome, DocumentState, DocumentUpdate, Journal,
    MessageId, codes, event_kinds,
};
use serde_json::json;

fn key(cda: &str, set: &str, version: Option<i64>) -> DocumentKey {
    DocumentKey {
        cda_id: cda.into(),
        set_id: set.into(),
        version,
    }
}

#[tokio::test]
async fn duplicate_new_version_and_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let m1 = ingest_new(&j, 1, "d1").await;
    let m2 = ingest_new(&j, 2, "d2").await;
    let m3 = ingest_new(&j, 3, "d3").await;
    let set = "1.2.250.1.999.1^SET-42";
    let meta = DocumentMeta {
        type_code: Some("11490-0".into()),
        validation: Some(json!({ "errors": 0, "warnings": 2 })),
        ..Default::default()
    };

    let v1 = j
        .register_document(m1, &key("1.2.250.1.999.2^DOC-1", set, Some(1)), &meta)
        .await
        .unwrap();
    let DocumentOutcome::New(v1) = v1 else {
        panic!("{v1:?}")
    };
    // The same CDA id again (resent mail): duplicate, nothing stored.
    assert_eq!(
        j.register_document(m2, &key("1.2.250.1.999.2^DOC-1", set, Some(1)), &meta)
            .await
            .unwrap(),
        DocumentOutcome::Duplicate(v1)
    );
    // Version 2 of the set: new version replacing v1.
    let out = j
        .register_document(m2, &key("1.2.250.1.999.2^DOC-2", set, Some(2)), &meta)
        .await
        .unwrap();
    let DocumentOutcome::NewVersion { doc: v2, replaces } = out else {
        panic!("{out:?}")
    };
    assert_eq!(replaces, v1);
    // A late version 1bis (other id, lower or equal version): older, not stored.
    for late in [Some(1), Some(2), None] {
        assert_eq!(
            j.register_document(m3, &key("1.2.250.1.999.2^DOC-LATE", set, late), &meta)
                .await
                .unwrap(),
            DocumentOutcome::OlderVersion { current: v2 },
            "{late:?}"
        );
    }
    // Version 3 replaces v2 (always the current one, never an older one).
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

    // Each decision is in the carrying message's audit trail.
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
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
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
async fn update_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let j = open(dir.path()).await;
    let m = ingest_new(&j, 1, "u").await;
    let doc = common::new_doc(&j, m, "X", "SET-X", 1).await;
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
    assert_eq!(d.validation, None, "untouched field stays");

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
