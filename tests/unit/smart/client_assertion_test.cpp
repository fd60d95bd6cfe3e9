// private_key_jwt: the assertion is checked here the way a server would,
// with OpenSSL directly and a public key rebuilt from the published JWK, so
// a wrong claim, a DER-instead-of-R||S signature or a bad JWK all fail.
// Keys are generated at run time; no key material is in the repository.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <simdjson.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "headachemd/core/base64.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/smart/smart.hpp"
#include "test_support.hpp"

namespace {

namespace smart = headachemd::smart;
using namespace std::chrono_literals;
using headachemd::test::temp_dir;

const auto test_now = std::chrono::system_clock::time_point{std::chrono::seconds{1767225600}};  // 2026-01-01
constexpr const char* token_url = "https://ehr.test/oauth/token";

std::string b64url_decode(std::string_view in) {
    std::string s(in);
    for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4) s += '=';
    std::string out((s.size() / 4) * 3, '\0');
    const int n =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    if (n < 0) return {};
    out.resize(static_cast<std::size_t>(n) - (s.size() - in.size()));  // drop the padding's zero bytes
    return out;
}

std::vector<std::string> split_on(const std::string& text, char sep) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    for (;;) {
        const auto j = text.find(sep, i);
        parts.push_back(text.substr(i, j - i));
        if (j == std::string::npos) break;
        i = j + 1;
    }
    return parts;
}

std::vector<std::string> split_dots(const std::string& jws) { return split_on(jws, '.'); }

// application/x-www-form-urlencoded, decoded as a token endpoint would.
std::map<std::string, std::string> form_fields(std::string_view body) {
    const auto decode = [](std::string_view in) {
        std::string out;
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] == '+') {
                out += ' ';
            } else if (in[i] == '%' && i + 2 < in.size()) {
                out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
                i += 2;
            } else {
                out += in[i];
            }
        }
        return out;
    };
    std::map<std::string, std::string> out;
    for (const std::string& pair : split_on(std::string(body), '&')) {
        const auto eq = pair.find('=');
        out[decode(std::string_view(pair).substr(0, eq))] =
            eq == std::string::npos ? "" : decode(std::string_view(pair).substr(eq + 1));
    }
    return out;
}

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// The public key as a verifier would build it from the JWK alone.
pkey_ptr public_key_from_jwk(simdjson::dom::element jwk) {
    std::string_view kty;
    EXPECT_FALSE(jwk["kty"].get(kty));
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    std::string point;
    const char* type = nullptr;
    if (kty == "RSA") {
        std::string_view nv, ev;
        EXPECT_FALSE(jwk["n"].get(nv));
        EXPECT_FALSE(jwk["e"].get(ev));
        const std::string nb = b64url_decode(nv), eb = b64url_decode(ev);
        n = BN_bin2bn(reinterpret_cast<const unsigned char*>(nb.data()), static_cast<int>(nb.size()),
                      nullptr);
        e = BN_bin2bn(reinterpret_cast<const unsigned char*>(eb.data()), static_cast<int>(eb.size()),
                      nullptr);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
        type = "RSA";
    } else {
        std::string_view crv, x, y;
        EXPECT_FALSE(jwk["crv"].get(crv));
        EXPECT_EQ(crv, "P-384");
        EXPECT_FALSE(jwk["x"].get(x));
        EXPECT_FALSE(jwk["y"].get(y));
        const std::string xb = b64url_decode(x), yb = b64url_decode(y);
        EXPECT_EQ(xb.size(), 48u);
        EXPECT_EQ(yb.size(), 48u);
        point = "\x04" + xb + yb;  // SEC 1 uncompressed point
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
        type = "EC";
    }
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* key = nullptr;
    EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
    EXPECT_EQ(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey_ptr(key, EVP_PKEY_free);
}

// Verifies a JWS signature the way RFC 7515 §5.2 does; ES384 R||S is turned
// back into DER for OpenSSL.
bool verify(EVP_PKEY* key, const std::string& signing_input, const std::string& sig, bool es384) {
    std::string der = sig;
    if (es384) {
        if (sig.size() != 96) return false;
        ECDSA_SIG* s = ECDSA_SIG_new();
        BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 48, nullptr);
        BIGNUM* ss = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 48, 48, nullptr);
        ECDSA_SIG_set0(s, r, ss);
        unsigned char* out = nullptr;
        const int len = i2d_ECDSA_SIG(s, &out);
        der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
        OPENSSL_free(out);
        ECDSA_SIG_free(s);
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha384(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                                     signing_input.size()) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

struct decoded {
    std::string header, claims, signature, signing_input;
};

decoded decode(const std::string& jws) {
    const auto parts = split_dots(jws);
    EXPECT_EQ(parts.size(), 3u) << "a JWS compact token has three parts";
    if (parts.size() != 3) return {};
    return {b64url_decode(parts[0]), b64url_decode(parts[1]), b64url_decode(parts[2]),
            parts[0] + "." + parts[1]};
}

class assertion_test : public ::testing::TestWithParam<smart::jws_alg> {};

TEST_P(assertion_test, ClaimsHeaderAndSignatureAreWhatAServerChecks) {
    // Setup
    const auto alg = GetParam();
    const bool es = alg == smart::jws_alg::es384;
    const auto key = smart::signing_key::generate(alg, 2048);
    const std::string kid = key.thumbprint();
    simdjson::dom::parser jwks_parser;
    simdjson::dom::element jwks;
    const std::string jwks_text = key.public_jwks(kid);
    ASSERT_FALSE(jwks_parser.parse(jwks_text).get(jwks)) << jwks_text;
    simdjson::dom::element jwk = jwks["keys"].at(0);
    const auto pub = public_key_from_jwk(jwk);
    ASSERT_TRUE(pub);

    // Run
    const std::string a1 = smart::make_client_assertion(key, kid, {"my-client", token_url, test_now});
    const std::string a2 = smart::make_client_assertion(key, kid, {"my-client", token_url, test_now});

    // Check: the JWK publishes what a server needs.
    std::string_view s;
    EXPECT_FALSE(jwk["kid"].get(s));
    EXPECT_EQ(s, kid);
    EXPECT_FALSE(jwk["alg"].get(s));
    EXPECT_EQ(s, es ? "ES384" : "RS384");
    EXPECT_FALSE(jwk["use"].get(s));
    EXPECT_EQ(s, "sig");
    EXPECT_FALSE(jwk["key_ops"].at(0).get(s));
    EXPECT_EQ(s, "verify");
    EXPECT_TRUE(jwk["d"].error()) << "the private exponent must never be published";
    EXPECT_TRUE(jwk["p"].error());

    const decoded d = decode(a1);
    simdjson::dom::parser hp, cp;
    simdjson::dom::element h, c;
    ASSERT_FALSE(hp.parse(d.header).get(h)) << d.header;
    ASSERT_FALSE(cp.parse(d.claims).get(c)) << d.claims;
    EXPECT_FALSE(h["alg"].get(s));
    EXPECT_EQ(s, es ? "ES384" : "RS384");
    EXPECT_FALSE(h["typ"].get(s));
    EXPECT_EQ(s, "JWT");
    EXPECT_FALSE(h["kid"].get(s));
    EXPECT_EQ(s, kid);
    EXPECT_FALSE(c["iss"].get(s));
    EXPECT_EQ(s, "my-client");
    EXPECT_FALSE(c["sub"].get(s));
    EXPECT_EQ(s, "my-client");
    EXPECT_FALSE(c["aud"].get(s));
    EXPECT_EQ(s, token_url);
    std::int64_t exp = 0, iat = 0;
    EXPECT_FALSE(c["exp"].get(exp));
    EXPECT_FALSE(c["iat"].get(iat));
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(test_now.time_since_epoch()).count();
    EXPECT_EQ(iat, now_s);
    EXPECT_GT(exp, now_s);
    EXPECT_LE(exp, now_s + 300) << "SMART: exp no more than five minutes ahead";
    std::string_view jti;
    EXPECT_FALSE(c["jti"].get(jti));
    EXPECT_GE(b64url_decode(jti).size(), 16u) << "at least 128 random bits";

    // Two calls, two assertions: a server refuses a jti it has seen.
    const decoded d2 = decode(a2);
    simdjson::dom::parser cp2;
    simdjson::dom::element c2;
    ASSERT_FALSE(cp2.parse(d2.claims).get(c2));
    std::string_view jti2;
    EXPECT_FALSE(c2["jti"].get(jti2));
    EXPECT_NE(jti, jti2);

    // The signature verifies with the published key, and only over these bytes.
    if (es) {
        EXPECT_EQ(d.signature.size(), 96u) << "ES384 is raw R||S (RFC 7518 §3.4), not DER";
    } else {
        EXPECT_EQ(d.signature.size(), 256u);
    }
    EXPECT_TRUE(verify(pub.get(), d.signing_input, d.signature, es));
    EXPECT_TRUE(verify(pub.get(), d2.signing_input, d2.signature, es));
    std::string tampered = d.signing_input;
    tampered[tampered.size() - 2] ^= 1;
    EXPECT_FALSE(verify(pub.get(), tampered, d.signature, es));
    // Another key's JWK does not verify it.
    const auto other = smart::signing_key::generate(alg, 2048);
    simdjson::dom::parser op;
    simdjson::dom::element ojwks;
    const std::string other_text = other.public_jwks("x");
    ASSERT_FALSE(op.parse(other_text).get(ojwks));
    EXPECT_FALSE(verify(public_key_from_jwk(ojwks["keys"].at(0)).get(), d.signing_input, d.signature, es));
}

TEST_P(assertion_test, PemRoundTripKeepsTheKeyAndItsThumbprint) {
    const auto key = smart::signing_key::generate(GetParam(), 2048);
    const std::string pem = key.private_pem();
    EXPECT_NE(pem.find(std::string("-----BEGIN ") + "PRIVATE KEY-----"), std::string::npos);
    temp_dir dir;
    headachemd::test::write_file(dir / "key.pem", pem);
    const auto loaded = smart::signing_key::from_file(dir / "key.pem");
    ASSERT_TRUE(loaded) << loaded.err().message;
    EXPECT_EQ(loaded->alg(), GetParam());
    EXPECT_EQ(loaded->thumbprint(), key.thumbprint());
    EXPECT_EQ(loaded->public_jwk("k"), key.public_jwk("k"));
    EXPECT_NE(smart::signing_key::generate(GetParam(), 2048).thumbprint(), key.thumbprint());
}

TEST_P(assertion_test, TokenRequestsCarryAFreshAssertionEveryTime) {
    // Setup
    smart::client_credentials creds;
    creds.client_id = "my client";
    creds.auth = smart::client_auth::private_key_jwt;
    creds.key = std::make_shared<smart::signing_key>(smart::signing_key::generate(GetParam(), 2048));
    creds.key_id = "k1";
    // Run
    const auto r1 = smart::make_refresh_request("rt", creds, {token_url, test_now});
    const auto r2 = smart::make_refresh_request("rt", creds, {token_url, test_now});
    const auto c1 =
        smart::make_code_exchange_request("code", "https://app/cb", "ver", creds, {token_url, test_now});
    // RFC 7009 §2.1: revocation authenticates the client as the token endpoint does.
    const auto v1 = smart::make_revocation_request("rt", creds, {token_url, test_now});
    // Check
    for (const auto* r : {&r1, &r2, &c1, &v1}) {
        for (const auto& [name, value] : r->headers) EXPECT_NE(name, "Authorization");
        EXPECT_NE(r->body.find("client_id=my+client"), std::string::npos) << r->body;
        EXPECT_NE(
            r->body.find(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"),
            std::string::npos)
            << r->body;
        EXPECT_NE(r->body.find("client_assertion=ey"), std::string::npos);
        EXPECT_EQ(r->body.find("client_secret"), std::string::npos);
    }
    EXPECT_NE(r1.body.find("grant_type=refresh_token"), std::string::npos);
    EXPECT_NE(c1.body.find("grant_type=authorization_code"), std::string::npos);
    EXPECT_NE(r1.body, r2.body) << "a reused assertion would be refused (jti)";
    EXPECT_EQ(v1.body.find("token=rt&token_type_hint=refresh_token&"), 0u) << v1.body;
    EXPECT_THROW((void)smart::make_revocation_request("rt", creds), std::invalid_argument);
    // The token URL is the assertion's aud; without it the request cannot be built.
    EXPECT_THROW((void)smart::make_refresh_request("rt", creds), std::invalid_argument);
    creds.key.reset();
    EXPECT_THROW((void)smart::make_refresh_request("rt", creds, {token_url, test_now}),
                 std::invalid_argument);
}

TEST_P(assertion_test, BackendServicesTokenRequestIsClientCredentialsWithAFreshAssertion) {
    // Setup
    smart::client_credentials creds;
    creds.client_id = "bulk-app";
    creds.auth = smart::client_auth::private_key_jwt;
    creds.key = std::make_shared<smart::signing_key>(smart::signing_key::generate(GetParam(), 2048));
    creds.key_id = "k1";
    const std::string scope = "system/Group.read system/Observation.read";
    // Run
    const auto r1 = smart::make_backend_token_request(scope, creds, {token_url, test_now});
    const auto r2 = smart::make_backend_token_request(scope, creds, {token_url, test_now});
    // Check: the form of SMART Backend Services, nothing of a patient-facing grant.
    std::map<std::string, std::string> fields = form_fields(r1.body);
    EXPECT_EQ(fields["grant_type"], "client_credentials");
    EXPECT_EQ(fields["scope"], scope);
    EXPECT_EQ(fields["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    EXPECT_EQ(fields.count("refresh_token") + fields.count("client_secret") + fields.count("code"), 0u);
    for (const auto& [name, value] : r1.headers) EXPECT_NE(name, "Authorization");
    // The assertion is signed for this token URL, and a secret to cut from echoes.
    const auto parts = split_dots(fields["client_assertion"]);
    ASSERT_EQ(parts.size(), 3u);
    const std::string claims = b64url_decode(parts[1]);
    EXPECT_NE(claims.find(R"("aud":"https://ehr.test/oauth/token")"), std::string::npos) << claims;
    EXPECT_NE(claims.find(R"("iss":"bulk-app")"), std::string::npos) << claims;
    EXPECT_EQ(r1.secrets, std::vector<std::string>{fields["client_assertion"]});
    EXPECT_NE(r1.body, r2.body) << "a reused assertion would be refused (jti)";
}

TEST(BackendServices, RefusesEveryOtherClientAuthenticationAndAnEmptyScope) {
    // Setup
    smart::client_credentials secret{"bulk-app", "s3cret", smart::client_auth::client_secret_basic};
    smart::client_credentials jwt;
    jwt.client_id = "bulk-app";
    jwt.auth = smart::client_auth::private_key_jwt;
    jwt.key = std::make_shared<smart::signing_key>(smart::signing_key::generate(smart::jws_alg::es384));
    // Run / Check
    for (const auto auth : {smart::client_auth::client_secret_basic, smart::client_auth::client_secret_post,
                            smart::client_auth::none}) {
        secret.auth = auth;
        EXPECT_THROW(
            (void)smart::make_backend_token_request("system/Group.read", secret, {token_url, test_now}),
            std::invalid_argument);
    }
    EXPECT_THROW((void)smart::make_backend_token_request("", jwt, {token_url, test_now}),
                 std::invalid_argument);
    EXPECT_THROW((void)smart::make_backend_token_request("system/Group.read", jwt, {}),
                 std::invalid_argument);
    EXPECT_NO_THROW((void)smart::make_backend_token_request("system/Group.read", jwt, {token_url, test_now}));
}

INSTANTIATE_TEST_SUITE_P(algs, assertion_test,
                         ::testing::Values(smart::jws_alg::rs384, smart::jws_alg::es384),
                         [](const auto& param_info) {
                             return std::string(smart::to_string(param_info.param));
                         });

// A key made by OpenSSL directly, as PKCS#8 PEM.
std::string pem_of(EVP_PKEY* k) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    EVP_PKEY_free(k);
    return out;
}

// A PEM block; the armour is assembled at run time so that no private-key
// header is ever written literally in the repository.
std::string pem_block(const std::string& label, const std::string& body) {
    return "-----BEGIN " + label + "-----\n" + body + "\n-----END " + label + "-----\n";
}

// The error names the file and says what is wrong, and shows no key bytes.
void expect_refused(const std::string& pem, const std::string& why) {
    temp_dir dir;
    const auto path = dir / "bad-key.pem";
    headachemd::test::write_file(path, pem);
    const auto r = smart::signing_key::from_file(path);
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(to_string(r.err().code), "bad_key");
    EXPECT_NE(r.err().message.find(path.string()), std::string::npos) << r.err().message;
    EXPECT_NE(r.err().message.find(why), std::string::npos) << r.err().message;
    // No line of the PEM body (base64 key bytes) is echoed.
    std::size_t i = pem.find('\n');
    while (i != std::string::npos && i + 1 < pem.size()) {
        const auto j = pem.find('\n', i + 1);
        const std::string line = pem.substr(i + 1, j - i - 1);
        if (line.size() > 16 && line.find("-----") == std::string::npos) {
            EXPECT_EQ(r.err().message.find(line.substr(0, 16)), std::string::npos);
        }
        i = j;
    }
}

TEST(SigningKey, UnsupportedOrBadKeysAreClearErrors) {
    expect_refused(pem_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024))),
                   "RSA key of 1024 bits");
    expect_refused(pem_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")), "ES384 needs P-384");
    expect_refused(pem_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")), "needs RSA (RS384) or EC P-384");
    expect_refused("not a key at all\n", "is not a PEM file");
    expect_refused(pem_block("PUBLIC KEY", "AAAA"), "holds no private key");
    expect_refused(pem_block("PRIVATE KEY", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"),
                   "is not a readable PEM private key");
    expect_refused(pem_block("ENCRYPTED PRIVATE KEY", "AAAA"), "encrypted private key");
    temp_dir dir;
    const auto missing = smart::signing_key::from_file(dir / "absent.pem");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.err().message.find((dir / "absent.pem").string()), std::string::npos);
    EXPECT_EQ(ERR_peek_error(), 0u) << "no OpenSSL error may be left for the next TLS call";
}

// The JWK Set the daemon serves at /.well-known/jwks.json: every key, in
// the order given, each with only public members, and each one's public
// part verifies what its private key signs (and not what another signs).
TEST(JwkSet, PublishesEveryKeyPublicOnlyAndEachVerifiesItsOwnSignatures) {
    // Setup: an RSA key (RS384) and an EC P-384 key (ES384), as a current
    // and a next key during a rotation.
    const auto rsa = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    const auto ec = smart::signing_key::generate(smart::jws_alg::es384);
    const std::vector<smart::published_key> keys{{&rsa, "current-2026"}, {&ec, "next-2027"}};

    // Run
    const std::string text = smart::public_jwk_set(keys);

    // Check: parsed, two keys with their kid, alg and use.
    simdjson::dom::parser parser;
    simdjson::dom::element set;
    ASSERT_FALSE(parser.parse(text).get(set)) << text;
    simdjson::dom::array arr;
    ASSERT_FALSE(set["keys"].get(arr)) << text;
    ASSERT_EQ(arr.size(), 2u) << text;
    const std::string input = "header.claims";
    for (std::size_t i = 0; i < 2; ++i) {
        const simdjson::dom::element jwk = arr.at(i);
        const bool es = i == 1;
        std::string_view s;
        EXPECT_FALSE(jwk["kid"].get(s));
        EXPECT_EQ(s, keys[i].kid);
        EXPECT_FALSE(jwk["alg"].get(s));
        EXPECT_EQ(s, es ? "ES384" : "RS384");
        EXPECT_FALSE(jwk["use"].get(s));
        EXPECT_EQ(s, "sig");
        // RFC 7518 §6.3.2 (RSA d, p, q, dp, dq, qi) and §6.2.2 (EC d):
        // none of the private members, and no member we did not mean.
        simdjson::dom::object members;
        ASSERT_FALSE(jwk.get(members));
        for (auto field : members) {
            const std::string name(field.key);
            EXPECT_TRUE(name == "kty" || name == "n" || name == "e" || name == "crv" || name == "x" ||
                        name == "y" || name == "kid" || name == "alg" || name == "use" || name == "key_ops")
                << "unexpected member " << name << " in " << text;
        }
        for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
            EXPECT_TRUE(jwk[priv].error()) << "private member " << priv << " published: " << text;
        const auto pub = public_key_from_jwk(jwk);
        ASSERT_TRUE(pub);
        const smart::signing_key& signer = es ? ec : rsa;
        const smart::signing_key& other = es ? rsa : ec;
        EXPECT_TRUE(verify(pub.get(), input, signer.sign(input), es)) << "key " << i;
        EXPECT_FALSE(verify(pub.get(), input, other.sign(input), es)) << "key " << i;
    }
    // One key's set is what keygen --jwks prints for it.
    EXPECT_EQ(smart::public_jwk_set({keys.data(), 1}), rsa.public_jwks("current-2026"));
    EXPECT_EQ(smart::public_jwk_set({}), R"({"keys":[]})");
    const smart::published_key null_key{nullptr, "x"};
    EXPECT_THROW(smart::public_jwk_set({&null_key, 1}), std::invalid_argument);
}

TEST(SigningKey, AlgorithmNames) {
    EXPECT_EQ(smart::parse_jws_alg("RS384"), smart::jws_alg::rs384);
    EXPECT_EQ(smart::parse_jws_alg("ES384"), smart::jws_alg::es384);
    EXPECT_FALSE(smart::parse_jws_alg("rs384"));
    EXPECT_FALSE(smart::parse_jws_alg("RS256"));
    EXPECT_FALSE(smart::parse_jws_alg("none"));
}

TEST(SigningKey, ThumbprintIsRfc7638OverTheJwkMembers) {
    // RFC 7638 §3: SHA-256 of {"e","kty","n"} in that order, no spaces.
    const auto key = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    simdjson::dom::parser p;
    simdjson::dom::element jwk;
    const std::string text = key.public_jwk("");
    ASSERT_FALSE(p.parse(text).get(jwk));
    std::string_view n, e;
    ASSERT_FALSE(jwk["n"].get(n));
    ASSERT_FALSE(jwk["e"].get(e));
    EXPECT_EQ(e, "AQAB");
    const std::string canonical =
        R"({"e":")" + std::string(e) + R"(","kty":"RSA","n":")" + std::string(n) + R"("})";
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(canonical.data(), canonical.size(), digest, &len, EVP_sha256(), nullptr);
    EXPECT_EQ(key.thumbprint(), headachemd::base64url_encode(std::span<const unsigned char>(digest, 32)));
    EXPECT_EQ(key.thumbprint().size(), 43u);
}

}  // namespace
