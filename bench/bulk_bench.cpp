// bench/bulk: one clinic, synced both ways (issue 15, "bench/bulk").
//
// Against one sandbox EHR over loopback TLS, every response delayed by L,
// with the real engine, HTTP client, analytics DB and vault, in one run:
//
//   per-patient  every patient enrolled (the sandbox's headless shortcut,
//                not /authorize: enrollment happens once, not every pass),
//                then one first pass of the engine (refresh, Patient read,
//                every search, at [[ehr]] max_concurrent C, with no budget),
//                into its own headache.db;
//   bulk         the same clinic exported once as a backend app (SMART
//                Backend Services token, Group kick-off, status polls, one
//                GET per file, DELETE), through sync::run_configured_export
//                as `export` runs it, into another headache.db.
//
// Calls are what the sandbox answered (every request, token requests
// included), so neither path can undercount itself. It prints both paths'
// calls and wall time (unthrottled; the minutes the calls take under a
// budget of 250 and 600 calls a minute printed beside), and the calls
// ratio, which is the headline: the bulk path's calls do not grow with the
// clinic. The run fails when the bulk path needs more than
// `bulk_call_limit` calls ("a whole Group in a few dozen calls", issue
// 15), when the two databases do not hold the same number of rows per
// table (the analyst sees the same clinic either way), or when either path
// does not complete.
//
// The export's own waits (the first status poll comes 10 s after the
// kick-off, then Retry-After) stand for the time a real EHR takes to
// prepare the files, which the sandbox does not: they are counted and
// printed, not slept, and the bulk wall time is the work without them.
//
// Then, over the Synthea bulk NDJSON of ../shared/data (real export
// files), the apply step (sync::bulk_file_apply, every file in 1 MiB
// pieces as the download hands them over) against what no pipeline on
// simdjson and SQLite can go below, measured in the same run: simdjson's
// parse-only time of the same files plus the floor, a plain prepared
// INSERT of as many rows as the apply stored, in one transaction, with no
// code of ours (bench/floor.hpp, shared with bench/ingest). It prints
// MB/s and apply / (parse + floor) against `apply_ratio_limit`. Without the
// data it prints SKIPPED, except under CI=true, where that fails.
//
// Last, peak RSS with a 1 GB file: the real binary, `headachemd-sync
// export`, in its own process against a sandbox whose Observation file is
// filled to --big-file-mib (default 1024) with copies of its observations
// under new ids; its peak RSS (wait4) against 64 MiB, and every line of the
// file stored. The sandbox holds the file in this process, not the child.
//
// The defaults are the CI setting (1,000 patients: about a minute for the
// first part, about as long for the 1 GB file); docs/dev/benchmarks.md has
// the 10,000-patient run.
//
// Usage: bench_bulk [--patients N] [--latency-ms L] [--concurrency C]
//                   [--repeat R] [--big-file-mib M (0: skip)] [--verbose]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "child.hpp"
#include "floor.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/demo/demo.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_apply.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/engine.hpp"
#include "temp_dir.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace cfg = headachemd::config;
namespace hh = headachemd::http;
namespace sbx = headachemd::sandbox;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::bench::seconds_since;
using std::chrono::milliseconds;
using wall_clock = std::chrono::system_clock;

// Issue 15: "exports a whole Group in a few dozen calls". The sandbox's
// export of the generic preset's types is 13: SMART discovery (for the
// token endpoint), the token, the kick-off, 2 polls, one GET per type's
// file (7) and the DELETE, whatever the clinic's size; a path that began
// to page, poll without bound or fetch per patient would cross this.
constexpr std::uint64_t bulk_call_limit = 50;

// apply / (parse-only + floor) over the Synthea bulk NDJSON. Measured on
// the 2-core development machine while a CI run compiled and tested beside
// it (2026-12-06): 2.59, 3.11, 4.21 and 5.34; the limit is the highest
// x1.5, rounded down (docs/dev/benchmarks.md). The apply commits each file
// with synchronous=FULL (13 fsyncs here, one for the floor), and the
// denominator is about 0.03 s, so an fsync that takes longer moves the
// ratio: hence the best of --repeat runs.
constexpr double apply_ratio_limit = 8.0;

// Issue 15: "peak RSS, which must stay under 64 MiB with a 1 GB file".
constexpr long long peak_rss_limit_kb = 64 * 1024;

constexpr const char* backend_client_id = "headachemd-bench-backend";
constexpr const char* backend_kid = "bench-bulk-1";

struct setup {
    int patients = 1000;
    milliseconds latency{20};
    int concurrency = 4;
    int repeat = 5;
    int big_file_mib = 1024;
    bool verbose = false;
};

// This bench's scratch directory.
struct temp_dir : headachemd::bench::temp_dir {
    temp_dir() : headachemd::bench::temp_dir("headachemd-bench-bulk") {}
};

struct path_figures {
    std::uint64_t calls = 0;
    double wall_s = 0;
    bool complete = false;
    std::string detail;  // what did not complete
    std::vector<std::pair<std::string, long long>> rows_per_table;
};

// One sandbox, one config: the generic preset at the sandbox, with an
// [ehr.bulk] for a backend app whose ES384 key the sandbox has registered.
struct bench_env {
    temp_dir dir;
    headachemd::smart::signing_key backend_key =
        headachemd::smart::signing_key::generate(headachemd::smart::jws_alg::es384);
    sbx::background_server sandbox;
    cfg::config c;

    static sbx::options sandbox_options(const setup& s, const headachemd::smart::signing_key& key) {
        sbx::options so;
        so.tls = true;
        so.patients = s.patients;
        so.latency = s.latency;
        so.backend_client_id = backend_client_id;
        so.backend_jwks = key.public_jwks(backend_kid);
        return so;
    }

    explicit bench_env(const setup& s) : sandbox(sandbox_options(s, backend_key)) {
        const auto& sconf = sandbox->config();
        sandbox->write_ca_pem(dir.path / "sandbox-ca.pem");
        headachemd::demo::write_private_file(dir.path / "client.secret", sconf.client_secret);
        headachemd::demo::write_private_file(dir.path / "bulk-key.pem", backend_key.private_pem());
        cfg::ehr_settings ehr = *cfg::profile_preset("generic");
        ehr.name = "sandbox";
        ehr.fhir_base = sandbox->fhir_base();
        ehr.client_id = sconf.client_id;
        ehr.client_secret_file = dir.path / "client.secret";
        ehr.ca_file = dir.path / "sandbox-ca.pem";
        ehr.max_concurrent = s.concurrency;
        // Unthrottled, so that the walls measure the paths, not the budget
        // (the generic preset's 600 a minute would make the per-patient
        // pass of 1,000 patients take 15 minutes); what the budgets make of
        // the calls is printed beside them.
        ehr.requests_per_minute = 60000;
        auto bulk = *cfg::bulk_preset(ehr.profile, ehr.resources);
        bulk.client_id = backend_client_id;
        bulk.private_key_file = dir.path / "bulk-key.pem";
        bulk.key_id = backend_kid;
        bulk.algorithm = cfg::bulk_algorithm::es384;
        bulk.group_id = sconf.bulk_group_id;
        ehr.bulk = std::move(bulk);
        c.ehrs.push_back(std::move(ehr));
    }

    // Fresh databases for one path, in their own directory.
    void use_databases(const std::string& name) {
        fs::create_directories(dir.path / name);
        c.daemon.database = dir.path / name / "headache.db";
        c.daemon.vault = dir.path / name / "vault.db";
        c.daemon.token_key_file = dir.path / name / "token.key";
    }
};

std::shared_ptr<spdlog::logger> bench_logger(const setup& s) {
    spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    if (s.verbose) sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto log = std::make_shared<spdlog::logger>("bench", sink);
    log->set_level(s.verbose ? spdlog::level::info : spdlog::level::off);
    return log;
}

template <class Body>
void run_on_io(asio::io_context& io, Body body) {
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(body), [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
}

path_figures per_patient_pass(const setup& s, bench_env& env) {
    env.use_databases("per-patient");
    const auto& ehr = env.c.ehrs.front();
    st::analytics_db db(env.c.daemon.database);
    st::vault vault(env.c.daemon.vault, st::write_new_token_key(*env.c.daemon.token_key_file));
    std::string scope;
    for (const auto& sc : ehr.scopes) scope += (scope.empty() ? "" : " ") + sc;
    const auto ids = env.sandbox->patient_ids();
    env.c.patients.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const std::string key = "bench-" + std::to_string(i + 1);
        const std::string now = st::utc_timestamp(wall_clock::now());
        vault.put_enrollment(
            {key, ehr.name, ids[i], env.sandbox->issue_refresh_token(ids[i]), scope, now, false}, now);
        env.c.patients.push_back({key, ehr.name, ids[i]});
    }
    env.sandbox->reset_counters();

    asio::io_context io;
    hh::client_options ho;
    ho.extra_ca_files.push_back(*ehr.ca_file);
    hh::client client(io.get_executor(), ho);
    headachemd::system_clock clk;
    sy::engine engine(io.get_executor(), env.c, client, db, vault, clk, bench_logger(s));
    path_figures f;
    run_on_io(io, [&]() -> asio::awaitable<void> {
        const auto t0 = headachemd::bench::clock_type::now();
        const auto pass = co_await engine.run_pass();
        f.wall_s = seconds_since(t0);
        client.close_idle();
        f.complete = pass.failed() == 0 && pass.succeeded() == static_cast<int>(ids.size());
        if (!f.complete)
            f.detail =
                std::to_string(pass.failed()) + " of " + std::to_string(ids.size()) + " patients failed";
    });
    f.calls = env.sandbox->stats().requests;
    f.rows_per_table = headachemd::demo::summarize(db).rows_per_table;
    env.c.patients.clear();
    return f;
}

struct bulk_figures : path_figures {
    double waited_s = 0;  // the job's own waits, counted, not slept
    std::size_t files = 0;
};

bulk_figures bulk_export(const setup& s, bench_env& env) {
    env.use_databases("bulk");
    st::analytics_db db(env.c.daemon.database);
    st::vault vault(env.c.daemon.vault, st::write_new_token_key(*env.c.daemon.token_key_file));
    env.sandbox->reset_counters();

    asio::io_context io;
    hh::client_options ho;
    ho.extra_ca_files.push_back(*env.c.ehrs.front().ca_file);
    hh::client client(io.get_executor(), ho);
    headachemd::system_clock clk;
    bulk_figures f;
    const auto on_wait = [&f](std::chrono::nanoseconds d) {
        f.waited_s += std::chrono::duration<double>(d).count();
    };
    sy::export_context ctx{client, env.c, db, vault, clk, bench_logger(s), nullptr, on_wait, {}, {}};
    run_on_io(io, [&]() -> asio::awaitable<void> {
        // GCC 12: no temporary in a co_await operand.
        sy::export_request whole_clinic;
        const auto t0 = headachemd::bench::clock_type::now();
        auto r = co_await sy::run_configured_export(ctx, whole_clinic);
        f.wall_s = seconds_since(t0);
        client.close_idle();
        if (!r) {
            f.detail = r.err().message;
            co_return;
        }
        f.complete = r->end.what == sy::bulk_action::kind::done;
        if (!f.complete) f.detail = r->end.failure ? r->end.failure->message : "the job did not finish";
        f.files = r->files.size();
    });
    f.calls = env.sandbox->stats().requests;
    f.rows_per_table = headachemd::demo::summarize(db).rows_per_table;
    return f;
}

bool calls_part(const setup& s) {
    std::printf("bench_bulk: %d sandbox patients, %lld ms latency per response, max_concurrent %d\n",
                s.patients, static_cast<long long>(s.latency.count()), s.concurrency);
    bench_env env(s);
    const path_figures pp = per_patient_pass(s, env);
    const bulk_figures bk = bulk_export(s, env);

    std::printf("  per-patient pass  %8llu calls  %8.1f s wall%s\n",
                static_cast<unsigned long long>(pp.calls), pp.wall_s,
                pp.complete ? "" : ("  INCOMPLETE: " + pp.detail).c_str());
    std::printf(
        "  bulk export       %8llu calls  %8.1f s wall (plus %.0f s of the job's own waits, not slept; "
        "%zu files)%s\n",
        static_cast<unsigned long long>(bk.calls), bk.wall_s, bk.waited_s, bk.files,
        bk.complete ? "" : ("  INCOMPLETE: " + bk.detail).c_str());
    const double ratio = bk.calls ? static_cast<double>(pp.calls) / static_cast<double>(bk.calls) : 0;
    std::printf("  calls ratio (per-patient / bulk): %.0f; wall ratio (without the waits): %.1f\n", ratio,
                bk.wall_s > 0 ? pp.wall_s / bk.wall_s : 0.0);
    // The calls at an EHR's budget: eClinicalWorks allows about 250 a
    // minute per practice (issue 15), the generic preset asks for 600.
    for (const double per_minute : {250.0, 600.0})
        std::printf("  at %.0f calls/min: per-patient at least %.1f min, bulk %.2f min of calls\n",
                    per_minute, static_cast<double>(pp.calls) / per_minute,
                    static_cast<double>(bk.calls) / per_minute);

    bool ok = pp.complete && bk.complete;
    const bool calls_ok = bk.calls <= bulk_call_limit;
    std::printf("  bulk calls %llu against the limit %llu: %s\n", static_cast<unsigned long long>(bk.calls),
                static_cast<unsigned long long>(bulk_call_limit), calls_ok ? "PASS" : "FAIL");
    ok = ok && calls_ok;
    const bool same_rows = pp.rows_per_table == bk.rows_per_table && !pp.rows_per_table.empty();
    std::printf("  rows per table, per-patient / bulk:");
    for (std::size_t i = 0; i < pp.rows_per_table.size() && i < bk.rows_per_table.size(); ++i)
        std::printf(" %s %lld/%lld", pp.rows_per_table[i].first.c_str(), pp.rows_per_table[i].second,
                    bk.rows_per_table[i].second);
    std::printf(": %s\n", same_rows ? "PASS (the same)" : "FAIL (they differ)");
    ok = ok && same_rows;
    return ok;
}

// ---- NDJSON throughput -------------------------------------------------------

fs::path shared_data() {
    if (const char* env = std::getenv("HEADACHEMD_SHARED_DATA")) return env;
    return HEADACHEMD_SHARED_DATA;
}

bool under_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

// The Synthea bulk export's files ("Type.000.ndjson"), sorted; not log.ndjson.
std::vector<headachemd::bench::input> synthea_ndjson(const fs::path& dir) {
    std::vector<headachemd::bench::input> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".ndjson" && e.path().filename() != "log.ndjson")
            out.push_back({e.path(), true});
    std::sort(
        out.begin(), out.end(),
        [](const headachemd::bench::input& a, const headachemd::bench::input& b) { return a.path < b.path; });
    return out;
}

struct apply_figures {
    double seconds = 0;
    std::size_t stored = 0;       // resources inserted (each one typed row)
    std::size_t line_errors = 0;  // must be none: the files are valid
};

// Every file through one bulk_applier into a fresh headache.db, as a job
// applies its output files; reading each file is inside the time, as it is
// in parse_only().
apply_figures apply_files(const std::vector<headachemd::bench::input>& files) {
    temp_dir dir;
    st::analytics_db db(dir.path / "headache.db");
    st::pseudonym_key key{};
    key[0] = 1;
    sy::bulk_apply_options o;
    o.ehr = "bench";
    sy::bulk_applier applier(db, key, o, {});
    const std::string now = st::utc_timestamp(wall_clock::now());
    constexpr std::size_t piece = std::size_t{1} << 20;
    apply_figures f;
    const auto t = headachemd::bench::clock_type::now();
    for (std::size_t i = 0; i < files.size(); ++i) {
        std::ifstream in(files[i].path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string name = files[i].path.filename().string();
        const sy::bulk_file file{sy::bulk_file_kind::output, name.substr(0, name.find('.')),
                                 "https://bench.invalid/" + name, std::nullopt};
        sy::bulk_file_apply apply(applier, i, file, now);
        for (std::size_t at = 0; at < text.size(); at += piece)
            apply.feed(std::string_view(text).substr(at, piece));
        const auto report = apply.finish();
        f.stored += report.inserted;
        f.line_errors += report.line_error_count;
    }
    f.seconds = seconds_since(t);
    return f;
}

// nullopt: skipped (no data, outside CI).
std::optional<bool> throughput_part(const setup& s) {
    const fs::path dir = shared_data() / "synthea-bulk10-ndjson";
    const auto files = synthea_ndjson(dir);
    if (files.empty()) {
        std::printf("  NDJSON throughput: SKIPPED, no Synthea bulk NDJSON in %s%s\n", dir.c_str(),
                    under_ci() ? " (a failure under CI=true)" : "");
        if (under_ci()) return false;
        return std::nullopt;
    }
    double apply = 1e9, parse = 1e9, floor = 1e9;
    std::size_t bytes = 0;
    apply_figures best;
    for (int r = 0; r < s.repeat; ++r) {
        const auto a = apply_files(files);
        if (a.seconds < apply) {
            apply = a.seconds;
            best = a;
        }
        parse = std::min(parse, headachemd::bench::parse_only(files, bytes));
        floor = std::min(floor, headachemd::bench::insert_floor(a.stored, {}));
    }
    const double mb = static_cast<double>(bytes) / 1e6;
    const double ratio = apply / (parse + floor);
    std::printf(
        "  NDJSON apply: %zu files, %.1f MB, %zu resources stored: %.3f s (%.0f MB/s); "
        "parse-only %.3f s (%.0f MB/s) + floor %.3f s (%zu plain rows); best of %d\n",
        files.size(), mb, best.stored, apply, mb / apply, parse, mb / parse, floor, best.stored, s.repeat);
    const bool ok = ratio <= apply_ratio_limit && best.line_errors == 0 && best.stored > 0;
    std::printf("  apply / (parse-only + floor) = %.2f against the limit %.1f%s: %s\n", ratio,
                apply_ratio_limit, best.line_errors ? " (and line errors in valid files)" : "",
                ok ? "PASS" : "FAIL");
    return ok;
}

// ---- peak RSS with a big file ------------------------------------------------

bool big_file_part(const setup& s) {
    temp_dir dir;
    const auto key = headachemd::smart::signing_key::generate(headachemd::smart::jws_alg::es384);
    sbx::options so;
    so.tls = true;
    so.patients = 20;
    so.backend_client_id = backend_client_id;
    so.backend_jwks = key.public_jwks(backend_kid);
    so.bulk_pending_polls = 0;
    so.bulk_fill_bytes = static_cast<std::size_t>(s.big_file_mib) << 20;
    sbx::background_server sandbox(so);
    const auto& sconf = sandbox->config();
    sandbox->write_ca_pem(dir.path / "sandbox-ca.pem");
    headachemd::demo::write_private_file(dir.path / "client.secret", sconf.client_secret);
    headachemd::demo::write_private_file(dir.path / "bulk-key.pem", key.private_pem());
    st::write_new_token_key(dir.path / "token.key");
    const auto q = [](const fs::path& p) { return "\"" + p.string() + "\""; };
    // 0600, as the config check wants a file naming secrets.
    headachemd::demo::write_private_file(
        dir.path / "sync.toml",
        "[daemon]\ndatabase = " + q(dir.path / "headache.db") + "\nvault = " + q(dir.path / "vault.db") +
            "\ntoken_key_file = " + q(dir.path / "token.key") + "\n\n[[ehr]]\nname = \"sandbox\"\n" +
            "profile = \"generic\"\nfhir_base = \"" + sandbox->fhir_base() + "\"\nclient_id = \"" +
            sconf.client_id + "\"\nclient_secret_file = " + q(dir.path / "client.secret") +
            "\nca_file = " + q(dir.path / "sandbox-ca.pem") + "\n\n[ehr.bulk]\nclient_id = \"" +
            backend_client_id + "\"\nprivate_key_file = " + q(dir.path / "bulk-key.pem") + "\nkey_id = \"" +
            backend_kid + "\"\nalgorithm = \"ES384\"\ngroup_id = \"" + sconf.bulk_group_id + "\"\n");
    const fs::path log = dir.path / "export.log";
    const auto t = headachemd::bench::clock_type::now();
    const pid_t pid = headachemd::bench::spawn_child(
        {HEADACHEMD_BINARY, "export", "--config", (dir.path / "sync.toml").string(), "--log-level", "warn"},
        log);
    int status = 0;
    rusage ru{};
    if (::wait4(pid, &status, 0, &ru) != pid) throw std::runtime_error("export: wait4 failed");
    const double wall = seconds_since(t);
    const long long peak_kb = ru.ru_maxrss;  // kB on Linux
    const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const auto stats = sandbox->stats();
    const auto exported =
        stats.bulk_output_resources.count("Observation") ? stats.bulk_output_resources.at("Observation") : 0;
    long long stored = -1;
    if (exited_ok) {
        SQLite::Database db((dir.path / "headache.db").string());
        SQLite::Statement count(db, "SELECT count(*) FROM observation");
        count.executeStep();
        stored = count.getColumn(0).getInt64();
    } else {
        std::ifstream in(log);
        std::fprintf(
            stderr, "bench_bulk: export exited with status %d; its log:\n%s\n", status,
            std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()).c_str());
    }
    const bool all_stored = stored == static_cast<long long>(exported) && exported > 0;
    const bool ok = exited_ok && all_stored && peak_kb <= peak_rss_limit_kb;
    std::printf(
        "  big file: `headachemd-sync export` of an Observation file of at least %d MiB (%llu resources, "
        "%llu stored) in %.0f s: peak RSS %.1f MiB against the limit %lld MiB: %s\n",
        s.big_file_mib, static_cast<unsigned long long>(exported), static_cast<unsigned long long>(stored),
        wall, static_cast<double>(peak_kb) / 1024.0, peak_rss_limit_kb / 1024, ok ? "PASS" : "FAIL");
    return ok;
}

int run(const setup& s) {
    bool ok = calls_part(s);
    const auto throughput = throughput_part(s);
    ok = ok && throughput.value_or(true);
    if (s.big_file_mib > 0) ok = big_file_part(s) && ok;
    return ok ? 0 : 1;
}

int parse_int(const char* flag, const char* value, long least = 1) {
    char* end = nullptr;
    const long v = std::strtol(value, &end, 10);
    if (!end || *end != '\0' || v < least || v > 1000000) {
        std::fprintf(stderr, "bench_bulk: %s needs a whole number from %ld, not %s\n", flag, least, value);
        std::exit(2);
    }
    return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
    setup s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--patients" && has_value)
            s.patients = parse_int("--patients", argv[++i]);
        else if (a == "--latency-ms" && has_value)
            s.latency = milliseconds(parse_int("--latency-ms", argv[++i]));
        else if (a == "--concurrency" && has_value)
            s.concurrency = parse_int("--concurrency", argv[++i]);
        else if (a == "--repeat" && has_value)
            s.repeat = parse_int("--repeat", argv[++i]);
        else if (a == "--big-file-mib" && has_value)
            s.big_file_mib = parse_int("--big-file-mib", argv[++i], 0);
        else if (a == "--verbose")
            s.verbose = true;
        else {
            std::fprintf(stderr,
                         "usage: bench_bulk [--patients N] [--latency-ms L] [--concurrency C] [--repeat R]\n"
                         "                  [--big-file-mib M (0: skip)] [--verbose]\n");
            return 2;
        }
    }
    try {
        return run(s);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_bulk: %s\n", e.what());
        return 1;
    }
}
