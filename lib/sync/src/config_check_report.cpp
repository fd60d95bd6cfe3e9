#include "headachemd/sync/config_check_report.hpp"

#include <fmt/format.h>

#include "headachemd/logging/escape.hpp"

namespace headachemd::sync {

config_check_text render_config_check(std::string_view config_path, const config::config& cfg,
                                      const secret_file_report& secrets) {
    const auto esc = [](std::string_view v) { return logging::line_escaped(v); };
    config_check_text t;
    if (!secrets.errors.empty()) {
        for (const auto& e : secrets.errors) t.err += "error: " + esc(e) + "\n";
        t.err += fmt::format("{} error(s) in the files {} names\n", secrets.errors.size(), esc(config_path));
        return t;
    }
    t.ok = true;
    t.out = esc(config_path) + ": ok\n";
    for (const auto& e : cfg.ehrs) {
        int patients = 0;
        for (const auto& p : cfg.patients) patients += p.ehr == e.name;
        t.out += fmt::format("  ehr {:<16} {} profile={} patients={} every {}s, {} requests/min\n",
                             esc(e.name), esc(e.fhir_base), esc(e.profile), patients, e.interval.count(),
                             e.requests_per_minute);
    }
    for (const auto& n : secrets.notes) t.out += "  note: " + esc(n) + "\n";
    return t;
}

}  // namespace headachemd::sync
