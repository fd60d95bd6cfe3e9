-- Version 10: back-fill of materialized views from resource_raw (issue 16,
-- item 3).
--
-- A view made while resources of its type were already stored ('pending')
-- is filled from the JSON that resource_raw kept of them, in short write
-- transactions so that analysts and the daemon's own pages are not held
-- up. These columns make that work resumable and tell `status` what
-- happened; the back-fill itself is store::view_tables::backfill().
--
-- backfill_after_source, backfill_after_id: the key (in the typed table)
--   of the last resource a back-fill under way has done, committed with
--   that resource's rows; the next start goes on after it. NULL when no
--   back-fill is under way.
-- backfilled_at: when a back-fill from resource_raw finished (UTC); NULL
--   when none ran since the table was (re)made.
-- backfill_missing_raw: stored resources it found no raw JSON for (stored
--   while store_raw was off, or a newer version than the kept JSON); when
--   above 0 the view stays 'pending' until the next full pull.
ALTER TABLE view_definition ADD COLUMN backfill_after_source TEXT;
ALTER TABLE view_definition ADD COLUMN backfill_after_id TEXT;
ALTER TABLE view_definition ADD COLUMN backfilled_at TEXT;
ALTER TABLE view_definition ADD COLUMN backfill_missing_raw INTEGER NOT NULL DEFAULT 0;
