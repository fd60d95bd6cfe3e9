// The daemon (`run`) with [ehr.bulk] (issue 15, item 7): it exports the
// clinic beside the per-patient passes, says so in /metrics and the log,
// and a SIGTERM in the middle of a job leaves it for the next start, which
// resumes it without a second kick-off. The daemon really waits between
// polls (10 s before its first), so these tests take that long; nothing
// sleeps to synchronize: every step waits for a log line.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "bulk_clinic.hpp"
#include "daemon_support.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "loopback_get.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::metrics_port_in;
using headachemd::test::metrics_sample;
using reaper = headachemd::test::daemon_reaper;

using headachemd::test::temp_dir;
using headachemd::test::write_file;

struct bulk_daemon : ::testing::Test {
    temp_dir dir;
    std::unique_ptr<headachemd::sandbox::background_server> ehr;

    // No [[patient]]: the export alone, so the log lines waited for are its own.
    void start(int pending_polls) {
        ehr = headachemd::test::start_bulk_clinic(dir.path(), 3, pending_polls,
                                                  "log_level = \"info\"\nmetrics_listen = \"127.0.0.1:0\"\n");
    }

    int count(const std::string& sql) {
        SQLite::Database db((dir / "headache.db").string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, sql);
        q.executeStep();
        return q.getColumn(0).getInt();
    }
};

TEST_F(bulk_daemon, RunExportsTheClinicAndShowsItInMetrics) {
    start(0);

    auto child = headachemd::test::spawn_piped({"run", "--config", (dir / "sync.toml").string()}, dir.path(),
                                               false, false, true);
    ASSERT_GT(child.pid, 0);
    reaper guard{child.pid};
    std::string seen;
    const auto listening = headachemd::test::read_line_containing(child.err, "metrics are served on", seen);
    ASSERT_TRUE(listening) << seen;
    const int port = metrics_port_in(*listening);
    ASSERT_TRUE(headachemd::test::read_line_containing(child.err, "bulk export of EHR 'sandbox': done", seen))
        << seen;
    std::string why;
    const auto metrics =
        headachemd::test::loopback_get("http://127.0.0.1:" + std::to_string(port) + "/metrics", why);
    ::kill(child.pid, SIGTERM);
    const int exit_code = headachemd::test::wait_exit(std::exchange(child.pid, -1));
    ::close(child.err);

    EXPECT_EQ(exit_code, 0) << seen;
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 3);
    EXPECT_EQ((*ehr)->stats().bulk_kickoffs, 1u);
    EXPECT_EQ((*ehr)->stats().bulk_deletes, 1u);
    ASSERT_TRUE(metrics) << why;
    const std::string& m = metrics->body;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_bulk_exports_total{ehr=\"sandbox\",result=\"done\"}"), 1)
        << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_bulk_phase{ehr=\"sandbox\",phase=\"done\"}"), 1) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_bulk_files{ehr=\"sandbox\",state=\"applied\"}"),
              metrics_sample(m, "headachemd_sync_bulk_files{ehr=\"sandbox\",state=\"total\"}"))
        << m;
    EXPECT_GT(metrics_sample(m, "headachemd_sync_bulk_requests_total{ehr=\"sandbox\"}"), 3) << m;
    EXPECT_EQ(seen.find("/bulk/"), std::string::npos) << "a status or file URL in the log:\n" << seen;
}

TEST_F(bulk_daemon, ASigtermWhileWaitingForTheServerLeavesTheJobAndTheNextStartResumesIt) {
    // Two 202s: the daemon is waiting (10 s, then 20 s) when it is stopped.
    start(2);

    auto first = headachemd::test::spawn_piped({"run", "--config", (dir / "sync.toml").string()}, dir.path(),
                                               false, false, true);
    ASSERT_GT(first.pid, 0);
    reaper guard{first.pid};
    std::string seen;
    ASSERT_TRUE(headachemd::test::read_line_containing(first.err, "phase polling", seen)) << seen;
    ::kill(first.pid, SIGTERM);
    ASSERT_TRUE(headachemd::test::read_line_containing(first.err, "resumes at the next run", seen)) << seen;
    EXPECT_EQ(headachemd::test::wait_exit(std::exchange(first.pid, -1)), 0) << seen;
    ::close(first.err);
    EXPECT_EQ((*ehr)->stats().bulk_kickoffs, 1u);
    EXPECT_EQ((*ehr)->stats().bulk_deletes, 0u);

    auto second = headachemd::test::spawn_piped({"run", "--config", (dir / "sync.toml").string()}, dir.path(),
                                                false, false, true);
    ASSERT_GT(second.pid, 0);
    reaper guard2{second.pid};
    ASSERT_TRUE(headachemd::test::read_line_containing(second.err, "resuming the job", seen)) << seen;
    ASSERT_TRUE(
        headachemd::test::read_line_containing(second.err, "bulk export of EHR 'sandbox': done", seen))
        << seen;
    ::kill(second.pid, SIGTERM);
    EXPECT_EQ(headachemd::test::wait_exit(std::exchange(second.pid, -1)), 0);
    ::close(second.err);

    EXPECT_EQ((*ehr)->stats().bulk_kickoffs, 1u);
    EXPECT_EQ((*ehr)->stats().bulk_deletes, 1u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 3);
}

}  // namespace
