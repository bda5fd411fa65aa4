//! The FHIR R4 sink: each document as one transaction Bundle (Patient by identifier, Binary,
//! DocumentReference) POSTed to the hospital's FHIR server (relais-fhir).
//!
//! Built once per configured sink ([`FhirSink::new`] reads the token and the certificates and
//! opens nothing yet), then shared by the deliveries: the HTTP client keeps its connections.
//! The bundle's ids come from the delivery's idempotency key and its conditional creates from
//! the CDA id and the patient's identifiers, so a delivery retried after a crash or a lost
//! answer files nothing twice.
//!
//! Verdicts: filed → `Delivered`; refused for good (`FHIR-AUTH` when the credentials are
//! refused, `FHIR-<status>` for other 4xx, `FHIR-RESPONSE` for an unreadable success,
//! `FHIR-NO-PATIENT`...) → `Rejected`, so a human looks; 5xx, 408, 429, timeouts, connection and
//! TLS failures → `Retry`.

use super::{Filing, SinkResult};
use relais_fhir::{DocumentFiling, Filer, Ins, Outcome, PatientIds, Settings};

/// One FHIR sink: its client and settings, built once.
#[derive(Debug)]
pub struct FhirSink {
    filer: Filer,
}

impl FhirSink {
    /// Checks the settings, reads the bearer token file and the certificates. The error says
    /// which setting to fix.
    pub fn new(settings: &Settings) -> Result<Self, String> {
        Filer::new(settings)
            .map(|filer| FhirSink { filer })
            .map_err(|e| e.to_string())
    }

    /// Files `filing` under the delivery's idempotency key `key`.
    pub async fn deliver(&self, key: &str, filing: &Filing) -> SinkResult {
        let ins = match (&filing.ins_oid, &filing.ins) {
            (Some(oid), Some(value)) => Some(Ins { oid, value }),
            _ => None,
        };
        let doc = DocumentFiling {
            idempotency_key: key,
            cda_id: &filing.cda_id,
            replaces: filing.replaces.as_deref(),
            type_code: filing.type_code.as_deref(),
            title: filing.title.as_deref(),
            patient: PatientIds {
                ipp: filing.patient_ipp.as_deref(),
                ins,
            },
            mail_message_id: filing.mail_message_id.as_deref(),
            cda_base64: &filing.cda_base64,
        };
        match self.filer.file(&doc).await {
            Outcome::Filed(filed) => SinkResult::Delivered(filed.detail()),
            Outcome::Rejected { code, text } => SinkResult::Rejected { code, text },
            Outcome::Retry { text } => SinkResult::Retry(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use relais_testsupport::fhir_peer::FhirPeer;

    fn filing() -> Filing {
        Filing {
            message: 1,
            document: 1,
            mail_message_id: Some("<m1@ch-demo.mssante.fr>".into()),
            source: "bal".into(),
            cda_id: "1.2.250.1.999.1.1^DOC-1".into(),
            set_id: "1.2.250.1.999.1.2^SET-1".into(),
            version: Some(1),
            replaces: None,
            type_code: Some("11490-0".into()),
            title: Some("Lettre de liaison".into()),
            patient_ipp: Some("IPP-1".into()),
            ins_oid: Some("1.2.250.1.213.1.4.10".into()),
            ins: Some("279035121518989".into()),
            cda_base64: base64::engine::general_purpose::STANDARD
                .encode("<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>"),
            mail: Default::default(),
        }
    }

    #[tokio::test]
    async fn files_once_on_a_real_fhir_server() {
        let peer = FhirPeer::start_with_token();
        let mut settings = Settings::new(peer.base_url(), "1.2.250.1.999.2.1");
        settings.bearer_token_file = Some(peer.token_file());
        let sink = FhirSink::new(&settings).unwrap();
        let f = filing();
        match sink.deliver("fhir:1", &f).await {
            SinkResult::Delivered(detail) => {
                assert!(detail.contains("DocumentReference/"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        match sink.deliver("fhir:1", &f).await {
            SinkResult::Delivered(detail) => assert!(detail.contains("already filed"), "{detail}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(peer.created("DocumentReference"), 1);

        peer.set_mode("503");
        assert!(matches!(
            sink.deliver("fhir:1", &f).await,
            SinkResult::Retry(_)
        ));
        peer.set_mode("401");
        match sink.deliver("fhir:1", &f).await {
            SinkResult::Rejected { code, .. } => assert_eq!(code, "FHIR-AUTH"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_errors_name_the_setting() {
        let mut settings = Settings::new("https://dpi.example/fhir", "1.2.3");
        settings.client_cert = Some("/nonexistent/cert.pem".into());
        let err = FhirSink::new(&settings).unwrap_err();
        assert!(err.contains("client_key"), "{err}");
    }
}
