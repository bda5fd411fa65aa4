//! What the suites measured, kept for the Markdown summary of `relais-bench all`, and the
//! description of the machine they ran on.

use std::sync::Mutex;

/// One line of the summary table.
pub struct Row {
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// `Some(true)` met, `Some(false)` not met, `None` no goal or not measured.
    pub met: Option<bool>,
}

static ROWS: Mutex<Vec<Row>> = Mutex::new(Vec::new());

/// Keep a figure for the summary.
pub fn record(
    what: impl Into<String>,
    measured: impl Into<String>,
    goal: impl Into<String>,
    met: Option<bool>,
) {
    ROWS.lock().unwrap_or_else(|e| e.into_inner()).push(Row {
        what: what.into(),
        measured: measured.into(),
        goal: goal.into(),
        met,
    });
}

/// The median of `v` (the upper one for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `p`-th percentile (0..=100, nearest rank) of `v`; NaN when empty.
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `VmHWM` (peak resident memory) of process `pid` in KiB, from /proc.
pub fn vm_hwm_kib(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Cores, CPU model, memory, date and commit of this run.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{cores} cores ({model}), {:.1} GiB RAM; load average at the end {load}; binary built from commit {}; {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        commit(),
        date()
    )
}

/// The commit this binary was built from (short), `+dirty` when the working tree had
/// uncommitted changes then (see build.rs).
pub fn commit() -> String {
    env!("RELAIS_BENCH_COMMIT").to_string()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The Markdown table of everything recorded so far.
pub fn markdown() -> String {
    let rows = ROWS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::from("| measure | measured (median) | goal | met |\n|---|---|---|---|\n");
    for r in rows.iter() {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {met} |\n",
            r.what, r.measured, r.goal
        ));
    }
    out
}
