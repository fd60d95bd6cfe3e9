// Sync bookkeeping in headache.db: cursors, delete detection, status.
//
// Cursor writes belong inside the same write_transaction as the page of
// rows they describe (DESIGN.md: "one transaction per page: upsert records
// + advance cursor"), so a crash never leaves a cursor ahead of its rows.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>

#include "headachemd/store/analytics_db.hpp"

namespace headachemd::store {

struct cursor {
    std::optional<std::string> last_updated_max;
    std::optional<std::string> last_full_pull_at;
    // When the count check after an incremental pull last found the totals
    // equal (schema version 6).
    std::optional<std::string> last_count_check_at{};
};

// One row of sync_status. resource_type "*" is the patient as a whole.
struct status_row {
    std::string source, patient_key, resource_type;
    std::optional<std::string> last_attempt_at, last_success_at, last_error, next_run_at;
    long long rows_changed = 0;
    bool needs_reauth = false;
    bool not_permitted = false;
};

class sync_state {
public:
    explicit sync_state(analytics_db& db) : db_(db) {}

    cursor read_cursor(std::string_view source, std::string_view patient_key, std::string_view type);
    void write_cursor(std::string_view source, std::string_view patient_key, std::string_view type,
                      const cursor& c);

    // After a complete full pull: every live row of this patient and table
    // whose id is not in `seen_ids` gets deleted_at = now. Returns how many.
    // Rows are never removed: a deletion in the EHR is data too.
    // `table` is an analyst table, or "bare_resource" with the FHIR
    // `resource_type` it holds (normalize::bare_record); other names throw
    // std::invalid_argument.
    int mark_deleted_except(std::string_view source, std::string_view patient_key, std::string_view table,
                            const std::vector<std::string>& seen_ids, std::string_view now,
                            std::string_view resource_type = {});

    // One resource the EHR says is deleted (a Bulk Data deleted[] entry):
    // its row (source, stored id) in `table` (as above) gets deleted_at =
    // now, and leaves the views, as mark_deleted_except does it. A row
    // already marked, or none, is left alone, so marking twice is harmless.
    // `id` is the stored id (resource_writer::stored_id: a Patient's is its
    // keyed hash). Returns whether a row was marked. Call inside a
    // write_transaction; throws SQLite::Exception.
    bool mark_deleted(std::string_view source, std::string_view table, std::string_view id,
                      std::string_view now, std::string_view resource_type = {});

    // Rows of this patient in `table` (as above) that are not marked deleted.
    long long live_rows(std::string_view source, std::string_view patient_key, std::string_view table,
                        std::string_view resource_type = {});

    // last_success_at of one status row, if there is one.
    std::optional<std::string> last_success(std::string_view source, std::string_view patient_key,
                                            std::string_view type);

    // Inserts or replaces the status row (all columns).
    void put_status(const status_row& s);
    // Sets next_run_at of the patient's "*" row, creating the row (with no
    // attempt yet) when there is none: the running daemon's schedule, which
    // `status` in another process shows.
    void set_next_run(std::string_view source, std::string_view patient_key,
                      const std::optional<std::string>& next_run_at);
    std::vector<status_row> all_status();

    // `unenroll --purge`: rows held for this patient of this source, in the
    // analyst tables (by patient_key), their kept JSON (raw_frame by
    // patient_key, resource_raw by the ids of those rows), sync_cursor and
    // sync_status. Other patients are not read.
    long long patient_rows(std::string_view source, std::string_view patient_key);
    // Deletes all of them in one write transaction and returns how many.
    // With the connection's secure_delete the bytes are zeroed; the WAL is
    // then checkpointed and truncated. Throws store_error (nothing deleted).
    long long purge_patient(std::string_view source, std::string_view patient_key);

private:
    analytics_db& db_;
};

}  // namespace headachemd::store
