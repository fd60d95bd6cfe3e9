// classify_observation, classify_procedure and is_headache_related.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "terminology_test_support.hpp"

namespace headachemd::terminology::test {
namespace {

// --- Observations ----------------------------------------------------------------

TEST(Observation, LoincPainSeverityIsPainNrs) {
    const coding_view c{loinc_uri, "72514-3", ""};
    EXPECT_EQ(classify_observation(one(c), ""), instrument::pain_nrs);
}

TEST(Observation, LoincPhq9TotalIsPhq9) {
    const coding_view c{loinc_uri, "44261-6", ""};
    EXPECT_EQ(classify_observation(one(c), ""), instrument::phq9);
}

TEST(Observation, LoincOidIsTheSameSystem) {
    const coding_view c{"urn:oid:2.16.840.1.113883.6.1", "44261-6", ""};
    EXPECT_EQ(classify_observation(one(c), ""), instrument::phq9);
}

TEST(Observation, CodeBeatsText) {
    // Setup: a pain code whose text names another instrument.
    const coding_view c{loinc_uri, "72514-3", "MIDAS total"};
    // Run / Check
    EXPECT_EQ(classify_observation(one(c), "HIT-6 score"), instrument::pain_nrs);
}

TEST(Observation, LoincCodeUnderAnotherSystemIsNotACode) {
    const coding_view c{snomed_uri, "72514-3", ""};
    EXPECT_EQ(classify_observation(one(c), ""), instrument::other);
}

TEST(Observation, OtherLoincCodeIsOther) {
    const coding_view c{loinc_uri, "29463-7", "Body weight"};
    EXPECT_EQ(classify_observation(one(c), "Body weight"), instrument::other);
}

TEST(Observation, LocalCodeFallsBackToDisplay) {
    const coding_view c{"http://clinic.example.org/flowsheet", "HA-MIDAS", "MIDAS score"};
    EXPECT_EQ(classify_observation(one(c), ""), instrument::midas);
}

struct instrument_case {
    std::string_view text;
    instrument expected;
};

class ObservationText : public ::testing::TestWithParam<instrument_case> {};

TEST_P(ObservationText, ClassifiesText) {
    const instrument_case& c = GetParam();
    EXPECT_EQ(classify_observation({}, c.text), c.expected) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    All, ObservationText,
    ::testing::Values(
        instrument_case{"MIDAS", instrument::midas}, instrument_case{"MIDAS total score", instrument::midas},
        instrument_case{"Migraine Disability Assessment", instrument::midas},
        instrument_case{"HIT-6", instrument::hit6}, instrument_case{"HIT6 total", instrument::hit6},
        instrument_case{"Headache Impact Test (HIT-6)", instrument::hit6},
        instrument_case{"PHQ-9 total score", instrument::phq9},
        instrument_case{"Patient Health Questionnaire-9", instrument::phq9},
        instrument_case{"Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                        instrument::pain_nrs},
        instrument_case{"Pain score", instrument::pain_nrs},
        instrument_case{"Numeric rating scale", instrument::pain_nrs},
        // Near misses.
        instrument_case{"PHQ-2 total score", instrument::other},
        instrument_case{"Patient Health Questionnaire-2", instrument::other},
        instrument_case{"Midastown visit", instrument::other},
        instrument_case{"Heart rate", instrument::other}, instrument_case{"", instrument::other}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

// --- Procedures ------------------------------------------------------------------

struct procedure_case {
    std::string_view system;
    std::string_view code;
    procedure_kind expected;
};

class ProcedureCode : public ::testing::TestWithParam<procedure_case> {};

TEST_P(ProcedureCode, ClassifiesCode) {
    const procedure_case& c = GetParam();
    const coding_view coding{c.system, c.code, ""};
    EXPECT_EQ(classify_procedure(one(coding), ""), c.expected) << c.system << " " << c.code;
}

INSTANTIATE_TEST_SUITE_P(
    All, ProcedureCode,
    ::testing::Values(procedure_case{cpt_uri, "64615", procedure_kind::botulinum_toxin},
                      procedure_case{hcpcs_uri, "J0585", procedure_kind::botulinum_toxin},
                      procedure_case{hcpcs_uri, "j0585", procedure_kind::botulinum_toxin},
                      procedure_case{cpt_uri, "64405", procedure_kind::nerve_block},
                      procedure_case{cpt_uri, "64505", procedure_kind::nerve_block},
                      procedure_case{cpt_uri, "20552", procedure_kind::trigger_point},
                      procedure_case{cpt_uri, "20553", procedure_kind::trigger_point},
                      // CPT is HCPCS Level I: either label is accepted.
                      procedure_case{hcpcs_uri, "64615", procedure_kind::botulinum_toxin},
                      procedure_case{cpt_uri, "J0585", procedure_kind::botulinum_toxin},
                      procedure_case{"urn:oid:2.16.840.1.113883.6.12", "64405", procedure_kind::nerve_block},
                      // Not ours.
                      procedure_case{cpt_uri, "44950", procedure_kind::other},     // appendectomy
                      procedure_case{hcpcs_uri, "J3032", procedure_kind::other},   // a drug, not a procedure
                      procedure_case{snomed_uri, "64615", procedure_kind::other},  // wrong system
                      procedure_case{"", "64615", procedure_kind::other},
                      procedure_case{cpt_uri, "646150", procedure_kind::other}),
    [](const auto& p) { return param_name(p.index, p.param.code); });

struct procedure_text_case {
    std::string_view text;
    procedure_kind expected;
};

class ProcedureText : public ::testing::TestWithParam<procedure_text_case> {};

TEST_P(ProcedureText, ClassifiesText) {
    const procedure_text_case& c = GetParam();
    EXPECT_EQ(classify_procedure({}, c.text), c.expected) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    All, ProcedureText,
    ::testing::Values(
        procedure_text_case{"Botox injection for chronic migraine", procedure_kind::botulinum_toxin},
        procedure_text_case{"OnabotulinumtoxinA injections (PREEMPT protocol)",
                            procedure_kind::botulinum_toxin},
        procedure_text_case{"Chemodenervation of muscles innervated by facial, trigeminal, cervical spinal "
                            "and accessory nerves, bilateral",
                            procedure_kind::botulinum_toxin},
        procedure_text_case{"Injection of botulinum toxin", procedure_kind::botulinum_toxin},
        procedure_text_case{"Greater occipital nerve block", procedure_kind::nerve_block},
        procedure_text_case{"Occipital nerve blocks, bilateral", procedure_kind::nerve_block},
        procedure_text_case{"Sphenopalatine ganglion block", procedure_kind::nerve_block},
        procedure_text_case{"Trigger point injection(s); 3 or more muscles", procedure_kind::trigger_point},
        procedure_text_case{"Trigger-point injections", procedure_kind::trigger_point},
        procedure_text_case{"Appendectomy", procedure_kind::other},
        procedure_text_case{"Nerve conduction study", procedure_kind::other},
        procedure_text_case{"", procedure_kind::other}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

TEST(ProcedurePrecedence, CodeBeatsText) {
    const coding_view c{cpt_uri, "20552", "Botox"};
    EXPECT_EQ(classify_procedure(one(c), "Greater occipital nerve block"), procedure_kind::trigger_point);
}

TEST(ProcedurePrecedence, DisplayIsReadWhenTheCodeIsUnknown) {
    const coding_view c{cpt_uri, "99999", "Sphenopalatine ganglion block"};
    EXPECT_EQ(classify_procedure(one(c), ""), procedure_kind::nerve_block);
}

// --- is_headache_related -------------------------------------------------------------

TEST(HeadacheRelated, HeadacheDiagnosisCode) {
    const coding_view c{icd10cm_uri, "G43.709", ""};
    EXPECT_TRUE(is_headache_related(one(c), ""));
}

TEST(HeadacheRelated, SnomedHeadacheCode) {
    const coding_view c{snomed_uri, "25064002", ""};
    EXPECT_TRUE(is_headache_related(one(c), ""));
}

TEST(HeadacheRelated, HeadacheProcedureCode) {
    const coding_view c{cpt_uri, "64615", ""};
    EXPECT_TRUE(is_headache_related(one(c), ""));
}

TEST(HeadacheRelated, ProcedureText) {
    EXPECT_TRUE(is_headache_related({}, "Greater occipital nerve block"));
}

TEST(HeadacheRelated, WordsInText) {
    EXPECT_TRUE(is_headache_related({}, "Follow-up for migraine"));
    EXPECT_TRUE(is_headache_related({}, "Headache clinic new patient visit"));
    EXPECT_TRUE(is_headache_related({}, "Cephalalgia"));
}

TEST(HeadacheRelated, WordsInDisplay) {
    const coding_view c{"http://ehr.example.org/visit-reason", "VR-77", "Migraines, worsening"};
    EXPECT_TRUE(is_headache_related(one(c), ""));
}

TEST(HeadacheRelated, UnrelatedEncounter) {
    const std::vector<coding_view> codings{{snomed_uri, "185349003", "Encounter for check up"},
                                           {icd10cm_uri, "I10", "Essential hypertension"},
                                           {cpt_uri, "99213", "Office visit"}};
    EXPECT_FALSE(is_headache_related(codings, "Annual physical"));
}

TEST(HeadacheRelated, EmptyIsNotRelated) { EXPECT_FALSE(is_headache_related({}, "")); }

// A trigger point injection alone is as often for back or neck pain.
TEST(HeadacheRelated, TriggerPointInjectionAloneIsNotHeadacheRelated) {
    const coding_view c{cpt_uri, "20552", "Injection(s); single or multiple trigger point(s)"};
    EXPECT_FALSE(is_headache_related(one(c), ""));
}

}  // namespace
}  // namespace headachemd::terminology::test
