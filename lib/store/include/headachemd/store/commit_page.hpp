// The one page transaction: the rows of a page of normalized records, and
// whatever else must land with them, committed together or not at all.
// Used by the sync engine (one FHIR search page) and by ingest (one Bundle
// file, or one batch of NDJSON lines).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "headachemd/normalize/records.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/view_tables.hpp"

namespace headachemd::store {

// What a caller adds to the transaction. Every hook runs inside it, so a
// throw from a hook rolls the whole page back like a failed row write.
struct page_hooks {
    // The patient key a record is stored under (empty: the resource names
    // no patient, stored as NULL). The sync job knows its patient; ingest
    // derives the key from each record's subject.
    std::function<const std::string&(const normalize::record&)> patient_key;
    // After each record's upsert, in page order; optional.
    std::function<void(const normalize::record&, upsert_outcome)> on_row;
    // After the last row and before COMMIT: the sync cursor and delete
    // detection on a search's last page; optional.
    std::function<void()> before_commit;
    // The materialized views (issue 16): after each record's upsert and
    // before on_row, the resource's rows in every view of its type are
    // replaced, inside the transaction, so a page and its view rows commit
    // together or not at all. Optional; the records of the types it reads
    // must carry their JSON (normalize::options::raw_for_types).
    view_tables* views = nullptr;
    // FHIR Patient id -> patient_key for the views' key columns under
    // identifiers = "none" (view_tables::apply). The sync job maps its own
    // patient to the configured key; any other id, and every id in ingest,
    // gets the keyed hash (store::patient_key_for).
    views::key_mapper view_patient_key;
    // When the records came in one Bundle: resolves a reference that is
    // another entry's fullUrl for the views' getReferenceKey() (a
    // transaction's urn:uuid subject). Ingest builds it from the
    // normalizer's normalize::result::full_urls; empty otherwise.
    views::reference_resolver view_references;
};

// The page's counts by outcome, meaningful only once it committed.
struct page_counts {
    int inserted = 0;
    int updated = 0;
    int unchanged = 0;
};

// Upserts `records` in their order under `source` with ingested_at `now`
// in one write_transaction (BEGIN IMMEDIATE, so a busy database waits out
// busy_timeout on BEGIN and never fails a later upgrade), then runs
// before_commit and commits. Throws what the writer, a hook or SQLite
// throws (SQLite::Exception, store_error); the transaction is then rolled
// back and nothing of the page is stored. Callers map the throw to their
// own error.
page_counts commit_page(analytics_db& db, resource_writer& writer, std::span<const normalize::record> records,
                        std::string_view source, std::string_view now, const page_hooks& hooks);

// commit_page's body without the transaction: upserts `records` (with the
// view rows and on_row of each) inside a write_transaction the caller
// holds open on db.sql(), for a caller whose unit of commit is larger than
// one page (a Bulk Data file, sync::bulk_file_apply: SQLite does not nest
// BEGIN). before_commit is not run; the caller commits. Throws as
// commit_page does; the caller's transaction is then to be rolled back.
page_counts write_page(resource_writer& writer, std::span<const normalize::record> records,
                       std::string_view source, std::string_view now, const page_hooks& hooks);

}  // namespace headachemd::store
