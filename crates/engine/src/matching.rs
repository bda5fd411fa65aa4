//! Identifying the patient of a document in the hospital's patient index, per the ANS rules.
//!
//! A document is filed automatically only when its INS names exactly one patient of the index
//! and every identity trait agrees (guide "Transmission au LPS d'un document CDA provenant d'un
//! courriel MSSanté", error codes 902–905). Anything else waits for a human with the code:
//! 902 unknown patient, 903 no INS, 904 INS or traits differ, 905 traits incomplete, and 906
//! (other) when the index holds several patients with that INS.

use relais_cda::CdaDocument;
use relais_store::{InsMatch, Journal, PatientRecord};

/// The ANS codes and labels of identity problems.
pub const UNKNOWN_PATIENT: (&str, &str) = ("902", "Identifiant patient inconnu");
pub const INS_ABSENT: (&str, &str) = ("903", "INS non présent dans le document");
pub const INS_MISMATCH: (&str, &str) = (
    "904",
    "L'INS transmis ne correspond pas exactement à celui stocké",
);
pub const INS_INCOMPLETE: (&str, &str) = ("905", "L'INS transmis n'est pas complet");
pub const OTHER: (&str, &str) = ("906", "Autre erreur");

/// The result of matching one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Exactly one patient, every trait equal.
    Matched { ipp: String },
    /// A human must decide: the ANS code and a reason without patient data.
    Review {
        code: &'static str,
        label: &'static str,
        reason: String,
    },
}

fn review(code: (&'static str, &'static str), reason: impl Into<String>) -> MatchOutcome {
    MatchOutcome::Review {
        code: code.0,
        label: code.1,
        reason: reason.into(),
    }
}

/// Identity traits are compared as the INS referential writes them: case and surrounding
/// spaces aside, exactly.
fn same(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.trim().to_uppercase() == b.trim().to_uppercase(),
        _ => false,
    }
}

fn date8(d: &Option<String>) -> Option<String> {
    d.as_ref().map(|d| d.chars().take(8).collect())
}

/// Match the patient of `cda` against the index.
pub async fn match_patient(
    journal: &dyn Journal,
    cda: &CdaDocument,
) -> Result<MatchOutcome, relais_store::StoreError> {
    let Some(patient) = cda.header.patient.as_ref() else {
        return Ok(review(
            INS_ABSENT,
            "the document has no recordTarget patient",
        ));
    };
    let Some(ins) = patient.ins.as_ref() else {
        return Ok(review(
            INS_ABSENT,
            "the document identifies the patient without an INS",
        ));
    };
    let missing: Vec<&str> = [
        ("birth family name", patient.birth_family.is_none()),
        (
            "first birth first name",
            patient.given_birth_first.is_none(),
        ),
        ("birth date", patient.birth_time.is_none()),
        ("sex", patient.sex.is_none()),
        ("birthplace code", patient.birthplace_insee.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Ok(review(
            INS_INCOMPLETE,
            format!(
                "identity traits missing in the document: {}",
                missing.join(", ")
            ),
        ));
    }
    let found = match journal
        .find_patient_by_ins(ins.kind.oid(), &ins.value)
        .await?
    {
        InsMatch::None => {
            return Ok(review(
                UNKNOWN_PATIENT,
                format!("no patient of the index holds this {}", ins.kind),
            ));
        }
        InsMatch::Several(ipps) => {
            return Ok(review(
                OTHER,
                format!(
                    "{} patients of the index hold this INS (a duplicate awaiting merge)",
                    ipps.len()
                ),
            ));
        }
        InsMatch::One(found) => found.record,
    };
    let differing = differing_traits(&found, patient);
    if !differing.is_empty() {
        return Ok(review(
            INS_MISMATCH,
            format!(
                "the INS is known but these traits differ from the index: {}",
                differing.join(", ")
            ),
        ));
    }
    Ok(MatchOutcome::Matched { ipp: found.ipp })
}

fn differing_traits(index: &PatientRecord, doc: &relais_cda::Patient) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !same(&index.birth_family, &doc.birth_family) {
        out.push("birth family name");
    }
    if !same(&index.given_birth_first, &doc.given_birth_first) {
        out.push("first birth first name");
    }
    if date8(&index.birth_date) != date8(&doc.birth_time) || index.birth_date.is_none() {
        out.push("birth date");
    }
    if !same(&index.sex, &doc.sex) {
        out.push("sex");
    }
    if !same(&index.birthplace_insee, &doc.birthplace_insee) {
        out.push("birthplace code");
    }
    out
}
