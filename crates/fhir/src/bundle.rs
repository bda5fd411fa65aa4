//! The transaction Bundle that files one CDA document: what goes in it and why.
//!
//! Three entries, in this order (the server answers in the same order):
//!
//! 1. **Patient**, conditional create (`ifNoneExist`) on the hospital's IPP, or on the INS when
//!    there is no IPP. The Patient carries identifiers only: the hospital's patient master owns
//!    names and birth dates, and Relais does not copy them. When the server already knows the
//!    patient, it answers `200` and links the document to the existing Patient.
//! 2. **Binary**, the CDA itself (`application/hl7-v3+xml`), whose `securityContext` points to the
//!    DocumentReference so that the server guards the document with the reference's permissions.
//! 3. **DocumentReference**, conditional create on its `masterIdentifier`, the CDA id: a
//!    transaction replayed after a lost answer (crash, timeout) finds the document already there
//!    and files nothing twice. In R4 the `identifier` search parameter of DocumentReference
//!    covers `masterIdentifier`, so `ifNoneExist: identifier=<system>|<value>` finds it.
//!
//! The `urn:uuid` fullUrls are name-based (UUID v5) on the delivery's idempotency key, so the
//! same delivery always produces the same bundle, byte for byte.
//!
//! Identifier conventions (FHIR R4 and FR Core): a CDA `II` with an extension becomes
//! `system = urn:oid:<root>`, `value = <extension>`; a root alone becomes
//! `system = urn:ietf:rfc:3986`, `value = urn:oid:<root>` (or `urn:uuid:` for a UUID root). The
//! INS is `urn:oid:1.2.250.1.213.1.4.8` (INS-NIR), `.9` (INS-NIA), `.10` (test NIR) or `.11`
//! (demonstration NIR), typed with the FR Core code of its kind; the IPP is typed `PI`
//! (HL7 v2 table 0203) under the hospital's assigner system. The mail's Message-ID goes into
//! `context.related` as an RFC 2392 `mid:` URL: it names the mail the document came in, not the
//! document, so it is not one of the DocumentReference's identifiers.
//!
//! A one-off Binary may remain when a replayed transaction finds the DocumentReference already
//! filed: a Binary has no business identifier to create it conditionally on. The document is
//! still filed once; the extra Binary is unreferenced.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use sha1::{Digest, Sha1};
use uuid::Uuid;

/// MIME type of a CDA R2 document.
pub const CDA_CONTENT_TYPE: &str = "application/hl7-v3+xml";
/// System of an identifier that is itself a URI (`urn:oid:`, `urn:uuid:`, `mid:`).
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
/// LOINC, the code system of CDA document types in the CI-SIS.
pub const LOINC: &str = "http://loinc.org";
/// HL7 v2 table 0203 (identifier types), as a FHIR code system: `PI` for the IPP.
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// FR Core's extension of table 0203: `INS-NIR`, `INS-NIA`, `INS-NIR-TEST`, `INS-NIR-DEMO`.
pub const FR_CORE_V2_0203: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203";

/// Entry positions in the bundle (and in the server's transaction-response).
pub(crate) const PATIENT_ENTRY: usize = 0;
pub(crate) const DOCUMENT_REFERENCE_ENTRY: usize = 2;
/// Number of entries of every bundle built here.
pub(crate) const ENTRY_COUNT: usize = 3;

/// Namespace of the name-based UUIDs of this crate (itself UUID v5 of a URL-like name), so that
/// they never collide with another producer's v5 ids.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:relais:fhir:transaction:1")
}

/// The INS kinds, by the OID of their assigning authority.
const INS_KINDS: [(&str, &str, &str); 4] = [
    ("1.2.250.1.213.1.4.8", "INS-NIR", "NIR définitif"),
    ("1.2.250.1.213.1.4.9", "INS-NIA", "NIR temporaire"),
    ("1.2.250.1.213.1.4.10", "INS-NIR-TEST", "NIR de test"),
    (
        "1.2.250.1.213.1.4.11",
        "INS-NIR-DEMO",
        "NIR de démonstration",
    ),
];

/// One CDA document to file, with what is known about it. Borrowed: the document can weigh
/// megabytes and is serialised straight from the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct DocumentFiling<'a> {
    /// The delivery's idempotency key: the bundle's ids derive from it.
    pub idempotency_key: &'a str,
    /// The CDA `ClinicalDocument/id`: `root^extension`, or `root` alone.
    pub cda_id: &'a str,
    /// The CDA id of the earlier version this document replaces, if any.
    pub replaces: Option<&'a str>,
    /// LOINC code of the document type (`ClinicalDocument/code/@code`).
    pub type_code: Option<&'a str>,
    /// The document's title.
    pub title: Option<&'a str>,
    /// Who the document is about.
    pub patient: PatientIds<'a>,
    /// The Message-ID of the mail the document came in (with or without angle brackets).
    pub mail_message_id: Option<&'a str>,
    /// The CDA document, standard base64 (RFC 4648, no line breaks).
    pub cda_base64: &'a str,
}

/// The patient's identifiers: at least one is needed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientIds<'a> {
    /// The hospital's permanent patient id (IPP), when the patient was matched.
    pub ipp: Option<&'a str>,
    /// The INS read from the document.
    pub ins: Option<Ins<'a>>,
}

/// An INS (Identifiant National de Santé) and the OID of its kind.
#[derive(Debug, Clone, Copy)]
pub struct Ins<'a> {
    /// `1.2.250.1.213.1.4.8` (INS-NIR), `.9` (INS-NIA), `.10` (test), `.11` (demonstration).
    pub oid: &'a str,
    /// The 15-character NIR or NIA.
    pub value: &'a str,
}

/// Why no bundle can be built for a document. These are properties of the document or of the
/// configuration, not of the server: retrying does not help. Texts never quote patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Neither an IPP nor an INS: the server could not tell whose document it is.
    #[error(
        "the document has neither an IPP nor an INS: file it by hand or match the patient first"
    )]
    NoPatientIdentifier,
    /// The INS OID is none of the four INS kinds.
    #[error(
        "INS kind {oid:?} is not an INS assigning authority (1.2.250.1.213.1.4.8, .9, .10 or .11)"
    )]
    UnknownInsKind {
        /// The OID found in the document.
        oid: String,
    },
    /// An identifier is empty or has characters FHIR does not allow (control characters,
    /// leading or trailing blanks).
    #[error("the {what} is empty or not a valid FHIR identifier value")]
    BadIdentifier {
        /// Which one (`IPP`, `INS`, `document type code`...).
        what: &'static str,
    },
    /// A CDA id is not `root` or `root^extension` with an OID or UUID root.
    #[error("the {what} {id:?} is not root^extension with an OID or UUID root")]
    BadCdaId {
        /// `CDA id` or `replaced CDA id`.
        what: &'static str,
        /// The id as received (a document id, not patient data).
        id: String,
    },
    /// The document is not standard base64.
    #[error("the journaled document is not valid base64: {0}")]
    BadBase64(String),
    /// The configured IPP system is not an absolute URI.
    #[error(
        "ipp_system {0:?} is not an absolute URI: give the IPP assigner as urn:oid:<OID> (or a bare OID)"
    )]
    BadIppSystem(String),
}

impl BundleError {
    /// A stable code for the journal and the review queue.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::NoPatientIdentifier => "FHIR-NO-PATIENT",
            BundleError::UnknownInsKind { .. } => "FHIR-INS-KIND",
            BundleError::BadIdentifier { .. } | BundleError::BadCdaId { .. } => "FHIR-IDENTIFIER",
            BundleError::BadBase64(_) => "SINK-PAYLOAD",
            BundleError::BadIppSystem(_) => "FHIR-CONFIG",
        }
    }
}

/// Normalises the configured IPP assigner: a bare OID gets `urn:oid:`; anything else must be an
/// absolute URI (`scheme:rest`).
pub fn ipp_system(configured: &str) -> Result<String, BundleError> {
    let s = configured.trim();
    if is_oid(s) {
        return Ok(format!("urn:oid:{s}"));
    }
    let scheme_ok = s.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_ok && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(s.to_string())
    } else {
        Err(BundleError::BadIppSystem(configured.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// The resources, as far as Relais fills them. Field names are FHIR's (camelCase); absent
// optional elements are left out, as FHIR JSON requires (no nulls, no empty arrays).

/// A FHIR `Bundle` of type `transaction`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle<'a> {
    resource_type: &'static str,
    identifier: Identifier,
    #[serde(rename = "type")]
    kind: &'static str,
    entry: Vec<Entry<'a>>,
}

impl Bundle<'_> {
    /// The bundle as FHIR JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these plain structs cannot fail (string keys, no maps, no floats).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The bundle's own identifier (`urn:uuid:`, from the idempotency key).
    pub fn identifier(&self) -> &str {
        &self.identifier.value
    }

    /// The `ifNoneExist` query of the DocumentReference entry.
    pub fn document_condition(&self) -> Option<&str> {
        self.entry
            .get(DOCUMENT_REFERENCE_ENTRY)
            .and_then(|e| e.request.if_none_exist.as_deref())
    }

    /// The `ifNoneExist` query of the Patient entry.
    pub fn patient_condition(&self) -> Option<&str> {
        self.entry
            .get(PATIENT_ENTRY)
            .and_then(|e| e.request.if_none_exist.as_deref())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    full_url: String,
    resource: Resource<'a>,
    request: Request,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    method: &'static str,
    url: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    if_none_exist: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "resourceType")]
enum Resource<'a> {
    Patient(Patient),
    Binary(Binary<'a>),
    DocumentReference(DocumentReference),
}

#[derive(Debug, Clone, Serialize)]
struct Patient {
    identifier: Vec<Identifier>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Binary<'a> {
    content_type: &'static str,
    security_context: Reference,
    data: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct DocumentReference {
    master_identifier: Identifier,
    status: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept>,
    subject: Reference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    relates_to: Vec<RelatesTo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    content: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Context>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Identifier {
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    usage: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept>,
    system: String,
    value: String,
}

#[derive(Debug, Clone, Serialize)]
struct CodeableConcept {
    coding: Vec<Coding>,
}

#[derive(Debug, Clone, Serialize)]
struct Coding {
    system: &'static str,
    code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'static str>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
struct RelatesTo {
    code: &'static str,
    target: Reference,
}

#[derive(Debug, Clone, Serialize)]
struct Content {
    attachment: Attachment,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    content_type: &'static str,
    url: String,
    size: u64,
    /// SHA-1 of the document, base64 (FHIR R4 `Attachment.hash`).
    hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Context {
    related: Vec<Reference>,
}

// ---------------------------------------------------------------------------------------------

/// Builds the transaction Bundle filing `doc` for a hospital whose IPPs are assigned under
/// `ipp_system` (see [`ipp_system`]).
pub fn transaction_bundle<'a>(
    doc: &DocumentFiling<'a>,
    ipp_system: &str,
) -> Result<Bundle<'a>, BundleError> {
    let ipp_system = self::ipp_system(ipp_system)?;
    let cda = base64::engine::general_purpose::STANDARD
        .decode(doc.cda_base64)
        .map_err(|e| BundleError::BadBase64(e.to_string()))?;

    let ns = namespace();
    let urn = |role: &str| {
        let name = format!("{}\u{1f}{role}", doc.idempotency_key);
        format!("urn:uuid:{}", Uuid::new_v5(&ns, name.as_bytes()))
    };
    let (bundle_id, patient_url, binary_url, docref_url) = (
        urn("bundle"),
        urn("Patient"),
        urn("Binary"),
        urn("DocumentReference"),
    );

    // Patient: IPP first (the hospital's key), INS second.
    let mut identifiers = Vec::new();
    let mut condition = None;
    if let Some(ipp) = doc.patient.ipp {
        check_value(ipp, "IPP")?;
        condition = Some(token_query(&ipp_system, ipp));
        identifiers.push(Identifier {
            usage: Some("usual"),
            kind: Some(CodeableConcept {
                coding: vec![Coding {
                    system: V2_0203,
                    code: "PI".into(),
                    display: Some("Patient internal identifier"),
                }],
            }),
            system: ipp_system.clone(),
            value: ipp.to_string(),
        });
    }
    if let Some(ins) = doc.patient.ins {
        let (_, code, display) = INS_KINDS
            .iter()
            .find(|(oid, _, _)| *oid == ins.oid.trim())
            .ok_or_else(|| BundleError::UnknownInsKind {
                oid: ins.oid.to_string(),
            })?;
        check_value(ins.value, "INS")?;
        let system = format!("urn:oid:{}", ins.oid.trim());
        condition.get_or_insert_with(|| token_query(&system, ins.value));
        identifiers.push(Identifier {
            usage: Some("official"),
            kind: Some(CodeableConcept {
                coding: vec![Coding {
                    system: FR_CORE_V2_0203,
                    code: (*code).into(),
                    display: Some(display),
                }],
            }),
            system,
            value: ins.value.to_string(),
        });
    }
    let Some(patient_condition) = condition else {
        return Err(BundleError::NoPatientIdentifier);
    };

    let master = cda_identifier(doc.cda_id, "CDA id")?;
    let docref_condition = token_query(&master.system, &master.value);
    let relates_to = match doc.replaces {
        Some(earlier) => vec![RelatesTo {
            code: "replaces",
            target: Reference {
                kind: Some("DocumentReference"),
                identifier: Some(cda_identifier(earlier, "replaced CDA id")?),
                ..Reference::default()
            },
        }],
        None => Vec::new(),
    };
    let kind = match doc.type_code {
        Some(code) => {
            check_value(code, "document type code")?;
            Some(CodeableConcept {
                coding: vec![Coding {
                    system: LOINC,
                    code: code.to_string(),
                    display: None,
                }],
            })
        }
        None => None,
    };
    let title = doc
        .title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let context = doc
        .mail_message_id
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty())
        .map(|id| Context {
            related: vec![Reference {
                identifier: Some(Identifier {
                    usage: None,
                    kind: None,
                    system: URI_SYSTEM.into(),
                    value: format!("mid:{}", utf8_percent_encode(id, MID)),
                }),
                display: Some("MSSanté message"),
                ..Reference::default()
            }],
        });

    let document_reference = DocumentReference {
        master_identifier: master,
        status: "current",
        kind,
        subject: Reference {
            reference: Some(patient_url.clone()),
            ..Reference::default()
        },
        relates_to,
        description: title.clone(),
        content: vec![Content {
            attachment: Attachment {
                content_type: CDA_CONTENT_TYPE,
                url: binary_url.clone(),
                size: cda.len() as u64,
                hash: base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&cda)),
                title,
            },
        }],
        context,
    };

    Ok(Bundle {
        resource_type: "Bundle",
        identifier: Identifier {
            usage: None,
            kind: None,
            system: URI_SYSTEM.into(),
            value: bundle_id,
        },
        kind: "transaction",
        entry: vec![
            Entry {
                full_url: patient_url,
                resource: Resource::Patient(Patient {
                    identifier: identifiers,
                }),
                request: Request {
                    method: "POST",
                    url: "Patient",
                    if_none_exist: Some(patient_condition),
                },
            },
            Entry {
                full_url: binary_url,
                resource: Resource::Binary(Binary {
                    content_type: CDA_CONTENT_TYPE,
                    security_context: Reference {
                        reference: Some(docref_url.clone()),
                        ..Reference::default()
                    },
                    data: doc.cda_base64,
                }),
                request: Request {
                    method: "POST",
                    url: "Binary",
                    if_none_exist: None,
                },
            },
            Entry {
                full_url: docref_url,
                resource: Resource::DocumentReference(document_reference),
                request: Request {
                    method: "POST",
                    url: "DocumentReference",
                    if_none_exist: Some(docref_condition),
                },
            },
        ],
    })
}

/// Characters escaped in a `mid:` URL (RFC 2392): everything but the unreserved characters and
/// the few an addr-spec commonly holds that URLs allow as is.
const MID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'=');

/// Characters escaped in a search value of a query string: all but unreserved characters and
/// the `:` and `/` of URIs (kept for readability in server logs).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'/');

/// `identifier=<system>|<value>`: FHIR search escaping (`\` before `\ | , $`), then URL
/// escaping; the `|` between system and value stays literal.
fn token_query(system: &str, value: &str) -> String {
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '\\' | '|' | ',' | '$') {
                out.push('\\');
            }
            out.push(c);
        }
        utf8_percent_encode(&out, QUERY_VALUE).to_string()
    };
    format!("identifier={}|{}", escape(system), escape(value))
}

/// An identifier value FHIR accepts: non-empty, no surrounding blanks, no control characters.
fn check_value(value: &str, what: &'static str) -> Result<(), BundleError> {
    if value.is_empty()
        || value.trim() != value
        || value.chars().any(char::is_control)
        || value.len() > 1024
    {
        return Err(BundleError::BadIdentifier { what });
    }
    Ok(())
}

/// A CDA `II` (`root^extension` or `root`) as a FHIR Identifier.
fn cda_identifier(id: &str, what: &'static str) -> Result<Identifier, BundleError> {
    let bad = || BundleError::BadCdaId {
        what,
        id: id.to_string(),
    };
    let (root, extension) = match id.split_once('^') {
        Some((r, e)) => (r, Some(e)),
        None => (id, None),
    };
    let root_uri = if is_oid(root) {
        format!("urn:oid:{root}")
    } else if root.len() == 36 && Uuid::try_parse(root).is_ok() {
        format!("urn:uuid:{}", root.to_ascii_lowercase())
    } else {
        return Err(bad());
    };
    match extension {
        Some(ext) => {
            check_value(ext, what).map_err(|_| bad())?;
            Ok(Identifier {
                usage: None,
                kind: None,
                system: root_uri,
                value: ext.to_string(),
            })
        }
        None => Ok(Identifier {
            usage: None,
            kind: None,
            system: URI_SYSTEM.into(),
            value: root_uri,
        }),
    }
}

/// An OID in dotted decimal: two arcs at least, the first 0, 1 or 2, no leading zeros.
fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut rest = 0;
    for arc in arcs {
        rest += 1;
        if arc.is_empty()
            || !arc.bytes().all(|b| b.is_ascii_digit())
            || (arc.len() > 1 && arc.starts_with('0'))
        {
            return false;
        }
    }
    first_ok && rest >= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const CDA: &[u8] = b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>";

    fn cda64() -> String {
        base64::engine::general_purpose::STANDARD.encode(CDA)
    }

    fn filing(cda: &str) -> DocumentFiling<'_> {
        DocumentFiling {
            idempotency_key: "fhir-dpi:42",
            cda_id: "1.2.250.1.999.1.1^DOC-1",
            replaces: None,
            type_code: Some("11490-0"),
            title: Some("Lettre de liaison"),
            patient: PatientIds {
                ipp: Some("IPP123"),
                ins: Some(Ins {
                    oid: "1.2.250.1.213.1.4.10",
                    value: "279035121518989",
                }),
            },
            mail_message_id: Some("<abc/1@ch-demo.mssante.fr>"),
            cda_base64: cda,
        }
    }

    fn json(b: &Bundle<'_>) -> Value {
        serde_json::from_slice(&b.to_json()).unwrap()
    }

    #[test]
    fn bundle_shape() {
        let cda = cda64();
        let b = transaction_bundle(&filing(&cda), "1.2.250.1.999.2").unwrap();
        let v = json(&b);
        assert_eq!(v["resourceType"], "Bundle");
        assert_eq!(v["type"], "transaction");
        let e = v["entry"].as_array().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["resource"]["resourceType"], "Patient");
        assert_eq!(e[1]["resource"]["resourceType"], "Binary");
        assert_eq!(e[2]["resource"]["resourceType"], "DocumentReference");
        for entry in e {
            assert_eq!(entry["request"]["method"], "POST");
            assert!(entry["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        }

        let patient = &e[0]["resource"];
        assert_eq!(
            patient["identifier"][0]["system"],
            "urn:oid:1.2.250.1.999.2"
        );
        assert_eq!(patient["identifier"][0]["value"], "IPP123");
        assert_eq!(patient["identifier"][0]["type"]["coding"][0]["code"], "PI");
        assert_eq!(
            patient["identifier"][1]["system"],
            "urn:oid:1.2.250.1.213.1.4.10"
        );
        assert_eq!(
            patient["identifier"][1]["type"]["coding"][0]["code"],
            "INS-NIR-TEST"
        );
        assert_eq!(
            e[0]["request"]["ifNoneExist"],
            "identifier=urn:oid:1.2.250.1.999.2|IPP123"
        );

        let binary = &e[1]["resource"];
        assert_eq!(binary["contentType"], CDA_CONTENT_TYPE);
        assert_eq!(binary["data"], cda.as_str());
        assert_eq!(binary["securityContext"]["reference"], e[2]["fullUrl"]);

        let dr = &e[2]["resource"];
        assert_eq!(dr["status"], "current");
        assert_eq!(
            dr["masterIdentifier"]["system"],
            "urn:oid:1.2.250.1.999.1.1"
        );
        assert_eq!(dr["masterIdentifier"]["value"], "DOC-1");
        assert_eq!(dr["type"]["coding"][0]["system"], LOINC);
        assert_eq!(dr["type"]["coding"][0]["code"], "11490-0");
        assert_eq!(dr["subject"]["reference"], e[0]["fullUrl"]);
        let att = &dr["content"][0]["attachment"];
        assert_eq!(att["url"], e[1]["fullUrl"]);
        assert_eq!(att["contentType"], CDA_CONTENT_TYPE);
        assert_eq!(att["size"], CDA.len());
        assert_eq!(
            att["hash"],
            base64::engine::general_purpose::STANDARD.encode(Sha1::digest(CDA))
        );
        assert_eq!(att["title"], "Lettre de liaison");
        assert!(dr.get("relatesTo").is_none());
        assert_eq!(
            dr["context"]["related"][0]["identifier"]["value"],
            "mid:abc%2F1@ch-demo.mssante.fr"
        );
        assert_eq!(
            e[2]["request"]["ifNoneExist"],
            "identifier=urn:oid:1.2.250.1.999.1.1|DOC-1"
        );
        assert_eq!(
            b.document_condition(),
            Some("identifier=urn:oid:1.2.250.1.999.1.1|DOC-1")
        );
    }

    #[test]
    fn same_key_same_bytes_other_key_other_ids() {
        let cda = cda64();
        let a = transaction_bundle(&filing(&cda), "urn:oid:1.2.250.1.999.2").unwrap();
        let b = transaction_bundle(&filing(&cda), "1.2.250.1.999.2").unwrap();
        assert_eq!(a.to_json(), b.to_json());
        let mut other = filing(&cda);
        other.idempotency_key = "fhir-dpi:43";
        let c = transaction_bundle(&other, "1.2.250.1.999.2").unwrap();
        let (va, vc) = (json(&a), json(&c));
        for i in 0..3 {
            assert_ne!(va["entry"][i]["fullUrl"], vc["entry"][i]["fullUrl"]);
        }
        assert_ne!(a.identifier(), c.identifier());
        // Version 5, RFC 4122 variant.
        let id = va["entry"][0]["fullUrl"].as_str().unwrap();
        let u = Uuid::parse_str(id.trim_start_matches("urn:uuid:")).unwrap();
        assert_eq!(u.get_version_num(), 5);
    }

    #[test]
    fn replacement_and_root_only_ids() {
        let cda = cda64();
        let mut f = filing(&cda);
        f.cda_id = "1.2.250.1.999.1.1.7";
        f.replaces = Some("1.2.250.1.999.1.1^DOC-0");
        let v = json(&transaction_bundle(&f, "1.2.3").unwrap());
        let dr = &v["entry"][2]["resource"];
        assert_eq!(dr["masterIdentifier"]["system"], URI_SYSTEM);
        assert_eq!(
            dr["masterIdentifier"]["value"],
            "urn:oid:1.2.250.1.999.1.1.7"
        );
        assert_eq!(
            v["entry"][2]["request"]["ifNoneExist"],
            "identifier=urn:ietf:rfc:3986|urn:oid:1.2.250.1.999.1.1.7"
        );
        assert_eq!(dr["relatesTo"][0]["code"], "replaces");
        assert_eq!(dr["relatesTo"][0]["target"]["type"], "DocumentReference");
        assert_eq!(
            dr["relatesTo"][0]["target"]["identifier"]["system"],
            "urn:oid:1.2.250.1.999.1.1"
        );
        assert_eq!(dr["relatesTo"][0]["target"]["identifier"]["value"], "DOC-0");

        f.cda_id = "3F2504E0-4F89-11D3-9A0C-0305E82C3301^v2";
        let v = json(&transaction_bundle(&f, "1.2.3").unwrap());
        assert_eq!(
            v["entry"][2]["resource"]["masterIdentifier"]["system"],
            "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        );
    }

    #[test]
    fn patient_by_ins_when_no_ipp_and_optional_parts_left_out() {
        let cda = cda64();
        let mut f = filing(&cda);
        f.patient.ipp = None;
        f.type_code = None;
        f.title = Some("  ");
        f.mail_message_id = None;
        let v = json(&transaction_bundle(&f, "1.2.3").unwrap());
        assert_eq!(
            v["entry"][0]["request"]["ifNoneExist"],
            "identifier=urn:oid:1.2.250.1.213.1.4.10|279035121518989"
        );
        let ids = v["entry"][0]["resource"]["identifier"].as_array().unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0]["use"], "official");
        let dr = &v["entry"][2]["resource"];
        for absent in ["type", "description", "context", "relatesTo"] {
            assert!(dr.get(absent).is_none(), "{absent} should be absent");
        }
        assert!(dr["content"][0]["attachment"].get("title").is_none());
        // No null anywhere: FHIR JSON forbids them.
        assert!(
            !String::from_utf8(transaction_bundle(&f, "1.2.3").unwrap().to_json())
                .unwrap()
                .contains("null")
        );
    }

    #[test]
    fn search_values_are_escaped() {
        assert_eq!(
            token_query("urn:oid:1.2", "a|b,c$d\\e f&g=h#"),
            "identifier=urn:oid:1.2|a%5C%7Cb%5C%2Cc%5C%24d%5C%5Ce%20f%26g%3Dh%23"
        );
    }

    #[test]
    fn refusals() {
        let cda = cda64();
        let mut f = filing(&cda);
        f.patient = PatientIds::default();
        assert_eq!(
            transaction_bundle(&f, "1.2.3").unwrap_err(),
            BundleError::NoPatientIdentifier
        );

        let mut f = filing(&cda);
        f.patient.ins = Some(Ins {
            oid: "1.2.250.1.213.1.4.2",
            value: "x",
        });
        let err = transaction_bundle(&f, "1.2.3").unwrap_err();
        assert_eq!(err.code(), "FHIR-INS-KIND");

        let mut f = filing(&cda);
        f.patient.ipp = Some(" IPP");
        assert_eq!(
            transaction_bundle(&f, "1.2.3").unwrap_err(),
            BundleError::BadIdentifier { what: "IPP" }
        );

        for bad_id in ["", "not-an-oid^x", "1.2.3^", "01.2^x", "1^x"] {
            let mut f = filing(&cda);
            f.cda_id = bad_id;
            assert_eq!(
                transaction_bundle(&f, "1.2.3").unwrap_err().code(),
                "FHIR-IDENTIFIER",
                "{bad_id:?}"
            );
        }

        let f = filing("not base64!");
        assert_eq!(
            transaction_bundle(&f, "1.2.3").unwrap_err().code(),
            "SINK-PAYLOAD"
        );

        for bad in ["", "IPP", "urn oid", "1.2.", ":x"] {
            assert!(ipp_system(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ipp_system("https://ch.example/ipp").unwrap(),
            "https://ch.example/ipp"
        );
    }

    #[test]
    fn errors_do_not_quote_patient_identifiers() {
        let cda = cda64();
        let mut f = filing(&cda);
        f.patient.ins = Some(Ins {
            oid: "1.2.250.1.213.1.4.10",
            value: "279035121518989\n",
        });
        let err = transaction_bundle(&f, "1.2.3").unwrap_err();
        assert!(!err.to_string().contains("279035121518989"), "{err}");
    }
}
