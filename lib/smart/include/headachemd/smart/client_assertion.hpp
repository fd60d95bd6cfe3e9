// private_key_jwt client authentication (SMART App Launch 2.x "Client
// Authentication: Asymmetric (public key)"; RFC 7523 §2.2; JWS RFC 7515),
// built on OpenSSL 3 EVP alone: no JWT library.
//
// Contract
// - signing_key owns one private key: RSA of at least 2048 bits (RS384) or
//   EC P-384 (ES384). Loading anything else fails with an error that names
//   the source (the file) and what was wrong, never the key bytes.
// - Loading and parsing failures are result<> values; OpenSSL failing to
//   sign or to draw random bytes is a bug or a broken system and throws
//   std::runtime_error.
// - A signing_key is immutable after construction and may be shared
//   between threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "headachemd/core/result.hpp"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace headachemd::smart {

// The JWS algorithms SMART App Launch names for asymmetric client
// authentication. eClinicalWorks accepts RS384 only.
enum class jws_alg { rs384, es384 };

std::string_view to_string(jws_alg alg);  // "RS384", "ES384"
// "RS384" or "ES384" (exactly, as in JWA RFC 7518 §3.1); nullopt otherwise.
std::optional<jws_alg> parse_jws_alg(std::string_view name);

// SMART App Launch: exp no more than five minutes in the future. We use
// four, so a server clock a little ahead of ours still accepts it.
inline constexpr std::chrono::seconds client_assertion_lifetime{240};

class signing_key {
public:
    // Parses a PEM private key (PKCS#8 "PRIVATE KEY", or the traditional
    // RSA/EC forms). `source` names where the text came from in errors.
    // An encrypted key is refused (the daemon runs unattended).
    static result<signing_key> from_pem(std::string_view pem, std::string_view source);
    // Reads the file (a path under ${CREDENTIALS_DIRECTORY} works as any
    // other) under the secret file rule of lib/files (a regular file, no
    // access for others, at most 64 KiB) and parses it; errors name the file.
    static result<signing_key> from_file(const std::filesystem::path& path);
    // A new key pair: RSA of `rsa_bits` (≥ 2048) for RS384, P-384 for ES384.
    static signing_key generate(jws_alg alg, int rsa_bits = 3072);

    // Derived from the key type: RSA signs RS384, EC P-384 signs ES384.
    jws_alg alg() const { return alg_; }
    // The private key as unencrypted PKCS#8 PEM, for keygen to write to a
    // 0600 file. Never log it.
    std::string private_pem() const;
    // RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key: the
    // default `kid`, stable for a key whatever the file looks like.
    std::string thumbprint() const;
    // The public key as one JWK object (RFC 7517 §4): RSA kty,n,e or EC
    // kty,crv,x,y, plus kid, alg, use "sig" and key_ops ["verify"].
    std::string public_jwk(std::string_view kid) const;
    // {"keys":[public_jwk(kid)]}: what the EHR registers (the JWK Set URL
    // or the pasted JWKS of the app registration).
    std::string public_jwks(std::string_view kid) const;
    // The JWS signature of `signing_input` (RFC 7515 §5.1): PKCS#1 v1.5
    // with SHA-384 for RS384; raw R||S (96 bytes, RFC 7518 §3.4) for ES384.
    std::string sign(std::string_view signing_input) const;

private:
    signing_key(std::shared_ptr<evp_pkey_st> key, jws_alg alg) : key_(std::move(key)), alg_(alg) {}
    std::shared_ptr<evp_pkey_st> key_;
    jws_alg alg_;
};

// One key of a published JWK Set and the kid it is published under. The
// key is not owned: it must outlive the call it is passed to.
struct published_key {
    const signing_key* key = nullptr;
    std::string kid;
};

// {"keys":[…]} (RFC 7517 §5): each key's public_jwk(kid), in the order
// given, and nothing else: no private member (RSA d, p, q, dp, dq, qi; EC
// d) can appear, since public_jwk writes the public parameters only. The
// one writer of a JWK Set: keygen --jwks prints one key's, the daemon
// serves every backend key's at /.well-known/jwks.json. Throws
// std::invalid_argument for a null key (a caller bug).
std::string public_jwk_set(std::span<const published_key> keys);

// The claims of one client assertion (RFC 7523 §3; SMART App Launch).
struct assertion_claims {
    std::string client_id;       // iss and sub
    std::string token_endpoint;  // aud: the token URL exactly
    std::chrono::system_clock::time_point now;
};

// A JWS compact token: header {alg, typ "JWT", kid}, claims {iss, sub,
// aud, exp = now + client_assertion_lifetime, iat, jti}. jti is 32 random
// bytes (far above the 128 bits of uniqueness asked for), so every call
// gives a new assertion. Throws std::invalid_argument for an empty
// client_id or token_endpoint (a caller bug).
std::string make_client_assertion(const signing_key& key, std::string_view kid, const assertion_claims& c);

// RFC 7523 §2.2 client_assertion_type.
inline constexpr std::string_view jwt_bearer_assertion_type =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

}  // namespace headachemd::smart
