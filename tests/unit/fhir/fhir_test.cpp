// FHIR REST helpers: URLs, page metadata, capabilities, classification.
#include <gtest/gtest.h>

#include "headachemd/fhir/fhir.hpp"

namespace {

namespace fhir = headachemd::fhir;

TEST(SearchUrl, PatientParameterExtrasCountAndLastUpdated) {
    fhir::search_spec s;
    s.fhir_base = "https://ehr.example/fhir/r4";
    s.resource_type = "Observation";
    s.patient_param = "patient";
    s.patient_id = "a b/c";
    s.extra = {{"category", "vital-signs,laboratory"}};
    s.count = 50;
    s.last_updated_gt = "2026-01-01T00:00:00Z";
    EXPECT_EQ(fhir::search_url(s),
              "https://ehr.example/fhir/r4/Observation?patient=a%20b%2Fc&category=vital-signs,laboratory"
              "&_count=50&_lastUpdated=gt2026-01-01T00:00:00Z");
    EXPECT_EQ(fhir::with_query_param("https://x/fhir/Condition?patient=1", "page", "2"),
              "https://x/fhir/Condition?patient=1&page=2");
}

TEST(PageMeta, NextLinkTotalAndType) {
    simdjson::padded_string page(std::string(R"({"resourceType":"Bundle","type":"searchset","total":12,
      "link":[{"relation":"self","url":"https://x/fhir/Observation?patient=1"},
              {"relation":"next","url":"https://x/fhir?_getpages=abc&_getpagesoffset=5"}],
      "entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]})"));
    const auto m = fhir::read_page_meta(page);
    ASSERT_TRUE(m) << m.err().message;
    EXPECT_EQ(m->resource_type, "Bundle");
    EXPECT_EQ(m->total, 12);
    EXPECT_EQ(m->next, "https://x/fhir?_getpages=abc&_getpagesoffset=5");
}

// Found by tests/fuzz/fuzz_normalize_document: the normalizer ignores a
// UTF-8 byte order mark (RFC 8259 §8.1 allows it) but read_page_meta, which
// the sync engine calls first, rejected the page as invalid JSON.
TEST(PageMeta, ByteOrderMarkIsIgnoredAsTheNormalizerDoes) {
    simdjson::padded_string page(
        std::string("\xEF\xBB\xBF"
                    R"({"resourceType":"Bundle","link":[{"relation":"next","url":"https://x/fhir?p=2"}]})"));
    const auto m = fhir::read_page_meta(page);
    ASSERT_TRUE(m) << m.err().message;
    EXPECT_EQ(m->resource_type, "Bundle");
    EXPECT_EQ(m->next, "https://x/fhir?p=2");
    simdjson::padded_string only_bom(std::string("\xEF\xBB\xBF"));
    EXPECT_FALSE(fhir::read_page_meta(only_bom));
}

TEST(PageMeta, LastPageHasNoNext) {
    simdjson::padded_string page(
        std::string(R"({"resourceType":"Bundle","link":[{"relation":"self","url":"u"}]})"));
    EXPECT_FALSE(fhir::read_page_meta(page)->next);
}

// FHIR R4 search paging (http.html#paging): a searchset may also carry
// first, previous and last links; only "next" is the next page. Following
// another would loop (previous, first) or skip pages (last).
TEST(PageMeta, OnlyTheNextRelationIsTheNextPage) {
    simdjson::padded_string page(std::string(R"({"resourceType":"Bundle","link":[
      {"relation":"first","url":"https://x/fhir?p=1"},{"relation":"previous","url":"https://x/fhir?p=2"},
      {"relation":"self","url":"https://x/fhir?p=3"},{"relation":"last","url":"https://x/fhir?p=9"}]})"));
    const auto m = fhir::read_page_meta(page);
    ASSERT_TRUE(m) << m.err().message;
    EXPECT_FALSE(m->next);
}

TEST(PageMeta, OperationOutcomeWith200IsRecognised) {
    simdjson::padded_string page(std::string(
        R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-costly","diagnostics":"x"}]})"));
    const auto m = fhir::read_page_meta(page);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->resource_type, "OperationOutcome");
    EXPECT_EQ(m->outcome_summary, "error too-costly");
}

TEST(PageMeta, NotJsonIsAnError) {
    simdjson::padded_string page(std::string("<html>gateway timeout</html>"));
    EXPECT_FALSE(fhir::read_page_meta(page));
}

TEST(Capabilities, LastUpdatedPerType) {
    const auto c =
        fhir::parse_capability_statement(R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server",
      "resource":[{"type":"Observation","searchParam":[{"name":"patient"},{"name":"_lastUpdated"}]},
                  {"type":"Condition","searchParam":[{"name":"patient"}]}]}]})");
    ASSERT_TRUE(c) << c.err().message;
    EXPECT_TRUE(c->supports("Observation", "_lastUpdated"));
    EXPECT_FALSE(c->supports("Condition", "_lastUpdated"));
    EXPECT_TRUE(c->serves("Condition"));
    EXPECT_FALSE(c->serves("Appointment"));
}

TEST(Classify, EveryStatusFamily) {
    EXPECT_EQ(fhir::classify_status(200), fhir::action::use);
    EXPECT_EQ(fhir::classify_status(401), fhir::action::refresh_token);
    EXPECT_EQ(fhir::classify_status(403), fhir::action::not_permitted);
    EXPECT_EQ(fhir::classify_status(404), fhir::action::not_found);
    EXPECT_EQ(fhir::classify_status(429), fhir::action::wait_and_retry);
    EXPECT_EQ(fhir::classify_status(503), fhir::action::wait_and_retry);
    EXPECT_EQ(fhir::classify_status(500), fhir::action::retry);
    EXPECT_EQ(fhir::classify_status(502), fhir::action::retry);
    EXPECT_EQ(fhir::classify_status(400), fhir::action::fail);
}

TEST(LastUpdated, OverlapIsSubtractedInUtc) {
    EXPECT_EQ(fhir::last_updated_with_overlap("2026-03-01T10:00:00Z", std::chrono::seconds(300)),
              "2026-03-01T09:55:00Z");
    EXPECT_EQ(fhir::last_updated_with_overlap("2026-03-01T10:00:00.123+02:00", std::chrono::seconds(0)),
              "2026-03-01T08:00:00Z");
    EXPECT_EQ(fhir::last_updated_with_overlap("2026-03", std::chrono::seconds(0)), "");  // not an instant
}

// Found by tests/fuzz/fuzz_url. The cursor is a server's meta.lastUpdated,
// which the normalizer keeps as text: a malformed zone made std::stoi throw
// out of the sync pass, and years outside 1000-9999 came out as instants
// that are not FHIR's ("224-05-01T…", "10000-01-01T…").
TEST(LastUpdated, MalformedServerTextFallsBackToAFullPull) {
    const std::chrono::seconds none{0};
    EXPECT_EQ(fhir::last_updated_with_overlap("2024-01-01T10:00:00+ab:cd", none), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("2024-01-01T10:00:00- :00", none), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("2024-01-01T10:00:00+05", none), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("2024-1-1T1:1:1+05:30 ", none), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("9999-12-31T23:59:59-01:00", none), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("0001-01-01T00:00:00Z", std::chrono::seconds(300)), "");
    EXPECT_EQ(fhir::last_updated_with_overlap("0224-05-01T10:00:00.123Z", none), "0224-05-01T10:00:00Z");
    EXPECT_EQ(fhir::last_updated_with_overlap("2024-05-01T10:00:00-04:30", none), "2024-05-01T14:30:00Z");
}

}  // namespace
