#include "headachemd/store/sync_state.hpp"

#include "headachemd/store/view_tables.hpp"

#include <array>
#include <stdexcept>

#include <SQLiteCpp/Statement.h>

namespace headachemd::store {
namespace {

namespace nz = headachemd::normalize;

std::optional<std::string> opt_text(const SQLite::Column& c) {
    if (c.isNull()) return std::nullopt;
    return c.getString();
}

void bind_opt(SQLite::Statement& s, int i, const std::optional<std::string>& v) {
    if (v)
        s.bind(i, *v);
    else
        s.bind(i);
}

// Only these names may be spliced into the delete-marking SQL: they are
// identifiers from our own schema, never input.
constexpr std::array analyst_tables = {"patient",   "condition",   "medication_request", "appointment",
                                       "encounter", "observation", "procedure"};

// resource_raw names a resource by its FHIR type; the typed table by ours.
struct raw_type {
    const char* table;
    const char* resource_type;
};
constexpr std::array raw_types = {raw_type{"patient", "Patient"},
                                  raw_type{"condition", "Condition"},
                                  raw_type{"medication_request", "MedicationRequest"},
                                  raw_type{"appointment", "Appointment"},
                                  raw_type{"encounter", "Encounter"},
                                  raw_type{"observation", "Observation"},
                                  raw_type{"procedure", "Procedure"}};
static_assert(raw_types.size() == analyst_tables.size());

// The table's name from the fixed list (never the caller's text); the
// bare_resource table needs the FHIR type whose rows are meant.
const char* table_name_checked(std::string_view table, std::string_view resource_type, const char* who) {
    if (table == nz::bare_table) {
        if (resource_type.empty())
            throw std::invalid_argument(std::string(who) + ": bare_resource needs a resource type");
        return nz::bare_table.data();
    }
    for (const char* t : analyst_tables)
        if (table == t) return t;
    throw std::invalid_argument(std::string(who) + ": not an analyst table");
}

// One statement per table, from the fixed names above; values are bound.
long long for_patient(SQLite::Database& db, const std::string& verb_and_rest, std::string_view source,
                      std::string_view patient_key) {
    SQLite::Statement q(db, verb_and_rest);
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    if (verb_and_rest.rfind("SELECT", 0) == 0) {
        q.executeStep();
        return q.getColumn(0).getInt64();
    }
    return q.exec();
}

std::vector<std::string> patient_statements(SQLite::Database& db, bool count) {
    const std::string head = count ? "SELECT count(*) FROM " : "DELETE FROM ";
    std::vector<std::string> out;
    // The materialized views' rows carry the patient key too (view_tables.hpp).
    // Names come from view_definition (a-z 0-9 _, checked by the config).
    SQLite::Statement views(db,
                            "SELECT d.name FROM view_definition d JOIN sqlite_master m "
                            "ON m.type = 'table' AND m.name = 'view_' || d.name ORDER BY d.name");
    while (views.executeStep())
        out.push_back(head + "\"view_" + views.getColumn(0).getString() +
                      "\" WHERE \"_source\" = ?1 AND \"_patient_key\" = ?2");
    // resource_raw first: its rows are found through the typed rows.
    for (const auto& r : raw_types)
        out.push_back(head + "resource_raw WHERE source = ?1 AND resource_type = '" + r.resource_type +
                      "' AND id IN (SELECT id FROM \"" + r.table +
                      "\" WHERE source = ?1 AND patient_key = ?2)");
    // The patient's JSON frames (schema 12): every row pointing into one is
    // the patient's, since a frame holds one patient's resources.
    out.push_back(head + "raw_frame WHERE source = ?1 AND patient_key = ?2");
    // bare_resource (schema 11): resources only a view reads.
    out.push_back(head +
                  "resource_raw WHERE source = ?1 AND EXISTS (SELECT 1 FROM bare_resource b WHERE "
                  "b.source = ?1 AND b.patient_key = ?2 AND b.resource_type = resource_raw.resource_type "
                  "AND b.id = resource_raw.id)");
    for (const char* t : analyst_tables)
        out.push_back(head + "\"" + t + "\" WHERE source = ?1 AND patient_key = ?2");
    out.push_back(head + "bare_resource WHERE source = ?1 AND patient_key = ?2");
    out.push_back(head + "sync_cursor WHERE source = ?1 AND patient_key = ?2");
    out.push_back(head + "sync_status WHERE source = ?1 AND patient_key = ?2");
    return out;
}

}  // namespace

long long sync_state::patient_rows(std::string_view source, std::string_view patient_key) {
    long long n = 0;
    for (const auto& sql : patient_statements(db_.sql(), true))
        n += for_patient(db_.sql(), sql, source, patient_key);
    return n;
}

long long sync_state::purge_patient(std::string_view source, std::string_view patient_key) {
    long long n = 0;
    try {
        write_transaction tx(db_.sql());
        for (const auto& sql : patient_statements(db_.sql(), false))
            n += for_patient(db_.sql(), sql, source, patient_key);
        tx.commit();
        // The deleted rows' old pages still sit in the -wal file: move them
        // into the (zeroed) main file and cut the WAL to nothing. A reader
        // in the way only delays this to a later checkpoint.
        if (n > 0) db_.sql().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, db_.path(), "removing the patient's rows from");
    }
    return n;
}

cursor sync_state::read_cursor(std::string_view source, std::string_view patient_key, std::string_view type) {
    SQLite::Statement q(db_.sql(),
                        "SELECT last_updated_max, last_full_pull_at, last_count_check_at FROM sync_cursor "
                        "WHERE source = ?1 AND patient_key = ?2 AND resource_type = ?3");
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    q.bind(3, std::string(type));
    cursor c;
    if (q.executeStep()) {
        c.last_updated_max = opt_text(q.getColumn(0));
        c.last_full_pull_at = opt_text(q.getColumn(1));
        c.last_count_check_at = opt_text(q.getColumn(2));
    }
    return c;
}

void sync_state::write_cursor(std::string_view source, std::string_view patient_key, std::string_view type,
                              const cursor& c) {
    SQLite::Statement q(
        db_.sql(),
        "INSERT INTO sync_cursor (source, patient_key, resource_type, last_updated_max, "
        "last_full_pull_at, last_count_check_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT (source, patient_key, resource_type) DO UPDATE SET "
        "last_updated_max = excluded.last_updated_max, last_full_pull_at = excluded.last_full_pull_at, "
        "last_count_check_at = excluded.last_count_check_at");
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    q.bind(3, std::string(type));
    bind_opt(q, 4, c.last_updated_max);
    bind_opt(q, 5, c.last_full_pull_at);
    bind_opt(q, 6, c.last_count_check_at);
    q.exec();
}

int sync_state::mark_deleted_except(std::string_view source, std::string_view patient_key,
                                    std::string_view table, const std::vector<std::string>& seen_ids,
                                    std::string_view now, std::string_view resource_type) {
    const char* name = table_name_checked(table, resource_type, "mark_deleted_except");
    const bool bare = table == nz::bare_table;

    db_.sql().exec("CREATE TEMP TABLE IF NOT EXISTS seen_id (id TEXT PRIMARY KEY) WITHOUT ROWID");
    db_.sql().exec("DELETE FROM temp.seen_id");
    SQLite::Statement ins(db_.sql(), "INSERT OR IGNORE INTO temp.seen_id (id) VALUES (?1)");
    for (const auto& id : seen_ids) {
        ins.reset();
        ins.bind(1, id);
        ins.exec();
    }
    SQLite::Statement upd(db_.sql(),
                          std::string("UPDATE \"") + name +
                              "\" SET deleted_at = ?3 WHERE source = ?1 AND patient_key = ?2 "
                              "AND deleted_at IS NULL AND id NOT IN (SELECT id FROM temp.seen_id)" +
                              (bare ? " AND resource_type = ?4" : ""));
    upd.bind(1, std::string(source));
    upd.bind(2, std::string(patient_key));
    upd.bind(3, std::string(now));
    if (bare) upd.bind(4, std::string(resource_type));
    const int n = upd.exec();
    db_.sql().exec("DELETE FROM temp.seen_id");
    // A deleted resource leaves the views (issue 16): its row stays in the
    // typed table with deleted_at, but a view row has nowhere to say so.
    for (const auto& rt : raw_types)
        if (table == rt.table) remove_deleted_view_rows(db_, source, patient_key, rt.table, rt.resource_type);
    if (bare) remove_deleted_view_rows(db_, source, patient_key, nz::bare_table, resource_type);
    return n;
}

bool sync_state::mark_deleted(std::string_view source, std::string_view table, std::string_view id,
                              std::string_view now, std::string_view resource_type) {
    const char* name = table_name_checked(table, resource_type, "mark_deleted");
    const bool bare = table == nz::bare_table;
    // RETURNING (SQLite 3.35): the row's patient, whose deleted rows leave
    // the views below.
    SQLite::Statement upd(db_.sql(), std::string("UPDATE \"") + name +
                                         "\" SET deleted_at = ?3 WHERE source = ?1 AND id = ?2 "
                                         "AND deleted_at IS NULL" +
                                         (bare ? " AND resource_type = ?4" : "") + " RETURNING patient_key");
    upd.bind(1, std::string(source));
    upd.bind(2, std::string(id));
    upd.bind(3, std::string(now));
    if (bare) upd.bind(4, std::string(resource_type));
    if (!upd.executeStep()) return false;
    const bool has_patient = !upd.getColumn(0).isNull();
    const std::string patient_key = has_patient ? upd.getColumn(0).getString() : std::string();
    while (upd.executeStep()) {
    }
    // A resource that names no patient has no view rows keyed to one to
    // find it by; remove_deleted_view_rows matches on the patient key.
    if (has_patient) {
        if (bare)
            remove_deleted_view_rows(db_, source, patient_key, nz::bare_table, resource_type);
        else
            for (const auto& rt : raw_types)
                if (table == rt.table)
                    remove_deleted_view_rows(db_, source, patient_key, rt.table, rt.resource_type);
    }
    return true;
}

long long sync_state::live_rows(std::string_view source, std::string_view patient_key, std::string_view table,
                                std::string_view resource_type) {
    const char* name = table_name_checked(table, resource_type, "live_rows");
    const bool bare = table == nz::bare_table;
    SQLite::Statement q(db_.sql(), std::string("SELECT count(*) FROM \"") + name +
                                       "\" WHERE source = ?1 AND patient_key = ?2 AND deleted_at IS NULL" +
                                       (bare ? " AND resource_type = ?3" : ""));
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    if (bare) q.bind(3, std::string(resource_type));
    q.executeStep();
    return q.getColumn(0).getInt64();
}

std::optional<std::string> sync_state::last_success(std::string_view source, std::string_view patient_key,
                                                    std::string_view type) {
    SQLite::Statement q(db_.sql(),
                        "SELECT last_success_at FROM sync_status "
                        "WHERE source = ?1 AND patient_key = ?2 AND resource_type = ?3");
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    q.bind(3, std::string(type));
    if (!q.executeStep()) return std::nullopt;
    return opt_text(q.getColumn(0));
}

void sync_state::put_status(const status_row& s) {
    SQLite::Statement q(
        db_.sql(),
        "INSERT OR REPLACE INTO sync_status (source, patient_key, resource_type, last_attempt_at, "
        "last_success_at, last_error, next_run_at, rows_changed, needs_reauth, not_permitted) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    q.bind(1, s.source);
    q.bind(2, s.patient_key);
    q.bind(3, s.resource_type);
    bind_opt(q, 4, s.last_attempt_at);
    bind_opt(q, 5, s.last_success_at);
    bind_opt(q, 6, s.last_error);
    bind_opt(q, 7, s.next_run_at);
    q.bind(8, static_cast<std::int64_t>(s.rows_changed));
    q.bind(9, s.needs_reauth ? 1 : 0);
    q.bind(10, s.not_permitted ? 1 : 0);
    q.exec();
}

void sync_state::set_next_run(std::string_view source, std::string_view patient_key,
                              const std::optional<std::string>& next_run_at) {
    SQLite::Statement q(db_.sql(),
                        "INSERT INTO sync_status (source, patient_key, resource_type, next_run_at) "
                        "VALUES (?1, ?2, '*', ?3) "
                        "ON CONFLICT (source, patient_key, resource_type) DO UPDATE SET "
                        "next_run_at = excluded.next_run_at");
    q.bind(1, std::string(source));
    q.bind(2, std::string(patient_key));
    bind_opt(q, 3, next_run_at);
    q.exec();
}

std::vector<status_row> sync_state::all_status() {
    SQLite::Statement q(
        db_.sql(),
        "SELECT source, patient_key, resource_type, last_attempt_at, last_success_at, last_error, "
        "next_run_at, rows_changed, needs_reauth, not_permitted FROM sync_status "
        "ORDER BY source, patient_key, resource_type");
    std::vector<status_row> out;
    while (q.executeStep()) {
        status_row s;
        s.source = q.getColumn(0).getString();
        s.patient_key = q.getColumn(1).getString();
        s.resource_type = q.getColumn(2).getString();
        s.last_attempt_at = opt_text(q.getColumn(3));
        s.last_success_at = opt_text(q.getColumn(4));
        s.last_error = opt_text(q.getColumn(5));
        s.next_run_at = opt_text(q.getColumn(6));
        s.rows_changed = q.getColumn(7).getInt64();
        s.needs_reauth = q.getColumn(8).getInt() != 0;
        s.not_permitted = q.getColumn(9).getInt() != 0;
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace headachemd::store
