// libFuzzer target: the small text parsers and encoders around HTTP that
// see server-controlled text: Retry-After, origins (the rule that a bearer
// token never leaves its origin rests on them), loopback detection, the
// encoders of token requests and search URLs, and the _lastUpdated cursor
// arithmetic. The first byte chooses the function; FuzzedDataProvider
// splits the rest into its arguments.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <openssl/evp.h>

#include "fuzz_support.hpp"
#include "headachemd/core/base64.hpp"
#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"

namespace http = headachemd::http;
namespace fhir = headachemd::fhir;
namespace hf = headachemd::fuzz;
using std::chrono::seconds;

namespace {

bool is_unreserved(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;  // the encoders write upper case only
}

// Decodes %XX (and '+' as space when `plus`); checks that every other byte
// is unreserved, so the encoding is both canonical and reversible.
std::string decode_strict(std::string_view s, bool plus, std::string_view also_literal = "") {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            FUZZ_CHECK(i + 2 < s.size(), "a truncated %XX");
            const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            FUZZ_CHECK(hi >= 0 && lo >= 0, "a %XX that is not upper-case hex");
            out += static_cast<char>(hi << 4 | lo);
            i += 2;
        } else if (plus && c == '+') {
            out += ' ';
        } else {
            FUZZ_CHECK(is_unreserved(c) || also_literal.find(c) != std::string_view::npos,
                       "a reserved byte left unencoded");
            out += c;
        }
    }
    return out;
}

std::chrono::system_clock::time_point bounded_now(FuzzedDataProvider& p) {
    // 1970 to 2106: real clocks, without overflowing the arithmetic.
    return std::chrono::system_clock::time_point{seconds{p.ConsumeIntegral<std::uint32_t>()}};
}

void retry_after(FuzzedDataProvider& p) {
    const auto now = bounded_now(p);
    const std::string value = p.ConsumeRemainingBytesAsString();
    const auto wait = http::parse_retry_after(value, now);
    if (!wait) return;
    FUZZ_CHECK(wait->count() >= 0, "a negative Retry-After wait");
    // Delta-seconds and dates alike are clamped to 2^31 s (RFC 9111 §1.2.2).
    FUZZ_CHECK(wait->count() <= 2147483648LL, "a Retry-After wait over 2^31 s");
}

void origin(FuzzedDataProvider& p) {
    const std::string url = p.ConsumeRemainingBytesAsString();
    const auto o = http::origin_of(url);
    FUZZ_CHECK(http::same_origin(url, url) == o.has_value(), "same_origin(u, u) disagrees with origin_of");
    if (!o) return;
    FUZZ_CHECK(o->scheme == "https" || o->scheme == "http", "an origin of another scheme");
    FUZZ_CHECK(!o->host.empty() && o->port != 0, "an origin without host or port");
    FUZZ_CHECK(std::none_of(o->host.begin(), o->host.end(), [](char c) { return c >= 'A' && c <= 'Z'; }),
               "an origin host with upper case");
    // The pool key round-trips: the origin of an origin's text is itself.
    const auto again = http::origin_of(o->to_string());
    FUZZ_CHECK(again && *again == *o, "origin_of(origin.to_string()) is another origin");
    FUZZ_CHECK(http::same_origin(url, o->to_string()), "a URL not same-origin with its own origin");
}

void two_origins(FuzzedDataProvider& p) {
    const std::string a = p.ConsumeRandomLengthString(512);
    const std::string b = p.ConsumeRemainingBytesAsString();
    const bool same = http::same_origin(a, b);
    FUZZ_CHECK(same == http::same_origin(b, a), "same_origin is not symmetric");
    const auto oa = http::origin_of(a), ob = http::origin_of(b);
    FUZZ_CHECK(same == (oa && ob && *oa == *ob), "same_origin disagrees with origin_of");
}

void loopback(FuzzedDataProvider& p) {
    const std::string host = p.ConsumeRemainingBytesAsString();
    const bool lo = http::is_loopback_host(host);
    // Brackets around an address do not change the answer (a URL's host
    // for IPv6 comes with them, a config's sometimes without).
    std::string lower = host;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    if (lower != "localhost" && !host.starts_with('['))
        FUZZ_CHECK(lo == http::is_loopback_host("[" + host + "]"), "brackets change is_loopback_host");
    if (lo) {
        // What passes as loopback must be one in a URL too.
        const bool v6 = host.find(':') != std::string::npos && !host.starts_with('[');
        const auto o = http::origin_of("http://" + (v6 ? "[" + host + "]" : host) + "/");
        if (o) FUZZ_CHECK(http::is_loopback_host(o->host), "a loopback host whose origin is not loopback");
    }
}

void encoders(FuzzedDataProvider& p) {
    const std::string bytes = p.ConsumeRandomLengthString(256);
    FUZZ_CHECK(decode_strict(http::percent_encode(bytes), false) == bytes,
               "percent_encode does not round-trip");

    std::vector<std::pair<std::string, std::string>> fields;
    const int n = p.ConsumeIntegralInRange(0, 4);
    for (int i = 0; i < n; ++i) {
        std::string name = p.ConsumeRandomLengthString(32);
        fields.emplace_back(std::move(name), p.ConsumeRandomLengthString(64));
    }
    const std::string form = http::form_encode(fields);
    // Split on '&' and '=', which the encoder escapes inside names and values.
    std::size_t start = 0;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::size_t amp = std::min(form.find('&', start), form.size());
        const std::string_view pair(form.data() + start, amp - start);
        const std::size_t eq = pair.find('=');
        FUZZ_CHECK(eq != std::string_view::npos, "a form field without '='");
        FUZZ_CHECK(decode_strict(pair.substr(0, eq), true) == fields[i].first,
                   "a form name does not round-trip");
        FUZZ_CHECK(decode_strict(pair.substr(eq + 1), true) == fields[i].second,
                   "a form value does not round-trip");
        start = amp + 1;
    }

    const std::string base = p.ConsumeRandomLengthString(128);
    const std::string url = http::url_with_query(base, fields);
    if (fields.empty()) {
        FUZZ_CHECK(url == base, "url_with_query changed a URL without parameters");
    } else {
        const std::size_t hash = base.find('#');
        const std::string_view before(base.data(), std::min(hash, base.size()));
        const std::string_view fragment =
            hash == std::string::npos ? std::string_view{} : std::string_view(base).substr(hash);
        FUZZ_CHECK(url.starts_with(before) && url.ends_with(fragment),
                   "url_with_query lost part of the base");
        FUZZ_CHECK(hf::contains(url, form), "url_with_query lost the parameters");
    }

    const std::string blob = p.ConsumeRemainingBytesAsString();
    const std::string b64 = headachemd::base64_encode(blob);
    FUZZ_CHECK(b64.size() == (blob.size() + 2) / 3 * 4, "base64 of the wrong length");
    std::string decoded(b64.size() / 4 * 3 + 1, '\0');
    const int got =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                        reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
    FUZZ_CHECK(got >= 0, "base64 that OpenSSL cannot decode");
    const std::size_t padding = b64.ends_with("==") ? 2 : b64.ends_with('=') ? 1 : 0;
    decoded.resize(static_cast<std::size_t>(got) - padding);
    FUZZ_CHECK(decoded == blob, "base64 does not round-trip");
    const std::string b64url =
        headachemd::base64url_encode({reinterpret_cast<const unsigned char*>(blob.data()), blob.size()});
    std::string expected = b64;
    while (expected.ends_with('=')) expected.pop_back();
    std::replace(expected.begin(), expected.end(), '+', '-');
    std::replace(expected.begin(), expected.end(), '/', '_');
    FUZZ_CHECK(b64url == expected, "base64url is not base64 with the URL alphabet and no padding");
}

void search(FuzzedDataProvider& p) {
    fhir::search_spec s;
    s.fhir_base = p.ConsumeRandomLengthString(64);
    s.resource_type = p.ConsumeRandomLengthString(24);
    s.patient_param = p.ConsumeRandomLengthString(16);
    s.patient_id = p.ConsumeRandomLengthString(64);
    const int extra = p.ConsumeIntegralInRange(0, 3);
    for (int i = 0; i < extra; ++i) {
        std::string name = p.ConsumeRandomLengthString(16);
        s.extra.emplace_back(std::move(name), p.ConsumeRandomLengthString(32));
    }
    if (p.ConsumeBool()) s.count = p.ConsumeIntegral<int>();
    if (p.ConsumeBool()) s.last_updated_gt = p.ConsumeRandomLengthString(32);
    const std::string url = fhir::search_url(s);
    const std::string prefix = s.fhir_base + "/" + s.resource_type + "?";
    FUZZ_CHECK(url.starts_with(prefix), "a search URL that does not start with base/type?");
    // Everything after it is name=value&…, each part encoded: the values
    // can add no '&', '=', '#' or space of their own.
    std::size_t pairs = 0;
    for (std::string_view rest = std::string_view(url).substr(prefix.size()); !rest.empty();) {
        const std::size_t amp = std::min(rest.find('&'), rest.size());
        const std::string_view pair = rest.substr(0, amp);
        const std::size_t eq = pair.find('=');
        FUZZ_CHECK(eq != std::string_view::npos, "a search parameter without '='");
        decode_strict(pair.substr(0, eq), false, ",:");
        decode_strict(pair.substr(eq + 1), false, ",:");
        ++pairs;
        rest.remove_prefix(std::min(amp + 1, rest.size()));
    }
    const std::size_t expected = 1 + s.extra.size() + (s.count ? 1 : 0) + (s.last_updated_gt ? 1 : 0);
    FUZZ_CHECK(pairs == expected, "a search URL with the wrong number of parameters");

    const std::string name = p.ConsumeRandomLengthString(16);
    const std::string value = p.ConsumeRandomLengthString(32);
    const std::string next = fhir::with_query_param(url, name, value);
    FUZZ_CHECK(next.starts_with(url + "&"), "with_query_param lost the URL or its separator");
}

void last_updated(FuzzedDataProvider& p) {
    // The overlap comes from the config: at most 100 years (parse_duration).
    const seconds overlap{p.ConsumeIntegralInRange<std::int64_t>(0, 100LL * 366 * 24 * 3600)};
    const std::string cursor = p.ConsumeRemainingBytesAsString();
    const std::string since = fhir::last_updated_with_overlap(cursor, overlap);
    if (since.empty()) return;
    // YYYY-MM-DDThh:mm:ssZ, or nothing (a full pull).
    FUZZ_CHECK(since.size() == 20 && since[4] == '-' && since[7] == '-' && since[10] == 'T' &&
                   since[13] == ':' && since[16] == ':' && since[19] == 'Z',
               "a _lastUpdated instant not of the form YYYY-MM-DDThh:mm:ssZ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    FuzzedDataProvider p(data + 1, size - 1);
    switch (data[0] % 8) {
        case 0:
            retry_after(p);
            break;
        case 1:
            origin(p);
            break;
        case 2:
            two_origins(p);
            break;
        case 3:
            loopback(p);
            break;
        case 4:
            encoders(p);
            break;
        case 5:
            search(p);
            break;
        case 6:
            last_updated(p);
            break;
        case 7:
            (void)fhir::classify_status(p.ConsumeIntegral<int>());
            break;
    }
    return 0;
}
