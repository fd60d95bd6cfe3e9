-- HeadacheMD vault (vault.db, mode 0600, the daemon's user alone), version 1.
--
-- Secrets the daemon generates for itself. The pseudonymization key turns
-- (source, FHIR patient id) into the patient_key that analysts see; it lives
-- here, never in headache.db, so that the analytics file alone cannot be
-- used to recompute a key from a known FHIR id.
CREATE TABLE secret (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
