//! Validate a document: `cargo run -p relais-schematron --example validate -- PACK_DIR SCHEMATRON DOCUMENT [PHASE]`.
//! The schematron path may be relative to PACK_DIR/schematrons. Prints one finding per line.
//! `RELAIS_SCH_REPEAT=N` validates N more times and prints the mean time of those runs;
//! `RELAIS_SCH_JVM_ARGS="-Xmx1g ..."` passes options to the JVM.

use relais_schematron::{EngineConfig, EngineOptions, SchematronEngine};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: validate PACK_DIR SCHEMATRON DOCUMENT [PHASE]");
        std::process::exit(2);
    }
    let cache = std::env::temp_dir().join("relais-schematron-example-cache");
    let jvm_args = std::env::var("RELAIS_SCH_JVM_ARGS")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_else(|_| EngineOptions::default().jvm_args);
    let started = std::time::Instant::now();
    let engine = match SchematronEngine::start_with(
        EngineConfig {
            pack_dir: PathBuf::from(&args[0]),
            cache_dir: cache,
            java: None,
            saxon_jar: None,
        },
        EngineOptions {
            jvm_args,
            ..EngineOptions::default()
        },
    ) {
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
    eprintln!("engine started in {:?}", started.elapsed());
    let sch = std::path::Path::new(&args[1]);
    let phase = args.get(3).map(String::as_str);
    let t = std::time::Instant::now();
    match engine.validate_phase(sch, phase, &doc) {
        Ok(findings) => {
            for f in &findings {
                println!("{} {} {} | {}", f.severity, f.code, f.location, f.message);
            }
            eprintln!(
                "{} finding(s) in {:?} (first validation)",
                findings.len(),
                t.elapsed()
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    let repeat: u32 = std::env::var("RELAIS_SCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if repeat > 0 {
        let t = std::time::Instant::now();
        for _ in 0..repeat {
            if let Err(e) = engine.validate_phase(sch, phase, &doc) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        eprintln!("{repeat} more validations: {:?} each", t.elapsed() / repeat);
    }
}
