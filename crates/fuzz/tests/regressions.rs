//! Replays every input that once crashed a fuzz target: the files of
//! `tests/fuzz-corpus/<target>/crashes/` (written by `fuzz-campaign`) and
//! `tests/fuzz-corpus/<target>/regressions/` (kept by hand once a crash is fixed). None may panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[test]
fn saved_crash_inputs_no_longer_panic() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz-corpus");
    assert!(corpus.is_dir(), "missing corpus root {}", corpus.display());
    let mut replayed = 0;
    let mut failures = Vec::new();
    for target in relais_fuzz::TARGETS {
        for sub in ["crashes", "regressions"] {
            let dir = corpus.join(target.name).join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.ends_with("README.md"))
                .collect();
            files.sort();
            for file in files {
                let input = std::fs::read(&file).expect("read a regression input");
                replayed += 1;
                if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
                    failures.push(format!("{} panics on {}", target.name, file.display()));
                }
            }
        }
    }
    // A folder for a target that does not exist would never be replayed: refuse it.
    for entry in std::fs::read_dir(&corpus)
        .expect("read the corpus root")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            assert!(
                relais_fuzz::TARGETS.iter().any(|t| t.name == name),
                "tests/fuzz-corpus/{name} is not the name of a fuzz target"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{replayed} regression input(s) replayed");
}
