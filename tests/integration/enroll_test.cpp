// Browser enrollment (authorization code + PKCE) against the sandbox EHR
// over loopback TLS. A headless "browser" (our HTTP client, which never
// follows redirects by itself) plays the person: it opens the authorize URL
// and follows the redirect where a browser would.
#include <signal.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/enroll.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using headachemd::test::temp_dir;
using namespace std::chrono_literals;

// A port nobody listens on right now, for a redirect URI that must be
// registered at the sandbox before our listener exists.
std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

// One request with our own client (no redirects followed), like a browser
// that shows us each hop.
headachemd::http::response browse(const std::string& url, const std::filesystem::path& ca) {
    asio::io_context io;
    headachemd::http::client_options o;
    o.extra_ca_files.push_back(ca);
    headachemd::http::client http(io.get_executor(), o);
    headachemd::http::response out;
    auto task = [&]() -> asio::awaitable<void> {
        // A named request: GCC 12 destroys a braced temporary inside a
        // co_await operand twice.
        headachemd::http::request req;
        req.url = url;
        auto r = co_await http.send(std::move(req));
        if (r) out = std::move(*r);
        http.close_idle();
    };
    asio::co_spawn(io, task, asio::detached);
    io.run();
    return out;
}

std::string location_of(const headachemd::http::response& r) {
    auto l = r.header("Location");
    return l ? std::string(*l) : std::string();
}

struct enroll_fixture : ::testing::Test {
    temp_dir dir;
    std::uint16_t callback_port = free_port();
    std::string redirect_uri = "http://127.0.0.1:" + std::to_string(callback_port) + "/callback";
    std::unique_ptr<headachemd::sandbox::background_server> ehr;

    void start_ehr(int patients = 3) {
        headachemd::sandbox::options o;
        o.patients = patients;
        o.redirect_uris = {redirect_uri};
        ehr = std::make_unique<headachemd::sandbox::background_server>(o);
        (*ehr)->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", (*ehr)->config().client_secret);
    }

    // The config a clinic would write: patient hmd-1 with no fhir_patient_id
    // (learnt at enrollment), hmd-2 pinned to the sandbox's second patient.
    std::string toml(bool daemon_listener = false) {
        std::string t = "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                        (dir / "vault.db").string() + "\"\nlog_level = \"info\"\n" +
                        headachemd::test::token_key_toml(dir.path());
        if (daemon_listener) t += "callback_listen = \"127.0.0.1:" + std::to_string(callback_port) + "\"\n";
        t += "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" + (*ehr)->fhir_base() +
             "\"\nclient_id = \"" + (*ehr)->config().client_id + "\"\nclient_secret_file = \"" +
             (dir / "client.secret").string() + "\"\nca_file = \"" + (dir / "ca.pem").string() +
             "\"\nredirect_uri = \"" + redirect_uri + "\"\npage_size = 50\nrequests_per_minute = 60000\n";
        t += "\n[[patient]]\nkey = \"hmd-1\"\nehr = \"sandbox\"\n";
        t += "\n[[patient]]\nkey = \"hmd-2\"\nehr = \"sandbox\"\nfhir_patient_id = \"" +
             (*ehr)->patient_ids().at(1) + "\"\n";
        return t;
    }

    std::string write_config(bool daemon_listener = false) {
        const auto p = dir / "sync.toml";
        headachemd::test::write_file(p, toml(daemon_listener));
        return p.string();
    }

    std::optional<st::enrollment> enrollment_of(const std::string& key) {
        st::vault v(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        return v.find_enrollment(key, "sandbox");
    }

    long long rows_for_all() {
        SQLite::Database db((dir / "headache.db").string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, "SELECT count(*) FROM condition");
        q.executeStep();
        return q.getColumn(0).getInt64();
    }

    // sync-once after enrollment pulls the new patient's data.
    void expect_sync_pulls(const std::string& config_path, const std::string& fhir_id) {
        auto r = headachemd::test::run_binary({"sync-once", "--config", config_path}, dir.path());
        EXPECT_NE(r.out.find("hmd-1"), std::string::npos) << r.out << r.err;
        const auto want = (*ehr)->count_for(fhir_id, "Condition");
        ASSERT_GT(want, 0u);
        EXPECT_EQ(rows_for_all(), static_cast<long long>(want)) << r.out << r.err;
    }
};

TEST_F(enroll_fixture, ListenModeCatchesTheRedirectStoresTheTokenAndSyncOncePullsThePatient) {
    start_ehr();
    const auto config_path = write_config();
    const std::string patient = (*ehr)->patient_ids().at(0);
    (*ehr)->set_authorize_patient(patient);
    auto child = headachemd::test::spawn_piped({"enroll", "hmd-1", "--config", config_path, "--listen",
                                                "127.0.0.1:" + std::to_string(callback_port)},
                                               dir.path(), false, true, false);
    ASSERT_GT(child.pid, 0);
    std::string seen;
    // The URL is printed only once the listener is bound.
    const auto url = headachemd::test::read_line_containing(child.out, "/authorize?", seen);
    ASSERT_TRUE(url) << seen << headachemd::test::read_file(dir / "stderr.txt");
    EXPECT_NE(url->find("code_challenge_method=S256"), std::string::npos);
    EXPECT_NE(url->find("offline_access"), std::string::npos);
    const auto consent = browse(*url, dir / "ca.pem");
    ASSERT_EQ(consent.status, 302) << consent.body;
    const auto back = location_of(consent);
    ASSERT_EQ(back.rfind(redirect_uri + "?", 0), 0u) << back;
    const auto page = browse(back, dir / "ca.pem");
    EXPECT_EQ(page.status, 200) << page.body;
    EXPECT_NE(page.body.find("HeadacheMD is connected"), std::string::npos);
    EXPECT_EQ(headachemd::test::wait_exit(child.pid), 0) << headachemd::test::read_file(dir / "stderr.txt");
    close(child.out);
    // The page shows no token, code or state.
    const auto code_at = back.find("code=");
    const std::string code = back.substr(code_at + 5, back.find('&', code_at) - code_at - 5);
    EXPECT_EQ(page.body.find(code), std::string::npos);

    const auto e = enrollment_of("hmd-1");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fhir_patient_id, patient);
    EXPECT_FALSE(e->refresh_token.empty());
    EXPECT_EQ(page.body.find(e->refresh_token), std::string::npos);
    expect_sync_pulls(config_path, patient);
}

TEST_F(enroll_fixture, PasteModeTakesTheFinalUrlFromStdin) {
    start_ehr();
    const auto config_path = write_config();
    const std::string patient = (*ehr)->patient_ids().at(0);
    (*ehr)->set_authorize_patient(patient);
    auto child = headachemd::test::spawn_piped({"enroll", "hmd-1", "--config", config_path, "--paste"},
                                               dir.path(), true, true, false);
    ASSERT_GT(child.pid, 0);
    std::string seen;
    const auto url = headachemd::test::read_line_containing(child.out, "/authorize?", seen);
    ASSERT_TRUE(url) << seen;
    const auto back = location_of(browse(*url, dir / "ca.pem"));
    ASSERT_FALSE(back.empty());
    // Pasted as people paste: with spaces and quotes around it.
    const std::string pasted = "  \"" + back + "\"  \n";
    ASSERT_EQ(write(child.in, pasted.data(), pasted.size()), static_cast<ssize_t>(pasted.size()));
    close(child.in);
    EXPECT_EQ(headachemd::test::wait_exit(child.pid), 0) << headachemd::test::read_file(dir / "stderr.txt");
    close(child.out);
    const auto e = enrollment_of("hmd-1");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fhir_patient_id, patient);
    expect_sync_pulls(config_path, patient);
}

TEST_F(enroll_fixture, TheRunningDaemonCatchesTheRedirectAndSyncsTheNewPatientAtOnce) {
    start_ehr();
    const auto config_path = write_config(true);
    const std::string patient = (*ehr)->patient_ids().at(0);
    (*ehr)->set_authorize_patient(patient);
    auto daemon =
        headachemd::test::spawn_piped({"run", "--config", config_path}, dir.path(), false, false, true);
    ASSERT_GT(daemon.pid, 0);
    std::string log;
    ASSERT_TRUE(headachemd::test::read_line_containing(daemon.err, "enrollment redirects are caught", log))
        << log;
    auto enroll = headachemd::test::run_binary({"enroll", "hmd-1", "--config", config_path}, dir.path());
    ASSERT_EQ(enroll.exit_code, 0) << enroll.err;
    const auto url_at = enroll.out.find("https://");
    ASSERT_NE(url_at, std::string::npos) << enroll.out;
    const std::string url = enroll.out.substr(url_at, enroll.out.find('\n', url_at) - url_at);
    const auto back = location_of(browse(url, dir / "ca.pem"));
    ASSERT_FALSE(back.empty());
    const auto page = browse(back, dir / "ca.pem");
    EXPECT_EQ(page.status, 200) << page.body;
    EXPECT_NE(page.body.find("HeadacheMD is connected"), std::string::npos);
    // The first sync is queued at once: the daemon logs the patient's job.
    EXPECT_TRUE(headachemd::test::read_line_containing(daemon.err, "first sync queued", log)) << log;
    EXPECT_TRUE(headachemd::test::read_line_containing(daemon.err, "hmd-1", log)) << log;
    kill(daemon.pid, SIGTERM);
    // Drain the rest so the daemon never blocks on a full pipe while stopping.
    headachemd::test::read_line_containing(daemon.err, "\x01never", log, 30s);
    EXPECT_EQ(headachemd::test::wait_exit(daemon.pid), 0) << log;
    close(daemon.err);
    const auto e = enrollment_of("hmd-1");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fhir_patient_id, patient);
    expect_sync_pulls(config_path, patient);
}

// ---- Refusals, through the library: nothing stored, nothing else changed.

struct enroll_library : enroll_fixture {
    cfg::config config;
    std::unique_ptr<st::vault> vault;

    void SetUp() override {
        start_ehr();
        auto parsed = cfg::parse_config(toml(), (dir / "sync.toml").string());
        ASSERT_TRUE(std::holds_alternative<cfg::config>(parsed));
        config = std::get<cfg::config>(parsed);
        vault = std::make_unique<st::vault>(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        // An existing enrollment that no refusal may touch.
        vault->put_enrollment(
            {"hmd-2", "sandbox", (*ehr)->patient_ids().at(1), "existing-token", "s", "t", false}, "t");
    }

    // begin → store pending → browser → the redirect's parameters.
    headachemd::smart::callback_params authorize(const std::string& key,
                                                 std::chrono::system_clock::time_point now,
                                                 std::string* state_out = nullptr) {
        asio::io_context io;
        headachemd::http::client_options o;
        o.extra_ca_files.push_back(dir / "ca.pem");
        headachemd::http::client http(io.get_executor(), o);
        std::string url;
        auto task = [&]() -> asio::awaitable<void> {
            const cfg::patient_settings* p = nullptr;
            for (const auto& q : config.patients)
                if (q.key == key) p = &q;
            auto s = co_await sy::begin_enrollment(http, config.ehrs.at(0), *p, now);
            if (s) {
                st::pending_enrollments(*vault).put(s->pending);
                url = s->authorize_url;
            }
            http.close_idle();
        };
        asio::co_spawn(io, task, asio::detached);
        io.run();
        EXPECT_FALSE(url.empty());
        auto cb = headachemd::smart::parse_callback(location_of(browse(url, dir / "ca.pem")));
        EXPECT_TRUE(cb);
        if (state_out && cb && cb->state) *state_out = *cb->state;
        return cb ? *cb : headachemd::smart::callback_params{};
    }

    sy::enrollment_outcome complete(const headachemd::smart::callback_params& cb,
                                    std::chrono::system_clock::time_point now) {
        asio::io_context io;
        headachemd::http::client_options o;
        o.extra_ca_files.push_back(dir / "ca.pem");
        headachemd::http::client http(io.get_executor(), o);
        sy::enrollment_outcome out;
        auto task = [&]() -> asio::awaitable<void> {
            out = co_await sy::complete_enrollment(http, config, *vault, cb, now);
            http.close_idle();
        };
        asio::co_spawn(io, task, asio::detached);
        io.run();
        return out;
    }

    void expect_untouched() {
        const auto other = vault->find_enrollment("hmd-2", "sandbox");
        ASSERT_TRUE(other);
        EXPECT_EQ(other->refresh_token, "existing-token");
        EXPECT_FALSE(other->needs_reauth);
    }
};

TEST_F(enroll_library, AWrongStateIsRefusedAndStoresNothing) {
    const auto now = std::chrono::system_clock::now();
    auto cb = authorize("hmd-1", now);
    cb.state = std::string(43, 'A');
    const auto o = complete(cb, now);
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.headline.find("unknown or was already used"), std::string::npos) << o.headline;
    EXPECT_FALSE(vault->find_enrollment("hmd-1", "sandbox"));
    expect_untouched();
}

TEST_F(enroll_library, AReplayedRedirectIsRefusedAndLeavesTheFirstEnrollmentAsItWas) {
    const auto now = std::chrono::system_clock::now();
    const auto cb = authorize("hmd-1", now);
    ASSERT_TRUE(complete(cb, now).ok);
    const auto first = vault->find_enrollment("hmd-1", "sandbox");
    ASSERT_TRUE(first);
    const auto again = complete(cb, now);
    EXPECT_FALSE(again.ok);
    EXPECT_NE(again.headline.find("already used"), std::string::npos) << again.headline;
    const auto after = vault->find_enrollment("hmd-1", "sandbox");
    ASSERT_TRUE(after);
    EXPECT_EQ(after->refresh_token, first->refresh_token);
    expect_untouched();
}

TEST_F(enroll_library, ACallbackAfterTenMinutesHasExpired) {
    const auto now = std::chrono::system_clock::now();
    const auto cb = authorize("hmd-1", now);
    const auto o = complete(cb, now + sy::pending_lifetime + 1s);
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.headline, "This enrollment expired");
    EXPECT_EQ(o.patient_key, "hmd-1");
    EXPECT_FALSE(vault->find_enrollment("hmd-1", "sandbox"));
    expect_untouched();
}

TEST_F(enroll_library, AReplayedCodeIsRefusedByTheEhrAndExplained) {
    const auto now = std::chrono::system_clock::now();
    const auto first = authorize("hmd-1", now);
    ASSERT_TRUE(complete(first, now).ok);
    const auto stored = vault->find_enrollment("hmd-1", "sandbox");
    // A second enrollment started, but the (already used) first code is sent
    // with its state: the EHR refuses the code.
    auto second = authorize("hmd-1", now);
    second.code = first.code;
    const auto o = complete(second, now);
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.raw_error.find("invalid_grant"), std::string::npos) << o.raw_error;
    EXPECT_NE(o.explanation.find("already used"), std::string::npos) << o.explanation;
    EXPECT_EQ(vault->find_enrollment("hmd-1", "sandbox")->refresh_token, stored->refresh_token);
    expect_untouched();
}

// Issue 12, defect 4: a token endpoint that echoes the code exchange (the
// code, the PKCE verifier, the client's credentials) in error_description.
// The outcome is shown in the browser and logged: none of it may be there.
TEST_F(enroll_library, ACodeExchangeEchoedInErrorDescriptionShowsNoSecret) {
    const auto now = std::chrono::system_clock::now();
    const auto cb = authorize("hmd-1", now);
    (*ehr)->echo_token_requests(400, "invalid_request", 1);
    const auto o = complete(cb, now);
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.raw_error.find("invalid_request"), std::string::npos) << o.raw_error;
    EXPECT_NE(o.raw_error.find("<redacted>"), std::string::npos) << o.raw_error;
    const std::string secret = (*ehr)->config().client_secret;
    for (const std::string& text : {o.raw_error, o.headline, o.explanation, sy::callback_page(o)}) {
        EXPECT_EQ(text.find(*cb.code), std::string::npos) << text;
        EXPECT_EQ(text.find(secret), std::string::npos) << text;
        EXPECT_EQ(text.find('\r'), std::string::npos) << text;
    }
    EXPECT_FALSE(vault->find_enrollment("hmd-1", "sandbox"));
    expect_untouched();
}

TEST_F(enroll_library, AccessDeniedAtTheCallbackIsExplainedAndConsumesTheState) {
    const auto now = std::chrono::system_clock::now();
    auto cb = authorize("hmd-1", now);
    cb.code.reset();
    cb.error = "access_denied";
    cb.error_description = "The user declined";
    const auto o = complete(cb, now);
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.explanation.find("declined"), std::string::npos);
    EXPECT_EQ(o.raw_error, "access_denied: The user declined");
    EXPECT_FALSE(vault->find_enrollment("hmd-1", "sandbox"));
    const auto page = sy::callback_page(o);
    EXPECT_NE(page.find("Nothing was stored"), std::string::npos);
    expect_untouched();
}

TEST_F(enroll_library, APinnedPatientIdThatDiffersIsRefused) {
    const auto now = std::chrono::system_clock::now();
    (*ehr)->set_authorize_patient((*ehr)->patient_ids().at(2));  // not hmd-2's record
    const auto cb = authorize("hmd-2", now);
    const auto o = complete(cb, now);
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.headline, "A different patient's record was authorized");
    expect_untouched();
}

}  // namespace

namespace {

// The audit log (issue 5): every completion is recorded, refused ones too,
// with the code exchange's status; never the code, the state or a token.
TEST_F(enroll_library, EachCompletionIsInTheAuditLogWithoutCodeStateOrToken) {
    // Setup
    const auto now = std::chrono::system_clock::now();
    std::string state;
    const auto first = authorize("hmd-1", now, &state);

    // Run: an enrollment, its replay, and a second one with the used code.
    ASSERT_TRUE(complete(first, now).ok);
    EXPECT_FALSE(complete(first, now).ok);
    auto second = authorize("hmd-1", now);
    second.code = first.code;
    EXPECT_FALSE(complete(second, now).ok);

    // Check
    const auto events = st::query_audit(*vault, {});
    std::vector<std::string> got;
    for (const auto& e : events)
        got.push_back(e.action + " " + e.patient_key + " " +
                      (e.http_status ? std::to_string(*e.http_status) : "-") + " " + e.outcome);
    const std::vector<std::string> expected{
        "token.exchange hmd-1 200 ok",             // the first completion
        "enroll hmd-1 - ok",                       //
        "enroll.refused  - unknown_state",         // the replay: no pending row, no patient
        "token.exchange hmd-1 400 invalid_grant",  // the used code
        "enroll.refused hmd-1 - code_refused",     //
    };
    EXPECT_EQ(got, expected);
    const std::string token = vault->find_enrollment("hmd-1", "sandbox")->refresh_token;
    for (const auto& e : events) {
        for (const std::string& field : {e.patient_key, e.ehr, e.action, e.resource_type, e.outcome}) {
            ASSERT_TRUE(first.code);
            EXPECT_EQ(field.find(*first.code), std::string::npos);
            EXPECT_EQ(field.find(state), std::string::npos);
            EXPECT_EQ(field.find(token), std::string::npos);
        }
    }
}

}  // namespace
