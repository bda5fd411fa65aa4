//! SMTP submission client of Relais: how the engine sends mail (MDNs, error reports, and later
//! outbound documents) through an MSSanté operator's submission server.
//!
//! Why its own crate: MSSanté submission has rules a generic mailer does not enforce. TLS always
//! (implicit TLS or STARTTLS, never clear text, credentials only inside TLS), trust limited to
//! the IGC-Santé CA files of the configuration (never the system store), the applicative
//! mailbox's client certificate when the operator requires one, SASL PLAIN/LOGIN when it asks
//! for a password too, and DSN requests (RFC 3461) so that outbound documents can be tracked.
//!
//! - [`send`] / [`send_with`] deliver one raw message to a list of recipients and return a
//!   [`SendReport`] (accepted and refused recipients, the server's final reply with its queue
//!   id, TLS parameters, whether DSN parameters were sent).
//! - Failures are [`SmtpError`] values with stable codes ([`codes`]): `SMTP-CONNECT`,
//!   `SMTP-TIMEOUT`, `SMTP-TLS-*`, `SMTP-AUTH`, `SMTP-REJECTED` (with the server's reply code,
//!   enhanced code and text), ...; [`SmtpError::is_transient`] separates what a retry may fix
//!   (network, 4xx) from what needs a human (5xx, trust, configuration).
//!
//! Built on mail-send (reply parsing, SASL, dot-stuffing) with our own rustls configuration
//! (ring provider: no OpenSSL, no aws-lc). Logs carry sizes, counts and reply codes; never
//! message content, subjects, or patient addresses (the local part of an address at
//! `patient.mssante.fr` is the patient's INS: it is redacted from replies and `Debug` output).

mod client;
pub mod codes;
mod config;
mod error;
mod tls;

pub use client::{RecipientRejection, SendReport, TlsSummary, send, send_with};
pub use config::{
    ClientCertFiles, Credentials, DsnNotify, DsnRequest, DsnReturn, Security, SendOptions,
    SmtpConfig, Timeouts,
};
pub use error::{Reply, SmtpError, Stage, TlsProblem};
