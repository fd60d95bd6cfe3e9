#include "headachemd/sync/config_check_report.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "headachemd/logging/escape.hpp"

namespace headachemd::sync {
namespace {

std::string joined(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out += sep;
        out += i;
    }
    return out;
}

// One [ehr.bulk] as two lines under its EHR: what is exported and with
// which registration (never the key itself: only the file's path and kid),
// then the job's bounds.
std::string bulk_lines(const config::bulk_settings& b) {
    const auto esc = [](std::string_view v) { return logging::line_escaped(v); };
    std::string what = b.level == config::bulk_level::group     ? "Group/" + b.group_id + "/$export"
                       : b.level == config::bulk_level::patient ? std::string("Patient/$export")
                                                                : std::string("$export");
    std::string out =
        fmt::format("    bulk {} client={} key={} kid={} alg={}\n", esc(what), esc(b.client_id),
                    esc(b.private_key_file.string()), esc(b.key_id), config::to_string(b.algorithm));
    if (b.next_key)
        out += fmt::format("    bulk next key={} kid={} (published, not signing yet)\n",
                           esc(b.next_key->private_key_file.string()), esc(b.next_key->key_id));
    out += fmt::format("    bulk _type={} scope=\"{}\"\n", esc(joined(b.types, ",")),
                       esc(joined(b.scopes, " ")));
    out += fmt::format(
        "    bulk every {}s, _since overlap {}s, deadline {}s, Retry-After at most {}s, lines up to {} "
        "bytes\n",
        b.interval.count(), b.since_overlap.count(), b.job_deadline.count(), b.max_retry_after.count(),
        b.max_line_bytes);
    return out;
}

}  // namespace

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
        if (e.bulk) t.out += bulk_lines(*e.bulk);
    }
    for (const auto& n : secrets.notes) t.out += "  note: " + esc(n) + "\n";
    for (const auto& w : secrets.warnings) t.out += "  warning: " + esc(w) + "\n";
    // The public JWKS of the backend keys is served only on the metrics
    // listener (/.well-known/jwks.json). eClinicalWorks fetches the key from
    // the registered JWKS URL at every token request, so without a listener
    // behind that URL every bulk token request fails as invalid_client.
    bool bulk = false;
    for (const auto& e : cfg.ehrs) bulk = bulk || e.bulk.has_value();
    if (bulk && !cfg.daemon.metrics_listen)
        t.out +=
            "  warning: [ehr.bulk] keys are configured but [daemon] metrics_listen is not set, so the "
            "daemon does not serve their JWKS at /.well-known/jwks.json; an EHR that reads the key from "
            "a JWKS URL (eClinicalWorks) refuses every bulk token request until it is set\n";
    return t;
}

}  // namespace headachemd::sync
