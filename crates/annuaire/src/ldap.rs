//! Live look-ups in an LDAP(S) directory: the Annuaire national MSSanté, or a local copy or
//! proxy of it.
//!
//! **Attribute names are configuration, not code.** The LDAP schema of the national
//! directory could not be confirmed from public sources when this was written, so every
//! attribute Relais reads or filters on is named in an [`AttributeMap`]. The defaults use the
//! standard attributes where one has the meaning (`mail`, `sn`, `givenName`, `personalTitle`,
//! `o`, `ou`, `street`, `postalCode`, `l`: RFC 4519, RFC 2798, RFC 4524) and `mssante*`
//! names for the rest (BAL type, RPPS, idNat_PS, profession, speciality), which are those of
//! the test schema shipped with the tests (`tests/data/mssante-test.schema`). Set them to the
//! names your directory uses.
//!
//! Filters are built from a small tree rendered with RFC 4515 escaping
//! ([`ldap3::ldap_escape`]) of every value: user input never reaches the filter text
//! unescaped, so `*)(uid=*` searches for that literal text and finds nothing. Attribute names
//! and the optional extra filter come from the configuration and are checked when the
//! directory is built.
//!
//! Every look-up opens a connection (plain, `ldaps://` or StartTLS), binds (anonymous, simple
//! with a password read from a file, or SASL EXTERNAL with the client certificate), searches
//! and unbinds, all under the configured timeout. TLS trusts only the CA certificates listed
//! (IGC-Santé), never the system store, through [`relais_tls`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use relais_tls::{ClientCertPaths, TlsProblem};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::model::{
    BalType, CodeOrLabel, Coded, Entry, Location, Mailbox, Matches, Organisation, Person, Query,
};

/// Why an LDAP look-up failed; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// The configuration cannot work (URL, attribute names, filter, TLS files).
    #[error("LDAP directory configuration: {0}")]
    Config(String),
    /// The bind password file cannot be read.
    #[error("LDAP bind password file {}: {source}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No connection to the server.
    #[error(
        "cannot connect to the LDAP directory {url}: {reason}; check that the server is up and \
         that the URL (host, port, ldap:// or ldaps://) is right"
    )]
    Connect {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("TLS with the LDAP directory {url} failed: {explanation}")]
    Tls {
        /// The URL.
        url: String,
        /// What kind of problem.
        problem: TlsProblem,
        /// What to check.
        explanation: String,
    },
    /// The server refused the bind.
    #[error("the LDAP directory {url} refused the bind as {who}: {reason}")]
    Bind {
        /// The URL.
        url: String,
        /// The bind DN, or "anonymous" / "SASL EXTERNAL".
        who: String,
        /// The server's answer and what to check.
        reason: String,
    },
    /// The server refused or failed the search.
    #[error("LDAP search under {base} on {url} failed: {reason}")]
    Search {
        /// The URL.
        url: String,
        /// The base DN.
        base: String,
        /// The server's answer and what to check.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("the LDAP directory {url} did not answer within {after:?} ({during})")]
    Timeout {
        /// The URL.
        url: String,
        /// What was being done.
        during: &'static str,
        /// The timeout.
        after: Duration,
    },
}

/// How Relais authenticates to the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LdapBind {
    /// No bind (anonymous search).
    #[default]
    Anonymous,
    /// Simple bind; the password is read from a file at each connection (so it can be rotated
    /// without a restart) and never logged.
    Simple {
        /// The bind DN.
        dn: String,
        /// The file holding the password (trailing end of line ignored).
        password_file: PathBuf,
    },
    /// SASL EXTERNAL: the TLS client certificate is the identity (needs `client_cert`).
    SaslExternal,
}

/// A client certificate and key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate followed by its intermediate CA(s).
    pub chain_pem: PathBuf,
    /// Its private key.
    pub key_pem: PathBuf,
}

/// Which LDAP attribute holds what; `None` (or an empty name, in configuration files) means
/// the directory does not have it, and a query on that criterion is refused with a clear
/// error. Deserialises from configuration (e.g. a TOML table); fields left out keep their
/// default names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeMap {
    /// The MSSanté address(es) (one entry may hold several).
    pub mail: String,
    /// The BAL type (`PER`, `ORG`, `APP`, `CAB`).
    pub bal_type: Option<String>,
    /// `Type Identifiant PP` (`8` RPPS, `0` ADELI).
    pub person_id_type: Option<String>,
    /// `Identifiant PP`: RPPS or ADELI number.
    pub person_id: Option<String>,
    /// `Identification nationale PP` (idNat_PS).
    pub national_id: Option<String>,
    /// Civility (`DR`...).
    pub civility: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Profession code.
    pub profession_code: Option<String>,
    /// Profession label.
    pub profession_label: Option<String>,
    /// Speciality (savoir-faire) code.
    pub speciality_code: Option<String>,
    /// Speciality label.
    pub speciality_label: Option<String>,
    /// Dematerialisation flag.
    pub dematerialisation: Option<String>,
    /// Organisation identifier (FINESS, SIRET...).
    pub organisation_id: Option<String>,
    /// Organisation name.
    pub organisation: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// Street address line(s).
    pub street: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Town.
    pub city: Option<String>,
}

impl Default for AttributeMap {
    /// Standard attributes where one exists, `mssante*` names of the test schema otherwise
    /// (see the module documentation).
    fn default() -> Self {
        let s = |v: &str| Some(v.to_string());
        AttributeMap {
            mail: "mail".into(),
            bal_type: s("mssanteTypeBAL"),
            person_id_type: s("mssanteTypeIdPP"),
            person_id: s("mssanteIdPP"),
            national_id: s("mssanteIdNatPS"),
            civility: s("personalTitle"),
            surname: s("sn"),
            given_name: s("givenName"),
            profession_code: s("mssanteCodeProfession"),
            profession_label: s("mssanteProfession"),
            speciality_code: s("mssanteCodeSavoirFaire"),
            speciality_label: s("mssanteSavoirFaire"),
            dematerialisation: s("mssanteDematerialisation"),
            organisation_id: s("mssanteIdStructure"),
            organisation: s("o"),
            service: s("ou"),
            street: s("street"),
            postal_code: s("postalCode"),
            city: s("l"),
        }
    }
}

impl AttributeMap {
    /// Empty names mean "not in this directory".
    fn normalized(mut self) -> AttributeMap {
        for a in [
            &mut self.bal_type,
            &mut self.person_id_type,
            &mut self.person_id,
            &mut self.national_id,
            &mut self.civility,
            &mut self.surname,
            &mut self.given_name,
            &mut self.profession_code,
            &mut self.profession_label,
            &mut self.speciality_code,
            &mut self.speciality_label,
            &mut self.dematerialisation,
            &mut self.organisation_id,
            &mut self.organisation,
            &mut self.service,
            &mut self.street,
            &mut self.postal_code,
            &mut self.city,
        ] {
            if a.as_deref().is_some_and(|n| n.trim().is_empty()) {
                *a = None;
            }
        }
        self
    }

    fn all(&self) -> Vec<&str> {
        let mut v = vec![self.mail.as_str()];
        v.extend(
            [
                &self.bal_type,
                &self.person_id_type,
                &self.person_id,
                &self.national_id,
                &self.civility,
                &self.surname,
                &self.given_name,
                &self.profession_code,
                &self.profession_label,
                &self.speciality_code,
                &self.speciality_label,
                &self.dematerialisation,
                &self.organisation_id,
                &self.organisation,
                &self.service,
                &self.street,
                &self.postal_code,
                &self.city,
            ]
            .into_iter()
            .filter_map(|a| a.as_deref()),
        );
        v
    }
}

/// How to reach the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// Where to search (subtree).
    pub base_dn: String,
    /// How to authenticate.
    pub bind: LdapBind,
    /// PEM files of the CA certificates trusted for the server (IGC-Santé); required for
    /// `ldaps://` and StartTLS.
    pub ca_pem_files: Vec<PathBuf>,
    /// Client certificate presented when the server asks (and the identity of SASL EXTERNAL).
    pub client_cert: Option<ClientCert>,
    /// Limit for connecting, binding and searching, each.
    pub timeout: Duration,
    /// An extra filter every search must also match, e.g. `(objectClass=mssanteBAL)`.
    pub filter: Option<String>,
    /// Attribute names.
    pub attributes: AttributeMap,
}

impl LdapConfig {
    /// A configuration with anonymous bind, no TLS files, a 10 s timeout and the default
    /// attribute names.
    pub fn new(url: impl Into<String>, base_dn: impl Into<String>) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls: false,
            base_dn: base_dn.into(),
            bind: LdapBind::Anonymous,
            ca_pem_files: Vec::new(),
            client_cert: None,
            timeout: Duration::from_secs(10),
            filter: None,
            attributes: AttributeMap::default(),
        }
    }

    fn uses_tls(&self) -> bool {
        self.starttls || self.url.to_ascii_lowercase().starts_with("ldaps://")
    }
}

/// A live LDAP directory.
#[derive(Debug, Clone)]
pub struct LdapDirectory {
    config: LdapConfig,
}

/// A search filter, rendered with every value escaped (RFC 4515).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// All must match.
    And(Vec<Filter>),
    /// One must match.
    Or(Vec<Filter>),
    /// `(attr=value)`.
    Equals(String, String),
    /// `(attr=value*)`.
    StartsWith(String, String),
    /// A filter from the configuration, checked when the directory was built.
    Raw(String),
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(v) if v.len() == 1 => v[0].fmt(f),
            Filter::Or(v) if v.len() == 1 => v[0].fmt(f),
            Filter::And(v) => {
                f.write_str("(&")?;
                for x in v {
                    x.fmt(f)?;
                }
                f.write_str(")")
            }
            Filter::Or(v) => {
                f.write_str("(|")?;
                for x in v {
                    x.fmt(f)?;
                }
                f.write_str(")")
            }
            Filter::Equals(a, v) => write!(f, "({a}={})", ldap3::ldap_escape(v.as_str())),
            Filter::StartsWith(a, v) => write!(f, "({a}={}*)", ldap3::ldap_escape(v.as_str())),
            Filter::Raw(r) => f.write_str(r),
        }
    }
}

/// `value` and, when different, the same without accents: directories compare case- but
/// not accent-insensitively.
fn spellings(value: &str) -> Vec<String> {
    let v = value.trim().to_string();
    let plain: String = v.nfd().filter(|c| !is_combining_mark(*c)).collect();
    if plain != v { vec![v, plain] } else { vec![v] }
}

/// A valid attribute description: a name (letter, then letters, digits, hyphens) or an OID,
/// optionally with `;options`.
fn valid_attribute(name: &str) -> bool {
    let base = name.split(';').next().unwrap_or("");
    let is_name = base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let is_oid = !base.is_empty()
        && base
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (is_name || is_oid)
        && name
            .split(';')
            .skip(1)
            .all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

impl LdapDirectory {
    /// Checks the configuration (URL scheme, attribute names, extra filter, TLS files).
    pub fn new(mut config: LdapConfig) -> Result<LdapDirectory, LdapError> {
        config.attributes = config.attributes.normalized();
        let url = config.url.to_ascii_lowercase();
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(LdapError::Config(format!(
                "url {:?} must start with ldap:// or ldaps://",
                config.url
            )));
        }
        if config.starttls && url.starts_with("ldaps://") {
            return Err(LdapError::Config(
                "starttls is for ldap:// URLs; ldaps:// is already TLS".into(),
            ));
        }
        if config.base_dn.trim().is_empty() {
            return Err(LdapError::Config("base_dn is empty".into()));
        }
        for a in config.attributes.all() {
            if !valid_attribute(a) {
                return Err(LdapError::Config(format!(
                    "{a:?} is not a valid LDAP attribute name"
                )));
            }
        }
        if let Some(f) = &config.filter
            && ldap3::parse_filter(f).is_err()
        {
            return Err(LdapError::Config(format!(
                "filter {f:?} is not a valid LDAP filter (RFC 4515)"
            )));
        }
        if config.bind == LdapBind::SaslExternal && config.client_cert.is_none() {
            return Err(LdapError::Config(
                "SASL EXTERNAL needs client_cert (the certificate is the identity)".into(),
            ));
        }
        if config.bind == LdapBind::SaslExternal && !config.uses_tls() {
            return Err(LdapError::Config(
                "SASL EXTERNAL needs ldaps:// or starttls".into(),
            ));
        }
        let dir = LdapDirectory { config };
        if dir.config.uses_tls() {
            dir.tls()?;
        }
        Ok(dir)
    }

    /// The configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    fn tls(&self) -> Result<relais_tls::ClientTls, LdapError> {
        let cert = self.config.client_cert.as_ref().map(|c| ClientCertPaths {
            chain_pem: &c.chain_pem,
            key_pem: &c.key_pem,
        });
        relais_tls::client_config(&self.config.ca_pem_files, cert)
            .map_err(|e| LdapError::Config(e.to_string()))
    }

    /// The filter a query is sent as (exposed for tests and diagnostics).
    pub fn filter_for(&self, query: &Query) -> Result<Filter, crate::Error> {
        let rpps = query.validate()?;
        let a = &self.config.attributes;
        let need = |attr: &Option<String>, what: &str| -> Result<String, crate::Error> {
            attr.clone().ok_or_else(|| {
                crate::Error::Ldap(LdapError::Config(format!(
                    "no LDAP attribute is configured for {what}; set it in the attribute map"
                )))
            })
        };
        let mut all = Vec::new();
        if let Some(f) = &self.config.filter {
            all.push(Filter::Raw(f.clone()));
        }
        if let Some(r) = rpps {
            let mut any = Vec::new();
            if let Some(attr) = &a.person_id {
                any.push(Filter::Equals(attr.clone(), r.clone()));
            }
            if let Some(attr) = &a.national_id {
                any.push(Filter::Equals(attr.clone(), r.clone()));
                if r.len() == 11 {
                    any.push(Filter::Equals(attr.clone(), format!("8{r}")));
                }
            }
            if any.is_empty() {
                need(&None, "the RPPS")?;
            }
            all.push(Filter::Or(any));
        }
        if let Some(name) = &query.name_prefix {
            let mut any = Vec::new();
            for attr in [&a.surname, &a.organisation, &a.service]
                .into_iter()
                .flatten()
            {
                for v in spellings(name) {
                    any.push(Filter::StartsWith(attr.clone(), v));
                }
            }
            if any.is_empty() {
                need(&None, "names")?;
            }
            all.push(Filter::Or(any));
        }
        for (criterion, code_attr, label_attr, what) in [
            (
                &query.profession,
                &a.profession_code,
                &a.profession_label,
                "the profession",
            ),
            (
                &query.speciality,
                &a.speciality_code,
                &a.speciality_label,
                "the speciality",
            ),
        ] {
            match criterion {
                Some(CodeOrLabel::Code(c)) => {
                    all.push(Filter::Equals(need(code_attr, what)?, c.trim().to_string()))
                }
                Some(CodeOrLabel::Label(l)) => {
                    let attr = need(label_attr, what)?;
                    all.push(Filter::Or(
                        spellings(l)
                            .into_iter()
                            .map(|v| Filter::StartsWith(attr.clone(), v))
                            .collect(),
                    ));
                }
                None => {}
            }
        }
        if let Some(city) = &query.city {
            let c = city.trim();
            if c.len() == 5 && c.bytes().all(|b| b.is_ascii_digit()) {
                all.push(Filter::Equals(
                    need(&a.postal_code, "postal codes")?,
                    c.into(),
                ));
            } else {
                let attr = need(&a.city, "the town")?;
                all.push(Filter::Or(
                    spellings(c)
                        .into_iter()
                        .map(|v| Filter::Equals(attr.clone(), v))
                        .collect(),
                ));
            }
        }
        if !query.bal_types.is_empty() {
            let attr = need(&a.bal_type, "the BAL type")?;
            all.push(Filter::Or(
                query
                    .bal_types
                    .iter()
                    .map(|t| Filter::Equals(attr.clone(), t.code().to_string()))
                    .collect(),
            ));
        }
        Ok(Filter::And(all))
    }

    /// Searches the directory.
    pub async fn search(&self, query: &Query) -> Result<Matches, crate::Error> {
        let filter = self.filter_for(query)?;
        let (entries, truncated) = self.run(&filter, query.limit).await?;
        Ok(Matches { entries, truncated })
    }

    /// The entry holding an address, if any (the server's matching rule decides case).
    pub async fn find_address(&self, address: &str) -> Result<Option<Entry>, crate::Error> {
        let key = crate::store::address_key(address);
        if key.is_empty() {
            return Ok(None);
        }
        let mut all = Vec::new();
        if let Some(f) = &self.config.filter {
            all.push(Filter::Raw(f.clone()));
        }
        all.push(Filter::Equals(
            self.config.attributes.mail.clone(),
            key.clone(),
        ));
        let (entries, _) = self.run(&Filter::And(all), 20).await?;
        Ok(entries
            .into_iter()
            .find(|e| e.mailbox.address.to_lowercase() == key))
    }

    /// Connects, binds, searches and unbinds; returns at most `limit` entries and whether more
    /// matched.
    async fn run(&self, filter: &Filter, limit: usize) -> Result<(Vec<Entry>, bool), LdapError> {
        let mut ldap = self.connect().await?;
        let result = self.search_raw(&mut ldap, &filter.to_string(), limit).await;
        let _ = tokio::time::timeout(self.config.timeout, ldap.unbind()).await;
        result
    }

    async fn connect(&self) -> Result<Ldap, LdapError> {
        let c = &self.config;
        let url = c.url.clone();
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(c.timeout)
            .set_starttls(c.starttls);
        let tls = if c.uses_tls() {
            let tls = self.tls()?;
            settings = settings.set_config(tls.config.clone());
            Some(tls)
        } else {
            None
        };
        let connecting = LdapConnAsync::with_settings(settings, &url);
        let (conn, mut ldap) = match tokio::time::timeout(c.timeout, connecting).await {
            Err(_) => {
                return Err(LdapError::Timeout {
                    url,
                    during: "connecting",
                    after: c.timeout,
                });
            }
            Ok(Err(e)) => return Err(self.connect_error(e, tls.as_ref())),
            Ok(Ok(pair)) => pair,
        };
        ldap3::drive!(conn);
        ldap.with_timeout(c.timeout);
        let (who, outcome) = match &c.bind {
            LdapBind::Anonymous => return Ok(ldap),
            LdapBind::Simple { dn, password_file } => {
                let password = read_password(password_file)?;
                (dn.clone(), ldap.simple_bind(dn, &password).await)
            }
            LdapBind::SaslExternal => {
                ("SASL EXTERNAL".to_string(), ldap.sasl_external_bind().await)
            }
        };
        let bind_err = |reason: String| LdapError::Bind {
            url: url.clone(),
            who: who.clone(),
            reason,
        };
        match outcome {
            Ok(res) if res.rc == 0 => Ok(ldap),
            Ok(res) => Err(bind_err(explain_rc(res.rc, &res.text, Op::Bind))),
            Err(ldap3::LdapError::Timeout { .. }) => Err(LdapError::Timeout {
                url,
                during: "binding",
                after: c.timeout,
            }),
            Err(e) => Err(bind_err(e.to_string())),
        }
    }

    fn connect_error(&self, e: ldap3::LdapError, tls: Option<&relais_tls::ClientTls>) -> LdapError {
        let url = self.config.url.clone();
        let host = host_of(&url);
        let tls_error = |err: &rustls::Error| {
            let probe = tls.map(|t| t.probe.clone()).unwrap_or_default();
            let (problem, explanation) = relais_tls::explain(err, &probe, &host, "389");
            LdapError::Tls {
                url: url.clone(),
                problem,
                explanation,
            }
        };
        match &e {
            ldap3::LdapError::Io { source } => {
                if let Some(err) = relais_tls::rustls_error(source) {
                    return tls_error(err);
                }
                let during_handshake = matches!(
                    source.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                );
                if tls.is_some() && during_handshake {
                    return LdapError::Tls {
                        url,
                        problem: TlsProblem::NotTls,
                        explanation: format!(
                            "the server closed the connection during the TLS handshake ({source}); \
                             is this an implicit-TLS port (ldaps://, usually 636)? For a port that \
                             starts in clear text (389) use ldap:// with starttls"
                        ),
                    };
                }
                LdapError::Connect {
                    url,
                    reason: source.to_string(),
                }
            }
            ldap3::LdapError::Rustls { source } => tls_error(source),
            ldap3::LdapError::Timeout { .. } => LdapError::Timeout {
                url,
                during: "connecting",
                after: self.config.timeout,
            },
            ldap3::LdapError::UrlParsing { .. } | ldap3::LdapError::UnknownScheme(_) => {
                LdapError::Config(format!("url {url:?}: {e}"))
            }
            ldap3::LdapError::LdapResult { result } => LdapError::Connect {
                url,
                reason: format!(
                    "StartTLS refused: {}",
                    explain_rc(result.rc, &result.text, Op::Search)
                ),
            },
            _ => LdapError::Connect {
                url,
                reason: e.to_string(),
            },
        }
    }

    async fn search_raw(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        limit: usize,
    ) -> Result<(Vec<Entry>, bool), LdapError> {
        let c = &self.config;
        let attrs = c.attributes.all();
        let secs = c.timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        let result = ldap
            .with_search_options(
                SearchOptions::new()
                    .sizelimit((limit + 1).min(i32::MAX as usize) as i32)
                    .timelimit(secs),
            )
            .with_timeout(c.timeout)
            .search(&c.base_dn, Scope::Subtree, filter, attrs)
            .await;
        let search_err = |reason: String| LdapError::Search {
            url: c.url.clone(),
            base: c.base_dn.clone(),
            reason,
        };
        let ldap3::SearchResult(raw, res) = match result {
            Ok(r) => r,
            Err(ldap3::LdapError::Timeout { .. }) => {
                return Err(LdapError::Timeout {
                    url: c.url.clone(),
                    during: "searching",
                    after: c.timeout,
                });
            }
            Err(e) => return Err(search_err(e.to_string())),
        };
        // 4 sizeLimitExceeded and 11 adminLimitExceeded come with the entries found so far.
        let mut truncated = matches!(res.rc, 4 | 11);
        match res.rc {
            0 | 4 | 11 => {}
            3 => {
                return Err(LdapError::Timeout {
                    url: c.url.clone(),
                    during: "searching (server time limit)",
                    after: c.timeout,
                });
            }
            rc => return Err(search_err(explain_rc(rc, &res.text, Op::Search))),
        }
        let mut entries = Vec::new();
        for r in raw {
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(r)
            }));
            match parsed {
                Ok(se) => entries.extend(self.entries_of(&se)),
                Err(_) => return Err(search_err("the server sent an undecodable entry".into())),
            }
        }
        if entries.len() > limit {
            entries.truncate(limit);
            truncated = true;
        }
        Ok((entries, truncated))
    }

    /// One [`Entry`] per address of an LDAP entry.
    fn entries_of(&self, se: &SearchEntry) -> Vec<Entry> {
        let a = &self.config.attributes;
        let lower: HashMap<String, &Vec<String>> = se
            .attrs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let all = |attr: &str| -> Vec<String> {
            lower
                .get(&attr.to_ascii_lowercase())
                .map(|v| {
                    v.iter()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let one = |attr: &Option<String>| -> Option<String> {
            attr.as_deref().and_then(|x| all(x).into_iter().next())
        };
        let person = Person {
            id_type: one(&a.person_id_type),
            id: one(&a.person_id),
            national_id: one(&a.national_id),
            civility: one(&a.civility),
            surname: one(&a.surname),
            given_name: one(&a.given_name),
        };
        let organisation = Organisation {
            id_type: None,
            id: one(&a.organisation_id),
            name: one(&a.organisation),
            sign: None,
            service: one(&a.service),
        };
        let bal_type = one(&a.bal_type)
            .map(|t| BalType::from_code(&t))
            .unwrap_or_else(|| BalType::Other(String::new()));
        let postal_code = one(&a.postal_code);
        let city = one(&a.city);
        let delivery_line = match (&postal_code, &city) {
            (Some(p), Some(c)) => Some(format!("{p} {c}")),
            (None, Some(c)) => Some(c.clone()),
            _ => None,
        };
        let template = Entry {
            mailbox: Mailbox {
                address: String::new(),
                bal_type,
            },
            person: (person != Person::default()).then_some(person),
            profession_category: None,
            profession: Coded::new(one(&a.profession_code), one(&a.profession_label)),
            speciality: Coded::new(one(&a.speciality_code), one(&a.speciality_label)),
            dematerialisation: one(&a.dematerialisation).and_then(|v| {
                match v.to_ascii_lowercase().as_str() {
                    "true" | "o" | "oui" | "1" | "y" | "yes" => Some(true),
                    "false" | "n" | "non" | "0" | "no" => Some(false),
                    _ => None,
                }
            }),
            organisation: (organisation != Organisation::default()).then_some(organisation),
            location: Location {
                lines: a.street.as_deref().map(all).unwrap_or_default(),
                delivery_line,
                postal_code,
                city,
                department: None,
                country: None,
            },
        };
        all(&a.mail)
            .into_iter()
            .map(|address| {
                let mut e = template.clone();
                e.mailbox.address = address;
                e
            })
            .collect()
    }
}

fn read_password(path: &Path) -> Result<String, LdapError> {
    let text = std::fs::read_to_string(path).map_err(|source| LdapError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_string();
    }
    hostport.split(':').next().unwrap_or(hostport).to_string()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Bind,
    Search,
}

/// An LDAP result code with what to check.
fn explain_rc(rc: u32, text: &str, op: Op) -> String {
    let server = if text.is_empty() {
        String::new()
    } else {
        format!(" (server: {text})")
    };
    let advice = match (rc, op) {
        (49, _) => "invalid credentials: check bind_dn and the password file",
        (48, _) => {
            "the server refuses this kind of authentication (anonymous bind not allowed? configure bind_dn)"
        }
        (13, _) => "the server requires a secure connection: use ldaps:// or starttls",
        (50, Op::Search) => "insufficient access rights for this bind identity",
        (50, Op::Bind) => "insufficient access rights",
        (32, Op::Search) => "the base DN does not exist on this server: check base_dn",
        (53, _) => "the server is unwilling to perform the operation (anonymous search disabled?)",
        (51, _) | (52, _) => "the server is busy or unavailable: try again later",
        (7, _) => "authentication method not supported by the server",
        (8, _) => "the server requires a stronger authentication (TLS and a bind)",
        (87, _) => {
            "the server cannot parse the filter (an attribute name in the map may be unknown to it)"
        }
        (17, _) => "an attribute of the map is unknown to the server's schema",
        _ => "",
    };
    if advice.is_empty() {
        format!("LDAP result code {rc}{server}")
    } else {
        format!("{advice} (LDAP result code {rc}){server}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> LdapDirectory {
        LdapDirectory::new(LdapConfig::new("ldap://127.0.0.1:1", "dc=annuaire,dc=test")).unwrap()
    }

    #[test]
    fn values_are_escaped() {
        let d = dir();
        let f = d
            .filter_for(&Query::by_name_prefix("*)(uid=*"))
            .unwrap()
            .to_string();
        assert_eq!(
            f,
            r"(|(sn=\2a\29\28uid=\2a*)(o=\2a\29\28uid=\2a*)(ou=\2a\29\28uid=\2a*))"
        );
        let f = d
            .filter_for(&Query::by_name_prefix(r"a\b\00"))
            .unwrap()
            .to_string();
        assert!(f.contains(r"(sn=a\5cb\5c00*)"), "{f}");
        assert!(ldap3::parse_filter(&f).is_ok());
    }

    #[test]
    fn every_criterion_maps_to_a_filter() {
        let d = dir();
        let q = Query {
            rpps: Some("10999999001".into()),
            name_prefix: Some("Lefèvre".into()),
            profession: Some(CodeOrLabel::Code("10".into())),
            speciality: Some(CodeOrLabel::Label("Médecine".into())),
            city: Some("Ville-Fictive".into()),
            bal_types: vec![BalType::Per, BalType::Org],
            limit: 10,
        };
        let f = d.filter_for(&q).unwrap().to_string();
        assert_eq!(
            f,
            "(&(|(mssanteIdPP=10999999001)(mssanteIdNatPS=10999999001)(mssanteIdNatPS=810999999001))\
             (|(sn=Lefèvre*)(sn=Lefevre*)(o=Lefèvre*)(o=Lefevre*)(ou=Lefèvre*)(ou=Lefevre*))\
             (mssanteCodeProfession=10)\
             (|(mssanteSavoirFaire=Médecine*)(mssanteSavoirFaire=Medecine*))\
             (l=Ville-Fictive)\
             (|(mssanteTypeBAL=PER)(mssanteTypeBAL=ORG)))"
        );
        assert!(ldap3::parse_filter(&f).is_ok());
        let f = d
            .filter_for(&Query {
                city: Some("99001".into()),
                ..Query::default()
            })
            .unwrap()
            .to_string();
        assert_eq!(f, "(postalCode=99001)");
    }

    #[test]
    fn configuration_is_checked() {
        let mut c = LdapConfig::new("http://x", "dc=x");
        assert!(matches!(
            LdapDirectory::new(c.clone()),
            Err(LdapError::Config(_))
        ));
        c.url = "ldap://x".into();
        c.attributes.surname = Some("sn)(x=*".into());
        assert!(LdapDirectory::new(c.clone()).is_err());
        c.attributes = AttributeMap::default();
        c.filter = Some("(objectClass=".into());
        assert!(LdapDirectory::new(c.clone()).is_err());
        c.filter = Some("(objectClass=mssanteBAL)".into());
        let d = LdapDirectory::new(c.clone()).unwrap();
        assert_eq!(
            d.filter_for(&Query::by_rpps("10999999001"))
                .unwrap()
                .to_string(),
            "(&(objectClass=mssanteBAL)(|(mssanteIdPP=10999999001)(mssanteIdNatPS=10999999001)(mssanteIdNatPS=810999999001)))"
        );
        c.url = "ldaps://x".into();
        let e = LdapDirectory::new(c.clone()).unwrap_err();
        assert!(e.to_string().contains("ca_pem_files"), "{e}");
        c.attributes.speciality_label = None;
        c.url = "ldap://x".into();
        let d = LdapDirectory::new(c).unwrap();
        let e = d
            .filter_for(&Query {
                speciality: Some(CodeOrLabel::Label("cardio".into())),
                ..Query::default()
            })
            .unwrap_err();
        assert!(e.to_string().contains("speciality"), "{e}");
        assert!(valid_attribute("2.5.4.3"));
        assert!(valid_attribute("cn;lang-fr"));
        assert!(!valid_attribute("1cn"));
        assert!(!valid_attribute(""));
    }

    #[test]
    fn attribute_map_from_configuration() {
        let m: AttributeMap =
            toml::from_str("surname = \"cn\"\nspeciality_label = \"\"\nmail = \"mailMSS\"\n")
                .unwrap();
        assert_eq!(m.surname.as_deref(), Some("cn"));
        assert_eq!(m.mail, "mailMSS");
        assert_eq!(
            m.city.as_deref(),
            Some("l"),
            "fields left out keep their defaults"
        );
        let mut c = LdapConfig::new("ldap://x", "dc=x");
        c.attributes = m;
        let d = LdapDirectory::new(c).unwrap();
        assert_eq!(d.config().attributes.speciality_label, None);
        assert!(toml::from_str::<AttributeMap>("surnom = \"sn\"").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(host_of("ldaps://annuaire.test:636/"), "annuaire.test");
        assert_eq!(host_of("ldap://127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("ldaps://[::1]:636"), "::1");
    }
}
