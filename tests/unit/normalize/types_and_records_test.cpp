// is_r4_resource_type and the record helpers the store relies on.
#include "normalize_test_support.hpp"

namespace headachemd::normalize::test {
namespace {

TEST(R4ResourceTypes, KnowsR4TypesIncludingBinaryBundleAndParameters) {
    for (const char* t :
         {"Account", "Patient", "MedicationRequest", "Bundle", "Binary", "Parameters", "SubstanceNucleicAcid",
          "VisionPrescription", "CatalogEntry", "EffectEvidenceSynthesis"})
        EXPECT_TRUE(is_r4_resource_type(t)) << t;
}

TEST(R4ResourceTypes, RejectsNonTypesAbstractTypesAndOtherReleases) {
    for (const char* t :
         {"", "Foo", "patient", "PATIENT", "Patient ", "Resource", "DomainResource",
          // R5 only / renamed after R4:
          "ActorDefinition", "MedicationUsage", "DeviceUsage", "AdministrableProductDefinition"})
        EXPECT_FALSE(is_r4_resource_type(t)) << t;
}

TEST(Records, TableNamesMatchTheSchema) {
    EXPECT_STREQ(table_name(record{patient_record{}}), "patient");
    EXPECT_STREQ(table_name(record{condition_record{}}), "condition");
    EXPECT_STREQ(table_name(record{medication_request_record{}}), "medication_request");
    EXPECT_STREQ(table_name(record{appointment_record{}}), "appointment");
    EXPECT_STREQ(table_name(record{encounter_record{}}), "encounter");
    EXPECT_STREQ(table_name(record{observation_record{}}), "observation");
    EXPECT_STREQ(table_name(record{procedure_record{}}), "procedure");
}

TEST(Records, HeaderOfReachesTheHeader) {
    // Setup
    record r{observation_record{}};
    // Run
    header_of(r).id = "o1";
    // Check
    EXPECT_EQ(std::get<observation_record>(r).h.id, "o1");
    const record& cr = r;
    EXPECT_EQ(header_of(cr).id, "o1");
}

}  // namespace
}  // namespace headachemd::normalize::test
