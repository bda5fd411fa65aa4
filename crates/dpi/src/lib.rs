//! Everything Relais says to, and hears from, the hospital's DPI (dossier patient informatisé)
//! over HL7v2 and MLLP.
//!
//! Documents received over MSSanté end up in the DPI: Relais is the GESTIONNAIRE of the ANS guide
//! "Intégration des documents reçus par MSSanté dans le LPS" (ig-lps-mss), the DPI its
//! CONSOMMATEUR. And to file those documents, Relais must know the hospital's patients: their IPP,
//! and their INS with the identity traits, which the identity server (GAM) publishes as IHE PAM
//! France ADT messages. This crate holds both directions:
//!
//! - [`build_mdm`] writes the MDM^T02 (new), T10 (replace) or T04 (delete) v2.6 that carries one
//!   CDA document and the facts of its mail, per the guide's segment tables;
//! - [`MllpClient`] sends it over MLLP and reads the ACK: [`AckOutcome::Accepted`],
//!   [`AckOutcome::Rejected`] with the DPI's error code (the LPS codes 900…906 are [`LpsError`]),
//!   or [`AckOutcome::Retry`]; transport problems are typed [`DpiError`]s saying what to do;
//! - [`AdtListener`] is the MLLP server receiving ADT A01/A03/A04/A05/A08/A28/A31/A40, handing
//!   [`PatientEvent`]s to a channel and acknowledging them;
//! - [`parse_patients_csv`] reads the same identities from a CSV file (`relais patients import`).
//!
//! HL7 parsing, escaping, profile validation, ACK building and MLLP framing come from
//! `relais-hl7`; the CDA header from `relais-cda`; the mail from `relais-mssante`. Patient data
//! (names, INS, birth dates, subjects) never appears in errors, `Debug` output or logs.

pub mod adt;
pub mod client;
pub mod codes;
pub mod csv;
pub mod mdm;

pub use adt::{
    ACCEPTED_TRIGGERS, AdtError, AdtListener, AdtListenerConfig, PatientEvent, PatientUpdate,
    extract_event, fallback_ack,
};
pub use client::{
    AckOutcome, ClientConfig, DpiError, LpsError, MllpClient, control_id_of, read_ack,
};
pub use csv::{CSV_COLUMNS, CsvError, parse_patients_csv};
pub use mdm::{
    Endpoints, MailFacts, MdmError, MdmEvent, MdmInput, MetaFlags, SenderPerson, build_mdm,
    hl7_timestamp_now, is_hl7_timestamp,
};
