//! MSSanté IMAP client of Relais: reads an applicative mailbox (BAL applicative) the way the
//! MSSanté operators expect.
//!
//! Why its own crate: the secure-mail side has rules of its own that a generic IMAP client does
//! not enforce. TLS always (implicit TLS or STARTTLS before any credential), trust limited to the
//! IGC-Santé CA files given in the configuration (never the system store), a client certificate
//! when the operator requires one (certificate + password, or SASL EXTERNAL), mail fetched with
//! `BODY.PEEK[]` so that reading never marks it `\Seen`, and acknowledgement by moving the mail
//! (UID MOVE, or COPY + STORE + UID EXPUNGE) only once the engine has journaled it.
//!
//! - [`connect`] opens an authenticated [`Session`]; [`test_connection`] runs every step and
//!   returns a [`ConnectionReport`] (TCP, TLS, server chain, client certificate, login, select,
//!   folders) whose failing step says what to check.
//! - [`Session`]: [`Session::select`] (UIDVALIDITY, UIDNEXT), [`Session::uids_since`],
//!   [`Session::fetch`], [`Session::move_to`], [`Session::ensure_folder`], [`Session::idle`],
//!   [`Session::logout`].
//!
//! Errors are [`ImapError`] values with stable codes ([`codes`]). Nothing here logs mail content,
//! subjects or addresses of correspondents; logs carry UIDs, sizes and server capabilities.
//!
//! Built on async-imap (tokio) and rustls with the ring provider: no OpenSSL, no aws-lc.

pub mod codes;
mod config;
mod error;
pub mod mutf7;
mod report;
mod session;
mod tls;

pub use config::{Auth, ClientCertFiles, ImapConfig, Security, Timeouts};
pub use error::{ImapError, TlsProblem};
pub use report::{ConnectionReport, Step, StepKind, StepStatus};
pub use session::{
    Fetched, IdleOutcome, MAX_UIDS_PER_COMMAND, MailboxStatus, MoveMethod, ServerCapabilities,
    Session, connect, connect_with_report, test_connection,
};
