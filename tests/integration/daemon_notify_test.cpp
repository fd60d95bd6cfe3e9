// The real binary speaks the systemd notify protocol (sd_notify(3)) to a
// datagram socket the test owns, as systemd would for Type=notify: READY=1
// once the first schedule is built, STATUS= progress, WATCHDOG=1 at half of
// WATCHDOG_USEC, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on
// SIGTERM. Hermetic: the socket is a file in the test's directory.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using namespace std::chrono_literals;
using headachemd::test::temp_dir;
using steady = std::chrono::steady_clock;

// The service manager's end: a bound AF_UNIX datagram socket.
class notify_socket {
public:
    explicit notify_socket(const std::filesystem::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::string p = path.string();
        if (fd_ < 0 || p.size() >= sizeof(addr.sun_path)) return;
        std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~notify_socket() {
        if (fd_ >= 0) ::close(fd_);
    }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;
    bool ok() const { return fd_ >= 0; }

    // The next datagram, blocking until `deadline`; nullopt when none came.
    std::optional<std::string> next(steady::time_point deadline) {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            pollfd p{fd_, POLLIN, 0};
            const int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count())));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            char buf[4096];
            const ssize_t got = ::recv(fd_, buf, sizeof(buf), 0);
            if (got < 0) return std::nullopt;
            std::string m(buf, static_cast<std::size_t>(got));
            seen.push_back(m);
            return m;
        }
    }

    // Reads until a datagram holds the line `line` (e.g. "READY=1"); the
    // lines of every datagram read stay in `seen`.
    bool wait_for_line(const std::string& line, steady::time_point deadline) {
        while (auto m = next(deadline))
            if (has_line(*m, line)) return true;
        return false;
    }

    static bool has_line(const std::string& message, const std::string& line) {
        std::size_t start = 0;
        while (start <= message.size()) {
            const auto end = message.find('\n', start);
            if (message.compare(start, (end == std::string::npos ? message.size() : end) - start, line) == 0)
                return true;
            if (end == std::string::npos) break;
            start = end + 1;
        }
        return false;
    }

    std::vector<std::string> seen;

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// A sandbox EHR with two patients listed and enrolled; the second one's
// refresh token is one the EHR never issued, so its job fails
// (invalid_grant, needs_reauth).
struct daemon_setup {
    temp_dir dir;
    headachemd::sandbox::background_server ehr{[] {
        headachemd::sandbox::options so;
        so.patients = 2;
        return so;
    }()};

    daemon_setup() {
        ehr->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", ehr->config().client_secret);
        std::string toml =
            "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
            (dir / "vault.db").string() + "\"\n" + headachemd::test::token_key_toml(dir.path()) +
            "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\n" + "fhir_base = \"" + ehr->fhir_base() +
            "\"\nclient_id = \"" + ehr->config().client_id + "\"\nclient_secret_file = \"" +
            (dir / "client.secret").string() + "\"\nca_file = \"" + (dir / "ca.pem").string() +
            "\"\nrequests_per_minute = 60000\n";
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        const auto ids = ehr->patient_ids();
        for (std::size_t i = 0; i < 2; ++i) {
            const std::string key = "hmd-" + std::to_string(i + 1);
            toml += "\n[[patient]]\nkey = \"" + key + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + ids[i] +
                    "\"\n";
            const std::string token = i == 0 ? ehr->issue_refresh_token(ids[i]) : "never-issued-token";
            vault.put_enrollment({key, "sandbox", ids[i], token, "", "t", false}, "t");
        }
        headachemd::test::write_file(dir / "sync.toml", toml);
    }

    pid_t start(std::vector<std::string> env) {
        return headachemd::test::spawn_binary({"run", "--config", (dir / "sync.toml").string()},
                                              dir / "stdout.txt", dir / "stderr.txt", std::move(env));
    }
    std::string stderr_text() { return headachemd::test::read_file(dir / "stderr.txt"); }
};

// Waits for the child's exit, blocking on a pidfd (Linux 5.3) until the
// deadline; kills it when the deadline passes. Returns the exit code.
int wait_exit(pid_t pid, std::chrono::seconds limit) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(limit).count()));
        ::close(pidfd);
        if (n == 0) ::kill(pid, SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(DaemonNotify, ReadyStatusWatchdogReloadAndStoppingReachTheNotifySocket) {
    // Setup: the notify socket, and a watchdog of 200 ms (pings every 100 ms).
    daemon_setup s;
    notify_socket sock(s.dir / "notify.sock");
    ASSERT_TRUE(sock.ok()) << "cannot bind " << (s.dir / "notify.sock");
    const pid_t pid = s.start({"NOTIFY_SOCKET=" + (s.dir / "notify.sock").string(), "WATCHDOG_USEC=200000"});
    ASSERT_GT(pid, 0);
    const auto deadline = steady::now() + 60s;

    // Run + Check: READY=1 comes first, before any pass has started.
    ASSERT_TRUE(sock.wait_for_line("READY=1", deadline)) << s.stderr_text();
    EXPECT_TRUE(notify_socket::has_line(sock.seen.back(), "STATUS=running: 2 patients at 1 EHRs"))
        << sock.seen.back();
    for (const auto& m : sock.seen) EXPECT_EQ(m.find("STATUS=pass"), std::string::npos) << m;

    // The pass reports its progress, the failed job included.
    EXPECT_TRUE(sock.wait_for_line("STATUS=pass 1: 2/2 patients, 1 failed", deadline)) << s.stderr_text();
    std::vector<std::string> pass_lines;
    for (const auto& m : sock.seen)
        if (m.rfind("STATUS=pass 1: ", 0) == 0) pass_lines.push_back(m);
    ASSERT_EQ(pass_lines.size(), 3u);
    EXPECT_EQ(pass_lines[0], "STATUS=pass 1: 0/2 patients, 0 failed");
    EXPECT_EQ(pass_lines[1].rfind("STATUS=pass 1: 1/2 patients, ", 0), 0u) << pass_lines[1];

    // The watchdog keeps pinging while the daemon sits idle between passes.
    int pings = 0;
    for (const auto& m : sock.seen) pings += notify_socket::has_line(m, "WATCHDOG=1");
    while (pings < 3 && sock.wait_for_line("WATCHDOG=1", deadline)) ++pings;
    EXPECT_GE(pings, 3);

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
    ASSERT_EQ(::kill(pid, SIGHUP), 0);
    EXPECT_TRUE(sock.wait_for_line("RELOADING=1", deadline)) << s.stderr_text();
    EXPECT_NE(sock.seen.back().find("\nMONOTONIC_USEC="), std::string::npos) << sock.seen.back();
    EXPECT_TRUE(sock.wait_for_line("READY=1", deadline)) << s.stderr_text();
    EXPECT_TRUE(notify_socket::has_line(sock.seen.back(), "STATUS=config reloaded: 2 patients"))
        << sock.seen.back();

    // SIGTERM: STOPPING=1, then a clean exit.
    const std::size_t before_stop = sock.seen.size();
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_TRUE(sock.wait_for_line("STOPPING=1", deadline)) << s.stderr_text();
    EXPECT_EQ(wait_exit(pid, 30s), 0) << s.stderr_text();
    for (std::size_t i = 0; i < before_stop; ++i)
        EXPECT_FALSE(notify_socket::has_line(sock.seen[i], "STOPPING=1")) << sock.seen[i];
}

TEST(DaemonNotify, NoWatchdogPingsWithoutWatchdogUsec) {
    // Setup: the notify socket, no WATCHDOG_USEC.
    daemon_setup s;
    notify_socket sock(s.dir / "notify.sock");
    ASSERT_TRUE(sock.ok());
    const pid_t pid = s.start({"NOTIFY_SOCKET=" + (s.dir / "notify.sock").string()});
    ASSERT_GT(pid, 0);
    const auto deadline = steady::now() + 60s;

    // Run: a whole pass, then SIGTERM and exit.
    EXPECT_TRUE(sock.wait_for_line("STATUS=pass 1: 2/2 patients, 1 failed", deadline)) << s.stderr_text();
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_TRUE(sock.wait_for_line("STOPPING=1", deadline)) << s.stderr_text();
    EXPECT_EQ(wait_exit(pid, 30s), 0) << s.stderr_text();
    // Every datagram the daemon sent is queued by now: drain them.
    while (sock.next(steady::now())) {
    }

    // Check: READY came, no WATCHDOG=1 ever did.
    bool ready = false;
    for (const auto& m : sock.seen) {
        ready = ready || notify_socket::has_line(m, "READY=1");
        EXPECT_FALSE(notify_socket::has_line(m, "WATCHDOG=1")) << m;
    }
    EXPECT_TRUE(ready);
}

// Issue 14: due times survive a restart. The first start syncs both
// patients; a restart minutes later finds every due time ahead (6 hours
// after the successful job, 15 minutes after the failed one) and starts no
// pass, where it used to sync everyone again at once.
TEST(DaemonNotify, ARestartKeepsTheDueTimesTheLastRunWrote) {
    // Setup: one daemon run with a whole pass, stopped.
    daemon_setup s;
    notify_socket sock(s.dir / "notify.sock");
    ASSERT_TRUE(sock.ok());
    const std::vector<std::string> env{"NOTIFY_SOCKET=" + (s.dir / "notify.sock").string()};
    const auto deadline = steady::now() + 60s;
    pid_t pid = s.start(env);
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(sock.wait_for_line("STATUS=pass 1: 2/2 patients, 1 failed", deadline)) << s.stderr_text();
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    ASSERT_EQ(wait_exit(pid, 30s), 0) << s.stderr_text();
    EXPECT_NE(s.stderr_text().find("2 of 2 patients due now"), std::string::npos) << s.stderr_text();
    const auto requests_before = s.ehr->stats().requests;

    // Run: start again; READY comes once the schedule is built.
    pid = s.start(env);
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(sock.wait_for_line("READY=1", deadline)) << s.stderr_text();
    const std::string log = s.stderr_text();  // the schedule line is written before READY
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_EQ(wait_exit(pid, 30s), 0) << s.stderr_text();

    // Check: nobody was due, and the EHR saw no request from the second run.
    EXPECT_NE(log.find("0 of 2 patients due now"), std::string::npos) << log;
    EXPECT_EQ(s.ehr->stats().requests, requests_before);
    for (const auto& m : sock.seen) EXPECT_EQ(m.find("STATUS=pass 2"), std::string::npos) << m;
}

}  // namespace
