//! The CI-SIS checks put together.
//!
//! Each format crate checks its own layer: `relais-mssante` the mail, `relais-xdm` the package,
//! `relais-cda` the CDA header and XSD, `relais-schematron` the ANS schematrons, `relais-hl7` the
//! HL7v2 profiles. This crate runs them in the order a document travels (mail → XDM → CDA, or
//! HL7 → embedded CDA), adds the checks *between* layers (does the XDM metadata describe the CDA
//! it carries? does the mail's `X-MSS-*` agree with its documents?) and builds one [`Report`].
//! `relais check` prints it; the inbound pipeline journals it.

pub mod codes;
pub mod detect;
pub mod mappings;
pub mod pack;
pub mod report;

mod crosscheck;
pub mod metadata;

pub use detect::{InputKind, detect};
pub use mappings::{CodeTables, MappingError, Model, ModelTable};
pub use pack::{Pack, PackError};
pub use report::{CheckRun, CheckStatus, DocumentReport, InputReport, MailSummary, Report};

use relais_cda::CdaDocument;
use relais_core::{Finding, Limits, Location};
use std::path::{Path, PathBuf};

/// Whether to run the ANS schematrons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchematronMode {
    /// Run them when Java, Saxon-HE and a pack are available; otherwise say they were not run.
    #[default]
    Auto,
    /// Run them, and refuse to start when they cannot run.
    Require,
    /// Do not run them.
    Off,
}

/// How to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Validation pack directory; `None` discovers one (see [`Pack::discover`]).
    pub pack: Option<PathBuf>,
    /// Mappings directory overriding the built-in tables.
    pub mappings: Option<PathBuf>,
    pub schematron: SchematronMode,
    /// Where compiled schematrons and the worker live (default: per-user cache).
    pub cache_dir: Option<PathBuf>,
    /// Run the XSD validation when a pack is available.
    pub xsd: bool,
    pub limits: Limits,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            pack: None,
            mappings: None,
            schematron: SchematronMode::Auto,
            cache_dir: None,
            xsd: true,
            limits: Limits::default(),
        }
    }
}

/// The checker cannot be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("the CDA schema {path} cannot be loaded: {reason}")]
    Xsd { path: String, reason: String },
    #[error("schematron checks are required (--require-schematron) but cannot run: {0}")]
    SchematronRequired(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs every check on inputs. Built once (loading the XSD and starting the schematron worker
/// are the expensive parts), then used for any number of inputs, from several threads.
pub struct Checker {
    limits: Limits,
    tables: CodeTables,
    models: ModelTable,
    pack: Option<Pack>,
    xsd: Result<relais_cda::XsdValidator, String>,
    schematron: Result<relais_schematron::SchematronEngine, String>,
    notes: Vec<String>,
}

impl Checker {
    /// Load the tables and the pack, start the schematron worker.
    pub fn new(options: CheckOptions) -> Result<Checker, CheckError> {
        let (tables, models) = match &options.mappings {
            Some(dir) => (CodeTables::load(dir)?, ModelTable::load(dir)?),
            None => (CodeTables::embedded(), ModelTable::embedded()),
        };
        let pack = Pack::discover(options.pack.as_deref())?;
        let mut notes = Vec::new();
        let no_pack = "no validation pack (give --pack DIR or set RELAIS_PACK_DIR)".to_string();
        let xsd = match (&pack, options.xsd) {
            (_, false) => Err("disabled".to_string()),
            (None, true) => Err(no_pack.clone()),
            (Some(p), true) => {
                Ok(
                    relais_cda::XsdValidator::load(p.xsd()).map_err(|e| CheckError::Xsd {
                        path: p.xsd().display().to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        let schematron = match (&pack, options.schematron) {
            (_, SchematronMode::Off) => Err("disabled (--no-schematron)".to_string()),
            (None, _) => Err(no_pack.clone()),
            (Some(p), _) => {
                let cache_dir = options.cache_dir.clone().unwrap_or_else(default_cache_dir);
                relais_schematron::SchematronEngine::start(relais_schematron::EngineConfig {
                    pack_dir: p.dir.clone(),
                    cache_dir,
                    java: None,
                    saxon_jar: None,
                })
                .map_err(|e| e.to_string())
            }
        };
        if let Err(why) = &schematron {
            if options.schematron == SchematronMode::Require {
                return Err(CheckError::SchematronRequired(why.clone()));
            }
            if options.schematron == SchematronMode::Auto {
                notes.push(format!("schematron checks will not run: {why}"));
            }
        }
        if pack.is_none() {
            notes.push(format!("XSD checks will not run: {no_pack}"));
        }
        Ok(Checker {
            limits: options.limits,
            tables,
            models,
            pack,
            xsd,
            schematron,
            notes,
        })
    }

    /// A checker with no pack and no schematron: the checks that need nothing outside Relais.
    pub fn offline(limits: Limits) -> Checker {
        Checker {
            limits,
            tables: CodeTables::embedded(),
            models: ModelTable::embedded(),
            pack: None,
            xsd: Err("not configured".into()),
            schematron: Err("not configured".into()),
            notes: Vec::new(),
        }
    }

    /// Remarks on the set-up worth telling the user (e.g. checks that will not run, and why).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The validation pack in use, if any.
    pub fn pack(&self) -> Option<&Pack> {
        self.pack.as_ref()
    }

    /// Whether the schematron checks run.
    pub fn schematron_available(&self) -> bool {
        self.schematron.is_ok()
    }

    /// Check one file.
    pub fn check_file(&self, path: &Path) -> Result<InputReport, CheckError> {
        let meta = std::fs::metadata(path).map_err(|source| CheckError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        // Refuse before reading what the limit of its kind would refuse anyway.
        let kind = detect(&read_head(path, 4096).map_err(|source| CheckError::Io {
            path: name.clone(),
            source,
        })?);
        if let Some((limit, code)) = self.size_limit(kind)
            && meta.len() > limit
        {
            let mut r = InputReport::new(name, kind);
            r.findings.push(Finding::error(
                    code,
                    format!(
                        "the {} is {} bytes, above the limit of {limit} bytes; it was not read (raise the limit in the configuration if such inputs are expected)",
                        kind.describe(),
                        meta.len()
                    ),
                ));
            return Ok(r.finish());
        }
        let bytes = std::fs::read(path).map_err(|source| CheckError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(self.check_bytes(&name, &bytes))
    }

    /// The size limit of an input kind and the rule code of its refusal.
    fn size_limit(&self, kind: InputKind) -> Option<(u64, relais_core::RuleCode)> {
        let l = &self.limits;
        Some(match kind {
            InputKind::Mail => (l.max_mail_bytes, relais_mssante::codes::MAIL_TOO_LARGE),
            InputKind::Zip => (l.max_zip_bytes, relais_xdm::codes::ZIP_TOO_LARGE),
            InputKind::Xml => (l.max_xml_bytes, relais_core::xml::XML_TOO_LARGE),
            InputKind::Hl7 => (l.max_hl7_bytes, relais_hl7::codes::HL7_TOO_LARGE),
            InputKind::Pdf | InputKind::Unknown => (
                l.max_mail_bytes.max(l.max_zip_bytes),
                relais_core::limits::INPUT_TOO_LARGE,
            ),
        })
    }

    /// Check one input given as bytes; `name` labels it in the report.
    pub fn check_bytes(&self, name: &str, bytes: &[u8]) -> InputReport {
        self.check_and_extract(name, bytes).0
    }

    /// Check one input and hand back, beside the report, what the inbound pipeline files: every
    /// CDA document found in it (as bytes and parsed, in report order) and, for a mail, the
    /// parsed mail itself (its attachments dropped: the documents are in `documents`).
    pub fn check_and_extract(&self, name: &str, bytes: &[u8]) -> (InputReport, Extraction) {
        let kind = detect(bytes);
        let mut report = InputReport::new(name, kind);
        let mut out = Vec::new();
        let mut mail = None;
        match kind {
            InputKind::Mail => mail = self.check_mail(bytes, &mut report, &mut out),
            InputKind::Zip => self.check_zip(bytes, "", &mut report, &mut out),
            InputKind::Xml => {
                let (doc, cda) = self.check_cda(bytes, WHOLE_FILE);
                push_extracted(&mut out, &report, &doc, bytes, cda, None);
                report.documents.push(doc);
            }
            InputKind::Hl7 => self.check_hl7(bytes, "", &mut report, &mut out),
            InputKind::Pdf => report.documents.push(pdf_document(WHOLE_FILE)),
            InputKind::Unknown => report.findings.push(Finding::error(
                codes::CHECK_UNKNOWN_INPUT,
                "not a mail, ZIP, XML, HL7v2 or PDF file: relais check cannot tell what it is",
            )),
        }
        let extraction = Extraction {
            documents: out,
            mail,
        };
        (report.finish(), extraction)
    }

    /// Check a mail; returns it parsed, its attachments dropped, when it could be read.
    fn check_mail(
        &self,
        raw: &[u8],
        report: &mut InputReport,
        out: &mut Vec<ExtractedDocument>,
    ) -> Option<relais_mssante::ParsedMail> {
        let mut mail = match relais_mssante::parse_mail(raw, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                report.findings.push(e.to_finding());
                return None;
            }
        };
        report.mail = Some(MailSummary {
            message_id: mail.message_id.clone(),
            from: mail.from.clone(),
            to: mail.to.clone(),
            // File names are not shown: by the CI-SIS naming rule a PDF name carries the patient's name.
            attachments: mail
                .attachments
                .iter()
                .map(|a| format!("part {} {:?} {} bytes", a.part, a.role, a.data.len()))
                .collect(),
            asks_disposition_notification: mail.disposition_notification_to.is_some(),
            x_mss_ins: mail.mss.ins.map(|i| i.as_str().to_string()),
        });
        report.findings.extend(mail.findings.iter().cloned());
        let first = out.len();
        for att in &mail.attachments {
            let label = match att.role {
                relais_mssante::AttachmentRole::Xdm => format!("part {} IHE_XDM.ZIP", att.part),
                _ => format!("part {}", att.part),
            };
            use relais_mssante::AttachmentRole as R;
            match att.role {
                R::Xdm => self.check_zip(&att.data, &label, report, out),
                R::Cda => {
                    let (doc, cda) = self.check_cda(&att.data, &label);
                    push_extracted(out, report, &doc, &att.data, cda, None);
                    report.documents.push(doc);
                }
                R::Hl7 => self.check_hl7(&att.data, &label, report, out),
                R::Pdf => report.documents.push(pdf_document(&label)),
                R::Other => {}
            }
        }
        let cdas: Vec<&CdaDocument> = out[first..].iter().map(|e| &e.cda).collect();
        report
            .findings
            .extend(crosscheck::mail_against_documents(&mail, &cdas));
        mail.attachments = Vec::new();
        Some(mail)
    }

    /// Check an XDM package; documents and findings go into `report`, readable CDAs into `out`.
    fn check_zip(
        &self,
        bytes: &[u8],
        container: &str,
        report: &mut InputReport,
        out: &mut Vec<ExtractedDocument>,
    ) {
        let package = match relais_xdm::read_package(bytes, &self.limits) {
            Ok(p) => p,
            Err(e) => {
                report.findings.push(e.to_finding());
                return;
            }
        };
        report.findings.extend(package.findings.iter().cloned());
        for doc in package.documents() {
            let location = if container.is_empty() {
                doc.zip_path.clone()
            } else {
                format!("{container}!{}", doc.zip_path)
            };
            if detect(&doc.content) == InputKind::Pdf {
                report.documents.push(pdf_document(&location));
                continue;
            }
            let (mut doc_report, cda) = self.check_cda(&doc.content, &location);
            match &cda {
                Some(cda) => doc_report
                    .findings
                    .extend(crosscheck::entry_against_cda(&doc.entry, cda, &self.tables)),
                None => doc_report.findings.push(
                    Finding::error(
                        codes::XDM_DOCUMENT_NOT_CDA,
                        "the package document could not be read as a CDA R2 document (see the error above)",
                    )
                    .at(Location::ZipEntry(doc.zip_path.clone())),
                ),
            }
            push_extracted(
                out,
                report,
                &doc_report,
                &doc.content,
                cda,
                Some(doc.entry.clone()),
            );
            report.documents.push(doc_report);
        }
    }

    fn check_hl7(
        &self,
        bytes: &[u8],
        container: &str,
        report: &mut InputReport,
        out: &mut Vec<ExtractedDocument>,
    ) {
        let label = if container.is_empty() {
            WHOLE_FILE
        } else {
            container
        };
        let msg = match relais_hl7::parse(bytes, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                let mut doc = DocumentReport {
                    location: label.to_string(),
                    format: "hl7".into(),
                    ..DocumentReport::default()
                };
                doc.findings.push(e.to_finding());
                report.documents.push(doc);
                return;
            }
        };
        let mut doc = DocumentReport {
            location: label.to_string(),
            format: "hl7".into(),
            message_type: Some(describe_hl7(&msg)),
            patient_id_kind: msg.pid().and_then(|p| {
                p.ins()
                    .find_map(|id| {
                        relais_cda::InsKind::from_oid(&id.assigning_authority.universal_id)
                    })
                    .map(|k| k.to_string())
            }),
            ..DocumentReport::default()
        };
        let profile = relais_hl7::validate_profile(&msg);
        doc.checks.push(CheckRun::ran("hl7-profile", &profile));
        doc.findings.extend(profile);
        let embedded = relais_hl7::embedded_documents(&msg);
        report.documents.push(doc);
        for e in embedded {
            let location = format!("{label}!{}", e.location);
            match &e.data {
                Err(f) => {
                    if let Some(d) = report.documents.last_mut() {
                        d.findings.push(f.clone());
                    }
                }
                Ok(data) => match detect(data) {
                    InputKind::Pdf => report.documents.push(pdf_document(&location)),
                    InputKind::Xml => {
                        let (d, cda) = self.check_cda(data, &location);
                        push_extracted(out, report, &d, data, cda, None);
                        report.documents.push(d);
                    }
                    // Text (the mail body of an MDM's second OBX) is not a document to validate.
                    _ => {}
                },
            }
        }
    }

    /// Read and validate one CDA document.
    pub fn check_cda(&self, bytes: &[u8], location: &str) -> (DocumentReport, Option<CdaDocument>) {
        let mut report = DocumentReport {
            location: location.to_string(),
            format: "cda".into(),
            ..DocumentReport::default()
        };
        let cda = match relais_cda::read(bytes, &self.limits) {
            Ok(c) => c,
            Err(e) => {
                report.findings.push(e.to_finding());
                for name in ["header", "xsd", "schematron"] {
                    report
                        .checks
                        .push(CheckRun::not_run(name, "the document could not be read"));
                }
                return (report, None);
            }
        };
        let h = &cda.header;
        report.type_code = h.type_code().map(str::to_string);
        report.type_display = h.code.as_ref().and_then(|c| c.display_name.clone());
        report.level = cda.level().map(|l| format!("{l:?}"));
        report.patient_id_kind = h
            .patient
            .as_ref()
            .and_then(|p| p.ins_kind())
            .map(|k| k.to_string());
        report.author = h
            .authors
            .iter()
            .find_map(|a| a.rpps.as_ref().map(|r| format!("RPPS {r}")));
        let template_ids: Vec<(String, Option<String>)> = cda
            .model_template_ids()
            .into_iter()
            .filter_map(|t| t.root.clone().map(|r| (r, t.extension.clone())))
            .collect();
        let model = self.models.select(&template_ids, h.type_code());
        report.model = model.map(Model::label);

        let header = relais_cda::check_header(&cda);
        report.checks.push(CheckRun::ran("header", &header));
        report.findings.extend(header);
        match &self.xsd {
            Ok(v) => {
                let xsd = v.validate(bytes);
                report.checks.push(CheckRun::ran("xsd", &xsd));
                report.findings.extend(xsd);
            }
            Err(why) => report.checks.push(CheckRun::not_run("xsd", why.clone())),
        }
        self.run_schematrons(bytes, model, &mut report);
        (report, Some(cda))
    }

    fn run_schematrons(&self, bytes: &[u8], model: Option<&Model>, report: &mut DocumentReport) {
        let (engine, pack) = match (&self.schematron, &self.pack) {
            (Ok(e), Some(p)) => (e, p),
            (Err(why), _) => {
                report
                    .checks
                    .push(CheckRun::not_run("schematron", why.clone()));
                return;
            }
            (Ok(_), None) => unreachable!("the schematron engine only starts with a pack"),
        };
        let mut files = vec![self.models.header_schematron.clone()];
        match model {
            Some(m) => files.push(m.schematron.clone()),
            None => report.checks.push(CheckRun::not_applicable(
                "schematron:model",
                "no CI-SIS model schematron for this document's templateIds",
            )),
        }
        for file in files {
            let name = format!("schematron:{}", file.rsplit('/').next().unwrap_or(&file));
            let path = pack.schematrons().join(&file);
            if !path.exists() {
                report.findings.push(Finding::warning(
                    codes::SCH_FILE_MISSING,
                    format!("the schematron {file} named in the model table is not in the validation pack"),
                ));
                report
                    .checks
                    .push(CheckRun::not_run(name, "file missing from the pack"));
                continue;
            }
            match engine.validate(&path, bytes) {
                Ok(findings) => {
                    let findings: Vec<Finding> =
                        findings.into_iter().map(summarise_pack_gap).collect();
                    report.checks.push(CheckRun::ran(name, &findings));
                    report.findings.extend(findings);
                }
                Err(e) => {
                    report.findings.push(Finding::warning(
                        codes::SCH_NOT_RUN,
                        format!("the schematron {file} could not be run: {e}"),
                    ));
                    report.checks.push(CheckRun::not_run(name, e.to_string()));
                }
            }
        }
    }
}

/// `MDM^T02 v2.6 (MdmToLps)`
fn describe_hl7(msg: &relais_hl7::Message) -> String {
    let t = msg.message_type();
    format!(
        "{}^{} v{} ({:?})",
        t.code,
        t.trigger,
        msg.version(),
        relais_hl7::detect_profile(msg)
    )
}

fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// What [`Checker::check_and_extract`] hands the pipeline beside the report.
#[derive(Debug, Clone, Default)]
pub struct Extraction {
    /// The readable CDA documents, in report order.
    pub documents: Vec<ExtractedDocument>,
    /// The mail, when the input is a readable mail (attachments dropped).
    pub mail: Option<relais_mssante::ParsedMail>,
}

/// A CDA document found in an input, as the pipeline needs it to file it.
#[derive(Debug, Clone)]
pub struct ExtractedDocument {
    /// Index of its [`DocumentReport`] in the input report's `documents`.
    pub report_index: usize,
    /// Where it sits in the input (as in the report).
    pub location: String,
    /// Its bytes, exactly as received.
    pub bytes: Vec<u8>,
    /// Its parsed header and body summary.
    pub cda: CdaDocument,
    /// Its XDM DocumentEntry, when it came in an XDM package.
    pub entry: Option<relais_xdm::DocumentEntry>,
}

fn push_extracted(
    out: &mut Vec<ExtractedDocument>,
    report: &InputReport,
    doc: &DocumentReport,
    bytes: &[u8],
    cda: Option<CdaDocument>,
    entry: Option<relais_xdm::DocumentEntry>,
) {
    if let Some(cda) = cda {
        out.push(ExtractedDocument {
            report_index: report.documents.len(),
            location: doc.location.clone(),
            bytes: bytes.to_vec(),
            cda,
            entry,
        });
    }
}

/// Location label of a document that is the whole input file.
const WHOLE_FILE: &str = "(whole file)";

/// A schematron rule that could not run because the validation pack lacks a file it reads
/// (Saxon error FODC0002) is said in one short line naming the file, not the XPath error.
fn summarise_pack_gap(f: Finding) -> Finding {
    if f.code != relais_schematron::codes::SCH_RULE_ERROR || !f.message.contains("FODC0002") {
        return f;
    }
    let missing = f
        .message
        .split("processing file:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|path| path.rsplit('/').next())
        .map(str::to_string);
    match missing {
        Some(file) => Finding {
            code: codes::SCH_PACK_FILE_MISSING,
            message: format!(
                "a schematron rule was not evaluated: the validation pack lacks {file}"
            ),
            ..f
        },
        None => f,
    }
}

fn pdf_document(location: &str) -> DocumentReport {
    DocumentReport {
        location: location.to_string(),
        format: "pdf".into(),
        ..DocumentReport::default()
    }
}

/// Per-user cache directory for compiled schematrons: `$XDG_CACHE_HOME/relais`,
/// `~/.cache/relais`, or the temp directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("relais");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/relais");
    }
    std::env::temp_dir().join("relais-cache")
}

/// Expand the command-line inputs: files as given, directories walked recursively in name
/// order (hidden entries, `*.md` notes and the `*.json` / `*.toml` intake and configuration
/// files that sit beside documents skipped; named explicitly, any file is checked).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CheckError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| CheckError::Io {
            path: p.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CheckError> {
    let io = |source| CheckError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || [".md", ".json", ".toml"].iter().any(|x| name.ends_with(x)) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Fuzz entry point: every offline check on arbitrary bytes.
pub fn fuzz_entry(data: &[u8]) {
    static CHECKER: std::sync::OnceLock<Checker> = std::sync::OnceLock::new();
    let checker = CHECKER.get_or_init(|| Checker::offline(Limits::default()));
    let _ = checker.check_bytes("fuzz", data);
}
