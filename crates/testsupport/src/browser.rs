//! A real browser for the console's tests: Debian's `chromedriver` on a loopback port, driving
//! Debian's `chromium` headless with a fresh profile.
//!
//! The test talks WebDriver to [`Chromedriver::url`] (e.g. with fantoccini) and asks for a
//! session with [`Chromedriver::capabilities`]. chromedriver's output goes to a log file in the
//! temporary directory (never to the test's stderr, which would hang a harness waiting on it),
//! and is shown when it fails to start. Missing packages make the test fail, naming
//! `tests/setup.sh`: a browser test never skips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to answer its status endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running chromedriver; stopped (killed and reaped) when dropped.
pub struct Chromedriver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Panics, naming the setup script, unless Chromium and chromedriver are installed.
pub fn require_browser() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            panic!(
                "{path} is missing: the console's browser tests need Debian's {package}. \
                 Install the test prerequisites with `bash tests/setup.sh` (as root)."
            );
        }
    }
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub fn start() -> Chromedriver {
        require_browser();
        let dir = tempfile::Builder::new()
            .prefix("relais-browser-")
            .tempdir()
            .expect("temporary directory for the browser");
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut driver = Chromedriver { child, port, dir };
        driver.wait_ready(&log);
        driver
    }

    fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if status_ready(self.port) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "chromedriver did not become ready within {START_TIMEOUT:?}; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The WebDriver endpoint, e.g. `http://127.0.0.1:43117`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The capabilities of a headless Chromium session with a fresh profile in this driver's
    /// temporary directory, a 1366×900 window, no background network traffic. With
    /// `accept_insecure_certs`, the browser accepts the test PKI's server certificate.
    pub fn capabilities(
        &self,
        accept_insecure_certs: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let profile = self.dir.path().join("profile");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "acceptInsecureCerts": accept_insecure_certs,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// chromedriver's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("chromedriver.log")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether chromedriver's `/status` says it is ready.
fn status_ready(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"ready\":true") || answer.contains("\"ready\": true")
}
