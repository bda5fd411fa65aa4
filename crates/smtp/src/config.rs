//! Settings of one SMTP submission server, and of one sending (DSN request).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How TLS is set up on the SMTP connection. There is no clear-text mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS from the first byte (submissions, usually port 465).
    ImplicitTls,
    /// Plain TCP, `EHLO`, then `STARTTLS` before anything else (usually port 587 or 25). The
    /// client refuses to go on when the server does not offer STARTTLS.
    StartTls,
}

/// Files of the client certificate presented during the TLS handshake (the certificate of an
/// applicative mailbox, issued by IGC-Santé).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    /// PEM file with the client certificate first, then its intermediate CA(s).
    pub chain_pem: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
}

/// SASL credentials (`AUTH PLAIN` or `AUTH LOGIN`, only ever inside TLS).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Login name, usually the mailbox address.
    pub user: String,
    /// The password (never logged nor shown by `Debug`).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Time limits of each phase; a phase that takes longer fails with
/// [`crate::SmtpError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connection.
    pub connect: Duration,
    /// Greeting, EHLO, STARTTLS, TLS handshake and AUTH (each).
    pub handshake: Duration,
    /// MAIL FROM, RCPT TO, DATA (each). RFC 5321 suggests 5 minutes.
    pub command: Duration,
    /// Sending the message and waiting for the server's final reply. RFC 5321 suggests 10
    /// minutes for the final reply.
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(30),
            command: Duration::from_secs(120),
            data: Duration::from_secs(600),
        }
    }
}

/// Everything needed to reach and use one submission server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Server host name or IP address.
    pub host: String,
    /// Server port (465 for [`Security::ImplicitTls`], 587 for [`Security::StartTls`]).
    pub port: u16,
    /// Implicit TLS or STARTTLS.
    pub security: Security,
    /// Name to check the server certificate against, when it differs from `host` (e.g. when
    /// `host` is an IP address or an internal alias).
    pub tls_server_name: Option<String>,
    /// PEM files holding the trusted CA certificates (IGC-Santé roots, and intermediates if the
    /// server does not send them). The system trust store is never used.
    pub ca_pem_files: Vec<PathBuf>,
    /// Client certificate to present when the server asks for one.
    pub client_cert: Option<ClientCertFiles>,
    /// SASL authentication after TLS; `None` when the certificate alone authenticates.
    pub auth: Option<Credentials>,
    /// Name given in `EHLO` (this machine's name as the server should see it).
    pub helo_name: String,
    /// Time limits.
    pub timeouts: Timeouts,
}

impl SmtpConfig {
    /// A configuration with default timeouts, no client certificate, no authentication, and
    /// `EHLO localhost`.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        security: Security,
        ca_pem_files: Vec<PathBuf>,
    ) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port,
            security,
            tls_server_name: None,
            ca_pem_files,
            client_cert: None,
            auth: None,
            helo_name: "localhost".into(),
            timeouts: Timeouts::default(),
        }
    }
}

/// When the receiving side should send a delivery status notification (RFC 3461 `NOTIFY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnNotify {
    /// On successful delivery.
    Success,
    /// On failure.
    Failure,
    /// When delivery is delayed.
    Delay,
}

/// What a failure DSN returns of the message (RFC 3461 `RET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    /// The headers only (no patient document travels back).
    Headers,
    /// The whole message.
    Full,
}

/// A request for delivery status notifications (RFC 3461), for outbound documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRequest {
    /// When to notify; empty means `NOTIFY=NEVER`.
    pub notify: Vec<DsnNotify>,
    /// `RET`; `None` leaves it to the server.
    pub ret: Option<DsnReturn>,
    /// `ENVID`: an id of ours that the DSN carries back (`Original-Envelope-Id`), at most 100
    /// printable ASCII characters.
    pub envid: Option<String>,
    /// Also send `ORCPT=rfc822;<recipient>` so that the DSN names each recipient as given.
    pub orcpt: bool,
}

impl DsnRequest {
    /// `NOTIFY=SUCCESS,FAILURE RET=HDRS ENVID=<envid>` with `ORCPT`: what Relais asks for when
    /// sending documents.
    pub fn success_and_failure(envid: impl Into<String>) -> DsnRequest {
        DsnRequest {
            notify: vec![DsnNotify::Success, DsnNotify::Failure],
            ret: Some(DsnReturn::Headers),
            envid: Some(envid.into()),
            orcpt: true,
        }
    }
}

/// Options of one sending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Ask for DSNs when the server announces the DSN extension.
    pub dsn: Option<DsnRequest>,
    /// Fail with [`crate::SmtpError::DsnUnsupported`] rather than send without DSN.
    pub require_dsn: bool,
}
