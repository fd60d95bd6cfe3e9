// The backend keys' JWK Set (sync/backend_jwks.hpp): read once from the
// [ehr.bulk] key files, current and next, public members only.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/sync/backend_jwks.hpp"
#include "test_support.hpp"

namespace {

namespace cf = headachemd::config;
namespace smart = headachemd::smart;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;

// An [[ehr]] with [ehr.bulk] as config::load leaves it.
cf::ehr_settings bulk_ehr(const std::string& name, const std::filesystem::path& key, const std::string& kid,
                          cf::bulk_algorithm alg = cf::bulk_algorithm::rs384) {
    cf::ehr_settings e;
    e.name = name;
    cf::bulk_settings b;
    b.client_id = "backend-" + name;
    b.private_key_file = key;
    b.key_id = kid;
    b.algorithm = alg;
    e.bulk = b;
    return e;
}

// A new key written as keygen writes it (PKCS#8 PEM, mode 0600).
smart::signing_key new_key_file(const std::filesystem::path& p, smart::jws_alg alg) {
    auto key = smart::signing_key::generate(alg, 2048);
    headachemd::test::write_file(p, key.private_pem());
    return key;
}

TEST(BackendJwks, PublishesEveryCurrentAndNextKeyOnceWithPublicMembersOnly) {
    // Setup: "ecw" rotating from one RSA key to another; "epic" registered
    // with ecw's current key pair under the same kid (one key, published once).
    temp_dir dir;
    const auto current = new_key_file(dir / "current.pem", smart::jws_alg::rs384);
    const auto next = new_key_file(dir / "next.pem", smart::jws_alg::rs384);
    cf::config cfg;
    cfg.ehrs.push_back(bulk_ehr("ecw", dir / "current.pem", "k-2026"));
    cfg.ehrs[0].bulk->next_key = cf::next_bulk_key{dir / "next.pem", "k-2027"};
    cfg.ehrs.push_back(bulk_ehr("epic", dir / "current.pem", "k-2026"));
    cfg.ehrs.push_back(cf::ehr_settings{});  // per patient only: no key

    // Run
    const auto jwks = sy::load_backend_jwks(cfg);

    // Check: two keys, current first, each what keygen --jwks prints for it.
    ASSERT_TRUE(jwks) << jwks.err().message;
    EXPECT_EQ(jwks->keys, 2u);
    const std::vector<smart::published_key> expected{{&current, "k-2026"}, {&next, "k-2027"}};
    EXPECT_EQ(jwks->body, smart::public_jwk_set(expected));
    EXPECT_EQ(jwks->body.find(current.private_pem()), std::string::npos);
    for (const char* priv : {"\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""})
        EXPECT_EQ(jwks->body.find(priv), std::string::npos) << priv << " in " << jwks->body;
}

TEST(BackendJwks, NoBulkKeyMeansAnEmptySet) {
    cf::config cfg;
    cfg.ehrs.push_back(cf::ehr_settings{});
    const auto jwks = sy::load_backend_jwks(cfg);
    ASSERT_TRUE(jwks);
    EXPECT_EQ(jwks->keys, 0u);
    EXPECT_TRUE(jwks->body.empty());
}

TEST(BackendJwks, ANextKeyOfTheWrongTypeOrMissingIsAnErrorNamingItsFile) {
    // Setup: RS384 configured; the next key is EC P-384.
    temp_dir dir;
    (void)new_key_file(dir / "current.pem", smart::jws_alg::rs384);
    (void)new_key_file(dir / "next-ec.pem", smart::jws_alg::es384);
    cf::config cfg;
    cfg.ehrs.push_back(bulk_ehr("ecw", dir / "current.pem", "k-2026"));
    cfg.ehrs[0].bulk->next_key = cf::next_bulk_key{dir / "next-ec.pem", "k-2027"};
    cf::config missing = cfg;
    missing.ehrs[0].bulk->next_key->private_key_file = dir / "absent.pem";

    // Run
    const auto wrong = sy::load_backend_jwks(cfg);
    const auto absent = sy::load_backend_jwks(missing);

    // Check
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.err().code, headachemd::errc::bad_key);
    const std::string& m = wrong.err().message;
    EXPECT_EQ(m.find("[[ehr]] \"ecw\" [ehr.bulk]: the private key file " + (dir / "next-ec.pem").string() +
                     " signs ES384, but algorithm = \"RS384\""),
              0u)
        << m;
    ASSERT_FALSE(absent);
    EXPECT_NE(absent.err().message.find((dir / "absent.pem").string()), std::string::npos)
        << absent.err().message;
}

}  // namespace
