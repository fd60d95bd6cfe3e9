// Pseudonyms (schema 0004): the analytics database never holds a FHIR
// patient id, only a keyed hash of it. The key lives in the vault; this
// header is what both databases share, so that neither includes the other
// (issue 14, item 4: analytics_db included vault.hpp for this alone).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace headachemd::store {

using pseudonym_key = std::array<std::uint8_t, 32>;

// HMAC-SHA256(key, source 0x00 fhir_patient_id), first 128 bits in hex:
// stable for the same inputs, and not invertible without the key, so the
// FHIR id (which may be an MRN at some EHRs) never reaches analysts.
std::string patient_key_for(const pseudonym_key& key, std::string_view source,
                            std::string_view fhir_patient_id);

// A value that identifies the key without revealing it (HMAC of a fixed label).
std::string fingerprint(const pseudonym_key& key);

}  // namespace headachemd::store
