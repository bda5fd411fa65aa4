//! The IHE XDM package (ITI-32) of one CDA document.
//!
//! The DocumentEntry is the CI-SIS mapping of the CDA header to XDS metadata, done by
//! `relais_check::metadata::document_entry_for` (the same code the inbound checks compare
//! against), completed with what the header alone does not say: the IPP as patientId when there
//! is no INS, the sourcePatientInfo traits, the author's MSSanté address and the labels of the
//! class and format codes. The submission set carries the sending system, the submission time,
//! the contentTypeCode of the encounter, the author and the intended recipients.

use crate::codes::{PS_ID_OID, class_display, format_display};
use crate::intake::{Intake, Recipient};
use crate::{BuildContext, BuildError};
use relais_core::Limits;
use relais_xdm::{BuiltPackage, Coded, Cx, PackageBuilder, SubmissionSet};

/// Build the XDM package of the CDA document `cda_xml` (as [`crate::build_cda`] made it from
/// `intake`).
///
/// The package is then checked as the receiving side would (`relais check` without the
/// schematrons: ZIP, METADATA.XML, hash and size, the CDA header, metadata against the CDA);
/// any error is a [`BuildError::SelfCheck`].
pub fn build_package(
    intake: &Intake,
    cda_xml: &[u8],
    ctx: &BuildContext,
) -> Result<BuiltPackage, BuildError> {
    ctx.check()?;
    intake.validate_with(&ctx.policy)?;
    let cda = relais_cda::read(cda_xml, &Limits::default()).map_err(|e| BuildError::SelfCheck {
        what: "CDA",
        why: format!(
            "the CDA given to the package builder is not readable: {}",
            e.code()
        ),
    })?;
    let mut entry = relais_check::metadata::document_entry_for(&cda, crate::code_tables());

    let p = &intake.patient;
    let ipp = p
        .ipp
        .as_ref()
        .map(|i| Cx::new(i.value.clone(), i.assigner_oid.clone(), "PI"));
    if entry.patient_id.is_none() {
        // No INS: the receiving side can only be given the IPP.
        entry.patient_id = ipp.clone();
    }
    if entry.source_patient_id.is_none() {
        entry.source_patient_id = ipp.clone().or_else(|| entry.patient_id.clone());
    }
    let pid3 = entry
        .source_patient_id
        .as_ref()
        .map(|c| c.to_hl7())
        .unwrap_or_default();
    let first_given = p.birth_given_names.first().cloned().unwrap_or_default();
    entry.source_patient_info = vec![
        format!("PID-3|{pid3}"),
        format!(
            "PID-5|{}^{}^^^^^L",
            hl7_safe(&p.birth_family_name),
            hl7_safe(&first_given)
        ),
        format!("PID-7|{}", p.birth_date.yyyymmdd()),
        format!(
            "PID-8|{}",
            match p.sex {
                crate::codes::Sex::F => "F",
                crate::codes::Sex::M => "M",
                crate::codes::Sex::UN => "U",
            }
        ),
    ];
    for c in entry.class_code.iter_mut() {
        c.display = class_display(&c.code).map(str::to_string);
    }
    for c in entry.format_code.iter_mut() {
        c.display = format_display(&c.code).map(str::to_string);
    }
    if let Some(m) = &intake.author.mssante {
        for a in &mut entry.authors {
            a.telecoms = vec![format!("^^Internet^{m}")];
        }
    }

    let content_type = intake.content_type().map(|(code, system, display)| Coded {
        code,
        scheme: system,
        display: Some(display),
    });
    let submission_set = SubmissionSet {
        unique_id: relais_xdm::name_based_oid(&format!(
            "relais-compose|{}|submission-set",
            ctx.seed
        )),
        source_id: ctx.source_oid.clone(),
        patient_id: entry.patient_id.clone(),
        submission_time: Some(relais_check::metadata::utc_seconds(&ctx.now.to_cda())),
        content_type_code: content_type,
        authors: entry.authors.clone(),
        title: Some(intake.document.title.clone()),
        intended_recipients: intake.recipients.iter().map(intended_recipient).collect(),
        ..SubmissionSet::default()
    };
    let built = PackageBuilder::new(ctx.product.clone(), submission_set)
        .document(entry, cda_xml.to_vec())
        .build()?;
    let problems: Vec<String> = built
        .findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| f.code.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(BuildError::SelfCheck {
            what: "XDM package",
            why: problems.join(", "),
        });
    }
    self_check("XDM package", "IHE_XDM.ZIP", &built.zip)?;
    Ok(built)
}

/// `intendedRecipient` (ITI TF-3: `XON|XCN|XTN`): the person by RPPS when known, the address.
fn intended_recipient(r: &Recipient) -> String {
    let person = r
        .rpps
        .as_ref()
        .map(|rpps| {
            format!(
                "8{rpps}^{}^{}^^^^^^&{PS_ID_OID}&ISO^D^^^IDNPS",
                hl7_safe(r.family_name.as_deref().unwrap_or_default()),
                hl7_safe(r.given_name.as_deref().unwrap_or_default())
            )
        })
        .unwrap_or_default();
    let telecom = r
        .mssante
        .as_ref()
        .map(|a| format!("^^Internet^{a}"))
        .unwrap_or_default();
    format!("|{person}|{telecom}")
}

/// A name inside an HL7v2 value: the delimiters `|^~\&` become spaces.
fn hl7_safe(s: &str) -> String {
    s.chars()
        .map(|c| if "|^~\\&".contains(c) { ' ' } else { c })
        .collect()
}

/// `relais check` without pack (mail, XDM, CDA header, cross-checks) must find no error.
pub(crate) fn self_check(what: &'static str, name: &str, bytes: &[u8]) -> Result<(), BuildError> {
    static CHECKER: std::sync::OnceLock<relais_check::Checker> = std::sync::OnceLock::new();
    let checker = CHECKER.get_or_init(|| relais_check::Checker::offline(Limits::default()));
    let report = checker.check_bytes(name, bytes);
    let errors: Vec<String> = report
        .all_findings()
        .filter(|f| f.is_error())
        .map(|f| f.code.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BuildError::SelfCheck {
            what,
            why: errors.join(", "),
        })
    }
}
