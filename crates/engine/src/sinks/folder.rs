//! The output-folder sink: each document as `<key>.xml` with a `<key>.json` metadata sidecar.
//!
//! Both files are written under a temporary name, fsynced, then renamed, sidecar last, so a
//! watcher that waits for the `.json` always finds a complete document. The name derives from
//! the idempotency key: a retried delivery rewrites the same files with the same content.

use super::{Filing, SinkResult};
use base64::Engine as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A folder the DPI (or an integration script) watches.
#[derive(Debug, Clone)]
pub struct FolderSink {
    pub dir: PathBuf,
}

fn safe_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

impl FolderSink {
    pub fn deliver(&self, key: &str, filing: &Filing) -> SinkResult {
        let cda = match base64::engine::general_purpose::STANDARD.decode(&filing.cda_base64) {
            Ok(c) => c,
            Err(e) => {
                return SinkResult::Rejected {
                    code: "SINK-PAYLOAD".into(),
                    text: format!("the journaled document is not valid base64: {e}"),
                };
            }
        };
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return SinkResult::Retry(format!(
                "cannot create the output folder {}: {e}",
                self.dir.display()
            ));
        }
        let stem = safe_name(key);
        let mut meta = serde_json::to_value(filing).unwrap_or_default();
        if let Some(obj) = meta.as_object_mut() {
            obj.remove("cda_base64");
            obj.insert("file".into(), format!("{stem}.xml").into());
        }
        let sidecar = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        let result = write_atomically(&self.dir, &format!("{stem}.xml"), &cda)
            .and_then(|_| write_atomically(&self.dir, &format!("{stem}.json"), &sidecar))
            .and_then(|_| std::fs::File::open(&self.dir).and_then(|d| d.sync_all()));
        match result {
            Ok(()) => SinkResult::Delivered(format!("written as {stem}.xml")),
            Err(e) => SinkResult::Retry(format!("cannot write into {}: {e}", self.dir.display())),
        }
    }
}
