// The one audited path that stores a new enrollment's token
// (sync::store_enrollment), its two callers' use of it (the token import
// and complete_enrollment), over a real vault in a temporary directory and
// a scripted token endpoint (no sockets).
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "code_exchange_endpoint.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/enroll.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace http = headachemd::http;
namespace store = headachemd::store;
namespace sy = headachemd::sync;

using strings = std::vector<std::string>;

struct vault_fixture {
    headachemd::test::temp_dir dir;
    store::vault vault{dir / "vault.db", headachemd::test::token_key_in(dir.path())};
    const std::chrono::system_clock::time_point now = std::chrono::system_clock::now();

    strings audit() {
        strings out;
        for (const auto& e : store::query_audit(vault, {}))
            out.push_back(e.action + ":" + e.outcome + ":" + e.patient_key + "@" + e.ehr);
        return out;
    }
};

store::enrollment enrollment(const std::string& token = "rt-0123456789") {
    return {"hmd-1", "clinic", "p1", token, "patient/*.read", "2026-01-01T00:00:00Z", false};
}

TEST(StoreEnrollment, StoresTheTokenThenAuditsTheCallersEventsAndEnroll) {
    vault_fixture f;
    std::vector<store::audit_event> before{store::enrollment_event("2026-01-01T00:00:00Z", "hmd-1", "clinic",
                                                                   store::audit_action::token_exchange)};
    const auto r = sy::store_enrollment(f.vault, enrollment(), before, f.now);
    EXPECT_TRUE(r.stored);
    EXPECT_TRUE(r.store_error.empty());
    EXPECT_TRUE(r.audit_error.empty());
    const auto stored = f.vault.find_enrollment("hmd-1", "clinic");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->refresh_token, "rt-0123456789");
    EXPECT_EQ(stored->fhir_patient_id, "p1");
    EXPECT_EQ(f.audit(), (strings{"token.exchange:ok:hmd-1@clinic", "enroll:ok:hmd-1@clinic"}));
}

TEST(StoreEnrollment, AVaultThatRefusesTheRowAuditsNothingAndSaysWhy) {
    vault_fixture f;
    f.vault.sql().exec("DROP TABLE enrollment");
    const auto r = sy::store_enrollment(f.vault, enrollment(), {}, f.now);
    EXPECT_FALSE(r.stored);
    EXPECT_FALSE(r.store_error.empty());
    EXPECT_TRUE(f.audit().empty());  // no `enroll` for what was not stored
}

TEST(StoreEnrollment, AnAuditLogThatFailsLeavesTheEnrollmentAndSaysSo) {
    vault_fixture f;
    f.vault.sql().exec("DROP TABLE audit_event");
    const auto r = sy::store_enrollment(f.vault, enrollment(), {}, f.now);
    EXPECT_TRUE(r.stored);
    EXPECT_FALSE(r.audit_error.empty());
    EXPECT_TRUE(f.vault.find_enrollment("hmd-1", "clinic"));
}

TEST(ImportRefreshToken, TrimsTheLineEndAndStoresWithAnEnrollEvent) {
    vault_fixture f;
    const cfg::patient_settings patient{"hmd-1", "clinic", "p1"};
    const auto r = sy::import_refresh_token(f.vault, patient, "rt-imported-42\r\n", "", f.now);
    EXPECT_EQ(r.status, sy::import_status::imported);
    const auto stored = f.vault.find_enrollment("hmd-1", "clinic");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->refresh_token, "rt-imported-42");
    EXPECT_EQ(stored->fhir_patient_id, "p1");
    EXPECT_EQ(stored->scope, "");  // the web app does not say what was granted
    EXPECT_EQ(f.audit(), (strings{"enroll:ok:hmd-1@clinic"}));
}

TEST(ImportRefreshToken, RefusesWhatIsNotOneTokenOrHasNoPatientId) {
    vault_fixture f;
    const cfg::patient_settings pinned{"hmd-1", "clinic", "p1"};
    EXPECT_EQ(sy::import_refresh_token(f.vault, pinned, " \n", "", f.now).status,
              sy::import_status::not_a_token);
    EXPECT_EQ(sy::import_refresh_token(f.vault, pinned, "rt-1 rt-2\n", "", f.now).status,
              sy::import_status::not_a_token);
    const cfg::patient_settings unpinned{"hmd-2", "clinic", std::nullopt};
    EXPECT_EQ(sy::import_refresh_token(f.vault, unpinned, "rt-1", "", f.now).status,
              sy::import_status::no_patient_id);
    EXPECT_TRUE(f.vault.enrollments().empty());
    EXPECT_TRUE(f.audit().empty());
    // --fhir-patient-id wins over the config.
    EXPECT_EQ(sy::import_refresh_token(f.vault, unpinned, "rt-1", "p9", f.now).status,
              sy::import_status::imported);
    EXPECT_EQ(f.vault.find_enrollment("hmd-2", "clinic")->fhir_patient_id, "p9");
}

// Every code is good for a refresh token of patient p1.
using token_endpoint = headachemd::test::code_exchange_endpoint;

struct completion : vault_fixture {
    cfg::config config;
    token_endpoint t;

    completion() {
        cfg::ehr_settings e;
        e.name = "clinic";
        e.fhir_base = "https://ehr.test/fhir";
        e.client_id = "app";
        e.client_auth = cfg::client_auth_method::none;
        config.ehrs.push_back(e);
        config.patients.push_back({"hmd-1", "clinic", std::nullopt});
        store::pending_enrollment p;
        p.state_hash = store::state_hash("state-1");
        p.patient_key = "hmd-1";
        p.ehr = "clinic";
        p.code_verifier = "verifier";
        p.redirect_uri = "https://app.test/callback";
        p.scope = "launch/patient offline_access patient/*.read";
        p.token_endpoint = "https://ehr.test/token";
        p.created_at = store::utc_timestamp(now);
        p.expires_at =
            std::chrono::duration_cast<std::chrono::seconds>((now + sy::pending_lifetime).time_since_epoch())
                .count();
        store::pending_enrollments(vault).put(p);
    }
    sy::enrollment_outcome run() {
        asio::io_context io;
        sy::enrollment_outcome out;
        headachemd::smart::callback_params cb;
        cb.code = "code-1";
        cb.state = "state-1";
        auto go = [&]() -> asio::awaitable<void> {
            out = co_await sy::complete_enrollment(t, config, vault, cb, now);
        };
        asio::co_spawn(io, go, [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        io.run();
        return out;
    }
};

TEST(CompleteEnrollment, StoresThroughTheAuditedPath) {
    completion f;
    const auto o = f.run();
    EXPECT_TRUE(o.ok) << o.headline << ": " << o.explanation;
    ASSERT_TRUE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(f.vault.find_enrollment("hmd-1", "clinic")->refresh_token, "rt-from-code");
    EXPECT_EQ(store::pending_enrollments(f.vault).count_for("hmd-1", "clinic"), 0);
    EXPECT_EQ(f.audit(), (strings{"token.exchange:ok:hmd-1@clinic", "enroll:ok:hmd-1@clinic"}));
}

TEST(CompleteEnrollment, AVaultThatRefusesTheTokenIsARefusalWithTheExchangeAudited) {
    completion f;
    f.vault.sql().exec("DROP TABLE enrollment");
    const auto o = f.run();
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.error_kind, "store_failed");
    EXPECT_EQ(o.patient_key, "hmd-1");
    // The code was spent at the EHR: that call is on record, whole, with the refusal.
    EXPECT_EQ(f.audit(),
              (strings{"token.exchange:ok:hmd-1@clinic", "enroll.refused:store_failed:hmd-1@clinic"}));
}

}  // namespace
