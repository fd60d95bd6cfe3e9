// A token endpoint for enrollment tests: it records every request and
// answers each code exchange with a refresh token for FHIR patient p1, the
// way a SMART server answers a good authorization code (SMART App Launch,
// "Obtain access token").
#pragma once

#include <vector>

#include <boost/asio/awaitable.hpp>

#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"

namespace headachemd::test {

struct code_exchange_endpoint final : http::transport {
    std::vector<http::request> seen;
    boost::asio::awaitable<result<http::response>> send(http::request req) override {
        seen.push_back(req);
        co_return http::response{
            200,
            {},
            R"({"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-from-code",)"
            R"("patient":"p1","scope":"launch/patient offline_access patient/*.read"})"};
    }
};

}  // namespace headachemd::test
