//! Cheap content detection: is this a mail, is this attachment a PDF, an HL7v2 message, a CDA?
//!
//! Attachment names and declared types are set by mail clients and often wrong, so roles are
//! decided on content. Every sniffer looks at a bounded prefix only.

/// How far into the input [`sniff_is_mail`] looks for the header block.
const MAIL_SNIFF_BYTES: usize = 64 * 1024;
/// How far into an XML attachment the CDA sniffer looks for the root element.
const XML_SNIFF_BYTES: usize = 64 * 1024;

/// Header fields that only mails carry at their start (lower case).
const MAIL_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "received",
    "return-path",
    "delivered-to",
    "sender",
    "reply-to",
    "content-type",
    "x-mss-nil",
];

/// True when `bytes` starts like an RFC 5322 mail: header fields from the first byte (such as
/// `From:`, `Received:`, `MIME-Version:`, `Message-ID:`), at least one of them a field that mails
/// carry. Looks at the first 64 KiB only. An mbox file (first line `From sender date`) is not a
/// mail for this function.
pub fn sniff_is_mail(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(MAIL_SNIFF_BYTES)];
    let mut known = false;
    let mut first = true;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if !first && matches!(line[0], b' ' | b'\t') {
            continue;
        }
        match field_name(line) {
            Some(name) => {
                known |= MAIL_HEADERS
                    .iter()
                    .any(|k| name.eq_ignore_ascii_case(k.as_bytes()));
            }
            None if first => return false,
            None => break,
        }
        first = false;
    }
    known
}

/// The name of a header field line (`Name:` with only letters, digits, `-`, `_`), if it is one.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii_end();
    let valid = !name.is_empty()
        && name.len() <= 76
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(name)
}

/// A PDF: `%PDF-` within the first 1024 bytes (where readers look for it).
pub fn is_pdf(data: &[u8]) -> bool {
    let head = &data[..data.len().min(1024)];
    memchr::memmem::find(head, b"%PDF-").is_some()
}

/// A ZIP archive: a local file header (or an empty archive's end record) at the start.
pub fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

/// A ZIP holding an `IHE_XDM/` folder.
pub fn is_xdm_zip(data: &[u8]) -> bool {
    is_zip(data) && memchr::memmem::find(data, b"IHE_XDM/").is_some()
}

/// An HL7v2 message: `MSH` and a field separator, after an optional MLLP start block (0x0B),
/// UTF-8 byte order mark and blank lines.
pub fn is_hl7(data: &[u8]) -> bool {
    let mut rest = data;
    if let Some(r) = rest.strip_prefix(b"\x0b") {
        rest = r;
    }
    if let Some(r) = rest.strip_prefix(b"\xef\xbb\xbf") {
        rest = r;
    }
    let start = rest
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(rest.len());
    let rest = &rest[start..];
    rest.len() >= 8
        && rest.starts_with(b"MSH")
        && rest[3].is_ascii_punctuation()
        && rest[3] != b'\\'
}

/// A CDA document: XML whose root element is `ClinicalDocument` (any prefix), or a CI-SIS
/// "auto-présentable" document (an `xsl:stylesheet` root embedding a `ClinicalDocument` of the
/// `urn:hl7-org:v3` namespace). Skips a byte order mark, the XML declaration, comments,
/// processing instructions and a DOCTYPE; reads the first 64 KiB to find the root; parses
/// nothing else.
pub fn is_cda(data: &[u8]) -> bool {
    let mut s = &data[..data.len().min(XML_SNIFF_BYTES)];
    if let Some(r) = s.strip_prefix(b"\xef\xbb\xbf") {
        s = r;
    }
    loop {
        s = s.trim_ascii_start();
        if let Some(r) = s.strip_prefix(b"<?") {
            let Some(end) = memchr::memmem::find(r, b"?>") else {
                return false;
            };
            s = &r[end + 2..];
        } else if let Some(r) = s.strip_prefix(b"<!--") {
            let Some(end) = memchr::memmem::find(r, b"-->") else {
                return false;
            };
            s = &r[end + 3..];
        } else if let Some(r) = s.strip_prefix(b"<!") {
            let Some(end) = memchr::memchr(b'>', r) else {
                return false;
            };
            s = &r[end + 1..];
        } else if let Some(r) = s.strip_prefix(b"<") {
            let len = r
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
                .unwrap_or(r.len());
            let name = &r[..len];
            let local = match memchr::memchr(b':', name) {
                Some(i) => &name[i + 1..],
                None => name,
            };
            if len == r.len() {
                return false;
            }
            return match local {
                b"ClinicalDocument" => true,
                // CI-SIS "auto-présentable" document: an XSLT whose data:Contenu holds the CDA.
                b"stylesheet" | b"transform" => embeds_clinical_document(data),
                _ => false,
            };
        } else {
            return false;
        }
    }
}

/// Whether an element named `ClinicalDocument` (any prefix) and the HL7 v3 namespace appear.
fn embeds_clinical_document(data: &[u8]) -> bool {
    let named = memchr::memmem::find_iter(data, b"ClinicalDocument")
        .any(|i| i > 0 && matches!(data[i - 1], b'<' | b':'));
    named && memchr::memmem::find(data, b"urn:hl7-org:v3").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_are_told_from_other_files() {
        assert!(sniff_is_mail(b"From: a@b.fr\r\nTo: c@d.fr\r\n\r\nbody"));
        assert!(sniff_is_mail(
            b"Received: from x\r\n by y; Mon, 1 Jan 2024\r\nMessage-ID: <a@b>\r\n\r\n"
        ));
        assert!(sniff_is_mail(b"X-Custom: 1\nMIME-Version: 1.0\n\n"));
        assert!(!sniff_is_mail(b"X-Custom: 1\nX-Other: 2\n\n"));
        assert!(!sniff_is_mail(b""));
        assert!(!sniff_is_mail(
            b"<?xml version=\"1.0\"?><ClinicalDocument/>"
        ));
        assert!(!sniff_is_mail(b"%PDF-1.7\n"));
        assert!(!sniff_is_mail(b"MSH|^~\\&|A|B\rPID|||1\r"));
        assert!(!sniff_is_mail(b"PK\x03\x04From: x"));
        assert!(!sniff_is_mail(
            b"From someone@example Mon Jan 1 00:00:00 2024\nFrom: a@b\n"
        ));
        assert!(!sniff_is_mail(b"\r\nFrom: a@b.fr\r\n"));
    }

    #[test]
    fn documents_are_sniffed_on_content() {
        assert!(is_pdf(b"%PDF-1.4\n..."));
        assert!(!is_pdf(b"not a pdf"));
        assert!(is_hl7(b"MSH|^~\\&|APP|FAC\rEVN|A01\r"));
        assert!(is_hl7(b"\x0b\xef\xbb\xbfMSH|^~\\&|APP|FAC\r"));
        assert!(!is_hl7(b"MSHIP ahoy, this is text"));
        assert!(is_cda(
            b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- c -->\n<?xml-stylesheet href=\"x\"?>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\">"
        ));
        assert!(is_cda(
            b"<hl7:ClinicalDocument xmlns:hl7=\"urn:hl7-org:v3\">"
        ));
        assert!(!is_cda(b"<?xml version=\"1.0\"?><html>"));
        assert!(!is_cda(b"<ClinicalDocumentX>"));
        assert!(!is_cda(b"<ClinicalDocument"));
        assert!(is_cda(
            b"<xsl:stylesheet xmlns:c=\"urn:hl7-org:v3\"><data:Contenu><c:ClinicalDocument>"
        ));
        assert!(!is_cda(b"<xsl:stylesheet xmlns:xsl=\"x\"><xsl:template/>"));
        assert!(is_xdm_zip(b"PK\x03\x04....IHE_XDM/SUBSET01/DOC0001.XML"));
        assert!(!is_xdm_zip(b"PK\x03\x04....other/file.xml"));
    }
}
