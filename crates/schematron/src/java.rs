//! Finding Java and Saxon-HE, and building the worker class once per source version.

use crate::error::SchematronError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Source of the worker, compiled at run time with the local `javac` against the local Saxon.
pub const WORKER_SOURCE: &str = include_str!("../java/RelaisSchematronWorker.java");
/// Main class of the worker.
pub const WORKER_CLASS: &str = "RelaisSchematronWorker";
/// Where Debian's libsaxonhe-java puts the jar.
const SAXON_CANDIDATES: [&str; 2] = [
    "/usr/share/java/Saxon-HE.jar",
    "/usr/share/java/saxon9he.jar",
];

fn unavailable(reason: impl Into<String>) -> SchematronError {
    SchematronError::Unavailable {
        reason: reason.into(),
    }
}

/// A program on `PATH` (or in `$JAVA_HOME/bin`).
fn on_path(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The `java` launcher: the configured one, else the one on `PATH`.
pub fn find_java(configured: Option<&Path>) -> Result<PathBuf, SchematronError> {
    match configured {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(unavailable(format!(
            "the configured Java launcher {} does not exist",
            p.display()
        ))),
        None => on_path("java").ok_or_else(|| {
            unavailable("java was not found on PATH; install a Java runtime (Debian: default-jre-headless) or configure its path")
        }),
    }
}

/// `javac` beside `java` (also beside the real file when `java` is a symlink), else on `PATH`.
pub fn find_javac(java: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = java.parent() {
        candidates.push(dir.join("javac"));
    }
    if let Ok(real) = java.canonicalize()
        && let Some(dir) = real.parent()
    {
        candidates.push(dir.join("javac"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| on_path("javac"))
}

/// The Saxon-HE jar: the configured one, else Debian's.
pub fn find_saxon(configured: Option<&Path>) -> Result<PathBuf, SchematronError> {
    match configured {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(unavailable(format!("the configured Saxon-HE jar {} does not exist", p.display()))),
        None => SAXON_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                unavailable("Saxon-HE was not found at /usr/share/java/Saxon-HE.jar; install it (Debian: libsaxonhe-java) or configure its path")
            }),
    }
}

/// Directory holding the compiled worker classes for this source and this Saxon jar,
/// compiling them with `javac` when they are not there yet.
pub fn worker_classes(
    cache_dir: &Path,
    java: &Path,
    saxon: &Path,
) -> Result<PathBuf, SchematronError> {
    let mut h = Sha256::new();
    h.update(WORKER_SOURCE.as_bytes());
    h.update(saxon.to_string_lossy().as_bytes());
    let key = &hex::encode(h.finalize())[..16];
    let root = cache_dir.join("worker");
    let dir = root.join(key);
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let javac = find_javac(java).ok_or_else(|| {
        unavailable(
            "javac was not found beside java nor on PATH; the worker must be compiled once: install a JDK (Debian: openjdk-17-jdk-headless)",
        )
    })?;
    std::fs::create_dir_all(&root)
        .map_err(|e| SchematronError::io(format!("creating {}", root.display()), e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = root.join(format!("{key}.tmp-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp)
        .map_err(|e| SchematronError::io(format!("creating {}", tmp.display()), e))?;
    let src = tmp.join(format!("{WORKER_CLASS}.java"));
    std::fs::write(&src, WORKER_SOURCE)
        .map_err(|e| SchematronError::io(format!("writing {}", src.display()), e))?;
    let output = Command::new(&javac)
        .arg("-encoding")
        .arg("UTF-8")
        .arg("-nowarn")
        .arg("-d")
        .arg(&tmp)
        .arg("-cp")
        .arg(saxon)
        .arg(&src)
        .output()
        .map_err(|e| unavailable(format!("cannot run {}: {e}", javac.display())))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().take(12).collect();
        return Err(unavailable(format!(
            "javac could not compile the Saxon worker against {} ({}): {}",
            saxon.display(),
            output.status,
            tail.join(" | ")
        )));
    }
    std::fs::write(tmp.join(".complete"), b"")
        .map_err(|e| SchematronError::io(format!("writing into {}", tmp.display()), e))?;
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process finished first: use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(".complete").is_file() {
            return Err(SchematronError::io(
                format!("installing the worker classes into {}", dir.display()),
                std::io::Error::other("rename failed"),
            ));
        }
    }
    Ok(dir)
}
