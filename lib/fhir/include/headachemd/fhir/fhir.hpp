// FHIR R4 REST, client side, as pure functions: building search URLs,
// reading a page's Bundle.link and total, reading a CapabilityStatement,
// and classifying a response into what the sync job should do.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "headachemd/core/result.hpp"

namespace headachemd::fhir {

struct search_spec {
    std::string fhir_base;      // no trailing slash
    std::string resource_type;  // "Observation"
    std::string patient_param;  // "patient" (or "_id" for Patient)
    std::string patient_id;
    std::vector<std::pair<std::string, std::string>> extra;  // per-type parameters from the config
    std::optional<int> count;                                // _count
    std::optional<std::string> last_updated_gt;              // instant for _lastUpdated=gt…
};

// {base}/{type}?{patient_param}={id}&…, every value percent-encoded
// except ',' (FHIR's OR separator) and ':'.
std::string search_url(const search_spec& s);

// `url` with one more query parameter, encoded the same way.
std::string with_query_param(std::string_view url, std::string_view name, std::string_view value);

// What a page says about itself beside its entries.
struct page_meta {
    std::string resource_type;        // "Bundle", or "OperationOutcome" for an error answered with 200
    std::optional<std::string> next;  // Bundle.link[relation=next].url, as sent (opaque)
    std::optional<long long> total;   // Bundle.total
    std::string outcome_summary;      // for an OperationOutcome: severity and code of each issue
    // Each Bundle.entry in order: its resource's resourceType and its
    // search.mode ("match", "include", "outcome"; "" when absent, as R4
    // makes it optional). Empty strings where the entry lacks them.
    struct entry_meta {
        std::string resource_type;
        std::string search_mode;
    };
    std::vector<entry_meta> entries;
};

result<page_meta> read_page_meta(simdjson::padded_string_view json);

// Per resource type, the search parameters the server declares
// (CapabilityStatement.rest[mode=server].resource[].searchParam[].name).
struct capabilities {
    std::map<std::string, std::set<std::string>, std::less<>> search_params;
    bool supports(std::string_view type, std::string_view param) const;
    bool serves(std::string_view type) const;
};

result<capabilities> parse_capability_statement(std::string_view json);

// What to do with an HTTP answer to a FHIR or token request.
enum class action {
    use,             // 2xx: use the body
    refresh_token,   // 401: refresh the access token once and retry
    not_permitted,   // 403: record it for this type, go on with the others
    not_found,       // 404: the type is not served here
    wait_and_retry,  // 429 or 503: wait (Retry-After or backoff), then retry
    retry,           // other 5xx: retry with backoff, up to a bound
    fail,            // anything else: fail this job; the next run starts over
};

action classify_status(int status);

// An instant for the _lastUpdated search: cursor minus the overlap (the
// server's clock and ours may disagree; repeats are harmless upserts).
std::string last_updated_with_overlap(std::string_view cursor, std::chrono::seconds overlap);

}  // namespace headachemd::fhir
