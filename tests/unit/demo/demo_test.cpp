// lib/demo: the summary's counts on a database with known rows, as_of set
// only when nobody chose one, the working directory, and one whole run
// against the sandbox on loopback (enrollment, the callback's moment, the
// pass, the summary, a rerun that keeps as_of and the token key).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include "headachemd/demo/demo.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "test_logger.hpp"
#include "test_support.hpp"

namespace {

namespace demo = headachemd::demo;
namespace fs = std::filesystem;
using headachemd::store::analytics_db;
using headachemd::test::temp_dir;
using rows = std::vector<std::pair<std::string, long long>>;

std::string as_of(analytics_db& db) {
    SQLite::Statement q(db.sql(), "SELECT value FROM analyst_setting WHERE key = 'as_of'");
    q.executeStep();
    return q.getColumn(0).getString();
}

// 2024-06-01T00:00:00Z, the sandbox's default anchor.
constexpr std::chrono::system_clock::time_point june_first{std::chrono::seconds{1717200000}};

TEST(DemoSummary, AnEmptyDatabaseCountsZeroInEveryTableInOrder) {
    // Setup
    temp_dir dir;
    analytics_db db(dir / "headache.db");
    // Run
    const auto s = demo::summarize(db);
    // Check
    EXPECT_EQ(s.rows_per_table, (rows{{"patient", 0},
                                      {"condition", 0},
                                      {"medication_request", 0},
                                      {"encounter", 0},
                                      {"observation", 0},
                                      {"procedure", 0},
                                      {"appointment", 0}}));
    EXPECT_TRUE(s.headache_types.empty());
    EXPECT_TRUE(s.drug_classes.empty());
    EXPECT_EQ(s.botulinum_toxin_procedures, 0);
}

TEST(DemoSummary, CountsRowsPatientsPerTypeAndPrescriptionsPerClassAndRole) {
    // Setup: 3 patients; p1 has chronic migraine twice (one patient), p2 too,
    // p3 tension-type, and one condition with no headache type; triptans
    // (4 acute), NSAIDs (2 acute), topiramate (3 preventive) and one order
    // with no class; two botulinum toxin procedures and one nerve block.
    temp_dir dir;
    analytics_db db(dir / "headache.db");
    db.sql().exec(
        "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at) VALUES "
        "('ehr', 'p1', 'k1', 'h', 'x'), ('ehr', 'p2', 'k2', 'h', 'x'), ('ehr', 'p3', 'k3', 'h', 'x');"
        "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, headache_type) VALUES "
        "('ehr', 'c1', 'k1', 'h', 'x', 'chronic_migraine'), ('ehr', 'c2', 'k1', 'h', 'x', "
        "'chronic_migraine'),"
        "('ehr', 'c3', 'k2', 'h', 'x', 'chronic_migraine'), ('ehr', 'c4', 'k3', 'h', 'x', 'tension_type'),"
        "('ehr', 'c5', 'k3', 'h', 'x', NULL);"
        "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, drug_class, "
        "therapy_role) VALUES "
        "('ehr', 'm1', 'k1', 'h', 'x', 'triptan', 'acute'), ('ehr', 'm2', 'k1', 'h', 'x', 'triptan', "
        "'acute'),"
        "('ehr', 'm3', 'k2', 'h', 'x', 'triptan', 'acute'), ('ehr', 'm4', 'k3', 'h', 'x', 'triptan', "
        "'acute'),"
        "('ehr', 'm5', 'k1', 'h', 'x', 'nsaid', 'acute'), ('ehr', 'm6', 'k2', 'h', 'x', 'nsaid', 'acute'),"
        "('ehr', 'm7', 'k1', 'h', 'x', 'anticonvulsant', 'preventive'),"
        "('ehr', 'm8', 'k2', 'h', 'x', 'anticonvulsant', 'preventive'),"
        "('ehr', 'm9', 'k3', 'h', 'x', 'anticonvulsant', 'preventive'),"
        "('ehr', 'm10', 'k3', 'h', 'x', NULL, 'unknown');"
        "INSERT INTO encounter (source, id, patient_key, raw_hash, ingested_at, is_headache_related) VALUES "
        "('ehr', 'e1', 'k1', 'h', 'x', 1);"
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, instrument) VALUES "
        "('ehr', 'o1', 'k1', 'h', 'x', 'midas'), ('ehr', 'o2', 'k2', 'h', 'x', 'hit6');"
        "INSERT INTO procedure (source, id, patient_key, raw_hash, ingested_at, procedure_kind) VALUES "
        "('ehr', 'x1', 'k1', 'h', 'x', 'botulinum_toxin'), ('ehr', 'x2', 'k2', 'h', 'x', 'botulinum_toxin'),"
        "('ehr', 'x3', 'k3', 'h', 'x', 'nerve_block');");
    // Run
    const auto s = demo::summarize(db);
    // Check
    EXPECT_EQ(s.rows_per_table, (rows{{"patient", 3},
                                      {"condition", 5},
                                      {"medication_request", 10},
                                      {"encounter", 1},
                                      {"observation", 2},
                                      {"procedure", 3},
                                      {"appointment", 0}}));
    ASSERT_EQ(s.headache_types.size(), 2u);
    EXPECT_EQ(s.headache_types[0].type, "chronic_migraine");
    EXPECT_EQ(s.headache_types[0].patients, 2);  // distinct patients, not conditions
    EXPECT_EQ(s.headache_types[1].type, "tension_type");
    EXPECT_EQ(s.headache_types[1].patients, 1);
    ASSERT_EQ(s.drug_classes.size(), 3u);
    std::vector<std::string> classes;
    for (const auto& c : s.drug_classes)
        classes.push_back(c.drug_class + " " + c.therapy_role + " " + std::to_string(c.prescriptions));
    EXPECT_EQ(classes,
              (std::vector<std::string>{"triptan acute 4", "anticonvulsant preventive 3", "nsaid acute 2"}));
    EXPECT_EQ(s.botulinum_toxin_procedures, 2);
}

TEST(DemoAsOf, AnEmptyAsOfBecomesTheDayBeforeTheAnchor) {
    // Setup
    temp_dir dir;
    analytics_db db(dir / "headache.db");
    ASSERT_EQ(as_of(db), "");
    // Run
    const auto set = demo::set_as_of(db, june_first);
    // Check
    EXPECT_EQ(set, std::optional<std::string>("2024-05-31"));
    EXPECT_EQ(as_of(db), "2024-05-31");
}

TEST(DemoAsOf, AChosenAsOfIsNeverOverwritten) {
    // Setup: an analyst chose a date, or an earlier demo run set one.
    temp_dir dir;
    analytics_db db(dir / "headache.db");
    db.sql().exec("UPDATE analyst_setting SET value = '2023-12-31' WHERE key = 'as_of'");
    // Run
    const auto set = demo::set_as_of(db, june_first);
    const auto again = demo::set_as_of(db, june_first + std::chrono::hours{24 * 30});
    // Check
    EXPECT_EQ(set, std::nullopt);
    EXPECT_EQ(again, std::nullopt);
    EXPECT_EQ(as_of(db), "2023-12-31");
}

TEST(DemoDirectory, AnEmptyDirIsANewTemporaryDirectoryAndAGivenOneIsCreated) {
    // Setup
    temp_dir dir;
    // Run
    const auto made = demo::make_directory({});
    const auto given = demo::make_directory(dir / "a" / "b");
    // Check
    ASSERT_TRUE(made);
    EXPECT_TRUE(fs::is_directory(*made));
    EXPECT_EQ(made->filename().string().rfind("headachemd-demo-", 0), 0u);
    EXPECT_NE(*made, fs::temp_directory_path() / "headachemd-demo-XXXXXX");
    fs::remove_all(*made);
    ASSERT_TRUE(given);
    EXPECT_EQ(*given, dir / "a" / "b");
    EXPECT_TRUE(fs::is_directory(dir / "a" / "b"));
}

// A --dir that cannot be made (a regular file in the way) is an error that
// names the path; it used to escape as an exception and abort the demo.
TEST(DemoDirectory, APathBlockedByAFileIsAnErrorNamingIt) {
    // Setup
    temp_dir dir;
    std::ofstream(dir / "file") << "x";
    // Run
    const auto made = demo::make_directory(dir / "file" / "sub");
    // Check
    ASSERT_FALSE(made);
    EXPECT_EQ(made.err().code, headachemd::errc::cannot_create);
    EXPECT_NE(made.err().message.find((dir / "file" / "sub").string()), std::string::npos)
        << made.err().message;
}

// The whole workflow over loopback TLS against the sandbox, twice in the
// same directory: the second run reuses token.key and keeps as_of.
TEST(DemoRun, EnrollsSyncsSummarizesAndSetsAsOfOnceAcrossReruns) {
    // Setup
    temp_dir dir;
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
    auto log = headachemd::test::test_logger("demo", ring);
    log->set_level(spdlog::level::warn);  // the command's default: warnings and errors only
    std::vector<long long> patient_rows_at_callback;
    int callbacks = 0, enrolled_at_callback = -1;
    const auto on_enrolled = [&](int n) {
        ++callbacks;
        enrolled_at_callback = n;
        // The pass has not started: nothing synced yet.
        analytics_db peek(dir / "headache.db");
        patient_rows_at_callback.push_back(demo::summarize(peek).rows_per_table.front().second);
    };
    // Run
    const auto first = demo::run({2, dir.path(), false}, log, on_enrolled);
    const auto key = headachemd::test::read_file(dir / "token.key");
    const auto second = demo::run({2, dir.path(), false}, log, on_enrolled);
    // Check
    EXPECT_EQ(callbacks, 2);
    EXPECT_EQ(enrolled_at_callback, 2);
    EXPECT_EQ(patient_rows_at_callback, (std::vector<long long>{0, 2}));
    EXPECT_EQ(first.enrolled, 2);
    EXPECT_EQ(first.pass.patients.size(), 2u);
    EXPECT_EQ(first.pass.failed(), 0);
    EXPECT_EQ(first.counts.rows_per_table.front(), (std::pair<std::string, long long>{"patient", 2}));
    EXPECT_FALSE(first.counts.headache_types.empty());
    EXPECT_EQ(first.as_of, std::optional<std::string>("2024-05-31"));
    EXPECT_EQ(second.enrolled, 2);
    EXPECT_EQ(second.pass.failed(), 0);
    EXPECT_EQ(second.as_of, std::nullopt);
    EXPECT_EQ(headachemd::test::read_file(dir / "token.key"), key);
    EXPECT_TRUE(fs::exists(dir / "sandbox-ca.pem"));
    EXPECT_EQ(fs::status(dir / "client.secret").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    for (const auto& line : ring->last_formatted()) ADD_FAILURE() << "unexpected log line: " << line;
}

// `demo --bulk` (issue 15): the same sandbox clinic through one Bulk Data
// export as a backend app instead of enrollments and a pass. The analyst
// sees the same tables with the same rows either way; the backend key is
// made once, 0600, and used again by a rerun in the same directory.
TEST(DemoRun, BulkExportsTheClinicIntoTheSameTablesAsThePerPatientPath) {
    for (const bool ecw : {false, true}) {
        SCOPED_TRACE(ecw ? "eClinicalWorks mode" : "generic");
        // Setup
        temp_dir per_patient_dir, bulk_dir;
        auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
        auto log = headachemd::test::test_logger("demo", ring);
        log->set_level(spdlog::level::warn);
        std::vector<std::chrono::nanoseconds> waits;
        demo::options o{3, bulk_dir.path(), ecw};
        o.bulk = true;
        o.on_wait = [&waits](std::chrono::nanoseconds d) { waits.push_back(d); };
        int callbacks = 0;
        // Run
        const auto per_patient = demo::run({3, per_patient_dir.path(), ecw}, log);
        const auto bulk = demo::run(o, log, [&callbacks](int) { ++callbacks; });
        const auto key = headachemd::test::read_file(bulk_dir / "bulk-key.pem");
        const auto again = demo::run(o, log);
        // Check
        ASSERT_TRUE(bulk.bulk.has_value());
        EXPECT_EQ(bulk.bulk->end.what, headachemd::sync::bulk_action::kind::done)
            << (bulk.bulk->end.failure ? bulk.bulk->end.failure->message : std::string());
        EXPECT_FALSE(bulk.bulk->resumed);
        EXPECT_GT(bulk.bulk->calls.download, 0u);
        EXPECT_EQ(bulk.bulk->calls.kickoff, 1u);
        EXPECT_EQ(bulk.enrolled, 0);
        EXPECT_EQ(callbacks, 0);
        EXPECT_TRUE(bulk.pass.patients.empty());
        EXPECT_FALSE(waits.empty());  // the first poll waited (here: was told to)
        EXPECT_EQ(bulk.counts.rows_per_table, per_patient.counts.rows_per_table);
        EXPECT_EQ(bulk.counts.rows_per_table.front(), (std::pair<std::string, long long>{"patient", 3}));
        EXPECT_EQ(bulk.counts.botulinum_toxin_procedures, per_patient.counts.botulinum_toxin_procedures);
        EXPECT_EQ(bulk.as_of, std::optional<std::string>("2024-05-31"));
        EXPECT_EQ(fs::status(bulk_dir / "bulk-key.pem").permissions() & fs::perms::all,
                  fs::perms::owner_read | fs::perms::owner_write);
        const bool rsa = key.find("BEGIN PRIVATE KEY") != std::string::npos && key.size() > 1000;
        EXPECT_EQ(rsa, ecw);  // eCW verifies RS384 only; a P-384 key is much shorter
        // The rerun: a new export, the same key, nothing new in any table.
        ASSERT_TRUE(again.bulk.has_value());
        EXPECT_EQ(again.bulk->end.what, headachemd::sync::bulk_action::kind::done);
        EXPECT_EQ(headachemd::test::read_file(bulk_dir / "bulk-key.pem"), key);
        EXPECT_EQ(again.counts.rows_per_table, bulk.counts.rows_per_table);
        for (const auto& line : ring->last_formatted()) ADD_FAILURE() << "unexpected log line: " << line;
    }
}

}  // namespace
