// MedicationRequest → medication_request_record: the medication (inline,
// contained, or by reference into the document or earlier input), its
// classes, and the dose, schedule and supply.
#include <cmath>

#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

constexpr std::string_view rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm";

// Needs the real terminology tables.
TEST(NormalizeMedicationRequest, ClassifiesInlineSumatriptanAndPrefersRxNorm) {
    // Setup: an NDC coding first, the RxNorm coding second.
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr1","status":"active","intent":"order",
        "medicationCodeableConcept":{"coding":[
            {"system":"http://hl7.org/fhir/sid/ndc","code":"0173-0735-00","display":"Imitrex 50mg"},
            {"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"314107","display":"sumatriptan 50 MG Oral Tablet"}],
            "text":"sumatriptan 50 MG Oral Tablet"},
        "subject":{"reference":"Patient/p1"},"authoredOn":"2023-04-05"})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.patient_ref, "p1");
    EXPECT_EQ(rec.status, "active");
    EXPECT_EQ(rec.intent, "order");
    EXPECT_EQ(rec.authored_on, "2023-04-05");
    EXPECT_EQ(rec.medication_system, rxnorm);
    EXPECT_EQ(rec.medication_code, "314107");
    EXPECT_EQ(rec.medication_display, "sumatriptan 50 MG Oral Tablet");
    EXPECT_FALSE(rec.medication_reference);
    EXPECT_EQ(rec.ingredient, "sumatriptan");
    EXPECT_EQ(rec.drug_class, "triptan");
    EXPECT_EQ(rec.therapy_role, "acute");
}

TEST(NormalizeMedicationRequest, UnknownDrugHasNoClassAndRoleOther) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr2","status":"active","intent":"order",
        "medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"324252006",
            "display":"Azithromycin 250mg capsule"}]},"subject":{"reference":"Patient/p1"}})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_FALSE(rec.drug_class);
    EXPECT_FALSE(rec.ingredient);
    EXPECT_EQ(rec.therapy_role, "other");
    EXPECT_EQ(rec.medication_code, "324252006");  // no RxNorm coding: the first one
}

TEST(NormalizeMedicationRequest, ReadsDoseScheduleAndDispense) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr3","status":"active","intent":"order",
        "medicationCodeableConcept":{"text":"some tablet"},
        "dosageInstruction":[
            {"text":"1 tablet twice daily as needed","asNeededBoolean":true,
             "timing":{"repeat":{"frequency":2,"period":1,"periodUnit":"d"}},
             "doseAndRate":[{"doseQuantity":{"value":1.5,"unit":"TAB"}},{"doseQuantity":{"value":9}}]},
            {"text":"ignored second instruction","timing":{"repeat":{"frequency":9,"period":1,"periodUnit":"d"}}}],
        "dispenseRequest":{"numberOfRepeatsAllowed":3,"quantity":{"value":60,"unit":"TAB"},
            "expectedSupplyDuration":{"value":30,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}}})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.dose_text, "1 tablet twice daily as needed");
    EXPECT_EQ(rec.as_needed, true);
    EXPECT_EQ(rec.dose_quantity, 1.5);
    EXPECT_EQ(rec.doses_per_day, 2.0);  // administrations, not tablets
    EXPECT_EQ(rec.quantity, 60.0);
    EXPECT_EQ(rec.quantity_unit, "TAB");
    EXPECT_EQ(rec.days_supply, 30.0);
    EXPECT_EQ(rec.refills, 3);
    EXPECT_EQ(rec.medication_display, "some tablet");  // text stands in for a missing coding
}

TEST(NormalizeMedicationRequest, WeeklyScheduleIsASeventhPerDayAndWeeksOfSupplyAreDays) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr4","status":"active","intent":"order",
        "dosageInstruction":[{"timing":{"repeat":{"frequency":1,"period":1,"periodUnit":"wk"}}}],
        "dispenseRequest":{"expectedSupplyDuration":{"value":4,"unit":"weeks"}}})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    ASSERT_TRUE(rec.doses_per_day);
    EXPECT_NEAR(*rec.doses_per_day, 1.0 / 7.0, 1e-12);
    EXPECT_EQ(rec.days_supply, 28.0);
}

TEST(NormalizeMedicationRequest, HourlyScheduleAndMonthSupply) {
    // Setup: every 6 hours; a month of supply counts 30 days.
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr5","status":"active","intent":"order",
        "dosageInstruction":[{"timing":{"repeat":{"period":6,"periodUnit":"h"}}}],
        "dispenseRequest":{"expectedSupplyDuration":{"value":1,"code":"mo"}}})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.doses_per_day, 4.0);  // absent frequency means once per period
    EXPECT_EQ(rec.days_supply, 30.0);
}

TEST(NormalizeMedicationRequest, TimingCodeGivesDosesPerDayWithoutRepeat) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr6","status":"active","intent":"order",
        "dosageInstruction":[{"timing":{"code":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation","code":"BID"}]}}}]})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.doses_per_day, 2.0);
}

TEST(NormalizeMedicationRequest, AsNeededCodeableConceptMeansAsNeededAndDoseRangeUsesHigh) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr7","status":"active","intent":"order",
        "dosageInstruction":[{"asNeededCodeableConcept":{"text":"headache"},
            "doseAndRate":[{"doseRange":{"low":{"value":1},"high":{"value":2}}}]}]})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.as_needed, true);
    EXPECT_EQ(rec.dose_quantity, 2.0);
    EXPECT_FALSE(rec.doses_per_day);
}

// Needs the real terminology tables.
TEST(NormalizeMedicationRequest, ContainedMedicationResolvesEvenWhenListedAfterTheReference) {
    // Setup: R4 allows "contained" anywhere in the object.
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr8","status":"active","intent":"order",
        "medicationReference":{"reference":"#m1"},"subject":{"reference":"Patient/p1"},
        "contained":[{"resourceType":"Organization","id":"m0","name":"x"},
                     {"resourceType":"Medication","id":"m1","code":{"coding":[
                        {"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"310965","display":"Ibuprofen 200 MG Oral Tablet"}]}}]})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.medication_reference, "#m1");
    EXPECT_EQ(rec.medication_code, "310965");
    EXPECT_EQ(rec.medication_display, "Ibuprofen 200 MG Oral Tablet");
    EXPECT_EQ(rec.ingredient, "ibuprofen");
    EXPECT_EQ(rec.drug_class, "nsaid");
    EXPECT_EQ(rec.therapy_role, "acute");
}

// Needs the real terminology tables.
TEST(NormalizeMedicationRequest, BundleMedicationResolvesByRelativeUrnAndAbsoluteReference) {
    // Setup: the Medications come after the requests that name them.
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[
        {"fullUrl":"https://ehr.example/fhir/MedicationRequest/a","resource":{"resourceType":"MedicationRequest","id":"a",
            "status":"active","intent":"order","medicationReference":{"reference":"Medication/topi"}}},
        {"fullUrl":"https://ehr.example/fhir/MedicationRequest/b","resource":{"resourceType":"MedicationRequest","id":"b",
            "status":"active","intent":"order","medicationReference":{"reference":"urn:uuid:5f1a1c2e-0000-4000-8000-000000000001"}}},
        {"fullUrl":"https://ehr.example/fhir/MedicationRequest/c","resource":{"resourceType":"MedicationRequest","id":"c",
            "status":"active","intent":"order","medicationReference":{"reference":"https://ehr.example/fhir/Medication/topi/_history/2"}}},
        {"fullUrl":"https://ehr.example/fhir/Medication/topi","resource":{"resourceType":"Medication","id":"topi",
            "code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"38404","display":"topiramate"}]}}},
        {"fullUrl":"urn:uuid:5f1a1c2e-0000-4000-8000-000000000001","resource":{"resourceType":"Medication","id":"suma",
            "code":{"text":"sumatriptan 100 MG Oral Tablet"}}}]})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_TRUE(r.ok()) << problems_text(r);
    const auto mrs = records_of<medication_request_record>(r);
    ASSERT_EQ(mrs.size(), 3u);
    EXPECT_EQ(mrs[0].medication_reference, "Medication/topi");
    EXPECT_EQ(mrs[0].medication_code, "38404");
    EXPECT_EQ(mrs[0].drug_class, "anticonvulsant");
    EXPECT_EQ(mrs[0].therapy_role, "preventive");
    EXPECT_EQ(mrs[1].medication_display, "sumatriptan 100 MG Oral Tablet");
    EXPECT_EQ(mrs[1].drug_class, "triptan");
    EXPECT_EQ(mrs[2].medication_code, "38404");  // absolute URL with _history
    EXPECT_EQ(r.skipped.at("Medication"), 2u);   // Medications feed the index, no rows
    EXPECT_EQ(r.read.at("Medication"), 2u);
}

// Needs the real terminology tables.
TEST(NormalizeMedicationRequest, MedicationFromAnEarlierDocumentResolvesUntilReset) {
    // Setup: one normalizer, the Medication in its own document first.
    normalizer n;
    const simdjson::padded_string med(std::string_view(
        R"({"resourceType":"Medication","id":"rize","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"88014","display":"rizatriptan"}]}})"));
    const simdjson::padded_string req(std::string_view(
        R"({"resourceType":"MedicationRequest","id":"r1","status":"active","intent":"order","medicationReference":{"reference":"Medication/rize"}})"));
    // Run
    const result first = n.normalize_document(med);
    const result resolved = n.normalize_document(req);
    n.reset_medication_index();
    const result after_reset = n.normalize_document(req);
    // Check
    EXPECT_TRUE(first.ok()) << problems_text(first);
    EXPECT_TRUE(first.records.empty());
    EXPECT_EQ(first.skipped.at("Medication"), 1u);
    const auto a = only<medication_request_record>(resolved);
    EXPECT_EQ(a.medication_code, "88014");
    EXPECT_EQ(a.drug_class, "triptan");
    const auto b = only<medication_request_record>(after_reset);
    EXPECT_FALSE(b.medication_code);
    EXPECT_EQ(b.medication_reference, "Medication/rize");
}

// The class part needs the real terminology tables.
TEST(NormalizeMedicationRequest, UnresolvedReferenceKeepsReferenceAndUsesItsDisplay) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr9","status":"active","intent":"order",
        "medicationReference":{"reference":"Medication/nowhere","display":"Propranolol 40 MG Oral Tablet"}})";
    // Run
    const auto rec = only<medication_request_record>(run(json));
    // Check
    EXPECT_EQ(rec.medication_reference, "Medication/nowhere");
    EXPECT_FALSE(rec.medication_code);
    EXPECT_EQ(rec.medication_display, "Propranolol 40 MG Oral Tablet");
    EXPECT_EQ(rec.drug_class, "beta_blocker");
}

TEST(NormalizeMedicationRequest, FractionalRefillsIsAProblem) {
    // Setup
    const std::string json =
        R"({"resourceType":"MedicationRequest","id":"mr10","status":"active","intent":"order",
        "dispenseRequest":{"numberOfRepeatsAllowed":1.5}})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "MedicationRequest/mr10");
    EXPECT_TRUE(
        starts_with(r.problems[0].message, "dispenseRequest.numberOfRepeatsAllowed: expected an integer"))
        << r.problems[0].message;
}

// The analyst views read statusReason as documented intolerance (schema 0003).
TEST(NormalizeMedicationRequest, KeepsStatusReasonCodeAndText) {
    // Setup: HL7 medicationrequest-status-reason "sintol", with and without text.
    const std::string coded =
        R"({"resourceType":"MedicationRequest","id":"mr-sr1","status":"stopped",
        "statusReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason",
            "code":"sintol","display":"Suspected intolerance"}],"text":"paresthesia on topiramate"},
        "intent":"order","medicationCodeableConcept":{"text":"topiramate 25 MG Oral Tablet"},
        "subject":{"reference":"Patient/p1"}})";
    const std::string display_only =
        R"({"resourceType":"MedicationRequest","id":"mr-sr2","status":"stopped",
        "statusReason":{"coding":[{"code":"sintol","display":"Suspected intolerance"}]},
        "intent":"order","medicationCodeableConcept":{"text":"topiramate 25 MG Oral Tablet"}})";
    const std::string none =
        R"({"resourceType":"MedicationRequest","id":"mr-sr3","status":"active","intent":"order",
        "medicationCodeableConcept":{"text":"topiramate 25 MG Oral Tablet"}})";
    // Run
    const auto a = only<medication_request_record>(run(coded));
    const auto b = only<medication_request_record>(run(display_only));
    const auto c = only<medication_request_record>(run(none));
    // Check
    EXPECT_EQ(a.status_reason_code, "sintol");
    EXPECT_EQ(a.status_reason, "paresthesia on topiramate");
    EXPECT_EQ(a.drug_class, "anticonvulsant");
    EXPECT_EQ(b.status_reason_code, "sintol");
    EXPECT_EQ(b.status_reason, "Suspected intolerance");
    EXPECT_FALSE(c.status_reason_code);
    EXPECT_FALSE(c.status_reason);
}

}  // namespace
}  // namespace headachemd::normalize::test
