// Browser enrollments that wait for their redirect, in vault.db (see
// schema/vault/0004_pending_enrollments.sql). They are shared between the
// `enroll` command and a running daemon, which are different processes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "headachemd/store/vault.hpp"

namespace headachemd::store {

struct pending_enrollment {
    std::string state_hash;  // hex SHA-256 of the state; the state is not stored
    std::string patient_key;
    std::string ehr;
    std::string code_verifier;  // secret: never log it
    std::string redirect_uri;
    std::string scope;
    std::string token_endpoint;
    std::string created_at;       // UTC text
    std::int64_t expires_at = 0;  // unix seconds
};

// Hex SHA-256 of an OAuth state, the lookup key of a pending enrollment.
std::string state_hash(std::string_view state);

class pending_enrollments {
public:
    explicit pending_enrollments(vault& v) : vault_(v) {}

    // Stores a new pending enrollment (fsynced). Throws store_error.
    void put(const pending_enrollment& p);
    // Removes and returns the row with this state hash, in one statement,
    // so a second redirect with the same state finds nothing. An expired row
    // is returned too (and removed), so the caller can say "expired" rather
    // than "unknown"; the caller checks expires_at.
    std::optional<pending_enrollment> take(std::string_view state_hash);
    // Deletes the expired rows; returns how many.
    int purge_expired(std::int64_t now_unix);
    // Deletes the pending enrollments of one patient at one EHR (`unenroll`):
    // a link already shown can then no longer complete. Returns how many.
    int remove_for(std::string_view patient_key, std::string_view ehr);
    // How many pending enrollments this patient has at this EHR.
    int count_for(std::string_view patient_key, std::string_view ehr);

private:
    vault& vault_;
};

}  // namespace headachemd::store
