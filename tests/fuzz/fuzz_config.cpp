// libFuzzer target: config::parse_config on sync.toml text, with a fixed
// environment for "${NAME}" expansion. Beyond "no crash", it checks the
// loader's promises: errors come sorted by position, an accepted config
// holds only valid names and URLs, and no error message quotes a secret
// written into the text or a rejected patient key (which may be a name).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <toml++/toml.h>

#include "fuzz_support.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/http/url.hpp"

namespace cfg = headachemd::config;
namespace hf = headachemd::fuzz;

namespace {

std::optional<std::string> fake_env(std::string_view name) {
    if (name == "CREDENTIALS_DIRECTORY") return "/run/credentials/headachemd-sync.service";
    if (name == "STATE_DIRECTORY") return "/var/lib/headachemd";
    if (name == "HOME") return "/home/headachemd";
    return std::nullopt;
}

// [A-Za-z0-9._-], 1–64: the rule for EHR names and patient keys.
bool is_identifier(std::string_view s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
    });
}

// The config's own secret keys (config.cpp, secret_keys).
bool is_secret_key(std::string_view k) {
    return k == "client_secret" || k == "private_key" || k == "token_key" || k == "refresh_token" ||
           k == "access_token" || k == "password" || k == "secret";
}

// Strings that must never be quoted back, and every other string and key
// of the document (a value that also appears there may be quoted for
// that other reason).
struct strings {
    std::vector<std::string> hidden;
    std::vector<std::string> visible;
};

void collect(const toml::node& n, std::string_view key, bool in_patient, strings& out) {
    if (const auto* t = n.as_table()) {
        for (const auto& [k, v] : *t) {
            out.visible.emplace_back(k.str());
            collect(v, k.str(), in_patient, out);
        }
    } else if (const auto* a = n.as_array()) {
        for (const auto& v : *a) collect(v, key, in_patient, out);
    } else if (const auto* s = n.as_string()) {
        const std::string& v = s->get();
        if (is_secret_key(key) || (in_patient && key == "key" && !is_identifier(v)))
            out.hidden.push_back(v);
        else
            out.visible.push_back(v);
    }
}

strings document_strings(std::string_view text) {
    strings out;
    try {
        const toml::table root = toml::parse(text, std::string_view("fuzz.toml"));
        for (const auto& [k, v] : root) {
            out.visible.emplace_back(k.str());
            collect(v, k.str(), k.str() == "patient", out);
        }
    } catch (const toml::parse_error&) {
        // A syntax error: the loader reports only that.
    }
    return out;
}

void check_errors(const std::vector<cfg::config_error>& errors, std::string_view text) {
    FUZZ_CHECK(!errors.empty(), "an error result without errors");
    for (std::size_t i = 0; i < errors.size(); ++i) {
        const auto& e = errors[i];
        FUZZ_CHECK(!e.message.empty() && !e.to_string().empty(), "an error without a message");
        FUZZ_CHECK(e.line >= 0 && e.column >= 0, "a negative error position");
        if (i > 0) {
            const auto& p = errors[i - 1];
            const bool in_order = p.line < e.line || (p.line == e.line && p.column <= e.column);
            FUZZ_CHECK(in_order, "errors out of order");
        }
    }
    // A hidden value may also be a piece of a fixed message ("did you
    // mean", the list of valid keys), so test with a canary in its place:
    // no message may show the canary. (A space keeps a canary patient key
    // invalid.)
    constexpr std::string_view canary = "Qz canary zQ";
    // The mutator can learn the canary itself (it watches comparisons);
    // a text that already holds it proves nothing either way.
    if (hf::contains(text, canary)) return;
    const strings s = document_strings(text);
    for (const auto& hidden : s.hidden) {
        if (hidden.size() < 8 || !hf::contains(text, hidden)) continue;
        bool quoted_elsewhere = false;
        for (const auto& v : s.visible) quoted_elsewhere = quoted_elsewhere || hf::contains(v, hidden);
        if (quoted_elsewhere) continue;
        std::string marked(text);
        for (auto at = marked.find(hidden); at != std::string::npos;
             at = marked.find(hidden, at + canary.size()))
            marked.replace(at, hidden.size(), canary);
        const cfg::parse_result again = cfg::parse_config(marked, "/etc/headachemd/fuzz.toml", fake_env);
        if (const auto* errors2 = std::get_if<std::vector<cfg::config_error>>(&again))
            for (const auto& e : *errors2)
                FUZZ_CHECK(!hf::contains(e.to_string(), canary),
                           "an error message quotes a secret or a rejected key");
    }
}

void check_config(const cfg::config& c) {
    std::set<std::string> names;
    for (const auto& e : c.ehrs) {
        FUZZ_CHECK(is_identifier(e.name), "an accepted [[ehr]] name outside [A-Za-z0-9._-]{1,64}");
        FUZZ_CHECK(names.insert(e.name).second, "two [[ehr]] blocks with one name");
        const auto origin = headachemd::http::origin_of(e.fhir_base);
        FUZZ_CHECK(origin.has_value(), "an accepted fhir_base without an http(s) origin");
        FUZZ_CHECK(origin->scheme == "https" || headachemd::http::is_loopback_host(origin->host),
                   "plain http accepted for a host that is not loopback");
        FUZZ_CHECK(!e.fhir_base.ends_with('/'), "an accepted fhir_base ending in '/'");
        FUZZ_CHECK(e.requests_per_minute > 0 && e.max_concurrent > 0, "a pace that never sends a request");
    }
    std::set<std::string> keys;
    for (const auto& p : c.patients) {
        FUZZ_CHECK(is_identifier(p.key), "an accepted patient key outside [A-Za-z0-9._-]{1,64}");
        FUZZ_CHECK(keys.insert(p.key).second, "two patients with one key");
        FUZZ_CHECK(names.count(p.ehr) == 1, "a patient of an EHR that is not configured");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const cfg::parse_result r = cfg::parse_config(text, "/etc/headachemd/fuzz.toml", fake_env);
    if (const auto* errors = std::get_if<std::vector<cfg::config_error>>(&r))
        check_errors(*errors, text);
    else
        check_config(std::get<cfg::config>(r));
    return 0;
}
