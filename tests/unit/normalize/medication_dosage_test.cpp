// Schema 5 medication_request facts (issue 13): route, opioid/butalbital
// content, strength, and the most units a day an order allows, from small
// MedicationRequests written the ways clinics write them.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

// A MedicationRequest for `medication` (a medicationCodeableConcept) with
// `dosage` as dosageInstruction[0] (JSON object text, or empty for none).
std::string request(std::string_view medication, std::string_view dosage) {
    std::string json = R"({"resourceType":"MedicationRequest","id":"mr","status":"active","intent":"order",)";
    json += R"("medicationCodeableConcept":)";
    json += medication;
    if (!dosage.empty()) {
        json += R"(,"dosageInstruction":[)";
        json += dosage;
        json += "]";
    }
    json +=
        R"(,"dispenseRequest":{"quantity":{"value":9,"unit":"tablet"}},"subject":{"reference":"Patient/p1"}})";
    return json;
}

constexpr std::string_view sumatriptan_50 =
    R"({"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"313088","display":"sumatriptan 50 MG Oral Tablet"}]})";

TEST(NormalizeDosage, AsNeededEveryTwoHoursOneTabletIsTwelveUnitsADay) {
    // Setup: "1 tablet every 2 hours as needed".
    const std::string json =
        request(sumatriptan_50, R"({"asNeededBoolean":true,"timing":{"repeat":{"period":2,"periodUnit":"h"}},
            "doseAndRate":[{"doseQuantity":{"value":1,"unit":"tablet"}}]})");
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.drug_class, "triptan");
    EXPECT_EQ(rec.route, "oral");  // from the dose form: no Dosage.route
    EXPECT_EQ(rec.strength_mg, 50.0);
    EXPECT_EQ(rec.dose_quantity, 1.0);
    EXPECT_EQ(rec.max_units_per_day, 12.0);
    EXPECT_FALSE(rec.contains_opioid);
    EXPECT_FALSE(rec.contains_butalbital);
}

TEST(NormalizeDosage, MaxDosePerPeriodTwoPerDayIsTwo) {
    // Setup: the same every-2-hours order, capped at 2 tablets a day.
    const std::string json = request(sumatriptan_50, R"({"asNeededBoolean":true,
            "timing":{"repeat":{"period":2,"periodUnit":"h"}},
            "doseAndRate":[{"doseQuantity":{"value":1,"unit":"tablet"}}],
            "maxDosePerPeriod":{"numerator":{"value":2,"unit":"tablet"},
                                "denominator":{"value":1,"unit":"day","system":"http://unitsofmeasure.org","code":"d"}}})");
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.max_units_per_day, 2.0);
}

TEST(NormalizeDosage, MaxDosePerPeriodAloneNeedsNoTiming) {
    const std::string json =
        request(sumatriptan_50,
                R"({"maxDosePerPeriod":{"numerator":{"value":4},"denominator":{"value":2,"code":"d"}}})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.max_units_per_day, 2.0);
}

TEST(NormalizeDosage, MilligramsBecomeUnitsThroughTheStrength) {
    // Setup: "50 mg per dose, at most 200 mg in 24 hours" of 50 mg tablets.
    const std::string json = request(sumatriptan_50, R"({"asNeededBoolean":true,
            "doseAndRate":[{"doseQuantity":{"value":50,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}],
            "maxDosePerPeriod":{"numerator":{"value":200,"code":"mg"},"denominator":{"value":24,"code":"h"}}})");
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.dose_quantity, 1.0);
    EXPECT_EQ(rec.max_units_per_day, 4.0);
}

TEST(NormalizeDosage, MilligramsWithoutAStrengthAreUnknownUnits) {
    const std::string json = request(R"({"text":"Imitrex"})", R"({"asNeededBoolean":true,
            "timing":{"repeat":{"period":2,"periodUnit":"h"}},
            "doseAndRate":[{"doseQuantity":{"value":50,"code":"mg"}}],
            "maxDosePerPeriod":{"numerator":{"value":200,"code":"mg"},"denominator":{"value":1,"code":"d"}}})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.drug_class, "triptan");
    EXPECT_FALSE(rec.strength_mg);
    EXPECT_FALSE(rec.dose_quantity);
    EXPECT_FALSE(rec.max_units_per_day);
}

TEST(NormalizeDosage, NoTimingAndNoMaximumIsNull) {
    const std::string json =
        request(sumatriptan_50, R"({"asNeededBoolean":true,"doseAndRate":[{"doseQuantity":{"value":1}}]})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.dose_quantity, 1.0);
    EXPECT_FALSE(rec.max_units_per_day);
}

TEST(NormalizeDosage, NoDosageAtAllIsNull) {
    const auto rec = only<medication_request_record>(run(request(sumatriptan_50, "")));
    EXPECT_FALSE(rec.max_units_per_day);
    EXPECT_FALSE(rec.dose_quantity);
    EXPECT_EQ(rec.route, "oral");
    EXPECT_EQ(rec.strength_mg, 50.0);
}

TEST(NormalizeDosage, AsNeededTimingWithoutADoseIsNull) {
    // Nothing is assumed: no dose, no daily maximum.
    const std::string json = request(
        sumatriptan_50, R"({"asNeededBoolean":true,"timing":{"repeat":{"period":2,"periodUnit":"h"}}})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_FALSE(rec.max_units_per_day);
}

TEST(NormalizeDosage, ZeroOrNegativeDoseIsUnknown) {
    // What a server sends is data: a dose of 0 or -1 tablets is no dose.
    const std::string zero = request(sumatriptan_50, R"({"asNeededBoolean":true,
            "timing":{"repeat":{"period":2,"periodUnit":"h"}},"doseAndRate":[{"doseQuantity":{"value":0}}]})");
    const std::string negative = request(sumatriptan_50, R"({"asNeededBoolean":true,
            "maxDosePerPeriod":{"numerator":{"value":-2},"denominator":{"value":1,"code":"d"}},
            "doseAndRate":[{"doseQuantity":{"value":-1}}]})");
    const auto a = only<medication_request_record>(run(zero));
    const auto b = only<medication_request_record>(run(negative));
    EXPECT_FALSE(a.dose_quantity);
    EXPECT_FALSE(a.max_units_per_day);
    EXPECT_FALSE(b.dose_quantity);
    EXPECT_FALSE(b.max_units_per_day);
}

TEST(NormalizeDosage, ScheduledTimingIsNoMaximum) {
    // A scheduled preventive: the timing is a schedule, not an as-needed cap.
    const std::string json = request(
        R"({"text":"topiramate 25 MG Oral Tablet"})",
        R"({"timing":{"repeat":{"frequency":2,"period":1,"periodUnit":"d"}},"doseAndRate":[{"doseQuantity":{"value":1}}]})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.doses_per_day, 2.0);
    EXPECT_FALSE(rec.max_units_per_day);
}

TEST(NormalizeDosage, RangeOfDosesAndIntervalsTakesTheMost) {
    // Setup: "1-2 tablets every 4-6 hours as needed": 6 times a day, 2 each.
    const std::string json =
        request(R"({"text":"acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet"})",
                R"({"asNeededBoolean":true,
            "timing":{"repeat":{"frequency":1,"period":4,"periodMax":6,"periodUnit":"h"}},
            "doseAndRate":[{"doseRange":{"low":{"value":1},"high":{"value":2}}}]})");
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.drug_class, "opioid");
    EXPECT_EQ(rec.ingredient, "acetaminophen / oxycodone");
    EXPECT_TRUE(rec.contains_opioid);
    EXPECT_FALSE(rec.contains_butalbital);
    EXPECT_EQ(rec.strength_mg, 5.0);
    EXPECT_EQ(rec.max_units_per_day, 12.0);
}

TEST(NormalizeDosage, FrequencyMaxCounts) {
    // "1 to 2 times every 4 hours": at most twice per 4 hours, 12 a day.
    const std::string json = request(sumatriptan_50, R"({"asNeededBoolean":true,
            "timing":{"repeat":{"frequency":1,"frequencyMax":2,"period":4,"periodUnit":"h"}},
            "doseAndRate":[{"doseQuantity":{"value":1}}]})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.max_units_per_day, 12.0);
}

TEST(NormalizeDosage, ButalbitalCombinationEveryFourHours) {
    const std::string json =
        request(R"({"text":"butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet"})",
                R"({"asNeededBoolean":true,"timing":{"repeat":{"frequency":1,"period":4,"periodUnit":"h"}},
            "doseAndRate":[{"doseQuantity":{"value":1}}]})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.drug_class, "combination_analgesic");
    EXPECT_TRUE(rec.contains_butalbital);
    EXPECT_FALSE(rec.contains_opioid);
    EXPECT_EQ(rec.strength_mg, 50.0);
    EXPECT_EQ(rec.max_units_per_day, 6.0);
}

TEST(NormalizeDosage, FioricetWithCodeineContainsBoth) {
    const auto rec = only<medication_request_record>(run(request(R"({"text":"Fioricet with Codeine"})", "")));
    EXPECT_EQ(rec.drug_class, "combination_analgesic");
    EXPECT_TRUE(rec.contains_butalbital);
    EXPECT_TRUE(rec.contains_opioid);
}

constexpr std::string_view timolol_code =
    R"({"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"10600","display":"timolol"}]})";

TEST(NormalizeDosage, TimololEyeDropsByRouteCodeAreNoPreventive) {
    // Setup: the ingredient code, given in the eye (SNOMED CT 54485002).
    const std::string json = request(
        timolol_code,
        R"({"route":{"coding":[{"system":"http://snomed.info/sct","code":"54485002","display":"Ophthalmic route"}]}})");
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.route, "ophthalmic");
    EXPECT_FALSE(rec.drug_class);
    EXPECT_EQ(rec.therapy_role, "other");
    EXPECT_EQ(rec.ingredient, "timolol");
}

TEST(NormalizeDosage, OralTimololIsABetaBlocker) {
    const std::string json = request(
        timolol_code,
        R"({"route":{"coding":[{"system":"http://snomed.info/sct","code":"26643006","display":"Oral route"}]}})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.route, "oral");
    EXPECT_EQ(rec.drug_class, "beta_blocker");
    EXPECT_EQ(rec.therapy_role, "preventive");
}

TEST(NormalizeDosage, TimololOphthalmicSolutionByNameIsNoPreventive) {
    const auto rec = only<medication_request_record>(
        run(request(R"({"text":"timolol maleate 5 MG/ML Ophthalmic Solution"})", "")));
    EXPECT_EQ(rec.route, "ophthalmic");
    EXPECT_FALSE(rec.drug_class);
    EXPECT_EQ(rec.ingredient, "timolol");
    EXPECT_FALSE(rec.strength_mg);
}

TEST(NormalizeDosage, RouteCodeBeatsTheDoseForm) {
    // A nasal route code on a product named as a tablet: the order's route.
    const std::string json = request(
        sumatriptan_50, R"({"route":{"coding":[{"system":"http://snomed.info/sct","code":"46713006"}]}})");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_EQ(rec.route, "nasal");
    EXPECT_EQ(rec.drug_class, "triptan");
}

TEST(NormalizeDosage, LowDoseAspirinIsNoAnalgesic) {
    const std::string json = request(
        R"({"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"243670","display":"Aspirin 81 MG Oral Tablet"}]})",
        "");
    const auto rec = only<medication_request_record>(run(json));
    EXPECT_FALSE(rec.drug_class);
    EXPECT_EQ(rec.therapy_role, "other");
    EXPECT_EQ(rec.ingredient, "aspirin");
    EXPECT_EQ(rec.strength_mg, 81.0);
}

TEST(NormalizeDosage, ReferencedMedicationResolvedLaterStillConvertsMilligrams) {
    // Setup: the Medication comes after the request in the Bundle, so the
    // strength is known only when the document layer resolves it.
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[
        {"fullUrl":"https://ehr.example/fhir/MedicationRequest/a","resource":{"resourceType":"MedicationRequest","id":"a",
            "status":"active","intent":"order","medicationReference":{"reference":"Medication/riza"},
            "dosageInstruction":[{"asNeededBoolean":true,"timing":{"repeat":{"period":2,"periodUnit":"h"}},
                "doseAndRate":[{"doseQuantity":{"value":10,"code":"mg"}}]}]}},
        {"fullUrl":"https://ehr.example/fhir/Medication/riza","resource":{"resourceType":"Medication","id":"riza",
            "code":{"text":"rizatriptan 10 MG Disintegrating Oral Tablet"}}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    const auto mrs = records_of<medication_request_record>(r);
    ASSERT_EQ(mrs.size(), 1u);
    EXPECT_EQ(mrs[0].drug_class, "triptan");
    EXPECT_EQ(mrs[0].strength_mg, 10.0);
    EXPECT_EQ(mrs[0].route, "oral");
    EXPECT_EQ(mrs[0].dose_quantity, 1.0);
    EXPECT_EQ(mrs[0].max_units_per_day, 12.0);
}

}  // namespace
}  // namespace headachemd::normalize::test
