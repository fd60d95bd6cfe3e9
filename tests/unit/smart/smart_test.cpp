// SMART client-side parsing and request building (no sockets).
#include <gtest/gtest.h>

#include "headachemd/core/base64.hpp"
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
    EXPECT_EQ(to_string(t.err().code), "invalid_grant");
    EXPECT_NE(t.err().message.find("refresh token reused"), std::string::npos);
    EXPECT_EQ(t.err().message.find("SECRET-AT"), std::string::npos);
}

TEST(TokenResponse, ServerErrorsAndOddShapes) {
    EXPECT_EQ(to_string(smart::parse_token_response(503, "<html>busy</html>").err().code), "http_503");
    EXPECT_EQ(to_string(smart::parse_token_response(200, R"({"token_type":"Bearer"})").err().code),
              "bad_token_response");
    EXPECT_EQ(
        to_string(smart::parse_token_response(200, R"({"access_token":"a","token_type":"mac"})").err().code),
        "bad_token_response");
    EXPECT_EQ(to_string(smart::parse_token_response(401, R"({"error":"invalid_client"})").err().code),
              "invalid_client");
}

// Issue 12, defect 2: an empty or malformed refresh_token replaced the
// stored one, and the next refresh sent `refresh_token=`. Some servers send
// "" when they do not rotate.
TEST(TokenResponse, EmptyBlankOrMalformedRefreshTokenIsAbsentAndFlagged) {
    const std::string big(smart::token_caps::refresh_token + 1, 'r');
    for (const std::string& rt : std::vector<std::string>{
             R"("")", R"(" ")", R"("   ")", R"("rt-1\r\nX")", R"("rt\n")", R"("rt\u0000x")", R"(" rt-1")",
             R"("rt-1 ")", R"("caf\u00e9")", "42", R"({"a":1})", "\"" + big + "\""}) {
        const auto t = smart::parse_token_response(
            200, R"({"access_token":"at-1","token_type":"Bearer","refresh_token":)" + rt + "}");
        ASSERT_TRUE(t) << rt << ": " << t.err().message;
        EXPECT_FALSE(t->refresh_token) << rt;
        EXPECT_TRUE(t->refresh_token_malformed) << rt;
        EXPECT_EQ(t->access_token, "at-1");
    }
    // null and absent are "not rotated", not malformed.
    for (const std::string& body :
         std::vector<std::string>{R"({"access_token":"a","token_type":"Bearer","refresh_token":null})",
                                  R"({"access_token":"a","token_type":"Bearer"})"}) {
        const auto t = smart::parse_token_response(200, body);
        ASSERT_TRUE(t);
        EXPECT_FALSE(t->refresh_token);
        EXPECT_FALSE(t->refresh_token_malformed);
    }
    // Any VSCHAR (RFC 6749 A.17) is a token, an inner space included, up to the cap.
    const std::string at_cap(smart::token_caps::refresh_token, 'r');
    for (const std::string& rt :
         std::vector<std::string>{std::string("a b~!#$%&'()*+,-./:;<=>?@[]^_`{|}"), at_cap}) {
        const auto t = smart::parse_token_response(
            200, R"({"access_token":"a","token_type":"Bearer","refresh_token":")" + rt + R"("})");
        ASSERT_TRUE(t);
        EXPECT_EQ(t->refresh_token, rt);
        EXPECT_FALSE(t->refresh_token_malformed);
    }
}

// Issue 12, defect 3: an access token over 64 KiB made Beast throw when it
// built the Authorization header; one with CR/LF would be a header injection.
TEST(TokenResponse, OversizeAccessTokenIsRefusedAndTheMessageHoldsNoValue) {
    const std::string over(smart::token_caps::access_token + 1, 'A');
    const auto t =
        smart::parse_token_response(200, R"({"access_token":")" + over + R"(","token_type":"Bearer"})");
    ASSERT_FALSE(t);
    EXPECT_EQ(to_string(t.err().code), "bad_token_response");
    EXPECT_NE(t.err().message.find("over the cap"), std::string::npos) << t.err().message;
    EXPECT_EQ(t.err().message.find("AAAAAAAA"), std::string::npos);
    EXPECT_LT(t.err().message.size(), 200u);
    const std::string at_cap(smart::token_caps::access_token, 'A');
    EXPECT_TRUE(
        smart::parse_token_response(200, R"({"access_token":")" + at_cap + R"(","token_type":"Bearer"})"));
    // Beast's limit, for the record: the cap must stay far below it.
    static_assert(smart::token_caps::access_token + 7 < 64 * 1024);
}

TEST(TokenResponse, AccessTokenThatIsNoB64TokenIsRefused) {
    for (const std::string& at :
         std::vector<std::string>{R"(at-1\r\nX-Injected: yes)", R"(at 1)", R"(at\t1)", R"(at\u0001)",
                                  R"(=abc)", R"(ab=c)", R"(at\"1)", R"(caf\u00e9)", R"(a,b)"}) {
        const auto t =
            smart::parse_token_response(200, R"({"access_token":")" + at + R"(","token_type":"Bearer"})");
        ASSERT_FALSE(t) << at;
        EXPECT_EQ(to_string(t.err().code), "bad_token_response") << at;
        EXPECT_NE(t.err().message.find("b64token"), std::string::npos) << t.err().message;
    }
    // RFC 6750 §2.1: every b64token character, with trailing '='.
    const auto ok =
        smart::parse_token_response(200, R"({"access_token":"eyJ.aZ09-_~+/x==","token_type":"Bearer"})");
    ASSERT_TRUE(ok) << ok.err().message;
    EXPECT_EQ(ok->access_token, "eyJ.aZ09-_~+/x==");
}

TEST(TokenResponse, PatientScopeAndIdTokenOverTheirCapsOrMalformedAreRefused) {
    const std::string pre = R"({"access_token":"a","token_type":"Bearer",)";
    const std::string long_id(smart::token_caps::patient + 1, 'p');
    const std::string long_scope(smart::token_caps::scope + 1, 's');
    const std::string long_jwt(smart::token_caps::id_token + 1, 'j');
    for (const std::string& field : std::vector<std::string>{
             R"("patient":")" + long_id + "\"", std::string(R"("patient":"p/1")"),
             std::string(R"("patient":"p\r\n1")"), R"("scope":")" + long_scope + "\"",
             std::string(R"("scope":"patient/*.read\u0000")"), R"("id_token":")" + long_jwt + "\"",
             std::string(R"("id_token":"a.b c.d")")}) {
        const auto t = smart::parse_token_response(200, pre + field + "}");
        ASSERT_FALSE(t) << field.substr(0, 40);
        EXPECT_EQ(to_string(t.err().code), "bad_token_response");
        EXPECT_EQ(t.err().message.find("pppppppp"), std::string::npos);
        EXPECT_EQ(t.err().message.find("ssssssss"), std::string::npos);
        EXPECT_EQ(t.err().message.find("jjjjjjjj"), std::string::npos);
    }
    const auto ok = smart::parse_token_response(
        200, pre + R"("patient":"p-1.a","scope":"launch/patient patient/*.read","id_token":"a.b.c"})");
    ASSERT_TRUE(ok) << ok.err().message;
    const auto empty = smart::parse_token_response(200, pre + R"("patient":""})");
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty->patient);
}

// A refused success answer still carries the rotated refresh token: the
// server has spent the old one already.
TEST(TokenResponse, TheRotatedRefreshTokenOfARefusedAnswerCanBeKept) {
    const std::string over(smart::token_caps::access_token + 1, 'A');
    const std::string body =
        R"({"access_token":")" + over + R"(","token_type":"Bearer","refresh_token":"rt-2"})";
    ASSERT_FALSE(smart::parse_token_response(200, body));
    EXPECT_EQ(smart::rotated_refresh_token(200, body), "rt-2");
    EXPECT_FALSE(smart::rotated_refresh_token(200, R"({"access_token":"a","refresh_token":""})"));
    EXPECT_FALSE(smart::rotated_refresh_token(200, R"({"refresh_token":"rt\r\n"})"));
    EXPECT_FALSE(smart::rotated_refresh_token(200, R"({"error":"x","refresh_token":"rt-2"})"));
    EXPECT_FALSE(smart::rotated_refresh_token(400, R"({"refresh_token":"rt-2"})"));
    EXPECT_FALSE(smart::rotated_refresh_token(200, "not json"));
}

// Issue 12, defect 4: error_description went verbatim into sync_status and
// `status`; a server that echoes its request put the refresh token and the
// client secret there.
TEST(TokenResponse, ErrorDescriptionEchoingTheRequestHasNoSecretLeft) {
    const std::string rt = "rt-Zq81xK";  // short: found as a known secret, not by its shape
    const std::string secret = "s3cr:et%/";
    const std::string assertion = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJjIn0.c2lnbmF0dXJl";
    const std::string description = "bad request grant_type=refresh_token&refresh_token=" + rt +
                                    "&client_secret=" + headachemd::http::percent_encode(secret) +
                                    " secret " + secret + " assertion " + assertion +
                                    " Authorization: Basic aGVhZGFjaGVtZDpzM2NyOmV0JS8=\r\nX: \x01";
    const std::string body = R"({"error":"invalid_request","error_description":")" + [&] {
        std::string j;
        for (char c : description) {
            if (c == '\r')
                j += "\\r";
            else if (c == '\n')
                j += "\\n";
            else if (c == '\x01')
                j += "\\u0001";
            else
                j += c;
        }
        return j;
    }() + R"("})";
    const auto t = smart::parse_token_response(400, body, {rt, secret, assertion});
    ASSERT_FALSE(t);
    EXPECT_EQ(to_string(t.err().code), "invalid_request");
    const std::string& m = t.err().message;
    for (const std::string& leaked : {rt, secret, headachemd::http::percent_encode(secret), assertion,
                                      std::string("aGVhZGFjaGVtZDpzM2NyOmV0JS8="), std::string("\r"),
                                      std::string("\n"), std::string("\x01")})
        EXPECT_EQ(m.find(leaked), std::string::npos) << m;
    EXPECT_NE(m.find("bad request"), std::string::npos) << m;
    EXPECT_NE(m.find("<redacted>"), std::string::npos) << m;
    EXPECT_NE(m.find("\\x0d\\x0a"), std::string::npos) << m;
    EXPECT_NE(m.find("HTTP 400"), std::string::npos) << m;
}

TEST(TokenResponse, ErrorDescriptionIsBounded) {
    const auto t = smart::parse_token_response(
        400, R"({"error":"invalid_grant","error_description":")" + std::string(100000, 'x') + R"("})");
    ASSERT_FALSE(t);
    EXPECT_EQ(to_string(t.err().code), "invalid_grant");
    EXPECT_LT(t.err().message.size(), smart::token_caps::error_description + 100);
}

TEST(TokenResponse, AMalformedOrTokenShapedErrorCodeIsNotKept) {
    for (const std::string& code : std::vector<std::string>{
             std::string(R"(invalid_grant\r\n)"), std::string("eyJhbGciOiJSUzM4NCJ9xyz0123"),
             std::string(200, 'e'), std::string(R"(a\"b)"), std::string(""), std::string("a b")}) {
        const auto t = smart::parse_token_response(400, R"({"error":")" + code + R"("})");
        ASSERT_FALSE(t);
        EXPECT_EQ(to_string(t.err().code), "invalid_error_code") << code;
        EXPECT_EQ(t.err().message.find("eyJhbGci"), std::string::npos);
    }
    // "error": null in a success is no error.
    EXPECT_TRUE(
        smart::parse_token_response(200, R"({"access_token":"a","token_type":"Bearer","error":null})"));
    EXPECT_EQ(to_string(smart::parse_token_response(200, R"({"error":42})").err().code),
              "invalid_error_code");
    // A server's own codes (eCW's "403") and the registered ones are kept.
    for (const std::string& code :
         std::vector<std::string>{"403", "unsupported_grant_type", "temporarily_unavailable"})
        EXPECT_EQ(to_string(smart::parse_token_response(400, R"({"error":")" + code + R"("})").err().code),
                  code);
    // token_type is server text too.
    const auto tt = smart::parse_token_response(
        200, R"({"access_token":"a","token_type":"eyJhbGciOiJSUzM4NCJ9abc\r\n"})");
    ASSERT_FALSE(tt);
    EXPECT_EQ(tt.err().message.find("eyJhbGci"), std::string::npos) << tt.err().message;
    EXPECT_EQ(tt.err().message.find('\r'), std::string::npos);
}

TEST(SanitizeServerText, RedactsTokenShapedRunsAndKeepsWords) {
    EXPECT_EQ(smart::sanitize_server_text("unsupported_grant_type: refresh token expired"),
              "unsupported_grant_type: refresh token expired");
    EXPECT_EQ(smart::sanitize_server_text("token 0123456789abcdef0123456789abcdef is revoked"),
              "token <redacted> is revoked");
    EXPECT_EQ(smart::sanitize_server_text("see https://ehr.example/oauth/token"),
              "see https://ehr.example/oauth/token");
    EXPECT_EQ(smart::sanitize_server_text("tab\there\\ caf\xc3\xa9"), "tab\\x09here\\\\ caf\\xc3\\xa9");
    EXPECT_EQ(smart::sanitize_server_text("the key is pw", {"pw"}), "the key is <redacted>");
    EXPECT_EQ(smart::sanitize_server_text("a b", {"", "a b"}), "<redacted>");
    EXPECT_EQ(smart::sanitize_server_text("a+b", {"a b"}), "<redacted>");
    const std::string bounded = smart::sanitize_server_text(std::string(50, '\x01'), {}, 10);
    EXPECT_EQ(bounded, "\\x01\\x01...");
}

TEST(RefreshRequest, ClientSecretBasicFormEncodesBeforeBase64) {
    // RFC 6749 §2.3.1: id and secret are form-encoded, then joined by ':'.
    const auto r = smart::make_refresh_request(
        "rt/1+2", {"my client", "s:e%c", smart::client_auth::client_secret_basic});
    EXPECT_EQ(r.body, "grant_type=refresh_token&refresh_token=rt%2F1%2B2");
    std::string auth;
    for (const auto& [n, v] : r.headers)
        if (n == "Authorization") auth = v;
    EXPECT_EQ(auth, "Basic " + headachemd::base64_encode("my+client:s%3Ae%25c"));
}

TEST(RefreshRequest, ClientSecretPostPutsCredentialsInTheBody) {
    const auto r = smart::make_refresh_request("rt", {"id", "sec", smart::client_auth::client_secret_post});
    EXPECT_EQ(r.body, "grant_type=refresh_token&refresh_token=rt&client_id=id&client_secret=sec");
    for (const auto& [n, v] : r.headers) EXPECT_NE(n, "Authorization");
}

// What parse_token_response must cut out of an echo: every secret value the
// request carries, in each client authentication.
TEST(RefreshRequest, NamesEverySecretItCarries) {
    const auto basic =
        smart::make_refresh_request("rt-1", {"id", "sec-1", smart::client_auth::client_secret_basic});
    EXPECT_EQ(basic.secrets,
              (std::vector<std::string>{"rt-1", "sec-1", headachemd::base64_encode("id:sec-1")}));
    const auto post =
        smart::make_refresh_request("rt-1", {"id", "sec-1", smart::client_auth::client_secret_post});
    EXPECT_EQ(post.secrets, (std::vector<std::string>{"rt-1", "sec-1"}));
    const auto code = smart::make_code_exchange_request("code-1", "https://app/cb", "verifier-1",
                                                        {"id", "", smart::client_auth::none});
    EXPECT_EQ(code.secrets, (std::vector<std::string>{"code-1", "verifier-1"}));
    EXPECT_EQ(code.secret_views().size(), 2u);
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
    EXPECT_EQ(auth, "Basic " + headachemd::base64_encode("my+client:s%3Ae%25c"));
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
    EXPECT_EQ(to_string(unsupported.err().code), "unsupported_token_type");
    EXPECT_EQ(to_string(smart::parse_revocation_response(401, R"({"error":"invalid_client"})").err().code),
              "invalid_client");
    // The endpoint is down: a 503 (HTML or empty) is an http_ error, to retry later.
    EXPECT_EQ(to_string(smart::parse_revocation_response(503, "<html>busy</html>").err().code), "http_503");
    EXPECT_EQ(to_string(smart::parse_revocation_response(500, "").err().code), "http_500");
    EXPECT_EQ(to_string(smart::parse_revocation_response(302, "").err().code), "http_302");
    // The message never repeats what the server echoed.
    const auto echoed = smart::parse_revocation_response(
        400, R"({"error":"invalid_request","error_description":"token secret-rt-123 is bad"})");
    EXPECT_EQ(echoed.err().message.find("secret-rt-123"), std::string::npos) << echoed.err().message;
}

// Issue 12, defect 4 at revocation (unenroll): the server's `error` became
// the failure's code, printed by `unenroll`, whatever it held.
TEST(RevocationResponse, AnEchoInTheErrorCodeIsNotKept) {
    const auto r = smart::parse_revocation_response(
        401, R"({"error":"rt-0123456789ABCDEFabcdef\r\n","error_description":"rt-0123456789ABCDEFabcdef"})");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(to_string(r.err().code), "invalid_error_code");
    EXPECT_EQ(r.err().message.find("rt-0123"), std::string::npos) << r.err().message;
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

// Issue 17: a token shorter-lived than twice the margin keeps half its
// lifetime as margin; with the full 60 s a 30-second token would never be
// usable and every request would refresh (spending a single-use token).
TEST(AccessToken, AShortLivedTokenKeepsHalfItsLifetimeAsMargin) {
    smart::access_token_state s;
    const auto t0 = std::chrono::system_clock::time_point{} + 1000h;
    smart::token_response r;
    r.access_token = "at";
    r.expires_in = 30s;
    s.set(r, t0);
    EXPECT_TRUE(s.usable(t0));
    EXPECT_TRUE(s.usable(t0 + 14s));
    EXPECT_FALSE(s.usable(t0 + 15s));
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
