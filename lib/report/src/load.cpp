// Reading the views: every query is a named constant and every value bound.
#include <sqlite3.h>

#include <algorithm>
#include <map>

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/report/report.hpp"

namespace headachemd::report {
namespace {

namespace fs = std::filesystem;

// PRAGMA application_id of headache.db ("HDMA"); see lib/store.
constexpr int analytics_application_id = 0x48444d41;
// The first schema version with the analyst views (schema/0003).
constexpr int views_schema_version = 3;

int pragma_int(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt();
}

std::string text(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }

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

// "YYYY-MM" → year * 12 + month - 1; -1 when not a month.
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

int index_of(std::vector<std::string>& names, const std::string& name) {
    for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) return static_cast<int>(i);
    names.push_back(name);
    return static_cast<int>(names.size() - 1);
}

constexpr const char* setting_sql = "SELECT value FROM analyst_setting WHERE key = ?1";
constexpr const char* as_of_sql =
    "SELECT COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now'))";
constexpr const char* summary_sql =
    "SELECT s.patient_key, COALESCE(t.label, s.headache_type, ''), s.sex, s.birth_year, "
    "s.current_acute_medications, s.current_preventive_medications, s.last_appointment, "
    "s.last_sync_success_at "
    "FROM v_patient_summary s LEFT JOIN analyst_headache_type t ON t.headache_type = s.headache_type "
    "ORDER BY s.patient_key";
constexpr const char* exposure_sql =
    "SELECT patient_key, month, acute_class, exposure_days FROM v_acute_exposure_monthly "
    "WHERE exposure_days > 0 ORDER BY patient_key, month, acute_class";
constexpr const char* moh_sql =
    "SELECT patient_key, first_month, last_month FROM v_moh_risk ORDER BY patient_key, first_month";
constexpr const char* cgrp_sql = "SELECT patient_key FROM v_cgrp_readiness";
constexpr const char* trials_sql =
    "SELECT patient_key, drug_class, start_date, COALESCE(end_date, MAX(supply_end, "
    "COALESCE(NULLIF((SELECT value FROM analyst_setting WHERE key = 'as_of'), ''), date('now')))), "
    "ongoing, adequate, stopped_for_intolerance FROM v_preventive_history ORDER BY patient_key, start_date";
// Scores straight from the table: the same filters as v_patient_summary.
constexpr const char* scores_sql =
    "SELECT patient_key, instrument, substr(effective_at, 1, 10), value_num FROM observation "
    "WHERE deleted_at IS NULL AND patient_key IS NOT NULL AND value_num IS NOT NULL "
    "AND instrument IN ('pain_nrs', 'midas', 'hit6') AND COALESCE(status, '') NOT IN ('entered-in-error', "
    "'cancelled') ORDER BY patient_key, effective_at";
constexpr const char* freshness_sql =
    "SELECT freshness, count(*) FROM v_sync_freshness GROUP BY freshness ORDER BY count(*) DESC, freshness";
constexpr const char* pulls_sql =
    "SELECT MAX(last_success_at), MIN(last_success_at) FROM v_sync_freshness WHERE last_success_at IS NOT "
    "NULL";

}  // namespace

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
                               ", older than the analyst views (" + std::to_string(views_schema_version) +
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
}  // namespace

report_data load(SQLite::Database& db) {
    read_snapshot snapshot(db);
    report_data out;
    auto& c = out.clinic;
    {
        SQLite::Statement q(db, as_of_sql);
        q.executeStep();
        c.as_of = text(q.getColumn(0));
    }
    {
        SQLite::Statement q(db, setting_sql);
        q.bind(1, "moh_days_10");
        if (q.executeStep()) out.moh_days_10 = q.getColumn(0).getInt();
        q.reset();
        q.bind(1, "moh_days_15");
        if (q.executeStep()) out.moh_days_15 = q.getColumn(0).getInt();
    }
    std::map<std::string, std::size_t> by_key;
    std::map<std::string, std::int64_t> types;
    {
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
            ++types[p.headache_type.empty() ? "No headache diagnosis" : p.headache_type];
            by_key.emplace(p.key, out.patients.size());
            out.patients.push_back(std::move(p));
        }
    }
    c.patients = static_cast<std::int64_t>(out.patients.size());
    for (const auto& [label, n] : types) c.by_headache_type.push_back({label, n});
    std::stable_sort(c.by_headache_type.begin(), c.by_headache_type.end(),
                     [](const count& a, const count& b) { return a.n > b.n; });

    auto find = [&](const std::string& key) -> patient* {
        const auto it = by_key.find(key);
        return it == by_key.end() ? nullptr : &out.patients[it->second];
    };
    {
        SQLite::Statement q(db, exposure_sql);
        while (q.executeStep()) {
            patient* p = find(text(q.getColumn(0)));
            const int m = month_number(text(q.getColumn(1)));
            if (!p || m < 0) continue;
            p->exposure.push_back(
                {m, index_of(out.acute_classes, text(q.getColumn(2))), q.getColumn(3).getInt()});
        }
    }
    const int as_of_month = month_number(c.as_of);
    {
        SQLite::Statement q(db, moh_sql);
        while (q.executeStep()) {
            patient* p = find(text(q.getColumn(0)));
            const int first = month_number(text(q.getColumn(1))), last = month_number(text(q.getColumn(2)));
            if (!p || first < 0 || last < 0) continue;
            if (!p->moh_risk) {
                p->moh_risk = true;
                ++c.moh_risk_patients;
            }
            p->moh_months.emplace_back(first, last);
        }
        for (const auto& p : out.patients) {
            bool recent = false;
            for (const auto& [first, last] : p.moh_months) recent = recent || last >= as_of_month - 1;
            c.moh_risk_recent += recent ? 1 : 0;
        }
    }
    {
        SQLite::Statement q(db, cgrp_sql);
        while (q.executeStep()) {
            if (patient* p = find(text(q.getColumn(0)))) {
                p->cgrp_ready = true;
                ++c.cgrp_ready_patients;
            }
        }
    }
    {
        SQLite::Statement q(db, trials_sql);
        while (q.executeStep()) {
            patient* p = find(text(q.getColumn(0)));
            const int start = day_number(text(q.getColumn(2))), end = day_number(text(q.getColumn(3)));
            if (!p || start < 0 || end < 0) continue;
            p->trials.push_back({index_of(out.preventive_classes, text(q.getColumn(1))), start, end,
                                 q.getColumn(4).getInt() != 0, q.getColumn(5).getInt() != 0,
                                 q.getColumn(6).getInt() != 0});
        }
    }
    {
        SQLite::Statement q(db, scores_sql);
        while (q.executeStep()) {
            patient* p = find(text(q.getColumn(0)));
            const std::string inst = text(q.getColumn(1));
            const int day = day_number(text(q.getColumn(2)));
            if (!p || day < 0) continue;
            p->scores.push_back({inst == "pain_nrs" ? 0
                                 : inst == "midas"  ? 1
                                                    : 2,
                                 day, q.getColumn(3).getDouble()});
        }
    }
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
    return out;
}

}  // namespace headachemd::report
