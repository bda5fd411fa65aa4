//! Crash safety of the inbound daemon, as an operator would meet it: `relais run` is killed with
//! SIGKILL at random moments while it takes 500 MSSanté mails from a Maildir into a DPI (the
//! hl7apy peer, which files each document id once like a real idempotent DPI), restarted, killed
//! again; then `relais run --once` finishes the work. Every document must be filed exactly once at
//! the DPI, every resend must carry the control id (MSH-10) of the first send, and no mail may be
//! lost: all 500 journaled once and filed, the Maildir's `new/` empty, nothing in review. A second
//! test kills the daemon while the DPI is down (answering AR), once in the middle of an MLLP
//! exchange, then brings the DPI back: the same must hold.
//!
//! When the engine leaves work behind, the failure says where each unfiled message stopped
//! (state, documents, deliveries, leases) and which engine behaviour explains it.
//!
//! The kill times come from a small PRNG seeded from the clock; the seed is printed, and
//! `RELAIS_CRASH_SEED=<seed>` replays a run. Needs python3 with hl7apy (`bash tests/setup.sh`).

mod common;

use common::base64_mime;
use relais_check::{CheckOptions, Checker, CodeTables, SchematronMode};
use relais_store::{
    DeliveryState, DocumentState, Journal, MessageFilter, MessageState, SqliteJournal, Timestamp,
};
use relais_testsupport::dpi_peer::DpiPeer;
use relais_testsupport::{ans_dir, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two tests each start daemons on a 2-core machine: one at a time, so that the kill times
/// mean the same thing in both.
static SERIAL: Mutex<()> = Mutex::new(());

/// The CDA template and the parts of it made unique per mail.
const TEMPLATE: &str = "samples/documents/ldl-ses-n1.xml";
const CDA_ROOT: &str = "2.999.33.1.2";
const CDA_EXT: &str = "LDL-2025-000123";
const SET_EXT: &str = "LDL-2025-000123-S";
const CSV: &str = "ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status\n\
                   IPP-CRASH,279035121518989,1.2.250.1.213.1.4.10,RELAIS-TEST,CAMILLE,CAMILLE,19790315,F,51215,VALI\n";

/// xorshift64*: enough to spread kill times, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("RELAIS_CRASH_SEED")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15)
            });
        (Rng(seed | 1), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `lo..hi` (milliseconds).
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// The TXA-12 the DPI sees for the document of mail `i` (`extension^^root^ISO`).
fn txa12_of(i: usize) -> String {
    format!("{CDA_EXT}-{i:04}^^{CDA_ROOT}^ISO")
}

/// Writes `n` distinct MSSanté mails into `maildir/new`: the sample discharge letter with its CDA
/// id and setId made unique, packed in IHE_XDM.ZIP with metadata derived from the CDA, each
/// checked valid by the first and the last.
fn write_mails(n: usize, maildir: &Path, tag: &str) {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let template = std::fs::read_to_string(workspace_root().join(TEMPLATE)).unwrap();
    let id_attr = format!("root=\"{CDA_ROOT}\" extension=\"{CDA_EXT}\"");
    let set_attr = format!("root=\"{CDA_ROOT}\" extension=\"{SET_EXT}\"");
    assert_eq!(template.matches(&id_attr).count(), 1, "{TEMPLATE} changed");
    assert_eq!(template.matches(&set_attr).count(), 1, "{TEMPLATE} changed");
    let checker = Checker::new(CheckOptions {
        pack: Some(ans_dir()),
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let (report, extraction) = checker.check_and_extract("template", template.as_bytes());
    let docs = extraction.documents;
    assert!(report.valid, "{TEMPLATE} is not valid: {report:?}");
    let entry = relais_check::metadata::document_entry_for(&docs[0].cda, &CodeTables::embedded());
    assert_eq!(entry.unique_id, format!("{CDA_ROOT}^{CDA_EXT}"));
    let product = relais_xdm::ProductInfo {
        name: "relais-crash-test".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        vendor: "Relais".into(),
        contact: None,
    };
    for i in 1..=n {
        let cda = template
            .replace(
                &id_attr,
                &format!("root=\"{CDA_ROOT}\" extension=\"{CDA_EXT}-{i:04}\""),
            )
            .replace(
                &set_attr,
                &format!("root=\"{CDA_ROOT}\" extension=\"{SET_EXT}-{i:04}\""),
            );
        let mut e = entry.clone();
        e.unique_id = format!("{CDA_ROOT}^{CDA_EXT}-{i:04}");
        let ss = relais_xdm::SubmissionSet {
            unique_id: format!("1.2.250.1.999.1.1.{i}"),
            source_id: "1.2.250.1.999.1".into(),
            submission_time: Some("20250312140500".into()),
            patient_id: e.patient_id.clone(),
            content_type_code: Some(relais_xdm::Coded::new(
                "04",
                "1.2.250.1.213.1.1.4.12",
                "Hospitalisation",
            )),
            authors: e.authors.clone(),
            ..Default::default()
        };
        let zip = relais_xdm::PackageBuilder::new(product.clone(), ss)
            .document(e, cda.into_bytes())
            .build()
            .expect("XDM package")
            .zip;
        let mail = format!(
            "From: \"Medecine interne - CH RELAIS-DEMO\" <medecine-interne@ch-demo.mssante.fr>\r\n\
             To: \"Dr Jean GENERALISTE-DEMO\" <jean.generaliste-demo@medecin.mssante.fr>\r\n\
             Subject: XDM/1.0/DDM+Lettre de liaison RELAIS-TEST CAMILLE 19790315\r\n\
             Date: Wed, 12 Mar 2025 15:05:00 +0100\r\n\
             Message-ID: <crash-{tag}-{i:04}@ch-demo.mssante.fr>\r\n\
             X-MSS-CODECDA: 11490-0\r\n\
             X-MSS-INS: O\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"relais-crash-mixed\"\r\n\
             \r\n\
             --relais-crash-mixed\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\n\
             Content-Transfer-Encoding: 7bit\r\n\
             \r\n\
             Lettre de liaison {i} (crash test).\r\n\
             --relais-crash-mixed\r\n\
             Content-Type: application/zip\r\n\
             Content-Disposition: attachment; filename=\"IHE_XDM.ZIP\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             \r\n\
             {}--relais-crash-mixed--\r\n",
            base64_mime(&zip)
        );
        if i == 1 || i == n {
            let (report, extraction) = checker.check_and_extract("generated", mail.as_bytes());
            let docs = extraction.documents;
            let errors: Vec<String> = report
                .all_findings()
                .filter(|f| f.is_error())
                .map(|f| f.code.to_string())
                .collect();
            assert!(
                report.valid && docs.len() == 1,
                "generated mail {i} is not valid: {errors:?}"
            );
        }
        // Maildir name: unique part, then the info suffix a delivery agent leaves empty.
        std::fs::write(
            maildir
                .join("new")
                .join(format!("17411{i:05}.M{i}P1.crash-{tag}")),
            mail,
        )
        .unwrap();
    }
}

/// A temp dir with a config, a patient index, a Maildir and a DPI peer, plus a read-only view
/// of the journal for the test's own checks.
struct Rig {
    dir: tempfile::TempDir,
    config: PathBuf,
    maildir: PathBuf,
    peer: DpiPeer,
    rt: tokio::runtime::Runtime,
    journal: SqliteJournal,
    daemon_runs: usize,
}

impl Rig {
    fn new(mails: usize, tag: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("bal");
        let t = Instant::now();
        write_mails(mails, &maildir, tag);
        println!(
            "{tag}: {mails} mails generated in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let peer = DpiPeer::start(&["--dedup"]);
        let config = dir.path().join("relais.toml");
        let quote = |p: &Path| {
            let s = p.to_str().expect("UTF-8 temp path");
            assert!(!s.contains(['"', '\\']), "{s}");
            format!("\"{s}\"")
        };
        std::fs::write(
            &config,
            format!(
                r#"data_dir = {data}
[validation]
schematron = "off"
[patients]
require_match = true
[[source]]
kind = "maildir"
name = "bal-crash"
path = {maildir}
consume = true
[[sink]]
kind = "mllp"
name = "dpi"
address = "{address}"
sending_facility = "CH-DEMO"
receiving_facility = "CH-DEMO"
connect_timeout_secs = 1
ack_timeout_secs = 2
"#,
                data = quote(&dir.path().join("data")),
                maildir = quote(&maildir),
                address = peer.address(),
            ),
        )
        .unwrap();
        let csv = dir.path().join("patients.csv");
        std::fs::write(&csv, CSV).unwrap();
        let out = relais(&config, &["patients", "import", csv.to_str().unwrap()]);
        assert!(
            out.status.success() && stdout(&out).contains("1 patient(s) imported"),
            "patients import: {}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let journal = rt
            .block_on(SqliteJournal::open(dir.path().join("data/journal")))
            .expect("open the journal read-side");
        Rig {
            dir,
            config,
            maildir,
            peer,
            rt,
            journal,
            daemon_runs: 0,
        }
    }

    fn relais(&self, args: &[&str]) -> Output {
        relais(&self.config, args)
    }

    /// `relais run` (the daemon) in the background, its logs in a file per run.
    fn spawn_daemon(&mut self) -> Daemon {
        self.daemon_runs += 1;
        let err = self
            .dir
            .path()
            .join(format!("daemon-{}.err", self.daemon_runs));
        let child = Command::new(env!("CARGO_BIN_EXE_relais"))
            .args(["run", "--interval", "1", "--config"])
            .arg(&self.config)
            .env("RELAIS_PACK_DIR", ans_dir())
            .env_remove("RELAIS_CONFIG")
            .env_remove("RELAIS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
            .spawn()
            .expect("start relais run");
        Daemon { child, err }
    }

    fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.rt
            .block_on(self.journal.counts_by_state())
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect()
    }

    /// Filed messages, as the operator sees them.
    fn filed(&mut self) -> usize {
        let out = self.relais(&["messages", "list", "--state", "filed", "--limit", "1000"]);
        assert!(out.status.success(), "{}", stdout(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("message"))
            .count()
    }

    /// `relais run --once` until `n` messages are filed (a bounded number of runs).
    fn finish_with_run_once(&mut self, n: usize) -> usize {
        let mut runs = 0;
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.filed() < n {
            assert!(
                runs < 20 && Instant::now() < deadline,
                "after {runs} `relais run --once` the journal holds {:?}, not {n} filed messages.\n{}",
                self.counts(),
                self.diagnose()
            );
            if runs > 0 {
                // A refused delivery waits for its backoff (2^attempts s, attempts counting the
                // claims of killed daemons too), the others of the patient behind it: sleep until
                // the last one is due.
                let now = Timestamp::now().as_millis();
                let due = self
                    .deliveries_of_matched()
                    .iter()
                    .filter(|d| d.state == DeliveryState::Pending)
                    .map(|d| d.not_before.as_millis() - now)
                    .max()
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(due.clamp(1000, 40_000) as u64));
            }
            let out = self.relais(&["run", "--once"]);
            assert!(
                out.status.success(),
                "relais run --once failed: {}{}",
                stdout(&out),
                String::from_utf8_lossy(&out.stderr)
            );
            runs += 1;
        }
        runs
    }

    /// Why messages are not filed: each one not filed, classified by where the engine left it.
    fn diagnose(&self) -> String {
        let now = Timestamp::now();
        let mut kinds: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let messages = self
            .rt
            .block_on(self.journal.list_messages(&MessageFilter {
                limit: 10_000,
                ..MessageFilter::default()
            }))
            .unwrap();
        for m in messages.iter().filter(|m| m.state != MessageState::Filed) {
            let docs = self
                .rt
                .block_on(self.journal.documents_of_message(m.id))
                .unwrap();
            let mut kind = format!("message {}", m.state.as_str());
            if docs.is_empty() {
                kind.push_str(", no document registered");
            }
            for d in &docs {
                let deliveries = self
                    .rt
                    .block_on(self.journal.deliveries_of_document(d.id))
                    .unwrap();
                kind.push_str(&format!(", document {:?}", d.state));
                if deliveries.is_empty() {
                    kind.push_str(" with no delivery queued");
                }
                for dl in deliveries {
                    kind.push_str(&format!(", delivery {:?}", dl.state));
                    if dl.state == DeliveryState::InFlight
                        && dl
                            .lease_until
                            .is_some_and(|l| l.as_millis() > now.as_millis())
                    {
                        kind.push_str(&format!(
                            " leased by {} for {} s more",
                            dl.lease_owner.as_deref().unwrap_or("?"),
                            (dl.lease_until.unwrap().as_millis() - now.as_millis()) / 1000
                        ));
                    }
                    if dl.state == DeliveryState::Delivered && d.state != DocumentState::Filed {
                        kind.push_str(" but the document never marked filed");
                    }
                }
            }
            kinds.entry(kind).or_default().push(m.id.0);
        }
        let mut out = String::from("Messages not filed, by where the engine left them:\n");
        for (kind, ids) in &kinds {
            out.push_str(&format!(
                "  {:>4} x {kind} (e.g. message {})\n",
                ids.len(),
                ids[0]
            ));
        }
        let seen = |what: &str| kinds.keys().any(|k| k.contains(what));
        if seen("message parsed") || seen("message validated") {
            out.push_str(
                "- a message killed after `parsed` or `validated` was not taken up again \
                 (Engine::recover should resume it)\n",
            );
        }
        if seen("with no delivery queued") {
            out.push_str(
                "- a message killed between its `matched` transition and enqueue_delivery has no \
                 delivery: the transition and the enqueue should be one journal transaction, or \
                 recovery must enqueue\n",
            );
        }
        if seen("never marked filed") {
            out.push_str(
                "- a delivery completed just before a kill left its document and message unfiled \
                 (document_delivered not re-run on restart)\n",
            );
        }
        if seen("leased by") {
            out.push_str(
                "- a delivery in flight at a kill stays leased to the dead process for the engine's \
                 LEASE (120 s) and, ordered per patient, holds back every later document of the \
                 patient: the lease should not outlive one MLLP exchange by much (connect + ACK \
                 timeouts), or a restarted daemon should take over its dead predecessor's leases\n",
            );
        }
        out
    }

    /// The deliveries of the messages in `matched` (filed or waiting).
    fn deliveries_of_matched(&self) -> Vec<relais_store::Delivery> {
        let messages = self
            .rt
            .block_on(self.journal.list_messages(&MessageFilter {
                state: Some(MessageState::Matched),
                limit: 10_000,
                ..MessageFilter::default()
            }))
            .unwrap();
        let mut out = Vec::new();
        for m in messages {
            for d in self
                .rt
                .block_on(self.journal.documents_of_message(m.id))
                .unwrap()
            {
                out.extend(
                    self.rt
                        .block_on(self.journal.deliveries_of_document(d.id))
                        .unwrap(),
                );
            }
        }
        out
    }

    /// Deliveries that failed at least once and wait for their retry.
    fn deliveries_retried(&self) -> Vec<relais_store::Delivery> {
        let mut all = self.deliveries_of_matched();
        all.retain(|d| d.last_error.is_some());
        all
    }

    /// Files in the Maildir's `new/` and `cur/`.
    fn maildir_counts(&self) -> (usize, usize) {
        let n = |d: &str| std::fs::read_dir(self.maildir.join(d)).unwrap().count();
        (n("new"), n("cur"))
    }

    /// The end state every crash run must reach: `n` mails journaled once and filed, each
    /// document filed once at the DPI with one control id; returns (duplicates absorbed by the
    /// DPI, resends in all, AR answers).
    fn assert_all_filed_once(&mut self, n: usize) -> (usize, usize, usize) {
        let counts = self.counts();
        assert_eq!(
            counts,
            BTreeMap::from([("filed", n as u64)]),
            "every mail journaled once and filed\n{}",
            self.diagnose()
        );
        assert_eq!(self.maildir_counts(), (0, n), "Maildir (new/, cur/)");
        let out = self.relais(&["review", "list"]);
        assert!(stdout(&out).contains("no open review"), "{}", stdout(&out));

        let records = self.peer.records();
        let mut by_doc: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
        for r in &records {
            let answer = r["answer"].as_str().unwrap_or("");
            assert!(
                answer == "AA" || answer == "AR",
                "the DPI answered {answer}: {r}"
            );
            by_doc
                .entry(r["txa12"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(r);
        }
        let expected: BTreeSet<String> = (1..=n).map(txa12_of).collect();
        let seen: BTreeSet<String> = by_doc.keys().cloned().collect();
        assert_eq!(
            seen.difference(&expected).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "the DPI received documents that were not sent"
        );
        assert_eq!(
            expected.difference(&seen).count(),
            0,
            "documents never received by the DPI: {:?}",
            expected.difference(&seen).take(5).collect::<Vec<_>>()
        );
        let mut duplicates = 0;
        let mut ars = 0;
        for (doc, recs) in &by_doc {
            let filings = recs
                .iter()
                .filter(|r| r["answer"] == "AA" && r["duplicate"] != true)
                .count();
            assert_eq!(
                filings, 1,
                "document {doc} filed {filings} times at the DPI: {recs:?}"
            );
            let controls: BTreeSet<&str> = recs
                .iter()
                .map(|r| r["control_id"].as_str().unwrap_or(""))
                .collect();
            assert_eq!(
                controls.len(),
                1,
                "document {doc} was resent with another control id (MSH-10): {controls:?}"
            );
            duplicates += recs.iter().filter(|r| r["duplicate"] == true).count();
            ars += recs.iter().filter(|r| r["answer"] == "AR").count();
        }
        (duplicates, records.len() - n, ars)
    }
}

/// A running `relais run`; killed (SIGKILL) on drop too, so that a failing test leaves no daemon.
struct Daemon {
    child: Child,
    err: PathBuf,
}

impl Daemon {
    /// SIGKILL (`Child::kill` sends SIGKILL on Unix), after checking the daemon did not stop by
    /// itself.
    fn kill(mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the daemon stopped by itself ({status}) before it was killed; its stderr:\n{}",
                std::fs::read_to_string(&self.err).unwrap_or_default()
            );
        }
        self.child.kill().expect("SIGKILL the daemon");
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the daemon died of SIGKILL");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the relais binary with `--config` (RELAIS_CONFIG and RELAIS_LOG unset).
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why restarted daemons may make little or no progress.
const RECOVERY_HINT: &str = "- at every start Engine::recover re-runs the whole check (read the mail, XSD, \
     XDM, matching, several journal writes) of every `matched` message, which is also the normal \
     state of a message whose delivery waits in the outbox; with a backlog (here, or thousands \
     during a DPI outage) a restarted daemon spends its life re-checking them before it journals \
     new mail or delivers anything\n";

#[test]
fn sigkill_at_random_moments_loses_nothing_and_files_each_document_once() {
    const MAILS: usize = 500;
    const MIN_KILLS: usize = 10;
    const MAX_KILLS: usize = 80;
    // No journal change for this long while killing: the restarted daemons are stuck.
    const STALL: Duration = Duration::from_secs(20);
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let start = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    println!("crash test seed {seed} (replay with RELAIS_CRASH_SEED={seed})");
    let mut rig = Rig::new(MAILS, "main");

    // Kill phase: at least MIN_KILLS kills, and on while there is work, so that kills land in
    // every phase (journaling, checking, matching, delivering), within a time budget.
    let kill_phase = Instant::now();
    let mut kills = 0;
    let mut alive = Duration::ZERO;
    let mut last = rig.counts();
    let mut last_progress = Instant::now();
    let mut stalled = 0;
    // Kills that found the daemon filing: some documents filed, not all.
    let mut kills_while_filing = 0;
    loop {
        let daemon = rig.spawn_daemon();
        let wait = rng.millis(50, 700);
        std::thread::sleep(wait);
        daemon.kill();
        kills += 1;
        alive += wait;
        let counts = rig.counts();
        println!(
            "kill {kills:>2} after {:>3} ms: {counts:?}",
            wait.as_millis()
        );
        let filed = counts.get("filed").copied().unwrap_or(0) as usize;
        if filed > 0 && filed < MAILS {
            kills_while_filing += 1;
        }
        if counts == last {
            stalled += 1;
        } else {
            stalled = 0;
            last_progress = Instant::now();
        }
        last = counts;
        if last_progress.elapsed() > STALL && filed < MAILS {
            let diagnosis = rig.diagnose();
            let why = if diagnosis.contains("leased by") {
                ""
            } else {
                RECOVERY_HINT
            };
            panic!(
                "the daemon made no progress in {stalled} lives in a row ({} s, each life 50..700 ms); \
                 the journal holds {last:?}.\n{diagnosis}{why}",
                last_progress.elapsed().as_secs()
            );
        }
        if kills >= MIN_KILLS
            && (filed == MAILS
                || kills >= MAX_KILLS
                || kill_phase.elapsed() > Duration::from_secs(40))
        {
            break;
        }
    }
    let kill_secs = kill_phase.elapsed().as_secs_f64();

    let finish = Instant::now();
    let runs = rig.finish_with_run_once(MAILS);
    let (duplicates, resends, ars) = rig.assert_all_filed_once(MAILS);
    assert_eq!(ars, 0, "the DPI never answered AR in this test");
    assert!(
        kills_while_filing > 0,
        "no kill landed while documents were being filed: in {kills} lives of 50..700 ms the \
         daemons never reached the DPI (the kill phase ended at {last:?}).\n{RECOVERY_HINT}"
    );
    println!(
        "crash test: {MAILS} mails, {kills} SIGKILLs in {kill_secs:.1} s ({kills_while_filing} while filing; \
         daemons alive {:.1} s in all), then {runs} `run --once` in {:.1} s; every document filed once at the DPI; \
         {resends} resend(s), {duplicates} absorbed by the DPI's dedup; total {:.1} s; seed {seed}",
        alive.as_secs_f64(),
        finish.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn sigkill_during_a_dpi_outage_then_recovery_files_each_document_once() {
    const MAILS: usize = 40;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let start = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    println!("outage test seed {seed} (replay with RELAIS_CRASH_SEED={seed})");
    let mut rig = Rig::new(MAILS, "outage");
    rig.peer.set_mode("AR DPI en maintenance");

    // Life 1 runs until the DPI has refused a delivery (AR), then dies at a random moment.
    let daemon = rig.spawn_daemon();
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        if let Some(d) = rig.deliveries_retried().into_iter().next() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery was refused by the DPI within 30 s: {:?}\n{}",
            rig.counts(),
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(rng.millis(50, 700));
    daemon.kill();
    // Life 2 dies while it offers the refused document again: killed 0..5 ms after it claims
    // the delivery, during the exchange with the DPI.
    let attempts = rig
        .rt
        .block_on(rig.journal.get_delivery(refused.id))
        .unwrap()
        .expect("the refused delivery")
        .attempts;
    let daemon = rig.spawn_daemon();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = rig
            .rt
            .block_on(rig.journal.get_delivery(refused.id))
            .unwrap()
            .expect("the refused delivery");
        if d.attempts > attempts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused delivery was not offered again within 30 s: {d:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let claimed_at = Instant::now();
    std::thread::sleep(rng.millis(0, 5));
    daemon.kill();
    let d = rig
        .rt
        .block_on(rig.journal.get_delivery(refused.id))
        .unwrap()
        .expect("the refused delivery");
    println!(
        "life 2 killed {} ms after it claimed the refused delivery: {:?} (attempt {})",
        claimed_at.elapsed().as_millis(),
        d.state,
        d.attempts
    );
    // Lives 3 and 4 die at random moments.
    let mut kills = 2;
    for _ in 0..2 {
        let daemon = rig.spawn_daemon();
        std::thread::sleep(rng.millis(50, 700));
        daemon.kill();
        kills += 1;
    }
    let before = rig.counts();
    assert_eq!(
        before.get("filed"),
        None,
        "nothing can be filed while the DPI refuses: {before:?}"
    );
    let refusals = rig.peer.records().len();
    assert!(refusals >= 1, "the DPI saw no delivery during the outage");

    rig.peer.set_mode("AA");
    let runs = rig.finish_with_run_once(MAILS);
    let (duplicates, _, ars) = rig.assert_all_filed_once(MAILS);
    assert!(ars >= 1, "the outage answered AR");
    println!(
        "outage test: {MAILS} mails, {kills} SIGKILLs while the DPI answered AR ({ars} AR), \
         {runs} `run --once` after it came back; every document filed once, {duplicates} \
         duplicate(s) absorbed; {:.1} s; seed {seed}",
        start.elapsed().as_secs_f64()
    );
}
