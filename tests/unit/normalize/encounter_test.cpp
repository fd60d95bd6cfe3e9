// Encounter → encounter_record.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeEncounter, ReadsClassTypePeriodReasonsAndSubject) {
    // Setup
    const std::string json = R"({"resourceType":"Encounter","id":"e1","status":"finished",
        "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"},
        "type":[{"coding":[{"system":"http://snomed.info/sct","code":"11429006","display":"Consultation"}]},
                {"coding":[{"code":"other"}]}],
        "subject":{"reference":"https://ehr.example/fhir/Patient/p-42/_history/3"},
        "period":{"start":"2013-04-04T10:00:00+02:00","end":"2013-04-04T10:30:00+02:00"},
        "reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"386661006","display":"Fever"}]}]})";
    // Run
    const auto rec = only<encounter_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.patient_ref, "p-42");  // absolute reference with _history
    EXPECT_EQ(rec.status, "finished");
    EXPECT_EQ(rec.class_code, "AMB");
    EXPECT_EQ(rec.type_code, "11429006");
    EXPECT_EQ(rec.type_display, "Consultation");
    EXPECT_EQ(rec.period_start, "2013-04-04T10:00:00+02:00");
    EXPECT_EQ(rec.period_end, "2013-04-04T10:30:00+02:00");
    EXPECT_EQ(rec.reason_codes,
              R"([{"system":"http://snomed.info/sct","code":"386661006","display":"Fever"}])");
    EXPECT_FALSE(rec.is_headache_related);
}

TEST(NormalizeEncounter, TextOnlyReasonHasNoReasonCodes) {
    // Setup
    const std::string json = R"({"resourceType":"Encounter","id":"e2","status":"finished",
        "reasonCode":[{"text":"The patient had fever peaks"}]})";
    // Run
    const auto rec = only<encounter_record>(run(json));
    // Check
    EXPECT_FALSE(rec.reason_codes);
    EXPECT_FALSE(rec.type_code);
}

// Needs the real terminology tables.
TEST(NormalizeEncounter, HeadacheReasonMakesItHeadacheRelated) {
    // Setup
    const std::string json = R"({"resourceType":"Encounter","id":"e3","status":"finished",
        "reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"37796009","display":"Migraine"}]}]})";
    // Run
    const auto rec = only<encounter_record>(run(json));
    // Check
    EXPECT_TRUE(rec.is_headache_related);
}

// Needs the real terminology tables.
TEST(NormalizeEncounter, HeadacheWordInTypeTextMakesItHeadacheRelated) {
    // Setup
    const std::string json = R"({"resourceType":"Encounter","id":"e4","status":"planned",
        "type":[{"text":"Headache clinic visit"}]})";
    // Run
    const auto rec = only<encounter_record>(run(json));
    // Check
    EXPECT_TRUE(rec.is_headache_related);
    EXPECT_EQ(rec.type_display, "Headache clinic visit");
}

}  // namespace
}  // namespace headachemd::normalize::test
