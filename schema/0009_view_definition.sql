-- Version 8: materialized SQL on FHIR ViewDefinitions (issue 16).
--
-- Each [[view]] of the config is a table view_<name>, created by the daemon
-- (its columns come from the definition, so no migration can name them).
-- This table records which definition each view_<name> table was made from,
-- so that a new or edited definition is noticed when the store opens: the
-- table is then dropped and made again, empty, and backfill_state says that
-- rows exist only for resources written since (see schema/README.md).
CREATE TABLE view_definition (
    name              TEXT PRIMARY KEY,  -- the [[view]] name; the table is view_<name>
    resource          TEXT NOT NULL,     -- the FHIR resource type the view reads
    definition_sha256 TEXT NOT NULL,     -- of the definition file's bytes
    created_at        TEXT NOT NULL,     -- when view_<name> was (re)made, UTC
    -- 'pending': made after resources of its type were stored; those fill
    -- on their next full pull (or re-ingest). 'complete': every stored
    -- resource of the type has been through the view.
    backfill_state    TEXT NOT NULL CHECK (backfill_state IN ('pending', 'complete'))
) WITHOUT ROWID;
