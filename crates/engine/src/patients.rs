//! Feeding the patient index: ADT PAM-FR messages from the identity server, or a CSV import.

use relais_dpi::PatientUpdate;
use relais_store::{Ins, Journal, PatientRecord, StoreError};

/// What applying updates did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PatientStats {
    pub upserted: usize,
    pub merged: usize,
    pub skipped: usize,
}

/// Apply one update: an A40 merge (IPP + merged IPP) or a patient record (IPP required).
pub async fn apply(
    journal: &dyn Journal,
    u: &PatientUpdate,
    stats: &mut PatientStats,
) -> Result<(), StoreError> {
    let Some(ipp) = u.ipp.as_deref().filter(|s| !s.trim().is_empty()) else {
        stats.skipped += 1;
        return Ok(());
    };
    if let Some(merged) = u.merged_ipp.as_deref().filter(|s| !s.trim().is_empty()) {
        journal.merge_patients(ipp, merged).await?;
        stats.merged += 1;
        if u.birth_family.is_none() && u.ins.is_none() {
            return Ok(());
        }
    }
    let record = PatientRecord {
        ins: match (&u.ins, &u.ins_oid) {
            (Some(value), Some(oid)) => Some(Ins {
                oid: oid.clone(),
                value: value.clone(),
            }),
            _ => None,
        },
        birth_family: u.birth_family.clone(),
        given_birth_first: u.given_birth_first.clone(),
        birth_given_names: u.birth_given_names.clone(),
        birth_date: u.birth_date.clone(),
        sex: u.sex.clone(),
        birthplace_insee: u.birthplace_insee.clone(),
        identity_status: u.identity_status.clone(),
        ..PatientRecord::new(ipp)
    };
    journal.upsert_patient(&record).await?;
    stats.upserted += 1;
    Ok(())
}

/// Serve ADT over MLLP at `address` until `shutdown`, applying every patient event.
pub async fn serve_adt(
    journal: std::sync::Arc<dyn Journal>,
    address: &str,
    limits: relais_core::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let config = relais_dpi::AdtListenerConfig {
        limits,
        ..relais_dpi::AdtListenerConfig::default()
    };
    let listener = relais_dpi::AdtListener::bind(address, config, tx).await?;
    let local = listener.local_addr()?;
    tokio::spawn(listener.serve(shutdown));
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let mut stats = PatientStats::default();
            for u in &event.updates {
                if let Err(e) = apply(journal.as_ref(), u, &mut stats).await {
                    tracing::error!(trigger = %event.trigger, control_id = %event.control_id, error = %e, "patient update not applied");
                }
            }
            tracing::info!(trigger = %event.trigger, control_id = %event.control_id, upserted = stats.upserted, merged = stats.merged, "ADT applied");
        }
    });
    tracing::info!(%local, "ADT listener ready");
    Ok(local)
}
