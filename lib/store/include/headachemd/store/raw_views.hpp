// One ViewDefinition over the resources whose JSON headache.db keeps
// (`view run --db`, issue 16 item 5): the analyst tries a definition on the
// stored data before adding it to the config. Read-only: the caller opens
// the database (SQLITE_OPEN_READONLY), so it works while the daemon writes
// (WAL).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <SQLiteCpp/Database.h>

#include "headachemd/views/run.hpp"
#include "headachemd/views/view.hpp"

namespace headachemd::store {

// Resources of one type with kept JSON (rows with a raw_frame pointer, and
// resource_raw rows from before schema 12), deleted ones included. None at all
// while the typed tables hold resources of the type means store_raw was
// off when they were written.
std::size_t count_raw_rows(SQLite::Database& db, std::string_view resource_type);

struct raw_view_result {
    std::size_t resources = 0;  // resources still present (evaluated)
    int problems = 0;           // rows that failed (each reported to on_problem)
};

// Evaluates `plan` over the kept JSON of every resource of plan.resource()
// whose row (condition, observation, ...) is not marked deleted: first the
// raw_frames of the type in the order written (each resource once, in its
// stored version), then resource_raw rows (from before schema 12) of rows
// without a frame, in (source, id) order. Each key column ("Patient/<id>" under [privacy]
// identifiers = "none") becomes the patient_key headache.db stored for
// that patient, looked up in the patient table by (source,
// fhir_patient_id): the same key the analyst tables and the materialized
// views hold. Rows go to runner's row callback; a row whose JSON cannot be
// decoded or parsed, or whose Patient has no stored key, is one problem
// naming the row (source, type and id; never its content), and the others
// still run. Throws SQLite::Exception on a database failure.
raw_view_result run_view_over_raw(SQLite::Database& db, const views::view& plan,
                                  views::view_runner::row_fn on_row,
                                  views::view_runner::problem_fn on_problem);

}  // namespace headachemd::store
