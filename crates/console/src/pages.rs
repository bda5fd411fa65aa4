//! The pages and actions: dashboard, message browser, message detail and downloads, review
//! queue, accounts.

use crate::app::{AppState, CsrfForm, CurrentUser, internal};
use crate::views::{self, Nav, csrf_field, page, state_badge, time};
use axum::Form;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use relais_check::{ExtractedDocument, InputReport};
use relais_store::{
    Actor, DocumentRecord, ErrorInfo, EventRecord, MessageFilter, MessageId, MessageRecord,
    MessageState, Review, ReviewFilter, ReviewId, ReviewStatus, SourceKey, StoreError, Timestamp,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows per page of the message browser.
const PAGE: usize = 50;
/// Most journal rows one page of the browser looks through when filtering on the source alone
/// (read from the rows themselves: no query per row).
const SCAN_SOURCE: usize = 20_000;
/// Same, when filtering on the document type or the IPP (one query per row).
const SCAN_DOCUMENTS: usize = 2_000;
/// Same, when the sender is searched (each mail's header is read).
const SCAN_SENDER: usize = 500;
/// The dashboard's window, and the most messages it looks at.
const DASHBOARD_WINDOW: Duration = Duration::from_secs(24 * 3600);
const DASHBOARD_MESSAGES: u32 = 5_000;
/// Messages whose deliveries the dashboard looks at, most recent first.
const DASHBOARD_DELIVERY_SCAN: usize = 500;
/// How long a computed dashboard is shown before being computed again.
const DASHBOARD_TTL: Duration = Duration::from_secs(5);
/// Review items per page of the queue.
const REVIEWS_PAGE: u32 = 25;
/// Entries of the per-message caches (senders, patient identities): raw mails never change.
const CACHE_ENTRIES: usize = 50_000;

/// What the console keeps between requests: the last dashboard, and what it read from raw mails
/// (immutable once journaled, so never stale).
#[derive(Default)]
pub(crate) struct Caches {
    dashboard: Mutex<Option<(Instant, Arc<Markup>)>>,
    senders: Mutex<HashMap<MessageId, Option<String>>>,
}

impl Caches {
    pub(crate) fn invalidate(&self) {
        if let Ok(mut d) = self.dashboard.lock() {
            *d = None;
        }
    }
}

fn store_err(e: StoreError) -> Response {
    internal(&format!("journal: {e}"))
}

fn source_name(rec: &MessageRecord) -> &str {
    match &rec.source {
        SourceKey::Imap { mailbox, .. } => mailbox,
        SourceKey::Maildir { folder, .. } => folder,
        SourceKey::Folder { path } => path,
    }
}

/// The header section of a raw mail (up to the first empty line, at most 256 KiB).
fn header_block(raw: &[u8]) -> &[u8] {
    let head = &raw[..raw.len().min(256 * 1024)];
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|p| p + 2));
    &head[..end.unwrap_or(head.len())]
}

/// The sender (`From`) of a journaled mail, from its header only; cached.
async fn sender_of(state: &AppState, id: MessageId) -> Option<String> {
    if let Some(hit) = state.caches.senders.lock().ok()?.get(&id) {
        return hit.clone();
    }
    let raw = state.engine.journal().read_raw(id).await.ok()?;
    let limits = &state.engine.config().limits;
    let sender = relais_mssante::parse_mail(header_block(&raw), limits)
        .ok()
        .and_then(|m| m.from.into_iter().next());
    if let Ok(mut cache) = state.caches.senders.lock() {
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(id, sender.clone());
    }
    sender
}

// ------------------------------------------------------------------------------------------
// Dashboard

#[derive(Default)]
struct SourceRow {
    kind: &'static str,
    received: u64,
    filed: u64,
    rejected: u64,
    awaiting: u64,
    in_progress: u64,
    last_received: Option<Timestamp>,
    last_filed: Option<Timestamp>,
    last_error: Option<(Timestamp, ErrorInfo)>,
}

#[derive(Default)]
struct SinkRow {
    kind: &'static str,
    queue: u64,
    delivered: u64,
    rejected: u64,
    retrying: u64,
    last_success: Option<Timestamp>,
    last_error: Option<(Timestamp, String)>,
}

pub(crate) async fn dashboard(State(state): State<AppState>, user: CurrentUser) -> Response {
    let cached = state
        .caches
        .dashboard
        .lock()
        .ok()
        .and_then(|d| d.clone())
        .filter(|(at, _)| at.elapsed() < DASHBOARD_TTL)
        .map(|(_, m)| m);
    let body = match cached {
        Some(m) => m,
        None => match dashboard_body(&state).await {
            Ok(m) => {
                let m = Arc::new(m);
                if let Ok(mut d) = state.caches.dashboard.lock() {
                    *d = Some((Instant::now(), m.clone()));
                }
                m
            }
            Err(e) => return store_err(e),
        },
    };
    page(
        "Dashboard",
        Some(&user),
        Nav::Dashboard,
        maud::PreEscaped(body.0.clone()),
    )
    .into_response()
}

async fn dashboard_body(state: &AppState) -> Result<Markup, StoreError> {
    let journal = state.engine.journal();
    let config = state.engine.config();
    let counts = journal.counts_by_state().await?;
    let open_reviews = journal
        .list_reviews(&ReviewFilter {
            status: Some(ReviewStatus::Open),
            reason_code: None,
            limit: 10_000,
        })
        .await?
        .len();
    let since = Timestamp::now().minus(DASHBOARD_WINDOW);
    let recent = journal
        .list_messages(&MessageFilter {
            received_from: Some(since),
            limit: DASHBOARD_MESSAGES,
            ..MessageFilter::default()
        })
        .await?;
    let capped = recent.len() >= DASHBOARD_MESSAGES as usize;

    let mut sources: BTreeMap<String, SourceRow> = BTreeMap::new();
    for s in &config.sources {
        let kind = match s {
            relais_engine::config::Source::Imap { .. } => "IMAP (MSSanté)",
            relais_engine::config::Source::Maildir { .. } => "Maildir",
        };
        sources.entry(s.name().to_string()).or_default().kind = kind;
    }
    for m in &recent {
        let row = sources.entry(source_name(m).to_string()).or_default();
        if row.kind.is_empty() {
            row.kind = m.source.kind();
        }
        row.received += 1;
        match m.state {
            MessageState::Filed => {
                row.filed += 1;
                row.last_filed = row.last_filed.max(Some(m.updated_at));
            }
            MessageState::Rejected => row.rejected += 1,
            MessageState::AwaitingReview => row.awaiting += 1,
            _ => row.in_progress += 1,
        }
        row.last_received = row.last_received.max(Some(m.received_at));
        if let Some(e) = &m.last_error
            && row
                .last_error
                .as_ref()
                .is_none_or(|(t, _)| *t < m.updated_at)
        {
            row.last_error = Some((m.updated_at, e.clone()));
        }
    }

    let mut sinks: BTreeMap<String, SinkRow> = BTreeMap::new();
    for s in &config.sinks {
        let kind = match s {
            relais_engine::config::Sink::Folder { .. } => "Folder",
            relais_engine::config::Sink::Mllp { .. } => "HL7 MLLP (DPI)",
            relais_engine::config::Sink::Fhir { .. } => "FHIR R4",
        };
        let row = sinks.entry(s.name().to_string()).or_default();
        row.kind = kind;
        row.queue = journal.pending_count(s.name()).await?;
    }
    let with_deliveries = recent.iter().filter(|m| {
        matches!(
            m.state,
            MessageState::Matched | MessageState::Filed | MessageState::AwaitingReview
        )
    });
    for m in with_deliveries.take(DASHBOARD_DELIVERY_SCAN) {
        for d in journal.documents_of_message(m.id).await? {
            for del in journal.deliveries_of_document(d.id).await? {
                let row = sinks.entry(del.sink.clone()).or_default();
                match del.state {
                    relais_store::DeliveryState::Delivered => {
                        row.delivered += 1;
                        row.last_success = row.last_success.max(del.completed_at);
                    }
                    relais_store::DeliveryState::Rejected => {
                        row.rejected += 1;
                        let at = del.completed_at.unwrap_or(del.created_at);
                        if row.last_error.as_ref().is_none_or(|(t, _)| *t < at) {
                            let text = format!(
                                "{}: {}",
                                del.outcome_code.as_deref().unwrap_or("rejected"),
                                del.outcome_text.as_deref().unwrap_or("")
                            );
                            row.last_error = Some((at, text));
                        }
                    }
                    _ => {
                        if let Some(err) = &del.last_error {
                            row.retrying += 1;
                            if row
                                .last_error
                                .as_ref()
                                .is_none_or(|(t, _)| *t < del.created_at)
                            {
                                row.last_error = Some((
                                    del.created_at,
                                    format!("attempt {}: {err}", del.attempts),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    let count = |s: MessageState| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let link = |source: &str, state: Option<&str>| {
        let mut q = format!("/messages?source={}", urlencode(source));
        if let Some(s) = state {
            q.push_str("&state=");
            q.push_str(s);
        }
        q
    };
    Ok(html! {
        h1 { "Dashboard" }
        div.cards {
            div.stat { div.n { (total) } div.l { "messages in the journal" } }
            @for s in MessageState::ALL {
                a.stat href={ "/messages?state=" (s.as_str()) } {
                    div.n { (count(s)) } div.l { (s.as_str().replace('_', " ")) }
                }
            }
            a.stat href="/reviews" { div.n { (open_reviews) } div.l { "open review items" } }
        }
        h2 { "Source mailboxes " span.muted { "(last 24 hours)" } }
        table {
            thead { tr {
                th { "Source" } th { "Kind" } th.num { "Received" } th.num { "Filed" }
                th.num { "Rejected" } th.num { "Awaiting review" } th.num { "In progress" }
                th { "Last mail" } th { "Last filed" } th { "Last error" }
            } }
            tbody {
                @for (name, r) in &sources {
                    tr {
                        td { a href=(link(name, None)) { (name) } }
                        td { (r.kind) }
                        td.num { (r.received) }
                        td.num { a href=(link(name, Some("filed"))) { (r.filed) } }
                        td.num { a href=(link(name, Some("rejected"))) { (r.rejected) } }
                        td.num { a href=(link(name, Some("awaiting_review"))) { (r.awaiting) } }
                        td.num { (r.in_progress) }
                        td { (r.last_received.map(time).unwrap_or_else(|| "—".into())) }
                        td { (r.last_filed.map(time).unwrap_or_else(|| "—".into())) }
                        td {
                            @if let Some((at, e)) = &r.last_error {
                                span.error { (e.code) } " " (e.text) br; span.muted { (time(*at)) }
                            } @else { span.ok { "none" } }
                        }
                    }
                }
            }
        }
        h2 { "Sinks" }
        table {
            thead { tr {
                th { "Sink" } th { "Kind" } th.num { "Queue depth" } th.num { "Delivered" }
                th.num { "Refused" } th.num { "Retrying" } th { "Status" } th { "Last success" } th { "Last error" }
            } }
            tbody {
                @for (name, r) in &sinks {
                    tr {
                        td { (name) }
                        td { (r.kind) }
                        td.num { (r.queue) }
                        td.num { (r.delivered) }
                        td.num { (r.rejected) }
                        td.num { (r.retrying) }
                        td {
                            @if r.retrying > 0 { span.warn { "retrying" } }
                            @else if r.queue > 0 { span { "delivering" } }
                            @else { span.ok { "OK" } }
                        }
                        td { (r.last_success.map(time).unwrap_or_else(|| "—".into())) }
                        td {
                            @if let Some((at, e)) = &r.last_error {
                                span.error { (e) } br; span.muted { (time(*at)) }
                            } @else { span.ok { "none" } }
                        }
                    }
                }
            }
        }
        p.muted {
            "Counts by state cover the whole journal. Source figures cover the messages received in the last 24 hours"
            @if capped { " (the " (DASHBOARD_MESSAGES) " most recent only)" }
            "; delivery figures the deliveries of the " (DASHBOARD_DELIVERY_SCAN)
            " most recent of them; queue depths are exact. Computed at " (time(Timestamp::now())) "."
        }
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Message browser

/// The search form of the message browser (empty fields are ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    doctype: String,
    #[serde(default)]
    ipp: String,
    #[serde(default)]
    before: Option<i64>,
}

impl Search {
    fn query(&self, before: Option<MessageId>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("from", &self.from),
            ("until", &self.until),
            ("state", &self.state),
            ("source", &self.source),
            ("sender", &self.sender),
            ("doctype", &self.doctype),
            ("ipp", &self.ipp),
        ] {
            if !v.trim().is_empty() {
                parts.push(format!("{k}={}", urlencode(v.trim())));
            }
        }
        if let Some(b) = before {
            parts.push(format!("before={}", b.0));
        }
        format!("/messages?{}", parts.join("&"))
    }
}

/// The first millisecond of a `YYYY-MM-DD` day, UTC.
fn day_start(s: &str) -> Result<Timestamp, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), &format)
        .map_err(|_| format!("{s:?} is not a date: use YYYY-MM-DD"))?;
    Ok(Timestamp(d.midnight().assume_utc().unix_timestamp() * 1000))
}

struct Row {
    rec: MessageRecord,
    sender: Option<String>,
    docs: Vec<DocumentRecord>,
}

pub(crate) async fn messages(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(search): Query<Search>,
) -> Response {
    let mut problems = Vec::new();
    let parse_day = |s: &str, problems: &mut Vec<String>| {
        if s.trim().is_empty() {
            return None;
        }
        day_start(s).map_err(|e| problems.push(e)).ok()
    };
    let from = parse_day(&search.from, &mut problems);
    let until =
        parse_day(&search.until, &mut problems).map(|t| t.plus(Duration::from_secs(86_400)));
    let st = if search.state.is_empty() {
        None
    } else {
        match MessageState::parse(&search.state) {
            Some(s) => Some(s),
            None => {
                problems.push(format!("{:?} is not a state", search.state));
                None
            }
        }
    };
    let source = search.source.trim();
    let sender = search.sender.trim().to_lowercase();
    let doctype = search.doctype.trim();
    let ipp = search.ipp.trim();
    let needs_docs = !doctype.is_empty() || !ipp.is_empty();
    let scan_cap = if !sender.is_empty() {
        SCAN_SENDER
    } else if needs_docs {
        SCAN_DOCUMENTS
    } else if !source.is_empty() {
        SCAN_SOURCE
    } else {
        PAGE
    };

    let journal = state.engine.journal();
    let mut rows: Vec<Row> = Vec::new();
    let mut cursor = search.before.map(MessageId);
    let mut scanned = 0usize;
    let mut exhausted = false;
    if problems.is_empty() {
        'scan: while rows.len() < PAGE && scanned < scan_cap {
            let want = (scan_cap - scanned).min(1_000) as u32;
            let batch = match journal
                .list_messages(&MessageFilter {
                    state: st,
                    received_from: from,
                    received_until: until,
                    before: cursor,
                    limit: want,
                })
                .await
            {
                Ok(b) => b,
                Err(e) => return store_err(e),
            };
            if batch.is_empty() {
                exhausted = true;
                break;
            }
            let short = batch.len() < want as usize;
            for rec in batch {
                scanned += 1;
                cursor = Some(rec.id);
                if !source.is_empty() && source_name(&rec) != source {
                    continue;
                }
                let docs = match journal.documents_of_message(rec.id).await {
                    Ok(d) => d,
                    Err(e) => return store_err(e),
                };
                if !doctype.is_empty()
                    && !docs.iter().any(|d| d.type_code.as_deref() == Some(doctype))
                {
                    continue;
                }
                if !ipp.is_empty() && !docs.iter().any(|d| d.patient_ipp.as_deref() == Some(ipp)) {
                    continue;
                }
                let from_addr = sender_of(&state, rec.id).await;
                if !sender.is_empty()
                    && !from_addr
                        .as_deref()
                        .is_some_and(|f| f.to_lowercase().contains(&sender))
                {
                    continue;
                }
                rows.push(Row {
                    rec,
                    sender: from_addr,
                    docs,
                });
                if rows.len() >= PAGE {
                    break 'scan;
                }
            }
            if short {
                exhausted = true;
                break;
            }
        }
    }
    let next = if exhausted { None } else { cursor };
    let sources: Vec<String> = state
        .engine
        .config()
        .sources
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let body = html! {
        h1 { "Messages" }
        form.search method="get" action="/messages" {
            label { "Received from" input type="date" name="from" value=(search.from); }
            label { "until (inclusive)" input type="date" name="until" value=(search.until); }
            label { "State" select name="state" {
                option value="" { "any" }
                @for s in MessageState::ALL {
                    option value=(s.as_str()) selected[search.state == s.as_str()] { (s.as_str().replace('_', " ")) }
                }
            } }
            label { "Source" select name="source" {
                option value="" { "any" }
                @for s in &sources {
                    option value=(s) selected[search.source == *s] { (s) }
                }
            } }
            label { "Sender contains" input name="sender" value=(search.sender) placeholder="e.g. labo@"; }
            label { "Document type (LOINC)" input name="doctype" value=(search.doctype) placeholder="e.g. 11490-0" size="12"; }
            label { "Patient IPP" input name="ipp" value=(search.ipp) size="12"; }
            button type="submit" { "Search" }
            a href="/messages" { "Clear" }
        }
        @for p in &problems { p.error { (p) } }
        @if rows.is_empty() && problems.is_empty() {
            p.muted { "No message matches." }
        } @else if !rows.is_empty() {
            table.messages {
                thead { tr {
                    th.num { "#" } th { "Received" } th { "State" } th { "Source" } th { "Sender" }
                    th { "Documents" } th { "IPP" } th { "Last error" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td.num { a href={ "/messages/" (r.rec.id) } { (r.rec.id) } }
                            td { (time(r.rec.received_at)) }
                            td { (state_badge(r.rec.state)) }
                            td { (source_name(&r.rec)) }
                            td { (r.sender.as_deref().unwrap_or("—")) }
                            td { @for d in &r.docs { span.mono { (d.type_code.as_deref().unwrap_or("?")) } " " } }
                            td { @for d in &r.docs { @if let Some(i) = &d.patient_ipp { span.mono { (i) } " " } } }
                            td { @if let Some(e) = &r.rec.last_error { span.error { (e.code) } } }
                        }
                    }
                }
            }
        }
        div.pager {
            @if search.before.is_some() { a href=(search.query(None)) { "« Newest" } }
            @if let Some(n) = next { a href=(search.query(Some(n))) { "Older »" } }
            span.muted {
                (rows.len()) " shown; " (scanned) " journal entries looked through"
                @if !exhausted && rows.len() < PAGE { " (the search stops there: go on with Older)" }
                "."
            }
        }
    };
    page("Messages", Some(&user), Nav::Messages, body).into_response()
}

// ------------------------------------------------------------------------------------------
// Message detail

async fn load_message(state: &AppState, id: i64) -> Result<MessageRecord, Response> {
    match state.engine.journal().get_message(MessageId(id)).await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(views::error_page(
            StatusCode::NOT_FOUND,
            None,
            &format!("There is no message {id} in the journal."),
        )),
        Err(e) => Err(store_err(e)),
    }
}

/// The raw mail checked again with the structural checks (mail, XDM, CDA header; no XSD or
/// schematron: their results are in the journal), with the CDA documents extracted.
async fn analyse(
    state: &AppState,
    id: MessageId,
) -> Result<(Vec<u8>, InputReport, Vec<ExtractedDocument>), Response> {
    let raw = state
        .engine
        .journal()
        .read_raw(id)
        .await
        .map_err(store_err)?;
    let st = state.clone();
    let copy = raw.clone();
    let (report, extraction) = tokio::task::spawn_blocking(move || {
        st.checker
            .check_and_extract(&format!("message {id}"), &copy)
    })
    .await
    .map_err(|e| internal(&e.to_string()))?;
    Ok((raw, report, extraction.documents))
}

pub(crate) async fn message(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Response {
    let rec = match load_message(&state, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let journal = state.engine.journal();
    let events = match journal.message_events(rec.id).await {
        Ok(e) => e,
        Err(e) => return store_err(e),
    };
    let docs = match journal.documents_of_message(rec.id).await {
        Ok(d) => d,
        Err(e) => return store_err(e),
    };
    let reviews = match journal
        .list_reviews(&ReviewFilter {
            status: None,
            reason_code: None,
            limit: 10_000,
        })
        .await
    {
        Ok(r) => r
            .into_iter()
            .filter(|r| r.message_id == rec.id)
            .collect::<Vec<_>>(),
        Err(e) => return store_err(e),
    };
    let (raw, report, extracted) = match analyse(&state, rec.id).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mail = relais_mssante::parse_mail(&raw, &state.engine.config().limits).ok();
    let can_reprocess = matches!(
        rec.state,
        MessageState::Rejected | MessageState::AwaitingReview
    );
    let summary_event = events
        .iter()
        .rev()
        .find(|e| e.detail.get("error_codes").is_some());
    let body = html! {
        h1 { "Message " (rec.id) " " (state_badge(rec.state)) }
        div.actions {
            a.button href={ "/messages/" (rec.id) "/eml" } { "Download the original .eml" }
            @if can_reprocess && user.role.can_act() {
                form.inline method="post" action={ "/messages/" (rec.id) "/reprocess" } {
                    (csrf_field(&user))
                    button.secondary type="submit" { "Reprocess" }
                }
            }
            @if rec.state == MessageState::AwaitingReview {
                a href="/reviews" { "Open the review queue" }
            }
        }
        table.kv {
            tr { th { "Source" } td { (source_name(&rec)) " " span.muted { "(" (rec.source.kind()) ")" } } }
            tr { th { "Received" } td { (time(rec.received_at)) } }
            tr { th { "Journaled" } td { (time(rec.created_at)) ", last change " (time(rec.updated_at)) } }
            tr { th { "Message-ID" } td.mono { (rec.message_id.as_deref().unwrap_or("—")) } }
            tr { th { "Size, SHA-256" } td.mono { (rec.size) " bytes, " (rec.sha256) } }
            @if let Some(e) = &rec.last_error {
                tr { th { "Last error" } td { span.error { (e.code) } " " (e.text) } }
            }
        }

        h2 { "Mail headers" }
        @match &mail {
            Some(m) => {
                table.kv {
                    tr { th { "From" } td { (m.from.join(", ")) } }
                    tr { th { "To" } td { (m.to.join(", ")) } }
                    @if !m.cc.is_empty() { tr { th { "Cc" } td { (m.cc.join(", ")) } } }
                    tr { th { "Date" } td { (m.date.as_deref().unwrap_or("—")) } }
                    tr { th { "Receipt asked (MDN)" } td {
                        @if m.disposition_notification_to.is_some() { "yes" } @else { "no" }
                    } }
                    @if !m.mss.codecda.is_empty() {
                        tr { th { "X-MSS-CODECDA" } td.mono { (m.mss.codecda.join(", ")) } }
                    }
                    @if let Some(f) = m.mss.ins {
                        tr { th { "X-MSS-INS" } td.mono { (f.as_str()) } }
                    }
                    @if let Some(n) = &m.mss.nil { tr { th { "X-MSS-NIL" } td { (n) } } }
                    tr { th { "Attachments" } td {
                        @for a in &m.attachments {
                            div { span.mono { (a.content_type) } " " span.muted { (format!("{:?}", a.role)) ", " (a.data.len()) " bytes" } }
                        }
                    } }
                }
                p.muted { "The subject and attachment names are not shown: under the CI-SIS convention they carry the patient's identity, which the documents below show where it is needed." }
            }
            None => { p.warn { "The raw mail cannot be read as a mail: see the validation below." } }
        }

        h2 { "Validation" }
        @if let Some(e) = summary_event {
            p {
                "Journaled verdict: "
                @if e.detail.get("valid").and_then(|v| v.as_bool()) == Some(true) { span.ok { "valid" } }
                @else { span.error { "invalid" } }
                @if let Some(codes) = e.detail.get("error_codes").and_then(|c| c.as_array()) {
                    @if !codes.is_empty() {
                        " — error codes: "
                        @for c in codes { span.mono.error { (c.as_str().unwrap_or("?")) } " " }
                    }
                }
            }
        }
        (findings_table("Mail and package", report.findings.iter()))
        @for d in &report.documents {
            @if !d.findings.is_empty() && !docs.iter().any(|j| j.validation.as_ref().and_then(|v| v.get("location")).and_then(|l| l.as_str()) == Some(d.location.as_str())) {
                (findings_table(&format!("Document {}", d.location), d.findings.iter()))
            }
        }

        h2 { "Documents" }
        @if extracted.is_empty() && docs.is_empty() { p.muted { "No CDA document could be read from this mail." } }
        @for (n, d) in extracted.iter().enumerate() {
            @let cda_id = d.cda.header.id.as_ref().map(relais_cda::Ii::to_xds).unwrap_or_default();
            @let journaled = docs.iter().find(|j| j.key.cda_id == cda_id);
            @let has_pdf = d.cda.embedded_pdf().is_some_and(|p| p.is_ok());
            @let pdf_href = format!("/messages/{}/documents/{n}/pdf", rec.id);
            details open[n == 0] {
                summary {
                    (d.cda.header.title.as_deref().unwrap_or("(untitled document)"))
                    " " span.muted { (d.cda.header.type_code().unwrap_or("?")) }
                    @if let Some(j) = journaled {
                        " · document " (j.id) " · " span.badge { (j.state.as_str().replace('_', " ")) }
                        @if let Some(i) = &j.patient_ipp { " · IPP " span.mono { (i) } }
                    }
                }
                div.actions {
                    @if has_pdf { a.button href=(pdf_href) target="_blank" rel="noopener" { "View the PDF" } }
                    a href={ "/messages/" (rec.id) "/documents/" (n) "/xml" } { "Download the CDA XML" }
                }
                @if let Some(j) = journaled {
                    @if let Some(v) = &j.validation { (validation_json(v)) }
                    @if let Some(r) = j.replaces { p.muted { "Replaces document " (r) "." } }
                    @if let Some(s) = j.superseded_by { p.muted { "Replaced by document " (s) "." } }
                } @else if let Some(r) = report.documents.get(d.report_index) {
                    (findings_table("Checks", r.findings.iter()))
                }
                (crate::cda::render(&d.bytes, &state.engine.config().limits, has_pdf.then_some(pdf_href.as_str())))
            }
        }

        @if !reviews.is_empty() {
            h2 { "Review items" }
            table {
                thead { tr { th.num { "#" } th { "Document" } th { "Reason" } th { "Status" } th { "Resolved" } } }
                tbody { @for r in &reviews {
                    tr {
                        td.num { (r.id) }
                        td { (r.document_id.map(|d| d.to_string()).unwrap_or_else(|| "whole message".into())) }
                        td { span.mono { (r.reason_code) } " " (r.reason_text) }
                        td { (r.status.as_str()) }
                        td { @if let Some(by) = &r.resolved_by {
                            "by " (by) " " (r.resolved_at.map(time).unwrap_or_default())
                            @if let Some(i) = &r.resolution_ipp { " → IPP " span.mono { (i) } }
                            @if let Some(n) = &r.resolution_note { " (" (n) ")" }
                        } }
                    }
                } }
            }
        }

        h2 { "Audit trail" }
        (events_table(&events))
    };
    page(
        &format!("Message {}", rec.id),
        Some(&user),
        Nav::Messages,
        body,
    )
    .into_response()
}

fn findings_table<'a>(
    title: &str,
    findings: impl Iterator<Item = &'a relais_core::Finding>,
) -> Markup {
    let findings: Vec<_> = findings.collect();
    html! {
        @if !findings.is_empty() {
            h3 { (title) }
            table {
                thead { tr { th { "Severity" } th { "Code" } th { "Where" } th { "What" } } }
                tbody { @for f in findings {
                    tr {
                        td class=(format!("{}", f.severity).replace("error", "error")) { (f.severity.to_string()) }
                        td.mono { (f.code.as_str()) }
                        td.mono { (f.location.to_string()) }
                        td { (f.message) }
                    }
                } }
            }
        }
    }
}

/// A journaled document report (the JSON of `relais_check::DocumentReport`), read leniently.
fn validation_json(v: &serde_json::Value) -> Markup {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    let checks = v.get("checks").and_then(|c| c.as_array());
    let findings = v.get("findings").and_then(|c| c.as_array());
    html! {
        table.kv {
            @if let Some(m) = s("model") { tr { th { "CI-SIS model" } td { (m) } } }
            @if let Some(l) = s("level") { tr { th { "CDA level" } td { (l) } } }
            @if let Some(k) = s("patient_id_kind") { tr { th { "Patient identifier" } td { (k) } } }
            @if let Some(a) = s("author") { tr { th { "Author id" } td.mono { (a) } } }
            @if let Some(checks) = checks {
                tr { th { "Checks" } td {
                    @for c in checks {
                        @let name = c.get("name").and_then(|x| x.as_str()).unwrap_or("?");
                        @let status = c.get("status").and_then(|x| x.as_str()).unwrap_or("?");
                        @let errors = c.get("errors").and_then(|x| x.as_u64()).unwrap_or(0);
                        div {
                            span.mono { (name) } ": "
                            @if status == "ran" && errors == 0 { span.ok { "passed" } }
                            @else if status == "ran" { span.error { (errors) " error(s)" } }
                            @else {
                                span.muted { (status.replace('-', " ")) }
                                @if let Some(d) = c.get("detail").and_then(|x| x.as_str()) { span.muted { " — " (d) } }
                            }
                        }
                    }
                } }
            }
        }
        @if let Some(findings) = findings {
            @if !findings.is_empty() {
                table {
                    thead { tr { th { "Severity" } th { "Code" } th { "Where" } th { "What" } } }
                    tbody { @for f in findings {
                        @let loc = f.get("location").map(|l| match l.get("at") {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => "-".into(),
                        }).unwrap_or_default();
                        tr {
                            td { (f.get("severity").and_then(|x| x.as_str()).unwrap_or("?")) }
                            td.mono { (f.get("code").and_then(|x| x.as_str()).unwrap_or("?")) }
                            td.mono { (loc) }
                            td { (f.get("message").and_then(|x| x.as_str()).unwrap_or("")) }
                        }
                    } }
                }
            }
        }
    }
}

fn events_table(events: &[EventRecord]) -> Markup {
    html! {
        table.events {
            thead { tr { th.num { "#" } th { "When" } th { "Event" } th { "State" } th { "By" } th { "Detail" } } }
            tbody { @for e in events {
                tr {
                    td.num { (e.id) }
                    td { (time(e.at)) }
                    td.mono { (e.kind) }
                    td {
                        @if e.state_before.is_some() || e.state_after.is_some() {
                            (e.state_before.map(|s| s.as_str()).unwrap_or("—")) " → "
                            (e.state_after.map(|s| s.as_str()).unwrap_or("—"))
                        }
                    }
                    td { @match &e.actor {
                        Actor::System => span.muted { "relais" },
                        Actor::User(u) => strong { (u) },
                    } }
                    td { @if e.detail.as_object().is_some_and(|o| !o.is_empty()) {
                        pre.detail { (e.detail.to_string()) }
                    } }
                }
            } }
        }
    }
}

/// The original mail, byte for byte, as a download.
pub(crate) async fn message_eml(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Response {
    let rec = match load_message(&state, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let raw = match state.engine.journal().read_raw(rec.id).await {
        Ok(r) => r,
        Err(e) => return store_err(e),
    };
    tracing::info!(user = %user.name, message = %rec.id, "console: original mail downloaded");
    (
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"relais-message-{}.eml\"", rec.id),
            ),
        ],
        Body::from(raw),
    )
        .into_response()
}

async fn extracted_document(
    state: &AppState,
    id: i64,
    n: usize,
) -> Result<(MessageRecord, ExtractedDocument), Response> {
    let rec = load_message(state, id).await?;
    let (_, _, docs) = analyse(state, rec.id).await?;
    match docs.into_iter().nth(n) {
        Some(d) => Ok((rec, d)),
        None => Err(views::error_page(
            StatusCode::NOT_FOUND,
            None,
            &format!("Message {id} has no document {n}."),
        )),
    }
}

/// The PDF of a level 1 document (or the PDF copy section of a level 3 one), shown inline.
pub(crate) async fn document_pdf(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, n)): Path<(i64, usize)>,
) -> Response {
    let (rec, doc) = match extracted_document(&state, id, n).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let pdf = match doc.cda.embedded_pdf() {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return views::error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&user),
                &e.to_string(),
            );
        }
        None => {
            return views::error_page(
                StatusCode::NOT_FOUND,
                Some(&user),
                "This document carries no PDF.",
            );
        }
    };
    tracing::info!(user = %user.name, message = %rec.id, document = n, "console: PDF viewed");
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "inline; filename=\"relais-message-{}-document-{n}.pdf\"",
                    rec.id
                ),
            ),
            // The browser's PDF viewer is a plug-in: allowed here, and only here.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; object-src 'self'; frame-ancestors 'none'".to_string(),
            ),
        ],
        Body::from(pdf),
    )
        .into_response()
}

/// The CDA document as received, as a download (never rendered by the browser).
pub(crate) async fn document_xml(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, n)): Path<(i64, usize)>,
) -> Response {
    let (rec, doc) = match extracted_document(&state, id, n).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    tracing::info!(user = %user.name, message = %rec.id, document = n, "console: CDA downloaded");
    (
        [
            (header::CONTENT_TYPE, "application/xml".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"relais-message-{}-document-{n}.xml\"",
                    rec.id
                ),
            ),
        ],
        Body::from(doc.bytes),
    )
        .into_response()
}

// ------------------------------------------------------------------------------------------
// Actions

pub(crate) async fn reprocess(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = user.require_operator("reprocessing a message") {
        return r;
    }
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r;
    }
    use relais_engine::actions::ActionError;
    match state.engine.reprocess(MessageId(id), &user.name).await {
        Ok(done) => {
            tracing::info!(user = %user.name, message = id, "console: message reprocessed");
            let closed = if done.reviews_closed.is_empty() {
                String::new()
            } else {
                format!(
                    "; its open review item(s) {} were closed",
                    done.reviews_closed
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            user.flash(
                &state,
                format!(
                    "Message {id} was sent back for processing ({} before){closed}.",
                    done.from
                ),
            );
            state.kick();
            Redirect::to(&format!("/messages/{id}")).into_response()
        }
        Err(e @ ActionError::UnknownMessage(_)) => {
            views::error_page(StatusCode::NOT_FOUND, Some(&user), &e.to_string())
        }
        Err(e @ (ActionError::NotReprocessable { .. } | ActionError::Concurrent(_))) => {
            views::error_page(StatusCode::CONFLICT, Some(&user), &e.to_string())
        }
        Err(ActionError::Store(e)) => store_err(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct FileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ipp: String,
}

/// Whether `ipp` looks like an IPP (letters, digits, `.`, `-`, `_`; 1 to 64).
fn plausible_ipp(ipp: &str) -> bool {
    (1..=64).contains(&ipp.len())
        && ipp
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

async fn open_review(state: &AppState, user: &CurrentUser, id: i64) -> Result<Review, Response> {
    match state.engine.journal().get_review(ReviewId(id)).await {
        Ok(Some(r)) if r.status == ReviewStatus::Open => Ok(r),
        Ok(Some(r)) => Err(views::error_page(
            StatusCode::CONFLICT,
            Some(user),
            &format!(
                "Review item {id} was already resolved ({}{}).",
                r.status,
                r.resolved_by
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
        )),
        Ok(None) => Err(views::error_page(
            StatusCode::NOT_FOUND,
            Some(user),
            &format!("There is no review item {id}."),
        )),
        Err(e) => Err(store_err(e)),
    }
}

/// Files the subject of a review item to a patient of the index.
pub(crate) async fn review_file(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<FileForm>,
) -> Response {
    if let Err(r) = user.require_operator("filing a review item") {
        return r;
    }
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r;
    }
    let review = match open_review(&state, &user, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let ipp = form.ipp.trim();
    if !plausible_ipp(ipp) {
        return views::error_page(
            StatusCode::BAD_REQUEST,
            Some(&user),
            "Give the patient's IPP (letters, digits, '.', '-' or '_').",
        );
    }
    // Filing to an IPP the hospital does not know would put a document in a record nobody
    // reads: the IPP must be in the patient index (ADT feed or CSV import). A merged IPP files
    // to its surviving patient.
    let target = match state.engine.journal().find_patient_by_ipp(ipp).await {
        Ok(Some(found)) => found.record.ipp,
        Ok(None) => {
            return views::error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&user),
                "This IPP is not in Relais's patient index. Check it in the identity server; the index learns patients from the ADT feed or `relais patients import`.",
            );
        }
        Err(e) => return store_err(e),
    };
    match state
        .engine
        .file_reviewed(review.id, &target, &user.name)
        .await
    {
        Ok(()) => {
            tracing::info!(user = %user.name, review = id, message = %review.message_id, "console: review item filed");
            let merged = if target != ipp {
                " (the IPP given was merged into this one)"
            } else {
                ""
            };
            user.flash(
                &state,
                format!(
                    "Review item {id} filed to IPP {target}{merged}: message {} goes to its sinks.",
                    review.message_id
                ),
            );
            state.kick();
            Redirect::to("/reviews").into_response()
        }
        Err(relais_engine::EngineError::Store(StoreError::ReviewNotOpen { .. })) => {
            views::error_page(
                StatusCode::CONFLICT,
                Some(&user),
                &format!("Review item {id} was resolved by someone else meanwhile."),
            )
        }
        Err(e) => internal(&e.to_string()),
    }
}

#[derive(Deserialize)]
pub(crate) struct RejectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Rejects the subject of a review item.
pub(crate) async fn review_reject(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<RejectForm>,
) -> Response {
    if let Err(r) = user.require_operator("rejecting a review item") {
        return r;
    }
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r;
    }
    let review = match open_review(&state, &user, id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let note: String = form.note.trim().chars().take(500).collect();
    let note = if note.is_empty() {
        "rejected by a reviewer".to_string()
    } else {
        note
    };
    match state
        .engine
        .reject_reviewed(review.id, &note, &user.name)
        .await
    {
        Ok(()) => {
            tracing::info!(user = %user.name, review = id, message = %review.message_id, "console: review item rejected");
            user.flash(
                &state,
                format!(
                    "Review item {id} rejected: message {} is rejected.",
                    review.message_id
                ),
            );
            state.caches.invalidate();
            Redirect::to("/reviews").into_response()
        }
        Err(relais_engine::EngineError::Store(StoreError::ReviewNotOpen { .. })) => {
            views::error_page(
                StatusCode::CONFLICT,
                Some(&user),
                &format!("Review item {id} was resolved by someone else meanwhile."),
            )
        }
        Err(e) => internal(&e.to_string()),
    }
}

// ------------------------------------------------------------------------------------------
// Review queue

/// What the document of a review says about its patient, for the reviewer to find the IPP.
fn identity(doc: &ExtractedDocument) -> Markup {
    let Some(p) = doc.cda.header.patient.as_ref() else {
        return html! { span.muted { "no patient in the document" } };
    };
    let family = p
        .birth_family
        .as_deref()
        .or(p.used_family.as_deref())
        .or(p.unqualified_family.as_deref())
        .unwrap_or("?");
    let given = p
        .birth_given_names
        .as_deref()
        .or(p.given_birth_first.as_deref())
        .or(p.used_given.as_deref())
        .unwrap_or("");
    html! {
        strong { (family) } " " (given)
        @if let Some(s) = &p.sex { ", " (s) }
        @if let Some(b) = &p.birth_time { ", born " (crate::cda::hl7_date(b)) }
        @if let Some(ins) = &p.ins {
            br; span.muted { (ins.kind.to_string()) " " } span.mono { (ins.value) }
        }
        @if let Some(place) = &p.birthplace_insee {
            br; span.muted { "birthplace (INSEE) " (place) }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReviewQuery {
    #[serde(default)]
    status: String,
}

pub(crate) async fn reviews(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ReviewQuery>,
) -> Response {
    let status = ReviewStatus::parse(&q.status).unwrap_or(ReviewStatus::Open);
    let journal = state.engine.journal();
    let limit = if status == ReviewStatus::Open {
        REVIEWS_PAGE
    } else {
        10_000
    };
    let mut items = match journal
        .list_reviews(&ReviewFilter {
            status: Some(status),
            reason_code: None,
            limit,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return store_err(e),
    };
    if status != ReviewStatus::Open {
        // Resolved items: the most recent first.
        items.reverse();
        items.truncate(REVIEWS_PAGE as usize);
    }
    let mut shown = Vec::with_capacity(items.len());
    for r in items {
        let doc = match journal.get_message(r.message_id).await.map_err(store_err) {
            Err(resp) => return resp,
            Ok(_) if status != ReviewStatus::Open => None,
            Ok(_) => {
                // The document concerned, read from the raw mail, for its patient identity.
                let (_, _, docs) = match analyse(&state, r.message_id).await {
                    Ok(a) => a,
                    Err(resp) => return resp,
                };
                let wanted = match r.document_id {
                    Some(d) => journal
                        .get_document(d)
                        .await
                        .ok()
                        .flatten()
                        .map(|j| j.key.cda_id),
                    None => None,
                };
                docs.into_iter().find(|d| {
                    wanted.as_deref().is_none_or(|w| {
                        d.cda
                            .header
                            .id
                            .as_ref()
                            .map(relais_cda::Ii::to_xds)
                            .as_deref()
                            == Some(w)
                    })
                })
            }
        };
        shown.push((r, doc));
    }
    let tab = |s: ReviewStatus, label: &str| {
        html! {
            a href={ "/reviews?status=" (s.as_str()) } class=(if s == status { "badge st-matched" } else { "badge" }) { (label) }
        }
    };
    let body = html! {
        h1 { "Review queue" }
        p { (tab(ReviewStatus::Open, "Open")) " " (tab(ReviewStatus::Filed, "Filed")) " " (tab(ReviewStatus::Rejected, "Rejected")) }
        @if status == ReviewStatus::Open {
            p.muted { "Documents Relais could not file on its own (ANS codes 902 unknown patient, 903 no INS, 904 INS or traits differ, 905 traits incomplete, 906 other; or a rule code). File each to the right patient by IPP, or reject it. The oldest come first." }
        }
        @if shown.is_empty() { p.muted { "Nothing here." } }
        @else {
            table.reviews {
                thead { tr {
                    th.num { "#" } th { "Opened" } th { "Message" } th { "Reason" }
                    @if status == ReviewStatus::Open { th { "Patient in the document" } th { "Decision" } }
                    @else { th { "Decision" } }
                } }
                tbody { @for (r, doc) in &shown {
                    tr id={ "review-" (r.id) } {
                        td.num { (r.id) }
                        td { (time(r.created_at)) }
                        td {
                            a href={ "/messages/" (r.message_id) } { "message " (r.message_id) }
                            @if let Some(d) = r.document_id { br; span.muted { "document " (d) } }
                            @if let Some(d) = doc {
                                br; span.muted { (d.cda.header.title.as_deref().unwrap_or("")) }
                            }
                        }
                        td { span.mono.warn { (r.reason_code) } br; (r.reason_text) }
                        @if status == ReviewStatus::Open {
                            td { @if let Some(d) = doc { (identity(d)) } @else { span.muted { "—" } } }
                            td {
                                @if user.role.can_act() {
                                    form.inline method="post" action={ "/reviews/" (r.id) "/file" } {
                                        (csrf_field(&user))
                                        input name="ipp" placeholder="IPP" size="10" required aria-label="IPP";
                                        button type="submit" { "File to patient" }
                                    }
                                    form.inline method="post" action={ "/reviews/" (r.id) "/reject" } {
                                        (csrf_field(&user))
                                        input name="note" placeholder="why (no patient data)" size="16" aria-label="Note";
                                        button.danger type="submit" { "Reject" }
                                    }
                                } @else {
                                    span.muted { "read-only account" }
                                }
                            }
                        } @else {
                            td {
                                (r.status.as_str())
                                @if let Some(by) = &r.resolved_by { " by " strong { (by) } }
                                @if let Some(at) = r.resolved_at { br; span.muted { (time(at)) } }
                                @if let Some(i) = &r.resolution_ipp { br; "IPP " span.mono { (i) } }
                                @if let Some(n) = &r.resolution_note { br; span.muted { (n) } }
                            }
                        }
                    }
                } }
            }
        }
    };
    page("Review queue", Some(&user), Nav::Reviews, body).into_response()
}

// ------------------------------------------------------------------------------------------
// Accounts

pub(crate) async fn users(State(state): State<AppState>, user: CurrentUser) -> Response {
    if user.role < crate::users::Role::Admin {
        return views::error_page(
            StatusCode::FORBIDDEN,
            Some(&user),
            "The list of accounts is for administrators.",
        );
    }
    let accounts = state.directory.users();
    let body = html! {
        h1 { "Accounts" }
        p.muted { "Accounts live in the console's accounts file; add one with " code { "relais users add NAME --role viewer|operator|admin" } ". Changes apply at once, open sessions included." }
        table {
            thead { tr { th { "Account" } th { "Role" } } }
            tbody { @for a in accounts.iter() {
                tr { td { (a.name) } td { (a.role.as_str()) } }
            } }
        }
    };
    page("Accounts", Some(&user), Nav::Users, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_stops_at_the_first_empty_line() {
        assert_eq!(
            header_block(b"From: a\r\nTo: b\r\n\r\nbody"),
            b"From: a\r\nTo: b\r\n\r\n"
        );
        assert_eq!(header_block(b"From: a\n\nbody"), b"From: a\n\n");
        assert_eq!(header_block(b"From: a"), b"From: a");
    }

    #[test]
    fn days_and_ipps() {
        assert_eq!(day_start("1970-01-02").unwrap(), Timestamp(86_400_000));
        assert!(day_start("02/01/1970").is_err());
        assert!(plausible_ipp("IPP-0001"));
        assert!(!plausible_ipp(""));
        assert!(!plausible_ipp("a b"));
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
    }
}
