//! The console stays bounded on a journal larger than one page: each search looks through at
//! most its scan cap and says so, and pages answer in a time that does not grow with the
//! journal. Prints the timings it measured.

mod common;

use common::*;
use relais_store::{IngestRequest, SourceKey, Timestamp};
use std::time::{Duration, Instant};

/// Messages added to the seeded journal (above the browser's largest scan cap, 2,000).
const EXTRA: usize = 2_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_look_through_a_bounded_slice_of_a_large_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let raw = String::from_utf8(sample("mail/cr-bio-n1.eml")).unwrap();
    let started = Instant::now();
    let journal = engine.journal().clone();
    let tasks: Vec<_> = (0..8)
        .map(|lane| {
            let (journal, raw) = (journal.clone(), raw.clone());
            tokio::spawn(async move {
                for i in (lane..EXTRA).step_by(8) {
                    let mail = raw.replacen(
                        "Message-ID: <cr-bio-n1.",
                        &format!("Message-ID: <scale-{i}."),
                        1,
                    );
                    assert_ne!(mail, raw, "the sample's Message-ID was replaced");
                    let req = IngestRequest::new(
                        SourceKey::Maildir {
                            folder: "bulk".into(),
                            name: format!("scale-{i}"),
                        },
                        mail.as_bytes(),
                        Timestamp::now(),
                    );
                    journal.ingest(req).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("journaled {EXTRA} extra mails in {:?}", started.elapsed());

    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, None).await;
    let mut http = Http::new(&console.running.url(), None);
    let t = Instant::now();
    assert_eq!(http.login(OPERATOR).await.status, 303);
    eprintln!("login (Argon2id verification): {:?}", t.elapsed());

    let timed = |label: &'static str| {
        let start = Instant::now();
        move |body: &str| {
            let took = start.elapsed();
            eprintln!("{label}: {took:?}");
            assert!(took < Duration::from_secs(20), "{label} took {took:?}");
            body.to_string()
        }
    };

    let done = timed("dashboard (cold)");
    let dash = done(&http.get("/dashboard").await.text());
    assert!(dash.contains("bulk"), "the bulk source has its row");
    let done = timed("dashboard (cached)");
    done(&http.get("/dashboard").await.text());

    let done = timed("messages, first page, no filter");
    let page = done(&http.get("/messages").await.text());
    assert_eq!(page.matches("href=\"/messages/").count(), 50);
    assert!(page.contains("Older"), "a next page");
    let done = timed("messages, second page");
    let next = page
        .split("href=\"")
        .find(|s| s.starts_with("/messages?before="))
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .unwrap();
    let page2 = done(&http.get(&next).await.text());
    assert_eq!(page2.matches("href=\"/messages/").count(), 50);

    let done = timed("sender search matching nothing (scan cap 500)");
    let none = done(&http.get("/messages?sender=nobody@nowhere").await.text());
    assert!(
        none.contains("500 journal entries looked through"),
        "{none}"
    );
    assert!(none.contains("go on with Older"));
    let done = timed("sender search, second run (senders cached)");
    done(&http.get("/messages?sender=nobody@nowhere").await.text());

    let done = timed("document type search matching nothing (scan cap 2,000)");
    let none = done(&http.get("/messages?doctype=00000-0").await.text());
    assert!(
        none.contains("2000 journal entries looked through"),
        "{none}"
    );

    let done = timed("source filter");
    let inbox = done(&http.get("/messages?source=inbox").await.text());
    assert_eq!(inbox.matches("href=\"/messages/").count(), 4, "{inbox}");

    let done = timed("message detail");
    let detail = done(&http.get("/messages/2").await.text());
    assert!(detail.contains("Audit trail"));

    let done = timed("review queue");
    let queue = done(&http.get("/reviews").await.text());
    assert!(queue.contains("File to patient"));

    let _ = console.stop.send(true);
    console.running.stopped().await;
}
