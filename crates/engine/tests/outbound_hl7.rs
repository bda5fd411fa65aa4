//! HL7 intake of outbound documents, end to end with real servers: a producer sends ORU^R01 and
//! MDM^T02 messages of the ANS guide (MSH-21 `2.1^CISIS_CDA_HL7_V2`, the samples of
//! `samples/outbound/hl7/`) over TCP MLLP to Relais' listener; each is answered AA once its
//! letter is journaled, and becomes a mail in the recipient's Dovecot mailbox (submitted through
//! Postfix), whose XDM package carries the producer's CDA unchanged and passes `relais check`.
//! A resent message is answered AA again and sends nothing twice. Refusals (recipient outside
//! the liste blanche, unknown RPPS, flags, invalid CDA, garbled bytes, unknown sender) are
//! answered AE with their code and journaled as failed letters; an Annuaire that cannot be
//! asked gives AR.

mod common;

use common::config;
use relais_engine::Engine;
use relais_engine::config::{SmtpSecurity, SmtpSettings};
use relais_engine::outbound::{
    LdapSettings, ListeBlancheSettings, MllpSettings, OutboundConfig, PdfDefaults, ZamSettings,
};
use relais_store::{LetterFilter, LetterRecord, LetterSourceKind, LetterState, Outbox};
use relais_testsupport::mailserver::MailServer;
use relais_testsupport::{ans_dir, workspace_root};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sample(name: &str) -> String {
    String::from_utf8(
        std::fs::read(workspace_root().join("samples/outbound/hl7").join(name)).unwrap(),
    )
    .unwrap()
}

/// The ORU sample (lab report to the internal medicine ward) addressed to `to`.
fn oru(to: &str, control_id: &str) -> String {
    sample("oru-r01-cr-bio.hl7")
        .replace("medecine-interne@ch-demo.mssante.fr", to)
        .replace("SIL-20250311-0042", control_id)
}

/// The MDM sample (discharge letter to the GP) addressed to `to`.
fn mdm(to: &str, control_id: &str) -> String {
    sample("mdm-t02-ldl-ses.hl7")
        .replace("jean.generaliste-demo@medecin.mssante.fr", to)
        .replace("DPI-20250312-0007", control_id)
}

/// Sends one MLLP frame and reads the answer's frame.
async fn exchange(addr: SocketAddr, payload: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut frame = vec![0x0B];
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&[0x1C, 0x0D]);
    s.write_all(&frame).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !got.ends_with(&[0x1C, 0x0D]) {
        assert!(Instant::now() < deadline, "no ACK within 60 s");
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .expect("ACK in time")
            .unwrap();
        assert!(n > 0, "connection closed before the ACK: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.trim_matches(|c| c == '\u{b}' || c == '\u{1c}' || c == '\r')
        .replace('\r', "\n")
}

/// MSA-1 of an ACK.
fn msa(ack: &str) -> String {
    ack.lines()
        .find(|l| l.starts_with("MSA|"))
        .and_then(|l| l.split('|').nth(1))
        .unwrap_or_default()
        .to_string()
}

fn password_file(dir: &Path, server: &MailServer) -> PathBuf {
    let p = dir.join("password");
    std::fs::write(&p, server.password()).unwrap();
    p
}

/// `[outbound]` sending from `secretariat`, the liste blanche holding the test domain, and the
/// MLLP listener on a free port.
fn outbound(root: &Path, server: &MailServer, password: &Path) -> OutboundConfig {
    std::fs::create_dir_all(root).unwrap();
    let lb = root.join("liste-blanche.txt");
    std::fs::write(&lb, format!("{}\n", server.domain())).unwrap();
    OutboundConfig {
        mailbox: Some(server.address("secretariat")),
        smtp: Some(SmtpSettings {
            host: server.host(),
            port: server.ports().submission,
            security: SmtpSecurity::Starttls,
            ca_files: vec![server.ca_pem().to_path_buf()],
            client_cert: None,
            client_key: None,
            user: Some(server.address("secretariat")),
            password_file: Some(password.to_path_buf()),
            helo_name: None,
            tls_server_name: None,
        }),
        document_root_oid: Some("2.999.33.1.2".into()),
        source_oid: Some("2.999.33.1.9".into()),
        retry_secs: 1,
        liste_blanche: Some(ListeBlancheSettings {
            path: lb,
            check_interval_secs: 60,
            enforce_on_intake: false,
        }),
        mllp: Some(MllpSettings::new("127.0.0.1:0")),
        ..OutboundConfig::default()
    }
}

async fn start(config: relais_engine::config::Config) -> (Arc<Engine>, SocketAddr) {
    let engine = Arc::new(Engine::open(config).await.unwrap());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    // The sender is leaked so that the listener lives as long as the test.
    std::mem::forget(_tx);
    let addr = engine
        .start_outbound_mllp(rx)
        .await
        .unwrap()
        .expect("[outbound.mllp] configured");
    (engine, addr)
}

async fn letters(outbox: &Arc<dyn Outbox>) -> Vec<LetterRecord> {
    outbox.list_letters(&LetterFilter::default()).await.unwrap()
}

/// Waits (at most `secs`) until `user`'s mailbox has `n` new mails; their bytes.
fn wait_for_mails(server: &MailServer, user: &str, n: usize, secs: u64) -> Vec<Vec<u8>> {
    let dir = server.maildir(user).join("new");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if files.len() >= n || Instant::now() > deadline {
            return files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn checker() -> relais_check::Checker {
    relais_check::Checker::new(relais_check::CheckOptions {
        pack: Some(ans_dir()),
        schematron: relais_check::SchematronMode::Off,
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oru_and_mdm_over_mllp_become_mails_once_with_the_cda_as_sent() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, &password);
    let (engine, addr) = start(c).await;
    let outbox = engine.outbound().unwrap().outbox().clone();

    // ORU^R01 v2.5: the lab report to the ward's mailbox (dpi).
    let dpi = server.address("dpi");
    let oru_msg = oru(&dpi, "SIL-0001");
    let sent_at = Instant::now();
    let ack = exchange(addr, oru_msg.as_bytes()).await;
    eprintln!(
        "ORU^R01 (CDA checked, XDM and mail built, journaled) → ACK: {:?}",
        sent_at.elapsed()
    );
    assert_eq!(msa(&ack), "AA", "{ack}");
    assert!(ack.contains("ACK^R01^ACK"), "{ack}");
    assert!(ack.contains("MSA|AA|SIL-0001"), "{ack}");
    // The ACK came after the journal's commit: the letter is there, queued.
    let l = letters(&outbox).await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].state, LetterState::Queued);
    assert_eq!(l[0].source.kind, LetterSourceKind::Mllp);
    assert_eq!(l[0].source.key, "SIL-DEMO|LABO-DEMO|SIL-0001");
    assert_eq!(l[0].document_type.as_deref(), Some("11502-2"));
    assert_eq!(l[0].cda_level, Some(1));

    // MDM^T02 v2.6: the discharge letter to the GP (labo's mailbox here), with a reply-to.
    let gp = server.address("labo");
    let ack = exchange(addr, mdm(&gp, "DPI-0001").as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    assert!(ack.contains("ACK^T02^ACK"), "{ack}");
    assert_eq!(letters(&outbox).await.len(), 2);

    // The producer resends the ORU (no ACK seen, say), a moment later: AA, no second letter.
    let resent = oru_msg.replace("|20250311165000|", "|20250311165512|");
    assert_ne!(resent, oru_msg);
    let ack = exchange(addr, resent.as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    let l = letters(&outbox).await;
    assert_eq!(l.len(), 2, "{l:?}");
    let oru_letter = l
        .iter()
        .find(|x| x.source.key.ends_with("SIL-0001"))
        .unwrap();
    let kinds: Vec<String> = outbox
        .letter_events(oru_letter.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"duplicate_seen".to_string()), "{kinds:?}");

    // Sending: both letters reach their mailboxes, once.
    let s = engine.outbound().unwrap().once().await.unwrap();
    assert_eq!(s.sent, 2, "{s:?}\n{}", server.logs());
    let (dpi_mails, gp_mails) = tokio::task::spawn_blocking({
        let server_dpi = server.maildir("dpi");
        let server_labo = server.maildir("labo");
        move || {
            let read = |dir: PathBuf| {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
                        .map(|d| d.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default();
                    if !files.is_empty() || Instant::now() > deadline {
                        return files
                            .iter()
                            .map(|f| std::fs::read(f).unwrap())
                            .collect::<Vec<_>>();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            };
            (read(server_dpi), read(server_labo))
        }
    })
    .await
    .unwrap();
    assert_eq!(dpi_mails.len(), 1, "{}", server.logs());
    assert_eq!(gp_mails.len(), 1, "{}", server.logs());

    let checker = checker();
    for (mail, cda_sample) in [
        (&dpi_mails[0], "documents/cr-bio-n1.xml"),
        (&gp_mails[0], "documents/ldl-ses-n1.xml"),
    ] {
        let (report, extraction) = checker.check_and_extract("received.eml", mail);
        assert!(
            report.valid,
            "{}",
            serde_json::to_string_pretty(&report).unwrap()
        );
        let summary = report.mail.as_ref().unwrap();
        assert!(
            summary.attachments.iter().any(|a| a.contains("Xdm")),
            "{:?}",
            summary.attachments
        );
        // The CDA in the XDM package is the producer's, byte for byte, and passes the checks.
        let original = std::fs::read(workspace_root().join("samples").join(cda_sample)).unwrap();
        let cda = extraction
            .documents
            .iter()
            .find(|d| d.entry.is_some())
            .expect("a CDA in the XDM package");
        assert_eq!(cda.bytes, original, "{cda_sample}");
        assert!(report.documents[cda.report_index].is_valid());
    }
    // The mail of the MDM carries the reply-to address of its PRT REPLY.
    let gp_text = String::from_utf8_lossy(&gp_mails[0]);
    assert!(
        gp_text.contains("Reply-To: <medecine-interne@ch-demo.mssante.fr>"),
        "{}",
        &gp_text[..gp_text.len().min(2000)]
    );
    // The ORU's CORPSMAIL_PS is the body of its mail.
    let dpi_text = String::from_utf8_lossy(&dpi_mails[0]);
    assert!(
        dpi_text.contains("compte rendu d'examens biologiques"),
        "{}",
        &dpi_text[..dpi_text.len().min(3000)]
    );

    // Resending once more after the send: still AA, still one mail.
    let ack = exchange(addr, oru_msg.as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    let s = engine.outbound().unwrap().once().await.unwrap();
    assert_eq!(s.sent, 0, "{s:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wait_for_mails(&server, "dpi", 2, 3).len(), 1);
    for l in letters(&outbox).await {
        assert_eq!(l.state, LetterState::Sent, "{l:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_are_answered_ae_with_their_code_and_journaled_failed() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    // A fictional Annuaire extraction: RPPS 10999999001 has the dpi mailbox.
    let extract = tmp
        .path()
        .join("Extraction_Correspondance_MSSante_202601011200.txt");
    std::fs::write(
        &extract,
        format!(
            "{}\nPER|{}|8|10999999001|810999999001||||DR|MARTIN|Sophie|C|Civil|10|Médecin|SM26|Qualifié en Médecine Générale|O|CH FICTIF||||1||R|DES ESSAIS||99001 VILLE-FICTIVE|99001|99|99100\n",
            relais_annuaire::extract::published_header(),
            server.address("dpi")
        ),
    )
    .unwrap();
    let mut c = config(&root, vec![], vec![], false);
    let db = relais_annuaire::AnnuaireDb::open(relais_engine::outbound::annuaire_dir(&c.data_dir))
        .await
        .unwrap();
    db.import_extract(&extract).await.unwrap();
    db.close().await;
    c.outbound = outbound(&root, &server, &password);
    c.outbound.annuaire.extract = true;
    c.outbound.mllp.as_mut().unwrap().allowed_senders = vec!["SIL-DEMO".into(), "DPI-DEMO".into()];
    let error_dir = c.data_dir.join("outbound/hl7-error");
    let (engine, addr) = start(c).await;
    let outbox = engine.outbound().unwrap().outbox().clone();

    // A recipient outside the liste blanche: AE with the code, a failed letter, the message kept.
    let ack = exchange(addr, oru("someone@outside.example", "SIL-0101").as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("ERR|||207^Application error"), "{ack}");
    assert!(ack.contains("OUTBOUND-RECIPIENT-NOT-ALLOWED"), "{ack}");
    assert!(!ack.contains("someone"), "no address in the ACK: {ack}");
    let l = letters(&outbox).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].state, LetterState::Failed);
    assert_eq!(
        l[0].last_error.as_ref().unwrap().code,
        "OUTBOUND-RECIPIENT-NOT-ALLOWED"
    );
    let id = l[0].id;
    assert!(error_dir.join(format!("{id}.hl7")).is_file());
    let reason = std::fs::read_to_string(error_dir.join(format!("{id}.reason.txt"))).unwrap();
    assert!(
        reason.contains("OUTBOUND-RECIPIENT-NOT-ALLOWED"),
        "{reason}"
    );
    // Resent unchanged: the same AE, no second letter.
    let again = exchange(addr, oru("someone@outside.example", "SIL-0101").as_bytes()).await;
    assert_eq!(msa(&again), "AE", "{again}");
    assert!(again.contains("OUTBOUND-RECIPIENT-NOT-ALLOWED"), "{again}");
    assert_eq!(letters(&outbox).await.len(), 1);

    // A recipient given by RPPS only: resolved through the Annuaire (AA), or unknown (AE).
    let by_rpps = |rpps: &str, id: &str| {
        oru("x@y.z", id).replace(
            "PRT||UC||RCT^Result Copies To^participation||||Médecine interne^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^1999000017|||||||^^X.400^x@y.z",
            &format!("PRT||UC||RCT^Result Copies To^participation|8{rpps}^MARTIN^Sophie^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"),
        )
    };
    let known = by_rpps("10999999001", "SIL-0102");
    assert!(!known.contains("x@y.z"));
    let ack = exchange(addr, known.as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    let ack = exchange(addr, by_rpps("10999999999", "SIL-0103").as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-RPPS-UNKNOWN"), "{ack}");

    // Flags that ask for no MSSanté exchange.
    let no_mss = oru(&server.address("dpi"), "SIL-0104").replace(
        "DESTMSSANTEPS^Destinataire (Professionnel de Santé, organisation ou BAL applicative)^MetaDMPMSS||Y",
        "DESTMSSANTEPS^Destinataire (Professionnel de Santé, organisation ou BAL applicative)^MetaDMPMSS||N",
    );
    let ack = exchange(addr, no_mss.as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-FLAGS"), "{ack}");

    // An invalid CDA (an INS trait missing): AE with the check's own code.
    let bad_cda =
        std::fs::read(workspace_root().join("samples/invalid/cda-missing-ins-trait.xml")).unwrap();
    let good_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(
            std::fs::read(workspace_root().join("samples/documents/cr-bio-n1.xml")).unwrap(),
        )
    };
    let bad_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&bad_cda)
    };
    let invalid = oru(&server.address("dpi"), "SIL-0105").replace(&good_b64, &bad_b64);
    assert_ne!(invalid, oru(&server.address("dpi"), "SIL-0105"));
    let ack = exchange(addr, invalid.as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    let err = ack
        .lines()
        .find(|l| l.starts_with("ERR|"))
        .unwrap()
        .to_string();
    assert!(err.contains("CDA"), "{err}");

    // A sending application not allowed.
    let other = oru(&server.address("dpi"), "SIL-0106").replace("|SIL-DEMO|", "|OTHER-APP|");
    let ack = exchange(addr, other.as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-SENDER-NOT-ALLOWED"), "{ack}");

    // Garbled bytes: AE saying the message cannot be read, journaled as well.
    let ack = exchange(addr, b"this is not an HL7 message").await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-UNPARSEABLE"), "{ack}");
    // A message of another profile (the LPS MDM Relais itself sends to the DPI).
    let lps = String::from_utf8(
        std::fs::read(workspace_root().join("samples/documents/mdm-t02-cr-bio.hl7")).unwrap(),
    )
    .unwrap()
    .replace("|RELAIS|CH-DEMO|DPI|", "|DPI-DEMO|CH-DEMO|RELAIS|");
    let ack = exchange(addr, lps.as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-UNSUPPORTED"), "{ack}");

    let l = letters(&outbox).await;
    let failed: Vec<&str> = l
        .iter()
        .filter(|x| x.state == LetterState::Failed)
        .map(|x| x.last_error.as_ref().unwrap().code.as_str())
        .collect();
    assert_eq!(failed.len(), 7, "{failed:?}");
    assert_eq!(
        l.iter().filter(|x| x.state == LetterState::Queued).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_annuaire_that_cannot_be_asked_gives_ar_and_journals_nothing() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, &password);
    // An LDAP directory on a port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.outbound.annuaire.ldap = Some(LdapSettings {
        url: format!("ldap://127.0.0.1:{port}"),
        starttls: false,
        base_dn: "dc=annuaire,dc=test".into(),
        bind_dn: None,
        password_file: None,
        sasl_external: false,
        ca_files: vec![],
        client_cert: None,
        client_key: None,
        timeout_secs: 2,
        filter: None,
        attributes: Default::default(),
    });
    let (engine, addr) = start(c).await;
    let outbox = engine.outbound().unwrap().outbox().clone();
    let msg = oru("x@y.z", "SIL-0201").replace(
        "PRT||UC||RCT^Result Copies To^participation||||Médecine interne^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^1999000017|||||||^^X.400^x@y.z",
        "PRT||UC||RCT^Result Copies To^participation|810999999001^MARTIN^Sophie^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    );
    let ack = exchange(addr, msg.as_bytes()).await;
    assert_eq!(msa(&ack), "AR", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-TRANSIENT"), "{ack}");
    assert!(ack.contains("resend"), "{ack}");
    assert!(letters(&outbox).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_carrying_a_pdf_gets_a_level_1_cda_built_around_it() {
    use base64::Engine as _;
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, &password);
    let (engine, addr) = start(c).await;
    let outbox = engine.outbound().unwrap().outbox().clone();
    let b64 = |p: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(workspace_root().join("samples").join(p)).unwrap())
    };
    let with_pdf = |id: &str| {
        oru(&server.address("dpi"), id).replace(
            &format!("^TEXT^XML^Base64^{}", b64("documents/cr-bio-n1.xml")),
            &format!("^AP^PDF^Base64^{}", b64("documents/cr-bio-n1.pdf")),
        )
    };
    assert!(with_pdf("SIL-0301").contains("^AP^PDF^Base64^"));

    // Without [outbound.mllp.pdf]: refused, saying what to do.
    let ack = exchange(addr, with_pdf("SIL-0301").as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-NO-CDA"), "{ack}");
    assert!(ack.contains("[outbound.mllp.pdf]"), "{ack}");
    drop(engine);

    // With it: a level 1 CDA is built, checked, sent.
    let root2 = tmp.path().join("relais2");
    let mut c = config(&root2, vec![], vec![], false);
    c.outbound = outbound(&root2, &server, &password);
    c.outbound.mllp.as_mut().unwrap().pdf = Some(PdfDefaults {
        author_profession: relais_compose::Code::new(
            "G15_10/SM05",
            "Médecin - Biologie médicale (SM)",
        ),
        facility_type: relais_compose::Code::new("SA01", "Etablissement public de santé"),
        practice_setting: None,
        content_type: None,
    });
    let (engine, addr) = start(c).await;
    let outbox2 = engine.outbound().unwrap().outbox().clone();
    let ack = exchange(addr, with_pdf("SIL-0302").as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    let l = letters(&outbox2).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].cda_level, Some(1));
    assert_eq!(l[0].document_type.as_deref(), Some("11502-2"));
    let s = engine.outbound().unwrap().once().await.unwrap();
    assert_eq!(s.sent, 1, "{s:?}");
    let mails = tokio::task::spawn_blocking({
        let server = server.maildir("dpi");
        move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let files: Vec<PathBuf> = std::fs::read_dir(server.join("new"))
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                if !files.is_empty() || Instant::now() > deadline {
                    return files
                        .iter()
                        .map(|f| std::fs::read(f).unwrap())
                        .collect::<Vec<_>>();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(mails.len(), 1, "{}", server.logs());
    let (report, extraction) = checker().check_and_extract("received.eml", &mails[0]);
    assert!(
        report.valid,
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let cda = extraction
        .documents
        .iter()
        .find(|d| d.entry.is_some())
        .expect("a CDA in the XDM package");
    assert_eq!(cda.cda.level(), Some(relais_cda::Level::N1));
    let pdf = std::fs::read(workspace_root().join("samples/documents/cr-bio-n1.pdf")).unwrap();
    assert_eq!(cda.cda.embedded_pdf().unwrap().unwrap(), pdf);
    assert!(letters(&outbox).await.len() == 1);
}

/// A producer's MLLP listener: every message it receives goes to the channel, answered AA.
async fn producer_listener() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
                        let frame: Vec<u8> = buf.drain(..end + 2).collect();
                        let payload = &frame[1..frame.len() - 2];
                        let msg =
                            relais_hl7::parse(payload, &relais_core::Limits::default()).unwrap();
                        let ack = relais_hl7::build_ack(&msg, relais_hl7::AckCode::AA, None);
                        let mut out = vec![0x0B];
                        out.extend_from_slice(&relais_hl7::encode_for_wire(&ack));
                        out.extend_from_slice(&[0x1C, 0x0D]);
                        s.write_all(&out).await.unwrap();
                        let _ = tx.send(String::from_utf8_lossy(payload).replace('\r', "\n"));
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_and_refusal_are_reported_to_the_producer_as_zam_z02() {
    let server = MailServer::start();
    for user in ["secretariat", "dpi"] {
        server.create_folder(user, "Relais-Traites");
        server.create_folder(user, "Relais-Quarantaine");
    }
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    // The sending mailbox is read too: the DSNs come back there.
    let source = relais_engine::config::Source::Imap {
        address: Some(server.address("secretariat")),
        name: "bal-secretariat".into(),
        host: server.host(),
        port: server.ports().imaps,
        security: relais_engine::config::ImapSecurity::Tls,
        ca_files: vec![server.ca_pem().to_path_buf()],
        client_cert: None,
        client_key: None,
        user: Some(server.address("secretariat")),
        password_file: Some(password.clone()),
        mailbox: "INBOX".into(),
        processed_folder: "Relais-Traites".into(),
        quarantine_folder: "Relais-Quarantaine".into(),
    };
    let mut c = config(
        &root,
        vec![source],
        vec![relais_engine::config::Sink::Folder {
            name: "out".into(),
            path: root.join("out"),
        }],
        false,
    );
    c.outbound = outbound(&root, &server, &password);
    let (producer, mut zams) = producer_listener().await;
    c.outbound.mllp.as_mut().unwrap().zam = Some(ZamSettings {
        address: producer.to_string(),
        sending_application: "RELAIS".into(),
        sending_facility: "CH-DEMO".into(),
        interval_secs: 1,
    });
    let engine = Arc::new(Engine::open(c).await.unwrap());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = engine
        .start_outbound_mllp(stop_rx.clone())
        .await
        .unwrap()
        .unwrap();
    let daemon = {
        let e = engine.clone();
        tokio::spawn(async move { e.run(Duration::from_secs(1), stop_rx).await })
    };
    // One to a real mailbox, one to an address the server does not know (a failure DSN).
    let ack = exchange(addr, oru(&server.address("dpi"), "SIL-0401").as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");
    let ack = exchange(addr, oru(&server.address("nobody"), "SIL-0402").as_bytes()).await;
    assert_eq!(msa(&ack), "AA", "{ack}");

    let mut got: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 2 && Instant::now() < deadline {
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), zams.recv()).await {
            got.push(m);
        }
    }
    let _ = stop_tx.send(true);
    daemon.await.unwrap().unwrap();
    assert_eq!(got.len(), 2, "{got:?}\n{}", server.logs());
    let delivered = got
        .iter()
        .find(|m| m.contains("|SIL-0401|"))
        .expect("ZAM for SIL-0401");
    assert!(delivered.contains("ZAM^Z02^ZAM_Z01"), "{delivered}");
    assert!(delivered.contains("|SIL-DEMO|LABO-DEMO|"), "{delivered}");
    assert!(delivered.contains("ACK_RECEPTION_MSS^"), "{delivered}");
    assert!(
        delivered.contains("|Y^^expandedYes-NoIndicator|"),
        "{delivered}"
    );
    assert!(
        delivered.contains(&format!("^^X.400^{}", server.address("dpi"))),
        "{delivered}"
    );
    assert!(!delivered.contains("\nERR|"), "{delivered}");
    let failed = got
        .iter()
        .find(|m| m.contains("|SIL-0402|"))
        .expect("ZAM for SIL-0402");
    assert!(failed.contains("|N^^expandedYes-NoIndicator|"), "{failed}");
    assert!(
        failed.contains("\nERR|||207^Application error^messageErrorCondition|E|5"),
        "{failed}"
    );
    assert!(failed.contains("^SMTPERRORCODE"), "{failed}");
    // Reported once: the state survives in the data directory.
    let state = std::fs::read_to_string(root.join("data/outbound/zam-sent.txt")).unwrap();
    assert_eq!(state.lines().count(), 2, "{state}");
}

/// A message over `[outbound.mllp] max_message_bytes` is answered AE with the limit named,
/// nothing is journaled, and the listener goes on taking messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_over_the_size_limit_is_refused_with_ae_and_journals_nothing() {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let password = password_file(tmp.path(), &server);
    let root = tmp.path().join("relais");
    let mut c = config(&root, vec![], vec![], false);
    c.outbound = outbound(&root, &server, &password);
    c.outbound.mllp.as_mut().unwrap().max_message_bytes = 4096;
    let (engine, addr) = start(c).await;
    let outbox = engine.outbound().unwrap().outbox().clone();
    let big = oru(&server.address("dpi"), "SIL-0301");
    assert!(big.len() > 4096, "the sample must exceed the limit");
    let ack = exchange(addr, big.as_bytes()).await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("max_message_bytes"), "{ack}");
    assert!(letters(&outbox).await.is_empty());
    // The listener still answers (here: garbled bytes, refused for what they are).
    let ack = exchange(addr, b"not an HL7 message").await;
    assert_eq!(msa(&ack), "AE", "{ack}");
    assert!(ack.contains("OUTBOUND-HL7-UNPARSEABLE"), "{ack}");
}
