//! Named leases (one IMAP poller per mailbox across instances) on both journals: exclusive
//! acquisition, renewal, release, take-over after expiry, and races between instances.

mod pg;

use std::sync::Arc;
use std::time::Duration;

use relais_store::{Leases, SqliteJournal, codes};

const TTL: Duration = Duration::from_millis(400);

/// The behaviour both journals must have; `a` and `b` are two instances on one database.
async fn lease_lifecycle(a: &dyn Leases, b: &dyn Leases) {
    let name = "imap:secretariat@hopital.test/INBOX";
    assert!(a.lease(name).await.unwrap().is_none());
    assert!(a.try_acquire(name, "host-a", TTL).await.unwrap());
    let held = b.lease(name).await.unwrap().expect("held");
    assert_eq!(held.holder, "host-a");
    assert!(!held.expired);
    assert!(held.expires_at.0 - held.renewed_at.0 == TTL.as_millis() as i64);
    // Held: another instance cannot take it, nor renew or release it.
    assert!(!b.try_acquire(name, "host-b", TTL).await.unwrap());
    assert!(!b.renew(name, "host-b", TTL).await.unwrap());
    assert!(!b.release(name, "host-b").await.unwrap());
    // Other names are independent.
    assert!(
        b.try_acquire("imap:dpi/INBOX", "host-b", TTL)
            .await
            .unwrap()
    );
    // The holder renews (and re-acquiring is renewing: acquired_at is kept).
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(a.renew(name, "host-a", TTL).await.unwrap());
    assert!(a.try_acquire(name, "host-a", TTL).await.unwrap());
    let renewed = a.lease(name).await.unwrap().unwrap();
    assert_eq!(renewed.acquired_at, held.acquired_at);
    assert!(renewed.expires_at > held.expires_at);
    // Past the first expiry but renewed: still held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b.try_acquire(name, "host-b", TTL).await.unwrap());

    // host-a dies (stops renewing): after the TTL, host-b takes over.
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;
    let stale = b.lease(name).await.unwrap().unwrap();
    assert!(stale.expired);
    assert!(b.try_acquire(name, "host-b", TTL).await.unwrap());
    let taken = a.lease(name).await.unwrap().unwrap();
    assert_eq!(taken.holder, "host-b");
    assert!(taken.acquired_at > held.acquired_at);
    // host-a comes back: its renewal fails, so it stops polling.
    assert!(!a.renew(name, "host-a", TTL).await.unwrap());
    assert!(!a.try_acquire(name, "host-a", TTL).await.unwrap());
    // host-b stops cleanly: the lease is free at once.
    assert!(b.release(name, "host-b").await.unwrap());
    assert!(a.lease(name).await.unwrap().is_none());
    assert!(a.try_acquire(name, "host-a", TTL).await.unwrap());

    // Bad arguments.
    for (n, h, ttl) in [
        ("", "h", TTL),
        ("n", "", TTL),
        ("n", "h", Duration::ZERO),
        ("n", "h", Duration::from_secs(7 * 24 * 3600)),
        ("n\0", "h", TTL),
    ] {
        assert_eq!(
            a.try_acquire(n, h, ttl).await.unwrap_err().code(),
            codes::STORE_INVALID_INPUT,
            "{n:?} {h:?} {ttl:?}"
        );
    }
}

/// Several instances racing for one free (or expired) lease: exactly one wins each time.
async fn lease_race(instances: Vec<Arc<dyn Leases>>) {
    let ttl = Duration::from_millis(300);
    for round in 0..5 {
        let name = format!("race-{round}");
        let mut tasks = Vec::new();
        for (i, l) in instances.iter().enumerate() {
            for k in 0..3 {
                let l = Arc::clone(l);
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    let holder = format!("instance-{i}-{k}");
                    l.try_acquire(&name, &holder, ttl).await.unwrap()
                }));
            }
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}: one holder");
    }
    // Once expired, again exactly one of the contenders takes each lease over.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let tasks: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = Arc::clone(l);
            tokio::spawn(async move {
                l.try_acquire("race-0", &format!("late-{i}"), ttl)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn postgres_leases_lifecycle_and_take_over_after_expiry() {
    let url = pg::fresh_url("leases");
    let a = pg::open_url(&url).await;
    let b = pg::open_url(&url).await;
    lease_lifecycle(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_leases_one_winner_among_racing_instances() {
    let url = pg::fresh_url("lease_race");
    let mut instances: Vec<Arc<dyn Leases>> = Vec::new();
    for _ in 0..3 {
        instances.push(Arc::new(pg::open_url(&url).await));
    }
    lease_race(instances).await;
}

#[tokio::test]
async fn sqlite_leases_lifecycle_and_take_over_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteJournal::open(dir.path()).await.unwrap();
    let b = SqliteJournal::open(dir.path()).await.unwrap();
    lease_lifecycle(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_leases_one_winner_among_racing_processes() {
    let dir = tempfile::tempdir().unwrap();
    let mut instances: Vec<Arc<dyn Leases>> = Vec::new();
    for _ in 0..3 {
        instances.push(Arc::new(SqliteJournal::open(dir.path()).await.unwrap()));
    }
    lease_race(instances).await;
}
