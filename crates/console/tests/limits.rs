//! The console's request body limit (64 KiB: its forms are a few fields), over a real HTTP
//! connection: a bigger body is refused with 413 before any form is read, a body just under the
//! limit is read and answered as usual.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_over_64_kib_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine, &users, None).await;
    let mut http = Http::new(&console.running.url(), None);

    // Under the limit: an ordinary wrong login (401).
    let name = "a".repeat(60 * 1024);
    let under = http.login((&name, "not the passphrase")).await;
    assert_eq!(under.status, 401, "{}", under.text());

    // Over it: 413, whatever the form holds.
    let name = "a".repeat(80 * 1024);
    let over = http.login((&name, "not the passphrase")).await;
    assert_eq!(over.status, 413, "{}", over.text());

    // The console still serves.
    assert_eq!(http.get("/health").await.status, 200);
}
