// The pure pieces of browser enrollment: the redirect's query, the scopes,
// the id_token's fhirUser claim, the state comparison.
#include <gtest/gtest.h>

#include "headachemd/core/base64.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/smart/enrollment.hpp"

namespace {

namespace sm = headachemd::smart;

std::string b64url(std::string_view s) {
    return headachemd::base64url_encode(
        std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(s.data()), s.size()));
}

TEST(ParseCallback, ReadsAWholeUrlATargetOrABareQuery) {
    for (const std::string in :
         {"https://clinic.example/cb?code=abc&state=xyz", "/cb?state=xyz&code=abc", "code=abc&state=xyz",
          "  \"https://clinic.example/cb?code=abc&state=xyz\"\n"}) {
        auto r = sm::parse_callback(in);
        ASSERT_TRUE(r) << in;
        EXPECT_EQ(r->code, "abc") << in;
        EXPECT_EQ(r->state, "xyz") << in;
        EXPECT_FALSE(r->error);
    }
}

TEST(ParseCallback, DecodesPercentAndPlusInAnError) {
    auto r = sm::parse_callback("/cb?error=access_denied&error_description=The%20user+said%20no&state=s");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error, "access_denied");
    EXPECT_EQ(r->error_description, "The user said no");
    EXPECT_FALSE(r->code);
}

TEST(ParseCallback, RefusesARepeatedParameterOrNoCodeAndNoError) {
    EXPECT_FALSE(sm::parse_callback("/cb?code=a&code=b&state=s"));
    EXPECT_FALSE(sm::parse_callback("/cb?state=s"));
    EXPECT_FALSE(sm::parse_callback("https://clinic.example/cb"));
    EXPECT_FALSE(sm::parse_callback(""));
    // The error message never echoes a value (a code is a credential).
    auto r = sm::parse_callback("/cb?code=SECRETCODE&code=SECRETCODE2");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().message.find("SECRET"), std::string::npos);
}

TEST(PathOf, IgnoresSchemeHostQueryAndFragment) {
    EXPECT_EQ(sm::path_of("https://h.example:8443/enroll/cb?x=1#f"), "/enroll/cb");
    EXPECT_EQ(sm::path_of("/enroll/cb?code=1"), "/enroll/cb");
    EXPECT_EQ(sm::path_of("http://127.0.0.1:9"), "/");
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
    EXPECT_TRUE(sm::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(sm::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(sm::constant_time_equal("abc", "abcd"));
}

TEST(EnrollmentScope, AddsWhatAStandaloneLaunchWithARefreshTokenNeeds) {
    EXPECT_EQ(sm::enrollment_scope({"patient/Condition.read"}),
              "patient/Condition.read launch/patient openid fhirUser offline_access");
    // Kept in order, each once, also when given as one space-separated string.
    EXPECT_EQ(
        sm::enrollment_scope({"openid fhirUser", "launch/patient", "offline_access", "patient/Patient.read"}),
        "openid fhirUser launch/patient offline_access patient/Patient.read");
}

TEST(MissingScopes, ListsWhatWasNotGranted) {
    EXPECT_EQ(sm::missing_scopes("a b c", "c a"), std::vector<std::string>{"b"});
    EXPECT_TRUE(sm::missing_scopes("a b", "b a").empty());
    // RFC 6749 §3.3: no scope in the answer means "as requested".
    EXPECT_TRUE(sm::missing_scopes("a b", "").empty());
}

TEST(PatientFromIdToken, ReadsFhirUserAsRelativeOrAbsoluteReference) {
    const std::string header = b64url(R"({"alg":"RS256","typ":"JWT"})");
    const auto token = [&](std::string_view payload) { return header + "." + b64url(payload) + ".sig"; };
    EXPECT_EQ(sm::patient_from_id_token(token(R"({"sub":"x","fhirUser":"Patient/123"})")), "123");
    EXPECT_EQ(sm::patient_from_id_token(token(R"({"fhirUser":"https://ehr.example/fhir/Patient/a-1.b"})")),
              "a-1.b");
    EXPECT_EQ(
        sm::patient_from_id_token(token(R"({"fhirUser":"https://ehr.example/fhir/Patient/9/_history/2"})")),
        "9");
    // A practitioner, no claim, a bad id, and not a JWT: no patient.
    EXPECT_FALSE(sm::patient_from_id_token(token(R"({"fhirUser":"Practitioner/7"})")));
    EXPECT_FALSE(sm::patient_from_id_token(token(R"({"fhirUser":"RelatedPatient/7"})")));
    EXPECT_FALSE(sm::patient_from_id_token(token(R"({"sub":"x"})")));
    EXPECT_FALSE(sm::patient_from_id_token(token(R"({"fhirUser":"Patient/a b"})")));
    EXPECT_FALSE(sm::patient_from_id_token("not-a-jwt"));
    EXPECT_FALSE(sm::patient_from_id_token(header + ".!!!.sig"));
}

TEST(ExplainOauthError, GivesAPlainExplanationForEachKnownCode) {
    for (const char* code : {"access_denied", "invalid_request", "invalid_scope", "unauthorized_client",
                             "unsupported_response_type", "server_error", "temporarily_unavailable",
                             "invalid_grant", "invalid_client", "unsupported_grant_type"}) {
        EXPECT_EQ(sm::explain_oauth_error(code).find("does not know"), std::string::npos) << code;
    }
    EXPECT_NE(sm::explain_oauth_error("made_up").find("does not know"), std::string::npos);
    EXPECT_NE(sm::explain_oauth_error("invalid_request").find("doctor"), std::string::npos);
}

}  // namespace
