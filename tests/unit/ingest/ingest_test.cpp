// The ingest pipeline over files: atomic Bundles, NDJSON lines, directory
// walks, and every bad input named by file and entry or line.
#include <algorithm>
#include <filesystem>
#include <string>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include "headachemd/ingest/ingest.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

constexpr const char* good_bundle = R"({"resourceType":"Bundle","type":"collection","entry":[
 {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1984-03-02"}},
 {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Condition","id":"c1","subject":{"reference":"urn:uuid:p1"},
   "code":{"coding":[{"system":"http://snomed.info/sct","code":"124171000119105","display":"Chronic intractable migraine without aura"}]}}},
 {"resource":{"resourceType":"Organization","id":"o1"}}
]})";

// A Bundle with a valid first entry and a broken second one.
std::string bundle_with_bad_entry(std::string_view bad_entry) {
    return std::string(R"({"resourceType":"Bundle","type":"collection","entry":[)") +
           R"({"resource":{"resourceType":"Condition","id":"c9","subject":{"reference":"Patient/p1"}}},)" +
           std::string(bad_entry) + "]}";
}

struct fixture : ::testing::Test {
    temp_dir dir;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(200);
    std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("test", sink);
    st::analytics_db db{dir / "headache.db"};
    st::pseudonym_key key{};

    headachemd::ingest::report ingest(const std::vector<fs::path>& inputs,
                                      headachemd::ingest::options o = {}) {
        headachemd::ingest::ingester ing(db, key, o, log);
        ing.run(inputs);
        return ing.result();
    }
    int count(const std::string& table) {
        SQLite::Statement q(db.sql(), "SELECT count(*) FROM \"" + table + "\"");
        q.executeStep();
        return q.getColumn(0).getInt();
    }
    std::string logged() {
        std::string all;
        for (const auto& l : sink->last_formatted()) all += l;
        return all;
    }
    fs::path file(const std::string& name, std::string_view bytes) {
        write_file(dir / name, bytes);
        return dir / name;
    }
};

TEST_F(fixture, GoodBundleIsWrittenWithCountsAndPseudonymousKeys) {
    const auto r = ingest({file("b.json", good_bundle)});
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(r.per_type.at("Patient").inserted, 1u);
    EXPECT_EQ(r.per_type.at("Condition").inserted, 1u);
    EXPECT_EQ(r.per_type.at("Organization").skipped, 1u);
    EXPECT_EQ(count("patient"), 1);
    SQLite::Statement q(db.sql(), "SELECT c.patient_key, p.patient_key FROM condition c, patient p");
    ASSERT_TRUE(q.executeStep());
    const std::string key_text = q.getColumn(0).getString();
    EXPECT_EQ(key_text, q.getColumn(1).getString());  // the urn:uuid reference resolved to p1
    EXPECT_EQ(key_text, st::patient_key_for(key, "file", "p1"));
    EXPECT_EQ(key_text.find("p1"), std::string::npos);
}

TEST_F(fixture, SecondRunOfTheSameFileChangesNothing) {
    const auto f = file("b.json", good_bundle);
    ingest({f});
    const auto again = ingest({f});
    EXPECT_EQ(again.totals().inserted + again.totals().updated, 0u);
    EXPECT_EQ(again.totals().unchanged, 2u);
}

TEST_F(fixture, MalformedJsonIsRejectedAndOtherFilesGoOn) {
    const auto bad = file("a-bad.json", R"({"resourceType":"Bundle","entry":[{"resource":)");
    const auto good = file("b-good.json", good_bundle);
    const auto r = ingest({bad, good});
    EXPECT_EQ(r.problems, 1u);
    EXPECT_EQ(r.files_rejected, 1u);
    EXPECT_NE(logged().find("a-bad.json"), std::string::npos) << logged();
    EXPECT_EQ(count("patient"), 1);  // from the good file
}

TEST_F(fixture, ABundleIsAtomicAndNamesTheBadEntry) {
    const auto r =
        ingest({file("b.json", bundle_with_bad_entry(R"({"resource":{"resourceType":"Foo","id":"x"}})"))});
    EXPECT_FALSE(r.clean());
    EXPECT_EQ(count("condition"), 0);  // entry 0 was fine, but the Bundle is one unit
    EXPECT_NE(logged().find("b.json"), std::string::npos);
    EXPECT_NE(logged().find("entry 1"), std::string::npos) << logged();
    EXPECT_EQ(r.per_type.at("Condition").rejected, 1u);
}

TEST_F(fixture, ResourceWithoutIdIsRejected) {
    ingest({file("b.json", bundle_with_bad_entry(R"({"resource":{"resourceType":"Condition"}})"))});
    EXPECT_EQ(count("condition"), 0);
    EXPECT_NE(logged().find("entry 1"), std::string::npos) << logged();
}

TEST_F(fixture, EntryWithoutResourceIsRejected) {
    ingest({file("b.json", bundle_with_bad_entry(R"({"fullUrl":"urn:uuid:z"})"))});
    EXPECT_EQ(count("condition"), 0);
    EXPECT_NE(logged().find("entry 1"), std::string::npos) << logged();
}

TEST_F(fixture, InvalidUtf8IsRejected) {
    ingest({file("b.json", bundle_with_bad_entry(
                               "{\"resource\":{\"resourceType\":\"Condition\",\"id\":\"c\xff\xfe\"}}"))});
    EXPECT_EQ(count("condition"), 0);
    EXPECT_NE(logged().find("b.json"), std::string::npos) << logged();
}

TEST_F(fixture, DeeplyNestedValueIsRejected) {
    std::string deep = R"({"resource":{"resourceType":"Condition","id":"c2","note":)";
    deep += std::string(5000, '[') + std::string(5000, ']') + "}}";
    ingest({file("b.json", bundle_with_bad_entry(deep))});
    EXPECT_EQ(count("condition"), 0);
    EXPECT_NE(logged().find("b.json"), std::string::npos) << logged();
}

TEST_F(fixture, NumberOutOfRangeIsRejected) {
    ingest({file(
        "b.json",
        bundle_with_bad_entry(
            R"({"resource":{"resourceType":"Observation","id":"o","valueQuantity":{"value":1e999}}})"))});
    EXPECT_EQ(count("condition") + count("observation"), 0);
    EXPECT_NE(logged().find("entry 1"), std::string::npos) << logged();
}

TEST_F(fixture, EmptyFileIsAnError) {
    const auto r = ingest({file("empty.json", ""), file("empty.ndjson", "")});
    EXPECT_EQ(r.problems, 2u);
    EXPECT_NE(logged().find("empty.json: empty file"), std::string::npos) << logged();
    EXPECT_NE(logged().find("empty.ndjson"), std::string::npos) << logged();
}

TEST_F(fixture, DirectoryWithNonJsonFilesNamesThemAndLoadsTheRest) {
    fs::create_directory(dir / "in");
    write_file(dir / "in" / "notes.txt", "hello");
    write_file(dir / "in" / ".DS_Store", "junk");  // hidden: not data, not an error
    write_file(dir / "in" / "b.json", good_bundle);
    const auto r = ingest({dir / "in"});
    EXPECT_EQ(r.problems, 1u);
    EXPECT_NE(logged().find("notes.txt"), std::string::npos) << logged();
    EXPECT_EQ(logged().find(".DS_Store"), std::string::npos) << logged();
    EXPECT_EQ(count("patient"), 1);
}

TEST_F(fixture, NdjsonBadLineIsNamedAndTheOtherLinesAreKept) {
    const std::string lines =
        "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n"
        "{\"resourceType\":\"Patient\",\"id\":\n"  // line 2 truncated
        "\n"                                       // blank lines are allowed
        "{\"resourceType\":\"Patient\",\"id\":\"b\"}\r\n"
        "{\"resourceType\":\"Patient\",\"id\":\"c\"}";  // no final newline
    const auto r = ingest({file("Patient.000.ndjson", lines)});
    EXPECT_EQ(r.problems, 1u);
    EXPECT_NE(logged().find("line 2"), std::string::npos) << logged();
    EXPECT_EQ(count("patient"), 3);
}

TEST_F(fixture, NdjsonBatchesCommitSeparately) {
    std::string lines;
    for (int i = 0; i < 25; ++i)
        lines += R"({"resourceType":"Patient","id":"p)" + std::to_string(i) + "\"}\n";
    headachemd::ingest::options o;
    o.ndjson_batch_lines = 10;
    const auto r = ingest({file("Patient.ndjson", lines)}, o);
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(r.per_type.at("Patient").inserted, 25u);
    EXPECT_EQ(count("patient"), 25);
}

// SQLITE_FULL for real: max_page_count caps the database file, as a full
// disk does (https://www.sqlite.org/pragma.html#pragma_max_page_count). The
// batch that does not fit rolls back whole and the error says "disk is
// full"; `ingest` turns it into exit 74 (tests/integration ingest_cli_test).
TEST_F(fixture, ADiskFullBatchRollsBackWholeAndSaysTheDiskIsFull) {
    ingest({file("b.json", good_bundle)});
    const int patients_before = count("patient");
    SQLite::Statement pages(db.sql(), "PRAGMA page_count");
    ASSERT_TRUE(pages.executeStep());
    db.sql().exec("PRAGMA max_page_count = " + std::to_string(pages.getColumn(0).getInt() + 2));
    std::string lines;
    for (int i = 0; i < 1000; ++i)
        lines +=
            R"({"resourceType":"Patient","id":"full)" + std::to_string(i) + R"(","gender":"female"})" + "\n";
    const auto input = file("Patient.ndjson", lines);
    try {
        ingest({input});
        ADD_FAILURE() << "a batch larger than the database may grow was written";
    } catch (const st::store_error& e) {
        // Our message (lib/store database.cpp), not SQLite's "database or disk is full".
        EXPECT_NE(std::string(e.what()).find("the disk is full; nothing from the failed batch was written"),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("Patient.ndjson"), std::string::npos) << e.what();
    }
    EXPECT_EQ(count("patient"), patients_before);
}

TEST_F(fixture, ARejectedBundleLeavesStoredRowsUntouched) {
    ingest({file("b.json", good_bundle)});
    SQLite::Statement before(db.sql(), "SELECT raw_hash, code FROM condition WHERE id='c1'");
    ASSERT_TRUE(before.executeStep());
    const std::string hash = before.getColumn(0).getString();
    before.reset();
    // The same condition, changed, in a Bundle that also has a broken entry.
    ingest({file("b2.json", R"({"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Condition","id":"c1","code":{"text":"changed"}}},
      {"resource":{"resourceType":"Condition"}}]})")});
    SQLite::Statement after(db.sql(), "SELECT raw_hash FROM condition WHERE id='c1'");
    ASSERT_TRUE(after.executeStep());
    EXPECT_EQ(after.getColumn(0).getString(), hash);
}

TEST_F(fixture, MedicationFilesAreReadFirstSoReferencesResolve) {
    fs::create_directory(dir / "export");
    write_file(
        dir / "export" / "MedicationRequest.000.ndjson",
        R"({"resourceType":"MedicationRequest","id":"mr1","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/m1"}})"
        "\n");
    write_file(
        dir / "export" / "Medication.000.ndjson",
        R"({"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"37418","display":"sumatriptan"}]}})"
        "\n");
    ingest({dir / "export"});
    SQLite::Statement q(db.sql(), "SELECT medication_code, medication_reference FROM medication_request");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getString(), "37418");
    EXPECT_EQ(q.getColumn(1).getString(), "Medication/m1");
}

TEST_F(fixture, MissingInputIsAProblem) {
    const auto r = ingest({dir / "does-not-exist.json"});
    EXPECT_EQ(r.problems, 1u);
    EXPECT_NE(logged().find("does-not-exist.json: no such file"), std::string::npos) << logged();
}

TEST_F(fixture, ErrorsNeverEchoPayloadValues) {
    // A name in a broken resource must not reach the log.
    ingest(
        {file("b.json", bundle_with_bad_entry(
                            R"({"resource":{"resourceType":"Patient","name":[{"family":"Zyxwvutson"}]}})"))});
    EXPECT_FALSE(logged().empty());
    EXPECT_EQ(logged().find("Zyxwvutson"), std::string::npos) << logged();
}

}  // namespace
