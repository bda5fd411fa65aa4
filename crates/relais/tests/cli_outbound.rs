//! `relais outbound list | show | resolve` and `relais annuaire import | search`, as an
//! operator runs them, on a journal holding letters and on the Annuaire's sample extraction.

use relais_store::{
    ErrorInfo, LetterBody, LetterIntake, LetterMail, LetterRequest, LetterSource, LetterSourceKind,
    NewRecipient, Outbox, RecipientReport, RecipientStatus, ReportKind, ResolvedBy, SendResult,
    SqliteJournal, TrackedReport, sha256_of_parts,
};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn relais(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RELAIS_CONFIG")
        .output()
        .expect("run relais")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn letter(key: &str, to: &str) -> LetterRequest {
    LetterRequest {
        source: LetterSource {
            kind: LetterSourceKind::Folder,
            key: format!("/srv/drop/{key}.json"),
            sha256: sha256_of_parts(&[key.as_bytes()]),
        },
        document_type: Some("11490-0".into()),
        cda_id: Some(format!("2.999.1^{key}")),
        cda_level: Some(1),
        recipients: vec![NewRecipient {
            address: Some(to.into()),
            rpps: None,
            resolved_by: ResolvedBy::Intake,
        }],
        body: LetterBody::Built(LetterMail {
            message_id: format!("relais.{key}@ch.test"),
            envelope_id: format!("env-{key}"),
            envelope_from: "service@ch.test".into(),
            raw: format!("Message-ID: <relais.{key}@ch.test>\r\n\r\nx\r\n").into_bytes(),
        }),
        detail: serde_json::json!({}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_list_show_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let j = SqliteJournal::open(dir.path().join("data/journal"))
        .await
        .unwrap();
    // Letter 1: sent, delivered and read. The patient's own address stays hidden.
    let LetterIntake::New { id: sent, .. } = j
        .intake_letter(letter("a", "279035121518989@patient.mssante.fr"))
        .await
        .unwrap()
    else {
        panic!()
    };
    j.claim_letter("w", Duration::from_secs(60)).await.unwrap();
    let _ = j
        .start_sending(sent, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let _ = j
        .letter_sent(
            sent,
            &SendResult {
                accepted: vec!["279035121518989@patient.mssante.fr".into()],
                refused: vec![],
                reply: "250 2.0.0 Ok: queued as 4XyZ".into(),
            },
        )
        .await
        .unwrap();
    j.record_report(
        sent,
        &TrackedReport {
            kind: ReportKind::Dsn,
            inbound_message: None,
            recipients: vec![RecipientReport {
                address: "279035121518989@patient.mssante.fr".into(),
                status: RecipientStatus::Delivered,
                remote_status: Some("2.0.0".into()),
                reason: Some("delivered".into()),
            }],
        },
    )
    .await
    .unwrap();
    // Letter 2: interrupted in flight, held for review.
    let LetterIntake::New { id: held, .. } =
        j.intake_letter(letter("b", "dr.b@ch.test")).await.unwrap()
    else {
        panic!()
    };
    j.claim_letter("w", Duration::from_secs(60)).await.unwrap();
    let _ = j
        .start_sending(held, "w", Duration::from_secs(60))
        .await
        .unwrap();
    let _ = j
        .hold_letter(
            held,
            &ErrorInfo {
                code: "OUTBOUND-OUTCOME-UNKNOWN".into(),
                text: "interrupted".into(),
            },
        )
        .await
        .unwrap();
    j.close().await;

    let out = relais(&config, &["outbound", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = text(&out);
    assert!(list.contains("held_for_review"), "{list}");
    assert!(list.contains("OUTBOUND-OUTCOME-UNKNOWN"), "{list}");
    assert!(list.contains("delivered"), "{list}");
    let out = relais(&config, &["outbound", "list", "--state", "sent"]);
    assert_eq!(text(&out).lines().count(), 1, "{}", text(&out));

    let out = relais(&config, &["outbound", "show", &sent.0.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let show = text(&out);
    for expected in [
        "letter 1: sent",
        "<relais.a@ch.test>",
        "<patient>@patient.mssante.fr",
        "delivered",
        "2.0.0",
        "queued as 4XyZ",
        "intake_accepted",
        "sending",
        "dsn",
    ] {
        assert!(show.contains(expected), "{expected}: {show}");
    }
    assert!(!show.contains("279035121518989"), "{show}");
    let out = relais(&config, &["outbound", "show", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The reviewer decides: it went out.
    let out = relais(
        &config,
        &[
            "outbound",
            "resolve",
            &held.0.to_string(),
            "--sent",
            "--user",
            "alice",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = relais(&config, &["outbound", "show", &held.0.to_string()]);
    let show = text(&out);
    assert!(show.contains(": sent"), "{show}");
    assert!(
        show.contains("resolved") && show.contains("alice"),
        "{show}"
    );
    // A second decision changes nothing.
    let out = relais(
        &config,
        &["outbound", "resolve", &held.0.to_string(), "--requeue"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn annuaire_import_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relais.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let extract = relais_testsupport::workspace_root()
        .join("crates/annuaire/tests/data/extraction-sample.txt");
    let out = relais(&config, &["annuaire", "import", extract.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("imported"), "{}", text(&out));

    let out = relais(&config, &["annuaire", "search", "--rpps", "10999999001"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let found = text(&out);
    assert!(
        found.contains("sophie.martin@chu-fictif.mssante.test"),
        "{found}"
    );
    assert!(
        found.contains("s.martin@cabinet-fictif.mssante.test"),
        "{found}"
    );

    let out = relais(
        &config,
        &[
            "annuaire",
            "search",
            "--name",
            "lefevre",
            "--profession",
            "medecin",
            "--speciality",
            "SM04",
            "--city",
            "Ville-Fictive",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("eric.lefevre@chu-fictif.mssante.test"));
    assert!(!text(&out).contains("sophie"), "{}", text(&out));

    let out = relais(&config, &["annuaire", "search", "--rpps", "10999999555"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = relais(&config, &["annuaire", "search"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
