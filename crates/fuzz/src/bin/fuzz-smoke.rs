//! Time-bounded mutation fuzzing of every Relais parser, for CI.
//!
//! `fuzz-smoke --seconds 20` shares the time among the targets, mutating the seed inputs of
//! `tests/fuzz-corpus/<target>/`. A panic is caught, the input saved under
//! `target/fuzz-smoke-crashes/`, and the run exits 1. Use `--seed` to replay a run.

use clap::Parser;
use relais_fuzz::{Rng, TARGETS, mutate};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Time-bounded mutation fuzzing of every Relais parser")]
struct Args {
    /// Total time budget, shared among the targets.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// PRNG seed (default: from the clock; printed so a run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
    /// Corpus root (default: tests/fuzz-corpus of the workspace).
    #[arg(long)]
    corpus: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus_root = args
        .corpus
        .clone()
        .unwrap_or_else(|| root.join("tests/fuzz-corpus"));
    let crash_dir = root.join("target/fuzz-smoke-crashes");
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|t| args.target.as_deref().is_none_or(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        eprintln!("fuzz-smoke: no target named {:?}", args.target);
        std::process::exit(2);
    }
    // Panics are expected to be caught; keep their messages short.
    std::panic::set_hook(Box::new(|info| eprintln!("fuzz-smoke: panic: {info}")));
    let per_target = Duration::from_secs(args.seconds.max(1)) / targets.len() as u32;
    println!(
        "fuzz-smoke: seed {seed}, {} target(s), {:?} each",
        targets.len(),
        per_target
    );
    let mut failures = 0;
    for (ti, target) in targets.iter().enumerate() {
        let mut seeds = load_corpus(&corpus_root.join(target.name));
        seeds.extend(sample_seeds(&root.join("samples"), target.name));
        if seeds.is_empty() {
            eprintln!(
                "fuzz-smoke: no seed input in {}/{}",
                corpus_root.display(),
                target.name
            );
            std::process::exit(2);
        }
        let mut rng = Rng::new(seed ^ (ti as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let start = Instant::now();
        let mut execs = 0u64;
        // Seeds first, unmutated.
        let mut inputs: Vec<Vec<u8>> = seeds.clone();
        while start.elapsed() < per_target {
            let input = if let Some(i) = inputs.pop() {
                i
            } else {
                let a = &seeds[rng.below(seeds.len())];
                let b = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, a, b, 4 << 20)
            };
            execs += 1;
            if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
                failures += 1;
                let _ = std::fs::create_dir_all(&crash_dir);
                let path = crash_dir.join(format!("{}-{seed}-{execs}", target.name));
                let _ = std::fs::write(&path, &input);
                eprintln!(
                    "fuzz-smoke: target {} panicked; input saved to {}",
                    target.name,
                    path.display()
                );
                break;
            }
        }
        println!(
            "fuzz-smoke: {:<10} {:>8} execs in {:.1}s ({} seeds)",
            target.name,
            execs,
            start.elapsed().as_secs_f64(),
            seeds.len()
        );
    }
    if failures > 0 {
        println!("fuzz-smoke: 0 passed, {failures} failed");
        std::process::exit(1);
    }
    println!("fuzz-smoke: {} passed, 0 failed", targets.len());
}

/// The project's samples that suit a target, by file extension.
fn sample_seeds(samples: &std::path::Path, target: &str) -> Vec<Vec<u8>> {
    let wanted: &[&str] = match target {
        "mail" => &["eml"],
        "zip" => &["zip"],
        "cda" | "xml" => &["xml"],
        "hl7" => &["hl7"],
        "check" => &["eml", "zip", "xml", "hl7", "pdf"],
        _ => &[],
    };
    let mut files = Vec::new();
    let mut stack = vec![samples.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| wanted.contains(&e.to_ascii_lowercase().as_str()))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn load_corpus(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}
