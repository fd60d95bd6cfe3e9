-- Version 4: [privacy] identifiers is enforced (docs/admin/security.md).
--
-- Until version 3 `patient.id` held the EHR's FHIR patient id, whatever the
-- setting. From now on `patient.id` is a keyed hash of (source, FHIR patient
-- id) made with the vault's pseudonymization key, the same HMAC that makes
-- the `patient_key` of ingested rows, so a patient pulled twice is still one
-- row. The FHIR id itself goes to `fhir_patient_id`, which only
-- `identifiers = "minimal"` fills; under "none" it stays NULL.
--
-- SQL cannot compute the HMAC (the key lives in vault.db), so this migration
-- only moves the old id aside and flags the rows. The next `sync-once`,
-- `run` or `ingest` (which hold the key) replaces each flagged id by its
-- hash and, under "none", clears `fhir_patient_id` again
-- (store::analytics_db::enforce_identifier_policy).

ALTER TABLE patient ADD COLUMN fhir_patient_id TEXT;

UPDATE patient SET fhir_patient_id = id;

-- 'fhir': some patient.id values may still be FHIR ids; 'pseudonym': none
-- is (a database with no patient yet has nothing to convert).
INSERT INTO database_info (name, value)
    SELECT 'patient_id_form', CASE WHEN EXISTS (SELECT 1 FROM patient) THEN 'fhir' ELSE 'pseudonym' END
    ON CONFLICT (name) DO UPDATE SET value = excluded.value;
