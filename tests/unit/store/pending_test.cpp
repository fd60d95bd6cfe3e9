// Pending browser enrollments in the vault: one redirect per state.
#include <gtest/gtest.h>

#include "headachemd/store/pending.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace st = headachemd::store;

st::pending_enrollment row(std::string state, std::int64_t expires_at) {
    st::pending_enrollment p;
    p.state_hash = st::state_hash(state);
    p.patient_key = "hmd-1";
    p.ehr = "ecw";
    p.code_verifier = "verifier-verifier-verifier-verifier-verifier";
    p.redirect_uri = "https://clinic.example/cb";
    p.scope = "launch/patient openid fhirUser offline_access";
    p.token_endpoint = "https://ehr.example/token";
    p.created_at = "2026-11-28T00:00:00Z";
    p.expires_at = expires_at;
    return p;
}

TEST(PendingEnrollments, AStateIsTakenOnceAndOnlyItsHashIsStored) {
    headachemd::test::temp_dir dir;
    st::vault v(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
    st::pending_enrollments pending(v);
    pending.put(row("the-state", 1000));
    auto first = pending.take(st::state_hash("the-state"));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->patient_key, "hmd-1");
    EXPECT_EQ(first->code_verifier, "verifier-verifier-verifier-verifier-verifier");
    EXPECT_EQ(first->expires_at, 1000);
    EXPECT_FALSE(pending.take(st::state_hash("the-state")));
    EXPECT_FALSE(pending.take(st::state_hash("another")));
}

TEST(PendingEnrollments, TheStateItselfIsNeverWritten) {
    headachemd::test::temp_dir dir;
    {
        st::vault v(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        st::pending_enrollments(v).put(row("state-value-that-must-not-be-on-disk", 1000));
    }
    const auto bytes =
        headachemd::test::read_file(dir / "vault.db") + headachemd::test::read_file(dir / "vault.db-wal");
    EXPECT_EQ(bytes.find("state-value-that-must-not-be-on-disk"), std::string::npos);
    EXPECT_NE(bytes.find(st::state_hash("state-value-that-must-not-be-on-disk")), std::string::npos);
    // The verifier is sealed like the tokens.
    EXPECT_EQ(bytes.find("verifier-verifier"), std::string::npos);
}

TEST(PendingEnrollments, ExpiredRowsArePurged) {
    headachemd::test::temp_dir dir;
    st::vault v(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
    st::pending_enrollments pending(v);
    pending.put(row("old", 100));
    pending.put(row("new", 900));
    EXPECT_EQ(pending.purge_expired(500), 1);
    EXPECT_FALSE(pending.take(st::state_hash("old")));
    EXPECT_TRUE(pending.take(st::state_hash("new")));
}

TEST(StateHash, IsHexSha256) {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    EXPECT_EQ(st::state_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
