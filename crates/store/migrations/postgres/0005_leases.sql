-- Named leases (same table as ../sqlite/0005_leases.sql): one holder at a time for a job that
-- several instances could do but only one may (polling one IMAP mailbox). A holder keeps its
-- lease by renewing it before `expires_at`; once that time is passed, another instance may take
-- it over. Times are the database server's clock (milliseconds since the epoch).
-- Version 0004 is the outbound journal's.
CREATE TABLE leases (
    name        TEXT   PRIMARY KEY,
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    CHECK (expires_at >= renewed_at)
);
