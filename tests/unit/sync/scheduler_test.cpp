// The daemon's schedule (issue 14, item 1), stepped event by event with
// explicit times: no io_context, no timers, no sleeps.
#include <gtest/gtest.h>

#include "headachemd/core/clock.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/scheduler.hpp"

namespace {

namespace sy = headachemd::sync;
namespace cfg = headachemd::config;
using namespace std::chrono_literals;
using kind = sy::scheduler::action::kind;

const sy::sys_time t0 = sy::sys_time{} + std::chrono::hours(24 * 365 * 56);

cfg::config clinic(std::initializer_list<const char*> keys, std::chrono::seconds interval = 6h) {
    cfg::config c;
    cfg::ehr_settings e;
    e.name = "ecw";
    e.interval = interval;
    e.keepalive_before = 14 * 24h;
    c.ehrs.push_back(e);
    for (const auto* k : keys) c.patients.push_back({k, "ecw", std::nullopt});
    return c;
}

sy::patient_result ok_job(const std::string& key) {
    sy::patient_result p;
    p.patient_key = key;
    p.ehr = "ecw";
    p.ok = true;
    return p;
}

sy::patient_result failed_job(const std::string& key) {
    auto p = ok_job(key);
    p.ok = false;
    p.failure = headachemd::error{headachemd::error_code::http(500), "the EHR kept failing"};
    return p;
}

// No jitter unless a test asks for it: the times are then exact.
sy::scheduler make(std::uint64_t jitter = 0) {
    sy::scheduler::options o;
    o.idle_close_after = 30s;
    return sy::scheduler(o, [jitter] { return jitter; });
}

std::vector<std::string> keys_of(const sy::scheduler::action& a) {
    std::vector<std::string> out;
    for (const auto& p : a.patients) out.push_back(p.key);
    return out;
}

TEST(Scheduler, StartsWithTheAuditRetentionThenEveryPatientInConfigOrder) {
    // Setup
    auto s = make();
    s.configure(clinic({"hmd-2", "hmd-1", "hmd-3"}), t0);

    // Run
    const auto first = s.next(t0);
    const auto second = s.next(t0);

    // Check: the retention runs at start-up, then one pass over everyone.
    EXPECT_EQ(first.what, kind::purge_audit);
    EXPECT_EQ(second.what, kind::run_pass);
    EXPECT_EQ(keys_of(second), (std::vector<std::string>{"hmd-2", "hmd-1", "hmd-3"}));
    // Each new patient's due time is published (status shows it).
    EXPECT_EQ(s.take_changes().size(), 3u);
    EXPECT_TRUE(s.take_changes().empty());
}

TEST(Scheduler, AFinishedJobRunsAgainAfterTheIntervalAndTheLoopSleepsUntilThen) {
    // Setup
    auto s = make();
    s.configure(clinic({"hmd-1"}), t0);
    (void)s.next(t0);  // purge
    ASSERT_EQ(s.next(t0).what, kind::run_pass);

    // Run: the job ends a minute later.
    const auto d = s.job_done(ok_job("hmd-1"), std::nullopt, t0 + 1min);
    const auto lost = s.pass_done({{"hmd-1", "ecw"}}, false, t0 + 1min);
    const auto a = s.next(t0 + 1min);

    // Check
    EXPECT_EQ(d.due, t0 + 1min + 6h);
    EXPECT_FALSE(d.keepalive);
    EXPECT_TRUE(lost.empty());
    EXPECT_EQ(a.what, kind::sleep);
    EXPECT_EQ(a.sleep, std::chrono::nanoseconds(6h));
    EXPECT_TRUE(a.close_idle);
    EXPECT_EQ(s.next(t0 + 1min + 6h).what, kind::run_pass);
}

TEST(Scheduler, JitterSpreadsPatientsOverATenthOfTheInterval) {
    auto s = make(/*jitter=*/1234);
    s.configure(clinic({"hmd-1"}), t0);
    const auto d = s.job_done(ok_job("hmd-1"), std::nullopt, t0);
    EXPECT_EQ(d.due, t0 + 6h + 1234s);  // 1234 mod (21600 / 10)
}

TEST(Scheduler, AFailedJobIsRetriedWithinFifteenMinutesAndARateLimitHoldIsHonoured) {
    auto s = make();
    s.configure(clinic({"hmd-1", "hmd-2"}), t0);
    EXPECT_EQ(s.job_done(failed_job("hmd-1"), std::nullopt, t0).due, t0 + 15min);
    auto held = failed_job("hmd-2");
    held.retry_at = t0 + 2h;
    EXPECT_EQ(s.job_done(held, std::nullopt, t0).due, t0 + 2h);
    // A short interval is not undercut below a minute: never a tight loop.
    auto fast = make();
    fast.configure(clinic({"hmd-1"}, 5s), t0);
    EXPECT_EQ(fast.job_done(failed_job("hmd-1"), std::nullopt, t0).due, t0 + 1min);
}

TEST(Scheduler, ARefreshTokenNearItsLapseBringsTheNextJobForward) {
    auto s = make();
    s.configure(clinic({"hmd-1"}, 30 * 24h), t0);
    const auto lapse = t0 + 20 * 24h;
    const auto d = s.job_done(ok_job("hmd-1"), lapse, t0);
    EXPECT_EQ(d.due, lapse - 14 * 24h);
    EXPECT_TRUE(d.keepalive);
    EXPECT_EQ(s.due_of({"hmd-1", "ecw"}), lapse - 14 * 24h);
}

TEST(Scheduler, AJobThatReportedNothingWaitsAsAfterAFailureUnlessStopping) {
    // Setup: two patients due; only hmd-1's job reports.
    auto s = make();
    s.configure(clinic({"hmd-1", "hmd-2"}), t0);
    (void)s.next(t0);
    const auto pass = s.next(t0);
    ASSERT_EQ(pass.patients.size(), 2u);
    (void)s.job_done(ok_job("hmd-1"), std::nullopt, t0 + 10s);

    // Run
    const auto lost = s.pass_done(pass.patients, false, t0 + 10s);

    // Check: hmd-2 is not started again at once.
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].who.key, "hmd-2");
    EXPECT_EQ(lost[0].due, t0 + 10s + 15min);
    EXPECT_EQ(s.next(t0 + 10s).what, kind::sleep);

    // A stopping daemon leaves the schedule as it is.
    auto stopping = make();
    stopping.configure(clinic({"hmd-1"}), t0);
    EXPECT_TRUE(stopping.pass_done({{"hmd-1", "ecw"}}, true, t0).empty());
    EXPECT_EQ(stopping.due_of({"hmd-1", "ecw"}), t0);
}

TEST(Scheduler, APatientEnrolledWhileIdleRunsAloneAtOnce) {
    auto s = make();
    s.configure(clinic({"hmd-1", "hmd-2"}), t0);
    (void)s.next(t0);
    (void)s.job_done(ok_job("hmd-1"), std::nullopt, t0);
    (void)s.job_done(ok_job("hmd-2"), std::nullopt, t0);
    (void)s.take_changes();
    ASSERT_EQ(s.next(t0 + 1h).what, kind::sleep);

    s.enrolled({"hmd-2", "ecw"}, t0 + 1h);

    const auto a = s.next(t0 + 1h);
    EXPECT_EQ(a.what, kind::run_pass);
    EXPECT_EQ(keys_of(a), std::vector<std::string>{"hmd-2"});
    const auto changes = s.take_changes();
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].due, t0 + 1h);
}

TEST(Scheduler, AReloadKeepsKnownDueTimesAddsNewPatientsAndDropsRemovedOnes) {
    // Setup
    auto s = make();
    s.configure(clinic({"hmd-1", "hmd-2"}), t0);
    (void)s.next(t0);
    (void)s.job_done(ok_job("hmd-1"), std::nullopt, t0);
    (void)s.job_done(ok_job("hmd-2"), std::nullopt, t0);
    (void)s.take_changes();

    // Run: hmd-2 leaves the config, hmd-3 joins.
    s.configure(clinic({"hmd-1", "hmd-3"}), t0 + 1h);

    // Check
    EXPECT_EQ(s.due_of({"hmd-1", "ecw"}), t0 + 6h);
    EXPECT_EQ(s.due_of({"hmd-2", "ecw"}), std::nullopt);
    EXPECT_EQ(s.due_of({"hmd-3", "ecw"}), t0 + 1h);
    EXPECT_EQ(s.size(), 2u);
    const auto changes = s.take_changes();
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].who.key, "hmd-3");
    EXPECT_EQ(keys_of(s.next(t0 + 1h)), std::vector<std::string>{"hmd-3"});
}

TEST(Scheduler, TheAuditRetentionRunsDailyEvenWhenNoPatientIsDueForLonger) {
    // Setup: a weekly interval.
    auto s = make();
    s.configure(clinic({"hmd-1"}, 7 * 24h), t0);
    ASSERT_EQ(s.next(t0).what, kind::purge_audit);
    (void)s.job_done(ok_job("hmd-1"), std::nullopt, t0);

    // Run / Check: the loop sleeps until the next purge, not past it.
    const auto a = s.next(t0 + 1h);
    EXPECT_EQ(a.what, kind::sleep);
    EXPECT_EQ(a.sleep, std::chrono::nanoseconds(23h));
    EXPECT_EQ(s.next(t0 + 24h).what, kind::purge_audit);
    EXPECT_EQ(s.next(t0 + 24h).sleep, std::chrono::nanoseconds(24h));
}

TEST(Scheduler, NoPatientsMeansADailyWakeAndAShortSleepKeepsTheConnections) {
    auto s = make();
    s.configure(clinic({}), t0);
    (void)s.next(t0);
    const auto idle = s.next(t0);
    EXPECT_EQ(idle.what, kind::sleep);
    EXPECT_EQ(idle.sleep, std::chrono::nanoseconds(24h));
    EXPECT_TRUE(idle.close_idle);

    auto busy = make();
    busy.configure(clinic({"hmd-1"}, 20s), t0);
    (void)busy.next(t0);
    (void)busy.job_done(ok_job("hmd-1"), std::nullopt, t0);
    const auto soon = busy.next(t0);
    EXPECT_EQ(soon.sleep, std::chrono::nanoseconds(20s));
    EXPECT_FALSE(soon.close_idle);  // shorter than the pool's idle timeout
}

TEST(Scheduler, AJobWhoseNextRunCannotBePlannedIsRetriedInAQuarterHour) {
    auto s = make();
    s.configure(clinic({"hmd-1"}, 7 * 24h), t0);
    EXPECT_EQ(s.job_unplanned(ok_job("hmd-1"), t0), t0 + 15min);
    EXPECT_EQ(s.due_of({"hmd-1", "ecw"}), t0 + 15min);
}

TEST(Scheduler, DueTimesStoredByAnEarlierProcessSurviveARestartWithinOneInterval) {
    // Setup: what the last process wrote to sync_status.
    const std::map<sy::patient_ref, sy::sys_time> stored = {
        {{"hmd-1", "ecw"}, t0 + 2h},        // ahead: kept
        {{"hmd-2", "ecw"}, t0 - 1h},        // missed while stopped: due now
        {{"hmd-3", "ecw"}, t0 + 30 * 24h},  // beyond one interval: capped
        {{"hmd-9", "ecw"}, t0 + 1h}};       // no longer in the config
    auto s = make();

    // Run: hmd-4 has no stored time.
    s.configure(clinic({"hmd-1", "hmd-2", "hmd-3", "hmd-4"}), t0, stored);

    // Check
    EXPECT_EQ(s.due_of({"hmd-1", "ecw"}), t0 + 2h);
    EXPECT_EQ(s.due_of({"hmd-2", "ecw"}), t0);
    EXPECT_EQ(s.due_of({"hmd-3", "ecw"}), t0 + 6h + 36min);  // interval + its tenth of jitter
    EXPECT_EQ(s.due_of({"hmd-4", "ecw"}), t0);
    EXPECT_EQ(s.due_of({"hmd-9", "ecw"}), std::nullopt);
    (void)s.next(t0);  // purge
    EXPECT_EQ(keys_of(s.next(t0)), (std::vector<std::string>{"hmd-2", "hmd-4"}));
    // What changed is published; a kept time is already in sync_status.
    std::vector<std::string> changed;
    for (const auto& c : s.take_changes()) changed.push_back(c.who.key);
    EXPECT_EQ(changed, (std::vector<std::string>{"hmd-2", "hmd-3", "hmd-4"}));
    // A reload does not go back to the stored times: known patients keep theirs.
    s.configure(clinic({"hmd-1", "hmd-2", "hmd-3", "hmd-4"}), t0 + 1min);
    EXPECT_EQ(s.due_of({"hmd-1", "ecw"}), t0 + 2h);
}

}  // namespace
