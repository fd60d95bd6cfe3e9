// The sandbox's SMART Backend Services grant (issue 15): POST /token with
// grant_type=client_credentials, asked the way the daemon asks
// (smart::make_backend_token_request), and bent one field at a time the way
// a careless or hostile client would. What a real EHR does on each refusal
// is what the daemon's bulk export must meet, so each has its own check.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/smart/smart.hpp"
#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
namespace smart = headachemd::smart;
using sbx::test::form;
using sbx::test::reply;
using sbx::test::running_sandbox;

namespace {

constexpr const char* backend_id = "bulk-app";

// A sandbox with a backend registration for `key` (kid "bulk-1").
struct backend_sandbox {
    explicit backend_sandbox(const smart::signing_key& key, bool ecw = false) {
        sbx::options o;
        o.ecw_mode = ecw;
        o.backend_client_id = backend_id;
        o.backend_jwks = key.public_jwks("bulk-1");
        s = std::make_unique<running_sandbox>(o);
        c = s->make_client();
    }
    std::unique_ptr<running_sandbox> s;
    std::unique_ptr<sbx::test::client> c;

    smart::client_credentials creds(const smart::signing_key& key, std::string id = backend_id) const {
        smart::client_credentials out;
        out.client_id = std::move(id);
        out.auth = smart::client_auth::private_key_jwt;
        out.key = std::make_shared<smart::signing_key>(key);
        out.key_id = "bulk-1";
        return out;
    }
    smart::token_request request(const std::string& scope, const smart::signing_key& key,
                                 std::string id = backend_id) const {
        return smart::make_backend_token_request(scope, creds(key, std::move(id)),
                                                 {s->srv().base_url() + "/token", s->clock().now()});
    }
    reply post(const smart::token_request& r) const { return c->post_form("/token", r.body, r.headers); }
};

std::string error_of(const reply& r) {
    try {
        return std::string(r.json().at("error").as_string()) + ": " +
               std::string(r.json().at("error_description").as_string());
    } catch (...) {
        return "<not an OAuth error: " + r.body + ">";
    }
}

const smart::signing_key& rsa_key() {
    static const smart::signing_key k = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    return k;
}

}  // namespace

TEST(SandboxBackendServices, IssuesAShortSystemTokenWithNoRefreshTokenAndNoPatient) {
    // Setup
    backend_sandbox b(rsa_key());
    // Run
    const reply r = b.post(b.request("system/Group.read system/Observation.read", rsa_key()));
    // Check: what parse_token_response accepts, and nothing a patient grant carries.
    ASSERT_EQ(r.status, 200) << r.body;
    const auto parsed = smart::parse_token_response(r.status, r.body);
    ASSERT_TRUE(parsed) << parsed.err().message;
    EXPECT_FALSE(parsed->access_token.empty());
    const auto j = r.json().as_object();
    EXPECT_EQ(j.count("refresh_token"), 0u) << r.body;
    EXPECT_EQ(j.count("patient"), 0u) << r.body;
    EXPECT_EQ(j.at("expires_in").as_int64(), 300);
    EXPECT_EQ(j.at("scope").as_string(), "system/Group.read system/Observation.read");
    EXPECT_EQ(b.s->srv().stats().backend_tokens_issued, 1u);
    // A system token reads nothing through the patient-facing searches.
    const auto patient = b.s->srv().patient_ids().front();
    const reply search = b.c->get("/fhir/Observation?patient=" + patient, parsed->access_token);
    EXPECT_EQ(search.status, 403) << search.body;
}

TEST(SandboxBackendServices, DiscoveryAdvertisesTheGrantOnlyWhenABackendIsRegistered) {
    // Setup
    backend_sandbox b(rsa_key());
    running_sandbox plain;
    auto pc = plain.make_client();
    // Run
    const auto with = b.c->get("/fhir/.well-known/smart-configuration").json();
    const auto without = pc->get("/fhir/.well-known/smart-configuration").json();
    // Check
    const auto has = [](const boost::json::value& j, const char* key, const char* v) {
        const auto& a = j.at(key).as_array();
        return std::find(a.begin(), a.end(), boost::json::value(v)) != a.end();
    };
    EXPECT_TRUE(has(with, "grant_types_supported", "client_credentials"));
    EXPECT_TRUE(has(with, "token_endpoint_auth_methods_supported", "private_key_jwt"));
    EXPECT_FALSE(has(without, "grant_types_supported", "client_credentials"));
    // Without a registration the grant is unsupported, whoever asks.
    const reply r =
        pc->post_form("/token", form({{"grant_type", "client_credentials"}, {"scope", "system/*.read"}}));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(error_of(r), "unsupported_grant_type: No backend client is registered");
}

TEST(SandboxBackendServices, RefusesAReusedAssertionAnotherKeyAnotherClientAndASecret) {
    // Setup
    backend_sandbox b(rsa_key());
    const smart::signing_key other = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    const auto good = b.request("system/Observation.read", rsa_key());
    ASSERT_EQ(b.post(good).status, 200);
    // Run / Check: each is 401 invalid_client and issues nothing.
    const reply reused = b.post(good);
    EXPECT_EQ(reused.status, 401) << reused.body;
    const reply wrong_key = b.post(b.request("system/Observation.read", other));
    EXPECT_EQ(wrong_key.status, 401) << wrong_key.body;
    const reply patient_app = b.post(b.request("system/Observation.read", rsa_key(), "headachemd-sandbox"));
    EXPECT_EQ(patient_app.status, 401) << patient_app.body;
    const reply secret = b.c->post_form("/token", form({{"grant_type", "client_credentials"},
                                                        {"scope", "system/Observation.read"},
                                                        {"client_id", backend_id},
                                                        {"client_secret", "guess"}}));
    EXPECT_EQ(secret.status, 401);
    EXPECT_EQ(error_of(secret), "invalid_client: A backend client authenticates with private_key_jwt only");
    for (const reply* r : {&reused, &wrong_key, &patient_app})
        EXPECT_EQ(error_of(*r).rfind("invalid_client: ", 0), 0u) << error_of(*r);
    EXPECT_EQ(b.s->srv().stats().backend_tokens_issued, 1u);
}

TEST(SandboxBackendServices, GrantsOnlyReadSystemScopesOfServedTypes) {
    // Setup
    backend_sandbox b(rsa_key());
    // Run / Check
    for (const char* scope :
         {"patient/Observation.read", "system/Observation.write", "system/Observation.cruds",
          "system/Spaceship.read", "system/Observation", "openid system/Group.read"}) {
        const reply r = b.post(b.request(scope, rsa_key()));
        EXPECT_EQ(r.status, 400) << scope;
        EXPECT_EQ(error_of(r).rfind("invalid_scope: ", 0), 0u) << scope << " " << error_of(r);
    }
    for (const char* scope :
         {"system/*.read", "system/Observation.rs system/Group.read", "system/Condition.r"}) {
        const reply r = b.post(b.request(scope, rsa_key()));
        EXPECT_EQ(r.status, 200) << scope << " " << r.body;
    }
}

TEST(SandboxBackendServices, EcwModeWantsGroupReadRs384AndSmartV1) {
    // Setup
    backend_sandbox b(rsa_key(), true);
    const smart::signing_key ec = smart::signing_key::generate(smart::jws_alg::es384);
    backend_sandbox ec_sandbox(ec, true);
    // Run
    const reply no_group = b.post(b.request("system/Observation.read", rsa_key()));
    const reply v2 = b.post(b.request("system/Group.read system/Observation.rs", rsa_key()));
    const reply es384 = ec_sandbox.post(ec_sandbox.request("system/Group.read", ec));
    const reply ok = b.post(b.request("system/Group.read system/Observation.read", rsa_key()));
    // Check
    EXPECT_EQ(error_of(no_group), "invalid_scope: system/Group.read is required in every bulk token request");
    EXPECT_EQ(error_of(v2), "invalid_scope: Only .read (SMART v1) system scopes are granted here");
    EXPECT_EQ(es384.status, 401) << es384.body;
    EXPECT_EQ(ok.status, 200) << ok.body;
}
