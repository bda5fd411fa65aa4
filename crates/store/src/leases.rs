//! Named leases: at most one holder at a time for a job that several instances could do but only
//! one may, e.g. polling one IMAP mailbox (two pollers would race on the same UIDs and moves).
//!
//! A holder (an instance, named e.g. `host-a/1234`) takes the lease with
//! [`Leases::try_acquire`] for a time-to-live, keeps it with [`Leases::renew`] well before the
//! TTL runs out (a third of it is a good period), and gives it up with [`Leases::release`] when it
//! stops. If its instance dies, the lease simply expires and another instance's next
//! `try_acquire` takes it over: that is the whole failover.
//!
//! A lease is a promise about time, not a lock: a holder that stalls longer than its TTL (a long
//! GC-like pause, a frozen VM) may still be working when another one takes over. So a holder
//! must stop the job as soon as `renew` returns `false`, and the job must stay safe when done
//! twice for a moment — which the journal's dedup keys (IMAP mailbox + UIDVALIDITY + UID) and
//! idempotent deliveries make it.
//!
//! Implemented by [`crate::PgJournal`] (the database server's clock, shared by every host) and
//! [`crate::SqliteJournal`] (this host's clock: processes sharing one SQLite file share a host),
//! on a `leases` table (migration `0005_leases.sql`).

use std::time::Duration;

use async_trait::async_trait;
use tracing::debug;

use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::sqlite::SqliteJournal;

/// Longest lease name or holder accepted.
const MAX_LEN: usize = 1024;
/// Longest time-to-live accepted (a lease held for longer than this is a configuration error).
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Who holds a lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The holder's name.
    pub holder: String,
    /// When the holder took it (renewals keep this).
    pub acquired_at: Timestamp,
    /// When it was last taken or renewed.
    pub renewed_at: Timestamp,
    /// When it runs out unless renewed.
    pub expires_at: Timestamp,
    /// Whether it had run out when read (by the clock of the journal: the database server's
    /// for PostgreSQL): anyone's `try_acquire` would take it.
    pub expired: bool,
}

/// Named, expiring, exclusive leases (see the module docs).
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease `name` for `holder` until now + `ttl` when it is free, expired, or
    /// already held by `holder` (then it is extended, like [`Leases::renew`]). Returns whether
    /// `holder` holds it now. Of several instances trying at once, exactly one gets it.
    async fn try_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Extends the lease to now + `ttl` if `holder` still holds it. Returns `false` when it does
    /// not (released, or taken over by another holder after it expired): stop the job then.
    /// A renewal that comes a little late still succeeds as long as nobody took the lease in
    /// between.
    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Gives the lease up so that another instance can take it at once. Returns whether
    /// `holder` held it (releasing a lease held by someone else does nothing).
    async fn release(&self, name: &str, holder: &str) -> Result<bool>;

    /// Who holds the lease `name`, if anyone took it and nobody released it since.
    async fn lease(&self, name: &str) -> Result<Option<LeaseInfo>>;

    /// Every lease (expired ones included) whose name starts with `prefix`, by name: e.g.
    /// `instance:` for the instances that announced themselves and when each was last heard of.
    async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<(String, LeaseInfo)>>;
}

/// Checks the arguments shared by `try_acquire` and `renew`.
pub(crate) fn check_lease_args(name: &str, holder: &str, ttl: Duration) -> Result<()> {
    for (what, value) in [("a lease name", name), ("a lease holder", holder)] {
        if value.is_empty() || value.len() > MAX_LEN || value.contains('\0') {
            return Err(StoreError::InvalidInput(format!(
                "{what} must be 1 to {MAX_LEN} bytes long, without NUL characters"
            )));
        }
    }
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(StoreError::InvalidInput(format!(
            "a lease time-to-live must be more than zero and at most {} s",
            MAX_TTL.as_secs()
        )));
    }
    Ok(())
}

fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
struct NamedLeaseRow {
    name: String,
    holder: String,
    acquired_at: i64,
    renewed_at: i64,
    expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    holder: String,
    acquired_at: i64,
    renewed_at: i64,
    expires_at: i64,
}

#[async_trait]
impl Leases for SqliteJournal {
    async fn try_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        check_lease_args(name, holder, ttl)?;
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at)
             VALUES (?1, ?2, ?3, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET
                holder = excluded.holder,
                acquired_at = CASE WHEN leases.holder = excluded.holder
                                   THEN leases.acquired_at ELSE excluded.acquired_at END,
                renewed_at = excluded.renewed_at,
                expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.0)
        .bind(now.plus(ttl).0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        debug!(acquired = got.is_some(), "lease acquisition");
        Ok(got.is_some())
    }

    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        check_lease_args(name, holder, ttl)?;
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now();
        let done = sqlx::query(
            "UPDATE leases SET renewed_at = ?3, expires_at = ?3 + ?4 WHERE name = ?1 AND holder = ?2",
        )
        .bind(name)
        .bind(holder)
        .bind(now.0)
        .bind(ttl_millis(ttl))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease(&self, name: &str) -> Result<Option<LeaseInfo>> {
        let row = sqlx::query_as::<_, LeaseRow>(
            "SELECT holder, acquired_at, renewed_at, expires_at FROM leases WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        let now = Timestamp::now();
        Ok(row.map(|r| LeaseInfo {
            holder: r.holder,
            acquired_at: Timestamp(r.acquired_at),
            renewed_at: Timestamp(r.renewed_at),
            expires_at: Timestamp(r.expires_at),
            expired: r.expires_at <= now.0,
        }))
    }

    async fn leases_with_prefix(&self, prefix: &str) -> Result<Vec<(String, LeaseInfo)>> {
        let rows = sqlx::query_as::<_, NamedLeaseRow>(
            "SELECT name, holder, acquired_at, renewed_at, expires_at FROM leases
             WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(&self.reader)
        .await?;
        let now = Timestamp::now();
        Ok(rows
            .into_iter()
            .map(|r| {
                let expired = r.expires_at <= now.0;
                (
                    r.name,
                    LeaseInfo {
                        holder: r.holder,
                        acquired_at: Timestamp(r.acquired_at),
                        renewed_at: Timestamp(r.renewed_at),
                        expires_at: Timestamp(r.expires_at),
                        expired,
                    },
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_are_listed_by_name_prefix_with_their_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let j = SqliteJournal::open(dir.path().join("journal"))
            .await
            .unwrap();
        let short = Duration::from_millis(100);
        let long = Duration::from_secs(60);
        assert!(j.try_acquire("instance:a", "a", short).await.unwrap());
        assert!(j.try_acquire("instance:b", "b", long).await.unwrap());
        assert!(j.try_acquire("imap:bal", "a", long).await.unwrap());
        // `_` and `%` are not wildcards.
        assert!(j.try_acquire("instance_x", "x", long).await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listed = j.leases_with_prefix("instance:").await.unwrap();
        let names: Vec<(&str, &str, bool)> = listed
            .iter()
            .map(|(n, l)| (n.as_str(), l.holder.as_str(), l.expired))
            .collect();
        assert_eq!(
            names,
            [("instance:a", "a", true), ("instance:b", "b", false)]
        );
        assert_eq!(j.leases_with_prefix("imap:").await.unwrap().len(), 1);
        assert_eq!(j.leases_with_prefix("").await.unwrap().len(), 4);
        assert!(j.leases_with_prefix("none:").await.unwrap().is_empty());
    }
}
