//! The Relais inbound pipeline.
//!
//! ```text
//! source ──▶ journal ──▶ check (mail, XDM, CDA, schematron) ──▶ patient match ──▶ route ──▶ outbox ──▶ sink
//!            (durable)    rejected ◀─┘                 review ◀─┘          review ◀─┘        (retries)
//! ```
//! A source acknowledges a mail only once the journal holds it ([`relais_store::Journal::ingest`]).
//! Every step is a state transition of the message in the journal with an audit event, so a
//! crash at any point resumes where it stopped: a message still `received` is processed again
//! (its documents are deduplicated by CDA id), a delivery whose lease expired is claimed again
//! and the sink is given the same idempotency key, so nothing is filed twice.
//!
//! Logs carry journal ids, states and rule codes, never patient data.

pub mod actions;
pub mod alerts;
pub mod answers;
pub mod config;
pub mod matching;
pub mod metrics;
pub mod outbound;
pub mod patients;
pub mod sinks;
pub mod sources;

use base64::Engine as _;
use config::{Config, SchematronSetting, Sink, Source};
use matching::MatchOutcome;
use relais_check::{CheckOptions, Checker, ExtractedDocument, InputReport, SchematronMode};
use relais_store::{
    DocId, DocumentKey, DocumentMeta, DocumentOutcome, DocumentState, DocumentUpdate, Event,
    Journal, JournalStep, MessageFilter, MessageId, MessageRecord, MessageState, Outcome,
    ReviewSubject, SourceKey, SqliteJournal, StepOutcome, Timestamp,
};
use sinks::{Filing, SinkResult, folder::FolderSink};
use std::sync::Arc;
use std::time::Duration;

/// The engine cannot start or a step failed in a way the caller must hear about.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("journal: {0}")]
    Store(#[from] relais_store::StoreError),
    #[error("validation set-up: {0}")]
    Check(#[from] relais_check::CheckError),
    #[error("source {source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("internal: {0}")]
    Internal(String),
}

/// What one `run --once` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub journaled: usize,
    pub duplicates: usize,
    pub processed: usize,
    pub filed: usize,
    pub rejected: usize,
    pub awaiting_review: usize,
    pub deliveries: usize,
    pub retries: usize,
    /// Sources that could not be polled this time (said in the logs, retried).
    pub source_errors: usize,
    /// Answers to senders recorded (sent, skipped or failed).
    pub answered: usize,
}

impl RunSummary {
    /// Adds the counts of `other` (the work of a concurrent lane or sink worker).
    pub fn add(&mut self, other: &RunSummary) {
        self.journaled += other.journaled;
        self.duplicates += other.duplicates;
        self.processed += other.processed;
        self.filed += other.filed;
        self.rejected += other.rejected;
        self.awaiting_review += other.awaiting_review;
        self.deliveries += other.deliveries;
        self.retries += other.retries;
        self.source_errors += other.source_errors;
        self.answered += other.answered;
    }
}

/// How often processing looks for newly journaled mail while the poll is still running (a
/// read of the journal).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(20);

/// How long the sink drain that follows processing waits for work at most: it is woken as soon
/// as deliveries are enqueued (its claims are writes, not worth making every 20 ms).
const DRAIN_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Most messages taken from the journal per processing batch.
const BATCH_MESSAGES: u32 = 256;
/// Most raw bytes of one processing batch (a batch holds at least one message).
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Messages checked at once (the checks run on the blocking pool, one core each).
const CHECK_CONCURRENCY: usize = 8;
/// Journal lanes of a batch: messages of different lanes share the journal's commits.
const LANES: usize = 16;
/// Concurrent deliveries per sink, for sinks that take them (folder, FHIR). MLLP keeps one
/// connection and one message at a time, as the protocol expects.
const SINK_WORKERS: usize = 8;

/// A message read and checked, waiting for its journal steps.
struct Analysis {
    rec: MessageRecord,
    report: InputReport,
    docs: Vec<ExtractedDocument>,
    mail: sinks::MailSummary,
}

impl Analysis {
    /// What orders this message against others: the INS of its patients and the sets of its
    /// documents (a replacement must come after what it replaces).
    fn order_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for d in &self.docs {
            let h = &d.cda.header;
            if let Some(ins) = h.patient.as_ref().and_then(|p| p.ins.as_ref()) {
                keys.push(format!("ins:{}", ins.value));
            }
            if let Some(set) = h.set_id.as_ref() {
                keys.push(format!("set:{}", set.to_xds()));
            }
        }
        keys
    }
}

/// Splits analysed messages (in arrival order; `keys` gives each one's order keys) into
/// segments of `n` lanes: within a lane, messages keep their order, and messages that share an
/// order key, directly or through other messages of the segment, fall in the same lane. A new
/// group of keys goes to the next lane in turn. A message whose keys already sit in two
/// different lanes (it links two groups) closes the segment and forms one of its own, so it
/// comes after everything before it and before everything after it.
fn lanes<T>(items: Vec<T>, n: usize, keys: impl Fn(&T) -> Vec<String>) -> Vec<Vec<Vec<T>>> {
    let n = n.max(1);
    let fresh = || (0..n).map(|_| Vec::new()).collect::<Vec<Vec<T>>>();
    let mut segments = Vec::new();
    let mut current = fresh();
    let mut lane_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut next_lane = 0usize;
    for item in items {
        let item_keys = keys(&item);
        let mut known: Vec<usize> = item_keys
            .iter()
            .filter_map(|k| lane_of.get(k).copied())
            .collect();
        known.sort_unstable();
        known.dedup();
        let lane = match known.as_slice() {
            [] => {
                let lane = next_lane % n;
                next_lane += 1;
                lane
            }
            [lane] => *lane,
            _ => {
                segments.push(std::mem::replace(&mut current, fresh()));
                segments.push(vec![vec![item]]);
                lane_of.clear();
                continue;
            }
        };
        for k in item_keys {
            lane_of.insert(k, lane);
        }
        current[lane].push(item);
    }
    segments.push(current);
    segments
        .into_iter()
        .map(|seg| {
            seg.into_iter()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|seg| !seg.is_empty())
        .collect()
}

/// How long a sink worker holds a delivery before another may take it over.
const LEASE: Duration = Duration::from_secs(120);

/// The inbound engine: configuration, journal, checker.
pub struct Engine {
    config: Config,
    journal: Arc<dyn Journal>,
    checker: Arc<Checker>,
    worker: String,
    /// Whether [`Engine::recover`] ran.
    recovered: std::sync::atomic::AtomicBool,
    /// The SMTP server answers go through, when configured.
    answer_smtp: Option<relais_smtp::SmtpConfig>,
    /// Whether the daemon already said that answers wait for `[answers.smtp]`.
    answers_unconfigured_said: std::sync::atomic::AtomicBool,
    /// The FHIR sinks, built once (token and certificates read at start).
    fhir_sinks: std::collections::HashMap<String, sinks::fhir::FhirSink>,
    /// One open MLLP connection per DPI sink, reused between deliveries.
    mllp_clients: tokio::sync::Mutex<std::collections::HashMap<String, relais_dpi::MllpClient>>,
    /// The outbound side (letters to MSSanté, DSN/MDN tracking), when `[outbound]` is set;
    /// shared with the tasks of its MLLP listener.
    outbound: Option<Arc<outbound::Outbound>>,
    /// Which IMAP mailboxes this instance polls (leases shared with the other instances).
    cluster: sources::cluster::Cluster,
    /// Told when deliveries were enqueued (or upstream work ended): wakes the sink drain that
    /// follows processing in [`Engine::run_once`].
    enqueued: tokio::sync::Notify,
}

impl Engine {
    /// Open the journal in the data directory and set up validation (starts the schematron
    /// worker when available).
    pub async fn open(config: Config) -> Result<Engine, EngineError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(config::ConfigError::Invalid(problems.join("; ")).into());
        }
        let (journal, sqlite, leases): (
            Arc<dyn Journal>,
            Option<SqliteJournal>,
            Arc<dyn relais_store::Leases>,
        ) = match config.journal.kind {
            config::JournalKind::Sqlite => {
                let j = SqliteJournal::open(config.data_dir.join("journal")).await?;
                (Arc::new(j.clone()), Some(j.clone()), Arc::new(j))
            }
            config::JournalKind::Postgres => {
                let file = config.journal.url_file.clone().unwrap_or_default();
                let url = std::fs::read_to_string(&file).map_err(|e| {
                    config::ConfigError::Invalid(format!(
                        "[journal] cannot read url_file {}: {e}",
                        file.display()
                    ))
                })?;
                let mut pg = relais_store::PgConfig::new(url.trim());
                if let Some(n) = config.journal.max_connections {
                    pg.max_connections = n;
                }
                let pg = Arc::new(relais_store::PgJournal::open_with(pg).await?);
                (pg.clone(), None, pg)
            }
        };
        let cluster = sources::cluster::Cluster::new(
            leases,
            worker_id(std::process::id()),
            config.journal.lease_ttl(),
            config
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Imap { name, .. } => Some(name.clone()),
                    Source::Maildir { .. } => None,
                })
                .collect(),
        );
        let options = CheckOptions {
            pack: config.validation.pack.clone(),
            mappings: config.validation.mappings.clone(),
            schematron: match config.validation.schematron {
                SchematronSetting::Auto => SchematronMode::Auto,
                SchematronSetting::Require => SchematronMode::Require,
                SchematronSetting::Off => SchematronMode::Off,
            },
            cache_dir: Some(config.data_dir.join("cache")),
            limits: config.limits.clone(),
            ..CheckOptions::default()
        };
        let checker = tokio::task::spawn_blocking(move || Checker::new(options))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        for note in checker.notes() {
            tracing::warn!("{note}");
        }
        let mut fhir_sinks = std::collections::HashMap::new();
        for sink in &config.sinks {
            if let Some(settings) = sink.fhir_settings() {
                let built = sinks::fhir::FhirSink::new(&settings).map_err(|reason| {
                    config::ConfigError::Invalid(format!("sink {}: {reason}", sink.name()))
                })?;
                fhir_sinks.insert(sink.name().to_string(), built);
            }
        }
        let answer_smtp = match &config.answers.smtp {
            Some(smtp) => Some(
                smtp.smtp_config()
                    .map(|mut cfg| {
                        cfg.timeouts.connect = Duration::from_secs(10);
                        cfg
                    })
                    .map_err(config::ConfigError::Invalid)?,
            ),
            None => None,
        };
        let outbound = match &sqlite {
            Some(j) => outbound::Outbound::open(&config, j, &worker_id(std::process::id()))
                .await?
                .map(Arc::new),
            None => None,
        };
        Ok(Engine {
            outbound,
            answer_smtp,
            answers_unconfigured_said: std::sync::atomic::AtomicBool::new(false),
            fhir_sinks,
            config,
            journal,
            checker: Arc::new(checker),
            worker: worker_id(std::process::id()),
            mllp_clients: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            recovered: std::sync::atomic::AtomicBool::new(false),
            cluster,
            enqueued: tokio::sync::Notify::new(),
        })
    }

    /// The journal (for the CLI's queries).
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Journal every new mail of every source. IMAP mails are processed right away and moved
    /// to the processed (or quarantine) folder once the journal has their outcome.
    pub async fn poll_sources(&self, summary: &mut RunSummary) -> Result<(), EngineError> {
        for source in &self.config.sources {
            match source {
                Source::Imap {
                    name,
                    processed_folder,
                    quarantine_folder,
                    ..
                } => {
                    let cfg = sources::imap::imap_config(source, &self.config.limits).map_err(
                        |reason| EngineError::Source {
                            source_name: name.clone(),
                            reason,
                        },
                    )?;
                    // One instance at a time polls a mailbox: the holder of its lease.
                    let Some(permit) = self.cluster.permit(name).await else {
                        continue;
                    };
                    let still_held = || permit.still_held();
                    let started = std::time::Instant::now();
                    // Mails are processed as they are journaled: the processor follows the poll
                    // and takes one last look once the poll has finished.
                    let poll_done = std::sync::atomic::AtomicBool::new(false);
                    let (polled, processed) = tokio::join!(
                        async {
                            let r =
                                sources::imap::poll(self.journal.as_ref(), name, &cfg, &still_held)
                                    .await;
                            poll_done.store(true, std::sync::atomic::Ordering::SeqCst);
                            r
                        },
                        async {
                            let mut done = RunSummary::default();
                            loop {
                                let last = poll_done.load(std::sync::atomic::Ordering::SeqCst);
                                self.process_pending(&mut done).await?;
                                if last {
                                    return Ok::<_, EngineError>(done);
                                }
                                tokio::time::sleep(FOLLOW_INTERVAL).await;
                            }
                        }
                    );
                    summary.add(&processed?);
                    let (mut session, fetched, new, dup) = match polled {
                        Ok(r) => r,
                        Err(e) => {
                            metrics::source_up(name, false);
                            // A mailbox down must not stop the others: said, retried next poll.
                            tracing::error!(source = %name, code = %e.code(), error = %e, "IMAP poll failed; retrying at the next poll");
                            summary.source_errors += 1;
                            self.cluster.finish(permit).await;
                            continue;
                        }
                    };
                    summary.journaled += new;
                    summary.duplicates += dup;
                    metrics::source_up(name, true);
                    metrics::journaled(name, new, dup);
                    let process_done = started.elapsed();
                    // Only now that the journal holds each mail's outcome does it leave the
                    // inbox: rejected mail to quarantine, the rest to the processed folder. A
                    // mail still being checked (by another instance) waits for the next poll,
                    // and a mail another poller moved meanwhile (an overlap after a take-over)
                    // is left alone: the UID list is read again just before moving.
                    let present: Option<std::collections::HashSet<u32>> = session
                        .uids_since(0)
                        .await
                        .ok()
                        .map(|u| u.into_iter().collect());
                    let (mut processed, mut quarantined) = (Vec::new(), Vec::new());
                    for f in fetched {
                        if present.as_ref().is_some_and(|p| !p.contains(&f.uid)) {
                            continue;
                        }
                        let state = self.journal.get_message(f.message).await?.map(|m| m.state);
                        match state {
                            Some(MessageState::Rejected) => quarantined.push(f.uid),
                            None | Some(MessageState::Received | MessageState::Parsed) => {}
                            Some(_) => processed.push(f.uid),
                        }
                    }
                    for (uids, folder) in [
                        (processed, processed_folder),
                        (quarantined, quarantine_folder),
                    ] {
                        if uids.is_empty() {
                            continue;
                        }
                        if !permit.still_held() {
                            // Another instance may poll the mailbox now: it moves them.
                            tracing::info!(source = %name, mails = uids.len(), "mailbox lease lost: journaled mails left for the next holder to move");
                            continue;
                        }
                        if let Err(e) = session.move_many(&uids, folder).await {
                            tracing::warn!(source = %name, mails = uids.len(), code = %e.code(), "journaled mails not moved; they will be seen again and deduplicated");
                        }
                    }
                    let _ = session.logout().await;
                    self.cluster.finish(permit).await;
                    tracing::debug!(
                        target: "relais::timing",
                        source = %name,
                        mails = new + dup,
                        journal_and_process_ms = process_done.as_millis() as u64,
                        move_ms = (started.elapsed() - process_done).as_millis() as u64,
                        "IMAP poll"
                    );
                }
                Source::Maildir {
                    name,
                    path,
                    consume,
                    ..
                } => {
                    let stats = sources::maildir::scan(self.journal.as_ref(), name, path, *consume)
                        .await
                        .map_err(|e| EngineError::Source {
                            source_name: name.clone(),
                            reason: format!("cannot read {}: {e}", path.display()),
                        })?;
                    summary.journaled += stats.new;
                    summary.duplicates += stats.duplicates;
                    metrics::journaled(name, stats.new, stats.duplicates);
                }
            }
        }
        Ok(())
    }

    /// Resume the messages a crash left between two steps (`parsed`, `validated`, `matched`):
    /// done once per engine, before the first batch of new mail.
    pub async fn recover(&self, summary: &mut RunSummary) -> Result<(), EngineError> {
        if self
            .recovered
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        for state in [
            MessageState::Parsed,
            MessageState::Validated,
            MessageState::Matched,
        ] {
            let mut before = None;
            loop {
                let batch = self
                    .journal
                    .list_messages(&MessageFilter {
                        state: Some(state),
                        before,
                        limit: 200,
                        ..MessageFilter::default()
                    })
                    .await?;
                let Some(last) = batch.last() else { break };
                before = Some(last.id);
                for rec in batch {
                    let id = rec.id;
                    if rec.state == MessageState::Matched
                        && self.resume_matched(id, summary).await?
                    {
                        continue;
                    }
                    tracing::info!(message = %id, state = %rec.state, "resuming a message interrupted by a stop");
                    match self.process(rec).await {
                        Ok(MessageState::Filed) => summary.filed += 1,
                        Ok(MessageState::Rejected) => summary.rejected += 1,
                        Ok(MessageState::AwaitingReview) => summary.awaiting_review += 1,
                        Ok(_) => {}
                        Err(EngineError::Store(relais_store::StoreError::StaleState {
                            ..
                        })) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// A `matched` message whose documents all have their deliveries is only waiting for its
    /// sinks: nothing to check again. Deliveries left in flight by a worker of this host that no
    /// longer runs (the process a crash killed) are given back to the queue at once rather than
    /// after their lease, so they do not hold back the patient's next documents; documents whose
    /// deliveries all succeeded are closed. Returns false when a document has no delivery yet
    /// (the stop came while enqueueing): the message is then processed again.
    async fn resume_matched(
        &self,
        id: MessageId,
        summary: &mut RunSummary,
    ) -> Result<bool, EngineError> {
        let docs = self.journal.documents_of_message(id).await?;
        let mut per_doc = Vec::with_capacity(docs.len());
        for d in &docs {
            if d.state != DocumentState::Matched && d.state != DocumentState::Filed {
                return Ok(false);
            }
            let deliveries = self.journal.deliveries_of_document(d.id).await?;
            if deliveries.is_empty() {
                return Ok(false);
            }
            per_doc.push((d.id, deliveries));
        }
        for (doc, deliveries) in per_doc {
            for del in &deliveries {
                if del.state == relais_store::DeliveryState::InFlight
                    && del.lease_owner.as_deref().is_some_and(worker_is_gone)
                {
                    self.journal
                        .retry_later(
                            del.id,
                            Timestamp::now(),
                            "its worker stopped during the delivery",
                        )
                        .await?;
                    tracing::info!(document = %doc, delivery = %del.id, "delivery of a stopped worker put back in the queue");
                }
            }
            self.document_delivered(doc, summary).await?;
        }
        Ok(true)
    }

    /// Process every message still `received` (new ones, and those a crash interrupted).
    ///
    /// Messages are taken in batches in arrival order. Their checks run concurrently, and the
    /// next batch is checked while the journal steps of the current one run. Journal steps run
    /// in [`lanes`]: messages that share a patient (INS) or a document set keep their arrival
    /// order (a replacement is never filed before the document it replaces), other messages go
    /// on side by side and share the journal's commits.
    pub async fn process_pending(&self, summary: &mut RunSummary) -> Result<(), EngineError> {
        self.recover(summary).await?;
        let mut after = None;
        let mut current = self
            .analyse_batch(self.next_batch(&mut after).await?)
            .await?;
        while !current.is_empty() {
            let next = self.next_batch(&mut after).await?;
            let (applied, next) = tokio::join!(self.apply_batch(current), self.analyse_batch(next));
            summary.add(&applied?);
            current = next?;
        }
        Ok(())
    }

    /// The next messages still `received` after `after` (advanced past them), oldest first: at
    /// most [`BATCH_MESSAGES`], and no more raw bytes than [`BATCH_BYTES`] (at least one).
    async fn next_batch(
        &self,
        after: &mut Option<MessageId>,
    ) -> Result<Vec<MessageRecord>, EngineError> {
        let listed = self
            .journal
            .oldest_in_state(MessageState::Received, *after, BATCH_MESSAGES)
            .await?;
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        for rec in listed {
            if !batch.is_empty() && bytes + rec.size > BATCH_BYTES {
                break;
            }
            bytes += rec.size;
            *after = Some(rec.id);
            batch.push(rec);
        }
        Ok(batch)
    }

    /// Reads and checks a batch, [`CHECK_CONCURRENCY`] messages at a time, keeping its order.
    async fn analyse_batch(&self, batch: Vec<MessageRecord>) -> Result<Vec<Analysis>, EngineError> {
        use futures_util::{StreamExt, TryStreamExt};
        let started = std::time::Instant::now();
        let count = batch.len();
        let analyses = futures_util::stream::iter(batch)
            .map(|rec| self.analyse(rec))
            .buffered(CHECK_CONCURRENCY)
            .try_collect()
            .await?;
        if count > 0 {
            tracing::debug!(target: "relais::timing", messages = count, ms = started.elapsed().as_millis() as u64, "batch checked");
        }
        Ok(analyses)
    }

    /// Runs the journal steps of an analysed batch in its lanes.
    async fn apply_batch(&self, analyses: Vec<Analysis>) -> Result<RunSummary, EngineError> {
        let started = std::time::Instant::now();
        let count = analyses.len();
        let mut summary = RunSummary::default();
        for segment in lanes(analyses, LANES, Analysis::order_keys) {
            let runs = segment.into_iter().map(|lane| async move {
                let mut done = RunSummary::default();
                for a in lane {
                    let id = a.rec.id;
                    let source = Self::source_name(&a.rec);
                    match self.apply(a).await {
                        Ok(state) => {
                            metrics::processed(&source, state.as_str());
                            done.processed += 1;
                            match state {
                                MessageState::Rejected => done.rejected += 1,
                                MessageState::AwaitingReview => done.awaiting_review += 1,
                                MessageState::Filed => done.filed += 1,
                                _ => {}
                            }
                        }
                        Err(EngineError::Store(relais_store::StoreError::StaleState {
                            ..
                        })) => {
                            tracing::debug!(message = %id, "message taken by another worker");
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(done)
            });
            for lane in futures_util::future::join_all(runs).await {
                summary.add(&lane?);
            }
        }
        tracing::debug!(target: "relais::timing", messages = count, ms = started.elapsed().as_millis() as u64, "batch journaled");
        Ok(summary)
    }

    fn source_name(rec: &MessageRecord) -> String {
        match &rec.source {
            SourceKey::Maildir { folder, .. } => folder.clone(),
            SourceKey::Imap { mailbox, .. } => mailbox.clone(),
            SourceKey::Folder { path } => path.clone(),
        }
    }

    /// Take one message as far as it goes, from the state it is in: `received` normally, or
    /// `parsed`, `validated` or `matched` when a crash interrupted an earlier run (every step is
    /// idempotent: checks are pure, documents are recognised as the message's own, reviews and
    /// deliveries are opened once). Returns the state it ends in.
    async fn process(&self, rec: MessageRecord) -> Result<MessageState, EngineError> {
        let analysis = self.analyse(rec).await?;
        self.apply(analysis).await
    }

    /// The journal-free half of processing a message: read its raw bytes and check them
    /// (CPU-bound, off the async threads). Analyses of many messages run at once.
    async fn analyse(&self, rec: MessageRecord) -> Result<Analysis, EngineError> {
        let started = std::time::Instant::now();
        let raw = self.journal.read_raw(rec.id).await?;
        let checker = self.checker.clone();
        let label = format!("message {}", rec.id);
        let (report, docs, mail) = tokio::task::spawn_blocking(move || {
            let (report, extraction) = checker.check_and_extract(&label, &raw);
            let mail = mail_summary(extraction.mail.as_ref());
            (report, extraction.documents, mail)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        metrics::checked(started.elapsed());
        Ok(Analysis {
            rec,
            report,
            docs,
            mail,
        })
    }

    /// The journal half: take an analysed message through its state transitions, document
    /// registration, patient matching and routing. Returns the state it ends in.
    ///
    /// Its journal steps are committed in two calls (see [`Journal::apply_steps`]): one takes
    /// the message to `validated` and registers its documents, the other records the matching,
    /// the routing and the state that follows. A crash between them leaves the message
    /// `validated`, from where it is taken up again (its documents are recognised as its own).
    async fn apply(&self, analysis: Analysis) -> Result<MessageState, EngineError> {
        let Analysis {
            rec,
            report,
            docs,
            mail,
        } = analysis;
        let id = rec.id;
        let mut pending = PendingSteps::new(rec.state);
        let summary = report_summary(&report);

        if pending.state == MessageState::Received {
            if report.kind != relais_check::InputKind::Mail || report.mail.is_none() {
                return self
                    .reject(
                        id,
                        pending,
                        summary,
                        &report,
                        ("MAIL-UNREADABLE", "the input is not a readable mail"),
                    )
                    .await;
            }
            pending.advance(
                MessageState::Parsed,
                Event::system("parsed").with_detail(summary.clone()),
            );
        }

        if pending.state == MessageState::Parsed {
            if self.outbound.is_some() {
                // The outbound side may take the mail as a delivery report, or refuse its
                // sender; either moves the message on from `parsed` itself.
                self.commit(id, &mut pending).await?;
                let sender = report.mail.as_ref().and_then(|m| m.from.first());
                if let Some(end) = self
                    .screen_inbound(&rec, sender.map(String::as_str))
                    .await?
                {
                    return Ok(end);
                }
            }
            if docs.is_empty() || (!report.valid && self.config.validation.reject_invalid) {
                return self
                    .reject(
                        id,
                        pending,
                        summary,
                        &report,
                        (
                            "MAIL-NO-DOCUMENT",
                            "the mail carries no CDA document to file",
                        ),
                    )
                    .await;
            }
            pending.advance(MessageState::Validated, Event::system("validated"));
        }
        let resuming_matched = pending.state == MessageState::Matched;

        // Register, deduplicate and match every document before filing any.
        for doc in &docs {
            let h = &doc.cda.header;
            pending.steps.push(JournalStep::RegisterDocument {
                key: document_key(h),
                meta: DocumentMeta {
                    type_code: h.type_code().map(str::to_string),
                    validation: serde_json::to_value(&report.documents[doc.report_index]).ok(),
                    ..DocumentMeta::default()
                },
            });
        }
        let outcomes = self.commit(id, &mut pending).await?;
        let registered = outcomes[outcomes.len() - docs.len()..]
            .iter()
            .map(|o| match o {
                StepOutcome::Document(d) => Ok(*d),
                other => Err(EngineError::Internal(format!(
                    "the journal answered {other:?} to a document registration"
                ))),
            });
        let mut to_file: Vec<(DocId, &ExtractedDocument, Option<String>, Option<String>)> =
            Vec::new();
        // The first reason a document waits for review: the message's error (and the code its
        // sender is told).
        let mut review: Option<(String, String)> = None;
        for (doc, outcome) in docs.iter().zip(registered) {
            let (doc_id, replaces) = match outcome? {
                DocumentOutcome::New(d) => (d, None),
                DocumentOutcome::NewVersion { doc, replaces } => {
                    let old = self
                        .journal
                        .get_document(replaces)
                        .await?
                        .map(|r| r.key.cda_id);
                    (doc, old)
                }
                DocumentOutcome::Duplicate(existing) => {
                    match self.journal.get_document(existing).await? {
                        Some(record) if record.message_id == id => {
                            // Our own document, registered before a crash: carry on with it.
                            let replaces = match record.replaces {
                                Some(old) => {
                                    self.journal.get_document(old).await?.map(|r| r.key.cda_id)
                                }
                                None => None,
                            };
                            (existing, replaces)
                        }
                        _ => {
                            pending.steps.push(JournalStep::RecordEvent(
                                Event::system("duplicate_document")
                                    .with_detail(serde_json::json!({ "document": existing.0 })),
                            ));
                            tracing::info!(message = %id, document = %existing, "document already received: not filed again");
                            continue;
                        }
                    }
                }
                DocumentOutcome::OlderVersion { current } => {
                    pending.steps.push(JournalStep::OpenReview {
                        subject: ReviewSubject::Message(id),
                        code: "900".into(),
                        text: format!("the document is an older version than the one already received (document {current})"),
                    });
                    review.get_or_insert_with(|| {
                        (
                            "900".into(),
                            "the document is older than the one already received".into(),
                        )
                    });
                    continue;
                }
            };
            if self.config.patients.require_match {
                match matching::match_patient(self.journal.as_ref(), &doc.cda).await? {
                    MatchOutcome::Matched { ipp } => {
                        pending.steps.push(JournalStep::UpdateDocument {
                            doc: doc_id,
                            update: DocumentUpdate {
                                state: Some(DocumentState::Matched),
                                patient_ipp: Some(ipp.clone()),
                                ..DocumentUpdate::default()
                            },
                        });
                        to_file.push((doc_id, doc, Some(ipp), replaces));
                    }
                    MatchOutcome::Review {
                        code,
                        label,
                        reason,
                    } => {
                        pending.steps.push(JournalStep::OpenReview {
                            subject: ReviewSubject::Document(doc_id),
                            code: code.to_string(),
                            text: format!("{label}: {reason}"),
                        });
                        pending.steps.push(JournalStep::UpdateDocument {
                            doc: doc_id,
                            update: DocumentUpdate {
                                state: Some(DocumentState::AwaitingReview),
                                ..DocumentUpdate::default()
                            },
                        });
                        tracing::info!(message = %id, document = %doc_id, code, "document waits for review");
                        review.get_or_insert_with(|| (code.to_string(), label.to_string()));
                    }
                }
            } else {
                to_file.push((doc_id, doc, None, replaces));
            }
        }
        if let Some((code, label)) = review {
            pending.advance(
                MessageState::AwaitingReview,
                Event::system("awaiting_review").with_error(&code, &label),
            );
            self.commit(id, &mut pending).await?;
            return Ok(MessageState::AwaitingReview);
        }
        if pending.state == MessageState::Validated {
            pending.advance(MessageState::Matched, Event::system("matched"));
        }
        if to_file.is_empty() {
            pending.advance(
                MessageState::Filed,
                Event::system("filed")
                    .with_detail(serde_json::json!({ "note": "every document was already filed" })),
            );
            self.commit(id, &mut pending).await?;
            return Ok(MessageState::Filed);
        }
        let source = Self::source_name(&rec);
        let sender_domain = report
            .mail
            .as_ref()
            .and_then(|m| m.from.first())
            .and_then(|f| relais_mssante::domain_of(f))
            .map(str::to_string);
        for (doc_id, doc, ipp, replaces) in &to_file {
            let h = &doc.cda.header;
            let sinks = self
                .config
                .route(h.type_code(), &source, sender_domain.as_deref());
            if sinks.is_empty() {
                const NO_ROUTE: &str = "no route sends this document to a sink";
                pending.steps.push(JournalStep::OpenReview {
                    subject: ReviewSubject::Document(*doc_id),
                    code: "ROUTE-NONE".into(),
                    text: NO_ROUTE.into(),
                });
                pending.advance(
                    MessageState::AwaitingReview,
                    Event::system("awaiting_review").with_error("ROUTE-NONE", NO_ROUTE),
                );
                self.commit(id, &mut pending).await?;
                return Ok(MessageState::AwaitingReview);
            }
            let filing = filing_for(
                &rec,
                *doc_id,
                doc,
                &source,
                ipp.clone(),
                replaces.clone(),
                &mail,
            );
            enqueue(&mut pending, *doc_id, &filing, &sinks)?;
        }
        self.commit(id, &mut pending).await?;
        if resuming_matched {
            // Deliveries may all have succeeded before the crash took the last step.
            let mut done = RunSummary::default();
            for (doc_id, ..) in &to_file {
                self.document_delivered(*doc_id, &mut done).await?;
            }
            if done.filed > 0 {
                return Ok(MessageState::Filed);
            }
        }
        Ok(MessageState::Matched)
    }

    /// Commits the pending steps of message `id` in one journal call (nothing if there are
    /// none) and answers what each did.
    async fn commit(
        &self,
        id: MessageId,
        pending: &mut PendingSteps,
    ) -> Result<Vec<StepOutcome>, EngineError> {
        if pending.steps.is_empty() {
            return Ok(Vec::new());
        }
        let steps = std::mem::take(&mut pending.steps);
        let enqueues = steps
            .iter()
            .any(|s| matches!(s, JournalStep::EnqueueDelivery { .. }));
        let outcomes = self.journal.apply_steps(id, steps).await?;
        if enqueues {
            self.enqueued.notify_one();
        }
        Ok(outcomes)
    }

    /// Quarantine a message: `rejected`, with the report's first error (or `fallback`),
    /// committed with the steps still pending.
    async fn reject(
        &self,
        id: MessageId,
        mut pending: PendingSteps,
        summary: serde_json::Value,
        report: &InputReport,
        fallback: (&str, &str),
    ) -> Result<MessageState, EngineError> {
        let (code, text) =
            first_error(report).unwrap_or((fallback.0.to_string(), fallback.1.to_string()));
        pending.advance(
            MessageState::Rejected,
            Event::system("rejected")
                .with_detail(summary)
                .with_error(&code, &text),
        );
        self.commit(id, &mut pending).await?;
        tracing::warn!(message = %id, code = %code, "mail rejected and quarantined");
        Ok(MessageState::Rejected)
    }

    /// Deliver everything claimable, then close the messages whose documents are all filed.
    /// Every sink is drained at once, by [`SINK_WORKERS`] workers (one for MLLP); the journal's
    /// claims keep each patient's documents in order whatever the number of workers.
    pub async fn drain_sinks(&self, summary: &mut RunSummary) -> Result<(), EngineError> {
        let mut runs = Vec::new();
        for sink in &self.config.sinks {
            let workers = match sink {
                Sink::Mllp { .. } => 1,
                _ => SINK_WORKERS,
            };
            for _ in 0..workers {
                runs.push(self.drain_sink(sink));
            }
        }
        for r in futures_util::future::join_all(runs).await {
            summary.add(&r?);
        }
        Ok(())
    }

    /// One worker of a sink: claim, deliver and record until nothing is claimable, or until
    /// the sink asks to retry later.
    async fn drain_sink(&self, sink: &Sink) -> Result<RunSummary, EngineError> {
        let mut summary = RunSummary::default();
        loop {
            let Some(delivery) = self
                .journal
                .claim_next(sink.name(), &self.worker, LEASE)
                .await?
            else {
                break;
            };
            let filing: Filing = match serde_json::from_slice(&delivery.payload) {
                Ok(f) => f,
                Err(e) => {
                    self.journal
                        .complete(
                            delivery.id,
                            Outcome::Rejected {
                                code: "SINK-PAYLOAD".into(),
                                text: format!("unreadable journaled payload: {e}"),
                            },
                        )
                        .await?;
                    continue;
                }
            };
            let attempt = std::time::Instant::now();
            let result = match sink {
                Sink::Folder { path, .. } => {
                    let sink = FolderSink { dir: path.clone() };
                    let key = delivery.idempotency_key.clone();
                    tokio::task::spawn_blocking(move || sink.deliver(&key, &filing))
                        .await
                        .map_err(|e| EngineError::Internal(e.to_string()))?
                }
                Sink::Fhir { name, .. } => match self.fhir_sinks.get(name) {
                    Some(fhir) => fhir.deliver(&delivery.idempotency_key, &filing).await,
                    None => SinkResult::Retry(format!("FHIR sink {name} is not set up")),
                },
                Sink::Mllp {
                    name,
                    address,
                    sending_application,
                    sending_facility,
                    receiving_application,
                    receiving_facility,
                    connect_timeout_secs,
                    ack_timeout_secs,
                } => {
                    let mllp = sinks::mllp::MllpSink::new(
                        address,
                        relais_dpi::Endpoints {
                            sending_application: sending_application.clone(),
                            sending_facility: sending_facility.clone(),
                            receiving_application: receiving_application.clone(),
                            receiving_facility: receiving_facility.clone(),
                            processing_id: "P".into(),
                        },
                        Duration::from_secs(*connect_timeout_secs),
                        Duration::from_secs(*ack_timeout_secs),
                        self.config.limits.clone(),
                    );
                    let mut clients = self.mllp_clients.lock().await;
                    let client = clients
                        .entry(name.clone())
                        .or_insert_with(|| relais_dpi::MllpClient::new(mllp.client.clone()));
                    mllp.deliver(client, delivery.id.0, &filing).await
                }
            };
            let doc = delivery.document_id;
            metrics::delivery(
                sink.name(),
                match &result {
                    SinkResult::Delivered(_) => "delivered",
                    SinkResult::Rejected { .. } => "rejected",
                    SinkResult::Retry(_) => "retry",
                },
                attempt.elapsed(),
            );
            match result {
                SinkResult::Delivered(detail) => {
                    let closed = self
                        .journal
                        .complete_delivered(delivery.id, &detail)
                        .await?;
                    summary.deliveries += 1;
                    if let Some(message) = closed.message_filed {
                        summary.filed += 1;
                        tracing::info!(sink = sink.name(), document = %doc, message = %message, "document filed; message filed");
                    } else {
                        tracing::info!(sink = sink.name(), document = %doc, "document filed");
                    }
                }
                SinkResult::Rejected { code, text } => {
                    self.journal
                        .complete(
                            delivery.id,
                            Outcome::Rejected {
                                code: code.clone(),
                                text: text.clone(),
                            },
                        )
                        .await?;
                    self.journal
                        .open_review(
                            ReviewSubject::Document(doc),
                            &code,
                            &format!("sink {} refused the document: {text}", sink.name()),
                        )
                        .await?;
                    if let Some(d) = self.journal.get_document(doc).await? {
                        let _ = self
                            .journal
                            .transition(
                                d.message_id,
                                MessageState::Matched,
                                MessageState::AwaitingReview,
                                Event::system("awaiting_review").with_error(&code, &text),
                            )
                            .await;
                    }
                    summary.awaiting_review += 1;
                }
                SinkResult::Retry(text) => {
                    let backoff =
                        Duration::from_secs(2u64.saturating_pow(delivery.attempts.min(8)).min(300));
                    self.journal
                        .retry_later(delivery.id, Timestamp::now().plus(backoff), &text)
                        .await?;
                    summary.retries += 1;
                    tracing::warn!(sink = sink.name(), document = %doc, attempt = delivery.attempts, "delivery failed, will retry");
                    break;
                }
            }
        }
        Ok(summary)
    }

    /// A delivery of `doc` succeeded: when every delivery of the document is done, the document
    /// is filed, and when every document of its message is filed, the message is.
    async fn document_delivered(
        &self,
        doc: DocId,
        summary: &mut RunSummary,
    ) -> Result<(), EngineError> {
        let deliveries = self.journal.deliveries_of_document(doc).await?;
        if deliveries
            .iter()
            .any(|d| d.state != relais_store::DeliveryState::Delivered)
        {
            return Ok(());
        }
        self.journal
            .update_document(
                doc,
                &DocumentUpdate {
                    state: Some(DocumentState::Filed),
                    ..DocumentUpdate::default()
                },
            )
            .await?;
        let Some(record) = self.journal.get_document(doc).await? else {
            return Ok(());
        };
        let docs = self.journal.documents_of_message(record.message_id).await?;
        if docs.iter().all(|d| d.state == DocumentState::Filed) {
            match self
                .journal
                .transition(
                    record.message_id,
                    MessageState::Matched,
                    MessageState::Filed,
                    Event::system("filed"),
                )
                .await
            {
                Ok(()) => summary.filed += 1,
                Err(relais_store::StoreError::StaleState { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Poll, process and deliver until nothing is left to do now.
    pub async fn run_once(&self) -> Result<RunSummary, EngineError> {
        let mut summary = RunSummary::default();
        // The sinks are drained while mail is still being polled and processed, then once
        // more when everything upstream is done.
        let upstream_done = std::sync::atomic::AtomicBool::new(false);
        let (upstream, drained) = tokio::join!(
            async {
                let mut s = RunSummary::default();
                let r = async {
                    self.poll_sources(&mut s).await?;
                    self.process_pending(&mut s).await
                }
                .await;
                upstream_done.store(true, std::sync::atomic::Ordering::SeqCst);
                self.enqueued.notify_one();
                r.map(|()| s)
            },
            async {
                let started = std::time::Instant::now();
                let mut s = RunSummary::default();
                loop {
                    let last = upstream_done.load(std::sync::atomic::Ordering::SeqCst);
                    self.drain_sinks(&mut s).await?;
                    if last {
                        break;
                    }
                    let _ =
                        tokio::time::timeout(DRAIN_FOLLOW_INTERVAL, self.enqueued.notified()).await;
                }
                tracing::debug!(
                    target: "relais::timing",
                    deliveries = s.deliveries,
                    drain_ms = started.elapsed().as_millis() as u64,
                    "sinks drained"
                );
                Ok::<_, EngineError>(s)
            }
        );
        summary.add(&upstream?);
        summary.add(&drained?);
        self.outbound_once(&mut summary).await?;
        self.answer_senders(&mut summary).await?;
        self.record_gauges().await?;
        Ok(summary)
    }

    /// Queue depths per sink and message counts per state, for the metrics.
    async fn record_gauges(&self) -> Result<(), EngineError> {
        for sink in &self.config.sinks {
            metrics::queue_depth(sink.name(), self.journal.pending_count(sink.name()).await?);
        }
        for (state, count) in self.journal.counts_by_state().await? {
            metrics::messages_by_state(state.as_str(), count);
        }
        Ok(())
    }

    /// Start the ADT listener when configured; it stops when `shutdown` flips to true.
    pub async fn start_adt(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<std::net::SocketAddr>, EngineError> {
        let Some(address) = self.config.patients.adt_listen.clone() else {
            return Ok(None);
        };
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        patients::serve_adt(
            self.journal.clone(),
            &address,
            self.config.limits.clone(),
            stop,
        )
        .await
        .map(Some)
        .map_err(|e| EngineError::Source {
            source_name: "adt".into(),
            reason: format!("cannot listen on {address}: {e}"),
        })
    }

    /// Run until `shutdown` flips to true: poll every `interval`, finishing the work in hand
    /// before returning.
    pub async fn run(
        &self,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        // One IDLE watcher per IMAP mailbox wakes the loop as soon as mail arrives; the
        // periodic poll stays as the safety net (a missed notification, a watcher down).
        let (wake_tx, mut wake_rx) = tokio::sync::mpsc::channel::<()>(16);
        for source in &self.config.sources {
            if let Source::Imap { name, .. } = source {
                match sources::imap::imap_config(source, &self.config.limits) {
                    Ok(cfg) => {
                        tokio::spawn(sources::imap::watch(
                            name.clone(),
                            cfg,
                            wake_tx.clone(),
                            shutdown.clone(),
                            self.cluster.held(name),
                        ));
                    }
                    Err(reason) => {
                        return Err(EngineError::Source {
                            source_name: name.clone(),
                            reason,
                        });
                    }
                }
            }
        }
        self.start_outbound_watchers(wake_tx.clone(), shutdown.clone());
        // Alerts by mail and webhook, evaluated on their own period (see `alerts`).
        alerts::spawn(&self.config, self.journal.clone(), shutdown.clone())
            .map_err(config::ConfigError::Invalid)?;
        // Retention: finished messages past their horizons are pruned in small transactions,
        // off the hot path (see relais_store::spawn_pruner and `[retention]`).
        if let (true, Some(every)) = (
            self.config.retention.is_enabled(),
            self.config.retention.run_every(),
        ) {
            let retention = self.config.retention.clone();
            relais_store::spawn_pruner(
                self.journal.clone(),
                move || retention.policy("daemon"),
                every,
                self.config.retention.chunk_rows(),
                shutdown.clone(),
            );
        }
        self.start_outbound_mllp(shutdown.clone()).await?;
        // Mailbox leases, renewed by a task of their own, given back when the loop ends.
        let leases = self.cluster.start_keeper(wake_tx.clone());
        loop {
            if self.cluster.take_recovery_due() {
                // An instance died: take up what it left half-done (see sources::cluster).
                self.recovered
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
            let summary = match self.run_once().await {
                Ok(summary) => summary,
                // A full data directory is not fatal: the failed step kept nothing, new mail
                // stays on the mail server (a mail leaves it only once journaled), and the
                // next cycle retries, so Relais resumes by itself once space is freed.
                Err(EngineError::Store(e)) if e.is_disk_full() => {
                    tracing::error!(
                        code = e.code(),
                        data_dir = %self.config.data_dir.display(),
                        error = %e,
                        "data directory full: not taking new mail; retrying at the next cycle"
                    );
                    RunSummary::default()
                }
                Err(e) => {
                    leases.stop().await;
                    return Err(e);
                }
            };
            if summary != RunSummary::default() {
                tracing::info!(?summary, "cycle done");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                Some(()) = wake_rx.recv() => {
                    while wake_rx.try_recv().is_ok() {}
                }
                _ = shutdown.changed() => {
                    tracing::info!("shutdown requested: work in hand finished, stopping");
                    leases.stop().await;
                    return Ok(());
                }
            }
        }
    }
}

/// Journal steps of one message not committed yet, and the state they leave it in.
struct PendingSteps {
    steps: Vec<JournalStep>,
    state: MessageState,
}

impl PendingSteps {
    fn new(state: MessageState) -> PendingSteps {
        PendingSteps {
            steps: Vec::new(),
            state,
        }
    }

    /// Adds the transition from the state reached so far to `to`.
    fn advance(&mut self, to: MessageState, event: Event) {
        self.steps.push(JournalStep::Transition {
            from: self.state,
            to,
            event,
        });
        self.state = to;
    }
}

/// Adds a filing to the outbox of each sink, keyed by the CDA id and ordered per patient (the
/// IPP when matched, else the INS, else the document itself).
fn enqueue(
    pending: &mut PendingSteps,
    doc_id: DocId,
    filing: &Filing,
    sinks: &[&str],
) -> Result<(), EngineError> {
    let payload = serde_json::to_vec(filing).map_err(|e| EngineError::Internal(e.to_string()))?;
    let ordering = filing
        .patient_ipp
        .clone()
        .or_else(|| {
            Some(format!(
                "{}:{}",
                filing.ins_oid.as_ref()?,
                filing.ins.as_ref()?
            ))
        })
        .unwrap_or_else(|| format!("doc:{}", doc_id.0));
    for sink in sinks {
        pending.steps.push(JournalStep::EnqueueDelivery {
            doc: doc_id,
            sink: (*sink).to_string(),
            idempotency_key: filing.cda_id.clone(),
            payload: payload.clone(),
            ordering_key: ordering.clone(),
        });
    }
    Ok(())
}

/// This host's name, to tell our own workers from those of other instances.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The name a worker holds its leases under: `relais@<host>:<pid>`.
fn worker_id(pid: u32) -> String {
    format!("relais@{}:{pid}", host_name())
}

/// Whether the worker named `owner` was a process of this host that no longer runs, or an
/// instance whose liveness lease expired (declared gone by [`sources::cluster`]). Other workers
/// of other hosts are never judged gone: their leases expire on their own.
fn worker_is_gone(owner: &str) -> bool {
    let Some((host, pid)) = owner
        .strip_prefix("relais@")
        .and_then(|r| r.rsplit_once(':'))
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    (host == host_name()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists())
        || sources::cluster::declared_gone(owner)
}

/// The journal's identity of a CDA document: id, setId, version.
fn document_key(h: &relais_cda::CdaHeader) -> DocumentKey {
    DocumentKey {
        cda_id: h
            .id
            .as_ref()
            .map(relais_cda::Ii::to_xds)
            .unwrap_or_default(),
        set_id: h
            .set_id
            .as_ref()
            .map(relais_cda::Ii::to_xds)
            .unwrap_or_default(),
        version: h
            .version_number
            .as_deref()
            .and_then(|v| v.trim().parse().ok()),
    }
}

/// What a sink receives for one document of a message.
fn filing_for(
    msg: &MessageRecord,
    doc_id: DocId,
    doc: &ExtractedDocument,
    source: &str,
    ipp: Option<String>,
    replaces: Option<String>,
    mail: &sinks::MailSummary,
) -> Filing {
    let h = &doc.cda.header;
    let key = document_key(h);
    let ins = h.patient.as_ref().and_then(|p| p.ins.as_ref());
    Filing {
        message: msg.id.0,
        document: doc_id.0,
        mail_message_id: msg.message_id.clone(),
        source: source.to_string(),
        cda_id: key.cda_id,
        set_id: key.set_id,
        version: key.version,
        replaces,
        type_code: h.type_code().map(str::to_string),
        title: h.title.clone(),
        patient_ipp: ipp,
        ins_oid: ins.map(|i| i.kind.oid().to_string()),
        ins: ins.map(|i| i.value.clone()),
        cda_base64: base64::engine::general_purpose::STANDARD.encode(&doc.bytes),
        mail: mail.clone(),
    }
}

/// The mail facts a sink may pass on (the DPI's MDM carries them in OBX 2).
fn mail_summary(mail: Option<&relais_mssante::ParsedMail>) -> sinks::MailSummary {
    match mail {
        Some(m) => sinks::MailSummary {
            subject: m.subject.clone().unwrap_or_default(),
            body_text: m.body_text.clone().unwrap_or_default(),
            sender: m.from.first().cloned().unwrap_or_default(),
            recipients: m.to.clone(),
        },
        None => sinks::MailSummary::default(),
    }
}

/// The first error of a report: (code, message).
fn first_error(report: &InputReport) -> Option<(String, String)> {
    report
        .all_findings()
        .find(|f| f.is_error())
        .map(|f| (f.code.to_string(), f.message.clone()))
}

/// What the journal's events keep of a report: kinds, counts and rule codes, not message texts
/// (schematron messages may quote document values).
fn report_summary(report: &InputReport) -> serde_json::Value {
    let codes: Vec<String> = report
        .all_findings()
        .filter(|f| f.is_error())
        .map(|f| f.code.to_string())
        .collect();
    serde_json::json!({
        "kind": report.kind,
        "valid": report.valid,
        "documents": report.documents.len(),
        "error_codes": codes,
    })
}

impl Engine {
    /// A reviewer files the document of review `review` to patient `ipp`: the review closes,
    /// the document is routed and queued for its sinks, and the message goes on to `filed` as
    /// the deliveries succeed (call [`Engine::drain_sinks`] or let the daemon do it).
    pub async fn file_reviewed(
        &self,
        review: relais_store::ReviewId,
        ipp: &str,
        actor: &str,
    ) -> Result<(), EngineError> {
        let r = self
            .journal
            .get_review(review)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("no review {review}")))?;
        let msg = self
            .journal
            .get_message(r.message_id)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("no message {}", r.message_id)))?;
        let raw = self.journal.read_raw(msg.id).await?;
        let checker = self.checker.clone();
        let (_, extraction) =
            tokio::task::spawn_blocking(move || checker.check_and_extract("review", &raw))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mail = mail_summary(extraction.mail.as_ref());
        let docs = extraction.documents;
        let registered = self.journal.documents_of_message(msg.id).await?;
        let targets: Vec<DocId> = match r.document_id {
            Some(d) => vec![d],
            None => registered.iter().map(|d| d.id).collect(),
        };
        self.journal
            .resolve_review(
                review,
                relais_store::Resolution::FiledTo {
                    ipp: ipp.to_string(),
                },
                actor,
            )
            .await?;
        let source = Self::source_name(&msg);
        // The documents' filings and the message's move, in one journal call.
        let mut pending = PendingSteps::new(MessageState::AwaitingReview);
        for doc_id in targets {
            let Some(rec) = registered.iter().find(|d| d.id == doc_id) else {
                continue;
            };
            let Some(doc) = docs.iter().find(|d| {
                d.cda
                    .header
                    .id
                    .as_ref()
                    .map(relais_cda::Ii::to_xds)
                    .unwrap_or_default()
                    == rec.key.cda_id
            }) else {
                continue;
            };
            pending.steps.push(JournalStep::UpdateDocument {
                doc: doc_id,
                update: DocumentUpdate {
                    state: Some(DocumentState::Matched),
                    patient_ipp: Some(ipp.to_string()),
                    ..DocumentUpdate::default()
                },
            });
            let filing = filing_for(
                &msg,
                doc_id,
                doc,
                &source,
                Some(ipp.to_string()),
                None,
                &mail,
            );
            let sinks = self.config.route(doc.cda.header.type_code(), &source, None);
            enqueue(&mut pending, doc_id, &filing, &sinks)?;
        }
        let e = Event::user("review_filed", actor)
            .with_detail(serde_json::json!({ "review": review.0 }));
        pending.advance(MessageState::Matched, e);
        self.commit(msg.id, &mut pending).await?;
        Ok(())
    }

    /// A reviewer rejects the subject of review `review`.
    pub async fn reject_reviewed(
        &self,
        review: relais_store::ReviewId,
        note: &str,
        actor: &str,
    ) -> Result<(), EngineError> {
        let r = self
            .journal
            .get_review(review)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("no review {review}")))?;
        self.journal
            .resolve_review(
                review,
                relais_store::Resolution::Rejected {
                    note: note.to_string(),
                },
                actor,
            )
            .await?;
        self.journal
            .transition(
                r.message_id,
                MessageState::AwaitingReview,
                MessageState::Rejected,
                Event::user("review_rejected", actor).with_error("REVIEW-REJECTED", note),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod lane_tests {
    use super::lanes;

    fn keys(item: &(u32, &'static [&'static str])) -> Vec<String> {
        item.1.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn same_key_same_lane_in_order_and_multi_key_items_are_barriers() {
        let items: Vec<(u32, &'static [&'static str])> = vec![
            (1, &["ins:A"]),
            (2, &["ins:B"]),
            (3, &["ins:A", "set:X"]),
            (4, &[]),
            (5, &["ins:A"]),
            (6, &["ins:B"]),
        ];
        let segments = lanes(items, 4, keys);
        // Wherever it lands, every item is there once.
        let mut all: Vec<u32> = segments.iter().flatten().flatten().map(|i| i.0).collect();
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
        // Within each segment, items sharing a key share a lane, in arrival order.
        for seg in &segments {
            for lane in seg {
                let ids: Vec<u32> = lane.iter().map(|i| i.0).collect();
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                assert_eq!(ids, sorted, "order kept within a lane");
            }
            for key in ["ins:A", "ins:B"] {
                let holding = seg
                    .iter()
                    .filter(|lane| lane.iter().any(|i| i.1.contains(&key)))
                    .count();
                assert!(holding <= 1, "{key} split across lanes: {seg:?}");
            }
        }
        // A segment never holds an item with the same key before an earlier segment's item.
        let position = |id: u32| {
            segments
                .iter()
                .position(|seg| seg.iter().flatten().any(|i| i.0 == id))
                .unwrap()
        };
        assert!(position(1) <= position(3) && position(3) <= position(5));
        assert!(position(2) <= position(6));
    }

    #[test]
    fn unrelated_messages_spread_over_lanes_even_with_two_keys_each() {
        // Every message has a patient key and a set key (as real letters do): unrelated
        // patients must still run side by side, related ones in one lane.
        let items: Vec<(u32, &'static [&'static str])> = vec![
            (1, &["ins:A", "set:1"]),
            (2, &["ins:B", "set:2"]),
            (3, &["ins:C", "set:3"]),
            (4, &["ins:A", "set:4"]),
            (5, &["ins:D", "set:1"]),
        ];
        let segments = lanes(items, 4, keys);
        assert_eq!(segments.len(), 1, "{segments:?}");
        let seg = &segments[0];
        assert!(seg.len() >= 3, "unrelated messages share lanes: {seg:?}");
        let lane_ids: Vec<Vec<u32>> = seg
            .iter()
            .map(|l| l.iter().map(|i| i.0).collect())
            .collect();
        // 1, 4 (same patient) and 5 (same set as 1) are one group, in order.
        assert!(lane_ids.contains(&vec![1, 4, 5]), "{lane_ids:?}");
    }

    #[test]
    fn with_one_lane_everything_keeps_arrival_order() {
        let items: Vec<(u32, &'static [&'static str])> =
            vec![(1, &["a"]), (2, &["b"]), (3, &["c"]), (4, &[])];
        let segments = lanes(items, 1, keys);
        let ids: Vec<u32> = segments.iter().flatten().flatten().map(|i| i.0).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }
}
