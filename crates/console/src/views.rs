//! The page frame and the small pieces every page uses.

use crate::app::CurrentUser;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use relais_store::{MessageState, Timestamp};

/// The entries of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Dashboard,
    Messages,
    Reviews,
    Users,
    None,
}

/// A whole page: header with navigation and the user's name, the one-time notice, the body.
pub(crate) fn page(title: &str, user: Option<&CurrentUser>, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            a href=(href) class=(if n == nav { "active" } else { "" }) { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Relais" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "Relais" span.sub { "MSSanté integration console" } }
                    @if let Some(u) = user {
                        nav {
                            (item(Nav::Dashboard, "/dashboard", "Dashboard"))
                            (item(Nav::Messages, "/messages", "Messages"))
                            (item(Nav::Reviews, "/reviews", "Review queue"))
                            @if u.role >= crate::users::Role::Admin {
                                (item(Nav::Users, "/users", "Accounts"))
                            }
                        }
                        div.who {
                            span { (u.name) " " span.role { (u.role.as_str()) } }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main {
                    @if let Some(f) = user.and_then(|u| u.flash.as_deref()) {
                        p.flash role="status" { (f) }
                    }
                    (body)
                }
            }
        }
    }
}

/// An error page with its status.
pub(crate) fn error_page(status: StatusCode, user: Option<&CurrentUser>, text: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let markup = page(
        title,
        user,
        Nav::None,
        html! {
            h1 { (title) }
            p.error { (text) }
            p { a href="/dashboard" { "Back to the dashboard" } }
        },
    );
    (status, markup).into_response()
}

/// `2025-03-11 08:15:00 UTC`.
pub(crate) fn time(t: Timestamp) -> String {
    let s = t.to_string();
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(h)) => format!("{d} {h} UTC"),
        _ => s,
    }
}

/// A state as a coloured label.
pub(crate) fn state_badge(s: MessageState) -> Markup {
    html! { span class={ "badge st-" (s.as_str()) } { (s.as_str().replace('_', " ")) } }
}

/// Hidden CSRF field of a form.
pub(crate) fn csrf_field(user: &CurrentUser) -> Markup {
    html! { input type="hidden" name="csrf" value=(user.csrf); }
}
