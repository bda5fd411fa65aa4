//! Group commit for the SQLite writer.
//!
//! With `synchronous=FULL` every commit waits for an fsync of the WAL. When the engine works on
//! many mails at once, one fsync per journal call would make the disk the bottleneck. The
//! [`GroupWriter`] lets concurrent calls share one transaction and therefore one fsync, without
//! weakening what a call promises: it still returns `Ok` only once its own changes are
//! committed.
//!
//! How: the writer connection holds at most one open `BEGIN IMMEDIATE` transaction, the *batch*.
//! Each call runs inside its own `SAVEPOINT`; when it succeeds the savepoint is released into the
//! batch, when it fails (or is abandoned) the savepoint is rolled back, so one call's failure
//! never undoes another's work. A call that succeeded then waits for its batch to be committed:
//! the first waiter to take the leader lock commits the batch for everyone in it, the others
//! find it done. Calls that arrive while a commit is on disk queue behind it and form the next
//! batch. With a single caller this is exactly one transaction per call, as before.
//!
//! If the `COMMIT` fails, or SQLite aborts the transaction, every call of that batch gets the
//! error: none of them is committed, none of them reports success.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::{debug, warn};

use crate::error::{Result, StoreError};

/// How many failed batches are remembered for their late waiters.
const FAILED_KEPT: usize = 64;

/// The single writer connection, shared by concurrent calls through batches.
#[derive(Debug)]
pub(crate) struct GroupWriter {
    shared: Arc<Mutex<Shared>>,
    /// Held by the call committing a batch.
    leader: Mutex<()>,
    outcomes: std::sync::Mutex<Outcomes>,
    /// Calls committed, and the commits they took.
    calls: AtomicU64,
    commits: AtomicU64,
    /// Time spent in COMMIT since the last timing log line.
    commit_micros: AtomicU64,
}

/// How well writes were grouped since the journal was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Write calls that succeeded.
    pub calls: u64,
    /// Transactions committed for them (each one fsync of the WAL).
    pub commits: u64,
}

#[derive(Debug)]
struct Shared {
    conn: SqliteConnection,
    /// The batch whose transaction is open, if any.
    open: Option<u64>,
    /// The last batch number handed out.
    last_batch: u64,
    /// A call left its savepoint open (it failed or was dropped): roll it back before going on.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Outcomes {
    /// Every batch up to this one is finished (committed or failed).
    finished_upto: u64,
    /// Batches that failed, with the reason.
    failed: BTreeMap<u64, String>,
}

impl Outcomes {
    fn of(&self, batch: u64) -> Option<Result<()>> {
        if batch > self.finished_upto {
            return None;
        }
        Some(match self.failed.get(&batch) {
            Some(reason) => Err(StoreError::GroupCommit(reason.clone())),
            None => Ok(()),
        })
    }
}

impl GroupWriter {
    pub(crate) fn new(conn: SqliteConnection) -> Arc<GroupWriter> {
        Arc::new(GroupWriter {
            shared: Arc::new(Mutex::new(Shared {
                conn,
                open: None,
                last_batch: 0,
                dirty: false,
            })),
            leader: Mutex::new(()),
            outcomes: std::sync::Mutex::new(Outcomes::default()),
            calls: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            calls: self.calls.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }

    /// Starts a call: joins the open batch (or opens one) inside a fresh savepoint.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<WriteTx> {
        let mut g = self.shared.clone().lock_owned().await;
        self.settle(&mut g).await;
        if g.open.is_none() {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut g.conn).await?;
            g.last_batch += 1;
            g.open = Some(g.last_batch);
        }
        let batch = g.open.unwrap_or_default();
        if let Err(e) = sqlx::query("SAVEPOINT op").execute(&mut g.conn).await {
            self.abort_batch(&mut g, &e.to_string()).await;
            return Err(e.into());
        }
        Ok(WriteTx {
            guard: Some(g),
            writer: self.clone(),
            batch,
        })
    }

    /// Rolls back the savepoint a failed call left open; if SQLite already aborted the whole
    /// transaction, the batch fails.
    async fn settle(&self, g: &mut Shared) {
        if !g.dirty {
            return;
        }
        g.dirty = false;
        let undone = async {
            sqlx::query("ROLLBACK TO op").execute(&mut g.conn).await?;
            sqlx::query("RELEASE op").execute(&mut g.conn).await
        }
        .await;
        if let Err(e) = undone {
            self.abort_batch(g, &format!("the transaction was aborted: {e}"))
                .await;
        }
    }

    /// Rolls the whole batch back and makes its calls fail with `reason`.
    async fn abort_batch(&self, g: &mut Shared, reason: &str) {
        // When SQLite already rolled the transaction back itself, this fails harmlessly.
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut g.conn).await {
            debug!(error = %e, "rollback of a failed journal batch");
        }
        g.dirty = false;
        if let Some(batch) = g.open.take() {
            warn!(batch, "journal batch rolled back: {reason}");
            self.finish(batch, Some(reason.to_string()));
        }
    }

    fn finish(&self, batch: u64, failure: Option<String>) {
        let mut o = self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.finished_upto = o.finished_upto.max(batch);
        if let Some(reason) = failure {
            o.failed.insert(batch, reason);
            while o.failed.len() > FAILED_KEPT {
                o.failed.pop_first();
            }
        }
    }

    fn outcome(&self, batch: u64) -> Option<Result<()>> {
        self.outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .of(batch)
    }

    /// Waits until `batch` is finished, committing it when no one else does.
    async fn wait_durable(&self, batch: u64) -> Result<()> {
        loop {
            if let Some(r) = self.outcome(batch) {
                return r;
            }
            let _leader = self.leader.lock().await;
            if let Some(r) = self.outcome(batch) {
                return r;
            }
            let mut g = self.shared.lock().await;
            self.settle(&mut g).await;
            if g.open == Some(batch) {
                let started = std::time::Instant::now();
                match sqlx::query("COMMIT").execute(&mut g.conn).await {
                    Ok(_) => {
                        g.open = None;
                        let commits = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
                        self.commit_micros
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        if commits.is_multiple_of(512) {
                            let calls = self.calls.load(Ordering::Relaxed);
                            let micros = self.commit_micros.swap(0, Ordering::Relaxed);
                            debug!(
                                target: "relais::timing",
                                commits,
                                calls,
                                avg_commit_us = micros / 512,
                                "journal group commits"
                            );
                        }
                        self.finish(batch, None);
                    }
                    Err(e) => {
                        self.abort_batch(&mut g, &format!("commit failed: {e}"))
                            .await
                    }
                }
            }
        }
    }

    /// Commits whatever is open (used by [`WriteTx`]'s drop so that an abandoned call never
    /// leaves the write lock held).
    async fn flush(self: Arc<Self>) {
        let open = self.shared.lock().await.open;
        if let Some(batch) = open
            && let Err(e) = self.wait_durable(batch).await
        {
            warn!(error = %e, "journal batch left by a failed call could not be committed");
        }
    }
}

/// One call's share of a batch: derefs to the writer connection. [`WriteTx::commit`] returns
/// once the batch is durable; dropping it without committing undoes the call's changes.
pub(crate) struct WriteTx {
    guard: Option<OwnedMutexGuard<Shared>>,
    writer: Arc<GroupWriter>,
    batch: u64,
}

impl WriteTx {
    /// Keeps this call's changes and waits until they are committed to disk.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let Some(mut g) = self.guard.take() else {
            return Err(StoreError::GroupCommit("call already finished".into()));
        };
        if let Err(e) = sqlx::query("RELEASE op").execute(&mut g.conn).await {
            g.dirty = true;
            return Err(e.into());
        }
        drop(g);
        self.writer.wait_durable(self.batch).await?;
        self.writer.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match &self.guard {
            Some(g) => &g.conn,
            None => unreachable!("a WriteTx is not used after commit"),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.guard {
            Some(g) => &mut g.conn,
            None => unreachable!("a WriteTx is not used after commit"),
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.dirty = true;
            drop(g);
            // Nobody may be left to commit the batch: do it in the background so the write
            // lock is released (the other calls of the batch, if any, are unaffected).
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(self.writer.clone().flush());
            }
        }
    }
}
