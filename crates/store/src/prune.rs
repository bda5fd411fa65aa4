//! Retention: pruning old, finished messages from the SQLite journal in small transactions.
//!
//! Three classes, each with its own horizon ([`PrunePolicy`]); a message counts for a class
//! only when it is **finished**: filed or rejected, no review open, no delivery pending or in
//! flight, no answer still due to its sender, its last change (`updated_at`) and every event of
//! its trail older than the horizon. A message waiting for review, delivery or an answer is
//! never touched, however old.
//!
//! - **events**: the message goes entirely (events, reviews, deliveries, documents, row);
//! - **documents**: the document bytes kept for the sinks (payloads of completed deliveries)
//!   are emptied, the rows stay;
//! - **raw mails**: the raw mail is dropped (`raw_pruned_at` set), the row stays.
//!
//! Every transaction handles at most about `chunk_rows` rows and goes through the single writer
//! like any other write, so intake waits for one chunk at most. Each one first writes its audit
//! record (`prune_chunks`, append-only) and names its messages in `prune_targets`: the triggers of
//! migration `0006_retention.sql` let an event be deleted only then, so an ordinary `DELETE` is
//! still refused. A blob file is removed after the commit that released it, and only if no row
//! still needs it: a crash in between leaves an orphan file, never a row without its blob; each
//! run ends by sweeping orphans older than [`PrunePolicy::orphan_grace`]. A dry run reads the
//! same candidates and reports the same counts without writing anything.
//!
//! Outbound letters (`letters`) are not pruned yet; their blobs are always kept.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnection;
use tracing::{debug, info};

use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::sqlite::SqliteJournal;

/// What to prune and as whom.
#[derive(Debug, Clone)]
pub struct PrunePolicy {
    /// How long raw mails are kept after their message is finished; `None`: for ever.
    pub raw_mail: Option<Duration>,
    /// How long documents (the payloads kept for the sinks) are kept; `None`: for ever.
    pub documents: Option<Duration>,
    /// How long a finished message and its audit trail are kept; `None`: for ever.
    pub events: Option<Duration>,
    /// The time horizons are counted from (normally now).
    pub now: Timestamp,
    /// Who prunes, for the audit record: "daemon", "cli:<user>"...
    pub actor: String,
    /// Blob files referenced by no row are swept once they are this old (a younger one may
    /// belong to an intake that has not committed yet).
    pub orphan_grace: Duration,
    /// After each pruning transaction, pause this many times as long as it took, leaving the
    /// single writer to intake in between. 3.0 (the default): pruning takes about a quarter of
    /// the writer's time at most; 0: no pause, fastest, for a journal nobody else writes to.
    pub pause_ratio: f32,
    /// Test hook: stop after the rows are committed, before removing blob files, as a crash
    /// there would.
    #[doc(hidden)]
    pub stop_before_blobs: bool,
}

impl PrunePolicy {
    /// Keeps everything (no class configured), as `actor`, counted from now.
    pub fn new(actor: impl Into<String>) -> Self {
        PrunePolicy {
            raw_mail: None,
            documents: None,
            events: None,
            now: Timestamp::now(),
            actor: actor.into(),
            orphan_grace: Duration::from_secs(3600),
            pause_ratio: 3.0,
            stop_before_blobs: false,
        }
    }

    fn horizon(&self, keep: Option<Duration>) -> Option<Timestamp> {
        keep.map(|d| self.now.minus(d))
    }
}

/// What one class lost (or would lose, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassReport {
    /// Messages older than this were considered; `None`: the class is kept for ever.
    pub horizon: Option<Timestamp>,
    /// Messages affected.
    pub messages: u64,
    /// Events deleted (events class).
    pub events: u64,
    /// Documents deleted (events class) or whose payloads were emptied (documents class).
    pub documents: u64,
    /// Deliveries deleted (events class) or whose payloads were emptied (documents class).
    pub deliveries: u64,
    /// Reviews deleted (events class).
    pub reviews: u64,
    /// Raw mail bytes dropped (events and raw mail classes, as journaled sizes) or payload bytes
    /// emptied (documents class).
    pub bytes: u64,
    /// Reception time of the oldest message affected.
    pub oldest: Option<Timestamp>,
    /// Reception time of the newest message affected.
    pub newest: Option<Timestamp>,
}

impl ClassReport {
    fn add(&mut self, c: &ClassReport) {
        self.messages += c.messages;
        self.events += c.events;
        self.documents += c.documents;
        self.deliveries += c.deliveries;
        self.reviews += c.reviews;
        self.bytes += c.bytes;
        self.oldest = match (self.oldest, c.oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.newest = match (self.newest, c.newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Blob files removed (or that would be).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobReport {
    /// Files removed, orphans included.
    pub files: u64,
    /// Their size on disk.
    pub bytes: u64,
    /// Of which orphans: files no row referenced before this run (left by an interrupted run).
    pub orphans: u64,
}

/// What [`crate::Journal::prune`] did, or would do in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The audit record of the run (`prune_runs.id`); `None` for a dry run.
    pub run: Option<i64>,
    /// Messages deleted entirely, with their trail.
    pub events: ClassReport,
    /// Document payloads emptied.
    pub documents: ClassReport,
    /// Raw mails dropped.
    pub raw_mails: ClassReport,
    /// Blob files removed.
    pub blobs: BlobReport,
    /// Transactions written.
    pub chunks: u64,
}

impl PruneReport {
    /// Whether the run removed (or would remove) nothing.
    pub fn is_empty(&self) -> bool {
        self.events.messages == 0
            && self.documents.messages == 0
            && self.raw_mails.messages == 0
            && self.blobs.files == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Events,
    Documents,
    RawMail,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Events => "events",
            Class::Documents => "documents",
            Class::RawMail => "raw_mail",
        }
    }

    /// What a message needs on top of being finished before the horizon (`?1`).
    fn extra(self) -> &'static str {
        match self {
            Class::Events => "",
            Class::Documents => {
                "AND EXISTS (SELECT 1 FROM documents d JOIN deliveries v ON v.document_id = d.id
                     WHERE d.message_id = m.id AND v.state IN ('delivered', 'rejected')
                       AND length(v.payload) > 0)"
            }
            Class::RawMail => "AND m.raw_pruned_at IS NULL",
        }
    }

    /// How many rows a message weighs in a chunk.
    fn weight(self) -> &'static str {
        match self {
            Class::Events => "(SELECT COUNT(*) FROM events e WHERE e.message_id = m.id) + 1",
            Class::Documents => "1",
            Class::RawMail => "1",
        }
    }
}

/// A finished message whose whole trail is older than `?1`. (`+m.state`: walk the messages in
/// id order rather than through the state index, so that a batch stops at its LIMIT.)
const FINISHED: &str = "+m.state IN ('filed', 'rejected') AND m.updated_at < ?1
    AND (m.answer IS NULL OR m.answer <> 'due')
    AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.message_id = m.id AND r.status = 'open')
    AND NOT EXISTS (SELECT 1 FROM documents d JOIN deliveries v ON v.document_id = d.id
                     WHERE d.message_id = m.id AND v.state IN ('pending', 'in_flight'))
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.at >= ?1)";

/// Is this content still needed by a row?
const REFERENCED: &str =
    "SELECT EXISTS (SELECT 1 FROM messages WHERE sha256 = ?1 AND raw_pruned_at IS NULL)
     OR EXISTS (SELECT 1 FROM letters WHERE mail_sha256 = ?1)";

/// Candidates read per query.
const SCAN_BATCH: i64 = 2000;

#[derive(sqlx::FromRow)]
struct Candidate {
    id: i64,
    sha256: String,
    has_raw: bool,
    weight: i64,
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Candidates of `class` with an id above `after`, oldest first (`only`: among these ids).
async fn candidates(
    conn: &mut SqliteConnection,
    class: Class,
    horizon: Timestamp,
    after: i64,
    only: Option<&str>,
) -> Result<Vec<Candidate>> {
    let restrict = if only.is_some() {
        "AND m.id IN (SELECT value FROM json_each(?4))"
    } else {
        ""
    };
    // Assembled from constants of this module only (no caller input).
    let sql = format!(
        "SELECT m.id, m.sha256, m.raw_pruned_at IS NULL AS has_raw, {weight} AS weight
           FROM messages m
          WHERE m.id > ?2 {restrict} AND {FINISHED} {extra}
          ORDER BY m.id LIMIT ?3",
        weight = class.weight(),
        extra = class.extra(),
    );
    Ok(sqlx::query_as::<_, Candidate>(AssertSqlSafe(sql))
        .bind(horizon.0)
        .bind(after)
        .bind(if only.is_some() { i64::MAX } else { SCAN_BATCH })
        .bind(only.unwrap_or("[]"))
        .fetch_all(&mut *conn)
        .await?)
}

/// What pruning `ids` (a JSON array) for `class` removes.
async fn measure(conn: &mut SqliteConnection, class: Class, ids: &str) -> Result<ClassReport> {
    let (n, raw_bytes, first, last): (i64, Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(CASE WHEN raw_pruned_at IS NULL THEN size ELSE 0 END),
                    MIN(received_at), MAX(received_at)
               FROM messages WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(ids)
    .fetch_one(&mut *conn)
    .await?;
    let mut r = ClassReport {
        messages: to_u64(n),
        oldest: first.map(Timestamp),
        newest: last.map(Timestamp),
        ..ClassReport::default()
    };
    match class {
        Class::RawMail => r.bytes = to_u64(raw_bytes.unwrap_or(0)),
        Class::Events => {
            r.bytes = to_u64(raw_bytes.unwrap_or(0));
            let (events, documents, deliveries, reviews): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT
                    (SELECT COUNT(*) FROM events WHERE message_id IN (SELECT value FROM json_each(?1))),
                    (SELECT COUNT(*) FROM documents WHERE message_id IN (SELECT value FROM json_each(?1))),
                    (SELECT COUNT(*) FROM deliveries WHERE document_id IN
                        (SELECT id FROM documents WHERE message_id IN (SELECT value FROM json_each(?1)))),
                    (SELECT COUNT(*) FROM reviews WHERE message_id IN (SELECT value FROM json_each(?1)))",
            )
            .bind(ids)
            .fetch_one(&mut *conn)
            .await?;
            r.events = to_u64(events);
            r.documents = to_u64(documents);
            r.deliveries = to_u64(deliveries);
            r.reviews = to_u64(reviews);
        }
        Class::Documents => {
            let (deliveries, documents, bytes): (i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), COUNT(DISTINCT v.document_id), SUM(length(v.payload))
                   FROM deliveries v JOIN documents d ON d.id = v.document_id
                  WHERE d.message_id IN (SELECT value FROM json_each(?1))
                    AND v.state IN ('delivered', 'rejected') AND length(v.payload) > 0",
            )
            .bind(ids)
            .fetch_one(&mut *conn)
            .await?;
            r.deliveries = to_u64(deliveries);
            r.documents = to_u64(documents);
            r.bytes = to_u64(bytes.unwrap_or(0));
        }
    }
    Ok(r)
}

/// Splits candidates into chunks of about `chunk_rows` rows (at least one message each).
fn chunks(cands: &[Candidate], chunk_rows: u32) -> Vec<&[Candidate]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut rows = 0i64;
    for (i, c) in cands.iter().enumerate() {
        if i > start && rows + c.weight > i64::from(chunk_rows) {
            out.push(&cands[start..i]);
            start = i;
            rows = 0;
        }
        rows += c.weight;
    }
    if start < cands.len() {
        out.push(&cands[start..]);
    }
    out
}

/// The blob files under the store: (name, path).
fn blob_files(root: &std::path::Path) -> Result<Vec<(String, PathBuf)>> {
    let io = |op: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StoreError::BlobIo { op, path, source }
    };
    let mut out = Vec::new();
    for shard in std::fs::read_dir(root).map_err(io("list", root))? {
        let shard = shard.map_err(io("list", root))?;
        let prefix = shard.file_name().to_string_lossy().into_owned();
        if prefix.len() != 2 || !shard.path().is_dir() {
            continue;
        }
        let dir = shard.path();
        for f in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let f = f.map_err(io("list", &dir))?;
            let rest = f.file_name().to_string_lossy().into_owned();
            let name = format!("{prefix}{rest}");
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push((name, f.path()));
            }
        }
    }
    Ok(out)
}

impl SqliteJournal {
    /// See [`crate::Journal::prune`].
    pub(crate) async fn prune_sqlite(
        &self,
        policy: &PrunePolicy,
        dry_run: bool,
        chunk_rows: u32,
    ) -> Result<PruneReport> {
        let started = Instant::now();
        let chunk_rows = chunk_rows.max(1);
        let mut report = PruneReport {
            dry_run,
            ..PruneReport::default()
        };
        let horizons = [
            (Class::Events, policy.horizon(policy.events)),
            (Class::Documents, policy.horizon(policy.documents)),
            (Class::RawMail, policy.horizon(policy.raw_mail)),
        ];
        report.events.horizon = horizons[0].1;
        report.documents.horizon = horizons[1].1;
        report.raw_mails.horizon = horizons[2].1;
        let run = if dry_run {
            None
        } else {
            Some(self.start_run(policy, chunk_rows).await?)
        };
        report.run = run;

        // Time spent in pruning transactions (rows, blobs), for the log.
        let mut chunk_time = Duration::ZERO;
        let mut blob_time = Duration::ZERO;
        // Dry run: the messages deleted whole, and the blobs' fate.
        let mut deleted: HashSet<i64> = HashSet::new();
        let mut released: HashSet<i64> = HashSet::new();
        let mut shas: HashSet<String> = HashSet::new();

        for (class, horizon) in horizons {
            let Some(horizon) = horizon else { continue };
            let mut after = 0i64;
            loop {
                let cands = {
                    let mut conn = self.reader.acquire().await?;
                    candidates(&mut conn, class, horizon, after, None).await?
                };
                let Some(last) = cands.last() else { break };
                after = last.id;
                if dry_run {
                    let kept: Vec<&Candidate> =
                        cands.iter().filter(|c| !deleted.contains(&c.id)).collect();
                    let ids: Vec<i64> = kept.iter().map(|c| c.id).collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let mut conn = self.reader.acquire().await?;
                    let r = measure(&mut conn, class, &ids_json(&ids)).await?;
                    drop(conn);
                    for c in &kept {
                        if class == Class::Events {
                            deleted.insert(c.id);
                        }
                        if class != Class::Documents && c.has_raw {
                            released.insert(c.id);
                            shas.insert(c.sha256.clone());
                        }
                    }
                    class_report(&mut report, class).add(&r);
                    continue;
                }
                for chunk in chunks(&cands, chunk_rows) {
                    let ids: Vec<i64> = chunk.iter().map(|c| c.id).collect();
                    let t = Instant::now();
                    let (r, freed) = self
                        .apply_chunk(run.unwrap_or_default(), class, horizon, policy.now, &ids)
                        .await?;
                    let took = t.elapsed();
                    chunk_time += took;
                    pause(policy, took).await;
                    if r.messages > 0 {
                        report.chunks += 1;
                    }
                    class_report(&mut report, class).add(&r);
                    if policy.stop_before_blobs {
                        continue;
                    }
                    let t = Instant::now();
                    let b = self
                        .release_blobs(run.unwrap_or_default(), freed, false)
                        .await?;
                    let took = t.elapsed();
                    blob_time += took;
                    pause(policy, took).await;
                    report.blobs.files += b.files;
                    report.blobs.bytes += b.bytes;
                }
            }
        }
        if policy.stop_before_blobs {
            return Ok(report);
        }

        if dry_run {
            let mut conn = self.reader.acquire().await?;
            for sha in &shas {
                let holders: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE sha256 = ? AND raw_pruned_at IS NULL",
                )
                .bind(sha)
                .fetch_all(&mut *conn)
                .await?;
                let letter: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM letters WHERE mail_sha256 = ?)",
                )
                .bind(sha)
                .fetch_one(&mut *conn)
                .await?;
                if letter || !holders.iter().all(|id| released.contains(id)) {
                    continue;
                }
                if let Ok(meta) = std::fs::metadata(self.blobs.path_of(sha)?) {
                    report.blobs.files += 1;
                    report.blobs.bytes += meta.len();
                }
            }
        }

        // Orphans: files no row references (a run interrupted between its commit and its
        // unlinks, or an intake that crashed after writing its blob).
        let orphans = self.orphans(policy.orphan_grace).await?;
        if dry_run {
            report.blobs.orphans = orphans.len() as u64;
            report.blobs.files += orphans.len() as u64;
            report.blobs.bytes += orphans.iter().map(|(_, size)| size).sum::<u64>();
        } else {
            for batch in orphans.chunks(chunk_rows as usize) {
                let names = batch.iter().map(|(n, _)| n.clone()).collect();
                let b = self
                    .release_blobs(run.unwrap_or_default(), names, true)
                    .await?;
                report.blobs.files += b.files;
                report.blobs.bytes += b.bytes;
                report.blobs.orphans += b.orphans;
            }
        }
        info!(
            dry_run,
            run = ?run,
            messages_deleted = report.events.messages,
            events_deleted = report.events.events,
            documents_emptied = report.documents.deliveries,
            raw_mails_dropped = report.raw_mails.messages,
            blobs = report.blobs.files,
            orphans = report.blobs.orphans,
            chunks = report.chunks,
            millis = started.elapsed().as_millis() as u64,
            rows_millis = chunk_time.as_millis() as u64,
            blobs_millis = blob_time.as_millis() as u64,
            "journal pruned"
        );
        Ok(report)
    }

    async fn start_run(&self, policy: &PrunePolicy, chunk_rows: u32) -> Result<i64> {
        if policy.actor.is_empty() || policy.actor.len() > 1024 {
            return Err(StoreError::InvalidInput(
                "the pruning actor must be 1 to 1024 bytes long".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO prune_runs (started_at, actor, raw_mail_horizon, documents_horizon,
                events_horizon, chunk_rows) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(Timestamp::now().0)
        .bind(&policy.actor)
        .bind(policy.horizon(policy.raw_mail).map(|t| t.0))
        .bind(policy.horizon(policy.documents).map(|t| t.0))
        .bind(policy.horizon(policy.events).map(|t| t.0))
        .bind(i64::from(chunk_rows))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One transaction: re-checks the candidates, writes the audit record, prunes them.
    /// Returns what went and the blobs that may have lost their last reference.
    async fn apply_chunk(
        &self,
        run: i64,
        class: Class,
        horizon: Timestamp,
        now: Timestamp,
        ids: &[i64],
    ) -> Result<(ClassReport, Vec<String>)> {
        let mut tx = self.begin_write().await?;
        let live = candidates(&mut tx, class, horizon, 0, Some(&ids_json(ids))).await?;
        if live.is_empty() {
            tx.commit().await?;
            return Ok((ClassReport::default(), Vec::new()));
        }
        let ids: Vec<i64> = live.iter().map(|c| c.id).collect();
        let json = ids_json(&ids);
        let r = measure(&mut tx, class, &json).await?;
        let chunk: i64 = sqlx::query_scalar(
            "INSERT INTO prune_chunks (run_id, at, class, horizon, messages, events, documents,
                deliveries, reviews, bytes, first_received_at, last_received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(run)
        .bind(now.0)
        .bind(class.as_str())
        .bind(horizon.0)
        .bind(r.messages as i64)
        .bind(r.events as i64)
        .bind(r.documents as i64)
        .bind(r.deliveries as i64)
        .bind(r.reviews as i64)
        .bind(r.bytes as i64)
        .bind(r.oldest.map(|t| t.0))
        .bind(r.newest.map(|t| t.0))
        .fetch_one(&mut *tx)
        .await?;
        let freed: Vec<String> = live
            .iter()
            .filter(|c| c.has_raw)
            .map(|c| c.sha256.clone())
            .collect();
        match class {
            Class::Events => {
                sqlx::query(
                    "INSERT INTO prune_targets (message_id, chunk_id)
                     SELECT value, ?2 FROM json_each(?1)",
                )
                .bind(&json)
                .bind(chunk)
                .execute(&mut *tx)
                .await?;
                let in_chunk = "(SELECT value FROM json_each(?1))";
                let docs = format!("(SELECT id FROM documents WHERE message_id IN {in_chunk})");
                let steps = [
                    format!("DELETE FROM events WHERE message_id IN {in_chunk}"),
                    format!("DELETE FROM deliveries WHERE document_id IN {docs}"),
                    format!("DELETE FROM reviews WHERE message_id IN {in_chunk}"),
                    // A later version kept elsewhere loses its link to the version pruned.
                    format!(
                        "UPDATE documents SET replaces = NULL
                          WHERE replaces IN {docs} AND message_id NOT IN {in_chunk}"
                    ),
                    format!(
                        "UPDATE documents SET superseded_by = NULL
                          WHERE superseded_by IN {docs} AND message_id NOT IN {in_chunk}"
                    ),
                    format!("DELETE FROM documents WHERE message_id IN {in_chunk}"),
                    format!("DELETE FROM messages WHERE id IN {in_chunk}"),
                ];
                let mut affected = Vec::with_capacity(steps.len());
                for sql in &steps {
                    affected.push(
                        sqlx::query(AssertSqlSafe(sql.as_str()))
                            .bind(&json)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                    );
                }
                sqlx::query("DELETE FROM prune_targets WHERE chunk_id = ?")
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
                let expected = [
                    r.events,
                    r.deliveries,
                    r.reviews,
                    affected[3],
                    affected[4],
                    r.documents,
                    r.messages,
                ];
                if affected != expected {
                    return Err(StoreError::InvalidInput(format!(
                        "pruning chunk {chunk} removed {affected:?} rows, expected {expected:?}; nothing was pruned"
                    )));
                }
            }
            Class::Documents => {
                sqlx::query(
                    "UPDATE deliveries SET payload = X''
                      WHERE state IN ('delivered', 'rejected') AND length(payload) > 0
                        AND document_id IN (SELECT id FROM documents
                              WHERE message_id IN (SELECT value FROM json_each(?1)))",
                )
                .bind(&json)
                .execute(&mut *tx)
                .await?;
            }
            Class::RawMail => {
                sqlx::query(
                    "UPDATE messages SET raw_pruned_at = ?2
                      WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(&json)
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        debug!(
            chunk,
            class = class.as_str(),
            messages = r.messages,
            "pruning chunk committed"
        );
        let freed = if class == Class::Documents {
            Vec::new()
        } else {
            freed
        };
        Ok((r, freed))
    }

    /// Removes the blob files among `shas` that no row needs any more, and records it. Runs in
    /// a write transaction so that an intake of the same content (which checks the file inside
    /// its own write transaction) cannot commit a row between the check and the unlink.
    async fn release_blobs(
        &self,
        run: i64,
        shas: Vec<String>,
        orphans: bool,
    ) -> Result<BlobReport> {
        let mut report = BlobReport::default();
        if shas.is_empty() {
            return Ok(report);
        }
        let unique: HashSet<String> = shas.into_iter().collect();
        let mut tx = self.begin_write().await?;
        for sha in unique {
            let referenced: bool = sqlx::query_scalar(REFERENCED)
                .bind(&sha)
                .fetch_one(&mut *tx)
                .await?;
            if referenced {
                continue;
            }
            let path = self.blobs.path_of(&sha)?;
            let size = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(_) => continue,
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    report.files += 1;
                    report.bytes += size;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::BlobIo {
                        op: "remove",
                        path,
                        source,
                    });
                }
            }
        }
        if orphans {
            report.orphans = report.files;
        }
        if report.files > 0 {
            sqlx::query(
                "INSERT INTO prune_chunks (run_id, at, class, bytes, blobs, orphans)
                 VALUES (?, ?, 'blobs', ?, ?, ?)",
            )
            .bind(run)
            .bind(Timestamp::now().0)
            .bind(report.bytes as i64)
            .bind(report.files as i64)
            .bind(report.orphans as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Blob files older than `grace` that no row references, with their sizes.
    async fn orphans(&self, grace: Duration) -> Result<Vec<(String, u64)>> {
        let root = self.blobs.root().to_path_buf();
        let files = tokio::task::spawn_blocking(move || blob_files(&root))
            .await
            .map_err(|e| StoreError::BlobIo {
                op: "list",
                path: PathBuf::from(crate::sqlite::BLOB_DIR),
                source: std::io::Error::other(e),
            })??;
        let now = SystemTime::now();
        let mut conn = self.reader.acquire().await?;
        let mut out = Vec::new();
        for (name, path) in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= grace);
            if !old {
                continue;
            }
            let referenced: bool = sqlx::query_scalar(REFERENCED)
                .bind(&name)
                .fetch_one(&mut *conn)
                .await?;
            if !referenced {
                out.push((name, meta.len()));
            }
        }
        Ok(out)
    }
}

/// Leaves the writer to intake for a while after a pruning transaction that held it `took`.
async fn pause(policy: &PrunePolicy, took: Duration) {
    let rest = took.mul_f32(policy.pause_ratio.max(0.0));
    if !rest.is_zero() {
        tokio::time::sleep(rest).await;
    }
}

fn class_report(report: &mut PruneReport, class: Class) -> &mut ClassReport {
    match class {
        Class::Events => &mut report.events,
        Class::Documents => &mut report.documents,
        Class::RawMail => &mut report.raw_mails,
    }
}

impl SqliteJournal {
    /// Benchmark support: journals one filed, answered message per `(sha256, size)` blob already
    /// in the blob store, each with one document, one delivered delivery (`payload_len` bytes)
    /// and `events_per_message` events, all dated `at`; by direct SQL, in transactions of 10,000
    /// messages. Returns the number of messages. Not for production use.
    #[doc(hidden)]
    pub async fn bulk_load_finished(
        &self,
        blobs: &[(String, u64)],
        events_per_message: u32,
        payload_len: u32,
        at: Timestamp,
    ) -> Result<u64> {
        let mut loaded = 0u64;
        for batch in blobs.chunks(10_000) {
            let list = serde_json::Value::from(
                batch
                    .iter()
                    .map(|(sha, size)| serde_json::json!([sha, size]))
                    .collect::<Vec<_>>(),
            )
            .to_string();
            let mut tx = self.begin_write().await?;
            let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM messages")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO messages (state, source_kind, maildir_folder, maildir_name, sha256,
                    size, received_at, created_at, updated_at, answer)
                 SELECT 'filed', 'maildir', 'bench', 'bench-' || ?2 || '-' || key,
                    json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?1, ?1, ?1, 'sent'
                   FROM json_each(?3)",
            )
            .bind(at.0)
            .bind(first)
            .bind(&list)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
                 INSERT INTO events (message_id, at, kind, detail, actor_kind)
                 SELECT m.id, ?1, 'bench', '{}', 'system' FROM messages m, n
                  WHERE m.id >= ?3 ORDER BY m.id, n.i",
            )
            .bind(at.0)
            .bind(i64::from(events_per_message))
            .bind(first)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO documents (message_id, cda_id, set_id, version, state, created_at,
                    updated_at)
                 SELECT id, 'bench^' || id, 'bench^' || id, 1, 'filed', ?1, ?1
                   FROM messages WHERE id >= ?2",
            )
            .bind(at.0)
            .bind(first)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO deliveries (document_id, sink, idempotency_key, ordering_key, payload,
                    state, attempts, not_before, created_at, updated_at, completed_at)
                 SELECT d.id, 'bench', 'bench-' || d.id, 'bench', zeroblob(?3), 'delivered', 1,
                    ?1, ?1, ?1, ?1
                   FROM documents d WHERE d.message_id >= ?2",
            )
            .bind(at.0)
            .bind(first)
            .bind(i64::from(payload_len))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            loaded += batch.len() as u64;
        }
        Ok(loaded)
    }
}

/// The daemon's retention task: prunes `journal` with a fresh policy from `policy` (its `now`
/// taken at each run) a minute after start, then every `every`, until `shutdown` flips to true.
/// A failed run is logged and tried again at the next period; intake never waits for it.
pub fn spawn_pruner(
    journal: std::sync::Arc<dyn crate::journal::Journal>,
    policy: impl Fn() -> PrunePolicy + Send + 'static,
    every: Duration,
    chunk_rows: u32,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = every.min(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = every;
            let policy = policy();
            // A shutdown stops the run between two chunks (each chunk is its own transaction).
            let run = journal.prune(&policy, false, chunk_rows);
            tokio::select! {
                r = run => match r {
                    Ok(report) if report.is_empty() => debug!("retention: nothing to prune"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        code = e.code(),
                        error = %e,
                        "retention: pruning failed; trying again at the next period"
                    ),
                },
                _ = shutdown.changed() => return,
            }
        }
    })
}
