// Shared helpers for the terminology tests: the system URIs, one-coding
// shorthands, and printers so a failed EXPECT_EQ shows "migraine" rather than
// an integer.
#pragma once

#include <cstddef>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "headachemd/terminology/terminology.hpp"

namespace headachemd::terminology {

// gtest finds these by argument-dependent lookup.
inline void PrintTo(headache_type t, std::ostream* os) {
    *os << (t == headache_type::none ? std::string_view("none") : to_string(t));
}
inline void PrintTo(drug_class c, std::ostream* os) {
    *os << (c == drug_class::none ? std::string_view("none") : to_string(c));
}
inline void PrintTo(therapy_role r, std::ostream* os) { *os << to_string(r); }
inline void PrintTo(instrument i, std::ostream* os) { *os << to_string(i); }
inline void PrintTo(procedure_kind k, std::ostream* os) { *os << to_string(k); }
inline void PrintTo(code_system s, std::ostream* os) {
    constexpr std::string_view names[] = {"unknown", "rxnorm", "icd10cm", "icd10",
                                          "snomed",  "loinc",  "cpt",     "hcpcs"};
    *os << names[static_cast<int>(s)];
}

}  // namespace headachemd::terminology

namespace headachemd::terminology::test {

inline constexpr std::string_view rxnorm_uri = "http://www.nlm.nih.gov/research/umls/rxnorm";
inline constexpr std::string_view icd10cm_uri = "http://hl7.org/fhir/sid/icd-10-cm";
inline constexpr std::string_view icd10_uri = "http://hl7.org/fhir/sid/icd-10";
inline constexpr std::string_view snomed_uri = "http://snomed.info/sct";
inline constexpr std::string_view loinc_uri = "http://loinc.org";
inline constexpr std::string_view cpt_uri = "http://www.ama-assn.org/go/cpt";
inline constexpr std::string_view hcpcs_uri = "urn:oid:2.16.840.1.113883.6.285";

// An RxCUI that is in no table: stands for a product (SCD/SBD) code.
inline constexpr std::string_view unknown_product_rxcui = "999999001";

inline std::span<const coding_view> one(const coding_view& c) { return {&c, 1}; }

// A gtest parameter name: the case index, then the label with every
// character that is not a letter or digit turned into '_'.
inline std::string param_name(std::size_t index, std::string_view label) {
    std::string out = std::to_string(index) + "_";
    for (char c : label) {
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out += alnum ? c : '_';
    }
    return out;
}

}  // namespace headachemd::terminology::test
