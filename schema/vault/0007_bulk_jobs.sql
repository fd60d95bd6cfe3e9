-- Vault version 7: the Bulk Data export job of each EHR, and its _since
-- cursor (issue 15). Read and written by lib/sync/bulk_store only.
--
-- Why vault.db and not headache.db: the status URL (Content-Location) and
-- the manifest's file URLs may be capability URLs: eClinicalWorks polls
-- through `$export-poll-location?job_id=…`, Oracle Health redirects files to
-- another host, and a server whose manifest says requiresAccessToken=false
-- serves the files to anyone holding the URL. Such a URL hands out the whole
-- clinic's PHI. headache.db is readable by the group headachemd-analysts
-- (DESIGN.md, "Storage: two files"); vault.db is mode 0600, the daemon's user
-- alone, and synchronous=FULL, which the job's rule "the status URL is
-- persisted before the first poll" needs anyway.
--
-- One row per EHR: the current (or last) job. A new kick-off replaces it.
CREATE TABLE bulk_job (
    ehr TEXT PRIMARY KEY NOT NULL,
    phase TEXT NOT NULL,                    -- sync::to_string(bulk_phase): kickoff, polling, …
    kickoff_url TEXT NOT NULL,
    started_at_ns INTEGER NOT NULL,         -- system_clock nanoseconds since 1970: the job deadline counts from here
    status_url TEXT,                        -- NULL until the server answered 202
    status_origin TEXT NOT NULL DEFAULT '',
    status_on_fhir_origin INTEGER NOT NULL DEFAULT 0,
    has_manifest INTEGER NOT NULL DEFAULT 0,
    transaction_time TEXT,                  -- the manifest's; the next _since once every file is applied
    requires_access_token INTEGER,
    since_stored INTEGER NOT NULL DEFAULT 0,
    progress TEXT NOT NULL DEFAULT '',      -- the last X-Progress, sanitized
    failure_code TEXT,                      -- to_string(error_code); NULL when the job has not failed
    failure_message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL                -- UTC, when the row was last written
);

-- The manifest's files in the order the job applies them (output, deleted,
-- error); idx is the index bulk_job uses. `applied` is set after the file's
-- rows have committed in headache.db (see lib/sync/bulk_store.hpp for why
-- that order is safe).
CREATE TABLE bulk_job_file (
    ehr TEXT NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,                     -- output, deleted, error
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    count INTEGER,
    applied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ehr, idx)
);

-- The next export's _since: the transactionTime of the last job whose files
-- were all applied. Written in the transaction that sets
-- bulk_job.since_stored, so a crash keeps both or neither.
CREATE TABLE bulk_cursor (
    ehr TEXT PRIMARY KEY NOT NULL,
    since TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
