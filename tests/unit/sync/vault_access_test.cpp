// How commands open vault.db (sync::try_open_configured_vault) and the
// `rekey` workflow (sync::rekey_vault): typed failures as values, the
// refusal of the key already in use, and the audit row written with the
// re-sealing. The lock taken by another process (vault_busy) needs two
// processes: tests/integration/vault_cli_test.cpp covers it.
#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include "headachemd/config/config.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/vault_access.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;

// A vault with one sealed row (the pseudonymization key) under dir/token.key.
headachemd::config::daemon_settings sealed_vault(const temp_dir& dir) {
    headachemd::config::daemon_settings d;
    d.vault = dir / "vault.db";
    d.token_key_file = dir / "token.key";
    st::write_new_token_key(*d.token_key_file);
    st::vault v(d.vault, st::load_token_key(*d.token_key_file));
    v.pseudonymization_key();
    return d;
}

std::chrono::system_clock::time_point fixed_now() {
    return std::chrono::sys_days{std::chrono::year{2026} / 12 / 5} + std::chrono::hours{21};
}

TEST(VaultAccess, OpensWithTheConfiguredKey) {
    temp_dir dir;
    const auto d = sealed_vault(dir);
    const auto opened = sy::try_open_configured_vault(d);
    ASSERT_TRUE(opened.vault);
    EXPECT_TRUE(opened.message.empty());
}

TEST(VaultAccess, AMissingOrWrongKeyIsAKeyFailure) {
    // Setup
    temp_dir dir;
    auto d = sealed_vault(dir);
    st::write_new_token_key(dir / "other.key");
    for (const fs::path& key : {dir / "missing.key", dir / "other.key"}) {
        d.token_key_file = key;
        // Run
        const auto opened = sy::try_open_configured_vault(d);
        // Check
        EXPECT_FALSE(opened.vault) << key;
        EXPECT_EQ(opened.failure, sy::vault_failure::key) << key;
        EXPECT_FALSE(opened.message.empty()) << key;
    }
}

TEST(VaultAccess, AVaultThatCannotBeCreatedIsAStoreFailure) {
    temp_dir dir;
    auto d = sealed_vault(dir);
    d.vault = dir / "missing" / "vault.db";
    const auto opened = sy::try_open_configured_vault(d);
    EXPECT_FALSE(opened.vault);
    EXPECT_EQ(opened.failure, sy::vault_failure::store);
    EXPECT_FALSE(opened.message.empty());
}

TEST(Rekey, ReSealsUnderTheNewKeyAndAuditsItInTheSameStep) {
    // Setup
    temp_dir dir;
    const auto d = sealed_vault(dir);
    const auto old_key = st::load_token_key(*d.token_key_file);
    const auto new_key = st::write_new_token_key(dir / "new.key");
    // Run
    const auto r = sy::rekey_vault(d, dir / "new.key", fixed_now);
    // Check
    EXPECT_FALSE(r.same_key);
    EXPECT_EQ(r.old_id, old_key.id());
    EXPECT_EQ(r.new_id, new_key.id());
    EXPECT_GE(r.resealed, 1u);
    EXPECT_THROW(st::vault(d.vault, old_key), st::key_error);
    st::vault reopened(d.vault, new_key);
    const auto events = st::query_audit(reopened, {});
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].action, st::audit_action::rekey);
    EXPECT_EQ(events[0].time, "2026-12-05T21:00:00Z");
    EXPECT_EQ(events[0].outcome, "ok");
    EXPECT_EQ(events[0].count, static_cast<int>(r.resealed));
    EXPECT_TRUE(events[0].patient_key.empty());
}

TEST(Rekey, TheKeyAlreadyInUseChangesNothing) {
    temp_dir dir;
    const auto d = sealed_vault(dir);
    const auto r = sy::rekey_vault(d, *d.token_key_file, fixed_now);
    EXPECT_TRUE(r.same_key);
    EXPECT_EQ(r.old_id, r.new_id);
    EXPECT_EQ(r.resealed, 0u);
    st::vault reopened(d.vault, st::load_token_key(*d.token_key_file));
    EXPECT_TRUE(st::query_audit(reopened, {}).empty());
}

TEST(Rekey, AWrongCurrentKeyOrAMissingNewKeyIsAKeyErrorAndChangesNothing) {
    temp_dir dir;
    auto d = sealed_vault(dir);
    const auto current = st::load_token_key(*d.token_key_file);
    EXPECT_THROW(sy::rekey_vault(d, dir / "missing.key", fixed_now), st::key_error);
    st::write_new_token_key(dir / "other.key");
    d.token_key_file = dir / "other.key";
    EXPECT_THROW(sy::rekey_vault(d, dir / "other.key", fixed_now), st::key_error);
    st::vault reopened(d.vault, current);
    EXPECT_TRUE(st::query_audit(reopened, {}).empty());
}

}  // namespace
