// vault.db: the daemon's secrets. Mode 0600, synchronous=FULL.
//
// For now it holds the pseudonymization key; refresh tokens join it with
// the sync daemon. Nothing in here may ever be copied into headache.db.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>

#include "headachemd/store/database.hpp"

namespace headachemd::store {

using pseudonym_key = std::array<std::uint8_t, 32>;

// An enrolled patient as the vault knows them. The refresh token is a
// secret: never log it, never copy it elsewhere.
struct enrollment {
    std::string patient_key;
    std::string ehr;
    std::string fhir_patient_id;
    std::string refresh_token;
    std::string scope;
    std::string token_obtained_at;  // UTC text
    bool needs_reauth = false;
};

class vault {
public:
    // Opens or creates the file with mode 0600. Throws store_error.
    explicit vault(const std::filesystem::path& path);

    // The key that turns (source, FHIR patient id) into a patient_key,
    // created from the OS random generator on first use and fsynced.
    pseudonym_key pseudonymization_key();

    // Enrollments. Every write is its own transaction and, with
    // synchronous=FULL, durable when the call returns. Throw store_error.
    void put_enrollment(const enrollment& e, std::string_view now);
    std::optional<enrollment> find_enrollment(std::string_view patient_key, std::string_view ehr);
    std::vector<enrollment> enrollments();
    // The rotation path: nothing may happen between the token endpoint's
    // answer and this write but the write (DESIGN.md, "Tokens").
    void replace_refresh_token(std::string_view patient_key, std::string_view ehr, std::string_view new_token,
                               std::string_view obtained_at);
    void set_needs_reauth(std::string_view patient_key, std::string_view ehr, bool needs_reauth,
                          std::string_view now);
    bool remove_enrollment(std::string_view patient_key, std::string_view ehr);

    SQLite::Database& sql() { return db_; }

private:
    std::filesystem::path path_;
    SQLite::Database db_;
};

// HMAC-SHA256(key, source 0x00 fhir_patient_id), first 128 bits in hex:
// stable for the same inputs, and not invertible without the key, so the
// FHIR id (which may be an MRN at some EHRs) never reaches analysts.
std::string patient_key_for(const pseudonym_key& key, std::string_view source,
                            std::string_view fhir_patient_id);

// A value that identifies the key without revealing it (HMAC of a fixed label).
std::string fingerprint(const pseudonym_key& key);

}  // namespace headachemd::store
