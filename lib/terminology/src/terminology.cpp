// Headache classification tables. Every fact here comes from
// ../shared/TERMINOLOGY.md unless a comment says otherwise; clinical grouping
// choices cite ICHD-3 (ichd-3.org).
//
// Design: the tables are constexpr arrays checked at compile time (sorted,
// well-formed, every reference resolves), so a typo fails the build instead of
// misclassifying a patient. Text matching walks the caller's buffer in place:
// case-insensitive, on whole words, with any run of punctuation or spaces
// standing for one space. Nothing here allocates or throws.
#include "headachemd/terminology/terminology.hpp"
#include "headachemd/core/text.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>

namespace headachemd::terminology {
namespace {

constexpr std::size_t npos = std::string_view::npos;

// --- Character and code helpers -------------------------------------------

constexpr char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

// Bytes of a UTF-8 sequence count as word characters so that a non-ASCII
// letter never splits a word into two false matches.
constexpr bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           static_cast<unsigned char>(c) >= 0x80;
}

constexpr bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

constexpr std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Numeric identifiers (RxCUI, SNOMED CT concept ids) compared as integers, so
// the tables can be binary-searched and checked for order at compile time.
// SNOMED ids have at most 18 digits and fit in 64 bits. Returns nullopt for
// anything that is not 1..18 ASCII digits.
constexpr std::optional<std::uint64_t> parse_id(std::string_view code) {
    code = trim(code);
    if (code.empty() || code.size() > 18) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : code) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

// A short code trimmed, upper-cased and without dots: "g43.709" -> "G43709".
// ICD-10-CM codes are at most 7 characters and HCPCS 5; anything longer than
// the buffer is not one of ours and yields an empty view.
class compact_code {
public:
    explicit compact_code(std::string_view code) {
        for (char c : trim(code)) {
            if (c == '.') continue;
            if (size_ == buf_.size()) {
                size_ = 0;
                return;
            }
            buf_[size_++] = to_upper(c);
        }
    }
    std::string_view view() const { return {buf_.data(), size_}; }

private:
    std::array<char, 16> buf_{};
    std::size_t size_ = 0;
};

// --- Whole-word text matching ----------------------------------------------

// A pattern is lower-case ASCII words separated by single spaces. Checked at
// compile time for every table below.
constexpr bool is_valid_pattern(std::string_view p) {
    if (p.empty() || p.front() == ' ' || p.back() == ' ') return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == ' ') {
            if (p[i + 1] == ' ') return false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

// Matches `pattern` at text[pos]. A space in the pattern matches one or more
// non-word characters, so "tension type" matches "Tension-type" and
// "post traumatic" matches "post-traumatic". Returns the end index or npos.
constexpr std::size_t match_at(std::string_view text, std::size_t pos, std::string_view pattern) {
    std::size_t i = pos;
    for (char p : pattern) {
        if (p == ' ') {
            if (i >= text.size() || is_word_char(text[i])) return npos;
            while (i < text.size() && !is_word_char(text[i])) ++i;
        } else {
            if (i >= text.size() || to_lower(text[i]) != p) return npos;
            ++i;
        }
    }
    return i;
}

constexpr bool is_word_start(std::string_view text, std::size_t pos) {
    return is_word_char(text[pos]) && (pos == 0 || !is_word_char(text[pos - 1]));
}

// True when `pattern` occurs as whole words starting at the word start `pos`.
// A trailing plural "s" is allowed ("Migraines", "headaches").
constexpr bool term_at(std::string_view text, std::size_t pos, std::string_view pattern) {
    const std::size_t end = match_at(text, pos, pattern);
    if (end == npos) return false;
    if (end == text.size() || !is_word_char(text[end])) return true;
    return to_lower(text[end]) == 's' && (end + 1 == text.size() || !is_word_char(text[end + 1]));
}

constexpr bool has_term(std::string_view text, std::string_view pattern) {
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
        if (is_word_start(text, pos) && term_at(text, pos, pattern)) return true;
    }
    return false;
}

// The word starts of one text, found once so that testing a hundred patterns
// (the medication names) tries each only where a word begins. A text with
// more words than fit falls back to scanning.
class word_index {
public:
    explicit word_index(std::string_view text) : text_(text) {
        for (std::size_t pos = 0; pos < text.size(); ++pos) {
            if (!is_word_start(text, pos)) continue;
            if (size_ == starts_.size()) {
                size_ = 0;
                overflow_ = true;
                return;
            }
            starts_[size_++] = pos;
        }
    }
    bool has(std::string_view pattern) const {
        if (overflow_) return has_term(text_, pattern);
        for (std::size_t k = 0; k < size_; ++k) {
            if (term_at(text_, starts_[k], pattern)) return true;
        }
        return false;
    }

private:
    std::string_view text_;
    std::array<std::size_t, 48> starts_{};
    std::size_t size_ = 0;
    bool overflow_ = false;
};

static_assert(has_term("Sumatriptan 100 MG Oral Tablet", "sumatriptan"));
static_assert(has_term("Tension-type headaches", "tension type"));
static_assert(!has_term("dihydroergotamine 1 MG/ML", "ergotamine"));
static_assert(!has_term("Migraine without aura", "with aura"));
static_assert(!has_term("prednisolone", "prednisone"));

// --- Code systems -----------------------------------------------------------

struct system_entry {
    std::string_view uri;  // compared case-insensitively, scheme-less for http(s)
    code_system system;
};

// FHIR R4 terminology page (hl7.org/fhir/R4/terminologies-systems.html) for
// the URIs; HL7 OID registry for the urn:oid forms that EHRs send instead.
// HCPCS has two OIDs in the wild: .6.285 (HCPCS Level II, the one FHIR lists)
// and the older .6.14.
constexpr system_entry system_table[] = {
    {"snomed.info/sct", code_system::snomed},
    {"urn:oid:2.16.840.1.113883.6.96", code_system::snomed},
    {"hl7.org/fhir/sid/icd-10-cm", code_system::icd10cm},
    {"urn:oid:2.16.840.1.113883.6.90", code_system::icd10cm},
    {"hl7.org/fhir/sid/icd-10", code_system::icd10},
    {"urn:oid:2.16.840.1.113883.6.3", code_system::icd10},
    {"www.nlm.nih.gov/research/umls/rxnorm", code_system::rxnorm},
    {"urn:oid:2.16.840.1.113883.6.88", code_system::rxnorm},
    {"loinc.org", code_system::loinc},
    {"urn:oid:2.16.840.1.113883.6.1", code_system::loinc},
    {"www.ama-assn.org/go/cpt", code_system::cpt},
    {"urn:oid:2.16.840.1.113883.6.12", code_system::cpt},
    {"www.cms.gov/medicare/coding/hcpcsreleasecodesets", code_system::hcpcs},
    {"urn:oid:2.16.840.1.113883.6.285", code_system::hcpcs},
    {"urn:oid:2.16.840.1.113883.6.14", code_system::hcpcs},
};

bool is_icd10(code_system s) { return s == code_system::icd10cm || s == code_system::icd10; }

// CPT is HCPCS Level I, and EHRs label the two inconsistently; the codes do
// not collide (CPT is 5 digits, Level II a letter and 4 digits), so either
// system label is accepted for either kind of code.
bool is_cpt_or_hcpcs(code_system s) { return s == code_system::cpt || s == code_system::hcpcs; }

// --- Conditions -------------------------------------------------------------

// Higher is more specific (header contract): chronic_migraine > the other
// named types > migraine > other_headache > headache_unspecified > none.
constexpr int specificity(headache_type t) {
    switch (t) {
        case headache_type::none:
            return 0;
        case headache_type::headache_unspecified:
            return 1;
        case headache_type::other_headache:
            return 2;
        case headache_type::migraine:
            return 3;
        case headache_type::chronic_migraine:
            return 5;
        case headache_type::migraine_with_aura:
        case headache_type::migraine_without_aura:
        case headache_type::menstrual_migraine:
        case headache_type::hemiplegic_migraine:
        case headache_type::tension_type:
        case headache_type::cluster:
        case headache_type::medication_overuse:
        case headache_type::post_traumatic:
        case headache_type::new_daily_persistent:
        case headache_type::cervicogenic:
            return 4;
    }
    return 0;
}

struct icd_prefix {
    std::string_view prefix;  // dot-less, upper-case
    headache_type type;
};

// First matching prefix wins, so a longer prefix must come before any shorter
// prefix of it (checked below). ICD-10-CM per TERMINOLOGY.md; WHO ICD-10
// shares the G43/G44/R51 categories and is read with the same table.
constexpr icd_prefix icd_table[] = {
    // G43.7 chronic without aura, G43.E chronic with aura (FY2024). The enum
    // has one chronic type: chronicity outranks aura (ICHD-3 1.3).
    {"G437", headache_type::chronic_migraine},
    {"G43E", headache_type::chronic_migraine},
    {"G430", headache_type::migraine_without_aura},
    {"G431", headache_type::migraine_with_aura},
    {"G434", headache_type::hemiplegic_migraine},
    // G43.5/G43.6 persistent aura without/with cerebral infarction: ICHD-3
    // 1.4.2 and 1.4.3 require "a patient with 1.2 Migraine with aura".
    {"G435", headache_type::migraine_with_aura},
    {"G436", headache_type::migraine_with_aura},
    {"G4382", headache_type::menstrual_migraine},
    {"G4383", headache_type::menstrual_migraine},
    // G43.8 other, G43.9 unspecified, G43.A-D episodic syndromes (and WHO
    // G43.2 status migrainosus, G43.3 complicated migraine).
    {"G43", headache_type::migraine},
    // G44.0x cluster and other trigeminal autonomic cephalalgias.
    {"G440", headache_type::cluster},
    {"G442", headache_type::tension_type},
    {"G443", headache_type::post_traumatic},
    // G44.40/G44.41 drug-induced headache NEC is the code used for
    // medication-overuse headache; WHO ICD-10 has it as the 4-character G44.4.
    {"G444", headache_type::medication_overuse},
    // G44.51 hemicrania continua is a trigeminal autonomic cephalalgia in
    // ICHD-3 (3.4), which the cluster type covers.
    {"G4451", headache_type::cluster},
    {"G4452", headache_type::new_daily_persistent},
    // G44.86 cervicogenic headache (ICD-10-CM since FY2022, October 2021).
    {"G4486", headache_type::cervicogenic},
    // G44.1 vascular NEC, G44.53 thunderclap, G44.8x hypnic/cough/exertional...
    {"G44", headache_type::other_headache},
    // R51.0 "headache with orthostatic component, NEC" names a feature of a
    // secondary headache (ICHD-3 7.2, low CSF pressure), so it is specified,
    // not unspecified. R51 alone is the pre-FY2021 code for headache.
    {"R510", headache_type::other_headache},
    {"R51", headache_type::headache_unspecified},
};

constexpr bool icd_table_ordered() {
    for (std::size_t i = 0; i < std::size(icd_table); ++i) {
        for (std::size_t j = i + 1; j < std::size(icd_table); ++j) {
            if (icd_table[j].prefix.starts_with(icd_table[i].prefix)) return false;
        }
    }
    return true;
}
static_assert(icd_table_ordered(), "a shorter ICD prefix shadows a longer one listed after it");

struct snomed_entry {
    std::uint64_t id;
    headache_type type;
};

// Sorted by id for binary search (checked below).
constexpr snomed_entry snomed_table[] = {
    {4473006, headache_type::migraine_with_aura},
    {23186000, headache_type::menstrual_migraine},
    {25064002, headache_type::headache_unspecified},  // headache
    {37796009, headache_type::migraine},
    {54012000, headache_type::post_traumatic},
    {56097005, headache_type::migraine_without_aura},
    {59292006, headache_type::hemiplegic_migraine},
    {193031009, headache_type::cluster},
    {230461009, headache_type::headache_unspecified},  // headache disorder
    {230470007, headache_type::tension_type},          // episodic
    {230471006, headache_type::tension_type},          // chronic
    {230472004, headache_type::cluster},               // episodic
    {230473009, headache_type::cluster},               // chronic
    {279016001, headache_type::cervicogenic},
    {398057008, headache_type::tension_type},
    {698803006, headache_type::medication_overuse},
    {121021000119105, headache_type::new_daily_persistent},
    // No international chronic-migraine concept exists; these two are US
    // extension concepts (124171000119105 is what Synthea emits).
    {124171000119105, headache_type::chronic_migraine},
    {431601000124105, headache_type::chronic_migraine},
};

template <typename Table>
constexpr bool ids_strictly_sorted(const Table& table) {
    for (std::size_t i = 1; i < std::size(table); ++i) {
        if (!(table[i - 1].id < table[i].id)) return false;
    }
    return true;
}
static_assert(ids_strictly_sorted(snomed_table));

template <typename Table>
constexpr auto find_id(const Table& table, std::uint64_t id) -> decltype(&table[0]) {
    const auto* it = std::lower_bound(std::begin(table), std::end(table), id,
                                      [](const auto& e, std::uint64_t v) { return e.id < v; });
    return (it != std::end(table) && it->id == id) ? it : nullptr;
}

headache_type classify_condition_code(const coding_view& c) {
    const code_system sys = system_from_uri(c.system);
    if (is_icd10(sys)) {
        const compact_code code(c.code);
        if (code.view().empty()) return headache_type::none;
        for (const auto& e : icd_table) {
            if (code.view().starts_with(e.prefix)) return e.type;
        }
    } else if (sys == code_system::snomed) {
        if (const auto id = parse_id(c.code)) {
            if (const auto* e = find_id(snomed_table, *id)) return e->type;
        }
    }
    return headache_type::none;
}

bool names_headache(std::string_view text) {
    return has_term(text, "headache") || has_term(text, "cephalalgia") || has_term(text, "cephalgia");
}

// The word that ends just before `pos` (a word start), lower-case letters
// compared by the caller; empty at the start of the text.
constexpr std::string_view word_before(std::string_view text, std::size_t pos) {
    std::size_t end = pos;
    while (end > 0 && !is_word_char(text[end - 1])) --end;
    std::size_t begin = end;
    while (begin > 0 && is_word_char(text[begin - 1])) --begin;
    return text.substr(begin, end - begin);
}

// Where `pattern` first occurs as whole words not negated by the word just
// before it ("not chronic", "non-chronic", "no aura", "without aura");
// npos when it never does. "nonchronic" is one word and never matches.
constexpr std::size_t first_affirmed(std::string_view text, std::string_view pattern) {
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
        if (!is_word_start(text, pos) || !term_at(text, pos, pattern)) continue;
        const std::string_view before = word_before(text, pos);
        const bool negated = iequals(before, "not") || iequals(before, "non") || iequals(before, "no") ||
                             iequals(before, "without") || iequals(before, "never");
        if (!negated) return pos;
    }
    return npos;
}

constexpr bool has_affirmed(std::string_view text, std::string_view pattern) {
    return first_affirmed(text, pattern) != npos;
}

static_assert(!has_affirmed("Migraine without aura - not chronic", "chronic"));
static_assert(!has_affirmed("Migraine, non-chronic", "chronic"));
static_assert(has_affirmed("Chronic migraine, not intractable", "chronic"));
static_assert(!has_affirmed("Migraine without aura", "aura"));
static_assert(has_affirmed("Migraine with aura", "aura"));

// Text fallback, one checked rule after another: the first rule that fires
// gives the most specific type the words support. Negation is understood
// for the words that decide a subtype: "not chronic", "non-chronic" and
// "episodic" are not chronic migraine (ICHD-3 1.3 needs >= 15 headache days
// a month; anything said to be episodic or not chronic is 1.1/1.2), and
// "without aura", "no aura" are 1.1 migraine without aura. "Headache, not
// migraine" names no migraine.
headache_type classify_condition_text(std::string_view text) {
    if (text.empty()) return headache_type::none;
    const bool migraine = has_affirmed(text, "migraine");
    if (migraine) {
        // "Transformed migraine" is the older name for chronic migraine.
        // Of "chronic" and "episodic", the one said first describes the
        // migraine: "Episodic migraine, history of chronic" is episodic,
        // "Chronic migraine, previously episodic" chronic.
        const std::size_t chronic = first_affirmed(text, "chronic");
        const std::size_t episodic = first_affirmed(text, "episodic");
        if ((chronic != npos && chronic < episodic) || has_term(text, "transformed migraine")) {
            return headache_type::chronic_migraine;
        }
        // Hemiplegic migraine is a subtype of migraine with aura (ICHD-3
        // 1.2.3), and menstrual migraine may come with or without aura
        // (ICHD-3 A1.1.1/A1.2.0.1), so both outrank the aura words.
        if (has_term(text, "hemiplegic")) return headache_type::hemiplegic_migraine;
        if (has_term(text, "menstrual") || has_term(text, "menstrually")) {
            return headache_type::menstrual_migraine;
        }
        // An affirmed "aura" ("with aura", "aura") is 1.2; a negated one
        // only ("without aura", "no aura") is 1.1.
        if (has_affirmed(text, "aura")) return headache_type::migraine_with_aura;
        if (has_term(text, "aura")) return headache_type::migraine_without_aura;
    }
    const bool headache = names_headache(text);
    if (has_term(text, "medication overuse") || has_term(text, "overuse headache") ||
        has_term(text, "rebound headache") || has_term(text, "analgesic rebound") ||
        (headache && (has_term(text, "drug induced") || has_term(text, "medication induced")))) {
        return headache_type::medication_overuse;
    }
    if (has_term(text, "tension type") || (headache && has_term(text, "tension"))) {
        return headache_type::tension_type;
    }
    // Cluster and the other trigeminal autonomic cephalalgias (ICHD-3 3.x).
    if ((headache && has_term(text, "cluster")) || has_term(text, "trigeminal autonomic") ||
        has_term(text, "hemicrania") || has_term(text, "sunct")) {
        return headache_type::cluster;
    }
    // "headache" is required: "post-traumatic stress disorder" is not one.
    if (headache && (has_term(text, "post traumatic") || has_term(text, "posttraumatic") ||
                     has_term(text, "post concussion") || has_term(text, "postconcussion"))) {
        return headache_type::post_traumatic;
    }
    if (has_term(text, "new daily persistent") || has_term(text, "ndph")) {
        return headache_type::new_daily_persistent;
    }
    if (has_term(text, "cervicogenic")) return headache_type::cervicogenic;
    if (migraine) return headache_type::migraine;
    if (headache) return headache_type::headache_unspecified;
    return headache_type::none;
}

// --- Medications ------------------------------------------------------------

constexpr therapy_role class_role(drug_class c) {
    switch (c) {
        case drug_class::none:
            return therapy_role::other;
        case drug_class::triptan:
        case drug_class::gepant:  // as needed; atogepant and rimegepant override below
        case drug_class::ditan:
        case drug_class::ergot:
        case drug_class::simple_analgesic:
        case drug_class::nsaid:
        case drug_class::combination_analgesic:
        case drug_class::opioid:
        case drug_class::antiemetic:
        // Not in TERMINOLOGY.md's role list: dexamethasone and prednisone are
        // given as rescue for status migrainosus or a bridge during
        // withdrawal, short courses for an attack rather than prevention.
        case drug_class::steroid:
            return therapy_role::acute;
        case drug_class::cgrp_mab:
        case drug_class::botulinum_toxin:
        case drug_class::beta_blocker:
        case drug_class::anticonvulsant:
        case drug_class::tricyclic:
        case drug_class::snri:
        case drug_class::arb:
        case drug_class::calcium_channel:
        case drug_class::other_preventive:
            return therapy_role::preventive;
    }
    return therapy_role::other;
}

struct ingredient_info {
    std::string_view name;  // lower-case, as RxNorm spells the ingredient; also a text pattern
    drug_class cls;
    therapy_role role;
};

constexpr ingredient_info ing(std::string_view name, drug_class c) { return {name, c, class_role(c)}; }

// Every ingredient the classifier knows. The name doubles as the text pattern.
// Names marked (text) are not in TERMINOLOGY.md's code table and are matched
// by name only; no RxCUI is guessed for them.
constexpr ingredient_info ingredient_table[] = {
    ing("sumatriptan", drug_class::triptan),
    ing("naratriptan", drug_class::triptan),
    ing("zolmitriptan", drug_class::triptan),
    ing("rizatriptan", drug_class::triptan),
    ing("almotriptan", drug_class::triptan),
    ing("eletriptan", drug_class::triptan),
    ing("frovatriptan", drug_class::triptan),
    ing("ubrogepant", drug_class::gepant),
    // Rimegepant is approved both for attacks and every other day for
    // prevention; atogepant for prevention only (TERMINOLOGY.md roles).
    {"rimegepant", drug_class::gepant, therapy_role::acute_and_preventive},
    {"atogepant", drug_class::gepant, therapy_role::preventive},
    ing("zavegepant", drug_class::gepant),  // (text) RxCUI UNVERIFIED
    ing("lasmiditan", drug_class::ditan),   // (text) RxCUI UNVERIFIED
    ing("dihydroergotamine", drug_class::ergot),
    ing("ergotamine", drug_class::ergot),
    ing("erenumab", drug_class::cgrp_mab),
    ing("galcanezumab", drug_class::cgrp_mab),
    ing("fremanezumab", drug_class::cgrp_mab),
    ing("eptinezumab", drug_class::cgrp_mab),
    ing("botulinum toxin type a", drug_class::botulinum_toxin),  // RxNorm's name for RxCUI 1712
    ing("onabotulinumtoxina", drug_class::botulinum_toxin),      // Botox, HCPCS J0585
    ing("propranolol", drug_class::beta_blocker),
    ing("metoprolol", drug_class::beta_blocker),
    // Timolol is a preventive only by mouth (for_route): its eye drops
    // treat glaucoma.
    ing("timolol", drug_class::beta_blocker),
    // Atenolol and nadolol: beta-blockers used for migraine prevention
    // (AAN/AHS 2012 guideline, level B).
    ing("atenolol", drug_class::beta_blocker),
    ing("nadolol", drug_class::beta_blocker),
    ing("topiramate", drug_class::anticonvulsant),
    ing("valproic acid", drug_class::anticonvulsant),
    ing("divalproex", drug_class::anticonvulsant),
    ing("amitriptyline", drug_class::tricyclic),
    ing("nortriptyline", drug_class::tricyclic),
    ing("venlafaxine", drug_class::snri),
    ing("duloxetine", drug_class::snri),
    ing("candesartan", drug_class::arb),
    ing("verapamil", drug_class::calcium_channel),
    ing("flunarizine", drug_class::calcium_channel),
    ing("memantine", drug_class::other_preventive),
    ing("acetaminophen", drug_class::simple_analgesic),
    ing("aspirin", drug_class::simple_analgesic),
    ing("ibuprofen", drug_class::nsaid),
    ing("naproxen", drug_class::nsaid),
    ing("diclofenac", drug_class::nsaid),
    ing("ketorolac", drug_class::nsaid),
    ing("celecoxib", drug_class::nsaid),
    ing("indomethacin", drug_class::nsaid),    // (text) hemicrania treatment
    ing("ketoprofen", drug_class::nsaid),      // (text)
    ing("meloxicam", drug_class::nsaid),       // (text)
    ing("mefenamic acid", drug_class::nsaid),  // (text) menstrual migraine
    // Butalbital is sold almost only in analgesic combinations; alone (an
    // ingredient code from such a product) it still counts as one, the
    // ICHD-3 8.2.5 overuse class.
    ing("butalbital", drug_class::combination_analgesic),
    // Caffeine alone is not a headache drug; it matters only as a
    // combination component.
    ing("caffeine", drug_class::none),
    // Phentermine has no headache class; its only combination with a
    // headache drug, phentermine/topiramate (Qsymia), is labelled for
    // chronic weight management, so the product is not a migraine
    // preventive (classify_ingredients) even though topiramate is.
    ing("phentermine", drug_class::none),
    ing("codeine", drug_class::opioid),
    ing("tramadol", drug_class::opioid),
    ing("oxycodone", drug_class::opioid),
    ing("hydrocodone", drug_class::opioid),
    // (text) Further opioids: any opioid counts toward ICHD-3 8.2.4; nasal
    // butorphanol in particular was marketed for migraine.
    ing("butorphanol", drug_class::opioid),
    ing("dihydrocodeine", drug_class::opioid),
    ing("hydromorphone", drug_class::opioid),
    ing("morphine", drug_class::opioid),
    ing("oxymorphone", drug_class::opioid),
    ing("tapentadol", drug_class::opioid),
    ing("meperidine", drug_class::opioid),
    ing("methadone", drug_class::opioid),
    ing("fentanyl", drug_class::opioid),
    ing("metoclopramide", drug_class::antiemetic),
    ing("prochlorperazine", drug_class::antiemetic),
    ing("ondansetron", drug_class::antiemetic),
    ing("promethazine", drug_class::antiemetic),  // (text)
    ing("dexamethasone", drug_class::steroid),
    ing("prednisone", drug_class::steroid),
    ing("prednisolone", drug_class::steroid),        // (text)
    ing("methylprednisolone", drug_class::steroid),  // (text)
};

constexpr const ingredient_info* find_ingredient(std::string_view name) {
    for (const auto& i : ingredient_table) {
        if (i.name == name) return &i;
    }
    return nullptr;
}

struct rxcui_entry {
    std::uint64_t id;
    std::string_view ingredient;
};

// RxNorm ingredient RxCUIs from TERMINOLOGY.md, sorted by number.
constexpr rxcui_entry rxcui_table[] = {
    {161, "acetaminophen"},
    {704, "amitriptyline"},
    {1191, "aspirin"},
    // 1202 atenolol, 7226 nadolol, 8152 phentermine: TERMINOLOGY.md lists
    // the first two as UNVERIFIED; all three are the RxNorm ingredient
    // codes as the maintainers know them, not checked against a release
    // here. 4337 fentanyl, 6813 methadone, 7052 morphine and 72625
    // duloxetine match the CPIC drug table (RxNorm ids).
    {1202, "atenolol"},
    // 1712 is "botulinum toxin type A"; a separate onabotulinumtoxinA
    // ingredient code is UNVERIFIED, so none is listed.
    {1712, "botulinum toxin type a"},
    {1886, "caffeine"},
    {2670, "codeine"},
    {3264, "dexamethasone"},
    {3355, "diclofenac"},
    {3418, "dihydroergotamine"},
    {4025, "ergotamine"},
    {4337, "fentanyl"},
    {4459, "flunarizine"},
    {5489, "hydrocodone"},
    {5640, "ibuprofen"},
    {6719, "memantine"},
    {6813, "methadone"},
    {6915, "metoclopramide"},
    {6918, "metoprolol"},
    {7052, "morphine"},
    {7226, "nadolol"},
    {7258, "naproxen"},
    {7531, "nortriptyline"},
    {7804, "oxycodone"},
    {8152, "phentermine"},
    {8640, "prednisone"},
    {8704, "prochlorperazine"},
    {8787, "propranolol"},
    {10600, "timolol"},
    {10689, "tramadol"},
    {11118, "valproic acid"},
    {11170, "verapamil"},
    {19860, "butalbital"},
    {26225, "ondansetron"},
    {35827, "ketorolac"},
    {37418, "sumatriptan"},
    {38404, "topiramate"},
    {39786, "venlafaxine"},
    {72625, "duloxetine"},
    {88014, "rizatriptan"},
    {135775, "zolmitriptan"},
    {140587, "celecoxib"},
    {141366, "naratriptan"},
    {214354, "candesartan"},
    {228783, "frovatriptan"},
    {231049, "eletriptan"},
    {266856, "divalproex"},  // UNVERIFIED: divalproex sodium is a salt form, maybe not an IN
    {279645, "almotriptan"},
    {2045628, "erenumab"},
    {2056691, "fremanezumab"},
    {2058846, "galcanezumab"},
    {2268216, "ubrogepant"},  // UNVERIFIED: one of 2268216/2268222 is the ingredient
    {2268222, "ubrogepant"},  // UNVERIFIED
    {2282307, "rimegepant"},
    {2282660, "eptinezumab"},  // UNVERIFIED: one of 2282660/2283050 is the ingredient
    {2283050, "eptinezumab"},  // UNVERIFIED
    {2571813, "atogepant"},
};
static_assert(ids_strictly_sorted(rxcui_table));

// HCPCS Level II drug codes (TERMINOLOGY.md procedures section).
struct hcpcs_drug {
    std::string_view code;
    std::string_view ingredient;
};
constexpr hcpcs_drug hcpcs_drug_table[] = {
    {"J0585", "onabotulinumtoxina"},  // per unit
    {"J3032", "eptinezumab"},         // per mg
};

// Other names for an ingredient: synonyms, abbreviations and US brands. A
// target is one ingredient or, for a combination brand, several joined with
// " / ".
struct alias_entry {
    std::string_view pattern;
    std::string_view target;
};

constexpr alias_entry alias_table[] = {
    // Synonyms and abbreviations seen in EHR text.
    {"paracetamol", "acetaminophen"},
    {"apap", "acetaminophen"},
    {"acetylsalicylic acid", "aspirin"},
    {"valproate", "valproic acid"},
    {"dhe", "dihydroergotamine"},
    {"onabotulinumtoxin a", "onabotulinumtoxina"},
    {"botulinum toxin", "botulinum toxin type a"},
    // Brands.
    {"imitrex", "sumatriptan"},
    {"onzetra", "sumatriptan"},
    {"zembrace", "sumatriptan"},
    {"tosymra", "sumatriptan"},
    {"maxalt", "rizatriptan"},
    {"zomig", "zolmitriptan"},
    {"relpax", "eletriptan"},
    {"amerge", "naratriptan"},
    {"axert", "almotriptan"},
    {"frova", "frovatriptan"},
    {"treximet", "naproxen / sumatriptan"},
    {"nurtec", "rimegepant"},
    {"ubrelvy", "ubrogepant"},
    {"qulipta", "atogepant"},
    {"zavzpret", "zavegepant"},
    {"reyvow", "lasmiditan"},
    {"migranal", "dihydroergotamine"},
    {"trudhesa", "dihydroergotamine"},
    {"cafergot", "caffeine / ergotamine"},
    {"aimovig", "erenumab"},
    {"emgality", "galcanezumab"},
    {"ajovy", "fremanezumab"},
    {"vyepti", "eptinezumab"},
    {"botox", "onabotulinumtoxina"},
    {"inderal", "propranolol"},
    {"toprol", "metoprolol"},
    {"tenormin", "atenolol"},
    {"corgard", "nadolol"},
    {"cymbalta", "duloxetine"},
    {"qsymia", "phentermine / topiramate"},
    {"adipex", "phentermine"},
    {"lopressor", "metoprolol"},
    {"topamax", "topiramate"},
    {"trokendi", "topiramate"},
    {"qudexy", "topiramate"},
    {"depakote", "divalproex"},
    {"depakene", "valproic acid"},
    {"elavil", "amitriptyline"},
    {"pamelor", "nortriptyline"},
    {"effexor", "venlafaxine"},
    {"atacand", "candesartan"},
    {"calan", "verapamil"},
    {"namenda", "memantine"},
    {"tylenol", "acetaminophen"},
    {"tylenol 3", "acetaminophen / codeine"},
    {"tylenol 4", "acetaminophen / codeine"},
    {"advil", "ibuprofen"},
    {"motrin", "ibuprofen"},
    {"aleve", "naproxen"},
    {"naprosyn", "naproxen"},
    {"anaprox", "naproxen"},
    {"cambia", "diclofenac"},
    {"toradol", "ketorolac"},
    {"sprix", "ketorolac"},
    {"celebrex", "celecoxib"},
    {"elyxyb", "celecoxib"},
    {"fioricet", "acetaminophen / butalbital / caffeine"},
    {"esgic", "acetaminophen / butalbital / caffeine"},
    {"fiorinal", "aspirin / butalbital / caffeine"},
    // Only the Excedrin lines named here: Excedrin PM is acetaminophen with
    // diphenhydramine, not a caffeine combination.
    {"excedrin migraine", "acetaminophen / aspirin / caffeine"},
    {"excedrin extra strength", "acetaminophen / aspirin / caffeine"},
    {"excedrin tension headache", "acetaminophen / caffeine"},
    {"percocet", "acetaminophen / oxycodone"},
    {"percodan", "aspirin / oxycodone"},
    {"lortab", "acetaminophen / hydrocodone"},
    {"nucynta", "tapentadol"},
    {"vicodin", "acetaminophen / hydrocodone"},
    {"norco", "acetaminophen / hydrocodone"},
    {"ultram", "tramadol"},
    {"stadol", "butorphanol"},
    {"reglan", "metoclopramide"},
    {"compazine", "prochlorperazine"},
    {"zofran", "ondansetron"},
    {"decadron", "dexamethasone"},
};

// Multi-ingredient products whose joined name is returned as `ingredient`.
// Ingredients are in alphabetical order, as RxNorm writes SCD names, so the
// string is the same whatever order the source text used.
constexpr std::string_view combination_table[] = {
    "acetaminophen / aspirin / caffeine",
    "acetaminophen / butalbital",
    "acetaminophen / butalbital / caffeine",
    "acetaminophen / butalbital / caffeine / codeine",
    "acetaminophen / caffeine",
    "acetaminophen / caffeine / dihydrocodeine",
    "acetaminophen / codeine",
    "acetaminophen / hydrocodone",
    "acetaminophen / ibuprofen",
    "acetaminophen / oxycodone",
    "acetaminophen / tramadol",
    "aspirin / butalbital / caffeine",
    "aspirin / butalbital / caffeine / codeine",
    "aspirin / caffeine",
    "aspirin / caffeine / dihydrocodeine",
    "aspirin / oxycodone",
    "caffeine / ergotamine",
    "celecoxib / tramadol",
    "hydrocodone / ibuprofen",
    "ibuprofen / oxycodone",
    "naproxen / sumatriptan",
    "phentermine / topiramate",
};

constexpr std::string_view list_separator = " / ";

// Calls f(name) for each name in "a / b / c".
template <typename F>
constexpr bool for_each_listed(std::string_view list, F&& f) {
    for (;;) {
        const std::size_t sep = list.find(list_separator);
        if (!f(list.substr(0, sep))) return false;
        if (sep == npos) return true;
        list.remove_prefix(sep + list_separator.size());
    }
}

constexpr bool is_ingredient_list(std::string_view list, bool sorted) {
    std::string_view previous;
    return for_each_listed(list, [&](std::string_view name) {
        const bool ok = find_ingredient(name) != nullptr && (!sorted || previous < name);
        previous = name;
        return ok;
    });
}

constexpr bool tables_consistent() {
    for (std::size_t i = 0; i < std::size(ingredient_table); ++i) {
        if (!is_valid_pattern(ingredient_table[i].name)) return false;
        for (std::size_t j = i + 1; j < std::size(ingredient_table); ++j) {
            if (ingredient_table[i].name == ingredient_table[j].name) return false;
        }
    }
    for (const auto& r : rxcui_table) {
        if (find_ingredient(r.ingredient) == nullptr) return false;
    }
    for (const auto& h : hcpcs_drug_table) {
        if (find_ingredient(h.ingredient) == nullptr) return false;
    }
    for (const auto& a : alias_table) {
        if (!is_valid_pattern(a.pattern) || !is_ingredient_list(a.target, true)) return false;
    }
    for (std::string_view combo : combination_table) {
        if (combo.find(list_separator) == npos || !is_ingredient_list(combo, true)) return false;
    }
    return true;
}
static_assert(tables_consistent(), "a terminology table names an unknown ingredient or is malformed");

// The distinct ingredients found for one medication, kept in name order.
class ingredient_set {
public:
    void add(const ingredient_info* i) {
        const ingredient_info* const* begin = items_.data();
        const ingredient_info* const* end = begin + size_;
        const ingredient_info* const* pos =
            std::lower_bound(begin, end, i, [](const auto* a, const auto* b) { return a->name < b->name; });
        if (pos != end && *pos == i) return;
        if (size_ == items_.size()) return;  // no real product has this many
        const auto at = static_cast<std::size_t>(pos - begin);
        for (std::size_t k = size_; k > at; --k) items_[k] = items_[k - 1];
        items_[at] = i;
        ++size_;
    }
    void add(std::string_view name) {
        if (const auto* i = find_ingredient(name)) add(i);
    }
    void add_all(const ingredient_set& other) {
        for (const auto* i : other.items()) add(i);
    }
    std::span<const ingredient_info* const> items() const { return {items_.data(), size_}; }
    bool empty() const { return size_ == 0; }

    const ingredient_info* first_of(drug_class c) const {
        for (const auto* i : items()) {
            if (i->cls == c) return i;
        }
        return nullptr;
    }
    bool has(drug_class c) const { return first_of(c) != nullptr; }
    bool has(std::string_view name) const {
        for (const auto* i : items()) {
            if (i->name == name) return true;
        }
        return false;
    }

private:
    std::array<const ingredient_info*, 12> items_{};
    std::size_t size_ = 0;
};

void collect_codes(const coding_view& c, ingredient_set& out) {
    const code_system sys = system_from_uri(c.system);
    if (sys == code_system::rxnorm) {
        if (const auto id = parse_id(c.code)) {
            if (const auto* e = find_id(rxcui_table, *id)) out.add(e->ingredient);
        }
    } else if (is_cpt_or_hcpcs(sys)) {
        const compact_code code(c.code);
        for (const auto& h : hcpcs_drug_table) {
            if (code.view() == h.code) out.add(h.ingredient);
        }
    }
}

void collect_text(std::string_view text, ingredient_set& out) {
    if (text.empty()) return;
    const word_index words(text);
    for (const auto& i : ingredient_table) {
        if (words.has(i.name)) out.add(&i);
    }
    for (const auto& a : alias_table) {
        if (!words.has(a.pattern)) continue;
        for_each_listed(a.target, [&](std::string_view name) {
            out.add(name);
            return true;
        });
    }
}

bool matches_combination(std::string_view combo, const ingredient_set& set) {
    std::size_t k = 0;
    const auto items = set.items();
    const bool all = for_each_listed(
        combo, [&](std::string_view name) { return k < items.size() && items[k++]->name == name; });
    return all && k == items.size();
}

// Decides the class of a product from its ingredients.
//   0. Phentermine anywhere: no class. Phentermine/topiramate (Qsymia) is
//      labelled (FDA) for chronic weight management only, and its
//      topiramate doses (23-92 mg) are no migraine-prevention trial.
//   1. A migraine-specific drug decides the class of any product containing
//      it: ergot (so ergotamine/caffeine is ergot, ICHD-3 8.2.1 counts it as
//      ergotamine overuse), then triptan (sumatriptan/naproxen), ditan, gepant.
//   2. Butalbital makes combination_analgesic (ICHD-3 8.2.5), also when the
//      product holds codeine too (contains_opioid tells that).
//   3. Any other product containing an opioid is opioid (ICHD-3 8.2.4:
//      opioid-overuse headache has the same >= 10 days threshold as 8.2.5,
//      and an oxycodone/acetaminophen tablet must be visible as an opioid).
//   4. Caffeine together with a simple analgesic or NSAID is
//      combination_analgesic (TERMINOLOGY.md; ICHD-3 8.2.5).
//   5. Otherwise NSAID, then simple analgesic (the two are one overuse
//      class, ICHD-3 8.2.3), then the first ingredient in name order that
//      has a class.
medication_class classify_ingredients(const ingredient_set& set) {
    const auto items = set.items();
    medication_class out;
    for (const auto* i : items) {
        if (i->cls == drug_class::opioid) out.contains_opioid = true;
        if (i->name == "butalbital") out.contains_butalbital = true;
    }
    if (items.empty()) return out;

    const ingredient_info* primary = nullptr;
    drug_class cls = drug_class::none;
    const auto pick = [&](drug_class c) {
        if (primary == nullptr) {
            primary = set.first_of(c);
            if (primary != nullptr) cls = c;
        }
    };
    const auto joined = [&]() -> std::string_view {
        if (items.size() > 1) {
            for (std::string_view combo : combination_table) {
                if (matches_combination(combo, set)) return combo;
            }
        }
        return {};
    };
    if (set.has("phentermine")) {
        out.primary = find_ingredient("phentermine")->name;
        out.ingredient = joined();
        if (out.ingredient.empty()) out.ingredient = out.primary;
        return out;
    }
    if (items.size() == 1) {
        primary = items[0];
        cls = primary->cls;
    } else {
        pick(drug_class::ergot);
        pick(drug_class::triptan);
        pick(drug_class::ditan);
        pick(drug_class::gepant);
        pick(drug_class::combination_analgesic);  // butalbital
        pick(drug_class::opioid);
        const bool analgesic = set.has(drug_class::simple_analgesic) || set.has(drug_class::nsaid);
        if (primary == nullptr && analgesic && set.has("caffeine")) {
            cls = drug_class::combination_analgesic;
            primary = find_ingredient("caffeine");
        }
        pick(drug_class::nsaid);
        pick(drug_class::simple_analgesic);
        for (const auto* i : items) {
            if (primary == nullptr && i->cls != drug_class::none) {
                primary = i;
                cls = i->cls;
            }
        }
    }
    if (cls == drug_class::none) return out;

    out.cls = cls;
    out.role = (primary->cls == cls) ? primary->role : class_role(cls);
    out.ingredient = primary->name;
    out.primary = primary->name;
    if (const std::string_view combo = joined(); !combo.empty()) out.ingredient = combo;
    return out;
}

// --- Strength and dose form ----------------------------------------------------

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number at text[i] ("50", "0.5", ".5"); advances i past it.
constexpr std::optional<double> read_decimal(std::string_view text, std::size_t& i) {
    double v = 0;
    bool any = false;
    while (i < text.size() && is_digit(text[i])) {
        v = v * 10 + (text[i] - '0');
        ++i;
        any = true;
    }
    if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
        ++i;
        double scale = 0.1;
        while (i < text.size() && is_digit(text[i])) {
            v += (text[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
        any = true;
    }
    if (!any) return std::nullopt;
    return v;
}

// The letters of a unit word at text[i] ("MG", "mcg", "ACTUAT"); advances i.
constexpr std::string_view read_letters(std::string_view text, std::size_t& i) {
    const std::size_t begin = i;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z'))) ++i;
    return text.substr(begin, i - begin);
}

// The volume of a quantified RxNorm name ("0.5 ML sumatriptan 12 MG/ML
// Auto-Injector"): "<number> ML" right before the ingredient at `pos`.
constexpr std::optional<double> volume_before(std::string_view text, std::size_t pos) {
    std::size_t end = pos;
    while (end > 0 && is_space(text[end - 1])) --end;
    std::size_t begin = end;
    while (begin > 0 && is_word_char(text[begin - 1])) --begin;
    if (!iequals(text.substr(begin, end - begin), "ml")) return std::nullopt;
    while (begin > 0 && is_space(text[begin - 1])) --begin;
    std::size_t num = begin;
    while (num > 0 && (is_digit(text[num - 1]) || text[num - 1] == '.')) --num;
    if (num == begin || (num > 0 && is_word_char(text[num - 1]))) return std::nullopt;
    std::size_t i = num;
    const auto v = read_decimal(text, i);
    if (!v || i != begin) return std::nullopt;
    return v;
}

// mg per unit of `ingredient` in `text`, as RxNorm names write strengths:
// the ingredient, optional salt words ("oxyCODONE Hydrochloride"), then
// "<number> MG" (or MCG, G), optionally per unit ("/ACTUAT"), or per mL
// with the product's volume before the ingredient. Stops at the next
// component (" / ", ",", ";"). nullopt for anything else (%, UNT, MG/HR).
constexpr std::optional<double> strength_in(std::string_view text, std::string_view ingredient) {
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
        if (!is_word_start(text, pos)) continue;
        const std::size_t end = match_at(text, pos, ingredient);
        if (end == npos || (end < text.size() && is_word_char(text[end]))) continue;
        std::size_t i = end;
        for (int words = 0; i < text.size() && words < 4;) {
            const char c = text[i];
            if (c == '/' || c == ',' || c == ';' || c == '(') break;
            if (is_space(c) || c == '-') {
                ++i;
                continue;
            }
            if (!is_digit(c) && c != '.') {
                while (i < text.size() && is_word_char(text[i])) ++i;
                ++words;
                continue;
            }
            const auto value = read_decimal(text, i);
            if (!value) break;
            while (i < text.size() && text[i] == ' ') ++i;
            const std::string_view unit = read_letters(text, i);
            double factor = 0;
            if (iequals(unit, "mg")) factor = 1;
            if (iequals(unit, "mcg") || iequals(unit, "ug")) factor = 0.001;
            if (iequals(unit, "g")) factor = 1000;
            if (factor == 0 || (i < text.size() && is_word_char(text[i]))) break;
            if (i < text.size() && text[i] == '/') {
                ++i;
                const std::string_view per = read_letters(text, i);
                if (iequals(per, "ml")) {
                    const auto volume = volume_before(text, pos);
                    if (!volume) break;
                    return *value * factor * *volume;
                }
                const bool per_unit = iequals(per, "actuat") || iequals(per, "actuation") ||
                                      iequals(per, "spray") || iequals(per, "tab") ||
                                      iequals(per, "tablet") || iequals(per, "cap") ||
                                      iequals(per, "capsule") || iequals(per, "dose");
                if (!per_unit) break;
            }
            return *value * factor;
        }
    }
    return std::nullopt;
}

static_assert(strength_in("sumatriptan 50 MG Oral Tablet", "sumatriptan") == 50.0);
static_assert(strength_in("Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet", "oxycodone") ==
              5.0);
static_assert(!strength_in("Acetaminophen 21.7 MG/ML / Dextromethorphan 1 MG/ML Oral Solution",
                           "acetaminophen"));
static_assert(strength_in("0.5 ML sumatriptan 12 MG/ML Auto-Injector", "sumatriptan") == 6.0);
static_assert(!strength_in("timolol 5 MG/ML Ophthalmic Solution", "timolol"));
static_assert(strength_in("zolmitriptan 5 MG/ACTUAT Metered Dose Nasal Spray", "zolmitriptan") == 5.0);
static_assert(!strength_in("onabotulinumtoxinA 100 UNT Injection", "onabotulinumtoxina"));

struct route_term {
    std::string_view pattern;
    route r;
};

// RxNorm dose forms and common label words, tried in order: the specific
// local routes before the words "tablet" or "solution" that several share.
// "Prefilled Syringe", "Auto-Injector" and "Pen Injector" are the
// subcutaneous self-injection forms (sumatriptan, the CGRP antibodies);
// a bare "Injection" or "Injectable Solution" names no route.
constexpr route_term form_terms[] = {
    {"ophthalmic", route::ophthalmic},
    {"eye drop", route::ophthalmic},
    {"otic", route::otic},
    {"ear drop", route::otic},
    {"nasal", route::nasal},
    {"intranasal", route::nasal},
    {"transdermal", route::transdermal},
    {"topical", route::topical},
    {"cream", route::topical},
    {"ointment", route::topical},
    {"lotion", route::topical},
    {"rectal", route::rectal},
    {"suppository", route::rectal},
    {"subcutaneous", route::subcutaneous},
    {"auto injector", route::subcutaneous},
    {"autoinjector", route::subcutaneous},
    {"prefilled syringe", route::subcutaneous},
    {"pen injector", route::subcutaneous},
    {"intramuscular", route::intramuscular},
    {"intravenous", route::intravenous},
    // Mouth routes the schema does not name: unknown, not oral.
    {"sublingual", route::unknown},
    {"buccal", route::unknown},
    {"vaginal", route::unknown},
    {"oral", route::oral},
    {"tablet", route::oral},
    {"capsule", route::oral},
    {"caplet", route::oral},
};

// Route words of a Dosage.route concept's display or text.
constexpr route_term route_words[] = {
    {"oral", route::oral},
    {"by mouth", route::oral},
    {"po", route::oral},
    {"ophthalmic", route::ophthalmic},
    {"otic", route::otic},
    {"auricular", route::otic},
    {"topical", route::topical},
    {"cutaneous", route::topical},
    {"nasal", route::nasal},
    {"intranasal", route::nasal},
    {"subcutaneous", route::subcutaneous},
    {"intramuscular", route::intramuscular},
    {"intravenous", route::intravenous},
    {"rectal", route::rectal},
    {"transdermal", route::transdermal},
};

template <std::size_t N>
constexpr std::optional<route> route_in(std::string_view text, const route_term (&terms)[N]) {
    if (text.empty()) return std::nullopt;
    for (const auto& t : terms) {
        if (has_term(text, t.pattern)) return t.r;
    }
    return std::nullopt;
}

struct route_code {
    std::uint64_t id;
    route r;
};

// SNOMED CT route of administration concepts (the FHIR R4 route-codes
// value set draws from this hierarchy), sorted by id.
constexpr route_code route_codes[] = {
    {6064005, route::topical},         // topical route
    {10547007, route::otic},           // otic route
    {26643006, route::oral},           // oral route
    {34206005, route::subcutaneous},   // subcutaneous route
    {37161004, route::rectal},         // rectal route
    {45890007, route::transdermal},    // transdermal route
    {46713006, route::nasal},          // nasal route
    {47625008, route::intravenous},    // intravenous route
    {54485002, route::ophthalmic},     // ophthalmic route
    {78421000, route::intramuscular},  // intramuscular route
};
static_assert(ids_strictly_sorted(route_codes));

constexpr bool route_patterns_valid() {
    for (const auto& t : form_terms) {
        if (!is_valid_pattern(t.pattern)) return false;
    }
    for (const auto& t : route_words) {
        if (!is_valid_pattern(t.pattern)) return false;
    }
    return true;
}
static_assert(route_patterns_valid());

// --- Observations and procedures -------------------------------------------

struct instrument_term {
    std::string_view pattern;
    instrument kind;
};

// Order matters only when a text names two instruments; the headache-specific
// ones are tried first.
constexpr instrument_term instrument_terms[] = {
    {"midas", instrument::midas},
    {"migraine disability assessment", instrument::midas},
    {"hit 6", instrument::hit6},
    {"hit6", instrument::hit6},
    {"headache impact test", instrument::hit6},
    {"phq 9", instrument::phq9},
    {"phq9", instrument::phq9},
    {"patient health questionnaire 9", instrument::phq9},
    {"pain severity", instrument::pain_nrs},
    {"pain intensity", instrument::pain_nrs},
    {"pain score", instrument::pain_nrs},
    {"numeric rating scale", instrument::pain_nrs},
};

instrument classify_observation_text(std::string_view text) {
    if (text.empty()) return instrument::other;
    for (const auto& t : instrument_terms) {
        if (has_term(text, t.pattern)) return t.kind;
    }
    return instrument::other;
}

struct procedure_code {
    std::string_view code;
    procedure_kind kind;
};

// CPT descriptors (AMA CPT, Nervous System and Urinary System sections)
// and HCPCS Level II drug codes. Only 64615 names migraine; every other
// chemodenervation code names another site. Among the botulinum toxins only
// onabotulinumtoxinA (J0585) is FDA-labelled for chronic migraine
// prophylaxis; abobotulinumtoxinA (J0586), rimabotulinumtoxinB (J0587) and
// incobotulinumtoxinA (J0588) are labelled for dystonia, spasticity,
// sialorrhea and cosmetic use.
constexpr procedure_code procedure_codes[] = {
    {"64615", procedure_kind::botulinum_toxin},        // chemodenervation for chronic migraine
    {"64611", procedure_kind::botulinum_toxin_other},  // parotid and submandibular glands (sialorrhea)
    {"64612",
     procedure_kind::botulinum_toxin_other},  // facial nerve muscles (blepharospasm, hemifacial spasm)
    {"64616", procedure_kind::botulinum_toxin_other},  // neck muscles, excluding larynx (cervical dystonia)
    {"64617", procedure_kind::botulinum_toxin_other},  // larynx (spasmodic dysphonia)
    {"64642", procedure_kind::botulinum_toxin_other},  // one extremity, 1-4 muscles
    {"64643", procedure_kind::botulinum_toxin_other},  // each additional extremity, 1-4 muscles
    {"64644", procedure_kind::botulinum_toxin_other},  // one extremity, 5 or more muscles
    {"64645", procedure_kind::botulinum_toxin_other},  // each additional extremity, 5 or more muscles
    {"64646", procedure_kind::botulinum_toxin_other},  // trunk, 1-5 muscles
    {"64647", procedure_kind::botulinum_toxin_other},  // trunk, 6 or more muscles
    {"64650", procedure_kind::botulinum_toxin_other},  // eccrine glands, both axillae (hyperhidrosis)
    {"64653", procedure_kind::botulinum_toxin_other},  // eccrine glands, other areas
    {"67345", procedure_kind::botulinum_toxin_other},  // extraocular muscle (strabismus)
    {"46505", procedure_kind::botulinum_toxin_other},  // internal anal sphincter
    {"52287", procedure_kind::botulinum_toxin_other},  // cystoscopy with bladder chemodenervation
    {"64405", procedure_kind::nerve_block},            // greater occipital nerve
    {"64505", procedure_kind::nerve_block},            // sphenopalatine ganglion
    {"20552", procedure_kind::trigger_point},          // 1-2 muscles
    {"20553", procedure_kind::trigger_point},          // 3 or more muscles
};

// Botulinum toxin drug codes: what was given, not where. J0585 means the
// migraine product only when no other site is coded and no text says
// "cosmetic"; the other toxins are not labelled for migraine.
constexpr procedure_code toxin_drug_codes[] = {
    {"J0585", procedure_kind::botulinum_toxin},        // onabotulinumtoxinA, per unit
    {"J0586", procedure_kind::botulinum_toxin_other},  // abobotulinumtoxinA, 5 units
    {"J0587", procedure_kind::botulinum_toxin_other},  // rimabotulinumtoxinB, 100 units
    {"J0588", procedure_kind::botulinum_toxin_other},  // incobotulinumtoxinA, 1 unit
};

struct procedure_term {
    std::string_view pattern;
    procedure_kind kind;
};

// Sites and indications of botulinum toxin other than migraine (the labels
// of the four toxins), and the word "cosmetic" (Botox Cosmetic).
constexpr std::string_view other_toxin_terms[] = {
    "cosmetic",
    "glabellar",
    "wrinkle",
    "crow s feet",
    "blepharospasm",
    "hemifacial",
    "dystonia",
    "torticollis",
    "spasmodic",
    "larynx",
    "laryngeal",
    "strabismus",
    "bladder",
    "detrusor",
    "incontinence",
    "cystoscopy",
    "cystourethroscopy",
    "spasticity",
    "extremity",
    "limb",
    "trunk",
    "hyperhidrosis",
    "axilla",
    "axillae",
    "sialorrhea",
    "salivary",
    "anal",
    "achalasia",
    "bruxism",
};

constexpr procedure_term procedure_terms[] = {
    {"botox", procedure_kind::botulinum_toxin},
    {"botulinum", procedure_kind::botulinum_toxin},
    {"onabotulinumtoxina", procedure_kind::botulinum_toxin},
    {"chemodenervation", procedure_kind::botulinum_toxin},
    {"nerve block", procedure_kind::nerve_block},
    {"occipital block", procedure_kind::nerve_block},
    {"ganglion block", procedure_kind::nerve_block},
    {"sphenopalatine", procedure_kind::nerve_block},
    {"trigger point", procedure_kind::trigger_point},
};

bool names_other_toxin_site(std::string_view text) {
    return std::any_of(std::begin(other_toxin_terms), std::end(other_toxin_terms),
                       [&](std::string_view t) { return has_term(text, t); });
}

procedure_kind classify_procedure_text(std::string_view text) {
    if (text.empty()) return procedure_kind::other;
    for (const auto& t : procedure_terms) {
        if (!has_term(text, t.pattern)) continue;
        // Abobotulinum/incobotulinum/rimabotulinum toxins are single words
        // that "botulinum" does not match; they are not migraine products.
        if (t.kind == procedure_kind::botulinum_toxin && names_other_toxin_site(text)) {
            return procedure_kind::botulinum_toxin_other;
        }
        return t.kind;
    }
    for (std::string_view other : {"abobotulinumtoxina", "incobotulinumtoxina", "rimabotulinumtoxinb",
                                   "dysport", "xeomin", "myobloc", "daxxify", "jeuveau"}) {
        if (has_term(text, other)) return procedure_kind::botulinum_toxin_other;
    }
    return procedure_kind::other;
}

constexpr bool patterns_valid() {
    for (const auto& t : instrument_terms) {
        if (!is_valid_pattern(t.pattern)) return false;
    }
    for (const auto& t : procedure_terms) {
        if (!is_valid_pattern(t.pattern)) return false;
    }
    for (std::string_view t : other_toxin_terms) {
        if (!is_valid_pattern(t)) return false;
    }
    return true;
}
static_assert(patterns_valid());

}  // namespace

// --- Public API --------------------------------------------------------------

code_system system_from_uri(std::string_view uri) {
    uri = trim(uri);
    if (uri.size() > 1 && uri.back() == '/') uri.remove_suffix(1);
    // http and https name the same system; EHRs mix them up.
    for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
        if (uri.size() > scheme.size() && iequals(uri.substr(0, scheme.size()), scheme)) {
            uri.remove_prefix(scheme.size());
            break;
        }
    }
    for (const auto& e : system_table) {
        if (iequals(uri, e.uri)) return e.system;
    }
    return code_system::unknown;
}

std::string_view to_string(headache_type t) {
    switch (t) {
        case headache_type::none:
            return "";
        case headache_type::chronic_migraine:
            return "chronic_migraine";
        case headache_type::migraine_with_aura:
            return "migraine_with_aura";
        case headache_type::migraine_without_aura:
            return "migraine_without_aura";
        case headache_type::menstrual_migraine:
            return "menstrual_migraine";
        case headache_type::hemiplegic_migraine:
            return "hemiplegic_migraine";
        case headache_type::migraine:
            return "migraine";
        case headache_type::tension_type:
            return "tension_type";
        case headache_type::cluster:
            return "cluster";
        case headache_type::medication_overuse:
            return "medication_overuse";
        case headache_type::post_traumatic:
            return "post_traumatic";
        case headache_type::new_daily_persistent:
            return "new_daily_persistent";
        case headache_type::cervicogenic:
            return "cervicogenic";
        case headache_type::other_headache:
            return "other_headache";
        case headache_type::headache_unspecified:
            return "headache_unspecified";
    }
    return "";
}

headache_type classify_condition(std::span<const coding_view> codings, std::string_view text) {
    // A code outranks any text: text is read only when no code classifies.
    headache_type best = headache_type::none;
    const auto consider = [&best](headache_type t) {
        if (specificity(t) > specificity(best)) best = t;  // ties keep the first
    };
    for (const auto& c : codings) consider(classify_condition_code(c));
    if (best != headache_type::none) return best;
    for (const auto& c : codings) consider(classify_condition_text(c.display));
    consider(classify_condition_text(text));
    return best;
}

std::string_view to_string(drug_class c) {
    switch (c) {
        case drug_class::none:
            return "";
        case drug_class::triptan:
            return "triptan";
        case drug_class::gepant:
            return "gepant";
        case drug_class::ditan:
            return "ditan";
        case drug_class::ergot:
            return "ergot";
        case drug_class::cgrp_mab:
            return "cgrp_mab";
        case drug_class::botulinum_toxin:
            return "botulinum_toxin";
        case drug_class::beta_blocker:
            return "beta_blocker";
        case drug_class::anticonvulsant:
            return "anticonvulsant";
        case drug_class::tricyclic:
            return "tricyclic";
        case drug_class::snri:
            return "snri";
        case drug_class::arb:
            return "arb";
        case drug_class::calcium_channel:
            return "calcium_channel";
        case drug_class::other_preventive:
            return "other_preventive";
        case drug_class::simple_analgesic:
            return "simple_analgesic";
        case drug_class::nsaid:
            return "nsaid";
        case drug_class::combination_analgesic:
            return "combination_analgesic";
        case drug_class::opioid:
            return "opioid";
        case drug_class::antiemetic:
            return "antiemetic";
        case drug_class::steroid:
            return "steroid";
    }
    return "";
}

std::string_view to_string(therapy_role r) {
    switch (r) {
        case therapy_role::other:
            return "other";
        case therapy_role::acute:
            return "acute";
        case therapy_role::preventive:
            return "preventive";
        case therapy_role::acute_and_preventive:
            return "acute_and_preventive";
    }
    return "other";
}

std::string_view to_string(route r) {
    switch (r) {
        case route::unknown:
            return "";
        case route::oral:
            return "oral";
        case route::ophthalmic:
            return "ophthalmic";
        case route::otic:
            return "otic";
        case route::topical:
            return "topical";
        case route::nasal:
            return "nasal";
        case route::subcutaneous:
            return "subcutaneous";
        case route::intramuscular:
            return "intramuscular";
        case route::intravenous:
            return "intravenous";
        case route::rectal:
            return "rectal";
        case route::transdermal:
            return "transdermal";
    }
    return "";
}

medication_class classify_medication(std::span<const coding_view> codings, std::string_view text) {
    ingredient_set from_codes;
    for (const auto& c : codings) collect_codes(c, from_codes);
    medication_class out = classify_ingredients(from_codes);
    if (out.cls == drug_class::none && out.ingredient.empty()) {
        // No code decided the class (a product RxCUI, or caffeine alone): read
        // the names, keeping any ingredient the codes did identify.
        ingredient_set all = from_codes;
        for (const auto& c : codings) collect_text(c.display, all);
        collect_text(text, all);
        out = classify_ingredients(all);
    }

    // Facts of the product named by the displays and the text, whatever
    // decided the class: the primary ingredient's strength and the dose form.
    const auto each_name = [&](auto&& f) {
        for (const auto& c : codings) {
            if (f(c.display)) return;
        }
        f(text);
    };
    if (!out.primary.empty()) {
        each_name([&](std::string_view name) {
            out.strength_mg = strength_in(name, out.primary);
            // A strength of zero or too many digits to be one is no strength.
            if (out.strength_mg && !(*out.strength_mg > 0 && std::isfinite(*out.strength_mg)))
                out.strength_mg.reset();
            return out.strength_mg.has_value();
        });
    }
    each_name([&](std::string_view name) {
        const auto r = route_in(name, form_terms);
        if (r) out.form_route = *r;
        return r.has_value();
    });

    const auto named = [&](std::string_view pattern) {
        bool found = false;
        each_name([&](std::string_view name) { return found = has_term(name, pattern); });
        return found;
    };
    const auto exclude = [&out] {
        out.cls = drug_class::none;
        out.role = therapy_role::other;
    };
    // Low-dose aspirin (81 mg, up to 162 mg a day) is the antiplatelet dose
    // for cardiovascular prevention (USPSTF 2022; aspirin labels), not the
    // analgesic dose (325-1000 mg) that counts toward ICHD-3 8.2.3.
    if (out.cls == drug_class::simple_analgesic && out.primary == "aspirin" &&
        ((out.strength_mg && *out.strength_mg <= 162.0) || named("low dose") || named("baby aspirin"))) {
        exclude();
    }
    // Botox Cosmetic (glabellar lines) is not the migraine product.
    if (out.cls == drug_class::botulinum_toxin && named("cosmetic")) exclude();
    return out;
}

route classify_route(std::span<const coding_view> codings, std::string_view text) {
    for (const auto& c : codings) {
        if (system_from_uri(c.system) != code_system::snomed) continue;
        if (const auto id = parse_id(c.code)) {
            if (const auto* e = find_id(route_codes, *id)) return e->r;
        }
    }
    for (const auto& c : codings) {
        if (const auto r = route_in(c.display, route_words)) return *r;
    }
    return route_in(text, route_words).value_or(route::unknown);
}

medication_class for_route(medication_class mc, route r) {
    if (mc.cls == drug_class::none) return mc;
    // ICHD-3 8.2 counts systemic acute medication, and the preventive
    // classes act systemically: an eye, ear or skin preparation is neither.
    const bool local = r == route::ophthalmic || r == route::otic || r == route::topical;
    // Timolol: the oral tablet is a migraine preventive (AAN/AHS 2012, level
    // A); timolol eye drops treat glaucoma. An unknown route is not assumed
    // oral, because nearly all timolol prescribed today is ophthalmic.
    const bool timolol_not_oral = mc.primary == "timolol" && r != route::oral;
    if (local || timolol_not_oral) {
        mc.cls = drug_class::none;
        mc.role = therapy_role::other;
    }
    return mc;
}

std::string_view to_string(instrument i) {
    switch (i) {
        case instrument::other:
            return "other";
        case instrument::pain_nrs:
            return "pain_nrs";
        case instrument::phq9:
            return "phq9";
        case instrument::midas:
            return "midas";
        case instrument::hit6:
            return "hit6";
    }
    return "other";
}

instrument classify_observation(std::span<const coding_view> codings, std::string_view text) {
    for (const auto& c : codings) {
        if (system_from_uri(c.system) != code_system::loinc) continue;
        const std::string_view code = trim(c.code);
        if (code == "72514-3") return instrument::pain_nrs;
        if (code == "44261-6") return instrument::phq9;
    }
    for (const auto& c : codings) {
        if (const auto i = classify_observation_text(c.display); i != instrument::other) return i;
    }
    return classify_observation_text(text);
}

std::string_view to_string(procedure_kind k) {
    switch (k) {
        case procedure_kind::other:
            return "other";
        case procedure_kind::botulinum_toxin:
            return "botulinum_toxin";
        case procedure_kind::botulinum_toxin_other:
            return "botulinum_toxin_other";
        case procedure_kind::nerve_block:
            return "nerve_block";
        case procedure_kind::trigger_point:
            return "trigger_point";
    }
    return "other";
}

procedure_kind classify_procedure(std::span<const coding_view> codings, std::string_view text) {
    // Codes first. A site code decides; with several, 64615 (migraine) wins
    // over another site, and any site code over a bare drug code.
    std::optional<procedure_kind> by_site, by_drug;
    for (const auto& c : codings) {
        if (!is_cpt_or_hcpcs(system_from_uri(c.system))) continue;
        const compact_code code(c.code);
        for (const auto& p : procedure_codes) {
            if (code.view() != p.code) continue;
            if (!by_site || p.kind == procedure_kind::botulinum_toxin) by_site = p.kind;
        }
        for (const auto& p : toxin_drug_codes) {
            if (code.view() == p.code && (!by_drug || p.kind != procedure_kind::botulinum_toxin))
                by_drug = p.kind;
        }
    }
    if (by_site) return *by_site;
    if (by_drug) {
        if (*by_drug == procedure_kind::botulinum_toxin) {
            const bool cosmetic = has_term(text, "cosmetic") ||
                                  std::any_of(codings.begin(), codings.end(), [](const coding_view& c) {
                                      return has_term(c.display, "cosmetic");
                                  });
            if (cosmetic) return procedure_kind::botulinum_toxin_other;
        }
        return *by_drug;
    }
    // Text only when no code classifies; every display and the text are
    // read together so that "Botox" in one and "bladder" in another combine.
    procedure_kind best = procedure_kind::other;
    const auto consider = [&best](procedure_kind k) {
        if (best == procedure_kind::other) best = k;
        // A non-migraine site named anywhere outranks a bare toxin word.
        if (k == procedure_kind::botulinum_toxin_other && best == procedure_kind::botulinum_toxin) best = k;
    };
    for (const auto& c : codings) consider(classify_procedure_text(c.display));
    consider(classify_procedure_text(text));
    if (best == procedure_kind::botulinum_toxin) {
        const bool other_site = names_other_toxin_site(text) ||
                                std::any_of(codings.begin(), codings.end(), [](const coding_view& c) {
                                    return names_other_toxin_site(c.display);
                                });
        if (other_site) best = procedure_kind::botulinum_toxin_other;
    }
    return best;
}

bool is_headache_related(std::span<const coding_view> codings, std::string_view text) {
    if (classify_condition(codings, text) != headache_type::none) return true;
    // Botulinum toxin and occipital/sphenopalatine blocks are headache
    // treatments; trigger point injections (CPT 20552/20553) serve back and
    // neck pain as often, so they alone do not make a visit headache-related.
    const procedure_kind kind = classify_procedure(codings, text);
    if (kind == procedure_kind::botulinum_toxin || kind == procedure_kind::nerve_block) return true;
    // Already covered by the condition text rules; kept so the contract holds
    // even if those rules change.
    const auto names = [](std::string_view t) { return names_headache(t) || has_term(t, "migraine"); };
    if (names(text)) return true;
    return std::any_of(codings.begin(), codings.end(),
                       [&](const coding_view& c) { return names(c.display); });
}

}  // namespace headachemd::terminology
