#include "headachemd/smart/client_assertion.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "headachemd/core/base64.hpp"
#include "headachemd/core/json.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::smart {
namespace {

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using bn_ptr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using ecdsa_sig_ptr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;

// P-384 coordinates and ECDSA R and S are 48 bytes each (RFC 7518 §3.4).
constexpr int p384_bytes = 48;
constexpr int min_rsa_bits = 2048;  // RFC 7518 §3.3: RSA keys of 2048 bits or more

std::string b64url(std::string_view bytes) {
    return base64url_encode(
        std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
}

// JSON string literals: the values are client ids, URLs and key ids, but
// whatever they hold is escaped.
using headachemd::json_string;

[[noreturn]] void openssl_failed(const char* what) {
    ERR_clear_error();
    throw std::runtime_error(std::string("OpenSSL failed: ") + what);
}

// A big-endian unsigned integer parameter of the key, left-padded to
// `width` bytes when width > 0 (EC coordinates), minimal otherwise (RSA n
// and e, RFC 7518 §6.3.1: no leading zero octets).
std::string bn_param(const EVP_PKEY* key, const char* name, int width) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) openssl_failed("reading a public key parameter");
    bn_ptr bn(raw, BN_free);
    const int n = width > 0 ? width : BN_num_bytes(bn.get());
    std::string out(static_cast<std::size_t>(n), '\0');
    if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), n) != n)
        openssl_failed("encoding a public key parameter");
    return out;
}

// The JWK members that identify the public key, in the lexicographic order
// RFC 7638 §3.2 requires for the thumbprint (and used for the JWK too).
std::string required_members(const EVP_PKEY* key, jws_alg alg) {
    if (alg == jws_alg::rs384) {
        return "\"e\":" + json_string(b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E, 0))) +
               ",\"kty\":\"RSA\",\"n\":" + json_string(b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N, 0)));
    }
    return "\"crv\":\"P-384\",\"kty\":\"EC\",\"x\":" +
           json_string(b64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, p384_bytes))) +
           ",\"y\":" + json_string(b64url(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, p384_bytes)));
}

// Refuses an encrypted PEM instead of letting OpenSSL prompt on the
// terminal of a daemon.
int no_password(char*, int, int, void*) { return -1; }

std::string where(std::string_view source) {
    return source.empty() ? "the private key" : std::string(source);
}

}  // namespace

std::string_view to_string(jws_alg alg) { return alg == jws_alg::rs384 ? "RS384" : "ES384"; }

std::optional<jws_alg> parse_jws_alg(std::string_view name) {
    if (name == "RS384") return jws_alg::rs384;
    if (name == "ES384") return jws_alg::es384;
    return std::nullopt;
}

result<signing_key> signing_key::from_pem(std::string_view pem, std::string_view source) {
    const std::string src = where(source);
    if (pem.find("-----BEGIN") == std::string_view::npos)
        return error{errc::bad_key, src + " is not a PEM file (no \"-----BEGIN\" line)"};
    if (pem.find("ENCRYPTED") != std::string_view::npos)
        return error{errc::bad_key,
                     src +
                         " holds an encrypted private key; the daemon runs unattended, so store it "
                         "unencrypted with mode 0600 (or as a systemd credential)"};
    if (pem.find("PRIVATE KEY-----") == std::string_view::npos)
        return error{errc::bad_key, src + " holds no private key (expected a PEM \"PRIVATE KEY\" block)"};
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    if (!bio) openssl_failed("allocating a memory BIO");
    EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr);
    // Nothing of OpenSSL's error queue leaves this function: its strings are
    // not ours to show, and a stale entry would confuse the next TLS call.
    ERR_clear_error();
    if (!raw) return error{errc::bad_key, src + " is not a readable PEM private key"};
    std::shared_ptr<evp_pkey_st> key(raw, EVP_PKEY_free);
    if (EVP_PKEY_is_a(raw, "RSA")) {
        const int bits = EVP_PKEY_get_bits(raw);
        if (bits < min_rsa_bits)
            return error{errc::bad_key, src + " is an RSA key of " + std::to_string(bits) +
                                            " bits; RS384 needs at least 2048 (RFC 7518 §3.3)"};
        return signing_key(std::move(key), jws_alg::rs384);
    }
    if (EVP_PKEY_is_a(raw, "EC")) {
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(raw, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) {
            ERR_clear_error();
            return error{errc::bad_key, src + " is an EC key on an unnamed curve; ES384 needs P-384"};
        }
        const std::string_view g(group, len);
        if (g != "secp384r1" && g != "P-384")
            return error{errc::bad_key,
                         src + " is an EC key on " + std::string(g) + "; ES384 needs P-384 (secp384r1)"};
        return signing_key(std::move(key), jws_alg::es384);
    }
    return error{errc::bad_key,
                 src + " holds a " +
                     std::string(EVP_PKEY_get0_type_name(raw) ? EVP_PKEY_get0_type_name(raw) : "unknown") +
                     " key; private_key_jwt needs RSA (RS384) or EC P-384 (ES384)"};
}

result<signing_key> signing_key::from_file(const std::filesystem::path& path) {
    // The private_key_jwt key is a secret file like any other (lib/files):
    // no access for others, a regular file, read with a cap.
    auto read = files::read_protected_file(path, files::file_kind::secret, "private key file",
                                           files::max_secret_bytes);
    if (read.problem) return error{errc::bad_key, read.problem->message()};
    auto key = from_pem(*read.content, "the private key file " + path.string());
    files::wipe(*read.content);
    return key;
}

signing_key signing_key::generate(jws_alg alg, int rsa_bits) {
    EVP_PKEY* raw = nullptr;
    if (alg == jws_alg::rs384) {
        if (rsa_bits < min_rsa_bits)
            throw std::invalid_argument("RSA keys for RS384 need at least 2048 bits");
        raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits));
    } else {
        raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
    }
    if (!raw) openssl_failed("generating a key pair");
    return signing_key(std::shared_ptr<evp_pkey_st>(raw, EVP_PKEY_free), alg);
}

std::string signing_key::private_pem() const {
    bio_ptr bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        openssl_failed("writing the private key");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string signing_key::thumbprint() const {
    // RFC 7638 §3: SHA-256 over the required members, no whitespace,
    // lexicographic order.
    const std::string canonical = "{" + required_members(key_.get(), alg_) + "}";
    std::array<unsigned char, 32> digest{};
    unsigned int len = 0;
    if (EVP_Digest(canonical.data(), canonical.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1)
        openssl_failed("SHA-256");
    return base64url_encode(digest);
}

std::string signing_key::public_jwk(std::string_view kid) const {
    return "{" + required_members(key_.get(), alg_) + ",\"kid\":" + json_string(kid) + ",\"alg\":\"" +
           std::string(to_string(alg_)) + "\",\"use\":\"sig\",\"key_ops\":[\"verify\"]}";
}

std::string signing_key::public_jwks(std::string_view kid) const {
    const published_key one{this, std::string(kid)};
    return public_jwk_set({&one, 1});
}

std::string public_jwk_set(std::span<const published_key> keys) {
    std::string out = "{\"keys\":[";
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (keys[i].key == nullptr) throw std::invalid_argument("public_jwk_set: a null key");
        if (i > 0) out += ',';
        out += keys[i].key->public_jwk(keys[i].kid);
    }
    return out + "]}";
}

std::string signing_key::sign(std::string_view signing_input) const {
    md_ctx_ptr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key_.get()) != 1)
        openssl_failed("starting a signature");
    std::size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &len, in, signing_input.size()) != 1) openssl_failed("signing");
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                       signing_input.size()) != 1)
        openssl_failed("signing");
    sig.resize(len);
    if (alg_ == jws_alg::rs384) return sig;
    // EVP gives ECDSA as DER ECDSA-Sig-Value; JWS wants R and S as two
    // 48-byte big-endian integers side by side (RFC 7518 §3.4).
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ecdsa_sig_ptr ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())), ECDSA_SIG_free);
    if (!ecdsa) openssl_failed("decoding the ECDSA signature");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(ecdsa.get(), &r, &s);
    std::string raw(2 * p384_bytes, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (BN_bn2binpad(r, out, p384_bytes) != p384_bytes ||
        BN_bn2binpad(s, out + p384_bytes, p384_bytes) != p384_bytes)
        openssl_failed("encoding the ECDSA signature");
    return raw;
}

std::string make_client_assertion(const signing_key& key, std::string_view kid, const assertion_claims& c) {
    if (c.client_id.empty()) throw std::invalid_argument("a client assertion needs the client_id");
    if (c.token_endpoint.empty()) throw std::invalid_argument("a client assertion needs the token endpoint");
    std::array<unsigned char, 32> jti{};
    if (RAND_bytes(jti.data(), static_cast<int>(jti.size())) != 1)
        throw std::runtime_error("the OS random generator failed");
    const auto iat = std::chrono::duration_cast<std::chrono::seconds>(c.now.time_since_epoch()).count();
    const auto exp = iat + client_assertion_lifetime.count();
    std::string header = "{\"alg\":\"" + std::string(to_string(key.alg())) + "\",\"typ\":\"JWT\"";
    if (!kid.empty()) header += ",\"kid\":" + json_string(kid);
    header += "}";
    const std::string claims =
        "{\"iss\":" + json_string(c.client_id) + ",\"sub\":" + json_string(c.client_id) +
        ",\"aud\":" + json_string(c.token_endpoint) + ",\"exp\":" + std::to_string(exp) +
        ",\"iat\":" + std::to_string(iat) + ",\"jti\":" + json_string(base64url_encode(jti)) + "}";
    const std::string signing_input = b64url(header) + "." + b64url(claims);
    return signing_input + "." + b64url(key.sign(signing_input));
}

}  // namespace headachemd::smart
