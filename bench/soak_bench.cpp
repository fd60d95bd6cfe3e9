// bench/soak: does the daemon stay flat over time, and small with many patients?
//
// It runs the real `headachemd-sync run` as its own process against the
// sandbox EHR (over loopback TLS, in this process on its own thread: its
// memory and CPU are not the daemon's) with a mix of faults, for a set time,
// and reads the daemon's /proc entries from outside:
//
//   memory   VmRSS at the end of every sync cycle and VmHWM (peak RSS),
//   fds      open file descriptors, and of them the sockets and the TCP
//            connections (inodes looked up in /proc/PID/net/tcp{,6}),
//   rows     rows in headache.db's clinical tables,
//   idle CPU CPU time (schedstat, all threads) and context switches over an
//            idle window: no patient due, so the daemon should sleep in
//            epoll_wait on its timers and signals and wake up not at all.
//
// A cycle is the work between two idle gaps: the daemon reschedules each
// patient `interval` (+ up to 10% jitter) after its job ends, so the whole
// population comes due again `interval` after the first cycle, and in between
// nothing is due. A gap counts when nothing is due for at least the idle
// window. "start" is the gap after the first cycle of `run`, "end" the gap
// after the last one. Between cycles the sandbox's data changes (new
// Observations, updated Conditions), so later cycles write rows too.
//
// The interval: --interval, or (0, the default) measured: a `sync-once`
// first (every patient's full first pass; its peak RSS counts too), then
// interval = 2.2 x its wall time + the idle window + 19 s, because an
// incremental cycle costs more requests than the full one at this data size
// (a count check per type), the jitter spreads it, and the jobs hit by a
// response slower than the deadline run after the main pass.
//
// Faults, all at once: 429 with Retry-After, 500, connection resets
// mid-response and truncated bodies at random rates; a few slow responses per
// cycle, two of them slower than http_timeout; access tokens that live 1.5
// intervals, at least 2 minutes (the first cycle of `run` refreshes every
// patient: a rotated refresh token and a vault fsync each; a longer run
// refreshes again); two patients whose grants are revoked before the first cycle and
// one after it (needs_reauth).
//
// Limits, checked in the same run (exit 1 when one is broken):
//   end RSS / start RSS                  <= 1.10
//   end fds - start fds, sockets aside   <= 0
//   end sockets (listeners aside)        <= max_concurrent (the pool's bound)
//   end TCP connections                  <= max_concurrent
// Sockets are bounded, not compared: the connection pool keeps up to
// max_concurrent idle connections, and how many of them are open at the end
// of a cycle depends on how the last jobs overlapped (3 after one cycle and 4
// after the next is a normal run). A leaked socket shows up against the
// pool's bound; a leaked file, pipe or timer fd against the start.
//   peak RSS (VmHWM)                     <= 64 MiB
//   CPU per idle minute                  <= 0.05 s
//
// Usage: bench_soak [--patients N] [--seconds S] [--interval I] [--idle-seconds W]
//                   [--daemon PATH] [--dir DIR] [--faults X] [--verbose]
//   defaults (CI, about 80 s on 2 cores): 1000 patients, interval from
//   sync-once, 30 s, idle window 10 s: two cycles of `run`, the idle window
//   in the gap after the first. docs/dev/benchmarks.md's 10,000-patient run:
//   --patients 10000 --interval 420 --seconds 1000 --idle-seconds 60.
//   HEADACHEMD_SOAK_PATIENTS / _SECONDS / _INTERVAL / _IDLE_SECONDS set the
//   same; flags win. --seconds: the run goes on to the first gap after it.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "child.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"

namespace {

namespace fs = std::filesystem;
namespace sbx = headachemd::sandbox;
namespace st = headachemd::store;
using std::chrono::milliseconds;
using std::chrono::seconds;
using steady = std::chrono::steady_clock;

constexpr double rss_growth_limit = 1.10;
constexpr double peak_rss_limit_mib = 64;
constexpr double idle_cpu_limit_per_minute = 0.05;
constexpr int max_concurrent = 4;
const char* const clinical_tables[] = {"patient",     "condition", "medication_request", "encounter",
                                       "observation", "procedure", "appointment"};

struct settings {
    int patients = 1000;
    int seconds = 30;
    int interval = 0;  // 0: from a sync-once first
    int idle_seconds = 10;
    double faults = 1.0;  // scales every fault rate and count
    std::string daemon = HEADACHEMD_BINARY;
    std::string dir;
    bool verbose = false;
};

// ---- /proc readers ---------------------------------------------------------

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A "Name:   123 kB" line of /proc/PID/status, in kB (or the bare number).
long long status_field(const std::string& status, const std::string& name) {
    const auto at = status.find("\n" + name + ":");
    if (at == std::string::npos) return -1;
    return std::atoll(status.c_str() + at + name.size() + 2);
}

struct sample {
    double at_s = 0;         // since the daemon started
    long long rss_kb = 0;    // VmRSS
    long long hwm_kb = 0;    // VmHWM: the peak so far
    int fds = 0;             // entries of /proc/PID/fd
    int sockets = 0;         // of which sockets
    int tcp = 0;             // of which TCP connections (any state but LISTEN)
    int tcp_listen = 0;      // of which listening TCP sockets
    long long cpu_ns = 0;    // all threads, /proc/PID/task/*/schedstat
    long long switches = 0;  // voluntary + involuntary context switches, all threads
    long long threads = 0;   // Threads:
    std::map<std::string, long long> rows;
    long long total_rows() const {
        long long n = 0;
        for (const auto& [t, c] : rows) n += c;
        return n;
    }
};

// inode → TCP state (hex, as in the kernel table; 0A is LISTEN).
std::map<std::string, std::string> tcp_inodes(pid_t pid) {
    std::map<std::string, std::string> out;
    for (const char* table : {"tcp", "tcp6"}) {
        std::istringstream in(slurp(fs::path("/proc") / std::to_string(pid) / "net" / table));
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream f(line);
            std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
            if (f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode)
                out[inode] = state;
        }
    }
    return out;
}

sample read_proc(pid_t pid) {
    sample s;
    const fs::path proc = fs::path("/proc") / std::to_string(pid);
    const std::string status = "\n" + slurp(proc / "status");
    s.rss_kb = status_field(status, "VmRSS");
    s.hwm_kb = status_field(status, "VmHWM");
    s.threads = status_field(status, "Threads");
    const auto tcp = tcp_inodes(pid);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(proc / "fd", ec)) {
        ++s.fds;
        std::error_code lec;
        const std::string target = fs::read_symlink(e.path(), lec).string();
        if (target.rfind("socket:[", 0) != 0) continue;
        ++s.sockets;
        const auto it = tcp.find(target.substr(8, target.size() - 9));
        if (it == tcp.end()) continue;
        if (it->second == "0A")
            ++s.tcp_listen;
        else
            ++s.tcp;
    }
    for (const auto& t : fs::directory_iterator(proc / "task", ec)) {
        s.cpu_ns += std::atoll(slurp(t.path() / "schedstat").c_str());
        const std::string ts = "\n" + slurp(t.path() / "status");
        s.switches +=
            status_field(ts, "voluntary_ctxt_switches") + status_field(ts, "nonvoluntary_ctxt_switches");
    }
    return s;
}

// ---- headache.db, read-only from outside --------------------------------

void count_rows(const fs::path& db_path, sample& s) {
    SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
    db.exec("PRAGMA busy_timeout = 5000");
    for (const char* t : clinical_tables) {
        SQLite::Statement q(db, std::string("SELECT count(*) FROM ") + t);
        q.executeStep();
        s.rows[t] = q.getColumn(0).getInt64();
    }
}

// The earliest next run the daemon has published (sync_status, '*' rows),
// or nullopt when the table is not there yet.
std::optional<std::string> earliest_next_run(const fs::path& db_path) {
    if (!fs::exists(db_path)) return std::nullopt;
    try {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        db.exec("PRAGMA busy_timeout = 5000");
        SQLite::Statement q(db,
                            "SELECT min(next_run_at), count(*) FROM sync_status WHERE resource_type = '*'");
        if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
        return q.getColumn(0).getString();
    } catch (const std::exception&) {
        return std::nullopt;  // the daemon is still creating the schema
    }
}

// ---- the daemon's log -----------------------------------------------------

// Follows the daemon's stderr file: counts "pass N done" lines (one per
// scheduler pass) and warnings/errors.
class log_follower {
public:
    explicit log_follower(fs::path p) : path_(std::move(p)) {}
    void poll() {
        std::ifstream in(path_, std::ios::binary);
        in.seekg(static_cast<std::streamoff>(offset_));
        std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        offset_ += chunk.size();
        partial_ += chunk;
        std::size_t nl;
        while ((nl = partial_.find('\n')) != std::string::npos) {
            const std::string line = partial_.substr(0, nl);
            partial_.erase(0, nl + 1);
            ++lines_;
            if (line.find("pass ") != std::string::npos && line.find(" done:") != std::string::npos)
                ++passes_;
            if (line.find("warn") != std::string::npos) ++warnings_;
            if (line.find("error") != std::string::npos || line.find("critical") != std::string::npos)
                ++errors_;
        }
    }
    long long passes() const { return passes_; }
    long long lines() const { return lines_; }
    long long warnings() const { return warnings_; }
    long long errors() const { return errors_; }

private:
    fs::path path_;
    std::size_t offset_ = 0;
    std::string partial_;
    long long passes_ = 0, lines_ = 0, warnings_ = 0, errors_ = 0;
};

// ---- setup ------------------------------------------------------------------

void write_file(const fs::path& p, const std::string& text, fs::perms perms) {
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out) throw std::runtime_error("cannot write " + p.string());
    }
    fs::permissions(p, perms);
}

pid_t spawn_daemon(const std::string& binary, const std::string& command, const fs::path& config,
                   const fs::path& log_path) {
    return headachemd::bench::spawn_child(
        {binary, command, "--config", config.string(), "--log-level", "info"}, log_path);
}

struct scratch_dir {
    fs::path path;
    bool keep = false;
    explicit scratch_dir(const std::string& wanted) {
        if (!wanted.empty()) {
            path = wanted;
            fs::create_directories(path);
            keep = true;
            return;
        }
        std::string tmpl = (fs::temp_directory_path() / "headachemd-bench-soak-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory");
        path = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        if (!keep) fs::remove_all(path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
};

void arm_slow_responses(sbx::server& ehr, const settings& s) {
    // Slower than usual but inside the deadline, and two beyond it
    // (http_timeout 3 s): the job fails and is retried next cycle.
    const int slow = std::max(1, static_cast<int>(s.faults * s.patients / 200));
    ehr.clear_scripted_faults();
    sbx::scripted_fault late;
    late.what = sbx::scripted_fault::kind::slow;
    late.type = "Encounter";
    late.count = s.faults > 0 ? 2 : 0;
    late.delay = milliseconds(4000);
    if (late.count > 0) ehr.add_scripted_fault(late);
    sbx::scripted_fault slow_one;
    slow_one.what = sbx::scripted_fault::kind::slow;
    slow_one.count = slow;
    slow_one.delay = milliseconds(700);
    if (s.faults > 0) ehr.add_scripted_fault(slow_one);
}

// Between cycles: new and changed data for a rotating tenth of the patients,
// so later cycles write rows and not only read empty incremental pages.
int change_data(sbx::server& ehr, const std::vector<std::string>& ids, int cycle) {
    int changed = 0;
    for (std::size_t i = static_cast<std::size_t>(cycle) % 10; i < ids.size(); i += 10) {
        ehr.add_resource("Observation", ids[i]);
        const auto conditions = ehr.ids_of("Condition", ids[i]);
        if (!conditions.empty()) ehr.update_resource("Condition", conditions.front());
        ++changed;
    }
    return changed;
}

double mib(long long kb) { return static_cast<double>(kb) / 1024.0; }

void print_sample(const char* what, const sample& s) {
    std::printf(
        "  %-6s t=%6.1f s  RSS %6.1f MiB  peak %6.1f MiB  fds %3d (sockets %d, TCP %d + %d listening)  "
        "rows %lld\n",
        what, s.at_s, mib(s.rss_kb), mib(s.hwm_kb), s.fds, s.sockets, s.tcp, s.tcp_listen, s.total_rows());
}

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : fallback;
}

bool soak(const settings& s) {
    scratch_dir dir(s.dir);
    const auto t_setup = steady::now();

    // ---- the EHR ----
    sbx::options so;
    so.tls = true;
    so.patients = s.patients;
    so.seed = 7;
    // Access tokens outlive one cycle but not two or three, so a long run
    // refreshes every patient again (a rotated refresh token, fsynced). At least
    // 120 s: the engine refreshes a token with less than 60 s left
    // (access_token_state::refresh_margin), so a shorter one would be
    // refreshed before every request.
    so.access_token_lifetime = seconds(s.interval > 0 ? std::max(120, s.interval * 3 / 2) : 120);
    sbx::background_server ehr(so);
    ehr->write_ca_pem(dir.path / "sandbox-ca.pem");
    write_file(dir.path / "client.secret", ehr->config().client_secret,
               fs::perms::owner_read | fs::perms::owner_write);
    const auto ids = ehr->patient_ids();

    // ---- config and vault, as an installation with N enrolled patients ----
    const fs::path db_path = dir.path / "headache.db";
    auto write_config = [&](int interval) {
        std::string toml = "[daemon]\ndatabase = \"" + db_path.string() + "\"\nvault = \"" +
                           (dir.path / "vault.db").string() + "\"\ntoken_key_file = \"" +
                           (dir.path / "token.key").string() + "\"\nlog_level = \"info\"\n" +
                           "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                           ehr->fhir_base() + "\"\nclient_id = \"" + ehr->config().client_id +
                           "\"\nclient_secret_file = \"" + (dir.path / "client.secret").string() +
                           "\"\nca_file = \"" + (dir.path / "sandbox-ca.pem").string() +
                           "\"\npage_size = 50\nmax_concurrent = " + std::to_string(max_concurrent) +
                           "\nrequests_per_minute = 60000\nhttp_timeout = \"3s\"\n" +
                           "interval = " + std::to_string(interval) + "\n";
        toml.reserve(toml.size() + ids.size() * 90);
        for (std::size_t i = 0; i < ids.size(); ++i)
            toml += "\n[[patient]]\nkey = \"soak-" + std::to_string(i + 1) +
                    "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + ids[i] + "\"\n";
        write_file(dir.path / "sync.toml", toml, fs::perms::owner_read | fs::perms::owner_write);
    };
    write_config(std::max(1, s.interval));
    {
        st::vault vault(dir.path / "vault.db", st::write_new_token_key(dir.path / "token.key"));
        // Setup only: one fsync per enrollment would take minutes at 10,000
        // patients and is not what this bench measures. The daemon opens
        // the vault itself, with synchronous=FULL.
        vault.sql().exec("PRAGMA synchronous = OFF");
        const std::string now = st::utc_timestamp(std::chrono::system_clock::now());
        for (std::size_t i = 0; i < ids.size(); ++i)
            vault.put_enrollment({"soak-" + std::to_string(i + 1), "sandbox", ids[i],
                                  ehr->issue_refresh_token(ids[i]), "", now, false},
                                 now);
    }
    // Two patients whose grants the EHR revoked before the daemon started.
    std::set<std::string> revoked;
    if (s.faults > 0 && ids.size() >= 4) {
        for (std::size_t i : {ids.size() / 3, ids.size() / 2}) {
            ehr->revoke_patient_grants(ids[i]);
            revoked.insert(ids[i]);
        }
    }
    ehr->set_fault_rates(0.001 * s.faults, 0.001 * s.faults, 0.0005 * s.faults, 0.0005 * s.faults);
    arm_slow_responses(*ehr, s);
    const double setup_s = std::chrono::duration<double>(steady::now() - t_setup).count();

    // --interval 0 (the default): one `sync-once` first, the full first pass
    // of every patient, and an interval long enough for an incremental
    // cycle (more requests than a full one at this data size: a count check
    // per type), the jitter and the idle window, on this machine today.
    int interval = s.interval;
    double calibration_s = 0;
    long long calibration_peak_kb = 0;
    if (interval <= 0) {
        const auto t = steady::now();
        const pid_t once =
            spawn_daemon(s.daemon, "sync-once", dir.path / "sync.toml", dir.path / "sync-once.log");
        int status = 0;
        rusage ru{};
        if (::wait4(once, &status, 0, &ru) != once) throw std::runtime_error("sync-once: wait4 failed");
        calibration_s = std::chrono::duration<double>(steady::now() - t).count();
        calibration_peak_kb = ru.ru_maxrss;  // kB on Linux
        // 0: every patient synced; 75: some failed (the faults, the revoked patients).
        if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 75))
            throw std::runtime_error("sync-once failed; see " + (dir.path / "sync-once.log").string());
        // + 16 s: the jobs hit by a response slower than http_timeout (3 s)
        // take two timeouts and their backoff, and run in passes of their
        // own after the cycle's main pass (a pass ends before the next
        // starts), so they lengthen the cycle by about that much. Without it
        // a loaded machine never shows an idle gap.
        interval = static_cast<int>(std::ceil(2.2 * calibration_s)) + s.idle_seconds + 3 + 16;
        write_config(interval);
        arm_slow_responses(*ehr, s);
        // The daemon keeps the due times an earlier run wrote (a restart
        // does not sync everyone again): forget sync-once's, so that the
        // first cycle of `run` starts at once, as on a first start.
        SQLite::Database db(db_path.string(), SQLite::OPEN_READWRITE);
        db.exec("UPDATE sync_status SET next_run_at = NULL");
    }
    ehr->reset_counters();

    std::printf(
        "bench_soak: %d patients, daemon for %d s, interval %d s%s (+ up to 10%% jitter), idle window %d s, "
        "fault scale %.2f\n",
        s.patients, s.seconds, interval, s.interval > 0 ? "" : " (from sync-once)", s.idle_seconds, s.faults);
    std::printf("  setup (sandbox, config, vault) %.1f s in %s\n", setup_s, dir.path.c_str());
    if (calibration_s > 0)
        std::printf("  sync-once (first, full pass)   %.1f s, peak RSS %.1f MiB\n", calibration_s,
                    mib(calibration_peak_kb));
    std::fflush(stdout);

    // ---- the daemon ----
    const fs::path log_path = dir.path / "daemon.log";
    const pid_t pid = spawn_daemon(s.daemon, "run", dir.path / "sync.toml", log_path);
    const auto t0 = steady::now();
    auto since_start = [&] { return std::chrono::duration<double>(steady::now() - t0).count(); };
    log_follower log(log_path);
    std::vector<sample> cycle_ends;
    std::optional<sample> idle_from, idle_to;
    long long passes_at_idle = 0;
    long long rss_max_sampled = 0;
    long long passes_at_last_idle = 0;
    int exit_status = -1;
    bool exited = false;
    const double give_up_s = s.seconds + 4.0 * interval + 60;
    std::string failure;
    auto last_rss = steady::now();

    for (;;) {
        std::this_thread::sleep_for(milliseconds(200));
        int st_wait = 0;
        if (::waitpid(pid, &st_wait, WNOHANG) == pid) {
            exited = true;
            exit_status = st_wait;
            failure = "the daemon exited on its own";
            break;
        }
        log.poll();
        if (steady::now() - last_rss >= seconds(1)) {
            last_rss = steady::now();
            rss_max_sampled = std::max(rss_max_sampled, read_proc(pid).rss_kb);
        }
        if (since_start() > give_up_s) {
            failure = "no gap of the idle window between cycles within " +
                      std::to_string(static_cast<int>(give_up_s)) +
                      " s: a cycle takes longer than --interval minus the idle window";
            break;
        }
        if (log.passes() == passes_at_last_idle) continue;
        // A cycle's end: a pass has ended, and nothing is due before the
        // earliest published next run, which is at least the idle window
        // away. (Within a cycle the jitter leaves gaps of a second or two
        // between passes: those are not its end.)
        const auto next = earliest_next_run(db_path);
        const std::string after_window =
            st::utc_timestamp(std::chrono::system_clock::now() + seconds(s.idle_seconds + 1));
        if (!next || *next <= after_window) continue;
        log.poll();
        passes_at_last_idle = log.passes();

        sample smp = read_proc(pid);
        smp.at_s = since_start();
        count_rows(db_path, smp);
        cycle_ends.push_back(smp);
        const int cycle = static_cast<int>(cycle_ends.size());
        const auto st = ehr->stats();
        std::printf(
            "  cycle %2d done at %6.1f s: RSS %6.1f MiB, peak %6.1f MiB, fds %d, TCP %d, rows %lld, "
            "%lld passes, sandbox %llu requests (%llu 429, %llu resets, %llu truncated)\n",
            cycle, smp.at_s, mib(smp.rss_kb), mib(smp.hwm_kb), smp.fds, smp.tcp, smp.total_rows(),
            log.passes(), static_cast<unsigned long long>(st.requests),
            static_cast<unsigned long long>(st.responses_429), static_cast<unsigned long long>(st.resets),
            static_cast<unsigned long long>(st.truncations));
        std::fflush(stdout);

        // The idle window: in the first gap between cycles.
        if (!idle_to) {
            passes_at_idle = log.passes();
            idle_from = read_proc(pid);
            std::this_thread::sleep_for(seconds(s.idle_seconds));
            idle_to = read_proc(pid);
            log.poll();
            if (log.passes() != passes_at_idle) {
                idle_from.reset();
                idle_to.reset();
            }
        }

        if (since_start() >= s.seconds && cycle >= 2 && idle_to) break;
        if (cycle == 1 && s.faults > 0 && ids.size() >= 4) {
            // A revocation while the daemon runs (the patient stopped sharing).
            ehr->revoke_patient_grants(ids[ids.size() - 1]);
            revoked.insert(ids[ids.size() - 1]);
        }
        change_data(*ehr, ids, cycle);
        arm_slow_responses(*ehr, s);
    }

    // ---- stop: SIGTERM, exit 0 expected ----
    const sample before_stop = exited ? sample{} : read_proc(pid);
    if (!exited) {
        ::kill(pid, SIGTERM);
        const auto deadline = steady::now() + seconds(60);
        while (::waitpid(pid, &exit_status, WNOHANG) != pid) {
            if (steady::now() > deadline) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &exit_status, 0);
                failure = "the daemon did not stop within 60 s of SIGTERM";
                break;
            }
            std::this_thread::sleep_for(milliseconds(50));
        }
    }
    log.poll();
    const bool clean_exit = WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0;
    const auto stats = ehr->stats();

    if (!failure.empty() || cycle_ends.size() < 2 || !idle_to) {
        std::printf(
            "  FAILED: %s\n",
            !failure.empty() ? failure.c_str()
            : cycle_ends.size() < 2
                ? "fewer than two cycles: raise --seconds"
                : "no idle gap of --idle-seconds: raise --interval (the gap is about interval - pass time)");
        std::printf("  daemon log: %s (%lld lines)\n", log_path.c_str(), log.lines());
        return false;
    }

    const sample& a = cycle_ends.front();
    const sample& b = cycle_ends.back();
    const double rss_ratio = static_cast<double>(b.rss_kb) / static_cast<double>(a.rss_kb);
    const double peak_mib =
        mib(std::max({before_stop.hwm_kb, b.hwm_kb, rss_max_sampled, calibration_peak_kb}));
    const double idle_s = static_cast<double>(s.idle_seconds);
    const double idle_cpu_s = static_cast<double>(idle_to->cpu_ns - idle_from->cpu_ns) / 1e9;
    const double idle_cpu_per_min = idle_cpu_s * 60.0 / idle_s;
    const long long idle_wakeups = idle_to->switches - idle_from->switches;
    const bool rss_ok = rss_ratio <= rss_growth_limit;
    const int other_fds_growth = (b.fds - b.sockets) - (a.fds - a.sockets);
    const bool fds_ok = other_fds_growth <= 0;
    const bool sockets_ok = b.sockets - b.tcp_listen <= max_concurrent;
    const bool tcp_ok = b.tcp <= max_concurrent;
    const bool peak_ok = peak_mib <= peak_rss_limit_mib;
    const bool idle_ok = idle_cpu_per_min <= idle_cpu_limit_per_minute;

    std::printf("  figures (start = idle after cycle 1, end = idle after cycle %zu):\n", cycle_ends.size());
    print_sample("start", a);
    print_sample("end", b);
    std::printf("  rows per table at the end:");
    for (const auto& [t, c] : b.rows) std::printf(" %s %lld", t.c_str(), c);
    std::printf("\n  rows written after cycle 1   %8lld\n", b.total_rows() - a.total_rows());
    std::printf("  scheduler passes            %8lld\n", log.passes());
    std::printf(
        "  sandbox requests            %8llu (429 %llu, resets %llu, truncated %llu, token %llu)\n",
        static_cast<unsigned long long>(stats.requests), static_cast<unsigned long long>(stats.responses_429),
        static_cast<unsigned long long>(stats.resets), static_cast<unsigned long long>(stats.truncations),
        static_cast<unsigned long long>(stats.token_calls));
    std::printf("  daemon log lines            %8lld (%lld warnings, %lld errors)\n", log.lines(),
                log.warnings(), log.errors());
    std::printf("  threads                     %8lld\n", b.threads);
    std::printf("  idle window                 %8d s: CPU %.4f s, %lld context switches\n", s.idle_seconds,
                idle_cpu_s, idle_wakeups);
    std::printf("  SIGTERM                     %s\n", clean_exit ? "exit 0" : "DID NOT EXIT 0");
    std::printf("  ratio end RSS / start RSS = %.3f, limit %.2f: %s\n", rss_ratio, rss_growth_limit,
                rss_ok ? "PASS" : "FAIL");
    std::printf("  end fds - start fds, sockets aside = %d, limit 0: %s\n", other_fds_growth,
                fds_ok ? "PASS" : "FAIL");
    std::printf("  end sockets = %d (%d listening, start %d), limit %d + listening (max_concurrent): %s\n",
                b.sockets, b.tcp_listen, a.sockets, max_concurrent, sockets_ok ? "PASS" : "FAIL");
    std::printf("  end TCP connections = %d (start %d), limit %d (max_concurrent): %s\n", b.tcp, a.tcp,
                max_concurrent, tcp_ok ? "PASS" : "FAIL");
    std::printf("  peak RSS %.1f MiB at %d patients, limit %.0f MiB: %s\n", peak_mib, s.patients,
                peak_rss_limit_mib, peak_ok ? "PASS" : "FAIL");
    std::printf("  idle CPU %.4f s per idle minute, limit %.2f: %s\n", idle_cpu_per_min,
                idle_cpu_limit_per_minute, idle_ok ? "PASS" : "FAIL");
    if (s.verbose || !(rss_ok && fds_ok && sockets_ok && tcp_ok && peak_ok && idle_ok && clean_exit))
        std::printf("  daemon log: %s\n", log_path.c_str());
    return rss_ok && fds_ok && sockets_ok && tcp_ok && peak_ok && idle_ok && clean_exit;
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    s.patients = env_int("HEADACHEMD_SOAK_PATIENTS", s.patients);
    s.seconds = env_int("HEADACHEMD_SOAK_SECONDS", s.seconds);
    s.interval = env_int("HEADACHEMD_SOAK_INTERVAL", s.interval);
    s.idle_seconds = env_int("HEADACHEMD_SOAK_IDLE_SECONDS", s.idle_seconds);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--patients" && has_value)
            s.patients = std::max(1, std::atoi(argv[++i]));
        else if (a == "--seconds" && has_value)
            s.seconds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--interval" && has_value)
            s.interval = std::max(0, std::atoi(argv[++i]));
        else if (a == "--idle-seconds" && has_value)
            s.idle_seconds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--faults" && has_value)
            s.faults = std::max(0.0, std::atof(argv[++i]));
        else if (a == "--daemon" && has_value)
            s.daemon = argv[++i];
        else if (a == "--dir" && has_value)
            s.dir = argv[++i];
        else if (a == "--verbose")
            s.verbose = true;
        else {
            std::fprintf(stderr,
                         "usage: bench_soak [--patients N] [--seconds S] [--interval I] [--idle-seconds W]\n"
                         "                  [--faults X] [--daemon PATH] [--dir DIR] [--verbose]\n");
            return 2;
        }
    }
    try {
        return soak(s) ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("bench_soak: FAILED: %s\n", e.what());
        return 1;
    }
}
