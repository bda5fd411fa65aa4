//! The engine's metrics as Prometheus renders them after a run on the samples: mails journaled
//! per source, outcomes, checks, deliveries per sink, queue depths and states, with labels that
//! are configuration names only.

mod common;

use common::maildir;
use relais_engine::Engine;
use relais_engine::config::{Sink, Source};

#[test]
fn a_run_is_counted_per_source_sink_and_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = maildir(
        tmp.path(),
        &[
            "mail/ldl-ses-n1.eml",
            "mail/cr-bio-n1.eml",
            "invalid/xdm-hash-mismatch.eml",
        ],
    );
    let config = common::config(
        tmp.path(),
        vec![Source::Maildir {
            address: None,
            name: "bal-test".into(),
            path: inbox,
            consume: true,
        }],
        vec![Sink::Folder {
            name: "out".into(),
            path: tmp.path().join("out"),
        }],
        false,
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let engine = Engine::open(config).await.unwrap();
            let s = engine.run_once().await.unwrap();
            assert_eq!((s.filed, s.rejected), (2, 1), "{s:?}");
        })
    });
    let text = handle.render();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {needle} in\n{text}"))
    };
    assert_eq!(
        value("relais_mails_journaled_total{source=\"bal-test\"}"),
        3.0
    );
    assert_eq!(
        value("relais_messages_processed_total{source=\"bal-test\",outcome=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        value("relais_deliveries_total{sink=\"out\",outcome=\"delivered\"}"),
        2.0
    );
    assert_eq!(value("relais_queue_depth{sink=\"out\"}"), 0.0);
    assert_eq!(value("relais_messages{state=\"filed\"}"), 2.0);
    assert_eq!(value("relais_messages{state=\"rejected\"}"), 1.0);
    assert!(text.contains("relais_check_seconds"), "{text}");
    assert!(text.contains("relais_delivery_seconds"), "{text}");
}
