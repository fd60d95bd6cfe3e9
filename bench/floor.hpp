#pragma once
// What bench/ingest and bench/bulk measure their pipelines against, in the
// same run and over the same input: simdjson's parse-only time, and the
// floor, a plain prepared INSERT of as many rows as the pipeline wrote
// through the sqlite3 C API (nothing of our schema, indexes, pragmas or
// writer, so a cost there cannot hide in the denominator; issue 18).
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <simdjson.h>

namespace headachemd::bench {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

// A new directory of this process's own, removed with it.
struct fresh_dir {
    fs::path path;
    fresh_dir() {
        path = fs::temp_directory_path() / ("headachemd-bench-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~fresh_dir() { fs::remove_all(path); }
};

// One input file: a FHIR JSON document (a Bundle, a resource) or NDJSON.
struct input {
    fs::path path;
    bool ndjson;
};

// simdjson's DOM parse of every document (every line of NDJSON), and
// nothing else: the cost no FHIR pipeline on simdjson can go below.
inline double parse_only(const std::vector<input>& files, std::size_t& bytes) {
    simdjson::dom::parser parser;
    bytes = 0;
    std::size_t docs = 0;
    const auto t = clock_type::now();
    for (const auto& f : files) {
        simdjson::padded_string text = simdjson::padded_string::load(f.path.string());
        bytes += text.size();
        if (f.ndjson) {
            simdjson::dom::document_stream stream;
            if (parser.parse_many(text).get(stream)) std::abort();
            for (auto doc : stream) {
                if (doc.error()) std::abort();
                ++docs;
            }
        } else {
            simdjson::dom::element doc;
            if (parser.parse(text).get(doc)) std::abort();
            ++docs;
        }
    }
    const double s = seconds_since(t);
    if (docs == 0) std::abort();
    return s;
}

// The floor's table: as many columns as a typical normalized row (an
// observation row has about this many) and about as many bytes per column,
// so the floor writes roughly what ingest writes per row.
constexpr int floor_columns = 16;
constexpr std::size_t floor_bytes_per_column = 16;

inline void check_sqlite(int rc, sqlite3* db, const char* what) {
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return;
    std::fprintf(stderr, "floor: %s: %s\n", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    std::exit(1);
}

// The independent floor: `rows` plain prepared INSERTs in one transaction,
// and with store_raw one more plain INSERT per kept resource of as many
// bytes as its JSON (`raw_sizes`, empty without store_raw).
inline double insert_floor(std::size_t rows, const std::vector<std::size_t>& raw_sizes) {
    fresh_dir dir;
    sqlite3* db = nullptr;
    check_sqlite(sqlite3_open((dir.path / "floor.db").c_str(), &db), db, "open");
    std::string create = "CREATE TABLE floor_rows(";
    std::string insert = "INSERT INTO floor_rows VALUES(";
    for (int c = 0; c < floor_columns; ++c) {
        create += (c ? ", c" : "c") + std::to_string(c) + " TEXT";
        insert += c ? ", ?" : "?";
    }
    check_sqlite(sqlite3_exec(db, (create + ")").c_str(), nullptr, nullptr, nullptr), db, "create");
    check_sqlite(sqlite3_exec(db, "CREATE TABLE floor_raw(id TEXT, json BLOB)", nullptr, nullptr, nullptr),
                 db, "create");
    sqlite3_stmt* raw_stmt = nullptr;
    check_sqlite(sqlite3_prepare_v2(db, "INSERT INTO floor_raw VALUES(?, ?)", -1, &raw_stmt, nullptr), db,
                 "prepare");
    std::size_t largest_raw = 0;
    for (auto n : raw_sizes) largest_raw = std::max(largest_raw, n);
    const std::string raw_bytes(largest_raw, 'x');
    sqlite3_stmt* stmt = nullptr;
    check_sqlite(sqlite3_prepare_v2(db, (insert + ")").c_str(), -1, &stmt, nullptr), db, "prepare");
    // Values made before the clock starts; each row differs in its first column.
    std::string value(floor_bytes_per_column, 'x');
    const auto t = clock_type::now();
    check_sqlite(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), db, "begin");
    for (std::size_t r = 0; r < rows; ++r) {
        const std::string id = std::to_string(r);
        check_sqlite(sqlite3_bind_text(stmt, 1, id.c_str(), static_cast<int>(id.size()), SQLITE_TRANSIENT),
                     db, "bind");
        for (int c = 1; c < floor_columns; ++c)
            check_sqlite(
                sqlite3_bind_text(stmt, c + 1, value.data(), static_cast<int>(value.size()), SQLITE_STATIC),
                db, "bind");
        check_sqlite(sqlite3_step(stmt), db, "insert");
        sqlite3_reset(stmt);
    }
    for (std::size_t r = 0; r < raw_sizes.size(); ++r) {
        const std::string id = std::to_string(r);
        check_sqlite(
            sqlite3_bind_text(raw_stmt, 1, id.c_str(), static_cast<int>(id.size()), SQLITE_TRANSIENT), db,
            "bind");
        check_sqlite(
            sqlite3_bind_blob(raw_stmt, 2, raw_bytes.data(), static_cast<int>(raw_sizes[r]), SQLITE_STATIC),
            db, "bind");
        check_sqlite(sqlite3_step(raw_stmt), db, "insert");
        sqlite3_reset(raw_stmt);
    }
    check_sqlite(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
    const double s = seconds_since(t);
    sqlite3_finalize(stmt);
    sqlite3_finalize(raw_stmt);
    sqlite3_close(db);
    return s;
}

}  // namespace headachemd::bench
