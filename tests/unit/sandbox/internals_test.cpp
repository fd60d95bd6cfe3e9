// The sandbox's pure helpers, tested with no sockets.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "../../../lib/sandbox/src/codec.hpp"
#include "../../../lib/sandbox/src/json_writer.hpp"

namespace d = headachemd::sandbox::detail;
using namespace std::chrono_literals;

TEST(SandboxCodec, PkceS256MatchesRfc7636AppendixB) {
    // Setup / Run
    const std::string challenge = d::pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    // Check
    EXPECT_EQ(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    EXPECT_TRUE(d::valid_pkce_string("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    EXPECT_FALSE(d::valid_pkce_string("short"));
    EXPECT_FALSE(d::valid_pkce_string(std::string(43, '+')));
}

TEST(SandboxCodec, Base64RoundTripsAndRejectsGarbage) {
    EXPECT_EQ(d::base64_encode("f"), "Zg==");
    EXPECT_EQ(d::base64_encode("fo"), "Zm8=");
    EXPECT_EQ(d::base64_encode("foo"), "Zm9v");
    EXPECT_EQ(d::base64url_encode("\xfb\xff"), "-_8");
    EXPECT_EQ(d::base64_decode("Zm9vYmFy").value(), "foobar");
    EXPECT_EQ(d::base64_decode("Zm8=").value(), "fo");
    EXPECT_FALSE(d::base64_decode("Zm9v!").has_value());
}

TEST(SandboxCodec, FormDecodingFollowsUrlencodedRules) {
    const auto p = d::parse_form("a=1+2&b=%2B%3D&empty=&flag&a=again");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(*d::find_param(*p, "a"), "1 2");
    EXPECT_EQ(*d::find_param(*p, "b"), "+=");
    EXPECT_EQ(*d::find_param(*p, "empty"), "");
    EXPECT_EQ(*d::find_param(*p, "flag"), "");
    EXPECT_EQ(d::count_param(*p, "a"), 2u);
    EXPECT_FALSE(d::parse_form("a=%4").has_value());
    EXPECT_FALSE(d::parse_form("a=%zz").has_value());
    EXPECT_EQ(d::url_encode("a b/c~"), "a%20b%2Fc~");
}

TEST(SandboxCodec, FhirDateRangesHaveTheirPrecision) {
    const auto day = d::parse_fhir_date_range("2024-06-01");
    ASSERT_TRUE(day.has_value());
    EXPECT_EQ(d::format_instant(day->first), "2024-06-01T00:00:00.000Z");
    EXPECT_EQ(day->second - day->first, std::chrono::hours(24));

    const auto month = d::parse_fhir_date_range("2024-12");
    ASSERT_TRUE(month.has_value());
    EXPECT_EQ(d::format_date(month->second), "2025-01-01");

    const auto ms = d::parse_fhir_date_range("2024-06-01T10:00:00.123Z");
    ASSERT_TRUE(ms.has_value());
    EXPECT_EQ(d::format_instant(ms->first), "2024-06-01T10:00:00.123Z");
    EXPECT_EQ(ms->second - ms->first, std::chrono::milliseconds(1));

    const auto zoned = d::parse_fhir_date_range("2024-06-01T12:30:00+02:00");
    ASSERT_TRUE(zoned.has_value());
    EXPECT_EQ(d::format_date_time(zoned->first), "2024-06-01T10:30:00Z");

    EXPECT_FALSE(d::parse_fhir_date_range("2024-13-01").has_value());
    EXPECT_FALSE(d::parse_fhir_date_range("2024-02-30").has_value());
    EXPECT_FALSE(d::parse_fhir_date_range("yesterday").has_value());
    EXPECT_FALSE(d::parse_fhir_date_range("2024-06-01T10:00:00Q").has_value());
}

TEST(SandboxJsonWriter, EscapesAndNestsCorrectly) {
    // Setup
    d::json_writer w;
    const std::string nasty = std::string("quote\" backslash\\ nl\n tab\t bell\x07 nul") + '\0' + " é";
    // Run
    w.begin_object().member("s", nasty).member("n", 42).member("f", 1.5).member("b", false);
    w.key("a").begin_array().value("x").begin_object().end_object().begin_array().end_array().end_array();
    w.key("raw").raw(R"({"k":[1,2]})");
    w.end_object();
    // Check: an independent parser reads back exactly what went in.
    const auto v = boost::json::parse(w.str());
    EXPECT_EQ(std::string(v.at("s").as_string()), nasty);
    EXPECT_EQ(v.at("n").as_int64(), 42);
    EXPECT_DOUBLE_EQ(v.at("f").as_double(), 1.5);
    EXPECT_FALSE(v.at("b").as_bool());
    EXPECT_EQ(v.at("a").as_array().size(), 3u);
    EXPECT_EQ(v.at("raw").at("k").as_array().size(), 2u);
    EXPECT_NE(w.str().find("\\u0007"), std::string::npos);
    EXPECT_NE(w.str().find("\\u0000"), std::string::npos);
}
