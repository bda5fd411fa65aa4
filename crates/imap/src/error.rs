//! Errors of the IMAP client, each with a stable code (see [`crate::codes`]) and a message that
//! says what to check.

use std::path::PathBuf;
use std::time::Duration;

use crate::codes;

/// What went wrong in a TLS handshake, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The server's certificate chain does not lead to a CA of `ca_pem_files`.
    UntrustedServerCertificate,
    /// The server's certificate does not name the host (or `tls_server_name`).
    ServerNameMismatch,
    /// The server's certificate has expired.
    ServerCertificateExpired,
    /// The server's certificate is not valid yet (or the local clock is wrong).
    ServerCertificateNotYetValid,
    /// The server's certificate is revoked.
    ServerCertificateRevoked,
    /// The server's certificate is unusable for another reason (signature, key usage, encoding).
    ServerCertificateInvalid,
    /// The server refused the client certificate, or wanted one and got none.
    ClientCertificateRefused,
    /// The server aborted the handshake (no common protocol version or cipher suite, ...).
    HandshakeRefused,
    /// The server did not answer in TLS at all (a clear-text port used with implicit TLS).
    NotTls,
    /// Anything else (connection reset during the handshake, ...).
    Other,
}

impl TlsProblem {
    /// The stable code of this problem.
    pub fn code(self) -> &'static str {
        match self {
            TlsProblem::UntrustedServerCertificate => codes::TLS_UNTRUSTED,
            TlsProblem::ServerNameMismatch => codes::TLS_NAME_MISMATCH,
            TlsProblem::ServerCertificateExpired | TlsProblem::ServerCertificateNotYetValid => {
                codes::TLS_CERT_DATES
            }
            TlsProblem::ServerCertificateRevoked => codes::TLS_CERT_REVOKED,
            TlsProblem::ServerCertificateInvalid => codes::TLS_CERT_INVALID,
            TlsProblem::ClientCertificateRefused => codes::TLS_CLIENT_CERT_REFUSED,
            TlsProblem::NotTls => codes::TLS_NOT_TLS,
            TlsProblem::HandshakeRefused | TlsProblem::Other => codes::TLS_HANDSHAKE,
        }
    }
}

/// An error of the IMAP client. [`ImapError::code`] gives its stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// The configuration cannot work as written.
    #[error("invalid IMAP configuration: {reason}")]
    Config {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A CA file of `ca_pem_files` cannot be used.
    #[error(
        "CA file {path}: {reason}; ca_pem_files must list readable PEM files holding the IGC-Santé CA certificates"
    )]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The client certificate or key file cannot be used.
    #[error(
        "client certificate {path}: {reason}; check client_cert (PEM certificate chain and its private key)"
    )]
    ClientCertFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The TCP connection failed.
    #[error(
        "cannot connect to {addr}: {reason}; check host, port and that a firewall lets the connection through"
    )]
    Connect {
        /// `host:port`.
        addr: String,
        /// The system's reason.
        reason: String,
    },
    /// A phase took longer than its time limit.
    #[error(
        "timeout after {after:?} during {phase}; the server or the network is too slow or drops packets"
    )]
    Timeout {
        /// The phase (`"TCP connection"`, `"TLS handshake"`, `"UID FETCH"`, ...).
        phase: &'static str,
        /// The limit that was reached.
        after: Duration,
    },
    /// The TLS handshake failed or was aborted by the server.
    #[error("TLS: {detail}")]
    Tls {
        /// The kind of failure.
        problem: TlsProblem,
        /// The explanation, with what to check.
        detail: String,
    },
    /// The server answered STARTTLS with something other than OK.
    #[error(
        "the server refused STARTTLS ({server}); use security = Tls on the implicit TLS port (993) instead"
    )]
    StartTlsRefused {
        /// The server's answer.
        server: String,
    },
    /// The server's greeting is not `* OK` (e.g. `* BYE`).
    #[error("the server refused the connection in its greeting: {server}")]
    Greeting {
        /// The server's answer.
        server: String,
    },
    /// The server refused the login because the TLS client certificate is missing or invalid.
    #[error(
        "the server requires a valid client certificate and refused the login ({server}); {hint}"
    )]
    ClientCertificateRequired {
        /// The server's answer.
        server: String,
        /// What to check.
        hint: &'static str,
    },
    /// The server refused the credentials.
    #[error(
        "authentication refused for {user} ({server}); check the login and password (or the certificate for EXTERNAL)"
    )]
    AuthFailed {
        /// Login name (never the password).
        user: String,
        /// The server's answer.
        server: String,
    },
    /// The configured mailbox cannot be selected.
    #[error("cannot select the mailbox {mailbox:?} ({server}); check the mailbox name")]
    Mailbox {
        /// Mailbox name.
        mailbox: String,
        /// The server's answer.
        server: String,
    },
    /// A command was refused (`NO` or `BAD`).
    #[error("the server refused {command} ({server})")]
    Command {
        /// The command (never its arguments' content).
        command: &'static str,
        /// The server's answer.
        server: String,
    },
    /// The connection broke.
    #[error("connection lost during {during}: {reason}; the engine reconnects")]
    ConnectionLost {
        /// The phase or command.
        during: &'static str,
        /// The underlying error.
        reason: String,
    },
    /// The server's answer cannot be understood.
    #[error("unexpected server answer during {during}: {detail}")]
    Protocol {
        /// The phase or command.
        during: &'static str,
        /// What was unexpected.
        detail: String,
    },
    /// A message is bigger than `max_message_bytes`.
    #[error(
        "message UID {uid} is {size} bytes, more than max_message_bytes ({limit}); raise the limit or move it away by hand"
    )]
    MessageTooLarge {
        /// Its UID.
        uid: u32,
        /// Its size according to the server.
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// A mailbox command was used before [`crate::Session::select`].
    #[error("no mailbox selected: call select() first")]
    NotSelected,
    /// An earlier failure left the connection in an unknown state.
    #[error("the IMAP session is unusable after an earlier failure; reconnect")]
    SessionBroken,
}

impl ImapError {
    /// The stable code of this error (one of [`crate::codes`]).
    pub fn code(&self) -> &'static str {
        match self {
            ImapError::Config { .. } => codes::CONFIG,
            ImapError::CaFile { .. } => codes::CA_FILE,
            ImapError::ClientCertFile { .. } => codes::CLIENT_CERT_FILE,
            ImapError::Connect { .. } => codes::CONNECT,
            ImapError::Timeout { .. } => codes::TIMEOUT,
            ImapError::Tls { problem, .. } => problem.code(),
            ImapError::StartTlsRefused { .. } => codes::STARTTLS_REFUSED,
            ImapError::Greeting { .. } => codes::GREETING,
            ImapError::ClientCertificateRequired { .. } => codes::CLIENT_CERT_REQUIRED,
            ImapError::AuthFailed { .. } => codes::AUTH_FAILED,
            ImapError::Mailbox { .. } => codes::MAILBOX,
            ImapError::Command { .. } => codes::COMMAND_REFUSED,
            ImapError::ConnectionLost { .. } => codes::CONNECTION_LOST,
            ImapError::Protocol { .. } => codes::PROTOCOL,
            ImapError::MessageTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            ImapError::NotSelected => codes::NOT_SELECTED,
            ImapError::SessionBroken => codes::SESSION_BROKEN,
        }
    }

    /// Whether retrying later on a new connection may help (network, timeouts, server
    /// hiccups), as opposed to a configuration or trust problem that needs a human.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ImapError::Connect { .. }
                | ImapError::Timeout { .. }
                | ImapError::ConnectionLost { .. }
                | ImapError::SessionBroken
                | ImapError::Greeting { .. }
                | ImapError::Tls {
                    problem: TlsProblem::Other,
                    ..
                }
        )
    }
}
