//! Hostile and broken inputs: each is refused (or read) with its specific rule code.

mod common;

use common::*;
use relais_core::{Limits, Location, Severity};
use relais_mssante::{MailError, codes, parse_mail, sniff_is_mail};
use std::time::{Duration, Instant};

fn refuse(raw: &[u8]) -> MailError {
    match parse_mail(raw, &Limits::default()) {
        Ok(mail) => panic!("accepted: {mail:?}"),
        Err(e) => e,
    }
}

const HEAD: &str =
    "From: a@cha.mssante.fr\r\nMessage-ID: <h@cha>\r\nSubject: x\r\nMIME-Version: 1.0\r\n";

/// `depth` multiparts nested in one another, each with its own boundary, and a text leaf.
fn nested_multiparts(depth: usize) -> Vec<u8> {
    let mut raw = String::from(HEAD);
    for i in 0..depth {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
    for i in (0..depth).rev() {
        raw.push_str(&format!("--b{i}--\r\n"));
    }
    raw.into_bytes()
}

#[test]
fn empty_input_is_not_a_mail() {
    let e = refuse(b"");
    assert_eq!(e, MailError::NotAMail);
    assert_eq!(e.code(), codes::MAIL_NOT_A_MAIL);
    let f = e.to_finding();
    assert_eq!(f.code, codes::MAIL_NOT_A_MAIL);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.location, Location::Whole);
    assert!(f.message.contains("not a mail"));
}

#[test]
fn garbage_and_other_files_are_not_mails() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let cda = std::fs::read(&relais_testsupport::ans_cda_examples()[0]).unwrap();
    for input in [
        garbage.as_slice(),
        b"\r\n\r\n\r\n",
        b"   ",
        b"\x00\x01\x02From: a@b\r\n\r\n",
        &pdf_bytes(),
        &xdm_bytes(),
        &cda,
        b"MSH|^~\\&|DPI|CHA|PFI|CHB|20240220||MDM^T02|1|P|2.6\r",
    ] {
        assert!(!sniff_is_mail(input));
        assert_eq!(refuse(input).code(), codes::MAIL_NOT_A_MAIL);
    }
}

#[test]
fn a_header_only_mail_is_read() {
    let mail = parse_mail(
        b"From: a@cha.mssante.fr\r\nSubject: vide",
        &Limits::default(),
    )
    .unwrap();
    assert!(mail.attachments.is_empty());
    assert_eq!(
        codes(&mail.findings),
        [
            codes::MAIL_MESSAGE_ID_MISSING.as_str(),
            codes::MAIL_NO_DOCUMENT.as_str()
        ]
    );
}

#[test]
fn mime_nesting_1000_deep_is_refused() {
    let raw = nested_multiparts(1000);
    let started = Instant::now();
    let e = refuse(&raw);
    assert_eq!(e, MailError::MimeTooDeep { limit: 12 });
    assert_eq!(e.code(), codes::MAIL_MIME_TOO_DEEP);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Just within the limit, the same shape is read.
    let mail = parse_mail(&nested_multiparts(11), &Limits::default()).unwrap();
    assert_eq!(mail.body_text.as_deref(), Some("deep"));
}

#[test]
fn mime_nesting_1000_deep_does_not_blow_the_stack_when_allowed() {
    // With the limits opened, 1000 levels are walked without recursion, on a small stack.
    let limits = Limits {
        max_mime_depth: 5000,
        max_mime_parts: 5000,
        ..Limits::default()
    };
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let raw = nested_multiparts(1000);
            let mail = parse_mail(&raw, &limits).unwrap();
            assert_eq!(mail.body_text.as_deref(), Some("deep"));

            let mut raw = String::from(HEAD);
            for _ in 0..1000 {
                raw.push_str("Content-Type: message/rfc822\r\n\r\nSubject: fwd\r\n");
            }
            raw.push_str("Content-Type: application/pdf; name=a.pdf\r\n\r\n%PDF-1.4\r\n");
            let mail = parse_mail(raw.as_bytes(), &limits).unwrap();
            assert_eq!(mail.attachments.len(), 1);
            assert!(mail.attachments[0].data.starts_with(b"%PDF-"));
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}

#[test]
fn attached_messages_1000_deep_are_refused() {
    let mut raw = String::from(HEAD);
    for _ in 0..1000 {
        raw.push_str("Content-Type: message/rfc822\r\n\r\nSubject: fwd\r\n");
    }
    raw.push_str("\r\nend\r\n");
    assert_eq!(refuse(raw.as_bytes()), MailError::MimeTooDeep { limit: 12 });
}

#[test]
fn ten_thousand_parts_are_refused() {
    let mut raw = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n");
    for i in 0..10_000 {
        raw.push_str(&format!("--p\r\nContent-Type: text/plain\r\n\r\n{i}\r\n"));
    }
    raw.push_str("--p--\r\n");
    let started = Instant::now();
    let e = refuse(raw.as_bytes());
    assert_eq!(e, MailError::TooManyParts { limit: 500 });
    assert_eq!(e.code(), codes::MAIL_TOO_MANY_PARTS);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn parts_hidden_in_an_encoded_attached_message_are_counted() {
    let mut inner = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n");
    for _ in 0..600 {
        inner.push_str("--q\r\n\r\nx\r\n");
    }
    inner.push_str("--q--\r\n");
    let raw = base()
        .attachment("message/rfc822", "fwd.eml", inner.into_bytes())
        .write_to_vec()
        .unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Content-Transfer-Encoding: base64"));
    assert_eq!(refuse(&raw), MailError::TooManyParts { limit: 500 });
}

#[test]
fn thousands_of_header_fields_are_refused() {
    // 150 parts of 100 fields each: every block is small, the total is not.
    let mut raw = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"h\"\r\n\r\n");
    for _ in 0..150 {
        raw.push_str("--h\r\n");
        for i in 0..100 {
            raw.push_str(&format!("X-F{i}: v\r\n"));
        }
        raw.push_str("\r\nx\r\n");
    }
    raw.push_str("--h--\r\n");
    let e = refuse(raw.as_bytes());
    assert_eq!(e.code(), codes::MAIL_TOO_MANY_HEADERS);
}

#[test]
fn a_huge_header_block_is_refused() {
    let mut raw = String::from(HEAD);
    for i in 0..20_000 {
        raw.push_str(&format!("X-F: {i}\r\n"));
    }
    raw.push_str("\r\nbody\r\n");
    assert_eq!(refuse(raw.as_bytes()).code(), codes::MAIL_HEADER_TOO_LARGE);
}

#[test]
fn many_multiparts_without_their_boundary_are_refused() {
    let mut raw = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n");
    for i in 0..20 {
        raw.push_str(&format!(
            "--m\r\nContent-Type: multipart/mixed; boundary=\"never{i}\"\r\n\r\nx\r\n"
        ));
    }
    raw.push_str("--m--\r\n");
    let e = refuse(raw.as_bytes());
    assert_eq!(e.code(), codes::MAIL_MIME_MALFORMED);

    // A couple of such parts is tolerated: they are read as text.
    let raw = format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n\
Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\nx\r\n--m--\r\n"
    );
    assert!(parse_mail(raw.as_bytes(), &Limits::default()).is_ok());
}

#[test]
fn every_fatal_error_has_its_code_and_finding() {
    let all = [
        MailError::TooLarge { size: 2, limit: 1 },
        MailError::NotAMail,
        MailError::MimeTooDeep { limit: 1 },
        MailError::TooManyParts { limit: 1 },
        MailError::TooManyHeaders { limit: 1 },
        MailError::HeaderTooLarge { limit: 1 },
        MailError::MimeMalformed { count: 9 },
        MailError::Unreadable,
    ];
    for e in all {
        let f = e.to_finding();
        assert_eq!(f.code, e.code());
        assert!(f.is_error());
        assert!(
            codes::ALL.contains(&f.code),
            "{} not in the catalogue",
            f.code
        );
    }
}
