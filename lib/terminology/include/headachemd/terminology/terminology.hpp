// Headache classification tables: codes first, names in the text second.
//
// Contract: every function here is pure and thread-safe. Inputs are views the
// caller owns; outputs are enums or strings with static storage. Nothing
// throws except std::bad_alloc.
//
// Sources for every table: ../shared/TERMINOLOGY.md (RxNorm ingredient
// RxCUIs, ICD-10-CM G43/G44/R51, SNOMED CT, LOINC, CPT/HCPCS). A product
// code (RxNorm SCD/SBD such as "sumatriptan 50 MG Oral Tablet") is not in
// the ingredient table, so the display text is searched for ingredient
// names as the fallback.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace headachemd::terminology {

enum class code_system { unknown, rxnorm, icd10cm, icd10, snomed, loinc, cpt, hcpcs };

// Maps a FHIR Coding.system URI to a code system. Accepts the canonical
// URIs (http://snomed.info/sct, http://hl7.org/fhir/sid/icd-10-cm,
// http://www.nlm.nih.gov/research/umls/rxnorm, http://loinc.org,
// http://www.ama-assn.org/go/cpt, urn:oid:2.16.840.1.113883.6.285 (HCPCS))
// and the OIDs that EHRs send instead (urn:oid:2.16.840.1.113883.6.96 for
// SNOMED, .6.90 for ICD-10-CM, .6.88 for RxNorm, .6.1 for LOINC, .6.12 for CPT).
code_system system_from_uri(std::string_view uri);

// One FHIR Coding, as views into the caller's buffers.
struct coding_view {
    std::string_view system;
    std::string_view code;
    std::string_view display;
};

// --- Conditions -----------------------------------------------------------

enum class headache_type {
    none,  // not a headache diagnosis
    chronic_migraine,
    migraine_with_aura,
    migraine_without_aura,
    menstrual_migraine,
    hemiplegic_migraine,
    migraine,  // other or unspecified migraine, episodic syndromes
    tension_type,
    cluster,  // cluster and other trigeminal autonomic cephalalgias
    medication_overuse,
    post_traumatic,
    new_daily_persistent,
    cervicogenic,
    other_headache,
    headache_unspecified,
};

// snake_case name stored in the database; "" for none.
std::string_view to_string(headache_type t);

// The most specific headache type among all codings (ICD-10-CM or WHO
// ICD-10 by prefix, SNOMED CT by concept); only when no code classifies, the
// most specific type named by the codings' displays and `text`. Codings
// whose system is not recognised are read as text only.
// Specificity: chronic_migraine > the other named types > migraine >
// other_headache > headache_unspecified; a tie keeps the first found.
headache_type classify_condition(std::span<const coding_view> codings, std::string_view text);

// --- Medications ----------------------------------------------------------

enum class drug_class {
    none,
    triptan,
    gepant,
    ditan,
    ergot,
    cgrp_mab,
    botulinum_toxin,
    beta_blocker,
    anticonvulsant,
    tricyclic,
    snri,
    arb,
    calcium_channel,
    other_preventive,
    simple_analgesic,
    nsaid,
    combination_analgesic,
    opioid,
    antiemetic,
    steroid,
};

enum class therapy_role { other, acute, preventive, acute_and_preventive };

std::string_view to_string(drug_class c);    // "" for none
std::string_view to_string(therapy_role r);  // "other", "acute", "preventive", "acute_and_preventive"

struct medication_class {
    drug_class cls = drug_class::none;
    therapy_role role = therapy_role::other;
    // Lower-case ingredient name as RxNorm spells it ("sumatriptan",
    // "valproic acid"). For a multi-ingredient product, the ingredient names
    // in alphabetical order (RxNorm's SCD order, so the same whatever order
    // the source text used) joined with " / ", e.g. "acetaminophen /
    // butalbital / caffeine", when the combination is in the shipped
    // combination table; otherwise the ingredient that decided the class
    // (for an analgesic combination: butalbital, else the opioid, else
    // caffeine). Empty exactly when cls is none.
    std::string_view ingredient;  // static storage
};

// Codes first (RxNorm ingredient RxCUIs, HCPCS J0585/J3032): when the codes
// give a class, the text is not read. Otherwise ingredient names, synonyms
// and US brand names in each coding's display and in `text` (whole words,
// case-insensitive). A product with butalbital, or with caffeine or an
// opioid combined with an analgesic, is combination_analgesic
// (TERMINOLOGY.md); a product containing an ergot, triptan, ditan or gepant
// takes that class instead (ergotamine / caffeine is ergot).
medication_class classify_medication(std::span<const coding_view> codings, std::string_view text);

// --- Observations ---------------------------------------------------------

enum class instrument { other, pain_nrs, phq9, midas, hit6 };
std::string_view to_string(instrument i);  // "other", "pain_nrs", ...

// LOINC 72514-3 → pain_nrs, 44261-6 → phq9; MIDAS and HIT-6 have no
// verified LOINC code, so they match on the text ("MIDAS", "Migraine
// Disability Assessment", "HIT-6", "Headache Impact Test").
instrument classify_observation(std::span<const coding_view> codings, std::string_view text);

// --- Procedures -----------------------------------------------------------

enum class procedure_kind { other, botulinum_toxin, nerve_block, trigger_point };
std::string_view to_string(procedure_kind k);

// CPT 64615 and HCPCS J0585 → botulinum_toxin; CPT 64405, 64505 →
// nerve_block; 20552, 20553 → trigger_point; then the text.
procedure_kind classify_procedure(std::span<const coding_view> codings, std::string_view text);

// --- Encounters and appointments -----------------------------------------

// True when any coding or the text names a headache diagnosis, a headache
// procedure, or the words headache/migraine/cephalalgia.
bool is_headache_related(std::span<const coding_view> codings, std::string_view text);

// Remembers the answers of the functions above for inputs seen before.
// Clinical data repeats the same few hundred codes and texts endlessly, and
// a text search for ingredient names costs microseconds, so the normalizer
// asks through one of these. Answers are exactly those of the functions.
// Not thread-safe: one per normalizer. Memory is bounded (it forgets all
// when it holds more than 50,000 answers).
class memo {
public:
    headache_type condition(std::span<const coding_view> codings, std::string_view text);
    medication_class medication(std::span<const coding_view> codings, std::string_view text);
    instrument observation(std::span<const coding_view> codings, std::string_view text);
    procedure_kind procedure(std::span<const coding_view> codings, std::string_view text);
    bool headache_related(std::span<const coding_view> codings, std::string_view text);

private:
    const std::string& key(char kind, std::span<const coding_view> codings, std::string_view text);
    void bound();

    std::string key_;
    std::unordered_map<std::string, std::uint32_t> answers_;
    std::unordered_map<std::string, medication_class> medications_;
};

}  // namespace headachemd::terminology
