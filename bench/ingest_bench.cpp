// bench/ingest: how far is our ingest pipeline from the unavoidable cost?
//
// Over the same files, in one run, it measures
//   floor        a plain prepared INSERT of as many rows as ingest writes,
//                into a plain table (no index, no constraint) of a fresh
//                database with SQLite's default pragmas, in one transaction,
//                through the sqlite3 C API (with store_raw, one more plain
//                INSERT per kept resource of its JSON's size, uncompressed,
//                into a second table): nothing of our schema, indexes,
//                pragmas or writer is in it, so a cost there cannot hide in
//                the denominator (issue 18: the old floor ran our own writer
//                and schema and printed 0.90-1.2 for a pipeline ~4x slower);
//   end-to-end   `ingest` itself (load, On-Demand normalize, hash, classify,
//                pseudonymize, look up, upsert) into a fresh database,
// and prints end-to-end / floor against the limit below (PASS/FAIL), with
// store_raw off and on, and what store_raw costs: end-to-end on / off
// against its own limit and the target, with the bytes raw_frame
// holds (zstd frames, schema 12) against the JSON they decode to. For scale it also prints the old breakdown:
// simdjson's DOM parse-only time and our own writer's insert-only time.
// Each figure is the best of several runs so that a noisy neighbour on a
// 2-core machine does not decide the result.
//
// Without input (no directories given and no Synthea data under
// HEADACHEMD_SHARED_DATA or ../shared/data) it prints SKIPPED and exits 0,
// except under CI=true, where a missing input is a failure (exit 1).
//
// With the five example views of views/ (ViewDefinitions materialized in
// the same transaction, issue 16) it also measures end-to-end ingest with
// store_raw off and all five views against none, and prints that ratio
// against its own limit; it fails when views/ does not hold exactly those five.
//
// Usage: bench_ingest [--repeat N] [--views DIR] [DIR...]
//        (defaults: ../shared/data Synthea sets; views/ of the source tree)
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <SQLiteCpp/Statement.h>
#include <simdjson.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "floor.hpp"
#include "headachemd/ingest/ingest.hpp"
#include "headachemd/normalize/normalize.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"

namespace {

namespace fs = std::filesystem;
namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::bench::clock_type;
using headachemd::bench::floor_columns;
using headachemd::bench::fresh_dir;
using headachemd::bench::input;
using headachemd::bench::insert_floor;
using headachemd::bench::parse_only;
using headachemd::bench::seconds_since;

// end-to-end / floor. Measured on the 2-core development machine shared
// with three builds (load average 6), 2026-12-05: 8.1 to 10.3 with
// store_raw off, 15.9 on; each limit is the highest measured x1.5, rounded
// down (docs/dev/benchmarks.md). The issue measured about 4x on a quieter
// machine: a ratio creeping towards these limits is a regression, not noise.
// Since schema 8 (resource_raw a rowid table of zstd rows) store_raw on
// measured 4.3 to 7.1 under load 5-8 (2026-12-06), well inside its limit;
// since schema 12 (JSON frames) 2.95 to 3.13 quiet (2026-12-07). The floor
// with store_raw still INSERTs each resource's JSON uncompressed, the plain
// way to keep it, which the frames now beat; the limit is left where it was.
constexpr double ratio_limit_raw_off = 15.0;
constexpr double ratio_limit_raw_on = 24.0;

// end-to-end with store_raw on / end-to-end with it off: what keeping the
// raw JSON costs (issue 16, item 6: "at most about 1.5x"). One resource_raw
// row per resource measured 4.4 (plain JSON, before schema 8) and 1.72 to
// 2.55 (zstd rows, schema 8; 2.02 in the CI run at 531b566). Since schema 12
// (one zstd frame per page, patient and type; rows point into it), on the
// 2-core development machine, 2026-12-07: 1.10, 1.24, 1.27 quiet, 1.26,
// 1.26, 1.43 with both cores kept busy beside it (docs/dev/benchmarks.md).
// The 1.5 is printed as the target, met or not; the run fails above
// 1.8, under every figure of the old layout, so a return to a row per
// resource fails while a noisy machine does not.
constexpr double ratio_target_raw_cost = 1.5;
constexpr double ratio_limit_raw_cost = 1.8;

// end-to-end with the five example views / without (issue 16, item 6:
// "The ratio of 5 views to 0 views must be at most 1.3"), store_raw off.
// The 1.3 is printed as a target, met or not. The limit that fails
// the run is a regression guard above what a quiet 2-core machine gave once
// allergies became bare records (commit 9cefdd6, 2026-12-06: 1.37; after
// skipping the DELETE for new resources 1.22 and 1.28): a view that made
// every resource cost twice would cross it. Each run here is ~0.25 s, so
// the fixed costs of a fresh database (schema, five view tables, reading
// and compiling the definitions) weigh more than they do on a real export.
constexpr double ratio_target_views = 1.3;
constexpr double ratio_limit_views = 1.6;

std::vector<input> collect(const std::vector<fs::path>& dirs) {
    std::vector<input> out;
    for (const auto& d : dirs)
        for (const auto& e : fs::recursive_directory_iterator(d)) {
            if (!e.is_regular_file()) continue;
            const auto ext = e.path().extension();
            if (ext == ".json")
                out.push_back({e.path(), false});
            else if (ext == ".ndjson" && e.path().filename() != "log.ndjson")
                out.push_back({e.path(), true});
        }
    std::sort(out.begin(), out.end(), [](const input& a, const input& b) { return a.path < b.path; });
    return out;
}

// The rows ingest writes, per file, with their patient keys, computed
// outside the timed region.
struct file_rows {
    std::vector<nz::record> records;
    std::vector<std::string> keys;
};

std::vector<file_rows> normalize_all(const std::vector<input>& files, bool keep_raw,
                                     const st::pseudonym_key& key) {
    nz::normalizer n(nz::options{.keep_raw = keep_raw});
    std::vector<file_rows> out;
    for (const auto& f : files) {
        simdjson::padded_string text = simdjson::padded_string::load(f.path.string());
        nz::result r;
        if (f.ndjson) {
            std::size_t line_no = 0, start = 0;
            const std::string_view all(text.data(), text.size());
            while (start < all.size()) {
                std::size_t end = all.find('\n', start);
                if (end == std::string_view::npos) end = all.size();
                ++line_no;
                if (end > start)
                    n.normalize_line(
                        simdjson::padded_string_view(text.data() + start, end - start,
                                                     text.size() + simdjson::SIMDJSON_PADDING - start),
                        line_no, r);
                start = end + 1;
            }
        } else {
            r = n.normalize_document(text);
        }
        file_rows rows;
        for (auto& rec : r.records) {
            const auto& h = nz::header_of(rec);
            rows.keys.push_back(h.patient_ref.empty() ? ""
                                                      : st::patient_key_for(key, "bench", h.patient_ref));
            rows.records.push_back(std::move(rec));
        }
        out.push_back(std::move(rows));
    }
    return out;
}

double insert_only(const std::vector<file_rows>& rows, bool store_raw, const st::pseudonym_key& key,
                   std::size_t& count) {
    fresh_dir dir;
    st::analytics_db db(dir.path / "headache.db");
    // store_raw needs identifiers = "minimal" (keep_fhir_patient_id).
    st::resource_writer writer(db, store_raw, st::identity_policy{key, store_raw});
    const std::string now = st::utc_timestamp(std::chrono::system_clock::now());
    count = 0;
    const auto t = clock_type::now();
    for (const auto& f : rows) {
        if (f.records.empty()) continue;
        st::write_transaction tx(db.sql());
        for (std::size_t i = 0; i < f.records.size(); ++i)
            writer.insert(f.records[i], "bench", f.keys[i], now);
        writer.flush_raw();  // the frames, as write_page writes them
        tx.commit();
        count += f.records.size();
    }
    return seconds_since(t);
}

// What raw_frame holds after an end-to-end run (schema 12): resources kept,
// bytes of `raw` as stored (zstd), and frames.
struct raw_stats {
    std::int64_t rows = 0, stored_bytes = 0, frames = 0;
};

// Rows each materialized view got in an end-to-end run, by view name.
using view_rows = std::vector<std::pair<std::string, std::int64_t>>;

// `minimal`: [privacy] identifiers = "minimal" (keep the FHIR patient id);
// store_raw needs it, and so do views that read a Patient's extensions.
double end_to_end(const std::vector<fs::path>& dirs, bool store_raw, bool minimal,
                  const st::pseudonym_key& key, const std::vector<st::view_file>& views, std::size_t& rows,
                  raw_stats& raw, view_rows* counts = nullptr) {
    fresh_dir dir;
    st::analytics_db db(dir.path / "headache.db");
    auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    headachemd::ingest::options o;
    o.source = "bench";
    o.store_raw = store_raw;
    o.keep_fhir_patient_id = minimal;
    o.views = views;
    headachemd::ingest::ingester ing(db, key, o, log);
    const auto t = clock_type::now();
    ing.run(dirs);
    const double s = seconds_since(t);
    const auto totals = ing.result().totals();
    rows = totals.inserted + totals.updated + totals.unchanged;
    // A type only a view reads (AllergyIntolerance) is kept in
    // bare_resource: rows the run without views skips. The typed rows of
    // both runs must match.
    SQLite::Statement bare(db.sql(), "SELECT count(*) FROM bare_resource");
    bare.executeStep();
    rows -= static_cast<std::size_t>(bare.getColumn(0).getInt64());
    SQLite::Statement q(
        db.sql(),
        "SELECT coalesce(sum(resources), 0), coalesce(sum(length(raw)), 0), count(*) FROM raw_frame");
    q.executeStep();
    raw = raw_stats{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64()};
    if (counts) {
        counts->clear();
        for (const auto& v : views) {
            SQLite::Statement c(db.sql(), "SELECT count(*) FROM \"view_" + v.name + "\"");
            c.executeStep();
            counts->emplace_back(v.name, c.getColumn(0).getInt64());
        }
    }
    return s;
}

// The five example ViewDefinitions of views/ (issue 16, item 6: "ingest with
// 0 and with 5 views (the five example views)"). Every *.json there is
// loaded, named by its file stem; any other set than exactly these five is
// refused, so that a sixth or a renamed file cannot change what the ratio
// measures without this bench (and its limit) being looked at again.
constexpr std::array<std::string_view, 5> example_view_names = {
    "allergies", "blood_pressure", "patient_demographics", "questionnaire_answers", "survey_scores"};

std::optional<std::vector<st::view_file>> example_views(const fs::path& dir) {
    std::vector<st::view_file> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && e.path().extension() == ".json")
            out.push_back({e.path().stem().string(), e.path()});
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    const bool exact = out.size() == example_view_names.size() &&
                       std::equal(out.begin(), out.end(), example_view_names.begin(),
                                  [](const st::view_file& f, std::string_view n) { return f.name == n; });
    if (exact) return out;
    std::string found;
    for (const auto& f : out) found += (found.empty() ? "" : ", ") + f.name;
    std::printf(
        "bench_ingest: FAIL: %s%s must hold exactly the five example views (allergies, blood_pressure, "
        "patient_demographics, questionnaire_answers, survey_scores) as .json; found: %s\n",
        dir.c_str(), ec ? (" (" + ec.message() + ")").c_str() : "", found.empty() ? "none" : found.c_str());
    return std::nullopt;
}

// Prints the views line (issue 16, item 6) and the rows each view got;
// true when the ratio is within its limit and both runs wrote as many rows.
bool report_views(double e2e_no_views, std::size_t n_no_views, double e2e_views, std::size_t n_views,
                  const view_rows& counts, std::size_t bytes) {
    const double views_ratio = e2e_views / e2e_no_views;
    const bool views_ok = views_ratio <= ratio_limit_views && n_views == n_no_views;
    std::printf(
        "  views: 0 -> %.1f MB/s, 5 -> %.1f MB/s, ratio %.2f (limit %.2f): %s; issue 16 target %.2f: %s\n",
        bytes / 1e6 / e2e_no_views, bytes / 1e6 / e2e_views, views_ratio, ratio_limit_views,
        views_ok ? "PASS" : "FAIL", ratio_target_views,
        views_ratio <= ratio_target_views ? "met" : "NOT met");
    std::string per_view;
    for (const auto& [name, n] : counts)
        per_view += (per_view.empty() ? "" : ", ") + name + " " + std::to_string(n);
    std::printf("    view rows: %s\n", per_view.c_str());
    if (n_views != n_no_views) std::printf("    row counts differ: %zu vs %zu\n", n_views, n_no_views);
    return views_ok;
}

// Prints what raw_frame holds and store_raw on / off; true when within
// its limit and every kept resource has its row.
bool report_raw_cost(double cost, const raw_stats& raw, const std::vector<std::size_t>& raw_sizes) {
    std::size_t json_bytes = 0;
    for (auto n : raw_sizes) json_bytes += n;
    const bool all_kept = raw.rows == static_cast<std::int64_t>(raw_sizes.size());
    std::printf(
        "    raw_frame: %lld resources in %lld frames, %.1f MB of JSON kept as %.1f MB of zstd (%.2fx)\n",
        static_cast<long long>(raw.rows), static_cast<long long>(raw.frames), json_bytes / 1e6,
        raw.stored_bytes / 1e6,
        raw.stored_bytes > 0 ? static_cast<double>(json_bytes) / raw.stored_bytes : 0.0);
    const bool cost_ok = cost <= ratio_limit_raw_cost && all_kept;
    std::printf("  store_raw on / off, end-to-end = %.2f, limit %.2f: %s; issue 16 target %.2f: %s\n", cost,
                ratio_limit_raw_cost, cost_ok ? "PASS" : "FAIL", ratio_target_raw_cost,
                cost <= ratio_target_raw_cost ? "met" : "NOT met");
    if (!all_kept)
        std::printf("    raw_frame holds %lld resources, expected %zu\n", static_cast<long long>(raw.rows),
                    raw_sizes.size());
    return cost_ok;
}

fs::path shared_data() {
    const char* env = std::getenv("HEADACHEMD_SHARED_DATA");
    return env ? fs::path(env) : fs::path(HEADACHEMD_SHARED_DATA);
}

// The Synthea sets under HEADACHEMD_SHARED_DATA (or ../shared/data) that exist.
std::vector<fs::path> default_inputs() {
    std::vector<fs::path> dirs;
    for (const char* sub : {"synthea-r4", "synthea-bulk10-ndjson"})
        if (fs::exists(shared_data() / sub)) dirs.push_back(shared_data() / sub);
    return dirs;
}

// Without input: SKIPPED (0), but under CI=true (.ci/run) a benchmark that
// measured nothing must not pass (1).
int no_input_exit_code() {
    const char* ci = std::getenv("CI");
    const bool in_ci = ci && std::string(ci) == "true";
    std::printf(
        "bench_ingest: %s: no input; %s has no synthea-r4 or synthea-bulk10-ndjson (set "
        "HEADACHEMD_SHARED_DATA or pass directories)%s\n",
        in_ci ? "FAIL" : "SKIPPED", shared_data().c_str(),
        in_ci ? "; a missing input fails under CI=true" : "");
    return in_ci ? 1 : 0;
}

int run(int argc, char** argv) {
    int repeat = 5;
    std::vector<fs::path> dirs;
    fs::path views_dir = HEADACHEMD_VIEWS_DIR;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--repeat" && i + 1 < argc)
            repeat = std::max(1, std::atoi(argv[++i]));
        else if (a == "--views" && i + 1 < argc)
            views_dir = argv[++i];
        else
            dirs.emplace_back(a);
    }
    if (dirs.empty()) {
        dirs = default_inputs();
        if (dirs.empty()) return no_input_exit_code();
    }
    const auto views = example_views(views_dir);
    if (!views) return 1;
    // The export log is not FHIR; both sides leave it out.
    const auto files = collect(dirs);
    std::vector<fs::path> paths;
    for (const auto& f : files) paths.push_back(f.path);

    st::pseudonym_key key{};
    key[0] = 42;
    bool ok = true;
    std::size_t bytes = 0;
    double parse = 1e9;
    for (int i = 0; i < repeat; ++i) parse = std::min(parse, parse_only(files, bytes));
    std::printf("bench_ingest: %zu files, %.1f MB, best of %d runs\n", files.size(), bytes / 1e6, repeat);
    std::printf("  parse-only (simdjson DOM)   %8.1f MB/s  (%.3f s)\n", bytes / 1e6 / parse, parse);

    double e2e_raw_off = 0;
    for (bool store_raw : {false, true}) {
        const auto rows = normalize_all(files, store_raw, key);
        // What store_raw keeps: every resource's JSON except a Patient's.
        std::vector<std::size_t> raw_sizes;
        if (store_raw)
            for (const auto& f : rows)
                for (const auto& rec : f.records)
                    if (std::string_view(nz::resource_type_of(rec)) != "Patient")
                        raw_sizes.push_back(nz::header_of(rec).raw.size());
        std::size_t n_insert = 0, n_e2e = 0;
        double insert = 1e9, e2e = 1e9, floor = 1e9;
        raw_stats raw;
        // With store_raw off, the five views too, interleaved with the run
        // without them so that load changes hit both alike.
        double e2e_views = 1e9, e2e_pair = 1e9;
        std::size_t n_views = 0, n_pair = 0;
        view_rows counts;
        for (int i = 0; i < repeat; ++i) {
            insert = std::min(insert, insert_only(rows, store_raw, key, n_insert));
            e2e = std::min(e2e, end_to_end(paths, store_raw, store_raw, key, {}, n_e2e, raw));
            floor = std::min(floor, insert_floor(n_e2e, raw_sizes));
            if (!store_raw)
                // Two pairs, both sides under the default identifiers =
                // "none" (key columns become patient_key, as a deployed
                // daemon's would): both runs are short (about 0.25 s) and
                // their ratio is what a noisy neighbour moves most.
                for (int pair = 0; pair < 2; ++pair) {
                    raw_stats ignored;
                    e2e_pair = std::min(e2e_pair, end_to_end(paths, false, false, key, {}, n_pair, ignored));
                    e2e_views = std::min(
                        e2e_views, end_to_end(paths, false, false, key, *views, n_views, ignored, &counts));
                }
        }
        const double limit = store_raw ? ratio_limit_raw_on : ratio_limit_raw_off;
        const double ratio = e2e / floor;
        const bool pass = ratio <= limit && n_e2e == n_insert && n_e2e > 0;
        ok = ok && pass;
        std::printf("  store_raw=%s\n", store_raw ? "on" : "off");
        std::printf(
            "    floor: plain INSERT       %8.0f rows/s (%zu rows x %d columns + %zu JSON rows, one "
            "transaction, %.3f s)\n",
            n_e2e / floor, n_e2e, floor_columns, raw_sizes.size(), floor);
        std::printf("    insert-only (our writer)  %8.0f rows/s (%zu rows, %.3f s)\n", n_insert / insert,
                    n_insert, insert);
        std::printf("    end-to-end ingest         %8.1f MB/s, %.0f rows/s (%zu rows, %.3f s)\n",
                    bytes / 1e6 / e2e, n_e2e / e2e, n_e2e, e2e);
        std::printf("    for scale: end-to-end / (parse-only + insert-only) = %.2f\n",
                    e2e / (parse + insert));
        std::printf("    ratio end-to-end / floor = %.2f, limit %.2f: %s\n", ratio, limit,
                    pass ? "PASS" : "FAIL");
        if (n_e2e != n_insert) std::printf("    row counts differ: %zu vs %zu\n", n_e2e, n_insert);
        if (!store_raw) {
            e2e_raw_off = e2e;
            ok = report_views(e2e_pair, n_pair, e2e_views, n_views, counts, bytes) && ok;
            continue;
        }
        ok = report_raw_cost(e2e / e2e_raw_off, raw, raw_sizes) && ok;
    }
    return ok ? 0 : 1;
}

}  // namespace

// A refused view definition or a store error is a failure with its message,
// not an abort.
int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::printf("bench_ingest: FAIL: %s\n", e.what());
        return 1;
    }
}
