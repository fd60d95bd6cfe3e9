// revoke_refresh_token against a scripted transport (no sockets): where the
// refresh token may go, and what each answer means; then the whole
// unenroll workflow (revoke → purge → remove) over real vault and
// headache.db files in a temporary directory.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/unenroll.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace http = headachemd::http;
namespace sy = headachemd::sync;

constexpr const char* token_value = "rt-secret-0123456789";

// Answers by exact URL; records every request. An unknown URL is a 404.
struct scripted final : http::transport {
    std::map<std::string, headachemd::result<http::response>> answers;
    std::vector<http::request> seen;

    asio::awaitable<headachemd::result<http::response>> send(http::request req) override {
        seen.push_back(req);
        const auto it = answers.find(req.url);
        if (it == answers.end()) co_return http::response{404, {}, ""};
        co_return it->second;
    }

    void well_known(const std::string& json) {
        answers.insert_or_assign("https://ehr.test/fhir/.well-known/smart-configuration",
                                 http::response{200, {}, json});
    }
    bool token_was_sent() const {
        for (const auto& r : seen)
            if (r.body.find(token_value) != std::string::npos) return true;
        return false;
    }
};

cfg::ehr_settings ehr() {
    cfg::ehr_settings e;
    e.name = "clinic";
    e.fhir_base = "https://ehr.test/fhir";
    e.client_id = "app";
    return e;
}

sy::revocation_outcome run(scripted& t, const cfg::ehr_settings& e = ehr()) {
    asio::io_context io;
    sy::revocation_outcome out;
    const headachemd::smart::client_credentials creds{"app", "s3cret",
                                                      headachemd::smart::client_auth::client_secret_basic};
    auto go = [&]() -> asio::awaitable<void> {
        out = co_await sy::revoke_refresh_token(t, e, creds, token_value, std::chrono::system_clock::now());
    };
    asio::co_spawn(io, go, [](std::exception_ptr ep) {
        if (ep) std::rethrow_exception(ep);
    });
    io.run();
    return out;
}

constexpr const char* endpoints =
    R"({"authorization_endpoint":"https://auth.ehr.test/authorize","token_endpoint":"https://auth.ehr.test/token",)";

TEST(Revocation, PostsTheTokenToTheAdvertisedEndpointWithClientAuth) {
    scripted t;
    t.well_known(std::string(endpoints) + R"("revocation_endpoint":"https://auth.ehr.test/revoke"})");
    t.answers.insert_or_assign("https://auth.ehr.test/revoke", http::response{200, {}, ""});
    const auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::revoked);
    ASSERT_EQ(t.seen.size(), 2u);
    const auto& post = t.seen.back();
    EXPECT_EQ(post.method, boost::beast::http::verb::post);
    EXPECT_EQ(post.url, "https://auth.ehr.test/revoke");
    EXPECT_EQ(post.body, std::string("token=") + token_value + "&token_type_hint=refresh_token");
    bool basic = false;
    for (const auto& h : post.headers)
        basic = basic || (h.name == "Authorization" && h.value.rfind("Basic ", 0) == 0);
    EXPECT_TRUE(basic);
}

TEST(Revocation, AnEndpointOnAnotherOriginThanTheTokenEndpointNeverSeesTheToken) {
    scripted t;
    t.well_known(std::string(endpoints) + R"("revocation_endpoint":"https://collector.example/revoke"})");
    t.answers.insert_or_assign("https://collector.example/revoke", http::response{200, {}, ""});
    const auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(to_string(out.failure->code), "foreign_origin");
    EXPECT_FALSE(t.token_was_sent());
    EXPECT_EQ(out.failure->message.find(token_value), std::string::npos);
}

TEST(Revocation, NoEndpointAdvertisedIsSaidSoAndNothingIsPosted) {
    scripted t;
    t.well_known(std::string(endpoints) + R"("capabilities":[]})");
    const auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::no_endpoint);
    EXPECT_FALSE(t.token_was_sent());
}

TEST(Revocation, A503OrANetworkFailureIsAFailureWithoutTheToken) {
    scripted t;
    t.well_known(std::string(endpoints) + R"("revocation_endpoint":"https://auth.ehr.test/revoke"})");
    t.answers.insert_or_assign("https://auth.ehr.test/revoke", http::response{503, {}, "busy"});
    auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(to_string(out.failure->code), "http_503");
    EXPECT_EQ(out.failure->message.find(token_value), std::string::npos);

    t.answers.insert_or_assign(
        "https://auth.ehr.test/revoke",
        headachemd::error{headachemd::errc::timeout, "POST https://auth.ehr.test/revoke: timed out"});
    out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(to_string(out.failure->code), "timeout");
}

TEST(Revocation, TheConfiguredEndpointWinsAndNeedsNoDiscovery) {
    scripted t;
    t.answers.insert_or_assign("https://auth.ehr.test/oauth/revoke", http::response{200, {}, ""});
    auto e = ehr();
    e.token_endpoint = "https://auth.ehr.test/oauth/token";
    e.revocation_endpoint = "https://auth.ehr.test/oauth/revoke";
    const auto out = run(t, e);
    EXPECT_EQ(out.status, sy::revocation_status::revoked);
    ASSERT_EQ(t.seen.size(), 1u);
    EXPECT_EQ(t.seen[0].url, "https://auth.ehr.test/oauth/revoke");
    // The origin rule holds for a configured endpoint too.
    scripted t2;
    e.revocation_endpoint = "https://elsewhere.test/revoke";
    EXPECT_EQ(to_string(run(t2, e).failure->code), "foreign_origin");
    EXPECT_FALSE(t2.token_was_sent());
}

TEST(Revocation, DiscoveryThatFailsIsAFailureNotANoEndpoint) {
    // Without discovery we cannot know there is no endpoint: deleting the
    // token here could strand a live grant, so this is a failure.
    scripted t;
    const auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(to_string(out.failure->code), "discovery_failed");
    EXPECT_FALSE(t.token_was_sent());
}

// The unenroll workflow: one patient enrolled at "clinic" (whose token
// endpoint is configured, so revocation needs no discovery), over real files.
namespace store = headachemd::store;

struct unenroll_fixture {
    headachemd::test::temp_dir dir;
    cfg::config config;
    store::vault vault{dir / "vault.db", headachemd::test::token_key_in(dir.path())};
    scripted t;

    unenroll_fixture() {
        auto e = ehr();
        e.token_endpoint = "https://auth.ehr.test/token";
        e.revocation_endpoint = "https://auth.ehr.test/revoke";
        e.client_auth = cfg::client_auth_method::none;  // no secret file to read
        config.ehrs.push_back(e);
        config.file = dir / "sync.toml";
        config.daemon.vault = dir / "vault.db";
        config.daemon.database = dir / "headache.db";
        config.patients.push_back({"hmd-1", "clinic", "p1"});
    }
    void enroll() {
        vault.put_enrollment({"hmd-1", "clinic", "p1", token_value, "", "2026-01-01T00:00:00Z", false},
                             "2026-01-01T00:00:00Z");
    }
    void revocation_answers(headachemd::result<http::response> r) {
        t.answers.insert_or_assign("https://auth.ehr.test/revoke", std::move(r));
    }
    sy::unenroll_result run(sy::unenroll_request req) {
        asio::io_context io;
        sy::unenroll_result out;
        auto go = [&]() -> asio::awaitable<void> {
            out = co_await sy::unenroll_patient(t, config, vault, req, std::chrono::system_clock::now());
        };
        asio::co_spawn(io, go, [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        io.run();
        return out;
    }
    std::vector<std::string> audit_actions() {
        std::vector<std::string> out;
        for (const auto& e : store::query_audit(vault, {}))
            out.push_back(e.action + ":" + e.outcome + (e.count ? ":" + std::to_string(*e.count) : ""));
        return out;
    }
};

using strings = std::vector<std::string>;

TEST(UnenrollWorkflow, RevokedThenRemovedWithBothAuditEvents) {
    unenroll_fixture f;
    f.enroll();
    f.revocation_answers(http::response{200, {}, ""});
    const auto r = f.run({"hmd-1", "", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::done);
    EXPECT_EQ(r.ehr, "clinic");  // picked: the only EHR the key is known at
    ASSERT_TRUE(r.revocation);
    EXPECT_EQ(r.revocation->status, sy::revocation_status::revoked);
    EXPECT_TRUE(r.had_enrollment);
    EXPECT_FALSE(r.server_grant_may_live);
    EXPECT_FALSE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(f.audit_actions(), (strings{"revoke:ok", "unenroll:ok:0"}));
    EXPECT_FALSE(std::filesystem::exists(f.config.daemon.database));  // not created without --purge
}

TEST(UnenrollWorkflow, NoEndpointRemovesButSaysTheGrantMayLive) {
    unenroll_fixture f;
    f.config.ehrs[0].revocation_endpoint.reset();  // discovery off: no endpoint known
    f.config.ehrs[0].discovery = false;
    f.enroll();
    const auto r = f.run({"hmd-1", "clinic", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::done);
    ASSERT_TRUE(r.revocation);
    EXPECT_EQ(r.revocation->status, sy::revocation_status::no_endpoint);
    EXPECT_TRUE(r.server_grant_may_live);
    EXPECT_FALSE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(f.audit_actions(), (strings{"revoke:no_endpoint", "unenroll:ok:0"}));
}

TEST(UnenrollWorkflow, AFailedRevocationChangesNothingWithoutForce) {
    unenroll_fixture f;
    f.enroll();
    f.revocation_answers(http::response{503, {}, "busy"});
    const auto r = f.run({"hmd-1", "clinic", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::revocation_failed);
    ASSERT_TRUE(r.revocation);
    EXPECT_EQ(to_string(r.revocation->failure->code), "http_503");
    EXPECT_TRUE(f.vault.find_enrollment("hmd-1", "clinic"));  // kept, so a retry can revoke
    EXPECT_EQ(f.audit_actions(), (strings{"revoke:failed"}));
}

TEST(UnenrollWorkflow, AFailedRevocationWithForceRemovesAnyway) {
    unenroll_fixture f;
    f.enroll();
    f.revocation_answers(http::response{503, {}, "busy"});
    const auto r = f.run({"hmd-1", "clinic", false, true});
    EXPECT_EQ(r.status, sy::unenroll_status::done);
    EXPECT_TRUE(r.server_grant_may_live);
    EXPECT_FALSE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(f.audit_actions(), (strings{"revoke:failed", "unenroll:ok:0"}));
}

TEST(UnenrollWorkflow, AnEhrGoneFromTheConfigNeedsForceAndSendsNothing) {
    unenroll_fixture f;
    f.enroll();
    f.config.ehrs.clear();
    auto r = f.run({"hmd-1", "", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::ehr_not_configured);
    EXPECT_TRUE(r.ehr_missing);
    EXPECT_TRUE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_TRUE(f.audit_actions().empty());

    r = f.run({"hmd-1", "", false, true});
    EXPECT_EQ(r.status, sy::unenroll_status::done);
    EXPECT_FALSE(r.revocation);
    EXPECT_TRUE(r.server_grant_may_live);
    EXPECT_FALSE(f.vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_TRUE(f.t.seen.empty());
    EXPECT_EQ(f.audit_actions(), (strings{"unenroll:ok:0"}));
}

TEST(UnenrollWorkflow, PurgeDeletesThePatientsRowsAndPendingLinks) {
    unenroll_fixture f;
    f.enroll();
    f.revocation_answers(http::response{200, {}, ""});
    {
        store::analytics_db db(f.config.daemon.database);
        db.sql().exec(
            "INSERT INTO sync_cursor (source, patient_key, resource_type) VALUES "
            "('clinic', 'hmd-1', 'Condition'), ('clinic', 'hmd-1', 'Encounter'), ('clinic', 'other', "
            "'Condition')");
    }
    store::pending_enrollment p;
    p.state_hash = store::state_hash("s");
    p.patient_key = "hmd-1";
    p.ehr = "clinic";
    p.created_at = "2026-01-01T00:00:00Z";
    p.expires_at = 1;
    store::pending_enrollments(f.vault).put(p);
    const auto r = f.run({"hmd-1", "clinic", true, false});
    EXPECT_EQ(r.status, sy::unenroll_status::done);
    EXPECT_TRUE(r.purged_db);
    EXPECT_EQ(r.purged_rows, 2);
    EXPECT_EQ(r.pending_removed, 1);
    EXPECT_EQ(store::pending_enrollments(f.vault).count_for("hmd-1", "clinic"), 0);
    EXPECT_EQ(f.audit_actions(), (strings{"revoke:ok", "unenroll:purged:2"}));
    store::analytics_db db(f.config.daemon.database);
    SQLite::Statement left(db.sql(), "SELECT count(*) FROM sync_cursor");
    left.executeStep();
    EXPECT_EQ(left.getColumn(0).getInt(), 1);  // the other patient's row stays
}

TEST(UnenrollWorkflow, NothingToDoChangesNothingAndSaysWhy) {
    unenroll_fixture f;
    // Known in the config, but nothing stored: nothing to revoke or remove.
    auto r = f.run({"hmd-1", "", true, false});
    EXPECT_EQ(r.status, sy::unenroll_status::unknown_patient);
    EXPECT_NE(r.problem.find("has no enrollment at clinic"), std::string::npos);
    EXPECT_NE(r.problem.find("and no rows in"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(f.config.daemon.database));
    // Unknown everywhere.
    r = f.run({"hmd-9", "", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::unknown_patient);
    EXPECT_NE(r.problem.find("patient hmd-9 is not enrolled"), std::string::npos);
    // Known at two EHRs: the admin must name one.
    f.config.patients.push_back({"hmd-1", "other", std::nullopt});
    r = f.run({"hmd-1", "", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::unknown_patient);
    EXPECT_NE(r.problem.find("several EHRs (clinic, other)"), std::string::npos);
    EXPECT_TRUE(f.t.seen.empty());
    EXPECT_TRUE(f.audit_actions().empty());
}

// The command line's entry point runs the same workflow on its own
// io_context and real HTTP client.
TEST(UnenrollBlocking, AnUnknownPatientSendsNothingAndSaysWhy) {
    unenroll_fixture f;
    const auto r = sy::unenroll_patient_blocking(f.config, f.vault, {"hmd-9", "", false, false});
    EXPECT_EQ(r.status, sy::unenroll_status::unknown_patient);
    EXPECT_NE(r.problem.find("patient hmd-9 is not enrolled"), std::string::npos);
    EXPECT_TRUE(f.audit_actions().empty());
}

TEST(UnenrollBlocking, ARefusedConnectionKeepsTheEnrollment) {
    // Setup: a loopback revocation endpoint nobody listens on.
    unenroll_fixture f;
    f.config.ehrs[0].token_endpoint = "http://127.0.0.1:1/token";
    f.config.ehrs[0].revocation_endpoint = "http://127.0.0.1:1/revoke";
    f.enroll();
    // Run
    const auto r = sy::unenroll_patient_blocking(f.config, f.vault, {"hmd-1", "", false, false});
    // Check
    EXPECT_EQ(r.status, sy::unenroll_status::revocation_failed);
    ASSERT_TRUE(r.revocation);
    EXPECT_EQ(r.revocation->status, sy::revocation_status::failed);
    EXPECT_TRUE(f.vault.find_enrollment("hmd-1", "clinic"));
    const auto actions = f.audit_actions();
    ASSERT_EQ(actions.size(), 1u);
    EXPECT_EQ(actions[0].rfind("revoke:", 0), 0u);
}

}  // namespace
