//! The DPI sink: one HL7v2 MDM per document over MLLP (relais-dpi), the ACK deciding.
//!
//! The MDM is built at delivery time from the journaled [`Filing`]; its control id (MSH-10) is
//! derived from the delivery id, so a retry after a crash or a timeout sends the same control id
//! and the same document id (TXA-12): a DPI that already filed it recognises the retry.

use super::{Filing, SinkResult};
use base64::Engine as _;
use relais_dpi::{
    AckOutcome, ClientConfig, Endpoints, MailFacts, MdmEvent, MdmInput, MetaFlags, MllpClient,
};
use std::time::Duration;

/// Settings of one MLLP sink.
#[derive(Debug, Clone)]
pub struct MllpSink {
    pub endpoints: Endpoints,
    pub client: ClientConfig,
}

impl MllpSink {
    pub fn new(
        address: &str,
        endpoints: Endpoints,
        connect_timeout: Duration,
        ack_timeout: Duration,
        limits: relais_core::Limits,
    ) -> Self {
        let mut client = ClientConfig::new(address);
        client.connect_timeout = connect_timeout;
        client.ack_timeout = ack_timeout;
        client.limits = limits;
        MllpSink { endpoints, client }
    }

    /// Build the MDM of `filing` and send it with `client` (kept open between deliveries).
    pub async fn deliver(
        &self,
        client: &mut MllpClient,
        delivery_id: i64,
        filing: &Filing,
    ) -> SinkResult {
        let cda = match base64::engine::general_purpose::STANDARD.decode(&filing.cda_base64) {
            Ok(c) => c,
            Err(e) => {
                return SinkResult::Rejected {
                    code: "SINK-PAYLOAD".into(),
                    text: format!("the journaled document is not valid base64: {e}"),
                };
            }
        };
        let doc = match relais_cda::read(&cda, &self.client.limits) {
            Ok(d) => d,
            Err(e) => {
                return SinkResult::Rejected {
                    code: e.code().to_string(),
                    text: "the journaled document cannot be read again".into(),
                };
            }
        };
        let replaces = filing.replaces.is_some()
            || doc
                .header
                .related_documents
                .iter()
                .any(|r| r.is_replacement());
        let mail = MailFacts {
            message_id: filing.mail_message_id.clone().unwrap_or_default(),
            subject: filing.mail.subject.clone(),
            body_text: filing.mail.body_text.clone(),
            sender: filing.mail.sender.clone(),
            recipients: filing.mail.recipients.clone(),
            reply_to: Vec::new(),
            sender_person: None,
        };
        let control_id = format!("RLS{delivery_id}");
        let timestamp = relais_dpi::hl7_timestamp_now();
        let input = MdmInput {
            event: if replaces {
                MdmEvent::Replace
            } else {
                MdmEvent::New
            },
            cda: &cda,
            header: &doc.header,
            mail: &mail,
            endpoints: &self.endpoints,
            meta: MetaFlags::default(),
            control_id: &control_id,
            timestamp: &timestamp,
        };
        let message = match relais_dpi::build_mdm(&input) {
            Ok(m) => m,
            Err(e) => {
                return SinkResult::Rejected {
                    code: e.code().to_string(),
                    text: e.to_string(),
                };
            }
        };
        match client.send(&message).await {
            Ok(AckOutcome::Accepted) => {
                SinkResult::Delivered(format!("ACK AA for control id {control_id}"))
            }
            Ok(AckOutcome::Rejected { code, text }) => SinkResult::Rejected { code, text },
            Ok(AckOutcome::Retry { text }) => {
                SinkResult::Retry(format!("the DPI asked to retry (AR): {text}"))
            }
            Err(e) if e.is_transient() => SinkResult::Retry(e.to_string()),
            Err(e) => SinkResult::Retry(format!("{e} (code {})", e.code())),
        }
    }
}
