// The pure parts of the configured export (issue 15): when the daemon runs
// an EHR's next export, which [[ehr]] a request names, and what `export`
// prints.
#include <gtest/gtest.h>

#include <chrono>

#include "headachemd/sync/bulk_export.hpp"

namespace {

namespace sy = headachemd::sync;
using namespace std::chrono;
using namespace std::chrono_literals;
using phase = sy::bulk_phase;

const sy::sys_time now = sys_days{2026y / December / 6} + 12h;

TEST(BulkSchedule, AFirstExportAndAnUnfinishedJobRunNow) {
    EXPECT_EQ(sy::next_export_due(std::nullopt, std::nullopt, 24h, now), now);
    for (auto p : {phase::kickoff, phase::polling, phase::downloading, phase::storing, phase::releasing})
        EXPECT_EQ(sy::next_export_due(p, now - 1min, 24h, now), now) << to_string(p);
}

TEST(BulkSchedule, TheIntervalCountsFromTheEndOfTheLastExport) {
    EXPECT_EQ(sy::next_export_due(phase::done, now - 2h, 24h, now), now + 22h);
    EXPECT_EQ(sy::next_export_due(phase::cancelled, now - 2h, 24h, now), now + 22h);
    // Long overdue (the daemon was down): now or earlier means run at once.
    EXPECT_LE(sy::next_export_due(phase::done, now - 48h, 24h, now), now);
}

TEST(BulkSchedule, AFailedExportIsTriedAgainWithinTheHourNotInALoop) {
    EXPECT_EQ(sy::next_export_due(phase::failed, now - 10min, 24h, now), now + 50min);
    EXPECT_EQ(sy::next_export_due(phase::failed, now - 10min, 30min, now), now + 20min);
}

TEST(BulkEhr, NamesTheEhrsThatHaveBulkWhenTheRequestIsAmbiguousOrWrong) {
    headachemd::config::config cfg;
    EXPECT_NE(sy::bulk_ehr_of(cfg, "").err().message.find("no [[ehr]] has an [ehr.bulk] section"),
              std::string::npos);
    headachemd::config::ehr_settings a, b, c;
    a.name = "north";
    a.bulk.emplace();
    b.name = "south";
    b.bulk.emplace();
    c.name = "plain";
    cfg.ehrs = {a, b, c};
    EXPECT_NE(sy::bulk_ehr_of(cfg, "").err().message.find("(north, south): name one with --ehr"),
              std::string::npos);
    EXPECT_EQ((*sy::bulk_ehr_of(cfg, "south"))->name, "south");
    EXPECT_NE(sy::bulk_ehr_of(cfg, "plain").err().message.find("\"plain\" has no [ehr.bulk]"),
              std::string::npos);
    cfg.ehrs = {a, c};
    EXPECT_EQ((*sy::bulk_ehr_of(cfg, ""))->name, "north");
}

TEST(BulkRender, SaysHowTheJobEndedAndNeverAUrl) {
    sy::bulk_run_result r;
    r.end.what = sy::bulk_action::kind::failed;
    r.end.failure = headachemd::error{headachemd::errc::deadline_exceeded, "the job deadline passed"};
    r.end.released = true;
    r.record.status_url = "https://ehr.example/bulk/status/cap-secret";
    r.calls.kickoff = 1;
    r.calls.poll = 40;
    r.calls.token = 2;
    r.calls.release = 1;
    const std::string out = sy::render_export("north", r);
    EXPECT_NE(out.find("export of EHR north: FAILED: the job deadline passed"), std::string::npos) << out;
    EXPECT_NE(out.find("the server's export was released"), std::string::npos) << out;
    EXPECT_NE(out.find("requests: 44 (2 token, 1 kick-off, 40 poll, 0 file, 1 release)"), std::string::npos)
        << out;
    EXPECT_EQ(out.find("cap-secret"), std::string::npos) << out;
}

}  // namespace
