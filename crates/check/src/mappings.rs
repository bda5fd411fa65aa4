//! Code tables and the CDA model table, loaded as data.
//!
//! The NOS association tables (model templateId → XDS formatCode, type code → XDS classCode) and
//! the table of CI-SIS models (templateId → schematron) live under `mappings/` in the repository.
//! Relais embeds the copies it was built with, and loads a newer copy from a directory when the
//! configuration names one, so that an ANS update is a file change, not a rebuild.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const EMBEDDED_FORMAT_CODES: &str = include_str!("../../../mappings/nos/format-codes.csv");
const EMBEDDED_CLASS_CODES: &str = include_str!("../../../mappings/nos/class-codes.csv");
const EMBEDDED_MODELS: &str = include_str!("../../../mappings/cda-models.toml");

/// A mapping file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping file {path}, line {line}: {message}")]
    Csv {
        path: String,
        line: usize,
        message: String,
    },
    #[error("mapping file {path}: {message}")]
    Toml { path: String, message: String },
}

/// The NOS code tables used to cross-check XDM metadata against the CDA.
#[derive(Debug, Clone, Default)]
pub struct CodeTables {
    /// CDA model templateId → the XDS formatCodes allowed for it (ASS_A11).
    pub format_codes: BTreeMap<String, Vec<String>>,
    /// Document type code (LOINC, or a CI-SIS code) → XDS classCode (ASS_X04).
    pub class_codes: BTreeMap<String, String>,
}

impl CodeTables {
    /// The tables embedded at build time.
    pub fn embedded() -> Self {
        Self::from_texts(EMBEDDED_FORMAT_CODES, EMBEDDED_CLASS_CODES, "embedded")
            .expect("embedded mapping tables are valid (checked by tests)")
    }

    /// Load `nos/format-codes.csv` and `nos/class-codes.csv` from a mappings directory.
    pub fn load(dir: &Path) -> Result<Self, MappingError> {
        let f = read(&dir.join("nos/format-codes.csv"))?;
        let c = read(&dir.join("nos/class-codes.csv"))?;
        Self::from_texts(&f, &c, &dir.display().to_string())
    }

    fn from_texts(format: &str, class: &str, origin: &str) -> Result<Self, MappingError> {
        let mut t = CodeTables::default();
        for row in csv_rows(format, &format!("{origin}/nos/format-codes.csv"), 4)? {
            t.format_codes
                .entry(row[0].clone())
                .or_default()
                .push(row[2].clone());
        }
        for row in csv_rows(class, &format!("{origin}/nos/class-codes.csv"), 4)? {
            t.class_codes.insert(row[0].clone(), row[2].clone());
        }
        Ok(t)
    }

    /// The formatCodes allowed for a document carrying these model templateIds.
    pub fn format_codes_for<'a>(
        &'a self,
        template_ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<&'a str> {
        template_ids
            .into_iter()
            .filter_map(|t| self.format_codes.get(t))
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The classCode expected for a document type code.
    pub fn class_code_for(&self, type_code: &str) -> Option<&str> {
        self.class_codes.get(type_code).map(String::as_str)
    }
}

fn read(path: &Path) -> Result<String, MappingError> {
    std::fs::read_to_string(path).map_err(|source| MappingError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Rows of a CSV text with a header line; lines starting with `#` are comments.
fn csv_rows(text: &str, path: &str, columns: usize) -> Result<Vec<Vec<String>>, MappingError> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| MappingError::Csv {
            path: path.to_string(),
            line: e.position().map(|p| p.line() as usize).unwrap_or(i + 2),
            message: e.to_string(),
        })?;
        if rec.len() != columns {
            return Err(MappingError::Csv {
                path: path.to_string(),
                line: rec.position().map(|p| p.line() as usize).unwrap_or(i + 2),
                message: format!("expected {columns} columns, found {}", rec.len()),
            });
        }
        rows.push(rec.iter().map(|s| s.trim().to_string()).collect());
    }
    Ok(rows)
}

/// One CI-SIS CDA model and the schematron that checks it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    pub version: String,
    pub template_id: String,
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub codes: Vec<String>,
    /// File name inside the pack's `schematrons/` directory.
    pub schematron: String,
}

impl Model {
    /// `LDL-SES 2022.01`
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// The table of CI-SIS models (`mappings/cda-models.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTable {
    /// The Structuration minimale schematron, relative to `schematrons/`, run on every document.
    pub header_schematron: String,
    #[serde(rename = "model")]
    pub models: Vec<Model>,
}

impl ModelTable {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_MODELS, "embedded cda-models.toml")
            .expect("embedded model table is valid (checked by tests)")
    }

    pub fn load(dir: &Path) -> Result<Self, MappingError> {
        let path = dir.join("cda-models.toml");
        Self::parse(&read(&path)?, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Self, MappingError> {
        toml::from_str(text).map_err(|e| MappingError::Toml {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// The model of a document, from its templateIds (`(root, extension)`) and its code.
    /// The most specific match wins: an extension match counts more than a bare root, and a
    /// code constraint that matches counts too. `None` when no model applies (e.g. a plain
    /// level-1 document).
    pub fn select<'a>(
        &'a self,
        template_ids: &[(String, Option<String>)],
        code: Option<&str>,
    ) -> Option<&'a Model> {
        self.models
            .iter()
            .filter_map(|m| {
                let mut best = None;
                for (root, ext) in template_ids {
                    if *root != m.template_id {
                        continue;
                    }
                    let score = match (&m.extension, ext) {
                        (Some(me), Some(de)) if me == de => 2,
                        (None, None) => 1,
                        _ => continue,
                    };
                    best = best.max(Some(score));
                }
                let mut score = best?;
                if !m.codes.is_empty() {
                    if !code.is_some_and(|c| m.codes.iter().any(|mc| mc == c)) {
                        return None;
                    }
                    score += 1;
                }
                Some((score, m))
            })
            .max_by_key(|(score, _)| *score)
            .map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_load() {
        let t = CodeTables::embedded();
        assert_eq!(
            t.format_codes_for(["1.2.250.1.213.1.1.1.29"]),
            vec!["urn:asip:ci-sis:ldl-ses:2017"]
        );
        assert!(
            t.format_codes_for(["1.3.6.1.4.1.19376.1.2.20"])
                .contains(&"urn:ihe:iti:xds-sd:pdf:2008")
        );
        assert_eq!(t.class_code_for("11490-0"), Some("10"));
        assert_eq!(t.class_code_for("18748-4"), Some("31"));
        assert_eq!(t.class_code_for("no-such-code"), None);
    }

    fn tid(root: &str, ext: Option<&str>) -> (String, Option<String>) {
        (root.to_string(), ext.map(str::to_string))
    }

    #[test]
    fn model_selection_prefers_extension() {
        let m = ModelTable::embedded();
        let ldl = m
            .select(
                &[tid("1.2.250.1.213.1.1.1.29", Some("2022.01"))],
                Some("11490-0"),
            )
            .unwrap();
        assert_eq!(ldl.schematron, "CI-SIS_LDL-SES_2022.01.sch");
        let bio = m
            .select(
                &[
                    tid("1.3.6.1.4.1.19376.1.3.3", None),
                    tid("1.2.250.1.213.1.1.1.55", Some("2024.01")),
                ],
                Some("11502-2"),
            )
            .unwrap();
        assert_eq!(bio.version, "2024.01");
        let bare = m
            .select(&[tid("1.2.250.1.213.1.1.1.55", None)], Some("11502-2"))
            .unwrap();
        assert_eq!(bare.version, "2021.01");
        // Unknown extension of a known model: no silent fallback to another version.
        assert!(
            m.select(&[tid("1.2.250.1.213.1.1.1.29", Some("2099.01"))], None)
                .is_none()
        );
    }

    #[test]
    fn model_selection_by_code() {
        let m = ModelTable::embedded();
        let n1 = [tid("1.3.6.1.4.1.19376.1.2.20", None)];
        assert_eq!(m.select(&n1, Some("85208-7")).unwrap().name, "TLM-CR");
        assert!(m.select(&n1, Some("11502-2")).is_none());
    }

    #[test]
    fn bad_csv_is_reported_with_line() {
        let err = CodeTables::from_texts("a,b,c,d\n1,2,3\n", "", "t").unwrap_err();
        assert!(err.to_string().contains("expected 4 columns"), "{err}");
    }
}
