//! Alerts by mail and by webhook: a queue too deep, a connection down too long, a mailbox
//! silent too long, too many errors.
//!
//! # Facts
//!
//! The alerts look at the same facts as the metrics, recorded at the same places: every call
//! of [`crate::metrics`] that says a source poll succeeded or failed, a mail was journaled, a
//! message got its outcome or a delivery was attempted also updates the process-wide
//! [`Status`] ([`status`]). Queue depths are asked of the journal at each evaluation. Like the
//! metrics, the status belongs to the process: with several instances on one PostgreSQL
//! journal, each instance alerts on what it sees itself.
//!
//! A sink's connection is known from its delivery attempts: a delivery put back for later
//! (DPI unreachable or answering AR, FHIR server unavailable, output folder unwritable) marks
//! the sink down since that attempt, a delivery delivered or refused marks it up. A sink with
//! nothing to deliver keeps its last known state (a DPI down with nothing to send blocks
//! nothing; the `queue_depth` rule watches the backlog). An IMAP source is up or down after
//! each poll.
//!
//! # One alert per condition
//!
//! Each rule watches one or more subjects (a sink, a source, the messages or the deliveries).
//! At every evaluation (`interval_secs`) each (rule, subject) condition is true, false or
//! unknown (no fact yet, or a `no_mail` rule outside its hours):
//!
//! - true while not firing: it starts firing and **one alert** is sent;
//! - true while firing: nothing is sent;
//! - false while firing: once it has been false at `clear_after` evaluations in a row
//!   (default 2), it stops firing and **one recovery notice** is sent. An unknown or true
//!   evaluation in between starts the count again, so a connection that comes back for one
//!   moment does not produce a recovery followed by a new alert;
//! - durations (`for_secs`) are part of the condition: a connection is down "for 300 s" only
//!   once its failures have lasted that long without a success in between, so short outages
//!   never alert.
//!
//! The firing set (and the time of the last mail of each source) is kept in
//! `data_dir/alerts-state.json`, written when it changes: a restart neither alerts again for a
//! condition already announced nor forgets to announce its recovery. A condition firing before
//! the restart that cannot be evaluated yet (no poll, no delivery attempt since) stays firing
//! until a fact says otherwise.
//!
//! # Sending
//!
//! Notices go to a queue read by their own task, so that a slow mail server or webhook never
//! holds the evaluation, let alone the pipeline. Each channel is tried `retries + 1` times
//! with a doubling backoff (1 s, 2 s, 4 s…); a notice that cannot be sent is logged (it is in
//! the daemon's log anyway) and counted in `relais_alerts_sent_total{result="failed"}`.
//! Texts carry configuration names, counts and times only, never message or patient data.

use crate::config::{Config, SmtpSettings, Source};
use relais_store::Journal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

// --- Configuration ----------------------------------------------------------------------------

/// `[alerts]`: rules, channels, evaluation period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Seconds between two evaluations (default 10; fractions allowed).
    #[serde(default = "default_interval")]
    pub interval_secs: f64,
    /// Evaluations in a row where a firing condition is false before it is declared cleared.
    #[serde(default = "default_clear_after")]
    pub clear_after: u32,
    /// Offset of local time from UTC for `no_mail` hours, standard time (default `+01:00`).
    #[serde(default = "default_utc_offset")]
    pub utc_offset: String,
    /// Add one hour between the last Sundays of March and October (EU summer time; default
    /// true, as in metropolitan France). False for overseas departments.
    #[serde(default = "yes")]
    pub eu_summer_time: bool,
    /// The conditions watched.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Alerts by mail.
    #[serde(default)]
    pub mail: Option<MailChannel>,
    /// Alerts as JSON POSTs.
    #[serde(default)]
    pub webhook: Option<WebhookChannel>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            interval_secs: default_interval(),
            clear_after: default_clear_after(),
            utc_offset: default_utc_offset(),
            eu_summer_time: true,
            rules: Vec::new(),
            mail: None,
            webhook: None,
        }
    }
}

fn default_interval() -> f64 {
    10.0
}
fn default_clear_after() -> u32 {
    2
}
fn default_utc_offset() -> String {
    "+01:00".into()
}
fn yes() -> bool {
    true
}
fn default_min_count() -> u64 {
    10
}
fn default_timeout() -> u64 {
    10
}
fn default_retries() -> u32 {
    3
}

/// One condition. Leaving out `sink` / `source` watches every sink / source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// More than `above` deliveries waiting (pending or in flight) for a sink.
    QueueDepth {
        name: Option<String>,
        sink: Option<String>,
        above: u64,
    },
    /// A source's polls, or a sink's deliveries, failing for at least `for_secs`.
    ConnectionDown {
        name: Option<String>,
        source: Option<String>,
        sink: Option<String>,
        for_secs: u64,
    },
    /// No new mail journaled from a source for `for_secs`; with `hours` (`"08:00-18:00"`,
    /// local time) only counted within those hours, with `weekdays_only` Monday to Friday.
    NoMail {
        name: Option<String>,
        #[serde(alias = "mailbox")]
        source: Option<String>,
        for_secs: u64,
        hours: Option<String>,
        #[serde(default)]
        weekdays_only: bool,
    },
    /// Errors in the last `window_secs`: rejected messages among messages processed (`of =
    /// "messages"`, default), or failed attempts among delivery attempts (`of = "deliveries"`).
    /// Fires above `above_count` errors, or above the ratio `above_ratio` once at least
    /// `min_count` (default 10) have been counted.
    ErrorRate {
        name: Option<String>,
        #[serde(default)]
        of: ErrorsOf,
        window_secs: u64,
        above_ratio: Option<f64>,
        above_count: Option<u64>,
        #[serde(default = "default_min_count")]
        min_count: u64,
    },
}

/// What an `error_rate` rule counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ErrorsOf {
    #[default]
    Messages,
    Deliveries,
}

impl ErrorsOf {
    fn as_str(self) -> &'static str {
        match self {
            ErrorsOf::Messages => "messages",
            ErrorsOf::Deliveries => "deliveries",
        }
    }
}

impl Rule {
    /// `queue_depth`, `connection_down`, `no_mail`, `error_rate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::QueueDepth { .. } => "queue_depth",
            Rule::ConnectionDown { .. } => "connection_down",
            Rule::NoMail { .. } => "no_mail",
            Rule::ErrorRate { .. } => "error_rate",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Rule::QueueDepth { name, .. }
            | Rule::ConnectionDown { name, .. }
            | Rule::NoMail { name, .. }
            | Rule::ErrorRate { name, .. } => name.as_deref(),
        }
    }

    /// The rule's identity in notices and in the saved state: its `name`, else its kind and
    /// position (`connection_down#2`); give rules a name to keep their state across edits.
    pub fn key(&self, index: usize) -> String {
        match self.name() {
            Some(n) => n.to_string(),
            None => format!("{}#{}", self.kind(), index + 1),
        }
    }
}

/// `[alerts.mail]`: recipients, sender, SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MailChannel {
    /// Who gets the alerts.
    pub to: Vec<String>,
    /// Sender address; default: `[answers] from`.
    pub from: Option<String>,
    /// Submission server; default: `[answers.smtp]`.
    pub smtp: Option<SmtpSettings>,
}

/// `[alerts.webhook]`: a URL that receives each notice as a JSON POST.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// `http://` or `https://` URL.
    pub url: String,
    /// A file holding a bearer token sent as `Authorization: Bearer …`.
    pub token_file: Option<PathBuf>,
    /// PEM files of the CAs trusted for an `https://` URL (a public service can be given the
    /// system bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Seconds allowed for one POST (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Further attempts after a failed POST (default 3).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl AlertsConfig {
    /// Whether any rule is configured.
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Everything wrong with `[alerts]`, given the whole configuration (names of sources and
    /// sinks, `[answers]` defaults).
    pub fn problems(&self, config: &Config) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.interval_secs.is_finite()
            && self.interval_secs >= 0.05
            && self.interval_secs <= 3600.0)
        {
            out.push(format!(
                "[alerts] interval_secs = {} is out of range (0.05 to 3600)",
                self.interval_secs
            ));
        }
        if self.clear_after == 0 {
            out.push("[alerts] clear_after must be at least 1".into());
        }
        if parse_offset(&self.utc_offset).is_none() {
            out.push(format!(
                "[alerts] utc_offset {:?} is not an offset such as \"+01:00\"",
                self.utc_offset
            ));
        }
        if self.is_enabled() && self.mail.is_none() && self.webhook.is_none() {
            out.push(
                "[alerts] has rules but no channel: add [alerts.mail] or [alerts.webhook]".into(),
            );
        }
        let mut keys = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = rule.key(i);
            let at = format!("[[alerts.rule]] #{} ({})", i + 1, rule.kind());
            if !keys.insert(key.clone()) {
                out.push(format!("{at}: two rules are named {key:?}"));
            }
            let sink_known = |name: &str| config.sinks.iter().any(|s| s.name() == name);
            let source = |name: &str| config.sources.iter().find(|s| s.name() == name);
            let unknown_sink = |name: &str| {
                format!(
                    "{at}: sink {name:?} is not configured (leave `sink` out to watch every sink)"
                )
            };
            let unknown_source = |name: &str| {
                format!(
                    "{at}: source {name:?} is not configured (leave `source` out to watch every source)"
                )
            };
            match rule {
                Rule::QueueDepth { sink, .. } => {
                    if let Some(s) = sink
                        && !sink_known(s)
                    {
                        out.push(unknown_sink(s));
                    }
                }
                Rule::ConnectionDown {
                    source: src,
                    sink,
                    for_secs,
                    ..
                } => {
                    if src.is_some() && sink.is_some() {
                        out.push(format!(
                            "{at}: give `source` or `sink`, not both (one rule per connection, or neither for all)"
                        ));
                    }
                    if let Some(s) = sink
                        && !sink_known(s)
                    {
                        out.push(unknown_sink(s));
                    }
                    if let Some(s) = src {
                        match source(s) {
                            None => out.push(unknown_source(s)),
                            Some(Source::Maildir { .. }) => out.push(format!(
                                "{at}: source {s:?} is a Maildir folder, which has no connection to watch (use no_mail)"
                            )),
                            Some(Source::Imap { .. }) => {}
                        }
                    }
                    if *for_secs == 0 {
                        out.push(format!("{at}: for_secs must be above 0"));
                    }
                }
                Rule::NoMail {
                    source: src,
                    for_secs,
                    hours,
                    ..
                } => {
                    if let Some(s) = src
                        && source(s).is_none()
                    {
                        out.push(unknown_source(s));
                    }
                    if *for_secs == 0 {
                        out.push(format!("{at}: for_secs must be above 0"));
                    }
                    if let Some(h) = hours
                        && parse_hours(h).is_none()
                    {
                        out.push(format!(
                            "{at}: hours {h:?} is not a range such as \"08:00-18:00\" (start before end, same day)"
                        ));
                    }
                }
                Rule::ErrorRate {
                    window_secs,
                    above_ratio,
                    above_count,
                    ..
                } => {
                    if *window_secs == 0 || *window_secs > MAX_WINDOW_SECS {
                        out.push(format!(
                            "{at}: window_secs must be between 1 and {MAX_WINDOW_SECS}"
                        ));
                    }
                    if above_ratio.is_none() && above_count.is_none() {
                        out.push(format!("{at}: give above_ratio (e.g. 0.2) or above_count"));
                    }
                    if let Some(r) = above_ratio
                        && !(r.is_finite() && *r >= 0.0 && *r < 1.0)
                    {
                        out.push(format!(
                            "{at}: above_ratio = {r} must be at least 0 and below 1"
                        ));
                    }
                }
            }
        }
        if let Some(mail) = &self.mail {
            if mail.to.is_empty() {
                out.push("[alerts.mail] to lists no address".into());
            }
            for a in &mail.to {
                if relais_mssante::domain_of(a).is_none() {
                    out.push(format!("[alerts.mail] to: {a:?} is not a mail address"));
                }
            }
            match mail.from.as_ref().or(config.answers.from.as_ref()) {
                None => out.push(
                    "[alerts.mail] needs a sender: set `from` (or `from` in [answers])".into(),
                ),
                Some(a) if relais_mssante::domain_of(a).is_none() => {
                    out.push(format!("[alerts.mail] from: {a:?} is not a mail address"));
                }
                Some(_) => {}
            }
            match &mail.smtp {
                Some(smtp) => {
                    if smtp.client_cert.is_some() != smtp.client_key.is_some() {
                        out.push("[alerts.mail.smtp] client_cert and client_key go together".into());
                    }
                    if smtp.user.is_some() != smtp.password_file.is_some() {
                        out.push("[alerts.mail.smtp] user and password_file go together".into());
                    }
                }
                None if config.answers.smtp.is_none() => out.push(
                    "[alerts.mail] needs a submission server: add [alerts.mail.smtp] (or [answers.smtp])"
                        .into(),
                ),
                None => {}
            }
        }
        if let Some(hook) = &self.webhook {
            match reqwest::Url::parse(&hook.url) {
                Err(e) => out.push(format!(
                    "[alerts.webhook] url {:?} is not a URL: {e}",
                    hook.url
                )),
                Ok(u) if u.scheme() == "https" && hook.ca_files.is_empty() => out.push(
                    "[alerts.webhook] an https:// url needs ca_files (the CAs to trust; for a public service, e.g. /etc/ssl/certs/ca-certificates.crt)"
                        .into(),
                ),
                Ok(u) if u.scheme() != "https" && u.scheme() != "http" => out.push(format!(
                    "[alerts.webhook] url {:?}: only http:// and https:// are supported",
                    hook.url
                )),
                Ok(_) => {}
            }
            if hook.timeout_secs == 0 {
                out.push("[alerts.webhook] timeout_secs must be above 0".into());
            }
        }
        out
    }
}

/// The longest `error_rate` window (and how long the status keeps its events).
const MAX_WINDOW_SECS: u64 = 24 * 3600;
/// The most events of each kind the status keeps.
const MAX_EVENTS: usize = 200_000;

// --- Status: the facts ----------------------------------------------------------------------

/// What the engine last saw of its connections, mails and outcomes (see the module docs).
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    sources: HashMap<String, Conn>,
    sinks: HashMap<String, Conn>,
    last_mail: HashMap<String, i64>,
    messages: VecDeque<(i64, bool)>,
    deliveries: VecDeque<(i64, bool)>,
}

/// A connection's last known state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// Whether the last attempt worked.
    pub up: bool,
    /// Since when the attempts fail (the first failure after a success), in Unix ms.
    pub down_since: Option<i64>,
}

/// The status the engine updates (one per process, like the metrics).
pub fn status() -> &'static Status {
    static STATUS: OnceLock<Status> = OnceLock::new();
    STATUS.get_or_init(Status::default)
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    relais_store::Timestamp::now().as_millis()
}

fn conn_update(map: &mut HashMap<String, Conn>, name: &str, up: bool, now: i64) {
    let c = map.entry(name.to_string()).or_insert(Conn {
        up,
        down_since: None,
    });
    c.up = up;
    if up {
        c.down_since = None;
    } else if c.down_since.is_none() {
        c.down_since = Some(now);
    }
}

fn push_event(q: &mut VecDeque<(i64, bool)>, now: i64, error: bool) {
    q.push_back((now, error));
    let oldest = now - (MAX_WINDOW_SECS as i64) * 1000;
    while q.len() > MAX_EVENTS || q.front().is_some_and(|(t, _)| *t < oldest) {
        q.pop_front();
    }
}

impl Status {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A poll of `source` succeeded (`up`) or failed.
    pub fn source_polled(&self, source: &str, up: bool, now: i64) {
        conn_update(&mut self.lock().sources, source, up, now);
    }

    /// New mail was journaled from `source`.
    pub fn mail_received(&self, source: &str, now: i64) {
        self.lock().last_mail.insert(source.to_string(), now);
    }

    /// A message got its outcome; `error` when it was rejected.
    pub fn message_outcome(&self, error: bool, now: i64) {
        push_event(&mut self.lock().messages, now, error);
    }

    /// A delivery attempt to `sink`: `reached` when the sink answered (delivered or refused),
    /// `error` when the attempt did not deliver.
    pub fn delivery_attempt(&self, sink: &str, reached: bool, error: bool, now: i64) {
        let mut s = self.lock();
        conn_update(&mut s.sinks, sink, reached, now);
        push_event(&mut s.deliveries, now, error);
    }

    /// The last known state of a source's connection.
    pub fn source(&self, name: &str) -> Option<Conn> {
        self.lock().sources.get(name).copied()
    }

    /// The last known state of a sink's connection.
    pub fn sink(&self, name: &str) -> Option<Conn> {
        self.lock().sinks.get(name).copied()
    }

    /// (errors, total) of messages or deliveries since `since` (Unix ms).
    pub fn errors_since(&self, of: ErrorsOf, since: i64) -> (u64, u64) {
        let s = self.lock();
        let q = match of {
            ErrorsOf::Messages => &s.messages,
            ErrorsOf::Deliveries => &s.deliveries,
        };
        q.iter()
            .rev()
            .take_while(|(t, _)| *t >= since)
            .fold((0, 0), |(e, n), (_, err)| (e + u64::from(*err), n + 1))
    }

    fn last_mail(&self) -> HashMap<String, i64> {
        self.lock().last_mail.clone()
    }
}

// --- Evaluation ----------------------------------------------------------------------------

/// What one evaluation looks at: the status, and the queue depths read from the journal.
pub struct Facts<'a> {
    pub status: &'a Status,
    /// Deliveries waiting per sink (a sink missing: its depth could not be read).
    pub queue: HashMap<String, u64>,
    /// Now, Unix ms.
    pub now: i64,
}

/// What a condition is at one evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    True(Finding),
    False,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
struct Finding {
    /// One line: what is wrong.
    summary: String,
    /// What to look at.
    advice: &'static str,
    value: f64,
    threshold: f64,
}

/// A message to send: an alert or a recovery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// The rule's key (its name, or kind#position).
    pub rule: String,
    pub kind: &'static str,
    /// What the condition is about: `sink dpi`, `source bal-cardio`, `messages`.
    pub subject: String,
    /// One line.
    pub summary: String,
    /// What to do or look at.
    pub advice: String,
    /// The measured value when the alert fired (depth, seconds, errors or ratio).
    pub value: f64,
    pub threshold: f64,
    /// When the condition started firing (RFC 3339, UTC).
    pub since: String,
    /// When this notice was made (RFC 3339, UTC).
    pub at: String,
    /// The host of the instance.
    pub host: String,
}

/// A firing condition, as saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Firing {
    kind: String,
    since: i64,
    summary: String,
    value: f64,
    threshold: f64,
    #[serde(skip)]
    false_streak: u32,
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    firing: Vec<SavedFiring>,
    #[serde(default)]
    last_mail: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedFiring {
    rule: String,
    subject: String,
    #[serde(flatten)]
    firing: Firing,
}

/// The state machine of every (rule, subject): see the module docs.
pub struct Evaluator {
    rules: Vec<(String, Rule)>,
    sources: Vec<(String, bool)>,
    sinks: Vec<String>,
    clear_after: u32,
    offset_secs: i64,
    eu_summer_time: bool,
    firing: BTreeMap<(String, String), Firing>,
    /// When silence starts to count for a source with no mail seen by this process: the
    /// saved time of its last mail, else the start.
    mail_baseline: HashMap<String, i64>,
    started: i64,
    host: String,
}

impl Evaluator {
    /// An evaluator for the rules of `config` (already checked), nothing firing, started `now`.
    pub fn new(config: &Config, now: i64) -> Evaluator {
        let a = &config.alerts;
        Evaluator {
            rules: a
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| (r.key(i), r.clone()))
                .collect(),
            sources: config
                .sources
                .iter()
                .map(|s| (s.name().to_string(), matches!(s, Source::Imap { .. })))
                .collect(),
            sinks: config.sinks.iter().map(|s| s.name().to_string()).collect(),
            clear_after: a.clear_after.max(1),
            offset_secs: parse_offset(&a.utc_offset).unwrap_or(3600),
            eu_summer_time: a.eu_summer_time,
            firing: BTreeMap::new(),
            mail_baseline: HashMap::new(),
            started: now,
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into()),
        }
    }

    /// Sinks whose queue depth the rules need.
    pub fn sinks_to_measure(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, r) in &self.rules {
            if let Rule::QueueDepth { sink, .. } = r {
                match sink {
                    Some(s) => out.push(s.clone()),
                    None => out.extend(self.sinks.iter().cloned()),
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// How many conditions are firing.
    pub fn firing_count(&self) -> usize {
        self.firing.len()
    }

    /// The (rule, subject) pairs firing.
    pub fn firing(&self) -> Vec<(String, String)> {
        self.firing.keys().cloned().collect()
    }

    fn subjects(&self, rule: &Rule) -> Vec<String> {
        let sinks = |one: &Option<String>| match one {
            Some(s) => vec![format!("sink {s}")],
            None => self.sinks.iter().map(|s| format!("sink {s}")).collect(),
        };
        match rule {
            Rule::QueueDepth { sink, .. } => sinks(sink),
            Rule::ConnectionDown { source, sink, .. } => match (source, sink) {
                (Some(s), _) => vec![format!("source {s}")],
                (None, Some(_)) => sinks(sink),
                (None, None) => self
                    .sources
                    .iter()
                    .filter(|(_, imap)| *imap)
                    .map(|(s, _)| format!("source {s}"))
                    .chain(sinks(&None))
                    .collect(),
            },
            Rule::NoMail { source, .. } => match source {
                Some(s) => vec![format!("source {s}")],
                None => self
                    .sources
                    .iter()
                    .map(|(s, _)| format!("source {s}"))
                    .collect(),
            },
            Rule::ErrorRate { of, .. } => vec![of.as_str().to_string()],
        }
    }

    fn condition(
        &self,
        rule: &Rule,
        subject: &str,
        facts: &Facts<'_>,
        last_mail: &HashMap<String, i64>,
    ) -> Cond {
        let now = facts.now;
        let (what, name) = subject.split_once(' ').unwrap_or((subject, ""));
        match rule {
            Rule::QueueDepth { above, .. } => match facts.queue.get(name) {
                None => Cond::Unknown,
                Some(&depth) if depth > *above => Cond::True(Finding {
                    summary: format!(
                        "{depth} deliveries are waiting for sink {name} (alert above {above})"
                    ),
                    advice: "check that the sink's system accepts deliveries (`relais status`, the daemon log, the console's dashboard)",
                    value: depth as f64,
                    threshold: *above as f64,
                }),
                Some(_) => Cond::False,
            },
            Rule::ConnectionDown { for_secs, .. } => {
                let conn = if what == "source" {
                    facts.status.source(name)
                } else {
                    facts.status.sink(name)
                };
                let Some(conn) = conn else {
                    return Cond::Unknown;
                };
                match conn.down_since {
                    None => Cond::False,
                    Some(since) => {
                        let down = (now - since).max(0) / 1000;
                        if down >= *for_secs as i64 {
                            let (summary, advice) = if what == "source" {
                                (
                                    format!(
                                        "source {name}: the mailbox cannot be polled for {}",
                                        human(down)
                                    ),
                                    "check the IMAP server, the certificate and the login of this mailbox (the daemon log names the error code)",
                                )
                            } else {
                                (
                                    format!("sink {name}: deliveries fail for {}", human(down)),
                                    "check that the receiving system is up and reachable (for a DPI: its MLLP listener); deliveries are kept and retried",
                                )
                            };
                            Cond::True(Finding {
                                summary,
                                advice,
                                value: down as f64,
                                threshold: *for_secs as f64,
                            })
                        } else {
                            // Down, not yet for long: no alert, and for a firing alert no
                            // step towards its recovery either.
                            Cond::Unknown
                        }
                    }
                }
            }
            Rule::NoMail {
                for_secs,
                hours,
                weekdays_only,
                ..
            } => {
                let last = last_mail
                    .get(name)
                    .or_else(|| self.mail_baseline.get(name))
                    .copied()
                    .unwrap_or(self.started);
                let silent = (now - last).max(0) / 1000;
                let window = hours.as_deref().and_then(parse_hours);
                let local = now / 1000 + self.offset_at(now);
                let minute = local.rem_euclid(86_400) / 60;
                let weekday = (local.div_euclid(86_400) + 4).rem_euclid(7); // 0 = Sunday
                let off_day = *weekdays_only && (weekday == 0 || weekday == 6);
                let start = match window {
                    _ if off_day => None,
                    Some((from, to)) if minute >= from && minute < to => {
                        Some(now - (minute - from) * 60_000 - (local.rem_euclid(60)) * 1000)
                    }
                    Some(_) => None,
                    None => Some(i64::MIN),
                };
                match start {
                    Some(start) => {
                        let counted = (now - last.max(start)).max(0) / 1000;
                        if counted >= *for_secs as i64 {
                            Cond::True(Finding {
                                summary: format!(
                                    "source {name}: no new mail for {}{}",
                                    human(silent),
                                    hours
                                        .as_deref()
                                        .map(|h| format!(" (watched {h})"))
                                        .unwrap_or_default()
                                ),
                                advice: "check that senders still write to this mailbox and that it is polled (connection, folder, the MSSanté operator's status)",
                                value: silent as f64,
                                threshold: *for_secs as f64,
                            })
                        } else {
                            Cond::False
                        }
                    }
                    // Outside the hours: only a mail clears.
                    None if silent < *for_secs as i64 => Cond::False,
                    None => Cond::Unknown,
                }
            }
            Rule::ErrorRate {
                of,
                window_secs,
                above_ratio,
                above_count,
                min_count,
                ..
            } => {
                let (errors, total) = facts
                    .status
                    .errors_since(*of, now - (*window_secs as i64) * 1000);
                let what = match of {
                    ErrorsOf::Messages => "messages rejected",
                    ErrorsOf::Deliveries => "delivery attempts failed",
                };
                let window = human(*window_secs as i64);
                if let Some(max) = above_count
                    && errors > *max
                {
                    return Cond::True(Finding {
                        summary: format!(
                            "{errors} {what} in the last {window} (alert above {max})"
                        ),
                        advice: "see the review queue and the daemon log for the error codes",
                        value: errors as f64,
                        threshold: *max as f64,
                    });
                }
                if let Some(ratio) = above_ratio
                    && total >= *min_count
                    && total > 0
                    && (errors as f64 / total as f64) > *ratio
                {
                    let r = errors as f64 / total as f64;
                    return Cond::True(Finding {
                        summary: format!(
                            "{errors} of {total} {} in the last {window} ({:.0} %, alert above {:.0} %)",
                            what,
                            r * 100.0,
                            ratio * 100.0
                        ),
                        advice: "see the review queue and the daemon log for the error codes",
                        value: r,
                        threshold: *ratio,
                    });
                }
                Cond::False
            }
        }
    }

    /// One evaluation: the notices to send (alerts and recoveries, in rule order).
    pub fn evaluate(&mut self, facts: &Facts<'_>) -> Vec<Notice> {
        let last_mail = facts.status.last_mail();
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, rule) in self.rules.clone() {
            for subject in self.subjects(&rule) {
                let id = (key.clone(), subject.clone());
                seen.insert(id.clone());
                let cond = self.condition(&rule, &subject, facts, &last_mail);
                match (cond, self.firing.get_mut(&id)) {
                    (Cond::True(f), None) => {
                        let firing = Firing {
                            kind: rule.kind().to_string(),
                            since: facts.now,
                            summary: f.summary.clone(),
                            value: f.value,
                            threshold: f.threshold,
                            false_streak: 0,
                        };
                        out.push(
                            self.notice("firing", &id, &firing, f.summary, f.advice, facts.now),
                        );
                        self.firing.insert(id, firing);
                    }
                    (Cond::True(_) | Cond::Unknown, Some(firing)) => firing.false_streak = 0,
                    (Cond::False, Some(firing)) => {
                        firing.false_streak += 1;
                        if firing.false_streak >= self.clear_after
                            && let Some(firing) = self.firing.remove(&id)
                        {
                            let lasted = human((facts.now - firing.since).max(0) / 1000);
                            let summary = format!("cleared after {lasted}: {}", firing.summary);
                            out.push(self.notice(
                                "resolved",
                                &id,
                                &firing,
                                summary,
                                "nothing to do",
                                facts.now,
                            ));
                        }
                    }
                    (Cond::False | Cond::Unknown, None) => {}
                }
            }
        }
        // Rules removed from the configuration since the state was saved.
        self.firing.retain(|id, _| seen.contains(id));
        out
    }

    fn notice(
        &self,
        status: &'static str,
        (rule, subject): &(String, String),
        firing: &Firing,
        summary: String,
        advice: &str,
        now: i64,
    ) -> Notice {
        Notice {
            status,
            rule: rule.clone(),
            kind: match firing.kind.as_str() {
                "queue_depth" => "queue_depth",
                "connection_down" => "connection_down",
                "no_mail" => "no_mail",
                _ => "error_rate",
            },
            subject: subject.clone(),
            summary,
            advice: advice.to_string(),
            value: firing.value,
            threshold: firing.threshold,
            since: rfc3339(firing.since),
            at: rfc3339(now),
            host: self.host.clone(),
        }
    }

    /// The local offset from UTC at `now` (Unix ms), in seconds.
    fn offset_at(&self, now: i64) -> i64 {
        self.offset_secs
            + if self.eu_summer_time && eu_summer(now / 1000) {
                3600
            } else {
                0
            }
    }

    fn save(&self, path: &Path, last_mail: &HashMap<String, i64>) -> std::io::Result<()> {
        let mut all: BTreeMap<String, i64> = self
            .mail_baseline
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.extend(last_mail.iter().map(|(k, v)| (k.clone(), *v)));
        let saved = Saved {
            firing: self
                .firing
                .iter()
                .map(|((rule, subject), f)| SavedFiring {
                    rule: rule.clone(),
                    subject: subject.clone(),
                    firing: f.clone(),
                })
                .collect(),
            last_mail: all,
        };
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    fn load(&mut self, path: &Path) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(target: "relais::alerts", path = %path.display(), error = %e, "saved alert state unreadable; starting with nothing firing");
                return;
            }
        };
        match serde_json::from_slice::<Saved>(&bytes) {
            Ok(saved) => {
                for s in saved.firing {
                    self.firing.insert((s.rule, s.subject), s.firing);
                }
                self.mail_baseline.extend(saved.last_mail);
            }
            Err(e) => {
                tracing::warn!(target: "relais::alerts", path = %path.display(), error = %e, "saved alert state unreadable; starting with nothing firing");
            }
        }
    }
}

// --- Time ------------------------------------------------------------------------------------

/// `+01:00` → 3600 seconds.
fn parse_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
}

/// `08:00-18:00` → (480, 1080) minutes of the day.
fn parse_hours(s: &str) -> Option<(i64, i64)> {
    let minutes = |t: &str| -> Option<i64> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    let (a, b) = s.split_once('-')?;
    let (a, b) = (minutes(a)?, minutes(b)?);
    (a < b).then_some((a, b))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Whether EU summer time is in force at `unix` seconds: from 01:00 UTC on the last Sunday of
/// March to 01:00 UTC on the last Sunday of October.
fn eu_summer(unix: i64) -> bool {
    let (y, _, _) = civil_from_days(unix.div_euclid(86_400));
    let last_sunday = |m: i64| {
        let d = days_from_civil(y, m, 31);
        d - (d + 4).rem_euclid(7)
    };
    let start = last_sunday(3) * 86_400 + 3600;
    let end = last_sunday(10) * 86_400 + 3600;
    unix >= start && unix < end
}

/// `2026-11-23T15:40:00Z`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `Mon, 23 Nov 2026 15:40:00 +0000` (RFC 5322 Date).
fn rfc5322(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let t = secs.rem_euclid(86_400);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3600, s / 60 % 60),
        s => format!("{} d {} h", s / 86_400, s / 3600 % 24),
    }
}

// --- Channels ----------------------------------------------------------------------------------

/// Where notices go.
pub struct Channels {
    mail: Option<MailOut>,
    webhook: Option<WebhookOut>,
}

struct MailOut {
    smtp: relais_smtp::SmtpConfig,
    from: String,
    to: Vec<String>,
}

struct WebhookOut {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    retries: u32,
}

/// A rustls configuration that trusts nothing: reqwest wants one even for plain HTTP.
fn trust_nothing() -> Result<rustls::ClientConfig, String> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        .map_err(|e| e.to_string())
}

impl Channels {
    /// Set up the channels of `[alerts]` (reads the password and token files).
    pub fn new(config: &Config) -> Result<Channels, String> {
        let a = &config.alerts;
        let mail = match &a.mail {
            None => None,
            Some(m) => {
                let (settings, section) =
                    match &m.smtp {
                        Some(s) => (s, "[alerts.mail.smtp]"),
                        None => (
                            config.answers.smtp.as_ref().ok_or(
                                "[alerts.mail] needs [alerts.mail.smtp] or [answers.smtp]",
                            )?,
                            "[answers.smtp]",
                        ),
                    };
                let mut smtp = settings
                    .smtp_config()
                    .map_err(|e| e.replace("[answers.smtp]", section))?;
                smtp.timeouts.connect = Duration::from_secs(10);
                Some(MailOut {
                    smtp,
                    from: m
                        .from
                        .clone()
                        .or(config.answers.from.clone())
                        .ok_or("[alerts.mail] needs `from` (or `from` in [answers])")?,
                    to: m.to.clone(),
                })
            }
        };
        let webhook = match &a.webhook {
            None => None,
            Some(w) => {
                let token = match &w.token_file {
                    None => None,
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| {
                                format!(
                                    "[alerts.webhook] cannot read token_file {}: {e}",
                                    f.display()
                                )
                            })?
                            .trim()
                            .to_string(),
                    ),
                };
                let tls = if w.url.starts_with("https:") {
                    let built = relais_tls::client_config(&w.ca_files, None)
                        .map_err(|e| format!("[alerts.webhook] ca_files: {e}"))?;
                    rustls::ClientConfig::clone(&built.config)
                } else {
                    trust_nothing().map_err(|e| format!("[alerts.webhook] TLS setup: {e}"))?
                };
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(Duration::from_secs(w.timeout_secs.clamp(1, 10)))
                    .timeout(Duration::from_secs(w.timeout_secs.max(1)))
                    .user_agent(concat!("Relais/", env!("CARGO_PKG_VERSION")))
                    .use_preconfigured_tls(tls)
                    .build()
                    .map_err(|e| format!("[alerts.webhook] HTTP client: {e}"))?;
                Some(WebhookOut {
                    http,
                    url: w.url.clone(),
                    token,
                    retries: w.retries,
                })
            }
        };
        Ok(Channels { mail, webhook })
    }

    /// Send one notice on every channel (concurrently), with retries; failures are logged.
    pub async fn send(&self, notice: &Notice) {
        let mail = async {
            if let Some(m) = &self.mail {
                let raw = mail_text(notice, &m.from, &m.to);
                let result = with_retries(3, "mail", notice, || async {
                    relais_smtp::send(&m.smtp, &m.from, &m.to, &raw)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{} ({})", e, e.code()))
                })
                .await;
                crate::metrics::alert_sent("mail", result);
            }
        };
        let hook = async {
            if let Some(w) = &self.webhook {
                let result = with_retries(w.retries, "webhook", notice, || async {
                    let mut req = w.http.post(&w.url).json(notice);
                    if let Some(t) = &w.token {
                        req = req.bearer_auth(t);
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("the webhook answered {}", r.status())),
                        Err(e) => Err(format!("POST failed: {}", error_chain(&e))),
                    }
                })
                .await;
                crate::metrics::alert_sent("webhook", result);
            }
        };
        futures_util::future::join(mail, hook).await;
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn with_retries<F, Fut>(retries: u32, channel: &str, notice: &Notice, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = Duration::from_secs(1);
    for n in 0..=retries {
        match attempt().await {
            Ok(()) => {
                tracing::info!(target: "relais::alerts", channel, rule = %notice.rule, subject = %notice.subject, status = notice.status, "alert notice sent");
                return true;
            }
            Err(e) if n < retries => {
                tracing::warn!(target: "relais::alerts", channel, rule = %notice.rule, error = %e, "alert notice not sent; trying again in {}s", delay.as_secs());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
            Err(e) => {
                tracing::error!(target: "relais::alerts", channel, rule = %notice.rule, subject = %notice.subject, status = notice.status, error = %e, "alert notice could not be sent; given up (see the summary in this log)");
            }
        }
    }
    false
}

/// The alert mail: plain text, ASCII headers, no patient data.
fn mail_text(n: &Notice, from: &str, to: &[String]) -> Vec<u8> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = now_ms();
    let domain = relais_mssante::domain_of(from).unwrap_or("localhost");
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let word = if n.status == "firing" {
        "ALERT"
    } else {
        "RECOVERED"
    };
    let ascii = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    let mut m = String::new();
    m.push_str(&format!("From: Relais <{from}>\r\n"));
    m.push_str(&format!(
        "To: {}\r\n",
        to.iter()
            .map(|a| format!("<{a}>"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    m.push_str(&format!(
        "Subject: [Relais] {word} {}: {}\r\n",
        n.kind,
        ascii(&n.summary)
    ));
    m.push_str(&format!("Date: {}\r\n", rfc5322(now)));
    m.push_str(&format!(
        "Message-ID: <relais-alert.{now}.{seq}.{}@{domain}>\r\n",
        std::process::id()
    ));
    m.push_str("Auto-Submitted: auto-generated\r\n");
    m.push_str(&format!(
        "X-Relais-Alert: {}; rule={}; subject={}\r\n",
        n.status,
        ascii(&n.rule),
        ascii(&n.subject)
    ));
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    let body = format!(
        "{word} on {host}\r\n\r\n{summary}\r\n\r\nRule:      {rule} ({kind})\r\nSubject:   {subject}\r\nSince:     {since}\r\nNotice at: {at}\r\nValue:     {value} (threshold {threshold})\r\n\r\nWhat to do: {advice}\r\n\r\n{tail}\r\n",
        host = n.host,
        summary = n.summary,
        rule = n.rule,
        kind = n.kind,
        subject = n.subject,
        since = n.since,
        at = n.at,
        value = n.value,
        threshold = n.threshold,
        advice = n.advice,
        tail = if n.status == "firing" {
            "One recovery notice will follow when the condition clears; no other mail is sent meanwhile."
        } else {
            "The alert above is over."
        },
    );
    m.push_str(&body);
    m.into_bytes()
}

// --- The task ------------------------------------------------------------------------------

/// Where the firing state is kept.
pub fn state_path(config: &Config) -> PathBuf {
    config.data_dir.join("alerts-state.json")
}

/// Start the alerts (evaluator and sender tasks) when rules are configured; they stop when
/// `shutdown` flips to true (the sender once the notices already queued are sent).
pub fn spawn(
    config: &Config,
    journal: Arc<dyn Journal>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    if !config.alerts.is_enabled() {
        return Ok(None);
    }
    let channels = Channels::new(config)?;
    let mut evaluator = Evaluator::new(config, now_ms());
    let path = state_path(config);
    evaluator.load(&path);
    let interval = Duration::from_secs_f64(config.alerts.interval_secs.clamp(0.05, 3600.0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Notice>(1024);
    let sender = tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            channels.send(&n).await;
        }
    });
    crate::metrics::alerts_firing(evaluator.firing_count());
    tracing::info!(target: "relais::alerts", rules = config.alerts.rules.len(), firing = evaluator.firing_count(), every_secs = interval.as_secs_f64(), "alerts started");
    Ok(Some(tokio::spawn(async move {
        let mut saved_at = now_ms();
        let mut saved_mail = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let mut queue = HashMap::new();
            for sink in evaluator.sinks_to_measure() {
                match journal.pending_count(&sink).await {
                    Ok(n) => {
                        queue.insert(sink, n);
                    }
                    Err(e) => {
                        tracing::warn!(target: "relais::alerts", sink = %sink, error = %e, "queue depth unreadable for the alerts");
                    }
                }
            }
            let facts = Facts {
                status: status(),
                queue,
                now: now_ms(),
            };
            let notices = evaluator.evaluate(&facts);
            crate::metrics::alerts_firing(evaluator.firing_count());
            let last_mail = facts.status.last_mail();
            if !notices.is_empty() || (last_mail != saved_mail && facts.now - saved_at > 60_000) {
                if let Err(e) = evaluator.save(&path, &last_mail) {
                    tracing::warn!(target: "relais::alerts", path = %path.display(), error = %e, "alert state not saved; a restart may announce alerts again");
                }
                saved_at = facts.now;
                saved_mail = last_mail;
            }
            for n in notices {
                if n.status == "firing" {
                    tracing::warn!(target: "relais::alerts", rule = %n.rule, subject = %n.subject, "ALERT: {}", n.summary);
                } else {
                    tracing::info!(target: "relais::alerts", rule = %n.rule, subject = %n.subject, "RECOVERED: {}", n.summary);
                }
                if tx.try_send(n).is_err() {
                    tracing::error!(target: "relais::alerts", "too many alert notices waiting to be sent; this one is only in the log");
                }
            }
        }
        drop(tx);
        let _ = sender.await;
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!(
                r#"
[[source]]
kind = "imap"
name = "bal"
host = "imap.test"
port = 993
ca_files = []
mailbox = "INBOX"

[[source]]
kind = "maildir"
name = "drop"
path = "/tmp/x"

[[sink]]
kind = "folder"
name = "out"
path = "/tmp/o"

[alerts]
interval_secs = 1
{extra}

[alerts.webhook]
url = "http://127.0.0.1:9/hook"
"#
            ),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn problems_are_named_precisely() {
        let c = config(
            r#"
[[alerts.rule]]
kind = "connection_down"
source = "drop"
for_secs = 0

[[alerts.rule]]
kind = "queue_depth"
sink = "nowhere"
above = 3

[[alerts.rule]]
kind = "no_mail"
mailbox = "bal"
for_secs = 60
hours = "18:00-08:00"

[[alerts.rule]]
kind = "error_rate"
window_secs = 600
"#,
        );
        let p = c.alerts.problems(&c).join("\n");
        assert!(
            p.contains("#1 (connection_down): source \"drop\" is a Maildir folder"),
            "{p}"
        );
        assert!(
            p.contains("#1 (connection_down): for_secs must be above 0"),
            "{p}"
        );
        assert!(
            p.contains("#2 (queue_depth): sink \"nowhere\" is not configured"),
            "{p}"
        );
        assert!(p.contains("#3 (no_mail): hours \"18:00-08:00\""), "{p}");
        assert!(p.contains("#4 (error_rate): give above_ratio"), "{p}");
        // And through the whole configuration's check.
        assert!(c.problems().iter().any(|x| x.contains("nowhere")));

        let ok = config(
            "[[alerts.rule]]\nkind = \"connection_down\"\nfor_secs = 60\n[[alerts.rule]]\nkind = \"error_rate\"\nof = \"deliveries\"\nwindow_secs = 60\nabove_ratio = 0.5\n",
        );
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());

        let e =
            Config::parse("[[alerts.rule]]\nkind = \"queue_deep\"\nabove = 1\n", "t").unwrap_err();
        assert!(e.to_string().contains("queue_deep"), "{e}");
        let e = Config::parse(
            "[[alerts.rule]]\nkind = \"queue_depth\"\nabove = 1\nbelow = 2\n",
            "t",
        )
        .unwrap_err();
        assert!(e.to_string().contains("below"), "{e}");
        let no_channel = Config::parse(
            "[[alerts.rule]]\nkind = \"queue_depth\"\nabove = 1\n[alerts.mail]\nto = [\"x\"]\n",
            "t",
        )
        .unwrap();
        let p = no_channel.problems().join("\n");
        assert!(
            p.contains("[alerts.mail] to: \"x\" is not a mail address"),
            "{p}"
        );
        assert!(p.contains("[alerts.mail] needs a sender"), "{p}");
        assert!(p.contains("needs a submission server"), "{p}");
    }

    #[test]
    fn the_example_configuration_has_valid_alerts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/relais.example.toml");
        let c = Config::parse(&std::fs::read_to_string(&path).unwrap(), "example").unwrap();
        assert_eq!(c.alerts.rules.len(), 4);
        assert!(c.alerts.mail.is_some() && c.alerts.webhook.is_some());
        let p = c.alerts.problems(&c);
        assert!(p.is_empty(), "{p:?}");
    }

    fn facts(status: &Status, now: i64) -> Facts<'_> {
        Facts {
            status,
            queue: HashMap::new(),
            now,
        }
    }

    #[test]
    fn a_connection_alerts_once_and_recovers_once() {
        let c =
            config("[[alerts.rule]]\nkind = \"connection_down\"\nsink = \"out\"\nfor_secs = 30\n");
        let st = Status::default();
        let mut ev = Evaluator::new(&c, 0);
        // Nothing known: nothing.
        assert!(ev.evaluate(&facts(&st, 1_000)).is_empty());
        st.delivery_attempt("out", false, true, 10_000);
        // Down, but not for 30 s yet.
        assert!(ev.evaluate(&facts(&st, 30_000)).is_empty());
        let n = ev.evaluate(&facts(&st, 40_000));
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!((n[0].status, n[0].subject.as_str()), ("firing", "sink out"));
        assert!(
            n[0].summary.contains("sink out: deliveries fail for 30 s"),
            "{}",
            n[0].summary
        );
        // Still down, more failures: nothing more.
        for t in 5..20 {
            st.delivery_attempt("out", false, true, t * 10_000);
            assert!(ev.evaluate(&facts(&st, t * 10_000 + 1)).is_empty());
        }
        // Up for one evaluation, then down again briefly: no recovery (clear_after = 2).
        st.delivery_attempt("out", true, false, 200_000);
        assert!(ev.evaluate(&facts(&st, 200_001)).is_empty());
        st.delivery_attempt("out", false, true, 201_000);
        assert!(ev.evaluate(&facts(&st, 202_000)).is_empty());
        assert!(ev.evaluate(&facts(&st, 203_000)).is_empty());
        // Up for good: one recovery after two evaluations, then silence.
        st.delivery_attempt("out", true, false, 210_000);
        assert!(ev.evaluate(&facts(&st, 211_000)).is_empty());
        let n = ev.evaluate(&facts(&st, 212_000));
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].status, "resolved");
        assert!(
            n[0].summary.starts_with("cleared after 2 min"),
            "{}",
            n[0].summary
        );
        assert_eq!(n[0].since, "1970-01-01T00:00:40Z");
        for t in 0..5 {
            assert!(ev.evaluate(&facts(&st, 213_000 + t)).is_empty());
        }
        assert_eq!(ev.firing_count(), 0);
    }

    #[test]
    fn the_firing_state_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("alerts-state.json");
        let c = config(
            "[[alerts.rule]]\nname = \"dpi-down\"\nkind = \"connection_down\"\nfor_secs = 1\n",
        );
        let st = Status::default();
        let mut ev = Evaluator::new(&c, 0);
        st.delivery_attempt("out", false, true, 0);
        st.source_polled("bal", false, 0);
        assert_eq!(ev.evaluate(&facts(&st, 5_000)).len(), 2);
        ev.save(&path, &HashMap::new()).unwrap();
        // A new process: nothing known yet, both stay firing without a new alert.
        let fresh = Status::default();
        let mut ev = Evaluator::new(&c, 6_000);
        ev.load(&path);
        assert_eq!(ev.firing_count(), 2);
        assert!(ev.evaluate(&facts(&fresh, 7_000)).is_empty());
        fresh.delivery_attempt("out", false, true, 8_000);
        assert!(
            ev.evaluate(&facts(&fresh, 20_000)).is_empty(),
            "still down: no new alert"
        );
        fresh.source_polled("bal", true, 21_000);
        assert!(ev.evaluate(&facts(&fresh, 22_000)).is_empty());
        let n = ev.evaluate(&facts(&fresh, 23_000));
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(
            (n[0].status, n[0].subject.as_str(), n[0].rule.as_str()),
            ("resolved", "source bal", "dpi-down")
        );
    }

    #[test]
    fn queue_depth_and_error_rate() {
        let c = config(
            "[[alerts.rule]]\nkind = \"queue_depth\"\nabove = 5\n[[alerts.rule]]\nkind = \"error_rate\"\nwindow_secs = 60\nabove_ratio = 0.25\nmin_count = 4\n",
        );
        let st = Status::default();
        let mut ev = Evaluator::new(&c, 0);
        assert_eq!(ev.sinks_to_measure(), vec!["out".to_string()]);
        let mut f = facts(&st, 1_000);
        f.queue.insert("out".into(), 6);
        let n = ev.evaluate(&f);
        assert_eq!(n.len(), 1);
        assert_eq!(
            n[0].summary,
            "6 deliveries are waiting for sink out (alert above 5)"
        );
        f.queue.insert("out".into(), 9);
        assert!(ev.evaluate(&f).is_empty());
        // Depth unreadable: holds.
        f.queue.clear();
        assert!(ev.evaluate(&f).is_empty());
        f.queue.insert("out".into(), 5);
        assert!(ev.evaluate(&f).is_empty());
        assert_eq!(ev.evaluate(&f)[0].status, "resolved");

        // 1 error of 3: too few to judge; 2 of 5: 40 % > 25 %.
        for (t, err) in [(0, true), (1, false), (2, false)] {
            st.message_outcome(err, 10_000 + t);
        }
        let f = facts(&st, 11_000);
        assert!(ev.evaluate(&f).is_empty());
        st.message_outcome(true, 11_000);
        st.message_outcome(false, 11_001);
        let n = ev.evaluate(&facts(&st, 12_000));
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(
            n[0].summary
                .starts_with("2 of 5 messages rejected in the last 60 s (40 %"),
            "{}",
            n[0].summary
        );
        // The window moves on: cleared.
        assert!(ev.evaluate(&facts(&st, 80_000)).is_empty());
        assert_eq!(ev.evaluate(&facts(&st, 81_000))[0].status, "resolved");
    }

    #[test]
    fn no_mail_counts_within_hours_only() {
        // 2026-11-23 is a Monday; Paris is UTC+1 in November.
        let monday_utc = days_from_civil(2026, 11, 23) * 86_400_000;
        let at = |h: i64, m: i64| monday_utc + (h * 60 + m) * 60_000 - 3_600_000;
        let c = config(
            "[[alerts.rule]]\nkind = \"no_mail\"\nsource = \"bal\"\nfor_secs = 3600\nhours = \"08:00-18:00\"\nweekdays_only = true\n",
        );
        let st = Status::default();
        st.mail_received("bal", at(0, 0) - 3 * 86_400_000);
        let mut ev = Evaluator::new(&c, at(0, 0) - 3 * 86_400_000);
        // Before 08:00 nothing; the silence is counted from 08:00.
        assert!(ev.evaluate(&facts(&st, at(7, 59))).is_empty());
        assert!(ev.evaluate(&facts(&st, at(8, 30))).is_empty());
        let n = ev.evaluate(&facts(&st, at(9, 0)));
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(
            n[0].summary
                .starts_with("source bal: no new mail for 3 d 9 h (watched 08:00-18:00)"),
            "{}",
            n[0].summary
        );
        // After hours: held, no recovery without mail.
        assert!(ev.evaluate(&facts(&st, at(19, 0))).is_empty());
        assert!(ev.evaluate(&facts(&st, at(19, 1))).is_empty());
        st.mail_received("bal", at(20, 0));
        assert!(ev.evaluate(&facts(&st, at(20, 1))).is_empty());
        assert_eq!(ev.evaluate(&facts(&st, at(20, 2)))[0].status, "resolved");
        // Saturday: not watched.
        assert!(
            ev.evaluate(&facts(&st, at(9, 0) + 5 * 86_400_000))
                .is_empty()
        );
    }

    #[test]
    fn time_helpers() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let t = days_from_civil(2026, 11, 23) * 86_400_000 + (15 * 3600 + 40 * 60 + 5) * 1000;
        assert_eq!(rfc3339(t), "2026-11-23T15:40:05Z");
        assert_eq!(rfc5322(t), "Mon, 23 Nov 2026 15:40:05 +0000");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        let d = |y, m, dd| days_from_civil(y, m, dd) * 86_400;
        assert!(!eu_summer(d(2026, 3, 29) + 3599));
        assert!(eu_summer(d(2026, 3, 29) + 3600));
        assert!(eu_summer(d(2026, 10, 25) + 3599));
        assert!(!eu_summer(d(2026, 10, 25) + 3600));
        assert_eq!(parse_offset("+01:00"), Some(3600));
        assert_eq!(parse_offset("-03:30"), Some(-12_600));
        assert_eq!(parse_offset("01:00"), None);
        assert_eq!(parse_hours("08:00-18:30"), Some((480, 1110)));
        assert_eq!(parse_hours("08:00-24:00"), Some((480, 1440)));
        assert_eq!(human(45), "45 s");
        assert_eq!(human(3 * 3600 + 5 * 60), "3 h 05 min");
    }
}
