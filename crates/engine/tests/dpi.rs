//! Filing into a real HL7 peer (hl7apy in another process) as MDM^T02 over MLLP: accepted,
//! refused (AE → review with the DPI's code), retried (AR, DPI down) in order per patient.

mod common;

use common::{camille, config, maildir, mllp_sink, states};
use relais_engine::Engine;
use relais_engine::config::Source;
use relais_store::{MessageState, ReviewFilter};
use relais_testsupport::dpi_peer::DpiPeer;
use std::path::Path;
use std::time::Duration;

async fn engine(root: &Path, dpi: &str) -> Engine {
    let source = Source::Maildir {
        address: None,
        name: "bal-cardio".into(),
        path: maildir(root, &["mail/ldl-ses-n1.eml", "mail/cr-bio-n1.eml"]),
        consume: true,
    };
    let e = Engine::open(config(root, vec![source], vec![mllp_sink(dpi)], true))
        .await
        .unwrap();
    e.journal()
        .upsert_patient(&camille("IPP-42"))
        .await
        .unwrap();
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn filed_as_mdm_t02_accepted_by_the_dpi() {
    let peer = DpiPeer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let e = engine(tmp.path(), &peer.address()).await;
    let s = e.run_once().await.unwrap();
    assert_eq!(s.filed, 2, "{s:?}");
    assert_eq!(
        states(&e).await,
        vec![MessageState::Filed, MessageState::Filed]
    );
    let got = peer.records();
    assert_eq!(got.len(), 2, "{got:?}");
    for r in &got {
        assert_eq!(r["answer"], "AA", "{r}");
        assert_eq!(r["event"], "T02", "{r}");
        assert_eq!(r["orc1"], "NW", "{r}");
        assert_eq!(r["document_starts_with_xml"], true, "{r}");
        assert!(
            r["pid3"].to_string().contains("279035121518989"),
            "PID-3 carries the INS: {r}"
        );
    }
    // Idempotent: a second run sends nothing.
    let s = e.run_once().await.unwrap();
    assert_eq!(s.deliveries, 0);
    assert_eq!(peer.records().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_by_the_dpi_waits_for_review_with_its_code() {
    let peer = DpiPeer::start(&[]);
    peer.set_mode("AE 902 Patient inconnu");
    let tmp = tempfile::tempdir().unwrap();
    let e = engine(tmp.path(), &peer.address()).await;
    e.run_once().await.unwrap();
    let reviews = e
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert!(
        reviews.iter().all(|r| r.reason_code == "902"),
        "{reviews:?}"
    );
    assert_eq!(
        states(&e).await,
        vec![MessageState::AwaitingReview, MessageState::AwaitingReview]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retried_after_ar_and_dpi_down_in_order_per_patient() {
    let peer = DpiPeer::start(&[]);
    peer.set_mode("AR busy");
    let tmp = tempfile::tempdir().unwrap();
    let e = engine(tmp.path(), &peer.address()).await;
    let s = e.run_once().await.unwrap();
    assert_eq!(s.filed, 0, "{s:?}");
    assert_eq!(s.retries, 1, "{s:?}");
    // Only the first document was offered: the second (same patient) waits behind it.
    assert_eq!(peer.records().len(), 1);
    peer.set_mode("AA");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let s = e.run_once().await.unwrap();
    assert_eq!(s.filed, 2, "{s:?}");
    let got = peer.records();
    let ids: Vec<String> = got.iter().map(|r| r["txa12"].to_string()).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        ids[0], ids[1],
        "the refused document is sent again first: {ids:?}"
    );
    assert_ne!(ids[1], ids[2]);
    assert_eq!(
        got[0]["control_id"], got[1]["control_id"],
        "a retry keeps its control id"
    );

    // The DPI down: nothing is lost, it is filed when the DPI is back.
    drop(peer);
    let tmp = tempfile::tempdir().unwrap();
    let dead = "127.0.0.1:9"; // discard port: nothing listens on loopback
    let e = engine(tmp.path(), dead).await;
    let s = e.run_once().await.unwrap();
    assert_eq!((s.filed, s.retries), (0, 1), "{s:?}");
    assert_eq!(
        states(&e).await,
        vec![MessageState::Matched, MessageState::Matched]
    );
}
