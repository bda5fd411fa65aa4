//! Reading METADATA.XML (an ebRS 3.0 `SubmitObjectsRequest`) into [`Metadata`], and checking it.
//!
//! Elements are matched on their local names so that a package written with ebRS 2.1 prefixes
//! or without prefixes still reads; the structure checked is the one of ebRS 3.0. Reading is
//! lenient (a missing attribute gives an empty string) and every problem becomes a [`Finding`]:
//! the receiver of a mail must be able to say precisely what is wrong with a package.

use crate::codes;
use crate::model::{
    Association, Author, Coded, Cx, DocumentEntry, Metadata, Slot, SubmissionSet, uuids,
};
use relais_core::{Finding, Limits, Location, Severity, xml};
use roxmltree::Node;
use std::collections::{BTreeMap, BTreeSet};

/// Parse the bytes of a METADATA.XML found at `path` (used for locations) and check it with
/// [`check_metadata`]. Returns `None` when the file is not XML or not a `SubmitObjectsRequest`;
/// the findings say why.
pub fn parse_metadata(
    xml_bytes: &[u8],
    path: &str,
    limits: &Limits,
) -> (Option<Metadata>, Vec<Finding>) {
    let loc = || Location::ZipEntry(path.to_string());
    let text = match xml::decode(xml_bytes) {
        Ok(t) => t,
        Err(e) => return (None, vec![xml_finding(&e, path)]),
    };
    let doc = match xml::parse(&text, limits) {
        Ok(d) => d,
        Err(e) => return (None, vec![xml_finding(&e, path)]),
    };
    let root = doc.root_element();
    if root.tag_name().name() != "SubmitObjectsRequest" {
        let f = Finding::error(
            codes::XDM_METADATA_INVALID,
            format!(
                "METADATA.XML has root element <{}>, expected an ebRS <lcm:SubmitObjectsRequest>",
                root.tag_name().name()
            ),
        )
        .at(loc());
        return (None, vec![f]);
    }
    let Some(list) = root.children().find(|n| {
        n.is_element()
            && matches!(
                n.tag_name().name(),
                "RegistryObjectList" | "LeafRegistryObjectList"
            )
    }) else {
        let f = Finding::error(
            codes::XDM_METADATA_INVALID,
            "METADATA.XML has no <rim:RegistryObjectList>: the SubmitObjectsRequest carries no metadata",
        )
        .at(loc());
        return (None, vec![f]);
    };
    let mut findings = Vec::new();
    let metadata = read_list(list, path, &mut findings);
    findings.extend(check_metadata(&metadata, path));
    (Some(metadata), findings)
}

fn xml_finding(e: &xml::XmlError, path: &str) -> Finding {
    let mut msg = format!("METADATA.XML: {e}");
    if let xml::XmlError::NotWellFormed { line, column, .. } = e {
        msg.push_str(&format!(" (line {line}, column {column})"));
    }
    Finding::error(e.code(), msg).at(Location::ZipEntry(path.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Reading

fn elements<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

fn attr(node: Node<'_, '_>, name: &str) -> String {
    node.attribute(name).unwrap_or_default().trim().to_string()
}

/// `Name` or `Description` → its first `LocalizedString/@value`.
fn localized(node: Node<'_, '_>, which: &'static str) -> Option<String> {
    let holder = elements(node, which).next()?;
    let ls = elements(holder, "LocalizedString").next()?;
    Some(ls.attribute("value").unwrap_or_default().trim().to_string())
}

/// The slots of a registry object, in document order.
fn slots(node: Node<'_, '_>) -> Vec<Slot> {
    elements(node, "Slot")
        .map(|s| Slot {
            name: attr(s, "name"),
            values: elements(s, "ValueList")
                .flat_map(|vl| elements(vl, "Value"))
                .map(|v| v.text().unwrap_or_default().trim().to_string())
                .collect(),
        })
        .collect()
}

fn slot_values(slots: &[Slot], name: &str) -> Vec<String> {
    slots
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.values.iter().cloned())
        .collect()
}

fn first_value(slots: &[Slot], name: &str) -> Option<String> {
    slots
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.values.first().cloned().unwrap_or_default())
}

/// The `URI` slot: one value, or (XDS long URIs) several `n|part` values to join in order.
fn uri_value(slots: &[Slot]) -> Option<String> {
    let slot = slots.iter().find(|s| s.name == "URI")?;
    if slot.values.len() <= 1 {
        return Some(slot.values.first().cloned().unwrap_or_default());
    }
    let mut parts: Vec<(u32, &str)> = Vec::new();
    for v in &slot.values {
        match v
            .split_once('|')
            .and_then(|(n, rest)| n.trim().parse::<u32>().ok().map(|n| (n, rest)))
        {
            Some(p) => parts.push(p),
            None => return slot.values.first().cloned(),
        }
    }
    parts.sort_by_key(|p| p.0);
    Some(parts.into_iter().map(|p| p.1).collect())
}

/// Classifications and external identifiers of an object: nested ones, plus top-level ones
/// pointing at it (ebRS allows both).
struct Linked<'a, 'i> {
    classifications: Vec<Node<'a, 'i>>,
    identifiers: Vec<Node<'a, 'i>>,
}

fn linked<'a, 'i>(obj: Node<'a, 'i>, id: &str, top: &TopLevel<'a, 'i>) -> Linked<'a, 'i> {
    let mut classifications: Vec<_> = elements(obj, "Classification").collect();
    let mut identifiers: Vec<_> = elements(obj, "ExternalIdentifier").collect();
    if !id.is_empty() {
        if let Some(c) = top.classifications.get(id) {
            classifications.extend(c.iter().copied());
        }
        if let Some(c) = top.identifiers.get(id) {
            identifiers.extend(c.iter().copied());
        }
    }
    Linked {
        classifications,
        identifiers,
    }
}

#[derive(Default)]
struct TopLevel<'a, 'i> {
    classifications: BTreeMap<String, Vec<Node<'a, 'i>>>,
    identifiers: BTreeMap<String, Vec<Node<'a, 'i>>>,
}

fn coded(
    class: Node<'_, '_>,
    owner: &str,
    what: &str,
    path: &str,
    findings: &mut Vec<Finding>,
) -> Coded {
    let s = slots(class);
    let scheme = first_value(&s, "codingScheme");
    if scheme.is_none() {
        findings.push(
            Finding::error(
                codes::XDM_SLOT_INVALID,
                format!("{owner}: {what} classification has no codingScheme slot"),
            )
            .at(Location::ZipEntry(path.to_string())),
        );
    }
    Coded {
        code: attr(class, "nodeRepresentation"),
        scheme: scheme.unwrap_or_default(),
        display: localized(class, "Name"),
    }
}

fn author(class: Node<'_, '_>) -> Author {
    let s = slots(class);
    Author {
        person: first_value(&s, "authorPerson"),
        institutions: slot_values(&s, "authorInstitution"),
        roles: slot_values(&s, "authorRole"),
        specialties: slot_values(&s, "authorSpecialty"),
        telecoms: slot_values(&s, "authorTelecommunication"),
    }
}

fn cx(value: &str, owner: &str, what: &str, path: &str, findings: &mut Vec<Finding>) -> Option<Cx> {
    let parsed = Cx::parse(value);
    if parsed.is_none() {
        findings.push(
            Finding::error(
                codes::XDM_SLOT_INVALID,
                format!(
                    "{owner}: {what} is not an HL7 CX identifier (expected id^^^&OID&ISO^type)"
                ),
            )
            .at(Location::ZipEntry(path.to_string())),
        );
    }
    parsed
}

fn read_list(list: Node<'_, '_>, path: &str, findings: &mut Vec<Finding>) -> Metadata {
    let mut top = TopLevel::default();
    let mut node_classified: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in list.children().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "Classification" => {
                let target = attr(n, "classifiedObject");
                let node = attr(n, "classificationNode");
                if !node.is_empty() {
                    node_classified
                        .entry(target.clone())
                        .or_default()
                        .push(node);
                }
                top.classifications.entry(target).or_default().push(n);
            }
            "ExternalIdentifier" => {
                top.identifiers
                    .entry(attr(n, "registryObject"))
                    .or_default()
                    .push(n);
            }
            _ => {}
        }
    }

    let mut metadata = Metadata::default();
    let mut submission_sets = 0usize;
    for n in list.children().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "ExtrinsicObject" => metadata.entries.push(read_entry(n, &top, path, findings)),
            "RegistryPackage" => {
                let id = attr(n, "id");
                let nested_nodes =
                    elements(n, "Classification").map(|c| attr(c, "classificationNode"));
                let mut nodes: Vec<String> = nested_nodes.collect();
                nodes.extend(node_classified.get(&id).into_iter().flatten().cloned());
                let has_ss_uid = linked(n, &id, &top)
                    .identifiers
                    .iter()
                    .any(|e| attr(*e, "identificationScheme") == uuids::SUBMISSION_SET_UNIQUE_ID);
                let is_ss = nodes.iter().any(|c| c == uuids::SUBMISSION_SET_NODE)
                    || (has_ss_uid && !nodes.iter().any(|c| c == uuids::FOLDER_NODE));
                if is_ss {
                    submission_sets += 1;
                    if metadata.submission_set.is_none() {
                        metadata.submission_set =
                            Some(read_submission_set(n, &top, path, findings));
                    }
                }
            }
            "Association" => {
                let s = slots(n);
                metadata.associations.push(Association {
                    id: attr(n, "id"),
                    association_type: attr(n, "associationType"),
                    source: attr(n, "sourceObject"),
                    target: attr(n, "targetObject"),
                    submission_set_status: first_value(&s, "SubmissionSetStatus"),
                });
            }
            _ => {}
        }
    }
    if submission_sets > 1 {
        findings.push(
            Finding::error(
                codes::XDM_METADATA_INVALID,
                format!("METADATA.XML holds {submission_sets} submission sets; an XDM subset carries exactly one"),
            )
            .at(Location::ZipEntry(path.to_string())),
        );
    }
    metadata
}

fn read_entry(
    n: Node<'_, '_>,
    top: &TopLevel<'_, '_>,
    path: &str,
    findings: &mut Vec<Finding>,
) -> DocumentEntry {
    let id = attr(n, "id");
    let owner = format!("DocumentEntry {id}");
    let s = slots(n);
    let mut e = DocumentEntry {
        entry_uuid: id.clone(),
        object_type: attr(n, "objectType"),
        mime_type: attr(n, "mimeType"),
        availability_status: n.attribute("status").map(|v| v.trim().to_string()),
        title: localized(n, "Name"),
        comments: localized(n, "Description"),
        uri: uri_value(&s),
        hash: first_value(&s, "hash"),
        language_code: first_value(&s, "languageCode"),
        creation_time: first_value(&s, "creationTime"),
        service_start_time: first_value(&s, "serviceStartTime"),
        service_stop_time: first_value(&s, "serviceStopTime"),
        legal_authenticator: first_value(&s, "legalAuthenticator"),
        source_patient_info: slot_values(&s, "sourcePatientInfo"),
        ..DocumentEntry::default()
    };
    if let Some(size) = first_value(&s, "size") {
        match size.parse::<u64>() {
            Ok(v) => e.size = Some(v),
            Err(_) => findings.push(
                Finding::error(
                    codes::XDM_SLOT_INVALID,
                    format!("{owner}: size slot is not a whole number of bytes"),
                )
                .at(Location::ZipEntry(path.to_string())),
            ),
        }
    }
    if let Some(v) = first_value(&s, "sourcePatientId") {
        e.source_patient_id = cx(&v, &owner, "sourcePatientId", path, findings);
    }
    const KNOWN: &[&str] = &[
        "URI",
        "hash",
        "size",
        "languageCode",
        "creationTime",
        "serviceStartTime",
        "serviceStopTime",
        "legalAuthenticator",
        "sourcePatientInfo",
        "sourcePatientId",
    ];
    e.other_slots = s
        .into_iter()
        .filter(|x| !KNOWN.contains(&x.name.as_str()))
        .collect();

    let links = linked(n, &id, top);
    for c in links.classifications {
        let scheme = attr(c, "classificationScheme");
        match scheme.as_str() {
            uuids::DOCUMENT_ENTRY_AUTHOR => e.authors.push(author(c)),
            uuids::DOCUMENT_ENTRY_CLASS_CODE => set_once(
                &mut e.class_code,
                coded(c, &owner, "classCode", path, findings),
            ),
            uuids::DOCUMENT_ENTRY_TYPE_CODE => set_once(
                &mut e.type_code,
                coded(c, &owner, "typeCode", path, findings),
            ),
            uuids::DOCUMENT_ENTRY_FORMAT_CODE => set_once(
                &mut e.format_code,
                coded(c, &owner, "formatCode", path, findings),
            ),
            uuids::DOCUMENT_ENTRY_HEALTHCARE_FACILITY_TYPE_CODE => set_once(
                &mut e.healthcare_facility_type_code,
                coded(c, &owner, "healthcareFacilityTypeCode", path, findings),
            ),
            uuids::DOCUMENT_ENTRY_PRACTICE_SETTING_CODE => set_once(
                &mut e.practice_setting_code,
                coded(c, &owner, "practiceSettingCode", path, findings),
            ),
            uuids::DOCUMENT_ENTRY_CONFIDENTIALITY_CODE => e.confidentiality_codes.push(coded(
                c,
                &owner,
                "confidentialityCode",
                path,
                findings,
            )),
            uuids::DOCUMENT_ENTRY_EVENT_CODE => {
                e.event_codes
                    .push(coded(c, &owner, "eventCodeList", path, findings))
            }
            _ => {}
        }
    }
    for x in links.identifiers {
        let value = attr(x, "value");
        match attr(x, "identificationScheme").as_str() {
            uuids::DOCUMENT_ENTRY_PATIENT_ID if e.patient_id.is_none() => {
                e.patient_id = cx(&value, &owner, "patientId", path, findings);
            }
            uuids::DOCUMENT_ENTRY_UNIQUE_ID if e.unique_id.is_empty() => e.unique_id = value,
            _ => {}
        }
    }
    e
}

fn set_once(slot: &mut Option<Coded>, value: Coded) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn read_submission_set(
    n: Node<'_, '_>,
    top: &TopLevel<'_, '_>,
    path: &str,
    findings: &mut Vec<Finding>,
) -> SubmissionSet {
    let id = attr(n, "id");
    let owner = format!("SubmissionSet {id}");
    let s = slots(n);
    let mut ss = SubmissionSet {
        entry_uuid: id.clone(),
        submission_time: first_value(&s, "submissionTime"),
        intended_recipients: slot_values(&s, "intendedRecipient"),
        title: localized(n, "Name"),
        comments: localized(n, "Description"),
        availability_status: n.attribute("status").map(|v| v.trim().to_string()),
        ..SubmissionSet::default()
    };
    ss.other_slots = s
        .into_iter()
        .filter(|x| x.name != "submissionTime" && x.name != "intendedRecipient")
        .collect();
    let links = linked(n, &id, top);
    for c in links.classifications {
        match attr(c, "classificationScheme").as_str() {
            uuids::SUBMISSION_SET_AUTHOR => ss.authors.push(author(c)),
            uuids::SUBMISSION_SET_CONTENT_TYPE_CODE => set_once(
                &mut ss.content_type_code,
                coded(c, &owner, "contentTypeCode", path, findings),
            ),
            _ => {}
        }
    }
    for x in links.identifiers {
        let value = attr(x, "value");
        match attr(x, "identificationScheme").as_str() {
            uuids::SUBMISSION_SET_UNIQUE_ID if ss.unique_id.is_empty() => ss.unique_id = value,
            uuids::SUBMISSION_SET_SOURCE_ID if ss.source_id.is_empty() => ss.source_id = value,
            uuids::SUBMISSION_SET_PATIENT_ID if ss.patient_id.is_none() => {
                ss.patient_id = cx(&value, &owner, "patientId", path, findings);
            }
            _ => {}
        }
    }
    ss
}

// ---------------------------------------------------------------------------------------------
// Checking

type EntryCheck = fn(&DocumentEntry) -> bool;
type SetCheck = fn(&SubmissionSet) -> bool;

/// DocumentEntry metadata required by IHE XDM and the CI-SIS ("Requis" in the ANS mapping of the
/// CDA header to XDS metadata). `hash` and `size` have their own codes. Adjust here.
const ENTRY_REQUIRED: &[(&str, EntryCheck)] = &[
    ("entryUUID", |e| !e.entry_uuid.is_empty()),
    ("uniqueId", |e| !e.unique_id.is_empty()),
    ("patientId", |e| e.patient_id.is_some()),
    ("mimeType", |e| !e.mime_type.is_empty()),
    ("URI", |e| e.uri.as_deref().is_some_and(|u| !u.is_empty())),
    ("title", |e| {
        e.title.as_deref().is_some_and(|t| !t.is_empty())
    }),
    ("classCode", |e| e.class_code.is_some()),
    ("typeCode", |e| e.type_code.is_some()),
    ("formatCode", |e| e.format_code.is_some()),
    ("confidentialityCode", |e| {
        !e.confidentiality_codes.is_empty()
    }),
    ("healthcareFacilityTypeCode", |e| {
        e.healthcare_facility_type_code.is_some()
    }),
    ("practiceSettingCode", |e| e.practice_setting_code.is_some()),
    ("languageCode", |e| {
        e.language_code.as_deref().is_some_and(|v| !v.is_empty())
    }),
    ("creationTime", |e| {
        e.creation_time.as_deref().is_some_and(|v| !v.is_empty())
    }),
    ("serviceStartTime", |e| {
        e.service_start_time
            .as_deref()
            .is_some_and(|v| !v.is_empty())
    }),
    ("sourcePatientId", |e| e.source_patient_id.is_some()),
    ("legalAuthenticator", |e| {
        e.legal_authenticator
            .as_deref()
            .is_some_and(|v| !v.is_empty())
    }),
    ("authorPerson", |e| {
        e.authors.iter().any(|a| a.person.is_some())
    }),
];

/// SubmissionSet metadata required by IHE XDM and the CI-SIS. Adjust here.
const SET_REQUIRED: &[(&str, SetCheck)] = &[
    ("entryUUID", |s| !s.entry_uuid.is_empty()),
    ("uniqueId", |s| !s.unique_id.is_empty()),
    ("sourceId", |s| !s.source_id.is_empty()),
    ("patientId", |s| s.patient_id.is_some()),
    ("submissionTime", |s| {
        s.submission_time.as_deref().is_some_and(|v| !v.is_empty())
    }),
    ("contentTypeCode", |s| s.content_type_code.is_some()),
    ("authorPerson", |s| {
        s.authors.iter().any(|a| a.person.is_some())
    }),
];

/// Check a [`Metadata`] on its own (no archive needed): required slots, value formats, patient
/// consistency, membership associations and duplicate identifiers. `path` is the METADATA.XML
/// path used for locations.
pub fn check_metadata(md: &Metadata, path: &str) -> Vec<Finding> {
    let loc = || Location::ZipEntry(path.to_string());
    let mut out = Vec::new();
    let mut push = |sev: Severity, code, msg: String| {
        let f = match sev {
            Severity::Error => Finding::error(code, msg),
            Severity::Warning => Finding::warning(code, msg),
            Severity::Info => Finding::info(code, msg),
        };
        out.push(f.at(loc()));
    };

    match &md.submission_set {
        None => push(
            Severity::Error,
            codes::XDM_METADATA_INVALID,
            "METADATA.XML has no submission set (a RegistryPackage classified as XDSSubmissionSet)"
                .into(),
        ),
        Some(ss) => {
            let owner = format!("SubmissionSet {}", ss.entry_uuid);
            for (slot, ok) in SET_REQUIRED {
                if !ok(ss) {
                    push(
                        Severity::Error,
                        codes::XDM_SLOT_MISSING,
                        format!("{owner}: required metadata {slot} is missing"),
                    );
                }
            }
            if let Some(t) = &ss.submission_time {
                check_time(t, &owner, "submissionTime", &mut push);
            }
            if let Some(c) = &ss.content_type_code {
                check_coded(c, &owner, "contentTypeCode", &mut push);
            }
        }
    }

    for e in &md.entries {
        let owner = format!("DocumentEntry {}", e.entry_uuid);
        for (slot, ok) in ENTRY_REQUIRED {
            if !ok(e) {
                push(
                    Severity::Error,
                    codes::XDM_SLOT_MISSING,
                    format!("{owner}: required metadata {slot} is missing"),
                );
            }
        }
        match &e.hash {
            None => push(
                Severity::Warning,
                codes::XDM_HASH_MISSING,
                format!("{owner}: no hash slot, the document's integrity cannot be checked"),
            ),
            Some(h) if !is_sha1_hex(h) => push(
                Severity::Error,
                codes::XDM_SLOT_INVALID,
                format!("{owner}: hash slot is not a SHA-1 in hexadecimal (40 hex digits)"),
            ),
            Some(_) => {}
        }
        if e.size.is_none() {
            push(
                Severity::Warning,
                codes::XDM_SIZE_MISSING,
                format!("{owner}: no size slot"),
            );
        }
        for (what, t) in [
            ("creationTime", &e.creation_time),
            ("serviceStartTime", &e.service_start_time),
            ("serviceStopTime", &e.service_stop_time),
        ] {
            if let Some(t) = t {
                check_time(t, &owner, what, &mut push);
            }
        }
        for (what, c) in [
            ("classCode", &e.class_code),
            ("typeCode", &e.type_code),
            ("formatCode", &e.format_code),
            (
                "healthcareFacilityTypeCode",
                &e.healthcare_facility_type_code,
            ),
            ("practiceSettingCode", &e.practice_setting_code),
        ] {
            if let Some(c) = c {
                check_coded(c, &owner, what, &mut push);
            }
        }
        for c in &e.confidentiality_codes {
            check_coded(c, &owner, "confidentialityCode", &mut push);
        }
        for c in &e.event_codes {
            check_coded(c, &owner, "eventCodeList", &mut push);
        }
    }

    // One patient: entries agree with each other and with the submission set.
    let reference = md
        .submission_set
        .as_ref()
        .and_then(|s| s.patient_id.as_ref().map(|p| (p, "the submission set")))
        .or_else(|| {
            md.entries.iter().find_map(|e| {
                e.patient_id
                    .as_ref()
                    .map(|p| (p, "the first document entry"))
            })
        });
    if let Some((reference, what)) = reference {
        for e in &md.entries {
            if let Some(p) = &e.patient_id
                && !p.same_patient(reference)
            {
                push(
                    Severity::Error,
                    codes::XDM_PATIENTID_INCONSISTENT,
                    format!(
                        "DocumentEntry {}: patientId differs from the one of {what}",
                        e.entry_uuid
                    ),
                );
            }
        }
    }

    // Membership: each entry is a member of the submission set.
    if let Some(ss) = &md.submission_set {
        for e in &md.entries {
            let member = md.associations.iter().any(|a| {
                a.association_type.ends_with("HasMember")
                    && a.source == ss.entry_uuid
                    && a.target == e.entry_uuid
            });
            if !member {
                push(
                    Severity::Warning,
                    codes::XDM_ASSOCIATION_MISSING,
                    format!(
                        "DocumentEntry {}: no HasMember association from the submission set to it",
                        e.entry_uuid
                    ),
                );
            }
        }
    }

    // Identifiers are unique.
    let mut uuids_seen = BTreeSet::new();
    let mut uids_seen = BTreeSet::new();
    for e in &md.entries {
        if !e.entry_uuid.is_empty() && !uuids_seen.insert(e.entry_uuid.as_str()) {
            push(
                Severity::Error,
                codes::XDM_DUPLICATE_ID,
                format!("two DocumentEntries share the entryUUID {}", e.entry_uuid),
            );
        }
        if !e.unique_id.is_empty() && !uids_seen.insert(e.unique_id.as_str()) {
            push(
                Severity::Error,
                codes::XDM_DUPLICATE_ID,
                format!(
                    "DocumentEntry {}: uniqueId already used by another entry",
                    e.entry_uuid
                ),
            );
        }
    }
    out
}

fn check_time(
    t: &str,
    owner: &str,
    what: &str,
    push: &mut impl FnMut(Severity, relais_core::RuleCode, String),
) {
    if !is_dtm(t) {
        push(
            Severity::Error,
            codes::XDM_SLOT_INVALID,
            format!("{owner}: {what} is not an HL7 DTM (YYYY[MM[DD[hh[mm[ss]]]]], UTC)"),
        );
    }
}

fn check_coded(
    c: &Coded,
    owner: &str,
    what: &str,
    push: &mut impl FnMut(Severity, relais_core::RuleCode, String),
) {
    if c.code.is_empty() {
        push(
            Severity::Error,
            codes::XDM_SLOT_INVALID,
            format!("{owner}: {what} has an empty code (nodeRepresentation)"),
        );
    }
    if c.scheme.is_empty() {
        push(
            Severity::Error,
            codes::XDM_SLOT_INVALID,
            format!("{owner}: {what} has no codingScheme"),
        );
    }
}

/// An HL7 DTM as XDS uses it: 4, 6, 8, 10, 12 or 14 digits.
pub(crate) fn is_dtm(t: &str) -> bool {
    matches!(t.len(), 4 | 6 | 8 | 10 | 12 | 14) && t.bytes().all(|b| b.is_ascii_digit())
}

/// 40 hexadecimal digits (either case).
pub(crate) fn is_sha1_hex(h: &str) -> bool {
    h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit())
}
