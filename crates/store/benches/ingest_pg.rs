//! Ingest + transition throughput, PostgreSQL journal beside the SQLite one, on this machine.
//!
//! `cargo bench -p relais-store --bench ingest_pg` starts a real PostgreSQL server (Debian's,
//! fsync on, as in production; see `relais_testsupport::postgres`) and prints, for both journals,
//! how many mails per second are journaled and moved one step (received → parsed), with one
//! worker and with several concurrent ones; PostgreSQL both over TCP (127.0.0.1, as instances on
//! other hosts connect) and over its Unix socket. Each mail is 50 kB and distinct. Both
//! databases live on the temporary directory's filesystem; the figures are bound by fsync
//! latency (SQLite: WAL fsync per group commit and blob fsyncs; PostgreSQL: WAL flush per
//! commit, mails stored in the database) and, over TCP, by sqlx 0.9.0 not setting TCP_NODELAY
//! (see the `PgJournal` docs). `RELAIS_STORE_BENCH_N` sets the number of mails (default 400).

use std::sync::Arc;
use std::time::Instant;

use relais_store::{
    Event, IngestOutcome, IngestRequest, Journal, MessageState, PgConfig, PgJournal, SourceKey,
    SqliteJournal, Timestamp,
};
use relais_testsupport::postgres::PgServer;

const MAIL_SIZE: usize = 50 * 1024;

fn mail(n: u32) -> Vec<u8> {
    let mut m = format!(
        "From: a@hopital-a.mssante.fr\r\nTo: b@hopital-b.mssante.fr\r\n\
         Message-ID: <bench-{n}@relais.test>\r\nSubject: bench\r\n\r\n"
    )
    .into_bytes();
    let mut x = n.wrapping_mul(2_654_435_761) | 1;
    while m.len() < MAIL_SIZE {
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

async fn work(j: Arc<dyn Journal>, from: u32, to: u32) {
    for n in from..to {
        let raw = mail(n);
        let source = SourceKey::Imap {
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid: n,
        };
        let out = j
            .ingest(IngestRequest::new(source, &raw, Timestamp::now()))
            .await
            .expect("ingest");
        let IngestOutcome::New(id) = out else {
            panic!("unexpected duplicate")
        };
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

async fn run(label: &str, j: Arc<dyn Journal>, n: u32, tasks: u32) {
    let per = n / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(work(Arc::clone(&j), t * per, (t + 1) * per)))
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    let total = per * tasks;
    println!(
        "{label:<10} {tasks:>2} worker(s) {total:>6} mails {secs:>7.2} s {:>8.1} (ingest + transition)/s",
        f64::from(total) / secs
    );
}

fn main() {
    let n: u32 = std::env::var("RELAIS_STORE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let server = PgServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "relais-store ingest + transition: {} kB mails; PostgreSQL (fsync on, synchronous_commit on) \
         vs SQLite (WAL, synchronous=FULL, group commit), both under {}",
        MAIL_SIZE / 1024,
        std::env::temp_dir().display()
    );
    rt.block_on(async {
        for tasks in [1, 4, 16] {
            let dir = tempfile::tempdir().expect("temp dir");
            let sqlite: Arc<dyn Journal> =
                Arc::new(SqliteJournal::open(dir.path()).await.expect("open sqlite"));
            run("SQLite", sqlite, n, tasks).await;

            for (label, via_socket) in [("PG TCP", false), ("PG socket", true)] {
                let db = server.create_database_named("bench");
                let url = if via_socket {
                    server.socket_url_for(&db)
                } else {
                    server.url_for(&db)
                };
                let mut config = PgConfig::new(url);
                config.max_connections = tasks.max(2);
                let pg: Arc<dyn Journal> =
                    Arc::new(PgJournal::open_with(config).await.expect("open postgres"));
                run(label, pg, n, tasks).await;
            }
        }
    });
    server.stop();
}
