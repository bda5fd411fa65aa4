//! Watched intake folders: a drop is `<name>.pdf` with `<name>.json` or `<name>.toml`.
//!
//! A file is taken only once it is *stable*: the same size and modification time seen for at
//! least the folder's `stable_secs` (a DPI writing over a network share may pause between
//! writes; inotify may say nothing there). Names matching `ignore` (temporary names) are never
//! taken. A ready drop is checked and built (see [`Outbound::prepare`]), journaled, and only
//! then moved: to `done/`, or to `error/` with `<name>.reason.txt` (the code and what to do).
//! If Relais stops between the journal and the move, the drop is seen again, recognised as the
//! same drop (same path, same bytes) and moved without being journaled or sent twice. If it
//! stops between the two files of a move, the file left behind joins its partner at the next
//! scan (it pairs with a journaled letter), instead of waiting as an incomplete drop.
//!
//! A file left without its partner for `orphan_secs` goes to `error/` too (journaled as a
//! refused letter), so that nothing waits forever unseen.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use relais_compose::{BuildContext, BuildError, Intake, IntakePolicy, MailOptions, ProductInfo};
use relais_store::{
    ErrorInfo, LetterBody, LetterIntake, LetterMail, LetterRequest, LetterSource, LetterSourceKind,
    LetterState, sha256_of_parts,
};
use serde_json::json;

use super::config::IntakeFolder;
use super::recipients::{RecipientProblem, as_given};
use super::{Outbound, OutboundSummary};
use crate::EngineError;

/// Stable codes of intake refusals (besides the intake's own `INTAKE-*` codes).
pub mod codes {
    /// The file given as the letter is not a PDF.
    pub const NOT_PDF: &str = "OUTBOUND-NOT-PDF";
    /// The mail would be larger than `max_mail_bytes`.
    pub const TOO_LARGE: &str = "OUTBOUND-TOO-LARGE";
    /// A PDF without metadata file, or the reverse, for too long.
    pub const DROP_INCOMPLETE: &str = "OUTBOUND-DROP-INCOMPLETE";
    /// Both `<name>.json` and `<name>.toml`.
    pub const DROP_AMBIGUOUS: &str = "OUTBOUND-DROP-AMBIGUOUS";
    /// The build failed (a configuration value, or a bug reported by the builder's self-check).
    pub const BUILD: &str = "OUTBOUND-BUILD";
    /// A drop file cannot be read.
    pub const UNREADABLE: &str = "OUTBOUND-DROP-UNREADABLE";
}

/// What was last seen of a file, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    len: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

/// A file of a watched folder.
#[derive(Debug, Clone)]
struct Seen {
    path: PathBuf,
    len: u64,
    stable: bool,
    /// Stable for the orphan delay.
    old: bool,
}

/// The outcome of preparing a drop.
pub(crate) enum Prepared {
    /// Journal this.
    Ready(Box<LetterRequest>),
    /// Leave the drop where it is and try again at a later scan.
    Later(String),
}

fn refused(
    source: LetterSource,
    recipients: Vec<relais_store::NewRecipient>,
    document_type: Option<String>,
    error: ErrorInfo,
    detail: serde_json::Value,
) -> Prepared {
    Prepared::Ready(Box::new(LetterRequest {
        source,
        document_type,
        cda_id: None,
        cda_level: None,
        recipients,
        body: LetterBody::Refused(error),
        detail,
    }))
}

fn err(code: &str, text: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        text: text.into(),
    }
}

/// The product named in the XDM README.TXT.
fn product() -> ProductInfo {
    ProductInfo {
        name: "Relais".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        vendor: "Relais contributors".into(),
        contact: None,
    }
}

impl Outbound {
    /// Checks and builds a letter from its metadata and PDF: the intake is read and validated
    /// (with the site's policy), the PDF checked, the recipients resolved and checked against
    /// the liste blanche, then the CDA, the XDM package and the mail are built (`relais-compose`
    /// checks what it builds), and the mail's size is checked. Every refusal is a letter to
    /// journal as failed, with its code; only an Annuaire that cannot be asked now leaves the
    /// drop for later.
    pub(crate) async fn prepare(
        &self,
        source: LetterSource,
        metadata: &[u8],
        toml: bool,
        pdf: Vec<u8>,
        detail: serde_json::Value,
    ) -> Prepared {
        let parsed = if toml {
            match std::str::from_utf8(metadata) {
                Ok(text) => Intake::from_toml(text),
                Err(_) => {
                    return refused(
                        source,
                        Vec::new(),
                        None,
                        err("INTAKE-SYNTAX", "the TOML metadata file is not UTF-8 text"),
                        detail,
                    );
                }
            }
        } else {
            Intake::from_json(metadata)
        };
        let policy = IntakePolicy {
            require_ins: self.config.require_ins,
        };
        let mut intake = match parsed.and_then(|i| i.validate_with(&policy).map(|()| i)) {
            Ok(i) => i,
            Err(e) => {
                let code = e
                    .problems
                    .first()
                    .map(|p| p.code.to_string())
                    .unwrap_or_else(|| "INTAKE-SYNTAX".into());
                return refused(source, Vec::new(), None, err(&code, e.to_string()), detail);
            }
        };
        let doc_type = Some(intake.document.type_code.clone());
        if !pdf.starts_with(b"%PDF-") {
            return refused(
                source,
                as_given(&intake),
                doc_type,
                err(
                    codes::NOT_PDF,
                    "the document file is not a PDF (it does not start with %PDF-): the DPI must drop the letter as PDF",
                ),
                detail,
            );
        }
        let recipients = match self.resolve_recipients(&mut intake).await {
            Ok(r) => r,
            Err((RecipientProblem::Refused(e), given)) => {
                return refused(source, given, doc_type, e, detail);
            }
            Err((RecipientProblem::Later(why), _)) => return Prepared::Later(why),
        };
        let (Some(root), Some(source_oid), Some(mailbox)) = (
            self.config.document_root_oid.clone(),
            self.config.source_oid.clone(),
            self.config.mailbox.clone(),
        ) else {
            return Prepared::Later("[outbound] is missing the sending settings".into());
        };
        // The seed makes every identifier (CDA ids, Message-ID): the same drop rebuilds the
        // same mail after a crash.
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
            self.config
                .nil
                .clone()
                .unwrap_or_else(|| format!("Relais {}", env!("CARGO_PKG_VERSION"))),
        );
        opts.from_name = self.config.mailbox_name.clone();
        opts.request_read_receipt = self.config.request_read_receipt;
        opts.request_dsn = true;
        let built = tokio::task::spawn_blocking(move || {
            relais_compose::compose(&intake, &pdf, &ctx, &opts)
        })
        .await;
        let composed = match built {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let code = match &e {
                    BuildError::Intake(i) => i
                        .problems
                        .first()
                        .map(|p| p.code.to_string())
                        .unwrap_or_else(|| codes::BUILD.into()),
                    BuildError::NotPdf => codes::NOT_PDF.into(),
                    _ => codes::BUILD.into(),
                };
                tracing::warn!(code = %code, "outbound letter cannot be built");
                return refused(
                    source,
                    recipients,
                    doc_type,
                    err(&code, e.to_string()),
                    detail,
                );
            }
            Err(e) => return Prepared::Later(format!("the build task failed: {e}")),
        };
        let size = composed.mail.raw.len() as u64;
        if size > self.config.max_mail_bytes {
            return refused(
                source,
                recipients,
                doc_type,
                err(
                    codes::TOO_LARGE,
                    format!(
                        "the mail would be {size} bytes, more than the {} allowed \
                         ([outbound] max_mail_bytes); it was not sent and nothing was cut: \
                         drop a smaller PDF",
                        self.config.max_mail_bytes
                    ),
                ),
                detail,
            );
        }
        let level = match composed.cda.level {
            relais_compose::Level::N1 => 1,
            relais_compose::Level::N3 => 3,
        };
        let mail = composed.mail;
        Prepared::Ready(Box::new(LetterRequest {
            source,
            document_type: doc_type,
            cda_id: Some(composed.cda.unique_id),
            cda_level: Some(level),
            recipients,
            body: LetterBody::Built(LetterMail {
                message_id: mail.message_id,
                envelope_id: mail.envelope_id,
                envelope_from: mail.envelope_from,
                raw: mail.raw,
            }),
            detail,
        }))
    }

    /// Looks at a folder: updates what is known of each file, takes the drops that are ready,
    /// refuses the orphans that waited too long.
    pub(crate) async fn scan_folder(
        &self,
        folder: &IntakeFolder,
        s: &mut OutboundSummary,
    ) -> Result<(), EngineError> {
        let files = match self.observe(folder) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(folder = %folder.path.display(), error = %e, "outbound folder unreadable; retrying at the next scan");
                return Ok(());
            }
        };
        // Group by stem: <name>.pdf with <name>.json or <name>.toml.
        let mut groups: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
        for f in files {
            let stem = f
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            groups.entry(stem).or_default().push(f);
        }
        let mut waiting = 0;
        for (stem, files) in groups {
            let ext = |f: &Seen| {
                f.path
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default()
            };
            let pdf: Vec<&Seen> = files.iter().filter(|f| ext(f) == "pdf").collect();
            let meta: Vec<&Seen> = files
                .iter()
                .filter(|f| ext(f) == "json" || ext(f) == "toml")
                .collect();
            let all_stable = files.iter().all(|f| f.stable);
            match (pdf.as_slice(), meta.as_slice()) {
                ([p], [m]) if files.len() == 2 => {
                    if !all_stable {
                        waiting += 1;
                        continue;
                    }
                    let toml = ext(m) == "toml";
                    self.take_drop(folder, &stem, &p.path, &m.path, toml, p.len, m.len, s)
                        .await?;
                }
                _ => {
                    if let [lone] = files.as_slice()
                        && lone.stable
                        && self.finish_interrupted_move(folder, &stem, lone).await?
                    {
                        continue;
                    }
                    let (code, why) = if meta.len() > 1 {
                        (
                            codes::DROP_AMBIGUOUS,
                            "the drop has several metadata files (.json and .toml): keep one",
                        )
                    } else if pdf.is_empty() || meta.is_empty() || files.len() != 2 {
                        (
                            codes::DROP_INCOMPLETE,
                            "a drop is <name>.pdf with <name>.json or <name>.toml; this one was \
                             left incomplete (or with other files of the same name) for longer \
                             than orphan_secs",
                        )
                    } else {
                        continue;
                    };
                    let ready = if code == codes::DROP_AMBIGUOUS {
                        all_stable
                    } else {
                        files.iter().all(|f| f.old)
                    };
                    if ready {
                        let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
                        self.refuse_files(folder, &stem, &paths, code, why, s)
                            .await?;
                    } else if code == codes::DROP_AMBIGUOUS || !all_stable {
                        waiting += 1;
                    }
                }
            }
        }
        self.waiting.store(waiting, Ordering::Relaxed);
        Ok(())
    }

    /// Lists the folder's files (temporary names left out) and updates their observations.
    fn observe(&self, folder: &IntakeFolder) -> std::io::Result<Vec<Seen>> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut present = HashSet::new();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for entry in std::fs::read_dir(&folder.path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if folder.ignores(&name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let path = entry.path();
            present.insert(path.clone());
            let len = meta.len();
            let modified = meta.modified().ok();
            let obs = seen.entry(path.clone()).or_insert(Observation {
                len,
                modified,
                since: now,
            });
            if obs.len != len || obs.modified != modified {
                *obs = Observation {
                    len,
                    modified,
                    since: now,
                };
            }
            let age = now.duration_since(obs.since);
            out.push(Seen {
                path,
                len,
                stable: age >= folder.stable(),
                old: age.as_secs() >= folder.orphan_secs,
            });
        }
        seen.retain(|p, _| !p.starts_with(&folder.path) || present.contains(p));
        Ok(out)
    }

    fn forget(&self, paths: &[&Path]) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for p in paths {
            seen.remove(*p);
        }
    }

    /// Takes a stable drop: read, prepare, journal, move.
    #[allow(clippy::too_many_arguments)]
    async fn take_drop(
        &self,
        folder: &IntakeFolder,
        stem: &str,
        pdf_path: &Path,
        meta_path: &Path,
        toml: bool,
        pdf_len: u64,
        meta_len: u64,
        s: &mut OutboundSummary,
    ) -> Result<(), EngineError> {
        let (pdf, meta) = match (std::fs::read(pdf_path), std::fs::read(meta_path)) {
            (Ok(p), Ok(m)) => (p, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(folder = %folder.path.display(), error = %e, "drop unreadable; retrying at the next scan");
                self.forget(&[pdf_path, meta_path]);
                return Ok(());
            }
        };
        if pdf.len() as u64 != pdf_len || meta.len() as u64 != meta_len {
            // Written to since it was judged stable: look again later.
            self.forget(&[pdf_path, meta_path]);
            return Ok(());
        }
        let source = LetterSource {
            kind: LetterSourceKind::Folder,
            key: meta_path.to_string_lossy().into_owned(),
            sha256: sha256_of_parts(&[&meta, &pdf]),
        };
        let file_name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let detail = json!({
            "pdf_file": file_name(pdf_path),
            "metadata_file": file_name(meta_path),
            "pdf_size": pdf.len(),
        });
        let req = match self.prepare(source, &meta, toml, pdf, detail).await {
            Prepared::Ready(r) => r,
            Prepared::Later(why) => {
                tracing::warn!(folder = %folder.path.display(), reason = %why, "drop left for a later scan");
                return Ok(());
            }
        };
        let outcome = self.outbox.intake_letter(*req).await?;
        self.settle(
            folder,
            stem,
            &[pdf_path.to_path_buf(), meta_path.to_path_buf()],
            outcome,
            s,
        )
        .await
    }

    /// Finishes the move of a drop cut short between its two files (Relais stopped after moving
    /// one): the file left behind is paired with each same-named partner in `done/` and
    /// `error/` (`<stem>.<ext>` or `<stem>.<letter>.<ext>`), and if that pair is the source of a
    /// journaled letter, the file joins its partner. Answers whether it was moved. A lone file
    /// that pairs with no journaled letter is a new, incomplete drop and waits as such.
    async fn finish_interrupted_move(
        &self,
        folder: &IntakeFolder,
        stem: &str,
        lone: &Seen,
    ) -> Result<bool, EngineError> {
        let lone_ext = lone
            .path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let lone_is_pdf = lone_ext == "pdf";
        if !lone_is_pdf && lone_ext != "json" && lone_ext != "toml" {
            return Ok(false);
        }
        let Ok(lone_bytes) = std::fs::read(&lone.path) else {
            return Ok(false);
        };
        for dir in [folder.done_dir(), folder.error_dir()] {
            for (partner, original_name) in partners_in(&dir, stem, lone_is_pdf) {
                let Ok(partner_bytes) = std::fs::read(&partner) else {
                    continue;
                };
                let (meta_path, meta, pdf) = if lone_is_pdf {
                    (
                        folder.path.join(&original_name),
                        &partner_bytes,
                        &lone_bytes,
                    )
                } else {
                    (lone.path.clone(), &lone_bytes, &partner_bytes)
                };
                let source = LetterSource {
                    kind: LetterSourceKind::Folder,
                    key: meta_path.to_string_lossy().into_owned(),
                    sha256: sha256_of_parts(&[meta, pdf]),
                };
                let Some(id) = self.outbox.find_letter_by_source(&source).await? else {
                    continue;
                };
                let path = lone.path.clone();
                let target = dir.clone();
                let moved =
                    tokio::task::spawn_blocking(move || move_into(&path, &target, id.0)).await;
                match moved {
                    Ok(Ok(_)) => {
                        tracing::info!(letter = %id, dir = %dir.display(), "finished moving a drop interrupted by a stop");
                        self.forget(&[&lone.path]);
                        return Ok(true);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(letter = %id, error = %e, "could not finish moving an interrupted drop; retrying at the next scan");
                        return Ok(true);
                    }
                    Err(e) => return Err(EngineError::Internal(e.to_string())),
                }
            }
        }
        Ok(false)
    }

    /// Journals files that do not make a drop as a refused letter and moves them to `error/`.
    async fn refuse_files(
        &self,
        folder: &IntakeFolder,
        stem: &str,
        paths: &[PathBuf],
        code: &str,
        why: &str,
        s: &mut OutboundSummary,
    ) -> Result<(), EngineError> {
        let mut contents: Vec<Vec<u8>> = Vec::new();
        for p in paths {
            contents.push(std::fs::read(p).unwrap_or_default());
        }
        let parts: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
        let names: Vec<String> = paths
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let req = LetterRequest {
            source: LetterSource {
                kind: LetterSourceKind::Folder,
                key: folder.path.join(stem).to_string_lossy().into_owned(),
                sha256: sha256_of_parts(&parts),
            },
            document_type: None,
            cda_id: None,
            cda_level: None,
            recipients: Vec::new(),
            body: LetterBody::Refused(err(code, why)),
            detail: json!({ "files": names }),
        };
        let outcome = self.outbox.intake_letter(req).await?;
        self.settle(folder, stem, paths, outcome, s).await
    }

    /// Moves the files of a journaled drop to `done/` or `error/` (with the reason file).
    async fn settle(
        &self,
        folder: &IntakeFolder,
        stem: &str,
        paths: &[PathBuf],
        outcome: LetterIntake,
        s: &mut OutboundSummary,
    ) -> Result<(), EngineError> {
        let (id, state, duplicate) = match outcome {
            LetterIntake::New { id, state } => (id, state, false),
            LetterIntake::Duplicate { existing, state } => (existing, state, true),
        };
        if duplicate {
            s.duplicates += 1;
        } else if state == LetterState::Failed {
            s.refused += 1;
        } else {
            s.queued += 1;
        }
        let refused = state == LetterState::Failed;
        let dir = if refused {
            folder.error_dir()
        } else {
            folder.done_dir()
        };
        let mut reason = None;
        if refused {
            let record = self.outbox.get_letter(id).await?;
            let e = record.and_then(|r| r.last_error).unwrap_or(ErrorInfo {
                code: "OUTBOUND-FAILED".into(),
                text: "see `relais outbound show`".into(),
            });
            reason = Some(format!(
                "Relais did not send this letter.\n\nletter: {id}\ncode: {}\n\n{}\n\nSee `relais outbound show {id}`. Fix the cause and drop the files again.\n",
                e.code, e.text
            ));
            tracing::warn!(letter = %id, code = %e.code, "outbound drop refused; moved to error/");
        } else {
            tracing::info!(letter = %id, duplicate, "outbound drop taken; moved to done/");
        }
        let paths = paths.to_vec();
        let stem = stem.to_string();
        let moved = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            for p in &paths {
                move_into(p, &dir, id.0)?;
            }
            if let Some(text) = reason {
                let file = dir.join(format!("{stem}.reason.txt"));
                let tmp = dir.join(format!(".{stem}.reason.txt.tmp"));
                std::fs::write(&tmp, text)?;
                std::fs::rename(&tmp, &file)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        if let Err(e) = moved {
            // The journal holds the letter: the drop will be seen again as a duplicate and
            // moved then.
            tracing::warn!(letter = %id, error = %e, "journaled drop not moved; it will be moved at the next scan");
        }
        Ok(())
    }
}

/// The files of `dir` that may be the partner of a drop file named `<stem>.*` (a metadata file
/// if `of_pdf`, else a PDF), as `move_into` names them (`<stem>.<ext>` or
/// `<stem>.<letter>.<ext>`), each with the name it had in the drop folder.
fn partners_in(dir: &Path, stem: &str, of_pdf: bool) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{stem}.");
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let ext = match rest.split_once('.') {
            Some((letter, ext)) if letter.bytes().all(|b| b.is_ascii_digit()) => ext,
            Some(_) => continue,
            None => rest,
        };
        let lower = ext.to_ascii_lowercase();
        let wanted = if of_pdf {
            lower == "json" || lower == "toml"
        } else {
            lower == "pdf"
        };
        if wanted {
            out.push((entry.path(), format!("{stem}.{ext}")));
        }
    }
    out
}

/// Moves `path` into `dir` under its name (with `.<letter>` before the extension when the name
/// is taken), by rename, or by copy and remove across file systems.
fn move_into(path: &Path, dir: &Path, letter: i64) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let mut target = dir.join(name);
    if target.exists() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        target = dir.join(format!("{stem}.{letter}{ext}"));
    }
    match std::fs::rename(path, &target) {
        Ok(()) => {}
        Err(_) => {
            std::fs::copy(path, &target)?;
            std::fs::File::open(&target)?.sync_all()?;
            std::fs::remove_file(path)?;
        }
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}
