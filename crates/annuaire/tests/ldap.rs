//! Live LDAP look-ups against a real OpenLDAP server (Debian's slapd, started by
//! `relais_testsupport::slapd`) loaded with fictional entries: every criterion, plain LDAP,
//! LDAPS and StartTLS with the test PKI, the bind modes, hostile input, a directory that is
//! down or silent, and the `Directory` trait over both backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relais_annuaire::error::Error;
use relais_annuaire::ldap::ClientCert;
use relais_annuaire::{
    AnnuaireDb, BalType, CodeOrLabel, Directory, LdapBind, LdapConfig, LdapDirectory, LdapError,
    Query,
};
use relais_testsupport::slapd::{Slapd, SlapdOptions};
use relais_tls::TlsProblem;

const BASE: &str = "ou=bal,dc=annuaire,dc=test";
const READER_DN: &str = "cn=relais-lecture,ou=comptes,dc=annuaire,dc=test";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn options() -> SlapdOptions {
    SlapdOptions {
        schemas: vec![data("mssante-test.schema")],
        ldif: vec![data("annuaire-test.ldif")],
        ..SlapdOptions::default()
    }
}

fn start() -> Slapd {
    Slapd::start_with(options())
}

fn config(url: String, slapd: &Slapd) -> LdapConfig {
    LdapConfig {
        ca_pem_files: vec![slapd.ca_pem().to_path_buf()],
        timeout: Duration::from_secs(5),
        ..LdapConfig::new(url, BASE)
    }
}

fn directory(c: LdapConfig) -> LdapDirectory {
    LdapDirectory::new(c).unwrap()
}

async fn find(d: &LdapDirectory, q: Query) -> Vec<String> {
    let mut v: Vec<String> = d
        .search(&q)
        .await
        .unwrap_or_else(|e| panic!("{q:?}: {e}"))
        .entries
        .into_iter()
        .map(|e| e.mailbox.address)
        .collect();
    v.sort();
    v
}

fn query(f: impl FnOnce(&mut Query)) -> Query {
    let mut q = Query::default();
    f(&mut q);
    q
}

#[tokio::test]
async fn search_by_each_criterion_over_plain_ldap() {
    let slapd = start();
    let d = directory(config(slapd.ldap_url(), &slapd));

    // RPPS, national identifier, ADELI.
    let martin = vec![
        "s.martin@cabinet-fictif.mssante.test".to_string(),
        "sophie.martin@chu-fictif.mssante.test".to_string(),
    ];
    assert_eq!(find(&d, Query::by_rpps("10999999001")).await, martin);
    assert_eq!(find(&d, Query::by_rpps("810999999001")).await, martin);
    assert_eq!(
        find(&d, Query::by_rpps("999999005")).await,
        vec!["charles.dartagnan@infirmiers-fictifs.mssante.test"]
    );
    assert!(find(&d, Query::by_rpps("10999999999")).await.is_empty());
    let m = d.search(&Query::by_rpps("10999999002")).await.unwrap();
    let e = &m.entries[0];
    assert_eq!(e.mailbox.bal_type, BalType::Per);
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.surname.as_deref(), Some("LEFÈVRE"));
    assert_eq!(p.given_name.as_deref(), Some("Éric"));
    assert_eq!(p.rpps(), Some("10999999002"));
    assert_eq!(p.civility.as_deref(), Some("DR"));
    assert_eq!(e.speciality.as_ref().unwrap().code.as_deref(), Some("SM04"));
    assert_eq!(e.dematerialisation, Some(true));
    assert_eq!(e.location.city.as_deref(), Some("VILLE-FICTIVE"));
    assert_eq!(
        e.organisation.as_ref().unwrap().service.as_deref(),
        Some("CARDIOLOGIE")
    );

    // Name prefix: case-insensitive; accents as the directory stores them, or left out when
    // typed (the unaccented spelling is tried as well).
    assert_eq!(
        find(&d, Query::by_name_prefix("dur")).await,
        vec![
            "helene.durand@pharmacie-fictive.mssante.test",
            "paul.durant@maternite-fictive.mssante.test"
        ]
    );
    assert_eq!(find(&d, Query::by_name_prefix("Lefè")).await.len(), 1);
    assert_eq!(find(&d, Query::by_name_prefix("saint-j")).await.len(), 1);
    assert_eq!(
        find(&d, Query::by_name_prefix("pharmacie fict")).await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );

    // Profession and speciality, by code or label.
    assert_eq!(
        find(
            &d,
            query(|q| q.profession = Some(CodeOrLabel::Code("21".into())))
        )
        .await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );
    assert_eq!(
        find(
            &d,
            query(|q| q.profession = Some(CodeOrLabel::Label("médecin".into())))
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        find(
            &d,
            query(|q| q.speciality = Some(CodeOrLabel::Code("SM04".into())))
        )
        .await,
        vec!["eric.lefevre@chu-fictif.mssante.test"]
    );
    assert_eq!(
        find(
            &d,
            query(|q| q.speciality = Some(CodeOrLabel::Label("Qualifié en".into())))
        )
        .await
        .len(),
        3
    );

    // Town and postal code.
    let ville = find(&d, query(|q| q.city = Some("ville-fictive".into()))).await;
    assert!(ville.contains(&"paul.durant@maternite-fictive.mssante.test".to_string()));
    assert!(ville.contains(&"dpi@chu-fictif.mssante.test".to_string()));
    assert!(!ville.contains(&"helene.durand@pharmacie-fictive.mssante.test".to_string()));
    assert_eq!(
        find(&d, query(|q| q.city = Some("99002".into()))).await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );

    // Mailbox types, criteria combined.
    assert_eq!(
        find(
            &d,
            query(|q| {
                q.city = Some("Ville-Fictive".into());
                q.bal_types = vec![BalType::Org, BalType::App];
            })
        )
        .await,
        vec![
            "cardiologie@chu-fictif.mssante.test",
            "dpi@chu-fictif.mssante.test"
        ]
    );
    assert_eq!(
        find(
            &d,
            query(|q| {
                q.profession = Some(CodeOrLabel::Code("10".into()));
                q.name_prefix = Some("saint".into());
            })
        )
        .await,
        vec!["marc.saint-jean@chu-fictif.mssante.test"]
    );

    // The size limit: the server stops, the result says more matched.
    let m = d
        .search(&Query {
            city: Some("ville-fictive".into()),
            limit: 2,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(m.entries.len(), 2);
    assert!(m.truncated);

    // Addresses.
    let e = d
        .find_address("ERIC.LEFEVRE@chu-fictif.mssante.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.mailbox.address, "eric.lefevre@chu-fictif.mssante.test");
    assert!(
        d.find_address("inconnu@chu-fictif.mssante.test")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn hostile_input_is_escaped_and_finds_nothing() {
    let slapd = start();
    let d = directory(config(slapd.ldap_url(), &slapd));
    for hostile in [
        "*)(uid=*",
        "*)(objectClass=*",
        "x)(|(mail=*",
        "dur*",
        "\\2a",
        "a*)(&(objectClass=*",
    ] {
        let m = d.search(&Query::by_name_prefix(hostile)).await.unwrap();
        assert!(m.entries.is_empty(), "{hostile:?} found {:?}", m.entries);
        let m = d
            .search(&query(|q| q.city = Some(hostile.into())))
            .await
            .unwrap();
        assert!(m.entries.is_empty(), "{hostile:?}");
        let m = d
            .search(&query(|q| {
                q.profession = Some(CodeOrLabel::Code(hostile.into()))
            }))
            .await
            .unwrap();
        assert!(m.entries.is_empty(), "{hostile:?}");
        assert!(
            d.find_address(hostile).await.unwrap().is_none(),
            "{hostile:?}"
        );
    }
    // What holds nothing searchable, or is no RPPS, never reaches the server.
    for blank in ["*", "()", "\\"] {
        assert!(matches!(
            d.search(&Query::by_name_prefix(blank)).await,
            Err(Error::Query(_))
        ));
    }
    assert!(matches!(
        d.search(&Query::by_rpps("*)(uid=*")).await,
        Err(Error::Query(_))
    ));
    // The directory still answers normally.
    assert_eq!(find(&d, Query::by_name_prefix("dur")).await.len(), 2);
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_test_pki() {
    let slapd = start();
    let ldaps = directory(config(slapd.ldaps_url(), &slapd));
    assert_eq!(find(&ldaps, Query::by_rpps("10999999001")).await.len(), 2);

    let mut c = config(slapd.ldap_url(), &slapd);
    c.starttls = true;
    let starttls = directory(c);
    assert_eq!(find(&starttls, Query::by_name_prefix("dur")).await.len(), 2);

    // A CA that did not sign the server's certificate.
    let mut c = config(slapd.ldaps_url(), &slapd);
    c.ca_pem_files = vec![slapd.pki().other_root_ca.clone()];
    let e = directory(c)
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    match &e {
        Error::Ldap(LdapError::Tls { problem, .. }) => {
            assert_eq!(*problem, TlsProblem::UntrustedServerCertificate)
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("ca_pem_files"), "{e}");

    // LDAPS on the plain port: the server does not speak TLS there.
    let c = config(slapd.ldap_url().replace("ldap://", "ldaps://"), &slapd);
    let e = directory(c)
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    match &e {
        Error::Ldap(LdapError::Tls { problem, .. }) => assert_eq!(*problem, TlsProblem::NotTls),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("starttls"), "{e}");
}

#[tokio::test]
async fn bind_modes() {
    let slapd = Slapd::start_with(SlapdOptions {
        allow_anonymous: false,
        ..options()
    });
    let dir = tempfile::tempdir().unwrap();

    // This directory refuses anonymous searches.
    let e = directory(config(slapd.ldap_url(), &slapd))
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Ldap(LdapError::Search { .. })), "{e}");
    assert!(e.to_string().contains("LDAP result code"), "{e}");

    // Simple bind, the password in a file (with the usual end of line).
    let password = dir.path().join("password");
    std::fs::write(&password, "lecture-fictive\n").unwrap();
    let mut c = config(slapd.ldaps_url(), &slapd);
    c.bind = LdapBind::Simple {
        dn: READER_DN.into(),
        password_file: password.clone(),
    };
    assert_eq!(
        find(&directory(c.clone()), Query::by_name_prefix("dur"))
            .await
            .len(),
        2
    );

    // Wrong password.
    std::fs::write(&password, "pas-le-bon").unwrap();
    let e = directory(c.clone())
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Ldap(LdapError::Bind { .. })), "{e}");
    assert!(e.to_string().contains("invalid credentials"), "{e}");
    assert!(
        !e.to_string().contains("pas-le-bon"),
        "the password never shows: {e}"
    );

    // No password file.
    std::fs::remove_file(&password).unwrap();
    let e = directory(c)
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Ldap(LdapError::PasswordFile { .. })),
        "{e}"
    );

    // SASL EXTERNAL: the client certificate is the identity.
    let dpi = slapd.pki().client("dpi");
    let mut c = config(slapd.ldaps_url(), &slapd);
    c.client_cert = Some(ClientCert {
        chain_pem: dpi.chain.clone(),
        key_pem: dpi.key.clone(),
    });
    c.bind = LdapBind::SaslExternal;
    assert_eq!(
        find(&directory(c), Query::by_rpps("10999999001"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn configuration_errors_are_explained() {
    let slapd = start();
    // A base DN that does not exist.
    let mut c = config(slapd.ldap_url(), &slapd);
    c.base_dn = "ou=nulle-part,dc=annuaire,dc=test".into();
    let e = directory(c)
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("base DN does not exist"), "{e}");

    // The attribute map and the extra filter are configuration: here the surname is read
    // from `cn` ("Prénom NOM") and only personal mailboxes are wanted.
    let mut c = config(slapd.ldap_url(), &slapd);
    c.attributes.surname = Some("cn".into());
    c.attributes.organisation = None;
    c.attributes.service = None;
    c.filter = Some("(mssanteTypeBAL=PER)".into());
    let d = directory(c);
    assert_eq!(
        find(&d, Query::by_name_prefix("hél")).await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );
    assert!(find(&d, Query::by_name_prefix("cardio")).await.is_empty());
}

#[tokio::test]
async fn a_directory_that_is_down_gives_a_clear_error() {
    let mut slapd = start();
    let d = directory(config(slapd.ldap_url(), &slapd));
    assert_eq!(find(&d, Query::by_name_prefix("dur")).await.len(), 2);
    slapd.kill();
    let t = Instant::now();
    let e = d.search(&Query::by_name_prefix("dur")).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(matches!(e, Error::Ldap(LdapError::Connect { .. })), "{e}");
    let text = e.to_string();
    assert!(text.contains(&slapd.ldap_url()), "{text}");
    assert!(text.contains("check that the server is up"), "{text}");
    let ldaps = directory(config(slapd.ldaps_url(), &slapd));
    assert!(matches!(
        ldaps.find_address("x@chu-fictif.mssante.test").await,
        Err(Error::Ldap(LdapError::Connect { .. }))
    ));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts connections (the kernel does) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = LdapConfig::new(format!("ldap://127.0.0.1:{port}"), BASE);
    c.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let e = LdapDirectory::new(c)
        .unwrap()
        .search(&Query::by_name_prefix("dur"))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(e, Error::Ldap(LdapError::Timeout { .. })), "{e}");
    assert!(e.to_string().contains("did not answer within 500ms"), "{e}");
    drop(listener);
}

#[tokio::test]
async fn both_backends_answer_through_the_directory_trait() {
    let slapd = start();
    let dir = tempfile::tempdir().unwrap();
    let db = AnnuaireDb::open(dir.path()).await.unwrap();
    db.import_extract(data("extraction-sample.txt"))
        .await
        .unwrap();
    let backends: Vec<Arc<dyn Directory>> = vec![
        Arc::new(db),
        Arc::new(directory(config(slapd.ldaps_url(), &slapd))),
    ];
    for d in &backends {
        let mut boxes: Vec<String> = d
            .mailboxes_for_rpps("10999999001")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.address)
            .collect();
        boxes.sort();
        assert_eq!(
            boxes,
            vec![
                "s.martin@cabinet-fictif.mssante.test",
                "sophie.martin@chu-fictif.mssante.test"
            ],
            "{}",
            d.describe()
        );
        assert!(
            d.mailboxes_for_rpps("10999999999")
                .await
                .unwrap()
                .is_empty()
        );
        let e = d
            .find_address("Eric.Lefevre@CHU-Fictif.mssante.test")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}", d.describe()));
        assert_eq!(
            e.person.unwrap().surname.as_deref(),
            Some("LEFÈVRE"),
            "{}",
            d.describe()
        );
        assert!(
            d.find_address("inconnu@x.mssante.test")
                .await
                .unwrap()
                .is_none()
        );
        let app = d
            .find_address("dpi@chu-fictif.mssante.test")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(app.mailbox.bal_type, BalType::App, "{}", d.describe());
    }
    assert!(
        backends[1]
            .describe()
            .starts_with("LDAP directory ldaps://")
    );
}
