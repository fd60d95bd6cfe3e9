// The Bulk Data `apply` step (sync::bulk_file_apply, issue 15 items 4-5):
// bytes of one manifest file in, rows of headache.db out, as `ingest`
// stores them, one transaction per file.
#include "headachemd/sync/bulk_apply.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include "headachemd/ingest/ingest.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "store_test_support.hpp"
#include "test_support.hpp"

namespace headachemd::sync {
namespace {

using headachemd::test::query_rows;
using headachemd::test::temp_dir;

constexpr const char* ehr = "clinic-ehr";
constexpr const char* now = "2026-12-06T12:00:00Z";

// Every table a resource can land in, each as sorted "table|col|…" rows.
std::vector<std::string> all_rows(store::analytics_db& db) {
    std::vector<std::string> out;
    for (const char* t : {"patient", "condition", "medication_request", "appointment", "encounter",
                          "observation", "procedure", "bare_resource", "resource_raw"}) {
        auto rows = query_rows(db.sql(), std::string("SELECT * FROM ") + t);
        std::sort(rows.begin(), rows.end());
        for (auto& r : rows) out.push_back(std::string(t) + "|" + r);
    }
    return out;
}

std::string observation(const std::string& id, const std::string& patient, const std::string& value = "7") {
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"72514-3"}]},)"
           R"("subject":{"reference":"Patient/)" +
           patient + R"("},"effectiveDateTime":"2026-01-02","valueQuantity":{"value":)" + value + "}}";
}

std::string patient(const std::string& id) {
    return R"({"resourceType":"Patient","id":")" + id + R"(","gender":"female","birthDate":"1980-05-01"})";
}

struct bulk_apply_test : ::testing::Test {
    temp_dir dir;
    store::analytics_db db{dir / "headache.db"};
    store::pseudonym_key key{};
    enrolled_keys enrolled{{"p1", "configured-p1"}};

    bulk_apply_test() { key[0] = 7; }

    bulk_apply_options options(std::size_t max_line_bytes = 4096) {
        bulk_apply_options o;
        o.ehr = ehr;
        o.max_line_bytes = max_line_bytes;
        o.batch_lines = 2;  // several batches inside the one file transaction
        return o;
    }

    // Applies `text` cut into the pieces that start at `cuts`.
    bulk_apply_report apply(bulk_applier& a, const bulk_file& f, std::string_view text,
                            const std::vector<std::size_t>& cuts = {}, std::size_t index = 0) {
        bulk_file_apply file(a, index, f, now);
        std::size_t from = 0;
        for (std::size_t c : cuts) {
            file.feed(text.substr(from, c - from));
            from = c;
        }
        file.feed(text.substr(from));
        return file.finish();
    }
    bulk_apply_report apply(const bulk_file& f, std::string_view text,
                            const std::vector<std::size_t>& cuts = {}, std::size_t max_line_bytes = 4096) {
        bulk_applier a(db, key, options(max_line_bytes), enrolled);
        return apply(a, f, text, cuts);
    }
    std::vector<std::string> rows(const std::string& sql) { return query_rows(db.sql(), sql); }
};

const bulk_file observations{bulk_file_kind::output, "Observation", "https://ehr.example/f/1", std::nullopt};
const bulk_file errors{bulk_file_kind::error, "OperationOutcome", "https://ehr.example/f/2", std::nullopt};
const bulk_file deletions{bulk_file_kind::deleted, "Bundle", "https://ehr.example/f/3", std::nullopt};

std::string three_observations() {
    return observation("o1", "p1") + "\n" + observation("o2", "p2") + "\r\n" + observation("o3", "p2", "9") +
           "\n";
}

TEST_F(bulk_apply_test, ChunksSplitAnywhereGiveTheRowsOfOneChunk) {
    // Setup
    const std::string text = three_observations();
    temp_dir other;
    store::analytics_db whole_db{other / "headache.db"};
    {
        bulk_applier a(whole_db, key, options(), enrolled);
        apply(a, observations, text);
    }
    const auto expected = all_rows(whole_db);
    ASSERT_EQ(expected.size(), 3u);
    // Run: every split point once, and every byte its own chunk
    for (std::size_t cut = 1; cut < text.size(); cut += 37) {
        temp_dir d;
        store::analytics_db split_db{d / "headache.db"};
        bulk_applier a(split_db, key, options(), enrolled);
        const auto rep = apply(a, observations, text, {cut});
        // Check
        ASSERT_EQ(all_rows(split_db), expected) << "cut at " << cut;
        EXPECT_EQ(rep.inserted, 3u);
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
    const auto rep = apply(observations, text, every_byte);
    EXPECT_EQ(all_rows(db), expected);
    EXPECT_EQ(rep.lines, 3u);
    EXPECT_EQ(rep.inserted, 3u);
    EXPECT_EQ(rep.line_error_count, 0u);
}

TEST_F(bulk_apply_test, ApplyingAFileTwiceChangesNothing) {
    // Setup
    apply(observations, three_observations());
    const auto first = all_rows(db);
    // Run
    const auto rep = apply(observations, three_observations());
    // Check
    EXPECT_EQ(all_rows(db), first);
    EXPECT_EQ(rep.inserted + rep.updated, 0u);
    EXPECT_EQ(rep.unchanged, 3u);
}

TEST_F(bulk_apply_test, DestroyedWithoutFinishStoresNothing) {
    // Setup
    bulk_applier a(db, key, options(), enrolled);
    {
        bulk_file_apply file(a, 0, observations, now);
        // Run: more lines than a batch, so rows were written in the transaction
        file.feed(three_observations() + three_observations());
    }
    // Check
    EXPECT_EQ(rows("SELECT count(*) FROM observation"), std::vector<std::string>{"0"});
    EXPECT_EQ(rows("PRAGMA synchronous"), std::vector<std::string>{"1"});  // NORMAL again
    // and the applier takes the next file
    const auto rep = apply(a, observations, three_observations());
    EXPECT_EQ(rep.inserted, 3u);
}

TEST_F(bulk_apply_test, TheCommitRunsUnderSynchronousFullAndPutsNormalBack) {
    bulk_applier a(db, key, options(), enrolled);
    bulk_file_apply file(a, 0, observations, now);
    file.feed(three_observations());  // two lines: one batch written, the transaction open
    // A second connection cannot write while the file's transaction is open.
    SQLite::Database other((dir / "headache.db").string(), SQLite::OPEN_READWRITE);
    other.exec("PRAGMA busy_timeout=0");
    EXPECT_THROW(other.exec("BEGIN IMMEDIATE"), SQLite::Exception);
    file.finish();
    EXPECT_EQ(rows("PRAGMA synchronous"), std::vector<std::string>{"1"});
    EXPECT_EQ(rows("SELECT count(*) FROM observation"), std::vector<std::string>{"3"});
}

TEST_F(bulk_apply_test, EnrolledPatientGetsTheConfiguredKeyOthersTheKeyedHashAsIngest) {
    // Setup
    const std::string text = patient("p1") + "\n" + patient("p2") + "\n";
    const bulk_file patients{bulk_file_kind::output, "Patient", "u", std::nullopt};
    // Run
    apply(observations, three_observations());
    apply(patients, text);
    // Check
    const std::string hashed = store::patient_key_for(key, ehr, "p2");
    EXPECT_EQ(rows("SELECT id, patient_key FROM observation ORDER BY id"),
              (std::vector<std::string>{"o1|configured-p1", "o2|" + hashed, "o3|" + hashed}));
    // The Patient row's id is its keyed hash either way (identity_policy);
    // its patient_key is the one its resources carry.
    EXPECT_EQ(
        rows("SELECT patient_key FROM patient WHERE id = '" + store::patient_key_for(key, ehr, "p1") + "'"),
        std::vector<std::string>{"configured-p1"});
    EXPECT_EQ(rows("SELECT patient_key FROM patient WHERE id = '" + hashed + "'"),
              std::vector<std::string>{hashed});

    // ingest of p2's lines, under the EHR's name as source, gives the same rows
    temp_dir other;
    store::analytics_db ingest_db{other / "headache.db"};
    test::write_file(other / "p2.ndjson", observation("o2", "p2") + "\n" + observation("o3", "p2", "9") +
                                              "\n" + patient("p2") + "\n");
    ingest::options io;
    io.source = ehr;
    auto log = std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
    ingest::ingester ing(ingest_db, key, io, log, std::chrono::steady_clock::now, [] {
        return std::chrono::sys_days{std::chrono::year{2026} / 12 / 6} + std::chrono::hours{12};
    });
    ing.run({other / "p2.ndjson"});
    const std::string where = " WHERE patient_key = '" + hashed + "' ORDER BY id";
    for (const char* t : {"observation", "patient"})
        EXPECT_EQ(rows(std::string("SELECT * FROM ") + t + where),
                  query_rows(ingest_db.sql(), std::string("SELECT * FROM ") + t + where))
            << t;
}

TEST_F(bulk_apply_test, BadLinesAreLineErrorsAndTheirNeighboursAreStored) {
    // Setup: line 2 over the cap, 4 not JSON, 5 another type, 7 blank
    const std::string long_line = observation("long", "p2", std::string(300, '1'));
    const std::string text = observation("o1", "p1") + "\n" + long_line + "\n" + observation("o2", "p2") +
                             "\n{not json\n" + patient("p3") + "\n" + observation("o3", "p2") + "\n  \n" +
                             observation("o4", "p2");
    // Run
    const auto rep = apply(observations, text, {5, 200, 301}, 256);
    // Check
    EXPECT_EQ(rows("SELECT id FROM observation ORDER BY id"),
              (std::vector<std::string>{"o1", "o2", "o3", "o4"}));
    EXPECT_EQ(rows("SELECT count(*) FROM patient"), std::vector<std::string>{"0"});
    EXPECT_EQ(rep.lines, 7u);
    EXPECT_EQ(rep.inserted, 4u);
    EXPECT_EQ(rep.line_error_count, 3u);
    EXPECT_EQ(rep.line_errors, (std::vector<bulk_line_error>{{0, 2, line_error_reason::too_long},
                                                             {0, 4, line_error_reason::unreadable},
                                                             {0, 5, line_error_reason::wrong_type}}));
}

TEST_F(bulk_apply_test, AnErrorFileKeepsSeverityAndCodeAndAWarningIsNoFailure) {
    // Setup
    const std::string text =
        R"({"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational",)"
        R"("diagnostics":"Patient Jane Doe had no Observation"}]})"
        "\n"
        R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing",)"
        R"("diagnostics":"Jane"},{"severity":"warning","code":"informational"}]})"
        "\n" +
        observation("o1", "p1") + "\n";
    // Run
    const auto rep = apply(errors, text, {17});
    // Check
    EXPECT_EQ(rep.outcome_failures, 1u);
    EXPECT_EQ(rep.outcome_issues,
              (std::vector<outcome_issue>{{"error", "processing", 1}, {"warning", "informational", 2}}));
    EXPECT_EQ(rep.line_errors, (std::vector<bulk_line_error>{{0, 3, line_error_reason::wrong_type}}));
    EXPECT_EQ(rows("SELECT count(*) FROM observation"), std::vector<std::string>{"0"});

    const auto only_warning = apply(errors, text.substr(0, text.find('\n') + 1));
    EXPECT_EQ(only_warning.outcome_failures, 0u);
    EXPECT_EQ(only_warning.line_error_count, 0u);
}

TEST_F(bulk_apply_test, ADeletedFileMarksRowsDeletedOnce) {
    // Setup
    apply(observations, three_observations() + patient("p2") + "\n");
    const bulk_file patients{bulk_file_kind::output, "Patient", "u", std::nullopt};
    apply(patients, patient("p2") + "\n");
    const std::string text =
        R"({"resourceType":"Bundle","type":"transaction","entry":[)"
        R"({"request":{"method":"DELETE","url":"Observation/o2"}},)"
        R"({"request":{"method":"DELETE","url":"Patient/p2"}},)"
        R"({"request":{"method":"DELETE","url":"Observation/never-stored"}}]})"
        "\n"
        R"({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Observation/o3"}}]})"
        "\n";
    // Run
    const auto rep = apply(deletions, text, {40});
    // Check
    EXPECT_EQ(rep.deleted, 2u);
    EXPECT_EQ(rep.deleted_absent, 1u);
    EXPECT_EQ(rep.line_errors, (std::vector<bulk_line_error>{{0, 2, line_error_reason::bad_entry}}));
    EXPECT_EQ(rows("SELECT id, deleted_at FROM observation ORDER BY id"),
              (std::vector<std::string>{"o1|NULL", std::string("o2|") + now, "o3|NULL"}));
    EXPECT_EQ(rows("SELECT deleted_at FROM patient"), std::vector<std::string>{now});
    const auto before = all_rows(db);

    // a second application, later, changes nothing
    bulk_applier a(db, key, options(), enrolled);
    bulk_file_apply again(a, 0, deletions, "2026-12-07T00:00:00Z");
    again.feed(text);
    const auto rep2 = again.finish();
    EXPECT_EQ(rep2.deleted, 0u);
    EXPECT_EQ(rep2.deleted_absent, 3u);
    EXPECT_EQ(all_rows(db), before);
}

TEST_F(bulk_apply_test, ViewRowsFollowTheRowsKeysAndDeletions) {
    // Setup: a [[view]] of Observation, filled in each file's transaction
    auto views = std::make_shared<store::view_tables>(
        db,
        test::load_view(
            dir.path(), "obs",
            R"({"resourceType":"ViewDefinition","name":"obs","resource":"Observation",)"
            R"("status":"active","select":[{"column":[{"name":"obs_id","path":"id","type":"id"}]}]})"),
        now);
    bulk_applier a(db, key, options(), enrolled, views);
    // Run
    apply(a, observations, three_observations());
    // Check: the view's key column is the row's patient key, the configured one for p1
    EXPECT_EQ(rows("SELECT count(*) FROM view_obs v JOIN observation o ON o.id = v._resource_id "
                   "AND o.patient_key = v._patient_key AND o.source = v._source"),
              std::vector<std::string>{"3"});
    EXPECT_EQ(rows("SELECT _patient_key FROM view_obs WHERE obs_id = 'o1'"),
              std::vector<std::string>{"configured-p1"});
    // a deleted resource leaves the view, as the per-patient delete detection does it
    apply(
        a, deletions,
        R"({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/o2"}}]})");
    EXPECT_EQ(rows("SELECT obs_id FROM view_obs ORDER BY 1"), (std::vector<std::string>{"o1", "o3"}));
}

TEST_F(bulk_apply_test, ARefusedWriteRollsTheFileBackAndEndsIt) {
    // Setup: an analyst's write lock, and no waiting for it
    db.sql().exec("PRAGMA busy_timeout=0");
    SQLite::Database analyst((dir / "headache.db").string(), SQLite::OPEN_READWRITE);
    analyst.exec("BEGIN IMMEDIATE");
    bulk_applier a(db, key, options(), enrolled);
    bulk_file_apply file(a, 0, observations, now);
    // Run: the first batch meets the lock
    EXPECT_THROW(file.feed(three_observations()), store::store_error);
    // Check: the file is over, nothing stored, NORMAL again
    EXPECT_THROW(file.finish(), std::logic_error);
    analyst.exec("ROLLBACK");
    EXPECT_EQ(rows("SELECT count(*) FROM observation"), std::vector<std::string>{"0"});
    EXPECT_EQ(rows("PRAGMA synchronous"), std::vector<std::string>{"1"});
}

TEST_F(bulk_apply_test, FeedAfterFinishIsABug) {
    bulk_applier a(db, key, options(), enrolled);
    bulk_file_apply file(a, 0, observations, now);
    file.finish();
    EXPECT_THROW(file.feed("x"), std::logic_error);
    EXPECT_THROW(bulk_file_apply(a, 1, observations, now), std::logic_error);  // one file at a time
}

// The Synthea Bulk Data export in the shared data, each file applied in
// 64 KiB chunks, gives exactly the rows `ingest` gives for the same files.
TEST_F(bulk_apply_test, SyntheaBulkExportGivesTheRowsOfIngest) {
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson");
    // Setup
    const auto data = test::shared_data() / "synthea-bulk10-ndjson";
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(data))
        if (e.path().extension() == ".ndjson" && e.path().filename() != "log.ndjson")
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    ASSERT_FALSE(files.empty());

    temp_dir other;
    store::analytics_db ingest_db{other / "headache.db"};
    ingest::options io;
    io.source = ehr;
    auto log = std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
    ingest::ingester ing(ingest_db, key, io, log, std::chrono::steady_clock::now, [] {
        return std::chrono::sys_days{std::chrono::year{2026} / 12 / 6} + std::chrono::hours{12};
    });
    ing.run(files);
    ASSERT_EQ(ing.result().problems, 0u);

    // Run
    bulk_applier a(db, key, options(std::size_t{8} << 20), enrolled_keys{});
    std::size_t lines = 0, stored = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const std::string type =
            files[i].filename().string().substr(0, files[i].filename().string().find('.'));
        const std::string text = test::read_file(files[i]);
        std::vector<std::size_t> cuts;
        for (std::size_t c = 65536; c < text.size(); c += 65536) cuts.push_back(c);
        const auto rep = apply(a, bulk_file{bulk_file_kind::output, type, "u", std::nullopt}, text, cuts, i);
        EXPECT_EQ(rep.line_error_count, 0u) << type;
        lines += rep.lines;
        stored += rep.inserted;
    }
    // Check
    const auto t = ing.result().totals();
    EXPECT_EQ(stored, t.inserted);
    EXPECT_GT(stored, 1000u);
    EXPECT_GE(lines, stored);
    const auto applied = all_rows(db);
    EXPECT_EQ(applied, all_rows(ingest_db));
    RecordProperty("files", static_cast<int>(files.size()));
    RecordProperty("lines", static_cast<int>(lines));
    RecordProperty("rows", static_cast<int>(applied.size()));
}

}  // namespace
}  // namespace headachemd::sync
