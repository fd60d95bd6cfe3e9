// The [[view]] entries of the config, compiled and made into tables
// (store::view_tables), for the sync engine and check-config.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/store/view_tables.hpp"

namespace headachemd::sync {

std::vector<store::view_file> view_files(const config::config& cfg);

// check-config: each definition compiled; errors name the file and the
// JSON path, one line each; a note per view that compiled ("view "bp":
// Observation, 4 columns -> view_bp").
// Warnings: a view over a type some [[ehr]] does not search (or whose
// scopes do not grant it), and a searched type nothing stores.
struct view_check {
    std::vector<std::string> notes;
    std::vector<std::string> warnings;
    std::vector<std::string> errors;
};
view_check check_views(const config::config& cfg);

// The warnings alone, for (view name, FHIR type) pairs; pure.
std::vector<std::string> view_search_warnings(const config::config& cfg,
                                              const std::vector<std::pair<std::string, std::string>>& views);

// The engine's views: nullptr when the config has none. Throws
// std::invalid_argument listing every refused definition (check-config
// shows the same), store_error when the tables cannot be made.
std::shared_ptr<store::view_tables> open_views(store::analytics_db& db, const config::config& cfg,
                                               std::string_view now);

}  // namespace headachemd::sync
