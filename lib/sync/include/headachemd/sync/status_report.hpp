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
// type or only those written since it was made (new or edited definition),
// and what fills the rest. Empty text when there is no view.
std::string render_view_status(const std::vector<store::view_state>& views);

// `status --json`: one object, with "attention" and "patients".
std::string render_status_json(const std::vector<patient_report>& reports);

}  // namespace headachemd::sync
