-- Version 6: when the delete-detection count check last ran (issue 17).
--
-- After an incremental pull the daemon asked the EHR for each search's
-- total (`_summary=count`) on every pass, to notice deletes, which
-- `_lastUpdated` cannot show. That is one request per patient and type per
-- pass, against budgets like eClinicalWorks' 250 calls a minute, for a
-- check whose answer rarely changes. It now runs at most once per
-- `count_check_every` (per EHR, default 1 day); the full pull of
-- `reconcile_every` still finds every delete.
ALTER TABLE sync_cursor ADD COLUMN last_count_check_at TEXT;
