// bench/ingest: is our ingest pipeline close to the unavoidable cost?
//
// Over the same files, in one run, it measures
//   parse-only   simdjson DOM parse of every file (load + full parse),
//   insert-only  plain INSERTs of the very rows ingest produces, with the
//                same transaction per file, into a fresh database,
//   end-to-end   `ingest` itself (load, On-Demand normalize, hash, classify,
//                pseudonymize, look up, upsert) into a fresh database,
// and prints end-to-end / (parse-only + insert-only) against the limit 1.3,
// with store_raw off and on. Each figure is the best of several runs so
// that a noisy neighbour on a 2-core machine does not decide the result.
//
// Usage: bench_ingest [--repeat N] [DIR...]   (default: ../shared/data Synthea sets)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <simdjson.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "headachemd/ingest/ingest.hpp"
#include "headachemd/normalize/normalize.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"

namespace {

namespace fs = std::filesystem;
namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using clock_type = std::chrono::steady_clock;

constexpr double ratio_limit = 1.3;

struct input {
    fs::path path;
    bool ndjson;
};

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

double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

struct fresh_dir {
    fs::path path;
    fresh_dir() {
        path = fs::temp_directory_path() / ("headachemd-bench-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~fresh_dir() { fs::remove_all(path); }
};

double parse_only(const std::vector<input>& files, std::size_t& bytes) {
    simdjson::dom::parser parser;
    bytes = 0;
    std::size_t docs = 0;
    const auto t = clock_type::now();
    for (const auto& f : files) {
        simdjson::padded_string text = simdjson::padded_string::load(f.path.string());
        bytes += text.size();
        if (f.ndjson) {
            simdjson::dom::document_stream stream;
            if (parser.parse_many(text).get(stream)) std::abort();
            for (auto doc : stream) {
                if (doc.error()) std::abort();
                ++docs;
            }
        } else {
            simdjson::dom::element doc;
            if (parser.parse(text).get(doc)) std::abort();
            ++docs;
        }
    }
    const double s = seconds_since(t);
    if (docs == 0) std::abort();
    return s;
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
        tx.commit();
        count += f.records.size();
    }
    return seconds_since(t);
}

double end_to_end(const std::vector<fs::path>& dirs, bool store_raw, const st::pseudonym_key& key,
                  std::size_t& rows) {
    fresh_dir dir;
    st::analytics_db db(dir.path / "headache.db");
    auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    headachemd::ingest::options o;
    o.source = "bench";
    o.store_raw = store_raw;
    o.keep_fhir_patient_id = store_raw;  // store_raw needs identifiers = "minimal"
    headachemd::ingest::ingester ing(db, key, o, log);
    const auto t = clock_type::now();
    ing.run(dirs);
    const double s = seconds_since(t);
    const auto totals = ing.result().totals();
    rows = totals.inserted + totals.updated + totals.unchanged;
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    int repeat = 5;
    std::vector<fs::path> dirs;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--repeat" && i + 1 < argc)
            repeat = std::max(1, std::atoi(argv[++i]));
        else
            dirs.emplace_back(a);
    }
    if (dirs.empty()) {
        const fs::path data = std::getenv("HEADACHEMD_SHARED_DATA") ? std::getenv("HEADACHEMD_SHARED_DATA")
                                                                    : HEADACHEMD_SHARED_DATA;
        for (const char* sub : {"synthea-r4", "synthea-bulk10-ndjson"})
            if (fs::exists(data / sub)) dirs.push_back(data / sub);
        if (dirs.empty()) {
            std::printf(
                "bench_ingest: SKIPPED: no input; %s has no Synthea data (set HEADACHEMD_SHARED_DATA "
                "or pass directories)\n",
                data.c_str());
            return 0;
        }
    }
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

    for (bool store_raw : {false, true}) {
        const auto rows = normalize_all(files, store_raw, key);
        std::size_t n_insert = 0, n_e2e = 0;
        double insert = 1e9, e2e = 1e9;
        for (int i = 0; i < repeat; ++i) {
            insert = std::min(insert, insert_only(rows, store_raw, key, n_insert));
            e2e = std::min(e2e, end_to_end(paths, store_raw, key, n_e2e));
        }
        const double ratio = e2e / (parse + insert);
        const bool pass = ratio <= ratio_limit && n_e2e == n_insert;
        ok = ok && pass;
        std::printf("  store_raw=%s\n", store_raw ? "on" : "off");
        std::printf("    insert-only (SQLite)      %8.0f rows/s (%zu rows, %.3f s)\n", n_insert / insert,
                    n_insert, insert);
        std::printf("    end-to-end ingest         %8.1f MB/s, %.0f rows/s (%zu rows, %.3f s)\n",
                    bytes / 1e6 / e2e, n_e2e / e2e, n_e2e, e2e);
        std::printf("    ratio end-to-end / (parse-only + insert-only) = %.2f, limit %.2f: %s\n", ratio,
                    ratio_limit, pass ? "PASS" : "FAIL");
        if (n_e2e != n_insert) std::printf("    row counts differ: %zu vs %zu\n", n_e2e, n_insert);
    }
    return ok ? 0 : 1;
}
