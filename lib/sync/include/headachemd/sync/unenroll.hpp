// `unenroll`: revoking an enrollment's refresh token at the EHR (RFC 7009),
// the I/O shell around smart::make_revocation_request and
// smart::parse_revocation_response.
//
// Contract
// - The revocation endpoint is the [[ehr]]'s revocation_endpoint, else
//   discovery's ({fhir_base}/.well-known/smart-configuration, or the
//   CapabilityStatement's oauth-uris `revoke`).
// - The refresh token is only ever sent to the origin of the token endpoint
//   (the authorization server that issued it): a revocation endpoint on
//   another origin is refused before anything is sent. TLS and the
//   loopback-only rule for http:// are the transport's, as for every call.
// - Every call has the transport's deadlines. Outcomes never carry the
//   token, the client secret or the assertion.
#pragma once

#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/smart/smart.hpp"

namespace headachemd::sync {

enum class revocation_status {
    revoked,      // the server answered 200 (RFC 7009 §2.2)
    no_endpoint,  // the EHR advertises no revocation endpoint
    failed,       // network, 5xx, refused: the grant may still be valid
};

struct revocation_outcome {
    revocation_status status = revocation_status::failed;
    std::string endpoint;  // the revocation URL used or tried (no token in it)
    error failure;         // when failed: what went wrong, for the admin
};

boost::asio::awaitable<revocation_outcome> revoke_refresh_token(http::transport& http,
                                                                const config::ehr_settings& ehr,
                                                                const smart::client_credentials& creds,
                                                                std::string refresh_token,
                                                                std::chrono::system_clock::time_point now);

}  // namespace headachemd::sync
