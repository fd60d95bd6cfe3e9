// sync::browser_enrollment, the `enroll` command's workflow: begin (purge,
// bind, pending row), listen mode's wait for the redirect on a real
// loopback listener, its expiry, and paste mode. The token endpoint is a
// scripted transport (no EHR); the "browser" is a raw socket on loopback.
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "code_exchange_endpoint.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/browser_enrollment.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace cfg = headachemd::config;
namespace http = headachemd::http;
namespace store = headachemd::store;
namespace sy = headachemd::sync;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Every code is good for a refresh token of patient p1.
using token_endpoint = headachemd::test::code_exchange_endpoint;

// One GET to 127.0.0.1:`port`; everything the listener wrote before it
// closed the connection (it answers one request per connection).
asio::awaitable<std::string> get(std::uint16_t port, std::string target) {
    tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
    std::string reply;
    char buf[4096];
    for (;;) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
        reply.append(buf, n);
        if (ec) break;
    }
    co_return reply;
}

// Whether anything accepts connections on 127.0.0.1:`port` now.
bool accepting(std::uint16_t port) {
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    return !ec;
}

// The state parameter of an authorize URL.
std::string state_of(const std::string& url) {
    const auto at = url.find("&state=");
    if (at == std::string::npos) return {};
    const auto from = at + 7;
    return url.substr(from, url.find('&', from) - from);
}

struct session_fixture : ::testing::Test {
    headachemd::test::temp_dir dir;
    store::vault vault{dir / "vault.db", headachemd::test::token_key_in(dir.path())};
    headachemd::manual_clock clk;
    cfg::config config;
    token_endpoint t;
    asio::io_context io;
    std::vector<sy::enrollment_outcome> outcomes;  // what on_outcome was given
    int idle_closes = 0;
    std::unique_ptr<sy::browser_enrollment> session;

    session_fixture() {
        cfg::ehr_settings e;
        e.name = "clinic";
        e.fhir_base = "https://ehr.test/fhir";
        e.client_id = "app";
        e.client_auth = cfg::client_auth_method::none;
        e.authorize_endpoint = "https://ehr.test/authorize";
        e.token_endpoint = "https://ehr.test/token";
        // The listener matches the path; the port is whatever it bound.
        e.redirect_uri = "http://127.0.0.1/callback";
        config.ehrs.push_back(e);
        config.patients.push_back({"hmd-1", "clinic", std::nullopt});
    }

    void make(std::string listen, std::chrono::milliseconds expiry = sy::listen_expiry) {
        sy::browser_enrollment_options o;
        o.listen = std::move(listen);
        o.expiry = expiry;
        o.close_idle = [this] { ++idle_closes; };
        o.on_outcome = [this](const sy::enrollment_outcome& out) { outcomes.push_back(out); };
        session = std::make_unique<sy::browser_enrollment>(io.get_executor(), t, config, vault, clk, o);
    }

    asio::awaitable<headachemd::result<std::string>> begin() {
        co_return co_await session->begin(config.ehrs.at(0), config.patients.at(0));
    }

    int pending_for(const std::string& key) {
        return store::pending_enrollments(vault).count_for(key, "clinic");
    }

    // Runs `task` and everything it starts until the context runs dry;
    // false when it is still busy after `deadline` (a wait that never ends).
    template <class F>
    bool run(F task, std::chrono::seconds deadline = 30s) {
        io.restart();
        asio::co_spawn(io, std::move(task), [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        io.run_for(deadline);
        return io.stopped();
    }
};

TEST(RedirectMode, ListenWinsOverPasteWhichWinsOverTheDaemon) {
    cfg::config c;
    EXPECT_EQ(sy::redirect_mode_of("", false, c), std::nullopt);
    c.daemon.callback_listen = "127.0.0.1:8765";
    EXPECT_EQ(sy::redirect_mode_of("", false, c), sy::redirect_mode::daemon);
    EXPECT_EQ(sy::redirect_mode_of("", true, c), sy::redirect_mode::paste);
    EXPECT_EQ(sy::redirect_mode_of("127.0.0.1:0", true, c), sy::redirect_mode::listen);
}

TEST_F(session_fixture, ListenModeBindsBeforeTheUrlCompletesOneRedirectAndStops) {
    // Setup
    make("127.0.0.1:0");
    std::optional<sy::listen_end> end;
    std::string reply;
    bool bound_before_url = false;

    // Run: begin, then the browser comes back while the session waits.
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        bound_before_url = session->port() != 0 && accepting(session->port()) && pending_for("hmd-1") == 1;
        auto browser = [&,
                        target = "/callback?code=code-1&state=" + state_of(*url)]() -> asio::awaitable<void> {
            reply = co_await get(session->port(), target);
        };
        asio::co_spawn(io, browser, [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        end = co_await session->wait_for_redirect();
    };
    const bool ran_dry = run(task);

    // Check: one enrollment, reported before the page, and nothing left running.
    EXPECT_TRUE(bound_before_url);
    EXPECT_TRUE(ran_dry) << "the session kept waiting after the redirect";
    EXPECT_EQ(end, sy::listen_end::completed);
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_TRUE(outcomes[0].ok) << outcomes[0].headline;
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
    EXPECT_NE(reply.find("HeadacheMD is connected"), std::string::npos) << reply;
    EXPECT_EQ(reply.find("code-1"), std::string::npos);
    const auto e = vault.find_enrollment("hmd-1", "clinic");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->refresh_token, "rt-from-code");
    EXPECT_EQ(pending_for("hmd-1"), 0);
    EXPECT_EQ(t.seen.size(), 1u);
    EXPECT_GE(idle_closes, 1);
    EXPECT_FALSE(accepting(session->port()));
}

TEST_F(session_fixture, OtherPathsAndNonRedirectsAreAnsweredAndTheWaitGoesOn) {
    // Setup
    make("127.0.0.1:0");
    std::optional<sy::listen_end> end;
    std::string favicon, not_redirect, redirect;
    std::size_t outcomes_before_redirect = 99, token_calls_before_redirect = 99;
    bool ended_before_redirect = true;

    // Run
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        auto browser = [&, state = state_of(*url)]() -> asio::awaitable<void> {
            favicon = co_await get(session->port(), "/favicon.ico");
            not_redirect = co_await get(session->port(), "/callback?hello=1");
            outcomes_before_redirect = outcomes.size();
            token_calls_before_redirect = t.seen.size();
            ended_before_redirect = end.has_value();
            redirect = co_await get(session->port(), "/callback?code=code-1&state=" + state);
        };
        asio::co_spawn(io, browser, [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        end = co_await session->wait_for_redirect();
    };
    const bool ran_dry = run(task);

    // Check
    EXPECT_EQ(favicon.rfind("HTTP/1.1 404", 0), 0u) << favicon;
    EXPECT_EQ(not_redirect.rfind("HTTP/1.1 400", 0), 0u) << not_redirect;
    EXPECT_NE(not_redirect.find("This is not an authorization redirect."), std::string::npos);
    EXPECT_EQ(outcomes_before_redirect, 0u);
    EXPECT_EQ(token_calls_before_redirect, 0u);
    EXPECT_FALSE(ended_before_redirect);
    EXPECT_EQ(redirect.rfind("HTTP/1.1 200", 0), 0u) << redirect;
    EXPECT_TRUE(ran_dry);
    EXPECT_EQ(end, sy::listen_end::completed);
    EXPECT_EQ(outcomes.size(), 1u);
    EXPECT_TRUE(vault.find_enrollment("hmd-1", "clinic"));
}

TEST_F(session_fixture, ARefusedRedirectAlsoEndsTheWaitWithA400Page) {
    // Setup
    make("127.0.0.1:0");
    std::optional<sy::listen_end> end;
    std::string reply;

    // Run: the person said no at the EHR.
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        auto browser = [&, state = state_of(*url)]() -> asio::awaitable<void> {
            reply = co_await get(session->port(), "/callback?error=access_denied&state=" + state);
        };
        asio::co_spawn(io, browser, [](std::exception_ptr ep) {
            if (ep) std::rethrow_exception(ep);
        });
        end = co_await session->wait_for_redirect();
    };
    const bool ran_dry = run(task);

    // Check
    EXPECT_TRUE(ran_dry);
    EXPECT_EQ(end, sy::listen_end::completed);
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_FALSE(outcomes[0].ok);
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
    EXPECT_NE(reply.find("Nothing was stored"), std::string::npos) << reply;
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_TRUE(t.seen.empty());
}

TEST_F(session_fixture, TheExpiryEndsTheWaitStopsTheListenerAndStoresNothing) {
    // Setup: an expiry that is due at once, so the test need not wait ten minutes.
    make("127.0.0.1:0", 0ms);
    std::optional<sy::listen_end> end;
    std::uint16_t port = 0;

    // Run
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        port = session->port();
        end = co_await session->wait_for_redirect();
    };
    const bool ran_dry = run(task);

    // Check: the pending row stays for the purge; no listener is left.
    EXPECT_TRUE(ran_dry) << "the listener outlived the expiry";
    EXPECT_EQ(end, sy::listen_end::expired);
    EXPECT_TRUE(outcomes.empty());
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(pending_for("hmd-1"), 1);
    EXPECT_EQ(idle_closes, 1);
    ASSERT_NE(port, 0);
    EXPECT_FALSE(accepting(port));
}

TEST_F(session_fixture, AnAddressInUseFailsBeginBeforeAnyPendingRowIsStored) {
    // Setup: someone else holds the port.
    tcp::acceptor busy(io, {asio::ip::make_address("127.0.0.1"), 0});
    make("127.0.0.1:" + std::to_string(busy.local_endpoint().port()));
    std::optional<headachemd::result<std::string>> url;

    // Run
    auto task = [&]() -> asio::awaitable<void> { url = co_await begin(); };
    run(task);

    // Check
    ASSERT_TRUE(url);
    ASSERT_FALSE(*url);
    EXPECT_FALSE(url->err().message.empty());
    EXPECT_EQ(pending_for("hmd-1"), 0);
}

// The vault refusing the pending row (a trigger stands in for a full disk)
// fails begin() and releases the listener, so the command ends instead of
// waiting for a redirect that could never complete.
TEST_F(session_fixture, AVaultThatRefusesThePendingRowFailsBeginAndReleasesTheListener) {
    // Setup
    {
        SQLite::Database raw((dir / "vault.db").string(), SQLite::OPEN_READWRITE);
        raw.exec(
            "CREATE TRIGGER refuse BEFORE INSERT ON pending_enrollment BEGIN "
            "SELECT RAISE(ABORT, 'injected'); END");
    }
    make("127.0.0.1:0");
    std::string failure;
    std::uint16_t port = 0;

    // Run
    auto task = [&]() -> asio::awaitable<void> {
        try {
            (void)co_await begin();
        } catch (const std::exception& e) {
            failure = e.what();
        }
        port = session->port();
    };
    const bool ran_dry = run(task);

    // Check
    EXPECT_TRUE(ran_dry) << "the listener outlived the failed begin";
    EXPECT_NE(failure.find("injected"), std::string::npos) << failure;
    ASSERT_NE(port, 0);
    EXPECT_FALSE(accepting(port));
    EXPECT_EQ(pending_for("hmd-1"), 0);
}

TEST_F(session_fixture, AFailedBeginStoresNothingAndBindsNothing) {
    // Setup: no redirect URI, so begin_enrollment refuses.
    config.ehrs.at(0).redirect_uri.reset();
    make("127.0.0.1:0");
    std::optional<headachemd::result<std::string>> url;

    // Run
    auto task = [&]() -> asio::awaitable<void> { url = co_await begin(); };
    const bool ran_dry = run(task);

    // Check
    EXPECT_TRUE(ran_dry);
    ASSERT_TRUE(url);
    ASSERT_FALSE(*url);
    EXPECT_NE(url->err().message.find("redirect_uri"), std::string::npos) << url->err().message;
    EXPECT_EQ(session->port(), 0);
    EXPECT_EQ(pending_for("hmd-1"), 0);
}

TEST_F(session_fixture, BeginPurgesExpiredPendingRowsAndStoresItsOwn) {
    // Setup: another patient's link that expired a minute ago.
    store::pending_enrollment old;
    old.state_hash = store::state_hash("old-state");
    old.patient_key = "hmd-2";
    old.ehr = "clinic";
    old.code_verifier = "v";
    old.redirect_uri = "http://127.0.0.1/callback";
    old.token_endpoint = "https://ehr.test/token";
    old.created_at = "2026-01-01T00:00:00Z";
    old.expires_at =
        std::chrono::duration_cast<std::chrono::seconds>((clk.now() - 1min).time_since_epoch()).count();
    store::pending_enrollments(vault).put(old);
    make("");  // paste mode: no listener
    std::optional<headachemd::result<std::string>> url;

    // Run
    auto task = [&]() -> asio::awaitable<void> { url = co_await begin(); };
    run(task);

    // Check
    ASSERT_TRUE(url && *url);
    EXPECT_EQ(pending_for("hmd-2"), 0);
    EXPECT_EQ(pending_for("hmd-1"), 1);
    EXPECT_EQ(session->port(), 0);
    // Without a listener there is nothing to wait for: a caller's bug.
    auto wait = [&]() -> asio::awaitable<void> { co_await session->wait_for_redirect(); };
    EXPECT_THROW(run(wait), std::logic_error);
}

TEST_F(session_fixture, PasteModeCompletesFromThePastedAddress) {
    // Setup
    make("");
    std::optional<headachemd::result<sy::enrollment_outcome>> outcome;

    // Run: pasted as people paste, with quotes and spaces around it.
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        const std::string pasted =
            "  \"http://127.0.0.1/callback?code=code-1&state=" + state_of(*url) + "\" ";
        outcome = co_await session->complete_from_redirect(pasted);
    };
    run(task);

    // Check: the outcome is returned, not reported through on_outcome.
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_TRUE((*outcome)->ok) << (*outcome)->headline;
    EXPECT_TRUE(outcomes.empty());
    EXPECT_EQ(vault.find_enrollment("hmd-1", "clinic")->refresh_token, "rt-from-code");
    EXPECT_EQ(pending_for("hmd-1"), 0);
    EXPECT_EQ(idle_closes, 1);
}

TEST_F(session_fixture, APasteThatIsNotARedirectStoresNothingAndCallsNobody) {
    // Setup
    make("");
    std::optional<headachemd::result<sy::enrollment_outcome>> outcome;

    // Run
    auto task = [&]() -> asio::awaitable<void> {
        auto url = co_await begin();
        if (!url) throw std::runtime_error(url.err().message);
        outcome = co_await session->complete_from_redirect("http://127.0.0.1/callback?hello=1");
    };
    run(task);

    // Check
    ASSERT_TRUE(outcome);
    ASSERT_FALSE(*outcome);
    EXPECT_FALSE(outcome->err().message.empty());
    EXPECT_TRUE(t.seen.empty());
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "clinic"));
    EXPECT_EQ(pending_for("hmd-1"), 1);
}

}  // namespace
