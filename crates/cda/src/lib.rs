//! CDA R2 documents with the French CI-SIS header: read them, check the header rules, validate
//! them against the XSD.
//!
//! Every clinical document that reaches a French hospital over MSSanté (discharge letters, lab
//! and imaging reports...) is a CDA R2 document whose header follows the CI-SIS "Structuration
//! minimale". The engine needs that header to route and file the document: who the patient is
//! (INS and identity traits), what the document is (type code, model templateId, level 1 PDF or
//! level 3 structured), who wrote and signed it, and which document it replaces. This crate:
//!
//! - [`read`]s the bytes into an owned [`CdaDocument`] through the hardened parser of
//!   `relais-core` (no DTD, bounded size), with [`CdaDocument::embedded_pdf`] for the PDF a level 1
//!   body or a level 3 "copy" section carries;
//! - [`check_header`] applies the CI-SIS header rules as Rust code, each finding with a stable
//!   code from [`codes`] and an XPath location;
//! - [`XsdValidator`] validates against the CDA XSD with the French extensions
//!   (`CDA_extended.xsd`), through libxml2.
//!
//! The model-specific rules (one schematron per CI-SIS model) are the `relais-schematron` crate's
//! work; this crate only checks what every CI-SIS document shares.
//!
//! **libxml2 is a hard dependency**: the crate links the system `libxml2` (Debian package
//! `libxml2-dev`, installed by `tests/setup.sh`) for XSD validation, even when only the reader is
//! used. There is no pure-Rust XSD validator able to handle the CDA schema.

pub mod codes;
mod header;
pub mod ins;
mod model;
mod read;
mod xsd;

pub use header::{SOURCE_RELAIS, SOURCE_STRUCT_MIN, check_header};
pub use ins::{Ins, InsKind};
pub use model::*;
pub use read::{CdaError, HL7_NS, read};
pub use xsd::{XsdError, XsdValidator};

/// Fuzz entry point: reads arbitrary bytes as a CDA document and, when that succeeds, checks its
/// header and touches the embedded PDF. Must never panic.
pub fn fuzz_entry(data: &[u8]) {
    let limits = relais_core::Limits {
        max_xml_bytes: 4 * 1024 * 1024,
        ..relais_core::Limits::default()
    };
    match read(data, &limits) {
        Ok(doc) => {
            let findings = check_header(&doc);
            let _ = findings.len();
            let _ = doc.embedded_pdf();
            let _ = doc.model_template_ids();
        }
        Err(e) => {
            let _ = e.to_finding();
        }
    }
}
