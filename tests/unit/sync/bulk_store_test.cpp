// The Bulk Data export job's record in vault.db (sync/bulk_store, issue 15):
// round trips, rows a restart must refuse, the applied mark inside a
// caller's transaction, the _since cursor, and the resume path after a crash
// between a file's rows and its mark.
#include <gtest/gtest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/store/database.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_job.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "test_support.hpp"

namespace {

namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::errc;
using headachemd::error;
using headachemd::error_code;
using headachemd::test::temp_dir;
using namespace std::chrono;
using namespace std::chrono_literals;
using kind = sy::bulk_action::kind;

const sy::sys_time t0 = sys_days{2026y / December / 6} + 1h + 123456789ns;
const std::string kickoff_url = "https://ehr.example/fhir/Group/g1/$export?_type=Patient,Observation";
const std::string status_url = "https://ehr.example/fhir/$export-poll-location?job_id=cap-123";

struct vault_fixture {
    temp_dir dir;
    st::vault v{dir / "vault.db", st::token_key::generate()};
    SQLite::Database& db() { return v.sql(); }
};

sy::bulk_job_record downloading_record() {
    auto r = sy::new_bulk_record(kickoff_url, t0);
    r.phase = sy::bulk_phase::downloading;
    r.status_url = status_url;
    r.status_origin = "https://ehr.example";
    r.status_on_fhir_origin = true;
    sy::bulk_manifest m;
    m.transaction_time = "2026-12-06T00:59:00.5+02:00";
    m.requires_access_token = false;
    m.files = {
        {sy::bulk_file_kind::output, "Patient", "https://ehr.example/f/1.ndjson", 2},
        {sy::bulk_file_kind::output, "Observation", "https://files.example/2.ndjson?sig=x", std::nullopt},
        {sy::bulk_file_kind::deleted, "Bundle", "https://ehr.example/f/3.ndjson", 0},
        {sy::bulk_file_kind::error, "OperationOutcome", "https://ehr.example/f/4.ndjson", 1}};
    r.manifest = m;
    r.applied = {0, 2};
    r.progress = "50% done";
    return r;
}

// bulk_job_record's defaulted == is deleted (headachemd::error has none):
// every field, the failure by its code's text and its message.
::testing::AssertionResult same_record(const sy::bulk_job_record& a, const sy::bulk_job_record& b) {
    const auto failure_text = [](const sy::bulk_job_record& r) {
        return r.failure ? to_string(r.failure->code) + ": " + r.failure->message : std::string("none");
    };
    if (a.phase != b.phase) return ::testing::AssertionFailure() << "phase";
    if (a.kickoff_url != b.kickoff_url) return ::testing::AssertionFailure() << "kickoff_url";
    if (a.started_at != b.started_at) return ::testing::AssertionFailure() << "started_at";
    if (a.status_url != b.status_url) return ::testing::AssertionFailure() << "status_url";
    if (a.status_origin != b.status_origin) return ::testing::AssertionFailure() << "status_origin";
    if (a.status_on_fhir_origin != b.status_on_fhir_origin)
        return ::testing::AssertionFailure() << "status_on_fhir_origin";
    if (a.manifest != b.manifest) return ::testing::AssertionFailure() << "manifest";
    if (a.applied != b.applied) return ::testing::AssertionFailure() << "applied";
    if (a.since_stored != b.since_stored) return ::testing::AssertionFailure() << "since_stored";
    if (a.progress != b.progress) return ::testing::AssertionFailure() << "progress";
    if (failure_text(a) != failure_text(b))
        return ::testing::AssertionFailure() << "failure: " << failure_text(a) << " vs " << failure_text(b);
    if (a.failure && !(a.failure->code == b.failure->code))
        return ::testing::AssertionFailure() << "failure code";
    if (a.cancel_requested != b.cancel_requested) return ::testing::AssertionFailure() << "cancel_requested";
    return ::testing::AssertionSuccess();
}

// Runs `sql` on the one stored row, then expects load to refuse it with a
// message naming the table, the EHR and `says`.
void expect_refused(const std::string& sql, const std::string& table, const std::string& says) {
    vault_fixture f;
    sy::save_bulk_job(f.db(), "clinic", downloading_record(), t0);
    f.db().exec(sql);
    try {
        (void)sy::load_bulk_job(f.db(), "clinic");
        ADD_FAILURE() << "loaded a corrupt row after: " << sql;
    } catch (const st::store_error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find(table + " row of EHR 'clinic'"), std::string::npos) << m;
        EXPECT_NE(m.find(says), std::string::npos) << m;
        EXPECT_EQ(m.find("cap-123"), std::string::npos) << "a URL in the message: " << m;
    }
}

TEST(BulkStore, TheMigrationPutsTheJobInTheVault) {
    // The job holds capability URLs: its tables exist in vault.db only.
    bool found = false;
    for (const auto& m : headachemd::schema::vault_migrations())
        found = found || std::string_view(m.sql).find("CREATE TABLE bulk_job (") != std::string_view::npos;
    EXPECT_TRUE(found);
    for (const auto& m : headachemd::schema::analytics_migrations())
        EXPECT_EQ(std::string_view(m.sql).find("bulk_job"), std::string_view::npos) << m.name;
}

TEST(BulkStore, NoJobLoadsAsNothing) {
    vault_fixture f;
    EXPECT_FALSE(sy::load_bulk_job(f.db(), "clinic"));
    EXPECT_FALSE(sy::load_bulk_since(f.db(), "clinic"));
}

TEST(BulkStore, RecordsRoundTrip) {
    vault_fixture f;
    // A new job, a polling job and a job downloading with a failure kept
    // through its release: each reads back equal, nanoseconds included.
    auto fresh = sy::new_bulk_record(kickoff_url, t0);
    auto polling = fresh;
    polling.phase = sy::bulk_phase::polling;
    polling.status_url = "https://poll.example/status/9";
    polling.status_origin = "https://poll.example";
    polling.cancel_requested = true;
    auto failing = downloading_record();
    failing.phase = sy::bulk_phase::releasing;
    failing.failure = error{error_code::http(503), "file 1 could not be downloaded"};
    auto deadline = downloading_record();
    deadline.phase = sy::bulk_phase::storing;
    deadline.applied = {0, 1, 2, 3};
    deadline.since_stored = true;
    deadline.failure = error{errc::deadline_exceeded, "the job deadline passed"};
    for (const auto& r : {fresh, polling, failing, deadline}) {
        sy::save_bulk_job(f.db(), "clinic", r, t0);
        const auto back = sy::load_bulk_job(f.db(), "clinic");
        ASSERT_TRUE(back) << to_string(r.phase);
        EXPECT_TRUE(same_record(*back, r)) << to_string(r.phase);
    }
    // Another EHR's job is its own row.
    sy::save_bulk_job(f.db(), "other", fresh, t0);
    EXPECT_TRUE(same_record(*sy::load_bulk_job(f.db(), "clinic"), deadline));
    EXPECT_TRUE(same_record(*sy::load_bulk_job(f.db(), "other"), fresh));
}

TEST(BulkStore, ANewJobReplacesTheOldManifest) {
    vault_fixture f;
    sy::save_bulk_job(f.db(), "clinic", downloading_record(), t0);
    const auto fresh = sy::new_bulk_record(kickoff_url, t0 + 24h);
    sy::save_bulk_job(f.db(), "clinic", fresh, t0 + 24h);
    EXPECT_TRUE(same_record(*sy::load_bulk_job(f.db(), "clinic"), fresh));
    SQLite::Statement files(f.db(), "SELECT count(*) FROM bulk_job_file");
    ASSERT_TRUE(files.executeStep());
    EXPECT_EQ(files.getColumn(0).getInt(), 0);
}

TEST(BulkStore, AnUnknownPhaseIsRefusedNamingTheRow) {
    expect_refused("UPDATE bulk_job SET phase = 'warping'", "bulk_job", "unknown phase 'warping'");
    expect_refused("UPDATE bulk_job SET phase = ''", "bulk_job", "unknown phase ''");
}

TEST(BulkStore, OtherCorruptRowsAreRefusedNamingTheRow) {
    expect_refused("UPDATE bulk_job_file SET kind = 'bogus' WHERE idx = 1", "bulk_job_file",
                   "unknown kind 'bogus' of file 1");
    expect_refused("DELETE FROM bulk_job_file WHERE idx = 1", "bulk_job_file", "file index 2 where 1");
    expect_refused("UPDATE bulk_job_file SET applied = 7 WHERE idx = 0", "bulk_job_file",
                   "applied is not 0 or 1");
    expect_refused("UPDATE bulk_job_file SET count = -1 WHERE idx = 0", "bulk_job_file", "count of file 0");
    expect_refused("UPDATE bulk_job SET has_manifest = 0", "bulk_job", "'downloading' without a manifest");
    expect_refused("UPDATE bulk_job SET has_manifest = 0, phase = 'releasing'", "bulk_job_file",
                   "belongs to a job with no manifest");
    expect_refused("UPDATE bulk_job SET transaction_time = NULL", "bulk_job", "without transaction_time");
    expect_refused("UPDATE bulk_job SET status_url = NULL", "bulk_job", "'downloading' without a status_url");
    expect_refused("UPDATE bulk_job SET failure_code = 'from_the_future'", "bulk_job",
                   "unknown failure_code 'from_the_future'");
    expect_refused("UPDATE bulk_job SET cancel_requested = 'yes'", "bulk_job",
                   "cancel_requested is not 0 or 1");
    expect_refused("UPDATE bulk_job SET started_at_ns = 'soon'", "bulk_job", "started_at_ns");
}

TEST(BulkStore, MarkingAFileAppliedRollsBackWithTheCallersTransaction) {
    vault_fixture f;
    sy::save_bulk_job(f.db(), "clinic", downloading_record(), t0);
    {
        // Setup: the caller's own transaction, which it does not commit.
        st::write_transaction tx(f.db());
        sy::mark_bulk_file_applied(f.db(), "clinic", 1);
    }
    EXPECT_EQ(sy::load_bulk_job(f.db(), "clinic")->applied, (std::set<std::size_t>{0, 2}));
    {
        st::write_transaction tx(f.db());
        sy::mark_bulk_file_applied(f.db(), "clinic", 1);
        tx.commit();
    }
    EXPECT_EQ(sy::load_bulk_job(f.db(), "clinic")->applied, (std::set<std::size_t>{0, 1, 2}));
    // Alone, it is one statement and commits by itself.
    sy::mark_bulk_file_applied(f.db(), "clinic", 3);
    EXPECT_EQ(sy::load_bulk_job(f.db(), "clinic")->applied, (std::set<std::size_t>{0, 1, 2, 3}));
}

TEST(BulkStore, MarkingAFileTheJobDoesNotHaveIsAnError) {
    vault_fixture f;
    EXPECT_THROW(sy::mark_bulk_file_applied(f.db(), "clinic", 0), st::store_error);
    sy::save_bulk_job(f.db(), "clinic", downloading_record(), t0);
    try {
        sy::mark_bulk_file_applied(f.db(), "clinic", 4);
        ADD_FAILURE() << "marked a file outside the manifest";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("EHR 'clinic': no file 4"), std::string::npos) << e.what();
    }
}

TEST(BulkStore, SinceIsStoredWithTheJobsMark) {
    vault_fixture f;
    EXPECT_THROW(sy::store_bulk_since(f.db(), "clinic", "2026-12-06T00:59:00Z", t0), st::store_error);
    EXPECT_FALSE(sy::load_bulk_since(f.db(), "clinic")) << "a cursor without a job";
    auto r = downloading_record();
    r.phase = sy::bulk_phase::storing;
    r.applied = {0, 1, 2, 3};
    sy::save_bulk_job(f.db(), "clinic", r, t0);
    sy::store_bulk_since(f.db(), "clinic", "2026-12-06T00:59:00Z", t0);
    EXPECT_EQ(sy::load_bulk_since(f.db(), "clinic"), "2026-12-06T00:59:00Z");
    EXPECT_TRUE(sy::load_bulk_job(f.db(), "clinic")->since_stored);
    // The next job's record starts over; the cursor stays for its kick-off.
    sy::save_bulk_job(f.db(), "clinic", sy::new_bulk_record(kickoff_url, t0 + 6h), t0 + 6h);
    EXPECT_EQ(sy::load_bulk_since(f.db(), "clinic"), "2026-12-06T00:59:00Z");
    EXPECT_FALSE(sy::load_bulk_job(f.db(), "clinic")->since_stored);
}

TEST(BulkStore, PhaseNamesReadBack) {
    for (auto p : {sy::bulk_phase::kickoff, sy::bulk_phase::polling, sy::bulk_phase::downloading,
                   sy::bulk_phase::storing, sy::bulk_phase::releasing, sy::bulk_phase::done,
                   sy::bulk_phase::failed, sy::bulk_phase::cancelled})
        EXPECT_EQ(sy::bulk_phase_from_string(to_string(p)), p);
    EXPECT_FALSE(sy::bulk_phase_from_string("Polling"));
}

// ---- the resume path ----------------------------------------------------------

const std::string manifest_body = R"({
  "transactionTime": "2026-12-06T00:59:00Z",
  "requiresAccessToken": true,
  "output": [
    {"type": "Patient", "url": "https://ehr.example/fhir/files/1.ndjson"},
    {"type": "Observation", "url": "https://ehr.example/fhir/files/2.ndjson"}
  ]
})";

// Stands in for headache.db: a file's rows are upserts on (type, id), so
// applying the same file twice leaves the same rows.
struct rows_db {
    SQLite::Database db{":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
    rows_db() { db.exec("CREATE TABLE row (type TEXT, id TEXT, PRIMARY KEY (type, id))"); }
    void apply(std::size_t file) {
        st::write_transaction tx(db);
        for (const char* id : {"a", "b", "c"}) {
            SQLite::Statement q(db, "INSERT INTO row (type, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
            q.bind(1, file == 0 ? "Patient" : "Observation");
            q.bind(2, id);
            q.exec();
        }
        tx.commit();
    }
    int count() {
        SQLite::Statement q(db, "SELECT count(*) FROM row");
        (void)q.executeStep();
        return q.getColumn(0).getInt();
    }
};

sy::http_answer answer(int status, std::string body = "",
                       std::optional<std::string> location = std::nullopt) {
    sy::http_answer a;
    a.status = status;
    a.body = std::move(body);
    a.content_location = std::move(location);
    return a;
}

TEST(BulkStore, ACrashBetweenAFilesRowsAndItsMarkReappliesOnlyThatFile) {
    // Setup: a job driven through the store as the shell will drive it.
    vault_fixture f;
    rows_db rows;
    const sy::bulk_job::options opts;
    sy::bulk_job job(opts, sy::new_bulk_record(kickoff_url, t0));
    auto a = job.start(t0);
    ASSERT_EQ(a.what, kind::send_kickoff);
    a = job.next(answer(202, "", status_url), t0 + 1s);
    ASSERT_EQ(a.what, kind::persist);
    sy::save_bulk_job(f.db(), "clinic", job.record(), t0 + 1s);
    a = job.next(sy::persisted{}, t0 + 1s);
    ASSERT_EQ(a.what, kind::poll);
    a = job.next(answer(200, manifest_body), t0 + 20s);
    ASSERT_EQ(a.what, kind::persist);
    sy::save_bulk_job(f.db(), "clinic", job.record(), t0 + 20s);
    a = job.next(sy::persisted{}, t0 + 20s);
    ASSERT_EQ(a.what, kind::download);
    ASSERT_EQ(a.file, 0u);
    a = job.next(sy::file_downloaded{0}, t0 + 21s);
    ASSERT_EQ(a.what, kind::apply);
    rows.apply(0);  // rows first, then the mark
    sy::mark_bulk_file_applied(f.db(), "clinic", 0);
    a = job.next(sy::file_applied{0}, t0 + 21s);
    ASSERT_EQ(a.what, kind::download);
    ASSERT_EQ(a.file, 1u);
    a = job.next(sy::file_downloaded{1}, t0 + 22s);
    ASSERT_EQ(a.what, kind::apply);
    rows.apply(1);
    const int rows_before_crash = rows.count();
    // Run: the process dies here, before file 1 is marked. A new process
    // reads the record back and starts the job from it.
    const auto stored = sy::load_bulk_job(f.db(), "clinic");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->applied, (std::set<std::size_t>{0}));
    sy::bulk_job resumed(opts, *stored);
    a = resumed.start(t0 + 1h);
    // Check: no kick-off, no file 0 again; file 1 again, and its rows once.
    ASSERT_EQ(a.what, kind::download);
    EXPECT_EQ(a.file, 1u);
    a = resumed.next(sy::file_downloaded{1}, t0 + 1h);
    ASSERT_EQ(a.what, kind::apply);
    rows.apply(1);
    EXPECT_EQ(rows.count(), rows_before_crash);
    sy::mark_bulk_file_applied(f.db(), "clinic", 1);
    a = resumed.next(sy::file_applied{1}, t0 + 1h);
    ASSERT_EQ(a.what, kind::store_since);
    sy::store_bulk_since(f.db(), "clinic", a.since, t0 + 1h);
    EXPECT_EQ(sy::load_bulk_since(f.db(), "clinic"), "2026-12-06T00:59:00Z");
    // A crash after the cursor: the next start releases, never re-applies.
    sy::bulk_job again(opts, *sy::load_bulk_job(f.db(), "clinic"));
    EXPECT_EQ(again.start(t0 + 2h).what, kind::release);
}

}  // namespace
