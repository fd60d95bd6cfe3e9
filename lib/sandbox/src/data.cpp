#include "data.hpp"

#include <algorithm>
#include <tuple>

#include "codec.hpp"
#include "json_writer.hpp"

namespace headachemd::sandbox::detail {

namespace {

using namespace std::chrono_literals;
using days = std::chrono::days;

constexpr std::string_view type_names[rtype_count] = {"Patient",     "Condition",         "MedicationRequest",
                                                      "Encounter",   "Observation",       "Procedure",
                                                      "Appointment", "AllergyIntolerance"};
constexpr std::string_view id_prefixes[rtype_count] = {"p",   "cond", "medrq", "enc",
                                                       "obs", "proc", "appt",  "algy"};

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
    dx_htn,
    dx_cad
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
    {"53741008", "Coronary arteriosclerosis", "I25.10",
     "Atherosclerotic heart disease of native coronary artery without angina pectoris",
     "Coronary artery disease"},
};
constexpr int dx_count = static_cast<int>(std::size(diagnoses));

// Drugs, prescribed the way a headache clinic writes them: triptans by the
// 9-tablet box as needed, preventives for 30 days with refills, opioid and
// butalbital combinations sized by the tablet. A coded product (SCD) carries
// its product display; an ingredient code carries the ingredient name and the
// product goes in text. Some have text only (ubrogepant's RxCUI is
// unverified; the combinations, whose product RxCUIs we did not verify), so a
// classifier must fall back to names (TERMINOLOGY.md).
struct drug {
    std::string_view code, code_display, text;
    bool as_needed;
    // timing.repeat: `frequency` per `period` `period_unit` (UCUM: h, d, wk, mo);
    // frequency 0 writes no timing.
    int frequency, period;
    std::string_view period_unit;
    int max_per_day;  // maxDosePerPeriod units per 1 d; 0 writes none
    int quantity;
    std::string_view unit, unit_code;
    int supply_days, repeats;
    std::string_view route;  // SNOMED CT route: oral, ophthalmic, subcutaneous, intramuscular
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
    rx_botox,
    rx_oxycodone_apap,
    rx_apap_codeine,
    rx_timolol_eye,
    rx_aspirin_81,
    rx_divalproex,
    rx_contraceptive
};
constexpr std::string_view oral = "26643006";
constexpr std::string_view ophthalmic = "54485002";
constexpr std::string_view subcutaneous = "34206005";
constexpr std::string_view intramuscular = "78421000";
constexpr drug drugs[] = {
    {"313088", "sumatriptan 50 MG Oral Tablet", "sumatriptan 50 MG Oral Tablet", true, 1, 2, "h", 2, 9,
     "tablet", "{tbl}", 30, 0, oral,
     "Take 1 tablet by mouth at migraine onset; may repeat once after 2 hours. No more than 2 tablets in 24 "
     "hours."},
    {"88014", "rizatriptan", "rizatriptan 10 MG Oral Tablet", true, 1, 2, "h", 2, 9, "tablet", "{tbl}", 30, 0,
     oral, "Take 1 tablet by mouth at migraine onset; may repeat after 2 hours. Max 2 tablets a day."},
    {"", "", "ubrogepant 50 MG Oral Tablet", true, 1, 2, "h", 2, 10, "tablet", "{tbl}", 30, 0, oral,
     "Take 1 tablet by mouth at migraine onset; may repeat after 2 hours. Max 2 tablets a day."},
    {"2282307", "rimegepant", "rimegepant 75 MG Disintegrating Oral Tablet", true, 1, 1, "d", 1, 8, "tablet",
     "{tbl}", 30, 0, oral, "Dissolve 1 tablet on the tongue at migraine onset. Max 1 tablet a day."},
    {"5640", "ibuprofen", "ibuprofen 600 MG Oral Tablet", true, 1, 8, "h", 3, 20, "tablet", "{tbl}", 30, 0,
     oral, "Take 1 tablet by mouth every 8 hours as needed for headache, with food. Max 3 tablets a day."},
    {"7258", "naproxen", "naproxen 500 MG Oral Tablet", true, 1, 12, "h", 2, 20, "tablet", "{tbl}", 30, 0,
     oral, "Take 1 tablet by mouth every 12 hours as needed for headache, with food."},
    {"", "", "butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet", true, 1, 4, "h", 0, 20,
     "tablet", "{tbl}", 30, 0, oral, "Take 1 tablet by mouth every 4 hours as needed for headache."},
    {"10689", "tramadol", "tramadol hydrochloride 50 MG Oral Tablet", true, 1, 6, "h", 4, 20, "tablet",
     "{tbl}", 30, 0, oral,
     "Take 1 tablet by mouth every 6 hours as needed for severe headache. Max 4 tablets a day."},
    {"38404", "topiramate", "topiramate 25 MG Oral Tablet", false, 2, 1, "d", 0, 60, "tablet", "{tbl}", 30, 5,
     oral, "Take 1 tablet by mouth twice a day."},
    {"8787", "propranolol", "propranolol hydrochloride 40 MG Oral Tablet", false, 2, 1, "d", 0, 60, "tablet",
     "{tbl}", 30, 5, oral, "Take 1 tablet by mouth twice a day."},
    {"704", "amitriptyline", "amitriptyline hydrochloride 25 MG Oral Tablet", false, 1, 1, "d", 0, 30,
     "tablet", "{tbl}", 30, 5, oral, "Take 1 tablet by mouth at bedtime."},
    {"2045628", "erenumab", "1 ML erenumab-aooe 70 MG/ML Auto-Injector", false, 1, 1, "mo", 0, 1,
     "auto-injector", "{injector}", 30, 2, subcutaneous, "Inject 70 mg under the skin once a month."},
    {"1712", "botulinum toxin type A", "onabotulinumtoxinA 200 UNT Injection", false, 1, 12, "wk", 0, 1,
     "vial", "{vial}", 84, 0, intramuscular,
     "155 units intramuscularly across 31 sites every 12 weeks (PREEMPT protocol)."},
    {"", "", "oxycodone hydrochloride 5 MG / acetaminophen 325 MG Oral Tablet", true, 1, 6, "h", 4, 20,
     "tablet", "{tbl}", 30, 0, oral,
     "Take 1 tablet by mouth every 6 hours as needed for severe pain. Max 4 tablets a day."},
    {"", "", "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", true, 1, 6, "h", 0, 20, "tablet",
     "{tbl}", 30, 0, oral, "Take 1 tablet by mouth every 6 hours as needed for headache."},
    {"10600", "timolol", "timolol maleate 0.5 % Ophthalmic Solution", false, 2, 1, "d", 0, 5, "mL", "mL", 30,
     5, ophthalmic, "Instill 1 drop in each eye twice a day (glaucoma)."},
    {"1191", "aspirin", "aspirin 81 MG Delayed Release Oral Tablet", false, 1, 1, "d", 0, 90, "tablet",
     "{tbl}", 90, 3, oral, "Take 1 tablet by mouth daily (secondary prevention)."},
    {"", "", "divalproex sodium 500 MG 24 HR Extended Release Oral Tablet", false, 1, 1, "d", 0, 30, "tablet",
     "{tbl}", 30, 5, oral, "Take 1 tablet by mouth at bedtime."},
    {"", "", "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet", false, 1, 1, "d", 0, 28,
     "tablet", "{tbl}", 28, 11, oral, "Take 1 tablet by mouth daily (combined oral contraceptive)."},
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
    // Botulinum toxin for the bladder: a distractor, not a migraine treatment.
    {"52287", "Cystourethroscopy, with injection(s) for chemodenervation of the bladder",
     "OnabotulinumtoxinA bladder injection for overactive bladder"},
};
enum proc_index { proc_botox_migraine, proc_occipital_block, proc_botox_bladder };

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
    bool female = g.chance(0.75);  // migraine is about three times as common in women
    if (r.female >= 0) female = r.female == 1;
    w.member("gender", female ? "female" : "male");
    int year = g.uniform(1950, 2005);
    if (r.birth_year > 0) year = r.birth_year;
    const int month = g.uniform(1, 12);
    const int day = g.uniform(1, 28);
    w.member("birthDate", pad(static_cast<std::uint64_t>(year), 4) + "-" +
                              pad(static_cast<std::uint64_t>(month), 2) + "-" +
                              pad(static_cast<std::uint64_t>(day), 2));
    if (r.deceased) w.member("deceasedDateTime", format_date_time(*r.deceased));
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

// How an as-needed order is written (record::style): the same 9 tablets
// come from EHRs with a daily maximum (0, the drug's default), with only
// "may repeat after 2 hours" (1), or with no timing at all, only the supply
// duration (2).
enum prn_style { prn_with_max = 0, prn_repeat_only = 1, prn_supply_only = 2 };

void render_medication_request(json_writer& w, const record& r) {
    const drug& d = drugs[r.variant];
    const int style = d.as_needed && r.style >= 0 ? r.style : prn_with_max;
    const bool timing = d.frequency > 0 && style != prn_supply_only;
    const bool max_per_day = d.max_per_day > 0 && style == prn_with_max;
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
    std::string_view sig = d.sig;
    if (style == prn_repeat_only)
        sig = "Take 1 tablet by mouth at migraine onset; may repeat after 2 hours if the headache returns.";
    else if (style == prn_supply_only)
        sig = "Take 1 tablet by mouth at migraine onset as needed.";
    w.member("sequence", 1).member("text", sig);
    if (timing) {
        w.key("timing").begin_object().key("repeat").begin_object();
        w.member("frequency", d.frequency).member("period", d.period).member("periodUnit", d.period_unit);
        w.end_object().end_object();
    }
    w.member("asNeededBoolean", d.as_needed);
    w.key("route").begin_object().key("coding").begin_array();
    write_coding(w, snomed, d.route,
                 d.route == oral           ? "Oral route"
                 : d.route == ophthalmic   ? "Ophthalmic route"
                 : d.route == subcutaneous ? "Subcutaneous route"
                                           : "Intramuscular route");
    w.end_array().end_object();
    w.key("doseAndRate").begin_array().begin_object();
    write_quantity(w, "doseQuantity", 1, d.unit == "mL" ? "drop" : d.unit,
                   d.unit == "mL" ? "[drp]" : d.unit_code);
    w.end_object().end_array();
    if (max_per_day) {
        // R4 Dosage.maxDosePerPeriod: a Ratio, units per 1 day.
        w.key("maxDosePerPeriod").begin_object();
        write_quantity(w, "numerator", d.max_per_day, d.unit, d.unit_code);
        write_quantity(w, "denominator", 1, "day", "d");
        w.end_object();
    }
    w.end_object().end_array();
    w.key("dispenseRequest").begin_object();
    w.member("numberOfRepeatsAllowed", r.repeats >= 0 ? r.repeats : d.repeats);
    write_quantity(w, "quantity", r.quantity > 0 ? r.quantity : d.quantity, d.unit, d.unit_code);
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
    if (r.value >= 0) value = std::clamp(r.value, lo, hi);
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
    if (r.variant == proc_botox_bladder) {
        w.begin_object().key("coding").begin_array();
        write_coding(w, icd10cm, "N32.81", "Overactive bladder");
        w.end_array().member("text", "Overactive bladder").end_object();
    } else {
        write_dx_concept(w, r.dx, 1);
    }
    w.end_array();
    if (r.revision > 0) {
        w.key("note").begin_array().begin_object();
        w.member("text", "Documentation amended (revision " + std::to_string(r.revision) + ")");
        w.end_object().end_array();
    }
}

// Drug allergies a headache patient may have (SNOMED CT), by variant.
struct allergy_code {
    std::string_view code, display;
};
constexpr allergy_code allergies[] = {
    {"91936005", "Allergy to penicillin"},
    {"294505008", "Allergy to aspirin"},
    {"293586001", "Allergy to sulfonamide"},
};

// A revision (server::update_resource) marks it inactive: a change a view
// of clinicalStatus shows.
void render_allergy_intolerance(json_writer& w, const record& r) {
    const allergy_code& a = allergies[static_cast<std::size_t>(r.variant) % std::size(allergies)];
    w.key("clinicalStatus").begin_object().key("coding").begin_array();
    write_coding(w, "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                 r.revision > 0 ? "inactive" : "active", r.revision > 0 ? "Inactive" : "Active");
    w.end_array().end_object();
    w.key("verificationStatus").begin_object().key("coding").begin_array();
    write_coding(w, "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed",
                 "Confirmed");
    w.end_array().end_object();
    w.member("type", "allergy");
    w.key("category").begin_array().value("medication").end_array();
    w.member("criticality", "low");
    w.key("code").begin_object().key("coding").begin_array();
    write_coding(w, snomed, a.code, a.display);
    w.end_array().member("text", a.display).end_object();
    write_reference(w, "patient", "Patient", r.patient_id);
    w.member("recordedDate", format_date_time(r.when));
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

// The demo's clinical cases: the first patients of every sandbox are these
// histories, written so that each side of each analytic rule shows (see
// tests/unit/sandbox/data_test.cpp, DemoCases). Days count from the start of
// an 18-month history that ends at the anchor; the rest of the patients are
// drawn from the seed.
struct order {
    int day, drug, quantity = -1, repeats = -1, style = -1;
    const char* status = nullptr;  // nullptr: active when recent, else completed
};
struct score_from {
    int day, midas, hit6;
};
struct clinical_case {
    int primary = dx_migraine_wo_aura;
    int female = 1, birth_year = 1990;
    int deceased_day = -1;
    std::vector<std::pair<int, int>> conditions;  // (day, dx); negative days are before the history
    std::vector<order> orders;
    std::vector<std::pair<int, int>> procedures;  // (day, proc_index)
    std::vector<score_from> scores;               // MIDAS and HIT-6 at the visits from `day` on
};
constexpr int case_months = 18;
constexpr int case_span = case_months * 30;

void every(std::vector<order>& out, int drug, int from, int to, int step, int quantity = -1, int style = -1) {
    for (int d = from; d < to; d += step) out.push_back({d, drug, quantity, -1, style});
}

std::vector<clinical_case> clinical_cases() {
    std::vector<clinical_case> out;
    {  // demo-001: chronic migraine; 3 boxes of sumatriptan a month for the last 10 months (ICHD-3 8.2.2
       // met on the minimum: 27 tablets, at most 2 a day, are at least 13.5 days); topiramate from day
       // 285 with scores before and 3 and 6 months after; a woman of 32 on topiramate.
        clinical_case c;
        c.primary = dx_chronic_migraine;
        c.birth_year = 1992;
        c.conditions = {{-400, dx_chronic_migraine}, {380, dx_moh}};
        every(c.orders, rx_sumatriptan, 5, 240, 30, 9);
        every(c.orders, rx_sumatriptan, 245, case_span, 30, 27);
        c.orders.push_back({285, rx_topiramate});
        c.orders.push_back({465, rx_topiramate});
        c.scores = {{0, 42, 67}, {300, 31, 64}, {400, 24, 62}};
        out.push_back(c);
    }
    {  // demo-002: migraine with aura on a combined (estrogen) oral contraceptive; one box of
       // rizatriptan every 45 days written "may repeat after 2 hours" (below the threshold).
        clinical_case c;
        c.primary = dx_migraine_w_aura;
        c.birth_year = 1996;
        c.conditions = {{-300, dx_migraine_w_aura}};
        c.orders = {{20, rx_contraceptive}, {384, rx_contraceptive}};
        every(c.orders, rx_rizatriptan, 15, case_span, 45, 9, prn_repeat_only);
        c.scores = {{0, 8, 55}};
        out.push_back(c);
    }
    {  // demo-003: tension-type headache only; naproxen 20 tablets every 60 days (at most 10 days a
       // month, below 15), then ibuprofen 90 tablets a month, at most 3 a day (at least 30 days: 8.2.3).
        clinical_case c;
        c.primary = dx_tension;
        c.female = 0;
        c.birth_year = 1978;
        c.conditions = {{-200, dx_tension}};
        every(c.orders, rx_naproxen, 10, 290, 60);
        every(c.orders, rx_ibuprofen, 300, case_span, 30, 90);
        c.scores = {{0, 12, 58}};
        out.push_back(c);
    }
    {  // demo-004: died at day 420 (deceasedDateTime); her last orders are still "active" in the EHR.
        clinical_case c;
        c.primary = dx_chronic_migraine;
        c.birth_year = 1958;
        c.deceased_day = 420;
        c.conditions = {{-900, dx_htn}, {-600, dx_chronic_migraine}};
        c.orders = {{30, rx_topiramate, -1, 3}, {160, rx_amitriptyline}};
        every(c.orders, rx_sumatriptan, 10, 300, 45);
        c.orders.push_back({330, rx_erenumab, -1, -1, -1, "active"});
        c.orders.push_back({340, rx_sumatriptan, -1, -1, -1, "active"});
        c.orders.push_back({400, rx_erenumab, -1, -1, -1, "active"});
        c.scores = {{0, 36, 65}};
        out.push_back(c);
    }
    {  // demo-005: episodic migraine in a man of 69 with glaucoma and an overactive bladder: timolol eye
       // drops and bladder botulinum toxin (CPT 52287) are no migraine trials; aspirin 81 mg is
       // antiplatelet; naproxen (14 every 4 months) and sumatriptan (9 every 3 months) stay below
       // the thresholds, apart and together (8.2.6: at most 8 days a month).
        clinical_case c;
        c.female = 0;
        c.birth_year = 1955;
        c.conditions = {{-900, dx_htn}, {-500, dx_migraine_wo_aura}};
        c.orders = {{40, rx_timolol_eye}, {220, rx_timolol_eye}, {400, rx_timolol_eye},
                    {20, rx_aspirin_81},  {200, rx_aspirin_81},  {380, rx_aspirin_81}};
        every(c.orders, rx_naproxen, 30, case_span, 120, 14);
        every(c.orders, rx_sumatriptan, 50, case_span, 90, 9, prn_supply_only);
        c.procedures = {{150, proc_botox_bladder}, {330, proc_botox_bladder}};
        c.scores = {{0, 8, 52}};
        out.push_back(c);
    }
    {  // demo-006: oxycodone/acetaminophen 30 tablets a month for 5 months, at most 4 a day: 7.5 to 30
       // days a month, so opioid overuse (8.2.4, 10 days) is possible, not met; acetaminophen/codeine once.
        clinical_case c;
        c.birth_year = 1970;
        c.conditions = {{-700, dx_migraine_wo_aura}};
        c.orders = {{200, rx_apap_codeine}};
        every(c.orders, rx_oxycodone_apap, 360, 500, 30, 30);
        every(c.orders, rx_sumatriptan, 25, case_span, 40, 9);
        c.scores = {{0, 18, 60}};
        out.push_back(c);
    }
    {  // demo-007: butalbital/acetaminophen/caffeine 30 tablets a month as needed every 4 hours: 5 to
       // 30 days a month, possible overuse of a combination analgesic (8.2.5).
        clinical_case c;
        c.birth_year = 1985;
        c.conditions = {{-350, dx_migraine_wo_aura}};
        every(c.orders, rx_butalbital, 390, case_span, 30, 30);
        every(c.orders, rx_sumatriptan, 12, case_span, 45, 9, prn_repeat_only);
        c.scores = {{0, 15, 59}};
        out.push_back(c);
    }
    {  // demo-008: a woman of 25 on divalproex (valproate) from day 200, with scores before and 3 and
       // 6 months after; one box of sumatriptan every 35 days written with the supply only.
        clinical_case c;
        c.birth_year = 1999;
        c.conditions = {{-250, dx_migraine_wo_aura}};
        c.orders = {{200, rx_divalproex}, {380, rx_divalproex}};
        every(c.orders, rx_sumatriptan, 8, case_span, 35, 9, prn_supply_only);
        c.scores = {{0, 24, 63}, {200, 14, 58}, {300, 7, 52}};
        out.push_back(c);
    }
    {  // demo-009: chronic migraine; adequate topiramate (120 days) and propranolol (150 days) trials,
       // then erenumab from day 290 with scores before and 3 and 6 months after.
        clinical_case c;
        c.birth_year = 1965;
        c.primary = dx_chronic_migraine;
        c.conditions = {{-800, dx_chronic_migraine}};
        c.orders = {{0, rx_topiramate, -1, 3},
                    {130, rx_propranolol, -1, 4},
                    {290, rx_erenumab},
                    {380, rx_erenumab},
                    {470, rx_erenumab}};
        every(c.orders, rx_rizatriptan, 6, case_span, 30, 9);
        c.scores = {{0, 48, 68}, {300, 30, 62}, {400, 16, 57}};
        out.push_back(c);
    }
    {  // demo-010: migraine with aura and coronary artery disease, prescribed sumatriptan (a triptan
       // with ischaemic heart disease is contraindicated by the label).
        clinical_case c;
        c.primary = dx_migraine_w_aura;
        c.female = 0;
        c.birth_year = 1960;
        c.conditions = {{-1000, dx_htn}, {-600, dx_cad}, {-400, dx_migraine_w_aura}};
        every(c.orders, rx_sumatriptan, 20, case_span, 60, 9);
        c.scores = {{0, 10, 54}};
        out.push_back(c);
    }
    return out;
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

namespace {

// Prescriptions over the months of history of a patient with no scripted
// case: acute drugs a box at a time every one to three months, preventives
// tried in sequence, each order for 30 days with the refills the trial
// needs (the CGRP prior-authorization story: two oral preventive classes,
// then a mAb). botox_days gets the days of the injections ordered.
std::vector<order> draw_orders(rng& g, int primary, bool has_moh, int span, time_point start,
                               std::vector<time_point>& botox_days) {
    const bool chronic = primary == dx_chronic_migraine;
    std::vector<order> meds;
    const auto refill = [&](int drug, int from_day, int to_day, int min_gap, int max_gap) {
        // A PRN triptan or gepant is written one of three ways (prn_style).
        const int style = drug <= rx_rimegepant ? g.uniform(0, 2) : -1;
        for (int d = from_day; d < to_day; d += g.uniform(min_gap, max_gap))
            meds.push_back({d, drug, -1, -1, style});
    };
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
        // The first drug a box every one to two and a half months; a
        // second one is an occasional backup, a box every 2.5-5 months.
        if (k == 0)
            refill(acute[k], g.uniform(0, 20), span, 30, 75);
        else
            refill(acute[k], g.uniform(30, span / 2), span, 75, 150);
    }
    // One order per trial, refilled to its length (at most 5 refills, then a new order).
    const auto trial = [&](int drug, int from_day, int to_day, bool stopped) {
        for (int d = from_day; d < to_day; d += 180) {
            const int left = std::min(to_day - d, 180);
            const bool last = d + 180 >= to_day;
            meds.push_back(
                {d, drug, -1, std::max(0, (left + 29) / 30 - 1), -1, stopped && last ? "stopped" : nullptr});
        }
    };
    if (chronic || (is_migraine(primary) && g.chance(0.4))) {
        const int first = g.chance(0.6) ? rx_topiramate : rx_propranolol;
        const int second =
            first == rx_topiramate ? (g.chance(0.5) ? rx_propranolol : rx_amitriptyline) : rx_topiramate;
        const int t1 = g.uniform(60, 150);  // each trial at least eight weeks
        trial(first, 0, t1, true);
        const int t2 = t1 + g.uniform(60, 150);
        trial(second, t1 + 5, std::min(t2, span), t2 < span);
        if (chronic && t2 < span)
            for (int d = t2 + 7; d < span; d += 90) meds.push_back({d, rx_erenumab});
    }
    if (chronic && g.chance(0.7)) {
        for (int d = std::max(0, span - 365) + g.uniform(0, 20); d < span - 7; d += 84) {
            botox_days.push_back(day_at(start, d, 10 * 60));
            meds.push_back({d - 14, rx_botox});
        }
    }
    return meds;
}

}  // namespace

// One patient's resources, a type at a time. Every step draws from the
// patient's own rng in the order the steps run, so the same seed gives the
// same rows: keep the order of the draws when changing a step.
struct data_store::patient_builder {
    data_store& store;
    rng g;
    int index;
    std::string pid;
    const clinical_case* scripted;  // nullptr: drawn from the seed
    int primary;
    int months;
    time_point start, end;

    int span() const { return months * 30; }

    // Everything generated was last touched before the anchor, so a client's
    // `_lastUpdated` cursor is older than any change a control makes later.
    time_point stamp(time_point when) {
        const time_point t = when + std::chrono::hours{g.uniform(1, 48)};
        return std::min(t, store.anchor_ - std::chrono::hours{1});
    }

    record make(rtype t, int variant, time_point when, std::string status, int dx) {
        record r;
        r.type = t;
        r.id = t == rtype::patient ? pid : store.next_id(t);
        r.patient_id = pid;
        r.seed = g.next();
        r.variant = variant;
        r.dx = dx;
        r.status = std::move(status);
        r.when = when;
        r.last_updated = stamp(when);
        return r;
    }

    void add_patient() {
        record p = make(rtype::patient, index, start, "active", primary);
        p.last_updated = store.anchor_ - days{months * 30} + std::chrono::hours{2};
        if (scripted) {
            p.female = scripted->female;
            p.birth_year = scripted->birth_year;
            if (scripted->deceased_day >= 0) {
                p.deceased = day_at(start, scripted->deceased_day, 4 * 60);
                p.last_updated = stamp(*p.deceased);
            }
        }
        store.push(std::move(p));
    }

    // Conditions: the primary headache diagnosis and up to three others.
    // True when one of them is medication-overuse headache.
    bool add_conditions() {
        std::vector<std::tuple<time_point, int, std::string>> conditions;
        if (scripted) {
            for (const auto& [day, dx] : scripted->conditions)
                conditions.emplace_back(day_at(start, day, 9 * 60), dx, "active");
        } else {
            conditions.emplace_back(day_at(start, -g.uniform(30, 700), 9 * 60), primary, "active");
            if ((is_migraine(primary)) && g.chance(0.3))
                conditions.emplace_back(day_at(start, g.uniform(90, 300), 10 * 60), dx_moh,
                                        g.chance(0.4) ? "resolved" : "active");
            if (primary != dx_tension && g.chance(0.25))
                conditions.emplace_back(day_at(start, g.uniform(0, 200), 11 * 60), dx_tension, "active");
            if (g.chance(0.3))
                conditions.emplace_back(day_at(start, -g.uniform(100, 2000), 9 * 60), dx_htn, "active");
        }
        const bool has_moh = std::any_of(conditions.begin(), conditions.end(),
                                         [](const auto& c) { return std::get<1>(c) == dx_moh; });
        std::sort(conditions.begin(), conditions.end());
        for (auto& [when, dx, status] : conditions) store.push(make(rtype::condition, dx, when, status, dx));
        return has_moh;
    }

    // The scripted orders, or draw_orders; returns the botulinum toxin days.
    std::vector<time_point> add_prescriptions(bool has_moh) {
        std::vector<order> meds;
        const auto recent = [&](time_point t) { return t > store.anchor_ - days{75}; };
        std::vector<time_point> botox_days;
        if (scripted) {
            meds = scripted->orders;
        } else {
            meds = draw_orders(g, primary, has_moh, span(), start, botox_days);
        }
        std::vector<record> rx;
        for (const auto& o : meds) {
            const time_point when = day_at(start, o.day, 8 * 60 + (o.day * 37 + o.drug * 11) % (9 * 60));
            if (when >= end) continue;
            record r = make(rtype::medication_request, o.drug, when,
                            o.status       ? o.status
                            : recent(when) ? "active"
                                           : "completed",
                            primary);
            r.quantity = o.quantity;
            r.repeats = o.repeats;
            r.style = o.style;
            rx.push_back(std::move(r));
        }
        std::stable_sort(rx.begin(), rx.end(),
                         [](const record& a, const record& b) { return a.when < b.when; });
        for (auto& r : rx) store.push(std::move(r));
        return botox_days;
    }

    // Encounters about every three months (every 90 days in the demo's
    // cases, so their scores fall 3 and 6 months after a start). Returns
    // the visits.
    std::vector<time_point> add_encounters() {
        std::vector<time_point> visits;
        if (scripted) {
            for (int d = 10; d < span() - 7; d += 90)
                if (day_at(start, d, 9 * 60) < end) visits.push_back(day_at(start, d, 9 * 60 + 15 * index));
        } else {
            for (int d = g.uniform(0, 20); d < span() - 7; d += g.uniform(75, 105))
                visits.push_back(day_at(start, d, g.uniform(8 * 60, 16 * 60)));
        }
        for (const auto when : visits) store.push(make(rtype::encounter, 0, when, "finished", primary));
        return visits;
    }

    // Observations: a monthly diary pain score, and at each visit a pain
    // score, MIDAS, HIT-6 and (every other visit) PHQ-9: 35+ per patient, so
    // a search spans seven pages at _count=5.
    void add_observations(const std::vector<time_point>& visits) {
        std::vector<std::pair<time_point, int>> obs;
        for (int m = 0; m < months; ++m) {
            const time_point when = day_at(start, m * 30 + g.uniform(0, 25), 20 * 60);
            if (when < end) obs.emplace_back(when, obs_pain);
        }
        for (std::size_t v = 0; v < visits.size(); ++v) {
            obs.emplace_back(visits[v] + std::chrono::minutes{5}, obs_pain);
            obs.emplace_back(visits[v] + std::chrono::minutes{6}, obs_midas);
            obs.emplace_back(visits[v] + std::chrono::minutes{7}, obs_hit6);
            if (v % 2 == 0) obs.emplace_back(visits[v] + std::chrono::minutes{8}, obs_phq9);
        }
        std::sort(obs.begin(), obs.end());
        for (const auto& [when, kind] : obs) {
            record r = make(rtype::observation, kind, when, "final", primary);
            if (scripted && (kind == obs_midas || kind == obs_hit6)) {
                for (const auto& sc : scripted->scores)
                    if (when >= day_at(start, sc.day, 0)) r.value = kind == obs_midas ? sc.midas : sc.hit6;
            }
            store.push(std::move(r));
        }
    }

    // Procedures: botulinum toxin every 12 weeks, and some nerve blocks.
    void add_procedures(const std::vector<time_point>& botox_days) {
        std::vector<std::pair<time_point, int>> procs;
        for (const auto when : botox_days) procs.emplace_back(when, proc_botox_migraine);
        if (scripted) {
            for (const auto& [day, kind] : scripted->procedures)
                procs.emplace_back(day_at(start, day, 14 * 60), kind);
        } else if (primary != dx_tension && g.chance(0.3)) {
            const int n = g.uniform(1, 2);
            for (int k = 0; k < n; ++k)
                procs.emplace_back(day_at(start, g.uniform(30, span() - 30), 14 * 60), proc_occipital_block);
        }
        std::sort(procs.begin(), procs.end());
        for (const auto& [when, kind] : procs)
            store.push(make(rtype::procedure, kind, when, "completed",
                            kind == proc_botox_migraine ? dx_chronic_migraine : primary));
    }

    // Appointments: the last two visits (fulfilled, or a no-show) and one or
    // two booked in the weeks after the anchor (none after a death).
    void add_appointments(const std::vector<time_point>& visits) {
        const time_point anchor = store.anchor_;
        std::vector<std::pair<time_point, std::string>> appts;
        for (std::size_t v = visits.size() >= 2 ? visits.size() - 2 : 0; v < visits.size(); ++v)
            appts.emplace_back(visits[v], g.chance(0.9) ? "fulfilled" : "noshow");
        const int future = end < anchor ? 0 : g.uniform(1, 2);
        for (int k = 0; k < future; ++k)
            appts.emplace_back(day_at(anchor, 14 + 30 * k + g.uniform(0, 20), g.uniform(16, 32) * 30),
                               "booked");
        for (auto& [when, status] : appts) {
            record r = make(rtype::appointment, 0, when, status, primary);
            if (when >= anchor) r.last_updated = anchor - days{g.uniform(1, 20)};  // booked before the anchor
            store.push(std::move(r));
        }
    }
};

void data_store::generate_patient(int index) {
    rng g(mix_seed(seed_, static_cast<std::uint64_t>(index)));
    const std::uint64_t tag = g.next() & 0xFFFF;
    static constexpr char hex[] = "0123456789abcdef";
    std::string pid = "p" + pad(static_cast<std::uint64_t>(index + 1), 4) + "-";
    for (int shift = 12; shift >= 0; shift -= 4) pid.push_back(hex[tag >> shift & 0xF]);

    static const std::vector<clinical_case> cases = clinical_cases();
    const clinical_case* scripted =
        index < static_cast<int>(cases.size()) ? &cases[static_cast<std::size_t>(index)] : nullptr;

    const double pick = g.real();
    const int primary = scripted      ? scripted->primary
                        : pick < 0.35 ? dx_migraine_wo_aura
                        : pick < 0.5  ? dx_migraine_w_aura
                        : pick < 0.75 ? dx_chronic_migraine
                        : pick < 0.88 ? dx_tension
                                      : dx_cluster;
    const int months = scripted ? case_months : 18 + g.uniform(0, 6);
    const time_point start = day_at(anchor_, -months * 30, 0);
    // History ends at the anchor, or at death.
    const time_point end =
        scripted && scripted->deceased_day >= 0 ? day_at(start, scripted->deceased_day, 0) : anchor_;

    patient_ids_.push_back(pid);
    profiles_[pid] = patient_profile{index, primary};
    by_patient_[pid];  // a patient with no resources of a type still exists

    // The steps in the order they draw from g.
    patient_builder b{*this, g, index, pid, scripted, primary, months, start, end};
    b.add_patient();
    const bool has_moh = b.add_conditions();
    const std::vector<time_point> botox_days = b.add_prescriptions(has_moh);
    const std::vector<time_point> visits = b.add_encounters();
    b.add_observations(visits);
    b.add_procedures(botox_days);
    b.add_appointments(visits);
}

std::vector<const record*> data_store::of_patient(rtype t, const std::string& patient_id,
                                                  bool deleted) const {
    std::vector<const record*> out;
    const auto it = by_patient_.find(patient_id);
    if (it == by_patient_.end()) return out;
    for (const std::size_t i : it->second[static_cast<std::size_t>(t)])
        if (records_[i].deleted == deleted) out.push_back(&records_[i]);
    return out;
}

std::vector<const record*> data_store::of_patient(rtype t, const std::string& patient_id) const {
    return of_patient(t, patient_id, false);
}

std::vector<const record*> data_store::deleted_of_patient(rtype t, const std::string& patient_id) const {
    return of_patient(t, patient_id, true);
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
        case rtype::allergy_intolerance:
            render_allergy_intolerance(w, r);
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
        case rtype::allergy_intolerance:
            r.variant = g.uniform(0, 2);
            r.status = "active";
            break;
        case rtype::patient:
            break;
    }
    const std::string id = r.id;
    push(std::move(r));
    return id;
}

}  // namespace headachemd::sandbox::detail
