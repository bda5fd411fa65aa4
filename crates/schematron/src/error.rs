//! Errors of the compiler and of the engine.

use relais_core::xml::XmlError;
use std::path::PathBuf;

/// Why a Schematron schema could not be compiled to XSLT.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot read schematron file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("schematron file {path} is not usable XML: {source}")]
    Xml {
        path: PathBuf,
        #[source]
        source: XmlError,
    },
    #[error(
        "{path} is not an ISO Schematron schema: its root element is <{found}>, expected <schema> in namespace http://purl.oclc.org/dsdl/schematron"
    )]
    NotSchematron { path: PathBuf, found: String },
    #[error("include cycle: {path} includes itself (directly or through other files)")]
    IncludeCycle { path: PathBuf },
    #[error("includes nest deeper than {limit} levels at {path}")]
    IncludeTooDeep { path: PathBuf, limit: usize },
    #[error(
        "include of {href} is not available here (schemas given as bytes cannot include files; compile from a file path instead)"
    )]
    IncludeUnavailable { href: String },
    #[error("{path} has no element with id \"{id}\" (named by an include fragment)")]
    FragmentNotFound { path: PathBuf, id: String },
    #[error("schema too large: {what}")]
    TooLarge { what: String },
    #[error("<{element}> without its required @{attribute} attribute (in {file})")]
    MissingAttribute {
        element: String,
        attribute: String,
        file: PathBuf,
    },
    #[error("phase \"{phase}\" is not defined by the schema (available: {available})")]
    UnknownPhase { phase: String, available: String },
    #[error(
        "pattern \"{pattern}\" is an instance of abstract pattern \"{is_a}\", which the schema does not define (check its includes)"
    )]
    UnknownAbstractPattern { pattern: String, is_a: String },
    #[error("<extends rule=\"{rule}\"> names no abstract rule of the schema")]
    UnknownAbstractRule { rule: String },
    #[error("abstract rule \"{rule}\" extends itself")]
    ExtendsCycle { rule: String },
    #[error("invalid {what} name \"{name}\": it must be an XML name (QName)")]
    InvalidName { what: &'static str, name: String },
    #[error(
        "namespace prefix \"{prefix}\" is reserved by the compiler (or bound to another namespace); rename it in the schema's <ns> declarations"
    )]
    ReservedPrefix { prefix: String },
}

/// Why a schematron validation could not be carried out.
///
/// None of these is a verdict on the document (those are [`relais_core::Finding`]s), except
/// [`SchematronError::Document`], which says the document was refused before the rules ran.
#[derive(Debug, thiserror::Error)]
pub enum SchematronError {
    /// Java, javac or Saxon-HE is missing or does not start: callers report "schematron checks
    /// were not run: `<reason>`" instead of failing the whole validation.
    #[error("schematron engine unavailable: {reason}")]
    Unavailable { reason: String },
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The document was refused before validation (not XML, DTD, too large).
    #[error("document refused before schematron validation: {0}")]
    Document(XmlError),
    /// Saxon could not compile the XSLT generated from the schematron.
    #[error("Saxon could not compile the XSLT generated from {schematron}: {message}")]
    Stylesheet { schematron: String, message: String },
    /// A rule raised a dynamic XPath error while running on the document.
    #[error("schematron {schematron} failed while running on the document: {message}")]
    Transform { schematron: String, message: String },
    /// The worker took longer than the configured timeout; it was stopped and will be restarted.
    #[error(
        "schematron validation took more than {seconds} s; the worker was stopped and will be restarted"
    )]
    Timeout { seconds: u64 },
    /// The Java worker stopped while handling the request; the next call starts a new one.
    #[error(
        "the Saxon worker process stopped unexpectedly ({reason}); the next validation starts a new one"
    )]
    WorkerDied { reason: String },
    /// The worker answered something the protocol does not allow (a bug, please report it).
    #[error("unexpected answer from the Saxon worker: {0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SchematronError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SchematronError::Io {
            context: context.into(),
            source,
        }
    }
}
