// Lower-case hex SHA-256 of a byte string: the raw_hash of a resource and
// the definition_sha256 of a view file. One helper for the normalizer and
// the store; it lives here, not in lib/core, because lib/core is
// header-only and links no OpenSSL, and the store already links this
// library PUBLIC.
#pragma once

#include <string>
#include <string_view>

namespace headachemd::normalize {

// 64 lower-case hex digits. Throws std::runtime_error only when libcrypto
// itself fails (a broken installation, never the input).
std::string sha256_hex(std::string_view bytes);

}  // namespace headachemd::normalize
