//! Helpers shared by the engine's integration tests: sample mails in a Maildir, the sample
//! patient, a test configuration, the states of the journal.
#![allow(dead_code)]

use relais_engine::Engine;
use relais_engine::config::{Config, Patients, SchematronSetting, Sink, Source};
use relais_store::{Ins, MessageFilter, MessageState, PatientRecord};
use relais_testsupport::{ans_dir, workspace_root};
use std::path::{Path, PathBuf};

/// The bytes of a file of `samples/`.
pub fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("samples").join(rel)).unwrap()
}

/// A Maildir `root/inbox` (created if needed) with these files of `samples/` added to `new/`.
pub fn maildir(root: &Path, mails: &[&str]) -> PathBuf {
    let md = root.join("inbox");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    for (i, m) in mails.iter().enumerate() {
        let stem = Path::new(m)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::write(
            md.join("new")
                .join(format!("17000000{i:02}.{stem}.relais-test")),
            sample(m),
        )
        .unwrap();
    }
    md
}

/// A configuration with its data in `root/data`, the ANS pack, no schematron.
pub fn config(root: &Path, sources: Vec<Source>, sinks: Vec<Sink>, require_match: bool) -> Config {
    let mut c = Config::parse("", "test").unwrap();
    c.data_dir = root.join("data");
    c.validation.pack = Some(ans_dir());
    c.validation.schematron = SchematronSetting::Off;
    c.patients = Patients {
        require_match,
        adt_listen: None,
    };
    c.sources = sources;
    c.sinks = sinks;
    c
}

/// An MLLP sink to the DPI at `address`.
pub fn mllp_sink(address: &str) -> Sink {
    Sink::Mllp {
        name: "dpi".into(),
        address: address.to_string(),
        sending_application: "RELAIS".into(),
        sending_facility: "CH-DEMO".into(),
        receiving_application: "DPI".into(),
        receiving_facility: "CH-DEMO".into(),
        connect_timeout_secs: 2,
        ack_timeout_secs: 10,
    }
}

/// The patient of the samples (ANS test INS), with the traits the sample documents carry.
pub fn camille(ipp: &str) -> PatientRecord {
    PatientRecord {
        ins: Some(Ins {
            oid: "1.2.250.1.213.1.4.10".into(),
            value: "279035121518989".into(),
        }),
        birth_family: Some("RELAIS-TEST".into()),
        given_birth_first: Some("CAMILLE".into()),
        birth_given_names: Some("CAMILLE".into()),
        birth_date: Some("19790315".into()),
        sex: Some("F".into()),
        birthplace_insee: Some("51215".into()),
        identity_status: Some("VALI".into()),
        ..PatientRecord::new(ipp)
    }
}

/// The states of every message of the journal, sorted.
pub async fn states(engine: &Engine) -> Vec<MessageState> {
    let mut v: Vec<_> = engine
        .journal()
        .list_messages(&MessageFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.state)
        .collect();
    v.sort();
    v
}
