//! MllpClient against a real, independent HL7 implementation: tests/peers/dpi_peer.py, a DPI
//! written with hl7apy (PyPI) running in its own process. The peer parses each MDM as HL7 v2.6
//! MDM_T02, records what it understood, and answers AA / AE / AR, closes, or stays silent as the
//! test asks through its mode file.
//!
//! These tests need `python3` on PATH with hl7apy installed
//! (`python3 -m pip install hl7apy==1.3.5`); they fail, saying so, when it is missing.

use relais_cda::CdaDocument;
use relais_core::Limits;
use relais_dpi::{
    AckOutcome, ClientConfig, DpiError, Endpoints, LpsError, MailFacts, MdmEvent, MdmInput,
    MetaFlags, MllpClient, build_mdm, codes,
};
use relais_hl7::embedded_documents;
use relais_testsupport::ans_file;
use relais_testsupport::dpi_peer::DpiPeer;
use std::time::Duration;

/// The hl7apy DPI peer of relais-testsupport, with a client configured for it.
type Peer = DpiPeer;

trait PeerClient {
    fn client(&self) -> MllpClient;
}

impl PeerClient for DpiPeer {
    fn client(&self) -> MllpClient {
        let mut config = ClientConfig::new(self.address());
        config.connect_timeout = Duration::from_secs(5);
        config.ack_timeout = Duration::from_secs(20);
        MllpClient::new(config)
    }
}

fn mail() -> MailFacts {
    MailFacts {
        message_id: "20240306.42@medecin.mssante.fr".into(),
        subject: "XDM/1.0/DDM+Lettre de liaison PAT-TROIS DOMINIQUE".into(),
        body_text: "Bonjour,\r\nci-joint la lettre de liaison.\r\n".into(),
        sender: "thomas.eric@medecin.mssante.fr".into(),
        recipients: vec!["dpi@hopitalA.mssante.fr".into()],
        ..MailFacts::default()
    }
}

fn endpoints() -> Endpoints {
    Endpoints {
        sending_application: "RELAIS".into(),
        sending_facility: "CHU-X".into(),
        receiving_application: "DPI".into(),
        receiving_facility: "CHU-X".into(),
        processing_id: "P".into(),
    }
}

struct Doc {
    bytes: Vec<u8>,
    doc: CdaDocument,
}

fn ldl_ses() -> Doc {
    let bytes = std::fs::read(ans_file("cda-examples/LDL-SES_2022.01.xml")).unwrap();
    let doc = relais_cda::read(&bytes, &Limits::default()).unwrap();
    Doc { bytes, doc }
}

fn rplc() -> Doc {
    let raw = std::fs::read(ans_file(
        "hl7v2-examples/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7",
    ))
    .unwrap();
    let msg = relais_hl7::parse(&raw, &Limits::default()).unwrap();
    let bytes = embedded_documents(&msg).remove(0).data.unwrap();
    let doc = relais_cda::read(&bytes, &Limits::default()).unwrap();
    Doc { bytes, doc }
}

fn mdm(event: MdmEvent, d: &Doc, control_id: &str) -> String {
    build_mdm(&MdmInput {
        event,
        cda: &d.bytes,
        header: &d.doc.header,
        mail: &mail(),
        endpoints: &endpoints(),
        meta: MetaFlags::default(),
        control_id,
        timestamp: "20240306111154+0100",
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_document_is_accepted_and_understood_by_the_peer() {
    let peer = Peer::start(&[]);
    let doc = ldl_ses();
    let text = mdm(MdmEvent::New, &doc, "RT02-1");
    let mut client = peer.client();
    assert_eq!(client.send(&text).await.unwrap(), AckOutcome::Accepted);

    let records = peer.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["answer"], "AA", "{r}");
    assert!(
        r.get("invalid").is_none(),
        "the peer found the MDM invalid: {r}"
    );
    assert_eq!(r["control_id"], "RT02-1");
    assert_eq!(r["event"], "T02");
    assert_eq!(r["message_type"], "MDM^T02^MDM_T02");
    assert_eq!(r["orc1"], "NW");
    assert_eq!(r["obx11"], "F");
    assert_eq!(r["txa13"], "");
    assert_eq!(
        r["document_bytes"],
        doc.bytes.len(),
        "the peer decoded the whole CDA"
    );
    assert_eq!(r["document_starts_with_xml"], true);
    assert_eq!(r["mail_message_id"], "20240306.42@medecin.mssante.fr");
    assert_eq!(r["prt_count"], 2);
    // TXA-12 and PID-3 as the peer read them are what the builder wrote.
    let msg = relais_hl7::parse(text.as_bytes(), &Limits::default()).unwrap();
    let txa12 = msg
        .segment("TXA", 1)
        .unwrap()
        .field(12)
        .unwrap()
        .raw()
        .to_string();
    assert_eq!(r["txa12"], txa12);
    let id = doc.doc.header.id.as_ref().unwrap();
    assert!(
        txa12.contains(id.root.as_deref().unwrap()),
        "TXA-12 {txa12} names the CDA id"
    );
    let pid3: Vec<String> = msg
        .segment("PID", 1)
        .unwrap()
        .field(3)
        .unwrap()
        .repetitions()
        .map(|r| r.raw().to_string())
        .collect();
    assert_eq!(r["pid3"], serde_json::json!(pid3));
    let ins = doc
        .doc
        .header
        .patient
        .as_ref()
        .unwrap()
        .ins
        .as_ref()
        .unwrap();
    assert!(
        pid3.iter()
            .any(|p| p.starts_with(&ins.value) && p.ends_with("^INS")),
        "{pid3:?}"
    );

    // A second message uses the same connection.
    let second = mdm(MdmEvent::New, &doc, "RT02-2");
    assert_eq!(client.send(&second).await.unwrap(), AckOutcome::Accepted);
    assert_eq!(client.connections_opened(), 1, "the connection is reused");
    assert_eq!(peer.records()[1]["control_id"], "RT02-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_carries_the_parent_document() {
    let peer = Peer::start(&[]);
    let doc = rplc();
    let mut client = peer.client();
    assert_eq!(
        client
            .send(&mdm(MdmEvent::Replace, &doc, "RT10-1"))
            .await
            .unwrap(),
        AckOutcome::Accepted
    );
    let r = &peer.records()[0];
    assert_eq!(r["answer"], "AA", "{r}");
    assert_eq!(r["event"], "T10");
    assert_eq!(r["orc1"], "RO");
    assert_eq!(r["obx11"], "C");
    assert_eq!(r["txa12"], "1.2.250.1.71.4.2.2.120456789.71024000082");
    assert_eq!(r["txa13"], "1.2.250.1.71.4.2.2.120456789.71024000081");
    assert_eq!(r["document_bytes"], doc.bytes.len());

    assert_eq!(
        client
            .send(&mdm(MdmEvent::Delete, &doc, "RT04-1"))
            .await
            .unwrap(),
        AckOutcome::Accepted
    );
    let r = &peer.records()[1];
    assert_eq!(
        (r["event"].as_str(), r["orc1"].as_str(), r["obx11"].as_str()),
        (Some("T04"), Some("CA"), Some("D"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_errors_are_rejections_with_their_code() {
    let peer = Peer::start(&[]);
    let doc = ldl_ses();
    let mut client = peer.client();
    peer.set_mode("AE 902 Identifiant patient inconnu");
    let outcome = client
        .send(&mdm(MdmEvent::New, &doc, "RAE-1"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AckOutcome::Rejected {
            code: "902".into(),
            text: "Identifiant patient inconnu".into()
        }
    );
    assert_eq!(outcome.lps_error(), Some(LpsError::PatientUnknown));
    assert_eq!(outcome.code(), Some(codes::DPI_REJECTED));

    peer.set_mode("AE 101 Required field missing");
    let outcome = client
        .send(&mdm(MdmEvent::New, &doc, "RAE-2"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AckOutcome::Rejected {
            code: "101".into(),
            text: "Required field missing".into()
        }
    );
    assert_eq!(outcome.lps_error(), None);

    peer.set_mode("AR DPI en maintenance");
    let outcome = client
        .send(&mdm(MdmEvent::New, &doc, "RAR-1"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AckOutcome::Retry {
            text: "DPI en maintenance".into()
        }
    );
    assert_eq!(outcome.code(), Some(codes::DPI_RETRY));
    assert_eq!(
        client.connections_opened(),
        1,
        "refusals keep the connection"
    );
    let answers: Vec<_> = peer
        .records()
        .iter()
        .map(|r| r["answer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(answers, ["AE", "AE", "AR"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_closes_or_stays_silent_is_an_error_and_the_client_recovers() {
    let peer = Peer::start(&[]);
    let doc = ldl_ses();
    let mut config = ClientConfig::new(peer.address());
    config.ack_timeout = Duration::from_millis(700);
    let mut client = MllpClient::new(config);

    peer.set_mode("DROP");
    let err = client
        .send(&mdm(MdmEvent::New, &doc, "RDROP-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DpiError::Closed), "{err}");
    assert_eq!(err.code(), codes::DPI_CLOSED);
    assert!(err.is_transient() && !err.not_sent());

    peer.set_mode("SILENT 5");
    let started = std::time::Instant::now();
    let err = client
        .send(&mdm(MdmEvent::New, &doc, "RSILENT-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DpiError::AckTimeout { .. }), "{err}");
    assert_eq!(err.code(), codes::DPI_ACK_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout is the client's, not the peer's"
    );
    assert!(!client.is_connected(), "a timed-out connection is dropped");

    peer.set_mode("AA");
    assert_eq!(
        client
            .send(&mdm(MdmEvent::New, &doc, "RAFTER-1"))
            .await
            .unwrap(),
        AckOutcome::Accepted
    );
    assert_eq!(client.connections_opened(), 3);
    let answers: Vec<_> = peer
        .records()
        .iter()
        .map(|r| r["answer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(answers, ["DROP", "SILENT", "AA"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_when_the_peer_closes_after_each_message() {
    // hl7apy's stock behaviour: one message per connection.
    let peer = Peer::start(&["--close-after-each"]);
    let doc = ldl_ses();
    let mut client = peer.client();
    for i in 1..=3 {
        // Give the peer time to close, so the client meets a closed connection.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let outcome = client
            .send(&mdm(MdmEvent::New, &doc, &format!("RRC-{i}")))
            .await
            .unwrap();
        assert_eq!(outcome, AckOutcome::Accepted, "message {i}");
    }
    assert_eq!(client.connections_opened(), 3);
    assert_eq!(peer.records().len(), 3, "each message filed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_refuses_a_broken_mdm_and_the_client_reports_its_code() {
    let peer = Peer::start(&[]);
    let doc = ldl_ses();
    let good = mdm(MdmEvent::New, &doc, "RBAD-1");
    let mut client = peer.client();

    let v25 = good.replacen("|2.6|", "|2.5|", 1);
    assert_eq!(
        client.send(&v25).await.unwrap(),
        AckOutcome::Rejected {
            code: "203".into(),
            text: "HL7 version 2.5 is not 2.6".into()
        }
    );

    let no_txa: Vec<&str> = good
        .split('\r')
        .filter(|s| !s.starts_with("TXA|"))
        .collect();
    let no_txa = no_txa.join("\r").replace("RBAD-1", "RBAD-2");
    match client.send(&no_txa).await.unwrap() {
        AckOutcome::Rejected { code, .. } => assert_eq!(code, "101"),
        other => panic!("{other:?}"),
    }
    let incoherent = good.replace("ORC|NW", "ORC|RO").replace("RBAD-1", "RBAD-3");
    match client.send(&incoherent).await.unwrap() {
        AckOutcome::Rejected { code, .. } => assert_eq!(code, "207"),
        other => panic!("{other:?}"),
    }
    let codes_seen: Vec<_> = peer
        .records()
        .iter()
        .map(|r| r["error_code"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(codes_seen, ["203", "101", "207"]);
}
