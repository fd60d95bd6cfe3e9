// Plain values produced by the normalizer and consumed by the store.
//
// One struct per analyst table. Every field that FHIR may omit is optional;
// the store writes NULL for an empty optional. Date-times are kept exactly as
// FHIR sent them (ISO 8601 text, possibly partial such as "2019" or
// "2019-05"), because rewriting a partial date would invent precision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace headachemd::normalize {

using opt_text = std::optional<std::string>;
using opt_real = std::optional<double>;
using opt_int = std::optional<std::int64_t>;
using opt_bool = std::optional<bool>;

// Columns every table shares.
struct header {
    std::string id;  // FHIR logical id (Resource.id)
    // The FHIR id of the patient the resource belongs to (for Patient, its own
    // id), after urn:uuid: references in a transaction Bundle were resolved.
    // Empty when the resource names no patient.
    std::string patient_ref;
    opt_text version_id;    // meta.versionId
    opt_text last_updated;  // meta.lastUpdated
    std::string raw_hash;   // lower-case hex SHA-256 of the resource's exact JSON bytes
    std::string raw;        // the resource's exact JSON bytes; filled only with options::keep_raw
    // The base of an absolute patient reference as sent ("https://x/fhir"
    // of "https://x/fhir/Patient/1"); empty for a relative or urn: one.
    // FHIR R4 §2.3.0: with another base than the server's own, the
    // reference names a patient on another server, even with the same id.
    // The normalizer knows no server base (`ingest` has none), so the sync
    // engine compares this with the EHR's fhir_base.
    std::string patient_ref_base;
};

struct patient_record {
    header h;
    opt_int birth_year;  // from birthDate; the full date is never kept ([privacy] identifiers = "none")
    opt_text sex;        // gender: male | female | other | unknown
    opt_bool deceased;   // deceasedBoolean, or true when deceasedDateTime is present
    opt_text deceased_at;
};

struct condition_record {
    header h;
    opt_text code_system, code, code_display;  // the coding that classified, else the first
    opt_text code_text;                        // code.text
    opt_text clinical_status, verification_status;
    opt_text category;  // first category coding code (problem-list-item, encounter-diagnosis, …)
    opt_text onset, abatement, recorded_date;
    opt_text headache_type;  // terminology::headache_type; NULL when not a headache
};

struct medication_request_record {
    header h;
    opt_text status, intent, authored_on;
    opt_text medication_system, medication_code, medication_display;
    // medicationReference.reference as sent, when the medication came by
    // reference; kept even after it was resolved, so analysts can join.
    opt_text medication_reference;
    opt_text ingredient, drug_class;
    std::string therapy_role = "other";  // acute | preventive | acute_and_preventive | other
    opt_bool as_needed;
    opt_text dose_text;
    // Units per administration: the first doseAndRate's doseQuantity (else
    // doseRange.high); a dose in mg, mcg or g is divided by strength_mg, and
    // is NULL when the strength is unknown.
    opt_real dose_quantity;
    opt_real doses_per_day;  // from timing.repeat (frequency, period, periodUnit)
    opt_real quantity;       // dispenseRequest.quantity.value
    opt_text quantity_unit;
    opt_real days_supply;  // dispenseRequest.expectedSupplyDuration in days
    opt_int refills;       // dispenseRequest.numberOfRepeatsAllowed
    // statusReason: the code of its first coding, and its text (else that
    // coding's display). Schema version 3.
    opt_text status_reason_code, status_reason;
    // Schema version 5. route: of dosageInstruction[0] (SNOMED CT route
    // code, else route words), else the dose form in the medication's name:
    // oral | ophthalmic | otic | topical | nasal | subcutaneous |
    // intramuscular | intravenous | rectal | transdermal.
    opt_text route;
    bool contains_opioid = false;
    bool contains_butalbital = false;
    opt_real strength_mg;        // mg of the classified ingredient per unit
    opt_real max_units_per_day;  // maxDosePerPeriod, else as-needed timing x dose_quantity

    // What dosageInstruction[0] said, kept until the medication is known
    // (a medicationReference may resolve only at the end of the document),
    // because the mg amounts in it become units only with the strength.
    // Not stored.
    struct dosage_facts {
        opt_text route;              // from Dosage.route, before the dose-form fallback
        opt_real dose_value;         // doseQuantity.value, else doseRange.high.value
        std::string dose_unit;       // its code, else unit ("mg", "{tbl}", "TAB")
        opt_real max_value;          // maxDosePerPeriod.numerator.value
        std::string max_unit;        // its code, else unit
        opt_real max_per_days;       // maxDosePerPeriod.denominator in days
        opt_real max_doses_per_day;  // timing: most administrations a day
    } dosage;
};

struct appointment_record {
    header h;
    opt_text status, start, end;
    opt_int minutes;  // minutesDuration, else end - start when both are full date-times
    opt_text service_type, appointment_type;  // code (or text) of the first coding
    opt_text reason_codes;                    // JSON array of {"system","code","display"}
    bool is_headache_related = false;
};

struct encounter_record {
    header h;
    opt_text status, class_code;
    opt_text type_code, type_display;
    opt_text reason_codes;  // JSON array of {"system","code","display"}
    opt_text period_start, period_end;
    bool is_headache_related = false;
};

struct observation_record {
    header h;
    opt_text status, category;
    opt_text code_system, code, code_display;
    opt_text value_type;  // quantity | string | codeable | boolean | integer | …; NULL when no value[x]
    opt_real value_num;
    opt_text value_unit;
    opt_text value_string;  // valueString, or the display/text of valueCodeableConcept
    opt_text value_code_system, value_code;
    opt_text effective_at;             // effectiveDateTime, effectivePeriod.start or effectiveInstant
    std::string instrument = "other";  // pain_nrs | phq9 | midas | hit6 | other
};

struct procedure_record {
    header h;
    opt_text status;
    opt_text code_system, code, code_display;
    opt_text performed_start, performed_end;
    // botulinum_toxin | botulinum_toxin_other | nerve_block | trigger_point | other
    std::string procedure_kind = "other";
};

// A resource of a type we do not normalize that some materialized view
// reads (issue 16): only its header and JSON (header::raw) travel, so the
// store can keep its bookkeeping (hash, deleted_at) in bare_resource and
// fill the view. Made only for normalize::options::raw_for_types; a type no
// view reads is counted as skipped, as before.
struct bare_record {
    header h;
    std::string resource_type;  // an R4 type, checked by the normalizer
};

using record = std::variant<patient_record, condition_record, medication_request_record, appointment_record,
                            encounter_record, observation_record, procedure_record, bare_record>;

// The analyst table a record goes to ("patient", "condition", …;
// "bare_resource" for a bare_record).
const char* table_name(const record& r);
// Its FHIR resource type ("Patient", "Condition", …). For a bare_record the
// pointer is into the record: valid while it lives.
const char* resource_type_of(const record& r);
// The table that keeps bare_records' bookkeeping (schema 11).
inline constexpr std::string_view bare_table = "bare_resource";
// The analyst table for a FHIR resource type we normalize; "" for others.
std::string_view table_for_type(std::string_view resource_type);
const header& header_of(const record& r);
header& header_of(record& r);

}  // namespace headachemd::normalize
