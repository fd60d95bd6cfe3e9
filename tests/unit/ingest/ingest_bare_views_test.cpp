// Ingest fills a view over a type HeadacheMD does not normalize
// (issue 16): Synthea's AllergyIntolerance, from bulk NDJSON and from a
// patient's transaction Bundle. A type no view reads is still skipped and
// leaves no row anywhere.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/ingest/ingest.hpp"
#include "ingest_test_support.hpp"
#include "test_support.hpp"

namespace {

namespace st = headachemd::store;
using headachemd::test::shared_data;
using headachemd::test::write_file;

constexpr const char* allergy_view = R"json({"resourceType":"ViewDefinition","name":"allergies",
 "resource":"AllergyIntolerance","status":"active",
 "select":[{"column":[
   {"name":"allergy_id","path":"id","type":"id"},
   {"name":"clinical_status","path":"clinicalStatus.coding.code.first()","type":"code"},
   {"name":"category","path":"category.first()","type":"code"},
   {"name":"code","path":"code.coding.code.first()","type":"code"},
   {"name":"recorded","path":"recordedDate","type":"dateTime"}]}]})json";

constexpr const char* care_plan_view = R"json({"resourceType":"ViewDefinition","resource":"CarePlan",
 "status":"active","select":[{"column":[{"name":"plan_id","path":"id","type":"id"}]}]})json";

struct IngestBareViews : headachemd::test::ingest_fixture {};

TEST_F(IngestBareViews, SyntheaBulkAllergiesGiveExactRows) {
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson/AllergyIntolerance.000.ndjson");
    // Run
    const auto r = ingest({shared_data() / "synthea-bulk10-ndjson" / "AllergyIntolerance.000.ndjson"},
                          with_view("allergies", allergy_view));
    // Check: 11 allergies of two patients, as the file holds them
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(r.per_type.at("AllergyIntolerance").inserted, 11u);
    EXPECT_EQ(r.per_type.at("AllergyIntolerance").skipped, 0u);
    EXPECT_EQ(rows("SELECT category, count(*) FROM view_allergies GROUP BY category ORDER BY category"),
              (std::vector<std::string>{"environment|7", "food|2", "medication|2"}));
    EXPECT_EQ(
        rows("SELECT clinical_status, category, code, recorded, _source, _resource_type FROM view_allergies "
             "WHERE allergy_id = '1b2ce4a9-9773-f40f-6692-cb4d1283a9ca'"),
        (std::vector<std::string>{
            "active|medication|1191|1996-12-27T04:21:52-05:00|file|AllergyIntolerance"}));
    EXPECT_EQ(rows("SELECT count(DISTINCT _patient_key), count(*) FILTER (WHERE _patient_key IS NULL) "
                   "FROM view_allergies"),
              (std::vector<std::string>{"2|0"}));
    // one bookkeeping row each, keyed like the view rows
    EXPECT_EQ(rows("SELECT count(*) FROM bare_resource b JOIN view_allergies v ON v._resource_id = b.id "
                   "AND v._patient_key = b.patient_key AND b.resource_type = 'AllergyIntolerance'"),
              (std::vector<std::string>{"11"}));
    // Run again: unchanged, nothing rewritten
    const auto again = ingest({shared_data() / "synthea-bulk10-ndjson" / "AllergyIntolerance.000.ndjson"},
                              with_view("allergies", allergy_view));
    EXPECT_EQ(again.per_type.at("AllergyIntolerance").unchanged, 11u);
    EXPECT_EQ(rows("SELECT count(*) FROM view_allergies"), (std::vector<std::string>{"11"}));
}

TEST_F(IngestBareViews, ASyntheaPatientBundleKeysTheRowsLikeThePatient) {
    const char* file = "synthea-r4/patients/Kermit_Trantow_f1a650a5-737e-4fd7-828e-03c3348b9524.json";
    HEADACHEMD_REQUIRE_SHARED(file);
    // Run
    const auto r = ingest({shared_data() / file}, with_view("allergies", allergy_view));
    // Check: three allergies, their urn:uuid patient resolved to the patient's key
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(rows("SELECT code FROM view_allergies ORDER BY code"),
              (std::vector<std::string>{"300913006", "424213003", "91935009"}));
    EXPECT_EQ(rows("SELECT count(*) FROM view_allergies v JOIN patient p ON p.patient_key = v._patient_key"),
              (std::vector<std::string>{"3"}));
}

TEST_F(IngestBareViews, AnUpdatedAllergyReplacesItsRow) {
    // Setup
    const auto allergy = [](const std::string& status, const std::string& code) {
        return R"({"resourceType":"AllergyIntolerance","id":"a1","clinicalStatus":{"coding":[{"code":")" +
               status + R"("}]},"category":["food"],"code":{"coding":[{"code":")" + code +
               R"("}]},"patient":{"reference":"Patient/p1"}})" + "\n";
    };
    const auto o = with_view("allergies", allergy_view);
    write_file(dir / "AllergyIntolerance.ndjson", allergy("active", "111"));
    ingest({dir / "AllergyIntolerance.ndjson"}, o);
    // Run
    write_file(dir / "AllergyIntolerance.ndjson", allergy("resolved", "222"));
    const auto r = ingest({dir / "AllergyIntolerance.ndjson"}, o);
    // Check
    EXPECT_EQ(r.per_type.at("AllergyIntolerance").updated, 1u);
    EXPECT_EQ(rows("SELECT allergy_id, clinical_status, code FROM view_allergies"),
              (std::vector<std::string>{"a1|resolved|222"}));
}

TEST_F(IngestBareViews, ATypeNoViewReadsMakesNoBareRecord) {
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson/AllergyIntolerance.000.ndjson");
    // Run: the only view reads CarePlan
    const auto r = ingest({shared_data() / "synthea-bulk10-ndjson" / "AllergyIntolerance.000.ndjson"},
                          with_view("plans", care_plan_view));
    // Check
    EXPECT_EQ(r.per_type.at("AllergyIntolerance").skipped, 11u);
    EXPECT_EQ(r.per_type.at("AllergyIntolerance").inserted, 0u);
    EXPECT_EQ(rows("SELECT count(*) FROM bare_resource"), (std::vector<std::string>{"0"}));
    EXPECT_EQ(rows("SELECT count(*) FROM view_plans"), (std::vector<std::string>{"0"}));
}

}  // namespace
