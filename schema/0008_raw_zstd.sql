-- Version 8: resource_raw becomes a rowid table and gains `encoding`, so
-- that new rows can be kept zstd-compressed (issue 16, item 6).
--
-- Why a rowid table: WITHOUT ROWID keeps the whole row in the primary-key
-- b-tree, whose cells may hold only about a quarter of a page before they
-- spill into overflow pages; a resource's JSON (1.5 KB on average in the
-- Synthea sets) nearly always spills, and every page split then moves those
-- big cells. SQLite advises WITHOUT ROWID only for rows smaller than about a
-- twentieth of a page (https://sqlite.org/withoutrowid.html, section 4).
-- Measured on the bench_ingest data (docs/dev/benchmarks.md): the same 10,068
-- JSON rows took 0.56 s and 41 MB as WITHOUT ROWID, 0.17 s and 20 MB here.
--
-- `encoding` says how `raw` holds the JSON: 'json' (the exact bytes as text,
-- every row written before this version) or 'zstd' (one zstd frame of those
-- bytes, with its content size and checksum; schema/README.md says how to
-- read it). Old rows are copied as they are and stay readable as text.
CREATE TABLE resource_raw_v8 (
    source        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    raw_hash      TEXT NOT NULL,
    encoding      TEXT NOT NULL DEFAULT 'json' CHECK (encoding IN ('json', 'zstd')),
    raw           BLOB NOT NULL,
    PRIMARY KEY (source, resource_type, id)
);
INSERT INTO resource_raw_v8 (source, resource_type, id, raw_hash, encoding, raw)
    SELECT source, resource_type, id, raw_hash, 'json', raw FROM resource_raw;
DROP TABLE resource_raw;
-- legacy_alter_table: a modern RENAME re-parses every view of the schema to
-- rewrite references to the table, and our analyst views made that take 12 s
-- on an empty database (measured with sqlite3 3.40). No view or trigger names
-- resource_raw (or resource_raw_v8), so there is nothing to rewrite
-- (https://sqlite.org/pragma.html#pragma_legacy_alter_table). It is a
-- per-connection flag, set back at once.
PRAGMA legacy_alter_table = ON;
ALTER TABLE resource_raw_v8 RENAME TO resource_raw;
PRAGMA legacy_alter_table = OFF;
