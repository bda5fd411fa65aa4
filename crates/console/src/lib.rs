//! The Relais operations console: the web pages an integration engineer opens at 3 a.m.
//!
//! Served by the daemon beside the engine ([`serve`]), over TLS when configured
//! ([`ConsoleConfig`]). It shows
//!
//! - a **dashboard**: counts by state, and per source mailbox and per sink what came in, what
//!   was filed, rejected or is waiting for review, queue depths, last success, last error;
//! - a **message browser** searching by date, state, source, sender, document type and IPP,
//!   always a bounded slice of the journal at a time (paging by message id);
//! - each **message**: every event of its audit trail with its actor, the mail headers that
//!   matter (not the subject: under the CI-SIS convention it names the patient), the
//!   validation report, each CDA document rendered readable ([`cda`]), the PDF, the original
//!   `.eml`;
//! - the **review queue**, where an operator files a document to a patient by IPP (checked
//!   against the patient index) or rejects it, and messages can be **reprocessed**.
//!
//! Every action goes through the engine with the logged-in user's name, so the journal's audit
//! trail says who did it. Accounts are local ([`users`]: Argon2id hashes, roles viewer /
//! operator / admin); sessions live in memory behind `HttpOnly`, `SameSite=Strict` cookies
//! (`Secure` whenever the browser talks HTTPS); every form carries a CSRF token; failed logins
//! are rate-limited; every response carries a same-origin Content-Security-Policy and refuses
//! framing. Pages are written with maud: HTML in Rust, escaped by construction and checked at
//! compile time, with no template files to ship. The one style sheet is compiled in: the console
//! needs no network, no CDN, no JavaScript.
//!
//! `/health` (the process answers) and `/ready` (the journal answers, and the data directory
//! has room: 503 `data directory full` after a write refused for space, until space is freed)
//! need no login, for load balancers and Kubernetes probes.
//!
//! Logs name users, message ids and codes, never patient data.

// Handlers return `Result<_, Response>` (the axum idiom): the error is the page to send, built
// once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod app;
mod auth;
pub mod cda;
mod config;
pub mod metrics;
mod pages;
mod static_files;
pub mod users;
mod views;

pub use config::ConsoleConfig;
pub use users::{Role, UsersError, add_user, load_users};

use relais_engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long the console waits for requests in progress when asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client has to send its first request (slow clients do not hold connections).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Users(#[from] UsersError),
    #[error("the console cannot listen on {address}: {reason}")]
    Bind { address: String, reason: String },
    #[error("console TLS: {0}")]
    Tls(String),
    #[error("console: {0}")]
    Internal(String),
}

/// A running console: where it listens, and its task.
#[derive(Debug)]
pub struct RunningConsole {
    /// The address bound (the real port when the configuration said port 0).
    pub address: SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
    task: tokio::task::JoinHandle<()>,
}

impl RunningConsole {
    /// The console's base URL, e.g. `https://127.0.0.1:8470`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.address
        )
    }

    /// Waits until the console has stopped (after `shutdown` flipped to true and the requests
    /// in progress ended).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts the console for `engine`: binds the listen address, then serves in a background
/// task until `shutdown` flips to true (requests in progress get [`SHUTDOWN_GRACE`] to end).
///
/// Fails before serving anything when the configuration is unusable: accounts file broken,
/// certificate or key unreadable, address taken, or plain HTTP asked on a non-loopback
/// address without `behind_tls_proxy`.
pub async fn serve(
    engine: Arc<Engine>,
    config: ConsoleConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<RunningConsole, ConsoleError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ConsoleError::Config(problems.join("; ")));
    }
    let users_file = config.users_file.clone();
    let directory = tokio::task::spawn_blocking(move || users::Directory::open(&users_file))
        .await
        .map_err(|e| ConsoleError::Internal(e.to_string()))??;
    if directory.users().is_empty() {
        tracing::warn!(
            file = %config.users_file.display(),
            "the console has no account yet: add one with `relais users add NAME --role admin`"
        );
    }
    let address = tokio::net::lookup_host(&config.listen)
        .await
        .map_err(|e| ConsoleError::Bind {
            address: config.listen.clone(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ConsoleError::Bind {
            address: config.listen.clone(),
            reason: "the name resolves to no address".into(),
        })?;
    if !config.tls() && !config.behind_tls_proxy && !address.ip().is_loopback() {
        return Err(ConsoleError::Config(format!(
            "[console] listen = {:?} is not a loopback address and no TLS is configured: give tls_cert and tls_key, or set behind_tls_proxy = true",
            config.listen
        )));
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(address).map_err(|e| ConsoleError::Bind {
        address: config.listen.clone(),
        reason: e.to_string(),
    })?;
    let bound = listener.local_addr().map_err(|e| ConsoleError::Bind {
        address: config.listen.clone(),
        reason: e.to_string(),
    })?;
    let secure_cookies = config.tls() || config.behind_tls_proxy;
    if !secure_cookies {
        tracing::warn!(address = %bound, "console on plain HTTP (loopback only): configure tls_cert and tls_key for any other use");
    }
    let state = app::AppState(Arc::new(app::Inner {
        checker: relais_check::Checker::offline(engine.config().limits.clone()),
        engine,
        directory,
        sessions: auth::Sessions::new(config.idle(), config.max_age()),
        limiter: auth::LoginLimiter::new(),
        secure_cookies,
        tls: tls.is_some(),
        kick_lock: tokio::sync::Mutex::new(()),
        caches: pages::Caches::default(),
    }));
    let service = app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let bind_err = |e: std::io::Error| ConsoleError::Bind {
        address: bound.to_string(),
        reason: e.to_string(),
    };
    let is_tls = tls.is_some();
    let task = match tls {
        Some(rustls) => {
            let server = axum_server::from_tcp_rustls(
                listener,
                axum_server::tls_rustls::RustlsConfig::from_config(rustls),
            )
            .map_err(bind_err)?
            .handle(handle)
            .first_request_timeout(FIRST_REQUEST_TIMEOUT);
            tokio::spawn(async move {
                if let Err(e) = server.serve(service).await {
                    tracing::error!(error = %e, "console stopped on an error");
                }
            })
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(bind_err)?
                .handle(handle)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT);
            tokio::spawn(async move {
                if let Err(e) = server.serve(service).await {
                    tracing::error!(error = %e, "console stopped on an error");
                }
            })
        }
    };
    tracing::info!(address = %bound, tls = is_tls, "console listening");
    Ok(RunningConsole {
        address: bound,
        tls: is_tls,
        task,
    })
}

/// The rustls server configuration from PEM files (ring provider, TLS 1.2 and 1.3, HTTP/1.1).
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, ConsoleError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConsoleError::Tls(format!(
                "cannot read the certificate chain {}: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ConsoleError::Tls(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ConsoleError::Tls(format!(
            "cannot read the private key {}: {e}",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConsoleError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConsoleError::Tls(format!(
                "the certificate and the key do not go together, or one is unusable: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
