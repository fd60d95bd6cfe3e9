#include "headachemd/normalize/sha256.hpp"

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

namespace headachemd::normalize {
namespace {

// OpenSSL 3 looks EVP_sha256() up in the provider store on every use
// ("implicit fetch"); fetching once saves that per resource (OpenSSL 3
// migration guide, "Fetching algorithms").
const EVP_MD* sha256_md() {
    static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> fetched(
        EVP_MD_fetch(nullptr, "SHA256", nullptr), &EVP_MD_free);
    return fetched ? fetched.get() : EVP_sha256();
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, sha256_md(), nullptr) != 1)
        throw std::runtime_error("OpenSSL SHA-256 failed");  // a broken libcrypto is a bug, not input
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(2 * len, '\0');
    for (unsigned int i = 0; i < len; ++i) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    return out;
}

}  // namespace headachemd::normalize
