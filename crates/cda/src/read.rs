//! Reading a CDA R2 document into the owned model.
//!
//! Parsing goes through [`relais_core::xml`], which refuses DTDs (no entity expansion, no XXE) and
//! bounds size and node count. Only elements in the HL7 v3 namespace are read; anything else
//! (extensions, comments, processing instructions) is ignored.

use crate::codes;
use crate::ins::{INS_ARC, Ins, InsKind};
use crate::model::*;
use relais_core::xml::{XmlError, decode, parse, path_of};
use relais_core::{Finding, Limits, Location, RuleCode};
use roxmltree::Node;

/// The HL7 v3 namespace of CDA R2.
pub const HL7_NS: &str = "urn:hl7-org:v3";
const XSLT_NS: &str = "http://www.w3.org/1999/XSL/Transform";

/// Why bytes could not be read as a CDA document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdaError {
    /// Not XML, not well-formed, DTD present, wrong encoding or too large.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Well-formed XML whose root is not a CDA `ClinicalDocument`.
    #[error(
        "not a CDA R2 document: the root element is {found}, expected ClinicalDocument in the \
         namespace urn:hl7-org:v3 (check that the attachment is the CDA and not its metadata or a PDF)"
    )]
    NotCda { found: String },
}

impl CdaError {
    /// The stable rule code (`XML-*` from relais-core, or `CDA-NOT-CDA`).
    pub fn code(&self) -> RuleCode {
        match self {
            CdaError::Xml(e) => e.code(),
            CdaError::NotCda { .. } => codes::CDA_NOT_CDA,
        }
    }

    /// This error as a finding.
    pub fn to_finding(&self) -> Finding {
        match self {
            CdaError::Xml(e) => e.to_finding(),
            CdaError::NotCda { .. } => {
                Finding::error(self.code(), self.to_string()).at(Location::XPath("/".into()))
            }
        }
    }
}

/// Reads a CDA R2 document: decodes the bytes, parses them with the hardened parser and copies
/// header and body summary out. Header rules are not checked here (see [`crate::check_header`]):
/// a document missing required elements still reads, with `None`s.
///
/// An "auto-presentable" document (an XSLT stylesheet carrying the `ClinicalDocument` inside it,
/// as some ANS examples are) is read from the `ClinicalDocument` it wraps.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<CdaDocument, CdaError> {
    if bytes.len() as u64 > limits.max_xml_bytes {
        return Err(XmlError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_xml_bytes,
        }
        .into());
    }
    let text = decode(bytes)?;
    let doc = parse(&text, limits)?;
    let root = doc.root_element();
    let (cda, auto_presentable) = if is_hl7(root, "ClinicalDocument") {
        (root, false)
    } else if root.tag_name().namespace() == Some(XSLT_NS)
        && matches!(root.tag_name().name(), "stylesheet" | "transform")
    {
        match root.descendants().find(|n| is_hl7(*n, "ClinicalDocument")) {
            Some(n) => (n, true),
            None => return Err(not_cda(root)),
        }
    } else {
        return Err(not_cda(root));
    };
    let (body, pdf) = read_body(cda);
    Ok(CdaDocument {
        header: read_header(cda),
        body,
        root_path: path_of(cda),
        auto_presentable,
        pdf,
    })
}

fn not_cda(root: Node<'_, '_>) -> CdaError {
    let name = root.tag_name();
    let mut found = match name.namespace() {
        Some(ns) => format!("{{{ns}}}{}", name.name()),
        None => format!("{} (no namespace)", name.name()),
    };
    if found.len() > 200 {
        let mut cut = 200;
        while !found.is_char_boundary(cut) {
            cut -= 1;
        }
        found.truncate(cut);
        found.push('…');
    }
    CdaError::NotCda { found }
}

// ---- tree helpers -------------------------------------------------------------------------------

pub(crate) fn is_hl7(n: Node<'_, '_>, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(HL7_NS)
}

fn kids<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(move |c| is_hl7(*c, name))
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    kids(n, name).next()
}

fn is_null(n: Node<'_, '_>) -> bool {
    n.has_attribute("nullFlavor")
}

/// The first child of that name without a nullFlavor.
fn child_nn<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    kids(n, name).find(|c| !is_null(*c))
}

fn path<'a, 'i>(n: Node<'a, 'i>, names: &[&'static str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(n, |cur, name| child(cur, name))
}

fn attr(n: Node<'_, '_>, name: &str) -> Option<String> {
    n.attribute(name)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The text of an element and its descendants, whitespace collapsed; `None` when empty.
fn text(n: Node<'_, '_>) -> Option<String> {
    let mut out = String::new();
    for t in n.descendants().filter(|d| d.is_text()) {
        for word in t.text().unwrap_or("").split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    (!out.is_empty()).then_some(out)
}

fn opt_text(n: Option<Node<'_, '_>>) -> Option<String> {
    n.filter(|n| !is_null(*n)).and_then(text)
}

fn ii(n: Node<'_, '_>) -> Ii {
    Ii {
        root: attr(n, "root"),
        extension: attr(n, "extension"),
    }
}

fn opt_ii(n: Option<Node<'_, '_>>) -> Option<Ii> {
    n.filter(|n| !is_null(*n)).map(ii)
}

fn cd(n: Node<'_, '_>) -> Cd {
    Cd {
        code: attr(n, "code"),
        code_system: attr(n, "codeSystem"),
        display_name: attr(n, "displayName"),
    }
}

fn opt_cd(n: Option<Node<'_, '_>>) -> Option<Cd> {
    n.filter(|n| !is_null(*n)).map(cd)
}

fn value_of(n: Option<Node<'_, '_>>) -> Option<String> {
    n.filter(|n| !is_null(*n)).and_then(|n| attr(n, "value"))
}

/// `low/@value` and `high/@value` of an interval, or `@value` of a point in time as the start.
fn interval(n: Option<Node<'_, '_>>) -> (Option<String>, Option<String>) {
    match n.filter(|n| !is_null(*n)) {
        None => (None, None),
        Some(n) => {
            let start = value_of(child(n, "low")).or_else(|| attr(n, "value"));
            (start, value_of(child(n, "high")))
        }
    }
}

fn person_name(n: Node<'_, '_>) -> Option<PersonName> {
    let name = child_nn(n, "name")?;
    Some(PersonName {
        prefix: opt_text(child(name, "prefix")),
        given: opt_text(child(name, "given")),
        family: opt_text(child(name, "family")),
        suffix: opt_text(child(name, "suffix")),
    })
}

fn organization(n: Node<'_, '_>) -> Organization {
    let ids: Vec<Ii> = kids(n, "id").filter(|i| !is_null(*i)).map(ii).collect();
    let finess = ids
        .iter()
        .find(|i| i.has_root(STRUCTURE_ID_OID))
        .and_then(|i| i.extension.clone());
    Organization {
        ids,
        finess,
        name: opt_text(child(n, "name")),
        industry_code: opt_cd(child(n, "standardIndustryClassCode")),
    }
}

/// RPPS and ADELI numbers from the national professional identifiers among `ids`.
fn ps_numbers<'a>(ids: impl Iterator<Item = &'a Ii>) -> (Option<String>, Option<String>) {
    let (mut rpps, mut adeli) = (None, None);
    for id in ids.filter(|i| i.has_root(PS_ID_OID)) {
        let Some(ext) = id.extension.as_deref() else {
            continue;
        };
        if let Some(n) = ext.strip_prefix('8') {
            rpps.get_or_insert_with(|| n.to_string());
        } else if let Some(n) = ext.strip_prefix('0') {
            adeli.get_or_insert_with(|| n.to_string());
        }
    }
    (rpps, adeli)
}

/// A party from an entity element (assignedEntity, associatedEntity, intendedRecipient...).
fn party(entity: Node<'_, '_>, person: &'static str, org: &'static str) -> Party {
    let ids: Vec<Ii> = kids(entity, "id")
        .filter(|i| !is_null(*i))
        .map(ii)
        .collect();
    let (rpps, adeli) = ps_numbers(ids.iter());
    Party {
        id: ids.into_iter().next(),
        rpps,
        adeli,
        code: opt_cd(child(entity, "code")),
        name: child_nn(entity, person).and_then(person_name),
        organization: child_nn(entity, org).map(organization),
    }
}

// ---- header -------------------------------------------------------------------------------------

fn read_header(cda: Node<'_, '_>) -> CdaHeader {
    CdaHeader {
        realm_code: child(cda, "realmCode").and_then(|n| attr(n, "code")),
        type_id: child(cda, "typeId").map(ii),
        template_ids: kids(cda, "templateId").map(ii).collect(),
        id: opt_ii(child_nn(cda, "id")),
        code: opt_cd(child_nn(cda, "code")),
        title: opt_text(child_nn(cda, "title")),
        effective_time: value_of(child_nn(cda, "effectiveTime")),
        confidentiality_code: opt_cd(child_nn(cda, "confidentialityCode")),
        language_code: child_nn(cda, "languageCode").and_then(|n| attr(n, "code")),
        set_id: opt_ii(child_nn(cda, "setId")),
        version_number: value_of(child_nn(cda, "versionNumber")),
        patient: child_nn(cda, "recordTarget")
            .and_then(|rt| child(rt, "patientRole"))
            .map(read_patient),
        authors: kids(cda, "author").map(read_author).collect(),
        custodian: child_nn(cda, "custodian")
            .and_then(|c| {
                path(
                    c,
                    &["assignedCustodian", "representedCustodianOrganization"],
                )
            })
            .map(organization),
        legal_authenticator: child(cda, "legalAuthenticator").map(|la| LegalAuthenticator {
            time: value_of(child(la, "time")),
            signature_code: child(la, "signatureCode").and_then(|s| attr(s, "code")),
            party: child(la, "assignedEntity")
                .map(|e| party(e, "assignedPerson", "representedOrganization"))
                .unwrap_or_default(),
        }),
        encounter: child_nn(cda, "componentOf")
            .and_then(|c| child_nn(c, "encompassingEncounter"))
            .map(read_encounter),
        service_events: kids(cda, "documentationOf")
            .filter_map(|d| child_nn(d, "serviceEvent"))
            .map(read_service_event)
            .collect(),
        informants: kids(cda, "informant").map(read_informant).collect(),
        information_recipients: kids(cda, "informationRecipient")
            .filter_map(|r| child(r, "intendedRecipient"))
            .map(|e| party(e, "informationRecipient", "receivedOrganization"))
            .collect(),
        participants: kids(cda, "participant")
            .map(|p| {
                let entity = child(p, "associatedEntity");
                Participant {
                    type_code: attr(p, "typeCode"),
                    function_code: opt_cd(child(p, "functionCode")),
                    class_code: entity.and_then(|e| attr(e, "classCode")),
                    party: entity
                        .map(|e| party(e, "associatedPerson", "scopingOrganization"))
                        .unwrap_or_default(),
                }
            })
            .collect(),
        in_fulfillment_of: kids(cda, "inFulfillmentOf")
            .filter_map(|f| child(f, "order"))
            .flat_map(|o| {
                kids(o, "id")
                    .filter(|i| !is_null(*i))
                    .map(ii)
                    .collect::<Vec<_>>()
            })
            .collect(),
        related_documents: kids(cda, "relatedDocument")
            .map(|r| {
                let parent = child_nn(r, "parentDocument");
                RelatedDocument {
                    type_code: attr(r, "typeCode"),
                    parent_id: parent.and_then(|p| opt_ii(child_nn(p, "id"))),
                    parent_set_id: parent.and_then(|p| opt_ii(child_nn(p, "setId"))),
                    parent_version: parent.and_then(|p| value_of(child(p, "versionNumber"))),
                }
            })
            .collect(),
        shape: read_shape(cda),
    }
}

fn read_shape(cda: Node<'_, '_>) -> HeaderShape {
    let mut shape = HeaderShape::default();
    for n in cda
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(HL7_NS))
    {
        let name = n.tag_name().name();
        let not_null = !is_null(n);
        let usable = match name {
            "realmCode" => n.attribute("code") == Some("FR"),
            "typeId" => {
                n.attribute("root") == Some("2.16.840.1.113883.1.3")
                    && n.attribute("extension") == Some("POCD_HD000040")
            }
            "author" => not_null && child(n, "assignedAuthor").is_some(),
            "custodian" => not_null && child(n, "assignedCustodian").is_some(),
            "legalAuthenticator" => {
                kids(n, "signatureCode").any(|s| s.attribute("code") == Some("S"))
            }
            "documentationOf" => not_null && child(n, "serviceEvent").is_some(),
            "componentOf" => not_null && child(n, "encompassingEncounter").is_some(),
            "relatedDocument" => {
                n.attribute("typeCode") == Some("RPLC") && child(n, "parentDocument").is_some()
            }
            _ => not_null,
        };
        let entry = shape.elements.entry(name.to_string()).or_default();
        entry.total += 1;
        entry.usable += u32::from(usable);
    }
    shape
}

fn read_patient(role: Node<'_, '_>) -> Patient {
    let ids: Vec<Ii> = kids(role, "id")
        .map(|i| if is_null(i) { Ii::default() } else { ii(i) })
        .collect();
    let mut all_ins: Vec<Ins> = Vec::new();
    let mut ipps = Vec::new();
    for id in &ids {
        let (Some(root), Some(ext)) = (id.root.as_deref(), id.extension.as_deref()) else {
            continue;
        };
        if let Some(kind) = InsKind::from_oid(root) {
            let ins = Ins {
                kind,
                value: ext.to_string(),
            };
            if !all_ins.contains(&ins) {
                all_ins.push(ins);
            }
        } else if !root.starts_with(INS_ARC) {
            ipps.push(id.clone());
        }
    }
    let mut p = Patient {
        ins: all_ins.first().cloned(),
        all_ins,
        ipps,
        ids,
        ..Patient::default()
    };
    let Some(person) = child_nn(role, "patient") else {
        return p;
    };
    p.has_patient_element = true;
    // As the ANS rule does (`//patient/name/family/@qualifier='BR'`), every name is looked at.
    for name in kids(person, "name").filter(|n| !is_null(*n)) {
        p.has_name = true;
        for part in name.children().filter(|c| c.is_element() && !is_null(*c)) {
            let slot = match (part.tag_name().name(), part.attribute("qualifier")) {
                ("family", Some("BR")) => &mut p.birth_family,
                ("family", Some("CL")) => &mut p.used_family,
                ("family", None) => &mut p.unqualified_family,
                ("given", Some("BR")) => &mut p.given_birth_first,
                ("given", Some("CL")) => &mut p.used_given,
                ("given", None) => &mut p.birth_given_names,
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(part);
            }
        }
    }
    p.birth_time = value_of(child(person, "birthTime"));
    p.sex = child(person, "administrativeGenderCode").and_then(|g| attr(g, "code"));
    p.birthplace_insee = kids(person, "birthplace")
        .filter_map(|b| path(b, &["place", "addr", "county"]))
        .find_map(|c| opt_text(Some(c)));
    p
}

fn read_author(author: Node<'_, '_>) -> Author {
    let mut a = Author {
        time: value_of(child(author, "time")),
        function_code: opt_cd(child(author, "functionCode")),
        ..Author::default()
    };
    let Some(assigned) = child_nn(author, "assignedAuthor") else {
        return a;
    };
    let ids: Vec<Ii> = kids(assigned, "id")
        .filter(|i| !is_null(*i))
        .map(ii)
        .collect();
    (a.rpps, a.adeli) = ps_numbers(ids.iter());
    a.id = ids.into_iter().next();
    a.profession = opt_cd(child(assigned, "code"));
    a.name = child_nn(assigned, "assignedPerson").and_then(person_name);
    a.device_software =
        child(assigned, "assignedAuthoringDevice").and_then(|d| opt_text(child(d, "softwareName")));
    a.organization = child_nn(assigned, "representedOrganization").map(organization);
    a
}

fn read_encounter(enc: Node<'_, '_>) -> Encounter {
    let (start, end) = interval(child(enc, "effectiveTime"));
    let facility = path(enc, &["location", "healthCareFacility"]).filter(|f| !is_null(*f));
    Encounter {
        id: opt_ii(child_nn(enc, "id")),
        code: opt_cd(child(enc, "code")),
        start,
        end,
        effective_time_present: child(enc, "effectiveTime").is_some(),
        facility_type: facility.and_then(|f| opt_cd(child(f, "code"))),
        facility_id: facility.and_then(|f| opt_ii(child(f, "id"))),
        location_name: facility
            .and_then(|f| child(f, "location"))
            .and_then(|l| opt_text(child(l, "name"))),
        responsible: path(enc, &["responsibleParty", "assignedEntity"])
            .map(|e| party(e, "assignedPerson", "representedOrganization")),
    }
}

fn read_service_event(ev: Node<'_, '_>) -> ServiceEvent {
    let (start, end) = interval(child(ev, "effectiveTime"));
    ServiceEvent {
        code: opt_cd(child(ev, "code")),
        start,
        end,
        performers: kids(ev, "performer")
            .map(|p| Performer {
                type_code: attr(p, "typeCode"),
                party: child(p, "assignedEntity")
                    .map(|e| party(e, "assignedPerson", "representedOrganization"))
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

fn read_informant(inf: Node<'_, '_>) -> Informant {
    let related = child(inf, "relatedEntity");
    Informant {
        assigned: child(inf, "assignedEntity")
            .map(|e| party(e, "assignedPerson", "representedOrganization")),
        related_class_code: related.and_then(|r| attr(r, "classCode")),
        related_code: related.and_then(|r| opt_cd(child(r, "code"))),
        related_name: related
            .and_then(|r| child_nn(r, "relatedPerson"))
            .and_then(person_name),
    }
}

// ---- body ---------------------------------------------------------------------------------------

fn raw_text(n: Node<'_, '_>) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|t| t.text())
        .collect()
}

fn is_pdf(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m.trim().eq_ignore_ascii_case("application/pdf"))
}

fn read_body(cda: Node<'_, '_>) -> (Body, Option<B64Text>) {
    let Some(component) = child(cda, "component") else {
        return (Body::Missing, None);
    };
    if let Some(nx) = child(component, "nonXMLBody") {
        let t = child(nx, "text");
        let media_type = t.and_then(|t| attr(t, "mediaType"));
        let representation = t.and_then(|t| attr(t, "representation"));
        let content = t.map(raw_text).unwrap_or_default();
        let body = Body::NonXml {
            media_type: media_type.clone(),
            representation: representation.clone(),
            content_b64_len: content.len(),
        };
        let pdf = is_pdf(media_type.as_deref()).then_some(B64Text {
            text: content,
            media_type,
            representation,
        });
        return (body, pdf);
    }
    let Some(sb) = child(component, "structuredBody") else {
        return (Body::Missing, None);
    };
    let mut section_template_ids = Vec::new();
    let mut section_codes = Vec::new();
    let mut pdf = None;
    for section in sb.descendants().filter(|n| is_hl7(*n, "section")) {
        let mut is_copy = false;
        for t in kids(section, "templateId").filter_map(|t| attr(t, "root")) {
            is_copy |= t == PDF_COPY_SECTION_TEMPLATE_ID;
            section_template_ids.push(t);
        }
        if let Some(code) = opt_cd(child(section, "code")) {
            section_codes.push(code);
        }
        if is_copy && pdf.is_none() {
            pdf = section
                .descendants()
                .filter(|n| is_hl7(*n, "observationMedia"))
                .filter_map(|m| child(m, "value"))
                .find(|v| is_pdf(v.attribute("mediaType")))
                .map(|v| B64Text {
                    text: raw_text(v),
                    media_type: attr(v, "mediaType"),
                    representation: attr(v, "representation"),
                });
        }
    }
    (
        Body::Structured {
            section_template_ids,
            section_codes,
        },
        pdf,
    )
}
