#include "headachemd/sync/unenroll.hpp"

#include "discovery.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::sync {
namespace {

using boost::asio::awaitable;

struct endpoints {
    std::string token, revocation;
};

revocation_outcome failure(std::string endpoint, std::string code, std::string message) {
    return {revocation_status::failed, std::move(endpoint), error{std::move(code), std::move(message)}};
}

}  // namespace

awaitable<revocation_outcome> revoke_refresh_token(http::transport& http, const config::ehr_settings& ehr,
                                                   const smart::client_credentials& creds,
                                                   std::string refresh_token,
                                                   std::chrono::system_clock::time_point now) {
    std::string token = ehr.token_endpoint.value_or("");
    std::string revocation = ehr.revocation_endpoint.value_or("");  // the config wins
    if (ehr.discovery && (token.empty() || revocation.empty())) {
        // Named URLs: GCC 12 mishandles temporaries inside a co_await operand.
        // The well-known document is where SMART App Launch 2.x (and RFC
        // 8414) name a revocation endpoint; the CapabilityStatement's
        // oauth-uris extension has `revoke` too (SMART 1.0).
        std::string well_known = ehr.fhir_base + "/.well-known/smart-configuration";
        std::string metadata = ehr.fhir_base + "/metadata";
        auto c = co_await detail::fetch_configuration(http, std::move(well_known), false);
        if (!c || !c->revocation_endpoint) {
            auto m = co_await detail::fetch_configuration(http, std::move(metadata), true);
            if (m && (!c || m->revocation_endpoint)) c = std::move(m);
        }
        if (!c)
            co_return failure({}, "discovery_failed",
                              "EHR " + ehr.name + ": discovery at " + ehr.fhir_base +
                                  "/.well-known/smart-configuration failed, so where to revoke is "
                                  "unknown (run `headachemd-sync doctor " +
                                  ehr.name + "`)");
        if (token.empty()) token = c->token_endpoint;
        if (revocation.empty() && c->revocation_endpoint) revocation = *c->revocation_endpoint;
    }
    if (revocation.empty()) co_return revocation_outcome{revocation_status::no_endpoint, {}, {}};
    if (!http::origin_of(revocation))
        co_return failure(revocation, "bad_endpoint",
                          "EHR " + ehr.name + ": the advertised revocation endpoint is not a URL");
    // The refresh token goes where refresh tokens go: the authorization
    // server's origin, never a third party a discovery document names.
    if (token.empty() || !http::same_origin(revocation, token))
        co_return failure(revocation, "foreign_origin",
                          "EHR " + ehr.name + ": the revocation endpoint " + revocation +
                              " is not on the token endpoint's origin; the refresh token was not sent");

    auto built = smart::make_revocation_request(refresh_token, creds, {token, now});
    http::request req;
    req.method = boost::beast::http::verb::post;
    req.url = revocation;
    for (auto& [n, v] : built.headers) req.headers.push_back({n, v});
    req.body = std::move(built.body);
    auto r = co_await http.send(std::move(req));
    if (!r)
        co_return failure(
            revocation, r.err().code,
            "EHR " + ehr.name + ": revocation at " + revocation + " failed: " + r.err().message);
    auto parsed = smart::parse_revocation_response(r->status, r->body);
    if (!parsed)
        co_return failure(revocation, parsed.err().code, "EHR " + ehr.name + ": " + parsed.err().message);
    co_return revocation_outcome{revocation_status::revoked, revocation, {}};
}

}  // namespace headachemd::sync
