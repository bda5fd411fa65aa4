//! The engine: compiled stylesheets on disk, a small pool of long-lived Saxon workers.

use crate::codes;
use crate::compile::{self, CheckKind, CompileOptions, Table, file_uri, normalize_space};
use crate::error::{CompileError, SchematronError};
use crate::java;
use crate::model;
use relais_core::{Finding, Limits, Location, RuleCode, Severity};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the engine finds the ANS material, keeps its cache, and finds Java and Saxon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The ANS pack: `schematrons/` and the value sets (`value-sets/` or `jeuxDeValeurs/`).
    pub pack_dir: PathBuf,
    /// Writable directory for compiled stylesheets and the worker classes.
    pub cache_dir: PathBuf,
    /// The `java` launcher; `None` looks on `PATH`.
    pub java: Option<PathBuf>,
    /// The Saxon-HE jar; `None` uses `/usr/share/java/Saxon-HE.jar`.
    pub saxon_jar: Option<PathBuf>,
}

/// Tuning of the engine; the defaults suit a daemon on a small server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Most Java worker processes run at once (each holds its own compiled stylesheets).
    pub workers: usize,
    /// Longest one validation may take before its worker is stopped.
    pub timeout: Duration,
    /// Longest a worker may take to start.
    pub startup_timeout: Duration,
    /// JVM options. The default, `-XX:TieredStopAtLevel=1 -XX:+UseSerialGC`, halves the time
    /// Saxon takes to compile a large stylesheet in a fresh worker (2.4 s instead of 4.7 s for
    /// the header rules on two cores) at no measurable cost per validation; add `-Xmx…` here.
    pub jvm_args: Vec<String>,
    /// Bounds applied to documents before they are handed to Saxon.
    pub limits: Limits,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            workers: 1,
            timeout: Duration::from_secs(120),
            startup_timeout: Duration::from_secs(60),
            jvm_args: vec!["-XX:TieredStopAtLevel=1".into(), "-XX:+UseSerialGC".into()],
            limits: Limits::default(),
        }
    }
}

/// Whether a result comes from an `<assert>` (fires when its test is false), a `<report>`
/// (fires when true), or a check that raised an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Assert,
    Report,
    /// Evaluating the check (or its rule's variables) raised a dynamic error; `text` holds it.
    Error,
    /// Not a result of the rules: the schematron includes a file missing from the pack, whose
    /// path is in `text`, so its rules did not run.
    MissingInclude,
}

/// One fired assertion or report, as the stylesheet wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchematronResult {
    pub kind: ResultKind,
    /// Identifier (or title) of the pattern.
    pub pattern: String,
    /// `@id` of the assert/report.
    pub id: Option<String>,
    /// `@role` of the assert/report (`error`, `warning`...).
    pub role: Option<String>,
    /// `@flag` of the assert/report.
    pub flag: Option<String>,
    /// XPath of the node the rule fired on (or of its `@subject`).
    pub location: String,
    /// The rule's context.
    pub context: String,
    /// The assert/report test.
    pub test: String,
    /// The message with `<value-of>`/`<name>` evaluated, whitespace as written.
    pub text: String,
}

impl SchematronResult {
    /// Error for failed asserts and reports of role error/fatal; warning/info by role;
    /// otherwise error for asserts and warning for reports.
    pub fn severity(&self) -> Severity {
        if matches!(self.kind, ResultKind::Error | ResultKind::MissingInclude) {
            return Severity::Warning;
        }
        let role = self.role.as_deref().map(|r| r.trim().to_ascii_lowercase());
        match role.as_deref() {
            Some("error" | "fatal" | "erreur") => Severity::Error,
            Some("warning" | "warn" | "avertissement") => Severity::Warning,
            Some("info" | "information" | "note") => Severity::Info,
            _ => match self.kind {
                ResultKind::Assert => Severity::Error,
                ResultKind::Report | ResultKind::Error | ResultKind::MissingInclude => {
                    Severity::Warning
                }
            },
        }
    }

    /// [`codes::SCH_ASSERT_FAILED`] for failed asserts of error severity,
    /// [`codes::SCH_RULE_ERROR`] for checks that could not be evaluated, else [`codes::SCH_REPORT`].
    pub fn code(&self) -> RuleCode {
        match self.kind {
            ResultKind::Error => codes::SCH_RULE_ERROR,
            ResultKind::MissingInclude => codes::SCH_INCLUDE_MISSING,
            ResultKind::Assert if self.severity() == Severity::Error => codes::SCH_ASSERT_FAILED,
            _ => codes::SCH_REPORT,
        }
    }

    /// The message with whitespace collapsed (the test itself when the message is empty).
    pub fn assertion(&self) -> String {
        let text = normalize_space(&self.text);
        if text.is_empty() {
            normalize_space(&self.test)
        } else {
            text
        }
    }

    /// As a finding; `schematron` names the rule set (the .sch file name).
    pub fn to_finding(&self, schematron: &str) -> Finding {
        let source = if self.pattern.is_empty() {
            schematron.to_string()
        } else {
            format!("{schematron}#{}", self.pattern)
        };
        let assertion = self.assertion();
        let message = match self.kind {
            ResultKind::Assert => format!("schematron assertion failed ({source}): {assertion}"),
            ResultKind::Report => format!("schematron report ({source}): {assertion}"),
            ResultKind::MissingInclude => format!(
                "schematron {schematron} includes {}, which is missing from the pack: the rules it holds were not checked",
                self.text
            ),
            ResultKind::Error => format!(
                "schematron check could not be evaluated ({source}, test `{}`), so it was not verified: {}",
                normalize_space(&self.test),
                normalize_space(&self.text)
            ),
        };
        let severity = self.severity();
        let base = match severity {
            Severity::Error => Finding::error(self.code(), message),
            Severity::Warning => Finding::warning(self.code(), message),
            Severity::Info => Finding::info(self.code(), message),
        };
        let location = if self.location.is_empty() {
            Location::Whole
        } else {
            Location::XPath(self.location.clone())
        };
        let finding = base.at(location).with_source(source);
        match self.kind {
            ResultKind::Assert | ResultKind::Report => finding.with_assertion(assertion),
            ResultKind::Error | ResultKind::MissingInclude => finding,
        }
    }
}

/// Runs ANS schematrons on documents through long-lived Saxon-HE workers.
///
/// Cheap to share between threads (`&self` everywhere); validations run in parallel up to
/// [`EngineOptions::workers`]. A worker that dies or times out is replaced on the next call.
pub struct SchematronEngine {
    launch: Launch,
    pool: Pool,
    pack_dir: PathBuf,
    schematrons_dir: Option<PathBuf>,
    view: Option<PathBuf>,
    cache_dir: PathBuf,
    options: EngineOptions,
    prepared: Mutex<HashMap<(PathBuf, Option<String>), Prepared>>,
    saxon_version: String,
}

impl std::fmt::Debug for SchematronEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchematronEngine")
            .field("pack_dir", &self.pack_dir)
            .field("cache_dir", &self.cache_dir)
            .field("saxon", &self.saxon_version)
            .finish()
    }
}

impl SchematronEngine {
    /// Find Java and Saxon, build the worker if needed and start one worker.
    ///
    /// Returns [`SchematronError::Unavailable`] when Java, javac (for the first build) or
    /// Saxon-HE is missing or the worker does not start.
    pub fn start(config: EngineConfig) -> Result<Self, SchematronError> {
        Self::start_with(config, EngineOptions::default())
    }

    /// [`SchematronEngine::start`] with explicit tuning.
    pub fn start_with(
        config: EngineConfig,
        options: EngineOptions,
    ) -> Result<Self, SchematronError> {
        let java = java::find_java(config.java.as_deref())?;
        let saxon = java::find_saxon(config.saxon_jar.as_deref())?;
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| {
            SchematronError::io(
                format!("creating cache directory {}", config.cache_dir.display()),
                e,
            )
        })?;
        let cache_dir = config.cache_dir.canonicalize().map_err(|e| {
            SchematronError::io(format!("cache directory {}", config.cache_dir.display()), e)
        })?;
        let classes = java::worker_classes(&cache_dir, &java, &saxon)?;
        let classpath =
            std::env::join_paths([saxon.as_os_str(), classes.as_os_str()]).map_err(|e| {
                SchematronError::Unavailable {
                    reason: format!("cannot build the Java class path: {e}"),
                }
            })?;
        let launch = Launch {
            java,
            classpath,
            jvm_args: options.jvm_args.clone(),
            startup_timeout: options.startup_timeout,
        };

        let pack_dir = config.pack_dir.canonicalize().map_err(|e| {
            SchematronError::io(
                format!("ANS pack directory {}", config.pack_dir.display()),
                e,
            )
        })?;
        let schematrons_dir = Some(pack_dir.join("schematrons")).filter(|d| d.is_dir());
        let view = match &schematrons_dir {
            Some(s) => Some(pack_view(&cache_dir, &pack_dir, s)?),
            None => None,
        };

        let first = Worker::spawn(&launch).map_err(|e| match e {
            SchematronError::WorkerDied { reason } | SchematronError::Protocol(reason) => {
                SchematronError::Unavailable {
                    reason: format!("the Saxon worker did not start: {reason}"),
                }
            }
            SchematronError::Timeout { seconds } => SchematronError::Unavailable {
                reason: format!("the Saxon worker did not start within {seconds} s"),
            },
            other => other,
        })?;
        let saxon_version = first.version.clone();
        let pool = Pool::new(options.workers.max(1), first);
        Ok(SchematronEngine {
            launch,
            pool,
            pack_dir,
            schematrons_dir,
            view,
            cache_dir,
            options,
            prepared: Mutex::new(HashMap::new()),
            saxon_version,
        })
    }

    /// Saxon's product version as the worker reports it, e.g. `HE 9.9.1.5`.
    pub fn saxon_version(&self) -> &str {
        &self.saxon_version
    }

    /// Validate `document` with `schematron` in its default phase. `schematron` is a path,
    /// relative to the pack's `schematrons/` directory or absolute.
    pub fn validate(
        &self,
        schematron: &Path,
        document: &[u8],
    ) -> Result<Vec<Finding>, SchematronError> {
        self.validate_phase(schematron, None, document)
    }

    /// [`SchematronEngine::validate`] with an explicit phase (`Some("#ALL")` for every pattern).
    pub fn validate_phase(
        &self,
        schematron: &Path,
        phase: Option<&str>,
        document: &[u8],
    ) -> Result<Vec<Finding>, SchematronError> {
        let path = self.resolve(schematron)?;
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let results = self.run(&path, phase, document)?;
        Ok(to_findings(&results, &name))
    }

    /// Run the schematron and return the raw results (every fired assert and report).
    pub fn run(
        &self,
        schematron: &Path,
        phase: Option<&str>,
        document: &[u8],
    ) -> Result<Vec<SchematronResult>, SchematronError> {
        let text = relais_core::xml::decode(document).map_err(SchematronError::Document)?;
        relais_core::xml::parse(&text, &self.options.limits).map_err(SchematronError::Document)?;
        let prepared = self.prepared(schematron, phase)?;
        let name = schematron.display().to_string();
        let xsl_s = prepared.xsl.to_string_lossy().into_owned();
        let len = document.len().to_string();
        let reply = self.with_worker(|w| {
            w.call(
                &["VALIDATE", &xsl_s, &len],
                Some(document),
                self.options.timeout,
            )
        })?;
        match reply {
            Reply::Ok(raw) => {
                let mut results: Vec<SchematronResult> = prepared
                    .table
                    .missing
                    .iter()
                    .map(|m| SchematronResult {
                        kind: ResultKind::MissingInclude,
                        pattern: String::new(),
                        id: None,
                        role: None,
                        flag: None,
                        location: String::new(),
                        context: String::new(),
                        test: String::new(),
                        text: m.clone(),
                    })
                    .collect();
                for r in &raw {
                    results.push(r.resolve(&prepared.table)?);
                }
                Ok(results)
            }
            Reply::Err { category, message } => Err(match category.as_str() {
                "stylesheet" => SchematronError::Stylesheet {
                    schematron: name,
                    message,
                },
                "transform" => SchematronError::Transform {
                    schematron: name,
                    message,
                },
                "document" => {
                    SchematronError::Document(relais_core::xml::XmlError::NotWellFormed {
                        message,
                        line: 0,
                        column: 0,
                    })
                }
                _ => SchematronError::Protocol(format!("{category}: {message}")),
            }),
        }
    }

    /// Compile the schematron into the cache (if not there yet) and have a worker compile the
    /// stylesheet, so that the first validation is fast and errors show at start-up.
    pub fn prepare(
        &self,
        schematron: &Path,
        phase: Option<&str>,
    ) -> Result<PathBuf, SchematronError> {
        let xsl = self.stylesheet(schematron, phase)?;
        let xsl_s = xsl.to_string_lossy().into_owned();
        match self.with_worker(|w| w.call(&["PRELOAD", &xsl_s], None, self.options.timeout))? {
            Reply::Ok(_) => Ok(xsl),
            Reply::Err { message, .. } => Err(SchematronError::Stylesheet {
                schematron: schematron.display().to_string(),
                message,
            }),
        }
    }

    /// The compiled stylesheet of `schematron` in the cache, compiling it when its inputs
    /// changed. The cache file name carries a hash of every input file, the phase and the
    /// compiler version; within one engine the result is remembered per schematron and phase.
    pub fn stylesheet(
        &self,
        schematron: &Path,
        phase: Option<&str>,
    ) -> Result<PathBuf, SchematronError> {
        Ok(self.prepared(schematron, phase)?.xsl)
    }

    fn prepared(
        &self,
        schematron: &Path,
        phase: Option<&str>,
    ) -> Result<Prepared, SchematronError> {
        let path = self.resolve(schematron)?;
        let key = (path.clone(), phase.map(str::to_string));
        let mut prepared = lock(&self.prepared);
        if let Some(p) = prepared.get(&key) {
            return Ok(p.clone());
        }
        // Relative URIs of the rules resolve as if the schematron sat in the pack view, where
        // `../jeuxDeValeurs/` is the pack's value sets whatever the pack calls them.
        let base = match (&self.schematrons_dir, &self.view) {
            (Some(dir), Some(view)) => match path.strip_prefix(dir) {
                Ok(rel) => view.join("schematrons").join(rel),
                Err(_) => path.clone(),
            },
            _ => path.clone(),
        };
        let options = CompileOptions {
            phase: phase.map(str::to_string),
            base_uri: Some(file_uri(&base)),
        };
        let loaded = model::load(&path, &mut model::FileSource)?;
        let digest = compile::digest_of(&loaded, &options);
        let stem: String = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self.cache_dir.join("sch");
        let name = format!("{stem}-{}", &digest[..16]);
        let xsl = dir.join(format!("{name}.xsl"));
        let table_path = dir.join(format!("{name}.table"));
        // The stylesheet is written last: its presence means both files are complete.
        let cached = if xsl.is_file() {
            std::fs::read_to_string(&table_path)
                .ok()
                .and_then(|t| Table::from_text(&t))
        } else {
            None
        };
        let table = match cached {
            Some(t) => t,
            None => {
                let compiled = compile::generate(&loaded, &path, &options)?;
                for w in &compiled.warnings {
                    tracing::debug!(schematron = %path.display(), warning = %w, "schematron compilation warning");
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| SchematronError::io(format!("creating {}", dir.display()), e))?;
                write_atomically(&table_path, compiled.table.to_text().as_bytes())?;
                write_atomically(&xsl, compiled.xslt.as_bytes())?;
                compiled.table
            }
        };
        let p = Prepared {
            xsl,
            table: Arc::new(table),
        };
        prepared.insert(key, p.clone());
        Ok(p)
    }

    /// Stop every idle worker's process abruptly, as a crash would (for tests of recovery).
    #[doc(hidden)]
    pub fn simulate_worker_crash(&self) {
        let mut st = lock(&self.pool.state);
        for w in st.idle.iter_mut() {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }

    fn resolve(&self, schematron: &Path) -> Result<PathBuf, SchematronError> {
        let candidate = if schematron.is_absolute() {
            schematron.to_path_buf()
        } else {
            match &self.schematrons_dir {
                Some(dir) if dir.join(schematron).exists() => dir.join(schematron),
                _ => self.pack_dir.join(schematron),
            }
        };
        candidate.canonicalize().map_err(|source| {
            SchematronError::Compile(CompileError::Read {
                path: candidate.clone(),
                source,
            })
        })
    }

    fn with_worker<T>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<T, SchematronError>,
    ) -> Result<T, SchematronError> {
        let mut worker = self.pool.checkout(&self.launch)?;
        let result = f(&mut worker);
        // A worker that failed at the protocol level is in an unknown state: replace it.
        let healthy = !matches!(
            result,
            Err(SchematronError::Timeout { .. }
                | SchematronError::WorkerDied { .. }
                | SchematronError::Protocol(_))
        );
        self.pool.checkin(if healthy { Some(worker) } else { None });
        result
    }
}

/// A compiled stylesheet in the cache and what its result numbers mean.
#[derive(Clone)]
struct Prepared {
    xsl: PathBuf,
    table: Arc<Table>,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SchematronError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            SchematronError::io(format!("writing {}", path.display()), e)
        })
}

/// A result line as the worker sends it: numbers into the [`Table`].
struct RawResult {
    site: usize,
    check: usize,
    error: bool,
    location: String,
    text: String,
}

impl RawResult {
    fn resolve(&self, table: &Table) -> Result<SchematronResult, SchematronError> {
        let bad = || {
            SchematronError::Protocol(format!(
                "result refers to unknown rule {}/{}",
                self.site, self.check
            ))
        };
        let site = table.sites.get(self.site).ok_or_else(bad)?;
        let check = table.checks.get(self.check).ok_or_else(bad)?;
        let kind = match (self.error, check.kind) {
            (true, _) | (false, CheckKind::Rule) => ResultKind::Error,
            (false, CheckKind::Assert) => ResultKind::Assert,
            (false, CheckKind::Report) => ResultKind::Report,
        };
        Ok(SchematronResult {
            kind,
            pattern: site.pattern.clone(),
            id: check.id.clone(),
            role: check.role.clone(),
            flag: check.flag.clone(),
            location: self.location.clone(),
            context: site.context.clone(),
            test: check.test.clone(),
            text: self.text.clone(),
        })
    }
}

/// Results as findings; identical rule errors (same check, same error) are reported once.
fn to_findings(results: &[SchematronResult], schematron: &str) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(results.len());
    let mut errors: HashMap<(&str, &str, &str, &str), (usize, usize)> = HashMap::new();
    for r in results {
        if r.kind == ResultKind::Error {
            let key = (
                r.pattern.as_str(),
                r.context.as_str(),
                r.test.as_str(),
                r.text.as_str(),
            );
            if let Some((_, more)) = errors.get_mut(&key) {
                *more += 1;
                continue;
            }
            errors.insert(key, (out.len(), 0));
        }
        out.push(r.to_finding(schematron));
    }
    for (index, more) in errors.into_values() {
        if more > 0 {
            out[index]
                .message
                .push_str(&format!(" (same error on {more} other node(s))"));
        }
    }
    out
}

/// `<cache>/packs/<hash>/` with `schematrons` → the pack's schematrons and `jeuxDeValeurs` →
/// the pack's value sets, so that `../jeuxDeValeurs/X.xml` resolves from any schematron.
fn pack_view(
    cache_dir: &Path,
    pack: &Path,
    schematrons: &Path,
) -> Result<PathBuf, SchematronError> {
    let key = hex::encode(Sha256::digest(pack.to_string_lossy().as_bytes()));
    let view = cache_dir.join("packs").join(&key[..16]);
    std::fs::create_dir_all(&view)
        .map_err(|e| SchematronError::io(format!("creating {}", view.display()), e))?;
    link(&view.join("schematrons"), schematrons)?;
    let value_sets = [pack.join("jeuxDeValeurs"), pack.join("value-sets")]
        .into_iter()
        .find(|d| d.is_dir());
    if let Some(vs) = value_sets {
        link(&view.join("jeuxDeValeurs"), &vs)?;
    }
    Ok(view)
}

#[cfg(unix)]
fn link(at: &Path, target: &Path) -> Result<(), SchematronError> {
    if std::fs::read_link(at).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let tmp = at.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| std::fs::rename(&tmp, at))
        .map_err(|e| {
            SchematronError::io(
                format!("linking {} to {}", at.display(), target.display()),
                e,
            )
        })
}

#[cfg(not(unix))]
fn link(at: &Path, target: &Path) -> Result<(), SchematronError> {
    Err(SchematronError::Unavailable {
        reason: format!(
            "cannot link {} to {}: the pack view needs symbolic links (Unix)",
            at.display(),
            target.display()
        ),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Launch {
    java: PathBuf,
    classpath: std::ffi::OsString,
    jvm_args: Vec<String>,
    startup_timeout: Duration,
}

enum Reply {
    Ok(Vec<RawResult>),
    Err { category: String, message: String },
}

/// One `java RelaisSchematronWorker` process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    version: String,
}

impl Worker {
    fn spawn(launch: &Launch) -> Result<Worker, SchematronError> {
        let mut cmd = Command::new(&launch.java);
        cmd.args(&launch.jvm_args)
            .arg("-cp")
            .arg(&launch.classpath)
            .arg(java::WORKER_CLASS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("LC_ALL").is_none() && std::env::var_os("LANG").is_none() {
            cmd.env("LANG", "C.UTF-8");
        }
        let mut child = cmd.spawn().map_err(|e| SchematronError::Unavailable {
            reason: format!("cannot run {}: {e}", launch.java.display()),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SchematronError::Protocol("worker pipes missing".into()));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("schematron-worker-out".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if buf.last() == Some(&b'\n') {
                                buf.pop();
                            }
                            if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| SchematronError::io("starting the worker reader thread", e))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail2 = Arc::clone(&tail);
        std::thread::Builder::new()
            .name("schematron-worker-err".into())
            .spawn(move || {
                // Kept in memory only (it may quote document content): shown when the worker dies.
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let mut t = lock(&tail2);
                            if t.len() >= 20 {
                                t.pop_front();
                            }
                            t.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                        }
                    }
                }
            })
            .map_err(|e| SchematronError::io("starting the worker stderr thread", e))?;
        let mut worker = Worker {
            child,
            stdin,
            lines: rx,
            stderr: tail,
            version: String::new(),
        };
        let deadline = Instant::now() + launch.startup_timeout;
        let first = worker.next_line(deadline, launch.startup_timeout)?;
        let fields: Vec<String> = first.split('\t').map(unescape).collect();
        if fields.first().map(String::as_str) != Some("READY") {
            return Err(SchematronError::Protocol(format!(
                "expected READY from the worker, got {:?}",
                first.chars().take(200).collect::<String>()
            )));
        }
        worker.version = fields.get(1).cloned().unwrap_or_default();
        tracing::debug!(saxon = %worker.version, "schematron worker started");
        Ok(worker)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn died(&mut self) -> SchematronError {
        // Give the stderr thread a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(50));
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s.to_string(),
            _ => "closed its output".to_string(),
        };
        let tail: Vec<String> = lock(&self.stderr)
            .iter()
            .rev()
            .take(5)
            .rev()
            .cloned()
            .collect();
        let reason = if tail.is_empty() {
            status
        } else {
            format!("{status}; stderr: {}", tail.join(" | "))
        };
        SchematronError::WorkerDied { reason }
    }

    fn next_line(
        &mut self,
        deadline: Instant,
        budget: Duration,
    ) -> Result<String, SchematronError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(SchematronError::Timeout {
                    seconds: budget.as_secs().max(1),
                })
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.died()),
        }
    }

    fn call(
        &mut self,
        fields: &[&str],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, SchematronError> {
        let mut line = fields
            .iter()
            .map(|f| escape(f))
            .collect::<Vec<_>>()
            .join("\t");
        line.push('\n');
        let written = self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|()| body.map_or(Ok(()), |b| self.stdin.write_all(b)))
            .and_then(|()| self.stdin.flush());
        if written.is_err() {
            return Err(self.died());
        }
        let deadline = Instant::now() + timeout;
        let mut results = Vec::new();
        loop {
            let raw = self.next_line(deadline, timeout)?;
            let f: Vec<String> = raw.split('\t').map(unescape).collect();
            match f.first().map(String::as_str) {
                Some("R") if f.len() == 6 => results.push(parse_result(&f)?),
                Some("OK") => return Ok(Reply::Ok(results)),
                Some("ERR") if f.len() >= 3 => {
                    return Ok(Reply::Err {
                        category: f[1].clone(),
                        message: f[2..].join(" "),
                    });
                }
                _ => {
                    return Err(SchematronError::Protocol(format!(
                        "unexpected line {:?}",
                        raw.chars().take(200).collect::<String>()
                    )));
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"QUIT\n");
        let _ = self.stdin.flush();
        // A short grace period, then stop it for good.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_result(f: &[String]) -> Result<RawResult, SchematronError> {
    let num = |s: &String| {
        s.parse::<usize>()
            .map_err(|_| SchematronError::Protocol(format!("bad result number {s:?}")))
    };
    Ok(RawResult {
        site: num(&f[1])?,
        check: num(&f[2])?,
        error: f[3] == "1",
        location: f[4].clone(),
        text: f[5].clone(),
    })
}

/// Workers waiting for a request, and how many exist.
struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<Worker>,
    live: usize,
}

impl Pool {
    fn new(max: usize, first: Worker) -> Pool {
        Pool {
            state: Mutex::new(PoolState {
                idle: vec![first],
                live: 1,
            }),
            freed: Condvar::new(),
            max,
        }
    }

    fn checkout(&self, launch: &Launch) -> Result<Worker, SchematronError> {
        let mut st = lock(&self.state);
        loop {
            if let Some(mut w) = st.idle.pop() {
                if w.alive() {
                    return Ok(w);
                }
                tracing::warn!("schematron worker found dead; starting a new one");
                st.live -= 1;
                drop(w);
                continue;
            }
            if st.live < self.max {
                st.live += 1;
                drop(st);
                return Worker::spawn(launch).inspect_err(|_| {
                    let mut st = lock(&self.state);
                    st.live -= 1;
                    self.freed.notify_one();
                });
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn checkin(&self, worker: Option<Worker>) {
        let mut st = lock(&self.state);
        match worker {
            Some(w) => st.idle.push(w),
            None => st.live -= 1,
        }
        self.freed.notify_one();
    }
}

/// Protocol escaping: backslash, TAB, LF and CR as `\\`, `\t`, `\n`, `\r`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Inverse of [`escape`]; unknown escapes are kept as written.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trip() {
        for s in [
            "",
            "plain",
            "a\tb\nc\rd\\e",
            "\\t literal",
            "trailing\\",
            "é\u{1F600}\t",
        ] {
            let e = escape(s);
            assert!(
                !e.contains('\t') && !e.contains('\n') && !e.contains('\r'),
                "{e:?}"
            );
            assert_eq!(unescape(&e), s);
        }
    }

    #[test]
    fn severity_by_role_and_kind() {
        let mut r = SchematronResult {
            kind: ResultKind::Assert,
            pattern: "p".into(),
            id: None,
            role: None,
            flag: None,
            location: "/a".into(),
            context: "a".into(),
            test: "false()".into(),
            text: "  Erreur\n   de conformité ".into(),
        };
        assert_eq!(r.code(), codes::SCH_ASSERT_FAILED);
        assert_eq!(r.severity(), Severity::Error);
        assert_eq!(r.assertion(), "Erreur de conformité");
        r.role = Some("Warning".into());
        assert_eq!(
            (r.code(), r.severity()),
            (codes::SCH_REPORT, Severity::Warning)
        );
        r.role = Some("fatal".into());
        assert_eq!(r.code(), codes::SCH_ASSERT_FAILED);
        r.kind = ResultKind::Report;
        r.role = None;
        assert_eq!(
            (r.code(), r.severity()),
            (codes::SCH_REPORT, Severity::Warning)
        );
        let f = r.to_finding("X.sch");
        assert_eq!(f.source.as_deref(), Some("X.sch#p"));
        assert_eq!(f.location, Location::XPath("/a".into()));
        r.text = " \n ".into();
        assert_eq!(r.assertion(), "false()");
    }
}
