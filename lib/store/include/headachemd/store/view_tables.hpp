// Materialized SQL on FHIR v2 ViewDefinitions (issue 16 item 3): each
// [[view]] of the config is a table view_<name> in headache.db, written in
// the same transaction as the page or file that brought its resources
// (commit_page), so it is never out of step with the normalized tables.
//
// Table layout: the view's columns in the definition's order, with types
// from the declared FHIR type (boolean, integer, positiveInt, unsignedInt,
// integer64 → INTEGER; decimal → REAL; anything else or undeclared → TEXT;
// a collection=true column or a complex element → JSON text), then the
// bookkeeping columns _source, _resource_type, _resource_id and
// _patient_key. View column names start with a letter (the engine refuses
// others), so a leading '_' cannot clash.
#pragma once

#include <simdjson.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "headachemd/normalize/records.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/views/view.hpp"

namespace headachemd::store {

// A [[view]] as the config names it.
struct view_file {
    std::string name;  // ^[a-z][a-z0-9_]{0,47}$ (the config checks)
    std::filesystem::path file;
};

// A definition read and compiled.
struct loaded_view {
    std::string name;
    std::filesystem::path file;
    std::string definition_sha256;  // lower-case hex of the file's bytes
    views::view plan;
};

struct view_load_result {
    std::vector<loaded_view> views;
    // One line each: "[[view]] \"bp\": /etc/headachemd/bp.json: select[0].column[1].path
    // (offset 5): …". Empty when every file was read and compiled.
    std::vector<std::string> errors;
};

// Reads each file (the config's file rule: not writable by group or
// others, since a definition decides what lands in headache.db) and
// compiles it. All files are tried; every refusal is listed.
// `identifiers` is the config's [privacy] identifiers: under "none" or
// "minimal" a definition that could reach a patient's name, address,
// telecom, identifiers or birth date is refused with the JSON path that
// offends (views::compile_options; issue 16 item 4), before any table is
// made. Only tests pass privacy::off.
view_load_result load_views(std::span<const view_file> files, views::privacy identifiers);

// The SQLite type of a column declared with this FHIR type.
std::string_view sqlite_type_for(const views::column_info& column);

// One resource a view could not evaluate. The page is kept: the resource's
// normalized row is right, and its old view rows are removed, because they
// describe a version that no longer exists.
struct view_failure {
    std::string view;           // the [[view]] name
    std::string resource_type;  // FHIR type
    std::string resource_id;    // as stored (a Patient's is its keyed hash)
    std::string json_path;      // where in the definition
    std::string message;        // the engine's message; never resource data
};

// A view's row in view_definition, for `status`.
struct view_state {
    std::string name, resource, created_at, backfill_state;
    std::string backfilled_at{};       // when a back-fill from the kept JSON finished; empty: none did
    long long backfill_missing_raw{};  // resources it found no raw JSON for
    bool backfill_under_way{};         // a back-fill was interrupted; the next start goes on
};
std::vector<view_state> read_view_states(analytics_db& db);

// FHIR Patient id -> patient_key for the views' key columns, given the
// source a stored resource came from (the back-fill has no sync job or
// file to ask; see page_hooks::view_patient_key).
using source_key_mapper =
    std::function<std::string(std::string_view source, std::string_view fhir_patient_id)>;

struct backfill_options {
    // Resources per write transaction: each is BEGIN IMMEDIATE, so a
    // bounded batch keeps the write lock short for analysts' writes and
    // for the daemon's own pages.
    std::size_t batch_resources = 200;
    // After each batch's COMMIT: the caller logs take_failures(). A throw
    // from it stops the back-fill with the committed batches kept (the
    // tests stop it this way, as a crash would).
    std::function<void()> after_batch;
};

// What one view's back-fill did in this call.
struct backfill_result {
    std::string view;
    std::string resource_type;
    long long resources = 0;    // stored resources whose rows it wrote (or found none for)
    long long missing_raw = 0;  // of this view's whole back-fill: no raw JSON to read
    bool complete = false;      // the view is now 'complete'
};

// One log line for it: the view, counts and state; never resource data.
std::string backfill_summary(const backfill_result& r);

class view_tables {
public:
    // Makes each view_<name> table that is missing or was made from another
    // definition (dropped and made again, empty) and records the
    // definition in view_definition, in one write transaction. A view made
    // while resources of its type are already stored is 'pending'; a
    // pending view becomes 'complete' once every sync cursor of its type
    // had a full pull after the view was made. Views no longer in the
    // config are left alone (an analyst may still use the table). Throws
    // store_error.
    view_tables(analytics_db& db, std::vector<loaded_view> views, std::string_view now);
    ~view_tables();
    view_tables(const view_tables&) = delete;
    view_tables& operator=(const view_tables&) = delete;

    bool empty() const { return views_.empty(); }
    // True when some view reads this FHIR type (the normalizer then keeps
    // the resource's JSON in memory for it, header::raw).
    bool reads(std::string_view resource_type) const;
    std::vector<std::string> resource_types() const;

    // Inside the page's transaction, after the record's upsert: replaces
    // the resource's rows in every view of its type. An unchanged resource
    // needs nothing, except for a pending view, which is being filled.
    // The record must carry its JSON (header::raw). Throws what SQLite
    // throws (the caller rolls back); an evaluation failure is recorded in
    // failures() instead and the page goes on.
    // `patient_keys` maps a FHIR Patient id to its patient_key for the
    // key columns of a view compiled under privacy::none (getResourceKey()
    // on a Patient, getReferenceKey(Patient)); such a view fails rather
    // than store the FHIR id when it is empty.
    // `references` resolves references to the other entries of the Bundle
    // the record came in (views::eval_options::resolve_reference); empty
    // for NDJSON, single resources and sync pages.
    void apply(const normalize::record& r, upsert_outcome outcome, std::string_view source,
               std::string_view stored_id, std::string_view patient_key,
               const views::key_mapper& patient_keys, const views::reference_resolver& references = {});

    // Fills each 'pending' view whose back-fill has not finished from the
    // JSON kept of the stored resources of its type (raw_frame in frame order,
    // then resource_raw rows of rows without a frame, in key order): the
    // rows apply() would have written, under the stored patient_key, in
    // write transactions of opts.batch_resources resources. Resumable: the
    // progress is committed with each batch's rows (view_definition), and a
    // resource's rows are replaced, never added to. A resource marked
    // deleted gets no rows. When every stored resource had raw JSON the
    // view becomes 'complete'; otherwise it stays 'pending' (the rest
    // comes with the next full pull or re-ingest) and is not back-filled
    // again until its definition changes. Evaluation failures go to
    // failures() as in apply(). Throws store_error.
    std::vector<backfill_result> backfill(std::string_view now, const source_key_mapper& patient_keys,
                                          const backfill_options& opts = {});

    // Failures since the last take; the caller logs them after COMMIT.
    std::vector<view_failure> take_failures();

private:
    struct table;
    // Replaces the resource's rows in `t` by those of the parsed `root`.
    // `references` resolves a Bundle's fullUrls (empty outside a Bundle and
    // in the back-fill, which reads resources one by one).
    void write_rows(table& t, simdjson::dom::element root, std::string_view raw, std::string_view type,
                    std::string_view source, std::string_view stored_id, std::string_view patient_key,
                    const views::key_mapper& patient_keys, const views::reference_resolver& references = {});
    void remove_rows(table& t, std::string_view type, std::string_view source, std::string_view stored_id);
    backfill_result backfill_one(table& t, std::string_view now, const source_key_mapper& patient_keys,
                                 const backfill_options& opts);
    analytics_db& db_;
    std::vector<std::unique_ptr<table>> views_;
    simdjson::dom::parser parser_;
    std::vector<view_failure> failures_;
};

// After delete detection marked rows deleted (sync_state), removes the
// view rows of every resource of this type, source and patient that is
// marked deleted. Reads the views from view_definition, so the caller
// needs no view_tables. Returns the number of rows removed.
int remove_deleted_view_rows(analytics_db& db, std::string_view source, std::string_view patient_key,
                             std::string_view table, std::string_view resource_type);

}  // namespace headachemd::store
