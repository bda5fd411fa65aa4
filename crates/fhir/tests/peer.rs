//! relais-fhir against a real FHIR server in another process (tests/peers/fhir_peer.py), which
//! parses every posted bundle with the pydantic models of fhir.resources (PyPI) and processes
//! the transaction (conditional creates, reference rewriting). No mocks: bearer tokens, HTTPS
//! with required client certificates, error answers and timeouts all go over real sockets.

use std::time::{Duration, Instant};

use base64::Engine as _;
use relais_fhir::{
    DocumentFiling, FhirClient, Filer, Ins, Outcome, PatientIds, PostError, Settings, classify,
    transaction_bundle,
};
use relais_testsupport::fhir_peer::FhirPeer;
use relais_testsupport::pki::{PkiOptions, TestPki};
use serde_json::{Value, json};

const IPP_SYSTEM: &str = "urn:oid:1.2.250.1.999.2.1";

fn cda(n: u32) -> String {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\
         <id root=\"1.2.250.1.999.1.1\" extension=\"DOC-{n}\"/></ClinicalDocument>\n"
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn doc<'a>(key: &'a str, cda_id: &'a str, cda64: &'a str) -> DocumentFiling<'a> {
    DocumentFiling {
        idempotency_key: key,
        cda_id,
        replaces: None,
        type_code: Some("11490-0"),
        title: Some("Lettre de liaison de sortie"),
        patient: PatientIds {
            ipp: Some("IPP-000123"),
            ins: Some(Ins {
                oid: "1.2.250.1.213.1.4.10",
                value: "279035121518989",
            }),
        },
        mail_message_id: Some("<20240101.1@ch-demo.mssante.fr>"),
        cda_base64: cda64,
    }
}

fn bearer_settings(peer: &FhirPeer) -> Settings {
    let mut s = Settings::new(peer.base_url(), IPP_SYSTEM);
    s.bearer_token_file = Some(peer.token_file());
    s
}

fn filed(o: Outcome) -> relais_fhir::Filed {
    match o {
        Outcome::Filed(f) => f,
        other => panic!("expected Filed, got {other:?}"),
    }
}

fn rejected(o: Outcome) -> (String, String) {
    match o {
        Outcome::Rejected { code, text } => (code, text),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

fn retry(o: Outcome) -> String {
    match o {
        Outcome::Retry { text } => text,
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn http_with_bearer_token_files_the_document() {
    let peer = FhirPeer::start_with_token();
    let filer = Filer::new(&bearer_settings(&peer)).unwrap();
    let cda64 = cda(1);
    let f = filed(
        filer
            .file(&doc("fhir:1", "1.2.250.1.999.1.1^DOC-1", &cda64))
            .await,
    );
    assert_eq!(f.status, 200);
    assert!(f.created && f.patient_created, "{f:?}");
    let location = f.document_reference.clone().unwrap();
    assert!(location.starts_with("DocumentReference/"), "{location}");
    assert!(f.detail().contains(&location));

    let records = peer.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["auth"], "bearer");
    assert_eq!(r["prefer"], "return=minimal");
    let entries = r["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Patient", "Binary", "DocumentReference"]);
    assert!(entries.iter().all(|e| e["status"] == "201 Created"));

    // What the server holds is what was sent.
    let bundle = &r["bundle"];
    assert_eq!(r["request_id"], bundle["identifier"]["value"]);
    assert_eq!(bundle["entry"][1]["resource"]["data"], cda64.as_str());
    let dr = &bundle["entry"][2]["resource"];
    assert_eq!(dr["masterIdentifier"]["value"], "DOC-1");
    assert_eq!(
        dr["content"][0]["attachment"]["url"],
        bundle["entry"][1]["fullUrl"]
    );
}

#[tokio::test]
async fn replays_file_once_and_the_patient_is_created_once() {
    let peer = FhirPeer::start_with_token();
    let filer = Filer::new(&bearer_settings(&peer)).unwrap();
    let cda1 = cda(1);
    let first = doc("fhir:1", "1.2.250.1.999.1.1^DOC-1", &cda1);
    let a = filed(filer.file(&first).await);
    assert!(a.created);

    // The same delivery again (crash after the POST, lost answer): the conditional creates
    // match, nothing new is filed, and the answer points to the same DocumentReference.
    let b = filed(filer.file(&first).await);
    assert!(!b.created && !b.patient_created, "{b:?}");
    assert_eq!(a.document_reference, b.document_reference);
    assert!(b.detail().contains("already filed"));
    let records = peer.records();
    assert_eq!(
        records[0]["bundle"], records[1]["bundle"],
        "a replay sends the same bundle"
    );

    // A new version of the same patient's document: a new DocumentReference that replaces the
    // first, on the existing Patient.
    let cda2 = cda(2);
    let mut second = doc("fhir:2", "1.2.250.1.999.1.1^DOC-2", &cda2);
    second.replaces = Some("1.2.250.1.999.1.1^DOC-1");
    let c = filed(filer.file(&second).await);
    assert!(c.created && !c.patient_created, "{c:?}");
    assert_eq!(c.patient, a.patient);
    assert_ne!(c.document_reference, a.document_reference);

    assert_eq!(peer.created("Patient"), 1);
    assert_eq!(peer.created("DocumentReference"), 2);
    // The replay's Binary has no identifier to be created conditionally on: one unreferenced
    // Binary is the documented price of a replay.
    assert_eq!(peer.created("Binary"), 3);
    let last = &peer.accepted_bundles()[2];
    assert_eq!(
        last["entry"][2]["resource"]["relatesTo"][0]["target"]["identifier"]["value"],
        "DOC-1"
    );
}

#[tokio::test]
async fn a_refused_token_is_fhir_auth() {
    let peer = FhirPeer::start_with_token();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let mut s = bearer_settings(&peer);
    s.bearer_token_file = Some(wrong);
    let filer = Filer::new(&s).unwrap();
    let cda64 = cda(1);
    let (code, text) = rejected(filer.file(&doc("k", "1.2.3^X", &cda64)).await);
    assert_eq!(code, "FHIR-AUTH");
    assert!(
        text.contains("401") && text.contains("bearer_token_file"),
        "{text}"
    );
    assert!(!text.contains("not-the-token"), "{text}");

    // No token at all: the same.
    let filer = Filer::new(&Settings::new(peer.base_url(), IPP_SYSTEM)).unwrap();
    let (code, _) = rejected(filer.file(&doc("k", "1.2.3^X", &cda64)).await);
    assert_eq!(code, "FHIR-AUTH");

    let records = peer.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["auth"] == "refused"));
    assert_eq!(peer.created("DocumentReference"), 0);
}

#[tokio::test]
async fn error_answers_are_rejected_or_retried() {
    let peer = FhirPeer::start_with_token();
    let filer = Filer::new(&bearer_settings(&peer)).unwrap();
    let cda64 = cda(1);
    let d = doc("fhir:1", "1.2.250.1.999.1.1^DOC-1", &cda64);

    peer.set_mode("400");
    let (code, text) = rejected(filer.file(&d).await);
    assert_eq!(code, "FHIR-400");
    assert!(text.contains("error invalid at Bundle.entry[0]"), "{text}");
    assert!(
        !text.contains("peer mode"),
        "diagnostics are not copied: {text}"
    );

    peer.set_mode("403");
    assert_eq!(rejected(filer.file(&d).await).0, "FHIR-AUTH");
    peer.set_mode("412");
    assert_eq!(rejected(filer.file(&d).await).0, "FHIR-412");

    peer.set_mode("503");
    let text = retry(filer.file(&d).await);
    assert!(
        text.contains("503") && text.contains("retry after 1"),
        "{text}"
    );
    for mode in ["500", "502", "429"] {
        peer.set_mode(mode);
        let text = retry(filer.file(&d).await);
        assert!(text.contains(mode), "{mode}: {text}");
    }

    peer.set_mode("GARBAGE");
    assert_eq!(rejected(filer.file(&d).await).0, "FHIR-RESPONSE");

    // An answer over MAX_RESPONSE_BYTES is not read to its end, nor trusted.
    peer.set_mode("HUGE");
    let (code, text) = rejected(filer.file(&d).await);
    assert_eq!(code, "FHIR-RESPONSE");
    assert!(text.contains("larger than Relais reads"), "{text}");

    peer.set_mode("DROP");
    let text = retry(filer.file(&d).await);
    assert!(text.contains("exchange with the FHIR server"), "{text}");

    // Back to normal: the document is filed, once.
    peer.set_mode("OK");
    assert!(filed(filer.file(&d).await).created);
    assert_eq!(peer.created("DocumentReference"), 1);
}

/// A way to spoil a valid bundle.
type Break = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn the_peer_really_validates_bundles() {
    let peer = FhirPeer::start_with_token();
    let s = bearer_settings(&peer);
    let client = FhirClient::new(&s).unwrap();
    let cda64 = cda(1);
    let good: Value = serde_json::from_slice(
        &transaction_bundle(&doc("v", "1.2.3^V", &cda64), IPP_SYSTEM)
            .unwrap()
            .to_json(),
    )
    .unwrap();

    // Each break must be caught by the peer: the models (unknown element, wrong type, missing
    // required element, unknown resource type) or the transaction rules around them.
    let breaks: Vec<(&str, Break, &str)> = vec![
        (
            "unknown element",
            Box::new(|b| b["entry"][2]["resource"]["colour"] = json!("blue")),
            "Bundle.entry.2.resource",
        ),
        (
            "wrong type",
            Box::new(|b| {
                b["entry"][2]["resource"]["content"][0]["attachment"]["size"] = json!("big")
            }),
            "Bundle.entry.2.resource.content.0.attachment.size",
        ),
        (
            "required element missing",
            Box::new(|b| {
                b["entry"][2]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .remove("status");
            }),
            "Bundle.entry.2.resource.status",
        ),
        (
            "code outside its required value set",
            Box::new(|b| b["entry"][2]["resource"]["status"] = json!("filed")),
            "Bundle.entry[2].resource.status",
        ),
        (
            "dangling urn:uuid reference",
            Box::new(|b| {
                b["entry"][2]["resource"]["subject"]["reference"] =
                    json!("urn:uuid:00000000-0000-5000-8000-000000000000")
            }),
            "Bundle.entry[2]",
        ),
        (
            "attachment hash of another document",
            Box::new(|b| {
                b["entry"][2]["resource"]["content"][0]["attachment"]["hash"] =
                    json!("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            }),
            "Bundle.entry[2].resource.content[0].attachment.hash",
        ),
        (
            "batch instead of transaction",
            Box::new(|b| b["type"] = json!("batch")),
            "Bundle.type",
        ),
    ];
    for (what, break_it, expression) in &breaks {
        let mut bad = good.clone();
        break_it(&mut bad);
        let resp = client
            .post_raw(serde_json::to_vec(&bad).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(
            resp.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let oo: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome", "{what}");
        assert!(
            oo["issue"][0]["expression"][0]
                .as_str()
                .unwrap_or_default()
                .starts_with(expression),
            "{what}: {oo}"
        );
        let (code, text) = rejected(classify(&resp));
        assert_eq!(code, "FHIR-400", "{what}");
        assert!(text.contains(" at Bundle."), "{what}: {text}");
    }
    assert_eq!(
        peer.accepted_bundles().len(),
        0,
        "nothing invalid was stored"
    );

    // The untouched bundle passes.
    let resp = client
        .post_raw(serde_json::to_vec(&good).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert!(filed(classify(&resp)).created);
}

#[tokio::test]
async fn https_with_required_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &PkiOptions::default());
    let peer = FhirPeer::start_mtls(&pki);
    let client_id = pki.client("dpi");
    let cda64 = cda(1);
    let d = doc("fhir:1", "1.2.250.1.999.1.1^DOC-1", &cda64);

    let mut s = Settings::new(peer.base_url(), IPP_SYSTEM);
    s.ca_files = vec![pki.root_ca.clone()];
    s.client_cert = Some(client_id.chain.clone());
    s.client_key = Some(client_id.key.clone());
    let f = filed(Filer::new(&s).unwrap().file(&d).await);
    assert!(f.created);
    let records = peer.records();
    assert_eq!(records.len(), 1);
    assert!(
        records[0]["client_cert"]
            .as_str()
            .unwrap_or_default()
            .contains("dpi@hopital.test"),
        "{}",
        records[0]
    );

    // No client certificate: the handshake fails, and the text says what to set.
    let mut no_cert = s.clone();
    no_cert.client_cert = None;
    no_cert.client_key = None;
    let text = retry(Filer::new(&no_cert).unwrap().file(&d).await);
    assert!(
        text.contains("requires a client certificate") && text.contains("client_cert"),
        "{text}"
    );

    // A server certificate from another PKI: not trusted.
    let mut wrong_ca = s.clone();
    wrong_ca.ca_files = vec![pki.other_root_ca.clone()];
    let text = retry(Filer::new(&wrong_ca).unwrap().file(&d).await);
    assert!(text.contains("not trusted"), "{text}");

    // https:// to the plain-HTTP side of things and http:// to the TLS port both fail clearly.
    let mut plain = Settings::new(peer.base_url().replace("https://", "http://"), IPP_SYSTEM);
    plain.request_timeout = Duration::from_secs(5);
    let text = retry(Filer::new(&plain).unwrap().file(&d).await);
    assert!(text.contains("exchange with the FHIR server"), "{text}");
    assert_eq!(peer.created("DocumentReference"), 1);
}

#[tokio::test]
async fn https_to_a_plain_http_port_says_so() {
    let peer = FhirPeer::start_with_token();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &PkiOptions::default());
    let mut s = bearer_settings(&peer);
    s.base_url = peer.base_url().replace("http://", "https://");
    s.ca_files = vec![pki.root_ca.clone()];
    let cda64 = cda(1);
    let out = Filer::new(&s)
        .unwrap()
        .file(&doc("k", "1.2.3^X", &cda64))
        .await;
    let text = retry(out);
    assert!(text.contains("did not answer in TLS"), "{text}");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried() {
    let peer = FhirPeer::start_with_token();
    let mut s = bearer_settings(&peer);
    s.request_timeout = Duration::from_secs(1);
    let filer = Filer::new(&s).unwrap();
    let cda64 = cda(1);
    let d = doc("fhir:1", "1.2.250.1.999.1.1^DOC-1", &cda64);

    peer.set_mode("SLOW 3");
    let started = Instant::now();
    let text = retry(filer.file(&d).await);
    assert!(
        text.contains("did not answer within 1 s (request_timeout_secs)"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // The slow server filed it after all; the retry finds it and files nothing twice.
    peer.set_mode("OK");
    let deadline = Instant::now() + Duration::from_secs(20);
    while peer.records().is_empty() {
        assert!(Instant::now() < deadline, "the slow request never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let f = filed(filer.file(&d).await);
    assert!(!f.created, "{f:?}");
    assert_eq!(peer.created("DocumentReference"), 1);

    // A server that accepts the connection and never says a word: with https:// the TLS
    // handshake is part of connecting, so the connect timeout runs out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &PkiOptions::default());
    let mut s = Settings::new(
        format!(
            "https://127.0.0.1:{}/fhir",
            silent.local_addr().unwrap().port()
        ),
        IPP_SYSTEM,
    );
    s.ca_files = vec![pki.root_ca.clone()];
    s.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let text = retry(Filer::new(&s).unwrap().file(&d).await);
    assert!(
        text.contains("did not answer within 1 s (connect_timeout_secs)"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = Filer::new(&Settings::new(
        format!("http://127.0.0.1:{port}/fhir"),
        IPP_SYSTEM,
    ))
    .unwrap();
    let text = retry(closed.file(&d).await);
    assert!(text.contains("cannot connect"), "{text}");
}

#[tokio::test]
async fn documents_that_cannot_be_expressed_are_refused_before_sending() {
    let peer = FhirPeer::start_with_token();
    let filer = Filer::new(&bearer_settings(&peer)).unwrap();
    let cda64 = cda(1);
    let mut d = doc("k", "1.2.3^X", &cda64);
    d.patient = PatientIds::default();
    assert_eq!(rejected(filer.file(&d).await).0, "FHIR-NO-PATIENT");
    assert!(peer.records().is_empty());
    // The raw client error type is what a caller sees without classification.
    let err = FhirClient::new(&Settings::new("http://127.0.0.1:1/fhir", IPP_SYSTEM))
        .unwrap()
        .post_raw(b"{}".to_vec(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, PostError::Connect { .. }), "{err:?}");
}
