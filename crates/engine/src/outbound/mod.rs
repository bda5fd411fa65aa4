//! The outbound side: letters from the DPI to MSSanté, and what becomes of them.
//!
//! ```text
//! watched folder ──▶ intake ──▶ recipients ──▶ build ──▶ journal ──▶ send ──▶ tracking
//! (PDF + JSON/TOML,  (stable    (RPPS via the   (CDA, XDM,  (Outbox:   (SMTP,    (DSN and MDN
//!  notify + polling)  files)     Annuaire;       mail via    queued)    DSN       read back by
//!                                liste blanche)  compose)               request)  the inbound side)
//! ```
//!
//! - **Intake** ([`intake`]): the DPI drops `<name>.pdf` and `<name>.json` (or `.toml`) into a
//!   watched folder. A file is taken once its size and modification time stayed the same for
//!   the configured delay (temporary names ignored). The letter is checked, its recipients
//!   resolved and checked against the liste blanche, its mail built by `relais-compose` (which
//!   checks every document it builds), then journaled ([`relais_store::Outbox`]); only then
//!   do the files move to `done/`, or to `error/` with `<name>.reason.txt` saying why.
//! - **HL7 intake** ([`hl7`]): producers send ORU^R01 (v2.5) or MDM^T02/T10 (v2.6) of the ANS
//!   guide "Transmission de documents CDA en HL7v2" over MLLP (`[outbound.mllp]`); the CDA they
//!   carry is checked, sent as is, to the recipients of the PRT segments, and journaled before
//!   the ACK (AA, AE with the refusal's code, AR to resend later).
//! - **Sending** ([`send`]): `queued → claimed → in_flight → sent | failed` over SMTP with a DSN
//!   request (`NOTIFY=SUCCESS,FAILURE,DELAY`, `RET=HDRS`). A letter whose send was interrupted
//!   (the process killed while in flight) is **held for review**, never sent again blindly.
//! - **Tracking** ([`tracking`]): DSNs and MDNs that come back into an inbound mailbox are
//!   matched to their letter by `Original-Message-ID`, the returned headers, `In-Reply-To` /
//!   `References` or the DSN envelope id, and update each recipient (delivered, read, failed,
//!   with the remote reason). Inbound, the liste blanche can also quarantine mail from outside
//!   the espace de confiance.
//!
//! Logs carry letter ids, states and codes, never patient data.

pub mod config;
pub mod hl7;
pub mod intake;
pub mod recipients;
pub mod send;
pub mod tracking;
pub mod watch;

/// The Annuaire and liste blanche crate the outbound side uses, for the command line
/// (`relais annuaire import | search`).
pub use relais_annuaire;

pub use config::{
    AnnuaireSettings, IntakeFolder, LdapSettings, ListeBlancheSettings, MllpSettings,
    OutboundConfig, PdfDefaults, ZamSettings, annuaire_dir,
};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use relais_annuaire::{Directory, Refreshing};
use relais_store::{Outbox, SqliteJournal};

use crate::config::ConfigError;
use crate::{Engine, EngineError, RunSummary};

/// What one outbound cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSummary {
    /// Letters journaled and queued.
    pub queued: usize,
    /// Drops refused (journaled as failed, moved to `error/`).
    pub refused: usize,
    /// Drops seen again (already journaled): moved, not journaled twice.
    pub duplicates: usize,
    /// Letters accepted by the submission server.
    pub sent: usize,
    /// Letters refused for good by the server (or no longer allowed).
    pub failed: usize,
    /// Letters given back to the queue (server unreachable, 4xx).
    pub retried: usize,
    /// Letters held for review (outcome unknown after a crash, or while sending).
    pub held: usize,
}

impl OutboundSummary {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        *self == OutboundSummary::default()
    }
}

/// The outbound side of an engine: its journal, liste blanche, Annuaire and sending settings.
pub struct Outbound {
    config: OutboundConfig,
    outbox: Arc<dyn Outbox>,
    /// The same journal, for peeking at inbound mails' headers (report detection).
    journal: SqliteJournal,
    liste_blanche: Option<Arc<Refreshing>>,
    directory: Option<Arc<dyn Directory>>,
    smtp: Option<relais_smtp::SmtpConfig>,
    worker: String,
    /// Observations of the files of the watched folders (stability).
    seen: std::sync::Mutex<HashMap<PathBuf, intake::Observation>>,
    recovered: AtomicBool,
    /// Candidate files left waiting by the last scan (the watcher wakes the loop for them).
    waiting: Arc<AtomicUsize>,
    /// Serialises cycles (the daemon's loop and a CLI call never scan at once).
    cycle: tokio::sync::Mutex<()>,
    /// Where refused HL7 messages are kept (`[outbound.mllp] error_dir`).
    hl7_error_dir: PathBuf,
    /// The address the MLLP listener is bound to, once started.
    mllp_addr: tokio::sync::Mutex<Option<std::net::SocketAddr>>,
    /// The ZAM acknowledgements already reported to producers (one line each).
    zam_state: PathBuf,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("folders", &self.config.folders.len())
            .field("directory", &self.directory.as_ref().map(|d| d.describe()))
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Sets up the outbound side from the configuration; `None` when `[outbound]` configures
    /// nothing. Loads the liste blanche (it must be usable now) and opens the Annuaire.
    pub async fn open(
        config: &crate::config::Config,
        journal: &SqliteJournal,
        worker: &str,
    ) -> Result<Option<Outbound>, EngineError> {
        let oc = &config.outbound;
        if !oc.is_enabled() {
            return Ok(None);
        }
        let problems = oc.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.join("; ")).into());
        }
        let liste_blanche = match &oc.liste_blanche {
            Some(lb) => {
                let path = lb.path.clone();
                let loaded = tokio::task::spawn_blocking(move || Refreshing::open(path))
                    .await
                    .map_err(|e| EngineError::Internal(e.to_string()))?
                    .map_err(|e| ConfigError::Invalid(format!("[outbound.liste_blanche] {e}")))?;
                Some(Arc::new(loaded))
            }
            None => None,
        };
        let directory: Option<Arc<dyn Directory>> = if oc.annuaire.extract {
            let db = relais_annuaire::AnnuaireDb::open(annuaire_dir(&config.data_dir))
                .await
                .map_err(|e| ConfigError::Invalid(format!("[outbound.annuaire] {e}")))?;
            Some(Arc::new(db))
        } else if let Some(ldap) = &oc.annuaire.ldap {
            let cfg = ldap.ldap_config().map_err(ConfigError::Invalid)?;
            let dir = relais_annuaire::LdapDirectory::new(cfg)
                .map_err(|e| ConfigError::Invalid(format!("[outbound.annuaire.ldap] {e}")))?;
            Some(Arc::new(dir))
        } else {
            None
        };
        let smtp = match &oc.smtp {
            Some(s) => Some(s.smtp_config().map_err(|e| {
                ConfigError::Invalid(e.replace("[answers.smtp]", "[outbound.smtp]"))
            })?),
            None => None,
        };
        for f in &oc.folders {
            for dir in [f.path.clone(), f.done_dir(), f.error_dir()] {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "[[outbound.folder]] cannot create {}: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        let hl7_error_dir = oc
            .mllp
            .as_ref()
            .and_then(|m| m.error_dir.clone())
            .unwrap_or_else(|| config.data_dir.join("outbound").join("hl7-error"));
        tracing::info!(
            folders = oc.folders.len(),
            annuaire = directory.as_ref().map(|d| d.describe()).unwrap_or_default(),
            "outbound side ready"
        );
        Ok(Some(Outbound {
            config: oc.clone(),
            outbox: Arc::new(journal.clone()),
            journal: journal.clone(),
            liste_blanche,
            directory,
            smtp,
            worker: worker.to_string(),
            seen: std::sync::Mutex::new(HashMap::new()),
            recovered: AtomicBool::new(false),
            waiting: Arc::new(AtomicUsize::new(0)),
            cycle: tokio::sync::Mutex::new(()),
            hl7_error_dir,
            mllp_addr: tokio::sync::Mutex::new(None),
            zam_state: config.data_dir.join("outbound").join("zam-sent.txt"),
        }))
    }

    /// The outbound journal.
    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
    }

    /// The configuration in use.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// The liste blanche in use, when configured.
    pub fn liste_blanche(&self) -> Option<&Arc<Refreshing>> {
        self.liste_blanche.as_ref()
    }

    /// One cycle: recover what a crash interrupted (once), take the stable drops of every
    /// folder, send what is due.
    pub async fn once(&self) -> Result<OutboundSummary, EngineError> {
        let _cycle = self.cycle.lock().await;
        let mut s = OutboundSummary::default();
        if !self.recovered.swap(true, Ordering::SeqCst) {
            self.recover(&mut s).await?;
        }
        for folder in &self.config.folders {
            self.scan_folder(folder, &mut s).await?;
        }
        self.send_due(&mut s).await?;
        Ok(s)
    }

    /// Spawns the background tasks of the outbound side: the liste blanche reloader and one
    /// watcher per folder, which wakes the engine's loop (`wake`) when a drop may be ready.
    /// They stop when `shutdown` flips to true (the reloader with the runtime).
    pub fn spawn_watchers(
        &self,
        wake: tokio::sync::mpsc::Sender<()>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if let (Some(lb), Some(settings)) = (&self.liste_blanche, &self.config.liste_blanche) {
            let handle = lb
                .clone()
                .spawn(Duration::from_secs(settings.check_interval_secs.max(1)));
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = stop.changed().await;
                handle.abort();
            });
        }
        for folder in &self.config.folders {
            tokio::spawn(watch::watch_folder(
                folder.clone(),
                self.waiting.clone(),
                wake.clone(),
                shutdown.clone(),
            ));
        }
    }
}

impl Engine {
    /// The outbound side, when configured.
    pub fn outbound(&self) -> Option<&Outbound> {
        self.outbound.as_deref()
    }

    /// One outbound cycle (see [`Outbound::once`]), logged; called by [`Engine::run_once`].
    pub async fn outbound_once(&self, _summary: &mut RunSummary) -> Result<(), EngineError> {
        let Some(o) = &self.outbound else {
            return Ok(());
        };
        let s = o.once().await?;
        if !s.is_empty() {
            tracing::info!(?s, "outbound cycle");
        }
        Ok(())
    }

    /// Starts the outbound background tasks (see [`Outbound::spawn_watchers`]).
    pub fn start_outbound_watchers(
        &self,
        wake: tokio::sync::mpsc::Sender<()>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if let Some(o) = &self.outbound {
            o.spawn_watchers(wake, shutdown);
        }
    }
}
