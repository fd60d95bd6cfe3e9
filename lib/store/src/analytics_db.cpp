#include "headachemd/store/analytics_db.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <ctime>
#include <initializer_list>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include <SQLiteCpp/Exception.h>

#include "raw_frame_writer.hpp"

namespace headachemd::store {
namespace {

namespace nz = headachemd::normalize;

// "HDMA" in ASCII: stamped into PRAGMA application_id so that a file is
// recognised as ours (and another program's database is never migrated).
constexpr std::int32_t analytics_application_id = 0x48444d41;

// Columns shared by every table, in the order they are bound (?1..?7);
// deleted_at is written as NULL because a resource we just read exists.
constexpr std::array common_columns = {"source",       "id",       "patient_key", "version_id",
                                       "last_updated", "raw_hash", "ingested_at"};
constexpr int first_own_param = static_cast<int>(common_columns.size()) + 1;

// Values stay alive until exec() returns, so SQLite need not copy them.
void bind(SQLite::Statement& s, int i, const nz::opt_text& v) {
    if (v)
        s.bindNoCopy(i, *v);
    else
        s.bind(i);
}
void bind(SQLite::Statement& s, int i, const nz::opt_real& v) {
    if (v)
        s.bind(i, *v);
    else
        s.bind(i);
}
void bind(SQLite::Statement& s, int i, const nz::opt_int& v) {
    if (v)
        s.bind(i, static_cast<std::int64_t>(*v));
    else
        s.bind(i);
}
void bind(SQLite::Statement& s, int i, const nz::opt_bool& v) {
    if (v)
        s.bind(i, *v ? 1 : 0);
    else
        s.bind(i);
}
// Readies a statement the writer keeps for every page. Not reset(): after
// a step that failed (a full disk, a trigger's RAISE, a lock), sqlite3_reset
// returns that step's error again (https://sqlite.org/c3ref/reset.html), and
// SQLiteCpp's reset() throws it, so the next page would be refused for a
// cause that is gone. The failure was reported when it happened.
void rearm(SQLite::Statement& s) { (void)s.tryReset(); }

void bind(SQLite::Statement& s, int i, const std::string& v) { s.bindNoCopy(i, v); }
void bind(SQLite::Statement& s, int i, bool v) { s.bind(i, v ? 1 : 0); }

template <class... Fields>
void bind_all(SQLite::Statement& s, const Fields&... fields) {
    int i = first_own_param;
    (bind(s, i++, fields), ...);
}

// The table-specific columns, named in the same order as each binder below
// binds them. These names are the analysts' contract (schema/README.md).
struct table_def {
    const char* table;
    std::initializer_list<const char*> columns;
    // bare_resource holds many FHIR types, so the type is part of its key
    // and is its first own column (?8).
    bool typed_key = false;
    // raw_frame, raw_at, raw_len (schema 12) follow the own columns: where
    // the resource's JSON is kept. A Patient's JSON never is.
    bool raw_pointer = true;
};

// The first of the three pointer parameters (0: the table has none).
int raw_pointer_param(const table_def& d) {
    return d.raw_pointer ? first_own_param + static_cast<int>(d.columns.size()) : 0;
}
constexpr std::array raw_pointer_columns = {"raw_frame", "raw_at", "raw_len"};
// The tables with a pointer: every one but patient (schema/0012_raw_frame.sql).
constexpr std::array raw_pointer_tables = {"condition",   "medication_request", "appointment",  "encounter",
                                           "observation", "procedure",          "bare_resource"};

const table_def& def_of(const nz::patient_record&) {
    // fhir_patient_id (schema 0004) is bound by write(), which knows the policy.
    static const table_def d{
        "patient", {"birth_year", "sex", "deceased", "deceased_at", "fhir_patient_id"}, false, false};
    return d;
}
constexpr int patient_fhir_id_param = first_own_param + 4;
void bind_own(SQLite::Statement& s, const nz::patient_record& r) {
    bind_all(s, r.birth_year, r.sex, r.deceased, r.deceased_at);
}

const table_def& def_of(const nz::condition_record&) {
    static const table_def d{
        "condition",
        {"code_system", "code", "code_display", "code_text", "clinical_status", "verification_status",
         "category", "onset", "abatement", "recorded_date", "headache_type"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::condition_record& r) {
    bind_all(s, r.code_system, r.code, r.code_display, r.code_text, r.clinical_status, r.verification_status,
             r.category, r.onset, r.abatement, r.recorded_date, r.headache_type);
}

const table_def& def_of(const nz::medication_request_record&) {
    static const table_def d{"medication_request",
                             {"status",
                              "intent",
                              "authored_on",
                              "medication_system",
                              "medication_code",
                              "medication_display",
                              "medication_reference",
                              "ingredient",
                              "drug_class",
                              "therapy_role",
                              "as_needed",
                              "dose_text",
                              "dose_quantity",
                              "doses_per_day",
                              "quantity",
                              "quantity_unit",
                              "days_supply",
                              "refills",
                              "status_reason_code",
                              "status_reason",
                              "route",
                              "contains_opioid",
                              "contains_butalbital",
                              "strength_mg",
                              "max_units_per_day"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::medication_request_record& r) {
    bind_all(s, r.status, r.intent, r.authored_on, r.medication_system, r.medication_code,
             r.medication_display, r.medication_reference, r.ingredient, r.drug_class, r.therapy_role,
             r.as_needed, r.dose_text, r.dose_quantity, r.doses_per_day, r.quantity, r.quantity_unit,
             r.days_supply, r.refills, r.status_reason_code, r.status_reason, r.route, r.contains_opioid,
             r.contains_butalbital, r.strength_mg, r.max_units_per_day);
}

const table_def& def_of(const nz::appointment_record&) {
    static const table_def d{"appointment",
                             {"status", "start", "end", "minutes", "service_type", "appointment_type",
                              "reason_codes", "is_headache_related"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::appointment_record& r) {
    bind_all(s, r.status, r.start, r.end, r.minutes, r.service_type, r.appointment_type, r.reason_codes,
             r.is_headache_related);
}

const table_def& def_of(const nz::encounter_record&) {
    static const table_def d{"encounter",
                             {"status", "class_code", "type_code", "type_display", "reason_codes",
                              "period_start", "period_end", "is_headache_related"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::encounter_record& r) {
    bind_all(s, r.status, r.class_code, r.type_code, r.type_display, r.reason_codes, r.period_start,
             r.period_end, r.is_headache_related);
}

const table_def& def_of(const nz::observation_record&) {
    static const table_def d{
        "observation",
        {"status", "category", "code_system", "code", "code_display", "value_type", "value_num", "value_unit",
         "value_string", "value_code_system", "value_code", "effective_at", "instrument"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::observation_record& r) {
    bind_all(s, r.status, r.category, r.code_system, r.code, r.code_display, r.value_type, r.value_num,
             r.value_unit, r.value_string, r.value_code_system, r.value_code, r.effective_at, r.instrument);
}

const table_def& def_of(const nz::procedure_record&) {
    static const table_def d{"procedure",
                             {"status", "code_system", "code", "code_display", "performed_start",
                              "performed_end", "procedure_kind"}};
    return d;
}
void bind_own(SQLite::Statement& s, const nz::procedure_record& r) {
    bind_all(s, r.status, r.code_system, r.code, r.code_display, r.performed_start, r.performed_end,
             r.procedure_kind);
}

const table_def& def_of(const nz::bare_record&) {
    static const table_def d{"bare_resource", {"resource_type"}, true};
    return d;
}
constexpr int bare_type_param = first_own_param;
void bind_own(SQLite::Statement& s, const nz::bare_record& r) { bind_all(s, r.resource_type); }

std::string quote_ident(const char* name) { return std::string("\"") + name + "\""; }

// SQL text is assembled from the fixed identifiers above only; every value
// is a bound parameter.
std::string insert_sql(const table_def& d) {
    std::string cols, params;
    int i = 1;
    for (const char* c : common_columns) {
        cols += quote_ident(c) + ",";
        params += "?" + std::to_string(i++) + ",";
    }
    cols += "\"deleted_at\"";
    params += "NULL";
    for (const char* c : d.columns) {
        cols += "," + quote_ident(c);
        params += ",?" + std::to_string(i++);
    }
    if (d.raw_pointer)
        for (const char* c : raw_pointer_columns) {
            cols += "," + quote_ident(c);
            params += ",?" + std::to_string(i++);
        }
    return "INSERT INTO " + quote_ident(d.table) + " (" + cols + ") VALUES (" + params + ")";
}

std::string update_sql(const table_def& d) {
    std::string sets;
    int i = 3;  // ?1 source and ?2 id are the key
    for (std::size_t c = 2; c < common_columns.size(); ++c)
        sets += quote_ident(common_columns[c]) + "=?" + std::to_string(i++) + ",";
    sets += "\"deleted_at\"=NULL";
    for (const char* c : d.columns) sets += "," + quote_ident(c) + "=?" + std::to_string(i++);
    if (d.raw_pointer)
        for (const char* c : raw_pointer_columns) sets += "," + quote_ident(c) + "=?" + std::to_string(i++);
    return "UPDATE " + quote_ident(d.table) + " SET " + sets + " WHERE \"source\"=?1 AND \"id\"=?2" +
           (d.typed_key ? " AND \"resource_type\"=?" + std::to_string(bare_type_param) : std::string());
}

std::string lookup_sql(const table_def& d) {
    // The 4th column: a patient row stored under "none" lacks the FHIR id
    // that "minimal" wants, so it is rewritten even when unchanged. The 5th:
    // the frame the stored version's JSON is in, counted down when the row
    // points elsewhere.
    const bool patient = std::string_view(d.table) == "patient";
    return std::string("SELECT raw_hash, deleted_at IS NOT NULL, patient_key, ") +
           (patient ? "fhir_patient_id IS NULL" : "0") + (d.raw_pointer ? ", raw_frame" : ", NULL") +
           " FROM " + quote_ident(d.table) + " WHERE source=?1 AND id=?2" +
           (d.typed_key ? " AND resource_type=?3" : "");
}

// A new version's JSON lives in a raw_frame now (schema 12): the row it
// replaces in resource_raw, if any, is of an older version and goes.
constexpr const char* legacy_raw_delete_sql =
    "DELETE FROM resource_raw WHERE source = ?1 AND resource_type = ?2 AND id = ?3";

}  // namespace

struct resource_writer::table_statements {
    table_statements(SQLite::Database& db, const table_def& d)
        : lookup(db, lookup_sql(d)),
          insert(db, insert_sql(d)),
          insert_new(db, insert_sql(d) +
                             (d.typed_key ? " ON CONFLICT (\"source\", \"resource_type\", \"id\") DO NOTHING"
                                          : " ON CONFLICT (\"source\", \"id\") DO NOTHING")),
          update(db, update_sql(d)),
          raw_param(raw_pointer_param(d)) {}
    SQLite::Statement lookup, insert, insert_new, update;
    int raw_param;  // 0: the table keeps no pointer (patient)
};

// 8 KiB pages for a new headache.db (an existing file keeps its own): with
// store_raw every resource's zstd frame (0.6 KB on average, a few KB for
// an ExplanationOfBenefit) lands in resource_raw, and twice the page means
// half the b-tree pages and WAL frames per byte written, and fewer frames
// spilling to overflow pages. bench_ingest, 2026-12-06 (docs/dev/benchmarks.md):
// store_raw on ÷ off fell from about 2.5 to about 1.9 with 8192 and 16384
// alike; 8192, not 16384, because an incremental sync rewrites a few rows
// and each dirty page goes to the WAL whole.
constexpr int analytics_page_size = 8192;

analytics_db::analytics_db(const std::filesystem::path& path)
    : path_(path),
      db_(open_database(path, database_kind{"analytics database",
                                            analytics_application_id,
                                            schema::analytics_migrations(),
                                            "NORMAL",
                                            0640,
                                            // analysts read it through their group, nobody else
                                            0007,
                                            "headachemd-analysts",
                                            {},
                                            {},
                                            analytics_page_size})) {
    share_wal_with_readers();
}

// Analysts open headache.db read-only from a directory they may not write
// (/var/lib/headachemd is 0750 daemon:analysts). SQLite >= 3.22 serves such
// a reader only if the -wal and -shm files already exist ("Read-Only
// Databases", https://www.sqlite.org/wal.html); it cannot create them. By
// default the last connection to close deletes both, so after a sync-once,
// or while the daemon is stopped, every analyst would get "attempt to write
// a readonly database". SQLITE_FCNTL_PERSIST_WAL keeps them: on close the
// WAL is checkpointed and truncated to zero bytes instead of deleted.
//
// SQLite gives new -wal/-shm files the database's mode but, unless it runs
// as root, the process's own group: a daemon started with another primary
// group than the file's (sudo -u headachemd, not the unit's
// Group=headachemd-analysts) would lock the analysts out of -shm. So both
// are given the database's group and mode, as far as we may (chown(2) to a
// group we are in); a failure leaves them as SQLite made them.
void analytics_db::share_wal_with_readers() {
    int persist = 1;
    sqlite3_file_control(db_.getHandle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    struct stat db_st {};
    if (::stat(path_.c_str(), &db_st) != 0) return;
    for (const char* suffix : {"-wal", "-shm"}) {
        // By path, never through a file descriptor: closing any descriptor
        // of a file drops every POSIX lock this process holds on it
        // (fcntl(2)), and SQLite's lock on -shm is what tells other
        // processes a writer is attached. lstat and AT_SYMLINK_NOFOLLOW:
        // never follow a link planted in place of the file.
        const std::string side = path_.string() + suffix;
        struct stat st {};
        if (::lstat(side.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (st.st_gid != db_st.st_gid)
            (void)::fchownat(AT_FDCWD, side.c_str(), static_cast<uid_t>(-1), db_st.st_gid,
                             AT_SYMLINK_NOFOLLOW);
        const mode_t want = db_st.st_mode & 0666;
        if ((st.st_mode & 07777) != want) (void)::fchmodat(AT_FDCWD, side.c_str(), want, 0);
    }
}

bool analytics_db::checkpoint_unless_read() {
    // TRUNCATE waits on the busy handler for readers of older snapshots;
    // the daemon must not wait on an analyst, so the wait is switched off
    // for this call: with a reader present it copies what it may and
    // returns SQLITE_BUSY at once.
    int timeout_ms = 0;
    try {
        SQLite::Statement q(db_, "PRAGMA busy_timeout");
        if (q.executeStep()) timeout_ms = q.getColumn(0).getInt();
    } catch (const std::exception&) {
        return false;  // cannot even read a pragma: the next pass will tell
    }
    sqlite3_busy_timeout(db_.getHandle(), 0);
    const int rc =
        sqlite3_wal_checkpoint_v2(db_.getHandle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    sqlite3_busy_timeout(db_.getHandle(), timeout_ms);
    return rc == SQLITE_OK;
}

int analytics_db::schema_version() {
    SQLite::Statement q(db_, "PRAGMA user_version");
    q.executeStep();
    return q.getColumn(0).getInt();
}

bool analytics_db::has_pseudonym_fingerprint(std::string_view fingerprint) {
    try {
        SQLite::Statement q(db_, "SELECT value FROM database_info WHERE name = 'pseudonym_key_fingerprint'");
        if (!q.executeStep()) return false;
        if (q.getColumn(0).getString() != fingerprint)
            throw store_error(
                "the pseudonymization key in the vault does not match the one " + path_.string() +
                " was written with, so patient keys would not line up. Use the vault.db that belongs to "
                "this database (--vault), or start a new database");
        return true;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "reading");
    }
}

void analytics_db::bind_pseudonym_fingerprint(std::string_view fingerprint) {
    try {
        if (has_pseudonym_fingerprint(fingerprint)) return;
        // Two processes on a new headache.db (the daemon and a cron-started
        // sync-once, issue 12) both get here; a plain INSERT failed the
        // second with "UNIQUE constraint failed: database_info.name". Under
        // the write lock: insert unless present, then check what is stored
        // (the other process's vault may hold another key).
        write_transaction tx(db_);
        SQLite::Statement ins(
            db_,
            "INSERT OR IGNORE INTO database_info (name, value) VALUES ('pseudonym_key_fingerprint', ?1)");
        ins.bind(1, std::string(fingerprint));
        ins.exec();
        (void)has_pseudonym_fingerprint(fingerprint);  // throws on a mismatch; the transaction rolls back
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "writing");
    }
}

identity_changes analytics_db::enforce_identifier_policy(const identity_policy& policy) {
    identity_changes out;
    try {
        {
            // Read first: the common case (nothing to change) takes no write
            // lock, so a run starts even while an analyst holds one.
            SQLite::Statement todo(
                db_,
                policy.keep_fhir_patient_id
                    ? "SELECT EXISTS (SELECT 1 FROM database_info WHERE name = 'patient_id_form' AND "
                      "value <> 'pseudonym') OR EXISTS (SELECT 1 FROM resource_raw WHERE resource_type = "
                      "'Patient')"
                    : "SELECT EXISTS (SELECT 1 FROM database_info WHERE name = 'patient_id_form' AND "
                      "value <> 'pseudonym') OR EXISTS (SELECT 1 FROM patient WHERE fhir_patient_id IS "
                      "NOT NULL) OR EXISTS (SELECT 1 FROM resource_raw) OR EXISTS (SELECT 1 FROM raw_frame)");
            if (!todo.executeStep() || todo.getColumn(0).getInt() == 0) return out;
        }
        {
            write_transaction tx(db_);
            SQLite::Statement form(db_, "SELECT value FROM database_info WHERE name = 'patient_id_form'");
            const bool fhir_form = form.executeStep() && form.getColumn(0).getString() != "pseudonym";
            form.reset();
            if (fhir_form) {
                // Rows written before schema 4: 0004 copied id into
                // fhir_patient_id; the hash replaces it in the key.
                std::vector<std::pair<std::string, std::string>> rows;  // source, FHIR id
                SQLite::Statement q(db_,
                                    "SELECT source, fhir_patient_id FROM patient "
                                    "WHERE fhir_patient_id IS NOT NULL AND id = fhir_patient_id");
                while (q.executeStep())
                    rows.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getString());
                SQLite::Statement upd(db_, "UPDATE patient SET id = ?3 WHERE source = ?1 AND id = ?2");
                for (const auto& [source, fhir_id] : rows) {
                    upd.reset();
                    upd.bind(1, source);
                    upd.bind(2, fhir_id);
                    upd.bind(3, patient_key_for(policy.key, source, fhir_id));
                    out.ids_pseudonymized += upd.exec();
                }
                db_.exec(
                    "INSERT INTO database_info (name, value) VALUES ('patient_id_form', 'pseudonym') "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
            }
            if (!policy.keep_fhir_patient_id) {
                out.fhir_ids_cleared =
                    db_.exec("UPDATE patient SET fhir_patient_id = NULL WHERE fhir_patient_id IS NOT NULL");
                out.raw_rows_removed = db_.exec("DELETE FROM resource_raw");
                // The frames (schema 12), and every pointer into them.
                for (const char* t : raw_pointer_tables)
                    out.raw_rows_removed += db_.exec(
                        std::string("UPDATE ") + quote_ident(t) +
                        " SET raw_frame = NULL, raw_at = NULL, raw_len = NULL WHERE raw_frame IS NOT NULL");
                db_.exec("DELETE FROM raw_frame");
            } else {
                out.raw_rows_removed = db_.exec("DELETE FROM resource_raw WHERE resource_type = 'Patient'");
            }
            tx.commit();
        }
        if (out.any()) {
            // The old pages still sit in the -wal file until it is reused;
            // copy them into the (zeroed) main file and cut the WAL to zero
            // bytes. A reader in the way only delays this to a later
            // checkpoint, which journal_size_limit then truncates.
            db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
        }
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "applying [privacy] identifiers to");
    }
    return out;
}

resource_writer::resource_writer(analytics_db& db, bool store_raw, const identity_policy& ids)
    : db_(db), store_raw_(store_raw), ids_(ids) {
    if (store_raw_ && !ids_.keep_fhir_patient_id)
        throw std::invalid_argument(
            "store_raw keeps each resource's JSON, which names the FHIR patient id (and often the "
            "patient's name); [privacy] identifiers = \"none\" forbids that. Turn store_raw off, or set "
            "identifiers = \"minimal\" (raw Patient resources are never kept)");
    tables_.resize(std::variant_size_v<nz::record>);
    frames_ = std::make_unique<detail::raw_frame_writer>(db_.sql());
    legacy_raw_delete_ = std::make_unique<SQLite::Statement>(db_.sql(), legacy_raw_delete_sql);
}

void resource_writer::flush_raw() { frames_->flush(); }

void resource_writer::discard_raw() { frames_->discard(); }

resource_writer::~resource_writer() = default;

resource_writer::table_statements& resource_writer::statements_for(const nz::record& r) {
    auto& slot = tables_[r.index()];
    if (!slot) {
        const table_def& d = std::visit([](const auto& rec) -> const table_def& { return def_of(rec); }, r);
        slot = std::make_unique<table_statements>(db_.sql(), d);
    }
    return *slot;
}

std::string resource_writer::stored_id(const nz::record& r, std::string_view source) const {
    const nz::header& h = nz::header_of(r);
    if (std::holds_alternative<nz::patient_record>(r)) return patient_key_for(ids_.key, source, h.id);
    return h.id;
}

std::string resource_writer::stored_id(std::string_view resource_type, std::string_view id,
                                       std::string_view source) const {
    if (resource_type == "Patient") return patient_key_for(ids_.key, source, id);
    return std::string(id);
}

upsert_outcome resource_writer::upsert(const nz::record& r, std::string_view source,
                                       std::string_view patient_key, std::string_view now) {
    const nz::header& h = nz::header_of(r);
    table_statements& st = statements_for(r);
    const bool is_patient = std::holds_alternative<nz::patient_record>(r);
    if (is_patient) row_id_ = stored_id(r, source);
    const std::string& id = is_patient ? row_id_ : h.id;

    // New resources are the common case (first sync, a fresh export), so try
    // the insert first: when it lands, it cost exactly what a plain INSERT
    // costs. Only on a conflict do we read the stored row.
    if (write(st.insert_new, r, source, patient_key, now, id) == 1) return upsert_outcome::inserted;

    rearm(st.lookup);
    source_.assign(source);
    st.lookup.bindNoCopy(1, source_);
    st.lookup.bind(2, id);
    if (const auto* b = std::get_if<nz::bare_record>(&r)) st.lookup.bindNoCopy(3, b->resource_type);
    if (!st.lookup.executeStep())  // cannot happen inside our write transaction
        throw std::logic_error("upsert: the conflicting row vanished");
    const bool same_hash = st.lookup.getColumn(0).getString() == h.raw_hash;
    const bool was_deleted = st.lookup.getColumn(1).getInt() != 0;
    const bool same_key = st.lookup.getColumn(2).getString() == patient_key;
    const bool lacks_fhir_id = ids_.keep_fhir_patient_id && st.lookup.getColumn(3).getInt() != 0;
    const bool had_frame = !st.lookup.getColumn(4).isNull();
    const std::int64_t old_frame = had_frame ? st.lookup.getColumn(4).getInt64() : 0;
    rearm(st.lookup);
    if (same_hash && !was_deleted && same_key && !lacks_fhir_id) return upsert_outcome::unchanged;

    write(st.update, r, source, patient_key, now, id);
    // The row points at this version's JSON now, or at none: the older
    // version's is no longer anyone's.
    if (had_frame) frames_->release(old_frame);
    if (st.raw_param != 0) {
        rearm(*legacy_raw_delete_);
        legacy_raw_delete_->bindNoCopy(1, source_);
        legacy_raw_delete_->bind(2, nz::resource_type_of(r));
        legacy_raw_delete_->bindNoCopy(3, h.id);
        legacy_raw_delete_->exec();
    }
    return upsert_outcome::updated;
}

void resource_writer::insert(const nz::record& r, std::string_view source, std::string_view patient_key,
                             std::string_view now) {
    const bool is_patient = std::holds_alternative<nz::patient_record>(r);
    if (is_patient) row_id_ = stored_id(r, source);
    write(statements_for(r).insert, r, source, patient_key, now, is_patient ? row_id_ : nz::header_of(r).id);
}

int resource_writer::write(SQLite::Statement& w, const nz::record& r, std::string_view source,
                           std::string_view patient_key, std::string_view now, const std::string& id) {
    const nz::header& h = nz::header_of(r);
    // Reused buffers: bound without a copy, and without an allocation per row.
    source_.assign(source);
    patient_key_.assign(patient_key);
    now_.assign(now);
    rearm(w);
    w.bindNoCopy(1, source_);
    w.bindNoCopy(2, id);
    if (patient_key_.empty())
        w.bind(3);
    else
        w.bindNoCopy(3, patient_key_);
    bind(w, 4, h.version_id);
    bind(w, 5, h.last_updated);
    w.bindNoCopy(6, h.raw_hash);
    w.bindNoCopy(7, now_);
    std::visit([&w](const auto& rec) { bind_own(w, rec); }, r);
    const bool is_patient = std::holds_alternative<nz::patient_record>(r);
    if (is_patient) {
        if (ids_.keep_fhir_patient_id)
            w.bindNoCopy(patient_fhir_id_param, h.id);
        else
            w.bind(patient_fhir_id_param);
    }
    // The pointer to this version's JSON (schema 12). A Patient's JSON is
    // its name, address, telecom and identifiers: never kept (its table has
    // no pointer).
    const int p = statements_for(r).raw_param;
    const bool keep = store_raw_ && p != 0 && !h.raw.empty();
    if (keep) {
        const std::string_view type = nz::resource_type_of(r);
        const auto slot = frames_->reserve(source_, patient_key_, type, h.raw);
        w.bind(p, slot.frame);
        w.bind(p + 1, slot.at);
        w.bind(p + 2, slot.len);
    } else if (p != 0) {
        w.bind(p);
        w.bind(p + 1);
        w.bind(p + 2);
    }
    const int changed = w.exec();
    if (keep && changed != 0) frames_->keep(h.raw);
    return changed;
}

}  // namespace headachemd::store
