// Condition → condition_record, with the headache type from terminology.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeCondition, ReadsStatusesCategoryDatesAndSubject) {
    // Setup
    const std::string json = R"({"resourceType":"Condition","id":"c1",
        "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
        "verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},
        "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]},
                    {"coding":[{"code":"encounter-diagnosis"}]}],
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"39065001","display":"Burn of ear"}],"text":"Burnt Ear"},
        "subject":{"reference":"Patient/pat-9"},
        "onsetDateTime":"2012-05-24","abatementString":"around April 9, 2013","recordedDate":"2013-04-04"})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.id, "c1");
    EXPECT_EQ(rec.h.patient_ref, "pat-9");
    EXPECT_EQ(rec.clinical_status, "active");
    EXPECT_EQ(rec.verification_status, "confirmed");
    EXPECT_EQ(rec.category, "problem-list-item");  // the first category
    EXPECT_EQ(rec.code_system, "http://snomed.info/sct");
    EXPECT_EQ(rec.code, "39065001");
    EXPECT_EQ(rec.code_display, "Burn of ear");
    EXPECT_EQ(rec.code_text, "Burnt Ear");
    EXPECT_EQ(rec.onset, "2012-05-24");
    EXPECT_EQ(rec.abatement, "around April 9, 2013");
    EXPECT_EQ(rec.recorded_date, "2013-04-04");
}

TEST(NormalizeCondition, AnAbsoluteSubjectKeepsItsBaseForTheEngineToCompare) {
    // Setup: FHIR R4 §2.3.0: the base of an absolute reference says which
    // server's patient it is (issue 12, 10d); a relative one has none.
    const std::string absolute = R"({"resourceType":"Condition","id":"c1",
        "subject":{"reference":"https://other.example/fhir/r4/Patient/pat-9/_history/2"}})";
    const std::string relative =
        R"({"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/pat-9"}})";
    // Run
    const auto a = only<condition_record>(run(absolute));
    const auto r = only<condition_record>(run(relative));
    // Check
    EXPECT_EQ(a.h.patient_ref, "pat-9");
    EXPECT_EQ(a.h.patient_ref_base, "https://other.example/fhir/r4");
    EXPECT_EQ(r.h.patient_ref, "pat-9");
    EXPECT_EQ(r.h.patient_ref_base, "");
}

TEST(NormalizeCondition, OnsetAndAbatementPeriodsUseTheirStart) {
    // Setup
    const std::string json = R"({"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p"},
        "onsetPeriod":{"start":"2019-01","end":"2019-02"},"abatementPeriod":{"start":"2020-06-01"}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_EQ(rec.onset, "2019-01");  // partial dates are kept as sent
    EXPECT_EQ(rec.abatement, "2020-06-01");
}

TEST(NormalizeCondition, NonHeadacheConditionHasNullHeadacheTypeAndFirstCoding) {
    // Setup
    const std::string json = R"({"resourceType":"Condition","id":"c3",
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"386661006","display":"Fever"},
                          {"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"R50.9"}]}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_FALSE(rec.headache_type);
    EXPECT_EQ(rec.code, "386661006");
    EXPECT_TRUE(rec.h.patient_ref.empty());  // no subject
}

// Needs the real terminology tables.
TEST(NormalizeCondition, ClassifiesSyntheaChronicMigraine) {
    // Setup
    const std::string json = R"({"resourceType":"Condition","id":"c4","subject":{"reference":"Patient/p"},
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"124171000119105",
                           "display":"Chronic intractable migraine without aura"}],
                "text":"Chronic intractable migraine without aura"}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_EQ(rec.headache_type, "chronic_migraine");
    EXPECT_EQ(rec.code, "124171000119105");
}

// Needs the real terminology tables.
TEST(NormalizeCondition, CodeColumnsShowTheCodingThatClassified) {
    // Setup: a local code first, then the ICD-10-CM code that classifies.
    const std::string json = R"({"resourceType":"Condition","id":"c5",
        "code":{"coding":[{"system":"urn:local:dx","code":"HA-17","display":"Head pain clinic code"},
                          {"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"G43.109",
                           "display":"Migraine with aura, not intractable, without status migrainosus"}]}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_EQ(rec.headache_type, "migraine_with_aura");
    EXPECT_EQ(rec.code_system, "http://hl7.org/fhir/sid/icd-10-cm");
    EXPECT_EQ(rec.code, "G43.109");
}

// Needs the real terminology tables.
TEST(NormalizeCondition, MostSpecificCodingWinsAmongSeveral) {
    // Setup: plain migraine and chronic migraine in one concept.
    const std::string json = R"({"resourceType":"Condition","id":"c6",
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"37796009","display":"Migraine"},
                          {"system":"http://snomed.info/sct","code":"124171000119105"}]}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_EQ(rec.headache_type, "chronic_migraine");
    EXPECT_EQ(rec.code, "124171000119105");
}

TEST(NormalizeCondition, GroupSubjectGivesNoPatient) {
    // Setup
    const std::string json = R"({"resourceType":"Condition","id":"c7","subject":{"reference":"Group/g1"}})";
    // Run
    const auto rec = only<condition_record>(run(json));
    // Check
    EXPECT_TRUE(rec.h.patient_ref.empty());
}

}  // namespace
}  // namespace headachemd::normalize::test
