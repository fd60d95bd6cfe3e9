// Where a Bulk Data export job survives a restart (issue 15): the
// bulk_job_record of each EHR and its _since cursor, in vault.db
// (schema/vault/NNNN_bulk_jobs.sql explains why the vault: the status URL
// and the file URLs may be capability URLs, and headache.db is readable by
// analysts). Every function takes the vault's connection (store::vault::sql())
// and throws store::store_error; an error message names the table, the EHR
// and the column, never a URL.
//
// Transactions and crash ordering. The job's rows live in headache.db, its
// record here, and SQLite commits nothing atomically across two files in WAL
// mode (DESIGN.md). So the two writes are ordered, not joined:
//
//   1. the file's rows commit in headache.db (one transaction per file:
//      sync::bulk_file_apply, bulk_apply.hpp);
//   2. mark_bulk_file_applied() commits here.
//
// A crash between 1 and 2 leaves the file not marked: the resumed job
// (bulk_job::start on the loaded record) downloads and applies it again.
// That is harmless because applying a file is idempotent: every row is an
// upsert on (source, resource type, id) that skips an unchanged raw_hash,
// and a deleted[] entry sets deleted_at on a row that may already have it.
// The reverse order (mark, then rows) could lose a file, so it is never used.
// Step 1 must also be durable before step 2: headache.db runs
// synchronous=NORMAL, where a commit may vanish on power loss (not on a
// process crash) while this FULL vault keeps its mark. bulk_file_apply
// therefore commits a file's transaction with `PRAGMA synchronous=FULL` on
// the analytics connection (one fsync per file, not per row).
//
// mark_bulk_file_applied() opens no transaction of its own: it is one
// UPDATE, atomic alone, and a caller that writes other vault rows with it
// wraps both in a store::write_transaction on the same connection.
// save_bulk_job() and store_bulk_since() open their own (BEGIN IMMEDIATE);
// do not call them inside another transaction on this connection.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>

#include "headachemd/sync/bulk_job.hpp"

namespace headachemd::sync {

// Replaces the EHR's record (the job row and its manifest's files) in one
// transaction: the `persist` action. Durable when it returns (vault
// synchronous=FULL).
void save_bulk_job(SQLite::Database& vault, std::string_view ehr, const bulk_job_record& r, sys_time now);

// The EHR's record, or nullopt when it never had a job. A row this binary
// cannot read (an unknown phase, file kind or error code, a manifest with
// missing fields, file indexes with gaps) throws store_error naming the row:
// resuming a job from a half-understood record could kick off twice or
// apply a file twice, so it is refused instead.
std::optional<bulk_job_record> load_bulk_job(SQLite::Database& vault, std::string_view ehr);

// The `apply` action's mark, after the file's rows committed in headache.db
// (see above). Throws store_error when the EHR has no such file.
void mark_bulk_file_applied(SQLite::Database& vault, std::string_view ehr, std::size_t file);

// The `store_since` action: the cursor and the job's since_stored in one
// transaction, so the next job never starts from a transactionTime whose
// files the record still shows as pending, nor the reverse.
void store_bulk_since(SQLite::Database& vault, std::string_view ehr, std::string_view since, sys_time now);

// The _since the EHR's next export asks for; nullopt before the first
// complete export (the next one is a full export).
std::optional<std::string> load_bulk_since(SQLite::Database& vault, std::string_view ehr);

// When the EHR's job row was last written: for an ended job, when it
// ended. nullopt without a row (or an unreadable time).
std::optional<sys_time> load_bulk_job_updated_at(SQLite::Database& vault, std::string_view ehr);

// The phase that `text` names (to_string(bulk_phase)); nullopt otherwise.
std::optional<bulk_phase> bulk_phase_from_string(std::string_view text);

}  // namespace headachemd::sync
