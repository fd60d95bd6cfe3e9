-- HeadacheMD analytics database, version 1: the normalized tables.
--
-- Every table is keyed on (source, id): `source` is the EHR name from the
-- config (or `--source` for ingest) and `id` the FHIR logical id, so the
-- same resource pulled twice is one row. Column meanings are documented for
-- analysts in schema/README.md; the names are a contract with them.
--
-- Common columns:
--   patient_key   pseudonymous patient key (never the FHIR patient id)
--   version_id    meta.versionId, when the server sends it
--   last_updated  meta.lastUpdated, when the server sends it
--   raw_hash      SHA-256 of the resource JSON; an unchanged hash costs no write
--   ingested_at   UTC time this version of the row was written
--   deleted_at    UTC time the resource vanished from a complete pull; NULL while present

CREATE TABLE patient (
    source        TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_key   TEXT NOT NULL,
    version_id    TEXT,
    last_updated  TEXT,
    raw_hash      TEXT NOT NULL,
    ingested_at   TEXT NOT NULL,
    deleted_at    TEXT,
    birth_year    INTEGER,
    sex           TEXT,
    deceased      INTEGER,
    deceased_at   TEXT,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX patient_by_key ON patient (patient_key);

CREATE TABLE condition (
    source              TEXT NOT NULL,
    id                  TEXT NOT NULL,
    patient_key         TEXT,
    version_id          TEXT,
    last_updated        TEXT,
    raw_hash            TEXT NOT NULL,
    ingested_at         TEXT NOT NULL,
    deleted_at          TEXT,
    code_system         TEXT,
    code                TEXT,
    code_display        TEXT,
    code_text           TEXT,
    clinical_status     TEXT,
    verification_status TEXT,
    category            TEXT,
    onset               TEXT,
    abatement           TEXT,
    recorded_date       TEXT,
    headache_type       TEXT,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX condition_by_patient ON condition (patient_key);

CREATE TABLE medication_request (
    source               TEXT NOT NULL,
    id                   TEXT NOT NULL,
    patient_key          TEXT,
    version_id           TEXT,
    last_updated         TEXT,
    raw_hash             TEXT NOT NULL,
    ingested_at          TEXT NOT NULL,
    deleted_at           TEXT,
    status               TEXT,
    intent               TEXT,
    authored_on          TEXT,
    medication_system    TEXT,
    medication_code      TEXT,
    medication_display   TEXT,
    medication_reference TEXT,
    ingredient           TEXT,
    drug_class           TEXT,
    therapy_role         TEXT NOT NULL,
    as_needed            INTEGER,
    dose_text            TEXT,
    dose_quantity        REAL,
    doses_per_day        REAL,
    quantity             REAL,
    quantity_unit        TEXT,
    days_supply          REAL,
    refills              INTEGER,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX medication_request_by_patient ON medication_request (patient_key);

CREATE TABLE appointment (
    source              TEXT NOT NULL,
    id                  TEXT NOT NULL,
    patient_key         TEXT,
    version_id          TEXT,
    last_updated        TEXT,
    raw_hash            TEXT NOT NULL,
    ingested_at         TEXT NOT NULL,
    deleted_at          TEXT,
    status              TEXT,
    start               TEXT,
    "end"               TEXT,
    minutes             INTEGER,
    service_type        TEXT,
    appointment_type    TEXT,
    reason_codes        TEXT,
    is_headache_related INTEGER NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX appointment_by_patient ON appointment (patient_key);

CREATE TABLE encounter (
    source              TEXT NOT NULL,
    id                  TEXT NOT NULL,
    patient_key         TEXT,
    version_id          TEXT,
    last_updated        TEXT,
    raw_hash            TEXT NOT NULL,
    ingested_at         TEXT NOT NULL,
    deleted_at          TEXT,
    status              TEXT,
    class_code          TEXT,
    type_code           TEXT,
    type_display        TEXT,
    reason_codes        TEXT,
    period_start        TEXT,
    period_end          TEXT,
    is_headache_related INTEGER NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX encounter_by_patient ON encounter (patient_key);

CREATE TABLE observation (
    source            TEXT NOT NULL,
    id                TEXT NOT NULL,
    patient_key       TEXT,
    version_id        TEXT,
    last_updated      TEXT,
    raw_hash          TEXT NOT NULL,
    ingested_at       TEXT NOT NULL,
    deleted_at        TEXT,
    status            TEXT,
    category          TEXT,
    code_system       TEXT,
    code              TEXT,
    code_display      TEXT,
    value_type        TEXT,
    value_num         REAL,
    value_unit        TEXT,
    value_string      TEXT,
    value_code_system TEXT,
    value_code        TEXT,
    effective_at      TEXT,
    instrument        TEXT NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX observation_by_patient ON observation (patient_key);

CREATE TABLE procedure (
    source          TEXT NOT NULL,
    id              TEXT NOT NULL,
    patient_key     TEXT,
    version_id      TEXT,
    last_updated    TEXT,
    raw_hash        TEXT NOT NULL,
    ingested_at     TEXT NOT NULL,
    deleted_at      TEXT,
    status          TEXT,
    code_system     TEXT,
    code            TEXT,
    code_display    TEXT,
    performed_start TEXT,
    performed_end   TEXT,
    procedure_kind  TEXT NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX procedure_by_patient ON procedure (patient_key);

-- The exact resource JSON, kept only when `store_raw` is on (off by default:
-- it holds everything the EHR sent, names included).
CREATE TABLE resource_raw (
    source        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    raw_hash      TEXT NOT NULL,
    raw           TEXT NOT NULL,
    PRIMARY KEY (source, resource_type, id)
) WITHOUT ROWID;

-- Facts about this database file itself.
CREATE TABLE database_info (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
