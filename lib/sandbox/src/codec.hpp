// Pure helpers for the sandbox: URL and form coding, base64, SHA-256, random
// tokens, and FHIR instants. No I/O, no state.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace headachemd::sandbox::detail {

using params = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded decoding (WHATWG URL §5.1), also used for
// query strings: '+' is a space, %XX a byte. nullopt on a malformed escape.
std::optional<std::string> form_decode(std::string_view s);
// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);
// "a=1&b=2" → {{"a","1"},{"b","2"}}; nullopt when an escape is malformed.
std::optional<params> parse_form(std::string_view s);
// The first value of `name`, or nullptr.
const std::string* find_param(const params& p, std::string_view name);
std::size_t count_param(const params& p, std::string_view name);
// "a=1&b=2", each name and value url_encode()d.
std::string encode_params(const params& p);

std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding optional; nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view text);
// RFC 4648 §5 alphabet without padding, as PKCE (RFC 7636 §3) requires.
std::string base64url_encode(std::string_view bytes);
std::string sha256(std::string_view bytes);  // the 32 raw bytes
// RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
std::string pkce_s256(std::string_view verifier);
// RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~].
bool valid_pkce_string(std::string_view s);
// `bytes` random bytes from OpenSSL's CSPRNG, base64url encoded. Tokens are
// unpredictable even though the data is deterministic.
std::string random_token(std::size_t bytes = 32);

// Case-insensitive ASCII comparison, for header values and schemes.
bool iequals(std::string_view a, std::string_view b);

using time_point = std::chrono::system_clock::time_point;
// FHIR instant with milliseconds: "2024-05-01T10:00:00.000Z".
std::string format_instant(time_point t);
// FHIR dateTime to the second: "2024-05-01T10:00:00Z".
std::string format_date_time(time_point t);
std::string format_date(time_point t);  // "2024-05-01"
// IMF-fixdate (RFC 9110 §5.6.7), the form of the Date header: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(time_point t);
// A FHIR date/dateTime/instant search value (YYYY, YYYY-MM, YYYY-MM-DD or
// YYYY-MM-DDThh:mm[:ss[.fff]](Z|±hh:mm)) as the range [first, second) it
// denotes at its precision (FHIR R4 search 3.1.1.4.6). nullopt if malformed.
std::optional<std::pair<time_point, time_point>> parse_fhir_date_range(std::string_view s);

}  // namespace headachemd::sandbox::detail
