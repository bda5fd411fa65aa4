//! `relais-bench`: benchmarks that print figures, run on this machine in one command.
//!
//! `cargo run --release -p relais-bench -- check` measures the document core:
//! - `relais check` of a typical MSSanté mail (IHE XDM with the ~76 kB ANS LDL-SES example and a
//!   PDF copy), in documents per second, without and with the ANS schematrons;
//! - XSD validation of that CDA per document, next to `xmllint --schema` on the same file;
//! - peak memory while checking a mail with a 40 MB attachment (goal: at most 3x its size).
//!
//! Figures are medians of several rounds. The ANS material comes from `../shared/ans` or
//! `RELAIS_ANS_DIR`; Java and Saxon-HE are needed for the schematron figure.

mod inbound;
mod latency;
mod mllp;
mod prune;
mod reference;
mod summary;

use clap::{Parser, Subcommand};
use relais_check::{CheckOptions, Checker, CodeTables, SchematronMode};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Relais benchmarks (print figures)")]
struct Args {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// The document core: relais check, XSD vs xmllint, peak memory with a 40 MB attachment.
    Check {
        /// Rounds per measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Mails checked per round.
        #[arg(long, default_value_t = 200)]
        mails: usize,
    },
    /// The inbound pipeline from a real Dovecot mailbox to the output folder, next to a plain
    /// IMAP download of the same mailbox (needs dovecot: `bash tests/setup.sh`, as root).
    Inbound {
        /// Mails in the mailbox (each a distinct document, ~50 kB with its XDM and PDF).
        #[arg(long, default_value_t = 2000)]
        mails: usize,
    },
    /// Parse + validate per mail, relais against the Python reference pipeline
    /// (tests/reference/reference_pipeline.py), without and with the ANS schematrons.
    Reference {
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 200)]
        mails: usize,
    },
    /// MLLP round-trips per second (MDM^T02 + ACK) of relais's DPI client on loopback.
    Mllp {
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Messages per round.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
    },
    /// Arrival-to-filed latency (p50, p99) with IMAP IDLE, mails arriving at a steady rate
    /// into a real Dovecot (needs dovecot: `bash tests/setup.sh`, as root).
    Latency {
        /// Mails per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// How long mails keep arriving.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Every suite, then a Markdown summary table with the goals (for BENCHMARKS.md).
    All {
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Mails in the inbound suite's mailbox.
        #[arg(long, default_value_t = 2000)]
        inbound_mails: usize,
    },
    /// Retention: prune a SQLite journal of 1,000,000 events (100,000 old filed messages) while
    /// intake runs, next to intake alone.
    Prune {
        /// Old filed messages in the journal.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Events per old message.
        #[arg(long, default_value_t = 10)]
        events: u32,
        /// Rows per pruning transaction.
        #[arg(long, default_value_t = 500)]
        chunk_rows: u32,
        /// Seconds of intake alone.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent intake tasks.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Pause after each pruning transaction, as a multiple of its duration.
        #[arg(long, default_value_t = 3.0)]
        pause_ratio: f32,
    },
    /// Internal: check one file and print the peak resident memory (VmHWM) in KiB.
    #[command(hide = true)]
    MemProbe { file: PathBuf },
    /// Internal: run engine cycles on a configuration until `expect` documents are filed;
    /// print filed, seconds, VmHWM KiB and cycles.
    #[command(hide = true)]
    InboundEngine { config: PathBuf, expect: usize },
}

fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match args.suite {
        Suite::Check { rounds, mails } => check_suite(rounds, mails),
        Suite::MemProbe { file } => mem_probe(&file),
        Suite::Prune {
            messages,
            events,
            chunk_rows,
            seconds,
            workers,
            pause_ratio,
        } => prune::suite(messages, events, chunk_rows, seconds, workers, pause_ratio),
        Suite::Inbound { mails } => inbound::suite(mails),
        Suite::Reference { rounds, mails } => reference::suite(rounds, mails),
        Suite::Mllp { rounds, messages } => mllp::suite(rounds, messages),
        Suite::Latency { rate, seconds } => latency::suite(rate, seconds),
        Suite::InboundEngine { config, expect } => inbound::engine_once(&config, expect),
        Suite::All {
            rounds,
            inbound_mails,
        } => {
            reference::suite(rounds, 200);
            mllp::suite(rounds, 2000);
            latency::suite(5.0, 60);
            check_suite(rounds, 200);
            inbound::suite(inbound_mails);
            println!("\n## Summary\n\nMachine: {}\n", summary::machine());
            print!("{}", summary::markdown());
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A PDF-shaped file of about `size` bytes (a header, one stream of filler, a trailer).
fn pdf_of_size(size: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 0 >>\nstream\n".to_vec();
    let mut x: u32 = 0x1234_5678;
    while pdf.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pdf.push((x & 0xff) as u8);
    }
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< >>\n%%EOF\n");
    pdf
}

/// A typical MSSanté mail: XDM with `cda`, plus a PDF copy of `pdf_size` bytes.
fn typical_mail(cda: &[u8], pdf_size: usize) -> Vec<u8> {
    numbered_mail(cda, pdf_size, 1)
}

/// [`typical_mail`] with Message-ID number `n`.
fn numbered_mail(cda: &[u8], pdf_size: usize, n: usize) -> Vec<u8> {
    let doc = relais_cda::read(cda, &Default::default()).expect("readable CDA");
    let entry = relais_check::metadata::document_entry_for(&doc, &CodeTables::embedded());
    let ss = relais_xdm::SubmissionSet {
        unique_id: "1.2.250.1.999.1.1.1".into(),
        source_id: "1.2.250.1.999.1".into(),
        submission_time: Some("20240101120000".into()),
        patient_id: entry.patient_id.clone(),
        content_type_code: Some(relais_xdm::Coded::new(
            "04",
            "1.2.250.1.213.1.1.4.12",
            "Hospitalisation",
        )),
        authors: entry.authors.clone(),
        ..Default::default()
    };
    let product = relais_xdm::ProductInfo {
        name: "relais-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        vendor: "Relais".into(),
        contact: None,
    };
    let zip = relais_xdm::PackageBuilder::new(product, ss)
        .document(entry, cda.to_vec())
        .build()
        .expect("package")
        .zip;
    mail_builder::MessageBuilder::new()
        .from(("CH Demo", "expediteur@ch-demo.mssante.fr"))
        .to(("Dr Demo", "destinataire@medecin.mssante.fr"))
        .subject("XDM/1.0/DDM+Lettre de liaison BENCH PATIENT")
        .message_id(format!("bench-{n:06}@ch-demo.mssante.fr"))
        .header(
            "X-MSS-CODECDA",
            mail_builder::headers::raw::Raw::new("11490-0"),
        )
        .text_body("Lettre de liaison.")
        .attachment("application/zip", "IHE_XDM.ZIP", zip)
        .attachment(
            "application/pdf",
            "20240101_LDL_BENCH_PATIENT.pdf",
            pdf_of_size(pdf_size),
        )
        .write_to_vec()
        .expect("mail")
}

fn rate(checker: &Checker, mail: &[u8], mails: usize, rounds: usize) -> f64 {
    let r = checker.check_bytes("bench.eml", mail);
    assert!(
        r.valid,
        "benchmark mail must be valid: {:?}",
        r.all_findings().collect::<Vec<_>>()
    );
    assert_eq!(r.documents.iter().filter(|d| d.format == "cda").count(), 1);
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..mails {
                    std::hint::black_box(checker.check_bytes("bench.eml", mail));
                }
                mails as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn check_suite(rounds: usize, mails: usize) {
    let ans = relais_testsupport::ans_dir();
    let cda_path = ans.join("cda-examples/LDL-SES_2022.01.xml");
    let cda = std::fs::read(&cda_path).expect("LDL-SES example");
    let mail = typical_mail(&cda, 150 * 1024);
    println!("# relais-bench check");
    println!(
        "machine: {} cores; rounds {rounds}; median reported",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "typical mail: {} bytes (XDM with LDL-SES {} bytes + PDF 150 KiB)",
        mail.len(),
        cda.len()
    );

    let no_sch = Checker::new(CheckOptions {
        pack: Some(ans.clone()),
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let r = rate(&no_sch, &mail, mails, rounds);
    println!(
        "relais check, XSD + header + XDM, no schematron: {r:.1} documents/s ({:.2} ms/mail)",
        1000.0 / r
    );

    let cache = tempfile::tempdir().expect("cache dir");
    match Checker::new(CheckOptions {
        pack: Some(ans.clone()),
        schematron: SchematronMode::Require,
        cache_dir: Some(cache.path().to_path_buf()),
        ..CheckOptions::default()
    }) {
        Ok(full) => {
            let t = Instant::now();
            let _ = full.check_bytes("bench.eml", &mail);
            println!(
                "relais check with schematrons, first mail (compiles LDL-SES + Structuration minimale): {:.2} s",
                t.elapsed().as_secs_f64()
            );
            let n = (mails / 4).max(10);
            let r = rate(&full, &mail, n, rounds);
            println!(
                "relais check, with ANS schematrons (LDL-SES + Structuration minimale): {r:.1} documents/s ({:.1} ms/mail)",
                1000.0 / r
            );
        }
        Err(e) => println!("relais check with schematrons: NOT MEASURED ({e})"),
    }

    // XSD per document, ours vs xmllint (same schema, same file).
    let xsd = relais_cda::XsdValidator::load(ans.join("xsd/CDA_extended.xsd")).expect("XSD");
    let n = mails * 2;
    let ours = median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    assert!(std::hint::black_box(xsd.validate(&cda)).is_empty());
                }
                t.elapsed().as_secs_f64() * 1000.0 / n as f64
            })
            .collect(),
    );
    println!("XSD validation, relais (libxml2, schema loaded once): {ours:.3} ms/document");
    match xmllint_per_doc(&ans.join("xsd/CDA_extended.xsd"), &cda_path, rounds) {
        Some((single, batch)) => {
            println!(
                "XSD validation, xmllint --schema, one process per document: {single:.1} ms/document"
            );
            println!(
                "XSD validation, xmllint --schema, 100 documents per process: {batch:.3} ms/document"
            );
        }
        None => println!("xmllint: NOT MEASURED (xmllint not found; install libxml2-utils)"),
    }

    // Peak memory with a 40 MB attachment, in a fresh process.
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.eml");
    let attachment = 40 * 1000 * 1000;
    std::fs::write(&big, typical_mail(&cda, attachment)).expect("write big mail");
    let small = dir.path().join("small.eml");
    std::fs::write(&small, &mail).expect("write small mail");
    let exe = std::env::current_exe().expect("own path");
    let probe = |file: &Path| -> Result<u64, String> {
        let out = Command::new(&exe)
            .arg("mem-probe")
            .arg(file)
            .env("RELAIS_PACK_DIR", &ans)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse::<u64>()
            .map_err(|_| format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
    };
    match (probe(&small), probe(&big)) {
        (Ok(base), Ok(kib)) => {
            let mb = |k: u64| k as f64 * 1024.0 / 1e6;
            println!(
                "peak memory checking a mail with a 40 MB attachment ({} bytes on disk): {:.1} MB = {:.2}x the attachment (goal <= 3x); \
                 the same process on the typical mail peaks at {:.1} MB (binary, XSD schema), so the big mail adds {:.1} MB = {:.2}x",
                std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0),
                mb(kib),
                kib as f64 * 1024.0 / attachment as f64,
                mb(base),
                mb(kib.saturating_sub(base)),
                kib.saturating_sub(base) as f64 * 1024.0 / attachment as f64
            );
            let ratio = kib as f64 * 1024.0 / attachment as f64;
            summary::record(
                "peak memory (VmHWM) checking a mail with a 40 MB attachment",
                format!("**{:.1} MB = {ratio:.2}x** the attachment", mb(kib)),
                "<= 3x the attachment",
                Some(ratio <= 3.0),
            );
        }
        (a, b) => println!("peak memory: NOT MEASURED ({a:?} {b:?})"),
    }
}

/// (ms per document with one xmllint process per document, ms per document in batches of 100).
fn xmllint_per_doc(xsd: &Path, doc: &Path, rounds: usize) -> Option<(f64, f64)> {
    Command::new("xmllint").arg("--version").output().ok()?;
    let run = |count: usize| {
        let t = Instant::now();
        let status = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(xsd)
            .args(std::iter::repeat_n(doc, count))
            .output()
            .expect("xmllint");
        assert!(status.status.success(), "xmllint rejects the document");
        t.elapsed()
    };
    let single = median((0..rounds).map(|_| run(1).as_secs_f64() * 1000.0).collect());
    let batch = median(
        (0..rounds)
            .map(|_| run(100).as_secs_f64() * 1000.0 / 100.0)
            .collect(),
    );
    Some((single, batch))
}

fn mem_probe(file: &Path) {
    let checker = Checker::new(CheckOptions {
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let report = checker.check_file(file).expect("check");
    assert!(
        report.documents.iter().any(|d| d.format == "cda"),
        "the probe mail was not read"
    );
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM");
    println!("{hwm}");
}
