//! `relais patients import FILE.csv`: patient identities from a CSV export, for hospitals whose
//! identity server cannot send ADT messages (or to load the existing identities once).
//!
//! The file is UTF-8 (a BOM is accepted), RFC 4180: one header line, then one patient per
//! line; fields may be quoted with `"` (a quote inside is doubled) and may then hold the
//! separator or line breaks. The separator is `,`, or `;` when the header line has `;` and no
//! `,` (the French spreadsheet default). The header names the columns, in any order:
//!
//! ```text
//! ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status
//! ```
//!
//! | column | content | rule |
//! |---|---|---|
//! | `ipp` | the IPP | `ipp` or `ins` required |
//! | `ins` | the INS matricule | 15 characters, valid control key |
//! | `ins_oid` | its OID | required with `ins`: 1.2.250.1.213.1.4.8 (NIR), .9 (NIA), .10 (test), .11 (demo) |
//! | `birth_family` | birth family name | |
//! | `given_birth_first` | first birth first name | |
//! | `birth_given_names` | birth first names, space-separated | |
//! | `birth_date` | `YYYYMMDD` or `YYYY-MM-DD` | stored as `YYYYMMDD` |
//! | `sex` | `F`, `M`, `U`, `O`, `A`, `N` (HL7 table 0001) | |
//! | `birthplace_insee` | INSEE code of the birthplace | 5 characters (digits, `2A`/`2B`) |
//! | `identity_status` | `VIDE`, `PROV`, `VALI`, `DOUTE`, `FICTI` | |
//!
//! Every column must be present in the header; values may be empty. Errors name the line (and
//! the column) and never quote the values.

use crate::adt::PatientUpdate;
use crate::codes;
use relais_core::RuleCode;
use std::io::Read;

/// The columns of the patients CSV, in the documented order.
pub const CSV_COLUMNS: [&str; 10] = [
    "ipp",
    "ins",
    "ins_oid",
    "birth_family",
    "given_birth_first",
    "birth_given_names",
    "birth_date",
    "sex",
    "birthplace_insee",
    "identity_status",
];

/// Largest CSV file read (a hospital has at most a few million identities).
pub const MAX_CSV_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest field accepted.
const MAX_FIELD_CHARS: usize = 1000;

/// Why the CSV was refused. Messages never contain patient data.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the patients file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the patients file is larger than {limit} bytes; split it")]
    TooLarge { limit: u64 },
    #[error("the patients file is not UTF-8 (invalid byte at offset {offset}); export it as UTF-8")]
    NotUtf8 { offset: usize },
    #[error("line 1: bad header: {reason}; expected the columns {}", CSV_COLUMNS.join(","))]
    Header { reason: String },
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("line {line}, column `{column}`: {reason}")]
    Value {
        line: usize,
        column: &'static str,
        reason: String,
    },
}

impl CsvError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        codes::PATIENTS_CSV
    }

    /// The line the error is on (1 is the header), when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CsvError::Header { .. } => Some(1),
            CsvError::Syntax { line, .. } | CsvError::Value { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Read a patients CSV (see the module documentation) into updates, in file order.
pub fn parse_patients_csv(reader: impl Read) -> Result<Vec<PatientUpdate>, CsvError> {
    let mut bytes = Vec::new();
    reader.take(MAX_CSV_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge {
            limit: MAX_CSV_BYTES,
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| CsvError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let first_line = text.split(['\r', '\n']).next().unwrap_or("");
    let sep = if first_line.contains(';') && !first_line.contains(',') {
        ';'
    } else {
        ','
    };
    let records = split_records(text, sep)?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(CsvError::Header {
            reason: "the file is empty".into(),
        });
    };
    let mut index = [usize::MAX; CSV_COLUMNS.len()];
    for (pos, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let Some(k) = CSV_COLUMNS.iter().position(|c| *c == name) else {
            return Err(CsvError::Header {
                reason: format!(
                    "unknown column `{}`",
                    name.chars()
                        .filter(|c| !c.is_control())
                        .take(40)
                        .collect::<String>()
                ),
            });
        };
        if index[k] != usize::MAX {
            return Err(CsvError::Header {
                reason: format!("column `{}` appears twice", CSV_COLUMNS[k]),
            });
        }
        index[k] = pos;
    }
    if let Some(k) = index.iter().position(|&i| i == usize::MAX) {
        return Err(CsvError::Header {
            reason: format!("column `{}` is missing", CSV_COLUMNS[k]),
        });
    }
    let mut out = Vec::new();
    for (line, fields) in records {
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if fields.len() != header.len() {
            return Err(CsvError::Syntax {
                line,
                reason: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
        }
        let get = |k: usize| {
            let v = fields[index[k]].trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        let value_err = |column: &'static str, reason: &str| CsvError::Value {
            line,
            column,
            reason: reason.into(),
        };
        let mut u = PatientUpdate {
            ipp: get(0),
            ins: get(1),
            ins_oid: get(2),
            birth_family: get(3),
            given_birth_first: get(4),
            birth_given_names: get(5).map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
            birth_date: get(6),
            sex: get(7).map(|s| s.to_ascii_uppercase()),
            birthplace_insee: get(8).map(|s| s.to_ascii_uppercase()),
            identity_status: get(9).map(|s| s.to_ascii_uppercase()),
            ipp_authority: None,
            merged_ipp: None,
        };
        if u.ipp.is_none() && u.ins.is_none() {
            return Err(value_err("ipp", "each patient needs an IPP or an INS"));
        }
        if let Some(ins) = &u.ins {
            if relais_cda::ins::check_ins_value(ins).is_some() {
                return Err(value_err(
                    "ins",
                    "the INS must be 15 characters with a valid control key",
                ));
            }
            match &u.ins_oid {
                None => return Err(value_err("ins_oid", "required with an INS")),
                Some(oid) if !relais_hl7::message::INS_OIDS.contains(&oid.as_str()) => {
                    return Err(value_err(
                        "ins_oid",
                        "not an INS OID (1.2.250.1.213.1.4.8, .9, .10 or .11)",
                    ));
                }
                Some(_) => {}
            }
        } else if u.ins_oid.is_some() {
            return Err(value_err("ins_oid", "given without an INS"));
        }
        if let Some(date) = &u.birth_date {
            u.birth_date = Some(
                normalize_date(date)
                    .ok_or_else(|| value_err("birth_date", "expected YYYYMMDD or YYYY-MM-DD"))?,
            );
        }
        if let Some(sex) = &u.sex
            && !["F", "M", "U", "O", "A", "N"].contains(&sex.as_str())
        {
            return Err(value_err("sex", "expected F, M, U, O, A or N"));
        }
        if let Some(code) = &u.birthplace_insee {
            let b = code.as_bytes();
            let corsica = b.len() == 5 && (&b[..2] == b"2A" || &b[..2] == b"2B");
            let ok = b.len() == 5
                && (b.iter().all(u8::is_ascii_digit)
                    || (corsica && b[2..].iter().all(u8::is_ascii_digit)));
            if !ok {
                return Err(value_err(
                    "birthplace_insee",
                    "expected a 5-character INSEE code",
                ));
            }
        }
        if let Some(status) = &u.identity_status
            && !["VIDE", "PROV", "VALI", "DOUTE", "FICTI"].contains(&status.as_str())
        {
            return Err(value_err(
                "identity_status",
                "expected VIDE, PROV, VALI, DOUTE or FICTI",
            ));
        }
        out.push(u);
    }
    Ok(out)
}

/// `YYYYMMDD` from `YYYYMMDD` or `YYYY-MM-DD`, with a plausible month and day.
fn normalize_date(v: &str) -> Option<String> {
    let digits: String = if v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-' {
        format!("{}{}{}", &v[..4], &v[5..7], &v[8..])
    } else {
        v.to_string()
    };
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = digits[4..6].parse().ok()?;
    let day: u32 = digits[6..].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(digits)
}

/// Split RFC 4180 text into records, each with the line number it starts on.
fn split_records(text: &str, sep: char) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    let too_long = |line| CsvError::Syntax {
        line,
        reason: format!("a field is longer than {MAX_FIELD_CHARS} characters"),
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            if field.len() > MAX_FIELD_CHARS * 4 {
                return Err(too_long(line));
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => {
                return Err(CsvError::Syntax { line, reason: "a quote inside an unquoted field (quote the whole field and double the quote)".into() });
            }
            c if c == sep => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
                records.push((record_line, std::mem::take(&mut fields)));
                line += 1;
                record_line = line;
            }
            _ => {
                if was_quoted {
                    return Err(CsvError::Syntax {
                        line,
                        reason: "text after the closing quote of a field".into(),
                    });
                }
                field.push(c);
                if field.len() > MAX_FIELD_CHARS * 4 {
                    return Err(too_long(line));
                }
            }
        }
    }
    if quoted {
        return Err(CsvError::Syntax {
            line: record_line,
            reason: "a quoted field is not closed".into(),
        });
    }
    if !field.is_empty() || !fields.is_empty() || was_quoted {
        fields.push(field);
        records.push((record_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status";

    fn parse(body: &str) -> Result<Vec<PatientUpdate>, CsvError> {
        parse_patients_csv(format!("{HEADER}\n{body}").as_bytes())
    }

    #[test]
    fn reads_rows() {
        let rows = parse(
            "000003,279035121518989,1.2.250.1.213.1.4.10,PAT-TROIS,DOMINIQUE,DOMINIQUE,19790328,F,63220,VALI\r\n\
             \"000004\",,,\"O'NEIL, \"\"JR\"\"\",ANNE,\"ANNE  MARIE\",1980-02-29,f,2A004,prov\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].qualified_ins(),
            Some(("279035121518989", "1.2.250.1.213.1.4.10"))
        );
        assert_eq!(rows[0].birthplace_insee.as_deref(), Some("63220"));
        assert_eq!(rows[1].birth_family.as_deref(), Some("O'NEIL, \"JR\""));
        assert_eq!(rows[1].birth_given_names.as_deref(), Some("ANNE MARIE"));
        assert_eq!(rows[1].birth_date.as_deref(), Some("19800229"));
        assert_eq!(rows[1].sex.as_deref(), Some("F"));
        assert_eq!(rows[1].identity_status.as_deref(), Some("PROV"));
        assert_eq!(rows[1].ins, None);
    }

    #[test]
    fn semicolons_bom_and_column_order() {
        let text = "\u{FEFF}identity_status;sex;ipp;ins;ins_oid;birth_family;given_birth_first;birth_given_names;birth_date;birthplace_insee\nVALI;M;42;;;DOE;JOHN;JOHN;19700101;99100\n";
        let rows = parse_patients_csv(text.as_bytes()).unwrap();
        assert_eq!(rows[0].ipp.as_deref(), Some("42"));
        assert_eq!(rows[0].sex.as_deref(), Some("M"));
        assert_eq!(rows[0].birthplace_insee.as_deref(), Some("99100"));
    }

    #[test]
    fn errors_name_the_line_and_column_without_values() {
        let cases: &[(&str, usize, Option<&str>)] = &[
            (",,,DOE,,,,,,", 2, Some("ipp")),
            (
                "1,279035121518988,1.2.250.1.213.1.4.10,,,,,,,",
                2,
                Some("ins"),
            ),
            ("1,279035121518989,,,,,,,,", 2, Some("ins_oid")),
            ("1,279035121518989,1.2.3,,,,,,,", 2, Some("ins_oid")),
            ("1,,1.2.250.1.213.1.4.8,,,,,,,", 2, Some("ins_oid")),
            ("1,,,,,,19791328,,,", 2, Some("birth_date")),
            ("1,,,,,,,X,,", 2, Some("sex")),
            ("1,,,,,,,,6322,", 2, Some("birthplace_insee")),
            ("1,,,,,,,,,SURE", 2, Some("identity_status")),
            ("1,,,,,,,,,\n2,,,", 3, None),
            ("1,,,DO\"E,,,,,,", 2, None),
            ("1,,,\"DOE\"X,,,,,,", 2, None),
            ("1,,,,,,,,,\n\"2,,,,,,,,,", 3, None),
        ];
        for (body, line, column) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(err.line(), Some(*line), "{body:?}: {err}");
            if let Some(col) = column {
                assert!(
                    matches!(&err, CsvError::Value { column: c, .. } if c == col),
                    "{body:?}: {err}"
                );
            }
            let text = err.to_string();
            assert!(text.starts_with(&format!("line {line}")), "{text}");
            for secret in ["279035121518988", "19791328", "DO\"E", "6322,"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert_eq!(err.code(), codes::PATIENTS_CSV);
        }
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            parse_patients_csv(&b""[..]).unwrap_err(),
            CsvError::Header { .. }
        ));
        let missing = parse_patients_csv(&b"ipp,ins\n1,\n"[..]).unwrap_err();
        assert!(
            missing.to_string().contains("column `ins_oid` is missing"),
            "{missing}"
        );
        let unknown = parse_patients_csv(format!("{HEADER},nom\n").as_bytes()).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown column `nom`"),
            "{unknown}"
        );
        let twice = parse_patients_csv(format!("{HEADER},ipp\n").as_bytes()).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
        assert!(matches!(
            parse_patients_csv(&b"ipp\xff"[..]).unwrap_err(),
            CsvError::NotUtf8 { offset: 3 }
        ));
    }

    #[test]
    fn multiline_quoted_field_keeps_line_numbers() {
        let err = parse("1,,,\"A\nB\",,,,,,\n2,,,,,,,,,BAD").unwrap_err();
        assert_eq!(err.line(), Some(4));
    }
}
