// One refresher per patient across processes (issue 12, defect 1): the
// daemon under `run` and three `sync-once` processes started together, 20
// rounds, against the sandbox in strict-rotation mode (its default: a reused
// refresh token is invalid_grant and revokes the grant, as at eClinicalWorks).
// Access tokens live one second, so every job of every process refreshes.
// Without the per-patient refresh lock two of them send the same token and
// one strands the patient (needs_reauth); the first round also starts all
// four on a vault without a pseudonymization key and a new headache.db (the
// first-run race). Nothing here sleeps: children are awaited with a deadline.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace sb = headachemd::sandbox;
using namespace std::chrono_literals;
using headachemd::test::temp_dir;

constexpr int patients = 3;
constexpr int rounds = 20;
constexpr int sync_once_per_round = 3;

// Waits for `pid` to exit, at most `limit`; kills it then. Returns the exit
// code, 128+signal, or -1 when it had to be killed.
int wait_exit(pid_t pid, std::chrono::seconds limit) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    bool done = pidfd < 0;  // already reaped cannot be: we are its parent; fall back to waitpid
    if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        done = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(limit).count())) > 0;
        ::close(pidfd);
    }
    if (!done) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return -1;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

long long scalar(const fs::path& db, const std::string& sql) {
    SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(d, sql);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

TEST(RefreshLockAcrossProcesses, DaemonAndThreeSyncOnceTwentyRoundsStrandNobody) {
    // Setup: a strict sandbox whose access tokens expire at once, the
    // daemon's config with a one-second interval, enrolled patients.
    temp_dir dir;
    sb::options so;
    so.patients = patients;
    so.seed = 1212;
    so.access_token_lifetime = 1s;  // every job refreshes
    so.refresh_reuse_grace = false;
    sb::background_server ehr(so);
    ehr->write_ca_pem(dir / "ca.pem");
    headachemd::test::write_file(dir / "client.secret", ehr->config().client_secret);
    std::string toml = "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                       (dir / "vault.db").string() + "\"\nlog_level = \"warn\"\n" +
                       headachemd::test::token_key_toml(dir.path()) +
                       "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                       ehr->fhir_base() + "\"\nclient_id = \"" + ehr->config().client_id +
                       "\"\nclient_secret_file = \"" + (dir / "client.secret").string() + "\"\nca_file = \"" +
                       (dir / "ca.pem").string() +
                       "\"\nresources = [\"Patient\", \"Condition\"]\ninterval = 1\n"
                       "requests_per_minute = 60000\n";
    const auto ids = ehr->patient_ids();
    for (std::size_t i = 0; i < ids.size(); ++i)
        toml += "\n[[patient]]\nkey = \"hmd-" + std::to_string(i + 1) + "\"\nehr = \"sandbox\"\n" +
                "fhir_patient_id = \"" + ids[i] + "\"\n";
    headachemd::test::write_file(dir / "sync.toml", toml);
    {
        // Enrollments only: no pseudonymization key and no headache.db yet,
        // so the first round's four processes create them together.
        headachemd::store::vault v(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        for (std::size_t i = 0; i < ids.size(); ++i)
            v.put_enrollment({"hmd-" + std::to_string(i + 1), "sandbox", ids[i],
                              ehr->issue_refresh_token(ids[i]), "", "t", false},
                             "t");
    }
    const std::string config = (dir / "sync.toml").string();

    // Run: the daemon, and 20 rounds of three sync-once started together.
    const pid_t daemon =
        headachemd::test::spawn_binary({"run", "--config", config}, dir / "daemon.out", dir / "daemon.err");
    ASSERT_GT(daemon, 0);
    std::vector<std::string> failures;
    for (int round = 0; round < rounds; ++round) {
        std::vector<pid_t> children;
        for (int i = 0; i < sync_once_per_round; ++i) {
            const std::string tag = "r" + std::to_string(round) + "-" + std::to_string(i);
            children.push_back(headachemd::test::spawn_binary({"sync-once", "--config", config},
                                                              dir / (tag + ".out"), dir / (tag + ".err")));
        }
        for (int i = 0; i < sync_once_per_round; ++i) {
            const std::string tag = "r" + std::to_string(round) + "-" + std::to_string(i);
            const int rc = children[static_cast<std::size_t>(i)] > 0
                               ? wait_exit(children[static_cast<std::size_t>(i)], 60s)
                               : -2;
            const std::string err = headachemd::test::read_file(dir / (tag + ".err"));
            if (rc != 0)
                failures.push_back("sync-once " + tag + " exited " + std::to_string(rc) + ":\n" +
                                   headachemd::test::read_file(dir / (tag + ".out")) + err);
            // The first-run race is gone, not merely retried later.
            if (err.find("UNIQUE constraint") != std::string::npos)
                failures.push_back("sync-once " + tag + " met a first-run race:\n" + err);
        }
        if (!failures.empty()) break;
    }
    ::kill(daemon, SIGTERM);
    const int daemon_rc = wait_exit(daemon, 60s);

    // Check: every process exited 0, and nobody was stranded.
    for (const auto& f : failures) ADD_FAILURE() << f;
    const std::string daemon_err = headachemd::test::read_file(dir / "daemon.err");
    EXPECT_EQ(daemon_rc, 0) << daemon_err;
    EXPECT_EQ(daemon_err.find("UNIQUE constraint"), std::string::npos) << daemon_err;
    EXPECT_EQ(daemon_err.find("invalid_grant"), std::string::npos) << daemon_err;
    const auto stats = ehr->stats();
    // Every sync-once refreshes every patient, and the daemon at least in
    // its first pass, beside them.
    EXPECT_GE(stats.token_calls, static_cast<std::uint64_t>((rounds * sync_once_per_round + 1) * patients));
    std::cout << "refresh-lock test: " << stats.token_calls << " refreshes by "
              << rounds * sync_once_per_round << " sync-once and the daemon\n";
    const auto vault = dir / "vault.db";
    EXPECT_EQ(scalar(vault, "SELECT count(*) FROM enrollment WHERE needs_reauth != 0"), 0);
    EXPECT_EQ(scalar(vault, "SELECT count(*) FROM audit_event WHERE outcome = 'invalid_grant'"), 0);
    EXPECT_EQ(
        scalar(vault, "SELECT count(*) FROM audit_event WHERE action = 'token.refresh' AND outcome = 'ok'"),
        static_cast<long long>(stats.token_calls))
        << "every refresh the sandbox saw succeeded";
    EXPECT_EQ(scalar(vault, "SELECT count(*) FROM secret WHERE name = 'pseudonymization_key'"), 1);
    const auto db = dir / "headache.db";
    EXPECT_EQ(scalar(db,
                     "SELECT count(*) FROM sync_status WHERE resource_type = '*' AND "
                     "last_success_at IS NOT NULL AND needs_reauth = 0"),
              patients);
    // The tokens the vault holds still work: one more sync-once succeeds.
    const auto after = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
    EXPECT_EQ(after.exit_code, 0) << after.out << after.err;
}

}  // namespace
