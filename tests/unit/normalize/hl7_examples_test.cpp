// The official FHIR R4 (4.0.1) examples: every example of the types we read
// must normalize without a problem (a problem here means the normalizer is
// too strict), and one example of each type is checked field by field.
#include <algorithm>

#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

std::vector<std::filesystem::path> examples_of(std::string_view type) {
    std::vector<std::filesystem::path> out;
    const std::string prefix = std::string(type) + "-";
    for (const auto& e : std::filesystem::directory_iterator(hl7_examples())) {
        const std::string name = e.path().filename().string();
        if (starts_with(name, prefix) && name.size() > 5 && name.substr(name.size() - 5) == ".json")
            out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(NormalizeHl7Examples, EveryExampleOfOurTypesNormalizesWithoutProblems) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Setup
    std::size_t files = 0;
    for (const char* type : {"MedicationRequest", "Medication", "Appointment", "Condition", "Observation",
                             "Encounter", "Patient", "Procedure"}) {
        for (const auto& file : examples_of(type)) {
            // "Medication-" must not pick up "MedicationRequest-" files twice.
            if (std::string_view(type) == "Medication" &&
                starts_with(file.filename().string(), "MedicationRequest"))
                continue;
            ++files;
            // Run
            const result r = run_file(file);
            // Check
            EXPECT_TRUE(r.ok()) << file.filename() << "\n" << problems_text(r);
            EXPECT_EQ(r.read.at(type), 1u) << file.filename();
            const bool record_expected = std::string_view(type) != "Medication";
            EXPECT_EQ(r.records.size(), record_expected ? 1u : 0u) << file.filename();
        }
    }
    EXPECT_GT(files, 150u);
}

TEST(NormalizeHl7Examples, MedicationRequestMedrx0302) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto rec =
        only<medication_request_record>(run_file(hl7_examples() / "MedicationRequest-medrx0302.json"));
    // Check
    EXPECT_EQ(rec.h.id, "medrx0302");
    EXPECT_EQ(rec.h.patient_ref, "pat1");
    EXPECT_EQ(rec.status, "active");
    EXPECT_EQ(rec.intent, "order");
    EXPECT_EQ(rec.authored_on, "2015-01-15");
    EXPECT_EQ(rec.medication_reference, "#med0320");  // the contained Medication
    EXPECT_EQ(rec.medication_system, "http://snomed.info/sct");
    EXPECT_EQ(rec.medication_code, "324252006");
    EXPECT_EQ(rec.medication_display, "Azithromycin 250mg capsule (product)");
    EXPECT_FALSE(rec.drug_class);
    EXPECT_EQ(rec.therapy_role, "other");
    EXPECT_EQ(rec.dose_text, "Two tablets at once");  // dosageInstruction[0] only
    EXPECT_EQ(rec.dose_quantity, 2.0);
    EXPECT_EQ(rec.doses_per_day, 1.0);
    EXPECT_FALSE(rec.as_needed);
    EXPECT_EQ(rec.quantity, 6.0);
    EXPECT_EQ(rec.quantity_unit, "TAB");
    EXPECT_EQ(rec.days_supply, 5.0);
    EXPECT_EQ(rec.refills, 1);
}

TEST(NormalizeHl7Examples, MedicationMed0301FeedsTheIndexOnly) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Setup
    normalizer n;
    simdjson::padded_string med;
    ASSERT_FALSE(
        simdjson::padded_string::load((hl7_examples() / "Medication-med0301.json").string()).get(med));
    const simdjson::padded_string req(std::string_view(
        R"({"resourceType":"MedicationRequest","id":"r","status":"active","intent":"order","medicationReference":{"reference":"Medication/med0301"}})"));
    // Run
    const result a = n.normalize_document(med);
    const result b = n.normalize_document(req);
    // Check
    EXPECT_TRUE(a.ok()) << problems_text(a);
    EXPECT_TRUE(a.records.empty());
    EXPECT_EQ(a.skipped.at("Medication"), 1u);
    const auto rec = only<medication_request_record>(b);
    EXPECT_EQ(rec.medication_system, "http://hl7.org/fhir/sid/ndc");
    EXPECT_EQ(rec.medication_code, "0069-2587-10");
    EXPECT_EQ(rec.medication_display, "Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)");
}

TEST(NormalizeHl7Examples, AppointmentExample) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto rec = only<appointment_record>(run_file(hl7_examples() / "Appointment-example.json"));
    // Check
    EXPECT_EQ(rec.h.id, "example");
    EXPECT_EQ(rec.h.patient_ref, "example");
    EXPECT_EQ(rec.status, "booked");
    EXPECT_EQ(rec.start, "2013-12-10T09:00:00Z");
    EXPECT_EQ(rec.end, "2013-12-10T11:00:00Z");
    EXPECT_EQ(rec.minutes, 120);  // no minutesDuration: end - start
    EXPECT_EQ(rec.service_type, "52");
    EXPECT_EQ(rec.appointment_type, "FOLLOWUP");
    EXPECT_FALSE(rec.reason_codes);  // only a reasonReference
    EXPECT_FALSE(rec.is_headache_related);
}

TEST(NormalizeHl7Examples, ConditionF201) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto rec = only<condition_record>(run_file(hl7_examples() / "Condition-f201.json"));
    // Check
    EXPECT_EQ(rec.h.id, "f201");
    EXPECT_EQ(rec.h.patient_ref, "f201");
    EXPECT_EQ(rec.clinical_status, "resolved");
    EXPECT_EQ(rec.verification_status, "confirmed");
    EXPECT_EQ(rec.category, "55607006");  // the first coding of the first category
    EXPECT_EQ(rec.code_system, "http://snomed.info/sct");
    EXPECT_EQ(rec.code, "386661006");
    EXPECT_EQ(rec.code_display, "Fever");
    EXPECT_EQ(rec.onset, "2013-04-02");
    EXPECT_EQ(rec.abatement, "around April 9, 2013");
    EXPECT_EQ(rec.recorded_date, "2013-04-04");
    EXPECT_FALSE(rec.headache_type);
}

TEST(NormalizeHl7Examples, ObservationExampleAndBloodGroup) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto weight = only<observation_record>(run_file(hl7_examples() / "Observation-example.json"));
    const auto group = only<observation_record>(run_file(hl7_examples() / "Observation-bloodgroup.json"));
    // Check
    EXPECT_EQ(weight.h.patient_ref, "example");
    EXPECT_EQ(weight.category, "vital-signs");
    EXPECT_EQ(weight.code_system, "http://loinc.org");
    EXPECT_EQ(weight.code, "29463-7");
    EXPECT_EQ(weight.effective_at, "2016-03-28");
    EXPECT_EQ(weight.value_type, "quantity");
    EXPECT_EQ(weight.value_num, 185.0);
    EXPECT_EQ(weight.value_unit, "lbs");
    EXPECT_EQ(group.value_type, "codeable");
    EXPECT_EQ(group.value_code_system, "http://snomed.info/sct");
    EXPECT_EQ(group.value_code, "112144000");
    EXPECT_EQ(group.value_string, "Blood group A (finding)");
    EXPECT_EQ(group.effective_at, "2018-03-11T16:07:54+00:00");
}

TEST(NormalizeHl7Examples, EncounterF201AndHome) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto f201 = only<encounter_record>(run_file(hl7_examples() / "Encounter-f201.json"));
    const auto home = only<encounter_record>(run_file(hl7_examples() / "Encounter-home.json"));
    // Check
    EXPECT_EQ(f201.h.patient_ref, "f201");
    EXPECT_EQ(f201.status, "finished");
    EXPECT_EQ(f201.class_code, "AMB");
    EXPECT_EQ(f201.type_code, "11429006");
    EXPECT_EQ(f201.type_display, "Consultation");
    EXPECT_FALSE(f201.reason_codes);  // the reason is text only
    EXPECT_EQ(home.class_code, "HH");
    EXPECT_EQ(home.period_start, "2015-01-17T16:00:00+10:00");
    EXPECT_EQ(home.period_end, "2015-01-17T16:30:00+10:00");
}

TEST(NormalizeHl7Examples, PatientExampleAndDeceasedOnes) {
    HEADACHEMD_REQUIRE_SHARED("hl7-examples");
    // Run
    const auto example = only<patient_record>(run_file(hl7_examples() / "Patient-example.json"));
    const auto pat3 = only<patient_record>(run_file(hl7_examples() / "Patient-pat3.json"));
    const auto pat4 = only<patient_record>(run_file(hl7_examples() / "Patient-pat4.json"));
    const auto glossy = only<patient_record>(run_file(hl7_examples() / "Patient-glossy.json"));
    // Check
    EXPECT_EQ(example.h.id, "example");
    EXPECT_EQ(example.h.patient_ref, "example");
    EXPECT_EQ(example.birth_year, 1974);
    EXPECT_EQ(example.sex, "male");
    EXPECT_EQ(example.deceased, false);
    EXPECT_EQ(pat3.deceased, true);
    EXPECT_EQ(pat3.deceased_at, "2015-02-14T13:42:00+10:00");
    EXPECT_EQ(pat4.deceased, true);
    EXPECT_FALSE(pat4.deceased_at);
    EXPECT_EQ(glossy.h.last_updated, "2014-11-13T11:41:00+11:00");
}

}  // namespace
}  // namespace headachemd::normalize::test
