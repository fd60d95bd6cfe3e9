-- Vault version 2: enrolled patients and their refresh tokens.
--
-- Access tokens are never stored (memory only). A rotated refresh token is
-- written here and fsynced (synchronous=FULL) before the new access token is
-- used, because single-use refresh tokens (eClinicalWorks) cannot be
-- replayed: losing the new one means enrolling the patient again.
CREATE TABLE enrollment (
    patient_key        TEXT NOT NULL,  -- the HeadacheMD patient key from the config
    ehr                TEXT NOT NULL,  -- the [[ehr]] name
    fhir_patient_id    TEXT NOT NULL,
    refresh_token      BLOB NOT NULL,
    scope              TEXT,
    token_obtained_at  TEXT NOT NULL,  -- when this refresh token was issued to us
    needs_reauth       INTEGER NOT NULL DEFAULT 0,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (patient_key, ehr)
) WITHOUT ROWID;
