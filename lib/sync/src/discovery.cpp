#include "discovery.hpp"

namespace headachemd::sync::detail {

boost::asio::awaitable<std::optional<smart::configuration>> fetch_configuration(http::transport& http,
                                                                                std::string url,
                                                                                bool capability) {
    http::request req;
    req.url = std::move(url);
    req.headers.push_back({"Accept", "application/json, application/fhir+json"});
    auto r = co_await http.send(std::move(req));
    if (!r || r->status != 200) co_return std::nullopt;
    auto c = capability ? smart::parse_capability_oauth_uris(r->body) : smart::parse_configuration(r->body);
    if (!c) co_return std::nullopt;
    co_return std::move(*c);
}

}  // namespace headachemd::sync::detail
