-- The outbound journal: letters a DPI handed to Relais for MSSanté (a PDF and its metadata
-- dropped in a watched folder, or an HL7 message), their recipients and their audit trail.
--
-- A letter's life: queued (built, waiting to be sent) → claimed (a worker took it, nothing sent
-- yet) → in_flight (the SMTP transaction may be under way) → sent | failed. A letter refused at
-- intake (bad metadata, not a PDF, recipient outside the liste blanche...) is journaled directly
-- as failed, so that nothing a DPI drops is lost. held_for_review is where in-flight work whose
-- outcome is unknown goes after a crash: it may or may not have reached the server, so it is
-- never re-sent without a human deciding.

CREATE TABLE letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    state           TEXT    NOT NULL CHECK (state IN
                        ('queued', 'claimed', 'in_flight', 'sent', 'failed', 'held_for_review')),
    -- Where the letter came from; (kind, key, sha256) is the dedup key: the same drop (same
    -- file path and same bytes, or the same HL7 control id and bytes) is journaled once.
    source_kind     TEXT    NOT NULL CHECK (source_kind IN ('folder', 'mllp')),
    source_key      TEXT    NOT NULL,
    source_sha256   TEXT    NOT NULL CHECK (length(source_sha256) = 64),
    -- What was built (codes and ids only, no patient data).
    document_type   TEXT,
    cda_id          TEXT,
    cda_level       INTEGER,
    -- The mail: its Message-ID (what DSNs and MDNs come back with), DSN envelope id, sender,
    -- and its bytes in the blob store.
    message_id      TEXT,
    envelope_id     TEXT,
    envelope_from   TEXT,
    mail_sha256     TEXT    CHECK (mail_sha256 IS NULL OR length(mail_sha256) = 64),
    mail_size       INTEGER CHECK (mail_size IS NULL OR mail_size >= 0),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before      INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error_code TEXT,
    last_error_text TEXT,
    -- The submission server's final reply when sent.
    smtp_reply      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    CHECK (state = 'failed' OR (mail_sha256 IS NOT NULL AND message_id IS NOT NULL)),
    CHECK (state NOT IN ('claimed', 'in_flight') OR (lease_owner IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE UNIQUE INDEX letters_source ON letters (source_kind, source_key, source_sha256);
CREATE UNIQUE INDEX letters_message_id ON letters (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX letters_envelope_id ON letters (envelope_id) WHERE envelope_id IS NOT NULL;
CREATE INDEX letters_state ON letters (state, id);
CREATE INDEX letters_claim ON letters (not_before, id) WHERE state IN ('queued', 'claimed');

-- One row per recipient, in the intake's order, with what the mail system said of it last.
CREATE TABLE letter_recipients (
    letter_id     INTEGER NOT NULL REFERENCES letters (id),
    position      INTEGER NOT NULL CHECK (position >= 0),
    -- The MSSanté address (given, or resolved from the RPPS through the Annuaire); NULL when it
    -- could not be resolved (the letter is then failed).
    address       TEXT,
    rpps          TEXT,
    resolved_by   TEXT    NOT NULL CHECK (resolved_by IN ('intake', 'annuaire', 'unresolved')),
    status        TEXT    NOT NULL CHECK (status IN
                      ('pending', 'sent', 'delayed', 'delivered', 'read', 'failed')),
    -- The remote reason: DSN status and diagnostic, MDN disposition, SMTP reply.
    remote_status TEXT,
    reason        TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (letter_id, position)
);
CREATE INDEX letter_recipients_address ON letter_recipients (address);

-- The audit trail of letters. Append-only, like `events` (0001_journal.sql).
CREATE TABLE letter_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    letter_id    INTEGER NOT NULL REFERENCES letters (id),
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    state_before TEXT,
    state_after  TEXT,
    detail       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    actor_kind   TEXT    NOT NULL CHECK (actor_kind IN ('system', 'user')),
    actor_name   TEXT,
    CHECK (actor_kind = 'system' OR actor_name IS NOT NULL)
);
CREATE INDEX letter_events_letter ON letter_events (letter_id, id);

CREATE TRIGGER letter_events_no_update BEFORE UPDATE ON letter_events
BEGIN
    SELECT RAISE(ABORT, 'relais: events are append-only (STORE-EVENT-IMMUTABLE)');
END;

CREATE TRIGGER letter_events_no_delete BEFORE DELETE ON letter_events
BEGIN
    SELECT RAISE(ABORT, 'relais: events are append-only (STORE-EVENT-IMMUTABLE)');
END;
