//! Waking the engine for a watched folder: inotify events (notify 8) when the file system gives
//! them, and a periodic look at the folder's listing for network shares where inotify is
//! silent. Either wakes the engine's loop at once and again once the stability delay has
//! passed, so that a drop is taken within about `stable_secs` of its last write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::config::IntakeFolder;

/// What the folder holds: name → (size, modification time), temporary names left out.
fn listing(folder: &IntakeFolder) -> BTreeMap<String, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&folder.path) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if folder.ignores(&name) {
            continue;
        }
        if let Ok(m) = e.metadata()
            && m.is_file()
        {
            out.insert(name, (m.len(), m.modified().ok()));
        }
    }
    out
}

/// Watches one folder until `shutdown` flips to true, sending `()` on `wake` when the engine
/// should scan it. `waiting` is the number of drops the last scan left waiting for stability.
pub(crate) async fn watch_folder(
    folder: IntakeFolder,
    waiting: Arc<AtomicUsize>,
    wake: mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut events) = mpsc::channel::<()>(64);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| {
        w.watch(&folder.path, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(folder = %folder.path.display(), error = %e, "no file-system events for this folder; polling it");
            None
        }
    };
    let settle = folder.stable() + Duration::from_millis(200);
    let mut poll = tokio::time::interval(Duration::from_secs(folder.poll_secs.max(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = listing(&folder);
    let mut deadline: Option<Instant> = None;
    let far = Duration::from_secs(3600);
    loop {
        let sleep_until = deadline.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            _ = shutdown.changed() => return,
            Some(()) = events.recv() => {
                while events.try_recv().is_ok() {}
                let _ = wake.try_send(());
                deadline = Some(Instant::now() + settle);
            }
            _ = poll.tick() => {
                let now = tokio::task::spawn_blocking({
                    let folder = folder.clone();
                    move || listing(&folder)
                })
                .await
                .unwrap_or_default();
                if now != last {
                    last = now;
                    let _ = wake.try_send(());
                    deadline = Some(Instant::now() + settle);
                } else if deadline.is_none() && waiting.load(Ordering::Relaxed) > 0 {
                    deadline = Some(Instant::now() + settle);
                }
            }
            _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                deadline = None;
                let _ = wake.try_send(());
            }
        }
    }
}
