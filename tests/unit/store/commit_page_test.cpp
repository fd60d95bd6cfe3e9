// store::commit_page, the one page transaction of sync and ingest: a page
// is stored whole or not at all, with the caller's hooks inside it.
#include <stdexcept>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

nz::record condition(std::string id, std::string hash = "h") {
    nz::condition_record c;
    c.h.id = std::move(id);
    c.h.patient_ref = "p1";
    c.h.raw_hash = std::move(hash);
    c.h.raw = R"({"resourceType":"Condition"})";
    c.code = "G43.709";
    return c;
}

std::vector<std::string> stored_ids(SQLite::Database& db) {
    std::vector<std::string> out;
    SQLite::Statement q(db, "SELECT id || ':' || patient_key FROM condition ORDER BY id");
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
}

struct CommitPage : ::testing::Test {
    temp_dir dir;
    st::analytics_db db{dir / "headache.db"};
    st::resource_writer writer{db, true, st::identity_policy{.keep_fhir_patient_id = true}};
    std::string key = "pk1";
    st::page_hooks hooks = sync_job_hooks();

    // As the sync job writes: every row under its patient's key.
    st::page_hooks sync_job_hooks() {
        st::page_hooks h;
        h.patient_key = [this](const nz::record&) -> const std::string& { return key; };
        return h;
    }

    int raw_rows() {
        SQLite::Statement q(db.sql(), "SELECT coalesce(sum(resources), 0) FROM raw_frame");
        q.executeStep();
        return q.getColumn(0).getInt();
    }
};

TEST_F(CommitPage, APageIsWrittenInOrderWithCountsAndHooksInsideTheTransaction) {
    // Setup
    ASSERT_NO_THROW(
        st::commit_page(db, writer, std::vector<nz::record>{condition("c1")}, "ehr", "t0", hooks));
    std::vector<std::string> rows;
    bool in_transaction_at_finish = false;
    hooks.on_row = [&rows](const nz::record& r, st::upsert_outcome o) {
        rows.push_back(nz::header_of(r).id + (o == st::upsert_outcome::inserted ? "+" : "="));
    };
    hooks.before_commit = [&] {
        // Inside the transaction: autocommit is off.
        in_transaction_at_finish = sqlite3_get_autocommit(db.sql().getHandle()) == 0;
    };
    // Run
    const auto counts = st::commit_page(
        db, writer, std::vector<nz::record>{condition("c2"), condition("c1"), condition("c3")}, "ehr", "t1",
        hooks);
    // Check
    EXPECT_EQ(counts.inserted, 2);
    EXPECT_EQ(counts.unchanged, 1);
    EXPECT_EQ(counts.updated, 0);
    EXPECT_EQ(rows, (std::vector<std::string>{"c2+", "c1=", "c3+"}));
    EXPECT_TRUE(in_transaction_at_finish);
    EXPECT_EQ(stored_ids(db.sql()), (std::vector<std::string>{"c1:pk1", "c2:pk1", "c3:pk1"}));
    EXPECT_EQ(raw_rows(), 3);  // store_raw on: the raw resources go with the rows
}

TEST_F(CommitPage, ARowRefusedMidPageLeavesNothingOfThePageAndEarlierPagesIntact) {
    // Setup: an earlier page, and a trigger that refuses the page's second row.
    st::commit_page(db, writer, std::vector<nz::record>{condition("c1")}, "ehr", "t0", hooks);
    db.sql().exec(
        "CREATE TEMP TRIGGER refuse_c3 BEFORE INSERT ON condition WHEN NEW.id = 'c3' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    bool finished = false;
    hooks.before_commit = [&finished] { finished = true; };
    // Run
    EXPECT_THROW(st::commit_page(db, writer,
                                 std::vector<nz::record>{condition("c2"), condition("c3"), condition("c4")},
                                 "ehr", "t1", hooks),
                 std::runtime_error);
    // Check: c2 (written before the failure) rolled back; c1 as it was.
    EXPECT_FALSE(finished);
    EXPECT_EQ(stored_ids(db.sql()), (std::vector<std::string>{"c1:pk1"}));
    EXPECT_EQ(raw_rows(), 1);
    // The transaction ended with the throw (rolled back, not left open).
    EXPECT_NE(sqlite3_get_autocommit(db.sql().getHandle()), 0);
}

TEST_F(CommitPage, AThrowFromTheLastHookRollsBackEveryRowOfThePage) {
    // Setup: the sync cursor's write failing after the rows.
    st::commit_page(db, writer, std::vector<nz::record>{condition("c1", "old")}, "ehr", "t0", hooks);
    hooks.before_commit = [] { throw std::runtime_error("database or disk is full"); };
    // Run
    EXPECT_THROW(st::commit_page(db, writer, std::vector<nz::record>{condition("c1", "new"), condition("c2")},
                                 "ehr", "t1", hooks),
                 std::runtime_error);
    // Check: neither the update of c1 nor the insert of c2.
    EXPECT_EQ(stored_ids(db.sql()), (std::vector<std::string>{"c1:pk1"}));
    SQLite::Statement q(db.sql(), "SELECT ingested_at FROM condition WHERE id = 'c1'");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getString(), "t0");
}

TEST_F(CommitPage, AfterARefusedRowTheNextPageIntoTheSameTableIsWritten) {
    // The writer's statements are prepared once and reused for every page.
    // sqlite3_reset() answers with the error of the step that failed, so a
    // writer that reset with a throwing reset() refused the next page with
    // the old error once the cause was gone (a disk that filled and was
    // freed, a lock released): one job failed for nothing.
    // Setup: a page refused at c3 by a trigger, which is then removed.
    db.sql().exec(
        "CREATE TEMP TRIGGER refuse_c3 BEFORE INSERT ON condition WHEN NEW.id = 'c3' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    EXPECT_THROW(st::commit_page(db, writer, std::vector<nz::record>{condition("c3")}, "ehr", "t0", hooks),
                 std::runtime_error);
    db.sql().exec("DROP TRIGGER refuse_c3");
    // Run / Check: the same writer stores the next page, c3 included.
    EXPECT_NO_THROW(st::commit_page(db, writer, std::vector<nz::record>{condition("c3"), condition("c4")},
                                    "ehr", "t1", hooks));
    EXPECT_EQ(stored_ids(db.sql()), (std::vector<std::string>{"c3:pk1", "c4:pk1"}));
}

TEST_F(CommitPage, ALockedDatabaseRefusesThePageBeforeAnyRow) {
    // Setup: another connection holds the write lock past a zero busy timeout.
    SQLite::Database other((dir / "headache.db").string(), SQLite::OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    db.sql().setBusyTimeout(0);
    int rows = 0;
    hooks.on_row = [&rows](const nz::record&, st::upsert_outcome) { ++rows; };
    // Run / Check: BEGIN IMMEDIATE fails at once; no row was tried.
    EXPECT_THROW(st::commit_page(db, writer, std::vector<nz::record>{condition("c1")}, "ehr", "t0", hooks),
                 std::runtime_error);
    EXPECT_EQ(rows, 0);
    other.exec("ROLLBACK");
    EXPECT_TRUE(stored_ids(db.sql()).empty());
}

TEST_F(CommitPage, WritePageWritesInsideTheCallersTransaction) {
    // Setup: the caller's transaction, as a Bulk Data file holds one
    {
        st::write_transaction tx(db.sql());
        // Run: two pages in it, then no commit
        const std::vector<nz::record> first{condition("a")}, second{condition("b")};
        EXPECT_EQ(st::write_page(writer, first, "ehr", "t", hooks).inserted, 1);
        EXPECT_EQ(st::write_page(writer, second, "ehr", "t", hooks).inserted, 1);
        EXPECT_EQ(stored_ids(db.sql()), (std::vector<std::string>{"a:pk1", "b:pk1"}));
    }
    // Check: rolled back with the caller's transaction
    EXPECT_TRUE(stored_ids(db.sql()).empty());
}

}  // namespace
