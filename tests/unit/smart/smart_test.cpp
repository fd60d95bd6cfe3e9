// SMART client-side parsing and request building (no sockets).
#include <gtest/gtest.h>

#include "headachemd/http/url.hpp"
#include "headachemd/smart/smart.hpp"

namespace {

namespace smart = headachemd::smart;
using namespace std::chrono_literals;

TEST(Discovery, ReadsTheEndpointsAndLists) {
    const auto c = smart::parse_configuration(R"({
      "authorization_endpoint": "https://ehr.example/authorize",
      "token_endpoint": "https://ehr.example/token",
      "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
      "scopes_supported": ["openid", "patient/Patient.read"],
      "code_challenge_methods_supported": ["S256"],
      "capabilities": ["launch-standalone", "permission-offline"],
      "unknown_extra": {"nested": [1, 2]}})");
    ASSERT_TRUE(c) << c.err().message;
    EXPECT_EQ(c->token_endpoint, "https://ehr.example/token");
    EXPECT_EQ(c->authorization_endpoint, "https://ehr.example/authorize");
    EXPECT_EQ(c->token_endpoint_auth_methods_supported.size(), 2u);
    EXPECT_EQ(c->code_challenge_methods_supported, std::vector<std::string>{"S256"});
    EXPECT_EQ(c->capabilities.back(), "permission-offline");
}

TEST(Discovery, WithoutTokenEndpointIsAnError) {
    EXPECT_FALSE(smart::parse_configuration(R"({"authorization_endpoint":"https://x/a"})"));
    EXPECT_FALSE(smart::parse_configuration("not json"));
}

TEST(Discovery, CapabilityStatementOauthUrisFallback) {
    const auto c =
        smart::parse_capability_oauth_uris(R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server",
      "security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension":[{"url":"authorize","valueUri":"https://x/authorize"},{"url":"token","valueUri":"https://x/token"},
                     {"url":"revoke","valueUri":"https://x/revoke"}]}]}}]})");
    ASSERT_TRUE(c) << c.err().message;
    EXPECT_EQ(c->token_endpoint, "https://x/token");
    EXPECT_EQ(c->revocation_endpoint, "https://x/revoke");
}

TEST(TokenResponse, SuccessWithRotationAndPatient) {
    const auto t = smart::parse_token_response(
        200, R"({"access_token":"at-1","token_type":"bearer","expires_in":3600,"refresh_token":"rt-2",
                 "scope":"patient/*.read offline_access","patient":"p-42"})");
    ASSERT_TRUE(t) << t.err().message;
    EXPECT_EQ(t->access_token, "at-1");
    EXPECT_EQ(t->expires_in, 3600s);
    EXPECT_EQ(t->refresh_token, "rt-2");
    EXPECT_EQ(t->patient, "p-42");
}

TEST(TokenResponse, ExpiresInAsAStringIsAccepted) {
    const auto t =
        smart::parse_token_response(200, R"({"access_token":"a","token_type":"Bearer","expires_in":"300"})");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->expires_in, 300s);
}

// Found by tests/fuzz/fuzz_smart: a long digit string overflowed the
// parser (signed overflow, undefined behaviour), and a huge number
// overflowed "now + expires_in" in access_token_state::set.
TEST(TokenResponse, HugeOrNegativeExpiresInIsClampedOrIgnored) {
    constexpr std::chrono::seconds cap{std::int64_t{1} << 31};
    auto s = smart::parse_token_response(
        200, R"({"access_token":"a","token_type":"Bearer","expires_in":"99999999999999999999999"})");
    ASSERT_TRUE(s) << s.err().message;
    EXPECT_EQ(s->expires_in, cap);
    auto n = smart::parse_token_response(
        200, R"({"access_token":"a","token_type":"Bearer","expires_in":9223372036854775807})");
    ASSERT_TRUE(n) << n.err().message;
    EXPECT_EQ(n->expires_in, cap);
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1'800'000'000}};
    smart::access_token_state state;
    state.set(*n, now);
    EXPECT_GT(state.expires_at(), now);
    EXPECT_TRUE(state.usable(now));
    // A negative lifetime is not one: treated as absent (one hour assumed).
    auto neg =
        smart::parse_token_response(200, R"({"access_token":"a","token_type":"Bearer","expires_in":-5})");
    ASSERT_TRUE(neg) << neg.err().message;
    EXPECT_FALSE(neg->expires_in.has_value());
}

TEST(TokenResponse, InvalidGrantIsItsOwnCodeAndNeverEchoesTokens) {
    const auto t = smart::parse_token_response(
        400,
        R"({"error":"invalid_grant","error_description":"refresh token reused","access_token":"SECRET-AT"})");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.err().code, "invalid_grant");
    EXPECT_NE(t.err().message.find("refresh token reused"), std::string::npos);
    EXPECT_EQ(t.err().message.find("SECRET-AT"), std::string::npos);
}

TEST(TokenResponse, ServerErrorsAndOddShapes) {
    EXPECT_EQ(smart::parse_token_response(503, "<html>busy</html>").err().code, "http_503");
    EXPECT_EQ(smart::parse_token_response(200, R"({"token_type":"Bearer"})").err().code,
              "bad_token_response");
    EXPECT_EQ(smart::parse_token_response(200, R"({"access_token":"a","token_type":"mac"})").err().code,
              "bad_token_response");
    EXPECT_EQ(smart::parse_token_response(401, R"({"error":"invalid_client"})").err().code, "invalid_client");
}

TEST(RefreshRequest, ClientSecretBasicFormEncodesBeforeBase64) {
    // RFC 6749 §2.3.1: id and secret are form-encoded, then joined by ':'.
    const auto r = smart::make_refresh_request(
        "rt/1+2", {"my client", "s:e%c", smart::client_auth::client_secret_basic});
    EXPECT_EQ(r.body, "grant_type=refresh_token&refresh_token=rt%2F1%2B2");
    std::string auth;
    for (const auto& [n, v] : r.headers)
        if (n == "Authorization") auth = v;
    EXPECT_EQ(auth, "Basic " + headachemd::http::base64_encode("my+client:s%3Ae%25c"));
}

TEST(RefreshRequest, ClientSecretPostPutsCredentialsInTheBody) {
    const auto r = smart::make_refresh_request("rt", {"id", "sec", smart::client_auth::client_secret_post});
    EXPECT_EQ(r.body, "grant_type=refresh_token&refresh_token=rt&client_id=id&client_secret=sec");
    for (const auto& [n, v] : r.headers) EXPECT_NE(n, "Authorization");
}

TEST(RevocationRequest, Rfc7009FormWithHintAndBasicClientAuth) {
    // RFC 7009 §2.1: token and token_type_hint; the client authenticates as
    // at the token endpoint (here client_secret_basic, form-encoded first).
    const auto r = smart::make_revocation_request(
        "rt/1+2", {"my client", "s:e%c", smart::client_auth::client_secret_basic});
    EXPECT_EQ(r.body, "token=rt%2F1%2B2&token_type_hint=refresh_token");
    std::string auth, type;
    for (const auto& [n, v] : r.headers) {
        if (n == "Authorization") auth = v;
        if (n == "Content-Type") type = v;
    }
    EXPECT_EQ(auth, "Basic " + headachemd::http::base64_encode("my+client:s%3Ae%25c"));
    EXPECT_EQ(type, "application/x-www-form-urlencoded");
    EXPECT_EQ(r.body.find("grant_type"), std::string::npos);
}

TEST(RevocationRequest, ClientSecretPostPutsCredentialsInTheBody) {
    const auto r =
        smart::make_revocation_request("rt", {"id", "sec", smart::client_auth::client_secret_post});
    EXPECT_EQ(r.body, "token=rt&token_type_hint=refresh_token&client_id=id&client_secret=sec");
    for (const auto& [n, v] : r.headers) EXPECT_NE(n, "Authorization");
}

TEST(RevocationResponse, TwoHundredIsRevokedElseAnErrorWithoutTheToken) {
    // RFC 7009 §2.2: 200, whatever the body (also for an unknown token).
    EXPECT_TRUE(smart::parse_revocation_response(200, "").ok());
    EXPECT_TRUE(smart::parse_revocation_response(200, "not json").ok());
    // §2.2.1: unsupported_token_type, and RFC 6749 §5.2 errors.
    const auto unsupported = smart::parse_revocation_response(400, R"({"error":"unsupported_token_type"})");
    ASSERT_FALSE(unsupported.ok());
    EXPECT_EQ(unsupported.err().code, "unsupported_token_type");
    EXPECT_EQ(smart::parse_revocation_response(401, R"({"error":"invalid_client"})").err().code,
              "invalid_client");
    // The endpoint is down: a 503 (HTML or empty) is an http_ error, to retry later.
    EXPECT_EQ(smart::parse_revocation_response(503, "<html>busy</html>").err().code, "http_503");
    EXPECT_EQ(smart::parse_revocation_response(500, "").err().code, "http_500");
    EXPECT_EQ(smart::parse_revocation_response(302, "").err().code, "http_302");
    // The message never repeats what the server echoed.
    const auto echoed = smart::parse_revocation_response(
        400, R"({"error":"invalid_request","error_description":"token secret-rt-123 is bad"})");
    EXPECT_EQ(echoed.err().message.find("secret-rt-123"), std::string::npos) << echoed.err().message;
}

TEST(AccessToken, UsableUntilSixtySecondsBeforeExpiry) {
    smart::access_token_state s;
    const auto t0 = std::chrono::system_clock::time_point{} + 1000h;
    EXPECT_FALSE(s.usable(t0));
    smart::token_response r;
    r.access_token = "at";
    r.expires_in = 300s;
    s.set(r, t0);
    EXPECT_TRUE(s.usable(t0 + 239s));
    EXPECT_FALSE(s.usable(t0 + 240s));  // within the 60 s margin
    s.invalidate();
    EXPECT_FALSE(s.usable(t0));
}

}  // namespace

namespace {

TEST(Pkce, Rfc7636AppendixBVector) {
    EXPECT_EQ(smart::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
              "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(Pkce, FreshPairsAreLongUniqueAndConsistent) {
    const auto a = smart::make_pkce(), b = smart::make_pkce();
    EXPECT_EQ(a.verifier.size(), 43u);  // RFC 7636 §4.1: 43..128 characters
    EXPECT_NE(a.verifier, b.verifier);
    EXPECT_EQ(a.challenge, smart::pkce_challenge(a.verifier));
    EXPECT_GE(smart::random_state().size() * 6, 122u);  // SMART: at least 122 bits of entropy
}

TEST(Authorize, UrlCarriesEverySmartParameter) {
    const auto url = smart::authorize_url({"https://ehr.test/authorize", "cid", "https://clinic.test/cb",
                                           "launch/patient openid fhirUser offline_access", "st",
                                           "https://ehr.test/fhir", "chal"});
    for (const char* p :
         {"response_type=code", "client_id=cid", "redirect_uri=https%3A%2F%2Fclinic.test%2Fcb",
          "scope=launch%2Fpatient+openid+fhirUser+offline_access", "state=st",
          "aud=https%3A%2F%2Fehr.test%2Ffhir", "code_challenge=chal", "code_challenge_method=S256"})
        EXPECT_NE(url.find(p), std::string::npos) << p << " in " << url;
}

TEST(CodeExchange, FormHasCodeRedirectAndVerifier) {
    const auto r = smart::make_code_exchange_request("c0de", "https://clinic.test/cb", "ver",
                                                     {"id", "s", smart::client_auth::client_secret_post});
    EXPECT_EQ(r.body,
              "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fclinic.test%2Fcb"
              "&code_verifier=ver&client_id=id&client_secret=s");
}

}  // namespace
