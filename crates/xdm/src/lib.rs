//! IHE XDM packages (ITI-32, "Distribute Document Set on Media"): reading and writing.
//!
//! On MSSanté, health documents travel as a ZIP named `IHE_XDM.zip` holding README.TXT,
//! INDEX.HTM and one folder per submission set, `IHE_XDM/SUBSET01/`, with METADATA.XML (an ebRS
//! 3.0 `SubmitObjectsRequest` describing the submission set and each document) beside the
//! documents themselves. The receiving hospital identifies the patient and the document type
//! from that metadata before it opens any CDA, so this crate reads it into typed values
//! ([`Metadata`], [`DocumentEntry`], [`SubmissionSet`]) and checks that each document is there,
//! unaltered (SHA-1 `hash`, `size`), and about one patient.
//!
//! The ZIP comes from outside the hospital, so [`read_package`] treats it as hostile: size, entry
//! count, path traversal, encryption, compression method, declared and actual inflated sizes
//! and ratios are checked before or while inflating (never more than the limits in memory); any
//! of those is an [`XdmError`] with a stable code. Everything else is a [`relais_core::Finding`]
//! in [`XdmPackage::findings`]; the codes are listed in [`codes`].
//!
//! Outbound, [`PackageBuilder`] writes a conformant package that reads back to the same
//! metadata without findings. [`write_metadata_xml`] and [`RawZip`] let tests build invalid
//! variants. Cross-checks between the metadata and the CDA header are done by the CDA layer,
//! from the fields exposed here.

mod build;
pub mod codes;
mod error;
mod ids;
mod model;
mod parse;
pub mod raw;
mod read;
mod write;

pub use build::{BuildError, BuiltPackage, PackageBuilder, ProductInfo, SUBSET_DIR, write_zip};
pub use error::XdmError;
pub use ids::{name_based_oid, name_based_uuid};
pub use model::{
    Association, Author, Coded, Cx, DocumentEntry, Metadata, Slot, SubmissionSet, uuids,
};
pub use parse::{check_metadata, parse_metadata};
pub use raw::{RawEntry, RawZip};
pub use read::{RATIO_EXEMPT_BYTES, Subset, XdmDocument, XdmPackage, read_package};
pub use write::write_metadata_xml;

use relais_core::Limits;

/// Fuzz target: read arbitrary bytes as a package with the default limits. Must never panic.
pub fn fuzz_entry(data: &[u8]) {
    let _ = read_package(data, &Limits::default());
}

/// Fuzz target: parse arbitrary bytes as METADATA.XML; when they parse, write the metadata back
/// and parse it again. Panics only if that second reading differs from the first, which would
/// be a bug of the reader or the writer (the fuzzer reports it).
pub fn fuzz_metadata(data: &[u8]) {
    let limits = Limits::default();
    let (first, _) = parse_metadata(data, "IHE_XDM/SUBSET01/METADATA.XML", &limits);
    if let Some(first) = first {
        let written = write_metadata_xml(&first);
        let (second, _) =
            parse_metadata(written.as_bytes(), "IHE_XDM/SUBSET01/METADATA.XML", &limits);
        assert_eq!(
            Some(&first),
            second.as_ref(),
            "METADATA.XML round trip changed the metadata"
        );
    }
}
