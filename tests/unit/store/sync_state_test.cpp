// Cursors, delete detection and status in headache.db; enrollments in the vault.
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/vault.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

nz::procedure_record procedure(std::string id) {
    nz::procedure_record p;
    p.h.id = std::move(id);
    p.h.raw_hash = "h";
    return p;
}

TEST(SyncState, CursorRoundTripsPerPatientAndType) {
    temp_dir dir;
    st::analytics_db db(dir / "h.db");
    st::sync_state s(db);
    EXPECT_FALSE(s.read_cursor("ehr", "pk", "Observation").last_updated_max);
    s.write_cursor("ehr", "pk", "Observation", {"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"});
    s.write_cursor("ehr", "pk", "Observation", {"2026-02-01T00:00:00Z", "2026-01-02T00:00:00Z"});
    EXPECT_EQ(s.read_cursor("ehr", "pk", "Observation").last_updated_max, "2026-02-01T00:00:00Z");
    EXPECT_FALSE(s.read_cursor("ehr", "pk", "Condition").last_updated_max);
    EXPECT_FALSE(s.read_cursor("ehr", "other", "Observation").last_updated_max);
}

TEST(SyncState, MarkDeletedTouchesOnlyThisPatientsMissingLiveRows) {
    temp_dir dir;
    st::analytics_db db(dir / "h.db");
    st::resource_writer w(db, false, st::identity_policy{});
    w.upsert(procedure("keep"), "ehr", "pk", "t");
    w.upsert(procedure("gone"), "ehr", "pk", "t");
    w.upsert(procedure("other-patient"), "ehr", "pk2", "t");
    st::sync_state s(db);
    EXPECT_EQ(s.mark_deleted_except("ehr", "pk", "procedure", {"keep"}, "2026-03-01T00:00:00Z"), 1);
    EXPECT_EQ(s.mark_deleted_except("ehr", "pk", "procedure", {"keep"}, "2026-03-02T00:00:00Z"),
              0);  // already marked
    SQLite::Statement q(db.sql(), "SELECT id, deleted_at FROM procedure ORDER BY id");
    std::vector<std::pair<std::string, std::string>> rows;
    while (q.executeStep())
        rows.emplace_back(q.getColumn(0).getString(),
                          q.getColumn(1).isNull() ? "-" : q.getColumn(1).getString());
    const std::vector<std::pair<std::string, std::string>> want = {
        {"gone", "2026-03-01T00:00:00Z"}, {"keep", "-"}, {"other-patient", "-"}};
    EXPECT_EQ(rows, want);
    EXPECT_THROW(s.mark_deleted_except("ehr", "pk", "sqlite_schema", {}, "t"), std::invalid_argument);
}

TEST(SyncState, MarkDeletedMarksOneLiveRowOnce) {
    // Setup
    temp_dir dir;
    st::analytics_db db(dir / "h.db");
    st::resource_writer w(db, false, st::identity_policy{});
    w.upsert(procedure("gone"), "ehr", "pk", "t");
    w.upsert(procedure("gone"), "other-ehr", "pk", "t");
    st::sync_state s(db);
    // Run, Check: the EHR's row only, once; an unknown id marks nothing
    EXPECT_TRUE(s.mark_deleted("ehr", "procedure", "gone", "2026-03-01T00:00:00Z"));
    EXPECT_FALSE(s.mark_deleted("ehr", "procedure", "gone", "2026-03-02T00:00:00Z"));
    EXPECT_FALSE(s.mark_deleted("ehr", "procedure", "never", "2026-03-02T00:00:00Z"));
    EXPECT_FALSE(s.mark_deleted("ehr", nz::bare_table, "gone", "2026-03-02T00:00:00Z", "Device"));
    SQLite::Statement q(db.sql(), "SELECT source, ifnull(deleted_at, '-') FROM procedure ORDER BY source");
    std::vector<std::string> rows;
    while (q.executeStep()) rows.push_back(q.getColumn(0).getString() + " " + q.getColumn(1).getString());
    EXPECT_EQ(rows, (std::vector<std::string>{"ehr 2026-03-01T00:00:00Z", "other-ehr -"}));
    EXPECT_THROW(s.mark_deleted("ehr", "sqlite_schema", "x", "t"), std::invalid_argument);
}

TEST(SyncState, StatusRoundTrips) {
    temp_dir dir;
    st::analytics_db db(dir / "h.db");
    st::sync_state s(db);
    st::status_row r{"ehr", "pk", "*", "a", "b", "boom", "c", 7, true, false};
    s.put_status(r);
    r.rows_changed = 9;
    s.put_status(r);
    const auto all = s.all_status();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].rows_changed, 9);
    EXPECT_TRUE(all[0].needs_reauth);
    EXPECT_EQ(all[0].last_error, "boom");
}

TEST(SyncState, SetNextRunKeepsTheRestOfTheRowAndCreatesOneForANeverSyncedPatient) {
    // Setup: one patient with a full status row, one with none.
    temp_dir dir;
    st::analytics_db db(dir / "h.db");
    st::sync_state s(db);
    s.put_status({"ehr", "pk", "*", "a", "b", "boom", "old", 7, true, false});

    // Run
    s.set_next_run("ehr", "pk", "2026-05-01T00:00:00Z");
    s.set_next_run("ehr", "new", "2026-05-02T00:00:00Z");

    // Check: only next_run_at changed; the new row has no attempt yet.
    const auto all = s.all_status();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].patient_key, "new");
    EXPECT_EQ(all[0].resource_type, "*");
    EXPECT_EQ(all[0].next_run_at, "2026-05-02T00:00:00Z");
    EXPECT_FALSE(all[0].last_attempt_at);
    EXPECT_FALSE(all[0].last_success_at);
    EXPECT_EQ(all[1].next_run_at, "2026-05-01T00:00:00Z");
    EXPECT_EQ(all[1].last_attempt_at, "a");
    EXPECT_EQ(all[1].last_success_at, "b");
    EXPECT_EQ(all[1].last_error, "boom");
    EXPECT_EQ(all[1].rows_changed, 7);
    EXPECT_TRUE(all[1].needs_reauth);
}

TEST(VaultEnrollment, PutFindRotateFlagRemove) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    EXPECT_FALSE(v.find_enrollment("pk", "ehr"));
    v.put_enrollment({"pk", "ehr", "fhir-1", "rt-1", "offline_access", "t0", false}, "t0");
    v.replace_refresh_token("pk", "ehr", "rt-2", "t1");
    auto e = v.find_enrollment("pk", "ehr");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->refresh_token, "rt-2");
    EXPECT_EQ(e->token_obtained_at, "t1");
    v.set_needs_reauth("pk", "ehr", true, "t2");
    EXPECT_TRUE(v.find_enrollment("pk", "ehr")->needs_reauth);
    EXPECT_EQ(v.enrollments().size(), 1u);
    EXPECT_THROW(v.replace_refresh_token("nobody", "ehr", "x", "t"), st::store_error);
    EXPECT_TRUE(v.remove_enrollment("pk", "ehr"));
    EXPECT_FALSE(v.find_enrollment("pk", "ehr"));
}

TEST(VaultEnrollment, SurvivesReopen) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        v.put_enrollment({"pk", "ehr", "f", "rt", "", "t", false}, "t");
    }
    st::vault again(dir / "vault.db", key);
    EXPECT_EQ(again.find_enrollment("pk", "ehr")->refresh_token, "rt");
}

}  // namespace
