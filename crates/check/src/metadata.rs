//! XDM metadata from a CDA header, per the ANS mapping "CDA header → XDS metadata"
//! (guide "Transmission de documents CDA en HL7v2", mapping page).
//!
//! Used to build packages (outbound) and, in tests, to build consistent packages around real
//! CDA documents before breaking one field at a time.

use crate::mappings::CodeTables;
use relais_cda::{CdaDocument, Ii};
use relais_xdm::{Author, Coded, Cx, DocumentEntry};

/// LOINC, the code system of CI-SIS document type codes.
const LOINC: &str = "2.16.840.1.113883.6.1";
/// XDS classCode code system used by the CI-SIS (JDV_J57).
const CLASS_CODE_SYSTEM: &str = "1.2.250.1.213.1.1.4.1";
/// XDS formatCode code system of the CI-SIS format codes.
const FORMAT_CODE_SYSTEM_CISIS: &str = "1.2.250.1.213.1.1.4.2.282";
/// XDS formatCode code system of the IHE format codes.
const FORMAT_CODE_SYSTEM_IHE: &str = "1.3.6.1.4.1.19376.1.2.3";

/// The DocumentEntry describing `cda` (hash, size and URI are filled by the package builder).
pub fn document_entry_for(cda: &CdaDocument, tables: &CodeTables) -> DocumentEntry {
    let h = &cda.header;
    let patient = h.patient.as_ref();
    let patient_id = patient
        .and_then(|p| p.ins.as_ref())
        .map(|ins| Cx::new(ins.value.clone(), ins.kind.oid(), "NH"));
    let source_patient_id = patient
        .and_then(|p| p.ipps.first())
        .and_then(|ii| Some(Cx::new(ii.extension.clone()?, ii.root.clone()?, "PI")));
    let type_code = h.type_code().map(|c| {
        Coded::new(
            c,
            h.code
                .as_ref()
                .and_then(|c| c.code_system.clone())
                .unwrap_or_else(|| LOINC.into()),
            h.code
                .as_ref()
                .and_then(|c| c.display_name.clone())
                .unwrap_or_default(),
        )
    });
    let class_code = h
        .type_code()
        .and_then(|t| tables.class_code_for(t))
        .map(|c| Coded::new(c, CLASS_CODE_SYSTEM, ""));
    let roots: Vec<&str> = cda
        .model_template_ids()
        .into_iter()
        .filter_map(|t| t.root.as_deref())
        .collect();
    let format_code =
        pick_format_code(tables.format_codes_for(roots.iter().copied()), cda).map(|f| {
            let scheme = if f.starts_with("urn:ihe:") {
                FORMAT_CODE_SYSTEM_IHE
            } else {
                FORMAT_CODE_SYSTEM_CISIS
            };
            Coded::new(f, scheme, "")
        });
    let confidentiality = h
        .confidentiality_code
        .as_ref()
        .and_then(|c| {
            Some(Coded::new(
                c.code.clone()?,
                c.code_system.clone().unwrap_or_default(),
                c.display_name.clone().unwrap_or_default(),
            ))
        })
        .into_iter()
        .collect();
    let cd = |c: &relais_cda::Cd| {
        Some(Coded::new(
            c.code.clone()?,
            c.code_system.clone().unwrap_or_default(),
            c.display_name.clone().unwrap_or_default(),
        ))
    };
    let practice = h
        .authors
        .iter()
        .find_map(|a| a.organization.as_ref()?.industry_code.as_ref())
        .or_else(|| {
            h.service_events
                .iter()
                .flat_map(|s| s.performers.iter())
                .find_map(|p| p.party.organization.as_ref()?.industry_code.as_ref())
        })
        .and_then(cd);
    DocumentEntry {
        unique_id: h.id.as_ref().map(Ii::to_xds).unwrap_or_default(),
        mime_type: "text/xml".into(),
        patient_id,
        source_patient_id,
        class_code,
        type_code,
        format_code,
        confidentiality_codes: confidentiality,
        healthcare_facility_type_code: h
            .encounter
            .as_ref()
            .and_then(|e| e.facility_type.as_ref())
            .and_then(cd),
        practice_setting_code: practice,
        language_code: h.language_code.clone(),
        creation_time: h.effective_time.as_deref().map(utc_seconds),
        service_start_time: h
            .service_events
            .first()
            .and_then(|s| s.start.as_deref())
            .map(utc_seconds),
        service_stop_time: h
            .service_events
            .first()
            .and_then(|s| s.end.as_deref())
            .map(utc_seconds),
        authors: h.authors.iter().map(author).collect(),
        legal_authenticator: h
            .legal_authenticator
            .as_ref()
            .map(|l| xcn(&l.party.id, l.party.name.as_ref())),
        title: h.title.clone(),
        availability_status: Some("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved".into()),
        ..DocumentEntry::default()
    }
}

/// Level 1: the IHE format of the media type (PDF by default); level 3: the model's code.
fn pick_format_code(candidates: Vec<&str>, cda: &CdaDocument) -> Option<String> {
    if candidates.len() <= 1 {
        return candidates.first().map(|s| s.to_string());
    }
    let wanted = match &cda.body {
        relais_cda::Body::NonXml { media_type, .. } => match media_type.as_deref() {
            Some("text/plain") => "urn:ihe:iti:xds-sd:text:2008",
            Some("image/jpeg") => "urn:ihe:iti-fr:xds-sd:jpeg:2010",
            Some("text/rtf") => "urn:ihe:iti-fr:xds-sd:rtf:2010",
            Some("image/tiff") => "urn:ihe:iti-fr:xds-sd:tiff:2010",
            _ => "urn:ihe:iti:xds-sd:pdf:2008",
        },
        _ => candidates[0],
    };
    candidates
        .iter()
        .find(|c| **c == wanted)
        .or(candidates.first())
        .map(|s| s.to_string())
}

fn author(a: &relais_cda::Author) -> Author {
    Author {
        person: Some(xcn(&a.id, a.name.as_ref())),
        institutions: a
            .organization
            .iter()
            .filter_map(|o| {
                let id = o.ids.first()?;
                Some(format!(
                    "{}^^^^^&{}&ISO^IDNST^^^{}",
                    o.name.clone().unwrap_or_default(),
                    id.root.clone().unwrap_or_default(),
                    id.extension.clone().unwrap_or_default()
                ))
            })
            .collect(),
        roles: a
            .function_code
            .iter()
            .filter_map(|c| c.display_name.clone())
            .collect(),
        specialties: a
            .profession
            .iter()
            .filter_map(|c| {
                Some(format!(
                    "{}^{}^{}",
                    c.code.clone()?,
                    c.display_name.clone().unwrap_or_default(),
                    c.code_system.clone().unwrap_or_default()
                ))
            })
            .collect(),
        telecoms: Vec::new(),
    }
}

/// XCN of a professional: `id^family^given^^^prefix^^^&authority&ISO^D^^^IDNPS`.
fn xcn(id: &Option<Ii>, name: Option<&relais_cda::PersonName>) -> String {
    let (ext, root) = id
        .as_ref()
        .map(|i| {
            (
                i.extension.clone().unwrap_or_default(),
                i.root.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let n = name.cloned().unwrap_or_default();
    format!(
        "{ext}^{}^{}^^^{}^^^&{root}&ISO^D^^^IDNPS",
        n.family.unwrap_or_default(),
        n.given.unwrap_or_default(),
        n.prefix.unwrap_or_default()
    )
}

/// XDS times are UTC `YYYYMMDDhhmmss` (or a shorter prefix). CDA times may carry a zone
/// offset, e.g. `20210401134745+0100`: convert it to UTC.
pub fn utc_seconds(ts: &str) -> String {
    let (digits, offset) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Some(off) = offset.filter(|o| o.len() == 5 && digits.len() >= 12) else {
        return digits;
    };
    let sign: i64 = if off.starts_with('-') { -1 } else { 1 };
    let (Ok(oh), Ok(om)) = (off[1..3].parse::<i64>(), off[3..5].parse::<i64>()) else {
        return digits;
    };
    let n = |r: std::ops::Range<usize>| {
        digits
            .get(r)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (y, mo, d, h, mi) = (n(0..4), n(4..6), n(6..8), n(8..10), n(10..12));
    let secs = digits.get(12..14).unwrap_or("");
    // Minutes since the epoch of the civil date (days from civil, proleptic Gregorian).
    let days = days_from_civil(y, mo, d);
    let total = days * 1440 + h * 60 + mi - sign * (oh * 60 + om);
    let (days, minutes) = (total.div_euclid(1440), total.rem_euclid(1440));
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}{mo:02}{d:02}{:02}{:02}{secs}",
        minutes / 60,
        minutes % 60
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::utc_seconds;

    #[test]
    fn converts_to_utc() {
        assert_eq!(utc_seconds("20210401134745+0100"), "20210401124745");
        assert_eq!(utc_seconds("20210101003000+0200"), "20201231223000");
        assert_eq!(utc_seconds("20201231233000-0100"), "20210101003000");
        assert_eq!(utc_seconds("20210401"), "20210401");
        assert_eq!(utc_seconds("202104011347+0000"), "202104011347");
    }
}
