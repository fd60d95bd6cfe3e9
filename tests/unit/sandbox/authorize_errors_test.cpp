// /authorize errors as a generic SMART server and as eClinicalWorks answers
// them, and the Date header doctor's clock check reads.
#include <gtest/gtest.h>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::form;
using sbx::test::query_param;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

// RFC 7636 Appendix B.
const std::string challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const std::string redirect = "http://127.0.0.1/callback";
using fields = std::vector<std::pair<std::string, std::string>>;

fields good(running_sandbox& s,
            const std::string& scope = "launch/patient offline_access patient/Patient.read") {
    return {{"response_type", "code"},     {"client_id", s.srv().config().client_id},
            {"redirect_uri", redirect},    {"scope", scope},
            {"state", "st-123"},           {"aud", s.srv().fhir_base()},
            {"code_challenge", challenge}, {"code_challenge_method", "S256"}};
}

fields with(fields f, const std::string& k, const std::string& v) {
    for (auto& [name, value] : f)
        if (name == k) value = v;
    return f;
}

fields without(fields f, const std::string& k) {
    std::erase_if(f, [&](const auto& kv) { return kv.first == k; });
    return f;
}

reply authorize(running_sandbox& s, const fields& f) { return s.make_client()->get("/authorize?" + form(f)); }

sbx::options ecw() {
    sbx::options o;
    o.ecw_mode = true;
    return o;
}

}  // namespace

TEST(SandboxAuthorizeErrors, EcwAnswersEveryProblemWithTheSameBare403) {
    // Setup
    running_sandbox s(ecw());
    const std::vector<std::pair<std::string, fields>> cases = {
        {"unknown client", with(good(s), "client_id", "not-registered")},
        {"unregistered redirect URI", with(good(s), "redirect_uri", "https://app.example.org/cb")},
        {"missing PKCE", without(without(good(s), "code_challenge"), "code_challenge_method")},
        {"unsupported scope", good(s, "launch/patient patient/Appointment.read")},
    };
    for (const auto& [name, f] : cases) {
        // Run
        const reply r = authorize(s, f);
        // Check: byte for byte what eClinicalWorks sent the HeadacheMD team.
        EXPECT_EQ(r.status, 403) << name;
        EXPECT_EQ(r.body, R"({"error":"403","error_description":"invalid_request"})") << name;
        EXPECT_FALSE(r.has_header("location")) << name;
    }
    // The same request with nothing wrong is approved.
    EXPECT_EQ(authorize(s, good(s)).status, 302);
}

TEST(SandboxAuthorizeErrors, GenericUnknownClientOrRedirectIsAn400HtmlPage) {
    running_sandbox s;
    for (const auto& f :
         {with(good(s), "client_id", "not-registered"),
          with(good(s), "redirect_uri", "https://app.example.org/cb"), without(good(s), "redirect_uri")}) {
        const reply r = authorize(s, f);
        EXPECT_EQ(r.status, 400);
        EXPECT_EQ(r.header("content-type").rfind("text/html", 0), 0u);
        // RFC 6749 §4.1.2.1: never redirect to an unverified URI.
        EXPECT_FALSE(r.has_header("location"));
    }
}

TEST(SandboxAuthorizeErrors, GenericMissingPkceAndUnsupportedScopeRedirectWithADescription) {
    running_sandbox s;
    const reply pkce = authorize(s, without(good(s), "code_challenge"));
    ASSERT_EQ(pkce.status, 302);
    EXPECT_EQ(pkce.header("location").rfind(redirect + "?", 0), 0u);
    EXPECT_EQ(query_param(pkce.header("location"), "error"), "invalid_request");
    EXPECT_NE(query_param(pkce.header("location"), "error_description").find("PKCE"), std::string::npos);
    EXPECT_EQ(query_param(pkce.header("location"), "state"), "st-123");

    const reply scope = authorize(s, good(s, "launch/patient patient/Nothing.read"));
    ASSERT_EQ(scope.status, 302);
    EXPECT_EQ(query_param(scope.header("location"), "error"), "invalid_scope");
    EXPECT_NE(query_param(scope.header("location"), "error_description").find("patient/Nothing.read"),
              std::string::npos);
}

TEST(SandboxAuthorizeErrors, EveryResponseCarriesDateFromTheInjectedClock) {
    // Setup: 2024-07-01T00:00:10Z is the default test time (a Monday).
    running_sandbox s;
    auto c = s.make_client();
    // Run / Check
    EXPECT_EQ(c->get("/fhir/.well-known/smart-configuration").header("date"),
              "Mon, 01 Jul 2024 00:00:10 GMT");
    s.clock().advance(24h * 31 + 2h + 3min + 4s);
    EXPECT_EQ(c->get("/fhir/metadata").header("date"), "Thu, 01 Aug 2024 02:03:14 GMT");
    EXPECT_EQ(c->get("/nowhere").header("date"), "Thu, 01 Aug 2024 02:03:14 GMT");
}
