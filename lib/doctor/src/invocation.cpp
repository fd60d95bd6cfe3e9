#include "headachemd/doctor/invocation.hpp"

#include <algorithm>

#include "headachemd/sync/http_options.hpp"

namespace headachemd::doctor {

const config::ehr_settings* ehr_for_authorize_url(const config::config& cfg, std::string_view authorize_url,
                                                  std::string_view fhir_base) {
    const auto parts = parse_authorize_url(authorize_url);
    if (!parts) return nullptr;
    std::string_view aud = parts->get("aud") ? std::string_view(*parts->get("aud")) : std::string_view();
    while (!aud.empty() && aud.back() == '/') aud.remove_suffix(1);
    const std::string_view wanted = fhir_base.empty() ? aud : fhir_base;
    const config::ehr_settings* found = nullptr;
    for (const auto& e : cfg.ehrs)
        if (e.fhir_base == wanted) found = &e;
    return found;
}

url_check make_url_check(std::string_view authorize_url, std::string_view fhir_base, bool probe,
                         const config::ehr_settings* ehr) {
    url_check in;
    in.authorize_url = std::string(authorize_url);
    in.probe = probe;
    if (!fhir_base.empty()) in.fhir_base = std::string(fhir_base);
    if (ehr) {
        if (!in.fhir_base) in.fhir_base = ehr->fhir_base;
        in.client_id = ehr->client_id;
        in.kind = kind_of(*ehr);
    }
    return in;
}

config_check make_config_check(const config::config& cfg, const config::ehr_settings& ehr,
                               std::string_view redirect_uri, bool probe) {
    config_check in;
    in.cfg = &cfg;
    in.ehr = ehr;
    if (ehr.redirect_uri) in.redirect_uri = *ehr.redirect_uri;
    if (!redirect_uri.empty()) in.redirect_uri = std::string(redirect_uri);
    in.probe = probe;
    return in;
}

http::client_options client_options(const config::config* cfg, const config::ehr_settings* ehr) {
    http::client_options o;
    if (cfg)
        o = sync::http_options_for(*cfg, ehr, [](const auto& file) { return inspect_file(file).readable; });
    o.max_body_bytes = 16 << 20;  // a CapabilityStatement can be large
    return o;
}

outcome outcome_of(const report& rep) {
    if (rep.unreachable) return outcome::unreachable;
    return rep.passed() ? outcome::ok : outcome::problem;
}

outcome worst(outcome a, outcome b) { return std::max(a, b); }

}  // namespace headachemd::doctor
