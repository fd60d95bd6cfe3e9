-- Version 12: a resource's kept JSON moves out of one resource_raw row per
-- resource into frames shared by many resources (issue 16, item 6).
--
-- Why: with store_raw on, the second row per resource (its key, its hash
-- and its own zstd frame) was most of what store_raw cost: ingest took
-- about 2x as long with it as without (docs/dev/benchmarks.md). Here the
-- JSON of the resources that one write (a page, a Bundle file, a batch of
-- NDJSON lines) brings for one patient and one type is compressed as one
-- zstd frame, a row per frame, and each resource's own row points into it.
-- The pointer costs three integers in a row that is written anyway;
-- whole-frame compression is also about twice as tight as one frame per
-- resource.
--
-- A frame holds the JSON texts of its resources one after another, exactly
-- as the EHR sent them; `sizes` is their byte counts, 4 bytes each (an
-- unsigned little-endian integer), so the frame can be read without the
-- rows that point into it. `resources` counts the rows that still point
-- into it: an update that brings a new version points its row elsewhere and
-- counts the old frame down, and a frame at 0 is deleted. schema/README.md
-- says how to read a resource's JSON back.
CREATE TABLE raw_frame (
    frame         INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    patient_key   TEXT,           -- NULL: resources that name no patient
    resource_type TEXT NOT NULL,  -- the FHIR type of every resource in it
    resources     INTEGER NOT NULL CHECK (resources > 0),
    sizes         BLOB NOT NULL,
    raw           BLOB NOT NULL   -- one zstd frame (content size and checksum recorded)
);
-- `unenroll --purge` deletes a patient's frames; the view back-fill and
-- `view run --db` read the frames of one type in order.
CREATE INDEX raw_frame_by_patient ON raw_frame (source, patient_key);
CREATE INDEX raw_frame_by_type ON raw_frame (resource_type);

-- The pointer: frame, byte offset and byte count of the JSON of the stored
-- version. NULL when no JSON of that version is kept (store_raw off when it
-- came, or a row older than this version: its JSON, if any, is still the
-- resource_raw row it was). Patients have none: a Patient's JSON is never kept.
ALTER TABLE condition ADD COLUMN raw_frame INTEGER;
ALTER TABLE condition ADD COLUMN raw_at INTEGER;
ALTER TABLE condition ADD COLUMN raw_len INTEGER;
ALTER TABLE medication_request ADD COLUMN raw_frame INTEGER;
ALTER TABLE medication_request ADD COLUMN raw_at INTEGER;
ALTER TABLE medication_request ADD COLUMN raw_len INTEGER;
ALTER TABLE appointment ADD COLUMN raw_frame INTEGER;
ALTER TABLE appointment ADD COLUMN raw_at INTEGER;
ALTER TABLE appointment ADD COLUMN raw_len INTEGER;
ALTER TABLE encounter ADD COLUMN raw_frame INTEGER;
ALTER TABLE encounter ADD COLUMN raw_at INTEGER;
ALTER TABLE encounter ADD COLUMN raw_len INTEGER;
ALTER TABLE observation ADD COLUMN raw_frame INTEGER;
ALTER TABLE observation ADD COLUMN raw_at INTEGER;
ALTER TABLE observation ADD COLUMN raw_len INTEGER;
ALTER TABLE procedure ADD COLUMN raw_frame INTEGER;
ALTER TABLE procedure ADD COLUMN raw_at INTEGER;
ALTER TABLE procedure ADD COLUMN raw_len INTEGER;
ALTER TABLE bare_resource ADD COLUMN raw_frame INTEGER;
ALTER TABLE bare_resource ADD COLUMN raw_at INTEGER;
ALTER TABLE bare_resource ADD COLUMN raw_len INTEGER;

-- The view back-fill reads the frames first, in frame order (one
-- decompression per frame and batch), then the rows without a pointer in
-- key order (backfill_after_source/_id). Where it is in the frames: the
-- last frame and the index of the last resource in it done; -1 once all
-- frames are.
ALTER TABLE view_definition ADD COLUMN backfill_after_frame INTEGER;
ALTER TABLE view_definition ADD COLUMN backfill_after_item INTEGER;
