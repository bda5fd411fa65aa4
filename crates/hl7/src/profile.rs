//! Which ANS profile a message follows, and whether it follows it.
//!
//! Sources: ig-lps-mss (MDM v2.6 from the PFI to the LPS, its ACK), ig-trans-cda (ORU^R01 v2.5
//! and MDM v2.6 from a producer to the PFI, the ZAM business acknowledgements), IHE PAM national
//! extension France 2.11 and the CI-SIS INS annex as quoted by those guides (ADT, PID).

use crate::codes;
use crate::ed::{embedded_documents, looks_like_xml};
use crate::message::{INS_OIDS, Message, Segment, sanitize};
use crate::structure::{self, Grammar};
use relais_core::{Finding, Location, RuleCode, Severity};
use serde::Serialize;

/// The message profiles Relais knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// MDM^T02/T10/T04 v2.6 from the PFI to the LPS (DPI/RIS), MSH-21 `1.1^CISIS_CDA_HL7_LPS`.
    MdmToLps,
    /// MDM^T02/T10/T04 v2.6 from a producer to the PFI, MSH-21 `2.1^CISIS_CDA_HL7_V2`.
    MdmFromProducer,
    /// An MDM whose MSH-21 names neither profile: only the checks both share are run.
    MdmUndeclared,
    /// ORU^R01 v2.5 from a producer (lab, RIS) carrying a CDA, MSH-21 `2.1^CISIS_CDA_HL7_V2`.
    OruFromProducer,
    /// ACK of an MDM/ORU/ZAM (MSA, ERR).
    Ack,
    /// ZAM^Z01/Z02/Z03 business acknowledgements (DMP reception, MSSanté reception and reading).
    Zam,
    /// ADT A01/A03/A04/A08/A28/A31/A40 of IHE PAM France.
    AdtPamFr,
    /// Anything else.
    Unknown,
}

impl Profile {
    /// A short human name.
    pub fn label(&self) -> &'static str {
        match self {
            Profile::MdmToLps => "MDM to the LPS (CISIS_CDA_HL7_LPS)",
            Profile::MdmFromProducer => "MDM from a producer (CISIS_CDA_HL7_V2)",
            Profile::MdmUndeclared => "MDM without profile identifier",
            Profile::OruFromProducer => "ORU^R01 from a producer (CISIS_CDA_HL7_V2)",
            Profile::Ack => "ACK",
            Profile::Zam => "ZAM business acknowledgement (CISIS_CDA_HL7_V2)",
            Profile::AdtPamFr => "ADT IHE PAM France",
            Profile::Unknown => "unknown",
        }
    }
}

/// MSH-21 namespace of the LPS profile.
pub const NS_LPS: &str = "CISIS_CDA_HL7_LPS";
/// MSH-21 namespace of the producer profile (ORU/MDM/ZAM).
pub const NS_V2: &str = "CISIS_CDA_HL7_V2";

const ADT_TRIGGERS: [&str; 7] = ["A01", "A03", "A04", "A08", "A28", "A31", "A40"];

/// MetaDMPMSS observations of the LPS MDM, all required, in this order.
const META_LPS: &[&str] = &[
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "MODIF_CONF_CODE",
];
/// MetaDMPMSS observations of the producer ORU/MDM, in this order; the first eight are required.
const META_V2: &[&str] = &[
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "CONNEXION_SECRETE",
    "MODIF_CONF_CODE",
    "DESTDMP",
    "DESTMSSANTEPS",
    "DESTMSSANTEPAT",
    "ACK_RECEPTION",
    "ACK_LECTURE_MSS",
    "CORPSMAIL_PS",
    "CORPSMAIL_PATIENT",
];
const META_V2_REQUIRED: usize = 8;

/// Identity reliability codes of PID-32 (PAM-FR, Interop'Santé table 0445).
const PID32_CODES: [&str; 5] = ["VIDE", "PROV", "VALI", "DOUTE", "FICTI"];

/// Which profile the message claims, from MSH-9 and MSH-21.
pub fn detect_profile(msg: &Message) -> Profile {
    let t = msg.message_type();
    let code = t.code.trim().to_ascii_uppercase();
    let trigger = t.trigger.trim().to_ascii_uppercase();
    match code.as_str() {
        "ACK" => Profile::Ack,
        "MDM" if msg.has_profile(NS_LPS) => Profile::MdmToLps,
        "MDM" if msg.has_profile(NS_V2) => Profile::MdmFromProducer,
        "MDM" => Profile::MdmUndeclared,
        "ORU" if trigger == "R01" => Profile::OruFromProducer,
        "ZAM" => Profile::Zam,
        "ADT" if ADT_TRIGGERS.contains(&trigger.as_str()) => Profile::AdtPamFr,
        _ => Profile::Unknown,
    }
}

/// Detect the profile and check the message against it: segment order and cardinality, key
/// fields, ORC/OBX status coherence, MetaDMPMSS observations, INS and PID-32, ED payloads.
pub fn validate_profile(msg: &Message) -> Vec<Finding> {
    let profile = detect_profile(msg);
    let mut ck = Checker {
        msg,
        out: Vec::new(),
    };
    ck.generic_msh();
    match profile {
        Profile::MdmToLps => ck.mdm(Flavor::Lps),
        Profile::MdmFromProducer => ck.mdm(Flavor::Producer),
        Profile::MdmUndeclared => ck.mdm(Flavor::Undeclared),
        Profile::OruFromProducer => ck.oru(),
        Profile::Ack => ck.ack(),
        Profile::Zam => ck.zam(),
        Profile::AdtPamFr => ck.adt(),
        Profile::Unknown => {
            let t = msg.message_type();
            ck.out.push(
                Finding::info(
                    codes::HL7_PROFILE_UNKNOWN,
                    format!(
                        "message type `{}^{}` matches no ANS profile known to Relais; only the header was checked",
                        sanitize(&t.code),
                        sanitize(&t.trigger)
                    ),
                )
                .at(Location::Hl7Field("MSH[1]-9".into())),
            );
        }
    }
    ck.out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Lps,
    Producer,
    Undeclared,
}

/// What the header of a profile must say.
struct HeaderRule {
    versions: &'static [&'static str],
    version_severity: Severity,
    code: &'static str,
    triggers: &'static [&'static str],
    structure: Option<&'static str>,
    /// MSH-21 namespace, version (EI-1), and severity when missing.
    profile: Option<(&'static str, &'static str, Severity)>,
    /// MSH-17 and MSH-18 required (the ANS guides), not for PAM-FR ADT.
    ans_header: bool,
}

struct Checker<'m> {
    msg: &'m Message,
    out: Vec<Finding>,
}

impl<'m> Checker<'m> {
    fn push(&mut self, severity: Severity, code: RuleCode, loc: String, text: String) {
        let f = match severity {
            Severity::Error => Finding::error(code, text),
            Severity::Warning => Finding::warning(code, text),
            Severity::Info => Finding::info(code, text),
        };
        self.out.push(f.at(Location::Hl7Field(loc)));
    }

    fn err(&mut self, code: RuleCode, loc: String, text: String) {
        self.push(Severity::Error, code, loc, text);
    }

    fn warn(&mut self, code: RuleCode, loc: String, text: String) {
        self.push(Severity::Warning, code, loc, text);
    }

    /// Field `n` (component `c` when given) must be filled; returns its value.
    fn require(
        &mut self,
        seg: &Segment<'_>,
        n: usize,
        c: Option<usize>,
        what: &str,
        severity: Severity,
    ) -> Option<String> {
        let (value, loc) = match c {
            Some(c) => (seg.component_value(n, c), seg.location_component(n, c)),
            None => (seg.value(n), seg.location(n)),
        };
        let value = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if value.is_none() {
            self.push(
                severity,
                codes::HL7_FIELD_MISSING,
                loc.clone(),
                format!("{loc} ({what}) is required and empty"),
            );
        }
        value
    }

    /// When filled, the value must be one of `allowed` (case-sensitive).
    fn one_of(
        &mut self,
        loc: String,
        value: Option<&str>,
        allowed: &[&str],
        what: &str,
        severity: Severity,
    ) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.push(
                severity,
                codes::HL7_FIELD_VALUE,
                loc.clone(),
                format!(
                    "{loc} ({what}) is `{}`; expected {}",
                    sanitize(v),
                    allowed.join(" or ")
                ),
            );
        }
    }

    fn segment(&self, name: &str) -> Option<Segment<'m>> {
        self.msg.segment(name, 1)
    }

    // ---- header --------------------------------------------------------------------------

    /// Checks every message gets, whatever its profile.
    fn generic_msh(&mut self) {
        let msh = self.msg.msh();
        let d = self.msg.delimiters();
        if !d.is_standard() {
            self.warn(
                codes::HL7_DELIMITERS_NONSTANDARD,
                "MSH[1]-2".into(),
                format!(
                    "delimiters are `{}{}`; the ANS guides require `|^~\\&`",
                    d.field,
                    d.encoding_characters()
                ),
            );
        }
        if self.msg.encoding_mismatch() {
            self.warn(
                codes::HL7_ENCODING_MISMATCH,
                "MSH[1]-18".into(),
                format!(
                    "MSH-18 declares `{}` but the message is UTF-8; it was read as UTF-8. Fix MSH-18 at the sender (`UNICODE UTF-8`)",
                    sanitize(self.msg.declared_charset())
                ),
            );
        }
        self.require(&msh, 9, Some(1), "message code", Severity::Error);
        self.require(&msh, 10, None, "message control id", Severity::Error);
        if let Some(p) = self.require(&msh, 11, Some(1), "processing id", Severity::Error) {
            self.one_of(
                msh.location_component(11, 1),
                Some(&p),
                &["P", "T", "D"],
                "processing id",
                Severity::Error,
            );
        }
        self.require(&msh, 12, Some(1), "HL7 version", Severity::Error);
    }

    fn header(&mut self, rule: &HeaderRule) {
        let msh = self.msg.msh();
        for (n, what) in [
            (3, "sending application"),
            (4, "sending facility"),
            (5, "receiving application"),
            (6, "receiving facility"),
            (7, "date/time of message"),
        ] {
            self.require(&msh, n, None, what, Severity::Error);
        }
        let t = self.msg.message_type();
        if !t.code.is_empty() && t.code != rule.code {
            self.err(
                codes::HL7_FIELD_VALUE,
                "MSH[1]-9.1".into(),
                format!(
                    "MSH-9.1 is `{}`; the profile expects `{}`",
                    sanitize(&t.code),
                    rule.code
                ),
            );
        }
        if !rule.triggers.is_empty() {
            match self.require(&msh, 9, Some(2), "trigger event", Severity::Error) {
                Some(tr) if !rule.triggers.contains(&tr.as_str()) => self.err(
                    codes::HL7_FIELD_VALUE,
                    "MSH[1]-9.2".into(),
                    format!(
                        "trigger event `{}` is not one the profile defines ({})",
                        sanitize(&tr),
                        rule.triggers.join(", ")
                    ),
                ),
                _ => {}
            }
        }
        if let Some(structure) = rule.structure {
            let sev = if rule.ans_header {
                Severity::Error
            } else {
                Severity::Warning
            };
            if let Some(s) = self.require(&msh, 9, Some(3), "message structure", sev)
                && s != structure
            {
                self.push(
                    sev,
                    codes::HL7_FIELD_VALUE,
                    "MSH[1]-9.3".into(),
                    format!(
                        "message structure is `{}`; the profile expects `{structure}`",
                        sanitize(&s)
                    ),
                );
            }
        }
        let version = self.msg.version();
        if !version.is_empty() && !rule.versions.contains(&version.trim()) {
            self.push(
                rule.version_severity,
                codes::HL7_VERSION,
                "MSH[1]-12".into(),
                format!(
                    "HL7 version is `{}`; the profile requires {}",
                    sanitize(&version),
                    rule.versions.join(" or ")
                ),
            );
        }
        if rule.ans_header {
            if let Some(country) = self.require(&msh, 17, None, "country code", Severity::Error) {
                self.one_of(
                    msh.location_component(17, 1),
                    Some(&country),
                    &["FRA"],
                    "country code",
                    Severity::Warning,
                );
            }
            if let Some(charset) = self.require(&msh, 18, None, "character set", Severity::Error) {
                self.one_of(
                    msh.location_component(18, 1),
                    Some(&charset),
                    &["UNICODE UTF-8", "8859/15"],
                    "character set",
                    Severity::Warning,
                );
            }
        }
        if let Some((ns, version, severity)) = rule.profile {
            let ids = self.msg.profile_ids();
            match ids.iter().find(|p| p.namespace_id.trim() == ns) {
                None => self.push(
                    severity,
                    codes::HL7_MSH21_MISSING,
                    "MSH[1]-21".into(),
                    format!("MSH-21 does not declare the profile: expected `{version}^{ns}`"),
                ),
                Some(p) => {
                    if p.namespace_id != ns || p.entity_id.trim() != p.entity_id {
                        self.warn(codes::HL7_FIELD_VALUE, "MSH[1]-21".into(), format!("MSH-21 `{ns}` is written with surrounding spaces; strict receivers will not recognise it"));
                    }
                    if !version.is_empty() && p.entity_id.trim() != version {
                        self.warn(
                            codes::HL7_FIELD_VALUE,
                            "MSH[1]-21.1".into(),
                            format!(
                                "MSH-21.1 is `{}`; this version of the volet expects `{version}`",
                                sanitize(&p.entity_id)
                            ),
                        );
                    }
                }
            }
        }
    }

    fn structure(&mut self, g: &Grammar) {
        structure::check(self.msg, g, &mut self.out);
    }

    // ---- PID / PV1 -----------------------------------------------------------------------

    fn pid(&mut self, pid32_expected: bool) {
        let Some(pid) = self.segment("PID") else {
            return;
        };
        self.require(&pid, 3, None, "patient identifiers", Severity::Error);
        self.require(&pid, 5, None, "patient name", Severity::Error);
        let mut has_ins = false;
        if let Some(f) = pid.field(3) {
            for (i, rep) in f.repetitions().enumerate().filter(|(_, r)| !r.is_empty()) {
                let loc = format!("{}~{}", pid.location(3), i + 1);
                let id = rep.component_value(1);
                let authority = rep
                    .component(4)
                    .map(|c| c.subcomponent(2).unwrap_or_default())
                    .unwrap_or_default();
                let id_type = rep.component_value(5);
                if id.trim().is_empty() {
                    self.err(
                        codes::HL7_FIELD_MISSING,
                        loc.clone(),
                        format!("{loc}: CX-1 (the identifier) is empty"),
                    );
                }
                if rep.component_value(4).is_empty() && authority.is_empty() {
                    self.warn(
                        codes::HL7_FIELD_MISSING,
                        loc.clone(),
                        format!("{loc}: CX-4 (assigning authority) is empty; PAM-FR requires it"),
                    );
                }
                if id_type.is_empty() {
                    self.warn(
                        codes::HL7_FIELD_MISSING,
                        loc.clone(),
                        format!("{loc}: CX-5 (identifier type) is empty; PAM-FR requires it"),
                    );
                }
                let ins_oid = INS_OIDS.contains(&authority.as_str());
                if id_type == "INS" || ins_oid {
                    has_ins = true;
                    if !ins_oid {
                        self.err(
                            codes::HL7_FIELD_VALUE,
                            loc.clone(),
                            format!("{loc}: an INS must be assigned by an INS authority OID ({}), CX-4.2 is not one", INS_OIDS.join(", ")),
                        );
                    }
                    if id_type != "INS" {
                        self.warn(codes::HL7_FIELD_VALUE, loc.clone(), format!("{loc}: the identifier type of an INS is `INS` (PAM-FR 2.11), found `{}`", sanitize(&id_type)));
                    }
                    if let Err(why) = check_nir(id.trim()) {
                        self.err(
                            codes::HL7_INS_INVALID,
                            loc.clone(),
                            format!("{loc}: the INS is malformed: {why}"),
                        );
                    }
                }
            }
        }
        let reliability = pid.component_value(32, 1);
        if has_ins {
            self.require(&pid, 7, None, "birth date, an INS trait", Severity::Error);
            self.require(
                &pid,
                8,
                None,
                "administrative sex, an INS trait",
                Severity::Error,
            );
        }
        match reliability.as_deref() {
            None if has_ins => self.err(
                codes::HL7_FIELD_MISSING,
                pid.location(32),
                "PID-32 (identity reliability) is empty while PID-3 carries an INS; an INS may only be sent for a qualified identity (`VALI`)".into(),
            ),
            None if pid32_expected => self.warn(codes::HL7_FIELD_MISSING, pid.location(32), "PID-32 (identity reliability) is empty; PAM-FR expects VIDE, PROV, VALI, DOUTE or FICTI".into()),
            None => {}
            Some(r) => {
                self.one_of(pid.location_component(32, 1), Some(r), &PID32_CODES, "identity reliability", Severity::Warning);
                if has_ins && r != "VALI" {
                    self.err(
                        codes::HL7_INS_UNQUALIFIED,
                        pid.location(32),
                        format!("PID-3 carries an INS but PID-32 is `{}`: the INS may only be sent for a qualified identity (`VALI`); send it without the INS or qualify the identity", sanitize(r)),
                    );
                }
            }
        }
    }

    fn pv1(&mut self, lps: bool) {
        let Some(pv1) = self.segment("PV1") else {
            return;
        };
        let Some(class) = self.require(&pv1, 2, None, "patient class", Severity::Error) else {
            return;
        };
        if lps {
            self.one_of(
                pv1.location_component(2, 1),
                Some(&class),
                &["N"],
                "patient class",
                Severity::Error,
            );
        } else if ["E", "I", "O", "R"].contains(&class.as_str()) {
            self.require(
                &pv1,
                19,
                None,
                "visit number, required when PV1-2 is E, I, O or R",
                Severity::Error,
            );
        }
    }

    // ---- MDM / ORU -----------------------------------------------------------------------

    fn mdm(&mut self, flavor: Flavor) {
        let profile = match flavor {
            Flavor::Lps => Some((NS_LPS, "1.1", Severity::Error)),
            Flavor::Producer => Some((NS_V2, "2.1", Severity::Error)),
            Flavor::Undeclared => None,
        };
        self.header(&HeaderRule {
            versions: &["2.6"],
            version_severity: Severity::Error,
            code: "MDM",
            triggers: &["T02", "T10", "T04"],
            structure: Some("MDM_T02"),
            profile,
            ans_header: true,
        });
        if flavor == Flavor::Undeclared {
            self.err(
                codes::HL7_MSH21_MISSING,
                "MSH[1]-21".into(),
                format!("MSH-21 names neither `1.1^{NS_LPS}` (PFI to LPS) nor `2.1^{NS_V2}` (producer to PFI); only the checks both profiles share were run"),
            );
        }
        self.structure(&structure::MDM);
        self.pid(false);
        self.pv1(flavor == Flavor::Lps);
        let trigger = self.msg.message_type().trigger;
        let orc1 = self.orc();
        if let (Some(orc1), Some(expected)) = (orc1.as_deref(), orc_for_trigger(&trigger))
            && orc1 != expected
        {
            self.err(
                codes::HL7_ORC_OBX_STATUS,
                "ORC[1]-1".into(),
                format!(
                    "ORC-1 is `{}` but the trigger event {} requires `{expected}` (T02 NW, T10 RO, T04 CA)",
                    sanitize(orc1),
                    sanitize(&trigger)
                ),
            );
        }
        let obr_code = self.obr();
        self.txa(&trigger);
        let doc = self.document_obx(obr_code.as_deref(), "text");
        if let (Some(doc), Some(orc1)) = (doc, orc1.as_deref()) {
            self.status_coherence(&doc, orc1);
        }
        if flavor == Flavor::Lps {
            self.lps_mail_obx();
        }
        self.prts(flavor);
        match flavor {
            Flavor::Lps => self.metadata(META_LPS, META_LPS.len(), "CWE"),
            Flavor::Producer => self.metadata(META_V2, META_V2_REQUIRED, "CWE"),
            Flavor::Undeclared => self.metadata(META_V2, 0, "CWE"),
        }
        self.document_count(1);
        self.embedded();
    }

    fn oru(&mut self) {
        self.header(&HeaderRule {
            versions: &["2.5"],
            version_severity: Severity::Error,
            code: "ORU",
            triggers: &["R01"],
            structure: Some("ORU_R01"),
            profile: Some((NS_V2, "2.1", Severity::Error)),
            ans_header: true,
        });
        self.structure(&structure::ORU);
        self.pid(false);
        self.pv1(false);
        self.orc();
        let obr_code = self.obr();
        self.document_obx(obr_code.as_deref(), "TEXT");
        // Every document OBX must agree with the ORC of its order group.
        let mut orc1: Option<String> = None;
        for seg in self.msg.segments() {
            match seg.name() {
                "ORC" => orc1 = seg.component_value(1, 1),
                "OBX" if is_document_obx(&seg) => {
                    if let Some(o) = orc1.clone() {
                        self.status_coherence(&seg, &o);
                    }
                }
                _ => {}
            }
        }
        self.prts(Flavor::Producer);
        self.metadata(META_V2, META_V2_REQUIRED, "CE");
        self.document_count(2);
        self.embedded();
    }

    /// ORC-1 (first ORC): required, NW/RO/CA.
    fn orc(&mut self) -> Option<String> {
        let orc = self.segment("ORC")?;
        let v = self.require(&orc, 1, Some(1), "order control", Severity::Error)?;
        self.one_of(
            orc.location_component(1, 1),
            Some(&v),
            &["NW", "RO", "CA"],
            "order control",
            Severity::Error,
        );
        Some(v)
    }

    /// OBR-4.1 (document type code), required; returned.
    fn obr(&mut self) -> Option<String> {
        let obr = self.segment("OBR")?;
        self.require(
            &obr,
            4,
            Some(1),
            "document type code (JDV_J07-XdsTypeCode-CISIS)",
            Severity::Error,
        )
    }

    fn txa(&mut self, trigger: &str) {
        let Some(txa) = self.segment("TXA") else {
            return;
        };
        if let Some(v) = txa.value(1)
            && v.trim() != "1"
        {
            self.warn(
                codes::HL7_FIELD_VALUE,
                txa.location(1),
                "TXA-1 (set id) must be 1".into(),
            );
        }
        self.require(&txa, 2, None, "document type", Severity::Error);
        if let Some(p) = self.require(
            &txa,
            3,
            None,
            "document content presentation",
            Severity::Error,
        ) {
            self.one_of(
                txa.location_component(3, 1),
                Some(&p),
                &["TEXT"],
                "document content presentation",
                Severity::Error,
            );
        }
        let unique = self.require(&txa, 12, Some(1), "unique document number", Severity::Error);
        self.ei_form(&txa, 12);
        let parent = txa.component_value(13, 1);
        if trigger == "T10" {
            self.require(
                &txa,
                13,
                Some(1),
                "parent document number, required to replace (T10)",
                Severity::Error,
            );
        }
        if parent.is_some() {
            self.ei_form(&txa, 13);
        }
        if let (Some(u), Some(p)) = (&unique, &parent)
            && txa.field(12).map(|f| f.raw()) == txa.field(13).map(|f| f.raw())
            && u == p
        {
            self.err(
                codes::HL7_FIELD_VALUE,
                txa.location(13),
                "TXA-13 (replaced document) equals TXA-12: a document cannot replace itself".into(),
            );
        }
        self.require(
            &txa,
            17,
            None,
            "document completion status",
            Severity::Error,
        );
    }

    /// TXA-12/13 as the guides populate them: `ext^^root^ISO`, or the root alone.
    fn ei_form(&mut self, txa: &Segment<'_>, n: usize) {
        if txa.component_value(n, 2).is_some() {
            self.warn(
                codes::HL7_FIELD_VALUE,
                txa.location_component(n, 2),
                format!("TXA-{n}.2 should be empty: the guides write `extension^^root^ISO`, or the root OID alone"),
            );
        }
        if txa.component_value(n, 3).is_some()
            && txa.component_value(n, 4).as_deref() != Some("ISO")
        {
            self.warn(
                codes::HL7_FIELD_VALUE,
                txa.location_component(n, 4),
                format!("TXA-{n}.4 must be `ISO` when TXA-{n}.3 holds the root OID"),
            );
        }
    }

    /// The first OBX carries the document (ED, text/XML, Base64); returned when present.
    fn document_obx(&mut self, obr_code: Option<&str>, ed_type: &str) -> Option<Segment<'m>> {
        let obx = self.segment("OBX")?;
        if obx.value(1).is_some_and(|v| v.trim() != "1") {
            self.warn(
                codes::HL7_FIELD_VALUE,
                obx.location(1),
                "OBX-1 (set id) of the document must be 1".into(),
            );
        }
        let vt = self.require(&obx, 2, None, "value type", Severity::Error);
        if vt.as_deref() != Some("ED") {
            if vt.is_some() {
                self.err(
                    codes::HL7_FIELD_VALUE,
                    obx.location(2),
                    "the first OBX must carry the document as ED (encapsulated data)".into(),
                );
            }
            return None;
        }
        let code = self.require(&obx, 3, Some(1), "document type code", Severity::Error);
        if let (Some(code), Some(obr)) = (code.as_deref(), obr_code)
            && code != obr
        {
            self.err(
                codes::HL7_FIELD_VALUE,
                obx.location_component(3, 1),
                format!(
                    "OBX-3.1 `{}` differs from OBR-4.1 `{}`; the guides require OBX-3 = OBR-4",
                    sanitize(code),
                    sanitize(obr)
                ),
            );
        }
        if let Some(t) = self.require(&obx, 5, Some(2), "ED type of data", Severity::Error)
            && t != ed_type
        {
            let sev = if t.eq_ignore_ascii_case(ed_type) {
                Severity::Warning
            } else {
                Severity::Error
            };
            self.push(
                sev,
                codes::HL7_FIELD_VALUE,
                obx.location_component(5, 2),
                format!(
                    "OBX-5.2 is `{}`; the profile expects `{ed_type}`",
                    sanitize(&t)
                ),
            );
        }
        if let Some(s) = self.require(&obx, 5, Some(3), "ED data subtype", Severity::Error) {
            self.one_of(
                obx.location_component(5, 3),
                Some(&s),
                &["XML"],
                "ED data subtype of a CDA",
                Severity::Error,
            );
        }
        if let Some(e) = self.require(&obx, 5, Some(4), "ED encoding", Severity::Error) {
            self.one_of(
                obx.location_component(5, 4),
                Some(&e),
                &["Base64"],
                "ED encoding",
                Severity::Error,
            );
        }
        self.require(
            &obx,
            11,
            None,
            "observation result status (document status)",
            Severity::Error,
        );
        Some(obx)
    }

    /// ORC-1 and the document's OBX-11 must agree: NW/F, RO/C, CA/D.
    fn status_coherence(&mut self, obx: &Segment<'_>, orc1: &str) {
        let Some(expected) = obx_status_for_orc(orc1) else {
            return;
        };
        let Some(status) = obx.component_value(11, 1) else {
            return;
        };
        if status != expected {
            self.err(
                codes::HL7_ORC_OBX_STATUS,
                obx.location(11),
                format!("OBX-11 is `{}` but ORC-1 `{}` requires `{expected}` (NW F, RO C, CA D); the PFI rejects incoherent requests", sanitize(&status), sanitize(orc1)),
            );
        }
    }

    /// LPS: OBX 2 carries the MSSanté mail (ED, OBX-3.1 = Message-ID, OBX-11 F).
    fn lps_mail_obx(&mut self) {
        let Some(obx) = self.msg.segment("OBX", 2) else {
            self.err(
                codes::HL7_SEGMENT_MISSING,
                "OBX".into(),
                "the second OBX, carrying the MSSanté mail the document came in, is missing".into(),
            );
            return;
        };
        if obx.value(2).as_deref() != Some("ED") {
            self.err(
                codes::HL7_FIELD_VALUE,
                obx.location(2),
                "OBX 2 must carry the MSSanté mail as ED".into(),
            );
            return;
        }
        self.require(
            &obx,
            3,
            Some(1),
            "Message-ID of the MSSanté mail",
            Severity::Error,
        );
        if let Some(s) = obx.component_value(11, 1) {
            self.one_of(
                obx.location_component(11, 1),
                Some(&s),
                &["F"],
                "result status of the mail OBX",
                Severity::Warning,
            );
        }
    }

    /// PRT segments: pre-adopted from v2.9, only after the document OBX; SB, RCT, REPLY.
    fn prts(&mut self, flavor: Flavor) {
        let mut after_document = false;
        let mut roles: Vec<String> = Vec::new();
        let mut obx_seen = 0;
        for seg in self.msg.segments() {
            match seg.name() {
                "OBX" => {
                    obx_seen += 1;
                    after_document = obx_seen == 1 || is_document_obx(&seg);
                }
                "PRT" => {
                    if obx_seen > 0 && !after_document {
                        self.warn(codes::HL7_SEGMENT_ORDER, seg.location_prefix(), format!("{} follows an OBX that carries no document; PRT belongs to the document OBX only", seg.location_prefix()));
                    }
                    if let Some(a) = seg.value(2) {
                        self.one_of(
                            seg.location_component(2, 1),
                            Some(&a),
                            &["UC"],
                            "action code",
                            Severity::Warning,
                        );
                    }
                    let role = self.require(
                        &seg,
                        4,
                        Some(1),
                        "participation (SB, RCT or REPLY)",
                        Severity::Error,
                    );
                    if let Some(role) = &role {
                        self.one_of(
                            seg.location_component(4, 1),
                            Some(role),
                            &["SB", "RCT", "REPLY"],
                            "participation",
                            Severity::Error,
                        );
                        roles.push(role.clone());
                    }
                    let sender = role.as_deref() == Some("SB");
                    // ig-lps-mss requires the mail address of every participant; ig-trans-cda
                    // gives none for the sender (the PFI sends from its own mailbox).
                    if flavor == Flavor::Lps || !sender {
                        if let Some(kind) = self.require(
                            &seg,
                            15,
                            Some(3),
                            "telecommunication equipment type",
                            Severity::Error,
                        ) {
                            self.one_of(
                                seg.location_component(15, 3),
                                Some(&kind),
                                &["X.400"],
                                "telecommunication equipment type",
                                Severity::Warning,
                            );
                        }
                        self.require(&seg, 15, Some(4), "mail address", Severity::Error);
                    }
                    if sender
                        && seg.value(5).is_none()
                        && seg.value(8).is_none()
                        && seg.value(10).is_none()
                    {
                        self.warn(
                            codes::HL7_FIELD_MISSING,
                            seg.location(5),
                            format!("{}: the sender is identified by none of PRT-5 (person), PRT-8 (organisation) or PRT-10 (device)", seg.location_prefix()),
                        );
                    }
                }
                _ => {}
            }
        }
        let has = |r: &str| roles.iter().any(|x| x == r);
        match flavor {
            Flavor::Lps => {
                if !has("SB") {
                    self.err(codes::HL7_SEGMENT_MISSING, "PRT".into(), "no PRT with PRT-4 `SB` (sender of the mail) follows the document OBX; the LPS profile requires it".into());
                }
            }
            Flavor::Producer => {
                if self.meta_flag("DESTDMP") == Some(true) && !has("SB") {
                    self.err(codes::HL7_SEGMENT_MISSING, "PRT".into(), "DESTDMP is Y but no PRT `SB` names the sender: the PFI needs it to publish to the DMP".into());
                }
                let to_mss = self.meta_flag("DESTMSSANTEPS") == Some(true)
                    || self.meta_flag("DESTMSSANTEPAT") == Some(true);
                if to_mss && !has("RCT") {
                    self.err(
                        codes::HL7_SEGMENT_MISSING,
                        "PRT".into(),
                        "DESTMSSANTEPS or DESTMSSANTEPAT is Y but no PRT `RCT` names a recipient"
                            .into(),
                    );
                }
            }
            Flavor::Undeclared => {}
        }
    }

    /// The Y/N value of a MetaDMPMSS observation, when present.
    fn meta_flag(&self, code: &str) -> Option<bool> {
        self.msg
            .segments_named("OBX")
            .find(|o| {
                o.component_value(3, 1).as_deref() == Some(code)
                    && o.component_value(3, 3).as_deref() == Some("MetaDMPMSS")
            })
            .and_then(|o| o.component_value(5, 1))
            .map(|v| v == "Y")
    }

    /// MetaDMPMSS observations: the required ones present, all in the fixed order, Y/N values.
    fn metadata(&mut self, order: &[&str], required: usize, coded_type: &str) {
        let mut found: Vec<(usize, String)> = Vec::new();
        for obx in self.msg.segments_named("OBX") {
            if obx.component_value(3, 3).as_deref() != Some("MetaDMPMSS") {
                continue;
            }
            let code = obx.component_value(3, 1).unwrap_or_default();
            let Some(rank) = META_V2.iter().position(|c| *c == code) else {
                self.warn(
                    codes::HL7_FIELD_VALUE,
                    obx.location_component(3, 1),
                    format!("`{}` is not in the MetaDMPMSS table", sanitize(&code)),
                );
                continue;
            };
            let text_meta = code.starts_with("CORPSMAIL");
            let vt = obx.value(2).unwrap_or_default();
            if text_meta {
                if vt != "ED" {
                    self.err(
                        codes::HL7_FIELD_VALUE,
                        obx.location(2),
                        format!("{code} must be an ED value (a base64 mail body)"),
                    );
                }
            } else {
                if vt != coded_type && vt != "CWE" && vt != "CE" {
                    self.err(
                        codes::HL7_FIELD_VALUE,
                        obx.location(2),
                        format!("{code} must be a coded value ({coded_type})"),
                    );
                } else if vt != coded_type {
                    self.warn(
                        codes::HL7_FIELD_VALUE,
                        obx.location(2),
                        format!("{code} is typed {vt}; this message type uses {coded_type}"),
                    );
                }
                match obx.component_value(5, 1) {
                    None => self.err(
                        codes::HL7_FIELD_MISSING,
                        obx.location_component(5, 1),
                        format!("{code} has no Y/N value"),
                    ),
                    Some(v) => self.one_of(
                        obx.location_component(5, 1),
                        Some(&v),
                        &["Y", "N"],
                        "MetaDMPMSS flag (HL7 table 0136)",
                        Severity::Error,
                    ),
                }
            }
            if let Some(s) = obx.component_value(11, 1) {
                self.one_of(
                    obx.location_component(11, 1),
                    Some(&s),
                    &["F"],
                    "result status of a metadata OBX",
                    Severity::Warning,
                );
            }
            if !order.contains(&code.as_str()) {
                self.warn(
                    codes::HL7_FIELD_VALUE,
                    obx.location_component(3, 1),
                    format!("{code} is not used by this profile"),
                );
                continue;
            }
            if let Some((last_rank, last_code)) = found.last()
                && rank < *last_rank
            {
                let text = format!(
                    "{code} comes after {last_code}; the guides fix the order of the MetaDMPMSS observations"
                );
                self.err(
                    codes::HL7_METADATA_ORDER,
                    obx.location_component(3, 1),
                    text,
                );
            }
            found.push((rank, code));
        }
        for code in &order[..required.min(order.len())] {
            if !found.iter().any(|(_, c)| c == code) {
                self.err(
                    codes::HL7_METADATA_MISSING,
                    "OBX".into(),
                    format!("the MetaDMPMSS observation {code} is required and absent"),
                );
            }
        }
    }

    /// At most `max` OBX carrying a CDA (ED with subtype XML outside MetaDMPMSS).
    fn document_count(&mut self, max: usize) {
        let docs: Vec<Segment<'m>> = self
            .msg
            .segments_named("OBX")
            .filter(|o| is_document_obx(o))
            .collect();
        if docs.len() > max {
            self.err(
                codes::HL7_FIELD_VALUE,
                docs[max].location(5),
                format!(
                    "{} OBX carry a CDA document; this message type carries at most {max}",
                    docs.len()
                ),
            );
        }
    }

    /// ED payloads: decoding errors, padding warnings, XML that is not XML.
    fn embedded(&mut self) {
        for doc in embedded_documents(self.msg) {
            self.out.extend(doc.warnings.iter().cloned());
            match &doc.data {
                Err(f) => self.out.push(f.clone()),
                Ok(bytes) if doc.is_xml() && !looks_like_xml(bytes) => self.warn(
                    codes::HL7_ED_NOT_XML,
                    doc.location.clone(),
                    format!("{} declares XML (ED-3) but its decoded content does not start like an XML document", doc.location),
                ),
                Ok(_) => {}
            }
        }
    }

    // ---- ACK / ZAM -----------------------------------------------------------------------

    fn ack(&mut self) {
        self.header(&HeaderRule {
            versions: &["2.5", "2.6"],
            version_severity: Severity::Warning,
            code: "ACK",
            triggers: &[],
            structure: Some("ACK"),
            profile: None,
            ans_header: false,
        });
        self.structure(&structure::ACK);
        let Some(msa) = self.segment("MSA") else {
            return;
        };
        let code = self.require(&msa, 1, None, "acknowledgment code", Severity::Error);
        self.one_of(
            msa.location_component(1, 1),
            code.as_deref(),
            &["AA", "AE", "AR", "CA", "CE", "CR"],
            "acknowledgment code",
            Severity::Error,
        );
        self.require(
            &msa,
            2,
            None,
            "control id of the acknowledged message",
            Severity::Error,
        );
        let has_err = self.segment("ERR").is_some();
        if matches!(code.as_deref(), Some("AE" | "AR" | "CE" | "CR")) && !has_err {
            self.warn(codes::HL7_SEGMENT_MISSING, "ERR".into(), "a negative acknowledgement should carry an ERR segment saying why (ERR-3, and ERR-5 for application errors)".into());
        }
        let errs: Vec<Segment<'m>> = self.msg.segments_named("ERR").collect();
        for err in errs {
            self.err_segment(&err);
        }
    }

    fn err_segment(&mut self, err: &Segment<'_>) {
        let code = self.require(
            err,
            3,
            Some(1),
            "HL7 error code (table 0357)",
            Severity::Error,
        );
        self.require(err, 4, None, "error severity (table 0516)", Severity::Error);
        if code.as_deref() == Some("207") {
            self.require(
                err,
                5,
                Some(1),
                "application error code, required with 207",
                Severity::Error,
            );
        }
    }

    fn zam(&mut self) {
        self.header(&HeaderRule {
            versions: &["2.6"],
            version_severity: Severity::Error,
            code: "ZAM",
            triggers: &["Z01", "Z02", "Z03"],
            structure: Some("ZAM_Z01"),
            profile: Some((NS_V2, "2.1", Severity::Error)),
            ans_header: true,
        });
        self.structure(&structure::ZAM);
        let trigger = self.msg.message_type().trigger;
        let (status_code, second) = match trigger.as_str() {
            "Z01" => ("ACK_RECEPTION_DMP", None),
            "Z02" => ("ACK_RECEPTION_MSS", Some("DESTINATAIRE_MSS")),
            "Z03" => ("ACK_LECTURE_MSS", Some("LECTEUR_MSS")),
            _ => return,
        };
        let Some(obx) = self.segment("OBX") else {
            return;
        };
        if let Some(vt) = self.require(&obx, 2, None, "value type", Severity::Error) {
            self.one_of(
                obx.location_component(2, 1),
                Some(&vt),
                &["CWE"],
                "value type",
                Severity::Error,
            );
        }
        if let Some(code) = self.require(
            &obx,
            3,
            Some(1),
            "acknowledgement kind (AckMetierZAM)",
            Severity::Error,
        ) {
            self.one_of(
                obx.location_component(3, 1),
                Some(&code),
                &[status_code],
                "acknowledgement kind for this trigger",
                Severity::Error,
            );
        }
        self.require(
            &obx,
            4,
            None,
            "control id of the ORU/MDM acknowledged",
            Severity::Error,
        );
        let status = self.require(
            &obx,
            5,
            Some(1),
            "acknowledgement status (Y/N)",
            Severity::Error,
        );
        self.one_of(
            obx.location_component(5, 1),
            status.as_deref(),
            &["Y", "N"],
            "acknowledgement status",
            Severity::Error,
        );
        if let Some(s) = obx.component_value(11, 1) {
            self.one_of(
                obx.location_component(11, 1),
                Some(&s),
                &["F"],
                "result status",
                Severity::Warning,
            );
        }
        if let Some(second) = second {
            match self.msg.segment("OBX", 2) {
                None => self.err(
                    codes::HL7_SEGMENT_MISSING,
                    "OBX".into(),
                    format!("the second OBX ({second}, the mail address concerned) is missing"),
                ),
                Some(obx2) => {
                    if let Some(vt) = self.require(&obx2, 2, None, "value type", Severity::Error) {
                        self.one_of(
                            obx2.location_component(2, 1),
                            Some(&vt),
                            &["XTN"],
                            "value type",
                            Severity::Error,
                        );
                    }
                    if let Some(code) =
                        self.require(&obx2, 3, Some(1), "observation identifier", Severity::Error)
                    {
                        self.one_of(
                            obx2.location_component(3, 1),
                            Some(&code),
                            &[second],
                            "observation identifier",
                            Severity::Error,
                        );
                    }
                    if let Some(kind) = obx2.component_value(5, 3) {
                        self.one_of(
                            obx2.location_component(5, 3),
                            Some(&kind),
                            &["X.400"],
                            "telecommunication equipment type",
                            Severity::Warning,
                        );
                    }
                    self.require(&obx2, 5, Some(4), "mail address", Severity::Error);
                }
            }
        }
        if status.as_deref() == Some("N") {
            match self.segment("ERR") {
                None => self.err(
                    codes::HL7_SEGMENT_MISSING,
                    "ERR".into(),
                    "the acknowledgement status is N: an ERR segment must say why".into(),
                ),
                Some(err) => self.err_segment(&err),
            }
        }
    }

    // ---- ADT -----------------------------------------------------------------------------

    fn adt(&mut self) {
        self.header(&HeaderRule {
            versions: &["2.5"],
            version_severity: Severity::Error,
            code: "ADT",
            triggers: &ADT_TRIGGERS,
            structure: None,
            profile: None,
            ans_header: false,
        });
        let pam = self.msg.profile_ids().iter().any(|p| {
            let ns = p.namespace_id.trim();
            ns.starts_with("IHE_FRANCE") && ns.ends_with("PAM")
        });
        if !pam {
            self.warn(
                codes::HL7_MSH21_MISSING,
                "MSH[1]-21".into(),
                "MSH-21 does not declare IHE PAM France (e.g. `2.11^IHE_FRANCE-2.11-PAM`); checked as PAM-FR from MSH-9".into(),
            );
        }
        let trigger = self.msg.message_type().trigger;
        if trigger == "A40" {
            self.structure(&structure::ADT_MERGE);
            let mrgs: Vec<Segment<'m>> = self.msg.segments_named("MRG").collect();
            for mrg in mrgs {
                self.require(
                    &mrg,
                    1,
                    None,
                    "prior patient identifier list",
                    Severity::Error,
                );
            }
        } else {
            self.structure(&structure::ADT_VISIT);
            if let Some(pv1) = self.segment("PV1") {
                self.require(&pv1, 2, None, "patient class", Severity::Error);
            }
        }
        self.pid(true);
    }
}

/// T02 NW, T10 RO, T04 CA.
fn orc_for_trigger(trigger: &str) -> Option<&'static str> {
    match trigger {
        "T02" => Some("NW"),
        "T10" => Some("RO"),
        "T04" => Some("CA"),
        _ => None,
    }
}

/// NW F, RO C, CA D.
fn obx_status_for_orc(orc1: &str) -> Option<&'static str> {
    match orc1 {
        "NW" => Some("F"),
        "RO" => Some("C"),
        "CA" => Some("D"),
        _ => None,
    }
}

/// An OBX carrying a CDA: ED, subtype XML, not a MetaDMPMSS observation.
fn is_document_obx(obx: &Segment<'_>) -> bool {
    obx.value(2).as_deref() == Some("ED")
        && obx
            .component_value(5, 3)
            .is_some_and(|s| s.eq_ignore_ascii_case("XML"))
        && obx.component_value(3, 3).as_deref() != Some("MetaDMPMSS")
}

/// Check the form of an INS matricule (NIR/NIA): 15 characters, 13 digits (`2A`/`2B` allowed
/// for Corsican birthplaces) and a control key equal to 97 − (number mod 97).
/// The error never contains the value.
pub(crate) fn check_nir(v: &str) -> Result<(), String> {
    if v.len() != 15 || !v.is_ascii() {
        return Err(format!(
            "it must be 15 characters, found {}",
            v.chars().count()
        ));
    }
    let (body, key) = v.split_at(13);
    let corsica = match &body[5..7] {
        "2A" => Some(19),
        "2B" => Some(18),
        _ => None,
    };
    let digits: String = match corsica {
        Some(_) => format!("{}00{}", &body[..5], &body[7..]),
        None => body.to_string(),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err("it must be digits (2A/2B allowed for a Corsican birthplace)".into());
    }
    let mut number: u64 = digits
        .parse()
        .map_err(|_| "it is not a number".to_string())?;
    if let Some(dept) = corsica {
        // 2A/2B count as 19/18 in the department position.
        number += dept * 1_000_000;
    }
    let expected = 97 - (number % 97);
    let key: u64 = key
        .parse()
        .map_err(|_| "the key is not a number".to_string())?;
    if key != expected {
        return Err("the control key does not match the number".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nir_key() {
        assert!(check_nir("279035121518989").is_ok());
        assert!(check_nir("279035121518988").is_err());
        assert!(check_nir("27903512151898").is_err());
        assert!(check_nir("2790351215189AB").is_err());
        // Corsica: 2A replaced by 19 for the key computation.
        let body = "18402";
        let rest = "123456";
        let n: u64 = format!("{body}19{rest}").parse().unwrap();
        let key = 97 - n % 97;
        assert!(check_nir(&format!("{body}2A{rest}{key:02}")).is_ok());
        assert!(check_nir(&format!("{body}2B{rest}{key:02}")).is_err());
    }

    #[test]
    fn coherence_tables() {
        assert_eq!(orc_for_trigger("T10"), Some("RO"));
        assert_eq!(obx_status_for_orc("CA"), Some("D"));
        assert_eq!(obx_status_for_orc("XX"), None);
    }
}
