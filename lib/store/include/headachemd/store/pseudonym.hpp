// Pseudonyms (schema 0004): the analytics database never holds a FHIR
// patient id, only a keyed hash of it. The key lives in the vault; this
// header is what both databases share, so that neither includes the other
// (issue 14, item 4: analytics_db included vault.hpp for this alone).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace headachemd::store {

using pseudonym_key = std::array<std::uint8_t, 32>;

// HMAC-SHA256(key, source 0x00 fhir_patient_id), first 128 bits in hex:
// stable for the same inputs, and not invertible without the key, so the
// FHIR id (which may be an MRN at some EHRs) never reaches analysts.
std::string patient_key_for(const pseudonym_key& key, std::string_view source,
                            std::string_view fhir_patient_id);

// patient_key_for of one source, remembered: an export holds many
// resources per patient, and an HMAC per row would cost more than the
// row's insert. Used by `ingest` and by the Bulk Data apply
// (sync::bulk_file_apply), so that both key a patient the same way.
class patient_key_cache {
public:
    patient_key_cache(const pseudonym_key& key, std::string source) : key_(key), source_(std::move(source)) {}
    // The keyed hash of `fhir_patient_id`; the reference stays valid until
    // the next call.
    const std::string& get(const std::string& fhir_patient_id);

private:
    pseudonym_key key_;
    std::string source_;
    std::unordered_map<std::string, std::string> keys_;
};

// A value that identifies the key without revealing it (HMAC of a fixed label).
std::string fingerprint(const pseudonym_key& key);

}  // namespace headachemd::store
