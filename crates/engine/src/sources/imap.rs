//! An MSSanté mailbox over IMAP (relais-imap).
//!
//! One poll: connect (TLS, optional client certificate), select, take every UID of the mailbox
//! (processed mails are moved out, so what is there is new or was interrupted), fetch each with
//! `BODY.PEEK[]`, journal it under (mailbox, UIDVALIDITY, UID), and hand it back for moving once
//! processed. A crash between journaling and moving only means the mail is seen again and
//! recognised as a duplicate: it is then moved.

use crate::config::{ImapSecurity, Source};
use relais_imap::{Auth, ClientCertFiles, ImapConfig, Security};
use relais_store::{IngestOutcome, IngestRequest, Journal, MessageId, SourceKey, Timestamp};

/// The relais-imap configuration of an `imap` source.
pub fn imap_config(source: &Source, limits: &relais_core::Limits) -> Result<ImapConfig, String> {
    let Source::Imap {
        host,
        port,
        security,
        ca_files,
        client_cert,
        client_key,
        user,
        password_file,
        mailbox,
        processed_folder,
        quarantine_folder,
        name,
        ..
    } = source
    else {
        return Err("not an IMAP source".into());
    };
    let auth = match (user, password_file) {
        (Some(user), Some(file)) => {
            let password = std::fs::read_to_string(file).map_err(|e| {
                format!(
                    "source {name}: cannot read the password file {}: {e}",
                    file.display()
                )
            })?;
            Auth::Password {
                user: user.clone(),
                password: password.trim_end_matches(['\r', '\n']).to_string(),
            }
        }
        (None, None) if client_cert.is_some() => Auth::External { authzid: None },
        _ => {
            return Err(format!(
                "source {name}: give user and password_file, or a client certificate for SASL EXTERNAL"
            ));
        }
    };
    let mut cfg = ImapConfig::new(
        host.clone(),
        *port,
        match security {
            ImapSecurity::Tls => Security::Tls,
            ImapSecurity::Starttls => Security::StartTls,
        },
        ca_files.clone(),
        auth,
    );
    cfg.client_cert = match (client_cert, client_key) {
        (Some(c), Some(k)) => Some(ClientCertFiles {
            cert_chain_pem: c.clone(),
            key_pem: k.clone(),
        }),
        (None, None) => None,
        _ => {
            return Err(format!(
                "source {name}: client_cert and client_key go together"
            ));
        }
    };
    cfg.mailbox = mailbox.clone();
    cfg.processed_folder = processed_folder.clone();
    cfg.quarantine_folder = quarantine_folder.clone();
    cfg.max_message_bytes = u32::try_from(limits.max_mail_bytes).unwrap_or(u32::MAX);
    Ok(cfg)
}

/// A mail journaled from IMAP, to move once processed.
pub struct Fetched {
    pub uid: u32,
    pub message: MessageId,
}

/// Mails fetched per round trip group: while one group is journaled, the next is fetched.
const FETCH_GROUP: usize = 32;

/// Journal every mail of the mailbox; returns the open session and what to move.
///
/// Fetching and journaling overlap: while the journal commits one group of mails (together,
/// sharing its fsyncs), the next group is fetched. A mail is handed back for moving only once
/// the journal holds it.
///
/// `still_held` says whether this instance still holds the mailbox's lease (see
/// [`super::cluster`]): it is asked before each group, and once it says no, nothing more is
/// fetched (what was fetched is journaled; the next holder sees the rest).
pub async fn poll(
    journal: &dyn Journal,
    name: &str,
    cfg: &ImapConfig,
    still_held: &(dyn Fn() -> bool + Sync),
) -> Result<(relais_imap::Session, Vec<Fetched>, usize, usize), relais_imap::ImapError> {
    let mut session = relais_imap::connect(cfg).await?;
    let status = session.select().await?;
    let uids = session.uids_since(0).await?;
    let mut tally = Tally::default();
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    for group in uids.chunks(FETCH_GROUP) {
        if !still_held() {
            tracing::info!(
                source = name,
                "mailbox lease lost during a poll: fetching stopped"
            );
            break;
        }
        let to_journal = std::mem::take(&mut pending);
        let (fetched, ()) = tokio::join!(
            fetch_group(&mut session, group),
            journal_group(journal, name, status.uid_validity, to_journal, &mut tally)
        );
        pending = fetched?;
    }
    journal_group(journal, name, status.uid_validity, pending, &mut tally).await;
    Ok((session, tally.fetched, tally.new, tally.duplicates))
}

#[derive(Default)]
struct Tally {
    fetched: Vec<Fetched>,
    new: usize,
    duplicates: usize,
}

/// Fetches a group of mails in two commands. A mail larger than `max_mail_bytes` is not
/// downloaded: it is moved, as it is, to the quarantine folder on the server, with an error in
/// the log naming its UID and size, so that it neither blocks the mailbox nor goes unseen.
async fn fetch_group(
    session: &mut relais_imap::Session,
    uids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, relais_imap::ImapError> {
    let mut out = Vec::with_capacity(uids.len());
    let mut too_large = Vec::new();
    for (uid, fetched) in session.fetch_many(uids).await? {
        match fetched {
            relais_imap::Fetched::Body(raw) => out.push((uid, raw)),
            relais_imap::Fetched::TooLarge { size, limit } => {
                tracing::error!(
                    uid,
                    size,
                    limit,
                    folder = session.quarantine_folder(),
                    "mail larger than max_mail_bytes: not downloaded, moved to the quarantine folder; raise [limits] max_mail_bytes to take it"
                );
                too_large.push(uid);
            }
            relais_imap::Fetched::Gone => {}
        }
    }
    if !too_large.is_empty() {
        let folder = session.quarantine_folder().to_string();
        session.move_many(&too_large, &folder).await?;
        crate::metrics::too_large(too_large.len());
    }
    Ok(out)
}

async fn journal_group(
    journal: &dyn Journal,
    name: &str,
    uidvalidity: u32,
    mails: Vec<(u32, Vec<u8>)>,
    tally: &mut Tally,
) {
    let now = Timestamp::now();
    let results = futures_util::future::join_all(mails.iter().map(|(uid, raw)| {
        let key = SourceKey::Imap {
            mailbox: name.to_string(),
            uidvalidity,
            uid: *uid,
        };
        journal.ingest(IngestRequest::new(key, raw, now))
    }))
    .await;
    for ((uid, _), result) in mails.iter().zip(results) {
        let uid = *uid;
        match result {
            Ok(IngestOutcome::New(id)) => {
                tally.new += 1;
                tracing::info!(source = name, uid, message = %id, "mail journaled");
                tally.fetched.push(Fetched { uid, message: id });
            }
            Ok(IngestOutcome::Duplicate { existing, .. }) => {
                tally.duplicates += 1;
                tally.fetched.push(Fetched {
                    uid,
                    message: existing,
                });
            }
            Err(e) => {
                tracing::error!(source = name, uid, code = e.code(), error = %e, "cannot journal a mail; it stays in the mailbox");
            }
        }
    }
}

/// How long one IDLE lasts before it is renewed: servers drop IDLE after 30 minutes
/// (RFC 2177), so at most every 25.
pub const IDLE_RENEW: std::time::Duration = std::time::Duration::from_secs(25 * 60);

/// Watch a mailbox with IMAP IDLE and send a wake-up when it changes, until `shutdown`, while
/// `held` says this instance holds the mailbox's lease (the IDLE session is closed when it
/// loses it, and opened again when it takes it back).
/// Connection problems are logged and retried with backoff (1 s doubling up to 5 minutes).
pub async fn watch(
    name: String,
    cfg: ImapConfig,
    wake: tokio::sync::mpsc::Sender<()>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        if !*held.borrow_and_update() {
            tokio::select! {
                r = held.wait_for(|h| *h) => {
                    if r.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
        let session = tokio::select! {
            r = relais_imap::connect(&cfg) => r,
            _ = shutdown.changed() => return,
        };
        let mut session = match session {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(source = %name, code = %e.code(), "IMAP watcher cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(300));
                continue;
            }
        };
        if !session.capabilities().idle {
            tracing::info!(source = %name, "the server has no IDLE: periodic polling only");
            let _ = session.logout().await;
            return;
        }
        if let Err(e) = session.select().await {
            tracing::warn!(source = %name, code = %e.code(), "IMAP watcher cannot select the mailbox; retrying");
            continue;
        }
        backoff = std::time::Duration::from_secs(1);
        loop {
            let outcome = tokio::select! {
                r = session.idle(IDLE_RENEW) => r,
                _ = shutdown.changed() => return,
                _ = held.wait_for(|h| !*h) => {
                    // Another instance polls this mailbox now: close this session.
                    break;
                }
            };
            match outcome {
                Ok(relais_imap::IdleOutcome::NewData) => {
                    let _ = wake.try_send(());
                }
                Ok(relais_imap::IdleOutcome::Timeout) => {}
                Err(e) => {
                    tracing::warn!(source = %name, code = %e.code(), "IMAP IDLE interrupted; reconnecting");
                    break;
                }
            }
        }
    }
}
