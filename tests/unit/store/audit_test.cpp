// The audit log in vault.db (issue 5 item 3): append and query with
// filters, the append-only triggers, and the retention purge.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::temp_dir;

std::string days_ago(int days) {
    return st::utc_timestamp(std::chrono::system_clock::now() - std::chrono::hours(24) * days);
}

st::audit_event event(std::string time, std::string patient, std::string ehr, std::string_view action,
                      std::optional<int> status = 200) {
    st::audit_event e;
    e.time = std::move(time);
    e.patient_key = std::move(patient);
    e.ehr = std::move(ehr);
    e.action = std::string(action);
    e.http_status = status;
    return e;
}

int rows(SQLite::Database& db) {
    SQLite::Statement q(db, "SELECT count(*) FROM audit_event");
    q.executeStep();
    return q.getColumn(0).getInt();
}

TEST(AuditLog, AppendedEventsComeBackInOrderWithEveryField) {
    // Setup
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    st::audit_event page = event("2026-11-01T10:00:00Z", "hmd-1", "ecw", st::audit_action::fhir_page);
    page.resource_type = "Condition";
    page.page = 2;
    page.count = 50;
    st::audit_event transport =
        event("2026-11-01T10:00:01Z", "hmd-1", "ecw", st::audit_action::fhir_search, std::nullopt);
    transport.resource_type = "Observation";
    transport.page = 1;
    transport.outcome = "timeout";
    st::audit_event rekey = event("2026-11-01T10:00:02Z", "", "", st::audit_action::rekey, std::nullopt);
    rekey.count = 3;

    // Run
    const std::vector<st::audit_event> batch{page, transport, rekey};
    st::append_audit(v, batch);
    const auto got = st::query_audit(v, {});

    // Check: every field round-trips; empty strings are NULL, not "".
    ASSERT_EQ(got.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        auto expected = batch[i];
        expected.id = got[i].id;
        EXPECT_EQ(got[i], expected) << i;
    }
    EXPECT_LT(got[0].id, got[1].id);
    SQLite::Statement nulls(v.sql(),
                            "SELECT count(*) FROM audit_event WHERE patient_key IS NULL AND ehr IS NULL "
                            "AND resource_type IS NULL AND http_status IS NULL");
    nulls.executeStep();
    EXPECT_EQ(nulls.getColumn(0).getInt(), 1);
}

TEST(AuditLog, FiltersBySincePatientEhrAndLimit) {
    // Setup
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    const std::vector<st::audit_event> batch{
        event("2026-10-30T00:00:00Z", "hmd-1", "ecw", st::audit_action::token_refresh),
        event("2026-11-01T00:00:00Z", "hmd-2", "ecw", st::audit_action::token_refresh),
        event("2026-11-01T00:00:05Z", "hmd-1", "epic", st::audit_action::fhir_search),
        event("2026-11-02T00:00:00Z", "hmd-1", "ecw", st::audit_action::fhir_search),
    };
    st::append_audit(v, batch);

    // Run
    const auto since = st::query_audit(v, {.since = "2026-11-01T00:00:00Z"});
    const auto patient = st::query_audit(v, {.patient_key = "hmd-1"});
    const auto both = st::query_audit(v, {.since = "2026-11-01T00:00:00Z", .patient_key = "hmd-1"});
    const auto ehr = st::query_audit(v, {.ehr = "epic"});
    const auto newest_two = st::query_audit(v, {.limit = 2});

    // Check
    EXPECT_EQ(since.size(), 3u);
    EXPECT_EQ(patient.size(), 3u);
    ASSERT_EQ(both.size(), 2u);
    EXPECT_EQ(both[0].ehr, "epic");
    EXPECT_EQ(both[1].time, "2026-11-02T00:00:00Z");
    ASSERT_EQ(ehr.size(), 1u);
    EXPECT_EQ(ehr[0].patient_key, "hmd-1");
    ASSERT_EQ(newest_two.size(), 2u);  // the newest two, oldest first
    EXPECT_EQ(newest_two[0].time, "2026-11-01T00:00:05Z");
    EXPECT_EQ(newest_two[1].time, "2026-11-02T00:00:00Z");
}

TEST(AuditLog, AnUpdateIsRefusedAndChangesNothing) {
    // Setup: an event far older than any retention, so only the UPDATE rule applies.
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    st::append_audit(v, event("2001-01-01T00:00:00Z", "hmd-1", "ecw", st::audit_action::token_refresh, 400));

    // Run + Check
    for (const char* sql :
         {"UPDATE audit_event SET http_status = 200", "UPDATE audit_event SET outcome = 'ok'",
          "UPDATE audit_event SET time = '2001-01-01T00:00:01Z'"}) {
        try {
            v.sql().exec(sql);
            ADD_FAILURE() << "accepted: " << sql;
        } catch (const SQLite::Exception& e) {
            EXPECT_NE(std::string(e.what()).find("append-only"), std::string::npos) << e.what();
        }
    }
    const auto got = st::query_audit(v, {});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].http_status, 400);
}

TEST(AuditLog, ADeleteOfAnEventYoungerThanTheRetentionIsRefused) {
    // Setup: retention 30 days; one event a day old, one 29 days old.
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    EXPECT_EQ(st::purge_audit(v, 30), 0u);
    st::append_audit(v, event(days_ago(1), "hmd-1", "ecw", st::audit_action::fhir_search));
    st::append_audit(v, event(days_ago(29), "hmd-2", "ecw", st::audit_action::fhir_search));

    // Run + Check: neither a targeted nor a blanket DELETE gets through,
    // and a failed statement deletes nothing (ABORT undoes the statement).
    for (const char* sql :
         {"DELETE FROM audit_event WHERE patient_key = 'hmd-1'", "DELETE FROM audit_event"}) {
        try {
            v.sql().exec(sql);
            ADD_FAILURE() << "accepted: " << sql;
        } catch (const SQLite::Exception& e) {
            EXPECT_NE(std::string(e.what()).find("append-only"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(rows(v.sql()), 2);
    // The retention row cannot be removed to disarm the trigger.
    EXPECT_THROW(v.sql().exec("DELETE FROM audit_retention"), SQLite::Exception);
    EXPECT_EQ(rows(v.sql()), 2);
}

TEST(AuditLog, ThePurgeDeletesExactlyTheEventsOlderThanTheRetention) {
    // Setup: events from 400, 31, 29 and 0 days ago.
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    const std::vector<st::audit_event> batch{
        event(days_ago(400), "old-1", "ecw", st::audit_action::fhir_search),
        event(days_ago(31), "old-2", "ecw", st::audit_action::fhir_search),
        event(days_ago(29), "keep-1", "ecw", st::audit_action::fhir_search),
        event(days_ago(0), "keep-2", "ecw", st::audit_action::fhir_search),
    };
    st::append_audit(v, batch);

    // Run: the default (six years) deletes nothing; 30 days deletes two.
    const auto with_default = st::purge_audit(v, st::default_audit_retention_days);
    const auto with_30 = st::purge_audit(v, 30);

    // Check
    EXPECT_EQ(with_default, 0u);
    EXPECT_EQ(with_30, 2u);
    const auto left = st::query_audit(v, {});
    ASSERT_EQ(left.size(), 2u);
    EXPECT_EQ(left[0].patient_key, "keep-1");
    EXPECT_EQ(left[1].patient_key, "keep-2");
    // The trigger now guards with the new retention.
    SQLite::Statement days(v.sql(), "SELECT days FROM audit_retention");
    days.executeStep();
    EXPECT_EQ(days.getColumn(0).getInt(), 30);
}

TEST(AuditLog, ADeferredAppendLeavesTheVaultAtSynchronousFull) {
    // The token write path relies on synchronous=FULL (DESIGN.md "Tokens"):
    // a deferred audit append lowers it for its own transaction only, also
    // when that transaction fails.
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    const auto level = [&] {
        SQLite::Statement q(v.sql(), "PRAGMA synchronous");
        q.executeStep();
        return q.getColumn(0).getInt();
    };
    ASSERT_EQ(level(), 2);  // FULL

    st::append_audit(v, event("2026-11-01T00:00:00Z", "hmd-1", "ecw", st::audit_action::fhir_search),
                     st::audit_sync::deferred);
    EXPECT_EQ(level(), 2);
    EXPECT_THROW(st::append_audit(v, event("bad time", "hmd-1", "ecw", st::audit_action::fhir_search),
                                  st::audit_sync::deferred),
                 st::store_error);
    EXPECT_EQ(level(), 2);
    EXPECT_NO_THROW(st::sync_audit(v.sql()));
    EXPECT_EQ(st::query_audit(v, {}).size(), 1u);
}

TEST(AuditLog, AnEventWithAMalformedTimeIsRefused) {
    // Text order must be time order for the retention trigger to be right.
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    EXPECT_THROW(st::append_audit(v, event("2026-11-01 10:00:00", "hmd-1", "ecw", st::audit_action::enroll)),
                 st::store_error);
    EXPECT_THROW(st::append_audit(v, event("", "hmd-1", "ecw", st::audit_action::enroll)), st::store_error);
    EXPECT_EQ(rows(v.sql()), 0);
}

TEST(AuditLog, ReadOnlyReaderNeedsNoKeyAndNeverWrites) {
    // Setup
    temp_dir dir;
    {
        st::vault v(dir / "vault.db", st::token_key::generate());
        st::append_audit(v, event("2026-11-01T00:00:00Z", "hmd-1", "ecw", st::audit_action::enroll));
        v.sql().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    const std::string before = read_file(dir / "vault.db");

    // Run
    const auto got = st::read_audit_log(dir / "vault.db", {.patient_key = "hmd-1"});

    // Check
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].action, "enroll");
    EXPECT_EQ(read_file(dir / "vault.db"), before);
    try {
        st::read_audit_log(dir / "absent.db", {});
        FAIL() << "read a vault that does not exist";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("absent.db"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "absent.db"));
}

TEST(AuditLog, AVaultFromBeforeTheAuditLogIsUpgradedKeepingItsTokens) {
    // Setup: a version-4 vault (the migration adds tables only).
    temp_dir dir;
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        v.put_enrollment({"hmd-1", "ecw", "f1", "rt-AAAAAAAAAAAAAAAA", "s", "t", false}, "t");
        v.sql().exec(
            "DROP TRIGGER audit_event_no_update; DROP TRIGGER audit_event_no_early_delete; "
            "DROP TRIGGER audit_retention_no_delete; DROP TABLE audit_event; DROP TABLE audit_retention; "
            "ALTER TABLE enrollment DROP COLUMN access_token; ALTER TABLE enrollment DROP COLUMN "
            "access_expires_at; "
            "ALTER TABLE enrollment DROP COLUMN access_scope; ALTER TABLE enrollment DROP COLUMN "
            "refresh_started_at; "
            "ALTER TABLE enrollment DROP COLUMN refresh_started_hash; "
            "ALTER TABLE enrollment DROP COLUMN needs_reauth_reason; "
            "DROP TABLE bulk_job; DROP TABLE bulk_job_file; DROP TABLE bulk_cursor; PRAGMA user_version=4");
    }
    try {
        st::read_audit_log(dir / "vault.db", {});
        FAIL() << "read an audit log from a version-4 vault";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("older than the audit log"), std::string::npos) << e.what();
    }

    // Run
    st::vault v(dir / "vault.db", key);

    // Check
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->refresh_token, "rt-AAAAAAAAAAAAAAAA");
    st::append_audit(v, event("2026-11-01T00:00:00Z", "hmd-1", "ecw", st::audit_action::enroll));
    EXPECT_EQ(st::query_audit(v, {}).size(), 1u);
}

}  // namespace

namespace {

TEST(AuditLog, AnOutsideErrorCodeIsKeptOnlyWhenItIsAShortWord) {
    EXPECT_EQ(st::audit_outcome_code("invalid_grant"), "invalid_grant");
    EXPECT_EQ(st::audit_outcome_code("temporarily_unavailable"), "temporarily_unavailable");
    EXPECT_EQ(st::audit_outcome_code(""), "other");
    EXPECT_EQ(st::audit_outcome_code("invalid grant for Jane Doe"), "other");
    EXPECT_EQ(st::audit_outcome_code("a\tb"), "other");
    EXPECT_EQ(st::audit_outcome_code(std::string(41, 'a')), "other");
}

}  // namespace
