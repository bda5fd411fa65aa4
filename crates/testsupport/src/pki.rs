//! A throw-away PKI shaped like IGC-Santé, for tests: a root CA, an intermediate CA that issues
//! the server certificate (for 127.0.0.1 / localhost / `mail.<domain>`) and the client
//! certificates (one per applicative mailbox, EKU clientAuth), CRLs for both CAs (one client
//! certificate is revoked), and an unrelated root CA that signed nothing the servers use.
//!
//! Keys are ECDSA P-256 (rcgen + ring): the whole PKI takes a few milliseconds, so every test
//! server gets its own. IGC-Santé uses RSA-2048; nothing in the TLS code paths under test depends
//! on the key type.
//!
//! Every file is PEM, written under the directory given to [`TestPki::generate`]:
//! `root-ca.crt` (the ONLY trust anchor a client should get), `intermediate-ca.crt`,
//! `server.key`, `server-chain.crt` (leaf + intermediate, what the servers present),
//! `client-ca-with-crls.pem` (CA certificates and their CRLs, for Dovecot), `client-ca.pem`,
//! `clients/<name>.{crt,key}` and `clients/<name>-chain.crt` (leaf + intermediate),
//! `other-root-ca.crt` (a root that trusts nothing here: the "wrong CA" case).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use sha2::{Digest, Sha256};

/// What to put in the test PKI.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Mail domain, used in the server names (`mail.<domain>`) and client addresses.
    pub domain: String,
    /// Local parts of the mailboxes that get a valid client certificate (CN = `<name>@<domain>`).
    pub clients: Vec<String>,
    /// Local parts that get a client certificate that is then revoked (listed in the CRL).
    pub revoked_clients: Vec<String>,
}

impl Default for PkiOptions {
    fn default() -> Self {
        PkiOptions {
            domain: "hopital.test".into(),
            clients: vec!["dpi".into(), "labo".into(), "secretariat".into()],
            revoked_clients: vec!["revoked".into()],
        }
    }
}

/// A client certificate (an applicative mailbox's "certificat logiciel") and its key, as files.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Mailbox address written as the certificate's CN and rfc822Name SAN.
    pub address: String,
    /// The leaf certificate alone (PEM).
    pub cert: PathBuf,
    /// The leaf followed by the intermediate CA (PEM): what a client should send.
    pub chain: PathBuf,
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// SHA-256 fingerprint of the leaf (DER), upper-case hex with colons (Postfix's format).
    pub sha256_fingerprint: String,
    /// Whether the certificate is listed in the intermediate CA's CRL.
    pub revoked: bool,
}

/// The generated PKI: paths of every PEM file.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// The root CA certificate: the only trust anchor clients need.
    pub root_ca: PathBuf,
    /// The intermediate CA certificate (issuer of the server and client certificates).
    pub intermediate_ca: PathBuf,
    /// Server certificate chain: leaf then intermediate.
    pub server_chain: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// Intermediate CA, its CRL, root CA, its CRL (the order Dovecot wants for `ssl_ca`).
    pub client_ca_with_crls: PathBuf,
    /// Root and intermediate CA certificates (Postfix's `smtpd_tls_CAfile`).
    pub client_ca: PathBuf,
    /// The CRLs only: the intermediate CA's (listing the revoked clients) and the root's.
    pub crls: PathBuf,
    /// The CRLs only, the intermediate's also revoking the server certificate.
    pub crls_revoking_server: PathBuf,
    /// A self-signed root CA unrelated to everything else here.
    pub other_root_ca: PathBuf,
    /// Client identities by local part (`"dpi"`, `"revoked"`, ...).
    pub clients: BTreeMap<String, ClientIdentity>,
}

/// Names (DNS and IP) in the server certificate.
pub const SERVER_IPS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "::1"];

impl TestPki {
    /// Generates the PKI into `dir` (created if needed). Panics on I/O errors (test helper).
    pub fn generate(dir: &Path, opts: &PkiOptions) -> TestPki {
        fs::create_dir_all(dir.join("clients"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.join(name);
            fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
            p
        };
        let not_before = date_time_ymd(2024, 1, 1);
        let ca_not_after = date_time_ymd(2099, 1, 1);
        let leaf_not_after = date_time_ymd(2098, 1, 1);

        // Root CA.
        let root_key = new_key();
        let mut root = CertificateParams::default();
        root.distinguished_name = dn(&[
            (DnType::CountryName, "FR"),
            (DnType::OrganizationName, "TEST ANS"),
            (DnType::OrganizationalUnitName, "TEST IGC-SANTE"),
            (DnType::CommonName, "TEST AC RACINE IGC-SANTE ELEMENTAIRE"),
        ]);
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.key_identifier_method = KeyIdMethod::Sha256;
        root.serial_number = Some(SerialNumber::from(0x1000u64));
        root.not_before = not_before;
        root.not_after = ca_not_after;
        let root_cert = root.self_signed(&root_key).expect("self-sign the root CA");
        let root_issuer = Issuer::new(root, root_key);

        // Intermediate CA.
        let inter_key = new_key();
        let mut inter = CertificateParams::default();
        inter.distinguished_name = dn(&[
            (DnType::CountryName, "FR"),
            (DnType::OrganizationName, "TEST ANS"),
            (DnType::OrganizationalUnitName, "TEST IGC-SANTE"),
            (
                DnType::CommonName,
                "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS",
            ),
        ]);
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        inter.use_authority_key_identifier_extension = true;
        inter.serial_number = Some(SerialNumber::from(0x1001u64));
        inter.not_before = not_before;
        inter.not_after = ca_not_after;
        let inter_cert = inter
            .signed_by(&inter_key, &root_issuer)
            .expect("sign the intermediate CA");
        let inter_issuer = Issuer::new(inter, inter_key);

        // Server certificate.
        let server_key = new_key();
        let mut server = CertificateParams::default();
        server.distinguished_name = dn(&[
            (DnType::CountryName, "FR"),
            (DnType::OrganizationName, "HOPITAL TEST"),
            (DnType::OrganizationalUnitName, "0000000000 FINESS TEST"),
            (DnType::CommonName, &format!("mail.{}", opts.domain)),
        ]);
        let mut sans = vec![
            SanType::DnsName("localhost".try_into().expect("ia5")),
            SanType::DnsName(ia5(&format!("mail.{}", opts.domain))),
            SanType::DnsName(ia5(&format!("imap.{}", opts.domain))),
            SanType::DnsName(ia5(&format!("smtp.{}", opts.domain))),
        ];
        for ip in SERVER_IPS {
            sans.push(SanType::IpAddress(ip.parse().expect("ip literal")));
        }
        server.subject_alt_names = sans;
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.use_authority_key_identifier_extension = true;
        server.serial_number = Some(SerialNumber::from(0x2000u64));
        server.not_before = not_before;
        server.not_after = leaf_not_after;
        let server_cert = server
            .signed_by(&server_key, &inter_issuer)
            .expect("sign the server certificate");

        // Client certificates.
        let mut clients = BTreeMap::new();
        let mut revoked = Vec::new();
        let all = opts
            .clients
            .iter()
            .map(|c| (c, false))
            .chain(opts.revoked_clients.iter().map(|c| (c, true)));
        for (serial, (name, is_revoked)) in (0x3000u64..).zip(all) {
            let address = format!("{name}@{}", opts.domain);
            let key = new_key();
            let mut p = CertificateParams::default();
            p.distinguished_name = dn(&[
                (DnType::CountryName, "FR"),
                (DnType::OrganizationName, "HOPITAL TEST"),
                (DnType::OrganizationalUnitName, "0000000000 FINESS TEST"),
                (DnType::CommonName, &address),
            ]);
            p.subject_alt_names = vec![SanType::Rfc822Name(ia5(&address))];
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p.use_authority_key_identifier_extension = true;
            p.serial_number = Some(SerialNumber::from(serial));
            p.not_before = not_before;
            p.not_after = leaf_not_after;
            let cert = p
                .signed_by(&key, &inter_issuer)
                .expect("sign a client certificate");
            if is_revoked {
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                });
            }
            let fingerprint = Sha256::digest(cert.der().as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            let identity = ClientIdentity {
                address,
                cert: write(&format!("clients/{name}.crt"), &cert.pem()),
                chain: write(
                    &format!("clients/{name}-chain.crt"),
                    &format!("{}{}", cert.pem(), inter_cert.pem()),
                ),
                key: write(&format!("clients/{name}.key"), &key.serialize_pem()),
                sha256_fingerprint: fingerprint,
                revoked: is_revoked,
            };
            clients.insert(name.clone(), identity);
        }

        // CRLs (Dovecot's ssl_require_crl wants one per CA).
        let crl = |issuer: &Issuer<'_, KeyPair>, revoked: Vec<RevokedCertParams>| -> String {
            CertificateRevocationListParams {
                this_update: date_time_ymd(2024, 6, 1),
                next_update: date_time_ymd(2098, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: revoked,
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(issuer)
            .expect("sign a CRL")
            .pem()
            .expect("CRL to PEM")
        };
        let root_crl = crl(&root_issuer, Vec::new());
        let mut with_server = revoked.clone();
        with_server.push(RevokedCertParams {
            serial_number: SerialNumber::from(0x2000u64),
            revocation_time: date_time_ymd(2024, 6, 1),
            reason_code: Some(RevocationReason::Superseded),
            invalidity_date: None,
        });
        let inter_crl = crl(&inter_issuer, revoked);
        let inter_crl_server = crl(&inter_issuer, with_server);

        // An unrelated root.
        let other_key = new_key();
        let mut other = CertificateParams::default();
        other.distinguished_name = dn(&[
            (DnType::OrganizationName, "ELSEWHERE"),
            (DnType::CommonName, "UNRELATED TEST ROOT CA"),
        ]);
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        other.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        other.not_before = not_before;
        other.not_after = ca_not_after;
        let other_cert = other.self_signed(&other_key).expect("self-sign other root");

        TestPki {
            dir: dir.to_path_buf(),
            root_ca: write("root-ca.crt", &root_cert.pem()),
            intermediate_ca: write("intermediate-ca.crt", &inter_cert.pem()),
            server_chain: write(
                "server-chain.crt",
                &format!("{}{}", server_cert.pem(), inter_cert.pem()),
            ),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_ca_with_crls: write(
                "client-ca-with-crls.pem",
                &format!(
                    "{}{}{}{}",
                    inter_cert.pem(),
                    inter_crl,
                    root_cert.pem(),
                    root_crl
                ),
            ),
            client_ca: write(
                "client-ca.pem",
                &format!("{}{}", root_cert.pem(), inter_cert.pem()),
            ),
            crls: write("crls.pem", &format!("{inter_crl}{root_crl}")),
            crls_revoking_server: write(
                "crls-revoking-server.pem",
                &format!("{inter_crl_server}{root_crl}"),
            ),
            other_root_ca: write("other-root-ca.crt", &other_cert.pem()),
            clients,
        }
    }

    /// The identity of one client (local part, e.g. `"dpi"`). Panics when unknown.
    pub fn client(&self, name: &str) -> &ClientIdentity {
        self.clients
            .get(name)
            .unwrap_or_else(|| panic!("no client certificate named {name:?} in the test PKI"))
    }
}

fn new_key() -> KeyPair {
    KeyPair::generate().expect("generate an ECDSA P-256 key")
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    s.try_into().expect("ASCII name")
}

fn dn(parts: &[(DnType, &str)]) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path(), &PkiOptions::default());
        for p in [
            &pki.root_ca,
            &pki.intermediate_ca,
            &pki.server_chain,
            &pki.server_key,
            &pki.client_ca_with_crls,
            &pki.client_ca,
            &pki.other_root_ca,
        ] {
            let text = fs::read_to_string(p).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{}", p.display());
        }
        let chain = fs::read_to_string(&pki.server_chain).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        let with_crls = fs::read_to_string(&pki.client_ca_with_crls).unwrap();
        assert_eq!(with_crls.matches("BEGIN X509 CRL").count(), 2);
        assert!(pki.client("revoked").revoked);
        assert!(!pki.client("dpi").revoked);
        assert_eq!(pki.client("dpi").address, "dpi@hopital.test");
        assert_eq!(pki.client("dpi").sha256_fingerprint.len(), 32 * 3 - 1);
        assert_ne!(
            pki.client("dpi").sha256_fingerprint,
            pki.client("labo").sha256_fingerprint
        );
    }
}
