// NDJSON lines (FHIR Bulk Data): one resource per line, problems by line.
#include <fstream>

#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeLine, LinesAppendToOneResult) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(n, R"({"resourceType":"Patient","id":"p1","gender":"male"})", 1, out);
    run_line(n, R"({"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}})", 2, out);
    run_line(n, R"({"resourceType":"Organization","id":"o1","name":"x"})", 3, out);
    // Check
    EXPECT_TRUE(out.ok()) << problems_text(out);
    ASSERT_EQ(out.records.size(), 2u);
    EXPECT_EQ(header_of(out.records[1]).patient_ref, "p1");
    EXPECT_EQ(out.read.at("Organization"), 1u);
    EXPECT_EQ(out.skipped.at("Organization"), 1u);
}

TEST(NormalizeLine, BadLineIsLocatedByLineAndOthersStillCount) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(n, R"({"resourceType":"Patient","id":"p1"})", 1, out);
    run_line(n, R"({"resourceType":"Patient","id":"p2",)", 2, out);
    run_line(n, R"({"resourceType":"Observation","id":"o","status":"final","valueQuantity":{"value":"7"}})",
             3, out);
    run_line(n, R"({"resourceType":"Patient","id":"p4"})", 4, out);
    // Check
    ASSERT_EQ(out.problems.size(), 2u) << problems_text(out);
    EXPECT_EQ(out.problems[0].where, "line 2");
    EXPECT_EQ(out.problems[1].where, "line 3 (Observation/o)");
    EXPECT_EQ(out.problems[1].message, "valueQuantity.value: expected a number, found a string");
    EXPECT_EQ(out.records.size(), 2u);
    EXPECT_FALSE(out.ok());
}

TEST(NormalizeLine, BundleLineIsASkippedType) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(
        n,
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"x"}}]})",
        1, out);
    // Check
    EXPECT_TRUE(out.ok()) << problems_text(out);
    EXPECT_TRUE(out.records.empty());
    EXPECT_EQ(out.skipped.at("Bundle"), 1u);
}

TEST(NormalizeLine, BlankLineIsIgnored) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(n, "   \r", 5, out);
    // Check
    EXPECT_TRUE(out.ok());
    EXPECT_TRUE(out.records.empty());
    EXPECT_TRUE(out.read.empty());
}

TEST(NormalizeLine, LineOverTheSizeLimit) {
    // Setup
    normalizer n(options{.max_resource_bytes = 50});
    result out;
    // Run
    run_line(n, R"({"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1990-01-01"})", 9, out);
    // Check
    ASSERT_EQ(out.problems.size(), 1u);
    EXPECT_EQ(out.problems[0].where, "line 9");
    EXPECT_TRUE(contains(out.problems[0].message, "over the 50-byte limit")) << out.problems[0].message;
}

TEST(NormalizeLine, DeepLineAndUnknownTypeAndNotAnObject) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(n, R"({"resourceType":"Patient","id":"p","x":)" + nested_arrays(10000) + "}", 1, out);
    run_line(n, R"({"resourceType":"Foo","id":"1"})", 2, out);
    run_line(n, "[1]", 3, out);
    // Check
    ASSERT_EQ(out.problems.size(), 3u) << problems_text(out);
    EXPECT_EQ(out.problems[0].where, "line 1 (Patient)");
    EXPECT_TRUE(contains(out.problems[0].message, "nested deeper than 256 levels"))
        << out.problems[0].message;
    EXPECT_EQ(out.problems[1].where, "line 2");
    EXPECT_TRUE(contains(out.problems[1].message, "unknown resourceType \"Foo\"")) << out.problems[1].message;
    EXPECT_EQ(out.problems[2].where, "line 3");
}

TEST(NormalizeLine, InvalidUtf8OnALine) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(n, "{\"resourceType\":\"Patient\",\"id\":\"\xC3\x28\"}", 4, out);
    // Check
    ASSERT_EQ(out.problems.size(), 1u);
    EXPECT_EQ(out.problems[0].where, "line 4");
    EXPECT_EQ(out.problems[0].message, "invalid UTF-8 (FHIR JSON must be UTF-8) at byte offset 32");
}

// The class part needs the real terminology tables.
TEST(NormalizeLine, MedicationFromAnEarlierLineResolves) {
    // Setup
    normalizer n;
    result out;
    // Run
    run_line(
        n,
        R"({"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"8787","display":"propranolol"}]}})",
        1, out);
    run_line(
        n,
        R"({"resourceType":"MedicationRequest","id":"r1","status":"active","intent":"order","medicationReference":{"reference":"Medication/m1"},"subject":{"reference":"urn:uuid:0f0f0f0f-0000-4000-8000-000000000000"}})",
        2, out);
    // Check
    const auto rec = only<medication_request_record>(out);
    EXPECT_EQ(rec.medication_code, "8787");
    EXPECT_EQ(rec.drug_class, "beta_blocker");
    EXPECT_EQ(rec.h.patient_ref, "0f0f0f0f-0000-4000-8000-000000000000");  // no Bundle: the uuid stays
}

TEST(NormalizeLine, SyntheaBulkExportLinesNormalizeCleanly) {
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson");
    // Setup
    const auto dir = headachemd::test::shared_data() / "synthea-bulk10-ndjson";
    normalizer n;
    std::size_t files = 0, lines = 0, records = 0;
    for (const char* name : {"Patient.000.ndjson", "Condition.000.ndjson", "Encounter.000.ndjson",
                             "MedicationRequest.000.ndjson", "Procedure.000.ndjson", "Location.000.ndjson"}) {
        if (!std::filesystem::exists(dir / name)) continue;
        ++files;
        std::ifstream in(dir / name, std::ios::binary);
        std::string text;
        std::size_t line_no = 0;
        result out;
        // Run
        while (std::getline(in, text)) {
            ++line_no;
            ++lines;
            run_line(n, text, line_no, out);
        }
        // Check
        EXPECT_TRUE(out.ok()) << name << "\n" << problems_text(out);
        records += out.records.size();
    }
    ASSERT_GT(files, 0u);
    EXPECT_GT(records, 1000u) << lines << " lines";
}

}  // namespace
}  // namespace headachemd::normalize::test
