// Opening a SQLite file safely, and applying numbered migrations.
//
// Contract: `open_database` either returns a connection to a file that is
// (or has just become) a database of the expected kind at the newest schema
// version, or throws store_error with a message that names the file, says
// what is wrong and what to do. It never writes to a file it refuses: the
// checks that can refuse run before SQLite is allowed to write.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>

#include <SQLiteCpp/Database.h>

#include "headachemd/schema/migrations.hpp"

namespace headachemd::store {

// An expected failure of the store (bad file, newer schema, disk full, a
// database locked for longer than busy_timeout). The message is meant for
// the admin and never contains row values.
class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct database_kind {
    const char* description;      // "analytics database", "vault"
    std::int32_t application_id;  // PRAGMA application_id stamped on the file
    std::span<const schema::migration> migrations;
    const char* synchronous;  // "NORMAL" or "FULL"
    unsigned create_mode;     // file mode for a new file, e.g. 0640
    // An existing file with any of these mode bits is refused (with the
    // chmod fix): 0007 refuses a world-accessible file, 0077 any access
    // beyond the owner.
    unsigned forbidden_mode = 0;
    // A new file is given this group when it exists and we may (we are
    // root or a member); otherwise it keeps our primary group. nullptr: none.
    const char* group = nullptr;
    // Runs on the open connection after every check above and before
    // anything is written (no journal_mode change, no migration): a throw
    // here leaves the file byte-identical. Gets the schema version found.
    std::function<void(SQLite::Database&, int version)> before_write = {};
    // Runs inside each migration's transaction, after its SQL, so that data
    // a migration must convert in C++ commits atomically with the schema.
    std::function<void(SQLite::Database&, int version)> in_migration = {};
    // PRAGMA page_size for a file this call creates (0: SQLite's 4096). A
    // file that already holds its first page keeps the size it was made
    // with: SQLite fixes it then, and every reader follows the file's own.
    int page_size = 0;
};

// Opens (creating if missing) and migrates. Throws store_error.
SQLite::Database open_database(const std::filesystem::path& path, const database_kind& kind);

// Turns a SQLite exception raised while writing `path` into a store_error
// whose message says what an admin can do (disk full, read-only, locked).
[[noreturn]] void rethrow_as_store_error(const std::exception& e, const std::filesystem::path& path,
                                         const char* doing);

// BEGIN IMMEDIATE … COMMIT; rolls back in the destructor unless committed.
// IMMEDIATE takes the write lock up front: a deferred transaction that is
// upgraded later can fail with SQLITE_BUSY, which no retry fixes.
class write_transaction {
public:
    explicit write_transaction(SQLite::Database& db);
    ~write_transaction();
    write_transaction(const write_transaction&) = delete;
    write_transaction& operator=(const write_transaction&) = delete;
    void commit();

private:
    SQLite::Database& db_;
    bool open_ = true;
};

// UTC now as "YYYY-MM-DDThh:mm:ssZ", the form every *_at column uses.
std::string utc_timestamp(std::chrono::system_clock::time_point t);

}  // namespace headachemd::store
