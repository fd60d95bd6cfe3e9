// doctor's checks, each on hand-written inputs, and its two drivers over a
// scripted transport (no sockets).
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/doctor/doctor.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
namespace dr = headachemd::doctor;
namespace cfg = headachemd::config;
using dr::severity;
using headachemd::test::temp_dir;
using headachemd::test::write_file;
using ::testing::HasSubstr;
using ::testing::Not;

// What an eClinicalWorks-like tenant publishes: v1 per-type scopes, no
// Appointment, S256 only, confidential symmetric clients.
const std::string ecw_discovery = R"({
  "authorization_endpoint": "https://ehr.example.org/authorize",
  "token_endpoint": "https://ehr.example.org/token",
  "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
  "scopes_supported": ["openid", "fhirUser", "launch/patient", "offline_access",
                       "patient/Patient.read", "patient/MedicationRequest.read", "patient/Condition.read"],
  "capabilities": ["launch-standalone", "client-confidential-symmetric", "permission-offline",
                   "context-standalone-patient"],
  "code_challenge_methods_supported": ["S256"]
})";

const std::string capability_without_appointment = R"({
  "resourceType": "CapabilityStatement",
  "rest": [{"mode": "server", "resource": [
    {"type": "Patient", "searchParam": [{"name": "_id", "type": "token"}]},
    {"type": "Condition", "searchParam": [{"name": "patient", "type": "reference"}]},
    {"type": "MedicationRequest", "searchParam": [{"name": "patient", "type": "reference"}]}
  ]}]
})";

headachemd::smart::configuration conf_of(const std::string& json) {
    auto c = headachemd::smart::parse_configuration(json);
    EXPECT_TRUE(c.ok());
    return c.ok() ? *c : headachemd::smart::configuration{};
}

headachemd::fhir::capabilities capability_of(const std::string& json) {
    auto c = headachemd::fhir::parse_capability_statement(json);
    EXPECT_TRUE(c.ok());
    return c.ok() ? *c : headachemd::fhir::capabilities{};
}

// The findings at `level` whose `what` contains `text`.
std::vector<dr::finding> with(const dr::findings& f, severity level, const std::string& text) {
    std::vector<dr::finding> out;
    for (const auto& x : f)
        if (x.level == level && x.what.find(text) != std::string::npos) out.push_back(x);
    return out;
}

bool has(const dr::findings& f, severity level, const std::string& text) {
    return !with(f, level, text).empty();
}

std::size_t count(const dr::findings& f, severity level) {
    return static_cast<std::size_t>(
        std::count_if(f.begin(), f.end(), [level](const dr::finding& x) { return x.level == level; }));
}

std::string dump(const dr::findings& f) {
    std::string s;
    for (const auto& x : f) s += std::string(dr::to_string(x.level)) + ": " + x.what + "\n";
    return s;
}

headachemd::http::response response(int status, std::string body,
                                    std::vector<headachemd::http::header_field> headers = {}) {
    headachemd::http::response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

const std::vector<std::string> issue_scopes = {"launch/patient",
                                               "openid",
                                               "profile",
                                               "offline_access",
                                               "patient/Patient.read",
                                               "patient/Appointment.read",
                                               "patient/MedicationRequest.read"};

}  // namespace

// ---- discovery ---------------------------------------------------------------

TEST(DoctorDiscovery, WellKnownIsUsedWhenPresent) {
    dr::findings out;
    const dr::fetched wk{"https://e/fhir/.well-known/smart-configuration", response(200, ecw_discovery), {}};
    const dr::fetched md{"https://e/fhir/metadata", response(200, capability_without_appointment), {}};
    const auto facts = dr::interpret_discovery("https://e/fhir", wk, &md, out);
    ASSERT_TRUE(facts.smart);
    EXPECT_TRUE(facts.from_well_known);
    ASSERT_TRUE(facts.capability);
    EXPECT_FALSE(facts.capability->serves("Appointment"));
    EXPECT_TRUE(has(out, severity::ok, "smart-configuration found")) << dump(out);
    EXPECT_EQ(count(out, severity::error), 0u);
}

TEST(DoctorDiscovery, FallsBackToOauthUrisWithAWarning) {
    dr::findings out;
    const std::string metadata = R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server",
      "security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
      "extension":[{"url":"authorize","valueUri":"https://e/auth"},{"url":"token","valueUri":"https://e/tok"}]}]},
      "resource":[]}]})";
    const dr::fetched wk{"https://e/fhir/.well-known/smart-configuration", response(404, "not found"), {}};
    const dr::fetched md{"https://e/fhir/metadata", response(200, metadata), {}};
    const auto facts = dr::interpret_discovery("https://e/fhir", wk, &md, out);
    ASSERT_TRUE(facts.smart);
    EXPECT_FALSE(facts.from_well_known);
    EXPECT_EQ(facts.smart->authorization_endpoint, "https://e/auth");
    EXPECT_TRUE(has(out, severity::warning, "oauth-uris were used")) << dump(out);
}

TEST(DoctorDiscovery, NothingReachableIsAnError) {
    dr::findings out;
    const dr::fetched wk{"https://e/fhir/.well-known/smart-configuration",
                         {},
                         headachemd::error{headachemd::errc::connect, "no route"}};
    const dr::fetched md{
        "https://e/fhir/metadata", {}, headachemd::error{headachemd::errc::connect, "no route"}};
    const auto facts = dr::interpret_discovery("https://e/fhir", wk, &md, out);
    EXPECT_FALSE(facts.smart);
    const auto e = with(out, severity::error, "no SMART configuration");
    ASSERT_EQ(e.size(), 1u) << dump(out);
    EXPECT_THAT(e[0].why, HasSubstr("could not be reached"));
}

// ---- aud -----------------------------------------------------------------------

TEST(DoctorAud, ExactBaseOkTrailingSlashMissingAndOtherAreErrors) {
    dr::findings out;
    dr::check_aud("https://e/fhir", "https://e/fhir", out);
    EXPECT_TRUE(has(out, severity::ok, "exactly the FHIR base"));
    out.clear();
    dr::check_aud("https://e/fhir/", "https://e/fhir", out);
    EXPECT_TRUE(has(out, severity::error, "trailing slash")) << dump(out);
    out.clear();
    dr::check_aud(std::nullopt, "https://e/fhir", out);
    EXPECT_TRUE(has(out, severity::error, "aud is missing"));
    out.clear();
    dr::check_aud("https://E/fhir", "https://e/fhir", out);
    EXPECT_TRUE(has(out, severity::error, "letter case")) << dump(out);
    out.clear();
    dr::check_aud("https://e/other", "https://e/fhir", out);
    EXPECT_TRUE(has(out, severity::error, "is not the FHIR base"));
}

// ---- PKCE ----------------------------------------------------------------------

TEST(DoctorPkce, ServerMustOfferS256) {
    dr::findings out;
    dr::check_pkce_server(conf_of(ecw_discovery), out);
    EXPECT_TRUE(has(out, severity::ok, "S256 is supported"));
    out.clear();
    auto c = conf_of(ecw_discovery);
    c.code_challenge_methods_supported = {"plain"};
    dr::check_pkce_server(c, out);
    EXPECT_TRUE(has(out, severity::error, "does not support PKCE S256"));
    out.clear();
    c.code_challenge_methods_supported = {"S256", "plain"};
    dr::check_pkce_server(c, out);
    EXPECT_TRUE(has(out, severity::info, "plain"));
    EXPECT_EQ(count(out, severity::error), 0u);
    out.clear();
    c.code_challenge_methods_supported.clear();
    dr::check_pkce_server(c, out);
    EXPECT_TRUE(has(out, severity::warning, "does not declare"));
}

TEST(DoctorPkce, RequestNeedsAnS256Challenge) {
    const std::string good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";  // RFC 7636 appendix B
    const std::string s256 = "S256", plain = "plain", shorty = "abc";
    dr::findings out;
    dr::check_pkce_request(&good, &s256, out);
    EXPECT_TRUE(has(out, severity::ok, "PKCE S256 challenge present"));
    out.clear();
    dr::check_pkce_request(nullptr, nullptr, out);
    const auto missing = with(out, severity::error, "no PKCE");
    ASSERT_EQ(missing.size(), 1u);
    EXPECT_THAT(missing[0].why, HasSubstr("403"));
    out.clear();
    dr::check_pkce_request(&good, nullptr, out);
    EXPECT_TRUE(has(out, severity::error, "code_challenge_method is missing"));
    out.clear();
    dr::check_pkce_request(&good, &plain, out);
    EXPECT_TRUE(has(out, severity::error, "not S256"));
    out.clear();
    dr::check_pkce_request(&shorty, &s256, out);
    EXPECT_TRUE(has(out, severity::error, "43-character"));
}

// ---- scopes --------------------------------------------------------------------

TEST(DoctorScopes, TheIssueRequestAgainstAnEcwTenant) {
    dr::findings out;
    const auto cap = capability_of(capability_without_appointment);
    dr::check_scopes(issue_scopes, conf_of(ecw_discovery), &cap, dr::server_kind{true}, out);
    const auto appt = with(out, severity::error, "patient/Appointment.read is not offered");
    ASSERT_EQ(appt.size(), 1u) << dump(out);
    EXPECT_THAT(appt[0].why, HasSubstr("healow Scheduling API"));
    EXPECT_THAT(appt[0].why, HasSubstr("does not list Appointment at all"));
    EXPECT_THAT(appt[0].why, HasSubstr("403 invalid_request"));
    // profile is not listed either; eCW refuses unlisted scopes.
    EXPECT_TRUE(has(out, severity::error, "scope profile is not offered")) << dump(out);
    EXPECT_TRUE(has(out, severity::info, "profile is requested"));
    EXPECT_TRUE(has(out, severity::info, "without fhirUser"));
    EXPECT_TRUE(has(out, severity::ok, "5 of 7 requested scopes"));
}

TEST(DoctorScopes, AnUnlistedButServedScopeIsOnlyAWarningOnAGenericServer) {
    // SMART: scopes_supported need not be exhaustive.
    dr::findings out;
    const auto cap = capability_of(capability_without_appointment);
    dr::check_scopes({"launch/patient", "offline_access", "patient/Condition.rs"}, conf_of(ecw_discovery),
                     &cap, dr::server_kind{false}, out);
    EXPECT_TRUE(has(out, severity::warning, "patient/Condition.rs is not offered")) << dump(out);
    EXPECT_EQ(count(out, severity::error), 0u);
    // … but a type the server does not serve at all is an error anywhere.
    out.clear();
    dr::check_scopes({"launch/patient", "patient/Appointment.read"}, conf_of(ecw_discovery), &cap,
                     dr::server_kind{false}, out);
    EXPECT_TRUE(has(out, severity::error, "patient/Appointment.read")) << dump(out);
}

TEST(DoctorScopes, NoScopesSupportedCannotBeChecked) {
    dr::findings out;
    auto c = conf_of(ecw_discovery);
    c.scopes_supported.clear();
    dr::check_scopes({"launch/patient", "patient/Appointment.read"}, c, nullptr, dr::server_kind{true}, out);
    EXPECT_TRUE(has(out, severity::warning, "does not publish scopes_supported"));
    EXPECT_EQ(count(out, severity::error), 0u);
}

TEST(DoctorOffline, NeedsTheScopeAndTheCapability) {
    dr::findings out;
    dr::check_offline(issue_scopes, conf_of(ecw_discovery), out);
    EXPECT_EQ(count(out, severity::error), 0u) << dump(out);
    out.clear();
    dr::check_offline({"launch/patient", "online_access"}, conf_of(ecw_discovery), out);
    EXPECT_TRUE(has(out, severity::error, "offline_access is not requested"));
    EXPECT_TRUE(has(out, severity::warning, "online_access"));
    out.clear();
    auto c = conf_of(ecw_discovery);
    c.capabilities = {"launch-standalone"};
    dr::check_offline(issue_scopes, c, out);
    EXPECT_TRUE(has(out, severity::error, "permission-offline"));
}

// ---- client authentication -----------------------------------------------------

TEST(DoctorClientAuth, MethodMustBeListed) {
    using m = cfg::client_auth_method;
    dr::findings out;
    dr::check_client_auth(m::client_secret_basic, conf_of(ecw_discovery), {true}, out);
    EXPECT_TRUE(has(out, severity::ok, "client_secret_basic is accepted"));
    EXPECT_EQ(count(out, severity::error) + count(out, severity::warning), 0u) << dump(out);
    out.clear();
    dr::check_client_auth(m::private_key_jwt, conf_of(ecw_discovery), {true}, out);
    EXPECT_TRUE(has(out, severity::error, "private_key_jwt is not accepted")) << dump(out);
    out.clear();
    dr::check_client_auth(m::none, conf_of(ecw_discovery), {true}, out);
    const auto pub = with(out, severity::error, "public");
    ASSERT_EQ(pub.size(), 1u);
    EXPECT_THAT(pub[0].why, HasSubstr("confidential clients only"));
    out.clear();
    dr::check_client_auth(m::none, conf_of(ecw_discovery), {false}, out);
    EXPECT_TRUE(has(out, severity::warning, "public"));
}

TEST(DoctorClientAuth, AnOmittedListMeansBasicAndAsymmetricNeedsItsCapability) {
    using m = cfg::client_auth_method;
    auto c = conf_of(ecw_discovery);
    c.token_endpoint_auth_methods_supported.clear();
    dr::findings out;
    dr::check_client_auth(m::client_secret_basic, c, {false}, out);
    EXPECT_TRUE(has(out, severity::ok, "RFC 8414")) << dump(out);
    out.clear();
    dr::check_client_auth(m::client_secret_post, c, {false}, out);
    EXPECT_TRUE(has(out, severity::warning, "cannot be checked"));
    out.clear();
    c.token_endpoint_auth_methods_supported = {"private_key_jwt"};
    dr::check_client_auth(m::private_key_jwt, c, {true}, out);
    EXPECT_TRUE(has(out, severity::warning, "client-confidential-asymmetric")) << dump(out);
    EXPECT_TRUE(has(out, severity::info, "RS384"));
}

// ---- redirect URI, state, parameters ----------------------------------------------

TEST(DoctorRedirectUri, HttpsOrLoopbackOnly) {
    const auto level_of = [](std::optional<std::string_view> uri) {
        dr::findings out;
        dr::check_redirect_uri(uri, out);
        return out.at(0).level;
    };
    EXPECT_EQ(level_of("https://clinic.example.org/cb"), severity::ok);
    EXPECT_EQ(level_of("http://127.0.0.1:8080/cb"), severity::ok);
    EXPECT_EQ(level_of("http://[::1]/cb"), severity::ok);
    EXPECT_EQ(level_of("http://localhost/cb"), severity::ok);
    EXPECT_EQ(level_of("http://clinic.example.org/cb"), severity::error);
    EXPECT_EQ(level_of("https://clinic.example.org/cb#x"), severity::error);
    EXPECT_EQ(level_of("/cb"), severity::error);
    EXPECT_EQ(level_of("myapp://cb"), severity::error);
    EXPECT_EQ(level_of(std::nullopt), severity::error);
}

TEST(DoctorState, AtLeast122Bits) {
    const auto level_of = [](const std::string* s) {
        dr::findings out;
        dr::check_state(s, out);
        return out.at(0).level;
    };
    const std::string b64(43, 'A'), b64_short(20, 'x'), uuid = "3f2b8c1e-7d4a-4f6b-9c2d-1a2b3c4d5e6f",
                                                        hex_short(30, 'a'), digits(36, '7'),
                                                        more_digits(37, '7');
    EXPECT_EQ(level_of(&b64), severity::ok);
    EXPECT_EQ(level_of(&uuid), severity::ok);
    EXPECT_EQ(level_of(&b64_short), severity::error);  // 120 bits at most
    EXPECT_EQ(level_of(&hex_short), severity::error);  // 120 bits
    EXPECT_EQ(level_of(&digits), severity::error);     // 36 · log2(10) = 119.6 bits
    EXPECT_EQ(level_of(&more_digits), severity::ok);   // 37 · log2(10) = 122.9 bits
    EXPECT_EQ(level_of(nullptr), severity::error);
}

TEST(DoctorParameters, NonceIsOidcNotAnError) {
    dr::findings out;
    dr::check_parameters({{"response_type", "code"},
                          {"client_id", "c"},
                          {"scope", "launch/patient openid profile"},
                          {"nonce", "n"}},
                         out);
    const auto nonce = with(out, severity::info, "nonce is an OpenID Connect parameter");
    ASSERT_EQ(nonce.size(), 1u) << dump(out);
    EXPECT_THAT(nonce[0].why, HasSubstr("unlikely cause"));
    EXPECT_EQ(count(out, severity::error), 0u);

    out.clear();
    dr::check_parameters({{"response_type", "token"},
                          {"client_id", "c"},
                          {"scope", "launch/patient"},
                          {"scope", "x"},
                          {"nonce", "n"},
                          {"foo", "1"}},
                         out);
    EXPECT_TRUE(has(out, severity::error, "response_type is token"));
    EXPECT_TRUE(has(out, severity::error, "scope appears more than once"));
    EXPECT_TRUE(has(out, severity::warning, "nonce is sent without the openid scope"));
    EXPECT_TRUE(has(out, severity::warning, "parameter foo is not defined"));
}

// ---- resources ------------------------------------------------------------------

TEST(DoctorResources, AConfiguredTypeTheServerDoesNotServe) {
    dr::findings out;
    dr::check_resources({{"Patient", {}}, {"Appointment", {}}}, capability_of(capability_without_appointment),
                        {true}, out);
    const auto e = with(out, severity::error, "Appointment is in [[ehr]] resources");
    ASSERT_EQ(e.size(), 1u) << dump(out);
    EXPECT_THAT(e[0].why, HasSubstr("healow Scheduling API"));
}

// ---- files -------------------------------------------------------------------------

TEST(DoctorFiles, SecretsMustBePrivateAndNonEmpty) {
    temp_dir dir;
    write_file(dir / "ok.secret", "s3");
    ::chmod((dir / "ok.secret").c_str(), 0600);
    write_file(dir / "open.secret", "s3");
    ::chmod((dir / "open.secret").c_str(), 0644);
    write_file(dir / "group.secret", "s3");
    ::chmod((dir / "group.secret").c_str(), 0640);
    write_file(dir / "empty.secret", "");
    ::chmod((dir / "empty.secret").c_str(), 0600);
    write_file(dir / "ca.pem", "x");
    ::chmod((dir / "ca.pem").c_str(), 0644);
    const auto level_of = [&](const char* name, bool secret) {
        dr::findings out;
        dr::check_file(dr::inspect_file(dir / name), "file", secret, out);
        return out.at(0);
    };
    EXPECT_EQ(level_of("ok.secret", true).level, severity::ok);
    EXPECT_EQ(level_of("open.secret", true).level, severity::error);
    EXPECT_THAT(level_of("open.secret", true).what, HasSubstr("0644"));
    EXPECT_THAT(level_of("open.secret", true).fix, HasSubstr("chmod 600"));
    // Group read is allowed for a file owned by root or us (the one rule of
    // lib/files: a systemd credential is 0440 through its ACL); group write is not.
    EXPECT_EQ(level_of("group.secret", true).level, severity::ok);
    ::chmod((dir / "group.secret").c_str(), 0660);
    EXPECT_EQ(level_of("group.secret", true).level, severity::error);
    EXPECT_EQ(level_of("empty.secret", true).level, severity::error);
    EXPECT_EQ(level_of("missing.secret", true).level, severity::error);
    EXPECT_EQ(level_of("ca.pem", false).level, severity::ok);  // a CA is public
    // The content of a secret never appears in a finding.
    dr::findings out;
    dr::check_file(dr::inspect_file(dir / "open.secret"), "file", true, out);
    for (const auto& f : out) EXPECT_THAT(f.what + f.why + f.fix, Not(HasSubstr("s3")));
}

// ---- clock -------------------------------------------------------------------------

TEST(DoctorClock, ParsesImfFixdate) {
    // RFC 9110 §5.6.7's example.
    const auto t = dr::parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT");
    ASSERT_TRUE(t);
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count(), 784111777);
    EXPECT_FALSE(dr::parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"));
    EXPECT_FALSE(dr::parse_imf_fixdate("Sun, 31 Feb 1994 08:49:37 GMT"));
    EXPECT_FALSE(dr::parse_imf_fixdate("Sun, 06 Nov 1994 25:49:37 GMT"));
}

TEST(DoctorClock, SkewThresholds) {
    const auto server = *dr::parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT");
    const auto level_at = [&](std::chrono::seconds local_offset) {
        dr::findings out;
        dr::check_clock("Sun, 06 Nov 1994 08:49:37 GMT", server + local_offset, out);
        return out.at(0);
    };
    using std::chrono::seconds;
    EXPECT_EQ(level_at(seconds(0)).level, severity::ok);
    EXPECT_EQ(level_at(seconds(-45)).level, severity::ok);
    EXPECT_EQ(level_at(seconds(120)).level, severity::warning);
    EXPECT_THAT(level_at(seconds(120)).what, HasSubstr("120 s ahead of"));
    EXPECT_EQ(level_at(seconds(-400)).level, severity::error);
    EXPECT_THAT(level_at(seconds(-400)).what, HasSubstr("400 s behind"));
    dr::findings out;
    dr::check_clock(std::nullopt, server, out);
    EXPECT_EQ(out.at(0).level, severity::warning);
    out.clear();
    dr::check_clock("yesterday", server, out);
    EXPECT_EQ(out.at(0).level, severity::warning);
}

// ---- the authorize answer ------------------------------------------------------------

TEST(DoctorAuthorize, A403WithoutRedirectListsLikelyCausesFoundFirst) {
    dr::findings earlier;
    dr::check_pkce_request(nullptr, nullptr, earlier);
    const std::string short_state = "abc";
    dr::check_state(&short_state, earlier);  // an error, but servers do not check it
    dr::findings out;
    dr::interpret_authorize(response(403, R"({"error":"403","error_description":"invalid_request"})"),
                            "https://app.example.org/cb", earlier, {true}, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].level, severity::error);
    EXPECT_THAT(out[0].what, HasSubstr("HTTP 403 without a redirect"));
    EXPECT_THAT(out[0].what, HasSubstr(R"({"error":"403","error_description":"invalid_request"})"));
    EXPECT_THAT(out[0].why, HasSubstr("1. no PKCE"));
    EXPECT_THAT(out[0].why, HasSubstr("not activated for this practice"));
    EXPECT_THAT(out[0].why, HasSubstr("redirect_uri is not registered"));
    EXPECT_THAT(out[0].why, Not(HasSubstr("state is too short")));
}

TEST(DoctorAuthorize, RedirectsAreReadWithoutLeakingTheCode) {
    const std::string cb = "https://app.example.org/cb";
    dr::findings out;
    dr::interpret_authorize(response(302, "", {{"Location", "https://login.example.org/signin?session=abc"}}),
                            cb, {}, {}, out);
    EXPECT_TRUE(has(out, severity::ok, "login page")) << dump(out);
    EXPECT_THAT(dump(out), Not(HasSubstr("session=abc")));
    out.clear();
    dr::interpret_authorize(
        response(302, "",
                 {{"Location", cb + "?error=invalid_scope&error_description=no+Appointment&state=s"}}),
        cb, {}, {}, out);
    EXPECT_TRUE(has(out, severity::error, "error=invalid_scope (no Appointment)")) << dump(out);
    out.clear();
    dr::interpret_authorize(response(302, "", {{"Location", cb + "?code=SECRET-CODE-123&state=s"}}), cb, {},
                            {}, out);
    EXPECT_TRUE(has(out, severity::ok, "authorization code")) << dump(out);
    for (const auto& f : out) EXPECT_THAT(f.what + f.why + f.fix, Not(HasSubstr("SECRET-CODE-123")));
    out.clear();
    dr::interpret_authorize(response(200, "<html>login</html>"), cb, {}, {}, out);
    EXPECT_EQ(out.at(0).level, severity::ok);
    out.clear();
    dr::interpret_authorize(response(429, ""), cb, {}, {}, out);
    EXPECT_EQ(out.at(0).level, severity::warning);
    out.clear();
    dr::interpret_authorize(response(400, "<html><title>Unknown client</title></html>"), cb, {}, {}, out);
    EXPECT_TRUE(has(out, severity::error, "page titled \"Unknown client\"")) << dump(out);
}

// ---- authorize URLs and enrollment scopes -----------------------------------------------

TEST(DoctorUrl, ParsesTheIssueRequest) {
    const auto p = dr::parse_authorize_url(
        "https://ehr.example.org/authorize?response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb"
        "&scope=launch%2Fpatient+openid&state=s&aud=https%3A%2F%2Fehr.example.org%2Ffhir&nonce=n");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->endpoint, "https://ehr.example.org/authorize");
    ASSERT_TRUE(p->get("scope"));
    EXPECT_EQ(*p->get("scope"), "launch/patient openid");
    EXPECT_EQ(*p->get("redirect_uri"), "https://a/cb");
    EXPECT_FALSE(p->get("code_challenge"));
    EXPECT_FALSE(dr::parse_authorize_url("not a url").ok());
    EXPECT_FALSE(dr::parse_authorize_url("ftp://x/authorize").ok());
}

TEST(DoctorUrl, EnrollmentScopesAddWhatTheDaemonNeeds) {
    auto e = *cfg::profile_preset("eclinicalworks");
    EXPECT_EQ(dr::enrollment_scopes(e), e.scopes);  // the preset already has them
    e.scopes = {"patient/Patient.read", "openid"};
    EXPECT_EQ(dr::enrollment_scopes(e),
              (std::vector<std::string>{"patient/Patient.read", "openid", "launch/patient", "fhirUser",
                                        "offline_access"}));
}

// ---- drivers over a scripted transport ---------------------------------------------------

namespace {

struct scripted final : headachemd::http::transport {
    std::map<std::string, headachemd::http::response> by_path;  // path (no query) → response
    std::vector<std::string> sent;
    std::vector<std::string> bodies;       // what each request carried (the token request's form)
    std::vector<bool> with_authorization;  // whether each carried an Authorization header

    asio::awaitable<headachemd::result<headachemd::http::response>> send(
        headachemd::http::request req) override {
        sent.push_back(req.url);
        bodies.push_back(req.body);
        bool auth = false;
        for (const auto& h : req.headers) auth = auth || h.name == "Authorization";
        with_authorization.push_back(auth);
        const std::string path = req.url.substr(0, req.url.find('?'));
        const auto it = by_path.find(path);
        if (it == by_path.end())
            co_return headachemd::error{headachemd::errc::connect, "connect failed: " + path};
        co_return it->second;
    }
};

template <class F>
dr::report run(F make) {
    asio::io_context io;
    dr::report rep;
    std::exception_ptr failure;
    auto task = [&]() -> asio::awaitable<void> { rep = co_await make(); };
    asio::co_spawn(io, task, [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return rep;
}

const std::vector<headachemd::http::header_field> date_now = {{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}};

headachemd::manual_clock at_date() {
    return headachemd::manual_clock(*dr::parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"));
}

}  // namespace

TEST(DoctorDriver, AuthorizeUrlOfTheIssueWithProbe) {
    // Setup
    scripted t;
    t.by_path["https://ehr.example.org/fhir/.well-known/smart-configuration"] =
        response(200, ecw_discovery, date_now);
    t.by_path["https://ehr.example.org/fhir/metadata"] =
        response(200, capability_without_appointment, date_now);
    t.by_path["https://ehr.example.org/authorize"] =
        response(403, R"({"error":"403","error_description":"invalid_request"})");
    const std::string url =
        "https://ehr.example.org/"
        "authorize?response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fa.example%2Fcb"
        "&scope=launch%2Fpatient%20openid%20profile%20offline_access%20patient%2FPatient.read%20patient%2F"
        "Appointment.read%20patient%2FMedicationRequest.read&state="
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
        "&aud=https%3A%2F%2Fehr.example.org%2Ffhir&nonce=abc";
    auto clk = at_date();
    dr::url_check in;
    in.authorize_url = url;
    in.probe = true;
    // Run
    const auto rep = run([&] { return dr::check_authorize_url(t, in, clk); });
    // Check
    const auto& f = rep.findings;
    EXPECT_TRUE(has(f, severity::error, "no PKCE")) << dump(f);
    EXPECT_TRUE(has(f, severity::error, "patient/Appointment.read is not offered")) << dump(f);
    EXPECT_TRUE(has(f, severity::info, "nonce")) << dump(f);
    EXPECT_TRUE(has(f, severity::ok, "clock agrees")) << dump(f);
    const auto probe = with(f, severity::error, "rejected at /authorize: HTTP 403");
    ASSERT_EQ(probe.size(), 1u) << dump(f);
    EXPECT_THAT(probe[0].why, HasSubstr("no PKCE"));
    EXPECT_FALSE(rep.passed());
    // The exact URL was sent once, after discovery, and no redirect followed.
    ASSERT_EQ(t.sent.size(), 3u);
    EXPECT_EQ(t.sent[2], url);
}

TEST(DoctorDriver, AuthorizeUrlWithoutProbeSendsNoAuthorizeRequest) {
    scripted t;
    t.by_path["https://ehr.example.org/fhir/.well-known/smart-configuration"] =
        response(200, ecw_discovery, date_now);
    t.by_path["https://ehr.example.org/fhir/metadata"] =
        response(200, capability_without_appointment, date_now);
    auto clk = at_date();
    dr::url_check in;
    in.authorize_url =
        "https://ehr.example.org/"
        "authorize?response_type=code&client_id=c&aud=https%3A%2F%2Fehr.example.org%2Ffhir%2F";
    const auto rep = run([&] { return dr::check_authorize_url(t, in, clk); });
    EXPECT_TRUE(has(rep.findings, severity::error, "trailing slash")) << dump(rep.findings);
    EXPECT_TRUE(has(rep.findings, severity::error, "state is missing"));
    for (const auto& u : t.sent) EXPECT_THAT(u, Not(HasSubstr("/authorize")));
}

TEST(DoctorDriver, RegistrationProbeIsTheEnrollmentRequest) {
    // Setup
    temp_dir dir;
    write_file(dir / "client.secret", "not-printed-anywhere");
    ::chmod((dir / "client.secret").c_str(), 0600);
    scripted t;
    t.by_path["https://ehr.example.org/fhir/.well-known/smart-configuration"] =
        response(200, ecw_discovery, date_now);
    t.by_path["https://ehr.example.org/fhir/metadata"] =
        response(200, capability_without_appointment, date_now);
    t.by_path["https://ehr.example.org/authorize"] =
        response(302, "", {{"Location", "https://ehr.example.org/login?x=1"}});
    dr::config_check in;
    in.ehr = *cfg::profile_preset("eclinicalworks");
    in.ehr.name = "ecw";
    in.ehr.fhir_base = "https://ehr.example.org/fhir";
    in.ehr.client_id = "hmd";
    in.ehr.client_secret_file = dir / "client.secret";
    // The preset's resources that this tenant does not serve would fail the run.
    in.ehr.resources = {{"Patient", {}}, {"Condition", {}}, {"MedicationRequest", {}}};
    in.ehr.scopes = {"launch/patient",
                     "openid",
                     "fhirUser",
                     "offline_access",
                     "patient/Patient.read",
                     "patient/Condition.read",
                     "patient/MedicationRequest.read"};
    in.redirect_uri = "https://clinic.example.org/cb";
    auto clk = at_date();
    // Run
    const auto rep = run([&] { return dr::check_registration(t, in, clk); });
    // Check
    EXPECT_TRUE(rep.passed()) << dump(rep.findings);
    EXPECT_EQ(rep.count(severity::warning), 0u) << dump(rep.findings);
    ASSERT_EQ(t.sent.size(), 3u);
    const auto sent = dr::parse_authorize_url(t.sent[2]);
    ASSERT_TRUE(sent.ok());
    EXPECT_EQ(*sent->get("code_challenge_method"), "S256");
    EXPECT_EQ(sent->get("code_challenge")->size(), 43u);
    EXPECT_EQ(*sent->get("aud"), "https://ehr.example.org/fhir");
    EXPECT_EQ(*sent->get("client_id"), "hmd");
    EXPECT_GE(sent->get("state")->size(), 43u);
    EXPECT_EQ(*sent->get("scope"),
              "launch/patient openid fhirUser offline_access patient/Patient.read patient/Condition.read "
              "patient/MedicationRequest.read");
    EXPECT_THAT(t.sent[2], Not(HasSubstr("not-printed-anywhere")));
    for (const auto& f : rep.findings)
        EXPECT_THAT(f.what + f.why + f.fix, Not(HasSubstr("not-printed-anywhere")));
}

TEST(DoctorDriver, UnreachableServerIsReportedAsSuch) {
    scripted t;  // nothing answers
    dr::config_check in;
    in.ehr = *cfg::profile_preset("generic");
    in.ehr.fhir_base = "https://down.example.org/fhir";
    in.ehr.client_auth = cfg::client_auth_method::none;
    in.redirect_uri = "https://clinic.example.org/cb";
    auto clk = at_date();
    const auto rep = run([&] { return dr::check_registration(t, in, clk); });
    EXPECT_TRUE(rep.unreachable);
    EXPECT_FALSE(rep.passed());
    EXPECT_EQ(t.sent.size(), 2u);  // discovery and metadata; no authorize request
}

TEST(DoctorDiscovery, TheServerNamedBaseIsComparedWithAud) {
    dr::findings out;
    const std::string metadata = R"({"resourceType":"CapabilityStatement",
      "implementation":{"description":"x","url":"https://e/fhir/r4/PRACTICE"},"rest":[]})";
    const dr::fetched wk{"https://e/fhir/.well-known/smart-configuration", response(200, ecw_discovery), {}};
    const dr::fetched md{"https://e/fhir/metadata", response(200, metadata), {}};
    const auto facts = dr::interpret_discovery("https://e/fhir", wk, &md, out);
    ASSERT_TRUE(facts.implementation_url);
    out.clear();
    dr::check_base_against_server("https://e/fhir", facts, out);
    EXPECT_TRUE(has(out, severity::warning, "names its FHIR base https://e/fhir/r4/PRACTICE")) << dump(out);
    out.clear();
    dr::check_base_against_server("https://e/fhir/r4/PRACTICE", facts, out);
    EXPECT_TRUE(out.empty()) << dump(out);
}

// ---- [ehr.bulk]: the backend registration (issue 15) -------------------------------

namespace {

// The sandbox's CapabilityStatement shape: export on Group (and Patient), and
// the system export on rest.
const std::string capability_with_exports = R"({
  "resourceType": "CapabilityStatement",
  "rest": [{"mode": "server",
    "resource": [
      {"type": "Patient", "operation": [{"name": "export",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}]},
      {"type": "Group", "operation": [{"name": "export",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]}],
    "operation": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]
  }]
})";

cfg::bulk_settings ecw_bulk() {
    auto b = *cfg::bulk_preset("eclinicalworks", {{"Patient", {}}, {"Condition", {}}});
    b.client_id = "hmd-backend";
    b.key_id = "kid-1";
    b.group_id = "registry-7";
    return b;
}

// A registration check of an eCW-like [[ehr]] with ecw_bulk() signing with
// `key`; the patient-facing client's secret is written into `dir`. No probe.
dr::config_check bulk_check(const temp_dir& dir, const std::filesystem::path& key) {
    write_file(dir / "client.secret", "not-printed-anywhere");
    ::chmod((dir / "client.secret").c_str(), 0600);
    dr::config_check in;
    in.ehr = *cfg::profile_preset("eclinicalworks");
    in.ehr.fhir_base = "https://ehr.example.org/fhir";
    in.ehr.client_id = "hmd";
    in.ehr.client_secret_file = dir / "client.secret";
    in.ehr.resources = {{"Patient", {}}, {"Condition", {}}};
    in.ehr.bulk = ecw_bulk();
    in.ehr.bulk->private_key_file = key;
    in.redirect_uri = "https://clinic.example.org/cb";
    in.probe = false;
    return in;
}

// The backend key of the driver's bulk tests: RSA (eCW verifies RS384
// only), in dir/bulk.pem with mode 0600.
headachemd::smart::signing_key write_bulk_key(const temp_dir& dir) {
    auto key = headachemd::smart::signing_key::generate(headachemd::smart::jws_alg::rs384, 2048);
    write_file(dir / "bulk.pem", key.private_pem());
    ::chmod((dir / "bulk.pem").c_str(), 0600);
    return key;
}

// An eCW-like tenant whose discovery lists RS384 assertions, with this
// CapabilityStatement.
void serve_rs384_tenant(scripted& t, const std::string& capability) {
    std::string discovery = ecw_discovery;
    discovery.insert(discovery.rfind('}'),
                     R"(, "token_endpoint_auth_signing_alg_values_supported": ["RS384"])");
    t.by_path["https://ehr.example.org/fhir/.well-known/smart-configuration"] =
        response(200, discovery, date_now);
    t.by_path["https://ehr.example.org/fhir/metadata"] = response(200, capability, date_now);
}

dr::server_facts facts_with_algs(std::optional<std::vector<std::string>> algs) {
    dr::server_facts f;
    f.signing_algs = std::move(algs);
    return f;
}

}  // namespace

TEST(DoctorBulk, ExportOperationsAreReadFromResourcesAndRest) {
    const auto all = dr::parse_export_operations(capability_with_exports);
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->group);
    EXPECT_TRUE(all->patient);
    EXPECT_TRUE(all->system);
    // Only on rest, told apart by the definition.
    const auto rest_only = dr::parse_export_operations(R"({"resourceType":"CapabilityStatement","rest":[{
      "operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]}]})");
    ASSERT_TRUE(rest_only);
    EXPECT_TRUE(rest_only->group);
    EXPECT_FALSE(rest_only->patient);
    EXPECT_FALSE(rest_only->system);
    const auto none = dr::parse_export_operations(capability_without_appointment);
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->group || none->patient || none->system);
    EXPECT_FALSE(dr::parse_export_operations("{\"resourceType\":\"Bundle\"}"));
    // interpret_discovery keeps both new facts.
    dr::findings out;
    const std::string wk_body = R"({"authorization_endpoint":"https://e/a","token_endpoint":"https://e/t",
      "token_endpoint_auth_signing_alg_values_supported":["RS384"]})";
    const dr::fetched wk{"https://e/fhir/.well-known/smart-configuration", response(200, wk_body), {}};
    const dr::fetched md{"https://e/fhir/metadata", response(200, capability_with_exports), {}};
    const auto facts = dr::interpret_discovery("https://e/fhir", wk, &md, out);
    ASSERT_TRUE(facts.signing_algs);
    EXPECT_EQ(*facts.signing_algs, std::vector<std::string>{"RS384"});
    ASSERT_TRUE(facts.exports);
    EXPECT_TRUE(facts.exports->group);
    const dr::fetched wk_without{
        "https://e/fhir/.well-known/smart-configuration", response(200, ecw_discovery), {}};
    EXPECT_FALSE(dr::interpret_discovery("https://e/fhir", wk_without, &md, out).signing_algs);
}

TEST(DoctorBulk, AlgorithmMustBeListedAndAnAbsentListIsUnknown) {
    dr::findings out;
    dr::check_bulk_algorithm(cfg::bulk_algorithm::rs384, facts_with_algs(std::vector<std::string>{"RS384"}),
                             out);
    EXPECT_TRUE(has(out, severity::ok, "accepts RS384")) << dump(out);
    out.clear();
    dr::check_bulk_algorithm(cfg::bulk_algorithm::es384, facts_with_algs(std::vector<std::string>{"RS384"}),
                             out);
    const auto e = with(out, severity::error, "does not accept ES384 client assertions (it lists: RS384)");
    ASSERT_EQ(e.size(), 1u) << dump(out);
    EXPECT_THAT(e[0].fix, HasSubstr("keygen --jwks --alg RS384"));
    out.clear();
    dr::check_bulk_algorithm(cfg::bulk_algorithm::es384, facts_with_algs(std::nullopt), out);
    EXPECT_TRUE(has(out, severity::warning, "is unknown")) << dump(out);
    EXPECT_EQ(count(out, severity::error), 0u);
    out.clear();
    dr::check_bulk_key_algorithm(cfg::bulk_algorithm::rs384, headachemd::smart::jws_alg::es384, out);
    EXPECT_TRUE(has(out, severity::error, "the private key signs ES384")) << dump(out);
}

TEST(DoctorBulk, TheConfiguredExportLevelMustBeOffered) {
    dr::findings out;
    const auto b = ecw_bulk();
    dr::check_bulk_export(b, dr::parse_export_operations(capability_with_exports), out);
    EXPECT_TRUE(has(out, severity::ok, "offers Group/registry-7/$export")) << dump(out);
    out.clear();
    dr::check_bulk_export(b, dr::parse_export_operations(capability_without_appointment), out);
    const auto e = with(out, severity::error, "does not offer Group/registry-7/$export");
    ASSERT_EQ(e.size(), 1u) << dump(out);
    EXPECT_THAT(e[0].why, HasSubstr("group-export"));
    EXPECT_THAT(e[0].fix, HasSubstr("enable Bulk Data export"));
    out.clear();
    // Patient level against a server that exports Groups only names the level it offers.
    auto p = b;
    p.level = cfg::bulk_level::patient;
    p.group_only = false;
    dr::export_operations group_only;
    group_only.group = true;
    dr::check_bulk_export(p, group_only, out);
    const auto pe = with(out, severity::error, "does not offer Patient/$export");
    ASSERT_EQ(pe.size(), 1u) << dump(out);
    EXPECT_THAT(pe[0].fix, HasSubstr("level = \"group\""));
    out.clear();
    dr::check_bulk_export(b, std::nullopt, out);
    EXPECT_TRUE(has(out, severity::warning, "is unknown")) << dump(out);
}

TEST(DoctorBulk, TokenAnswersAreExplainedWithoutTheToken) {
    const auto b = ecw_bulk();
    dr::findings out;
    dr::interpret_backend_token(
        response(401, R"({"error":"invalid_client","error_description":"Unknown kid"})"), b.scopes, b, {},
        out);
    const auto e = with(out, severity::error, "refused: token endpoint refused the request: invalid_client");
    ASSERT_EQ(e.size(), 1u) << dump(out);
    EXPECT_THAT(e[0].why, HasSubstr("does not know this key/kid"));
    EXPECT_THAT(e[0].why, HasSubstr("JWKS"));
    EXPECT_THAT(e[0].why, HasSubstr("kid-1"));
    out.clear();
    const std::string token = "eyJhbGciOiJSUzM4NCJ9.c2VjcmV0LXRva2VuLXZhbHVl.U2lnbmF0dXJlMTIz";
    dr::interpret_backend_token(response(200, R"({"access_token":")" + token +
                                                  R"(","token_type":"Bearer","expires_in":300,
        "scope":"system/Patient.read system/Condition.read system/Group.read"})"),
                                b.scopes, b, {}, out);
    EXPECT_TRUE(has(out, severity::ok, "succeeded")) << dump(out);
    EXPECT_TRUE(has(out, severity::ok, "grants every scope")) << dump(out);
    EXPECT_EQ(count(out, severity::error), 0u);
    out.clear();
    dr::interpret_backend_token(
        response(200, R"({"access_token":")" + token +
                          R"(","token_type":"Bearer","scope":"system/Patient.read"})"),
        b.scopes, b, {}, out);
    EXPECT_TRUE(has(out, severity::error,
                    "lacks scopes that were asked for: system/Condition.read system/Group.read"))
        << dump(out);
    out.clear();
    dr::interpret_backend_token(response(200, R"({"access_token":")" + token + R"(","token_type":"Bearer"})"),
                                b.scopes, b, {}, out);
    EXPECT_TRUE(has(out, severity::info, "names no scope")) << dump(out);
    for (const auto& f : out) EXPECT_THAT(f.what + f.why + f.fix, Not(HasSubstr("c2VjcmV0")));
}

TEST(DoctorDriver, BulkRegistrationChecksAlgorithmExportAndAToken) {
    // Setup: an eCW-like tenant that lists RS384 but no export operation.
    temp_dir dir;
    write_bulk_key(dir);
    scripted t;
    serve_rs384_tenant(t, capability_without_appointment);
    const std::string token = "eyJhbGciOiJSUzM4NCJ9.c2VjcmV0LXRva2VuLXZhbHVl.U2lnbmF0dXJlMTIz";
    t.by_path["https://ehr.example.org/token"] = response(
        200,
        R"({"access_token":")" + token +
            R"(","token_type":"Bearer","expires_in":300,"scope":"system/Patient.read system/Condition.read system/Group.read"})");
    const auto in = bulk_check(dir, dir / "bulk.pem");
    auto clk = at_date();
    // Run
    const auto rep = run([&] { return dr::check_registration(t, in, clk); });
    // Check: 1 passes, 2 fails with its fix, 3 passes.
    const auto& f = rep.findings;
    EXPECT_TRUE(has(f, severity::ok, "accepts RS384")) << dump(f);
    EXPECT_TRUE(has(f, severity::error, "does not offer Group/registry-7/$export")) << dump(f);
    EXPECT_TRUE(has(f, severity::ok, "backend token request with key_id kid-1 succeeded")) << dump(f);
    EXPECT_TRUE(has(f, severity::ok, "grants every scope")) << dump(f);
    EXPECT_FALSE(rep.passed());
    // The token request was a client_credentials grant with an assertion and
    // eCW's system/Group.read.
    ASSERT_EQ(t.sent.size(), 3u);
    EXPECT_EQ(t.sent[2], "https://ehr.example.org/token");
    EXPECT_THAT(t.bodies[2], HasSubstr("grant_type=client_credentials"));
    EXPECT_THAT(t.bodies[2], HasSubstr("client_assertion="));
    EXPECT_THAT(t.bodies[2], HasSubstr("system%2FGroup.read"));
    for (const auto& x : f) EXPECT_THAT(x.what + x.why + x.fix, Not(HasSubstr("c2VjcmV0")));
    const std::string printed = dr::render_report(rep, false, 0);
    EXPECT_THAT(printed, HasSubstr("bulk export (SMART Backend Services)"));
    EXPECT_THAT(printed, Not(HasSubstr(token)));
}

TEST(DoctorDriver, BulkWithoutItsKeyFileSendsNoTokenRequest) {
    temp_dir dir;
    scripted t;
    t.by_path["https://ehr.example.org/fhir/.well-known/smart-configuration"] =
        response(200, ecw_discovery, date_now);
    t.by_path["https://ehr.example.org/fhir/metadata"] = response(200, capability_with_exports, date_now);
    const auto in = bulk_check(dir, dir / "missing.pem");
    auto clk = at_date();
    const auto rep = run([&] { return dr::check_registration(t, in, clk); });
    const auto& f = rep.findings;
    // This discovery lists no signing algorithms: unknown, a warning.
    EXPECT_TRUE(has(f, severity::warning, "whether the server accepts RS384 client assertions is unknown"))
        << dump(f);
    EXPECT_TRUE(has(f, severity::ok, "offers Group/registry-7/$export")) << dump(f);
    EXPECT_TRUE(has(f, severity::error, "bulk private key file")) << dump(f);
    EXPECT_TRUE(has(f, severity::error, "the backend token request was not sent")) << dump(f);
    EXPECT_EQ(t.sent.size(), 2u);  // discovery and metadata only
}

// ---- [ehr.bulk] jwks_url ---------------------------------------------------------

namespace {

using headachemd::smart::jws_alg;
using headachemd::smart::signing_key;

const std::string jwks_url = "https://sync.clinic.example/.well-known/jwks.json";

dr::findings published(const headachemd::http::response& r, const std::vector<dr::expected_jwk>& keys) {
    dr::findings out;
    dr::interpret_published_jwks(jwks_url, r, keys, out);
    return out;
}

// The JWK Set text of these JWK objects.
std::string set_of(const std::vector<std::string>& jwks) {
    std::string out = R"({"keys":[)";
    for (std::size_t i = 0; i < jwks.size(); ++i) out += (i ? "," : "") + jwks[i];
    return out + "]}";
}

}  // namespace

TEST(DoctorBulk, ThePublishedJwksMustListTheCurrentKeyWithItsOwnPublicKey) {
    // Setup: the configured key, another key, and what each publishes.
    const auto mine = signing_key::generate(jws_alg::es384);
    const auto other = signing_key::generate(jws_alg::es384);
    const std::vector<dr::expected_jwk> current{{"bulk-1", mine.public_jwk("bulk-1"), "key_id"}};
    // Run / Check: the daemon's own set passes.
    auto f = published(response(200, mine.public_jwks("bulk-1")), current);
    EXPECT_TRUE(has(f, severity::ok, "publishes key_id bulk-1 with the key of its file")) << dump(f);
    EXPECT_FALSE(has(f, severity::error, "")) << dump(f);
    // A stale copy: the kid is there with another key.
    f = published(response(200, other.public_jwks("bulk-1")), current);
    EXPECT_TRUE(has(f, severity::error, "lists key_id bulk-1 with another public key")) << dump(f);
    // The kid is missing: only another key is published.
    f = published(response(200, other.public_jwks("bulk-0")), current);
    EXPECT_TRUE(has(f, severity::error, "does not list key_id bulk-1")) << dump(f);
    // The proxy answers 404, or a login page with 200, or another JSON.
    f = published(response(404, "<html>Not Found</html>"), current);
    EXPECT_TRUE(has(f, severity::error, "answered HTTP 404")) << dump(f);
    f = published(response(200, "<html><form>Sign in SECRET-PAGE-TEXT</form></html>"), current);
    EXPECT_TRUE(has(f, severity::error, "is not a JWK Set")) << dump(f);
    for (const auto& x : f) EXPECT_THAT(x.what + x.why + x.fix, Not(HasSubstr("SECRET-PAGE-TEXT")));
    f = published(response(200, R"({"keys":"none"})"), current);
    EXPECT_TRUE(has(f, severity::error, "is not a JWK Set")) << dump(f);
}

TEST(DoctorBulk, APrivateMemberInThePublishedJwksIsAnError) {
    const auto mine = signing_key::generate(jws_alg::es384);
    const std::vector<dr::expected_jwk> current{{"bulk-1", mine.public_jwk("bulk-1"), "key_id"}};
    for (const char* member : {"d", "p", "q", "dp", "dq", "qi"}) {
        SCOPED_TRACE(member);
        std::string jwk = mine.public_jwk("bulk-1");
        jwk.insert(jwk.rfind('}'), std::string(R"(,")") + member + R"(":"AAAA")");
        const auto f = published(response(200, set_of({jwk})), current);
        EXPECT_TRUE(has(f, severity::error, "publishes a private key member")) << dump(f);
        EXPECT_FALSE(has(f, severity::ok, "publishes key_id")) << dump(f);
    }
}

TEST(DoctorBulk, DuringARotationTheNextKeyMustBePublishedToo) {
    const auto mine = signing_key::generate(jws_alg::rs384, 2048);
    const auto next = signing_key::generate(jws_alg::rs384, 2048);
    const std::vector<dr::expected_jwk> both{{"k1", mine.public_jwk("k1"), "key_id"},
                                             {"k2", next.public_jwk("k2"), "next_key_id"}};
    // Only the current key published: the next one is a warning.
    auto f = published(response(200, mine.public_jwks("k1")), both);
    EXPECT_TRUE(has(f, severity::ok, "publishes key_id k1")) << dump(f);
    EXPECT_TRUE(has(f, severity::warning, "does not list next_key_id k2")) << dump(f);
    EXPECT_FALSE(has(f, severity::error, "")) << dump(f);
    // Both: two passes, whatever their order.
    f = published(response(200, set_of({next.public_jwk("k2"), mine.public_jwk("k1")})), both);
    EXPECT_TRUE(has(f, severity::ok, "publishes key_id k1")) << dump(f);
    EXPECT_TRUE(has(f, severity::ok, "publishes next_key_id k2")) << dump(f);
    // The next kid with the current key's material: an error.
    f = published(response(200, set_of({mine.public_jwk("k1"), mine.public_jwk("k2")})), both);
    EXPECT_TRUE(has(f, severity::error, "lists next_key_id k2 with another public key")) << dump(f);
}

TEST(DoctorDriver, BulkJwksUrlIsFetchedWithoutATokenAndComparedWithTheKeyFile) {
    // Setup: discovery lists RS384, the token request succeeds, and the
    // JWKS URL publishes a key other than the key file's.
    temp_dir dir;
    const auto key = write_bulk_key(dir);
    const auto stale = signing_key::generate(jws_alg::rs384, 2048);
    scripted t;
    serve_rs384_tenant(t, capability_with_exports);
    t.by_path["https://ehr.example.org/token"] = response(
        200,
        R"({"access_token":"x.y.z","token_type":"Bearer","expires_in":300,"scope":"system/Patient.read system/Condition.read system/Group.read"})");
    t.by_path[jwks_url] = response(200, stale.public_jwks("kid-1"));
    auto in = bulk_check(dir, dir / "bulk.pem");
    in.ehr.bulk->jwks_url = jwks_url;
    auto clk = at_date();
    // Run
    const auto rep = run([&] { return dr::check_registration(t, in, clk); });
    // Check: fetched, with no Authorization, and found stale.
    const auto at = std::find(t.sent.begin(), t.sent.end(), jwks_url);
    ASSERT_NE(at, t.sent.end());
    EXPECT_FALSE(t.with_authorization[static_cast<std::size_t>(at - t.sent.begin())]);
    EXPECT_TRUE(has(rep.findings, severity::error, "lists key_id kid-1 with another public key"))
        << dump(rep.findings);
    EXPECT_FALSE(rep.passed());
    // The key file's own set passes that check.
    t.by_path[jwks_url] = response(200, key.public_jwks("kid-1"));
    const auto again = run([&] { return dr::check_registration(t, in, clk); });
    EXPECT_TRUE(has(again.findings, severity::ok, "publishes key_id kid-1 with the key of its file"))
        << dump(again.findings);
    // Without jwks_url nothing is fetched from it.
    in.ehr.bulk->jwks_url.reset();
    t.sent.clear();
    run([&] { return dr::check_registration(t, in, clk); });
    EXPECT_EQ(std::find(t.sent.begin(), t.sent.end(), jwks_url), t.sent.end());
}
