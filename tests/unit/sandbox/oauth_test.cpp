// /authorize and /token: PKCE, codes, refresh-token rotation, client
// authentication, grants and their revocation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::form;
using sbx::test::query_param;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

// RFC 7636 Appendix B.
const std::string verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const std::string challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const std::string redirect = "http://127.0.0.1/callback";

using fields = std::vector<std::pair<std::string, std::string>>;

fields authorize_fields(running_sandbox& s,
                        const std::string& scope = "launch/patient offline_access patient/*.read") {
    return {{"response_type", "code"},     {"client_id", s.srv().config().client_id},
            {"redirect_uri", redirect},    {"scope", scope},
            {"state", "st-123"},           {"aud", s.srv().fhir_base()},
            {"code_challenge", challenge}, {"code_challenge_method", "S256"}};
}

fields with(fields f, const std::string& k, const std::string& v) {
    bool found = false;
    for (auto& [name, value] : f)
        if (name == k) value = v, found = true;
    if (!found) f.emplace_back(k, v);
    return f;
}

fields without(fields f, const std::string& k) {
    std::erase_if(f, [&](const auto& kv) { return kv.first == k; });
    return f;
}

reply authorize(sbx::test::client& c, const fields& f) { return c.get("/authorize?" + form(f)); }

// The code from a successful authorize redirect ("" otherwise).
std::string code_of(const reply& r) {
    if (r.status != 302) return {};
    return query_param(r.header("location"), "code");
}

reply exchange(sbx::test::client& c, running_sandbox& s, const std::string& code,
               const std::string& v = verifier, const std::string& redirect_uri = redirect) {
    return c.post_form("/token",
                       form({{"grant_type", "authorization_code"},
                             {"code", code},
                             {"redirect_uri", redirect_uri},
                             {"code_verifier", v}}),
                       {{"Authorization",
                         sbx::test::basic_auth(s.srv().config().client_id, s.srv().config().client_secret)}});
}

std::string error_of(const reply& r) {
    try {
        return std::string(r.json().at("error").as_string());
    } catch (...) {
        return "<no error field: " + r.body + ">";
    }
}

}  // namespace

TEST(SandboxOauth, AuthorizeThenTokenWithPkceRfcVector) {
    // Setup
    running_sandbox s;
    auto c = s.make_client();
    // Run
    const reply a = authorize(*c, authorize_fields(s));
    ASSERT_EQ(a.status, 302) << a.body;
    const std::string location = a.header("location");
    EXPECT_EQ(location.rfind(redirect + "?", 0), 0u) << location;
    EXPECT_EQ(query_param(location, "state"), "st-123");
    const std::string code = code_of(a);
    ASSERT_FALSE(code.empty());
    const reply t = exchange(*c, s, code);
    // Check
    ASSERT_EQ(t.status, 200) << t.body;
    EXPECT_EQ(t.header("cache-control"), "no-store");
    const auto j = t.json();
    EXPECT_EQ(j.at("token_type").as_string(), "Bearer");
    EXPECT_EQ(j.at("expires_in").as_int64(), 3600);
    EXPECT_EQ(j.at("scope").as_string(), "launch/patient offline_access patient/*.read");
    EXPECT_EQ(j.at("patient").as_string(), s.srv().patient_ids().front());
    EXPECT_FALSE(j.at("refresh_token").as_string().empty());
    const std::string access(j.at("access_token").as_string());
    const reply p = c->get("/fhir/Patient/" + s.srv().patient_ids().front(), access);
    EXPECT_EQ(p.status, 200) << p.body;
}

TEST(SandboxOauth, PatientIsChosenByParameterOrControl) {
    running_sandbox s;
    auto c = s.make_client();
    const auto ids = s.srv().patient_ids();
    const reply by_param =
        exchange(*c, s, code_of(authorize(*c, with(authorize_fields(s), "patient", ids[3]))));
    ASSERT_EQ(by_param.status, 200) << by_param.body;
    EXPECT_EQ(by_param.json().at("patient").as_string(), ids[3]);

    s.srv().set_authorize_patient(ids[5]);
    const reply by_control = exchange(*c, s, code_of(authorize(*c, authorize_fields(s))));
    ASSERT_EQ(by_control.status, 200) << by_control.body;
    EXPECT_EQ(by_control.json().at("patient").as_string(), ids[5]);

    const reply unknown = authorize(*c, with(authorize_fields(s), "patient", "nobody"));
    EXPECT_EQ(query_param(unknown.header("location"), "error"), "invalid_request");
}

TEST(SandboxOauth, WrongVerifierIsInvalidGrant) {
    running_sandbox s;
    auto c = s.make_client();
    const std::string code = code_of(authorize(*c, authorize_fields(s)));
    const reply t = exchange(*c, s, code, std::string(43, 'a'));
    EXPECT_EQ(t.status, 400);
    EXPECT_EQ(error_of(t), "invalid_grant");
}

TEST(SandboxOauth, PlainOrMissingPkceIsRefusedAtAuthorize) {
    running_sandbox s;
    auto c = s.make_client();
    const reply plain = authorize(
        *c, with(with(authorize_fields(s), "code_challenge_method", "plain"), "code_challenge", verifier));
    ASSERT_EQ(plain.status, 302);
    EXPECT_EQ(query_param(plain.header("location"), "error"), "invalid_request");
    EXPECT_EQ(query_param(plain.header("location"), "state"), "st-123");
    EXPECT_TRUE(query_param(plain.header("location"), "code").empty());

    const reply missing =
        authorize(*c, without(without(authorize_fields(s), "code_challenge"), "code_challenge_method"));
    EXPECT_EQ(query_param(missing.header("location"), "error"), "invalid_request");
}

TEST(SandboxOauth, CodeIsSingleUseAndReuseRevokesItsTokens) {
    running_sandbox s;
    auto c = s.make_client();
    const std::string code = code_of(authorize(*c, authorize_fields(s)));
    const reply first = exchange(*c, s, code);
    ASSERT_EQ(first.status, 200);
    const std::string access(first.json().at("access_token").as_string());
    ASSERT_EQ(c->get("/fhir/Patient/" + s.srv().patient_ids().front(), access).status, 200);

    const reply second = exchange(*c, s, code);
    EXPECT_EQ(second.status, 400);
    EXPECT_EQ(error_of(second), "invalid_grant");
    // RFC 6749 §4.1.2: tokens issued for a replayed code are revoked.
    EXPECT_EQ(c->get("/fhir/Patient/" + s.srv().patient_ids().front(), access).status, 401);
}

TEST(SandboxOauth, CodeExpiresAfterSixtySeconds) {
    running_sandbox s;
    auto c = s.make_client();
    const std::string code = code_of(authorize(*c, authorize_fields(s)));
    s.clock().advance(61s);
    EXPECT_EQ(error_of(exchange(*c, s, code)), "invalid_grant");
}

TEST(SandboxOauth, RedirectUriMustMatchAtToken) {
    running_sandbox s;
    auto c = s.make_client();
    const std::string code = code_of(authorize(*c, authorize_fields(s)));
    EXPECT_EQ(error_of(exchange(*c, s, code, verifier, "http://127.0.0.1/other")), "invalid_grant");
}

TEST(SandboxOauth, BadClientOrRedirectIsAPageNotARedirect) {
    running_sandbox s;
    auto c = s.make_client();
    const reply bad_client = authorize(*c, with(authorize_fields(s), "client_id", "intruder"));
    EXPECT_EQ(bad_client.status, 400);
    EXPECT_FALSE(bad_client.has_header("location"));
    const reply bad_redirect =
        authorize(*c, with(authorize_fields(s), "redirect_uri", "https://evil.example/cb"));
    EXPECT_EQ(bad_redirect.status, 400);
    EXPECT_FALSE(bad_redirect.has_header("location"));
}

TEST(SandboxOauth, AudAndScopeAreChecked) {
    running_sandbox s;
    auto c = s.make_client();
    const reply aud = authorize(*c, with(authorize_fields(s), "aud", s.srv().fhir_base() + "/"));
    EXPECT_EQ(query_param(aud.header("location"), "error"), "invalid_request");
    const reply scope = authorize(*c, authorize_fields(s, "launch/patient patient/Unknown.read"));
    EXPECT_EQ(query_param(scope.header("location"), "error"), "invalid_scope");
    const reply rtype = authorize(*c, with(authorize_fields(s), "response_type", "token"));
    EXPECT_EQ(query_param(rtype.header("location"), "error"), "unsupported_response_type");
}

TEST(SandboxOauth, EcwRefusesAnUnlistedScopeWith403) {
    sbx::options o;
    o.ecw_mode = true;
    running_sandbox s(o);
    auto c = s.make_client();
    const reply r =
        authorize(*c, authorize_fields(s, "launch/patient offline_access patient/Appointment.read"));
    EXPECT_EQ(r.status, 403);
    // As observed from eClinicalWorks: the "error" is the status code.
    EXPECT_EQ(error_of(r), "403");
    EXPECT_EQ(std::string(r.json().at("error_description").as_string()), "invalid_request");
    const reply ok =
        authorize(*c, authorize_fields(s, "launch/patient offline_access patient/Observation.read"));
    EXPECT_EQ(ok.status, 302);
}

TEST(SandboxOauth, ErrorDescriptionsSurviveWhateverTheInput) {
    // A scope full of JSON and URL metacharacters comes back, encoded, in
    // the redirect's error_description.
    running_sandbox s;
    auto c = s.make_client();
    const std::string nasty = "patient/\"x\\y&z=1#\x01\n.read";
    const reply r = authorize(*c, authorize_fields(s, "launch/patient " + nasty));
    ASSERT_EQ(r.status, 302);
    EXPECT_EQ(query_param(r.header("location"), "error"), "invalid_scope");
    EXPECT_NE(query_param(r.header("location"), "error_description").find(nasty), std::string::npos);
    EXPECT_EQ(query_param(r.header("location"), "state"), "st-123");

    // eCW mode echoes nothing of the input: its refusal is one fixed body.
    sbx::options o;
    o.ecw_mode = true;
    running_sandbox e(o);
    auto ce = e.make_client();
    const reply r2 = authorize(*ce, authorize_fields(e, "launch/patient " + nasty));
    ASSERT_EQ(r2.status, 403);
    EXPECT_EQ(r2.body, R"({"error":"403","error_description":"invalid_request"})");
}

TEST(SandboxOauth, NoOfflineAccessMeansNoRefreshToken) {
    running_sandbox s;
    auto c = s.make_client();
    const reply t =
        exchange(*c, s, code_of(authorize(*c, authorize_fields(s, "launch/patient patient/*.read"))));
    ASSERT_EQ(t.status, 200);
    EXPECT_FALSE(t.json().as_object().contains("refresh_token"));
}

TEST(SandboxOauth, ConsentPageApprovesAndDenies) {
    running_sandbox s;
    auto c = s.make_client();
    const reply page = authorize(*c, with(authorize_fields(s), "prompt", "consent"));
    ASSERT_EQ(page.status, 200);
    EXPECT_EQ(page.header("content-type").rfind("text/html", 0), 0u);
    EXPECT_NE(page.body.find("action=\"/authorize/approve\""), std::string::npos);

    const reply approve =
        c->post_form("/authorize/approve", form(with(authorize_fields(s), "decision", "approve")));
    ASSERT_EQ(approve.status, 302);
    EXPECT_EQ(exchange(*c, s, code_of(approve)).status, 200);

    const reply deny =
        c->post_form("/authorize/approve", form(with(authorize_fields(s), "decision", "deny")));
    ASSERT_EQ(deny.status, 302);
    EXPECT_EQ(query_param(deny.header("location"), "error"), "access_denied");
    EXPECT_EQ(query_param(deny.header("location"), "state"), "st-123");
}

TEST(SandboxOauth, RefreshRotatesAndAReusedTokenRevokesTheGrant) {
    // Setup
    running_sandbox s;
    auto c = s.make_client();
    const std::string patient = s.srv().patient_ids().front();
    const std::string rt0 = s.srv().issue_refresh_token(patient);
    // Run
    const reply r1 = sbx::test::refresh(*c, s.srv().config(), rt0);
    ASSERT_EQ(r1.status, 200) << r1.body;
    const std::string rt1(r1.json().at("refresh_token").as_string());
    const reply r2 = sbx::test::refresh(*c, s.srv().config(), rt1);
    ASSERT_EQ(r2.status, 200) << r2.body;
    const std::string rt2(r2.json().at("refresh_token").as_string());
    const std::string access2(r2.json().at("access_token").as_string());
    EXPECT_NE(rt0, rt1);
    EXPECT_NE(rt1, rt2);
    EXPECT_EQ(r2.json().at("patient").as_string(), patient);
    ASSERT_EQ(c->get("/fhir/Patient/" + patient, access2).status, 200);
    using state = sbx::server::refresh_token_state;
    EXPECT_EQ(s.srv().refresh_token_state_of(rt0), state::spent);
    EXPECT_EQ(s.srv().refresh_token_state_of(rt1), state::spent);
    EXPECT_EQ(s.srv().refresh_token_state_of(rt2), state::live);
    EXPECT_EQ(s.srv().refresh_token_state_of("never-issued"), state::unknown);
    EXPECT_EQ(s.srv().last_refresh_patient(), patient);
    const reply reuse = sbx::test::refresh(*c, s.srv().config(), rt0);
    // Check: the reuse fails, and the whole grant is gone with it.
    EXPECT_EQ(reuse.status, 400);
    EXPECT_EQ(error_of(reuse), "invalid_grant");
    EXPECT_EQ(error_of(sbx::test::refresh(*c, s.srv().config(), rt2)), "invalid_grant");
    EXPECT_EQ(c->get("/fhir/Patient/" + patient, access2).status, 401);
    EXPECT_EQ(s.srv().refresh_token_state_of(rt2), state::revoked);
}

TEST(SandboxOauth, ReuseGraceReturnsTheSamePairWithinAMinute) {
    sbx::options o;
    o.refresh_reuse_grace = true;
    running_sandbox s(o);
    auto c = s.make_client();
    const std::string rt0 = s.srv().issue_refresh_token(s.srv().patient_ids().front());
    const reply r1 = sbx::test::refresh(*c, s.srv().config(), rt0);
    ASSERT_EQ(r1.status, 200);
    s.clock().advance(30s);
    const reply again = sbx::test::refresh(*c, s.srv().config(), rt0);
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.json().at("refresh_token"), r1.json().at("refresh_token"));
    EXPECT_EQ(again.json().at("access_token"), r1.json().at("access_token"));
    EXPECT_EQ(again.json().at("expires_in").as_int64(), 3600 - 30);

    s.clock().advance(31s);
    EXPECT_EQ(error_of(sbx::test::refresh(*c, s.srv().config(), rt0)), "invalid_grant");
    EXPECT_EQ(error_of(sbx::test::refresh(*c, s.srv().config(),
                                          std::string(r1.json().at("refresh_token").as_string()))),
              "invalid_grant");
}

TEST(SandboxOauth, ClientSecretBasicAndPostBothWork) {
    // A secret with characters that form encoding changes (RFC 6749 §2.3.1).
    sbx::options o;
    o.client_secret = "s3cr:t +/é%";
    running_sandbox s(o);
    auto c = s.make_client();
    const std::string patient = s.srv().patient_ids().front();

    const reply basic = c->post_form(
        "/token",
        form({{"grant_type", "refresh_token"}, {"refresh_token", s.srv().issue_refresh_token(patient)}}),
        {{"Authorization", sbx::test::basic_auth(o.client_id, o.client_secret)}});
    EXPECT_EQ(basic.status, 200) << basic.body;
    const reply post = sbx::test::refresh(*c, s.srv().config(), s.srv().issue_refresh_token(patient));
    EXPECT_EQ(post.status, 200) << post.body;

    const reply wrong = c->post_form(
        "/token",
        form({{"grant_type", "refresh_token"}, {"refresh_token", s.srv().issue_refresh_token(patient)}}),
        {{"Authorization", sbx::test::basic_auth(o.client_id, "nope")}});
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(error_of(wrong), "invalid_client");
    EXPECT_TRUE(wrong.has_header("www-authenticate"));

    const reply none = c->post_form(
        "/token",
        form({{"grant_type", "refresh_token"}, {"refresh_token", s.srv().issue_refresh_token(patient)}}));
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(error_of(none), "invalid_client");

    const reply both = c->post_form("/token",
                                    form({{"grant_type", "refresh_token"},
                                          {"refresh_token", s.srv().issue_refresh_token(patient)},
                                          {"client_secret", o.client_secret}}),
                                    {{"Authorization", sbx::test::basic_auth(o.client_id, o.client_secret)}});
    EXPECT_EQ(both.status, 400);
    EXPECT_EQ(error_of(both), "invalid_request");
}

TEST(SandboxOauth, UnknownOrRevokedRefreshTokensAreInvalidGrant) {
    running_sandbox s;
    auto c = s.make_client();
    const auto ids = s.srv().patient_ids();
    EXPECT_EQ(error_of(sbx::test::refresh(*c, s.srv().config(), "no-such-token")), "invalid_grant");

    const std::string rt_a = s.srv().issue_refresh_token(ids[0]);
    const std::string rt_b = s.srv().issue_refresh_token(ids[1]);
    const std::string access_a = sbx::test::access_token_for(s, *c, ids[0]);
    s.srv().revoke_patient_grants(ids[0]);
    EXPECT_EQ(error_of(sbx::test::refresh(*c, s.srv().config(), rt_a)), "invalid_grant");
    EXPECT_EQ(c->get("/fhir/Patient/" + ids[0], access_a).status, 401);
    EXPECT_EQ(sbx::test::refresh(*c, s.srv().config(), rt_b).status, 200);
}

TEST(SandboxOauth, RefreshMayNarrowButNotWidenTheScope) {
    running_sandbox s;
    auto c = s.make_client();
    const std::string patient = s.srv().patient_ids().front();
    const std::string rt =
        s.srv().issue_refresh_token(patient, "launch/patient offline_access patient/Observation.read");
    const auto& o = s.srv().config();
    const reply wider = c->post_form("/token", form({{"grant_type", "refresh_token"},
                                                     {"refresh_token", rt},
                                                     {"scope", "patient/Condition.read"},
                                                     {"client_id", o.client_id},
                                                     {"client_secret", o.client_secret}}));
    EXPECT_EQ(error_of(wider), "invalid_scope");
    const reply narrower = c->post_form("/token", form({{"grant_type", "refresh_token"},
                                                        {"refresh_token", rt},
                                                        {"scope", "patient/Observation.read"},
                                                        {"client_id", o.client_id},
                                                        {"client_secret", o.client_secret}}));
    ASSERT_EQ(narrower.status, 200) << narrower.body;
    EXPECT_EQ(narrower.json().at("scope").as_string(), "patient/Observation.read");
}

TEST(SandboxOauth, TokenCallsAreCounted) {
    running_sandbox s;
    auto c = s.make_client();
    (void)sbx::test::access_token_for(s, *c, s.srv().patient_ids().front());
    (void)sbx::test::refresh(*c, s.srv().config(), "bogus");
    const auto st = s.srv().stats();
    EXPECT_EQ(st.token_calls, 2u);
    EXPECT_EQ(st.by_path.at("/token"), 2u);
    EXPECT_EQ(st.by_status.at(200), 1u);
    EXPECT_EQ(st.by_status.at(400), 1u);
}

// The secret observer (and its ledger file) is what the integration suite's
// log scan searches for: it must hear of every secret the moment it exists.
TEST(SandboxSecrets, ObserverHearsEverySecretAndIdentifier) {
    std::mutex mu;
    std::multimap<std::string, std::string> heard;  // kind name → value
    sbx::options o;
    o.secret_observer = [&](sbx::secret_kind k, std::string_view v) {
        std::lock_guard lock(mu);
        heard.emplace(std::string(sbx::secret_kind_name(k)), std::string(v));
    };
    running_sandbox s(o);
    auto c = s.make_client();
    const auto heard_value = [&](const std::string& kind, const std::string& value) {
        std::lock_guard lock(mu);
        const auto [b, e] = heard.equal_range(kind);
        for (auto it = b; it != e; ++it)
            if (it->second == value) return true;
        return false;
    };
    EXPECT_TRUE(heard_value("client_secret", s.srv().config().client_secret));
    EXPECT_TRUE(heard_value("patient_name", "Test Patient 0001"));
    EXPECT_TRUE(heard_value("patient_name", "Patient 0025"));
    EXPECT_TRUE(heard_value("patient_mrn", "SBX-0003"));
    EXPECT_TRUE(heard_value("patient_phone", "555-0102"));

    const reply auth = authorize(*c, authorize_fields(s));
    const std::string code = code_of(auth);
    ASSERT_FALSE(code.empty());
    EXPECT_TRUE(heard_value("authorization_code", code));
    const reply t = exchange(*c, s, code);
    ASSERT_EQ(t.status, 200) << t.body;
    EXPECT_TRUE(heard_value("access_token", std::string(t.json().at("access_token").as_string())));
    EXPECT_TRUE(heard_value("refresh_token", std::string(t.json().at("refresh_token").as_string())));
    const std::string issued = s.srv().issue_refresh_token(s.srv().patient_ids().front());
    EXPECT_TRUE(heard_value("refresh_token", issued));

    // A Patient update changes the phone: the new one is heard too.
    // (Patient 25's 555-0125 becomes 555-0126, which no other patient has.)
    EXPECT_FALSE(heard_value("patient_phone", "555-0126"));
    s.srv().update_resource("Patient", s.srv().patient_ids().back());
    EXPECT_TRUE(heard_value("patient_phone", "555-0126"));
}

TEST(SandboxSecrets, LedgerDirectoryFromTheEnvironment) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("headachemd-ledger-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    ::setenv("HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR", dir.c_str(), 1);
    std::string secret, token;
    {
        running_sandbox s;
        secret = s.srv().config().client_secret;
        token = s.srv().issue_refresh_token(s.srv().patient_ids().front());
    }
    ::unsetenv("HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR");
    std::string all;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        EXPECT_EQ(e.path().extension(), ".ledger");
        std::ifstream in(e.path());
        all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::filesystem::remove_all(dir);
    const auto hex = [](std::string_view v) {
        static constexpr char d[] = "0123456789abcdef";
        std::string out;
        for (const char ch : v) {
            out.push_back(d[static_cast<unsigned char>(ch) >> 4]);
            out.push_back(d[static_cast<unsigned char>(ch) & 0xF]);
        }
        return out;
    };
    EXPECT_NE(all.find("client_secret " + hex(secret) + "\n"), std::string::npos);
    EXPECT_NE(all.find("refresh_token " + hex(token) + "\n"), std::string::npos);
    EXPECT_NE(all.find("patient_name " + hex("Test Patient 0001") + "\n"), std::string::npos);
    // The ledger holds values in hex only: no raw secret in the file.
    EXPECT_EQ(all.find(token), std::string::npos);
}

namespace {

// RFC 7009: POST /revoke with client authentication; the whole grant of the
// token is revoked, and an unknown token is 200 too.
TEST(SandboxOauth, RevocationEndpointRevokesTheGrantOfARefreshToken) {
    running_sandbox s;
    auto c = s.make_client();
    const auto& o = s.srv().config();
    const auto ids = s.srv().patient_ids();
    const std::string rt_a = s.srv().issue_refresh_token(ids[0]);
    const std::string rt_b = s.srv().issue_refresh_token(ids[1]);
    const auto basic = fields{{"Authorization", sbx::test::basic_auth(o.client_id, o.client_secret)}};
    // Discovery advertises it.
    const auto conf = c->get("/fhir/.well-known/smart-configuration");
    EXPECT_EQ(conf.json().at("revocation_endpoint").as_string(), s.srv().base_url() + "/revoke");
    // And the CapabilityStatement's oauth-uris extension (SMART 1.0) names it too.
    const auto meta = c->get("/fhir/metadata");
    EXPECT_NE(meta.body.find(R"({"url":"revoke","valueUri":")" + s.srv().base_url() + "/revoke\"}"),
              std::string::npos);
    // Without client authentication: refused, nothing revoked.
    EXPECT_EQ(c->post_form("/revoke", sbx::test::form({{"token", rt_a}})).status, 401);
    // A wrong secret: refused.
    EXPECT_EQ(c->post_form("/revoke", sbx::test::form({{"token", rt_a}}),
                           {{"Authorization", sbx::test::basic_auth(o.client_id, "nope")}})
                  .status,
              401);
    // No token parameter: invalid_request.
    EXPECT_EQ(c->post_form("/revoke", sbx::test::form({{"token_type_hint", "refresh_token"}}), basic).status,
              400);
    EXPECT_EQ(sbx::test::refresh(*c, o, rt_a).status, 200) << "nothing was revoked so far";
    // Run: revoke patient B's token (client_secret_post this time).
    const auto r = c->post_form("/revoke", sbx::test::form({{"token", rt_b},
                                                            {"token_type_hint", "refresh_token"},
                                                            {"client_id", o.client_id},
                                                            {"client_secret", o.client_secret}}));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(error_of(sbx::test::refresh(*c, o, rt_b)), "invalid_grant");
    // Unknown token: 200 (RFC 7009 §2.2), and GET is not allowed.
    EXPECT_EQ(c->post_form("/revoke", sbx::test::form({{"token", "no-such-token"}}), basic).status, 200);
    EXPECT_EQ(c->get("/revoke").status, 405);
    EXPECT_EQ(s.srv().stats().revocations, 1u);
}

TEST(SandboxOauth, ScriptedRevocationFailureRevokesNothing) {
    running_sandbox s;
    auto c = s.make_client();
    const auto& o = s.srv().config();
    const std::string rt = s.srv().issue_refresh_token(s.srv().patient_ids()[0]);
    const auto basic = fields{{"Authorization", sbx::test::basic_auth(o.client_id, o.client_secret)}};
    s.srv().fail_revocations(503, 1);
    EXPECT_EQ(c->post_form("/revoke", sbx::test::form({{"token", rt}}), basic).status, 503);
    EXPECT_EQ(sbx::test::refresh(*c, o, rt).status, 200);
}

}  // namespace
