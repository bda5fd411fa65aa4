//! Connection settings of one MSSanté mailbox.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How TLS is set up on the IMAP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS from the first byte (IMAPS, usually port 993). What MSSanté operators offer.
    Tls,
    /// Plain TCP, then `STARTTLS` before anything else (usually port 143). The client never sends
    /// credentials before the TLS handshake succeeded.
    StartTls,
}

/// Files of the client certificate presented during the TLS handshake (the "certificat
/// logiciel" of an applicative mailbox, issued by IGC-Santé).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    /// PEM file with the client certificate first, then its intermediate CA(s).
    pub cert_chain_pem: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
}

/// How the client authenticates at the IMAP level.
///
/// Certificate + password (what many MSSanté operators ask of applicative mailboxes) is
/// [`Auth::Password`] with [`ImapConfig::client_cert`] set: the certificate is checked during the
/// TLS handshake, the password by `LOGIN`.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `LOGIN user password`.
    Password {
        /// Login name, usually the mailbox address.
        user: String,
        /// The password (never logged nor shown by `Debug`).
        password: String,
    },
    /// SASL `EXTERNAL`: the TLS client certificate is the credential; requires
    /// [`ImapConfig::client_cert`].
    External {
        /// Authorization identity to request, if it differs from the certificate's identity.
        authzid: Option<String>,
    },
}

impl Auth {
    /// The login name to show in reports (the authzid or "(from the certificate)").
    pub fn display_user(&self) -> String {
        match self {
            Auth::Password { user, .. } => user.clone(),
            Auth::External { authzid: Some(a) } => a.clone(),
            Auth::External { authzid: None } => "(identity of the client certificate)".into(),
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::External { authzid } => f
                .debug_struct("External")
                .field("authzid", authzid)
                .finish(),
        }
    }
}

/// Time limits of each phase; a phase that takes longer fails with [`crate::ImapError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connection.
    pub connect: Duration,
    /// TLS handshake, server greeting, STARTTLS and login.
    pub handshake: Duration,
    /// Any other command, including fetching a whole message.
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            handshake: Duration::from_secs(20),
            command: Duration::from_secs(120),
        }
    }
}

/// Everything needed to reach and use one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// Server host name or IP address.
    pub host: String,
    /// Server port (993 for [`Security::Tls`], 143 for [`Security::StartTls`]).
    pub port: u16,
    /// Implicit TLS or STARTTLS. There is no clear-text mode.
    pub security: Security,
    /// Name to check the server certificate against, when it differs from `host` (e.g. when
    /// `host` is an IP address or an internal alias).
    pub tls_server_name: Option<String>,
    /// PEM files holding the trusted CA certificates (IGC-Santé roots, and intermediates if the
    /// server does not send them). The system trust store is never used.
    pub ca_pem_files: Vec<PathBuf>,
    /// Client certificate to present when the server asks for one.
    pub client_cert: Option<ClientCertFiles>,
    /// IMAP authentication.
    pub auth: Auth,
    /// Folder read for new mail (usually `INBOX`).
    pub mailbox: String,
    /// Folder where processed mails are moved.
    pub processed_folder: String,
    /// Folder where refused or unreadable mails are moved.
    pub quarantine_folder: String,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Largest message [`crate::Session::fetch`] downloads; bigger ones yield
    /// [`crate::ImapError::MessageTooLarge`].
    pub max_message_bytes: u32,
}

impl ImapConfig {
    /// A configuration with the usual defaults: INBOX, folders `Relais-Traites` and
    /// `Relais-Quarantaine` (flat names: no dependency on the server's hierarchy separator),
    /// default timeouts, 64 MiB message limit.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        security: Security,
        ca_pem_files: Vec<PathBuf>,
        auth: Auth,
    ) -> ImapConfig {
        ImapConfig {
            host: host.into(),
            port,
            security,
            tls_server_name: None,
            ca_pem_files,
            client_cert: None,
            auth,
            mailbox: "INBOX".into(),
            processed_folder: "Relais-Traites".into(),
            quarantine_folder: "Relais-Quarantaine".into(),
            timeouts: Timeouts::default(),
            max_message_bytes: 64 * 1024 * 1024,
        }
    }
}
