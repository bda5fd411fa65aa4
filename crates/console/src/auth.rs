//! Sessions, CSRF tokens and the login rate limit.
//!
//! A session is a random 256-bit token in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
//! when the browser talks HTTPS, `__Host-` prefixed then), and a row in this process's memory
//! keyed by the token's SHA-256 (a memory dump or a timing side channel does not give out
//! usable tokens). Rows end after an idle time and a maximum age, and there are at most
//! [`MAX_SESSIONS`] of them. Each session carries its CSRF token, which every form posts back
//! and which is compared in constant time. A restart logs everyone out, which is the point of
//! keeping sessions in memory: nothing to steal from disk.
//!
//! Failed logins are counted per account name and per client address: past the limits, logins
//! are refused for a while without checking the password, and every failure is answered after
//! a fixed delay.

use crate::users::Account;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Most sessions kept at once; past it the least recently used one ends.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Failed logins of one account name within [`FAILURE_WINDOW`] before it is locked.
pub(crate) const MAX_FAILURES_PER_NAME: u32 = 5;
/// Failed logins from one client address within [`FAILURE_WINDOW`] before it is locked.
pub(crate) const MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// How long failures are remembered, and how long a lock lasts.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Every failed login is answered after this delay.
pub(crate) const FAILURE_DELAY: Duration = Duration::from_millis(800);
/// Most names and addresses tracked by the limiter.
const MAX_TRACKED: usize = 50_000;

/// A fresh random token (256 bits, base64url).
pub(crate) fn new_token() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether two tokens are equal, in time independent of where they differ.
pub(crate) fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn key_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

struct Session {
    user: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<String>,
}

/// What a request learns from its session.
#[derive(Debug, Clone)]
pub(crate) struct SessionView {
    pub(crate) user: String,
    pub(crate) csrf: String,
    /// A one-time notice from the previous action (shown once).
    pub(crate) flash: Option<String>,
}

/// The sessions of this process.
pub(crate) struct Sessions {
    rows: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max_age: Duration,
}

impl Sessions {
    pub(crate) fn new(idle: Duration, max_age: Duration) -> Self {
        Sessions {
            rows: Mutex::new(HashMap::new()),
            idle,
            max_age,
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        match self.rows.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < self.max_age
    }

    /// Opens a session for `account`; returns its token.
    pub(crate) fn create(&self, account: &Account) -> Result<String, getrandom::Error> {
        let token = new_token()?;
        let csrf = new_token()?;
        let now = Instant::now();
        let mut rows = self.rows();
        rows.retain(|_, s| self.alive(s, now));
        if rows.len() >= MAX_SESSIONS
            && let Some(oldest) = rows
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            rows.remove(&oldest);
        }
        rows.insert(
            key_of(&token),
            Session {
                user: account.name.clone(),
                csrf,
                created: now,
                last_seen: now,
                flash: None,
            },
        );
        Ok(token)
    }

    /// The live session of `token`, marked as used now; its flash notice is handed out once.
    pub(crate) fn touch(&self, token: &str) -> Option<SessionView> {
        let now = Instant::now();
        let key = key_of(token);
        let mut rows = self.rows();
        let alive = rows.get(&key).is_some_and(|s| self.alive(s, now));
        if !alive {
            rows.remove(&key);
            return None;
        }
        let s = rows.get_mut(&key)?;
        s.last_seen = now;
        Some(SessionView {
            user: s.user.clone(),
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
        })
    }

    /// Leaves a notice for the next page of this session.
    pub(crate) fn set_flash(&self, token: &str, text: String) {
        if let Some(s) = self.rows().get_mut(&key_of(token)) {
            s.flash = Some(text);
        }
    }

    /// Ends the session of `token`.
    pub(crate) fn end(&self, token: &str) {
        self.rows().remove(&key_of(token));
    }

    /// How many sessions are open (expired ones included until the next login purges them).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows().len()
    }
}

struct Failures {
    count: u32,
    first: Instant,
}

/// Counts failed logins per account name and per client address.
pub(crate) struct LoginLimiter {
    rows: Mutex<HashMap<String, Failures>>,
}

impl LoginLimiter {
    pub(crate) fn new() -> Self {
        LoginLimiter {
            rows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(name: &str, ip: IpAddr) -> [(String, u32); 2] {
        [
            (
                format!("name:{}", name.to_lowercase()),
                MAX_FAILURES_PER_NAME,
            ),
            (format!("addr:{ip}"), MAX_FAILURES_PER_ADDRESS),
        ]
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        match self.rows.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `Err(wait)` when logins for this name or from this address are locked for `wait` more.
    pub(crate) fn check(&self, name: &str, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let rows = self.rows();
        let mut wait = Duration::ZERO;
        for (key, limit) in Self::keys(name, ip) {
            if let Some(f) = rows.get(&key) {
                let age = now.duration_since(f.first);
                if f.count >= limit && age < FAILURE_WINDOW {
                    wait = wait.max(FAILURE_WINDOW - age);
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Records a failed login.
    pub(crate) fn failed(&self, name: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut rows = self.rows();
        if rows.len() >= MAX_TRACKED {
            rows.retain(|_, f| now.duration_since(f.first) < FAILURE_WINDOW);
        }
        for (key, _) in Self::keys(name, ip) {
            if rows.len() >= MAX_TRACKED && !rows.contains_key(&key) {
                continue;
            }
            let f = rows.entry(key).or_insert(Failures {
                count: 0,
                first: now,
            });
            if now.duration_since(f.first) >= FAILURE_WINDOW {
                *f = Failures {
                    count: 0,
                    first: now,
                };
            }
            f.count = f.count.saturating_add(1);
        }
    }

    /// A successful login clears the failures of the name (not of the address).
    pub(crate) fn succeeded(&self, name: &str) {
        self.rows().remove(&format!("name:{}", name.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Role;

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            role: Role::Operator,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_end_on_logout() {
        let s = Sessions::new(Duration::from_millis(200), Duration::from_secs(60));
        let t = s.create(&alice()).unwrap();
        let view = s.touch(&t).unwrap();
        assert_eq!(view.user, "alice");
        assert_eq!(view.csrf.len(), 43);
        assert!(s.touch("forged").is_none());
        s.set_flash(&t, "done".into());
        assert_eq!(s.touch(&t).unwrap().flash.as_deref(), Some("done"));
        assert_eq!(s.touch(&t).unwrap().flash, None, "a notice is shown once");
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.touch(&t).is_none(), "idle too long");
        let t2 = s.create(&alice()).unwrap();
        s.end(&t2);
        assert!(s.touch(&t2).is_none());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn sessions_have_a_maximum_age_even_when_active() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_millis(200));
        let t = s.create(&alice()).unwrap();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(50));
            assert!(s.touch(&t).is_some());
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(s.touch(&t).is_none());
    }

    #[test]
    fn limiter_locks_a_name_after_repeated_failures() {
        let l = LoginLimiter::new();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_NAME {
            assert!(l.check("Alice", ip).is_ok());
            l.failed("Alice", ip);
        }
        let wait = l.check("alice", ip).unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        // Another name from the same address is not locked yet.
        assert!(l.check("bob", ip).is_ok());
        l.succeeded("alice");
        assert!(l.check("alice", ip).is_ok());
    }

    #[test]
    fn token_comparison() {
        let a = new_token().unwrap();
        assert!(tokens_equal(&a, &a.clone()));
        assert!(!tokens_equal(&a, &new_token().unwrap()));
        assert!(!tokens_equal(&a, ""));
    }
}
