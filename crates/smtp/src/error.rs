//! Errors of the SMTP client, each with a stable code (see [`crate::codes`]), a message that
//! says what to check, and whether retrying later may help ([`SmtpError::is_transient`]).

use std::fmt;
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
    /// The server's certificate has expired or is not valid yet.
    ServerCertificateDates,
    /// The server's certificate is revoked.
    ServerCertificateRevoked,
    /// The server's certificate is unusable for another reason (signature, key usage, encoding).
    ServerCertificateInvalid,
    /// The server refused the client certificate, or wanted one and got none.
    ClientCertificateRefused,
    /// The server did not answer in TLS (a clear-text port used with implicit TLS).
    NotTls,
    /// The server aborted the handshake (no common version or cipher suite), or anything else.
    Handshake,
}

impl TlsProblem {
    /// The stable code of this problem.
    pub fn code(self) -> &'static str {
        match self {
            TlsProblem::UntrustedServerCertificate => codes::TLS_UNTRUSTED,
            TlsProblem::ServerNameMismatch => codes::TLS_NAME_MISMATCH,
            TlsProblem::ServerCertificateDates => codes::TLS_CERT_DATES,
            TlsProblem::ServerCertificateRevoked => codes::TLS_CERT_REVOKED,
            TlsProblem::ServerCertificateInvalid => codes::TLS_CERT_INVALID,
            TlsProblem::ClientCertificateRefused => codes::TLS_CLIENT_CERT_REFUSED,
            TlsProblem::NotTls => codes::TLS_NOT_TLS,
            TlsProblem::Handshake => codes::TLS_HANDSHAKE,
        }
    }
}

/// The SMTP step a server reply or a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The server's greeting.
    Greeting,
    /// `EHLO`.
    Ehlo,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO`.
    RcptTo,
    /// `DATA` (before the message is sent).
    Data,
    /// The reply to the end of the message (the server's verdict on the message itself).
    DataEnd,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::DataEnd => "end of DATA",
        })
    }
}

/// A server reply: the basic code, the enhanced status code (RFC 3463) when given, the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `250`, `451`, `550`...
    pub code: u16,
    /// `2.0.0`, `5.1.1`... when the server sends enhanced status codes.
    pub enhanced: Option<String>,
    /// The reply text (lines joined by spaces). Patient addresses in it are redacted.
    pub text: String,
}

impl Reply {
    /// 4xx: the server asks to try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.enhanced {
            Some(e) => write!(f, "{} {} {}", self.code, e, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// An error of the SMTP client. [`SmtpError::code`] gives its stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The configuration cannot work as written.
    #[error("invalid SMTP configuration: {reason}")]
    Config {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An address cannot be used in an SMTP command (the value is not repeated: it may be a
    /// patient address).
    #[error("{which} is not a plain ASCII local@domain address; {hint}")]
    Address {
        /// Which address (`"the sender"`, `"recipient 2"`, `"the recipient list"`).
        which: String,
        /// What to do.
        hint: &'static str,
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
        /// The phase (`"TCP connection"`, `"TLS handshake"`, `"RCPT TO"`, ...).
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
    /// The server does not offer STARTTLS.
    #[error(
        "the server does not offer STARTTLS, and Relais never sends mail in clear text; use \
         security = ImplicitTls on the submissions port (465), or another server"
    )]
    StartTlsUnavailable,
    /// The server refused the credentials.
    #[error(
        "authentication refused for {user} ({reply}); check the login and password of the mailbox"
    )]
    Auth {
        /// Login name (never the password).
        user: String,
        /// The server's reply.
        reply: Reply,
    },
    /// Credentials are configured but the server offers no usable SASL mechanism.
    #[error(
        "the server offers no SASL mechanism Relais can use (PLAIN or LOGIN) after TLS{offered}; \
         remove auth if the client certificate alone authenticates, or check the port"
    )]
    AuthUnavailable {
        /// `" (offered: ...)"` or empty.
        offered: String,
    },
    /// The server answered a command with a negative reply.
    #[error("the server refused {stage}: {reply}{hint}")]
    Rejected {
        /// Which step.
        stage: Stage,
        /// The server's reply (code and text).
        reply: Reply,
        /// What the reply usually means, when known (starts with `"; "`), or empty.
        hint: &'static str,
    },
    /// The message is larger than the server accepts.
    #[error(
        "the message is {size} bytes and the server accepts at most {limit} (SIZE); send fewer \
         or smaller documents"
    )]
    MessageTooLarge {
        /// Size of the message.
        size: usize,
        /// The server's SIZE limit.
        limit: usize,
    },
    /// The message has 8-bit bytes and the server does not announce 8BITMIME.
    #[error(
        "the message has 8-bit bytes and the server does not announce 8BITMIME; build the \
         message with 7-bit transfer encodings (quoted-printable, base64)"
    )]
    EightBitUnsupported,
    /// A DSN was required and the server does not announce DSN.
    #[error(
        "a delivery status notification was required but the server does not announce DSN \
         (RFC 3461); send without require_dsn, or through another server"
    )]
    DsnUnsupported,
    /// The connection broke.
    #[error("connection lost during {during}: {reason}; retry later")]
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
}

impl SmtpError {
    /// The stable code of this error (one of [`crate::codes`]).
    pub fn code(&self) -> &'static str {
        match self {
            SmtpError::Config { .. } => codes::CONFIG,
            SmtpError::Address { .. } => codes::ADDRESS,
            SmtpError::CaFile { .. } => codes::CA_FILE,
            SmtpError::ClientCertFile { .. } => codes::CLIENT_CERT_FILE,
            SmtpError::Connect { .. } => codes::CONNECT,
            SmtpError::Timeout { .. } => codes::TIMEOUT,
            SmtpError::Tls { problem, .. } => problem.code(),
            SmtpError::StartTlsUnavailable => codes::STARTTLS_UNAVAILABLE,
            SmtpError::Auth { .. } => codes::AUTH,
            SmtpError::AuthUnavailable { .. } => codes::AUTH_UNAVAILABLE,
            SmtpError::Rejected { .. } => codes::REJECTED,
            SmtpError::MessageTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            SmtpError::EightBitUnsupported => codes::EIGHT_BIT_UNSUPPORTED,
            SmtpError::DsnUnsupported => codes::DSN_UNSUPPORTED,
            SmtpError::ConnectionLost { .. } => codes::CONNECTION_LOST,
            SmtpError::Protocol { .. } => codes::PROTOCOL,
        }
    }

    /// Whether sending again later may succeed without a human fixing something: network
    /// failures, timeouts, and 4xx replies (including a 4xx answer to AUTH, "temporary
    /// authentication failure"). 5xx replies, trust and configuration problems are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Connect { .. }
            | SmtpError::Timeout { .. }
            | SmtpError::ConnectionLost { .. }
            | SmtpError::Tls {
                problem: TlsProblem::Handshake,
                ..
            } => true,
            SmtpError::Rejected { reply, .. } | SmtpError::Auth { reply, .. } => {
                reply.is_transient()
            }
            _ => false,
        }
    }

    /// The server's reply, for errors that carry one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SmtpError::Rejected { reply, .. } | SmtpError::Auth { reply, .. } => Some(reply),
            _ => None,
        }
    }
}
