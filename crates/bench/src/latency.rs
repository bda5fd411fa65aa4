//! Arrival-to-filed latency with IMAP IDLE: mails arrive at a steady rate in a real Dovecot
//! mailbox (LMTP) while the engine runs as the daemon does (`Engine::run`, in this process: an
//! IDLE watcher wakes the loop; the periodic poll is set to 5 minutes so that it plays no part).
//!
//! arrival = the wall-clock time just before the mail is handed to Dovecot's LMTP server;
//! filed = the modification time of the document's JSON sidecar in the output folder (the sink
//! writes the sidecar last, then fsyncs the folder). Goal: p99 < 1 s.

use crate::summary::{percentile, record};
use relais_testsupport::mailserver::MailServer;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Sidecars in `out`: mail number (from the `bench-<n>@` Message-ID) -> modification time.
fn filed(out: &std::path::Path) -> HashMap<usize, SystemTime> {
    let mut found = HashMap::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let (Ok(meta), Ok(text)) = (entry.metadata(), std::fs::read_to_string(&path)) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let n = value["mail_message_id"]
            .as_str()
            .and_then(|m| m.split("bench-").nth(1))
            .and_then(|m| m.split('@').next())
            .and_then(|d| d.parse::<usize>().ok());
        if let (Some(n), Ok(mtime)) = (n, meta.modified()) {
            found.insert(n, mtime);
        }
    }
    found
}

pub fn suite(rate: f64, seconds: u64) {
    let server = MailServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let config_text = crate::inbound::config_toml(&server, tmp.path());
    let config =
        relais_engine::config::Config::parse(&config_text, "bench").expect("configuration");
    let out = crate::inbound::out_dir(tmp.path());
    let base = crate::inbound::base_cda();
    let total = (rate * seconds as f64).round() as usize;
    // Built beforehand, so that building them does not delay the arrivals. Mail 0 is the
    // warm-up: it is filed before the measured mails start arriving.
    let mails: Vec<Vec<u8>> = (0..=total)
        .map(|i| crate::inbound::bench_mail(&base, "LDL-LAT", i))
        .collect();
    println!("# relais-bench latency");
    println!(
        "{total} mails ({:.1} kB each) arriving over LMTP at {rate}/s for {seconds} s; engine running with IMAP IDLE, folder sink",
        mails[1].len() as f64 / 1000.0
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let engine = relais_engine::Engine::open(config).await.expect("engine");
            engine.run(Duration::from_secs(300), stop_rx).await
        })
    });

    // Warm-up: the first mail is filed (engine started, IDLE watching) before measuring.
    server.deliver_lmtp("dpi", &mails[0]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !filed(&out).contains_key(&0) {
        assert!(
            Instant::now() < deadline,
            "the warm-up mail was not filed within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut arrivals: HashMap<usize, SystemTime> = HashMap::new();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    for (k, mail) in mails.iter().enumerate().skip(1) {
        let due = start + interval * (k as u32 - 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        arrivals.insert(k, SystemTime::now());
        server.deliver_lmtp("dpi", mail);
    }
    let sending = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let done = filed(&out);
        if done.len() > total || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = stop_tx.send(true);
    let _ = runner.join();

    let mut latencies = Vec::new();
    for (k, arrived) in &arrivals {
        if let Some(at) = done.get(k) {
            latencies.push(
                at.duration_since(*arrived)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
                    * 1000.0,
            );
        }
    }
    let missing = total - latencies.len();
    let p50 = percentile(latencies.clone(), 50.0);
    let p99 = percentile(latencies.clone(), 99.0);
    let max = percentile(latencies.clone(), 100.0);
    println!(
        "sent {total} mails in {sending:.1} s; filed {} ({missing} not filed within 120 s)",
        latencies.len()
    );
    println!(
        "arrival (handed to LMTP) to filed (sidecar mtime): p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms (goal p99 < 1 s)"
    );
    record(
        format!(
            "arrival-to-filed latency with IMAP IDLE, {rate}/s for {seconds} s ({total} mails)"
        ),
        format!(
            "p50 {p50:.0} ms, **p99 {p99:.0} ms**, max {max:.0} ms{}",
            if missing > 0 {
                format!(", {missing} not filed")
            } else {
                String::new()
            }
        ),
        "p99 < 1 s",
        Some(p99 < 1000.0 && missing == 0),
    );
}
