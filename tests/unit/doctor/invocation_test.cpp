// What `doctor` runs, from plain values: the [[ehr]] an authorize URL
// belongs to, the drivers' inputs, the client options, and the outcome of
// several reports together. No io_context, no sockets.
#include <gtest/gtest.h>

#include "headachemd/doctor/invocation.hpp"
#include "test_support.hpp"

namespace {

namespace dr = headachemd::doctor;
namespace cfg = headachemd::config;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

cfg::ehr_settings ehr(std::string name, std::string fhir_base, std::string profile = "generic") {
    cfg::ehr_settings e;
    e.name = std::move(name);
    e.fhir_base = std::move(fhir_base);
    e.profile = std::move(profile);
    e.client_id = "client-" + e.name;
    return e;
}

// Two EHRs: "ecw" at .../fhir/r4 and "epic" at .../api/FHIR/R4.
cfg::config two_ehrs() {
    cfg::config c;
    c.ehrs.push_back(ehr("ecw", "https://fhir.ecw.example.org/fhir/r4", "eclinicalworks"));
    c.ehrs.push_back(ehr("epic", "https://epic.example.org/api/FHIR/R4", "epic"));
    return c;
}

std::string authorize_url(std::string_view aud_encoded) {
    return "https://auth.example.org/authorize?response_type=code&client_id=x&aud=" +
           std::string(aud_encoded) + "&state=s";
}

TEST(EhrForAuthorizeUrl, TheUrlsAudNamesTheEhr) {
    const auto c = two_ehrs();
    const auto* e =
        dr::ehr_for_authorize_url(c, authorize_url("https%3A%2F%2Fepic.example.org%2Fapi%2FFHIR%2FR4"), "");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->name, "epic");
}

TEST(EhrForAuthorizeUrl, TrailingSlashesOfTheAudAreIgnored) {
    const auto c = two_ehrs();
    for (const char* aud : {"https%3A%2F%2Ffhir.ecw.example.org%2Ffhir%2Fr4%2F",
                            "https%3A%2F%2Ffhir.ecw.example.org%2Ffhir%2Fr4%2F%2F%2F"}) {
        const auto* e = dr::ehr_for_authorize_url(c, authorize_url(aud), "");
        ASSERT_NE(e, nullptr) << aud;
        EXPECT_EQ(e->name, "ecw") << aud;
    }
}

TEST(EhrForAuthorizeUrl, FhirBaseGivenWinsOverTheAud) {
    const auto c = two_ehrs();
    const auto url = authorize_url("https%3A%2F%2Ffhir.ecw.example.org%2Ffhir%2Fr4");
    const auto* e = dr::ehr_for_authorize_url(c, url, "https://epic.example.org/api/FHIR/R4");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->name, "epic");
    // Taken as given: its own trailing slash is not removed.
    EXPECT_EQ(dr::ehr_for_authorize_url(c, url, "https://epic.example.org/api/FHIR/R4/"), nullptr);
    EXPECT_EQ(dr::ehr_for_authorize_url(c, url, "https://other.example.org/fhir"), nullptr);
}

TEST(EhrForAuthorizeUrl, NoneWhenNothingMatches) {
    const auto c = two_ehrs();
    EXPECT_EQ(dr::ehr_for_authorize_url(c, authorize_url("https%3A%2F%2Fother.example.org%2Ffhir"), ""),
              nullptr);
    // No aud at all.
    EXPECT_EQ(dr::ehr_for_authorize_url(c, "https://auth.example.org/authorize?response_type=code", ""),
              nullptr);
    // A URL that does not parse matches nothing, even with --fhir-base.
    EXPECT_EQ(dr::ehr_for_authorize_url(c, "not a url", ""), nullptr);
    EXPECT_EQ(dr::ehr_for_authorize_url(c, "not a url", "https://epic.example.org/api/FHIR/R4"), nullptr);
    EXPECT_EQ(dr::ehr_for_authorize_url(cfg::config{}, authorize_url("https%3A%2F%2Fepic.example.org"), ""),
              nullptr);
}

TEST(EhrForAuthorizeUrl, TheLastOfTwoEhrsWithTheSameBaseIsTaken) {
    auto c = two_ehrs();
    c.ehrs.push_back(ehr("epic-2", "https://epic.example.org/api/FHIR/R4", "epic"));
    const auto* e =
        dr::ehr_for_authorize_url(c, authorize_url("https%3A%2F%2Fepic.example.org%2Fapi%2FFHIR%2FR4"), "");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->name, "epic-2");
}

TEST(MakeUrlCheck, WithoutAnEhrOnlyTheCommandLineIsUsed) {
    const auto in = dr::make_url_check("https://a.example.org/authorize?x=1", "", true, nullptr);
    EXPECT_EQ(in.authorize_url, "https://a.example.org/authorize?x=1");
    EXPECT_EQ(in.fhir_base, std::nullopt);
    EXPECT_EQ(in.client_id, std::nullopt);
    EXPECT_FALSE(in.kind.eclinicalworks);
    EXPECT_TRUE(in.probe);
    const auto given = dr::make_url_check("u", "https://b.example.org/fhir", false, nullptr);
    EXPECT_EQ(given.fhir_base, "https://b.example.org/fhir");
    EXPECT_FALSE(given.probe);
}

TEST(MakeUrlCheck, AnEhrFillsItsBaseClientIdAndKind) {
    const auto c = two_ehrs();
    const auto ecw = dr::make_url_check("u", "", false, &c.ehrs[0]);
    EXPECT_EQ(ecw.fhir_base, "https://fhir.ecw.example.org/fhir/r4");
    EXPECT_EQ(ecw.client_id, "client-ecw");
    EXPECT_TRUE(ecw.kind.eclinicalworks);
    const auto epic = dr::make_url_check("u", "", false, &c.ehrs[1]);
    EXPECT_EQ(epic.client_id, "client-epic");
    EXPECT_FALSE(epic.kind.eclinicalworks);
    // --fhir-base stays what was given.
    const auto given = dr::make_url_check("u", "https://b.example.org/fhir", false, &c.ehrs[0]);
    EXPECT_EQ(given.fhir_base, "https://b.example.org/fhir");
    EXPECT_EQ(given.client_id, "client-ecw");
}

TEST(KindOf, OnlyTheEclinicalworksProfileIsEclinicalworks) {
    EXPECT_TRUE(dr::kind_of(ehr("a", "https://a", "eclinicalworks")).eclinicalworks);
    EXPECT_FALSE(dr::kind_of(ehr("a", "https://a", "epic")).eclinicalworks);
    EXPECT_FALSE(dr::kind_of(ehr("a", "https://a", "generic")).eclinicalworks);
}

TEST(MakeConfigCheck, TheRedirectUriGivenWinsOverTheEhrs) {
    const auto c = two_ehrs();
    auto e = c.ehrs[0];
    const auto none = dr::make_config_check(c, e, "", true);
    EXPECT_EQ(none.cfg, &c);
    EXPECT_EQ(none.ehr, e);
    EXPECT_EQ(none.redirect_uri, std::nullopt);
    EXPECT_TRUE(none.probe);
    e.redirect_uri = "https://app.example.org/callback";
    EXPECT_EQ(dr::make_config_check(c, e, "", false).redirect_uri, "https://app.example.org/callback");
    EXPECT_FALSE(dr::make_config_check(c, e, "", false).probe);
    EXPECT_EQ(dr::make_config_check(c, e, "http://127.0.0.1:8765/cb", true).redirect_uri,
              "http://127.0.0.1:8765/cb");
}

TEST(ClientOptions, WithoutAConfigOnlyTheBodyLimitIsRaised) {
    const auto o = dr::client_options(nullptr, nullptr);
    EXPECT_EQ(o.max_body_bytes, std::size_t{16} << 20);
    EXPECT_TRUE(o.extra_ca_files.empty());
    EXPECT_EQ(o.request_timeout, headachemd::http::client_options{}.request_timeout);
}

TEST(ClientOptions, OnlyReadableCaFilesAreTrustedAndTheEhrsTimeoutApplies) {
    temp_dir dir;
    write_file(dir / "ca.pem", "-----BEGIN CERTIFICATE-----\n");
    auto c = two_ehrs();
    c.ehrs[0].ca_file = dir / "ca.pem";
    c.ehrs[1].ca_file = dir / "missing.pem";  // reported as a finding, not trusted
    c.ehrs[1].http_timeout = std::chrono::seconds(7);
    const auto o = dr::client_options(&c, &c.ehrs[1]);
    EXPECT_EQ(o.extra_ca_files, std::vector<std::filesystem::path>{dir / "ca.pem"});
    EXPECT_EQ(o.request_timeout, std::chrono::milliseconds(7000));
    EXPECT_EQ(o.max_body_bytes, std::size_t{16} << 20);
}

dr::report with(std::initializer_list<dr::severity> levels, bool unreachable = false) {
    dr::report r;
    for (auto s : levels) r.findings.push_back({s, dr::topic::discovery, "x", {}, {}});
    r.unreachable = unreachable;
    return r;
}

TEST(Outcome, ErrorsMakeAProblemAndWarningsDoNot) {
    using dr::severity;
    EXPECT_EQ(dr::outcome_of(with({})), dr::outcome::ok);
    EXPECT_EQ(dr::outcome_of(with({severity::ok, severity::info, severity::warning})), dr::outcome::ok);
    EXPECT_EQ(dr::outcome_of(with({severity::ok, severity::error})), dr::outcome::problem);
    EXPECT_EQ(dr::outcome_of(with({}, true)), dr::outcome::unreachable);
    EXPECT_EQ(dr::outcome_of(with({severity::error}, true)), dr::outcome::unreachable);
}

TEST(Outcome, TheWorstWinsUnreachableOverAProblemOverOk) {
    using enum dr::outcome;
    const dr::outcome all[] = {ok, problem, unreachable};
    const dr::outcome expected[3][3] = {
        {ok, problem, unreachable},
        {problem, problem, unreachable},
        {unreachable, unreachable, unreachable},
    };
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) EXPECT_EQ(dr::worst(all[a], all[b]), expected[a][b]) << a << " " << b;
    // In the order several [[ehr]] are checked: a later ok does not undo a problem.
    auto run = ok;
    for (auto o : {problem, ok, unreachable, problem, ok}) run = dr::worst(run, o);
    EXPECT_EQ(run, unreachable);
}

}  // namespace
