//! Reading realistic MSSanté mails, and the non-fatal findings of each convention broken.

mod common;

use common::*;
use mail_builder::mime::{BodyPart, MimePart};
use relais_core::{Limits, Location, Severity};
use relais_mssante::{AttachmentRole, InsFlag, ParsedMail, codes, parse_mail, sniff_is_mail};

fn read(raw: &[u8]) -> ParsedMail {
    parse_mail(raw, &Limits::default()).expect("mail should be read")
}

fn finding<'a>(mail: &'a ParsedMail, code: &relais_core::RuleCode) -> &'a relais_core::Finding {
    mail.findings
        .iter()
        .find(|f| &f.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:?}", mail.findings))
}

#[test]
fn a_complete_mssante_mail_is_read_field_by_field() {
    let raw = mssante_mail();
    assert!(sniff_is_mail(&raw));
    let mail = read(&raw);

    assert_eq!(mail.message_id.as_deref(), Some(MESSAGE_ID));
    assert_eq!(mail.subject.as_deref(), Some(SUBJECT));
    let s = mail
        .subject_info
        .as_ref()
        .expect("subject follows the convention");
    assert_eq!(s.prefix, None);
    assert_eq!(s.libelle.as_deref(), Some("ÉCHOGRAPHIE ABDOMINALE"));
    assert_eq!(s.nom.as_deref(), Some("DUPONT"));
    assert_eq!(s.prenom.as_deref(), Some("Marie"));
    assert_eq!(s.birth_date.as_deref(), Some("12/10/1988"));
    assert_eq!(
        s.remainder,
        "ÉCHOGRAPHIE ABDOMINALE DUPONT Marie 12/10/1988"
    );

    assert_eq!(mail.from, vec!["servicex@cha.mssante.fr"]);
    assert_eq!(mail.to, vec!["servicey@chb.mssante.fr", PATIENT]);
    assert_eq!(mail.cc, vec!["secretariat@chb.mssante.fr"]);
    assert_eq!(mail.date.as_deref(), Some("2024-02-20T00:19:00Z"));
    assert_eq!(
        mail.disposition_notification_to.as_deref(),
        Some("servicex@cha.mssante.fr")
    );
    assert_eq!(mail.mss.codecda, vec!["11488-4", "60591-5"]);
    assert_eq!(mail.mss.ins, Some(InsFlag::Qualified));
    assert_eq!(mail.mss.nil.as_deref(), Some("Relais 0.1.0"));
    assert_eq!(mail.mss.mes.as_deref(), Some("FIN"));
    assert_eq!(mail.body_text.as_deref(), Some(BODY));

    assert_eq!(mail.attachments.len(), 2);
    let xdm = &mail.attachments[0];
    assert_eq!(xdm.part, "2");
    assert_eq!(xdm.filename.as_deref(), Some("IHE_XDM.ZIP"));
    assert_eq!(xdm.content_type, "application/zip");
    assert_eq!(xdm.role, AttachmentRole::Xdm);
    assert_eq!(xdm.data, xdm_bytes());
    let pdf = &mail.attachments[1];
    assert_eq!(pdf.part, "3");
    assert_eq!(pdf.filename.as_deref(), Some(PDF_NAME));
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.role, AttachmentRole::Pdf);
    assert_eq!(pdf.data, pdf_bytes());

    assert!(mail.findings.is_empty(), "{:?}", mail.findings);
}

#[test]
fn debug_output_hides_patient_data() {
    let mail = read(&mssante_mail());
    let shown = format!("{mail:?}");
    for secret in ["DUPONT", "Marie", "1988", "146026322000196"] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    assert!(shown.contains(MESSAGE_ID));
    assert!(shown.contains("<patient>@patient.mssante.fr"));
}

#[test]
fn documents_are_recognised_by_content() {
    let cda_path = &relais_testsupport::ans_cda_examples()[0];
    let cda = std::fs::read(cda_path).unwrap();
    let hl7 =
        b"MSH|^~\\&|DPI|CHA|PFI|CHB|20240220001900||MDM^T02^MDM_T02|1|P|2.6\rEVN|T02|20240220\r"
            .to_vec();
    let raw = base()
        .text_body(BODY)
        // Mislabelled on purpose: roles come from the bytes, not from the declared type.
        .attachment("application/octet-stream", "document.bin", cda.clone())
        .attachment(
            "text/plain",
            "message.hl7",
            String::from_utf8(hl7.clone()).unwrap(),
        )
        .attachment("application/octet-stream", "scan", pdf_bytes())
        .attachment("application/zip", "documents.zip", xdm_bytes())
        .attachment(
            "application/octet-stream",
            "notes.bin",
            b"just bytes".to_vec(),
        )
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    let roles: Vec<_> = mail.attachments.iter().map(|a| a.role).collect();
    assert_eq!(
        roles,
        [
            AttachmentRole::Cda,
            AttachmentRole::Hl7,
            AttachmentRole::Pdf,
            AttachmentRole::Xdm,
            AttachmentRole::Other
        ]
    );
    assert_eq!(mail.attachments[0].data, cda, "CDA bytes kept as sent");
    assert_eq!(mail.attachments[1].data, hl7, "HL7 bytes kept as sent");
    assert_eq!(mail.attachments[1].content_type, "text/plain");
    assert_eq!(codes(&mail.findings), [codes::MAIL_XDM_NAME.as_str()]);
    let f = finding(&mail, &codes::MAIL_XDM_NAME);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.location, Location::MimePart("5".into()));
}

#[test]
fn every_ans_cda_example_is_sniffed_as_cda() {
    for path in relais_testsupport::ans_cda_examples() {
        let cda = std::fs::read(&path).unwrap();
        let raw = base()
            .attachment("text/xml", "doc.xml", cda.clone())
            .write_to_vec()
            .unwrap();
        let mail = read(&raw);
        assert_eq!(mail.attachments.len(), 1, "{}", path.display());
        assert_eq!(
            mail.attachments[0].role,
            AttachmentRole::Cda,
            "{}",
            path.display()
        );
        assert_eq!(mail.attachments[0].data, cda, "{}", path.display());
    }
}

#[test]
fn missing_message_id_is_an_error() {
    let raw = without_header(&mssante_mail(), "Message-ID");
    let mail = read(&raw);
    assert_eq!(mail.message_id, None);
    assert_eq!(
        codes(&mail.findings),
        [codes::MAIL_MESSAGE_ID_MISSING.as_str()]
    );
    let f = finding(&mail, &codes::MAIL_MESSAGE_ID_MISSING);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.location, Location::MailHeader("Message-ID".into()));
}

#[test]
fn subject_convention_is_checked_only_when_an_xdm_is_attached() {
    let raw = base()
        .subject("Compte rendu")
        .text_body(BODY)
        .attachment("application/zip", "ihe_xdm.zip", xdm_bytes())
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    assert!(mail.subject_info.is_none());
    assert_eq!(
        mail.attachments[0].role,
        AttachmentRole::Xdm,
        "name matched ignoring case"
    );
    assert_eq!(
        codes(&mail.findings),
        [codes::MAIL_SUBJECT_CONVENTION.as_str()]
    );
    assert_eq!(
        finding(&mail, &codes::MAIL_SUBJECT_CONVENTION).location,
        Location::MailHeader("Subject".into())
    );

    let raw = base()
        .subject("Compte rendu")
        .text_body(BODY)
        .attachment("application/pdf", "cr.pdf", pdf_bytes())
        .write_to_vec()
        .unwrap();
    assert!(read(&raw).findings.is_empty());
}

#[test]
fn forwarded_subject_keeps_its_prefix() {
    let raw = base()
        .subject(format!("TR: {SUBJECT}"))
        .attachment("application/zip", "IHE_XDM.zip", xdm_bytes())
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    let s = mail.subject_info.unwrap();
    assert_eq!(s.prefix.as_deref(), Some("TR:"));
    assert_eq!(s.nom.as_deref(), Some("DUPONT"));
    assert!(mail.findings.is_empty(), "{:?}", mail.findings);
}

#[test]
fn invalid_x_mss_ins_is_reported_and_ignored() {
    let raw = replace_once(&mssante_mail(), "X-MSS-INS: O", "X-MSS-INS: oui");
    let mail = read(&raw);
    assert_eq!(mail.mss.ins, None);
    assert_eq!(
        codes(&mail.findings),
        [codes::MAIL_X_MSS_INS_INVALID.as_str()]
    );
    let f = finding(&mail, &codes::MAIL_X_MSS_INS_INVALID);
    assert!(!f.message.contains("oui"), "the value is not echoed");

    let raw = replace_once(&mssante_mail(), "X-MSS-INS: O", "X-MSS-INS: N");
    assert_eq!(read(&raw).mss.ins, Some(InsFlag::NotQualified));
    let raw = without_header(&mssante_mail(), "X-MSS-INS");
    let mail = read(&raw);
    assert_eq!(mail.mss.ins, None);
    assert!(mail.findings.is_empty());
}

#[test]
fn a_mail_without_document_is_flagged() {
    let raw = base()
        .text_body(BODY)
        .attachment("text/plain", "notes.txt", "quelques notes")
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    assert_eq!(mail.attachments.len(), 1);
    assert_eq!(mail.attachments[0].role, AttachmentRole::Other);
    assert_eq!(codes(&mail.findings), [codes::MAIL_NO_DOCUMENT.as_str()]);
    assert_eq!(
        finding(&mail, &codes::MAIL_NO_DOCUMENT).severity,
        Severity::Warning
    );
}

#[test]
fn truncated_base64_is_reported_and_the_part_kept() {
    let pdf = pdf_bytes();
    let mut encoded = encode_base64_lines(&pdf);
    // Cut the last line in the middle of a group, as a broken relay would.
    let cut = encoded.len() - 7;
    encoded.truncate(cut);
    let raw = mail_with_parts(
        base(),
        vec![
            MimePart::new("application/zip", BodyPart::Binary(xdm_bytes().into()))
                .attachment("IHE_XDM.ZIP"),
            raw_part("application/pdf", PDF_NAME, "base64", encoded),
        ],
    );
    let mail = read(&raw);
    assert_eq!(codes(&mail.findings), [codes::MAIL_BASE64_INVALID.as_str()]);
    let f = finding(&mail, &codes::MAIL_BASE64_INVALID);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.location, Location::MimePart("3".into()));
    assert!(f.message.contains("cut short"), "{}", f.message);
    let kept = &mail.attachments[1];
    assert_eq!(kept.role, AttachmentRole::Pdf);
    assert!(kept.data.len() < pdf.len() && pdf.starts_with(&kept.data));
}

#[test]
fn illegal_base64_characters_are_reported() {
    let mut encoded = encode_base64_lines(&pdf_bytes());
    encoded[40] = b'*';
    let raw = mail_with_parts(
        base(),
        vec![raw_part("application/pdf", "cr.pdf", "base64", encoded)],
    );
    let mail = read(&raw);
    let f = finding(&mail, &codes::MAIL_BASE64_INVALID);
    assert!(
        f.message.contains("outside the base64 alphabet"),
        "{}",
        f.message
    );
    assert_eq!(mail.attachments.len(), 1, "the part is still reported");
    assert!(mail.attachments[0].data.starts_with(b"%PDF-"));
}

#[test]
fn a_pdf_that_is_not_a_pdf_is_an_error() {
    let raw = base()
        .attachment(
            "application/pdf",
            PDF_NAME,
            b"<html>not a pdf</html>".to_vec(),
        )
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    assert_eq!(mail.attachments[0].role, AttachmentRole::Other);
    let f = finding(&mail, &codes::MAIL_PDF_NOT_PDF);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.location, Location::MimePart("1".into()));
    assert!(
        !f.message.contains("DUPONT"),
        "no file name (patient name) in messages"
    );
    assert!(
        mail.findings
            .iter()
            .any(|f| f.code == codes::MAIL_NO_DOCUMENT)
    );
}

#[test]
fn text_parts_that_are_not_utf8_are_flagged() {
    // Declared UTF-8 but Latin-1 bytes.
    let raw = mail_with_parts_body(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nR\xe9sultat normal\r\n");
    let mail = read(&raw);
    assert_eq!(codes(&mail.findings), [codes::MAIL_TEXT_NOT_UTF8.as_str()]);
    assert_eq!(mail.body_text.as_deref(), Some("R\u{FFFD}sultat normal"));

    // Declared Latin-1: converted, but still not what the CI-SIS asks.
    let raw = mail_with_parts_body(b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nR\xe9sultat normal\r\n");
    let mail = read(&raw);
    let f = finding(&mail, &codes::MAIL_TEXT_NOT_UTF8);
    assert!(f.message.contains("iso-8859-1"));
    assert_eq!(mail.body_text.as_deref(), Some("Résultat normal"));

    // Quoted-printable UTF-8 is fine.
    let raw = mail_with_parts_body(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nR=C3=A9sultat normal\r\n");
    let mail = read(&raw);
    assert!(mail.findings.is_empty(), "{:?}", mail.findings);
    assert_eq!(mail.body_text.as_deref(), Some("Résultat normal"));
}

/// A mail whose multipart/mixed holds the given raw text part and an IHE_XDM.ZIP.
fn mail_with_parts_body(text_part: &[u8]) -> Vec<u8> {
    let mut raw = b"From: a@cha.mssante.fr\r\nTo: b@chb.mssante.fr\r\nMessage-ID: <1@cha>\r\n\
Subject: XDM/1.0/DDM+CR DUPONT Marie\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
        .to_vec();
    raw.extend_from_slice(text_part);
    raw.extend_from_slice(
        b"--b1\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=IHE_XDM.ZIP\r\n\r\nUEsDBA==\r\n--b1--\r\n",
    );
    raw
}

#[test]
fn oversized_document_attachments_are_flagged() {
    let limits = Limits {
        max_zip_bytes: 100,
        ..Limits::default()
    };
    let mail = parse_mail(&mssante_mail(), &limits).unwrap();
    let f = finding(&mail, &codes::MAIL_ATTACHMENT_TOO_LARGE);
    assert_eq!(f.location, Location::MimePart("2".into()));
    assert!(f.message.contains("max_zip_bytes"));
    assert_eq!(mail.attachments.len(), 2, "still reported");
}

#[test]
fn attachments_of_a_forwarded_mail_are_found_and_numbered() {
    let original = mssante_mail();
    // Attached as base64 (as most clients do) ...
    let raw = base()
        .subject(format!("TR: {SUBJECT}"))
        .text_body("Voir le message joint.\r\n")
        .attachment("message/rfc822", "original.eml", original.clone())
        .write_to_vec()
        .unwrap();
    let mail = read(&raw);
    let parts: Vec<_> = mail
        .attachments
        .iter()
        .map(|a| (a.part.as_str(), a.role))
        .collect();
    assert_eq!(
        parts,
        [("2.2", AttachmentRole::Xdm), ("2.3", AttachmentRole::Pdf)]
    );
    assert_eq!(mail.attachments[0].data, xdm_bytes());
    assert_eq!(
        mail.body_text.as_deref(),
        Some("Voir le message joint.\r\n")
    );

    // ... and as 8bit, the form RFC 2046 asks for.
    let mut raw = b"From: a@chb.mssante.fr\r\nMessage-ID: <fwd@chb>\r\nSubject: TR\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nvoir\r\n\
--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&original);
    raw.extend_from_slice(b"\r\n--outer--\r\n");
    let mail = read(&raw);
    let parts: Vec<_> = mail
        .attachments
        .iter()
        .map(|a| (a.part.as_str(), a.role))
        .collect();
    assert_eq!(
        parts,
        [("2.2", AttachmentRole::Xdm), ("2.3", AttachmentRole::Pdf)]
    );
    assert_eq!(mail.attachments[1].data, pdf_bytes());
    assert_eq!(mail.body_text.as_deref(), Some("voir"));
}

#[test]
fn a_single_part_mail_is_part_one() {
    let raw = b"From: a@cha.mssante.fr\r\nMessage-ID: <x@y>\r\nContent-Type: application/pdf; name=cr.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n";
    let mail = read(raw);
    assert_eq!(mail.attachments.len(), 1);
    assert_eq!(mail.attachments[0].part, "1");
    assert_eq!(mail.attachments[0].data, b"%PDF-1.4\n");
    assert_eq!(mail.attachments[0].role, AttachmentRole::Pdf);
    assert!(mail.findings.is_empty(), "{:?}", mail.findings);
}

fn encode_base64_lines(data: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(A[(n >> 18) as usize & 63]);
        out.push(A[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

#[test]
fn broken_quoted_printable_is_reported() {
    let raw = mail_with_parts_body(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nR==C3sultat\r\n",
    );
    let mail = read(&raw);
    assert_eq!(codes(&mail.findings), [codes::MAIL_PART_ENCODING.as_str()]);
    assert_eq!(
        finding(&mail, &codes::MAIL_PART_ENCODING).location,
        Location::MimePart("1".into())
    );
}
