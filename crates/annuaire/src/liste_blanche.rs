//! The liste blanche: the mail domains of the espace de confiance MSSanté.
//!
//! Only domains on this list may exchange MSSanté mail. The ANS publishes it as XML
//! (`listeblanchemssante.xml`, at `https://espacedeconfiance.mssante.fr/` and in the
//! `ansforge/MSS-liste-blanche` repository with a SHA-256 `checksum` file):
//!
//! ```xml
//! <ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">
//!   <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>
//!   <ListeDomaines>
//!     <Domaine>
//!       <Nom>hopital-exemple.mssante.fr</Nom>
//!       <Description>...</Description>
//!       <DNCertificatOperateur>CN=smtp.operateur.test,OU=...,O=...,C=FR</DNCertificatOperateur>
//!       <ResponsableContact>...</ResponsableContact>
//!       <SupportContact>...</SupportContact>
//!       <DateMAJ>2025-03-13T14:54:10Z</DateMAJ>
//!     </Domaine>
//!     ...
//! ```
//!
//! A domain appears once per certificate of the operator's servers, so the same `Nom` comes
//! several times; names are not always lower case (`UC-CMP.mssante.fr`). Relais also reads a
//! plain text form for local lists: one domain per line, `#` starts a comment, blank lines
//! are ignored. The format is recognised by content (XML starts with `<`).
//!
//! **Matching rules.** Domains compare case-insensitively. A listed domain allows that exact
//! domain and nothing below it: `chu.mssante.fr` does not allow `service.chu.mssante.fr`
//! (the published list names every subdomain it trusts, e.g. `yze.corpsnuds.mssante.fr`).
//! A text list may say `*.chu.example` to allow every name *below* `chu.example` (not
//! `chu.example` itself, which needs its own line); the XML list has no such rule.
//!
//! [`Refreshing`] keeps a list loaded from a file up to date: it reloads the file when it
//! changes and keeps the last good list, saying so, when the new file is broken.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use quick_xml::Reader;
use quick_xml::events::Event;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// Largest liste blanche file read (the published XML is about 4 MB).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Why a liste blanche file cannot be used; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("liste blanche {}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_SIZE`].
    #[error(
        "liste blanche {}: {size} bytes, more than the {limit} accepted; is this the right file?",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The XML is not well-formed.
    #[error("liste blanche {}: XML error at byte {position}: {reason}", path.display())]
    Xml {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem.
        position: u64,
        /// The parser's message.
        reason: String,
    },
    /// The XML is not a `ListeBlancheMSSante` document.
    #[error(
        "liste blanche {}: the root element is <{root}>, expected <ListeBlancheMSSante>; \
         download listeblanchemssante.xml from the espace de confiance",
        path.display()
    )]
    NotAListeBlanche {
        /// The file.
        path: PathBuf,
        /// The root element found.
        root: String,
    },
    /// The XML ends before `</ListeDomaines>`: a partial download.
    #[error(
        "liste blanche {}: the file ends before </ListeDomaines> (partial download?)",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error("liste blanche {}: not UTF-8 text ({reason})", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// Where the bad bytes are.
        reason: String,
    },
    /// The file lists no usable domain.
    #[error(
        "liste blanche {}: no valid domain in the file{}; an empty list would refuse every recipient",
        path.display(),
        if *.skipped > 0 { format!(" ({} invalid entries skipped)", .skipped) } else { String::new() }
    )]
    Empty {
        /// The file.
        path: PathBuf,
        /// Entries skipped as invalid.
        skipped: usize,
    },
}

/// The format a list was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The ANS XML (`ListeBlancheMSSante`).
    Xml,
    /// One domain per line.
    Text,
}

/// What the list says about one domain (from the XML; the text format only has the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain, lower case.
    pub name: String,
    /// `Description` (first one seen).
    pub description: Option<String>,
    /// `DNCertificatOperateur` of every entry for this domain: the certificate subjects of the
    /// operator's mail servers.
    pub operator_certificates: Vec<String>,
    /// Latest `DateMAJ` seen for the domain, as written.
    pub updated: Option<String>,
}

/// The rule that allowed a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The domain is listed as such.
    Exact,
    /// The domain is below a `*.parent` entry of a text list.
    Subdomain {
        /// The parent domain of the `*.` entry.
        of: String,
    },
}

/// Why a recipient or sender was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The domain is not on the list.
    NotListed,
    /// The input is neither an e-mail address nor a domain name.
    NotAnAddress,
}

/// The answer of [`ListeBlanche::allows`], with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The domain is in the espace de confiance.
    Allowed {
        /// The domain checked (lower case).
        domain: String,
        /// Which entry allowed it.
        rule: Rule,
    },
    /// The domain is not in the espace de confiance.
    Refused {
        /// The domain checked (lower case), when the input had one.
        domain: Option<String>,
        /// Why.
        reason: Refusal,
    },
}

impl Decision {
    /// Whether the domain may exchange MSSanté mail.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allowed {
                domain,
                rule: Rule::Exact,
            } => write!(
                f,
                "{domain} is on the liste blanche of the espace de confiance MSSanté"
            ),
            Decision::Allowed {
                domain,
                rule: Rule::Subdomain { of },
            } => write!(
                f,
                "{domain} is allowed by the liste blanche entry *.{of} (local subdomain rule)"
            ),
            Decision::Refused {
                domain: Some(domain),
                reason: Refusal::NotListed,
            } => write!(
                f,
                "{domain} is not on the liste blanche of the espace de confiance MSSanté: \
                 MSSanté mail cannot be exchanged with it"
            ),
            Decision::Refused { .. } => {
                write!(f, "not an e-mail address or a domain name")
            }
        }
    }
}

/// Where a list came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file (or a label for lists parsed from memory).
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// `DateDeGeneration` of the XML, as written.
    pub generated_at: Option<String>,
    /// SHA-256 of the file (lower-case hex), comparable with the published `checksum` file.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// A loaded liste blanche.
#[derive(Debug, Clone)]
pub struct ListeBlanche {
    exact: HashMap<String, DomainInfo>,
    /// Parents of `*.parent` entries.
    wildcard_parents: Vec<String>,
    origin: Origin,
    warnings: Vec<String>,
}

impl ListeBlanche {
    /// Loads a list from a file (XML or text, recognised by content).
    pub fn load(path: impl AsRef<Path>) -> Result<ListeBlanche, LoadError> {
        let path = path.as_ref();
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_SIZE {
            return Err(LoadError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit: MAX_FILE_SIZE,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        ListeBlanche::parse(&bytes, path)
    }

    /// Parses a list held in memory; `path` only names it in messages.
    pub fn parse(bytes: &[u8], path: impl AsRef<Path>) -> Result<ListeBlanche, LoadError> {
        let path = path.as_ref();
        let sha256 = hex::encode(Sha256::digest(bytes));
        let text = std::str::from_utf8(bytes).map_err(|e| LoadError::NotText {
            path: path.to_path_buf(),
            reason: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut builder = Builder::default();
        let (format, generated_at) = if text.trim_start().starts_with('<') {
            (Format::Xml, parse_xml(text, path, &mut builder)?)
        } else {
            parse_text(text, &mut builder);
            (Format::Text, None)
        };
        if builder.exact.is_empty() && builder.wildcard_parents.is_empty() {
            return Err(LoadError::Empty {
                path: path.to_path_buf(),
                skipped: builder.warnings.len(),
            });
        }
        Ok(ListeBlanche {
            exact: builder.exact,
            wildcard_parents: builder.wildcard_parents,
            origin: Origin {
                path: path.to_path_buf(),
                format,
                generated_at,
                sha256,
                loaded_at: SystemTime::now(),
            },
            warnings: builder.warnings,
        })
    }

    /// Whether an address (`someone@domain`, `<someone@domain>`) or a bare domain may exchange
    /// MSSanté mail, and why.
    pub fn allows(&self, address_or_domain: &str) -> Decision {
        let Some(domain) = domain_of(address_or_domain) else {
            return Decision::Refused {
                domain: None,
                reason: Refusal::NotAnAddress,
            };
        };
        if self.exact.contains_key(&domain) {
            return Decision::Allowed {
                domain,
                rule: Rule::Exact,
            };
        }
        for parent in &self.wildcard_parents {
            if domain.len() > parent.len() + 1
                && domain.ends_with(parent.as_str())
                && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
            {
                let of = parent.clone();
                return Decision::Allowed {
                    domain,
                    rule: Rule::Subdomain { of },
                };
            }
        }
        Decision::Refused {
            domain: Some(domain),
            reason: Refusal::NotListed,
        }
    }

    /// What the list says about a listed domain (case-insensitive).
    pub fn domain(&self, domain: &str) -> Option<&DomainInfo> {
        self.exact
            .get(&domain.trim().trim_end_matches('.').to_ascii_lowercase())
    }

    /// Number of distinct domains listed (plus `*.` entries of a text list).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }

    /// Whether the list is empty (never true for a loaded list).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the list came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Entries skipped while loading (line or entry number and reason; never fatal).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The domain of an address or domain name, lower case, when it is a valid domain name.
pub fn domain_of(input: &str) -> Option<String> {
    let s = input.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    let domain = match s.rsplit_once('@') {
        Some((local, domain)) => {
            if local.is_empty() {
                return None;
            }
            domain
        }
        None => s,
    };
    normalize_domain(domain).ok()
}

/// Lower-cases and checks a domain name (LDH labels of 1 to 63 characters, at least two
/// labels, 253 characters at most). The error says what is wrong.
fn normalize_domain(raw: &str) -> Result<String, &'static str> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err("empty domain");
    }
    if d.len() > 253 {
        return Err("longer than 253 characters");
    }
    if !d.is_ascii() {
        return Err("not ASCII (internationalised names must be written in A-labels, xn--)");
    }
    let mut labels = 0;
    for label in d.split('.') {
        labels += 1;
        if label.is_empty() || label.len() > 63 {
            return Err("a label is empty or longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("a label holds a character other than letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    if labels < 2 {
        return Err("a single label, not a full domain name");
    }
    Ok(d)
}

#[derive(Default)]
struct Builder {
    exact: HashMap<String, DomainInfo>,
    wildcard_parents: Vec<String>,
    warnings: Vec<String>,
}

/// Keeps the first few warnings in full, counts the rest.
const MAX_WARNINGS: usize = 50;

impl Builder {
    fn warn(&mut self, text: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(text);
        } else if self.warnings.len() == MAX_WARNINGS {
            self.warnings
                .push("more invalid entries not reported".into());
        }
    }

    fn add(&mut self, name: String, entry: Option<XmlEntry>) {
        let info = self
            .exact
            .entry(name.clone())
            .or_insert_with(|| DomainInfo {
                name,
                description: None,
                operator_certificates: Vec::new(),
                updated: None,
            });
        if let Some(e) = entry {
            if info.description.is_none() {
                info.description = e.description;
            }
            if let Some(dn) = e.operator_dn
                && !info.operator_certificates.contains(&dn)
            {
                info.operator_certificates.push(dn);
            }
            if let Some(updated) = e.updated
                && info.updated.as_ref().is_none_or(|u| *u < updated)
            {
                info.updated = Some(updated);
            }
        }
    }
}

fn parse_text(text: &str, b: &mut Builder) {
    for (n, line) in text.lines().enumerate() {
        let line = match line.find('#') {
            Some(i) => &line[..i],
            None => line,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        let (wildcard, name) = match line.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        match normalize_domain(name) {
            Ok(d) if wildcard => {
                if !b.wildcard_parents.contains(&d) {
                    b.wildcard_parents.push(d);
                }
            }
            Ok(d) => b.add(d, None),
            Err(why) => b.warn(format!("line {}: {why}; entry skipped", n + 1)),
        }
    }
}

#[derive(Default)]
struct XmlEntry {
    name: Option<String>,
    description: Option<String>,
    operator_dn: Option<String>,
    updated: Option<String>,
}

/// Reads the ANS XML; returns `DateDeGeneration`.
fn parse_xml(text: &str, path: &Path, b: &mut Builder) -> Result<Option<String>, LoadError> {
    let mut reader = Reader::from_str(text);
    let xml_err = |reader: &Reader<&[u8]>, e: &dyn fmt::Display| LoadError::Xml {
        path: path.to_path_buf(),
        position: reader.error_position(),
        reason: e.to_string(),
    };
    let mut stack: Vec<String> = Vec::new();
    let mut text_buf = String::new();
    let mut entry: Option<XmlEntry> = None;
    let mut entry_no = 0usize;
    let mut generated_at = None;
    let mut list_closed = false;
    loop {
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(xml_err(&reader, &e)),
        };
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if stack.is_empty() && name != "ListeBlancheMSSante" {
                    return Err(LoadError::NotAListeBlanche {
                        path: path.to_path_buf(),
                        root: name,
                    });
                }
                if name == "Domaine" && stack.last().is_some_and(|p| p == "ListeDomaines") {
                    entry = Some(XmlEntry::default());
                    entry_no += 1;
                }
                text_buf.clear();
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if stack.is_empty() {
                    return Err(LoadError::NotAListeBlanche {
                        path: path.to_path_buf(),
                        root: name,
                    });
                }
                if name == "ListeDomaines" {
                    list_closed = true;
                }
            }
            Event::Text(t) => text_buf.push_str(&t.xml10_content()),
            Event::CData(t) => text_buf.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(xml_err(&reader, &format!("unknown entity &{};", &*r)));
                        }
                    },
                    Err(e) => return Err(xml_err(&reader, &e)),
                };
                text_buf.push_str(&resolved);
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else {
                    return Err(xml_err(&reader, &"unexpected end tag"));
                };
                let value = text_buf.trim().to_string();
                text_buf.clear();
                match name.as_str() {
                    "DateDeGeneration" if stack.len() == 1 => {
                        generated_at = Some(value).filter(|v| !v.is_empty())
                    }
                    "ListeDomaines" if stack.len() == 1 => list_closed = true,
                    "Domaine" => {
                        if let Some(e) = entry.take() {
                            finish_entry(e, entry_no, b);
                        }
                    }
                    field => {
                        if let Some(e) = entry.as_mut() {
                            let v = Some(value).filter(|v| !v.is_empty());
                            match field {
                                "Nom" => e.name = v,
                                "Description" => e.description = v,
                                "DNCertificatOperateur" => e.operator_dn = v,
                                "DateMAJ" => e.updated = v,
                                _ => {}
                            }
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !list_closed {
        return Err(LoadError::Truncated {
            path: path.to_path_buf(),
        });
    }
    if !stack.is_empty() {
        // The domain list is complete; only the closing tags after it are missing.
        b.warn(format!(
            "the file ends without </{}> after a complete </ListeDomaines>",
            stack.join("></")
        ));
    }
    Ok(generated_at)
}

fn finish_entry(e: XmlEntry, entry_no: usize, b: &mut Builder) {
    let Some(raw) = e.name.as_deref() else {
        b.warn(format!("<Domaine> number {entry_no} has no <Nom>; skipped"));
        return;
    };
    match normalize_domain(raw) {
        Ok(name) => b.add(name, Some(e)),
        Err(why) => b.warn(format!(
            "<Domaine> number {entry_no} ({raw:?}): {why}; skipped"
        )),
    }
}

/// What a [`Refreshing::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The file has not changed since the last look.
    Unchanged,
    /// The file changed and the new list is in use.
    Reloaded {
        /// Domains in the new list.
        domains: usize,
    },
    /// The file changed but cannot be used: the previous list stays in use.
    KeptPrevious {
        /// Why the new file was refused.
        error: String,
    },
}

/// The state of a [`Refreshing`] list, for status pages.
#[derive(Debug, Clone)]
pub struct RefreshStatus {
    /// The file watched.
    pub path: PathBuf,
    /// Origin of the list in use.
    pub in_use: Origin,
    /// Domains in the list in use.
    pub domains: usize,
    /// When set, the file on disk is broken and the list in use is an older one.
    pub broken_file: Option<String>,
    /// Last time the file was looked at.
    pub last_check: SystemTime,
}

/// Identity of a file version: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        ino,
    })
}

struct RefreshState {
    seen: Option<Stamp>,
    broken: Option<String>,
    last_check: SystemTime,
}

/// A liste blanche kept in step with its file.
///
/// [`Refreshing::refresh`] reloads the file when its size, modification time or inode changed
/// (an atomic `mv` of a new download, or an in-place rewrite). When the new file cannot be
/// used (partial download, not the right document, no domain), the previous list stays in use,
/// a warning is logged once for that file version, and [`Refreshing::status`] says so until a
/// good file replaces it. [`Refreshing::spawn`] runs the check on a schedule.
pub struct Refreshing {
    path: PathBuf,
    current: RwLock<Arc<ListeBlanche>>,
    state: Mutex<RefreshState>,
}

impl Refreshing {
    /// Loads the file; it must be usable now (there is no previous list to fall back on).
    pub fn open(path: impl Into<PathBuf>) -> Result<Refreshing, LoadError> {
        let path = path.into();
        let seen = stamp(&path).ok();
        let list = ListeBlanche::load(&path)?;
        info!(
            path = %path.display(),
            domains = list.len(),
            generated_at = list.origin().generated_at.as_deref().unwrap_or("-"),
            "liste blanche loaded"
        );
        Ok(Refreshing {
            path,
            current: RwLock::new(Arc::new(list)),
            state: Mutex::new(RefreshState {
                seen,
                broken: None,
                last_check: SystemTime::now(),
            }),
        })
    }

    /// The list in use.
    pub fn current(&self) -> Arc<ListeBlanche> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`ListeBlanche::allows`] on the list in use.
    pub fn allows(&self, address_or_domain: &str) -> Decision {
        self.current().allows(address_or_domain)
    }

    /// Reloads the file if it changed since the last look.
    pub fn refresh(&self) -> RefreshOutcome {
        self.reload(false)
    }

    /// Reloads the file even if it looks unchanged.
    pub fn force_refresh(&self) -> RefreshOutcome {
        self.reload(true)
    }

    fn reload(&self, force: bool) -> RefreshOutcome {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_check = SystemTime::now();
        let now = match stamp(&self.path) {
            Ok(s) => Some(s),
            Err(e) => {
                let error = format!(
                    "liste blanche {}: cannot read: {e}; the list loaded before stays in use",
                    self.path.display()
                );
                if state.broken.as_deref() != Some(error.as_str()) {
                    warn!(path = %self.path.display(), error = %e, "liste blanche file unreadable; keeping the list in use");
                    state.broken = Some(error.clone());
                }
                state.seen = None;
                return RefreshOutcome::KeptPrevious { error };
            }
        };
        if !force && now == state.seen {
            return match &state.broken {
                Some(error) => RefreshOutcome::KeptPrevious {
                    error: error.clone(),
                },
                None => RefreshOutcome::Unchanged,
            };
        }
        state.seen = now;
        match ListeBlanche::load(&self.path) {
            Ok(list) => {
                let domains = list.len();
                info!(
                    path = %self.path.display(),
                    domains,
                    generated_at = list.origin().generated_at.as_deref().unwrap_or("-"),
                    "liste blanche reloaded"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
                state.broken = None;
                RefreshOutcome::Reloaded { domains }
            }
            Err(e) => {
                let in_use = self.current();
                let error = format!(
                    "{e}; the list loaded from the previous file ({} domains, sha256 {}) stays in use",
                    in_use.len(),
                    in_use.origin().sha256
                );
                warn!(path = %self.path.display(), error = %e, "new liste blanche refused; keeping the list in use");
                state.broken = Some(error.clone());
                RefreshOutcome::KeptPrevious { error }
            }
        }
    }

    /// What is in use and whether the file on disk is broken.
    pub fn status(&self) -> RefreshStatus {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        RefreshStatus {
            path: self.path.clone(),
            in_use: current.origin().clone(),
            domains: current.len(),
            broken_file: state.broken.clone(),
            last_check: state.last_check,
        }
    }

    /// Checks the file every `interval` on the current tokio runtime until the returned
    /// handle is aborted (or the runtime stops).
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate: the list was just loaded
            loop {
                tick.tick().await;
                let this = self.clone();
                // Reading and parsing a few MB is blocking work.
                let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
            }
        })
    }
}

impl fmt::Debug for Refreshing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refreshing")
            .field("path", &self.path)
            .field("domains", &self.current().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">
    <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>
    <ListeDomaines>
        <Domaine>
            <Nom>chu-fictif.mssante.test</Nom>
            <Description>CHU FICTIF &amp; ASSOCIES</Description>
            <DNCertificatOperateur>CN=smtp-1.operateur.test,OU=000000000,O=OPERATEUR TEST,C=FR</DNCertificatOperateur>
            <ResponsableContact>01 00 00 00 00, contact@operateur.test</ResponsableContact>
            <SupportContact>01 00 00 00 00, support@operateur.test</SupportContact>
            <DateMAJ>2024-01-01T00:00:00Z</DateMAJ>
        </Domaine>
        <Domaine>
            <Nom>chu-fictif.mssante.test</Nom>
            <Description>CHU FICTIF</Description>
            <DNCertificatOperateur>CN=smtp-2.operateur.test,OU=000000000,O=OPERATEUR TEST,C=FR</DNCertificatOperateur>
            <DateMAJ>2025-01-01T00:00:00Z</DateMAJ>
        </Domaine>
        <Domaine>
            <Nom>UC-Fictive.mssante.test</Nom>
            <Description>Mixed case, as in the published list</Description>
        </Domaine>
        <Domaine>
            <Nom>service.clinique.mssante.test</Nom>
        </Domaine>
        <Domaine>
            <Nom>not a domain</Nom>
        </Domaine>
    </ListeDomaines>
</ListeBlancheMSSante>
"#;

    fn xml_list() -> ListeBlanche {
        ListeBlanche::parse(XML.as_bytes(), "test.xml").unwrap()
    }

    #[test]
    fn reads_the_ans_xml() {
        let l = xml_list();
        assert_eq!(l.origin().format, Format::Xml);
        assert_eq!(
            l.origin().generated_at.as_deref(),
            Some("2025-03-13T14:54:10Z")
        );
        assert_eq!(l.len(), 3, "duplicates merged, the invalid entry skipped");
        let info = l.domain("CHU-FICTIF.mssante.test").unwrap();
        assert_eq!(info.description.as_deref(), Some("CHU FICTIF & ASSOCIES"));
        assert_eq!(info.operator_certificates.len(), 2);
        assert_eq!(info.updated.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(l.warnings().len(), 1);
        assert!(l.warnings()[0].contains("number 5"), "{:?}", l.warnings());
        assert_eq!(l.origin().sha256.len(), 64);
    }

    #[test]
    fn exact_case_insensitive_and_no_implicit_subdomains() {
        let l = xml_list();
        assert!(l.allows("dr.martin@chu-fictif.mssante.test").is_allowed());
        assert!(l.allows("Dr.Martin@CHU-Fictif.MSSante.test").is_allowed());
        assert!(l.allows("<a@uc-fictive.mssante.test>").is_allowed());
        assert!(l.allows("chu-fictif.mssante.test.").is_allowed());
        assert!(l.allows("uc-fictive.mssante.test").is_allowed());
        // A listed domain does not allow the names below it, nor its parent.
        let d = l.allows("x@pediatrie.chu-fictif.mssante.test");
        assert_eq!(
            d,
            Decision::Refused {
                domain: Some("pediatrie.chu-fictif.mssante.test".into()),
                reason: Refusal::NotListed
            }
        );
        assert!(!l.allows("x@clinique.mssante.test").is_allowed());
        assert!(l.allows("x@service.clinique.mssante.test").is_allowed());
        // Look-alikes.
        assert!(!l.allows("x@chu-fictif.mssante.test.evil.test").is_allowed());
        assert!(!l.allows("x@evilchu-fictif.mssante.test").is_allowed());
        assert!(d.to_string().contains("not on the liste blanche"), "{d}");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        let l = xml_list();
        for bad in [
            "",
            "   ",
            "@chu-fictif.mssante.test",
            "localhost",
            "a@b@",
            "x@-a.test",
            "x@a..test",
            "x@é.test",
        ] {
            let d = l.allows(bad);
            assert!(!d.is_allowed(), "{bad:?}");
            if bad != "localhost" && bad != "a@b@" {
                assert_eq!(
                    d,
                    Decision::Refused {
                        domain: None,
                        reason: Refusal::NotAnAddress
                    },
                    "{bad:?}"
                );
            }
        }
        assert_eq!(
            l.allows("").to_string(),
            "not an e-mail address or a domain name"
        );
    }

    #[test]
    fn text_format_with_comments_and_explicit_subdomain_rules() {
        let text = "# local additions\n\
                    hopital-a.mssante.test   # the main hospital\n\
                    \n\
                    *.labo-b.mssante.test\n\
                    HOPITAL-A.MSSANTE.TEST\n\
                    bad_domain.test\n";
        let l = ListeBlanche::parse(text.as_bytes(), "local.txt").unwrap();
        assert_eq!(l.origin().format, Format::Text);
        assert_eq!(l.len(), 2);
        assert_eq!(l.warnings().len(), 1);
        assert!(l.warnings()[0].starts_with("line 6:"), "{:?}", l.warnings());
        assert!(l.allows("x@hopital-a.mssante.test").is_allowed());
        assert_eq!(
            l.allows("x@site1.labo-b.mssante.test"),
            Decision::Allowed {
                domain: "site1.labo-b.mssante.test".into(),
                rule: Rule::Subdomain {
                    of: "labo-b.mssante.test".into()
                }
            }
        );
        assert!(l.allows("x@a.b.labo-b.mssante.test").is_allowed());
        // The wildcard does not cover the parent itself, nor look-alikes.
        assert!(!l.allows("x@labo-b.mssante.test").is_allowed());
        assert!(!l.allows("x@xlabo-b.mssante.test").is_allowed());
    }

    #[test]
    fn broken_files_are_errors() {
        let truncated = &XML[..XML.find("<Domaine>\n            <Nom>UC").unwrap()];
        assert!(matches!(
            ListeBlanche::parse(truncated.as_bytes(), "t.xml"),
            Err(LoadError::Truncated { .. })
        ));
        // Complete list, closing root tag missing: usable, with a warning.
        let no_root_end = &XML[..XML.rfind("</ListeBlancheMSSante>").unwrap()];
        let l = ListeBlanche::parse(no_root_end.as_bytes(), "t.xml").unwrap();
        assert_eq!(l.len(), 3);
        assert!(
            l.warnings()
                .iter()
                .any(|w| w.contains("ListeBlancheMSSante"))
        );
        assert!(matches!(
            ListeBlanche::parse(b"<html><body>502 Bad Gateway</body></html>", "t.xml"),
            Err(LoadError::NotAListeBlanche { .. })
        ));
        assert!(matches!(
            ListeBlanche::parse(
                b"<ListeBlancheMSSante><ListeDomaines><Domaine><Nom>a.test</Nom></Dom",
                "t.xml"
            ),
            Err(LoadError::Xml { .. }) | Err(LoadError::Truncated { .. })
        ));
        assert!(matches!(
            ListeBlanche::parse(b"# nothing\n\n", "t.txt"),
            Err(LoadError::Empty { skipped: 0, .. })
        ));
        assert!(matches!(
            ListeBlanche::parse(b"\xff\xfe", "t.txt"),
            Err(LoadError::NotText { .. })
        ));
        let e = ListeBlanche::parse(
            b"<ListeBlancheMSSante><ListeDomaines></ListeDomaines></ListeBlancheMSSante>",
            "t.xml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("would refuse every recipient"),
            "{e}"
        );
    }

    #[test]
    fn refreshing_reloads_and_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liste.xml");
        std::fs::write(&path, XML).unwrap();
        let r = Refreshing::open(&path).unwrap();
        assert_eq!(r.refresh(), RefreshOutcome::Unchanged);
        assert!(r.allows("a@chu-fictif.mssante.test").is_allowed());

        // A new good list (another file moved into place).
        let tmp = dir.path().join("new.txt");
        std::fs::write(&tmp, "nouveau.mssante.test\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(r.refresh(), RefreshOutcome::Reloaded { domains: 1 });
        assert!(r.allows("a@nouveau.mssante.test").is_allowed());
        assert!(!r.allows("a@chu-fictif.mssante.test").is_allowed());

        // A broken download: the previous list stays, and the status says so.
        std::fs::write(&path, &XML[..200]).unwrap();
        let out = r.refresh();
        let RefreshOutcome::KeptPrevious { error } = &out else {
            panic!("{out:?}")
        };
        assert!(error.contains("stays in use"), "{error}");
        assert!(r.allows("a@nouveau.mssante.test").is_allowed());
        assert!(r.status().broken_file.is_some());
        // Looking again at the same broken file does not reload it, and still reports it.
        assert!(matches!(r.refresh(), RefreshOutcome::KeptPrevious { .. }));

        // A missing file: same.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r.refresh(), RefreshOutcome::KeptPrevious { .. }));
        assert!(r.allows("a@nouveau.mssante.test").is_allowed());

        // Fixed.
        std::fs::write(&path, XML).unwrap();
        assert_eq!(r.refresh(), RefreshOutcome::Reloaded { domains: 3 });
        assert!(r.status().broken_file.is_none());
        assert_eq!(r.force_refresh(), RefreshOutcome::Reloaded { domains: 3 });
    }

    #[test]
    fn open_fails_without_a_usable_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Refreshing::open(dir.path().join("absent.xml")),
            Err(LoadError::Io { .. })
        ));
    }

    #[tokio::test]
    async fn spawned_refresh_picks_up_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liste.txt");
        std::fs::write(&path, "a.mssante.test\n").unwrap();
        let r = Arc::new(Refreshing::open(&path).unwrap());
        let handle = r.clone().spawn(Duration::from_millis(20));
        std::fs::write(&path, "a.mssante.test\nb.mssante.test\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !r.allows("b.mssante.test").is_allowed() {
            assert!(std::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.abort();
    }
}
