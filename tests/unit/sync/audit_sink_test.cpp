// The audit sink's buffering and fsync pacing (issue 14, item 2), stepped
// with the manual clock and a recording store: no vault, no io_context.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <stdexcept>

#include "headachemd/core/clock.hpp"
#include "headachemd/sync/audit_sink.hpp"

namespace {

namespace sy = headachemd::sync;
namespace st = headachemd::store;
using namespace std::chrono_literals;

// What reached the store, in order: "deferred:2" (an append of two
// events), "full:1", "sync" (a sync without events).
struct recording_store {
    std::vector<std::string> calls;
    bool refuse = false;

    sy::audit_store functions() {
        return sy::audit_store{
            [this](std::span<const st::audit_event> events, st::audit_sync sync) {
                if (refuse) throw std::runtime_error("database or disk is full");
                calls.push_back(std::string(sync == st::audit_sync::full ? "full:" : "deferred:") +
                                std::to_string(events.size()));
            },
            [this] {
                if (refuse) throw std::runtime_error("disk I/O error");
                calls.push_back("sync");
            }};
    }
};

struct AuditSink : ::testing::Test {
    headachemd::manual_clock clk;
    recording_store store;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> lines =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(50);
    std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("test", lines);
    sy::audit_sink sink{store.functions(), clk, log};

    static std::vector<st::audit_event> events(std::size_t n) {
        std::vector<st::audit_event> out(n);
        for (auto& e : out) e.action = "fhir_search";
        return out;
    }
};

TEST_F(AuditSink, APageCommitAppendsDeferredAndEmptiesTheBuffer) {
    // Setup
    auto buf = events(3);
    // Run
    sink.flush(buf, st::audit_sync::deferred);
    // Check
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:3"}));
    EXPECT_TRUE(buf.empty());
    EXPECT_TRUE(sink.unsynced());
}

TEST_F(AuditSink, AnEmptyBufferWritesNothing) {
    std::vector<st::audit_event> buf;
    sink.flush(buf, st::audit_sync::full);
    sink.end_of_job(buf, &buf);
    EXPECT_TRUE(store.calls.empty());
}

TEST_F(AuditSink, AJobEndsDeferredUntilTheLastFsyncIsTenSecondsOld) {
    // Setup: jobs ending 3 s apart, each with the EHR's and its own events.
    std::vector<st::audit_event> ehr, job;
    for (int i = 0; i < 3; ++i) {
        // Run: at 0 s, 3 s and 6 s after the engine's start.
        ehr = events(1);
        job = events(2);
        sink.end_of_job(ehr, &job);
        clk.advance(3s);
    }
    // Check: no fsync yet.
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:1", "deferred:2", "deferred:1", "deferred:2",
                                                     "deferred:1", "deferred:2"}));
    // Run: at 9 s still deferred; at 10 s the job's events go full.
    job = events(2);
    sink.end_of_job(ehr, &job);
    EXPECT_EQ(store.calls.back(), "deferred:2");
    clk.advance(1s);
    job = events(2);
    sink.end_of_job(ehr, &job);
    // Check
    EXPECT_EQ(store.calls.back(), "full:2");
    EXPECT_FALSE(sink.unsynced());
    // The next 10 s count from that fsync.
    clk.advance(9s);
    EXPECT_EQ(sink.due_at_job_end(), st::audit_sync::deferred);
    clk.advance(1s);
    EXPECT_EQ(sink.due_at_job_end(), st::audit_sync::full);
}

TEST_F(AuditSink, AJobWithoutStateFlushesOnlyTheEhrEventsDeferred) {
    clk.advance(60s);  // a full sync would be due for the job's own events
    auto ehr = events(2);
    sink.end_of_job(ehr, nullptr);
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:2"}));
}

TEST_F(AuditSink, AnEnrollmentChangeIsFsyncedAtOnceAndRestartsTheTenSeconds) {
    clk.advance(8s);
    auto buf = events(1);
    sink.flush(buf, st::audit_sync::full);
    clk.advance(8s);
    EXPECT_EQ(sink.due_at_job_end(), st::audit_sync::deferred);
    EXPECT_EQ(store.calls, (std::vector<std::string>{"full:1"}));
}

TEST_F(AuditSink, ThePassEndsWithAFullAppendOrASyncOfWhatWasDeferred) {
    // Setup: a page's events deferred, no EHR-wide events left.
    auto page = events(4);
    sink.flush(page, st::audit_sync::deferred);
    std::vector<st::audit_event> ehr;
    // Run
    sink.end_of_pass(ehr);
    // Check: the deferred commit is made durable without an event.
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:4", "sync"}));
    EXPECT_FALSE(sink.unsynced());
    // A pass with EHR-wide events appends them with an fsync, which covers
    // the earlier deferred commits: no separate sync.
    page = events(1);
    sink.flush(page, st::audit_sync::deferred);
    ehr = events(2);
    sink.end_of_pass(ehr);
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:4", "sync", "deferred:1", "full:2"}));
    // Nothing unsynced: nothing to do.
    sink.end_of_pass(ehr);
    EXPECT_EQ(store.calls.size(), 4u);
}

TEST_F(AuditSink, ARefusingVaultKeepsTheEventsAndLogsOnceUntilItTakesThemAgain) {
    // Setup
    store.refuse = true;
    auto buf = events(2);
    // Run: two refused appends.
    sink.flush(buf, st::audit_sync::deferred);
    auto more = events(1);
    buf.insert(buf.end(), more.begin(), more.end());
    sink.flush(buf, st::audit_sync::deferred);
    // Check: all three kept, one error line.
    EXPECT_EQ(buf.size(), 3u);
    ASSERT_EQ(lines->last_formatted().size(), 1u);
    EXPECT_NE(lines->last_formatted()[0].find("cannot append to the audit log: database or disk is full; 2 "
                                              "event(s) kept in memory for the next "
                                              "try"),
              std::string::npos);
    // Run: the vault takes them again; a later failure is logged again.
    store.refuse = false;
    sink.flush(buf, st::audit_sync::deferred);
    EXPECT_TRUE(buf.empty());
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:3"}));
    store.refuse = true;
    buf = events(1);
    sink.flush(buf, st::audit_sync::deferred);
    EXPECT_EQ(lines->last_formatted().size(), 2u);
}

TEST_F(AuditSink, ARefusedSyncIsLoggedAndTriedAgainAtTheNextPass) {
    auto page = events(1);
    sink.flush(page, st::audit_sync::deferred);
    store.refuse = true;
    std::vector<st::audit_event> ehr;
    sink.end_of_pass(ehr);
    EXPECT_TRUE(sink.unsynced());
    ASSERT_EQ(lines->last_formatted().size(), 1u);
    EXPECT_NE(lines->last_formatted()[0].find("cannot sync the audit log to disk: disk I/O error"),
              std::string::npos);
    store.refuse = false;
    sink.end_of_pass(ehr);
    EXPECT_EQ(store.calls, (std::vector<std::string>{"deferred:1", "sync"}));
}

TEST_F(AuditSink, AVaultThatStaysBrokenKeepsOnlyTheNewestEvents) {
    store.refuse = true;
    auto buf = events(sy::audit_sink::max_buffered + 5);
    buf.back().action = "newest";
    sink.flush(buf, st::audit_sync::deferred);
    EXPECT_EQ(buf.size(), sy::audit_sink::max_buffered);
    EXPECT_EQ(buf.back().action, "newest");
    ASSERT_EQ(lines->last_formatted().size(), 2u);
    EXPECT_NE(lines->last_formatted()[1].find("audit log: dropping 5 event(s) that vault.db would not take"),
              std::string::npos);
}

}  // namespace
