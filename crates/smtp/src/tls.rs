//! TLS set-up for SMTP: the shared rules of `relais-tls` (trust only the configured CA files,
//! present the client certificate when the server asks, remember what happened during the
//! handshake, explain rustls errors), with its errors mapped to [`SmtpError`] and [`TlsProblem`].

use std::sync::Arc;

use relais_tls::{ClientCertPaths, SetupError};
pub(crate) use relais_tls::{Probe, rustls_error};

use crate::config::SmtpConfig;
use crate::error::{SmtpError, TlsProblem};

/// A ready TLS connector for one [`SmtpConfig`].
pub(crate) struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    /// The name the server certificate is checked against.
    pub server_name: String,
    pub probe: Arc<Probe>,
}

impl TlsSetup {
    pub fn new(cfg: &SmtpConfig) -> Result<TlsSetup, SmtpError> {
        let name = cfg.tls_server_name.as_deref().unwrap_or(&cfg.host).trim();
        relais_tls::server_name(name).map_err(setup_error)?;
        let client_cert = cfg.client_cert.as_ref().map(|files| ClientCertPaths {
            chain_pem: &files.chain_pem,
            key_pem: &files.key_pem,
        });
        let tls = relais_tls::client_config(&cfg.ca_pem_files, client_cert).map_err(setup_error)?;
        Ok(TlsSetup {
            connector: tokio_rustls::TlsConnector::from(tls.config),
            server_name: name.to_string(),
            probe: tls.probe,
        })
    }
}

/// The SMTP error for a configuration `relais-tls` cannot build.
fn setup_error(e: SetupError) -> SmtpError {
    match e {
        SetupError::CaFile { path, reason } => SmtpError::CaFile { path, reason },
        SetupError::ClientCertFile { path, reason } => SmtpError::ClientCertFile { path, reason },
        other => SmtpError::Config {
            reason: other.to_string(),
        },
    }
}

/// Turns a TLS failure into an error with an actionable explanation.
pub(crate) fn explain(err: &rustls::Error, probe: &Probe, name: &str) -> SmtpError {
    let (problem, detail) = relais_tls::explain(err, probe, name, "25, 587");
    SmtpError::Tls {
        problem: problem_of(problem),
        detail,
    }
}

/// The SMTP problem kind for a `relais-tls` one (SMTP reports both date problems as one kind,
/// and every other handshake failure as [`TlsProblem::Handshake`]).
fn problem_of(p: relais_tls::TlsProblem) -> TlsProblem {
    use relais_tls::TlsProblem as P;
    match p {
        P::UntrustedServerCertificate => TlsProblem::UntrustedServerCertificate,
        P::ServerNameMismatch => TlsProblem::ServerNameMismatch,
        P::ServerCertificateExpired | P::ServerCertificateNotYetValid => {
            TlsProblem::ServerCertificateDates
        }
        P::ServerCertificateRevoked => TlsProblem::ServerCertificateRevoked,
        P::ServerCertificateInvalid => TlsProblem::ServerCertificateInvalid,
        P::ClientCertificateRefused => TlsProblem::ClientCertificateRefused,
        P::NotTls => TlsProblem::NotTls,
        P::HandshakeRefused | P::Other => TlsProblem::Handshake,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};
    use std::sync::atomic::Ordering;

    #[test]
    fn client_certificate_alerts_are_explained() {
        let probe = Probe::default();
        probe.client_cert_requested.store(true, Ordering::SeqCst);
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            &probe,
            "h",
        );
        assert_eq!(e.code(), crate::codes::TLS_CLIENT_CERT_REFUSED);
        assert!(e.to_string().contains("none was sent"), "{e}");
        probe.client_cert_sent.store(true, Ordering::SeqCst);
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::UnknownCA),
            &probe,
            "h",
        );
        assert_eq!(e.code(), crate::codes::TLS_CLIENT_CERT_REFUSED);
        assert!(
            e.to_string().contains("refused the client certificate"),
            "{e}"
        );
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
            &Probe::default(),
            "h",
        );
        assert_eq!(e.code(), crate::codes::TLS_HANDSHAKE);
        assert!(e.is_transient());
    }

    #[test]
    fn certificate_errors_are_explained() {
        let cases = [
            (CertificateError::UnknownIssuer, crate::codes::TLS_UNTRUSTED),
            (
                CertificateError::NotValidForName,
                crate::codes::TLS_NAME_MISMATCH,
            ),
            (CertificateError::Expired, crate::codes::TLS_CERT_DATES),
            (CertificateError::NotValidYet, crate::codes::TLS_CERT_DATES),
            (CertificateError::Revoked, crate::codes::TLS_CERT_REVOKED),
            (
                CertificateError::BadSignature,
                crate::codes::TLS_CERT_INVALID,
            ),
        ];
        for (err, want) in cases {
            let e = explain(
                &rustls::Error::InvalidCertificate(err),
                &Probe::default(),
                "smtp.x",
            );
            assert_eq!(e.code(), want, "{e}");
            assert!(!e.is_transient(), "{e}");
        }
    }
}
