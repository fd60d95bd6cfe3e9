// The pure helpers of headachemd/http/url.hpp: origins, loopback,
// Retry-After, and the encodings, against vectors from the RFCs.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "headachemd/http/url.hpp"

namespace {

namespace http = headachemd::http;
using namespace std::chrono;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// origin_of / same_origin

TEST(origin_of, lower_cases_and_fills_default_ports) {
    auto o = http::origin_of("HTTPS://EHR.Example.COM/fhir/r4?x=1#f");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->scheme, "https");
    EXPECT_EQ(o->host, "ehr.example.com");
    EXPECT_EQ(o->port, 443);
    EXPECT_EQ(o->to_string(), "https://ehr.example.com:443");

    auto p = http::origin_of("http://127.0.0.1/x");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->port, 80);
    EXPECT_EQ(http::origin_of("https://a.example:8443/")->port, 8443);
    // RFC 3986 §6.2.3: an empty port is the default port.
    EXPECT_EQ(http::origin_of("https://a.example:/")->port, 443);
}

TEST(origin_of, ipv6_literal_is_stored_bare_and_canonical) {
    auto o = http::origin_of("https://[0:0:0:0:0:0:0:1]:8443/x");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->host, "::1");
    EXPECT_EQ(o->to_string(), "https://[::1]:8443");
}

TEST(origin_of, userinfo_is_not_part_of_the_origin) {
    EXPECT_EQ(http::origin_of("https://user:pw@a.example/x"), http::origin_of("https://a.example"));
    // The host is what follows the '@'.
    EXPECT_EQ(http::origin_of("https://a.example@evil.example/")->host, "evil.example");
}

TEST(origin_of, rejects_what_is_not_an_http_origin) {
    EXPECT_FALSE(http::origin_of("ftp://a.example/"));
    EXPECT_FALSE(http::origin_of("urn:ietf:rfc:3986"));
    EXPECT_FALSE(http::origin_of("/relative/path"));
    EXPECT_FALSE(http::origin_of("a.example/fhir"));
    EXPECT_FALSE(http::origin_of(""));
    EXPECT_FALSE(http::origin_of("https:///path"));
    EXPECT_FALSE(http::origin_of("https://a.example:0/"));
    EXPECT_FALSE(http::origin_of("https://a.example:65536/"));
    EXPECT_FALSE(http::origin_of("https://a.example:99999999999/"));
    EXPECT_FALSE(http::origin_of("https://a%2Fb.example/"));  // a decoded '/' in the host
    EXPECT_FALSE(http::origin_of("https://a b.example/"));
}

// Boost.URL 1.81 ends a host at a dotted-quad prefix and gives the rest to
// the path; without the check these were loopback origins on another port.
TEST(origin_of, a_dotted_quad_prefix_of_a_longer_host_is_refused) {
    EXPECT_FALSE(http::origin_of("https://127.0.0.1.evil.example:8443/fhir"));
    EXPECT_FALSE(http::origin_of("http://127.0.0.1.evil.example/"));
    EXPECT_FALSE(http::origin_of("http://1.2.3.4.5/"));
    EXPECT_FALSE(http::origin_of("http://127.0.0.1x/"));
    EXPECT_FALSE(http::same_origin("http://127.0.0.1/", "http://127.0.0.1.evil.example/"));
    EXPECT_EQ(http::origin_of("http://127.0.0.1:8443")->port, 8443);
}

// A host that spells a number only after percent-decoding (found by
// fuzz_url: "1%2E27.0.0.1" gave an origin whose own text parsed elsewhere).
TEST(origin_of, a_percent_encoded_numeric_host_is_an_address_or_nothing) {
    auto o = http::origin_of("http://127%2E0.0.1:9/");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->host, "127.0.0.1");
    EXPECT_EQ(http::origin_of(o->to_string()), o);
    EXPECT_FALSE(http::origin_of("http://1%2E27.0.0.1/"));
    EXPECT_FALSE(http::origin_of("http://a%2E0x1f/"));
    EXPECT_FALSE(http::origin_of("http://127.1/"));  // getaddrinfo would read 127.0.0.1
    EXPECT_FALSE(http::origin_of("http://1%2E27.0.0s1/"));
    EXPECT_EQ(http::origin_of("https://a%2Eexample.com/")->host, "a.example.com");
}

TEST(same_origin, default_port_and_case_do_not_matter) {
    EXPECT_TRUE(http::same_origin("https://a.example:443/fhir", "https://a.example/fhir/Patient?page=2"));
    EXPECT_TRUE(http::same_origin("HTTPS://A.EXAMPLE/x", "https://a.example/y"));
    EXPECT_TRUE(http::same_origin("http://localhost:80/", "http://LOCALHOST/"));
}

TEST(same_origin, scheme_host_and_port_must_all_match) {
    EXPECT_FALSE(http::same_origin("https://a.example/", "https://a.example:8443/"));
    EXPECT_FALSE(http::same_origin("https://a.example/", "http://a.example/"));
    EXPECT_FALSE(http::same_origin("http://a.example:443/", "https://a.example/"));
    EXPECT_FALSE(http::same_origin("https://a.example/", "https://b.example/"));
    EXPECT_FALSE(http::same_origin("https://a.example/", "https://a.example.evil.example/"));
    EXPECT_FALSE(http::same_origin("https://a.example/", "https://a.example@evil.example/"));
    EXPECT_FALSE(http::same_origin("https://a.example/", "not a url"));
    EXPECT_FALSE(http::same_origin("garbage", "garbage"));
}

// ---------------------------------------------------------------------------
// is_loopback_host

TEST(is_loopback_host, accepts_the_loopback_net_and_localhost) {
    EXPECT_TRUE(http::is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(http::is_loopback_host("127.1.2.3"));
    EXPECT_TRUE(http::is_loopback_host("127.255.255.254"));
    EXPECT_TRUE(http::is_loopback_host("::1"));
    EXPECT_TRUE(http::is_loopback_host("[::1]"));
    EXPECT_TRUE(http::is_loopback_host("::ffff:127.0.0.1"));
    EXPECT_TRUE(http::is_loopback_host("localhost"));
    EXPECT_TRUE(http::is_loopback_host("LocalHost"));
}

TEST(is_loopback_host, refuses_everything_else) {
    EXPECT_FALSE(http::is_loopback_host("10.0.0.1"));
    EXPECT_FALSE(http::is_loopback_host("128.0.0.1"));
    EXPECT_FALSE(http::is_loopback_host("0.0.0.0"));
    EXPECT_FALSE(http::is_loopback_host("::"));
    EXPECT_FALSE(http::is_loopback_host("::2"));
    EXPECT_FALSE(http::is_loopback_host("[::1"));
    EXPECT_FALSE(http::is_loopback_host("localhost.evil.example"));
    EXPECT_FALSE(http::is_loopback_host("127.0.0.1.evil.example"));
    EXPECT_FALSE(http::is_loopback_host("127.1"));
    EXPECT_FALSE(http::is_loopback_host(""));
    EXPECT_FALSE(http::is_loopback_host("ehr.example.com"));
}

// ---------------------------------------------------------------------------
// parse_retry_after (RFC 9110 §10.2.3, dates per §5.6.7)

const system_clock::time_point noon_2024 = sys_days{2024y / January / 1} + 12h;  // a Monday

TEST(parse_retry_after, delta_seconds) {
    EXPECT_EQ(http::parse_retry_after("120", noon_2024), 120s);
    EXPECT_EQ(http::parse_retry_after("0", noon_2024), 0s);
    EXPECT_EQ(http::parse_retry_after(" 7\t", noon_2024), 7s);
    // RFC 9111 §1.2.2: too large to represent means 2^31.
    EXPECT_EQ(http::parse_retry_after("99999999999999999999999", noon_2024), seconds{2147483648LL});
}

TEST(parse_retry_after, imf_fixdate) {
    EXPECT_EQ(http::parse_retry_after("Mon, 01 Jan 2024 12:01:00 GMT", noon_2024), 60s);
    // The RFC's own example, long past: wait 0s.
    EXPECT_EQ(http::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", noon_2024), 0s);
    // A fraction of a second is rounded up, never down to "too early".
    EXPECT_EQ(http::parse_retry_after("Mon, 01 Jan 2024 12:01:00 GMT", noon_2024 + 500ms), 60s);
    EXPECT_EQ(http::parse_retry_after("Tue, 02 Jan 2024 12:00:00 GMT", noon_2024), 24h);
}

TEST(parse_retry_after, obsolete_date_forms) {
    EXPECT_EQ(http::parse_retry_after("Monday, 01-Jan-24 12:00:30 GMT", noon_2024), 30s);
    EXPECT_EQ(http::parse_retry_after("Mon Jan  1 12:00:10 2024", noon_2024), 10s);
    EXPECT_EQ(http::parse_retry_after("Mon Jan 15 12:00:00 2024", noon_2024), 14 * 24h);
    EXPECT_EQ(http::parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", noon_2024), 0s);
    EXPECT_EQ(http::parse_retry_after("Sun Nov  6 08:49:37 1994", noon_2024), 0s);
    // Two-digit years within 50 years ahead are in this century (RFC 9110
    // §5.6.7), so '66 is 2066, a long wait.
    auto far = http::parse_retry_after("Friday, 01-Jan-66 00:00:00 GMT", noon_2024);
    ASSERT_TRUE(far);
    EXPECT_GT(*far, 40 * 365 * 24h);
}

// Found by tests/fuzz/fuzz_url: system_clock counts nanoseconds and ends in
// 2262, so a date past it (or before 1678) overflowed (undefined behaviour).
TEST(parse_retry_after, dates_outside_the_clock_range_are_clamped_not_overflowed) {
    EXPECT_EQ(http::parse_retry_after("Sun, 06 Nov 5994 08:49:37 GMT", noon_2024), seconds{2147483648LL});
    EXPECT_EQ(http::parse_retry_after("Fri Dec 31 23:59:59 9999", noon_2024), seconds{2147483648LL});
    EXPECT_EQ(http::parse_retry_after("Sun, 06 Nov 0994 08:49:37 GMT", noon_2024), 0s);
}

TEST(parse_retry_after, garbage_and_negative_are_nullopt) {
    for (const char* bad :
         {"", "   ", "-5", "+5", "1.5", "5s", "soon", "0x10", "Mon, 01 Jan 2024 12:01:00 UTC",
          "Mon, 31 Feb 2024 12:00:00 GMT", "Mon, 01 Jan 2024 24:00:00 GMT", "Mon, 1 Jan 2024 12:01:00 GMT",
          "Xyz, 01 Jan 2024 12:01:00 GMT", "Mon, 01 Foo 2024 12:01:00 GMT", "Mon Jan 1 12:00:10 2024",
          "Funday, 01-Jan-24 12:00:30 GMT"})
        EXPECT_FALSE(http::parse_retry_after(bad, noon_2024)) << bad;
}

// ---------------------------------------------------------------------------
// Encodings

TEST(form_encode, spaces_reserved_and_utf8) {
    EXPECT_EQ(http::form_encode({{"a b", "c&d=e+f/g"}}), "a+b=c%26d%3De%2Bf%2Fg");
    EXPECT_EQ(http::form_encode({{"name", "caf\xC3\xA9"}}), "name=caf%C3%A9");
    EXPECT_EQ(http::form_encode({{"keep", "AZaz09-._~"}}), "keep=AZaz09-._~");
    EXPECT_EQ(http::form_encode({{"grant_type", "authorization_code"},
                                 {"redirect_uri", "https://app.example/cb?x=1"},
                                 {"empty", ""}}),
              "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&empty=");
    EXPECT_EQ(http::form_encode({}), "");
}

TEST(percent_encode, encodes_everything_but_unreserved) {
    EXPECT_EQ(http::percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
    EXPECT_EQ(http::percent_encode("~-._"), "~-._");
    EXPECT_EQ(http::percent_encode(std::string("\x00\xFF", 2)), "%00%FF");
    EXPECT_EQ(http::percent_encode(""), "");
}

TEST(url_with_query, appends_with_the_right_separator) {
    EXPECT_EQ(
        http::url_with_query("https://x.example/fhir/Observation", {{"patient", "123"}, {"code", "a b"}}),
        "https://x.example/fhir/Observation?patient=123&code=a+b");
    EXPECT_EQ(http::url_with_query("https://x.example/p?a=1", {{"b", "2"}}), "https://x.example/p?a=1&b=2");
    EXPECT_EQ(http::url_with_query("https://x.example/p?", {{"b", "2"}}), "https://x.example/p?b=2");
    EXPECT_EQ(http::url_with_query("https://x.example/p?a=1&", {{"b", "2"}}), "https://x.example/p?a=1&b=2");
    EXPECT_EQ(http::url_with_query("https://x.example/p#frag", {{"k", "v"}}), "https://x.example/p?k=v#frag");
    EXPECT_EQ(http::url_with_query("https://x.example/p", {}), "https://x.example/p");
    EXPECT_EQ(http::url_with_query("https://x.example/p", {{"_lastUpdated", "gt2024-01-01T00:00:00+01:00"}}),
              "https://x.example/p?_lastUpdated=gt2024-01-01T00%3A00%3A00%2B01%3A00");
}

}  // namespace
