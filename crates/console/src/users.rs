//! Local accounts of the console: a TOML file of names, roles and Argon2id password hashes.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! role = "operator"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! ```
//!
//! The file holds hashes only (PHC strings, Argon2id with the OWASP parameters: 19 MiB, 2
//! passes), is written with mode 0600 by [`add_user`], and is read again by the running console
//! whenever it changes, so that an account added, removed or demoted takes effect at once,
//! sessions included.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Shortest password [`add_user`] accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password hashed (longer ones are refused, not truncated).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a user may do. Each role includes the rights of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: dashboard, messages, documents, review queue.
    Viewer,
    /// Also acts: files or rejects review items, reprocesses messages.
    Operator,
    /// Also sees the accounts (names and roles).
    Admin,
}

impl Role {
    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `s` (as written by [`Role::as_str`]).
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Whether this role may file, reject and reprocess.
    pub fn can_act(self) -> bool {
        self >= Role::Operator
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One account of the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name, also the actor name in the audit trail.
    pub name: String,
    pub role: Role,
    /// PHC string of the Argon2id hash.
    pub password_hash: String,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The accounts file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
}

/// The accounts file cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the console accounts file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("console accounts file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "cannot write the console accounts file {path}: {reason}; check that its directory exists and is writable"
    )]
    Write { path: String, reason: String },
    #[error("{0:?} is not a usable login name: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    #[error("an account named {0:?} already exists")]
    Exists(String),
    #[error(
        "the password is too short: use at least {MIN_PASSWORD_CHARS} characters (a passphrase of several words is best)"
    )]
    WeakPassword,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Whether `name` is acceptable as a login (and as an actor name in the audit trail).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Reads the accounts file; a missing file is an empty one.
pub fn load_users(path: &Path) -> Result<UsersFile, UsersError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UsersFile::default()),
        Err(e) => {
            return Err(UsersError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    let file: UsersFile = toml::from_str(&text).map_err(|e| UsersError::Parse {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    for u in &file.users {
        if !valid_name(&u.name) {
            return Err(UsersError::Parse {
                path: path.display().to_string(),
                reason: format!("{:?} is not a usable login name", u.name),
            });
        }
        if PasswordHash::new(&u.password_hash).is_err() {
            return Err(UsersError::Parse {
                path: path.display().to_string(),
                reason: format!(
                    "the password_hash of {:?} is not a PHC string; set it with `relais users add`",
                    u.name
                ),
            });
        }
    }
    Ok(file)
}

/// Hashes a password (Argon2id, random salt) to a PHC string.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UsersError::WeakPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UsersError::LongPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// Adds an account to the file at `path` (created if missing), with the password hashed.
///
/// For the CLI's `relais users add NAME --role ROLE`. The file is replaced atomically (written
/// beside it, synced, renamed) with mode 0600; an existing account is never overwritten.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<(), UsersError> {
    if !valid_name(name) {
        return Err(UsersError::BadName(name.to_string()));
    }
    let mut file = load_users(path)?;
    if file.users.iter().any(|u| u.name == name) {
        return Err(UsersError::Exists(name.to_string()));
    }
    file.users.push(UserEntry {
        name: name.to_string(),
        role,
        password_hash: hash_password(password)?,
    });
    write_users(path, &file)
}

fn write_users(path: &Path, file: &UsersFile) -> Result<(), UsersError> {
    use std::io::Write;
    let err = |e: &dyn std::fmt::Display| UsersError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let body = toml::to_string(file).map_err(|e| err(&e))?;
    let text = format!(
        "# Relais console accounts: `relais users add NAME --role viewer|operator|admin`.\n\
         # Argon2id hashes only; keep this file readable by the relais user alone.\n\n{body}"
    );
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.as_deref().unwrap_or("users"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&e));
    }
    Ok(())
}

/// A user as the console knows them after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) role: Role,
}

/// The accounts file as the running console sees it: read again when its modification time or
/// size changes.
pub(crate) struct Directory {
    path: PathBuf,
    cached: Mutex<Cached>,
    /// A hash to verify against when the name is unknown, so that a wrong name costs the same
    /// time as a wrong password (no account enumeration by timing).
    decoy: Arc<String>,
}

struct Cached {
    stamp: Option<(SystemTime, u64)>,
    users: Arc<Vec<UserEntry>>,
}

impl Directory {
    /// Reads the file now: a broken file stops the console at start, where it is seen.
    pub(crate) fn open(path: &Path) -> Result<Directory, UsersError> {
        let users = load_users(path)?;
        let decoy = Argon2::default()
            .hash_password(b"relais-console-decoy-password")
            .map_err(|e| UsersError::Hash(e.to_string()))?
            .to_string();
        Ok(Directory {
            path: path.to_path_buf(),
            cached: Mutex::new(Cached {
                stamp: stamp(path),
                users: Arc::new(users.users),
            }),
            decoy: Arc::new(decoy),
        })
    }

    /// The accounts, re-read if the file changed. A file broken by a hand edit keeps the last
    /// good accounts (said in the log) rather than locking everyone out.
    pub(crate) fn users(&self) -> Arc<Vec<UserEntry>> {
        let now = stamp(&self.path);
        let mut cached = match self.cached.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now != cached.stamp {
            match load_users(&self.path) {
                Ok(file) => {
                    tracing::info!(accounts = file.users.len(), "console accounts file re-read");
                    cached.users = Arc::new(file.users);
                }
                Err(e) => {
                    tracing::error!(error = %e, "console accounts file unreadable; keeping the accounts read before")
                }
            }
            cached.stamp = now;
        }
        cached.users.clone()
    }

    /// The account named `name`, as the file says now.
    pub(crate) fn account(&self, name: &str) -> Option<Account> {
        self.users()
            .iter()
            .find(|u| u.name == name)
            .map(|u| Account {
                name: u.name.clone(),
                role: u.role,
            })
    }

    /// Checks a login (CPU-heavy: call it off the async threads).
    pub(crate) fn verify(&self, name: &str, password: &str) -> Option<Account> {
        let users = self.users();
        let user = users.iter().find(|u| u.name == name);
        let hash = user.map_or(self.decoy.as_str(), |u| u.password_hash.as_str());
        let ok = password.len() <= MAX_PASSWORD_BYTES
            && PasswordHash::new(hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            });
        match (ok, user) {
            (true, Some(u)) => Some(Account {
                name: u.name.clone(),
                role: u.role,
            }),
            _ => None,
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_verify_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, "alice", Role::Operator, "correct horse battery").unwrap();
        add_user(&path, "victor", Role::Viewer, "another long passphrase").unwrap();
        assert!(matches!(
            add_user(&path, "alice", Role::Admin, "correct horse battery"),
            Err(UsersError::Exists(_))
        ));
        assert!(matches!(
            add_user(&path, "bob", Role::Admin, "short"),
            Err(UsersError::WeakPassword)
        ));
        assert!(matches!(
            add_user(&path, "bad name", Role::Admin, "correct horse battery"),
            Err(UsersError::BadName(_))
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("$argon2id$"), "{text}");
        assert!(
            !text.contains("correct horse"),
            "no clear password in the file"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let d = Directory::open(&path).unwrap();
        assert_eq!(
            d.verify("alice", "correct horse battery"),
            Some(Account {
                name: "alice".into(),
                role: Role::Operator
            })
        );
        assert_eq!(d.verify("alice", "wrong horse battery"), None);
        assert_eq!(d.verify("nobody", "correct horse battery"), None);
        // An account added while the console runs is seen without a restart.
        add_user(&path, "adele", Role::Admin, "a third long passphrase").unwrap();
        assert_eq!(d.account("adele").map(|a| a.role), Some(Role::Admin));
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "[[user]]\nname = \"a\"\nrole = \"operator\"\npassword_hash = \"plain\"\n",
        )
        .unwrap();
        let e = load_users(&path).unwrap_err().to_string();
        assert!(e.contains("not a PHC string"), "{e}");
        std::fs::write(&path, "[[user]]\nname = \"a\"\nrole = \"root\"\n").unwrap();
        assert!(load_users(&path).is_err());
    }
}
