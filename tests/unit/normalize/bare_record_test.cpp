// A type we do not normalize becomes a bare_record (header + JSON) only when
// a materialized view reads it (options::raw_for_types); any other type is
// still counted as skipped and costs nothing (issue 16).
#include <gtest/gtest.h>

#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

const std::string allergy =
    R"({"resourceType":"AllergyIntolerance","id":"a1","meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05Z"},)"
    R"("clinicalStatus":{"coding":[{"code":"active"}]},"patient":{"reference":"Patient/p1"}})";

TEST(NormalizeBare, ATypeAViewReadsBecomesABareRecordWithItsHeaderAndJson) {
    // Run
    const result r = run(allergy, options{.raw_for_types = {"AllergyIntolerance"}});
    // Check
    ASSERT_TRUE(r.ok()) << r.problems.at(0).message;
    const auto rec = only<bare_record>(r);
    EXPECT_EQ(rec.resource_type, "AllergyIntolerance");
    EXPECT_EQ(rec.h.id, "a1");
    EXPECT_EQ(rec.h.patient_ref, "p1");
    EXPECT_EQ(rec.h.version_id, "3");
    EXPECT_EQ(rec.h.last_updated, "2026-01-02T03:04:05Z");
    EXPECT_EQ(rec.h.raw, allergy);
    EXPECT_EQ(rec.h.raw_hash, sha256(allergy));
    EXPECT_STREQ(resource_type_of(r.records.at(0)), "AllergyIntolerance");
    EXPECT_STREQ(table_name(r.records.at(0)), "bare_resource");
    EXPECT_EQ(r.skipped.count("AllergyIntolerance"), 0u);  // it is stored now
}

TEST(NormalizeBare, ATypeNoViewReadsMakesNoRecord) {
    // Run: a view reads CarePlan, not AllergyIntolerance
    const result r = run(allergy, options{.keep_raw = true, .raw_for_types = {"CarePlan"}});
    // Check
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(r.records.empty());
    EXPECT_EQ(r.skipped.at("AllergyIntolerance"), 1u);
}

TEST(NormalizeBare, SubjectNamesThePatientAndPatientWinsOverIt) {
    // Setup
    const std::string qr =
        R"({"resourceType":"QuestionnaireResponse","id":"q1","subject":{"reference":"https://x/fhir/Patient/p2"}})";
    const std::string both =
        R"({"resourceType":"QuestionnaireResponse","id":"q2","subject":{"reference":"Group/g"},"patient":{"reference":"Patient/p3"}})";
    const std::string group =
        R"({"resourceType":"QuestionnaireResponse","id":"q3","subject":{"reference":"Group/g"}})";
    const options o{.raw_for_types = {"QuestionnaireResponse"}};
    // Run / Check
    const auto r1 = only<bare_record>(run(qr, o));
    EXPECT_EQ(r1.h.patient_ref, "p2");
    EXPECT_EQ(r1.h.patient_ref_base, "https://x/fhir");
    EXPECT_EQ(only<bare_record>(run(both, o)).h.patient_ref, "p3");
    EXPECT_EQ(only<bare_record>(run(group, o)).h.patient_ref, "");
}

TEST(NormalizeBare, InABundleAUrnPatientReferenceResolvesAndABadOneIsAProblem) {
    // Setup
    const std::string json =
        R"({"resourceType":"Bundle","type":"transaction","entry":[)"
        R"({"fullUrl":"urn:uuid:11111111-1111-1111-1111-111111111111","resource":{"resourceType":"Patient","id":"pp"}},)"
        R"({"fullUrl":"urn:uuid:22222222-2222-2222-2222-222222222222","resource":{"resourceType":"AllergyIntolerance",)"
        R"("id":"a9","patient":{"reference":"urn:uuid:11111111-1111-1111-1111-111111111111"}}}]})";
    const std::string bad = R"({"resourceType":"AllergyIntolerance","id":"a8","patient":{"reference":7}})";
    const options o{.raw_for_types = {"AllergyIntolerance"}};
    // Run
    const result r = run(json, o);
    const result rb = run(bad, o);
    // Check
    ASSERT_TRUE(r.ok()) << r.problems.at(0).message;
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(std::get<bare_record>(r.records.at(1)).h.patient_ref, "pp");
    ASSERT_EQ(rb.problems.size(), 1u);
    EXPECT_NE(rb.problems[0].where.find("AllergyIntolerance/a8"), std::string::npos) << rb.problems[0].where;
    EXPECT_TRUE(rb.records.empty());
}

}  // namespace
}  // namespace headachemd::normalize::test
