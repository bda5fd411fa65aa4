//! Parse + validate per mail, Relais against the reference pipeline a hospital scripter would
//! write (`tests/reference/reference_pipeline.py`: Python `email`, `zipfile`, `hashlib`, lxml
//! XSD validation, SaxonC-HE for the schematrons), on the same typical MSSanté mail, each with
//! its schemas loaded once, without and with the ANS schematrons. Goal: Relais >= 10x.

use crate::summary::{median, record};
use relais_check::{CheckOptions, Checker, SchematronMode};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The header schematron and the LDL-SES model schematron, relative to the pack's schematrons/
/// (what `relais check` runs on the LDL-SES example).
const SCHEMATRONS: [&str; 2] = [
    "profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
    "CI-SIS_LDL-SES_2022.01.sch",
];

/// The reference script.
pub fn script() -> PathBuf {
    relais_testsupport::workspace_root().join("tests/reference/reference_pipeline.py")
}

/// Runs the reference in benchmark mode; the median of its per-round rates, in mails/s.
fn reference_rate(
    xsd: &Path,
    schematrons: &[PathBuf],
    mail: &Path,
    rounds: usize,
    count: usize,
) -> Result<(f64, String), String> {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg("--xsd").arg(xsd);
    for s in schematrons {
        cmd.arg("--schematron").arg(s);
    }
    let out = cmd
        .arg("--bench")
        .arg(rounds.to_string())
        .arg("--count")
        .arg(count.to_string())
        .arg(mail)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
        format!(
            "the reference pipeline failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let rates: Vec<f64> = value["mails_per_s"]
        .as_array()
        .ok_or_else(|| format!("the reference pipeline refused the mail: {value}"))?
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    let warnings = value["verdict"]["warnings"].as_array().map_or(0, Vec::len);
    let unevaluated = value["verdict"]["warnings"].as_array().map_or(0, |w| {
        w.iter()
            .filter(|w| {
                w.as_str()
                    .is_some_and(|t| t.contains("could not be evaluated"))
            })
            .count()
    });
    Ok((
        median(rates),
        format!(
            "reference verdict: valid, {warnings} warnings ({unevaluated} checks that could not be evaluated)"
        ),
    ))
}

/// Compiles the schematrons for the reference (as Relais compiles them for its worker): each
/// `<dir>/<n>.xsl` with `<n>.xsl.checks.json`, value sets reached through a pack view where
/// `../jeuxDeValeurs/` is the pack's value-sets/.
pub fn compile_for_reference(ans: &Path, dir: &Path) -> Result<Vec<PathBuf>, String> {
    use relais_schematron::compile::{CheckKind, CompileOptions, compile_file, file_uri};
    let view = dir.join("pack");
    std::fs::create_dir_all(&view).map_err(|e| e.to_string())?;
    for (link, target) in [
        ("schematrons", ans.join("schematrons")),
        ("jeuxDeValeurs", ans.join("value-sets")),
    ] {
        let at = view.join(link);
        if !at.exists() {
            std::os::unix::fs::symlink(&target, &at).map_err(|e| e.to_string())?;
        }
    }
    let mut out = Vec::new();
    for (i, rel) in SCHEMATRONS.iter().enumerate() {
        let options = CompileOptions {
            phase: None,
            base_uri: Some(file_uri(&view.join("schematrons").join(rel))),
        };
        let compiled = compile_file(&ans.join("schematrons").join(rel), &options)
            .map_err(|e| format!("compiling {rel}: {e}"))?;
        let xsl = dir.join(format!("{i}.xsl"));
        std::fs::write(&xsl, &compiled.xslt).map_err(|e| e.to_string())?;
        let checks: Vec<serde_json::Value> = compiled
            .table
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "kind": match c.kind {
                        CheckKind::Assert => "assert",
                        CheckKind::Report => "report",
                        CheckKind::Rule => "rule",
                    },
                    "role": c.role,
                })
            })
            .collect();
        let mut checks_path = xsl.clone().into_os_string();
        checks_path.push(".checks.json");
        std::fs::write(
            &checks_path,
            serde_json::to_vec(&checks).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        out.push(xsl);
    }
    Ok(out)
}

pub fn suite(rounds: usize, mails: usize) {
    let ans = relais_testsupport::ans_dir();
    let xsd = ans.join("xsd/CDA_extended.xsd");
    let cda = std::fs::read(ans.join("cda-examples/LDL-SES_2022.01.xml")).expect("LDL-SES example");
    let mail = crate::typical_mail(&cda, 150 * 1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let mail_path = dir.path().join("typical.eml");
    std::fs::write(&mail_path, &mail).expect("write the mail");
    println!("# relais-bench reference");
    println!(
        "typical mail: {} bytes (XDM with the ANS LDL-SES example, {} bytes, + PDF 150 KiB); rounds {rounds}, median reported",
        mail.len(),
        cda.len()
    );
    println!(
        "reference: {} (python3, email + zipfile + hashlib + lxml XSD; schematrons on SaxonC-HE)",
        script().display()
    );

    let no_sch = Checker::new(CheckOptions {
        pack: Some(ans.clone()),
        schematron: SchematronMode::Off,
        ..CheckOptions::default()
    })
    .expect("checker");
    let relais = crate::rate(&no_sch, &mail, mails, rounds);
    compare(
        "parse + validate per mail (XDM + CDA, XSD, no schematron)",
        relais,
        reference_rate(&xsd, &[], &mail_path, rounds, mails),
    );

    let cache = tempfile::tempdir().expect("cache dir");
    let full = match Checker::new(CheckOptions {
        pack: Some(ans.clone()),
        schematron: SchematronMode::Require,
        cache_dir: Some(cache.path().to_path_buf()),
        ..CheckOptions::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            println!("with schematrons: NOT MEASURED ({e})");
            record(
                "parse + validate per mail, with ANS schematrons",
                format!("not measured: {e}"),
                ">= 10x reference",
                None,
            );
            return;
        }
    };
    let _ = full.check_bytes("bench.eml", &mail); // compiles and loads the stylesheets
    let n = (mails / 4).max(10);
    let relais = crate::rate(&full, &mail, n, rounds);
    let reference = compile_for_reference(&ans, dir.path())
        .and_then(|xsl| reference_rate(&xsd, &xsl, &mail_path, rounds, n));
    compare(
        "parse + validate per mail (XDM + CDA, XSD + ANS schematrons StrucMin + LDL-SES)",
        relais,
        reference,
    );
}

fn compare(what: &str, relais: f64, reference: Result<(f64, String), String>) {
    match reference {
        Ok((py, verdict)) => {
            println!("{verdict}");
            let ratio = relais / py;
            println!(
                "{what}: relais {relais:.1} mails/s, reference {py:.1} mails/s: {ratio:.1}x (goal >= 10x)"
            );
            record(
                what,
                format!(
                    "relais {relais:.1} mails/s vs reference {py:.1} mails/s = **{ratio:.1}x**"
                ),
                ">= 10x the reference",
                Some(ratio >= 10.0),
            );
        }
        Err(e) => {
            println!("{what}: relais {relais:.1} mails/s; reference NOT MEASURED: {e}");
            record(
                what,
                format!("relais {relais:.1} mails/s; reference not measured"),
                ">= 10x the reference",
                None,
            );
        }
    }
}
