// Crash safety beyond the HTTP boundaries (issue 18, item 6): the real
// binary is SIGKILLed at the k-th write it makes to its files during
// start-up and the migrations of a fresh headache.db, `rekey`, `unenroll
// --purge`, `ingest` and a sync-once that back-fills and fills materialized
// views, and after each kill the files must be sound and the
// interrupted operation must be resumable to the state an uninterrupted run
// leaves.
//
// Kill moments are observed from outside, with inotify(7) on the directory
// that holds headache.db, vault.db, their -wal/-journal/-shm files and the
// key files: no sleeps and no hook in the product. inotify reports a write
// after it happened and the test reads it a little later, so the kill lands
// at or shortly after the k-th write: a random moment near a write, which is
// what a crash is. Identical consecutive events that are still unread are
// merged by the kernel, so a clean run's count varies a little; k is drawn
// over the count of a clean run measured first (plus a margin, so that some
// runs complete before their kill moment, which the figures count).
//
// HEADACHEMD_KILL_COUNT (default 10) sets the kills per scenario,
// HEADACHEMD_KILL_SEED the seed (default: random, printed). The figures go to
// stdout as "kill-points: ...".
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "bulk_clinic.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "kill_support.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace sb = headachemd::sandbox;
using namespace std::chrono_literals;
using headachemd::test::expire_access_tokens;
using headachemd::test::temp_dir;
using headachemd::test::kill::analytics_rows;
using headachemd::test::kill::integrity;
using headachemd::test::kill::rows_of_tables_with;
using headachemd::test::kill::scalar;
using headachemd::test::kill::tables_with_column;

constexpr int patient_count = 3;
constexpr std::uint64_t data_seed = 1818;

// The files whose writes are kill points: the two databases with their
// -wal, -journal and -shm files, and key files. Not the lock file (opened,
// never written) nor the child's captured stdout and stderr.
bool is_kill_point(std::string_view name) {
    if (name == "vault.db.lock") return false;
    return name.starts_with("headache.db") || name.starts_with("vault.db") || name.ends_with(".key");
}

struct watched_run {
    int exit_code = -1;
    int events = 0;  // writes seen from the child's start to its end
    bool killed() const { return exit_code == 128 + SIGKILL; }
};

// Runs the binary with inotify on `dir` and SIGKILLs it at the `kill_at`-th
// write (never when kill_at <= 0).
class write_watch {
public:
    explicit write_watch(const fs::path& dir) : dir_(dir) {
        fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd_ >= 0)
            wd_ = ::inotify_add_watch(fd_, dir.c_str(),
                                      IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_CLOSE_WRITE);
    }
    ~write_watch() {
        if (fd_ >= 0) ::close(fd_);
    }
    write_watch(const write_watch&) = delete;
    write_watch& operator=(const write_watch&) = delete;
    bool ok() const { return fd_ >= 0 && wd_ >= 0; }

    watched_run run(const std::vector<std::string>& args, int kill_at) {
        watched_run r;
        // What the test itself wrote before (install, checks) is not the
        // child's: inotify queues events synchronously with the write, so
        // they are all in the queue now.
        consume(-1, -1, r);
        r.events = 0;
        const pid_t pid = headachemd::test::spawn_binary(args, dir_ / "stdout.txt", dir_ / "stderr.txt");
        if (pid <= 0) {
            ADD_FAILURE() << "could not start the binary";
            return r;
        }
        const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
        if (pidfd < 0) {
            ::kill(pid, SIGKILL);
            ADD_FAILURE() << "pidfd_open failed";
            r.exit_code = headachemd::test::wait_exit(pid);
            return r;
        }
        const auto deadline = std::chrono::steady_clock::now() + 120s;
        bool dead = false;
        while (!dead) {
            pollfd fds[2] = {{fd_, POLLIN, 0}, {pidfd, POLLIN, 0}};
            if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
            if (fds[0].revents & POLLIN) consume(kill_at, pid, r);
            dead = (fds[1].revents & POLLIN) != 0;
            if (!dead && std::chrono::steady_clock::now() > deadline) {
                ADD_FAILURE() << "the child ran for 120 s: killed";
                ::kill(pid, SIGKILL);
                break;
            }
        }
        // The child has exited (not yet reaped, so a late kill can only hit
        // the zombie): its last writes are queued; count them.
        consume(kill_at, pid, r);
        ::close(pidfd);
        r.exit_code = headachemd::test::wait_exit(pid);
        return r;
    }

private:
    void consume(int kill_at, pid_t pid, watched_run& r) {
        alignas(inotify_event) char buf[16384];
        for (;;) {
            const ssize_t n = ::read(fd_, buf, sizeof(buf));
            if (n <= 0) return;
            for (ssize_t at = 0; at < n;) {
                const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
                at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
                if (e->len == 0 || !is_kill_point(e->name)) continue;
                ++r.events;
                if (pid > 0 && r.events == kill_at) ::kill(pid, SIGKILL);
            }
        }
    }

    fs::path dir_;
    int fd_ = -1, wd_ = -1;
};

template <class F>
auto with_vault(const fs::path& path, const fs::path& key_file, F&& f) {
    headachemd::store::vault v(path, headachemd::store::load_token_key(key_file));
    return f(v);
}

// Whether the vault opens with the key in `key_file` (the start-up check
// refuses a row sealed with another key).
bool vault_opens_with(const fs::path& path, const fs::path& key_file) {
    try {
        return with_vault(path, key_file, [](headachemd::store::vault& v) {
            v.enrollments();
            return true;
        });
    } catch (const std::exception&) {
        return false;
    }
}

std::set<std::string> needing_reauth(const fs::path& vault_path, const fs::path& key_file) {
    return with_vault(vault_path, key_file, [](headachemd::store::vault& v) {
        std::set<std::string> out;
        for (const auto& e : v.enrollments())
            if (e.needs_reauth) out.insert(e.patient_key);
        return out;
    });
}

sb::options sandbox_options() {
    sb::options so;
    so.patients = patient_count;
    so.seed = data_seed;
    // A kill inside a /token exchange can strand a patient at a strict
    // single-use server; kill_test.cpp measures that window. Here the
    // question is whether the files survive, so the server allows the
    // replay of a token spent by a killed run (Okta, Auth0 do).
    so.refresh_reuse_grace = true;
    return so;
}

// The config of one installation in `dir`, sealed with `key_file`, listing
// every sandbox patient but `left_out`.
void write_config(const fs::path& dir, sb::server& ehr, const fs::path& key_file, int page_size,
                  const std::string& left_out = {}) {
    std::string toml = "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                       (dir / "vault.db").string() + "\"\nlog_level = \"warn\"\ntoken_key_file = \"" +
                       key_file.string() + "\"\n" + "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\n" +
                       "fhir_base = \"" + ehr.fhir_base() + "\"\nclient_id = \"" + ehr.config().client_id +
                       "\"\nclient_secret_file = \"" + (dir / "client.secret").string() + "\"\nca_file = \"" +
                       (dir / "ca.pem").string() + "\"\npage_size = " + std::to_string(page_size) +
                       "\nmax_concurrent = 1\nrequests_per_minute = 60000\ncount_check_every = \"0s\"\n";
    const auto ids = ehr.patient_ids();
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const std::string key = "hmd-" + std::to_string(i + 1);
        if (key == left_out) continue;
        toml +=
            "\n[[patient]]\nkey = \"" + key + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + ids[i] + "\"\n";
    }
    headachemd::test::write_file(dir / "sync.toml", toml);
}

// One installation as kill_test.cpp makes it: config, secret, CA and a vault
// with every patient enrolled (fresh refresh tokens); no headache.db yet.
void install(const temp_dir& dir, sb::server& ehr, int page_size) {
    ehr.write_ca_pem(dir / "ca.pem");
    headachemd::test::write_file(dir / "client.secret", ehr.config().client_secret);
    const auto key_file = headachemd::test::token_key_file(dir.path());
    write_config(dir.path(), ehr, key_file, page_size);
    const auto ids = ehr.patient_ids();
    with_vault(dir / "vault.db", key_file, [&](headachemd::store::vault& v) {
        for (std::size_t i = 0; i < ids.size(); ++i)
            v.put_enrollment({"hmd-" + std::to_string(i + 1), "sandbox", ids[i],
                              ehr.issue_refresh_token(ids[i]), "", "t", false},
                             "t");
        return 0;
    });
}

std::size_t row_count(const std::map<std::string, std::vector<std::string>>& rows) {
    std::size_t n = 0;
    for (const auto& [t, r] : rows) n += r.size();
    return n;
}

// Expects `got` to equal `want` table by table; names the first difference.
void expect_rows_equal(const std::map<std::string, std::vector<std::string>>& got,
                       const std::map<std::string, std::vector<std::string>>& want, const std::string& what) {
    EXPECT_EQ(got.size(), want.size()) << what;
    for (const auto& [table, want_rows] : want) {
        const auto it = got.find(table);
        if (it == got.end()) {
            ADD_FAILURE() << what << ": table " << table << " missing";
            continue;
        }
        EXPECT_EQ(it->second.size(), want_rows.size()) << what << ": " << table;
        if (it->second != want_rows) {
            std::vector<std::string> only_got, only_want;
            std::set_difference(it->second.begin(), it->second.end(), want_rows.begin(), want_rows.end(),
                                std::back_inserter(only_got));
            std::set_difference(want_rows.begin(), want_rows.end(), it->second.begin(), it->second.end(),
                                std::back_inserter(only_want));
            ADD_FAILURE() << what << ": table " << table << " differs: " << only_got.size() << " rows extra, "
                          << only_want.size() << " missing"
                          << (only_got.empty() ? "" : "; first extra: " + only_got.front().substr(0, 200))
                          << (only_want.empty() ? ""
                                                : "; first missing: " + only_want.front().substr(0, 200));
        }
    }
}

// The lines of a completed sync-once say "N patients: N ok, 0 failed".
void expect_all_ok(const headachemd::test::command_result& r, int patients, const std::string& what) {
    EXPECT_EQ(r.exit_code, 0) << what << "\n" << r.out << r.err;
    EXPECT_NE(
        r.out.find(std::to_string(patients) + " patients: " + std::to_string(patients) + " ok, 0 failed"),
        std::string::npos)
        << what << "\n"
        << r.out;
}

// A kill moment: up to `clean_events` (a clean run's count) plus a tenth, so
// that some runs complete first; with `early`, half of them among the
// first `early` writes.
int draw_kill_moment(std::mt19937_64& rng, int clean_events, int early = 0) {
    auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int span = std::max(1, clean_events + clean_events / 10);
    if (early > 0 && uniform(0, 1) == 0) return uniform(1, std::min(early, span));
    return uniform(1, span);
}

// Half the kill moments anywhere, half in the second half of the writes:
// where rekey and unenroll commit, checkpoint and write their audit row.
int draw_kill_moment_late_half(std::mt19937_64& rng, int clean_events) {
    return std::uniform_int_distribution<int>(0, 1)(rng) == 0
               ? draw_kill_moment(rng, clean_events)
               : clean_events / 2 + draw_kill_moment(rng, clean_events / 2);
}

struct figures {
    int kills = 0, completed = 0, resumed = 0;
    int min_events = 1 << 30, max_events = 0;
    // A run that was killed, or that completed before its kill moment and
    // then must have exited 0.
    void record(const watched_run& r, std::uint64_t seed, int k) {
        if (r.killed()) {
            ++kills;
            return;
        }
        ++completed;
        min_events = std::min(min_events, r.events);
        max_events = std::max(max_events, r.events);
        EXPECT_EQ(r.exit_code, 0) << "seed " << seed << " k " << k;
    }
};

void print_figures(const std::string& scenario, std::uint64_t seed, int clean_events, const figures& f,
                   const std::string& extra) {
    std::cout << "kill-points: " << scenario << ", seed " << seed << ": " << f.kills << " kills, "
              << f.completed << " runs completed before their kill moment, a clean run made " << clean_events
              << " writes (inotify events)" << extra << "\n";
}

// One round as a scenario's checks see it: its installation, the write the
// binary was killed at (0 in a measuring round, which is never killed) and
// how the run ended.
struct kill_round {
    const temp_dir& dir;
    int k;
    const watched_run& run;
    bool measuring;  // the uninterrupted run that counted the clean writes
};

// What differs between the scenarios; kill_loop does the rest.
struct kill_scenario {
    // Fills a fresh directory for round `round` (from 0; -1 for a measuring
    // run). May ASSERT: a fatal failure ends the test.
    std::function<void(const temp_dir&, int round)> prepare;
    // The command that is killed, run in that directory.
    std::function<std::vector<std::string>(const temp_dir&)> command;
    // The write to kill it at in round `round`.
    std::function<int(int round)> kill_moment;
    // What must hold after the kill, and after the interrupted operation
    // is resumed.
    std::function<void(const kill_round&)> check;
};

// The loop every scenario shares. It prints the seed and the number of
// kills, runs the rounds each in a fresh directory, records every run in
// the figures, and names the seed and k of the first failing round (no
// round runs after it). Call measure() and run() through
// ASSERT_NO_FATAL_FAILURE: an ASSERT in them or in a scenario's lambdas
// ends the test, as it would in the test's body.
class kill_loop {
public:
    kill_loop(const std::string& name, int default_kills)
        : seed(headachemd::test::kill::seed()),
          kills(headachemd::test::kill::count(default_kills)),
          rng(seed) {
        std::cout << "kill-points: " << name << ", " << kills << " kills, HEADACHEMD_KILL_SEED=" << seed
                  << std::endl;
    }

    const std::uint64_t seed;
    const int kills;
    std::mt19937_64 rng;
    figures f;
    int clean_events = -1;  // the writes of the measuring run

    // The reference: the scenario prepared in `dir` and run uninterrupted,
    // its writes counted in clean_events.
    void measure(const kill_scenario& s, const temp_dir& dir) {
        int k = 0;
        watched_run r;
        start(s, dir, -1, k, r);
    }

    // `kills` rounds; with `measure_first`, a measuring round before them
    // (prepared as every round is, and checked as every round is).
    void run(const kill_scenario& s, bool measure_first = false) {
        for (int i = measure_first ? -1 : 0; i < kills && !::testing::Test::HasFailure(); ++i) {
            temp_dir dir;
            int k = 0;
            watched_run r;
            start(s, dir, i, k, r);
            if (::testing::Test::HasFatalFailure()) return;
            if (i >= 0) f.record(r, seed, k);
            s.check({dir, k, r, i < 0});
            if (::testing::Test::HasFailure())
                ADD_FAILURE() << "failed with HEADACHEMD_KILL_SEED=" << seed << ", k " << k;
        }
    }

private:
    // Prepares round `round` in `dir` and runs its command under the watch,
    // killed at the scenario's moment; round -1 is the measuring run, which
    // must exit 0 and sets clean_events.
    void start(const kill_scenario& s, const temp_dir& dir, int round, int& k, watched_run& r) {
        s.prepare(dir, round);
        if (::testing::Test::HasFatalFailure()) return;
        write_watch watch(dir.path());
        ASSERT_TRUE(watch.ok());
        k = round < 0 ? 0 : s.kill_moment(round);
        r = watch.run(s.command(dir), k);
        if (round >= 0) return;
        ASSERT_EQ(r.exit_code, 0) << headachemd::test::read_file(dir / "stderr.txt");
        clean_events = r.events;
        ASSERT_GT(clean_events, 0);
    }
};

std::vector<std::string> sync_once(const temp_dir& dir) {
    return {"sync-once", "--config", (dir / "sync.toml").string()};
}

// 1. Start-up and migrations: a fresh installation's first sync-once,
// killed early (half the kills among the first 40 writes: creating
// headache.db and its migrations) or anywhere in the pass.
TEST(KillPoints, StartupAndMigrationsResumeToTheReference) {
    kill_loop loop("start-up", 10);
    sb::background_server ehr(sandbox_options());
    constexpr int page_size = 10;
    kill_scenario s;
    s.prepare = [&](const temp_dir& dir, int) { install(dir, *ehr, page_size); };
    s.command = sync_once;
    s.kill_moment = [&](int) { return draw_kill_moment(loop.rng, loop.clean_events, 40); };

    // The reference: an uninterrupted first run, whose writes are counted.
    temp_dir ref;
    ASSERT_NO_FATAL_FAILURE(loop.measure(s, ref));
    const auto want = analytics_rows(ref / "headache.db");
    const auto want_version = scalar(ref / "headache.db", "PRAGMA user_version");
    ASSERT_GT(row_count(want), 0u);

    int in_migrations = 0;  // kills before the schema was at its latest version
    s.check = [&](const kill_round& round) {
        const auto& dir = round.dir;
        const int k = round.k;
        const auto config = (dir / "sync.toml").string();
        if (round.run.killed() && (!fs::exists(dir / "headache.db") ||
                                   scalar(dir / "headache.db", "PRAGMA user_version") < want_version))
            ++in_migrations;
        // The files are sound after the kill.
        if (fs::exists(dir / "headache.db")) {
            EXPECT_EQ(integrity(dir / "headache.db"), "ok") << "k " << k;
        }
        EXPECT_EQ(integrity(dir / "vault.db"), "ok") << "k " << k;
        // A clean run resumes: exit 0, every patient ok, the latest schema,
        // the reference's rows.
        expect_all_ok(headachemd::test::run_binary({"sync-once", "--config", config}, dir.path()),
                      patient_count, "the run after a kill at write " + std::to_string(k));
        EXPECT_EQ(scalar(dir / "headache.db", "PRAGMA user_version"), want_version) << "k " << k;
        EXPECT_EQ(integrity(dir / "headache.db"), "ok") << "k " << k;
        expect_rows_equal(analytics_rows(dir / "headache.db"), want, "kill at write " + std::to_string(k));
        // The vault's refresh tokens still work.
        EXPECT_TRUE(needing_reauth(dir / "vault.db", dir / "token.key").empty()) << "k " << k;
        expire_access_tokens(dir / "vault.db");
        expect_all_ok(headachemd::test::run_binary({"sync-once", "--config", config}, dir.path()),
                      patient_count, "the refresh after a kill at write " + std::to_string(k));
    };
    ASSERT_NO_FATAL_FAILURE(loop.run(s));
    print_figures(
        "start-up and migrations (fresh headache.db, first sync-once)", loop.seed, loop.clean_events, loop.f,
        "; " + std::to_string(in_migrations) + " kills before the migrations were done (schema version " +
            std::to_string(want_version) + "), " + std::to_string(row_count(want)) +
            " rows equal to the reference after every resume");
}

// 2. rekey: one transaction re-seals every secret, so after a kill exactly
// one key opens the vault. README "Security model": the start-up check
// names the key id the rows need. With the old key, rekey is simply run
// again; with the new one, the rekey had committed and only the config is
// left to point at the new key.
TEST(KillPoints, RekeyLeavesTheVaultUnderExactlyOneKeyAndResumes) {
    kill_loop loop("rekey", 10);
    sb::background_server ehr(sandbox_options());
    constexpr int page_size = 50;
    int old_key_after = 0, new_key_after = 0, audit_lost = 0;
    kill_scenario s;
    s.prepare = [&](const temp_dir& dir, int) {
        install(dir, *ehr, page_size);
        // A first pass, so that access tokens are sealed in the vault too.
        expect_all_ok(headachemd::test::run_binary(sync_once(dir), dir.path()), patient_count,
                      "the first pass");
        headachemd::store::write_new_token_key(dir / "token-2.key");
    };
    s.command = [](const temp_dir& dir) -> std::vector<std::string> {
        return {"rekey", "--config", (dir / "sync.toml").string(), "--new-key-file",
                (dir / "token-2.key").string()};
    };
    // Half the kills in the second half of the writes: the commit, the
    // checkpoint that clears the -wal file of pages sealed under the old
    // key, and what follows.
    s.kill_moment = [&](int) { return draw_kill_moment_late_half(loop.rng, loop.clean_events); };
    s.check = [&](const kill_round& round) {
        const auto& dir = round.dir;
        const int k = round.k;
        const auto config = (dir / "sync.toml").string();
        const auto old_key = dir / "token.key";
        const auto new_key = dir / "token-2.key";
        const auto vault_path = dir / "vault.db";
        EXPECT_EQ(integrity(vault_path), "ok") << "k " << k;
        // Exactly one key opens the vault: never a mix of rows under both.
        const bool old_opens = vault_opens_with(vault_path, old_key);
        const bool new_opens = vault_opens_with(vault_path, new_key);
        EXPECT_NE(old_opens, new_opens)
            << "k " << k << ": old key opens " << old_opens << ", new key opens " << new_opens;
        if (old_opens) {
            if (!round.measuring) ++old_key_after;
            // Not re-sealed: rekey again.
            const auto again = headachemd::test::run_binary(s.command(dir), dir.path());
            EXPECT_EQ(again.exit_code, 0) << "k " << k << "\n" << again.out << again.err;
        } else if (new_opens) {
            if (!round.measuring) ++new_key_after;
            // Re-sealed: the old key is refused by name of the key id the
            // rows need (the operator's clue), and nothing is written.
            const auto again = headachemd::test::run_binary(s.command(dir), dir.path());
            EXPECT_EQ(again.exit_code, 78) << "k " << k << "\n" << again.out << again.err;
            const auto new_id = headachemd::store::load_token_key(new_key).id();
            EXPECT_NE((again.out + again.err).find(new_id), std::string::npos)
                << "k " << k << ": the refusal does not name the key id " << new_id << "\n"
                << again.err;
        }
        EXPECT_FALSE(vault_opens_with(vault_path, old_key)) << "k " << k;
        ASSERT_TRUE(vault_opens_with(vault_path, new_key)) << "k " << k;
        EXPECT_EQ(integrity(vault_path), "ok") << "k " << k;
        // The audit log records the rekey exactly once, whichever way it
        // was completed: the row commits with the re-sealing (a crash
        // between two commits lost it 2 to 4 times in 10 kills before).
        const auto audit_rows = scalar(vault_path, "SELECT count(*) FROM audit_event WHERE action = 'rekey'");
        if (audit_rows == 0) ++audit_lost;
        EXPECT_EQ(audit_rows, 1) << "k " << k << ": the vault is rekeyed, its audit log says so "
                                 << audit_rows << " times";
        // Point the config at the new key; every refresh token works.
        write_config(dir.path(), *ehr, new_key, page_size);
        expire_access_tokens(vault_path);
        expect_all_ok(headachemd::test::run_binary({"sync-once", "--config", config}, dir.path()),
                      patient_count, "the pass after rekey killed at write " + std::to_string(k));
        EXPECT_TRUE(needing_reauth(vault_path, new_key).empty()) << "k " << k;
    };
    // The first round is the measurement: an uninterrupted rekey.
    ASSERT_NO_FATAL_FAILURE(loop.run(s, true));
    print_figures("rekey", loop.seed, loop.clean_events, loop.f,
                  "; afterwards the vault opened with the old key " + std::to_string(old_key_after) +
                      " times (rekey run again) and with the new key " + std::to_string(new_key_after) +
                      " times; the rekey audit row was lost " + std::to_string(audit_lost) + " times");
}

// 3. unenroll --purge: revoke at the EHR, delete the patient's rows from
// headache.db, remove the enrollment from the vault. Killed anywhere, the
// same command run again finishes the job and touches no other patient.
TEST(KillPoints, UnenrollPurgeResumesAndTouchesNoOtherPatient) {
    kill_loop loop("unenroll", 10);
    sb::background_server ehr(sandbox_options());
    constexpr int page_size = 50;
    const std::string gone = "hmd-2";
    const std::string others = "patient_key IS NOT '" + gone + "'";
    const std::string theirs = "patient_key = '" + gone + "'";
    int nothing_left = 0, audit_lost = 0;
    int before_purge = 0,
        between = 0;  // kills with the rows still there; with the rows gone, the vault row not
    std::map<std::string, std::vector<std::string>> others_before;  // of the round under way
    kill_scenario s;
    s.prepare = [&](const temp_dir& dir, int) {
        install(dir, *ehr, page_size);
        expect_all_ok(headachemd::test::run_binary(sync_once(dir), dir.path()), patient_count,
                      "the first pass");
        others_before = rows_of_tables_with(dir / "headache.db", "patient_key", others, {});
        ASSERT_GT(row_count(rows_of_tables_with(dir / "headache.db", "patient_key", theirs, {})), 0u);
    };
    s.command = [&](const temp_dir& dir) -> std::vector<std::string> {
        return {"unenroll", gone, "--config", (dir / "sync.toml").string(), "--purge"};
    };
    // Half the kills in the second half of the writes: the purge's
    // commit and checkpoint, the vault's removal, the audit row.
    s.kill_moment = [&](int) { return draw_kill_moment_late_half(loop.rng, loop.clean_events); };
    s.check = [&](const kill_round& round) {
        const auto& dir = round.dir;
        const int k = round.k;
        const auto config = (dir / "sync.toml").string();
        const auto key_file = dir / "token.key";
        const auto db_path = dir / "headache.db";
        const auto vault_path = dir / "vault.db";
        EXPECT_EQ(integrity(db_path), "ok") << "k " << k;
        EXPECT_EQ(integrity(vault_path), "ok") << "k " << k;
        // The vault's rows of the patient, but the audit log (which keeps
        // the history of the unenrollment on purpose).
        const auto vault_rows = [&] {
            auto rows = rows_of_tables_with(vault_path, "patient_key", theirs, {});
            rows.erase("audit_event");
            return row_count(rows);
        };
        const bool killed = round.run.killed();
        const bool rows_left = row_count(rows_of_tables_with(db_path, "patient_key", theirs, {})) > 0;
        const bool left = vault_rows() > 0 || rows_left;
        if (killed && rows_left) ++before_purge;
        if (killed && !rows_left && left) ++between;
        if (killed) {
            const auto again = headachemd::test::run_binary(s.command(dir), dir.path());
            if (left) {
                EXPECT_EQ(again.exit_code, 0) << "k " << k << "\n" << again.out << again.err;
                ++loop.f.resumed;
            } else {
                // The kill came after the last row was gone: the command
                // finds nothing to do and says so (exit 64, nothing changed).
                ++nothing_left;
                EXPECT_EQ(again.exit_code, 64) << "k " << k << "\n" << again.out << again.err;
            }
        }
        EXPECT_EQ(row_count(rows_of_tables_with(db_path, "patient_key", theirs, {})), 0u) << "k " << k;
        EXPECT_EQ(vault_rows(), 0u) << "k " << k;
        // The audit log records the unenrollment (README "Audit log").
        const auto unenroll_events =
            scalar(vault_path, "SELECT count(*) FROM audit_event WHERE action = 'unenroll' AND " + theirs);
        if (unenroll_events == 0) ++audit_lost;
        EXPECT_GE(unenroll_events, 1)
            << "k " << k << ": the patient is unenrolled, the audit log does not say so";
        EXPECT_EQ(integrity(db_path), "ok") << "k " << k;
        // The other patients' rows, byte for byte (ingested_at included).
        expect_rows_equal(rows_of_tables_with(db_path, "patient_key", others, {}), others_before,
                          "the other patients after a kill at write " + std::to_string(k));
        // Their tokens work, and the unenrolled patient stays gone.
        write_config(dir.path(), *ehr, key_file, page_size, gone);
        expire_access_tokens(vault_path);
        expect_all_ok(headachemd::test::run_binary({"sync-once", "--config", config}, dir.path()),
                      patient_count - 1, "the pass after unenroll killed at write " + std::to_string(k));
        EXPECT_EQ(row_count(rows_of_tables_with(db_path, "patient_key", theirs, {})), 0u) << "k " << k;
        EXPECT_TRUE(needing_reauth(vault_path, key_file).empty()) << "k " << k;
    };
    ASSERT_NO_FATAL_FAILURE(loop.run(s, true));
    print_figures(
        "unenroll --purge", loop.seed, loop.clean_events, loop.f,
        "; " + std::to_string(before_purge) + " kills before the purge committed, " +
            std::to_string(between) + " between the purge and the vault's removal; " +
            std::to_string(loop.f.resumed) + " resumed by running it again (exit 0), " +
            std::to_string(nothing_left) +
            " killed after the last row was gone (exit 64 on the rerun); the unenroll audit row was lost " +
            std::to_string(audit_lost) + " times");
}

// 4. ingest: each Bundle is written in one transaction, with its JSON kept
// (--store-raw, schema 12: the rows point into raw_frame rows written in
// the same transaction). After a kill the database holds whole Bundles
// only (each Synthea bundle is one patient: every patient's rows are all
// there or none), every row and every JSON frame equal to the reference's,
// so no row points at a frame that is not there; ingesting again completes
// to exactly the reference.
TEST(KillPoints, IngestLeavesWholeBundlesAndResumesToTheReference) {
    HEADACHEMD_REQUIRE_SHARED("synthea-r4/patients");
    kill_loop loop("ingest", 10);
    // The three smallest patient bundles, in name order: a few hundred rows.
    std::vector<std::pair<std::uintmax_t, fs::path>> sized;
    for (const auto& e : fs::directory_iterator(headachemd::test::shared_data() / "synthea-r4" / "patients"))
        if (e.is_regular_file() && e.path().extension() == ".json")
            sized.emplace_back(e.file_size(), e.path());
    ASSERT_GE(sized.size(), 3u);
    std::sort(sized.begin(), sized.end());
    std::vector<std::string> inputs;
    for (std::size_t i = 0; i < 3; ++i) inputs.push_back(sized[i].second.string());
    std::sort(inputs.begin(), inputs.end());

    const auto ingest_args = [&](const temp_dir& dir, const std::vector<std::string>& files) {
        std::vector<std::string> a = {"ingest",
                                      "--db",
                                      (dir / "headache.db").string(),
                                      "--source",
                                      "synthea",
                                      "--token-key-file",
                                      (dir / "token.key").string(),
                                      "--vault",
                                      (dir / "vault.db").string(),
                                      "--identifiers",
                                      "minimal",
                                      "--store-raw"};
        a.insert(a.end(), files.begin(), files.end());
        return a;
    };
    // The JSON frames (raw_frame, the one table with a `sizes` column), as
    // text rows: zstd gives the same bytes for the same page.
    const auto frames = [](const fs::path& db_path) {
        return headachemd::test::kill::rows_of_tables_with(db_path, "sizes", "", {});
    };
    // Rows pointing at a frame that is not there, or frames whose count of
    // resources is not the rows pointing into them.
    const auto raw_out_of_step = [](const fs::path& db_path) {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        std::string pointing;
        for (const auto& t : tables_with_column(db, "raw_frame"))
            if (t != "raw_frame")
                pointing += std::string(pointing.empty() ? "" : " UNION ALL ") +
                            "SELECT raw_frame AS f FROM \"" + t + "\" WHERE raw_frame IS NOT NULL";
        if (pointing.empty()) return std::int64_t{0};  // killed before schema 12 was in place: no pointers
        SQLite::Statement q(
            db, "WITH p AS (" + pointing +
                    ") SELECT (SELECT count(*) FROM p WHERE f NOT IN (SELECT frame FROM raw_frame)) "
                    "+ (SELECT count(*) FROM raw_frame r WHERE resources <> (SELECT count(*) FROM "
                    "p WHERE f = r.frame))");
        q.executeStep();
        return q.getColumn(0).getInt64();
    };
    // A template: the vault with its pseudonymization key, and a migrated,
    // empty headache.db (an ingest of an empty directory). Every run starts
    // from a copy of its vault, so that the hashed patient keys are the
    // same; half of them from its headache.db too, so that their kill
    // moments fall among the Bundles' writes rather than the migrations.
    temp_dir tmpl;
    headachemd::test::token_key_file(tmpl.path());
    fs::create_directory(tmpl / "empty");
    {
        const auto r =
            headachemd::test::run_binary(ingest_args(tmpl, {(tmpl / "empty").string()}), tmpl.path());
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    const auto start_from_template = [&](const temp_dir& dir, bool with_db) {
        fs::copy_file(tmpl / "token.key", dir / "token.key");
        fs::copy_file(tmpl / "vault.db", dir / "vault.db");
        fs::permissions(dir / "vault.db", fs::perms::owner_read | fs::perms::owner_write);
        if (with_db) fs::copy_file(tmpl / "headache.db", dir / "headache.db");
    };
    // The references, whose writes are counted: into the migrated
    // database, and into none.
    temp_dir ref;
    start_from_template(ref, true);
    write_watch ref_watch(ref.path());
    ASSERT_TRUE(ref_watch.ok());
    const auto ref_run = ref_watch.run(ingest_args(ref, inputs), 0);
    ASSERT_EQ(ref_run.exit_code, 0) << headachemd::test::read_file(ref / "stderr.txt");
    const int data_events = ref_run.events;
    const auto want = analytics_rows(ref / "headache.db", true);
    const auto want_frames = frames(ref / "headache.db");
    ASSERT_FALSE(want_frames.at("raw_frame").empty());
    ASSERT_EQ(raw_out_of_step(ref / "headache.db"), 0);
    int fresh_events = 0;
    {
        temp_dir fresh;
        start_from_template(fresh, false);
        write_watch w(fresh.path());
        ASSERT_TRUE(w.ok());
        const auto r = w.run(ingest_args(fresh, inputs), 0);
        ASSERT_EQ(r.exit_code, 0) << headachemd::test::read_file(fresh / "stderr.txt");
        fresh_events = r.events;
        expect_rows_equal(analytics_rows(fresh / "headache.db", true), want, "ingest into a new database");
    }
    // Rows per patient key (each bundle is one patient), over every table.
    const auto per_patient = [](const fs::path& db_path) {
        std::map<std::string, long long> out;
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        for (const auto& t : tables_with_column(db, "patient_key")) {
            SQLite::Statement q(db, "SELECT patient_key, count(*) FROM \"" + t + "\" GROUP BY 1");
            while (q.executeStep()) out[q.getColumn(0).getString()] += q.getColumn(1).getInt64();
        }
        return out;
    };
    const auto want_per_patient = per_patient(ref / "headache.db");
    ASSERT_EQ(want_per_patient.size(), 3u);

    int bundles_seen = 0;
    // Even rounds start from the migrated database, odd ones from none.
    const auto migrated = [](int round) { return round % 2 == 0; };
    kill_scenario s;
    s.prepare = [&](const temp_dir& dir, int round) { start_from_template(dir, migrated(round)); };
    s.command = [&](const temp_dir& dir) { return ingest_args(dir, inputs); };
    s.kill_moment = [&](int round) {
        return draw_kill_moment(loop.rng, migrated(round) ? data_events : fresh_events);
    };
    s.check = [&](const kill_round& round) {
        const auto& dir = round.dir;
        const int k = round.k;
        const auto db_path = dir / "headache.db";
        if (fs::exists(db_path) && fs::file_size(db_path) > 0) {
            EXPECT_EQ(integrity(db_path), "ok") << "k " << k;
            // Whole bundles only, each row as the reference has it.
            const auto got = per_patient(db_path);
            for (const auto& [patient, n] : got) {
                const auto it = want_per_patient.find(patient);
                EXPECT_TRUE(it != want_per_patient.end() && it->second == n)
                    << "k " << k << ": a patient has " << n << " rows, the reference "
                    << (it == want_per_patient.end() ? 0 : it->second) << ": a bundle written in part";
            }
            bundles_seen += static_cast<int>(got.size());
            auto rows = analytics_rows(db_path, true);
            rows.merge(frames(db_path));
            for (const auto& [table, have] : rows) {
                const auto& all = table == "raw_frame" ? want_frames.at(table) : want.at(table);
                for (const auto& row : have)
                    EXPECT_TRUE(std::binary_search(all.begin(), all.end(), row))
                        << "k " << k << ": a row of " << table << " the reference does not have";
            }
            EXPECT_EQ(raw_out_of_step(db_path), 0) << "k " << k << ": rows and JSON frames out of step";
        }
        EXPECT_EQ(integrity(dir / "vault.db"), "ok") << "k " << k;
        const auto again = headachemd::test::run_binary(ingest_args(dir, inputs), dir.path());
        EXPECT_EQ(again.exit_code, 0) << "k " << k << "\n" << again.out << again.err;
        EXPECT_EQ(integrity(db_path), "ok") << "k " << k;
        expect_rows_equal(analytics_rows(db_path, true), want,
                          "ingest after a kill at write " + std::to_string(k));
        expect_rows_equal(frames(db_path), want_frames,
                          "JSON frames after a kill at write " + std::to_string(k));
    };
    ASSERT_NO_FATAL_FAILURE(loop.run(s));
    print_figures("ingest of 3 Synthea bundles", loop.seed, fresh_events, loop.f,
                  " into a new database, " + std::to_string(data_events) + " into a migrated one; " +
                      std::to_string(bundles_seen) + " whole bundles found committed after the kills, " +
                      std::to_string(row_count(want)) + " rows equal to the reference after every resume");
}

// 5. Materialized views (issue 16 item 3): a view's rows commit with the
// page that brought the resource, and the back-fill from resource_raw
// commits its rows with the place it reached. Three Synthea bundles are
// ingested with --store-raw before the [[view]] is configured; the next
// sync-once back-fills them at its start, then pulls the sandbox's
// patients with the view in place. It is killed anywhere in that run (half
// the kills among its first writes: the view table and the back-fill).
// After every kill each stored resource has exactly the reference's view
// rows (a synthea resource the back-fill has not reached yet may have none
// while the view is pending), under its stored patient_key, and no view
// row names a resource that is not stored; the next sync-once completes
// the view to the reference's rows.
TEST(KillPoints, ViewRowsStayInStepWithTheirResourcesThroughPagesAndBackfill) {
    HEADACHEMD_REQUIRE_SHARED("synthea-r4/patients");
    kill_loop loop("views", 6);
    sb::background_server ehr(sandbox_options());
    constexpr int page_size = 10;
    std::vector<std::pair<std::uintmax_t, fs::path>> sized;
    for (const auto& e : fs::directory_iterator(headachemd::test::shared_data() / "synthea-r4" / "patients"))
        if (e.is_regular_file() && e.path().extension() == ".json")
            sized.emplace_back(e.file_size(), e.path());
    ASSERT_GE(sized.size(), 3u);
    std::sort(sized.begin(), sized.end());

    // An installation whose headache.db holds the bundles with their JSON
    // ("minimal": the only rule under which resource_raw is kept), and
    // whose config then names the view.
    kill_scenario s;
    s.prepare = [&](const temp_dir& dir, int) {
        install(dir, *ehr, page_size);
        std::vector<std::string> ingest = {"ingest",
                                           "--db",
                                           (dir / "headache.db").string(),
                                           "--source",
                                           "synthea",
                                           "--token-key-file",
                                           (dir / "token.key").string(),
                                           "--vault",
                                           (dir / "vault.db").string(),
                                           "--identifiers",
                                           "minimal",
                                           "--store-raw"};
        for (std::size_t i = 0; i < 3; ++i) ingest.push_back(sized[i].second.string());
        const auto r = headachemd::test::run_binary(ingest, dir.path());
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        headachemd::test::write_file(dir / "obs.json", R"({"resourceType": "ViewDefinition",
            "resource": "Observation", "status": "active",
            "select": [{"column": [{"name": "obs_id", "path": "id"}, {"name": "status", "path": "status"},
                                   {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}]},
                       {"forEach": "code.coding", "column": [{"name": "code", "path": "code"}]}]})");
        fs::permissions(dir / "obs.json", fs::perms::owner_read | fs::perms::owner_write);
        std::ofstream(dir / "sync.toml", std::ios::app)
            << "\n[privacy]\nidentifiers = \"minimal\"\n\n[[view]]\n"
            << "name = \"obs\"\nfile = \"" << (dir / "obs.json").string() << "\"\n";
    };
    // View rows per stored resource ("source/id"), without _patient_key
    // (the ingested patients' keys are hashes under each vault's own key;
    // it is checked against the typed row instead).
    const auto view_rows = [](const fs::path& db_path) {
        std::map<std::string, std::vector<std::string>> out;
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(
            db, "SELECT _source || '/' || _resource_id, obs_id, status, value, code FROM view_obs");
        while (q.executeStep()) {
            std::string row;
            for (int c = 1; c < 5; ++c)
                row += (q.getColumn(c).isNull() ? "NULL" : q.getColumn(c).getString()) + "|";
            out[q.getColumn(0).getString()].push_back(row);
        }
        for (auto& [k, v] : out) std::sort(v.begin(), v.end());
        return out;
    };
    const auto view_state = [](const fs::path& db_path) {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(
            db,
            "SELECT backfill_state, coalesce(backfill_after_id, ''), backfilled_at IS NOT NULL "
            "FROM view_definition WHERE name = 'obs'");
        return q.executeStep() ? q.getColumn(0).getString() + "|" + q.getColumn(1).getString() + "|" +
                                     q.getColumn(2).getString()
                               : std::string("none");
    };
    // Stored, not deleted Observations as "source/id", and view rows whose
    // resource is not one of them or whose _patient_key is not its row's.
    const auto stored = [](const fs::path& db_path) {
        std::set<std::string> out;
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, "SELECT source || '/' || id FROM observation WHERE deleted_at IS NULL");
        while (q.executeStep()) out.insert(q.getColumn(0).getString());
        return out;
    };
    const auto orphans = [](const fs::path& db_path) {
        return scalar(db_path,
                      "SELECT count(*) FROM view_obs v WHERE NOT EXISTS (SELECT 1 FROM observation o WHERE "
                      "o.source = v._source AND o.id = v._resource_id AND o.deleted_at IS NULL AND "
                      "o.patient_key IS v._patient_key)");
    };

    s.command = sync_once;
    s.kill_moment = [&](int) { return draw_kill_moment(loop.rng, loop.clean_events, 30); };

    // The reference: an uninterrupted sync-once, whose writes are counted.
    temp_dir ref;
    ASSERT_NO_FATAL_FAILURE(loop.measure(s, ref));
    const auto want = view_rows(ref / "headache.db");
    ASSERT_EQ(view_state(ref / "headache.db"), "complete||1");
    ASSERT_EQ(orphans(ref / "headache.db"), 0);
    const auto want_stored = stored(ref / "headache.db");
    std::size_t from_files = 0, from_ehr = 0;
    // (A resource may give no row: one without code.coding.)
    for (const auto& key : want_stored) ++(key.starts_with("synthea/") ? from_files : from_ehr);
    ASSERT_GT(from_files, 0u);
    ASSERT_GT(from_ehr, 0u);
    ASSERT_TRUE(
        std::any_of(want.begin(), want.end(), [](const auto& r) { return r.first.starts_with("synthea/"); }));
    ASSERT_TRUE(
        std::any_of(want.begin(), want.end(), [](const auto& r) { return r.first.starts_with("sandbox/"); }));

    int mid_backfill = 0;  // kills that left the view pending
    s.check = [&](const kill_round& round) {
        const auto& dir = round.dir;
        const int k = round.k;
        const auto config = (dir / "sync.toml").string();
        const auto db_path = dir / "headache.db";
        EXPECT_EQ(integrity(db_path), "ok") << "k " << k;
        // The invariant after the kill.
        const std::string state = view_state(db_path);
        if (state != "none") {
            const bool complete = state.starts_with("complete");
            if (!complete) ++mid_backfill;
            const auto got = view_rows(db_path);
            const auto have = stored(db_path);
            for (const auto& key : have) {
                const auto w = want.find(key);
                const auto g = got.find(key);
                const std::vector<std::string> none;
                const auto& expected = w == want.end() ? none : w->second;
                const auto& actual = g == got.end() ? none : g->second;
                // A synthea resource the back-fill has not reached yet has none.
                if (actual.empty() && !complete && key.starts_with("synthea/")) continue;
                EXPECT_EQ(actual, expected)
                    << "k " << k << ": " << key << " has view rows other than the reference's (state "
                    << state << ")";
            }
            EXPECT_EQ(orphans(db_path), 0) << "k " << k << ": a view row names a resource not stored";
        }
        // Resume: the reference's view, complete.
        expect_all_ok(headachemd::test::run_binary({"sync-once", "--config", config}, dir.path()),
                      patient_count, "the run after a kill at write " + std::to_string(k));
        EXPECT_EQ(view_state(db_path), "complete||1") << "k " << k;
        EXPECT_EQ(view_rows(db_path), want) << "k " << k;
        EXPECT_EQ(orphans(db_path), 0) << "k " << k;
    };
    ASSERT_NO_FATAL_FAILURE(loop.run(s));
    print_figures("views (back-fill of 3 ingested bundles, then a sync-once)", loop.seed, loop.clean_events,
                  loop.f,
                  "; " + std::to_string(mid_backfill) + " kills left the view pending, " +
                      std::to_string(from_files) + " ingested and " + std::to_string(from_ehr) +
                      " pulled Observations with the reference's rows after every resume");
}

// 6. Bulk Data export (issue 15): `export` is SIGKILLed at random writes
// to headache.db and vault.db, again and again, each run resuming what the
// last left (a job of a few dozen files: the sandbox splits each type's
// resources over files of 8). Whenever a run starts with an unfinished job
// whose status URL is recorded it must not kick off again, and after each
// job ends every table holds exactly what the sandbox holds: no row lost,
// none twice. A kill between the server's 202 and the record of its status
// URL is the one window no client can close (bulk_job.hpp): that job is
// lost to us and the next run kicks off again; such kills are counted and
// printed, and they are the only second kick-offs allowed. Half the kill
// moments fall among a run's first writes, half anywhere in what is left of
// the job, so that jobs end several times per test, in every phase (each
// new job waits 10 s for its first poll, which bounds how many fit).
// HEADACHEMD_KILL_VERBOSE=1 prints each run: its kill moment, writes,
// exit, kick-offs, and the job's phase and files after it.
TEST(KillPoints, BulkExportResumesWithoutASecondKickoffOrALostRow) {
    const std::uint64_t seed = headachemd::test::kill::seed();
    const int wanted = headachemd::test::kill::count(50);
    std::mt19937_64 rng(seed);
    std::cout << "kill-points: bulk export, " << wanted << " kills, HEADACHEMD_KILL_SEED=" << seed
              << std::endl;
    const std::map<std::string, std::string> table_of = {{"Patient", "patient"},
                                                         {"Condition", "condition"},
                                                         {"MedicationRequest", "medication_request"},
                                                         {"Encounter", "encounter"},
                                                         {"Observation", "observation"},
                                                         {"Procedure", "procedure"},
                                                         {"Appointment", "appointment"}};
    // A new job exports everything (--since the epoch), so that every job
    // has the clinic's rows to write; a job left unfinished is resumed
    // (--since is refused for it).
    const auto export_args = [](const temp_dir& dir, bool resume = false) {
        std::vector<std::string> a{"export", "--config", (dir / "sync.toml").string()};
        if (!resume) a.insert(a.end(), {"--since", "1970-01-01T00:00:00Z"});
        return a;
    };

    // A clean job's writes, on a clinic of its own with the same data: its
    // second job, as most of the rounds below run on databases that exist
    // (a first run also creates and migrates them).
    int clean = 0;
    {
        temp_dir ref;
        auto ref_ehr = headachemd::test::start_bulk_clinic(ref.path(), 6, 0, {}, 8);
        ASSERT_EQ(headachemd::test::run_binary(export_args(ref, true), ref.path()).exit_code, 0);
        write_watch w(ref.path());
        ASSERT_TRUE(w.ok());
        const auto r = w.run(export_args(ref), 0);
        ASSERT_EQ(r.exit_code, 0) << headachemd::test::read_file(ref / "stderr.txt");
        clean = r.events;
        ASSERT_GT(clean, 20);
    }

    temp_dir dir;
    auto ehr = headachemd::test::start_bulk_clinic(dir.path(), 6, 0, {}, 8);
    const auto want = (*ehr)->count_by_type();
    const auto key_file = dir / "token.key";
    // The job the vault records, or nullopt (before the first run, the
    // vault does not exist).
    const auto recorded = [&]() -> std::optional<headachemd::sync::bulk_job_record> {
        if (!fs::exists(dir / "vault.db")) return std::nullopt;
        return with_vault(dir / "vault.db", key_file, [](headachemd::store::vault& v) {
            return headachemd::sync::load_bulk_job(v.sql(), "sandbox");
        });
    };
    const auto expect_sandbox_rows = [&](const std::string& when) {
        for (const auto& [type, n] : want) {
            const auto t = table_of.find(type);
            if (t == table_of.end()) continue;
            EXPECT_EQ(scalar(dir / "headache.db",
                             "SELECT count(*) FROM " + t->second + " WHERE deleted_at IS NULL"),
                      static_cast<long long>(n))
                << type << " " << when;
        }
    };

    // Both databases made and migrated first (`status` opens them): kills
    // during creation are scenario 1's, and a fresh headache.db's
    // migrations take more writes than the kill moments here reach.
    ASSERT_EQ(headachemd::test::run_binary({"status", "--config", (dir / "sync.toml").string()}, dir.path())
                  .exit_code,
              0);
    write_watch watch(dir.path());
    ASSERT_TRUE(watch.ok());
    int kills = 0, runs = 0, jobs_done = 0, resumed_runs = 0, lost_kickoffs = 0;
    while (kills < wanted && runs < wanted * 4 && !::testing::Test::HasFailure()) {
        const auto before = recorded();
        const bool unfinished = before && !headachemd::sync::ended(before->phase);
        const bool resumable = unfinished && before->status_url;
        const auto kickoffs_before = (*ehr)->stats().bulk_kickoffs;
        // Half the kills among a run's first writes (opening, the kick-off
        // and its record, the first file), half anywhere in what is left of
        // the job (a clean job's writes in proportion to its files not yet
        // applied, up to twice that until four jobs ended, so that jobs end in
        // every phase, several times per test).
        int left = clean;
        if (unfinished && before->manifest && !before->manifest->files.empty())
            left = 12 + static_cast<int>(
                            static_cast<long long>(clean) *
                            static_cast<long long>(before->manifest->files.size() - before->applied.size()) /
                            static_cast<long long>(before->manifest->files.size()));
        const int k = std::uniform_int_distribution<int>(0, 1)(rng) == 0
                          ? std::uniform_int_distribution<int>(1, 12)(rng)
                          : std::uniform_int_distribution<int>(1, jobs_done < 4 ? 2 * left : left)(rng);
        const auto r = watch.run(export_args(dir, unfinished), k);
        ++runs;
        resumed_runs += resumable ? 1 : 0;
        const auto kicked = (*ehr)->stats().bulk_kickoffs - kickoffs_before;
        const auto after = recorded();
        if (resumable) {
            EXPECT_EQ(kicked, 0u) << "k " << k << ": a recorded job was kicked off again";
        }
        EXPECT_LE(kicked, 1u) << "k " << k;
        // A kick-off the server took whose status URL was never recorded.
        const bool recorded_new =
            after && after->status_url && (!before || before->status_url != after->status_url);
        if (kicked == 1 && !recorded_new) ++lost_kickoffs;
        EXPECT_EQ(integrity(dir / "vault.db"), "ok") << "k " << k;
        if (fs::exists(dir / "headache.db")) {
            EXPECT_EQ(integrity(dir / "headache.db"), "ok") << "k " << k;
        }
        if (std::getenv("HEADACHEMD_KILL_VERBOSE"))
            std::cout << "run " << runs << " k " << k << " events " << r.events << " exit " << r.exit_code
                      << " kicked " << kicked << " phase " << (after ? to_string(after->phase) : "none")
                      << " files " << (after ? after->applied.size() : 0) << "/"
                      << (after && after->manifest ? after->manifest->files.size() : 0) << "\n";
        // A job that ended in this run (killed after its end, or not):
        // every row the sandbox holds is stored, once.
        const bool ended = after && after->phase == headachemd::sync::bulk_phase::done &&
                           (!before || before->phase != headachemd::sync::bulk_phase::done ||
                            before->status_url != after->status_url);
        if (ended) {
            ++jobs_done;
            expect_sandbox_rows("after job " + std::to_string(jobs_done));
        }
        if (r.killed()) {
            ++kills;
            continue;
        }
        EXPECT_EQ(r.exit_code, 0) << "k " << k << "\n" << headachemd::test::read_file(dir / "stderr.txt");
        ASSERT_TRUE(after && after->phase == headachemd::sync::bulk_phase::done) << "k " << k;
    }
    EXPECT_GE(kills, wanted);
    // The last job to its end (resumed, or a new one), and the rows once more.
    const auto last = headachemd::test::run_binary(export_args(dir, true), dir.path());
    EXPECT_EQ(last.exit_code, 0) << last.out << last.err;
    expect_sandbox_rows("at the end");
    EXPECT_EQ(scalar(dir / "headache.db", "SELECT count(*) FROM patient"), 6);
    EXPECT_LE(lost_kickoffs, kills / 5) << "the kick-off window is a few writes wide; this many is a bug";
    std::cout << "kill-points: bulk export, seed " << seed << ": " << kills << " kills in " << runs
              << " runs (" << resumed_runs << " resumed a recorded job and none kicked off again), "
              << jobs_done + 1 << " jobs ended with every row the sandbox holds, a clean job made " << clean
              << " writes; " << lost_kickoffs
              << " kills fell between the server's 202 and the record of its status URL (a second "
                 "kick-off, the window no client closes)\n";
}

}  // namespace
