#include "headachemd/sync/bulk_store.hpp"

#include <chrono>
#include <cstdint>
#include <vector>

#include <SQLiteCpp/Statement.h>

#include "headachemd/store/database.hpp"

namespace headachemd::sync {
namespace {

using store::store_error;

constexpr const char* upsert_job_sql =
    "INSERT INTO bulk_job (ehr, phase, kickoff_url, started_at_ns, status_url, status_origin, "
    "status_on_fhir_origin, has_manifest, transaction_time, requires_access_token, since_stored, progress, "
    "failure_code, failure_message, cancel_requested, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
    "ON CONFLICT (ehr) DO UPDATE SET phase = excluded.phase, kickoff_url = excluded.kickoff_url, "
    "started_at_ns = excluded.started_at_ns, status_url = excluded.status_url, "
    "status_origin = excluded.status_origin, status_on_fhir_origin = excluded.status_on_fhir_origin, "
    "has_manifest = excluded.has_manifest, transaction_time = excluded.transaction_time, "
    "requires_access_token = excluded.requires_access_token, since_stored = excluded.since_stored, "
    "progress = excluded.progress, failure_code = excluded.failure_code, "
    "failure_message = excluded.failure_message, cancel_requested = excluded.cancel_requested, "
    "updated_at = excluded.updated_at";
constexpr const char* delete_files_sql = "DELETE FROM bulk_job_file WHERE ehr = ?1";
constexpr const char* insert_file_sql =
    "INSERT INTO bulk_job_file (ehr, idx, kind, type, url, count, applied) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
    "?7)";
constexpr const char* select_job_sql =
    "SELECT phase, kickoff_url, started_at_ns, status_url, status_origin, status_on_fhir_origin, "
    "has_manifest, "
    "transaction_time, requires_access_token, since_stored, progress, failure_code, failure_message, "
    "cancel_requested FROM bulk_job WHERE ehr = ?1";
constexpr const char* select_files_sql =
    "SELECT idx, kind, type, url, count, applied FROM bulk_job_file WHERE ehr = ?1 ORDER BY idx";
constexpr const char* mark_applied_sql = "UPDATE bulk_job_file SET applied = 1 WHERE ehr = ?1 AND idx = ?2";
constexpr const char* upsert_cursor_sql =
    "INSERT INTO bulk_cursor (ehr, since, stored_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (ehr) DO UPDATE SET since = excluded.since, stored_at = excluded.stored_at";
constexpr const char* mark_since_sql = "UPDATE bulk_job SET since_stored = 1, updated_at = ?2 WHERE ehr = ?1";
constexpr const char* select_cursor_sql = "SELECT since FROM bulk_cursor WHERE ehr = ?1";

constexpr bulk_phase all_phases[] = {bulk_phase::kickoff, bulk_phase::polling,   bulk_phase::downloading,
                                     bulk_phase::storing, bulk_phase::releasing, bulk_phase::done,
                                     bulk_phase::failed,  bulk_phase::cancelled};
constexpr bulk_file_kind all_kinds[] = {bulk_file_kind::output, bulk_file_kind::deleted,
                                        bulk_file_kind::error};

std::optional<bulk_file_kind> kind_from_string(std::string_view text) {
    for (auto k : all_kinds)
        if (to_string(k) == text) return k;
    return std::nullopt;
}

// "bulk_job row of EHR 'x'": what every message about a row starts with.
// The EHR name is the config's own identifier, not a secret.
std::string row_name(const char* table, std::string_view ehr) {
    return std::string("vault.db ") + table + " row of EHR '" + std::string(ehr) + "'";
}

// A stored value of our own enum (phase, kind, error code) shown in an
// error: printable ASCII, bounded, so a corrupt row cannot flood a log.
std::string shown(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (v.size() > 40) out += "...";
    return out;
}

[[noreturn]] void corrupt(const char* table, std::string_view ehr, const std::string& what) {
    throw store_error(row_name(table, ehr) + ": " + what +
                      "; the job cannot be resumed from it (written by a newer or damaged binary?). "
                      "Cancel the export on the server if needed, then delete the row to start a new job");
}

bool flag(const SQLite::Column& c, const char* table, std::string_view ehr, const char* column) {
    if (c.isNull() || !c.isInteger() || (c.getInt64() != 0 && c.getInt64() != 1))
        corrupt(table, ehr, std::string(column) + " is not 0 or 1");
    return c.getInt64() == 1;
}

std::int64_t to_ns(sys_time t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void write_files(SQLite::Database& db, std::string_view ehr, const bulk_job_record& r) {
    SQLite::Statement del(db, delete_files_sql);
    del.bind(1, std::string(ehr));
    del.exec();
    if (!r.manifest) return;
    SQLite::Statement ins(db, insert_file_sql);
    const auto& files = r.manifest->files;
    for (std::size_t i = 0; i < files.size(); ++i) {
        ins.reset();
        ins.bind(1, std::string(ehr));
        ins.bind(2, static_cast<std::int64_t>(i));
        ins.bind(3, std::string(to_string(files[i].kind)));
        ins.bind(4, files[i].type);
        ins.bind(5, files[i].url);
        if (files[i].count)
            ins.bind(6, static_cast<std::int64_t>(*files[i].count));
        else
            ins.bind(6);
        ins.bind(7, r.applied.count(i) != 0 ? 1 : 0);
        ins.exec();
    }
}

void write_job(SQLite::Database& db, std::string_view ehr, const bulk_job_record& r, sys_time now) {
    SQLite::Statement q(db, upsert_job_sql);
    q.bind(1, std::string(ehr));
    q.bind(2, std::string(to_string(r.phase)));
    q.bind(3, r.kickoff_url);
    q.bind(4, to_ns(r.started_at));
    if (r.status_url)
        q.bind(5, *r.status_url);
    else
        q.bind(5);
    q.bind(6, r.status_origin);
    q.bind(7, r.status_on_fhir_origin ? 1 : 0);
    q.bind(8, r.manifest ? 1 : 0);
    if (r.manifest) {
        q.bind(9, r.manifest->transaction_time);
        q.bind(10, r.manifest->requires_access_token ? 1 : 0);
    } else {
        q.bind(9);
        q.bind(10);
    }
    q.bind(11, r.since_stored ? 1 : 0);
    q.bind(12, r.progress);
    if (r.failure) {
        q.bind(13, to_string(r.failure->code));
        q.bind(14, r.failure->message);
    } else {
        q.bind(13);
        q.bind(14);
    }
    q.bind(15, r.cancel_requested ? 1 : 0);
    q.bind(16, store::utc_timestamp(now));
    q.exec();
}

// Reads the files into r.manifest and r.applied; checks that the indexes are
// 0..n-1 (bulk_job indexes manifest->files with them).
void read_files(SQLite::Database& db, std::string_view ehr, bulk_job_record& r) {
    constexpr const char* table = "bulk_job_file";
    SQLite::Statement q(db, select_files_sql);
    q.bind(1, std::string(ehr));
    std::int64_t expected = 0;
    while (q.executeStep()) {
        const std::int64_t idx = q.getColumn(0).getInt64();
        if (idx != expected)
            corrupt(table, ehr,
                    "file index " + std::to_string(idx) + " where " + std::to_string(expected) +
                        " was expected (the files must be numbered 0, 1, 2 … without gaps)");
        const std::string where = " of file " + std::to_string(idx);
        if (!r.manifest) corrupt(table, ehr, "a file" + where + " belongs to a job with no manifest");
        const auto kind = kind_from_string(q.getColumn(1).getString());
        if (!kind) corrupt(table, ehr, "unknown kind '" + shown(q.getColumn(1).getString()) + "'" + where);
        bulk_file f;
        f.kind = *kind;
        f.type = q.getColumn(2).getString();
        f.url = q.getColumn(3).getString();
        if (f.type.empty() || f.url.empty()) corrupt(table, ehr, "an empty type or url" + where);
        const auto count = q.getColumn(4);
        if (!count.isNull()) {
            if (!count.isInteger() || count.getInt64() < 0)
                corrupt(table, ehr, "count" + where + " is not a count");
            f.count = static_cast<std::uint64_t>(count.getInt64());
        }
        if (flag(q.getColumn(5), table, ehr, "applied")) r.applied.insert(static_cast<std::size_t>(idx));
        r.manifest->files.push_back(std::move(f));
        ++expected;
    }
}

bulk_job_record read_job(SQLite::Statement& q, std::string_view ehr) {
    constexpr const char* table = "bulk_job";
    bulk_job_record r;
    const auto phase_text = q.getColumn(0).getString();
    const auto phase = bulk_phase_from_string(phase_text);
    if (!phase) corrupt(table, ehr, "unknown phase '" + shown(phase_text) + "'");
    r.phase = *phase;
    r.kickoff_url = q.getColumn(1).getString();
    if (!q.getColumn(2).isInteger()) corrupt(table, ehr, "started_at_ns is not an integer");
    r.started_at = sys_time(
        std::chrono::duration_cast<sys_time::duration>(std::chrono::nanoseconds(q.getColumn(2).getInt64())));
    if (!q.getColumn(3).isNull()) r.status_url = q.getColumn(3).getString();
    r.status_origin = q.getColumn(4).getString();
    r.status_on_fhir_origin = flag(q.getColumn(5), table, ehr, "status_on_fhir_origin");
    if (flag(q.getColumn(6), table, ehr, "has_manifest")) {
        if (q.getColumn(7).isNull() || q.getColumn(8).isNull())
            corrupt(table, ehr, "a manifest without transaction_time or requires_access_token");
        r.manifest = bulk_manifest{};
        r.manifest->transaction_time = q.getColumn(7).getString();
        r.manifest->requires_access_token = flag(q.getColumn(8), table, ehr, "requires_access_token");
    }
    r.since_stored = flag(q.getColumn(9), table, ehr, "since_stored");
    r.progress = q.getColumn(10).getString();
    if (!q.getColumn(11).isNull()) {
        const auto code_text = q.getColumn(11).getString();
        auto code = error_code_from_string(code_text);
        // error_code_from_string keeps unknown text as an OAuth code; a job's
        // failure is never one, so unknown text means a newer binary's code.
        if (code == errc::oauth_other) corrupt(table, ehr, "unknown failure_code '" + shown(code_text) + "'");
        r.failure =
            error{std::move(code), q.getColumn(12).isNull() ? std::string() : q.getColumn(12).getString()};
    }
    r.cancel_requested = flag(q.getColumn(13), table, ehr, "cancel_requested");
    // The machine's own invariants, which a restart relies on.
    if (r.phase != bulk_phase::kickoff && r.phase != bulk_phase::failed && r.phase != bulk_phase::cancelled &&
        r.phase != bulk_phase::done && !r.status_url)
        corrupt(table, ehr, "phase '" + std::string(to_string(r.phase)) + "' without a status_url");
    if ((r.phase == bulk_phase::downloading || r.phase == bulk_phase::storing) && !r.manifest)
        corrupt(table, ehr, "phase '" + std::string(to_string(r.phase)) + "' without a manifest");
    return r;
}

}  // namespace

std::optional<bulk_phase> bulk_phase_from_string(std::string_view text) {
    for (auto p : all_phases)
        if (to_string(p) == text) return p;
    return std::nullopt;
}

void save_bulk_job(SQLite::Database& vault, std::string_view ehr, const bulk_job_record& r, sys_time now) {
    try {
        store::write_transaction tx(vault);
        write_job(vault, ehr, r, now);
        write_files(vault, ehr, r);
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "saving the bulk export job");
    }
}

std::optional<bulk_job_record> load_bulk_job(SQLite::Database& vault, std::string_view ehr) {
    try {
        SQLite::Statement q(vault, select_job_sql);
        q.bind(1, std::string(ehr));
        if (!q.executeStep()) return std::nullopt;
        auto r = read_job(q, ehr);
        read_files(vault, ehr, r);
        for (auto i : r.applied)
            if (!r.manifest || i >= r.manifest->files.size())
                corrupt("bulk_job_file", ehr, "an applied file outside the manifest");
        return r;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "reading the bulk export job");
    }
}

void mark_bulk_file_applied(SQLite::Database& vault, std::string_view ehr, std::size_t file) {
    int changed = 0;
    try {
        SQLite::Statement q(vault, mark_applied_sql);
        q.bind(1, std::string(ehr));
        q.bind(2, static_cast<std::int64_t>(file));
        changed = q.exec();
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "marking a bulk export file applied");
    }
    if (changed != 1)
        throw store_error(row_name("bulk_job_file", ehr) + ": no file " + std::to_string(file) +
                          " to mark applied (the job's manifest was not saved, or was replaced)");
}

void store_bulk_since(SQLite::Database& vault, std::string_view ehr, std::string_view since, sys_time now) {
    int changed = 0;
    try {
        store::write_transaction tx(vault);
        const auto at = store::utc_timestamp(now);
        SQLite::Statement mark(vault, mark_since_sql);
        mark.bind(1, std::string(ehr));
        mark.bind(2, at);
        changed = mark.exec();
        if (changed == 1) {
            SQLite::Statement cur(vault, upsert_cursor_sql);
            cur.bind(1, std::string(ehr));
            cur.bind(2, std::string(since));
            cur.bind(3, at);
            cur.exec();
            tx.commit();
        }
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "storing the bulk export's _since");
    }
    if (changed != 1)
        throw store_error(row_name("bulk_job", ehr) + ": no job to store _since for (save the job first)");
}

std::optional<std::string> load_bulk_since(SQLite::Database& vault, std::string_view ehr) {
    try {
        SQLite::Statement q(vault, select_cursor_sql);
        q.bind(1, std::string(ehr));
        if (!q.executeStep()) return std::nullopt;
        return q.getColumn(0).getString();
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "reading the bulk export's _since");
    }
}

std::optional<sys_time> load_bulk_job_updated_at(SQLite::Database& vault, std::string_view ehr) {
    try {
        SQLite::Statement q(vault, "SELECT updated_at FROM bulk_job WHERE ehr = ?1");
        q.bind(1, std::string(ehr));
        if (!q.executeStep()) return std::nullopt;
        return parse_utc_timestamp(q.getColumn(0).getString());
    } catch (const std::exception& e) {
        store::rethrow_as_store_error(e, vault.getFilename(), "reading the bulk export's job row");
    }
}

}  // namespace headachemd::sync
