#include "headachemd/sync/views_setup.hpp"

#include <algorithm>
#include <stdexcept>

#include "headachemd/normalize/records.hpp"

namespace headachemd::sync {

// The config's [privacy] identifiers as the view engine's rule: a
// definition is checked against the same promise as the fixed tables.
views::privacy view_privacy(const config::config& cfg) {
    return cfg.privacy.identifiers == config::identifier_policy::minimal ? views::privacy::minimal
                                                                         : views::privacy::none;
}

std::vector<store::view_file> view_files(const config::config& cfg) {
    std::vector<store::view_file> out;
    for (const auto& v : cfg.views) out.push_back({v.name, v.file});
    return out;
}

namespace {

// Does a SMART scope let the app search `type`? SMART App Launch 1.0
// spells it patient/<Type>.read (or .*), 2.0 patient/<Type>.rs (any
// letters of "cruds" with r and s); user/ scopes grant the same for a
// user's patients, and <Type> may be *.
bool grants_search(std::string_view scope, std::string_view type) {
    std::string_view rest;
    if (scope.starts_with("patient/"))
        rest = scope.substr(8);
    else if (scope.starts_with("user/"))
        rest = scope.substr(5);
    else
        return false;
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos) return false;
    const std::string_view t = rest.substr(0, dot), perm = rest.substr(dot + 1);
    if (t != "*" && t != type) return false;
    if (perm == "read" || perm == "*") return true;
    const auto query = perm.find('?');  // 2.0 may narrow a scope: patient/Observation.rs?category=…
    const std::string_view letters = perm.substr(0, query);
    return letters.find('r') != std::string_view::npos && letters.find('s') != std::string_view::npos &&
           letters.find_first_not_of("cruds") == std::string_view::npos;
}

}  // namespace

// The sync searches only the types in each [[ehr]]'s `resources`, on
// purpose: a search the admin did not list would ask the EHR for data the
// app registration may not cover (a refused scope fails the token request
// at some EHRs, not just the search), and would read more PHI than the
// config says. So a view over a type an [[ehr]] does not search is named
// here with what to add, instead of being searched silently.
std::vector<std::string> view_search_warnings(const config::config& cfg,
                                              const std::vector<std::pair<std::string, std::string>>& views) {
    std::vector<std::string> out;
    for (const auto& e : cfg.ehrs) {
        for (const auto& [name, type] : views) {
            const bool searched = std::any_of(e.resources.begin(), e.resources.end(),
                                              [&](const auto& r) { return r.type == type; });
            const std::string ehr = "[[ehr]] \"" + e.name + "\"";
            if (!searched) {
                out.push_back("view \"" + name + "\" reads " + type + ", which " + ehr +
                              " does not search, so sync adds no rows to view_" + name + " from it: add \"" +
                              type + "\" to its resources (and patient/" + type +
                              ".read to its scopes, if the EHR's app registration grants it)");
                continue;
            }
            const bool granted = std::any_of(e.scopes.begin(), e.scopes.end(),
                                             [&](const auto& sc) { return grants_search(sc, type); });
            if (!granted)
                out.push_back(ehr + " searches " + type + " for view \"" + name +
                              "\", but its scopes grant no read of it: add patient/" + type +
                              ".read to its scopes");
        }
        // A listed type with neither a table nor a view: searched for nothing.
        for (const auto& r : e.resources) {
            if (!normalize::table_for_type(r.type).empty()) continue;
            const bool read =
                std::any_of(views.begin(), views.end(), [&](const auto& v) { return v.second == r.type; });
            if (!read)
                out.push_back("[[ehr]] \"" + e.name + "\" searches " + r.type +
                              ", which HeadacheMD does not normalize and no [[view]] reads: nothing from "
                              "that search is stored; remove it from resources or add a [[view]] over it");
        }
    }
    return out;
}

view_check check_views(const config::config& cfg) {
    view_check out;
    const auto files = view_files(cfg);
    auto loaded = store::load_views(files, view_privacy(cfg));
    out.errors = std::move(loaded.errors);
    std::vector<std::pair<std::string, std::string>> read;
    for (const auto& v : loaded.views) {
        out.notes.push_back("view \"" + v.name + "\": " + v.plan.resource() + ", " +
                            std::to_string(v.plan.columns().size()) + " columns -> table view_" + v.name);
        read.emplace_back(v.name, v.plan.resource());
    }
    out.warnings = view_search_warnings(cfg, read);
    return out;
}

std::shared_ptr<store::view_tables> open_views(store::analytics_db& db, const config::config& cfg,
                                               std::string_view now) {
    if (cfg.views.empty()) return nullptr;
    const auto files = view_files(cfg);
    auto loaded = store::load_views(files, view_privacy(cfg));
    if (!loaded.errors.empty()) {
        std::string message = "refused view definition(s) (see check-config):";
        for (const auto& e : loaded.errors) message += " " + e + ";";
        message.pop_back();
        throw std::invalid_argument(message);
    }
    return std::make_shared<store::view_tables>(db, std::move(loaded.views), now);
}

}  // namespace headachemd::sync
