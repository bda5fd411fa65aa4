//! MDNs and error reports built for the project's sample mail (samples/mail/ldl-ses-n1.eml),
//! read back with mail-parser header by header and part by part.

use std::time::{Duration, UNIX_EPOCH};

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use relais_core::Limits;
use relais_mssante::mdn::{self, ANS_ERRORS, MdnDecision};
use relais_mssante::{
    BuiltMail, MdnContext, MdnError, MdnOutcome, ParsedMail, build_error_report, build_mdn,
    mdn_decision, parse_mail, should_send_mdn,
};

const ORIGINAL_ID: &str = "ldl-ses-n1.20250312150500@ch-demo.mssante.fr";
const ORIGINAL_SUBJECT: &str = "XDM/1.0/DDM+Lettre de liaison RELAIS-TEST CAMILLE 19790315";
const SENDER: &str = "medecine-interne@ch-demo.mssante.fr";
/// The GP's mailbox the sample is addressed to: here, the mailbox Relais reads.
const MAILBOX: &str = "jean.generaliste-demo@medecin.mssante.fr";
/// 2025-03-12T15:10:00Z
const DATE: u64 = 1_741_792_200;

fn sample() -> Vec<u8> {
    let path = relais_testsupport::workspace_root().join("samples/mail/ldl-ses-n1.eml");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(raw: &[u8]) -> ParsedMail {
    parse_mail(raw, &Limits::default()).expect("the sample mail is read")
}

fn ctx() -> MdnContext {
    let mut c = MdnContext::new(MAILBOX, "Relais 0.1.0", "relais.medecin.test");
    c.date = UNIX_EPOCH + Duration::from_secs(DATE);
    c
}

fn error(code: &str) -> MdnOutcome {
    MdnOutcome::ans_error(code).expect("an ANS code")
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("mail-parser reads what mail-builder wrote")
}

/// The raw (undecoded) body of part `i`.
fn raw_body<'a>(msg: &'a Message<'a>, i: usize) -> &'a [u8] {
    let p = &msg.parts[i];
    &msg.raw_message()[p.offset_body as usize..p.offset_end as usize]
}

/// The unfolded `Name: value` lines of a message/disposition-notification body.
fn report_fields(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).expect("the report is 7bit");
    assert!(text.is_ascii(), "the report is 7bit: {text}");
    let unfolded = text.replace("\r\n ", " ").replace("\r\n\t", "\t");
    unfolded
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("field: {l:?}"));
            (n.to_string(), v.trim().to_string())
        })
        .collect()
}

fn text_header<'a>(msg: &'a Message<'a>, name: &'a str) -> Option<&'a str> {
    msg.header_raw(name).map(str::trim)
}

/// Checks everything two MDNs share; returns the report fields.
fn check_mdn_shape(original: &[u8], built: &BuiltMail) -> Vec<(String, String)> {
    let msg = parse(&built.raw);
    assert_eq!(built.recipients, vec![SENDER.to_string()]);
    assert_eq!(built.envelope_from, "", "MDNs use the null reverse-path");
    assert!(built.message_id.ends_with("@relais.medecin.test"));

    // Headers.
    assert_eq!(msg.from().and_then(|a| a.first()?.address()), Some(MAILBOX));
    assert_eq!(msg.to().and_then(|a| a.first()?.address()), Some(SENDER));
    assert_eq!(msg.to().map(|a| a.iter().count()), Some(1));
    assert_eq!(msg.message_id(), Some(built.message_id.as_str()));
    assert_eq!(
        msg.in_reply_to().as_text_list(),
        Some(&[ORIGINAL_ID.into()][..])
    );
    assert_eq!(
        msg.references().as_text_list(),
        Some(&[ORIGINAL_ID.into()][..])
    );
    assert_eq!(msg.date().map(|d| d.to_timestamp()), Some(DATE as i64));
    assert_eq!(text_header(&msg, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(text_header(&msg, "X-MSS-NIL"), Some("Relais 0.1.0"));
    assert_eq!(text_header(&msg, "MIME-Version"), Some("1.0"));
    assert!(
        msg.header_raw("Disposition-Notification-To").is_none(),
        "an MDN must not ask for an MDN"
    );

    // multipart/report; report-type=disposition-notification, three parts.
    let ct = msg.content_type().expect("Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(
        ct.attribute("report-type"),
        Some("disposition-notification")
    );
    let children = match &msg.parts[0].body {
        PartType::Multipart(c) => c.clone(),
        other => panic!("root is not multipart: {other:?}"),
    };
    assert_eq!(children.len(), 3);
    let (human, report, returned) = (
        children[0] as usize,
        children[1] as usize,
        children[2] as usize,
    );

    let ct = msg.parts[human].content_type().expect("part 1 type");
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    assert!(
        msg.parts[human]
            .text_contents()
            .expect("text")
            .contains(&format!("<{ORIGINAL_ID}>"))
    );

    let ct = msg.parts[report].content_type().expect("part 2 type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("message", Some("disposition-notification"))
    );
    assert_eq!(
        msg.parts[report]
            .content_transfer_encoding()
            .map(str::to_ascii_lowercase),
        Some("7bit".to_string())
    );
    let fields = report_fields(raw_body(&msg, report));

    let ct = msg.parts[returned].content_type().expect("part 3 type");
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
    assert_eq!(
        msg.parts[returned]
            .content_transfer_encoding()
            .map(str::to_ascii_lowercase),
        Some("7bit".to_string())
    );
    assert_eq!(
        raw_body(&msg, returned),
        original,
        "the third part is the original mail, byte for byte"
    );
    match &msg.parts[returned].body {
        PartType::Message(inner) => {
            assert_eq!(inner.message_id(), Some(ORIGINAL_ID));
            assert_eq!(inner.attachments().count(), 2, "IHE_XDM.ZIP and the PDF");
        }
        other => panic!("part 3 is not read as a mail: {other:?}"),
    }

    // The MDN itself is a well-formed mail for Relais's reader, and is recognised as automatic.
    let again = read(&built.raw);
    assert_eq!(again.message_id.as_deref(), Some(built.message_id.as_str()));
    assert_eq!(mdn_decision(&built.raw, &again), MdnDecision::NotRequested);
    fields
}

#[test]
fn processed_mdn_follows_the_ans_structure() {
    let raw = sample();
    let original = read(&raw);
    assert_eq!(
        mdn_decision(&raw, &original),
        MdnDecision::Send { to: SENDER.into() }
    );
    assert!(should_send_mdn(&raw, &original));

    let built = build_mdn(&raw, &original, MdnOutcome::Processed, &ctx()).expect("MDN");
    let fields = check_mdn_shape(&raw, &built);
    let expect = |n: &str, v: &str| (n.to_string(), v.to_string());
    assert_eq!(
        fields,
        vec![
            expect("Reporting-UA", "relais.medecin.test; Relais 0.1.0"),
            expect("Original-Recipient", &format!("rfc822;{MAILBOX}")),
            expect("Final-Recipient", &format!("rfc822;{MAILBOX}")),
            expect("Original-Message-ID", &format!("<{ORIGINAL_ID}>")),
            expect(
                "Disposition",
                "automatic-action/MDN-sent-automatically; processed"
            ),
        ]
    );
    let msg = parse(&built.raw);
    assert_eq!(msg.subject(), Some(ORIGINAL_SUBJECT), "the guide's subject");
    let human = msg.body_text(0).expect("human part");
    assert!(human.contains("a été intégré automatiquement"), "{human}");
}

#[test]
fn error_mdn_carries_the_code_and_label() {
    let raw = sample();
    let original = read(&raw);
    let built = build_mdn(&raw, &original, error("902"), &ctx()).expect("MDN");
    let fields = check_mdn_shape(&raw, &built);
    let disposition: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "Disposition")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        disposition,
        vec![
            "automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu"
        ]
    );
    let raw_report = String::from_utf8_lossy(&built.raw).into_owned();
    assert!(
        raw_report.contains(
            "\r\nDisposition: automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu\r\n"
        ),
        "the Disposition line as the guide writes it, on one line"
    );

    let msg = parse(&built.raw);
    assert_eq!(
        msg.subject(),
        Some(format!("[KO Intégration système !][902] {ORIGINAL_SUBJECT}").as_str())
    );
    let human = msg.body_text(0).expect("human part");
    assert!(
        human.contains(
            "n'a pas pu être intégré automatiquement dans le DPI pour la raison suivante : \
             Identifiant patient inconnu"
        ),
        "{human}"
    );
    assert!(human.contains("Code d'erreur : 902"), "{human}");
    assert!(
        !human.contains("CAMILLE"),
        "no patient data in the body: {human}"
    );
}

#[test]
fn every_ans_code_gives_a_one_line_7bit_disposition() {
    let raw = sample();
    let original = read(&raw);
    for (code, label) in ANS_ERRORS {
        let built = build_mdn(&raw, &original, error(code), &ctx()).expect("MDN");
        let msg = parse(&built.raw);
        let report = raw_body(&msg, 2);
        assert!(
            !String::from_utf8_lossy(report).contains("\r\n "),
            "no folded field for {code}"
        );
        let fields = report_fields(report);
        let disposition = &fields.iter().find(|(n, _)| n == "Disposition").unwrap().1;
        let ascii_label = label.replace(['à'], "a").replace(['é'], "e");
        assert_eq!(
            disposition,
            &format!(
                "automatic-action/MDN-sent-automatically; processed/Error: {code}^{ascii_label}"
            )
        );
        assert_eq!(
            msg.subject(),
            Some(format!("[KO Intégration système !][{code}] {ORIGINAL_SUBJECT}").as_str())
        );
        // The human-readable part keeps the exact label, accents included.
        assert!(msg.body_text(0).unwrap().contains(label), "{code}");
    }
}

#[test]
fn original_recipient_comes_from_the_original_header_or_is_left_out() {
    let raw = sample();
    // A mailbox the sender did not address directly (e.g. reached through an alias): no
    // Original-Recipient can be given reliably.
    let original = read(&raw);
    let mut other = ctx();
    other.from = "bal-applicative@medecin.mssante.fr".into();
    let built = build_mdn(&raw, &original, MdnOutcome::Processed, &other).unwrap();
    let fields = report_fields(raw_body(&parse(&built.raw), 2));
    assert!(!fields.iter().any(|(n, _)| n == "Original-Recipient"));
    assert!(fields.contains(&(
        "Final-Recipient".into(),
        "rfc822;bal-applicative@medecin.mssante.fr".into()
    )));

    // With an Original-Recipient header (RFC 3461), its address is reported.
    let with = with_header(&raw, "Original-Recipient: rfc822;alias@medecin.mssante.fr");
    let original = read(&with);
    let built = build_mdn(&with, &original, MdnOutcome::Processed, &other).unwrap();
    let fields = report_fields(raw_body(&parse(&built.raw), 2));
    assert!(fields.contains(&(
        "Original-Recipient".into(),
        "rfc822;alias@medecin.mssante.fr".into()
    )));
}

/// The sample with header lines added at the top.
fn with_header(raw: &[u8], lines: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in lines.split('\n').filter(|l| !l.is_empty()) {
        v.extend_from_slice(l.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(raw);
    v
}

/// The sample with one header field (and its continuation lines) removed.
fn without_header(raw: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        skipping = line
            .split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name));
        if !skipping {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    format!("{out}\r\n{body}").into_bytes()
}

fn decide(raw: &[u8]) -> MdnDecision {
    mdn_decision(raw, &read(raw))
}

#[test]
fn decisions_follow_rfc_8098_and_the_guide() {
    let raw = sample();
    let send = MdnDecision::Send { to: SENDER.into() };
    assert_eq!(decide(&raw), send);
    // Return-Path equal to Disposition-Notification-To (any case): send.
    assert_eq!(
        decide(&with_header(
            &raw,
            "Return-Path: <Medecine-Interne@CH-DEMO.mssante.fr>"
        )),
        send
    );
    // Differs: no automatic MDN (RFC 8098 §2.1, quoted by the guide).
    let d = decide(&with_header(
        &raw,
        "Return-Path: <bounces@relay.example.fr>",
    ));
    assert_eq!(d, MdnDecision::ReturnPathMismatch);
    assert!(!d.is_send() && d.reason().contains("Return-Path"));
    // Null reverse-path, Auto-Submitted, a report: automatic mails are never answered.
    for h in [
        "Return-Path: <>",
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated; owner-email=x@y.fr",
    ] {
        assert_eq!(
            decide(&with_header(&raw, h)),
            MdnDecision::AutomaticOriginal,
            "{h}"
        );
    }
    assert_eq!(decide(&with_header(&raw, "Auto-Submitted: no")), send);
    // No request.
    let none = without_header(&raw, "Disposition-Notification-To");
    assert_eq!(decide(&none), MdnDecision::NotRequested);
    // No Message-ID.
    assert_eq!(
        decide(&without_header(&raw, "Message-ID")),
        MdnDecision::NoMessageId
    );
    // A patient address.
    let patient = with_header(
        &without_header(&raw, "Disposition-Notification-To"),
        "Disposition-Notification-To: <146026322000196@patient.mssante.fr>",
    );
    let d = decide(&patient);
    assert_eq!(d, MdnDecision::PatientAddress);
    assert!(
        !format!("{d:?}").contains("146026322000196"),
        "no INS in Debug"
    );
    // Several distinct addresses; the same one twice is one address.
    let several = with_header(
        &without_header(&raw, "Disposition-Notification-To"),
        &format!("Disposition-Notification-To: {SENDER}, autre@ch-demo.mssante.fr"),
    );
    assert_eq!(decide(&several), MdnDecision::SeveralAddresses);
    let twice = with_header(
        &without_header(&raw, "Disposition-Notification-To"),
        &format!("Disposition-Notification-To: {SENDER}, <{SENDER}>"),
    );
    assert_eq!(decide(&twice), send);
    // Not a plain address.
    let odd = with_header(
        &without_header(&raw, "Disposition-Notification-To"),
        "Disposition-Notification-To: <a b@x.fr>",
    );
    assert_eq!(decide(&odd), MdnDecision::InvalidAddress);
    // An MDN (a multipart/report) is itself never answered.
    let original = read(&raw);
    let mdn = build_mdn(&raw, &original, MdnOutcome::Processed, &ctx()).unwrap();
    let mdn_with_request =
        with_header(&mdn.raw, &format!("Disposition-Notification-To: {MAILBOX}"));
    assert_eq!(decide(&mdn_with_request), MdnDecision::AutomaticOriginal);
}

#[test]
fn build_refuses_what_cannot_make_a_usable_mdn() {
    let raw = sample();
    let none = without_header(&raw, "Disposition-Notification-To");
    let err = build_mdn(&none, &read(&none), MdnOutcome::Processed, &ctx()).unwrap_err();
    assert_eq!(err, MdnError::NotRequested);
    assert_eq!(err.code(), mdn::codes::MDN_NOT_REQUESTED);

    let no_id = without_header(&raw, "Message-ID");
    let err = build_mdn(&no_id, &read(&no_id), MdnOutcome::Processed, &ctx()).unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_NO_MESSAGE_ID);

    let original = read(&raw);
    let bad_code = MdnOutcome::Error {
        code: "902\r\nBcc: x@y.fr".into(),
        label: "x".into(),
    };
    let err = build_mdn(&raw, &original, bad_code, &ctx()).unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_ERROR_CODE_INVALID);

    let empty_label = MdnOutcome::Error {
        code: "906".into(),
        label: " \r\n ".into(),
    };
    let err = build_mdn(&raw, &original, empty_label, &ctx()).unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_ERROR_LABEL_INVALID);

    let mut c = ctx();
    c.from = "Relais <x@y.fr>".into();
    let err = build_mdn(&raw, &original, MdnOutcome::Processed, &c).unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_ADDRESS_INVALID);

    let mut c = ctx();
    c.reporting_ua = "Relais\r\nX-Injected: 1".into();
    let err = build_mdn(&raw, &original, MdnOutcome::Processed, &c).unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_CONTEXT_INVALID);
}

#[test]
fn a_label_with_line_breaks_cannot_inject_fields() {
    let raw = sample();
    let original = read(&raw);
    let outcome = MdnOutcome::Error {
        code: "906".into(),
        label: "Erreur\r\nDisposition: automatic-action/MDN-sent-automatically; processed".into(),
    };
    let built = build_mdn(&raw, &original, outcome, &ctx()).unwrap();
    let fields = report_fields(raw_body(&parse(&built.raw), 2));
    let dispositions: Vec<_> = fields.iter().filter(|(n, _)| n == "Disposition").collect();
    assert_eq!(dispositions.len(), 1);
    assert_eq!(
        dispositions[0].1,
        "automatic-action/MDN-sent-automatically; processed/Error: 906^Erreur Disposition: \
         automatic-action/MDN-sent-automatically; processed"
    );
}

#[test]
fn originals_with_bare_line_feeds_are_attached_with_crlf() {
    let raw = sample();
    let lf: Vec<u8> = String::from_utf8(raw.clone())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    let original = read(&lf);
    let built = build_mdn(&lf, &original, error("902"), &ctx()).unwrap();
    let msg = parse(&built.raw);
    assert_eq!(raw_body(&msg, 3), raw.as_slice());
    assert!(
        !built.raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "no bare LF in the MDN"
    );
}

#[test]
fn originals_that_cannot_travel_as_message_rfc822_are_attached_as_a_file() {
    let raw = sample();
    let mut long = with_header(&raw, &format!("X-Long: {}", "a".repeat(1200)));
    long.extend_from_slice(b"");
    let original = read(&long);
    let built = build_mdn(&long, &original, error("906"), &ctx()).unwrap();
    let msg = parse(&built.raw);
    let part = &msg.parts[3];
    let ct = part.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("application", Some("octet-stream"))
    );
    assert_eq!(part.attachment_name(), Some("message_original.eml"));
    assert_eq!(
        part.contents(),
        long.as_slice(),
        "base64 decodes to the original"
    );
    assert!(
        built.raw.split(|&b| b == b'\n').all(|l| l.len() <= 999),
        "no line over 998 bytes in the MDN"
    );
}

#[test]
fn error_report_names_ids_and_codes_only() {
    let raw = sample();
    let none = without_header(&raw, "Disposition-Notification-To");
    let original = read(&none);
    let built = build_error_report(
        &none,
        &original,
        "903",
        "INS non présent dans le document",
        "erreurs-integration@medecin.mssante.fr",
        false,
        &ctx(),
    )
    .expect("report");
    assert_eq!(built.envelope_from, MAILBOX);
    assert_eq!(
        built.recipients,
        vec!["erreurs-integration@medecin.mssante.fr".to_string()]
    );
    let msg = parse(&built.raw);
    assert_eq!(
        msg.subject(),
        Some(format!("[KO Intégration système !][903] {ORIGINAL_SUBJECT}").as_str())
    );
    assert_eq!(text_header(&msg, "Auto-Submitted"), Some("auto-generated"));
    assert_eq!(
        msg.references().as_text_list(),
        Some(&[ORIGINAL_ID.into()][..])
    );
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    let body = msg.body_text(0).unwrap();
    for needle in [
        "Code d'erreur : 903",
        "Erreur détectée : INS non présent dans le document",
        &format!("Message-ID : <{ORIGINAL_ID}>"),
        &format!("Expéditeur : {SENDER}"),
        "non envoyé (no Disposition-Notification-To",
    ] {
        assert!(body.contains(needle), "{needle:?} in {body}");
    }
    for patient_data in ["CAMILLE", "RELAIS-TEST", "19790315", "Lettre de liaison"] {
        assert!(!body.contains(patient_data), "{patient_data} in {body}");
    }
    assert_eq!(msg.attachments().count(), 0);
}

#[test]
fn error_report_can_attach_the_original_and_redacts_patient_senders() {
    let raw = sample();
    let patient_sender = with_header(
        &without_header(&raw, "From"),
        "From: <146026322000196@patient.mssante.fr>",
    );
    let original = read(&patient_sender);
    let built = build_error_report(
        &patient_sender,
        &original,
        "902",
        mdn::ans_error_label("902").unwrap(),
        "erreurs-integration@medecin.mssante.fr",
        true,
        &ctx(),
    )
    .unwrap();
    let msg = parse(&built.raw);
    let body = msg.body_text(0).unwrap();
    assert!(!body.contains("146026322000196"), "{body}");
    assert!(body.contains("<patient>@patient.mssante.fr"), "{body}");
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("mixed")));
    let att = msg.attachments().next().expect("the original is attached");
    assert_eq!(att.attachment_name(), Some("message_original.eml"));
    let ct = att.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
    let p = att;
    let bytes = &built.raw[p.offset_body as usize..p.offset_end as usize];
    assert_eq!(bytes, patient_sender.as_slice());

    let err = build_error_report(
        &raw,
        &original,
        "902",
        "x",
        "pas une adresse",
        false,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(err.code(), mdn::codes::MDN_ADDRESS_INVALID);
}
