// What check-config prints once the config has parsed, byte for byte: the
// EHR lines and notes on success, the errors and their count on failure,
// and every echoed value line-escaped.
#include <gtest/gtest.h>

#include "headachemd/sync/config_check_report.hpp"

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

}  // namespace
