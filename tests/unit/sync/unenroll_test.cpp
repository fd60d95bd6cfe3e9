// revoke_refresh_token against a scripted transport (no sockets): where the
// refresh token may go, and what each answer means.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/sync/unenroll.hpp"

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
    EXPECT_EQ(out.failure.code, "foreign_origin");
    EXPECT_FALSE(t.token_was_sent());
    EXPECT_EQ(out.failure.message.find(token_value), std::string::npos);
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
    EXPECT_EQ(out.failure.code, "http_503");
    EXPECT_EQ(out.failure.message.find(token_value), std::string::npos);

    t.answers.insert_or_assign("https://auth.ehr.test/revoke",
                               headachemd::error{"timeout", "POST https://auth.ehr.test/revoke: timed out"});
    out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(out.failure.code, "timeout");
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
    EXPECT_EQ(run(t2, e).failure.code, "foreign_origin");
    EXPECT_FALSE(t2.token_was_sent());
}

TEST(Revocation, DiscoveryThatFailsIsAFailureNotANoEndpoint) {
    // Without discovery we cannot know there is no endpoint: deleting the
    // token here could strand a live grant, so this is a failure.
    scripted t;
    const auto out = run(t);
    EXPECT_EQ(out.status, sy::revocation_status::failed);
    EXPECT_EQ(out.failure.code, "discovery_failed");
    EXPECT_FALSE(t.token_was_sent());
}

}  // namespace
