//! Client-side TLS shared by the MSSanté clients of Relais (`relais-imap`, `relais-smtp`).
//!
//! Why its own crate: both clients must apply the same trust rules and give the same advice
//! when a handshake fails. The rules: trust only the IGC-Santé CA certificates listed in the
//! configuration (PEM files; the system trust store is never used), present the mailbox's
//! client certificate when the server asks for one, and record what happened during the
//! handshake in a [`Probe`] so that a failure can be explained ("the server wanted a client
//! certificate and none was sent" rather than "handshake failure"). [`explain`] turns a rustls
//! error into a [`TlsProblem`] and a message saying what to check; each client maps the problem
//! to its own stable error codes.
//!
//! Revocation: the CA files may also hold CRLs (`X509 CRL` PEM blocks, as IGC-Santé publishes
//! them; one file may mix CA certificates and CRLs, like Dovecot's `ssl_ca`). When any CRL is
//! given, every certificate of the server's chain must be covered by a CRL of its issuer
//! (revoked: refused; no CRL for one of the CAs: refused, since the status is unknown). A CRL
//! past its next update still applies: the job that refreshes the CRL files must be monitored.
//! Without CRLs no revocation check is made (there is no OCSP).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

/// Why a TLS client configuration cannot be built; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The server name is neither a DNS name nor an IP address.
    #[error(
        "{name:?} is neither a DNS name nor an IP address usable for TLS; check host / tls_server_name"
    )]
    ServerName {
        /// The name as configured.
        name: String,
    },
    /// No CA file is configured (the system trust store is never used as a fallback).
    #[error(
        "ca_pem_files is empty: list the PEM files of the IGC-Santé CA certificates \
         (the system trust store is never used)"
    )]
    NoCaFiles,
    /// A CA file cannot be read or holds no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The client certificate chain or its key cannot be used.
    #[error("client certificate file {}: {reason}", path.display())]
    ClientCertFile {
        /// The file (chain or key).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused to build the verifier or the configuration.
    #[error("{0}")]
    Rustls(String),
}

/// The PEM files of a client certificate ("certificat logiciel" of a mailbox).
#[derive(Debug, Clone, Copy)]
pub struct ClientCertPaths<'a> {
    /// The leaf certificate followed by its intermediate CA(s).
    pub chain_pem: &'a Path,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1 PEM).
    pub key_pem: &'a Path,
}

/// What the handshake revealed, filled in by the verifier and the certificate resolver.
#[derive(Debug, Default)]
pub struct Probe {
    /// The server asked for a client certificate.
    pub client_cert_requested: AtomicBool,
    /// A client certificate was sent (one was configured and suits the server's algorithms).
    pub client_cert_sent: AtomicBool,
    /// Number of certificates the server sent, and the leaf's SHA-256 (upper-case hex, colons).
    pub server_chain: Mutex<Option<(usize, String)>>,
    /// The verifier's verdict on the server chain, when it failed.
    pub verify_error: Mutex<Option<rustls::Error>>,
}

impl Probe {
    /// Whether the server asked for a client certificate.
    pub fn requested(&self) -> bool {
        self.client_cert_requested.load(Ordering::SeqCst)
    }

    /// Whether a client certificate was sent.
    pub fn sent(&self) -> bool {
        self.client_cert_sent.load(Ordering::SeqCst)
    }
}

/// A ready rustls client configuration and what went into it.
pub struct ClientTls {
    /// The configuration: trusted CAs from the files only, client certificate if configured.
    pub config: Arc<ClientConfig>,
    /// Filled in during handshakes made with `config`.
    pub probe: Arc<Probe>,
    /// Number of trusted CA certificates loaded.
    pub trusted_cas: usize,
    /// Number of CRLs loaded from the CA files (0: no revocation check).
    pub crls: usize,
    /// Number of certificates in the configured client chain.
    pub client_chain_len: Option<usize>,
}

/// Checks that `name` can be used as a TLS server name (DNS name or IP address).
pub fn server_name(name: &str) -> Result<ServerName<'static>, SetupError> {
    ServerName::try_from(name.to_string()).map_err(|_| SetupError::ServerName {
        name: name.to_string(),
    })
}

/// Builds a client configuration (ring provider, TLS 1.2 and 1.3) that trusts only the
/// certificates of `ca_pem_files`, checks the server's chain against the CRLs found in the same
/// files (if any), and presents `client_cert` when the server asks for one.
pub fn client_config(
    ca_pem_files: &[PathBuf],
    client_cert: Option<ClientCertPaths<'_>>,
) -> Result<ClientTls, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if ca_pem_files.is_empty() {
        return Err(SetupError::NoCaFiles);
    }
    let mut roots = RootCertStore::empty();
    let mut crls = Vec::new();
    for path in ca_pem_files {
        let ca_err = |reason: String| SetupError::CaFile {
            path: path.clone(),
            reason,
        };
        let (certs, file_crls) = read_certs_and_crls(path).map_err(ca_err)?;
        crls.extend(file_crls);
        for cert in certs {
            roots.add(cert).map_err(|e| {
                ca_err(format!(
                    "a certificate cannot be used as a trust anchor: {e}"
                ))
            })?;
        }
    }
    let trusted_cas = roots.len();
    let n_crls = crls.len();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| SetupError::Rustls(format!("cannot build the certificate verifier: {e}")))?;

    let (identity, client_chain_len) = match client_cert {
        Some(files) => {
            let key = load_identity(files, &provider)?;
            let n = key.cert.len();
            (Some(Arc::new(key)), Some(n))
        }
        None => (None, None),
    };
    let probe = Arc::new(Probe::default());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Rustls(format!("TLS protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            inner: webpki,
            probe: probe.clone(),
        }))
        .with_client_cert_resolver(Arc::new(RecordingResolver {
            identity,
            probe: probe.clone(),
        }));
    Ok(ClientTls {
        config: Arc::new(config),
        probe,
        trusted_cas,
        crls: n_crls,
        client_chain_len,
    })
}

/// Reads the CERTIFICATE and X509 CRL blocks of a CA file; an error when it holds neither.
#[allow(clippy::type_complexity)]
fn read_certs_and_crls(
    path: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        Vec<CertificateRevocationListDer<'static>>,
    ),
    String,
> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() && crls.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok((certs, crls))
}

/// Reads every CERTIFICATE block of a PEM file; an error when there is none.
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

/// Loads the client chain and its key, checking that the key belongs to the leaf.
fn load_identity(
    files: ClientCertPaths<'_>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, SetupError> {
    let chain = read_certs(files.chain_pem).map_err(|reason| SetupError::ClientCertFile {
        path: files.chain_pem.to_path_buf(),
        reason,
    })?;
    let key_err = |reason: String| SetupError::ClientCertFile {
        path: files.key_pem.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(files.key_pem).map_err(|e| key_err(format!("cannot read: {e}")))?;
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

/// The stock webpki verifier, recording the chain it saw and its verdict.
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

/// Locks a probe field, even if a thread panicked while holding it (the data stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// The rustls error inside an I/O error from a TLS stream, if any.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Turns a TLS failure into a problem kind and an actionable explanation.
///
/// `name` is the name the server certificate was checked against; `clear_text_ports` lists the
/// protocol's clear-text ports (e.g. `"143"`), quoted when the server did not answer in TLS.
pub fn explain(
    err: &rustls::Error,
    probe: &Probe,
    name: &str,
    clear_text_ports: &str,
) -> (TlsProblem, String) {
    match err {
        rustls::Error::InvalidCertificate(ce) => explain_certificate(ce, name),
        rustls::Error::AlertReceived(alert) => explain_alert(*alert, probe),
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
                 use security = StartTls for a port that starts in clear text ({clear_text_ports})"
            ),
        ),
        rustls::Error::NoCertificatesPresented => (
            TlsProblem::ServerCertificateInvalid,
            "the server presented no certificate".into(),
        ),
        other => (TlsProblem::Other, format!("TLS failure: {other}")),
    }
}

/// Explains an alert sent by the server, using the probe to tell a missing client certificate
/// from a refused one.
fn explain_alert(alert: AlertDescription, probe: &Probe) -> (TlsProblem, String) {
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
    ) || (alert == AlertDescription::HandshakeFailure && probe.requested());
    if about_client_cert && !probe.sent() {
        (
            TlsProblem::ClientCertificateRefused,
            format!(
                "the server requires a client certificate and none was sent (alert {alert:?}); \
                 set client_cert to the mailbox's IGC-Santé certificate and key"
            ),
        )
    } else if about_client_cert {
        (
            TlsProblem::ClientCertificateRefused,
            format!(
                "the server refused the client certificate (alert {alert:?}); check that it \
                 is valid, not revoked, issued by an IGC-Santé CA the server trusts, and \
                 registered for this mailbox"
            ),
        )
    } else if alert == AlertDescription::ProtocolVersion {
        (
            TlsProblem::HandshakeRefused,
            "no TLS version in common with the server (Relais speaks TLS 1.2 and 1.3)".into(),
        )
    } else {
        (
            TlsProblem::HandshakeRefused,
            format!("the server aborted the TLS handshake (alert {alert:?})"),
        )
    }
}

/// Explains why the server certificate was rejected; `name` is the name it was checked against.
pub fn explain_certificate(ce: &CertificateError, name: &str) -> (TlsProblem, String) {
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
        CertificateError::UnknownRevocationStatus => (
            TlsProblem::ServerCertificateInvalid,
            "revocation status of the server's chain is unknown: the CRLs in ca_pem_files do not \
             cover every CA of the chain; add the CRL of each IGC-Santé CA (the root's ARL and \
             the intermediate's CRL), or no CRL at all"
                .into(),
        ),
        other => (
            TlsProblem::ServerCertificateInvalid,
            format!("server certificate is unusable: {other}"),
        ),
    }
}
