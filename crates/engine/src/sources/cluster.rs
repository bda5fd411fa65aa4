//! Several instances on one journal: which instance polls which IMAP mailbox, and who takes up
//! the work of an instance that died.
//!
//! Two pollers on one mailbox would race on the same UIDs and moves, so each IMAP source is
//! polled and IDLE-watched only by the instance holding the lease `imap:<source name>`
//! ([`relais_store::Leases`]: the database's clock, shared by every host). Every instance also
//! holds `instance:<its worker name>`, renewed with its mailbox leases every third of the
//! time-to-live (`[journal] lease_ttl_secs`, 30 s by default):
//!
//! - mailboxes are shared out: an instance takes a free mailbox while it holds fewer than its
//!   fair share (mailboxes divided by the live instances, rounded up), or when the mailbox stayed
//!   free for two rounds; an instance above its share gives one back per round (never one it is
//!   polling right now);
//! - an instance that cannot renew a mailbox lease (refused: another took it; or the database
//!   does not answer) stops polling it before the lease can expire: it counts as held only until
//!   half the time-to-live after the start of its last successful renewal, renewals come every
//!   third of it, and a poll checks before every group of mails it fetches and before moving;
//! - an instance killed stops renewing: its mailbox leases expire and the others take them over;
//!   its `instance:` lease expires too, and exactly one live instance claims it (a `try_acquire`
//!   of the expired lease), declares the worker gone (its deliveries in flight go back to the
//!   queue) and runs the journal's recovery again (messages it left half-processed).
//!
//! A lease is a promise about time, not a lock: a stalled instance may still be fetching when
//! another takes over. That overlap is harmless: mails are journaled under (mailbox,
//! UIDVALIDITY, UID) and Message-ID + SHA-256, so a second fetch is a duplicate of the same
//! journal message, and moving a mail already moved by the other instance moves nothing.
//!
//! Logs name instances, mailboxes (source names) and leases only.

use relais_store::Leases;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The lease of the IMAP source `name`.
pub fn mailbox_lease(name: &str) -> String {
    format!("imap:{name}")
}

/// The liveness lease of the instance (worker) `worker`.
pub fn instance_lease(worker: &str) -> String {
    format!("{INSTANCE_PREFIX}{worker}")
}

const INSTANCE_PREFIX: &str = "instance:";

/// Workers this process has seen die (their `instance:` lease expired): their deliveries in
/// flight may be given back to the queue at once.
static GONE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Whether `worker` was declared gone by this process (see [`Cluster`]).
pub fn declared_gone(worker: &str) -> bool {
    GONE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|g| g.contains(worker))
}

fn declare_gone(worker: &str) {
    GONE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(worker.to_string());
}

#[derive(Default)]
struct Mailbox {
    /// Held until this instant (local clock), unless renewed.
    valid_until: Option<Instant>,
    /// Rounds this mailbox was seen free and not taken.
    free_rounds: u32,
    /// Polls of it running in this instance.
    polling: u32,
}

struct Inner {
    leases: Arc<dyn Leases>,
    holder: String,
    ttl: Duration,
    /// IMAP source names, in configuration order.
    names: Vec<String>,
    state: Mutex<HashMap<String, Mailbox>>,
    held_tx: HashMap<String, watch::Sender<bool>>,
    /// Whether the renewal task runs (`relais run`); without it (`run --once`) a poll takes the
    /// lease itself and gives it back when done.
    daemon: AtomicBool,
    /// A dead instance was found: the journal's recovery must run again.
    recovery_due: AtomicBool,
}

/// The leases of one instance (cheap to clone).
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

/// While alive, a poll of a mailbox runs in this instance (a mailbox is not given back then).
pub struct PollPermit {
    cluster: Cluster,
    name: String,
    /// Taken for this poll alone (no renewal task): given back by [`Cluster::finish`].
    one_shot: bool,
}

impl PollPermit {
    /// Whether the lease is still held: checked before each group of mails and before moving.
    pub fn still_held(&self) -> bool {
        self.cluster.holds(&self.name)
    }
}

impl Drop for PollPermit {
    fn drop(&mut self) {
        if let Some(m) = self.cluster.state().get_mut(&self.name) {
            m.polling = m.polling.saturating_sub(1);
        }
        // A one-shot poll that ended early (an error): give its lease back all the same.
        if self.one_shot
            && !self.cluster.0.daemon.load(Ordering::SeqCst)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (cluster, name) = (self.cluster.clone(), self.name.clone());
            runtime.spawn(async move { cluster.give_back(&name).await });
        }
    }
}

impl Cluster {
    /// `holder` is this instance's worker name; `mailboxes` the IMAP source names.
    pub fn new(
        leases: Arc<dyn Leases>,
        holder: String,
        ttl: Duration,
        mailboxes: Vec<String>,
    ) -> Cluster {
        let held_tx = mailboxes
            .iter()
            .map(|n| (n.clone(), watch::channel(false).0))
            .collect();
        let state = mailboxes
            .iter()
            .map(|n| (n.clone(), Mailbox::default()))
            .collect();
        Cluster(Arc::new(Inner {
            leases,
            holder,
            ttl,
            names: mailboxes,
            state: Mutex::new(state),
            held_tx,
            daemon: AtomicBool::new(false),
            recovery_due: AtomicBool::new(false),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mailbox>> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease time-to-live.
    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }

    /// How long one lease call may take before it counts as failed.
    fn call_timeout(&self) -> Duration {
        self.0.ttl / 4
    }

    /// Whether this instance holds the lease of mailbox `name` now (by its own clock, with the
    /// margin described in the module docs).
    pub fn holds(&self, name: &str) -> bool {
        self.state()
            .get(name)
            .and_then(|m| m.valid_until)
            .is_some_and(|t| Instant::now() < t)
    }

    /// Follows whether this instance holds mailbox `name` (for its IDLE watcher).
    pub fn held(&self, name: &str) -> watch::Receiver<bool> {
        match self.0.held_tx.get(name) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(false).1,
        }
    }

    /// A dead instance was found since the last call: run the journal's recovery again.
    pub fn take_recovery_due(&self) -> bool {
        self.0.recovery_due.swap(false, Ordering::SeqCst)
    }

    fn set_held(&self, name: &str, until: Option<Instant>) {
        if let Some(m) = self.state().get_mut(name) {
            m.valid_until = until;
            m.free_rounds = 0;
        }
        if let Some(tx) = self.0.held_tx.get(name) {
            tx.send_if_modified(|v| {
                let now = until.is_some();
                let changed = *v != now;
                *v = now;
                changed
            });
        }
    }

    /// Try to take mailbox `name`; logs who had it when it is taken over.
    async fn acquire(&self, name: &str) -> bool {
        let lease = mailbox_lease(name);
        let leases = &self.0.leases;
        let previous = tokio::time::timeout(self.call_timeout(), leases.lease(&lease))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let started = Instant::now();
        let got = tokio::time::timeout(
            self.call_timeout(),
            leases.try_acquire(&lease, &self.0.holder, self.0.ttl),
        )
        .await;
        match got {
            Ok(Ok(true)) => {
                self.set_held(name, Some(started + self.0.ttl / 2));
                if !self.0.daemon.load(Ordering::SeqCst) {
                    tracing::debug!(source = %name, "mailbox lease taken for one poll");
                    return true;
                }
                match previous {
                    Some(p) if p.holder != self.0.holder => tracing::info!(
                        source = %name,
                        instance = %self.0.holder,
                        previous = %p.holder,
                        "mailbox taken over: its previous instance's lease had expired"
                    ),
                    _ => {
                        tracing::info!(source = %name, instance = %self.0.holder, "mailbox taken: this instance polls it")
                    }
                }
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                tracing::warn!(source = %name, code = e.code(), error = %e, "cannot take the mailbox lease");
                false
            }
            Err(_) => {
                tracing::warn!(source = %name, "the journal did not answer the mailbox lease request in time");
                false
            }
        }
    }

    /// Renew mailbox `name`; stops polling it when refused or when the lease may lapse.
    async fn renew(&self, name: &str) {
        let lease = mailbox_lease(name);
        let started = Instant::now();
        let renewed = tokio::time::timeout(
            self.call_timeout(),
            self.0.leases.renew(&lease, &self.0.holder, self.0.ttl),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => self.set_held(name, Some(started + self.0.ttl / 2)),
            Ok(Ok(false)) => {
                self.set_held(name, None);
                tracing::info!(source = %name, instance = %self.0.holder, "mailbox lease lost (another instance holds it): polling stopped");
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %name, code = e.code(), error = %e, "cannot renew the mailbox lease");
                self.drop_if_lapsed(name);
            }
            Err(_) => {
                tracing::warn!(source = %name, "the journal did not answer the mailbox lease renewal in time");
                self.drop_if_lapsed(name);
            }
        }
    }

    fn drop_if_lapsed(&self, name: &str) {
        if !self.holds(name) && *self.held(name).borrow() {
            self.set_held(name, None);
            tracing::info!(source = %name, instance = %self.0.holder, "mailbox lease not renewed in time: polling stopped");
        }
    }

    /// Give mailbox `name` back (shutdown, rebalancing, end of a one-shot poll).
    async fn give_back(&self, name: &str) {
        let was_held = *self.held(name).borrow() || self.holds(name);
        self.set_held(name, None);
        let lease = mailbox_lease(name);
        let _ = tokio::time::timeout(
            self.call_timeout(),
            self.0.leases.release(&lease, &self.0.holder),
        )
        .await;
        if was_held && self.0.daemon.load(Ordering::SeqCst) {
            tracing::info!(source = %name, instance = %self.0.holder, "mailbox given back");
        }
    }

    /// Before polling mailbox `name`: `None` when another instance polls it. Without the
    /// renewal task (`run --once`), the lease is taken here for this poll alone.
    pub async fn permit(&self, name: &str) -> Option<PollPermit> {
        let daemon = self.0.daemon.load(Ordering::SeqCst);
        let one_shot = !daemon && !self.holds(name);
        if one_shot && !self.acquire(name).await {
            tracing::info!(source = %name, "mailbox polled by another instance: skipped");
            return None;
        }
        if !self.holds(name) {
            return None;
        }
        if let Some(m) = self.state().get_mut(name) {
            m.polling += 1;
        }
        Some(PollPermit {
            cluster: self.clone(),
            name: name.to_string(),
            one_shot,
        })
    }

    /// After a poll: a lease taken for it alone is given back.
    pub async fn finish(&self, mut permit: PollPermit) {
        let (one_shot, name) = (permit.one_shot, permit.name.clone());
        permit.one_shot = false;
        drop(permit);
        if one_shot && !self.0.daemon.load(Ordering::SeqCst) {
            self.give_back(&name).await;
        }
    }

    /// One round: announce this instance, renew or take mailboxes, share them out, and claim
    /// the leases of dead instances. Returns whether a mailbox was taken or a dead instance
    /// found (the caller then polls at once).
    pub async fn round(&self) -> bool {
        let mut news = false;
        let me = instance_lease(&self.0.holder);
        let timeout = self.call_timeout();
        let leases = &self.0.leases;
        match tokio::time::timeout(timeout, leases.try_acquire(&me, &self.0.holder, self.0.ttl))
            .await
        {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::warn!(instance = %self.0.holder, "another process holds this instance's name")
            }
            Ok(Err(e)) => {
                tracing::warn!(code = e.code(), error = %e, "cannot renew this instance's lease")
            }
            Err(_) => {
                tracing::warn!("the journal did not answer this instance's lease renewal in time")
            }
        }
        let instances = tokio::time::timeout(timeout, leases.leases_with_prefix(INSTANCE_PREFIX))
            .await
            .ok()
            .and_then(Result::ok);
        let live = instances
            .as_ref()
            .map(|all| all.iter().filter(|(_, l)| !l.expired).count())
            .unwrap_or(1)
            .max(1);
        let share = self.0.names.len().div_ceil(live);

        // Mailboxes held: renew them first.
        for name in &self.0.names {
            if *self.held(name).borrow() {
                self.renew(name).await;
            }
        }
        let held = |c: &Cluster| c.0.names.iter().filter(|n| c.holds(n)).count();
        // Free (or expired) mailboxes: take them up to the share, or when left free too long.
        for name in &self.0.names {
            if self.holds(name) {
                continue;
            }
            let free_rounds = self.state().get(name).map_or(0, |m| m.free_rounds);
            if (held(self) < share || free_rounds >= 2) && self.acquire(name).await {
                news = true;
                continue;
            }
            let free = tokio::time::timeout(timeout, leases.lease(&mailbox_lease(name)))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|l| l.is_none_or(|l| l.expired));
            if let Some(m) = self.state().get_mut(name) {
                m.free_rounds = if free == Some(true) {
                    m.free_rounds + 1
                } else {
                    0
                };
            }
        }
        // Above the share (instances joined): give one back, not one being polled.
        if held(self) > share {
            let idle = self.0.names.iter().rev().find(|n| {
                self.holds(n) && self.state().get(n.as_str()).is_some_and(|m| m.polling == 0)
            });
            if let Some(name) = idle.cloned() {
                tracing::info!(source = %name, instance = %self.0.holder, live, share, "more instances: giving a mailbox back");
                self.give_back(&name).await;
            }
        }
        // Dead instances: exactly one live instance claims each expired `instance:` lease.
        for (lease, info) in instances.unwrap_or_default() {
            if !info.expired || lease == me {
                continue;
            }
            let Some(worker) = lease.strip_prefix(INSTANCE_PREFIX) else {
                continue;
            };
            if let Ok(Ok(true)) = tokio::time::timeout(
                timeout,
                leases.try_acquire(&lease, &self.0.holder, self.0.ttl),
            )
            .await
            {
                declare_gone(worker);
                self.0.recovery_due.store(true, Ordering::SeqCst);
                news = true;
                tracing::info!(
                    instance = %self.0.holder,
                    gone = %worker,
                    "an instance stopped without giving its leases back: taking up its interrupted work"
                );
                let _ = tokio::time::timeout(timeout, leases.release(&lease, &self.0.holder)).await;
            }
        }
        news
    }

    /// Renew and share out the leases every third of the time-to-live, until `stop` flips;
    /// then give everything back. `wake` is told when there is something to poll at once.
    pub async fn keep(self, wake: tokio::sync::mpsc::Sender<()>, mut stop: watch::Receiver<bool>) {
        self.0.daemon.store(true, Ordering::SeqCst);
        let period = self.0.ttl / 3;
        loop {
            if self.round().await {
                let _ = wake.try_send(());
            }
            // Wake at the next round, or earlier when a held lease would lapse before it.
            let next = Instant::now() + period;
            let lapse = self
                .state()
                .values()
                .filter_map(|m| m.valid_until)
                .filter(|t| *t > Instant::now())
                .min();
            let until = lapse.map_or(next, |l| l.min(next));
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = stop.changed() => break,
            }
            if Instant::now() < next {
                // A lease lapsed before the next round (renewals failing): stop polling it.
                for name in &self.0.names {
                    self.drop_if_lapsed(name);
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        self.release_all().await;
    }

    /// Give every lease back (clean shutdown): the other instances take over at once.
    pub async fn release_all(&self) {
        for name in &self.0.names {
            if *self.held(name).borrow() || self.holds(name) {
                self.give_back(name).await;
            }
        }
        let me = instance_lease(&self.0.holder);
        let _ = tokio::time::timeout(
            self.call_timeout(),
            self.0.leases.release(&me, &self.0.holder),
        )
        .await;
        self.0.daemon.store(false, Ordering::SeqCst);
    }
}

/// The renewal task of a `relais run` (see [`Cluster::start_keeper`]).
pub struct Keeper {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Keeper {
    /// Stop renewing and give every lease back, so that other instances take over at once.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Dropped without `stop` (the daemon's future was dropped): the task gives the leases
        // back on its own.
        let _ = self.stop.send(true);
    }
}

impl Cluster {
    /// Start renewing and sharing out the leases in a task of their own, every third of the
    /// time-to-live; `wake` is told when a mailbox was taken or a dead instance found.
    pub fn start_keeper(&self, wake: tokio::sync::mpsc::Sender<()>) -> Keeper {
        let (stop, rx) = watch::channel(false);
        // Daemon mode from now on: polls wait for the keeper's leases rather than taking their
        // own for one poll.
        self.0.daemon.store(true, Ordering::SeqCst);
        let task = tokio::spawn(self.clone().keep(wake, rx));
        Keeper {
            stop,
            task: Some(task),
        }
    }
}
