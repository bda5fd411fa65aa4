//! A real PostgreSQL server for tests: Debian's `postgresql` package (`initdb` and `postgres`
//! from `/usr/lib/postgresql/<version>/bin`), started on a loopback high port from a fresh
//! cluster in a temporary directory.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as `bash tests/run-all.sh`
//! does), the cluster belongs to, and the server runs as, the `postgres` system user that the
//! package creates (or the user named by `RELAIS_TEST_PG_USER`); otherwise it runs as the current
//! user.
//!
//! What runs:
//!
//! - TCP on `127.0.0.1:<port>`, password authentication (SCRAM-SHA-256) for the superuser
//!   [`PgServer::SUPERUSER`] / [`PgServer::PASSWORD`]; TLS is available (not required) with a
//!   server certificate of a fresh test PKI ([`crate::pki`]) whose root is [`PgServer::ca_pem`];
//! - a Unix socket in the temporary directory, trusted, used by [`PgServer::psql`] for
//!   administration (creating databases).
//!
//! Tests usually share one server per test binary ([`PgServer::shared`]) and take a fresh
//! database each ([`PgServer::create_database`]): a server starts in about a second, a database
//! in a fraction of one.
//!
//! Lifetime: [`PgServer::stop`] or `Drop` shuts the server down and deletes the directory. A small
//! watchdog process does the same when the test process dies first (and for the shared server,
//! which is never dropped). [`PgServer::kill`] kills the server with SIGKILL, for "database down"
//! tests.
//!
//! A missing server binary makes [`PgServer::start`] panic with a message naming
//! `tests/setup.sh`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::pki::{PkiOptions, TestPki};

/// How to set up a [`PgServer`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Whether the server fsyncs its WAL (default true: commits are as durable, and as slow, as
    /// in production). Turn it off for tests that only check logic and want speed.
    pub fsync: bool,
    /// `max_connections` of the server (default 200: many tests share one server).
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            fsync: true,
            max_connections: 200,
        }
    }
}

/// A running PostgreSQL server in a temporary directory.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    opts: PgOptions,
    port: u16,
    /// The system user the server runs as, when the tests run as root.
    run_as: Option<(u32, u32)>,
    pki: TestPki,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    databases: AtomicU32,
    start_time: Duration,
}

/// Ports handed out in this process and not yet released.
static RESERVED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static SHARED: OnceLock<PgServer> = OnceLock::new();

const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

impl PgServer {
    /// The superuser created by `initdb`.
    pub const SUPERUSER: &'static str = "relais";
    /// Its password (for TCP connections; the Unix socket is trusted).
    pub const PASSWORD: &'static str = "relais-test-password";

    /// Starts a server with the default options (fsync on).
    pub fn start() -> PgServer {
        PgServer::start_with(PgOptions::default())
    }

    /// One server for the whole test process, started on first use and stopped by the
    /// watchdog when the process exits. Give each test its own database
    /// ([`PgServer::create_database`]).
    pub fn shared() -> &'static PgServer {
        SHARED.get_or_init(PgServer::start)
    }

    /// Starts a server. Panics with a clear message when PostgreSQL is not installed (run
    /// `bash tests/setup.sh`), when no non-root user can run it, or when it does not start.
    pub fn start_with(opts: PgOptions) -> PgServer {
        let t0 = Instant::now();
        let bin = find_bin_dir();
        let run_as = if euid() == 0 {
            Some(server_user())
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("relais-pg-")
            .tempdir()
            .expect("create a temporary directory for PostgreSQL")
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .expect("chmod the PostgreSQL directory");
        if run_as.is_some() {
            check_traversable(&dir);
        }
        let pki = TestPki::generate(&dir.join("pki"), &PkiOptions::default());
        let mut server = PgServer {
            dir: dir.clone(),
            bin,
            opts,
            port: 0,
            run_as,
            pki,
            child: None,
            watchdog: None,
            databases: AtomicU32::new(0),
            start_time: Duration::ZERO,
        };
        server.watchdog = Some(spawn_watchdog(&dir));
        server.init_cluster();
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = reserve_port();
            match server.launch() {
                Ok(()) => break,
                Err(why) => {
                    server.kill_child();
                    release_port(server.port);
                    if attempt >= 3 {
                        panic!("PostgreSQL did not start: {why}");
                    }
                }
            }
        }
        server.start_time = t0.elapsed();
        server
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://relais:<password>@127.0.0.1:<port>/postgres` (the maintenance database).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` (plain TCP, password authentication).
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@{HOST}:{}/{db}",
            PgServer::SUPERUSER,
            PgServer::PASSWORD,
            self.port
        )
    }

    /// The URL of database `db` through the server's Unix socket (trusted: no password), as an
    /// instance running on the database host would connect.
    pub fn socket_url_for(&self, db: &str) -> String {
        format!(
            "postgres://{}@localhost/{db}?host={}&port={}",
            PgServer::SUPERUSER,
            self.dir.join("sock").display(),
            self.port
        )
    }

    /// The URL of database `db` over TLS, verifying the server certificate against the test
    /// PKI's root ([`PgServer::ca_pem`]) and its name (`sslmode=verify-full`).
    pub fn tls_url_for(&self, db: &str) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.url_for(db),
            self.pki.root_ca.display()
        )
    }

    /// Creates a fresh, empty database named after `prefix` (plus a unique suffix) and returns
    /// its URL.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = self.fresh_name(prefix);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url_for(&name)
    }

    /// Like [`PgServer::create_database`], returning the database name instead of its URL.
    pub fn create_database_named(&self, prefix: &str) -> String {
        let name = self.fresh_name(prefix);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// Creates a fresh database as a copy of database `template` (which nobody may be connected
    /// to) and returns its name: a faster start than migrating an empty one in every test.
    pub fn create_database_from(&self, prefix: &str, template: &str) -> String {
        let name = self.fresh_name(prefix);
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        );
        name
    }

    /// Runs `sql` in database `db` as the superuser (through the Unix socket) and returns what
    /// it printed (unaligned, tuples only). Panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql_command(db, sql)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        if !out.status.success() {
            panic!(
                "psql failed ({}) on {sql:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sql` like [`PgServer::psql`] and returns psql's error text when it fails (`Ok`
    /// with the output otherwise).
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_command(db, sql)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The root CA certificate that TLS clients must trust.
    pub fn ca_pem(&self) -> &Path {
        &self.pki.root_ca
    }

    /// The test PKI (the server certificate is for 127.0.0.1 and localhost).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The directory holding the cluster, the socket, the PKI and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`PgServer::start_with`] took.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// The server's log (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for rel in ["initdb.log", "postgres.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.join(rel)) {
                let _ = writeln!(out, "==> {rel} <==\n{text}");
            }
        }
        out
    }

    /// Kills the server with SIGKILL (a crashed or unreachable database); its port stays
    /// reserved so that nothing else takes it during the test.
    pub fn kill(&mut self) {
        self.kill_child();
    }

    /// Shuts the server down and deletes the directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn fresh_name(&self, prefix: &str) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let mut name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if name.is_empty() {
            name.push_str("test");
        }
        format!("{name}_{}_{n}", std::process::id())
    }

    fn psql_command(&self, db: &str, sql: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.join("sock"))
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", PgServer::SUPERUSER, "-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null());
        cmd
    }

    /// A command run as the server's user.
    fn as_server_user(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(&self.dir);
        cmd
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
        }
    }

    fn init_cluster(&self) {
        let sock = self.dir.join("sock");
        fs::create_dir_all(&sock).expect("create the socket directory");
        self.chown(&sock);
        // The cluster's parent directory must be writable by the server user.
        self.chown(&self.dir);
        let pwfile = self.dir.join("pwfile");
        write_file(&pwfile, PgServer::PASSWORD);
        self.chown(&pwfile);
        let log = fs::File::create(self.dir.join("initdb.log")).expect("create initdb.log");
        let status = self
            .as_server_user(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-U", PgServer::SUPERUSER, "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            // The cluster is thrown away after the tests: syncing its files buys nothing.
            .arg("--no-sync")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("initdb.log"))
            .stderr(log)
            .status()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        if !status.success() {
            panic!("initdb failed ({status}):\n{}", self.logs());
        }
        // The server key must belong to the server user and be private.
        let key = self.dir.join("data").join("server.key");
        fs::copy(&self.pki.server_key, &key).expect("copy the server key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod server.key");
        self.chown(&key);
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = fs::File::create(self.dir.join("postgres.log")).map_err(|e| e.to_string())?;
        let data = self.dir.join("data");
        let settings = [
            format!("listen_addresses={HOST}"),
            format!("port={}", self.port),
            format!(
                "unix_socket_directories={}",
                self.dir.join("sock").display()
            ),
            format!("fsync={}", if self.opts.fsync { "on" } else { "off" }),
            format!("max_connections={}", self.opts.max_connections),
            "ssl=on".into(),
            format!("ssl_cert_file={}", self.pki.server_chain.display()),
            format!("ssl_key_file={}", data.join("server.key").display()),
            "log_min_messages=warning".into(),
            "log_line_prefix=%m [%p] %d ".into(),
        ];
        let mut cmd = self.as_server_user(&self.bin.join("postgres"));
        cmd.arg("-D").arg(&data);
        for s in &settings {
            cmd.arg("-c").arg(s);
        }
        // The postmaster stays in the foreground; never give it a pipe.
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.join("postgres").display()))?;
        write_file(&self.dir.join("pgid"), &child.id().to_string());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("postgres exited ({status})\n{}", self.logs()));
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", &HOST.to_string(), "-p", &self.port.to_string()])
                .args(["-U", PgServer::SUPERUSER, "-d", "postgres"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("cannot run pg_isready: {e}"))?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 20 s\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGQUIT: immediate shutdown. The cluster is deleted right after, so the shutdown
            // checkpoint of a fast shutdown would only cost time (seconds, with fsync on).
            signal(c.id(), "-QUIT");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::write(self.dir.join("pgid"), "");
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        release_port(self.port);
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::write(self.dir.join("pgid"), "");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The directory of `initdb` and `postgres`: `RELAIS_TEST_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin`. Panics naming the setup script.
fn find_bin_dir() -> PathBuf {
    let complete = |d: &Path| {
        ["initdb", "postgres", "pg_isready", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("RELAIS_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            complete(&dir),
            "RELAIS_TEST_PG_BIN={} does not hold initdb, postgres, pg_isready and psql",
            dir.display()
        );
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (looked for initdb, postgres, pg_isready and \
             psql in /usr/lib/postgresql/<version>/bin): the PostgreSQL tests need Debian's \
             `postgresql` package; install the test prerequisites with `bash tests/setup.sh` \
             (or set RELAIS_TEST_PG_BIN)"
        ),
    }
}

/// The (uid, gid) of the non-root user that runs the server when the tests run as root.
fn server_user() -> (u32, u32) {
    let name = std::env::var("RELAIS_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let found = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    });
    match found {
        Some((0, _)) => panic!(
            "RELAIS_TEST_PG_USER={name} is root: PostgreSQL refuses to run as root; name a \
             non-root user"
        ),
        Some(ids) => ids,
        None => panic!(
            "PostgreSQL refuses to run as root and the user `{name}` does not exist: install \
             Debian's `postgresql` package (it creates the `postgres` user) with \
             `bash tests/setup.sh`, or set RELAIS_TEST_PG_USER to an existing non-root user"
        ),
    }
}

fn euid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn check_traversable(dir: &Path) {
    for anc in dir.ancestors().skip(1) {
        if let Ok(meta) = fs::metadata(anc)
            && meta.permissions().mode() & 0o001 == 0
        {
            panic!(
                "{} is not world-traversable, so the PostgreSQL server user cannot reach {}: \
                 set TMPDIR to a directory under /tmp",
                anc.display(),
                dir.display()
            );
        }
    }
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn signal(pid: u32, sig: &str) {
    if pid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args([sig, "--", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    signal(pgid, "-KILL");
    // The postmaster leads its process group; the backends it forked are in it too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A shell that waits for EOF on its stdin (held only by this process), then stops the server
/// (SIGQUIT to the postmaster recorded in `pgid`: an immediate shutdown, no checkpoint, since
/// the data is thrown away; SIGKILL to its process group if it is still there after 10 s) and
/// removes the directory once nothing writes in it any more.
fn spawn_watchdog(dir: &Path) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"cat >/dev/null
alive() {
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ]
}
g=$(cat "$1/pgid" 2>/dev/null)
if [ -n "$g" ]; then
  kill -QUIT "$g" 2>/dev/null
  for i in $(seq 1 100); do
    alive "$g" || break
    sleep 0.1
  done
  kill -KILL "-$g" 2>/dev/null
  sleep 0.2
fi
for i in $(seq 1 50); do
  rm -rf "$1" 2>/dev/null
  [ -e "$1" ] || break
  sleep 0.1
done
"#;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("relais-pg-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the PostgreSQL watchdog (/bin/sh)");
    let stdin = child.stdin.take().expect("watchdog stdin");
    (child, stdin)
}

/// A free port below the ephemeral range (32768+), reserved in this process.
fn reserve_port() -> u16 {
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
        let port = 10000 + (seed % 22000) as u16;
        if reserved.contains(&port) {
            continue;
        }
        if TcpListener::bind((HOST, port)).is_ok() {
            reserved.insert(port);
            return port;
        }
    }
    panic!("no free port found on {HOST} between 10000 and 32000");
}

fn release_port(port: u16) {
    let mut guard = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = guard.as_mut() {
        set.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_creates_databases_and_cleans_up() {
        let server = PgServer::start();
        let a = server.create_database_named("first test");
        let b = server.create_database_named("first test");
        assert_ne!(a, b);
        assert!(a.starts_with("first_test_"), "{a}");
        assert_eq!(server.psql(&a, "SELECT current_database()").trim(), a);
        assert!(server.url_for(&a).ends_with(&format!("/{a}")));
        let err = server
            .try_psql(&a, "SELECT * FROM no_such_table")
            .unwrap_err();
        assert!(err.contains("no_such_table"), "{err}");
        let data = server.psql("postgres", "SELECT current_setting('data_directory')");
        assert!(
            data.trim().starts_with(&server.dir().display().to_string()),
            "{data}"
        );
        // The postmaster does not run as root.
        let pid = server.child.as_ref().expect("running").id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("postmaster");
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .expect("Uid line");
        assert!(!uid.split_whitespace().skip(1).any(|u| u == "0"), "{uid}");
        let dir = server.dir().to_path_buf();
        server.stop();
        assert!(!dir.exists(), "directory removed");
    }
}
