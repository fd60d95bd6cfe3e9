// Reading the views: every query is a named constant and every value bound.
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <limits>
#include <map>

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/report/report.hpp"

namespace headachemd::report {
namespace {

namespace fs = std::filesystem;

// PRAGMA application_id of headache.db ("HDMA"); see lib/store.
constexpr int analytics_application_id = 0x48444d41;
// The first schema version with the clinical views the report reads
// (schema/0006: MOH states, CGRP candidates, safety flags).
constexpr int views_schema_version = 7;

int pragma_int(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt();
}

std::string text(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }

int index_of(std::vector<std::string>& names, const std::string& name) {
    for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) return static_cast<int>(i);
    names.push_back(name);
    return static_cast<int>(names.size() - 1);
}

constexpr const char* as_of_sql =
    "SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now'))";
// The clinical records' own dates: orders, scores, visits and procedures
// (booked appointments are plans, not data about the past).
constexpr const char* data_range_sql =
    "SELECT MIN(d), MAX(d) FROM ("
    "SELECT date(substr(authored_on, 1, 10)) AS d FROM medication_request WHERE deleted_at IS NULL "
    "UNION ALL SELECT date(substr(effective_at, 1, 10)) FROM observation WHERE deleted_at IS NULL "
    "UNION ALL SELECT date(substr(period_start, 1, 10)) FROM encounter WHERE deleted_at IS NULL "
    "UNION ALL SELECT date(substr(performed_start, 1, 10)) FROM procedure WHERE deleted_at IS NULL) "
    "WHERE d IS NOT NULL";
constexpr const char* summary_sql =
    "SELECT s.patient_key, COALESCE(t.label, s.headache_type, ''), s.sex, s.birth_year, "
    "s.current_acute_medications, s.current_preventive_medications, s.last_appointment, "
    "s.last_sync_success_at, COALESCE(s.deceased, 0), s.deceased_at "
    "FROM v_patient_summary s LEFT JOIN analyst_headache_type t ON t.headache_type = s.headache_type "
    "ORDER BY s.patient_key";
constexpr const char* exposure_sql =
    "SELECT patient_key, month, acute_class, min_days, known_max_days, threshold_days, days_in_month, "
    "unknown_quantity_prescriptions, unknown_days FROM v_acute_exposure_monthly "
    "WHERE COALESCE(known_max_days, 0) > 0 OR COALESCE(unknown_days, 0) > 0 "
    "ORDER BY patient_key, month, acute_class";
constexpr const char* acute_drugs_sql =
    "SELECT DISTINCT patient_key, acute_class, ingredient FROM v_prescription_supply "
    "WHERE acute_class IS NOT NULL AND ingredient IS NOT NULL ORDER BY patient_key, acute_class, ingredient";
constexpr const char* moh_sql =
    "SELECT patient_key, state, current_state, window_start_month, window_end_month, classes FROM v_moh_risk "
    "ORDER BY patient_key";
constexpr const char* cgrp_sql =
    "SELECT patient_key, reason FROM v_cgrp_candidates ORDER BY patient_key, reason";
constexpr const char* safety_sql =
    "SELECT DISTINCT patient_key, flag FROM v_safety_flags ORDER BY patient_key, flag";
constexpr const char* trials_sql =
    "SELECT patient_key, drug_class, ingredients, start_date, end_date, supply_end, ongoing, adequate, "
    "stopped_for_intolerance FROM v_preventive_history ORDER BY patient_key, start_date, drug_class";
// Scores straight from the table: the same filters as v_patient_summary.
constexpr const char* scores_sql =
    "SELECT patient_key, instrument, substr(effective_at, 1, 10), value_num FROM observation "
    "WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND value_num IS NOT NULL "
    "AND instrument IN ('pain_nrs', 'midas', 'hit6') AND COALESCE(status, '') NOT IN ('entered-in-error', "
    "'cancelled') ORDER BY patient_key, effective_at";
constexpr const char* response_sql =
    "SELECT patient_key, COALESCE(ingredients, drug_class), start_date, instrument, baseline_value, "
    "month3_value, "
    "month6_value FROM v_treatment_response "
    "WHERE baseline_value IS NOT NULL AND (month3_value IS NOT NULL OR month6_value IS NOT NULL) "
    "ORDER BY patient_key, class_rank, start_date, instrument";
constexpr const char* freshness_sql =
    "SELECT freshness, count(*) FROM v_sync_freshness GROUP BY freshness ORDER BY count(*) DESC, freshness";
constexpr const char* pulls_sql =
    "SELECT MAX(last_success_at), MIN(last_success_at) FROM v_sync_freshness WHERE last_success_at IS NOT "
    "NULL";

// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
int days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

// Days since 1970-01-01 of the first day of month index m (year * 12 + month - 1).
int month_start(int m) { return days_from_civil(m / 12, m % 12 + 1, 1); }

// The month index (year * 12 + month - 1) of a day (civil_from_days).
int month_of_day(int z) {
    z += 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const int doe = z - era * 146097;
    const int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int mp = (5 * doy + 2) / 153;
    const int m = mp < 10 ? mp + 3 : mp - 9;
    const int y = yoe + era * 400 + (m <= 2);
    return y * 12 + m - 1;
}

void sort_counts(std::vector<count>& v) {
    std::stable_sort(v.begin(), v.end(), [](const count& a, const count& b) { return a.n > b.n; });
}

}  // namespace

// "YYYY-MM-DD" → days since 1970-01-01 (the civil-from-days inverse of
// Howard Hinnant's algorithm); -1 when the text is not a date.
int day_number(std::string_view s) {
    if (s.size() < 10 || s[4] != '-' || s[7] != '-') return -1;
    auto num = [&](std::size_t at, std::size_t n) {
        int v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (s[i] < '0' || s[i] > '9') return -1;
            v = v * 10 + (s[i] - '0');
        }
        return v;
    };
    int y = num(0, 4);
    const int m = num(5, 2), d = num(8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int month_number(std::string_view s) {
    if (s.size() < 7 || s[4] != '-') return -1;
    int y = 0, m = 0;
    for (int i = 0; i < 4; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        y = y * 10 + (s[i] - '0');
    }
    for (int i = 5; i < 7; ++i) {
        if (s[i] < '0' || s[i] > '9') return -1;
        m = m * 10 + (s[i] - '0');
    }
    if (m < 1 || m > 12) return -1;
    return y * 12 + m - 1;
}

SQLite::Database open_read_only(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        throw report_error("no database at '" + path.string() +
                           "': point --db at the headache.db the daemon writes");
    try {
        SQLite::Database db(path, SQLite::OPEN_READONLY);
        db.setBusyTimeout(5000);
        const int app_id = pragma_int(db, "PRAGMA application_id");
        if (app_id != analytics_application_id)
            throw report_error("'" + path.string() +
                               "' is not a HeadacheMD analytics database (headache.db)");
        const int version = pragma_int(db, "PRAGMA user_version");
        if (version < views_schema_version)
            throw report_error("'" + path.string() + "' has schema version " + std::to_string(version) +
                               ", older than the clinical views (" + std::to_string(views_schema_version) +
                               "). Let this version of the daemon (run, sync-once or ingest) open it once: "
                               "that migrates it");
        return db;
    } catch (const report_error&) {
        throw;
    } catch (const SQLite::Exception& e) {
        throw report_error("cannot read '" + path.string() + "': " + e.what());
    }
}

namespace {
// One read transaction around every query: in WAL mode it pins one
// snapshot, so the counts and the patients agree even while the daemon
// commits pages between our queries.
class read_snapshot {
public:
    explicit read_snapshot(SQLite::Database& db) : db_(db) { db_.exec("BEGIN"); }
    ~read_snapshot() {
        try {
            db_.exec("COMMIT");
        } catch (...) {  // nothing was written; a failed end of a read changes nothing
        }
    }
    read_snapshot(const read_snapshot&) = delete;
    read_snapshot& operator=(const read_snapshot&) = delete;

private:
    SQLite::Database& db_;
};

// The patients by key, for the queries that add to one patient.
using patient_keys = std::map<std::string, std::size_t>;

patient* find_patient(report_data& out, const patient_keys& keys, const std::string& key) {
    const auto it = keys.find(key);
    return it == keys.end() ? nullptr : &out.patients[it->second];
}

// The report's date and the span of the clinical records.
void read_dates(SQLite::Database& db, clinic_summary& c) {
    {
        SQLite::Statement q(db, as_of_sql);
        q.executeStep();
        c.as_of = text(q.getColumn(0));
    }
    {
        SQLite::Statement q(db, data_range_sql);
        if (q.executeStep()) {
            c.data_from = text(q.getColumn(0));
            c.data_to = text(q.getColumn(1));
        }
    }
}

// One row per patient, and the clinic's counts by headache type.
patient_keys read_patients(SQLite::Database& db, report_data& out) {
    auto& c = out.clinic;
    patient_keys by_key;
    std::map<std::string, std::int64_t> types;
    SQLite::Statement q(db, summary_sql);
    while (q.executeStep()) {
        patient p;
        p.key = text(q.getColumn(0));
        p.headache_type = text(q.getColumn(1));
        p.sex = text(q.getColumn(2));
        p.birth_year = q.getColumn(3).isNull() ? 0 : q.getColumn(3).getInt64();
        p.acute_meds = text(q.getColumn(4));
        p.preventive_meds = text(q.getColumn(5));
        p.last_appointment = text(q.getColumn(6));
        p.last_sync = text(q.getColumn(7));
        p.deceased = q.getColumn(8).getInt() != 0;
        p.deceased_at = text(q.getColumn(9));
        p.deceased_day = p.deceased ? day_number(p.deceased_at) : -1;
        if (p.deceased)
            ++c.deceased_patients;
        else
            ++types[p.headache_type.empty() ? "No headache diagnosis" : p.headache_type];
        by_key.emplace(p.key, out.patients.size());
        out.patients.push_back(std::move(p));
    }
    c.patients = static_cast<std::int64_t>(out.patients.size()) - c.deceased_patients;
    for (const auto& [label, n] : types) c.by_headache_type.push_back({label, n});
    sort_counts(c.by_headache_type);
    return by_key;
}

void read_exposure(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    SQLite::Statement q(db, exposure_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        const int m = month_number(text(q.getColumn(1)));
        if (!p || m < 0) continue;
        month_exposure e;
        e.month = m;
        e.acute_class = index_of(out.acute_classes, text(q.getColumn(2)));
        // A month never holds more days than it has, whatever a view says.
        e.days_in_month =
            q.getColumn(6).isNull() ? month_start(m + 1) - month_start(m) : q.getColumn(6).getInt();
        const double cap = e.days_in_month;
        const auto num = [&](int i) { return q.getColumn(i).isNull() ? 0.0 : q.getColumn(i).getDouble(); };
        e.max_days = std::clamp(num(4), 0.0, cap);
        e.min_days = std::clamp(num(3), 0.0, e.max_days);
        e.unknown_days = std::clamp(num(8), 0.0, cap - e.max_days);
        e.threshold_days = q.getColumn(5).isNull() ? 0 : q.getColumn(5).getInt();
        e.unknown_prescriptions = q.getColumn(7).isNull() ? 0 : q.getColumn(7).getInt();
        p->exposure.push_back(e);
    }
}

void read_acute_drugs(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    SQLite::Statement q(db, acute_drugs_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        if (!p) continue;
        std::string& drugs = p->acute_drugs[index_of(out.acute_classes, text(q.getColumn(1)))];
        drugs += (drugs.empty() ? "" : ", ") + text(q.getColumn(2));
    }
}

void read_moh(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    auto& c = out.clinic;
    SQLite::Statement q(db, moh_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        if (!p) continue;
        p->moh_state = text(q.getColumn(1));
        p->moh_current_state = text(q.getColumn(2));
        const std::string from = text(q.getColumn(3)), to = text(q.getColumn(4));
        if (!from.empty()) p->moh_window = from + " to " + to;
        p->moh_classes = text(q.getColumn(5));
        if (p->deceased) continue;  // never counted, whatever the view says
        if (p->moh_current_state == "meets") ++c.moh_meets;
        if (p->moh_current_state == "possible") ++c.moh_possible;
        if (p->moh_current_state == "indeterminate") ++c.moh_indeterminate;
    }
}

void read_cgrp(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    auto& c = out.clinic;
    SQLite::Statement q(db, cgrp_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        if (!p || p->deceased) continue;
        if (!p->cgrp_candidate) ++c.cgrp_candidates;
        p->cgrp_candidate = true;
        const std::string reason = text(q.getColumn(1));
        if (!reason.empty()) p->cgrp_reason += (p->cgrp_reason.empty() ? "" : "; ") + reason;
    }
}

void read_safety_flags(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    auto& c = out.clinic;
    std::map<std::string, std::int64_t> flags;
    SQLite::Statement q(db, safety_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        if (!p || p->deceased) continue;
        if (p->safety_flags.empty()) ++c.safety_flag_patients;
        p->safety_flags.push_back(text(q.getColumn(1)));
        ++flags[p->safety_flags.back()];
    }
    for (const auto& [label, n] : flags) c.safety_flags.push_back({label, n});
    sort_counts(c.safety_flags);
}

void read_trials(SQLite::Database& db, report_data& out, const patient_keys& keys, int as_of_day) {
    SQLite::Statement q(db, trials_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        const int start = day_number(text(q.getColumn(3)));
        if (!p || start < 0) continue;
        trial t;
        t.drug_class = index_of(out.preventive_classes, text(q.getColumn(1)));
        t.drugs = text(q.getColumn(2));
        t.start = start;
        t.ongoing = q.getColumn(6).getInt() != 0;
        t.adequate = !q.getColumn(7).isNull() && q.getColumn(7).getInt() != 0;
        t.adequacy_unknown = q.getColumn(7).isNull();
        t.intolerance = q.getColumn(8).getInt() != 0;
        const int end = day_number(text(q.getColumn(4))), supply_end = day_number(text(q.getColumn(5)));
        if (t.ongoing)
            t.end = std::max(start, as_of_day);
        else if (end >= 0)
            t.end = end;
        else if (supply_end >= 0)
            t.end = supply_end;
        else
            t.duration_unknown = true, t.end = start;
        p->trials.push_back(t);
    }
}

void read_scores(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    SQLite::Statement q(db, scores_sql);
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        const std::string inst = text(q.getColumn(1));
        const int day = day_number(text(q.getColumn(2)));
        if (!p || day < 0) continue;
        p->scores.push_back({inst == "pain_nrs" ? 0
                             : inst == "midas"  ? 1
                                                : 2,
                             day, q.getColumn(3).getDouble()});
    }
}

void read_responses(SQLite::Database& db, report_data& out, const patient_keys& keys) {
    SQLite::Statement q(db, response_sql);
    const auto value = [&](int i) {
        return q.getColumn(i).isNull() ? std::numeric_limits<double>::quiet_NaN()
                                       : q.getColumn(i).getDouble();
    };
    while (q.executeStep()) {
        patient* p = find_patient(out, keys, text(q.getColumn(0)));
        const int start = day_number(text(q.getColumn(2)));
        if (!p || start < 0) continue;
        p->responses.push_back(
            {text(q.getColumn(1)), text(q.getColumn(3)), start, value(4), value(5), value(6)});
    }
}

// One time axis per patient for all three charts.
void set_time_axes(report_data& out, int as_of_day) {
    for (auto& p : out.patients) {
        int from = std::numeric_limits<int>::max(), to = as_of_day;
        for (const auto& e : p.exposure) {
            from = std::min(from, month_start(e.month));
            to = std::max(to, month_start(e.month + 1));
        }
        for (const auto& t : p.trials) {
            from = std::min(from, t.start);
            to = std::max(to, t.end);
        }
        for (const auto& s : p.scores) {
            from = std::min(from, s.day);
            to = std::max(to, s.day + 1);
        }
        if (from == std::numeric_limits<int>::max()) from = as_of_day - 365;
        p.axis_from = month_start(month_of_day(from));  // from the first of that month
        p.axis_to = std::max(to, p.axis_from + 1);
    }
}

// How fresh the sync is: patients by freshness, newest and oldest pull.
void read_sync_state(SQLite::Database& db, clinic_summary& c) {
    {
        SQLite::Statement q(db, freshness_sql);
        while (q.executeStep()) c.freshness.push_back({text(q.getColumn(0)), q.getColumn(1).getInt64()});
    }
    {
        SQLite::Statement q(db, pulls_sql);
        if (q.executeStep()) {
            c.newest_pull = text(q.getColumn(0));
            c.oldest_pull = text(q.getColumn(1));
        }
    }
}

}  // namespace

report_data load(SQLite::Database& db) {
    read_snapshot snapshot(db);
    report_data out;
    read_dates(db, out.clinic);
    const patient_keys keys = read_patients(db, out);
    read_exposure(db, out, keys);
    read_acute_drugs(db, out, keys);
    read_moh(db, out, keys);
    read_cgrp(db, out, keys);
    read_safety_flags(db, out, keys);
    const int as_of_day = day_number(out.clinic.as_of);
    read_trials(db, out, keys, as_of_day);
    read_scores(db, out, keys);
    read_responses(db, out, keys);
    set_time_axes(out, as_of_day);
    read_sync_state(db, out.clinic);
    return out;
}

}  // namespace headachemd::report
