//! Stable codes of the SMTP client's errors (the `SMTP-*` catalogue).

/// The configuration cannot work as written (empty CA list, bad server name, bad DSN ENVID).
pub const CONFIG: &str = "SMTP-CONFIG";
/// A sender or recipient address is not a plain ASCII `local@domain` (it would not be safe to
/// put in an SMTP command), or no recipient was given.
pub const ADDRESS: &str = "SMTP-ADDRESS";
/// A CA file is unreadable, not PEM, or holds no certificate.
pub const CA_FILE: &str = "SMTP-CA-FILE";
/// The client certificate chain or key is unreadable, not PEM, or the key does not match.
pub const CLIENT_CERT_FILE: &str = "SMTP-CLIENT-CERT-FILE";
/// The TCP connection failed (refused, unreachable, DNS).
pub const CONNECT: &str = "SMTP-CONNECT";
/// A phase exceeded its time limit.
pub const TIMEOUT: &str = "SMTP-TIMEOUT";
/// The server certificate does not chain to a configured CA.
pub const TLS_UNTRUSTED: &str = "SMTP-TLS-UNTRUSTED";
/// The server certificate does not name the host.
pub const TLS_NAME_MISMATCH: &str = "SMTP-TLS-NAME-MISMATCH";
/// The server certificate is expired or not yet valid.
pub const TLS_CERT_DATES: &str = "SMTP-TLS-CERT-DATES";
/// The server certificate is revoked.
pub const TLS_CERT_REVOKED: &str = "SMTP-TLS-CERT-REVOKED";
/// The server certificate is unusable for another reason.
pub const TLS_CERT_INVALID: &str = "SMTP-TLS-CERT-INVALID";
/// The server refused the client certificate (or wanted one and got none).
pub const TLS_CLIENT_CERT_REFUSED: &str = "SMTP-TLS-CLIENT-CERT-REFUSED";
/// The server did not answer in TLS (implicit TLS used on a clear-text port).
pub const TLS_NOT_TLS: &str = "SMTP-TLS-NOT-TLS";
/// The TLS handshake failed for another reason.
pub const TLS_HANDSHAKE: &str = "SMTP-TLS-HANDSHAKE";
/// The server does not offer STARTTLS (Relais never sends mail in clear text).
pub const STARTTLS_UNAVAILABLE: &str = "SMTP-STARTTLS-UNAVAILABLE";
/// The server refused the credentials.
pub const AUTH: &str = "SMTP-AUTH";
/// Credentials are configured but the server offers no usable SASL mechanism (PLAIN, LOGIN).
pub const AUTH_UNAVAILABLE: &str = "SMTP-AUTH-UNAVAILABLE";
/// The server answered a command (greeting, EHLO, MAIL, RCPT, DATA) with a 4xx or 5xx reply.
pub const REJECTED: &str = "SMTP-REJECTED";
/// The message is larger than the server's announced SIZE limit.
pub const MESSAGE_TOO_LARGE: &str = "SMTP-MESSAGE-TOO-LARGE";
/// The message has 8-bit bytes and the server does not announce 8BITMIME.
pub const EIGHT_BIT_UNSUPPORTED: &str = "SMTP-8BIT-UNSUPPORTED";
/// A DSN was required and the server does not announce DSN.
pub const DSN_UNSUPPORTED: &str = "SMTP-DSN-UNSUPPORTED";
/// The connection broke (closed by the server, reset).
pub const CONNECTION_LOST: &str = "SMTP-CONNECTION-LOST";
/// The server's answer could not be understood.
pub const PROTOCOL: &str = "SMTP-PROTOCOL";
