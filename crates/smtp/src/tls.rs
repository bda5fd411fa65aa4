//! TLS set-up: trust only the configured CA files, present the client certificate when the
//! server asks, remember what happened during the handshake, and explain rustls errors.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

use crate::config::{ClientCertFiles, SmtpConfig};
use crate::error::{SmtpError, TlsProblem};

/// What the handshake revealed about client certificates.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The server asked for a client certificate.
    pub requested: AtomicBool,
    /// A client certificate was offered (one is configured and suits the server's algorithms).
    pub sent: AtomicBool,
}

/// A ready TLS connector for one [`SmtpConfig`].
pub(crate) struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    /// The name the server certificate is checked against.
    pub server_name: String,
    pub probe: Arc<Probe>,
}

impl TlsSetup {
    pub fn new(cfg: &SmtpConfig) -> Result<TlsSetup, SmtpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let name = cfg.tls_server_name.as_deref().unwrap_or(&cfg.host).trim();
        if ServerName::try_from(name.to_string()).is_err() {
            return Err(SmtpError::Config {
                reason: format!(
                    "{name:?} is neither a DNS name nor an IP address usable for TLS; check host / tls_server_name"
                ),
            });
        }
        if cfg.ca_pem_files.is_empty() {
            return Err(SmtpError::Config {
                reason: "ca_pem_files is empty: list the PEM files of the IGC-Santé CA \
                         certificates (the system trust store is never used)"
                    .into(),
            });
        }
        let mut roots = RootCertStore::empty();
        for path in &cfg.ca_pem_files {
            for cert in read_certs(path).map_err(|reason| SmtpError::CaFile {
                path: path.clone(),
                reason,
            })? {
                roots.add(cert).map_err(|e| SmtpError::CaFile {
                    path: path.clone(),
                    reason: format!("a certificate cannot be used as a trust anchor: {e}"),
                })?;
            }
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| SmtpError::Config {
                    reason: format!("cannot build the certificate verifier: {e}"),
                })?;
        let identity = match &cfg.client_cert {
            Some(files) => Some(Arc::new(load_identity(files, &provider)?)),
            None => None,
        };
        let probe = Arc::new(Probe::default());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SmtpError::Config {
                reason: format!("TLS protocol versions: {e}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { inner: verifier }))
            .with_client_cert_resolver(Arc::new(Resolver {
                identity,
                probe: probe.clone(),
            }));
        Ok(TlsSetup {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name: name.to_string(),
            probe,
        })
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

fn load_identity(
    files: &ClientCertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, SmtpError> {
    let chain = read_certs(&files.chain_pem).map_err(|reason| SmtpError::ClientCertFile {
        path: files.chain_pem.clone(),
        reason,
    })?;
    let key_err = |reason: String| SmtpError::ClientCertFile {
        path: files.key_pem.clone(),
        reason,
    };
    let bytes = std::fs::read(&files.key_pem).map_err(|e| key_err(format!("cannot read: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| key_err(format!("no usable private key in PEM: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            key_err("the private key does not belong to the first certificate of the chain".into()),
        ),
        _ => Ok(certified),
    }
}

/// The webpki verifier (a wrapper, so that the chain check stays the stock one).
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Presents the configured client certificate when the server asks, recording that it asked.
#[derive(Debug)]
struct Resolver {
    identity: Option<Arc<CertifiedKey>>,
    probe: Arc<Probe>,
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.probe.requested.store(true, Ordering::SeqCst);
        let identity = self.identity.as_ref()?;
        if identity.key.choose_scheme(sigschemes).is_some() {
            self.probe.sent.store(true, Ordering::SeqCst);
        }
        Some(identity.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The rustls error inside an I/O error from the TLS stream, if any.
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Turns a TLS failure into an error with an actionable explanation.
pub(crate) fn explain(err: &rustls::Error, probe: &Probe, name: &str) -> SmtpError {
    let requested = probe.requested.load(Ordering::SeqCst);
    let sent = probe.sent.load(Ordering::SeqCst);
    let (problem, detail) = match err {
        rustls::Error::InvalidCertificate(ce) => certificate(ce, name),
        rustls::Error::AlertReceived(alert) => {
            let about_client_cert = matches!(
                alert,
                AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA
                    | AlertDescription::AccessDenied
            ) || (*alert == AlertDescription::HandshakeFailure
                && requested);
            if about_client_cert && !sent {
                (
                    TlsProblem::ClientCertificateRefused,
                    format!(
                        "the server requires a client certificate and none was sent (alert \
                         {alert:?}); set client_cert to the mailbox's IGC-Santé certificate and key"
                    ),
                )
            } else if about_client_cert {
                (
                    TlsProblem::ClientCertificateRefused,
                    format!(
                        "the server refused the client certificate (alert {alert:?}); check that \
                         it is valid, not revoked, issued by an IGC-Santé CA the server trusts, \
                         and registered for this mailbox"
                    ),
                )
            } else if *alert == AlertDescription::ProtocolVersion {
                (
                    TlsProblem::Handshake,
                    "no TLS version in common with the server (Relais speaks TLS 1.2 and 1.3)"
                        .into(),
                )
            } else {
                (
                    TlsProblem::Handshake,
                    format!("the server aborted the TLS handshake (alert {alert:?})"),
                )
            }
        }
        rustls::Error::PeerIncompatible(p) => (
            TlsProblem::Handshake,
            format!(
                "the server's TLS offer is incompatible ({p:?}); it needs TLS 1.2+ with modern cipher suites"
            ),
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            TlsProblem::NotTls,
            format!(
                "the server did not answer in TLS ({err}); is this an implicit-TLS port? use \
                 security = StartTls for a port that starts in clear text (25, 587)"
            ),
        ),
        rustls::Error::NoCertificatesPresented => (
            TlsProblem::ServerCertificateInvalid,
            "the server presented no certificate".into(),
        ),
        other => (TlsProblem::Handshake, format!("TLS failure: {other}")),
    };
    SmtpError::Tls { problem, detail }
}

fn certificate(ce: &CertificateError, name: &str) -> (TlsProblem, String) {
    match ce {
        CertificateError::UnknownIssuer => (
            TlsProblem::UntrustedServerCertificate,
            "server certificate not trusted: unknown issuer; check ca_pem_files (they must hold \
             the IGC-Santé root CA of the server's chain, and its intermediate CA if the server \
             does not send it)"
                .into(),
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            TlsProblem::ServerNameMismatch,
            format!(
                "server certificate is not valid for {name:?}; check host, or set \
                 tls_server_name to a name the certificate holds"
            ),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            TlsProblem::ServerCertificateDates,
            "server certificate has expired; the operator must renew it (or the local clock is \
             wrong)"
                .into(),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            TlsProblem::ServerCertificateDates,
            "server certificate is not valid yet; check the local clock".into(),
        ),
        CertificateError::Revoked => (
            TlsProblem::ServerCertificateRevoked,
            "server certificate is revoked; contact the operator".into(),
        ),
        other => (
            TlsProblem::ServerCertificateInvalid,
            format!("server certificate is unusable: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_alerts_are_explained() {
        let probe = Probe::default();
        probe.requested.store(true, Ordering::SeqCst);
        let e = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            &probe,
            "h",
        );
        assert_eq!(e.code(), crate::codes::TLS_CLIENT_CERT_REFUSED);
        assert!(e.to_string().contains("none was sent"), "{e}");
        probe.sent.store(true, Ordering::SeqCst);
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
