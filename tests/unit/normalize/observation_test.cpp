// Observation → observation_record: code, value[x], effective time, instrument.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

std::string observation(std::string_view fields) {
    return std::string(R"({"resourceType":"Observation","id":"o1","status":"final",)") + std::string(fields) +
           "}";
}

// The LOINC preference needs the real terminology's system_from_uri.
TEST(NormalizeObservation, ReadsQuantityCategoryEffectiveAndPrefersLoinc) {
    // Setup
    const std::string json = observation(R"json(
        "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
        "code":{"coding":[{"system":"http://acme.org/codes","code":"bw","display":"Body Weight (local)"},
                          {"system":"http://loinc.org","code":"29463-7","display":"Body Weight"}]},
        "subject":{"reference":"Patient/example"},"effectiveDateTime":"2016-03-28",
        "valueQuantity":{"value":185,"unit":"lbs","system":"http://unitsofmeasure.org","code":"[lb_av]"})json");
    // Run
    const auto rec = only<observation_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.patient_ref, "example");
    EXPECT_EQ(rec.status, "final");
    EXPECT_EQ(rec.category, "vital-signs");
    EXPECT_EQ(rec.code_system, "http://loinc.org");
    EXPECT_EQ(rec.code, "29463-7");
    EXPECT_EQ(rec.code_display, "Body Weight");
    EXPECT_EQ(rec.effective_at, "2016-03-28");
    EXPECT_EQ(rec.value_type, "quantity");
    EXPECT_EQ(rec.value_num, 185.0);
    EXPECT_EQ(rec.value_unit, "lbs");
    EXPECT_EQ(rec.instrument, "other");
}

TEST(NormalizeObservation, QuantityWithoutUnitTextUsesTheCode) {
    // Setup
    const std::string json =
        observation(R"("valueQuantity":{"value":37.5,"system":"http://unitsofmeasure.org","code":"Cel"})");
    // Run
    const auto rec = only<observation_record>(run(json));
    // Check
    EXPECT_EQ(rec.value_unit, "Cel");
}

TEST(NormalizeObservation, CodeableValueGivesCodeAndDisplay) {
    // Setup
    const std::string json =
        observation(R"("valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct",
        "code":"260385009","display":"Negative"}],"text":"neg"})");
    // Run
    const auto rec = only<observation_record>(run(json));
    // Check
    EXPECT_EQ(rec.value_type, "codeable");
    EXPECT_EQ(rec.value_code_system, "http://snomed.info/sct");
    EXPECT_EQ(rec.value_code, "260385009");
    EXPECT_EQ(rec.value_string, "Negative");
    EXPECT_FALSE(rec.value_num);
}

TEST(NormalizeObservation, CodeableValueWithOnlyTextUsesTheText) {
    // Setup
    const std::string json = observation(R"("valueCodeableConcept":{"text":"brown"})");
    // Run
    const auto rec = only<observation_record>(run(json));
    // Check
    EXPECT_EQ(rec.value_string, "brown");
    EXPECT_FALSE(rec.value_code);
}

TEST(NormalizeObservation, ScalarValueTypes) {
    // Setup
    struct one {
        std::string field, type;
        opt_real num;
        opt_text text;
    };
    const std::vector<one> cases = {
        {R"("valueString":"slightly better")", "string", std::nullopt, "slightly better"},
        {R"("valueBoolean":true)", "boolean", 1.0, std::nullopt},
        {R"("valueBoolean":false)", "boolean", 0.0, std::nullopt},
        {R"("valueInteger":7)", "integer", 7.0, std::nullopt},
        {R"("valueDateTime":"2020-01-02T03:04:05Z")", "date_time", std::nullopt, "2020-01-02T03:04:05Z"},
        {R"("valueTime":"12:30:00")", "time", std::nullopt, "12:30:00"},
        {R"("valuePeriod":{"start":"2020","end":"2021"})", "period", std::nullopt,
         R"({"start":"2020","end":"2021"})"},
        {R"("valueRange":{"low":{"value":1},"high":{"value":3}} )", "range", std::nullopt,
         R"({"low":{"value":1},"high":{"value":3}})"},
    };
    for (const auto& c : cases) {
        // Run
        const auto rec = only<observation_record>(run(observation(c.field)));
        // Check
        EXPECT_EQ(rec.value_type, c.type) << c.field;
        EXPECT_EQ(rec.value_num, c.num) << c.field;
        EXPECT_EQ(rec.value_string, c.text) << c.field;
    }
}

TEST(NormalizeObservation, NoValueLeavesValueTypeNull) {
    // Setup
    const std::string json =
        observation(R"("code":{"text":"panel"},"component":[{"valueQuantity":{"value":1}}])");
    // Run
    const auto rec = only<observation_record>(run(json));
    // Check: components are not the Observation's own value
    EXPECT_FALSE(rec.value_type);
    EXPECT_FALSE(rec.value_num);
}

TEST(NormalizeObservation, EffectivePeriodAndInstant) {
    // Setup
    const std::string period =
        observation(R"("effectivePeriod":{"start":"2021-05-01T08:00:00Z","end":"2021-05-02"})");
    const std::string instant = observation(R"("effectiveInstant":"2021-05-03T09:10:11.123Z")");
    // Run
    const auto a = only<observation_record>(run(period));
    const auto b = only<observation_record>(run(instant));
    // Check
    EXPECT_EQ(a.effective_at, "2021-05-01T08:00:00Z");
    EXPECT_EQ(b.effective_at, "2021-05-03T09:10:11.123Z");
}

TEST(NormalizeObservation, NonPatientSubjectsGiveNoPatient) {
    for (const char* subject : {"Group/g1", "Device/d1", "Location/l1"}) {
        // Setup
        const std::string json = observation(std::string(R"("subject":{"reference":")") + subject + R"("})");
        // Run
        const auto rec = only<observation_record>(run(json));
        // Check
        EXPECT_TRUE(rec.h.patient_ref.empty()) << subject;
    }
}

// Needs the real terminology tables.
TEST(NormalizeObservation, InstrumentsFromLoincAndText) {
    struct one {
        std::string code;
        std::string expected;
    };
    const std::vector<one> cases = {
        {R"({"coding":[{"system":"http://loinc.org","code":"72514-3"}]})", "pain_nrs"},
        {R"({"coding":[{"system":"http://loinc.org","code":"44261-6"}]})", "phq9"},
        {R"({"text":"MIDAS total score"})", "midas"},
        {R"({"text":"HIT-6 total"})", "hit6"},
    };
    for (const auto& c : cases) {
        // Setup
        const std::string json = observation(R"("code":)" + c.code + R"(,"valueInteger":5)");
        // Run
        const auto rec = only<observation_record>(run(json));
        // Check
        EXPECT_EQ(rec.instrument, c.expected) << c.code;
    }
}

}  // namespace
}  // namespace headachemd::normalize::test
