//! The content-addressed blob store: layout, durability path, dedup, verification.

use std::fs;
use std::time::{Duration, SystemTime};

use relais_store::{BlobStore, StoreError, codes, sha256_hex};

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn round_trip_layout_and_single_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let bytes = b"Message-ID: <a@b>\r\n\r\nhello".repeat(100);

    let first = store.put(&bytes).unwrap();
    assert!(first.created);
    assert_eq!(first.size, bytes.len() as u64);
    assert_eq!(first.sha256, sha256_hex(&bytes));
    // <root>/ab/cdef...: two-digit fan-out directory, 62-digit file name.
    let expected = dir
        .path()
        .join("blobs")
        .join(&first.sha256[..2])
        .join(&first.sha256[2..]);
    assert_eq!(store.path_of(&first.sha256).unwrap(), expected);
    assert_eq!(fs::read(&expected).unwrap(), bytes);
    assert_eq!(store.get(&first.sha256).unwrap(), bytes);

    // Same content again: not rewritten, still one file, and the temp directory is empty
    // (the temp file was renamed, not copied).
    let mtime = fs::metadata(&expected).unwrap().modified().unwrap();
    let again = store.put(&bytes).unwrap();
    assert!(!again.created);
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(fs::metadata(&expected).unwrap().modified().unwrap(), mtime);
    let all = files_under(&dir.path().join("blobs"));
    assert_eq!(
        all,
        vec![expected.clone()],
        "exactly one blob file, no temp left"
    );

    // Other content: another file; empty content is a valid blob too.
    let other = store.put(b"other").unwrap();
    assert_ne!(other.sha256, first.sha256);
    let empty = store.put(b"").unwrap();
    assert_eq!(store.get(&empty.sha256).unwrap(), b"");
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 3);
}

#[test]
fn a_truncated_blob_is_rewritten_on_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let r = store.put(b"complete content").unwrap();
    let path = store.path_of(&r.sha256).unwrap();
    fs::write(&path, b"compl").unwrap();
    assert!(store.put(b"complete content").unwrap().created);
    assert_eq!(store.get(&r.sha256).unwrap(), b"complete content");
}

#[test]
fn corruption_and_absence_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let r = store.put(b"precious bytes").unwrap();
    let path = store.path_of(&r.sha256).unwrap();
    fs::write(&path, b"precious bytez").unwrap();
    let err = store.get(&r.sha256).unwrap_err();
    assert!(matches!(err, StoreError::BlobCorrupt { .. }), "{err}");
    assert_eq!(err.code(), codes::STORE_BLOB_CORRUPT);
    assert!(store.verify(&r.sha256).is_err());

    fs::remove_file(&path).unwrap();
    let err = store.get(&r.sha256).unwrap_err();
    assert_eq!(err.code(), codes::STORE_BLOB_MISSING);
    assert!(!store.contains(&r.sha256).unwrap());
}

#[test]
fn names_that_are_not_sha256_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    for bad in [
        "",
        "../../etc/passwd",
        &"A".repeat(64),
        &"0".repeat(63),
        &format!("{}/", "0".repeat(63)),
    ] {
        let err = store.get(bad).unwrap_err();
        assert_eq!(err.code(), codes::STORE_INVALID_INPUT, "{bad:?}");
    }
}

#[test]
fn stale_temp_files_of_a_crash_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let tmp = dir.path().join("tmp");
    let old = tmp.join("999-1-deadbeef.tmp");
    let fresh = tmp.join("999-2-deadbeef.tmp");
    fs::write(&old, b"half a mail").unwrap();
    fs::write(&fresh, b"being written").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    drop(store);
    let _store = BlobStore::open(dir.path()).unwrap();
    assert!(!old.exists(), "the crash leftover is gone");
    assert!(
        fresh.exists(),
        "a young temp file may belong to a live writer"
    );
}
