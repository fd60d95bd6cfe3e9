// Crash safety (issue 6, item 1): the real binary is SIGKILLed at random
// moments, N times in a row, and restarted each time; then an uninterrupted
// run must leave an analytics database equal to an uninterrupted reference
// run against an identical sandbox, both databases and the vault must pass
// PRAGMA integrity_check, and every patient's refresh token must still work.
//
// The runs are `sync-once` and, a third of them, the daemon `run` (which is
// also killed while idle once sd_notify reports its first pass done). The
// EHR's data changes between runs, so later runs have rows to write too.
//
// Kill moments come from the sandbox's exchange observer, not from sleeps:
// the k-th request read or response written by the sandbox (k drawn from a
// seeded RNG), and, aimed at the dangerous window, the moment the sandbox
// has written a /token answer, before the client can have stored the
// rotated refresh token. Against a strict single-use server (the sandbox
// default, like eClinicalWorks and node-oidc-provider) a kill there strands
// the patient: the vault still holds the spent token, whose replay revokes
// the grant. The test counts those, asserts that each shows as needs_reauth
// (never a silent stop) and that no kill outside a /token exchange strands
// anyone. Against a server with a reuse grace window (Okta, Auth0) the
// replay gets the same new pair back, so none may be stranded.
//
// Issue 17 adds two modes: access tokens kept across runs (random kills of
// sync-once must strand nobody) and expired before every run (the window is
// open on every run; its figures are printed).
//
// HEADACHEMD_KILL_COUNT (default 50) sets N, HEADACHEMD_KILL_SEED the seed
// (default: random, printed). The figures go to stdout as "kill-test: ...".
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
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
using headachemd::test::kill::scalar;

constexpr int patient_count = 3;
constexpr std::uint64_t data_seed = 606;

// The only place the test opens the vault, so that a change of its
// constructor (sealed tokens with a key) is adapted here alone.
template <class F>
auto with_vault(const fs::path& path, F&& f) {
    headachemd::store::vault v(path, headachemd::test::token_key_in(path.parent_path()));
    return f(v);
}

// A sandbox clock the test moves: the data changes made between runs carry
// the same meta.lastUpdated in the kill sandbox and in the reference, so the
// same changes give byte-identical resources (and content hashes) in both.
struct test_clock {
    std::shared_ptr<std::atomic<std::int64_t>> seconds =
        std::make_shared<std::atomic<std::int64_t>>(1717200000 + 86400);  // a day after the data anchor
    std::function<std::chrono::system_clock::time_point()> fn() const {
        return
            [s = seconds] { return std::chrono::system_clock::time_point{std::chrono::seconds{s->load()}}; };
    }
};

sb::options sandbox_options(const test_clock& clock, bool grace) {
    sb::options so;
    so.patients = patient_count;
    so.seed = data_seed;
    so.refresh_reuse_grace = grace;
    so.now = clock.fn();
    return so;
}

// One daemon installation: config, secret, CA and vault in `dir`, pointing
// at `ehr`, each patient enrolled with a fresh refresh token.
void install(const temp_dir& dir, sb::server& ehr) {
    ehr.write_ca_pem(dir / "ca.pem");
    headachemd::test::write_file(dir / "client.secret", ehr.config().client_secret);
    // max_concurrent = 1: one exchange at a time, so the exchange a kill
    // fired on tells exactly whether a refresh was in flight. page_size = 3:
    // many pages, so kills land between page writes. No count check (not due
    // for ten years after the first): its full pull would heal an insert a
    // kill had lost, and the comparisons below would then never see it.
    std::string toml =
        "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
        (dir / "vault.db").string() + "\"\nlog_level = \"warn\"\n" +
        headachemd::test::token_key_toml(dir.path()) +
        "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\n" + "fhir_base = \"" + ehr.fhir_base() +
        "\"\nclient_id = \"" + ehr.config().client_id + "\"\nclient_secret_file = \"" +
        (dir / "client.secret").string() + "\"\nca_file = \"" + (dir / "ca.pem").string() +
        "\"\npage_size = 3\nmax_concurrent = 1\nrequests_per_minute = 60000\ncount_check_every = \"3650d\"\n";
    const auto ids = ehr.patient_ids();
    for (std::size_t i = 0; i < ids.size(); ++i)
        toml += "\n[[patient]]\nkey = \"hmd-" + std::to_string(i + 1) + "\"\nehr = \"sandbox\"\n" +
                "fhir_patient_id = \"" + ids[i] + "\"\n";
    headachemd::test::write_file(dir / "sync.toml", toml);
    with_vault(dir / "vault.db", [&](headachemd::store::vault& v) {
        for (std::size_t i = 0; i < ids.size(); ++i)
            v.put_enrollment({"hmd-" + std::to_string(i + 1), "sandbox", ids[i],
                              ehr.issue_refresh_token(ids[i]), "", "t", false},
                             "t");
        return 0;
    });
}

// Patients the vault marks needs_reauth.
std::set<std::string> needing_reauth(const fs::path& vault_path) {
    return with_vault(vault_path, [](headachemd::store::vault& v) {
        std::set<std::string> out;
        for (const auto& e : v.enrollments())
            if (e.needs_reauth) out.insert(e.patient_key);
        return out;
    });
}

// Each patient's refresh token, to see whether a killed child stored a
// rotated one before it died.
std::map<std::string, std::string> vault_tokens(const fs::path& vault_path) {
    return with_vault(vault_path, [](headachemd::store::vault& v) {
        std::map<std::string, std::string> out;
        for (const auto& e : v.enrollments()) out[e.patient_key] = e.refresh_token;
        return out;
    });
}

// What a clinic does for a stranded patient: enroll them again (here with
// the sandbox's headless shortcut instead of a browser).
void reenroll(const fs::path& vault_path, sb::server& ehr, const std::string& key) {
    const std::size_t i = std::stoul(key.substr(4)) - 1;
    const std::string id = ehr.patient_ids().at(i);
    with_vault(vault_path, [&](headachemd::store::vault& v) {
        v.put_enrollment({key, "sandbox", id, ehr.issue_refresh_token(id), "", "t", false}, "t");
        return 0;
    });
}

// Fires SIGKILL from the sandbox's thread at the chosen exchange of the
// current child. Events of a previous, already killed child (its last
// answer, written after it died) come before the new child's first request
// and are ignored.
class kill_switch {
public:
    struct plan {
        int at_event = 0;            // > 0: kill at the at_event-th event (request read or answer written)
        int after_token_answer = 0;  // > 0: kill once the n-th /token answer is written
        int at_token_request = 0;    // > 0: kill once the n-th /token request is read (then answered)
    };

    void observe(std::string_view path, sb::server::exchange_phase phase) {
        std::lock_guard lock(mu_);
        // After the kill, until disarm(): a /token request the child had
        // already sent when SIGKILL landed still reaches the server, which
        // spends the old token. Under load the child can get that far in the
        // moment between the server writing an answer and the kill.
        if (fired_ && pid_ > 0 && path == "/token" && phase == sb::server::exchange_phase::received)
            late_token_request_ = true;
        if (!armed_) return;
        if (phase == sb::server::exchange_phase::received)
            saw_request_ = true;
        else if (!saw_request_)
            return;
        ++events_;
        if (path == "/token" && phase == sb::server::exchange_phase::received) ++token_requests_;
        bool hit = false;
        if (plan_.at_token_request > 0)
            hit = path == "/token" && phase == sb::server::exchange_phase::received &&
                  token_requests_ == plan_.at_token_request;
        else if (plan_.after_token_answer > 0)
            hit = path == "/token" && phase == sb::server::exchange_phase::sent &&
                  ++token_answers_ == plan_.after_token_answer;
        else
            hit = events_ == plan_.at_event;
        if (hit && pid_ > 0) {
            ::kill(pid_, SIGKILL);
            armed_ = false;
            fired_ = true;
            fired_path_ = std::string(path);
            fired_after_answer_ = phase == sb::server::exchange_phase::sent;
            fired_token_request_ = token_requests_;
        }
    }

    // Kills the child now, unless the switch fired already: for a daemon
    // whose pass ended before its kill moment (it then idles until the next
    // one is due: a kill while idle).
    void kill_now() {
        std::lock_guard lock(mu_);
        if (!armed_ || pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        armed_ = false;
        fired_ = true;
        fired_path_ = "(idle)";
    }

    void arm(pid_t pid, plan p) {
        std::lock_guard lock(mu_);
        pid_ = pid;
        plan_ = p;
        armed_ = pid > 0;
        saw_request_ = false;
        fired_ = false;
        fired_after_answer_ = false;
        events_ = 0;
        token_answers_ = 0;
        token_requests_ = 0;
        fired_token_request_ = 0;
        late_token_request_ = false;
        fired_path_.clear();
    }
    // After the child ended: whether the switch fired, on which path, and
    // how many events the child caused.
    struct outcome {
        bool fired = false;
        std::string path;
        bool after_answer = false;  // fired once the answer was written, not when the request was read
        int events = 0;
        int token_request = 0;            // how many /token requests the child had made when the switch fired
        bool late_token_request = false;  // a /token request the child sent reached the server after the kill
    };
    outcome disarm() {
        std::lock_guard lock(mu_);
        armed_ = false;
        pid_ = -1;
        return {fired_, fired_path_, fired_after_answer_, events_, fired_token_request_, late_token_request_};
    }

private:
    std::mutex mu_;
    pid_t pid_ = -1;
    plan plan_;
    bool armed_ = false, saw_request_ = false, fired_ = false, fired_after_answer_ = false,
         late_token_request_ = false;
    int events_ = 0, token_answers_ = 0, token_requests_ = 0, fired_token_request_ = 0;
    std::string fired_path_;
};

// The service manager's end of sd_notify(3) for `run` children: the test
// learns from STATUS= that the daemon's first pass is over.
class notify_listener {
public:
    explicit notify_listener(const fs::path& path) : path_(path.string()) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (fd_ < 0 || path_.size() >= sizeof(addr.sun_path)) return;
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~notify_listener() {
        if (fd_ >= 0) ::close(fd_);
    }
    notify_listener(const notify_listener&) = delete;
    notify_listener& operator=(const notify_listener&) = delete;
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    // Reads every queued datagram; true when one says the first pass is done.
    bool drain_pass_done() {
        bool done = false;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n < 0) return done;
            const std::string m(buf, static_cast<std::size_t>(n));
            const std::string all = std::to_string(patient_count);
            done = done || m.find("STATUS=pass 1: " + all + "/" + all + " patients") != std::string::npos;
        }
    }

private:
    std::string path_;
    int fd_ = -1;
};

// Waits until the `run` child `pid` has died: killed by the switch, or, once
// its first pass is over, by kill_now(). False when neither came in time.
bool wait_daemon_killed(pid_t pid, notify_listener& notify, kill_switch& ks) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    bool dead = false;
    while (!dead && std::chrono::steady_clock::now() < deadline) {
        pollfd fds[2] = {{pidfd, POLLIN, 0}, {notify.fd(), POLLIN, 0}};
        if (::poll(fds, 2, 1000) < 0 && errno != EINTR) break;
        if (fds[1].revents & POLLIN) {
            if (notify.drain_pass_done()) ks.kill_now();
        }
        dead = (fds[0].revents & POLLIN) != 0;
    }
    ::close(pidfd);
    return dead;
}

// A data change made between runs, replayed on the reference sandbox.
struct change {
    std::int64_t at = 0;
    bool add = false;
    std::string type, id_or_patient;
};

void apply(sb::server& ehr, const test_clock& clock, const change& c) {
    clock.seconds->store(c.at);
    if (c.add)
        ehr.add_resource(c.type, c.id_or_patient);
    else
        ehr.update_resource(c.type, c.id_or_patient);
}

// The lines of a completed sync-once: each patient is ok or NEEDS
// RE-ENROLLMENT (a stranded patient is never a silent stop); returns those
// needing it.
std::set<std::string> check_completed_run(const std::string& out) {
    std::set<std::string> reauth;
    std::istringstream lines(out);
    std::string line;
    int seen = 0;
    while (std::getline(lines, line)) {
        if (line.rfind("hmd-", 0) != 0) continue;
        ++seen;
        const std::string key = line.substr(0, line.find(' '));
        if (line.find("NEEDS RE-ENROLLMENT") != std::string::npos) {
            reauth.insert(key);
        } else {
            EXPECT_NE(line.find(" ok, "), std::string::npos) << "not ok and not needs_reauth: " << line;
        }
    }
    EXPECT_EQ(seen, patient_count) << out;
    return reauth;
}

// How a kill test runs (issue 17 adds the first two fields).
struct mode {
    bool grace = false;  // the sandbox allows a refresh token's reuse for 60 s
    // Drop the stored access tokens before every run, as if each had
    // expired: every run then refreshes every patient, the old behaviour,
    // and the refresh window is open on every run.
    bool expire_access_each_run = true;
    // Aim a quarter of the kills just after a /token answer and make a third
    // of the runs the daemon; otherwise every run is sync-once, killed at a
    // uniformly drawn exchange.
    bool aimed = true;
};

// The daemon keeps the due times the last run wrote (issue 14): started
// again within the interval it would sync nobody. Each daemon run here must
// make a pass, as after a restart past everyone's due time.
void make_everyone_due(const fs::path& db_path) {
    if (!fs::exists(db_path)) return;
    SQLite::Database db(db_path.string(), SQLite::OPEN_READWRITE);
    if (db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'sync_status'").getInt() == 0) return;
    db.exec("UPDATE sync_status SET next_run_at = NULL");
}

// The refresh windows a debug-level run logged ("refresh window N us"), in
// microseconds.
std::vector<long long> refresh_windows(const std::string& log) {
    std::vector<long long> out;
    const std::string tag = "refresh window ";
    for (auto at = log.find(tag); at != std::string::npos; at = log.find(tag, at + 1))
        out.push_back(std::strtoll(log.c_str() + at + tag.size(), nullptr, 10));
    return out;
}

struct figures {
    int kills = 0, daemon_kills = 0, idle_kills = 0, token_window_kills = 0, token_answer_kills = 0,
        completed_runs = 0, stranded = 0, changes = 0;
    int token_stored_before_kill = 0;  // kills just after a /token answer whose token was stored already
    int stranded_outside_window = 0;   // flagged needs_reauth without a kill inside their own exchange
    int late_token_kills = 0;          // kills elsewhere after which the child's /token request still arrived
    int spent_by_kill = 0;             // kills after which the vault held a token the server had rotated
    int exact_checks = 0;              // runs after which the rows equalled the reference's
    int subset_checks = 0;             // kills after which every row was one the reference had held
};

std::string describe(const mode& m) {
    return std::string(m.grace ? "reuse-grace" : "strict") + " server, access tokens " +
           (m.expire_access_each_run ? "expiring every run" : "outliving the test") +
           (m.aimed ? ", aimed and random kills" : ", random kills of sync-once");
}

using table_rows = headachemd::test::kill::rows_by_table;

// Every row the reference has held at any data state, per table: a row a
// killed run leaves behind must be one of them (a resource as the EHR served
// it at some moment, never a mix or a half).
struct rows_ever_held {
    std::map<std::string, std::set<std::string>> rows;
    void add(const table_rows& snapshot) {
        for (const auto& [t, rs] : snapshot) rows[t].insert(rs.begin(), rs.end());
    }
    // The first row of `got` the reference never held, or empty.
    std::string first_unknown(const table_rows& got) const {
        for (const auto& [t, rs] : got) {
            const auto it = rows.find(t);
            for (const auto& r : rs)
                if (it == rows.end() || it->second.count(r) == 0) return t + ": " + r;
        }
        return {};
    }
};

// Per patient, which state the sandbox finds the vault's refresh token in
// (issue 18, item 6: strandings are matched per patient, not against a
// pooled budget). A patient becomes "at risk" when the vault holds a token
// the server has rotated: only a kill inside that patient's own /token
// exchange may cause that. At a strict server an at-risk patient must be
// flagged needs_reauth at its next refresh (never a silent stop), and no
// patient who is not at risk may be flagged; at a grace server the replay
// heals it.
struct patient_ledger {
    std::set<std::string> at_risk;            // patient keys
    std::map<std::string, int> window_kills;  // kills inside the patient's own /token exchange
    std::map<std::string, int> strandings;
};

std::string patient_key_of(sb::server& ehr, const std::string& fhir_id) {
    const auto ids = ehr.patient_ids();
    for (std::size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == fhir_id) return "hmd-" + std::to_string(i + 1);
    return {};
}

figures kill_many_times(const mode& m, int kill_count, std::uint64_t seed) {
    const bool grace = m.grace;
    figures f;
    std::cout << "kill-test: " << describe(m) << ", " << kill_count << " kills, HEADACHEMD_KILL_SEED=" << seed
              << std::endl;
    test_clock clock, ref_clock;
    kill_switch ks;  // before the server, which calls it until it stops
    sb::background_server ehr(sandbox_options(clock, grace));
    ehr->set_exchange_observer(
        [&ks](std::string_view path, sb::server::exchange_phase phase) { ks.observe(path, phase); });
    temp_dir dir;
    install(dir, *ehr);
    notify_listener notify(dir / "notify.sock");
    if (notify.fd() < 0) {
        ADD_FAILURE() << "cannot bind the notify socket";
        return f;
    }
    const auto config = (dir / "sync.toml").string();
    const auto db_path = dir / "headache.db";
    const auto vault_path = dir / "vault.db";

    // The reference: an identical sandbox with the same data changes, synced
    // without interruption after each one, so the rows are compared after
    // every run, not only at the end.
    sb::background_server ref(sandbox_options(ref_clock, grace));
    temp_dir ref_dir;
    install(ref_dir, *ref);
    const auto ref_config = (ref_dir / "sync.toml").string();
    rows_ever_held ever;
    table_rows ref_rows;
    auto sync_reference = [&] {
        auto r = headachemd::test::run_binary({"sync-once", "--config", ref_config}, ref_dir.path());
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
        ref_rows = analytics_rows(ref_dir / "headache.db");
        ever.add(ref_rows);
    };
    sync_reference();

    std::mt19937_64 rng(seed);
    auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    // Events of a complete first pass (each exchange is two: request read,
    // answer written): discovery, and per patient a refresh, the Patient read
    // and every search page (page_size 3). It grows to the longest run seen.
    int max_events = 2 * 2;
    for (const auto& id : ehr->patient_ids()) {
        max_events += 2 * 2;
        for (const auto* type :
             {"Condition", "MedicationRequest", "Encounter", "Observation", "Procedure", "Appointment"})
            max_events += 2 * std::max<int>(1, static_cast<int>((ehr->count_for(id, type) + 2) / 3));
    }
    int recent_pass_events = max_events;
    patient_ledger ledger;

    // A patient the vault marks needs_reauth: it must have been at risk (a
    // strict server refused the replay of a token a kill left spent). Count
    // it and re-enroll, as a clinic would.
    auto settle_flagged = [&](const std::set<std::string>& flagged) {
        for (const auto& key : flagged) {
            ++f.stranded;
            ++ledger.strandings[key];
            if (ledger.at_risk.erase(key) == 0) {
                ++f.stranded_outside_window;
                ADD_FAILURE() << key << " needs re-enrollment, but no kill landed inside its own /token "
                              << "exchange since it last held a good token; seed " << seed;
            }
            reenroll(vault_path, *ehr, key);
        }
    };
    // After a run: the state of each patient's vault token at the server.
    // `o` is the kill (if any) that ended the run.
    auto check_tokens = [&](const kill_switch::outcome& o, bool inside_token_exchange) {
        int newly_spent = 0;
        for (const auto& [key, token] : vault_tokens(vault_path)) {
            using st = sb::server::refresh_token_state;
            const st s = ehr->refresh_token_state_of(token);
            if (s == st::live) {
                // A grace server handed the same pair back on the replay.
                if (ledger.at_risk.erase(key) != 0) {
                    EXPECT_TRUE(grace) << key << ": a strict server accepted a replayed token; seed " << seed;
                }
            } else if (s == st::spent || s == st::revoked) {
                // Revoked and not flagged yet: a run replayed the token and
                // was killed before it could record the refusal. Either way
                // the patient must already be at risk, or become so now.
                if (ledger.at_risk.count(key) != 0) continue;
                ++newly_spent;
                const bool own_exchange =
                    inside_token_exchange && patient_key_of(*ehr, ehr->last_refresh_patient()) == key;
                EXPECT_TRUE(own_exchange)
                    << key << "'s refresh token was spent at the server but not stored, and the kill ("
                    << (o.fired ? o.path : std::string("none"))
                    << ") was not inside its /token exchange; seed " << seed;
                ledger.at_risk.insert(key);
                ++ledger.window_kills[key];
            } else {
                ADD_FAILURE() << key << " holds a refresh token the server "
                              << (s == st::unknown ? "never issued" : "lets expire") << "; seed " << seed;
            }
        }
        // One exchange at a time: one kill can spend at most one token.
        EXPECT_LE(newly_spent, 1) << "seed " << seed;
        if (newly_spent > 0) ++f.spent_by_kill;
    };

    if (!m.aimed) {
        // One clean pass first: every patient holds an access token from then on.
        auto clean = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
        EXPECT_EQ(clean.exit_code, 0) << clean.out << clean.err;
    }

    while (f.kills < kill_count) {
        if (m.expire_access_each_run) expire_access_tokens(vault_path);
        kill_switch::plan p;
        if (m.aimed && uniform(0, 3) == 0) {
            p.after_token_answer = uniform(1, patient_count);
        } else {
            // Half the time within the length of the latest whole pass: once the
            // first pass is done, passes are incremental and much shorter.
            p.at_event = uniform(1, uniform(0, 1) == 0 ? recent_pass_events : max_events);
        }
        // A third of the runs are the daemon (`run`), the rest `sync-once`.
        const bool daemon = m.aimed && uniform(0, 2) == 0;
        if (daemon) make_everyone_due(db_path);
        notify.drain_pass_done();  // nothing a dead child sent may count for this one
        const auto tokens_before = vault_tokens(vault_path);
        const pid_t pid = headachemd::test::spawn_binary(
            {daemon ? "run" : "sync-once", "--config", config}, dir / "stdout.txt", dir / "stderr.txt",
            daemon ? std::vector<std::string>{"NOTIFY_SOCKET=" + notify.path()} : std::vector<std::string>{});
        if (pid <= 0) {
            ADD_FAILURE() << "could not start the binary";
            return f;
        }
        ks.arm(pid, p);
        if (daemon && !wait_daemon_killed(pid, notify, ks)) {
            ::kill(pid, SIGKILL);
            ADD_FAILURE() << "the daemon neither reached its kill moment nor ended its first pass within "
                             "120 s; seed "
                          << seed << "\n"
                          << headachemd::test::read_file(dir / "stderr.txt");
        }
        // Disarmed before the child is reaped: a late event can then only
        // signal a zombie, never a process that reused the pid.
        siginfo_t info{};
        ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
        // The child is dead and its sockets closed: once the server has
        // released every connection it has read all the child sent.
        if (!ehr->wait_until_no_connections(std::chrono::seconds(30)))
            ADD_FAILURE() << "the sandbox kept a connection of a dead child for 30 s; seed " << seed;
        const auto o = ks.disarm();
        const int code = headachemd::test::wait_exit(pid);
        max_events = std::max(max_events, o.events);
        if (!o.fired || o.path == "(idle)") recent_pass_events = std::max(o.events, 1);
        bool inside_token_exchange = false;
        // A run whose pass ended: sync-once that finished before its kill
        // moment, or the daemon killed idle after its first pass.
        bool pass_completed = false;
        if (o.fired) {
            EXPECT_EQ(code, 128 + SIGKILL) << "seed " << seed;
            ++f.kills;
            if (daemon) ++f.daemon_kills;
            if (o.path == "(idle)") {
                ++f.idle_kills;
                pass_completed = true;
            }
            if (o.path != "/token" && o.late_token_request) {
                // Inside the window after all: the request was on the wire.
                ++f.late_token_kills;
                ++f.token_window_kills;
                inside_token_exchange = true;
            } else if (o.path == "/token") {
                ++f.token_window_kills;
                inside_token_exchange = true;
                if (o.after_answer) ++f.token_answer_kills;
                // One patient at a time: the token the killed exchange spent
                // is the patient's whose refresh the server saw last.
                const std::string key = patient_key_of(*ehr, ehr->last_refresh_patient());
                const auto before = tokens_before.find(key);
                if (o.after_answer && before != tokens_before.end() &&
                    vault_tokens(vault_path)[key] != before->second)
                    ++f.token_stored_before_kill;
            }
        } else if (daemon) {
            ADD_FAILURE() << "the daemon ended by itself, exit " << code << "; seed " << seed << "\n"
                          << headachemd::test::read_file(dir / "stderr.txt");
        } else {
            // The run ended before its kill moment: it must have completed
            // cleanly, every patient ok or flagged for re-enrollment.
            ++f.completed_runs;
            pass_completed = true;
            const auto out = headachemd::test::read_file(dir / "stdout.txt");
            EXPECT_TRUE(code == 0 || code == 75) << "seed " << seed << " exit " << code << "\n"
                                                 << out << headachemd::test::read_file(dir / "stderr.txt");
            const auto flagged = check_completed_run(out);
            EXPECT_EQ(flagged, needing_reauth(vault_path)) << "seed " << seed;
        }

        // The rows, after every run. Every table intact, every row one the
        // reference has held; after a whole pass in which nobody needed
        // re-enrollment, exactly the reference's rows (nothing lost, nothing
        // left over), before any count check or full pull could heal them.
        EXPECT_EQ(integrity(db_path), "ok") << "seed " << seed;
        const auto rows_now = analytics_rows(db_path);
        const auto flagged = needing_reauth(vault_path);
        if (pass_completed && flagged.empty()) {
            ++f.exact_checks;
            EXPECT_TRUE(rows_now == ref_rows) << "rows differ from the reference after a whole pass ("
                                              << f.kills << " kills so far); seed " << seed;
        } else {
            ++f.subset_checks;
            const std::string unknown = ever.first_unknown(rows_now);
            EXPECT_EQ(unknown, "") << "a row the EHR never served, after kill " << f.kills << "; seed "
                                   << seed;
        }

        // Strandings, per patient.
        settle_flagged(flagged);
        check_tokens(o, inside_token_exchange);
        if (::testing::Test::HasFailure()) {
            ADD_FAILURE() << "kill test failed with HEADACHEMD_KILL_SEED=" << seed << " after " << f.kills
                          << " kills";
            return f;
        }

        // Now and then the EHR's data changes between runs, so later runs
        // have new and changed rows to write while they are killed.
        if (uniform(0, 1) == 0) {
            change c;
            c.at = clock.seconds->load() + 1;
            const auto ids = ehr->patient_ids();
            const std::string patient = ids[static_cast<std::size_t>(uniform(0, patient_count - 1))];
            c.add = uniform(0, 1) == 0;
            c.type = uniform(0, 1) == 0 ? "Observation" : "Condition";
            if (c.add) {
                c.id_or_patient = patient;
            } else {
                const auto existing = ehr->ids_of(c.type, patient);
                if (existing.empty()) continue;
                c.id_or_patient =
                    existing[static_cast<std::size_t>(uniform(0, static_cast<int>(existing.size()) - 1))];
            }
            apply(*ehr, clock, c);
            apply(*ref, ref_clock, c);
            sync_reference();
            ++f.changes;
        }
    }

    // A check run without kills, every patient refreshing: a patient still
    // holding a spent token (a kill in its window whose replay no run has
    // made yet) must show as NEEDS RE-ENROLLMENT, never fail silently.
    expire_access_tokens(vault_path);
    auto check = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
    EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 75) << check.out << check.err;
    const auto flagged = check_completed_run(check.out);
    EXPECT_EQ(flagged, needing_reauth(vault_path));
    settle_flagged(flagged);
    check_tokens({}, false);
    // Every patient a kill left at risk has been flagged (strict) or healed
    // by the replay (grace): none is left holding a spent token.
    EXPECT_TRUE(ledger.at_risk.empty()) << "seed " << seed;
    for (const auto& [key, n] : ledger.strandings)
        EXPECT_LE(n, ledger.window_kills[key]) << key << ", seed " << seed;

    // The final uninterrupted run completes every patient...
    auto final_run = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
    EXPECT_EQ(final_run.exit_code, 0) << final_run.out << final_run.err;
    // ...and one more proves every refresh token now in the vault works (with
    // the access tokens dropped, it refreshes every patient first) and that
    // nothing is left to write. Past the reuse grace window (60 s), so that a
    // grace server cannot hide a vault that still holds a spent token. At
    // debug level it logs each refresh's window.
    clock.seconds->fetch_add(120);
    expire_access_tokens(vault_path);
    auto tokens_work =
        headachemd::test::run_binary({"sync-once", "--config", config, "--log-level", "debug"}, dir.path());
    const auto windows = refresh_windows(tokens_work.err);
    EXPECT_EQ(windows.size(), static_cast<std::size_t>(patient_count)) << tokens_work.err;
    EXPECT_EQ(tokens_work.exit_code, 0) << tokens_work.out << tokens_work.err;
    EXPECT_NE(tokens_work.out.find(std::to_string(patient_count) +
                                   " patients: " + std::to_string(patient_count) + " ok, 0 failed"),
              std::string::npos)
        << tokens_work.out;
    EXPECT_TRUE(needing_reauth(vault_path).empty());

    EXPECT_EQ(integrity(db_path), "ok");
    EXPECT_EQ(integrity(ref_dir / "headache.db"), "ok");
    EXPECT_EQ(integrity(vault_path), "ok");
    const auto got = analytics_rows(db_path);
    const auto& want = ref_rows;
    EXPECT_EQ(got.size(), want.size());
    std::size_t rows = 0;
    for (const auto& [table, want_rows] : want) {
        const auto it = got.find(table);
        if (it == got.end()) {
            ADD_FAILURE() << "table " << table << " missing";
            continue;
        }
        rows += want_rows.size();
        EXPECT_EQ(it->second.size(), want_rows.size()) << table;
        EXPECT_TRUE(it->second == want_rows) << table << " differs from the reference (seed " << seed << ")";
        // No resource stored twice under different ids.
        EXPECT_EQ(scalar(db_path, "SELECT count(*) - count(DISTINCT raw_hash) FROM \"" + table + "\""), 0)
            << table;
    }
    EXPECT_GT(rows, 0u);
    EXPECT_EQ(scalar(db_path, "SELECT count(*) FROM observation"),
              static_cast<long long>(ehr->count_by_type().at("Observation")));
    if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "kill test failed with HEADACHEMD_KILL_SEED=" << seed;
    }
    long long window_max = 0, window_sum = 0;
    for (const auto w : windows) {
        window_max = std::max(window_max, w);
        window_sum += w;
    }
    std::cout << "kill-test: " << describe(m) << ", seed " << seed
              << ": refresh window (request sent to new token durable) mean "
              << (windows.empty() ? 0 : window_sum / static_cast<long long>(windows.size())) << " us, max "
              << window_max << " us over " << windows.size() << " refreshes\n";
    std::cout << "kill-test: " << describe(m) << ", seed " << seed << ": " << f.kills << " kills ("
              << f.daemon_kills << " of the daemon `run`, " << f.idle_kills
              << " of them while idle after its pass; " << f.token_window_kills
              << " inside a /token exchange (" << f.late_token_kills
              << " of them aimed elsewhere, with the child's /token request already sent), "
              << f.token_answer_kills << " of them just after the answer was written, "
              << f.token_stored_before_kill << " of those with the new token already in the vault; "
              << f.spent_by_kill << " left the patient's vault token spent at the server), "
              << f.completed_runs << " runs completed before their kill moment, " << f.changes
              << " data changes, " << f.stranded
              << " patients stranded (re-enrolled), each after a kill in its "
              << "own exchange; rows checked after every run: " << f.exact_checks
              << " times equal to the reference, " << f.subset_checks
              << " times all rows the reference held; " << rows
              << " rows equal to the reference at the end\n";
    return f;
}

TEST(KillTest, StrictSingleUseServerStrandsOnlyInsideTheTokenWindowAndLosesNoData) {
    const auto seed = headachemd::test::kill::seed();
    const figures f = kill_many_times(mode{}, headachemd::test::kill::count(50), seed);
    EXPECT_EQ(f.kills, headachemd::test::kill::count(50)) << "seed " << seed;
    // Strandings come only from kills inside a /token exchange (a spent token
    // the vault could not yet hold), never from one elsewhere.
    EXPECT_EQ(f.stranded_outside_window, 0) << "seed " << seed;
    EXPECT_LE(f.stranded, f.token_window_kills) << "seed " << seed;
    // And the window is real: a kill there does strand at a strict server
    // (which is what makes the zero of the grace test mean something).
    if (f.token_window_kills > 0) {
        EXPECT_GT(f.stranded, 0) << "seed " << seed;
    }
}

TEST(KillTest, ReuseGraceServerStrandsNobodyAndLosesNoData) {
    const auto seed = headachemd::test::kill::seed();
    const figures f = kill_many_times(mode{.grace = true}, headachemd::test::kill::count(50), seed);
    EXPECT_EQ(f.kills, headachemd::test::kill::count(50)) << "seed " << seed;
    EXPECT_GT(f.token_window_kills, 0) << "seed " << seed << ": no kill hit the refresh window";
    EXPECT_EQ(f.stranded, 0) << "seed " << seed;
}

// Issue 17: with access tokens kept in the vault, a run within their life
// opens no refresh window, so random kills (a power cut, an OOM kill, a
// crash loop) strand nobody even at a strict single-use server.
TEST(KillTest, StrictServerWithStoredAccessTokensStrandsNobodyUnderRandomKills) {
    const auto seed = headachemd::test::kill::seed();
    const figures f = kill_many_times(mode{.expire_access_each_run = false, .aimed = false},
                                      headachemd::test::kill::count(50), seed);
    EXPECT_EQ(f.kills, headachemd::test::kill::count(50)) << "seed " << seed;
    EXPECT_EQ(f.stranded, 0) << "seed " << seed;
    EXPECT_EQ(f.token_window_kills, 0)
        << "seed " << seed << ": a run refreshed although its access token was good";
}

// Issue 17, the refresh journal, with a real kill: the process dies right
// after its /token request reached the strict server, which rotates the
// token all the same. The next run finds the journal entry, tries the stored
// token once, and names the refusal interrupted_refresh in sync-once,
// status, the vault and the audit log. A clean run leaves no entry.
TEST(KillTest, AKillWithARefreshInFlightIsNamedInterruptedRefreshNextRun) {
    // Setup: one clean run, then the access tokens expire.
    test_clock clock;
    kill_switch ks;
    sb::background_server ehr(sandbox_options(clock, false));
    ehr->set_exchange_observer(
        [&ks](std::string_view path, sb::server::exchange_phase phase) { ks.observe(path, phase); });
    temp_dir dir;
    install(dir, *ehr);
    const auto config = (dir / "sync.toml").string();
    const auto vault_path = dir / "vault.db";
    auto clean = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
    ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
    const auto journal_entries = [&] {
        return scalar(vault_path, "SELECT count(*) FROM enrollment WHERE refresh_started_at IS NOT NULL");
    };
    EXPECT_EQ(journal_entries(), 0);
    expire_access_tokens(vault_path);

    // Run: killed when the server has read the first /token request.
    kill_switch::plan p;
    p.at_token_request = 1;
    const pid_t pid = headachemd::test::spawn_binary({"sync-once", "--config", config}, dir / "stdout.txt",
                                                     dir / "stderr.txt");
    ASSERT_GT(pid, 0);
    ks.arm(pid, p);
    siginfo_t info{};
    ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
    ASSERT_TRUE(ehr->wait_until_no_connections(std::chrono::seconds(30)));
    const auto o = ks.disarm();
    EXPECT_EQ(headachemd::test::wait_exit(pid), 128 + SIGKILL);
    ASSERT_TRUE(o.fired);
    EXPECT_EQ(o.path, "/token");
    EXPECT_EQ(journal_entries(), 1);  // hmd-1's, written before the request left
    const auto next = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());

    // Check
    EXPECT_EQ(next.exit_code, 75) << next.out << next.err;
    EXPECT_NE(next.out.find("hmd-1"), std::string::npos);
    EXPECT_NE(next.out.find("NEEDS RE-ENROLLMENT (interrupted refresh"), std::string::npos) << next.out;
    EXPECT_NE(next.out.find("2 ok, 1 failed"), std::string::npos) << next.out;
    EXPECT_EQ(journal_entries(), 0);
    EXPECT_EQ(scalar(vault_path,
                     "SELECT count(*) FROM enrollment WHERE needs_reauth = 1 AND patient_key = 'hmd-1' "
                     "AND needs_reauth_reason = 'interrupted_refresh'"),
              1);
    EXPECT_EQ(scalar(vault_path,
                     "SELECT count(*) FROM audit_event WHERE action = 'needs_reauth' AND "
                     "patient_key = 'hmd-1' AND outcome = 'interrupted_refresh'"),
              1);
    const auto status = headachemd::test::run_binary({"status", "--config", config, "--json"}, dir.path());
    EXPECT_EQ(status.exit_code, 75);
    EXPECT_NE(status.out.find("\"needs_reauth_reason\":\"interrupted_refresh\""), std::string::npos)
        << status.out;
    const auto table = headachemd::test::run_binary({"status", "--config", config}, dir.path());
    EXPECT_NE(table.out.find("interrupted refresh"), std::string::npos) << table.out;
}

// Issue 17's second figure: the same random kills when every run must
// refresh (its access tokens expire between runs). Kills inside a /token
// exchange may strand a patient at a strict server; no other kill may.
TEST(KillTest, StrictServerWithExpiringAccessTokensStrandsOnlyInsideTheWindowUnderRandomKills) {
    const auto seed = headachemd::test::kill::seed();
    const figures f = kill_many_times(mode{.expire_access_each_run = true, .aimed = false},
                                      headachemd::test::kill::count(50), seed);
    EXPECT_EQ(f.kills, headachemd::test::kill::count(50)) << "seed " << seed;
    EXPECT_EQ(f.stranded_outside_window, 0) << "seed " << seed;
    EXPECT_LE(f.stranded, f.token_window_kills) << "seed " << seed;
}

}  // namespace
