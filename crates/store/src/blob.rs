//! Content-addressed storage of raw mails on disk.
//!
//! A blob is named by the SHA-256 of its bytes: `<root>/ab/cdef…` (the first two hex digits
//! are a fan-out directory). Writing follows the classic durable-rename sequence: write a
//! temporary file in `<root>/tmp/`, fsync it, rename it to its final name, fsync the directory
//! (and the parent when the fan-out directory is new). After [`BlobStore::put`] returns, the
//! bytes survive a power cut; the journal row that references them is committed only then, so a
//! committed row never points to a missing blob. A crash before the rename leaves a temporary
//! file, removed by [`BlobStore::open`] once it is old; a crash after it leaves an unreferenced
//! blob, harmless (a later retention pass may collect them).
//!
//! Identical content is stored once. Reading verifies the hash, so silent corruption is reported
//! ([`StoreError::BlobCorrupt`]) instead of being passed downstream.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Temporary files older than this are leftovers of a crash (a live write takes far less).
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The blob store: a directory of content-addressed, fsynced files.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// What [`BlobStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// SHA-256 of the bytes, lower-case hex: the blob's name.
    pub sha256: String,
    /// Number of bytes.
    pub size: u64,
    /// `false` when identical content was already stored.
    pub created: bool,
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| {
        // A full disk is not a fault of the store: said as such, so that the daemon waits for
        // space instead of stopping (the temporary file is removed by the caller).
        if crate::error::is_full_io(&source) {
            return crate::error::disk_full(format!("cannot {op} {}: {source}", path.display()));
        }
        StoreError::BlobIo {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn check_sha(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(
            "a blob name must be 64 lower-case hex digits".into(),
        ))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

impl BlobStore {
    /// Opens (creating if needed) the store rooted at `root` and removes stale temporary files.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
        let store = BlobStore { root };
        store.remove_stale_tmp(STALE_TMP_AGE)?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `sha256` lives (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        check_sha(sha256)?;
        Ok(self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    /// Whether the blob exists.
    pub fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.path_of(sha256)?.is_file())
    }

    /// Stores `bytes` durably (see the module doc); a no-op when the same content is stored.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobRef> {
        let sha256 = sha256_hex(bytes);
        let size = bytes.len() as u64;
        let path = self.path_of(&sha256)?;
        if let Ok(meta) = fs::metadata(&path)
            && meta.is_file()
            && meta.len() == size
        {
            return Ok(BlobRef {
                sha256,
                size,
                created: false,
            });
        }
        let shard = self.root.join(&sha256[..2]);
        match fs::create_dir(&shard) {
            Ok(()) => sync_dir(&self.root)?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", &shard)(e)),
        }
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            &sha256[..16]
        ));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            f.write_all(bytes).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io_err("rename into", &path))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&shard)?;
        crate::error::disk_space_again();
        Ok(BlobRef {
            sha256,
            size,
            created: true,
        })
    }

    /// Reads the blob and checks that it still hashes to its name.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>> {
        let path = self.path_of(sha256)?;
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing {
                    sha256: sha256.to_owned(),
                });
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io_err("read", &path))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(StoreError::BlobCorrupt {
                sha256: sha256.to_owned(),
            });
        }
        Ok(bytes)
    }

    /// Checks that the blob exists and is intact.
    pub fn verify(&self, sha256: &str) -> Result<()> {
        self.get(sha256).map(|_| ())
    }

    /// Removes temporary files older than `age` (leftovers of a crash mid-write); returns how
    /// many were removed. Younger ones may belong to a live writer in another process.
    pub fn remove_stale_tmp(&self, age: Duration) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err("list", &tmp))? {
            let entry = entry.map_err(io_err("list", &tmp))?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "tmp") {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|a| a >= age);
            if old && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full_and_remembered_until_a_write_succeeds() {
        let e = io_err("write", Path::new("/data/journal/blobs/tmp/x.tmp"))(
            std::io::Error::from_raw_os_error(28),
        );
        assert!(e.is_disk_full(), "{e:?}");
        assert_eq!(e.code(), crate::codes::STORE_DISK_FULL);
        let text = e.to_string();
        assert!(
            text.starts_with("data directory full") && text.contains("free space"),
            "{text}"
        );
        // (Whether it is remembered is not asserted here: other tests' writes clear it.)
        let dir = tempfile::tempdir().unwrap();
        BlobStore::open(dir.path())
            .unwrap()
            .put(b"room again")
            .unwrap();
        assert_eq!(crate::data_dir_full(dir.path()), None);
        // A refusal, then a directory with room: the probe clears it.
        let _ = io_err("write", Path::new("/x"))(std::io::Error::from_raw_os_error(28));
        assert_eq!(crate::data_dir_full(dir.path()), None);
        assert!(!dir.path().join(".relais-space-probe").exists());
        // Other I/O errors stay what they were.
        let e = io_err("write", Path::new("/x"))(std::io::Error::from_raw_os_error(13));
        assert!(!e.is_disk_full());
        assert_eq!(e.code(), crate::codes::STORE_BLOB_IO);
    }
}
