// The sandbox's private_key_jwt check at POST /token. Assertions are
// crafted here with OpenSSL directly (not with lib/smart), so the server's
// checks are tested on their own: each rejection has its own test, and a
// rejected request consumes nothing (the refresh token still works after).
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "../../../lib/sandbox/src/client_assertion.hpp"
#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
using sbx::test::form;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

std::string b64url(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

std::string bn_bytes(EVP_PKEY* k, const char* name, int width) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(k, name, &bn);
    const int n = width ? width : BN_num_bytes(bn);
    std::string out(static_cast<std::size_t>(n), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), n);
    BN_free(bn);
    return out;
}

// A client key pair made by OpenSSL, with its public JWK.
struct test_key {
    std::shared_ptr<EVP_PKEY> key;
    bool ec = false;
    std::string kid;

    static test_key make(bool ec, std::string kid) {
        EVP_PKEY* k = ec ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")
                         : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
        return {std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free), ec, std::move(kid)};
    }
    std::string jwk() const {
        if (ec)
            return R"({"kty":"EC","crv":"P-384","kid":")" + kid + R"(","x":")" +
                   b64url(bn_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, 48)) + R"(","y":")" +
                   b64url(bn_bytes(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 48)) +
                   R"(","alg":"ES384","use":"sig"})";
        return R"({"kty":"RSA","kid":")" + kid + R"(","n":")" +
               b64url(bn_bytes(key.get(), OSSL_PKEY_PARAM_RSA_N, 0)) + R"(","e":")" +
               b64url(bn_bytes(key.get(), OSSL_PKEY_PARAM_RSA_E, 0)) + R"(","alg":"RS384"})";
    }
    // SHA-384 signature; ES384 as raw R||S (RFC 7518 §3.4) unless der.
    std::string sign(const std::string& input, bool der = false) const {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit(ctx, nullptr, EVP_sha384(), nullptr, key.get());
        std::size_t len = 0;
        EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size());
        std::string sig(len, '\0');
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size());
        sig.resize(len);
        EVP_MD_CTX_free(ctx);
        if (!ec || der) return sig;
        const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        const BIGNUM *r = nullptr, *ss = nullptr;
        ECDSA_SIG_get0(s, &r, &ss);
        std::string raw(96, '\0');
        BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 48);
        BN_bn2binpad(ss, reinterpret_cast<unsigned char*>(raw.data()) + 48, 48);
        ECDSA_SIG_free(s);
        return raw;
    }
};

// What goes into one crafted assertion; each test bends one field.
struct spec {
    std::string alg{};  // default from the key
    std::string kid{};  // default: the key's
    std::string iss{}, sub{}, aud{};
    std::chrono::seconds exp_in{240};
    bool with_exp = true;
    std::string jti = "jti-1";
    bool der_signature = false;
    std::string exp_text{};  // non-empty: the exp value's JSON text as is
};

class jwt_sandbox {
public:
    explicit jwt_sandbox(std::vector<test_key> registered, sbx::options o = {}) {
        std::string jwks = R"({"keys":[)";
        for (std::size_t i = 0; i < registered.size(); ++i) jwks += (i ? "," : "") + registered[i].jwk();
        jwks += "]}";
        o.client_auth = sbx::options::client_auth_kind::private_key_jwt;
        o.client_jwks = jwks;
        s = std::make_unique<running_sandbox>(o);
        c = s->make_client();
    }
    std::unique_ptr<running_sandbox> s;
    std::unique_ptr<sbx::test::client> c;

    std::string client_id() { return s->srv().config().client_id; }
    std::string token_url() { return s->srv().base_url() + "/token"; }

    std::string assertion(const test_key& k, spec sp) {
        const std::int64_t now =
            std::chrono::duration_cast<std::chrono::seconds>(s->clock().now().time_since_epoch()).count();
        if (sp.alg.empty()) sp.alg = k.ec ? "ES384" : "RS384";
        if (sp.kid.empty()) sp.kid = k.kid;
        if (sp.iss.empty()) sp.iss = client_id();
        if (sp.sub.empty()) sp.sub = sp.iss;
        if (sp.aud.empty()) sp.aud = token_url();
        const std::string header = R"({"alg":")" + sp.alg + R"(","typ":"JWT","kid":")" + sp.kid + R"("})";
        std::string claims =
            R"({"iss":")" + sp.iss + R"(","sub":")" + sp.sub + R"(","aud":")" + sp.aud + R"(")";
        if (sp.with_exp)
            claims +=
                ",\"exp\":" + (sp.exp_text.empty() ? std::to_string(now + sp.exp_in.count()) : sp.exp_text);
        claims += ",\"iat\":" + std::to_string(now);
        if (!sp.jti.empty()) claims += R"(,"jti":")" + sp.jti + R"(")";
        claims += "}";
        const std::string input = b64url(header) + "." + b64url(claims);
        return input + "." + b64url(k.sign(input, sp.der_signature));
    }

    reply refresh(const std::string& refresh_token, const std::string& assertion,
                  const std::string& type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return c->post_form("/token", form({{"grant_type", "refresh_token"},
                                            {"refresh_token", refresh_token},
                                            {"client_id", client_id()},
                                            {"client_assertion_type", type},
                                            {"client_assertion", assertion}}));
    }
    std::string new_refresh_token() { return s->srv().issue_refresh_token(s->srv().patient_ids().front()); }
};

std::string description_of(const reply& r) {
    try {
        return std::string(r.json().at("error").as_string()) + ": " +
               std::string(r.json().at("error_description").as_string());
    } catch (...) {
        return "<not an OAuth error: " + r.body + ">";
    }
}

// A refused assertion is 401 invalid_client naming the check, and uses up
// nothing: the same refresh token then works with a good assertion.
void expect_refused(jwt_sandbox& j, const test_key& good, const std::string& bad_assertion,
                    const std::string& check,
                    const std::string& type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
    const std::string rt = j.new_refresh_token();
    const reply r = j.refresh(rt, bad_assertion, type);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_NE(description_of(r).find("invalid_client: "), std::string::npos) << r.body;
    EXPECT_NE(description_of(r).find(check), std::string::npos) << description_of(r);
    static int n = 0;
    const reply ok = j.refresh(rt, j.assertion(good, {.jti = "after-" + std::to_string(++n)}));
    EXPECT_EQ(ok.status, 200) << ok.body;
}

class sandbox_jwt : public ::testing::TestWithParam<bool> {};  // true: ES384

TEST_P(sandbox_jwt, AcceptsAValidAssertionAndRefusesItsReplay) {
    // Setup
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    const std::string rt = j.new_refresh_token();
    const std::string a = j.assertion(key, {.jti = "once"});
    // Run
    const reply first = j.refresh(rt, a);
    ASSERT_EQ(first.status, 200) << first.body;
    const std::string rotated(first.json().at("refresh_token").as_string());
    const reply replay = j.refresh(rotated, a);
    const reply fresh = j.refresh(rotated, j.assertion(key, {.jti = "twice"}));
    // Check
    EXPECT_EQ(replay.status, 401);
    EXPECT_NE(description_of(replay).find("jti was already used"), std::string::npos) << replay.body;
    EXPECT_EQ(fresh.status, 200) << fresh.body;
    const auto st = j.s->srv().stats();
    EXPECT_EQ(st.client_assertions_accepted, 2u);
    EXPECT_EQ(st.client_assertions_rejected, 1u);
}

TEST_P(sandbox_jwt, ExpMoreThanFiveMinutesAheadIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.exp_in = 301s}), "more than 5 minutes ahead");
    // The limit itself is allowed.
    EXPECT_EQ(j.refresh(j.new_refresh_token(), j.assertion(key, {.exp_in = 300s, .jti = "edge"})).status,
              200);
}

TEST_P(sandbox_jwt, ExpiredOrMissingExpIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.exp_in = 0s}), "expired");
    expect_refused(j, key, j.assertion(key, {.with_exp = false, .jti = "j2"}), "no exp");
    expect_refused(j, key, j.assertion(key, {.jti = "j3", .exp_text = "1e300"}), "no exp");
    expect_refused(j, key, j.assertion(key, {.jti = "j4", .exp_text = "\"soon\""}), "no exp");
    expect_refused(j, key, j.assertion(key, {.jti = "j5", .exp_text = "18446744073709551615"}), "no exp");
}

TEST_P(sandbox_jwt, WrongAudIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.aud = j.s->srv().fhir_base()}),
                   "aud must be the token endpoint");
}

TEST_P(sandbox_jwt, UnknownKidIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.kid = "k2"}), "kid \"k2\" is not in the registered JWKS");
}

TEST_P(sandbox_jwt, BadSignatureIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    const auto impostor = test_key::make(GetParam(), "k1");  // same kid, another key
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(impostor, {}), "signature is invalid");
    // A valid assertion with one claim byte changed after signing.
    std::string a = j.assertion(key, {.jti = "tamper"});
    const auto dot = a.find('.');
    a[dot + 3] = a[dot + 3] == 'A' ? 'B' : 'A';
    expect_refused(j, key, a, "");
}

TEST_P(sandbox_jwt, IssNotSubOrNotTheClientIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.sub = "someone-else"}), "sub must equal iss");
    expect_refused(j, key, j.assertion(key, {.iss = "other-client", .jti = "j2"}),
                   "iss must be the client_id");
}

TEST_P(sandbox_jwt, MissingJtiOrWrongAssertionTypeIsRefused) {
    const auto key = test_key::make(GetParam(), "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.jti = ""}), "no jti");
    expect_refused(j, key, j.assertion(key, {.jti = "j3"}), "client_assertion_type must be",
                   "urn:ietf:params:oauth:client-assertion-type:saml2-bearer");
    expect_refused(j, key, "not.a-jws", "");
}

INSTANTIATE_TEST_SUITE_P(algs, sandbox_jwt, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "ES384" : "RS384"; });

TEST(SandboxJwt, Es384SignatureMustBeRawRAndSNotDer) {
    const auto key = test_key::make(true, "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.der_signature = true}), "signature is invalid");
}

TEST(SandboxJwt, AlgMustMatchTheRegisteredKey) {
    const auto key = test_key::make(false, "k1");
    jwt_sandbox j({key});
    expect_refused(j, key, j.assertion(key, {.alg = "ES384"}), "does not match the registered key");
    expect_refused(j, key, j.assertion(key, {.alg = "RS256", .jti = "j2"}), "RS256 is not supported");
    expect_refused(j, key, j.assertion(key, {.alg = "none", .jti = "j3"}), "none is not supported");
}

TEST(SandboxJwt, EclinicalworksModeAcceptsRs384Only) {
    const auto rsa = test_key::make(false, "rsa");
    const auto ec = test_key::make(true, "ec");
    sbx::options o;
    o.ecw_mode = true;
    jwt_sandbox j({rsa, ec}, o);
    expect_refused(j, rsa, j.assertion(ec, {}), "accepts RS384 only");
    const auto conf = j.c->get("/fhir/.well-known/smart-configuration").json();
    const auto& algs = conf.at("token_endpoint_auth_signing_alg_values_supported").as_array();
    ASSERT_EQ(algs.size(), 1u);
    EXPECT_EQ(algs[0].as_string(), "RS384");
}

TEST(SandboxJwt, DiscoveryListsPrivateKeyJwtOnlyWhenAClientIsRegisteredForIt) {
    const auto key = test_key::make(false, "k1");
    jwt_sandbox j({key});
    const auto conf = j.c->get("/fhir/.well-known/smart-configuration").json();
    const auto& methods = conf.at("token_endpoint_auth_methods_supported").as_array();
    EXPECT_NE(std::find(methods.begin(), methods.end(), boost::json::value("private_key_jwt")),
              methods.end());
    EXPECT_EQ(conf.at("token_endpoint_auth_signing_alg_values_supported").as_array().size(), 2u);

    running_sandbox plain;
    const auto plain_conf = plain.make_client()->get("/fhir/.well-known/smart-configuration").json();
    const auto& plain_methods = plain_conf.at("token_endpoint_auth_methods_supported").as_array();
    EXPECT_EQ(std::find(plain_methods.begin(), plain_methods.end(), boost::json::value("private_key_jwt")),
              plain_methods.end());
    EXPECT_FALSE(plain_conf.as_object().contains("token_endpoint_auth_signing_alg_values_supported"));
}

TEST(SandboxJwt, ASecretIsRefusedForAKeyClientAndAnAssertionForASecretClient) {
    const auto key = test_key::make(false, "k1");
    jwt_sandbox j({key});
    const std::string rt = j.new_refresh_token();
    const reply basic =
        j.c->post_form("/token", form({{"grant_type", "refresh_token"}, {"refresh_token", rt}}),
                       {{"Authorization", sbx::test::basic_auth(j.client_id(), "guess")}});
    EXPECT_EQ(basic.status, 401) << basic.body;
    const reply post = j.c->post_form("/token", form({{"grant_type", "refresh_token"},
                                                      {"refresh_token", rt},
                                                      {"client_id", j.client_id()},
                                                      {"client_secret", "guess"}}));
    EXPECT_EQ(post.status, 401) << post.body;

    running_sandbox plain;
    auto c = plain.make_client();
    const reply r = c->post_form(
        "/token", form({{"grant_type", "refresh_token"},
                        {"refresh_token", plain.srv().issue_refresh_token(plain.srv().patient_ids().front())},
                        {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
                        {"client_assertion", "x.y.z"}}));
    EXPECT_EQ(r.status, 401) << r.body;
}

TEST(SandboxJwt, AMalformedJwksIsRefusedAtConstruction) {
    sbx::options o;
    o.client_auth = sbx::options::client_auth_kind::private_key_jwt;
    o.client_jwks = R"({"keys":[{"kty":"oct","kid":"x","k":"AAAA"}]})";
    boost::asio::io_context io;
    EXPECT_THROW({ sbx::server srv(io, o); }, std::invalid_argument);
    o.client_jwks = "not json";
    EXPECT_THROW({ sbx::server srv(io, o); }, std::invalid_argument);
}

// Known-answer vectors: the example assertions of SMART App Launch 2.x
// ("Example JWS generation for Asymmetric Client Auth", made with
// python-jose) and the public halves of their example keys. A signer other
// than ours produced them, so they pin the verifier (RS384 PKCS#1 v1.5, and
// ES384 as raw R||S) to the spec rather than to our own client.
constexpr const char* spec_jwks = R"({"keys":[
  {"kty":"RSA","alg":"RS384","kid":"eee9f17a3b598fd86417a980b591fbe6","e":"AQAB",
   "n":"wJq2RHIA-7RT6q4go7wjcbHdW7ck7Kz22A8wf-kN7Wi5CWvhFG2_Y7nQp1lDpb2IKMQr-Q4n_vgJ6d5rWPspJpSPY7iffUK4ipQCEbzID5DJ6fQMBZOfCTXyxkuMh3jYGKEF3Ziw2oxbM1H9j-eJAPtrj5stUG6kVoXowegdox-bSjWP0iI5PnkwUNzcekLMug4M3LRluEQgGR9O_BAML6-w3igZ_rZA_gunyrLAMbfmCVaceW5ohLp679kyM7U6W2gDK_NbkDKcINUakVmPeoG5h8RzgGzvGrySR0k0VDFiZv60Ua07DqHTeDGH9e4NV07AECae-oykIj5NDCs3pw"},
  {"kty":"EC","crv":"P-384","alg":"ES384","kid":"cd520211e5661dbba2256f67f6d53f97",
   "x":"pyqburM9y8HPcFhNosDW6ngoVEJitqXi_HJgI5hYqX21PoFDwCbYirGy_o0oapIU",
   "y":"95bxkCnMKoHvgbcPAIAcgzzu8scd81mXfM_IzuJFNfkUNkGYBFGvuEU1KPi5j1ob"}]})";
constexpr const char* spec_claims =
    "eyJpc3MiOiJodHRwczovL2JpbGktbW9uaXRvci5leGFtcGxlLmNvbSIsInN1YiI6Imh0dHBzOi8vYmlsaS1tb25pdG9yLmV4YW1wbGUu"
    "Y29t"
    "IiwiYXVkIjoiaHR0cHM6Ly9hdXRob3JpemUuc21hcnRoZWFsdGhpdC5vcmcvdG9rZW4iLCJleHAiOjE0MjI1Njg4NjAsImp0aSI6InJh"
    "bmRv"
    "bS1ub24tcmV1c2FibGUtand0LWlkLTEyMyJ9";
const std::string spec_rs384 =
    std::string(
        "eyJhbGciOiJSUzM4NCIsImtpZCI6ImVlZTlmMTdhM2I1OThmZDg2NDE3YTk4MGI1OTFmYmU2IiwidHlwIjoiSldUIn0.") +
    spec_claims +
    ".D5kAqNJwaftCqsRdVVQDq6dMBxuGFOF5svQJuXbcYp-oEyg5qOwK9ZE5cGLTHxqwfpUPNzRKgVdIGuhawAA-"
    "8g0s1nKQae8CuKs33hhKh4J34xSEwW"
    "3MYs1gwI4GHTtR_g3kYSX6QCi14Ed3GIAvYFgqRqt-gD7sewMUXL4SB8I8cXcDbCqVizm7uPVhjw6QaeKZygJJ_"
    "AVLhM4Xs9LTy4HAhdCHpN0FrNm"
    "CerUIYJvHDpcod7A0jDmxdoeW1KIBYlhdhQNwjtsTvT1ce4qacN_3KIv_"
    "fIzCKLIgDv9eWxkjAtxOmIm8aW5gX9xX7X0nbd0QglIyiic_bZVNNEh0kg";
const std::string spec_es384 =
    std::string(
        "eyJhbGciOiJFUzM4NCIsImtpZCI6ImNkNTIwMjExZTU2NjFkYmJhMjI1NmY2N2Y2ZDUzZjk3IiwidHlwIjoiSldUIn0.") +
    spec_claims +
    ".ddl5N8dt5PYI_7syKg_dm1wj1LR3dYVztFlTODs6pU1vKH1Zv3d9NctbnAsZ4aZ1K7HE83_fA_"
    "hIAL0JsU1GoB7roLmrpj8zfygG9Q1ZBAmKNoR60"
    "pyONPZsGTihoR29";

TEST(SandboxJwt, SmartSpecExampleAssertionsVerify) {
    namespace d = sbx::detail;
    const std::string client = "https://bili-monitor.example.com";
    const std::string token_url = "https://authorize.smarthealthit.org/token";
    const auto before_exp = std::chrono::system_clock::time_point{std::chrono::seconds{1422568860 - 60}};
    for (const auto* jws : {&spec_rs384, &spec_es384}) {
        d::assertion_verifier v(d::parse_jwks(spec_jwks), false);
        EXPECT_EQ(v.verify(*jws, client, token_url, before_exp), std::nullopt);
        // The same vector: a replay, then the checks that depend on context.
        EXPECT_NE(v.verify(*jws, client, token_url, before_exp).value_or("").find("jti was already used"),
                  std::string::npos);
        d::assertion_verifier fresh(d::parse_jwks(spec_jwks), false);
        EXPECT_NE(
            fresh.verify(*jws, client, "https://other.example/token", before_exp).value_or("").find("aud"),
            std::string::npos);
        EXPECT_NE(fresh.verify(*jws, client, token_url, before_exp + 120s).value_or("").find("expired"),
                  std::string::npos);
        EXPECT_NE(fresh.verify(*jws, "another-client", token_url, before_exp).value_or("").find("iss"),
                  std::string::npos);
        // One signature byte changed.
        std::string bent = *jws;
        bent[bent.size() - 5] = bent[bent.size() - 5] == 'A' ? 'B' : 'A';
        EXPECT_NE(fresh.verify(bent, client, token_url, before_exp).value_or("").find("signature"),
                  std::string::npos);
    }
    // eClinicalWorks mode: the ES384 vector is refused, the RS384 one passes.
    d::assertion_verifier ecw(d::parse_jwks(spec_jwks), true);
    EXPECT_NE(ecw.verify(spec_es384, client, token_url, before_exp).value_or("").find("RS384 only"),
              std::string::npos);
    EXPECT_EQ(ecw.verify(spec_rs384, client, token_url, before_exp), std::nullopt);
}

}  // namespace
