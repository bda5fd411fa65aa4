//! Builders of realistic MSSanté mails for the tests.
#![allow(dead_code)]

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};

pub const SUBJECT: &str = "XDM/1.0/DDM+ÉCHOGRAPHIE ABDOMINALE DUPONT Marie 12/10/1988";
pub const MESSAGE_ID: &str = "20240220.0019.12345@cha.mssante.fr";
pub const BODY: &str =
    "Bonjour,\r\n\r\nVeuillez trouver ci-joint le compte rendu d'échographie.\r\n";
pub const PDF_NAME: &str = "20240220_CR_echographie_DUPONT_Marie.pdf";
pub const PATIENT: &str = "146026322000196@patient.mssante.fr";
/// 2024-02-20T00:19:00Z
pub const DATE: i64 = 1_708_388_340;

/// Bytes that start like a ZIP with an IHE_XDM/ folder (the mail layer does not open it).
pub fn xdm_bytes() -> Vec<u8> {
    let mut v = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    v.extend_from_slice(b"IHE_XDM/SUBSET01/DOC0001.XML");
    v.extend((0..2000u32).map(|i| (i * 7 % 251) as u8));
    v
}

pub fn pdf_bytes() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..3000u32).map(|i| (i * 13 % 256) as u8));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

/// The usual headers of an MSSanté mail from a hospital platform.
pub fn base() -> MessageBuilder<'static> {
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Service X"),
            "servicex@cha.mssante.fr",
        ))
        .to(Address::new_list(vec![
            Address::new_address(None::<&str>, "servicey@chb.mssante.fr"),
            Address::new_address(None::<&str>, PATIENT),
        ]))
        .cc("secretariat@chb.mssante.fr")
        .subject(SUBJECT)
        .message_id(MESSAGE_ID)
        .date(DATE)
        .header(
            "Disposition-Notification-To",
            Raw::new("Service X <servicex@cha.mssante.fr>"),
        )
        .header("X-MSS-CODECDA", Raw::new("11488-4, 60591-5"))
        .header("X-MSS-INS", Raw::new("O"))
        .header("X-MSS-NIL", Raw::new("Relais 0.1.0"))
        .header("X-MSS-MES", Raw::new("FIN"))
}

/// A complete MSSanté mail: text body, IHE_XDM.ZIP, PDF copy.
pub fn mssante_mail() -> Vec<u8> {
    base()
        .text_body(BODY)
        .attachment("application/zip", "IHE_XDM.ZIP", xdm_bytes())
        .attachment("application/pdf", PDF_NAME, pdf_bytes())
        .write_to_vec()
        .unwrap()
}

/// A mail whose attachments are given as ready-made MIME parts after the text body.
pub fn mail_with_parts(builder: MessageBuilder<'static>, parts: Vec<MimePart<'static>>) -> Vec<u8> {
    let mut children = vec![MimePart::new("text/plain", BodyPart::Text(BODY.into()))];
    children.extend(parts);
    builder
        .body(MimePart::new(
            "multipart/mixed",
            BodyPart::Multipart(children),
        ))
        .write_to_vec()
        .unwrap()
}

/// A leaf part with a raw (already encoded) body and the given transfer encoding.
pub fn raw_part(
    content_type: &'static str,
    filename: &'static str,
    encoding: &'static str,
    body: Vec<u8>,
) -> MimePart<'static> {
    MimePart::new(content_type, BodyPart::Binary(body.into()))
        .attachment(filename)
        .transfer_encoding(encoding)
}

/// Removes every header line starting with `name:` from the top header block.
pub fn without_header(raw: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with(&prefix))
        .collect();
    format!("{}\r\n\r\n{}", kept.join("\r\n"), body).into_bytes()
}

/// Replaces the first occurrence of `from` by `to`.
pub fn replace_once(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains(from), "{from:?} not in the mail");
    text.replacen(from, to, 1).into_bytes()
}

/// Codes of the findings, for compact assertions.
pub fn codes(findings: &[relais_core::Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}
