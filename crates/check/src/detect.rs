//! What a file is, told by its content rather than its name.

use serde::Serialize;

/// The kinds of input `relais check` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// An RFC 5322 mail (.eml), normally an MSSanté mail.
    Mail,
    /// A ZIP archive, expected to be an IHE XDM package.
    Zip,
    /// An XML document, expected to be a CDA R2 document.
    Xml,
    /// An HL7v2 message in ER7 encoding (possibly MLLP-framed).
    Hl7,
    /// A PDF file.
    Pdf,
    /// Something else.
    Unknown,
}

impl InputKind {
    pub fn describe(self) -> &'static str {
        match self {
            InputKind::Mail => "mail",
            InputKind::Zip => "ZIP archive",
            InputKind::Xml => "XML document",
            InputKind::Hl7 => "HL7v2 message",
            InputKind::Pdf => "PDF file",
            InputKind::Unknown => "unrecognised file",
        }
    }
}

/// Detect the kind of an input from its first bytes.
pub fn detect(bytes: &[u8]) -> InputKind {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        return InputKind::Zip;
    }
    if b.starts_with(b"%PDF-") {
        return InputKind::Pdf;
    }
    let trimmed = trim_start(b);
    let hl7 = trimmed.strip_prefix(b"\x0b").unwrap_or(trimmed);
    if hl7.starts_with(b"MSH") && hl7.len() > 4 {
        return InputKind::Hl7;
    }
    if trimmed.starts_with(b"<") {
        return InputKind::Xml;
    }
    if relais_mssante::sniff_is_mail(b) {
        return InputKind::Mail;
    }
    InputKind::Unknown
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(detect(b"PK\x03\x04rest"), InputKind::Zip);
        assert_eq!(detect(b"%PDF-1.7\n"), InputKind::Pdf);
        assert_eq!(detect(b"\x0bMSH|^~\\&|A"), InputKind::Hl7);
        assert_eq!(detect(b"MSH|^~\\&|A"), InputKind::Hl7);
        assert_eq!(
            detect(b"\xEF\xBB\xBF<?xml version='1.0'?><a/>"),
            InputKind::Xml
        );
        assert_eq!(
            detect(b"Message-ID: <a@b>\r\nFrom: a@b.fr\r\nSubject: x\r\n\r\nbody"),
            InputKind::Mail
        );
        assert_eq!(detect(b"\x00\x01\x02"), InputKind::Unknown);
        assert_eq!(detect(b""), InputKind::Unknown);
    }
}
