// Appointment → appointment_record.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeAppointment, ReadsScheduleTypesReasonsAndPatientActor) {
    // Setup
    const std::string json = R"({"resourceType":"Appointment","id":"a1","status":"booked",
        "serviceType":[{"coding":[{"code":"52","display":"General Discussion"}]}],
        "appointmentType":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0276","code":"FOLLOWUP"}]},
        "reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"413838009","display":"Chronic ischaemic heart disease"}]},
                      {"coding":[{"system":"urn:local","code":"x1"}],"text":"local reason"}],
        "start":"2013-12-10T09:00:00Z","end":"2013-12-10T11:00:00Z","minutesDuration":15,
        "participant":[{"actor":{"reference":"Practitioner/dr1"}},{"actor":{"reference":"Patient/pat7"}},
                       {"actor":{"reference":"Patient/other"}}]})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.patient_ref, "pat7");  // the first participant that is a Patient
    EXPECT_EQ(rec.status, "booked");
    EXPECT_EQ(rec.start, "2013-12-10T09:00:00Z");
    EXPECT_EQ(rec.end, "2013-12-10T11:00:00Z");
    EXPECT_EQ(rec.minutes, 15);  // minutesDuration wins over end - start
    EXPECT_EQ(rec.service_type, "52");
    EXPECT_EQ(rec.appointment_type, "FOLLOWUP");
    EXPECT_EQ(
        rec.reason_codes,
        R"([{"system":"http://snomed.info/sct","code":"413838009","display":"Chronic ischaemic heart disease"},)"
        R"({"system":"urn:local","code":"x1","display":null}])");
    EXPECT_FALSE(rec.is_headache_related);
}

TEST(NormalizeAppointment, MinutesComeFromStartAndEndAcrossOffsets) {
    // Setup: 09:00Z to 11:00+01:00 is one hour.
    const std::string json = R"({"resourceType":"Appointment","id":"a2","status":"booked",
        "start":"2013-12-10T09:00:00Z","end":"2013-12-10T11:00:00+01:00"})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_EQ(rec.minutes, 60);
}

TEST(NormalizeAppointment, MinutesNeedFullDateTimes) {
    // Setup: a date alone has no duration.
    const std::string json =
        R"({"resourceType":"Appointment","id":"a3","status":"proposed","start":"2013-12-10","end":"2013-12-11"})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_FALSE(rec.minutes);
    EXPECT_FALSE(rec.reason_codes);  // no reasonCode: NULL, not "[]"
}

TEST(NormalizeAppointment, ReasonCodesJsonIsEscaped) {
    // Setup: a display with a quote, a backslash, a tab and a non-ASCII letter.
    const std::string json = R"({"resourceType":"Appointment","id":"a4","status":"booked",
        "reasonCode":[{"coding":[{"system":"s","code":"c","display":"say \"hi\" \\ then\ttab é"}]}]})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_EQ(rec.reason_codes, R"([{"system":"s","code":"c","display":"say \"hi\" \\ then\ttab é"}])");
    // and it parses back to the same text
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    ASSERT_FALSE(p.parse(*rec.reason_codes).get(doc));
    std::string_view display;
    ASSERT_FALSE(doc.at(0)["display"].get(display));
    EXPECT_EQ(display, "say \"hi\" \\ then\ttab é");
}

TEST(NormalizeAppointment, TypesFallBackToText) {
    // Setup
    const std::string json = R"({"resourceType":"Appointment","id":"a5","status":"booked",
        "serviceType":[{"text":"Neurology"}],"appointmentType":{"text":"New patient"}})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_EQ(rec.service_type, "Neurology");
    EXPECT_EQ(rec.appointment_type, "New patient");
}

// Needs the real terminology tables.
TEST(NormalizeAppointment, HeadacheWordsInDescriptionMakeItHeadacheRelated) {
    // Setup
    const std::string json = R"({"resourceType":"Appointment","id":"a6","status":"booked",
        "description":"Migraine follow-up visit","participant":[{"actor":{"reference":"Patient/p"}}]})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_TRUE(rec.is_headache_related);
}

// Needs the real terminology tables.
TEST(NormalizeAppointment, HeadacheReasonCodeMakesItHeadacheRelated) {
    // Setup
    const std::string json = R"({"resourceType":"Appointment","id":"a7","status":"booked",
        "reasonCode":[{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"G43.709"}]}]})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_TRUE(rec.is_headache_related);
}

TEST(NormalizeAppointment, NoPatientParticipantLeavesPatientEmpty) {
    // Setup
    const std::string json = R"({"resourceType":"Appointment","id":"a8","status":"booked",
        "participant":[{"actor":{"reference":"Location/1"}},{"actor":{"display":"someone"}}]})";
    // Run
    const auto rec = only<appointment_record>(run(json));
    // Check
    EXPECT_TRUE(rec.h.patient_ref.empty());
}

}  // namespace
}  // namespace headachemd::normalize::test
