//! Runs the official ANS ISO Schematron rules on CDA documents.
//!
//! The CI-SIS conformance of a CDA document (document code of the model, mandatory sections,
//! codes drawn from the right value set...) is published by the ANS as ISO Schematron files
//! with an XSLT 2 query binding: abstract patterns instantiated with parameters, includes
//! spread over hundreds of files, `let` variables shared between patterns, phases, and value
//! sets read with `document()`. Rewriting those thousands of rules by hand would drift from the
//! official text; evaluating them needs a real XPath 2 processor.
//!
//! So this crate does two things:
//!
//! * [`compile()`] and [`mod@compile`]: our own Schematron → XSLT compiler, in Rust
//!   (includes, abstract patterns, abstract rules and `extends`, `let` at every level, phases,
//!   `ns`, messages with `value-of`/`name`);
//! * [`SchematronEngine`]: runs the compiled stylesheets with Saxon-HE (the Debian package,
//!   driven through a small Java worker that ships inside this crate as source) in long-lived
//!   worker processes, so a validation costs milliseconds instead of a JVM start.
//!
//! Compiled stylesheets are cached on disk under a hash of every input file; the worker keeps
//! them compiled in memory. When Java or Saxon is missing, [`SchematronEngine::start`] returns
//! [`SchematronError::Unavailable`] so callers can say that the schematron checks were not run
//! instead of failing.
//!
//! # Cache layout
//!
//! ```text
//! <cache>/worker/<hash>/RelaisSchematronWorker*.class   the worker, built once per source
//! <cache>/sch/<name>-<digest>.xsl (+ .table)            one per schematron and phase
//! <cache>/packs/<hash>/schematrons   -> <pack>/schematrons
//! <cache>/packs/<hash>/jeuxDeValeurs -> <pack>/value-sets (or <pack>/jeuxDeValeurs)
//! ```
//!
//! The rules find their value sets with `document('../jeuxDeValeurs/X.xml')` relative to the
//! schematron, and Art-Decor rules their vocabularies with `doc('include/voc-….xml')`. Each
//! stylesheet's `xml:base` is therefore the schematron's path inside the pack view
//! (`<cache>/packs/<hash>/schematrons/…`), whose two symbolic links make both resolve whatever
//! the pack calls its value-set folder. The `<digest>` hashes every file the schematron
//! includes, the phase and the compiler version, so a pack update compiles afresh.
//!
//! Results become [`relais_core::Finding`]s with the codes of [`codes`]. Note that the ANS
//! messages quote document values with `<value-of>` (dates, codes): the `assertion` and
//! `message` of a finding may thus carry patient data and must not be written to logs as such.

pub mod codes;
pub mod compile;
mod engine;
mod error;
mod java;
pub mod model;

pub use compile::{CompileOptions, Compiled};
pub use engine::{EngineConfig, EngineOptions, ResultKind, SchematronEngine, SchematronResult};
pub use error::{CompileError, SchematronError};

use std::path::Path;

/// Compile the schematron at `path` to an XSLT 2.0 stylesheet, in `phase` (`None`: the
/// schema's default phase; `Some("#ALL")`: every pattern). Relative URIs of the rules resolve
/// against the schematron's own location (`xml:base`).
pub fn compile(schematron: &Path, phase: Option<&str>) -> Result<String, CompileError> {
    let absolute = std::path::absolute(schematron).unwrap_or_else(|_| schematron.to_path_buf());
    let options = CompileOptions {
        phase: phase.map(str::to_string),
        base_uri: Some(compile::file_uri(&model::normalize(&absolute))),
    };
    compile::compile_file(schematron, &options).map(|c| c.xslt)
}

/// Compile a schematron given as bytes (its includes are refused); for tests and fuzzing.
pub fn compile_bytes(data: &[u8], options: &CompileOptions) -> Result<Compiled, CompileError> {
    let path = Path::new("memory.sch");
    let loaded = model::load_bytes(path, data, &mut model::NoIncludes)?;
    compile::generate(&loaded, path, options)
}

/// Fuzz entry point: parse `data` as a schematron and compile it. Never panics; when the
/// compilation succeeds, the generated stylesheet is checked to be well-formed XML.
pub fn fuzz_compile(data: &[u8]) {
    for phase in [None, Some("#ALL".to_string())] {
        let options = CompileOptions {
            phase,
            base_uri: None,
        };
        if let Ok(compiled) = compile_bytes(data, &options) {
            let parsed = relais_core::xml::parse(&compiled.xslt, &relais_core::Limits::default());
            assert!(
                parsed.is_ok(),
                "generated XSLT is not well-formed: {:?}",
                parsed.err()
            );
        }
    }
}
