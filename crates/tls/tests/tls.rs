//! The configuration builder on a generated IGC-Santé-shaped PKI, and the explanations of
//! rustls errors.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use relais_testsupport::pki::{PkiOptions, TestPki};
use relais_tls::{
    ClientCertPaths, Probe, SetupError, TlsProblem, client_config, explain, rustls_error,
    server_name,
};
use rustls::{AlertDescription, CertificateError};

fn pki(dir: &tempfile::TempDir) -> TestPki {
    TestPki::generate(dir.path(), &PkiOptions::default())
}

#[test]
fn builds_from_the_ca_files_and_the_client_chain() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir);
    let dpi = pki.client("dpi");
    let tls = client_config(
        &[pki.root_ca.clone(), pki.intermediate_ca.clone()],
        Some(ClientCertPaths {
            chain_pem: &dpi.chain,
            key_pem: &dpi.key,
        }),
    )
    .expect("valid CA files and identity");
    assert_eq!(tls.trusted_cas, 2);
    assert_eq!(tls.client_chain_len, Some(2));
    assert!(!tls.probe.requested() && !tls.probe.sent());

    let tls = client_config(std::slice::from_ref(&pki.root_ca), None).unwrap();
    assert_eq!((tls.trusted_cas, tls.client_chain_len), (1, None));
}

#[test]
fn refuses_missing_or_unusable_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir);
    let err = client_config(&[], None).err().expect("no CA file");
    assert!(matches!(err, SetupError::NoCaFiles), "{err}");
    assert!(err.to_string().contains("system trust store is never used"));

    let missing = PathBuf::from("/nonexistent/ca.pem");
    match client_config(std::slice::from_ref(&missing), None).err() {
        Some(SetupError::CaFile { path, reason }) => {
            assert_eq!(path, missing);
            assert!(reason.starts_with("cannot read"), "{reason}");
        }
        other => panic!("expected CaFile, got {other:?}"),
    }

    // A key file given as CA file: PEM, but no certificate in it.
    let dpi = pki.client("dpi");
    match client_config(std::slice::from_ref(&dpi.key), None).err() {
        Some(SetupError::CaFile { reason, .. }) => {
            assert_eq!(reason, "no CERTIFICATE block found")
        }
        other => panic!("expected CaFile, got {other:?}"),
    }

    // The key of another mailbox.
    let labo = pki.client("labo");
    match client_config(
        std::slice::from_ref(&pki.root_ca),
        Some(ClientCertPaths {
            chain_pem: &dpi.chain,
            key_pem: &labo.key,
        }),
    )
    .err()
    {
        Some(SetupError::ClientCertFile { path, reason }) => {
            assert_eq!(path, labo.key);
            assert!(reason.contains("does not belong"), "{reason}");
        }
        other => panic!("expected ClientCertFile, got {other:?}"),
    }

    // A certificate given as key.
    match client_config(
        std::slice::from_ref(&pki.root_ca),
        Some(ClientCertPaths {
            chain_pem: &dpi.chain,
            key_pem: &dpi.cert,
        }),
    )
    .err()
    {
        Some(SetupError::ClientCertFile { path, reason }) => {
            assert_eq!(path, dpi.cert);
            assert!(reason.contains("private key"), "{reason}");
        }
        other => panic!("expected ClientCertFile, got {other:?}"),
    }
}

#[test]
fn server_names_must_be_dns_names_or_ips() {
    assert!(server_name("mail.hopital.test").is_ok());
    assert!(server_name("127.0.0.1").is_ok());
    let err = server_name("not a name").unwrap_err();
    assert!(err.to_string().contains("tls_server_name"), "{err}");
}

#[test]
fn alerts_about_client_certificates_are_explained() {
    let probe = Probe::default();
    probe.client_cert_requested.store(true, Ordering::SeqCst);
    let alert = |a| rustls::Error::AlertReceived(a);
    let (p, msg) = explain(
        &alert(AlertDescription::CertificateRequired),
        &probe,
        "h",
        "143",
    );
    assert_eq!(p, TlsProblem::ClientCertificateRefused);
    assert!(
        msg.contains("none was sent") && msg.contains("client_cert"),
        "{msg}"
    );
    // A bare handshake_failure counts as a client-certificate refusal only once one was asked for.
    let (p, _) = explain(
        &alert(AlertDescription::HandshakeFailure),
        &probe,
        "h",
        "143",
    );
    assert_eq!(p, TlsProblem::ClientCertificateRefused);
    let (p, _) = explain(
        &alert(AlertDescription::HandshakeFailure),
        &Probe::default(),
        "h",
        "143",
    );
    assert_eq!(p, TlsProblem::HandshakeRefused);

    probe.client_cert_sent.store(true, Ordering::SeqCst);
    let (p, msg) = explain(
        &alert(AlertDescription::CertificateRevoked),
        &probe,
        "h",
        "143",
    );
    assert_eq!(p, TlsProblem::ClientCertificateRefused);
    assert!(msg.contains("refused the client certificate"), "{msg}");
    let (p, msg) = explain(
        &alert(AlertDescription::ProtocolVersion),
        &Probe::default(),
        "h",
        "143",
    );
    assert_eq!(p, TlsProblem::HandshakeRefused);
    assert!(msg.contains("TLS 1.2 and 1.3"), "{msg}");
}

#[test]
fn certificate_errors_are_explained() {
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
        let (got, msg) = explain(
            &rustls::Error::InvalidCertificate(err),
            &Probe::default(),
            "imap.x",
            "143",
        );
        assert_eq!(got, want, "{msg}");
        assert!(msg.starts_with("server certificate"), "{msg}");
    }
}

#[test]
fn clear_text_answers_name_the_ports() {
    let err = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    let (p, msg) = explain(&err, &Probe::default(), "h", "25, 587");
    assert_eq!(p, TlsProblem::NotTls);
    assert!(
        msg.contains("StartTls") && msg.contains("(25, 587)"),
        "{msg}"
    );
    let (p, _) = explain(&rustls::Error::DecryptError, &Probe::default(), "h", "143");
    assert_eq!(p, TlsProblem::Other);
}

#[test]
fn rustls_errors_are_found_inside_io_errors() {
    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::NoCertificatesPresented,
    );
    assert!(matches!(
        rustls_error(&io),
        Some(rustls::Error::NoCertificatesPresented)
    ));
    assert!(rustls_error(&std::io::Error::other("reset")).is_none());
}

/// An in-memory handshake between `client` and a rustls server presenting the test PKI's
/// server chain; the client's error, if any.
fn handshake(
    pki: &TestPki,
    client: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(), rustls::Error> {
    handshake_with(pki, client, rustls::DEFAULT_VERSIONS).map(|_| ())
}

/// The same with a server speaking only `versions`; the negotiated version.
fn handshake_with(
    pki: &TestPki,
    client: std::sync::Arc<rustls::ClientConfig>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ProtocolVersion, rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&pki.server_chain)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let mut s = rustls::ServerConnection::new(std::sync::Arc::new(server)).unwrap();
    let mut c = rustls::ClientConnection::new(client, server_name("localhost").unwrap()).unwrap();
    for _ in 0..20 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        if !wire.is_empty() {
            s.read_tls(&mut wire.as_slice()).unwrap();
            // The server's own failures are not what these tests look at.
            s.process_new_packets()
                .unwrap_or_else(|e| panic!("server side: {e}"));
        }
        let mut wire = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        if !wire.is_empty() {
            c.read_tls(&mut wire.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(c.protocol_version().expect("negotiated"));
        }
    }
    panic!("the in-memory handshake did not finish");
}

#[test]
fn crls_in_the_ca_files_refuse_a_revoked_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir);

    // No CRL: no revocation check; the handshake works.
    let tls = client_config(std::slice::from_ref(&pki.root_ca), None).unwrap();
    assert_eq!(tls.crls, 0);
    handshake(&pki, tls.config).expect("handshake without CRLs");

    // CRLs of both CAs, the server not listed: the handshake works.
    let tls = client_config(&[pki.root_ca.clone(), pki.crls.clone()], None).unwrap();
    assert_eq!((tls.trusted_cas, tls.crls), (1, 2));
    handshake(&pki, tls.config).expect("handshake with CRLs not listing the server");

    // One file holding the CA certificates and the CRLs (Dovecot's layout) works the same.
    let tls = client_config(std::slice::from_ref(&pki.client_ca_with_crls), None).unwrap();
    assert_eq!((tls.trusted_cas, tls.crls), (2, 2));
    handshake(&pki, tls.config).expect("handshake with a mixed CA+CRL file");

    // The intermediate's CRL lists the server certificate: refused, and explained.
    let tls = client_config(
        &[pki.root_ca.clone(), pki.crls_revoking_server.clone()],
        None,
    )
    .unwrap();
    let probe = tls.probe.clone();
    let err = handshake(&pki, tls.config).expect_err("a revoked server certificate");
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::Revoked),
        "{err}"
    );
    let (problem, text) = explain(&err, &probe, "localhost", "143");
    assert_eq!(problem, TlsProblem::ServerCertificateRevoked, "{text}");

    // Only the intermediate's CRL: the root's status of the intermediate is unknown: refused.
    let text = std::fs::read_to_string(&pki.crls_revoking_server).unwrap();
    let end = "-----END X509 CRL-----";
    let first = &text[..text.find(end).unwrap() + end.len()];
    let partial = dir.path().join("intermediate-crl-only.pem");
    std::fs::write(&partial, first).unwrap();
    let tls = client_config(&[pki.root_ca.clone(), partial], None).unwrap();
    assert_eq!(tls.crls, 1);
    let probe = tls.probe.clone();
    let err = handshake(&pki, tls.config).expect_err("a chain not fully covered by CRLs");
    assert_eq!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus),
        "{err}"
    );
    let (_, text) = explain(&err, &probe, "localhost", "143");
    assert!(text.contains("CRL of each IGC-Santé CA"), "{text}");

    // A CRL-only file without any CA: nothing to trust.
    let err = client_config(std::slice::from_ref(&pki.crls), None)
        .err()
        .expect("no trust anchor");
    assert!(err.to_string().contains("certificate verifier"), "{err}");
}

#[test]
fn the_offer_is_tls_1_2_and_1_3_with_forward_secret_aead_suites_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir);
    let tls = client_config(std::slice::from_ref(&pki.root_ca), None).unwrap();
    let provider = tls.config.crypto_provider();
    let suites: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        suites,
        [
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ]
    );
    let groups: Vec<String> = provider
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    assert_eq!(groups, ["X25519", "secp256r1", "secp384r1"]);
    // rustls implements no version below TLS 1.2; a server speaking only 1.2, or only 1.3, is
    // reached with that version.
    for (server, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let got = handshake_with(&pki, tls.config.clone(), &[server]).expect("handshake");
        assert_eq!(got, expected);
    }
}
