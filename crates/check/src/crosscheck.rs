//! Checks between layers: XDM metadata against the CDA it describes, the mail against its
//! documents. Messages name the fields, never the patient's identifiers.

use crate::codes;
use crate::mappings::CodeTables;
use relais_cda::CdaDocument;
use relais_core::{Finding, Location};
use relais_xdm::DocumentEntry;

/// Does the DocumentEntry describe this CDA? patientId, typeCode, formatCode, classCode, uniqueId.
pub(crate) fn entry_against_cda(
    entry: &DocumentEntry,
    cda: &CdaDocument,
    tables: &CodeTables,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let h = &cda.header;
    let at = || Location::XPath(format!("METADATA.XML ExtrinsicObject {}", entry.entry_uuid));

    if let Some(pid) = &entry.patient_id {
        let ids = h
            .patient
            .as_ref()
            .map(|p| p.ids.as_slice())
            .unwrap_or_default();
        let matches = ids.iter().any(|ii| {
            ii.extension.as_deref() == Some(pid.id.as_str())
                && ii.root.as_deref() == pid.assigning_authority.as_deref()
        });
        if !matches {
            let kind = pid
                .assigning_authority
                .as_deref()
                .and_then(relais_cda::InsKind::from_oid)
                .map(|k| k.to_string())
                .unwrap_or_else(|| "identifier".to_string());
            out.push(
                Finding::error(
                    codes::XDM_CDA_PATIENTID_MISMATCH,
                    format!(
                        "the DocumentEntry patientId ({kind}, authority {}) matches no recordTarget/patientRole/id of the CDA: metadata and document do not name the same patient",
                        pid.assigning_authority.as_deref().unwrap_or("none")
                    ),
                )
                .at(at()),
            );
        }
    }

    let cda_type = h.type_code();
    if let (Some(t), Some(c)) = (&entry.type_code, cda_type)
        && t.code != c
    {
        out.push(
            Finding::error(
                codes::XDM_CDA_TYPECODE_MISMATCH,
                format!(
                    "the DocumentEntry typeCode {} differs from the CDA code {c}",
                    t.code
                ),
            )
            .at(at()),
        );
    }

    if let Some(fc) = &entry.format_code {
        let roots: Vec<&str> = cda
            .model_template_ids()
            .into_iter()
            .filter_map(|t| t.root.as_deref())
            .collect();
        let allowed = tables.format_codes_for(roots.iter().copied());
        if allowed.is_empty() {
            out.push(
                Finding::warning(
                    codes::XDM_CDA_FORMATCODE_UNKNOWN,
                    format!(
                        "no formatCode is known for the CDA templateIds {} (NOS table ASS_A11); formatCode {} not checked",
                        roots.join(", "),
                        fc.code
                    ),
                )
                .at(at()),
            );
        } else if !allowed.contains(&fc.code.as_str()) {
            out.push(
                Finding::error(
                    codes::XDM_CDA_FORMATCODE_MISMATCH,
                    format!(
                        "the DocumentEntry formatCode {} is not the one of the CDA model (expected {} per NOS ASS_A11)",
                        fc.code,
                        allowed.join(" or ")
                    ),
                )
                .at(at()),
            );
        }
    }

    if let (Some(cc), Some(t)) = (&entry.class_code, cda_type)
        && let Some(expected) = tables.class_code_for(t)
        && cc.code != expected
    {
        out.push(
                    Finding::error(
                        codes::XDM_CDA_CLASSCODE_MISMATCH,
                        format!(
                            "the DocumentEntry classCode {} is not the class of type {t} (expected {expected} per NOS ASS_X04)",
                            cc.code
                        ),
                    )
                    .at(at()),
                );
    }

    if let Some(id) = &h.id {
        let expected = id.to_xds();
        if !entry.unique_id.is_empty() && entry.unique_id != expected {
            out.push(
                Finding::error(
                    codes::XDM_CDA_UNIQUEID_MISMATCH,
                    "the DocumentEntry uniqueId differs from the CDA id (root^extension)",
                )
                .at(at()),
            );
        }
    }
    out
}

/// Does the mail agree with the documents it carries? One patient; X-MSS-CODECDA; X-MSS-INS.
pub(crate) fn mail_against_documents(
    mail: &relais_mssante::ParsedMail,
    cdas: &[&CdaDocument],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if cdas.is_empty() {
        return out;
    }
    let mut patients: Vec<(&str, &str)> = cdas
        .iter()
        .filter_map(|c| c.header.patient.as_ref()?.ins.as_ref())
        .map(|ins| (ins.kind.oid(), ins.value.as_str()))
        .collect();
    patients.sort();
    patients.dedup();
    if patients.len() > 1 {
        out.push(Finding::error(
            codes::MAIL_SEVERAL_PATIENTS,
            format!(
                "the documents of this mail concern {} different patients; an MSSanté mail carries documents of one patient",
                patients.len()
            ),
        ));
    }
    if !mail.mss.codecda.is_empty() {
        let missing: Vec<&str> = cdas
            .iter()
            .filter_map(|c| c.header.type_code())
            .filter(|code| !mail.mss.codecda.iter().any(|h| h == code))
            .collect();
        if !missing.is_empty() {
            out.push(
                Finding::warning(
                    codes::MAIL_X_MSS_CODECDA_MISMATCH,
                    format!(
                        "X-MSS-CODECDA does not list the document code(s) {}",
                        missing.join(", ")
                    ),
                )
                .at(Location::MailHeader("X-MSS-CODECDA".into())),
            );
        }
    }
    if let Some(flag) = mail.mss.ins {
        let qualified = cdas.iter().all(|c| {
            c.header
                .patient
                .as_ref()
                .and_then(|p| p.ins_kind())
                .is_some()
        });
        let says_qualified = flag == relais_mssante::InsFlag::Qualified;
        if says_qualified != qualified {
            out.push(
                Finding::warning(
                    codes::MAIL_X_MSS_INS_MISMATCH,
                    if says_qualified {
                        "X-MSS-INS says O (INS present) but a document carries no INS"
                    } else {
                        "X-MSS-INS says N (no INS) but every document carries an INS"
                    },
                )
                .at(Location::MailHeader("X-MSS-INS".into())),
            );
        }
    }
    out
}
