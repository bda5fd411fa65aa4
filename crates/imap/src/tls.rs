//! TLS set-up: trust only the configured CA files, present the client certificate when asked,
//! record what happened during the handshake (for the connection report), and turn rustls
//! errors into actionable messages.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

use crate::config::{ClientCertFiles, ImapConfig};
use crate::error::{ImapError, TlsProblem};

/// What the handshake revealed, filled in by the verifier and the certificate resolver.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The server asked for a client certificate.
    pub client_cert_requested: AtomicBool,
    /// A client certificate was sent (one was configured and suits the server's algorithms).
    pub client_cert_sent: AtomicBool,
    /// Number of certificates the server sent, and the leaf's SHA-256.
    pub server_chain: Mutex<Option<(usize, String)>>,
    /// The verifier's verdict on the server chain, when it failed.
    pub verify_error: Mutex<Option<rustls::Error>>,
}

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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let name = cfg.tls_server_name.as_deref().unwrap_or(&cfg.host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|_| ImapError::Config {
            reason: format!(
                "{name:?} is neither a DNS name nor an IP address usable for TLS; check host / tls_server_name"
            ),
        })?;

        if cfg.ca_pem_files.is_empty() {
            return Err(ImapError::Config {
                reason:
                    "ca_pem_files is empty: list the PEM files of the IGC-Santé CA certificates \
                         (the system trust store is never used)"
                        .into(),
            });
        }
        let mut roots = RootCertStore::empty();
        for path in &cfg.ca_pem_files {
            for cert in read_certs(path).map_err(|reason| ImapError::CaFile {
                path: path.clone(),
                reason,
            })? {
                roots.add(cert).map_err(|e| ImapError::CaFile {
                    path: path.clone(),
                    reason: format!("a certificate cannot be used as a trust anchor: {e}"),
                })?;
            }
        }
        let trusted_cas = roots.len();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ImapError::Config {
                reason: format!("cannot build the certificate verifier: {e}"),
            })?;

        let probe = Arc::new(Probe::default());
        let (identity, client_chain_len) = match &cfg.client_cert {
            Some(files) => {
                let key = load_identity(files, &provider)?;
                let n = key.cert.len();
                (Some(Arc::new(key)), Some(n))
            }
            None => (None, None),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ImapError::Config {
                reason: format!("TLS protocol versions: {e}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
                inner: webpki,
                probe: probe.clone(),
            }))
            .with_client_cert_resolver(Arc::new(RecordingResolver {
                identity,
                probe: probe.clone(),
            }));
        Ok(TlsSetup {
            config: Arc::new(config),
            server_name,
            probe,
            trusted_cas,
            client_chain_len,
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
) -> Result<CertifiedKey, ImapError> {
    let chain = read_certs(&files.cert_chain_pem).map_err(|reason| ImapError::ClientCertFile {
        path: files.cert_chain_pem.clone(),
        reason,
    })?;
    let key_err = |reason: String| ImapError::ClientCertFile {
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

/// The webpki verifier, recording what it saw.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    probe: Arc<Probe>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        let fingerprint = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        *lock(&self.probe.server_chain) = Some((1 + intermediates.len(), fingerprint));
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(e) = &result {
            *lock(&self.probe.verify_error) = Some(e.clone());
        }
        result
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
struct RecordingResolver {
    identity: Option<Arc<CertifiedKey>>,
    probe: Arc<Probe>,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.probe
            .client_cert_requested
            .store(true, Ordering::SeqCst);
        let identity = self.identity.as_ref()?;
        if identity.key.choose_scheme(sigschemes).is_some() {
            self.probe.client_cert_sent.store(true, Ordering::SeqCst);
        }
        Some(identity.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rustls error inside an I/O error from the TLS stream, if any.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Turns a TLS failure into a problem kind and an actionable explanation.
pub(crate) fn explain(err: &rustls::Error, probe: &Probe, name: &str) -> (TlsProblem, String) {
    let requested = probe.client_cert_requested.load(Ordering::SeqCst);
    let sent = probe.client_cert_sent.load(Ordering::SeqCst);
    match err {
        rustls::Error::InvalidCertificate(ce) => explain_certificate(ce, name),
        rustls::Error::AlertReceived(alert) => {
            let client_side = matches!(
                alert,
                AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA
                    | AlertDescription::AccessDenied
            ) || (*alert == AlertDescription::HandshakeFailure && requested);
            if client_side && !sent {
                (
                    TlsProblem::ClientCertificateRefused,
                    format!(
                        "the server requires a client certificate and none was sent (alert {alert:?}); \
                         set client_cert to the mailbox's IGC-Santé certificate and key"
                    ),
                )
            } else if client_side {
                (
                    TlsProblem::ClientCertificateRefused,
                    format!(
                        "the server refused the client certificate (alert {alert:?}); check that it \
                         is valid, not revoked, issued by an IGC-Santé CA the server trusts, and \
                         registered for this mailbox"
                    ),
                )
            } else if *alert == AlertDescription::ProtocolVersion {
                (
                    TlsProblem::HandshakeRefused,
                    "no TLS version in common with the server (Relais speaks TLS 1.2 and 1.3)"
                        .into(),
                )
            } else {
                (
                    TlsProblem::HandshakeRefused,
                    format!("the server aborted the TLS handshake (alert {alert:?})"),
                )
            }
        }
        rustls::Error::PeerIncompatible(p) => (
            TlsProblem::HandshakeRefused,
            format!(
                "the server's TLS offer is incompatible ({p:?}); it needs TLS 1.2+ with modern cipher suites"
            ),
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            TlsProblem::NotTls,
            format!(
                "the server did not answer in TLS ({err}); is this an implicit-TLS port? \
                 use security = StartTls for a port that starts in clear text (143)"
            ),
        ),
        rustls::Error::NoCertificatesPresented => (
            TlsProblem::ServerCertificateInvalid,
            "the server presented no certificate".into(),
        ),
        other => (TlsProblem::Other, format!("TLS failure: {other}")),
    }
}

fn explain_certificate(ce: &CertificateError, name: &str) -> (TlsProblem, String) {
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
                "server certificate is not valid for {name:?}; check host, or set tls_server_name \
                 to a name the certificate holds"
            ),
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            TlsProblem::ServerCertificateExpired,
            "server certificate has expired; the operator must renew it (or the local clock is wrong)"
                .into(),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            TlsProblem::ServerCertificateNotYetValid,
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
