//! Reading an XDM ZIP: archive safety first, then the package structure.
//!
//! Order matters for safety. Everything the central directory declares (entry count, paths,
//! encryption, compression, sizes, ratios) is checked before a single byte is inflated; then each
//! entry is inflated through a reader capped just above what the limits allow, so that a header
//! lying about the uncompressed size cannot make us allocate more than the limit.

use crate::codes;
use crate::error::XdmError;
use crate::model::{Cx, DocumentEntry, Metadata};
use crate::parse::{is_sha1_hex, parse_metadata};
use relais_core::{Finding, Limits, Location};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use zip::CompressionMethod;

/// Entries smaller than this are never refused for their compression ratio: a tiny file of
/// spaces compresses a hundredfold and cannot exhaust anything.
pub const RATIO_EXEMPT_BYTES: u64 = 1024 * 1024;

/// A package as read: the root files, each subset with its metadata and documents, and every
/// finding about the package structure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdmPackage {
    /// `README.TXT` (matched case-insensitively), decoded as UTF-8 (lossy).
    pub readme: Option<String>,
    /// `INDEX.HTM` (matched case-insensitively), decoded as UTF-8 (lossy).
    pub index_htm: Option<String>,
    /// The subsets (`IHE_XDM/<name>/` folders), sorted by folder name.
    pub subsets: Vec<Subset>,
    /// The path of every entry of the archive, directories included, in archive order.
    pub entries: Vec<String>,
    /// What is wrong or remarkable with the package (none for a conformant package).
    pub findings: Vec<Finding>,
}

/// One submission set folder of the package (`IHE_XDM/SUBSET01`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subset {
    /// The folder path without trailing slash, e.g. `IHE_XDM/SUBSET01`.
    pub dir: String,
    /// Its METADATA.XML, when present and readable as a SubmitObjectsRequest.
    pub metadata: Option<Metadata>,
    /// The documents its entries reference and the archive holds, in entry order.
    pub documents: Vec<XdmDocument>,
}

/// One document of a subset: its metadata entry and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdmDocument {
    /// The DocumentEntry that references it.
    pub entry: DocumentEntry,
    /// Its path in the archive, e.g. `IHE_XDM/SUBSET01/DOC0001.XML`.
    pub zip_path: String,
    /// Its content, as stored in the archive.
    pub content: Vec<u8>,
}

impl XdmPackage {
    /// Every document of every subset, in order.
    pub fn documents(&self) -> impl Iterator<Item = &XdmDocument> {
        self.subsets.iter().flat_map(|s| s.documents.iter())
    }

    /// True when no finding is an error.
    pub fn is_valid(&self) -> bool {
        relais_core::finding::all_valid(&self.findings)
    }
}

/// Read an XDM package from the bytes of its ZIP. Fatal problems of the archive (not a ZIP,
/// limits exceeded, path traversal, bombs, encryption) give an [`XdmError`]; problems of the
/// package structure and metadata are [`Finding`]s in the result.
pub fn read_package(zip_bytes: &[u8], limits: &Limits) -> Result<XdmPackage, XdmError> {
    let files = read_archive(zip_bytes, limits)?;
    Ok(assemble(files, limits))
}

/// The archive after the safety checks: entry paths in order and file contents by path.
struct Archive {
    entries: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
}

fn read_archive(bytes: &[u8], limits: &Limits) -> Result<Archive, XdmError> {
    if bytes.len() as u64 > limits.max_zip_bytes {
        return Err(XdmError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_zip_bytes,
        });
    }
    // Refuse a huge central directory before the ZIP reader builds it in memory.
    if let Some(count) = declared_entry_count(bytes)
        && count > u64::from(limits.max_zip_entries)
    {
        return Err(XdmError::TooManyEntries {
            count,
            limit: limits.max_zip_entries,
        });
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| XdmError::NotAZip {
        reason: e.to_string(),
    })?;
    if archive.len() as u64 > u64::from(limits.max_zip_entries) {
        return Err(XdmError::TooManyEntries {
            count: archive.len() as u64,
            limit: limits.max_zip_entries,
        });
    }
    if archive.metadata().has_duplicate_names() {
        return Err(XdmError::DuplicateEntry);
    }

    // Pass 1: the central directory only.
    struct Planned {
        path: String,
        is_dir: bool,
        declared: u64,
        compressed: u64,
    }
    let mut planned = Vec::with_capacity(archive.len());
    let mut declared_total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|e| XdmError::Corrupt {
                index,
                path: String::new(),
                reason: e.to_string(),
            })?;
        let path = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                return Err(XdmError::Corrupt {
                    index,
                    path: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                    reason: format!("unreadable entry name: {e}"),
                });
            }
        };
        if let Some(why) = unsafe_path(&path) {
            return Err(XdmError::PathTraversal { index, path, why });
        }
        if entry.enclosed_name().is_none() {
            return Err(XdmError::PathTraversal {
                index,
                path,
                why: "the ZIP reader finds it escapes the archive root",
            });
        }
        if entry.encrypted() {
            return Err(XdmError::Encrypted { index, path });
        }
        let method = entry.compression();
        if !matches!(
            method,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(XdmError::UnsupportedCompression {
                index,
                path,
                method: format!("{method:?}"),
            });
        }
        let declared = entry.size();
        let compressed = entry.compressed_size();
        if declared > limits.max_zip_entry_bytes {
            return Err(XdmError::Bomb {
                index,
                path,
                reason: format!(
                    "declared uncompressed size {declared} bytes exceeds the per-entry limit of {} bytes",
                    limits.max_zip_entry_bytes
                ),
            });
        }
        if declared > RATIO_EXEMPT_BYTES
            && declared / compressed.max(1) > u64::from(limits.max_zip_ratio)
        {
            return Err(XdmError::Bomb {
                index,
                path,
                reason: format!(
                    "declared compression ratio {} exceeds the limit of {}",
                    declared / compressed.max(1),
                    limits.max_zip_ratio
                ),
            });
        }
        declared_total = declared_total.saturating_add(declared);
        if declared_total > limits.max_zip_total_bytes {
            return Err(XdmError::Bomb {
                index,
                path,
                reason: format!(
                    "declared uncompressed total exceeds the limit of {} bytes",
                    limits.max_zip_total_bytes
                ),
            });
        }
        planned.push(Planned {
            path,
            is_dir: entry.is_dir(),
            declared,
            compressed,
        });
    }

    // Pass 2: inflate through capped readers.
    let mut files = BTreeMap::new();
    let mut actual_total: u64 = 0;
    for (index, p) in planned.iter().enumerate() {
        if p.is_dir {
            continue;
        }
        let ratio_cap =
            RATIO_EXEMPT_BYTES.max(p.compressed.saturating_mul(u64::from(limits.max_zip_ratio)));
        let remaining_total = limits.max_zip_total_bytes.saturating_sub(actual_total);
        let cap = limits
            .max_zip_entry_bytes
            .min(ratio_cap)
            .min(remaining_total);
        let mut file = archive.by_index(index).map_err(|e| XdmError::Corrupt {
            index,
            path: p.path.clone(),
            reason: e.to_string(),
        })?;
        let (content, exceeded) = match read_capped(&mut file, cap, p.declared.min(cap)) {
            Ok(r) => r,
            // The zip reader itself stops an entry at its declared size; past it, the header
            // lied about the size: the classic bomb. (Matched on the reader's message; should
            // it change, the entry is still refused, as corrupt.)
            Err(e) if e.to_string().contains("declared uncompressed size") => {
                return Err(XdmError::Bomb {
                    index,
                    path: p.path.clone(),
                    reason: format!(
                        "inflates beyond the {} bytes its header declares",
                        p.declared
                    ),
                });
            }
            Err(e) => {
                return Err(XdmError::Corrupt {
                    index,
                    path: p.path.clone(),
                    reason: e.to_string(),
                });
            }
        };
        if exceeded {
            let which = if cap == limits.max_zip_entry_bytes {
                format!(
                    "the per-entry limit of {} bytes",
                    limits.max_zip_entry_bytes
                )
            } else if cap == remaining_total {
                format!("the total limit of {} bytes", limits.max_zip_total_bytes)
            } else {
                format!("the compression ratio limit of {}", limits.max_zip_ratio)
            };
            return Err(XdmError::Bomb {
                index,
                path: p.path.clone(),
                reason: format!(
                    "inflates beyond {which} while its header declares {} bytes",
                    p.declared
                ),
            });
        }
        if content.len() as u64 != p.declared {
            return Err(XdmError::Corrupt {
                index,
                path: p.path.clone(),
                reason: format!(
                    "inflates to {} bytes while the central directory declares {}",
                    content.len(),
                    p.declared
                ),
            });
        }
        actual_total += content.len() as u64;
        files.insert(p.path.clone(), content);
    }
    Ok(Archive {
        entries: planned.into_iter().map(|p| p.path).collect(),
        files,
    })
}

/// Read at most `cap` bytes; `true` when the reader had more. Memory never exceeds `cap` bytes
/// of buffer (growth is clamped at the cap), whatever the entry header declared.
fn read_capped(r: &mut impl Read, cap: u64, expected: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut buf: Vec<u8> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(cap));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok((buf, false)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.len() + n > cap {
            return Ok((buf, true));
        }
        if buf.capacity() < buf.len() + n {
            let want = (buf.capacity() * 2).max(buf.len() + n).min(cap);
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Why a ZIP entry path is unsafe, or `None`. Checked on top of the ZIP reader's own
/// `enclosed_name`, with both separators, so that a path is refused whatever system unpacks it.
pub(crate) fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.contains('\0') {
        return Some("NUL byte in path");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Some("absolute path");
    }
    let b = path.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Some("drive letter");
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Some("parent directory (..) component");
    }
    None
}

/// The entry count the end-of-central-directory record declares (ZIP64 aware), read without
/// parsing the directory. `None` when no record is found (the ZIP reader will say more).
fn declared_entry_count(bytes: &[u8]) -> Option<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD64_LOCATOR: &[u8] = b"PK\x06\x07";
    const EOCD64: &[u8] = b"PK\x06\x06";
    if bytes.len() < 22 {
        return None;
    }
    let search_from = bytes.len().saturating_sub(22 + 65_535);
    let pos = (search_from..=bytes.len() - 22)
        .rev()
        .find(|&i| &bytes[i..i + 4] == EOCD)?;
    let le16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
    };
    let total = le16(pos + 10)?;
    if total != 0xFFFF {
        return Some(total);
    }
    let loc = pos.checked_sub(20)?;
    if bytes.get(loc..loc + 4)? != EOCD64_LOCATOR {
        return Some(total);
    }
    let off = u64::from_le_bytes(bytes.get(loc + 8..loc + 16)?.try_into().ok()?);
    let off = usize::try_from(off).ok()?;
    if bytes.get(off..off + 4)? != EOCD64 {
        return Some(total);
    }
    Some(u64::from_le_bytes(
        bytes.get(off + 32..off + 40)?.try_into().ok()?,
    ))
}

fn root_file<'a>(files: &'a BTreeMap<String, Vec<u8>>, name: &str) -> Option<&'a Vec<u8>> {
    files.get(name).or_else(|| {
        files
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The subset folder of a path: `IHE_XDM/SUBSET01/DOC0001.XML` gives `IHE_XDM/SUBSET01`.
fn subset_of(path: &str) -> Option<&str> {
    let (top, rest) = path.split_once('/')?;
    if !top.eq_ignore_ascii_case("IHE_XDM") {
        return None;
    }
    let (sub, _) = rest.split_once('/')?;
    if sub.is_empty() {
        return None;
    }
    Some(&path[..top.len() + 1 + sub.len()])
}

/// Resolve a DocumentEntry URI against its subset folder. `Err` names what is wrong.
fn resolve_uri(dir: &str, uri: &str) -> Result<String, &'static str> {
    let uri = uri.trim();
    if uri.is_empty() {
        return Err("the URI is empty");
    }
    if uri.contains("://")
        || uri.starts_with('/')
        || uri.starts_with('\\')
        || unsafe_path(uri) == Some("drive letter")
    {
        return Err("the URI is absolute; it must be a path relative to the subset folder");
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for comp in uri.split(['/', '\\']) {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("the URI climbs out of the archive with ..");
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

fn assemble(archive: Archive, limits: &Limits) -> XdmPackage {
    let Archive { entries, files } = archive;
    let mut findings = Vec::new();
    let readme = root_file(&files, "README.TXT").map(|b| String::from_utf8_lossy(b).into_owned());
    let index_htm = root_file(&files, "INDEX.HTM").map(|b| String::from_utf8_lossy(b).into_owned());
    if readme.is_none() {
        findings.push(Finding::warning(
            codes::XDM_README_MISSING,
            "no README.TXT at the root of the archive (ITI-32 requires one naming the sending product)",
        ));
    }
    if index_htm.is_none() {
        findings.push(Finding::warning(
            codes::XDM_INDEX_MISSING,
            "no INDEX.HTM at the root of the archive (ITI-32 requires one listing the content)",
        ));
    }

    let dirs: BTreeSet<String> = entries
        .iter()
        .filter_map(|p| subset_of(p))
        .map(String::from)
        .collect();
    if dirs.is_empty() {
        findings.push(Finding::error(
            codes::XDM_METADATA_MISSING,
            "no IHE_XDM/<subset>/METADATA.XML in the archive: this is not an XDM package",
        ));
    }

    let mut subsets = Vec::new();
    for dir in dirs {
        let prefix = format!("{dir}/");
        let exact = format!("{dir}/METADATA.XML");
        let metadata_path = if files.contains_key(&exact) {
            Some(exact)
        } else {
            files
                .keys()
                .find(|k| k.len() == exact.len() && k.eq_ignore_ascii_case(&exact))
                .cloned()
        };
        let mut subset = Subset {
            dir: dir.clone(),
            ..Subset::default()
        };
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        match &metadata_path {
            None => findings.push(
                Finding::error(
                    codes::XDM_METADATA_MISSING,
                    "subset folder without METADATA.XML: its documents cannot be identified",
                )
                .at(Location::ZipEntry(prefix.clone())),
            ),
            Some(mp) => {
                let (md, mut fs) = parse_metadata(&files[mp], mp, limits);
                findings.append(&mut fs);
                if let Some(md) = &md {
                    for e in &md.entries {
                        if let Some(doc) = locate(&dir, e, &files, &mut findings) {
                            referenced.insert(doc.zip_path.clone());
                            check_integrity(&doc, &mut findings);
                            subset.documents.push(doc);
                        }
                    }
                }
                subset.metadata = md;
            }
        }
        for path in files.keys().filter(|k| k.starts_with(&prefix)) {
            if Some(path) != metadata_path.as_ref() && !referenced.contains(path) {
                findings.push(
                    Finding::warning(
                        codes::XDM_UNREFERENCED_FILE,
                        "file of the subset referenced by no DocumentEntry URI",
                    )
                    .at(Location::ZipEntry(path.clone())),
                );
            }
        }
        subsets.push(subset);
    }
    cross_subset_checks(&subsets, &mut findings);
    XdmPackage {
        readme,
        index_htm,
        subsets,
        entries,
        findings,
    }
}

fn locate(
    dir: &str,
    e: &DocumentEntry,
    files: &BTreeMap<String, Vec<u8>>,
    findings: &mut Vec<Finding>,
) -> Option<XdmDocument> {
    let uri = e.uri.as_deref()?;
    if uri.trim().is_empty() {
        return None; // reported as a missing URI slot
    }
    let resolved = match resolve_uri(dir, uri) {
        Ok(r) => r,
        Err(why) => {
            findings.push(
                Finding::error(
                    codes::XDM_URI_INVALID,
                    format!("DocumentEntry {}: {why}", e.entry_uuid),
                )
                .at(Location::ZipEntry(format!("{dir}/"))),
            );
            return None;
        }
    };
    // Exact path; then the URI read from the archive root (some senders write the full path);
    // then a case-insensitive match (Windows-made packages).
    let from_root = resolve_uri("", uri).ok();
    let found = if files.contains_key(&resolved) {
        Some(resolved.clone())
    } else if let Some(r) = from_root.filter(|r| files.contains_key(r)) {
        Some(r)
    } else if let Some(k) = files.keys().find(|k| k.eq_ignore_ascii_case(&resolved)) {
        findings.push(
            Finding::warning(
                codes::XDM_URI_CASE,
                format!(
                    "DocumentEntry {}: URI matches the archive entry only when case is ignored",
                    e.entry_uuid
                ),
            )
            .at(Location::ZipEntry(k.clone())),
        );
        Some(k.clone())
    } else {
        None
    };
    match found {
        Some(path) => Some(XdmDocument {
            entry: e.clone(),
            content: files[&path].clone(),
            zip_path: path,
        }),
        None => {
            findings.push(
                Finding::error(
                    codes::XDM_DOCUMENT_MISSING,
                    format!(
                        "DocumentEntry {}: the file its URI names is not in the archive",
                        e.entry_uuid
                    ),
                )
                .at(Location::ZipEntry(resolved)),
            );
            None
        }
    }
}

fn check_integrity(doc: &XdmDocument, findings: &mut Vec<Finding>) {
    let e = &doc.entry;
    let loc = || Location::ZipEntry(doc.zip_path.clone());
    if let Some(h) = &e.hash
        && is_sha1_hex(h)
        && !h.eq_ignore_ascii_case(&sha1_hex(&doc.content))
    {
        findings.push(
            Finding::error(
                codes::XDM_HASH_MISMATCH,
                format!(
                    "DocumentEntry {}: the SHA-1 of the file differs from the hash slot (altered or wrong file)",
                    e.entry_uuid
                ),
            )
            .at(loc()),
        );
    }
    if let Some(size) = e.size
        && size != doc.content.len() as u64
    {
        findings.push(
            Finding::error(
                codes::XDM_SIZE_MISMATCH,
                format!(
                    "DocumentEntry {}: the file is {} bytes, the size slot says {size}",
                    e.entry_uuid,
                    doc.content.len()
                ),
            )
            .at(loc()),
        );
    }
}

/// One patient per package and unique document ids, across subsets.
fn cross_subset_checks(subsets: &[Subset], findings: &mut Vec<Finding>) {
    if subsets.len() < 2 {
        return;
    }
    let mut reference: Option<&Cx> = None;
    let mut uids: BTreeSet<&str> = BTreeSet::new();
    for s in subsets {
        let Some(md) = &s.metadata else { continue };
        let ids = md
            .submission_set
            .iter()
            .filter_map(|ss| ss.patient_id.as_ref())
            .chain(md.entries.iter().filter_map(|e| e.patient_id.as_ref()));
        for p in ids {
            match reference {
                None => reference = Some(p),
                Some(r) if !r.same_patient(p) => {
                    findings.push(
                        Finding::error(
                            codes::XDM_PATIENTID_INCONSISTENT,
                            "subsets of the archive carry different patientIds (one patient per MSSanté mail)",
                        )
                        .at(Location::ZipEntry(format!("{}/", s.dir))),
                    );
                    break;
                }
                Some(_) => {}
            }
        }
        for e in &md.entries {
            if !e.unique_id.is_empty() && !uids.insert(e.unique_id.as_str()) {
                findings.push(
                    Finding::error(
                        codes::XDM_DUPLICATE_ID,
                        format!(
                            "DocumentEntry {}: uniqueId already used in another subset",
                            e.entry_uuid
                        ),
                    )
                    .at(Location::ZipEntry(format!("{}/", s.dir))),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths() {
        for p in [
            "../evil",
            "a/../../evil",
            "/etc/passwd",
            "\\windows\\evil",
            "C:/evil",
            "c:evil",
            "..\\..\\evil",
            "a\\..\\..\\b",
            "",
            "a\0b",
        ] {
            assert!(unsafe_path(p).is_some(), "{p:?} should be unsafe");
        }
        for p in [
            "README.TXT",
            "IHE_XDM/SUBSET01/DOC0001.XML",
            "IHE_XDM/",
            "a..b/c",
        ] {
            assert_eq!(unsafe_path(p), None, "{p:?} should be safe");
        }
    }

    /// A reader that never ends, like an inflater fed a bomb with no size check of its own.
    struct Endless;
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            Ok(buf.len())
        }
    }

    #[test]
    fn capped_reader_stops_at_the_cap() {
        let cap = 1_000_000;
        let (buf, exceeded) = read_capped(&mut Endless, cap, 10).unwrap();
        assert!(exceeded);
        assert!(buf.len() as u64 <= cap);
        assert!(
            buf.capacity() as u64 <= cap,
            "capacity {} above the cap",
            buf.capacity()
        );
        let (buf, exceeded) = read_capped(&mut &b"abc"[..], 3, 3).unwrap();
        assert!(!exceeded);
        assert_eq!(buf, b"abc");
        assert!(read_capped(&mut &b"abcd"[..], 3, 3).unwrap().1);
    }

    #[test]
    fn uri_resolution() {
        let d = "IHE_XDM/SUBSET01";
        assert_eq!(
            resolve_uri(d, "DOC0001.XML").unwrap(),
            "IHE_XDM/SUBSET01/DOC0001.XML"
        );
        assert_eq!(
            resolve_uri(d, "./DOC0001.XML").unwrap(),
            "IHE_XDM/SUBSET01/DOC0001.XML"
        );
        assert_eq!(
            resolve_uri(d, "../SUBSET02/D.XML").unwrap(),
            "IHE_XDM/SUBSET02/D.XML"
        );
        assert!(resolve_uri(d, "../../../x").is_err());
        assert!(resolve_uri(d, "/etc/passwd").is_err());
        assert!(resolve_uri(d, "file:///etc/passwd").is_err());
        assert!(resolve_uri(d, "C:\\x").is_err());
    }

    #[test]
    fn subset_folders() {
        assert_eq!(
            subset_of("IHE_XDM/SUBSET01/DOC0001.XML"),
            Some("IHE_XDM/SUBSET01")
        );
        assert_eq!(subset_of("ihe_xdm/s/"), Some("ihe_xdm/s"));
        assert_eq!(subset_of("IHE_XDM/README"), None);
        assert_eq!(subset_of("OTHER/SUBSET01/x"), None);
    }
}
