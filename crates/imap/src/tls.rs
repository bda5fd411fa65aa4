//! TLS set-up for IMAP: the shared rules of `relais-tls` (trust only the configured CA files,
//! present the client certificate when asked, record the handshake for the connection report,
//! explain rustls errors), with its errors mapped to [`ImapError`] and [`TlsProblem`].

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use relais_tls::{ClientCertPaths, SetupError};
pub(crate) use relais_tls::{Probe, rustls_error};

use crate::config::ImapConfig;
use crate::error::{ImapError, TlsProblem};

/// A ready TLS client configuration for one [`ImapConfig`].
pub(crate) struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub probe: Arc<Probe>,
    /// Number of trusted CA certificates loaded.
    pub trusted_cas: usize,
    /// Number of certificates in the configured client chain.
    pub client_chain_len: Option<usize>,
}

impl TlsSetup {
    pub fn new(cfg: &ImapConfig) -> Result<TlsSetup, ImapError> {
        let name = cfg.tls_server_name.as_deref().unwrap_or(&cfg.host);
        let server_name = relais_tls::server_name(name).map_err(setup_error)?;
        let client_cert = cfg.client_cert.as_ref().map(|files| ClientCertPaths {
            chain_pem: &files.cert_chain_pem,
            key_pem: &files.key_pem,
        });
        let tls = relais_tls::client_config(&cfg.ca_pem_files, client_cert).map_err(setup_error)?;
        Ok(TlsSetup {
            config: tls.config,
            server_name,
            probe: tls.probe,
            trusted_cas: tls.trusted_cas,
            client_chain_len: tls.client_chain_len,
        })
    }
}

/// The IMAP error for a configuration `relais-tls` cannot build.
fn setup_error(e: SetupError) -> ImapError {
    match e {
        SetupError::CaFile { path, reason } => ImapError::CaFile { path, reason },
        SetupError::ClientCertFile { path, reason } => ImapError::ClientCertFile { path, reason },
        other => ImapError::Config {
            reason: other.to_string(),
        },
    }
}

/// Turns a TLS failure into a problem kind and an actionable explanation.
pub(crate) fn explain(err: &rustls::Error, probe: &Probe, name: &str) -> (TlsProblem, String) {
    let (problem, detail) = relais_tls::explain(err, probe, name, "143");
    (problem_of(problem), detail)
}

/// The IMAP problem kind for a `relais-tls` one (the variants are the same).
fn problem_of(p: relais_tls::TlsProblem) -> TlsProblem {
    use relais_tls::TlsProblem as P;
    match p {
        P::UntrustedServerCertificate => TlsProblem::UntrustedServerCertificate,
        P::ServerNameMismatch => TlsProblem::ServerNameMismatch,
        P::ServerCertificateExpired => TlsProblem::ServerCertificateExpired,
        P::ServerCertificateNotYetValid => TlsProblem::ServerCertificateNotYetValid,
        P::ServerCertificateRevoked => TlsProblem::ServerCertificateRevoked,
        P::ServerCertificateInvalid => TlsProblem::ServerCertificateInvalid,
        P::ClientCertificateRefused => TlsProblem::ClientCertificateRefused,
        P::HandshakeRefused => TlsProblem::HandshakeRefused,
        P::NotTls => TlsProblem::NotTls,
        P::Other => TlsProblem::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};
    use std::sync::atomic::Ordering;

    #[test]
    fn alerts_about_client_certificates_are_explained() {
        let probe = Probe::default();
        probe.client_cert_requested.store(true, Ordering::SeqCst);
        let (p, msg) = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            &probe,
            "h",
        );
        assert_eq!(p, TlsProblem::ClientCertificateRefused);
        assert!(
            msg.contains("none was sent") && msg.contains("client_cert"),
            "{msg}"
        );
        probe.client_cert_sent.store(true, Ordering::SeqCst);
        let (p, msg) = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRevoked),
            &probe,
            "h",
        );
        assert_eq!(p, TlsProblem::ClientCertificateRefused);
        assert!(msg.contains("refused the client certificate"), "{msg}");
        let (p, _) = explain(
            &rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
            &Probe::default(),
            "h",
        );
        assert_eq!(p, TlsProblem::HandshakeRefused);
    }

    #[test]
    fn certificate_errors_are_explained() {
        let probe = Probe::default();
        let cases = [
            (
                CertificateError::UnknownIssuer,
                TlsProblem::UntrustedServerCertificate,
            ),
            (
                CertificateError::NotValidForName,
                TlsProblem::ServerNameMismatch,
            ),
            (
                CertificateError::Expired,
                TlsProblem::ServerCertificateExpired,
            ),
            (
                CertificateError::NotValidYet,
                TlsProblem::ServerCertificateNotYetValid,
            ),
            (
                CertificateError::Revoked,
                TlsProblem::ServerCertificateRevoked,
            ),
            (
                CertificateError::BadSignature,
                TlsProblem::ServerCertificateInvalid,
            ),
        ];
        for (err, want) in cases {
            let (got, msg) = explain(&rustls::Error::InvalidCertificate(err), &probe, "imap.x");
            assert_eq!(got, want, "{msg}");
            assert!(msg.starts_with("server certificate"), "{msg}");
        }
    }

    #[test]
    fn passwords_do_not_show_in_debug() {
        let auth = crate::Auth::Password {
            user: "bal@hopital.test".into(),
            password: "s3cr3t".into(),
        };
        let dbg = format!("{auth:?}");
        assert!(
            dbg.contains("bal@hopital.test") && !dbg.contains("s3cr3t"),
            "{dbg}"
        );
    }
}
