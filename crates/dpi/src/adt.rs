//! The ADT listener: the patient identities the hospital's identity server (GAM) sends as IHE
//! PAM France 2.11 ADT messages over MLLP.
//!
//! Relais needs the hospital's identities to file received documents (INS and traits to match a
//! CDA to an IPP) and to address outgoing ones. The listener accepts A01, A03, A04, A05, A08,
//! A28, A31 and A40 (merge), extracts a [`PatientUpdate`] per patient, hands the message's
//! updates over a channel as one [`PatientEvent`] and answers:
//! - AA once the event is in the channel;
//! - AE when the message cannot be parsed (ERR-3 199), is not one of those events (200/201), has
//!   no PID (100) or no usable PID-3 identifier (101), carries a malformed INS (102) or is an A40
//!   without a prior IPP in MRG-1 (101): resending it unchanged would fail again;
//! - AR when the consumer is closed or stays full past the hand-over timeout: resend later.

use crate::codes;
use futures_util::{SinkExt, StreamExt};
use relais_core::{Limits, RuleCode};
use relais_hl7::mllp::MllpCodec;
use relais_hl7::{AckCode, Delimiters, Message, Segment, build_ack, encode_for_wire, escape};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::codec::Framed;

/// The ADT events the listener accepts.
pub const ACCEPTED_TRIGGERS: [&str; 8] = ["A01", "A03", "A04", "A05", "A08", "A28", "A31", "A40"];

/// An identity as the hospital's identity server knows it (one PID), or as a CSV row gives it.
///
/// Patient data: the `Debug` output only says which fields are filled.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PatientUpdate {
    /// The IPP (PID-3 repetition of type `PI`).
    pub ipp: Option<String>,
    /// The IPP's assigning authority: CX-4.2 (an OID) or, without it, CX-4.1.
    pub ipp_authority: Option<String>,
    /// The INS matricule (PID-3 repetition of type `INS` with an INS OID).
    pub ins: Option<String>,
    /// The INS OID (1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test, .11 demo).
    pub ins_oid: Option<String>,
    /// Birth family name: XPN-1 of the PID-5 repetition of type `L`.
    pub birth_family: Option<String>,
    /// First birth first name: XPN-2 of that repetition.
    pub given_birth_first: Option<String>,
    /// The list of birth first names, space-separated as written: XPN-3 of that repetition.
    pub birth_given_names: Option<String>,
    /// PID-7.1 as written (`YYYYMMDD`).
    pub birth_date: Option<String>,
    /// PID-8 (`F`, `M`, `U`...).
    pub sex: Option<String>,
    /// INSEE code of the birthplace: XAD-9 of the PID-11 repetition of type `BDL`, else PID-23.
    pub birthplace_insee: Option<String>,
    /// PID-32, identity reliability: `VIDE`, `PROV`, `VALI`, `DOUTE`, `FICTI`.
    pub identity_status: Option<String>,
    /// A40 only: the IPP merged into this one (MRG-1, type `PI`), which no longer exists.
    pub merged_ipp: Option<String>,
}

impl fmt::Debug for PatientUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |o: &Option<String>| if o.is_some() { "present" } else { "absent" };
        f.debug_struct("PatientUpdate")
            .field("ipp", &p(&self.ipp))
            .field("ipp_authority", &self.ipp_authority)
            .field("ins", &p(&self.ins))
            .field("ins_oid", &self.ins_oid)
            .field("birth_family", &p(&self.birth_family))
            .field("given_birth_first", &p(&self.given_birth_first))
            .field("birth_given_names", &p(&self.birth_given_names))
            .field("birth_date", &p(&self.birth_date))
            .field("sex", &p(&self.sex))
            .field("birthplace_insee", &p(&self.birthplace_insee))
            .field("identity_status", &self.identity_status)
            .field("merged_ipp", &p(&self.merged_ipp))
            .finish()
    }
}

impl PatientUpdate {
    /// The INS and its OID when the identity is qualified (`VALI`): the only case where the
    /// CI-SIS lets the INS be used to file or send documents.
    pub fn qualified_ins(&self) -> Option<(&str, &str)> {
        match (&self.ins, &self.ins_oid, self.identity_status.as_deref()) {
            (Some(ins), Some(oid), Some("VALI")) => Some((ins, oid)),
            _ => None,
        }
    }

    /// The birth first names as a list.
    pub fn birth_given_names_list(&self) -> Vec<&str> {
        self.birth_given_names
            .as_deref()
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default()
    }
}

/// One ADT message, handed over by the listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PatientEvent {
    /// MSH-9.2: `A01`, `A08`, `A40`...
    pub trigger: String,
    /// MSH-10 of the ADT.
    pub control_id: String,
    /// MSH-3.1, the sending application (the GAM).
    pub sending_application: String,
    /// One update per PID (A40 may merge several pairs; the other events have one).
    pub updates: Vec<PatientUpdate>,
}

/// Why an ADT was refused: the ACK's ERR carries `hl7_code` (table 0357) and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdtError {
    /// The stable rule code.
    pub code: RuleCode,
    /// The HL7 table 0357 code of ERR-3.
    pub hl7_code: &'static str,
    /// What is wrong, without patient data.
    pub message: String,
}

fn refuse(code: RuleCode, hl7_code: &'static str, message: impl Into<String>) -> AdtError {
    AdtError {
        code,
        hl7_code,
        message: message.into(),
    }
}

/// Settings of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtListenerConfig {
    /// Bounds; `max_hl7_bytes` bounds each message.
    pub limits: Limits,
    /// Most connections served at once; further ones wait.
    pub max_connections: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Longest wait for room in the channel before answering AR.
    pub handover_timeout: Duration,
    /// When set, only PID-3 `PI` identifiers of this assigning authority (CX-4.2 OID or CX-4.1
    /// namespace) are taken as the IPP; otherwise the first `PI`.
    pub ipp_authority: Option<String>,
}

impl Default for AdtListenerConfig {
    fn default() -> Self {
        AdtListenerConfig {
            limits: Limits::default(),
            max_connections: 16,
            idle_timeout: Duration::from_secs(600),
            handover_timeout: Duration::from_secs(5),
            ipp_authority: None,
        }
    }
}

/// Extract the patient updates of a parsed ADT message.
pub fn extract_event(msg: &Message, ipp_authority: Option<&str>) -> Result<PatientEvent, AdtError> {
    let t = msg.message_type();
    if t.code.trim() != "ADT" {
        return Err(refuse(
            codes::ADT_UNSUPPORTED,
            "200",
            "the listener accepts ADT messages only",
        ));
    }
    let trigger = t.trigger.trim().to_string();
    if !ACCEPTED_TRIGGERS.contains(&trigger.as_str()) {
        return Err(refuse(
            codes::ADT_UNSUPPORTED,
            "201",
            format!(
                "ADT event {} is not one Relais uses ({})",
                sanitize(&trigger),
                ACCEPTED_TRIGGERS.join(", ")
            ),
        ));
    }
    let merge = trigger == "A40";
    let segments: Vec<Segment<'_>> = msg.segments().collect();
    let mut updates = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        if seg.name() != "PID" {
            continue;
        }
        let mut update = patient_of(seg, ipp_authority)?;
        if merge {
            let mrg = segments[i + 1..]
                .iter()
                .take_while(|s| s.name() != "PID")
                .find(|s| s.name() == "MRG");
            let merged = mrg
                .and_then(|m| first_ipp(m, 1, ipp_authority))
                .map(|(id, _)| id);
            if merged.is_none() {
                return Err(refuse(
                    codes::ADT_MERGE_INCOMPLETE,
                    "101",
                    format!(
                        "{}: an A40 merge needs MRG-1 with the prior IPP (type PI)",
                        seg.location_prefix()
                    ),
                ));
            }
            update.merged_ipp = merged;
        }
        updates.push(update);
    }
    if updates.is_empty() {
        return Err(refuse(
            codes::ADT_NO_IDENTIFIER,
            "100",
            "the message has no PID segment",
        ));
    }
    Ok(PatientEvent {
        trigger,
        control_id: msg.control_id(),
        sending_application: msg.sending_application().namespace_id,
        updates,
    })
}

/// The first PI identifier of field `n` of a segment (PID-3, MRG-1): the id and its authority.
fn first_ipp(
    seg: &Segment<'_>,
    n: usize,
    authority: Option<&str>,
) -> Option<(String, Option<String>)> {
    let field = seg.field(n)?;
    field.repetitions().find_map(|rep| {
        let id = rep.component_value(1).trim().to_string();
        if id.is_empty() || rep.component_value(5).trim() != "PI" {
            return None;
        }
        let c4 = rep.component(4);
        let ns = c4.and_then(|c| c.subcomponent(1)).unwrap_or_default();
        let oid = c4.and_then(|c| c.subcomponent(2)).unwrap_or_default();
        if let Some(want) = authority
            && want != ns.trim()
            && want != oid.trim()
        {
            return None;
        }
        let auth = [oid.trim(), ns.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(str::to_string);
        Some((id, auth))
    })
}

fn patient_of(pid: &Segment<'_>, ipp_authority: Option<&str>) -> Result<PatientUpdate, AdtError> {
    let mut u = PatientUpdate::default();
    if let Some((id, auth)) = first_ipp(pid, 3, ipp_authority) {
        u.ipp = Some(id);
        u.ipp_authority = auth;
    }
    if let Some(field) = pid.field(3) {
        for (i, rep) in field.repetitions().enumerate() {
            let oid = rep
                .component(4)
                .and_then(|c| c.subcomponent(2))
                .unwrap_or_default();
            let oid = oid.trim();
            if rep.component_value(5).trim() != "INS"
                || !relais_hl7::message::INS_OIDS.contains(&oid)
            {
                continue;
            }
            let value = rep.component_value(1).trim().to_string();
            if relais_cda::ins::check_ins_value(&value).is_some() {
                return Err(refuse(
                    codes::ADT_INS_INVALID,
                    "102",
                    format!(
                        "{}~{}: the INS is malformed (15 characters with a valid control key expected)",
                        pid.location(3),
                        i + 1
                    ),
                ));
            }
            if u.ins.is_none() {
                u.ins = Some(value);
                u.ins_oid = Some(oid.to_string());
            }
        }
    }
    if u.ipp.is_none() && u.ins.is_none() {
        let what = if pid.field(3).is_none_or(|f| f.is_empty()) {
            "PID-3 is empty"
        } else {
            "PID-3 holds neither an IPP (type PI) nor an INS (type INS with an INS OID)"
        };
        let suffix = if ipp_authority.is_some() {
            " of the configured IPP authority"
        } else {
            ""
        };
        return Err(refuse(
            codes::ADT_NO_IDENTIFIER,
            "101",
            format!("{}: {what}{suffix}", pid.location_prefix()),
        ));
    }
    let non_empty = |s: String| {
        let t = s.trim().to_string();
        (!t.is_empty()).then_some(t)
    };
    if let Some(field) = pid.field(5)
        && let Some(rep) = field
            .repetitions()
            .find(|r| r.component_value(7).trim() == "L")
    {
        u.birth_family = non_empty(rep.component_value(1));
        u.given_birth_first = non_empty(rep.component_value(2));
        u.birth_given_names = non_empty(rep.component_value(3));
    }
    u.birth_date = pid.component_value(7, 1).and_then(non_empty);
    u.sex = pid.component_value(8, 1).and_then(non_empty);
    u.birthplace_insee = pid
        .field(11)
        .and_then(|f| {
            f.repetitions()
                .find(|r| r.component_value(7).trim() == "BDL")
        })
        .and_then(|r| non_empty(r.component_value(9)))
        .or_else(|| pid.component_value(23, 1).and_then(non_empty));
    u.identity_status = pid.component_value(32, 1).and_then(non_empty);
    Ok(u)
}

fn sanitize(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

/// The MLLP server receiving ADT messages.
#[derive(Debug)]
pub struct AdtListener {
    listener: TcpListener,
    config: Arc<AdtListenerConfig>,
    tx: mpsc::Sender<PatientEvent>,
}

impl AdtListener {
    /// Bind the listening socket (`127.0.0.1:0` picks a free port, see [`AdtListener::local_addr`]).
    pub async fn bind(
        address: &str,
        config: AdtListenerConfig,
        tx: mpsc::Sender<PatientEvent>,
    ) -> std::io::Result<AdtListener> {
        let listener = TcpListener::bind(address).await?;
        Ok(AdtListener {
            listener,
            config: Arc::new(config),
            tx,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes. Then no connection is accepted any more, and open
    /// connections close once the message they are processing (if any) is answered.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            // Take a connection slot first: beyond the limit, clients wait in the backlog.
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "ADT listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let config = self.config.clone();
            let tx = self.tx.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                serve_connection(stream, config, tx, stop).await;
                drop(permit);
                tracing::debug!(%peer, "ADT connection closed");
            });
        }
        let _ = stop_tx.send(true);
    }
}

async fn serve_connection(
    stream: TcpStream,
    config: Arc<AdtListenerConfig>,
    tx: mpsc::Sender<PatientEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, MllpCodec::new(&config.limits));
    loop {
        if *stop.borrow() {
            return;
        }
        let next = tokio::select! {
            _ = stop.changed() => return,
            n = tokio::time::timeout(config.idle_timeout, framed.next()) => n,
        };
        let frame = match next {
            Err(_) | Ok(None) => return,
            Ok(Some(Err(e))) => {
                tracing::warn!(code = %e.code(), "ADT listener: {e}; closing the connection");
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let answer = handle_frame(&frame, &config, &tx).await;
        if framed.send(answer).await.is_err() {
            return;
        }
    }
}

/// Process one received frame: the ACK to send, encoded for the wire.
async fn handle_frame(
    frame: &[u8],
    config: &AdtListenerConfig,
    tx: &mpsc::Sender<PatientEvent>,
) -> Vec<u8> {
    let msg = match relais_hl7::parse(frame, &config.limits) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(code = %e.code(), "ADT listener: unparseable message answered AE");
            return encode_for_wire(&fallback_ack(
                frame,
                AckCode::AE,
                "199",
                &format!("{}: {e}", codes::ADT_UNPARSEABLE),
            ));
        }
    };
    let control_id = msg.control_id();
    let event = match extract_event(&msg, config.ipp_authority.as_deref()) {
        Ok(ev) => ev,
        Err(err) => {
            tracing::warn!(code = %err.code, control_id = %control_id, "ADT refused: {}", err.message);
            let text = format!("{}: {}", err.code, err.message);
            return encode_for_wire(&build_ack(&msg, AckCode::AE, Some((err.hl7_code, &text))));
        }
    };
    let trigger = event.trigger.clone();
    let count = event.updates.len();
    let handed = match tokio::time::timeout(config.handover_timeout, tx.reserve()).await {
        Ok(Ok(permit)) => {
            permit.send(event);
            Ok(())
        }
        Ok(Err(_)) => Err("the identity consumer is stopped"),
        Err(_) => Err("the identity consumer is busy"),
    };
    match handed {
        Ok(()) => {
            tracing::info!(trigger = %trigger, control_id = %control_id, patients = count, "ADT handed over");
            encode_for_wire(&build_ack(&msg, AckCode::AA, None))
        }
        Err(why) => {
            tracing::warn!(code = %codes::ADT_HANDOVER, control_id = %control_id, "ADT answered AR: {why}");
            let text = format!("{why}; resend later");
            encode_for_wire(&build_ack(
                &msg,
                AckCode::AR,
                Some((codes::ADT_HANDOVER.as_str(), &text)),
            ))
        }
    }
}

/// An ACK for bytes that did not parse: header fields are taken from the raw first line when it
/// looks like an MSH (control id for MSA-2, applications swapped), escaped with standard
/// delimiters.
pub fn fallback_ack(raw: &[u8], code: AckCode, hl7_code: &str, text: &str) -> String {
    let d = Delimiters::default();
    let start = raw
        .iter()
        .position(|&b| b != 0x0B && b != b'\r' && b != b'\n')
        .unwrap_or(raw.len());
    let raw = &raw[start..];
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let line_end = raw
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end.min(4096)]);
    let mut raw_fields: Vec<&str> = Vec::new();
    let mut comp = '^';
    if let Some(rest) = line.strip_prefix("MSH")
        && let Some(fs) = rest.chars().next()
        && !fs.is_alphanumeric()
        && !fs.is_whitespace()
    {
        comp = rest.chars().nth(1).unwrap_or('^');
        // raw_fields[k] is MSH-(k+1) for k >= 1 (MSH-1 is the separator itself).
        raw_fields = rest.split(fs).collect();
    }
    let component = |n: usize, c: usize| -> String {
        let field = raw_fields.get(n - 1).copied().unwrap_or("");
        let value = field.split(comp).nth(c - 1).unwrap_or("");
        let clean: String = value
            .chars()
            .filter(|ch| !ch.is_control())
            .take(60)
            .collect();
        escape(&clean, &d)
    };
    let f = |n: usize| component(n, 1);
    let trigger: String = component(9, 2)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(3)
        .collect();
    let msh9 = if trigger.is_empty() {
        "ACK".to_string()
    } else {
        format!("ACK^{trigger}^ACK")
    };
    let version = if f(12).is_empty() {
        "2.5".to_string()
    } else {
        f(12)
    };
    let processing = if f(11).is_empty() {
        "P".to_string()
    } else {
        f(11)
    };
    let mut out = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{}||{msh9}|{}|{processing}|{version}\rMSA|{}|{}",
        f(5),
        f(6),
        f(3),
        f(4),
        crate::mdm::hl7_timestamp_now(),
        fallback_control_id(),
        code.as_str(),
        f(10),
    );
    out.push_str(&format!(
        "\rERR|||{}^{}^HL70357|E",
        escape(hl7_code, &d),
        escape(text, &d)
    ));
    out
}

fn fallback_control_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "RX{millis}{:04}",
        N.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        relais_hl7::parse(s.as_bytes(), &Limits::default()).unwrap()
    }

    const A28: &str = "MSH|^~\\&|GAM|CHU|RELAIS|CHU|20240101||ADT^A28^ADT_A05|77|P|2.5\rEVN||20240101\rPID|1||123^^^CHU&1.2.3&ISO^PI~456^^^OTHER&9.9&ISO^PI||DOE^JANE^JANE ANN^^^^L~SMITH^JANE^^^^^D||19800101|F|||^^^^^^BDL^^75056|||||||||||||||||||||PROV\rPV1|1|N";

    #[test]
    fn extracts_first_pi_or_the_configured_authority() {
        let m = parse(A28);
        let ev = extract_event(&m, None).unwrap();
        let u = &ev.updates[0];
        assert_eq!(u.ipp.as_deref(), Some("123"));
        assert_eq!(u.ipp_authority.as_deref(), Some("1.2.3"));
        assert_eq!(u.birth_family.as_deref(), Some("DOE"));
        assert_eq!(u.birth_given_names_list(), ["JANE", "ANN"]);
        assert_eq!(u.birthplace_insee.as_deref(), Some("75056"));
        assert_eq!(u.identity_status.as_deref(), Some("PROV"));
        assert_eq!(u.qualified_ins(), None);
        assert_eq!(ev.trigger, "A28");
        assert_eq!(ev.control_id, "77");
        let other = extract_event(&m, Some("OTHER")).unwrap();
        assert_eq!(other.updates[0].ipp.as_deref(), Some("456"));
        let none = extract_event(&m, Some("1.9.9")).unwrap_err();
        assert_eq!(
            (none.code, none.hl7_code),
            (codes::ADT_NO_IDENTIFIER, "101")
        );
    }

    #[test]
    fn refusals() {
        let wrong = parse(&A28.replace("ADT^A28^ADT_A05", "ADT^A02^ADT_A02"));
        assert_eq!(extract_event(&wrong, None).unwrap_err().hl7_code, "201");
        let oru = parse(&A28.replace("ADT^A28^ADT_A05", "ORU^R01^ORU_R01"));
        assert_eq!(extract_event(&oru, None).unwrap_err().hl7_code, "200");
        let no_pid = parse(
            "MSH|^~\\&|GAM|CHU|RELAIS|CHU|20240101||ADT^A08^ADT_A01|1|P|2.5\rEVN||20240101\rPV1|1|N",
        );
        assert_eq!(extract_event(&no_pid, None).unwrap_err().hl7_code, "100");
        let bad_ins = parse(&A28.replace(
            "PID|1||123^^^CHU&1.2.3&ISO^PI",
            "PID|1||279035121518988^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS",
        ));
        let e = extract_event(&bad_ins, None).unwrap_err();
        assert_eq!((e.code, e.hl7_code), (codes::ADT_INS_INVALID, "102"));
        assert!(
            !e.message.contains("279035"),
            "the INS leaked: {}",
            e.message
        );
    }

    #[test]
    fn fallback_ack_takes_what_it_can() {
        let ack = fallback_ack(
            b"\x0bMSH|^~\\&|GAM|CHU|RELAIS|CHU|x||ADT^A01^ADT_A01|C9|P|2.5\rPID|\xff\xfe",
            AckCode::AE,
            "199",
            "bad",
        );
        let m = parse(&ack);
        assert_eq!(m.segment("MSA", 1).unwrap().value(2).as_deref(), Some("C9"));
        assert_eq!(m.msh().value(3).as_deref(), Some("RELAIS"));
        assert_eq!(m.message_type().trigger, "A01");
        assert!(
            relais_hl7::validate_profile(&m)
                .iter()
                .all(|f| !f.is_error()),
            "{:?}",
            relais_hl7::validate_profile(&m)
        );
        let blind = fallback_ack(b"\x00\x01garbage", AckCode::AE, "199", "not HL7");
        let m = parse(&blind);
        assert_eq!(m.segment("MSA", 1).unwrap().value(1).as_deref(), Some("AE"));
    }
}
