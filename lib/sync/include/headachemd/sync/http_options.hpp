// The HTTP client's options for a command, from the config: shared by
// run/sync-once/enroll, unenroll and doctor so that they cannot drift.
#pragma once

#include <chrono>

#include "headachemd/config/config.hpp"
#include "headachemd/http/client.hpp"

namespace headachemd::sync {

// Every EHR's ca_file is trusted (`include_ca` may skip one, e.g. doctor
// skips an unreadable file it reports as a finding of its own).
//
// http_timeout is per EHR and is the deadline of each whole request (issue
// 12, defect 7). The engine gives each request its own EHR's value
// (http::request::timeout), so the client's default matters only for a
// command that talks to one EHR without the engine (enroll, unenroll,
// doctor): pass that EHR as `ehr` and its http_timeout becomes the
// default. There is no "largest over all EHRs", and no floor: a configured
// 5 s means 5 s (lib/config allows 1 s and up).
template <class IncludeCa>
http::client_options http_options_for(const config::config& cfg, const config::ehr_settings* ehr,
                                      IncludeCa include_ca) {
    http::client_options o;
    for (const auto& e : cfg.ehrs)
        if (e.ca_file && include_ca(*e.ca_file)) o.extra_ca_files.push_back(*e.ca_file);
    if (ehr) o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(ehr->http_timeout);
    return o;
}

inline http::client_options http_options_for(const config::config& cfg,
                                             const config::ehr_settings* ehr = nullptr) {
    return http_options_for(cfg, ehr, [](const auto&) { return true; });
}

}  // namespace headachemd::sync
