// What check-config prints once the config has parsed, byte for byte: the
// EHR lines and notes on success, the errors and their count on failure,
// and every echoed value line-escaped.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/sync/config_check_report.hpp"
#include "headachemd/sync/views_setup.hpp"
#include "test_support.hpp"

namespace {

namespace cf = headachemd::config;
namespace sy = headachemd::sync;
using namespace std::chrono_literals;

cf::config two_ehrs() {
    cf::config cfg;
    cf::ehr_settings ecw;
    ecw.name = "ecw";
    ecw.profile = "eclinicalworks";
    ecw.fhir_base = "https://fhir.example.org/r4";
    ecw.interval = 6h;
    ecw.requests_per_minute = 600;
    cf::ehr_settings epic;
    epic.name = "epic-main";
    epic.profile = "epic";
    epic.fhir_base = "https://epic.example.org/api/FHIR/R4";
    epic.interval = 15min;
    epic.requests_per_minute = 120;
    cfg.ehrs = {ecw, epic};
    for (const char* ehr : {"ecw", "epic-main", "ecw"}) {
        cf::patient_settings p;
        p.key = "hmd";
        p.ehr = ehr;
        cfg.patients.push_back(p);
    }
    return cfg;
}

TEST(ConfigCheckReport, OkListsEachEhrThenTheNotes) {
    sy::secret_file_report secrets;
    secrets.notes = {"/etc/headachemd/ecw.key does not exist yet", "token.key comes from systemd"};
    const auto t = sy::render_config_check("/etc/headachemd/sync.toml", two_ehrs(), secrets);
    EXPECT_TRUE(t.ok);
    EXPECT_EQ(t.err, "");
    EXPECT_EQ(
        t.out,
        "/etc/headachemd/sync.toml: ok\n"
        "  ehr ecw              https://fhir.example.org/r4 profile=eclinicalworks patients=2 every 21600s, "
        "600 requests/min\n"
        "  ehr epic-main        https://epic.example.org/api/FHIR/R4 profile=epic patients=1 every 900s, "
        "120 requests/min\n"
        "  note: /etc/headachemd/ecw.key does not exist yet\n"
        "  note: token.key comes from systemd\n");
}

TEST(ConfigCheckReport, NoEhrAndNoNoteIsTheOkLineAlone) {
    const auto t = sy::render_config_check("sync.toml", {}, {});
    EXPECT_TRUE(t.ok);
    EXPECT_EQ(t.out, "sync.toml: ok\n");
    EXPECT_EQ(t.err, "");
}

TEST(ConfigCheckReport, ErrorsGoToStderrWithTheirCountAndNothingElse) {
    sy::secret_file_report secrets;
    secrets.notes = {"not shown when there are errors"};
    secrets.errors = {"/etc/headachemd/ecw.key: others can read it (mode 0644)", "token.key is empty"};
    const auto t = sy::render_config_check("/etc/headachemd/sync.toml", two_ehrs(), secrets);
    EXPECT_FALSE(t.ok);
    EXPECT_EQ(t.out, "");
    EXPECT_EQ(t.err,
              "error: /etc/headachemd/ecw.key: others can read it (mode 0644)\n"
              "error: token.key is empty\n"
              "2 error(s) in the files /etc/headachemd/sync.toml names\n");
}

TEST(ConfigCheckReport, AControlCharacterInAValueIsEscapedNotPrinted) {
    auto cfg = two_ehrs();
    cfg.ehrs.resize(1);
    cfg.ehrs[0].name = "e\x1b[2Jcw";
    cfg.ehrs[0].profile = "gen\neric";
    sy::secret_file_report secrets;
    secrets.notes = {"a\rb"};
    const auto ok = sy::render_config_check("odd\tname\x07.toml", cfg, secrets);
    EXPECT_EQ(
        ok.out,
        "odd\tname\\x07.toml: ok\n"
        "  ehr e\\x1b[2Jcw       https://fhir.example.org/r4 profile=gen\\neric patients=0 every 21600s, "
        "600 requests/min\n"
        "  note: a\\rb\n");
    secrets.errors = {"bad\nline"};
    const auto bad = sy::render_config_check("a\nb.toml", cfg, secrets);
    EXPECT_EQ(bad.err, "error: bad\\nline\n1 error(s) in the files a\\nb.toml names\n");
}

// [ehr.bulk] as check-config shows it: the export, the registration (the
// key's path and kid, never the key), and the job's bounds.
cf::bulk_settings ecw_bulk() {
    auto b = *cf::bulk_preset("eclinicalworks", {{"Patient", {}}, {"Condition", {}}});
    b.client_id = "backend-1";
    b.private_key_file = "/etc/headachemd/ecw-bulk-key.pem";
    b.key_id = "k-2026";
    b.group_id = "registry-7";
    return b;
}

TEST(ConfigCheckReport, TheBulkSectionIsShownUnderItsEhr) {
    auto cfg = two_ehrs();
    cfg.ehrs.resize(1);
    cfg.patients.clear();
    cfg.ehrs[0].bulk = ecw_bulk();
    cfg.daemon.metrics_listen = "127.0.0.1:9464";  // the JWKS is served: no warning
    const auto t = sy::render_config_check("sync.toml", cfg, {});
    EXPECT_EQ(
        t.out,
        "sync.toml: ok\n"
        "  ehr ecw              https://fhir.example.org/r4 profile=eclinicalworks patients=0 every 21600s, "
        "600 requests/min\n"
        "    bulk Group/registry-7/$export client=backend-1 key=/etc/headachemd/ecw-bulk-key.pem "
        "kid=k-2026 alg=RS384\n"
        "    bulk _type=Patient,Condition scope=\"system/Patient.read system/Condition.read "
        "system/Group.read\"\n"
        "    bulk every 86400s, _since overlap 300s, deadline 259200s, Retry-After at most 3600s, lines up "
        "to 8388608 bytes\n");
    cfg.ehrs[0].bulk->level = cf::bulk_level::system;
    cfg.ehrs[0].bulk->key_id = "k\n1";
    const auto sys = sy::render_config_check("sync.toml", cfg, {});
    EXPECT_NE(sys.out.find("    bulk $export client=backend-1"), std::string::npos) << sys.out;
    EXPECT_NE(sys.out.find("kid=k\\n1 "), std::string::npos) << sys.out;
    // During a rotation the next key is shown on its own line.
    cfg.ehrs[0].bulk->next_key = cf::next_bulk_key{"/etc/headachemd/ecw-bulk-key-2.pem", "k-2027"};
    const auto rotating = sy::render_config_check("sync.toml", cfg, {});
    EXPECT_NE(
        rotating.out.find("    bulk next key=/etc/headachemd/ecw-bulk-key-2.pem kid=k-2027 (published, not "
                          "signing yet)\n"),
        std::string::npos)
        << rotating.out;
}

// The JWKS is served only on the metrics listener: bulk keys without one
// are a warning (the config is still ok), and with one there is none.
TEST(ConfigCheckReport, BulkKeysWithoutTheMetricsListenerAreAWarning) {
    auto cfg = two_ehrs();
    cfg.ehrs[0].bulk = ecw_bulk();
    const auto without = sy::render_config_check("sync.toml", cfg, {});
    EXPECT_TRUE(without.ok);
    EXPECT_NE(without.out.find("  warning: [ehr.bulk] keys are configured but [daemon] metrics_listen is not "
                               "set"),
              std::string::npos)
        << without.out;
    cfg.daemon.metrics_listen = "127.0.0.1:9464";
    const auto with = sy::render_config_check("sync.toml", cfg, {});
    EXPECT_EQ(with.out.find("warning"), std::string::npos) << with.out;
    cfg.daemon.metrics_listen.reset();
    cfg.ehrs[0].bulk.reset();
    EXPECT_EQ(sy::render_config_check("sync.toml", cfg, {}).out.find("warning"), std::string::npos);
}

// A bulk key that is missing is a note; one of the wrong type for its
// `algorithm` is an error naming the EHR and the fix.
TEST(ConfigCheckReport, TheBulkKeyIsCheckedAgainstItsAlgorithm) {
    namespace fs = std::filesystem;
    headachemd::test::temp_dir dir;
    const auto write_key = [&](const char* name, headachemd::smart::jws_alg alg) {
        const auto path = dir / name;
        std::ofstream(path) << headachemd::smart::signing_key::generate(alg, 2048).private_pem();
        fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
        return path;
    };
    cf::config cfg = two_ehrs();
    cfg.ehrs.resize(1);
    cfg.ehrs[0].bulk = ecw_bulk();
    cfg.ehrs[0].bulk->private_key_file = dir / "absent.pem";
    auto report = sy::check_secret_files(cfg, "");
    EXPECT_TRUE(report.errors.empty());
    ASSERT_EQ(report.notes.size(), 1u);
    EXPECT_NE(report.notes[0].find("bulk private key file"), std::string::npos) << report.notes[0];

    cfg.ehrs[0].bulk->private_key_file = write_key("rsa.pem", headachemd::smart::jws_alg::rs384);
    report = sy::check_secret_files(cfg, "");
    EXPECT_TRUE(report.errors.empty()) << report.errors[0];

    cfg.ehrs[0].bulk->private_key_file = write_key("ec.pem", headachemd::smart::jws_alg::es384);
    report = sy::check_secret_files(cfg, "");
    ASSERT_EQ(report.errors.size(), 1u);
    EXPECT_NE(report.errors[0].find("[[ehr]] \"ecw\" [ehr.bulk]: the private key file"), std::string::npos)
        << report.errors[0];
    EXPECT_NE(report.errors[0].find("signs ES384, but algorithm = \"RS384\""), std::string::npos)
        << report.errors[0];

    // The next key (rotation) is checked like the current one: missing is a
    // note, the wrong type an error naming its file.
    cfg.ehrs[0].bulk->private_key_file = dir / "rsa.pem";
    cfg.ehrs[0].bulk->next_key = cf::next_bulk_key{dir / "absent-next.pem", "k-2027"};
    report = sy::check_secret_files(cfg, "");
    EXPECT_TRUE(report.errors.empty()) << report.errors[0];
    ASSERT_EQ(report.notes.size(), 1u);
    EXPECT_NE(report.notes[0].find("bulk next private key file"), std::string::npos) << report.notes[0];
    cfg.ehrs[0].bulk->next_key->private_key_file = dir / "ec.pem";
    report = sy::check_secret_files(cfg, "");
    ASSERT_EQ(report.errors.size(), 1u);
    EXPECT_NE(report.errors[0].find("[[ehr]] \"ecw\" [ehr.bulk]: the private key file " +
                                    (dir / "ec.pem").string() + " signs ES384"),
              std::string::npos)
        << report.errors[0];
    cfg.ehrs[0].bulk->next_key->private_key_file =
        write_key("rsa-next.pem", headachemd::smart::jws_alg::rs384);
    report = sy::check_secret_files(cfg, "");
    EXPECT_TRUE(report.errors.empty()) << report.errors[0];
}

}  // namespace

namespace {

// Issue 16: a [[view]] over a type an [[ehr]] does not search, or does not
// have the scope for, is named with what to add; a searched type that
// nothing stores is named too. A view over a searched, granted type is not.
TEST(ConfigCheckReport, ViewsOverTypesAnEhrDoesNotSearchAreWarnedAbout) {
    cf::config cfg = two_ehrs();
    cfg.ehrs[0].resources = {{"Patient", {}}, {"Observation", {}}, {"AllergyIntolerance", {}}};
    cfg.ehrs[0].scopes = {"offline_access", "patient/Observation.read", "patient/AllergyIntolerance.rs"};
    cfg.ehrs[1].resources = {{"Patient", {}}, {"Observation", {}}, {"CarePlan", {}}, {"Immunization", {}}};
    cfg.ehrs[1].scopes = {"offline_access", "patient/*.read"};
    const auto w = sy::view_search_warnings(
        cfg, {{"allergies", "AllergyIntolerance"}, {"bp", "Observation"}, {"plans", "CarePlan"}});
    EXPECT_EQ(
        w, (std::vector<std::string>{
               "view \"plans\" reads CarePlan, which [[ehr]] \"ecw\" does not search, so sync adds no rows "
               "to view_plans from it: add \"CarePlan\" to its resources (and patient/CarePlan.read to its "
               "scopes, if the EHR's app registration grants it)",
               "view \"allergies\" reads AllergyIntolerance, which [[ehr]] \"epic-main\" does not search, "
               "so sync adds no rows to view_allergies from it: add \"AllergyIntolerance\" to its resources "
               "(and patient/AllergyIntolerance.read to its scopes, if the EHR's app registration grants "
               "it)",
               "[[ehr]] \"epic-main\" searches Immunization, which HeadacheMD does not normalize and no "
               "[[view]] reads: nothing from that search is stored; remove it from resources or add a "
               "[[view]] over it"}));
    // A scope that does not grant the search: v1 write-only, v2 without s.
    cfg.ehrs[0].scopes = {"patient/AllergyIntolerance.write", "patient/AllergyIntolerance.r",
                          "user/Observation.read"};
    const auto w2 =
        sy::view_search_warnings(cfg, {{"allergies", "AllergyIntolerance"}, {"bp", "Observation"}});
    ASSERT_FALSE(w2.empty());
    EXPECT_EQ(
        w2[0],
        "[[ehr]] \"ecw\" searches AllergyIntolerance for view \"allergies\", but its scopes grant no read "
        "of it: add patient/AllergyIntolerance.read to its scopes");
    EXPECT_EQ(w2[1].rfind("view \"allergies\" reads AllergyIntolerance, which [[ehr]] \"epic-main\"", 0), 0u);
}

TEST(ConfigCheckReport, WarningsFollowTheNotes) {
    sy::secret_file_report secrets;
    secrets.notes = {"n"};
    secrets.warnings = {"w"};
    const auto t = sy::render_config_check("/s.toml", cf::config{}, secrets);
    EXPECT_TRUE(t.ok);
    EXPECT_EQ(t.out, "/s.toml: ok\n  note: n\n  warning: w\n");
}

}  // namespace
