// A whole Bulk Data export (issue 15) against the built-in sandbox over
// loopback TLS: sync::run_bulk_export with the real http::client, vault.db
// and headache.db. Waits go through bulk_pacing::on_wait, which advances a
// clock the sandbox shares, so an hour of Retry-After takes no real time
// and nothing sleeps.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <SQLiteCpp/Statement.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "backend_keys.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_apply.hpp"
#include "headachemd/sync/bulk_data.hpp"
#include "headachemd/sync/bulk_runner.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "headachemd/sync/engine.hpp"
#include "test_logger.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace http = headachemd::http;
namespace sbx = headachemd::sandbox;
namespace smart = headachemd::smart;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;
using kind = sy::bulk_action::kind;
using namespace std::chrono_literals;

// One clock for the sandbox's thread and the runner: atomic, moved only
// by the runner's waits.
class shared_clock final : public headachemd::clock {
public:
    std::chrono::system_clock::time_point now() const override {
        return std::chrono::system_clock::time_point{std::chrono::system_clock::duration{ns_.load()}};
    }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::time_point{std::chrono::steady_clock::duration{ns_.load()}};
    }
    void advance(std::chrono::nanoseconds d) {
        ns_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d).count();
    }

private:
    // 2026-12-06T12:00:00Z: after the sandbox's data anchor.
    std::atomic<std::chrono::system_clock::duration::rep> ns_{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds{1796558400})
            .count()};
};

using headachemd::test::backend_ec_key;
using headachemd::test::backend_rsa_key;

const std::map<std::string, std::string> table_of = {
    {"Patient", "patient"},     {"Condition", "condition"},     {"MedicationRequest", "medication_request"},
    {"Encounter", "encounter"}, {"Observation", "observation"}, {"Procedure", "procedure"}};

// Passes requests through; `before` sees each one first (a test acts at an
// exact request, without timing), and every Authorization header is
// recorded with the request's host.
struct tap final : http::transport {
    http::transport& inner;
    std::function<void(const http::request&)> before;
    std::vector<std::string> urls;
    explicit tap(http::transport& i) : inner(i) {}
    void see(const http::request& r) {
        urls.push_back(r.url);
        if (before) before(r);
    }
    asio::awaitable<headachemd::result<http::response>> send(http::request req) override {
        see(req);
        co_return co_await inner.send(std::move(req));
    }
    asio::awaitable<headachemd::result<http::response>> send_streaming(http::request req,
                                                                       http::body_sink& sink) override {
        see(req);
        co_return co_await inner.send_streaming(std::move(req), sink);
    }
};

struct bulk_fixture : ::testing::Test {
    temp_dir dir;
    shared_clock clk;
    std::unique_ptr<sbx::background_server> ehr;
    std::unique_ptr<st::analytics_db> db;
    std::unique_ptr<st::vault> vault;
    st::pseudonym_key key{};
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(5000);
    std::shared_ptr<spdlog::logger> log = headachemd::test::test_logger("bulk", sink);
    std::vector<std::chrono::nanoseconds> waits;
    std::map<std::string, std::string> keys;  // FHIR patient id -> enrolled key
    std::function<void(const http::request&)> before;
    std::function<bool()> stopping;
    sy::bulk_apply_options apply_opts;
    bool ecw = false;
    std::string scope = "system/*.read";
    const smart::signing_key& backend_key() const { return ecw ? backend_rsa_key() : backend_ec_key(); }

    void start(const std::function<void(sbx::options&)>& tweak = {}, int enrolled = 2) {
        sbx::options o;
        o.patients = 6;
        o.backend_client_id = "bulk-app";
        o.now = [this] { return clk.now(); };
        if (tweak) tweak(o);
        ecw = o.ecw_mode;
        o.backend_jwks = backend_key().public_jwks("bulk-1");
        ehr = std::make_unique<sbx::background_server>(std::move(o));
        (*ehr)->write_ca_pem(dir / "ca.pem");
        db = std::make_unique<st::analytics_db>(dir / "headache.db");
        vault = std::make_unique<st::vault>(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        int i = 0;
        for (const auto& id : (*ehr)->patient_ids()) {
            if (i == enrolled) break;
            const std::string k = "hmd-" + std::to_string(++i);
            keys[id] = k;
            vault->put_enrollment({k, "sandbox", id, (*ehr)->issue_refresh_token(id), "", "t", false}, "t");
        }
        apply_opts.ehr = "sandbox";
    }

    std::string kickoff_url(std::optional<std::string> since = std::nullopt) {
        sy::kickoff_spec spec;
        spec.fhir_base = (*ehr)->fhir_base();
        spec.level = sy::export_level::group;
        spec.group_id = (*ehr)->config().bulk_group_id;
        spec.types = {"Patient", "Condition", "MedicationRequest", "Encounter", "Observation", "Procedure"};
        spec.since = std::move(since);
        auto r = sy::build_kickoff(spec);
        EXPECT_TRUE(r.ok());
        return r ? r->url : std::string();
    }

    // One run with a fresh client, applier and token source: as a restart.
    sy::bulk_run_result run(std::optional<std::string> since = std::nullopt) {
        asio::io_context io;
        http::client_options ho;
        ho.extra_ca_files.push_back(dir / "ca.pem");
        ho.use_system_cas = false;
        http::client client(io.get_executor(), ho);
        tap t(client);
        t.before = before;
        sy::bulk_pacing pacing{clk,
                               nullptr,
                               [this](std::chrono::nanoseconds d) {
                                   waits.push_back(d);
                                   clk.advance(d);
                               },
                               {}};
        smart::client_credentials creds;
        creds.client_id = "bulk-app";
        creds.auth = smart::client_auth::private_key_jwt;
        creds.key = std::make_shared<smart::signing_key>(backend_key());
        creds.key_id = "bulk-1";
        sy::backend_token_source tokens(t, pacing, creds, (*ehr)->base_url() + "/token", scope, 10s);
        sy::bulk_applier applier(*db, key, apply_opts, sy::enrolled_at(*vault, "sandbox"));
        sy::bulk_run_options ro;
        ro.ehr = "sandbox";
        ro.job.first_poll_after = 1s;
        ro.job.retry_base = 1s;
        ro.http_timeout = 10s;
        ro.spool_dir = dir / "spool";
        sy::bulk_run_deps deps{t, *vault, applier, tokens, pacing, log, stopping, {}};
        sy::bulk_run_result out;
        std::exception_ptr failure;
        const std::string url = kickoff_url(std::move(since));
        auto task = [&]() -> asio::awaitable<void> {
            out = co_await sy::run_bulk_export(deps, ro, url);
            client.close_idle();
        };
        asio::co_spawn(io, task, [&failure](std::exception_ptr ep) { failure = ep; });
        io.run();
        if (failure) std::rethrow_exception(failure);
        urls = t.urls;
        return out;
    }
    std::vector<std::string> urls;

    int count(const std::string& sql) {
        SQLite::Statement q(db->sql(), sql);
        q.executeStep();
        return q.getColumn(0).getInt();
    }
    sbx::counters counters() { return (*ehr)->stats(); }
    std::string logged() {
        std::string all;
        for (const auto& l : sink->last_formatted()) all += l;
        return all;
    }
};

TEST_F(bulk_fixture, AWholeExportAppliesEveryFileStoresSinceAndReleasesTheJob) {
    // Setup
    start();

    // Run
    const auto r = run();

    // Check: one kick-off, files applied, transactionTime stored, DELETE sent.
    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    EXPECT_TRUE(r.end.released);
    EXPECT_FALSE(r.resumed);
    const auto c = counters();
    EXPECT_EQ(c.bulk_kickoffs, 1u);
    EXPECT_EQ(c.bulk_deletes, 1u);
    EXPECT_EQ(c.backend_tokens_issued, 1u);
    ASSERT_TRUE(r.record.manifest);
    EXPECT_EQ(r.files.size(), r.record.manifest->files.size());
    EXPECT_EQ(r.record.applied.size(), r.record.manifest->files.size());
    EXPECT_EQ(sy::load_bulk_since(vault->sql(), "sandbox"), r.record.manifest->transaction_time);
    // Every table holds exactly what the sandbox holds.
    for (const auto& [type, n] : (*ehr)->count_by_type()) {
        if (table_of.count(type) == 0) continue;
        EXPECT_EQ(count("SELECT count(*) FROM " + table_of.at(type)), static_cast<int>(n)) << type;
    }
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 6);
    // Enrolled patients under their configured key, the others keyed-hash.
    for (const auto& [id, k] : keys)
        EXPECT_EQ(count("SELECT count(*) FROM patient WHERE patient_key = '" + k + "'"), 1) << k;
    EXPECT_EQ(count("SELECT count(DISTINCT patient_key) FROM patient"), 6);
    EXPECT_EQ(count("SELECT count(*) FROM patient WHERE patient_key LIKE 'hmd-%'"), 2);
    // Every row of another table belongs to one of those six patients.
    EXPECT_EQ(
        count("SELECT count(*) FROM observation WHERE patient_key NOT IN (SELECT patient_key FROM patient)"),
        0);
    // The record is ended: the next run starts a new job.
    const auto stored = sy::load_bulk_job(vault->sql(), "sandbox");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->phase, sy::bulk_phase::done);
    // Nothing left in the spool; the calls add up.
    EXPECT_FALSE(std::filesystem::exists(dir / "spool" / "bulk-sandbox.ndjson.part"));
    EXPECT_EQ(r.calls.kickoff, 1u);
    EXPECT_EQ(r.calls.download, r.record.manifest->files.size());
    EXPECT_EQ(r.calls.release, 1u);
    EXPECT_EQ(r.calls.token, 1u);
    EXPECT_EQ(r.calls.total(), c.requests);
    // No URL in the log: status and file URLs can be capability URLs.
    EXPECT_EQ(logged().find("/bulk/"), std::string::npos) << logged();
}

TEST_F(bulk_fixture, EclinicalworksGroupExportWithItsPollLocationUrlAndRs384) {
    start([](sbx::options& o) {
        o.ecw_mode = true;
        o.bulk_pending_polls = 2;  // each 202 says Retry-After: 120
    });
    scope =
        "system/Group.read system/Patient.read system/Observation.read system/Condition.read "
        "system/MedicationRequest.read system/Encounter.read system/Procedure.read";

    const auto r = run();

    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    EXPECT_TRUE(r.end.released);
    EXPECT_NE(r.record.status_url->find("$export-poll-location?job_id="), std::string::npos);
    const auto c = counters();
    EXPECT_EQ(c.bulk_kickoffs, 1u);
    EXPECT_EQ(c.bulk_deletes, 1u);
    EXPECT_GE(c.bulk_retry_after_seconds, 2u);
    std::size_t waited_120 = 0;
    for (auto w : waits) waited_120 += (w >= 119s && w <= 120s) ? 1 : 0;
    EXPECT_GE(waited_120, 2u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 6);
}

TEST_F(bulk_fixture, ATypeSplitOverManyFilesIsAppliedWhole) {
    start([](sbx::options& o) { o.bulk_resources_per_file = 3; });

    const auto r = run();

    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    std::size_t observation_files = 0;
    for (const auto& f : r.record.manifest->files) observation_files += f.type == "Observation" ? 1 : 0;
    EXPECT_GT(observation_files, 1u);
    for (const auto& [type, n] : (*ehr)->count_by_type()) {
        if (table_of.count(type) == 0) continue;
        EXPECT_EQ(count("SELECT count(*) FROM " + table_of.at(type)), static_cast<int>(n)) << type;
    }
}

TEST_F(bulk_fixture, ASecondExportAsksForChangesSinceTheFirstAndChangesNothingStored) {
    start();
    const auto first = run();
    ASSERT_EQ(first.end.what, kind::done);
    const int patients = count("SELECT count(*) FROM patient");
    const int observations = count("SELECT count(*) FROM observation");

    // Run: a whole second export of the same data (no _since) upserts, never duplicates.
    const auto second = run();

    ASSERT_EQ(second.end.what, kind::done);
    EXPECT_EQ(counters().bulk_kickoffs, 2u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), patients);
    EXPECT_EQ(count("SELECT count(*) FROM observation"), observations);
    std::size_t upserted = 0;
    for (const auto& f : second.files) upserted += f.upserted();
    EXPECT_EQ(upserted, 0u);
}

TEST_F(bulk_fixture, AnIncrementalExportMarksDeletedResourcesDeleted) {
    // Setup: a whole export, then one Observation deleted at the EHR.
    start();
    const auto first = run();
    ASSERT_EQ(first.end.what, kind::done);
    SQLite::Statement pick(db->sql(), "SELECT id FROM observation ORDER BY id LIMIT 1");
    ASSERT_TRUE(pick.executeStep());
    const std::string gone = pick.getColumn(0).getString();
    clk.advance(1h);
    (*ehr)->delete_resource("Observation", gone);
    clk.advance(1h);

    // Run: _since the first export's transactionTime.
    const auto second = run(sy::load_bulk_since(vault->sql(), "sandbox"));

    // Check
    ASSERT_EQ(second.end.what, kind::done) << (second.end.failure ? second.end.failure->message : "");
    std::size_t deleted = 0;
    for (const auto& f : second.files) deleted += f.deleted;
    EXPECT_EQ(deleted, 1u);
    EXPECT_EQ(counters().bulk_deleted_file_downloads, 1u);
    EXPECT_EQ(count("SELECT count(*) FROM observation WHERE id = '" + gone + "' AND deleted_at IS NOT NULL"),
              1);
    EXPECT_EQ(count("SELECT count(*) FROM observation WHERE deleted_at IS NOT NULL"), 1);
}

TEST_F(bulk_fixture, PollFaultsAreWaitedOutHttpDateRetryAfter429AndTransient500) {
    // Setup
    start([](sbx::options& o) { o.bulk_pending_polls = 2; });
    sbx::bulk_poll_fault date;
    date.what = sbx::bulk_poll_fault::kind::retry_after_date;
    date.retry_after = 1800s;
    (*ehr)->script_bulk_polls(date);
    sbx::bulk_poll_fault busy;
    busy.what = sbx::bulk_poll_fault::kind::too_many_requests;
    busy.retry_after = 30s;
    (*ehr)->script_bulk_polls(busy);
    sbx::bulk_poll_fault transient;
    transient.what = sbx::bulk_poll_fault::kind::transient;
    transient.status = 503;
    (*ehr)->script_bulk_polls(transient);

    // Run
    const auto r = run();

    // Check: the job ends well, and the HTTP-date was waited to (not re-polled at once).
    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    const auto c = counters();
    EXPECT_EQ(c.bulk_retry_after_dates, 1u);
    EXPECT_EQ(c.bulk_poll_429s, 1u);
    EXPECT_EQ(c.bulk_poll_transient_errors, 1u);
    EXPECT_EQ(c.bulk_kickoffs, 1u);
    bool waited_for_the_date = false;
    for (auto w : waits) waited_for_the_date |= (w >= 1790s && w <= 1800s);
    EXPECT_TRUE(waited_for_the_date);
    // 30 min waited: the five-minute token was renewed, not sent expired.
    EXPECT_GE(c.backend_tokens_issued, 2u);
    EXPECT_EQ(c.client_assertions_rejected, 0u);
}

TEST_F(bulk_fixture, FilesRedirectedToAnotherOriginGetNoAuthorizationHeader) {
    start();
    (*ehr)->script_bulk_file_redirects(100);

    const auto r = run();

    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    const auto c = counters();
    EXPECT_GT(c.bulk_file_redirects, 0u);
    EXPECT_EQ(c.file_origin_downloads, c.bulk_file_redirects);
    EXPECT_EQ(c.file_origin_authorization_headers, 0u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 6);
}

TEST_F(bulk_fixture, AnExpiredTokenMidJobGetsOneNewTokenAndTheFileIsFetchedAgain) {
    start();
    bool revoked = false;
    before = [&](const http::request& req) {
        if (!revoked && req.url.find("/bulk/files/") != std::string::npos) {
            revoked = true;
            (*ehr)->expire_access_tokens();
        }
    };

    const auto r = run();

    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    EXPECT_TRUE(revoked);
    EXPECT_EQ(counters().backend_tokens_issued, 2u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 6);
}

TEST_F(bulk_fixture, GzipFilesErrorFilesAndALineOverTheCap) {
    start([](sbx::options& o) { o.gzip = true; });
    (*ehr)->script_bulk_error_files(1);
    apply_opts.max_line_bytes = 700;  // some sandbox resources are longer

    const auto r = run();

    ASSERT_EQ(r.end.what, kind::done) << (r.end.failure ? r.end.failure->message : "");
    EXPECT_GT(counters().gzip_responses, 0u);
    std::size_t too_long = 0, warnings = 0, errors = 0;
    for (const auto& f : r.files) {
        for (const auto& e : f.line_errors) too_long += e.reason == sy::line_error_reason::too_long ? 1 : 0;
        for (const auto& i : f.outcome_issues) (i.severity == "warning" ? warnings : errors) += i.count;
    }
    EXPECT_GT(too_long, 0u);
    EXPECT_EQ(warnings, 1u);
    EXPECT_EQ(errors, 1u);
    // The rest of each file is in.
    EXPECT_GT(count("SELECT count(*) FROM observation"), 0);
}

TEST_F(bulk_fixture, AStoppedJobResumesWithoutASecondKickoff) {
    start([](sbx::options& o) { o.bulk_pending_polls = 3; });
    int asked = 0;
    stopping = [&] { return ++asked == 4; };  // after the kick-off, its persist and a poll

    const auto stopped = run();
    ASSERT_TRUE(stopped.stopped);
    EXPECT_EQ(sy::load_bulk_job(vault->sql(), "sandbox")->phase, sy::bulk_phase::polling);

    stopping = {};
    const auto resumed = run();

    ASSERT_EQ(resumed.end.what, kind::done) << (resumed.end.failure ? resumed.end.failure->message : "");
    EXPECT_TRUE(resumed.resumed);
    EXPECT_EQ(counters().bulk_kickoffs, 1u);
    EXPECT_EQ(count("SELECT count(*) FROM patient"), 6);
}

}  // namespace
