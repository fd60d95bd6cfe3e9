#include "headachemd/sync/views_setup.hpp"

#include <stdexcept>

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

view_check check_views(const config::config& cfg) {
    view_check out;
    const auto files = view_files(cfg);
    auto loaded = store::load_views(files, view_privacy(cfg));
    out.errors = std::move(loaded.errors);
    for (const auto& v : loaded.views)
        out.notes.push_back("view \"" + v.name + "\": " + v.plan.resource() + ", " +
                            std::to_string(v.plan.columns().size()) + " columns -> table view_" + v.name);
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
