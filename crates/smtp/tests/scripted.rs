//! The SMTP client against scripted servers on loopback: what goes on the wire (implicit TLS,
//! AUTH, MAIL/RCPT parameters, dot-stuffing) and the replies and failures a real server rarely
//! gives on demand (SIZE, no 8BITMIME, no DSN, no STARTTLS, 4xx, silence).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use relais_smtp::{
    Credentials, DsnRequest, Security, SendOptions, SmtpConfig, SmtpError, Stage, codes, send,
    send_with,
};
use relais_testsupport::pki::{PkiOptions, TestPki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn pki() -> &'static TestPki {
    static PKI: OnceLock<(tempfile::TempDir, TestPki)> = OnceLock::new();
    &PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path(), &PkiOptions::default());
        (dir, pki)
    })
    .1
}

/// What the scripted server answers.
#[derive(Clone)]
struct Script {
    greeting: &'static str,
    ehlo: &'static str,
    data_end: &'static str,
    /// Accept the connection and never say anything.
    silent: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: "220 fake.test ESMTP\r\n",
            ehlo: "250-fake.test\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-DSN\r\n\
                   250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n",
            data_end: "250 2.0.0 Ok: queued as FAKE1\r\n",
            silent: false,
        }
    }
}

/// What the scripted server received.
#[derive(Default, Debug)]
struct Transcript {
    commands: Vec<String>,
    data: Vec<u8>,
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    script: &Script,
    log: &Mutex<Transcript>,
) {
    if script.silent {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    let mut s = BufReader::new(stream);
    s.get_mut()
        .write_all(script.greeting.as_bytes())
        .await
        .unwrap();
    if !script.greeting.starts_with('2') {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        log.lock()
            .unwrap()
            .commands
            .push(line.trim_end().to_string());
        let verb = line
            .split([' ', '\r'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => script.ehlo,
            "AUTH" => "235 2.7.0 Authentication successful\r\n",
            "MAIL" => "250 2.1.0 Ok\r\n",
            "RCPT" => "250 2.1.5 Ok\r\n",
            "RSET" => "250 2.0.0 Ok\r\n",
            "DATA" => {
                s.get_mut().write_all(b"354 go ahead\r\n").await.unwrap();
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if s.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(&l);
                }
                log.lock().unwrap().data = data;
                script.data_end
            }
            "QUIT" => {
                let _ = s.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 Unknown command\r\n",
        };
        s.get_mut().write_all(reply.as_bytes()).await.unwrap();
    }
}

/// Starts a one-connection scripted server; returns its port and its transcript.
async fn scripted(script: Script, implicit_tls: bool) -> (u16, Arc<Mutex<Transcript>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Transcript::default()));
    let acceptor = implicit_tls.then(|| {
        let p = pki();
        let chain = CertificateDer::pem_file_iter(&p.server_chain)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&p.server_key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    let log2 = log.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor {
            Some(a) => {
                if let Ok(tls) = a.accept(tcp).await {
                    converse(tls, &script, &log2).await;
                }
            }
            None => converse(tcp, &script, &log2).await,
        }
    });
    (port, log)
}

fn config(port: u16, security: Security) -> SmtpConfig {
    let mut cfg = SmtpConfig::new("127.0.0.1", port, security, vec![pki().root_ca.clone()]);
    cfg.timeouts.handshake = Duration::from_secs(5);
    cfg.timeouts.command = Duration::from_secs(5);
    cfg.timeouts.data = Duration::from_secs(5);
    cfg
}

#[tokio::test]
async fn implicit_tls_sends_the_expected_commands_and_bytes() {
    let (port, log) = scripted(Script::default(), true).await;
    let mut cfg = config(port, Security::ImplicitTls);
    cfg.auth = Some(Credentials {
        user: "dpi@hopital.test".into(),
        password: "s3cret".into(),
    });
    cfg.helo_name = "relais.hopital.test".into();
    let message = "From: <dpi@hopital.test>\r\nSubject: =?utf-8?Q?x?=\r\n\r\nLigne accentuée\r\n.point\r\n..deux\n.\r\nfin\r\n";
    let opts = SendOptions {
        dsn: Some(DsnRequest::success_and_failure("envoi+1=a")),
        require_dsn: true,
    };
    let to = vec!["medecin@cabinet.test".to_string()];
    let report = send_with(&cfg, "", &to, message.as_bytes(), &opts)
        .await
        .unwrap_or_else(|e| panic!("{} {e}", e.code()));
    assert_eq!(report.reply.code, 250);
    assert_eq!(report.reply.enhanced.as_deref(), Some("2.0.0"));
    assert_eq!(report.reply.text, "Ok: queued as FAKE1");
    assert_eq!(report.tls.protocol, "TLSv1_3");
    assert!(report.dsn_requested);
    assert_eq!(report.server, "fake.test");

    let t = log.lock().unwrap();
    let plain = base64::engine::general_purpose::STANDARD.encode("\0dpi@hopital.test\0s3cret");
    let size = message.len() + 1; // the bare LF became CRLF
    assert_eq!(
        t.commands,
        vec![
            "EHLO relais.hopital.test".to_string(),
            format!("AUTH PLAIN {plain}"),
            format!("MAIL FROM:<> BODY=8BITMIME SIZE={size} RET=HDRS ENVID=envoi+2B1+3Da"),
            "RCPT TO:<medecin@cabinet.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;medecin@cabinet.test"
                .to_string(),
            "DATA".to_string(),
            "QUIT".to_string(),
        ]
    );
    // Dot-stuffed on the wire; CRLF everywhere; the final CRLF belongs to the message.
    assert_eq!(
        String::from_utf8(t.data.clone()).unwrap(),
        "From: <dpi@hopital.test>\r\nSubject: =?utf-8?Q?x?=\r\n\r\nLigne accentuée\r\n..point\r\n...deux\r\n..\r\nfin\r\n"
    );
}

#[tokio::test]
async fn without_starttls_nothing_is_sent_in_clear_text() {
    let script = Script {
        ehlo: "250-fake.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n",
        ..Script::default()
    };
    let (port, log) = scripted(script, false).await;
    let mut cfg = config(port, Security::StartTls);
    cfg.auth = Some(Credentials {
        user: "dpi@hopital.test".into(),
        password: "s3cret".into(),
    });
    let err = send(&cfg, "dpi@hopital.test", &["a@b.test".into()], b"x\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::STARTTLS_UNAVAILABLE, "{err}");
    assert!(!err.is_transient());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = log.lock().unwrap();
    assert_eq!(t.commands.len(), 1, "only EHLO: {:?}", t.commands);
}

#[tokio::test]
async fn limits_announced_in_ehlo_are_enforced_before_mail_from() {
    // SIZE.
    let script = Script {
        ehlo: "250-fake.test\r\n250-SIZE 100\r\n250 8BITMIME\r\n",
        ..Script::default()
    };
    let (port, log) = scripted(script, true).await;
    let big = vec![b'a'; 200];
    let err = send(
        &config(port, Security::ImplicitTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        &big,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), codes::MESSAGE_TOO_LARGE, "{err}");
    assert!(
        !log.lock()
            .unwrap()
            .commands
            .iter()
            .any(|c| c.starts_with("MAIL"))
    );

    // 8-bit bytes without 8BITMIME.
    let script = Script {
        ehlo: "250-fake.test\r\n250 SIZE 100000\r\n",
        ..Script::default()
    };
    let (port, _) = scripted(script, true).await;
    let err = send(
        &config(port, Security::ImplicitTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        "Subject: é\r\n\r\né\r\n".as_bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), codes::EIGHT_BIT_UNSUPPORTED, "{err}");

    // A required DSN without the DSN extension.
    let script = Script {
        ehlo: "250 fake.test\r\n",
        ..Script::default()
    };
    let (port, _) = scripted(script, true).await;
    let opts = SendOptions {
        dsn: Some(DsnRequest::success_and_failure("e1")),
        require_dsn: true,
    };
    let err = send_with(
        &config(port, Security::ImplicitTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        b"x\r\n",
        &opts,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), codes::DSN_UNSUPPORTED, "{err}");

    // Not required: sent without DSN parameters.
    let script = Script {
        ehlo: "250 fake.test\r\n",
        ..Script::default()
    };
    let (port, log) = scripted(script, true).await;
    let opts = SendOptions {
        require_dsn: false,
        ..opts
    };
    let report = send_with(
        &config(port, Security::ImplicitTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        b"x\r\n",
        &opts,
    )
    .await
    .unwrap();
    assert!(!report.dsn_requested);
    let t = log.lock().unwrap();
    assert!(
        t.commands
            .contains(&"MAIL FROM:<dpi@hopital.test>".to_string())
    );
    assert!(t.commands.contains(&"RCPT TO:<a@b.test>".to_string()));
}

#[tokio::test]
async fn credentials_without_a_usable_mechanism_are_never_sent() {
    let script = Script {
        ehlo: "250-fake.test\r\n250 AUTH CRAM-MD5\r\n",
        ..Script::default()
    };
    let (port, log) = scripted(script, true).await;
    let mut cfg = config(port, Security::ImplicitTls);
    cfg.auth = Some(Credentials {
        user: "dpi@hopital.test".into(),
        password: "s3cret".into(),
    });
    let err = send(&cfg, "dpi@hopital.test", &["a@b.test".into()], b"x\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::AUTH_UNAVAILABLE, "{err}");
    assert!(err.to_string().contains("only other mechanisms"), "{err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !log.lock()
            .unwrap()
            .commands
            .iter()
            .any(|c| c.starts_with("AUTH")),
        "no half-way CRAM-MD5 exchange"
    );
}

#[tokio::test]
async fn temporary_replies_are_transient_and_permanent_ones_are_not() {
    let script = Script {
        greeting: "421 4.3.2 fake.test Service not available, try later\r\n",
        ..Script::default()
    };
    let (port, _) = scripted(script, true).await;
    let err = send(
        &config(port, Security::ImplicitTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        b"x\r\n",
    )
    .await
    .unwrap_err();
    match &err {
        SmtpError::Rejected { stage, reply, .. } => {
            assert_eq!(*stage, Stage::Greeting);
            assert_eq!(reply.code, 421);
        }
        other => panic!("{} {other}", other.code()),
    }
    assert!(err.is_transient(), "{err}");

    for (data_end, code, transient) in [
        ("451 4.3.0 Queue file write error\r\n", 451, true),
        ("554 5.7.1 Message refused by policy\r\n", 554, false),
    ] {
        let script = Script {
            data_end,
            ..Script::default()
        };
        let (port, _) = scripted(script, true).await;
        let err = send(
            &config(port, Security::ImplicitTls),
            "dpi@hopital.test",
            &["a@b.test".into()],
            b"x\r\n",
        )
        .await
        .unwrap_err();
        match &err {
            SmtpError::Rejected { stage, reply, .. } => {
                assert_eq!(*stage, Stage::DataEnd);
                assert_eq!(reply.code, code);
            }
            other => panic!("{} {other}", other.code()),
        }
        assert_eq!(err.code(), codes::REJECTED);
        assert_eq!(err.is_transient(), transient, "{err}");
    }
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_closed_port_fails_to_connect() {
    let script = Script {
        silent: true,
        ..Script::default()
    };
    let (port, _) = scripted(script, false).await;
    let mut cfg = config(port, Security::StartTls);
    cfg.timeouts.handshake = Duration::from_millis(300);
    let t0 = Instant::now();
    let err = send(&cfg, "dpi@hopital.test", &["a@b.test".into()], b"x\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::TIMEOUT, "{err}");
    assert!(err.is_transient());
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("greeting"), "{err}");

    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = send(
        &config(free, Security::StartTls),
        "dpi@hopital.test",
        &["a@b.test".into()],
        b"x\r\n",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), codes::CONNECT, "{err}");
    assert!(err.is_transient());
}
