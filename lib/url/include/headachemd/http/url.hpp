// Pure URL and encoding helpers for the HTTP layer: origins (for pooling and
// for the rule that a bearer token never leaves its origin), loopback
// detection (plain http:// is allowed on loopback only), Retry-After, and the
// encodings the SMART token endpoint and FHIR search need. Built as their own
// target, headachemd_url (lib/url), on Boost.URL alone, so that lib/smart and
// lib/fhir use them without the HTTPS client; base64 is in core/base64.hpp.
//
// Nothing here does I/O, throws on bad input, or allocates beyond its
// return value. Invalid input yields std::nullopt (or false).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace headachemd::http {

// The (scheme, host, port) triple of RFC 6454 §4 for http and https URLs.
// `scheme` and `host` are lower case. `host` is the bare host: an IPv6
// literal is stored without its brackets ("::1"), a registered name
// percent-decoded ("example.com").
struct origin {
    std::string scheme;
    std::string host;
    std::uint16_t port = 0;

    bool operator==(const origin&) const = default;

    // "https://example.com:443", "http://[::1]:8080": the port is always
    // written, so two equal origins have equal strings (a pool key).
    std::string to_string() const;
};

// The origin of an absolute http or https URL (RFC 3986, parsed with
// Boost.URL). The port defaults to 443 for https and 80 for http (RFC 9110
// §4.2); an empty port ("https://a:/") means the default (RFC 3986 §6.2.3).
// Userinfo does not take part in the origin. Returns nullopt for a relative
// or unparsable URL, another scheme, an empty host, a host that is not plain
// ASCII after percent-decoding, or a port outside 1..65535.
std::optional<origin> origin_of(std::string_view url);

// True when both URLs parse and have equal origins. Used before following a
// Bundle next link: a bearer token is only ever sent to the origin it was
// issued for.
bool same_origin(std::string_view a, std::string_view b);

// True for 127.0.0.0/8, ::1 (with or without brackets), ::ffff:127.x.y.z and
// "localhost" (any case; RFC 6761 §6.3). Plain http:// is allowed only to
// these hosts.
bool is_loopback_host(std::string_view host);

// Parses a Retry-After field value (RFC 9110 §10.2.3): either delta-seconds
// or an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850
// and asctime forms recipients must accept). Returns how long to wait from
// `now`: a date in the past gives 0s, a date in the future is rounded up to
// whole seconds. A huge delta, or a date further ahead, is clamped to 2^31 s
// (RFC 9111 §1.2.2).
// Returns nullopt for a negative number or anything else unparsable.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// application/x-www-form-urlencoded (the token request body, RFC 6749
// §4.1.3 / appendix B): RFC 3986 unreserved characters as they are, space
// as '+', every other byte as upper-case %XX. Pairs are joined with '&' and
// name and value with '='.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);

// RFC 3986 §2.1 percent-encoding: unreserved characters as they are, every
// other byte (space included) as upper-case %XX.
std::string percent_encode(std::string_view bytes);

// Appends form-encoded `params` to the query of `base`: '?' when `base` has
// no query, '&' when it has one (nothing when it already ends in '?' or
// '&'). A fragment in `base` stays at the end. Returns `base` unchanged when
// `params` is empty.
std::string url_with_query(std::string_view base,
                           const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace headachemd::http
