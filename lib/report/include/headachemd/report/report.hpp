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
#include <map>
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

// Deceased patients are shown (marked) but never counted: every number
// below is over living patients.
struct clinic_summary {
    std::int64_t patients = 0;            // living patients
    std::int64_t deceased_patients = 0;   // listed, marked, not counted anywhere else
    std::vector<count> by_headache_type;  // most common first; "No headache diagnosis" for none
    // v_moh_risk.current_state: the window that ends at as_of, never "ever".
    std::int64_t moh_meets = 0, moh_possible = 0, moh_indeterminate = 0;
    std::int64_t cgrp_candidates = 0;  // v_cgrp_candidates
    std::vector<count> safety_flags;   // patients per v_safety_flags.flag, most common first
    std::int64_t safety_flag_patients = 0;
    std::vector<count> freshness;  // v_sync_freshness rows by state
    std::string newest_pull, oldest_pull;
    std::string as_of;               // the date the views treat as today
    std::string data_from, data_to;  // the clinical records' dates (orders, scores, visits, procedures)
};

// One acute class in one month, as v_acute_exposure_monthly gives it:
// days of intake that the prescriptions account for at least (min_days)
// and at most (max_days), and days covered by orders of unknown quantity.
// Clamped here so that min <= max and max + unknown <= the month's days,
// whatever a view says.
struct month_exposure {
    int month = 0;        // year * 12 + (month - 1)
    int acute_class = 0;  // index into report_data::acute_classes ("any": all classes, distinct days)
    double min_days = 0, max_days = 0, unknown_days = 0;
    int threshold_days = 0;  // 0: no ICHD-3 threshold for the class
    int days_in_month = 0;
    int unknown_prescriptions = 0;  // prescriptions of unknown quantity started in the month
};

struct trial {
    int drug_class = 0;      // index into report_data::preventive_classes
    std::string drugs;       // the ingredients of the trial, as v_preventive_history lists them
    int start = 0, end = 0;  // days since 1970-01-01; end exclusive (as-of date when ongoing)
    bool ongoing = false, adequate = false, intolerance = false;
    bool duration_unknown = false;  // the supply is unknown: only the start is drawn
    bool adequacy_unknown = false;  // v_preventive_history.adequate is NULL
};

struct score {
    int instrument = 0;  // 0 pain NRS, 1 MIDAS, 2 HIT-6
    int day = 0;         // days since 1970-01-01
    double value = 0;
};

// A preventive start with a score before it and about 3 and 6 months after
// (v_treatment_response). NaN where there is no score in the window.
struct response {
    std::string drugs, instrument;  // instrument: "midas", "hit6", "pain_nrs"
    int start = 0;                  // days since 1970-01-01
    double baseline = 0, month3 = 0, month6 = 0;
};

struct patient {
    std::string key;  // the pseudonymous patient key; never a name or MRN
    std::string headache_type, sex, acute_meds, preventive_meds;
    std::int64_t birth_year = 0;  // 0 when unknown
    bool deceased = false;
    std::string deceased_at;                   // date or year as recorded; may be empty when deceased
    int deceased_day = -1;                     // days since 1970-01-01 when deceased_at is a date, else -1
    std::string moh_state, moh_current_state;  // v_moh_risk; empty when no row
    std::string moh_window;                    // "YYYY-MM to YYYY-MM" of the state's window
    std::string moh_classes;
    bool cgrp_candidate = false;
    std::string cgrp_reason;
    std::vector<std::string> safety_flags;
    std::string last_appointment, last_sync;
    std::vector<month_exposure> exposure;
    std::map<int, std::string> acute_drugs;  // acute class index -> the ingredients prescribed
    std::vector<trial> trials;
    std::vector<score> scores;
    std::vector<response> responses;  // CGRP therapies first, then botulinum toxin, then the rest
    // The one time axis of the exposure, preventive and score charts, in days
    // since 1970-01-01: the first of the month of the first event, to the
    // later of as_of and the last event (end exclusive).
    int axis_from = 0, axis_to = 0;
};

struct report_data {
    clinic_summary clinic;
    std::vector<std::string> acute_classes, preventive_classes;
    std::vector<patient> patients;  // ordered by key
};

// MIDAS grade (Stewart et al.): I 0-5, II 6-10, III 11-20, IV 21 and over.
std::string_view midas_grade(double score);
// HIT-6 impact: 49 or less little or none, 50-55 some, 56-59 substantial,
// 60 and over severe.
std::string_view hit6_band(double score);

// "YYYY-MM-DD" → days since 1970-01-01; -1 when not a date.
int day_number(std::string_view s);
// "YYYY-MM" → year * 12 + month - 1; -1 when not a month.
int month_number(std::string_view s);

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
