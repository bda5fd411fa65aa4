//! The console's only asset, compiled into the binary: it works with no network at all.

use axum::http::header;
use axum::response::IntoResponse;

/// The style sheet (no web fonts, no images).
pub(crate) const STYLE: &str = include_str!("../assets/style.css");

pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
}
