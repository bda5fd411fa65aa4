//! Findings: what a validation layer reports.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

/// A stable, documented identifier of one rule, such as `XDM-HASH-MISMATCH`.
///
/// Codes never change meaning once published: operators grep logs and write routing rules on
/// them. Form: `AREA-WHAT`, upper case, words joined by `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RuleCode(pub Cow<'static, str>);

impl RuleCode {
    /// A code known at compile time.
    pub const fn new(code: &'static str) -> Self {
        RuleCode(Cow::Borrowed(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for RuleCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// How bad a finding is. Only [`Severity::Error`] makes a document invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// Where a finding points to, in the vocabulary of the format concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "kind", content = "at", rename_all = "kebab-case")]
pub enum Location {
    /// Nothing more precise than the input as a whole.
    #[default]
    Whole,
    /// A mail header, by name (`Subject`, `X-MSS-INS`).
    MailHeader(String),
    /// A MIME part, by its position (`1.2`) and file name when it has one.
    MimePart(String),
    /// An entry of a ZIP archive, by its path inside the archive.
    ZipEntry(String),
    /// A node of an XML document, as an XPath (`/ClinicalDocument/recordTarget[1]/...`).
    XPath(String),
    /// A line and column in a text document (1-based).
    Line { line: u32, column: u32 },
    /// An HL7v2 field, as `SEG[n]-field[.component]` (`OBX[1]-5.5`).
    Hl7Field(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Whole => f.write_str("-"),
            Location::MailHeader(h) => write!(f, "header {h}"),
            Location::MimePart(p) => write!(f, "MIME part {p}"),
            Location::ZipEntry(p) => write!(f, "ZIP entry {p}"),
            Location::XPath(x) => write!(f, "{x}"),
            Location::Line { line, column } => write!(f, "line {line}, column {column}"),
            Location::Hl7Field(field) => write!(f, "HL7 {field}"),
        }
    }
}

/// One problem (or remark) found in an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: RuleCode,
    pub severity: Severity,
    /// What is wrong and, where it helps, what to do, in plain English. Never patient data.
    pub message: String,
    pub location: Location,
    /// The original assertion text when the finding comes from an ANS schematron.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// Which rule set produced it (e.g. `CI-SIS_LDL-SES_2022.01.sch`, `CDA_extended.xsd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Finding {
    pub fn error(code: RuleCode, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: Severity::Error,
            message: message.into(),
            location: Location::Whole,
            assertion: None,
            source: None,
        }
    }

    pub fn warning(code: RuleCode, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(code, message)
        }
    }

    pub fn info(code: RuleCode, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Info,
            ..Finding::error(code, message)
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = location;
        self
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn with_assertion(mut self, text: impl Into<String>) -> Self {
        self.assertion = Some(text.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True when no finding in `findings` is an error.
pub fn all_valid<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> bool {
    findings.into_iter().all(|f| !f.is_error())
}
