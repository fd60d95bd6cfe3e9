// FHIR read and search: bearer checks, the patient binding, paging with
// next links, _count and _lastUpdated.
#include <gtest/gtest.h>

#include <set>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

struct fhir_fixture {
    running_sandbox s;
    std::unique_ptr<sbx::test::client> c = s.make_client();
    std::vector<std::string> ids = s.srv().patient_ids();
    std::string token = sbx::test::access_token_for(s, *c, ids[0]);
};

std::string diagnostics_of(const reply& r) {
    try {
        return std::string(r.json().at("issue").as_array().at(0).at("code").as_string());
    } catch (...) {
        return {};
    }
}

}  // namespace

TEST(SandboxFhir, NoOrBadTokenIs401WithWwwAuthenticate) {
    fhir_fixture f;
    const reply none = f.c->get("/fhir/Observation?patient=" + f.ids[0]);
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.header("www-authenticate").rfind("Bearer", 0), 0u);
    const reply bad = f.c->get("/fhir/Observation?patient=" + f.ids[0], "not-a-token");
    EXPECT_EQ(bad.status, 401);
    EXPECT_NE(bad.header("www-authenticate").find("invalid_token"), std::string::npos);
    EXPECT_EQ(diagnostics_of(bad), "login");
}

TEST(SandboxFhir, TokenIsBoundToItsPatient) {
    fhir_fixture f;
    const std::string other = f.ids[1];
    EXPECT_EQ(f.c->get("/fhir/Observation?patient=" + other, f.token).status, 403);
    EXPECT_EQ(f.c->get("/fhir/Condition?subject=Patient/" + other, f.token).status, 403);
    EXPECT_EQ(f.c->get("/fhir/Patient?_id=" + other, f.token).status, 403);
    EXPECT_EQ(f.c->get("/fhir/Patient/" + other, f.token).status, 403);
    EXPECT_EQ(f.c->get("/fhir/Observation?patient=" + f.ids[0] + "," + other, f.token).status, 403);
    const std::string obs_of_other = f.s.srv().ids_of("Observation", other).front();
    EXPECT_EQ(f.c->get("/fhir/Observation/" + obs_of_other, f.token).status, 403);
    EXPECT_EQ(f.c->get("/fhir/Observation?patient=" + f.ids[0], f.token).status, 200);
    EXPECT_EQ(f.c->get("/fhir/Observation?subject=" + f.s.srv().fhir_base() + "/Patient/" + f.ids[0], f.token)
                  .status,
              200);
}

TEST(SandboxFhir, PagingReturnsEveryResourceExactlyOnce) {
    fhir_fixture f;
    for (const std::string type : {"Patient", "Condition", "MedicationRequest", "Encounter", "Observation",
                                   "Procedure", "Appointment"}) {
        const std::string param = type == "Patient" ? "_id" : "patient";
        const auto w =
            sbx::test::walk(*f.c, "/fhir/" + type + "?" + param + "=" + f.ids[0] + "&_count=3", f.token);
        const std::size_t expected = f.s.srv().count_for(f.ids[0], type);
        EXPECT_EQ(w.ids.size(), expected) << type;
        EXPECT_EQ(w.total, expected) << type;
        EXPECT_EQ(std::set<std::string>(w.ids.begin(), w.ids.end()).size(), w.ids.size())
            << type << ": duplicates";
        EXPECT_EQ(w.ids, f.s.srv().ids_of(type, f.ids[0])) << type;
    }
}

TEST(SandboxFhir, ObservationsSpanAtLeastSevenPagesOfFive) {
    fhir_fixture f;
    for (const auto& patient : f.ids) {
        EXPECT_GE(f.s.srv().count_for(patient, "Observation"), 31u) << patient;
    }
    const auto w = sbx::test::walk(*f.c, "/fhir/Observation?patient=" + f.ids[0] + "&_count=5", f.token);
    EXPECT_GE(w.pages, 7u);
    EXPECT_EQ(w.ids.size(), f.s.srv().count_for(f.ids[0], "Observation"));
}

TEST(SandboxFhir, BundleShapeFollowsR4Searchset) {
    fhir_fixture f;
    const reply r = f.c->get("/fhir/Observation?patient=" + f.ids[0] + "&_count=4", f.token);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type").rfind("application/fhir+json", 0), 0u);
    const auto b = r.json();
    EXPECT_EQ(b.at("resourceType").as_string(), "Bundle");
    EXPECT_EQ(b.at("type").as_string(), "searchset");
    const auto& entries = b.at("entry").as_array();
    ASSERT_EQ(entries.size(), 4u);
    for (const auto& e : entries) {
        const auto& res = e.at("resource");
        EXPECT_EQ(e.at("fullUrl").as_string(),
                  f.s.srv().fhir_base() + "/Observation/" + std::string(res.at("id").as_string()));
        EXPECT_EQ(e.at("search").at("mode").as_string(), "match");
        EXPECT_EQ(res.at("resourceType").as_string(), "Observation");
        EXPECT_EQ(res.at("meta").at("versionId").as_string(), "1");
        EXPECT_FALSE(res.at("meta").at("lastUpdated").as_string().empty());
        EXPECT_EQ(res.at("subject").at("reference").as_string(), "Patient/" + f.ids[0]);
    }
    std::string next;
    for (const auto& l : b.at("link").as_array())
        if (l.at("relation").as_string() == "next") next = std::string(l.at("url").as_string());
    EXPECT_EQ(next.rfind(f.s.srv().fhir_base() + "/Observation?", 0), 0u) << next;
}

TEST(SandboxFhir, DefaultPageSizeAppliesWithoutCount) {
    sbx::options o;
    o.default_page_size = 7;
    running_sandbox s(o);
    auto c = s.make_client();
    const auto ids = s.srv().patient_ids();
    const std::string token = sbx::test::access_token_for(s, *c, ids[0]);
    const reply r = c->get("/fhir/Observation?patient=" + ids[0], token);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.json().at("entry").as_array().size(), 7u);
    const reply zero = c->get("/fhir/Observation?patient=" + ids[0] + "&_count=0", token);
    ASSERT_EQ(zero.status, 200);
    EXPECT_FALSE(zero.json().as_object().contains("entry"));
    EXPECT_EQ(static_cast<std::size_t>(zero.json().at("total").as_int64()),
              s.srv().count_for(ids[0], "Observation"));
    EXPECT_EQ(c->get("/fhir/Observation?patient=" + ids[0] + "&_count=abc", token).status, 400);
}

TEST(SandboxFhir, ImplicitPatientCompartmentWithoutParameter) {
    fhir_fixture f;
    const auto w = sbx::test::walk(*f.c, "/fhir/Condition", f.token);
    EXPECT_EQ(w.ids, f.s.srv().ids_of("Condition", f.ids[0]));
}

TEST(SandboxFhir, LastUpdatedGtReturnsOnlyNewer) {
    // Setup: a cursor at "now", then changes a minute later.
    fhir_fixture f;
    const auto cursor = f.s.clock().now();
    const auto obs = f.s.srv().ids_of("Observation", f.ids[0]);
    const auto full = sbx::test::walk(*f.c, "/fhir/Observation?patient=" + f.ids[0], f.token);
    f.s.clock().advance(60s);
    f.s.srv().update_resource("Observation", obs[2]);
    f.s.srv().update_resource("Observation", obs[10]);
    const std::string added = f.s.srv().add_resource("Observation", f.ids[0]);
    f.s.srv().update_resource("Observation",
                              f.s.srv().ids_of("Observation", f.ids[1])[0]);  // another patient
    // Run
    const std::string since = "2024-07-01T00:00:10Z";  // the test clock's start (default_test_now)
    ASSERT_EQ(cursor, sbx::test::default_test_now);
    const auto w =
        sbx::test::walk(*f.c, "/fhir/Observation?patient=" + f.ids[0] + "&_lastUpdated=gt" + since, f.token);
    // Check
    EXPECT_EQ(w.ids, (std::vector<std::string>{obs[2], obs[10], added}));
    EXPECT_EQ(full.ids.size() + 1, f.s.srv().count_for(f.ids[0], "Observation"));
    const auto older =
        sbx::test::walk(*f.c, "/fhir/Observation?patient=" + f.ids[0] + "&_lastUpdated=le" + since, f.token);
    EXPECT_EQ(older.ids.size() + 3, f.s.srv().count_for(f.ids[0], "Observation"));
    EXPECT_EQ(f.c->get("/fhir/Observation?patient=" + f.ids[0] + "&_lastUpdated=gtyesterday", f.token).status,
              400);
}

TEST(SandboxFhir, ReadGivesEtagAndDeletedIsGone) {
    fhir_fixture f;
    const reply p = f.c->get("/fhir/Patient/" + f.ids[0], f.token);
    ASSERT_EQ(p.status, 200);
    EXPECT_EQ(p.header("etag"), "W/\"1\"");
    EXPECT_EQ(p.json().at("id").as_string(), f.ids[0]);
    const std::string cond = f.s.srv().ids_of("Condition", f.ids[0]).front();
    f.s.srv().delete_resource("Condition", cond);
    EXPECT_EQ(f.c->get("/fhir/Condition/" + cond, f.token).status, 410);
    EXPECT_EQ(f.c->get("/fhir/Condition/cond-99999", f.token).status, 404);
    EXPECT_EQ(f.c->get("/fhir/Basic?patient=" + f.ids[0], f.token).status, 404);
}

TEST(SandboxFhir, ScopeLimitsTheTypes) {
    running_sandbox s;
    auto c = s.make_client();
    const auto id = s.srv().patient_ids().front();
    const std::string token =
        sbx::test::access_token_for(s, *c, id, "launch/patient offline_access patient/Observation.read");
    EXPECT_EQ(c->get("/fhir/Observation?patient=" + id, token).status, 200);
    EXPECT_EQ(c->get("/fhir/Condition?patient=" + id, token).status, 403);
}

TEST(SandboxFhir, ExpiredAccessTokensAre401) {
    fhir_fixture f;
    const std::string url = "/fhir/Condition?patient=" + f.ids[0];
    ASSERT_EQ(f.c->get(url, f.token).status, 200);
    f.s.srv().expire_access_tokens();
    EXPECT_EQ(f.c->get(url, f.token).status, 401);

    const std::string fresh = sbx::test::access_token_for(f.s, *f.c, f.ids[0]);
    ASSERT_EQ(f.c->get(url, fresh).status, 200);
    f.s.clock().advance(3601s);
    EXPECT_EQ(f.c->get(url, fresh).status, 401);
}

TEST(SandboxFhir, PostSearchAndAppointmentActor) {
    fhir_fixture f;
    const reply post = f.c->post_form("/fhir/Observation/_search", "patient=" + f.ids[0] + "&_count=2",
                                      {{"Authorization", "Bearer " + f.token}});
    ASSERT_EQ(post.status, 200) << post.body;
    EXPECT_EQ(post.json().at("entry").as_array().size(), 2u);
    const auto w = sbx::test::walk(*f.c, "/fhir/Appointment?actor=Patient/" + f.ids[0], f.token);
    EXPECT_EQ(w.ids, f.s.srv().ids_of("Appointment", f.ids[0]));
    EXPECT_GE(w.ids.size(), 2u);
}

TEST(SandboxFhir, FhirCallsAreCountedPerPath) {
    fhir_fixture f;
    (void)f.c->get("/fhir/Condition?patient=" + f.ids[0], f.token);
    (void)f.c->get("/fhir/Condition?patient=" + f.ids[0], f.token);
    (void)f.c->get("/fhir/Patient/" + f.ids[0], f.token);
    const auto st = f.s.srv().stats();
    EXPECT_EQ(st.fhir_calls, 3u);
    EXPECT_EQ(st.by_path.at("/fhir/Condition"), 2u);
    EXPECT_EQ(st.by_path.at("/fhir/Patient/" + f.ids[0]), 1u);
}
