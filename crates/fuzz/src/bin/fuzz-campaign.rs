//! Long mutation-fuzzing campaign over every Relais parser, run by hand (not in CI).
//!
//! `fuzz-campaign --minutes 10` gives each target ten minutes. Seeds come from
//! `tests/fuzz-corpus/<target>/`, the project's `samples/` and the ANS examples
//! (`$RELAIS_ANS_DIR` or `../shared/ans`). Mutants that run cleanly join an in-memory pool, so
//! mutations stack over the run; at the end a few of them (small ones, not yet on disk, and not
//! derived from the ANS material, which stays outside the repository) are kept in the corpus
//! folder so the next campaign starts further. There is no coverage feedback (that
//! needs an instrumented build: see `fuzz/` and cargo-fuzz), so the pool is a random sample.
//!
//! A panic saves the input under `tests/fuzz-corpus/<target>/crashes/` (one input per distinct
//! panic location) and the run goes on; the exit status is 1 when anything crashed. Those files
//! are replayed by `cargo test -p relais-fuzz --test regressions`. An input slower than
//! `--slow-ms` is saved under `target/fuzz-campaign/slow/` and reported.

use clap::Parser;
use relais_fuzz::{Rng, TARGETS, Target, mutate};
use std::collections::{BTreeMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Long mutation-fuzzing campaign over every Relais parser")]
struct Args {
    /// Time given to each target, in minutes (decimals allowed: 0.5 = 30 s).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Only these targets (comma-separated names; default: all).
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// PRNG seed (default: from the clock; printed so a run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// Corpus root (default: tests/fuzz-corpus of the workspace).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// ANS material (default: $RELAIS_ANS_DIR, else ../shared/ans next to the workspace).
    #[arg(long)]
    ans: Option<PathBuf>,
    /// New corpus files kept per target at the end of its run.
    #[arg(long, default_value_t = 8)]
    keep: usize,
    /// An input taking longer than this is reported and saved as slow.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
}

/// Largest mutant: bigger inputs only slow the campaign down.
const MAX_INPUT: usize = 1 << 20;
/// Largest in-memory pool of mutants per target.
const POOL: usize = 2000;
/// Largest mutant written back to the corpus.
const MAX_KEPT: usize = 64 << 10;

/// Where the last panic happened and what it said (set by the panic hook).
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

fn main() {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus_root = args
        .corpus
        .clone()
        .unwrap_or_else(|| root.join("tests/fuzz-corpus"));
    let ans = args
        .ans
        .clone()
        .or_else(|| std::env::var_os("RELAIS_ANS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("../shared/ans"));
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let targets: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| args.target.is_empty() || args.target.iter().any(|n| n == t.name))
        .collect();
    if targets.is_empty() || targets.len() < args.target.len() {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "fuzz-campaign: unknown target in {:?}; known: {}",
            args.target,
            names.join(", ")
        );
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, msg));
    }));
    let per_target = Duration::from_secs_f64(args.minutes.max(0.01) * 60.0);
    println!(
        "fuzz-campaign: seed {seed}, {} target(s), {per_target:?} each (replay: --seed {seed})",
        targets.len()
    );
    let slow_dir = root.join("target/fuzz-campaign/slow");
    let mut total_crashes = 0;
    for (ti, target) in targets.iter().enumerate() {
        let dir = corpus_root.join(target.name);
        // (input, derived from the ANS material)
        let mut seeds: Vec<(Vec<u8>, bool)> =
            read_files(&dir).into_iter().map(|s| (s, false)).collect();
        let on_disk: HashSet<u64> = seeds.iter().map(|(s, _)| fnv(s)).collect();
        seeds.extend(seeds_for(target.name, &root.join("samples"), &ans, &root));
        seeds.retain(|(s, _)| s.len() <= MAX_INPUT);
        if seeds.is_empty() {
            eprintln!(
                "fuzz-campaign: no seed input for {} (looked in {}, samples/ and {})",
                target.name,
                dir.display(),
                ans.display()
            );
            std::process::exit(2);
        }
        let n_seeds = seeds.len();
        let mut rng = Rng::new(seed ^ (ti as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut pool = seeds.clone();
        let mut todo = seeds.clone();
        let mut crash_sites: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut slow = 0u64;
        let mut execs = 0u64;
        let mut slowest = Duration::ZERO;
        let start = Instant::now();
        while start.elapsed() < per_target {
            let (input, from_ans) = todo.pop().unwrap_or_else(|| {
                // Favour the pool (stacked mutations) but keep going back to the seeds.
                let a = if rng.below(4) == 0 {
                    &seeds[rng.below(seeds.len())]
                } else {
                    &pool[rng.below(pool.len())]
                };
                let b = &pool[rng.below(pool.len())];
                (mutate(&mut rng, &a.0, &b.0, MAX_INPUT), a.1 || b.1)
            });
            execs += 1;
            let t0 = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
            let took = t0.elapsed();
            slowest = slowest.max(took);
            if outcome.is_err() {
                let (at, msg) = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_default();
                if crash_sites.contains_key(&at) {
                    continue;
                }
                let crash_dir = dir.join("crashes");
                let _ = std::fs::create_dir_all(&crash_dir);
                let path = crash_dir.join(format!("{:016x}", fnv(&input)));
                if let Err(e) = std::fs::write(&path, &input) {
                    eprintln!("fuzz-campaign: cannot save {}: {e}", path.display());
                }
                eprintln!(
                    "fuzz-campaign: CRASH in {} at {at}: {msg}\n  input ({} bytes) saved to {}",
                    target.name,
                    input.len(),
                    path.display()
                );
                crash_sites.insert(at, path);
                continue;
            }
            if took > Duration::from_millis(args.slow_ms) {
                slow += 1;
                let _ = std::fs::create_dir_all(&slow_dir);
                let path = slow_dir.join(format!("{}-{:016x}", target.name, fnv(&input)));
                let _ = std::fs::write(&path, &input);
                eprintln!(
                    "fuzz-campaign: SLOW {} took {took:?} on {} bytes; saved to {}",
                    target.name,
                    input.len(),
                    path.display()
                );
            }
            if pool.len() < POOL {
                pool.push((input, from_ans));
            } else if rng.below(8) == 0 {
                let i = rng.below(POOL);
                pool[i] = (input, from_ans);
            }
        }
        let kept = keep_mutants(&dir, &pool[n_seeds.min(pool.len())..], &on_disk, args.keep);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "fuzz-campaign: {:<10} {:>9} execs in {:>6.0}s ({:>7.0}/s), {n_seeds} seeds, \
             {kept} new corpus files, {} crash site(s), {slow} slow, slowest {slowest:?}",
            target.name,
            execs,
            secs,
            execs as f64 / secs,
            crash_sites.len(),
        );
        total_crashes += crash_sites.len();
    }
    if total_crashes > 0 {
        println!(
            "fuzz-campaign: {total_crashes} crash site(s); fix them, then \
             `cargo test -p relais-fuzz --test regressions` replays the saved inputs"
        );
        std::process::exit(1);
    }
    println!("fuzz-campaign: no crash");
}

/// Writes up to `keep` small mutants that are not on disk yet into the corpus folder.
fn keep_mutants(
    dir: &Path,
    mutants: &[(Vec<u8>, bool)],
    on_disk: &HashSet<u64>,
    keep: usize,
) -> usize {
    let mut kept = 0;
    let mut seen = on_disk.clone();
    for (m, from_ans) in mutants.iter().rev() {
        if kept >= keep {
            break;
        }
        let h = fnv(m);
        if *from_ans || m.is_empty() || m.len() > MAX_KEPT || !seen.insert(h) {
            continue;
        }
        let _ = std::fs::create_dir_all(dir);
        if std::fs::write(dir.join(format!("grown-{h:016x}")), m).is_ok() {
            kept += 1;
        }
    }
    kept
}

/// FNV-1a, to name saved inputs after their content.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Seeds of a target beyond its corpus folder: samples and example configuration (`false`),
/// ANS examples (`true`).
fn seeds_for(target: &str, samples: &Path, ans: &Path, root: &Path) -> Vec<(Vec<u8>, bool)> {
    let project = |v: Vec<Vec<u8>>| v.into_iter().map(|s| (s, false)).collect::<Vec<_>>();
    let from_ans = |v: Vec<Vec<u8>>| v.into_iter().map(|s| (s, true)).collect::<Vec<_>>();
    let by_ext = |dir: &Path, exts: &[&str], limit: usize| -> Vec<Vec<u8>> {
        let mut files = walk(dir);
        files.retain(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
                && std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_INPUT as u64)
        });
        files.sort();
        files.truncate(limit);
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    };
    match target {
        "mail" => project(by_ext(samples, &["eml"], usize::MAX)),
        "zip" => project(by_ext(samples, &["zip"], usize::MAX)),
        // The ANS material has no METADATA.XML of its own: the corpus folder holds the seeds.
        "metadata" => Vec::new(),
        "cda" | "xml" => {
            let mut s = project(by_ext(samples, &["xml"], usize::MAX));
            s.extend(from_ans(by_ext(&ans.join("cda-examples"), &["xml"], 60)));
            s
        }
        "hl7" => {
            let mut s = project(by_ext(samples, &["hl7"], usize::MAX));
            s.extend(from_ans(by_ext(
                &ans.join("hl7v2-examples"),
                &["hl7", "er7"],
                50,
            )));
            s
        }
        "mllp" => {
            // [frame limit / 8, chunk size] then framed HL7 messages, back to back.
            let mut s = Vec::new();
            for (i, msg) in by_ext(samples, &["hl7"], usize::MAX).iter().enumerate() {
                let mut framed = vec![255, [1, 7, 64, 255][i % 4]];
                for _ in 0..2 {
                    framed.push(0x0B);
                    framed.extend_from_slice(msg);
                    framed.extend_from_slice(b"\x1c\r");
                }
                s.push((framed, false));
            }
            s
        }
        "schematron" => from_ans(by_ext(&ans.join("schematrons"), &["sch"], 20)),
        "check" => project(by_ext(
            samples,
            &["eml", "zip", "xml", "hl7", "pdf"],
            usize::MAX,
        )),
        "config" => {
            let mut s = project(by_ext(&root.join("config"), &["toml"], usize::MAX));
            s.extend(project(by_ext(
                &samples.join("outbound"),
                &["toml"],
                usize::MAX,
            )));
            s
        }
        _ => Vec::new(),
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// The files directly in `dir` (not its `crashes/` or `regressions/` sub-folders).
fn read_files(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file() && !p.ends_with("README.md"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}
