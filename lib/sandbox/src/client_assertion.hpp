// The sandbox's own check of a private_key_jwt client assertion (RFC 7523
// §3, SMART App Launch "Client Authentication: Asymmetric"), written
// against OpenSSL and the specs and sharing nothing with lib/smart
// (DESIGN "Testing"): a bug in the client's signer must not pass here.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_pkey_st;

namespace headachemd::sandbox::detail {

// One public key of the client's registered JWK Set.
struct registered_key {
    std::string kid;
    std::string alg;  // the JWK's "alg", empty when it states none
    bool ec = false;  // EC P-384 (ES384); else RSA (RS384)
    std::shared_ptr<evp_pkey_st> key;
};

// Parses a JWK Set (RFC 7517 §5). Keys of other types or curves, and keys
// without a kid, are skipped (a server ignores what it cannot use). Throws
// std::invalid_argument when the text is not a JWK Set or holds no usable
// key, since it comes from the sandbox's options, not from a request.
std::vector<registered_key> parse_jwks(std::string_view json);

class assertion_verifier {
public:
    // SMART App Launch: exp at most five minutes after now.
    static constexpr std::chrono::seconds max_lifetime{300};

    assertion_verifier(std::vector<registered_key> keys, bool rs384_only)
        : keys_(std::move(keys)), rs384_only_(rs384_only) {}

    // Checks one assertion for `client_id` presented at `token_url`. Returns
    // nullopt when it is valid (its jti is then remembered until its exp),
    // else a description naming the check that failed, for the
    // invalid_client error_description. Not thread-safe: the app's mutex
    // guards it.
    std::optional<std::string> verify(std::string_view assertion, std::string_view client_id,
                                      std::string_view token_url, std::chrono::system_clock::time_point now);

private:
    std::vector<registered_key> keys_;
    bool rs384_only_;
    std::map<std::string, std::chrono::system_clock::time_point> seen_jti_;  // jti → its exp
};

}  // namespace headachemd::sandbox::detail
