// A GET over loopback http with the project's own client, for tests that
// read a running daemon's /metrics, /healthz or JWKS.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/http/client.hpp"

namespace headachemd::test {

// nullopt when no response came (the message goes to `why`).
inline std::optional<http::response> loopback_get(const std::string& url, std::string& why) {
    boost::asio::io_context io;
    http::client_options o;
    o.use_system_cas = false;
    http::client c(io.get_executor(), o);
    std::optional<http::response> out;
    auto get = [&]() -> boost::asio::awaitable<void> {
        http::request r;
        r.url = url;
        auto got = co_await c.send(std::move(r));
        if (got)
            out = std::move(*got);
        else
            why = got.err().message;
        c.close_idle();
    };
    boost::asio::co_spawn(io, get, [](std::exception_ptr ep) {
        if (ep) std::rethrow_exception(ep);
    });
    io.run();
    return out;
}

}  // namespace headachemd::test
