// Issue 13, classification: the drugs, routes, doses, procedures and
// negations that the analyst views got wrong, each with the exact answer.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "terminology_test_support.hpp"

namespace headachemd::terminology {
inline void PrintTo(route r, std::ostream* os) {
    *os << (r == route::unknown ? std::string_view("unknown") : to_string(r));
}
}  // namespace headachemd::terminology

namespace headachemd::terminology::test {
namespace {

constexpr auto acute = therapy_role::acute;
constexpr auto preventive = therapy_role::preventive;
constexpr auto other = therapy_role::other;

// --- New preventives ------------------------------------------------------------

struct code_case {
    std::string_view code;
    drug_class cls;
    std::string_view ingredient;
};

class NewPreventiveCode : public ::testing::TestWithParam<code_case> {};

TEST_P(NewPreventiveCode, ClassifiesIngredientRxcui) {
    // Setup
    const code_case& c = GetParam();
    const coding_view coding{rxnorm_uri, c.code, ""};
    // Run
    const medication_class got = classify_medication(one(coding), "");
    // Check
    EXPECT_EQ(got.cls, c.cls);
    EXPECT_EQ(got.role, preventive);
    EXPECT_EQ(got.ingredient, c.ingredient);
}

INSTANTIATE_TEST_SUITE_P(Issue13, NewPreventiveCode,
                         ::testing::Values(code_case{"1202", drug_class::beta_blocker, "atenolol"},
                                           code_case{"7226", drug_class::beta_blocker, "nadolol"},
                                           code_case{"72625", drug_class::snri, "duloxetine"}),
                         [](const auto& p) { return param_name(p.index, p.param.ingredient); });

struct text_case {
    std::string_view text;
    drug_class cls;
    therapy_role role;
    std::string_view ingredient;
};

class Issue13Text : public ::testing::TestWithParam<text_case> {};

TEST_P(Issue13Text, ClassifiesProductName) {
    // Setup: an unknown product code, so the name decides.
    const text_case& c = GetParam();
    const coding_view coding{rxnorm_uri, unknown_product_rxcui, c.text};
    // Run
    const medication_class got = classify_medication(one(coding), "");
    // Check
    EXPECT_EQ(got.cls, c.cls) << c.text;
    EXPECT_EQ(got.role, c.role) << c.text;
    EXPECT_EQ(got.ingredient, c.ingredient) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    NewDrugs, Issue13Text,
    ::testing::Values(text_case{"atenolol 50 MG Oral Tablet", drug_class::beta_blocker, preventive,
                                "atenolol"},
                      text_case{"nadolol 40 MG Oral Tablet", drug_class::beta_blocker, preventive, "nadolol"},
                      text_case{"duloxetine 30 MG Delayed Release Oral Capsule", drug_class::snri, preventive,
                                "duloxetine"},
                      text_case{"Tenormin 25 mg", drug_class::beta_blocker, preventive, "atenolol"},
                      text_case{"Corgard 20 mg", drug_class::beta_blocker, preventive, "nadolol"},
                      text_case{"Cymbalta 60 mg", drug_class::snri, preventive, "duloxetine"},
                      text_case{"tapentadol 50 MG Oral Tablet", drug_class::opioid, acute, "tapentadol"},
                      text_case{"butorphanol tartrate 1 MG/ACTUAT Metered Dose Nasal Spray",
                                drug_class::opioid, acute, "butorphanol"}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

// --- Exclusions: phentermine/topiramate, low-dose aspirin, cosmetic toxin ----------

INSTANTIATE_TEST_SUITE_P(
    Exclusions, Issue13Text,
    ::testing::Values(
        // Qsymia is labelled for weight management; its topiramate is no trial.
        text_case{"phentermine 7.5 MG / topiramate 46 MG 24HR Extended Release Oral Capsule",
                  drug_class::none, other, "phentermine / topiramate"},
        text_case{"Qsymia 7.5 mg/46 mg", drug_class::none, other, "phentermine / topiramate"},
        // Antiplatelet doses: 162 mg or less a unit.
        text_case{"aspirin 81 MG Delayed Release Oral Tablet", drug_class::none, other, "aspirin"},
        text_case{"Aspirin 81 MG Oral Tablet", drug_class::none, other, "aspirin"},
        text_case{"aspirin 162 MG Oral Tablet", drug_class::none, other, "aspirin"},
        text_case{"Low dose aspirin", drug_class::none, other, "aspirin"},
        // ...and the analgesic doses stay analgesics.
        text_case{"aspirin 325 MG Oral Tablet", drug_class::simple_analgesic, acute, "aspirin"},
        text_case{"aspirin 500 MG Oral Tablet", drug_class::simple_analgesic, acute, "aspirin"},
        text_case{"Botox Cosmetic 100 UNT Injection", drug_class::none, other, "onabotulinumtoxina"}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

TEST(Issue13Exclusions, PhentermineAndTopiramateCodesAreNoPreventive) {
    // Setup: one ingredient code each, as a Medication may carry them.
    const std::vector<coding_view> codings{{rxnorm_uri, "38404", "topiramate"},
                                           {rxnorm_uri, "8152", "phentermine"}};
    // Run
    const medication_class got = classify_medication(codings, "");
    // Check
    EXPECT_EQ(got.cls, drug_class::none);
    EXPECT_EQ(got.role, other);
    EXPECT_EQ(got.ingredient, "phentermine / topiramate");
}

TEST(Issue13Exclusions, AspirinCodeWithoutAStrengthStaysAnAnalgesic) {
    // Unknown strength is not assumed low.
    const coding_view c{rxnorm_uri, "1191", ""};
    const medication_class got = classify_medication(one(c), "");
    EXPECT_EQ(got.cls, drug_class::simple_analgesic);
    EXPECT_FALSE(got.strength_mg);
}

TEST(Issue13Exclusions, AspirinIngredientCodeWithLowDoseNameIsAntiplatelet) {
    // Setup: the ingredient code decides the ingredient; the strength is a
    // fact of the product named in the text (as the demo writes it).
    const coding_view c{rxnorm_uri, "1191", "aspirin"};
    // Run
    const medication_class got = classify_medication(one(c), "aspirin 81 MG Delayed Release Oral Tablet");
    // Check
    EXPECT_EQ(got.cls, drug_class::none);
    EXPECT_EQ(got.role, other);
    EXPECT_EQ(got.ingredient, "aspirin");
    EXPECT_EQ(got.strength_mg, 81.0);
    EXPECT_EQ(got.form_route, route::oral);
}

TEST(Issue13Strength, IngredientCodeTakesTheStrengthFromTheText) {
    const coding_view c{rxnorm_uri, "88014", "rizatriptan"};
    const medication_class got = classify_medication(one(c), "rizatriptan 10 MG Oral Tablet");
    EXPECT_EQ(got.cls, drug_class::triptan);
    EXPECT_EQ(got.strength_mg, 10.0);
}

// --- Opioid and butalbital content ------------------------------------------------

struct content_case {
    std::string_view text;
    drug_class cls;
    std::string_view ingredient;
    bool opioid, butalbital;
    std::optional<double> strength;
};

class Issue13Content : public ::testing::TestWithParam<content_case> {};

TEST_P(Issue13Content, FlagsOpioidAndButalbitalAndReadsTheClassifiedStrength) {
    // Setup
    const content_case& c = GetParam();
    // Run
    const medication_class got = classify_medication({}, c.text);
    // Check
    EXPECT_EQ(got.cls, c.cls);
    EXPECT_EQ(got.ingredient, c.ingredient);
    EXPECT_EQ(got.contains_opioid, c.opioid);
    EXPECT_EQ(got.contains_butalbital, c.butalbital);
    EXPECT_EQ(got.strength_mg, c.strength);
}

INSTANTIATE_TEST_SUITE_P(
    Issue13, Issue13Content,
    ::testing::Values(
        content_case{"Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet", drug_class::opioid,
                     "acetaminophen / oxycodone", true, false, 5.0},
        content_case{"HYDROcodone Bitartrate 5 MG / Acetaminophen 325 MG Oral Tablet", drug_class::opioid,
                     "acetaminophen / hydrocodone", true, false, 5.0},
        content_case{"acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", drug_class::opioid,
                     "acetaminophen / codeine", true, false, 30.0},
        content_case{"Fioricet with Codeine", drug_class::combination_analgesic,
                     "acetaminophen / butalbital / caffeine / codeine", true, true, std::nullopt},
        content_case{
            "acetaminophen 300 MG / butalbital 50 MG / caffeine 40 MG / codeine phosphate 30 MG Oral "
            "Capsule",
            drug_class::combination_analgesic, "acetaminophen / butalbital / caffeine / codeine", true, true,
            50.0},
        content_case{"butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet",
                     drug_class::combination_analgesic, "acetaminophen / butalbital / caffeine", false, true,
                     50.0},
        content_case{"tramadol hydrochloride 50 MG Oral Tablet", drug_class::opioid, "tramadol", true, false,
                     50.0},
        content_case{"butorphanol tartrate 1 MG/ACTUAT Metered Dose Nasal Spray", drug_class::opioid,
                     "butorphanol", true, false, 1.0},
        content_case{"sumatriptan 50 MG Oral Tablet", drug_class::triptan, "sumatriptan", false, false, 50.0},
        content_case{"naproxen sodium 500 MG / sumatriptan 85 MG Oral Tablet", drug_class::triptan,
                     "naproxen / sumatriptan", false, false, 85.0},
        content_case{"0.5 ML sumatriptan 12 MG/ML Auto-Injector", drug_class::triptan, "sumatriptan", false,
                     false, 6.0},
        content_case{"1 ML erenumab-aooe 70 MG/ML Auto-Injector", drug_class::cgrp_mab, "erenumab", false,
                     false, 70.0},
        // Per mL with no volume, or in units: no strength per unit.
        content_case{"erenumab-aooe 70 MG/ML Auto-Injector", drug_class::cgrp_mab, "erenumab", false, false,
                     std::nullopt},
        content_case{"onabotulinumtoxinA 100 UNT Injection", drug_class::botulinum_toxin,
                     "onabotulinumtoxina", false, false, std::nullopt},
        content_case{"Imitrex", drug_class::triptan, "sumatriptan", false, false, std::nullopt}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

// --- Routes --------------------------------------------------------------------------

struct route_case {
    std::string_view code;
    route want;
};

class RouteCode : public ::testing::TestWithParam<route_case> {};

TEST_P(RouteCode, SnomedRouteConcept) {
    const coding_view c{snomed_uri, GetParam().code, ""};
    EXPECT_EQ(classify_route(one(c), ""), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Issue13, RouteCode,
    ::testing::Values(route_case{"26643006", route::oral}, route_case{"54485002", route::ophthalmic},
                      route_case{"10547007", route::otic}, route_case{"6064005", route::topical},
                      route_case{"46713006", route::nasal}, route_case{"34206005", route::subcutaneous},
                      route_case{"78421000", route::intramuscular},
                      route_case{"47625008", route::intravenous}, route_case{"37161004", route::rectal},
                      route_case{"45890007", route::transdermal}, route_case{"999999", route::unknown}),
    [](const auto& p) { return param_name(p.index, p.param.code); });

TEST(RouteWords, DisplayAndTextWhenNoCodeIsKnown) {
    const coding_view local{"urn:local:routes", "7", "Ophthalmic"};
    EXPECT_EQ(classify_route(one(local), ""), route::ophthalmic);
    EXPECT_EQ(classify_route({}, "PO"), route::oral);
    EXPECT_EQ(classify_route({}, "by mouth"), route::oral);
    EXPECT_EQ(classify_route({}, "inhalation"), route::unknown);
}

struct form_case {
    std::string_view name;
    route want;
};

class DoseForm : public ::testing::TestWithParam<form_case> {};

TEST_P(DoseForm, RouteOfTheNamedDoseForm) {
    EXPECT_EQ(classify_medication({}, GetParam().name).form_route, GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Issue13, DoseForm,
    ::testing::Values(form_case{"timolol maleate 5 MG/ML Ophthalmic Solution", route::ophthalmic},
                      form_case{"ofloxacin 3 MG/ML Otic Solution", route::otic},
                      form_case{"diclofenac sodium 10 MG/ML Topical Gel", route::topical},
                      form_case{"sumatriptan 20 MG/ACTUAT Nasal Spray", route::nasal},
                      form_case{"0.5 ML sumatriptan 12 MG/ML Auto-Injector", route::subcutaneous},
                      form_case{"1 ML galcanezumab-gnlm 120 MG/ML Prefilled Syringe", route::subcutaneous},
                      form_case{"sumatriptan 50 MG Oral Tablet", route::oral},
                      form_case{"rizatriptan 10 MG Disintegrating Oral Tablet", route::oral},
                      form_case{"prochlorperazine 25 MG Rectal Suppository", route::rectal},
                      form_case{"fentanyl 25 MCG/HR Transdermal System", route::transdermal},
                      form_case{"ketorolac tromethamine 30 MG/ML Injectable Solution", route::unknown},
                      form_case{"Imitrex", route::unknown}),
    [](const auto& p) { return param_name(p.index, p.param.name); });

TEST(RouteExclusion, TimololIsAPreventiveOnlyByMouth) {
    // Setup: the ingredient code, given by three routes.
    const coding_view c{rxnorm_uri, "10600", ""};
    const medication_class mc = classify_medication(one(c), "");
    // Run
    const medication_class oral = for_route(mc, route::oral);
    const medication_class eye = for_route(mc, route::ophthalmic);
    const medication_class unknown = for_route(mc, route::unknown);
    // Check
    EXPECT_EQ(oral.cls, drug_class::beta_blocker);
    EXPECT_EQ(oral.role, preventive);
    EXPECT_EQ(eye.cls, drug_class::none);
    EXPECT_EQ(eye.role, other);
    EXPECT_EQ(eye.ingredient, "timolol");
    EXPECT_EQ(unknown.cls, drug_class::none);
    EXPECT_EQ(unknown.ingredient, "timolol");
}

TEST(RouteExclusion, EyeEarAndSkinFormsAreNoHeadacheDrugs) {
    // Setup
    const medication_class ketorolac_eye =
        classify_medication({}, "ketorolac tromethamine 5 MG/ML Ophthalmic Solution");
    const medication_class diclofenac_gel = classify_medication({}, "diclofenac sodium 10 MG/ML Topical Gel");
    const medication_class dexa_ear = classify_medication({}, "dexamethasone 1 MG/ML Otic Suspension");
    // Run / Check
    for (const auto* mc : {&ketorolac_eye, &diclofenac_gel, &dexa_ear}) {
        const medication_class got = for_route(*mc, mc->form_route);
        EXPECT_EQ(got.cls, drug_class::none);
        EXPECT_EQ(got.role, other);
        EXPECT_FALSE(got.ingredient.empty());
    }
}

TEST(RouteExclusion, NasalAndInjectedHeadacheDrugsStay) {
    const medication_class nasal = classify_medication({}, "sumatriptan 20 MG/ACTUAT Nasal Spray");
    const medication_class injected = classify_medication({}, "0.5 ML sumatriptan 12 MG/ML Auto-Injector");
    EXPECT_EQ(for_route(nasal, route::nasal).cls, drug_class::triptan);
    EXPECT_EQ(for_route(injected, route::subcutaneous).cls, drug_class::triptan);
}

// --- Procedures: codes first ------------------------------------------------------------

struct proc_case {
    std::string_view code;
    procedure_kind want;
};

class ProcedureSiteCode : public ::testing::TestWithParam<proc_case> {};

TEST_P(ProcedureSiteCode, CodeDecidesEvenAgainstBotoxText) {
    // Setup: every site code, under a display that says only "Botox".
    const coding_view c{cpt_uri, GetParam().code, "Botox injection"};
    // Run / Check
    EXPECT_EQ(classify_procedure(one(c), "Botox"), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(Issue13, ProcedureSiteCode,
                         ::testing::Values(proc_case{"64615", procedure_kind::botulinum_toxin},
                                           proc_case{"64611", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64612", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64616", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64617", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64642", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64643", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64644", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64645", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64646", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64647", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64650", procedure_kind::botulinum_toxin_other},
                                           proc_case{"64653", procedure_kind::botulinum_toxin_other},
                                           proc_case{"67345", procedure_kind::botulinum_toxin_other},
                                           proc_case{"46505", procedure_kind::botulinum_toxin_other},
                                           proc_case{"52287", procedure_kind::botulinum_toxin_other}),
                         [](const auto& p) { return param_name(p.index, p.param.code); });

TEST(ProcedureToxinDrugCode, J0585AloneIsTheMigraineToxin) {
    const coding_view c{hcpcs_uri, "J0585", "Injection, onabotulinumtoxinA, 1 unit"};
    EXPECT_EQ(classify_procedure(one(c), ""), procedure_kind::botulinum_toxin);
}

TEST(ProcedureToxinDrugCode, J0585WithAnotherSiteCodeIsOther) {
    const std::vector<coding_view> codings{{hcpcs_uri, "J0585", ""}, {cpt_uri, "64616", ""}};
    EXPECT_EQ(classify_procedure(codings, ""), procedure_kind::botulinum_toxin_other);
}

TEST(ProcedureToxinDrugCode, J0585With64615IsTheMigraineToxin) {
    const std::vector<coding_view> codings{{hcpcs_uri, "J0585", ""}, {cpt_uri, "64615", ""}};
    EXPECT_EQ(classify_procedure(codings, ""), procedure_kind::botulinum_toxin);
}

TEST(ProcedureToxinDrugCode, J0585NamedCosmeticIsOther) {
    const coding_view c{hcpcs_uri, "J0585", ""};
    EXPECT_EQ(classify_procedure(one(c), "Botox Cosmetic, glabellar lines"),
              procedure_kind::botulinum_toxin_other);
}

TEST(ProcedureToxinDrugCode, OtherToxinsAreNotTheMigraineProduct) {
    const coding_view c{hcpcs_uri, "J0586", ""};
    EXPECT_EQ(classify_procedure(one(c), ""), procedure_kind::botulinum_toxin_other);
}

struct proc_text_case {
    std::string_view text;
    procedure_kind want;
};

class ToxinSiteText : public ::testing::TestWithParam<proc_text_case> {};

TEST_P(ToxinSiteText, TextWhenNoCodeClassifies) {
    // Setup: a SNOMED code we do not know, so the text decides.
    const coding_view c{snomed_uri, "999999", ""};
    EXPECT_EQ(classify_procedure(one(c), GetParam().text), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Issue13, ToxinSiteText,
    ::testing::Values(
        proc_text_case{"Botox Cosmetic", procedure_kind::botulinum_toxin_other},
        proc_text_case{"Botulinum toxin injection, bladder", procedure_kind::botulinum_toxin_other},
        proc_text_case{"Botox for cervical dystonia", procedure_kind::botulinum_toxin_other},
        proc_text_case{"Xeomin injection", procedure_kind::botulinum_toxin_other},
        proc_text_case{"OnabotulinumtoxinA injection for chronic migraine", procedure_kind::botulinum_toxin},
        proc_text_case{"Botox injection", procedure_kind::botulinum_toxin}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

TEST(ProcedureHeadacheRelated, OtherSiteToxinIsNotAHeadacheProcedure) {
    const coding_view c{cpt_uri, "52287",
                        "Cystourethroscopy with injection for chemodenervation of the bladder"};
    EXPECT_FALSE(is_headache_related(one(c), ""));
    const coding_view m{cpt_uri, "64615", ""};
    EXPECT_TRUE(is_headache_related(one(m), ""));
}

// --- Conditions: negation --------------------------------------------------------------

struct dx_case {
    std::string_view text;
    headache_type want;
};

class ConditionNegation : public ::testing::TestWithParam<dx_case> {};

TEST_P(ConditionNegation, TextUnderstandsNegation) {
    EXPECT_EQ(classify_condition({}, GetParam().text), GetParam().want) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Issue13, ConditionNegation,
    ::testing::Values(dx_case{"Migraine without aura - not chronic", headache_type::migraine_without_aura},
                      dx_case{"Migraine, non-chronic", headache_type::migraine},
                      dx_case{"Episodic migraine", headache_type::migraine},
                      dx_case{"Episodic migraine with aura", headache_type::migraine_with_aura},
                      dx_case{"Migraine, no aura", headache_type::migraine_without_aura},
                      dx_case{"Migraine with aura, not chronic", headache_type::migraine_with_aura},
                      dx_case{"Chronic migraine without aura", headache_type::chronic_migraine},
                      dx_case{"Chronic migraine", headache_type::chronic_migraine},
                      dx_case{"Chronic migraine, previously episodic", headache_type::chronic_migraine},
                      dx_case{"Episodic migraine, history of chronic migraine", headache_type::migraine},
                      dx_case{"Headache, not migraine", headache_type::headache_unspecified}),
    [](const auto& p) { return param_name(p.index, p.param.text); });

struct icd_case {
    std::string_view code;
    headache_type want;
};

class ConditionCodeBeatsText : public ::testing::TestWithParam<icd_case> {};

TEST_P(ConditionCodeBeatsText, IcdCodeDecidesWhateverTheTextSays) {
    // Setup: a text that would say chronic migraine on its own.
    const coding_view c{icd10cm_uri, GetParam().code, ""};
    // Run / Check
    EXPECT_EQ(classify_condition(one(c), "Chronic migraine with aura"), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(Issue13, ConditionCodeBeatsText,
                         ::testing::Values(icd_case{"G43.709", headache_type::chronic_migraine},
                                           icd_case{"G43.E09", headache_type::chronic_migraine},
                                           icd_case{"G43.109", headache_type::migraine_with_aura},
                                           icd_case{"G43.009", headache_type::migraine_without_aura},
                                           icd_case{"G44.209", headache_type::tension_type}),
                         [](const auto& p) { return param_name(p.index, p.param.code); });

}  // namespace
}  // namespace headachemd::terminology::test
