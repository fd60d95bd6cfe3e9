#include "headachemd/store/audit.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <SQLiteCpp/Statement.h>

#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/database.hpp"

namespace headachemd::store {
namespace {

// "HDMV", as in vault.cpp.
constexpr std::int32_t vault_application_id = 0x48444d56;
constexpr int audit_schema_version = 5;  // schema/vault/0005_audit_log.sql

constexpr const char* insert_sql =
    "INSERT INTO audit_event (time, patient_key, ehr, action, resource_type, page, http_status, count, "
    "outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

// Filters are fixed text with bound values; an absent filter binds NULL and
// matches everything. The newest `limit` rows are taken, then put back in
// time order (events are appended per page, so jobs running side by side
// interleave; the id breaks ties within a second).
constexpr const char* select_sql =
    "SELECT id, time, patient_key, ehr, action, resource_type, page, http_status, count, outcome "
    "FROM (SELECT * FROM audit_event "
    "      WHERE (?1 IS NULL OR time >= ?1) AND (?2 IS NULL OR patient_key = ?2) "
    "        AND (?3 IS NULL OR ehr = ?3) "
    "      ORDER BY time DESC, id DESC LIMIT ?4) "
    "ORDER BY time, id";

// The same cutoff expression as the trigger audit_event_no_early_delete, so
// the purge never asks for a delete the trigger would refuse.
constexpr const char* purge_sql =
    "DELETE FROM audit_event WHERE time < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', "
    "'-' || (SELECT days FROM audit_retention WHERE id = 1) || ' days')";

void bind_text_or_null(SQLite::Statement& q, int i, const std::string& v) {
    if (v.empty())
        q.bind(i);
    else
        q.bind(i, v);
}

void bind_int_or_null(SQLite::Statement& q, int i, const std::optional<int>& v) {
    if (v)
        q.bind(i, *v);
    else
        q.bind(i);
}

std::string text_or_empty(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }

std::optional<int> int_or_null(const SQLite::Column& c) {
    if (c.isNull()) return std::nullopt;
    return c.getInt();
}

std::vector<audit_event> select(SQLite::Database& db, const audit_query& query) {
    SQLite::Statement q(db, select_sql);
    if (query.since)
        q.bind(1, *query.since);
    else
        q.bind(1);
    if (query.patient_key)
        q.bind(2, *query.patient_key);
    else
        q.bind(2);
    if (query.ehr)
        q.bind(3, *query.ehr);
    else
        q.bind(3);
    q.bind(4, query.limit == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(query.limit));  // -1: no limit
    std::vector<audit_event> out;
    while (q.executeStep()) {
        audit_event e;
        e.id = q.getColumn(0).getInt64();
        e.time = q.getColumn(1).getString();
        e.patient_key = text_or_empty(q.getColumn(2));
        e.ehr = text_or_empty(q.getColumn(3));
        e.action = q.getColumn(4).getString();
        e.resource_type = text_or_empty(q.getColumn(5));
        e.page = int_or_null(q.getColumn(6));
        e.http_status = int_or_null(q.getColumn(7));
        e.count = int_or_null(q.getColumn(8));
        e.outcome = q.getColumn(9).getString();
        out.push_back(std::move(e));
    }
    return out;
}

// Lowers the connection's synchronous setting for one transaction and puts
// the old one back whatever happens, so that the token write path keeps
// synchronous=FULL (DESIGN.md "Tokens").
class synchronous_for_one_transaction {
public:
    synchronous_for_one_transaction(SQLite::Database& db, bool lower) : db_(db) {
        if (!lower) return;
        SQLite::Statement q(db_, "PRAGMA synchronous");
        q.executeStep();
        old_ = q.getColumn(0).getInt();
        db_.exec("PRAGMA synchronous=NORMAL");
    }
    ~synchronous_for_one_transaction() {
        if (old_ < 0) return;
        try {
            // An integer SQLite itself gave us; PRAGMAs take no bound values.
            db_.exec("PRAGMA synchronous=" + std::to_string(old_));
        } catch (...) {
            // Setting a PRAGMA outside a transaction does not fail in practice;
            // if it did, the next vault open sets FULL again.
        }
    }
    synchronous_for_one_transaction(const synchronous_for_one_transaction&) = delete;
    synchronous_for_one_transaction& operator=(const synchronous_for_one_transaction&) = delete;

private:
    SQLite::Database& db_;
    int old_ = -1;
};

}  // namespace

void insert_audit(SQLite::Database& db, std::span<const audit_event> events) {
    try {
        SQLite::Statement q(db, insert_sql);
        for (const auto& e : events) {
            q.bind(1, e.time);
            bind_text_or_null(q, 2, e.patient_key);
            bind_text_or_null(q, 3, e.ehr);
            q.bind(4, e.action);
            bind_text_or_null(q, 5, e.resource_type);
            bind_int_or_null(q, 6, e.page);
            bind_int_or_null(q, 7, e.http_status);
            bind_int_or_null(q, 8, e.count);
            q.bind(9, e.outcome);
            q.exec();
            q.reset();
        }
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "appending to the audit log in");
    }
}

void append_audit(SQLite::Database& db, std::span<const audit_event> events, audit_sync sync) {
    if (events.empty()) return;
    try {
        synchronous_for_one_transaction level(db, sync == audit_sync::deferred);
        write_transaction tx(db);
        insert_audit(db, events);
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "appending to the audit log in");
    }
}

std::vector<audit_event> query_audit(SQLite::Database& db, const audit_query& q) {
    try {
        return select(db, q);
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "reading the audit log in");
    }
}

std::string audit_outcome_code(std::string_view code) {
    if (code.empty() || code.size() > 40) return "other";
    for (char c : code) {
        const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          c == '_' || c == '-' || c == '.';
        if (!word) return "other";
    }
    return std::string(code);
}

void sync_audit(SQLite::Database& db) {
    try {
        db.exec("PRAGMA wal_checkpoint(PASSIVE)");
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "syncing the audit log in");
    }
}

std::size_t purge_audit(SQLite::Database& db, int days) {
    try {
        write_transaction tx(db);
        SQLite::Statement set(db, "UPDATE audit_retention SET days = ?1 WHERE id = 1");
        set.bind(1, days);
        set.exec();
        SQLite::Statement del(db, purge_sql);
        const int n = del.exec();
        tx.commit();
        return static_cast<std::size_t>(n);
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "purging old events from the audit log in");
    }
}

std::vector<audit_event> read_audit_log(const std::filesystem::path& path, const audit_query& query) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw store_error(
            "cannot read the audit log: vault '" + path.string() + "': " + std::strerror(errno) +
            (errno == ENOENT ? " (has the daemon or `enroll` ever run with this config?)" : ""));
    if (!S_ISREG(st.st_mode)) throw store_error("vault '" + path.string() + "' is not a regular file");
    try {
        // Read-only, and no migration: this command never changes the vault.
        // (A WAL database opened read-only still needs its -shm file; SQLite
        // creates it when the directory is writable for us, as it is for the
        // daemon's user.)
        SQLite::Database db(path, SQLite::OPEN_READONLY | SQLite::OPEN_NOFOLLOW);
        db.setBusyTimeout(5000);
        SQLite::Statement app(db, "PRAGMA application_id");
        app.executeStep();
        if (app.getColumn(0).getInt() != vault_application_id)
            throw store_error("'" + path.string() + "' is not a HeadacheMD vault");
        SQLite::Statement ver(db, "PRAGMA user_version");
        ver.executeStep();
        const int version = ver.getColumn(0).getInt();
        if (version < audit_schema_version)
            throw store_error("vault '" + path.string() + "' has schema version " + std::to_string(version) +
                              ", older than the audit log (" + std::to_string(audit_schema_version) +
                              "): start the daemon (or any command that opens the vault) once to upgrade it");
        return select(db, query);
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path, "reading the audit log in");
    }
}

}  // namespace headachemd::store
