-- Version 3: the analyst layer. Settings, two small lookup tables, the
-- prescription status reason, and the views that encode the clinic's rules.
--
-- Every view and column is documented in schema/README.md; a test fails when
-- a view has a column the README does not describe.
--
-- Rules every view follows (TERMINOLOGY.md "Clinical rules", ICHD-3 8.2):
--   * a row with deleted_at set never counts;
--   * a prescription that is entered-in-error, cancelled or draft never
--     counts, and neither does one whose intent is only a proposal, plan or
--     option (nothing was ordered);
--   * days of supply come from dispenseRequest.expectedSupplyDuration, else
--     quantity / doses per day; when neither is known the prescription is
--     marked 'unknown', never guessed;
--   * exposure is prescribed, not taken: the views say what was ordered.
--
-- "Today" is the `as_of` setting when set (so a result can be reproduced),
-- else the current UTC date.

-- R4 MedicationRequest.statusReason: why a prescription was stopped. The
-- HL7 code system medicationrequest-status-reason has `sintol` (suspected
-- intolerance) and `salg` (suspected allergy): documented intolerance of a
-- preventive counts towards CGRP prior authorization.
ALTER TABLE medication_request ADD COLUMN status_reason_code TEXT;
ALTER TABLE medication_request ADD COLUMN status_reason TEXT;

-- Settings the views read. Change them with a write connection, e.g.
--   UPDATE analyst_setting SET value = '60' WHERE key = 'adequate_trial_days';
CREATE TABLE analyst_setting (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    meaning TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO analyst_setting (key, value, meaning) VALUES
    ('as_of', '', 'the date the views treat as today (YYYY-MM-DD); empty means the current UTC date'),
    ('adequate_trial_weeks', '8', 'a preventive trial at least this long is adequate (most US payers: 8 weeks)'),
    ('trial_gap_days', '30', 'prescriptions of one preventive class less than this many days after the previous supply ran out continue the same trial'),
    ('cgrp_trial_classes', 'beta_blocker,anticonvulsant,tricyclic,snri,arb,calcium_channel,botulinum_toxin', 'preventive drug classes whose trials count towards CGRP readiness'),
    ('cgrp_min_classes', '2', 'distinct preventive classes with an adequate trial (or documented intolerance) that CGRP readiness needs'),
    ('cgrp_current_classes', 'cgrp_mab,gepant', 'preventive classes that mean the patient is already on a CGRP preventive'),
    ('moh_classes_10', 'triptan,ergot,opioid,combination_analgesic', 'acute classes overused at 10 or more days a month (ICHD-3 8.2.2-8.2.5)'),
    ('moh_classes_15', 'simple_analgesic_nsaid', 'acute classes overused at 15 or more days a month (ICHD-3 8.2.1)'),
    ('moh_days_10', '10', 'the days a month threshold for moh_classes_10 and for several classes together'),
    ('moh_days_15', '15', 'the days a month threshold for moh_classes_15'),
    ('moh_min_months', '4', 'consecutive months at or over a threshold (ICHD-3: more than 3)'),
    ('count_refills', '0', '1 to treat each allowed refill as one more fill of the same supply (an upper bound); 0 counts the first fill only'),
    ('appointment_window_months', '12', 'how far back v_appointment_adherence counts'),
    ('stale_after_hours', '48', 'a successful pull older than this is stale in v_sync_freshness');

-- How specific each headache_type is, for "the most specific diagnosis":
-- chronic migraine, then the other named types, then migraine, other and
-- unspecified headache (the classifier's own order, lib/terminology).
-- Medication-overuse headache is secondary (ICHD-3 8.2) and is reported
-- beside the primary type rather than as it.
CREATE TABLE analyst_headache_type (
    headache_type TEXT PRIMARY KEY,
    specificity   INTEGER NOT NULL,
    label         TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO analyst_headache_type (headache_type, specificity, label) VALUES
    ('chronic_migraine', 1, 'Chronic migraine'),
    ('migraine_with_aura', 2, 'Migraine with aura'),
    ('migraine_without_aura', 3, 'Migraine without aura'),
    ('menstrual_migraine', 4, 'Menstrual migraine'),
    ('hemiplegic_migraine', 5, 'Hemiplegic migraine'),
    ('tension_type', 6, 'Tension-type headache'),
    ('cluster', 7, 'Cluster headache and other TACs'),
    ('post_traumatic', 8, 'Post-traumatic headache'),
    ('new_daily_persistent', 9, 'New daily persistent headache'),
    ('cervicogenic', 10, 'Cervicogenic headache'),
    ('migraine', 11, 'Migraine, other or unspecified'),
    ('other_headache', 12, 'Other headache'),
    ('headache_unspecified', 13, 'Headache, unspecified'),
    ('medication_overuse', 14, 'Medication-overuse headache');

-- Each prescription that counts, with its class roles and the days it
-- covers. The base of every medication view.
CREATE VIEW v_prescription_supply AS
WITH cfg AS (
    SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'count_refills'), 0) AS count_refills
),
base AS (
    SELECT m.source, m.id, m.patient_key, m.drug_class, m.therapy_role, m.ingredient, m.as_needed, m.status,
           m.status_reason_code, m.status_reason, m.refills,
           date(substr(m.authored_on, 1, 10)) AS start_date,
           CASE WHEN m.days_supply > 0 THEN m.days_supply
                WHEN m.quantity > 0 AND m.doses_per_day > 0 THEN m.quantity / m.doses_per_day END AS fill_days,
           CASE WHEN m.days_supply > 0 THEN 'expected_supply_duration'
                WHEN m.quantity > 0 AND m.doses_per_day > 0 THEN 'quantity_per_doses_per_day'
                ELSE 'unknown' END AS supply_basis
    FROM medication_request m
    WHERE m.deleted_at IS NULL
      AND m.patient_key IS NOT NULL
      AND m.drug_class IS NOT NULL
      AND COALESCE(m.status, '') NOT IN ('entered-in-error', 'cancelled', 'draft')
      AND COALESCE(m.intent, '') NOT IN ('proposal', 'plan', 'option')
),
sized AS (
    SELECT base.*,
           fill_days * (1 + CASE WHEN cfg.count_refills = 1 THEN COALESCE(refills, 0) ELSE 0 END) AS supply_days
    FROM base, cfg
)
SELECT source, id, patient_key, drug_class,
       CASE
           WHEN drug_class IN ('simple_analgesic', 'nsaid') THEN 'simple_analgesic_nsaid'
           WHEN drug_class IN ('triptan', 'ergot', 'opioid', 'combination_analgesic', 'ditan') THEN drug_class
           WHEN drug_class = 'gepant' AND therapy_role = 'acute' THEN 'gepant'
           WHEN drug_class = 'gepant' AND therapy_role = 'acute_and_preventive' AND COALESCE(as_needed, 1) = 1 THEN 'gepant'
       END AS acute_class,
       CASE
           WHEN therapy_role = 'preventive' THEN drug_class
           WHEN therapy_role = 'acute_and_preventive' AND as_needed = 0 THEN drug_class
       END AS preventive_class,
       therapy_role, ingredient, status, status_reason_code, status_reason, start_date, supply_basis, fill_days,
       refills, supply_days,
       CASE WHEN start_date IS NOT NULL AND supply_days IS NOT NULL THEN
           date(start_date, '+' || (CAST(supply_days AS INTEGER) + (supply_days > CAST(supply_days AS INTEGER))) || ' days')
       END AS end_date
FROM sized;

-- Per patient, calendar month and acute class: days covered.
CREATE VIEW v_acute_exposure_monthly AS
WITH RECURSIVE
iv AS (
    SELECT patient_key, acute_class, julianday(start_date) AS s, julianday(end_date) AS e
    FROM v_prescription_supply
    WHERE acute_class IS NOT NULL AND end_date > start_date
),
ordered AS (
    SELECT iv.*, MAX(e) OVER (PARTITION BY patient_key, acute_class ORDER BY s, e
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM iv
),
islands AS (
    SELECT ordered.*, SUM(CASE WHEN prev_end IS NULL OR s > prev_end THEN 1 ELSE 0 END)
               OVER (PARTITION BY patient_key, acute_class ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island
    FROM ordered
),
pieces AS (
    SELECT 'union' AS kind, patient_key, acute_class, MIN(s) AS s, MAX(e) AS e
    FROM islands GROUP BY patient_key, acute_class, island
    UNION ALL
    SELECT 'sum', patient_key, acute_class, s, e FROM iv
),
split AS (
    SELECT kind, patient_key, acute_class, julianday(date(s, 'start of month')) AS m, s, e FROM pieces
    UNION ALL
    SELECT kind, patient_key, acute_class, julianday(date(m, '+1 month')), s, e
    FROM split WHERE julianday(date(m, '+1 month')) < e
),
days AS (
    SELECT patient_key, acute_class, strftime('%Y-%m', m) AS month, kind,
           MIN(e, julianday(date(m, '+1 month'))) - MAX(s, m) AS n
    FROM split
),
-- One pass and one GROUP BY: joining the pieces back on (patient, class,
-- month) would make SQLite compare every pair.
facts AS (
    SELECT patient_key, acute_class, month,
           CASE WHEN kind = 'union' THEN n ELSE 0 END AS exposure,
           CASE WHEN kind = 'sum' THEN n ELSE 0 END AS supply, 0 AS started, 0 AS unknown
    FROM days
    UNION ALL
    SELECT patient_key, acute_class, strftime('%Y-%m', start_date), 0, 0, 1, supply_basis = 'unknown'
    FROM v_prescription_supply
    WHERE acute_class IS NOT NULL AND start_date IS NOT NULL
)
SELECT patient_key, month, acute_class,
       CAST(ROUND(SUM(exposure)) AS INTEGER) AS exposure_days,
       ROUND(SUM(supply), 1) AS supply_days,
       SUM(started) AS prescriptions,
       SUM(unknown) AS unknown_supply_prescriptions,
       CAST(julianday(date(month || '-01', '+1 month')) - julianday(month || '-01') AS INTEGER) AS days_in_month
FROM facts
GROUP BY patient_key, acute_class, month;

-- Patients over the ICHD-3 medication-overuse thresholds from prescribed
-- exposure, one row per run of consecutive qualifying months.
CREATE VIEW v_moh_risk AS
WITH RECURSIVE
cfg AS (
    SELECT ',' || (SELECT value FROM analyst_setting WHERE key = 'moh_classes_10') || ',' AS c10,
           ',' || (SELECT value FROM analyst_setting WHERE key = 'moh_classes_15') || ',' AS c15,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_days_10') AS d10,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_days_15') AS d15,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_min_months') AS min_months
),
-- Days on which any overuse-relevant class was prescribed (ICHD-3 8.2.6,
-- several classes none of which alone is overused).
iv AS (
    SELECT patient_key, julianday(start_date) AS s, julianday(end_date) AS e
    FROM v_prescription_supply, cfg
    WHERE end_date > start_date
      AND (instr(cfg.c10, ',' || acute_class || ',') > 0 OR instr(cfg.c15, ',' || acute_class || ',') > 0)
),
ordered AS (
    SELECT iv.*, MAX(e) OVER (PARTITION BY patient_key ORDER BY s, e
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM iv
),
islands AS (
    SELECT ordered.*, SUM(CASE WHEN prev_end IS NULL OR s > prev_end THEN 1 ELSE 0 END)
               OVER (PARTITION BY patient_key ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island
    FROM ordered
),
merged AS (
    SELECT patient_key, MIN(s) AS s, MAX(e) AS e FROM islands GROUP BY patient_key, island
),
split AS (
    SELECT patient_key, julianday(date(s, 'start of month')) AS m, s, e FROM merged
    UNION ALL
    SELECT patient_key, julianday(date(m, '+1 month')), s, e FROM split WHERE julianday(date(m, '+1 month')) < e
),
any_days AS (
    SELECT patient_key, strftime('%Y-%m', m) AS month,
           CAST(ROUND(SUM(MIN(e, julianday(date(m, '+1 month'))) - MAX(s, m))) AS INTEGER) AS days
    FROM split GROUP BY 1, 2
),
monthly AS MATERIALIZED (
    SELECT x.patient_key, x.month, x.acute_class, x.exposure_days,
           instr(cfg.c10, ',' || x.acute_class || ',') > 0 AS in10,
           instr(cfg.c15, ',' || x.acute_class || ',') > 0 AS in15
    FROM v_acute_exposure_monthly x, cfg
),
single AS (
    SELECT m.patient_key, m.month, m.acute_class, m.exposure_days
    FROM monthly m, cfg
    WHERE (m.in10 AND m.exposure_days >= cfg.d10) OR (m.in15 AND m.exposure_days >= cfg.d15)
),
-- Per patient and month: days with any relevant class, how many classes,
-- and whether one class alone is over its threshold (then 8.2.6 does not
-- apply). Grouped in one pass rather than joined.
month_facts AS (
    SELECT patient_key, month, MAX(any_days) AS any_days, SUM(present) AS classes, MAX(alone) AS alone
    FROM (
        SELECT patient_key, month, days AS any_days, 0 AS present, 0 AS alone FROM any_days
        UNION ALL
        SELECT m.patient_key, m.month, 0, m.exposure_days > 0 AND (m.in10 OR m.in15),
               (m.in10 AND m.exposure_days >= cfg.d10) OR (m.in15 AND m.exposure_days >= cfg.d15)
        FROM monthly m, cfg
    )
    GROUP BY patient_key, month
),
several AS (
    SELECT f.patient_key, f.month, 'several_classes' AS acute_class, f.any_days AS exposure_days
    FROM month_facts f, cfg
    WHERE f.any_days >= cfg.d10 AND f.classes >= 2 AND f.alone = 0
),
-- Consecutive months: month number minus its dense rank is constant
-- along a run (gaps and islands).
runs AS (
    SELECT t.*, idx - DENSE_RANK() OVER (PARTITION BY patient_key ORDER BY idx) AS run
    FROM (SELECT u.*, CAST(substr(month, 1, 4) AS INTEGER) * 12 + CAST(substr(month, 6, 2) AS INTEGER) AS idx
          FROM (SELECT * FROM single UNION ALL SELECT * FROM several) u) t
),
episodes AS (
    SELECT patient_key, run, MIN(month) AS first_month, MAX(month) AS last_month, COUNT(DISTINCT month) AS months,
           group_concat(DISTINCT acute_class) AS trigger_classes,
           json_group_array(json_object('month', month, 'class', acute_class, 'days', exposure_days)) AS trigger_months
    FROM (SELECT * FROM runs ORDER BY patient_key, run, acute_class, month)
    GROUP BY patient_key, run
)
SELECT e.patient_key, e.first_month, e.last_month, e.months, e.trigger_classes, e.trigger_months,
       'prescribed exposure, not use' AS basis
FROM episodes e, cfg
WHERE e.months >= cfg.min_months;

-- Each preventive trial: consecutive prescriptions (and botulinum toxin
-- injections) of one class.
CREATE VIEW v_preventive_history AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'trial_gap_days') AS gap,
           (SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'adequate_trial_weeks') AS weeks
),
-- A prescription with unknown supply still marks the day it was written;
-- a botulinum toxin injection (CPT 64615) covers 12 weeks (PREEMPT).
iv AS (
    SELECT patient_key, preventive_class AS drug_class, ingredient, status, status_reason_code, status_reason,
           supply_basis, julianday(start_date) AS s, julianday(COALESCE(end_date, start_date)) AS e, 'prescription' AS kind
    FROM v_prescription_supply
    WHERE preventive_class IS NOT NULL AND start_date IS NOT NULL
    UNION ALL
    SELECT patient_key, 'botulinum_toxin', 'botulinum toxin type a', status, NULL, NULL, 'procedure',
           julianday(date(substr(performed_start, 1, 10))), julianday(date(substr(performed_start, 1, 10), '+84 days')),
           'procedure'
    FROM procedure
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND procedure_kind = 'botulinum_toxin'
      AND COALESCE(status, '') NOT IN ('entered-in-error', 'not-done', 'preparation')
      AND date(substr(performed_start, 1, 10)) IS NOT NULL
),
ordered AS (
    SELECT iv.*, MAX(e) OVER (PARTITION BY patient_key, drug_class ORDER BY s, e
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM iv
),
islands AS (
    SELECT ordered.*, SUM(CASE WHEN prev_end IS NULL OR s > prev_end + cfg.gap THEN 1 ELSE 0 END)
               OVER (PARTITION BY patient_key, drug_class ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS trial
    FROM ordered, cfg
),
last_rx AS (
    SELECT patient_key, drug_class, trial, status AS last_status, e AS last_e,
           ROW_NUMBER() OVER (PARTITION BY patient_key, drug_class, trial ORDER BY s DESC, e DESC) AS rn
    FROM islands
),
ingredients AS (
    SELECT patient_key, drug_class, trial, group_concat(ingredient, ', ') AS ingredients
    FROM (SELECT DISTINCT patient_key, drug_class, trial, ingredient FROM islands
          WHERE ingredient IS NOT NULL ORDER BY patient_key, drug_class, trial, ingredient)
    GROUP BY patient_key, drug_class, trial
),
trials AS (
    SELECT i.patient_key, i.drug_class, i.trial, n.ingredients,
           date(MIN(i.s)) AS start_date, date(MAX(i.e)) AS supply_end, COUNT(*) AS prescriptions,
           SUM(i.supply_basis = 'unknown') AS unknown_supply,
           MAX(COALESCE(i.status_reason_code IN ('sintol', 'salg'), 0)
               OR lower(COALESCE(i.status_reason, '')) LIKE '%intoleran%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%adverse%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%side effect%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%allerg%') AS intolerance
    FROM islands i
    LEFT JOIN ingredients n ON n.patient_key = i.patient_key AND n.drug_class = i.drug_class AND n.trial = i.trial
    GROUP BY i.patient_key, i.drug_class, i.trial
),
shaped AS (
    SELECT t.*, l.last_status,
           CASE
               WHEN l.last_status = 'stopped' THEN 0
               WHEN t.supply_end > cfg.as_of THEN 1
               WHEN l.last_status IN ('active', 'on-hold') AND julianday(t.supply_end) + cfg.gap > julianday(cfg.as_of) THEN 1
               ELSE 0
           END AS ongoing,
           cfg.as_of, cfg.weeks
    FROM trials t
    JOIN last_rx l ON l.patient_key = t.patient_key AND l.drug_class = t.drug_class AND l.trial = t.trial AND l.rn = 1,
    cfg
)
SELECT patient_key, drug_class, trial AS trial_number, ingredients, start_date,
       CASE WHEN ongoing = 1 THEN NULL ELSE supply_end END AS end_date,
       supply_end, ongoing,
       CAST(julianday(CASE WHEN ongoing = 1 THEN MAX(as_of, start_date) ELSE supply_end END) - julianday(start_date) AS INTEGER) AS duration_days,
       ROUND((julianday(CASE WHEN ongoing = 1 THEN MAX(as_of, start_date) ELSE supply_end END) - julianday(start_date)) / 7.0, 1) AS duration_weeks,
       CASE WHEN julianday(CASE WHEN ongoing = 1 THEN MAX(as_of, start_date) ELSE supply_end END) - julianday(start_date) >= weeks * 7
            THEN 1 ELSE 0 END AS adequate,
       intolerance AS stopped_for_intolerance, prescriptions, unknown_supply AS unknown_supply_prescriptions, last_status
FROM shaped;

-- Patients ready for CGRP prior authorization, with the trials behind it.
CREATE VIEW v_cgrp_readiness AS
WITH
cfg AS (
    SELECT ',' || (SELECT value FROM analyst_setting WHERE key = 'cgrp_trial_classes') || ',' AS trial_classes,
           ',' || (SELECT value FROM analyst_setting WHERE key = 'cgrp_current_classes') || ',' AS current_classes,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'cgrp_min_classes') AS min_classes
),
evidence AS (
    SELECT h.* FROM v_preventive_history h, cfg
    WHERE instr(cfg.trial_classes, ',' || h.drug_class || ',') > 0
      AND (h.adequate = 1 OR h.stopped_for_intolerance = 1)
),
on_cgrp AS (
    SELECT DISTINCT h.patient_key FROM v_preventive_history h, cfg
    WHERE h.ongoing = 1 AND instr(cfg.current_classes, ',' || h.drug_class || ',') > 0
    UNION
    SELECT DISTINCT p.patient_key FROM v_prescription_supply p, cfg
    WHERE p.status IN ('active', 'on-hold') AND instr(cfg.current_classes, ',' || p.preventive_class || ',') > 0
),
per_patient AS (
    SELECT patient_key, COUNT(DISTINCT drug_class) AS n,
           json_group_array(json_object('drug_class', drug_class, 'trial_number', trial_number,
                                        'ingredients', ingredients, 'start_date', start_date,
                                        'end_date', end_date, 'duration_weeks', duration_weeks,
                                        'basis', CASE WHEN adequate = 1 THEN 'adequate_trial' ELSE 'intolerance' END)) AS evidence
    FROM (SELECT * FROM evidence ORDER BY patient_key, drug_class, trial_number)
    GROUP BY patient_key
),
class_list AS (
    SELECT patient_key, group_concat(drug_class, ',') AS classes
    FROM (SELECT DISTINCT patient_key, drug_class FROM evidence ORDER BY patient_key, drug_class)
    GROUP BY patient_key
),
migraine AS (
    SELECT DISTINCT patient_key FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL
      AND headache_type IN ('chronic_migraine', 'migraine_with_aura', 'migraine_without_aura',
                            'menstrual_migraine', 'hemiplegic_migraine', 'migraine')
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
)
SELECT pp.patient_key, pp.n AS qualifying_class_count, cl.classes AS qualifying_classes, pp.evidence,
       mg.patient_key IS NOT NULL AS has_migraine_diagnosis
FROM per_patient pp
JOIN class_list cl ON cl.patient_key = pp.patient_key
LEFT JOIN migraine mg ON mg.patient_key = pp.patient_key, cfg
WHERE pp.n >= cfg.min_classes
  AND pp.patient_key NOT IN (SELECT patient_key FROM on_cgrp);

-- Per patient (a Patient row or a sync_status row): headache-related
-- appointments over the last appointment_window_months.
CREATE VIEW v_appointment_adherence AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'appointment_window_months') AS months
),
win AS (
    SELECT date(as_of, '-' || months || ' months') AS window_start, as_of AS window_end FROM cfg
),
patients AS (
    SELECT patient_key FROM patient WHERE deleted_at IS NULL
    UNION SELECT patient_key FROM sync_status
),
appts AS (
    SELECT a.patient_key, a.status, date(substr(a.start, 1, 10)) AS day
    FROM appointment a
    WHERE a.deleted_at IS NULL AND a.is_headache_related = 1 AND a.patient_key IS NOT NULL
      AND COALESCE(a.status, '') <> 'entered-in-error'
),
counts AS (
    SELECT a.patient_key,
           SUM(a.day > win.window_start AND a.day <= win.window_end) AS appointments,
           SUM(a.day > win.window_start AND a.day <= win.window_end AND a.status IN ('booked', 'pending', 'proposed')) AS booked,
           SUM(a.day > win.window_start AND a.day <= win.window_end AND a.status IN ('fulfilled', 'arrived', 'checked-in')) AS fulfilled,
           SUM(a.day > win.window_start AND a.day <= win.window_end AND a.status = 'noshow') AS noshow,
           SUM(a.day > win.window_start AND a.day <= win.window_end AND a.status = 'cancelled') AS cancelled,
           SUM(a.day > win.window_end AND a.status IN ('booked', 'pending', 'proposed')) AS upcoming_booked
    FROM appts a, win GROUP BY a.patient_key
)
SELECT p.patient_key, win.window_start, win.window_end,
       COALESCE(c.appointments, 0) AS appointments, COALESCE(c.booked, 0) AS booked,
       COALESCE(c.fulfilled, 0) AS fulfilled, COALESCE(c.noshow, 0) AS noshow, COALESCE(c.cancelled, 0) AS cancelled,
       CASE WHEN c.fulfilled + c.noshow > 0 THEN ROUND(1.0 * c.noshow / (c.fulfilled + c.noshow), 3) END AS noshow_rate,
       COALESCE(c.upcoming_booked, 0) AS upcoming_booked
FROM patients p
CROSS JOIN win
LEFT JOIN counts c ON c.patient_key = p.patient_key;

-- Per patient, source and resource type: how old the newest successful
-- pull is, and whether there are rows at all.
CREATE VIEW v_sync_freshness AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), datetime('now')) AS now_at,
           (SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'stale_after_hours') AS stale_hours
),
data AS (
    SELECT source, patient_key, 'Patient' AS resource_type, SUM(deleted_at IS NULL) AS n, MAX(ingested_at) AS newest FROM patient GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'Condition', SUM(deleted_at IS NULL), MAX(ingested_at) FROM condition WHERE patient_key IS NOT NULL GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'MedicationRequest', SUM(deleted_at IS NULL), MAX(ingested_at) FROM medication_request WHERE patient_key IS NOT NULL GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'Appointment', SUM(deleted_at IS NULL), MAX(ingested_at) FROM appointment WHERE patient_key IS NOT NULL GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'Encounter', SUM(deleted_at IS NULL), MAX(ingested_at) FROM encounter WHERE patient_key IS NOT NULL GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'Observation', SUM(deleted_at IS NULL), MAX(ingested_at) FROM observation WHERE patient_key IS NOT NULL GROUP BY 1, 2
    UNION ALL SELECT source, patient_key, 'Procedure', SUM(deleted_at IS NULL), MAX(ingested_at) FROM procedure WHERE patient_key IS NOT NULL GROUP BY 1, 2
),
keys AS (
    SELECT source, patient_key, resource_type FROM sync_status WHERE resource_type <> '*'
    UNION SELECT source, patient_key, resource_type FROM data
),
joined AS (
    SELECT k.source, k.patient_key, k.resource_type, s.last_success_at, s.last_attempt_at, s.last_error,
           COALESCE(s.not_permitted, 0) AS not_permitted,
           COALESCE(s.needs_reauth, 0) OR COALESCE((SELECT w.needs_reauth FROM sync_status w WHERE w.source = k.source
               AND w.patient_key = k.patient_key AND w.resource_type = '*'), 0) AS needs_reauth,
           COALESCE(d.n, 0) AS current_rows, d.newest AS newest_ingested_at,
           ROUND((julianday(cfg.now_at) - julianday(s.last_success_at)) * 24, 1) AS age_hours,
           cfg.stale_hours
    FROM keys k
    LEFT JOIN sync_status s ON s.source = k.source AND s.patient_key = k.patient_key AND s.resource_type = k.resource_type
    LEFT JOIN data d ON d.source = k.source AND d.patient_key = k.patient_key AND d.resource_type = k.resource_type,
    cfg
)
SELECT source, patient_key, resource_type, last_success_at, age_hours, last_attempt_at, last_error,
       not_permitted, needs_reauth, current_rows, newest_ingested_at,
       CASE
           WHEN needs_reauth THEN 'needs_reauth'
           WHEN not_permitted THEN 'not_permitted'
           WHEN last_success_at IS NULL AND current_rows > 0 THEN 'ingested_only'
           WHEN last_success_at IS NULL THEN 'never_pulled'
           WHEN age_hours > stale_hours THEN 'stale'
           ELSE 'fresh'
       END AS freshness
FROM joined;

-- One row per patient: what a clinician wants on one line.
CREATE VIEW v_patient_summary AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of
),
patients AS (
    SELECT patient_key FROM patient WHERE deleted_at IS NULL
    UNION SELECT patient_key FROM sync_status
),
dx AS (
    SELECT c.patient_key, c.headache_type, t.specificity,
           CASE WHEN COALESCE(c.clinical_status, 'active') IN ('active', 'recurrence', 'relapse') THEN 1 ELSE 0 END AS is_active
    FROM condition c JOIN analyst_headache_type t ON t.headache_type = c.headache_type
    WHERE c.deleted_at IS NULL AND c.patient_key IS NOT NULL
      AND COALESCE(c.verification_status, '') NOT IN ('refuted', 'entered-in-error')
),
dx_pick AS (
    SELECT patient_key, headache_type,
           ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY is_active DESC, specificity) AS rn
    FROM dx WHERE headache_type <> 'medication_overuse'
),
dx_all AS (
    SELECT patient_key, group_concat(headache_type, ',') AS types, MAX(headache_type = 'medication_overuse') AS moh
    FROM (SELECT DISTINCT patient_key, headache_type, specificity FROM dx ORDER BY patient_key, specificity)
    GROUP BY patient_key
),
enc AS (
    SELECT patient_key, MIN(substr(period_start, 1, 10)) AS first_at, MAX(substr(period_start, 1, 10)) AS last_at
    FROM encounter
    WHERE deleted_at IS NULL AND is_headache_related = 1 AND patient_key IS NOT NULL
      AND COALESCE(status, '') NOT IN ('entered-in-error', 'cancelled', 'planned')
    GROUP BY patient_key
),
obs AS (
    SELECT patient_key, instrument, value_num, substr(effective_at, 1, 10) AS day,
           ROW_NUMBER() OVER (PARTITION BY patient_key, instrument ORDER BY effective_at DESC, id) AS rn
    FROM observation
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND value_num IS NOT NULL
      AND instrument IN ('pain_nrs', 'midas', 'hit6')
      AND COALESCE(status, '') NOT IN ('entered-in-error', 'cancelled')
),
last_obs AS (
    SELECT patient_key,
           MAX(CASE WHEN instrument = 'pain_nrs' THEN value_num END) AS pain,
           MAX(CASE WHEN instrument = 'pain_nrs' THEN day END) AS pain_at,
           MAX(CASE WHEN instrument = 'midas' THEN value_num END) AS midas,
           MAX(CASE WHEN instrument = 'midas' THEN day END) AS midas_at,
           MAX(CASE WHEN instrument = 'hit6' THEN value_num END) AS hit6,
           MAX(CASE WHEN instrument = 'hit6' THEN day END) AS hit6_at
    FROM obs WHERE rn = 1 GROUP BY patient_key
),
current_rx AS MATERIALIZED (
    -- Rimegepant as needed is acute, taken every other day it is preventive.
    SELECT DISTINCT patient_key, drug_class, COALESCE(ingredient, drug_class) AS ingredient,
           acute_class IS NOT NULL OR therapy_role = 'acute' AS is_acute,
           preventive_class IS NOT NULL AS is_preventive
    FROM v_prescription_supply WHERE status = 'active'
),
rx_acute AS (
    SELECT patient_key, group_concat(drug_class, ',') AS classes FROM (
        SELECT DISTINCT patient_key, drug_class FROM current_rx WHERE is_acute ORDER BY patient_key, drug_class)
    GROUP BY patient_key
),
rx_acute_meds AS (
    SELECT patient_key, group_concat(ingredient || ' (' || drug_class || ')', '; ') AS meds FROM (
        SELECT DISTINCT patient_key, drug_class, ingredient FROM current_rx WHERE is_acute ORDER BY patient_key, drug_class, ingredient)
    GROUP BY patient_key
),
rx_prev AS (
    SELECT patient_key, group_concat(drug_class, ',') AS classes FROM (
        SELECT DISTINCT patient_key, drug_class FROM current_rx WHERE is_preventive ORDER BY patient_key, drug_class)
    GROUP BY patient_key
),
rx_prev_meds AS (
    SELECT patient_key, group_concat(ingredient || ' (' || drug_class || ')', '; ') AS meds FROM (
        SELECT DISTINCT patient_key, drug_class, ingredient FROM current_rx WHERE is_preventive ORDER BY patient_key, drug_class, ingredient)
    GROUP BY patient_key
),
appt AS (
    SELECT a.patient_key, MAX(date(substr(a.start, 1, 10))) AS last_at
    FROM appointment a, cfg
    WHERE a.deleted_at IS NULL AND a.patient_key IS NOT NULL
      AND a.status IN ('fulfilled', 'arrived', 'checked-in') AND date(substr(a.start, 1, 10)) <= cfg.as_of
    GROUP BY a.patient_key
),
demo AS (
    SELECT patient_key, birth_year, sex,
           ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY ingested_at DESC, source) AS rn
    FROM patient WHERE deleted_at IS NULL
),
sync AS (
    SELECT patient_key, MAX(last_success_at) AS newest,
           MIN(CASE WHEN resource_type <> '*' THEN COALESCE(last_success_at, '') END) AS oldest,
           MAX(needs_reauth) AS needs_reauth
    FROM sync_status GROUP BY patient_key
)
SELECT p.patient_key, d.birth_year, d.sex,
       dp.headache_type, da.types AS headache_types, COALESCE(da.moh, 0) AS has_moh_diagnosis,
       enc.first_at AS first_headache_encounter, enc.last_at AS last_headache_encounter,
       ra.classes AS current_acute_classes, ram.meds AS current_acute_medications,
       rp.classes AS current_preventive_classes, rpm.meds AS current_preventive_medications,
       o.pain AS last_pain, o.pain_at AS last_pain_at, o.midas AS last_midas, o.midas_at AS last_midas_at,
       o.hit6 AS last_hit6, o.hit6_at AS last_hit6_at,
       appt.last_at AS last_appointment,
       CAST(julianday(cfg.as_of) - julianday(appt.last_at) AS INTEGER) AS days_since_last_appointment,
       sync.newest AS last_sync_success_at, NULLIF(sync.oldest, '') AS oldest_sync_success_at,
       COALESCE(sync.needs_reauth, 0) AS needs_reauth
FROM patients p
CROSS JOIN cfg
LEFT JOIN demo d ON d.patient_key = p.patient_key AND d.rn = 1
LEFT JOIN dx_pick dp ON dp.patient_key = p.patient_key AND dp.rn = 1
LEFT JOIN dx_all da ON da.patient_key = p.patient_key
LEFT JOIN enc ON enc.patient_key = p.patient_key
LEFT JOIN rx_acute ra ON ra.patient_key = p.patient_key
LEFT JOIN rx_acute_meds ram ON ram.patient_key = p.patient_key
LEFT JOIN rx_prev rp ON rp.patient_key = p.patient_key
LEFT JOIN rx_prev_meds rpm ON rpm.patient_key = p.patient_key
LEFT JOIN last_obs o ON o.patient_key = p.patient_key
LEFT JOIN appt ON appt.patient_key = p.patient_key
LEFT JOIN sync ON sync.patient_key = p.patient_key;
