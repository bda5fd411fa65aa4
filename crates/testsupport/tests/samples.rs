//! The committed `samples/` folder is exactly what `make-samples` writes, and each sample is what
//! `samples/README.md` says: the valid CDA documents pass the CI-SIS header rules and the CDA XSD,
//! the packages and mails carry them intact, and each broken sample is broken in its one way.

use mail_parser::{MessageParser, MimeHeaders};
use relais_core::{Limits, Severity};
use relais_testsupport::{ans_file, workspace_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const INS: &str = "279035121518989";
const INS_TEST_OID: &str = "1.2.250.1.213.1.4.10";

fn samples_dir() -> PathBuf {
    workspace_root().join("samples")
}

fn sample(rel: &str) -> Vec<u8> {
    let p = samples_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Every file under `dir`, by `/`-separated relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root");
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn committed_samples_are_what_the_generator_writes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_make-samples"))
        .arg(tmp.path())
        .output()
        .expect("run make-samples");
    assert!(
        out.status.success(),
        "make-samples failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = tree(tmp.path());
    // samples/outbound/ holds hand-written DPI intake examples (relais-compose), not generated.
    let mut committed = tree(&samples_dir());
    committed.retain(|name, _| !name.starts_with("outbound/"));
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&generated),
        "samples/ does not hold the files make-samples writes; regenerate with \
         `cargo run -p relais-testsupport --bin make-samples -- samples/`"
    );
    for (name, bytes) in &generated {
        assert!(
            committed[name] == *bytes,
            "samples/{name} differs from what make-samples writes; regenerate with \
             `cargo run -p relais-testsupport --bin make-samples -- samples/`"
        );
    }
    // A second run gives the same bytes (no clock, no randomness).
    let again = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_make-samples"))
        .arg(again.path())
        .output()
        .expect("run make-samples");
    assert!(out.status.success());
    assert!(
        tree(again.path()) == generated,
        "make-samples is not deterministic"
    );
}

#[test]
fn generator_without_arguments_prints_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_make-samples"))
        .output()
        .expect("run make-samples");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: make-samples OUTPUT_DIR"));
}

fn errors(findings: &[relais_core::Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{} {} at {}", f.code, f.message, f.location))
        .collect()
}

fn xsd() -> relais_cda::XsdValidator {
    relais_cda::XsdValidator::load(ans_file("xsd/CDA_extended.xsd")).expect("load CDA XSD")
}

/// A valid sample CDA: readable, header rules without error, XSD-valid, PDF body, the patient.
fn assert_valid_cda(
    name: &str,
    bytes: &[u8],
    validator: &relais_cda::XsdValidator,
) -> relais_cda::CdaDocument {
    let doc = relais_cda::read(bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: not readable: {}", e.code()));
    let header = relais_cda::check_header(&doc);
    assert!(
        errors(&header).is_empty(),
        "{name}: header errors {:#?}",
        errors(&header)
    );
    let schema = validator.validate(bytes);
    assert!(
        errors(&schema).is_empty(),
        "{name}: XSD errors {:#?}",
        errors(&schema)
    );
    let pdf = doc
        .embedded_pdf()
        .expect("a PDF body")
        .expect("decodable PDF");
    assert!(
        pdf.starts_with(b"%PDF-1.4\n") && pdf.ends_with(b"%%EOF\n"),
        "{name}: PDF body"
    );
    let patient = doc.header.patient.as_ref().expect("patient");
    let ins = patient.ins.as_ref().expect("INS");
    assert_eq!(ins.value, INS, "{name}: INS");
    assert_eq!(ins.kind.oid(), INS_TEST_OID, "{name}: INS kind");
    assert_eq!(
        patient.birth_time.as_deref(),
        Some("19790315"),
        "{name}: birth date"
    );
    assert_eq!(
        patient.birthplace_insee.as_deref(),
        Some("51215"),
        "{name}: birthplace"
    );
    doc
}

#[test]
fn sample_cdas_pass_the_header_rules_and_the_xsd() {
    let validator = xsd();
    for (name, code) in [("ldl-ses-n1", "11490-0"), ("cr-bio-n1", "11502-2")] {
        let xml = sample(&format!("documents/{name}.xml"));
        let doc = assert_valid_cda(name, &xml, &validator);
        assert_eq!(doc.header.type_code(), Some(code));
        // The level 1 body is the PDF published beside it.
        let pdf = doc.embedded_pdf().expect("pdf").expect("pdf");
        assert_eq!(
            pdf,
            sample(&format!("documents/{name}.pdf")),
            "{name}: body is not the sample PDF"
        );
    }
}

#[test]
fn cda_missing_ins_trait_is_schema_valid_but_breaks_the_ins_rule() {
    let xml = sample("invalid/cda-missing-ins-trait.xml");
    assert!(
        errors(&xsd().validate(&xml)).is_empty(),
        "only the INS trait must be wrong"
    );
    let doc = relais_cda::read(&xml, &Limits::default()).expect("readable");
    let findings = relais_cda::check_header(&doc);
    let codes: Vec<String> = errors(&findings);
    assert_eq!(codes.len(), 1, "{codes:#?}");
    assert!(codes[0].starts_with("CDA-INS-TRAIT-MISSING"), "{codes:#?}");
    assert!(
        findings
            .iter()
            .any(|f| f.location.to_string().ends_with("/birthTime"))
    );
}

#[test]
fn entity_expansion_sample_is_refused_for_its_dtd() {
    let xml = sample("invalid/xml-entity-expansion.xml");
    assert!(xml.windows(9).any(|w| w == b"<!DOCTYPE"));
    let err = relais_cda::read(&xml, &Limits::default()).expect_err("must be refused");
    assert_eq!(err.code(), "XML-DTD-FORBIDDEN");
}

fn read_xdm(zip: &[u8]) -> relais_xdm::XdmPackage {
    relais_xdm::read_package(zip, &Limits::default()).expect("readable XDM package")
}

#[test]
fn xdm_sample_describes_its_cda() {
    let pkg = read_xdm(&sample("documents/IHE_XDM.ZIP"));
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    let cda_bytes = sample("documents/ldl-ses-n1.xml");
    let docs: Vec<_> = pkg.documents().collect();
    assert_eq!(docs.len(), 1);
    let (doc, entry) = (docs[0], &docs[0].entry);
    assert_eq!(doc.content, cda_bytes);
    let cda = relais_cda::read(&cda_bytes, &Limits::default()).expect("cda");
    let pid = entry.patient_id.as_ref().expect("patientId");
    assert_eq!(pid.to_hl7(), format!("{INS}^^^&{INS_TEST_OID}&ISO^NH"));
    assert_eq!(
        entry.unique_id,
        cda.header.id.as_ref().expect("id").to_xds()
    );
    assert_eq!(
        entry.type_code.as_ref().map(|c| c.code.as_str()),
        Some("11490-0")
    );
    assert_eq!(
        entry.class_code.as_ref().map(|c| c.code.as_str()),
        Some("10")
    );
    assert_eq!(
        entry.format_code.as_ref().map(|c| c.code.as_str()),
        Some("urn:ihe:iti:xds-sd:pdf:2008")
    );
    assert_eq!(entry.mime_type, "text/xml");
    assert_eq!(entry.creation_time.as_deref(), Some("20250312133000"));
    assert_eq!(entry.title.as_deref(), cda.header.title.as_deref());
}

#[test]
fn path_traversal_zip_is_refused() {
    let err = relais_xdm::read_package(
        &sample("invalid/zip-path-traversal.zip"),
        &Limits::default(),
    )
    .expect_err("must be refused");
    assert_eq!(err.code(), "ZIP-PATH-TRAVERSAL");
}

/// The attachments of a mail: (file name, content type, bytes).
struct Mail {
    raw: Vec<u8>,
    subject: String,
    headers: BTreeMap<String, String>,
    attachments: Vec<(String, String, Vec<u8>)>,
}

fn mail(rel: &str) -> Mail {
    let raw = sample(rel);
    let msg = MessageParser::default().parse(&raw).expect("parse mail");
    let mut headers = BTreeMap::new();
    for name in [
        "Message-ID",
        "Disposition-Notification-To",
        "X-MSS-CODECDA",
        "X-MSS-INS",
        "X-MSS-NIL",
    ] {
        if let Some(v) = msg.header_raw(name) {
            headers.insert(name.to_string(), v.trim().to_string());
        }
    }
    let attachments = msg
        .attachments()
        .map(|a| {
            let ct = a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                .unwrap_or_default();
            (
                a.attachment_name().unwrap_or_default().to_string(),
                ct,
                a.contents().to_vec(),
            )
        })
        .collect();
    Mail {
        subject: msg.subject().unwrap_or_default().to_string(),
        headers,
        attachments,
        raw,
    }
}

fn attachment<'m>(m: &'m Mail, name_suffix: &str) -> &'m (String, String, Vec<u8>) {
    m.attachments
        .iter()
        .find(|(n, _, _)| n.ends_with(name_suffix))
        .unwrap_or_else(|| panic!("no attachment *{name_suffix}"))
}

#[test]
fn mails_follow_the_mssante_conventions() {
    let validator = xsd();
    for (rel, code, libelle, pdf_name, pdf_sample, cda_sample) in [
        (
            "mail/ldl-ses-n1.eml",
            "11490-0",
            "Lettre de liaison",
            "20250312_Lettre-de-liaison_RELAIS-TEST_CAMILLE.pdf",
            "documents/ldl-ses-n1.pdf",
            "documents/ldl-ses-n1.xml",
        ),
        (
            "mail/cr-bio-n1.eml",
            "11502-2",
            "CR d'examens biologiques",
            "20250311_CR-biologie_RELAIS-TEST_CAMILLE.pdf",
            "documents/cr-bio-n1.pdf",
            "documents/cr-bio-n1.xml",
        ),
    ] {
        let m = mail(rel);
        assert!(
            !m.raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "{rel}: every line must end with CRLF"
        );
        assert_eq!(
            m.subject,
            format!("XDM/1.0/DDM+{libelle} RELAIS-TEST CAMILLE 19790315")
        );
        assert!(m.headers.contains_key("Message-ID"), "{rel}: Message-ID");
        assert!(
            m.headers.contains_key("Disposition-Notification-To"),
            "{rel}: DNT"
        );
        assert_eq!(
            m.headers.get("X-MSS-CODECDA").map(String::as_str),
            Some(code)
        );
        assert_eq!(m.headers.get("X-MSS-INS").map(String::as_str), Some("O"));
        assert_eq!(
            m.headers.get("X-MSS-NIL").map(String::as_str),
            Some("Relais 0.1.0")
        );
        assert_eq!(m.attachments.len(), 2, "{rel}: IHE_XDM.ZIP and the PDF");

        let (_, ct, zip) = attachment(&m, "IHE_XDM.ZIP");
        assert_eq!(ct, "application/zip");
        let pkg = read_xdm(zip);
        assert!(pkg.findings.is_empty(), "{rel}: {:#?}", pkg.findings);
        let doc = pkg.documents().next().expect("a document");
        assert_eq!(
            doc.content,
            sample(cda_sample),
            "{rel}: the XDM carries the sample CDA"
        );
        assert_valid_cda(rel, &doc.content, &validator);

        let (name, ct, pdf) = attachment(&m, ".pdf");
        assert_eq!(name, pdf_name);
        assert_eq!(ct, "application/pdf");
        assert_eq!(*pdf, sample(pdf_sample));
    }
}

#[test]
fn broken_mails_are_broken_in_their_one_way() {
    let ldl = mail("mail/ldl-ses-n1.eml");
    let ldl_zip = &attachment(&ldl, "IHE_XDM.ZIP").2;
    let ldl_pdf = &attachment(&ldl, ".pdf").2;

    // Hash: the package reports the mismatch, the document itself is the sample CDA.
    let m = mail("invalid/xdm-hash-mismatch.eml");
    let pkg = read_xdm(&attachment(&m, "IHE_XDM.ZIP").2);
    let codes: Vec<String> = pkg.findings.iter().map(|f| f.code.to_string()).collect();
    assert_eq!(codes, ["XDM-HASH-MISMATCH"]);
    assert_eq!(
        pkg.documents().next().expect("doc").content,
        sample("documents/ldl-ses-n1.xml")
    );
    assert_eq!(&attachment(&m, ".pdf").2, ldl_pdf);

    // patientId: a clean package whose metadata name another valid test INS than the CDA.
    let m = mail("invalid/xdm-patientid-mismatch.eml");
    let pkg = read_xdm(&attachment(&m, "IHE_XDM.ZIP").2);
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    let doc = pkg.documents().next().expect("doc");
    let pid = doc.entry.patient_id.as_ref().expect("patientId");
    assert_eq!(pid.assigning_authority.as_deref(), Some(INS_TEST_OID));
    assert_ne!(pid.id, INS);
    assert!(nir_key_ok(&pid.id), "the other INS must itself be valid");
    let cda = relais_cda::read(&doc.content, &Limits::default()).expect("cda");
    let ids = &cda.header.patient.as_ref().expect("patient").ids;
    assert!(
        !ids.iter()
            .any(|i| i.extension.as_deref() == Some(pid.id.as_str()))
    );

    // Not a PDF: same package, the .pdf attachment is text.
    let m = mail("invalid/not-a-pdf.eml");
    assert_eq!(&attachment(&m, "IHE_XDM.ZIP").2, ldl_zip);
    let (name, ct, bytes) = attachment(&m, ".pdf");
    assert!(name.ends_with(".pdf") && ct == "application/pdf");
    assert!(!bytes.starts_with(b"%PDF-"));
}

/// NIR key: 97 - (first 13 digits mod 97).
fn nir_key_ok(v: &str) -> bool {
    v.len() == 15
        && v.bytes().all(|b| b.is_ascii_digit())
        && v[..13]
            .parse::<u64>()
            .is_ok_and(|n| v[13..].parse::<u64>() == Ok(97 - n % 97))
}

#[test]
fn the_sample_ins_values_have_valid_keys() {
    assert!(nir_key_ok(INS));
    assert!(!nir_key_ok("279035121518988"));
}

/// Segments of an ER7 message (CR separators only), as field lists.
fn segments(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(
        !bytes.contains(&b'\n'),
        "ER7 segments are separated by CR only"
    );
    assert!(bytes.ends_with(b"\r"));
    String::from_utf8(bytes.to_vec())
        .expect("UTF-8")
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| s.split('|').map(str::to_string).collect())
        .collect()
}

fn field<'s>(segs: &'s [Vec<String>], name: &str, n: usize) -> &'s str {
    let seg = segs
        .iter()
        .find(|s| s[0] == name)
        .unwrap_or_else(|| panic!("no {name}"));
    // MSH-1 is the separator itself: MSH fields are shifted by one.
    let index = if name == "MSH" { n - 1 } else { n };
    seg.get(index).map(String::as_str).unwrap_or("")
}

#[test]
fn hl7_samples_carry_the_lab_cda() {
    use base64::Engine as _;
    let cda = sample("documents/cr-bio-n1.xml");
    for (rel, version, profile, structure, ed_type) in [
        (
            "documents/mdm-t02-cr-bio.hl7",
            "2.6",
            "1.1^CISIS_CDA_HL7_LPS",
            "MDM^T02^MDM_T02",
            "text",
        ),
        (
            "documents/oru-r01-cr-bio.hl7",
            "2.5",
            "2.1^CISIS_CDA_HL7_V2",
            "ORU^R01^ORU_R01",
            "TEXT",
        ),
    ] {
        let segs = segments(&sample(rel));
        assert_eq!(field(&segs, "MSH", 2), "^~\\&", "{rel}");
        assert_eq!(field(&segs, "MSH", 9), structure, "{rel}");
        assert_eq!(field(&segs, "MSH", 12), version, "{rel}");
        assert_eq!(field(&segs, "MSH", 18), "UNICODE UTF-8", "{rel}");
        assert_eq!(field(&segs, "MSH", 21), profile, "{rel}");
        assert_eq!(field(&segs, "PID", 32), "VALI", "{rel}");
        assert!(field(&segs, "PID", 3).starts_with(&format!(
            "{INS}^^^ASIP-SANTE-INS-NIR&{INS_TEST_OID}&ISO^INS"
        )));
        assert_eq!(
            field(&segs, "OBR", 4),
            "11502-2^CR d'examens biologiques^LN"
        );
        let obx5 = field(&segs, "OBX", 5);
        let parts: Vec<&str> = obx5.split('^').collect();
        assert_eq!(&parts[..4], &["", ed_type, "XML", "Base64"], "{rel}");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(parts[4])
            .expect("base64");
        assert_eq!(decoded, cda, "{rel}: OBX-5 is the lab CDA");
        assert_eq!(field(&segs, "OBX", 11), "F");
        assert_eq!(field(&segs, "ORC", 1), "NW");
    }
    let broken = sample("invalid/hl7-broken-delimiters.hl7");
    assert!(broken.starts_with(b"MSH|^^\\&|"));
}
