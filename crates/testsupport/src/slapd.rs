//! A real OpenLDAP server for tests: Debian's `slapd`, started on loopback high ports from a
//! `slapd.conf` and an MDB database written into a fresh temporary directory, loaded with the
//! test's schema and LDIF files (by `slapadd`, before the server starts).
//!
//! What runs (on 127.0.0.1 by default):
//!
//! | URL | service |
//! |---|---|
//! | [`Slapd::ldap_url`] | LDAP, StartTLS available |
//! | [`Slapd::ldaps_url`] | LDAP over implicit TLS |
//!
//! TLS uses a fresh IGC-Santé-like test PKI ([`crate::pki`]): clients trust
//! [`Slapd::ca_pem`]; a client certificate of the PKI is accepted (not required) and can be
//! used for SASL EXTERNAL. The suffix entry (`dc=annuaire,dc=test` by default) is created
//! automatically; the root DN is `cn=admin,<suffix>` with password [`Slapd::ROOT_PASSWORD`].
//! Anonymous reads are allowed unless [`SlapdOptions::allow_anonymous`] is false.
//!
//! Lifetime: [`Slapd::stop`] or `Drop` kills the server and deletes the directory. A small
//! watchdog process does the same if the test process dies first. [`Slapd::kill`] stops the
//! server but keeps its ports reserved, for "directory down" tests.
//!
//! A missing `slapd` makes [`Slapd::start`] panic with a message naming `tests/setup.sh`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::pki::{PkiOptions, TestPki};

/// How to set up a [`Slapd`].
#[derive(Debug, Clone)]
pub struct SlapdOptions {
    /// The database suffix (default `dc=annuaire,dc=test`).
    pub suffix: String,
    /// Schema files (`.schema`, slapd.conf syntax) added after core, cosine and inetorgperson.
    pub schemas: Vec<PathBuf>,
    /// LDIF files loaded in order (the suffix entry is created before them).
    pub ldif: Vec<PathBuf>,
    /// Allow anonymous binds and reads (default true). When false, anonymous binds are
    /// refused and every operation needs an authenticated identity.
    pub allow_anonymous: bool,
    /// Address the server listens on.
    pub host: Ipv4Addr,
}

impl Default for SlapdOptions {
    fn default() -> Self {
        SlapdOptions {
            suffix: "dc=annuaire,dc=test".into(),
            schemas: Vec::new(),
            ldif: Vec::new(),
            allow_anonymous: true,
            host: Ipv4Addr::LOCALHOST,
        }
    }
}

/// A running slapd in a temporary directory.
pub struct Slapd {
    dir: PathBuf,
    opts: SlapdOptions,
    ldap_port: u16,
    ldaps_port: u16,
    pki: TestPki,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    start_time: Duration,
}

/// Ports handed out in this process and not yet released.
static RESERVED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

impl Slapd {
    /// Password of the root DN.
    pub const ROOT_PASSWORD: &'static str = "secret";

    /// Starts an empty directory (suffix entry only) with the default options.
    pub fn start() -> Slapd {
        Slapd::start_with(SlapdOptions::default())
    }

    /// Starts the directory. Panics with a clear message when slapd is missing (run
    /// `bash tests/setup.sh`), when a file cannot be loaded, or when the server does not start.
    pub fn start_with(opts: SlapdOptions) -> Slapd {
        let t0 = Instant::now();
        let slapd = find_binary("slapd");
        let slapadd = find_binary("slapadd");
        let dir = tempfile::Builder::new()
            .prefix("relais-slapd-")
            .tempdir()
            .expect("create a temporary directory for slapd")
            .keep();
        let pki = TestPki::generate(&dir.join("pki"), &PkiOptions::default());
        let mut server = Slapd {
            dir: dir.clone(),
            opts,
            ldap_port: 0,
            ldaps_port: 0,
            pki,
            child: None,
            watchdog: None,
            start_time: Duration::ZERO,
        };
        server.watchdog = Some(spawn_watchdog(&dir));
        server.write_config();
        server.load_data(&slapadd);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (a, b) = reserve_ports(server.opts.host);
            server.ldap_port = a;
            server.ldaps_port = b;
            match server.launch(&slapd) {
                Ok(()) => break,
                Err(why) => {
                    server.kill_child();
                    release_ports(&[a, b]);
                    if attempt >= 3 {
                        panic!("slapd did not start: {why}");
                    }
                }
            }
        }
        server.start_time = t0.elapsed();
        server
    }

    /// `ldap://host:port`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}:{}", self.opts.host, self.ldap_port)
    }

    /// `ldaps://host:port`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:{}", self.opts.host, self.ldaps_port)
    }

    /// The suffix (base DN of everything loaded).
    pub fn suffix(&self) -> &str {
        &self.opts.suffix
    }

    /// The root DN (`cn=admin,<suffix>`).
    pub fn root_dn(&self) -> String {
        format!("cn=admin,{}", self.opts.suffix)
    }

    /// A file holding the root password (no end of line), for clients that read passwords
    /// from files.
    pub fn root_password_file(&self) -> PathBuf {
        let p = self.dir.join("root-password");
        if !p.exists() {
            write_file(&p, Slapd::ROOT_PASSWORD);
        }
        p
    }

    /// The test PKI (server certificate, CAs, client certificates).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The root CA certificate clients must trust.
    pub fn ca_pem(&self) -> &Path {
        &self.pki.root_ca
    }

    /// The directory holding configuration, database, PKI and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Slapd::start_with`] took.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// The server's output and the slapadd logs (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for rel in ["slapadd.log", "slapd.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.join(rel)) {
                let _ = writeln!(out, "==> {rel} <==\n{text}");
            }
        }
        out
    }

    /// Kills the server now (a crashed or unreachable directory); its ports stay reserved so
    /// that nothing else takes them during the test.
    pub fn kill(&mut self) {
        self.kill_child();
    }

    /// Stops the server and deletes the directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.kill_child();
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        release_ports(&[self.ldap_port, self.ldaps_port]);
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::write(self.dir.join("pgid"), "");
    }

    fn write_config(&self) {
        let d = self.dir.display();
        fs::create_dir_all(self.dir.join("db")).expect("create the slapd database directory");
        let mut c = String::new();
        c.push_str(
            "# generated by relais_testsupport::slapd; reads nothing from /etc/ldap/slapd.d\n",
        );
        for s in ["core", "cosine", "inetorgperson"] {
            let _ = writeln!(c, "include /etc/ldap/schema/{s}.schema");
        }
        for s in &self.opts.schemas {
            let path = s
                .canonicalize()
                .unwrap_or_else(|e| panic!("schema file {} cannot be used: {e}", s.display()));
            let _ = writeln!(c, "include {}", path.display());
        }
        let _ = writeln!(c, "pidfile {d}/slapd.pid");
        let _ = writeln!(c, "argsfile {d}/slapd.args");
        c.push_str("modulepath /usr/lib/ldap\nmoduleload back_mdb\n");
        let _ = writeln!(c, "TLSCertificateFile {}", self.pki.server_chain.display());
        let _ = writeln!(c, "TLSCertificateKeyFile {}", self.pki.server_key.display());
        let _ = writeln!(c, "TLSCACertificateFile {}", self.pki.client_ca.display());
        // Ask for a client certificate and check it when one is sent (SASL EXTERNAL tests).
        c.push_str("TLSVerifyClient try\n");
        if !self.opts.allow_anonymous {
            c.push_str("disallow bind_anon\nrequire authc\n");
        }
        c.push_str("database mdb\nmaxsize 104857600\n");
        let _ = writeln!(c, "suffix \"{}\"", self.opts.suffix);
        let _ = writeln!(c, "rootdn \"{}\"", self.root_dn());
        let _ = writeln!(c, "rootpw {}", Slapd::ROOT_PASSWORD);
        let _ = writeln!(c, "directory {d}/db");
        c.push_str("index objectClass eq\n");
        c.push_str(
            "access to attrs=userPassword\n  by self write\n  by anonymous auth\n  by * none\n",
        );
        if self.opts.allow_anonymous {
            c.push_str("access to *\n  by * read\n");
        } else {
            c.push_str("access to *\n  by users read\n  by * none\n");
        }
        write_file(&self.dir.join("slapd.conf"), &c);
    }

    fn load_data(&self, slapadd: &Path) {
        let mut files = Vec::new();
        if let Some(dc) = self
            .opts
            .suffix
            .split(',')
            .next()
            .and_then(|rdn| rdn.trim().strip_prefix("dc="))
        {
            let base = self.dir.join("suffix.ldif");
            write_file(
                &base,
                &format!(
                    "dn: {}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
                     o: Relais test directory\ndc: {dc}\n",
                    self.opts.suffix
                ),
            );
            files.push(base);
        }
        files.extend(self.opts.ldif.iter().cloned());
        let log = self.dir.join("slapadd.log");
        for f in files {
            let out = Command::new(slapadd)
                .arg("-q")
                .arg("-f")
                .arg(self.dir.join("slapd.conf"))
                .arg("-l")
                .arg(&f)
                .stdin(Stdio::null())
                .output()
                .expect("run slapadd");
            let mut text = fs::read_to_string(&log).unwrap_or_default();
            let _ = writeln!(
                text,
                "slapadd {}: {}\n{}{}",
                f.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            write_file(&log, &text);
            if !out.status.success() {
                panic!(
                    "slapadd could not load {} ({}):\n{}",
                    f.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    fn launch(&mut self, slapd: &Path) -> Result<(), String> {
        let log = fs::File::create(self.dir.join("slapd.log")).map_err(|e| e.to_string())?;
        let urls = format!("{} {}", self.ldap_url(), self.ldaps_url());
        // `-d 0`: stay in the foreground (no fork), no debug output. Never give it a pipe.
        let child = Command::new(slapd)
            .arg("-h")
            .arg(&urls)
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-d")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", slapd.display()))?;
        write_file(&self.dir.join("pgid"), &child.id().to_string());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pending = vec![self.ldap_port, self.ldaps_port];
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("slapd exited ({status})\n{}", self.logs()));
            }
            pending.retain(|&port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((self.opts.host, port)),
                    Duration::from_millis(200),
                )
                .is_err()
            });
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ports {pending:?} not open after 10 s\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Slapd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slapd")
            .field("dir", &self.dir)
            .field("ldap", &self.ldap_url())
            .field("ldaps", &self.ldaps_url())
            .finish_non_exhaustive()
    }
}

/// Finds `slapd`/`slapadd` in the sbin directories and PATH; panics naming the setup script.
fn find_binary(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for dir in &dirs {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` not found (looked in /usr/sbin, /usr/bin and PATH): the LDAP tests need \
         OpenLDAP's slapd (Debian packages slapd and ldap-utils); install the test \
         prerequisites with `bash tests/setup.sh`"
    );
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A shell that waits for EOF on its stdin (held only by this process), then kills slapd's
/// process group (recorded in `pgid`) and removes the directory.
fn spawn_watchdog(dir: &Path) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"cat >/dev/null
g=$(cat "$1/pgid" 2>/dev/null)
[ -n "$g" ] && kill -KILL "-$g" 2>/dev/null
for i in 1 2 3 4 5 6 7 8 9 10; do
  rm -rf "$1" 2>/dev/null
  [ -e "$1" ] || break
  sleep 0.1
done
"#;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("relais-slapd-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the slapd watchdog (/bin/sh)");
    let stdin = child.stdin.take().expect("watchdog stdin");
    (child, stdin)
}

/// Two free ports below the ephemeral range (32768+), reserved in this process.
fn reserve_ports(host: Ipv4Addr) -> (u16, u16) {
    let mut guard = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    let reserved = guard.get_or_insert_with(HashSet::new);
    let mut seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let base = 10000 + (seed % 22000) as u16;
        let pair = [base, base + 1];
        if pair.iter().any(|p| reserved.contains(p)) {
            continue;
        }
        if pair.iter().all(|&p| TcpListener::bind((host, p)).is_ok()) {
            reserved.extend(pair);
            return (base, base + 1);
        }
    }
    panic!("no two consecutive free ports found on {host} between 10000 and 32000");
}

fn release_ports(ports: &[u16]) {
    let mut guard = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = guard.as_mut() {
        for p in ports {
            set.remove(p);
        }
    }
}
