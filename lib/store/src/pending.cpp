#include "headachemd/store/pending.hpp"

#include <openssl/evp.h>

#include <array>

#include <SQLiteCpp/Statement.h>

#include "headachemd/store/analytics_db.hpp"

namespace headachemd::store {

std::string state_hash(std::string_view state) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    if (EVP_Digest(state.data(), state.size(), md.data(), &n, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("OpenSSL SHA-256 failed");  // a broken libcrypto is a bug, not input
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        out.push_back(digits[md[i] >> 4]);
        out.push_back(digits[md[i] & 0xf]);
    }
    return out;
}

void pending_enrollments::put(const pending_enrollment& p) {
    auto& db = vault_.sql();
    try {
        write_transaction tx(db);
        SQLite::Statement q(db,
                            "INSERT INTO pending_enrollment (state_hash, patient_key, ehr, code_verifier, "
                            "redirect_uri, scope, token_endpoint, created_at, expires_at, token_key_id) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
        const std::string box = vault_.seal_value("pending_enrollment", p.state_hash, p.code_verifier);
        q.bind(1, p.state_hash);
        q.bind(2, p.patient_key);
        q.bind(3, p.ehr);
        q.bind(4, box.data(), static_cast<int>(box.size()));
        q.bind(5, p.redirect_uri);
        q.bind(6, p.scope);
        q.bind(7, p.token_endpoint);
        q.bind(8, p.created_at);
        q.bind(9, static_cast<std::int64_t>(p.expires_at));
        q.bind(10, vault_.key_id());
        q.exec();
        tx.commit();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "storing a pending enrollment in");
    }
}

std::optional<pending_enrollment> pending_enrollments::take(std::string_view hash) {
    auto& db = vault_.sql();
    try {
        // DELETE … RETURNING (SQLite 3.35+): read and remove at once, so two
        // redirects racing with the same state cannot both get the verifier.
        SQLite::Statement q(
            db,
            "DELETE FROM pending_enrollment WHERE state_hash = ?1 RETURNING patient_key, ehr, "
            "code_verifier, redirect_uri, scope, token_endpoint, created_at, expires_at");
        q.bind(1, std::string(hash));
        if (!q.executeStep()) return std::nullopt;
        pending_enrollment p;
        p.state_hash = std::string(hash);
        p.patient_key = q.getColumn(0).getString();
        p.ehr = q.getColumn(1).getString();
        const auto v = q.getColumn(2);
        auto verifier = vault_.open_value(
            "pending_enrollment", p.state_hash,
            std::string_view(static_cast<const char*>(v.getBlob()), static_cast<std::size_t>(v.getBytes())));
        // Sealed under a key since rotated (rekey), or tampered: the row is
        // gone either way, and the enrollment must start again.
        if (!verifier) throw store_error("a pending enrollment does not open with the current token key");
        p.code_verifier = std::move(*verifier);
        p.redirect_uri = q.getColumn(3).getString();
        p.scope = q.getColumn(4).getString();
        p.token_endpoint = q.getColumn(5).getString();
        p.created_at = q.getColumn(6).getString();
        p.expires_at = q.getColumn(7).getInt64();
        while (q.executeStep()) {
        }
        return p;
    } catch (const store_error&) {
        throw;
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "reading a pending enrollment from");
    }
}

int pending_enrollments::purge_expired(std::int64_t now_unix) {
    auto& db = vault_.sql();
    try {
        SQLite::Statement q(db, "DELETE FROM pending_enrollment WHERE expires_at <= ?1");
        q.bind(1, static_cast<std::int64_t>(now_unix));
        return q.exec();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "purging pending enrollments from");
    }
}

int pending_enrollments::remove_for(std::string_view patient_key, std::string_view ehr) {
    auto& db = vault_.sql();
    try {
        SQLite::Statement q(db, "DELETE FROM pending_enrollment WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        return q.exec();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "removing pending enrollments from");
    }
}

int pending_enrollments::count_for(std::string_view patient_key, std::string_view ehr) {
    auto& db = vault_.sql();
    try {
        SQLite::Statement q(db,
                            "SELECT count(*) FROM pending_enrollment WHERE patient_key = ?1 AND ehr = ?2");
        q.bind(1, std::string(patient_key));
        q.bind(2, std::string(ehr));
        q.executeStep();
        return q.getColumn(0).getInt();
    } catch (const std::exception& ex) {
        rethrow_as_store_error(ex, db.getFilename(), "reading pending enrollments from");
    }
}

}  // namespace headachemd::store
