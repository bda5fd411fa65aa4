//! Outbound documents: what a DPI drops (a PDF and a metadata file) becomes a CI-SIS CDA R2
//! document, its IHE XDM package and the MSSanté mail that carries them.
//!
//! By law (CSP R1112-1-2) the discharge letter (lettre de liaison à la sortie, LDL-SES) reaches
//! the patient's GP the day of discharge by secure messaging, and the receiving hospital
//! integrates it automatically only if it is exactly what the CI-SIS says. This crate is the
//! producing side of what `relais check` verifies on the receiving side:
//!
//! 1. [`Intake`]: the metadata (patient with INS and identity traits, author RPPS, organisation
//!    FINESS, stay, document type, recipients; optionally the structured content of a level 3
//!    discharge letter), read from JSON or TOML and [validated](Intake::validate) with a list of
//!    precise problems that never quote patient data;
//! 2. [`build_cda`]: the CDA R2 document with the Structuration minimale header: level 1 with
//!    the PDF as `nonXMLBody`, or, for a discharge letter with structured content, level 3 of
//!    the LDL-SES 2022.01 model with its mandatory sections (and the PDF in the section
//!    FR-Document-PDF-copie);
//! 3. [`build_package`]: the IHE XDM ZIP (README.TXT, INDEX.HTM, METADATA.XML with the
//!    CDA-header → XDS metadata mapping of the CI-SIS, hash and size) via `relais-xdm`;
//! 4. [`build_mail`]: the MSSanté mail (subject `XDM/1.0/DDM+…`, `X-MSS-*` headers,
//!    `Disposition-Notification-To`, `IHE_XDM.ZIP` and the PDF named by the CI-SIS rule).
//!
//! [`compose`] does the four steps. Everything is deterministic given the [`BuildContext`]
//! (its `now` and its `seed`, from which every identifier derives), so that a retry after a
//! crash rebuilds the same bytes and tests can compare them. The tests of this crate prove that
//! every document built passes the project's own checks, the CDA XSD and the ANS schematrons
//! (Structuration minimale and the LDL-SES model) with no failed assertion.
//!
//! Sending, folder watching and Annuaire look-ups are not here: the engine resolves recipients
//! given by RPPS into addresses before [`build_mail`], and hands [`BuiltMail`] to the SMTP
//! client with the DSN request it says.

mod cda;
pub mod codes;
pub mod intake;
mod ldl_ses;
mod mail;
mod package;
pub mod timestamp;
mod xml;

pub use cda::{BuiltCda, build_cda};
pub use intake::{
    Address, Code, DocumentInfo, Encounter, InsId, Intake, IntakeError, IntakePolicy, LdlSes,
    LocalId, MailText, Medication, Organization, Patient, Problem, Professional, Recipient,
};
pub use mail::{BuiltMail, MailOptions, build_mail, pdf_file_name, subject};
pub use package::build_package;
pub use relais_cda::Level;
pub use relais_xdm::{BuiltPackage, ProductInfo};
pub use timestamp::{Timestamp, TimestampError};

use std::sync::OnceLock;

/// What a build needs besides the intake: who builds, under which identifiers, when, and the
/// seed of every generated identifier. One per letter; the engine takes `seed` from its journal
/// (e.g. the intake's journal id) so that rebuilding after a crash gives the same document,
/// package and mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The sending product (README.TXT of the package).
    pub product: ProductInfo,
    /// The OID under which the organisation numbers its documents: root of the CDA `id` and
    /// `setId` (their extensions are the DPI's numbers, or derived from `seed`).
    pub document_root_oid: String,
    /// The OID of this sending system: the XDS submission set `sourceId` (the submission set
    /// `uniqueId` is a `2.25` OID derived from `seed`).
    pub source_oid: String,
    /// The time of the build: the document's creation time when the intake gives none, the
    /// submission time, the mail's `Date`. Must have a time of day.
    pub now: Timestamp,
    /// The seed of every generated identifier (document ids, section and entry ids, XDS
    /// uniqueId and entryUUIDs, Message-ID, MIME boundaries).
    pub seed: String,
    /// Site rules applied when validating the intake.
    pub policy: IntakePolicy,
    /// Carry the PDF inside a level 3 document too (section FR-Document-PDF-copie), so that the
    /// CDA alone holds the signed letter. On by default.
    pub pdf_copy_in_level3: bool,
}

impl BuildContext {
    /// A context with the default policy and the PDF copy in level 3 documents.
    pub fn new(
        product: ProductInfo,
        document_root_oid: impl Into<String>,
        source_oid: impl Into<String>,
        now: Timestamp,
        seed: impl Into<String>,
    ) -> BuildContext {
        BuildContext {
            product,
            document_root_oid: document_root_oid.into(),
            source_oid: source_oid.into(),
            now,
            seed: seed.into(),
            policy: IntakePolicy::default(),
            pdf_copy_in_level3: true,
        }
    }

    fn check(&self) -> Result<(), BuildError> {
        let bad = |field: &'static str, why: &'static str| Err(BuildError::Context { field, why });
        if !intake::is_oid(&self.document_root_oid) {
            return bad("document_root_oid", "must be an OID");
        }
        if !intake::is_oid(&self.source_oid) {
            return bad("source_oid", "must be an OID");
        }
        if self.now.is_date_only() {
            return bad("now", "must have a time of day and a UTC offset");
        }
        if self.seed.trim().is_empty() {
            return bad(
                "seed",
                "must not be empty (it makes every generated identifier)",
            );
        }
        if self.product.name.trim().is_empty() {
            return bad("product.name", "must not be empty");
        }
        Ok(())
    }

    /// A UUID (upper case, no `urn:uuid:`) for the CDA element `purpose`, from the seed.
    pub(crate) fn uuid(&self, purpose: &str) -> String {
        relais_xdm::name_based_uuid(&format!("relais-compose|{}|{purpose}", self.seed))
            .trim_start_matches("urn:uuid:")
            .to_ascii_uppercase()
    }

    /// A short token (16 hex digits) for `purpose`, from the seed.
    pub(crate) fn token(&self, purpose: &str) -> String {
        self.uuid(purpose).replace('-', "")[..16].to_string()
    }
}

/// Why a document, package or mail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The intake has problems (each with its code and field).
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// The bytes given as the PDF are not a PDF.
    #[error(
        "the document file is not a PDF (it does not start with %PDF-): the DPI must drop the \
         letter as PDF"
    )]
    NotPdf,
    /// The build context is wrong (a configuration error).
    #[error("build context: {field} {why}")]
    Context {
        /// The field of [`BuildContext`] or [`MailOptions`].
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A recipient has no MSSanté address yet.
    #[error(
        "recipients[{index}] has no MSSanté address: resolve its RPPS through the Annuaire \
         (set recipients[{index}].mssante) before building the mail"
    )]
    UnresolvedRecipient {
        /// Its position in `Intake::recipients`.
        index: usize,
    },
    /// What was built does not pass the builder's own check (a bug of this crate: report it).
    #[error("the built {what} does not pass its own check: {why}")]
    SelfCheck {
        /// `CDA`, `XDM package`, `mail`.
        what: &'static str,
        /// The finding codes (no patient data).
        why: String,
    },
    /// The XDM package could not be written.
    #[error(transparent)]
    Xdm(#[from] relais_xdm::BuildError),
    /// Writing XML or MIME into memory failed (should not happen).
    #[error("writing the {what} failed: {source}")]
    Io {
        /// What was being written.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything built for one letter.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The CDA document.
    pub cda: BuiltCda,
    /// The XDM package.
    pub package: BuiltPackage,
    /// The mail.
    pub mail: BuiltMail,
}

/// Validate the intake, then build the CDA, the XDM package and the mail.
pub fn compose(
    intake: &Intake,
    pdf: &[u8],
    ctx: &BuildContext,
    mail: &MailOptions,
) -> Result<Composed, BuildError> {
    let cda = build_cda(intake, pdf, ctx)?;
    let package = build_package(intake, &cda.xml, ctx)?;
    let mail = build_mail(intake, &package.zip, pdf, ctx, mail)?;
    Ok(Composed { cda, package, mail })
}

/// The NOS tables (type → classCode, model → formatCode) embedded in `relais-check`.
pub(crate) fn code_tables() -> &'static relais_check::CodeTables {
    static T: OnceLock<relais_check::CodeTables> = OnceLock::new();
    T.get_or_init(relais_check::CodeTables::embedded)
}

/// Checks shared by the builders: a valid context and intake, and a PDF.
pub(crate) fn preflight(intake: &Intake, pdf: &[u8], ctx: &BuildContext) -> Result<(), BuildError> {
    ctx.check()?;
    intake.validate_with(&ctx.policy)?;
    if !pdf.starts_with(b"%PDF-") {
        return Err(BuildError::NotPdf);
    }
    Ok(())
}
