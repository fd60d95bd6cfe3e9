// Procedure → procedure_record.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(NormalizeProcedure, ReadsStatusCodePeriodAndSubject) {
    // Setup
    const std::string json = R"({"resourceType":"Procedure","id":"pr1","status":"completed",
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"80146002","display":"Appendectomy"}]},
        "subject":{"reference":"Patient/p9"},
        "performedPeriod":{"start":"2013-04-05T10:30:10+01:00","end":"2013-04-05T12:30:10+01:00"}})";
    // Run
    const auto rec = only<procedure_record>(run(json));
    // Check
    EXPECT_EQ(rec.h.patient_ref, "p9");
    EXPECT_EQ(rec.status, "completed");
    EXPECT_EQ(rec.code_system, "http://snomed.info/sct");
    EXPECT_EQ(rec.code, "80146002");
    EXPECT_EQ(rec.code_display, "Appendectomy");
    EXPECT_EQ(rec.performed_start, "2013-04-05T10:30:10+01:00");
    EXPECT_EQ(rec.performed_end, "2013-04-05T12:30:10+01:00");
    EXPECT_EQ(rec.procedure_kind, "other");
}

TEST(NormalizeProcedure, PerformedDateTimeIsTheStart) {
    // Setup
    const std::string json =
        R"({"resourceType":"Procedure","id":"pr2","status":"completed","performedDateTime":"2020-02-02"})";
    // Run
    const auto rec = only<procedure_record>(run(json));
    // Check
    EXPECT_EQ(rec.performed_start, "2020-02-02");
    EXPECT_FALSE(rec.performed_end);
}

// Needs the real terminology tables (CPT preference and the kind).
TEST(NormalizeProcedure, PrefersCptAndClassifiesBotulinumToxin) {
    // Setup
    const std::string json = R"({"resourceType":"Procedure","id":"pr3","status":"completed",
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"000000","display":"Injection"},
                          {"system":"http://www.ama-assn.org/go/cpt","code":"64615","display":"Chemodenervation for chronic migraine"}]}})";
    // Run
    const auto rec = only<procedure_record>(run(json));
    // Check
    EXPECT_EQ(rec.code_system, "http://www.ama-assn.org/go/cpt");
    EXPECT_EQ(rec.code, "64615");
    EXPECT_EQ(rec.procedure_kind, "botulinum_toxin");
}

// Needs the real terminology tables.
TEST(NormalizeProcedure, ClassifiesNerveBlockAndTriggerPoint) {
    struct one {
        std::string code, expected;
    };
    for (const one& c : {one{"64405", "nerve_block"}, one{"20552", "trigger_point"}}) {
        // Setup
        const std::string json = R"({"resourceType":"Procedure","id":"pr4","status":"completed",
            "code":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":")" +
                                 c.code + R"("}]}})";
        // Run
        const auto rec = only<procedure_record>(run(json));
        // Check
        EXPECT_EQ(rec.procedure_kind, c.expected) << c.code;
    }
}

}  // namespace
}  // namespace headachemd::normalize::test
