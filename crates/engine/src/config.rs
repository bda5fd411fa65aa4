//! The daemon's configuration (TOML), with embedded defaults.
//!
//! Every section has defaults, so an empty file is a valid configuration: a data directory
//! `./relais-data`, the SQLite journal inside it, no source and no sink. `relais run` without
//! `--config` uses [`Config::embedded_default`]: the bundled `samples/mail` as a Maildir-like
//! source and an output folder sink, so the whole pipeline runs with no server.

use relais_core::Limits;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the journal, the raw mails and the default output live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the journal lives: SQLite in `data_dir` (default), or PostgreSQL when several
    /// instances share the work.
    #[serde(default)]
    pub journal: JournalSettings,
    #[serde(default)]
    pub validation: Validation,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub patients: Patients,
    /// Where mail comes from.
    #[serde(default, rename = "source")]
    pub sources: Vec<Source>,
    /// Where documents are filed.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Sink>,
    /// Which documents go to which sink; without routes, every document goes to every sink.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// Answers to senders: the ANS MDN, or an error report to a mailbox.
    #[serde(default)]
    pub answers: Answers,
    /// The web console (`relais_console::ConsoleConfig`), read by the `relais` binary: the
    /// console is built on the engine, so the engine keeps this section as it is.
    #[serde(default)]
    pub console: Option<toml::Table>,
    /// The outbound side: letters from the DPI to MSSanté, the liste blanche, the Annuaire.
    #[serde(default)]
    pub outbound: crate::outbound::OutboundConfig,
    /// Alerts by mail and webhook (`[alerts]`, `[[alerts.rule]]`).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// How long finished messages are kept (`[retention]`); by default, for ever.
    #[serde(default)]
    pub retention: Retention,
}

/// How senders are told what became of their mail (ANS guide: the MDN when the mail asks for
/// one with `Disposition-Notification-To`, otherwise an error report to a configured mailbox
/// when integration failed). Every message with an outcome owes one answer, kept in the
/// journal until sent: without `[answers.smtp]` answers wait (and the daemon says so); with
/// `enabled = false` they are recorded as skipped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The answering mailbox (`From` of the MDN) for sources without an `address`.
    pub from: Option<String>,
    /// Where failures are reported when the sender asked no MDN (the guide's « courriel
    /// standard »); without it such failures are only in the journal and the review queue.
    pub error_mailbox: Option<String>,
    /// Attach the original mail to error reports.
    #[serde(default = "yes")]
    pub attach_original: bool,
    /// `X-MSS-NIL` of the answers; default: `Relais <version>`.
    pub nil: Option<String>,
    /// The submission server the answers go through.
    pub smtp: Option<SmtpSettings>,
}

impl Default for Answers {
    fn default() -> Self {
        Answers {
            enabled: true,
            from: None,
            error_mailbox: None,
            attach_original: true,
            nil: None,
            smtp: None,
        }
    }
}

/// An SMTP submission server (the MSSanté operator's, or the hospital's relay).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `starttls` (default, port 587) or `tls` (implicit, port 465). Never clear text.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// PEM files of the trusted CAs (e.g. the IGC-Santé root and intermediate).
    pub ca_files: Vec<PathBuf>,
    /// Client certificate chain and key (PEM) of the applicative mailbox.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SASL login; with a client certificate only, leave both out.
    pub user: Option<String>,
    /// A file holding the password (kept out of the configuration).
    pub password_file: Option<PathBuf>,
    /// Name given in EHLO; default `localhost`.
    pub helo_name: Option<String>,
    /// Name to check the server certificate against when it differs from `host`.
    pub tls_server_name: Option<String>,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
}

impl SmtpSettings {
    /// The relais-smtp configuration (reads the password file).
    pub fn smtp_config(&self) -> Result<relais_smtp::SmtpConfig, String> {
        let mut cfg = relais_smtp::SmtpConfig::new(
            self.host.clone(),
            self.port,
            match self.security {
                SmtpSecurity::Starttls => relais_smtp::Security::StartTls,
                SmtpSecurity::Tls => relais_smtp::Security::ImplicitTls,
            },
            self.ca_files.clone(),
        );
        cfg.tls_server_name = self.tls_server_name.clone();
        if let Some(helo) = &self.helo_name {
            cfg.helo_name = helo.clone();
        }
        cfg.client_cert = match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => Some(relais_smtp::ClientCertFiles {
                chain_pem: c.clone(),
                key_pem: k.clone(),
            }),
            (None, None) => None,
            _ => return Err("[answers.smtp] client_cert and client_key go together".into()),
        };
        cfg.auth = match (&self.user, &self.password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file).map_err(|e| {
                    format!(
                        "[answers.smtp] cannot read the password file {}: {e}",
                        file.display()
                    )
                })?;
                Some(relais_smtp::Credentials {
                    user: user.clone(),
                    password: password.trim_end_matches(['\r', '\n']).to_string(),
                })
            }
            (None, None) => None,
            _ => return Err("[answers.smtp] user and password_file go together".into()),
        };
        Ok(cfg)
    }
}

/// `[journal]`: the journal's database.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// `sqlite` (default: `data_dir/journal`, one instance) or `postgres`.
    #[serde(default)]
    pub kind: JournalKind,
    /// For `postgres`: a file holding the connection URL
    /// (`postgres://user:password@host:5432/relais?sslmode=verify-full&sslrootcert=...`),
    /// kept out of the configuration because it carries the password.
    pub url_file: Option<PathBuf>,
    /// For `postgres`: most connections this instance opens (default 10).
    pub max_connections: Option<u32>,
    /// How long an instance's lease on an IMAP mailbox lasts unless renewed (default 30 s,
    /// renewed every third of it): with several instances on one PostgreSQL journal, each
    /// mailbox is polled by one instance at a time, and taken over this long after its
    /// instance died.
    pub lease_ttl_secs: Option<u64>,
}

impl JournalSettings {
    /// Default [`JournalSettings::lease_ttl_secs`].
    pub const DEFAULT_LEASE_TTL_SECS: u64 = 30;

    /// The mailbox lease time-to-live.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.lease_ttl_secs
                .unwrap_or(Self::DEFAULT_LEASE_TTL_SECS)
                .clamp(1, 3600),
        )
    }
}

/// `[retention]`: how long the journal keeps what it holds about a finished message (filed or
/// rejected, nothing left to review, deliver or answer), counted from its last change, per
/// class. A class left unset is kept for ever: without this section nothing is ever pruned.
/// The daemon prunes every `run_every_secs`; `relais prune` does it on demand (and
/// `relais prune --dry-run` says what would go).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days the raw mail (as received) is kept; the message and its trail stay.
    pub raw_mail_days: Option<u32>,
    /// Days the documents kept for the sinks (delivery payloads) are kept.
    pub documents_days: Option<u32>,
    /// Days the message itself is kept, with its audit trail (events), documents, deliveries and
    /// reviews; at least as long as the two classes above.
    pub events_days: Option<u32>,
    /// How often the daemon prunes (default 86400: daily; 0: only `relais prune`).
    pub run_every_secs: Option<u64>,
    /// Rows per pruning transaction (default 500): intake waits for one at most.
    pub chunk_rows: Option<u32>,
}

impl Retention {
    /// Default [`Retention::run_every_secs`].
    pub const DEFAULT_RUN_EVERY_SECS: u64 = 86_400;
    /// Default [`Retention::chunk_rows`].
    pub const DEFAULT_CHUNK_ROWS: u32 = 500;

    /// Whether any class has a retention period.
    pub fn is_enabled(&self) -> bool {
        self.raw_mail_days.is_some() || self.documents_days.is_some() || self.events_days.is_some()
    }

    /// Rows per pruning transaction.
    pub fn chunk_rows(&self) -> u32 {
        self.chunk_rows.unwrap_or(Self::DEFAULT_CHUNK_ROWS)
    }

    /// How often the daemon prunes; `None` when it does not.
    pub fn run_every(&self) -> Option<std::time::Duration> {
        match self.run_every_secs.unwrap_or(Self::DEFAULT_RUN_EVERY_SECS) {
            0 => None,
            s => Some(std::time::Duration::from_secs(s)),
        }
    }

    /// The pruning policy as of now, recorded as done by `actor`.
    pub fn policy(&self, actor: &str) -> relais_store::PrunePolicy {
        let days =
            |d: Option<u32>| d.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
        relais_store::PrunePolicy {
            raw_mail: days(self.raw_mail_days),
            documents: days(self.documents_days),
            events: days(self.events_days),
            ..relais_store::PrunePolicy::new(actor)
        }
    }

    /// What is wrong with the section.
    pub fn problems(&self, journal: JournalKind) -> Vec<String> {
        let mut out = Vec::new();
        for (key, days) in [
            ("raw_mail_days", self.raw_mail_days),
            ("documents_days", self.documents_days),
            ("events_days", self.events_days),
        ] {
            if days == Some(0) {
                out.push(format!(
                    "[retention] {key} must be at least 1 (leave it out to keep for ever)"
                ));
            }
        }
        if let Some(events) = self.events_days {
            for (key, days) in [
                ("raw_mail_days", self.raw_mail_days),
                ("documents_days", self.documents_days),
            ] {
                if days.is_none_or(|d| d > events) {
                    out.push(format!(
                        "[retention] events_days = {events} deletes each message entirely, so {key} must be set to at most {events}"
                    ));
                }
            }
        }
        if let Some(rows) = self.chunk_rows
            && !(10..=100_000).contains(&rows)
        {
            out.push(format!(
                "[retention] chunk_rows must be between 10 and 100000 (is {rows})"
            ));
        }
        if let Some(secs) = self.run_every_secs
            && secs != 0
            && secs < 60
        {
            out.push(format!(
                "[retention] run_every_secs must be 0 (only `relais prune`) or at least 60 (is {secs})"
            ));
        }
        if self.is_enabled() && journal == JournalKind::Postgres {
            out.push("[retention] is available with the SQLite journal only for now: leave it out with [journal] kind = \"postgres\"".into());
        }
        out
    }
}

/// The journal's database engine.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    #[default]
    Sqlite,
    Postgres,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./relais-data")
}

/// How documents are validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// The validation pack (ANS XSD, schematrons, value sets); default: discovered.
    pub pack: Option<PathBuf>,
    /// `auto` (run when Java and Saxon are there), `require`, or `off`.
    #[serde(default)]
    pub schematron: SchematronSetting,
    /// Mappings directory overriding the built-in code tables.
    pub mappings: Option<PathBuf>,
    /// Reject documents whose schematron or XSD checks fail (default true). When false, such
    /// documents are filed and their findings kept in the journal.
    #[serde(default = "yes")]
    pub reject_invalid: bool,
}

fn yes() -> bool {
    true
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            pack: None,
            schematron: SchematronSetting::Auto,
            mappings: None,
            reject_invalid: true,
        }
    }
}

/// Whether the ANS schematrons run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SchematronSetting {
    #[default]
    Auto,
    Require,
    Off,
}

/// Patient identification against the hospital's patient index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Patients {
    /// Require a match in the patient index before filing (ANS codes 902–905 send the
    /// document to review otherwise). The embedded demo turns it off: it has no index.
    #[serde(default = "yes")]
    pub require_match: bool,
    /// Listen for ADT PAM-FR messages (A01, A04, A08, A28, A31, A40...) from the identity
    /// server over MLLP at this address (e.g. `0.0.0.0:2575`), feeding the patient index.
    #[serde(default)]
    pub adt_listen: Option<String>,
}

impl Default for Patients {
    fn default() -> Self {
        Patients {
            require_match: true,
            adt_listen: None,
        }
    }
}

/// A mail source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A Maildir (`new/`, `cur/`), or a plain folder of `.eml` files.
    Maildir {
        name: String,
        path: PathBuf,
        /// The MSSanté address this folder receives for (`From` of the answers).
        #[serde(default)]
        address: Option<String>,
        /// Move handled mails from `new/` to `cur/` (Maildir) once journaled. With `false` the
        /// folder is left untouched and the journal's dedup keeps each mail to one filing.
        #[serde(default = "yes")]
        consume: bool,
    },
    /// An MSSanté mailbox over IMAP (personal, organisational or applicative BAL). Each mail is
    /// journaled, processed, then moved to `processed_folder` (or `quarantine_folder` when
    /// rejected); a mail is never moved before the journal holds it.
    Imap {
        name: String,
        /// The mailbox's MSSanté address (`From` of the answers); default: `user` when it is
        /// an address.
        #[serde(default)]
        address: Option<String>,
        host: String,
        port: u16,
        #[serde(default)]
        security: ImapSecurity,
        /// PEM files of the trusted CAs (e.g. the IGC-Santé root and intermediate).
        ca_files: Vec<PathBuf>,
        /// Client certificate chain and key (PEM) for applicative mailboxes.
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        /// Login; with a client certificate and no user, SASL EXTERNAL is used.
        user: Option<String>,
        /// A file holding the password (kept out of the configuration).
        password_file: Option<PathBuf>,
        #[serde(default = "default_inbox")]
        mailbox: String,
        #[serde(default = "default_processed")]
        processed_folder: String,
        #[serde(default = "default_quarantine")]
        quarantine_folder: String,
    },
}

impl Source {
    pub fn name(&self) -> &str {
        match self {
            Source::Maildir { name, .. } | Source::Imap { name, .. } => name,
        }
    }

    /// The MSSanté address of the mailbox, when known.
    pub fn address(&self) -> Option<&str> {
        match self {
            Source::Maildir { address, .. } => address.as_deref(),
            Source::Imap { address, user, .. } => address
                .as_deref()
                .or(user.as_deref().filter(|u| u.contains('@'))),
        }
    }
}

/// IMAP connection security.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImapSecurity {
    /// Implicit TLS (port 993).
    #[default]
    Tls,
    /// STARTTLS on the plain port (143); refused if the server does not offer it.
    Starttls,
}

fn default_inbox() -> String {
    "INBOX".into()
}
fn default_processed() -> String {
    "Relais-Traites".into()
}
fn default_quarantine() -> String {
    "Relais-Quarantaine".into()
}

/// A filing destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Sink {
    /// Write each document and a JSON metadata sidecar into a folder (temp name, then rename).
    Folder { name: String, path: PathBuf },
    /// Send each document to the DPI as an HL7v2 MDM (T02 new, T10 replacement) over MLLP,
    /// per the ANS guide; the DPI's ACK decides: AA filed, AE rejected (review), AR retried.
    Mllp {
        name: String,
        /// `host:port` of the DPI's MLLP listener.
        address: String,
        #[serde(default = "default_app")]
        sending_application: String,
        #[serde(default)]
        sending_facility: String,
        #[serde(default = "default_dpi")]
        receiving_application: String,
        #[serde(default)]
        receiving_facility: String,
        /// Seconds to wait for the connection, then for the ACK.
        #[serde(default = "default_connect")]
        connect_timeout_secs: u64,
        #[serde(default = "default_ack")]
        ack_timeout_secs: u64,
    },
    /// File each document on the hospital's FHIR R4 server as one transaction Bundle
    /// (Patient by identifier, Binary, DocumentReference), created conditionally so that a
    /// retried delivery files nothing twice.
    Fhir {
        name: String,
        /// The server's base URL (`https://...`; `http://` only without TLS settings).
        base_url: String,
        /// The system of the hospital's IPPs: `urn:oid:<OID of the IPP assigner>` or a bare OID.
        ipp_system: String,
        /// A file holding the bearer token (kept out of the configuration).
        bearer_token_file: Option<PathBuf>,
        /// Client certificate chain and key (PEM) for mutual TLS.
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
        /// PEM files of the CAs trusted for the server's certificate (never the system store).
        #[serde(default)]
        ca_files: Vec<PathBuf>,
        #[serde(default = "default_connect")]
        connect_timeout_secs: u64,
        #[serde(default = "default_fhir_request")]
        request_timeout_secs: u64,
    },
}

fn default_fhir_request() -> u64 {
    60
}

fn default_app() -> String {
    "RELAIS".into()
}
fn default_dpi() -> String {
    "DPI".into()
}
fn default_connect() -> u64 {
    5
}
fn default_ack() -> u64 {
    30
}

impl Sink {
    pub fn name(&self) -> &str {
        match self {
            Sink::Folder { name, .. } | Sink::Mllp { name, .. } | Sink::Fhir { name, .. } => name,
        }
    }

    /// The relais-fhir settings of a FHIR sink (`None` for other kinds).
    pub fn fhir_settings(&self) -> Option<relais_fhir::Settings> {
        let Sink::Fhir {
            base_url,
            ipp_system,
            bearer_token_file,
            client_cert,
            client_key,
            ca_files,
            connect_timeout_secs,
            request_timeout_secs,
            ..
        } = self
        else {
            return None;
        };
        Some(relais_fhir::Settings {
            base_url: base_url.clone(),
            bearer_token_file: bearer_token_file.clone(),
            client_cert: client_cert.clone(),
            client_key: client_key.clone(),
            ca_files: ca_files.clone(),
            ipp_system: ipp_system.clone(),
            connect_timeout: std::time::Duration::from_secs(*connect_timeout_secs),
            request_timeout: std::time::Duration::from_secs(*request_timeout_secs),
        })
    }
}

/// A routing rule: documents matching every given criterion go to `sinks`. The first matching
/// route wins; a document no route matches waits for review (code `ROUTE-NONE`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Document type codes (LOINC), e.g. `["11490-0"]`; empty: any.
    #[serde(default)]
    pub document_types: Vec<String>,
    /// Source names; empty: any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Sender domains; empty: any.
    #[serde(default)]
    pub sender_domains: Vec<String>,
    pub sinks: Vec<String>,
}

/// A configuration problem, said so that it can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("configuration {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let config = Config::parse(&text, &path.display().to_string())?;
        for warning in exposed_secret_files(&text) {
            tracing::warn!("{warning}");
        }
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems.join("; ")))
        }
    }

    /// Parse TOML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            reason: e.to_string(),
        })
    }

    /// The embedded default: `./relais-data`, SQLite, the bundled samples as a read-only source,
    /// an output folder, patient matching off (there is no patient index in the demo).
    pub fn embedded_default(samples: &Path) -> Config {
        Config {
            journal: JournalSettings::default(),
            data_dir: default_data_dir(),
            validation: Validation {
                reject_invalid: true,
                ..Validation::default()
            },
            limits: Limits::default(),
            patients: Patients {
                require_match: false,
                adt_listen: None,
            },
            sources: vec![Source::Maildir {
                address: None,
                name: "samples".into(),
                path: samples.to_path_buf(),
                consume: false,
            }],
            sinks: vec![Sink::Folder {
                name: "output-folder".into(),
                path: default_data_dir().join("out"),
            }],
            routes: Vec::new(),
            answers: Answers::default(),
            console: None,
            outbound: Default::default(),
            alerts: Default::default(),
            retention: Retention::default(),
        }
    }

    /// Everything wrong with the configuration (empty when it is usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for s in &self.sources {
            if !names.insert(format!("source:{}", s.name())) {
                out.push(format!("two sources are named {:?}", s.name()));
            }
            if s.name().trim().is_empty() {
                out.push("a source has an empty name".into());
            }
        }
        for s in &self.sinks {
            if !names.insert(format!("sink:{}", s.name())) {
                out.push(format!("two sinks are named {:?}", s.name()));
            }
        }
        for s in &self.sinks {
            if let Sink::Fhir {
                name,
                bearer_token_file,
                client_cert,
                client_key,
                ..
            } = s
            {
                if client_cert.is_some() != client_key.is_some() {
                    out.push(format!(
                        "sink {name}: client_cert and client_key go together"
                    ));
                }
                if bearer_token_file.is_none() && client_cert.is_none() {
                    out.push(format!(
                        "sink {name}: give bearer_token_file, or client_cert and client_key (mutual TLS)"
                    ));
                }
            }
        }
        out.extend(self.outbound.problems());
        out.extend(self.alerts.problems(self));
        out.extend(self.retention.problems(self.journal.kind));
        if let Some(ttl) = self.journal.lease_ttl_secs
            && !(3..=3600).contains(&ttl)
        {
            out.push(format!(
                "[journal] lease_ttl_secs must be between 3 and 3600 (is {ttl})"
            ));
        }
        if self.journal.kind == JournalKind::Postgres {
            if self.journal.url_file.is_none() {
                out.push("[journal] kind = \"postgres\" needs url_file (a file holding the connection URL)".into());
            }
            if self.outbound.is_enabled() {
                out.push("[outbound] keeps its letters in the SQLite journal for now: it cannot run with [journal] kind = \"postgres\"".into());
            }
        }
        if let Some(smtp) = &self.answers.smtp {
            if smtp.client_cert.is_some() != smtp.client_key.is_some() {
                out.push("[answers.smtp] client_cert and client_key go together".into());
            }
            if smtp.user.is_some() != smtp.password_file.is_some() {
                out.push("[answers.smtp] user and password_file go together".into());
            }
        }
        for (what, address) in [
            ("[answers] from", &self.answers.from),
            ("[answers] error_mailbox", &self.answers.error_mailbox),
        ] {
            if let Some(a) = address
                && relais_mssante::domain_of(a).is_none()
            {
                out.push(format!("{what} is not a mail address"));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.sinks.is_empty() {
                out.push(format!("route #{} names no sink", i + 1));
            }
            for sink in &r.sinks {
                if !self.sinks.iter().any(|s| s.name() == sink) {
                    out.push(format!(
                        "route #{} names the sink {sink:?}, which is not configured",
                        i + 1
                    ));
                }
            }
            for src in &r.sources {
                if !self.sources.iter().any(|s| s.name() == src) {
                    out.push(format!(
                        "route #{} names the source {src:?}, which is not configured",
                        i + 1
                    ));
                }
            }
        }
        out
    }

    /// The sinks a document goes to, per the routes.
    pub fn route(
        &self,
        document_type: Option<&str>,
        source: &str,
        sender_domain: Option<&str>,
    ) -> Vec<&str> {
        if self.routes.is_empty() {
            return self.sinks.iter().map(Sink::name).collect();
        }
        let matches = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        self.routes
            .iter()
            .find(|r| {
                matches(&r.document_types, document_type)
                    && matches(&r.sources, Some(source))
                    && matches(&r.sender_domains, sender_domain)
            })
            .map(|r| r.sinks.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Keys whose value names a file holding a secret: a private key, a password, a token, a
/// database URL with its password, the console's password hashes.
const SECRET_FILE_KEYS: &[&str] = &[
    "client_key",
    "tls_key",
    "password_file",
    "token_file",
    "bearer_token_file",
    "url_file",
    "users_file",
];

/// One warning per secret file of the configuration `text` that others can read or that its
/// group can write (what `deploy/OPERATIONS.md` asks: `0600 relais` or `0640 root:relais`).
/// [`Config::load`] logs them; they do not stop Relais (a warning, like sshd's for a lax
/// `authorized_keys`, would be a refusal there: here a refusal would stop the mail flow on an
/// upgrade).
pub fn exposed_secret_files(text: &str) -> Vec<String> {
    fn walk(value: &toml::Value, out: &mut Vec<(String, PathBuf)>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    match v {
                        toml::Value::String(s) if SECRET_FILE_KEYS.contains(&k.as_str()) => {
                            out.push((k.clone(), PathBuf::from(s)));
                        }
                        other => walk(other, out),
                    }
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let Ok(doc) = toml::from_str::<toml::Value>(text) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    walk(&doc, &mut files);
    let mut out = Vec::new();
    #[cfg(unix)]
    for (key, path) in files {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a missing file is reported where it is read
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            out.push(format!(
                "{key} {}: mode {mode:04o} lets {} it; restrict it to 0600 (owner relais) or \
                 0640 (owner root, group relais)",
                path.display(),
                if mode & 0o007 != 0 {
                    "every local user read or write"
                } else {
                    "its group write"
                }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_valid() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./relais-data"));
        assert!(c.patients.require_match);
        assert!(c.validation.reject_invalid);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("data_dirr = \"x\"", "t").unwrap_err();
        assert!(e.to_string().contains("data_dirr"), "{e}");
    }

    #[test]
    fn routes_are_checked_and_applied() {
        let c = Config::parse(
            r#"
[[source]]
kind = "maildir"
name = "lab"
path = "/tmp/x"

[[sink]]
kind = "folder"
name = "letters"
path = "/tmp/l"

[[sink]]
kind = "folder"
name = "labs"
path = "/tmp/b"

[[route]]
document_types = ["11502-2"]
sinks = ["labs"]

[[route]]
sinks = ["letters"]
"#,
            "t",
        )
        .unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.route(Some("11502-2"), "lab", None), vec!["labs"]);
        assert_eq!(c.route(Some("11490-0"), "lab", None), vec!["letters"]);
        let bad = Config::parse("[[route]]\nsinks = [\"nowhere\"]\n", "t").unwrap();
        assert!(bad.problems()[0].contains("nowhere"));
    }
}
