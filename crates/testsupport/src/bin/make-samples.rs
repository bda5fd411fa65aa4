//! `make-samples`: writes the project's own sample inputs (MSSanté mails, IHE XDM packages, CDA
//! documents, HL7v2 messages, and deliberately broken variants) into a folder, normally
//! `samples/`.
//!
//! Why: the README's first command is `relais check samples/`, tests and demos need realistic
//! inputs, and the official ANS examples may not be redistributed. Everything here is built by
//! this program with the project's own writers (`relais-xdm`'s `PackageBuilder`, `mail-builder`,
//! a CDA template in `crates/testsupport/templates/`), about a fictional patient cared for by
//! fictional professionals: the ANS test INS 279035121518989 (INS-NIR of test, OID
//! 1.2.250.1.213.1.4.10), RPPS numbers `99999…`, FINESS numbers `999…`, local OIDs under the
//! ITU example arc `2.999`, phone numbers of the ARCEP range reserved for fiction.
//!
//! The output is deterministic (fixed dates, identifiers and MIME boundaries): running it twice
//! gives identical bytes, and `tests/samples.rs` checks that the committed `samples/` folder is
//! exactly what this program writes. Before writing anything, every valid CDA is checked with
//! `relais_cda::check_header`, and every XDM package is read back with `relais_xdm`, the
//! invalid ones having to show the problem they are made for; a sample that fails its check
//! stops the program.
//!
//! Run: `cargo run -p relais-testsupport --bin make-samples -- samples/`

use base64::Engine as _;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use relais_core::{Limits, Severity};
use relais_xdm::{
    Author, Coded, Cx, DocumentEntry, PackageBuilder, ProductInfo, RawEntry, RawZip, SubmissionSet,
};
use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The CDA level 1 template; `{{name}}` placeholders are filled by [`fill_template`].
const CDA_TEMPLATE: &str = include_str!("../../templates/cda-n1.xml");

/// OID of the INS-NIR of test.
const INS_TEST_OID: &str = "1.2.250.1.213.1.4.10";
/// OID of the national professional identifiers (RPPS with prefix 8, ADELI with prefix 0).
const PS_OID: &str = "1.2.250.1.71.4.2.1";
/// OID of the national structure identifiers (FINESS with prefix 1).
const STRUCTURE_OID: &str = "1.2.250.1.71.4.2.2";
/// LOINC.
const LOINC: &str = "2.16.840.1.113883.6.1";

/// Why the samples could not be made.
#[derive(Debug, thiserror::Error)]
enum SampleError {
    /// The CDA template and the values given to it disagree (a bug of this program).
    #[error("CDA template: {0}")]
    Template(String),
    /// A text that must fit a format (PDF WinAnsi text, HL7 field) holds a character it cannot.
    #[error("{0}")]
    Encoding(String),
    /// A sample does not show the verdict it is made for: fix the generator or the checker.
    #[error("sample {name} failed its own check: {why}")]
    SelfCheck { name: String, why: String },
    /// Building an XDM package failed.
    #[error("XDM package for {name}: {source}")]
    Xdm {
        name: String,
        source: relais_xdm::BuildError,
    },
    /// Writing the mail to memory failed.
    #[error("mail {name}: {source}")]
    Mail {
        name: String,
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// The fictional world
// ---------------------------------------------------------------------------------------------

/// The patient: identity traits consistent with the NIR of test 2 79 03 51 215 189 89 (a woman
/// born in March 1979 in the commune 51215).
struct Patient {
    ins: &'static str,
    birth_family: &'static str,
    birth_given_names: &'static str,
    first_birth_given: &'static str,
    sex: &'static str,
    sex_display: &'static str,
    birth_date: &'static str,
    birthplace_insee: &'static str,
    house_number: &'static str,
    street: &'static str,
    postal_code: &'static str,
    city: &'static str,
    phone: &'static str,
}

const PATIENT: Patient = Patient {
    ins: "279035121518989",
    birth_family: "RELAIS-TEST",
    birth_given_names: "CAMILLE ANNE",
    first_birth_given: "CAMILLE",
    sex: "F",
    sex_display: "Féminin",
    birth_date: "19790315",
    birthplace_insee: "51215",
    house_number: "3",
    street: "allée des Essais",
    postal_code: "51100",
    city: "REIMS",
    phone: "0199003000",
};

/// Another valid INS of test (a man born in June 1985 in commune 75056), for the sample whose
/// XDM metadata names someone else than its CDA.
const OTHER_INS: &str = "185067505612307";

/// A health professional.
struct Professional {
    /// `8` + RPPS.
    id: &'static str,
    /// Civility (JDV_J245: M, MME), the CDA name prefix.
    prefix: &'static str,
    /// Title (JDV_J246: DR, PR...), the CDA name suffix.
    suffix: &'static str,
    given: &'static str,
    family: &'static str,
    specialty: &'static str,
    specialty_display: &'static str,
    mail: &'static str,
}

/// An organisation: identifiers, contact, and the codes its documents carry.
struct Organisation {
    /// `1` + FINESS.
    id: &'static str,
    name: &'static str,
    /// Short name for HL7 (MSH-4, HD).
    code: &'static str,
    phone: &'static str,
    house_number: &'static str,
    street: &'static str,
    postal_code: &'static str,
    city: &'static str,
    facility_type: &'static str,
    facility_type_display: &'static str,
    practice_setting: &'static str,
    practice_setting_display: &'static str,
    /// The OID under which it identifies its patients (IPP) and its documents.
    patient_id_root: &'static str,
    document_root: &'static str,
    /// The OID of its Relais instance (XDS sourceId).
    source_id: &'static str,
    /// Its patient's local identifier.
    patient_id: &'static str,
}

const HOSPITAL: Organisation = Organisation {
    id: "1999000017",
    name: "Centre hospitalier RELAIS-DEMO",
    code: "CH-DEMO",
    phone: "0199001000",
    house_number: "12",
    street: "rue des Exemples",
    postal_code: "51100",
    city: "REIMS",
    facility_type: "SA01",
    facility_type_display: "Etablissement public de santé",
    practice_setting: "ETABLISSEMENT",
    practice_setting_display: "Etablissement de santé",
    patient_id_root: "2.999.33.1.1",
    document_root: "2.999.33.1.2",
    source_id: "2.999.33.1.9",
    patient_id: "RT00012345",
};

const LAB: Organisation = Organisation {
    id: "1999000025",
    name: "Laboratoire de biologie médicale RELAIS-DEMO",
    code: "LABO-DEMO",
    phone: "0199002000",
    house_number: "5",
    street: "avenue des Démonstrations",
    postal_code: "51100",
    city: "REIMS",
    facility_type: "SA29",
    facility_type_display: "Laboratoire d'analyses et de biologie médicale",
    practice_setting: "AMBULATOIRE",
    practice_setting_display: "Ambulatoire",
    patient_id_root: "2.999.33.2.1",
    document_root: "2.999.33.2.2",
    source_id: "2.999.33.2.9",
    patient_id: "LB0778899",
};

const INTERNIST: Professional = Professional {
    id: "899999000011",
    prefix: "MME",
    suffix: "DR",
    given: "Claude",
    family: "AUTEUR-DEMO",
    specialty: "G15_10/SM27",
    specialty_display: "Médecin - Médecine interne (SM)",
    mail: "claude.auteur-demo@ch-demo.mssante.fr",
};

const BIOLOGIST: Professional = Professional {
    id: "899999000029",
    prefix: "M",
    suffix: "DR",
    given: "Dominique",
    family: "BIOLOGISTE-DEMO",
    specialty: "G15_10/SM03",
    specialty_display: "Médecin - Biologie médicale (SM)",
    mail: "dominique.biologiste-demo@labo-demo.mssante.fr",
};

const GP: Professional = Professional {
    id: "899999000037",
    prefix: "M",
    suffix: "DR",
    given: "Jean",
    family: "GENERALISTE-DEMO",
    specialty: "G15_10/SM26",
    specialty_display: "Médecin - Qualifié en Médecine Générale (SM)",
    mail: "jean.generaliste-demo@medecin.mssante.fr",
};

/// The hospital ward's mailbox (receives the lab report, sends the discharge letter).
const WARD_MAILBOX: (&str, &str) = (
    "Médecine interne - CH RELAIS-DEMO",
    "medecine-interne@ch-demo.mssante.fr",
);
/// The lab's mailbox.
const LAB_MAILBOX: (&str, &str) = (
    "Laboratoire RELAIS-DEMO",
    "laboratoire@labo-demo.mssante.fr",
);

/// One CDA document of the samples.
struct DocSpec {
    /// File stem in `samples/documents/`.
    key: &'static str,
    org: &'static Organisation,
    author: &'static Professional,
    doc_extension: &'static str,
    set_extension: &'static str,
    type_code: &'static str,
    type_display: &'static str,
    title: &'static str,
    /// CDA timestamps (`YYYYMMDDhhmmss+zzzz`).
    effective_time: &'static str,
    event_code: &'static str,
    event_display: &'static str,
    event_code_system: &'static str,
    event_start: &'static str,
    event_end: &'static str,
    encounter_start: &'static str,
    encounter_end: &'static str,
    /// The `<type>` part of the PDF attachment name (`AAAAMMJJ_<type>_<NOM>_<prénom>.pdf`).
    pdf_type: &'static str,
    /// The text of the PDF page, first line as title.
    pdf_lines: &'static [&'static str],
}

const LDL: DocSpec = DocSpec {
    key: "ldl-ses-n1",
    org: &HOSPITAL,
    author: &INTERNIST,
    doc_extension: "LDL-2025-000123",
    set_extension: "LDL-2025-000123-S",
    type_code: "11490-0",
    type_display: "Lettre de liaison à la sortie d'un établissement de soins",
    title: "Lettre de liaison à la sortie - médecine interne",
    effective_time: "20250312143000+0100",
    event_code: "IMP",
    event_display: "Hospitalisation (établissement, y compris HAD)",
    event_code_system: "2.16.840.1.113883.5.4",
    event_start: "20250303091500+0100",
    event_end: "20250312110000+0100",
    encounter_start: "20250303091500+0100",
    encounter_end: "20250312110000+0100",
    pdf_type: "Lettre-de-liaison",
    pdf_lines: &[
        "Lettre de liaison - document de démonstration Relais",
        "Patiente fictive : RELAIS-TEST Camille, née le 15/03/1979",
        "Séjour du 03/03/2025 au 12/03/2025, service de médecine interne",
        "Rédigé par le Dr Claude AUTEUR-DEMO pour le Dr Jean GENERALISTE-DEMO",
        "Exemple produit par make-samples : aucune donnée réelle.",
    ],
};

const CRBIO: DocSpec = DocSpec {
    key: "cr-bio-n1",
    org: &LAB,
    author: &BIOLOGIST,
    doc_extension: "CRBIO-2025-004217",
    set_extension: "CRBIO-2025-004217-S",
    type_code: "11502-2",
    type_display: "CR d'examens biologiques",
    title: "Compte rendu d'examens biologiques",
    effective_time: "20250311164500+0100",
    event_code: "18723-7",
    event_display: "Hématologie",
    event_code_system: LOINC,
    event_start: "20250311073000+0100",
    event_end: "20250311121500+0100",
    encounter_start: "20250311073000+0100",
    encounter_end: "20250311121500+0100",
    pdf_type: "CR-biologie",
    pdf_lines: &[
        "Compte rendu d'examens biologiques - document de démonstration Relais",
        "Patiente fictive : RELAIS-TEST Camille, née le 15/03/1979",
        "Prélèvement du 11/03/2025 à 07h30 : hémogramme (résultats fictifs)",
        "Validé par le Dr Dominique BIOLOGISTE-DEMO",
        "Exemple produit par make-samples : aucune donnée réelle.",
    ],
};

/// The sending product, as README.TXT of the packages and X-MSS-NIL name it.
const PRODUCT_NAME: &str = "Relais";
const PRODUCT_VERSION: &str = "0.1.0";

// ---------------------------------------------------------------------------------------------
// Samples and their expected verdicts
// ---------------------------------------------------------------------------------------------

/// What `relais check` should say about a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    /// Invalid, with this rule code among the findings.
    Invalid(&'static str),
}

/// One file to write.
struct Sample {
    /// Path relative to the output folder, `/`-separated.
    path: String,
    bytes: Vec<u8>,
    what: String,
    /// `None` for files that are not inputs (the README).
    verdict: Option<Verdict>,
}

impl Sample {
    fn new(path: &str, bytes: Vec<u8>, what: &str, verdict: Verdict) -> Self {
        Sample {
            path: path.to_string(),
            bytes,
            what: what.to_string(),
            verdict: Some(verdict),
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!(
            "usage: make-samples OUTPUT_DIR\n\
             Writes the sample mails and documents (normally into samples/):\n  \
             cargo run -p relais-testsupport --bin make-samples -- samples/"
        );
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    let samples = match make_samples() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("make-samples: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = write_all(&out, &samples) {
        eprintln!("make-samples: {e}");
        return ExitCode::FAILURE;
    }
    println!("{} files written under {}", samples.len(), out.display());
    ExitCode::SUCCESS
}

fn write_all(out: &Path, samples: &[Sample]) -> Result<(), SampleError> {
    for s in samples {
        let path = out.join(&s.path);
        let io = |source| SampleError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(&path, &s.bytes).map_err(io)?;
    }
    Ok(())
}

/// Every sample, checked, plus the README describing them.
fn make_samples() -> Result<Vec<Sample>, SampleError> {
    let mut samples = Vec::new();

    // Documents: PDF, CDA level 1, the discharge letter's XDM package, HL7v2 messages.
    let ldl_pdf = pdf(LDL.pdf_lines)?;
    let bio_pdf = pdf(CRBIO.pdf_lines)?;
    let ldl_cda = cda(&LDL, &ldl_pdf)?;
    let bio_cda = cda(&CRBIO, &bio_pdf)?;
    check_cda_valid(&format!("{}.xml", LDL.key), &ldl_cda)?;
    check_cda_valid(&format!("{}.xml", CRBIO.key), &bio_cda)?;

    let ldl_package = package(&LDL, &ldl_cda, PATIENT.ins);
    let ldl_zip = build_zip(&LDL, &ldl_package)?;
    check_xdm("documents/IHE_XDM.ZIP", &ldl_zip, Verdict::Valid, &ldl_cda)?;
    let bio_zip = build_zip(&CRBIO, &package(&CRBIO, &bio_cda, PATIENT.ins))?;
    check_xdm("cr-bio-n1 XDM", &bio_zip, Verdict::Valid, &bio_cda)?;

    samples.push(Sample::new(
        &format!("documents/{}.pdf", LDL.key),
        ldl_pdf.clone(),
        "The discharge letter as a one-page PDF (the body of the CDA below).",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        &format!("documents/{}.xml", LDL.key),
        ldl_cda.clone().into_bytes(),
        "Discharge letter (LDL-SES, LOINC 11490-0), CDA R2 level 1 with the CI-SIS header and the PDF as body.",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        &format!("documents/{}.pdf", CRBIO.key),
        bio_pdf.clone(),
        "The lab report as a one-page PDF (the body of the CDA below).",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        &format!("documents/{}.xml", CRBIO.key),
        bio_cda.clone().into_bytes(),
        "Lab report (CR-BIO, LOINC 11502-2), CDA R2 level 1 with the CI-SIS header and the PDF as body.",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        "documents/IHE_XDM.ZIP",
        ldl_zip.clone(),
        "IHE XDM package (ITI-32) of the discharge letter: METADATA.XML, README.TXT, INDEX.HTM, DOC0001.XML.",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        "documents/mdm-t02-cr-bio.hl7",
        mdm_t02(&bio_cda)?,
        "HL7 v2.6 MDM^T02 towards the DPI (ig-lps-mss, MSH-21 1.1^CISIS_CDA_HL7_LPS) filing the lab report received by mail.",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        "documents/oru-r01-cr-bio.hl7",
        oru_r01(&bio_cda)?,
        "HL7 v2.5 ORU^R01 from the lab system (ig-trans-cda, MSH-21 2.1^CISIS_CDA_HL7_V2) asking to send the lab report by MSSanté.",
        Verdict::Valid,
    ));

    // Mails.
    let ldl_mail = MailSpec::discharge_letter();
    samples.push(Sample::new(
        "mail/ldl-ses-n1.eml",
        ldl_mail.build(&ldl_zip, &ldl_pdf)?,
        "MSSanté mail from the hospital ward to the GP: the discharge letter as IHE_XDM.ZIP and as PDF.",
        Verdict::Valid,
    ));
    samples.push(Sample::new(
        "mail/cr-bio-n1.eml",
        MailSpec::lab_report().build(&bio_zip, &bio_pdf)?,
        "MSSanté mail from the lab to the hospital ward: the lab report as IHE_XDM.ZIP and as PDF.",
        Verdict::Valid,
    ));

    // Broken inputs.
    samples.extend(invalid_samples(
        &ldl_mail,
        &ldl_cda,
        &ldl_package,
        &ldl_zip,
        &ldl_pdf,
    )?);

    // Git must store the files as they are: CRLF mails, CR-separated HL7, binary ZIPs.
    samples.push(Sample {
        path: ".gitattributes".into(),
        bytes: b"# Written by make-samples: keep every sample byte for byte (no line-ending conversion).\n* -text\n".to_vec(),
        what: String::new(),
        verdict: None,
    });
    let readme = readme(&samples);
    samples.push(Sample {
        path: "README.md".into(),
        bytes: readme.into_bytes(),
        what: String::new(),
        verdict: None,
    });
    Ok(samples)
}

fn invalid_samples(
    ldl_mail: &MailSpec,
    ldl_cda: &str,
    ldl_package: &PackageBuilder,
    ldl_zip: &[u8],
    ldl_pdf: &[u8],
) -> Result<Vec<Sample>, SampleError> {
    let mut out = Vec::new();

    // The METADATA.XML hash slot does not match the document.
    let name = "invalid/xdm-hash-mismatch.eml";
    let metadata = ldl_package.metadata();
    let true_hash = metadata.entries[0].hash.clone().unwrap_or_default();
    let wrong_hash = hex::encode(Sha1::digest(b"not the document of this package"));
    let mut files = ldl_package.files().map_err(|source| SampleError::Xdm {
        name: name.into(),
        source,
    })?;
    let metadata_path = format!("{}/METADATA.XML", relais_xdm::SUBSET_DIR);
    let mut altered = 0;
    for (path, content) in &mut files {
        if *path == metadata_path {
            let text = String::from_utf8_lossy(content).into_owned();
            altered = text.matches(&true_hash).count();
            *content = text.replace(&true_hash, &wrong_hash).into_bytes();
        }
    }
    if altered != 1 || true_hash.is_empty() {
        return Err(SampleError::SelfCheck {
            name: name.into(),
            why: format!("expected the hash once in METADATA.XML, found it {altered} times"),
        });
    }
    let zip = relais_xdm::write_zip(&files).map_err(|source| SampleError::Xdm {
        name: name.into(),
        source,
    })?;
    check_xdm(name, &zip, Verdict::Invalid("XDM-HASH-MISMATCH"), ldl_cda)?;
    out.push(Sample::new(
        name,
        ldl_mail
            .variant("xdm-hash-mismatch")
            .build(&zip, ldl_pdf)?,
        "The discharge letter mail whose METADATA.XML gives a SHA-1 hash that is not the document's.",
        Verdict::Invalid("XDM-HASH-MISMATCH"),
    ));

    // The metadata name another patient (another valid test INS) than the CDA.
    let name = "invalid/xdm-patientid-mismatch.eml";
    let zip = build_zip(&LDL, &package(&LDL, ldl_cda, OTHER_INS))?;
    check_xdm(
        name,
        &zip,
        Verdict::Invalid("XDM-CDA-PATIENTID-MISMATCH"),
        ldl_cda,
    )?;
    out.push(Sample::new(
        name,
        ldl_mail
            .variant("xdm-patientid-mismatch")
            .build(&zip, ldl_pdf)?,
        "The discharge letter mail whose XDM metadata patientId is another (valid) test INS than the CDA's.",
        Verdict::Invalid("XDM-CDA-PATIENTID-MISMATCH"),
    ));

    // A CDA without birthTime: an INS identity trait is missing.
    let name = "invalid/cda-missing-ins-trait.xml";
    let birth = format!("        <birthTime value=\"{}\"/>\n", PATIENT.birth_date);
    if ldl_cda.matches(&birth).count() != 1 {
        return Err(SampleError::SelfCheck {
            name: name.into(),
            why: "the birthTime line was not found once in the CDA".into(),
        });
    }
    let no_birth = ldl_cda.replace(&birth, "");
    check_cda_has(name, &no_birth, "CDA-INS-TRAIT-MISSING")?;
    out.push(Sample::new(
        name,
        no_birth.into_bytes(),
        "The discharge letter CDA without patient birthTime, an INS identity trait.",
        Verdict::Invalid("CDA-INS-TRAIT-MISSING"),
    ));

    // A ZIP with an entry that climbs out of the extraction folder.
    let name = "invalid/zip-path-traversal.zip";
    let mut raw = RawZip::from_files(&ldl_package.files().map_err(|source| SampleError::Xdm {
        name: name.into(),
        source,
    })?);
    raw.push(RawEntry::deflated(
        "../../etc/evil.txt",
        b"Relais sample: this entry must never be written outside the extraction folder.\r\n",
    ));
    let zip = raw.to_bytes();
    match relais_xdm::read_package(&zip, &Limits::default()) {
        Err(e) if e.code() == "ZIP-PATH-TRAVERSAL" => {}
        other => {
            return Err(SampleError::SelfCheck {
                name: name.into(),
                why: format!(
                    "expected the fatal error ZIP-PATH-TRAVERSAL, got {:?}",
                    other.map(|p| p.findings.len())
                ),
            });
        }
    }
    out.push(Sample::new(
        name,
        zip,
        "The discharge letter's XDM package plus an entry named ../../etc/evil.txt.",
        Verdict::Invalid("ZIP-PATH-TRAVERSAL"),
    ));

    // Billion laughs: a DTD whose entities expand exponentially.
    let name = "invalid/xml-entity-expansion.xml";
    let laughs = billion_laughs();
    match relais_cda::read(laughs.as_bytes(), &Limits::default()) {
        Err(e) if e.code() == "XML-DTD-FORBIDDEN" => {}
        other => {
            return Err(SampleError::SelfCheck {
                name: name.into(),
                why: format!(
                    "expected XML-DTD-FORBIDDEN, got {}",
                    match other {
                        Ok(_) => "a readable document".to_string(),
                        Err(e) => e.code().to_string(),
                    }
                ),
            });
        }
    }
    out.push(Sample::new(
        name,
        laughs.into_bytes(),
        "An XML file with a DTD declaring nested entities (\"billion laughs\").",
        Verdict::Invalid("XML-DTD-FORBIDDEN"),
    ));

    // HL7 with a repeated delimiter in MSH-2.
    out.push(Sample::new(
        "invalid/hl7-broken-delimiters.hl7",
        hl7_broken_delimiters()?,
        "An ORU^R01 whose MSH-2 repeats the component separator (`^^\\&`).",
        Verdict::Invalid("HL7-BAD-DELIMITERS"),
    ));

    // A .pdf attachment that is not a PDF.
    let not_pdf = "Relais sample: this attachment is named .pdf but is plain text.\r\n"
        .as_bytes()
        .to_vec();
    out.push(Sample::new(
        "invalid/not-a-pdf.eml",
        ldl_mail.variant("not-a-pdf").build(ldl_zip, &not_pdf)?,
        "The discharge letter mail whose .pdf attachment (application/pdf) is plain text.",
        Verdict::Invalid("MAIL-PDF-NOT-PDF"),
    ));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------------------

/// A one-page PDF 1.4 with the given lines (Helvetica, WinAnsi encoding), with a correct
/// cross-reference table. The first line is the title.
fn pdf(lines: &[&str]) -> Result<Vec<u8>, SampleError> {
    let mut content = String::from("BT\n/F1 15 Tf\n18 TL\n56 780 Td\n");
    for (i, line) in lines.iter().enumerate() {
        if i == 1 {
            content.push_str("/F1 11 Tf\n15 TL\nT*\n");
        }
        content.push_str(&format!("({}) Tj\nT*\n", pdf_text(line)?));
    }
    content.push_str("ET\n");
    let title = pdf_text(lines.first().copied().unwrap_or("Relais"))?;
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
        format!(
            "<< /Title ({title}) /Producer (Relais make-samples) \
             /CreationDate (D:20250301000000Z) >>"
        ),
    ];
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    Ok(out)
}

/// A PDF literal string body in WinAnsi (Latin-1 letters as octal escapes).
fn pdf_text(s: &str) -> Result<String, SampleError> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => {
                return Err(SampleError::Encoding(format!(
                    "PDF text: character U+{:04X} is not in WinAnsi's Latin-1 range",
                    c as u32
                )));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CDA
// ---------------------------------------------------------------------------------------------

/// The CDA level 1 document of `spec`, with `pdf` as its body.
fn cda(spec: &DocSpec, pdf: &[u8]) -> Result<String, SampleError> {
    let org = spec.org;
    let author = spec.author;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pdf);
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let vars: Vec<(&str, String)> = vec![
        ("doc_root", org.document_root.into()),
        ("doc_extension", spec.doc_extension.into()),
        ("set_extension", spec.set_extension.into()),
        ("type_code", spec.type_code.into()),
        ("type_display", spec.type_display.into()),
        ("title", spec.title.into()),
        ("effective_time", spec.effective_time.into()),
        ("ins_root", INS_TEST_OID.into()),
        ("ins", PATIENT.ins.into()),
        ("ipp_root", org.patient_id_root.into()),
        ("ipp", org.patient_id.into()),
        ("patient_house_number", PATIENT.house_number.into()),
        ("patient_street", PATIENT.street.into()),
        ("patient_postal_code", PATIENT.postal_code.into()),
        ("patient_city", PATIENT.city.into()),
        ("patient_phone", PATIENT.phone.into()),
        ("birth_family", PATIENT.birth_family.into()),
        ("birth_given_names", PATIENT.birth_given_names.into()),
        ("first_birth_given", PATIENT.first_birth_given.into()),
        ("used_family", PATIENT.birth_family.into()),
        ("used_given", PATIENT.first_birth_given.into()),
        ("sex", PATIENT.sex.into()),
        ("sex_display", PATIENT.sex_display.into()),
        ("birth_date", PATIENT.birth_date.into()),
        ("birthplace_insee", PATIENT.birthplace_insee.into()),
        ("author_time", spec.effective_time.into()),
        ("author_id", author.id.into()),
        ("author_specialty", author.specialty.into()),
        ("author_specialty_display", author.specialty_display.into()),
        ("author_mail", author.mail.into()),
        ("author_prefix", author.prefix.into()),
        ("author_suffix", author.suffix.into()),
        ("author_given", author.given.into()),
        ("author_family", author.family.into()),
        ("org_id", org.id.into()),
        ("org_name", org.name.into()),
        ("org_phone", org.phone.into()),
        ("org_house_number", org.house_number.into()),
        ("org_street", org.street.into()),
        ("org_postal_code", org.postal_code.into()),
        ("org_city", org.city.into()),
        ("legal_time", spec.effective_time.into()),
        ("event_code", spec.event_code.into()),
        ("event_display", spec.event_display.into()),
        ("event_code_system", spec.event_code_system.into()),
        ("event_start", spec.event_start.into()),
        ("event_end", spec.event_end.into()),
        ("practice_setting", org.practice_setting.into()),
        (
            "practice_setting_display",
            org.practice_setting_display.into(),
        ),
        ("encounter_start", spec.encounter_start.into()),
        ("encounter_end", spec.encounter_end.into()),
        ("facility_type", org.facility_type.into()),
        ("facility_type_display", org.facility_type_display.into()),
        ("pdf_base64", wrapped.join("\n")),
    ];
    fill_template(CDA_TEMPLATE, &vars)
}

/// Replace every `{{name}}` by its XML-escaped value; every placeholder must have a value and
/// every value a placeholder.
fn fill_template(template: &str, vars: &[(&str, String)]) -> Result<String, SampleError> {
    let mut out = template.to_string();
    for (name, value) in vars {
        let placeholder = format!("{{{{{name}}}}}");
        if !out.contains(&placeholder) {
            return Err(SampleError::Template(format!(
                "no placeholder {placeholder} in the template"
            )));
        }
        out = out.replace(&placeholder, &xml_escape(value));
    }
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(40).collect();
        return Err(SampleError::Template(format!(
            "placeholder without value: {rest}"
        )));
    }
    Ok(out)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The CDA must read and pass the CI-SIS header rules without error or warning.
fn check_cda_valid(name: &str, xml: &str) -> Result<(), SampleError> {
    let doc = relais_cda::read(xml.as_bytes(), &Limits::default()).map_err(|e| {
        SampleError::SelfCheck {
            name: name.into(),
            why: format!("not readable: {} {e}", e.code()),
        }
    })?;
    let bad: Vec<String> = relais_cda::check_header(&doc)
        .into_iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| format!("{} {} at {}", f.code, f.message, f.location))
        .collect();
    if !bad.is_empty() {
        return Err(SampleError::SelfCheck {
            name: name.into(),
            why: format!("header findings: {}", bad.join("; ")),
        });
    }
    match doc.embedded_pdf() {
        Some(Ok(pdf)) if pdf.starts_with(b"%PDF-") => Ok(()),
        _ => Err(SampleError::SelfCheck {
            name: name.into(),
            why: "the level 1 body is not a decodable PDF".into(),
        }),
    }
}

/// The CDA must read, and its header check must report `code`.
fn check_cda_has(name: &str, xml: &str, code: &str) -> Result<(), SampleError> {
    let doc = relais_cda::read(xml.as_bytes(), &Limits::default()).map_err(|e| {
        SampleError::SelfCheck {
            name: name.into(),
            why: format!("not readable: {}", e.code()),
        }
    })?;
    let findings = relais_cda::check_header(&doc);
    if findings.iter().any(|f| f.code == code) {
        Ok(())
    } else {
        Err(SampleError::SelfCheck {
            name: name.into(),
            why: format!(
                "expected {code}, got [{}]",
                findings
                    .iter()
                    .map(|f| f.code.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// XDM
// ---------------------------------------------------------------------------------------------

/// CDA timestamp `YYYYMMDDhhmmss+zzzz` → XDS DTM in UTC `YYYYMMDDhhmmss`.
fn utc(ts: &str) -> String {
    let num = |r: std::ops::Range<usize>| -> i64 { ts[r].parse().unwrap_or(0) };
    let (y, mo, d, h, mi, s) = (
        num(0..4),
        num(4..6),
        num(6..8),
        num(8..10),
        num(10..12),
        num(12..14),
    );
    let sign = if &ts[14..15] == "-" { -1 } else { 1 };
    let offset = sign * (num(15..17) * 60 + num(17..19));
    let minutes = days_from_civil(y, mo, d) * 1440 + h * 60 + mi - offset;
    let (days, rest) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}{mo:02}{d:02}{:02}{:02}{s:02}", rest / 60, rest % 60)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn xcn(p: &Professional) -> String {
    format!(
        "{}^{}^{}^^^{}^^^&{PS_OID}&ISO^D^^^IDNPS",
        p.id, p.family, p.given, p.suffix
    )
}

/// The XDM package of one CDA, its metadata mapped from the CDA header as the CI-SIS says;
/// `patient_ins` is the INS written in the metadata (the CDA's, except for a broken sample).
fn package(spec: &DocSpec, cda: &str, patient_ins: &str) -> PackageBuilder {
    let org = spec.org;
    let patient = Cx::new(patient_ins, INS_TEST_OID, "NH");
    let local_id = Cx::new(org.patient_id, org.patient_id_root, "PI");
    let author = Author {
        person: Some(xcn(spec.author)),
        institutions: vec![format!(
            "{}^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^{}",
            org.name, org.id
        )],
        roles: Vec::new(),
        specialties: vec![format!(
            "{}^{}^1.2.250.1.213.1.1.4.5",
            spec.author.specialty, spec.author.specialty_display
        )],
        telecoms: vec![format!("^^Internet^{}", spec.author.mail)],
    };
    let entry = DocumentEntry {
        unique_id: format!("{}^{}", org.document_root, spec.doc_extension),
        mime_type: "text/xml".into(),
        patient_id: Some(patient.clone()),
        source_patient_id: Some(local_id.clone()),
        source_patient_info: vec![
            format!("PID-3|{}", local_id.to_hl7()),
            format!(
                "PID-5|{}^{}^^^^^L",
                PATIENT.birth_family, PATIENT.first_birth_given
            ),
            format!("PID-7|{}", PATIENT.birth_date),
            format!("PID-8|{}", PATIENT.sex),
        ],
        class_code: Some(Coded::new("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")),
        type_code: Some(Coded::new(spec.type_code, LOINC, spec.type_display)),
        format_code: Some(Coded::new(
            "urn:ihe:iti:xds-sd:pdf:2008",
            "1.3.6.1.4.1.19376.1.2.3",
            "Document à corps non structuré en PDF",
        )),
        confidentiality_codes: vec![Coded::new("N", "2.16.840.1.113883.5.25", "Normal")],
        healthcare_facility_type_code: Some(Coded::new(
            org.facility_type,
            "1.2.250.1.71.4.2.4",
            org.facility_type_display,
        )),
        practice_setting_code: Some(Coded::new(
            org.practice_setting,
            "1.2.250.1.213.1.1.4.9",
            org.practice_setting_display,
        )),
        language_code: Some("fr-FR".into()),
        creation_time: Some(utc(spec.effective_time)),
        service_start_time: Some(utc(spec.event_start)),
        service_stop_time: Some(utc(spec.event_end)),
        authors: vec![author.clone()],
        legal_authenticator: Some(xcn(spec.author)),
        title: Some(spec.title.into()),
        ..DocumentEntry::default()
    };
    let submission_set = SubmissionSet {
        unique_id: format!("{}.{}", org.source_id, &utc(spec.effective_time)),
        source_id: org.source_id.into(),
        patient_id: Some(patient),
        submission_time: Some(utc(spec.effective_time)),
        content_type_code: Some(Coded::new(
            "03",
            "1.2.250.1.213.2.2",
            "Hospitalisation complète (non compris hospitalisation de semaine)",
        )),
        authors: vec![author],
        title: Some(spec.title.into()),
        ..SubmissionSet::default()
    };
    let product = ProductInfo {
        name: PRODUCT_NAME.into(),
        version: PRODUCT_VERSION.into(),
        vendor: "Relais contributors".into(),
        contact: None,
    };
    PackageBuilder::new(product, submission_set).document(entry, cda.as_bytes().to_vec())
}

fn build_zip(spec: &DocSpec, builder: &PackageBuilder) -> Result<Vec<u8>, SampleError> {
    let built = builder.build().map_err(|source| SampleError::Xdm {
        name: spec.key.into(),
        source,
    })?;
    if !built.findings.is_empty() {
        return Err(SampleError::SelfCheck {
            name: format!("{} XDM", spec.key),
            why: format!(
                "metadata findings: {}",
                built
                    .findings
                    .iter()
                    .map(|f| format!("{} {}", f.code, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    Ok(built.zip)
}

/// Read the package back: valid ones without any finding and with the CDA unchanged; invalid
/// ones with the expected code, or (for the patient mismatch, a cross-check of `relais-check`)
/// with a metadata patientId that is not the CDA's INS.
fn check_xdm(name: &str, zip: &[u8], verdict: Verdict, cda: &str) -> Result<(), SampleError> {
    let fail = |why: String| SampleError::SelfCheck {
        name: name.into(),
        why,
    };
    let pkg = relais_xdm::read_package(zip, &Limits::default())
        .map_err(|e| fail(format!("package refused: {}", e.code())))?;
    let codes: Vec<String> = pkg.findings.iter().map(|f| f.code.to_string()).collect();
    let doc = pkg
        .documents()
        .next()
        .ok_or_else(|| fail("no document in the package".into()))?;
    let metadata_ins = doc.entry.patient_id.as_ref().map(|p| p.id.clone());
    match verdict {
        Verdict::Valid => {
            if !codes.is_empty() {
                return Err(fail(format!("unexpected findings [{}]", codes.join(", "))));
            }
            if doc.content != cda.as_bytes() || metadata_ins.as_deref() != Some(PATIENT.ins) {
                return Err(fail(
                    "the package does not carry the CDA and its INS".into(),
                ));
            }
        }
        Verdict::Invalid("XDM-CDA-PATIENTID-MISMATCH") => {
            if !codes.is_empty() || metadata_ins.as_deref() == Some(PATIENT.ins) {
                return Err(fail(format!(
                    "expected a clean package naming another INS, got [{}]",
                    codes.join(", ")
                )));
            }
        }
        Verdict::Invalid(code) => {
            if !codes.iter().any(|c| c == code) {
                return Err(fail(format!("expected {code}, got [{}]", codes.join(", "))));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mail
// ---------------------------------------------------------------------------------------------

/// An MSSanté mail carrying one document as IHE_XDM.ZIP and as PDF.
#[derive(Clone)]
struct MailSpec {
    key: String,
    from: (&'static str, &'static str),
    to: (&'static str, &'static str),
    /// The libellé of the subject convention.
    libelle: &'static str,
    /// RFC 5322 date.
    date: &'static str,
    message_id: String,
    codecda: &'static str,
    /// `YYYYMMDD` of the PDF name.
    pdf_date: &'static str,
    pdf_type: &'static str,
    body: &'static str,
}

impl MailSpec {
    fn discharge_letter() -> Self {
        MailSpec {
            key: "ldl-ses-n1".into(),
            from: WARD_MAILBOX,
            to: ("Dr Jean GENERALISTE-DEMO", GP.mail),
            libelle: "Lettre de liaison",
            date: "Wed, 12 Mar 2025 15:05:00 +0100",
            message_id: "ldl-ses-n1.20250312150500@ch-demo.mssante.fr".into(),
            codecda: LDL.type_code,
            pdf_date: "20250312",
            pdf_type: LDL.pdf_type,
            body: "Bonjour,\r\n\r\n\
                   Veuillez trouver ci-joint la lettre de liaison de sortie de votre patiente,\r\n\
                   hospitalisée du 3 au 12 mars 2025 dans le service de médecine interne.\r\n\r\n\
                   Ce courriel est un exemple fabriqué par Relais (make-samples) : la patiente,\r\n\
                   les professionnels et les établissements sont fictifs.\r\n\r\n\
                   Dr Claude AUTEUR-DEMO\r\n\
                   Centre hospitalier RELAIS-DEMO\r\n",
        }
    }

    fn lab_report() -> Self {
        MailSpec {
            key: "cr-bio-n1".into(),
            from: LAB_MAILBOX,
            to: WARD_MAILBOX,
            libelle: "CR d'examens biologiques",
            date: "Tue, 11 Mar 2025 17:10:00 +0100",
            message_id: "cr-bio-n1.20250311171000@labo-demo.mssante.fr".into(),
            codecda: CRBIO.type_code,
            pdf_date: "20250311",
            pdf_type: CRBIO.pdf_type,
            body: "Bonjour,\r\n\r\n\
                   Veuillez trouver ci-joint le compte rendu d'examens biologiques du prélèvement\r\n\
                   du 11 mars 2025.\r\n\r\n\
                   Ce courriel est un exemple fabriqué par Relais (make-samples) : la patiente,\r\n\
                   les professionnels et les établissements sont fictifs.\r\n\r\n\
                   Laboratoire de biologie médicale RELAIS-DEMO\r\n",
        }
    }

    /// The same mail under another Message-ID (each sample is a distinct message).
    fn variant(&self, key: &str) -> Self {
        let mut m = self.clone();
        m.message_id = self.message_id.replacen(&self.key, key, 1);
        m.key = key.into();
        m
    }

    fn subject(&self) -> String {
        format!(
            "XDM/1.0/DDM+{} {} {} {}",
            self.libelle, PATIENT.birth_family, PATIENT.first_birth_given, PATIENT.birth_date
        )
    }

    fn pdf_name(&self) -> String {
        format!(
            "{}_{}_{}_{}.pdf",
            self.pdf_date, self.pdf_type, PATIENT.birth_family, PATIENT.first_birth_given
        )
    }

    fn build(&self, xdm: &[u8], pdf: &[u8]) -> Result<Vec<u8>, SampleError> {
        let parts = vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                BodyPart::Text(self.body.into()),
            ),
            MimePart::new(
                ContentType::new("application/zip"),
                BodyPart::Binary(xdm.to_vec().into()),
            )
            .attachment("IHE_XDM.ZIP"),
            MimePart::new(
                ContentType::new("application/pdf"),
                BodyPart::Binary(pdf.to_vec().into()),
            )
            .attachment(self.pdf_name()),
        ];
        let boundary = format!("relais-sample-{}-mixed", self.key);
        let root = MimePart::new(
            ContentType::new("multipart/mixed").attribute("boundary", boundary),
            BodyPart::Multipart(parts),
        );
        let bytes = MessageBuilder::new()
            .from(Address::new_address(Some(self.from.0), self.from.1))
            .to(Address::new_address(Some(self.to.0), self.to.1))
            .subject(self.subject())
            .header("Date", Raw::new(self.date))
            .message_id(self.message_id.as_str())
            .header(
                "Disposition-Notification-To",
                Address::new_address(Some(self.from.0), self.from.1),
            )
            .header("X-MSS-CODECDA", Raw::new(self.codecda))
            .header("X-MSS-INS", Raw::new("O"))
            .header(
                "X-MSS-NIL",
                Raw::new(format!("{PRODUCT_NAME} {PRODUCT_VERSION}")),
            )
            .body(root)
            .write_to_vec()
            .map_err(|source| SampleError::Mail {
                name: self.key.clone(),
                source,
            })?;
        if has_bare_lf(&bytes) {
            return Err(SampleError::SelfCheck {
                name: format!("{}.eml", self.key),
                why: "the mail has a line ending that is not CRLF".into(),
            });
        }
        Ok(bytes)
    }
}

fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

// ---------------------------------------------------------------------------------------------
// HL7v2
// ---------------------------------------------------------------------------------------------

/// A segment from its fields (`fields[0]` is field 1), checked to hold no delimiter.
fn segment(name: &str, fields: &[(usize, String)]) -> Result<String, SampleError> {
    let last = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut values = vec![String::new(); last];
    for (n, v) in fields {
        values[n - 1] = v.clone();
    }
    let s = format!("{name}|{}", values.join("|"));
    if s.contains(['\r', '\n']) {
        return Err(SampleError::Encoding(format!(
            "HL7 segment {name}: a value holds a line break"
        )));
    }
    Ok(s)
}

/// A value that must not contain HL7 delimiters (names, labels).
fn st(s: &str) -> Result<String, SampleError> {
    if s.contains(['|', '^', '~', '\\', '&']) {
        return Err(SampleError::Encoding(format!(
            "HL7 value `{s}` holds a delimiter"
        )));
    }
    Ok(s.to_string())
}

fn message(segments: Vec<String>) -> Vec<u8> {
    let mut out = segments.join("\r");
    out.push('\r');
    out.into_bytes()
}

fn msh(
    sender: (&str, &str),
    receiver: (&str, &str),
    time: &str,
    message_type: &str,
    control_id: &str,
    version: &str,
    profile: &str,
) -> String {
    format!(
        "MSH|^~\\&|{}|{}|{}|{}|{time}||{message_type}|{control_id}|P|{version}|||||FRA|UNICODE UTF-8|||{profile}",
        sender.0, sender.1, receiver.0, receiver.1
    )
}

/// PID of the patient as the lab report names her (PAM-FR 2.11 with the INS, PID-32 VALI).
fn pid(org: &Organisation) -> Result<String, SampleError> {
    segment(
        "PID",
        &[
            (1, "1".into()),
            (
                3,
                format!(
                    "{}^^^ASIP-SANTE-INS-NIR&{INS_TEST_OID}&ISO^INS~{}^^^{}&{}&ISO^PI",
                    PATIENT.ins, org.patient_id, org.code, org.patient_id_root
                ),
            ),
            (
                5,
                format!(
                    "{}^{}^{}^^^^L",
                    st(PATIENT.birth_family)?,
                    st(PATIENT.first_birth_given)?,
                    st(PATIENT.birth_given_names)?
                ),
            ),
            (7, PATIENT.birth_date.into()),
            (8, PATIENT.sex.into()),
            (
                11,
                format!(
                    "{} {}^^{}^^{}^FRA^H~^^^^^^BDL^^{}",
                    PATIENT.house_number,
                    st(PATIENT.street)?,
                    PATIENT.city,
                    PATIENT.postal_code,
                    PATIENT.birthplace_insee
                ),
            ),
            (32, "VALI".into()),
        ],
    )
}

fn document_code(spec: &DocSpec) -> Result<String, SampleError> {
    Ok(format!("{}^{}^LN", spec.type_code, st(spec.type_display)?))
}

fn prt_person(
    role: &str,
    label: &str,
    p: &Professional,
    mail: Option<&str>,
) -> Result<String, SampleError> {
    let mut fields = vec![
        (2, "UC".to_string()),
        (4, format!("{role}^{label}^participation")),
        (
            5,
            format!(
                "{}^{}^{}^^^^^^ASIP-SANTE-PS&{PS_OID}&ISO^D^^^IDNPS",
                p.id,
                st(p.family)?,
                st(p.given)?
            ),
        ),
    ];
    if let Some(m) = mail {
        fields.push((15, format!("^^X.400^{m}")));
    }
    segment("PRT", &fields)
}

fn meta_obx(
    set_id: usize,
    vt: &str,
    code: &str,
    label: &str,
    value: &str,
) -> Result<String, SampleError> {
    segment(
        "OBX",
        &[
            (1, set_id.to_string()),
            (2, vt.into()),
            (3, format!("{code}^{}^MetaDMPMSS", st(label)?)),
            (5, format!("{value}^^expandedYes-NoIndicator")),
            (11, "F".into()),
        ],
    )
}

/// MDM^T02 v2.6 from Relais (the hospital's gateway) to the DPI: the lab report received in
/// `mail/cr-bio-n1.eml`, with that mail in OBX 2 (ig-lps-mss).
fn mdm_t02(cda: &str) -> Result<Vec<u8>, SampleError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mail = MailSpec::lab_report();
    let spec = &CRBIO;
    let mut segs = vec![
        msh(
            ("RELAIS", HOSPITAL.code),
            ("DPI", HOSPITAL.code),
            "20250311171200",
            "MDM^T02^MDM_T02",
            "RELAIS-20250311-0001",
            "2.6",
            "1.1^CISIS_CDA_HL7_LPS",
        ),
        segment("EVN", &[(2, "20250311171200".into())])?,
        pid(spec.org)?,
        segment("PV1", &[(1, "1".into()), (2, "N".into())])?,
        segment("ORC", &[(1, "NW".into())])?,
        segment("OBR", &[(1, "1".into()), (4, document_code(spec)?)])?,
        segment(
            "TXA",
            &[
                (1, "1".into()),
                (2, spec.type_code.into()),
                (3, "TEXT".into()),
                (4, spec.effective_time[..14].into()),
                (
                    12,
                    format!("{}^^{}^ISO", spec.doc_extension, spec.org.document_root),
                ),
                (17, "AU".into()),
            ],
        )?,
        segment(
            "OBX",
            &[
                (1, "1".into()),
                (2, "ED".into()),
                (3, document_code(spec)?),
                (5, format!("^text^XML^Base64^{}", b64.encode(cda))),
                (11, "F".into()),
            ],
        )?,
        prt_person("SB", "Send by", spec.author, Some(LAB_MAILBOX.1))?,
        segment(
            "PRT",
            &[
                (2, "UC".into()),
                (4, "RCT^Result Copies To^participation".into()),
                (
                    8,
                    format!(
                        "Médecine interne^^^^^ASIP-SANTE-ST&{STRUCTURE_OID}&ISO^FINEG^^^{}",
                        HOSPITAL.id
                    ),
                ),
                (15, format!("^^X.400^{}", WARD_MAILBOX.1)),
            ],
        )?,
        segment(
            "OBX",
            &[
                (1, "2".into()),
                (2, "ED".into()),
                (
                    3,
                    format!("{}^{}", st(&mail.message_id)?, st(&mail.subject())?),
                ),
                (5, format!("^text^^Base64^{}", b64.encode(mail.body))),
                (11, "F".into()),
            ],
        )?,
    ];
    for (i, (code, label)) in [
        ("MASQUE_PS", "Masqué aux professionnels de Santé"),
        ("INVISIBLE_PATIENT", "Document Non Visible par le patient"),
        (
            "INVISIBLE_REP_LEGAUX",
            "Non visible par les représentants Légaux du patient",
        ),
        ("MODIF_CONF_CODE", "Modification Confidentiality Code"),
    ]
    .into_iter()
    .enumerate()
    {
        segs.push(meta_obx(i + 3, "CWE", code, label, "N")?);
    }
    Ok(message(segs))
}

/// ORU^R01 v2.5 from the lab system to its gateway: send the lab report to the hospital ward by
/// MSSanté (ig-trans-cda).
fn oru_r01(cda: &str) -> Result<Vec<u8>, SampleError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let spec = &CRBIO;
    let mut segs = vec![
        msh(
            ("SIL-DEMO", LAB.code),
            ("RELAIS", LAB.code),
            "20250311165000",
            "ORU^R01^ORU_R01",
            "SIL-20250311-0042",
            "2.5",
            "2.1^CISIS_CDA_HL7_V2",
        ),
        pid(spec.org)?,
        segment(
            "PV1",
            &[
                (1, "1".into()),
                (2, "I".into()),
                (
                    19,
                    format!("V250311042^^^{}&{}&ISO^VN", LAB.code, LAB.patient_id_root),
                ),
            ],
        )?,
        segment(
            "ORC",
            &[
                (1, "NW".into()),
                (2, format!("CMD-0042^{}", HOSPITAL.code)),
                (3, format!("DOS-4217^{}", LAB.code)),
            ],
        )?,
        segment(
            "OBR",
            &[
                (1, "1".into()),
                (2, format!("CMD-0042^{}", HOSPITAL.code)),
                (3, format!("DOS-4217^{}", LAB.code)),
                (4, document_code(spec)?),
                (7, spec.event_start[..14].into()),
                (25, "F".into()),
            ],
        )?,
        segment(
            "OBX",
            &[
                (1, "1".into()),
                (2, "ED".into()),
                (3, document_code(spec)?),
                (5, format!("^TEXT^XML^Base64^{}", b64.encode(cda))),
                (11, "F".into()),
            ],
        )?,
        segment(
            "PRT",
            &[
                (2, "UC".into()),
                (4, "SB^Send by^participation".into()),
                (
                    5,
                    format!(
                        "{}^{}^{}^^^^^^ASIP-SANTE-PS&{PS_OID}&ISO^D^^^IDNPS",
                        BIOLOGIST.id,
                        st(BIOLOGIST.family)?,
                        st(BIOLOGIST.given)?
                    ),
                ),
                (
                    8,
                    format!(
                        "{}^^^^^ASIP-SANTE-ST&{STRUCTURE_OID}&ISO^FINEG^^^{}",
                        st(LAB.name)?,
                        LAB.id
                    ),
                ),
            ],
        )?,
        prt_person("RCT", "Result Copies To", &INTERNIST, Some(WARD_MAILBOX.1))?,
        segment(
            "PRT",
            &[
                (2, "UC".into()),
                (4, "REPLY^Reply To^participation".into()),
                (15, format!("^^X.400^{}", LAB_MAILBOX.1)),
            ],
        )?,
    ];
    for (i, (code, label, value)) in [
        ("MASQUE_PS", "Masqué aux professionnels de Santé", "N"),
        (
            "INVISIBLE_PATIENT",
            "Document Non Visible par le patient",
            "N",
        ),
        (
            "INVISIBLE_REP_LEGAUX",
            "Non visible par les représentants Légaux du patient",
            "N",
        ),
        ("CONNEXION_SECRETE", "Connexion Secrète", "N"),
        ("MODIF_CONF_CODE", "Modification Confidentiality Code", "N"),
        ("DESTDMP", "Destinataire DMP", "N"),
        ("DESTMSSANTEPS", "Destinataire MSSanté professionnel", "Y"),
        ("DESTMSSANTEPAT", "Destinataire MSSanté patient", "N"),
        ("ACK_RECEPTION", "Accusé de réception", "Y"),
        ("ACK_LECTURE_MSS", "Accusé de lecture", "N"),
    ]
    .into_iter()
    .enumerate()
    {
        segs.push(meta_obx(i + 2, "CE", code, label, value)?);
    }
    Ok(message(segs))
}

/// An ORU^R01 header whose MSH-2 repeats the component separator.
fn hl7_broken_delimiters() -> Result<Vec<u8>, SampleError> {
    let good = msh(
        ("SIL-DEMO", LAB.code),
        ("RELAIS", LAB.code),
        "20250311165000",
        "ORU^R01^ORU_R01",
        "SIL-20250311-0043",
        "2.5",
        "2.1^CISIS_CDA_HL7_V2",
    );
    let broken = good.replacen("MSH|^~\\&|", "MSH|^^\\&|", 1);
    if broken == good {
        return Err(SampleError::SelfCheck {
            name: "invalid/hl7-broken-delimiters.hl7".into(),
            why: "MSH-2 was not altered".into(),
        });
    }
    Ok(message(vec![
        broken,
        pid(&LAB)?,
        segment("PV1", &[(1, "1".into()), (2, "N".into())])?,
        segment("ORC", &[(1, "NW".into())])?,
        segment("OBR", &[(1, "1".into()), (4, document_code(&CRBIO)?)])?,
    ]))
}

/// A "billion laughs" document: ten levels of entities, each ten times the previous one.
fn billion_laughs() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!-- Relais sample: entity expansion attack. A safe reader refuses the DTD. -->\n\
         <!DOCTYPE ClinicalDocument [\n  <!ENTITY lol0 \"lol\">\n",
    );
    for level in 1..10 {
        let refs = format!("&lol{};", level - 1).repeat(10);
        s.push_str(&format!("  <!ENTITY lol{level} \"{refs}\">\n"));
    }
    s.push_str("]>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n  <title>&lol9;</title>\n</ClinicalDocument>\n");
    s
}

// ---------------------------------------------------------------------------------------------
// README
// ---------------------------------------------------------------------------------------------

fn readme(samples: &[Sample]) -> String {
    let mut s = String::new();
    s.push_str("# Samples\n\n");
    s.push_str(
        "Sample inputs made by this project for `relais check`, the tests and the demos. Everything \
         in them is fictional: the patient (test INS `279035121518989`, OID `1.2.250.1.213.1.4.10`, \
         RELAIS-TEST Camille, born 1979-03-15 in commune 51215), the professionals (RPPS `99999…`), \
         the organisations (FINESS `999…`, local OIDs under the example arc `2.999`) and the phone \
         numbers (range reserved for fiction). No file comes from the ANS material.\n\n",
    );
    s.push_str(
        "Do not edit these files by hand: they are written by\n\n\
         ```sh\ncargo run -p relais-testsupport --bin make-samples -- samples/\n```\n\n\
         from `crates/testsupport/src/bin/make-samples.rs` and the CDA template \
         `crates/testsupport/templates/cda-n1.xml`. The output is deterministic; \
         `cargo test -p relais-testsupport` fails when this folder differs from what the program \
         writes, and checks every sample CDA against the CI-SIS header rules and the CDA XSD.\n\n",
    );
    s.push_str(
        "Check them all with\n\n```sh\ncargo run --release -p relais -- check samples/\n```\n\n",
    );
    s.push_str("| File | What it is | Expected verdict |\n|---|---|---|\n");
    for sample in samples {
        let Some(verdict) = sample.verdict else {
            continue;
        };
        let verdict = match verdict {
            Verdict::Valid => "valid".to_string(),
            Verdict::Invalid(code) => format!("invalid: `{code}`"),
        };
        s.push_str(&format!(
            "| `{}` | {} | {verdict} |\n",
            sample.path,
            sample.what.replace('|', "\\|")
        ));
    }
    s.push_str(
        "\nThe story: Camille RELAIS-TEST is hospitalised in internal medicine at the Centre \
         hospitalier RELAIS-DEMO from 3 to 12 March 2025. On 11 March the laboratory RELAIS-DEMO \
         sends its report to the ward (`mail/cr-bio-n1.eml`; `documents/oru-r01-cr-bio.hl7` is the \
         lab system's request to send it, `documents/mdm-t02-cr-bio.hl7` the hospital gateway \
         filing it into the DPI). On 12 March the ward sends the discharge letter to the GP \
         (`mail/ldl-ses-n1.eml`). The files under `invalid/` are variants of these, each broken in \
         the one way its name says.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_conversion() {
        assert_eq!(utc("20250312143000+0100"), "20250312133000");
        assert_eq!(utc("20250301003000+0100"), "20250228233000");
        assert_eq!(utc("20241231233000-0200"), "20250101013000");
    }

    #[test]
    fn pdf_xref_offsets_point_at_objects() {
        let bytes = pdf(&["Titre é", "ligne (2)"]).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let startxref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(bytes[startxref..].starts_with(b"xref\n"));
        // Offsets are byte offsets: read the table from the bytes (the binary comment of the
        // header is not UTF-8, so `text` positions differ).
        let table = String::from_utf8_lossy(&bytes[startxref..]).into_owned();
        for (i, line) in table.lines().skip(3).take(6).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                bytes[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {} not at {off}",
                i + 1
            );
            assert_eq!(line.len() + 1, 20, "xref entries are 20 bytes");
        }
        assert!(text.contains("(Titre \\351) Tj"));
        assert!(text.contains("(ligne \\(2\\)) Tj"));
    }

    #[test]
    fn template_placeholders_must_match() {
        assert!(
            fill_template("<a>{{x}}</a>", &[("x", "<&>".into())]).unwrap()
                == "<a>&lt;&amp;&gt;</a>"
        );
        assert!(fill_template("<a>{{x}}</a>", &[]).is_err());
        assert!(fill_template("<a/>", &[("x", "1".into())]).is_err());
    }
}
