// The sync engine against the built-in sandbox EHR over loopback TLS: the
// acceptance rules of the sync daemon, each a test.
#include <algorithm>
#include <thread>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/engine.hpp"
#include "test_logger.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;

const std::map<std::string, std::string> table_of = {
    {"Patient", "patient"},         {"Condition", "condition"}, {"MedicationRequest", "medication_request"},
    {"Appointment", "appointment"}, {"Encounter", "encounter"}, {"Observation", "observation"},
    {"Procedure", "procedure"}};

// Passes requests through, calling `before` first: lets a test act at an
// exact point of a pass (the 3rd FHIR call, say) without timing.
struct tap_transport final : headachemd::http::transport {
    headachemd::http::transport& inner;
    std::function<void(const headachemd::http::request&)> before;
    tap_transport(headachemd::http::transport& i, std::function<void(const headachemd::http::request&)> b)
        : inner(i), before(std::move(b)) {}
    asio::awaitable<headachemd::result<headachemd::http::response>> send(
        headachemd::http::request req) override {
        if (before) before(req);
        co_return co_await inner.send(std::move(req));
    }
};

struct sync_fixture : ::testing::Test {
    temp_dir dir;
    std::unique_ptr<headachemd::sandbox::background_server> ehr;
    cfg::config config;
    std::unique_ptr<st::analytics_db> db;
    std::unique_ptr<st::vault> vault;
    headachemd::system_clock clk;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(5000);
    std::shared_ptr<spdlog::logger> log = headachemd::test::test_logger("test", sink);
    sy::engine_counters counters;

    void start(headachemd::sandbox::options o, const std::string& profile, int patients, int page_size = 50) {
        o.patients = patients;
        ehr = std::make_unique<headachemd::sandbox::background_server>(std::move(o));
        (*ehr)->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", (*ehr)->config().client_secret);
        cfg::ehr_settings e = *cfg::profile_preset(profile);
        e.name = "sandbox";
        e.fhir_base = (*ehr)->fhir_base();
        e.client_id = (*ehr)->config().client_id;
        e.client_secret_file = dir / "client.secret";
        e.ca_file = dir / "ca.pem";
        // Deletes are expected on the very next pass here; the default
        // checks counts at most daily (issue 17, engine_test covers that).
        e.count_check_every = std::chrono::seconds(0);
        if (profile != "eclinicalworks") {
            e.page_size = page_size;
            e.requests_per_minute = 60000;  // the sandbox has no budget outside eCW mode
        }
        config.ehrs = {e};
        db = std::make_unique<st::analytics_db>(dir / "headache.db");
        vault = std::make_unique<st::vault>(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        int i = 0;
        for (const auto& id : (*ehr)->patient_ids()) {
            const std::string key = "hmd-" + std::to_string(++i);
            config.patients.push_back({key, "sandbox", id});
            vault->put_enrollment({key, "sandbox", id, (*ehr)->issue_refresh_token(id), "", "t", false}, "t");
        }
    }

    // One pass with a fresh engine and client: as a restart of the daemon.
    sy::pass_result pass(std::function<void(const headachemd::http::request&)> before = {}) {
        asio::io_context io;
        headachemd::http::client_options ho;
        ho.extra_ca_files.push_back(dir / "ca.pem");
        headachemd::http::client http(io.get_executor(), ho);
        sy::engine_options eo;
        eo.backoff.base = std::chrono::milliseconds(5);
        eo.backoff.cap = std::chrono::milliseconds(50);
        tap_transport tap(http, std::move(before));
        sy::engine engine(io.get_executor(), config, tap, *db, *vault, clk, log, eo);
        sy::pass_result out;
        std::exception_ptr failure;
        auto task = [&]() -> asio::awaitable<void> {
            out = co_await engine.run_pass();
            http.close_idle();
        };
        asio::co_spawn(io, task, [&failure](std::exception_ptr ep) { failure = ep; });
        io.run();
        if (failure) std::rethrow_exception(failure);
        counters = engine.counters();
        return out;
    }

    int rows(const std::string& table, const std::string& where = "deleted_at IS NULL") {
        SQLite::Statement q(db->sql(), "SELECT count(*) FROM \"" + table + "\" WHERE " + where);
        q.executeStep();
        return q.getColumn(0).getInt();
    }

    // Every table holds exactly what the sandbox holds, type by type.
    void expect_rows_match_sandbox() {
        const auto want = (*ehr)->count_by_type();
        for (const auto& [type, table] : table_of) {
            const auto it = want.find(type);
            const int expected = it == want.end() ? 0 : static_cast<int>(it->second);
            EXPECT_EQ(rows(table), expected) << table;
        }
    }

    std::string failures(const sy::pass_result& r) {
        std::string s;
        for (const auto& p : r.patients)
            if (p.failure) s += p.patient_key + ": " + p.failure->message + "\n";
        return s;
    }
};

TEST_F(sync_fixture, FullPassOf25PatientsThenNothingThenChangesAreReflected) {
    start({}, "generic", 25);
    const auto first = pass();
    ASSERT_EQ(first.succeeded(), 25) << failures(first);
    expect_rows_match_sandbox();

    const auto second = pass();
    ASSERT_EQ(second.succeeded(), 25) << failures(second);
    for (const auto& p : second.patients) EXPECT_EQ(p.rows_changed(), 0) << p.patient_key;

    // Update, delete and add at the EHR.
    const auto pid = (*ehr)->patient_ids()[0];
    const auto obs = (*ehr)->ids_of("Observation", pid);
    (*ehr)->update_resource("Observation", obs[0]);
    (*ehr)->delete_resource("Observation", obs[1]);
    const auto added = (*ehr)->add_resource("Condition", pid);
    const auto third = pass();
    ASSERT_EQ(third.succeeded(), 25) << failures(third);
    expect_rows_match_sandbox();
    EXPECT_EQ(rows("observation", "id = '" + obs[1] + "' AND deleted_at IS NOT NULL"), 1);
    EXPECT_EQ(rows("condition", "id = '" + added + "'"), 1);
    SQLite::Statement q(db->sql(), "SELECT version_id FROM observation WHERE id = ?1");
    q.bind(1, obs[0]);
    ASSERT_TRUE(q.executeStep());
    EXPECT_NE(q.getColumn(0).getString(), "1");
}

// Issue 16: a view over a type HeadacheMD does not normalize is filled by
// the sync when the [[ehr]] searches that type, and follows the EHR's
// updates and deletes.
TEST_F(sync_fixture, AnAllergyViewIsFilledUpdatedAndEmptiedBySync) {
    start({}, "generic", 2);
    config.ehrs[0].resources.push_back({"AllergyIntolerance", {}});
    config.ehrs[0].scopes.push_back("patient/AllergyIntolerance.read");
    headachemd::test::write_file(
        dir / "allergies.json",
        R"json({"resourceType":"ViewDefinition","resource":"AllergyIntolerance","status":"active",
            "select":[{"column":[{"name":"allergy_id","path":"id","type":"id"},
              {"name":"clinical_status","path":"clinicalStatus.coding.code.first()","type":"code"},
              {"name":"code","path":"code.coding.code.first()","type":"code"}]}]})json");
    config.views = {{"allergies", dir / "allergies.json"}};
    const auto pid = (*ehr)->patient_ids()[0];
    const auto a1 = (*ehr)->add_resource("AllergyIntolerance", pid);
    const auto a2 = (*ehr)->add_resource("AllergyIntolerance", pid);
    const auto all = [&] {
        std::vector<std::string> out;
        SQLite::Statement q(
            db->sql(), "SELECT allergy_id, clinical_status, _patient_key FROM view_allergies ORDER BY 1");
        while (q.executeStep())
            out.push_back(q.getColumn(0).getString() + "|" + q.getColumn(1).getString() + "|" +
                          q.getColumn(2).getString());
        return out;
    };

    const auto first = pass();
    ASSERT_EQ(first.succeeded(), 2) << failures(first);
    EXPECT_EQ(all(), (std::vector<std::string>{a1 + "|active|hmd-1", a2 + "|active|hmd-1"}));
    EXPECT_EQ(rows("bare_resource"), 2);
    expect_rows_match_sandbox();  // the normalized tables as before

    // The EHR marks a1 inactive and deletes a2.
    (*ehr)->update_resource("AllergyIntolerance", a1);
    (*ehr)->delete_resource("AllergyIntolerance", a2);
    const auto second = pass();
    ASSERT_EQ(second.succeeded(), 2) << failures(second);
    EXPECT_EQ(all(), (std::vector<std::string>{a1 + "|inactive|hmd-1"}));
    EXPECT_EQ(rows("bare_resource", "id = '" + a2 + "' AND deleted_at IS NOT NULL"), 1);
}

TEST_F(sync_fixture, EclinicalworksModeFullPassNoAppointmentsNoThrottling) {
    headachemd::sandbox::options o;
    o.ecw_mode = true;
    start(o, "eclinicalworks", 4);
    const auto first = pass();
    ASSERT_EQ(first.succeeded(), 4) << failures(first);
    expect_rows_match_sandbox();
    EXPECT_EQ(rows("appointment", "1=1"), 0);
    EXPECT_EQ((*ehr)->stats().responses_429, 0u);

    // Full pull and hash diff: updates, deletes and additions are found
    // without _lastUpdated.
    const auto pid = (*ehr)->patient_ids()[1];
    const auto med = (*ehr)->ids_of("MedicationRequest", pid);
    (*ehr)->delete_resource("MedicationRequest", med[0]);
    (*ehr)->update_resource("MedicationRequest", med[1]);
    const auto added = (*ehr)->add_resource("Observation", pid);
    const auto second = pass();
    ASSERT_EQ(second.succeeded(), 4) << failures(second);
    expect_rows_match_sandbox();
    EXPECT_EQ(rows("medication_request", "id = '" + med[0] + "' AND deleted_at IS NOT NULL"), 1);
    EXPECT_EQ(rows("observation", "id = '" + added + "'"), 1);
    int updated = 0;
    for (const auto& p : second.patients)
        for (const auto& t : p.types) updated += t.updated;
    EXPECT_EQ(updated, 1);
    EXPECT_EQ((*ehr)->stats().responses_429, 0u);
}

TEST_F(sync_fixture, RotationSurvivesRestartsAndTheSandboxRefusesAReusedToken) {
    start({}, "generic", 2);
    const std::string original = vault->find_enrollment("hmd-1", "sandbox")->refresh_token;
    ASSERT_EQ(pass().succeeded(), 2);
    const std::string rotated = vault->find_enrollment("hmd-1", "sandbox")->refresh_token;
    EXPECT_NE(rotated, original);
    // Drop the stored access tokens, as their expiry would: the next pass
    // must refresh (issue 17 keeps them across processes otherwise).
    headachemd::test::expire_access_tokens(vault->sql());
    ASSERT_EQ(pass().succeeded(), 2);  // a restart: the stored token works
    EXPECT_NE(vault->find_enrollment("hmd-1", "sandbox")->refresh_token, rotated);

    // Replaying the original (used) token is refused by the EHR.
    vault->put_enrollment(
        {"hmd-2", "sandbox", config.patients[1].fhir_patient_id.value(), original, "", "t", false}, "t");
    const auto r = pass();
    for (const auto& p : r.patients) {
        if (p.patient_key == "hmd-2") {
            EXPECT_TRUE(p.needs_reauth);
        }
    }
}

TEST_F(sync_fixture, A401MidPassCausesExactlyOneRefresh) {
    start({}, "generic", 1, 5);
    // The EHR invalidates the access token just before the 4th FHIR call.
    int fhir_calls = 0;
    const auto r = pass([&](const headachemd::http::request& req) {
        if (req.url.find("/fhir/") != std::string::npos && req.url.find("metadata") == std::string::npos &&
            req.url.find(".well-known") == std::string::npos && ++fhir_calls == 4)
            (*ehr)->expire_access_tokens();
    });
    ASSERT_EQ(r.succeeded(), 1) << failures(r);
    // One refresh at the start, and exactly one after the 401.
    EXPECT_EQ((*ehr)->stats().token_calls, 2u);
    EXPECT_GE((*ehr)->stats().by_status[401], 1u);
    expect_rows_match_sandbox();
}

TEST_F(sync_fixture, InvalidGrantForOnePatientMarksItAndTheOthersComplete) {
    start({}, "generic", 3);
    (*ehr)->revoke_patient_grants((*ehr)->patient_ids()[1]);
    const auto r = pass();
    EXPECT_EQ(r.succeeded(), 2) << failures(r);
    EXPECT_TRUE(vault->find_enrollment("hmd-2", "sandbox")->needs_reauth);
    st::sync_state s(*db);
    bool flagged = false;
    for (const auto& row : s.all_status())
        if (row.patient_key == "hmd-2" && row.resource_type == "*") flagged = row.needs_reauth;
    EXPECT_TRUE(flagged);
}

TEST_F(sync_fixture, PagingOverSevenPagesWithSmallPages) {
    start({}, "generic", 1, 5);
    const auto r = pass();
    ASSERT_EQ(r.succeeded(), 1) << failures(r);
    int most = 0;
    for (const auto& t : r.patients[0].types) most = std::max(most, t.pages);
    EXPECT_GE(most, 7);
    expect_rows_match_sandbox();
}

TEST_F(sync_fixture, NextLinkToAnotherOriginIsRefusedAndNoTokenLeaves) {
    start({}, "generic", 1, 5);
    (*ehr)->set_next_link_override("https://127.0.0.2:9/fhir/steal");
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_GE(counters.refused_origin, 1);
    EXPECT_EQ((*ehr)->stats().by_path.count("/fhir/steal"), 0u);
}

TEST_F(sync_fixture, RateLimitedWithRetryAfterIsHonoured) {
    headachemd::sandbox::options o;
    o.rate_429 = 0.2;
    o.retry_after_on_429 = true;
    start(o, "generic", 2);
    const auto r = pass();
    EXPECT_EQ(r.succeeded(), 2) << failures(r);
    EXPECT_GT((*ehr)->stats().responses_429, 0u);
    expect_rows_match_sandbox();
}

TEST_F(sync_fixture, TransientFaultsAreRetriedAndNothingIsLost) {
    headachemd::sandbox::options o;
    o.rate_500 = 0.1;
    o.rate_reset = 0.05;
    o.rate_truncated = 0.05;
    start(o, "generic", 3);
    // Faults may exhaust a job's retries; a later pass finishes the work.
    for (int i = 0; i < 4; ++i) {
        if (pass().failed() == 0) break;
    }
    (*ehr)->set_fault_rates(0, 0, 0, 0);
    const auto last = pass();
    ASSERT_EQ(last.succeeded(), 3) << failures(last);
    expect_rows_match_sandbox();
    SQLite::Statement ic(db->sql(), "PRAGMA integrity_check");
    ic.executeStep();
    EXPECT_EQ(ic.getColumn(0).getString(), "ok");
}

TEST_F(sync_fixture, LogsCarryNoTokensNamesOrSecrets) {
    start({}, "generic", 3);
    (*ehr)->revoke_patient_grants((*ehr)->patient_ids()[2]);
    pass();
    std::string all;
    for (const auto& l : sink->last_formatted()) all += l + "\n";
    EXPECT_EQ(all.find((*ehr)->config().client_secret), std::string::npos);
    EXPECT_EQ(all.find("Test Patient"), std::string::npos);
    for (const auto& e : vault->enrollments()) {
        EXPECT_EQ(all.find(e.refresh_token), std::string::npos);
        if (e.access) {
            EXPECT_EQ(all.find(e.access->token), std::string::npos);
        }
    }
}

// Issue 5: the vault file holds no token bytes, searched for every token the
// sandbox issued, in vault.db and in its -wal file while the vault is open.
TEST_F(sync_fixture, VaultFilesHoldNoTokenTheSandboxIssued) {
    // Setup: three patients, two passes, so every refresh token rotates twice.
    start({}, "generic", 3);
    ASSERT_EQ(pass().succeeded(), 3);
    // Drop the stored access tokens, as their expiry would: the next pass
    // must refresh (issue 17 keeps them across processes otherwise).
    headachemd::test::expire_access_tokens(vault->sql());
    ASSERT_EQ(pass().succeeded(), 3);
    const auto issued = (*ehr)->issued_tokens();
    // 3 enrolled + 2 rotations each, and at least one access token per refresh.
    ASSERT_GE(issued.size(), 15u);
    // Run: read the files as a thief would, with the daemon's vault still open
    // (its -wal file holds the latest pages: nothing has checkpointed them).
    ASSERT_TRUE(std::filesystem::exists(dir / "vault.db-wal"));
    const std::string bytes =
        headachemd::test::read_file(dir / "vault.db") + headachemd::test::read_file(dir / "vault.db-wal");
    ASSERT_GT(bytes.size(), 4096u);
    // Check: no token, and the vault still opens every current one.
    for (const auto& token : issued) {
        ASSERT_GE(token.size(), 16u);
        EXPECT_EQ(bytes.find(token), std::string::npos)
            << "a token the sandbox issued is in vault.db in plain text";
    }
    for (const auto& e : vault->enrollments()) {
        EXPECT_NE(std::find(issued.begin(), issued.end(), e.refresh_token), issued.end());
        // The stored access token (issue 17) is one the scan looked for.
        ASSERT_TRUE(e.access) << e.patient_key;
        EXPECT_NE(std::find(issued.begin(), issued.end(), e.access->token), issued.end());
    }
}

}  // namespace
