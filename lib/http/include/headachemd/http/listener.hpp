// A small plain-HTTP/1.1 listener for requests that come to us: the SMART
// redirect during browser enrollment (`enroll --listen`, the daemon's
// callback_listen), and later the metrics endpoint.
//
// It speaks plain HTTP on purpose: it binds where the admin says (loopback
// by default), and a redirect URI that reaches it from a browser elsewhere
// goes through the clinic's TLS-terminating reverse proxy (RFC 8252 §7.3 for
// loopback redirects).
//
// Contract
// - One request per connection (Connection: close); GET and HEAD only, no
//   request body; a request header over 8 KiB or a connection that does not
//   send its request within `read_timeout` is dropped.
// - Every response carries Cache-Control: no-store, Referrer-Policy:
//   no-referrer (the URL of the page holds the authorization code, which a
//   Referer header would leak), X-Content-Type-Options: nosniff and a
//   Content-Security-Policy that allows no scripts and no external loads.
// - The handler runs on the listener's executor, one request at a time per
//   connection; it should not throw. An exception answers 500 and is
//   logged to listener_options::log as a fixed message with the request's
//   path (no query), the exception's type and its what() (printable ASCII,
//   bounded, the request's query values cut out); never a request's query
//   or body, which hold the authorization code.
// - stop() closes the acceptor and every connection that is not being
//   answered; an answer in progress is written first. Idempotent. Call it
//   on the listener's executor (a handler may call it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "headachemd/core/result.hpp"

namespace spdlog {
class logger;
}

namespace headachemd::http {

struct incoming_request {
    std::string method;  // "GET" or "HEAD"
    std::string target;  // origin-form: "/callback?code=…&state=…"
};

struct outgoing_response {
    int status = 200;
    std::string content_type = "text/html; charset=utf-8";
    std::string body;
};

using request_handler = std::function<boost::asio::awaitable<outgoing_response>(incoming_request)>;

struct listener_options {
    std::chrono::milliseconds read_timeout{10000};
    std::chrono::milliseconds write_timeout{10000};
    std::shared_ptr<spdlog::logger> log;  // where handler exceptions are logged; null: nowhere
};

class listener {
public:
    listener(boost::asio::any_io_executor ex, request_handler handler, listener_options opts = {});
    ~listener();
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;

    // Binds "host:port" (IPv6 in brackets; port 0: an ephemeral one) and
    // starts accepting. An error names the address (in use, not an address).
    result<std::uint16_t> start(const std::string& host_port);
    void stop();
    std::uint16_t port() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace headachemd::http
