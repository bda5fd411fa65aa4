//! Shared set-up of the tests that need Java and Saxon-HE.
#![allow(dead_code)]

use relais_schematron::{EngineConfig, EngineOptions, SchematronEngine};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Persistent cache for the tests (keeps the compiled worker between runs).
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("relais-schematron-cache")
}

pub fn config() -> EngineConfig {
    EngineConfig {
        pack_dir: relais_testsupport::ans_dir(),
        cache_dir: cache_dir(),
        java: None,
        saxon_jar: None,
    }
}

/// Start an engine or fail the test saying what to install.
pub fn start(options: EngineOptions) -> SchematronEngine {
    match SchematronEngine::start_with(config(), options) {
        Ok(e) => e,
        Err(e) => panic!(
            "these tests need Java 17 (java + javac) and Saxon-HE: {e}. \
             Install the Debian packages default-jre-headless, openjdk-17-jdk-headless and libsaxonhe-java."
        ),
    }
}

/// One engine (two workers) shared by the tests of a binary.
pub fn engine() -> &'static SchematronEngine {
    static ENGINE: OnceLock<SchematronEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        start(EngineOptions {
            workers: 2,
            ..EngineOptions::default()
        })
    })
}

pub fn ans_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(relais_testsupport::ans_file(rel)).expect("read ANS file")
}
