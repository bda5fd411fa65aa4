//! Stable codes of the IMAP client's errors and connection-test steps (the catalogue).

/// The configuration cannot work as written (e.g. EXTERNAL without a client certificate).
pub const CONFIG: &str = "IMAP-CONFIG";
/// A CA file is unreadable, not PEM, or holds no certificate.
pub const CA_FILE: &str = "IMAP-CA-FILE";
/// The client certificate chain or key is unreadable, not PEM, or the key does not match.
pub const CLIENT_CERT_FILE: &str = "IMAP-CLIENT-CERT-FILE";
/// The TCP connection failed (refused, unreachable, DNS).
pub const CONNECT: &str = "IMAP-CONNECT";
/// A phase exceeded its time limit.
pub const TIMEOUT: &str = "IMAP-TIMEOUT";
/// The server certificate does not chain to a configured CA.
pub const TLS_UNTRUSTED: &str = "IMAP-TLS-UNTRUSTED";
/// The server certificate does not name the host.
pub const TLS_NAME_MISMATCH: &str = "IMAP-TLS-NAME-MISMATCH";
/// The server certificate is expired or not yet valid.
pub const TLS_CERT_DATES: &str = "IMAP-TLS-CERT-DATES";
/// The server certificate is revoked.
pub const TLS_CERT_REVOKED: &str = "IMAP-TLS-CERT-REVOKED";
/// The server certificate is unusable for another reason.
pub const TLS_CERT_INVALID: &str = "IMAP-TLS-CERT-INVALID";
/// The server refused the client certificate (or wanted one and got none) during TLS.
pub const TLS_CLIENT_CERT_REFUSED: &str = "IMAP-TLS-CLIENT-CERT-REFUSED";
/// The server did not answer in TLS (implicit TLS used on a clear-text port).
pub const TLS_NOT_TLS: &str = "IMAP-TLS-NOT-TLS";
/// The TLS handshake failed for another reason.
pub const TLS_HANDSHAKE: &str = "IMAP-TLS-HANDSHAKE";
/// The server refused STARTTLS.
pub const STARTTLS_REFUSED: &str = "IMAP-STARTTLS-REFUSED";
/// The server greeting was not OK.
pub const GREETING: &str = "IMAP-GREETING";
/// The server refused the login because the client certificate is missing or not accepted.
pub const CLIENT_CERT_REQUIRED: &str = "IMAP-CLIENT-CERT-REQUIRED";
/// The server refused the credentials.
pub const AUTH_FAILED: &str = "IMAP-AUTH-FAILED";
/// The configured mailbox cannot be selected.
pub const MAILBOX: &str = "IMAP-MAILBOX";
/// The server refused a command.
pub const COMMAND_REFUSED: &str = "IMAP-COMMAND-REFUSED";
/// The connection broke.
pub const CONNECTION_LOST: &str = "IMAP-CONNECTION-LOST";
/// The server's answer could not be understood.
pub const PROTOCOL: &str = "IMAP-PROTOCOL";
/// A message is bigger than the configured limit.
pub const MESSAGE_TOO_LARGE: &str = "IMAP-MESSAGE-TOO-LARGE";
/// A mailbox command was used before selecting the mailbox.
pub const NOT_SELECTED: &str = "IMAP-NOT-SELECTED";
/// The session is unusable after an earlier failure.
pub const SESSION_BROKEN: &str = "IMAP-SESSION-BROKEN";
