// The sandbox's synthetic clinical data: generated from a seed, held in
// memory, rendered to FHIR R4 JSON on demand, and changed by test controls.
// Pure: no I/O, no locking (the server holds its mutex around every call).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace headachemd::sandbox::detail {

using time_point = std::chrono::system_clock::time_point;

// allergy_intolerance: a type HeadacheMD does not normalize, served so a
// materialized view over it can be synced (issue 16). The generator makes
// none (the data of every seed stays as it was); tests add them
// (server::add_resource).
enum class rtype {
    patient,
    condition,
    medication_request,
    encounter,
    observation,
    procedure,
    appointment,
    allergy_intolerance
};
inline constexpr int rtype_count = 8;

std::optional<rtype> parse_rtype(std::string_view name);
std::string_view rtype_name(rtype t);

// One stored resource. The JSON is rendered from these fields, so a
// resource is a few dozen bytes until someone reads it.
struct record {
    rtype type{};
    std::string id;
    std::string patient_id;
    std::uint64_t seed = 0;  // the resource's own randomness (values, quantities)
    int variant = 0;         // which code: a diagnosis, a drug, an instrument, …
    int dx = 0;              // the diagnosis an encounter, appointment or procedure is for
    std::string status;      // the generated FHIR status
    time_point when{};       // the clinical time: onset, authoredOn, effective, start
    int version = 1;         // meta.versionId
    int revision = 0;        // how many times a control changed it
    time_point last_updated{};
    bool deleted = false;
    // Scripted values (the demo's clinical cases); a negative value means
    // "as the generator's defaults and the seed say".
    int quantity = -1;    // MedicationRequest: units dispensed
    int repeats = -1;     // MedicationRequest: numberOfRepeatsAllowed
    int style = -1;       // MedicationRequest: how an as-needed order is written (see data.cpp)
    int value = -1;       // Observation: the score
    int birth_year = -1;  // Patient
    int female = -1;      // Patient: 1 female, 0 male
    std::optional<time_point> deceased;  // Patient: deceasedDateTime
};

// What identifies a generated patient (render_patient writes these).
struct patient_identifiers {
    std::string name_text, family, mrn, phone;
};

class data_store {
public:
    // Generates `patients` patients whose history ends at `anchor`. Every
    // generated meta.lastUpdated is at or before the anchor.
    data_store(std::uint64_t seed, int patients, time_point anchor);

    const std::vector<std::string>& patient_ids() const { return patient_ids_; }
    bool has_patient(const std::string& id) const;

    // Non-deleted resources of one type for one patient, in search order
    // (creation order, stable across updates).
    std::vector<const record*> of_patient(rtype t, const std::string& patient_id) const;
    // The deleted ones, in the same order (a bulk export's deleted[]).
    std::vector<const record*> deleted_of_patient(rtype t, const std::string& patient_id) const;
    // Any resource, deleted ones included; nullptr when unknown.
    const record* find(rtype t, const std::string& id) const;
    std::size_t count(rtype t) const;
    // The identifying values the patient's resource shows now; nullopt for
    // an unknown patient.
    std::optional<patient_identifiers> identifiers(const std::string& patient_id) const;

    // FHIR R4 JSON of one resource (resourceType first, then id and meta).
    std::string render(const record& r) const;

    // The controls. Each returns false when the resource (or patient) is unknown.
    bool update(rtype t, const std::string& id, time_point now);
    bool remove(rtype t, const std::string& id, time_point now);
    // Adds a generated resource for the patient (not a Patient); "" if the
    // patient is unknown.
    std::string add(rtype t, const std::string& patient_id, time_point now);

private:
    struct patient_profile {
        int index = 0;
        int primary_dx = 0;
    };

    std::vector<const record*> of_patient(rtype t, const std::string& patient_id, bool deleted) const;
    record& push(record r);
    std::string next_id(rtype t);
    struct patient_builder;  // data.cpp
    void generate_patient(int index);

    std::uint64_t seed_;
    time_point anchor_;
    std::vector<record> records_;
    std::array<std::unordered_map<std::string, std::size_t>, rtype_count> by_id_;
    // patient id → per type, indexes into records_ in creation order.
    std::unordered_map<std::string, std::array<std::vector<std::size_t>, rtype_count>> by_patient_;
    std::unordered_map<std::string, patient_profile> profiles_;
    std::vector<std::string> patient_ids_;
    std::array<std::uint64_t, rtype_count> id_counter_{};
    std::uint64_t added_ = 0;
};

// A deterministic generator (splitmix64): the same seed gives the same
// stream on every platform, unlike the std distributions.
class rng {
public:
    explicit rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next();
    int uniform(int lo, int hi);  // inclusive
    double real();                // [0, 1)
    bool chance(double p) { return real() < p; }

private:
    std::uint64_t s_;
};

std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b);

}  // namespace headachemd::sandbox::detail
