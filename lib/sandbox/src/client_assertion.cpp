#include "client_assertion.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <simdjson.h>

#include <stdexcept>

#include "codec.hpp"

namespace headachemd::sandbox::detail {
namespace {

using bn_ptr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using bld_ptr = std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)>;
using param_ptr = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;
using pctx_ptr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using sig_ptr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;

constexpr std::size_t p384_bytes = 48;

// RFC 7515 §2: base64url without padding; anything else is not a JWS.
std::optional<std::string> b64url_decode(std::string_view in) {
    std::string s;
    s.reserve(in.size());
    for (const char c : in) {
        if (c == '-')
            s.push_back('+');
        else if (c == '_')
            s.push_back('/');
        else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            s.push_back(c);
        else
            return std::nullopt;
    }
    return base64_decode(s);
}

bn_ptr to_bn(const std::string& bytes) {
    return bn_ptr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()), nullptr),
                  BN_free);
}

std::shared_ptr<evp_pkey_st> from_params(const char* type, OSSL_PARAM_BLD* bld) {
    param_ptr params(OSSL_PARAM_BLD_to_param(bld), OSSL_PARAM_free);
    pctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        ERR_clear_error();
        return nullptr;
    }
    return std::shared_ptr<evp_pkey_st>(key, EVP_PKEY_free);
}

// RFC 7518 §6.3.1: n and e, base64url big-endian integers.
std::shared_ptr<evp_pkey_st> rsa_key(std::string_view n64, std::string_view e64) {
    const auto n = b64url_decode(n64);
    const auto e = b64url_decode(e64);
    if (!n || !e || n->empty() || e->empty()) return nullptr;
    bld_ptr bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    const auto nb = to_bn(*n), eb = to_bn(*e);
    if (!bld || !nb || !eb || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, nb.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, eb.get()) != 1)
        return nullptr;
    return from_params("RSA", bld.get());
}

// RFC 7518 §6.2.1: x and y, each the full 48 bytes for P-384.
std::shared_ptr<evp_pkey_st> p384_key(std::string_view x64, std::string_view y64) {
    const auto x = b64url_decode(x64);
    const auto y = b64url_decode(y64);
    if (!x || !y || x->size() != p384_bytes || y->size() != p384_bytes) return nullptr;
    const std::string point = "\x04" + *x + *y;  // SEC 1 §2.3.3 uncompressed point
    bld_ptr bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
        return nullptr;
    return from_params("EC", bld.get());
}

// RFC 7518 §3.4: an ES384 JWS signature is R||S, 48 bytes each; OpenSSL
// verifies the DER ECDSA-Sig-Value.
std::optional<std::string> raw_to_der(const std::string& raw) {
    if (raw.size() != 2 * p384_bytes) return std::nullopt;
    sig_ptr sig(ECDSA_SIG_new(), ECDSA_SIG_free);
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
    BIGNUM* r = BN_bin2bn(p, p384_bytes, nullptr);
    BIGNUM* s = BN_bin2bn(p + p384_bytes, p384_bytes, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

bool signature_ok(EVP_PKEY* key, std::string_view signing_input, const std::string& sig) {
    md_ctx_ptr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                                     sig.size(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                                     signing_input.size()) == 1;
    ERR_clear_error();
    return ok;
}

std::optional<std::int64_t> numeric_date(simdjson::dom::element claims, const char* name) {
    std::int64_t v = 0;
    if (!claims[name].get(v)) return v;
    // RFC 7519 §2 allows a fractional NumericDate; one outside any sane
    // range is refused rather than cast (an out-of-range cast is UB).
    double d = 0;
    if (!claims[name].get(d) && d > -1e12 && d < 1e12) return static_cast<std::int64_t>(d);
    return std::nullopt;
}

}  // namespace

std::vector<registered_key> parse_jwks(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    simdjson::dom::array keys;
    const simdjson::padded_string text(json);
    if (parser.parse(text).get(doc) || doc["keys"].get(keys))
        throw std::invalid_argument("client_jwks is not a JWK Set (an object with a \"keys\" array)");
    std::vector<registered_key> out;
    for (auto jwk : keys) {
        std::string_view kty, kid, alg;
        if (jwk["kty"].get(kty) || jwk["kid"].get(kid)) continue;
        if (jwk["alg"].get(alg)) alg = {};
        registered_key k;
        k.kid = kid;
        k.alg = alg;
        if (kty == "RSA") {
            std::string_view n, e;
            if (jwk["n"].get(n) || jwk["e"].get(e)) continue;
            k.key = rsa_key(n, e);
        } else if (kty == "EC") {
            std::string_view crv, x, y;
            if (jwk["crv"].get(crv) || crv != "P-384" || jwk["x"].get(x) || jwk["y"].get(y)) continue;
            k.key = p384_key(x, y);
            k.ec = true;
        }
        if (k.key) out.push_back(std::move(k));
    }
    if (out.empty())
        throw std::invalid_argument("client_jwks holds no usable key (RSA, or EC P-384, each with a kid)");
    return out;
}

std::optional<std::string> assertion_verifier::verify(std::string_view assertion, std::string_view client_id,
                                                      std::string_view token_url,
                                                      std::chrono::system_clock::time_point now) {
    using std::chrono::seconds;
    // RFC 7515 §7.1: three base64url parts joined by dots.
    const auto dot1 = assertion.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : assertion.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || assertion.find('.', dot2 + 1) != std::string_view::npos)
        return "client_assertion is not a JWS in compact serialization (three base64url parts)";
    const auto header_text = b64url_decode(assertion.substr(0, dot1));
    const auto claims_text = b64url_decode(assertion.substr(dot1 + 1, dot2 - dot1 - 1));
    const auto signature = b64url_decode(assertion.substr(dot2 + 1));
    if (!header_text || !claims_text || !signature)
        return "client_assertion has a part that is not base64url";

    simdjson::dom::parser hp, cp;
    simdjson::dom::element header, claims;
    const simdjson::padded_string hpad(*header_text), cpad(*claims_text);
    if (hp.parse(hpad).get(header) || !header.is_object())
        return "client_assertion header is not a JSON object";
    if (cp.parse(cpad).get(claims) || !claims.is_object())
        return "client_assertion claims are not a JSON object";

    // The algorithm: SMART names RS384 and ES384; eClinicalWorks takes RS384.
    std::string_view alg;
    if (header["alg"].get(alg)) return "client_assertion header has no alg";
    if (alg != "RS384" && alg != "ES384")
        return "client_assertion alg " + std::string(alg) + " is not supported (RS384 or ES384)";
    if (alg == "ES384" && rs384_only_)
        return "client_assertion alg ES384 is refused: this server accepts RS384 only";

    std::string_view kid;
    if (header["kid"].get(kid)) return "client_assertion header has no kid (SMART requires it)";
    const registered_key* key = nullptr;
    for (const auto& k : keys_)
        if (k.kid == kid) key = &k;
    if (!key) return "client_assertion kid \"" + std::string(kid) + "\" is not in the registered JWKS";
    if (key->ec != (alg == "ES384") || (!key->alg.empty() && key->alg != alg))
        return "client_assertion alg " + std::string(alg) + " does not match the registered key " + key->kid;

    std::string der = *signature;
    if (key->ec) {
        auto converted = raw_to_der(*signature);
        if (!converted) return "client_assertion signature is invalid (ES384 needs 96 bytes R||S)";
        der = std::move(*converted);
    }
    if (!signature_ok(key->key.get(), assertion.substr(0, dot2), der))
        return "client_assertion signature is invalid";

    // RFC 7523 §3 and SMART: iss = sub = client_id, aud = the token URL.
    std::string_view iss, sub;
    if (claims["iss"].get(iss) || iss != client_id) return "client_assertion iss must be the client_id";
    if (claims["sub"].get(sub) || sub != iss) return "client_assertion sub must equal iss (the client_id)";
    bool aud_ok = false;
    std::string_view aud;
    simdjson::dom::array auds;
    if (!claims["aud"].get(aud)) {
        aud_ok = aud == token_url;
    } else if (!claims["aud"].get(auds)) {
        for (auto a : auds) {
            std::string_view one;
            if (!a.get(one) && one == token_url) aud_ok = true;
        }
    }
    if (!aud_ok) return "client_assertion aud must be the token endpoint URL " + std::string(token_url);

    const auto exp = numeric_date(claims, "exp");
    if (!exp) return "client_assertion has no exp";
    const auto now_s = std::chrono::duration_cast<seconds>(now.time_since_epoch()).count();
    if (*exp <= now_s) return "client_assertion expired (exp is not in the future)";
    if (*exp > now_s + max_lifetime.count())
        return "client_assertion exp is more than 5 minutes ahead (SMART App Launch)";

    std::string_view jti;
    if (claims["jti"].get(jti) || jti.empty()) return "client_assertion has no jti";
    // A jti is remembered until its exp; after that the exp check refuses
    // a replay anyway, so the entry can go.
    std::erase_if(seen_jti_, [&](const auto& kv) { return kv.second <= now; });
    if (seen_jti_.count(std::string(jti)) != 0) return "client_assertion jti was already used (replay)";
    seen_jti_.emplace(std::string(jti), std::chrono::system_clock::time_point{seconds{*exp}});
    return std::nullopt;
}

}  // namespace headachemd::sandbox::detail
