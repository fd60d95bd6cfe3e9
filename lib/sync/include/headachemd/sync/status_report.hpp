// What `status` prints and /metrics counts: each listed patient with what
// the vault and sync_status say about them. Rendering is pure; gathering
// reads the two databases.
#pragma once

#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/store/view_tables.hpp"
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

// `status --json`: one object, with "attention", "patients" and "views".
std::string render_status_json(const std::vector<patient_report>& reports,
                               const std::vector<store::view_state>& views = {});

}  // namespace headachemd::sync
