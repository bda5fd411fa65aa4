//! The inbound pipeline from a real Dovecot mailbox to the output folder, next to a plain IMAP
//! download of the same mailbox; the engine runs in a process of its own (as `relais run
//! --once` would: Engine::open + run_once on a TOML configuration), whose peak resident memory
//! (VmHWM) is the backlog's memory figure.

use crate::summary::record;
use relais_testsupport::mailserver::MailServer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// How many patients the inbound benchmark's mails are about.
const BENCH_PATIENTS: usize = 200;

/// A test INS-NIR (13 digits and their key) for patient number `n`: the sample patient's, with
/// another order number.
fn bench_ins(n: usize) -> String {
    let base = format!("2790351215{:03}", n % 1000);
    let number: u64 = base.parse().expect("digits");
    format!("{base}{:02}", 97 - number % 97)
}

/// Mail number `i` of a benchmark mailbox: a distinct LDL-SES document (id `<tag>-<i>`) about
/// one of BENCH_PATIENTS patients, in an XDM, with a 36 KiB PDF; Message-ID `bench-<i>@...`.
pub fn bench_mail(base_cda: &str, tag: &str, i: usize) -> Vec<u8> {
    let cda = base_cda
        .replace("LDL-2025-000123", &format!("{tag}-{i:06}"))
        .replace("279035121518989", &bench_ins(i % BENCH_PATIENTS));
    crate::numbered_mail(cda.as_bytes(), 36 * 1024, i)
}

/// The sample discharge letter the benchmark mails are made from.
pub fn base_cda() -> String {
    std::fs::read_to_string(
        relais_testsupport::workspace_root().join("samples/documents/ldl-ses-n1.xml"),
    )
    .expect("samples/documents/ldl-ses-n1.xml")
}

/// A Relais configuration (TOML) reading the `dpi` mailbox of `server` over IMAPS, XSD and
/// header checks (no schematron), no patient matching, a folder sink `out` in `dir/out`,
/// journal and raw mails in `dir/data`.
pub fn config_toml(server: &MailServer, dir: &Path) -> String {
    let password = dir.join("password");
    std::fs::write(&password, server.password()).expect("password file");
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    format!(
        r#"data_dir = {data}
[validation]
pack = {pack}
schematron = "off"
[patients]
require_match = false
[[source]]
kind = "imap"
name = "bal-dpi"
host = "{host}"
port = {port}
security = "tls"
ca_files = [{ca}]
user = "{user}"
password_file = {password}
mailbox = "INBOX"
processed_folder = "Relais-Traites"
quarantine_folder = "Relais-Quarantaine"
[[sink]]
kind = "folder"
name = "out"
path = {out}
"#,
        data = q(&dir.join("data")),
        pack = q(&relais_testsupport::ans_dir()),
        host = server.host(),
        port = server.ports().imaps,
        ca = q(server.ca_pem()),
        user = server.address("dpi"),
        password = q(&password),
        out = q(&dir.join("out")),
    )
}

/// Internal subcommand: open the engine on `config`, run cycles (`run_once`, as the daemon's
/// loop does) until `expect` documents are filed or a cycle does nothing, print
/// `<filed> <seconds of the cycles> <VmHWM KiB> <cycles>`.
pub fn engine_once(config: &Path, expect: usize) {
    let text = std::fs::read_to_string(config).expect("configuration");
    let c = relais_engine::config::Config::parse(&text, &config.display().to_string())
        .expect("configuration");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (filed, secs, cycles) = rt.block_on(async {
        let engine = relais_engine::Engine::open(c).await.expect("engine");
        let t = Instant::now();
        let (mut filed, mut cycles) = (0, 0);
        while filed < expect {
            let s = engine.run_once().await.expect("run");
            cycles += 1;
            filed += s.filed;
            if s == relais_engine::RunSummary::default() {
                break;
            }
        }
        (filed, t.elapsed().as_secs_f64(), cycles)
    });
    let hwm = crate::summary::vm_hwm_kib("self").expect("VmHWM");
    println!("{filed} {secs} {hwm} {cycles}");
}

pub fn suite(mails: usize) {
    let server = MailServer::start();
    let base = base_cda();
    let t = Instant::now();
    let mut bytes = 0;
    for i in 0..mails {
        // A hospital inbox holds letters about many patients: BENCH_PATIENTS distinct INS
        // (valid NIR keys), each with mails/BENCH_PATIENTS letters, interleaved.
        let mail = bench_mail(&base, "LDL-BENCH", i);
        bytes += mail.len();
        server.deliver_lmtp("dpi", &mail);
    }
    println!("# relais-bench inbound");
    println!(
        "mailbox: {mails} mails about {} patients, {:.1} kB each on average, delivered over LMTP in {:.1} s",
        BENCH_PATIENTS.min(mails),
        bytes as f64 / mails as f64 / 1000.0,
        t.elapsed().as_secs_f64()
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("relais.toml");
    std::fs::write(&config, config_toml(&server, tmp.path())).expect("configuration");

    // The physical limit: a plain IMAP download of the same mailbox (TLS, BODY.PEEK[], in
    // groups of UIDs).
    let text = std::fs::read_to_string(&config).expect("configuration");
    let c = relais_engine::config::Config::parse(&text, "bench").expect("configuration");
    let cfg =
        relais_engine::sources::imap::imap_config(&c.sources[0], &relais_core::Limits::default())
            .expect("IMAP configuration");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (count, got, plain) = rt.block_on(async {
        let t = Instant::now();
        let mut session = relais_imap::connect(&cfg).await.expect("connect");
        session.select().await.expect("select");
        let uids = session.uids_since(0).await.expect("uids");
        // The fastest plain download Relais's IMAP client offers: the same grouped fetch
        // (sizes, then bodies, per group of UIDs) that the engine's source uses.
        let mut got = 0usize;
        for group in uids.chunks(relais_imap::MAX_UIDS_PER_COMMAND) {
            for (_, fetched) in session.fetch_many(group).await.expect("fetch") {
                if let relais_imap::Fetched::Body(m) = fetched {
                    got += m.len();
                }
            }
        }
        let _ = session.logout().await;
        (uids.len(), got, t.elapsed().as_secs_f64())
    });
    drop(rt);
    println!(
        "plain IMAP download: {count} mails, {:.1} MB in {plain:.2} s = {:.0} mails/s",
        got as f64 / 1e6,
        count as f64 / plain
    );

    // Relais, in a process of its own.
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(&exe)
        .arg("inbound-engine")
        .arg(&config)
        .arg(mails.to_string())
        // Its log (RUST_LOG=relais::timing=debug for the phase timings) goes to our stderr.
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the engine process");
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (filed, relais, hwm, cycles) = match fields.as_slice() {
        [f, s, h, c] => (
            f.parse::<usize>().unwrap_or(0),
            s.parse::<f64>().unwrap_or(f64::NAN),
            h.parse::<u64>().unwrap_or(0),
            c.parse::<usize>().unwrap_or(0),
        ),
        _ => panic!(
            "the engine process failed ({}): {line} (its log is above)",
            out.status
        ),
    };
    assert_eq!(filed, mails, "every mail filed (in {cycles} engine cycles)");
    let ratio = relais / plain;
    let commit = crate::summary::commit();
    println!(
        "relais, inbox to filed (IMAP fetch, journal with fsync, XDM + CDA header + XSD checks, folder sink, IMAP move): \
         {mails} mails in {relais:.2} s = {:.0} mails/s; {ratio:.2}x the plain download (goals: >= 200 mails/s, <= 1.5x); {cycles} engine cycle(s); built from commit {commit}",
        mails as f64 / relais,
    );
    let mb = hwm as f64 * 1024.0 / 1e6;
    println!(
        "peak resident memory (VmHWM) of the engine process over the {mails}-mail backlog: {mb:.1} MB"
    );
    record(
        format!(
            "end to end, Dovecot mailbox of {mails} mails to filed, vs plain IMAP download (built from commit {commit})"
        ),
        format!(
            "relais {relais:.1} s ({:.0} mails/s), download {plain:.1} s ({:.0} mails/s): **{ratio:.2}x**",
            mails as f64 / relais,
            count as f64 / plain
        ),
        "<= 1.5x the download",
        Some(ratio <= 1.5),
    );
    record(
        format!("peak memory (VmHWM) of the engine during the {mails}-mail backlog"),
        format!("**{mb:.0} MB**"),
        "bounded (no goal figure)",
        None,
    );
}

/// For callers that want the configuration's paths.
pub fn out_dir(dir: &Path) -> PathBuf {
    dir.join("out")
}
