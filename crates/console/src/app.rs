//! The console's HTTP application: state, routes, security headers, login and logout.

use crate::auth::{FAILURE_DELAY, LoginLimiter, Sessions, tokens_equal};
use crate::users::{Directory, Role};
use crate::views::{self, Nav, page};
use crate::{pages, static_files};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::html;
use relais_engine::Engine;
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

/// The Content-Security-Policy of every page: this origin only, no plug-ins, no framing.
pub(crate) const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                              form-action 'self'; frame-ancestors 'none'";

/// Largest request body (forms are a few fields).
const MAX_BODY: usize = 64 * 1024;

/// What every handler shares.
pub(crate) struct Inner {
    pub(crate) engine: Arc<Engine>,
    pub(crate) directory: Directory,
    pub(crate) sessions: Sessions,
    pub(crate) limiter: LoginLimiter,
    /// Cookies carry `Secure` and the `__Host-` prefix (the browser talks HTTPS).
    pub(crate) secure_cookies: bool,
    /// The console itself serves TLS: send HSTS.
    pub(crate) tls: bool,
    /// The structural checks (mail, XDM, CDA header), to show documents and findings.
    pub(crate) checker: relais_check::Checker,
    /// One background processing pass at a time after an action.
    pub(crate) kick_lock: tokio::sync::Mutex<()>,
    pub(crate) caches: pages::Caches,
}

/// The shared state, cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub(crate) fn session_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-relais-session"
        } else {
            "relais-session"
        }
    }

    fn login_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-relais-login"
        } else {
            "relais-login"
        }
    }

    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        c.set_path("/");
        c.set_secure(self.secure_cookies);
        c
    }

    /// Runs the engine's processing and deliveries now, in the background, so that an
    /// operator's action shows its effect without waiting for the daemon's next cycle. The
    /// journal's optimistic concurrency keeps this safe beside the daemon's own loop.
    pub(crate) fn kick(&self) {
        let st = self.clone();
        tokio::spawn(async move {
            let _one = st.kick_lock.lock().await;
            let mut summary = relais_engine::RunSummary::default();
            if let Err(e) = st.engine.process_pending(&mut summary).await {
                tracing::warn!(error = %e, "console: processing after an action failed; the daemon's next cycle retries");
            }
            if let Err(e) = st.engine.drain_sinks(&mut summary).await {
                tracing::warn!(error = %e, "console: deliveries after an action failed; the daemon's next cycle retries");
            }
            st.caches.invalidate();
        });
    }
}

/// The logged-in user of a request (from the session cookie, checked against the accounts
/// file as it is now: a removed account is logged out, a changed role applies at once).
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) csrf: String,
    pub(crate) flash: Option<String>,
    token: String,
}

impl CurrentUser {
    /// Leaves a notice for the next page.
    pub(crate) fn flash(&self, state: &AppState, text: String) {
        state.sessions.set_flash(&self.token, text);
    }

    /// `Err(403 page)` unless the user may act.
    pub(crate) fn require_operator(&self, action: &str) -> Result<(), Response> {
        if self.role.can_act() {
            return Ok(());
        }
        tracing::info!(user = %self.name, role = %self.role, action, "console: action refused to a read-only account");
        Err(views::error_page(
            StatusCode::FORBIDDEN,
            Some(self),
            &format!(
                "Your account ({}) may look but not act: {action} needs the operator role. Ask an administrator.",
                self.role
            ),
        ))
    }

    /// `Err(403 page)` unless `posted` is this session's CSRF token.
    pub(crate) fn check_csrf(&self, posted: &str) -> Result<(), Response> {
        if tokens_equal(posted, &self.csrf) {
            Ok(())
        } else {
            Err(views::error_page(
                StatusCode::FORBIDDEN,
                Some(self),
                "This form is out of date (or was not sent by this console). Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let to_login = || Redirect::to("/login").into_response();
        let token = jar
            .get(state.session_cookie())
            .map(|c| c.value().to_string())
            .ok_or_else(to_login)?;
        let view = state.sessions.touch(&token).ok_or_else(to_login)?;
        let Some(account) = state.directory.account(&view.user) else {
            state.sessions.end(&token);
            return Err(to_login());
        };
        Ok(CurrentUser {
            name: account.name,
            role: account.role,
            csrf: view.csrf,
            flash: view.flash,
            token,
        })
    }
}

/// The routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(crate::metrics::render))
        .route("/static/style.css", get(static_files::style))
        .route("/dashboard", get(pages::dashboard))
        .route("/messages", get(pages::messages))
        .route("/messages/{id}", get(pages::message))
        .route("/messages/{id}/eml", get(pages::message_eml))
        .route("/messages/{id}/documents/{n}/pdf", get(pages::document_pdf))
        .route("/messages/{id}/documents/{n}/xml", get(pages::document_xml))
        .route("/messages/{id}/reprocess", post(pages::reprocess))
        .route("/reviews", get(pages::reviews))
        .route("/reviews/{id}/file", post(pages::review_file))
        .route("/reviews/{id}/reject", post(pages::review_reject))
        .route("/users", get(pages::users))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn not_found() -> Response {
    views::error_page(StatusCode::NOT_FOUND, None, "There is no such page.")
}

/// Whether a POST comes from a page of this console. Browsers say where a request comes from:
/// `Sec-Fetch-Site` (all current browsers) must be `same-origin` (or `none`: typed by the
/// user); without it, `Origin` must name this host. Anything cross-site is refused before the
/// handler runs; the CSRF token is checked as well, by each handler.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// Refuses cross-site POSTs and adds the security headers to every response.
async fn security(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return views::error_page(
            StatusCode::FORBIDDEN,
            None,
            "This request did not come from a page of this console.",
        );
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages hold patient data: never kept by the browser or a proxy.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
}

/// Ready when the journal answers a query (the newest message: one index look-up, cheap
/// whatever the journal's size, so probes can come often).
async fn ready(State(state): State<AppState>) -> Response {
    // A full data directory: the daemon runs but takes no mail (it stays on the mail server)
    // until space is freed. Checked by a small probe write only after a write was refused.
    let data_dir = state.engine.config().data_dir.clone();
    let full = tokio::task::spawn_blocking(move || relais_store::data_dir_full(&data_dir))
        .await
        .ok()
        .flatten();
    if let Some(reason) = full {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "data directory full (STORE-DISK-FULL): {reason}; free space and Relais resumes\n"
            ),
        )
            .into_response();
    }
    let newest = relais_store::MessageFilter {
        limit: 1,
        ..relais_store::MessageFilter::default()
    };
    match state.engine.journal().list_messages(&newest).await {
        Ok(_) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ready\n",
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(
                code = e.code(),
                "console: /ready: the journal does not answer"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("journal unavailable ({})\n", e.code()),
            )
                .into_response()
        }
    }
}

fn login_page(csrf: &str, problem: Option<&str>) -> maud::Markup {
    page(
        "Log in",
        None,
        Nav::None,
        html! {
            div.login {
                h1 { "Log in" }
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Account" input name="name" autocomplete="username" required autofocus; }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// The login form, with a fresh login CSRF token in a cookie and in the form (a login made
/// from another site cannot plant a session).
async fn login_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(state.session_cookie())
        && state.sessions.touch(c.value()).is_some()
    {
        return Redirect::to("/dashboard").into_response();
    }
    fresh_login_form(&state, jar, StatusCode::OK, None)
}

fn fresh_login_form(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    problem: Option<&str>,
) -> Response {
    let token = match crate::auth::new_token() {
        Ok(t) => t,
        Err(e) => return internal(&e.to_string()),
    };
    let jar = jar.add(state.cookie(state.login_cookie(), token.clone()));
    (status, jar, login_page(&token, problem)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = jar
        .get(state.login_cookie())
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if expected.is_empty() || !tokens_equal(&form.csrf, &expected) {
        return fresh_login_form(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            Some("The login form had expired. Please log in again."),
        );
    }
    let name = form.name.trim().to_string();
    let ip = peer.ip();
    if let Err(wait) = state.limiter.check(&name, ip) {
        tracing::warn!(peer = %ip, "console: login refused, too many failures");
        let minutes = wait.as_secs().div_ceil(60);
        return fresh_login_form(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed logins. Try again in {minutes} minute(s)."
            )),
        );
    }
    let checker = state.clone();
    let (n, p) = (name.clone(), form.password);
    let verified = tokio::task::spawn_blocking(move || checker.directory.verify(&n, &p)).await;
    let account = match verified {
        Ok(a) => a,
        Err(e) => return internal(&e.to_string()),
    };
    let Some(account) = account else {
        state.limiter.failed(&name, ip);
        tracing::info!(peer = %ip, "console: failed login");
        tokio::time::sleep(FAILURE_DELAY).await;
        return fresh_login_form(
            &state,
            jar,
            StatusCode::UNAUTHORIZED,
            Some("Wrong account name or password."),
        );
    };
    state.limiter.succeeded(&account.name);
    let token = match state.sessions.create(&account) {
        Ok(t) => t,
        Err(e) => return internal(&e.to_string()),
    };
    tracing::info!(user = %account.name, role = %account.role, peer = %ip, "console: login");
    let jar = jar
        .remove(state.cookie(state.login_cookie(), String::new()))
        .add(state.cookie(state.session_cookie(), token));
    (jar, Redirect::to("/dashboard")).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r;
    }
    state.sessions.end(&user.token);
    tracing::info!(user = %user.name, "console: logout");
    let jar = jar.remove(state.cookie(state.session_cookie(), String::new()));
    (jar, Redirect::to("/login")).into_response()
}

/// A 500 page that says what failed, without patient data (journal errors carry ids and codes).
pub(crate) fn internal(what: &str) -> Response {
    tracing::error!(error = %what, "console: request failed");
    views::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        &format!("The console could not answer: {what}"),
    )
}
