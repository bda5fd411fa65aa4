//! A Maildir (`new/`, `cur/`) or a plain folder of `.eml` files.
//!
//! In a Maildir, the unique part of a file name (before `:2,`) names the mail forever, and is the
//! journal's dedup key. With `consume`, a journaled mail moves from `new/` to `cur/` (flag `S`)
//! once the journal holds it, as a mail client would mark it read; without, the folder is left as
//! it is and the dedup key alone keeps each mail to one filing (the embedded demo on `samples/`).

use relais_store::{IngestOutcome, IngestRequest, Journal, SourceKey, Timestamp};
use std::path::{Path, PathBuf};

/// Counts of one scan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    pub new: usize,
    pub duplicates: usize,
    pub errors: usize,
}

/// One mail file found by a scan.
struct Item {
    path: PathBuf,
    unique: String,
    in_new: bool,
}

/// The mail files to look at: a Maildir's `new/` (and `cur/` too when not consuming: nothing
/// moves there then, and dedup keeps it cheap), or a plain folder.
fn list(path: &Path, consume: bool) -> std::io::Result<Vec<Item>> {
    let maildir = path.join("new").is_dir() && path.join("cur").is_dir();
    let dirs: Vec<(PathBuf, bool)> = if maildir && consume {
        vec![(path.join("new"), true)]
    } else if maildir {
        vec![(path.join("new"), true), (path.join("cur"), false)]
    } else {
        vec![(path.to_path_buf(), false)]
    };
    let mut out = Vec::new();
    for (dir, in_new) in dirs {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for p in entries {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') || name.ends_with(".md") {
                continue;
            }
            let unique = name.split(":2,").next().unwrap_or(name).to_string();
            out.push(Item {
                path: p.clone(),
                unique,
                in_new: in_new && maildir,
            });
        }
    }
    Ok(out)
}

/// Journal every mail of the folder; with `consume`, move journaled mails of `new/` to `cur/`.
pub async fn scan(
    journal: &dyn Journal,
    name: &str,
    path: &Path,
    consume: bool,
) -> std::io::Result<ScanStats> {
    let mut stats = ScanStats::default();
    for item in list(path, consume)? {
        let raw = match tokio::fs::read(&item.path).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(source = name, error = %e, "cannot read a mail file; will retry at the next scan");
                stats.errors += 1;
                continue;
            }
        };
        let key = SourceKey::Maildir {
            folder: name.to_string(),
            name: item.unique.clone(),
        };
        match journal
            .ingest(IngestRequest::new(key, &raw, Timestamp::now()))
            .await
        {
            Ok(IngestOutcome::New(id)) => {
                tracing::info!(source = name, message = %id, "mail journaled");
                stats.new += 1;
            }
            Ok(IngestOutcome::Duplicate { existing, .. }) => {
                tracing::debug!(source = name, message = %existing, "mail already journaled");
                stats.duplicates += 1;
            }
            Err(e) => {
                tracing::error!(source = name, error = %e, "cannot journal a mail; it stays in the source");
                stats.errors += 1;
                continue;
            }
        }
        if consume && item.in_new {
            let cur = item
                .path
                .parent()
                .and_then(Path::parent)
                .map(|m| m.join("cur"));
            if let Some(cur) = cur {
                let target = cur.join(format!("{}:2,S", item.unique));
                if let Err(e) = tokio::fs::rename(&item.path, &target).await {
                    tracing::warn!(source = name, error = %e, "journaled mail could not be moved to cur/; it will be seen again and deduplicated");
                }
            }
        }
    }
    Ok(stats)
}
