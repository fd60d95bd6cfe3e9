#include "headachemd/store/vault.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstring>

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include "headachemd/store/analytics_db.hpp"

namespace headachemd::store {
namespace {

// "HDMV" in ASCII.
constexpr std::int32_t vault_application_id = 0x48444d56;

std::string to_hex(const unsigned char* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(n * 2, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    return out;
}

std::array<unsigned char, 32> hmac_sha256(const pseudonym_key& key, std::string_view data) {
    std::array<unsigned char, 32> out{};
    std::size_t out_len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), out.size(),
                  &out_len) == nullptr ||
        out_len != out.size())
        throw std::runtime_error("OpenSSL HMAC-SHA256 failed");  // a broken libcrypto is a bug, not input
    return out;
}

}  // namespace

vault::vault(const std::filesystem::path& path)
    : path_(path),
      db_(open_database(
          path, database_kind{"vault", vault_application_id, schema::vault_migrations(), "FULL", 0600})) {}

pseudonym_key vault::pseudonymization_key() {
    try {
        SQLite::Statement q(db_, "SELECT value FROM secret WHERE name = 'pseudonymization_key'");
        pseudonym_key key{};
        if (q.executeStep()) {
            const auto col = q.getColumn(0);
            if (col.getBytes() != static_cast<int>(key.size()))
                throw store_error("the pseudonymization key in " + path_.string() +
                                  " has the wrong length; the vault is damaged. Restore it from a backup");
            std::memcpy(key.data(), col.getBlob(), key.size());
            return key;
        }
        q.reset();
        if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
            throw store_error("the OS random generator failed; cannot create a pseudonymization key");
        write_transaction tx(db_);
        SQLite::Statement ins(
            db_, "INSERT INTO secret (name, value, created_at) VALUES ('pseudonymization_key', ?1, ?2)");
        ins.bind(1, key.data(), static_cast<int>(key.size()));
        ins.bind(2, utc_timestamp(std::chrono::system_clock::now()));
        ins.exec();
        tx.commit();  // synchronous=FULL: on disk before any row is keyed with it
        return key;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, path_, "reading the key from");
    }
}

std::string patient_key_for(const pseudonym_key& key, std::string_view source,
                            std::string_view fhir_patient_id) {
    std::string msg;
    msg.reserve(source.size() + 1 + fhir_patient_id.size());
    msg.append(source);
    msg.push_back('\0');  // unambiguous: ("ab","c") and ("a","bc") differ
    msg.append(fhir_patient_id);
    const auto mac = hmac_sha256(key, msg);
    return to_hex(mac.data(), 16);
}

std::string fingerprint(const pseudonym_key& key) {
    const auto mac = hmac_sha256(key, "headachemd pseudonymization key fingerprint v1");
    return to_hex(mac.data(), 8);
}

}  // namespace headachemd::store

namespace headachemd::store {

void vault::put_enrollment(const enrollment& e, std::string_view now) {
    try {
        write_transaction tx(db_);
        SQLite::Statement q(
            db_,
            "INSERT OR REPLACE INTO enrollment (patient_key, ehr, fhir_patient_id, refresh_token, "
            "scope, token_obtained_at, needs_reauth, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
        q.bind(1, e.patient_key);
        q.bind(2, e.ehr);
        q.bind(3, e.fhir_patient_id);
        q.bind(4, e.refresh_token.data(), static_cast<int>(e.refresh_token.size()));
        q.bind(5, e.scope);
        q.bind(6, e.token_obtained_at);
        q.bind(7, e.needs_reauth ? 1 : 0);
        q.bind(8, std::string(now));
        q.exec();
        tx.commit();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "writing an enrollment to");
    }
}

namespace {
enrollment read_enrollment(SQLite::Statement& q) {
    enrollment e;
    e.patient_key = q.getColumn(0).getString();
    e.ehr = q.getColumn(1).getString();
    e.fhir_patient_id = q.getColumn(2).getString();
    const auto tok = q.getColumn(3);
    e.refresh_token.assign(static_cast<const char*>(tok.getBlob()), static_cast<std::size_t>(tok.getBytes()));
    e.scope = q.getColumn(4).getString();
    e.token_obtained_at = q.getColumn(5).getString();
    e.needs_reauth = q.getColumn(6).getInt() != 0;
    return e;
}
constexpr const char* enrollment_columns =
    "SELECT patient_key, ehr, fhir_patient_id, refresh_token, scope, token_obtained_at, needs_reauth FROM "
    "enrollment";
}  // namespace

std::optional<enrollment> vault::find_enrollment(std::string_view patient_key, std::string_view ehr) {
    try {
        SQLite::Statement q(db_, std::string(enrollment_columns) + " WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        if (!q.executeStep()) return std::nullopt;
        return read_enrollment(q);
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
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, path_, "reading enrollments from");
    }
}

void vault::replace_refresh_token(std::string_view patient_key, std::string_view ehr,
                                  std::string_view new_token, std::string_view obtained_at) {
    try {
        write_transaction tx(db_);
        SQLite::Statement q(
            db_,
            "UPDATE enrollment SET refresh_token = ?3, token_obtained_at = ?4, needs_reauth = 0, "
            "updated_at = ?4 WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.bind(3, new_token.data(), static_cast<int>(new_token.size()));
        q.bind(4, std::string(obtained_at));
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

void vault::set_needs_reauth(std::string_view patient_key, std::string_view ehr, bool needs_reauth,
                             std::string_view now) {
    try {
        SQLite::Statement q(db_,
                            "UPDATE enrollment SET needs_reauth = ?3, updated_at = ?4 "
                            "WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.bind(3, needs_reauth ? 1 : 0);
        q.bind(4, std::string(now));
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
