#include "checks.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "headachemd/http/url.hpp"

namespace headachemd::config {

std::optional<std::string> process_environment(std::string_view name) {
    const std::string key(name);
    const char* value = std::getenv(key.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    // A cap keeps the sum far from overflow and catches unit slips such as
    // "90000d" for "90d".
    constexpr std::int64_t max_seconds = std::int64_t{100} * 366 * 24 * 3600;
    if (text.empty()) return std::nullopt;
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::int64_t number = 0;
        const char* first = text.data() + i;
        const char* last = text.data() + text.size();
        auto [end, ec] = std::from_chars(first, last, number);
        if (ec != std::errc{} || end == first || number < 0 || *first == '-' || *first == '+') {
            return std::nullopt;
        }
        i += static_cast<std::size_t>(end - first);
        if (i >= text.size()) return std::nullopt;  // a bare number in a string has no unit
        std::int64_t unit = 0;
        switch (text[i]) {
            case 's':
                unit = 1;
                break;
            case 'm':
                unit = 60;
                break;
            case 'h':
                unit = 3600;
                break;
            case 'd':
                unit = 24 * 3600;
                break;
            default:
                return std::nullopt;
        }
        ++i;
        if (number > max_seconds / unit) return std::nullopt;
        total += number * unit;
        if (total > max_seconds) return std::nullopt;
    }
    return std::chrono::seconds{total};
}

}  // namespace headachemd::config

namespace headachemd::config::detail {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_identifier_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool is_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A decimal number 0–255 without a sign or a leading zero (RFC 3986
// dec-octet; inet_aton would read "010" as octal 8).
bool is_octet(std::string_view s) {
    if (!is_digits(s) || s.size() > 3 || (s.size() > 1 && s.front() == '0')) return false;
    int value = 0;
    std::from_chars(s.data(), s.data() + s.size(), value);
    return value <= 255;
}

bool is_valid_port(std::string_view s) {
    if (!is_digits(s) || s.size() > 5) return false;
    int value = 0;
    std::from_chars(s.data(), s.data() + s.size(), value);
    return value >= 1 && value <= 65535;
}

// A host the HTTP client will connect to (lib/http origin_of): a name of
// letters, digits, '-', '.', '_' (no IDNA, no percent-encoding), or an IPv6
// address in brackets. Checked here so that a URL the client would refuse
// fails at load time, with its line, rather than at every sync.
bool is_client_host(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        const std::string inner(host.substr(1, host.size() - 2));
        in6_addr addr{};
        return inet_pton(AF_INET6, inner.c_str(), &addr) == 1;
    }
    return !host.empty() && std::all_of(host.begin(), host.end(), is_identifier_char);
}

// The path, query and fragment of a URI (RFC 3986 §3.3-3.5): unreserved,
// sub-delims, ":/?#@" and "%" HEXDIG HEXDIG; anything else ('"', '<', '{',
// '[', '\\', non-ASCII, a stray '%') makes the client's URL parser refuse it.
bool is_uri_path_text(std::string_view url) {
    const auto hex = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
    };
    for (std::size_t i = 0; i < url.size(); ++i) {
        const char c = url[i];
        if (c == '%') {
            if (i + 2 >= url.size() || !hex(url[i + 1]) || !hex(url[i + 2])) return false;
            i += 2;
        } else if (!is_identifier_char(c) && c != '~' &&
                   std::string_view(":/?#@!$&'()*+,;=").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

struct authority_parts {
    std::string_view host;  // IPv6 keeps its brackets
    std::optional<std::string_view> port;
    bool well_formed = true;
};

// Splits "host[:port]" / "[v6][:port]".
authority_parts split_authority(std::string_view authority) {
    authority_parts parts;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return {authority, std::nullopt, false};
        parts.host = authority.substr(0, close + 1);
        const auto rest = authority.substr(close + 1);
        if (rest.empty()) return parts;
        if (rest.front() != ':') return {authority, std::nullopt, false};
        parts.port = rest.substr(1);
        return parts;
    }
    const auto colon = authority.find(':');
    if (colon == std::string_view::npos) {
        parts.host = authority;
        return parts;
    }
    parts.host = authority.substr(0, colon);
    parts.port = authority.substr(colon + 1);
    return parts;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::optional<std::string_view> closest_match(std::string_view typo,
                                              std::span<const std::string_view> candidates) {
    std::optional<std::string_view> best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (auto candidate : candidates) {
        const std::size_t d = edit_distance(typo, candidate);
        // Up to a third of the name may be wrong (at least 1, at most 3):
        // "fhir_bse" → "fhir_base", but "scope" is not offered for "page".
        const std::size_t allowed = std::clamp<std::size_t>(candidate.size() / 3, 1, 3);
        if (d <= allowed && d < best_distance) {
            best = candidate;
            best_distance = d;
        }
    }
    return best;
}

std::string did_you_mean(std::string_view typo, std::span<const std::string_view> candidates, char quote) {
    if (auto match = closest_match(typo, candidates)) {
        std::string out = "; did you mean ";
        out += quote;
        out += *match;
        out += quote;
        out += '?';
        return out;
    }
    return {};
}

std::string one_of(std::span<const std::string_view> items, char quote) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += (i + 1 == items.size()) ? " or " : ", ";
        out += quote;
        out += items[i];
        out += quote;
    }
    return out;
}

std::optional<std::string> identifier_problem(std::string_view key_name, std::string_view value) {
    const std::string name(key_name);
    if (value.empty()) return name + " must not be empty";
    if (value.size() > 64) {
        return name + " is " + std::to_string(value.size()) + " characters long; the limit is 64";
    }
    for (char c : value) {
        if (!is_identifier_char(c)) {
            std::string shown;
            if (c == ' ') {
                shown = "a space";
            } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
                shown = "a control or non-ASCII character";
            } else {
                shown = std::string("'") + c + "'";
            }
            return name + " may contain only A-Z a-z 0-9 . _ - (found " + shown + ")";
        }
    }
    return std::nullopt;
}

bool is_fhir_id(std::string_view value) {
    if (value.empty() || value.size() > 64) return false;
    return std::all_of(value.begin(), value.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.';
    });
}

bool is_view_name(std::string_view value) {
    if (value.empty() || value.size() > 48 || value[0] < 'a' || value[0] > 'z') return false;
    return std::all_of(value.begin(), value.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool is_loopback_host(std::string_view host) {
    if (host == "[::1]") return true;
    std::string lowered(host);
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), lower);
    // RFC 6761 §6.3: "localhost" names the loopback interface. Not
    // "localhost.": lib/http refuses plain http to it (it would go to the
    // resolver), so the config must too (found by tests/fuzz/fuzz_config).
    if (lowered == "localhost") return true;
    // 127.0.0.0/8, dotted quad only.
    if (!host.starts_with("127.")) return false;
    int octets = 0;
    std::size_t start = 0;
    while (true) {
        const auto dot = host.find('.', start);
        const auto part =
            host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (!is_octet(part)) return false;
        ++octets;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return octets == 4;
}

std::optional<std::string> url_problem(std::string_view key_name, std::string_view url, url_use use) {
    const std::string name(key_name);
    const std::string got = "; got \"" + std::string(url) + "\"";
    bool plain_http = false;
    std::string_view rest;
    if (url.starts_with("https://")) {
        rest = url.substr(8);
    } else if (url.starts_with("http://")) {
        rest = url.substr(7);
        plain_http = true;
    } else {
        return name + " must be an https:// URL" + got;
    }
    const auto path_start = rest.find_first_of("/?#");
    const std::string_view authority = rest.substr(0, path_start);
    // Checked before anything that would echo the URL: a user:password in
    // the URL is a secret in the config text.
    if (authority.find('@') != std::string_view::npos) {
        return name +
               " must not contain a user name or password; secrets come from files "
               "(client_secret_file, private_key_file)";
    }
    if (url.find_first_of(" \t\r\n") != std::string_view::npos)
        return name + " must not contain spaces" + got;
    const auto parts = split_authority(authority);
    if (!parts.well_formed || parts.host.empty() || parts.host == "[]")
        return name + " has no valid host" + got;
    if (!is_client_host(parts.host)) {
        return name +
               " has an invalid host: letters, digits, '-', '.' and '_', or an IPv6 address in brackets" +
               got;
    }
    if (!is_uri_path_text(rest.substr(authority.size()))) {
        return name + " is not a valid URL: write other characters as %XX (RFC 3986)" + got;
    }
    if (parts.port && !is_valid_port(*parts.port)) return name + " has an invalid port (1-65535)" + got;
    if (plain_http && !is_loopback_host(parts.host)) {
        // TLS protects the bearer token and the PHI; plain http is only for
        // the sandbox and local test servers (DESIGN.md, "Security model").
        return name +
               " must be https:// (plain http is allowed only for loopback: 127.0.0.0/8, [::1], localhost)" +
               got;
    }
    // The client's own reading (lib/url origin_of), so that what loads is
    // what connects: a host whose last label is a number is an IPv4
    // address or nothing (WHATWG URL 3.5), and a dotted quad followed by
    // more ("127.0.0.1.example") is refused.
    if (!http::origin_of(url))
        return name +
               " has a host the HTTP client refuses: a host whose last label is a number must be an IPv4 "
               "address a.b.c.d without leading zeros" +
               got;
    if (url.find('#') != std::string_view::npos) return name + " must not contain a fragment ('#')" + got;
    if (use == url_use::fhir_base) {
        if (url.find('?') != std::string_view::npos) {
            return name + " must not contain a query ('?'): searches are appended to it" + got;
        }
        if (url.ends_with('/')) {
            // SMART App Launch: `aud` is the FHIR base URL, and eCW compares
            // it exactly, without a trailing slash (DESIGN.md, "EHR realities").
            std::string fixed(url);
            while (fixed.ends_with('/')) fixed.pop_back();
            return name +
                   " must not end with '/': SMART sends it verbatim as the `aud` parameter and the "
                   "server compares it exactly; write \"" +
                   fixed + "\"";
        }
    }
    return std::nullopt;
}

std::optional<std::string> listen_problem(std::string_view key_name, std::string_view value,
                                          const listen_rule& rule) {
    const std::string key(key_name);
    const std::string got = "; got \"" + std::string(value) + "\"";
    const auto parts = split_authority(value);
    if (!parts.well_formed || parts.host.empty() || parts.host == "[]" || !parts.port) {
        return key + " must be \"host:port\" (IPv6 in brackets), such as \"" + std::string(rule.example) +
               "\"" + got;
    }
    const bool port_ok = (rule.port_zero_allowed && *parts.port == "0") || is_valid_port(*parts.port);
    if (!port_ok) {
        return key + " has an invalid port (" +
               (rule.port_zero_allowed ? "0-65535, 0: any free port" : "1-65535") + ")" + got;
    }
    if (!is_loopback_host(parts.host) && !rule.non_loopback_allowed) {
        // Both listeners speak plain HTTP without authentication: /metrics
        // reveals patient counts and EHR names, and the enrollment callback
        // receives authorization codes (RFC 6749 §3.1.2.1 wants TLS for a
        // redirect endpoint; RFC 8252 §7.3 allows plain HTTP on loopback
        // only). So they stay on the machine unless the admin says otherwise
        // (a TLS reverse proxy on another host), explicitly.
        return key + " must be a loopback address (127.0.0.0/8, [::1] or localhost): the listener has " +
               "no TLS and no authentication; put a TLS reverse proxy in front of it, or set " +
               "allow_non_loopback_listen = true in [daemon] to accept that" + got;
    }
    return std::nullopt;
}

std::optional<std::string> expand_environment(std::string_view text, const env_lookup& env,
                                              std::string& problem) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto open = text.find("${", i);
        if (open == std::string_view::npos) {
            out.append(text.substr(i));
            break;
        }
        out.append(text.substr(i, open - i));
        const auto close = text.find('}', open + 2);
        if (close == std::string_view::npos) {
            problem = "has \"${\" without a closing \"}\"";
            return std::nullopt;
        }
        const auto name = text.substr(open + 2, close - open - 2);
        const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
        if (!valid_name) {
            problem = "has \"${" + std::string(name) + "}\", which is not an environment variable name";
            return std::nullopt;
        }
        auto value = env ? env(name) : std::nullopt;
        if (!value) {
            problem = "uses ${" + std::string(name) + "}, but that environment variable is not set";
            if (name == "CREDENTIALS_DIRECTORY") {
                problem +=
                    " (systemd sets it for a unit with LoadCredential=; outside systemd write the full path)";
            }
            return std::nullopt;
        }
        out += *value;
        i = close + 1;
    }
    return out;
}

}  // namespace headachemd::config::detail
