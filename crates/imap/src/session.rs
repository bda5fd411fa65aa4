//! Connecting (with the step-by-step report) and the mailbox operations the engine needs.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_imap::error::Error as RawError;
use async_imap::types::UnsolicitedResponse;
use futures_util::TryStreamExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{Auth, ImapConfig, Security, Timeouts};
use crate::error::{ImapError, TlsProblem};
use crate::mutf7;
use crate::report::{ConnectionReport, StepKind, StepStatus};
use crate::tls::{self, Probe, TlsSetup};

type Stream = tokio_rustls::client::TlsStream<TcpStream>;
type Inner = async_imap::Session<Stream>;

/// What the server can do, as far as this client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerCapabilities {
    /// IDLE (RFC 2177): push notification of new mail.
    pub idle: bool,
    /// MOVE (RFC 6851): atomic move.
    pub move_command: bool,
    /// UIDPLUS (RFC 4315): `UID EXPUNGE` of one message only.
    pub uidplus: bool,
}

/// The selected mailbox's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    /// UIDVALIDITY: UIDs remembered under another value are meaningless.
    pub uid_validity: u32,
    /// The UID the next message will get, when the server says.
    pub uid_next: Option<u32>,
    /// Number of messages.
    pub exists: u32,
}

/// How [`Session::idle`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server reported a change (new message, expunge, flags): look for new UIDs.
    NewData,
    /// Nothing happened within the time limit: the caller re-IDLEs (at least every 25 minutes,
    /// servers drop IDLE after 30).
    Timeout,
}

/// How [`Session::move_to`] moved a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveMethod {
    /// `UID MOVE`.
    Move,
    /// `UID COPY`, `UID STORE +FLAGS (\Deleted)`, `UID EXPUNGE` (UIDPLUS).
    CopyStoreExpunge,
    /// `UID COPY` and `UID STORE +FLAGS (\Deleted)` only: without UIDPLUS an `EXPUNGE` would also
    /// remove other clients' deleted messages, so the original is left flagged `\Deleted`.
    CopyStoreFlagged,
}

/// An authenticated IMAP connection to one mailbox.
pub struct Session {
    inner: Option<Inner>,
    capabilities: ServerCapabilities,
    timeouts: Timeouts,
    mailbox: String,
    max_message_bytes: u32,
    quarantine_folder: String,
    selected: Option<MailboxStatus>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("usable", &self.inner.is_some())
            .field("capabilities", &self.capabilities)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

/// Connects, secures the connection and logs in. The mailbox is not selected yet.
pub async fn connect(cfg: &ImapConfig) -> Result<Session, ImapError> {
    let mut report = ConnectionReport::default();
    establish(cfg, &mut report).await
}

/// Like [`connect`], and also returns the step-by-step report.
pub async fn connect_with_report(
    cfg: &ImapConfig,
) -> (Result<Session, ImapError>, ConnectionReport) {
    let mut report = ConnectionReport::default();
    let r = establish(cfg, &mut report).await;
    (r, report)
}

/// Tries everything `relais test-connection` checks: connection, TLS (server chain, client
/// certificate), login, capabilities, selecting the mailbox, presence of the processed and
/// quarantine folders (not created). Never fails: the report says which step did and why.
pub async fn test_connection(cfg: &ImapConfig) -> ConnectionReport {
    let mut report = ConnectionReport::default();
    let Ok(mut session) = establish(cfg, &mut report).await else {
        return report;
    };
    let t = Instant::now();
    match session.select().await {
        Ok(st) => report.push(
            StepKind::Select,
            StepStatus::Ok,
            format!(
                "{:?} selected: {} message(s), UIDVALIDITY {}, UIDNEXT {}",
                cfg.mailbox,
                st.exists,
                st.uid_validity,
                st.uid_next.map_or("unknown".into(), |u| u.to_string())
            ),
            t.elapsed(),
        ),
        Err(e) => {
            report.fail(StepKind::Select, &e, t.elapsed());
            let _ = session.logout().await;
            return report;
        }
    }
    let t = Instant::now();
    let mut missing = Vec::new();
    let mut failure = None;
    for folder in [&cfg.processed_folder, &cfg.quarantine_folder] {
        match session.folder_exists(folder).await {
            Ok(true) => {}
            Ok(false) => missing.push(folder.clone()),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    match failure {
        Some(e) => report.fail(StepKind::Folders, &e, t.elapsed()),
        None if missing.is_empty() => report.push(
            StepKind::Folders,
            StepStatus::Ok,
            format!(
                "{:?} and {:?} exist",
                cfg.processed_folder, cfg.quarantine_folder
            ),
            t.elapsed(),
        ),
        None => report.push(
            StepKind::Folders,
            StepStatus::Warning,
            format!("{missing:?} missing: created on first use"),
            t.elapsed(),
        ),
    }
    let _ = session.logout().await;
    report
}

async fn timed<T, E>(
    limit: Duration,
    phase: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, ImapError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ImapError::Timeout {
            phase,
            after: limit,
        })
}

/// Maps an async-imap error of a phase where the TLS session may report an alert.
fn map_raw(e: RawError, during: &'static str, probe: &Probe, name: &str) -> ImapError {
    match e {
        RawError::Io(io) => match tls::rustls_error(&io) {
            Some(re) => {
                let (problem, detail) = tls::explain(re, probe, name);
                ImapError::Tls { problem, detail }
            }
            None => ImapError::ConnectionLost {
                during,
                reason: io.to_string(),
            },
        },
        RawError::No(server) | RawError::Bad(server) => ImapError::Command {
            command: during,
            server: server_text(&server),
        },
        RawError::ConnectionLost => ImapError::ConnectionLost {
            during,
            reason: "the server closed the connection".into(),
        },
        RawError::Validate(v) => ImapError::Config {
            reason: format!("{during}: an argument holds a character IMAP cannot carry ({v})"),
        },
        other => ImapError::Protocol {
            during,
            detail: other.to_string(),
        },
    }
}

/// Reads the server greeting; Err when it is not `* OK`.
async fn read_greeting<T>(
    client: &mut async_imap::Client<T>,
    limit: Duration,
    probe: &Probe,
    name: &str,
) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    use async_imap::imap_proto::{Response, Status};
    let resp = timed(limit, "server greeting", client.read_response())
        .await?
        .map_err(|e| map_raw(RawError::Io(e), "server greeting", probe, name))?
        .ok_or(ImapError::ConnectionLost {
            during: "server greeting",
            reason: "closed before the greeting".into(),
        })?;
    match resp.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        Response::Data { status, outcome } => Err(ImapError::Greeting {
            server: format!(
                "{status:?} {}",
                outcome.information.as_deref().unwrap_or_default()
            ),
        }),
        other => Err(ImapError::Protocol {
            during: "server greeting",
            detail: format!("unexpected greeting {other:?}"),
        }),
    }
}

struct External(String);

impl async_imap::Authenticator for External {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.clone()
    }
}

/// The whole connection sequence, each step recorded in `report`.
async fn establish(cfg: &ImapConfig, report: &mut ConnectionReport) -> Result<Session, ImapError> {
    macro_rules! step {
        ($kind:expr, $t:expr, $r:expr) => {
            match $r {
                Ok(v) => v,
                Err(e) => {
                    report.fail($kind, &e, $t.elapsed());
                    return Err(e);
                }
            }
        };
    }
    let to = cfg.timeouts;

    // Configuration.
    let t = Instant::now();
    if matches!(cfg.auth, Auth::External { .. }) && cfg.client_cert.is_none() {
        step!(
            StepKind::Configuration,
            t,
            Err(ImapError::Config {
                reason: "auth = External needs client_cert (the certificate is the credential)"
                    .into()
            })
        );
    }
    let setup = step!(StepKind::Configuration, t, TlsSetup::new(cfg));
    report.push(
        StepKind::Configuration,
        StepStatus::Ok,
        format!(
            "{} trusted CA certificate(s) from {} file(s); client certificate: {}",
            setup.trusted_cas,
            cfg.ca_pem_files.len(),
            match setup.client_chain_len {
                Some(n) => format!("chain of {n} certificate(s) with a matching key"),
                None => "none configured".into(),
            }
        ),
        t.elapsed(),
    );
    let name = cfg.tls_server_name.as_deref().unwrap_or(&cfg.host);
    let probe = setup.probe.clone();

    // TCP.
    let t = Instant::now();
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = step!(
        StepKind::Tcp,
        t,
        timed(
            to.connect,
            "TCP connection",
            TcpStream::connect((cfg.host.as_str(), cfg.port))
        )
        .await
        .and_then(|r| r.map_err(|e| ImapError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        }))
    );
    let _ = tcp.set_nodelay(true);
    report.push(
        StepKind::Tcp,
        StepStatus::Ok,
        format!(
            "connected to {}",
            tcp.peer_addr().map_or(addr.clone(), |a| a.to_string())
        ),
        t.elapsed(),
    );

    // STARTTLS: greeting and command in clear, nothing else.
    let tcp = match cfg.security {
        Security::Tls => tcp,
        Security::StartTls => {
            let t = Instant::now();
            let mut client = async_imap::Client::new(tcp);
            step!(
                StepKind::Greeting,
                t,
                read_greeting(&mut client, to.handshake, &probe, name).await
            );
            report.push(
                StepKind::Greeting,
                StepStatus::Ok,
                "server greeting OK",
                t.elapsed(),
            );
            let t = Instant::now();
            let r = timed(
                to.handshake,
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await;
            step!(
                StepKind::StartTls,
                t,
                r.and_then(|r| r.map_err(|e| match e {
                    RawError::No(server) | RawError::Bad(server) => ImapError::StartTlsRefused {
                        server: server_text(&server)
                    },
                    other => map_raw(other, "STARTTLS", &probe, name),
                }))
            );
            report.push(
                StepKind::StartTls,
                StepStatus::Ok,
                "STARTTLS accepted",
                t.elapsed(),
            );
            // Anything the server sent after its STARTTLS answer is discarded with the client.
            client.into_inner()
        }
    };

    // TLS handshake and certificate checks.
    let t = Instant::now();
    let connector = TlsConnector::from(setup.config.clone());
    let handshake = timed(
        to.handshake,
        "TLS handshake",
        connector.connect(setup.server_name.clone(), tcp),
    )
    .await;
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(io)) => {
            let err = match tls::rustls_error(&io) {
                Some(re) => {
                    let (problem, detail) = tls::explain(re, &probe, name);
                    ImapError::Tls { problem, detail }
                }
                None => ImapError::Tls {
                    problem: TlsProblem::Other,
                    detail: format!(
                        "TLS handshake failed: {io}; is this a TLS port (security = Tls on 993, StartTls on 143)?"
                    ),
                },
            };
            let kind = match &err {
                ImapError::Tls {
                    problem: TlsProblem::ClientCertificateRefused,
                    ..
                } => StepKind::ClientCertificate,
                _ if lock_some(&probe.verify_error) => StepKind::ServerCertificate,
                _ => StepKind::TlsHandshake,
            };
            report.fail(kind, &err, t.elapsed());
            return Err(err);
        }
        Err(e) => {
            report.fail(StepKind::TlsHandshake, &e, t.elapsed());
            return Err(e);
        }
    };
    {
        let conn = stream.get_ref().1;
        report.push(
            StepKind::TlsHandshake,
            StepStatus::Ok,
            format!(
                "{}, {}",
                conn.protocol_version()
                    .map_or("unknown version".into(), |v| format!("{v:?}")),
                conn.negotiated_cipher_suite()
                    .map_or("unknown cipher".into(), |c| format!("{:?}", c.suite()))
            ),
            t.elapsed(),
        );
        let chain = probe
            .server_chain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (n, fp) = chain.unwrap_or((0, String::new()));
        report.push(
            StepKind::ServerCertificate,
            StepStatus::Ok,
            format!(
                "chain of {n} certificate(s) verified against ca_pem_files for {name:?} \
                 (server certificate SHA-256 {fp})"
            ),
            Duration::ZERO,
        );
        let requested = probe.client_cert_requested.load(Ordering::SeqCst);
        let sent = probe.client_cert_sent.load(Ordering::SeqCst);
        let (status, msg) = match (requested, sent, cfg.client_cert.is_some()) {
            (true, true, _) => (
                StepStatus::Ok,
                "requested by the server and sent".to_string(),
            ),
            (true, false, true) => (
                StepStatus::Warning,
                "requested by the server, but the configured key type is not among the algorithms it accepts: not sent".into(),
            ),
            (true, false, false) => (
                StepStatus::Warning,
                "requested by the server, none configured (the server may refuse the login)".into(),
            ),
            (false, _, true) => (
                StepStatus::Warning,
                "configured, but the server did not ask for it: not sent".into(),
            ),
            (false, _, false) => (
                StepStatus::Ok,
                "not requested by the server, none configured".into(),
            ),
        };
        report.push(StepKind::ClientCertificate, status, msg, Duration::ZERO);
    }

    // Greeting (implicit TLS).
    let mut client = async_imap::Client::new(stream);
    if cfg.security == Security::Tls {
        let t = Instant::now();
        let r = read_greeting(&mut client, to.handshake, &probe, name).await;
        let kind = match &r {
            Err(ImapError::Tls {
                problem: TlsProblem::ClientCertificateRefused,
                ..
            }) => StepKind::ClientCertificate,
            _ => StepKind::Greeting,
        };
        step!(kind, t, r);
        report.push(
            StepKind::Greeting,
            StepStatus::Ok,
            "server greeting OK",
            t.elapsed(),
        );
    }

    // Login.
    let t = Instant::now();
    let user = cfg.auth.display_user();
    let (login, mech) = match &cfg.auth {
        Auth::Password { user, password } => (
            timed(to.handshake, "LOGIN", client.login(user, password)).await,
            "LOGIN",
        ),
        Auth::External { authzid } => (
            timed(
                to.handshake,
                "AUTHENTICATE EXTERNAL",
                client.authenticate("EXTERNAL", External(authzid.clone().unwrap_or_default())),
            )
            .await,
            "AUTHENTICATE EXTERNAL",
        ),
    };
    let has_cert = cfg.client_cert.is_some();
    let mut inner = step!(
        StepKind::Login,
        t,
        login.and_then(|r| r.map_err(|(e, _client)| match e {
            RawError::No(server) | RawError::Bad(server)
                if server.to_ascii_lowercase().contains("certificate") =>
            {
                ImapError::ClientCertificateRequired {
                    server: server_text(&server),
                    hint: if has_cert {
                        "the configured client certificate was not accepted: check that it is \
                         valid, not revoked and issued by an IGC-Santé CA the server trusts"
                    } else {
                        "set client_cert to the mailbox's IGC-Santé certificate and key"
                    },
                }
            }
            RawError::No(server) | RawError::Bad(server) => ImapError::AuthFailed {
                user: user.clone(),
                server: server_text(&server),
            },
            other => map_raw(other, mech, &probe, name),
        }))
    );
    report.push(
        StepKind::Login,
        StepStatus::Ok,
        format!("authenticated as {user} ({mech})"),
        t.elapsed(),
    );

    // Capabilities.
    let t = Instant::now();
    let caps = step!(
        StepKind::Capabilities,
        t,
        timed(to.command, "CAPABILITY", inner.capabilities())
            .await
            .and_then(|r| r.map_err(|e| map_raw(e, "CAPABILITY", &probe, name)))
    );
    let capabilities = ServerCapabilities {
        idle: caps.has_str("IDLE"),
        move_command: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
    };
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut msg = format!(
        "IDLE {}, MOVE {}, UIDPLUS {}",
        yes_no(capabilities.idle),
        yes_no(capabilities.move_command),
        yes_no(capabilities.uidplus)
    );
    let mut status = StepStatus::Ok;
    if !capabilities.idle {
        status = StepStatus::Warning;
        msg.push_str("; without IDLE new mail is found by polling only");
    }
    if !capabilities.move_command && !capabilities.uidplus {
        status = StepStatus::Warning;
        msg.push_str(
            "; without MOVE nor UIDPLUS moved mails stay flagged \\Deleted until the server expunges them",
        );
    }
    report.push(StepKind::Capabilities, status, msg, t.elapsed());
    tracing::debug!(host = %cfg.host, port = cfg.port, ?capabilities, "IMAP session open");

    Ok(Session {
        inner: Some(inner),
        capabilities,
        timeouts: to,
        mailbox: cfg.mailbox.clone(),
        max_message_bytes: cfg.max_message_bytes,
        quarantine_folder: cfg.quarantine_folder.clone(),
        selected: None,
    })
}

/// The server's words from async-imap's `code: Some(Alert), info: Some("...")` rendering, as
/// `[ALERT] ...`.
fn server_text(raw: &str) -> String {
    let Some(rest) = raw.strip_prefix("code: ") else {
        return raw.to_string();
    };
    let Some((code, info)) = rest.split_once(", info: ") else {
        return raw.to_string();
    };
    let mut out = String::new();
    if let Some(inner) = code.strip_prefix("Some(") {
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !name.is_empty() {
            out.push('[');
            out.push_str(&name.to_ascii_uppercase());
            out.push_str("] ");
        }
    }
    match info
        .strip_prefix("Some(\"")
        .and_then(|i| i.strip_suffix("\")"))
    {
        Some(text) => out.push_str(&text.replace("\\\"", "\"").replace("\\\\", "\\")),
        None => out.push_str("(no text)"),
    }
    out
}

fn lock_some<T>(m: &std::sync::Mutex<Option<T>>) -> bool {
    m.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Maps a session command's error (no TLS probe needed any more).
fn map_cmd(e: RawError, during: &'static str) -> ImapError {
    map_raw(e, during, &Probe::default(), "")
}

impl Session {
    /// What the server supports.
    pub fn capabilities(&self) -> ServerCapabilities {
        self.capabilities
    }

    /// Where mails Relais will not take are moved (`ImapConfig::quarantine_folder`).
    pub fn quarantine_folder(&self) -> &str {
        &self.quarantine_folder
    }

    /// The state found by the last [`Session::select`].
    pub fn selected(&self) -> Option<MailboxStatus> {
        self.selected
    }

    fn take(&mut self) -> Result<Inner, ImapError> {
        self.inner.take().ok_or(ImapError::SessionBroken)
    }

    /// Puts the connection back unless the failure left it in an unknown state.
    fn settle<T>(
        &mut self,
        inner: Inner,
        r: Result<Result<T, RawError>, ImapError>,
        during: &'static str,
    ) -> Result<T, ImapError> {
        match r {
            Ok(Ok(v)) => {
                self.inner = Some(inner);
                Ok(v)
            }
            Ok(Err(e @ (RawError::No(_) | RawError::Bad(_) | RawError::Validate(_)))) => {
                self.inner = Some(inner);
                Err(map_cmd(e, during))
            }
            Ok(Err(e)) => {
                self.selected = None;
                Err(map_cmd(e, during))
            }
            Err(timeout) => {
                self.selected = None;
                Err(timeout)
            }
        }
    }

    fn require_selected(&self) -> Result<(), ImapError> {
        if self.inner.is_none() {
            return Err(ImapError::SessionBroken);
        }
        if self.selected.is_none() {
            return Err(ImapError::NotSelected);
        }
        Ok(())
    }

    /// Selects the configured mailbox (read-write) and returns its UIDVALIDITY, UIDNEXT and
    /// message count. Call it again after reconnecting; compare UIDVALIDITY with the stored one.
    pub async fn select(&mut self) -> Result<MailboxStatus, ImapError> {
        let mut s = self.take()?;
        let name = mutf7::encode(&self.mailbox);
        let r = timed(self.timeouts.command, "SELECT", s.select(&name)).await;
        let mb = match self.settle(s, r, "SELECT") {
            Ok(mb) => mb,
            Err(ImapError::Command { server, .. }) => {
                return Err(ImapError::Mailbox {
                    mailbox: self.mailbox.clone(),
                    server,
                });
            }
            Err(e) => return Err(e),
        };
        let uid_validity = mb.uid_validity.ok_or(ImapError::Protocol {
            during: "SELECT",
            detail: "the server sent no UIDVALIDITY (required by RFC 3501)".into(),
        })?;
        // Changes reported before this SELECT concern the previous state.
        self.drain_unsolicited();
        let status = MailboxStatus {
            uid_validity,
            uid_next: mb.uid_next,
            exists: mb.exists,
        };
        self.selected = Some(status);
        tracing::debug!(uid_validity, exists = mb.exists, "mailbox selected");
        Ok(status)
    }

    /// UIDs greater than `uid` in the selected mailbox, ascending (`uid = 0`: all of them).
    pub async fn uids_since(&mut self, uid: u32) -> Result<Vec<u32>, ImapError> {
        self.require_selected()?;
        if uid == u32::MAX {
            return Ok(Vec::new());
        }
        let query = format!("UID {}:*", uid + 1);
        let mut s = self.take()?;
        // NOOP first: servers (Dovecot among them) search the session's view of the mailbox,
        // which learns about deliveries only when a command completes.
        let r = timed(self.timeouts.command, "UID SEARCH", async {
            s.noop().await?;
            s.uid_search(&query).await
        })
        .await;
        let set = self.settle(s, r, "UID SEARCH")?;
        // "n:*" also matches the highest UID when it is below n.
        let mut uids: Vec<u32> = set.into_iter().filter(|&u| u > uid).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The whole message (`BODY.PEEK[]`: the `\Seen` flag is left alone), or `None` when no
    /// message has this UID any more. Messages above `max_message_bytes` are refused before
    /// download.
    pub async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        self.require_selected()?;
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID FETCH", async {
            let fetches: Vec<_> = s
                .uid_fetch(uid.to_string(), "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await?;
            Ok(fetches.iter().find(|f| f.uid == Some(uid)).map(|f| f.size))
        })
        .await;
        let size = match self.settle(s, r, "UID FETCH")? {
            None => return Ok(None),
            Some(size) => size,
        };
        if let Some(size) = size
            && size > self.max_message_bytes
        {
            return Err(ImapError::MessageTooLarge {
                uid,
                size,
                limit: self.max_message_bytes,
            });
        }
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID FETCH", async {
            let fetches: Vec<_> = s
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await?
                .try_collect()
                .await?;
            Ok(fetches
                .iter()
                .find(|f| f.uid == Some(uid))
                .map(|f| f.body().map(<[u8]>::to_vec)))
        })
        .await;
        match self.settle(s, r, "UID FETCH")? {
            None => Ok(None),
            Some(Some(body)) => {
                tracing::debug!(uid, bytes = body.len(), "message fetched");
                Ok(Some(body))
            }
            Some(None) => Err(ImapError::Protocol {
                during: "UID FETCH",
                detail: format!("no BODY[] in the answer for UID {uid}"),
            }),
        }
    }

    /// Several messages in two commands whatever their number (sizes, then the bodies of
    /// those within `max_message_bytes`), instead of two per message: what a fetch of one
    /// message answers, for each UID asked, in the order asked. At most
    /// [`MAX_UIDS_PER_COMMAND`] UIDs per call.
    pub async fn fetch_many(&mut self, uids: &[u32]) -> Result<Vec<(u32, Fetched)>, ImapError> {
        self.require_selected()?;
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        if uids.len() > MAX_UIDS_PER_COMMAND {
            return Err(ImapError::Protocol {
                during: "UID FETCH",
                detail: format!(
                    "{} UIDs asked at once, at most {MAX_UIDS_PER_COMMAND}",
                    uids.len()
                ),
            });
        }
        let set = uid_set(uids);
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID FETCH", async {
            let fetches: Vec<_> = s
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await?;
            Ok(fetches
                .iter()
                .filter_map(|f| Some((f.uid?, f.size)))
                .collect::<std::collections::HashMap<u32, Option<u32>>>())
        })
        .await;
        let sizes = self.settle(s, r, "UID FETCH")?;
        let wanted: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| matches!(sizes.get(u), Some(size) if size.is_none_or(|n| n <= self.max_message_bytes)))
            .collect();
        let mut bodies = std::collections::HashMap::new();
        if !wanted.is_empty() {
            let set = uid_set(&wanted);
            let mut s = self.take()?;
            let r = timed(self.timeouts.command, "UID FETCH", async {
                let fetches: Vec<_> = s
                    .uid_fetch(&set, "(UID BODY.PEEK[])")
                    .await?
                    .try_collect()
                    .await?;
                Ok(fetches
                    .iter()
                    .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
                    .collect::<std::collections::HashMap<u32, Vec<u8>>>())
            })
            .await;
            bodies = self.settle(s, r, "UID FETCH")?;
        }
        let limit = self.max_message_bytes;
        Ok(uids
            .iter()
            .map(|&uid| {
                let outcome = match (sizes.get(&uid), bodies.remove(&uid)) {
                    (_, Some(body)) => Fetched::Body(body),
                    (Some(Some(size)), None) if *size > limit => {
                        Fetched::TooLarge { size: *size, limit }
                    }
                    // Expunged between the commands, or never there.
                    _ => Fetched::Gone,
                };
                (uid, outcome)
            })
            .collect())
    }

    /// Whether a folder exists (`LIST`).
    pub async fn folder_exists(&mut self, folder: &str) -> Result<bool, ImapError> {
        let name = mutf7::encode(folder);
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "LIST", async {
            let names: Vec<_> = s.list(Some(""), Some(&name)).await?.try_collect().await?;
            Ok(names.iter().any(|n| n.name() == name))
        })
        .await;
        self.settle(s, r, "LIST")
    }

    /// Creates a folder unless it exists; true when it was created.
    pub async fn ensure_folder(&mut self, folder: &str) -> Result<bool, ImapError> {
        if self.folder_exists(folder).await? {
            return Ok(false);
        }
        let name = mutf7::encode(folder);
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "CREATE", s.create(&name)).await;
        match self.settle(s, r, "CREATE") {
            Ok(()) => {
                tracing::info!(folder, "IMAP folder created");
                Ok(true)
            }
            // Created meanwhile by another client?
            Err(e @ ImapError::Command { .. }) => {
                if self.folder_exists(folder).await? {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Moves one message of the selected mailbox to `folder` (created if missing): `UID MOVE`
    /// when the server has MOVE, else `UID COPY` + `UID STORE +FLAGS (\Deleted)` + `UID EXPUNGE`.
    /// Moving a UID that no longer exists is not an error (the move already happened).
    pub async fn move_to(&mut self, uid: u32, folder: &str) -> Result<MoveMethod, ImapError> {
        self.move_many(&[uid], folder).await
    }

    /// Moves several messages at once, as [`Session::move_to`] does one: one command (or one
    /// COPY/STORE/EXPUNGE sequence) per [`MAX_UIDS_PER_COMMAND`] UIDs instead of one per mail.
    /// Does nothing for an empty list.
    pub async fn move_many(&mut self, uids: &[u32], folder: &str) -> Result<MoveMethod, ImapError> {
        self.require_selected()?;
        let mut method = MoveMethod::Move;
        for chunk in uids.chunks(MAX_UIDS_PER_COMMAND) {
            let set = uid_set(chunk);
            method = match self.move_once(&set, folder).await {
                Err(ImapError::Command { .. }) if !self.folder_exists(folder).await? => {
                    self.ensure_folder(folder).await?;
                    self.move_once(&set, folder).await
                }
                other => other,
            }?;
        }
        Ok(method)
    }

    async fn move_once(&mut self, set: &str, folder: &str) -> Result<MoveMethod, ImapError> {
        let name = mutf7::encode(folder);
        let uids = set;
        if self.capabilities.move_command {
            let mut s = self.take()?;
            let r = timed(self.timeouts.command, "UID MOVE", s.uid_mv(set, &name)).await;
            self.settle(s, r, "UID MOVE")?;
            tracing::debug!(uids, "messages moved (MOVE)");
            return Ok(MoveMethod::Move);
        }
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID COPY", s.uid_copy(set, &name)).await;
        self.settle(s, r, "UID COPY")?;
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID STORE", async {
            s.uid_store(set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await;
        self.settle(s, r, "UID STORE")?;
        if !self.capabilities.uidplus {
            tracing::debug!(uids, "messages copied and flagged \\Deleted (no UIDPLUS)");
            return Ok(MoveMethod::CopyStoreFlagged);
        }
        let mut s = self.take()?;
        let r = timed(self.timeouts.command, "UID EXPUNGE", async {
            s.uid_expunge(set).await?.try_collect::<Vec<_>>().await
        })
        .await;
        self.settle(s, r, "UID EXPUNGE")?;
        tracing::debug!(uids, "messages moved (COPY/STORE/EXPUNGE)");
        Ok(MoveMethod::CopyStoreExpunge)
    }

    /// Drops the change notifications queued by earlier commands; true if one announced new
    /// messages (`EXISTS` / `RECENT`).
    fn drain_unsolicited(&mut self) -> bool {
        let Some(s) = self.inner.as_mut() else {
            return false;
        };
        let mut new_data = false;
        while let Ok(r) = s.unsolicited_responses.try_recv() {
            if matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            ) {
                new_data = true;
            }
        }
        new_data
    }

    /// Waits up to `timeout` for the server to report a change in the selected mailbox (IDLE),
    /// then leaves IDLE. Returns at once with [`IdleOutcome::NewData`] when a change was already
    /// reported during earlier commands. Without IDLE support, sleeps `timeout` then polls with
    /// NOOP. The caller loops, with `timeout` at most 25 minutes.
    pub async fn idle(&mut self, timeout: Duration) -> Result<IdleOutcome, ImapError> {
        self.require_selected()?;
        if self.drain_unsolicited() {
            return Ok(IdleOutcome::NewData);
        }
        if !self.capabilities.idle {
            tokio::time::sleep(timeout).await;
            let mut s = self.take()?;
            let r = timed(self.timeouts.command, "NOOP", s.noop()).await;
            self.settle(s, r, "NOOP")?;
            return Ok(if self.drain_unsolicited() {
                IdleOutcome::NewData
            } else {
                IdleOutcome::Timeout
            });
        }
        let s = self.take()?;
        let mut handle = s.idle();
        match timed(self.timeouts.handshake, "IDLE", handle.init()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(map_cmd(e, "IDLE")),
            Err(e) => return Err(e),
        }
        let waited = {
            let (fut, _stop) = handle.wait_with_timeout(timeout);
            tokio::time::timeout(timeout + Duration::from_secs(5), fut).await
        };
        let outcome = match waited {
            Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => IdleOutcome::NewData,
            Ok(Ok(_)) | Err(_) => IdleOutcome::Timeout,
            Ok(Err(e)) => return Err(map_cmd(e, "IDLE")),
        };
        let s = match timed(self.timeouts.handshake, "IDLE DONE", handle.done()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(map_cmd(e, "IDLE DONE")),
            Err(e) => return Err(e),
        };
        self.inner = Some(s);
        if self.drain_unsolicited() {
            return Ok(IdleOutcome::NewData);
        }
        Ok(outcome)
    }

    /// Logs out and closes the connection.
    pub async fn logout(mut self) -> Result<(), ImapError> {
        let mut s = self.take()?;
        let r = timed(self.timeouts.handshake, "LOGOUT", s.logout()).await;
        self.settle(s, r, "LOGOUT")
    }
}

#[cfg(test)]
mod tests {
    use super::server_text;

    #[test]
    fn server_text_is_readable() {
        assert_eq!(
            server_text(
                r#"code: Some(Alert), info: Some("Client didn't present valid SSL certificate")"#
            ),
            "[ALERT] Client didn't present valid SSL certificate"
        );
        assert_eq!(
            server_text(r#"code: None, info: Some("Mailbox doesn't exist: \"X\"")"#),
            r#"Mailbox doesn't exist: "X""#
        );
        assert_eq!(server_text("code: None, info: None"), "(no text)");
        assert_eq!(server_text("plain words"), "plain words");
    }
}

/// What [`Session::fetch_many`] got for one UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The whole message.
    Body(Vec<u8>),
    /// Larger than `max_message_bytes`: not downloaded.
    TooLarge {
        /// Its size (`RFC822.SIZE`).
        size: u32,
        /// The limit.
        limit: u32,
    },
    /// No message has this UID any more.
    Gone,
}

/// Most UIDs named in one command by [`Session::move_many`] (keeps command lines short).
pub const MAX_UIDS_PER_COMMAND: usize = 500;

/// An IMAP sequence set for `uids`, runs of consecutive UIDs written `a:b` (`1,2,3,7` → `1:3,7`).
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod uid_set_tests {
    use super::uid_set;

    #[test]
    fn runs_are_compressed() {
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 8, 2]), "1:3,7:9");
        assert_eq!(uid_set(&[1, 3, 5]), "1,3,5");
        assert_eq!(uid_set(&[]), "");
    }
}
