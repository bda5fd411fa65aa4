-- Relais journal, PostgreSQL dialect: the same tables, columns and meanings as
-- ../sqlite/0001_journal.sql (messages and their append-only event log, documents, the sink
-- outbox, the review queue, the patient index), plus what several instances on several hosts
-- need: the raw mails themselves (`blobs`), since no instance's disk is shared.
--
-- Times are BIGINT milliseconds since the Unix epoch (UTC), as in SQLite. The journal takes them
-- from the database server's clock (`relais_now_ms()`), the one clock every instance shares.
-- Identifiers are identity columns: a sequence never hands out a value twice, so an id quoted in
-- an old audit export keeps pointing at nothing rather than at another message.

-- Milliseconds since the epoch at the start of the current transaction: every row and event
-- written by one journal call carries the same time, like SQLite's single `now`.
CREATE FUNCTION relais_now_ms() RETURNS BIGINT
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM transaction_timestamp()) * 1000)::BIGINT $$;

CREATE TABLE messages (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state            TEXT    NOT NULL CHECK (state IN
                        ('received', 'parsed', 'validated', 'matched', 'filed', 'rejected',
                         'awaiting_review')),
    source_kind      TEXT    NOT NULL CHECK (source_kind IN ('imap', 'maildir', 'folder')),
    imap_mailbox     TEXT,
    imap_uidvalidity BIGINT,
    imap_uid         BIGINT,
    maildir_folder   TEXT,
    maildir_name     TEXT,
    folder_path      TEXT,
    message_id       TEXT,
    sha256           TEXT    NOT NULL CHECK (length(sha256) = 64),
    size             BIGINT  NOT NULL CHECK (size >= 0),
    received_at      BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    last_error_code  TEXT,
    last_error_text  TEXT,
    CHECK (source_kind <> 'imap'
           OR (imap_mailbox IS NOT NULL AND imap_uidvalidity IS NOT NULL AND imap_uid IS NOT NULL)),
    CHECK (source_kind <> 'maildir' OR (maildir_folder IS NOT NULL AND maildir_name IS NOT NULL)),
    CHECK (source_kind <> 'folder' OR folder_path IS NOT NULL)
);

-- Dedup keys. They are also what makes two instances ingesting the same mail at the same time
-- safe: the second insert waits for the first and finds the conflict (exactly one new message).
-- A file dropped twice in a watched folder is two messages (same path, new file), unless it
-- carries the same Message-ID and bytes.
CREATE UNIQUE INDEX messages_imap_uid ON messages (imap_mailbox, imap_uidvalidity, imap_uid)
    WHERE source_kind = 'imap';
CREATE UNIQUE INDEX messages_maildir_name ON messages (maildir_folder, maildir_name)
    WHERE source_kind = 'maildir';
CREATE UNIQUE INDEX messages_msgid_sha ON messages (message_id, sha256)
    WHERE message_id IS NOT NULL;
CREATE INDEX messages_state ON messages (state, id);
CREATE INDEX messages_received ON messages (received_at);

-- The raw mails, content-addressed by the SHA-256 of their bytes (identical content is stored
-- once), written in the same transaction as the message row that references them. On SQLite
-- they are files beside the database; here every instance must read what any other journaled.
-- There is deliberately no foreign key from messages: a retention pass may drop raw mails
-- while keeping their messages and audit trail.
CREATE TABLE blobs (
    sha256     TEXT   PRIMARY KEY CHECK (length(sha256) = 64),
    size       BIGINT NOT NULL CHECK (size >= 0),
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- The audit trail. Append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE, for the
-- journal and for anyone with raw SQL access alike (only the tables' owner could drop them: run
-- the instances under a role that does not own the schema). Retention (deleting events older
-- than the legal period) will be a dedicated, audited path added by its own migration.
CREATE TABLE events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   BIGINT  NOT NULL REFERENCES messages (id),
    at           BIGINT  NOT NULL,
    kind         TEXT    NOT NULL,
    state_before TEXT,
    state_after  TEXT,
    detail       JSONB   NOT NULL DEFAULT '{}',
    actor_kind   TEXT    NOT NULL CHECK (actor_kind IN ('system', 'user')),
    actor_name   TEXT,
    CHECK (actor_kind = 'system' OR actor_name IS NOT NULL)
);
CREATE INDEX events_message ON events (message_id, id);

-- The message text carries the code the journal maps to StoreError::EventImmutable, as the
-- SQLite triggers do.
CREATE FUNCTION relais_events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'relais: events are append-only (STORE-EVENT-IMMUTABLE)'
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION relais_events_append_only();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION relais_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION relais_events_append_only();

CREATE TABLE documents (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    BIGINT  NOT NULL REFERENCES messages (id),
    cda_id        TEXT    NOT NULL UNIQUE,
    set_id        TEXT    NOT NULL,
    version       BIGINT,
    type_code     TEXT,
    patient_ipp   TEXT,
    validation    JSONB,
    state         TEXT    NOT NULL CHECK (state IN
                        ('registered', 'matched', 'filed', 'rejected', 'awaiting_review')),
    replaces      BIGINT  REFERENCES documents (id),
    superseded_by BIGINT  REFERENCES documents (id),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX documents_set ON documents (set_id, id);
CREATE INDEX documents_message ON documents (message_id);

-- The sink outbox. One row per (sink, idempotency key); claimed under a lease with
-- `FOR UPDATE SKIP LOCKED`, so that workers of several instances never take the same row.
CREATE TABLE deliveries (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id     BIGINT  NOT NULL REFERENCES documents (id),
    sink            TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    ordering_key    TEXT    NOT NULL,
    payload         BYTEA   NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'rejected')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    not_before      BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    outcome_code    TEXT,
    outcome_text    TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    completed_at    BIGINT,
    UNIQUE (sink, idempotency_key),
    CHECK (state <> 'in_flight' OR (lease_owner IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE INDEX deliveries_open ON deliveries (sink, ordering_key, id)
    WHERE state IN ('pending', 'in_flight');

CREATE TABLE reviews (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      BIGINT  NOT NULL REFERENCES messages (id),
    document_id     BIGINT  REFERENCES documents (id),
    reason_code     TEXT    NOT NULL,
    reason_text     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('open', 'filed', 'rejected')),
    resolution_ipp  TEXT,
    resolution_note TEXT,
    resolved_by     TEXT,
    resolved_at     BIGINT,
    created_at      BIGINT  NOT NULL,
    CHECK (status = 'open' OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL)),
    CHECK (status <> 'filed' OR resolution_ipp IS NOT NULL)
);
CREATE INDEX reviews_status ON reviews (status, id);
CREATE INDEX reviews_message ON reviews (message_id);
-- At most one open review per subject and reason (the journal returns the open one instead of
-- opening another; SQLite gets this from its single writer, here two instances may race).
CREATE UNIQUE INDEX reviews_open_subject ON reviews (message_id, COALESCE(document_id, 0), reason_code)
    WHERE status = 'open';

-- The patient index, fed by ADT (A28/A31/A40). A merged IPP keeps its row and points at the
-- surviving one; merges are flattened so that `merged_into` is always a surviving IPP.
CREATE TABLE patients (
    ipp               TEXT    PRIMARY KEY,
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
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    CHECK ((ins_oid IS NULL) = (ins_value IS NULL)),
    CHECK (merged_into IS NULL OR merged_into <> ipp)
);
CREATE INDEX patients_ins ON patients (ins_oid, ins_value) WHERE ins_value IS NOT NULL;
CREATE INDEX patients_merged_into ON patients (merged_into) WHERE merged_into IS NOT NULL;
