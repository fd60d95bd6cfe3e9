// `headachemd-sync ingest`: FHIR files on disk → normalizer → store.
//
// Accepts Bundles (any type), single resources, and NDJSON (a Bulk Data
// export). Contract:
// - A Bundle file is atomic: one problem anywhere in it and nothing from it
//   is written; the problem is reported with the file and entry index.
// - An NDJSON file is written in batches of lines, one transaction each; a
//   bad line is reported with its line number and only that line is left
//   out.
// - Other files go on after a rejected one. A failure of the database
//   itself (disk full, locked) rolls back the open batch and throws
//   store::store_error: nothing half-written remains.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "headachemd/normalize/normalize.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/store/view_tables.hpp"

namespace headachemd::ingest {

struct options {
    std::string source = "file";  // the `source` column of every row
    bool store_raw = false;       // also keep the resource JSON (raw_frame; needs keep_fhir_patient_id)
    // [privacy] identifiers = "minimal": keep the FHIR patient id in
    // patient.fhir_patient_id. false ("none"): headache.db gets no FHIR
    // patient id at all (store::identity_policy).
    bool keep_fhir_patient_id = false;
    std::size_t ndjson_batch_lines = 2000;
    std::uint64_t max_file_bytes = std::uint64_t{2} << 30;  // a JSON document larger than this is refused
    std::size_t max_problems_logged_per_file = 20;
    // Materialized views (issue 16), filled in each batch's transaction. A
    // refused definition stops the ingester before anything is written.
    std::vector<store::view_file> views{};
};

struct type_counts {
    std::size_t read = 0;       // resources of this type found in the input
    std::size_t inserted = 0;   // new rows
    std::size_t updated = 0;    // rows whose content changed
    std::size_t unchanged = 0;  // same raw_hash: nothing written
    std::size_t skipped = 0;    // valid FHIR, but a type we do not normalize
    std::size_t rejected = 0;   // left out because of a problem (its own, or its Bundle's)
};

struct report {
    std::map<std::string, type_counts, std::less<>> per_type;
    std::size_t files = 0;           // files opened
    std::size_t files_rejected = 0;  // files with at least one problem
    std::size_t problems = 0;        // problems found (all are logged, up to the per-file cap)
    std::uint64_t bytes = 0;
    double seconds = 0;

    bool clean() const { return problems == 0; }
    type_counts totals() const;
};

// Reports progress for long inputs: called at most every half second with
// bytes done and bytes in all.
using progress_fn = std::function<void(std::uint64_t done, std::uint64_t total, double seconds)>;

class ingester {
public:
    using steady_now_fn = std::function<std::chrono::steady_clock::time_point()>;
    using system_now_fn = std::function<std::chrono::system_clock::time_point()>;

    // `db` and `log` must outlive the ingester. `key` pseudonymizes patient ids.
    // Applies the identifier policy to the rows already stored
    // (analytics_db::enforce_identifier_policy). Throws std::invalid_argument
    // for store_raw without keep_fhir_patient_id or for a refused view
    // definition (naming the file and the JSON path), store_error on a
    // database failure.
    ingester(store::analytics_db& db, const store::pseudonym_key& key, options opts,
             std::shared_ptr<spdlog::logger> log, steady_now_fn steady_now = std::chrono::steady_clock::now,
             system_now_fn system_now = std::chrono::system_clock::now);
    ~ingester();

    // Ingests files and directories (recursively, in name order, Medication
    // files first so that medicationReference resolves). In a directory, a
    // file that is not .json/.ndjson/.jsonl is reported as a problem;
    // hidden files are ignored. Throws store::store_error on a database
    // failure.
    void run(const std::vector<std::filesystem::path>& inputs, const progress_fn& progress = {});

    const report& result() const { return report_; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    report report_;
};

// The per-type table printed at the end of `ingest`.
std::string format_report(const report& r);

}  // namespace headachemd::ingest
