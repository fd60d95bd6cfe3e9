// bench/sync: is a sync pass as fast as the EHR lets it be?
//
// Against the sandbox EHR over loopback TLS, with the real engine, HTTP
// client, analytics DB and vault, in one run:
//
//   latency-bound  N patients, every response delayed by L. No client can do
//                  better than requests × L ÷ concurrency: each request costs
//                  at least L and at most `max_concurrent` are in flight.
//                  `requests` is the minimum the pass needs, from the
//                  sandbox's data (minimal_per_patient), not the engine's
//                  count; more than the minimum fails. Prints wall / bound
//                  against the limit 1.2.
//   calls per pass the requests per patient of a first pass and of a second
//                  pass within the access token's life (new engine, as a new
//                  sync-once), generic and eClinicalWorks profiles; the
//                  second must send no token request and no count check,
//                  and each is printed next to its minimal count (fails
//                  above it).
//   eClinicalWorks (--ecw, or HEADACHEMD_BENCH_ECW=1; minutes of wall time)
//                  the sandbox's eCW mode (250 calls per wall-clock minute,
//                  429 with no Retry-After) with the eclinicalworks preset.
//                  Prints calls per minute against the allowed 250 and the
//                  429s; targets ≥ 95% of 250 and zero 429s.
//
// Each latency-bound figure is the best of --repeat runs (each with a fresh
// sandbox and databases) so that a noisy neighbour on a 2-core machine does
// not decide the result; every run is printed.
//
// Usage: bench_sync [--patients N] [--latency-ms L] [--concurrency C] [--repeat R]
//                   [--ecw] [--ecw-patients N] [--ecw-seconds S] [--verbose]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/engine.hpp"
#include "temp_dir.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace cfg = headachemd::config;
namespace hh = headachemd::http;
namespace sbx = headachemd::sandbox;
namespace st = headachemd::store;
using std::chrono::milliseconds;
using std::chrono::seconds;
using wall_clock = std::chrono::system_clock;

constexpr double ratio_limit = 1.2;
constexpr double ecw_allowed_per_minute = 250;  // eCW's documented budget per practice
constexpr double ecw_rate_target = 0.95;

// This bench's scratch directory.
struct temp_dir : headachemd::bench::temp_dir {
    temp_dir() : headachemd::bench::temp_dir("headachemd-bench-sync") {}
};

using minute_number = std::int64_t;

minute_number minute_of(wall_clock::time_point t) {
    return std::chrono::floor<std::chrono::minutes>(t.time_since_epoch()).count();
}

// Counts the requests the engine hands to the network per wall-clock
// minute, because eCW's budget is a fixed window per wall-clock minute
// (DESIGN "EHR realities"), not a sliding one. It sits after the engine's
// rate limiter, so it sees a request when it really leaves.
class window_counting_transport final : public hh::transport {
public:
    explicit window_counting_transport(hh::transport& inner) : inner_(inner) {}

    asio::awaitable<headachemd::result<hh::response>> send(hh::request req) override {
        ++per_window_[minute_of(wall_clock::now())];
        co_return co_await inner_.send(std::move(req));
    }

    const std::map<minute_number, std::uint64_t>& per_window() const { return per_window_; }

private:
    hh::transport& inner_;
    std::map<minute_number, std::uint64_t> per_window_;
};

struct setup {
    int patients = 20;
    milliseconds latency{20};
    int concurrency = 4;
    bool ecw = false;
    std::optional<int> requests_per_minute;  // nullopt: the preset's
    std::optional<seconds> stop_after;       // engine.stop() after this long
    bool align_to_minute = false;            // start the pass on a minute boundary
    bool verbose = false;
};

struct figures {
    int synced = 0, failed = 0, patients = 0;
    std::uint64_t sandbox_requests = 0, sandbox_429 = 0;
    std::uint64_t discovery = 0, token = 0, fhir = 0;  // the sandbox's breakdown
    int engine_requests = 0;
    double minimal_requests = 0;  // minimal_per_patient() x patients: what the pass needs at least
    double wall_s = 0;
    wall_clock::time_point start, end;
    std::map<minute_number, std::uint64_t> per_window;
};

// A sandbox EHR and fresh databases with every sandbox patient enrolled, as
// `demo` builds them: a sync.toml would add nothing measured.
struct bench_env {
    temp_dir dir;
    sbx::background_server sandbox;
    cfg::config c;
    std::unique_ptr<st::analytics_db> db;
    std::unique_ptr<st::vault> vault;

    static sbx::options sandbox_options(const setup& s) {
        sbx::options so;
        so.tls = true;
        so.patients = s.patients;
        so.latency = s.latency;
        so.ecw_mode = s.ecw;
        return so;
    }

    explicit bench_env(const setup& s) : sandbox(sandbox_options(s)) {
        const auto& sconf = sandbox->config();
        sandbox->write_ca_pem(dir.path / "sandbox-ca.pem");
        {
            std::ofstream secret(dir.path / "client.secret", std::ios::binary);
            secret << sconf.client_secret;
        }
        fs::permissions(dir.path / "client.secret", fs::perms::owner_read | fs::perms::owner_write);
        c.daemon.database = dir.path / "headache.db";
        c.daemon.vault = dir.path / "vault.db";
        cfg::ehr_settings ehr = *cfg::profile_preset(s.ecw ? "eclinicalworks" : "generic");
        ehr.name = "sandbox";
        ehr.fhir_base = sandbox->fhir_base();
        ehr.client_id = sconf.client_id;
        ehr.client_secret_file = dir.path / "client.secret";
        ehr.ca_file = dir.path / "sandbox-ca.pem";
        ehr.max_concurrent = s.concurrency;
        if (s.requests_per_minute) ehr.requests_per_minute = *s.requests_per_minute;
        c.ehrs.push_back(ehr);
        db = std::make_unique<st::analytics_db>(c.daemon.database);
        c.daemon.token_key_file = dir.path / "token.key";
        vault =
            std::make_unique<st::vault>(c.daemon.vault, st::write_new_token_key(*c.daemon.token_key_file));
        // The headless shortcut instead of /authorize + /token: enrollment is
        // not what this bench measures, and its calls would count against the
        // same budget before the pass starts.
        std::string scope;
        for (const auto& sc : ehr.scopes) scope += (scope.empty() ? "" : " ") + sc;
        const auto ids = sandbox->patient_ids();
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const std::string key = "bench-" + std::to_string(i + 1);
            const std::string now = st::utc_timestamp(wall_clock::now());
            vault->put_enrollment(
                {key, ehr.name, ids[i], sandbox->issue_refresh_token(ids[i]), scope, now, false}, now);
            c.patients.push_back({key, ehr.name, ids[i]});
        }
        sandbox->reset_counters();
    }
};

// The fewest requests a pass can make, per patient, from the sandbox's own
// data rather than from what the engine chose to send (issue 18: a bound
// built from the engine's count rises with every unnecessary request).
// Per patient: the token request when the pass must refresh, one Patient
// read, and per other searched type ceil(n / page) pages, at least one (an
// empty searchset is still one answer), n being what a complete search
// returns: every resource of the type on a full pull, none on an
// incremental pull when nothing changed since the last one. Once per pass,
// shared by the patients: discovery and the capability statement.
double minimal_per_patient(bench_env& env, bool with_token, bool incremental) {
    const auto& ehr = env.c.ehrs.front();
    const auto& sconf = env.sandbox->config();
    // No _count (eCW): the server's fixed page; else _count, clamped as the server does.
    const int page = ehr.page_size ? std::min(*ehr.page_size, sconf.max_page_size) : sconf.default_page_size;
    const bool pages_by_param = sconf.ecw_mode && ehr.page_param.has_value();
    const auto ids = env.sandbox->patient_ids();
    double total = 2;  // .well-known/smart-configuration and metadata
    for (const auto& id : ids) {
        total += (with_token ? 1 : 0) + 1;  // token, Patient read
        for (const auto& r : ehr.resources) {
            if (r.type == "Patient") continue;
            const std::size_t n = incremental ? 0 : env.sandbox->count_for(id, r.type);
            total += std::max<std::size_t>(1, (n + page - 1) / page);
            // eCW (the sandbox's ecw_mode) pages by a `page` parameter, with
            // a fixed page size it does not state; a next link comes only
            // when another page exists. A client paging by the parameter
            // cannot tell a lone non-empty page from the first of several
            // without one more (empty) request. A read (Patient) is never
            // paged, so it needs no such request.
            if (pages_by_param && n > 0 && n <= static_cast<std::size_t>(page)) total += 1;
        }
    }
    return total / static_cast<double>(ids.size());
}

figures run_pass(const setup& s) {
    bench_env env(s);
    auto& sandbox = env.sandbox;
    auto& c = env.c;
    auto& db = *env.db;
    auto& vault = *env.vault;
    const auto& ehr = c.ehrs.front();

    // The engine's logger is injected; a null sink keeps logging out of the
    // figures unless --verbose asks why a pass failed.
    spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    if (s.verbose) sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto log = std::make_shared<spdlog::logger>("bench", sink);
    log->set_level(s.verbose ? spdlog::level::info : spdlog::level::off);

    asio::io_context io;
    hh::client_options ho;
    ho.extra_ca_files.push_back(*ehr.ca_file);
    hh::client client(io.get_executor(), ho);
    window_counting_transport counting(client);
    headachemd::system_clock clk;
    headachemd::sync::engine engine(io.get_executor(), c, counting, db, vault, clk, log);

    figures f;
    // A first pass: every patient refreshes and pulls everything.
    f.minimal_requests = minimal_per_patient(env, true, false) * static_cast<double>(c.patients.size());
    std::exception_ptr failure;
    auto main_task = [&]() -> asio::awaitable<void> {
        if (s.align_to_minute) {
            // eCW counts per wall-clock minute: starting on a boundary makes
            // every minute of the pass a whole budget window, so the rate
            // does not depend on when the bench happened to start.
            const auto now = wall_clock::now();
            asio::steady_timer align(io, std::chrono::ceil<std::chrono::minutes>(now) - now);
            co_await align.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        asio::steady_timer stop_timer(io);
        if (s.stop_after) {
            stop_timer.expires_after(*s.stop_after);
            stop_timer.async_wait([&engine](const boost::system::error_code& ec) {
                if (!ec) engine.stop();
            });
        }
        f.start = wall_clock::now();
        const auto t0 = std::chrono::steady_clock::now();
        const auto pass = co_await engine.run_pass();
        f.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        f.end = wall_clock::now();
        stop_timer.cancel();
        client.close_idle();
        f.synced = pass.succeeded();
        f.failed = pass.failed();
        f.patients = static_cast<int>(pass.patients.size());
    };
    asio::co_spawn(io, main_task, [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);

    const auto stats = sandbox->stats();
    f.sandbox_requests = stats.requests;
    f.sandbox_429 = stats.responses_429;
    f.discovery = stats.discovery_calls;
    f.token = stats.token_calls;
    f.fhir = stats.fhir_calls;
    f.engine_requests = engine.counters().requests;
    f.per_window = counting.per_window();
    return f;
}

// Calls per patient in one pass, by kind, from the audit log the engine
// writes for every request (docs/admin/monitoring.md "Audit log").
struct call_mix {
    double token = 0, reads = 0, searches = 0, pages = 0, counts = 0, other = 0;
    double total() const { return token + reads + searches + pages + counts + other; }
};

call_mix mix_since(st::vault& vault, std::size_t skip, int patients) {
    const auto events = st::query_audit(vault, {});
    call_mix m;
    for (std::size_t i = skip; i < events.size(); ++i) {
        const auto& a = events[i].action;
        if (!events[i].http_status) continue;  // enrollment changes, refused before sending
        double& slot = a == "token.refresh" ? m.token
                       : a == "fhir.read"   ? m.reads
                       : a == "fhir.search" ? m.searches
                       : a == "fhir.page"   ? m.pages
                       : a == "fhir.count"  ? m.counts
                                            : m.other;
        slot += 1.0 / patients;
    }
    return m;
}

// Issue 17, item 3: what a pass costs per patient, the first one and the
// next within the access token's life, each by a new engine as a new
// `sync-once` process would be. The last row is that second pass the way it
// ran before issue 17 (no stored access token, a count check on every pass).
bool calls_per_pass(const setup& s, const char* profile) {
    bench_env env(s);
    std::printf("bench_sync calls per pass: %s profile, %d sandbox patients, per patient\n", profile,
                s.patients);
    std::printf("  %-44s %6s %6s %8s %6s %6s %6s %6s\n", "pass", "token", "reads", "searches", "pages",
                "counts", "other", "total");
    auto one_pass = [&](const char* label) {
        const std::size_t before = st::query_audit(*env.vault, {}).size();
        asio::io_context io;
        hh::client_options ho;
        ho.extra_ca_files.push_back(*env.c.ehrs.front().ca_file);
        hh::client client(io.get_executor(), ho);
        headachemd::system_clock clk;
        auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
        headachemd::sync::engine engine(io.get_executor(), env.c, client, *env.db, *env.vault, clk, log);
        int synced = 0;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                synced = (co_await engine.run_pass()).succeeded();
                client.close_idle();
            },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.run();
        const call_mix m = mix_since(*env.vault, before, s.patients);
        std::printf("  %-44s %6.2f %6.2f %8.2f %6.2f %6.2f %6.2f %6.2f%s\n", label, m.token, m.reads,
                    m.searches, m.pages, m.counts, m.other, m.total(),
                    synced == s.patients ? "" : "  (not every patient synced)");
        return std::make_pair(m, synced == s.patients);
    };
    // The minimal counts come from the sandbox before any pass changes it.
    const double min_first = minimal_per_patient(env, true, false);
    // The second pass runs within the access token's life: no token call;
    // with _lastUpdated it is incremental over unchanged data.
    const double min_second = minimal_per_patient(env, false, env.c.ehrs.front().use_last_updated);
    const auto [first, first_ok] = one_pass("first pass");
    const auto [second, second_ok] = one_pass("second pass, within the access token's life");
    env.c.ehrs.front().count_check_every = seconds(0);
    env.vault->sql().exec("UPDATE enrollment SET access_token = NULL, access_expires_at = NULL");
    const auto [old, old_ok] = one_pass("second pass as before issue 17 (for scale)");
    const bool lean = second.token == 0 && second.counts == 0;
    std::printf("  the second pass sends no token request and no count check: %s\n", lean ? "PASS" : "FAIL");
    // A request over the minimum is one the pass did not need; the small
    // epsilon only absorbs the division by the patient count.
    auto versus_minimal = [](const char* label, const call_mix& m, double minimal) {
        const bool ok = m.total() <= minimal + 1e-9;
        std::printf("  %-44s actual %6.2f, minimal %6.2f per patient: %s\n", label, m.total(), minimal,
                    ok ? "PASS" : "FAIL");
        return ok;
    };
    const bool first_min = versus_minimal("first pass", first, min_first);
    const bool second_min = versus_minimal("second pass, within the access token's life", second, min_second);
    return first_ok && second_ok && old_ok && lean && first_min && second_min;
}

bool latency_bound(const setup& s, int repeat) {
    std::printf("bench_sync latency-bound: %d sandbox patients over loopback TLS, best of %d runs\n",
                s.patients, repeat);
    std::optional<figures> best;
    for (int i = 0; i < repeat; ++i) {
        figures f = run_pass(s);
        std::printf("  run %d: wall %.3f s, %llu requests, %d of %d patients synced\n", i + 1, f.wall_s,
                    static_cast<unsigned long long>(f.sandbox_requests), f.synced, f.patients);
        // The same pass each time (same seed, fresh databases), so the
        // request count does not change; the best wall time is the one the
        // machine disturbed least.
        if (!best || f.wall_s < best->wall_s) best = std::move(f);
    }
    const figures& f = *best;
    const double latency_s = std::chrono::duration<double>(s.latency).count();
    // The bound counts the requests the pass needs, not those the engine
    // sent: an unnecessary request must show as a worse ratio, not as a
    // higher bound. More requests than the minimum fail on their own.
    const double bound = f.minimal_requests * latency_s / s.concurrency;
    const bool minimal = static_cast<double>(f.sandbox_requests) <= f.minimal_requests + 1e-9;
    const double ratio = bound > 0 ? f.wall_s / bound : 0;
    const bool all_synced = f.failed == 0 && f.synced == s.patients;
    const bool pass = all_synced && bound > 0 && ratio <= ratio_limit && minimal;
    std::printf("  patients                    %8d (%d synced, %d failed)\n", s.patients, f.synced, f.failed);
    std::printf("  requests (sandbox)          %8llu\n", static_cast<unsigned long long>(f.sandbox_requests));
    std::printf("  requests (engine)           %8d\n", f.engine_requests);
    std::printf("    discovery + metadata      %8llu\n", static_cast<unsigned long long>(f.discovery));
    std::printf("    token refreshes           %8llu\n", static_cast<unsigned long long>(f.token));
    std::printf("    FHIR reads and searches   %8llu\n", static_cast<unsigned long long>(f.fhir));
    std::printf("  requests minimal (sandbox data) %4.0f: actual %llu, %s\n", f.minimal_requests,
                static_cast<unsigned long long>(f.sandbox_requests),
                minimal ? "PASS" : "FAIL (over the minimum)");
    std::printf("  latency per response        %8lld ms\n", static_cast<long long>(s.latency.count()));
    std::printf("  concurrency (max_concurrent)%8d\n", s.concurrency);
    std::printf("  wall time of run_pass()     %8.3f s\n", f.wall_s);
    std::printf("  bound minimal x L / C       %8.3f s\n", bound);
    std::printf("  ratio wall / bound = %.2f, limit %.2f: %s\n", ratio, ratio_limit, pass ? "PASS" : "FAIL");
    if (!all_synced) std::printf("  not every patient synced: the figures describe a failed pass\n");
    return pass;
}

bool ecw_rate(const setup& s) {
    std::printf(
        "bench_sync eClinicalWorks: %d sandbox patients, latency %lld ms, 250 calls per wall-clock minute\n",
        s.patients, static_cast<long long>(s.latency.count()));
    if (s.stop_after)
        std::printf("  stopping the engine after %lld s\n", static_cast<long long>(s.stop_after->count()));
    std::printf("  waiting for the next minute boundary to start\n");
    std::fflush(stdout);
    const figures f = run_pass(s);
    const double minutes = f.wall_s / 60.0;
    const double whole_rate = minutes > 0 ? static_cast<double>(f.engine_requests) / minutes : 0;

    // A window is full when the pass ran for all of it; one second of slack
    // for the timer that wakes the aligned start a little after the boundary.
    std::uint64_t full_calls = 0;
    int full_windows = 0;
    std::printf("  calls per wall-clock minute window:\n");
    for (const auto& [minute, calls] : f.per_window) {
        const auto w0 = wall_clock::time_point(std::chrono::minutes(minute));
        const auto w1 = w0 + std::chrono::minutes(1);
        const auto covered = std::min(w1, f.end) - std::max(w0, f.start);
        const bool full = covered >= seconds(59);
        if (full) {
            full_calls += calls;
            ++full_windows;
        }
        std::printf("    minute %2d  %5llu calls%s\n", static_cast<int>(minute - minute_of(f.start)) + 1,
                    static_cast<unsigned long long>(calls), full ? "" : " (partial window)");
    }
    const double full_rate = full_windows > 0 ? static_cast<double>(full_calls) / full_windows : 0;
    // Over a bounded run the last partial window can hold a whole burst of
    // 250 calls in a few seconds, so the full windows are the honest figure;
    // the whole pass is the figure when no window was full.
    const double measured = full_windows > 0 ? full_rate : whole_rate;
    const double target = ecw_rate_target * ecw_allowed_per_minute;
    const bool stopped = s.stop_after.has_value() && f.synced + f.failed < s.patients;
    const bool pass = measured >= target && f.sandbox_429 == 0;
    std::printf("  patients                    %8d (%d synced, %d failed%s)\n", s.patients, f.synced,
                f.failed, stopped ? ", pass stopped" : "");
    std::printf("  requests (sandbox)          %8llu\n", static_cast<unsigned long long>(f.sandbox_requests));
    std::printf("  requests (engine)           %8d\n", f.engine_requests);
    std::printf("    discovery + metadata      %8llu\n", static_cast<unsigned long long>(f.discovery));
    std::printf("    token refreshes           %8llu\n", static_cast<unsigned long long>(f.token));
    std::printf("    FHIR reads and searches   %8llu\n", static_cast<unsigned long long>(f.fhir));
    std::printf("  wall time of run_pass()     %8.1f s\n", f.wall_s);
    std::printf("  calls/minute, whole pass    %8.1f\n", whole_rate);
    if (full_windows > 0)
        std::printf("  calls/minute, %d full window%s %6.1f\n", full_windows, full_windows == 1 ? " " : "s",
                    full_rate);
    std::printf("  allowed calls/minute        %8.0f\n", ecw_allowed_per_minute);
    std::printf("  HTTP 429 responses          %8llu\n", static_cast<unsigned long long>(f.sandbox_429));
    std::printf("  rate %.1f / %.0f = %.1f%%, target >= %.0f%% and zero 429s: %s\n", measured,
                ecw_allowed_per_minute, 100.0 * measured / ecw_allowed_per_minute, 100.0 * ecw_rate_target,
                pass ? "PASS" : "FAIL");
    if (f.failed > 0 && !stopped) std::printf("  some patients failed: see --verbose\n");
    return pass;
}

int int_arg(const char* text, int at_least) { return std::max(at_least, std::atoi(text)); }

}  // namespace

int main(int argc, char** argv) {
    setup part1;
    part1.patients = 20;
    part1.latency = milliseconds(20);
    part1.concurrency = 4;
    // High enough that the token bucket never makes a request wait: this
    // part measures latency and concurrency, not the rate limit.
    part1.requests_per_minute = 60000;
    // Best of 5: on two shared cores one disturbed run is common, and a
    // failing benchmark is no longer run a second time (issue 18).
    // Nine: on the 2-core CI machine the best of five moved between 1.15
    // and 1.20 for one binary (2026-12-05, 6932618), so the limit decided
    // on noise; the best of more runs is a steadier floor.
    int repeat = 9;

    setup ecw;
    ecw.ecw = true;
    ecw.patients = 60;
    ecw.latency = milliseconds(20);
    ecw.align_to_minute = true;
    const char* env = std::getenv("HEADACHEMD_BENCH_ECW");
    bool run_ecw = env && std::string(env) == "1";

    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--patients" && has_value)
            part1.patients = int_arg(argv[++i], 1);
        else if (a == "--latency-ms" && has_value)
            part1.latency = ecw.latency = milliseconds(int_arg(argv[++i], 0));
        else if (a == "--concurrency" && has_value)
            part1.concurrency = int_arg(argv[++i], 1);
        else if (a == "--repeat" && has_value)
            repeat = int_arg(argv[++i], 1);
        else if (a == "--ecw")
            run_ecw = true;
        else if (a == "--ecw-patients" && has_value)
            ecw.patients = int_arg(argv[++i], 1);
        else if (a == "--ecw-seconds" && has_value) {
            ecw.stop_after = seconds(int_arg(argv[++i], 1));
            run_ecw = true;
        } else if (a == "--verbose")
            part1.verbose = ecw.verbose = true;
        else {
            std::fprintf(stderr,
                         "usage: bench_sync [--patients N] [--latency-ms L] [--concurrency C] [--repeat R]\n"
                         "                  [--ecw] [--ecw-patients N] [--ecw-seconds S] [--verbose]\n");
            return 2;
        }
    }

    bool ok = true;
    try {
        ok = latency_bound(part1, repeat) && ok;
        setup mix;
        mix.patients = 4;
        mix.latency = milliseconds(0);
        mix.requests_per_minute = 60000;
        ok = calls_per_pass(mix, "generic") && ok;
        setup mix_ecw = mix;
        mix_ecw.ecw = true;
        mix_ecw.requests_per_minute.reset();  // the preset's 250 a minute, well above these passes
        ok = calls_per_pass(mix_ecw, "eclinicalworks") && ok;
        if (run_ecw)
            ok = ecw_rate(ecw) && ok;
        else
            std::printf(
                "bench_sync eClinicalWorks: skipped (minutes of wall time; --ecw or "
                "HEADACHEMD_BENCH_ECW=1)\n");
    } catch (const std::exception& e) {
        std::printf("bench_sync: FAILED: %s\n", e.what());
        return 1;
    }
    return ok ? 0 : 1;
}
