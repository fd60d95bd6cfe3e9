// eClinicalWorks mode: the per-minute budget, fixed pages with a `page`
// parameter, no _lastUpdated, no Appointment.
#include <gtest/gtest.h>

#include <set>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {
sbx::options ecw(int page_size = 20) {
    sbx::options o;
    o.ecw_mode = true;
    o.default_page_size = page_size;
    o.rate_429 = 0.0;
    return o;
}
}  // namespace

TEST(SandboxEcw, TheCallOverTheBudgetIs429WithoutRetryAfter) {
    // Setup: the test clock is 10 s into a minute and stands still, so all
    // calls fall in one window.
    running_sandbox s(ecw());
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token = sbx::test::access_token_for(s, *c, id);  // call 1 (/token)
    // Run
    int ok = 1;
    for (int i = 0; i < 249; ++i) ok += c->get("/fhir/Condition?patient=" + id, token).status == 200;
    const reply over = c->get("/fhir/Condition?patient=" + id, token);  // call 251
    const reply token_over = sbx::test::refresh(*c, s.srv().config(), s.srv().issue_refresh_token(id));
    // Check
    EXPECT_EQ(ok, 250);
    EXPECT_EQ(over.status, 429);
    EXPECT_FALSE(over.has_header("retry-after"));
    EXPECT_EQ(token_over.status, 429);  // /token counts too
    EXPECT_EQ(s.srv().stats().responses_429, 2u);
    // The next minute boundary opens a new window.
    s.clock().advance(50s);
    EXPECT_EQ(c->get("/fhir/Condition?patient=" + id, token).status, 200);
}

TEST(SandboxEcw, PagesAreFixedAndUseAPageParameter) {
    running_sandbox s(ecw(5));
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token = sbx::test::access_token_for(s, *c, id);
    // _count is ignored: the page stays 5.
    const reply first = c->get("/fhir/Observation?patient=" + id + "&_count=50", token);
    ASSERT_EQ(first.status, 200);
    EXPECT_EQ(first.json().at("entry").as_array().size(), 5u);
    const std::string next = sbx::test::next_link(first);
    EXPECT_EQ(sbx::test::query_param(next, "page"), "2") << next;
    EXPECT_TRUE(sbx::test::query_param(next, "_getpagesoffset").empty());

    const auto w = sbx::test::walk(*c, "/fhir/Observation?patient=" + id, token);
    EXPECT_GE(w.pages, 7u);
    EXPECT_EQ(w.ids, s.srv().ids_of("Observation", id));
    EXPECT_EQ(std::set<std::string>(w.ids.begin(), w.ids.end()).size(), w.ids.size());
}

TEST(SandboxEcw, LastUpdatedIsIgnored) {
    running_sandbox s(ecw(500));
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token = sbx::test::access_token_for(s, *c, id);
    const reply r = c->get("/fhir/Condition?patient=" + id + "&_lastUpdated=gt2099-01-01", token);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(static_cast<std::size_t>(r.json().at("total").as_int64()), s.srv().count_for(id, "Condition"));
}

TEST(SandboxEcw, AppointmentIsNotServed) {
    running_sandbox s(ecw());
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token = sbx::test::access_token_for(s, *c, id);
    EXPECT_EQ(c->get("/fhir/Appointment?patient=" + id, token).status, 404);
    const auto counts = s.srv().count_by_type();
    EXPECT_EQ(counts.count("Appointment"), 0u);
    EXPECT_EQ(counts.size(), 7u);  // AllergyIntolerance is served, with none generated
    EXPECT_EQ(s.srv().count_for(id, "Appointment"), 0u);
}

TEST(SandboxEcw, InjectedTooManyRequestsCarryNoRetryAfter) {
    sbx::options o = ecw();
    o.rate_429 = 1.0;
    running_sandbox s(o);
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token = sbx::test::access_token_for(s, *c, id);
    const reply r = c->get("/fhir/Condition?patient=" + id, token);
    EXPECT_EQ(r.status, 429);
    EXPECT_FALSE(r.has_header("retry-after"));
}
