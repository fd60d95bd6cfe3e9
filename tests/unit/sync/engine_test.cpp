// The sync engine against a scripted fake EHR (no sockets): token rotation,
// invalid_grant, 401, paging, origin checks, rejected pages, deletes.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/http/url.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/engine.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace http = headachemd::http;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;

constexpr const char* base = "https://ehr.test/fhir";

std::string bundle(const std::vector<std::string>& resources, const std::string& next = "") {
    std::string out = R"({"resourceType":"Bundle","type":"searchset",)";
    if (!next.empty()) out += R"("link":[{"relation":"next","url":")" + next + R"("}],)";
    out += R"("entry":[)";
    for (std::size_t i = 0; i < resources.size(); ++i) {
        if (i) out += ",";
        out += R"({"resource":)" + resources[i] + "}";
    }
    return out + "]}";
}

std::string condition(const std::string& id, const std::string& patient,
                      const std::string& code = "G43.709") {
    return R"({"resourceType":"Condition","id":")" + id +
           R"(","meta":{"lastUpdated":"2026-01-01T00:00:00Z"},)" + R"("subject":{"reference":"Patient/)" +
           patient + R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":")" + code +
           R"("}]}})";
}

// A scripted EHR: handlers by path (query stripped) or by full URL.
class fake_ehr final : public http::transport {
public:
    using handler = std::function<http::response(const http::request&)>;
    std::map<std::string, handler> by_url;   // exact URL
    std::map<std::string, handler> by_path;  // URL without query
    // A transport failure instead of a response, by URL without query.
    std::map<std::string, std::function<headachemd::error(const http::request&)>> fail_by_path;
    std::vector<http::request> seen;
    int token_calls = 0;

    // Refresh tokens: the valid one per patient; each refresh rotates.
    std::map<std::string, std::string> refresh_to_patient;
    std::map<std::string, std::string> access_to_patient;
    int next_id = 0;
    bool expire_all_access = false;

    fake_ehr() {
        by_path[std::string(base) + "/.well-known/smart-configuration"] = [](const http::request&) {
            return json(
                200,
                R"({"token_endpoint":"https://ehr.test/token","authorization_endpoint":"https://ehr.test/authorize"})");
        };
        by_path[std::string(base) + "/metadata"] = [](const http::request&) {
            return json(200, R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[
              {"type":"Condition","searchParam":[{"name":"patient"}]}]}]})");
        };
        by_path["https://ehr.test/token"] = [this](const http::request& r) { return token(r); };
    }

    // The token endpoint: a single-use refresh token rotates at each refresh.
    http::response token(const http::request& r) {
        ++token_calls;
        const auto pos = r.body.find("refresh_token=");
        const std::string rest = r.body.substr(pos + 14);
        const std::string rt = rest.substr(0, rest.find('&'));
        auto it = refresh_to_patient.find(rt);
        if (it == refresh_to_patient.end()) return json(400, R"({"error":"invalid_grant"})");
        const std::string patient = it->second;
        refresh_to_patient.erase(it);  // single-use, as at eCW
        const std::string new_rt = "rt-" + std::to_string(++next_id);
        const std::string at = "at-" + std::to_string(++next_id);
        refresh_to_patient[new_rt] = patient;
        access_to_patient[at] = patient;
        return json(200, R"({"access_token":")" + at +
                             R"(","token_type":"Bearer","expires_in":3600,"refresh_token":")" + new_rt +
                             R"(","patient":")" + patient + R"("})");
    }

    static http::response json(int status, std::string body) {
        http::response r;
        r.status = status;
        r.headers.push_back({"Content-Type", "application/json"});
        r.body = std::move(body);
        return r;
    }

    asio::awaitable<headachemd::result<http::response>> send(http::request req) override {
        seen.push_back(req);
        const std::string path = req.url.substr(0, req.url.find('?'));
        if (auto it = fail_by_path.find(path); it != fail_by_path.end()) co_return it->second(req);
        if (auto it = by_url.find(req.url); it != by_url.end()) co_return it->second(req);
        if (auto it = by_path.find(path); it != by_path.end()) co_return it->second(req);
        co_return json(404, R"({"resourceType":"OperationOutcome"})");
    }

    // True when the request carries a valid access token of `patient`.
    bool authorized(const http::request& r, const std::string& patient) const {
        if (expire_all_access) return false;
        for (const auto& h : r.headers)
            if (h.name == "Authorization") {
                auto it = access_to_patient.find(h.value.substr(7));
                return it != access_to_patient.end() && it->second == patient;
            }
        return false;
    }
};

struct fixture : ::testing::Test {
    temp_dir dir;
    cfg::config config;
    st::analytics_db db{dir / "headache.db"};
    st::token_key vault_key = st::token_key::generate();
    st::vault vault{dir / "vault.db", vault_key};
    fake_ehr ehr;
    headachemd::manual_clock clk;
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(500);
    std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("test", sink);

    fixture() {
        cfg::ehr_settings e = *cfg::profile_preset("generic");
        e.name = "ehr";
        e.fhir_base = base;
        e.client_id = "client";
        e.client_auth = cfg::client_auth_method::none;
        e.resources = {{"Condition", {}}};
        e.page_size = 2;
        config.ehrs.push_back(e);
    }

    void enroll(const std::string& key, const std::string& fhir_id) {
        config.patients.push_back({key, "ehr", fhir_id});
        const std::string rt = "rt-initial-" + key;
        ehr.refresh_to_patient[rt] = fhir_id;
        vault.put_enrollment({key, "ehr", fhir_id, rt, "", "t", false}, "t");
    }

    // Serves Condition searches for `patient` from `pages` (each a list of resources).
    void serve_conditions(const std::string& patient, std::vector<std::vector<std::string>> pages) {
        const std::string first = std::string(base) + "/Condition?patient=" + patient + "&_count=2";
        for (std::size_t i = 0; i < pages.size(); ++i) {
            const std::string url =
                i == 0 ? first : std::string(base) + "/page?p=" + patient + "&n=" + std::to_string(i);
            const std::string next = i + 1 < pages.size() ? std::string(base) + "/page?p=" + patient +
                                                                "&n=" + std::to_string(i + 1)
                                                          : "";
            const std::string body = bundle(pages[i], next);
            ehr.by_url[url] = [this, patient, body](const http::request& r) {
                if (!ehr.authorized(r, patient)) return fake_ehr::json(401, "{}");
                return fake_ehr::json(200, body);
            };
        }
    }

    sy::pass_result pass(sy::engine_options opts = {}) {
        asio::io_context io;
        opts.backoff.base = std::chrono::milliseconds(1);
        opts.backoff.cap = std::chrono::milliseconds(2);
        if (!opts.random) opts.random = [] { return std::uint64_t{1}; };
        sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
        sy::pass_result out;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { out = co_await engine.run_pass(); },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.run();
        counters = engine.counters();
        return out;
    }

    // One job through engine::sync_patient, as the daemon's scheduler runs it.
    sy::patient_result sync_one(const std::string& key, sy::engine_options opts = {}) {
        asio::io_context io;
        opts.backoff.base = std::chrono::milliseconds(1);
        opts.backoff.cap = std::chrono::milliseconds(2);
        if (!opts.random) opts.random = [] { return std::uint64_t{1}; };
        sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
        sy::patient_result out;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { out = co_await engine.sync_patient(key, "ehr"); },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.run();
        counters = engine.counters();
        return out;
    }

    // What another headachemd-sync process does to a patient: refresh at
    // the EHR with the token it read, and store the rotated one through its
    // own vault handle. Returns the new refresh token.
    std::string other_process_refreshes(const std::string& patient_key, const std::string& sent) {
        http::request req;
        req.url = "https://ehr.test/token";
        req.body = "grant_type=refresh_token&refresh_token=" + sent;
        const auto answer = ehr.token(req);
        const std::string field = R"("refresh_token":")";
        const auto at = answer.body.find(field);
        if (answer.status != 200 || at == std::string::npos) return {};
        const std::string rotated = answer.body.substr(
            at + field.size(), answer.body.find('"', at + field.size()) - at - field.size());
        st::vault theirs(dir / "vault.db", vault_key);
        theirs.replace_refresh_token(patient_key, "ehr", rotated, "2026-01-01T00:00:01Z");
        return rotated;
    }

    // True when some request this engine sent carried `token` as its refresh token.
    bool sent_refresh_token(const std::string& token) const {
        for (const auto& r : ehr.seen) {
            const auto at = r.body.find("refresh_token=");
            if (at == std::string::npos) continue;
            const std::string rest = r.body.substr(at + 14);
            if (rest.substr(0, rest.find('&')) == token) return true;
        }
        return false;
    }

    int count(const std::string& where = "1=1") {
        SQLite::Statement q(db.sql(), "SELECT count(*) FROM condition WHERE " + where);
        q.executeStep();
        return q.getColumn(0).getInt();
    }

    std::string logged() {
        std::string all;
        for (const auto& l : sink->last_formatted()) all += l;
        return all;
    }

    sy::engine_counters counters;
};

TEST_F(fixture, FullPassFollowsPagesAndASecondPassWritesNothing) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1"), condition("c2", "p1")}, {condition("c3", "p1")}});
    const auto first = pass();
    ASSERT_EQ(first.succeeded(), 1) << (first.patients[0].failure ? first.patients[0].failure->message : "");
    EXPECT_EQ(count(), 3);
    EXPECT_EQ(count("patient_key = 'hmd-1' AND headache_type = 'chronic_migraine' AND source = 'ehr'"), 3);
    EXPECT_EQ(first.patients[0].types[0].pages, 2);

    const auto second = pass();
    ASSERT_EQ(second.succeeded(), 1);
    EXPECT_EQ(second.patients[0].rows_changed(), 0);
    EXPECT_EQ(second.patients[0].types[0].unchanged, 3);
}

TEST_F(fixture, RotatedRefreshTokenIsInTheVaultAndTheOldOneIsNeverReplayed) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    const auto stored = vault.find_enrollment("hmd-1", "ehr")->refresh_token;
    EXPECT_NE(stored, "rt-initial-hmd-1");
    EXPECT_TRUE(ehr.refresh_to_patient.count(stored));  // the vault holds the live token
    // Once the access token has run out, a new engine (a restart) refreshes
    // with the stored token and succeeds.
    clk.advance(std::chrono::hours(2));
    ASSERT_EQ(pass().succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
}

TEST_F(fixture, ATokenThatDoesNotOpenFailsThatPatientOnlyAndTheRowStays) {
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    serve_conditions("p1", {{condition("c1", "p1")}});
    serve_conditions("p2", {{condition("c2", "p2")}});
    // Someone flips a byte of hmd-1's sealed token while the daemon runs.
    std::string box;
    {
        SQLite::Statement q(vault.sql(), "SELECT refresh_token FROM enrollment WHERE patient_key = 'hmd-1'");
        ASSERT_TRUE(q.executeStep());
        box.assign(static_cast<const char*>(q.getColumn(0).getBlob()),
                   static_cast<std::size_t>(q.getColumn(0).getBytes()));
    }
    box[box.size() / 2] = static_cast<char>(box[box.size() / 2] ^ 0x01);
    SQLite::Statement upd(vault.sql(),
                          "UPDATE enrollment SET refresh_token = ?1 WHERE patient_key = 'hmd-1'");
    upd.bind(1, box.data(), static_cast<int>(box.size()));
    upd.exec();
    const auto r = pass();
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_EQ(count("patient_key = 'hmd-2'"), 1);
    for (const auto& p : r.patients) {
        if (p.patient_key == "hmd-1") {
            ASSERT_TRUE(p.failure);
            EXPECT_NE(p.failure->message.find("patient hmd-1 at EHR ehr"), std::string::npos)
                << p.failure->message;
            EXPECT_NE(p.failure->message.find("wrong key or tampered row"), std::string::npos);
            EXPECT_FALSE(p.needs_reauth);
        }
    }
    SQLite::Statement q(vault.sql(), "SELECT refresh_token FROM enrollment WHERE patient_key = 'hmd-1'");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(std::string(static_cast<const char*>(q.getColumn(0).getBlob()),
                          static_cast<std::size_t>(q.getColumn(0).getBytes())),
              box);
}

TEST_F(fixture, InvalidGrantMarksOnePatientAndTheOthersComplete) {
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    ehr.refresh_to_patient.erase("rt-initial-hmd-1");  // revoked at the EHR
    serve_conditions("p1", {{condition("c1", "p1")}});
    serve_conditions("p2", {{condition("c2", "p2")}});
    const auto r = pass();
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_TRUE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
    EXPECT_EQ(count("patient_key = 'hmd-2'"), 1);
    EXPECT_NE(logged().find("hmd-1"), std::string::npos);
    // The next pass does not try the dead token again.
    const int calls = ehr.token_calls;
    const auto again = pass();
    EXPECT_EQ(ehr.token_calls, calls);  // hmd-2 uses its stored access token, hmd-1 is not tried
    for (const auto& p : again.patients) {
        if (p.patient_key == "hmd-1") {
            EXPECT_TRUE(p.needs_reauth && p.skipped);
        }
    }
}

TEST_F(fixture, A401MidPassTriggersExactlyOneRefresh) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1"), condition("c2", "p1")}, {condition("c3", "p1")}});
    // The second page answers 401 once, as when the token was revoked early.
    const std::string page2 = std::string(base) + "/page?p=p1&n=1";
    auto original = ehr.by_url[page2];
    int hits = 0;
    ehr.by_url[page2] = [&](const http::request& r) {
        if (++hits == 1) return fake_ehr::json(401, "{}");
        return original(r);
    };
    const auto r = pass();
    ASSERT_EQ(r.succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 2);  // the first access token, and one refresh after the 401
    EXPECT_EQ(count(), 3);
}

TEST_F(fixture, ASecond401AfterRefreshFailsTheJob) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ehr.expire_all_access = true;
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
    EXPECT_EQ(count(), 0);
}

TEST_F(fixture, NextLinkToAnotherOriginIsRefusedAndTheTokenIsNotSent) {
    enroll("hmd-1", "p1");
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    ehr.by_url[first] = [](const http::request&) {
        return fake_ehr::json(200, bundle({condition("c1", "p1")}, "https://evil.test/fhir/steal?p=1"));
    };
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(counters.refused_origin, 1);
    for (const auto& req : ehr.seen) EXPECT_EQ(req.url.find("evil.test"), std::string::npos) << req.url;
    EXPECT_EQ(count(), 1);  // the first page was fine and stays
}

TEST_F(fixture, MalformedPageWritesNothingFromItAndKeepsEarlierPages) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1"), condition("c2", "p1")}, {condition("c3", "p1")}});
    ehr.by_url[std::string(base) + "/page?p=p1&n=1"] = [](const http::request&) {
        return fake_ehr::json(
            200, R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Condition","id":"c3",)");
    };
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(count(), 2);
    // The cursor did not advance: the next run starts over.
    st::sync_state s(db);
    EXPECT_FALSE(s.read_cursor("ehr", "hmd-1", "Condition").last_full_pull_at);
}

TEST_F(fixture, PageWithAnotherPatientsDataIsRejected) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1"), condition("x", "p2")}});
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(count(), 0);
}

TEST_F(fixture, NextLinkLoopIsDetected) {
    enroll("hmd-1", "p1");
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    ehr.by_url[first] = [&](const http::request&) {
        return fake_ehr::json(200, bundle({condition("c1", "p1")}, first));
    };
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    ASSERT_TRUE(r.patients[0].failure);
    EXPECT_EQ(to_string(r.patients[0].failure->code), "paging_loop");
}

TEST_F(fixture, RateLimitedWithRetryAfterIsRetried) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    auto original = ehr.by_url[first];
    int hits = 0;
    ehr.by_url[first] = [&](const http::request& r) {
        if (++hits == 1) {
            auto resp = fake_ehr::json(429, "{}");
            resp.headers.push_back({"Retry-After", "0"});
            return resp;
        }
        return original(r);
    };
    const auto r = pass();
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_EQ(counters.http_429, 1);
    EXPECT_EQ(count(), 1);
}

TEST_F(fixture, ServerErrorsAreRetriedUpToABoundThenTheJobFails) {
    enroll("hmd-1", "p1");
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    int hits = 0;
    ehr.by_url[first] = [&](const http::request&) {
        ++hits;
        return fake_ehr::json(502, "bad gateway");
    };
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(hits, 5);  // backoff_policy::max_attempts
}

// Issue 12, defect 7: the EHR's http_timeout goes with every request as its
// whole-request deadline (per EHR; the client's default is not used).
TEST_F(fixture, EveryRequestCarriesItsEhrsHttpTimeout) {
    config.ehrs[0].http_timeout = std::chrono::seconds(7);
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const auto r = pass();
    ASSERT_EQ(r.failed(), 0);
    ASSERT_GE(ehr.seen.size(), 4u);  // discovery, metadata, token, search
    for (const auto& req : ehr.seen) {
        ASSERT_TRUE(req.timeout) << req.url;
        EXPECT_EQ(*req.timeout, std::chrono::milliseconds(7000)) << req.url;
    }
}

// Issue 12, defect 7: a server that stalls every answer until the deadline
// gets two tries (3 x http_timeout of budget), not max_attempts of them.
TEST_F(fixture, StalledRequestsStopWithinTheRetryBudget) {
    // Setup: each search "takes" the whole http_timeout on the engine's
    // clock, then fails as the client would.
    enroll("hmd-1", "p1");
    const auto timeout = config.ehrs[0].http_timeout;
    int hits = 0;
    ehr.fail_by_path[std::string(base) + "/Condition"] = [&](const http::request&) {
        ++hits;
        clk.advance(timeout);
        return headachemd::error{headachemd::errc::timeout,
                                 "GET https://ehr.test:443/fhir/Condition: reading the response "
                                 "body: the request was not complete within its deadline"};
    };
    // Run
    const auto r = pass();
    // Check
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(hits, 2);
    ASSERT_EQ(r.patients.size(), 1u);
    ASSERT_TRUE(r.patients[0].failure);
    EXPECT_EQ(to_string(r.patients[0].failure->code), "timeout");
    EXPECT_NE(r.patients[0].failure->message.find("retry budget of 90000 ms"), std::string::npos)
        << r.patients[0].failure->message;
}

TEST_F(fixture, QuickServerErrorsStillGetEveryAttemptWithinTheBudget) {
    // A 5xx that comes back at once costs the budget nothing but backoff.
    enroll("hmd-1", "p1");
    int hits = 0;
    ehr.fail_by_path[std::string(base) + "/Condition"] = [&](const http::request&) {
        ++hits;
        return headachemd::error{headachemd::errc::reset,
                                 "GET https://ehr.test:443/fhir/Condition: connection reset"};
    };
    const auto r = pass();
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(hits, 5);  // backoff_policy::max_attempts
}

// Issue 12, 10a: a refused certificate is not retried, and the job's error
// says what failed instead of "set token_endpoint".
TEST_F(fixture, ACertificateRefusedAtDiscoveryIsNotRetriedAndNamesTheCause) {
    // Setup
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    ehr.fail_by_path[std::string(base) + "/.well-known/smart-configuration"] = [](const http::request&) {
        return headachemd::error{
            headachemd::errc::tls_verify,
            "GET https://ehr.test:443/fhir/.well-known/smart-configuration: TLS certificate "
            "verification failed for host ehr.test: the certificate has expired "
            "(certificate has expired)"};
    };
    serve_conditions("p1", {{condition("c1", "p1")}});
    serve_conditions("p2", {{condition("c2", "p2")}});
    // Run: two passes of one engine (as the daemon runs them); the
    // certificate is fixed in between.
    asio::io_context io;
    sy::engine_options opts;
    opts.backoff.base = std::chrono::milliseconds(1);
    opts.backoff.cap = std::chrono::milliseconds(2);
    opts.random = [] { return std::uint64_t{1}; };
    sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
    sy::pass_result r, again;
    std::size_t seen_in_first = 0;
    int tokens_in_first = -1;
    auto both = [&]() -> asio::awaitable<void> {
        r = co_await engine.run_pass();
        seen_in_first = ehr.seen.size();
        tokens_in_first = ehr.token_calls;
        ehr.fail_by_path.clear();
        again = co_await engine.run_pass();
    };
    asio::co_spawn(io, both, [](std::exception_ptr ep) {
        if (ep) std::rethrow_exception(ep);
    });
    io.run();
    // Check: one request in the whole pass; no metadata, no token request.
    EXPECT_EQ(seen_in_first, 1u);
    EXPECT_EQ(tokens_in_first, 0);
    ASSERT_EQ(r.patients.size(), 2u);
    for (const auto& p : r.patients) {
        ASSERT_TRUE(p.failure);
        EXPECT_EQ(to_string(p.failure->code), "tls_verify");
        EXPECT_FALSE(p.needs_reauth);
    }
    const std::string& m = r.patients[0].failure->message;
    EXPECT_NE(
        m.find("EHR ehr: discovery failed: GET https://ehr.test:443/fhir/.well-known/smart-configuration: "
               "TLS certificate verification failed for host ehr.test: the certificate has expired"),
        std::string::npos)
        << m;
    EXPECT_EQ(m.find("set token_endpoint"), std::string::npos) << m;
    // The next pass tries again (the EHR may have renewed its certificate).
    EXPECT_EQ(again.failed(), 0);
}

TEST_F(fixture, DiscoveryThatFailedOnTheNetworkSaysSoInsteadOfGuessing) {
    enroll("hmd-1", "p1");
    for (const char* path : {"/.well-known/smart-configuration", "/metadata"})
        ehr.fail_by_path[std::string(base) + path] = [](const http::request& req) {
            return headachemd::error{headachemd::errc::connect,
                                     "GET " + req.url + ": connecting: Connection refused"};
        };
    const auto r = pass();
    ASSERT_EQ(r.patients.size(), 1u);
    ASSERT_TRUE(r.patients[0].failure);
    EXPECT_EQ(to_string(r.patients[0].failure->code), "discovery_failed");
    EXPECT_NE(r.patients[0].failure->message.find("EHR ehr: discovery failed: GET "), std::string::npos)
        << r.patients[0].failure->message;
    EXPECT_NE(r.patients[0].failure->message.find("Connection refused"), std::string::npos)
        << r.patients[0].failure->message;
}

TEST_F(fixture, ResourcesGoneFromAFullPullGetDeletedAt) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1"), condition("c2", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    serve_conditions("p1", {{condition("c1", "p1")}});
    const auto r = pass();
    ASSERT_EQ(r.succeeded(), 1);
    EXPECT_EQ(r.patients[0].types[0].deleted, 1);
    EXPECT_EQ(count("deleted_at IS NOT NULL"), 1);
    EXPECT_EQ(count("id = 'c2' AND deleted_at IS NOT NULL"), 1);
}

TEST_F(fixture, ForbiddenTypeIsRecordedAndTheOtherTypesGoOn) {
    config.ehrs[0].resources = {{"Procedure", {}}, {"Condition", {}}};
    ehr.by_path[std::string(base) + "/metadata"] = [](const http::request&) {
        return fake_ehr::json(200,
                              R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[
          {"type":"Condition","searchParam":[{"name":"patient"}]},{"type":"Procedure","searchParam":[{"name":"patient"}]}]}]})");
    };
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ehr.by_path[std::string(base) + "/Procedure"] = [](const http::request&) {
        return fake_ehr::json(403, "{}");
    };
    const auto r = pass();
    ASSERT_EQ(r.patients.size(), 1u);
    EXPECT_TRUE(r.patients[0].types[0].not_permitted);
    EXPECT_EQ(count(), 1);
    st::sync_state s(db);
    bool recorded = false;
    for (const auto& row : s.all_status())
        if (row.resource_type == "Procedure") recorded = row.not_permitted;
    EXPECT_TRUE(recorded);
}

TEST_F(fixture, LogsNeverCarryTokens) {
    enroll("hmd-1", "p1");
    ehr.refresh_to_patient.erase("rt-initial-hmd-1");
    pass();
    EXPECT_EQ(logged().find("rt-initial"), std::string::npos) << logged();
    EXPECT_EQ(logged().find("at-"), std::string::npos) << logged();
}

}  // namespace

namespace {

// The engine's waits through its timer seam (engine_options::on_wait): each
// is recorded and moves the manual clock, and none takes real time, so the
// backoff itself is asserted, not just the number of responses (issue 18).
struct observed : fixture {
    std::vector<std::chrono::nanoseconds> waits;

    // Backoff as configured (the fixture's pass() shrinks it to 1-2 ms).
    sy::engine_options with_seam(std::uint64_t random = 12345) {
        sy::engine_options opts;
        opts.random = [random] { return random; };
        opts.on_wait = [this](std::chrono::nanoseconds d) {
            waits.push_back(d);
            clk.advance(d);
        };
        return opts;
    }

    sy::pass_result observed_pass(sy::engine_options opts) {
        asio::io_context io;
        sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
        sy::pass_result out;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { out = co_await engine.run_pass(); },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.run();
        counters = engine.counters();
        return out;
    }

    // The Condition search answers `first` for its first `n` requests, then serves.
    void answer_first(int n, std::function<http::response()> first) {
        serve_conditions("p1", {{condition("c1", "p1")}});
        const std::string url = std::string(base) + "/Condition?patient=p1&_count=2";
        auto original = ehr.by_url[url];
        ehr.by_url[url] = [original, first, n, hits = 0](const http::request& r) mutable {
            return ++hits <= n ? first() : original(r);
        };
    }

    static std::chrono::nanoseconds total(const std::vector<std::chrono::nanoseconds>& ws) {
        std::chrono::nanoseconds sum{0};
        for (const auto w : ws) sum += w;
        return sum;
    }
};

using std::chrono::milliseconds;

TEST_F(observed, ServerErrorsWaitTheJitteredExponentialBackoffUpToItsCap) {
    // Setup: the search answers 502 every time; base 500 ms, cap 1.5 s.
    enroll("hmd-1", "p1");
    ehr.by_url[std::string(base) + "/Condition?patient=p1&_count=2"] = [](const http::request&) {
        return fake_ehr::json(502, "bad gateway");
    };
    auto opts = with_seam(12345);
    opts.backoff.base = milliseconds(500);
    opts.backoff.cap = milliseconds(1500);

    // Run
    const auto r = observed_pass(opts);

    // Check: one wait between each of the 5 tries, uniform in
    // [0, min(cap, base * 2^attempt)] (full jitter): 12345 mod 501, 1001,
    // 1501, 1501.
    EXPECT_EQ(r.failed(), 1);
    const std::vector<std::chrono::nanoseconds> want = {milliseconds(321), milliseconds(333),
                                                        milliseconds(337), milliseconds(337)};
    EXPECT_EQ(waits, want);
    for (int a = 0; a < 4 && a < static_cast<int>(waits.size()); ++a)
        EXPECT_EQ(waits[static_cast<std::size_t>(a)], sy::backoff_delay(opts.backoff, a, 12345));
    EXPECT_LE(total(waits), sy::retry_budget(milliseconds(config.ehrs[0].http_timeout)));
}

TEST_F(observed, ServerErrorsStopWhenTheNextWaitWouldPassTheRetryBudget) {
    // Setup: http_timeout 1 s, so a budget of 3 s; near-maximal jitter.
    config.ehrs[0].http_timeout = std::chrono::seconds(1);
    enroll("hmd-1", "p1");
    int hits = 0;
    ehr.by_url[std::string(base) + "/Condition?patient=p1&_count=2"] = [&](const http::request&) {
        ++hits;
        return fake_ehr::json(500, "internal error");
    };
    auto opts = with_seam(4000);

    // Run
    const auto r = observed_pass(opts);

    // Check: 493 ms and 997 ms were waited (each then leaves room for a whole
    // 1 s try); 1999 ms more would not, so the third try was the last.
    EXPECT_EQ(r.failed(), 1);
    EXPECT_EQ(hits, 3);
    const std::vector<std::chrono::nanoseconds> want = {milliseconds(493), milliseconds(997)};
    EXPECT_EQ(waits, want);
    EXPECT_LE(total(waits) + milliseconds(1000), sy::retry_budget(milliseconds(1000)));
    ASSERT_TRUE(r.patients.at(0).failure);
    EXPECT_NE(r.patients[0].failure->message.find("retry budget of 3000 ms"), std::string::npos)
        << r.patients[0].failure->message;
}

TEST_F(observed, A429WithoutRetryAfterBacksOffLikeAServerError) {
    // Setup: two bare 429s, then the page.
    enroll("hmd-1", "p1");
    answer_first(2, [] { return fake_ehr::json(429, "{}"); });

    // Run
    const auto r = observed_pass(with_seam(12345));

    // Check: backoff for attempts 0 and 1 (base 500 ms, cap 60 s).
    ASSERT_EQ(r.succeeded(), 1);
    EXPECT_EQ(counters.http_429, 2);
    const std::vector<std::chrono::nanoseconds> want = {milliseconds(321), milliseconds(333)};
    EXPECT_EQ(waits, want);
}

TEST_F(observed, A429WithRetryAfterWaitsExactlyWhatItAsks) {
    enroll("hmd-1", "p1");
    answer_first(1, [] {
        auto resp = fake_ehr::json(429, "{}");
        resp.headers.push_back({"Retry-After", "7"});
        return resp;
    });
    const auto r = observed_pass(with_seam());
    ASSERT_EQ(r.succeeded(), 1);
    // RFC 9110 §10.2.3: 7 s, no jitter, and the limiter's hold adds nothing.
    const std::vector<std::chrono::nanoseconds> want = {std::chrono::seconds(7)};
    EXPECT_EQ(waits, want);
}

TEST_F(observed, ARefreshAnswered503WithRetryAfterWaitsThatLongThenRefreshes) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    auto real = ehr.by_path["https://ehr.test/token"];
    ehr.by_path["https://ehr.test/token"] = [real, hits = 0](const http::request& r) mutable {
        if (++hits > 1) return real(r);
        // Refused before the grant was looked at: the token is not spent.
        auto resp = fake_ehr::json(503, "{}");
        resp.headers.push_back({"Retry-After", "3"});
        return resp;
    };
    const auto r = observed_pass(with_seam());
    ASSERT_EQ(r.succeeded(), 1);
    const std::vector<std::chrono::nanoseconds> want = {std::chrono::seconds(3)};
    EXPECT_EQ(waits, want);
}

// eCW answers 429 with no Retry-After and counts calls per wall-clock
// minute: the wait is until the next minute boundary plus 250 ms for the
// server's clock. On the manual clock, not real time (issue 18, item 7:
// this test used to measure a real 350 ms sleep).
TEST_F(observed, EclinicalworksBare429WaitsForTheNextMinuteBoundary) {
    // Setup: 100 ms before a minute boundary (the manual clock starts on one),
    // with what the eclinicalworks preset sets (config_parse tests it).
    config.ehrs[0].profile = "eclinicalworks";
    config.ehrs[0].rate_window_fixed_minute = true;
    config.ehrs[0].bare_429_waits_for_minute = true;
    enroll("hmd-1", "p1");
    answer_first(1, [] { return fake_ehr::json(429, "{}"); });
    clk.advance(milliseconds(59'900));
    const auto boundary = sy::next_minute_boundary(clk.now());

    // Run
    const auto r = observed_pass(with_seam());

    // Check: exactly one wait, to 250 ms past the boundary; no backoff.
    ASSERT_EQ(r.succeeded(), 1);
    EXPECT_EQ(counters.http_429, 1);
    const std::vector<std::chrono::nanoseconds> want = {milliseconds(350)};
    EXPECT_EQ(waits, want);
    EXPECT_EQ(clk.now(), boundary + milliseconds(250));
}

}  // namespace

namespace {

TEST_F(fixture, AFailedPassKeepsTheLastSuccessAndRecordsTheError) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    st::sync_state s(db);
    const auto success = s.last_success("ehr", "hmd-1", "*");
    ASSERT_TRUE(success);
    // The EHR breaks; the status keeps when it last worked.
    ehr.by_url.clear();
    ehr.by_path[std::string(base) + "/Condition"] = [](const http::request&) {
        return fake_ehr::json(400, "{}");
    };
    clk.advance(std::chrono::hours(1));
    ASSERT_EQ(pass().failed(), 1);
    EXPECT_EQ(s.last_success("ehr", "hmd-1", "*"), success);
    EXPECT_EQ(s.last_success("ehr", "hmd-1", "Condition"), success);
    bool has_error = false;
    for (const auto& row : s.all_status())
        if (row.resource_type == "*") has_error = row.last_error.has_value();
    EXPECT_TRUE(has_error);
    EXPECT_FALSE(s.last_success("ehr", "nobody", "*"));
}

}  // namespace

namespace {

TEST_F(fixture, OnPatientDoneReportsEachJobAsItFinishes) {
    // Setup: two patients, one of whom needs re-authorization.
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    ehr.refresh_to_patient.erase("rt-initial-hmd-2");
    serve_conditions("p1", {{condition("c1", "p1")}});
    std::vector<std::pair<std::string, bool>> reported;
    sy::engine_options opts;
    opts.on_patient_done = [&reported](const sy::patient_result& p) {
        reported.emplace_back(p.patient_key, p.ok);
    };

    // Run
    const auto r = pass(opts);

    // Check: one call per job, with the job's outcome, matching the pass.
    ASSERT_EQ(reported.size(), 2u);
    ASSERT_EQ(r.patients.size(), 2u);
    for (std::size_t i = 0; i < reported.size(); ++i) {
        EXPECT_EQ(reported[i].first, r.patients[i].patient_key);
        EXPECT_EQ(reported[i].second, r.patients[i].ok);
    }
    EXPECT_EQ(std::count(reported.begin(), reported.end(), std::make_pair(std::string("hmd-1"), true)), 1);
    EXPECT_EQ(std::count(reported.begin(), reported.end(), std::make_pair(std::string("hmd-2"), false)), 1);
}

TEST_F(fixture, WithoutPassDetailsThePassKeepsOutcomesAndOnPatientDoneTheDetails) {
    // Setup: one patient with rows to write, one who needs re-authorization;
    // the daemon's setting (bench/soak: memory must not grow with patients).
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    ehr.refresh_to_patient.erase("rt-initial-hmd-2");
    serve_conditions("p1", {{condition("c1", "p1"), condition("c2", "p1")}});
    std::map<std::string, int> rows_seen;
    std::map<std::string, std::size_t> types_seen;
    sy::engine_options opts;
    opts.pass_details = false;
    opts.on_patient_done = [&](const sy::patient_result& p) {
        rows_seen[p.patient_key] = p.rows_changed();
        types_seen[p.patient_key] = p.types.size();
    };

    // Run
    const auto r = pass(opts);

    // Check: the callback saw the details; the pass keeps outcomes only.
    EXPECT_EQ(rows_seen["hmd-1"], 2);
    EXPECT_GT(types_seen["hmd-1"], 0u);
    ASSERT_EQ(r.patients.size(), 2u);
    for (const auto& p : r.patients) EXPECT_TRUE(p.types.empty()) << p.patient_key;
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_EQ(r.failed(), 1);
    for (const auto& p : r.patients) {
        EXPECT_EQ(p.failed(), p.patient_key == "hmd-2") << p.patient_key;
    }
}

// A private key made by OpenSSL here (the engine's own key code is not
// used to make it), written as PKCS#8 PEM with mode 0600.
void write_key(const std::filesystem::path& p, EVP_PKEY* k) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    headachemd::test::write_file(p, std::string_view(data, static_cast<std::size_t>(n)));
    std::filesystem::permissions(p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    BIO_free(bio);
    EVP_PKEY_free(k);
}

// The value of one form field of a token request body, still encoded.
std::string form_field(const std::string& body, const std::string& name) {
    const auto at = ("&" + body).find("&" + name + "=");
    if (at == std::string::npos) return {};
    const std::string rest = body.substr(at + name.size() + 1);
    return rest.substr(0, rest.find('&'));
}

TEST_F(fixture, PrivateKeyJwtSignsAFreshAssertionForEveryRefresh) {
    // Setup
    write_key(dir / "key.pem", EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)));
    config.ehrs[0].client_auth = cfg::client_auth_method::private_key_jwt;
    config.ehrs[0].private_key_file = dir / "key.pem";
    config.ehrs[0].key_id = "kid-1";
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    // Run: two passes (two engines, as two daemon runs) with the access
    // token run out between them, so two refreshes.
    ASSERT_EQ(pass().succeeded(), 1);
    clk.advance(std::chrono::hours(2));
    ASSERT_EQ(pass().succeeded(), 1);
    // Check
    std::vector<std::string> assertions;
    for (const auto& r : ehr.seen) {
        if (r.url != "https://ehr.test/token") continue;
        for (const auto& h : r.headers) EXPECT_NE(h.name, "Authorization");
        EXPECT_EQ(form_field(r.body, "client_assertion_type"),
                  "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
        EXPECT_EQ(form_field(r.body, "client_id"), "client");
        assertions.push_back(form_field(r.body, "client_assertion"));
    }
    ASSERT_EQ(assertions.size(), 2u);
    EXPECT_NE(assertions[0], assertions[1]) << "every token call signs a new assertion";
    // base64url of {"alg":"RS384","typ":"JWT","kid":"kid-1"}
    EXPECT_EQ(assertions[0].substr(0, assertions[0].find('.')),
              "eyJhbGciOiJSUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImtpZC0xIn0");
}

TEST_F(fixture, AnUnusableKeyStopsTheEngineAtStartAndNamesTheFile) {
    config.ehrs[0].client_auth = cfg::client_auth_method::private_key_jwt;
    const auto expect_throw = [&](const std::string& path, const std::string& why) {
        config.ehrs[0].private_key_file = path;
        asio::io_context io;
        try {
            sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log);
            ADD_FAILURE() << "no error for " << why;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        }
    };
    expect_throw((dir / "absent.pem").string(), "cannot read");
    write_key(dir / "p256.pem", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    expect_throw((dir / "p256.pem").string(), "P-384");
    // eClinicalWorks accepts RS384 only: an EC key is refused up front.
    write_key(dir / "p384.pem", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    config.ehrs[0].assertion_rs384_only = true;  // the eclinicalworks preset's
    expect_throw((dir / "p384.pem").string(), "RS384 only");
}

}  // namespace

namespace {

TEST_F(fixture, ARefreshTokenNearItsLapseIsRenewedEvenWhileTheAccessTokenIsGood) {
    // Setup: eCW-like 90-day refresh tokens, the 14-day keep-alive window,
    // and one engine for all passes (its access token stays cached).
    config.ehrs[0].refresh_token_lifetime = std::chrono::hours(24 * 90);
    config.ehrs[0].keepalive_before = std::chrono::hours(24 * 14);
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    asio::io_context io;
    sy::engine_options opts;
    opts.random = [] { return std::uint64_t{1}; };
    sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
    auto run = [&] {
        sy::pass_result out;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { out = co_await engine.run_pass(); },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.restart();
        io.run();
        return out;
    };
    auto backdate = [&](std::chrono::hours age) {
        const auto e = vault.find_enrollment("hmd-1", "ehr");
        vault.replace_refresh_token("hmd-1", "ehr", e->refresh_token, st::utc_timestamp(clk.now() - age));
    };

    // Run + Check: the first pass refreshes (no access token yet).
    ASSERT_EQ(run().succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 1);
    // 60 days old: outside the window, the cached access token is used.
    backdate(std::chrono::hours(24 * 60));
    ASSERT_EQ(run().succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 1);
    // 80 days old: lapses within 14 days, so it is refreshed now, and the
    // rotated token starts a new lifetime.
    backdate(std::chrono::hours(24 * 80));
    ASSERT_EQ(run().succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
    EXPECT_EQ(vault.find_enrollment("hmd-1", "ehr")->token_obtained_at, st::utc_timestamp(clk.now()));
    EXPECT_EQ(engine.counters().by_ehr.at("ehr").refresh_ok, 2u);
    ASSERT_EQ(run().succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
}

TEST_F(fixture, CountersAreKeptPerEhrByStatusAndRefreshOutcome) {
    // Setup: one patient served, one whose token the EHR refuses.
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    ehr.refresh_to_patient.erase("rt-initial-hmd-2");
    serve_conditions("p1", {{condition("c1", "p1")}});

    // Run
    const auto r = pass();

    // Check
    ASSERT_EQ(r.patients.size(), 2u);
    const auto& c = counters.by_ehr.at("ehr");
    EXPECT_EQ(c.refresh_ok, 1u);
    EXPECT_EQ(c.refresh_invalid_grant, 1u);
    EXPECT_EQ(c.refresh_failed, 0u);
    EXPECT_EQ(c.responses.at(400), 1u);  // the refused refresh
    std::uint64_t total = c.transport_errors;
    for (const auto& [status, n] : c.responses) total += n;
    EXPECT_EQ(total, static_cast<std::uint64_t>(counters.requests));
    for (const auto& p : r.patients) EXPECT_GE(p.elapsed, std::chrono::steady_clock::duration::zero());
}

// ---- one refresher per patient (issue 12, defect 1) ----------------------

// A scripted refresh lock: busy for the first `busy_for` tries (forever when
// negative); `on_busy` runs at each busy try, as the other holder's progress.
struct scripted_locks final : st::refresh_locks {
    int busy_for = 0;
    int tries = 0;
    std::function<void(int)> on_busy;
    std::optional<lease> try_acquire(std::string_view, std::string_view) override {
        ++tries;
        if (busy_for < 0 || tries <= busy_for) {
            if (on_busy) on_busy(tries);
            return std::nullopt;
        }
        return lease([] {});
    }
};

const sy::patient_result* find_patient(const sy::pass_result& r, const std::string& key) {
    for (const auto& p : r.patients)
        if (p.patient_key == key) return &p;
    return nullptr;
}

TEST_F(fixture, InvalidGrantForATokenAnotherProcessRotatedUsesTheStoredOneAndKeepsThePatient) {
    // Setup: a refresher that took no lock (an older binary) reaches the
    // strict EHR first with the same token, stores its rotated token, and
    // our request is refused.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    auto real = ehr.by_path["https://ehr.test/token"];
    std::string theirs;
    ehr.by_path["https://ehr.test/token"] = [&](const http::request& r) {
        // The first request: theirs arrives first, ours gets invalid_grant.
        if (theirs.empty()) theirs = other_process_refreshes("hmd-1", "rt-initial-hmd-1");
        return real(r);
    };

    // Run
    const auto r = pass();

    // Check: synced with the stored token, never marked.
    ASSERT_FALSE(theirs.empty());
    ASSERT_EQ(r.succeeded(), 1) << (r.patients[0].failure ? r.patients[0].failure->message : "");
    EXPECT_FALSE(r.patients[0].needs_reauth);
    EXPECT_EQ(r.failed(), 0);
    const auto stored = vault.find_enrollment("hmd-1", "ehr");
    EXPECT_FALSE(stored->needs_reauth);
    EXPECT_TRUE(ehr.refresh_to_patient.count(stored->refresh_token)) << "the vault holds a live token";
    EXPECT_TRUE(sent_refresh_token(theirs)) << "the stored token was used";
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_invalid_grant, 0u);
    EXPECT_EQ(count(), 1);
    EXPECT_EQ(logged().find("must be enrolled again"), std::string::npos);
}

TEST_F(fixture, TheTokenIsReadAgainUnderTheLockSoARotatedOneIsNeverSent) {
    // Setup: the job reads the enrollment, then (while it asks for the
    // server's metadata) another process refreshes this patient and stores
    // the rotated token.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    auto metadata = ehr.by_path[std::string(base) + "/metadata"];
    std::string theirs;
    ehr.by_path[std::string(base) + "/metadata"] = [&](const http::request& r) {
        if (theirs.empty()) theirs = other_process_refreshes("hmd-1", "rt-initial-hmd-1");
        return metadata(r);
    };

    // Run
    const auto r = sync_one("hmd-1");

    // Check: the spent token never left this process; one refresh, with theirs.
    ASSERT_FALSE(theirs.empty());
    ASSERT_TRUE(r.ok) << (r.failure ? r.failure->message : "");
    EXPECT_FALSE(r.needs_reauth);
    EXPECT_FALSE(sent_refresh_token("rt-initial-hmd-1"));
    EXPECT_TRUE(sent_refresh_token(theirs));
    EXPECT_EQ(counters.token_requests, 1);
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
}

TEST_F(fixture, ABusyRefreshLockIsWaitedForAndTheOtherHoldersTokenUsed) {
    // Setup: another process holds the lock for three tries and, before it
    // lets go, has rotated and stored the token.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    auto locks = std::make_shared<scripted_locks>();
    locks->busy_for = 3;
    std::string theirs;
    locks->on_busy = [&](int n) {
        if (n == 3) theirs = other_process_refreshes("hmd-1", "rt-initial-hmd-1");
    };
    sy::engine_options opts;
    opts.refresh_locks = locks;
    opts.refresh_lock_poll = std::chrono::milliseconds(1);

    // Run
    const auto r = pass(opts);

    // Check
    ASSERT_EQ(r.succeeded(), 1) << (r.patients[0].failure ? r.patients[0].failure->message : "");
    EXPECT_EQ(locks->tries, 4);
    EXPECT_FALSE(sent_refresh_token("rt-initial-hmd-1"));
    EXPECT_TRUE(sent_refresh_token(theirs));
    EXPECT_NE(logged().find("another headachemd-sync process (or job) is refreshing"), std::string::npos);
}

TEST_F(fixture, ALockHeldPastTheBoundSkipsThePatientWithoutMarkingIt) {
    // Setup: another process holds hmd-1's lock in the real lock file beside
    // the vault (the engine's default) and does not let go.
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    serve_conditions("p1", {{condition("c1", "p1")}});
    serve_conditions("p2", {{condition("c2", "p2")}});
    st::file_refresh_locks other_process(st::file_refresh_locks::beside(dir / "vault.db"));
    auto held = other_process.try_acquire("ehr", "hmd-1");
    ASSERT_TRUE(held);
    sy::engine_options opts;
    opts.refresh_lock_poll = std::chrono::milliseconds(1);
    opts.refresh_lock_wait = std::chrono::milliseconds(5);

    // Run
    const auto r = pass(opts);

    // Check: hmd-1 failed with the reason and was not refreshed nor marked;
    // hmd-2 synced.
    const auto* one = find_patient(r, "hmd-1");
    ASSERT_TRUE(one && one->failure);
    EXPECT_EQ(to_string(one->failure->code), "refresh_busy");
    EXPECT_NE(one->failure->message.find("another headachemd-sync process is refreshing patient hmd-1"),
              std::string::npos)
        << one->failure->message;
    EXPECT_FALSE(one->needs_reauth);
    EXPECT_TRUE(one->failed());
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
    EXPECT_FALSE(sent_refresh_token("rt-initial-hmd-1"));
    EXPECT_TRUE(find_patient(r, "hmd-2")->ok);
    EXPECT_EQ(r.failed(), 1);
}

TEST_F(fixture, AStillStoredTokenRefusedWithInvalidGrantMarksThePatientOnce) {
    // The lock changes nothing for a grant that is really gone.
    enroll("hmd-1", "p1");
    ehr.refresh_to_patient.erase("rt-initial-hmd-1");
    const auto r = sync_one("hmd-1");
    EXPECT_TRUE(r.needs_reauth);
    EXPECT_TRUE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
    EXPECT_EQ(ehr.token_calls, 1);
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_invalid_grant, 1u);
}

TEST_F(fixture, APatientMarkedByAnotherProcessDuringThePassFailsThePass) {
    // Setup: while this job pages, another process's refresh of hmd-1 was
    // refused and it marked the patient: `sync-once` must not exit 0 then.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    auto page = ehr.by_url[first];
    ehr.by_url[first] = [&](const http::request& r) {
        st::vault theirs(dir / "vault.db", vault_key);
        theirs.set_needs_reauth("hmd-1", "ehr", true, "2026-01-01T00:00:02Z");
        return page(r);
    };

    // Run
    const auto r = pass();

    // Check
    ASSERT_EQ(r.patients.size(), 1u);
    EXPECT_TRUE(r.patients[0].needs_reauth);
    EXPECT_EQ(r.failed(), 1);
}

}  // namespace

// ---- Issue 12: what the token endpoint answers is data, never trusted ----

namespace {

// A token endpoint that answers every refresh with `answer(request)`.
void answer_token_requests(fake_ehr& ehr, std::function<http::response(const http::request&)> answer) {
    ehr.by_path["https://ehr.test/token"] = [&ehr, answer = std::move(answer)](const http::request& r) {
        ++ehr.token_calls;
        return answer(r);
    };
}

// Every text column of headache.db's sync_status, and the captured log.
std::string status_text(st::analytics_db& db) {
    std::string all;
    for (const auto& row : st::sync_state(db).all_status())
        all += row.patient_key + " " + row.resource_type + " " + row.last_error.value_or("") + "\n";
    return all;
}

bool bearer_sent(const fake_ehr& ehr, const std::string& token) {
    for (const auto& r : ehr.seen)
        for (const auto& h : r.headers)
            if (h.name == "Authorization" && h.value.find(token) != std::string::npos) return true;
    return false;
}

}  // namespace

// Defect 2: "", " " or a token with CR/LF replaced the stored refresh token,
// and the next refresh sent `refresh_token=`: the patient was stranded.
TEST_F(fixture, AnEmptyOrMalformedRotatedRefreshTokenNeverReplacesTheStoredOne) {
    // Setup
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    std::vector<std::string> sent;
    for (const std::string& bad : std::vector<std::string>{R"("")", R"(" ")", R"("rt-9\r\nX")"}) {
        answer_token_requests(ehr, [&, bad](const http::request& r) {
            sent.push_back(form_field(r.body, "refresh_token"));
            ehr.access_to_patient["at-ok"] = "p1";
            return fake_ehr::json(200, R"({"access_token":"at-ok","token_type":"Bearer","expires_in":3600,)"
                                       R"("refresh_token":)" +
                                           bad + R"(,"patient":"p1"})");
        });
        // Run: each pass is a new engine after the access token ran out, so
        // each refreshes.
        clk.advance(std::chrono::hours(2));
        const auto r = pass();
        // Check: the access token was good, so the job is; the stored token stays.
        EXPECT_EQ(r.succeeded(), 1) << bad;
        EXPECT_EQ(vault.find_enrollment("hmd-1", "ehr")->refresh_token, "rt-initial-hmd-1") << bad;
    }
    EXPECT_EQ(sent, std::vector<std::string>(3, "rt-initial-hmd-1"));
    EXPECT_NE(logged().find("refresh_token was empty or malformed; the stored refresh token is kept"),
              std::string::npos);
    EXPECT_NE(logged().find("hmd-1"), std::string::npos);
}

// Defect 3 (token side): an access token over its cap made Beast throw when
// it built the header; one with CR/LF is a header injection. Refused at the
// token response: never sent, the job fails with a clear error, and the
// rotated refresh token that came with it is kept (the old one is spent).
TEST_F(fixture, AnOversizeOrMalformedAccessTokenIsNeverSentAndTheRotatedTokenIsKept) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const std::string huge(headachemd::smart::token_caps::access_token + 1, 'A');
    int n = 0;
    for (const std::string& bad :
         std::vector<std::string>{huge, std::string(R"(at-1\r\nX-Injected: 1)"), std::string("at 1")}) {
        const std::string rotated = "rt-rotated-" + std::to_string(++n);
        answer_token_requests(ehr, [&, bad, rotated](const http::request&) {
            ehr.access_to_patient[bad] = "p1";
            return fake_ehr::json(200, R"({"access_token":")" + bad +
                                           R"(","token_type":"Bearer","expires_in":3600,"refresh_token":")" +
                                           rotated + R"(","patient":"p1"})");
        });
        const auto r = pass();
        ASSERT_EQ(r.failed(), 1);
        ASSERT_TRUE(r.patients[0].failure);
        EXPECT_EQ(to_string(r.patients[0].failure->code), "bad_token_response");
        EXPECT_FALSE(r.patients[0].needs_reauth);
        EXPECT_EQ(vault.find_enrollment("hmd-1", "ehr")->refresh_token, rotated);
    }
    EXPECT_FALSE(bearer_sent(ehr, "AAAAAAAA"));
    EXPECT_FALSE(bearer_sent(ehr, "at-1"));
    EXPECT_FALSE(bearer_sent(ehr, "at 1"));
    EXPECT_EQ(count(), 0);
    EXPECT_EQ(status_text(db).find("AAAAAAAA"), std::string::npos);
    EXPECT_EQ(logged().find("AAAAAAAA"), std::string::npos);
}

// Defect 4: a token endpoint that echoes its request in error_description
// put the refresh token and the client secret into sync_status.last_error
// (headache.db), the logs and `status`.
TEST_F(fixture, AnEchoedRequestInErrorDescriptionReachesNeitherStatusNorLogs) {
    // Setup: a confidential client, so the request carries a secret.
    const std::string secret = "cs-Echo-7";
    headachemd::test::write_file(dir / "client.secret", secret);  // 0600: the file rule (lib/files)
    config.ehrs[0].client_auth = cfg::client_auth_method::client_secret_post;
    config.ehrs[0].client_secret_file = dir / "client.secret";
    enroll("hmd-1", "p1");
    answer_token_requests(ehr, [&](const http::request& r) {
        // The echo: the form body as received, then the token and secret decoded.
        return fake_ehr::json(400, R"({"error":"invalid_request","error_description":"could not parse )" +
                                       r.body + R"(\r\nrefresh token rt-initial-hmd-1 with )" + secret +
                                       R"("})");
    });
    // Run
    const auto r = pass();
    // Check: the job failed with the OAuth code and a description without secrets.
    ASSERT_EQ(r.failed(), 1);
    ASSERT_TRUE(r.patients[0].failure);
    EXPECT_EQ(to_string(r.patients[0].failure->code), "invalid_request");
    EXPECT_FALSE(r.patients[0].needs_reauth);
    const std::string status = status_text(db);
    EXPECT_NE(status.find("invalid_request"), std::string::npos) << status;
    for (const std::string& leaked : {std::string("rt-initial-hmd-1"), secret, std::string("\r")}) {
        EXPECT_EQ(status.find(leaked), std::string::npos) << status;
        EXPECT_EQ(logged().find(leaked), std::string::npos) << logged();
        EXPECT_EQ(r.patients[0].failure->message.find(leaked), std::string::npos);
    }
    EXPECT_EQ(ehr.token_calls, 1);
}

// Issue 12, 10b: a token response naming another patient than the enrolled
// one was accepted, and that patient's data pulled under this key.
TEST_F(fixture, ATokenResponseForAnotherPatientFailsTheJobAndItsAccessTokenIsNotUsed) {
    enroll("hmd-1", "pat-one");
    serve_conditions("pat-one", {{condition("c1", "pat-one")}});
    answer_token_requests(ehr, [&](const http::request&) {
        ehr.access_to_patient["at-other"] = "pat-one";
        return fake_ehr::json(
            200,
            R"({"access_token":"at-other","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-next",)"
            R"("patient":"pat-two"})");
    });
    const auto r = pass();
    ASSERT_EQ(r.failed(), 1);
    ASSERT_TRUE(r.patients[0].failure);
    const auto& f = *r.patients[0].failure;
    EXPECT_EQ(to_string(f.code), "token_patient_mismatch");
    EXPECT_NE(f.message.find("hmd-1"), std::string::npos) << f.message;
    EXPECT_EQ(f.message.find("pat-one"), std::string::npos) << f.message;
    EXPECT_EQ(f.message.find("pat-two"), std::string::npos) << f.message;
    EXPECT_FALSE(r.patients[0].needs_reauth);
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
    EXPECT_FALSE(bearer_sent(ehr, "at-other"));
    EXPECT_EQ(count(), 0);
    // The grant stays alive: the rotated token is stored for when the EHR is put right.
    EXPECT_EQ(vault.find_enrollment("hmd-1", "ehr")->refresh_token, "rt-next");
    const std::string status = status_text(db);
    EXPECT_NE(status.find("different patient"), std::string::npos) << status;
    EXPECT_EQ(status.find("pat-two"), std::string::npos) << status;
    EXPECT_NE(logged().find("hmd-1 at ehr: the token response names a different patient"), std::string::npos)
        << logged();
    EXPECT_EQ(logged().find("pat-two"), std::string::npos);
    // The same patient (SMART sends `patient` on refresh too) is fine.
    serve_conditions("pat-one", {{condition("c1", "pat-one")}});
    answer_token_requests(ehr, [&](const http::request&) {
        ehr.access_to_patient["at-same"] = "pat-one";
        return fake_ehr::json(
            200, R"({"access_token":"at-same","token_type":"Bearer","expires_in":3600,"patient":"pat-one"})");
    });
    EXPECT_EQ(pass().succeeded(), 1);
}

// ---- issue 12: hostile and broken servers ---------------------------------

namespace {

// A Condition of `patient` whose subject is `reference` as given.
std::string condition_with_subject(const std::string& id, const std::string& reference) {
    return R"({"resourceType":"Condition","id":")" + id +
           R"(","meta":{"lastUpdated":"2026-01-01T00:00:00Z"},"subject":{"reference":")" + reference +
           R"("},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"G43.709"}]}})";
}

std::string observation(const std::string& id, const std::string& patient) {
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","subject":{"reference":"Patient/)" + patient +
           R"("},"code":{"text":"blood pressure"}})";
}

// A searchset page whose entries carry search.mode (empty: none).
std::string page_with_modes(const std::vector<std::pair<std::string, std::string>>& resources,
                            const std::string& next = "") {
    std::string out = R"({"resourceType":"Bundle","type":"searchset",)";
    if (!next.empty()) out += R"("link":[{"relation":"next","url":")" + next + R"("}],)";
    out += R"("entry":[)";
    for (std::size_t i = 0; i < resources.size(); ++i) {
        if (i) out += ",";
        out += R"({"resource":)" + resources[i].first;
        if (!resources[i].second.empty()) out += R"(,"search":{"mode":")" + resources[i].second + R"("})";
        out += "}";
    }
    return out + "]}";
}

struct hostile : fixture {
    // A pass that must end within `limit` of real time: a server that asks
    // for a day's wait, or pages forever, must not hang the test. nullopt
    // when it did not end (the engine is then stopped and wound down).
    std::optional<sy::pass_result> pass_within(std::chrono::seconds limit, sy::engine_options opts = {}) {
        asio::io_context io;
        opts.backoff.base = std::chrono::milliseconds(1);
        opts.backoff.cap = std::chrono::milliseconds(2);
        if (!opts.random) opts.random = [] { return std::uint64_t{1}; };
        sy::engine engine(io.get_executor(), config, ehr, db, vault, clk, log, opts);
        std::optional<sy::pass_result> out;
        asio::co_spawn(
            io, [&]() -> asio::awaitable<void> { out = co_await engine.run_pass(); },
            [](std::exception_ptr ep) {
                if (ep) std::rethrow_exception(ep);
            });
        io.run_for(limit);
        const bool ended = out.has_value();
        if (!ended) {
            engine.stop();
            io.restart();
            io.run_for(limit);
        }
        counters = engine.counters();
        if (!ended) return std::nullopt;
        return out;
    }

    std::optional<st::status_row> status_of(const std::string& key, const std::string& type = "*") {
        st::sync_state s(db);
        for (auto& row : s.all_status())
            if (row.patient_key == key && row.resource_type == type) return row;
        return std::nullopt;
    }

    int requests_to(const std::string& fragment) const {
        int n = 0;
        for (const auto& r : ehr.seen) n += r.url.find(fragment) != std::string::npos ? 1 : 0;
        return n;
    }

    // Serves an endless chain of Condition pages for p1: page n is made by
    // `make(n)` and links to page n + 1, every URL new.
    void serve_endless(std::function<std::vector<std::string>(int)> make) {
        auto handler = [this, make](const http::request& r) {
            if (!ehr.authorized(r, "p1")) return fake_ehr::json(401, "{}");
            const auto at = r.url.find("&n=");
            const int n = at == std::string::npos ? 1 : std::stoi(r.url.substr(at + 3));
            return fake_ehr::json(
                200, bundle(make(n), std::string(base) + "/page?p=p1&n=" + std::to_string(n + 1)));
        };
        ehr.by_path[std::string(base) + "/Condition"] = handler;
        ehr.by_path[std::string(base) + "/page"] = handler;
    }
};

// Defect 3: an exception in one job fails that patient only.
TEST_F(hostile, AnExceptionInOnePatientsJobFailsThatPatientAndTheWorkerGoesOn) {
    // Setup: one worker, so the patients after the throwing one depend on it
    // going on. hmd-1's search throws, as Beast did for a 64 KiB token.
    config.ehrs[0].max_concurrent = 1;
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    enroll("hmd-3", "p3");
    serve_conditions("p2", {{condition("c2", "p2")}});
    serve_conditions("p3", {{condition("c3", "p3")}});
    ehr.by_url[std::string(base) + "/Condition?patient=p1&_count=2"] =
        [](const http::request&) -> http::response { throw std::length_error("field value too large"); };
    std::vector<std::string> done;
    sy::engine_options opts;
    opts.on_patient_done = [&done](const sy::patient_result& p) { done.push_back(p.patient_key); };

    // Run
    const auto r = pass_within(std::chrono::seconds(30), opts);

    // Check: the pass counts it, the others completed, and it is recorded.
    ASSERT_TRUE(r);
    ASSERT_EQ(r->patients.size(), 3u);
    EXPECT_EQ(r->failed(), 1);
    EXPECT_EQ(r->succeeded(), 2);
    EXPECT_EQ(done, (std::vector<std::string>{"hmd-1", "hmd-2", "hmd-3"}));
    for (const auto& p : r->patients) {
        if (p.patient_key != "hmd-1") continue;
        ASSERT_TRUE(p.failure);
        EXPECT_EQ(to_string(p.failure->code), "internal_error");
        EXPECT_TRUE(p.failed());
    }
    EXPECT_EQ(count("patient_key = 'hmd-2'"), 1);
    EXPECT_EQ(count("patient_key = 'hmd-3'"), 1);
    const auto row = status_of("hmd-1");
    ASSERT_TRUE(row);
    ASSERT_TRUE(row->last_error);
    EXPECT_NE(row->last_error->find("field value too large"), std::string::npos) << *row->last_error;
    const auto events = st::query_audit(vault.sql(), {.patient_key = std::string("hmd-1")});
    bool audited = false;
    for (const auto& ev : events)
        audited = audited || (ev.action == "job.failed" && ev.outcome == "internal_error");
    EXPECT_TRUE(audited);
    // `run` reschedules it no sooner than a minute, whatever its interval.
    const auto now = clk.now();
    EXPECT_GE(sy::next_run_after_failure(now, std::chrono::seconds(1), std::nullopt, 0) - now,
              std::chrono::seconds(60));
}

// Defect 5: a Retry-After beyond max_retry_after ends the jobs, no sleep.
TEST_F(hostile, ARetryAfterBeyondTheCapEndsTheEhrsJobsAsRateLimitedUntilThen) {
    // Setup: hmd-1's search answers 429 with Retry-After: 99999 (27.8 h).
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    config.ehrs[0].max_concurrent = 1;
    serve_conditions("p2", {{condition("c2", "p2")}});
    ehr.by_url[std::string(base) + "/Condition?patient=p1&_count=2"] = [](const http::request&) {
        auto resp = fake_ehr::json(429, "{}");
        resp.headers.push_back({"Retry-After", "99999"});
        return resp;
    };

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check: the pass ended; both patients are rate-limited until then.
    ASSERT_TRUE(r) << "the pass slept on Retry-After: 99999";
    const auto until = clk.now() + std::chrono::seconds(99999);
    EXPECT_EQ(r->failed(), 2);
    for (const auto& p : r->patients) {
        ASSERT_TRUE(p.failure) << p.patient_key;
        EXPECT_EQ(to_string(p.failure->code), "rate_limited") << p.patient_key;
        ASSERT_TRUE(p.retry_at) << p.patient_key;
        EXPECT_EQ(*p.retry_at, until);
        const auto row = status_of(p.patient_key);
        ASSERT_TRUE(row && row->last_error);
        EXPECT_EQ(row->last_error->rfind("rate-limited until " + st::utc_timestamp(until), 0), 0u)
            << *row->last_error;
        EXPECT_EQ(row->next_run_at, st::utc_timestamp(until));
    }
    EXPECT_EQ(requests_to("p2"), 0) << "nothing is sent to a held EHR";
    EXPECT_EQ(counters.rate_limited_until.at("ehr"), until);
    EXPECT_EQ(sy::next_run_after_failure(clk.now(), std::chrono::hours(6), until, 0), until);
}

TEST_F(hostile, AnHttpDateFarAheadIsCappedTheSameWay) {
    // Setup: a refresh answered 503 with a date decades ahead.
    enroll("hmd-1", "p1");
    ehr.by_path["https://ehr.test/token"] = [](const http::request&) {
        auto resp = fake_ehr::json(503, "{}");
        resp.headers.push_back({"Retry-After", "Fri, 31 Dec 2100 23:59:59 GMT"});
        return resp;
    };

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check
    ASSERT_TRUE(r) << "the pass slept on a Retry-After date in 2100";
    ASSERT_EQ(r->patients.size(), 1u);
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "rate_limited");
    ASSERT_TRUE(r->patients[0].retry_at);
    EXPECT_GT(*r->patients[0].retry_at, clk.now() + std::chrono::hours(24 * 365));
    EXPECT_FALSE(r->patients[0].needs_reauth);
    EXPECT_EQ(counters.by_ehr.at("ehr").refresh_failed, 0u);
}

TEST_F(hostile, ARetryAfterWithinTheCapIsStillWaitedOut) {
    // Setup: a cap of 1 s; the server asks for 1 s once.
    config.ehrs[0].max_retry_after = std::chrono::seconds(1);
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const std::string first = std::string(base) + "/Condition?patient=p1&_count=2";
    auto original = ehr.by_url[first];
    int hits = 0;
    ehr.by_url[first] = [&](const http::request& r) {
        if (++hits > 1) return original(r);
        auto resp = fake_ehr::json(429, "{}");
        resp.headers.push_back({"Retry-After", "1"});
        return resp;
    };

    // Run + Check
    const auto r = pass_within(std::chrono::seconds(20));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->succeeded(), 1);
    EXPECT_FALSE(r->patients[0].retry_at);
}

// Defect 6: endless next-link chains.
TEST_F(hostile, AnEndlessChainOfNewIdsStopsAtThePageCap) {
    // Setup
    config.ehrs[0].max_pages_per_search = 5;
    enroll("hmd-1", "p1");
    serve_endless(
        [](int n) { return std::vector<std::string>{condition("fresh-" + std::to_string(n), "p1")}; });

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check: five pages fetched and kept, no sixth asked for.
    ASSERT_TRUE(r) << "the chain never ended";
    ASSERT_EQ(r->patients.size(), 1u);
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "page_limit");
    EXPECT_EQ(r->patients[0].types[0].pages, 5);
    EXPECT_EQ(count(), 5);
    EXPECT_EQ(requests_to("/Condition") + requests_to("/page"), 5);
    const auto row = status_of("hmd-1");
    ASSERT_TRUE(row && row->last_error);
    EXPECT_NE(row->last_error->find("max_pages_per_search"), std::string::npos);
    st::sync_state s(db);
    EXPECT_FALSE(s.read_cursor("ehr", "hmd-1", "Condition").last_full_pull_at);
}

TEST_F(hostile, AnEndlessChainOfEmptyPagesStopsAtThePageCap) {
    // Setup
    config.ehrs[0].max_pages_per_search = 5;
    enroll("hmd-1", "p1");
    serve_endless([](int) { return std::vector<std::string>{}; });

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check
    ASSERT_TRUE(r) << "the chain never ended";
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "page_limit");
    EXPECT_EQ(requests_to("/Condition") + requests_to("/page"), 5);
}

TEST_F(hostile, AChainStopsAtTheResourceCapAndTheOverflowingPageIsNotWritten) {
    // Setup: two fresh Conditions a page, at most 7 resources a job.
    config.ehrs[0].max_resources_per_patient = 7;
    enroll("hmd-1", "p1");
    serve_endless([](int n) {
        return std::vector<std::string>{condition("a-" + std::to_string(n), "p1"),
                                        condition("b-" + std::to_string(n), "p1")};
    });

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check: pages 1-3 (6 resources) kept; page 4 would make 8.
    ASSERT_TRUE(r) << "the chain never ended";
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "resource_limit");
    EXPECT_EQ(count(), 6);
}

TEST_F(hostile, PagesOfATypeThatWasNotSearchedForAreRefused) {
    // Setup: the Condition search answers with Observations of the patient.
    enroll("hmd-1", "p1");
    serve_endless(
        [](int n) { return std::vector<std::string>{observation("o-" + std::to_string(n), "p1")}; });

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check: the first page is refused whole; no Observation row.
    ASSERT_TRUE(r) << "the chain never ended";
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "bad_page");
    EXPECT_NE(r->patients[0].failure->message.find("entry 0 is a Observation"), std::string::npos)
        << r->patients[0].failure->message;
    SQLite::Statement q(db.sql(), "SELECT count(*) FROM observation");
    q.executeStep();
    EXPECT_EQ(q.getColumn(0).getInt(), 0);
    EXPECT_EQ(requests_to("/page"), 0);
}

TEST_F(hostile, OtherTypesAreJudgedBySearchModeAndWhatTheSearchAskedFor) {
    // Setup: the Condition search asks for _revinclude (so included
    // Observations are expected); one patient each for the three answers.
    config.ehrs[0].resources = {{"Condition", {{"_revinclude", "Observation:focus"}}}};
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    enroll("hmd-3", "p3");
    const std::string medication = R"({"resourceType":"Medication","id":"m1","code":{"text":"x"}})";
    ehr.by_path[std::string(base) + "/Condition"] = [&](const http::request& r) {
        if (ehr.authorized(r, "p1"))  // an included Observation, and a Medication (never stored)
            return fake_ehr::json(200, page_with_modes({{condition("c1", "p1"), "match"},
                                                        {observation("o1", "p1"), "include"},
                                                        {medication, ""}}));
        if (ehr.authorized(r, "p2"))  // an Observation claiming to match a Condition search
            return fake_ehr::json(
                200, page_with_modes({{condition("c2", "p2"), "match"}, {observation("o2", "p2"), "match"}}));
        if (ehr.authorized(r, "p3"))  // a search.outcome warning
            return fake_ehr::json(
                200, page_with_modes({{condition("c3", "p3"), "match"},
                                      {R"({"resourceType":"OperationOutcome","issue":[{"severity":"warning",)"
                                       R"("code":"informational"}]})",
                                       "outcome"}}));
        return fake_ehr::json(401, "{}");
    };

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check
    ASSERT_TRUE(r);
    for (const auto& p : r->patients) {
        if (p.patient_key == "hmd-2") {
            ASSERT_TRUE(p.failure);
            EXPECT_NE(p.failure->message.find("marked as a match of a search for Condition"),
                      std::string::npos)
                << p.failure->message;
        } else {
            EXPECT_TRUE(p.ok) << p.patient_key << ": " << (p.failure ? p.failure->message : "");
        }
    }
    EXPECT_EQ(count("patient_key = 'hmd-2'"), 0);
    EXPECT_EQ(count("patient_key IN ('hmd-1', 'hmd-3')"), 2);
}

// 10c: one refresh per job for a 401, not one per resource type.
TEST_F(hostile, A401AfterTheRefreshFailsTheJobWithNoFurtherRefresh) {
    // Setup: two types served; every access token answers 401.
    config.ehrs[0].resources = {{"Condition", {}}, {"Procedure", {}}, {"Encounter", {}}};
    ehr.by_path[std::string(base) + "/metadata"] = [](const http::request&) {
        return fake_ehr::json(200,
                              R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[
          {"type":"Condition","searchParam":[{"name":"patient"}]},{"type":"Procedure","searchParam":[{"name":"patient"}]},
          {"type":"Encounter","searchParam":[{"name":"patient"}]}]}]})");
    };
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    for (const char* path : {"/Procedure", "/Encounter"}) {
        ehr.by_path[std::string(base) + path] = [this](const http::request& r) {
            return ehr.authorized(r, "p1") ? fake_ehr::json(200, bundle({})) : fake_ehr::json(401, "{}");
        };
    }
    ehr.expire_all_access = true;

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check: the first token, one refresh after the 401, and then the job ends.
    ASSERT_TRUE(r);
    EXPECT_EQ(r->failed(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
    ASSERT_TRUE(r->patients[0].failure);
    EXPECT_EQ(to_string(r->patients[0].failure->code), "unauthorized");
    EXPECT_EQ(requests_to("/Procedure") + requests_to("/Encounter"), 0);
}

// 10d: a subject on another server is another patient, whatever its id.
TEST_F(hostile, ASubjectOnAnotherServerWithTheRightIdIsRefused) {
    // Setup
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    serve_conditions("p1", {{condition_with_subject("c1", "https://other.test/fhir/Patient/p1")}});
    // The EHR's own base, absolute (host in another case): the same patient.
    serve_conditions("p2", {{condition_with_subject("c2", "https://EHR.test/fhir/Patient/p2"),
                             condition_with_subject("c3", "Patient/p2")}});

    // Run
    const auto r = pass_within(std::chrono::seconds(20));

    // Check
    ASSERT_TRUE(r);
    for (const auto& p : r->patients) {
        if (p.patient_key == "hmd-1") {
            ASSERT_TRUE(p.failure);
            EXPECT_EQ(to_string(p.failure->code), "wrong_patient");
        } else {
            EXPECT_TRUE(p.ok) << (p.failure ? p.failure->message : "");
        }
    }
    EXPECT_EQ(count("patient_key = 'hmd-1'"), 0);
    EXPECT_EQ(count("patient_key = 'hmd-2'"), 2);
}

}  // namespace

// ---- Issue 17: refresh only when needed; the refresh journal ----

namespace {

std::optional<std::string> journal_of(st::vault& v, const std::string& key) {
    SQLite::Statement q(v.sql(), "SELECT refresh_started_at FROM enrollment WHERE patient_key = ?1");
    q.bind(1, key);
    if (!q.executeStep() || q.getColumn(0).isNull()) return std::nullopt;
    return q.getColumn(0).getString();
}

// The token endpoint spends (rotates away) the refresh token it is sent,
// then the connection breaks before the answer arrives: the client cannot
// tell whether it reached the server.
void lose_the_answer_once(fake_ehr& ehr, bool spend) {
    ehr.fail_by_path["https://ehr.test/token"] = [&ehr, spend](const http::request& r) {
        ++ehr.token_calls;
        if (spend) {
            const std::string rest = r.body.substr(r.body.find("refresh_token=") + 14);
            ehr.refresh_to_patient.erase(rest.substr(0, rest.find('&')));
        }
        ehr.fail_by_path.erase("https://ehr.test/token");  // the next request gets through
        return headachemd::error{headachemd::errc::reset, "connection reset by peer"};
    };
}

}  // namespace

TEST_F(fixture, ARestartWithinTheAccessTokensLifetimeSendsNoRefresh) {
    // Setup
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    ASSERT_EQ(ehr.token_calls, 1);

    // Run: two more processes (engines), minutes later.
    clk.advance(std::chrono::minutes(20));
    ASSERT_EQ(pass().succeeded(), 1);
    clk.advance(std::chrono::minutes(20));
    ASSERT_EQ(sync_one("hmd-1").ok, true);

    // Check: the stored access token served both; nothing was refreshed.
    EXPECT_EQ(ehr.token_calls, 1);
    EXPECT_EQ(counters.by_ehr["ehr"].access_token_reused, 1u);
    const auto enr = vault.find_enrollment("hmd-1", "ehr");
    ASSERT_TRUE(enr->access);
    EXPECT_TRUE(ehr.access_to_patient.count(enr->access->token));
    // Sealed: the token's bytes are nowhere in the row.
    SQLite::Statement q(vault.sql(), "SELECT access_token FROM enrollment WHERE patient_key = 'hmd-1'");
    ASSERT_TRUE(q.executeStep());
    const std::string box(static_cast<const char*>(q.getColumn(0).getBlob()),
                          static_cast<std::size_t>(q.getColumn(0).getBytes()));
    EXPECT_EQ(box.find(enr->access->token), std::string::npos);
}

TEST_F(fixture, AnAccessTokenNearItsEndIsNotUsedAndTheRefreshStoresTheNextOne) {
    // Setup: the first token has 59 s left when the next process starts.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    const auto first = vault.find_enrollment("hmd-1", "ehr")->access->token;
    clk.advance(std::chrono::seconds(3600 - 59));

    // Run
    ASSERT_EQ(pass().succeeded(), 1);

    // Check
    EXPECT_EQ(ehr.token_calls, 2);
    EXPECT_EQ(counters.by_ehr["ehr"].access_token_reused, 0u);
    EXPECT_NE(vault.find_enrollment("hmd-1", "ehr")->access->token, first);
}

TEST_F(fixture, ANormalRefreshLeavesNoJournalEntry) {
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    EXPECT_EQ(journal_of(vault, "hmd-1"), std::nullopt);
    EXPECT_TRUE(vault.find_enrollment("hmd-1", "ehr")->interrupted_refresh_since.empty());
}

TEST_F(fixture, ARefreshKilledBetweenSendAndStoreIsNamedInterruptedRefreshNextTime) {
    // Setup: the EHR rotates the token, and the answer never arrives (as when
    // the process is killed after sending).
    enroll("hmd-1", "p1");
    enroll("hmd-2", "p2");
    serve_conditions("p1", {{condition("c1", "p1")}});
    serve_conditions("p2", {{condition("c2", "p2")}});
    lose_the_answer_once(ehr, true);
    const auto first = pass();
    EXPECT_EQ(first.succeeded(), 1);
    ASSERT_TRUE(journal_of(vault, "hmd-1"));
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "ehr")->interrupted_refresh_since.empty());

    // Run: the next process finds the entry and tries the token once.
    const int calls = ehr.token_calls;
    const auto next = pass();

    // Check
    EXPECT_EQ(ehr.token_calls, calls + 1);
    const auto enr = vault.find_enrollment("hmd-1", "ehr");
    EXPECT_TRUE(enr->needs_reauth);
    EXPECT_EQ(enr->needs_reauth_reason, "interrupted_refresh");
    EXPECT_EQ(journal_of(vault, "hmd-1"), std::nullopt);  // the reason says it now
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_interrupted, 1u);
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_invalid_grant, 1u);
    for (const auto& p : next.patients)
        if (p.patient_key == "hmd-1") {
            EXPECT_TRUE(p.needs_reauth);
            EXPECT_EQ(p.needs_reauth_reason, "interrupted_refresh");
        }
    bool audited = false;
    for (const auto& ev : st::query_audit(vault.sql(), {.patient_key = std::string("hmd-1")}))
        audited = audited || (ev.action == "needs_reauth" && ev.outcome == "interrupted_refresh");
    EXPECT_TRUE(audited);
    EXPECT_NE(logged().find("after a refresh that was interrupted"), std::string::npos);
    // hmd-2 was never touched by it.
    EXPECT_FALSE(vault.find_enrollment("hmd-2", "ehr")->needs_reauth);
}

TEST_F(fixture, AnInterruptedRefreshWhoseTokenStillWorksClearsTheEntry) {
    // Setup: the connection broke before the EHR spent the token.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    lose_the_answer_once(ehr, false);
    EXPECT_EQ(pass().succeeded(), 0);
    ASSERT_TRUE(journal_of(vault, "hmd-1"));

    // Run
    const auto r = pass();

    // Check
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_EQ(journal_of(vault, "hmd-1"), std::nullopt);
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "ehr")->needs_reauth);
}

TEST_F(fixture, AnInvalidGrantWithoutAJournalEntryKeepsItsOwnReason) {
    enroll("hmd-1", "p1");
    ehr.refresh_to_patient.erase("rt-initial-hmd-1");  // revoked at the EHR
    serve_conditions("p1", {{condition("c1", "p1")}});
    EXPECT_EQ(pass().succeeded(), 0);
    const auto enr = vault.find_enrollment("hmd-1", "ehr");
    EXPECT_TRUE(enr->needs_reauth);
    EXPECT_EQ(enr->needs_reauth_reason, "invalid_grant");
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_interrupted, 0u);
}

TEST_F(fixture, AnOAuthErrorAnswerClearsTheJournalEntry) {
    // Setup: the EHR answers invalid_client (RFC 6749 §5.2): the token was
    // not spent, so a later invalid_grant is not an interrupted refresh.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    answer_token_requests(
        ehr, [](const http::request&) { return fake_ehr::json(401, R"({"error":"invalid_client"})"); });
    EXPECT_EQ(pass().succeeded(), 0);
    EXPECT_EQ(journal_of(vault, "hmd-1"), std::nullopt);
}

TEST_F(fixture, AnAccessTokenAnsweredWith401IsDroppedFromTheVaultAndRefreshedOnce) {
    // Setup: the EHR revokes the stored access token between two runs.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    const auto revoked = vault.find_enrollment("hmd-1", "ehr")->access->token;
    ehr.access_to_patient.erase(revoked);

    // Run
    const auto r = pass();

    // Check: one 401, one refresh, and the vault holds the new token.
    EXPECT_EQ(r.succeeded(), 1);
    EXPECT_EQ(ehr.token_calls, 2);
    const auto now = vault.find_enrollment("hmd-1", "ehr")->access;
    ASSERT_TRUE(now);
    EXPECT_NE(now->token, revoked);
    EXPECT_TRUE(ehr.access_to_patient.count(now->token));
}

namespace {

// Requests of ehr.seen from `from` on that carried `token` as their bearer token.
int sent_bearer(const fake_ehr& ehr, const std::string& token, std::size_t from = 0) {
    int n = 0;
    for (std::size_t i = from; i < ehr.seen.size(); ++i)
        for (const auto& h : ehr.seen[i].headers)
            if (h.name == "Authorization" && h.value == "Bearer " + token) ++n;
    return n;
}

}  // namespace

// Issue 17: an access token the EHR answered 401 to leaves vault.db at
// once, not only when the refresh that follows succeeds. Here the token
// endpoint fails (HTTP 500, which spends nothing), and the next engine on
// the same vault (another process, or the next start) must refresh
// instead of sending the refused token again.
TEST_F(fixture, AnAccessTokenRefusedWith401LeavesTheVaultEvenWhenTheRefreshFails) {
    // Setup: a first pass stores an access token; the EHR then revokes it
    // and its token endpoint fails.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    const auto refused = vault.find_enrollment("hmd-1", "ehr")->access->token;
    ehr.access_to_patient.erase(refused);
    const auto working = ehr.by_path["https://ehr.test/token"];
    answer_token_requests(ehr, [](const http::request&) { return fake_ehr::json(500, "{}"); });

    // Run: the job that gets the 401, then cannot refresh.
    const auto failed = pass();

    // Check: the refused token is no longer in the vault.
    ASSERT_EQ(failed.failed(), 1);
    EXPECT_EQ(sent_bearer(ehr, refused), 2);  // the first pass, and the 401
    const auto stored = vault.find_enrollment("hmd-1", "ehr")->access;
    EXPECT_FALSE(stored && stored->token == refused) << "the refused access token is still in the vault";

    // Run: another engine on the same vault, once the token endpoint works.
    ehr.by_path["https://ehr.test/token"] = working;
    const std::size_t before = ehr.seen.size();
    const auto next = pass();

    // Check: it refreshed, and never sent the refused token.
    EXPECT_EQ(next.succeeded(), 1);
    EXPECT_EQ(sent_bearer(ehr, refused, before), 0);
    EXPECT_EQ(counters.token_requests, 1);
}

// The same when vault.db cannot drop the refused token (a failing write):
// the engine remembers it as refused and does not take it back from the
// vault for the refresh that follows, which would send it again, get a
// second 401 and fail the job without refreshing.
TEST_F(fixture, ARefusedAccessTokenTheVaultCouldNotDropIsNotTakenBack) {
    // Setup: as above, with a working token endpoint; every write that
    // clears the access token fails on the engine's vault connection.
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    ASSERT_EQ(pass().succeeded(), 1);
    const auto refused = vault.find_enrollment("hmd-1", "ehr")->access->token;
    ehr.access_to_patient.erase(refused);
    vault.sql().exec(
        "CREATE TEMP TRIGGER no_forget BEFORE UPDATE OF access_token ON enrollment "
        "WHEN NEW.access_token IS NULL BEGIN SELECT RAISE(ABORT, 'write failed'); END");
    const std::size_t before = ehr.seen.size();

    // Run
    const auto r = pass();

    // Check: one 401, then a refresh; the new token is stored over the old.
    ASSERT_EQ(r.succeeded(), 1) << (r.patients[0].failure ? r.patients[0].failure->message : "");
    EXPECT_EQ(sent_bearer(ehr, refused, before), 1);
    EXPECT_EQ(counters.token_requests, 1);
    EXPECT_NE(logged().find("cannot drop the refused access token"), std::string::npos) << logged();
    const auto stored = vault.find_enrollment("hmd-1", "ehr")->access;
    ASSERT_TRUE(stored);
    EXPECT_NE(stored->token, refused);
}

TEST_F(fixture, AnotherProcessesAccessTokenIsTakenUnderTheLockInsteadOfRefreshing) {
    // Setup: while this job asks for the metadata, another process refreshes
    // and stores both tokens (what a daemon beside this sync-once does).
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    auto metadata = ehr.by_path[std::string(base) + "/metadata"];
    bool done = false;
    ehr.by_path[std::string(base) + "/metadata"] = [&](const http::request& r) {
        if (!done) {
            done = true;
            http::request req;
            req.url = "https://ehr.test/token";
            req.body = "grant_type=refresh_token&refresh_token=rt-initial-hmd-1";
            const auto answer = ehr.token(req);
            const auto field = [&](const std::string& name) {
                const std::string key = "\"" + name + "\":\"";
                const auto at = answer.body.find(key) + key.size();
                return answer.body.substr(at, answer.body.find('"', at) - at);
            };
            st::vault theirs(dir / "vault.db", vault_key);
            theirs.finish_refresh(
                "hmd-1", "ehr", field("refresh_token"), st::utc_timestamp(clk.now()),
                st::stored_access_token{field("access_token"),
                                        st::utc_timestamp(clk.now() + std::chrono::hours(1)), ""});
        }
        return metadata(r);
    };

    // Run
    const auto r = sync_one("hmd-1");

    // Check: no refresh of our own; their access token served the job.
    ASSERT_TRUE(r.ok) << (r.failure ? r.failure->message : "");
    EXPECT_EQ(counters.token_requests, 0);
    EXPECT_EQ(ehr.token_calls, 1);  // theirs
}

// Issue 17, item 3: the _summary=count request exists only to notice
// deletes, so it runs on count_check_every's schedule, not on every pass.
TEST_F(fixture, TheDeleteCountCheckRunsOnItsScheduleNotOnEveryPass) {
    // Setup: a server with _lastUpdated, so passes after the first are
    // incremental; it counts the count requests it answers.
    ehr.by_path[std::string(base) + "/metadata"] = [](const http::request&) {
        return fake_ehr::json(200,
                              R"({"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[
              {"type":"Condition","searchParam":[{"name":"patient"},{"name":"_lastUpdated"}]}]}]})");
    };
    enroll("hmd-1", "p1");
    int count_requests = 0;
    ehr.by_path[std::string(base) + "/Condition"] = [&](const http::request& r) {
        if (!ehr.authorized(r, "p1")) return fake_ehr::json(401, "{}");
        if (r.url.find("_summary=count") != std::string::npos) {
            ++count_requests;
            return fake_ehr::json(200, R"({"resourceType":"Bundle","type":"searchset","total":1})");
        }
        return fake_ehr::json(200, bundle({condition("c1", "p1")}));
    };
    ASSERT_EQ(pass().succeeded(), 1);  // the full pull is the first check

    // Run and check: passes within a day send no count request...
    for (int i = 0; i < 3; ++i) {
        clk.advance(std::chrono::hours(6));
        const auto r = pass();
        ASSERT_EQ(r.succeeded(), 1);
        EXPECT_TRUE(r.patients[0].types[0].incremental);
        EXPECT_EQ(r.patients[0].types[0].count_checks, 0);
    }
    EXPECT_EQ(count_requests, 0);
    // ...the first one past count_check_every (1 day) sends one...
    clk.advance(std::chrono::hours(7));
    EXPECT_EQ(pass().patients[0].types[0].count_checks, 1);
    EXPECT_EQ(count_requests, 1);
    // ...and the schedule starts again from it; with "0s" every pass checks.
    EXPECT_EQ(pass().patients[0].types[0].count_checks, 0);
    config.ehrs[0].count_check_every = std::chrono::seconds(0);
    EXPECT_EQ(pass().patients[0].types[0].count_checks, 1);
    EXPECT_EQ(count_requests, 2);
}

// ---- issue 18, item 1: a refresh that may have arrived is never resent ------

namespace {

// The token endpoint spends (rotates away) the refresh token it is sent, and
// then the answer is lost the way `code` says: "reset" (the connection
// broke), "timeout" (the answer never came within http_timeout, which the
// manual clock shows as spent) or "truncated" (part of the body arrived).
// The client cannot tell whether its request reached the server. Only the
// first request is lost; later ones reach the strict endpoint, which
// refuses a spent token with invalid_grant.
void spend_and_lose_once(fake_ehr& ehr, headachemd::manual_clock& clk, std::chrono::seconds timeout,
                         std::string code) {
    ehr.fail_by_path["https://ehr.test/token"] = [&ehr, &clk, timeout, code](const http::request& r) {
        ++ehr.token_calls;
        const std::string rest = r.body.substr(r.body.find("refresh_token=") + 14);
        ehr.refresh_to_patient.erase(rest.substr(0, rest.find('&')));
        if (code == "timeout") clk.advance(timeout);
        // The erase below destroys this lambda and its captures: keep what
        // the answer needs first (AddressSanitizer: heap-use-after-free).
        const std::string lost = code;
        ehr.fail_by_path.erase("https://ehr.test/token");
        return headachemd::error{headachemd::error_code_from_string(lost),
                                 "POST https://ehr.test:443/token: the answer was lost (" + lost + ")"};
    };
}

struct lost_refresh : fixture, ::testing::WithParamInterface<const char*> {
    // Token requests this engine sent carrying `token` as their refresh token.
    int sent_with(const std::string& token) const {
        int n = 0;
        for (const auto& r : ehr.seen) {
            const auto at = r.body.find("refresh_token=");
            if (at == std::string::npos) continue;
            const std::string rest = r.body.substr(at + 14);
            n += rest.substr(0, rest.find('&')) == token ? 1 : 0;
        }
        return n;
    }
};

}  // namespace

TEST_P(lost_refresh, IsNotResentWithinTheJobAndTheNextJobNamesItInterruptedRefresh) {
    // Setup
    const std::string code = GetParam();
    enroll("hmd-1", "p1");
    serve_conditions("p1", {{condition("c1", "p1")}});
    const std::string token = "rt-initial-hmd-1";
    spend_and_lose_once(ehr, clk, config.ehrs[0].http_timeout, code);

    // Run: the job whose refresh answer was lost.
    const auto first = sync_one("hmd-1");

    // Check: one request with that token, whatever the retry policy allows
    // for a GET; the job failed, the patient is not (yet) marked, and the
    // journal keeps the interrupted refresh.
    EXPECT_EQ(sent_with(token), 1);
    EXPECT_EQ(ehr.token_calls, 1);
    EXPECT_FALSE(first.ok);
    ASSERT_TRUE(first.failure);
    EXPECT_EQ(to_string(first.failure->code), code) << first.failure->message;
    EXPECT_FALSE(first.needs_reauth);
    EXPECT_TRUE(journal_of(vault, "hmd-1"));
    EXPECT_EQ(count(), 0);

    // Run: the next job, at the strict server.
    const auto next = sync_one("hmd-1");

    // Check: the token is tried once more (the journal's one try), refused,
    // and the patient is marked for the reason that says what happened.
    EXPECT_EQ(sent_with(token), 2);
    EXPECT_TRUE(next.needs_reauth);
    EXPECT_EQ(next.needs_reauth_reason, "interrupted_refresh");
    EXPECT_EQ(vault.find_enrollment("hmd-1", "ehr")->needs_reauth_reason, "interrupted_refresh");
    EXPECT_EQ(counters.by_ehr["ehr"].refresh_interrupted, 1u);
}

std::string fault_name(const ::testing::TestParamInfo<const char*>& p) { return p.param; }

INSTANTIATE_TEST_SUITE_P(TokenFaults, lost_refresh, ::testing::Values("reset", "timeout", "truncated"),
                         fault_name);

// ----- materialized views (issue 16 item 3)

namespace {

std::vector<std::string> view_rows(st::analytics_db& db, const std::string& sql) {
    std::vector<std::string> out;
    SQLite::Statement q(db.sql(), sql);
    while (q.executeStep()) {
        std::string line;
        for (int i = 0; i < q.getColumnCount(); ++i)
            line +=
                (i ? "|" : "") + (q.getColumn(i).isNull() ? std::string("NULL") : q.getColumn(i).getString());
        out.push_back(line);
    }
    return out;
}

TEST_F(fixture, ViewRowsFollowEachPageAndADeleteFromAFullPull) {
    // Setup
    headachemd::test::write_file(dir / "codes.json",
                                 R"({"resourceType":"ViewDefinition","resource":"Condition",
      "select":[{"column":[{"name":"cond_id","path":"id"},{"name":"code","path":"code.coding.code"}]}]})");
    config.views.push_back({"codes", dir / "codes.json"});
    enroll("hmd-1", "p1");
    serve_conditions("p1",
                     {{condition("c1", "p1"), condition("c2", "p1")}, {condition("c3", "p1", "G44.209")}});
    // Run
    ASSERT_EQ(pass().succeeded(), 1);
    // Check: every page's resources, under the patient's key
    EXPECT_EQ(
        view_rows(db, "SELECT cond_id, code, _source, _patient_key FROM view_codes ORDER BY cond_id"),
        (std::vector<std::string>{"c1|G43.709|ehr|hmd-1", "c2|G43.709|ehr|hmd-1", "c3|G44.209|ehr|hmd-1"}));
    // Run: c2 is gone and c1 changed
    serve_conditions("p1", {{condition("c1", "p1", "G43.909"), condition("c3", "p1", "G44.209")}});
    ASSERT_EQ(pass().succeeded(), 1);
    // Check
    EXPECT_EQ(view_rows(db, "SELECT cond_id, code FROM view_codes ORDER BY cond_id"),
              (std::vector<std::string>{"c1|G43.909", "c3|G44.209"}));
}

TEST_F(fixture, ARefusedViewDefinitionStopsTheEngineWithItsFileAndPath) {
    // Setup
    headachemd::test::write_file(dir / "bad.json",
                                 R"({"resourceType":"ViewDefinition","resource":"Condition","select":[]})");
    config.views.push_back({"bad", dir / "bad.json"});
    enroll("hmd-1", "p1");
    // Run / Check
    try {
        (void)pass();
        ADD_FAILURE() << "the engine started with a refused definition";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("[[view]] \"bad\": " + (dir / "bad.json").string() + ": select"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
