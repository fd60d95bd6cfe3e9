// The `apply` step of a Bulk Data export job (issue 15, items 4 and 5):
// the bytes of one downloaded manifest file in, rows in headache.db out.
// No network and no vault: the download driver pushes the decoded chunks
// of a file (http::client::send_streaming's sink) into a bulk_file_apply,
// then calls finish() and, only after it returned, marks the file applied
// in the vault (bulk_store.hpp, "Transactions and crash ordering").
//
// - output files: each line is normalized and stored exactly as `ingest`
//   stores an NDJSON line (the same normalizer, store::write_page, the same
//   keyed-hash patient keys, store::patient_key_cache), under the [[ehr]]
//   name as `source`, the source the per-patient sync writes, so a
//   resource brought by either path is one row. A row whose FHIR patient
//   is enrolled at that EHR (vault enrollment: fhir_patient_id ->
//   configured key) is stored under the configured key, as the per-patient
//   sync stores it; any other patient's under the keyed hash, as ingest.
//   [privacy] identifiers applies through store::resource_writer, as for
//   both.
// - error files: each line an OperationOutcome; its issues are counted by
//   severity and code only (never diagnostics, which may echo a patient).
//   Warnings and information are not failures.
// - deleted files: each line a Bundle whose entries are DELETE requests
//   "Type/id"; the row gets deleted_at (store::sync_state::mark_deleted,
//   as the per-patient delete detection marks a row); a row already
//   marked is left alone.
// - A line over max_line_bytes, a line that is not JSON or not a resource
//   the normalizer accepts, and a resource of another type than the
//   file's, are each an error for that line (file index, line number,
//   reason; never the line's content); the rest of the file goes on.
//
// Transactions: one headache.db write transaction per file (BEGIN
// IMMEDIATE at the first row, COMMIT in finish()), run under PRAGMA
// synchronous=FULL so that the commit is durable before the vault's mark.
// Rows are written in batches of lines (bounded memory), each inside that
// one transaction. Destroyed without finish(), or after a throw, the
// transaction rolls back and nothing of the file is stored. Applying a
// file twice is harmless: rows are upserts that skip an unchanged
// raw_hash, and a deletion marks only a row not yet marked.
//
// While a file applies, its connection (analytics_db::sql()) is inside
// that transaction: nothing else may write through the same connection
// until finish() or destruction (SQLite does not nest BEGIN), and other
// connections' writers wait on headache.db's lock (busy_timeout).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/store/view_tables.hpp"
#include "headachemd/sync/bulk_data.hpp"

namespace headachemd::sync {

// FHIR Patient id -> the configured patient key of those enrolled at one EHR.
using enrolled_keys = std::unordered_map<std::string, std::string>;

// The enrollments of `ehr` in the vault, as enrolled_keys. Throws store_error.
enrolled_keys enrolled_at(store::vault& vault, std::string_view ehr);

struct bulk_apply_options {
    std::string ehr;                                    // the [[ehr]] name: every row's `source`
    std::size_t max_line_bytes = std::size_t{8} << 20;  // [ehr.bulk] max_line_bytes
    // A batch of an output file is written when it holds this many lines
    // or this many bytes of lines, whichever comes first: memory stays a
    // few MB whatever the file's size.
    std::size_t batch_lines = 2000;
    std::size_t batch_bytes = std::size_t{4} << 20;
    bool store_raw = false;                  // [privacy] store_raw
    bool keep_fhir_patient_id = false;       // [privacy] identifiers = "minimal"
    std::size_t max_line_errors_kept = 100;  // line_errors beyond this are only counted
};

enum class line_error_reason {
    too_long,    // over max_line_bytes
    unreadable,  // not JSON, or not a resource the normalizer accepts
    wrong_type,  // a resource of another type than the file's
    bad_entry,   // deleted files: an entry that is not a DELETE of "Type/id"
};
std::string_view to_string(line_error_reason r);

struct bulk_line_error {
    std::size_t file = 0;  // index of the file in the manifest
    std::size_t line = 0;  // 1-based, as an editor numbers it
    line_error_reason reason = line_error_reason::unreadable;
    bool operator==(const bulk_line_error&) const = default;
};

// Issues of an error file with this severity and code (sync::coded).
struct outcome_issue {
    std::string severity;
    std::string code;
    std::size_t count = 0;
    bool operator==(const outcome_issue&) const = default;
};

struct bulk_apply_report {
    std::size_t file = 0;
    bulk_file_kind kind = bulk_file_kind::output;
    std::size_t lines = 0;  // non-blank lines, those in error too
    // output files, as store::upsert_outcome (meaningful once finish() returned)
    std::size_t inserted = 0;
    std::size_t updated = 0;
    std::size_t unchanged = 0;
    std::size_t skipped = 0;        // valid resources of a type not stored
    std::size_t view_failures = 0;  // resources stored without their view rows
    std::size_t line_error_count = 0;
    std::vector<bulk_line_error> line_errors;  // the first max_line_errors_kept
    // error files
    std::vector<outcome_issue> outcome_issues;  // by severity, then code
    std::size_t outcome_failures = 0;           // issues of severity error or fatal
    // deleted files
    std::size_t deleted = 0;         // rows marked deleted by this application
    std::size_t deleted_absent = 0;  // entries naming no row not yet marked

    std::size_t upserted() const { return inserted + updated; }
};

class bulk_file_apply;

// What outlives one file of a job: the normalizer (its Medication index
// resolves a later file's medicationReference, as ingest's does across
// files), the row writer and the patient keys. `db` must outlive it; one
// file applies at a time. Throws std::invalid_argument for store_raw
// without keep_fhir_patient_id (store::resource_writer).
class bulk_applier {
public:
    bulk_applier(store::analytics_db& db, const store::pseudonym_key& key, bulk_apply_options opts,
                 enrolled_keys enrolled, std::shared_ptr<store::view_tables> views = nullptr);
    ~bulk_applier();
    bulk_applier(const bulk_applier&) = delete;
    bulk_applier& operator=(const bulk_applier&) = delete;

private:
    friend class bulk_file_apply;
    struct impl;
    std::unique_ptr<impl> impl_;
};

// One file's application. `now` is the UTC text stored as ingested_at
// and deleted_at. feed() and finish() throw store::store_error when
// headache.db refuses a write; the file's transaction is then rolled back
// and the object may only be destroyed. Calling feed() or finish() after
// finish() is a bug (std::logic_error).
class bulk_file_apply {
public:
    bulk_file_apply(bulk_applier& applier, std::size_t file_index, const bulk_file& file, std::string now);
    ~bulk_file_apply();
    bulk_file_apply(const bulk_file_apply&) = delete;
    bulk_file_apply& operator=(const bulk_file_apply&) = delete;

    // Any number of chunks, split anywhere.
    void feed(std::string_view chunk);
    // The last line, the last batch and COMMIT (synchronous=FULL): durable
    // when it returns.
    bulk_apply_report finish();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace headachemd::sync
