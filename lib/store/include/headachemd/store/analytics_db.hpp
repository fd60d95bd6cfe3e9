// headache.db: the normalized tables that analysts read.
//
// One writer: a process holds one analytics_db and one resource_writer.
// Readers (sqlite3, Python, R, DuckDB) may read concurrently: the file is in
// WAL mode, and every write batch is one explicit BEGIN IMMEDIATE
// transaction, so a reader sees whole Bundles or pages, never half of one.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/normalize/records.hpp"
#include "headachemd/store/database.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/store/raw_json.hpp"

namespace headachemd::store {

namespace detail {
class raw_frame_writer;
}

// [privacy] identifiers, as the store applies it. With "none" (the default)
// headache.db holds no FHIR patient id at all: `patient.id` is
// patient_key_for(key, source, FHIR id), `patient.fhir_patient_id` is NULL,
// and resource_raw is refused (every raw resource names its patient).
// "minimal" also keeps the FHIR id in `patient.fhir_patient_id`; a Patient's
// raw JSON (names, addresses, telecom, identifiers) is never kept.
struct identity_policy {
    pseudonym_key key{};                // the vault's pseudonymization key
    bool keep_fhir_patient_id = false;  // identifiers = "minimal"
};

// What enforce_identifier_policy changed (all zero in a steady state).
struct identity_changes {
    int ids_pseudonymized = 0;  // patient rows whose id was still a FHIR id
    int fhir_ids_cleared = 0;   // fhir_patient_id values removed ("none")
    int raw_rows_removed = 0;   // kept JSON removed: resource_raw rows and row pointers into raw_frame
    bool any() const { return ids_pseudonymized + fhir_ids_cleared + raw_rows_removed > 0; }
};

class analytics_db {
public:
    // Opens or creates the file (mode 0640) and brings the schema up to
    // date. Throws store_error (not SQLite, read-only, newer schema, …).
    explicit analytics_db(const std::filesystem::path& path);

    SQLite::Database& sql() { return db_; }
    const std::filesystem::path& path() const { return path_; }
    int schema_version();

    // The pseudonymization key's fingerprint is stamped into the file the
    // first time; afterwards a different key is refused, because rows keyed
    // with two keys would split one patient in two. Throws store_error.
    void bind_pseudonym_fingerprint(std::string_view fingerprint);
    // The read-only half: true when the file carries this fingerprint, false
    // when it carries none yet; throws store_error when it carries another.
    bool has_pseudonym_fingerprint(std::string_view fingerprint);

    // Brings stored rows in line with the policy, in one transaction:
    // patient ids still in FHIR form (written before schema version 4) are
    // replaced by their keyed hash; under "none" every fhir_patient_id is
    // cleared and every kept JSON removed (resource_raw, raw_frame and the
    // rows' pointers); under "minimal" raw Patient
    // resources are removed. The connection runs with secure_delete, and a
    // change is followed by a WAL checkpoint that truncates the -wal file,
    // so the removed values do not linger in free pages or the WAL. Call it
    // once after bind_pseudonym_fingerprint with the same key (the sync
    // engine and the ingester do). Only reads when nothing needs changing,
    // so it works beside an analyst's write lock. Throws store_error.
    identity_changes enforce_identifier_policy(const identity_policy& policy);

    // Moves the whole WAL into the database file and truncates it to zero
    // bytes, unless an analyst still reads an older snapshot: then it copies
    // what it may and returns false at once, never waiting for the reader.
    // A reader that holds a snapshot for hours starves SQLite's automatic
    // checkpoints and the WAL keeps growing ("checkpoint starvation",
    // https://www.sqlite.org/wal.html); calling this after every pass gives
    // the disk back as soon as the reader is gone. Throws nothing.
    bool checkpoint_unless_read();

private:
    void share_wal_with_readers();

    std::filesystem::path path_;
    SQLite::Database db_;
};

enum class upsert_outcome { inserted, updated, unchanged };

// Upserts records on (source, id) with statements prepared once.
// A row whose raw_hash is unchanged (and which is not marked deleted) is
// not rewritten. Call inside a write_transaction.
class resource_writer {
public:
    // Throws std::invalid_argument for store_raw under identifiers = "none":
    // raw JSON carries the FHIR patient id (every subject reference) and
    // often names, which "none" promises never to store.
    resource_writer(analytics_db& db, bool store_raw, const identity_policy& ids);
    ~resource_writer();
    resource_writer(const resource_writer&) = delete;
    resource_writer& operator=(const resource_writer&) = delete;

    // `patient_key` may be empty for a resource that names no patient
    // (stored as NULL). `now` is the UTC time text for ingested_at.
    // Throws SQLite::Exception on a write failure (the caller rolls back).
    upsert_outcome upsert(const normalize::record& r, std::string_view source, std::string_view patient_key,
                          std::string_view now);

    // A plain INSERT with no look-up first: the lower bound that
    // bench/ingest measures upsert() against. Throws SQLite::Exception if
    // the row exists.
    void insert(const normalize::record& r, std::string_view source, std::string_view patient_key,
                std::string_view now);

    // The `id` a record is stored under: its FHIR id, except for a Patient,
    // whose id is pseudonymized (see identity_policy).
    std::string stored_id(const normalize::record& r, std::string_view source) const;
    // The same for a resource known by its FHIR type and id only (a Bulk
    // Data deleted[] entry).
    std::string stored_id(std::string_view resource_type, std::string_view id, std::string_view source) const;

    // With store_raw, upsert() and insert() point each row into a frame of
    // JSON held in memory (schema 12, raw_frame): flush_raw() writes those
    // frames, and must run before the transaction commits, or the rows
    // point at frames that do not exist. write_page() calls it after the
    // page's last row. discard_raw() forgets them when the transaction
    // rolls back instead. Both are cheap when nothing is pending.
    void flush_raw();
    void discard_raw();

private:
    struct table_statements;
    // Binds and runs one row statement (and the raw row when it changed
    // something); returns the number of rows changed.
    int write(SQLite::Statement& w, const normalize::record& r, std::string_view source,
              std::string_view patient_key, std::string_view now, const std::string& id);
    table_statements& statements_for(const normalize::record& r);

    analytics_db& db_;
    bool store_raw_;
    identity_policy ids_;
    std::vector<std::unique_ptr<table_statements>> tables_;  // by record variant index
    std::unique_ptr<detail::raw_frame_writer> frames_;
    std::unique_ptr<SQLite::Statement> legacy_raw_delete_;
    std::string source_, patient_key_, now_, row_id_;
};

}  // namespace headachemd::store
