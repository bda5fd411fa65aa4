//! The inbound pipeline end to end on the project's samples: Maildir → journal → checks →
//! patient match → routing → output folder, with dedup, review and crash-resume behaviour.

mod common;

use common::{camille, maildir, states};
use relais_engine::config::{Config, Sink, Source};
use relais_engine::{Engine, RunSummary};
use relais_store::{Journal, MessageFilter, MessageState, ReviewFilter};
use relais_testsupport::{ans_dir, workspace_root};
use std::path::Path;

fn config(root: &Path, inbox: &Path, require_match: bool) -> Config {
    let source = Source::Maildir {
        address: None,
        name: "inbox".into(),
        path: inbox.to_path_buf(),
        consume: true,
    };
    let sink = Sink::Folder {
        name: "out".into(),
        path: root.join("out"),
    };
    common::config(root, vec![source], vec![sink], require_match)
}

fn out_files(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("out"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn samples_are_filed_rejected_and_never_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = maildir(
        tmp.path(),
        &[
            "mail/ldl-ses-n1.eml",
            "mail/cr-bio-n1.eml",
            "invalid/xdm-hash-mismatch.eml",
            "invalid/not-a-pdf.eml",
        ],
    );
    let engine = Engine::open(config(tmp.path(), &inbox, false))
        .await
        .unwrap();
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.journaled, 4, "{s:?}");
    assert_eq!(s.filed, 2, "{s:?}");
    assert_eq!(s.rejected, 2, "{s:?}");
    assert_eq!(
        states(&engine).await,
        vec![
            MessageState::Filed,
            MessageState::Filed,
            MessageState::Rejected,
            MessageState::Rejected
        ]
    );
    // Documents and sidecars in the output folder.
    let files = out_files(tmp.path());
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".xml")).count(),
        2,
        "{files:?}"
    );
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".json")).count(),
        2,
        "{files:?}"
    );
    let sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            tmp.path()
                .join("out")
                .join(files.iter().find(|f| f.ends_with(".json")).unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["ins_oid"], "1.2.250.1.213.1.4.10");
    // The rejected ones say why.
    let rejected = engine
        .journal()
        .list_messages(&MessageFilter {
            state: Some(MessageState::Rejected),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    let mut codes: Vec<String> = rejected
        .iter()
        .map(|m| m.last_error.clone().unwrap().code)
        .collect();
    codes.sort();
    assert_eq!(codes, vec!["MAIL-PDF-NOT-PDF", "XDM-HASH-MISMATCH"]);
    // Consumed: the Maildir's new/ is empty, cur/ holds the four mails.
    assert_eq!(std::fs::read_dir(inbox.join("new")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(inbox.join("cur")).unwrap().count(), 4);

    // The same mails delivered again (another copy, another name): nothing is filed twice.
    let again = maildir(tmp.path(), &["mail/ldl-ses-n1.eml"]);
    assert_eq!(again, inbox);
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.deliveries, 0, "{s:?}");
    assert_eq!(out_files(tmp.path()).len(), 4);
    // A second engine on the same journal (a restart) has nothing to do.
    drop(engine);
    let engine = Engine::open(config(tmp.path(), &inbox, false))
        .await
        .unwrap();
    assert_eq!(engine.run_once().await.unwrap(), RunSummary::default());
}

#[tokio::test]
async fn patient_matching_and_review() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = maildir(tmp.path(), &["mail/ldl-ses-n1.eml"]);
    let engine = Engine::open(config(tmp.path(), &inbox, true))
        .await
        .unwrap();
    // Unknown patient: 902, waits for review, nothing filed.
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.awaiting_review, 1, "{s:?}");
    assert!(out_files(tmp.path()).is_empty());
    let reviews = engine
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].reason_code, "902");
    assert!(
        !reviews[0].reason_text.contains("279035121518989"),
        "no INS in review texts"
    );
    // A reviewer files it to a patient: delivered, message filed.
    engine
        .file_reviewed(reviews[0].id, "IPP-0001", "dr.review")
        .await
        .unwrap();
    let mut s = RunSummary::default();
    engine.drain_sinks(&mut s).await.unwrap();
    assert_eq!(s.deliveries, 1);
    assert_eq!(states(&engine).await, vec![MessageState::Filed]);
    let events = engine
        .journal()
        .message_events(reviews[0].message_id)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "review_filed"),
        "{events:?}"
    );

    // Known patient, same traits: filed automatically.
    engine
        .journal()
        .upsert_patient(&camille("IPP-0002"))
        .await
        .unwrap();
    maildir(tmp.path(), &["mail/cr-bio-n1.eml"]);
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.filed, 1, "{s:?}");
}

#[tokio::test]
async fn matching_codes_902_to_906() {
    use relais_engine::matching::{MatchOutcome, match_patient};
    let tmp = tempfile::tempdir().unwrap();
    let journal = relais_store::SqliteJournal::open(tmp.path()).await.unwrap();
    let text =
        std::fs::read_to_string(workspace_root().join("samples/documents/ldl-ses-n1.xml")).unwrap();
    let read = |t: &str| relais_cda::read(t.as_bytes(), &Default::default()).unwrap();
    let code = |o: MatchOutcome| match o {
        MatchOutcome::Review { code, .. } => code.to_string(),
        MatchOutcome::Matched { ipp } => format!("matched {ipp}"),
    };
    let doc = read(&text);
    assert_eq!(code(match_patient(&journal, &doc).await.unwrap()), "902");
    journal.upsert_patient(&camille("IPP-7")).await.unwrap();
    assert_eq!(
        code(match_patient(&journal, &doc).await.unwrap()),
        "matched IPP-7"
    );
    // A trait differs in the index: 904.
    let mut other = camille("IPP-7");
    other.birthplace_insee = Some("75056".into());
    journal.upsert_patient(&other).await.unwrap();
    assert_eq!(code(match_patient(&journal, &doc).await.unwrap()), "904");
    // Two patients hold the INS: 906.
    journal.upsert_patient(&camille("IPP-7")).await.unwrap();
    journal.upsert_patient(&camille("IPP-8")).await.unwrap();
    assert_eq!(code(match_patient(&journal, &doc).await.unwrap()), "906");
    // No INS in the document: 903.
    let no_ins = text.replacen("root=\"1.2.250.1.213.1.4.10\"", "root=\"2.999.1.2.3\"", 1);
    assert_eq!(
        code(match_patient(&journal, &read(&no_ins)).await.unwrap()),
        "903"
    );
    // A trait missing in the document: 905.
    let start = text.find("<birthplace>").unwrap();
    let end = text.find("</birthplace>").unwrap() + "</birthplace>".len();
    let incomplete = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        code(match_patient(&journal, &read(&incomplete)).await.unwrap()),
        "905"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn adt_over_mllp_feeds_the_patient_index() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let inbox = maildir(tmp.path(), &[]);
    let mut c = config(tmp.path(), &inbox, true);
    c.patients.adt_listen = Some("127.0.0.1:0".into());
    let engine = Engine::open(c).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = engine.start_adt(stop_rx).await.unwrap().expect("listening");
    let admission = std::fs::read(ans_dir().join("hl7v2-examples/admission.er7")).unwrap();
    let mut frame = vec![0x0b];
    frame.extend_from_slice(&admission);
    frame.extend([0x1c, 0x0d]);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame).await.unwrap();
    let mut ack = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut ack))
        .await
        .unwrap()
        .unwrap();
    let ack = String::from_utf8_lossy(&ack[..n]).to_string();
    assert!(ack.contains("MSA|AA"), "{ack}");
    // The update is applied asynchronously after the ACK: wait for it.
    let mut found = None;
    for _ in 0..50 {
        found = engine
            .journal()
            .find_patient_by_ipp("000003")
            .await
            .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let p = found.expect("patient from the ADT A01").record;
    assert_eq!(
        p.ins.as_ref().map(|i| i.value.as_str()),
        Some("279035121518989")
    );
    assert_eq!(p.birth_date.as_deref().map(|d| &d[..8]), Some("19790328"));
    let _ = stop_tx.send(true);
}

#[tokio::test]
async fn a_restart_resumes_messages_left_between_two_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = maildir(tmp.path(), &["mail/ldl-ses-n1.eml", "mail/cr-bio-n1.eml"]);
    {
        // First life: journaled and taken to `matched` (deliveries queued), then "killed".
        let engine = Engine::open(config(tmp.path(), &inbox, false))
            .await
            .unwrap();
        let mut s = RunSummary::default();
        engine.poll_sources(&mut s).await.unwrap();
        engine.process_pending(&mut s).await.unwrap();
        assert_eq!(
            states(&engine).await,
            vec![MessageState::Matched, MessageState::Matched]
        );
        // And one message pushed back as if the crash came right after `parsed`.
        maildir(tmp.path(), &["invalid/xdm-patientid-mismatch.eml"]);
        engine.poll_sources(&mut s).await.unwrap();
        let id = engine
            .journal()
            .list_messages(&MessageFilter {
                state: Some(MessageState::Received),
                ..MessageFilter::default()
            })
            .await
            .unwrap()[0]
            .id;
        engine
            .journal()
            .transition(
                id,
                MessageState::Received,
                MessageState::Parsed,
                relais_store::Event::system("parsed"),
            )
            .await
            .unwrap();
    }
    // Second life: everything ends in a final state, each document filed once.
    let engine = Engine::open(config(tmp.path(), &inbox, false))
        .await
        .unwrap();
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.deliveries, 2, "{s:?}");
    assert_eq!(
        states(&engine).await,
        vec![
            MessageState::Filed,
            MessageState::Filed,
            MessageState::Rejected
        ]
    );
    assert_eq!(out_files(tmp.path()).len(), 4);
    assert_eq!(engine.run_once().await.unwrap().deliveries, 0);
}
