// classify_condition: ICD-10-CM/ICD-10 prefixes, SNOMED CT concepts, the text
// fallback, and the specificity order between several codings.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "terminology_test_support.hpp"

namespace headachemd::terminology::test {
namespace {

struct code_case {
    std::string_view code;
    headache_type expected;
};

headache_type classify_one(std::string_view system, std::string_view code, std::string_view display = "") {
    const coding_view c{system, code, display};
    return classify_condition(one(c), "");
}

// --- ICD-10-CM ---------------------------------------------------------------

class Icd10CmCode : public ::testing::TestWithParam<code_case> {};

TEST_P(Icd10CmCode, ClassifiesByPrefix) {
    // Setup: no display, so only the code can decide.
    const code_case& c = GetParam();
    // Run
    const headache_type got = classify_one(icd10cm_uri, c.code);
    // Check
    EXPECT_EQ(got, c.expected) << c.code;
}

INSTANTIATE_TEST_SUITE_P(
    Migraine, Icd10CmCode,
    ::testing::Values(
        // G43.7 chronic without aura, with and without the dot, any case.
        code_case{"G43.709", headache_type::chronic_migraine},
        code_case{"G43709", headache_type::chronic_migraine},
        code_case{"g43.719", headache_type::chronic_migraine},
        code_case{"G43.701", headache_type::chronic_migraine},
        code_case{" G43.711 ", headache_type::chronic_migraine},
        // G43.E chronic with aura (October 2023): chronicity wins over aura.
        code_case{"G43.E09", headache_type::chronic_migraine},
        code_case{"G43E19", headache_type::chronic_migraine},
        code_case{"G43.E01", headache_type::chronic_migraine},
        code_case{"G43.009", headache_type::migraine_without_aura},
        code_case{"G43019", headache_type::migraine_without_aura},
        code_case{"G43.109", headache_type::migraine_with_aura},
        code_case{"G43.119", headache_type::migraine_with_aura},
        code_case{"G43.409", headache_type::hemiplegic_migraine},
        code_case{"G43.419", headache_type::hemiplegic_migraine},
        // Persistent aura without/with infarction: ICHD-3 1.4.2/1.4.3 occur
        // only in migraine with aura.
        code_case{"G43.509", headache_type::migraine_with_aura},
        code_case{"G43.609", headache_type::migraine_with_aura},
        code_case{"G43.829", headache_type::menstrual_migraine},
        code_case{"G43.821", headache_type::menstrual_migraine},
        code_case{"G43.839", headache_type::menstrual_migraine},
        code_case{"G43.831", headache_type::menstrual_migraine},
        // Other, unspecified and the episodic syndromes are plain migraine.
        code_case{"G43.809", headache_type::migraine}, code_case{"G43.909", headache_type::migraine},
        code_case{"G43.919", headache_type::migraine}, code_case{"G43.A0", headache_type::migraine},
        code_case{"G43.A1", headache_type::migraine}, code_case{"G43.B0", headache_type::migraine},
        code_case{"G43.C1", headache_type::migraine}, code_case{"G43.D0", headache_type::migraine},
        code_case{"G43", headache_type::migraine}),
    [](const auto& p) { return param_name(p.index, p.param.code); });

INSTANTIATE_TEST_SUITE_P(
    OtherHeadache, Icd10CmCode,
    ::testing::Values(
        code_case{"G44.009", headache_type::cluster}, code_case{"G44.019", headache_type::cluster},
        code_case{"G44.021", headache_type::cluster}, code_case{"G44.059", headache_type::cluster},
        code_case{"G44.209", headache_type::tension_type}, code_case{"G44.211", headache_type::tension_type},
        code_case{"G44.229", headache_type::tension_type}, code_case{"G44219", headache_type::tension_type},
        code_case{"G44.309", headache_type::post_traumatic},
        code_case{"G44.329", headache_type::post_traumatic},
        code_case{"G44.40", headache_type::medication_overuse},
        code_case{"G44.41", headache_type::medication_overuse},
        code_case{"G4441", headache_type::medication_overuse},
        // Hemicrania continua is a TAC (ICHD-3 3.4).
        code_case{"G44.51", headache_type::cluster}, code_case{"G44.52", headache_type::new_daily_persistent},
        code_case{"G44.53", headache_type::other_headache}, code_case{"G44.86", headache_type::cervicogenic},
        code_case{"G44.1", headache_type::other_headache}, code_case{"G44.81", headache_type::other_headache},
        code_case{"G44.89", headache_type::other_headache},
        code_case{"R51.9", headache_type::headache_unspecified},
        code_case{"R519", headache_type::headache_unspecified},
        code_case{"R51", headache_type::headache_unspecified},
        // Orthostatic component: a specified secondary headache.
        code_case{"R51.0", headache_type::other_headache}),
    [](const auto& p) { return param_name(p.index, p.param.code); });

INSTANTIATE_TEST_SUITE_P(
    NotHeadache, Icd10CmCode,
    ::testing::Values(code_case{"I10", headache_type::none}, code_case{"E11.9", headache_type::none},
                      code_case{"G40.909", headache_type::none}, code_case{"G45.9", headache_type::none},
                      code_case{"G4", headache_type::none}, code_case{"R52", headache_type::none},
                      code_case{"", headache_type::none},
                      code_case{"G43.70900000000000000", headache_type::none}),
    [](const auto& p) { return param_name(p.index, p.param.code); });

TEST(Icd10Who, ReadsTheSamePrefixesAsIcd10Cm) {
    EXPECT_EQ(classify_one(icd10_uri, "G43.1"), headache_type::migraine_with_aura);
    EXPECT_EQ(classify_one(icd10_uri, "G43.0"), headache_type::migraine_without_aura);
    EXPECT_EQ(classify_one(icd10_uri, "G43.2"), headache_type::migraine);  // status migrainosus
    EXPECT_EQ(classify_one(icd10_uri, "G44.2"), headache_type::tension_type);
    // WHO has drug-induced headache as the 4-character G44.4.
    EXPECT_EQ(classify_one(icd10_uri, "G44.4"), headache_type::medication_overuse);
    EXPECT_EQ(classify_one(icd10_uri, "R51"), headache_type::headache_unspecified);
}

TEST(Icd10Oid, IsTheSameSystem) {
    EXPECT_EQ(classify_one("urn:oid:2.16.840.1.113883.6.90", "G43.709"), headache_type::chronic_migraine);
}

// --- SNOMED CT -----------------------------------------------------------------

class SnomedCode : public ::testing::TestWithParam<code_case> {};

TEST_P(SnomedCode, ClassifiesConcept) {
    const code_case& c = GetParam();
    EXPECT_EQ(classify_one(snomed_uri, c.code), c.expected) << c.code;
}

INSTANTIATE_TEST_SUITE_P(EveryListedConcept, SnomedCode,
                         ::testing::Values(code_case{"25064002", headache_type::headache_unspecified},
                                           code_case{"230461009", headache_type::headache_unspecified},
                                           code_case{"37796009", headache_type::migraine},
                                           code_case{"4473006", headache_type::migraine_with_aura},
                                           code_case{"56097005", headache_type::migraine_without_aura},
                                           code_case{"23186000", headache_type::menstrual_migraine},
                                           code_case{"59292006", headache_type::hemiplegic_migraine},
                                           code_case{"124171000119105", headache_type::chronic_migraine},
                                           code_case{"431601000124105", headache_type::chronic_migraine},
                                           code_case{"398057008", headache_type::tension_type},
                                           code_case{"230470007", headache_type::tension_type},
                                           code_case{"230471006", headache_type::tension_type},
                                           code_case{"193031009", headache_type::cluster},
                                           code_case{"230472004", headache_type::cluster},
                                           code_case{"230473009", headache_type::cluster},
                                           code_case{"698803006", headache_type::medication_overuse},
                                           code_case{"54012000", headache_type::post_traumatic},
                                           code_case{"121021000119105", headache_type::new_daily_persistent},
                                           code_case{"279016001", headache_type::cervicogenic}),
                         [](const auto& p) { return param_name(p.index, p.param.code); });

INSTANTIATE_TEST_SUITE_P(NotHeadache, SnomedCode,
                         ::testing::Values(code_case{"38341003", headache_type::none},  // hypertension
                                           code_case{"0", headache_type::none},
                                           code_case{"", headache_type::none},
                                           code_case{"3718001x", headache_type::none},
                                           code_case{"99999999999999999999", headache_type::none}),
                         [](const auto& p) { return param_name(p.index, p.param.code); });

TEST(SnomedOid, IsTheSameSystem) {
    EXPECT_EQ(classify_one("urn:oid:2.16.840.1.113883.6.96", "4473006"), headache_type::migraine_with_aura);
}

// --- Text fallback ---------------------------------------------------------------

struct text_case {
    std::string_view text;
    headache_type expected;
};

class ConditionText : public ::testing::TestWithParam<text_case> {};

TEST_P(ConditionText, ClassifiesText) {
    const text_case& c = GetParam();
    EXPECT_EQ(classify_condition({}, c.text), c.expected) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    Named, ConditionText,
    ::testing::Values(text_case{"Chronic migraine", headache_type::chronic_migraine},
                      text_case{"CHRONIC MIGRAINE WITHOUT AURA", headache_type::chronic_migraine},
                      text_case{"Chronic intractable migraine without aura", headache_type::chronic_migraine},
                      text_case{"Migraine, chronic", headache_type::chronic_migraine},
                      text_case{"Transformed migraine", headache_type::chronic_migraine},
                      text_case{"Migraine with aura", headache_type::migraine_with_aura},
                      text_case{"Migraine with typical aura", headache_type::migraine_with_aura},
                      text_case{"Migraine without aura", headache_type::migraine_without_aura},
                      text_case{"Migraine without aura, not intractable, without status migrainosus",
                                headache_type::migraine_without_aura},
                      text_case{"Migraine with aura, not intractable, without status migrainosus",
                                headache_type::migraine_with_aura},
                      text_case{"Menstrual migraine", headache_type::menstrual_migraine},
                      text_case{"Menstrually related migraine", headache_type::menstrual_migraine},
                      text_case{"Hemiplegic migraine", headache_type::hemiplegic_migraine},
                      text_case{"Familial hemiplegic migraine with aura", headache_type::hemiplegic_migraine},
                      text_case{"Migraine", headache_type::migraine},
                      text_case{"migraines", headache_type::migraine},
                      text_case{"Migraine, unspecified, not intractable", headache_type::migraine},
                      text_case{"tension-type headache", headache_type::tension_type},
                      text_case{"Tension type headache", headache_type::tension_type},
                      text_case{"Tension headaches", headache_type::tension_type},
                      text_case{"Cluster headache", headache_type::cluster},
                      text_case{"Headache, cluster type", headache_type::cluster},
                      text_case{"Paroxysmal hemicrania", headache_type::cluster},
                      text_case{"Trigeminal autonomic cephalalgia", headache_type::cluster},
                      text_case{"Medication overuse headache", headache_type::medication_overuse},
                      text_case{"Medication-overuse headache", headache_type::medication_overuse},
                      text_case{"Rebound headache", headache_type::medication_overuse},
                      text_case{"Drug-induced headache", headache_type::medication_overuse},
                      text_case{"Post-traumatic headache", headache_type::post_traumatic},
                      text_case{"Post traumatic headache", headache_type::post_traumatic},
                      text_case{"Posttraumatic headache", headache_type::post_traumatic},
                      text_case{"New daily persistent headache", headache_type::new_daily_persistent},
                      text_case{"NDPH", headache_type::new_daily_persistent},
                      text_case{"Cervicogenic headache", headache_type::cervicogenic},
                      text_case{"Headache", headache_type::headache_unspecified},
                      text_case{"Recurrent headaches", headache_type::headache_unspecified},
                      text_case{"Cephalalgia", headache_type::headache_unspecified},
                      text_case{"Headache disorder", headache_type::headache_unspecified}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

INSTANTIATE_TEST_SUITE_P(NotHeadache, ConditionText,
                         ::testing::Values(text_case{"Essential hypertension", headache_type::none},
                                           text_case{"Post-traumatic stress disorder", headache_type::none},
                                           text_case{"Muscle tension", headache_type::none},
                                           text_case{"Migrainous infarction risk",
                                                     headache_type::none},  // not the word "migraine"
                                           text_case{"Hemiplegic cerebral palsy", headache_type::none},
                                           text_case{"Chronic kidney disease", headache_type::none},
                                           text_case{"Cluster of symptoms", headache_type::none},
                                           text_case{"", headache_type::none},
                                           text_case{"-- / --", headache_type::none}),
                         [](const auto& p) { return param_name(p.index, p.param.text); });

TEST(ConditionTextFallback, ReadsCodingDisplayWhenTheCodeIsUnknown) {
    // Setup: a local code the tables do not know, with a display.
    const coding_view c{"http://ehr.example.org/problems", "PL-1234", "Chronic migraine"};
    // Run / Check
    EXPECT_EQ(classify_condition(one(c), ""), headache_type::chronic_migraine);
}

TEST(ConditionTextFallback, ReadsDisplayOfAKnownSystemWithANonHeadacheCode) {
    const coding_view c{icd10cm_uri, "R68.89", "Migraine with aura"};
    EXPECT_EQ(classify_condition(one(c), ""), headache_type::migraine_with_aura);
}

TEST(ConditionTextFallback, TheMostSpecificTextWins) {
    const coding_view c{"", "", "Headache"};
    EXPECT_EQ(classify_condition(one(c), "Migraine without aura"), headache_type::migraine_without_aura);
}

TEST(ConditionCode, CodeOnTheWrongSystemIsNotACodeMatch) {
    // An ICD-10 code labelled SNOMED, and a SNOMED id labelled ICD-10-CM.
    EXPECT_EQ(classify_one(snomed_uri, "G43.709"), headache_type::none);
    EXPECT_EQ(classify_one(icd10cm_uri, "37796009"), headache_type::none);
    // No system at all: the code is not read.
    EXPECT_EQ(classify_one("", "G43.709"), headache_type::none);
}

// --- Precedence and specificity ------------------------------------------------------

TEST(ConditionPrecedence, CodeBeatsText) {
    // Setup: the code says unspecified migraine, the words say chronic.
    const coding_view c{icd10cm_uri, "G43.909", "Chronic migraine"};
    // Run
    const headache_type got = classify_condition(one(c), "Chronic migraine without aura");
    // Check
    EXPECT_EQ(got, headache_type::migraine);
}

TEST(ConditionPrecedence, ChronicBeatsEveryOtherCode) {
    const std::vector<coding_view> codings{{icd10cm_uri, "G43.109", ""},
                                           {snomed_uri, "4473006", ""},
                                           {icd10cm_uri, "G43.709", ""},
                                           {icd10cm_uri, "R51.9", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::chronic_migraine);
}

TEST(ConditionPrecedence, NamedTypeBeatsMigraine) {
    const std::vector<coding_view> codings{{snomed_uri, "37796009", ""}, {snomed_uri, "4473006", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::migraine_with_aura);
}

TEST(ConditionPrecedence, MigraineBeatsOtherHeadache) {
    const std::vector<coding_view> codings{{icd10cm_uri, "G44.1", ""}, {icd10cm_uri, "G43.909", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::migraine);
}

TEST(ConditionPrecedence, OtherHeadacheBeatsUnspecified) {
    const std::vector<coding_view> codings{{icd10cm_uri, "R51.9", ""}, {icd10cm_uri, "G44.1", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::other_headache);
}

TEST(ConditionPrecedence, TiedNamedTypesKeepTheFirst) {
    const std::vector<coding_view> codings{{icd10cm_uri, "G44.209", ""}, {snomed_uri, "193031009", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::tension_type);
}

TEST(ConditionPrecedence, NonHeadacheCodesDoNotHideAHeadacheCode) {
    const std::vector<coding_view> codings{{icd10cm_uri, "I10", "Essential hypertension"},
                                           {snomed_uri, "56097005", ""}};
    EXPECT_EQ(classify_condition(codings, ""), headache_type::migraine_without_aura);
}

TEST(ConditionPrecedence, NoCodesAndNoWordsIsNone) {
    const coding_view c{icd10cm_uri, "I10", "Essential hypertension"};
    EXPECT_EQ(classify_condition(one(c), "Essential hypertension"), headache_type::none);
}

}  // namespace
}  // namespace headachemd::terminology::test
