//! The CDA R2 document: the CI-SIS header (Structuration minimale) and a level 1 or level 3
//! body.
//!
//! The header follows the order of the CDA schema and the rules of
//! `ASIP-STRUCT-MIN-StrucMin.sch`: the three generic templateIds, one id/code/title/
//! effectiveTime/confidentialityCode/languageCode/setId/versionNumber, the patient with its INS
//! and identity traits (or its IPP alone when there is no qualified identity), the author and
//! its organisation, the custodian, the recipients known by RPPS, the legal authenticator with
//! `signatureCode S`, the documented act and the encounter.

use crate::codes::{self, LOINC, PROFESSION_SYSTEM, PS_ID_OID, STRUCTURE_ID_OID};
use crate::intake::{Address, Code, Intake, Professional, Recipient};
use crate::xml::XmlOut;
use crate::{BuildContext, BuildError};
use base64::Engine as _;
use relais_cda::Level;

/// A built CDA document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltCda {
    /// The XML document (UTF-8).
    pub xml: Vec<u8>,
    /// Level 1 (PDF body) or level 3 (structured LDL-SES).
    pub level: Level,
    /// The document id as XDS writes it (`root^extension`), the key of the letter.
    pub unique_id: String,
    /// The setId, `root^extension`.
    pub set_id: String,
}

/// Build the CDA document of `intake` with `pdf` as its content (the body of a level 1
/// document, the FR-Document-PDF-copie section of a level 3 one).
///
/// The intake is validated first (with `ctx.policy`); `pdf` must start with `%PDF-`. The
/// result is read back with `relais-cda` and must pass its header rules: a failure there is a
/// bug of this crate, reported as [`BuildError::SelfCheck`].
pub fn build_cda(intake: &Intake, pdf: &[u8], ctx: &BuildContext) -> Result<BuiltCda, BuildError> {
    crate::preflight(intake, pdf, ctx)?;
    let ids = DocIds::new(intake, ctx);
    let level = if intake.ldl_ses.is_some() {
        Level::N3
    } else {
        Level::N1
    };
    let mut x = XmlOut::new();
    x.declaration();
    x.open(
        "ClinicalDocument",
        &[
            ("xmlns", relais_cda::HL7_NS),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ],
    );
    header(&mut x, intake, ctx, &ids, level);
    x.open("component", &[]);
    match &intake.ldl_ses {
        None => {
            x.open("nonXMLBody", &[]);
            x.leaf(
                "text",
                &[("mediaType", "application/pdf"), ("representation", "B64")],
                &base64_lines(pdf),
            );
            x.close("nonXMLBody");
        }
        Some(l) => {
            x.open("structuredBody", &[]);
            crate::ldl_ses::sections(&mut x, intake, l, ctx);
            if ctx.pdf_copy_in_level3 {
                pdf_copy_section(&mut x, pdf, ctx);
            }
            x.close("structuredBody");
        }
    }
    x.close("component");
    x.close("ClinicalDocument");
    let xml = x.finish().map_err(|source| BuildError::Io {
        what: "CDA document",
        source,
    })?;
    self_check(&xml)?;
    Ok(BuiltCda {
        xml,
        level,
        unique_id: ids.id_xds(),
        set_id: ids.set_id_xds(),
    })
}

/// The header rules of `relais-cda` must accept what we wrote (errors only: the missing-INS
/// warning is expected for a patient known by IPP).
fn self_check(xml: &[u8]) -> Result<(), BuildError> {
    let doc = relais_cda::read(xml, &relais_core::Limits::default()).map_err(|e| {
        BuildError::SelfCheck {
            what: "CDA",
            why: format!("not readable back: {}", e.code()),
        }
    })?;
    let errors: Vec<String> = relais_cda::check_header(&doc)
        .into_iter()
        .filter(|f| f.is_error())
        .map(|f| format!("{} at {}", f.code, f.location))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BuildError::SelfCheck {
            what: "CDA",
            why: errors.join("; "),
        })
    }
}

/// The document's identifiers.
struct DocIds {
    root: String,
    id_ext: String,
    set_ext: String,
}

impl DocIds {
    fn new(intake: &Intake, ctx: &BuildContext) -> DocIds {
        DocIds {
            root: ctx.document_root_oid.clone(),
            id_ext: intake
                .document
                .id
                .clone()
                .unwrap_or_else(|| ctx.token("document-id")),
            set_ext: intake
                .document
                .set_id
                .clone()
                .unwrap_or_else(|| ctx.token("document-set-id")),
        }
    }
    fn id_xds(&self) -> String {
        format!("{}^{}", self.root, self.id_ext)
    }
    fn set_id_xds(&self) -> String {
        format!("{}^{}", self.root, self.set_ext)
    }
}

/// Base64 in lines of 76 characters, starting and ending on a line of its own.
pub(crate) fn base64_lines(bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 76 + 2);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(76) {
        // Base64 is ASCII: every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn header(x: &mut XmlOut, intake: &Intake, ctx: &BuildContext, ids: &DocIds, level: Level) {
    let d = &intake.document;
    let created = d.created.unwrap_or(ctx.now).to_cda();
    x.empty("realmCode", &[("code", "FR")]);
    x.empty(
        "typeId",
        &[
            ("root", "2.16.840.1.113883.1.3"),
            ("extension", "POCD_HD000040"),
        ],
    );
    x.empty("templateId", &[("root", codes::TEMPLATE_HL7_FRANCE)]);
    x.empty("templateId", &[("root", codes::TEMPLATE_CISIS)]);
    match level {
        Level::N1 => x.empty("templateId", &[("root", codes::TEMPLATE_N1)]),
        Level::N3 => x.empty(
            "templateId",
            &[
                ("root", codes::TEMPLATE_LDL_SES.0),
                ("extension", codes::TEMPLATE_LDL_SES.1),
            ],
        ),
    }
    x.empty("id", &[("root", &ids.root), ("extension", &ids.id_ext)]);
    let system = d.type_code_system.as_deref().unwrap_or(LOINC);
    let mut code_attrs = vec![
        ("code", d.type_code.as_str()),
        ("displayName", intake.type_display()),
        ("codeSystem", system),
    ];
    if system == LOINC {
        code_attrs.push(("codeSystemName", "LOINC"));
    }
    x.empty("code", &code_attrs);
    x.leaf("title", &[], &d.title);
    x.empty("effectiveTime", &[("value", &created)]);
    let (conf, conf_display) = d.confidentiality.code();
    x.empty(
        "confidentialityCode",
        &[
            ("code", conf),
            ("displayName", conf_display),
            ("codeSystem", "2.16.840.1.113883.5.25"),
        ],
    );
    x.empty("languageCode", &[("code", "fr-FR")]);
    x.empty("setId", &[("root", &ids.root), ("extension", &ids.set_ext)]);
    x.empty("versionNumber", &[("value", "1")]);
    record_target(x, intake);
    author(x, intake, &created);
    custodian(x, intake);
    for r in &intake.recipients {
        let Some(rpps) = &r.rpps else { continue };
        x.open("informationRecipient", &[]);
        x.open("intendedRecipient", &[]);
        x.empty(
            "id",
            &[("root", PS_ID_OID), ("extension", &format!("8{rpps}"))],
        );
        if let Some(addr) = &r.mssante {
            x.empty("telecom", &[("value", &format!("mailto:{addr}"))]);
        }
        if let Some(family) = &r.family_name {
            x.open("informationRecipient", &[]);
            person_name(
                x,
                r.civility.map(|c| c.code()),
                r.given_name.as_deref(),
                family,
                r.title.map(|t| t.code()),
            );
            x.close("informationRecipient");
        }
        x.close("intendedRecipient");
        x.close("informationRecipient");
    }
    legal_authenticator(x, intake, &created);
    if let Some(gp) = &intake.gp {
        participant_gp(x, gp);
    }
    documentation_of(x, intake);
    component_of(x, intake);
}

fn record_target(x: &mut XmlOut, intake: &Intake) {
    let p = &intake.patient;
    x.open("recordTarget", &[]);
    x.open("patientRole", &[]);
    if let Some(ins) = &p.ins {
        x.empty("id", &[("root", ins.kind.oid()), ("extension", &ins.value)]);
    }
    if let Some(ipp) = &p.ipp {
        x.empty(
            "id",
            &[("root", &ipp.assigner_oid), ("extension", &ipp.value)],
        );
    }
    if let Some(a) = &p.address {
        address(x, a, Some("H"));
    }
    if let Some(phone) = &p.phone {
        x.empty("telecom", &[("value", &tel(phone)), ("use", "H")]);
    }
    x.open("patient", &[("classCode", "PSN")]);
    x.open("name", &[]);
    x.leaf("family", &[("qualifier", "BR")], &p.birth_family_name);
    x.leaf("given", &[], &p.birth_given_names.join(" "));
    if let Some(first) = p.birth_given_names.first() {
        x.leaf("given", &[("qualifier", "BR")], first);
    }
    if let Some(used) = &p.used_family_name {
        x.leaf("family", &[("qualifier", "CL")], used);
    }
    if let Some(used) = &p.used_given_name {
        x.leaf("given", &[("qualifier", "CL")], used);
    }
    x.close("name");
    let (sex, sex_display) = p.sex.code();
    x.empty(
        "administrativeGenderCode",
        &[
            ("code", sex),
            ("displayName", sex_display),
            ("codeSystem", "2.16.840.1.113883.5.1"),
        ],
    );
    x.empty("birthTime", &[("value", &p.birth_date.to_cda())]);
    if let Some(place) = &p.birth_place_code {
        x.open("birthplace", &[]);
        x.open("place", &[]);
        x.open("addr", &[]);
        x.leaf("county", &[], place);
        x.close("addr");
        x.close("place");
        x.close("birthplace");
    }
    x.close("patient");
    x.close("patientRole");
    x.close("recordTarget");
}

/// `tel:` URL of a phone number (spaces, dots and dashes removed).
fn tel(phone: &str) -> String {
    let compact: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    format!("tel:{compact}")
}

fn address(x: &mut XmlOut, a: &Address, use_: Option<&str>) {
    let attrs: Vec<(&str, &str)> = use_.map(|u| ("use", u)).into_iter().collect();
    x.open("addr", &attrs);
    if let Some(s) = &a.house_number {
        x.leaf("houseNumber", &[], s);
    }
    if let Some(s) = &a.street_name {
        x.leaf("streetName", &[], s);
    }
    if let Some(s) = &a.postal_code {
        x.leaf("postalCode", &[], s);
    }
    if let Some(s) = &a.city {
        x.leaf("city", &[], s);
    }
    if let Some(s) = &a.country {
        x.leaf("country", &[], s);
    }
    x.close("addr");
}

fn person_name(
    x: &mut XmlOut,
    prefix: Option<&str>,
    given: Option<&str>,
    family: &str,
    suffix: Option<&str>,
) {
    x.open("name", &[]);
    if let Some(p) = prefix {
        x.leaf("prefix", &[], p);
    }
    if let Some(g) = given {
        x.leaf("given", &[], g);
    }
    x.leaf("family", &[], family);
    if let Some(s) = suffix {
        x.leaf("suffix", &[], s);
    }
    x.close("name");
}

fn professional_name(x: &mut XmlOut, p: &Professional) {
    person_name(
        x,
        p.civility.map(|c| c.code()),
        Some(&p.given_name),
        &p.family_name,
        p.title.map(|t| t.code()),
    );
}

fn ps_id(x: &mut XmlOut, p: &Professional) {
    x.empty(
        "id",
        &[("root", PS_ID_OID), ("extension", &format!("8{}", p.rpps))],
    );
}

fn profession(x: &mut XmlOut, c: &Code) {
    x.empty(
        "code",
        &[
            ("code", &c.code),
            ("displayName", &c.display),
            ("codeSystem", c.system_or(PROFESSION_SYSTEM)),
        ],
    );
}

/// `representedOrganization` (or another organisation element): FINESS, name, phone, address,
/// and the practice setting when `with_setting`.
fn organization(x: &mut XmlOut, element: &str, intake: &Intake, name: &str, with_setting: bool) {
    let o = &intake.organization;
    x.open(element, &[]);
    x.empty(
        "id",
        &[
            ("root", STRUCTURE_ID_OID),
            ("extension", &format!("1{}", o.finess)),
        ],
    );
    x.leaf("name", &[], name);
    if let Some(phone) = &o.phone {
        x.empty("telecom", &[("value", &tel(phone)), ("use", "WP")]);
    }
    if let Some(a) = &o.address {
        address(x, a, None);
    }
    if with_setting {
        let s = &o.practice_setting;
        x.empty(
            "standardIndustryClassCode",
            &[
                ("code", &s.code),
                ("displayName", &s.display),
                ("codeSystem", s.system_or(codes::PRACTICE_SETTING_SYSTEM)),
            ],
        );
    }
    x.close(element);
}

fn author(x: &mut XmlOut, intake: &Intake, created: &str) {
    let a = &intake.author;
    x.open("author", &[]);
    x.empty("time", &[("value", created)]);
    x.open("assignedAuthor", &[]);
    ps_id(x, a);
    profession(x, &a.profession);
    if let Some(m) = &a.mssante {
        x.empty(
            "telecom",
            &[("value", &format!("mailto:{m}")), ("use", "WP")],
        );
    }
    if let Some(phone) = &a.phone {
        x.empty("telecom", &[("value", &tel(phone)), ("use", "WP")]);
    }
    x.open("assignedPerson", &[]);
    professional_name(x, a);
    x.close("assignedPerson");
    organization(
        x,
        "representedOrganization",
        intake,
        &intake.organization.name,
        true,
    );
    x.close("assignedAuthor");
    x.close("author");
}

fn custodian(x: &mut XmlOut, intake: &Intake) {
    x.open("custodian", &[]);
    x.open("assignedCustodian", &[]);
    organization(
        x,
        "representedCustodianOrganization",
        intake,
        &intake.organization.name,
        false,
    );
    x.close("assignedCustodian");
    x.close("custodian");
}

fn legal_authenticator(x: &mut XmlOut, intake: &Intake, created: &str) {
    let s = intake.signer();
    x.open("legalAuthenticator", &[]);
    x.empty("time", &[("value", created)]);
    x.empty("signatureCode", &[("code", "S")]);
    x.open("assignedEntity", &[]);
    ps_id(x, s);
    x.open("assignedPerson", &[]);
    professional_name(x, s);
    x.close("assignedPerson");
    organization(
        x,
        "representedOrganization",
        intake,
        &intake.organization.name,
        false,
    );
    x.close("assignedEntity");
    x.close("legalAuthenticator");
}

/// The médecin traitant: `participant` of type INF with function PCP (as in the ANS LDL-SES
/// example).
fn participant_gp(x: &mut XmlOut, gp: &Recipient) {
    let (Some(rpps), Some(family)) = (&gp.rpps, &gp.family_name) else {
        return;
    };
    x.open("participant", &[("typeCode", "INF")]);
    x.empty(
        "functionCode",
        &[
            ("code", "PCP"),
            ("displayName", "Médecin Traitant"),
            ("codeSystem", "2.16.840.1.113883.5.88"),
        ],
    );
    x.empty("time", &[("nullFlavor", "NA")]);
    x.open("associatedEntity", &[("classCode", "PROV")]);
    x.empty(
        "id",
        &[("root", PS_ID_OID), ("extension", &format!("8{rpps}"))],
    );
    if let Some(addr) = &gp.mssante {
        x.empty(
            "telecom",
            &[("value", &format!("mailto:{addr}")), ("use", "WP")],
        );
    }
    x.open("associatedPerson", &[]);
    person_name(
        x,
        gp.civility.map(|c| c.code()),
        gp.given_name.as_deref(),
        family,
        gp.title.map(|t| t.code()),
    );
    x.close("associatedPerson");
    x.close("associatedEntity");
    x.close("participant");
}

fn documentation_of(x: &mut XmlOut, intake: &Intake) {
    let e = &intake.encounter;
    x.open("documentationOf", &[]);
    x.open("serviceEvent", &[]);
    match &e.service_event {
        Some(c) => x.empty(
            "code",
            &[
                ("code", &c.code),
                ("displayName", &c.display),
                ("codeSystem", c.system_or(LOINC)),
            ],
        ),
        None => {
            let (code, display, system) = e.kind.code();
            x.empty(
                "code",
                &[
                    ("code", code),
                    ("displayName", display),
                    ("codeSystem", system),
                ],
            );
        }
    }
    interval(x, "effectiveTime", &e.start, e.end.as_ref());
    x.open("performer", &[("typeCode", "PRF")]);
    x.open("assignedEntity", &[]);
    ps_id(x, &intake.author);
    profession(x, &intake.author.profession);
    x.open("assignedPerson", &[]);
    professional_name(x, &intake.author);
    x.close("assignedPerson");
    let unit = e.service.as_deref().unwrap_or(&intake.organization.name);
    organization(x, "representedOrganization", intake, unit, true);
    x.close("assignedEntity");
    x.close("performer");
    x.close("serviceEvent");
    x.close("documentationOf");
}

/// `<name><low/><high/></name>` (high omitted when unknown).
pub(crate) fn interval(
    x: &mut XmlOut,
    name: &str,
    low: &crate::Timestamp,
    high: Option<&crate::Timestamp>,
) {
    x.open(name, &[]);
    x.empty("low", &[("value", &low.to_cda())]);
    if let Some(h) = high {
        x.empty("high", &[("value", &h.to_cda())]);
    }
    x.close(name);
}

fn component_of(x: &mut XmlOut, intake: &Intake) {
    let e = &intake.encounter;
    let o = &intake.organization;
    x.open("componentOf", &[]);
    x.open("encompassingEncounter", &[]);
    if let Some(id) = &e.id {
        x.empty(
            "id",
            &[("root", &id.assigner_oid), ("extension", &id.value)],
        );
    }
    let (code, display, system) = e.kind.code();
    x.empty(
        "code",
        &[
            ("code", code),
            ("displayName", display),
            ("codeSystem", system),
        ],
    );
    interval(x, "effectiveTime", &e.start, e.end.as_ref());
    x.open("location", &[]);
    x.open("healthCareFacility", &[]);
    x.empty(
        "code",
        &[
            ("code", &o.facility_type.code),
            ("displayName", &o.facility_type.display),
            (
                "codeSystem",
                o.facility_type.system_or(codes::FACILITY_TYPE_SYSTEM),
            ),
        ],
    );
    x.close("healthCareFacility");
    x.close("location");
    x.close("encompassingEncounter");
    x.close("componentOf");
}

/// The section FR-Document-PDF-copie (1.2.250.1.213.1.1.2.243) with its entry
/// FR-Document-attache holding the PDF.
fn pdf_copy_section(x: &mut XmlOut, pdf: &[u8], ctx: &BuildContext) {
    x.open("component", &[]);
    x.open("section", &[]);
    x.empty(
        "templateId",
        &[("root", relais_cda::PDF_COPY_SECTION_TEMPLATE_ID)],
    );
    x.empty("id", &[("root", &ctx.uuid("section-pdf-copy"))]);
    x.empty(
        "code",
        &[
            ("code", "55108-5"),
            ("displayName", "Copie du document"),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
        ],
    );
    x.leaf("title", &[], "Copie du document");
    x.open("text", &[]);
    x.open("table", &[("border", "0")]);
    x.open("tbody", &[]);
    x.open("tr", &[]);
    x.open("td", &[]);
    x.leaf(
        "content",
        &[("ID", "pdf-copy-type")],
        "Copie du document (PDF)",
    );
    x.close("td");
    x.close("tr");
    x.open("tr", &[]);
    x.open("td", &[]);
    x.empty("renderMultiMedia", &[("referencedObject", "pdf-copy")]);
    x.close("td");
    x.close("tr");
    x.close("tbody");
    x.close("table");
    x.close("text");
    x.open("entry", &[]);
    x.open(
        "organizer",
        &[("classCode", "CLUSTER"), ("moodCode", "EVN")],
    );
    x.empty("templateId", &[("root", "1.2.250.1.213.1.1.3.18")]);
    x.empty("id", &[("root", &ctx.uuid("entry-pdf-copy"))]);
    x.empty(
        "code",
        &[
            ("code", "55107-7"),
            ("displayName", "Document attaché"),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
        ],
    );
    x.empty("statusCode", &[("code", "completed")]);
    x.open("component", &[]);
    x.open("observation", &[("classCode", "OBS"), ("moodCode", "EVN")]);
    x.empty("templateId", &[("root", "1.3.6.1.4.1.19376.1.5.3.1.4.13")]);
    x.empty("templateId", &[("root", "1.2.250.1.213.1.1.3.48")]);
    x.empty("templateId", &[("root", "1.2.250.1.213.1.1.3.48.18")]);
    x.empty("id", &[("root", &ctx.uuid("entry-pdf-copy-type"))]);
    x.empty(
        "code",
        &[
            ("code", "69764-9"),
            ("displayName", "Type de document"),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
        ],
    );
    x.open("text", &[]);
    x.empty("reference", &[("value", "#pdf-copy-type")]);
    x.close("text");
    x.empty("statusCode", &[("code", "completed")]);
    x.empty("effectiveTime", &[("nullFlavor", "NA")]);
    x.empty(
        "value",
        &[
            ("xsi:type", "CD"),
            ("code", "55108-5"),
            ("displayName", "Copie du document"),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
        ],
    );
    x.close("observation");
    x.close("component");
    x.open("component", &[]);
    x.open(
        "observationMedia",
        &[
            ("classCode", "OBS"),
            ("moodCode", "EVN"),
            ("ID", "pdf-copy"),
        ],
    );
    x.leaf(
        "value",
        &[("mediaType", "application/pdf"), ("representation", "B64")],
        &base64_lines(pdf),
    );
    x.close("observationMedia");
    x.close("component");
    x.close("organizer");
    x.close("entry");
    x.close("section");
    x.close("component");
}
