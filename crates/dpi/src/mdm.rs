//! Building the MDM^T02/T10/T04 v2.6 that files a received CDA document into the DPI
//! (ig-lps-mss, MSH-21 `1.1^CISIS_CDA_HL7_LPS`).
//!
//! The message follows the guide's tables segment by segment: MSH, EVN, PID (PAM-FR 2.11 with
//! the INS annex), PV1 (class `N`), ORC (NW/RO/CA), OBR (document type), TXA (document ids),
//! OBX 1 (the CDA, ED base64) with its PRT participants (SB sender, RCT recipients, REPLY),
//! OBX 2 (the MSSanté mail: Message-ID, subject, body) and the four MetaDMPMSS observations.
//! Every value is HL7-escaped; the result uses `\r` segment terminators and UTF-8.

use crate::codes;
use base64::Engine;
use relais_cda::{CdaHeader, Ii, InsKind};
use relais_core::RuleCode;
use relais_hl7::{Delimiters, escape};
use relais_mssante::ParsedMail;
use std::fmt;

/// LOINC, the code system of most document types (JDV_J07).
const LOINC_OID: &str = "2.16.840.1.113883.6.1";
/// TRE_A05-TypeDocComplementaire, the other code system of JDV_J07.
const TRE_A05_OID: &str = "1.2.250.1.213.1.1.4.12";
/// Longest MSH-10 accepted (the length Relais' own control ids keep to; v2.6 allows 199).
const MAX_CONTROL_ID: usize = 199;

/// What the MDM asks the DPI to do with the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum MdmEvent {
    /// T02: file a new document (ORC-1 NW, OBX-11 F).
    New,
    /// T10: replace the document named in TXA-13 (ORC-1 RO, OBX-11 C).
    Replace,
    /// T04: delete the document (ORC-1 CA, OBX-11 D).
    Delete,
}

impl MdmEvent {
    /// The trigger event (MSH-9.2).
    pub fn trigger(self) -> &'static str {
        match self {
            MdmEvent::New => "T02",
            MdmEvent::Replace => "T10",
            MdmEvent::Delete => "T04",
        }
    }

    /// ORC-1, the order control code.
    pub fn order_control(self) -> &'static str {
        match self {
            MdmEvent::New => "NW",
            MdmEvent::Replace => "RO",
            MdmEvent::Delete => "CA",
        }
    }

    /// OBX-11 of the document, the result status.
    pub fn result_status(self) -> &'static str {
        match self {
            MdmEvent::New => "F",
            MdmEvent::Replace => "C",
            MdmEvent::Delete => "D",
        }
    }

    /// The event a CDA calls for: [`MdmEvent::Replace`] when its header has a `RPLC`
    /// relatedDocument, [`MdmEvent::New`] otherwise (a deletion is never read from the CDA).
    pub fn for_header(header: &CdaHeader) -> MdmEvent {
        if header.related_documents.iter().any(|r| r.is_replacement()) {
            MdmEvent::Replace
        } else {
            MdmEvent::New
        }
    }
}

/// The applications and facilities of MSH-3..MSH-6, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    /// MSH-3, Relais (the GESTIONNAIRE / PFI), e.g. `RELAIS`.
    pub sending_application: String,
    /// MSH-4, the hospital running Relais.
    pub sending_facility: String,
    /// MSH-5, the DPI or RIS (the CONSOMMATEUR).
    pub receiving_application: String,
    /// MSH-6, the facility of the DPI.
    pub receiving_facility: String,
    /// MSH-11: `P` production, `T` test, `D` debug. Empty means `P`.
    pub processing_id: String,
}

/// The person who sent the mail, for PRT-5 of the sender (required when known: from the
/// Annuaire santé, not from the mail itself).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SenderPerson {
    /// The national professional id as the CDA writes it (`8` + RPPS), under 1.2.250.1.71.4.2.1.
    pub id: String,
    pub family: String,
    pub given: String,
}

/// What the MDM says about the MSSanté mail the document came in.
///
/// Subject and body carry patient data: the `Debug` output shows only their presence.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MailFacts {
    /// `Message-ID`, without angle brackets (OBX 2, OBX-3.1).
    pub message_id: String,
    /// Decoded subject (OBX 2, OBX-3.2).
    pub subject: String,
    /// The text body (OBX 2, OBX-5, base64).
    pub body_text: String,
    /// The `From` address (PRT `SB`, PRT-15.4).
    pub sender: String,
    /// The `To` addresses, the initial recipients (one PRT `RCT` each).
    pub recipients: Vec<String>,
    /// Addresses where the recipient can answer (one PRT `REPLY` each), when known.
    pub reply_to: Vec<String>,
    /// The sender as a health professional, when the Annuaire knows the address.
    pub sender_person: Option<SenderPerson>,
}

impl fmt::Debug for MailFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailFacts")
            .field("message_id", &self.message_id)
            .field(
                "subject",
                &format_args!("<{} chars>", self.subject.chars().count()),
            )
            .field(
                "body_text",
                &format_args!("<{} bytes>", self.body_text.len()),
            )
            .field("recipients", &self.recipients.len())
            .field("reply_to", &self.reply_to.len())
            .field("sender_person", &self.sender_person.is_some())
            .finish_non_exhaustive()
    }
}

impl MailFacts {
    /// The facts of a parsed MSSanté mail. Missing values stay empty; [`build_mdm`] refuses an
    /// empty Message-ID or sender.
    pub fn from_mail(mail: &ParsedMail) -> MailFacts {
        MailFacts {
            message_id: mail.message_id.clone().unwrap_or_default(),
            subject: mail.subject.clone().unwrap_or_default(),
            body_text: mail.body_text.clone().unwrap_or_default(),
            sender: mail.from.first().cloned().unwrap_or_default(),
            recipients: mail.to.clone(),
            reply_to: Vec::new(),
            sender_person: None,
        }
    }
}

/// The MetaDMPMSS restriction flags (OBX 3 to 6), from the XDM metadata of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MetaFlags {
    /// MASQUE_PS: hidden from health professionals.
    pub masque_ps: bool,
    /// INVISIBLE_PATIENT: not visible to the patient.
    pub invisible_patient: bool,
    /// INVISIBLE_REP_LEGAUX: not visible to the patient's legal representatives.
    pub invisible_rep_legaux: bool,
    /// MODIF_CONF_CODE: the message changes the confidentiality of an earlier document.
    pub modif_conf_code: bool,
}

impl MetaFlags {
    /// The flags named by confidentiality codes (the XDM `confidentialityCode`s): each of
    /// `MASQUE_PS`, `INVISIBLE_PATIENT`, `INVISIBLE_REP_LEGAUX` found sets its flag.
    pub fn from_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> MetaFlags {
        let mut flags = MetaFlags::default();
        for code in codes {
            match code.trim() {
                "MASQUE_PS" => flags.masque_ps = true,
                "INVISIBLE_PATIENT" => flags.invisible_patient = true,
                "INVISIBLE_REP_LEGAUX" => flags.invisible_rep_legaux = true,
                _ => {}
            }
        }
        flags
    }
}

/// Everything [`build_mdm`] needs.
#[derive(Debug, Clone, Copy)]
pub struct MdmInput<'a> {
    pub event: MdmEvent,
    /// The CDA exactly as received: it is sent byte for byte (base64) in OBX 1.
    pub cda: &'a [u8],
    /// Its header, read by `relais_cda::read`.
    pub header: &'a CdaHeader,
    pub mail: &'a MailFacts,
    pub endpoints: &'a Endpoints,
    pub meta: MetaFlags,
    /// MSH-10, unique per message: the ACK's MSA-2 must repeat it.
    pub control_id: &'a str,
    /// MSH-7 and EVN-2, an HL7 timestamp (`YYYYMMDDHHMMSS[+ZZZZ]`), see [`hl7_timestamp_now`].
    pub timestamp: &'a str,
}

/// Why an MDM could not be built. Nothing here contains patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdmError {
    #[error("cannot build the MDM: {what} is missing; {hint}")]
    Incomplete {
        what: &'static str,
        hint: &'static str,
    },
    #[error("cannot build the MDM: {what} is unusable ({reason})")]
    Input { what: &'static str, reason: String },
}

impl MdmError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            MdmError::Incomplete { .. } => codes::DPI_MDM_INCOMPLETE,
            MdmError::Input { .. } => codes::DPI_MDM_INPUT,
        }
    }
}

fn incomplete(what: &'static str, hint: &'static str) -> MdmError {
    MdmError::Incomplete { what, hint }
}

/// Build the MDM for one document. The result, parsed by `relais_hl7::parse`, passes
/// `relais_hl7::validate_profile` as [`relais_hl7::Profile::MdmToLps`] without errors as long as
/// the CDA's own identity data is right (a CDA INS with a wrong control key is reported there),
/// and `relais_hl7::embedded_documents` gives back the exact CDA bytes.
///
/// Choices the guide leaves open, made here:
/// - PID-3 lists the CDA's INS (type `INS`, assigning authority `ASIP-SANTE-INS-NIR` or `-NIA`
///   with the INS OID, as the ANS examples write it) and IPPs (type `PI`, authority = the IPP
///   root OID), in document order; other identifiers are left out.
/// - PID-5 carries the birth name (`L`: family, first birth first name, list of birth first
///   names, as PAM-FR 2.11 places them), the used name (`D`) when the CDA has one, or a name of
///   type `U` for an unqualified CDA name. PID-11 carries the birthplace code (`BDL`, XAD-9).
/// - PID-32 is `VALI` when an INS is sent: the CI-SIS only lets a document carry an INS for a
///   qualified identity.
/// - TXA-12/13 follow the guide's rule: `extension^^root^ISO`, or the root alone; TXA-13 is the
///   `RPLC` parent of the CDA (T10 only). TXA-4 is the CDA `effectiveTime`.
/// - OBX 2 carries the mail body as `^text^^Base64^…`, as the ANS example does; an empty body is
///   sent as one empty line (CRLF) because an ED without data is invalid.
pub fn build_mdm(input: &MdmInput<'_>) -> Result<String, MdmError> {
    let d = Delimiters::default();
    let e = |s: &str| escape(s.trim(), &d);
    check_control_id(input.control_id)?;
    if !is_hl7_timestamp(input.timestamp) {
        return Err(MdmError::Input {
            what: "the message timestamp",
            reason: "expected YYYYMMDDHHMMSS with an optional +ZZZZ offset".into(),
        });
    }
    if input.cda.is_empty() {
        return Err(MdmError::Input {
            what: "the CDA document",
            reason: "it is empty".into(),
        });
    }
    let h = input.header;
    let doc_id = h
        .id
        .as_ref()
        .filter(|i| i.root.as_deref().is_some_and(|r| !r.trim().is_empty()))
        .ok_or_else(|| incomplete("ClinicalDocument/id", "TXA-12 needs the document id: the CDA should have been refused by the header checks"))?;
    let code = h
        .code
        .as_ref()
        .filter(|c| c.code.as_deref().is_some_and(|c| !c.trim().is_empty()))
        .ok_or_else(|| {
            incomplete(
                "ClinicalDocument/code",
                "OBR-4 and TXA-2 need the document type code",
            )
        })?;
    let patient = h.patient.as_ref().ok_or_else(|| {
        incomplete(
            "recordTarget/patientRole",
            "PID needs the patient of the CDA",
        )
    })?;
    let mail = input.mail;
    if mail.message_id.trim().is_empty() {
        return Err(incomplete(
            "the mail's Message-ID",
            "OBX 2 (OBX-3.1) identifies the mail by it",
        ));
    }
    if mail.sender.trim().is_empty() {
        return Err(incomplete(
            "the mail's sender address",
            "the PRT `SB` segment requires it (PRT-15.4)",
        ));
    }
    let parent = match input.event {
        MdmEvent::Replace => Some(
            h.related_documents
                .iter()
                .filter(|r| r.is_replacement())
                .find_map(|r| r.parent_id.clone())
                .filter(|i| i.root.is_some())
                .ok_or_else(|| {
                    incomplete(
                        "relatedDocument[@typeCode='RPLC']/parentDocument/id",
                        "a T10 replacement names the replaced document in TXA-13; send the document as new (T02) instead",
                    )
                })?,
        ),
        _ => None,
    };

    // ---- PID ----
    let mut pid3 = Vec::new();
    let mut has_ins = false;
    for id in &patient.ids {
        let (Some(root), Some(ext)) = (id.root.as_deref(), id.extension.as_deref()) else {
            continue;
        };
        let (root, ext) = (root.trim(), ext.trim());
        if root.is_empty() || ext.is_empty() {
            continue;
        }
        if let Some(kind) = InsKind::from_oid(root) {
            has_ins = true;
            let namespace = match kind {
                InsKind::Nia => "ASIP-SANTE-INS-NIA",
                _ => "ASIP-SANTE-INS-NIR",
            };
            pid3.push(format!("{}^^^{namespace}&{}&ISO^INS", e(ext), e(root)));
        } else if patient.ipps.iter().any(|ipp| ipp == id) {
            pid3.push(format!("{}^^^&{}&ISO^PI", e(ext), e(root)));
        }
    }
    if pid3.is_empty() {
        return Err(incomplete(
            "a patient identifier (INS or IPP)",
            "PID-3 must repeat the CDA's recordTarget/patientRole/id",
        ));
    }
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(&e)
    };
    let mut pid5 = Vec::new();
    if let Some(family) = opt(&patient.birth_family) {
        let given = opt(&patient.given_birth_first).unwrap_or_default();
        let list = opt(&patient.birth_given_names).unwrap_or_default();
        pid5.push(format!("{family}^{given}^{list}^^^^L"));
    }
    if let Some(family) = opt(&patient.used_family) {
        let given = opt(&patient.used_given).unwrap_or_default();
        pid5.push(format!("{family}^{given}^^^^^D"));
    }
    if pid5.is_empty()
        && let Some(family) = opt(&patient.unqualified_family)
    {
        let given = opt(&patient.given_birth_first)
            .or_else(|| opt(&patient.used_given))
            .or_else(|| opt(&patient.birth_given_names))
            .unwrap_or_default();
        pid5.push(format!("{family}^{given}^^^^^U"));
    }
    if pid5.is_empty() {
        return Err(incomplete("the patient's name", "PID-5 is required"));
    }
    let birth = patient
        .birth_time
        .as_deref()
        .map(str::trim)
        .filter(|t| is_hl7_timestamp(t))
        .map(&e);
    let sex = opt(&patient.sex);
    let birthplace = opt(&patient.birthplace_insee).map(|c| format!("^^^^^^BDL^^{c}"));
    let mut pid = vec![String::new(); 32];
    pid[2] = pid3.join("~");
    pid[4] = pid5.join("~");
    pid[6] = birth.unwrap_or_default();
    pid[7] = sex.unwrap_or_default();
    pid[10] = birthplace.unwrap_or_default();
    if has_ins {
        pid[31] = "VALI".into();
    }

    // ---- document ----
    let type_code = e(code.code.as_deref().unwrap_or_default());
    let label = e(code.display_name.as_deref().unwrap_or_default());
    let system = e(coding_system_name(
        code.code_system.as_deref().unwrap_or_default(),
    ));
    let coded = format!("{type_code}^{label}^{system}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(input.cda);
    let effective = h
        .effective_time
        .as_deref()
        .map(str::trim)
        .filter(|t| is_hl7_timestamp(t))
        .map(&e);
    let mut txa = vec![String::new(); 17];
    txa[0] = "1".into();
    txa[1] = type_code.clone();
    txa[2] = "TEXT".into();
    txa[3] = effective.unwrap_or_default();
    txa[11] = document_ei(doc_id, &e);
    txa[12] = parent
        .as_ref()
        .map(|p| document_ei(p, &e))
        .unwrap_or_default();
    txa[16] = "AU".into();

    // ---- participants ----
    let mut prts = Vec::new();
    let person = mail
        .sender_person
        .as_ref()
        .filter(|p| !p.id.trim().is_empty())
        .map(|p| {
            format!(
                "{}^{}^{}^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                e(&p.id),
                e(&p.family),
                e(&p.given)
            )
        })
        .unwrap_or_default();
    prts.push(prt("SB^Send by^participation", &person, &e(&mail.sender)));
    for to in mail.recipients.iter().filter(|a| !a.trim().is_empty()) {
        prts.push(prt("RCT^Result Copies To^participation", "", &e(to)));
    }
    for reply in mail.reply_to.iter().filter(|a| !a.trim().is_empty()) {
        prts.push(prt("REPLY^Reply To^participation", "", &e(reply)));
    }

    // ---- mail ----
    let body = if mail.body_text.is_empty() {
        "\r\n"
    } else {
        mail.body_text.as_str()
    };
    let body_b64 = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());

    let ep = input.endpoints;
    let processing = if ep.processing_id.trim().is_empty() {
        "P".to_string()
    } else {
        e(&ep.processing_id)
    };
    let ts = e(input.timestamp);
    let mut segs: Vec<String> = Vec::with_capacity(16 + prts.len());
    segs.push(format!(
        "MSH|^~\\&|{}|{}|{}|{}|{ts}||MDM^{}^MDM_T02|{}|{processing}|2.6|||||FRA|UNICODE UTF-8|||1.1^{}",
        e(&ep.sending_application),
        e(&ep.sending_facility),
        e(&ep.receiving_application),
        e(&ep.receiving_facility),
        input.event.trigger(),
        e(input.control_id),
        relais_hl7::NS_LPS,
    ));
    segs.push(format!("EVN||{ts}"));
    segs.push(format!("PID|{}", trim_trailing(&pid).join("|")));
    segs.push("PV1|1|N".into());
    segs.push(format!("ORC|{}", input.event.order_control()));
    segs.push(format!("OBR|1|||{coded}"));
    segs.push(format!("TXA|{}", trim_trailing(&txa).join("|")));
    segs.push(format!(
        "OBX|1|ED|{coded}||^text^XML^Base64^{b64}||||||{}",
        input.event.result_status()
    ));
    segs.extend(prts);
    segs.push(format!(
        "OBX|2|ED|{}^{}||^text^^Base64^{body_b64}||||||F",
        e(&mail.message_id),
        e(&mail.subject)
    ));
    let meta = input.meta;
    let flags: [(&str, &str, bool); 4] = [
        (
            "MASQUE_PS",
            "Masqué aux professionnels de Santé",
            meta.masque_ps,
        ),
        (
            "INVISIBLE_PATIENT",
            "Document Non Visible par le patient",
            meta.invisible_patient,
        ),
        (
            "INVISIBLE_REP_LEGAUX",
            "Non visible par les représentants Légaux du patient",
            meta.invisible_rep_legaux,
        ),
        (
            "MODIF_CONF_CODE",
            "Modification Confidentiality Code",
            meta.modif_conf_code,
        ),
    ];
    for (i, (code, label, on)) in flags.iter().enumerate() {
        segs.push(format!(
            "OBX|{}|CWE|{code}^{}^MetaDMPMSS||{}^^expandedYes-NoIndicator||||||F",
            i + 3,
            e(label),
            if *on { "Y" } else { "N" }
        ));
    }
    Ok(segs.join("\r"))
}

/// A PRT segment: participation, person (PRT-5, may be empty), mail address (PRT-15.4).
fn prt(participation: &str, person: &str, address: &str) -> String {
    format!("PRT||UC||{participation}|{person}||||||||||^^X.400^{address}")
}

/// TXA-12/13: `extension^^root^ISO`, or the root alone when the id has no extension.
fn document_ei(id: &Ii, e: &dyn Fn(&str) -> String) -> String {
    let root = id.root.as_deref().unwrap_or_default();
    match id
        .extension
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
    {
        Some(ext) => format!("{}^^{}^ISO", e(ext), e(root)),
        None => e(root),
    }
}

/// OBR-4.3 / OBX-3.3: `LN` for LOINC, `TRE_A05` for TRE_A05-TypeDocComplementaire, the OID
/// otherwise.
fn coding_system_name(oid: &str) -> &str {
    match oid.trim() {
        LOINC_OID => "LN",
        TRE_A05_OID => "TRE_A05",
        other => other,
    }
}

/// Drop the empty fields at the end.
fn trim_trailing(fields: &[String]) -> &[String] {
    let end = fields
        .iter()
        .rposition(|f| !f.is_empty())
        .map_or(0, |p| p + 1);
    &fields[..end]
}

fn check_control_id(id: &str) -> Result<(), MdmError> {
    let bad = |reason: &str| MdmError::Input {
        what: "the control id (MSH-10)",
        reason: reason.into(),
    };
    if id.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if id.chars().count() > MAX_CONTROL_ID {
        return Err(bad("it is longer than 199 characters"));
    }
    if id.chars().any(|c| c.is_control() || "|^~\\&".contains(c)) || id.trim() != id {
        return Err(bad(
            "it must be printable, without HL7 delimiters or surrounding spaces",
        ));
    }
    Ok(())
}

/// True for an HL7 DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
pub fn is_hl7_timestamp(v: &str) -> bool {
    let (main, zone) = match v.find(['+', '-']) {
        Some(p) => (&v[..p], Some(&v[p + 1..])),
        None => (v, None),
    };
    if let Some(z) = zone
        && (z.len() != 4 || !z.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let (digits, fraction) = match main.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (main, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&digits.len())
    {
        return false;
    }
    match fraction {
        Some(f) => {
            digits.len() == 14
                && (1..=4).contains(&f.len())
                && f.bytes().all(|b| b.is_ascii_digit())
        }
        None => true,
    }
}

/// Now as an HL7 timestamp in UTC: `YYYYMMDDHHMMSS+0000`.
pub fn hl7_timestamp_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        for ok in [
            "2024",
            "20240306",
            "20240306111154",
            "20240306111154+0100",
            "20240306111154.123-0500",
        ] {
            assert!(is_hl7_timestamp(ok), "{ok}");
        }
        for bad in [
            "",
            "202403061",
            "2024-03-06",
            "20240306111154+01",
            "20240306.1",
            "2024030611115x",
        ] {
            assert!(!is_hl7_timestamp(bad), "{bad}");
        }
        let now = hl7_timestamp_now();
        assert!(is_hl7_timestamp(&now), "{now}");
        assert_eq!(now.len(), 19);
    }

    #[test]
    fn events() {
        assert_eq!(
            [MdmEvent::New, MdmEvent::Replace, MdmEvent::Delete].map(|e| (
                e.trigger(),
                e.order_control(),
                e.result_status()
            )),
            [("T02", "NW", "F"), ("T10", "RO", "C"), ("T04", "CA", "D")]
        );
    }

    #[test]
    fn control_ids() {
        assert!(check_control_id("R17000000000001").is_ok());
        for bad in ["", " x", "a|b", "a^b", "a\rb", &"x".repeat(200)] {
            assert_eq!(
                check_control_id(bad).unwrap_err().code(),
                codes::DPI_MDM_INPUT,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn flags_from_codes() {
        let f = MetaFlags::from_codes(["N", "INVISIBLE_PATIENT", " MASQUE_PS "]);
        assert!(
            f.invisible_patient && f.masque_ps && !f.invisible_rep_legaux && !f.modif_conf_code
        );
    }

    #[test]
    fn coding_systems() {
        assert_eq!(coding_system_name(LOINC_OID), "LN");
        assert_eq!(coding_system_name(TRE_A05_OID), "TRE_A05");
        assert_eq!(coding_system_name("1.2.3"), "1.2.3");
    }
}
