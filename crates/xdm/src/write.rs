//! Writing [`Metadata`] as METADATA.XML (ebRS 3.0 `SubmitObjectsRequest`).
//!
//! The writer is deliberately literal: it writes what the model holds, empty values excepted
//! (an empty `unique_id` writes no ExternalIdentifier), and invents nothing but the `id`s of the
//! nested Classification and ExternalIdentifier objects, which the model does not keep. That lets
//! tests build invalid variants by editing a [`Metadata`] and writing it. Element order follows
//! the ebRIM 3.0 schema (Slot, Name, Description, Classification, ExternalIdentifier).

use crate::ids::name_based_uuid;
use crate::model::{Author, Coded, DocumentEntry, Metadata, Slot, SubmissionSet, uuids};
use std::fmt::Write as _;

/// Serialise `metadata` as a complete METADATA.XML document (UTF-8, with XML declaration).
pub fn write_metadata_xml(metadata: &Metadata) -> String {
    let mut w = XmlOut::default();
    w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w.raw(&format!(
        "<lcm:SubmitObjectsRequest xmlns:lcm=\"{}\" xmlns:rim=\"{}\">\n",
        uuids::NS_LCM,
        uuids::NS_RIM
    ));
    w.raw("  <rim:RegistryObjectList>\n");
    if let Some(ss) = &metadata.submission_set {
        write_submission_set(&mut w, ss);
    }
    for e in &metadata.entries {
        write_entry(&mut w, e);
    }
    for a in &metadata.associations {
        w.open(
            2,
            "rim:Association",
            &[
                ("associationType", &a.association_type),
                ("sourceObject", &a.source),
                ("targetObject", &a.target),
                ("id", &a.id),
                ("objectType", uuids::ASSOCIATION_OBJECT_TYPE),
            ],
        );
        if let Some(status) = &a.submission_set_status {
            w.slot(3, "SubmissionSetStatus", std::slice::from_ref(status));
        }
        w.close(2, "rim:Association");
    }
    w.raw("  </rim:RegistryObjectList>\n");
    w.raw("</lcm:SubmitObjectsRequest>\n");
    w.out
}

fn write_submission_set(w: &mut XmlOut, ss: &SubmissionSet) {
    let id = ss.entry_uuid.as_str();
    let mut attrs: Vec<(&str, &str)> = vec![
        ("id", id),
        ("objectType", uuids::REGISTRY_PACKAGE_OBJECT_TYPE),
    ];
    if let Some(status) = &ss.availability_status {
        attrs.push(("status", status));
    }
    w.open(2, "rim:RegistryPackage", &attrs);
    if let Some(t) = &ss.submission_time {
        w.slot(3, "submissionTime", std::slice::from_ref(t));
    }
    if !ss.intended_recipients.is_empty() {
        w.slot(3, "intendedRecipient", &ss.intended_recipients);
    }
    w.other_slots(3, &ss.other_slots);
    w.localized(3, "rim:Name", ss.title.as_deref());
    w.localized(3, "rim:Description", ss.comments.as_deref());
    for (i, a) in ss.authors.iter().enumerate() {
        w.author(3, id, uuids::SUBMISSION_SET_AUTHOR, i, a);
    }
    if let Some(c) = &ss.content_type_code {
        w.coded(3, id, uuids::SUBMISSION_SET_CONTENT_TYPE_CODE, 0, c);
    }
    w.external_id(
        3,
        id,
        uuids::SUBMISSION_SET_UNIQUE_ID,
        &ss.unique_id,
        "XDSSubmissionSet.uniqueId",
    );
    w.external_id(
        3,
        id,
        uuids::SUBMISSION_SET_SOURCE_ID,
        &ss.source_id,
        "XDSSubmissionSet.sourceId",
    );
    if let Some(p) = &ss.patient_id {
        w.external_id(
            3,
            id,
            uuids::SUBMISSION_SET_PATIENT_ID,
            &p.to_hl7(),
            "XDSSubmissionSet.patientId",
        );
    }
    w.close(2, "rim:RegistryPackage");
    let class_id = name_based_uuid(&format!("{id}|submission-set-node"));
    w.empty(
        2,
        "rim:Classification",
        &[
            ("classifiedObject", id),
            ("classificationNode", uuids::SUBMISSION_SET_NODE),
            ("id", &class_id),
            ("objectType", uuids::CLASSIFICATION_OBJECT_TYPE),
        ],
    );
}

fn write_entry(w: &mut XmlOut, e: &DocumentEntry) {
    let id = e.entry_uuid.as_str();
    let mut attrs: Vec<(&str, &str)> = vec![("id", id)];
    if !e.mime_type.is_empty() {
        attrs.push(("mimeType", &e.mime_type));
    }
    if !e.object_type.is_empty() {
        attrs.push(("objectType", &e.object_type));
    }
    if let Some(status) = &e.availability_status {
        attrs.push(("status", status));
    }
    w.open(2, "rim:ExtrinsicObject", &attrs);
    let one = |v: &Option<String>| v.as_ref().map(|v| vec![v.clone()]);
    let singles: [(&str, Option<Vec<String>>); 10] = [
        ("creationTime", one(&e.creation_time)),
        ("hash", one(&e.hash)),
        ("languageCode", one(&e.language_code)),
        ("legalAuthenticator", one(&e.legal_authenticator)),
        ("serviceStartTime", one(&e.service_start_time)),
        ("serviceStopTime", one(&e.service_stop_time)),
        ("size", e.size.map(|s| vec![s.to_string()])),
        (
            "sourcePatientId",
            e.source_patient_id.as_ref().map(|c| vec![c.to_hl7()]),
        ),
        (
            "sourcePatientInfo",
            Some(e.source_patient_info.clone()).filter(|v| !v.is_empty()),
        ),
        ("URI", one(&e.uri)),
    ];
    for (name, values) in singles {
        if let Some(values) = values {
            w.slot(3, name, &values);
        }
    }
    w.other_slots(3, &e.other_slots);
    w.localized(3, "rim:Name", e.title.as_deref());
    w.localized(3, "rim:Description", e.comments.as_deref());
    for (i, a) in e.authors.iter().enumerate() {
        w.author(3, id, uuids::DOCUMENT_ENTRY_AUTHOR, i, a);
    }
    let codes: [(&str, Vec<&Coded>); 7] = [
        (
            uuids::DOCUMENT_ENTRY_CLASS_CODE,
            e.class_code.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_CONFIDENTIALITY_CODE,
            e.confidentiality_codes.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_EVENT_CODE,
            e.event_codes.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_FORMAT_CODE,
            e.format_code.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_HEALTHCARE_FACILITY_TYPE_CODE,
            e.healthcare_facility_type_code.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_PRACTICE_SETTING_CODE,
            e.practice_setting_code.iter().collect(),
        ),
        (
            uuids::DOCUMENT_ENTRY_TYPE_CODE,
            e.type_code.iter().collect(),
        ),
    ];
    for (scheme, list) in codes {
        for (i, c) in list.into_iter().enumerate() {
            w.coded(3, id, scheme, i, c);
        }
    }
    if let Some(p) = &e.patient_id {
        w.external_id(
            3,
            id,
            uuids::DOCUMENT_ENTRY_PATIENT_ID,
            &p.to_hl7(),
            "XDSDocumentEntry.patientId",
        );
    }
    w.external_id(
        3,
        id,
        uuids::DOCUMENT_ENTRY_UNIQUE_ID,
        &e.unique_id,
        "XDSDocumentEntry.uniqueId",
    );
    w.close(2, "rim:ExtrinsicObject");
}

/// A tiny indenting XML emitter with careful escaping.
#[derive(Default)]
struct XmlOut {
    out: String,
}

impl XmlOut {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn start(&mut self, depth: usize, name: &str, attrs: &[(&str, &str)]) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", escape(v, true));
        }
    }

    fn open(&mut self, depth: usize, name: &str, attrs: &[(&str, &str)]) {
        self.start(depth, name, attrs);
        self.out.push_str(">\n");
    }

    fn empty(&mut self, depth: usize, name: &str, attrs: &[(&str, &str)]) {
        self.start(depth, name, attrs);
        self.out.push_str("/>\n");
    }

    fn close(&mut self, depth: usize, name: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        let _ = writeln!(self.out, "</{name}>");
    }

    fn slot(&mut self, depth: usize, name: &str, values: &[String]) {
        self.open(depth, "rim:Slot", &[("name", name)]);
        if values.is_empty() {
            self.empty(depth + 1, "rim:ValueList", &[]);
        } else {
            self.open(depth + 1, "rim:ValueList", &[]);
            for v in values {
                for _ in 0..depth + 2 {
                    self.out.push_str("  ");
                }
                let _ = writeln!(self.out, "<rim:Value>{}</rim:Value>", escape(v, false));
            }
            self.close(depth + 1, "rim:ValueList");
        }
        self.close(depth, "rim:Slot");
    }

    fn other_slots(&mut self, depth: usize, slots: &[Slot]) {
        for s in slots {
            self.slot(depth, &s.name, &s.values);
        }
    }

    fn localized(&mut self, depth: usize, element: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.open(depth, element, &[]);
            self.empty(depth + 1, "rim:LocalizedString", &[("value", v)]);
            self.close(depth, element);
        }
    }

    fn coded(&mut self, depth: usize, owner: &str, scheme: &str, index: usize, c: &Coded) {
        let id = name_based_uuid(&format!("{owner}|{scheme}|{index}"));
        self.open(
            depth,
            "rim:Classification",
            &[
                ("classificationScheme", scheme),
                ("classifiedObject", owner),
                ("nodeRepresentation", &c.code),
                ("id", &id),
                ("objectType", uuids::CLASSIFICATION_OBJECT_TYPE),
            ],
        );
        if !c.scheme.is_empty() {
            self.slot(depth + 1, "codingScheme", std::slice::from_ref(&c.scheme));
        }
        self.localized(depth + 1, "rim:Name", c.display.as_deref());
        self.close(depth, "rim:Classification");
    }

    fn author(&mut self, depth: usize, owner: &str, scheme: &str, index: usize, a: &Author) {
        let id = name_based_uuid(&format!("{owner}|{scheme}|{index}"));
        self.open(
            depth,
            "rim:Classification",
            &[
                ("classificationScheme", scheme),
                ("classifiedObject", owner),
                ("nodeRepresentation", ""),
                ("id", &id),
                ("objectType", uuids::CLASSIFICATION_OBJECT_TYPE),
            ],
        );
        if let Some(p) = &a.person {
            self.slot(depth + 1, "authorPerson", std::slice::from_ref(p));
        }
        for (name, values) in [
            ("authorInstitution", &a.institutions),
            ("authorRole", &a.roles),
            ("authorSpecialty", &a.specialties),
            ("authorTelecommunication", &a.telecoms),
        ] {
            if !values.is_empty() {
                self.slot(depth + 1, name, values);
            }
        }
        self.close(depth, "rim:Classification");
    }

    fn external_id(&mut self, depth: usize, owner: &str, scheme: &str, value: &str, label: &str) {
        if value.is_empty() {
            return;
        }
        let id = name_based_uuid(&format!("{owner}|{scheme}"));
        self.open(
            depth,
            "rim:ExternalIdentifier",
            &[
                ("identificationScheme", scheme),
                ("value", value),
                ("id", &id),
                ("objectType", uuids::EXTERNAL_IDENTIFIER_OBJECT_TYPE),
                ("registryObject", owner),
            ],
        );
        self.localized(depth + 1, "rim:Name", Some(label));
        self.close(depth, "rim:ExternalIdentifier");
    }
}

/// Escape text for XML content or a double-quoted attribute. Characters XML 1.0 cannot carry at
/// all (most C0 controls, U+FFFE/U+FFFF) become U+FFFD so the output is always well-formed;
/// tab, newline and carriage return are written as character references so that they survive
/// attribute-value and line-end normalisation.
pub(crate) fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' | '\n' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
