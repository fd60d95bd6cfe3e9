-- Version 5: what a prescription dispensed and how it may be taken, so that
-- exposure to as-needed acute drugs can be bounded from units rather than
-- from days of supply (ICHD-3 8.2 counts days of intake, not days an order
-- lasts), and the drug facts that classification needs beyond the class.
--
-- New medication_request columns (filled by the normalizer; NULL = the
-- order does not say):
--   route               the route of dosageInstruction[0] ('oral',
--                       'ophthalmic', 'otic', 'topical', 'nasal',
--                       'subcutaneous', 'intramuscular', 'intravenous',
--                       'rectal', 'transdermal'), from the SNOMED CT route
--                       code, else the dose form in the medication's text
--   contains_opioid     1 when any ingredient is an opioid (also inside a
--                       combination such as oxycodone/acetaminophen), else 0
--   contains_butalbital 1 when any ingredient is butalbital, else 0
--   strength_mg         mg of the classified ingredient per unit (tablet,
--                       capsule, spray), from the RxNorm name or the text
--   max_units_per_day   the most units a day the order allows: from
--                       dosageInstruction[0].maxDosePerPeriod, else from an
--                       as-needed timing ("every 2 hours" = 12 doses a day)
--                       times the units per administration (dose_quantity)
ALTER TABLE medication_request ADD COLUMN route TEXT;
ALTER TABLE medication_request ADD COLUMN contains_opioid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE medication_request ADD COLUMN contains_butalbital INTEGER NOT NULL DEFAULT 0;
ALTER TABLE medication_request ADD COLUMN strength_mg REAL;
ALTER TABLE medication_request ADD COLUMN max_units_per_day REAL;

-- Rows written by an older normalizer lack these facts and carry the older
-- classification rules. Forget their hashes and cursors, so the next pull
-- asks for every resource of these types again and rewrites each row
-- (an unchanged hash costs no write, store::analytics_db). Rows that came
-- from `ingest` are rewritten when their files are ingested again.
UPDATE medication_request SET raw_hash = 'reclassify';
UPDATE procedure SET raw_hash = 'reclassify';
UPDATE condition SET raw_hash = 'reclassify';
DELETE FROM sync_cursor WHERE resource_type IN ('MedicationRequest', 'Procedure', 'Condition');
