//! The FHIR server test peer: `tests/peers/fhir_peer.py`, a transaction endpoint in another
//! process whose every posted Bundle is parsed by the pydantic models of `fhir.resources`
//! (PyPI), with conditional creates, bearer tokens, HTTPS with required client certificates,
//! and a mode file to make it answer errors. Needs python3 with fhir.resources
//! (`bash tests/setup.sh`); without them, [`FhirPeer::start`] panics saying so: a test never
//! skips.

use crate::pki::TestPki;
use crate::workspace_root;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to install the peer's dependency.
pub const INSTALL: &str =
    "python3 -m pip install fhir.resources==8.3.0 (bash tests/setup.sh does it)";

/// How the peer listens and whom it lets in.
#[derive(Debug, Clone, Default)]
pub struct FhirPeerOptions {
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve HTTPS with the PKI's server certificate.
    pub tls: Option<TestPki>,
    /// With `tls`: require a client certificate issued by the PKI.
    pub require_client_cert: bool,
}

/// A running FHIR peer; killed on drop.
pub struct FhirPeer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    token: Option<String>,
    https: bool,
}

impl FhirPeer {
    /// Plain HTTP, requiring a bearer token (a fresh one per peer, also written to
    /// [`FhirPeer::token_file`]).
    pub fn start_with_token() -> FhirPeer {
        let token = format!(
            "relais-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        FhirPeer::start(FhirPeerOptions {
            token: Some(token),
            ..FhirPeerOptions::default()
        })
    }

    /// HTTPS with the PKI's server certificate, requiring a client certificate from it.
    pub fn start_mtls(pki: &TestPki) -> FhirPeer {
        FhirPeer::start(FhirPeerOptions {
            token: None,
            tls: Some(pki.clone()),
            require_client_cert: true,
        })
    }

    /// Starts the peer on a free loopback port, answering normally until told otherwise.
    pub fn start(opts: FhirPeerOptions) -> FhirPeer {
        match Command::new("python3")
            .args(["-c", "import fhir.resources.R4B.bundle"])
            .output()
        {
            Err(e) => {
                panic!("the FHIR peer needs python3, which cannot be run ({e}); then {INSTALL}")
            }
            Ok(out) if !out.status.success() => panic!(
                "the FHIR peer needs the Python package fhir.resources: {INSTALL}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(_) => {}
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let script = workspace_root().join("tests/peers/fhir_peer.py");
        assert!(script.exists(), "{} is missing", script.display());
        let stderr = std::fs::File::create(dir.path().join("peer.err")).expect("peer.err");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args([
                "--port",
                "0",
                "--max-seconds",
                "600",
                "--base-path",
                "/fhir",
            ])
            .arg("--record")
            .arg(dir.path().join("received"))
            .arg("--mode-file")
            .arg(dir.path().join("mode"));
        if let Some(token) = &opts.token {
            std::fs::write(dir.path().join("token"), format!("{token}\n")).expect("token file");
            cmd.args(["--token", token]);
        }
        if let Some(pki) = &opts.tls {
            cmd.arg("--tls-cert")
                .arg(&pki.server_chain)
                .arg("--tls-key")
                .arg(&pki.server_key);
            if opts.require_client_cert {
                cmd.arg("--client-ca").arg(&pki.client_ca);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start the FHIR peer");
        let stdout = child.stdout.take().expect("peer stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(port) = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = std::fs::File::open(dir.path().join("peer.err"))
                .and_then(|mut f| f.read_to_string(&mut err));
            panic!("the FHIR peer did not start (first line {line:?}); its stderr:\n{err}");
        };
        FhirPeer {
            child,
            port,
            dir,
            token: opts.token,
            https: opts.tls.is_some(),
        }
    }

    /// The FHIR base URL: `http(s)://127.0.0.1:<port>/fhir`.
    pub fn base_url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}/fhir",
            if self.https { "https" } else { "http" },
            self.port
        )
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bearer token the peer requires, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A file holding the token (one line), as a sink's `bearer_token_file` would.
    pub fn token_file(&self) -> PathBuf {
        assert!(self.token.is_some(), "this peer requires no token");
        self.dir.path().join("token")
    }

    /// Answer the next requests with `mode`: `OK`, an HTTP status (`400`, `401`, `503`...),
    /// `SLOW <seconds>`, `GARBAGE` (200 with HTML) or `DROP` (close without answering).
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).expect("write the peer mode");
    }

    /// Every POST received so far, in order: `status`, `auth`, `client_cert`, `bundle`,
    /// `entries` (`resourceType`, `status`, `location`, `created`) or `error`.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let dir = self.dir.path().join("received");
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files.iter().map(|p| read_json(p)).collect()
    }

    /// The bundles the peer accepted (answered 200), in order.
    pub fn accepted_bundles(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| r["status"] == 200 && r.get("entries").is_some())
            .map(|r| r["bundle"].clone())
            .collect()
    }

    /// How many resources of `resource_type` the peer created (conditional creates that
    /// matched an existing resource do not count).
    pub fn created(&self, resource_type: &str) -> usize {
        self.records()
            .iter()
            .filter_map(|r| r["entries"].as_array().cloned())
            .flatten()
            .filter(|e| e["resourceType"] == resource_type && e["created"] == true)
            .count()
    }

    /// What the peer wrote on stderr (TLS handshake failures, crashes).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("peer.err")).unwrap_or_default()
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("cannot read the peer record {}: {e}", p.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the peer record {} is not JSON: {e}", p.display()))
}

impl Drop for FhirPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
