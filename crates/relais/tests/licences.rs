//! Every dependency's licence must be satisfiable from the allow-list of `deny.toml`.
//!
//! cargo-deny needs its advisory database from the network; licences do not, so this test runs
//! `cargo metadata --offline` and checks each package's SPDX expression itself: `A OR B` needs one
//! side allowed, `A AND B` both, `A WITH exception` needs `A`, and the legacy `A/B` means `A OR B`.
//! A package with no `license` expression (only a licence file) fails: someone must read it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn allow_list() -> BTreeSet<String> {
    let path = workspace().join("deny.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: toml::Table = toml::from_str(&text).expect("deny.toml is valid TOML");
    doc.get("licenses")
        .and_then(|l| l.get("allow"))
        .and_then(|a| a.as_array())
        .expect("deny.toml has [licenses] allow = [...]")
        .iter()
        .map(|v| v.as_str().expect("licence names are strings").to_string())
        .collect()
}

/// Tokens of an SPDX expression: parentheses, operators and licence ids.
fn tokens(expr: &str) -> Vec<String> {
    expr.replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Whether the expression can be satisfied with the allowed licences (precedence: WITH > AND > OR).
fn satisfiable(expr: &str, allowed: &BTreeSet<String>) -> Result<bool, String> {
    struct P<'a> {
        t: Vec<String>,
        i: usize,
        allowed: &'a BTreeSet<String>,
    }
    impl P<'_> {
        fn peek(&self) -> Option<&str> {
            self.t.get(self.i).map(String::as_str)
        }
        fn or(&mut self) -> Result<bool, String> {
            let mut v = self.and()?;
            while self.peek() == Some("OR") {
                self.i += 1;
                v |= self.and()?;
            }
            Ok(v)
        }
        fn and(&mut self) -> Result<bool, String> {
            let mut v = self.with()?;
            while self.peek() == Some("AND") {
                self.i += 1;
                v &= self.with()?;
            }
            Ok(v)
        }
        fn with(&mut self) -> Result<bool, String> {
            let v = self.atom()?;
            if self.peek() == Some("WITH") {
                self.i += 2; // An exception only grants more: the base licence decides.
            }
            Ok(v)
        }
        fn atom(&mut self) -> Result<bool, String> {
            match self.peek() {
                Some("(") => {
                    self.i += 1;
                    let v = self.or()?;
                    if self.peek() != Some(")") {
                        return Err("unbalanced parenthesis".into());
                    }
                    self.i += 1;
                    Ok(v)
                }
                Some(id) if !matches!(id, "AND" | "OR" | "WITH" | ")") => {
                    let v = self.allowed.contains(id.trim_end_matches('+'));
                    self.i += 1;
                    Ok(v)
                }
                other => Err(format!("unexpected {other:?}")),
            }
        }
    }
    let mut p = P {
        t: tokens(expr),
        i: 0,
        allowed,
    };
    let v = p.or()?;
    if p.i != p.t.len() {
        return Err(format!("trailing {:?}", &p.t[p.i..]));
    }
    Ok(v)
}

#[test]
fn the_expression_evaluator_follows_spdx_precedence() {
    let allowed: BTreeSet<String> = ["MIT", "Apache-2.0"].map(String::from).into();
    for (expr, ok) in [
        ("MIT", true),
        ("GPL-3.0-only", false),
        ("MIT OR GPL-3.0-only", true),
        ("MIT AND GPL-3.0-only", false),
        ("GPL-2.0-only OR MIT AND Apache-2.0", true),
        ("(GPL-2.0-only OR MIT) AND LGPL-2.1-only", false),
        ("Apache-2.0 WITH LLVM-exception OR GPL-2.0-only", true),
        ("MIT/Apache-2.0", true),
        ("Apache-2.0 / GPL-2.0-only", true),
    ] {
        assert_eq!(satisfiable(expr, &allowed), Ok(ok), "{expr}");
    }
    assert!(satisfiable("(MIT", &allowed).is_err());
    assert!(satisfiable("MIT OR", &allowed).is_err());
}

#[test]
fn every_dependency_licence_is_in_the_deny_toml_allow_list() {
    let allowed = allow_list();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    assert!(packages.len() > 50, "suspiciously few packages");
    let mut used = BTreeSet::new();
    let mut refused = Vec::new();
    for p in packages {
        let id = format!("{} {}", p["name"].as_str().unwrap_or("?"), p["version"]);
        match p["license"].as_str() {
            None => refused.push(format!(
                "{id}: no SPDX licence expression (licence file {}): read it and decide",
                p["license_file"]
            )),
            Some(expr) => match satisfiable(expr, &allowed) {
                Ok(true) => used.extend(
                    tokens(expr)
                        .into_iter()
                        .filter(|t| allowed.contains(t.as_str())),
                ),
                Ok(false) => refused.push(format!("{id}: {expr}")),
                Err(e) => refused.push(format!("{id}: cannot parse {expr:?}: {e}")),
            },
        }
    }
    assert!(
        refused.is_empty(),
        "dependencies whose licence is outside deny.toml's [licenses] allow list:\n  {}",
        refused.join("\n  ")
    );
    // Keep the list tight: a licence nobody needs any more must leave it.
    let unused: Vec<_> = allowed.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "deny.toml allows licences no dependency uses: {unused:?}"
    );
}
