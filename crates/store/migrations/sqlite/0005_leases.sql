-- Named leases: one holder at a time for a job that several processes could do but only one
-- may (polling one IMAP mailbox). A holder keeps its lease by renewing it before `expires_at`;
-- once that time is passed, another process may take it over. Times are milliseconds since the
-- Unix epoch (UTC). Same table as ../postgres/0005_leases.sql.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY NOT NULL,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    renewed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    CHECK (expires_at >= renewed_at)
);
