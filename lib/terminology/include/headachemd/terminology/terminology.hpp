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
#include <optional>
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
// The text reading understands negation by the word just before a term
// (not, non, no, without, never): "Migraine without aura - not chronic" is
// migraine_without_aura, "Headache, not migraine" headache_unspecified; of
// "chronic" and "episodic", the one said first decides.
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

// How a medication is given. Only the routes the schema names (schema 0005);
// anything else (sublingual, buccal, vaginal, inhalation...) is unknown.
enum class route {
    unknown,
    oral,
    ophthalmic,
    otic,
    topical,
    nasal,
    subcutaneous,
    intramuscular,
    intravenous,
    rectal,
    transdermal,
};
std::string_view to_string(route r);  // "" for unknown, else "oral", "ophthalmic", ...

struct medication_class {
    drug_class cls = drug_class::none;
    therapy_role role = therapy_role::other;
    // Lower-case ingredient name as RxNorm spells it ("sumatriptan",
    // "valproic acid"). For a multi-ingredient product, the ingredient names
    // in alphabetical order (RxNorm's SCD order, so the same whatever order
    // the source text used) joined with " / ", e.g. "acetaminophen /
    // butalbital / caffeine", when the combination is in the shipped
    // combination table; otherwise the ingredient that decided the class.
    // Empty exactly when no ingredient was recognised: an exclusion (low-dose
    // aspirin, phentermine/topiramate, an eye drop after for_route) keeps the
    // ingredient and sets cls none and role other.
    std::string_view ingredient;  // static storage
    // The single ingredient whose strength counts (the opioid of
    // oxycodone/acetaminophen, butalbital of a butalbital combination, the
    // triptan of sumatriptan/naproxen); empty when none was recognised.
    std::string_view primary;  // static storage
    bool contains_opioid = false;
    bool contains_butalbital = false;
    // mg of `primary` per unit (tablet, capsule, spray, pre-filled syringe),
    // from the first coding display or text that states it as RxNorm writes
    // strengths ("50 MG", "5 MG/ACTUAT", "0.5 ML sumatriptan 12 MG/ML");
    // nullopt when none does (percentages, units, per-mL without a volume).
    std::optional<double> strength_mg;
    // The route the dose form in the name implies ("Ophthalmic Solution",
    // "Oral Tablet", "Auto-Injector"); unknown when it says none.
    route form_route = route::unknown;
};

// Codes first (RxNorm ingredient RxCUIs, HCPCS J0585/J3032): when the codes
// give a class, the text is not read for the class. Otherwise ingredient
// names, synonyms and US brand names in each coding's display and in `text`
// (whole words, case-insensitive). Class rules, in order:
//   - phentermine in the product (phentermine/topiramate, Qsymia): no class;
//   - a migraine-specific drug decides (ergot, triptan, ditan, gepant);
//   - butalbital: combination_analgesic (also with codeine);
//   - any other opioid-containing product: opioid (oxycodone/acetaminophen);
//   - caffeine with a simple analgesic or NSAID: combination_analgesic;
//   - then NSAID, simple analgesic, the first classified ingredient.
// Then: aspirin of 162 mg or less per unit (or named "low dose"/"baby") is
// antiplatelet, and botulinum toxin named "cosmetic" is not a migraine
// drug: both get no class and role other, keeping the ingredient.
// contains_opioid/contains_butalbital, strength_mg and form_route are
// facts of the product, read from codes and names whatever decided the class.
medication_class classify_medication(std::span<const coding_view> codings, std::string_view text);

// The route of a Dosage.route CodeableConcept: SNOMED CT route concepts
// first (26643006 oral, 54485002 ophthalmic, 10547007 otic, 6064005
// topical, 46713006 nasal, 34206005 subcutaneous, 78421000 intramuscular,
// 47625008 intravenous, 37161004 rectal, 45890007 transdermal), then route
// words in the displays and text ("Oral", "PO", "Ophthalmic", ...).
route classify_route(std::span<const coding_view> codings, std::string_view text);

// Route exclusions for an order given by `r` (the dosage's route, else the
// product's form_route): ophthalmic, otic and topical forms are never
// headache drugs, and timolol is a migraine preventive only by mouth (the
// oral tablet; as eye drops it treats glaucoma). An excluded order keeps
// its ingredient, opioid/butalbital flags and strength, with cls none and
// role other.
medication_class for_route(medication_class mc, route r);

// --- Observations ---------------------------------------------------------

enum class instrument { other, pain_nrs, phq9, midas, hit6 };
std::string_view to_string(instrument i);  // "other", "pain_nrs", ...

// LOINC 72514-3 → pain_nrs, 44261-6 → phq9; MIDAS and HIT-6 have no
// verified LOINC code, so they match on the text ("MIDAS", "Migraine
// Disability Assessment", "HIT-6", "Headache Impact Test").
instrument classify_observation(std::span<const coding_view> codings, std::string_view text);

// --- Procedures -----------------------------------------------------------

enum class procedure_kind { other, botulinum_toxin, botulinum_toxin_other, nerve_block, trigger_point };
std::string_view to_string(procedure_kind k);

// Codes first: a CPT/HCPCS code that classifies (even as
// botulinum_toxin_other) decides, and the text is read only when none does.
//   botulinum_toxin: CPT 64615 (chemodenervation for chronic migraine), or a
//     botulinum toxin drug code (HCPCS J0585-J0588) with no other
//     chemodenervation site code in the resource and no "cosmetic" text;
//   botulinum_toxin_other: chemodenervation of other sites (CPT 64611,
//     64612, 64616, 64617, 64642-64647, 64650, 64653, 67345, 46505, 52287),
//     or a botulinum toxin drug code with "cosmetic" in the text;
//   nerve_block: 64405, 64505; trigger_point: 20552, 20553.
// Text: botulinum toxin words with a non-migraine site or indication
// (cosmetic, blepharospasm, cervical dystonia, bladder, spasticity, ...)
// are botulinum_toxin_other, else botulinum_toxin.
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
