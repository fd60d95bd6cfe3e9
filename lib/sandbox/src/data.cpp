#include "data.hpp"

#include <algorithm>
#include <tuple>

#include "codec.hpp"
#include "json_writer.hpp"

namespace headachemd::sandbox::detail {

namespace {

using namespace std::chrono_literals;
using days = std::chrono::days;

constexpr std::string_view type_names[rtype_count] = {
    "Patient", "Condition", "MedicationRequest", "Encounter", "Observation", "Procedure", "Appointment"};
constexpr std::string_view id_prefixes[rtype_count] = {"p", "cond", "medrq", "enc", "obs", "proc", "appt"};

constexpr std::string_view snomed = "http://snomed.info/sct";
constexpr std::string_view icd10cm = "http://hl7.org/fhir/sid/icd-10-cm";
constexpr std::string_view rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm";
constexpr std::string_view loinc = "http://loinc.org";
constexpr std::string_view ucum = "http://unitsofmeasure.org";
constexpr std::string_view cpt = "http://www.ama-assn.org/go/cpt";

// Diagnoses (TERMINOLOGY.md "Diagnoses"). The chronic migraine SNOMED code
// is the US extension concept Synthea uses; there is no international one.
struct diagnosis {
    std::string_view snomed_code, snomed_display, icd_code, icd_display, text;
};
enum dx_index {
    dx_migraine_wo_aura,
    dx_migraine_w_aura,
    dx_chronic_migraine,
    dx_tension,
    dx_cluster,
    dx_moh,
    dx_htn
};
constexpr diagnosis diagnoses[] = {
    {"56097005", "Migraine without aura", "G43.009",
     "Migraine without aura, not intractable, without status migrainosus", "Migraine without aura"},
    {"4473006", "Migraine with aura", "G43.109",
     "Migraine with aura, not intractable, without status migrainosus", "Migraine with aura"},
    {"124171000119105", "Chronic intractable migraine without aura", "G43.709",
     "Chronic migraine without aura, not intractable, without status migrainosus", "Chronic migraine"},
    {"398057008", "Tension-type headache", "G44.209", "Tension-type headache, unspecified, not intractable",
     "Tension-type headache"},
    {"193031009", "Cluster headache", "G44.009", "Cluster headache syndrome, unspecified, not intractable",
     "Cluster headache"},
    {"698803006", "Medication overuse headache", "G44.41",
     "Drug-induced headache, not elsewhere classified, intractable", "Medication overuse headache"},
    {"59621000", "Essential hypertension", "I10", "Essential (primary) hypertension", "Hypertension"},
};
constexpr int dx_count = static_cast<int>(std::size(diagnoses));

// Drugs. A coded product (SCD) carries its product display; an ingredient
// code carries the ingredient name and the product goes in text. Some have
// text only (ubrogepant's RxCUI is unverified; the butalbital combination),
// so a classifier must fall back to names (TERMINOLOGY.md).
struct drug {
    std::string_view code, code_display, text;
    bool as_needed;
    int frequency, period;
    std::string_view period_unit;  // UCUM: d, wk, mo
    int quantity;
    std::string_view unit, unit_code;
    int supply_days, repeats;
    std::string_view sig;
};
enum drug_index {
    rx_sumatriptan,
    rx_rizatriptan,
    rx_ubrogepant,
    rx_rimegepant,
    rx_ibuprofen,
    rx_naproxen,
    rx_butalbital,
    rx_tramadol,
    rx_topiramate,
    rx_propranolol,
    rx_amitriptyline,
    rx_erenumab,
    rx_botox
};
constexpr drug drugs[] = {
    {"313088", "sumatriptan 50 MG Oral Tablet", "sumatriptan 50 MG Oral Tablet", true, 2, 1, "d", 9, "tablet",
     "{tbl}", 30, 2,
     "Take 1 tablet by mouth at migraine onset; may repeat once after 2 hours. No more than 2 tablets in 24 "
     "hours."},
    {"88014", "rizatriptan", "rizatriptan 10 MG Oral Tablet", true, 2, 1, "d", 12, "tablet", "{tbl}", 30, 2,
     "Take 1 tablet by mouth at migraine onset; may repeat after 2 hours. Max 2 tablets a day."},
    {"", "", "ubrogepant 50 MG Oral Tablet", true, 2, 1, "d", 10, "tablet", "{tbl}", 30, 1,
     "Take 1 tablet by mouth at migraine onset; may repeat after 2 hours. Max 2 tablets a day."},
    {"2282307", "rimegepant", "rimegepant 75 MG Disintegrating Oral Tablet", true, 1, 1, "d", 8, "tablet",
     "{tbl}", 30, 2, "Dissolve 1 tablet on the tongue at migraine onset. Max 1 tablet a day."},
    {"5640", "ibuprofen", "ibuprofen 600 MG Oral Tablet", true, 3, 1, "d", 60, "tablet", "{tbl}", 20, 1,
     "Take 1 tablet by mouth every 8 hours as needed for headache, with food."},
    {"7258", "naproxen", "naproxen 500 MG Oral Tablet", true, 2, 1, "d", 30, "tablet", "{tbl}", 15, 1,
     "Take 1 tablet by mouth twice a day as needed for headache, with food."},
    {"", "", "butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet", true, 4, 1, "d", 30,
     "tablet", "{tbl}", 10, 0,
     "Take 1 tablet by mouth every 4 hours as needed for headache. Max 4 tablets a day."},
    {"10689", "tramadol", "tramadol hydrochloride 50 MG Oral Tablet", true, 4, 1, "d", 20, "tablet", "{tbl}",
     5, 0, "Take 1 tablet by mouth every 6 hours as needed for severe headache."},
    {"38404", "topiramate", "topiramate 25 MG Oral Tablet", false, 2, 1, "d", 60, "tablet", "{tbl}", 30, 2,
     "Take 1 tablet by mouth twice a day."},
    {"8787", "propranolol", "propranolol hydrochloride 40 MG Oral Tablet", false, 2, 1, "d", 60, "tablet",
     "{tbl}", 30, 2, "Take 1 tablet by mouth twice a day."},
    {"704", "amitriptyline", "amitriptyline hydrochloride 25 MG Oral Tablet", false, 1, 1, "d", 30, "tablet",
     "{tbl}", 30, 2, "Take 1 tablet by mouth at bedtime."},
    {"2045628", "erenumab", "erenumab-aooe 70 MG/ML Auto-Injector", false, 1, 1, "mo", 1, "auto-injector",
     "{injector}", 30, 2, "Inject 70 mg under the skin once a month."},
    {"1712", "botulinum toxin type A", "onabotulinumtoxinA 200 UNT Injection", false, 1, 12, "wk", 1, "vial",
     "{vial}", 84, 0, "155 units intramuscularly across 31 sites every 12 weeks (PREEMPT protocol)."},
};
constexpr int drug_count = static_cast<int>(std::size(drugs));

// Observation instruments. MIDAS and HIT-6 have no verified LOINC code, so
// they are identified by code.text only (TERMINOLOGY.md "Observations").
enum obs_index { obs_pain, obs_midas, obs_hit6, obs_phq9 };

// CPT procedures (TERMINOLOGY.md "Procedures").
struct procedure_code {
    std::string_view code, display, text;
};
constexpr procedure_code procedures[] = {
    {"64615",
     "Chemodenervation of muscle(s); muscle(s) innervated by facial, trigeminal, cervical spinal and "
     "accessory "
     "nerves, bilateral (eg, for chronic migraine)",
     "OnabotulinumtoxinA injection for chronic migraine"},
    {"64405", "Injection, anesthetic agent; greater occipital nerve", "Greater occipital nerve block"},
};

bool is_migraine(int dx) {
    return dx == dx_migraine_wo_aura || dx == dx_migraine_w_aura || dx == dx_chronic_migraine;
}

// The start of the UTC day of t, plus whole days and minutes.
time_point day_at(time_point t, int day_offset, int minute_of_day) {
    return std::chrono::floor<days>(t) + days{day_offset} + std::chrono::minutes{minute_of_day};
}

std::string pad(std::uint64_t n, std::size_t width) {
    std::string s = std::to_string(n);
    while (s.size() < width) s.insert(s.begin(), '0');
    return s;
}

void write_meta(json_writer& w, const record& r) {
    w.key("meta").begin_object();
    w.member("versionId", std::to_string(r.version));
    w.member("lastUpdated", format_instant(r.last_updated));
    w.end_object();
}

void write_reference(json_writer& w, std::string_view key, std::string_view type, const std::string& id) {
    w.key(key).begin_object().member("reference", std::string(type) + "/" + id).end_object();
}

void write_coding(json_writer& w, std::string_view system, std::string_view code, std::string_view display) {
    w.begin_object().member("system", system).member("code", code);
    if (!display.empty()) w.member("display", display);
    w.end_object();
}

// A diagnosis as a CodeableConcept. `style` 0: SNOMED and ICD-10-CM, 1:
// SNOMED only, 2: ICD-10-CM only, as different EHRs send them.
void write_dx_concept(json_writer& w, int dx, int style) {
    const diagnosis& d = diagnoses[dx];
    w.begin_object().key("coding").begin_array();
    if (style != 2) write_coding(w, snomed, d.snomed_code, d.snomed_display);
    if (style != 1) write_coding(w, icd10cm, d.icd_code, d.icd_display);
    w.end_array().member("text", d.text).end_object();
}

void write_simple_status_concept(json_writer& w, std::string_view key, std::string_view system,
                                 std::string_view code) {
    w.key(key).begin_object().key("coding").begin_array();
    write_coding(w, system, code, "");
    w.end_array().end_object();
}

void write_quantity(json_writer& w, std::string_view key, double value, std::string_view unit,
                    std::string_view code) {
    w.key(key).begin_object();
    w.member("value", value).member("unit", unit).member("system", ucum).member("code", code);
    w.end_object();
}

// A status that a control's revision moves through a fixed cycle.
std::string_view cycled(std::string_view generated, int revision,
                        std::initializer_list<std::string_view> cycle) {
    if (revision == 0) return generated;
    std::size_t start = 0;
    std::size_t k = 0;
    for (const auto s : cycle) {
        if (s == generated) start = k;
        ++k;
    }
    return *(cycle.begin() + (start + static_cast<std::size_t>(revision)) % cycle.size());
}

patient_identifiers identifiers_of(const record& r) {
    const int number = r.variant + 1;
    patient_identifiers id;
    // Obviously synthetic, so that a leak into a log is easy to spot.
    id.name_text = "Test Patient " + pad(static_cast<std::uint64_t>(number), 4);
    id.family = "Patient " + pad(static_cast<std::uint64_t>(number), 4);
    id.mrn = "SBX-" + pad(static_cast<std::uint64_t>(number), 4);
    // 555-0100..0199 are reserved for fiction.
    id.phone = "555-01" + pad(static_cast<std::uint64_t>((number + r.revision) % 100), 2);
    return id;
}

void render_patient(json_writer& w, const record& r) {
    rng g(r.seed);
    const patient_identifiers id = identifiers_of(r);
    w.key("identifier").begin_array().begin_object();
    w.member("system", "urn:oid:2.16.840.1.113883.19.5.99999.1");  // HL7's example OID arc
    w.member("value", id.mrn);
    w.end_object().end_array();
    w.member("active", true);
    w.key("name").begin_array().begin_object();
    w.member("use", "official").member("text", id.name_text);
    w.member("family", id.family);
    w.key("given").begin_array().value("Test").end_array();
    w.end_object().end_array();
    w.key("telecom").begin_array().begin_object();
    w.member("system", "phone").member("value", id.phone);
    w.member("use", "home").end_object().end_array();
    const bool female = g.chance(0.75);  // migraine is about three times as common in women
    w.member("gender", female ? "female" : "male");
    const int year = g.uniform(1950, 2005);
    const int month = g.uniform(1, 12);
    const int day = g.uniform(1, 28);
    w.member("birthDate", pad(static_cast<std::uint64_t>(year), 4) + "-" +
                              pad(static_cast<std::uint64_t>(month), 2) + "-" +
                              pad(static_cast<std::uint64_t>(day), 2));
}

void render_condition(json_writer& w, const record& r) {
    rng g(r.seed);
    const int style = g.uniform(0, 2);
    const bool problem_list = g.chance(0.7);
    const std::string_view clinical = cycled(r.status, r.revision, {"active", "inactive", "resolved"});
    write_simple_status_concept(w, "clinicalStatus",
                                "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical);
    write_simple_status_concept(w, "verificationStatus",
                                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed");
    w.key("category").begin_array().begin_object().key("coding").begin_array();
    write_coding(w, "http://terminology.hl7.org/CodeSystem/condition-category",
                 problem_list ? "problem-list-item" : "encounter-diagnosis",
                 problem_list ? "Problem List Item" : "Encounter Diagnosis");
    w.end_array().end_object().end_array();
    w.key("code");
    write_dx_concept(w, r.variant, style);
    write_reference(w, "subject", "Patient", r.patient_id);
    w.member("onsetDateTime", format_date_time(r.when));
    w.member("recordedDate", format_date_time(r.when + days{g.uniform(0, 30)}));
    if (clinical == "resolved") w.member("abatementDateTime", format_date_time(r.when + days{120}));
}

void render_medication_request(json_writer& w, const record& r) {
    const drug& d = drugs[r.variant];
    w.member("status", cycled(r.status, r.revision, {"active", "stopped", "completed"}));
    w.member("intent", "order");
    w.key("medicationCodeableConcept").begin_object();
    if (!d.code.empty()) {
        w.key("coding").begin_array();
        write_coding(w, rxnorm, d.code, d.code_display);
        w.end_array();
    }
    w.member("text", d.text).end_object();
    write_reference(w, "subject", "Patient", r.patient_id);
    w.member("authoredOn", format_date_time(r.when));
    w.key("dosageInstruction").begin_array().begin_object();
    w.member("sequence", 1).member("text", d.sig);
    w.key("timing").begin_object().key("repeat").begin_object();
    w.member("frequency", d.frequency).member("period", d.period).member("periodUnit", d.period_unit);
    w.end_object().end_object();
    w.member("asNeededBoolean", d.as_needed);
    w.key("doseAndRate").begin_array().begin_object();
    write_quantity(w, "doseQuantity", 1, d.unit, d.unit_code);
    w.end_object().end_array();
    w.end_object().end_array();
    w.key("dispenseRequest").begin_object();
    w.member("numberOfRepeatsAllowed", d.repeats);
    write_quantity(w, "quantity", d.quantity, d.unit, d.unit_code);
    write_quantity(w, "expectedSupplyDuration", d.supply_days, "days", "d");
    w.end_object();
}

void render_encounter(json_writer& w, const record& r) {
    rng g(r.seed);
    const int minutes = g.uniform(20, 45) + 5 * r.revision;
    w.member("status", r.status);
    w.key("class").begin_object();
    w.member("system", "http://terminology.hl7.org/CodeSystem/v3-ActCode").member("code", "AMB");
    w.member("display", "ambulatory").end_object();
    w.key("type")
        .begin_array()
        .begin_object()
        .member("text", "Headache clinic visit")
        .end_object()
        .end_array();
    write_reference(w, "subject", "Patient", r.patient_id);
    w.key("period").begin_object();
    w.member("start", format_date_time(r.when));
    w.member("end", format_date_time(r.when + std::chrono::minutes{minutes}));
    w.end_object();
    write_quantity(w, "length", minutes, "min", "min");
    w.key("reasonCode").begin_array();
    write_dx_concept(w, r.dx, 0);
    w.end_array();
}

void render_observation(json_writer& w, const record& r) {
    rng g(r.seed);
    const bool chronic = r.dx == dx_chronic_migraine || r.dx == dx_moh;
    int value = 0;
    int lo = 0, hi = 0;
    switch (r.variant) {
        case obs_pain:
            lo = 0, hi = 10, value = chronic ? g.uniform(4, 9) : g.uniform(1, 8);
            break;
        case obs_midas:
            lo = 0, hi = 270, value = chronic ? g.uniform(21, 90) : g.uniform(0, 30);
            break;
        case obs_hit6:
            lo = 36, hi = 78, value = chronic ? g.uniform(58, 78) : g.uniform(40, 66);
            break;
        default:
            lo = 0, hi = 27, value = g.uniform(0, 20);
            break;
    }
    // A correction keeps the value in the instrument's range.
    if (r.revision > 0) value = lo + (value - lo + r.revision) % (hi - lo + 1);
    // FHIR R4: a result changed after it was final is "amended".
    w.member("status", r.revision > 0 ? "amended" : "final");
    w.key("category").begin_array().begin_object().key("coding").begin_array();
    write_coding(w, "http://terminology.hl7.org/CodeSystem/observation-category",
                 r.variant == obs_pain ? "vital-signs" : "survey",
                 r.variant == obs_pain ? "Vital Signs" : "Survey");
    w.end_array().end_object().end_array();
    w.key("code").begin_object();
    switch (r.variant) {
        case obs_pain:
            w.key("coding").begin_array();
            write_coding(w, loinc, "72514-3",
                         "Pain severity - 0-10 verbal numeric rating [Score] - Reported");
            w.end_array().member("text", "Pain severity 0-10");
            break;
        case obs_midas:
            w.member("text", "MIDAS total score");
            break;
        case obs_hit6:
            w.member("text", "HIT-6 total score");
            break;
        default:
            w.key("coding").begin_array();
            write_coding(w, loinc, "44261-6",
                         "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]");
            w.end_array().member("text", "PHQ-9 total score");
    }
    w.end_object();
    write_reference(w, "subject", "Patient", r.patient_id);
    w.member("effectiveDateTime", format_date_time(r.when));
    if (r.variant == obs_pain)
        write_quantity(w, "valueQuantity", value, "{score}", "{score}");
    else
        w.member("valueInteger", value);
}

void render_procedure(json_writer& w, const record& r) {
    const procedure_code& p = procedures[r.variant];
    w.member("status", r.status);
    w.key("code").begin_object().key("coding").begin_array();
    write_coding(w, cpt, p.code, p.display);
    w.end_array().member("text", p.text).end_object();
    write_reference(w, "subject", "Patient", r.patient_id);
    w.member("performedDateTime", format_date_time(r.when));
    w.key("reasonCode").begin_array();
    write_dx_concept(w, r.dx, 1);
    w.end_array();
    if (r.revision > 0) {
        w.key("note").begin_array().begin_object();
        w.member("text", "Documentation amended (revision " + std::to_string(r.revision) + ")");
        w.end_object().end_array();
    }
}

void render_appointment(json_writer& w, const record& r) {
    rng g(r.seed);
    const int minutes = g.chance(0.3) ? 60 : 30;
    w.member("status", cycled(r.status, r.revision, {"booked", "cancelled", "fulfilled", "noshow"}));
    w.key("appointmentType").begin_object().key("coding").begin_array();
    write_coding(w, "http://terminology.hl7.org/CodeSystem/v2-0276", "FOLLOWUP",
                 "A follow up visit from a previous appointment");
    w.end_array().end_object();
    w.key("reasonCode").begin_array();
    write_dx_concept(w, r.dx, 0);
    w.end_array();
    w.member("description", "Headache clinic follow-up");
    w.member("start", format_instant(r.when));
    w.member("end", format_instant(r.when + std::chrono::minutes{minutes}));
    w.member("minutesDuration", minutes);
    w.key("participant").begin_array().begin_object();
    write_reference(w, "actor", "Patient", r.patient_id);
    w.member("required", "required").member("status", "accepted");
    w.end_object().end_array();
}

}  // namespace

std::uint64_t rng::next() {
    s_ += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = s_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int rng::uniform(int lo, int hi) {
    const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
    return lo + static_cast<int>(next() % span);
}

double rng::real() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
    rng g(a ^ (b * 0xD1B54A32D192ED03ULL));
    g.next();
    return g.next();
}

std::optional<rtype> parse_rtype(std::string_view name) {
    for (int i = 0; i < rtype_count; ++i)
        if (type_names[i] == name) return static_cast<rtype>(i);
    return std::nullopt;
}

std::string_view rtype_name(rtype t) { return type_names[static_cast<int>(t)]; }

data_store::data_store(std::uint64_t seed, int patients, time_point anchor) : seed_(seed), anchor_(anchor) {
    for (int i = 0; i < patients; ++i) generate_patient(i);
}

bool data_store::has_patient(const std::string& id) const { return profiles_.count(id) != 0; }

std::optional<patient_identifiers> data_store::identifiers(const std::string& patient_id) const {
    const record* r = find(rtype::patient, patient_id);
    if (!r) return std::nullopt;
    return identifiers_of(*r);
}

std::string data_store::next_id(rtype t) {
    const auto k = static_cast<std::size_t>(t);
    return std::string(id_prefixes[k]) + "-" + pad(++id_counter_[k], 5);
}

record& data_store::push(record r) {
    const auto k = static_cast<std::size_t>(r.type);
    by_id_[k].emplace(r.id, records_.size());
    by_patient_[r.patient_id][k].push_back(records_.size());
    records_.push_back(std::move(r));
    return records_.back();
}

void data_store::generate_patient(int index) {
    rng g(mix_seed(seed_, static_cast<std::uint64_t>(index)));
    const std::uint64_t tag = g.next() & 0xFFFF;
    static constexpr char hex[] = "0123456789abcdef";
    std::string pid = "p" + pad(static_cast<std::uint64_t>(index + 1), 4) + "-";
    for (int shift = 12; shift >= 0; shift -= 4) pid.push_back(hex[tag >> shift & 0xF]);

    const double pick = g.real();
    const int primary = pick < 0.35   ? dx_migraine_wo_aura
                        : pick < 0.5  ? dx_migraine_w_aura
                        : pick < 0.75 ? dx_chronic_migraine
                        : pick < 0.88 ? dx_tension
                                      : dx_cluster;
    const bool chronic = primary == dx_chronic_migraine;
    const int months = 18 + g.uniform(0, 6);
    const time_point start = day_at(anchor_, -months * 30, 0);
    // Everything generated was last touched before the anchor, so a client's
    // `_lastUpdated` cursor is older than any change a control makes later.
    const auto stamp = [&](time_point when, rng& rg) {
        const time_point t = when + std::chrono::hours{rg.uniform(1, 48)};
        return std::min(t, anchor_ - std::chrono::hours{1});
    };
    const auto make = [&](rtype t, int variant, time_point when, std::string status, int dx) {
        record r;
        r.type = t;
        r.id = t == rtype::patient ? pid : next_id(t);
        r.patient_id = pid;
        r.seed = g.next();
        r.variant = variant;
        r.dx = dx;
        r.status = std::move(status);
        r.when = when;
        r.last_updated = stamp(when, g);
        return r;
    };

    patient_ids_.push_back(pid);
    profiles_[pid] = patient_profile{index, primary};
    by_patient_[pid];  // a patient with no resources of a type still exists
    {
        record p = make(rtype::patient, index, start, "active", primary);
        p.last_updated = anchor_ - days{months * 30} + std::chrono::hours{2};
        push(std::move(p));
    }

    // Conditions: the primary headache diagnosis and up to three others.
    std::vector<std::tuple<time_point, int, std::string>> conditions;
    conditions.emplace_back(day_at(start, -g.uniform(30, 700), 9 * 60), primary, "active");
    if ((is_migraine(primary)) && g.chance(0.3))
        conditions.emplace_back(day_at(start, g.uniform(90, 300), 10 * 60), dx_moh,
                                g.chance(0.4) ? "resolved" : "active");
    if (primary != dx_tension && g.chance(0.25))
        conditions.emplace_back(day_at(start, g.uniform(0, 200), 11 * 60), dx_tension, "active");
    if (g.chance(0.3))
        conditions.emplace_back(day_at(start, -g.uniform(100, 2000), 9 * 60), dx_htn, "active");
    const bool has_moh = std::any_of(conditions.begin(), conditions.end(),
                                     [](const auto& c) { return std::get<1>(c) == dx_moh; });
    std::sort(conditions.begin(), conditions.end());
    for (auto& [when, dx, status] : conditions) push(make(rtype::condition, dx, when, status, dx));

    // Prescriptions over the months of history: acute drugs refilled every
    // one to three months, preventives tried in sequence (the CGRP
    // prior-authorization story: two oral preventive classes, then a mAb).
    std::vector<std::tuple<time_point, int, std::string>> meds;
    const auto recent = [&](time_point t) { return t > anchor_ - days{75}; };
    const auto refill = [&](int drug, int from_day, int to_day, int min_gap, int max_gap, bool stop_at_end) {
        for (int d = from_day; d < to_day; d += g.uniform(min_gap, max_gap)) {
            const time_point when = day_at(start, d, g.uniform(8 * 60, 17 * 60));
            if (when >= anchor_) break;
            const bool last = d + min_gap >= to_day;
            std::string status = recent(when) ? "active" : "completed";
            if (stop_at_end && last && to_day < months * 30) status = "stopped";
            meds.emplace_back(when, drug, status);
        }
    };
    const int span = months * 30;
    std::vector<int> acute;
    if (primary == dx_tension) {
        acute.push_back(g.chance(0.5) ? rx_ibuprofen : rx_naproxen);
        if (g.chance(0.3)) acute.push_back(rx_butalbital);
    } else if (primary == dx_cluster) {
        acute.push_back(rx_sumatriptan);
        if (g.chance(0.2)) acute.push_back(rx_tramadol);
    } else {
        acute.push_back(g.chance(0.6) ? rx_sumatriptan : rx_rizatriptan);
        if (g.chance(0.5)) acute.push_back(g.chance(0.5) ? rx_ibuprofen : rx_naproxen);
        if (g.chance(0.3)) acute.push_back(g.chance(0.5) ? rx_ubrogepant : rx_rimegepant);
        if (has_moh) acute.push_back(g.chance(0.5) ? rx_butalbital : rx_tramadol);
    }
    for (std::size_t k = 0; k < acute.size(); ++k) {
        if (k == 0)
            refill(acute[k], g.uniform(0, 20), span, 30, 60, false);
        else
            refill(acute[k], g.uniform(30, span / 2), span, 45, 100, false);
    }
    if (chronic || (is_migraine(primary) && g.chance(0.4))) {
        const int first = g.chance(0.6) ? rx_topiramate : rx_propranolol;
        const int second =
            first == rx_topiramate ? (g.chance(0.5) ? rx_propranolol : rx_amitriptyline) : rx_topiramate;
        const int t1 = g.uniform(60, 150);  // each trial at least eight weeks
        refill(first, 0, t1, 30, 31, true);
        const int t2 = t1 + g.uniform(60, 150);
        refill(second, t1 + 5, std::min(t2, span), 30, 31, true);
        if (chronic && t2 < span) refill(rx_erenumab, t2 + 7, span, 28, 31, false);
    }
    const bool botox = chronic && g.chance(0.7);
    std::vector<time_point> botox_days;
    if (botox) {
        for (int d = std::max(0, span - 365) + g.uniform(0, 20); d < span - 7; d += 84) {
            const time_point when = day_at(start, d, 10 * 60);
            botox_days.push_back(when);
            meds.emplace_back(when - days{14}, rx_botox, recent(when) ? "active" : "completed");
        }
    }
    std::sort(meds.begin(), meds.end());
    for (auto& [when, drug, status] : meds)
        push(make(rtype::medication_request, drug, when, status, primary));

    // Encounters about every three months; instruments are scored at each.
    std::vector<time_point> visits;
    for (int d = g.uniform(0, 20); d < span - 7; d += g.uniform(75, 105))
        visits.push_back(day_at(start, d, g.uniform(8 * 60, 16 * 60)));
    for (const auto when : visits) push(make(rtype::encounter, 0, when, "finished", primary));

    // Observations: a monthly diary pain score, and at each visit a pain
    // score, MIDAS, HIT-6 and (every other visit) PHQ-9: 35+ per patient, so
    // a search spans seven pages at _count=5.
    std::vector<std::pair<time_point, int>> obs;
    for (int m = 0; m < months; ++m)
        obs.emplace_back(day_at(start, m * 30 + g.uniform(0, 25), 20 * 60), obs_pain);
    for (std::size_t v = 0; v < visits.size(); ++v) {
        obs.emplace_back(visits[v] + std::chrono::minutes{5}, obs_pain);
        obs.emplace_back(visits[v] + std::chrono::minutes{6}, obs_midas);
        obs.emplace_back(visits[v] + std::chrono::minutes{7}, obs_hit6);
        if (v % 2 == 0) obs.emplace_back(visits[v] + std::chrono::minutes{8}, obs_phq9);
    }
    std::sort(obs.begin(), obs.end());
    for (const auto& [when, kind] : obs) push(make(rtype::observation, kind, when, "final", primary));

    // Procedures: botulinum toxin every 12 weeks, and some nerve blocks.
    std::vector<std::pair<time_point, int>> procs;
    for (const auto when : botox_days) procs.emplace_back(when, 0);
    if (primary != dx_tension && g.chance(0.3)) {
        const int n = g.uniform(1, 2);
        for (int k = 0; k < n; ++k) procs.emplace_back(day_at(start, g.uniform(30, span - 30), 14 * 60), 1);
    }
    std::sort(procs.begin(), procs.end());
    for (const auto& [when, kind] : procs)
        push(make(rtype::procedure, kind, when, "completed", kind == 0 ? dx_chronic_migraine : primary));

    // Appointments: the last two visits (fulfilled, or a no-show) and one or
    // two booked in the weeks after the anchor.
    std::vector<std::pair<time_point, std::string>> appts;
    for (std::size_t v = visits.size() >= 2 ? visits.size() - 2 : 0; v < visits.size(); ++v)
        appts.emplace_back(visits[v], g.chance(0.9) ? "fulfilled" : "noshow");
    const int future = g.uniform(1, 2);
    for (int k = 0; k < future; ++k)
        appts.emplace_back(day_at(anchor_, 14 + 30 * k + g.uniform(0, 20), g.uniform(16, 32) * 30), "booked");
    for (auto& [when, status] : appts) {
        record r = make(rtype::appointment, 0, when, status, primary);
        if (when >= anchor_) r.last_updated = anchor_ - days{g.uniform(1, 20)};  // booked before the anchor
        push(std::move(r));
    }
}

std::vector<const record*> data_store::of_patient(rtype t, const std::string& patient_id) const {
    std::vector<const record*> out;
    const auto it = by_patient_.find(patient_id);
    if (it == by_patient_.end()) return out;
    for (const std::size_t i : it->second[static_cast<std::size_t>(t)])
        if (!records_[i].deleted) out.push_back(&records_[i]);
    return out;
}

const record* data_store::find(rtype t, const std::string& id) const {
    const auto& m = by_id_[static_cast<std::size_t>(t)];
    const auto it = m.find(id);
    return it == m.end() ? nullptr : &records_[it->second];
}

std::size_t data_store::count(rtype t) const {
    std::size_t n = 0;
    for (const auto& r : records_)
        if (r.type == t && !r.deleted) ++n;
    return n;
}

std::string data_store::render(const record& r) const {
    json_writer w;
    w.begin_object();
    w.member("resourceType", rtype_name(r.type));
    w.member("id", r.id);
    write_meta(w, r);
    switch (r.type) {
        case rtype::patient:
            render_patient(w, r);
            break;
        case rtype::condition:
            render_condition(w, r);
            break;
        case rtype::medication_request:
            render_medication_request(w, r);
            break;
        case rtype::encounter:
            render_encounter(w, r);
            break;
        case rtype::observation:
            render_observation(w, r);
            break;
        case rtype::procedure:
            render_procedure(w, r);
            break;
        case rtype::appointment:
            render_appointment(w, r);
            break;
    }
    w.end_object();
    return w.take();
}

bool data_store::update(rtype t, const std::string& id, time_point now) {
    const auto& m = by_id_[static_cast<std::size_t>(t)];
    const auto it = m.find(id);
    if (it == m.end() || records_[it->second].deleted) return false;
    record& r = records_[it->second];
    ++r.version;
    ++r.revision;
    r.last_updated = now;
    return true;
}

bool data_store::remove(rtype t, const std::string& id, time_point now) {
    const auto& m = by_id_[static_cast<std::size_t>(t)];
    const auto it = m.find(id);
    if (it == m.end() || records_[it->second].deleted) return false;
    record& r = records_[it->second];
    r.deleted = true;
    ++r.version;  // FHIR R4: a delete creates a new (deleted) version
    r.last_updated = now;
    return true;
}

std::string data_store::add(rtype t, const std::string& patient_id, time_point now) {
    const auto p = profiles_.find(patient_id);
    if (p == profiles_.end() || t == rtype::patient) return {};
    rng g(mix_seed(seed_ ^ 0xADDEDULL, ++added_));
    record r;
    r.type = t;
    r.id = next_id(t);
    r.patient_id = patient_id;
    r.seed = g.next();
    r.dx = p->second.primary_dx;
    r.when = now;
    r.last_updated = now;
    switch (t) {
        case rtype::condition:
            r.variant = g.uniform(0, dx_count - 1);
            r.dx = r.variant;
            r.status = "active";
            break;
        case rtype::medication_request:
            r.variant = g.uniform(0, drug_count - 1);
            r.status = "active";
            break;
        case rtype::encounter:
            r.status = "finished";
            break;
        case rtype::observation:
            r.variant = obs_pain;
            r.status = "final";
            break;
        case rtype::procedure:
            r.variant = 1;
            r.status = "completed";
            break;
        case rtype::appointment:
            r.status = "booked";
            r.when = day_at(now, 14, 10 * 60);
            break;
        case rtype::patient:
            break;
    }
    const std::string id = r.id;
    push(std::move(r));
    return id;
}

}  // namespace headachemd::sandbox::detail
