-- Version 7: clinically correct analyst views (issue 13).
--
-- The version-3 views counted an as-needed prescription's days of supply as
-- days of intake, took an `active` status as "current" whatever its date,
-- ignored refills and doses of preventives and called a payer's step-therapy
-- rule "CGRP readiness". This migration drops those views and creates them
-- again under the rules below; every rule and its source is in
-- schema/README.md ("The analyst views").
--
--   * Exposure to as-needed acute drugs is bounded from the units dispensed
--     (ICHD-3 8.2 counts days of intake): max_days = units / units per
--     administration, min_days = units / most units a day; spread over the
--     interval to the next order of the class (else expectedSupplyDuration,
--     else prn_spread_days), capped at prn_spread_max_days. Scheduled acute
--     orders keep their days of supply. Refills are a separate upper bound.
--     Unknown quantity is unknown (unknown_days), never 0.
--   * Ophthalmic, otic and topical orders are never acute or preventive
--     headache drugs.
--   * "Current" means the supply (with refills, for scheduled drugs) reaches
--     as_of minus refill_gap_days, or for as-needed acute drugs an order in
--     the last prn_current_days. Deceased patients have nothing current.
--   * v_sync_freshness uses the real clock, never as_of.

DROP VIEW IF EXISTS v_patient_summary;
DROP VIEW IF EXISTS v_sync_freshness;
DROP VIEW IF EXISTS v_cgrp_readiness;
DROP VIEW IF EXISTS v_moh_risk;
DROP VIEW IF EXISTS v_acute_exposure_monthly;
DROP VIEW IF EXISTS v_preventive_history;
DROP VIEW IF EXISTS v_prescription_supply;

-- Settings: refills are no longer a switch (they always extend scheduled
-- preventives and are always a separate upper bound for acute orders).
DELETE FROM analyst_setting WHERE key = 'count_refills';
UPDATE analyst_setting
   SET meaning = 'acute classes overused at moh_days_10 or more days a month: ICHD-3 8.2.1 ergotamine, 8.2.2 triptan, 8.2.4 opioid, 8.2.5 combination analgesic'
 WHERE key = 'moh_classes_10';
UPDATE analyst_setting
   SET meaning = 'acute classes overused at moh_days_15 or more days a month: ICHD-3 8.2.3 non-opioid analgesics (paracetamol, NSAIDs including acetylsalicylic acid)'
 WHERE key = 'moh_classes_15';
UPDATE analyst_setting
   SET meaning = 'the days a month threshold for moh_classes_10, moh_other_classes (ICHD-3 8.2.8) and several classes together (ICHD-3 8.2.6)'
 WHERE key = 'moh_days_10';
UPDATE analyst_setting
   SET meaning = 'the days a month threshold for moh_classes_15 (ICHD-3 8.2.3)'
 WHERE key = 'moh_days_15';
UPDATE analyst_setting
   SET meaning = 'preventive drug classes whose trials count towards payer step therapy (v_payer_step_therapy)'
 WHERE key = 'cgrp_trial_classes';
UPDATE analyst_setting
   SET meaning = 'distinct preventive classes with an adequate trial (or documented intolerance) that payer step therapy asks for'
 WHERE key = 'cgrp_min_classes';
UPDATE analyst_setting
   SET meaning = 'preventive classes that mean the patient is currently on a CGRP-targeting preventive'
 WHERE key = 'cgrp_current_classes';

INSERT INTO analyst_setting (key, value, meaning) VALUES
    ('moh_other_classes', 'gepant,ditan', 'acute classes counted under ICHD-3 8.2.8 (other medication) at moh_days_10; empty leaves them out of v_moh_risk'),
    ('prn_spread_days', '30', 'days an as-needed acute order is spread over when there is no later order of its class and no expectedSupplyDuration'),
    ('prn_spread_max_days', '90', 'an as-needed acute order is never spread over more days than this'),
    ('refill_gap_days', '30', 'a scheduled supply (with refills) that ended less than this many days before as_of is still current'),
    ('prn_current_days', '180', 'an as-needed acute order authored less than this many days before as_of is current'),
    ('botulinum_cycle_days', '30', 'botulinum toxin orders and procedures less than this many days apart are one treatment cycle'),
    ('botulinum_min_cycles', '2', 'treatment cycles that make an adequate botulinum toxin trial (in chronic migraine)'),
    ('cgrp_candidate_midas', '11', 'a latest MIDAS score at or over this makes a migraine patient a CGRP candidate (MIDAS grade III, moderate disability)'),
    ('cgrp_candidate_hit6', '56', 'a latest HIT-6 score at or over this makes a migraine patient a CGRP candidate (substantial impact)'),
    ('cgrp_candidate_moh_states', 'meets,possible', 'current MOH states (v_moh_risk.current_state) that make a migraine patient a CGRP candidate');

-- The lowest daily dose at which a preventive counts as tried. Only drugs
-- for which the guideline dose range is clear are listed; a drug that is not
-- here has no dose criterion (its trial is judged on duration only).
CREATE TABLE analyst_min_effective_dose (
    ingredient   TEXT PRIMARY KEY,
    min_daily_mg REAL NOT NULL,
    source       TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO analyst_min_effective_dose (ingredient, min_daily_mg, source) VALUES
    ('topiramate', 50, 'AAN/AHS 2012 guideline (Silberstein et al., Neurology 2012), level A; trials 50-200 mg/day'),
    ('propranolol', 40, 'EFNS 2009 guideline (Evers et al.), 40-240 mg/day; AAN/AHS 2012 level A'),
    ('metoprolol', 50, 'EFNS 2009 guideline, 50-200 mg/day; AAN/AHS 2012 level A'),
    ('timolol', 20, 'FDA label (timolol maleate tablets, migraine): 10 mg twice daily, 20-30 mg/day'),
    ('divalproex', 500, 'EFNS 2009 guideline, 500-1800 mg/day; AAN/AHS 2012 level A'),
    ('valproic acid', 500, 'EFNS 2009 guideline, 500-1800 mg/day; AAN/AHS 2012 level A'),
    ('valproate', 500, 'EFNS 2009 guideline, 500-1800 mg/day; AAN/AHS 2012 level A'),
    ('amitriptyline', 10, 'AAN/AHS 2012 level B; clinical practice starts at 10 mg at night, below that is not a treatment dose'),
    ('venlafaxine', 75, 'AAN/AHS 2012 level B; trials 75-150 mg/day'),
    ('candesartan', 16, 'Tronvik et al., JAMA 2003 (16 mg/day); EFNS 2009'),
    ('flunarizine', 5, 'EFNS 2009 guideline, 5-10 mg/day');

-- Each prescription that counts, with its class roles, its supply and what
-- it can add to acute exposure. The base of every medication view.
CREATE VIEW v_prescription_supply AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'refill_gap_days'), 30) AS refill_gap,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'prn_current_days'), 180) AS prn_current
),
dead AS (
    SELECT patient_key FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
),
base AS (
    SELECT m.source, m.id, m.patient_key, m.drug_class, m.therapy_role, m.ingredient, m.as_needed, m.status,
           m.status_reason_code, m.status_reason, m.refills, m.route, m.quantity, m.dose_quantity, m.doses_per_day,
           m.max_units_per_day, m.strength_mg, m.contains_opioid, m.contains_butalbital, m.days_supply,
           -- Eye drops, ear drops and skin products act locally: never a headache drug.
           COALESCE(m.route, '') IN ('ophthalmic', 'otic', 'topical') AS local_route,
           -- Low-dose aspirin (162 mg or less a unit) is antiplatelet, not an analgesic.
           COALESCE(m.ingredient, '') IN ('aspirin', 'acetylsalicylic acid') AND m.strength_mg <= 162 AS low_dose_aspirin,
           date(substr(m.authored_on, 1, 10)) AS start_date,
           CASE WHEN m.days_supply > 0 THEN m.days_supply
                WHEN m.quantity > 0 AND m.doses_per_day > 0 THEN m.quantity / m.doses_per_day END AS fill_days,
           CASE WHEN m.days_supply > 0 THEN 'expected_supply_duration'
                WHEN m.quantity > 0 AND m.doses_per_day > 0 THEN 'quantity_per_doses_per_day'
                ELSE 'unknown' END AS supply_basis
    FROM medication_request m
    WHERE m.deleted_at IS NULL
      AND m.patient_key IS NOT NULL
      AND (m.drug_class IS NOT NULL OR m.contains_opioid = 1 OR m.contains_butalbital = 1)
      AND COALESCE(m.status, '') NOT IN ('entered-in-error', 'cancelled', 'draft')
      AND COALESCE(m.intent, '') NOT IN ('proposal', 'plan', 'option')
),
classed AS (
    SELECT base.*,
           CASE
               WHEN local_route OR low_dose_aspirin THEN NULL
               -- ICHD-3 8.2.5: a simple analgesic combined with an opioid or butalbital is a combination analgesic.
               WHEN drug_class IN ('simple_analgesic', 'nsaid') AND (contains_opioid = 1 OR contains_butalbital = 1)
                   THEN 'combination_analgesic'
               WHEN drug_class IN ('simple_analgesic', 'nsaid') THEN 'simple_analgesic_nsaid'
               WHEN drug_class IN ('triptan', 'ergot', 'opioid', 'combination_analgesic', 'ditan') THEN drug_class
               WHEN drug_class = 'gepant' AND therapy_role = 'acute' THEN 'gepant'
               WHEN drug_class = 'gepant' AND therapy_role = 'acute_and_preventive' AND COALESCE(as_needed, 1) = 1 THEN 'gepant'
               WHEN drug_class IS NULL AND contains_butalbital = 1 THEN 'combination_analgesic'
               WHEN drug_class IS NULL AND contains_opioid = 1 THEN 'opioid'
           END AS acute_class,
           CASE
               WHEN local_route THEN NULL
               -- Taken as needed, a preventive drug is not prevention (propranolol for stage fright).
               WHEN therapy_role = 'preventive' AND COALESCE(as_needed, 0) = 0 THEN drug_class
               WHEN therapy_role = 'acute_and_preventive' AND as_needed = 0 THEN drug_class
           END AS preventive_class
    FROM base
),
exposed AS (
    SELECT classed.*,
           CASE
               WHEN acute_class IS NULL THEN NULL
               WHEN COALESCE(as_needed, 1) = 1 AND quantity > 0 THEN 'as_needed_units'
               WHEN COALESCE(as_needed, 1) = 1 THEN 'unknown_quantity'
               WHEN fill_days IS NOT NULL THEN 'scheduled_supply'
               ELSE 'unknown_quantity'
           END AS acute_basis
    FROM classed
)
SELECT e.source, e.id, e.patient_key, e.drug_class, e.acute_class, e.preventive_class,
       e.therapy_role, e.ingredient, e.status, e.status_reason_code, e.status_reason, e.start_date, e.supply_basis,
       e.fill_days, e.refills,
       -- Refills are a separate upper bound: supply_days is one fill.
       e.fill_days AS supply_days,
       CASE WHEN e.start_date IS NOT NULL AND e.fill_days IS NOT NULL THEN
           date(e.start_date, '+' || (CAST(e.fill_days AS INTEGER) + (e.fill_days > CAST(e.fill_days AS INTEGER))) || ' days')
       END AS end_date,
       -- With every refill filled back to back; a stopped order gets no refills.
       CASE WHEN e.start_date IS NOT NULL AND e.fill_days IS NOT NULL THEN
           date(julianday(e.start_date) + CAST(e.fill_days * (1 + CASE WHEN e.status = 'stopped' THEN 0 ELSE COALESCE(e.refills, 0) END)
                                               + 0.999999 AS INTEGER))
       END AS end_date_with_refills,
       e.days_supply AS expected_supply_days, e.as_needed, e.route, e.quantity AS units_dispensed,
       e.dose_quantity AS units_per_dose, e.max_units_per_day, e.strength_mg,
       CASE WHEN e.strength_mg > 0 AND e.dose_quantity > 0 AND e.doses_per_day > 0
            THEN ROUND(e.strength_mg * e.dose_quantity * e.doses_per_day, 1) END AS daily_dose_mg,
       e.contains_opioid, e.contains_butalbital, e.acute_basis,
       -- Days of intake one order can account for (ICHD-3 8.2 counts days of intake).
       CASE e.acute_basis
           WHEN 'as_needed_units' THEN CASE WHEN e.max_units_per_day > 0 THEN
               CAST(e.quantity / e.max_units_per_day + 0.999999 AS INTEGER) END
           WHEN 'scheduled_supply' THEN ROUND(e.fill_days, 2)
       END AS acute_min_days,
       CASE e.acute_basis
           WHEN 'as_needed_units' THEN
               CAST(e.quantity / CASE WHEN e.dose_quantity > 0 THEN e.dose_quantity ELSE 1 END + 0.999999 AS INTEGER)
           WHEN 'scheduled_supply' THEN ROUND(e.fill_days, 2)
       END AS acute_max_days,
       CASE
           WHEN e.patient_key IN (SELECT patient_key FROM dead) THEN 0
           WHEN e.start_date IS NULL OR e.start_date > cfg.as_of OR e.status = 'stopped' THEN 0
           WHEN e.acute_class IS NOT NULL AND COALESCE(e.as_needed, 1) = 1 THEN
               julianday(e.start_date) > julianday(cfg.as_of) - cfg.prn_current
           WHEN e.fill_days IS NULL THEN julianday(e.start_date) > julianday(cfg.as_of) - cfg.refill_gap
           ELSE julianday(e.start_date) + e.fill_days * (1 + COALESCE(e.refills, 0)) + cfg.refill_gap > julianday(cfg.as_of)
       END AS is_current
FROM exposed e, cfg;

-- Per patient, calendar month and acute class: the fewest and the most days
-- of intake the prescriptions allow, plus one row per month for all the
-- overuse-relevant classes together (acute_class 'any').
CREATE VIEW v_acute_exposure_monthly AS
WITH RECURSIVE
cfg AS (
    SELECT COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'prn_spread_days'), 30) AS prn_default,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'prn_spread_max_days'), 90) AS prn_max,
           ',' || COALESCE((SELECT value FROM analyst_setting WHERE key = 'moh_classes_10'), '') || ',' ||
               COALESCE((SELECT value FROM analyst_setting WHERE key = 'moh_other_classes'), '') || ',' AS c10,
           ',' || COALESCE((SELECT value FROM analyst_setting WHERE key = 'moh_classes_15'), '') || ',' AS c15,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_days_10'), 10) AS d10,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_days_15'), 15) AS d15
),
rx AS (
    SELECT patient_key, acute_class, acute_basis, expected_supply_days, fill_days, refills, acute_min_days,
           acute_max_days, julianday(start_date) AS s, start_date
    FROM v_prescription_supply
    WHERE acute_class IS NOT NULL AND start_date IS NOT NULL
),
-- The next order of the same class on a later day.
nexted AS (
    SELECT rx.*, MIN(s) OVER (PARTITION BY patient_key, acute_class ORDER BY s
                              RANGE BETWEEN 0.5 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_s
    FROM rx
),
-- w: the days an order is spread over. Scheduled: its days of supply. As
-- needed: to the next order of the class, else expectedSupplyDuration,
-- else prn_spread_days; never more than prn_spread_max_days.
sized AS (
    SELECT patient_key, acute_class, acute_basis, s, acute_min_days AS tmin, acute_max_days AS tmax,
           MIN(COALESCE(refills, 0), 12) AS r,
           CASE WHEN acute_basis = 'scheduled_supply' THEN fill_days
                ELSE MIN(cfg.prn_max, MAX(1, COALESCE(next_s - s, NULLIF(expected_supply_days, 0), cfg.prn_default))) END AS w
    FROM nexted, cfg
),
-- k = 0 is the order itself; k = 1.. its refills, back to back (upper bound only).
fills AS (
    SELECT patient_key, acute_class, acute_basis, s, w, tmin, tmax, r, 0 AS k FROM sized
    UNION ALL
    SELECT patient_key, acute_class, acute_basis, s, w, tmin, tmax, r, k + 1 FROM fills
    WHERE k < r AND acute_basis <> 'unknown_quantity'
),
-- Scheduled orders: their days are calendar days, so overlapping fills
-- count once (distinct days), per class and over the relevant classes.
sched_iv AS (
    SELECT patient_key, acute_class AS grp, s AS a, s + w AS b FROM sized WHERE acute_basis = 'scheduled_supply'
    UNION ALL
    SELECT z.patient_key, 'any', z.s, z.s + z.w FROM sized z, cfg
    WHERE z.acute_basis = 'scheduled_supply'
      AND (instr(cfg.c10, ',' || z.acute_class || ',') > 0 OR instr(cfg.c15, ',' || z.acute_class || ',') > 0)
),
sched_ordered AS (
    SELECT sched_iv.*, MAX(b) OVER (PARTITION BY patient_key, grp ORDER BY a, b
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_b
    FROM sched_iv
),
sched_islands AS (
    SELECT sched_ordered.*, SUM(CASE WHEN prev_b IS NULL OR a > prev_b THEN 1 ELSE 0 END)
               OVER (PARTITION BY patient_key, grp ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS island
    FROM sched_ordered
),
-- Every interval an order or a merged scheduled run covers, with its first
-- and last calendar month as a number (year * 12 + month - 1).
intervals AS MATERIALIZED (
    SELECT patient_key, acute_class AS grp, acute_basis, w, tmin, tmax, k, s + k * w AS a, s + (k + 1) * w AS b
    FROM fills
    UNION ALL
    SELECT patient_key, grp, 'scheduled_run', NULL, NULL, NULL, 0, MIN(a), MAX(b)
    FROM sched_islands GROUP BY patient_key, grp, island
),
spans AS MATERIALIZED (
    SELECT intervals.*,
           CAST(strftime('%Y', a) AS INTEGER) * 12 + CAST(strftime('%m', a) AS INTEGER) - 1 AS i0,
           CAST(strftime('%Y', b - 1e-6) AS INTEGER) * 12 + CAST(strftime('%m', b - 1e-6) AS INTEGER) - 1 AS i1
    FROM intervals WHERE b > a
),
bounds AS (
    SELECT MIN(i0) AS lo, MAX(i1) AS hi, MAX(i1 - i0) AS span FROM spans
),
month_numbers(idx) AS (
    SELECT lo FROM bounds WHERE lo IS NOT NULL
    UNION ALL
    SELECT idx + 1 FROM month_numbers, bounds WHERE idx < bounds.hi
),
calendar AS MATERIALIZED (
    SELECT idx, julianday(printf('%04d-%02d-01', idx / 12, idx % 12 + 1)) AS ms,
           julianday(printf('%04d-%02d-01', idx / 12, idx % 12 + 1), '+1 month') AS me
    FROM month_numbers
),
offsets(o) AS (
    SELECT 0 UNION ALL SELECT o + 1 FROM offsets, bounds WHERE o < bounds.span
),
-- The days of each interval in each month. As-needed orders are spread
-- evenly over their interval.
shares AS (
    SELECT sp.patient_key, sp.grp, c.idx, sp.acute_basis, sp.k, sp.w, sp.tmin, sp.tmax, c.me - c.ms AS dim,
           MIN(sp.b, c.me) - MAX(sp.a, c.ms) AS ov
    FROM spans sp
    JOIN offsets o ON o.o <= sp.i1 - sp.i0
    JOIN calendar c ON c.idx = sp.i0 + o.o
),
facts AS (
    SELECT patient_key, grp, idx, dim,
           CASE WHEN k = 0 AND acute_basis = 'as_needed_units' AND tmin IS NOT NULL THEN tmin * ov / w ELSE 0 END AS mn,
           CASE WHEN k = 0 AND acute_basis = 'as_needed_units' THEN tmax * ov / w ELSE 0 END AS mx,
           CASE WHEN k > 0 AND tmax IS NOT NULL THEN tmax * ov / w ELSE 0 END AS refill_mx,
           CASE WHEN k = 0 AND acute_basis = 'unknown_quantity' THEN ov ELSE 0 END AS unk,
           CASE WHEN acute_basis = 'scheduled_run' THEN ov ELSE 0 END AS sched,
           k = 0 AND acute_basis = 'as_needed_units' AS b_prn,
           k = 0 AND acute_basis = 'scheduled_supply' AS b_sched,
           k = 0 AND acute_basis = 'unknown_quantity' AS b_unk,
           0 AS started, 0 AS started_unknown
    FROM shares WHERE ov > 0
    UNION ALL
    SELECT patient_key, acute_class, CAST(substr(start_date, 1, 4) AS INTEGER) * 12 + CAST(substr(start_date, 6, 2) AS INTEGER) - 1,
           NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, acute_basis = 'unknown_quantity'
    FROM rx
),
per_class AS (
    SELECT f.patient_key, f.idx, f.grp AS acute_class,
           SUM(mn) AS mn, SUM(mx) AS mx, SUM(refill_mx) AS refill_mx, SUM(unk) AS unk, SUM(sched) AS sched,
           MAX(b_prn) AS b_prn, MAX(b_sched) AS b_sched, MAX(b_unk) AS b_unk,
           SUM(started) AS prescriptions, SUM(started_unknown) AS unknown_quantity_prescriptions,
           CAST(ROUND(MAX(dim)) AS INTEGER) AS dim
    FROM facts f
    WHERE f.grp <> 'any'
    GROUP BY f.patient_key, f.idx, f.grp
),
-- Whole days: the lower bound rounds down, the upper bounds round up, and
-- no bound exceeds the month's days. Scheduled days and as-needed days of
-- one class may fall on the same days: the lower bound takes the larger,
-- the upper bound the sum.
rounded AS (
    SELECT p.patient_key, p.idx, p.acute_class, p.prescriptions, p.unknown_quantity_prescriptions, p.sched, p.mx,
           p.refill_mx, p.unk,
           CASE WHEN instr(cfg.c10, ',' || p.acute_class || ',') > 0 THEN cfg.d10
                WHEN instr(cfg.c15, ',' || p.acute_class || ',') > 0 THEN cfg.d15 END AS threshold_days,
           COALESCE(p.dim, CAST(julianday(printf('%04d-%02d-01', p.idx / 12, p.idx % 12 + 1), '+1 month')
                               - julianday(printf('%04d-%02d-01', p.idx / 12, p.idx % 12 + 1)) AS INTEGER)) AS dim,
           rtrim(CASE WHEN p.b_prn THEN 'as_needed_units,' ELSE '' END ||
                 CASE WHEN p.b_sched THEN 'scheduled_supply,' ELSE '' END ||
                 CASE WHEN p.b_unk THEN 'unknown_quantity,' ELSE '' END, ',') AS basis,
           MAX(CAST(p.sched + 1e-6 AS INTEGER), CAST(p.mn + 1e-6 AS INTEGER)) AS lo,
           p.sched + p.mx - 1e-6 AS hi, p.sched + p.mx + p.refill_mx - 1e-6 AS hi_r, p.unk - 1e-6 AS hi_u
    FROM per_class p, cfg
),
classes AS (
    SELECT patient_key, idx, acute_class, prescriptions, unknown_quantity_prescriptions, sched, mx, refill_mx, unk,
           threshold_days, dim, basis,
           MIN(dim, lo) AS min_days,
           MIN(dim, CAST(hi AS INTEGER) + (hi > CAST(hi AS INTEGER))) AS known_max_days,
           MIN(dim, CAST(hi_r AS INTEGER) + (hi_r > CAST(hi_r AS INTEGER))) AS max_days_with_refills,
           MAX(0, MIN(dim, CAST(hi_u AS INTEGER) + (hi_u > CAST(hi_u AS INTEGER)))) AS unknown_days
    FROM rounded
),
-- All overuse-relevant classes together, on distinct days (ICHD-3 8.2.6
-- counts the total days): at least the scheduled days and the largest
-- class's days, at most the scheduled days plus every as-needed day.
any_sched AS (
    SELECT patient_key, idx, SUM(sched) AS sched FROM facts WHERE grp = 'any' GROUP BY patient_key, idx
),
any_row AS (
    SELECT r.patient_key, r.idx, MAX(r.dim) AS dim,
           SUM(r.prescriptions) AS prescriptions, SUM(r.unknown_quantity_prescriptions) AS unknown_quantity_prescriptions,
           MAX(r.min_days) AS class_min, SUM(r.mx) AS mx, SUM(r.refill_mx) AS refill_mx, SUM(r.unk) AS unk,
           group_concat(r.acute_class, ',') AS classes
    FROM (SELECT * FROM classes WHERE threshold_days IS NOT NULL ORDER BY patient_key, idx, acute_class) r
    GROUP BY r.patient_key, r.idx
),
any_bounds AS (
    SELECT a.patient_key, a.idx, a.dim, a.prescriptions, a.unknown_quantity_prescriptions, a.classes,
           MAX(a.class_min, CAST(COALESCE(s.sched, 0) + 1e-6 AS INTEGER)) AS lo,
           COALESCE(s.sched, 0) + a.mx - 1e-6 AS hi, COALESCE(s.sched, 0) + a.mx + a.refill_mx - 1e-6 AS hi_r,
           a.unk - 1e-6 AS hi_u
    FROM any_row a LEFT JOIN any_sched s ON s.patient_key = a.patient_key AND s.idx = a.idx
)
SELECT patient_key, printf('%04d-%02d', idx / 12, idx % 12 + 1) AS month, acute_class, min_days,
       CASE WHEN unknown_days > 0 THEN NULL ELSE known_max_days END AS max_days,
       known_max_days, unknown_days, max_days_with_refills, basis, acute_class AS classes, threshold_days,
       dim AS days_in_month, prescriptions, unknown_quantity_prescriptions
FROM classes
UNION ALL
SELECT patient_key, printf('%04d-%02d', idx / 12, idx % 12 + 1), 'any', MIN(dim, lo),
       CASE WHEN hi_u > 0 THEN NULL ELSE MIN(dim, CAST(hi AS INTEGER) + (hi > CAST(hi AS INTEGER))) END,
       MIN(dim, CAST(hi AS INTEGER) + (hi > CAST(hi AS INTEGER))),
       MAX(0, MIN(dim, CAST(hi_u AS INTEGER) + (hi_u > CAST(hi_u AS INTEGER)))),
       MIN(dim, CAST(hi_r AS INTEGER) + (hi_r > CAST(hi_r AS INTEGER))), NULL, classes, cfg.d10,
       dim, prescriptions, unknown_quantity_prescriptions
FROM any_bounds, cfg;

-- One row per patient with a headache diagnosis (ICHD-3 8.2 criterion A
-- needs a pre-existing headache disorder) and any acute prescription: the
-- medication-overuse state from prescribed exposure.
CREATE VIEW v_moh_risk AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_days_10'), 10) AS d10,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'moh_min_months'), 4) AS min_months
),
headache AS (
    SELECT DISTINCT patient_key FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND headache_type IS NOT NULL
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
),
eligible AS (
    SELECT DISTINCT p.patient_key FROM v_prescription_supply p
    WHERE p.acute_class IS NOT NULL AND p.patient_key IN (SELECT patient_key FROM headache)
),
dead AS (
    SELECT DISTINCT patient_key FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
),
ex AS MATERIALIZED (
    SELECT x.*, CAST(substr(x.month, 1, 4) AS INTEGER) * 12 + CAST(substr(x.month, 6, 2) AS INTEGER) - 1 AS idx
    FROM v_acute_exposure_monthly x
    WHERE x.threshold_days IS NOT NULL AND x.patient_key IN (SELECT patient_key FROM eligible)
),
-- Level per class and month: 3 the fewest days reach the threshold, 2 only
-- the most days do, 1 only unknown quantities could, 0 below.
class_levels AS (
    SELECT patient_key, month, idx, acute_class AS cls, min_days, known_max_days, unknown_days, threshold_days,
           CASE WHEN min_days >= threshold_days THEN 3
                WHEN known_max_days >= threshold_days THEN 2
                WHEN unknown_days > 0 AND known_max_days + unknown_days >= threshold_days THEN 1
                ELSE 0 END AS level
    FROM ex WHERE acute_class <> 'any'
),
-- ICHD-3 8.2.6: two or more classes on a total of >= moh_days_10 days.
several AS (
    SELECT a.patient_key, a.month, a.idx, 'several_classes' AS cls, a.min_days, a.known_max_days, a.unknown_days,
           a.threshold_days,
           CASE WHEN a.min_days >= a.threshold_days AND c.n_min >= 2 THEN 3
                WHEN a.known_max_days >= a.threshold_days AND c.n_max >= 2 THEN 2
                WHEN a.unknown_days > 0 AND a.known_max_days + a.unknown_days >= a.threshold_days AND c.n_any >= 2 THEN 1
                ELSE 0 END AS level
    FROM ex a
    JOIN (SELECT patient_key, month, SUM(min_days >= 1) AS n_min, SUM(known_max_days >= 1) AS n_max,
                 SUM(known_max_days >= 1 OR unknown_days >= 1) AS n_any
          FROM ex WHERE acute_class <> 'any' GROUP BY patient_key, month) c
      ON c.patient_key = a.patient_key AND c.month = a.month
    WHERE a.acute_class = 'any'
),
-- 8.2.6 is for classes not individually overused: a several-classes level
-- counts only above the best single class of the month.
single_best AS (
    SELECT patient_key, month, MAX(level) AS level FROM class_levels GROUP BY patient_key, month
),
levels AS MATERIALIZED (
    SELECT * FROM class_levels WHERE level > 0
    UNION ALL
    SELECT v.* FROM several v JOIN single_best b ON b.patient_key = v.patient_key AND b.month = v.month
    WHERE v.level > b.level
),
month_level AS (
    SELECT patient_key, month, idx, MAX(level) AS level FROM levels GROUP BY patient_key, month
),
ladder(lv) AS (VALUES (1), (2), (3)),
-- Runs of consecutive months at or above each level (gaps and islands).
at_level AS (
    SELECT m.patient_key, m.month, m.idx, l.lv,
           m.idx - ROW_NUMBER() OVER (PARTITION BY m.patient_key, l.lv ORDER BY m.idx) AS run
    FROM month_level m JOIN ladder l ON m.level >= l.lv
),
runs AS (
    SELECT patient_key, lv, run, MIN(month) AS first_month, MAX(month) AS last_month, MIN(idx) AS first_idx,
           MAX(idx) AS last_idx, COUNT(*) AS months
    FROM at_level GROUP BY patient_key, lv, run
),
best AS MATERIALIZED (
    SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.patient_key ORDER BY r.lv DESC, r.last_month DESC) AS rn
    FROM runs r, cfg WHERE r.months >= cfg.min_months
),
-- The window of the last moh_min_months complete months up to as_of (a
-- month that is not over cannot be judged): every one of its months must
-- reach a level for the window to have it.
cur AS (
    SELECT CAST(strftime('%Y', last_day) AS INTEGER) * 12 + CAST(strftime('%m', last_day) AS INTEGER) - 1 AS last_idx,
           min_months, last_day
    FROM (SELECT date(as_of, '+1 day', 'start of month', '-1 day') AS last_day, min_months FROM cfg)
),
current_level AS (
    SELECT m.patient_key, CASE WHEN COUNT(*) = cur.min_months THEN MIN(m.level) ELSE 0 END AS level
    FROM month_level m, cur
    WHERE m.idx > cur.last_idx - cur.min_months AND m.idx <= cur.last_idx
    GROUP BY m.patient_key
),
named(lv, name) AS (VALUES (0, 'below'), (1, 'indeterminate'), (2, 'possible'), (3, 'meets')),
chosen AS MATERIALIZED (
    SELECT patient_key, lv, first_month, last_month, first_idx, last_idx, months FROM best WHERE rn = 1
),
state_rows AS (
    SELECT l.patient_key, l.cls, l.month, l.min_days, l.known_max_days, l.unknown_days, l.threshold_days
    FROM levels l JOIN chosen b ON b.patient_key = l.patient_key
    WHERE l.idx BETWEEN b.first_idx AND b.last_idx AND l.level >= b.lv
),
evidence AS (
    SELECT patient_key, group_concat(DISTINCT cls) AS classes,
           json_group_array(json_object('month', month, 'class', cls, 'min_days', min_days,
                                        'max_days', known_max_days, 'unknown_days', unknown_days,
                                        'threshold_days', threshold_days)) AS evidence
    FROM (SELECT * FROM state_rows ORDER BY patient_key, cls, month)
    GROUP BY patient_key
)
SELECT e.patient_key,
       sn.name AS state,
       CASE WHEN e.patient_key IN (SELECT patient_key FROM dead) THEN NULL ELSE cn.name END AS current_state,
       b.first_month AS window_start_month, b.last_month AS window_end_month, b.months, ev.classes,
       strftime('%Y-%m', date(cur.last_day, 'start of month', '-' || (cur.min_months - 1) || ' months')) AS current_window_start_month,
       strftime('%Y-%m', cur.last_day) AS current_window_end_month,
       ev.evidence, e.patient_key IN (SELECT patient_key FROM dead) AS deceased,
       'prescribed exposure, not use' AS basis
FROM eligible e
CROSS JOIN cfg
CROSS JOIN cur
LEFT JOIN chosen b ON b.patient_key = e.patient_key
LEFT JOIN evidence ev ON ev.patient_key = e.patient_key
LEFT JOIN current_level c ON c.patient_key = e.patient_key
JOIN named sn ON sn.lv = COALESCE(b.lv, 0)
JOIN named cn ON cn.lv = COALESCE(c.level, 0);

-- Each preventive trial: consecutive prescriptions of one class, or
-- botulinum toxin treatment cycles.
CREATE VIEW v_preventive_history AS
WITH
cfg AS (
    SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')) AS as_of,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'trial_gap_days'), 30) AS gap,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'adequate_trial_weeks'), 8) AS weeks,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'refill_gap_days'), 30) AS refill_gap,
           COALESCE((SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'botulinum_cycle_days'), 30) AS cycle_days,
           COALESCE((SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'botulinum_min_cycles'), 2) AS min_cycles
),
dead AS (
    SELECT patient_key, MIN(julianday(date(substr(deceased_at, 1, 10)))) AS died FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
    GROUP BY patient_key
),
chronic AS (
    SELECT DISTINCT patient_key FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND headache_type = 'chronic_migraine'
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
),
rx AS (
    SELECT p.*, julianday(p.start_date) AS s,
           MIN(julianday(p.start_date)) OVER (PARTITION BY p.patient_key, COALESCE(p.ingredient, p.drug_class)
                                             ORDER BY julianday(p.start_date)
                                             RANGE BETWEEN 0.5 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_same,
           d.min_daily_mg
    FROM v_prescription_supply p
    LEFT JOIN analyst_min_effective_dose d ON d.ingredient = p.ingredient
    WHERE p.preventive_class IS NOT NULL AND p.preventive_class <> 'botulinum_toxin' AND p.start_date IS NOT NULL
),
-- Botulinum toxin: orders and procedures (CPT 64615, HCPCS J0585; never
-- 'botulinum_toxin_other') less than botulinum_cycle_days apart are one
-- treatment cycle, which covers 12 weeks (PREEMPT).
btx_events AS (
    SELECT patient_key, julianday(start_date) AS s, status FROM v_prescription_supply
    WHERE preventive_class = 'botulinum_toxin' AND start_date IS NOT NULL
    UNION ALL
    SELECT patient_key, julianday(date(substr(performed_start, 1, 10))), status FROM procedure
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND procedure_kind = 'botulinum_toxin'
      AND COALESCE(status, '') NOT IN ('entered-in-error', 'not-done', 'preparation')
      AND date(substr(performed_start, 1, 10)) IS NOT NULL
),
btx_marked AS (
    SELECT b.*, CASE WHEN LAG(s) OVER (PARTITION BY patient_key ORDER BY s) >= s - cfg.cycle_days THEN 0 ELSE 1 END AS new_cycle
    FROM btx_events b, cfg
),
btx_numbered AS (
    SELECT btx_marked.*, SUM(new_cycle) OVER (PARTITION BY patient_key ORDER BY s ROWS UNBOUNDED PRECEDING) AS cycle
    FROM btx_marked
),
btx_cycles AS (
    SELECT patient_key, MIN(s) AS s, MAX(status) AS status FROM btx_numbered GROUP BY patient_key, cycle
),
-- Scheduled preventives: the first fill, then refills back to back until
-- the next order of the same ingredient (a stopped order gets no refills).
iv AS (
    SELECT patient_key, preventive_class AS drug_class, ingredient, status, status_reason_code, status_reason,
           supply_basis, s,
           CASE WHEN fill_days IS NULL THEN s
                ELSE MIN(s + fill_days * (1 + CASE WHEN status = 'stopped' THEN 0 ELSE COALESCE(refills, 0) END),
                         MAX(s + fill_days, COALESCE(next_same, 1e9))) END AS e,
           daily_dose_mg, min_daily_mg,
           CASE WHEN daily_dose_mg IS NULL OR min_daily_mg IS NULL THEN NULL
                ELSE daily_dose_mg >= min_daily_mg - 1e-9 END AS dose_ok,
           0 AS is_cycle
    FROM rx
    UNION ALL
    SELECT patient_key, 'botulinum_toxin', 'botulinum toxin', status, NULL, NULL, 'treatment_cycle', s, s + 84,
           NULL, NULL, NULL, 1
    FROM btx_cycles
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
    SELECT patient_key, drug_class, trial, status AS last_status,
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
           MIN(i.s) AS s, MAX(i.e) AS e_supply, SUM(1 - i.is_cycle) AS prescriptions, SUM(i.is_cycle) AS cycles,
           SUM(i.supply_basis = 'unknown') AS unknown_supply, SUM(i.supply_basis <> 'unknown') AS known_supply,
           MAX(i.daily_dose_mg) AS daily_dose_mg, MAX(i.min_daily_mg) AS min_daily_mg,
           MAX(i.dose_ok) AS any_dose_ok, MIN(i.dose_ok) AS min_dose_ok, SUM(i.dose_ok IS NULL) AS dose_unknown,
           MAX(COALESCE(i.status_reason_code IN ('sintol', 'salg'), 0)
               OR lower(COALESCE(i.status_reason, '')) LIKE '%intoleran%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%adverse%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%side effect%'
               OR lower(COALESCE(i.status_reason, '')) LIKE '%allerg%') AS intolerance
    FROM islands i
    LEFT JOIN ingredients n ON n.patient_key = i.patient_key AND n.drug_class = i.drug_class AND n.trial = i.trial
    GROUP BY i.patient_key, i.drug_class, i.trial
),
-- Nothing is taken after death: a supply ends at the date of death when known.
capped AS (
    SELECT t.*, CASE WHEN d.died IS NOT NULL AND d.died < t.e_supply THEN MAX(d.died, t.s) ELSE t.e_supply END AS e
    FROM trials t LEFT JOIN dead d ON d.patient_key = t.patient_key
),
shaped AS (
    SELECT t.*, l.last_status, date(t.s) AS start_date, date(t.e) AS supply_end,
           CASE
               WHEN t.patient_key IN (SELECT patient_key FROM dead) THEN 0
               WHEN l.last_status IN ('stopped', 'cancelled') THEN 0
               WHEN t.e + cfg.refill_gap > julianday(cfg.as_of) AND t.s <= julianday(cfg.as_of) THEN 1
               ELSE 0
           END AS ongoing,
           t.patient_key IN (SELECT patient_key FROM chronic) AS chronic_migraine,
           -- Dose: met when a prescription reached the table's dose; not met
           -- when every dose is known and none did; else unknown.
           CASE WHEN t.any_dose_ok = 1 THEN 1
                WHEN t.any_dose_ok = 0 AND t.dose_unknown = 0 THEN 0 END AS dose_adequate,
           cfg.as_of, cfg.weeks, cfg.min_cycles
    FROM capped t
    JOIN last_rx l ON l.patient_key = t.patient_key AND l.drug_class = t.drug_class AND l.trial = t.trial AND l.rn = 1,
    cfg
),
timed AS (
    SELECT shaped.*,
           CASE WHEN drug_class <> 'botulinum_toxin' AND known_supply = 0 AND ongoing = 0 THEN NULL
                ELSE CAST(CASE WHEN ongoing = 1 THEN MAX(julianday(as_of), s) ELSE e END - s AS INTEGER) END AS days,
           CASE WHEN drug_class = 'botulinum_toxin' THEN 'botulinum cycles'
                WHEN known_supply = 0 AND ongoing = 0 THEN 'duration unknown'
                WHEN unknown_supply > 0 THEN 'at least'
                ELSE 'supply' END AS duration_basis
    FROM shaped
)
SELECT patient_key, drug_class, trial AS trial_number, ingredients, start_date,
       CASE WHEN ongoing = 1 THEN NULL ELSE supply_end END AS end_date,
       supply_end, ongoing,
       days AS duration_days,
       ROUND(days / 7.0, 1) AS duration_weeks,
       CASE
           WHEN drug_class = 'botulinum_toxin' THEN cycles >= min_cycles AND chronic_migraine
           WHEN dose_adequate = 0 THEN 0
           WHEN days >= weeks * 7 THEN 1
           WHEN days IS NULL OR unknown_supply > 0 THEN NULL
           ELSE 0
       END AS adequate,
       intolerance AS stopped_for_intolerance, prescriptions, unknown_supply AS unknown_supply_prescriptions, last_status,
       duration_basis, CASE WHEN drug_class = 'botulinum_toxin' THEN cycles END AS cycles, daily_dose_mg, min_daily_mg AS min_effective_daily_mg, dose_adequate
FROM timed;

-- The common US payer step-therapy rule for CGRP-targeting preventives (a
-- coverage rule, not a clinical one: AHS 2024 makes them first line).
CREATE VIEW v_payer_step_therapy AS
WITH
cfg AS (
    SELECT ',' || (SELECT value FROM analyst_setting WHERE key = 'cgrp_trial_classes') || ',' AS trial_classes,
           ',' || (SELECT value FROM analyst_setting WHERE key = 'cgrp_current_classes') || ',' AS current_classes,
           (SELECT CAST(value AS INTEGER) FROM analyst_setting WHERE key = 'cgrp_min_classes') AS min_classes
),
dead AS (
    SELECT DISTINCT patient_key FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
),
migraine AS (
    SELECT DISTINCT patient_key FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL
      AND headache_type IN ('chronic_migraine', 'migraine_with_aura', 'migraine_without_aura',
                            'menstrual_migraine', 'hemiplegic_migraine', 'migraine')
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
),
history AS MATERIALIZED (
    SELECT * FROM v_preventive_history WHERE patient_key IN (SELECT patient_key FROM migraine)
),
evidence AS (
    SELECT h.* FROM history h, cfg
    WHERE instr(cfg.trial_classes, ',' || h.drug_class || ',') > 0
      AND (h.adequate = 1 OR h.stopped_for_intolerance = 1)
),
on_cgrp AS (
    SELECT DISTINCT h.patient_key FROM history h, cfg
    WHERE h.ongoing = 1 AND instr(cfg.current_classes, ',' || h.drug_class || ',') > 0
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
)
SELECT pp.patient_key, pp.n AS qualifying_class_count, cl.classes AS qualifying_classes, pp.evidence,
       1 AS has_migraine_diagnosis
FROM per_patient pp
JOIN class_list cl ON cl.patient_key = pp.patient_key, cfg
WHERE pp.n >= cfg.min_classes
  AND pp.patient_key NOT IN (SELECT patient_key FROM on_cgrp)
  AND pp.patient_key NOT IN (SELECT patient_key FROM dead);

-- Kept for one schema version so existing queries keep running: the same
-- rows as v_payer_step_therapy. It is removed in a later version.
CREATE VIEW v_cgrp_readiness AS SELECT * FROM v_payer_step_therapy;

-- Migraine patients for whom a CGRP-targeting preventive is a first-line
-- option worth discussing (AHS 2024, Charles et al.), with the reason.
CREATE VIEW v_cgrp_candidates AS
WITH
cfg AS (
    SELECT ',' || (SELECT value FROM analyst_setting WHERE key = 'cgrp_current_classes') || ',' AS current_classes,
           ',' || COALESCE((SELECT value FROM analyst_setting WHERE key = 'cgrp_candidate_moh_states'), '') || ',' AS moh_states,
           (SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'cgrp_candidate_midas') AS midas,
           (SELECT CAST(value AS REAL) FROM analyst_setting WHERE key = 'cgrp_candidate_hit6') AS hit6
),
dead AS (
    SELECT DISTINCT patient_key FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
),
dx AS (
    SELECT patient_key, MAX(headache_type = 'chronic_migraine') AS chronic
    FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL
      AND headache_type IN ('chronic_migraine', 'migraine_with_aura', 'migraine_without_aura',
                            'menstrual_migraine', 'hemiplegic_migraine', 'migraine')
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
    GROUP BY patient_key
),
migraine AS (
    SELECT * FROM dx WHERE patient_key NOT IN (SELECT patient_key FROM dead)
),
on_cgrp AS (
    SELECT DISTINCT h.patient_key FROM v_preventive_history h, cfg
    WHERE h.ongoing = 1 AND instr(cfg.current_classes, ',' || h.drug_class || ',') > 0
      AND h.patient_key IN (SELECT patient_key FROM migraine)
),
obs AS (
    SELECT patient_key, instrument, value_num, substr(effective_at, 1, 10) AS day,
           ROW_NUMBER() OVER (PARTITION BY patient_key, instrument ORDER BY effective_at DESC, id) AS rn
    FROM observation
    WHERE deleted_at IS NULL AND patient_key IN (SELECT patient_key FROM migraine) AND value_num IS NOT NULL
      AND instrument IN ('midas', 'hit6') AND COALESCE(status, '') NOT IN ('entered-in-error', 'cancelled')
),
scores AS (
    SELECT patient_key,
           MAX(CASE WHEN instrument = 'midas' THEN value_num END) AS midas,
           MAX(CASE WHEN instrument = 'midas' THEN day END) AS midas_at,
           MAX(CASE WHEN instrument = 'hit6' THEN value_num END) AS hit6,
           MAX(CASE WHEN instrument = 'hit6' THEN day END) AS hit6_at
    FROM obs WHERE rn = 1 GROUP BY patient_key
),
moh AS (
    SELECT patient_key, current_state FROM v_moh_risk WHERE patient_key IN (SELECT patient_key FROM migraine)
),
reasons AS (
    SELECT m.patient_key, m.chronic, s.midas, s.midas_at, s.hit6, s.hit6_at, h.current_state,
           rtrim(CASE WHEN m.chronic THEN 'chronic_migraine,' ELSE '' END ||
                 CASE WHEN s.midas >= cfg.midas THEN 'midas,' ELSE '' END ||
                 CASE WHEN s.hit6 >= cfg.hit6 THEN 'hit6,' ELSE '' END ||
                 CASE WHEN instr(cfg.moh_states, ',' || h.current_state || ',') > 0 THEN 'moh_' || h.current_state || ',' ELSE '' END,
                 ',') AS reason
    FROM migraine m
    CROSS JOIN cfg
    LEFT JOIN scores s ON s.patient_key = m.patient_key
    LEFT JOIN moh h ON h.patient_key = m.patient_key
    WHERE m.patient_key NOT IN (SELECT patient_key FROM on_cgrp)
)
SELECT patient_key, reason, chronic AS chronic_migraine, midas AS last_midas, midas_at AS last_midas_at,
       hit6 AS last_hit6, hit6_at AS last_hit6_at, current_state AS moh_current_state
FROM reasons
WHERE reason <> '';

-- Per preventive trial and instrument: the score before the start and
-- about 3 and 6 months after, as payers ask at renewal.
CREATE VIEW v_treatment_response AS
WITH
trials AS (
    SELECT patient_key, drug_class, trial_number, ingredients, start_date,
           CASE WHEN drug_class IN ('cgrp_mab', 'gepant') THEN 1 WHEN drug_class = 'botulinum_toxin' THEN 2 ELSE 3 END AS class_rank
    FROM v_preventive_history
),
obs AS (
    SELECT patient_key, instrument, value_num, date(substr(effective_at, 1, 10)) AS day, id
    FROM observation
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND value_num IS NOT NULL
      AND instrument IN ('midas', 'hit6', 'pain_nrs') AND COALESCE(status, '') NOT IN ('entered-in-error', 'cancelled')
      AND date(substr(effective_at, 1, 10)) IS NOT NULL
),
-- Baseline: the latest score in the 90 days up to the start. Follow-up: the
-- score closest to day 91 (days 60-120) and to day 182 (days 150-210).
paired AS (
    SELECT t.patient_key, t.drug_class, t.trial_number, t.ingredients, t.start_date, t.class_rank, o.instrument,
           o.value_num, o.day, o.id, julianday(o.day) - julianday(t.start_date) AS offset_days
    FROM trials t JOIN obs o ON o.patient_key = t.patient_key
    WHERE julianday(o.day) - julianday(t.start_date) BETWEEN -90 AND 210
),
ranked AS (
    SELECT paired.*,
           CASE WHEN offset_days BETWEEN -90 AND 0 THEN 'baseline'
                WHEN offset_days BETWEEN 60 AND 120 THEN 'm3'
                WHEN offset_days BETWEEN 150 AND 210 THEN 'm6' END AS slot
    FROM paired
),
picked AS (
    SELECT ranked.*,
           ROW_NUMBER() OVER (PARTITION BY patient_key, drug_class, trial_number, instrument, slot
                              ORDER BY CASE slot WHEN 'baseline' THEN -offset_days
                                                 WHEN 'm3' THEN ABS(offset_days - 91)
                                                 ELSE ABS(offset_days - 182) END, day DESC, id) AS rn
    FROM ranked WHERE slot IS NOT NULL
),
shaped AS (
    SELECT patient_key, drug_class, trial_number, ingredients, start_date, class_rank, instrument,
           MAX(CASE WHEN slot = 'baseline' THEN value_num END) AS baseline_value,
           MAX(CASE WHEN slot = 'baseline' THEN day END) AS baseline_at,
           MAX(CASE WHEN slot = 'm3' THEN value_num END) AS month3_value,
           MAX(CASE WHEN slot = 'm3' THEN day END) AS month3_at,
           MAX(CASE WHEN slot = 'm6' THEN value_num END) AS month6_value,
           MAX(CASE WHEN slot = 'm6' THEN day END) AS month6_at
    FROM picked WHERE rn = 1
    GROUP BY patient_key, drug_class, trial_number, instrument
)
SELECT patient_key, drug_class, trial_number, ingredients, start_date, class_rank, instrument,
       baseline_value, baseline_at, month3_value, month3_at, month3_value - baseline_value AS change_3m,
       month6_value, month6_at, month6_value - baseline_value AS change_6m
FROM shaped;

-- One row per patient and safety flag, with the rows behind it.
CREATE VIEW v_safety_flags AS
WITH
dead AS (
    SELECT DISTINCT patient_key FROM patient
    WHERE deleted_at IS NULL AND (deceased = 1 OR deceased_at IS NOT NULL)
),
demo AS (
    SELECT patient_key, birth_year, sex,
           ROW_NUMBER() OVER (PARTITION BY patient_key ORDER BY ingested_at DESC, source) AS rn
    FROM patient WHERE deleted_at IS NULL
),
dx AS (
    SELECT source, id, patient_key, headache_type, code_system, code, code_display, code_text,
           substr(COALESCE(onset, recorded_date), 1, 10) AS at
    FROM condition
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL
      AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
),
orders AS (
    SELECT source, id, patient_key, drug_class, ingredient, medication_display, contains_opioid, contains_butalbital,
           date(substr(authored_on, 1, 10)) AS day,
           lower(COALESCE(ingredient, '') || ' ' || COALESCE(medication_display, '')) AS words
    FROM medication_request
    WHERE deleted_at IS NULL AND patient_key IS NOT NULL
      AND COALESCE(status, '') NOT IN ('entered-in-error', 'cancelled', 'draft')
      AND COALESCE(intent, '') NOT IN ('proposal', 'plan', 'option')
),
headache AS (SELECT DISTINCT patient_key FROM dx WHERE headache_type IS NOT NULL),
-- FDA labels: valproate (boxed warning, fetal risk) and topiramate (oral
-- clefts) in a woman of childbearing age. Only the birth year is kept, so
-- the age at the order is the year difference, and both 15-45 ends are
-- taken inclusively of the year before.
teratogen AS (
    SELECT o.patient_key, 'teratogen_childbearing_age' AS flag, o.day,
           json_object('table', 'medication_request', 'source', o.source, 'id', o.id, 'ingredient', o.ingredient,
                       'authored_on', o.day, 'age_at_order', CAST(substr(o.day, 1, 4) AS INTEGER) - d.birth_year) AS item
    FROM orders o JOIN demo d ON d.patient_key = o.patient_key AND d.rn = 1
    WHERE d.sex = 'female' AND o.day IS NOT NULL AND d.birth_year IS NOT NULL
      AND (o.words LIKE '%valpro%' OR o.words LIKE '%topiramate%')
      AND CAST(substr(o.day, 1, 4) AS INTEGER) - d.birth_year BETWEEN 15 AND 46
),
-- CDC US MEC (2024) category 4: combined (estrogen-containing) hormonal
-- contraception in migraine with aura (ischaemic stroke risk).
aura AS (
    SELECT * FROM dx WHERE headache_type IN ('migraine_with_aura', 'hemiplegic_migraine')
),
estrogen AS (
    SELECT * FROM orders
    WHERE words LIKE '%ethinyl estradiol%' OR words LIKE '%ethinylestradiol%' OR words LIKE '%mestranol%'
       OR (words LIKE '%estradiol%' AND (words LIKE '%norethindrone%' OR words LIKE '%levonorgestrel%'
           OR words LIKE '%norgestimate%' OR words LIKE '%desogestrel%' OR words LIKE '%drospirenone%'
           OR words LIKE '%dienogest%' OR words LIKE '%norelgestromin%' OR words LIKE '%etonogestrel%'
           OR words LIKE '%norgestrel%' OR words LIKE '%nomegestrol%' OR words LIKE '%segesterone%'))
),
aura_estrogen AS (
    SELECT patient_key, 'aura_estrogen_contraceptive' AS flag, at AS day,
           json_object('table', 'condition', 'source', source, 'id', id, 'headache_type', headache_type, 'date', at) AS item
    FROM aura WHERE patient_key IN (SELECT patient_key FROM estrogen)
    UNION ALL
    SELECT patient_key, 'aura_estrogen_contraceptive', day,
           json_object('table', 'medication_request', 'source', source, 'id', id, 'medication', COALESCE(medication_display, ingredient),
                       'authored_on', day)
    FROM estrogen WHERE patient_key IN (SELECT patient_key FROM aura)
),
-- Triptan and ergot labels: contraindicated in ischaemic heart disease,
-- stroke or TIA, and peripheral vascular disease.
vascular AS (
    SELECT * FROM dx
    WHERE (COALESCE(code_system, '') LIKE '%icd-10%'
           AND (upper(code) GLOB 'I2[0-5]*' OR upper(code) GLOB 'I63*' OR (upper(code) GLOB 'G45*' AND upper(code) NOT GLOB 'G45.4*' AND upper(code) <> 'G454')
                OR replace(upper(code), '.', '') = 'I739' OR replace(upper(code), '.', '') GLOB 'I702*'))
       OR (COALESCE(code_system, '') LIKE 'http://snomed.info/sct%'
           AND code IN ('414545008', '53741008', '22298006', '399211009', '401303003', '401314000', '194828000',
                        '230690007', '422504002', '266257000', '400047006', '840580004'))
),
vasoconstrictor AS (
    SELECT * FROM orders WHERE drug_class IN ('triptan', 'ergot')
),
vascular_flag AS (
    SELECT patient_key, 'triptan_ergot_vascular_disease' AS flag, at AS day,
           json_object('table', 'condition', 'source', source, 'id', id, 'code', code,
                       'display', COALESCE(code_display, code_text), 'date', at) AS item
    FROM vascular WHERE patient_key IN (SELECT patient_key FROM vasoconstrictor)
    UNION ALL
    SELECT patient_key, 'triptan_ergot_vascular_disease', day,
           json_object('table', 'medication_request', 'source', source, 'id', id, 'ingredient', ingredient, 'authored_on', day)
    FROM vasoconstrictor WHERE patient_key IN (SELECT patient_key FROM vascular)
),
-- AHS Choosing Wisely (2013): opioid- and butalbital-containing medicines
-- are not first-line for recurrent headache.
opioid_flag AS (
    SELECT patient_key, 'opioid_or_butalbital' AS flag, day,
           json_object('table', 'medication_request', 'source', source, 'id', id, 'ingredient', ingredient,
                       'authored_on', day, 'contains_opioid', contains_opioid OR drug_class = 'opioid',
                       'contains_butalbital', contains_butalbital) AS item
    FROM orders
    WHERE (contains_opioid = 1 OR contains_butalbital = 1 OR drug_class = 'opioid')
      AND patient_key IN (SELECT patient_key FROM headache)
),
items AS (
    SELECT * FROM teratogen UNION ALL SELECT * FROM aura_estrogen
    UNION ALL SELECT * FROM vascular_flag UNION ALL SELECT * FROM opioid_flag
)
SELECT patient_key, flag, COUNT(*) AS evidence_rows, MIN(day) AS first_at, MAX(day) AS last_at,
       json_group_array(json(item)) AS evidence
FROM (SELECT * FROM items WHERE patient_key NOT IN (SELECT patient_key FROM dead)
      ORDER BY patient_key, flag, day, item)
GROUP BY patient_key, flag;

-- Per patient, source and resource type: how old the newest successful
-- pull is. Always against the real clock: as_of is for clinical dates.
CREATE VIEW v_sync_freshness AS
WITH
cfg AS (
    SELECT datetime('now') AS now_at,
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
           WHEN age_hours < 0 THEN 'clock_skew'
           WHEN age_hours > stale_hours THEN 'stale'
           ELSE 'fresh'
       END AS freshness
FROM joined;

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
    -- Current: the supply (with refills, for scheduled drugs) reaches as_of
    -- minus refill_gap_days, or an as-needed acute order within
    -- prn_current_days (v_prescription_supply.is_current); never for the
    -- dead. Rimegepant as needed is acute, taken every other day it is
    -- preventive.
    SELECT DISTINCT patient_key, COALESCE(drug_class, acute_class) AS drug_class,
           COALESCE(ingredient, drug_class, acute_class) AS ingredient,
           acute_class IS NOT NULL AS is_acute,
           preventive_class IS NOT NULL AS is_preventive
    FROM v_prescription_supply
    WHERE is_current = 1 AND (acute_class IS NOT NULL OR preventive_class IS NOT NULL)
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
    SELECT patient_key, birth_year, sex, COALESCE(deceased, 0) = 1 OR deceased_at IS NOT NULL AS deceased, deceased_at,
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
       COALESCE(sync.needs_reauth, 0) AS needs_reauth,
       COALESCE(d.deceased, 0) AS deceased, d.deceased_at
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
