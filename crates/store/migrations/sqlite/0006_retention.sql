-- Retention: the only path by which journal rows are ever deleted (see src/prune.rs).
--
-- Three classes, each with its own horizon, and only for messages in a final state (filed or
-- rejected) whose whole trail is older than the horizon, with no open review, no unfinished
-- delivery and no answer still due:
--   - raw mails: the message keeps its row, `raw_pruned_at` says when its raw mail was dropped;
--     the blob file goes once no row still needs it;
--   - documents: the document bytes kept for the sinks (payloads of completed deliveries) are
--     emptied; the rows stay;
--   - events: the message goes entirely (events, reviews, deliveries, documents, row).
--
-- Every pruning transaction first writes its audit record in `prune_chunks` (append-only, like
-- the events), then names the messages it may touch in `prune_targets`. The triggers below let
-- an event or a message row be deleted only when it is such a target, and an event only when it
-- is older than the chunk's horizon: an ordinary DELETE is still refused.

ALTER TABLE messages ADD COLUMN raw_pruned_at INTEGER;

-- Blob reference checks (is this content still needed by any row?).
CREATE INDEX messages_sha256 ON messages (sha256);
CREATE INDEX letters_mail_sha256 ON letters (mail_sha256) WHERE mail_sha256 IS NOT NULL;

-- Deleting a document makes SQLite look for rows still pointing at it (foreign keys): without
-- these, every deleted document would scan the documents and reviews tables.
CREATE INDEX documents_replaces ON documents (replaces);
CREATE INDEX documents_superseded_by ON documents (superseded_by);
CREATE INDEX reviews_document ON reviews (document_id);

-- One row per prune run (a dry run writes nothing).
CREATE TABLE prune_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at        INTEGER NOT NULL,
    -- Who ran it: 'daemon', or 'cli' with the operating-system user.
    actor             TEXT    NOT NULL,
    raw_mail_horizon  INTEGER,
    documents_horizon INTEGER,
    events_horizon    INTEGER,
    chunk_rows        INTEGER NOT NULL CHECK (chunk_rows > 0)
);

-- One row per pruning transaction: what class, which horizon, how much went.
CREATE TABLE prune_chunks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES prune_runs (id),
    at                INTEGER NOT NULL,
    class             TEXT    NOT NULL CHECK (class IN ('events', 'documents', 'raw_mail', 'blobs')),
    horizon           INTEGER,
    messages          INTEGER NOT NULL DEFAULT 0,
    events            INTEGER NOT NULL DEFAULT 0,
    documents         INTEGER NOT NULL DEFAULT 0,
    deliveries        INTEGER NOT NULL DEFAULT 0,
    reviews           INTEGER NOT NULL DEFAULT 0,
    -- Raw mail bytes (events, raw_mail), payload bytes (documents), file bytes (blobs).
    bytes             INTEGER NOT NULL DEFAULT 0,
    -- Blob files removed (blobs), of which orphans left by an earlier interrupted run.
    blobs             INTEGER NOT NULL DEFAULT 0,
    orphans           INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    last_received_at  INTEGER
);
CREATE INDEX prune_chunks_run ON prune_chunks (run_id, id);

CREATE TRIGGER prune_runs_no_update BEFORE UPDATE ON prune_runs
BEGIN
    SELECT RAISE(ABORT, 'relais: the prune log is append-only (STORE-EVENT-IMMUTABLE)');
END;
CREATE TRIGGER prune_runs_no_delete BEFORE DELETE ON prune_runs
BEGIN
    SELECT RAISE(ABORT, 'relais: the prune log is append-only (STORE-EVENT-IMMUTABLE)');
END;
CREATE TRIGGER prune_chunks_no_update BEFORE UPDATE ON prune_chunks
BEGIN
    SELECT RAISE(ABORT, 'relais: the prune log is append-only (STORE-EVENT-IMMUTABLE)');
END;
CREATE TRIGGER prune_chunks_no_delete BEFORE DELETE ON prune_chunks
BEGIN
    SELECT RAISE(ABORT, 'relais: the prune log is append-only (STORE-EVENT-IMMUTABLE)');
END;

-- The messages a pruning transaction is deleting; emptied before it commits.
CREATE TABLE prune_targets (
    message_id INTEGER PRIMARY KEY NOT NULL,
    chunk_id   INTEGER NOT NULL REFERENCES prune_chunks (id)
);

-- Only a message in a final state can be a target.
CREATE TRIGGER prune_targets_final_only BEFORE INSERT ON prune_targets
WHEN (SELECT state FROM messages WHERE id = NEW.message_id) IS NOT 'filed'
 AND (SELECT state FROM messages WHERE id = NEW.message_id) IS NOT 'rejected'
BEGIN
    SELECT RAISE(ABORT, 'relais: only filed or rejected messages can be pruned (STORE-EVENT-IMMUTABLE)');
END;

-- The audit trail stays append-only, except for the events of a target message that are older
-- than its chunk's horizon.
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN NOT EXISTS (
    SELECT 1 FROM prune_targets t JOIN prune_chunks c ON c.id = t.chunk_id
     WHERE t.message_id = OLD.message_id AND c.class = 'events' AND OLD.at < c.horizon)
BEGIN
    SELECT RAISE(ABORT, 'relais: events are append-only (STORE-EVENT-IMMUTABLE)');
END;

-- A message row goes only with its trail, through the same path.
CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages
WHEN NOT EXISTS (SELECT 1 FROM prune_targets WHERE message_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'relais: messages are deleted only by retention pruning (STORE-EVENT-IMMUTABLE)');
END;
