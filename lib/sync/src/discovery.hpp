// Fetching a SMART discovery document, shared by enrollment and unenrollment
// (the engine's own discovery also records audit events and metrics).
#pragma once

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "headachemd/http/client.hpp"
#include "headachemd/smart/smart.hpp"

namespace headachemd::sync::detail {

// GET of `url`: SMART App Launch 2.x's .well-known/smart-configuration, or,
// with `capability`, the CapabilityStatement whose oauth-uris extension is
// the older way (SMART 1.0). nullopt when it is not there or not usable.
boost::asio::awaitable<std::optional<smart::configuration>> fetch_configuration(http::transport& http,
                                                                                std::string url,
                                                                                bool capability);

}  // namespace headachemd::sync::detail
