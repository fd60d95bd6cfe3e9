-- Version 11: resources of a type we do not normalize that a materialized
-- view reads (issue 16: an AllergyIntolerance, QuestionnaireResponse or
-- CarePlan view). Only the bookkeeping every typed table has: the hash that
-- tells an unchanged resource (no view re-evaluation), deleted_at for a
-- resource gone from a full pull (its view rows are removed), and
-- patient_key for `unenroll --purge`. The resource's JSON is in
-- resource_raw when store_raw is on; its reading is the view itself.
-- A type no view reads gets no row here.
CREATE TABLE bare_resource (
    source        TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_key   TEXT,
    version_id    TEXT,
    last_updated  TEXT,
    raw_hash      TEXT NOT NULL,
    ingested_at   TEXT NOT NULL,
    deleted_at    TEXT,
    resource_type TEXT NOT NULL,  -- the FHIR type ("AllergyIntolerance")
    PRIMARY KEY (source, resource_type, id)
) WITHOUT ROWID;
CREATE INDEX bare_resource_by_patient ON bare_resource (patient_key, resource_type);
