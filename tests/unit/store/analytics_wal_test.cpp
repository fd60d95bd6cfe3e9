// headache.db's WAL as analysts meet it: the -wal and -shm files outlive the
// writer's connection, and the checkpoint after a pass never waits for a
// reader. The same under two real users: tests/integration/
// analyst_concurrency_test.cpp.
#include <chrono>
#include <filesystem>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/store/analytics_db.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

int scalar_int(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt();
}

void write_rows(st::analytics_db& db, int n) {
    static int next = 0;  // keys stay unique across calls
    st::write_transaction tx(db.sql());
    for (int i = 0; i < n; ++i, ++next)
        db.sql().exec("INSERT INTO analyst_setting (key, value, meaning) VALUES ('test-" +
                      std::to_string(next) + "', 'x', 'a test row')");
    tx.commit();
}

TEST(AnalyticsWal, WalAndShmOutliveTheWritersConnectionEmpty) {
    // Setup / Run: the writer opens, writes and closes, as sync-once does.
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        st::analytics_db db(path);
        write_rows(db, 3);
        EXPECT_GT(fs::file_size(dir / "headache.db-wal"), 0u);
    }
    // Check: both stay (a read-only reader needs them), the WAL empty: its
    // content went into the database on close.
    ASSERT_TRUE(fs::exists(dir / "headache.db-shm"));
    ASSERT_TRUE(fs::exists(dir / "headache.db-wal"));
    EXPECT_EQ(fs::file_size(dir / "headache.db-wal"), 0u);
    SQLite::Database reader(path.string(), SQLite::OPEN_READONLY);
    EXPECT_EQ(scalar_int(reader, "SELECT count(*) FROM analyst_setting WHERE key LIKE 'test-%'"), 3);
}

TEST(AnalyticsWal, CheckpointReturnsAtOnceWhileAReaderHoldsASnapshotThenTruncates) {
    // Setup: the writer has written; a reader pins a snapshot.
    temp_dir dir;
    const auto path = dir / "headache.db";
    st::analytics_db db(path);
    write_rows(db, 1);
    ASSERT_TRUE(db.checkpoint_unless_read());
    SQLite::Database reader(path.string(), SQLite::OPEN_READONLY);
    reader.exec("BEGIN");
    const int seen = scalar_int(reader, "SELECT count(*) FROM analyst_setting");
    write_rows(db, 50);

    // Run: the checkpoint with the snapshot held.
    const auto t0 = std::chrono::steady_clock::now();
    const bool done = db.checkpoint_unless_read();
    const auto took = std::chrono::steady_clock::now() - t0;

    // Check: refused without waiting out the 5 s busy timeout, which it
    // restores; the reader's snapshot is intact and the WAL kept.
    EXPECT_FALSE(done);
    EXPECT_LT(took, std::chrono::seconds(4));
    EXPECT_EQ(scalar_int(db.sql(), "PRAGMA busy_timeout"), 5000);
    EXPECT_EQ(scalar_int(reader, "SELECT count(*) FROM analyst_setting"), seen);
    EXPECT_GT(fs::file_size(dir / "headache.db-wal"), 0u);

    // The reader ends: the next checkpoint empties the WAL.
    reader.exec("COMMIT");
    EXPECT_TRUE(db.checkpoint_unless_read());
    EXPECT_EQ(fs::file_size(dir / "headache.db-wal"), 0u);
    EXPECT_EQ(scalar_int(reader, "SELECT count(*) FROM analyst_setting"), seen + 50);
}

}  // namespace
