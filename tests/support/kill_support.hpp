// What the two crash tests share (kill_test.cpp kills the binary at HTTP
// exchanges, kill_points_test.cpp at writes to its files): their knobs, and
// how they read a database a killed process left behind.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

namespace headachemd::test::kill {

using rows_by_table = std::map<std::string, std::vector<std::string>>;

// HEADACHEMD_KILL_SEED replays a failed run; by default a random seed,
// which the tests print.
inline std::uint64_t seed() {
    if (const char* s = std::getenv("HEADACHEMD_KILL_SEED"); s && *s) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

// HEADACHEMD_KILL_COUNT, else `fallback`.
inline int count(int fallback) {
    const char* v = std::getenv("HEADACHEMD_KILL_COUNT");
    if (!v || !*v) return fallback;
    return static_cast<int>(std::strtol(v, nullptr, 10));
}

// PRAGMA integrity_check's verdict, or the error that stopped it. Opened
// read-write, as the next process opens it: a read-only connection cannot
// roll back the hot journal a killed writer leaves (SQLite's own recovery,
// https://sqlite.org/atomiccommit.html#hot_rollback_journals).
inline std::string integrity(const std::filesystem::path& db_path) {
    try {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READWRITE);
        SQLite::Statement q(db, "PRAGMA integrity_check");
        std::string out;
        while (q.executeStep()) out += q.getColumn(0).getString();
        return out;
    } catch (const std::exception& e) {
        return std::string("cannot check: ") + e.what();
    }
}

// Read-write for the reason integrity() gives.
inline long long scalar(const std::filesystem::path& db_path, const std::string& sql) {
    SQLite::Database db(db_path.string(), SQLite::OPEN_READWRITE);
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt64();
}

inline std::vector<std::string> tables_with_column(SQLite::Database& db, const std::string& column) {
    std::vector<std::string> tables;
    SQLite::Statement q(db,
                        "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' AND EXISTS "
                        "(SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = ?) ORDER BY 1");
    q.bind(1, column);
    while (q.executeStep()) tables.push_back(q.getColumn(0).getString());
    return tables;
}

// Rows of every table that has `column`, as sorted text rows, per table.
// `where` filters them (SQL on that table); `skip` names columns left out.
inline rows_by_table rows_of_tables_with(const std::filesystem::path& db_path, const std::string& column,
                                         const std::string& where, const std::set<std::string>& skip) {
    SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
    rows_by_table out;
    for (const auto& t : tables_with_column(db, column)) {
        SQLite::Statement q(db, "SELECT * FROM \"" + t + "\"" + (where.empty() ? "" : " WHERE " + where));
        auto& rows = out[t];
        while (q.executeStep()) {
            std::string row;
            for (int c = 0; c < q.getColumnCount(); ++c) {
                const std::string name = q.getColumnName(c);
                if (skip.count(name)) continue;
                row += name + "=" + (q.getColumn(c).isNull() ? "NULL" : q.getColumn(c).getString()) + "|";
            }
            rows.push_back(std::move(row));
        }
        std::sort(rows.begin(), rows.end());
    }
    return out;
}

// The analytics tables (those with a raw_hash column), every column but
// ingested_at (the time of the write, which differs between two runs by
// nature) and, for `patient`, the keyed hash id (each installation has its
// own pseudonymization key, schema 0004).
inline rows_by_table analytics_rows(const std::filesystem::path& db_path, bool keep_patient_id = false) {
    auto rows = rows_of_tables_with(db_path, "raw_hash", "", {"ingested_at"});
    if (keep_patient_id) return rows;
    auto plain = rows_of_tables_with(db_path, "raw_hash", "", {"ingested_at", "id"});
    rows["patient"] = plain["patient"];
    return rows;
}

}  // namespace headachemd::test::kill
