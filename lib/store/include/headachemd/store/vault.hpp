// vault.db: the daemon's secrets. Mode 0600, synchronous=FULL.
//
// It holds the pseudonymization key and the enrolled patients' refresh
// tokens, both sealed with the token key (AES-256-GCM, see token_key.hpp):
// a refresh token is bound to its (patient key, EHR), the pseudonymization
// key to its name, and each row carries the id of the key that sealed it.
// The API is plaintext in, plaintext out; sealing never leaves this class.
// Nothing in here may ever be copied into headache.db.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/store/database.hpp"
#include "headachemd/store/token_key.hpp"

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
    // Opens or creates the file with mode 0600, refusing an existing one
    // that group or other may access. Before anything is written, every
    // sealed row must carry `key`'s id and open with it; otherwise throws
    // key_error naming the rows ("wrong key or tampered row") and the file
    // stays byte-identical. A version-2 vault's plain-text rows are sealed
    // with `key` in the migration's own transaction. Throws store_error.
    vault(const std::filesystem::path& path, token_key key);

    const std::string& key_id() const { return key_.id(); }
    const std::filesystem::path& path() const { return path_; }

    // Re-seals every secret under `new_key` in one transaction, durable when
    // this returns (synchronous=FULL, then a WAL checkpoint so no page
    // sealed under the old key stays in the -wal file; secure_delete zeroes
    // the old cells). From then on this object uses `new_key` and the old
    // key opens none of the rows. A row that does not open with the current
    // key throws key_error and nothing changes. Returns the rows re-sealed.
    std::size_t rekey(const token_key& new_key);

    // The key that turns (source, FHIR patient id) into a patient_key,
    // created from the OS random generator on first use and fsynced. Two
    // processes starting on a new vault at once get the same key: the first
    // to take the write lock creates it, the other reads it back.
    pseudonym_key pseudonymization_key();

    // Enrollments. Every write is its own transaction and, with
    // synchronous=FULL, durable when the call returns. Throw store_error;
    // a refresh token that does not open is a key_error naming the patient
    // and EHR, never a missing row.
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

    // Seals or opens a short-lived secret kept in another vault table (the
    // PKCE verifier of a pending enrollment), bound to (table, row id) like
    // the tokens. Such rows are not in the start-up check or rekey: they
    // live minutes, and one that no longer opens is refused, not repaired.
    std::string seal_value(std::string_view table, std::string_view row_id, std::string_view plain) const;
    std::optional<std::string> open_value(std::string_view table, std::string_view row_id,
                                          std::string_view box) const;

    SQLite::Database& sql() { return db_; }

private:
    void check_key(SQLite::Database& db, int version);
    void seal_plaintext_rows(SQLite::Database& db);
    enrollment read_enrollment(SQLite::Statement& q);
    std::optional<pseudonym_key> stored_pseudonymization_key();

    std::filesystem::path path_;
    token_key key_;
    bool sealed_legacy_rows_ = false;  // set by the version-3 migration
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
