//! Ingest throughput of the SQLite journal: 50 kB mails, WAL, `synchronous=FULL`.
//!
//! `cargo bench -p relais-store --bench ingest` prints ingests/s, sequential and with 4
//! concurrent ingesters. Each ingest hashes the mail, writes and fsyncs its blob (+ rename +
//! directory fsync) and commits one row and one event (WAL fsync): the figure is bound by the
//! disk's fsync latency, so run it on the filesystem that will hold the data
//! (`RELAIS_STORE_BENCH_DIR`; a tmpfs makes fsync free and the figure meaningless).
//! `RELAIS_STORE_BENCH_N` sets the number of mails (default 400).

use std::sync::Arc;
use std::time::Instant;

use relais_store::{
    Event, IngestOutcome, IngestRequest, Journal, MessageState, SourceKey, SqliteJournal, Timestamp,
};

const MAIL_SIZE: usize = 50 * 1024;

fn mail(n: u32) -> Vec<u8> {
    let mut m = format!(
        "From: a@hopital-a.mssante.fr\r\nTo: b@hopital-b.mssante.fr\r\n\
         Message-ID: <bench-{n}@relais.test>\r\nSubject: bench\r\n\r\n"
    )
    .into_bytes();
    let mut x = n.wrapping_mul(2_654_435_761);
    while m.len() < MAIL_SIZE {
        // Base64-looking, distinct per mail (no two mails share a blob).
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        m.push(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x % 64) as usize],
        );
        if m.len() % 78 == 76 {
            m.extend_from_slice(b"\r\n");
        }
    }
    m
}

fn source(n: u32) -> SourceKey {
    SourceKey::Imap {
        mailbox: "INBOX".into(),
        uidvalidity: 1,
        uid: n,
    }
}

async fn ingest_range(j: Arc<SqliteJournal>, from: u32, to: u32, transition: bool) {
    for n in from..to {
        let raw = mail(n);
        let out = j
            .ingest(IngestRequest::new(source(n), &raw, Timestamp::now()))
            .await
            .expect("ingest");
        let IngestOutcome::New(id) = out else {
            panic!("unexpected duplicate")
        };
        if transition {
            j.transition(
                id,
                MessageState::Received,
                MessageState::Parsed,
                Event::system("parsed"),
            )
            .await
            .expect("transition");
        }
    }
}

fn report(label: &str, n: u32, secs: f64) {
    println!(
        "{label:<44} {n:>6} mails  {secs:>7.2} s  {:>8.1} ingests/s  {:>6.1} MB/s",
        f64::from(n) / secs,
        f64::from(n) * MAIL_SIZE as f64 / secs / 1e6
    );
}

fn main() {
    let n: u32 = std::env::var("RELAIS_STORE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let base = std::env::var_os("RELAIS_STORE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "relais-store ingest bench: {} kB mails, SQLite WAL synchronous=FULL, data under {}",
        MAIL_SIZE / 1024,
        base.display()
    );
    rt.block_on(async {
        let runs: [(&str, u32, bool); 3] = [
            ("sequential ingest", 1, false),
            ("sequential ingest + one transition", 1, true),
            ("4 concurrent ingesters", 4, false),
        ];
        for (label, tasks, transition) in runs {
            let dir = tempfile::tempdir_in(&base).expect("temp dir");
            let j = Arc::new(SqliteJournal::open(dir.path()).await.expect("open"));
            let start = Instant::now();
            let per = n / tasks;
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    tokio::spawn(ingest_range(
                        Arc::clone(&j),
                        t * per,
                        (t + 1) * per,
                        transition,
                    ))
                })
                .collect();
            for h in handles {
                h.await.expect("task");
            }
            report(label, per * tasks, start.elapsed().as_secs_f64());
        }
    });
}
