-- Version 2: what the sync daemon needs beside the rows.
--
-- The cursor lives in headache.db, beside the rows it describes, and is
-- advanced in the same transaction as each page: in WAL mode SQLite does not
-- commit across attached files atomically, so nothing may depend on that
-- (DESIGN.md, "Storage: two files").

-- Per patient and resource type: how far incremental sync has come.
CREATE TABLE sync_cursor (
    source            TEXT NOT NULL,
    patient_key       TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    -- Highest meta.lastUpdated seen in a completed pull; the next incremental
    -- search asks for _lastUpdated=gt(this - overlap).
    last_updated_max  TEXT,
    -- When the last complete full pull (which also detects deletes) finished.
    last_full_pull_at TEXT,
    PRIMARY KEY (source, patient_key, resource_type)
) WITHOUT ROWID;

-- What `status` shows, and what analysts use to judge freshness. One row
-- per patient and resource type, plus resource_type '*' for the patient as a
-- whole (token state, next run).
CREATE TABLE sync_status (
    source          TEXT NOT NULL,
    patient_key     TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    last_attempt_at TEXT,
    last_success_at TEXT,
    last_error      TEXT,     -- a message for people; never a token or payload
    next_run_at     TEXT,
    rows_changed    INTEGER NOT NULL DEFAULT 0,  -- rows inserted, updated or marked deleted by the last success
    needs_reauth    INTEGER NOT NULL DEFAULT 0,  -- the refresh token was refused (invalid_grant): enroll again
    not_permitted   INTEGER NOT NULL DEFAULT 0,  -- the server answered 403 for this type
    PRIMARY KEY (source, patient_key, resource_type)
) WITHOUT ROWID;
