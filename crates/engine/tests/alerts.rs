//! Alerts end to end: the daemon loop (`Engine::run`) with a real DPI peer that is down and
//! comes back, a real webhook receiver (axum on a loopback port, recording every POST) and real
//! mail (Postfix submission into Dovecot). A condition sends exactly one alert, nothing more
//! while it lasts over many evaluations, and exactly one recovery notice when it clears.
//!
//! The alerts' status is per process (like the metrics), so each test names its sink apart.

mod common;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{camille, config, maildir};
use relais_engine::Engine;
use relais_engine::alerts::{AlertsConfig, MailChannel, Rule, WebhookChannel};
use relais_engine::config::{Config, Sink, SmtpSecurity, SmtpSettings, Source};
use relais_testsupport::dpi_peer::DpiPeer;
use relais_testsupport::mailserver::MailServer;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One POST seen by the receiver.
#[derive(Debug, Clone)]
struct Post {
    body: serde_json::Value,
    authorization: Option<String>,
    answered: u16,
}

/// A webhook receiver on 127.0.0.1: records every POST; answers 503 to the first `fail_first`.
struct Receiver {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let state = (posts.clone(), fail_first);
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State((posts, fail_first)): State<(Arc<Mutex<Vec<Post>>>, usize)>,
                     headers: HeaderMap,
                     Json(body): Json<serde_json::Value>| async move {
                        let mut p = posts.lock().unwrap();
                        let answered = if p.len() < fail_first { 503 } else { 204 };
                        p.push(Post {
                            body,
                            authorization: headers
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string),
                            answered,
                        });
                        StatusCode::from_u16(answered).unwrap()
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, posts }
    }

    /// The POSTs answered with success.
    fn accepted(&self) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.answered < 300)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits until `n` POSTs were accepted; panics after `timeout`.
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Post> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} webhook POST(s) accepted after {timeout:?}, expected {n}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A loopback port nobody listens on (for a DPI that is down, started there later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mllp(name: &str, port: u16) -> Sink {
    Sink::Mllp {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        sending_application: "RELAIS".into(),
        sending_facility: "CH-DEMO".into(),
        receiving_application: "DPI".into(),
        receiving_facility: "CH-DEMO".into(),
        connect_timeout_secs: 2,
        ack_timeout_secs: 10,
    }
}

fn base(root: &Path, mails: &[&str], sink: Sink) -> Config {
    let source = Source::Maildir {
        address: None,
        name: "bal-alerts".into(),
        path: maildir(root, mails),
        consume: true,
    };
    config(root, vec![source], vec![sink], true)
}

fn webhook(url: &str, token_file: Option<&Path>) -> WebhookChannel {
    WebhookChannel {
        url: url.to_string(),
        token_file: token_file.map(Path::to_path_buf),
        ca_files: Vec::new(),
        timeout_secs: 5,
        retries: 3,
    }
}

/// The daemon loop (`Engine::run`) in a task, until `stop`.
struct Daemon {
    engine: Arc<Engine>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    async fn start(config: Config) -> Daemon {
        let problems = config.problems();
        assert!(problems.is_empty(), "{problems:?}");
        let engine = Arc::new(Engine::open(config).await.unwrap());
        engine
            .journal()
            .upsert_patient(&camille("IPP-42"))
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let e = engine.clone();
        let task = tokio::spawn(async move {
            e.run(Duration::from_millis(150), rx).await.unwrap();
        });
        Daemon { engine, stop, task }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the daemon stops")
            .unwrap();
    }
}

/// Every mail in a user's Maildir (new and cur), as text.
fn mails_of(server: &MailServer, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(server.maildir(user).join(sub)) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    out
}

fn subject(mail: &str) -> String {
    mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dpi_down_then_up_gives_one_alert_and_one_recovery_by_webhook_and_mail() {
    let server = tokio::task::spawn_blocking(MailServer::start)
        .await
        .unwrap();
    let hook = Receiver::start(0).await;
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, server.password()).unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "alert-token-1\n").unwrap();

    let port = free_port();
    let mut c = base(
        tmp.path(),
        &["mail/ldl-ses-n1.eml"],
        mllp("dpi-alerts", port),
    );
    c.alerts = AlertsConfig {
        interval_secs: 0.2,
        clear_after: 2,
        rules: vec![Rule::ConnectionDown {
            name: Some("dpi-down".into()),
            source: None,
            sink: Some("dpi-alerts".into()),
            for_secs: 1,
        }],
        mail: Some(MailChannel {
            to: vec![server.address("secretariat")],
            from: Some(server.address("dpi")),
            smtp: Some(SmtpSettings {
                host: server.host(),
                port: server.ports().submission,
                security: SmtpSecurity::Starttls,
                ca_files: vec![server.ca_pem().to_path_buf()],
                client_cert: None,
                client_key: None,
                user: Some(server.address("dpi")),
                password_file: Some(password.clone()),
                helo_name: None,
                tls_server_name: None,
            }),
        }),
        webhook: Some(webhook(&hook.url, Some(&token))),
        ..AlertsConfig::default()
    };
    let data_dir = c.data_dir.clone();
    let daemon = Daemon::start(c).await;

    // The DPI is down: one alert once the deliveries have failed for a second.
    let started = Instant::now();
    let posts = hook.wait_for(1, Duration::from_secs(20)).await;
    let alert = &posts[0].body;
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["rule"], "dpi-down");
    assert_eq!(alert["kind"], "connection_down");
    assert_eq!(alert["subject"], "sink dpi-alerts");
    assert!(
        alert["summary"]
            .as_str()
            .unwrap()
            .starts_with("sink dpi-alerts: deliveries fail for "),
        "{alert}"
    );
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some("Bearer alert-token-1")
    );
    // (Blocking waits are fine here: the runtime has workers to spare for the daemon.)
    server.wait_for_mail("secretariat", "INBOX", 1, Duration::from_secs(20));

    // Still down over many evaluations (and more failed attempts): nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.all().len(), 1, "{:?}", hook.all());
    let mails = mails_of(&server, "secretariat");
    assert_eq!(mails.len(), 1, "{mails:?}");
    let s = subject(&mails[0]);
    assert!(
        s.starts_with("[Relais] ALERT connection_down: sink dpi-alerts: deliveries fail for"),
        "{s}"
    );
    assert!(mails[0].contains("Auto-Submitted: auto-generated"));
    assert!(mails[0].contains("What to do: check that the receiving system is up"));
    // No patient data in the notices: the sample patient's names are nowhere.
    for text in [mails[0].clone(), alert.to_string()] {
        assert!(
            !text.contains("CAMILLE") && !text.contains("RELAIS-TEST"),
            "{text}"
        );
    }
    let state = std::fs::read_to_string(data_dir.join("alerts-state.json")).unwrap();
    assert!(state.contains("sink dpi-alerts"), "{state}");

    // The DPI comes up on its port: the retried delivery is filed, one recovery follows.
    let peer = tokio::task::spawn_blocking(move || DpiPeer::start(&["--port", &port.to_string()]))
        .await
        .unwrap();
    let posts = hook.wait_for(2, Duration::from_secs(40)).await;
    let recovery = &posts[1].body;
    assert_eq!(recovery["status"], "resolved", "{recovery}");
    assert_eq!(recovery["subject"], "sink dpi-alerts");
    assert_eq!(recovery["since"], alert["since"]);
    assert!(
        recovery["summary"]
            .as_str()
            .unwrap()
            .starts_with("cleared after "),
        "{recovery}"
    );
    assert_eq!(peer.records().len(), 1, "the document reached the DPI");
    server.wait_for_mail("secretariat", "INBOX", 2, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hook.all().len(), 2, "{:?}", hook.all());
    let mails = mails_of(&server, "secretariat");
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        mails
            .iter()
            .any(|m| subject(m).starts_with("[Relais] RECOVERED connection_down: cleared after")),
        "{:?}",
        mails.iter().map(|m| subject(m)).collect::<Vec<_>>()
    );
    let state = std::fs::read_to_string(data_dir.join("alerts-state.json")).unwrap();
    assert!(!state.contains("sink dpi-alerts"), "{state}");
    println!("alert and recovery in {:?}", started.elapsed());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deep_queue_alerts_once_and_recovers_once_through_a_flaky_webhook() {
    // The receiver refuses the first POST: the alert is sent again after a second.
    let hook = Receiver::start(1).await;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = base(
        tmp.path(),
        &["mail/ldl-ses-n1.eml", "mail/cr-bio-n1.eml"],
        mllp("dpi-queue", port),
    );
    c.alerts = AlertsConfig {
        interval_secs: 0.2,
        rules: vec![Rule::QueueDepth {
            name: None,
            sink: Some("dpi-queue".into()),
            above: 1,
        }],
        webhook: Some(webhook(&hook.url, None)),
        ..AlertsConfig::default()
    };
    let daemon = Daemon::start(c).await;

    let posts = hook.wait_for(1, Duration::from_secs(20)).await;
    let alert = &posts[0].body;
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["rule"], "queue_depth#1");
    assert_eq!(
        alert["summary"],
        "2 deliveries are waiting for sink dpi-queue (alert above 1)"
    );
    assert_eq!(alert["value"], 2.0);
    assert_eq!(posts[0].authorization, None);
    let all = hook.all();
    assert_eq!(
        all.len(),
        2,
        "one refused POST, then the same notice: {all:?}"
    );
    assert_eq!(all[0].body, all[1].body);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.accepted().len(), 1, "{:?}", hook.all());

    let peer = tokio::task::spawn_blocking(move || DpiPeer::start(&["--port", &port.to_string()]))
        .await
        .unwrap();
    let posts = hook.wait_for(2, Duration::from_secs(40)).await;
    assert_eq!(posts[1].body["status"], "resolved", "{:?}", posts[1]);
    assert_eq!(peer.records().len(), 2);
    assert_eq!(
        daemon
            .engine
            .journal()
            .pending_count("dpi-queue")
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hook.accepted().len(), 2, "{:?}", hook.all());
    daemon.stop().await;
}
