// terminology::memo gives exactly the answers of the functions it remembers.
#include <gtest/gtest.h>

#include "headachemd/terminology/terminology.hpp"

namespace headachemd::terminology {
namespace {

TEST(Memo, AnswersEqualTheFunctionsFirstAndSecondTime) {
    const coding_view suma{"http://www.nlm.nih.gov/research/umls/rxnorm", "313088",
                           "sumatriptan 50 MG Oral Tablet"};
    const coding_view migraine{"http://snomed.info/sct", "124171000119105",
                               "Chronic intractable migraine without aura"};
    const coding_view pain{"http://loinc.org", "72514-3", "Pain severity"};
    const coding_view botox{"http://www.ama-assn.org/go/cpt", "64615", ""};
    memo m;
    for (int round = 0; round < 2; ++round) {
        EXPECT_EQ(m.medication({&suma, 1}, "").cls, classify_medication({&suma, 1}, "").cls);
        EXPECT_EQ(m.medication({&suma, 1}, "").ingredient, "sumatriptan");
        EXPECT_EQ(m.medication({}, "topiramate 25 MG").cls, drug_class::anticonvulsant);
        EXPECT_EQ(m.condition({&migraine, 1}, ""), headache_type::chronic_migraine);
        EXPECT_EQ(m.observation({&pain, 1}, ""), instrument::pain_nrs);
        EXPECT_EQ(m.observation({}, "MIDAS total score"), instrument::midas);
        EXPECT_EQ(m.procedure({&botox, 1}, ""), procedure_kind::botulinum_toxin);
        EXPECT_TRUE(m.headache_related({&migraine, 1}, ""));
        EXPECT_FALSE(m.headache_related({}, "Annual physical"));
    }
}

TEST(Memo, KindsDoNotShareAnswers) {
    // The same input asked as a condition and as a procedure has two answers.
    const coding_view c{"http://www.ama-assn.org/go/cpt", "64615", ""};
    memo m;
    EXPECT_EQ(m.procedure({&c, 1}, ""), procedure_kind::botulinum_toxin);
    EXPECT_EQ(m.condition({&c, 1}, ""), headache_type::none);
}

TEST(Memo, TextAndCodingsAreSeparateParts) {
    // "a" as text differs from "a" as a display.
    const coding_view c{"", "", "migraine"};
    memo m;
    EXPECT_EQ(m.condition({&c, 1}, ""), classify_condition({&c, 1}, ""));
    EXPECT_EQ(m.condition({}, "migraine"), classify_condition({}, "migraine"));
    EXPECT_EQ(m.condition({}, "tension headache"), headache_type::tension_type);
}

}  // namespace
}  // namespace headachemd::terminology
