-- The Annuaire national MSSanté as imported from its published extraction.
--
-- An import writes its rows into a new table, `bal_staging`, without indexes; it then builds
-- the indexes (much faster than keeping them up to date row by row) and, in one short
-- transaction, drops `bal`, renames `bal_staging` to `bal` and records the import as current.
-- Searches therefore see the previous extraction or the new one, never a mix, and a failed or
-- interrupted import leaves the previous one in use (its staging table is dropped by the next
-- import). The staging table is created from the definition of `bal` below, so a later
-- migration that changes `bal` changes what imports create. The indexes are created by the
-- import code (relais_annuaire::store::INDEXES) with names unique to each import.
-- Times are milliseconds since the Unix epoch (UTC). The *_key columns hold the search keys of
-- relais_annuaire::fold::key (lower case, no accents, only [a-z0-9 ]).

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    source        TEXT    NOT NULL,           -- the file imported (path as given)
    inner_name    TEXT,                       -- the .txt inside a ZIP
    generated_at  TEXT,                       -- from the file name, e.g. 2026-08-26T10:13
    sha256        TEXT,                       -- of the extraction text (decompressed)
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    state         TEXT    NOT NULL CHECK (state IN ('running', 'current', 'superseded', 'failed')),
    lines         INTEGER,
    records       INTEGER,
    malformed     INTEGER,
    error         TEXT
);

-- The import searches read (at most one row).
CREATE TABLE current_import (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    import_id INTEGER NOT NULL REFERENCES imports(id)
);

-- One row per line of the current extraction: one mailbox (BAL).
CREATE TABLE bal (
    import_id                 INTEGER NOT NULL,
    line                      INTEGER NOT NULL,
    bal_type                  TEXT    NOT NULL,
    address                   TEXT    NOT NULL,
    address_key               TEXT    NOT NULL,   -- lower case
    person_id_type            TEXT,
    person_id                 TEXT,               -- RPPS or ADELI
    person_national_id        TEXT,               -- idNat_PS
    civility                  TEXT,
    surname                   TEXT,
    given_name                TEXT,
    surname_key               TEXT    NOT NULL DEFAULT '',
    category_code             TEXT,
    category_label            TEXT,
    profession_code           TEXT,
    profession_label          TEXT,
    profession_key            TEXT    NOT NULL DEFAULT '',
    speciality_code           TEXT,
    speciality_label          TEXT,
    speciality_key            TEXT    NOT NULL DEFAULT '',
    dematerialisation         INTEGER,            -- 1, 0 or NULL
    structure_id_type         TEXT,
    structure_id              TEXT,
    organisation_name         TEXT,
    organisation_sign         TEXT,
    service                   TEXT,
    organisation_key          TEXT    NOT NULL DEFAULT '',  -- raison sociale, or enseigne
    service_key               TEXT    NOT NULL DEFAULT '',
    address_lines             TEXT,               -- lines 2 to 5, joined by a newline
    delivery_line             TEXT,
    postal_code               TEXT,
    city                      TEXT,
    city_key                  TEXT    NOT NULL DEFAULT '',
    department                TEXT,
    country                   TEXT
);
