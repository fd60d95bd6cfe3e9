#include "headachemd/store/database.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

namespace headachemd::store {
namespace {

namespace fs = std::filesystem;

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// Refuses, before SQLite touches the file, anything we must not write to.
// SQLite itself would happily open a text file and only fail at the first
// read, and as root it would write to a file whose mode says read-only.
void check_existing_file(const fs::path& path, const database_kind& kind) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw store_error("cannot open " + std::string(kind.description) + " " + quoted(path) + ": " +
                          std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        throw store_error(std::string(kind.description) + " " + quoted(path) + " is not a regular file");
    if ((st.st_mode & 0222) == 0)
        throw store_error(std::string(kind.description) + " " + quoted(path) +
                          " is read-only (no write permission bits); refusing to write to it. "
                          "Make it writable for the daemon's user, or point --db elsewhere");
    if (st.st_size == 0) return;  // an empty file is a valid empty database
    std::ifstream in(path, std::ios::binary);
    std::array<char, 16> magic{};
    in.read(magic.data(), magic.size());
    static constexpr char sqlite_magic[16] = "SQLite format 3";  // 15 chars + NUL, per the file format spec
    if (in.gcount() != 16 || std::memcmp(magic.data(), sqlite_magic, 16) != 0)
        throw store_error(quoted(path) +
                          " is not an SQLite database (its first bytes are not the SQLite header); "
                          "refusing to touch it. Point --db at a new or existing HeadacheMD " +
                          kind.description);
}

void create_with_mode(const fs::path& path, unsigned mode, const char* group) {
    // O_EXCL: only a file we create gets our mode; an existing one keeps its own.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST) return;
        throw store_error("cannot create " + quoted(path) + ": " + std::strerror(errno));
    }
    if (group) {
        // The analysts read headache.db through its group (DESIGN.md,
        // "Storage"). A host without that group, or a user outside it, keeps
        // the primary group: the file is then readable by fewer, never more.
        struct group gr {};
        struct group* found = nullptr;
        std::array<char, 4096> buf{};
        if (::getgrnam_r(group, &gr, buf.data(), buf.size(), &found) == 0 && found)
            (void)::fchown(fd, static_cast<uid_t>(-1), found->gr_gid);
    }
    ::fchmod(fd, mode);  // the umask must not widen or narrow what we chose
    ::close(fd);
}

// A file others may read hands them its contents whatever we do later.
void check_mode(const fs::path& path, const database_kind& kind) {
    if (kind.forbidden_mode == 0) return;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    const unsigned bad = st.st_mode & kind.forbidden_mode;
    if (bad == 0) return;
    char text[160];
    std::snprintf(text, sizeof text, " has mode %04o, open to %s; refusing to start. Fix with: chmod %o ",
                  static_cast<unsigned>(st.st_mode & 07777), (bad & 0007) ? "every user" : "its group",
                  kind.create_mode);
    throw store_error(std::string(kind.description) + " " + quoted(path) + text + path.string());
}

int pragma_int(SQLite::Database& db, const char* pragma) {
    SQLite::Statement q(db, pragma);
    q.executeStep();
    return q.getColumn(0).getInt();
}

// Switches a file to WAL, waiting for another writer as every other write
// here does. SQLite runs the switch as a read transaction upgraded to an
// exclusive one (btree.c, sqlite3BtreeSetVersion), and an upgrade that
// meets another connection's write lock fails at once with SQLITE_BUSY:
// the busy handler is consulted only when no transaction is open yet
// (sqlite3BtreeBeginTrans), since a reader waiting on a writer that may be
// waiting on it could deadlock. Two processes opening a new file together
// (the daemon and a cron-started sync-once) meet exactly that: one is
// switching or migrating while the other switches. So on BUSY: wait for the
// write lock with BEGIN IMMEDIATE, which does consult the busy handler (and
// the busy timeout), let it go, and switch again. Once any process has
// switched the file, the switch writes nothing and cannot be busy; the bound
// only keeps a pathological stream of writers from spinning us forever.
void switch_to_wal(SQLite::Database& db) {
    constexpr int max_attempts = 50;
    for (int attempt = 1;; ++attempt) {
        try {
            db.exec("PRAGMA journal_mode=WAL");
            return;
        } catch (const SQLite::Exception& e) {
            if ((e.getErrorCode() & 0xff) != SQLITE_BUSY || attempt == max_attempts) throw;
        }
        db.exec("BEGIN IMMEDIATE");  // throws SQLITE_BUSY after the busy timeout
        db.exec("ROLLBACK");
    }
}

}  // namespace

[[noreturn]] void rethrow_as_store_error(const std::exception& e, const fs::path& path, const char* doing) {
    std::string msg = std::string("error while ") + doing + " " + quoted(path) + ": ";
    if (const auto* se = dynamic_cast<const SQLite::Exception*>(&e)) {
        switch (se->getErrorCode()) {
            case SQLITE_FULL:
                throw store_error(msg +
                                  "the disk is full; nothing from the failed batch was written. "
                                  "Free space and run again");
            case SQLITE_READONLY:
                throw store_error(msg +
                                  "the database is read-only (file mode, mount or directory "
                                  "permissions). Make it writable for this user");
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
                throw store_error(msg +
                                  "the database stayed locked by another writer (an analyst's "
                                  "open write transaction?) beyond the busy timeout; try again later");
            case SQLITE_NOTADB:
                throw store_error(msg + "the file is not an SQLite database");
            case SQLITE_CORRUPT:
                throw store_error(msg + "the database file is corrupt; restore it from a backup");
            case SQLITE_CANTOPEN:
                throw store_error(msg +
                                  "cannot open the file (does its directory exist and is it writable?)");
            default:
                break;
        }
    }
    throw store_error(msg + e.what());
}

SQLite::Database open_database(const fs::path& path, const database_kind& kind) {
    check_existing_file(path, kind);
    create_with_mode(path, kind.create_mode, kind.group);
    try {
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOFOLLOW);
        // busy_timeout first: analysts may hold read locks at any moment.
        db.setBusyTimeout(5000);
        // Until every check has passed, closing must not checkpoint a WAL
        // left by an earlier run into the main file: a refused open leaves
        // the file byte-identical.
        sqlite3_db_config(db.getHandle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);

        // One read transaction for the three facts: another process creating
        // the same new file (the daemon and a cron-started sync-once, issue
        // 12) commits migration 1's tables, application_id and user_version
        // together, and three separate reads could straddle that commit
        // (application_id 0 read before it, the tables after it: "not a
        // HeadacheMD database"). Inside one transaction the reads see one
        // snapshot, and the other process's commit waits for it.
        int app_id = 0, version = 0, tables = 0;
        {
            SQLite::Transaction snapshot(db, SQLite::TransactionBehavior::DEFERRED);
            app_id = pragma_int(db, "PRAGMA application_id");
            version = pragma_int(db, "PRAGMA user_version");
            tables = pragma_int(db, "SELECT count(*) FROM sqlite_schema");
            snapshot.commit();
        }
        if (app_id != 0 && app_id != kind.application_id)
            throw store_error(quoted(path) +
                              " is an SQLite database of another application (application_id " +
                              std::to_string(app_id) + "); refusing to modify it");
        if (app_id == 0 && tables > 0)
            throw store_error(quoted(path) + " already holds tables but is not a HeadacheMD " +
                              kind.description + "; refusing to modify it");
        const int newest = kind.migrations.empty() ? 0 : kind.migrations.back().version;
        if (version > newest)
            throw store_error(quoted(path) + " has schema version " + std::to_string(version) +
                              ", newer than this binary understands (" + std::to_string(newest) +
                              "). Upgrade headachemd-sync; the file was not changed");
        check_mode(path, kind);
        if (kind.before_write) kind.before_write(db, version);
        sqlite3_db_config(db.getHandle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);

        // Before journal_mode: switching a new file to WAL writes its first
        // page, and the page size is fixed from then on.
        if (kind.page_size != 0 && version == 0 && tables == 0)
            db.exec("PRAGMA page_size=" + std::to_string(kind.page_size));

        // WAL lets analysts read while we write; it persists in the file.
        // synchronous does not persist and must be set on every connection.
        switch_to_wal(db);
        db.exec(std::string("PRAGMA synchronous=") + kind.synchronous);
        db.exec("PRAGMA foreign_keys=ON");
        // A long-lived reader holds back checkpoints; cap the WAL left behind.
        db.exec("PRAGMA journal_size_limit=67108864");
        // Zero freed content (migrations included), so that a value removed
        // on purpose (a FHIR id under [privacy] identifiers = "none", a
        // purged patient, a rotated token) does not survive in a free page
        // or cell of the file. Per connection; it does not persist.
        db.exec("PRAGMA secure_delete=ON");

        for (const auto& m : kind.migrations) {
            if (m.version <= version) continue;
            SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
            // Another process opening the same new file at the same moment
            // (the daemon and a cron-started sync-once, issue 12) may have
            // applied this migration while we waited for the write lock:
            // look again under the lock, and skip what is already there.
            if (pragma_int(db, "PRAGMA user_version") >= m.version) continue;
            db.exec(std::string(m.sql));
            if (kind.in_migration) kind.in_migration(db, m.version);
            // PRAGMAs cannot take bound parameters; both values are integers we own.
            db.exec("PRAGMA user_version=" + std::to_string(m.version));
            if (m.version == 1) db.exec("PRAGMA application_id=" + std::to_string(kind.application_id));
            tx.commit();
        }
        return db;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path, "opening");
    }
}

write_transaction::write_transaction(SQLite::Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

write_transaction::~write_transaction() {
    if (!open_) return;
    try {
        db_.exec("ROLLBACK");
    } catch (...) {
        // A failed ROLLBACK leaves SQLite to roll back on close; nothing was committed.
    }
}

void write_transaction::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[24];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace headachemd::store
