// The analyst views (schema/0006_clinical_views.sql, which replaced the
// version-3 views): small hand-made patient histories whose answers are
// known, checked row by row.
#include <filesystem>
#include <set>
#include <sstream>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "test_support.hpp"

namespace {

namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::temp_dir;

using rows_t = std::vector<std::string>;

// Every row of `sql` as "a|b|c", NULL as "-".
rows_t rows(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, sql);
    rows_t out;
    while (q.executeStep()) {
        std::string line;
        for (int i = 0; i < q.getColumnCount(); ++i) {
            if (i) line += "|";
            line += q.getColumn(i).isNull() ? std::string("-") : q.getColumn(i).getString();
        }
        out.push_back(line);
    }
    return out;
}

struct rx {
    std::string id, patient, drug_class, role = "acute", authored;
    double days_supply = 0;  // 0: not given
    std::string status = "completed";
    bool deleted = false;
    double quantity = 0, doses_per_day = 0;
    std::string ingredient = "";
    std::string status_reason_code = "";
    int as_needed = -1;  // -1: not given
    // Schema 5 facts (0: not given).
    double dose_quantity = 0, max_units_per_day = 0, strength_mg = 0;
    int refills = -1;
    std::string route = "";
    int contains_opioid = 0, contains_butalbital = 0;
    std::string display = "";
};

class views : public ::testing::Test {
protected:
    views() : db_(dir_ / "headache.db") {
        // A fixed "today" makes ongoing trials and windows reproducible.
        db_.sql().exec("UPDATE analyst_setting SET value = '2024-12-31' WHERE key = 'as_of'");
    }

    void patient(const std::string& key) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at, birth_year, sex) "
            "VALUES ('ehr', ?1, ?1, 'h', '2024-12-30T00:00:00Z', 1980, 'female')");
        q.bind(1, key);
        q.exec();
    }

    void add(const rx& r) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, deleted_at, "
            "status, "
            "intent, authored_on, ingredient, drug_class, therapy_role, as_needed, doses_per_day, quantity, "
            "days_supply, status_reason_code, dose_quantity, max_units_per_day, strength_mg, refills, route, "
            "contains_opioid, contains_butalbital, medication_display) VALUES ('ehr', ?1, ?2, 'h', "
            "'2024-12-30T00:00:00Z', ?3, ?4, 'order', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
            "?17, ?18, ?19, ?20, ?21)");
        q.bind(1, r.id);
        q.bind(2, r.patient);
        if (r.deleted) {
            q.bind(3, "2024-12-01T00:00:00Z");
        } else {
            q.bind(3);
        }
        q.bind(4, r.status);
        q.bind(5, r.authored);
        q.bind(6, r.ingredient.empty() ? r.drug_class : r.ingredient);
        q.bind(7, r.drug_class);
        q.bind(8, r.role);
        if (r.as_needed >= 0) {
            q.bind(9, r.as_needed);
        } else {
            q.bind(9);
        }
        if (r.doses_per_day > 0) {
            q.bind(10, r.doses_per_day);
        } else {
            q.bind(10);
        }
        if (r.quantity > 0) {
            q.bind(11, r.quantity);
        } else {
            q.bind(11);
        }
        if (r.days_supply > 0) {
            q.bind(12, r.days_supply);
        } else {
            q.bind(12);
        }
        if (!r.status_reason_code.empty()) {
            q.bind(13, r.status_reason_code);
        } else {
            q.bind(13);
        }
        const auto positive = [&q](int i, double v) {
            if (v > 0) {
                q.bind(i, v);
            } else {
                q.bind(i);
            }
        };
        positive(14, r.dose_quantity);
        positive(15, r.max_units_per_day);
        positive(16, r.strength_mg);
        if (r.refills >= 0) {
            q.bind(17, r.refills);
        } else {
            q.bind(17);
        }
        if (!r.route.empty()) {
            q.bind(18, r.route);
        } else {
            q.bind(18);
        }
        q.bind(19, r.contains_opioid);
        q.bind(20, r.contains_butalbital);
        if (!r.display.empty()) {
            q.bind(21, r.display);
        } else {
            q.bind(21);
        }
        q.exec();
    }

    // A condition row with a headache_type (or another code) for `patient`.
    void diagnose(const std::string& patient, const std::string& type, const std::string& system = "",
                  const std::string& code = "") {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, headache_type, "
            "code_system, code, onset) VALUES ('ehr', ?1, ?2, 'h', 'x', ?3, ?4, ?5, '2020-01-01')");
        q.bind(1, patient + "-dx-" + std::to_string(++conditions_));
        q.bind(2, patient);
        if (type.empty()) {
            q.bind(3);
        } else {
            q.bind(3, type);
        }
        if (system.empty()) {
            q.bind(4);
        } else {
            q.bind(4, system);
        }
        if (code.empty()) {
            q.bind(5);
        } else {
            q.bind(5, code);
        }
        q.exec();
    }

    // One scheduled (not as-needed) prescription of `days` days on the 1st of
    // each of `months` months from January 2024: its days of supply are days
    // of intake.
    void monthly(const std::string& patient, const std::string& cls, int days, int months,
                 const std::string& day = "01") {
        for (int m = 1; m <= months; ++m) {
            const std::string month = (m < 10 ? "0" : "") + std::to_string(m);
            rx r{patient + "-" + cls + "-" + day + "-" + month,
                 patient,
                 cls,
                 "acute",
                 "2024-" + month + "-" + day,
                 static_cast<double>(days)};
            r.as_needed = 0;
            add(r);
        }
    }

    rows_t moh() {
        return rows(db_.sql(),
                    "SELECT patient_key, state, current_state, window_start_month, window_end_month, months, "
                    "classes FROM v_moh_risk ORDER BY patient_key");
    }

    void exec(const std::string& sql) { db_.sql().exec(sql); }

    temp_dir dir_;
    st::analytics_db db_;
    int conditions_ = 0;
};

// --- v_moh_risk ------------------------------------------------------------

TEST_F(views, TriptanTenDaysForFourMonthsMeetsAndNineIsBelow) {
    // Setup: scheduled orders, so days of supply are days of intake.
    monthly("T10", "triptan", 10, 4);
    monthly("T09", "triptan", 9, 4);
    diagnose("T10", "migraine");
    diagnose("T09", "migraine");
    // Run / Check: one row per patient with a state (the old view had one row
    // per run of months and no row for patients below).
    EXPECT_EQ(moh(), (rows_t{"T09|below|below|-|-|-|-", "T10|meets|below|2024-01|2024-04|4|triptan"}));
    EXPECT_EQ(
        rows(db_.sql(), "SELECT evidence FROM v_moh_risk WHERE patient_key = 'T10'"),
        (rows_t{
            R"([{"month":"2024-01","class":"triptan","min_days":10,"max_days":10,"unknown_days":0,"threshold_days":10},)"
            R"({"month":"2024-02","class":"triptan","min_days":10,"max_days":10,"unknown_days":0,"threshold_days":10},)"
            R"({"month":"2024-03","class":"triptan","min_days":10,"max_days":10,"unknown_days":0,"threshold_days":10},)"
            R"({"month":"2024-04","class":"triptan","min_days":10,"max_days":10,"unknown_days":0,"threshold_days":10}])"}));
}

TEST_F(views, SimpleAnalgesicsAndNsaidsCountAsOneClassAtFifteenDays) {
    // Setup: 8 NSAID days then 7 acetaminophen days (15 together), and 14.
    monthly("N15", "nsaid", 8, 4, "01");
    monthly("N15", "simple_analgesic", 7, 4, "15");
    monthly("N14", "nsaid", 14, 4);
    diagnose("N15", "tension_type");
    diagnose("N14", "tension_type");
    // Run / Check: 14 days of NSAIDs alone is under 15 (ICHD-3 8.2.3), and
    // under the several-classes rule (8.2.6) it is one class.
    EXPECT_EQ(moh(), (rows_t{"N14|below|below|-|-|-|-",
                             "N15|meets|below|2024-01|2024-04|4|simple_analgesic_nsaid"}));
}

TEST_F(views, ThreeMonthsIsNotMoreThanThree) {
    monthly("M3", "triptan", 12, 3);
    monthly("M4", "opioid", 12, 4);
    diagnose("M3", "migraine");
    diagnose("M4", "migraine");
    EXPECT_EQ(moh(), (rows_t{"M3|below|below|-|-|-|-", "M4|meets|below|2024-01|2024-04|4|opioid"}));
}

TEST_F(views, SeveralClassesTogetherReachTenDays) {
    // 6 triptan days and 5 opioid days on other days, none of them alone overused (ICHD-3 8.2.6).
    monthly("SEV", "triptan", 6, 4, "01");
    monthly("SEV", "opioid", 5, 4, "10");
    diagnose("SEV", "migraine");
    EXPECT_EQ(moh(), (rows_t{"SEV|meets|below|2024-01|2024-04|4|several_classes"}));
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT acute_class, min_days, max_days, classes, threshold_days FROM v_acute_exposure_monthly "
             "WHERE month = '2024-01' ORDER BY acute_class"),
        (rows_t{"any|11|11|opioid,triptan|10", "opioid|5|5|opioid|10", "triptan|6|6|triptan|10"}));
}

TEST_F(views, EnteredInErrorCancelledAndDeletedPrescriptionsNeverCount) {
    // Setup: three patients whose second month is only reached by a prescription that must not count.
    for (const char* p : {"EIE", "CAN", "DEL", "OK"}) {
        monthly(p, "triptan", 10, 4);
        diagnose(p, "migraine");
        exec(std::string("DELETE FROM medication_request WHERE id = '") + p + "-triptan-01-02'");
        rx second{std::string(p) + "-x", p, "triptan", "acute", "2024-02-01", 10};
        second.as_needed = 0;
        if (std::string(p) == "EIE") second.status = "entered-in-error";
        if (std::string(p) == "CAN") second.status = "cancelled";
        if (std::string(p) == "DEL") second.deleted = true;
        add(second);
    }
    // Run / Check: only the control patient meets the criteria.
    EXPECT_EQ(moh(), (rows_t{"CAN|below|below|-|-|-|-", "DEL|below|below|-|-|-|-", "EIE|below|below|-|-|-|-",
                             "OK|meets|below|2024-01|2024-04|4|triptan"}));
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT count(*) FROM v_prescription_supply WHERE patient_key IN ('EIE','CAN','DEL')"),
              (rows_t{"9"}));
}

// --- v_acute_exposure_monthly ---------------------------------------------

TEST_F(views, MonthlyExposureSplitsAcrossMonthsUnitesOverlapsAndMarksUnknownQuantity) {
    // Setup: a scheduled 10 days from Jan 25 (7 in January, 3 in February);
    // an overlapping second fill from Jan 28; a scheduled fill from quantity
    // / doses per day (9 / 2 = 4.5 days: at least 4, at most 5); an
    // as-needed opioid with no quantity at all, spread over prn_spread_days.
    rx a{"a", "X", "triptan", "acute", "2024-01-25", 10};
    a.as_needed = 0;
    add(a);
    rx b{"b", "X", "triptan", "acute", "2024-01-28T09:00:00-05:00", 10};
    b.as_needed = 0;
    add(b);
    rx c{"c", "X", "nsaid", "acute", "2024-03-10", 0, "active", false, 9, 2};
    c.as_needed = 0;
    add(c);
    rx d{"d", "X", "opioid", "acute", "2024-03-11", 0};
    d.as_needed = 1;
    add(d);
    // Run
    const auto got = rows(db_.sql(),
                          "SELECT patient_key, month, acute_class, min_days, max_days, known_max_days, "
                          "unknown_days, basis, prescriptions, unknown_quantity_prescriptions, days_in_month "
                          "FROM v_acute_exposure_monthly ORDER BY month, acute_class");
    // Check: the old view said "opioid 0 days" for the unknown quantity.
    EXPECT_EQ(got,
              (rows_t{"X|2024-01|any|7|7|7|0|-|2|0|31", "X|2024-01|triptan|7|7|7|0|scheduled_supply|2|0|31",
                      "X|2024-02|any|6|6|6|0|-|0|0|29", "X|2024-02|triptan|6|6|6|0|scheduled_supply|0|0|29",
                      "X|2024-03|any|4|-|5|21|-|2|1|31", "X|2024-03|opioid|0|-|0|21|unknown_quantity|1|1|31",
                      "X|2024-03|simple_analgesic_nsaid|4|5|5|0|scheduled_supply|1|0|31",
                      "X|2024-04|any|0|-|0|9|-|0|0|30", "X|2024-04|opioid|0|-|0|9|unknown_quantity|0|0|30"}));
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT id, supply_basis, fill_days, start_date, end_date, acute_basis FROM "
                   "v_prescription_supply "
                   "ORDER BY id"),
              (rows_t{"a|expected_supply_duration|10.0|2024-01-25|2024-02-04|scheduled_supply",
                      "b|expected_supply_duration|10.0|2024-01-28|2024-02-07|scheduled_supply",
                      "c|quantity_per_doses_per_day|4.5|2024-03-10|2024-03-15|scheduled_supply",
                      "d|unknown|-|2024-03-11|-|unknown_quantity"}));
}

// --- v_preventive_history and v_cgrp_readiness -----------------------------

class preventive : public views {
protected:
    // `weeks` of a class as consecutive 28-day fills (plus a 7-day remainder).
    void trial(const std::string& patient, const std::string& cls, const std::string& ingredient,
               const std::string& start, int days, const std::string& status = "completed") {
        int done = 0, n = 0;
        while (done < days) {
            const int fill = std::min(28, days - done);
            SQLite::Statement d(db_.sql(), "SELECT date(?1, '+' || ?2 || ' days')");
            d.bind(1, start);
            d.bind(2, done);
            d.executeStep();
            rx r{patient + "-" + cls + "-" + start + "-" + std::to_string(++n),
                 patient,
                 cls,
                 "preventive",
                 d.getColumn(0).getString(),
                 static_cast<double>(fill),
                 status};
            r.ingredient = ingredient;
            add(r);
            done += fill;
        }
    }
    rows_t ready() {
        return rows(db_.sql(),
                    "SELECT patient_key, qualifying_class_count, qualifying_classes, has_migraine_diagnosis "
                    "FROM v_cgrp_readiness ORDER BY patient_key");
    }
};

TEST_F(preventive, TwoClassesOfEightWeeksAreReadyAndSevenWeeksAreNot) {
    // Setup
    trial("W8", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("W8", "beta_blocker", "propranolol", "2024-04-01", 56);
    trial("W7", "anticonvulsant", "topiramate", "2024-01-01", 49);
    trial("W7", "beta_blocker", "propranolol", "2024-04-01", 49);
    diagnose("W8", "migraine_without_aura");
    diagnose("W7", "migraine_without_aura");
    // Run / Check
    EXPECT_EQ(ready(), (rows_t{"W8|2|anticonvulsant,beta_blocker|1"}));
    EXPECT_EQ(
        rows(db_.sql(), "SELECT * FROM v_preventive_history WHERE patient_key = 'W8' ORDER BY start_date"),
        (rows_t{"W8|anticonvulsant|1|topiramate|2024-01-01|2024-02-26|2024-02-26|0|56|8.0|1|0|2|0|completed|"
                "supply|-|-|"
                "50.0|-",
                "W8|beta_blocker|1|propranolol|2024-04-01|2024-05-27|2024-05-27|0|56|8.0|1|0|2|0|completed|"
                "supply|-|-|"
                "40.0|-"}));
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT drug_class, duration_weeks, adequate FROM v_preventive_history "
                   "WHERE patient_key = 'W7' ORDER BY drug_class"),
              (rows_t{"anticonvulsant|7.0|0", "beta_blocker|7.0|0"}));
    EXPECT_EQ(
        rows(db_.sql(), "SELECT evidence FROM v_cgrp_readiness"),
        (rows_t{
            R"([{"drug_class":"anticonvulsant","trial_number":1,"ingredients":"topiramate",)"
            R"("start_date":"2024-01-01","end_date":"2024-02-26","duration_weeks":8.0,"basis":"adequate_trial"},)"
            R"({"drug_class":"beta_blocker","trial_number":1,"ingredients":"propranolol",)"
            R"("start_date":"2024-04-01","end_date":"2024-05-27","duration_weeks":8.0,"basis":"adequate_trial"}])"}));
}

TEST_F(preventive, ACurrentCgrpAntibodyExcludesAndAnOldActiveOneDoesNot) {
    // A CGRP antibody whose supply reaches as_of (2024-12-31).
    trial("MAB", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("MAB", "beta_blocker", "propranolol", "2024-04-01", 56);
    add({"mab1", "MAB", "cgrp_mab", "preventive", "2024-12-10", 30, "active"});
    // Authored long ago with a 30-day supply, but the EHR still says active:
    // the old view took the status as "current"; the supply ran out in July.
    trial("OLD", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("OLD", "beta_blocker", "propranolol", "2024-04-01", 56);
    add({"mab0", "OLD", "cgrp_mab", "preventive", "2024-06-01", 30, "active"});
    trial("NOMAB", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("NOMAB", "beta_blocker", "propranolol", "2024-04-01", 56);
    add({"mab2", "NOMAB", "cgrp_mab", "preventive", "2024-12-10", 30, "stopped"});
    for (const char* p : {"MAB", "OLD", "NOMAB"}) diagnose(p, "migraine");
    EXPECT_EQ(ready(),
              (rows_t{"NOMAB|2|anticonvulsant,beta_blocker|1", "OLD|2|anticonvulsant,beta_blocker|1"}));
}

TEST_F(preventive, DocumentedIntoleranceCountsAndEnteredInErrorDoesNot) {
    // Setup: three weeks of topiramate stopped for suspected intolerance
    // (HL7 medicationrequest-status-reason "sintol").
    rx stopped{"int1", "INT", "anticonvulsant", "preventive", "2024-01-01", 21, "stopped"};
    stopped.status_reason_code = "sintol";
    add(stopped);
    trial("INT", "beta_blocker", "propranolol", "2024-04-01", 56);
    // A second patient whose second class exists only as entered-in-error.
    trial("EIE", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("EIE", "beta_blocker", "propranolol", "2024-04-01", 56, "entered-in-error");
    // And one whose second class was deleted.
    trial("DEL", "anticonvulsant", "topiramate", "2024-01-01", 56);
    trial("DEL", "beta_blocker", "propranolol", "2024-04-01", 56);
    exec(
        "UPDATE medication_request SET deleted_at = '2024-12-01T00:00:00Z' WHERE patient_key = 'DEL' "
        "AND drug_class = 'beta_blocker'");
    exec(
        "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, headache_type) "
        "VALUES ('ehr', 'c1', 'INT', 'h', '2024-01-01T00:00:00Z', 'chronic_migraine')");
    diagnose("EIE", "migraine");
    diagnose("DEL", "migraine");
    // Run / Check
    EXPECT_EQ(ready(), (rows_t{"INT|2|anticonvulsant,beta_blocker|1"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT json_extract(evidence, '$[0].basis') FROM v_cgrp_readiness"),
              (rows_t{"intolerance"}));
}

TEST_F(preventive, OngoingTrialRunsToAsOfAndTrialsSplitOnLongGaps) {
    trial("ON", "tricyclic", "amitriptyline", "2024-11-15", 28, "active");
    // Still "active" in the EHR, but its supply ran out more than trial_gap_days ago.
    trial("ON", "snri", "venlafaxine", "2024-10-01", 28, "active");
    trial("ON", "beta_blocker", "propranolol", "2024-01-01", 28);
    trial("ON", "beta_blocker", "propranolol", "2024-05-01", 28);  // > 30 days after the first ran out
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT drug_class, trial_number, start_date, end_date, ongoing, duration_days "
             "FROM v_preventive_history ORDER BY drug_class, trial_number"),
        (rows_t{"beta_blocker|1|2024-01-01|2024-01-29|0|28", "beta_blocker|2|2024-05-01|2024-05-29|0|28",
                "snri|1|2024-10-01|2024-10-29|0|28", "tricyclic|1|2024-11-15|-|1|46"}));
}

// --- v_appointment_adherence, v_sync_freshness, v_patient_summary ----------

TEST_F(views, AppointmentAdherenceCountsHeadacheAppointmentsOfTheLastTwelveMonths) {
    patient("A");
    patient("NONE");
    const char* appts[][3] = {
        {"a1", "fulfilled", "2024-03-01"}, {"a2", "noshow", "2024-06-01"},
        {"a3", "cancelled", "2024-07-01"}, {"a4", "fulfilled", "2023-06-01"},  // too old
        {"a5", "booked", "2025-01-15"},    {"a6", "entered-in-error", "2024-08-01"},
        {"a7", "fulfilled", "2024-09-01"}};
    for (const auto& a : appts) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO appointment (source, id, patient_key, raw_hash, ingested_at, status, start, "
            "is_headache_related) VALUES ('ehr', ?1, 'A', 'h', '2024-12-30T00:00:00Z', ?2, ?3, 1)");
        q.bind(1, a[0]);
        q.bind(2, a[1]);
        q.bind(3, std::string(a[2]) + "T10:00:00Z");
        q.exec();
    }
    exec(
        "INSERT INTO appointment (source, id, patient_key, raw_hash, ingested_at, status, start, "
        "is_headache_related) VALUES ('ehr', 'b1', 'A', 'h', 'x', 'fulfilled', '2024-10-01', 0)");
    EXPECT_EQ(
        rows(db_.sql(), "SELECT * FROM v_appointment_adherence ORDER BY patient_key"),
        (rows_t{"A|2023-12-31|2024-12-31|4|0|2|1|1|0.333|1", "NONE|2023-12-31|2024-12-31|0|0|0|0|0|-|0"}));
}

TEST_F(views, SyncFreshnessTellsStaleFromNoDataAgainstTheRealClock) {
    // Setup: pulls relative to the real clock; as_of (2024-12-31, set by the
    // fixture) is in the past and must not matter: the old view measured
    // from as_of and called a pull made after it "fresh" with a negative age.
    patient("S");
    exec(
        "INSERT INTO sync_status (source, patient_key, resource_type, last_attempt_at, last_success_at) "
        "VALUES "
        "('ehr', 'S', 'Patient', '2024-12-30T12:00:00Z', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-12 hours')),"
        "('ehr', 'S', 'Condition', '2024-12-30T12:00:00Z', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-12 "
        "hours')),"
        "('ehr', 'S', 'Observation', '2024-12-30T12:00:00Z', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-264 "
        "hours')),"
        "('ehr', 'S', 'Encounter', '2024-12-30T12:00:00Z', strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+30 "
        "hours')),"
        "('ehr', 'S', 'Appointment', '2024-12-30T12:00:00Z', NULL)");
    exec(
        "UPDATE sync_status SET not_permitted = 1, last_error = 'HTTP 403' WHERE resource_type = "
        "'Appointment'");
    exec(
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, instrument) VALUES "
        "('ehr', 'o1', 'S', 'h', '2024-12-20T00:00:00Z', 'pain_nrs')");
    exec(
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, instrument) VALUES "
        "('file', 'o2', 'I', 'h', '2024-11-20T00:00:00Z', 'pain_nrs')");
    // Run / Check: a pull "in the future" is a clock problem, not fresh data.
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT source, patient_key, resource_type, age_hours, current_rows, freshness "
                   "FROM v_sync_freshness ORDER BY source, patient_key, resource_type"),
              (rows_t{"ehr|S|Appointment|-|0|not_permitted", "ehr|S|Condition|12.0|0|fresh",
                      "ehr|S|Encounter|-30.0|0|clock_skew", "ehr|S|Observation|264.0|1|stale",
                      "ehr|S|Patient|12.0|1|fresh", "file|I|Observation|-|1|ingested_only"}));
}

TEST_F(views, PatientSummaryPicksTheMostSpecificDiagnosisAndLatestScores) {
    patient("P");
    exec(
        "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, clinical_status, "
        "verification_status, "
        "headache_type) VALUES ('ehr', 'c1', 'P', 'h', 'x', 'active', 'confirmed', 'migraine'),"
        "('ehr', 'c2', 'P', 'h', 'x', 'active', 'confirmed', 'chronic_migraine'),"
        "('ehr', 'c3', 'P', 'h', 'x', 'active', 'confirmed', 'medication_overuse'),"
        "('ehr', 'c4', 'P', 'h', 'x', 'active', 'refuted', 'cluster')");
    exec(
        "INSERT INTO encounter (source, id, patient_key, raw_hash, ingested_at, status, period_start, "
        "is_headache_related) VALUES ('ehr', 'e1', 'P', 'h', 'x', 'finished', '2023-02-03T10:00:00Z', 1),"
        "('ehr', 'e2', 'P', 'h', 'x', 'finished', '2024-11-04T10:00:00Z', 1),"
        "('ehr', 'e3', 'P', 'h', 'x', 'cancelled', '2024-12-04T10:00:00Z', 1)");
    exec(
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, status, value_num, "
        "effective_at, "
        "instrument) VALUES ('ehr', 'o1', 'P', 'h', 'x', 'final', 7, '2024-10-01T10:00:00Z', 'pain_nrs'),"
        "('ehr', 'o2', 'P', 'h', 'x', 'final', 4, '2024-11-01T10:00:00Z', 'pain_nrs'),"
        "('ehr', 'o3', 'P', 'h', 'x', 'entered-in-error', 9, '2024-12-01T10:00:00Z', 'pain_nrs'),"
        "('ehr', 'o4', 'P', 'h', 'x', 'final', 22, '2024-11-04T10:00:00Z', 'midas'),"
        "('ehr', 'o5', 'P', 'h', 'x', 'final', 63, '2024-11-04T10:00:00Z', 'hit6')");
    exec(
        "INSERT INTO appointment (source, id, patient_key, raw_hash, ingested_at, status, start, "
        "is_headache_related) VALUES ('ehr', 'a1', 'P', 'h', 'x', 'fulfilled', '2024-11-04T10:00:00Z', 1)");
    exec(
        "INSERT INTO sync_status (source, patient_key, resource_type, last_success_at) VALUES "
        "('ehr', 'P', '*', '2024-12-30T12:00:00Z'), ('ehr', 'P', 'Condition', '2024-12-29T12:00:00Z')");
    add({"r1", "P", "triptan", "acute", "2024-12-01", 30, "active", false, 0, 0, "sumatriptan"});
    add({"r2", "P", "anticonvulsant", "preventive", "2024-12-01", 30, "active", false, 0, 0, "topiramate"});
    add({"r3", "P", "nsaid", "acute", "2024-12-01", 30, "entered-in-error", false, 0, 0, "ibuprofen"});
    EXPECT_EQ(
        rows(db_.sql(), "SELECT * FROM v_patient_summary"),
        (rows_t{"P|1980|female|chronic_migraine|chronic_migraine,migraine,medication_overuse|1|2023-02-03|"
                "2024-11-04|triptan|sumatriptan (triptan)|anticonvulsant|topiramate (anticonvulsant)|4.0|"
                "2024-11-01|22.0|2024-11-04|63.0|2024-11-04|2024-11-04|57|2024-12-30T12:00:00Z|"
                "2024-12-29T12:00:00Z|0|0|-"}));
}

// --- issue 13: clinical acceptance cases -------------------------------------

class clinical : public views {
protected:
    // An as-needed order on the 1st of `first`..`last` month of 2024.
    void prn_monthly(const std::string& patient, const std::string& cls, int first, int last, rx tmpl) {
        for (int m = first; m <= last; ++m) {
            const std::string month = (m < 10 ? "0" : "") + std::to_string(m);
            rx r = tmpl;
            r.id = patient + "-" + cls + "-" + month;
            r.patient = patient;
            r.drug_class = cls;
            r.authored = "2024-" + month + "-01";
            add(r);
        }
    }
    void person(const std::string& key, int birth_year, const std::string& sex,
                const std::string& deceased_at = "") {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at, birth_year, sex, "
            "deceased, deceased_at) VALUES ('ehr', ?1, ?1, 'h', '2024-12-30T00:00:00Z', ?2, ?3, ?4, ?5)");
        q.bind(1, key);
        q.bind(2, birth_year);
        q.bind(3, sex);
        q.bind(4, deceased_at.empty() ? 0 : 1);
        if (deceased_at.empty()) {
            q.bind(5);
        } else {
            q.bind(5, deceased_at);
        }
        q.exec();
    }
    void score(const std::string& patient, const std::string& instrument, double value,
               const std::string& day) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, status, "
            "value_num, effective_at, instrument) VALUES ('ehr', ?1, ?2, 'h', 'x', 'final', ?3, ?4, ?5)");
        q.bind(1, patient + "-" + instrument + "-" + day);
        q.bind(2, patient);
        q.bind(3, value);
        q.bind(4, day + "T10:00:00Z");
        q.bind(5, instrument);
        q.exec();
    }
    void procedure(const std::string& id, const std::string& patient, const std::string& code,
                   const std::string& day, const std::string& kind) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO procedure (source, id, patient_key, raw_hash, ingested_at, status, code, "
            "performed_start, procedure_kind) VALUES ('ehr', ?1, ?2, 'h', 'x', 'completed', ?3, ?4, ?5)");
        q.bind(1, id);
        q.bind(2, patient);
        q.bind(3, code);
        q.bind(4, day);
        q.bind(5, kind);
        q.exec();
    }
    // A scheduled preventive: `days` days of supply with `refills`.
    rx preventive_rx(const std::string& id, const std::string& patient, const std::string& cls,
                     const std::string& ingredient, const std::string& day, double days, int refills,
                     const std::string& status = "completed") {
        rx r{id, patient, cls, "preventive", day, days, status};
        r.ingredient = ingredient;
        r.as_needed = 0;
        r.refills = refills;
        return r;
    }
};

TEST_F(clinical, NineSumatriptanTabletsAMonthAreBelowHoweverTheOrderIsWritten) {
    // Setup: the same 9 tablets a month, Jan-Jun 2024, written three ways.
    rx duration{"", "", "", "acute", "", 30};  // expectedSupplyDuration 30 days
    duration.as_needed = 1;
    duration.quantity = 9;
    duration.dose_quantity = 1;
    rx twice{"", "", "", "acute", ""};  // 1 tablet, at most 2 a day
    twice.as_needed = 1;
    twice.quantity = 9;
    twice.dose_quantity = 1;
    twice.doses_per_day = 2;
    twice.max_units_per_day = 2;
    rx hourly{"", "", "", "acute", ""};  // 1 tablet every 2 hours as needed: 12 a day
    hourly.as_needed = 1;
    hourly.quantity = 9;
    hourly.dose_quantity = 1;
    hourly.max_units_per_day = 12;
    prn_monthly("DUR", "triptan", 1, 6, duration);
    prn_monthly("FREQ", "triptan", 1, 6, twice);
    prn_monthly("Q2H", "triptan", 1, 6, hourly);
    for (const char* p : {"DUR", "FREQ", "Q2H"}) diagnose(p, "migraine_without_aura");
    // Run / Check: the old view gave 31, 5 and 1 "days" (DUR at risk).
    EXPECT_EQ(moh(),
              (rows_t{"DUR|below|below|-|-|-|-", "FREQ|below|below|-|-|-|-", "Q2H|below|below|-|-|-|-"}));
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT patient_key, min_days, max_days, basis, threshold_days FROM v_acute_exposure_monthly "
             "WHERE month = '2024-03' AND acute_class = 'triptan' ORDER BY patient_key"),
        (rows_t{"DUR|0|9|as_needed_units|10", "FREQ|5|9|as_needed_units|10", "Q2H|1|9|as_needed_units|10"}));
}

TEST_F(clinical, ThirtyButalbitalTabletsAMonthAsNeededEveryFourHoursIsPossible) {
    // Setup: acetaminophen/butalbital/caffeine, 1 tablet every 4 hours as
    // needed (6 a day), 30 tablets a month: Jan-Jun (past) and Sep-Dec (now).
    rx but{"", "", "", "acute", ""};
    but.ingredient = "acetaminophen / butalbital / caffeine";
    but.as_needed = 1;
    but.quantity = 30;
    but.dose_quantity = 1;
    but.max_units_per_day = 6;
    but.contains_butalbital = 1;
    prn_monthly("PAST", "combination_analgesic", 1, 6, but);
    prn_monthly("NOW", "combination_analgesic", 9, 12, but);
    diagnose("PAST", "migraine");
    diagnose("NOW", "tension_type");
    // Run / Check: at most 30 days (>= 10), at least 30 / 6 = 5 (< 10).
    EXPECT_EQ(moh(), (rows_t{"NOW|possible|possible|2024-09|2024-12|4|combination_analgesic",
                             "PAST|possible|below|2024-01|2024-06|6|combination_analgesic"}));
    // The current window is the last 4 complete months: with as_of in the
    // middle of January it is still September to December.
    exec("UPDATE analyst_setting SET value = '2025-01-15' WHERE key = 'as_of'");
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT patient_key, current_state, current_window_start_month, current_window_end_month "
                   "FROM v_moh_risk ORDER BY patient_key"),
              (rows_t{"NOW|possible|2024-09|2024-12", "PAST|below|2024-09|2024-12"}));
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT month, min_days, max_days, days_in_month FROM v_acute_exposure_monthly "
             "WHERE patient_key = 'PAST' AND acute_class = 'combination_analgesic' AND month <= '2024-03' "
             "ORDER BY month"),
        (rows_t{"2024-01|5|30|31", "2024-02|5|29|29", "2024-03|5|30|31"}));
}

TEST_F(clinical, UnknownQuantityIsIndeterminateNeverZero) {
    // Setup: as-needed tramadol every month with no quantity (the Synthea
    // patient with 34 opioid prescriptions had no MOH row at all).
    rx unknown{"", "", "", "acute", ""};
    unknown.as_needed = 1;
    prn_monthly("OPI", "opioid", 1, 5, unknown);
    diagnose("OPI", "migraine");
    // Run / Check
    EXPECT_EQ(moh(), (rows_t{"OPI|indeterminate|below|2024-01|2024-05|5|opioid"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT json_extract(evidence, '$[0]') FROM v_moh_risk"),
              (rows_t{R"({"month":"2024-01","class":"opioid","min_days":0,"max_days":0,"unknown_days":31,)"
                      R"("threshold_days":10})"}));
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT min_days, max_days, known_max_days, unknown_days, unknown_quantity_prescriptions "
                   "FROM v_acute_exposure_monthly WHERE month = '2024-02' AND acute_class = 'opioid'"),
              (rows_t{"0|-|0|29|1"}));
}

TEST_F(clinical, GepantsAndDitansCountUnderOtherMedicationByDefault) {
    // Setup: ubrogepant taken on 12 scheduled days a month for 4 months.
    monthly("GEP", "gepant", 12, 4);
    monthly("LAS", "ditan", 12, 4);
    diagnose("GEP", "migraine");
    diagnose("LAS", "migraine");
    // Run / Check: ICHD-3 8.2.8 (the old docs said gepants were outside the criteria).
    EXPECT_EQ(moh(), (rows_t{"GEP|meets|below|2024-01|2024-04|4|gepant",
                             "LAS|meets|below|2024-01|2024-04|4|ditan"}));
    exec("UPDATE analyst_setting SET value = '' WHERE key = 'moh_other_classes'");
    EXPECT_EQ(moh(), (rows_t{"GEP|below|below|-|-|-|-", "LAS|below|below|-|-|-|-"}));
}

TEST_F(views, MedicationOveruseNeedsAHeadacheDiagnosis) {
    // Setup: the same triptan overuse; one patient without any headache
    // diagnosis and one whose only headache diagnosis was refuted.
    monthly("DX", "triptan", 10, 4);
    monthly("NODX", "triptan", 10, 4);
    monthly("REF", "triptan", 10, 4);
    diagnose("DX", "cluster");
    exec(
        "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, headache_type, "
        "verification_status) VALUES ('ehr', 'refuted', 'REF', 'h', 'x', 'migraine', 'refuted')");
    // Run / Check: ICHD-3 8.2 criterion A.
    EXPECT_EQ(moh(), (rows_t{"DX|meets|below|2024-01|2024-04|4|triptan"}));
}

TEST_F(clinical, RefillsOfAsNeededOrdersAreASeparateUpperBound) {
    // Setup: 9 tablets with 5 refills, one order, expectedSupplyDuration 30.
    rx r{"r", "RF", "triptan", "acute", "2024-01-01", 30};
    r.as_needed = 1;
    r.quantity = 9;
    r.dose_quantity = 1;
    r.refills = 5;
    add(r);
    // Run / Check: refills show only in max_days_with_refills.
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT month, min_days, max_days, max_days_with_refills FROM v_acute_exposure_monthly "
                   "WHERE acute_class = 'triptan' ORDER BY month"),
              (rows_t{"2024-01|0|9|10", "2024-02|0|0|9", "2024-03|0|0|10", "2024-04|0|0|9", "2024-05|0|0|10",
                      "2024-06|0|0|9"}));
}

TEST_F(clinical, ThirtyDaysWithFiveRefillsIsAnAdequateTrialOfTwentyFiveWeeks) {
    // Setup: topiramate 50 mg twice a day, 60 tablets for 30 days, 5 refills.
    rx ref = preventive_rx("ref", "REF", "anticonvulsant", "topiramate", "2024-01-10", 30, 5);
    ref.quantity = 60;
    ref.dose_quantity = 1;
    ref.doses_per_day = 2;
    ref.strength_mg = 50;
    add(ref);
    // The same order, replaced after a month by a new order of the same
    // ingredient without refills: the first order's refills stop there.
    add(preventive_rx("n1", "NEXT", "anticonvulsant", "topiramate", "2024-01-10", 30, 5));
    add(preventive_rx("n2", "NEXT", "anticonvulsant", "topiramate", "2024-02-20", 30, 0));
    // Run / Check: the old view said 4.3 weeks, not adequate.
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT patient_key, start_date, end_date, duration_days, duration_weeks, adequate, "
                   "duration_basis, daily_dose_mg, min_effective_daily_mg, dose_adequate FROM "
                   "v_preventive_history ORDER BY patient_key"),
              (rows_t{"NEXT|2024-01-10|2024-03-21|71|10.1|1|supply|-|50.0|-",
                      "REF|2024-01-10|2024-07-08|180|25.7|1|supply|100.0|50.0|1"}));
}

TEST_F(clinical, TimololDropsAndABladderInjectionMakeNoTrial) {
    // Setup: an episodic migraine patient with an adequate topiramate trial,
    // timolol eye drops for glaucoma (a year, refilled) and two bladder
    // botulinum toxin injections (CPT 52287).
    add(preventive_rx("topi", "EYE", "anticonvulsant", "topiramate", "2024-01-01", 90, 0));
    rx drops = preventive_rx("drops", "EYE", "beta_blocker", "timolol", "2024-01-01", 30, 11, "active");
    drops.route = "ophthalmic";
    add(drops);
    procedure("bl1", "EYE", "52287", "2024-03-01", "botulinum_toxin_other");
    procedure("bl2", "EYE", "52287", "2024-06-01", "botulinum_toxin_other");
    diagnose("EYE", "migraine_without_aura");
    // Run / Check: the old view made this patient "ready" with two classes.
    EXPECT_EQ(rows(db_.sql(), "SELECT drug_class, adequate FROM v_preventive_history ORDER BY drug_class"),
              (rows_t{"anticonvulsant|1"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT count(*) FROM v_payer_step_therapy"), (rows_t{"0"}));
    EXPECT_EQ(
        rows(db_.sql(), "SELECT current_preventive_classes FROM v_patient_summary WHERE patient_key = 'EYE'"),
        (rows_t{}));
}

TEST_F(clinical, ABotulinumOrderAndItsInjectionAreOneCycleAndTwoCyclesCountOnlyInChronicMigraine) {
    // Setup: an order, then the injection (64615) and the drug (J0585) ten
    // days later: one cycle; a second injection 12 weeks on.
    for (const char* p : {"CM", "EM"}) {
        const std::string k = p;
        rx order{k + "-o", k, "botulinum_toxin", "preventive", "2024-01-10"};
        add(order);
        procedure(k + "-p1", k, "64615", "2024-01-20", "botulinum_toxin");
        procedure(k + "-p2", k, "J0585", "2024-01-20", "botulinum_toxin");
        procedure(k + "-p3", k, "64615", "2024-04-13", "botulinum_toxin");
    }
    add({"one-o", "ONE", "botulinum_toxin", "preventive", "2024-01-10"});
    procedure("one-p", "ONE", "64615", "2024-01-20", "botulinum_toxin");
    diagnose("CM", "chronic_migraine");
    diagnose("EM", "migraine_without_aura");
    diagnose("ONE", "chronic_migraine");
    // Run / Check: the old view counted the order and the injection as two.
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT patient_key, start_date, end_date, cycles, adequate, duration_basis FROM "
                   "v_preventive_history ORDER BY patient_key"),
              (rows_t{"CM|2024-01-10|2024-07-06|2|1|botulinum cycles",
                      "EM|2024-01-10|2024-07-06|2|0|botulinum cycles",
                      "ONE|2024-01-10|2024-04-03|1|0|botulinum cycles"}));
}

TEST_F(clinical, SeveralClassesIsNamedOnlyWhenNoClassAloneIsOverused) {
    // Setup: triptans on 12 days and an opioid on 5 other days, 4 months.
    monthly("BOTH", "triptan", 12, 4, "01");
    monthly("BOTH", "opioid", 5, 4, "15");
    diagnose("BOTH", "migraine");
    // Run / Check: ICHD-3 8.2.2 applies; 8.2.6 is for classes not individually overused.
    EXPECT_EQ(moh(), (rows_t{"BOTH|meets|below|2024-01|2024-04|4|triptan"}));
}

TEST_F(clinical, APreventiveDrugTakenAsNeededIsNoTrial) {
    rx prn = preventive_rx("prn", "PRN", "beta_blocker", "propranolol", "2024-01-01", 90, 1);
    prn.as_needed = 1;
    add(prn);
    EXPECT_EQ(rows(db_.sql(), "SELECT count(*) FROM v_preventive_history"), (rows_t{"0"}));
}

TEST_F(clinical, UnknownSupplyIsDurationUnknownNotZeroWeeks) {
    add(preventive_rx("u", "UNK", "beta_blocker", "propranolol", "2024-03-01", 0, -1));
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT duration_days, duration_weeks, adequate, duration_basis, unknown_supply_prescriptions "
             "FROM v_preventive_history"),
        (rows_t{"-|-|-|duration unknown|1"}));
}

TEST_F(clinical, PhentermineTopiramateBelowTheEffectiveDoseIsNotAnAdequateTrial) {
    // Setup: 46 mg of topiramate a day for 180 days.
    rx low = preventive_rx("low", "LOW", "anticonvulsant", "topiramate", "2024-01-10", 30, 5);
    low.quantity = 30;
    low.dose_quantity = 1;
    low.doses_per_day = 1;
    low.strength_mg = 46;
    add(low);
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT duration_weeks, daily_dose_mg, min_effective_daily_mg, dose_adequate, adequate "
                   "FROM v_preventive_history"),
              (rows_t{"25.7|46.0|50.0|0|0"}));
}

TEST_F(clinical, ATensionTypeOnlyPatientIsNeverACandidate) {
    // Setup: the same disability and NSAID overuse (16 scheduled days a
    // month, Sep-Dec) with tension-type headache only, and with migraine.
    for (const char* p : {"TTH", "MIG"}) {
        score(p, "midas", 30, "2024-11-01");
        score(p, "hit6", 64, "2024-11-01");
        for (int m = 9; m <= 12; ++m) {
            rx r{std::string(p) + "-n" + std::to_string(m),
                 p,
                 "nsaid",
                 "acute",
                 "2024-" + std::string(m < 10 ? "0" : "") + std::to_string(m) + "-01",
                 16};
            r.as_needed = 0;
            add(r);
        }
    }
    diagnose("TTH", "tension_type");
    diagnose("MIG", "migraine_without_aura");
    diagnose("MIG", "tension_type");
    // Chronic migraine, no scores; the same on a current CGRP antibody;
    // episodic migraine with a low MIDAS and an older high one.
    diagnose("CM", "chronic_migraine");
    diagnose("CMON", "chronic_migraine");
    add(preventive_rx("mab", "CMON", "cgrp_mab", "erenumab", "2024-12-15", 30, 0, "active"));
    diagnose("EPI", "migraine_without_aura");
    score("EPI", "midas", 20, "2024-01-01");
    score("EPI", "midas", 5, "2024-10-01");
    // Run / Check: the old view had no candidates view; its readiness listed
    // patients without migraine.
    EXPECT_EQ(rows(db_.sql(), "SELECT * FROM v_cgrp_candidates ORDER BY patient_key"),
              (rows_t{"CM|chronic_migraine|1|-|-|-|-|-",
                      "MIG|midas,hit6,moh_meets|0|30.0|2024-11-01|64.0|2024-11-01|meets"}));
}

TEST_F(clinical, ADeceasedPatientAppearsInNoCount) {
    // Setup: two patients with the same history; one died in June 2024.
    for (const char* p : {"DEAD", "ALIVE"}) {
        const std::string k = p;
        person(k, 1985, "female", k == "DEAD" ? "2024-06-01" : "");
        diagnose(k, "chronic_migraine");
        score(k, "midas", 30, "2024-05-01");
        add(preventive_rx(k + "-t", k, "anticonvulsant", "topiramate", "2024-01-01", 90, 0));
        add(preventive_rx(k + "-p", k, "beta_blocker", "propranolol", "2024-04-01", 30, 11, "active"));
        rx opioid{k + "-o", k, "combination_analgesic", "acute", "2024-11-01"};
        opioid.as_needed = 1;
        opioid.quantity = 20;
        opioid.contains_opioid = 1;
        opioid.ingredient = "acetaminophen / oxycodone";
        add(opioid);
    }
    // Run / Check: the living patient is counted everywhere, the dead one nowhere.
    EXPECT_EQ(rows(db_.sql(), "SELECT patient_key FROM v_cgrp_candidates"), (rows_t{"ALIVE"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT patient_key FROM v_payer_step_therapy"), (rows_t{"ALIVE"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT patient_key, flag FROM v_safety_flags ORDER BY 1, 2"),
              (rows_t{"ALIVE|opioid_or_butalbital", "ALIVE|teratogen_childbearing_age"}));
    EXPECT_EQ(rows(db_.sql(), "SELECT patient_key, current_state, deceased FROM v_moh_risk ORDER BY 1"),
              (rows_t{"ALIVE|below|0", "DEAD|-|1"}));
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT patient_key, current_acute_classes, current_preventive_classes, deceased, deceased_at "
             "FROM v_patient_summary ORDER BY 1"),
        (rows_t{"ALIVE|combination_analgesic|beta_blocker|0|-", "DEAD|-|-|1|2024-06-01"}));
    // Nothing is taken after death: the propranolol supply ends on 2024-06-01.
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT patient_key, drug_class, ongoing, supply_end FROM v_preventive_history ORDER BY 1, 2"),
        (rows_t{"ALIVE|anticonvulsant|0|2024-03-31", "ALIVE|beta_blocker|1|2025-03-27",
                "DEAD|anticonvulsant|0|2024-03-31", "DEAD|beta_blocker|0|2024-06-01"}));
}

TEST_F(clinical, CurrentMeansTheSupplyReachesAsOfNotAnActiveStatus) {
    // Setup (as_of 2024-12-31): an "active" preventive written in January for
    // 30 days; one from October for 30 days with 3 refills (to February);
    // an as-needed triptan from August (within 180 days) and an "active"
    // one from March (not).
    person("CUR", 1970, "male");
    add(preventive_rx("old", "CUR", "arb", "candesartan", "2024-01-05", 30, 0, "active"));
    add(preventive_rx("ref", "CUR", "beta_blocker", "metoprolol", "2024-10-01", 30, 3));
    rx recent{"prn1", "CUR", "triptan", "acute", "2024-08-01"};
    recent.as_needed = 1;
    recent.quantity = 9;
    recent.ingredient = "sumatriptan";
    add(recent);
    rx old_prn{"prn0", "CUR", "ergot", "acute", "2024-03-01", 0, "active"};
    old_prn.as_needed = 1;
    old_prn.quantity = 4;
    add(old_prn);
    // Run / Check: the old view listed every "active" order.
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT current_acute_medications, current_preventive_medications FROM v_patient_summary"),
              (rows_t{"sumatriptan (triptan)|metoprolol (beta_blocker)"}));
}

TEST_F(clinical, SafetyFlagsNameTheRowsBehindThem) {
    // Setup: topiramate for a woman of 30; migraine with aura and an
    // ethinyl estradiol contraceptive (no drug class); a triptan with
    // coronary disease (ICD-10 I25.10); butalbital for a migraine patient;
    // and a man on topiramate with an estradiol-only prescription.
    person("F30", 1994, "female");
    add(preventive_rx("topi", "F30", "anticonvulsant", "topiramate", "2024-03-01", 30, 0));
    person("AURA", 1990, "female");
    diagnose("AURA", "migraine_with_aura");
    rx pill{"pill", "AURA", "", "other", "2024-02-01", 28};
    pill.display = "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet";
    pill.ingredient = "";
    add(pill);
    exec("UPDATE medication_request SET drug_class = NULL, ingredient = NULL WHERE id = 'pill'");
    diagnose("CAD", "", "http://hl7.org/fhir/sid/icd-10-cm", "I25.10");
    diagnose("CAD", "migraine");
    rx suma{"suma", "CAD", "triptan", "acute", "2024-05-01"};
    suma.ingredient = "sumatriptan";
    add(suma);
    diagnose("BUT", "migraine");
    rx but{"but", "BUT", "combination_analgesic", "acute", "2024-06-01"};
    but.contains_butalbital = 1;
    but.ingredient = "acetaminophen / butalbital / caffeine";
    add(but);
    person("MAN", 1990, "male");
    diagnose("MAN", "migraine_with_aura");
    add(preventive_rx("mtopi", "MAN", "anticonvulsant", "topiramate", "2024-03-01", 30, 0));
    rx e2{"e2", "MAN", "", "other", "2024-02-01", 28};
    e2.display = "estradiol 1 MG Oral Tablet";
    add(e2);
    exec("UPDATE medication_request SET drug_class = NULL WHERE id = 'e2'");
    // Run / Check
    EXPECT_EQ(
        rows(db_.sql(),
             "SELECT patient_key, flag, evidence_rows, first_at, last_at FROM v_safety_flags ORDER BY 1, 2"),
        (rows_t{"AURA|aura_estrogen_contraceptive|2|2020-01-01|2024-02-01",
                "BUT|opioid_or_butalbital|1|2024-06-01|2024-06-01",
                "CAD|triptan_ergot_vascular_disease|2|2020-01-01|2024-05-01",
                "F30|teratogen_childbearing_age|1|2024-03-01|2024-03-01"}));
    EXPECT_EQ(
        rows(db_.sql(), "SELECT evidence FROM v_safety_flags WHERE patient_key = 'F30'"),
        (rows_t{R"([{"table":"medication_request","source":"ehr","id":"topi","ingredient":"topiramate",)"
                R"("authored_on":"2024-03-01","age_at_order":30}])"}));
}

// FDA labels (valproate, topiramate) and schema/README.md: the flag covers
// women of 15 to 45. Only the birth year is kept, so the age at the order
// is the year difference, and each end takes in the year before: a
// difference of 15 (a woman of 14 or 15) and of 46 (45 or 46) is flagged,
// 14 and 47 are not.
TEST_F(clinical, TheTeratogenFlagCoversBirthYearsFifteenToFortySixBeforeTheOrder) {
    for (const int age : {14, 15, 46, 47}) {
        const std::string k = "F" + std::to_string(age);
        person(k, 2024 - age, "female");
        add(preventive_rx(k + "-topi", k, "anticonvulsant", "topiramate", "2024-03-01", 30, 0));
    }
    EXPECT_EQ(rows(db_.sql(),
                   "SELECT patient_key, json_extract(evidence, '$[0].age_at_order') FROM v_safety_flags "
                   "WHERE flag = 'teratogen_childbearing_age' ORDER BY 1"),
              (rows_t{"F15|15", "F46|46"}));
}

TEST_F(clinical, TreatmentResponseComparesBaselineWithThreeAndSixMonths) {
    // Setup: erenumab from 2024-03-01; MIDAS 40 two weeks before (and an
    // older 50), 22 at 3 months, 12 at 6 months; HIT-6 only at baseline.
    add(preventive_rx("mab", "TR", "cgrp_mab", "erenumab", "2024-03-01", 30, 6));
    score("TR", "midas", 50, "2023-10-01");
    score("TR", "midas", 40, "2024-02-15");
    score("TR", "midas", 22, "2024-06-03");
    score("TR", "midas", 12, "2024-08-30");
    score("TR", "hit6", 66, "2024-02-15");
    EXPECT_EQ(rows(db_.sql(), "SELECT * FROM v_treatment_response ORDER BY instrument"),
              (rows_t{"TR|cgrp_mab|1|erenumab|2024-03-01|1|hit6|66.0|2024-02-15|-|-|-|-|-|-",
                      "TR|cgrp_mab|1|erenumab|2024-03-01|1|midas|40.0|2024-02-15|22.0|2024-06-03|-18.0|12.0|"
                      "2024-08-30|-28.0"}));
}

// --- schema/README.md ------------------------------------------------------

// Columns of every v_* view that schema/README.md does not name in that
// view's section ("## `v_name`" … a table row "| `column` |").
std::vector<std::string> undocumented_columns(SQLite::Database& db, const std::string& readme) {
    std::vector<std::string> missing;
    SQLite::Statement views(db, "SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name");
    while (views.executeStep()) {
        const std::string view = views.getColumn(0).getString();
        const auto start = readme.find("## `" + view + "`");
        if (start == std::string::npos) {
            missing.push_back(view);
            continue;
        }
        auto end = readme.find("\n## ", start + 1);
        if (end == std::string::npos) end = readme.size();
        const std::string section = readme.substr(start, end - start);
        std::set<std::string> named;
        std::istringstream lines(section);
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind("| `", 0) != 0) continue;
            const auto cell_end = line.find(" |", 2);
            const std::string cell = line.substr(2, cell_end - 2);
            for (std::size_t p = cell.find('`'); p != std::string::npos; p = cell.find('`', p)) {
                const auto q = cell.find('`', p + 1);
                if (q == std::string::npos) break;
                named.insert(cell.substr(p + 1, q - p - 1));
                p = q + 1;
            }
        }
        SQLite::Statement cols(db, "SELECT name FROM pragma_table_info(?1)");
        cols.bind(1, view);
        while (cols.executeStep())
            if (!named.count(cols.getColumn(0).getString()))
                missing.push_back(view + "." + cols.getColumn(0).getString());
    }
    return missing;
}

std::string schema_readme() {
    return read_file(headachemd::test::fixtures().parent_path().parent_path() / "schema" / "README.md");
}

TEST_F(views, EveryViewColumnIsDocumentedInSchemaReadme) {
    const std::string readme = schema_readme();
    ASSERT_FALSE(readme.empty());
    EXPECT_EQ(undocumented_columns(db_.sql(), readme), std::vector<std::string>{});
    // The settings the views read are documented too.
    SQLite::Statement keys(db_.sql(), "SELECT key FROM analyst_setting");
    while (keys.executeStep()) {
        EXPECT_NE(readme.find("`" + keys.getColumn(0).getString() + "`"), std::string::npos)
            << keys.getColumn(0).getString();
    }
}

TEST_F(views, TheDocumentationCheckCatchesAnUndocumentedColumn) {
    exec("CREATE VIEW v_patient_summary_extra AS SELECT 1 AS nobody_wrote_this");
    exec("DROP VIEW v_sync_freshness");
    exec("CREATE VIEW v_sync_freshness AS SELECT 1 AS source, 2 AS surprise");
    EXPECT_EQ(undocumented_columns(db_.sql(), schema_readme()),
              (std::vector<std::string>{"v_patient_summary_extra", "v_sync_freshness.surprise"}));
}

// --- upgrading ----------------------------------------------------------------

TEST(ViewsMigration, AVersionTwoDatabaseKeepsItsRowsAndGainsTheViews) {
    // Setup: a database written by the previous release (migrations 1 and 2
    // only; same application_id as headache.db), with a prescription in it.
    temp_dir dir;
    const auto all = headachemd::schema::analytics_migrations();
    ASSERT_GE(all.size(), 3u);
    {
        SQLite::Database db = st::open_database(
            dir / "headache.db",
            st::database_kind{"analytics database", 0x48444d41, all.first(2), "NORMAL", 0640});
        db.exec(
            "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
            "authored_on, drug_class, therapy_role, days_supply) VALUES ('ehr', 'old', 'K', 'h', 'x', "
            "'completed', 'order', '2024-01-01', 'triptan', 'acute', 10)");
    }
    // Run
    st::analytics_db db(dir / "headache.db");
    // Check
    EXPECT_EQ(db.schema_version(), all.back().version);
    EXPECT_EQ(rows(db.sql(), "SELECT id, status_reason_code, status_reason FROM medication_request"),
              (rows_t{"old|-|-"}));
    // An as-needed (not stated) triptan with no quantity: unknown, not 10 days.
    EXPECT_EQ(
        rows(db.sql(),
             "SELECT month, acute_class, min_days, max_days, unknown_days FROM v_acute_exposure_monthly "
             "ORDER BY acute_class"),
        (rows_t{"2024-01|any|0|-|10", "2024-01|triptan|0|-|10"}));
}

}  // namespace
