//! `relais-bench prune`: retention pruning of a large SQLite journal against live intake.
//!
//! Builds a journal of `messages` filed messages dated 400 days ago, each with its raw mail
//! blob, one document, one delivered delivery and `events` events (100,000 × 10 = 1,000,000
//! events by default; loaded by direct SQL, not through the pipeline). Then measures intake
//! (ingest + four transitions per message through the `Journal` trait, from `workers`
//! concurrent tasks) for `seconds` without pruning, and again while a prune of everything older
//! than 365 days runs with `chunk_rows` rows per transaction. Prints both throughputs, the
//! prune's duration and rows per second, and the worst intake call latency in both phases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use relais_store::{
    Event, IngestOutcome, IngestRequest, Journal, MessageState, PrunePolicy, SourceKey,
    SqliteJournal, Timestamp, sha256_hex,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Runs the suite (see the module doc).
pub fn suite(
    messages: usize,
    events: u32,
    chunk_rows: u32,
    seconds: u64,
    workers: usize,
    pause_ratio: f32,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(
        messages,
        events,
        chunk_rows,
        seconds,
        workers,
        pause_ratio,
    ));
}

/// A synthetic mail of about `len` bytes, distinct for each `n`.
fn mail(kind: &str, n: usize, len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@hopital-a.mssante.fr\r\nTo: b@hopital-b.mssante.fr\r\n\
         Message-ID: <{kind}-{n}@bench.relais>\r\nSubject: CR {n}\r\n\r\n"
    )
    .into_bytes();
    while m.len() < len {
        m.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n");
    }
    m
}

/// What the intake workers measured.
struct Intake {
    messages: u64,
    elapsed: Duration,
    worst_call: Duration,
    p99_call: Duration,
}

impl Intake {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// Intake from `workers` tasks until `stop` is set; each message is ingested then moved
/// received → parsed → validated → matched → rejected (five journal writes).
async fn intake(
    j: Arc<SqliteJournal>,
    workers: usize,
    next_uid: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
) -> Intake {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let j = j.clone();
        let next_uid = next_uid.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut calls: Vec<Duration> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let uid = next_uid.fetch_add(1, Ordering::Relaxed);
                let raw = mail("new", uid as usize, 4096);
                let source = SourceKey::Imap {
                    mailbox: "INBOX".into(),
                    uidvalidity: 1,
                    uid,
                };
                let t = Instant::now();
                let id = match j
                    .ingest(IngestRequest::new(source, &raw, Timestamp::now()))
                    .await
                    .expect("ingest")
                {
                    IngestOutcome::New(id) => id,
                    other => panic!("unexpected {other:?}"),
                };
                calls.push(t.elapsed());
                let steps = [
                    (MessageState::Received, MessageState::Parsed),
                    (MessageState::Parsed, MessageState::Validated),
                    (MessageState::Validated, MessageState::Matched),
                    (MessageState::Matched, MessageState::Rejected),
                ];
                for (from, to) in steps {
                    let t = Instant::now();
                    j.transition(id, from, to, Event::system(to.as_str()))
                        .await
                        .expect("transition");
                    calls.push(t.elapsed());
                }
                done += 1;
            }
            (done, calls)
        }));
    }
    let mut messages = 0;
    let mut calls = Vec::new();
    for t in tasks {
        let (done, c) = t.await.expect("intake worker");
        messages += done;
        calls.extend(c);
    }
    let elapsed = started.elapsed();
    calls.sort();
    let worst_call = calls.last().copied().unwrap_or_default();
    let p99_call = calls
        .get(calls.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    Intake {
        messages,
        elapsed,
        worst_call,
        p99_call,
    }
}

async fn run(
    messages: usize,
    events: u32,
    chunk_rows: u32,
    seconds: u64,
    workers: usize,
    pause_ratio: f32,
) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let j = Arc::new(
        SqliteJournal::open(dir.path())
            .await
            .expect("journal opens"),
    );

    // The old journal: blob files written directly (no fsync: this is set-up), rows by SQL.
    let t = Instant::now();
    let store = j.blobs().clone();
    let blobs = tokio::task::spawn_blocking(move || {
        (0..messages)
            .map(|n| {
                let raw = mail("old", n, 2048);
                let sha = sha256_hex(&raw);
                let path = store.path_of(&sha).expect("blob path");
                std::fs::create_dir_all(path.parent().expect("shard")).expect("shard dir");
                std::fs::write(&path, &raw).expect("blob written");
                (sha, raw.len() as u64)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("blob set-up");
    let old = Timestamp::now().minus(DAY * 400);
    let loaded = j
        .bulk_load_finished(&blobs, events, 1024, old)
        .await
        .expect("bulk load");
    println!(
        "journal: {loaded} filed messages 400 days old, {} events, {loaded} documents, deliveries and raw mail blobs (built in {:.1} s)",
        loaded * u64::from(events),
        t.elapsed().as_secs_f64()
    );

    let next_uid = Arc::new(AtomicU32::new(1));
    // Warm-up, then intake alone.
    let stop = Arc::new(AtomicBool::new(false));
    let warm = tokio::spawn(intake(j.clone(), workers, next_uid.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    warm.await.expect("warm-up");
    let stop = Arc::new(AtomicBool::new(false));
    let alone = tokio::spawn(intake(j.clone(), workers, next_uid.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let alone = alone.await.expect("intake");

    // Intake while the prune runs, until it is done.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(intake(j.clone(), workers, next_uid.clone(), stop.clone()));
    let mut policy = PrunePolicy::new("bench");
    policy.events = Some(DAY * 365);
    policy.pause_ratio = pause_ratio;
    let t = Instant::now();
    let report = j.prune(&policy, false, chunk_rows).await.expect("prune");
    let prune_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = during.await.expect("intake");

    let rows = report.events.events
        + report.events.messages
        + report.events.documents
        + report.events.deliveries
        + report.events.reviews;
    println!(
        "prune: {} messages, {} events, {} documents, {} deliveries, {} blob files ({:.1} MB) in {} transactions of <= {chunk_rows} rows, pause ratio {pause_ratio}: {:.1} s, {:.0} rows/s ({:.0} events/s)",
        report.events.messages,
        report.events.events,
        report.events.documents,
        report.events.deliveries,
        report.blobs.files,
        report.blobs.bytes as f64 / 1e6,
        report.chunks,
        prune_time.as_secs_f64(),
        rows as f64 / prune_time.as_secs_f64(),
        report.events.events as f64 / prune_time.as_secs_f64(),
    );
    for (label, i) in [("intake alone", &alone), ("intake during prune", &during)] {
        println!(
            "{label}: {:.0} messages/s ({} messages x 5 journal writes in {:.1} s, {workers} workers); call latency p99 {:.1} ms, worst {:.1} ms",
            i.rate(),
            i.messages,
            i.elapsed.as_secs_f64(),
            i.p99_call.as_secs_f64() * 1e3,
            i.worst_call.as_secs_f64() * 1e3,
        );
    }
    println!(
        "intake during prune / alone: {:.0} %",
        100.0 * during.rate() / alone.rate()
    );
    assert_eq!(
        report.events.events,
        loaded * u64::from(events),
        "every old event pruned"
    );
}
