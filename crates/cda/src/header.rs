//! The CI-SIS header rules ("Structuration minimale", template 1.2.250.1.213.1.1.1.1), in Rust.
//!
//! The rules restate the ANS header schematron (`ASIP-STRUCT-MIN-StrucMin.sch`) for what a
//! receiving engine must rely on: the fixed header elements and their cardinalities, the legal
//! authenticator's signature, the patient identifiers and the INS identity traits, the author
//! identifiers. Value-set membership (JDV) and datatype details are left to the schematron layer.
//! A few rules are the engine's own and are marked so in their `source`: INS value format and key,
//! RPPS form, several INS, absent INS.

use crate::codes::*;
use crate::ins::{INS_ARC, InsKind, InsValueProblem, NON_INS_KNOWN_OIDS, check_ins_value};
use crate::model::*;
use relais_core::{Finding, Location, RuleCode};
use std::collections::BTreeSet;

/// The patient role and the patient, relative to `ClinicalDocument`.
const ROLE: &str = "/recordTarget/patientRole";
const PERSON: &str = "/recordTarget/patientRole/patient";

/// `source` of findings restating the ANS header schematron.
pub const SOURCE_STRUCT_MIN: &str = "ASIP-STRUCT-MIN-StrucMin.sch";
/// `source` of findings from rules that are Relais' own reading of CI-SIS identity rules.
pub const SOURCE_RELAIS: &str = "relais-cda CI-SIS identity rules";

/// Checks the CI-SIS header rules on a read document. Every finding has a stable code and an
/// XPath location below [`CdaDocument::root_path`]. Errors make the document non-conformant;
/// warnings (INS absent, INS key, RPPS form) do not.
pub fn check_header(doc: &CdaDocument) -> Vec<Finding> {
    let mut c = Checker {
        doc,
        out: Vec::new(),
    };
    c.fixed_elements();
    c.template_ids();
    c.singletons();
    c.attributes();
    c.legal_authenticator();
    c.authors();
    c.custodian();
    c.service_events();
    c.encounter();
    c.related_documents();
    c.patient();
    c.out
}

struct Checker<'d> {
    doc: &'d CdaDocument,
    out: Vec<Finding>,
}

impl Checker<'_> {
    fn at(&self, rel: &str) -> Location {
        Location::XPath(format!("{}{}", self.doc.root_path, rel))
    }

    fn error(&mut self, code: RuleCode, rel: &str, message: impl Into<String>) {
        let f = Finding::error(code, message)
            .at(self.at(rel))
            .with_source(SOURCE_STRUCT_MIN);
        self.out.push(f);
    }

    fn own(&mut self, finding: Finding, rel: &str) {
        let f = finding.at(self.at(rel)).with_source(SOURCE_RELAIS);
        self.out.push(f);
    }

    fn shape(&self, name: &str) -> Occurrences {
        self.doc.header.shape.get(name)
    }

    fn fixed_elements(&mut self) {
        let realm = self.shape("realmCode");
        if realm.usable == 0 {
            self.error(
                CDA_REALM_CODE,
                "/realmCode",
                "the header must contain realmCode with code=\"FR\"",
            );
        } else if realm.usable > 1 {
            self.error(
                CDA_REALM_CODE,
                "/realmCode",
                "realmCode with code=\"FR\" must appear only once",
            );
        }
        let type_id = self.shape("typeId");
        if type_id.usable != 1 {
            let what = if type_id.usable == 0 {
                "is required"
            } else {
                "must appear only once"
            };
            self.error(
                CDA_TYPEID,
                "/typeId",
                format!(
                    "typeId with root 2.16.840.1.113883.1.3 and extension POCD_HD000040 {what}"
                ),
            );
        }
    }

    fn template_ids(&mut self) {
        let tids = &self.doc.header.template_ids;
        let count = |oid: &str| tids.iter().filter(|t| t.has_root(oid)).count();
        for (oid, what) in [
            (GENERIC_TEMPLATE_IDS[0], "HL7 France conformance"),
            (GENERIC_TEMPLATE_IDS[1], "CI-SIS conformance"),
        ] {
            match count(oid) {
                0 => self.error(
                    CDA_TEMPLATEID_MISSING,
                    "/templateId",
                    format!("templateId {oid} ({what}) is required"),
                ),
                1 => {}
                _ => self.error(
                    CDA_TEMPLATEID_REPEATED,
                    "/templateId",
                    format!("templateId {oid} ({what}) must appear only once"),
                ),
            }
        }
        if self.doc.header.model_template_ids().is_empty() {
            self.error(
                CDA_TEMPLATEID_MISSING,
                "/templateId",
                "the templateId of the document model is required (for a level 1 document: \
                 1.3.6.1.4.1.19376.1.2.20)",
            );
        }
        if let Body::NonXml { .. } = self.doc.body {
            let ok = tids.len() == 3
                && count(GENERIC_TEMPLATE_IDS[0]) == 1
                && count(GENERIC_TEMPLATE_IDS[1]) == 1
                && count(N1_TEMPLATE_ID) == 1;
            if !ok {
                self.error(
                    CDA_N1_TEMPLATEID,
                    "/templateId",
                    "a level 1 document (nonXMLBody) must carry exactly three templateIds: \
                     2.16.840.1.113883.2.8.2.1, 1.2.250.1.213.1.1.1.1 and 1.3.6.1.4.1.19376.1.2.20 \
                     (the latter replaces the model's templateId)",
                );
            }
        }
    }

    fn singletons(&mut self) {
        const EXACTLY_ONE: [(&str, &str); 11] = [
            ("id", "id"),
            ("code", "code"),
            ("title", "title"),
            ("effectiveTime", "effectiveTime"),
            ("confidentialityCode", "confidentialityCode"),
            ("languageCode", "languageCode"),
            ("setId", "setId"),
            ("versionNumber", "versionNumber"),
            ("recordTarget", "recordTarget"),
            ("custodian", "custodian/assignedCustodian"),
            ("componentOf", "componentOf/encompassingEncounter"),
        ];
        for (name, shown) in EXACTLY_ONE {
            let n = self.shape(name);
            if n.usable == 0 {
                self.error(
                    CDA_HEADER_ELEMENT_MISSING,
                    &format!("/{name}"),
                    format!("the header must contain exactly one {shown} (without nullFlavor); none found"),
                );
            } else if n.usable > 1 {
                self.error(
                    CDA_HEADER_ELEMENT_REPEATED,
                    &format!("/{name}"),
                    format!(
                        "the header must contain exactly one {shown}; found {}",
                        n.usable
                    ),
                );
            }
        }
        let la = self.shape("legalAuthenticator");
        if la.total == 0 {
            self.error(
                CDA_LEGALAUTH_MISSING,
                "/legalAuthenticator",
                "the header must contain a legalAuthenticator (the professional responsible for the document)",
            );
        } else if la.usable == 0 {
            self.error(
                CDA_LEGALAUTH_SIGNATURE,
                "/legalAuthenticator/signatureCode",
                "the legalAuthenticator must carry signatureCode with code=\"S\"",
            );
        } else if la.total > 1 {
            self.error(
                CDA_HEADER_ELEMENT_REPEATED,
                "/legalAuthenticator",
                format!(
                    "the header must contain exactly one legalAuthenticator; found {}",
                    la.total
                ),
            );
        }
        if self.shape("author").usable == 0 {
            self.error(
                CDA_AUTHOR_MISSING,
                "/author",
                "the header must contain at least one author with an assignedAuthor",
            );
        }
        if self.shape("documentationOf").usable == 0 {
            self.error(
                CDA_SERVICE_EVENT_MISSING,
                "/documentationOf",
                "the header must contain at least one documentationOf/serviceEvent (the documented act)",
            );
        }
        let at_most_one = [
            (
                "relatedDocument",
                "relatedDocument of type RPLC",
                self.shape("relatedDocument").usable,
            ),
            (
                "dataEnterer",
                "dataEnterer",
                self.shape("dataEnterer").total,
            ),
        ];
        for (name, shown, count) in at_most_one {
            if count > 1 {
                self.error(
                    CDA_HEADER_ELEMENT_REPEATED,
                    &format!("/{name}"),
                    format!("at most one {shown} is allowed; found {count}"),
                );
            }
        }
        let component = self.shape("component");
        if component.total > 1 {
            self.error(
                CDA_HEADER_ELEMENT_REPEATED,
                "/component",
                "the document must have exactly one component (its body)",
            );
        }
        if self.doc.body == Body::Missing {
            self.error(
                CDA_BODY_MISSING,
                "/component",
                "the document has no body: component/structuredBody (level 3) or component/nonXMLBody (level 1) is required",
            );
        }
    }

    fn attributes(&mut self) {
        let h = &self.doc.header;
        let mut missing: Vec<(&str, &str)> = Vec::new();
        if h.id.as_ref().is_some_and(|id| id.root.is_none()) {
            missing.push(("id", "root"));
        }
        for (name, code) in [
            ("code", &h.code),
            ("confidentialityCode", &h.confidentiality_code),
        ] {
            if let Some(c) = code {
                if c.code.is_none() {
                    missing.push((name, "code"));
                }
                if c.code_system.is_none() {
                    missing.push((name, "codeSystem"));
                }
                if c.display_name.is_none() {
                    missing.push((name, "displayName"));
                }
            }
        }
        if h.set_id.as_ref().is_some_and(|id| id.root.is_none()) {
            missing.push(("setId", "root"));
        }
        for (name, value, attr) in [
            ("effectiveTime", &h.effective_time, "value"),
            ("languageCode", &h.language_code, "code"),
            ("versionNumber", &h.version_number, "value"),
        ] {
            if self.shape(name).usable > 0 && value.is_none() {
                missing.push((name, attr));
            }
        }
        for (name, attr) in missing {
            self.error(
                CDA_HEADER_ATTRIBUTE_MISSING,
                &format!("/{name}/@{attr}"),
                format!("{name} must carry the attribute {attr}"),
            );
        }
        if let Some(lang) = &self.doc.header.language_code
            && !has_language_form(lang)
        {
            self.error(
                    CDA_LANGUAGE_CODE,
                    "/languageCode/@code",
                    "languageCode must have the form ll-CC (ISO 639-1 language, ISO 3166 country), e.g. fr-FR",
                );
        }
    }

    fn legal_authenticator(&mut self) {
        let Some(la) = &self.doc.header.legal_authenticator else {
            return;
        };
        if la.time.is_none() {
            self.error(
                CDA_LEGALAUTH_INCOMPLETE,
                "/legalAuthenticator/time",
                "the legalAuthenticator must carry time/@value",
            );
        }
        match &la.party.id {
            None => self.error(
                CDA_LEGALAUTH_INCOMPLETE,
                "/legalAuthenticator/assignedEntity/id",
                "the legalAuthenticator must carry assignedEntity/id (the professional's identifier)",
            ),
            Some(id) if id.root.is_none() || id.extension.is_none() => self.error(
                CDA_LEGALAUTH_INCOMPLETE,
                "/legalAuthenticator/assignedEntity/id",
                "the legalAuthenticator identifier must carry both root and extension",
            ),
            Some(_) => {}
        }
    }

    fn authors(&mut self) {
        let authors = &self.doc.header.authors;
        for (i, a) in authors.iter().enumerate() {
            let base = format!("/author[{}]", i + 1);
            if a.time.is_none() {
                self.error(
                    CDA_AUTHOR_TIME,
                    &format!("{base}/time"),
                    "each author must carry time/@value",
                );
            }
            let id_path = format!("{base}/assignedAuthor/id");
            match &a.id {
                None => self.error(
                    CDA_AUTHOR_ID,
                    &id_path,
                    "each author must carry assignedAuthor/id (RPPS: root 1.2.250.1.71.4.2.1, extension 8+RPPS)",
                ),
                Some(id) if id.root.is_none() || id.extension.is_none() => {
                    self.error(CDA_AUTHOR_ID, &id_path, "the author identifier must carry both root and extension")
                }
                Some(id) if id.has_root(PS_ID_OID) => {
                    let ext = id.extension.as_deref().unwrap_or("");
                    let problem = if let Some(rpps) = ext.strip_prefix('8') {
                        (!(rpps.len() == 11 && rpps.bytes().all(|b| b.is_ascii_digit())))
                            .then_some("an RPPS identifier must be 8 followed by the 11-digit RPPS number")
                    } else if let Some(adeli) = ext.strip_prefix('0') {
                        (adeli.is_empty() || !adeli.bytes().all(|b| b.is_ascii_digit()))
                            .then_some("an ADELI identifier must be 0 followed by the ADELI number (digits)")
                    } else {
                        None
                    };
                    if let Some(p) = problem {
                        self.own(Finding::warning(CDA_AUTHOR_ID, p), &id_path);
                    }
                }
                Some(_) => {}
            }
        }
    }

    fn custodian(&mut self) {
        let Some(org) = &self.doc.header.custodian else {
            return;
        };
        let rel = "/custodian/assignedCustodian/representedCustodianOrganization/id";
        match org.ids.first() {
            None => self.error(CDA_CUSTODIAN_ID, rel, "the custodian organisation must carry an id"),
            Some(id) if !(id.has_root(STRUCTURE_ID_OID) || id.has_root("1.2.250.1.213.4.1")) => self.error(
                CDA_CUSTODIAN_ID,
                rel,
                "the custodian organisation id must have root 1.2.250.1.71.4.2.2 (health structure) or \
                 1.2.250.1.213.4.1 (hosting platform)",
            ),
            Some(_) => {}
        }
    }

    fn service_events(&mut self) {
        let Some(main) = self.doc.header.service_events.first() else {
            return;
        };
        if main.performers.len() != 1 {
            self.error(
                CDA_SERVICE_EVENT_PERFORMER,
                "/documentationOf[1]/serviceEvent/performer",
                format!(
                    "the main act (first documentationOf/serviceEvent) must have exactly one performer; found {}",
                    main.performers.len()
                ),
            );
        }
        if main.start.is_none() {
            self.error(
                CDA_SERVICE_EVENT_TIME,
                "/documentationOf[1]/serviceEvent/effectiveTime",
                "the main act (first documentationOf/serviceEvent) must have an effectiveTime with low/@value",
            );
        }
    }

    fn encounter(&mut self) {
        let Some(enc) = &self.doc.header.encounter else {
            return;
        };
        let base = "/componentOf/encompassingEncounter";
        if !enc.effective_time_present {
            self.error(
                CDA_ENCOUNTER_INCOMPLETE,
                &format!("{base}/effectiveTime"),
                "the encompassingEncounter must carry an effectiveTime (dates of the care episode)",
            );
        }
        if enc
            .facility_type
            .as_ref()
            .and_then(|c| c.code.as_ref())
            .is_none()
        {
            self.error(
                CDA_ENCOUNTER_INCOMPLETE,
                &format!("{base}/location/healthCareFacility/code"),
                "the encompassingEncounter must carry location/healthCareFacility/code (facility type, JDV_J02)",
            );
        }
    }

    fn related_documents(&mut self) {
        let docs = &self.doc.header.related_documents;
        for (i, r) in docs.iter().enumerate() {
            if r.is_replacement() && r.parent_id.as_ref().and_then(|p| p.root.as_ref()).is_none() {
                self.error(
                    CDA_RELATED_DOCUMENT,
                    &format!("/relatedDocument[{}]/parentDocument/id", i + 1),
                    "a replacing document (relatedDocument RPLC) must give parentDocument/id with a root: \
                     the id of the document it replaces",
                );
            }
        }
    }

    fn patient(&mut self) {
        if self.shape("recordTarget").usable == 0 {
            return; // already reported as a missing header element
        }
        let Some(p) = &self.doc.header.patient else {
            self.error(
                CDA_HEADER_ELEMENT_MISSING,
                ROLE,
                "recordTarget must contain patientRole (the patient's identifiers and identity)",
            );
            return;
        };
        self.patient_ids(p);
        if p.ins.is_none() {
            self.patient_without_ins(p);
        } else {
            self.ins_traits(p);
        }
        if p.birthplace_insee
            .as_deref()
            .is_some_and(|c| !is_cog_code(c))
        {
            self.own(
                Finding::warning(
                    CDA_INS_BIRTHPLACE_FORMAT,
                    "the birthplace code must be a 5-character INSEE COG code (2A/2B for Corsica, \
                     99xxx abroad)",
                ),
                &format!("{PERSON}/birthplace/place/addr/county"),
            );
        }
    }

    /// Presence and form of `patientRole/id`: root and extension, INS OIDs, INS values.
    fn patient_ids(&mut self, p: &Patient) {
        if p.ids
            .iter()
            .all(|i| i.root.is_none() && i.extension.is_none())
        {
            self.error(
                CDA_PATIENT_ID,
                &format!("{ROLE}/id"),
                "the patient must have at least one identifier (INS, IPP)",
            );
        }
        for (i, id) in p.ids.iter().enumerate() {
            let rel = format!("{ROLE}/id[{}]", i + 1);
            if id.root.is_none() && id.extension.is_none() {
                continue; // nullFlavor
            }
            if id.root.is_none() || id.extension.is_none() {
                self.error(
                    CDA_PATIENT_ID,
                    &rel,
                    "a patient identifier must carry both root and extension",
                );
            }
            if let Some(root) = id.root.as_deref()
                && root.starts_with(INS_ARC)
                && InsKind::from_oid(root).is_none()
                && !NON_INS_KNOWN_OIDS.contains(&root)
            {
                self.error(
                    CDA_INS_OID_UNKNOWN,
                    &format!("{rel}/@root"),
                    format!(
                        "patient identifier OID {root} is in the INS arc but is not an INS OID: \
                         use 1.2.250.1.213.1.4.8 (INS-NIR), .9 (INS-NIA), .10 (INS-NIR test) or \
                         .11 (demo)"
                    ),
                );
            }
            let kind = id.root.as_deref().and_then(InsKind::from_oid);
            if let (Some(kind), Some(value)) = (kind, id.extension.as_deref()) {
                let at = format!("{rel}/@extension");
                match check_ins_value(value) {
                    Some(InsValueProblem::Format) => {
                        let message = format!(
                            "the {kind} must be 15 characters: 13 digits (2A/2B allowed for a \
                             Corsican department) and a 2-digit key"
                        );
                        self.own(Finding::error(CDA_INS_FORMAT, message), &at);
                    }
                    Some(InsValueProblem::Key) => {
                        let message = format!(
                            "the control key of the {kind} does not match its first 13 digits"
                        );
                        self.own(Finding::warning(CDA_INS_KEY, message), &at);
                    }
                    None => {}
                }
            }
        }
        let distinct: BTreeSet<&str> = p.all_ins.iter().map(|i| i.value.as_str()).collect();
        if distinct.len() > 1 {
            let message = format!(
                "the patient carries {} different INS values: the identity is ambiguous",
                distinct.len()
            );
            self.own(
                Finding::warning(CDA_INS_MULTIPLE, message),
                &format!("{ROLE}/id"),
            );
        }
    }

    /// Without INS: reported (warning), and the elements the header requires of every patient.
    fn patient_without_ins(&mut self, p: &Patient) {
        self.own(
            Finding::warning(
                CDA_INS_ABSENT,
                "the patient has no INS (root 1.2.250.1.213.1.4.8/.9/.10/.11): the document \
                 cannot be matched to a qualified identity automatically",
            ),
            &format!("{ROLE}/id"),
        );
        if !p.has_patient_element {
            self.error(
                CDA_PATIENT_ELEMENT_MISSING,
                PERSON,
                "patientRole must contain patient",
            );
            return;
        }
        let required = [
            (p.has_name, "/name", "name"),
            (p.birth_time.is_some(), "/birthTime", "birthTime/@value"),
            (
                p.sex.is_some(),
                "/administrativeGenderCode",
                "administrativeGenderCode/@code",
            ),
        ];
        for (present, rel, what) in required {
            if !present {
                self.error(
                    CDA_PATIENT_ELEMENT_MISSING,
                    &format!("{PERSON}{rel}"),
                    format!("the patient must carry {what}"),
                );
            }
        }
    }

    /// With an INS, the six identity traits are mandatory (the ANS rule has no exception: a
    /// person born abroad has the INSEE code of the country, 99xxx, as birthplace).
    fn ins_traits(&mut self, p: &Patient) {
        let traits = [
            (
                p.birth_family.is_some(),
                "/name/family[@qualifier='BR']",
                "birth family name (family qualifier=\"BR\")",
            ),
            (
                p.given_birth_first.is_some(),
                "/name/given[@qualifier='BR']",
                "first birth first name (given qualifier=\"BR\")",
            ),
            (
                p.birth_given_names.is_some(),
                "/name/given[not(@qualifier)]",
                "list of birth first names (given without qualifier)",
            ),
            (
                p.birth_time.is_some(),
                "/birthTime",
                "birth date (birthTime/@value)",
            ),
            (
                p.sex.is_some(),
                "/administrativeGenderCode/@code",
                "sex (administrativeGenderCode/@code)",
            ),
            (
                p.birthplace_insee.is_some(),
                "/birthplace/place/addr/county",
                "birthplace INSEE code (birthplace/place/addr/county; 99xxx for a birth abroad)",
            ),
        ];
        for (present, rel, what) in traits {
            if !present {
                self.error(
                    CDA_INS_TRAIT_MISSING,
                    &format!("{PERSON}{rel}"),
                    format!("with an INS, the identity trait {what} is mandatory"),
                );
            }
        }
    }
}

/// `[a-z]{2}-[A-Z]{2}` somewhere in the code, as the ANS rule (an unanchored regex) accepts.
fn has_language_form(code: &str) -> bool {
    code.as_bytes().windows(5).any(|w| {
        w[0].is_ascii_lowercase()
            && w[1].is_ascii_lowercase()
            && w[2] == b'-'
            && w[3].is_ascii_uppercase()
            && w[4].is_ascii_uppercase()
    })
}

/// An INSEE COG commune or country code: 5 characters, digits, with `2A`/`2B` for Corsica.
fn is_cog_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && (b.iter().all(u8::is_ascii_digit)
            || (matches!(&b[..2], b"2A" | b"2B") && b[2..].iter().all(u8::is_ascii_digit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_form() {
        assert!(has_language_form("fr-FR"));
        assert!(has_language_form("en-GB"));
        assert!(!has_language_form("fr"));
        assert!(!has_language_form("FR-fr"));
        assert!(!has_language_form("é"));
    }

    #[test]
    fn cog_codes() {
        assert!(is_cog_code("51215"));
        assert!(is_cog_code("2A004"));
        assert!(is_cog_code("99100"));
        assert!(!is_cog_code("5121"));
        assert!(!is_cog_code("PARIS"));
        assert!(!is_cog_code("2C004"));
    }
}
