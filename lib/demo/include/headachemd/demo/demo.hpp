// `headachemd-sync demo`: the built-in sandbox EHR on loopback, a few
// synthetic patients enrolled through the production path, one sync pass
// into headache.db, and the numbers the command shows afterwards.
//
// Nothing here prints: the caller (daemon/sandbox_commands.cpp) prints the
// outcome. Log lines go to the logger it passes in.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "headachemd/core/result.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/sync/bulk_runner.hpp"
#include "headachemd/sync/engine.hpp"

namespace headachemd::demo {

struct options {
    int patients = 5;           // at least one is enrolled
    std::filesystem::path dir;  // an existing directory: headache.db, vault.db, token.key, ...
    bool ecw = false;           // the sandbox in eClinicalWorks mode, the eclinicalworks preset
    // Issue 15: instead of enrolling patients and a per-patient pass, one
    // FHIR Bulk Data export of the sandbox's whole clinic (its Group) as a
    // registered backend app (SMART Backend Services), through the path
    // of `export` (sync::run_configured_export).
    bool bulk = false;
    // Tests only: called instead of sleeping through the export's waits
    // (the first status poll comes 10 s after the kick-off, as against a
    // real EHR). Empty: the demo waits.
    std::function<void(std::chrono::nanoseconds)> on_wait{};
};

// What landed in headache.db, as the demo shows it.
struct summary {
    struct headache_type {
        std::string type;
        long long patients = 0;  // distinct patient keys
    };
    struct drug_class {
        std::string drug_class;
        std::string therapy_role;
        long long prescriptions = 0;
    };
    // patient, condition, medication_request, encounter, observation,
    // procedure, appointment, in that order.
    std::vector<std::pair<std::string, long long>> rows_per_table;
    std::vector<headache_type> headache_types;  // most patients first
    std::vector<drug_class> drug_classes;       // most prescriptions first
    long long botulinum_toxin_procedures = 0;
};

// Reads the counts above. Throws SQLite::Exception.
summary summarize(store::analytics_db& db);

// The sandbox's history ends at `data_anchor` (midnight UTC), so the views'
// "today" becomes the day before, its last day of data, unless someone
// already chose one in this database (analyst_setting 'as_of' not empty).
// Returns the date set (YYYY-MM-DD), or nullopt when as_of was kept.
std::optional<std::string> set_as_of(store::analytics_db& db,
                                     std::chrono::system_clock::time_point data_anchor);

struct outcome {
    int enrolled = 0;
    sync::pass_result pass;                     // empty with options::bulk
    std::optional<sync::bulk_run_result> bulk;  // options::bulk: the export's end, files and calls
    summary counts;                             // read after the pass, before as_of is set
    std::optional<std::string> as_of;           // what set_as_of set
};

// With opts.bulk: the sandbox also has a backend registration whose key is
// `bulk-key.pem` in opts.dir (made when missing: ES384, RS384 for eCW);
// no patient is enrolled, one export runs (every row's patient_key the
// keyed hash, as for any patient not enrolled), and `on_enrolled` is not
// called.
//
// Starts the sandbox, writes its CA and client secret into opts.dir,
// opens (or creates) token.key, headache.db and vault.db there, enrolls up
// to opts.patients sandbox patients ("demo-001", ...) through
// sync::begin_enrollment / complete_enrollment, calls `on_enrolled` with
// how many were enrolled (on the I/O thread, before the pass starts), runs
// one sync pass, summarizes and sets as_of. A patient whose enrollment
// fails is logged and left out. Throws on anything else (std::exception:
// files, store, sandbox start).
outcome run(const options& opts, std::shared_ptr<spdlog::logger> log,
            const std::function<void(int enrolled)>& on_enrolled = {});

// `dir` created (with its parents), or a new directory
// $TMPDIR/headachemd-demo-XXXXXX when `dir` is empty; an error naming
// the path when it cannot be made. Never throws.
result<std::filesystem::path> make_directory(const std::filesystem::path& dir);

// Writes `text` to `p` atomically with mode 0600. Throws std::runtime_error
// ("cannot write <path>: <reason>").
void write_private_file(const std::filesystem::path& p, std::string_view text);

}  // namespace headachemd::demo
