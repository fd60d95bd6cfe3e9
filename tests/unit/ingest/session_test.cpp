// ingest::open_session: what `ingest` opens before its first batch, and
// which typed error says why it could not (the daemon maps key_error to
// EX_CONFIG 78 and any other store_error to EX_CANTCREAT 73).
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "headachemd/ingest/session.hpp"
#include "headachemd/store/token_key.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace in = headachemd::ingest;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

std::shared_ptr<spdlog::logger> quiet_log() {
    return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

TEST(IngestSession, TheVaultDefaultsToVaultDbBesideTheDatabase) {
    EXPECT_EQ(in::vault_path_of({"/var/lib/headachemd/headache.db", {}, {}}),
              fs::path("/var/lib/headachemd/vault.db"));
    EXPECT_EQ(in::vault_path_of({"headache.db", {}, {}}), fs::path("vault.db"));
    EXPECT_EQ(in::vault_path_of({"/a/headache.db", "/b/v.db", {}}), fs::path("/b/v.db"));
}

TEST(IngestSession, OpensTheVaultBesideTheDatabaseAndBindsItsKey) {
    // Setup
    temp_dir dir;
    st::write_new_token_key(dir / "token.key");
    // Run
    auto s = in::open_session({dir / "headache.db", {}, dir / "token.key"}, {}, quiet_log());
    // Check
    ASSERT_TRUE(s.vault && s.db && s.loader);
    EXPECT_TRUE(fs::exists(dir / "vault.db"));
    EXPECT_TRUE(s.db->has_pseudonym_fingerprint(st::fingerprint(s.vault->pseudonymization_key())));
    EXPECT_EQ(s.loader->result().files, 0u);
}

TEST(IngestSession, AWrongTokenKeyIsAKeyErrorAndCreatesNoDatabase) {
    // Setup: a vault sealed under one key, then a second key.
    temp_dir dir;
    st::write_new_token_key(dir / "token.key");
    st::write_new_token_key(dir / "other.key");
    {
        st::vault sealed(dir / "vault.db", st::load_token_key(dir / "token.key"));
        sealed.pseudonymization_key();  // one sealed row for the wrong key to fail on
    }
    // Run / Check
    EXPECT_THROW(
        in::open_session({dir / "headache.db", dir / "vault.db", dir / "other.key"}, {}, quiet_log()),
        st::key_error);
    EXPECT_FALSE(fs::exists(dir / "headache.db"));
}

TEST(IngestSession, AMissingTokenKeyFileIsAKeyError) {
    temp_dir dir;
    EXPECT_THROW(in::open_session({dir / "headache.db", {}, dir / "missing.key"}, {}, quiet_log()),
                 st::key_error);
    EXPECT_FALSE(fs::exists(dir / "headache.db"));
}

TEST(IngestSession, ADatabaseThatCannotBeCreatedIsAStoreError) {
    // Setup: headache.db in a directory that does not exist.
    temp_dir dir;
    st::write_new_token_key(dir / "token.key");
    // Run / Check
    try {
        in::open_session({dir / "missing" / "headache.db", dir / "vault.db", dir / "token.key"}, {},
                         quiet_log());
        FAIL() << "expected a store_error";
    } catch (const st::key_error&) {
        FAIL() << "not a key problem";
    } catch (const st::store_error&) {
    }
}

}  // namespace
