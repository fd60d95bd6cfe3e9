-- Vault version 5: the audit log (issue 5, DESIGN.md stage 5).
--
-- One row per request to an EHR (token endpoint, discovery, every FHIR
-- request, including refused ones and transport failures) and per change of
-- an enrollment (enroll, a refused enrollment, needs_reauth, rekey, unenroll).
-- HIPAA 45 CFR 164.312(b) asks for audit controls that record activity in
-- systems holding ePHI; this is ours. Column meanings: docs/admin/monitoring.md "Audit log".
--
-- What is never stored here: tokens, authorization codes, URLs (a query
-- string may hold the FHIR patient id), names, or payloads. A page is named
-- by its resource type and page number only. The rows are not sealed: they
-- hold no secret, and `headachemd-sync audit` reads them without the token key.
CREATE TABLE audit_event (
    id            INTEGER PRIMARY KEY,  -- the order of recording
    -- UTC, always this exact form, so that text order is time order and the
    -- retention trigger below can compare it with strftime().
    time          TEXT NOT NULL
                  CHECK (time GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z'),
    patient_key   TEXT,              -- NULL for calls made for an EHR as a whole (discovery, metadata)
    ehr           TEXT,              -- the [[ehr]] name; NULL for vault-wide changes (rekey)
    action        TEXT NOT NULL,     -- token.refresh, fhir.search, enroll, ... (docs/admin/monitoring.md "Audit log")
    resource_type TEXT,              -- the FHIR type asked for; NULL for token and enrollment events
    page          INTEGER,           -- 1 for a search's first page, 2 for the next, ...
    http_status   INTEGER,           -- NULL when no HTTP answer came (transport error, refused origin)
    count         INTEGER,           -- resources on the page (rows for enrollment events); NULL: not known
    outcome       TEXT NOT NULL      -- "ok", or the error kind (http_429, timeout, invalid_grant, ...)
);
CREATE INDEX audit_event_by_time ON audit_event (time);
CREATE INDEX audit_event_by_patient ON audit_event (patient_key, time);

-- How many days an event is kept. The daemon writes [daemon]
-- audit_retention_days here in the purge's own transaction; the trigger
-- below reads it, so no statement can delete a younger event.
CREATE TABLE audit_retention (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    days INTEGER NOT NULL CHECK (days BETWEEN 1 AND 36500)
);
INSERT INTO audit_retention (id, days) VALUES (1, 2190);

-- Append-only in normal operation: an event is never changed, and deleted
-- only once older than the retention (by SQLite's own clock, not the
-- caller's). Whoever can write the file can still drop these triggers; they
-- guard against our own bugs and stray SQL, not against root.
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: an event cannot be changed');
END;

CREATE TRIGGER audit_event_no_early_delete BEFORE DELETE ON audit_event
WHEN OLD.time >= coalesce(
    strftime('%Y-%m-%dT%H:%M:%SZ', 'now',
             '-' || coalesce((SELECT days FROM audit_retention WHERE id = 1), 36500) || ' days'),
    '9999')
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only: only the retention purge deletes an event, once it is older than the retention');
END;

CREATE TRIGGER audit_retention_no_delete BEFORE DELETE ON audit_retention
BEGIN
    SELECT RAISE(ABORT, 'audit_retention must keep its row');
END;
