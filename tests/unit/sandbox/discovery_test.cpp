// SMART discovery and the CapabilityStatement, in normal and eCW mode, and
// the TLS the sandbox sets up for itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::running_sandbox;

namespace {

std::vector<std::string> strings(const boost::json::value& v) {
    std::vector<std::string> out;
    for (const auto& s : v.as_array()) out.emplace_back(s.as_string());
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

sbx::options ecw() {
    sbx::options o;
    o.ecw_mode = true;
    return o;
}

}  // namespace

TEST(SandboxDiscovery, SmartConfigurationListsEndpointsAndS256Only) {
    // Setup
    running_sandbox s;
    auto c = s.make_client();
    // Run
    const auto r = c->get("/fhir/.well-known/smart-configuration");
    // Check
    ASSERT_EQ(r.status, 200) << r.error;
    const auto j = r.json();
    EXPECT_EQ(j.at("authorization_endpoint").as_string(), s.srv().base_url() + "/authorize");
    EXPECT_EQ(j.at("token_endpoint").as_string(), s.srv().base_url() + "/token");
    EXPECT_EQ(strings(j.at("code_challenge_methods_supported")), std::vector<std::string>{"S256"});
    EXPECT_EQ(strings(j.at("response_types_supported")), std::vector<std::string>{"code"});
    const auto auth = strings(j.at("token_endpoint_auth_methods_supported"));
    EXPECT_TRUE(contains(auth, "client_secret_basic"));
    EXPECT_TRUE(contains(auth, "client_secret_post"));
    const auto caps = strings(j.at("capabilities"));
    for (const char* cap : {"launch-standalone", "client-confidential-symmetric", "permission-offline",
                            "permission-patient", "context-standalone-patient"})
        EXPECT_TRUE(contains(caps, cap)) << cap;
    const auto scopes = strings(j.at("scopes_supported"));
    EXPECT_TRUE(contains(scopes, "patient/Appointment.read"));
    EXPECT_TRUE(contains(scopes, "offline_access"));
    EXPECT_TRUE(s.srv().base_url().rfind("https://127.0.0.1:", 0) == 0);
    EXPECT_EQ(s.srv().fhir_base(), s.srv().base_url() + "/fhir");
}

TEST(SandboxDiscovery, EcwModeListsNoAppointmentScope) {
    running_sandbox s(ecw());
    auto c = s.make_client();
    const auto r = c->get("/fhir/.well-known/smart-configuration");
    ASSERT_EQ(r.status, 200) << r.error;
    const auto scopes = strings(r.json().at("scopes_supported"));
    EXPECT_FALSE(contains(scopes, "patient/Appointment.read"));
    EXPECT_FALSE(contains(scopes, "patient/*.read"));
    EXPECT_TRUE(contains(scopes, "patient/Observation.read"));
    EXPECT_EQ(strings(r.json().at("code_challenge_methods_supported")), std::vector<std::string>{"S256"});
}

TEST(SandboxDiscovery, MetadataDeclaresOauthUrisAndLastUpdatedForEveryType) {
    running_sandbox s;
    auto c = s.make_client();
    const auto r = c->get("/fhir/metadata");
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("content-type").rfind("application/fhir+json", 0), 0u);
    const auto j = r.json();
    EXPECT_EQ(j.at("resourceType").as_string(), "CapabilityStatement");
    EXPECT_EQ(j.at("fhirVersion").as_string(), "4.0.1");
    const auto& rest = j.at("rest").as_array().at(0);
    const auto& ext = rest.at("security").at("extension").as_array().at(0);
    EXPECT_EQ(ext.at("url").as_string(),
              "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris");
    std::map<std::string, std::string> uris;
    for (const auto& e : ext.at("extension").as_array())
        uris[std::string(e.at("url").as_string())] = std::string(e.at("valueUri").as_string());
    EXPECT_EQ(uris["authorize"], s.srv().base_url() + "/authorize");
    EXPECT_EQ(uris["token"], s.srv().base_url() + "/token");
    std::vector<std::string> types;
    for (const auto& res : rest.at("resource").as_array()) {
        types.emplace_back(res.at("type").as_string());
        std::vector<std::string> params;
        for (const auto& p : res.at("searchParam").as_array()) params.emplace_back(p.at("name").as_string());
        EXPECT_TRUE(contains(params, "_lastUpdated")) << types.back();
    }
    EXPECT_EQ(types.size(), 8u);
    EXPECT_TRUE(contains(types, "Appointment"));
    // served for materialized views over a type HeadacheMD does not normalize (issue 16)
    EXPECT_TRUE(contains(types, "AllergyIntolerance"));
}

TEST(SandboxDiscovery, EcwMetadataHasNoLastUpdatedAndNoAppointment) {
    running_sandbox s(ecw());
    auto c = s.make_client();
    const auto r = c->get("/fhir/metadata");
    ASSERT_EQ(r.status, 200) << r.error;
    const auto j = r.json();
    const auto& rest = j.at("rest").as_array().at(0);
    std::vector<std::string> types;
    for (const auto& res : rest.at("resource").as_array()) {
        types.emplace_back(res.at("type").as_string());
        for (const auto& p : res.at("searchParam").as_array())
            EXPECT_NE(p.at("name").as_string(), "_lastUpdated") << types.back();
    }
    EXPECT_EQ(types.size(), 7u);  // with AllergyIntolerance (issue 16)
    EXPECT_FALSE(contains(types, "Appointment"));
}

TEST(SandboxDiscovery, TlsIsVerifiedAgainstTheSandboxCaOnly) {
    // Setup: two sandboxes, each with its own throwaway CA.
    running_sandbox a;
    running_sandbox b;
    ASSERT_NE(a.srv().ca_certificate_pem(), b.srv().ca_certificate_pem());
    EXPECT_NE(a.srv().ca_certificate_pem().find("BEGIN CERTIFICATE"), std::string::npos);
    // Run: trust b's CA while talking to a.
    sbx::test::client wrong(a.srv().port(), b.srv().ca_certificate_pem());
    const auto r = wrong.get("/fhir/metadata");
    // Check
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error.find("handshake"), std::string::npos) << r.error;
    EXPECT_EQ(a.make_client()->get("/fhir/metadata").status, 200);
}

TEST(SandboxDiscovery, PlainHttpModeServesTheSameApi) {
    sbx::options o;
    o.tls = false;
    running_sandbox s(o);
    EXPECT_TRUE(s.srv().base_url().rfind("http://127.0.0.1:", 0) == 0);
    EXPECT_TRUE(s.srv().ca_certificate_pem().empty());
    auto c = s.make_client();
    const auto r = c->get("/fhir/.well-known/smart-configuration");
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.json().at("token_endpoint").as_string(), s.srv().base_url() + "/token");
}

TEST(SandboxDiscovery, WritesTheCaPemForTheClientsCaFile) {
    running_sandbox s;
    const auto path =
        std::filesystem::temp_directory_path() / ("sbx-ca-" + std::to_string(s.srv().port()) + ".pem");
    s.srv().write_ca_pem(path);
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(path);
    EXPECT_EQ(text, s.srv().ca_certificate_pem());
    EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos);
}
