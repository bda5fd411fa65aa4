//! The published extraction of MSSanté addresses, read as a stream.
//!
//! The ANS publishes every day `Extraction_Correspondance_MSSante_<AAAAMMJJhhmm>.txt`
//! (served as a ZIP holding that one file by `service.annuaire.sante.fr`, and decompressed on
//! data.gouv.fr as `extraction-correspondance-mssante.txt`): UTF-8 text, one header line,
//! fields separated by `|`, one line per mailbox, about 540,000 lines and 90 MB. The columns,
//! in the published order:
//!
//! ```text
//! Type de BAL | Adresse BAL | Type Identifiant PP | Identifiant PP | Identification nationale PP |
//! Type identifiant structure | Identification Structure | Service de rattachement |
//! Civilité d'exercice | Nom d'exercice | Prénom d'exercice | Catégorie profession |
//! Libellé de catégorie profession | Code Profession | Libellé Profession | Code savoir-faire |
//! Libellé savoir-faire | Dématérialisation | Raison Sociale structure BAL |
//! Enseigne commerciale structure BAL | L2COMPLEMENTLOCALISATION structure BAL |
//! L3COMPLEMENTDISTRIBUTION structure BAL | L4NUMEROVOIE structure BAL |
//! L4COMPLEMENTNUMEROVOIE structure BAL | NL4TYPEVOIE structure BAL | L4LIBELLEVOIE structure BAL |
//! L5LIEUDITMENTION structure BAL | L6LIGNEACHEMINEMENT structure BAL | Code postal structure BAL |
//! Département structure BAL | Pays structure BAL
//! ```
//!
//! The reader is driven by the header, not by positions: columns are found by name
//! (accent-, case- and punctuation-insensitive, with or without the ` structure BAL` suffix),
//! so a reordered or extended file still reads. Only `Type de BAL` and `Adresse BAL` are
//! required; missing optional columns and unknown ones are reported. A trailing `|` at the end
//! of lines is tolerated.
//!
//! A line that cannot be used (wrong number of fields, no or invalid address, no mailbox type,
//! longer than the line limit) is counted and reported by line number — never by content, it
//! holds names — and skipped: one bad line never stops an import. Lines that are not UTF-8 are
//! read as Latin-1 and counted.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead};

use crate::fold;
use crate::model::{BalType, Coded, Entry, Location, Mailbox, Organisation, Person};

/// Default longest line accepted (a real line is about 200 bytes).
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// Lines reported in full in [`ParseReport::issues`]; the others are only counted.
pub const MAX_REPORTED_ISSUES: usize = 100;

/// Why an extraction cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// Reading failed.
    #[error("cannot read the extraction: {0}")]
    Io(#[from] io::Error),
    /// The file is empty.
    #[error("the extraction is empty (no header line)")]
    Empty,
    /// The first line is not a `|`-separated header naming the required columns.
    #[error(
        "the first line is not the header of an Extraction Correspondance MSSanté: missing \
         column(s) {missing}; is this the right file (Extraction_Correspondance_MSSante_*.txt)?"
    )]
    NotAnExtraction {
        /// The required columns not found.
        missing: String,
    },
    /// The header line is longer than the line limit.
    #[error("the header line is longer than {limit} bytes; is this the right file?")]
    HeaderTooLong {
        /// The limit.
        limit: usize,
    },
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Longer than the line limit.
    TooLong {
        /// The line's length in bytes.
        bytes: u64,
        /// The limit.
        limit: usize,
    },
    /// Not as many fields as the header has columns.
    FieldCount {
        /// Fields found.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// `Adresse BAL` is empty.
    MissingAddress,
    /// `Adresse BAL` is not `local@domain`.
    InvalidAddress,
    /// `Type de BAL` is empty.
    MissingBalType,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooLong { bytes, limit } => {
                write!(f, "{bytes} bytes, longer than the {limit}-byte limit")
            }
            Problem::FieldCount { found, expected } => {
                write!(f, "{found} fields where the header has {expected} columns")
            }
            Problem::MissingAddress => f.write_str("no mailbox address"),
            Problem::InvalidAddress => f.write_str("the mailbox address is not local@domain"),
            Problem::MissingBalType => f.write_str("no mailbox type"),
        }
    }
}

/// A skipped line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIssue {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for LineIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// What reading the extraction found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Lines read, header included.
    pub lines: u64,
    /// Mailboxes read.
    pub records: u64,
    /// Lines skipped.
    pub malformed: u64,
    /// The first [`MAX_REPORTED_ISSUES`] skipped lines.
    pub issues: Vec<LineIssue>,
    /// Lines that were not UTF-8 (read as Latin-1).
    pub latin1_lines: u64,
    /// Mailboxes per type code.
    pub by_type: BTreeMap<String, u64>,
    /// Optional columns the header does not have (their fields stay empty).
    pub missing_columns: Vec<&'static str>,
    /// Header columns Relais does not know (ignored).
    pub unknown_columns: Vec<String>,
}

impl ParseReport {
    fn issue(&mut self, line: u64, problem: Problem) {
        self.malformed += 1;
        if self.issues.len() < MAX_REPORTED_ISSUES {
            self.issues.push(LineIssue { line, problem });
        }
    }
}

/// The columns Relais reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    BalType,
    Address,
    PersonIdType,
    PersonId,
    PersonNatId,
    StructIdType,
    StructId,
    Service,
    Civility,
    Surname,
    GivenName,
    CategoryCode,
    CategoryLabel,
    ProfessionCode,
    ProfessionLabel,
    SpecialityCode,
    SpecialityLabel,
    Dematerialisation,
    OrgName,
    OrgSign,
    L2,
    L3,
    L4Number,
    L4NumberComplement,
    L4StreetType,
    L4Street,
    L5,
    L6,
    PostalCode,
    Department,
    Country,
}

const N_COLS: usize = Col::Country as usize + 1;

/// Published column names (see the module documentation), and the key they fold to.
const COLUMNS: [(Col, &str); N_COLS] = [
    (Col::BalType, "Type de BAL"),
    (Col::Address, "Adresse BAL"),
    (Col::PersonIdType, "Type Identifiant PP"),
    (Col::PersonId, "Identifiant PP"),
    (Col::PersonNatId, "Identification nationale PP"),
    (Col::StructIdType, "Type identifiant structure"),
    (Col::StructId, "Identification Structure"),
    (Col::Service, "Service de rattachement"),
    (Col::Civility, "Civilité d'exercice"),
    (Col::Surname, "Nom d'exercice"),
    (Col::GivenName, "Prénom d'exercice"),
    (Col::CategoryCode, "Catégorie profession"),
    (Col::CategoryLabel, "Libellé de catégorie profession"),
    (Col::ProfessionCode, "Code Profession"),
    (Col::ProfessionLabel, "Libellé Profession"),
    (Col::SpecialityCode, "Code savoir-faire"),
    (Col::SpecialityLabel, "Libellé savoir-faire"),
    (Col::Dematerialisation, "Dématérialisation"),
    (Col::OrgName, "Raison Sociale structure BAL"),
    (Col::OrgSign, "Enseigne commerciale structure BAL"),
    (Col::L2, "L2COMPLEMENTLOCALISATION structure BAL"),
    (Col::L3, "L3COMPLEMENTDISTRIBUTION structure BAL"),
    (Col::L4Number, "L4NUMEROVOIE structure BAL"),
    (
        Col::L4NumberComplement,
        "L4COMPLEMENTNUMEROVOIE structure BAL",
    ),
    (Col::L4StreetType, "NL4TYPEVOIE structure BAL"),
    (Col::L4Street, "L4LIBELLEVOIE structure BAL"),
    (Col::L5, "L5LIEUDITMENTION structure BAL"),
    (Col::L6, "L6LIGNEACHEMINEMENT structure BAL"),
    (Col::PostalCode, "Code postal structure BAL"),
    (Col::Department, "Département structure BAL"),
    (Col::Country, "Pays structure BAL"),
];

/// The published header line (for tests and generated files).
pub fn published_header() -> String {
    COLUMNS
        .iter()
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join("|")
}

/// The key a header name is matched on: folded, without the ` structure BAL` suffix, with a
/// few spellings seen in other ANS files accepted.
fn column_key(name: &str) -> String {
    let k = fold::key(name);
    let k = k.strip_suffix(" structure bal").unwrap_or(&k).to_string();
    match k.as_str() {
        "type bal" => "type de bal".into(),
        "civilite exercice" => "civilite d exercice".into(),
        "nom exercice" => "nom d exercice".into(),
        "prenom exercice" => "prenom d exercice".into(),
        "code categorie profession" => "categorie profession".into(),
        "libelle categorie profession" => "libelle de categorie profession".into(),
        "identifiant structure" => "identification structure".into(),
        "l4typevoie" => "nl4typevoie".into(),
        _ => k,
    }
}

/// Where each column is in the file's lines.
#[derive(Debug, Clone)]
struct Layout {
    at: [Option<usize>; N_COLS],
    width: usize,
}

impl Layout {
    fn from_header(header: &str, report: &mut ParseReport) -> Result<Layout, ExtractError> {
        let mut names: Vec<&str> = header.split('|').collect();
        if names.len() > 1 && names.last().is_some_and(|n| n.trim().is_empty()) {
            names.pop();
        }
        let wanted: Vec<(Col, String, &'static str)> = COLUMNS
            .iter()
            .map(|(c, n)| (*c, column_key(n), *n))
            .collect();
        let mut at = [None; N_COLS];
        for (i, name) in names.iter().enumerate() {
            let key = column_key(name);
            match wanted.iter().find(|(_, k, _)| *k == key) {
                Some((col, _, _)) if at[*col as usize].is_none() => at[*col as usize] = Some(i),
                _ => {
                    if !name.trim().is_empty() {
                        report.unknown_columns.push(name.trim().to_string());
                    }
                }
            }
        }
        let missing_required: Vec<&str> = [Col::BalType, Col::Address]
            .iter()
            .filter(|c| at[**c as usize].is_none())
            .map(|c| COLUMNS[*c as usize].1)
            .collect();
        if !missing_required.is_empty() {
            return Err(ExtractError::NotAnExtraction {
                missing: missing_required.join(", "),
            });
        }
        report.missing_columns = wanted
            .iter()
            .filter(|(c, _, _)| at[*c as usize].is_none())
            .map(|(_, _, n)| *n)
            .collect();
        Ok(Layout {
            at,
            width: names.len(),
        })
    }
}

/// One mailbox read from the extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its line number.
    pub line: u64,
    /// What the line says.
    pub entry: Entry,
}

/// Reads an extraction line by line: [`ExtractReader::new`] reads the header, then the reader
/// yields one [`Record`] per usable line. Only I/O errors end the iteration with an error;
/// unusable lines are counted in [`ExtractReader::report`].
pub struct ExtractReader<R> {
    inner: R,
    layout: Layout,
    max_line: usize,
    line_no: u64,
    buf: Vec<u8>,
    report: ParseReport,
}

/// A line read with a length limit.
enum LineRead {
    Line,
    TooLong(u64),
    Eof,
}

impl<R: BufRead> ExtractReader<R> {
    /// Reads the header line and prepares to read records.
    pub fn new(inner: R) -> Result<ExtractReader<R>, ExtractError> {
        ExtractReader::with_max_line(inner, DEFAULT_MAX_LINE)
    }

    /// Same, with another line length limit (bytes, end of line excluded).
    pub fn with_max_line(inner: R, max_line: usize) -> Result<ExtractReader<R>, ExtractError> {
        let mut reader = ExtractReader {
            inner,
            layout: Layout {
                at: [None; N_COLS],
                width: 0,
            },
            max_line,
            line_no: 0,
            buf: Vec::with_capacity(512),
            report: ParseReport::default(),
        };
        loop {
            match reader.read_line()? {
                LineRead::Eof => return Err(ExtractError::Empty),
                LineRead::TooLong(_) => {
                    return Err(ExtractError::HeaderTooLong { limit: max_line });
                }
                LineRead::Line => {}
            }
            let header = reader.decode();
            let header = header
                .strip_prefix('\u{feff}')
                .unwrap_or(&header)
                .to_string();
            if header.trim().is_empty() {
                continue;
            }
            reader.layout = Layout::from_header(&header, &mut reader.report)?;
            return Ok(reader);
        }
    }

    /// What has been read so far (complete once the iteration is over).
    pub fn report(&self) -> &ParseReport {
        &self.report
    }

    /// Gives the report back.
    pub fn into_report(self) -> ParseReport {
        self.report
    }

    /// Gives the underlying reader and the report back.
    pub fn finish(self) -> (R, ParseReport) {
        (self.inner, self.report)
    }

    /// Reads one line into `buf` (without its end of line), discarding the rest of a line
    /// longer than the limit without buffering it.
    fn read_line(&mut self) -> io::Result<LineRead> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(LineRead::Eof);
                }
                break;
            }
            any = true;
            let (chunk, found_eol) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            total += chunk.len() as u64;
            if total <= self.max_line as u64 + 1 {
                self.buf.extend_from_slice(chunk);
            }
            let used = chunk.len() + usize::from(found_eol);
            self.inner.consume(used);
            if found_eol {
                break;
            }
        }
        self.line_no += 1;
        self.report.lines += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            total -= 1;
        }
        if total > self.max_line as u64 {
            return Ok(LineRead::TooLong(total));
        }
        Ok(LineRead::Line)
    }

    /// The current line as text (Latin-1 when it is not UTF-8).
    fn decode(&mut self) -> String {
        match std::str::from_utf8(&self.buf) {
            Ok(s) => s.to_string(),
            Err(_) => {
                self.report.latin1_lines += 1;
                self.buf.iter().map(|&b| b as char).collect()
            }
        }
    }

    /// Reads the next usable record.
    fn next_record(&mut self) -> Option<Result<Record, ExtractError>> {
        loop {
            match self.read_line() {
                Err(e) => return Some(Err(e.into())),
                Ok(LineRead::Eof) => return None,
                Ok(LineRead::TooLong(bytes)) => {
                    let limit = self.max_line;
                    self.report
                        .issue(self.line_no, Problem::TooLong { bytes, limit });
                    continue;
                }
                Ok(LineRead::Line) => {}
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.decode();
            match self.parse_line(&line) {
                Ok(entry) => {
                    self.report.records += 1;
                    *self
                        .report
                        .by_type
                        .entry(entry.mailbox.bal_type.code().to_string())
                        .or_default() += 1;
                    return Some(Ok(Record {
                        line: self.line_no,
                        entry,
                    }));
                }
                Err(problem) => self.report.issue(self.line_no, problem),
            }
        }
    }

    fn parse_line(&self, line: &str) -> Result<Entry, Problem> {
        let mut fields: Vec<&str> = line.split('|').collect();
        let width = self.layout.width;
        if fields.len() == width + 1 && fields.last().is_some_and(|f| f.trim().is_empty()) {
            fields.pop();
        }
        if fields.len() != width {
            return Err(Problem::FieldCount {
                found: fields.len(),
                expected: width,
            });
        }
        let get = |c: Col| -> Option<String> {
            let v = fields.get(self.layout.at[c as usize]?)?.trim();
            if v.is_empty() {
                None
            } else {
                Some(v.to_string())
            }
        };
        let bal_type = get(Col::BalType).ok_or(Problem::MissingBalType)?;
        let address = get(Col::Address).ok_or(Problem::MissingAddress)?;
        if !is_address(&address) {
            return Err(Problem::InvalidAddress);
        }

        let person = Person {
            id_type: get(Col::PersonIdType),
            id: get(Col::PersonId),
            national_id: get(Col::PersonNatId),
            civility: get(Col::Civility),
            surname: get(Col::Surname),
            given_name: get(Col::GivenName),
        };
        let person = (person != Person::default()).then_some(person);
        let organisation = Organisation {
            id_type: get(Col::StructIdType),
            id: get(Col::StructId),
            name: get(Col::OrgName),
            sign: get(Col::OrgSign),
            service: get(Col::Service),
        };
        let organisation = (organisation != Organisation::default()).then_some(organisation);

        let street: Vec<String> = [
            Col::L4Number,
            Col::L4NumberComplement,
            Col::L4StreetType,
            Col::L4Street,
        ]
        .into_iter()
        .filter_map(get)
        .collect();
        let mut lines: Vec<String> = [get(Col::L2), get(Col::L3)].into_iter().flatten().collect();
        if !street.is_empty() {
            lines.push(street.join(" "));
        }
        lines.extend(get(Col::L5));
        let delivery_line = get(Col::L6);
        let postal_code = get(Col::PostalCode);
        let city = delivery_line.as_deref().and_then(city_of);
        Ok(Entry {
            mailbox: Mailbox {
                address,
                bal_type: BalType::from_code(&bal_type),
            },
            person,
            profession_category: Coded::new(get(Col::CategoryCode), get(Col::CategoryLabel)),
            profession: Coded::new(get(Col::ProfessionCode), get(Col::ProfessionLabel)),
            speciality: Coded::new(get(Col::SpecialityCode), get(Col::SpecialityLabel)),
            dematerialisation: get(Col::Dematerialisation).and_then(|v| parse_flag(&v)),
            organisation,
            location: Location {
                lines,
                delivery_line,
                postal_code,
                city,
                department: get(Col::Department),
                country: get(Col::Country),
            },
        })
    }
}

impl<R: BufRead> Iterator for ExtractReader<R> {
    type Item = Result<Record, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// `local@domain` with a non-empty local part without spaces and a valid domain name.
fn is_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local.contains(char::is_whitespace)
                && crate::liste_blanche::domain_of(domain).is_some()
        }
        None => false,
    }
}

/// `Dématérialisation` values seen in ANS files: `O`/`N`, `oui`/`non`, `true`/`false`, `1`/`0`.
fn parse_flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "o" | "oui" | "y" | "yes" | "true" | "vrai" | "1" => Some(true),
        "n" | "non" | "no" | "false" | "faux" | "0" => Some(false),
        _ => None,
    }
}

/// The town of a delivery line (`L6LIGNEACHEMINEMENT`): without the leading postal code, the
/// `CEDEX` part and a trailing district number (`13008 MARSEILLE 08` gives `MARSEILLE`).
pub fn city_of(delivery_line: &str) -> Option<String> {
    let mut words: Vec<&str> = delivery_line.split_whitespace().collect();
    if words.first().is_some_and(|w| {
        w.len() == 5
            && w.bytes()
                .all(|b| b.is_ascii_digit() || b == b'A' || b == b'B')
    }) {
        words.remove(0);
    }
    if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("cedex")) {
        words.truncate(i);
    }
    while words
        .last()
        .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()))
    {
        words.pop();
    }
    if words.is_empty() {
        None
    } else {
        Some(words.join(" "))
    }
}

/// The generation time written in an extraction's file name
/// (`Extraction_Correspondance_MSSante_202608261013.txt` gives `2026-08-26T10:13`).
pub fn generated_at_from_name(file_name: &str) -> Option<String> {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    let digits = stem.rsplit_once('_')?.1;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}T{}:{}",
        &digits[0..4],
        &digits[4..6],
        &digits[6..8],
        &digits[8..10],
        &digits[10..12]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[(usize, &str)]) -> String {
        let mut v = vec![""; N_COLS];
        for (i, f) in fields {
            v[*i] = f;
        }
        v.join("|")
    }

    fn person_line(address: &str, surname: &str) -> String {
        line(&[
            (0, "PER"),
            (1, address),
            (2, "8"),
            (3, "10999999001"),
            (4, "810999999001"),
            (8, "DR"),
            (9, surname),
            (10, "Sophie"),
            (13, "10"),
            (14, "Médecin"),
            (15, "SM26"),
            (16, "Qualifié en Médecine Générale"),
            (17, "O"),
            (18, "CHU FICTIF"),
            (22, "12"),
            (25, "RUE DES ESSAIS"),
            (27, "99001 VILLE-FICTIVE CEDEX 3"),
            (28, "99001"),
            (29, "99"),
        ])
    }

    fn read(text: &str) -> (Vec<Record>, ParseReport) {
        let mut r = ExtractReader::new(text.as_bytes()).unwrap();
        let records: Vec<Record> = r.by_ref().map(|r| r.unwrap()).collect();
        (records, r.into_report())
    }

    #[test]
    fn reads_the_published_layout() {
        let text = format!(
            "{}\n{}\n{}\r\n",
            published_header(),
            person_line("sophie.martin@chu-fictif.mssante.test", "MARTIN"),
            line(&[
                (0, "ORG"),
                (1, "accueil@chu-fictif.mssante.test"),
                (7, "ACCUEIL")
            ]),
        );
        let (records, report) = read(&text);
        assert_eq!(records.len(), 2);
        assert_eq!(report.records, 2);
        assert_eq!(report.malformed, 0);
        assert_eq!(report.lines, 3);
        assert!(
            report.missing_columns.is_empty(),
            "{:?}",
            report.missing_columns
        );
        assert!(report.unknown_columns.is_empty());
        let e = &records[0].entry;
        assert_eq!(records[0].line, 2);
        assert_eq!(e.mailbox.bal_type, BalType::Per);
        let p = e.person.as_ref().unwrap();
        assert_eq!(p.rpps(), Some("10999999001"));
        assert_eq!(p.national_id.as_deref(), Some("810999999001"));
        assert_eq!(
            e.profession.as_ref().unwrap().label.as_deref(),
            Some("Médecin")
        );
        assert_eq!(e.speciality.as_ref().unwrap().code.as_deref(), Some("SM26"));
        assert_eq!(e.dematerialisation, Some(true));
        assert_eq!(e.location.lines, vec!["12 RUE DES ESSAIS".to_string()]);
        assert_eq!(e.location.city.as_deref(), Some("VILLE-FICTIVE"));
        assert_eq!(e.location.postal_code.as_deref(), Some("99001"));
        let org = &records[1].entry;
        assert_eq!(org.mailbox.bal_type, BalType::Org);
        assert!(org.person.is_none());
        assert_eq!(
            org.organisation.as_ref().unwrap().service.as_deref(),
            Some("ACCUEIL")
        );
        assert_eq!(report.by_type.get("PER"), Some(&1));
    }

    #[test]
    fn header_driven_tolerant_reader() {
        // Reordered, fewer columns, other spellings, an unknown column, BOM, trailing '|'.
        let text = "\u{feff}ADRESSE BAL|Nouvelle colonne|type bal|Nom exercice|\n\
                    a.b@x.mssante.test|z|PER|DURAND|\n\
                    c.d@x.mssante.test|z|ORG||\n";
        let (records, report) = read(text);
        assert_eq!(records.len(), 2, "{report:?}");
        assert_eq!(
            records[0].entry.person.as_ref().unwrap().surname.as_deref(),
            Some("DURAND")
        );
        assert_eq!(report.unknown_columns, vec!["Nouvelle colonne".to_string()]);
        assert!(report.missing_columns.contains(&"Identifiant PP"));
        assert_eq!(report.malformed, 0);
    }

    #[test]
    fn malformed_lines_are_counted_not_fatal() {
        let good = person_line("ok@x.mssante.test", "MARTIN");
        let text = format!(
            "{}\n{good}\nPER|only|three\n{}\n{}\n{}\n\n{}\n{good}\n",
            published_header(),
            line(&[(0, "PER"), (1, "")]),
            line(&[(0, "PER"), (1, "not-an-address")]),
            line(&[(0, ""), (1, "x@x.mssante.test")]),
            line(&[(0, "PER"), (1, "a b@x.mssante.test")]),
        );
        let (records, report) = read(&text);
        assert_eq!(records.len(), 2);
        assert_eq!(report.malformed, 5);
        let issues: Vec<String> = report.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            issues,
            vec![
                "line 3: 3 fields where the header has 31 columns",
                "line 4: no mailbox address",
                "line 5: the mailbox address is not local@domain",
                "line 6: no mailbox type",
                "line 8: the mailbox address is not local@domain",
            ]
        );
        assert_eq!(records[1].line, 9, "blank line 7 skipped silently");
        // The report names lines, never their content.
        assert!(!format!("{report:?}").contains("MARTIN"));
        for i in &issues {
            assert!(!i.contains("not-an-address") && !i.contains("only"));
        }
    }

    #[test]
    fn huge_lines_are_skipped_without_being_buffered() {
        let good = person_line("ok@x.mssante.test", "MARTIN");
        let huge = format!("PER|{}@x.mssante.test", "a".repeat(5 * 1024 * 1024));
        let text = format!("{}\n{good}\n{huge}\n{good}", published_header());
        let mut r = ExtractReader::with_max_line(text.as_bytes(), 4096).unwrap();
        let records: Vec<Record> = r.by_ref().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].line, 4);
        let report = r.report();
        assert_eq!(report.malformed, 1);
        assert!(matches!(
            report.issues[0].problem,
            Problem::TooLong { bytes, limit: 4096 } if bytes > 5_000_000
        ));
        assert!(
            r.buf.capacity() < 64 * 1024,
            "the long line was not buffered"
        );
    }

    #[test]
    fn latin1_lines_are_read() {
        let mut bytes = format!("{}\n", published_header()).into_bytes();
        let l = line(&[(0, "PER"), (1, "h@x.mssante.test"), (9, "LEF\u{c8}VRE")]);
        // Encode the line in Latin-1.
        bytes.extend(l.chars().map(|c| c as u32 as u8));
        bytes.push(b'\n');
        let mut r = ExtractReader::new(&bytes[..]).unwrap();
        let rec = r.next().unwrap().unwrap();
        assert_eq!(
            rec.entry.person.unwrap().surname.as_deref(),
            Some("LEFÈVRE")
        );
        assert_eq!(r.report().latin1_lines, 1);
    }

    #[test]
    fn wrong_files_are_refused() {
        assert!(matches!(
            ExtractReader::new(&b""[..]),
            Err(ExtractError::Empty)
        ));
        let e = ExtractReader::new(&b"nom;prenom;email\nx;y;z\n"[..])
            .err()
            .unwrap();
        assert!(e.to_string().contains("Type de BAL, Adresse BAL"), "{e}");
        let e = ExtractReader::new(&b"PK\x03\x04\x14\x00"[..])
            .err()
            .unwrap();
        assert!(matches!(e, ExtractError::NotAnExtraction { .. }));
    }

    #[test]
    fn cities_and_file_names() {
        assert_eq!(city_of("75002 PARIS").as_deref(), Some("PARIS"));
        assert_eq!(city_of("13008 MARSEILLE 08").as_deref(), Some("MARSEILLE"));
        assert_eq!(city_of("69003 LYON CEDEX 03").as_deref(), Some("LYON"));
        assert_eq!(
            city_of("92100 BOULOGNE BILLANCOURT").as_deref(),
            Some("BOULOGNE BILLANCOURT")
        );
        assert_eq!(city_of("2A004 AJACCIO").as_deref(), Some("AJACCIO"));
        assert_eq!(city_of("75002"), None);
        assert_eq!(
            generated_at_from_name("Extraction_Correspondance_MSSante_202608261013.txt").as_deref(),
            Some("2026-08-26T10:13")
        );
        assert_eq!(
            generated_at_from_name("extraction-correspondance-mssante.txt"),
            None
        );
    }
}
