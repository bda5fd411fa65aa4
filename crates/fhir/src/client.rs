//! The HTTP side: one client per configured FHIR server, built once, posting transactions.
//!
//! Transport rules, and why:
//!
//! - **Trust**: over `https://`, only the CA certificates of `ca_files` are trusted (through
//!   `relais-tls`, the same code as the MSSanté clients); the system trust store is never used,
//!   so a hospital decides exactly which PKI its DPI's certificate must come from.
//! - **Client authentication**: a bearer token read from a file when the client is built (the
//!   token is kept out of the configuration file and out of every log and error text), or a
//!   client certificate (mTLS), or both. A rotated token is picked up when the sink is built
//!   again (restart or configuration reload).
//! - **No proxy, no redirect**: the client connects directly to `base_url`; a redirect answer is
//!   a configuration error (see [`crate::outcome`]), not something to follow with a patient's
//!   document.
//! - **Timeouts**: one for the TCP+TLS connection, one for the whole exchange (sending the
//!   document and reading the answer). A timeout is retried: if the server filed the document
//!   before the answer was lost, the replay's conditional create finds it.
//! - **`Prefer: return=minimal`**: the server need not echo the resources (the CDA would come
//!   back); only the transaction-response's statuses and locations are read, up to 1 MiB.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use relais_tls::{ClientCertPaths, Probe, TlsProblem};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::bundle::{self, Bundle, BundleError, DocumentFiling};
use crate::outcome::{self, Outcome, RawResponse};

/// The FHIR JSON media type (R4 `http.html#mime-type`).
pub const FHIR_JSON: &str = "application/fhir+json";

/// Largest answer body read; a transaction-response of three entries is a few hundred bytes.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Settings of one FHIR sink, as the engine's configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The FHIR base URL (`https://dpi.example/fhir`); the transaction is posted to it.
    pub base_url: String,
    /// A file holding the bearer token (a single line), if the server wants one.
    pub bearer_token_file: Option<PathBuf>,
    /// Client certificate chain (PEM: leaf, then intermediates) for mTLS.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// PEM files of the CA certificates trusted for the server (required for `https://`).
    pub ca_files: Vec<PathBuf>,
    /// The system of the hospital's IPPs (`urn:oid:<OID of the IPP assigner>`, or a bare OID).
    pub ipp_system: String,
    /// Time allowed to open the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange, from sending to the end of the answer.
    pub request_timeout: Duration,
}

impl Settings {
    /// Settings with no authentication, no CA file and the default timeouts (10 s to connect,
    /// 60 s for the exchange).
    pub fn new(base_url: impl Into<String>, ipp_system: impl Into<String>) -> Settings {
        Settings {
            base_url: base_url.into(),
            bearer_token_file: None,
            client_cert: None,
            client_key: None,
            ca_files: Vec::new(),
            ipp_system: ipp_system.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a FHIR client cannot be built from its settings; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `base_url` is not an absolute `http://` or `https://` URL usable as a FHIR base.
    #[error("base_url {url:?}: {reason}")]
    BaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bearer token file cannot be read or does not hold a usable token.
    #[error("bearer_token_file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (the token itself is never quoted).
        reason: String,
    },
    /// Only one of `client_cert` and `client_key` is set.
    #[error("client_cert and client_key go together: set both (PEM chain and its key) or neither")]
    ClientCertIncomplete,
    /// A TLS setting is given for an `http://` base URL, where it would be silently unused.
    #[error("{what} is set but base_url is http://: use an https:// base URL, or remove {what}")]
    TlsOverHttp {
        /// `ca_files` or `client_cert`.
        what: &'static str,
    },
    /// `https://` without any CA file.
    #[error(
        "ca_files is empty: list the PEM files of the CA certificates that issued the FHIR \
         server's certificate (the system trust store is never used)"
    )]
    NoCaFiles,
    /// The CA files or the client certificate cannot be used.
    #[error("{0}")]
    Tls(#[from] relais_tls::SetupError),
    /// `ipp_system` is unusable.
    #[error("{0}")]
    IppSystem(BundleError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Why a POST got no HTTP answer. All of them are worth a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to the FHIR server {target}: {detail}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The system's reason (refused, unreachable, name not resolved...).
        detail: String,
    },
    /// The TLS handshake failed; the text says what to check.
    #[error("TLS with the FHIR server {target} failed: {text}")]
    Tls {
        /// `host:port`.
        target: String,
        /// What kind of failure.
        problem: TlsProblem,
        /// What to check.
        text: String,
    },
    /// No connection, or no complete answer, within the configured time.
    #[error("the FHIR server {target} did not answer within {secs} s ({setting})")]
    Timeout {
        /// `host:port`.
        target: String,
        /// The limit that ran out, in seconds.
        secs: u64,
        /// Its setting: `connect_timeout_secs` or `request_timeout_secs`.
        setting: &'static str,
    },
    /// The exchange broke off (connection reset, malformed HTTP...).
    #[error("the exchange with the FHIR server {target} failed: {detail}")]
    Exchange {
        /// `host:port`.
        target: String,
        /// What happened.
        detail: String,
    },
}

/// A client for one FHIR server: connection pool, TLS configuration and credentials, built once.
pub struct FhirClient {
    http: reqwest::Client,
    endpoint: Url,
    target: String,
    authorization: Option<HeaderValue>,
    probe: Option<Arc<Probe>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("endpoint", &self.endpoint.as_str())
            .field(
                "bearer_token",
                &self.authorization.as_ref().map(|_| "<set>"),
            )
            .field("tls", &self.probe.is_some())
            .finish()
    }
}

impl FhirClient {
    /// Checks the settings, reads the token and certificates, and builds the client.
    pub fn new(settings: &Settings) -> Result<FhirClient, SetupError> {
        let endpoint = endpoint(&settings.base_url)?;
        let https = endpoint.scheme() == "https";
        let client_cert = match (&settings.client_cert, &settings.client_key) {
            (Some(chain), Some(key)) => Some(ClientCertPaths {
                chain_pem: chain,
                key_pem: key,
            }),
            (None, None) => None,
            _ => return Err(SetupError::ClientCertIncomplete),
        };
        if !https {
            if client_cert.is_some() {
                return Err(SetupError::TlsOverHttp {
                    what: "client_cert",
                });
            }
            if !settings.ca_files.is_empty() {
                return Err(SetupError::TlsOverHttp { what: "ca_files" });
            }
        }
        let authorization = settings
            .bearer_token_file
            .as_deref()
            .map(read_token)
            .transpose()?;

        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(HeaderValue::from_static(concat!(
                "Relais/",
                env!("CARGO_PKG_VERSION")
            )));
        let mut probe = None;
        if https {
            if settings.ca_files.is_empty() {
                return Err(SetupError::NoCaFiles);
            }
            let tls = relais_tls::client_config(&settings.ca_files, client_cert)?;
            probe = Some(tls.probe.clone());
            builder = builder
                .https_only(true)
                .use_preconfigured_tls(rustls::ClientConfig::clone(&tls.config));
        } else {
            // reqwest builds a TLS configuration even for plain HTTP; give it one that trusts
            // nothing (with the ring provider), so that it never needs a process-wide provider
            // and could not open an https:// connection anyway.
            builder = builder.use_preconfigured_tls(trust_nothing()?);
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Http(error_chain(&e)))?;
        let target = format!(
            "{}:{}",
            endpoint.host_str().unwrap_or_default(),
            endpoint.port_or_known_default().unwrap_or_default()
        );
        Ok(FhirClient {
            http,
            endpoint,
            target,
            authorization,
            probe,
            connect_timeout: settings.connect_timeout,
            request_timeout: settings.request_timeout,
        })
    }

    /// The URL transactions are posted to (the base URL without a trailing slash).
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Posts a transaction Bundle built by [`bundle::transaction_bundle`] and classifies the
    /// answer.
    pub async fn post_transaction(&self, bundle: &Bundle<'_>) -> Outcome {
        match self
            .post_raw(bundle.to_json(), Some(bundle.identifier()))
            .await
        {
            Ok(resp) => outcome::classify(&resp),
            Err(e) => Outcome::Retry {
                text: e.to_string(),
            },
        }
    }

    /// Posts any body to the FHIR base as `application/fhir+json`, with the configured
    /// credentials, and returns the answer as it came. `request_id`, when given, is sent as
    /// `X-Request-Id` so that the server's logs can be matched with Relais' journal.
    ///
    /// Meant for diagnostics and for tests that must send what [`post_transaction`]
    /// never would (a deliberately invalid bundle).
    ///
    /// [`post_transaction`]: FhirClient::post_transaction
    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        request_id: Option<&str>,
    ) -> Result<RawResponse, PostError> {
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, FHIR_JSON)
            .header(ACCEPT, FHIR_JSON)
            .header("Prefer", "return=minimal")
            .body(body);
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            req = req.header("X-Request-Id", id);
        }
        let mut resp = req.send().await.map_err(|e| self.post_error(&e))?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE);
        let retry_after = header(RETRY_AFTER);
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.post_error(&e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            content_type,
            retry_after,
            body,
            truncated,
        })
    }

    /// Turns a reqwest error into a [`PostError`], explaining TLS failures.
    fn post_error(&self, e: &reqwest::Error) -> PostError {
        let target = self.target.clone();
        if let (Some(tls_err), Some(probe)) = (find_rustls_error(e), &self.probe) {
            let name = self.endpoint.host_str().unwrap_or_default();
            let (problem, text) = relais_tls::explain(tls_err, probe, name, "80");
            let text = match problem {
                TlsProblem::NotTls => format!(
                    "the server did not answer in TLS ({tls_err}); is this port plain HTTP? \
                     then base_url must start with http://"
                ),
                TlsProblem::ClientCertificateRefused if !probe.sent() => format!(
                    "the server requires a client certificate and none was sent; set \
                     client_cert and client_key ({tls_err})"
                ),
                TlsProblem::ClientCertificateRefused => format!(
                    "the server refused the client certificate: check that it is valid, issued \
                     by a CA the server trusts, and registered for Relais ({tls_err})"
                ),
                TlsProblem::UntrustedServerCertificate => format!(
                    "the server certificate is not trusted ({tls_err}); check ca_files: they \
                     must hold the root CA of the server's chain, and its intermediate CA if \
                     the server does not send it"
                ),
                TlsProblem::ServerNameMismatch => format!(
                    "the server certificate is not valid for {name:?}; base_url must use a \
                     name (or IP address) that the certificate holds"
                ),
                _ => text,
            };
            return PostError::Tls {
                target,
                problem,
                text,
            };
        }
        // reqwest's own top line repeats the URL; its sources say what happened.
        let detail = match std::error::Error::source(e) {
            Some(source) => error_chain(source),
            None => e.to_string(),
        };
        if e.is_timeout() || timed_out(e) {
            let (limit, setting) = if e.is_connect() {
                (self.connect_timeout, "connect_timeout_secs")
            } else {
                (self.request_timeout, "request_timeout_secs")
            };
            return PostError::Timeout {
                target,
                secs: limit.as_secs(),
                setting,
            };
        }
        if e.is_connect() {
            return PostError::Connect { target, detail };
        }
        PostError::Exchange { target, detail }
    }
}

/// Files documents on one FHIR server: the bundle builder and the client together, as a sink
/// uses them.
#[derive(Debug)]
pub struct Filer {
    client: FhirClient,
    ipp_system: String,
}

impl Filer {
    /// Checks the settings (including `ipp_system`) and builds the client.
    pub fn new(settings: &Settings) -> Result<Filer, SetupError> {
        let ipp_system = bundle::ipp_system(&settings.ipp_system).map_err(SetupError::IppSystem)?;
        Ok(Filer {
            client: FhirClient::new(settings)?,
            ipp_system,
        })
    }

    /// Builds the transaction of `doc` and posts it. A document that cannot be expressed (no
    /// patient identifier, bad base64...) is [`Outcome::Rejected`] without contacting the server.
    pub async fn file(&self, doc: &DocumentFiling<'_>) -> Outcome {
        match bundle::transaction_bundle(doc, &self.ipp_system) {
            Ok(b) => self.client.post_transaction(&b).await,
            Err(e) => Outcome::Rejected {
                code: e.code().to_string(),
                text: e.to_string(),
            },
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &FhirClient {
        &self.client
    }

    /// The normalised IPP system.
    pub fn ipp_system(&self) -> &str {
        &self.ipp_system
    }
}

/// A TLS configuration with no trust anchor and no client certificate.
fn trust_nothing() -> Result<rustls::ClientConfig, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Http(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Parses and checks the base URL; the endpoint is the base without its trailing slash
/// (`POST [base]`, FHIR R4 `http.html#transaction`).
fn endpoint(base_url: &str) -> Result<Url, SetupError> {
    let bad = |reason: &str| SetupError::BaseUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(base_url.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            "the scheme must be https:// (or http:// on a trusted network)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL: use bearer_token_file or a client certificate",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "a FHIR base URL has no query (?...) and no fragment (#...)",
        ));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(if path.is_empty() { "/" } else { &path });
    Ok(url)
}

/// Reads a bearer token: one line of visible ASCII (RFC 6750 `b64token`), surrounding blanks
/// ignored. The token is never quoted in an error.
fn read_token(path: &Path) -> Result<HeaderValue, SetupError> {
    let bad = |reason: &str| SetupError::TokenFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&format!("cannot read: {e}")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(bad("the file is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "the token must be a single line of visible ASCII characters (no spaces)",
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| bad("the token cannot be sent in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The rustls error somewhere in an error's source chain. tokio-rustls puts it inside an
/// `io::Error`, which hyper-rustls wraps in another `io::Error`; `io::Error::source` skips the
/// error it wraps, so those are opened with `get_ref`.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Whether an error's chain holds a timeout (hyper-util reports a connect timeout as an
/// `io::Error` of kind `TimedOut`).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                cur = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        cur = err.source();
    }
    false
}

/// An error and its sources, `: `-separated, without repeats (reqwest's top level says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for (base, want) in [
            ("https://dpi.example/fhir/", "https://dpi.example/fhir"),
            ("https://dpi.example/fhir", "https://dpi.example/fhir"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            (
                " https://dpi.example:8443/a/b// ",
                "https://dpi.example:8443/a/b",
            ),
        ] {
            assert_eq!(endpoint(base).unwrap().as_str(), want);
        }
        for bad in [
            "dpi.example/fhir",
            "ftp://dpi.example/",
            "https://user:pw@dpi.example/",
            "https://dpi.example/fhir?x=1",
            "https://dpi.example/fhir#f",
        ] {
            assert!(
                matches!(endpoint(bad), Err(SetupError::BaseUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_checks() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");

        let mut s = Settings::new("http://127.0.0.1:9/fhir", "1.2.3");
        s.client_cert = Some(dir.path().join("c.pem"));
        assert!(matches!(
            FhirClient::new(&s),
            Err(SetupError::ClientCertIncomplete)
        ));
        s.client_key = Some(dir.path().join("k.pem"));
        assert!(matches!(
            FhirClient::new(&s),
            Err(SetupError::TlsOverHttp {
                what: "client_cert"
            })
        ));

        let mut s = Settings::new("https://127.0.0.1:9/fhir", "1.2.3");
        assert!(matches!(FhirClient::new(&s), Err(SetupError::NoCaFiles)));
        s.ca_files = vec![dir.path().join("missing.pem")];
        let err = FhirClient::new(&s).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let mut s = Settings::new("http://127.0.0.1:9/fhir", "1.2.3");
        s.bearer_token_file = Some(token.clone());
        assert!(matches!(
            FhirClient::new(&s),
            Err(SetupError::TokenFile { .. })
        ));
        std::fs::write(&token, "secret token\n").unwrap();
        let err = FhirClient::new(&s).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
        std::fs::write(&token, "  s3cr3t-T0ken.x_y~z+/=\n").unwrap();
        let c = FhirClient::new(&s).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let s = Settings::new("http://127.0.0.1:9/fhir", "IPP of the hospital");
        assert!(matches!(Filer::new(&s), Err(SetupError::IppSystem(_))));
        let f = Filer::new(&Settings::new("http://127.0.0.1:9/fhir", "1.2.3")).unwrap();
        assert_eq!(f.ipp_system(), "urn:oid:1.2.3");
    }
}
