//! The `[console]` section of the daemon's configuration.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the console is served: address, TLS, accounts, sessions.
///
/// ```toml
/// [console]
/// listen = "0.0.0.0:8443"
/// users_file = "/etc/relais/console-users.toml"
/// tls_cert = "/etc/relais/console.crt.pem"
/// tls_key = "/etc/relais/console.key.pem"
/// ```
///
/// Without `tls_cert`/`tls_key` the console speaks plain HTTP, which is only allowed on a
/// loopback address (passwords and patient data must not cross a network in clear), unless
/// `behind_tls_proxy = true` says that a reverse proxy on the same host terminates TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `host:port` to listen on; port 0 picks a free port (tests).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The accounts file (TOML, see [`crate::users`]); `relais users add` writes it.
    pub users_file: PathBuf,
    /// Server certificate chain (PEM), leaf first.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP on a non-loopback address, for a reverse proxy that terminates TLS in front
    /// of the console. Cookies stay `Secure` (the browser talks HTTPS to the proxy).
    #[serde(default)]
    pub behind_tls_proxy: bool,
    /// A session ends after this many minutes without a request.
    #[serde(default = "default_idle")]
    pub session_idle_minutes: u64,
    /// A session ends this many hours after login, active or not.
    #[serde(default = "default_max_hours")]
    pub session_max_hours: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8470".into()
}
fn default_idle() -> u64 {
    30
}
fn default_max_hours() -> u64 {
    12
}

impl ConsoleConfig {
    /// A configuration with defaults for everything but the accounts file.
    pub fn new(users_file: impl Into<PathBuf>) -> Self {
        ConsoleConfig {
            listen: default_listen(),
            users_file: users_file.into(),
            tls_cert: None,
            tls_key: None,
            behind_tls_proxy: false,
            session_idle_minutes: default_idle(),
            session_max_hours: default_max_hours(),
        }
    }

    /// Reads the `[console]` table of the daemon's configuration file and checks it (for a
    /// configuration that keeps the section as a raw TOML table, since the engine's
    /// configuration cannot name this crate's type).
    pub fn from_toml(section: toml::Table) -> Result<ConsoleConfig, crate::ConsoleError> {
        let config: ConsoleConfig = toml::Value::Table(section)
            .try_into()
            .map_err(|e| crate::ConsoleError::Config(format!("[console]: {e}")))?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(crate::ConsoleError::Config(problems.join("; ")))
        }
    }

    /// Whether the console itself serves TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Everything wrong with the section (empty when usable); `listen` is resolved by
    /// [`crate::serve`].
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            out.push("[console] tls_cert and tls_key go together".into());
        }
        if self.session_idle_minutes == 0 || self.session_max_hours == 0 {
            out.push("[console] session_idle_minutes and session_max_hours must be above 0".into());
        }
        if let Ok(addr) = self.listen.parse::<SocketAddr>()
            && !self.tls()
            && !self.behind_tls_proxy
            && !addr.ip().is_loopback()
        {
            out.push(format!(
                "[console] listen = {:?} is not a loopback address and no TLS is configured: \
                 give tls_cert and tls_key, or set behind_tls_proxy = true when a reverse proxy \
                 terminates TLS",
                self.listen
            ));
        }
        out
    }

    pub(crate) fn idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes.saturating_mul(60))
    }

    pub(crate) fn max_age(&self) -> Duration {
        Duration::from_secs(self.session_max_hours.saturating_mul(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_refuses_unknown_keys() {
        let c: ConsoleConfig = toml::from_str("users_file = \"/tmp/u.toml\"").unwrap();
        assert_eq!(c, ConsoleConfig::new("/tmp/u.toml"));
        assert!(c.problems().is_empty());
        let e = toml::from_str::<ConsoleConfig>("users_file = \"u\"\nlisten_addr = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_addr"), "{e}");
    }

    #[test]
    fn from_a_raw_table() {
        let table: toml::Table =
            toml::from_str("users_file = \"u.toml\"\nlisten = \"127.0.0.1:9000\"").unwrap();
        let c = ConsoleConfig::from_toml(table).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        let bad: toml::Table = toml::from_str("users = \"u.toml\"").unwrap();
        let e = ConsoleConfig::from_toml(bad).unwrap_err().to_string();
        assert!(e.starts_with("[console]") && e.contains("users"), "{e}");
        let open: toml::Table =
            toml::from_str("users_file = \"u\"\nlisten = \"0.0.0.0:443\"").unwrap();
        assert!(ConsoleConfig::from_toml(open).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback_or_behind_a_proxy() {
        let mut c = ConsoleConfig::new("u.toml");
        c.listen = "0.0.0.0:8470".into();
        assert!(c.problems()[0].contains("not a loopback address"));
        c.behind_tls_proxy = true;
        assert!(c.problems().is_empty());
        c.behind_tls_proxy = false;
        c.tls_cert = Some("c.pem".into());
        assert!(c.problems()[0].contains("go together"));
        c.tls_key = Some("k.pem".into());
        assert!(c.problems().is_empty());
    }
}
