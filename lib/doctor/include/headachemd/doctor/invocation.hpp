// What `doctor` runs, from the command line and the config: which [[ehr]]
// an authorize URL belongs to, the inputs of the two drivers, the HTTP
// client's options, and how the reports of a run combine into one outcome.
// Everything here but client_options (which stats the CA files) is a pure
// function of its arguments; the daemon parses, prints and maps the
// outcome to an exit code.
#pragma once

#include <string_view>

#include "headachemd/config/config.hpp"
#include "headachemd/doctor/doctor.hpp"
#include "headachemd/http/client.hpp"

namespace headachemd::doctor {

// The [[ehr]] of `cfg` an authorize URL was made for, when the command
// line names none: the one whose fhir_base is `fhir_base` (--fhir-base;
// empty: none given), else the URL's aud with its trailing slashes removed
// (fhir_base never ends in one). The last such [[ehr]] when several match;
// nullptr when none does or the URL does not parse.
const config::ehr_settings* ehr_for_authorize_url(const config::config& cfg, std::string_view authorize_url,
                                                  std::string_view fhir_base);

// The input of check_authorize_url: the command line's URL, --fhir-base
// (empty: none) and --probe, completed from `ehr` when one is known (its
// FHIR base unless --fhir-base gave one, its client_id, its kind).
url_check make_url_check(std::string_view authorize_url, std::string_view fhir_base, bool probe,
                         const config::ehr_settings* ehr);

// The input of check_registration for one [[ehr]] of `cfg`: the redirect
// URI is `redirect_uri` (--redirect-uri, which checks another one without
// editing the config) when not empty, else the [[ehr]]'s (what enroll
// sends).
config_check make_config_check(const config::config& cfg, const config::ehr_settings& ehr,
                               std::string_view redirect_uri, bool probe);

// The client doctor talks to `ehr` with (null: no [[ehr]] is known; `cfg`
// null: no config): the config's CA files that are readable (a missing one
// is a finding of its own, not a failure to start), `ehr`'s http_timeout,
// and room for a large CapabilityStatement.
http::client_options client_options(const config::config* cfg, const config::ehr_settings* ehr);

// How a run ended, from the least to the most serious. Warnings and infos
// are not problems: they describe risks, not failures.
enum class outcome {
    ok,           // no error
    problem,      // a registration or configuration problem was found
    unreachable,  // the server could not be reached at all
};
outcome outcome_of(const report& rep);

// Several [[ehr]] checked in one run: the worst outcome wins.
outcome worst(outcome a, outcome b);

}  // namespace headachemd::doctor
