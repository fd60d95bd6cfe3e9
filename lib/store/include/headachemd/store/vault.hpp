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
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "headachemd/store/database.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/store/token_key.hpp"

namespace headachemd::store {

// The access token of the last refresh, whichever process made it, kept so
// that the next job (another `sync-once`, a restarted daemon) uses it instead
// of spending the refresh token again (issue 17). A secret like the refresh
// token.
struct stored_access_token {
    std::string token;
    std::string expires_at;  // UTC text (store::utc_timestamp); bound into the seal
    std::string scope;       // as granted by the token response; may be empty
};

// An enrolled patient as the vault knows them. The tokens are secrets:
// never log them, never copy them elsewhere.
struct enrollment {
    std::string patient_key;
    std::string ehr;
    std::string fhir_patient_id;
    std::string refresh_token;
    std::string scope;
    std::string token_obtained_at;  // UTC text
    bool needs_reauth = false;
    // Why: "invalid_grant", "interrupted_refresh", or empty (an older binary
    // set the flag, or it is not set).
    std::string needs_reauth_reason{};
    std::optional<stored_access_token> access{};
    // The refresh journal: when a refresh of exactly `refresh_token` began
    // and never finished (the process died, or the answer never came). Empty
    // when there is no such entry.
    std::string interrupted_refresh_since{};
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
    // `in_transaction`, when given, runs inside that transaction once every
    // row is re-sealed, with their number: the caller's audit row then
    // commits with the re-sealing or not at all, so that a crash cannot
    // leave a rekeyed vault whose audit log does not say so.
    std::size_t rekey(const token_key& new_key,
                      const std::function<void(SQLite::Database&, std::size_t)>& in_transaction = {});

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
    // answer and this write but the write (DESIGN.md, "Tokens"). Also
    // clears the refresh journal: the new token has arrived.
    void replace_refresh_token(std::string_view patient_key, std::string_view ehr, std::string_view new_token,
                               std::string_view obtained_at);

    // The refresh journal (schema/vault/0006_access_tokens.sql). Called
    // before a refresh request leaves; durable when it returns, so that a
    // process killed after sending leaves a trace the next one reads as
    // `interrupted_refresh_since`.
    void begin_refresh(std::string_view patient_key, std::string_view ehr, std::string_view refresh_token,
                       std::string_view now);
    // The token answer, in one transaction: the rotated refresh token (when
    // the server sent one), the access token (nullopt: none may be used, and
    // any stored one is dropped), the journal cleared.
    void finish_refresh(std::string_view patient_key, std::string_view ehr,
                        const std::optional<std::string>& rotated, std::string_view obtained_at,
                        const std::optional<stored_access_token>& access);
    // The server answered in a way that proves the token was not spent (an
    // OAuth error response): the journal entry is dropped.
    void clear_refresh_journal(std::string_view patient_key, std::string_view ehr);
    // Drops the stored access token if it is still `token` (the EHR answered
    // 401 to it), so no other process tries it again.
    void forget_access_token(std::string_view patient_key, std::string_view ehr, std::string_view token);

    // Marking also drops the access token and the journal entry and records
    // `reason`; clearing the mark clears the reason.
    void set_needs_reauth(std::string_view patient_key, std::string_view ehr, bool needs_reauth,
                          std::string_view now, std::string_view reason = {});
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

// How the refresh journal names a refresh token: SHA-256, first 128 bits in
// hex. Enough to tell whether the stored token is the one whose refresh was
// interrupted; not a way back to the token.
std::string refresh_token_hash(std::string_view refresh_token);

}  // namespace headachemd::store
