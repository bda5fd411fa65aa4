//! `/metrics`: the engine's metrics (see `relais_engine::metrics`) in the Prometheus text
//! format, without login like `/health` and `/ready` (scrapers do not log in; bind the console
//! to a management network, or put it behind the TLS proxy, as for the pages).
//!
//! The daemon calls [`install`] once at start: it installs the Prometheus recorder as the
//! process's `metrics` recorder and keeps its handle here. Without it, `/metrics` answers 404.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls do nothing).
pub fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let _ = HANDLE.set(handle);
    Ok(())
}

pub(crate) async fn render() -> Response {
    match HANDLE.get() {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}
