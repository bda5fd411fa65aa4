//! What the console's tests share: an engine that has run on the bundled samples (two mails
//! waiting for review with code 902, two rejected), three accounts, a console on a loopback
//! port, and a small HTTP client that keeps its cookies and reads the CSRF tokens of forms.
#![allow(dead_code)]

use relais_console::{ConsoleConfig, Role, RunningConsole, add_user};
use relais_engine::Engine;
use relais_engine::config::{Config, Patients, SchematronSetting, Sink, Source};
use relais_store::{MessageFilter, MessageRecord, MessageState};
use relais_testsupport::{ans_dir, workspace_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const OPERATOR: (&str, &str) = ("alice", "alice operator passphrase");
pub const VIEWER: (&str, &str) = ("victor", "victor viewer passphrase");
pub const ADMIN: (&str, &str) = ("adele", "adele admin passphrase");

/// The sample mails journaled: two valid ones (no patient in the index: review 902) and two
/// broken ones (rejected).
pub const SAMPLES: [&str; 4] = [
    "mail/ldl-ses-n1.eml",
    "mail/cr-bio-n1.eml",
    "invalid/xdm-hash-mismatch.eml",
    "invalid/not-a-pdf.eml",
];

pub fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("samples").join(rel)).unwrap()
}

/// An engine on a Maildir holding [`SAMPLES`], with patient matching required and no patient
/// in the index, after one run: documents wait in the review queue.
pub async fn seeded_engine(root: &Path) -> Arc<Engine> {
    let inbox = root.join("inbox");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(inbox.join(sub)).unwrap();
    }
    for (i, m) in SAMPLES.iter().enumerate() {
        let stem = Path::new(m)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::write(
            inbox
                .join("new")
                .join(format!("17000000{i:02}.{stem}.relais-test")),
            sample(m),
        )
        .unwrap();
    }
    let mut c = Config::parse("", "test").unwrap();
    c.data_dir = root.join("data");
    c.validation.pack = Some(ans_dir());
    c.validation.schematron = SchematronSetting::Off;
    c.patients = Patients {
        require_match: true,
        adt_listen: None,
    };
    c.sources = vec![Source::Maildir {
        address: None,
        name: "inbox".into(),
        path: inbox,
        consume: true,
    }];
    c.sinks = vec![Sink::Folder {
        name: "out".into(),
        path: root.join("out"),
    }];
    let engine = Engine::open(c).await.unwrap();
    let s = engine.run_once().await.unwrap();
    assert_eq!(s.journaled, 4, "{s:?}");
    assert_eq!(s.awaiting_review, 2, "{s:?}");
    assert_eq!(s.rejected, 2, "{s:?}");
    Arc::new(engine)
}

/// The accounts file with the operator, the viewer and the admin.
pub fn users_file(root: &Path) -> PathBuf {
    let path = root.join("console-users.toml");
    add_user(&path, OPERATOR.0, Role::Operator, OPERATOR.1).unwrap();
    add_user(&path, VIEWER.0, Role::Viewer, VIEWER.1).unwrap();
    add_user(&path, ADMIN.0, Role::Admin, ADMIN.1).unwrap();
    path
}

/// A running console and the switch that stops it.
pub struct Console {
    pub running: RunningConsole,
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// Starts a console for `engine` on a free loopback port (TLS with the test PKI when `pki`).
pub async fn start_console(
    engine: Arc<Engine>,
    users: &Path,
    pki: Option<&relais_testsupport::pki::TestPki>,
) -> Console {
    let mut config = ConsoleConfig::new(users);
    config.listen = "127.0.0.1:0".into();
    if let Some(p) = pki {
        config.tls_cert = Some(p.server_chain.clone());
        config.tls_key = Some(p.server_key.clone());
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let running = relais_console::serve(engine, config, rx).await.unwrap();
    Console { running, stop }
}

/// The messages of the journal in a state, newest first.
pub async fn in_state(engine: &Engine, state: MessageState) -> Vec<MessageRecord> {
    engine
        .journal()
        .list_messages(&MessageFilter {
            state: Some(state),
            ..MessageFilter::default()
        })
        .await
        .unwrap()
}

/// Waits (up to 20 s) until `message` reaches `state`.
pub async fn wait_state(engine: &Engine, message: relais_store::MessageId, state: MessageState) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = engine
            .journal()
            .get_message(message)
            .await
            .unwrap()
            .unwrap()
            .state;
        if now == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "message {message} stayed {now}, expected {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// The value of the first hidden `csrf` field of the page.
    pub fn csrf(&self) -> String {
        let text = self.text();
        let at = text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in the page:\n{text}"));
        let rest = &text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A browser-like HTTP client: no redirects followed, cookies kept by name.
pub struct Http {
    pub base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` header received, as sent.
    pub set_cookies: Vec<String>,
}

fn tls_config(ca: Option<&Path>) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Http {
    /// A client for the console at `base`, trusting `ca` for HTTPS.
    pub fn new(base: &str, ca: Option<&Path>) -> Http {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .use_preconfigured_tls(tls_config(ca))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Http {
            base: base.to_string(),
            client,
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(reqwest::header::COOKIE, self.cookie_header())
        };
        let res = req.send().await.unwrap();
        for sc in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let sc = sc.to_str().unwrap().to_string();
            let pair = sc.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || sc.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
            self.set_cookies.push(sc);
        }
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// A GET that may fail at the connection (TLS) level.
    pub async fn try_get(&self, path: &str) -> Result<u16, reqwest::Error> {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        Ok(res.status().as_u16())
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// A POST with extra headers (e.g. another site's `Origin`).
    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.client.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// Logs in through the form; returns the answer to the POST.
    pub async fn login(&mut self, (name, password): (&str, &str)) -> Answer {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.text());
        let csrf = form.csrf();
        self.post(
            "/login",
            &[("name", name), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    /// The CSRF token of this session (from any page's logout form).
    pub async fn session_csrf(&mut self) -> String {
        let page = self.get("/dashboard").await;
        assert_eq!(page.status, 200, "{}", page.text());
        page.csrf()
    }
}
