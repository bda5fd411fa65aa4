//! The DPI test peer: `tests/peers/dpi_peer.py`, a real HL7 implementation (hl7apy) in another
//! process, receiving MDMs over MLLP and answering AA, AE, AR (or dropping, or staying silent) as
//! the test says through its mode file. Needs python3 with hl7apy (`bash tests/setup.sh`);
//! without them, [`DpiPeer::start`] panics saying so: a test never skips.

use crate::workspace_root;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to install the peer's dependency.
pub const INSTALL: &str = "python3 -m pip install hl7apy==1.3.5 (bash tests/setup.sh does it)";

/// A running DPI peer; killed on drop.
pub struct DpiPeer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// The extra arguments given to [`DpiPeer::start`], for [`DpiPeer::start_again`].
    extra: Vec<String>,
    /// Whether the peer process runs (false between [`DpiPeer::stop`] and
    /// [`DpiPeer::start_again`]).
    running: bool,
}

impl DpiPeer {
    /// Start the peer on a free loopback port, answering AA until told otherwise.
    pub fn start(extra: &[&str]) -> DpiPeer {
        match Command::new("python3")
            .args(["-c", "import hl7apy"])
            .output()
        {
            Err(e) => {
                panic!("the DPI peer needs python3, which cannot be run ({e}); then {INSTALL}")
            }
            Ok(out) if !out.status.success() => panic!(
                "the DPI peer needs the Python package hl7apy: {INSTALL}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(_) => {}
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let (child, port) = spawn(&dir, 0, &extra);
        DpiPeer {
            child,
            port,
            dir,
            extra,
            running: true,
        }
    }

    /// Stops the peer (SIGKILL, as a crashed or rebooting DPI): connections are refused until
    /// [`DpiPeer::start_again`]. What it received stays recorded.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.running = false;
    }

    /// Starts the peer again on the same port, same record and mode files, after
    /// [`DpiPeer::stop`]. A `--dedup` peer forgets the documents it filed before (its memory
    /// lived in the stopped process).
    pub fn start_again(&mut self) {
        assert!(!self.running, "start_again: the DPI peer is running");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            // The port may be held a moment by the dead process's sockets: retry.
            match try_spawn(&self.dir, self.port, &self.extra) {
                Ok((child, _)) => {
                    self.child = child;
                    self.running = true;
                    return;
                }
                Err(why) if std::time::Instant::now() < deadline => {
                    let _ = why;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => panic!(
                    "the DPI peer did not start again on port {}: {why}",
                    self.port
                ),
            }
        }
    }

    /// Answer the next messages with `mode`: `AA`, `AE`, `AE 902`, `AR`, `DROP`, `SILENT`.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).expect("write the peer mode");
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every message received so far (one JSON object each, in order).
    pub fn records(&self) -> Vec<serde_json::Value> {
        let path: PathBuf = self.dir.path().join("received.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line from the peer"))
            .collect()
    }
}

impl Drop for DpiPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &tempfile::TempDir, port: u16, extra: &[String]) -> (Child, u16) {
    try_spawn(dir, port, extra).unwrap_or_else(|why| panic!("{why}"))
}

/// Starts `dpi_peer.py` on `port` (0: a free one) and waits for its `LISTENING` line.
fn try_spawn(dir: &tempfile::TempDir, port: u16, extra: &[String]) -> Result<(Child, u16), String> {
    let script = workspace_root().join("tests/peers/dpi_peer.py");
    assert!(script.exists(), "{} is missing", script.display());
    let stderr = std::fs::File::create(dir.path().join("peer.err")).expect("peer.err");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--port", &port.to_string(), "--max-seconds", "600"])
        .arg("--record")
        .arg(dir.path().join("received.jsonl"))
        .arg("--mode-file")
        .arg(dir.path().join("mode"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("start the DPI peer");
    let stdout = child.stdout.take().expect("peer stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
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
        return Err(format!(
            "the DPI peer did not start (first line {line:?}); its stderr:\n{err}"
        ));
    };
    Ok((child, port))
}
