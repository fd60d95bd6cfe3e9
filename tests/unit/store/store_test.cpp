// The store: migrations, refusal of files we must not touch, upserts, vault.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "headachemd/normalize/sha256.hpp"
#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/raw_json.hpp"
#include "headachemd/store/vault.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

int scalar_int(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    q.executeStep();
    return q.getColumn(0).getInt();
}

std::string scalar_text(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    if (!q.executeStep() || q.getColumn(0).isNull()) return "<null>";
    return q.getColumn(0).getString();
}

unsigned file_mode(const fs::path& p) {
    struct stat s {};
    ::stat(p.c_str(), &s);
    return s.st_mode & 0777;
}

nz::condition_record condition(std::string id, std::string hash) {
    nz::condition_record c;
    c.h.id = std::move(id);
    c.h.patient_ref = "p1";
    c.h.raw_hash = std::move(hash);
    c.h.raw = R"({"resourceType":"Condition"})";
    c.code = "G43.709";
    c.headache_type = "chronic_migraine";
    return c;
}

TEST(Migrations, FreshFileGetsEverySchemaVersionWalAndMode0640) {
    temp_dir dir;
    {
        st::analytics_db db(dir / "headache.db");
        EXPECT_EQ(db.schema_version(), headachemd::schema::analytics_migrations().back().version);
        EXPECT_EQ(scalar_text(db.sql(), "PRAGMA journal_mode"), "wal");
        EXPECT_EQ(scalar_int(db.sql(), "SELECT count(*) FROM sqlite_schema WHERE name='medication_request'"),
                  1);
    }
    EXPECT_EQ(file_mode(dir / "headache.db"), 0640u);
}

TEST(Migrations, ReopenIsIdempotent) {
    temp_dir dir;
    { st::analytics_db db(dir / "headache.db"); }
    st::analytics_db again(dir / "headache.db");
    EXPECT_EQ(again.schema_version(), headachemd::schema::analytics_migrations().back().version);
}

TEST(Migrations, NewerSchemaIsRefusedAndFileUnchanged) {
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        st::analytics_db db(path);
        db.sql().exec("PRAGMA user_version=999");
    }
    const std::string before = read_file(path);
    try {
        st::analytics_db db(path);
        FAIL() << "a newer schema was accepted";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("newer than this binary"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(path), before);
}

TEST(Migrations, EachMigrationIsAtomic) {
    // Setup: a migration list whose second step fails halfway.
    static constexpr headachemd::schema::migration broken[] = {
        {1, "0001_a.sql", "CREATE TABLE a (x);"},
        {2, "0002_b.sql", "CREATE TABLE b (x); THIS IS NOT SQL;"},
    };
    temp_dir dir;
    // Run
    EXPECT_THROW(st::open_database(dir / "x.db", st::database_kind{"test database", 7, broken, "FULL", 0600}),
                 st::store_error);
    // Check: version 1 landed, nothing of version 2 did.
    SQLite::Database db((dir / "x.db").string());
    EXPECT_EQ(scalar_int(db, "PRAGMA user_version"), 1);
    EXPECT_EQ(scalar_int(db, "SELECT count(*) FROM sqlite_schema WHERE name='b'"), 0);
}

// Two processes opening a new file at once (the daemon and a cron-started
// sync-once, issue 12; seen failing in CI as "sync-once exited 73"): the
// first to switch the file to WAL holds the write lock while the second's
// switch starts. SQLite runs the switch as a read transaction upgraded to a
// write, and an upgrade that meets another writer fails at once with
// SQLITE_BUSY, without the busy handler (btree.c, sqlite3BtreeBeginTrans:
// it retries only from no transaction). The open must wait for that writer
// as it waits for any other, not report "locked beyond the busy timeout".
TEST(Migrations, SwitchingANewFileToWalWaitsForAnotherWriter) {
    // Setup: a blocker holds the write lock of the new, still rollback-mode
    // file when the open is about to switch it; the open's busy handler, if
    // SQLite ever calls it, lets the blocker go (the other process commits).
    static constexpr headachemd::schema::migration one[] = {{1, "0001_a.sql", "CREATE TABLE a (x);"}};
    temp_dir dir;
    const auto path = dir / "x.db";
    SQLite::Database blocker(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    struct interleaving {
        SQLite::Database* blocker;
        int calls = 0;
    } step{&blocker};
    st::database_kind kind{"test database", 7, one, "FULL", 0600};
    kind.before_write = [&step](SQLite::Database& db, int) {
        step.blocker->exec("BEGIN IMMEDIATE");
        sqlite3_busy_handler(
            db.getHandle(),
            [](void* p, int) -> int {
                auto& s = *static_cast<interleaving*>(p);
                if (s.calls++ == 0) s.blocker->exec("ROLLBACK");
                return s.calls < 100;  // a bound so a bug cannot spin forever
            },
            &step);
    };

    // Run
    SQLite::Database db = st::open_database(path, kind);

    // Check: the open waited (its busy handler ran) and finished the job.
    EXPECT_EQ(step.calls, 1);
    EXPECT_EQ(scalar_text(db, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(scalar_int(db, "PRAGMA user_version"), 1);
}

TEST(Refusal, NotSqliteFileIsRefusedAndNeverDamaged) {
    temp_dir dir;
    const auto path = dir / "headache.db";
    write_file(path, "this is a spreadsheet export, not a database\n");
    try {
        st::analytics_db db(path);
        FAIL() << "a text file was opened as a database";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(path), "this is a spreadsheet export, not a database\n");
    EXPECT_FALSE(fs::exists(dir / "headache.db-wal"));
}

TEST(Refusal, ReadOnlyFileIsRefusedAndNeverDamaged) {
    temp_dir dir;
    const auto path = dir / "headache.db";
    { st::analytics_db db(path); }
    fs::remove(dir / "headache.db-wal");
    fs::remove(dir / "headache.db-shm");
    const std::string before = read_file(path);
    fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    try {
        st::analytics_db db(path);
        FAIL() << "a read-only file was opened for writing";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_file(path), before);
}

TEST(Refusal, AnotherApplicationsDatabaseIsRefused) {
    temp_dir dir;
    const auto path = dir / "other.db";
    {
        SQLite::Database other(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        other.exec("CREATE TABLE invoices (n INTEGER)");
    }
    const std::string before = read_file(path);
    EXPECT_THROW(st::analytics_db db(path), st::store_error);
    EXPECT_EQ(read_file(path), before);
}

TEST(Upsert, InsertThenUnchangedThenUpdated) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, false, st::identity_policy{});
    {
        st::write_transaction tx(db.sql());
        EXPECT_EQ(writer.upsert(condition("c1", "h1"), "ehr", "pk1", "2026-01-01T00:00:00Z"),
                  st::upsert_outcome::inserted);
        EXPECT_EQ(writer.upsert(condition("c1", "h1"), "ehr", "pk1", "2026-01-02T00:00:00Z"),
                  st::upsert_outcome::unchanged);
        tx.commit();
    }
    EXPECT_EQ(scalar_text(db.sql(), "SELECT ingested_at FROM condition"), "2026-01-01T00:00:00Z");
    {
        st::write_transaction tx(db.sql());
        auto changed = condition("c1", "h2");
        changed.code = "G43.109";
        EXPECT_EQ(writer.upsert(changed, "ehr", "pk1", "2026-01-03T00:00:00Z"), st::upsert_outcome::updated);
        // The same id from another source is another row.
        EXPECT_EQ(writer.upsert(changed, "other-ehr", "pk9", "2026-01-03T00:00:00Z"),
                  st::upsert_outcome::inserted);
        tx.commit();
    }
    EXPECT_EQ(scalar_int(db.sql(), "SELECT count(*) FROM condition"), 2);
    EXPECT_EQ(scalar_text(db.sql(), "SELECT code FROM condition WHERE source='ehr'"), "G43.109");
    EXPECT_EQ(scalar_text(db.sql(), "SELECT headache_type FROM condition WHERE source='ehr'"),
              "chronic_migraine");
    EXPECT_EQ(scalar_text(db.sql(), "SELECT patient_key FROM condition WHERE source='ehr'"), "pk1");
    EXPECT_EQ(scalar_int(db.sql(), "SELECT count(*) FROM resource_raw"), 0);  // store_raw is off
}

TEST(Upsert, ADeletedRowThatReappearsIsRestored) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, false, st::identity_policy{});
    writer.upsert(condition("c1", "h1"), "ehr", "pk1", "t1");
    db.sql().exec("UPDATE condition SET deleted_at='2026-02-01T00:00:00Z'");
    EXPECT_EQ(writer.upsert(condition("c1", "h1"), "ehr", "pk1", "t2"), st::upsert_outcome::updated);
    EXPECT_EQ(scalar_text(db.sql(), "SELECT deleted_at FROM condition"), "<null>");
}

TEST(Upsert, NullPatientKeyAndOptionalColumnsAreNull) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, false, st::identity_policy{});
    nz::observation_record o;
    o.h.id = "o1";
    o.h.raw_hash = "h";
    writer.upsert(o, "ehr", "", "t");
    EXPECT_EQ(scalar_text(db.sql(), "SELECT patient_key FROM observation"), "<null>");
    EXPECT_EQ(scalar_text(db.sql(), "SELECT value_num FROM observation"), "<null>");
    EXPECT_EQ(scalar_text(db.sql(), "SELECT instrument FROM observation"), "other");
}

// Schema 5: the medication_request facts the exposure views bound use from.
TEST(Upsert, MedicationRequestWritesRouteContentStrengthAndDailyMaximum) {
    // Setup: an oxycodone/acetaminophen order and an unknown-route one.
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, false, st::identity_policy{});
    nz::medication_request_record known;
    known.h.id = "m1";
    known.h.raw_hash = "h1";
    known.drug_class = "opioid";
    known.ingredient = "acetaminophen / oxycodone";
    known.route = "oral";
    known.contains_opioid = true;
    known.strength_mg = 5.0;
    known.max_units_per_day = 12.0;
    nz::medication_request_record unknown;
    unknown.h.id = "m2";
    unknown.h.raw_hash = "h2";
    unknown.contains_butalbital = true;
    // Run
    writer.upsert(known, "ehr", "pk1", "t");
    writer.upsert(unknown, "ehr", "pk1", "t");
    // Check
    SQLite::Statement q(
        db.sql(),
        "SELECT id, coalesce(route, '-'), contains_opioid, contains_butalbital, "
        "coalesce(strength_mg, '-'), coalesce(max_units_per_day, '-') FROM medication_request "
        "ORDER BY id");
    std::vector<std::string> rows;
    while (q.executeStep()) {
        std::string row;
        for (int i = 0; i < 6; ++i) row += (i ? "|" : "") + q.getColumn(i).getString();
        rows.push_back(row);
    }
    EXPECT_EQ(rows, (std::vector<std::string>{"m1|oral|1|0|5.0|12.0", "m2|-|0|1|-|-"}));
}

TEST(Upsert, StoreRawKeepsTheResourceJson) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    {
        st::write_transaction tx(db.sql());
        writer.upsert(condition("c1", nz::sha256_hex(R"({"resourceType":"Condition"})")), "ehr", "pk1", "t");
        writer.flush_raw();  // write_page does this before COMMIT
        tx.commit();
    }
    // Kept in a zstd frame (schema 12); read_raw_json gives the JSON back.
    EXPECT_EQ(scalar_text(db.sql(), "SELECT resource_type || ':' || resources FROM raw_frame"),
              "Condition:1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), R"({"resourceType":"Condition"})");
}

TEST(Transaction, UncommittedWritesRollBack) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer writer(db, false, st::identity_policy{});
    {
        st::write_transaction tx(db.sql());
        writer.upsert(condition("c1", "h1"), "ehr", "pk1", "t");
        // no commit: as when a later entry of the Bundle fails to write
    }
    EXPECT_EQ(scalar_int(db.sql(), "SELECT count(*) FROM condition"), 0);
}

TEST(Vault, CreatedWithMode0600AndKeyIsStable) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::pseudonym_key first{};
    {
        st::vault v(dir / "vault.db", key);
        first = v.pseudonymization_key();
        EXPECT_EQ(v.pseudonymization_key(), first);
    }
    EXPECT_EQ(file_mode(dir / "vault.db"), 0600u);
    st::vault again(dir / "vault.db", key);
    EXPECT_EQ(again.pseudonymization_key(), first);
    EXPECT_NE(first, st::pseudonym_key{});  // random, not zero
}

TEST(PatientKey, KnownAnswerAndSeparation) {
    const st::pseudonym_key zero{};
    // HMAC-SHA256(32 zero bytes, "ingest\0abc"), first 16 bytes, computed
    // independently with Python's hmac module.
    EXPECT_EQ(st::patient_key_for(zero, "ingest", "abc"), "2283b016366489631ffbf22722bb407c");
    EXPECT_NE(st::patient_key_for(zero, "ingest", "abc"), st::patient_key_for(zero, "ingesta", "bc"));
    EXPECT_NE(st::patient_key_for(zero, "ingest", "abc"), st::patient_key_for(zero, "other", "abc"));
}

TEST(PatientKey, ADatabaseRefusesAnotherVaultsKey) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::pseudonym_key a{}, b{};
    b[0] = 1;
    db.bind_pseudonym_fingerprint(st::fingerprint(a));
    db.bind_pseudonym_fingerprint(st::fingerprint(a));  // the same key again is fine
    EXPECT_THROW(db.bind_pseudonym_fingerprint(st::fingerprint(b)), st::store_error);
}

// Two processes on a new headache.db (issue 12): both find no fingerprint,
// and the one that takes the write lock second must accept the other's
// (the same vault, so the same key) instead of failing on UNIQUE.
TEST(PatientKey, TwoHandlesBindingTheFingerprintAtOnceBothSucceed) {
    // Setup: as in VaultFirstRun: a blocker holds the write lock; when the
    // second handle meets it, its busy handler lets go and the first binds.
    temp_dir dir;
    st::analytics_db first(dir / "headache.db");
    st::analytics_db second(dir / "headache.db");
    SQLite::Database blocker(dir / "headache.db", SQLite::OPEN_READWRITE);
    blocker.exec("BEGIN IMMEDIATE");
    const st::pseudonym_key key{};
    struct interleaving {
        SQLite::Database* blocker;
        st::analytics_db* first;
        std::string fingerprint;
        int calls = 0;
    } step{&blocker, &first, st::fingerprint(key)};
    sqlite3_busy_handler(
        second.sql().getHandle(),
        [](void* p, int) -> int {
            auto& s = *static_cast<interleaving*>(p);
            if (s.calls++ == 0) {
                s.blocker->exec("ROLLBACK");
                s.first->bind_pseudonym_fingerprint(s.fingerprint);
            }
            return s.calls < 100;
        },
        &step);

    // Run / Check
    EXPECT_NO_THROW(second.bind_pseudonym_fingerprint(st::fingerprint(key)));
    EXPECT_GT(step.calls, 0) << "the interleaving did not happen";
    EXPECT_TRUE(second.has_pseudonym_fingerprint(st::fingerprint(key)));
    // Another key is still refused.
    st::pseudonym_key other{};
    other[0] = 1;
    EXPECT_THROW(second.bind_pseudonym_fingerprint(st::fingerprint(other)), st::store_error);
}

}  // namespace
