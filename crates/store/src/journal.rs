//! The [`Journal`] trait: what the pipeline asks of its durable store, whatever the database.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::*;

/// The durable journal of the inbound pipeline.
///
/// Every method is one database transaction: when it returns `Ok`, its effect is committed and
/// survives a crash (SQLite: WAL with `synchronous=FULL`). Methods that change a message also
/// append to its audit trail in the same transaction. Used as `Arc<dyn Journal>` so that the
/// engine does not care whether SQLite or PostgreSQL is behind it.
#[async_trait]
pub trait Journal: Send + Sync {
    // --- Messages ---------------------------------------------------------------------------

    /// Journals a raw mail: the blob is fsynced, then the row and its "received" event are
    /// committed. A duplicate (by source key, or by Message-ID + SHA-256) is not stored again; a
    /// `duplicate_seen` event is appended to the existing message. Only after `Ok` may the
    /// source acknowledge (IMAP move/flag, file move).
    async fn ingest(&self, req: IngestRequest<'_>) -> Result<IngestOutcome>;

    /// The message row, if any.
    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>>;

    /// The raw bytes of a message, verified against their SHA-256.
    async fn read_raw(&self, id: MessageId) -> Result<Vec<u8>>;

    /// Moves a message from `from` to `to`, appending `event` (with both states). Fails with
    /// `IllegalTransition` if the state machine forbids it, and with `StaleState` if the message
    /// is no longer in `from` (another worker won): optimistic concurrency.
    async fn transition(
        &self,
        id: MessageId,
        from: MessageState,
        to: MessageState,
        event: Event,
    ) -> Result<()>;

    /// Appends an event without changing the state (e.g. a retried step). Sets `last_error`
    /// when the event carries an error.
    async fn record_event(&self, id: MessageId, event: Event) -> Result<()>;

    /// Applies several steps of one message's processing, in order, and answers what each did.
    /// A backend that can commits them in one transaction, all or none (SQLite does: one
    /// savepoint of the group commit); the default applies them one by one, each in its own
    /// transaction, which is as safe for the pipeline (every step is idempotent on resume) but
    /// slower. A failing step stops the sequence with its error.
    async fn apply_steps(
        &self,
        message: MessageId,
        steps: Vec<JournalStep>,
    ) -> Result<Vec<StepOutcome>> {
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            out.push(match step {
                JournalStep::Transition { from, to, event } => {
                    self.transition(message, from, to, event).await?;
                    StepOutcome::Done
                }
                JournalStep::RecordEvent(event) => {
                    self.record_event(message, event).await?;
                    StepOutcome::Done
                }
                JournalStep::RegisterDocument { key, meta } => {
                    StepOutcome::Document(self.register_document(message, &key, &meta).await?)
                }
                JournalStep::UpdateDocument { doc, update } => {
                    self.update_document(doc, &update).await?;
                    StepOutcome::Done
                }
                JournalStep::OpenReview {
                    subject,
                    code,
                    text,
                } => StepOutcome::Review(self.open_review(subject, &code, &text).await?),
                JournalStep::EnqueueDelivery {
                    doc,
                    sink,
                    idempotency_key,
                    payload,
                    ordering_key,
                } => StepOutcome::Delivery(
                    self.enqueue_delivery(doc, &sink, &idempotency_key, payload, &ordering_key)
                        .await?,
                ),
            });
        }
        Ok(out)
    }

    /// Up to `limit` messages in `state` with an id above `after`, oldest first: the order in
    /// which the pipeline takes work (arrival order).
    async fn oldest_in_state(
        &self,
        state: MessageState,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>>;

    /// Messages matching `filter`, newest first.
    async fn list_messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>>;

    /// The audit trail of a message, oldest first.
    async fn message_events(&self, id: MessageId) -> Result<Vec<EventRecord>>;

    /// How many messages are in each state (every state listed, zeros included).
    async fn counts_by_state(&self) -> Result<Vec<(MessageState, u64)>>;

    // --- Answers to senders -----------------------------------------------------------------

    /// Messages whose answer is due (see [`AnswerState`]), oldest first. A transition to
    /// filed, rejected or awaiting_review makes the answer due, once per message.
    async fn answers_due(&self, limit: u32) -> Result<Vec<MessageId>>;

    /// Records how the sender of `id` was answered (`Sent`, `Skipped` or `Failed`; `Due` keeps
    /// it due) with `event`, in one transaction.
    async fn record_answer(&self, id: MessageId, answer: AnswerState, event: Event) -> Result<()>;

    // --- Documents --------------------------------------------------------------------------

    /// Registers a document carried by `message` (see [`DocumentOutcome`] for duplicates and
    /// versions: same CDA id → duplicate; same setId and higher version → new version).
    async fn register_document(
        &self,
        message: MessageId,
        key: &DocumentKey,
        meta: &DocumentMeta,
    ) -> Result<DocumentOutcome>;

    /// The document row, if any.
    async fn get_document(&self, id: DocId) -> Result<Option<DocumentRecord>>;

    /// The documents carried by a message, in registration order.
    async fn documents_of_message(&self, id: MessageId) -> Result<Vec<DocumentRecord>>;

    /// Changes a document's state, patient or validation summary.
    async fn update_document(&self, id: DocId, update: &DocumentUpdate) -> Result<()>;

    // --- Deliveries (sink outbox) -----------------------------------------------------------

    /// Puts a delivery in the outbox, or returns the existing one with the same
    /// (sink, idempotency key) (its payload is kept as first enqueued).
    async fn enqueue_delivery(
        &self,
        doc: DocId,
        sink: &str,
        idempotency_key: &str,
        payload: Vec<u8>,
        ordering_key: &str,
    ) -> Result<DeliveryId>;

    /// Claims the oldest claimable delivery of `sink` for `worker` for `lease`: pending (or in
    /// flight with an expired lease), `not_before` reached, and no earlier unfinished delivery
    /// with the same ordering key on this sink. Each claim counts as an attempt.
    async fn claim_next(
        &self,
        sink: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>>;

    /// Records the final outcome of a claimed delivery. Fails with `DeliveryNotInFlight` when
    /// it is not in flight (already completed, or given back by `retry_later`). A worker whose
    /// lease expired may still complete as long as nobody else has: if another worker took it
    /// over, the first to complete wins and the sink's idempotency key absorbs the double send.
    async fn complete(&self, id: DeliveryId, outcome: Outcome) -> Result<()>;

    /// Records a successful delivery and closes what it completes, in the same transaction:
    /// its document is filed once every delivery of the document is delivered, and the
    /// document's message is filed (from `matched`) once all its documents are.
    async fn complete_delivered(&self, id: DeliveryId, detail: &str) -> Result<Closed>;

    /// Gives a claimed delivery back to the queue, not to be claimed before `not_before`.
    async fn retry_later(&self, id: DeliveryId, not_before: Timestamp, error: &str) -> Result<()>;

    /// Unfinished (pending or in flight) deliveries of `sink`.
    async fn pending_count(&self, sink: &str) -> Result<u64>;

    /// The delivery row, if any.
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<Delivery>>;

    /// Every delivery of a document (one per sink), oldest first: the engine files a document
    /// once all of them are delivered.
    async fn deliveries_of_document(&self, doc: DocId) -> Result<Vec<Delivery>>;

    // --- Review queue -----------------------------------------------------------------------

    /// Opens a review, or returns the open one with the same subject and reason code.
    async fn open_review(
        &self,
        subject: ReviewSubject,
        reason_code: &str,
        reason_text: &str,
    ) -> Result<ReviewId>;

    /// Reviews matching `filter`, oldest first.
    async fn list_reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>>;

    /// The review, if any.
    async fn get_review(&self, id: ReviewId) -> Result<Option<Review>>;

    /// Closes an open review with a decision by `actor`; fails with `ReviewNotOpen` if it was
    /// already resolved (two reviewers at once: the first one wins).
    async fn resolve_review(&self, id: ReviewId, resolution: Resolution, actor: &str)
    -> Result<()>;

    // --- Patient index ----------------------------------------------------------------------

    /// Creates or replaces the patient with this IPP (a merged IPP stays merged).
    async fn upsert_patient(&self, record: &PatientRecord) -> Result<()>;

    /// The surviving patients that hold this INS (merged IPPs resolve to their survivor).
    async fn find_patient_by_ins(&self, oid: &str, value: &str) -> Result<InsMatch>;

    /// The patient with this IPP; a merged IPP resolves to the surviving patient.
    async fn find_patient_by_ipp(&self, ipp: &str) -> Result<Option<FoundPatient>>;

    /// ADT A40: `merged_ipp` is merged into `surviving_ipp` (which must be known; the merged one
    /// is created as a stub if unknown). Earlier merges into `merged_ipp` follow it.
    async fn merge_patients(&self, surviving_ipp: &str, merged_ipp: &str) -> Result<()>;

    // --- Retention --------------------------------------------------------------------------

    /// Prunes finished messages past the policy's horizons (see `prune.rs`), in transactions of
    /// about `chunk_rows` rows each so that intake waits for one chunk at most; with `dry_run`,
    /// writes nothing and reports what would go. Every chunk leaves an audit record.
    async fn prune(
        &self,
        policy: &crate::prune::PrunePolicy,
        dry_run: bool,
        chunk_rows: u32,
    ) -> Result<crate::prune::PruneReport> {
        let _ = (policy, dry_run, chunk_rows);
        Err(crate::error::StoreError::InvalidInput(
            "retention pruning is available on the SQLite journal only so far; leave [retention] unset with PostgreSQL".into(),
        ))
    }
}
