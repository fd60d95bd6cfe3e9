// system_from_uri and the to_string names that the database stores.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "terminology_test_support.hpp"

namespace headachemd::terminology::test {
namespace {

struct uri_case {
    std::string_view uri;
    code_system expected;
};

class SystemFromUri : public ::testing::TestWithParam<uri_case> {};

TEST_P(SystemFromUri, MapsUriOrOid) {
    // Setup
    const uri_case& c = GetParam();
    // Run
    const code_system got = system_from_uri(c.uri);
    // Check
    EXPECT_EQ(got, c.expected) << c.uri;
}

INSTANTIATE_TEST_SUITE_P(
    Canonical, SystemFromUri,
    ::testing::Values(uri_case{"http://snomed.info/sct", code_system::snomed},
                      uri_case{"http://hl7.org/fhir/sid/icd-10-cm", code_system::icd10cm},
                      uri_case{"http://hl7.org/fhir/sid/icd-10", code_system::icd10},
                      uri_case{"http://www.nlm.nih.gov/research/umls/rxnorm", code_system::rxnorm},
                      uri_case{"http://loinc.org", code_system::loinc},
                      uri_case{"http://www.ama-assn.org/go/cpt", code_system::cpt},
                      uri_case{"urn:oid:2.16.840.1.113883.6.285", code_system::hcpcs},
                      uri_case{"https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                               code_system::hcpcs}),
    [](const auto& p) { return param_name(p.index, p.param.uri); });

INSTANTIATE_TEST_SUITE_P(Oids, SystemFromUri,
                         ::testing::Values(uri_case{"urn:oid:2.16.840.1.113883.6.96", code_system::snomed},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.90", code_system::icd10cm},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.3", code_system::icd10},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.88", code_system::rxnorm},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.1", code_system::loinc},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.12", code_system::cpt},
                                           uri_case{"urn:oid:2.16.840.1.113883.6.14", code_system::hcpcs}),
                         [](const auto& p) { return param_name(p.index, p.param.uri); });

// EHRs vary case, scheme and a trailing slash; none of that changes the system.
INSTANTIATE_TEST_SUITE_P(Lenient, SystemFromUri,
                         ::testing::Values(uri_case{"HTTP://SNOMED.INFO/SCT", code_system::snomed},
                                           uri_case{"https://snomed.info/sct", code_system::snomed},
                                           uri_case{"http://loinc.org/", code_system::loinc},
                                           uri_case{"  http://loinc.org  ", code_system::loinc},
                                           uri_case{"URN:OID:2.16.840.1.113883.6.88", code_system::rxnorm}),
                         [](const auto& p) { return param_name(p.index, p.param.uri); });

// Near misses must not match: an OID that is a prefix of another, a URI with a
// suffix, a local system.
INSTANTIATE_TEST_SUITE_P(
    Unknown, SystemFromUri,
    ::testing::Values(uri_case{"", code_system::unknown}, uri_case{"/", code_system::unknown},
                      uri_case{"http://", code_system::unknown},
                      uri_case{"urn:oid:2.16.840.1.113883.6", code_system::unknown},
                      uri_case{"urn:oid:2.16.840.1.113883.6.101", code_system::unknown},
                      uri_case{"http://hl7.org/fhir/sid/icd-9-cm", code_system::unknown},
                      uri_case{"http://hl7.org/fhir/sid/icd-10-cm-extra", code_system::unknown},
                      uri_case{"http://snomed.info/sct/731000124108", code_system::unknown},
                      uri_case{"http://fhir.example-ehr.com/codes/meds", code_system::unknown},
                      uri_case{"loinc", code_system::unknown}),
    [](const auto& p) { return param_name(p.index, p.param.uri); });

TEST(ToString, HeadacheTypeNamesEveryValue) {
    EXPECT_EQ(to_string(headache_type::none), "");
    EXPECT_EQ(to_string(headache_type::chronic_migraine), "chronic_migraine");
    EXPECT_EQ(to_string(headache_type::migraine_with_aura), "migraine_with_aura");
    EXPECT_EQ(to_string(headache_type::migraine_without_aura), "migraine_without_aura");
    EXPECT_EQ(to_string(headache_type::menstrual_migraine), "menstrual_migraine");
    EXPECT_EQ(to_string(headache_type::hemiplegic_migraine), "hemiplegic_migraine");
    EXPECT_EQ(to_string(headache_type::migraine), "migraine");
    EXPECT_EQ(to_string(headache_type::tension_type), "tension_type");
    EXPECT_EQ(to_string(headache_type::cluster), "cluster");
    EXPECT_EQ(to_string(headache_type::medication_overuse), "medication_overuse");
    EXPECT_EQ(to_string(headache_type::post_traumatic), "post_traumatic");
    EXPECT_EQ(to_string(headache_type::new_daily_persistent), "new_daily_persistent");
    EXPECT_EQ(to_string(headache_type::cervicogenic), "cervicogenic");
    EXPECT_EQ(to_string(headache_type::other_headache), "other_headache");
    EXPECT_EQ(to_string(headache_type::headache_unspecified), "headache_unspecified");
}

TEST(ToString, DrugClassNamesEveryValue) {
    EXPECT_EQ(to_string(drug_class::none), "");
    EXPECT_EQ(to_string(drug_class::triptan), "triptan");
    EXPECT_EQ(to_string(drug_class::gepant), "gepant");
    EXPECT_EQ(to_string(drug_class::ditan), "ditan");
    EXPECT_EQ(to_string(drug_class::ergot), "ergot");
    EXPECT_EQ(to_string(drug_class::cgrp_mab), "cgrp_mab");
    EXPECT_EQ(to_string(drug_class::botulinum_toxin), "botulinum_toxin");
    EXPECT_EQ(to_string(drug_class::beta_blocker), "beta_blocker");
    EXPECT_EQ(to_string(drug_class::anticonvulsant), "anticonvulsant");
    EXPECT_EQ(to_string(drug_class::tricyclic), "tricyclic");
    EXPECT_EQ(to_string(drug_class::snri), "snri");
    EXPECT_EQ(to_string(drug_class::arb), "arb");
    EXPECT_EQ(to_string(drug_class::calcium_channel), "calcium_channel");
    EXPECT_EQ(to_string(drug_class::other_preventive), "other_preventive");
    EXPECT_EQ(to_string(drug_class::simple_analgesic), "simple_analgesic");
    EXPECT_EQ(to_string(drug_class::nsaid), "nsaid");
    EXPECT_EQ(to_string(drug_class::combination_analgesic), "combination_analgesic");
    EXPECT_EQ(to_string(drug_class::opioid), "opioid");
    EXPECT_EQ(to_string(drug_class::antiemetic), "antiemetic");
    EXPECT_EQ(to_string(drug_class::steroid), "steroid");
}

TEST(ToString, TherapyRoleNamesEveryValue) {
    EXPECT_EQ(to_string(therapy_role::other), "other");
    EXPECT_EQ(to_string(therapy_role::acute), "acute");
    EXPECT_EQ(to_string(therapy_role::preventive), "preventive");
    EXPECT_EQ(to_string(therapy_role::acute_and_preventive), "acute_and_preventive");
}

TEST(ToString, InstrumentNamesEveryValue) {
    EXPECT_EQ(to_string(instrument::other), "other");
    EXPECT_EQ(to_string(instrument::pain_nrs), "pain_nrs");
    EXPECT_EQ(to_string(instrument::phq9), "phq9");
    EXPECT_EQ(to_string(instrument::midas), "midas");
    EXPECT_EQ(to_string(instrument::hit6), "hit6");
}

TEST(ToString, ProcedureKindNamesEveryValue) {
    EXPECT_EQ(to_string(procedure_kind::other), "other");
    EXPECT_EQ(to_string(procedure_kind::botulinum_toxin), "botulinum_toxin");
    EXPECT_EQ(to_string(procedure_kind::nerve_block), "nerve_block");
    EXPECT_EQ(to_string(procedure_kind::trigger_point), "trigger_point");
}

}  // namespace
}  // namespace headachemd::terminology::test
