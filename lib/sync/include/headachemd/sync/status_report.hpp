// What `status` prints and /metrics counts: each listed patient with what
// the vault and sync_status say about them. Rendering is pure; gathering
// reads the two databases.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/store/view_tables.hpp"
#include "headachemd/sync/bulk_job.hpp"
#include "headachemd/sync/metrics.hpp"

namespace headachemd::sync {

struct patient_report {
    const config::patient_settings* patient = nullptr;  // points into the config given
    patient_facts facts;
    patient_health health;
};

// One report per [[patient]] of `cfg`, in config order. Throws
// store::store_error.
std::vector<patient_report> gather_reports(const config::config& cfg, store::analytics_db& db,
                                           store::vault& vault, sys_time now);

bool any_needs_attention(const std::vector<patient_report>& reports);

// The aligned table of `status`: a header line, then one line per patient.
std::string render_status_table(const std::vector<patient_report>& reports);

// The materialized views (store::read_view_states), under the table: one
// line each, saying whether the view holds every stored resource of its
// type (complete, or complete after a back-fill from resource_raw) or only
// some, and what fills the rest (the back-fill at the next start, or the
// next full pull when raw storage was off). Empty text when there is no
// view.
std::string render_view_status(const std::vector<store::view_state>& views);

// The views as a JSON array: name, table, resource, state (complete,
// backfilled, pending_backfill, backfill_under_way, pending_full_pull),
// created_at, backfilled_at (or null), missing_raw.
std::string render_views_json(const std::vector<store::view_state>& views);

// One [[ehr]] with [ehr.bulk]: its Bulk Data export job as the vault
// records it (issue 15).
struct bulk_report {
    std::string ehr;
    std::optional<bulk_job_record> job;  // nullopt before the first export
    std::optional<sys_time> written;     // when the job's row was last written
    std::optional<std::string> since;    // the cursor the next export starts from
    sys_time next_due{};                 // next_export_due (the daemon's schedule)
    // The last export failed: a monitoring check should look.
    bool needs_attention() const { return job && job->phase == bulk_phase::failed; }
};

// One report per [[ehr]] with [ehr.bulk], in config order. Throws
// store::store_error.
std::vector<bulk_report> gather_bulk_reports(const config::config& cfg, store::vault& vault, sys_time now);

// One line per export under the table: its phase, files, when, the next
// one, and why it failed (the error code and message, never a URL).
// Empty text when no [[ehr]] has [ehr.bulk].
std::string render_bulk_status(const std::vector<bulk_report>& bulk);

// `status --json`: one object, with "attention", "patients", "views" and
// "bulk" (ehr, phase or null, files_total, files_applied, updated_at,
// next_due, since, failure_code, failure_message, attention).
std::string render_status_json(const std::vector<patient_report>& reports,
                               const std::vector<store::view_state>& views = {},
                               const std::vector<bulk_report>& bulk = {});

}  // namespace headachemd::sync
