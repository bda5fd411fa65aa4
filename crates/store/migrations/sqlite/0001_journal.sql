-- Relais journal, SQLite dialect: messages and their append-only event log, documents,
-- the sink outbox (deliveries), the review queue and the patient index.
--
-- Times are INTEGER milliseconds since the Unix epoch (UTC). Identifiers are INTEGER
-- AUTOINCREMENT so that an id is never reused, even after a future retention pass deletes rows:
-- an id quoted in an old audit export or ticket keeps pointing at nothing rather than at
-- another message.

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    state            TEXT    NOT NULL CHECK (state IN
                        ('received', 'parsed', 'validated', 'matched', 'filed', 'rejected',
                         'awaiting_review')),
    source_kind      TEXT    NOT NULL CHECK (source_kind IN ('imap', 'maildir', 'folder')),
    imap_mailbox     TEXT,
    imap_uidvalidity INTEGER,
    imap_uid         INTEGER,
    maildir_folder   TEXT,
    maildir_name     TEXT,
    folder_path      TEXT,
    message_id       TEXT,
    sha256           TEXT    NOT NULL CHECK (length(sha256) = 64),
    size             INTEGER NOT NULL CHECK (size >= 0),
    received_at      INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_error_code  TEXT,
    last_error_text  TEXT,
    CHECK (source_kind <> 'imap'
           OR (imap_mailbox IS NOT NULL AND imap_uidvalidity IS NOT NULL AND imap_uid IS NOT NULL)),
    CHECK (source_kind <> 'maildir' OR (maildir_folder IS NOT NULL AND maildir_name IS NOT NULL)),
    CHECK (source_kind <> 'folder' OR folder_path IS NOT NULL)
);

-- Dedup keys. A file dropped twice in a watched folder is two messages (same path, new file),
-- unless it carries the same Message-ID and bytes.
CREATE UNIQUE INDEX messages_imap_uid ON messages (imap_mailbox, imap_uidvalidity, imap_uid)
    WHERE source_kind = 'imap';
CREATE UNIQUE INDEX messages_maildir_name ON messages (maildir_folder, maildir_name)
    WHERE source_kind = 'maildir';
CREATE UNIQUE INDEX messages_msgid_sha ON messages (message_id, sha256)
    WHERE message_id IS NOT NULL;
CREATE INDEX messages_state ON messages (state, id);
CREATE INDEX messages_received ON messages (received_at);

-- The audit trail. Append-only: the triggers below refuse UPDATE and DELETE. Retention (deleting
-- events older than the legal period) will be a dedicated, audited path added by its own
-- migration, never an ad-hoc DELETE.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL REFERENCES messages (id),
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    state_before TEXT,
    state_after  TEXT,
    detail       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    actor_kind   TEXT    NOT NULL CHECK (actor_kind IN ('system', 'user')),
    actor_name   TEXT,
    CHECK (actor_kind = 'system' OR actor_name IS NOT NULL)
);
CREATE INDEX events_message ON events (message_id, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'relais: events are append-only (STORE-EVENT-IMMUTABLE)');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'relais: events are append-only (STORE-EVENT-IMMUTABLE)');
END;

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    INTEGER NOT NULL REFERENCES messages (id),
    cda_id        TEXT    NOT NULL UNIQUE,
    set_id        TEXT    NOT NULL,
    version       INTEGER,
    type_code     TEXT,
    patient_ipp   TEXT,
    validation    TEXT    CHECK (validation IS NULL OR json_valid(validation)),
    state         TEXT    NOT NULL CHECK (state IN
                        ('registered', 'matched', 'filed', 'rejected', 'awaiting_review')),
    replaces      INTEGER REFERENCES documents (id),
    superseded_by INTEGER REFERENCES documents (id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX documents_set ON documents (set_id, id);
CREATE INDEX documents_message ON documents (message_id);

-- The sink outbox. One row per (sink, idempotency key); claimed under a lease.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id     INTEGER NOT NULL REFERENCES documents (id),
    sink            TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'rejected')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before      INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    outcome_code    TEXT,
    outcome_text    TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    completed_at    INTEGER,
    UNIQUE (sink, idempotency_key),
    CHECK (state <> 'in_flight' OR (lease_owner IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE INDEX deliveries_open ON deliveries (sink, ordering_key, id)
    WHERE state IN ('pending', 'in_flight');

CREATE TABLE reviews (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES messages (id),
    document_id     INTEGER REFERENCES documents (id),
    reason_code     TEXT    NOT NULL,
    reason_text     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('open', 'filed', 'rejected')),
    resolution_ipp  TEXT,
    resolution_note TEXT,
    resolved_by     TEXT,
    resolved_at     INTEGER,
    created_at      INTEGER NOT NULL,
    CHECK (status = 'open' OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL)),
    CHECK (status <> 'filed' OR resolution_ipp IS NOT NULL)
);
CREATE INDEX reviews_status ON reviews (status, id);
CREATE INDEX reviews_message ON reviews (message_id);

-- The patient index, fed by ADT (A28/A31/A40). A merged IPP keeps its row and points at the
-- surviving one; merges are flattened so that `merged_into` is always a surviving IPP.
CREATE TABLE patients (
    ipp               TEXT    PRIMARY KEY NOT NULL,
    ins_oid           TEXT,
    ins_value         TEXT,
    birth_family      TEXT,
    given_birth_first TEXT,
    birth_given_names TEXT,
    birth_date        TEXT,
    sex               TEXT,
    birthplace_insee  TEXT,
    identity_status   TEXT,
    merged_into       TEXT    REFERENCES patients (ipp),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    CHECK ((ins_oid IS NULL) = (ins_value IS NULL)),
    CHECK (merged_into IS NULL OR merged_into <> ipp)
);
CREATE INDEX patients_ins ON patients (ins_oid, ins_value) WHERE ins_value IS NOT NULL;
CREATE INDEX patients_merged_into ON patients (merged_into) WHERE merged_into IS NOT NULL;
