//! The deployment files under deploy/ stay usable: the systemd unit passes `systemd-analyze
//! verify` against the built binary and keeps its hardening, and the container file only copies
//! files that exist.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("workspace root")
}

#[test]
fn systemd_unit_verifies_and_stays_hardened() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/relais.service")).unwrap();
    // Point the unit at the binary this test built, then let systemd judge it.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("relais.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/relais", env!("CARGO_BIN_EXE_relais")),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) is needed: run `bash tests/setup.sh`");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !said.contains("relais.service:"),
        "systemd-analyze verify: {said}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 2.0 (lower is better): {report}"
    );
    for needed in [
        "User=relais",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "TimeoutStopSec=",
    ] {
        assert!(unit.contains(needed), "the unit lost {needed:?}");
    }
}

#[test]
fn container_file_copies_only_what_exists() {
    let file = std::fs::read_to_string(root().join("deploy/container/Containerfile")).unwrap();
    let mut copies = 0;
    for line in file.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") || rest.starts_with(". ") {
            continue;
        }
        let source = rest.split_whitespace().next().unwrap();
        assert!(
            root().join(source).exists(),
            "COPY of a missing file: {source}"
        );
        copies += 1;
    }
    assert!(copies >= 2, "{file}");
}

#[test]
fn kubernetes_configuration_checks_and_kustomization_names_existing_files() {
    let dir = root().join("deploy/kubernetes");
    let out = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["config", "check", "--config"])
        .arg(dir.join("relais.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let mut named = 0;
    for line in kustomization.lines() {
        // List items that are file names (`- name: ...` items are generator entries).
        let Some(item) = line.trim().strip_prefix("- ") else {
            continue;
        };
        if item.contains(':') {
            continue;
        }
        assert!(
            dir.join(item).is_file(),
            "kustomization names a missing file: {item}"
        );
        named += 1;
    }
    assert!(named >= 4, "{kustomization}");
    // The probes point at the console's unauthenticated endpoints.
    let deployment = std::fs::read_to_string(dir.join("relais.yaml")).unwrap();
    assert!(deployment.contains("path: /health") && deployment.contains("path: /ready"));
}
