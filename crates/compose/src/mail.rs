//! The MSSanté mail carrying one document: CI-SIS subject, `X-MSS-*` headers, MDN request,
//! the `IHE_XDM.ZIP` archive and the PDF named by the CI-SIS rule. Written by mail-builder.
//!
//! The DSN request is not a header but a parameter of the SMTP transaction (`NOTIFY`, `RET`,
//! `ENVID`): [`BuiltMail`] says whether to ask for it and which envelope id to give, and the
//! sender passes them to the SMTP client.

use crate::intake::{Intake, is_plain_address};
use crate::{BuildContext, BuildError};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use std::fmt;

/// The name of the XDM archive attachment (IHE ITI-32; receivers match it ignoring case).
pub const XDM_ATTACHMENT_NAME: &str = "IHE_XDM.ZIP";

/// The marker that opens the CI-SIS subject.
const DDM_MARKER: &str = "XDM/1.0/DDM+";

/// The patient domain of MSSanté: `<INS>@patient.mssante.fr`.
const PATIENT_DOMAIN: &str = "patient.mssante.fr";

/// How to send: the sending mailbox and the site's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailOptions {
    /// The sending applicative mailbox (BAL applicative): `From`, the envelope sender and the
    /// `Disposition-Notification-To` address.
    pub from: String,
    /// Its display name.
    pub from_name: Option<String>,
    /// `X-MSS-NIL`: the product reference the CI-SIS asks on every message (configuration).
    pub nil: String,
    /// Ask for a read receipt (MDN): `Disposition-Notification-To` the sending mailbox.
    pub request_read_receipt: bool,
    /// Ask for delivery status notifications (DSN) at the SMTP level.
    pub request_dsn: bool,
    /// Let a patient answer: when false (the default), a mail to a patient address carries
    /// `X-MSS-MES: FIN`.
    pub patient_may_reply: bool,
}

impl MailOptions {
    /// Options for a mailbox and an `X-MSS-NIL` value: MDN and DSN asked, patients may not
    /// reply.
    pub fn new(from: impl Into<String>, nil: impl Into<String>) -> MailOptions {
        MailOptions {
            from: from.into(),
            from_name: None,
            nil: nil.into(),
            request_read_receipt: true,
            request_dsn: true,
            patient_may_reply: false,
        }
    }
}

/// A mail ready for SMTP.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltMail {
    /// `Message-ID`, without angle brackets: the key DSNs and MDNs come back with.
    pub message_id: String,
    /// SMTP `MAIL FROM` (the sending mailbox).
    pub envelope_from: String,
    /// SMTP `RCPT TO`, in the intake's order.
    pub recipients: Vec<String>,
    /// The RFC 5322 bytes, CRLF line ends.
    pub raw: Vec<u8>,
    /// Ask the SMTP server for DSNs (`NOTIFY=SUCCESS,FAILURE`, `RET=HDRS`).
    pub dsn_requested: bool,
    /// The `ENVID` to give with the DSN request (comes back as `Original-Envelope-Id`).
    pub envelope_id: String,
}

impl fmt::Debug for BuiltMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domains: Vec<&str> = self
            .recipients
            .iter()
            .map(|r| r.rsplit('@').next().unwrap_or_default())
            .collect();
        f.debug_struct("BuiltMail")
            .field("message_id", &self.message_id)
            .field("recipient_domains", &domains)
            .field("raw_len", &self.raw.len())
            .field("dsn_requested", &self.dsn_requested)
            .field("envelope_id", &self.envelope_id)
            .finish()
    }
}

/// The subject of the CI-SIS convention: `XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>`
/// (the libellé is `mail.subject_label`, else the document title; the names are the birth
/// family name and the first birth first name).
pub fn subject(intake: &Intake) -> String {
    let p = &intake.patient;
    let label = intake
        .mail
        .subject_label
        .as_deref()
        .unwrap_or(&intake.document.title);
    format!(
        "{}{} {} {} {}",
        DDM_MARKER,
        one_line(label),
        one_line(&p.birth_family_name),
        one_line(
            p.birth_given_names
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        ),
        p.birth_date.dd_mm_yyyy()
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The PDF's file name by the CI-SIS rule: `AAAAMMJJ_<type>_<NOM>_<prénom>[_<n° dossier>].pdf`,
/// the type being the document type's label cut to 40 characters, every part in ASCII letters,
/// digits and `-` (accents dropped, other characters as `_`). The date is the document's.
pub fn pdf_file_name(intake: &Intake, ctx: &BuildContext) -> String {
    let p = &intake.patient;
    let date = intake.document.created.unwrap_or(ctx.now).yyyymmdd();
    let kind: String = file_part(intake.type_display()).chars().take(40).collect();
    let mut name = format!(
        "{date}_{}_{}_{}",
        kind.trim_end_matches('_'),
        file_part(&p.birth_family_name),
        file_part(
            p.birth_given_names
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        )
    );
    if let Some(id) = &intake.encounter.id {
        name.push('_');
        name.push_str(&file_part(&id.value));
    }
    name.push_str(".pdf");
    name
}

/// ASCII letters, digits and `-`; accented Latin letters lose their accent; anything else
/// becomes `_` (runs collapsed, none at the ends).
fn file_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mapped: &str = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' => {
                out.push(c);
                continue;
            }
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
            'ç' => "c",
            'Ç' => "C",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'È' | 'É' | 'Ê' | 'Ë' => "E",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'Ì' | 'Í' | 'Î' | 'Ï' => "I",
            'ñ' => "n",
            'Ñ' => "N",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => "o",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => "O",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
            'ý' | 'ÿ' => "y",
            'Ý' | 'Ÿ' => "Y",
            'œ' => "oe",
            'Œ' => "OE",
            'æ' => "ae",
            'Æ' => "AE",
            _ => "_",
        };
        if mapped == "_" && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push_str(mapped);
    }
    out.trim_end_matches('_').to_string()
}

fn default_body(intake: &Intake, ctx: &BuildContext) -> String {
    format!(
        "Bonjour,\r\n\r\n\
         Veuillez trouver ci-joint le document « {title} » ({kind}), au format CDA R2 dans \
         l'archive {XDM_ATTACHMENT_NAME} et au format PDF.\r\n\r\n\
         {org}\r\n\r\n\
         Message envoyé par {product} {version} par la messagerie sécurisée de santé \
         (MSSanté).\r\n",
        title = one_line(&intake.document.title),
        kind = intake.type_display(),
        org = one_line(&intake.organization.name),
        product = ctx.product.name,
        version = ctx.product.version,
    )
}

/// CRLF line ends for a text body given with LF or CRLF.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

fn printable_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Build the mail carrying the XDM package `xdm_zip` (from [`crate::build_package`]) and the
/// `pdf` of `intake`.
///
/// Every recipient must have an MSSanté address by now (the Annuaire resolves RPPS numbers
/// before). The mail is then read back and checked as `relais check` would without the
/// schematrons (MIME, `X-MSS-*` against the documents, XDM, CDA header): any error is a
/// [`BuildError::SelfCheck`].
pub fn build_mail(
    intake: &Intake,
    xdm_zip: &[u8],
    pdf: &[u8],
    ctx: &BuildContext,
    opts: &MailOptions,
) -> Result<BuiltMail, BuildError> {
    crate::preflight(intake, pdf, ctx)?;
    let ctx_err = |field, why| Err(BuildError::Context { field, why });
    if !is_plain_address(&opts.from) {
        return ctx_err(
            "MailOptions.from",
            "must be a plain ASCII address local@domain",
        );
    }
    if !printable_ascii(&opts.nil) {
        return ctx_err(
            "MailOptions.nil",
            "(X-MSS-NIL) must be non-empty printable ASCII",
        );
    }
    if opts
        .from_name
        .as_deref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return ctx_err("MailOptions.from_name", "must be one line of text");
    }
    let mut recipients = Vec::with_capacity(intake.recipients.len());
    for (index, r) in intake.recipients.iter().enumerate() {
        match &r.mssante {
            Some(a) => recipients.push(a.clone()),
            None => return Err(BuildError::UnresolvedRecipient { index }),
        }
    }
    let domain = opts.from.rsplit('@').next().unwrap_or_default();
    let message_id = format!(
        "relais.{}@{domain}",
        ctx.uuid("message-id").to_ascii_lowercase()
    );
    let envelope_id = ctx.token("envelope-id").to_ascii_lowercase();
    let to_patient = recipients.iter().any(|r| {
        r.rsplit('@')
            .next()
            .is_some_and(|d| d.eq_ignore_ascii_case(PATIENT_DOMAIN))
    });

    let body = match &intake.mail.body {
        Some(b) => crlf(b),
        None => default_body(intake, ctx),
    };
    let parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            BodyPart::Text(body.into()),
        ),
        MimePart::new(
            ContentType::new("application/zip"),
            BodyPart::Binary(xdm_zip.to_vec().into()),
        )
        .attachment(XDM_ATTACHMENT_NAME),
        MimePart::new(
            ContentType::new("application/pdf"),
            BodyPart::Binary(pdf.to_vec().into()),
        )
        .attachment(pdf_file_name(intake, ctx)),
    ];
    let root = MimePart::new(
        ContentType::new("multipart/mixed")
            .attribute("boundary", format!("relais-{}", ctx.token("boundary"))),
        BodyPart::Multipart(parts),
    );
    let from = Address::new_address(opts.from_name.as_deref(), opts.from.as_str());
    let to: Vec<Address<'_>> = recipients
        .iter()
        .map(|r| Address::new_address(None::<&str>, r.as_str()))
        .collect();
    let ins_flag = if intake.patient.ins.is_some() {
        "O"
    } else {
        "N"
    };
    let mut builder = MessageBuilder::new()
        .from(from)
        .to(Address::new_list(to))
        .subject(subject(intake))
        .date(ctx.now.unix_seconds())
        .message_id(message_id.as_str())
        .header(
            "X-MSS-CODECDA",
            Raw::new(intake.document.type_code.as_str()),
        )
        .header("X-MSS-INS", Raw::new(ins_flag))
        .header("X-MSS-NIL", Text::new(opts.nil.as_str()));
    if opts.request_read_receipt {
        builder = builder.header(
            "Disposition-Notification-To",
            Address::new_address(None::<&str>, opts.from.as_str()),
        );
    }
    if to_patient && !opts.patient_may_reply {
        builder = builder.header("X-MSS-MES", Raw::new("FIN"));
    }
    let raw = builder
        .body(root)
        .write_to_vec()
        .map_err(|source| BuildError::Io {
            what: "mail",
            source,
        })?;
    crate::package::self_check("mail", "outbound.eml", &raw)?;
    Ok(BuiltMail {
        message_id,
        envelope_from: opts.from.clone(),
        recipients,
        raw,
        dsn_requested: opts.request_dsn,
        envelope_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parts_are_ascii() {
        assert_eq!(
            file_part("CR d'imagerie médicale"),
            "CR_d_imagerie_medicale"
        );
        assert_eq!(file_part("RELAIS-TEST"), "RELAIS-TEST");
        assert_eq!(file_part("  Œdipe  ÉLOÏSE "), "OEdipe_ELOISE");
        assert_eq!(file_part("a/b\\c"), "a_b_c");
        assert_eq!(file_part("___"), "");
    }

    #[test]
    fn crlf_normalises() {
        assert_eq!(crlf("a\nb\r\nc"), "a\r\nb\r\nc\r\n");
    }
}
