//! Three `relais run` instances on one PostgreSQL journal (a real server), reading three MSSanté
//! mailboxes of a real Dovecot and filing into a DPI over MLLP (the hl7apy peer, idempotent by
//! document id like a real DPI); one instance is killed with SIGKILL mid-run.
//!
//! What must hold:
//! - the mailboxes are shared out: each instance polls one mailbox (lease `imap:<source>`);
//! - the killed instance's mailbox is taken over by a live instance once its lease expires, and
//!   the mail delivered to it afterwards is filed;
//! - nothing lost, nothing filed twice: the 300 mails are journaled once each (one journal message
//!   per Message-ID), every one ends filed or awaiting review with its reason (902, patient
//!   unknown), nothing stays in between; every document of a known patient is filed exactly once
//!   at the DPI (one AA that is not a duplicate, one control id whatever the resends), none of an
//!   unknown patient reaches it; every inbox is empty and every processed folder holds its 100
//!   mails;
//! - the lease of every mailbox is held by a live instance, and the dead instance's own lease was
//!   claimed (its interrupted work taken up) and removed.
//!
//! Needs PostgreSQL, Dovecot and python3 with hl7apy (`bash tests/setup.sh`).

mod common;

use common::base64_mime;
use relais_check::{CheckOptions, Checker, CodeTables, SchematronMode};
use relais_store::{
    Journal, Leases, MessageFilter, MessageState, PgJournal, ReviewFilter, SourceKey,
};
use relais_testsupport::dpi_peer::DpiPeer;
use relais_testsupport::mailserver::{MailServer, MailServerOptions};
use relais_testsupport::postgres::PgServer;
use relais_testsupport::{ans_dir, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The mailboxes (Dovecot users), one `[[source]]` each, named `bal-<user>`.
const USERS: [&str; 3] = ["dpi", "labo", "secretariat"];
const MAILS: usize = 300;
/// Mails in the mailboxes before the instances start; the rest comes after the kill.
const FIRST_WAVE: usize = 150;
const PATIENTS: usize = 30;
/// Mailbox lease time-to-live of the instances (renewed every second).
const LEASE_TTL_SECS: u64 = 3;
const PROCESSED: &str = "Relais-Traites";

const TEMPLATE: &str = "samples/documents/ldl-ses-n1.xml";
const CDA_ROOT: &str = "2.999.33.1.2";
const CDA_EXT: &str = "LDL-2025-000123";
const SET_EXT: &str = "LDL-2025-000123-S";
const TEMPLATE_INS: &str = "279035121518989";

/// The patient of mail `i`: every mailbox has letters about every patient.
fn patient_of(i: usize) -> usize {
    (i / USERS.len()) % PATIENTS
}

/// The mailbox (user) of mail `i`.
fn user_of(i: usize) -> &'static str {
    USERS[i % USERS.len()]
}

/// Patients 9, 19, 29 are not in the patient index: their letters go to review (902).
fn known(patient: usize) -> bool {
    patient % 10 != 9
}

/// A valid test INS-NIR for patient `p`: the sample patient's (a woman born in March 1979 in
/// the Marne) with another order number, and its key.
fn ins_of(p: usize) -> String {
    let base = format!("2790351215{:03}", 100 + p);
    let n: u64 = base.parse().unwrap();
    format!("{base}{:02}", 97 - n % 97)
}

/// The document id (TXA-12 as the DPI sees it) of mail `i`.
fn txa12_of(i: usize) -> String {
    format!("CLU-{i:04}^^{CDA_ROOT}^ISO")
}

/// The `MAILS` mails: mail `i` carries a distinct discharge letter (id `CLU-<i>`) about patient
/// [`patient_of`]`(i)` in an IHE_XDM.ZIP whose metadata follow the CDA. Some are checked valid.
fn make_mails() -> Vec<Vec<u8>> {
    let template = std::fs::read_to_string(workspace_root().join(TEMPLATE)).unwrap();
    let id_attr = format!("root=\"{CDA_ROOT}\" extension=\"{CDA_EXT}\"");
    let set_attr = format!("root=\"{CDA_ROOT}\" extension=\"{SET_EXT}\"");
    assert_eq!(template.matches(&id_attr).count(), 1, "{TEMPLATE} changed");
    assert_eq!(template.matches(&set_attr).count(), 1, "{TEMPLATE} changed");
    assert!(template.contains(TEMPLATE_INS), "{TEMPLATE} changed");
    let checker = Checker::new(CheckOptions {
        pack: Some(ans_dir()),
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let (report, extraction) = checker.check_and_extract("template", template.as_bytes());
    assert!(report.valid, "{TEMPLATE} is not valid: {report:?}");
    let entry = relais_check::metadata::document_entry_for(
        &extraction.documents[0].cda,
        &CodeTables::embedded(),
    );
    let product = relais_xdm::ProductInfo {
        name: "relais-cluster-test".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        vendor: "Relais".into(),
        contact: None,
    };
    let mut mails = Vec::with_capacity(MAILS);
    for i in 0..MAILS {
        let ins = ins_of(patient_of(i));
        let cda = template
            .replace(
                &id_attr,
                &format!("root=\"{CDA_ROOT}\" extension=\"CLU-{i:04}\""),
            )
            .replace(
                &set_attr,
                &format!("root=\"{CDA_ROOT}\" extension=\"CLU-{i:04}-S\""),
            )
            .replace(TEMPLATE_INS, &ins);
        let mut e = entry.clone();
        e.unique_id = format!("{CDA_ROOT}^CLU-{i:04}");
        if let Some(p) = e.patient_id.as_mut() {
            assert_eq!(p.id, TEMPLATE_INS, "the XDM patientId is the INS");
            p.id = ins.clone();
        }
        for info in &mut e.source_patient_info {
            *info = info.replace(TEMPLATE_INS, &ins);
        }
        let submission = relais_xdm::SubmissionSet {
            unique_id: format!("1.2.250.1.999.2.1.{i}"),
            source_id: "1.2.250.1.999.2".into(),
            submission_time: Some("20260310093000".into()),
            patient_id: e.patient_id.clone(),
            content_type_code: Some(relais_xdm::Coded::new(
                "04",
                "1.2.250.1.213.1.1.4.12",
                "Hospitalisation",
            )),
            authors: e.authors.clone(),
            ..Default::default()
        };
        let zip = relais_xdm::PackageBuilder::new(product.clone(), submission)
            .document(e, cda.into_bytes())
            .build()
            .expect("XDM package")
            .zip;
        let mail = format!(
            "From: \"Cardiologie - CH RELAIS-DEMO\" <cardiologie@ch-demo.mssante.fr>\r\n\
             To: <{user}@hopital.test>\r\n\
             Subject: XDM/1.0/DDM+Lettre de liaison\r\n\
             Date: Tue, 10 Mar 2026 09:30:00 +0100\r\n\
             Message-ID: <cluster-{i:04}@ch-demo.mssante.fr>\r\n\
             X-MSS-CODECDA: 11490-0\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"cluster-part\"\r\n\
             \r\n\
             --cluster-part\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\n\
             \r\n\
             Lettre de liaison {i}.\r\n\
             --cluster-part\r\n\
             Content-Type: application/zip\r\n\
             Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             \r\n\
             {zip}--cluster-part--\r\n",
            user = user_of(i),
            zip = base64_mime(&zip)
        );
        mails.push(mail.into_bytes());
    }
    for i in [0, 1, MAILS - 1] {
        let (report, extraction) = checker.check_and_extract("generated", &mails[i]);
        let errors: Vec<String> = report
            .all_findings()
            .filter(|f| f.is_error())
            .map(|f| f.code.to_string())
            .collect();
        assert!(
            report.valid && extraction.documents.len() == 1,
            "generated mail {i} is not valid: {errors:?}"
        );
    }
    mails
}

/// The patient index: every patient but the unknown ones, with the template's traits.
fn patients_csv() -> String {
    let mut csv = String::from(
        "ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status\n",
    );
    for p in (0..PATIENTS).filter(|p| known(*p)) {
        csv.push_str(&format!(
            "IPP-CL{p:03},{},1.2.250.1.213.1.4.10,RELAIS-TEST,CAMILLE,CAMILLE,19790315,F,51215,VALI\n",
            ins_of(p)
        ));
    }
    csv
}

fn quote(p: &Path) -> String {
    let s = p.to_str().expect("UTF-8 temp path");
    assert!(!s.contains(['"', '\\']), "{s}");
    format!("\"{s}\"")
}

/// The configuration all instances share (each its own data directory, given by the caller's
/// environment: `data_dir` is set per instance by [`Cluster::config_for`]).
fn config_text(
    data: &Path,
    url_file: &Path,
    mail: &MailServer,
    password: &Path,
    dpi: &str,
) -> String {
    let mut c = format!(
        r#"data_dir = {data}
[journal]
kind = "postgres"
url_file = {url_file}
lease_ttl_secs = {LEASE_TTL_SECS}
[validation]
schematron = "off"
[patients]
require_match = true
"#,
        data = quote(data),
        url_file = quote(url_file),
    );
    for user in USERS {
        c.push_str(&format!(
            r#"[[source]]
kind = "imap"
name = "bal-{user}"
host = "{host}"
port = {port}
security = "tls"
ca_files = [{ca}]
user = "{address}"
password_file = {password}
mailbox = "INBOX"
processed_folder = "{PROCESSED}"
quarantine_folder = "Relais-Quarantaine"
"#,
            host = mail.host(),
            port = mail.ports().imaps,
            ca = quote(mail.ca_pem()),
            address = mail.address(user),
            password = quote(password),
        ));
    }
    c.push_str(&format!(
        r#"[[sink]]
kind = "mllp"
name = "dpi"
address = "{dpi}"
sending_facility = "CH-DEMO"
receiving_facility = "CH-DEMO"
connect_timeout_secs = 1
ack_timeout_secs = 2
"#
    ));
    c
}

/// A running `relais run`; SIGKILLed on drop so that a failing test leaves no daemon.
struct Instance {
    child: Child,
    err: PathBuf,
}

impl Instance {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "instance {} stopped by itself ({status}); its stderr:\n{}",
                self.pid(),
                self.stderr()
            );
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relais(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RELAIS_PACK_DIR", ans_dir())
        .env_remove("RELAIS_CONFIG")
        .env_remove("RELAIS_LOG")
        .output()
        .expect("run relais")
}

/// The pid in a lease holder's name (`relais@<host>:<pid>`).
fn pid_of(holder: &str) -> Option<u32> {
    holder.rsplit_once(':')?.1.parse().ok()
}

#[test]
fn three_instances_on_postgres_one_killed_lose_nothing_and_file_each_document_once() {
    let start = Instant::now();
    let pg = PgServer::shared();
    let mail = MailServer::start_with(MailServerOptions {
        postfix: false,
        ..MailServerOptions::default()
    });
    let peer = DpiPeer::start(&["--dedup"]);
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("pg.url");
    std::fs::write(&url_file, format!("{}\n", pg.create_database("cluster"))).unwrap();
    let password = dir.path().join("imap.password");
    std::fs::write(&password, mail.password()).unwrap();

    let t = Instant::now();
    let mails = make_mails();
    for (i, raw) in mails.iter().enumerate().take(FIRST_WAVE) {
        mail.deliver_lmtp(user_of(i), raw);
    }
    println!(
        "{MAILS} mails generated, {FIRST_WAVE} delivered over LMTP in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // One configuration per instance, differing only in data_dir (caches); the journal is shared.
    let configs: Vec<PathBuf> = (0..3)
        .map(|n| {
            let path = dir.path().join(format!("relais-{n}.toml"));
            let text = config_text(
                &dir.path().join(format!("data-{n}")),
                &url_file,
                &mail,
                &password,
                &peer.address(),
            );
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let csv = dir.path().join("patients.csv");
    std::fs::write(&csv, patients_csv()).unwrap();
    let out = relais(&configs[0], &["patients", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "patients import: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = std::fs::read_to_string(&url_file).unwrap();
    let journal = rt
        .block_on(PgJournal::open(url.trim()))
        .expect("open the journal for the audit");
    let counts = || -> BTreeMap<&'static str, u64> {
        rt.block_on(journal.counts_by_state())
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect()
    };
    let mailbox_holders = || -> BTreeMap<String, (String, bool)> {
        rt.block_on(journal.leases_with_prefix("imap:"))
            .unwrap()
            .into_iter()
            .map(|(name, l)| (name, (l.holder, l.expired)))
            .collect()
    };

    let mut instances: Vec<Instance> = configs
        .iter()
        .enumerate()
        .map(|(n, config)| {
            let err = dir.path().join(format!("instance-{n}.err"));
            let child = Command::new(env!("CARGO_BIN_EXE_relais"))
                .args(["run", "--interval", "1", "--config"])
                .arg(config)
                .env("RELAIS_PACK_DIR", ans_dir())
                .env("RELAIS_LOG", "info,relais::timing=off")
                .env_remove("RELAIS_CONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
                .spawn()
                .expect("start relais run");
            Instance { child, err }
        })
        .collect();
    let logs = |instances: &[Instance]| -> String {
        instances
            .iter()
            .map(|i| format!("--- instance {} ---\n{}", i.pid(), i.stderr()))
            .collect()
    };

    // The mailboxes are shared out: each instance polls one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for i in &mut instances {
            i.assert_running();
        }
        let holders = mailbox_holders();
        let pids: BTreeSet<u32> = holders
            .values()
            .filter(|(_, expired)| !expired)
            .filter_map(|(h, _)| pid_of(h))
            .collect();
        if holders.len() == USERS.len() && pids.len() == 3 {
            println!(
                "mailboxes shared out after {:.1} s: {holders:?}",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three instances did not share the three mailboxes out within 30 s: {holders:?}\n{}",
            logs(&instances)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Mid-run: some mails filed, not all of the first wave.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filed = counts().get("filed").copied().unwrap_or(0);
        if filed >= 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing filed within 60 s: {:?}\n{}",
            counts(),
            logs(&instances)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim_mailbox = "imap:bal-labo";
    let victim_holder = mailbox_holders()[victim_mailbox].0.clone();
    let victim_pid = pid_of(&victim_holder).unwrap();
    let at = instances
        .iter()
        .position(|i| i.pid() == victim_pid)
        .unwrap_or_else(|| panic!("{victim_holder} is not one of the instances"));
    let mut victim = instances.remove(at);
    victim.assert_running();
    victim.child.kill().expect("SIGKILL");
    let status = victim.child.wait().unwrap();
    let killed_at = Instant::now();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the instance died of SIGKILL");
    let at_kill = counts();
    println!(
        "instance {victim_pid} (holding {victim_mailbox}) killed after {:.1} s; journal {at_kill:?}",
        start.elapsed().as_secs_f64()
    );
    let expected_filed = (0..MAILS).filter(|i| known(patient_of(*i))).count() as u64;
    assert!(
        at_kill.get("filed").copied().unwrap_or(0) < expected_filed,
        "the kill came after everything was filed: {at_kill:?}"
    );

    // More mail arrives in every mailbox, the dead instance's too.
    for (i, raw) in mails.iter().enumerate().skip(FIRST_WAVE) {
        mail.deliver_lmtp(user_of(i), raw);
    }

    // The two others finish: every mail filed or in review, every inbox empty, the DPI served.
    let deadline = start + Duration::from_secs(110);
    let review_expected = MAILS as u64 - expected_filed;
    loop {
        for i in &mut instances {
            i.assert_running();
        }
        let c = counts();
        let inboxes: usize = USERS.iter().map(|u| mail.imap_uids(u, "INBOX").len()).sum();
        if c == BTreeMap::from([
            ("awaiting_review", review_expected),
            ("filed", expected_filed),
        ]) && inboxes == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live instances did not finish: journal {c:?} (expected {expected_filed} filed, \
             {review_expected} awaiting review), {inboxes} mail(s) left in the inboxes, mailbox \
             leases {:?}\n{}",
            mailbox_holders(),
            logs(&instances)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let finished = start.elapsed();

    // Every mail journaled once: one message per Message-ID, from its mailbox.
    let messages = rt
        .block_on(journal.list_messages(&MessageFilter {
            limit: 10_000,
            ..MessageFilter::default()
        }))
        .unwrap();
    assert_eq!(messages.len(), MAILS, "journal messages");
    let mut by_message_id: BTreeMap<String, &relais_store::MessageRecord> = BTreeMap::new();
    for m in &messages {
        let id = m.message_id.clone().expect("a Message-ID");
        assert!(
            by_message_id.insert(id.clone(), m).is_none(),
            "{id} journaled twice"
        );
    }
    for i in 0..MAILS {
        let m = by_message_id
            .get(&format!("cluster-{i:04}@ch-demo.mssante.fr"))
            .or_else(|| by_message_id.get(&format!("<cluster-{i:04}@ch-demo.mssante.fr>")))
            .unwrap_or_else(|| panic!("mail {i} not journaled: {:?}", by_message_id.keys().next()));
        match &m.source {
            SourceKey::Imap { mailbox, .. } => {
                assert_eq!(mailbox, &format!("bal-{}", user_of(i)), "mail {i}")
            }
            other => panic!("mail {i} from {other:?}"),
        }
        let want = if known(patient_of(i)) {
            MessageState::Filed
        } else {
            MessageState::AwaitingReview
        };
        assert_eq!(m.state, want, "mail {i} (message {})", m.id);
    }
    // Every review says why: the patient is unknown (902).
    let reviews = rt
        .block_on(journal.list_reviews(&ReviewFilter {
            limit: 10_000,
            ..ReviewFilter::default()
        }))
        .unwrap();
    let in_review: BTreeSet<i64> = messages
        .iter()
        .filter(|m| m.state == MessageState::AwaitingReview)
        .map(|m| m.id.0)
        .collect();
    let reviewed: BTreeSet<i64> = reviews.iter().map(|r| r.message_id.0).collect();
    assert_eq!(
        reviewed, in_review,
        "one review per message awaiting review"
    );
    for r in &reviews {
        assert_eq!(r.reason_code, "902", "review {r:?}");
        assert!(!r.reason_text.is_empty(), "review {r:?}");
    }

    // Every inbox empty, every processed folder with its mails, once.
    for user in USERS {
        assert_eq!(mail.imap_uids(user, "INBOX").len(), 0, "INBOX of {user}");
        assert_eq!(
            mail.imap_uids(user, PROCESSED).len(),
            MAILS / USERS.len(),
            "{PROCESSED} of {user}"
        );
    }

    // The DPI: each document of a known patient filed exactly once, with one control id.
    let records = peer.records();
    let mut by_doc: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for r in &records {
        assert_eq!(r["answer"], "AA", "the DPI answered: {r}");
        by_doc
            .entry(r["txa12"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(r);
    }
    let expected: BTreeSet<String> = (0..MAILS)
        .filter(|i| known(patient_of(*i)))
        .map(txa12_of)
        .collect();
    let seen: BTreeSet<String> = by_doc.keys().cloned().collect();
    assert_eq!(
        seen.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documents received by the DPI vs documents of known patients"
    );
    let mut resends = 0;
    for (doc, recs) in &by_doc {
        let filings = recs.iter().filter(|r| r["duplicate"] != true).count();
        assert_eq!(filings, 1, "document {doc} filed {filings} times: {recs:?}");
        let controls: BTreeSet<&str> = recs
            .iter()
            .map(|r| r["control_id"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            controls.len(),
            1,
            "document {doc} sent with several control ids: {controls:?}"
        );
        resends += recs.len() - 1;
    }

    // The leases: every mailbox held by a live instance; the dead one's taken over and logged;
    // the dead instance's own lease claimed and removed.
    let live: BTreeSet<u32> = instances.iter().map(Instance::pid).collect();
    let holders = mailbox_holders();
    assert_eq!(holders.len(), USERS.len(), "{holders:?}");
    for (name, (holder, expired)) in &holders {
        assert!(
            !expired && pid_of(holder).is_some_and(|p| live.contains(&p)),
            "{name} is held by {holder} (expired: {expired}), not by a live instance {live:?}"
        );
    }
    let new_holder = &holders[victim_mailbox].0;
    let taker = instances
        .iter()
        .find(|i| Some(i.pid()) == pid_of(new_holder))
        .expect("the new holder");
    assert!(
        logs(&instances).contains("mailbox taken over"),
        "no instance logged the take-over of {victim_mailbox}:\n{}",
        taker.stderr()
    );
    let instance_leases = rt
        .block_on(journal.leases_with_prefix("instance:"))
        .unwrap();
    assert!(
        instance_leases
            .iter()
            .all(|(_, l)| pid_of(&l.holder).is_some_and(|p| live.contains(&p))),
        "the dead instance's lease was not claimed and removed: {instance_leases:?}"
    );
    assert!(
        logs(&instances).contains("taking up its interrupted work"),
        "no instance took up the dead instance's work:\n{}",
        logs(&instances)
    );
    // No patient data in the logs.
    for i in &instances {
        let err = i.stderr();
        for secret in ["RELAIS-TEST", "CAMILLE", "19790315", &ins_of(0)] {
            assert!(
                !err.contains(secret),
                "instance {} logged {secret}",
                i.pid()
            );
        }
    }
    // What the instances said about their leases.
    let mut all = logs(&instances);
    all.push_str(&format!(
        "--- instance {victim_pid} (killed) ---\n{}",
        victim.stderr()
    ));
    for line in all
        .lines()
        .filter(|l| l.starts_with("---") || l.contains("mailbox") || l.contains("instance stopped"))
    {
        println!("{line}");
    }
    println!(
        "cluster test: {MAILS} mails in 3 mailboxes, 3 instances, one SIGKILLed at {at_kill:?}; \
         the two others finished {:.1} s after the kill ({expected_filed} filed once at the DPI, \
         {resends} resend(s) absorbed, {review_expected} in review 902); total {:.1} s",
        (finished - (killed_at - start)).as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}
