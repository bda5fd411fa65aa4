//! `[outbound]`: where letters come from, who sends them and how, who may receive them.
//!
//! ```toml
//! [outbound]
//! mailbox = "medecine-interne@ch-demo.mssante.fr"   # the sending applicative mailbox (BAL)
//! document_root_oid = "1.2.250.1.999.1.2"          # root of the CDA ids of the organisation
//! source_oid = "1.2.250.1.999.1.9"                 # this sending system (XDS sourceId)
//! max_mail_bytes = 10485760                         # bigger mails are refused, never cut
//!
//! [[outbound.folder]]
//! path = "/srv/dpi/lettres"      # the DPI drops <name>.pdf and <name>.json (or .toml) here
//! stable_secs = 2                # taken once size and mtime stayed the same this long
//!
//! [outbound.smtp]                # same fields as [answers.smtp]
//! host = "smtp.operateur.mssante.fr"
//! port = 587
//! ca_files = ["/etc/relais/igc-sante.pem"]
//! client_cert = "/etc/relais/bal.pem"
//! client_key = "/etc/relais/bal.key"
//!
//! [outbound.liste_blanche]
//! path = "/var/lib/relais/listeblanchemssante.xml"
//! check_interval_secs = 3600
//! enforce_on_intake = true       # inbound mail from a domain outside it is quarantined
//!
//! [outbound.annuaire]
//! extract = true                 # `relais annuaire import FILE` fills it
//!
//! [outbound.mllp]                # ORU^R01 / MDM^T02 of ig-trans-cda from the producer
//! listen = "0.0.0.0:2576"
//! allowed_senders = ["SIL-DEMO"] # MSH-3.1; empty: any
//! max_message_bytes = 16777216
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SmtpSettings;

/// The outbound side. Empty by default: nothing is watched, nothing is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Watched intake folders.
    #[serde(default, rename = "folder")]
    pub folders: Vec<IntakeFolder>,
    /// The sending applicative mailbox: `From`, envelope sender, `Disposition-Notification-To`.
    pub mailbox: Option<String>,
    /// Its display name.
    pub mailbox_name: Option<String>,
    /// The submission server of the sending mailbox.
    pub smtp: Option<SmtpSettings>,
    /// `X-MSS-NIL`; default `Relais <version>`.
    pub nil: Option<String>,
    /// The OID under which the organisation numbers its documents (root of CDA ids).
    pub document_root_oid: Option<String>,
    /// The OID of this sending system (XDS submission set `sourceId`).
    pub source_oid: Option<String>,
    /// Largest mail sent, in bytes: a bigger letter is refused with a clear error, never cut.
    #[serde(default = "default_max_mail")]
    pub max_mail_bytes: u64,
    /// Refuse letters whose patient has no INS (no qualified identity).
    #[serde(default)]
    pub require_ins: bool,
    /// Ask recipients for an MDN (accusé de traitement / lecture).
    #[serde(default = "yes")]
    pub request_read_receipt: bool,
    /// Seconds before a failed send (server down, 4xx) is tried again, doubled each time up
    /// to `max_retry_secs`.
    #[serde(default = "default_retry")]
    pub retry_secs: u64,
    #[serde(default = "default_max_retry")]
    pub max_retry_secs: u64,
    /// The liste blanche of the espace de confiance; required to send.
    pub liste_blanche: Option<ListeBlancheSettings>,
    /// The Annuaire national MSSanté, to resolve recipients given by RPPS.
    #[serde(default)]
    pub annuaire: AnnuaireSettings,
    /// Listen for HL7v2 ORU^R01 / MDM^T02 from the producer over MLLP (ig-trans-cda).
    pub mllp: Option<MllpSettings>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            folders: Vec::new(),
            mailbox: None,
            mailbox_name: None,
            smtp: None,
            nil: None,
            document_root_oid: None,
            source_oid: None,
            max_mail_bytes: default_max_mail(),
            require_ins: false,
            request_read_receipt: true,
            retry_secs: default_retry(),
            max_retry_secs: default_max_retry(),
            liste_blanche: None,
            annuaire: AnnuaireSettings::default(),
            mllp: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_max_mail() -> u64 {
    10 * 1024 * 1024
}
fn default_retry() -> u64 {
    30
}
fn default_max_retry() -> u64 {
    1800
}

/// A folder the DPI drops letters into: `<name>.pdf` with `<name>.json` or `<name>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IntakeFolder {
    pub path: PathBuf,
    /// Where taken drops go; default `<path>/done`.
    pub done: Option<PathBuf>,
    /// Where refused drops go, each with `<name>.reason.txt`; default `<path>/error`.
    pub error: Option<PathBuf>,
    /// A file is taken once its size and modification time stayed the same this long.
    #[serde(default = "default_stable")]
    pub stable_secs: u64,
    /// Seconds between two scans when no file-system event comes (network shares).
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Names never taken (writers' temporary names); `*` matches any run of characters.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// A PDF or metadata file without its partner for this long goes to `error/`.
    #[serde(default = "default_orphan")]
    pub orphan_secs: u64,
}

fn default_stable() -> u64 {
    2
}
fn default_poll() -> u64 {
    2
}
fn default_orphan() -> u64 {
    3600
}
fn default_ignore() -> Vec<String> {
    [".*", "*.tmp", "*.part", "*.filepart", "~*", "*.crdownload"]
        .into_iter()
        .map(String::from)
        .collect()
}

impl IntakeFolder {
    /// A folder with the default settings.
    pub fn new(path: impl Into<PathBuf>) -> IntakeFolder {
        IntakeFolder {
            path: path.into(),
            done: None,
            error: None,
            stable_secs: default_stable(),
            poll_secs: default_poll(),
            ignore: default_ignore(),
            orphan_secs: default_orphan(),
        }
    }

    /// Where taken drops go.
    pub fn done_dir(&self) -> PathBuf {
        self.done.clone().unwrap_or_else(|| self.path.join("done"))
    }

    /// Where refused drops go.
    pub fn error_dir(&self) -> PathBuf {
        self.error
            .clone()
            .unwrap_or_else(|| self.path.join("error"))
    }

    /// The stability delay.
    pub fn stable(&self) -> Duration {
        Duration::from_secs(self.stable_secs)
    }

    /// Whether a file name is one the DPI is still writing (never taken).
    pub fn ignores(&self, name: &str) -> bool {
        self.ignore.iter().any(|p| glob_match(p, name))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `[outbound.mllp]`: the MLLP listener taking ORU^R01 (v2.5) and MDM^T02/T10 (v2.6) messages
/// of the producer profile (MSH-21 `2.1^CISIS_CDA_HL7_V2`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MllpSettings {
    /// `host:port` to listen on, e.g. `0.0.0.0:2576` (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// When not empty, only messages whose MSH-3.1 (sending application) is in this list are
    /// taken; the others are answered AE (`OUTBOUND-HL7-SENDER-NOT-ALLOWED`).
    #[serde(default)]
    pub allowed_senders: Vec<String>,
    /// Largest message accepted, in bytes (the CDA travels in base64 inside it).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u64,
    /// Most connections served at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection silent this long is closed.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// Where refused messages are kept, each with `<letter>.reason.txt`; default
    /// `<data_dir>/outbound/hl7-error`.
    pub error_dir: Option<PathBuf>,
    /// What the message does not say, for messages carrying a PDF instead of a CDA (Relais then
    /// builds a level 1 CDA as for a watched folder); without it, such messages are refused.
    pub pdf: Option<PdfDefaults>,
    /// Report delivery and reading back to the producer as ZAM^Z02 / ZAM^Z03 over MLLP, when
    /// its message asked for them (ACK_RECEPTION, ACK_LECTURE_MSS).
    pub zam: Option<ZamSettings>,
}

/// `[outbound.mllp.zam]`: where the business acknowledgements (ZAM) go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZamSettings {
    /// The producer's MLLP listener, `host:port`.
    pub address: String,
    /// MSH-3 and MSH-4 of the ZAM messages.
    #[serde(default = "default_zam_app")]
    pub sending_application: String,
    #[serde(default = "default_zam_app")]
    pub sending_facility: String,
    /// Seconds between two looks at the letters' delivery status.
    #[serde(default = "default_zam_interval")]
    pub interval_secs: u64,
}

fn default_zam_app() -> String {
    "RELAIS".into()
}
fn default_zam_interval() -> u64 {
    10
}

/// `[outbound.mllp.pdf]`: the values a level 1 CDA needs that an ORU/MDM does not carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PdfDefaults {
    /// The author's profession and specialty (JDV_J01), e.g. `G15_10/SM26`.
    pub author_profession: relais_compose::Code,
    /// The facility type (JDV_J02, XDS healthcareFacilityTypeCode), e.g. `SA01`.
    pub facility_type: relais_compose::Code,
    /// The practice setting (JDV_J04); `ETABLISSEMENT` when absent.
    pub practice_setting: Option<relais_compose::Code>,
    /// The XDS contentTypeCode (JDV_J59) when the stay's kind gives none.
    pub content_type: Option<relais_compose::Code>,
}

fn default_max_message() -> u64 {
    16 * 1024 * 1024
}
fn default_max_connections() -> usize {
    16
}
fn default_idle() -> u64 {
    600
}

impl MllpSettings {
    /// Settings listening on `listen`, the rest by default.
    pub fn new(listen: impl Into<String>) -> MllpSettings {
        MllpSettings {
            listen: listen.into(),
            allowed_senders: Vec::new(),
            max_message_bytes: default_max_message(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle(),
            error_dir: None,
            pdf: None,
            zam: None,
        }
    }

    /// Everything wrong with the section.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let listen = self.listen.trim();
        let port_ok = listen
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            out.push(format!(
                "[outbound.mllp] listen = {listen:?}: give host:port, e.g. \"0.0.0.0:2576\""
            ));
        }
        if self.max_message_bytes < 1024 {
            out.push("[outbound.mllp] max_message_bytes is too small to carry a document".into());
        }
        if self.max_connections == 0 {
            out.push("[outbound.mllp] max_connections must be at least 1".into());
        }
        if let Some(z) = &self.zam
            && !z
                .address
                .trim()
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            out.push(format!(
                "[outbound.mllp.zam] address = {:?}: give the producer's host:port",
                z.address
            ));
        }
        if self.allowed_senders.iter().any(|s| s.trim().is_empty()) {
            out.push("[outbound.mllp] allowed_senders holds an empty name".into());
        }
        out
    }
}

/// The liste blanche file and how it is used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListeBlancheSettings {
    /// `listeblanchemssante.xml` as published, or a text list (one domain per line).
    pub path: PathBuf,
    /// Seconds between two looks at the file (it is reloaded when it changed).
    #[serde(default = "default_lb_interval")]
    pub check_interval_secs: u64,
    /// Also quarantine inbound mail whose sender's domain is outside the list
    /// (code `MSS-SENDER-NOT-ALLOWED`).
    #[serde(default)]
    pub enforce_on_intake: bool,
}

fn default_lb_interval() -> u64 {
    3600
}

/// Where recipients given by RPPS are looked up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct AnnuaireSettings {
    /// Use the extraction imported with `relais annuaire import FILE` (in `<data_dir>/annuaire`).
    #[serde(default)]
    pub extract: bool,
    /// A live LDAP(S) directory, asked when the extraction is not used.
    pub ldap: Option<LdapSettings>,
}

/// A live LDAP directory of the Annuaire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    pub base_dn: String,
    /// Simple bind DN and the file holding its password; anonymous without them.
    pub bind_dn: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Bind with SASL EXTERNAL (the client certificate is the identity).
    #[serde(default)]
    pub sasl_external: bool,
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    #[serde(default = "default_ldap_timeout")]
    pub timeout_secs: u64,
    /// An extra filter every search must match, e.g. `(objectClass=mssanteBAL)`.
    pub filter: Option<String>,
    /// Attribute names, when the directory's differ from the defaults.
    #[serde(default)]
    pub attributes: relais_annuaire::AttributeMap,
}

fn default_ldap_timeout() -> u64 {
    10
}

impl LdapSettings {
    /// The relais-annuaire configuration.
    pub fn ldap_config(&self) -> Result<relais_annuaire::LdapConfig, String> {
        let mut c = relais_annuaire::LdapConfig::new(self.url.clone(), self.base_dn.clone());
        c.starttls = self.starttls;
        c.ca_pem_files = self.ca_files.clone();
        c.timeout = Duration::from_secs(self.timeout_secs.max(1));
        c.filter = self.filter.clone();
        c.attributes = self.attributes.clone();
        c.client_cert = match (&self.client_cert, &self.client_key) {
            (Some(chain), Some(key)) => Some(relais_annuaire::ldap::ClientCert {
                chain_pem: chain.clone(),
                key_pem: key.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(
                    "[outbound.annuaire.ldap] client_cert and client_key go together".into(),
                );
            }
        };
        c.bind = match (&self.bind_dn, &self.password_file, self.sasl_external) {
            (None, None, false) => relais_annuaire::LdapBind::Anonymous,
            (Some(dn), Some(file), false) => relais_annuaire::LdapBind::Simple {
                dn: dn.clone(),
                password_file: file.clone(),
            },
            (None, None, true) => relais_annuaire::LdapBind::SaslExternal,
            _ => {
                return Err(
                    "[outbound.annuaire.ldap] give bind_dn with password_file, or sasl_external, or neither (anonymous)"
                        .into(),
                );
            }
        };
        Ok(c)
    }
}

impl OutboundConfig {
    /// Whether anything of the outbound side is configured.
    pub fn is_enabled(&self) -> bool {
        !self.folders.is_empty() || self.mllp.is_some() || self.liste_blanche.is_some()
    }

    /// Whether letters are taken in (and so must be sendable).
    pub fn takes_letters(&self) -> bool {
        !self.folders.is_empty() || self.mllp.is_some()
    }

    /// Everything wrong with the section (empty when usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.mllp {
            out.extend(m.problems());
        }
        if self.takes_letters() {
            match &self.mailbox {
                None => out.push("[outbound] mailbox: give the sending MSSanté mailbox".into()),
                Some(m) if relais_mssante::domain_of(m).is_none() => {
                    out.push("[outbound] mailbox is not a mail address".into())
                }
                _ => {}
            }
            if self.smtp.is_none() {
                out.push("[outbound.smtp]: give the submission server of the mailbox".into());
            }
            if self.liste_blanche.is_none() {
                out.push(
                    "[outbound.liste_blanche]: give the liste blanche file; Relais sends only to the espace de confiance"
                        .into(),
                );
            }
            for (what, oid) in [
                ("document_root_oid", &self.document_root_oid),
                ("source_oid", &self.source_oid),
            ] {
                let ok = oid.as_deref().is_some_and(|o| {
                    !o.is_empty()
                        && o.split('.')
                            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
                });
                if !ok {
                    out.push(format!("[outbound] {what}: give an OID (digits and dots)"));
                }
            }
        }
        if let Some(smtp) = &self.smtp {
            if smtp.client_cert.is_some() != smtp.client_key.is_some() {
                out.push("[outbound.smtp] client_cert and client_key go together".into());
            }
            if smtp.user.is_some() != smtp.password_file.is_some() {
                out.push("[outbound.smtp] user and password_file go together".into());
            }
        }
        if self.max_mail_bytes < 1024 {
            out.push("[outbound] max_mail_bytes is too small to carry a letter".into());
        }
        if let Some(ldap) = &self.annuaire.ldap
            && let Err(e) = ldap.ldap_config()
        {
            out.push(e);
        }
        for (i, f) in self.folders.iter().enumerate() {
            if f.path.as_os_str().is_empty() {
                out.push(format!("[[outbound.folder]] #{}: empty path", i + 1));
            }
            if f.done_dir() == f.error_dir() {
                out.push(format!(
                    "[[outbound.folder]] #{}: done and error must be different folders",
                    i + 1
                ));
            }
        }
        out
    }
}

/// Where the imported Annuaire extraction lives under the data directory.
pub fn annuaire_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("annuaire")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.tmp", "a.pdf.tmp"));
        assert!(glob_match(".*", ".hidden"));
        assert!(glob_match("~*", "~lock"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("*.tmp", "a.pdf"));
        assert!(!glob_match("a*b*c", "ac"));
        assert!(glob_match("exact", "exact"));
    }

    #[test]
    fn empty_section_is_off_and_a_folder_needs_the_sending_settings() {
        let c: OutboundConfig = toml::from_str("").unwrap();
        assert!(!c.is_enabled());
        assert!(c.problems().is_empty());
        let c: OutboundConfig = toml::from_str("[[folder]]\npath = \"/x\"\n").unwrap();
        let p = c.problems().join("\n");
        for needed in ["mailbox", "smtp", "liste_blanche", "document_root_oid"] {
            assert!(p.contains(needed), "{p}");
        }
    }

    #[test]
    fn the_mllp_listener_needs_an_address_and_the_sending_settings() {
        let c: OutboundConfig =
            toml::from_str("[mllp]\nlisten = \"0.0.0.0:2576\"\nallowed_senders = [\"SIL-DEMO\"]\n")
                .unwrap();
        assert!(c.is_enabled() && c.takes_letters());
        let m = c.mllp.as_ref().unwrap();
        assert_eq!(m.max_message_bytes, 16 * 1024 * 1024);
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        assert!(c.problems().join("\n").contains("mailbox"));
        let bad: OutboundConfig =
            toml::from_str("[mllp]\nlisten = \"2576\"\nmax_message_bytes = 10\n").unwrap();
        let p = bad.problems().join("\n");
        assert!(p.contains("[outbound.mllp] listen"), "{p}");
        assert!(p.contains("max_message_bytes"), "{p}");
        assert!(toml::from_str::<OutboundConfig>("hl7_listen = \"0.0.0.0:2576\"\n").is_err());
    }
}
