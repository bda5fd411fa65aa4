//! What an operator does to a message besides resolving a review: today, reprocessing.
//!
//! Each action is a journal change made under the operator's name, so the audit trail says
//! who did what ([`relais_store::Actor::User`]). The console and the CLI call these with the
//! logged-in user's name; the pipeline itself never does.

use crate::Engine;
use relais_store::{
    Event, MessageId, MessageState, Resolution, ReviewFilter, ReviewId, ReviewStatus, StoreError,
};

/// Most open reviews looked through for those of the message being reprocessed (the journal's
/// own cap on one listing).
const OPEN_REVIEWS_SCANNED: u32 = 10_000;

/// An operator action the journal refused, said so that the operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No message with this id.
    #[error("no message {0} in the journal")]
    UnknownMessage(MessageId),
    /// The message is not in a state the action applies to.
    #[error(
        "message {id} is {state}: only a rejected message or one awaiting review can be reprocessed"
    )]
    NotReprocessable { id: MessageId, state: MessageState },
    /// Someone (an operator or the engine) changed the message meanwhile: look again.
    #[error("message {0} changed while the action ran; reload it and try again")]
    Concurrent(MessageId),
    /// The journal failed.
    #[error("journal: {0}")]
    Store(#[from] StoreError),
}

/// What [`Engine::reprocess`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reprocessed {
    /// The state the message left.
    pub from: MessageState,
    /// The open reviews of the message that were closed (the new pass opens its own).
    pub reviews_closed: Vec<ReviewId>,
}

impl Engine {
    /// An operator sends a rejected message, or one awaiting review, through the pipeline
    /// again (after a configuration change, a validation pack update, or a patient added to
    /// the index): the message goes back to `received` with a `reprocess` event by `actor`, and
    /// the engine processes it at its next pass (or at once with [`Engine::process_pending`]).
    ///
    /// The message's open reviews are closed first (as rejected, with a note saying why), so
    /// that no stale review stays in the queue once the new pass has decided: if the message
    /// still needs a human, the new pass opens a fresh review. Documents already registered are
    /// recognised as the message's own and never filed twice.
    pub async fn reprocess(
        &self,
        message: MessageId,
        actor: &str,
    ) -> Result<Reprocessed, ActionError> {
        let journal = self.journal();
        let rec = journal
            .get_message(message)
            .await?
            .ok_or(ActionError::UnknownMessage(message))?;
        let from = rec.state;
        if !matches!(from, MessageState::Rejected | MessageState::AwaitingReview) {
            return Err(ActionError::NotReprocessable {
                id: message,
                state: from,
            });
        }
        let mut reviews_closed = Vec::new();
        if from == MessageState::AwaitingReview {
            let open = journal
                .list_reviews(&ReviewFilter {
                    status: Some(ReviewStatus::Open),
                    reason_code: None,
                    limit: OPEN_REVIEWS_SCANNED,
                })
                .await?;
            for review in open.iter().filter(|r| r.message_id == message) {
                let resolution = Resolution::Rejected {
                    note: "closed: the message was reprocessed".into(),
                };
                match journal.resolve_review(review.id, resolution, actor).await {
                    Ok(()) => reviews_closed.push(review.id),
                    // Resolved by someone else meanwhile: nothing left to close.
                    Err(StoreError::ReviewNotOpen { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let event = Event::user("reprocess", actor).with_detail(serde_json::json!({
            "from": from.as_str(),
            "reviews_closed": reviews_closed.iter().map(|r| r.0).collect::<Vec<_>>(),
        }));
        match journal
            .transition(message, from, MessageState::Received, event)
            .await
        {
            Ok(()) => {}
            Err(StoreError::StaleState { .. }) => return Err(ActionError::Concurrent(message)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(message = %message, from = %from, "message sent back for processing by an operator");
        Ok(Reprocessed {
            from,
            reviews_closed,
        })
    }
}
