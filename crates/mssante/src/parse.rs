//! Reading one MSSanté mail: headers, body, attachments and their roles, findings.

use crate::MailError;
use crate::address;
use crate::b64;
use crate::codes;
use crate::prescan;
use crate::sniff;
use crate::subject::DdmSubject;
use mail_parser::{
    Address, GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};
use relais_core::{Finding, Limits, Location};
use std::fmt;

/// The `X-MSS-*` headers of an MSSanté mail (CI-SIS, secondary rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MssHeaders {
    /// `X-MSS-CODECDA`: the CDA `code` of each document, comma separated (all such headers).
    pub codecda: Vec<String>,
    /// `X-MSS-INS`: whether the archive carries a qualified INS; `None` when absent or invalid.
    pub ins: Option<InsFlag>,
    /// `X-MSS-NIL`: reference of the sending product.
    pub nil: Option<String>,
    /// `X-MSS-MES`: `FIN` on mail sent to a patient address.
    pub mes: Option<String>,
}

/// Value of `X-MSS-INS`: `O` when the archive carries a qualified INS, `N` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsFlag {
    /// `O`: the INS in the archive is qualified.
    Qualified,
    /// `N`: no qualified INS in the archive.
    NotQualified,
}

impl InsFlag {
    /// The header value, `O` or `N`.
    pub fn as_str(self) -> &'static str {
        match self {
            InsFlag::Qualified => "O",
            InsFlag::NotQualified => "N",
        }
    }
}

/// What an attachment carries, decided on its content (its name only for the XDM archive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentRole {
    /// The IHE XDM archive (`IHE_XDM.ZIP`), holding the CDA documents and their metadata.
    Xdm,
    /// A PDF (`%PDF-`), usually the human-readable copy of the document.
    Pdf,
    /// An HL7v2 message (`MSH|...`).
    Hl7,
    /// A bare CDA R2 document (XML rooted at `ClinicalDocument`).
    Cda,
    /// Anything else.
    Other,
}

/// One attachment: a leaf MIME part that is not a text body, with its decoded bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// MIME position, IMAP style: `2`, `1.3`; parts of an attached mail continue its number.
    pub part: String,
    /// File name (Content-Disposition `filename`, else Content-Type `name`), decoded.
    /// May hold patient names (CI-SIS PDF naming): never log it.
    pub filename: Option<String>,
    /// `type/subtype`, lower case, parameters dropped (`text/plain` when absent).
    pub content_type: String,
    /// What the content is.
    pub role: AttachmentRole,
    /// Transfer-decoded bytes (charset left untouched).
    pub data: Vec<u8>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("part", &self.part)
            .field("filename", &self.filename.as_ref().map(|_| "<redacted>"))
            .field("content_type", &self.content_type)
            .field("role", &self.role)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// An MSSanté mail as read by [`parse_mail`]: the fields the engine routes and journals on,
/// the attachments with their roles, and the non-fatal problems found.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// Decoded subject. Holds patient identity under the CI-SIS convention: never log it.
    pub subject: Option<String>,
    /// The subject split along `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>`, when it follows it.
    pub subject_info: Option<DdmSubject>,
    /// `From` addresses (addr-spec only).
    pub from: Vec<String>,
    /// `To` addresses (all `To` headers).
    pub to: Vec<String>,
    /// `Cc` addresses (all `Cc` headers).
    pub cc: Vec<String>,
    /// `Date`, as RFC 3339.
    pub date: Option<String>,
    /// The address of `Disposition-Notification-To` (an MDN is requested when present).
    pub disposition_notification_to: Option<String>,
    /// The `X-MSS-*` headers.
    pub mss: MssHeaders,
    /// The first `text/plain` body of the mail itself (not of attached mails), as UTF-8.
    pub body_text: Option<String>,
    /// Attachments in MIME order, those of attached mails included.
    pub attachments: Vec<Attachment>,
    /// Non-fatal problems.
    pub findings: Vec<Finding>,
}

impl ParsedMail {
    /// The attachments with the given role.
    pub fn attachments_with(&self, role: AttachmentRole) -> impl Iterator<Item = &Attachment> {
        self.attachments.iter().filter(move |a| a.role == role)
    }
}

impl fmt::Debug for ParsedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Vec<String>| v.iter().map(|a| address::redact(a)).collect::<Vec<_>>();
        f.debug_struct("ParsedMail")
            .field("message_id", &self.message_id)
            .field("subject", &self.subject.as_ref().map(|_| "<redacted>"))
            .field("subject_info", &self.subject_info)
            .field("from", &redact(&self.from))
            .field("to", &redact(&self.to))
            .field("cc", &redact(&self.cc))
            .field("date", &self.date)
            .field(
                "disposition_notification_to",
                &self
                    .disposition_notification_to
                    .as_deref()
                    .map(address::redact),
            )
            .field("mss", &self.mss)
            .field("body_text_len", &self.body_text.as_ref().map(String::len))
            .field("attachments", &self.attachments)
            .field("findings", &self.findings)
            .finish()
    }
}

/// Reads a raw MSSanté mail (RFC 5322 bytes, as fetched over IMAP or saved as .eml).
///
/// Refuses, before parsing anything, a mail over `limits.max_mail_bytes`; refuses inputs that
/// are not mails, and mails whose MIME structure crosses `max_mime_depth` / `max_mime_parts`
/// (found by a cheap pre-scan, so hostile structures are never built in memory). Everything
/// else is reported as findings on a [`ParsedMail`]. Never panics.
///
/// Memory: the decoded attachments are moved out of mail-parser's tree, not copied; peak memory
/// is about the raw mail plus its decoded attachments (base64 makes the raw mail 4/3 of them).
pub fn parse_mail(raw: &[u8], limits: &Limits) -> Result<ParsedMail, MailError> {
    // mail-parser keeps offsets as u32: never hand it more than 4 GiB, whatever the limits say.
    let limit = limits.max_mail_bytes.min(u32::MAX as u64);
    let size = raw.len() as u64;
    if size > limit {
        return Err(MailError::TooLarge { size, limit });
    }
    if !sniff::sniff_is_mail(raw) {
        return Err(MailError::NotAMail);
    }
    prescan::scan(raw, limits.max_mime_depth, limits.max_mime_parts)?;
    let message = parse_guarded(raw)?.ok_or(MailError::NotAMail)?;
    Reader {
        limits,
        findings: Vec::new(),
        attachments: Vec::new(),
        body_text: None,
        parts: 0,
    }
    .read(raw, message)
}

/// Runs mail-parser, turning a panic into [`MailError::Unreadable`].
///
/// mail-parser never panics by design, but on some broken structures (a multipart/digest
/// whose parts are attached messages, mutated) its state stack goes out of step: debug builds
/// stop on its `debug_assert!`s, and release builds slice its body lists with indices taken
/// from another message. A daemon must not lose a worker to one hostile mail, so the call is
/// guarded; no state outlives it (the parser is created and dropped inside).
pub(crate) fn parse_guarded(raw: &[u8]) -> Result<Option<Message<'_>>, MailError> {
    std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .map_err(|_| MailError::Unreadable)
}

/// Parses with default limits and drops the result: the entry point of fuzz targets.
pub fn fuzz_entry(data: &[u8]) {
    let _ = parse_mail(data, &Limits::default());
}

struct Reader<'l> {
    limits: &'l Limits,
    findings: Vec<Finding>,
    attachments: Vec<(Vec<u32>, Attachment)>,
    body_text: Option<String>,
    parts: usize,
}

/// A message still to walk: the mail itself or an attached one.
struct Pending<'x> {
    message: Message<'x>,
    section: Vec<u32>,
    depth: usize,
    top: bool,
}

impl Reader<'_> {
    fn read(mut self, raw: &[u8], message: Message<'_>) -> Result<ParsedMail, MailError> {
        let head = self.read_headers(raw, &message);
        let mut pending = vec![Pending {
            message,
            section: Vec::new(),
            depth: 0,
            top: true,
        }];
        while let Some(p) = pending.pop() {
            self.walk(p, &mut pending)?;
        }
        self.attachments.sort_by(|a, b| a.0.cmp(&b.0));
        let attachments: Vec<Attachment> = self.attachments.into_iter().map(|(_, a)| a).collect();

        let mut findings = head.findings;
        findings.append(&mut self.findings);
        let has_xdm = attachments.iter().any(|a| a.role == AttachmentRole::Xdm);
        if has_xdm && head.subject_info.is_none() {
            findings.push(
                Finding::warning(
                    codes::MAIL_SUBJECT_CONVENTION,
                    "an IHE_XDM.ZIP is attached but the subject does not follow the CI-SIS \
                     convention `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`; \
                     ask the sender's integration platform to set it",
                )
                .at(Location::MailHeader("Subject".into())),
            );
        }
        if !attachments.iter().any(|a| a.role != AttachmentRole::Other) {
            findings.push(Finding::warning(
                codes::MAIL_NO_DOCUMENT,
                "no attachment carries a document (no IHE_XDM.ZIP, PDF, CDA or HL7v2): \
                 nothing can be integrated from this mail",
            ));
        }
        Ok(ParsedMail {
            message_id: head.message_id,
            subject: head.subject,
            subject_info: head.subject_info,
            from: head.from,
            to: head.to,
            cc: head.cc,
            date: head.date,
            disposition_notification_to: head.disposition_notification_to,
            mss: head.mss,
            body_text: self.body_text,
            attachments,
            findings,
        })
    }

    fn read_headers(&mut self, raw: &[u8], message: &Message<'_>) -> Head {
        let mut findings = Vec::new();
        let root = message.root_part();
        let message_id = message
            .message_id()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(String::from);
        if message_id.is_none() {
            findings.push(
                Finding::error(
                    codes::MAIL_MESSAGE_ID_MISSING,
                    "the mail has no Message-ID: MSSanté requires one, and no MDN can refer to \
                     the mail without it; ask the sender to fix its mail client or platform",
                )
                .at(Location::MailHeader("Message-ID".into())),
            );
        }
        let subject = message.subject().map(String::from);
        let subject_info = subject.as_deref().and_then(DdmSubject::parse);

        let addresses = |name: HeaderName<'static>| -> Vec<String> {
            message
                .header_values(name)
                .filter_map(HeaderValue::as_address)
                .flat_map(Address::iter)
                .filter_map(|a| a.address())
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        };

        let ins_values = raw_values(root, raw, "X-MSS-INS");
        let ins = match ins_values.first().map(String::as_str) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("O") => Some(InsFlag::Qualified),
            Some(v) if v.eq_ignore_ascii_case("N") => Some(InsFlag::NotQualified),
            Some(_) => {
                findings.push(
                    Finding::warning(
                        codes::MAIL_X_MSS_INS_INVALID,
                        "X-MSS-INS must be `O` (the archive carries a qualified INS) or `N`; \
                         the value found is neither, so it is ignored",
                    )
                    .at(Location::MailHeader("X-MSS-INS".into())),
                );
                None
            }
        };
        let mss = MssHeaders {
            codecda: raw_values(root, raw, "X-MSS-CODECDA")
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            ins,
            nil: raw_values(root, raw, "X-MSS-NIL").into_iter().next(),
            mes: raw_values(root, raw, "X-MSS-MES").into_iter().next(),
        };
        let disposition_notification_to = raw_values(root, raw, "Disposition-Notification-To")
            .first()
            .and_then(|v| first_address(v));

        Head {
            message_id,
            subject,
            subject_info,
            from: addresses(HeaderName::From),
            to: addresses(HeaderName::To),
            cc: addresses(HeaderName::Cc),
            date: message.date().map(|d| d.to_rfc3339()),
            disposition_notification_to,
            mss,
            findings,
        }
    }

    /// Walks one message's part tree without recursion; attached messages go to `pending`.
    fn walk<'x>(
        &mut self,
        p: Pending<'x>,
        pending: &mut Vec<Pending<'x>>,
    ) -> Result<(), MailError> {
        let Pending {
            mut message,
            section,
            depth,
            top,
        } = p;
        self.parts += message.parts.len();
        if self.parts > self.limits.max_mime_parts as usize {
            return Err(MailError::TooManyParts {
                limit: self.limits.max_mime_parts,
            });
        }
        if message.parts.is_empty() {
            return Ok(());
        }
        let mut visited = vec![false; message.parts.len()];
        // (part id, section, depth, is the root of the message)
        let mut stack: Vec<(usize, Vec<u32>, usize, bool)> = vec![(0, section, depth, true)];
        while let Some((id, section, depth, is_root)) = stack.pop() {
            if depth > self.limits.max_mime_depth as usize {
                return Err(MailError::MimeTooDeep {
                    limit: self.limits.max_mime_depth,
                });
            }
            let Some(seen) = visited.get_mut(id) else {
                continue;
            };
            if std::mem::replace(seen, true) {
                continue;
            }
            let body = std::mem::take(&mut message.parts[id].body);
            let leaf_section = || {
                let mut s = section.clone();
                if is_root {
                    s.push(1);
                }
                s
            };
            match body {
                PartType::Multipart(children) => {
                    for (i, &child) in children.iter().enumerate().rev() {
                        let mut s = section.clone();
                        s.push(i as u32 + 1);
                        stack.push((child as usize, s, depth + 1, false));
                    }
                }
                PartType::Message(nested) => pending.push(Pending {
                    message: nested,
                    section: leaf_section(),
                    depth: depth + 1,
                    top: false,
                }),
                leaf => {
                    let s = leaf_section();
                    let part = &message.parts[id];
                    self.leaf(part, leaf, &message.raw_message, s, top);
                }
            }
        }
        Ok(())
    }

    fn leaf(
        &mut self,
        part: &MessagePart<'_>,
        body: PartType<'_>,
        raw: &[u8],
        section: Vec<u32>,
        top: bool,
    ) {
        let name = section_name(&section);
        let location = || Location::MimePart(name.clone());
        let ct = part.content_type();
        let content_type = match ct {
            Some(ct) => match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            }
            .to_ascii_lowercase(),
            None => "text/plain".to_string(),
        };
        let filename = part.attachment_name().map(String::from);
        let is_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        let cte = part
            .headers
            .header_value(&HeaderName::ContentTransferEncoding)
            .and_then(HeaderValue::as_text)
            .map(|e| e.trim().to_ascii_lowercase());
        let encoded = raw
            .get(part.offset_body as usize..part.offset_end as usize)
            .unwrap_or_default();

        if cte.as_deref() == Some("base64") {
            if let Some(problem) = b64::check(encoded) {
                self.findings.push(
                    Finding::error(
                        codes::MAIL_BASE64_INVALID,
                        format!(
                            "{}; the part is kept as far as it decodes, but its content is not \
                             what the sender sent: ask for the mail again",
                            problem.describe()
                        ),
                    )
                    .at(location()),
                );
            }
        } else if part.is_encoding_problem && cte.as_deref() == Some("quoted-printable") {
            self.findings.push(
                Finding::warning(
                    codes::MAIL_PART_ENCODING,
                    "the part's quoted-printable encoding is broken; its raw text is kept",
                )
                .at(location()),
            );
        }

        let is_text = matches!(body, PartType::Text(_) | PartType::Html(_));
        let is_body = is_text
            && filename.is_none()
            && !is_attachment
            && matches!(content_type.as_str(), "text/plain" | "text/html");
        let charset = ct
            .and_then(|ct| ct.attribute("charset"))
            .map(|c| c.trim().to_ascii_lowercase());
        let utf8_charset = charset
            .as_deref()
            .is_none_or(|c| matches!(c, "utf-8" | "utf8" | "us-ascii" | "ascii"));

        if is_body {
            let text = if !utf8_charset {
                self.findings.push(
                    Finding::warning(
                        codes::MAIL_TEXT_NOT_UTF8,
                        format!(
                            "a text part declares charset `{}`; the CI-SIS requires UTF-8 text \
                             parts (it was converted)",
                            charset
                                .as_deref()
                                .unwrap_or_default()
                                .chars()
                                .take(40)
                                .collect::<String>()
                        ),
                    )
                    .at(location()),
                );
                match body {
                    PartType::Text(t) | PartType::Html(t) => t.into_owned(),
                    _ => String::new(),
                }
            } else {
                let bytes = transfer_decoded(body, part, encoded, cte.as_deref(), true);
                match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(e) => {
                        self.findings.push(
                            Finding::warning(
                                codes::MAIL_TEXT_NOT_UTF8,
                                "a text part is not valid UTF-8 (the CI-SIS requires UTF-8); \
                                 invalid bytes were replaced",
                            )
                            .at(location()),
                        );
                        String::from_utf8_lossy(e.as_bytes()).into_owned()
                    }
                }
            };
            if top && content_type == "text/plain" && self.body_text.is_none() {
                self.body_text = Some(text);
            }
            return;
        }

        let data = transfer_decoded(body, part, encoded, cte.as_deref(), utf8_charset);
        let (role, mut findings) = classify(filename.as_deref(), &content_type, &data, self.limits);
        for f in &mut findings {
            f.location = location();
        }
        self.findings.append(&mut findings);
        self.attachments.push((
            section,
            Attachment {
                part: name,
                filename,
                content_type,
                role,
                data,
            },
        ));
    }
}

/// Headers read from the mail itself.
struct Head {
    message_id: Option<String>,
    subject: Option<String>,
    subject_info: Option<DdmSubject>,
    from: Vec<String>,
    to: Vec<String>,
    cc: Vec<String>,
    date: Option<String>,
    disposition_notification_to: Option<String>,
    mss: MssHeaders,
    findings: Vec<Finding>,
}

/// The part's bytes after transfer decoding, with their charset untouched. Moves mail-parser's
/// decoded buffer when it holds exactly those bytes; decodes the raw part otherwise.
fn transfer_decoded(
    body: PartType<'_>,
    part: &MessagePart<'_>,
    encoded: &[u8],
    cte: Option<&str>,
    utf8_charset: bool,
) -> Vec<u8> {
    if !part.is_encoding_problem {
        match body {
            PartType::Binary(b) | PartType::InlineBinary(b) => return b.into_owned(),
            // mail-parser turned the bytes into a String: for UTF-8 (or no) charset that is a
            // move, unless invalid bytes were replaced (U+FFFD) — then decode again.
            PartType::Text(t) | PartType::Html(t) if utf8_charset && !t.contains('\u{FFFD}') => {
                return t.into_owned().into_bytes();
            }
            _ => {}
        }
    }
    match cte {
        Some("base64") => b64::decode_lenient(encoded),
        Some("quoted-printable") => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded)
                .unwrap_or_else(|| encoded.to_vec())
        }
        _ => encoded.to_vec(),
    }
}

/// Decides the role of an attachment and the findings its content calls for (locations are
/// set by the caller).
fn classify(
    filename: Option<&str>,
    content_type: &str,
    data: &[u8],
    limits: &Limits,
) -> (AttachmentRole, Vec<Finding>) {
    let mut findings = Vec::new();
    let named_xdm = filename.is_some_and(|n| n.trim().eq_ignore_ascii_case("IHE_XDM.ZIP"));
    let pdf = sniff::is_pdf(data);
    let role = if named_xdm {
        AttachmentRole::Xdm
    } else if pdf {
        AttachmentRole::Pdf
    } else if sniff::is_hl7(data) {
        AttachmentRole::Hl7
    } else if sniff::is_cda(data) {
        AttachmentRole::Cda
    } else if sniff::is_xdm_zip(data) {
        findings.push(Finding::warning(
            codes::MAIL_XDM_NAME,
            "a ZIP holding an IHE_XDM/ folder is attached under another name than IHE_XDM.ZIP; \
             it is read as the XDM archive, but receivers that go by the name will miss it",
        ));
        AttachmentRole::Xdm
    } else {
        AttachmentRole::Other
    };
    let says_pdf = content_type == "application/pdf"
        || filename.is_some_and(|n| n.trim().to_ascii_lowercase().ends_with(".pdf"));
    if says_pdf && !pdf && !named_xdm {
        findings.push(Finding::error(
            codes::MAIL_PDF_NOT_PDF,
            "an attachment named or typed as PDF does not start with `%PDF-`: it is not a PDF \
             (corrupted or mislabelled); ask the sender for the document again",
        ));
    }
    let limit = match role {
        AttachmentRole::Xdm => Some(("ZIP", "max_zip_bytes", limits.max_zip_bytes)),
        AttachmentRole::Cda => Some(("XML", "max_xml_bytes", limits.max_xml_bytes)),
        AttachmentRole::Hl7 => Some(("HL7v2", "max_hl7_bytes", limits.max_hl7_bytes)),
        AttachmentRole::Pdf | AttachmentRole::Other => None,
    };
    if let Some((kind, setting, max)) = limit
        && data.len() as u64 > max
    {
        findings.push(Finding::error(
            codes::MAIL_ATTACHMENT_TOO_LARGE,
            format!(
                "the {kind} attachment is {} bytes, over the limit of {max} bytes \
                 (limits.{setting}); it will not be read",
                data.len()
            ),
        ));
    }
    (role, findings)
}

/// The values of every header `name` of a part, unfolded and trimmed, empty ones dropped.
fn raw_values(part: &MessagePart<'_>, raw: &[u8], name: &str) -> Vec<String> {
    part.headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .filter_map(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
        .map(|v| {
            String::from_utf8_lossy(v)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// The first address of a header value: inside `<...>` when present, else the first item.
fn first_address(value: &str) -> Option<String> {
    let addr = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(',').next().unwrap_or_default(),
    };
    let addr = addr.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

fn section_name(section: &[u32]) -> String {
    section
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_address_takes_the_angle_addr() {
        assert_eq!(
            first_address("Service X <servicex@chb.mssante.fr>").as_deref(),
            Some("servicex@chb.mssante.fr")
        );
        assert_eq!(first_address(" a@b.fr , c@d.fr").as_deref(), Some("a@b.fr"));
        assert_eq!(first_address("  "), None);
    }

    #[test]
    fn sections_are_dotted() {
        assert_eq!(section_name(&[1]), "1");
        assert_eq!(section_name(&[2, 1, 3]), "2.1.3");
    }
}
