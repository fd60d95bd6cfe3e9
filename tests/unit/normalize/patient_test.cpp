// Patient → patient_record: birth year, sex, death; nothing identifying.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizePatient, ReadsHeaderBirthYearSexAndDeceasedBoolean) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id":"p1",
        "meta":{"versionId":"3","lastUpdated":"2024-01-02T03:04:05Z","profile":["x"]},
        "gender":"female","birthDate":"1981-07-14","deceasedBoolean":false})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.id, "p1");
    EXPECT_EQ(rec.h.patient_ref, "p1");  // a Patient belongs to itself
    EXPECT_EQ(rec.h.version_id, "3");
    EXPECT_EQ(rec.h.last_updated, "2024-01-02T03:04:05Z");
    EXPECT_EQ(rec.birth_year, 1981);
    EXPECT_EQ(rec.sex, "female");
    EXPECT_EQ(rec.deceased, false);
    EXPECT_FALSE(rec.deceased_at);
}

TEST(NormalizePatient, DeceasedDateTimeMeansDeceased) {
    // Setup
    const std::string json =
        R"({"resourceType":"Patient","id":"p2","birthDate":"1950","deceasedDateTime":"2020-03-01T10:00:00Z"})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check
    EXPECT_EQ(rec.birth_year, 1950);  // a year-only birthDate is valid R4
    EXPECT_EQ(rec.deceased, true);
    EXPECT_EQ(rec.deceased_at, "2020-03-01T10:00:00Z");
}

TEST(NormalizePatient, AbsentFieldsStayNull) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id":"p3"})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check
    EXPECT_FALSE(rec.birth_year);
    EXPECT_FALSE(rec.sex);
    EXPECT_FALSE(rec.deceased);
    EXPECT_FALSE(rec.h.version_id);
    EXPECT_FALSE(rec.h.last_updated);
}

TEST(NormalizePatient, KeepsNoNameAddressTelecomOrIdentifier) {
    // Setup: identifying values that must appear nowhere in the record.
    const std::string json = R"({"resourceType":"Patient","id":"p4",
        "identifier":[{"system":"urn:mrn","value":"MRN-998877"}],
        "name":[{"family":"Zebedee","given":["Quintessa"]}],
        "telecom":[{"system":"phone","value":"555-0199"}],
        "address":[{"line":["12 Hidden Lane"],"city":"Secretville"}],
        "gender":"other","birthDate":"2001-02-03"})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check: every string the record holds, none carries the identifiers.
    const std::vector<std::string> held = {rec.h.id, rec.h.patient_ref, rec.h.raw, rec.sex.value_or(""),
                                           rec.deceased_at.value_or("")};
    for (const auto& s : held) {
        for (const char* secret :
             {"MRN-998877", "Zebedee", "Quintessa", "555-0199", "Hidden Lane", "Secretville"})
            EXPECT_FALSE(contains(s, secret)) << secret;
    }
    EXPECT_TRUE(rec.h.raw.empty());  // keep_raw is off by default
}

TEST(NormalizePatient, NullElementsReadAsAbsent) {
    // Setup: FHIR forbids null, some servers send it anyway.
    const std::string json =
        R"({"resourceType":"Patient","id":"p5","gender":null,"birthDate":null,"meta":null})";
    // Run
    const auto rec = only<patient_record>(run(json));
    // Check
    EXPECT_FALSE(rec.sex);
    EXPECT_FALSE(rec.birth_year);
}

TEST(NormalizePatient, WrongTypeInAReadFieldIsAProblemNamingIt) {
    // Setup
    const std::string json = R"({"resourceType":"Patient","id":"p6","gender":5})";
    // Run
    const result r = run(json);
    // Check
    ASSERT_EQ(r.problems.size(), 1u) << problems_text(r);
    EXPECT_EQ(r.problems[0].where, "Patient/p6");
    EXPECT_TRUE(starts_with(r.problems[0].message, "gender: expected a string, found a number"))
        << r.problems[0].message;
    EXPECT_TRUE(r.records.empty());
}

}  // namespace
}  // namespace headachemd::normalize::test
