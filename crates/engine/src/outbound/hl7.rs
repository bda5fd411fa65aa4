//! HL7 intake of outbound documents: the producer (lab system, RIS, DPI) sends ORU^R01 (v2.5) or
//! MDM^T02/T10 (v2.6) messages of the ANS guide "Transmission de documents CDA en HL7v2"
//! (MSH-21 `2.1^CISIS_CDA_HL7_V2`) over MLLP, and Relais sends the CDA they carry over MSSanté.
//!
//! For each message:
//!
//! 1. It is parsed ([`relais_hl7::parse`]); MSH-3.1 must be an allowed sender when
//!    `allowed_senders` is set; the type must be ORU^R01 or MDM^T02/T10 of the producer profile.
//! 2. A message seen before (same MSH-3/MSH-4/MSH-10 and the same bytes, MSH-7 aside: a resend)
//!    is answered as the first time was, and journaled nowhere again.
//! 3. The whole message goes through the checks of `relais check` (the HL7 profile, then the CDA
//!    of the first OBX: header rules, XSD, schematrons as configured). The CDA is sent **as is**.
//! 4. The recipients are the PRT segments with PRT-4 `RCT`: the MSSanté address in PRT-15.4,
//!    or, without one, the RPPS of PRT-5 (PRT-5.13 `RPPS`, or `IDNPS` = `8` + RPPS) resolved
//!    through the Annuaire. The MetaDMPMSS observations must allow them: `DESTMSSANTEPS` for
//!    professionals and organisations, `DESTMSSANTEPAT` for the patient (`<INS>@patient.mssante.fr`),
//!    never a patient with `INVISIBLE_PATIENT` nor a professional with `MASQUE_PS`. Every address
//!    must be on the liste blanche. A PRT `REPLY` gives the mail's `Reply-To`; `CORPSMAIL_PS`
//!    (or `CORPSMAIL_PATIENT` for a patient only) its body; `ACK_LECTURE_MSS` whether an MDN is
//!    asked; an NTE `FIN` after `DESTMSSANTEPAT` sets `X-MSS-MES: FIN`.
//! 5. The XDM package and the mail are built by `relais-compose` around the producer's CDA
//!    (the mail also carries the CDA's embedded PDF, as the CI-SIS asks). A message whose
//!    first OBX carries a PDF (`^AP^PDF^Base64^`) instead is taken only with
//!    `[outbound.mllp.pdf]`: the level 1 CDA is then built as for a watched folder, from the
//!    PID, PV1, OBR and the PRT `SB` (author, organisation), the rest from that section.
//! 6. The letter is journaled in the Outbox, queued, or failed with the refusal's code: only
//!    then is the ACK sent. **AA**: the letter is journaled (the producer is released). **AE**
//!    with an ERR segment (ERR-3 `207`, ERR-5 the Relais code and what is wrong; table 0357
//!    codes for syntax errors): the message is wrong, resending it unchanged gives the same
//!    answer; the letter is journaled as failed and the message kept in `error_dir` with its
//!    reason. **AR**: a passing problem (the journal or the Annuaire unavailable): resend later.
//!
//! With `[outbound.mllp.zam]`, the delivery (DSN) and reading (MDN) of each recipient go back to
//! the producer as ZAM^Z02 / ZAM^Z03 when its message asked for them (`ACK_RECEPTION`,
//! `ACK_LECTURE_MSS`), each once (`<data_dir>/outbound/zam-sent.txt` remembers them).
//!
//! Logs carry control ids, letter ids and codes, never patient data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relais_check::Checker;
use relais_compose::{BuildContext, Intake, MailOptions, ProductInfo};
use relais_core::{Finding, Limits};
use relais_hl7::mllp::{MllpCodec, MllpError};
use relais_hl7::{AckCode, Message, NS_V2, Segment, build_ack, encode_for_wire};
use relais_store::{
    ErrorInfo, LetterBody, LetterIntake, LetterMail, LetterRequest, LetterSource, LetterSourceKind,
    LetterState, sha256_of_parts,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::codec::Framed;

use super::Outbound;
use super::config::MllpSettings;
use super::recipients::RecipientProblem;
use crate::{Engine, EngineError};

/// Stable codes of HL7 intake refusals (besides the check's own `HL7-*` and `CDA-*` codes and
/// the recipient codes of [`super::recipients::codes`]).
pub mod codes {
    /// The bytes are not an HL7v2 message.
    pub const UNPARSEABLE: &str = "OUTBOUND-HL7-UNPARSEABLE";
    /// MSH-3.1 is not in `allowed_senders`.
    pub const SENDER_NOT_ALLOWED: &str = "OUTBOUND-HL7-SENDER-NOT-ALLOWED";
    /// Not ORU^R01 v2.5 / MDM^T02 or T10 v2.6 with MSH-21 `2.1^CISIS_CDA_HL7_V2`.
    pub const UNSUPPORTED: &str = "OUTBOUND-HL7-UNSUPPORTED";
    /// The message carries no CDA in its first OBX (a PDF, nothing, or an unreadable CDA).
    pub const NO_CDA: &str = "OUTBOUND-HL7-NO-CDA";
    /// No PRT `RCT`, or one naming neither an address nor an RPPS.
    pub const NO_RECIPIENT: &str = "OUTBOUND-HL7-NO-RECIPIENT";
    /// The MetaDMPMSS flags ask for no MSSanté exchange, or forbid a recipient given.
    pub const FLAGS: &str = "OUTBOUND-HL7-FLAGS";
    /// The CDA carries no PDF (level 3 without the copy section): the mail needs it.
    pub const NO_PDF: &str = "OUTBOUND-HL7-NO-PDF";
    /// The CDA header cannot give what the XDM package and the mail need.
    pub const HEADER: &str = "OUTBOUND-HL7-HEADER";
    /// A passing problem (journal, Annuaire): the message is answered AR.
    pub const TRANSIENT: &str = "OUTBOUND-HL7-TRANSIENT";
}

const PATIENT_DOMAIN: &str = "patient.mssante.fr";

/// What the intake of one message decided.
enum Verdict {
    /// Journal this letter (queued or refused) and answer after the commit.
    Journal(Box<LetterRequest>),
    /// Answer AR: a passing problem; nothing journaled.
    Later(String),
}

/// A refusal: code and text (no patient data).
fn refusal(code: &str, text: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        text: text.into(),
    }
}

/// The listener's shared state.
struct Listener {
    outbound: Arc<Outbound>,
    checker: Arc<Checker>,
    settings: MllpSettings,
    limits: Limits,
}

impl Engine {
    /// Starts the MLLP listener of `[outbound.mllp]` (once; a second call answers the same
    /// address). It stops accepting when `shutdown` flips to true; a message being processed is
    /// still answered. `None` when no listener is configured.
    pub async fn start_outbound_mllp(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Option<SocketAddr>, EngineError> {
        let Some(outbound) = self.outbound.clone() else {
            return Ok(None);
        };
        let Some(settings) = outbound.config.mllp.clone() else {
            return Ok(None);
        };
        let mut bound = outbound.mllp_addr.lock().await;
        if let Some(addr) = *bound {
            return Ok(Some(addr));
        }
        let listener =
            TcpListener::bind(&settings.listen)
                .await
                .map_err(|e| EngineError::Source {
                    source_name: "outbound.mllp".into(),
                    reason: format!("cannot listen on {}: {e}", settings.listen),
                })?;
        let addr = listener
            .local_addr()
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut limits = self.config.limits.clone();
        limits.max_hl7_bytes = settings.max_message_bytes;
        let state = Arc::new(Listener {
            outbound: outbound.clone(),
            checker: self.checker.clone(),
            settings,
            limits,
        });
        tracing::info!(%addr, "outbound HL7 listener (MLLP) ready");
        if let Some(zam) = state.settings.zam.clone() {
            tokio::spawn(report_zam(
                outbound.clone(),
                zam,
                self.config.limits.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(serve(listener, state, shutdown));
        *bound = Some(addr);
        Ok(Some(addr))
    }
}

async fn serve(listener: TcpListener, state: Arc<Listener>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(state.settings.max_connections.max(1)));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "outbound HL7 listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, peer, state, stop).await;
            drop(permit);
        });
    }
    tracing::info!("outbound HL7 listener stopped");
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<Listener>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let max = usize::try_from(state.settings.max_message_bytes).unwrap_or(usize::MAX);
    let mut framed = Framed::new(stream, MllpCodec::with_max_frame(max));
    let idle = Duration::from_secs(state.settings.idle_timeout_secs.max(1));
    loop {
        if *stop.borrow() {
            return;
        }
        let next = tokio::select! {
            _ = stop.changed() => return,
            n = tokio::time::timeout(idle, framed.next()) => n,
        };
        let frame = match next {
            Err(_) | Ok(None) => return,
            Ok(Some(Err(e @ MllpError::FrameTooLarge { .. }))) => {
                // The frame was dropped unread: say why, then close (the rest of it follows).
                tracing::warn!(%peer, code = %e.code(), "outbound HL7 message too large; answered AE");
                let text = format!(
                    "{}: the message is larger than the {} bytes allowed ([outbound.mllp] max_message_bytes)",
                    e.code(),
                    state.settings.max_message_bytes
                );
                let ack = relais_dpi::adt::fallback_ack(b"", AckCode::AE, "207", &text);
                let _ = framed.send(encode_for_wire(&ack)).await;
                return;
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(%peer, code = %e.code(), "outbound HL7 listener: {e}; closing the connection");
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let answer = state.handle(&frame, peer).await;
        if framed.send(answer).await.is_err() {
            return;
        }
    }
}

impl Listener {
    /// One message in, its ACK (wire bytes) out, after the journal's commit.
    async fn handle(&self, raw: &[u8], peer: SocketAddr) -> Vec<u8> {
        let msg = match relais_hl7::parse(raw, &self.limits) {
            Ok(m) => m,
            Err(e) => {
                let text = format!(
                    "{}: the message cannot be read as HL7v2 ({}: {e})",
                    codes::UNPARSEABLE,
                    e.code()
                );
                let source = LetterSource {
                    kind: LetterSourceKind::Mllp,
                    key: format!("unparseable|{}", peer.ip()),
                    sha256: sha256_of_parts(&[raw]),
                };
                let req = LetterRequest {
                    source,
                    document_type: None,
                    cda_id: None,
                    cda_level: None,
                    recipients: Vec::new(),
                    body: LetterBody::Refused(refusal(codes::UNPARSEABLE, text.clone())),
                    detail: json!({ "peer": peer.to_string(), "size": raw.len() }),
                };
                return match self.journal(req, raw).await {
                    Ok(_) => encode_for_wire(&relais_dpi::adt::fallback_ack(
                        raw,
                        AckCode::AE,
                        "199",
                        &text,
                    )),
                    Err(why) => encode_for_wire(&relais_dpi::adt::fallback_ack(
                        raw,
                        AckCode::AR,
                        "207",
                        &format!("{}: {why}; resend later", codes::TRANSIENT),
                    )),
                };
            }
        };
        let control_id = msg.control_id();
        let verdict = self.decide(&msg, raw, peer).await;
        let req = match verdict {
            Verdict::Journal(req) => req,
            Verdict::Later(why) => {
                tracing::warn!(%control_id, reason = %why, "outbound HL7 message answered AR");
                let text = format!("{why}; resend the message later");
                return encode_for_wire(&build_ack(
                    &msg,
                    AckCode::AR,
                    Some((codes::TRANSIENT, &text)),
                ));
            }
        };
        match self.journal(*req, raw).await {
            Ok((id, state, error)) => match error {
                None => {
                    tracing::info!(%control_id, letter = %id, %state, "outbound HL7 message journaled; answered AA");
                    encode_for_wire(&build_ack(&msg, AckCode::AA, None))
                }
                Some(e) => {
                    tracing::warn!(%control_id, letter = %id, code = %e.code, "outbound HL7 message refused; answered AE");
                    let text = format!("letter {id}: {}", e.text);
                    encode_for_wire(&build_ack(&msg, AckCode::AE, Some((&e.code, &text))))
                }
            },
            Err(why) => {
                tracing::warn!(%control_id, reason = %why, "outbound HL7 message not journaled; answered AR");
                let text = format!("{why}; resend the message later");
                encode_for_wire(&build_ack(
                    &msg,
                    AckCode::AR,
                    Some((codes::TRANSIENT, &text)),
                ))
            }
        }
    }

    /// Journals the letter (committed before this returns) and keeps a refused message in the
    /// error folder. Answers the letter, its state and, when failed, its error.
    async fn journal(
        &self,
        req: LetterRequest,
        raw: &[u8],
    ) -> Result<(relais_store::LetterId, LetterState, Option<ErrorInfo>), String> {
        let refused_now = match &req.body {
            LetterBody::Refused(e) => Some(e.clone()),
            LetterBody::Built(_) => None,
        };
        let outbox = self.outbound.outbox();
        let outcome = outbox
            .intake_letter(req)
            .await
            .map_err(|e| format!("the journal is unavailable ({e})"))?;
        let (id, state, new) = match outcome {
            LetterIntake::New { id, state } => (id, state, true),
            LetterIntake::Duplicate { existing, state } => (existing, state, false),
        };
        if state != LetterState::Failed {
            return Ok((id, state, None));
        }
        let error = if new {
            refused_now
        } else {
            outbox
                .get_letter(id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.last_error)
        }
        .unwrap_or_else(|| {
            refusal(
                "OUTBOUND-FAILED",
                "the letter failed; see `relais outbound show`",
            )
        });
        if new {
            self.keep_refused(id, raw, &error).await;
        }
        Ok((id, state, Some(error)))
    }

    /// Writes a refused message and its reason into the error folder (best effort: the journal
    /// already holds the refusal).
    async fn keep_refused(&self, id: relais_store::LetterId, raw: &[u8], e: &ErrorInfo) {
        let dir = self.outbound.hl7_error_dir.clone();
        let raw = raw.to_vec();
        let reason = format!(
            "Relais did not send the document of this HL7 message.\n\nletter: {id}\ncode: {}\n\n{}\n\nSee `relais outbound show {id}`. Fix the cause and send the message again with a new MSH-10.\n",
            e.code, e.text
        );
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            write_atomically(&dir, &format!("{id}.hl7"), &raw)?;
            write_atomically(&dir, &format!("{id}.reason.txt"), reason.as_bytes())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(letter = %id, "refused HL7 message not kept in the error folder");
        }
    }

    /// Everything up to the journal: the letter to journal, or AR.
    async fn decide(&self, msg: &Message, raw: &[u8], peer: SocketAddr) -> Verdict {
        let app = msg.sending_application().namespace_id;
        let facility = msg.sending_facility().namespace_id;
        let control_id = msg.control_id();
        let t = msg.message_type();
        let source = LetterSource {
            kind: LetterSourceKind::Mllp,
            key: format!("{app}|{facility}|{control_id}"),
            sha256: message_sha256(msg),
        };
        let doc_type = msg
            .segment("OBR", 1)
            .and_then(|o| o.component_value(4, 1))
            .filter(|c| !c.trim().is_empty());
        let asked = Flags::read(msg);
        let detail = json!({
            "peer": peer.to_string(),
            "message_type": format!("{}^{}", t.code, t.trigger),
            "sending_application": app,
            "sending_facility": facility,
            "control_id": control_id,
            "size": raw.len(),
            // The business acknowledgements the producer asked for (ZAM^Z02 / ZAM^Z03).
            "ack_reception": asked.get("ACK_RECEPTION") == Some(true),
            "ack_read": asked.get("ACK_LECTURE_MSS") == Some(true),
        });
        let refuse = |e: ErrorInfo, recipients| {
            Verdict::Journal(Box::new(LetterRequest {
                source: source.clone(),
                document_type: doc_type.clone(),
                cda_id: None,
                cda_level: None,
                recipients,
                body: LetterBody::Refused(e),
                detail: detail.clone(),
            }))
        };
        // A resend is answered from the journal, before any check.
        match self.outbound.outbox().find_letter_by_source(&source).await {
            Ok(Some(_)) => {
                return refuse(refusal("OUTBOUND-DUPLICATE", "seen before"), Vec::new());
            }
            Ok(None) => {}
            Err(e) => return Verdict::Later(format!("the journal is unavailable ({e})")),
        }
        let allowed = &self.settings.allowed_senders;
        if !allowed.is_empty() && !allowed.iter().any(|a| a.trim() == app.trim()) {
            return refuse(
                refusal(
                    codes::SENDER_NOT_ALLOWED,
                    format!(
                        "MSH-3.1 (sending application) `{}` is not in [outbound.mllp] allowed_senders",
                        printable(&app)
                    ),
                ),
                Vec::new(),
            );
        }
        if let Err(e) = supported(msg) {
            return refuse(e, Vec::new());
        }
        if carries_pdf(msg) {
            let Some(defaults) = self.settings.pdf.clone() else {
                return refuse(
                    refusal(
                        codes::NO_CDA,
                        "OBX[1]-5 carries a PDF, not the CDA R2 document the guide's first OBX \
                         carries (ED ^TEXT^XML^Base64^); send the CDA, or configure \
                         [outbound.mllp.pdf] so that Relais builds a level 1 CDA around the PDF",
                    ),
                    Vec::new(),
                );
            };
            return match self
                .decide_pdf(msg, source.clone(), detail.clone(), &defaults)
                .await
            {
                Ok(v) => v,
                Err((e, recipients)) => refuse(e, recipients),
            };
        }
        // The checks of `relais check`: the HL7 profile, then the CDA.
        let checker = self.checker.clone();
        let bytes = raw.to_vec();
        let checked =
            tokio::task::spawn_blocking(move || checker.check_and_extract("mllp", &bytes)).await;
        let (report, extraction) = match checked {
            Ok(x) => x,
            Err(e) => return Verdict::Later(format!("the check task failed ({e})")),
        };
        let first_error = report
            .documents
            .iter()
            .flat_map(|d| d.findings.iter().map(move |f| (d.location.as_str(), f)))
            .chain(report.findings.iter().map(|f| ("", f)))
            .find(|(_, f)| f.is_error() && !address_given_by_rpps(msg, f));
        if let Some((location, f)) = first_error {
            return refuse(finding_refusal(location, f), Vec::new());
        }
        let Some(doc) = extraction.documents.into_iter().next() else {
            return refuse(
                refusal(codes::NO_CDA, "OBX[1]-5 carries no readable CDA document"),
                Vec::new(),
            );
        };
        let flags = Flags::read(msg);
        if msg
            .segment("ORC", 1)
            .and_then(|o| o.component_value(1, 1))
            .as_deref()
            == Some("CA")
        {
            return refuse(
                refusal(
                    codes::UNSUPPORTED,
                    "ORC-1 `CA` asks to delete a document: a mail cannot be taken back; Relais \
                     sends new documents (NW) and replacements (RO) only",
                ),
                Vec::new(),
            );
        }
        let (recipients, reply_to) = match read_recipients(msg, &flags) {
            Ok(r) => r,
            Err(e) => return refuse(e, Vec::new()),
        };
        let mut intake = match intake_from_cda(&doc.cda, recipients, &flags) {
            Ok(i) => i,
            Err(e) => return refuse(e, Vec::new()),
        };
        let policy = relais_compose::IntakePolicy {
            require_ins: self.outbound.config.require_ins,
        };
        if let Err(e) = intake.validate_with(&policy) {
            let code = e
                .problems
                .first()
                .map(|p| p.code.to_string())
                .unwrap_or_else(|| codes::HEADER.into());
            return refuse(
                refusal(
                    &code,
                    format!("the CDA header cannot give the mail's metadata: {e}"),
                ),
                super::recipients::as_given(&intake),
            );
        }
        let recipients = match self.outbound.resolve_recipients(&mut intake).await {
            Ok(r) => r,
            Err((RecipientProblem::Refused(e), given)) => return refuse(e, given),
            Err((RecipientProblem::Later(why), _)) => return Verdict::Later(why),
        };
        let pdf = match doc.cda.embedded_pdf() {
            Some(Ok(p)) => p,
            Some(Err(e)) => return refuse(refusal(codes::NO_PDF, e.to_string()), recipients),
            None => {
                return refuse(
                    refusal(
                        codes::NO_PDF,
                        "the CDA carries no PDF (a level 1 PDF body, or the copy section of a \
                         level 3 document): the MSSanté mail carries the document's PDF beside the \
                         XDM package",
                    ),
                    recipients,
                );
            }
        };
        let oc = &self.outbound.config;
        let (Some(root), Some(source_oid), Some(mailbox)) = (
            oc.document_root_oid.clone(),
            oc.source_oid.clone(),
            oc.mailbox.clone(),
        ) else {
            return Verdict::Later("[outbound] is missing the sending settings".into());
        };
        let seed = sha256_of_parts(&[source.key.as_bytes(), source.sha256.as_bytes()]);
        let mut ctx = BuildContext::new(
            product(),
            root,
            source_oid,
            relais_compose::Timestamp::now_utc(),
            seed,
        );
        ctx.policy = policy;
        let mut opts = MailOptions::new(
            mailbox,
            oc.nil
                .clone()
                .unwrap_or_else(|| format!("Relais {}", env!("CARGO_PKG_VERSION"))),
        );
        opts.from_name = oc.mailbox_name.clone();
        opts.request_read_receipt = flags
            .get("ACK_LECTURE_MSS")
            .unwrap_or(oc.request_read_receipt);
        opts.request_dsn = true;
        opts.patient_may_reply = !flags.patient_no_reply;
        let cda_bytes = doc.bytes.clone();
        let built = tokio::task::spawn_blocking(move || {
            let package = relais_compose::build_package(&intake, &cda_bytes, &ctx)?;
            relais_compose::build_mail(&intake, &package.zip, &pdf, &ctx, &opts)
        })
        .await;
        let mail = match built {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                let code = match &e {
                    relais_compose::BuildError::Intake(i) => i
                        .problems
                        .first()
                        .map(|p| p.code.to_string())
                        .unwrap_or_else(|| codes::HEADER.into()),
                    _ => super::intake::codes::BUILD.into(),
                };
                tracing::warn!(%code, "outbound HL7 letter cannot be built");
                return refuse(refusal(&code, e.to_string()), recipients);
            }
            Err(e) => return Verdict::Later(format!("the build task failed ({e})")),
        };
        let raw_mail = match &reply_to {
            Some(r) => with_reply_to(&mail.raw, r),
            None => mail.raw,
        };
        let size = raw_mail.len() as u64;
        if size > oc.max_mail_bytes {
            return refuse(
                refusal(
                    super::intake::codes::TOO_LARGE,
                    format!(
                        "the mail would be {size} bytes, more than the {} allowed ([outbound] \
                         max_mail_bytes); it was not sent and nothing was cut",
                        oc.max_mail_bytes
                    ),
                ),
                recipients,
            );
        }
        let h = &doc.cda.header;
        let cda_id = h.id.as_ref().map(|i| {
            format!(
                "{}^{}",
                i.root.as_deref().unwrap_or_default(),
                i.extension.as_deref().unwrap_or_default()
            )
        });
        let level = match doc.cda.level() {
            Some(relais_cda::Level::N3) => 3,
            _ => 1,
        };
        Verdict::Journal(Box::new(LetterRequest {
            source,
            document_type: h.type_code().map(str::to_string).or(doc_type),
            cda_id,
            cda_level: Some(level),
            recipients,
            body: LetterBody::Built(LetterMail {
                message_id: mail.message_id,
                envelope_id: mail.envelope_id,
                envelope_from: mail.envelope_from,
                raw: raw_mail,
            }),
            detail,
        }))
    }
}

/// The SHA-256 of the message, MSH-7 (the time of sending) left out: a producer resending the
/// same message a minute later sends the same message.
fn message_sha256(msg: &Message) -> String {
    let text = msg.text();
    let sep = msg.delimiters().field;
    let (first, rest) = text.split_once('\r').unwrap_or((text, ""));
    let mut fields: Vec<&str> = first.split(sep).collect();
    if fields.len() > 6 {
        fields[6] = "";
    }
    let msh = fields.join(&sep.to_string());
    sha256_of_parts(&[msh.as_bytes(), rest.trim_end_matches('\r').as_bytes()])
}

/// ORU^R01 v2.5 or MDM^T02/T10 v2.6, of the producer profile.
fn supported(msg: &Message) -> Result<(), ErrorInfo> {
    let t = msg.message_type();
    let code = t.code.trim();
    let trigger = t.trigger.trim();
    let version = msg.version();
    let (ok, expected_version) = match code {
        "ORU" => (trigger == "R01", "2.5"),
        "MDM" => (matches!(trigger, "T02" | "T10"), "2.6"),
        _ => (false, ""),
    };
    if !ok {
        return Err(refusal(
            codes::UNSUPPORTED,
            format!(
                "MSH-9 `{}^{}`: Relais takes ORU^R01 (v2.5) and MDM^T02/T10 (v2.6) of the guide \
                 \"Transmission de documents CDA en HL7v2\"",
                printable(code),
                printable(trigger)
            ),
        ));
    }
    if version.trim() != expected_version {
        return Err(refusal(
            codes::UNSUPPORTED,
            format!(
                "MSH-12 `{}`: {code} messages of the guide are HL7 v{expected_version}",
                printable(&version)
            ),
        ));
    }
    if !msg.has_profile(NS_V2) {
        return Err(refusal(
            codes::UNSUPPORTED,
            format!("MSH-21 must declare the producer profile `2.1^{NS_V2}`"),
        ));
    }
    Ok(())
}

/// Whether the first OBX carries a PDF (ED `^AP^PDF^Base64^` or `^application^pdf^…`) instead
/// of the CDA.
fn carries_pdf(msg: &Message) -> bool {
    let Some(obx) = msg.segment("OBX", 1) else {
        return false;
    };
    obx.value(2).is_some_and(|t| t.trim() == "ED")
        && obx
            .component_value(5, 3)
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("PDF"))
}

impl Listener {
    /// A message carrying a PDF: the level 1 CDA, its package and mail are built as for a
    /// watched folder, from an intake read from the message (PID, PV1, OBR, the PRT `SB` for
    /// the author and organisation) and `[outbound.mllp.pdf]` for what HL7 does not say.
    async fn decide_pdf(
        &self,
        msg: &Message,
        source: LetterSource,
        detail: serde_json::Value,
        defaults: &super::config::PdfDefaults,
    ) -> Result<Verdict, (ErrorInfo, Vec<relais_store::NewRecipient>)> {
        let none = |e| (e, Vec::new());
        // The profile, except what it says of OBX 1 holding a CDA.
        if let Some(f) = relais_hl7::validate_profile(msg).iter().find(|f| {
            f.is_error()
                && !matches!(&f.location, relais_core::Location::Hl7Field(at) if at.starts_with("OBX[1]-5"))
                && !address_given_by_rpps(msg, f)
        }) {
            return Err(none(finding_refusal("", f)));
        }
        let doc = relais_hl7::embedded_documents(msg)
            .into_iter()
            .next()
            .ok_or_else(|| none(refusal(codes::NO_CDA, "OBX[1]-5 carries no data")))?;
        let pdf = match doc.data {
            Ok(bytes) => bytes,
            Err(f) => return Err(none(finding_refusal("", &f))),
        };
        if msg
            .segment("ORC", 1)
            .and_then(|o| o.component_value(1, 1))
            .as_deref()
            != Some("NW")
        {
            return Err(none(refusal(
                codes::UNSUPPORTED,
                "ORC-1 is not NW: a PDF is taken as a new document only (replacements carry \
                 their CDA, with its relatedDocument)",
            )));
        }
        let flags = Flags::read(msg);
        let (recipients, reply_to) = read_recipients(msg, &flags).map_err(none)?;
        let intake = intake_from_hl7(msg, recipients, &flags, defaults).map_err(none)?;
        let json = serde_json::to_vec(&intake).map_err(|e| {
            none(refusal(
                super::intake::codes::BUILD,
                format!("the intake cannot be written: {e}"),
            ))
        })?;
        match self
            .outbound
            .prepare(source, &json, false, pdf, detail)
            .await
        {
            super::intake::Prepared::Later(why) => Ok(Verdict::Later(why)),
            super::intake::Prepared::Ready(mut req) => {
                if let (Some(r), LetterBody::Built(mail)) = (&reply_to, &mut req.body) {
                    mail.raw = with_reply_to(&mail.raw, r);
                }
                Ok(Verdict::Journal(req))
            }
        }
    }
}

/// The intake of a level 1 CDA, read from an ORU/MDM carrying a PDF.
fn intake_from_hl7(
    msg: &Message,
    recipients: Vec<relais_compose::Recipient>,
    flags: &Flags,
    defaults: &super::config::PdfDefaults,
) -> Result<Intake, ErrorInfo> {
    use relais_compose::codes::{EncounterKind as K, InsKindName, Sex};
    use relais_compose::{Code, DocumentInfo, Encounter, InsId, LocalId, MailText, Organization};
    let missing = |what: &str| {
        refusal(
            codes::HEADER,
            format!("{what} is needed to build the CDA around the PDF"),
        )
    };
    // A time with its UTC offset; HL7 times without one are local and unknown here.
    let ts = |v: Option<String>| {
        v.map(|t| {
            let t = t.trim();
            // Fractions of a second are dropped.
            match t.split_once('.') {
                Some((head, tail)) => {
                    let zone = tail.find(['+', '-']).map(|i| &tail[i..]).unwrap_or("");
                    format!("{head}{zone}")
                }
                None => t.to_string(),
            }
        })
        .filter(|t| t.len() > 8)
        .and_then(|t| relais_compose::Timestamp::parse(&t).ok())
    };
    // The date of an HL7 time.
    let day = |v: Option<String>| {
        v.and_then(|t| t.trim().get(..8).map(str::to_string))
            .and_then(|t| relais_compose::Timestamp::parse(&t).ok())
    };
    let pid = msg.pid().ok_or_else(|| missing("PID"))?;
    let qualified = pid.identity_reliability.as_deref().map(str::trim) == Some("VALI");
    let ins = pid.ins().next().filter(|_| qualified).and_then(|i| {
        let kind = match i.assigning_authority.universal_id.trim() {
            "1.2.250.1.213.1.4.8" => InsKindName::Nir,
            "1.2.250.1.213.1.4.9" => InsKindName::Nia,
            "1.2.250.1.213.1.4.10" => InsKindName::NirTest,
            "1.2.250.1.213.1.4.11" => InsKindName::NirDemo,
            _ => return None,
        };
        Some(InsId {
            value: i.id.trim().to_string(),
            kind,
        })
    });
    let name = pid
        .names
        .iter()
        .find(|n| n.name_type.trim() == "L")
        .or(pid.names.first())
        .ok_or_else(|| missing("PID-5 (the patient's name)"))?;
    let given: Vec<String> = if name.second_given.trim().is_empty() {
        name.given.split_whitespace().map(str::to_string).collect()
    } else {
        name.second_given
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let pid_seg = msg.segment("PID", 1).ok_or_else(|| missing("PID"))?;
    let birth_place = pid_seg
        .field(11)
        .and_then(|f| {
            f.repetitions()
                .find(|r| r.component_value(7).trim() == "BDL")
        })
        .map(|r| r.component_value(9).trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            pid_seg
                .component_value(23, 1)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        });
    let patient = relais_compose::Patient {
        ins,
        birth_family_name: name.family.trim().to_string(),
        birth_given_names: given,
        used_family_name: None,
        used_given_name: None,
        sex: match pid.sex.as_deref().map(str::trim) {
            Some("F") => Sex::F,
            Some("M") => Sex::M,
            _ => Sex::UN,
        },
        birth_date: day(pid.birth_date.clone()).ok_or_else(|| missing("PID-7 (birth date)"))?,
        birth_place_code: birth_place,
        ipp: pid
            .ids
            .iter()
            .find(|i| i.id_type.trim() == "PI" && !i.assigning_authority.universal_id.is_empty())
            .map(|i| LocalId {
                value: i.id.trim().to_string(),
                assigner_oid: i.assigning_authority.universal_id.trim().to_string(),
            }),
        address: None,
        phone: None,
    };
    let sb = msg
        .segments_named("PRT")
        .find(|p| p.component_value(4, 1).as_deref().map(str::trim) == Some("SB"))
        .ok_or_else(|| missing("a PRT `SB` (the sender: author and organisation)"))?;
    let author = relais_compose::Professional {
        rpps: prt_rpps(&sb).ok_or_else(|| missing("the sender's RPPS (PRT `SB`, PRT-5)"))?,
        family_name: sb
            .component_value(5, 2)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("the sender's family name (PRT-5.2)"))?,
        given_name: sb
            .component_value(5, 3)
            .unwrap_or_default()
            .trim()
            .to_string(),
        civility: None,
        title: None,
        profession: defaults.author_profession.clone(),
        mssante: None,
        phone: None,
    };
    let organization = Organization {
        finess: sb
            .component_value(8, 10)
            .map(|v| finess_of(v.trim()))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("the FINESS of the sender's organisation (PRT-8.10)"))?,
        name: sb
            .component_value(8, 1)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("the name of the sender's organisation (PRT-8.1)"))?,
        facility_type: defaults.facility_type.clone(),
        practice_setting: defaults
            .practice_setting
            .clone()
            .unwrap_or_else(|| Code::new("ETABLISSEMENT", "Etablissement de santé")),
        address: None,
        phone: None,
    };
    let obr = msg.segment("OBR", 1).ok_or_else(|| missing("OBR"))?;
    let type_code = obr
        .component_value(4, 1)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("OBR-4.1 (the document type)"))?;
    let type_display = obr
        .component_value(4, 2)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let created = ts(msg.segment("TXA", 1).and_then(|t| t.component_value(4, 1)))
        .or_else(|| ts(obr.component_value(7, 1)));
    let document = DocumentInfo {
        type_code,
        type_display: type_display.clone(),
        type_code_system: None,
        title: type_display.ok_or_else(|| missing("OBR-4.2 (the document's label)"))?,
        confidentiality: relais_compose::codes::Confidentiality::N,
        id: None,
        set_id: None,
        created,
    };
    let pv1 = msg.segment("PV1", 1);
    let kind = match pv1
        .as_ref()
        .and_then(|p| p.component_value(2, 1))
        .as_deref()
        .map(str::trim)
    {
        Some("E") => K::EMER,
        Some("O") | Some("N") => K::EXTERNE,
        _ => K::IMP,
    };
    let encounter = Encounter {
        start: {
            let pv1_44 = pv1.as_ref().and_then(|p| p.component_value(44, 1));
            ts(pv1_44.clone())
                .or_else(|| day(pv1_44))
                .or(created)
                .or_else(|| day(obr.component_value(7, 1)))
                .or_else(|| day(msg.msh().component_value(7, 1)))
                .ok_or_else(|| missing("PV1-44 (the stay's start)"))?
        },
        end: {
            let pv1_45 = pv1.as_ref().and_then(|p| p.component_value(45, 1));
            ts(pv1_45.clone()).or_else(|| day(pv1_45))
        },
        kind,
        service: None,
        id: pv1.as_ref().and_then(|p| p.field(19)).and_then(|f| {
            let r = f.repetition(1)?;
            let value = r.component_value(1).trim().to_string();
            let oid = r.component(4)?.subcomponent(2)?.trim().to_string();
            (!value.is_empty() && !oid.is_empty()).then_some(LocalId {
                value,
                assigner_oid: oid,
            })
        }),
        service_event: None,
        content_type: defaults.content_type.clone(),
    };
    let body = flags.body_ps.clone().or(flags.body_patient.clone());
    Ok(Intake {
        document,
        patient,
        author,
        legal_authenticator: None,
        organization,
        encounter,
        gp: None,
        recipients,
        mail: MailText {
            subject_label: None,
            body,
        },
        ldl_ses: None,
    })
}

/// A check finding as a refusal: its code, where and what.
fn finding_refusal(location: &str, f: &Finding) -> ErrorInfo {
    let at = f.location.to_string();
    let place = match (location.is_empty() || location == "(whole file)", at == "-") {
        (true, true) => String::new(),
        (true, false) => format!("{at}: "),
        (false, true) => format!("{location}: "),
        (false, false) => format!("{location} {at}: "),
    };
    let place = place.replace("(whole file)!", "");
    refusal(f.code.as_str(), format!("{place}{}", f.message))
}

/// The MetaDMPMSS observations (Y/N) and the patient reply flag.
struct Flags {
    values: Vec<(String, bool)>,
    /// An NTE `FIN` follows the DESTMSSANTEPAT observation: the patient may not reply.
    patient_no_reply: bool,
    body_ps: Option<String>,
    body_patient: Option<String>,
}

impl Flags {
    fn read(msg: &Message) -> Flags {
        let mut values = Vec::new();
        let mut patient_no_reply = false;
        let mut after_pat = false;
        for seg in msg.segments() {
            match seg.name() {
                "OBX" => {
                    after_pat = false;
                    if seg.component_value(3, 3).as_deref() != Some("MetaDMPMSS") {
                        continue;
                    }
                    let code = seg.component_value(3, 1).unwrap_or_default();
                    if code == "DESTMSSANTEPAT" {
                        after_pat = true;
                    }
                    if let Some(v) = seg.component_value(5, 1) {
                        match v.trim() {
                            "Y" => values.push((code, true)),
                            "N" => values.push((code, false)),
                            _ => {}
                        }
                    }
                }
                "NTE" if after_pat && seg.value(4).is_some_and(|v| v.trim().starts_with("FIN")) => {
                    patient_no_reply = true;
                }
                _ => {}
            }
        }
        let mut body_ps = None;
        let mut body_patient = None;
        for d in relais_hl7::embedded_documents(msg) {
            if d.observation_id.system != "MetaDMPMSS" {
                continue;
            }
            let text = d.data.ok().and_then(|b| String::from_utf8(b).ok());
            match d.observation_id.code.as_str() {
                "CORPSMAIL_PS" => body_ps = text,
                "CORPSMAIL_PATIENT" => body_patient = text,
                _ => {}
            }
        }
        Flags {
            values,
            patient_no_reply,
            body_ps,
            body_patient,
        }
    }

    fn get(&self, code: &str) -> Option<bool> {
        self.values.iter().find(|(c, _)| c == code).map(|(_, v)| *v)
    }
}

/// The recipients of the PRT `RCT` segments, checked against the flags, and the `REPLY` address.
fn read_recipients(
    msg: &Message,
    flags: &Flags,
) -> Result<(Vec<relais_compose::Recipient>, Option<String>), ErrorInfo> {
    let to_ps = flags.get("DESTMSSANTEPS") == Some(true);
    let to_patient = flags.get("DESTMSSANTEPAT") == Some(true);
    if !to_ps && !to_patient {
        return Err(refusal(
            codes::FLAGS,
            "DESTMSSANTEPS and DESTMSSANTEPAT are not Y: the message asks for no MSSanté \
             exchange, and Relais sends over MSSanté only (publishing to the DMP is not done here)",
        ));
    }
    let mut out = Vec::new();
    let mut reply_to = None;
    for prt in msg.segments_named("PRT") {
        let role = prt.component_value(4, 1).unwrap_or_default();
        let at = prt.location_prefix();
        let address = prt_address(&prt);
        match role.trim() {
            "REPLY" => {
                if let Some(a) = address {
                    if !plain_address(&a) {
                        return Err(refusal(
                            codes::NO_RECIPIENT,
                            format!(
                                "{at}-15.4: the reply-to address is not a plain local@domain address"
                            ),
                        ));
                    }
                    reply_to = Some(a);
                }
            }
            "RCT" => {
                let id_type = prt.component_value(5, 13).unwrap_or_default();
                let rpps = prt_rpps(&prt);
                let patient = id_type.trim() == "INS"
                    || address.as_deref().is_some_and(|a| {
                        a.rsplit('@')
                            .next()
                            .is_some_and(|d| d.eq_ignore_ascii_case(PATIENT_DOMAIN))
                    });
                if address.is_none() && rpps.is_none() {
                    return Err(refusal(
                        codes::NO_RECIPIENT,
                        format!(
                            "{at}: the recipient has no MSSanté address (PRT-15.4) and no RPPS \
                             (PRT-5.1 with PRT-5.13 RPPS or IDNPS) to look it up by"
                        ),
                    ));
                }
                if patient && !to_patient {
                    return Err(refusal(
                        codes::FLAGS,
                        format!("{at}: a patient recipient while DESTMSSANTEPAT is not Y"),
                    ));
                }
                if patient && flags.get("INVISIBLE_PATIENT") == Some(true) {
                    return Err(refusal(
                        codes::FLAGS,
                        format!(
                            "{at}: INVISIBLE_PATIENT is Y: a document hidden from the patient is \
                             never sent to the patient"
                        ),
                    ));
                }
                if !patient && !to_ps {
                    return Err(refusal(
                        codes::FLAGS,
                        format!(
                            "{at}: a professional or organisation recipient while DESTMSSANTEPS is not Y"
                        ),
                    ));
                }
                if !patient && flags.get("MASQUE_PS") == Some(true) {
                    return Err(refusal(
                        codes::FLAGS,
                        format!(
                            "{at}: MASQUE_PS is Y: a document hidden from professionals is not \
                             exchanged between professionals"
                        ),
                    ));
                }
                let given = |c: usize| {
                    (!patient)
                        .then(|| prt.component_value(5, c))
                        .flatten()
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                };
                out.push(relais_compose::Recipient {
                    mssante: address,
                    rpps: rpps.filter(|_| !patient),
                    family_name: given(2),
                    given_name: given(3),
                    civility: None,
                    title: None,
                });
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(refusal(
            codes::NO_RECIPIENT,
            "no PRT segment with PRT-4 `RCT` names a recipient: nobody to send the document to",
        ));
    }
    Ok((out, reply_to))
}

/// The RPPS of PRT-5: PRT-5.13 `RPPS` (11 digits) or `IDNPS` (`8` + RPPS).
fn prt_rpps(prt: &Segment<'_>) -> Option<String> {
    let id_type = prt.component_value(5, 13).unwrap_or_default();
    let id = prt.component_value(5, 1).unwrap_or_default();
    let id = id.trim();
    match id_type.trim() {
        "RPPS" if id.len() == 11 => Some(id.to_string()),
        "IDNPS" if id.len() == 12 && id.starts_with('8') => Some(id[1..].to_string()),
        _ => None,
    }
    .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))
}

/// True for the profile's "PRT-15 missing" finding on a recipient named by RPPS: the guide
/// asks for the address, and Relais also takes an RPPS alone, resolved through the Annuaire.
fn address_given_by_rpps(msg: &Message, f: &Finding) -> bool {
    if f.code != relais_hl7::codes::HL7_FIELD_MISSING {
        return false;
    }
    let relais_core::Location::Hl7Field(at) = &f.location else {
        return false;
    };
    let Some(rest) = at.strip_prefix("PRT[") else {
        return false;
    };
    let Some((n, field)) = rest.split_once("]-") else {
        return false;
    };
    if !field.starts_with("15") {
        return false;
    }
    n.parse::<usize>()
        .ok()
        .and_then(|n| msg.segment("PRT", n))
        .is_some_and(|prt| {
            prt.component_value(4, 1).as_deref().map(str::trim) == Some("RCT")
                && prt_address(&prt).is_none()
                && prt_rpps(&prt).is_some()
        })
}

/// PRT-15.4 of the first repetition that holds an address.
fn prt_address(prt: &Segment<'_>) -> Option<String> {
    prt.field(15)?
        .repetitions()
        .map(|r| r.component_value(4).trim().to_string())
        .find(|a| !a.is_empty())
}

fn plain_address(a: &str) -> bool {
    a.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty()
            && d.contains('.')
            && a.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
    })
}

/// The intake that the package and mail builders need, read from the producer's CDA header.
fn intake_from_cda(
    cda: &relais_cda::CdaDocument,
    recipients: Vec<relais_compose::Recipient>,
    flags: &Flags,
) -> Result<Intake, ErrorInfo> {
    use relais_compose::{Code, DocumentInfo, Encounter, InsId, LocalId, MailText, Organization};
    let h = &cda.header;
    let missing = |what: &str| {
        refusal(
            codes::HEADER,
            format!("the CDA header has no {what}: the XDM metadata and the mail need it"),
        )
    };
    let ts = |v: &Option<String>| {
        v.as_deref()
            .and_then(|t| relais_compose::Timestamp::parse(t).ok())
    };
    let code = h.code.as_ref().ok_or_else(|| missing("document code"))?;
    let document = DocumentInfo {
        type_code: code.code.clone().ok_or_else(|| missing("document code"))?,
        type_display: code.display_name.clone(),
        type_code_system: code
            .code_system
            .clone()
            .filter(|s| s != "2.16.840.1.113883.6.1"),
        title: h.title.clone().ok_or_else(|| missing("title"))?,
        confidentiality: match h
            .confidentiality_code
            .as_ref()
            .and_then(|c| c.code.as_deref())
        {
            Some("R") => relais_compose::codes::Confidentiality::R,
            Some("V") => relais_compose::codes::Confidentiality::V,
            _ => relais_compose::codes::Confidentiality::N,
        },
        id: h.id.as_ref().and_then(|i| i.extension.clone()),
        set_id: h.set_id.as_ref().and_then(|i| i.extension.clone()),
        created: ts(&h.effective_time),
    };
    let p = h.patient.as_ref().ok_or_else(|| missing("patient"))?;
    let ins = p.ins.as_ref().map(|i| InsId {
        value: i.value.clone(),
        kind: match i.kind {
            relais_cda::InsKind::NirQualified => relais_compose::codes::InsKindName::Nir,
            relais_cda::InsKind::Nia => relais_compose::codes::InsKindName::Nia,
            relais_cda::InsKind::NirTest => relais_compose::codes::InsKindName::NirTest,
            relais_cda::InsKind::Demo => relais_compose::codes::InsKindName::NirDemo,
        },
    });
    let birth_given_names: Vec<String> = p
        .birth_given_names
        .as_deref()
        .or(p.given_birth_first.as_deref())
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let patient = relais_compose::Patient {
        ins,
        birth_family_name: p
            .birth_family
            .clone()
            .or_else(|| p.unqualified_family.clone())
            .ok_or_else(|| missing("patient family name"))?,
        birth_given_names,
        used_family_name: p.used_family.clone(),
        used_given_name: p.used_given.clone(),
        sex: match p.sex.as_deref() {
            Some("F") => relais_compose::codes::Sex::F,
            Some("M") => relais_compose::codes::Sex::M,
            _ => relais_compose::codes::Sex::UN,
        },
        birth_date: p
            .birth_time
            .as_deref()
            .and_then(|b| b.get(..8))
            .and_then(|b| relais_compose::Timestamp::parse(b).ok())
            .ok_or_else(|| missing("patient birth date"))?,
        birth_place_code: p.birthplace_insee.clone(),
        ipp: p.ipps.first().and_then(|i| {
            Some(LocalId {
                value: i.extension.clone()?,
                assigner_oid: i.root.clone()?,
            })
        }),
        address: None,
        phone: None,
    };
    let a = h
        .authors
        .iter()
        .find(|a| a.rpps.is_some())
        .ok_or_else(|| missing("author identified by RPPS"))?;
    let cd = |c: &relais_cda::Cd| Code {
        code: c.code.clone().unwrap_or_default(),
        display: c.display_name.clone().unwrap_or_default(),
        system: c.code_system.clone(),
    };
    let author = relais_compose::Professional {
        rpps: a.rpps.clone().unwrap_or_default(),
        family_name: a
            .name
            .as_ref()
            .and_then(|n| n.family.clone())
            .ok_or_else(|| missing("author family name"))?,
        given_name: a
            .name
            .as_ref()
            .and_then(|n| n.given.clone())
            .unwrap_or_default(),
        civility: None,
        title: None,
        profession: a
            .profession
            .as_ref()
            .map(cd)
            .ok_or_else(|| missing("author profession"))?,
        mssante: None,
        phone: None,
    };
    let enc = h
        .encounter
        .as_ref()
        .ok_or_else(|| missing("encompassing encounter"))?;
    let org = h
        .custodian
        .as_ref()
        .filter(|o| o.finess.is_some())
        .or(a.organization.as_ref())
        .ok_or_else(|| missing("custodian organisation"))?;
    let organization = Organization {
        // The CDA writes `1` + FINESS (`3` + FINESS for an entité juridique).
        finess: org
            .finess
            .as_deref()
            .map(finess_of)
            .ok_or_else(|| missing("FINESS of the organisation"))?,
        name: org
            .name
            .clone()
            .ok_or_else(|| missing("organisation name"))?,
        facility_type: enc
            .facility_type
            .as_ref()
            .map(cd)
            .ok_or_else(|| missing("healthcare facility type"))?,
        practice_setting: Code::new("ETABLISSEMENT", "Etablissement de santé"),
        address: None,
        phone: None,
    };
    use relais_compose::codes::EncounterKind as K;
    let encounter = Encounter {
        start: ts(&enc.start).ok_or_else(|| missing("encounter start"))?,
        end: ts(&enc.end),
        kind: match enc.code.as_ref().and_then(|c| c.code.as_deref()) {
            Some("EMER") => K::EMER,
            Some("AMB") => K::AMB,
            Some("FLD") => K::FLD,
            Some("HH") => K::HH,
            Some("VR") => K::VR,
            Some("EXTERNE") => K::EXTERNE,
            Some("SEANCE") => K::SEANCE,
            _ => K::IMP,
        },
        service: None,
        id: enc.id.as_ref().and_then(|i| {
            Some(LocalId {
                value: i.extension.clone()?,
                assigner_oid: i.root.clone()?,
            })
        }),
        service_event: None,
        content_type: None,
    };
    let only_patients = recipients.iter().all(|r| {
        r.mssante.as_deref().is_some_and(|a| {
            a.rsplit('@')
                .next()
                .is_some_and(|d| d.eq_ignore_ascii_case(PATIENT_DOMAIN))
        })
    });
    let body = if only_patients {
        flags.body_patient.clone().or(flags.body_ps.clone())
    } else {
        flags.body_ps.clone()
    };
    Ok(Intake {
        document,
        patient,
        author,
        legal_authenticator: None,
        organization,
        encounter,
        gp: None,
        recipients,
        mail: MailText {
            subject_label: None,
            body,
        },
        ldl_ses: None,
    })
}

/// A FINESS number from an identifier that may carry the ANS prefix (`1` + FINESS as the CDA
/// writes it, `3` + FINESS for an entité juridique).
fn finess_of(id: &str) -> String {
    match id.len() {
        10 if id.starts_with('1') || id.starts_with('3') => id[1..].to_string(),
        _ => id.to_string(),
    }
}

/// The mail with a `Reply-To` header (the guide's PRT `REPLY`) put before its first header.
fn with_reply_to(raw: &[u8], address: &str) -> Vec<u8> {
    let mut out = format!("Reply-To: <{address}>\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

fn product() -> ProductInfo {
    ProductInfo {
        name: "Relais".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        vendor: "Relais contributors".into(),
        contact: None,
    }
}

/// A value from the message for an error text: printable ASCII, at most 40 characters.
fn printable(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(40)
        .collect()
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

// ---- ZAM^Z02 / ZAM^Z03: delivery and reading reported to the producer ---------------------

/// Sends the producer, for each recipient of a letter it sent over MLLP and asked for them, a
/// ZAM^Z02 once the recipient's server took the mail (or refused it: `N` with the SMTP code)
/// and a ZAM^Z03 once an MDN says it was read. What was reported (the producer answered AA or
/// AE) is written to `zam-sent.txt`, so a restart reports nothing twice; an AR or a producer
/// down is tried again at the next look.
async fn report_zam(
    outbound: Arc<Outbound>,
    settings: super::config::ZamSettings,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut done: std::collections::HashSet<String> = std::fs::read_to_string(&outbound.zam_state)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let mut cfg = relais_dpi::ClientConfig::new(settings.address.clone());
    cfg.limits = limits;
    let mut client = relais_dpi::MllpClient::new(cfg);
    let every = Duration::from_secs(settings.interval_secs.max(1));
    loop {
        if let Err(e) = zam_round(&outbound, &settings, &mut client, &mut done).await {
            tracing::warn!(error = %e, "ZAM reports: journal unavailable; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn zam_round(
    outbound: &Outbound,
    settings: &super::config::ZamSettings,
    client: &mut relais_dpi::MllpClient,
    done: &mut std::collections::HashSet<String>,
) -> Result<(), relais_store::StoreError> {
    use relais_store::RecipientStatus as S;
    let outbox = outbound.outbox();
    let mut letters = Vec::new();
    // Sent, or failed after its mail was built (the server refused it): a letter refused at
    // intake was answered AE and has nothing to report.
    for state in [LetterState::Sent, LetterState::Failed] {
        let filter = relais_store::LetterFilter {
            state: Some(state),
            limit: 1000,
            ..Default::default()
        };
        letters.extend(outbox.list_letters(&filter).await?);
    }
    for letter in letters {
        if letter.source.kind != LetterSourceKind::Mllp || letter.message_id.is_none() {
            continue;
        }
        let mut parts = letter.source.key.splitn(3, '|');
        let (Some(app), Some(facility), Some(control_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let events = outbox.letter_events(letter.id).await?;
        let Some(asked) = events
            .iter()
            .find(|e| e.kind == relais_store::letter_event_kinds::INTAKE_ACCEPTED)
            .map(|e| e.detail.clone())
        else {
            continue;
        };
        let reception = asked["ack_reception"] == json!(true);
        let read = asked["ack_read"] == json!(true);
        if !reception && !read {
            continue;
        }
        for r in outbox.letter_recipients(letter.id).await? {
            let Some(address) = r.address.clone() else {
                continue;
            };
            let mut due: Vec<(&str, bool)> = Vec::new();
            if reception && matches!(r.status, S::Delivered | S::Read | S::Failed) {
                due.push(("Z02", r.status != S::Failed));
            }
            if read && r.status == S::Read {
                due.push(("Z03", true));
            }
            for (event, ok) in due {
                let key = format!("{}:{}:{event}", letter.id, r.position);
                if done.contains(&key) {
                    continue;
                }
                let zam = build_zam(&ZamFacts {
                    event,
                    ok,
                    from: (&settings.sending_application, &settings.sending_facility),
                    to: (app, facility),
                    control_id: &format!("Z{}-{}-{event}", letter.id, r.position),
                    original_control_id: control_id,
                    recipient_rpps: r.rpps.as_deref(),
                    address: &address,
                    smtp_code: smtp_code(r.remote_status.as_deref()),
                    timestamp: &relais_compose::Timestamp::now_utc().to_cda(),
                });
                match client.send(&zam).await {
                    Ok(relais_dpi::AckOutcome::Retry { .. }) | Err(_) => {
                        tracing::warn!(letter = %letter.id, event, "ZAM not taken by the producer now; retrying later");
                        client.disconnect();
                        return Ok(());
                    }
                    Ok(outcome) => {
                        if !matches!(outcome, relais_dpi::AckOutcome::Accepted) {
                            tracing::warn!(letter = %letter.id, event, "the producer refused the ZAM (AE); not sent again");
                        } else {
                            tracing::info!(letter = %letter.id, event, "ZAM reported to the producer");
                        }
                        append_line(&outbound.zam_state, &key);
                        done.insert(key);
                    }
                }
            }
        }
    }
    Ok(())
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write as _;
    let written = path
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|()| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
            f.sync_all()
        });
    if let Err(e) = written {
        tracing::warn!(error = %e, "ZAM state not written; the report may be sent again after a restart");
    }
}

/// The SMTP reply code (table SMTPERRORCODE) of a recipient's remote status: a 3-digit reply
/// as is, a DSN status `5.x.x` as 554 and `4.x.x` as 451.
fn smtp_code(remote: Option<&str>) -> Option<String> {
    let r = remote?.trim();
    let head: String = r.chars().take(3).collect();
    if head.len() == 3 && head.bytes().all(|b| b.is_ascii_digit()) {
        return Some(head);
    }
    match r.chars().next() {
        Some('5') => Some("554".into()),
        Some('4') => Some("451".into()),
        _ => None,
    }
}

struct ZamFacts<'a> {
    /// `Z02` (reception) or `Z03` (reading).
    event: &'a str,
    ok: bool,
    from: (&'a str, &'a str),
    to: (&'a str, &'a str),
    control_id: &'a str,
    /// MSH-10 of the producer's ORU/MDM (OBX-4 of the first OBX).
    original_control_id: &'a str,
    recipient_rpps: Option<&'a str>,
    address: &'a str,
    smtp_code: Option<String>,
    timestamp: &'a str,
}

/// A ZAM^Z02 or ZAM^Z03 of ig-trans-cda (v2.6, MSH-21 `2.1^CISIS_CDA_HL7_V2`).
fn build_zam(f: &ZamFacts<'_>) -> String {
    let d = relais_hl7::Delimiters::default();
    let e = |v: &str| relais_hl7::escape(v, &d);
    let (status_code, status_label, who_code, who_label) = if f.event == "Z02" {
        (
            "ACK_RECEPTION_MSS",
            "Accusé de réception MSSanté",
            "DESTINATAIRE_MSS",
            "Destinataire MSSanté",
        )
    } else {
        (
            "ACK_LECTURE_MSS",
            "Accusé de lecture",
            "LECTEUR_MSS",
            "Lecteur du courriel MSSanté",
        )
    };
    let yn = if f.ok { "Y" } else { "N" };
    let mut out = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{}||ZAM^{}^ZAM_Z01|{}|P|2.6|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2\r\
         EVN||{}\r\
         OBX|1|CWE|{status_code}^{status_label}^AckMetierZAM|{}|{yn}^^expandedYes-NoIndicator||||||F\r\
         OBX|2|XTN|{who_code}^{who_label}^AckMetierZAM|{}|^^X.400^{}||||||F",
        e(f.from.0),
        e(f.from.1),
        e(f.to.0),
        e(f.to.1),
        e(f.timestamp),
        f.event,
        e(f.control_id),
        e(f.timestamp),
        e(f.original_control_id),
        e(f.recipient_rpps.unwrap_or_default()),
        e(f.address),
    );
    if !f.ok {
        let code = f.smtp_code.as_deref().unwrap_or("554");
        let label = if f.event == "Z02" {
            "the recipient's server did not take the mail"
        } else {
            "the recipient reported an error processing the mail"
        };
        let system = if f.event == "Z02" {
            "SMTPERRORCODE"
        } else {
            "applicationErrorCondition"
        };
        out.push_str(&format!(
            "\rERR|||207^Application error^messageErrorCondition|E|{}^{label}^{system}",
            e(code)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        relais_hl7::parse(text.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn zam_messages_follow_the_guide() {
        let facts = |event, ok| ZamFacts {
            event,
            ok,
            from: ("RELAIS", "CH-DEMO"),
            to: ("SIL-DEMO", "LABO-DEMO"),
            control_id: "Z7-0-Z02",
            original_control_id: "SIL-0001",
            recipient_rpps: Some("10999999001"),
            address: "dpi@hopital.test",
            smtp_code: smtp_code(Some("5.1.1")),
            timestamp: "20250311170000+0100",
        };
        for (event, ok) in [("Z02", true), ("Z02", false), ("Z03", true)] {
            let text = build_zam(&facts(event, ok));
            let m = parse(&text);
            assert_eq!(relais_hl7::detect_profile(&m), relais_hl7::Profile::Zam);
            let errors: Vec<_> = relais_hl7::validate_profile(&m)
                .into_iter()
                .filter(|f| f.is_error())
                .collect();
            assert!(errors.is_empty(), "{event} {ok}: {errors:?}\n{text}");
            let obx1 = m.segment("OBX", 1).unwrap();
            assert_eq!(obx1.value(4).as_deref(), Some("SIL-0001"));
            assert_eq!(
                obx1.component_value(5, 1).as_deref(),
                Some(if ok { "Y" } else { "N" })
            );
            assert_eq!(m.segment("ERR", 1).is_some(), !ok);
        }
        let refused = build_zam(&facts("Z02", false));
        assert!(refused.contains("|554^"), "{refused}");
        assert_eq!(smtp_code(Some("550 5.1.1 unknown")), Some("550".into()));
    }

    #[test]
    fn the_hash_leaves_the_sending_time_out() {
        let a = parse("MSH|^~\\&|A|B|C|D|20250101||ORU^R01^ORU_R01|1|P|2.5\rPID|1||X");
        let b = parse("MSH|^~\\&|A|B|C|D|20250102||ORU^R01^ORU_R01|1|P|2.5\rPID|1||X");
        let c = parse("MSH|^~\\&|A|B|C|D|20250102||ORU^R01^ORU_R01|1|P|2.5\rPID|1||Y");
        assert_eq!(message_sha256(&a), message_sha256(&b));
        assert_ne!(message_sha256(&a), message_sha256(&c));
    }

    #[test]
    fn only_the_producer_profile_is_taken() {
        let ok = parse(
            "MSH|^~\\&|A|B|C|D|1||MDM^T02^MDM_T02|1|P|2.6|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        );
        assert!(supported(&ok).is_ok());
        let lps = parse(
            "MSH|^~\\&|A|B|C|D|1||MDM^T02^MDM_T02|1|P|2.6|||||FRA|UNICODE UTF-8|||1.1^CISIS_CDA_HL7_LPS",
        );
        assert_eq!(supported(&lps).unwrap_err().code, codes::UNSUPPORTED);
        let adt = parse("MSH|^~\\&|A|B|C|D|1||ADT^A01^ADT_A01|1|P|2.5");
        assert_eq!(supported(&adt).unwrap_err().code, codes::UNSUPPORTED);
        let v = parse(
            "MSH|^~\\&|A|B|C|D|1||ORU^R01^ORU_R01|1|P|2.6|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        );
        assert!(supported(&v).unwrap_err().text.contains("v2.5"));
    }

    #[test]
    fn recipients_follow_the_flags() {
        let base = "MSH|^~\\&|A|B|C|D|1||ORU^R01^ORU_R01|1|P|2.5\r\
            OBX|1|ED|11502-2^CR^LN||^TEXT^XML^Base64^PHI+PC9yPg==||||||F\r\
            PRT||UC||RCT^Result Copies To^participation|810999999001^MARTIN^Sophie^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS\r\
            PRT||UC||RCT^Result Copies To^participation|||||||||||^^X.400^279035121518989@patient.mssante.fr\r\
            PRT||UC||REPLY^Reply To^participation|||||||||||^^X.400^secretariat@ch.mssante.fr\r";
        let with = |ps: &str, pat: &str, hidden: &str| {
            parse(&format!(
                "{base}OBX|2|CE|INVISIBLE_PATIENT^x^MetaDMPMSS||{hidden}^^expandedYes-NoIndicator||||||F\r\
                 OBX|3|CE|DESTMSSANTEPS^x^MetaDMPMSS||{ps}^^expandedYes-NoIndicator||||||F\r\
                 OBX|4|CE|DESTMSSANTEPAT^x^MetaDMPMSS||{pat}^^expandedYes-NoIndicator||||||F\r\
                 NTE|1|||FIN"
            ))
        };
        let m = with("Y", "Y", "N");
        let flags = Flags::read(&m);
        assert!(flags.patient_no_reply);
        let (r, reply) = read_recipients(&m, &flags).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].rpps.as_deref(), Some("10999999001"));
        assert_eq!(r[0].mssante, None);
        assert_eq!(r[1].rpps, None);
        assert_eq!(reply.as_deref(), Some("secretariat@ch.mssante.fr"));
        for (ps, pat, hidden) in [
            ("Y", "N", "N"),
            ("N", "Y", "N"),
            ("Y", "Y", "Y"),
            ("N", "N", "N"),
        ] {
            let m = with(ps, pat, hidden);
            let e = read_recipients(&m, &Flags::read(&m)).unwrap_err();
            assert_eq!(e.code, codes::FLAGS, "{ps} {pat} {hidden}: {}", e.text);
            assert!(!e.text.contains("279035121518989"), "{}", e.text);
        }
    }
}
