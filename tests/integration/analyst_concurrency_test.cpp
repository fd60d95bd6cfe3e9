// Analysts never block the daemon, and the daemon never blocks analysts
// (issue 6, item 5; docs/analyst/guide.md "Reading while the daemon runs").
//
// The deployment is modelled as the systemd unit and tmpfiles.d make it:
// the daemon runs as its own user (not root), the state directory is 0750
// daemon:analysts, headache.db is 0640 daemon:analysts, and the analyst is a
// third user who is only in the analysts' group, so may read but never
// write the database, its -wal and -shm, or the directory. The daemon's
// primary group here is another one than the analysts' (as with
// `sudo -u headachemd`), the stricter case: the -wal and -shm files it
// creates must still be readable by the group.
//
// Both the daemon and the analyst are separate processes: this test binary
// is started again with `--as-another-user`, and before main() (and before
// any thread exists) it drops to that user and then either executes the
// real headachemd-sync or becomes a reader that answers commands on stdin.
// The reader holds one read transaction (a snapshot) while the daemon runs
// passes. Everything is synchronized on lines read from the processes,
// never by sleeping. Setting another user needs root: the tests skip
// without it (CI runs as root).
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using headachemd::test::temp_dir;

constexpr const char* child_flag = "--as-another-user";

// ---- the child side (runs before main, in a fresh single-threaded process) ----

void say(const std::string& line) {
    const std::string s = line + "\n";
    std::size_t done = 0;
    while (done < s.size()) {
        const auto n = ::write(1, s.data() + done, s.size() - done);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

bool read_command(std::string& line) {
    line.clear();
    char c = 0;
    for (;;) {
        const auto n = ::read(0, &c, 1);
        if (n <= 0) return false;
        if (c == '\n') return true;
        line.push_back(c);
    }
}

// An analyst's session: opened read-only, as docs/analyst/guide.md tells analysts to.
// Commands: begin (BEGIN, then the count, which pins the snapshot), count,
// commit, close. Each answer is one line: "count N", "ok", "closed" or
// "error MESSAGE".
int run_reader(const char* path) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        say(std::string("error open: ") + (db ? sqlite3_errmsg(db) : "out of memory"));
        sqlite3_close(db);
        db = nullptr;
    }
    // No busy timeout: a reader that had to wait for the daemon would fail
    // here with SQLITE_BUSY instead of waiting unseen.
    auto count = [&db] {
        if (!db) return std::string("error not open");
        sqlite3_stmt* q = nullptr;
        std::string out;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM condition", -1, &q, nullptr) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            out = "count " + std::to_string(sqlite3_column_int(q, 0));
        else
            out = std::string("error ") + sqlite3_errmsg(db);
        sqlite3_finalize(q);
        return out;
    };
    auto exec = [&db](const char* sql) {
        if (!db) return std::string("error not open");
        return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK
                   ? std::string("ok")
                   : std::string("error ") + sqlite3_errmsg(db);
    };
    std::string cmd;
    while (read_command(cmd)) {
        if (cmd == "begin") {
            const auto r = exec("BEGIN");
            say(r == "ok" ? count() : r);
        } else if (cmd == "count") {
            say(count());
        } else if (cmd == "commit") {
            say(exec("COMMIT"));
        } else if (cmd == "close") {
            sqlite3_close(db);
            db = nullptr;
            say("closed");
        } else {
            say("error unknown command " + cmd);
        }
    }
    sqlite3_close(db);
    return 0;
}

// argv: self --as-another-user UID GID GROUP[,GROUP…] (exec PROGRAM ARGS… | reader DB)
// glibc passes argc/argv to ELF constructors; this one runs before
// GoogleTest's main() and never returns when the flag is there.
[[gnu::constructor]] void become_another_user(int argc, char** argv, char**) {
    if (argc < 7 || std::strcmp(argv[1], child_flag) != 0) return;
    const auto uid = static_cast<uid_t>(std::strtoul(argv[2], nullptr, 10));
    const auto gid = static_cast<gid_t>(std::strtoul(argv[3], nullptr, 10));
    std::vector<gid_t> groups;
    for (char* p = argv[4]; *p;) {
        char* end = nullptr;
        groups.push_back(static_cast<gid_t>(std::strtoul(p, &end, 10)));
        p = *end == ',' ? end + 1 : end;
    }
    // Groups first, then the gid, then the uid: after setuid nothing else
    // may be changed. setuid(0) must then fail, or privileges were kept.
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 ||
        ::setuid(0) == 0) {
        std::fprintf(stderr, "cannot become uid %u gid %u: %s\n", uid, gid, std::strerror(errno));
        std::_Exit(125);
    }
    // setuid made the process undumpable, which closes its own /proc/self
    // to it; a sanitizer runtime reads /proc/self/maps to report.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (std::strcmp(argv[5], "exec") == 0) {
        ::execv(argv[6], argv + 6);
        std::fprintf(stderr, "cannot run %s: %s\n", argv[6], std::strerror(errno));
        std::_Exit(126);
    }
    if (std::strcmp(argv[5], "reader") == 0) std::_Exit(run_reader(argv[6]));
    std::_Exit(2);
}

// ---- the test side ----------------------------------------------------------------

// Ids no account on a test machine uses (the analyst is `nobody`).
constexpr uid_t daemon_uid = 64201;
constexpr gid_t daemon_gid = 64203;    // the daemon user's own group
constexpr gid_t analysts_gid = 64202;  // headachemd-analysts
constexpr uid_t analyst_uid = 65534;
constexpr gid_t analyst_gid = 65534;

struct identity {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
};
const identity daemon_user{daemon_uid, daemon_gid, {daemon_gid, analysts_gid}};
const identity analyst_user{analyst_uid, analyst_gid, {analysts_gid}};

struct child {
    pid_t pid = -1;
    int in = -1;   // write end of its stdin, when piped
    int out = -1;  // read end of its stdout (reader) or stderr (daemon), when piped
};

// Starts this test binary again as `who`, doing `what` ("exec" or "reader")
// with `args`. `piped` 1 or 2: that stream comes back on child::out (and
// stdin is piped too for a reader); the others go to files in `scratch`.
child spawn_as(const identity& who, const std::string& what, const std::vector<std::string>& args, int piped,
               const fs::path& scratch) {
    child c;
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1};
    const bool pipe_in = what == "reader";
    if ((pipe_in && ::pipe2(in_p, O_CLOEXEC) != 0) || (piped && ::pipe2(out_p, O_CLOEXEC) != 0)) return c;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipe_in)
        posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    // Files and pipes go through the log capture, so the daemon's lines here
    // are in the suite's log scan too (tests/support/log_capture.hpp). The
    // files are opened by this root process, before the child drops its ids.
    std::string files[2];
    for (int fd : {1, 2}) {
        const char* stream = fd == 1 ? "stdout" : "stderr";
        if (fd == piped) {
            posix_spawn_file_actions_adddup2(&fa, out_p[1], fd);
            headachemd::test::capture_pipe(out_p[0], stream);
        } else {
            files[fd - 1] =
                headachemd::test::capture_output(scratch / (std::string(stream) + ".txt"), stream).string();
            posix_spawn_file_actions_addopen(&fa, fd, files[fd - 1].c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                             0600);
        }
    }
    std::string groups;
    for (gid_t g : who.groups) groups += (groups.empty() ? "" : ",") + std::to_string(g);
    std::vector<std::string> all{fs::read_symlink("/proc/self/exe").string(),
                                 child_flag,
                                 std::to_string(who.uid),
                                 std::to_string(who.gid),
                                 groups,
                                 what};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    for (int fd : {in_p[0], out_p[1]})
        if (fd >= 0) ::close(fd);
    c.in = in_p[1];
    c.out = out_p[0];
    if (rc == 0) c.pid = pid;
    return c;
}

// Kills and reaps a child a failed assertion left running.
struct reaper {
    child& c;
    ~reaper() {
        if (c.in >= 0) ::close(c.in);
        if (c.pid > 0) {
            ::kill(c.pid, SIGKILL);
            headachemd::test::wait_exit(c.pid);
        }
        if (c.out >= 0) ::close(c.out);
    }
};

// One command to the analyst's reader and its one-line answer.
std::string ask(child& reader, const std::string& command) {
    const std::string line = command + "\n";
    if (::write(reader.in, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return "(no stdin)";
    std::string seen;
    auto answer = headachemd::test::read_line_containing(reader.out, "", seen);
    return answer ? *answer : "(no answer: " + seen + ")";
}

int count_of(const std::string& answer) {
    return answer.rfind("count ", 0) == 0 ? std::stoi(answer.substr(6)) : -1;
}

std::uintmax_t size_of(const fs::path& p) {
    std::error_code ec;
    const auto n = fs::file_size(p, ec);
    return ec ? static_cast<std::uintmax_t>(-1) : n;
}

struct analyst_fixture : ::testing::Test {
    temp_dir scratch;  // the children's output files (root only)
    temp_dir home;     // the daemon's state directory
    temp_dir bin;      // a copy of the binary the daemon's user may run
    std::unique_ptr<headachemd::sandbox::background_server> ehr;
    std::vector<std::string> ids;
    std::string ehr_toml;

    fs::path db() const { return home / "headache.db"; }
    fs::path daemon_binary() const { return bin / "headachemd-sync"; }
    fs::path config() const { return home / "sync.toml"; }

    void SetUp() override {
        if (::geteuid() != 0) {
            // The fault matrix (docs/dev/testing.md) cites these tests: in CI they must
            // run, so a missing precondition there fails instead of skipping.
            if (headachemd::test::in_ci())
                FAIL() << "needs root (the daemon and the analyst run as two other users), and CI=true "
                          "runs as root";
            GTEST_SKIP() << "needs root: the daemon and the analyst run as two other users (setuid); "
                            "CI runs as root";
        }
        // The other users must reach the state directory: every directory
        // above it must let anyone through (as /var/lib does).
        for (auto p = home.path().parent_path(); p != p.parent_path(); p = p.parent_path()) {
            struct stat st {};
            if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) {
                if (headachemd::test::in_ci())
                    FAIL() << p
                           << " (above the temporary directory) is closed to other users; set TMPDIR=/tmp";
                GTEST_SKIP() << p << " (above the temporary directory) is closed to other users, so the "
                             << "daemon's and the analyst's users cannot reach the database; set TMPDIR=/tmp";
            }
        }
        // The checkout may sit where other users cannot go (/root): the
        // daemon's user runs a copy.
        ASSERT_EQ(::chmod(bin.path().c_str(), 0755), 0);
        fs::copy_file(HEADACHEMD_BINARY, daemon_binary());
        ASSERT_EQ(::chmod(daemon_binary().c_str(), 0755), 0);
        headachemd::sandbox::options so;
        so.patients = 4;
        ehr = std::make_unique<headachemd::sandbox::background_server>(std::move(so));
        (*ehr)->write_ca_pem(home / "ca.pem");
        headachemd::test::write_file(home / "client.secret", (*ehr)->config().client_secret);
        ehr_toml = "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                   (*ehr)->fhir_base() + "\"\nclient_id = \"" + (*ehr)->config().client_id +
                   "\"\nclient_secret_file = \"" + (home / "client.secret").string() + "\"\nca_file = \"" +
                   (home / "ca.pem").string() + "\"\nrequests_per_minute = 60000\ninterval = \"1h\"\n";
        ids = (*ehr)->patient_ids();
        {
            headachemd::store::vault vault(home / "vault.db", headachemd::test::token_key_in(home.path()));
            const std::string now = "2026-01-01T00:00:00Z";
            for (std::size_t i = 0; i < ids.size(); ++i)
                vault.put_enrollment(
                    {key(i), "sandbox", ids[i], (*ehr)->issue_refresh_token(ids[i]), "", now, false}, now);
        }
        write_config(1);
        // Everything so far is the daemon's own (0600 files, as root made them).
        for (const auto& e : fs::directory_iterator(home.path()))
            ASSERT_EQ(::chown(e.path().c_str(), daemon_uid, daemon_gid), 0) << e.path();
        // tmpfiles.d: d /var/lib/headachemd 0750 headachemd headachemd-analysts.
        ASSERT_EQ(::chown(home.path().c_str(), daemon_uid, analysts_gid), 0);
        ASSERT_EQ(::chmod(home.path().c_str(), 0750), 0);
        // headache.db as the daemon creates it where headachemd-analysts
        // exists (store::open_database: 0640, that group). An empty file is
        // a new database to the daemon.
        headachemd::test::write_file(db(), "");
        ASSERT_EQ(::chown(db().c_str(), daemon_uid, analysts_gid), 0);
        ASSERT_EQ(::chmod(db().c_str(), 0640), 0);
    }

    static std::string key(std::size_t i) { return "hmd-" + std::to_string(i + 1); }

    // The config lists the first `n` patients (all are in the vault).
    void write_config(std::size_t n) {
        std::string toml = "[daemon]\ndatabase = \"" + db().string() + "\"\nvault = \"" +
                           (home / "vault.db").string() + "\"\nlog_level = \"info\"\n" +
                           headachemd::test::token_key_toml(home.path()) + ehr_toml;
        for (std::size_t i = 0; i < n; ++i)
            toml += "\n[[patient]]\nkey = \"" + key(i) + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" +
                    ids[i] + "\"\n";
        headachemd::test::write_file(config(), toml);  // truncated in place: owner and mode stay
    }

    // `sync-once` as the daemon's user, to its end.
    headachemd::test::command_result sync_once() {
        child c = spawn_as(daemon_user, "exec",
                           {daemon_binary().string(), "sync-once", "--config", config().string()}, 0,
                           scratch.path());
        headachemd::test::command_result r;
        if (c.pid < 0) return r;
        r.exit_code = headachemd::test::wait_exit(c.pid);
        r.out = headachemd::test::read_file(scratch / "stdout.txt");
        r.err = headachemd::test::read_file(scratch / "stderr.txt");
        return r;
    }

    child analyst() { return spawn_as(analyst_user, "reader", {db().string()}, 1, scratch.path()); }

    // What a new connection sees (root, read-only; it never checkpoints).
    int committed_conditions() {
        sqlite3* h = nullptr;
        int n = -1;
        if (sqlite3_open_v2(db().c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt* q = nullptr;
            if (sqlite3_prepare_v2(h, "SELECT count(*) FROM condition", -1, &q, nullptr) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW)
                n = sqlite3_column_int(q, 0);
            sqlite3_finalize(q);
        }
        sqlite3_close(h);
        return n;
    }

    std::string integrity() {
        sqlite3* h = nullptr;
        std::string out = "(cannot open)";
        if (sqlite3_open_v2(db().c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt* q = nullptr;
            if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, nullptr) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW)
                out = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
            sqlite3_finalize(q);
        }
        sqlite3_close(h);
        return out;
    }

    // The -wal and -shm files are there, the analysts' group may read them
    // and nobody else may.
    void expect_sidecars_readable_by_analysts() {
        for (const char* suffix : {"-wal", "-shm"}) {
            struct stat st {};
            const std::string p = db().string() + suffix;
            ASSERT_EQ(::stat(p.c_str(), &st), 0)
                << p << " is missing: read-only analysts cannot open the database";
            EXPECT_EQ(st.st_gid, analysts_gid) << p;
            EXPECT_EQ(st.st_mode & 0777, 0640u) << p;
        }
    }
};

// The daemon (`run`, one long-lived connection) writes passes while an
// analyst holds a snapshot; the analyst keeps seeing it, the daemon is never
// refused, and once the analyst is gone the next pass gives the WAL back.
TEST_F(analyst_fixture, RunningDaemonWritesWhileAnAnalystHoldsASnapshotAndTruncatesTheWalOnceItIsGone) {
    // Setup: the daemon runs; its first pass syncs patient 1.
    child daemon =
        spawn_as(daemon_user, "exec", {daemon_binary().string(), "run", "--config", config().string()}, 2,
                 scratch.path());
    ASSERT_GT(daemon.pid, 0);
    reaper daemon_guard{daemon};
    std::string log;
    ASSERT_TRUE(headachemd::test::read_line_containing(daemon.out, "pass 1 done: 1 patients, 0 failed", log))
        << log;
    expect_sidecars_readable_by_analysts();

    // Run: the analyst (read-only, group access) opens a transaction.
    child reader = analyst();
    ASSERT_GT(reader.pid, 0);
    reaper reader_guard{reader};
    const std::string first_read = ask(reader, "begin");
    const int snapshot = count_of(first_read);
    ASSERT_GE(snapshot, 0) << "the analyst could not read while the daemon runs: " << first_read;
    ASSERT_EQ(snapshot, committed_conditions());

    // Two more passes while the snapshot is held: each reload lists one
    // more patient, whose first sync runs at once (the others are due in 1 h).
    std::uintmax_t wal_held = 0;
    for (std::size_t n = 2; n <= 3; ++n) {
        (*ehr)->add_resource("Condition", ids[n - 1]);
        write_config(n);
        ASSERT_EQ(::kill(daemon.pid, SIGHUP), 0);
        const std::string done = "pass " + std::to_string(n) + " done: 1 patients, 0 failed";
        ASSERT_TRUE(headachemd::test::read_line_containing(daemon.out, done, log)) << log;
        // The pass landed for everyone else…
        EXPECT_GT(committed_conditions(), snapshot);
        // …the analyst still sees its snapshot, without waiting…
        EXPECT_EQ(ask(reader, "count"), "count " + std::to_string(snapshot));
        // …and the checkpoint could not reset the WAL under it: it grows.
        const auto wal = size_of(db().string() + "-wal");
        EXPECT_GT(wal, wal_held) << "pass " << n;
        wal_held = wal;
    }
    EXPECT_EQ(log.find("locked"), std::string::npos) << log;

    // The analyst ends the transaction: a new one sees the new rows.
    EXPECT_EQ(ask(reader, "commit"), "ok");
    EXPECT_EQ(ask(reader, "count"), "count " + std::to_string(committed_conditions()));
    EXPECT_EQ(ask(reader, "close"), "closed");

    // The next pass, with no reader left, truncates the WAL to nothing.
    (*ehr)->add_resource("Condition", ids[3]);
    write_config(4);
    ASSERT_EQ(::kill(daemon.pid, SIGHUP), 0);
    ASSERT_TRUE(headachemd::test::read_line_containing(daemon.out, "pass 4 done: 1 patients, 0 failed", log))
        << log;
    EXPECT_EQ(size_of(db().string() + "-wal"), 0u) << "the WAL was not checkpointed after the reader left";
    expect_sidecars_readable_by_analysts();

    // Check: the daemon stops cleanly; all four patients' rows are there.
    ASSERT_EQ(::kill(daemon.pid, SIGTERM), 0);
    EXPECT_TRUE(headachemd::test::read_line_containing(daemon.out, "stopped", log)) << log;
    EXPECT_EQ(headachemd::test::wait_exit(std::exchange(daemon.pid, -1)), 0) << log;
    EXPECT_EQ(integrity(), "ok");
    const auto want = (*ehr)->count_by_type();
    ASSERT_TRUE(want.count("Condition"));
    EXPECT_EQ(static_cast<std::size_t>(committed_conditions()), want.at("Condition"));
}

// `sync-once` runs (a new connection each time) while the analyst holds a
// snapshot; between runs, with no daemon process at all, the analyst can
// still open the database read-only.
TEST_F(analyst_fixture, SyncOnceRunsWhileAnAnalystHoldsASnapshotAndTheAnalystCanReadBetweenRuns) {
    // Setup: one pass, and the daemon process is gone.
    auto first = sync_once();
    ASSERT_EQ(first.exit_code, 0) << first.err;
    expect_sidecars_readable_by_analysts();

    // Run: the analyst reads with no daemon running, then holds a snapshot
    // through two more runs.
    child reader = analyst();
    ASSERT_GT(reader.pid, 0);
    reaper reader_guard{reader};
    const std::string first_read = ask(reader, "begin");
    const int snapshot = count_of(first_read);
    ASSERT_GT(snapshot, 0) << "a read-only analyst cannot read the database between runs: " << first_read;
    for (std::size_t n = 2; n <= 3; ++n) {
        (*ehr)->add_resource("Condition", ids[0]);
        write_config(n);
        auto r = sync_once();
        EXPECT_EQ(r.exit_code, 0) << "run " << n << ": " << r.err;
        EXPECT_EQ(r.err.find("locked"), std::string::npos) << r.err;
        EXPECT_GT(committed_conditions(), snapshot);
        EXPECT_EQ(ask(reader, "count"), "count " + std::to_string(snapshot));
    }
    // With the analyst's snapshot open, closing could not checkpoint.
    EXPECT_GT(size_of(db().string() + "-wal"), 0u);
    EXPECT_EQ(ask(reader, "commit"), "ok");
    EXPECT_EQ(ask(reader, "close"), "closed");

    // Check: the next run checkpoints and leaves an empty WAL (kept, so
    // that analysts can still open the file), and everything is there.
    auto last = sync_once();
    ASSERT_EQ(last.exit_code, 0) << last.err;
    EXPECT_EQ(size_of(db().string() + "-wal"), 0u);
    expect_sidecars_readable_by_analysts();
    EXPECT_EQ(integrity(), "ok");
    child again = analyst();
    ASSERT_GT(again.pid, 0);
    reaper again_guard{again};
    EXPECT_EQ(ask(again, "begin"), "count " + std::to_string(committed_conditions()));
    EXPECT_EQ(ask(again, "commit"), "ok");
}

}  // namespace
