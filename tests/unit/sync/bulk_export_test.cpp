// The pure parts of the configured export (issue 15): when the daemon runs
// an EHR's next export, which [[ehr]] a request names, and what `export`
// prints.
#include <gtest/gtest.h>

#include <chrono>

#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/status_report.hpp"

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

TEST(BulkStatus, AFailedExportNeedsAttentionAndNoUrlIsShown) {
    sy::bulk_report ok;
    ok.ehr = "north";
    ok.job = sy::new_bulk_record("https://ehr.example/fhir/Group/g/$export", now - 2h);
    ok.job->phase = phase::done;
    ok.job->status_url = "https://ehr.example/bulk/cap-secret";
    ok.written = now - 1h;
    ok.next_due = now + 23h;
    sy::bulk_report bad = ok;
    bad.ehr = "south";
    bad.job->phase = phase::failed;
    bad.job->failure =
        headachemd::error{headachemd::errc::export_failed, "the server said the export failed"};
    sy::bulk_report none;
    none.ehr = "west";

    const std::string text = sy::render_bulk_status({ok, bad, none});
    const std::string json = sy::render_status_json({}, {}, {ok, bad, none});

    EXPECT_FALSE(ok.needs_attention());
    EXPECT_TRUE(bad.needs_attention());
    EXPECT_NE(text.find("bulk export north: done, at 2026-12-06T11:00:00Z; next at 2026-12-07T11:00:00Z"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("bulk export south: FAILED, at 2026-12-06T11:00:00Z; export_failed: the server said"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("bulk export west: none yet"), std::string::npos) << text;
    EXPECT_NE(json.find("{\"attention\":true,"), std::string::npos) << json;
    EXPECT_NE(json.find("\"ehr\":\"south\",\"phase\":\"failed\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"ehr\":\"west\",\"phase\":null"), std::string::npos) << json;
    EXPECT_EQ((text + json).find("cap-secret"), std::string::npos);
    EXPECT_EQ(sy::render_status_json({}, {}, {ok}).find("{\"attention\":false,"), 0u);
}

}  // namespace
