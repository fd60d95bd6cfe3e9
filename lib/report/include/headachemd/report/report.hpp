// The clinic report: one self-contained HTML file drawn from headache.db.
//
// Three steps, each testable alone:
//   open_read_only(path)  a connection that can never write (analysts run the
//                         report while the daemon writes; WAL lets them);
//   load(db)              plain values read through the analyst views;
//   render_html(data)     pure: values in, HTML text out.
// The HTML holds no external reference (no script, font, image or style
// from anywhere else): charts are inline SVG drawn by the page's own small
// script from the embedded data, and the clinic summary is SVG drawn here.
// Every text that comes from the database is escaped for where it goes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>

#include "headachemd/core/html.hpp"

namespace headachemd::report {

// An expected failure (missing file, not a HeadacheMD database, schema too
// old for the views). The message names the file and says what to do.
class report_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Opens `path` with SQLITE_OPEN_READONLY: never creates, never migrates,
// never writes. Throws report_error.
SQLite::Database open_read_only(const std::filesystem::path& path);

struct count {
    std::string label;
    std::int64_t n = 0;
};

struct clinic_summary {
    std::int64_t patients = 0;
    std::vector<count> by_headache_type;  // most common first; "No headache diagnosis" for none
    std::int64_t moh_risk_patients = 0;   // patients with a row in v_moh_risk
    std::int64_t moh_risk_recent = 0;     // ... whose episode reaches the as-of month or the one before
    std::int64_t cgrp_ready_patients = 0;
    std::vector<count> freshness;  // v_sync_freshness rows by state
    std::string newest_pull, oldest_pull;
    std::string as_of;  // the date the views treat as today
};

struct month_exposure {
    int month = 0;        // year * 12 + (month - 1)
    int acute_class = 0;  // index into report_data::acute_classes
    int days = 0;
};

struct trial {
    int drug_class = 0;      // index into report_data::preventive_classes
    int start = 0, end = 0;  // days since 1970-01-01; end exclusive (as-of date when ongoing)
    bool ongoing = false, adequate = false, intolerance = false;
};

struct score {
    int instrument = 0;  // 0 pain NRS, 1 MIDAS, 2 HIT-6
    int day = 0;         // days since 1970-01-01
    double value = 0;
};

struct patient {
    std::string key;  // the pseudonymous patient key; never a name or MRN
    std::string headache_type, sex, acute_meds, preventive_meds;
    std::int64_t birth_year = 0;  // 0 when unknown
    bool moh_risk = false, cgrp_ready = false;
    std::string last_appointment, last_sync;
    std::vector<month_exposure> exposure;
    std::vector<std::pair<int, int>> moh_months;  // episodes, as month indexes
    std::vector<trial> trials;
    std::vector<score> scores;
};

struct report_data {
    clinic_summary clinic;
    std::vector<std::string> acute_classes, preventive_classes;
    std::vector<patient> patients;  // ordered by key
    int moh_days_10 = 10, moh_days_15 = 15;
};

// Reads everything the report shows. Throws SQLite::Exception on a broken
// database (the caller reports it).
report_data load(SQLite::Database& db);

struct options {
    std::string generated_at;  // shown in the header; the caller's clock
    int page_size = 25;        // patients per page of the list
};

std::string render_html(const report_data& data, const options& opts);

// &, <, >, " and ' as entities (the one in lib/core, shared with the
// enrollment callback page).
using headachemd::html_escape;

// A JSON string literal safe inside <script type="application/json">:
// <, >, &, U+2028 and U+2029 and control characters as \u escapes.
std::string json_string(std::string_view s);

}  // namespace headachemd::report
