// The Bulk Data protocol's pure pieces: see bulk_data.hpp for the contracts.
#include "headachemd/sync/bulk_data.hpp"

#include <array>

#include <simdjson.h>

#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::sync {

namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
constexpr bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(char c) { return is_upper(c) || is_lower(c); }

// A resource type name as FHIR R4 spells them: an upper-case letter, then
// letters ("Observation", "MedicationRequest"). Bounded: the longest R4
// name has 33 characters.
bool is_resource_type(std::string_view s) {
    if (s.empty() || s.size() > 64 || !is_upper(s.front())) return false;
    for (char c : s)
        if (!is_alpha(c)) return false;
    return true;
}

}  // namespace

bool is_fhir_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.')) return false;
    return true;
}

namespace {

bool digits(std::string_view s, std::size_t n) {
    if (s.size() != n) return false;
    for (char c : s)
        if (!is_digit(c)) return false;
    return true;
}

int number(std::string_view s) {
    int v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    return v;
}

// https anywhere; plain http only to a loopback host (the project's rule
// for every URL a token or PHI travels to: SMART App Launch requires TLS,
// the sandbox and tests run on loopback).
bool secure_enough(std::string_view url) {
    const auto o = http::origin_of(url);
    return o && (o->scheme == "https" || http::is_loopback_host(o->host));
}

error bad_request(std::string what) { return error{errc::bad_export_request, "bulk kick-off: " + what}; }
error bad_manifest(std::string what) { return error{errc::bad_manifest, "bulk manifest: " + what}; }

}  // namespace

std::string coded(std::string_view s) {
    if (s.empty() || s.size() > 32) return "?";
    for (char c : s)
        if (!(is_lower(c) || c == '-')) return "?";
    return std::string(s);
}

std::string_view to_string(bulk_file_kind k) {
    switch (k) {
        case bulk_file_kind::output:
            return "output";
        case bulk_file_kind::deleted:
            return "deleted";
        case bulk_file_kind::error:
            return "error";
    }
    return "output";
}

bool is_fhir_instant(std::string_view s) {
    // 2024-05-01T10:00:00Z, 2024-05-01T10:00:00.123+02:00
    if (s.size() < 20 || s.size() > 35) return false;
    if (!digits(s.substr(0, 4), 4) || s[4] != '-' || !digits(s.substr(5, 2), 2) || s[7] != '-' ||
        !digits(s.substr(8, 2), 2) || s[10] != 'T' || !digits(s.substr(11, 2), 2) || s[13] != ':' ||
        !digits(s.substr(14, 2), 2) || s[16] != ':' || !digits(s.substr(17, 2), 2))
        return false;
    const int month = number(s.substr(5, 2)), day = number(s.substr(8, 2));
    if (month < 1 || month > 12 || day < 1 || day > 31 || number(s.substr(11, 2)) > 23 ||
        number(s.substr(14, 2)) > 59 || number(s.substr(17, 2)) > 60)
        return false;
    std::string_view rest = s.substr(19);
    if (rest.front() == '.') {
        std::size_t n = 1;
        while (n < rest.size() && is_digit(rest[n])) ++n;
        if (n == 1 || n > 10) return false;  // 1 to 9 fraction digits
        rest.remove_prefix(n);
    }
    if (rest == "Z") return true;
    if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || !digits(rest.substr(1, 2), 2) ||
        rest[3] != ':' || !digits(rest.substr(4, 2), 2))
        return false;
    return number(rest.substr(1, 2)) <= 14 && number(rest.substr(4, 2)) <= 59;
}

std::string sanitize_progress(std::string_view value) {
    constexpr std::size_t max = 64;
    std::string out;
    for (char c : value.substr(0, std::min(value.size(), max))) {
        const auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7f) ? c : '?';
    }
    if (value.size() > max) out += "...";
    return out;
}

result<http_request> build_kickoff(const kickoff_spec& spec) {
    std::string base = spec.fhir_base;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (!http::origin_of(base)) return bad_request("fhir_base is not an absolute http(s) URL");
    if (!secure_enough(base)) return bad_request("fhir_base must be https (http only to a loopback host)");
    if (base.find_first_of("?#") != std::string::npos)
        return bad_request("fhir_base has a query or fragment");

    std::string url = base;
    switch (spec.level) {
        case export_level::group:
            if (!is_fhir_id(spec.group_id))
                return bad_request("group id is not a FHIR id ([A-Za-z0-9-.]{1,64})");
            url += "/Group/" + spec.group_id + "/$export";
            break;
        case export_level::patient:
            url += "/Patient/$export";
            break;
        case export_level::system:
            url += "/$export";
            break;
    }
    std::string type_list;
    for (std::size_t i = 0; i < spec.types.size(); ++i) {
        if (!is_resource_type(spec.types[i]))
            return bad_request("_type entry " + std::to_string(i) + " is not a resource type name");
        if (!type_list.empty()) type_list += ',';
        type_list += spec.types[i];
    }
    // One comma list, ',' literal: it is _type's own separator (FHIR search).
    if (!type_list.empty()) url = fhir::with_query_param(url, "_type", type_list);
    if (spec.since) {
        if (!is_fhir_instant(*spec.since)) return bad_request("_since is not a FHIR instant");
        // '+' of a time zone goes as %2B: a literal '+' is a space in a query.
        url = fhir::with_query_param(url, "_since", *spec.since);
    }
    for (std::size_t i = 0; i < spec.type_filters.size(); ++i) {
        const auto& f = spec.type_filters[i];
        const auto q = f.find('?');
        if (q == std::string::npos || !is_resource_type(std::string_view(f).substr(0, q)) ||
            q + 1 == f.size())
            return bad_request("_typeFilter entry " + std::to_string(i) + " is not Type?query");
        // Each filter is a query of its own: every reserved byte, ',' too,
        // is escaped so the server cannot split one filter into two.
        url += url.find('?') == std::string::npos ? '?' : '&';
        url += "_typeFilter=" + http::percent_encode(f);
    }
    return http_request{"GET", url, {{"Accept", "application/fhir+json"}, {"Prefer", "respond-async"}}};
}

namespace {

namespace dom = simdjson::dom;

// One entry of output[], deleted[] or error[].
result<bulk_file> read_entry(dom::element e, bulk_file_kind kind, const std::string& at,
                             const manifest_limits& limits) {
    dom::object o;
    if (e.get(o)) return bad_manifest(at + " is not an object");
    bulk_file f;
    f.kind = kind;
    std::string_view type, url;
    if (o["type"].get(type)) return bad_manifest(at + ".type is missing or not a string");
    if (!is_resource_type(type)) return bad_manifest(at + ".type is not a resource type name");
    f.type = type;
    if (o["url"].get(url)) return bad_manifest(at + ".url is missing or not a string");
    if (url.size() > limits.max_url_length)
        return bad_manifest(at + ".url is longer than " + std::to_string(limits.max_url_length) + " bytes");
    if (!http::origin_of(url)) return bad_manifest(at + ".url is not an absolute http(s) URL");
    if (!secure_enough(url)) return bad_manifest(at + ".url is not https (http only to a loopback host)");
    f.url = url;
    dom::element count;
    if (!o["count"].get(count)) {
        std::uint64_t n = 0;
        // A count is an integer; a negative or fractional one is not.
        if (count.get(n)) return bad_manifest(at + ".count is not a non-negative integer");
        if (n > limits.max_count)
            return bad_manifest(at + ".count is over the limit of " + std::to_string(limits.max_count));
        f.count = n;
    }
    return f;
}

// output, deleted or error: an array of entries, appended to `m.files`.
std::optional<error> read_list(dom::object doc, const char* name, bulk_file_kind kind, bool required,
                               bulk_manifest& m, const manifest_limits& limits) {
    dom::element v;
    if (doc[name].get(v)) {
        if (required) return bad_manifest(std::string(name) + " is missing");
        return std::nullopt;
    }
    dom::array a;
    if (v.get(a)) return bad_manifest(std::string(name) + " is not an array");
    std::size_t i = 0;
    for (auto e : a) {
        if (m.files.size() >= limits.max_files)
            return bad_manifest("more than " + std::to_string(limits.max_files) + " files in the manifest");
        auto f = read_entry(e, kind, std::string(name) + "[" + std::to_string(i++) + "]", limits);
        if (!f) return f.err();
        m.files.push_back(std::move(*f));
    }
    return std::nullopt;
}

}  // namespace

result<bulk_manifest> parse_manifest(std::string_view body, const manifest_limits& limits) {
    if (body.size() > limits.max_bytes)
        return bad_manifest("larger than " + std::to_string(limits.max_bytes) + " bytes");
    dom::parser parser;
    dom::element root;
    if (parser.parse(body).get(root)) return bad_manifest("not valid JSON");
    dom::object doc;
    if (root.get(doc)) return bad_manifest("not a JSON object");
    bulk_manifest m;
    std::string_view tt;
    if (doc["transactionTime"].get(tt)) return bad_manifest("transactionTime is missing or not a string");
    if (!is_fhir_instant(tt)) return bad_manifest("transactionTime is not a FHIR instant");
    m.transaction_time = tt;
    if (doc["requiresAccessToken"].get(m.requires_access_token))
        return bad_manifest("requiresAccessToken is missing or not a boolean");
    for (const auto& [name, kind, required] : {std::tuple{"output", bulk_file_kind::output, true},
                                               std::tuple{"deleted", bulk_file_kind::deleted, false},
                                               std::tuple{"error", bulk_file_kind::error, false}})
        if (auto e = read_list(doc, name, kind, required, m, limits)) return *e;
    return m;
}

bool is_transient_issue_code(std::string_view code) {
    // FHIR R4 CodeSystem issue-type: `transient` and its child concepts.
    static constexpr std::array<std::string_view, 7> codes{"transient", "lock-error", "no-store", "exception",
                                                           "timeout",   "incomplete", "throttled"};
    for (auto c : codes)
        if (c == code) return true;
    return false;
}

outcome_reading read_operation_outcome(std::string_view body) {
    outcome_reading r;
    if (body.size() > (std::size_t{1} << 20)) return r;  // not read: an outcome is small
    dom::parser parser;
    dom::element root;
    std::string_view type;
    dom::array issues;
    if (parser.parse(body).get(root) || root["resourceType"].get(type) || type != "OperationOutcome" ||
        root["issue"].get(issues))
        return r;
    bool any_error = false, all_transient = true;
    std::size_t shown = 0, total = 0;
    for (auto issue : issues) {
        ++total;
        std::string_view severity, code;
        if (issue["severity"].get(severity)) severity = "";
        if (issue["code"].get(code)) code = "";
        if (shown < 8) {
            if (!r.summary.empty()) r.summary += "; ";
            r.summary += coded(severity) + " " + coded(code);
            ++shown;
        }
        // Warnings and information do not decide: only what failed does.
        if ((severity == "error" || severity == "fatal") && !code.empty()) {
            any_error = true;
            all_transient = all_transient && is_transient_issue_code(code);
        }
    }
    if (total > shown) r.summary += "; and " + std::to_string(total - shown) + " more";
    if (any_error) r.verdict = all_transient ? outcome_class::transient : outcome_class::fatal;
    return r;
}

}  // namespace headachemd::sync
