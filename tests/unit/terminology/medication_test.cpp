// classify_medication: every RxCUI in TERMINOLOGY.md, every drug class by the
// ingredient name in a product display, brands, combinations, roles, and the
// code-before-text rule.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "terminology_test_support.hpp"

namespace headachemd::terminology::test {
namespace {

struct med_case {
    std::string_view input;  // an RxCUI, or a product display / text
    drug_class cls;
    therapy_role role;
    std::string_view ingredient;
};

void expect_class(const medication_class& got, const med_case& want) {
    EXPECT_EQ(got.cls, want.cls) << want.input;
    EXPECT_EQ(got.role, want.role) << want.input;
    EXPECT_EQ(got.ingredient, want.ingredient) << want.input;
}

constexpr auto acute = therapy_role::acute;
constexpr auto preventive = therapy_role::preventive;

// --- By ingredient RxCUI -------------------------------------------------------

class MedicationByRxcui : public ::testing::TestWithParam<med_case> {};

TEST_P(MedicationByRxcui, ClassifiesIngredientCode) {
    // Setup: the code alone, no display and no text.
    const med_case& c = GetParam();
    const coding_view coding{rxnorm_uri, c.input, ""};
    // Run
    const medication_class got = classify_medication(one(coding), "");
    // Check
    expect_class(got, c);
}

INSTANTIATE_TEST_SUITE_P(
    EveryListedCode, MedicationByRxcui,
    ::testing::Values(med_case{"37418", drug_class::triptan, acute, "sumatriptan"},
                      med_case{"141366", drug_class::triptan, acute, "naratriptan"},
                      med_case{"135775", drug_class::triptan, acute, "zolmitriptan"},
                      med_case{"88014", drug_class::triptan, acute, "rizatriptan"},
                      med_case{"279645", drug_class::triptan, acute, "almotriptan"},
                      med_case{"231049", drug_class::triptan, acute, "eletriptan"},
                      med_case{"228783", drug_class::triptan, acute, "frovatriptan"},
                      med_case{"2268216", drug_class::gepant, acute, "ubrogepant"},
                      med_case{"2268222", drug_class::gepant, acute, "ubrogepant"},
                      med_case{"2282307", drug_class::gepant, therapy_role::acute_and_preventive,
                               "rimegepant"},
                      med_case{"2571813", drug_class::gepant, preventive, "atogepant"},
                      med_case{"3418", drug_class::ergot, acute, "dihydroergotamine"},
                      med_case{"4025", drug_class::ergot, acute, "ergotamine"},
                      med_case{"2045628", drug_class::cgrp_mab, preventive, "erenumab"},
                      med_case{"2058846", drug_class::cgrp_mab, preventive, "galcanezumab"},
                      med_case{"2056691", drug_class::cgrp_mab, preventive, "fremanezumab"},
                      med_case{"2282660", drug_class::cgrp_mab, preventive, "eptinezumab"},
                      med_case{"2283050", drug_class::cgrp_mab, preventive, "eptinezumab"},
                      med_case{"1712", drug_class::botulinum_toxin, preventive, "botulinum toxin type a"},
                      med_case{"8787", drug_class::beta_blocker, preventive, "propranolol"},
                      med_case{"6918", drug_class::beta_blocker, preventive, "metoprolol"},
                      med_case{"10600", drug_class::beta_blocker, preventive, "timolol"},
                      med_case{"38404", drug_class::anticonvulsant, preventive, "topiramate"},
                      med_case{"11118", drug_class::anticonvulsant, preventive, "valproic acid"},
                      med_case{"266856", drug_class::anticonvulsant, preventive, "divalproex"},
                      med_case{"704", drug_class::tricyclic, preventive, "amitriptyline"},
                      med_case{"7531", drug_class::tricyclic, preventive, "nortriptyline"},
                      med_case{"39786", drug_class::snri, preventive, "venlafaxine"},
                      med_case{"214354", drug_class::arb, preventive, "candesartan"},
                      med_case{"11170", drug_class::calcium_channel, preventive, "verapamil"},
                      med_case{"4459", drug_class::calcium_channel, preventive, "flunarizine"},
                      med_case{"6719", drug_class::other_preventive, preventive, "memantine"},
                      med_case{"161", drug_class::simple_analgesic, acute, "acetaminophen"},
                      med_case{"1191", drug_class::simple_analgesic, acute, "aspirin"},
                      med_case{"5640", drug_class::nsaid, acute, "ibuprofen"},
                      med_case{"7258", drug_class::nsaid, acute, "naproxen"},
                      med_case{"3355", drug_class::nsaid, acute, "diclofenac"},
                      med_case{"35827", drug_class::nsaid, acute, "ketorolac"},
                      med_case{"140587", drug_class::nsaid, acute, "celecoxib"},
                      // Butalbital alone is still the combination-analgesic overuse class.
                      med_case{"19860", drug_class::combination_analgesic, acute, "butalbital"},
                      // Caffeine alone is not a headache drug.
                      med_case{"1886", drug_class::none, therapy_role::other, ""},
                      med_case{"2670", drug_class::opioid, acute, "codeine"},
                      med_case{"10689", drug_class::opioid, acute, "tramadol"},
                      med_case{"7804", drug_class::opioid, acute, "oxycodone"},
                      med_case{"5489", drug_class::opioid, acute, "hydrocodone"},
                      med_case{"6915", drug_class::antiemetic, acute, "metoclopramide"},
                      med_case{"8704", drug_class::antiemetic, acute, "prochlorperazine"},
                      med_case{"26225", drug_class::antiemetic, acute, "ondansetron"},
                      med_case{"3264", drug_class::steroid, acute, "dexamethasone"},
                      med_case{"8640", drug_class::steroid, acute, "prednisone"},
                      med_case{" 37418 ", drug_class::triptan, acute, "sumatriptan"}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

INSTANTIATE_TEST_SUITE_P(NotInTheTable, MedicationByRxcui,
                         ::testing::Values(med_case{"29046", drug_class::none, therapy_role::other,
                                                    ""},  // lisinopril
                                           med_case{"0", drug_class::none, therapy_role::other, ""},
                                           med_case{"", drug_class::none, therapy_role::other, ""},
                                           med_case{"37418a", drug_class::none, therapy_role::other, ""},
                                           med_case{"374180", drug_class::none, therapy_role::other, ""},
                                           med_case{"3741", drug_class::none, therapy_role::other, ""}),
                         [](const auto& p) { return param_name(p.index, p.param.input); });

// --- By ingredient name in a product display --------------------------------------

class MedicationByDisplay : public ::testing::TestWithParam<med_case> {};

TEST_P(MedicationByDisplay, ReadsIngredientNameWhenProductCodeIsUnknown) {
    // Setup: a product RxCUI the tables do not list, as real MedicationRequests carry.
    const med_case& c = GetParam();
    const coding_view coding{rxnorm_uri, unknown_product_rxcui, c.input};
    // Run
    const medication_class got = classify_medication(one(coding), "");
    // Check
    expect_class(got, c);
}

INSTANTIATE_TEST_SUITE_P(
    EveryClass, MedicationByDisplay,
    ::testing::Values(
        med_case{"sumatriptan 50 MG Oral Tablet", drug_class::triptan, acute, "sumatriptan"},
        med_case{"rizatriptan 10 MG Disintegrating Oral Tablet", drug_class::triptan, acute, "rizatriptan"},
        med_case{"zolmitriptan 5 MG Nasal Spray", drug_class::triptan, acute, "zolmitriptan"},
        med_case{"naratriptan 2.5 MG Oral Tablet", drug_class::triptan, acute, "naratriptan"},
        med_case{"almotriptan 12.5 MG Oral Tablet", drug_class::triptan, acute, "almotriptan"},
        med_case{"eletriptan 40 MG Oral Tablet", drug_class::triptan, acute, "eletriptan"},
        med_case{"frovatriptan 2.5 MG Oral Tablet", drug_class::triptan, acute, "frovatriptan"},
        med_case{"ubrogepant 100 MG Oral Tablet", drug_class::gepant, acute, "ubrogepant"},
        med_case{"rimegepant 75 MG Disintegrating Oral Tablet", drug_class::gepant,
                 therapy_role::acute_and_preventive, "rimegepant"},
        med_case{"atogepant 60 MG Oral Tablet", drug_class::gepant, preventive, "atogepant"},
        med_case{"zavegepant 10 MG/ACTUAT Nasal Spray", drug_class::gepant, acute, "zavegepant"},
        med_case{"lasmiditan 100 MG Oral Tablet", drug_class::ditan, acute, "lasmiditan"},
        med_case{"dihydroergotamine mesylate 4 MG/ML Nasal Spray", drug_class::ergot, acute,
                 "dihydroergotamine"},
        med_case{"ergotamine tartrate 2 MG Sublingual Tablet", drug_class::ergot, acute, "ergotamine"},
        med_case{"erenumab-aooe 70 MG/ML Auto-Injector", drug_class::cgrp_mab, preventive, "erenumab"},
        med_case{"galcanezumab-gnlm 120 MG/ML Prefilled Syringe", drug_class::cgrp_mab, preventive,
                 "galcanezumab"},
        med_case{"fremanezumab-vfrm 225 MG/1.5ML Prefilled Syringe", drug_class::cgrp_mab, preventive,
                 "fremanezumab"},
        med_case{"eptinezumab-jjmr 100 MG/ML Injection", drug_class::cgrp_mab, preventive, "eptinezumab"},
        med_case{"onabotulinumtoxinA 200 UNT Injection", drug_class::botulinum_toxin, preventive,
                 "onabotulinumtoxina"},
        med_case{"botulinum toxin type A 100 UNT Injection", drug_class::botulinum_toxin, preventive,
                 "botulinum toxin type a"},
        med_case{"propranolol hydrochloride 80 MG Extended Release Oral Capsule", drug_class::beta_blocker,
                 preventive, "propranolol"},
        med_case{"metoprolol succinate 50 MG Extended Release Oral Tablet", drug_class::beta_blocker,
                 preventive, "metoprolol"},
        med_case{"timolol maleate 10 MG Oral Tablet", drug_class::beta_blocker, preventive, "timolol"},
        med_case{"topiramate 25 MG Oral Tablet", drug_class::anticonvulsant, preventive, "topiramate"},
        med_case{"valproic acid 250 MG Oral Capsule", drug_class::anticonvulsant, preventive,
                 "valproic acid"},
        med_case{"divalproex sodium 500 MG Delayed Release Oral Tablet", drug_class::anticonvulsant,
                 preventive, "divalproex"},
        med_case{"amitriptyline hydrochloride 10 MG Oral Tablet", drug_class::tricyclic, preventive,
                 "amitriptyline"},
        med_case{"nortriptyline 25 MG Oral Capsule", drug_class::tricyclic, preventive, "nortriptyline"},
        med_case{"venlafaxine 75 MG Extended Release Oral Capsule", drug_class::snri, preventive,
                 "venlafaxine"},
        med_case{"candesartan cilexetil 16 MG Oral Tablet", drug_class::arb, preventive, "candesartan"},
        med_case{"verapamil hydrochloride 120 MG Oral Tablet", drug_class::calcium_channel, preventive,
                 "verapamil"},
        med_case{"flunarizine 10 MG Oral Capsule", drug_class::calcium_channel, preventive, "flunarizine"},
        med_case{"memantine hydrochloride 10 MG Oral Tablet", drug_class::other_preventive, preventive,
                 "memantine"},
        med_case{"acetaminophen 500 MG Oral Tablet", drug_class::simple_analgesic, acute, "acetaminophen"},
        med_case{"aspirin 325 MG Oral Tablet", drug_class::simple_analgesic, acute, "aspirin"},
        med_case{"ibuprofen 800 MG Oral Tablet", drug_class::nsaid, acute, "ibuprofen"},
        med_case{"naproxen sodium 550 MG Oral Tablet", drug_class::nsaid, acute, "naproxen"},
        med_case{"diclofenac potassium 50 MG Oral Powder", drug_class::nsaid, acute, "diclofenac"},
        med_case{"ketorolac tromethamine 30 MG/ML Injectable Solution", drug_class::nsaid, acute,
                 "ketorolac"},
        med_case{"celecoxib 120 MG/4.8ML Oral Solution", drug_class::nsaid, acute, "celecoxib"},
        med_case{"indomethacin 25 MG Oral Capsule", drug_class::nsaid, acute, "indomethacin"},
        med_case{"codeine sulfate 30 MG Oral Tablet", drug_class::opioid, acute, "codeine"},
        med_case{"tramadol hydrochloride 50 MG Oral Tablet", drug_class::opioid, acute, "tramadol"},
        med_case{"oxycodone hydrochloride 5 MG Oral Tablet", drug_class::opioid, acute, "oxycodone"},
        med_case{"hydrocodone bitartrate 10 MG Extended Release Oral Capsule", drug_class::opioid, acute,
                 "hydrocodone"},
        med_case{"butorphanol tartrate 10 MG/ML Nasal Spray", drug_class::opioid, acute, "butorphanol"},
        med_case{"metoclopramide 10 MG Oral Tablet", drug_class::antiemetic, acute, "metoclopramide"},
        med_case{"prochlorperazine maleate 10 MG Oral Tablet", drug_class::antiemetic, acute,
                 "prochlorperazine"},
        med_case{"ondansetron 4 MG Disintegrating Oral Tablet", drug_class::antiemetic, acute, "ondansetron"},
        med_case{"dexamethasone 4 MG Oral Tablet", drug_class::steroid, acute, "dexamethasone"},
        med_case{"prednisone 20 MG Oral Tablet", drug_class::steroid, acute, "prednisone"},
        med_case{"SUMATRIPTAN 100 MG ORAL TABLET", drug_class::triptan, acute, "sumatriptan"}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

// Whole words only: one ingredient name inside another is not a match.
INSTANTIATE_TEST_SUITE_P(
    WholeWords, MedicationByDisplay,
    ::testing::Values(
        med_case{"dihydroergotamine 1 MG/ML Injectable Solution", drug_class::ergot, acute,
                 "dihydroergotamine"},
        med_case{"prednisolone 15 MG/5ML Oral Solution", drug_class::steroid, acute, "prednisolone"},
        med_case{"methylprednisolone 4 MG Oral Tablet", drug_class::steroid, acute, "methylprednisolone"},
        med_case{"dihydrocodeine bitartrate 16 MG", drug_class::opioid, acute, "dihydrocodeine"},
        med_case{"oxymorphone 5 MG Oral Tablet", drug_class::opioid, acute, "oxymorphone"},
        med_case{"sumatriptanol 5 MG", drug_class::none, therapy_role::other, ""}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

INSTANTIATE_TEST_SUITE_P(
    NotAHeadacheDrug, MedicationByDisplay,
    ::testing::Values(med_case{"lisinopril 10 MG Oral Tablet", drug_class::none, therapy_role::other, ""},
                      med_case{"atorvastatin 20 MG Oral Tablet", drug_class::none, therapy_role::other, ""},
                      med_case{"caffeine citrate 20 MG/ML Oral Solution", drug_class::none,
                               therapy_role::other, ""},
                      med_case{"", drug_class::none, therapy_role::other, ""}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

// --- Combinations ---------------------------------------------------------------------

INSTANTIATE_TEST_SUITE_P(
    Combinations, MedicationByDisplay,
    ::testing::Values(
        med_case{"butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet",
                 drug_class::combination_analgesic, acute, "acetaminophen / butalbital / caffeine"},
        med_case{"acetaminophen 325 MG / butalbital 50 MG / caffeine 40 MG Oral Capsule",
                 drug_class::combination_analgesic, acute, "acetaminophen / butalbital / caffeine"},
        med_case{
            "acetaminophen 300 MG / butalbital 50 MG / caffeine 40 MG / codeine phosphate 30 MG Oral Capsule",
            drug_class::combination_analgesic, acute, "acetaminophen / butalbital / caffeine / codeine"},
        med_case{"aspirin 325 MG / butalbital 50 MG / caffeine 40 MG Oral Capsule",
                 drug_class::combination_analgesic, acute, "aspirin / butalbital / caffeine"},
        med_case{"acetaminophen 300 MG / butalbital 50 MG Oral Tablet", drug_class::combination_analgesic,
                 acute, "acetaminophen / butalbital"},
        // An opioid with an analgesic is an opioid (issue 13: oxycodone/APAP
        // and the like were invisible as opioids); butalbital still decides.
        med_case{"acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", drug_class::opioid, acute,
                 "acetaminophen / codeine"},
        med_case{"aspirin 250 MG / acetaminophen 250 MG / caffeine 65 MG", drug_class::combination_analgesic,
                 acute, "acetaminophen / aspirin / caffeine"},
        med_case{"acetaminophen 500 MG / caffeine 65 MG Oral Tablet", drug_class::combination_analgesic,
                 acute, "acetaminophen / caffeine"},
        med_case{"acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet", drug_class::opioid, acute,
                 "acetaminophen / oxycodone"},
        med_case{"acetaminophen 325 MG / hydrocodone bitartrate 10 MG Oral Tablet", drug_class::opioid, acute,
                 "acetaminophen / hydrocodone"},
        med_case{"acetaminophen 325 MG / tramadol hydrochloride 37.5 MG Oral Tablet", drug_class::opioid,
                 acute, "acetaminophen / tramadol"},
        med_case{"hydrocodone bitartrate 7.5 MG / ibuprofen 200 MG Oral Tablet", drug_class::opioid, acute,
                 "hydrocodone / ibuprofen"},
        // Ergot wins over the caffeine combination (ICHD-3 8.2.1, ergotamine overuse).
        med_case{"ergotamine tartrate 1 MG / caffeine 100 MG Oral Tablet", drug_class::ergot, acute,
                 "caffeine / ergotamine"},
        // ...also when an analgesic with caffeine would otherwise make it a
        // combination analgesic; not in the combination table, so the ergot.
        med_case{"ergotamine tartrate 1 MG / caffeine 100 MG / acetaminophen 250 MG", drug_class::ergot,
                 acute, "ergotamine"},
        // A triptan wins over the NSAID it is combined with.
        med_case{"naproxen sodium 500 MG / sumatriptan 85 MG Oral Tablet", drug_class::triptan, acute,
                 "naproxen / sumatriptan"},
        // Two simple analgesics without caffeine are not a combination
        // analgesic; not in the combination table, so the deciding ingredient.
        med_case{"acetaminophen 250 MG / aspirin 250 MG Oral Tablet", drug_class::simple_analgesic, acute,
                 "acetaminophen"},
        // A simple analgesic with an NSAID counts as NSAID (one overuse class).
        med_case{"ibuprofen 250 MG / acetaminophen 500 MG Oral Tablet", drug_class::nsaid, acute,
                 "acetaminophen / ibuprofen"},
        // An opioid without an analgesic stays an opioid (the antiemetic does not make a combination).
        med_case{"promethazine hydrochloride 6.25 MG / codeine phosphate 10 MG per 5 ML Oral Solution",
                 drug_class::opioid, acute, "codeine"},
        // Caffeine with an opioid but no analgesic: still the opioid.
        med_case{"caffeine 30 MG / dihydrocodeine 16 MG", drug_class::opioid, acute, "dihydrocodeine"},
        // A combination not in the table: the opioid is the ingredient.
        med_case{"aspirin 325 MG / oxymorphone 5 MG", drug_class::opioid, acute, "oxymorphone"},
        // The same ingredient twice is one ingredient.
        med_case{"sumatriptan 6 MG/0.5ML Auto-Injector [Imitrex] (sumatriptan succinate)",
                 drug_class::triptan, acute, "sumatriptan"}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

// --- Brands and synonyms ---------------------------------------------------------------

class MedicationByText : public ::testing::TestWithParam<med_case> {};

TEST_P(MedicationByText, ReadsResourceText) {
    const med_case& c = GetParam();
    expect_class(classify_medication({}, c.input), c);
}

INSTANTIATE_TEST_SUITE_P(
    Brands, MedicationByText,
    ::testing::Values(
        med_case{"Imitrex 100 mg tablet", drug_class::triptan, acute, "sumatriptan"},
        med_case{"Maxalt-MLT 10 mg", drug_class::triptan, acute, "rizatriptan"},
        med_case{"Nurtec ODT 75 mg", drug_class::gepant, therapy_role::acute_and_preventive, "rimegepant"},
        med_case{"Ubrelvy 50 mg", drug_class::gepant, acute, "ubrogepant"},
        med_case{"Qulipta 60 mg", drug_class::gepant, preventive, "atogepant"},
        med_case{"Zavzpret nasal spray", drug_class::gepant, acute, "zavegepant"},
        med_case{"Reyvow 50 mg", drug_class::ditan, acute, "lasmiditan"},
        med_case{"Aimovig 140 mg/mL autoinjector", drug_class::cgrp_mab, preventive, "erenumab"},
        med_case{"Emgality pen", drug_class::cgrp_mab, preventive, "galcanezumab"},
        med_case{"AJOVY", drug_class::cgrp_mab, preventive, "fremanezumab"},
        med_case{"Vyepti infusion", drug_class::cgrp_mab, preventive, "eptinezumab"},
        med_case{"Botox 200 units", drug_class::botulinum_toxin, preventive, "onabotulinumtoxina"},
        med_case{"Topamax 50mg", drug_class::anticonvulsant, preventive, "topiramate"},
        med_case{"Depakote ER 500", drug_class::anticonvulsant, preventive, "divalproex"},
        med_case{"Migranal nasal spray", drug_class::ergot, acute, "dihydroergotamine"},
        med_case{"DHE 45 injection", drug_class::ergot, acute, "dihydroergotamine"},
        med_case{"Fioricet capsule", drug_class::combination_analgesic, acute,
                 "acetaminophen / butalbital / caffeine"},
        med_case{"Fioricet with Codeine", drug_class::combination_analgesic, acute,
                 "acetaminophen / butalbital / caffeine / codeine"},
        med_case{"Fiorinal", drug_class::combination_analgesic, acute, "aspirin / butalbital / caffeine"},
        med_case{"Excedrin Migraine caplet", drug_class::combination_analgesic, acute,
                 "acetaminophen / aspirin / caffeine"},
        med_case{"Cafergot", drug_class::ergot, acute, "caffeine / ergotamine"},
        med_case{"Treximet 85/500", drug_class::triptan, acute, "naproxen / sumatriptan"},
        med_case{"Tylenol #3", drug_class::opioid, acute, "acetaminophen / codeine"},
        med_case{"Tylenol with codeine", drug_class::opioid, acute, "acetaminophen / codeine"},
        med_case{"Tylenol Extra Strength", drug_class::simple_analgesic, acute, "acetaminophen"},
        med_case{"Butalbital/APAP/Caffeine 50-325-40", drug_class::combination_analgesic, acute,
                 "acetaminophen / butalbital / caffeine"},
        med_case{"Paracetamol 500 mg", drug_class::simple_analgesic, acute, "acetaminophen"},
        med_case{"Reglan", drug_class::antiemetic, acute, "metoclopramide"},
        med_case{"Percocet 5/325", drug_class::opioid, acute, "acetaminophen / oxycodone"},
        // Excedrin PM is acetaminophen with diphenhydramine: plain Excedrin
        // is deliberately not a brand alias.
        med_case{"Excedrin PM", drug_class::none, therapy_role::other, ""}),
    [](const auto& p) { return param_name(p.index, p.param.input); });

// --- Codes and text together ---------------------------------------------------------------

TEST(MedicationPrecedence, CodeBeatsDisplayAndText) {
    // Setup: a sumatriptan ingredient code with a misleading display.
    const coding_view c{rxnorm_uri, "37418", "ibuprofen 200 MG Oral Tablet"};
    // Run
    const medication_class got = classify_medication(one(c), "Fioricet");
    // Check
    EXPECT_EQ(got.cls, drug_class::triptan);
    EXPECT_EQ(got.ingredient, "sumatriptan");
}

TEST(MedicationPrecedence, TextIsReadWhenNoCodeMatches) {
    const coding_view c{rxnorm_uri, unknown_product_rxcui, ""};
    const medication_class got = classify_medication(one(c), "topiramate 25 MG Oral Tablet");
    EXPECT_EQ(got.cls, drug_class::anticonvulsant);
    EXPECT_EQ(got.role, preventive);
    EXPECT_EQ(got.ingredient, "topiramate");
}

TEST(MedicationPrecedence, IngredientCodesOfOneProductCombine) {
    // Setup: a Medication with one coding per ingredient, in no particular order.
    const std::vector<coding_view> codings{{rxnorm_uri, "1886", "caffeine"},
                                           {rxnorm_uri, "19860", "butalbital"},
                                           {rxnorm_uri, "161", "acetaminophen"}};
    // Run
    const medication_class got = classify_medication(codings, "");
    // Check
    EXPECT_EQ(got.cls, drug_class::combination_analgesic);
    EXPECT_EQ(got.role, acute);
    EXPECT_EQ(got.ingredient, "acetaminophen / butalbital / caffeine");
}

TEST(MedicationPrecedence, CaffeineCodeJoinsAnIngredientNamedInText) {
    // The caffeine code alone gives no class, so the text is read and the
    // ingredients found there join it.
    const coding_view c{rxnorm_uri, "1886", ""};
    const medication_class got = classify_medication(one(c), "ergotamine 1 MG Oral Tablet");
    EXPECT_EQ(got.cls, drug_class::ergot);
    EXPECT_EQ(got.ingredient, "caffeine / ergotamine");
}

TEST(MedicationPrecedence, RxcuiUnderAnotherSystemIsNotACode) {
    const coding_view c{snomed_uri, "37418", ""};
    EXPECT_EQ(classify_medication(one(c), "").cls, drug_class::none);
}

TEST(MedicationPrecedence, RxnormOidIsTheSameSystem) {
    const coding_view c{"urn:oid:2.16.840.1.113883.6.88", "2571813", ""};
    const medication_class got = classify_medication(one(c), "");
    EXPECT_EQ(got.cls, drug_class::gepant);
    EXPECT_EQ(got.role, preventive);
}

TEST(MedicationHcpcs, J0585IsOnabotulinumtoxinA) {
    const coding_view c{hcpcs_uri, "J0585", ""};
    const medication_class got = classify_medication(one(c), "");
    EXPECT_EQ(got.cls, drug_class::botulinum_toxin);
    EXPECT_EQ(got.role, preventive);
    EXPECT_EQ(got.ingredient, "onabotulinumtoxina");
}

TEST(MedicationHcpcs, J3032IsEptinezumab) {
    const coding_view c{hcpcs_uri, "j3032", ""};
    const medication_class got = classify_medication(one(c), "");
    EXPECT_EQ(got.cls, drug_class::cgrp_mab);
    EXPECT_EQ(got.role, preventive);
    EXPECT_EQ(got.ingredient, "eptinezumab");
}

TEST(MedicationHcpcs, OtherJCodeIsNone) {
    const coding_view c{hcpcs_uri, "J1100", ""};  // dexamethasone sodium phosphate: not in our table
    EXPECT_EQ(classify_medication(one(c), "").cls, drug_class::none);
}

TEST(MedicationNegative, LisinoprilIsNoneWithOtherRoleAndNoIngredient) {
    const coding_view c{rxnorm_uri, "314076", "lisinopril 10 MG Oral Tablet"};
    const medication_class got = classify_medication(one(c), "lisinopril");
    EXPECT_EQ(got.cls, drug_class::none);
    EXPECT_EQ(got.role, therapy_role::other);
    EXPECT_EQ(got.ingredient, "");
}

TEST(MedicationText, LongTextIsReadToTheEnd) {
    // Setup: more words than the word index holds, the ingredients at the end.
    std::string text;
    for (int i = 0; i < 100; ++i) text += "take with food, ";
    text += "then butalbital/APAP/caffeine";
    // Run
    const medication_class got = classify_medication({}, text);
    // Check
    EXPECT_EQ(got.cls, drug_class::combination_analgesic);
    EXPECT_EQ(got.ingredient, "acetaminophen / butalbital / caffeine");
}

TEST(MedicationNegative, EmptyInputIsNone) {
    const medication_class got = classify_medication({}, "");
    EXPECT_EQ(got.cls, drug_class::none);
    EXPECT_EQ(got.role, therapy_role::other);
    EXPECT_TRUE(got.ingredient.empty());
}

}  // namespace
}  // namespace headachemd::terminology::test
