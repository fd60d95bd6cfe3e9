#include "headachemd/store/vault.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstring>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include "headachemd/core/text.hpp"

namespace headachemd::store {
namespace {

// "HDMV" in ASCII.
constexpr std::int32_t vault_application_id = 0x48444d56;

}  // namespace

namespace {

// The sealed columns of the vault, one entry per table. Every loop that
// must touch all secrets (the start-up check, the version-3 migration of
// plain-text rows, rekey) walks this list, so a table that gains a sealed
// column is added here once. SQL is constant text; values are bound.
struct sealed_table {
    const char* table;       // bound into the associated data
    int identity_columns;    // leading columns of `select_all` that name the row
    const char* select_all;  // identity..., sealed value, token_key_id
    const char* update_one;  // ?1..?n identity, ?n+1 value, ?n+2 key id
    int since_version = 3;   // the vault version whose migration added the column
};

// The access token (vault version 6) is bound to its expiry as well, so a
// row whose access_expires_at was edited does not open. The table names are
// labels in the associated data; the access token's differs from the
// refresh token's, so neither box opens in the other's column.
constexpr const char* access_token_label = "enrollment.access_token";

constexpr sealed_table sealed_tables[] = {
    {"enrollment", 2, "SELECT patient_key, ehr, refresh_token, token_key_id FROM enrollment",
     "UPDATE enrollment SET refresh_token = ?3, token_key_id = ?4 WHERE patient_key = ?1 AND ehr = ?2"},
    {access_token_label, 3,
     "SELECT patient_key, ehr, access_expires_at, access_token, token_key_id FROM enrollment "
     "WHERE access_token IS NOT NULL",
     "UPDATE enrollment SET access_token = ?4, token_key_id = ?5 "
     "WHERE patient_key = ?1 AND ehr = ?2 AND access_expires_at = ?3",
     6},
    {"secret", 1, "SELECT name, value, token_key_id FROM secret",
     "UPDATE secret SET value = ?2, token_key_id = ?3 WHERE name = ?1"},
};

// Associated data: a label, the table, then each identity value with a
// length prefix, so ("ab","c") and ("a","bc") differ and a box never opens
// in another table or row.
template <class Values>
std::string associated_data_of(std::string_view table, const Values& identity) {
    std::string ad = "headachemd vault";
    ad.push_back('\0');
    ad.append(table);
    for (std::string_view v : identity) {
        const auto n = static_cast<std::uint32_t>(v.size());
        for (int shift = 24; shift >= 0; shift -= 8) ad.push_back(static_cast<char>((n >> shift) & 0xff));
        ad.append(v);
    }
    return ad;
}

std::string associated_data(std::string_view table, std::initializer_list<std::string_view> identity) {
    return associated_data_of(table, identity);
}

// A refresh token is bound to the (patient key, EHR) it was issued for.
std::string token_ad(std::string_view patient_key, std::string_view ehr) {
    return associated_data("enrollment", {patient_key, ehr});
}

std::string access_ad(std::string_view patient_key, std::string_view ehr, std::string_view expires_at) {
    return associated_data(access_token_label, {patient_key, ehr, expires_at});
}

std::string ad_for_row(const sealed_table& t, const std::vector<std::string>& identity) {
    return associated_data_of(t.table, identity);
}

std::string describe_row(const sealed_table& t, const std::vector<std::string>& identity) {
    if (std::string_view(t.table) == "enrollment")
        return "the refresh token of patient " + identity[0] + " at EHR " + identity[1];
    if (std::string_view(t.table) == access_token_label)
        return "the access token of patient " + identity[0] + " at EHR " + identity[1];
    return "the vault secret '" + identity[0] + "'";
}

std::string blob_of(const SQLite::Column& c) {
    return {static_cast<const char*>(c.getBlob()), static_cast<std::size_t>(c.getBytes())};
}

struct row_failure {
    std::string what;
    std::string key_id;  // as stored; empty when NULL
};

[[noreturn]] void throw_unopenable(const std::filesystem::path& path, const token_key& key,
                                   const std::vector<row_failure>& failures, bool nothing_written) {
    std::string msg = "vault '" + path.string() + "': " + failures.front().what +
                      " does not open with the configured token key (key id " + key.id() +
                      "): wrong key or tampered row";
    for (std::size_t i = 1; i < failures.size() && i < 5; ++i) msg += "; so does " + failures[i].what;
    if (failures.size() > 5) msg += "; and " + std::to_string(failures.size() - 5) + " more";
    msg += nothing_written ? ". vault.db was not changed. " : ". ";
    const std::string& other = failures.front().key_id;
    if (!other.empty() && other != key.id())
        msg += "The row was sealed with key id " + other +
               ": point [daemon] token_key_file (or the token.key credential) at that key. ";
    msg += "If a row was tampered with, restore vault.db from a backup or enroll that patient again";
    throw key_error(msg);
}

}  // namespace

vault::vault(const std::filesystem::path& path, token_key key)
    : path_(path),
      key_(std::move(key)),
      db_(open_database(
          path,
          database_kind{"vault", vault_application_id, schema::vault_migrations(), "FULL", 0600,
                        // the daemon's user alone (DESIGN.md, "Storage")
                        0077, nullptr, [this](SQLite::Database& db, int version) { check_key(db, version); },
                        [this](SQLite::Database& db, int version) {
                            if (version == 3) seal_plaintext_rows(db);
                        }})) {
    // A version-2 vault held its secrets in plain text. Now sealed, the old
    // pages must not linger: secure_delete zeroed the old cells in the
    // rewritten pages, and a truncating checkpoint moves those pages into the
    // main file and empties the -wal file.
    if (sealed_legacy_rows_) db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

void vault::check_key(SQLite::Database& db, int version) {
    // A connection setting, not a write: deleted or overwritten secrets are
    // zeroed in the file instead of lingering in free space
    // (https://sqlite.org/pragma.html#pragma_secure_delete).
    db.exec("PRAGMA secure_delete=ON");
    if (version < 3) return;  // nothing sealed yet; version 3 seals with this key
    std::vector<row_failure> failures;
    for (const auto& t : sealed_tables) {
        if (version < t.since_version) continue;  // the column comes with a later migration
        SQLite::Statement q(db, t.select_all);
        while (q.executeStep()) {
            std::vector<std::string> identity;
            for (int i = 0; i < t.identity_columns; ++i) identity.push_back(q.getColumn(i).getString());
            const auto key_id_col = q.getColumn(t.identity_columns + 1);
            const std::string stored_id = key_id_col.isNull() ? std::string() : key_id_col.getString();
            bool ok = stored_id == key_.id();
            if (ok) {
                auto plain =
                    open_sealed(key_, ad_for_row(t, identity), blob_of(q.getColumn(t.identity_columns)));
                ok = plain.has_value();
                if (plain) OPENSSL_cleanse(plain->data(), plain->size());
            }
            if (!ok) failures.push_back({describe_row(t, identity), stored_id});
        }
    }
    if (!failures.empty()) throw_unopenable(path_, key_, failures, true);
}

void vault::seal_plaintext_rows(SQLite::Database& db) {
    for (const auto& t : sealed_tables) {
        if (t.since_version > 3) continue;  // sealed from the start
        SQLite::Statement q(db, t.select_all);
        SQLite::Statement upd(db, t.update_one);
        while (q.executeStep()) {
            std::vector<std::string> identity;
            for (int i = 0; i < t.identity_columns; ++i) identity.push_back(q.getColumn(i).getString());
            std::string plain = blob_of(q.getColumn(t.identity_columns));
            const std::string box = seal(key_, ad_for_row(t, identity), plain);
            OPENSSL_cleanse(plain.data(), plain.size());
            for (int i = 0; i < t.identity_columns; ++i)
                upd.bind(i + 1, identity[static_cast<std::size_t>(i)]);
            upd.bind(t.identity_columns + 1, box.data(), static_cast<int>(box.size()));
            upd.bind(t.identity_columns + 2, key_.id());
            upd.exec();
            upd.reset();
            sealed_legacy_rows_ = true;
        }
    }
}

std::string vault::seal_value(std::string_view table, std::string_view row_id, std::string_view plain) const {
    return seal(key_, associated_data(table, {row_id}), plain);
}

std::optional<std::string> vault::open_value(std::string_view table, std::string_view row_id,
                                             std::string_view box) const {
    return open_sealed(key_, associated_data(table, {row_id}), box);
}

std::size_t vault::rekey(const token_key& new_key,
                         const std::function<void(SQLite::Database&, std::size_t)>& in_transaction) {
    std::size_t n = 0;
    try {
        write_transaction tx(db_);
        std::vector<row_failure> failures;
        // Read every table first, then write: the access token shares the
        // enrollment row's token_key_id, which re-sealing the refresh token
        // changes, and updating rows while a statement walks the same table
        // is not something to rely on.
        struct row {
            const sealed_table* table;
            std::vector<std::string> identity;
            std::string plain;
        };
        std::vector<row> rows;
        for (const auto& t : sealed_tables) {
            SQLite::Statement q(db_, t.select_all);
            while (q.executeStep()) {
                std::vector<std::string> identity;
                for (int i = 0; i < t.identity_columns; ++i) identity.push_back(q.getColumn(i).getString());
                const auto kid = q.getColumn(t.identity_columns + 1);
                const std::string stored_id = kid.isNull() ? std::string() : kid.getString();
                auto plain = stored_id == key_.id() ? open_sealed(key_, ad_for_row(t, identity),
                                                                  blob_of(q.getColumn(t.identity_columns)))
                                                    : std::nullopt;
                if (!plain) {
                    failures.push_back({describe_row(t, identity), stored_id});
                    continue;
                }
                rows.push_back({&t, std::move(identity), std::move(*plain)});
            }
        }
        for (auto& [t, identity, plain] : rows) {
            SQLite::Statement upd(db_, t->update_one);
            const std::string box = seal(new_key, ad_for_row(*t, identity), plain);
            OPENSSL_cleanse(plain.data(), plain.size());
            for (int i = 0; i < t->identity_columns; ++i)
                upd.bind(i + 1, identity[static_cast<std::size_t>(i)]);
            upd.bind(t->identity_columns + 1, box.data(), static_cast<int>(box.size()));
            upd.bind(t->identity_columns + 2, new_key.id());
            upd.exec();
            ++n;
        }
        if (!failures.empty()) throw_unopenable(path_, key_, failures, true);  // rolls back
        if (in_transaction) in_transaction(db_, n);
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "re-sealing the secrets in");
    }
    key_ = new_key;
    // Pages sealed under the old key leave the -wal file (see the constructor).
    db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return n;
}

std::optional<pseudonym_key> vault::stored_pseudonymization_key() {
    static constexpr std::string_view name = "pseudonymization_key";
    SQLite::Statement q(db_, "SELECT value, token_key_id FROM secret WHERE name = 'pseudonymization_key'");
    if (!q.executeStep()) return std::nullopt;
    pseudonym_key key{};
    const auto kid = q.getColumn(1);
    auto plain = !kid.isNull() && kid.getString() == key_.id()
                     ? open_sealed(key_, associated_data("secret", {name}), blob_of(q.getColumn(0)))
                     : std::nullopt;
    if (!plain)
        throw_unopenable(path_, key_,
                         {{"the vault secret 'pseudonymization_key'", kid.isNull() ? "" : kid.getString()}},
                         false);
    if (plain->size() != key.size()) {
        OPENSSL_cleanse(plain->data(), plain->size());
        throw store_error("the pseudonymization key in " + path_.string() +
                          " has the wrong length; the vault is damaged. Restore it from a backup");
    }
    std::memcpy(key.data(), plain->data(), key.size());
    OPENSSL_cleanse(plain->data(), plain->size());
    return key;
}

pseudonym_key vault::pseudonymization_key() {
    static constexpr std::string_view name = "pseudonymization_key";
    try {
        if (auto stored = stored_pseudonymization_key()) return *stored;
        // First use. Two processes started together on a new vault (the
        // daemon and a cron-started sync-once) both get here; a plain
        // INSERT made the second fail with "UNIQUE constraint failed:
        // secret.name" (issue 12). So: take the write lock (BEGIN
        // IMMEDIATE), insert only if the row is still missing (INSERT OR
        // IGNORE), and return what the vault holds afterwards, which is the
        // same key for both.
        pseudonym_key fresh{};
        if (RAND_bytes(fresh.data(), static_cast<int>(fresh.size())) != 1)
            throw store_error("the OS random generator failed; cannot create a pseudonymization key");
        const std::string box =
            seal(key_, associated_data("secret", {name}),
                 std::string_view(reinterpret_cast<const char*>(fresh.data()), fresh.size()));
        OPENSSL_cleanse(fresh.data(), fresh.size());
        write_transaction tx(db_);
        SQLite::Statement ins(db_,
                              "INSERT OR IGNORE INTO secret (name, value, created_at, token_key_id) "
                              "VALUES ('pseudonymization_key', ?1, ?2, ?3)");
        ins.bind(1, box.data(), static_cast<int>(box.size()));
        ins.bind(2, utc_timestamp(std::chrono::system_clock::now()));
        ins.bind(3, key_.id());
        ins.exec();
        auto stored = stored_pseudonymization_key();
        tx.commit();  // synchronous=FULL: on disk before any row is keyed with it
        if (!stored) throw store_error("the pseudonymization key vanished from " + path_.string());
        return *stored;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "reading the key from");
    }
}

std::string refresh_token_hash(std::string_view refresh_token) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    if (EVP_Digest(refresh_token.data(), refresh_token.size(), md.data(), &n, EVP_sha256(), nullptr) != 1 ||
        n < 16)
        throw std::runtime_error("OpenSSL SHA-256 failed");  // a broken libcrypto is a bug, not input
    return to_hex(md.data(), 16);
}

}  // namespace headachemd::store

namespace headachemd::store {

void vault::put_enrollment(const enrollment& e, std::string_view now) {
    try {
        const std::string box = seal(key_, token_ad(e.patient_key, e.ehr), e.refresh_token);
        write_transaction tx(db_);
        SQLite::Statement q(
            db_,
            "INSERT OR REPLACE INTO enrollment (patient_key, ehr, fhir_patient_id, refresh_token, "
            "scope, token_obtained_at, needs_reauth, updated_at, token_key_id) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
        q.bind(1, e.patient_key);
        q.bind(2, e.ehr);
        q.bind(3, e.fhir_patient_id);
        q.bind(4, box.data(), static_cast<int>(box.size()));
        q.bind(5, e.scope);
        q.bind(6, e.token_obtained_at);
        q.bind(7, e.needs_reauth ? 1 : 0);
        q.bind(8, std::string(now));
        q.bind(9, key_.id());
        q.exec();
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "writing an enrollment to");
    }
}

namespace {
constexpr const char* enrollment_columns =
    "SELECT patient_key, ehr, fhir_patient_id, refresh_token, scope, token_obtained_at, needs_reauth, "
    "token_key_id, needs_reauth_reason, access_token, access_expires_at, access_scope, refresh_started_at, "
    "refresh_started_hash FROM enrollment";

std::string text_or_empty(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }
}  // namespace

enrollment vault::read_enrollment(SQLite::Statement& q) {
    enrollment e;
    e.patient_key = q.getColumn(0).getString();
    e.ehr = q.getColumn(1).getString();
    e.fhir_patient_id = q.getColumn(2).getString();
    const auto kid = q.getColumn(7);
    const std::string stored_id = kid.isNull() ? std::string() : kid.getString();
    // Never a silent gap: a token that does not open is an error naming the
    // row, and the row stays as it is for the admin to look at.
    auto plain = stored_id == key_.id()
                     ? open_sealed(key_, token_ad(e.patient_key, e.ehr), blob_of(q.getColumn(3)))
                     : std::nullopt;
    if (!plain)
        throw_unopenable(path_, key_,
                         {{"the refresh token of patient " + e.patient_key + " at EHR " + e.ehr, stored_id}},
                         false);
    e.refresh_token = std::move(*plain);
    e.scope = q.getColumn(4).getString();
    e.token_obtained_at = q.getColumn(5).getString();
    e.needs_reauth = q.getColumn(6).getInt() != 0;
    e.needs_reauth_reason = text_or_empty(q.getColumn(8));
    if (!q.getColumn(9).isNull()) {
        stored_access_token a;
        a.expires_at = text_or_empty(q.getColumn(10));
        a.scope = text_or_empty(q.getColumn(11));
        auto token = stored_id == key_.id() ? open_sealed(key_, access_ad(e.patient_key, e.ehr, a.expires_at),
                                                          blob_of(q.getColumn(9)))
                                            : std::nullopt;
        if (!token)
            throw_unopenable(
                path_, key_,
                {{"the access token of patient " + e.patient_key + " at EHR " + e.ehr, stored_id}}, false);
        a.token = std::move(*token);
        e.access = std::move(a);
    }
    // Only an entry for the token stored now means anything: one for an
    // older token was overtaken by the token that replaced it.
    if (!q.getColumn(12).isNull() && text_or_empty(q.getColumn(13)) == refresh_token_hash(e.refresh_token))
        e.interrupted_refresh_since = q.getColumn(12).getString();
    return e;
}

std::optional<enrollment> vault::find_enrollment(std::string_view patient_key, std::string_view ehr) {
    try {
        SQLite::Statement q(db_, std::string(enrollment_columns) + " WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        if (!q.executeStep()) return std::nullopt;
        return read_enrollment(q);
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "reading an enrollment from");
    }
}

std::vector<enrollment> vault::enrollments() {
    try {
        SQLite::Statement q(db_, std::string(enrollment_columns) + " ORDER BY ehr, patient_key");
        std::vector<enrollment> out;
        while (q.executeStep()) out.push_back(read_enrollment(q));
        return out;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "reading enrollments from");
    }
}

void vault::replace_refresh_token(std::string_view patient_key, std::string_view ehr,
                                  std::string_view new_token, std::string_view obtained_at) {
    try {
        const std::string box = seal(key_, token_ad(patient_key, ehr), new_token);
        write_transaction tx(db_);
        SQLite::Statement q(
            db_,
            "UPDATE enrollment SET refresh_token = ?3, token_obtained_at = ?4, needs_reauth = 0, "
            "needs_reauth_reason = NULL, refresh_started_at = NULL, refresh_started_hash = NULL, "
            "updated_at = ?4, token_key_id = ?5 WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.bind(3, box.data(), static_cast<int>(box.size()));
        q.bind(4, std::string(obtained_at));
        q.bind(5, key_.id());
        if (q.exec() != 1)
            throw store_error("no enrollment for patient " + std::string(patient_key) + " at " +
                              std::string(ehr) + " to store a refresh token in");
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "storing a refresh token in");
    }
}

void vault::begin_refresh(std::string_view patient_key, std::string_view ehr, std::string_view refresh_token,
                          std::string_view now) {
    try {
        // One statement, its own transaction: with synchronous=FULL it is on
        // disk before the request that spends the token is sent.
        SQLite::Statement q(db_,
                            "UPDATE enrollment SET refresh_started_at = ?3, refresh_started_hash = ?4 "
                            "WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.bind(3, std::string(now));
        q.bind(4, refresh_token_hash(refresh_token));
        if (q.exec() != 1)
            throw store_error("no enrollment for patient " + std::string(patient_key) + " at " +
                              std::string(ehr) + " to journal a refresh in");
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "journalling a refresh in");
    }
}

void vault::finish_refresh(std::string_view patient_key, std::string_view ehr,
                           const std::optional<std::string>& rotated, std::string_view obtained_at,
                           const std::optional<stored_access_token>& access) {
    try {
        std::string refresh_box, access_box;
        if (rotated) refresh_box = seal(key_, token_ad(patient_key, ehr), *rotated);
        if (access) access_box = seal(key_, access_ad(patient_key, ehr, access->expires_at), access->token);
        write_transaction tx(db_);
        if (rotated) {
            SQLite::Statement q(db_,
                                "UPDATE enrollment SET refresh_token = ?3, token_obtained_at = ?4, "
                                "needs_reauth = 0, needs_reauth_reason = NULL, token_key_id = ?5 "
                                "WHERE patient_key = ?1 AND ehr = ?2");
            q.bind(1, std::string(patient_key));
            q.bind(2, std::string(ehr));
            q.bind(3, refresh_box.data(), static_cast<int>(refresh_box.size()));
            q.bind(4, std::string(obtained_at));
            q.bind(5, key_.id());
            q.exec();
        }
        SQLite::Statement q(
            db_,
            "UPDATE enrollment SET access_token = ?3, access_expires_at = ?4, access_scope = ?5, "
            "refresh_started_at = NULL, refresh_started_hash = NULL, updated_at = ?6, "
            "token_key_id = ?7 WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        if (access) {
            q.bind(3, access_box.data(), static_cast<int>(access_box.size()));
            q.bind(4, access->expires_at);
            q.bind(5, access->scope);
        } else {
            q.bind(3);
            q.bind(4);
            q.bind(5);
        }
        q.bind(6, std::string(obtained_at));
        q.bind(7, key_.id());
        if (q.exec() != 1)
            throw store_error("no enrollment for patient " + std::string(patient_key) + " at " +
                              std::string(ehr) + " to store a token answer in");
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "storing a token answer in");
    }
}

void vault::clear_refresh_journal(std::string_view patient_key, std::string_view ehr) {
    try {
        SQLite::Statement q(db_,
                            "UPDATE enrollment SET refresh_started_at = NULL, refresh_started_hash = NULL "
                            "WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.exec();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "updating an enrollment in");
    }
}

void vault::forget_access_token(std::string_view patient_key, std::string_view ehr, std::string_view token) {
    try {
        write_transaction tx(db_);
        auto now = find_enrollment(patient_key, ehr);
        if (!now || !now->access || now->access->token != token) return;  // replaced meanwhile
        SQLite::Statement q(db_,
                            "UPDATE enrollment SET access_token = NULL, access_expires_at = NULL, "
                            "access_scope = NULL WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.exec();
        tx.commit();
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "updating an enrollment in");
    }
}

void vault::set_needs_reauth(std::string_view patient_key, std::string_view ehr, bool needs_reauth,
                             std::string_view now, std::string_view reason) {
    try {
        // A patient who must enroll again has no usable token of any kind:
        // the access token goes with the mark, and so does the journal entry
        // (the reason now says what it meant).
        if (needs_reauth) {
            SQLite::Statement q(db_,
                                "UPDATE enrollment SET needs_reauth = 1, needs_reauth_reason = ?3, "
                                "access_token = NULL, access_expires_at = NULL, access_scope = NULL, "
                                "refresh_started_at = NULL, refresh_started_hash = NULL, updated_at = ?4 "
                                "WHERE patient_key = ?1 AND ehr = ?2");
            q.bind(1, std::string(patient_key));
            q.bind(2, std::string(ehr));
            if (reason.empty())
                q.bind(3);
            else
                q.bind(3, std::string(reason));
            q.bind(4, std::string(now));
            q.exec();
            return;
        }
        SQLite::Statement q(
            db_,
            "UPDATE enrollment SET needs_reauth = 0, needs_reauth_reason = NULL, updated_at = ?3 "
            "WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.bind(3, std::string(now));
        q.exec();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "updating an enrollment in");
    }
}

bool vault::remove_enrollment(std::string_view patient_key, std::string_view ehr) {
    try {
        SQLite::Statement q(db_, "DELETE FROM enrollment WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        return q.exec() == 1;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "removing an enrollment from");
    }
}

}  // namespace headachemd::store
