//! The report of `relais check`: what each input is, each document in it, each problem.
//!
//! The same structure is printed for people ([`Report::render_text`]) and serialised as JSON for
//! machines. It never carries patient identity: the INS *kind* is shown, never its value, nor
//! names or birth dates.

use crate::detect::InputKind;
use relais_core::{Finding, Severity};
use serde::Serialize;
use std::fmt::Write as _;

/// Whether a validation layer ran on a document, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Ran; the findings (if any) are in the document's list.
    Ran,
    /// Did not run; the text says why (e.g. no validation pack, Java missing).
    NotRun(String),
    /// Not applicable to this document (e.g. no model schematron for a level-1 document).
    NotApplicable(String),
}

/// One validation layer and its status (`xsd`, `header`, `schematron:CI-SIS_LDL-SES_2022.01.sch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRun {
    pub name: String,
    #[serde(flatten)]
    pub status: CheckStatus,
    /// How many errors this layer found (0 when it did not run).
    pub errors: usize,
}

impl CheckRun {
    /// A layer that ran and produced `findings`.
    pub fn ran(name: impl Into<String>, findings: &[Finding]) -> Self {
        CheckRun {
            name: name.into(),
            status: CheckStatus::Ran,
            errors: findings.iter().filter(|f| f.is_error()).count(),
        }
    }

    /// A layer that did not run, and why.
    pub fn not_run(name: impl Into<String>, why: impl Into<String>) -> Self {
        CheckRun {
            name: name.into(),
            status: CheckStatus::NotRun(why.into()),
            errors: 0,
        }
    }

    /// A layer that does not apply to the document, and why.
    pub fn not_applicable(name: impl Into<String>, why: impl Into<String>) -> Self {
        CheckRun {
            name: name.into(),
            status: CheckStatus::NotApplicable(why.into()),
            errors: 0,
        }
    }
}

/// A document found in an input (a CDA, a PDF, an HL7 message).
#[derive(Debug, Clone, Serialize, Default)]
pub struct DocumentReport {
    /// Where it sits: `IHE_XDM.ZIP!IHE_XDM/SUBSET01/DOC0001.XML`, `OBX[1]-5`, `MIME part 3`.
    pub location: String,
    /// `cda`, `pdf`, `hl7`.
    pub format: String,
    /// Document type code and its display name (LOINC for CDA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_display: Option<String>,
    /// CDA level: `N1` (PDF body) or `N3` (structured body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The CI-SIS model, e.g. `LDL-SES 2022.01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The kind of patient identifier: `INS-NIR`, `INS-NIA`, `INS-NIR test`, `INS demo`, or none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id_kind: Option<String>,
    /// The author's professional id kind and value (RPPS is a public professional identifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// HL7v2 message type and profile, for HL7 documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    pub checks: Vec<CheckRun>,
    pub findings: Vec<Finding>,
}

impl DocumentReport {
    pub fn is_valid(&self) -> bool {
        relais_core::finding::all_valid(&self.findings)
    }
}

/// Mail-level facts worth showing (no patient data: the subject is not shown).
#[derive(Debug, Clone, Serialize, Default)]
pub struct MailSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub attachments: Vec<String>,
    pub asks_disposition_notification: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_mss_ins: Option<String>,
}

/// The report on one input file.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub path: String,
    pub kind: InputKind,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailSummary>,
    pub documents: Vec<DocumentReport>,
    /// Problems of the input as a whole (mail, ZIP, METADATA, cross-checks).
    pub findings: Vec<Finding>,
}

impl InputReport {
    pub fn new(path: impl Into<String>, kind: InputKind) -> Self {
        InputReport {
            path: path.into(),
            kind,
            valid: true,
            mail: None,
            documents: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Recompute `valid` from every finding of the input and its documents.
    pub fn finish(mut self) -> Self {
        self.valid = relais_core::finding::all_valid(&self.findings)
            && self.documents.iter().all(|d| d.is_valid());
        self
    }

    /// Every finding of the input, its own first, then each document's.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .chain(self.documents.iter().flat_map(|d| d.findings.iter()))
    }

    /// Whether any finding (of any document) has this rule code.
    pub fn has_code(&self, code: &str) -> bool {
        self.all_findings().any(|f| f.code.as_str() == code)
    }
}

/// The report on every input of one `relais check` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub relais_version: &'static str,
    pub valid: bool,
    pub inputs: Vec<InputReport>,
}

impl Report {
    pub fn new(inputs: Vec<InputReport>) -> Self {
        Report {
            relais_version: env!("CARGO_PKG_VERSION"),
            valid: inputs.iter().all(|i| i.valid),
            inputs,
        }
    }

    /// A readable report for a terminal.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for input in &self.inputs {
            render_input(&mut out, input);
        }
        let invalid = self.inputs.iter().filter(|i| !i.valid).count();
        let _ = writeln!(
            out,
            "{} file(s) checked: {} valid, {} invalid",
            self.inputs.len(),
            self.inputs.len() - invalid,
            invalid
        );
        out
    }
}

fn verdict(valid: bool) -> &'static str {
    if valid { "VALID" } else { "INVALID" }
}

fn render_input(out: &mut String, input: &InputReport) {
    let _ = writeln!(
        out,
        "{}: {} ({} document(s)) — {}",
        input.path,
        input.kind.describe(),
        input.documents.len(),
        verdict(input.valid)
    );
    if let Some(mail) = &input.mail {
        let _ = writeln!(
            out,
            "  mail: Message-ID {}; from {}; to {}",
            mail.message_id.as_deref().unwrap_or("(none)"),
            join_or_none(&mail.from),
            join_or_none(&mail.to)
        );
        if !mail.attachments.is_empty() {
            let _ = writeln!(out, "  attachments: {}", mail.attachments.join(", "));
        }
        let mut flags = Vec::new();
        if let Some(ins) = &mail.x_mss_ins {
            flags.push(format!("X-MSS-INS {ins}"));
        }
        if mail.asks_disposition_notification {
            flags.push("read/processing acknowledgement requested".to_string());
        }
        if !flags.is_empty() {
            let _ = writeln!(out, "  {}", flags.join("; "));
        }
    }
    for f in &input.findings {
        render_finding(out, f, "  ");
    }
    for doc in &input.documents {
        let mut facts = vec![doc.format.to_uppercase()];
        if let Some(l) = &doc.level {
            facts.push(format!("level {l}"));
        }
        if let Some(m) = &doc.message_type {
            facts.push(m.clone());
        }
        if let Some(m) = &doc.model {
            facts.push(format!("model {m}"));
        }
        if let Some(t) = &doc.type_code {
            match &doc.type_display {
                Some(d) => facts.push(format!("type {t} ({d})")),
                None => facts.push(format!("type {t}")),
            }
        }
        if doc.format != "pdf"
            && (doc.patient_id_kind.is_some()
                || doc.type_code.is_some()
                || doc.message_type.is_some())
        {
            facts.push(format!(
                "patient {}",
                doc.patient_id_kind.as_deref().unwrap_or("without INS")
            ));
        }
        if let Some(a) = &doc.author {
            facts.push(format!("author {a}"));
        }
        let _ = writeln!(
            out,
            "  document {} — {}",
            doc.location,
            verdict(doc.is_valid())
        );
        let _ = writeln!(out, "    {}", facts.join(", "));
        let checks: Vec<String> = doc
            .checks
            .iter()
            .map(|c| match &c.status {
                CheckStatus::Ran if c.errors == 0 => format!("{} ok", c.name),
                CheckStatus::Ran => format!("{} {} error(s)", c.name, c.errors),
                CheckStatus::NotRun(why) => format!("{} NOT RUN ({why})", c.name),
                CheckStatus::NotApplicable(why) => format!("{} n/a ({why})", c.name),
            })
            .collect();
        if !checks.is_empty() {
            let _ = writeln!(out, "    checks: {}", checks.join("; "));
        }
        for f in &doc.findings {
            render_finding(out, f, "    ");
        }
    }
}

fn render_finding(out: &mut String, f: &Finding, indent: &str) {
    let sev = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let _ = write!(out, "{indent}{sev} {}: {}", f.code, f.message);
    if f.location != relais_core::Location::Whole {
        let _ = write!(out, " [at {}]", f.location);
    }
    if let Some(s) = &f.source {
        let _ = write!(out, " [{s}]");
    }
    let _ = writeln!(out);
    if let Some(a) = f
        .assertion
        .as_ref()
        .filter(|a| !f.message.contains(a.as_str()))
    {
        let _ = writeln!(out, "{indent}  ANS assertion: {a}");
    }
}

fn join_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}
