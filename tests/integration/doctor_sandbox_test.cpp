// `headachemd-sync doctor` (the real binary) against the sandbox EHR in
// eClinicalWorks mode over loopback TLS: the issue-4 acceptance points.
// The sandbox's throwaway CA is trusted through the config's ca_file.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "headachemd/http/url.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "run_command.hpp"
#include "test_support.hpp"

namespace {

using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

// gmock is not linked into the integration tests: two small matchers.
::testing::AssertionResult has_text(const std::string& text, const std::string& part) {
    if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "missing \"" << part << "\" in:\n" << text;
}
::testing::AssertionResult lacks_text(const std::string& text, const std::string& part) {
    if (text.find(part) == std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "unexpected \"" << part << "\" in:\n" << text;
}

// The scopes of the request that eClinicalWorks refused (issue 4).
const std::string issue_scope =
    "launch/patient openid profile offline_access patient/Patient.read patient/Appointment.read "
    "patient/MedicationRequest.read";
const std::string redirect = "http://127.0.0.1/callback";  // the sandbox's registered one

struct doctor_fixture : ::testing::Test {
    temp_dir dir;
    std::unique_ptr<headachemd::sandbox::background_server> ehr;

    // `backend_jwks`: the backend app's registration (issue 15), else none.
    void start(bool ecw = true, std::chrono::seconds skew = std::chrono::seconds(0),
               const std::string& backend_jwks = {}) {
        headachemd::sandbox::options o;
        o.ecw_mode = ecw;
        if (!backend_jwks.empty()) {
            o.backend_client_id = "hmd-backend";
            o.backend_jwks = backend_jwks;
        }
        o.patients = 2;
        o.now = [skew] { return std::chrono::system_clock::now() + skew; };
        ehr = std::make_unique<headachemd::sandbox::background_server>(std::move(o));
        (*ehr)->write_ca_pem(dir / "ca.pem");
        write_file(dir / "client.secret", (*ehr)->config().client_secret);
        ::chmod((dir / "client.secret").c_str(), 0600);
    }

    // A config for the sandbox; `extra` goes into the [[ehr]] block (and may
    // end with its [ehr.bulk] table); `profile` is the preset.
    std::string config(const std::string& extra = {}, const std::string& profile = "eclinicalworks") {
        const auto path = dir / "sync.toml";
        write_file(path, "[daemon]\ndatabase = \"" + (dir / "h.db").string() + "\"\nvault = \"" +
                             (dir / "v.db").string() + "\"\n\n[[ehr]]\nname = \"sandbox\"\nprofile = \"" +
                             profile + "\"\nfhir_base = \"" + (*ehr)->fhir_base() + "\"\nclient_id = \"" +
                             (*ehr)->config().client_id + "\"\nclient_secret_file = \"" +
                             (dir / "client.secret").string() + "\"\nca_file = \"" +
                             (dir / "ca.pem").string() + "\"\n" + extra);
        return path.string();
    }

    headachemd::test::command_result doctor(std::vector<std::string> args) {
        args.insert(args.begin(), "doctor");
        return run_binary(args, dir.path());
    }

    std::string authorize_url(const std::vector<std::pair<std::string, std::string>>& params) {
        return headachemd::http::url_with_query((*ehr)->base_url() + "/authorize", params);
    }

    // The request from the issue: no code_challenge, a nonce, Appointment.
    std::string issue_url() {
        return authorize_url({{"response_type", "code"},
                              {"client_id", (*ehr)->config().client_id},
                              {"redirect_uri", redirect},
                              {"scope", issue_scope},
                              {"state", "Gx9wq2Lr0vTz8KbN3mPe5YhA7cUd1SfJ4iWo6RkE"},
                              {"aud", (*ehr)->fhir_base()},
                              {"nonce", "n-0S6_WzA2Mj"}});
    }

    std::string good_url() {
        return authorize_url({{"response_type", "code"},
                              {"client_id", (*ehr)->config().client_id},
                              {"redirect_uri", redirect},
                              {"scope",
                               "launch/patient openid fhirUser offline_access patient/Patient.read "
                               "patient/MedicationRequest.read"},
                              {"state", "Gx9wq2Lr0vTz8KbN3mPe5YhA7cUd1SfJ4iWo6RkE"},
                              {"aud", (*ehr)->fhir_base()},
                              // RFC 7636 appendix B.
                              {"code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
                              {"code_challenge_method", "S256"}});
    }
};

TEST_F(doctor_fixture, IssueAuthorizeUrlWithProbeReportsPkceAppointmentAndThe403) {
    // Setup
    start();
    const auto cfg = config();
    // Run
    const auto r = doctor({"--config", cfg, "--authorize-url", issue_url(), "--probe"});
    // Check
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "no PKCE: the request has no code_challenge"));
    EXPECT_TRUE(has_text(r.out, "scope patient/Appointment.read is not offered by the server"));
    EXPECT_TRUE(has_text(r.out, "healow Scheduling API"));
    EXPECT_TRUE(has_text(r.out, "nonce is an OpenID Connect parameter"));
    EXPECT_TRUE(has_text(
        r.out,
        R"(rejected at /authorize: HTTP 403 without a redirect: {"error":"403","error_description":"invalid_request"})"));
    EXPECT_TRUE(has_text(r.out, "Likely causes"));
    EXPECT_TRUE(has_text(r.out, "not activated for this practice"));
    // The probe went out exactly once.
    EXPECT_EQ((*ehr)->stats().authorize_calls, 1u);
    // No secret in the output; no color codes when not on a terminal.
    EXPECT_TRUE(lacks_text(r.out + r.err, (*ehr)->config().client_secret));
    EXPECT_TRUE(lacks_text(r.out, "\x1b["));
}

TEST_F(doctor_fixture, IssueAuthorizeUrlWithoutProbeSendsNothingToAuthorize) {
    start();
    const auto r = doctor({"--config", config(), "--authorize-url", issue_url()});
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "no PKCE"));
    EXPECT_TRUE(lacks_text(r.out, "authorize probe"));
    EXPECT_EQ((*ehr)->stats().authorize_calls, 0u);
}

TEST_F(doctor_fixture, ConfigWithTheIssueScopesReportsAppointment) {
    start();
    const auto cfg = config("scopes = \"" + issue_scope + "\"\n");
    const auto r = doctor({"sandbox", "--config", cfg, "--redirect-uri", redirect});
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "scope patient/Appointment.read is not offered by the server"));
    // The probe sends PKCE (as enrollment will), and the sandbox still says 403.
    EXPECT_TRUE(lacks_text(r.out, "no PKCE"));
    EXPECT_TRUE(has_text(r.out, "rejected at /authorize: HTTP 403"));
}

TEST_F(doctor_fixture, CorrectConfigAndCorrectUrlBothExitZero) {
    start();
    const auto cfg = config();  // the eclinicalworks preset's scopes and resources
    const auto r = doctor({"sandbox", "--config", cfg, "--redirect-uri", redirect});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "0 error(s)"));
    EXPECT_TRUE(has_text(r.out, "accepted: redirected straight back with an authorization code"));
    EXPECT_TRUE(has_text(r.out, "clock agrees"));

    const auto u = doctor({"--config", cfg, "--authorize-url", good_url(), "--probe"});
    EXPECT_EQ(u.exit_code, 0) << u.out << u.err;
    EXPECT_TRUE(has_text(u.out, "accepted"));
    EXPECT_TRUE(lacks_text(u.out + r.out, (*ehr)->config().client_secret));
}

TEST_F(doctor_fixture, AnOpenSecretFileAndASkewedServerClockAreReported) {
    start(true, std::chrono::seconds(-600));  // the server's clock is 10 minutes behind
    const auto cfg = config();
    ::chmod((dir / "client.secret").c_str(), 0644);
    const auto r = doctor({"--config", cfg, "--redirect-uri", redirect});
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "is accessible to other users (mode 0644)"));
    EXPECT_TRUE(has_text(r.out, "s ahead of the server's"));
}

TEST_F(doctor_fixture, GenericSandboxNamesTheParameterInItsRedirect) {
    // Outside eCW mode the sandbox redirects back with error=invalid_scope.
    start(false);
    const auto cfg = config();
    const auto url = authorize_url({{"response_type", "code"},
                                    {"client_id", (*ehr)->config().client_id},
                                    {"redirect_uri", redirect},
                                    {"scope", "launch/patient offline_access patient/Nothing.read"},
                                    {"state", "Gx9wq2Lr0vTz8KbN3mPe5YhA7cUd1SfJ4iWo6RkE"},
                                    {"aud", (*ehr)->fhir_base()},
                                    {"code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
                                    {"code_challenge_method", "S256"}});
    const auto r = doctor({"--config", cfg, "--authorize-url", url, "--probe"});
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "refused: redirected back with error=invalid_scope"));
}

TEST_F(doctor_fixture, UnknownEhrIsAUsageErrorAndABadUrlIsReported) {
    start();
    const auto cfg = config();
    const auto r = doctor({"nope", "--config", cfg, "--redirect-uri", redirect});
    EXPECT_EQ(r.exit_code, 64) << r.out << r.err;
    EXPECT_TRUE(has_text(r.err, "no [[ehr]] named \"nope\""));
    const auto u = doctor({"--config", cfg, "--authorize-url", "not a url"});
    EXPECT_EQ(u.exit_code, 78) << u.out << u.err;
    EXPECT_TRUE(has_text(u.out, "not an absolute URL"));
    EXPECT_EQ((*ehr)->stats().requests, 0u);  // nothing was sent for either
}

TEST_F(doctor_fixture, UnreachableServerExits69) {
    start();
    const auto cfg = config();
    ehr.reset();  // the server is gone; its port refuses connections
    const auto r = doctor({"--config", cfg, "--redirect-uri", redirect});
    EXPECT_EQ(r.exit_code, 69) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "could not be reached"));
}

// ---- [ehr.bulk]: the backend registration (issue 15) ----------------------

namespace smart = headachemd::smart;

// The sandbox's backend app knows `registered` under kid "bulk-1"; doctor
// signs with `used` under `kid`.
struct bulk_doctor : doctor_fixture {
    std::string bulk_config(const smart::signing_key& used, const std::string& kid,
                            const std::string& profile = "eclinicalworks", const std::string& extra = {}) {
        write_file(dir / "bulk.pem", used.private_pem());
        ::chmod((dir / "bulk.pem").c_str(), 0600);
        const std::string alg(smart::to_string(used.alg()));
        return config("\n[ehr.bulk]\nclient_id = \"hmd-backend\"\nprivate_key_file = \"" +
                          (dir / "bulk.pem").string() + "\"\nkey_id = \"" + kid + "\"\nalgorithm = \"" + alg +
                          "\"\n" + extra,
                      profile);
    }
    headachemd::test::command_result run(const std::string& cfg) {
        return doctor({"sandbox", "--config", cfg, "--redirect-uri", redirect});
    }
};

const std::string group = "group_id = \"headachemd-clinic\"\n";  // the sandbox's Group

TEST_F(bulk_doctor, EcwGoodRegistrationPassesAllThree) {
    const auto key = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    start(true, std::chrono::seconds(0), key.public_jwks("bulk-1"));
    const auto r = run(bulk_config(key, "bulk-1", "eclinicalworks", group));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "bulk export (SMART Backend Services)"));
    EXPECT_TRUE(has_text(r.out, "the server accepts RS384 client assertions"));
    EXPECT_TRUE(has_text(r.out, "the CapabilityStatement offers Group/headachemd-clinic/$export"));
    EXPECT_TRUE(has_text(r.out, "the backend token request with key_id bulk-1 succeeded"));
    // eCW's system/Group.read was asked for and granted.
    EXPECT_TRUE(has_text(r.out, "the token grants every scope asked for"));
    EXPECT_TRUE(has_text(r.out, "system/Group.read"));
    EXPECT_EQ((*ehr)->stats().backend_tokens_issued, 1u);
    EXPECT_TRUE(lacks_text(r.out + r.err, "access_token"));
    EXPECT_TRUE(lacks_text(r.out + r.err, "PRIVATE KEY"));
}

TEST_F(bulk_doctor, GenericGoodRegistrationPassesAllThree) {
    for (const auto alg : {smart::jws_alg::rs384, smart::jws_alg::es384}) {
        const auto key = smart::signing_key::generate(alg, 2048);
        start(false, std::chrono::seconds(0), key.public_jwks("bulk-1"));
        const auto r = run(bulk_config(key, "bulk-1", "generic", group));
        const std::string name(smart::to_string(alg));
        EXPECT_TRUE(has_text(r.out, "the server accepts " + name + " client assertions"));
        EXPECT_TRUE(has_text(r.out, "the CapabilityStatement offers Group/headachemd-clinic/$export"));
        EXPECT_TRUE(has_text(r.out, "the backend token request with key_id bulk-1 succeeded"));
        EXPECT_TRUE(has_text(r.out, "the token grants every scope asked for"));
        EXPECT_EQ((*ehr)->stats().backend_tokens_issued, 1u);
        // Nothing failed in the bulk section (it is printed last).
        const auto section = r.out.find("bulk export (SMART Backend Services)");
        ASSERT_NE(section, std::string::npos) << r.out;
        EXPECT_TRUE(lacks_text(r.out.substr(section), "ERROR")) << r.out;
        EXPECT_TRUE(lacks_text(r.out.substr(section), "WARNING")) << r.out;
    }
}

TEST_F(bulk_doctor, AWrongKidOrAnUnregisteredKeyFailsTheTokenWithTheExplanation) {
    const auto key = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    start(true, std::chrono::seconds(0), key.public_jwks("bulk-1"));
    const auto wrong_kid = run(bulk_config(key, "bulk-2", "eclinicalworks", group));
    EXPECT_EQ(wrong_kid.exit_code, 78) << wrong_kid.out << wrong_kid.err;
    EXPECT_TRUE(has_text(wrong_kid.out, "the backend token request was refused"));
    EXPECT_TRUE(has_text(wrong_kid.out, "invalid_client"));
    EXPECT_TRUE(has_text(wrong_kid.out, "the EHR does not know this key/kid"));
    EXPECT_TRUE(has_text(wrong_kid.out, "key_id = \"bulk-2\""));
    // Checks 1 and 2 still pass: the registration's problem is the key.
    EXPECT_TRUE(has_text(wrong_kid.out, "the server accepts RS384 client assertions"));
    EXPECT_TRUE(has_text(wrong_kid.out, "offers Group/headachemd-clinic/$export"));

    const auto other = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    const auto unregistered = run(bulk_config(other, "bulk-1", "eclinicalworks", group));
    EXPECT_EQ(unregistered.exit_code, 78) << unregistered.out << unregistered.err;
    EXPECT_TRUE(has_text(unregistered.out, "the EHR does not know this key/kid"));
    EXPECT_EQ((*ehr)->stats().backend_tokens_issued, 0u);
}

TEST_F(bulk_doctor, Es384AgainstEcwFailsTheAlgorithmCheck) {
    // The eclinicalworks profile refuses ES384 in the config itself, so the
    // registration is described with the generic profile, as a clinic that
    // does not know its EHR is eCW would.
    const auto key = smart::signing_key::generate(smart::jws_alg::es384);
    start(true, std::chrono::seconds(0), key.public_jwks("bulk-1"));
    const auto r = run(bulk_config(key, "bulk-1", "generic", group));
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "the server does not accept ES384 client assertions (it lists: RS384)"));
    EXPECT_TRUE(has_text(r.out, "keygen --jwks --alg RS384"));
    EXPECT_EQ((*ehr)->stats().backend_tokens_issued, 0u);
}

TEST_F(bulk_doctor, AnExportLevelTheServerDoesNotOfferFailsTheCapabilityCheck) {
    // eCW mode exports Groups only: its CapabilityStatement has no
    // Patient/$export (a CapabilityStatement with no export at all is in
    // the unit tests).
    const auto key = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    start(true, std::chrono::seconds(0), key.public_jwks("bulk-1"));
    const auto r = run(bulk_config(key, "bulk-1", "generic", "level = \"patient\"\n"));
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has_text(r.out, "the CapabilityStatement does not offer Patient/$export"));
    EXPECT_TRUE(has_text(r.out, "fix: Ask the EHR vendor to enable Bulk Data export"));
    EXPECT_TRUE(has_text(r.out, "The server does offer level = \"group\""));
}

}  // namespace
