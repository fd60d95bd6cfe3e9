#include "headachemd/store/pseudonym.hpp"

#include <openssl/evp.h>

#include <stdexcept>

#include "headachemd/core/text.hpp"

namespace headachemd::store {
namespace {

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

const std::string& patient_key_cache::get(const std::string& fhir_patient_id) {
    auto it = keys_.find(fhir_patient_id);
    if (it != keys_.end()) return it->second;
    if (keys_.size() >= 1'000'000) keys_.clear();  // bound memory on huge exports
    return keys_.emplace(fhir_patient_id, patient_key_for(key_, source_, fhir_patient_id)).first->second;
}

}  // namespace headachemd::store
