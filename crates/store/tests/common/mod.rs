//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;

use relais_store::{
    DocId, DocumentKey, DocumentMeta, DocumentOutcome, IngestOutcome, IngestRequest, Journal,
    MessageId, SourceKey, SqliteJournal, Timestamp,
};

/// A plausible MSSanté mail of about `body_len` bytes with the given Message-ID tag.
pub fn mail(tag: &str, body_len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: dr.martin@hopital-a.mssante.fr\r\nTo: secretariat@hopital-b.mssante.fr\r\n\
         Message-ID: <{tag}@relais.test>\r\nSubject: CR\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while m.len() < body_len {
        m.extend_from_slice(line);
    }
    m
}

/// An IMAP source key in INBOX with UIDVALIDITY 7.
pub fn imap(uid: u32) -> SourceKey {
    SourceKey::Imap {
        mailbox: "INBOX".into(),
        uidvalidity: 7,
        uid,
    }
}

pub async fn open(dir: &Path) -> SqliteJournal {
    SqliteJournal::open(dir).await.expect("journal opens")
}

/// Ingests a new mail and returns its id (panics on a duplicate).
pub async fn ingest_new(j: &dyn Journal, uid: u32, tag: &str) -> MessageId {
    let raw = mail(tag, 300);
    match j
        .ingest(IngestRequest::new(imap(uid), &raw, Timestamp::now()))
        .await
        .expect("ingest")
    {
        IngestOutcome::New(id) => id,
        other => panic!("expected a new message, got {other:?}"),
    }
}

/// Registers a fresh document with the given CDA id, setId and version.
pub async fn new_doc(j: &dyn Journal, msg: MessageId, cda: &str, set: &str, v: i64) -> DocId {
    let key = DocumentKey {
        cda_id: cda.into(),
        set_id: set.into(),
        version: Some(v),
    };
    match j
        .register_document(msg, &key, &DocumentMeta::default())
        .await
        .expect("register")
    {
        DocumentOutcome::New(d) => d,
        DocumentOutcome::NewVersion { doc, .. } => doc,
        other => panic!("expected a stored document, got {other:?}"),
    }
}
