//! One SMTP session: connect, TLS, EHLO, AUTH, MAIL/RCPT (with DSN parameters), DATA, QUIT.
//! Each step is driven here (mail-send gives the reply parsing, SASL and dot-stuffing), so that
//! every failure is tied to its stage and to the server's reply.

use std::fmt;
use std::time::{Duration, Instant};

use mail_send::SmtpClient;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_DSN, EXT_SIZE, EXT_START_TLS, EhloResponse, Response,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{DsnNotify, DsnRequest, DsnReturn, Security, SendOptions, SmtpConfig};
use crate::error::{Reply, SmtpError, Stage};
use crate::tls::{self, TlsSetup};

/// A recipient the server refused while others were accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientRejection {
    /// The address, as given.
    pub recipient: String,
    /// The server's reply to its `RCPT TO`.
    pub reply: Reply,
}

impl fmt::Debug for RecipientRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientRejection")
            .field("recipient", &redact(&self.recipient))
            .field("reply", &self.reply)
            .finish()
    }
}

/// What the TLS layer negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSummary {
    /// `TLSv1_3`, `TLSv1_2`.
    pub protocol: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The server asked for a client certificate.
    pub client_cert_requested: bool,
    /// A client certificate was offered.
    pub client_cert_sent: bool,
}

/// What happened to a message the server accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
    /// Recipients the server refused (the message went to the others).
    pub rejected: Vec<RecipientRejection>,
    /// The server's final reply (usually names its queue id: `250 2.0.0 Ok: queued as ...`).
    pub reply: Reply,
    /// DSN parameters were sent (a DSN was requested and the server announces DSN).
    pub dsn_requested: bool,
    /// Size of the message as sent, in bytes.
    pub size: usize,
    /// The name the server gave in its EHLO reply.
    pub server: String,
    /// TLS parameters.
    pub tls: TlsSummary,
    /// Time from connection to the final reply.
    pub elapsed: Duration,
}

impl fmt::Debug for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendReport")
            .field(
                "accepted",
                &self.accepted.iter().map(|a| redact(a)).collect::<Vec<_>>(),
            )
            .field("rejected", &self.rejected)
            .field("reply", &self.reply)
            .field("dsn_requested", &self.dsn_requested)
            .field("size", &self.size)
            .field("server", &self.server)
            .field("tls", &self.tls)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

/// Sends `raw` (an RFC 5322 message) from `from` to every address of `to`, with no DSN request.
/// See [`send_with`].
pub async fn send(
    cfg: &SmtpConfig,
    from: &str,
    to: &[String],
    raw: &[u8],
) -> Result<SendReport, SmtpError> {
    send_with(cfg, from, to, raw, &SendOptions::default()).await
}

/// Sends `raw` from `from` (empty for the null reverse-path `<>`, as MDNs use) to every address
/// of `to`, over TLS (implicit or STARTTLS; never clear text), authenticating with the client
/// certificate and/or SASL as configured.
///
/// Line ends are sent as CRLF whatever `raw` uses; the message arrives byte for byte otherwise.
/// `BODY=8BITMIME` is declared when `raw` has 8-bit bytes, `SIZE=` when the server announces
/// SIZE, and the DSN parameters of `opts.dsn` when the server announces DSN.
///
/// Succeeds when at least one recipient was accepted and the server accepted the message; the
/// refused recipients are listed in [`SendReport::rejected`]. Fails with
/// [`SmtpError::Rejected`] when every recipient is refused.
pub async fn send_with(
    cfg: &SmtpConfig,
    from: &str,
    to: &[String],
    raw: &[u8],
    opts: &SendOptions,
) -> Result<SendReport, SmtpError> {
    let started = Instant::now();
    if !from.is_empty() && !is_plain_address(from) {
        return Err(SmtpError::Address {
            which: "the sender".into(),
            hint: "give the mailbox address (or an empty sender for the null reverse-path)",
        });
    }
    if to.is_empty() {
        return Err(SmtpError::Address {
            which: "the recipient list".into(),
            hint: "give at least one recipient",
        });
    }
    if let Some(i) = to.iter().position(|r| !is_plain_address(r)) {
        return Err(SmtpError::Address {
            which: format!("recipient {}", i + 1),
            hint: "check the recipient list",
        });
    }
    if let Some(dsn) = &opts.dsn {
        check_dsn(dsn)?;
    }
    let body = relais_core::text::to_crlf(raw);
    let tls = TlsSetup::new(cfg)?;
    let t = cfg.timeouts;

    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = match tokio::time::timeout(t.connect, TcpStream::connect(&addr)).await {
        Err(_) => {
            return Err(SmtpError::Timeout {
                phase: "TCP connection",
                after: t.connect,
            });
        }
        Ok(Err(e)) => {
            return Err(SmtpError::Connect {
                addr,
                reason: e.to_string(),
            });
        }
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let mut plain = SmtpClient {
        stream: tcp,
        timeout: t.handshake,
    };

    let mut client = match cfg.security {
        Security::ImplicitTls => {
            let mut c = plain
                .into_tls(&tls.connector, &tls.server_name)
                .await
                .map_err(|e| lift(e, "TLS handshake", Stage::Greeting, &tls, t.handshake))?;
            greeting(&mut c, &tls, t.handshake).await?;
            c
        }
        Security::StartTls => {
            greeting(&mut plain, &tls, t.handshake).await?;
            let caps = ehlo(&mut plain, &cfg.helo_name, &tls, t.handshake).await?;
            if !caps.has_capability(EXT_START_TLS) {
                return Err(SmtpError::StartTlsUnavailable);
            }
            let r = plain
                .cmd(b"STARTTLS\r\n")
                .await
                .map_err(|e| lift(e, "STARTTLS", Stage::StartTls, &tls, t.handshake))?;
            if r.code != 220 {
                return Err(rejected(Stage::StartTls, &r));
            }
            plain
                .into_tls(&tls.connector, &tls.server_name)
                .await
                .map_err(|e| lift(e, "TLS handshake", Stage::StartTls, &tls, t.handshake))?
        }
    };

    let caps = ehlo(&mut client, &cfg.helo_name, &tls, t.handshake)
        .await
        .map_err(|e| client_cert_refusal(e, &tls))?;
    let conn = client.tls_connection();
    let tls_summary = TlsSummary {
        protocol: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        client_cert_requested: tls.probe.requested(),
        client_cert_sent: tls.probe.sent(),
    };

    if let Some(cred) = &cfg.auth {
        let usable = caps.auth_mechanisms & (AUTH_PLAIN | AUTH_LOGIN);
        if usable == 0 {
            return Err(SmtpError::AuthUnavailable {
                offered: if caps.auth_mechanisms == 0 {
                    String::new()
                } else {
                    " (only other mechanisms are offered)".into()
                },
            });
        }
        // Offer mail-send only the mechanisms this build implements (PLAIN, LOGIN): it would
        // otherwise start CRAM-MD5 and leave the exchange half-way.
        let mut offered = caps.clone();
        offered.auth_mechanisms = usable;
        let credentials = mail_send::Credentials::Plain {
            username: cred.user.clone(),
            secret: cred.password.clone(),
        };
        client
            .authenticate(&credentials, &offered)
            .await
            .map_err(|e| match e {
                mail_send::Error::AuthenticationFailed(r)
                | mail_send::Error::UnexpectedReply(r) => SmtpError::Auth {
                    user: cred.user.clone(),
                    reply: reply_of(&r),
                },
                other => lift(other, "AUTH", Stage::Auth, &tls, t.handshake),
            })?;
    }

    if caps.has_capability(EXT_SIZE) && caps.size > 0 && body.len() > caps.size {
        return Err(SmtpError::MessageTooLarge {
            size: body.len(),
            limit: caps.size,
        });
    }
    let eight_bit = !body.is_ascii();
    if eight_bit && !caps.has_capability(EXT_8BIT_MIME) {
        return Err(SmtpError::EightBitUnsupported);
    }
    let dsn = match &opts.dsn {
        Some(d) if caps.has_capability(EXT_DSN) => Some(d),
        Some(_) if opts.require_dsn => return Err(SmtpError::DsnUnsupported),
        _ => None,
    };

    client.timeout = t.command;
    let mut mail = format!("MAIL FROM:<{from}>");
    if eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if caps.has_capability(EXT_SIZE) {
        mail.push_str(&format!(" SIZE={}", body.len()));
    }
    if let Some(d) = dsn {
        match d.ret {
            Some(DsnReturn::Headers) => mail.push_str(" RET=HDRS"),
            Some(DsnReturn::Full) => mail.push_str(" RET=FULL"),
            None => {}
        }
        if let Some(envid) = &d.envid {
            mail.push_str(&format!(" ENVID={}", xtext(envid)));
        }
    }
    mail.push_str("\r\n");
    let r = client
        .cmd(mail.as_bytes())
        .await
        .map_err(|e| lift(e, "MAIL FROM", Stage::MailFrom, &tls, t.command))?;
    if !positive(&r) {
        quit(&mut client).await;
        return Err(rejected(Stage::MailFrom, &r));
    }

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for rcpt in to {
        let mut cmd = format!("RCPT TO:<{rcpt}>");
        if let Some(d) = dsn {
            cmd.push_str(&format!(" NOTIFY={}", notify(d)));
            if d.orcpt {
                cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(rcpt)));
            }
        }
        cmd.push_str("\r\n");
        let r = client
            .cmd(cmd.as_bytes())
            .await
            .map_err(|e| lift(e, "RCPT TO", Stage::RcptTo, &tls, t.command))?;
        if positive(&r) {
            accepted.push(rcpt.clone());
        } else if r.code == 421 {
            return Err(rejected(Stage::RcptTo, &r));
        } else {
            refused.push((rcpt.clone(), r));
        }
    }
    if accepted.is_empty() {
        let first = &refused[0].1;
        let err = rejected(Stage::RcptTo, first);
        let _ = client.cmd(b"RSET\r\n").await;
        quit(&mut client).await;
        return Err(err);
    }

    let r = client
        .cmd(b"DATA\r\n")
        .await
        .map_err(|e| lift(e, "DATA", Stage::Data, &tls, t.command))?;
    if r.code != 354 {
        quit(&mut client).await;
        return Err(rejected(Stage::Data, &r));
    }
    // write_message appends CRLF "." CRLF: give it the message without its last CRLF so that
    // the server stores exactly the bytes given.
    let payload = body.strip_suffix(b"\r\n").unwrap_or(&body);
    let end = tokio::time::timeout(t.data, async {
        client
            .write_message(payload)
            .await
            .map_err(mail_send::Error::Io)?;
        client.read().await
    })
    .await
    .map_err(|_| SmtpError::Timeout {
        phase: "sending the message",
        after: t.data,
    })?
    .map_err(|e| lift(e, "end of DATA", Stage::DataEnd, &tls, t.data))?;
    if !positive(&end) {
        quit(&mut client).await;
        return Err(rejected(Stage::DataEnd, &end));
    }
    quit(&mut client).await;

    let report = SendReport {
        accepted,
        rejected: refused
            .into_iter()
            .map(|(recipient, r)| RecipientRejection {
                recipient,
                reply: reply_of(&r),
            })
            .collect(),
        reply: reply_of(&end),
        dsn_requested: dsn.is_some(),
        size: body.len(),
        server: caps.hostname.clone(),
        tls: tls_summary,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        host = %cfg.host,
        port = cfg.port,
        size = report.size,
        accepted = report.accepted.len(),
        rejected = report.rejected.len(),
        dsn = report.dsn_requested,
        reply = report.reply.code,
        "message submitted over SMTP"
    );
    Ok(report)
}

async fn greeting<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    tls: &TlsSetup,
    after: Duration,
) -> Result<(), SmtpError> {
    let r = tokio::time::timeout(after, c.read())
        .await
        .map_err(|_| SmtpError::Timeout {
            phase: "server greeting",
            after,
        })?
        .map_err(|e| lift(e, "server greeting", Stage::Greeting, tls, after))?;
    if positive(&r) {
        Ok(())
    } else {
        Err(rejected(Stage::Greeting, &r))
    }
}

async fn ehlo<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    helo: &str,
    tls: &TlsSetup,
    after: Duration,
) -> Result<EhloResponse<String>, SmtpError> {
    c.timeout = after;
    c.ehlo(helo)
        .await
        .map_err(|e| lift(e, "EHLO", Stage::Ehlo, tls, after))
}

/// Some servers (Postfix with `smtpd_tls_req_ccert`) finish the TLS handshake without a client
/// certificate and refuse the session at the first command after it, with a 4xx reply that no
/// retry will fix: report it as the TLS client-certificate problem it is.
fn client_cert_refusal(e: SmtpError, tls: &TlsSetup) -> SmtpError {
    match e {
        SmtpError::Rejected { reply, .. }
            if reply.text.to_ascii_lowercase().contains("certificate") =>
        {
            let detail = if tls.probe.sent() {
                format!(
                    "the server refused the client certificate after the handshake ({reply}); \
                     check that it is valid, not revoked, issued by an IGC-Santé CA the server \
                     trusts, and registered for this mailbox"
                )
            } else {
                format!(
                    "the server requires a client certificate and none was sent ({reply}); set \
                     client_cert to the mailbox's IGC-Santé certificate and key"
                )
            };
            SmtpError::Tls {
                problem: crate::TlsProblem::ClientCertificateRefused,
                detail,
            }
        }
        other => other,
    }
}

async fn quit<T: AsyncRead + AsyncWrite + Unpin>(c: &mut SmtpClient<T>) {
    c.timeout = Duration::from_secs(5);
    let _ = c.cmd(b"QUIT\r\n").await;
}

/// Turns a mail-send error at some step into ours.
fn lift(
    e: mail_send::Error,
    during: &'static str,
    stage: Stage,
    tls: &TlsSetup,
    after: Duration,
) -> SmtpError {
    match e {
        mail_send::Error::Timeout => SmtpError::Timeout {
            phase: during,
            after,
        },
        mail_send::Error::Tls(err) => tls::explain(&err, &tls.probe, &tls.server_name),
        mail_send::Error::Io(io) => match tls::rustls_error(&io) {
            Some(err) => tls::explain(err, &tls.probe, &tls.server_name),
            None if io.kind() == std::io::ErrorKind::TimedOut => SmtpError::Timeout {
                phase: during,
                after,
            },
            None => SmtpError::ConnectionLost {
                during,
                reason: io.to_string(),
            },
        },
        mail_send::Error::UnparseableReply => SmtpError::ConnectionLost {
            during,
            reason: "the server closed the connection or sent an unreadable reply".into(),
        },
        mail_send::Error::UnexpectedReply(r) => rejected(stage, &r),
        mail_send::Error::AuthenticationFailed(r) => SmtpError::Auth {
            user: String::new(),
            reply: reply_of(&r),
        },
        mail_send::Error::UnsupportedAuthMechanism => SmtpError::AuthUnavailable {
            offered: String::new(),
        },
        mail_send::Error::MissingStartTls => SmtpError::StartTlsUnavailable,
        mail_send::Error::InvalidTLSName => SmtpError::Config {
            reason: format!(
                "{:?} is not usable as a TLS server name; set tls_server_name",
                tls.server_name
            ),
        },
        other => SmtpError::Protocol {
            during,
            detail: other.to_string(),
        },
    }
}

fn positive(r: &Response<String>) -> bool {
    (200..300).contains(&r.code)
}

fn rejected(stage: Stage, r: &Response<String>) -> SmtpError {
    let reply = reply_of(r);
    let hint = hint(stage, &reply);
    SmtpError::Rejected { stage, reply, hint }
}

/// What common replies mean, to say what to do.
fn hint(stage: Stage, reply: &Reply) -> &'static str {
    let enhanced = reply.enhanced.as_deref().unwrap_or("");
    match (stage, reply.code, enhanced) {
        (_, 421, _) => {
            "; the server is closing the connection (overloaded or shutting down): retry later"
        }
        (_, 552, _) | (_, _, "5.3.4") => "; the message is too large for the server",
        (Stage::RcptTo, _, "5.1.1") | (Stage::RcptTo, 550, "") => {
            "; the recipient's mailbox does not exist: check the address in the Annuaire national MSSanté"
        }
        (Stage::RcptTo, _, "5.7.1") => {
            "; the server refuses this recipient (relaying or policy): check that the mailbox may send to it"
        }
        (Stage::MailFrom, _, e) if e.starts_with("5.7") => {
            "; the server refuses this sender: it usually must be the authenticated mailbox"
        }
        (_, 400..=499, _) => "; temporary refusal: retry later",
        _ => "",
    }
}

fn reply_of(r: &Response<String>) -> Reply {
    let enhanced = (r.esc[0] != 0).then(|| format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2]));
    let text = r.message.split_whitespace().collect::<Vec<_>>().join(" ");
    Reply {
        code: r.code,
        enhanced,
        text: redact_text(&text),
    }
}

fn notify(d: &DsnRequest) -> String {
    if d.notify.is_empty() {
        return "NEVER".into();
    }
    let mut parts = Vec::new();
    for (kind, word) in [
        (DsnNotify::Success, "SUCCESS"),
        (DsnNotify::Failure, "FAILURE"),
        (DsnNotify::Delay, "DELAY"),
    ] {
        if d.notify.contains(&kind) {
            parts.push(word);
        }
    }
    parts.join(",")
}

fn check_dsn(d: &DsnRequest) -> Result<(), SmtpError> {
    if let Some(envid) = &d.envid {
        let ok =
            !envid.is_empty() && envid.len() <= 100 && envid.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(SmtpError::Config {
                reason: "the DSN ENVID must be 1 to 100 printable ASCII characters without spaces (RFC 3461)".into(),
            });
        }
    }
    Ok(())
}

/// RFC 3461 xtext: `!` to `~` as they are, except `+` and `=`, which become `+2B`, `+3D`.
pub(crate) fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// A plain ASCII `local@domain` that is safe inside `<...>` in an SMTP command.
pub(crate) fn is_plain_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'<' | b'>'
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b','
                        | b';'
                        | b':'
                        | b'"'
                        | b'\\'
                        | b'@'
                )
        });
    let domain_ok = !domain.is_empty()
        && domain.len() <= 255
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    local_ok && domain_ok
}

const PATIENT_DOMAIN: &str = "@patient.mssante.fr";

/// A loggable address: a patient address (its local part is the patient's INS) is hidden.
pub(crate) fn redact(addr: &str) -> String {
    redact_text(addr)
}

/// The text with the local part of every `...@patient.mssante.fr` replaced by `<patient>`.
pub(crate) fn redact_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    while let Some(pos) = lower[done..].find(PATIENT_DOMAIN).map(|p| p + done) {
        let start = text[..pos]
            .rfind(|c: char| c.is_whitespace() || matches!(c, '<' | ':' | ',' | ';' | '"' | '('))
            .map_or(0, |i| i + 1)
            .max(done);
        let end = pos + PATIENT_DOMAIN.len();
        out.push_str(&text[done..start]);
        out.push_str("<patient>");
        out.push_str(&text[pos..end]);
        done = end;
    }
    out.push_str(&text[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_controls() {
        assert_eq!(xtext("relais-42@h.test"), "relais-42@h.test");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn addresses_that_could_inject_commands_are_refused() {
        assert!(is_plain_address("dpi@hopital.test"));
        for bad in [
            "",
            "dpi",
            "dpi@hopital.test>\r\nRCPT TO:<x@y.fr",
            "a b@c.fr",
            "<a@b.fr>",
            "a@b.fr NOTIFY=NEVER",
            "é@b.fr",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn patient_addresses_are_redacted_in_reply_texts() {
        assert_eq!(
            redact_text("<146026322000196@Patient.MSSante.fr>: Recipient address rejected"),
            "<<patient>@Patient.MSSante.fr>: Recipient address rejected"
        );
        assert_eq!(
            redact_text("x 1@patient.mssante.fr, 2@patient.mssante.fr y"),
            "x <patient>@patient.mssante.fr, <patient>@patient.mssante.fr y"
        );
        assert_eq!(redact_text("dpi@hopital.test"), "dpi@hopital.test");
    }

    #[test]
    fn replies_keep_code_enhanced_code_and_text() {
        let r = Response {
            code: 550,
            esc: [5, 1, 1],
            message: "<x@h.test>: Recipient address rejected:\nUser unknown".to_string(),
        };
        let reply = reply_of(&r);
        assert_eq!(reply.code, 550);
        assert_eq!(reply.enhanced.as_deref(), Some("5.1.1"));
        assert_eq!(
            reply.text,
            "<x@h.test>: Recipient address rejected: User unknown"
        );
        let e = rejected(Stage::RcptTo, &r);
        assert_eq!(e.code(), crate::codes::REJECTED);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("550 5.1.1"), "{e}");
        assert!(e.to_string().contains("Annuaire"), "{e}");
        let e = rejected(
            Stage::RcptTo,
            &Response {
                code: 451,
                esc: [4, 3, 0],
                message: "Temporary lookup failure".to_string(),
            },
        );
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("retry later"), "{e}");
    }

    #[test]
    fn dsn_parameters() {
        let d = DsnRequest::success_and_failure("relais-1");
        assert_eq!(notify(&d), "SUCCESS,FAILURE");
        let never = DsnRequest {
            notify: vec![],
            ret: None,
            envid: None,
            orcpt: false,
        };
        assert_eq!(notify(&never), "NEVER");
        assert!(check_dsn(&d).is_ok());
        let bad = DsnRequest::success_and_failure("has space");
        assert_eq!(check_dsn(&bad).unwrap_err().code(), crate::codes::CONFIG);
    }
}
