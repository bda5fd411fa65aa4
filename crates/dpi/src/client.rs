//! The MLLP client that sends MDMs to the DPI and reads its ACK (original acknowledgement mode).
//!
//! One message at a time on one TCP connection, kept open between messages. Before reusing it the
//! client checks that the DPI has not closed it; if sending on a reused connection still fails
//! before any answer (the DPI closed it meanwhile), the client reconnects and sends again once,
//! with the same control id: a DPI that did get the first copy recognises the duplicate. After a
//! timeout or an unusable answer the connection is dropped, so a late ACK can never be taken for
//! the answer to the next message.

use crate::codes;
use futures_util::{SinkExt, StreamExt};
use relais_core::{Limits, RuleCode};
use relais_hl7::mllp::{MllpCodec, MllpError};
use relais_hl7::{AckCode, Delimiters, encode_for_wire, unescape};
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Largest ACK accepted: an ACK is a few hundred bytes.
const MAX_ACK_BYTES: usize = 1024 * 1024;

/// Where the DPI listens and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `host:port` of the DPI's MLLP listener.
    pub address: String,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for the ACK once the message is sent.
    pub ack_timeout: Duration,
    /// Bounds; `max_hl7_bytes` bounds the messages sent.
    pub limits: Limits,
}

impl ClientConfig {
    /// A configuration with the usual timeouts: 10 s to connect, 60 s for the ACK (a DPI files a
    /// large document before answering).
    pub fn new(address: impl Into<String>) -> Self {
        ClientConfig {
            address: address.into(),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(60),
            limits: Limits::default(),
        }
    }
}

/// What the DPI answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// AA (or CA): the DPI took the document.
    Accepted,
    /// AE (or CE): the DPI refused the document; do not resend it as is.
    Rejected {
        /// The error code: ERR-5.1 (the LPS codes 900…906, see [`LpsError`]) when the DPI gave
        /// one, else ERR-3.1 (HL7 table 0357), else empty.
        code: String,
        /// The DPI's explanation (ERR-5.2 / ERR-3.2 / ERR-8 / MSA-3), possibly empty. It comes
        /// from the DPI and may name the patient: do not log it.
        text: String,
    },
    /// AR (or CR): a circumstantial refusal; resend later.
    Retry {
        /// The DPI's explanation, possibly empty (same caution as above).
        text: String,
    },
}

impl AckOutcome {
    /// The LPS application error of a rejection, when its code is one of 900…906.
    pub fn lps_error(&self) -> Option<LpsError> {
        match self {
            AckOutcome::Rejected { code, .. } => LpsError::from_code(code),
            _ => None,
        }
    }

    /// The rule code of a refusal ([`codes::DPI_REJECTED`] / [`codes::DPI_RETRY`]).
    pub fn code(&self) -> Option<RuleCode> {
        match self {
            AckOutcome::Accepted => None,
            AckOutcome::Rejected { .. } => Some(codes::DPI_REJECTED),
            AckOutcome::Retry { .. } => Some(codes::DPI_RETRY),
        }
    }
}

/// The application error codes a DPI puts in ERR-5 (ig-lps-mss, table applicationErrorCondition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum LpsError {
    /// 900: the version of the document to replace or delete is not the latest the DPI holds.
    VersionMismatch,
    /// 901: the sender may not replace or delete this document (not its author's organisation).
    AuthorNotAllowed,
    /// 902: the patient is unknown to the DPI.
    PatientUnknown,
    /// 903: the CDA carries patient identifiers but no INS.
    InsAbsent,
    /// 904: the INS or the identity traits differ from the DPI's.
    InsMismatch,
    /// 905: the INS is there but identity traits are missing.
    InsIncomplete,
    /// 906: another error.
    Other,
}

impl LpsError {
    /// The error of an ERR-5 code (`"902"`).
    pub fn from_code(code: &str) -> Option<LpsError> {
        Some(match code.trim() {
            "900" => LpsError::VersionMismatch,
            "901" => LpsError::AuthorNotAllowed,
            "902" => LpsError::PatientUnknown,
            "903" => LpsError::InsAbsent,
            "904" => LpsError::InsMismatch,
            "905" => LpsError::InsIncomplete,
            "906" => LpsError::Other,
            _ => return None,
        })
    }

    /// The code as written in ERR-5.1.
    pub fn code(self) -> &'static str {
        match self {
            LpsError::VersionMismatch => "900",
            LpsError::AuthorNotAllowed => "901",
            LpsError::PatientUnknown => "902",
            LpsError::InsAbsent => "903",
            LpsError::InsMismatch => "904",
            LpsError::InsIncomplete => "905",
            LpsError::Other => "906",
        }
    }

    /// The guide's label (French, as the MDN to the sender quotes it).
    pub fn label(self) -> &'static str {
        match self {
            LpsError::VersionMismatch => {
                "Version du document incorrecte lors d'une demande de remplacement/suppression"
            }
            LpsError::AuthorNotAllowed => {
                "Auteur non autorisé à remplacer ou supprimer un document"
            }
            LpsError::PatientUnknown => "Identifiant patient inconnu",
            LpsError::InsAbsent => "INS non présent dans le document",
            LpsError::InsMismatch => {
                "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur"
            }
            LpsError::InsIncomplete => "L'INS transmis n'est pas complet",
            LpsError::Other => "Erreur 'Autre'",
        }
    }

    /// True for the identity problems (902…905) that the CI-SIS sends to manual review.
    pub fn needs_identity_review(self) -> bool {
        matches!(
            self,
            LpsError::PatientUnknown
                | LpsError::InsAbsent
                | LpsError::InsMismatch
                | LpsError::InsIncomplete
        )
    }
}

/// Why a message could not be delivered or its answer understood. Nothing here contains patient
/// data; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DpiError {
    #[error(
        "cannot connect to the DPI at {address}: {source}; check that its MLLP listener runs and that the configured address is right (the message was not sent, retry later)"
    )]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error(
        "no TCP connection to the DPI at {address} within {after:?}; check the network path and the address (the message was not sent, retry later)"
    )]
    ConnectTimeout { address: String, after: Duration },
    #[error(
        "the DPI did not answer within {after:?}; it may have filed the message: resend it with the same control id so that it can detect the duplicate, or raise the ACK timeout"
    )]
    AckTimeout { after: Duration },
    #[error(
        "the DPI closed the connection without answering; it may have refused or lost the message: resend it later with the same control id"
    )]
    Closed,
    #[error(
        "I/O error on the connection to the DPI: {0}; resend the message later with the same control id"
    )]
    Io(std::io::Error),
    #[error(
        "the DPI's answer is not a usable ACK: {reason}; the DPI's HL7 interface needs fixing (the message may have been filed)"
    )]
    Protocol { reason: String },
    #[error(
        "the ACK acknowledges control id `{got}` instead of `{expected}`; the DPI mixed up messages: check its interface before resending"
    )]
    ControlIdMismatch { expected: String, got: String },
    #[error("the message cannot be sent: {reason}")]
    InvalidMessage { reason: String },
}

impl DpiError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            DpiError::Connect { .. } | DpiError::ConnectTimeout { .. } => codes::DPI_CONNECT,
            DpiError::AckTimeout { .. } => codes::DPI_ACK_TIMEOUT,
            DpiError::Closed => codes::DPI_CLOSED,
            DpiError::Io(_) => codes::DPI_IO,
            DpiError::Protocol { .. } => codes::DPI_ACK_INVALID,
            DpiError::ControlIdMismatch { .. } => codes::DPI_ACK_MISMATCH,
            DpiError::InvalidMessage { .. } => codes::DPI_MESSAGE_INVALID,
        }
    }

    /// True when sending the same message again later may succeed (connection and timing
    /// problems); false when a person must look first (invalid message, confused DPI).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DpiError::Connect { .. }
                | DpiError::ConnectTimeout { .. }
                | DpiError::AckTimeout { .. }
                | DpiError::Closed
                | DpiError::Io(_)
        )
    }

    /// True when the DPI certainly did not receive the message.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            DpiError::Connect { .. }
                | DpiError::ConnectTimeout { .. }
                | DpiError::InvalidMessage { .. }
        )
    }
}

/// The MLLP client of one DPI.
#[derive(Debug)]
pub struct MllpClient {
    config: ClientConfig,
    conn: Option<Framed<TcpStream, MllpCodec>>,
    connects: u64,
}

/// How a send on a connection failed.
enum Failure {
    /// Before any byte of answer: on a reused connection, the DPI may have closed it meanwhile.
    BeforeAnswer(DpiError),
    /// Anything else.
    Final(DpiError),
}

impl MllpClient {
    /// A client; it connects on the first [`MllpClient::send`].
    pub fn new(config: ClientConfig) -> Self {
        MllpClient {
            config,
            conn: None,
            connects: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// How many TCP connections were opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.connects
    }

    /// True while a connection is kept open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Close the connection (the next send opens a new one).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Send one message (ER7 text with `\r` terminators, as [`crate::build_mdm`] makes it) and
    /// wait for its ACK. The text is encoded in the character set its MSH-18 declares.
    pub async fn send(&mut self, message: &str) -> Result<AckOutcome, DpiError> {
        let control_id = control_id_of(message).ok_or_else(|| DpiError::InvalidMessage {
            reason: "it has no MSH segment with a control id (MSH-10)".into(),
        })?;
        let bytes = encode_for_wire(message);
        if bytes.len() as u64 > self.config.limits.max_hl7_bytes {
            return Err(DpiError::InvalidMessage {
                reason: format!(
                    "it is {} bytes, above max_hl7_bytes ({})",
                    bytes.len(),
                    self.config.limits.max_hl7_bytes
                ),
            });
        }
        if let Some(offset) = bytes.iter().position(|&b| b == 0x0B || b == 0x1C) {
            return Err(DpiError::InvalidMessage {
                reason: format!(
                    "it contains an MLLP framing byte (0x0B or 0x1C) at offset {offset}"
                ),
            });
        }

        let mut reused = false;
        if let Some(conn) = self.conn.as_mut() {
            if still_open(conn.get_mut()).await {
                reused = true;
            } else {
                tracing::debug!("the DPI closed the idle MLLP connection; reconnecting");
                self.conn = None;
            }
        }
        loop {
            if self.conn.is_none() {
                self.conn = Some(self.connect().await?);
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match exchange(conn, &bytes, &control_id, self.config.ack_timeout).await {
                Ok(outcome) => return Ok(outcome),
                Err(Failure::BeforeAnswer(e)) if reused => {
                    tracing::debug!(code = %e.code(), "reused MLLP connection failed before any answer; reconnecting once");
                    self.conn = None;
                    reused = false;
                }
                Err(Failure::BeforeAnswer(e) | Failure::Final(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<Framed<TcpStream, MllpCodec>, DpiError> {
        let address = self.config.address.clone();
        let after = self.config.connect_timeout;
        let stream = match tokio::time::timeout(after, TcpStream::connect(&address)).await {
            Err(_) => return Err(DpiError::ConnectTimeout { address, after }),
            Ok(Err(source)) => return Err(DpiError::Connect { address, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        self.connects += 1;
        let max = usize::try_from(self.config.limits.max_hl7_bytes).unwrap_or(usize::MAX);
        Ok(Framed::new(
            stream,
            MllpCodec::with_max_frame(max.max(MAX_ACK_BYTES)),
        ))
    }
}

/// False when the peer has closed the connection (or sent something unasked).
async fn still_open(stream: &mut TcpStream) -> bool {
    poll_fn(|cx| {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match stream.poll_peek(cx, &mut buf) {
            Poll::Pending => Poll::Ready(true),
            // EOF, an error, or unsolicited bytes (a stray late answer): start afresh.
            Poll::Ready(_) => Poll::Ready(false),
        }
    })
    .await
}

/// Send and read the ACK on one connection.
async fn exchange(
    conn: &mut Framed<TcpStream, MllpCodec>,
    bytes: &[u8],
    control_id: &str,
    ack_timeout: Duration,
) -> Result<AckOutcome, Failure> {
    if let Err(e) = conn.send(bytes.to_vec()).await {
        return Err(match e {
            MllpError::Io(io) => Failure::BeforeAnswer(DpiError::Io(io)),
            other => Failure::Final(DpiError::InvalidMessage {
                reason: other.to_string(),
            }),
        });
    }
    let frame = match tokio::time::timeout(ack_timeout, conn.next()).await {
        Err(_) => return Err(Failure::Final(DpiError::AckTimeout { after: ack_timeout })),
        Ok(None) => return Err(Failure::BeforeAnswer(DpiError::Closed)),
        Ok(Some(Err(MllpError::Io(io)))) => {
            return Err(match io.kind() {
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Failure::BeforeAnswer(DpiError::Io(io))
                }
                _ => Failure::Final(DpiError::Io(io)),
            });
        }
        Ok(Some(Err(e))) => {
            return Err(Failure::Final(DpiError::Protocol {
                reason: e.to_string(),
            }));
        }
        Ok(Some(Ok(frame))) => frame,
    };
    read_ack(&frame, control_id).map_err(Failure::Final)
}

/// Interpret an ACK received for the message `control_id`.
pub fn read_ack(bytes: &[u8], control_id: &str) -> Result<AckOutcome, DpiError> {
    let limits = Limits {
        max_hl7_bytes: MAX_ACK_BYTES as u64,
        ..Limits::default()
    };
    let protocol = |reason: String| DpiError::Protocol { reason };
    let msg = relais_hl7::parse(bytes, &limits)
        .map_err(|e| protocol(format!("it cannot be parsed ({})", e.code())))?;
    let t = msg.message_type();
    if !t.code.eq_ignore_ascii_case("ACK") {
        return Err(protocol(format!(
            "MSH-9 is `{}`, not ACK",
            t.code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(10)
                .collect::<String>()
        )));
    }
    let msa = msg
        .segment("MSA", 1)
        .ok_or_else(|| protocol("it has no MSA segment".into()))?;
    let code_text = msa.value(1).unwrap_or_default();
    let code = AckCode::parse(&code_text)
        .ok_or_else(|| protocol("MSA-1 is not AA, AE, AR, CA, CE or CR".into()))?;
    let acked = msa.value(2).unwrap_or_default();
    if acked.trim() != control_id.trim() {
        return Err(DpiError::ControlIdMismatch {
            expected: control_id.to_string(),
            got: acked.chars().filter(|c| !c.is_control()).take(40).collect(),
        });
    }
    // The first ERR of severity E (or the first ERR) explains a refusal.
    let errs: Vec<_> = msg.segments_named("ERR").collect();
    let err = errs
        .iter()
        .find(|e| e.value(4).is_some_and(|s| s.trim() == "E"))
        .or_else(|| errs.first());
    let hl7_code = err.and_then(|e| e.component_value(3, 1));
    let app_code = err.and_then(|e| e.component_value(5, 1));
    let text = [
        err.and_then(|e| e.component_value(5, 2)),
        err.and_then(|e| e.component_value(3, 2))
            .filter(|_| app_code.is_none()),
        err.and_then(|e| e.value(8)),
        msa.value(3),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("; ");
    Ok(match code {
        AckCode::AA | AckCode::CA => AckOutcome::Accepted,
        AckCode::AE | AckCode::CE => AckOutcome::Rejected {
            code: app_code
                .or(hl7_code)
                .map(|c| c.trim().to_string())
                .unwrap_or_default(),
            text,
        },
        AckCode::AR | AckCode::CR => AckOutcome::Retry { text },
    })
}

/// MSH-10 of an ER7 text, unescaped; `None` without an MSH line or control id.
pub fn control_id_of(message: &str) -> Option<String> {
    let first = message.split(['\r', '\n']).next()?;
    let rest = first.strip_prefix("MSH")?;
    let mut chars = rest.chars();
    let field = chars.next()?;
    let enc: Vec<char> = chars.take(4).collect();
    if enc.len() < 4 {
        return None;
    }
    let delimiters = Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc[2],
        subcomponent: enc[3],
    };
    // rest = "|^~\&|APP|..." : split index 9 is MSH-10.
    let raw = rest.split(field).nth(9)?;
    let raw = raw.split(delimiters.component).next().unwrap_or(raw);
    let id = unescape(raw, &delimiters).trim().to_string();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDM: &str =
        "MSH|^~\\&|PFI|CHU|DPI|CHU|20240101||MDM^T02^MDM_T02|C\\F\\42|P|2.6\rEVN||20240101";

    #[test]
    fn control_id_is_read_and_unescaped() {
        assert_eq!(control_id_of(MDM).as_deref(), Some("C|42"));
        assert_eq!(
            control_id_of("MSH|^~\\&|A|B|C|D|1||ACK|x1|P|2.6").as_deref(),
            Some("x1")
        );
        assert_eq!(control_id_of("MSH|^~\\&|A|B|C|D|1||ACK||P"), None);
        assert_eq!(control_id_of("PID|1"), None);
        assert_eq!(control_id_of("MSH|^"), None);
    }

    fn ack(msa: &str, err: &str) -> String {
        let mut s = format!("MSH|^~\\&|DPI|CHU|PFI|CHU|20240101||ACK^T02^ACK|A1|P|2.6\rMSA|{msa}");
        if !err.is_empty() {
            s.push('\r');
            s.push_str(err);
        }
        s
    }

    #[test]
    fn ack_outcomes() {
        assert_eq!(
            read_ack(ack("AA|42", "").as_bytes(), "42").unwrap(),
            AckOutcome::Accepted
        );
        assert_eq!(
            read_ack(ack("CA|42", "").as_bytes(), "42").unwrap(),
            AckOutcome::Accepted
        );
        // The guide's two examples: a technical error (ERR-3) and an application error (ERR-5).
        let tech = read_ack(
            ack(
                "AE|42",
                "ERR||MSH^1^12|203^Unsupported version id^messageErrorCondition|E",
            )
            .as_bytes(),
            "42",
        )
        .unwrap();
        assert_eq!(
            tech,
            AckOutcome::Rejected {
                code: "203".into(),
                text: "Unsupported version id".into()
            }
        );
        let app = read_ack(
            ack("AE|42", "ERR||PID^1^3|207^Application error^messageErrorCondition| E|902^Identifiant de patient inconnu^applicationErrorCode").as_bytes(),
            "42",
        )
        .unwrap();
        assert_eq!(
            app,
            AckOutcome::Rejected {
                code: "902".into(),
                text: "Identifiant de patient inconnu".into()
            }
        );
        assert_eq!(app.lps_error(), Some(LpsError::PatientUnknown));
        assert!(LpsError::PatientUnknown.needs_identity_review());
        assert_eq!(
            read_ack(ack("AR|42|busy", "").as_bytes(), "42").unwrap(),
            AckOutcome::Retry {
                text: "busy".into()
            }
        );
        assert_eq!(
            read_ack(ack("AE|42", "").as_bytes(), "42").unwrap(),
            AckOutcome::Rejected {
                code: String::new(),
                text: String::new()
            }
        );
    }

    #[test]
    fn ack_errors() {
        assert_eq!(
            read_ack(ack("AA|41", "").as_bytes(), "42")
                .unwrap_err()
                .code(),
            codes::DPI_ACK_MISMATCH
        );
        assert_eq!(
            read_ack(ack("XX|42", "").as_bytes(), "42")
                .unwrap_err()
                .code(),
            codes::DPI_ACK_INVALID
        );
        assert_eq!(
            read_ack(b"garbage", "42").unwrap_err().code(),
            codes::DPI_ACK_INVALID
        );
        let no_msa = "MSH|^~\\&|DPI|CHU|PFI|CHU|20240101||ACK^T02^ACK|A1|P|2.6";
        assert_eq!(
            read_ack(no_msa.as_bytes(), "42").unwrap_err().code(),
            codes::DPI_ACK_INVALID
        );
        let not_ack = MDM.replace("MDM^T02^MDM_T02", "ADT^A01");
        assert_eq!(
            read_ack(not_ack.as_bytes(), "C|42").unwrap_err().code(),
            codes::DPI_ACK_INVALID
        );
    }

    #[test]
    fn lps_codes_round_trip() {
        for c in 900..=906 {
            let e = LpsError::from_code(&c.to_string()).unwrap();
            assert_eq!(e.code(), c.to_string());
            assert!(!e.label().is_empty());
        }
        assert_eq!(LpsError::from_code("907"), None);
    }
}
