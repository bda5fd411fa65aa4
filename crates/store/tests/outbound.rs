//! The outbound journal on SQLite: intake and dedup, the letter state machine with its crash
//! states, per-recipient tracking, lookup by Message-ID, and an audit trail even raw SQL
//! cannot rewrite.

use std::time::Duration;

use relais_store::{
    ErrorInfo, HeldDecision, LetterBody, LetterFilter, LetterIntake, LetterMail, LetterRequest,
    LetterSource, LetterSourceKind, LetterState, Moved, NewRecipient, Outbox, RecipientReport,
    RecipientStatus, ReportKind, ResolvedBy, SendResult, SqliteJournal, Timestamp, TrackedReport,
    sha256_of_parts,
};

fn request(key: &str, content: &[u8], built: bool) -> LetterRequest {
    let mail = format!("Message-ID: <{key}@relais.test>\r\nSubject: x\r\n\r\nbody\r\n");
    LetterRequest {
        source: LetterSource {
            kind: LetterSourceKind::Folder,
            key: format!("/drop/{key}.json"),
            sha256: sha256_of_parts(&[content]),
        },
        document_type: Some("11490-0".into()),
        cda_id: Some(format!("2.999^{key}")),
        cda_level: Some(1),
        recipients: vec![
            NewRecipient {
                address: Some("dr.a@hopital-a.mssante.fr".into()),
                rpps: None,
                resolved_by: ResolvedBy::Intake,
            },
            NewRecipient {
                address: Some("dr.b@hopital-b.mssante.fr".into()),
                rpps: Some("10999999001".into()),
                resolved_by: ResolvedBy::Annuaire,
            },
        ],
        body: if built {
            LetterBody::Built(LetterMail {
                message_id: format!("<{key}@relais.test>"),
                envelope_id: format!("env{key}"),
                envelope_from: "service@ch.mssante.fr".into(),
                raw: mail.into_bytes(),
            })
        } else {
            LetterBody::Refused(ErrorInfo {
                code: "OUTBOUND-RECIPIENT-NOT-ALLOWED".into(),
                text: "recipient 1 is outside the liste blanche".into(),
            })
        },
        detail: serde_json::json!({ "pdf": format!("{key}.pdf") }),
    }
}

fn err(code: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        text: "test".into(),
    }
}

#[tokio::test]
async fn a_drop_is_journaled_once_and_its_mail_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open(dir.path()).await.unwrap();
    let LetterIntake::New { id, state } = j.intake_letter(request("a", b"x", true)).await.unwrap()
    else {
        panic!("new letter expected")
    };
    assert_eq!(state, LetterState::Queued);
    assert_eq!(
        j.intake_letter(request("a", b"x", true)).await.unwrap(),
        LetterIntake::Duplicate {
            existing: id,
            state: LetterState::Queued
        }
    );
    // Same path, new content: a new letter.
    let other = j.intake_letter(request("a2", b"y", true)).await.unwrap();
    assert!(matches!(other, LetterIntake::New { .. }));
    let mail = j.read_letter_mail(id).await.unwrap();
    assert!(mail.starts_with(b"Message-ID: <a@relais.test>"));
    assert_eq!(
        j.find_letter_by_message_id("<a@relais.test>")
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        j.find_letter_by_message_id("a@relais.test").await.unwrap(),
        Some(id)
    );
    assert_eq!(
        j.find_letter_by_envelope_id("enva").await.unwrap(),
        Some(id)
    );
    let kinds: Vec<String> = j
        .letter_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["intake_accepted", "duplicate_seen"]);

    let refused = j.intake_letter(request("r", b"z", false)).await.unwrap();
    let LetterIntake::New { id: rid, state } = refused else {
        panic!()
    };
    assert_eq!(state, LetterState::Failed);
    let rec = j.get_letter(rid).await.unwrap().unwrap();
    assert_eq!(
        rec.last_error.unwrap().code,
        "OUTBOUND-RECIPIENT-NOT-ALLOWED"
    );
    assert!(rec.message_id.is_none());
    assert!(j.read_letter_mail(rid).await.is_err());
}

#[tokio::test]
async fn claim_send_and_track() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open(dir.path()).await.unwrap();
    let LetterIntake::New { id, .. } = j.intake_letter(request("s", b"s", true)).await.unwrap()
    else {
        panic!()
    };
    let lease = Duration::from_secs(60);
    let claimed = j.claim_letter("w1", lease).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.state, claimed.attempts),
        (id, LetterState::Claimed, 1)
    );
    assert!(
        j.claim_letter("w2", lease).await.unwrap().is_none(),
        "held by w1"
    );
    assert_eq!(
        j.start_sending(id, "w2", lease).await.unwrap(),
        Moved::Stale {
            actual: LetterState::Claimed
        },
        "only the claiming worker sends"
    );
    assert_eq!(j.start_sending(id, "w1", lease).await.unwrap(), Moved::Done);
    let result = SendResult {
        accepted: vec!["dr.a@hopital-a.mssante.fr".into()],
        refused: vec![(
            "DR.B@hopital-b.mssante.fr".into(),
            "550 5.1.1 no such user".into(),
        )],
        reply: "250 2.0.0 Ok: queued as ABC".into(),
    };
    assert_eq!(j.letter_sent(id, &result).await.unwrap(), Moved::Done);
    assert_eq!(
        j.letter_sent(id, &result).await.unwrap(),
        Moved::Stale {
            actual: LetterState::Sent
        }
    );
    let r = j.letter_recipients(id).await.unwrap();
    assert_eq!(r[0].status, RecipientStatus::Sent);
    assert_eq!(r[1].status, RecipientStatus::Failed);
    assert_eq!(r[1].remote_status.as_deref(), Some("550"));

    let report = |status, remote: &str| TrackedReport {
        kind: ReportKind::Dsn,
        inbound_message: None,
        recipients: vec![
            RecipientReport {
                address: "Dr.A@hopital-a.mssante.fr".into(),
                status,
                remote_status: Some(remote.into()),
                reason: None,
            },
            RecipientReport {
                address: "stranger@elsewhere.fr".into(),
                status,
                remote_status: None,
                reason: None,
            },
        ],
    };
    let o = j
        .record_report(id, &report(RecipientStatus::Delivered, "2.0.0"))
        .await
        .unwrap();
    assert_eq!((o.updated, o.unmatched), (1, 1));
    let mut mdn = report(RecipientStatus::Read, "processed");
    mdn.kind = ReportKind::Mdn;
    j.record_report(id, &mdn).await.unwrap();
    // A late "delayed" does not move it back.
    let o = j
        .record_report(id, &report(RecipientStatus::Delayed, "4.4.1"))
        .await
        .unwrap();
    assert_eq!(o.updated, 0);
    let r = j.letter_recipients(id).await.unwrap();
    assert_eq!(r[0].status, RecipientStatus::Read);
    let rec = j.get_letter(id).await.unwrap().unwrap();
    assert_eq!(rec.state, LetterState::Sent);
    assert!(rec.sent_at.is_some());
    let kinds: Vec<String> = j
        .letter_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "intake_accepted",
            "claimed",
            "sending",
            "sent",
            "dsn",
            "mdn",
            "dsn"
        ]
    );
}

#[tokio::test]
async fn crash_states_retry_hold_and_review() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open(dir.path()).await.unwrap();
    let LetterIntake::New { id, .. } = j.intake_letter(request("c", b"c", true)).await.unwrap()
    else {
        panic!()
    };
    // A claim whose lease expired (the worker died before sending) is taken again.
    j.claim_letter("dead", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let again = j
        .claim_letter("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.attempts, again.lease_owner.as_deref()),
        (2, Some("w"))
    );
    // Known not sent: back to the queue, not before the time given.
    assert!(
        j.retry_letter(
            id,
            LetterState::Claimed,
            Timestamp::now().plus(Duration::from_secs(3600)),
            &err("SMTP-CONNECT")
        )
        .await
        .unwrap()
        .is_done()
    );
    assert!(
        j.claim_letter("w", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    let rec = j.get_letter(id).await.unwrap().unwrap();
    assert_eq!(rec.last_error.unwrap().code, "SMTP-CONNECT");

    // In flight and the worker gone: held, never claimed again.
    let LetterIntake::New { id: h, .. } = j.intake_letter(request("h", b"h", true)).await.unwrap()
    else {
        panic!()
    };
    j.claim_letter("w", Duration::ZERO).await.unwrap().unwrap();
    assert!(
        j.start_sending(h, "w", Duration::ZERO)
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        j.claim_letter("w2", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(j.unfinished_letters().await.unwrap().len(), 1);
    assert!(
        j.hold_letter(h, &err("OUTBOUND-OUTCOME-UNKNOWN"))
            .await
            .unwrap()
            .is_done()
    );
    assert!(
        j.claim_letter("w2", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    let held = j
        .list_letters(&LetterFilter {
            state: Some(LetterState::HeldForReview),
            ..LetterFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        j.resolve_held(h, &HeldDecision::MarkSent, "alice")
            .await
            .unwrap()
            .is_done()
    );
    let events = j.letter_events(h).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "resolved");
    assert_eq!(last.actor, relais_store::Actor::User("alice".into()));
    assert_eq!(
        j.get_letter(h).await.unwrap().unwrap().state,
        LetterState::Sent
    );
    let counts = j.letter_counts_by_state().await.unwrap();
    assert!(counts.contains(&(LetterState::Queued, 1)));
    assert!(counts.contains(&(LetterState::Sent, 1)));
}

#[tokio::test]
async fn letter_events_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open(dir.path()).await.unwrap();
    j.intake_letter(request("e", b"e", true)).await.unwrap();
    let db = j.database_path().to_path_buf();
    j.close().await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for sql in [
        "UPDATE letter_events SET kind = 'x'",
        "DELETE FROM letter_events",
    ] {
        let e = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
}
