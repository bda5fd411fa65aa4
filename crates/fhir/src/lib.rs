//! FHIR R4 sink of Relais: files each inbound CDA document on the hospital's FHIR server.
//!
//! Why its own crate: a FHIR server is the other common way, beside HL7v2 MDM over MLLP, for a
//! DPI (the hospital's patient record) to take documents in, and filing there has rules of its
//! own that the engine should not have to know: which resources to send, how to make a replay
//! harmless, which HTTP answers mean "filed", "refused" or "later". The crate knows nothing of
//! the engine; the engine's FHIR sink maps its journaled filing to a [`DocumentFiling`] and the
//! [`Outcome`] back to its delivery result.
//!
//! One document is one **transaction Bundle** ([`bundle`]): Patient (conditional create on the
//! IPP, else the INS), Binary (the CDA), DocumentReference (conditional create on the CDA id).
//! The transaction is atomic on the server, and its conditional creates make it idempotent: the
//! engine may send it again after a crash or a lost answer and the document is filed once.
//!
//! It is POSTed to the configured FHIR base ([`client`]) as `application/fhir+json` over
//! HTTPS, trusting only the configured CA files, with a bearer token read from a file and/or a
//! client certificate (mTLS), through reqwest on rustls with the ring provider (no OpenSSL, no
//! aws-lc). The answer is classified in [`outcome`]: filed; refused for good (a human looks,
//! e.g. `FHIR-AUTH` when the credentials are refused, `FHIR-400` when the bundle is); or retry
//! (5xx, 408, 429, no answer).
//!
//! Nothing here logs, and no error text quotes patient data: identifiers are reported by name
//! ("the IPP"), never by value, and the server's free-text diagnostics are not copied.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relais_fhir::SetupError> {
//! use relais_fhir::{DocumentFiling, Filer, Ins, Outcome, PatientIds, Settings};
//! let mut settings = Settings::new("https://dpi.example/fhir", "urn:oid:1.2.250.1.999.2");
//! settings.ca_files = vec!["/etc/relais/certs/hospital-ca.pem".into()];
//! settings.bearer_token_file = Some("/etc/relais/secrets/fhir.token".into());
//! let filer = Filer::new(&settings)?; // once per sink
//! let doc = DocumentFiling {
//!     idempotency_key: "fhir-dpi:42",
//!     cda_id: "1.2.250.1.999.1.1^DOC-1",
//!     replaces: None,
//!     type_code: Some("11490-0"),
//!     title: Some("Lettre de liaison"),
//!     patient: PatientIds { ipp: Some("123456"), ins: None },
//!     mail_message_id: Some("<m1@ch-demo.mssante.fr>"),
//!     cda_base64: "PENsaW5pY2FsRG9jdW1lbnQvPg==",
//! };
//! match filer.file(&doc).await {
//!     Outcome::Filed(f) => println!("{}", f.detail()),
//!     Outcome::Rejected { code, text } => println!("review: {code} {text}"),
//!     Outcome::Retry { text } => println!("later: {text}"),
//! }
//! # Ok(()) }
//! ```

pub mod bundle;
pub mod client;
pub mod outcome;

pub use bundle::{BundleError, DocumentFiling, Ins, PatientIds, transaction_bundle};
pub use client::{FhirClient, Filer, PostError, Settings, SetupError};
pub use outcome::{Filed, Outcome, RawResponse, classify};
