//! Real mail servers for tests: Debian's Dovecot (IMAP + LMTP) and Postfix (SMTP), started on
//! loopback high ports from configuration files written into a fresh temporary directory, with a
//! fresh IGC-Santé-like test PKI ([`crate::pki`]). Nothing outside that directory is read or
//! written, apart from the daemons' binaries and Dovecot's DH parameters file.
//!
//! What runs (all on 127.0.0.1 by default):
//!
//! | port | service |
//! |---|---|
//! | [`Ports::imap`] | IMAP, STARTTLS (`ssl = required`) |
//! | [`Ports::imaps`] | IMAP, implicit TLS, password |
//! | [`Ports::imaps_mtls`] | IMAP, implicit TLS, **client certificate required** (second Dovecot instance on the same mailboxes: Dovecot cannot require client certificates on one listener only); auth by certificate + password or SASL EXTERNAL |
//! | [`Ports::lmtp`] | LMTP delivery into the mailboxes |
//! | [`Ports::smtp`] | SMTP (Postfix, STARTTLS optional, no auth, only the test domain) → LMTP |
//! | [`Ports::submission`] | SMTP submission, STARTTLS then SASL (same users and passwords) |
//! | [`Ports::smtp_mtls`] | SMTP, STARTTLS with a client certificate from the test PKI required (revoked one refused) |
//!
//! Users are `<name>@<domain>` (default `dpi`, `labo`, `secretariat` at `hopital.test`, password
//! `secret`). Mailboxes are Maildirs owned by a non-root mail uid (Dovecot refuses uid 0 for mail
//! access): 5000, or `RELAIS_TEST_MAIL_UID`. The daemons need root (Postfix's privilege
//! separation, Dovecot's user switching), which is how the test suite runs (`bash tests/run-all.sh`).
//!
//! On the client-certificate instance the certificate's CN is the login name
//! (`auth_ssl_username_from_cert`, needed by SASL EXTERNAL): it silently replaces the name given
//! to LOGIN. A revoked test certificate (`revoked@<domain>`) is listed in the intermediate CA's CRL,
//! which Dovecot checks; Postfix does not check CRLs, so its client-certificate port allows the
//! fingerprints of the valid certificates only.
//!
//! Dovecot delays every login from an address for 2 to 15 s after a failed one (its auth
//! penalty): tests that try wrong passwords should use a server of their own (Dovecot alone
//! starts in about 50 ms).
//!
//! Lifetime: [`MailServer::stop`] or `Drop` kills every daemon (SIGKILL to their process groups)
//! and deletes the directory. A small watchdog process does the same when the test process dies
//! without dropping the server (a server kept in a `static`, a panic=abort, a killed test run), so
//! no daemon outlives the tests.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::pki::{PkiOptions, TestPki};

/// How to set up a [`MailServer`].
#[derive(Debug, Clone)]
pub struct MailServerOptions {
    /// Mail domain of the users (default `hopital.test`).
    pub domain: String,
    /// Local parts of the users (each gets a mailbox and a client certificate).
    pub users: Vec<String>,
    /// Password of every user.
    pub password: String,
    /// Address every service listens on (default 127.0.0.1; 127.0.0.2 makes Dovecot refuse
    /// plaintext LOGIN before STARTTLS, which it allows when client and server IPs are equal).
    pub host: Ipv4Addr,
    /// Start Postfix too (SMTP ports). Dovecot alone starts faster.
    pub postfix: bool,
    /// IMAP capabilities to leave out of Dovecot's post-login list, e.g. `["MOVE"]` so that
    /// clients take their COPY + STORE + EXPUNGE fallback, `["MOVE", "UIDPLUS"]`, `["IDLE"]`.
    /// Dovecot still accepts the commands; well-behaved clients do not send them.
    pub imap_without: Vec<String>,
}

impl Default for MailServerOptions {
    fn default() -> Self {
        MailServerOptions {
            domain: "hopital.test".into(),
            users: vec!["dpi".into(), "labo".into(), "secretariat".into()],
            password: "secret".into(),
            host: Ipv4Addr::LOCALHOST,
            postfix: true,
            imap_without: Vec::new(),
        }
    }
}

/// The TCP ports of a running [`MailServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// IMAP with STARTTLS.
    pub imap: u16,
    /// IMAP over implicit TLS.
    pub imaps: u16,
    /// IMAP over implicit TLS, client certificate required.
    pub imaps_mtls: u16,
    /// LMTP (Dovecot delivery).
    pub lmtp: u16,
    /// SMTP (Postfix), STARTTLS optional. 0 when Postfix is not started.
    pub smtp: u16,
    /// SMTP submission (STARTTLS required, SASL). 0 when Postfix is not started.
    pub submission: u16,
    /// SMTP with a client certificate required. 0 when Postfix is not started.
    pub smtp_mtls: u16,
    /// Dovecot's auth service for Postfix SASL (internal).
    pub auth: u16,
}

/// A running Dovecot + Postfix pair in a temporary directory.
pub struct MailServer {
    dir: PathBuf,
    opts: MailServerOptions,
    ports: Ports,
    pki: TestPki,
    children: Vec<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    mail_uid: u32,
    start_time: Duration,
}

/// Ports handed out in this process and not yet released (servers started in parallel tests).
static RESERVED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

const NPORTS: u16 = 8;
const DH_FILE: &str = "/usr/share/dovecot/dh.pem";
/// Dovecot 2.3.19's post-login capability list (Debian 12).
const DOVECOT_IMAP_CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
    SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
    CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
    ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY \
    PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE";

impl MailServer {
    /// Starts Dovecot and Postfix with the default options. Panics with a clear message when
    /// something is missing (run `bash tests/setup.sh`) or fails to start.
    pub fn start() -> MailServer {
        MailServer::start_with(MailServerOptions::default())
    }

    /// Starts the servers with the given options.
    pub fn start_with(opts: MailServerOptions) -> MailServer {
        let t0 = Instant::now();
        let bins = Binaries::find(opts.postfix);
        let uid = euid();
        assert!(
            uid == 0,
            "the test mail servers (Dovecot, Postfix) must be started as root (current uid {uid}): \
             run the tests as root, as `bash tests/run-all.sh` does in CI"
        );
        let mail_uid: u32 = std::env::var("RELAIS_TEST_MAIL_UID")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        assert!(mail_uid != 0, "RELAIS_TEST_MAIL_UID must not be 0");

        let dir = tempfile::Builder::new()
            .prefix("relais-mail-")
            .tempdir()
            .expect("create a temporary directory for the mail servers")
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod state dir");
        check_traversable(&dir);

        let pki_opts = PkiOptions {
            domain: opts.domain.clone(),
            clients: opts.users.clone(),
            revoked_clients: vec!["revoked".into()],
        };
        let pki = TestPki::generate(&dir.join("pki"), &pki_opts);
        for entry in fs::read_dir(&pki.dir).into_iter().flatten().flatten() {
            // Dovecot/Postfix read them as root; keep the keys private anyway.
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o644));
        }

        let mut server = MailServer {
            dir: dir.clone(),
            opts,
            ports: Ports {
                imap: 0,
                imaps: 0,
                imaps_mtls: 0,
                lmtp: 0,
                smtp: 0,
                submission: 0,
                smtp_mtls: 0,
                auth: 0,
            },
            pki,
            children: Vec::new(),
            watchdog: None,
            mail_uid,
            start_time: Duration::ZERO,
        };
        server.watchdog = Some(spawn_watchdog(&dir));

        let mut attempt = 0;
        loop {
            attempt += 1;
            server.ports = reserve_ports(server.opts.host);
            if !server.opts.postfix {
                server.ports.smtp = 0;
                server.ports.submission = 0;
                server.ports.smtp_mtls = 0;
            }
            server.write_configs();
            match server.launch(&bins) {
                Ok(()) => break,
                Err(why) => {
                    server.kill_daemons();
                    let retry = attempt < 3 && why.contains("in use");
                    if !retry {
                        panic!("the test mail servers did not start: {why}");
                    }
                }
            }
        }
        server.start_time = t0.elapsed();
        server
    }

    /// Host address of every service, e.g. `"127.0.0.1"`.
    pub fn host(&self) -> String {
        self.opts.host.to_string()
    }

    /// The ports of every service.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The mail domain.
    pub fn domain(&self) -> &str {
        &self.opts.domain
    }

    /// Every user's password.
    pub fn password(&self) -> &str {
        &self.opts.password
    }

    /// Full address of a user given by local part (`"dpi"`) or already complete.
    pub fn address(&self, user: &str) -> String {
        if user.contains('@') {
            user.to_string()
        } else {
            format!("{user}@{}", self.opts.domain)
        }
    }

    /// The test PKI (all PEM paths).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The root CA certificate (PEM): the one trust anchor clients need.
    pub fn ca_pem(&self) -> &Path {
        &self.pki.root_ca
    }

    /// A user's client certificate chain (leaf + intermediate, PEM).
    pub fn client_cert_pem(&self, user: &str) -> &Path {
        &self.pki.client(local_part(user)).chain
    }

    /// A user's client private key (PKCS#8 PEM).
    pub fn client_key_pem(&self, user: &str) -> &Path {
        &self.pki.client(local_part(user)).key
    }

    /// The directory holding configuration, logs, PKI and mailboxes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`MailServer::start`] took.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// A user's Maildir.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir
            .join("mail")
            .join(&self.opts.domain)
            .join(local_part(user))
            .join("Maildir")
    }

    /// The daemons' logs, concatenated (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for rel in [
            "dovecot/main/stderr.log",
            "dovecot/main/dovecot.log",
            "dovecot/mtls/stderr.log",
            "dovecot/mtls/dovecot.log",
            "postfix/start.log",
            "postfix/maillog",
        ] {
            if let Ok(text) = fs::read_to_string(self.dir.join(rel)) {
                let _ = writeln!(out, "==> {rel} <==\n{text}");
            }
        }
        out
    }

    /// Delivers a raw mail into a user's INBOX over LMTP (the fast path: the mail is in the
    /// mailbox when this returns). Panics when Dovecot refuses it.
    pub fn deliver_lmtp(&self, user: &str, raw: &[u8]) {
        let to = self.address(user);
        let from = format!("sender@{}", self.opts.domain);
        smtp_session(
            (self.opts.host, self.ports.lmtp).into(),
            Dialect::Lmtp,
            &from,
            &[to.as_str()],
            raw,
        )
        .unwrap_or_else(|e| panic!("LMTP delivery to {to} failed: {e}"));
    }

    /// Sends a raw mail over SMTP (plain, port [`Ports::smtp`]) to Postfix, which queues it and
    /// delivers it over LMTP; this returns once Postfix accepted it (see [`MailServer::wait_for_mail`]).
    pub fn send_smtp(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), String> {
        assert!(
            self.opts.postfix,
            "this MailServer was started without Postfix"
        );
        let to: Vec<String> = to.iter().map(|t| self.address(t)).collect();
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        smtp_session(
            (self.opts.host, self.ports.smtp).into(),
            Dialect::Smtp,
            from,
            &to,
            raw,
        )
    }

    /// The UIDs of the messages in a user's folder (via `doveadm search`, not IMAP).
    pub fn imap_uids(&self, user: &str, folder: &str) -> Vec<u32> {
        let out = self.doveadm(&[
            "search",
            "-u",
            &self.address(user),
            "mailbox",
            folder,
            "ALL",
        ]);
        let mut uids: Vec<u32> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        uids.sort_unstable();
        uids
    }

    /// Waits until a user's folder holds at least `count` messages; panics after `timeout`.
    pub fn wait_for_mail(
        &self,
        user: &str,
        folder: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let uids = self.imap_uids(user, folder);
            if uids.len() >= count {
                return uids;
            }
            if Instant::now() > deadline {
                panic!(
                    "{folder} of {user} holds {} message(s) after {timeout:?}, expected {count}\n{}",
                    uids.len(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a folder in a user's mailbox (via doveadm).
    pub fn create_folder(&self, user: &str, folder: &str) {
        self.doveadm(&["mailbox", "create", "-u", &self.address(user), folder]);
    }

    /// Deletes a folder and its messages from a user's mailbox (via doveadm). Creating it again
    /// gives it a new UIDVALIDITY.
    pub fn delete_folder(&self, user: &str, folder: &str) {
        self.doveadm(&["mailbox", "delete", "-u", &self.address(user), folder]);
    }

    /// Runs doveadm against the main Dovecot instance; panics on failure.
    pub fn doveadm(&self, args: &[&str]) -> String {
        let conf = self.dir.join("dovecot/main/dovecot.conf");
        let out = Command::new(find_binary("doveadm"))
            .arg("-c")
            .arg(&conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run doveadm");
        if !out.status.success() {
            panic!(
                "doveadm {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills both Dovecot instances (SIGKILL to their process groups, as a crash or a host
    /// restart would): IMAP and LMTP refuse connections until [`MailServer::start_dovecot`].
    /// Mailboxes and Postfix are left as they are (Postfix queues what it cannot hand over).
    pub fn stop_dovecot(&mut self) {
        let gone: Vec<u32> = self.children.iter().map(Child::id).collect();
        for c in &mut self.children {
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        let kept: String = read_pgids(&self.dir)
            .into_iter()
            .filter(|p| !gone.contains(p))
            .map(|p| format!("{p}\n"))
            .collect();
        let _ = fs::write(self.dir.join("pgids"), kept);
        // Dovecot's ports are free once its processes are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        let p = self.ports;
        while [p.imap, p.imaps, p.imaps_mtls, p.lmtp].iter().any(|&port| {
            TcpStream::connect_timeout(
                &SocketAddr::from((self.opts.host, port)),
                Duration::from_millis(200),
            )
            .is_ok()
        }) {
            assert!(
                Instant::now() < deadline,
                "Dovecot still answers 10 s after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts both Dovecot instances again on the same ports and mailboxes, after
    /// [`MailServer::stop_dovecot`]; returns once their ports answer.
    pub fn start_dovecot(&mut self) {
        assert!(
            self.children.is_empty(),
            "start_dovecot: Dovecot is already running (call stop_dovecot first)"
        );
        let dovecot = find_binary("dovecot");
        let d = self.dir.clone();
        for tag in ["main", "mtls"] {
            let log = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(d.join(format!("dovecot/{tag}/stderr.log")))
                .expect("open Dovecot's stderr log");
            let child = Command::new(&dovecot)
                .arg("-F")
                .arg("-c")
                .arg(d.join(format!("dovecot/{tag}/dovecot.conf")))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("run dovecot again");
            append_pgid(&d, child.id());
            self.children.push(child);
        }
        let p = self.ports;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pending = vec![p.imap, p.imaps, p.imaps_mtls, p.lmtp, p.auth];
        while !pending.is_empty() {
            for c in &mut self.children {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("dovecot exited on restart ({status})\n{}", self.logs());
                }
            }
            pending.retain(|&port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((self.opts.host, port)),
                    Duration::from_millis(200),
                )
                .is_err()
            });
            assert!(
                pending.is_empty() || Instant::now() < deadline,
                "Dovecot ports {pending:?} not open 20 s after restart\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`MailServer::stop_dovecot`] then [`MailServer::start_dovecot`].
    pub fn restart_dovecot(&mut self) {
        self.stop_dovecot();
        self.start_dovecot();
    }

    /// Stops every daemon and deletes the directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.kill_daemons();
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin); // the watchdog kills what is left and removes the directory
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        release_ports(&self.ports);
    }

    fn kill_daemons(&mut self) {
        for g in read_pgids(&self.dir) {
            kill_group(g);
        }
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::write(self.dir.join("pgids"), "");
    }

    fn write_configs(&self) {
        let d = &self.dir;
        let o = &self.opts;
        for sub in [
            "dovecot/main",
            "dovecot/mtls",
            "postfix/etc",
            "postfix/spool",
        ] {
            fs::create_dir_all(d.join(sub)).expect("create config dirs");
        }
        let uid = self.mail_uid;
        let mut users = String::new();
        let mut external = String::new();
        let mut vmailbox = String::new();
        for u in &o.users {
            let home = d.join("mail").join(&o.domain).join(u);
            fs::create_dir_all(&home).expect("create a mailbox home");
            // passwd-file: user:password:uid:gid:gecos:home:shell:extra_fields
            let _ = writeln!(
                users,
                "{u}@{dom}:{{PLAIN}}{pw}:{uid}:{uid}::{home}::",
                dom = o.domain,
                pw = o.password,
                home = home.display()
            );
            // SASL EXTERNAL on the mTLS instance: the certificate authenticates, no password.
            let _ = writeln!(external, "{u}@{}::::::nopassword", o.domain);
            let _ = writeln!(vmailbox, "{u}@{} OK", o.domain);
        }
        chown_tree(&d.join("mail"), uid);
        let users_file = d.join("dovecot/users");
        write_file(&users_file, &users);
        write_file(&d.join("dovecot/passdb-plain"), &users);
        write_file(&d.join("dovecot/passdb-login"), &users);
        write_file(&d.join("dovecot/passdb-external"), &external);
        write_file(
            &d.join("dovecot/main/dovecot.conf"),
            &self.dovecot_conf(false),
        );
        write_file(
            &d.join("dovecot/mtls/dovecot.conf"),
            &self.dovecot_conf(true),
        );

        if o.postfix {
            let etc = d.join("postfix/etc");
            let mut ccert = String::new();
            for c in self.pki.clients.values().filter(|c| !c.revoked) {
                let _ = writeln!(ccert, "{} OK", c.sha256_fingerprint);
            }
            write_file(&etc.join("vmailbox"), &vmailbox);
            write_file(&etc.join("ccert_access"), &ccert);
            write_file(&etc.join("main.cf"), &self.postfix_main_cf());
            write_file(&etc.join("master.cf"), &self.postfix_master_cf());
            // Postfix re-reads a config file every 300 ms until its mtime is in the past:
            // back-date them or every postconf run during start-up sleeps.
            let past = SystemTime::now() - Duration::from_secs(60);
            for f in ["main.cf", "master.cf", "vmailbox", "ccert_access"] {
                let file = fs::File::options()
                    .write(true)
                    .open(etc.join(f))
                    .expect("open postfix config");
                file.set_modified(past).expect("back-date postfix config");
            }
        }
    }

    fn dovecot_conf(&self, mtls: bool) -> String {
        let d = self.dir.display();
        let o = &self.opts;
        let p = &self.ports;
        let tag = if mtls { "mtls" } else { "main" };
        let host = o.host;
        let mut c = String::new();
        let _ = writeln!(
            c,
            "# generated by relais_testsupport::mailserver ({tag} instance); reads nothing from /etc/dovecot"
        );
        let _ = writeln!(c, "instance_name = relais-test-{tag}-{}", p.imap);
        let _ = writeln!(c, "base_dir = {d}/dovecot/{tag}/run");
        let _ = writeln!(c, "state_dir = {d}/dovecot/{tag}/state");
        let _ = writeln!(c, "log_path = {d}/dovecot/{tag}/dovecot.log");
        let _ = writeln!(c, "info_log_path = {d}/dovecot/{tag}/dovecot.log");
        let _ = writeln!(c, "listen = {host}");
        let _ = writeln!(c, "shutdown_clients = yes");
        let _ = writeln!(c, "first_valid_uid = 100");
        let _ = writeln!(c, "ssl = required");
        let _ = writeln!(c, "ssl_cert = <{}", self.pki.server_chain.display());
        let _ = writeln!(c, "ssl_key = <{}", self.pki.server_key.display());
        if Path::new(DH_FILE).exists() {
            let _ = writeln!(c, "ssl_dh = <{DH_FILE}");
        }
        let _ = writeln!(c, "ssl_min_protocol = TLSv1.2");
        // CA certificates + CRLs to verify client certificates (ssl_require_crl = yes).
        let _ = writeln!(c, "ssl_ca = <{}", self.pki.client_ca_with_crls.display());
        let _ = writeln!(c, "disable_plaintext_auth = yes");
        let _ = writeln!(c, "auth_username_format = %Lu");
        let _ = writeln!(c, "auth_failure_delay = 0");
        if mtls {
            let _ = writeln!(c, "auth_mechanisms = plain login external");
            // One passdb file per SASL mechanism: EXTERNAL needs no password, PLAIN/LOGIN do.
            let _ = writeln!(
                c,
                "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/dovecot/passdb-%Lm\n}}"
            );
        } else {
            let _ = writeln!(c, "auth_mechanisms = plain login");
            let _ = writeln!(
                c,
                "passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/dovecot/users\n}}"
            );
        }
        let _ = writeln!(
            c,
            "userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/dovecot/users\n}}"
        );
        c.push_str(
            "mail_location = maildir:~/Maildir\n\
             namespace inbox {\n  inbox = yes\n  separator = /\n\
             \x20 mailbox Sent {\n    special_use = \\Sent\n    auto = create\n  }\n\
             \x20 mailbox Trash {\n    special_use = \\Trash\n    auto = create\n  }\n}\n\
             mail_fsync = never\n\
             mail_max_userip_connections = 200\n\
             imap_idle_notify_interval = 2 mins\n",
        );
        if !o.imap_without.is_empty() {
            let caps: Vec<&str> = DOVECOT_IMAP_CAPABILITIES
                .split_whitespace()
                .filter(|cap| !o.imap_without.iter().any(|w| w.eq_ignore_ascii_case(cap)))
                .collect();
            let _ = writeln!(
                c,
                "protocol imap {{\n  imap_capability = {}\n}}",
                caps.join(" ")
            );
        }
        if mtls {
            let _ = writeln!(c, "protocols = imap");
            let _ = writeln!(c, "ssl_verify_client_cert = yes");
            let _ = writeln!(c, "auth_ssl_require_client_cert = yes");
            // The certificate's CN is the login name (needed by EXTERNAL; it also replaces the
            // name given to LOGIN/PLAIN on this instance).
            let _ = writeln!(c, "auth_ssl_username_from_cert = yes");
            let _ = writeln!(c, "ssl_cert_username_field = commonName");
            let _ = writeln!(
                c,
                "service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  \
                 inet_listener imaps {{\n    address = {host}\n    port = {}\n    ssl = yes\n  }}\n}}",
                p.imaps_mtls
            );
        } else {
            let _ = writeln!(c, "protocols = imap lmtp");
            let _ = writeln!(
                c,
                "service imap-login {{\n  inet_listener imap {{\n    address = {host}\n    port = {}\n  }}\n  \
                 inet_listener imaps {{\n    address = {host}\n    port = {}\n    ssl = yes\n  }}\n}}",
                p.imap, p.imaps
            );
            let _ = writeln!(
                c,
                "service lmtp {{\n  inet_listener lmtp {{\n    address = {host}\n    port = {}\n  }}\n}}",
                p.lmtp
            );
            let _ = writeln!(
                c,
                "service auth {{\n  inet_listener sasl {{\n    address = {host}\n    port = {}\n  }}\n}}",
                p.auth
            );
            let _ = writeln!(
                c,
                "protocol lmtp {{\n  postmaster_address = postmaster@{}\n}}",
                o.domain
            );
        }
        c
    }

    fn postfix_main_cf(&self) -> String {
        let d = self.dir.display();
        let o = &self.opts;
        let p = &self.ports;
        let host = o.host;
        let dom = &o.domain;
        let pki = &self.pki;
        // main.cf allows comments only on lines of their own.
        format!(
            "# generated by relais_testsupport::mailserver
compatibility_level = 3.6
queue_directory = {d}/postfix/spool
data_directory = {d}/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/postfix/maillog
maillog_file_prefixes = {d}/postfix
syslog_name = postfix-relais-test
myhostname = mail.{dom}
mydomain = {dom}
myorigin = $mydomain
mydestination =
# must be an address configured on an interface; services bind {host} in master.cf
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
# nothing ever leaves the machine
default_transport = error:5.7.1 outbound delivery disabled on this test server
relay_transport = error:5.7.1 outbound delivery disabled on this test server
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
virtual_mailbox_domains = {dom}
virtual_mailbox_maps = texthash:{d}/postfix/etc/vmailbox
virtual_transport = lmtp:inet:{host}:{lmtp}
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
message_size_limit = 104857600
mailbox_size_limit = 0
in_flow_delay = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 30s
lmtp_destination_concurrency_limit = 10
smtpd_tls_chain_files = {key}, {chain}
smtpd_tls_security_level = may
smtpd_tls_CAfile = {client_ca}
smtpd_tls_received_header = yes
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2
# Postfix does not check CRLs: the mTLS port allows the valid client certificates' fingerprints
smtpd_tls_fingerprint_digest = sha256
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{host}:{auth}
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes
",
            lmtp = p.lmtp,
            auth = p.auth,
            key = pki.server_key.display(),
            chain = pki.server_chain.display(),
            client_ca = pki.client_ca.display(),
        )
    }

    fn postfix_master_cf(&self) -> String {
        let d = self.dir.display();
        let p = &self.ports;
        let h = self.opts.host;
        format!(
            "# service type private unpriv chroot wakeup maxproc command
{h}:{smtp} inet n - n - - smtpd
{h}:{sub} inet n - n - - smtpd
  -o syslog_name=postfix-relais-test/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{h}:{mtls} inet n - n - - smtpd
  -o syslog_name=postfix-relais-test/mtls
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_req_ccert=yes
  -o smtpd_client_restrictions=check_ccert_access,texthash:{d}/postfix/etc/ccert_access,reject
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
",
            smtp = p.smtp,
            sub = p.submission,
            mtls = p.smtp_mtls,
        )
    }

    /// Starts the daemons and waits for their ports. Err carries the reason and the logs.
    fn launch(&mut self, bins: &Binaries) -> Result<(), String> {
        let d = self.dir.clone();
        let mut postfix = None;
        if self.opts.postfix {
            let log = fs::File::create(d.join("postfix/start.log")).map_err(|e| e.to_string())?;
            let child = Command::new(bins.postfix.as_ref().expect("postfix path"))
                .arg("-c")
                .arg(d.join("postfix/etc"))
                .arg("start")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run postfix: {e}"))?;
            postfix = Some(child);
        }
        for tag in ["main", "mtls"] {
            let log = fs::File::create(d.join(format!("dovecot/{tag}/stderr.log")))
                .map_err(|e| e.to_string())?;
            // Dovecot keeps its inherited stdio open forever: never give it a pipe.
            let child = Command::new(&bins.dovecot)
                .arg("-F")
                .arg("-c")
                .arg(d.join(format!("dovecot/{tag}/dovecot.conf")))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot run dovecot: {e}"))?;
            append_pgid(&d, child.id());
            self.children.push(child);
        }
        if let Some(mut child) = postfix {
            let status = child.wait().map_err(|e| e.to_string())?;
            // The master daemon detached (own session): its pid is its process group.
            let pid_file = d.join("postfix/spool/pid/master.pid");
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                append_pgid(&d, pid);
            }
            if !status.success() {
                return Err(format!("postfix start failed ({status})\n{}", self.logs()));
            }
        }
        let p = self.ports;
        let mut ports = vec![p.imap, p.imaps, p.imaps_mtls, p.lmtp, p.auth];
        if self.opts.postfix {
            ports.extend([p.smtp, p.submission, p.smtp_mtls]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pending = ports;
        while !pending.is_empty() {
            for c in &mut self.children {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("dovecot exited ({status})\n{}", self.logs()));
                }
            }
            pending.retain(|&port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((self.opts.host, port)),
                    Duration::from_millis(200),
                )
                .is_err()
            });
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ports {pending:?} not open after 10 s\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for MailServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailServer")
            .field("dir", &self.dir)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

struct Binaries {
    dovecot: PathBuf,
    postfix: Option<PathBuf>,
}

impl Binaries {
    fn find(postfix: bool) -> Binaries {
        let dovecot = find_binary("dovecot");
        if !Path::new("/usr/lib/dovecot/lmtp").exists() {
            panic!(
                "Dovecot's LMTP server (/usr/lib/dovecot/lmtp, package dovecot-lmtpd) is missing: \
                 install the test prerequisites with `bash tests/setup.sh`"
            );
        }
        Binaries {
            dovecot,
            postfix: postfix.then(|| find_binary("postfix")),
        }
    }
}

/// Finds a daemon binary in the usual sbin directories and PATH; panics naming the setup script.
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
        "`{name}` not found (looked in /usr/sbin, /usr/bin and PATH): the mail server tests need \
         Dovecot and Postfix; install the test prerequisites with `bash tests/setup.sh`"
    );
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
                "{} is not world-traversable, so the mail daemons cannot reach {}: \
                 set TMPDIR to a directory under /tmp",
                anc.display(),
                dir.display()
            );
        }
    }
}

fn chown_tree(root: &Path, uid: u32) {
    let _ = std::os::unix::fs::chown(root, Some(uid), Some(uid));
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                chown_tree(&path, uid);
            } else {
                let _ = std::os::unix::fs::chown(&path, Some(uid), Some(uid));
            }
        }
    }
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn local_part(user: &str) -> &str {
    user.split('@').next().unwrap_or(user)
}

fn append_pgid(dir: &Path, pgid: u32) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("pgids"))
        .expect("open pgids file");
    let _ = writeln!(f, "{pgid}");
}

fn read_pgids(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("pgids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p| p > 1)
        .collect()
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A shell that waits for EOF on its stdin (held only by this process), then kills the daemons'
/// process groups listed in `pgids` and removes the directory.
fn spawn_watchdog(dir: &Path) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"cat >/dev/null
for g in $(cat "$1/pgids" 2>/dev/null); do kill -KILL "-$g" 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do
  rm -rf "$1" 2>/dev/null
  [ -e "$1" ] || break
  sleep 0.1
done
"#;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("relais-mail-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the mail server watchdog (/bin/sh)");
    let stdin = child.stdin.take().expect("watchdog stdin");
    (child, stdin)
}

fn reserve_ports(host: Ipv4Addr) -> Ports {
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
        // Below the ephemeral range (32768+), so no outgoing connection holds them.
        let base = 10000 + (seed % 22000) as u16;
        let candidates: Vec<u16> = (base..base + NPORTS).collect();
        if candidates.iter().any(|p| reserved.contains(p)) {
            continue;
        }
        if candidates
            .iter()
            .all(|&p| TcpListener::bind((host, p)).is_ok())
        {
            reserved.extend(candidates.iter().copied());
            return Ports {
                imap: base,
                imaps: base + 1,
                imaps_mtls: base + 2,
                lmtp: base + 3,
                smtp: base + 4,
                submission: base + 5,
                smtp_mtls: base + 6,
                auth: base + 7,
            };
        }
    }
    panic!("no {NPORTS} consecutive free ports found on {host} between 10000 and 32000");
}

fn release_ports(p: &Ports) {
    let mut guard = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = guard.as_mut() {
        let base = p.imap;
        for port in base..base + NPORTS {
            set.remove(&port);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Smtp,
    Lmtp,
}

/// A minimal SMTP/LMTP client: one message, plain TCP.
fn smtp_session(
    addr: SocketAddr,
    dialect: Dialect,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut w = stream;
    let expect = |reader: &mut BufReader<TcpStream>, code: char, what: &str| {
        let reply = read_reply(reader)?;
        if reply.starts_with(code) {
            Ok(())
        } else {
            Err(format!("{what}: {}", reply.trim_end()))
        }
    };
    expect(&mut reader, '2', "greeting")?;
    let hello = if dialect == Dialect::Lmtp {
        "LHLO"
    } else {
        "EHLO"
    };
    let send = |w: &mut TcpStream, line: &str| {
        w.write_all(line.as_bytes())
            .and_then(|_| w.write_all(b"\r\n"))
            .map_err(|e| format!("write: {e}"))
    };
    send(&mut w, &format!("{hello} client.test"))?;
    expect(&mut reader, '2', hello)?;
    send(&mut w, &format!("MAIL FROM:<{from}>"))?;
    expect(&mut reader, '2', "MAIL FROM")?;
    for rcpt in to {
        send(&mut w, &format!("RCPT TO:<{rcpt}>"))?;
        expect(&mut reader, '2', "RCPT TO")?;
    }
    send(&mut w, "DATA")?;
    expect(&mut reader, '3', "DATA")?;
    w.write_all(&dot_stuff(raw))
        .map_err(|e| format!("write: {e}"))?;
    let replies = if dialect == Dialect::Lmtp {
        to.len()
    } else {
        1
    };
    for _ in 0..replies {
        expect(&mut reader, '2', "end of DATA")?;
    }
    let _ = send(&mut w, "QUIT");
    Ok(())
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {all:?}"));
        }
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return Ok(all);
        }
    }
}

/// CRLF line ends, dot-stuffing, and the final `.` line.
fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\n.b\nc"), b"a\r\n..b\r\nc\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    }
}
