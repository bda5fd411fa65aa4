//! Validate a document: `cargo run -p relais-schematron --example validate -- PACK_DIR SCHEMATRON DOCUMENT [PHASE]`.
//! The schematron path may be relative to PACK_DIR/schematrons. Prints one finding per line.

use relais_schematron::{EngineConfig, SchematronEngine};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: validate PACK_DIR SCHEMATRON DOCUMENT [PHASE]");
        std::process::exit(2);
    }
    let cache = std::env::temp_dir().join("relais-schematron-example-cache");
    let engine = match SchematronEngine::start(EngineConfig {
        pack_dir: PathBuf::from(&args[0]),
        cache_dir: cache,
        java: None,
        saxon_jar: None,
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("schematron checks were not run: {e}");
            std::process::exit(1);
        }
    };
    let doc = match std::fs::read(&args[2]) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args[2]);
            std::process::exit(1);
        }
    };
    let t = std::time::Instant::now();
    match engine.validate_phase(
        std::path::Path::new(&args[1]),
        args.get(3).map(String::as_str),
        &doc,
    ) {
        Ok(findings) => {
            for f in &findings {
                println!("{} {} {} | {}", f.severity, f.code, f.location, f.message);
            }
            eprintln!("{} finding(s) in {:?}", findings.len(), t.elapsed());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
