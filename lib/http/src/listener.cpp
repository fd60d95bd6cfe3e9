#include "headachemd/http/listener.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <set>
#include <typeinfo>

#include <spdlog/logger.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace headachemd::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::use_awaitable;
using asio::ip::tcp;

constexpr std::uint32_t max_header_bytes = 8 * 1024;

// "host:port", "[v6]:port" → host and port; nullopt when malformed.
std::optional<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& s) {
    std::string host;
    std::string port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string::npos) return std::nullopt;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (host.empty() || port.empty() || port.size() > 5) return std::nullopt;
    unsigned value = 0;
    for (char c : port) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return std::nullopt;
    if (host == "localhost") host = "127.0.0.1";
    return std::make_pair(host, static_cast<std::uint16_t>(value));
}

// The readable name of an exception's dynamic type ("std::runtime_error").
std::string type_name(const std::exception& e) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::string out = status == 0 && demangled ? demangled : typeid(e).name();
    std::free(demangled);
    return out;
}

// An exception's what() fit for a log line: the values of the request's
// query (the authorization code, the state) are cut out in case the handler
// quoted them, and what is left is printable ASCII, at most 200 bytes.
std::string loggable_what(std::string_view what, std::string_view query) {
    std::string out(what);
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos || eq + 1 == pair.size()) continue;
        const std::string value(pair.substr(eq + 1));
        for (auto at = out.find(value); at != std::string::npos; at = out.find(value, at + 5))
            out.replace(at, value.size(), "<cut>");
    }
    constexpr std::size_t cap = 200;
    if (out.size() > cap) out.resize(cap);
    for (char& c : out)
        if (c < 0x20 || c > 0x7e) c = '?';
    return out;
}

}  // namespace

struct listener::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, request_handler h, listener_options o)
        : ex(std::move(e)), handler(std::move(h)), opts(o), acceptor(ex) {}

    asio::any_io_executor ex;
    request_handler handler;
    listener_options opts;
    tcp::acceptor acceptor;
    std::set<std::shared_ptr<beast::tcp_stream>> open;
    // Connections whose request was read: stop() lets them finish their
    // answer (a handler may itself call stop(), e.g. after the one redirect
    // enrollment waits for), then they close.
    std::set<std::shared_ptr<beast::tcp_stream>> answering;
    bool stopped = false;
    std::uint16_t bound_port = 0;

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        while (!stopped) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(use_awaitable));
            if (ec) {
                if (stopped || ec == asio::error::operation_aborted) co_return;
                continue;  // e.g. EMFILE: keep listening; the next accept may succeed
            }
            auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
            open.insert(stream);
            auto serve_one = [self, stream]() -> asio::awaitable<void> { co_await self->serve(stream); };
            asio::co_spawn(ex, std::move(serve_one), asio::detached);
        }
    }

    asio::awaitable<void> serve(std::shared_ptr<beast::tcp_stream> stream) {
        beast::flat_buffer buffer;
        bhttp::request_parser<bhttp::empty_body> parser;
        parser.header_limit(max_header_bytes);
        // A request body is never expected (GET/HEAD); one that is announced
        // fails the read instead of being buffered.
        parser.body_limit(0);
        stream->expires_after(opts.read_timeout);
        auto [rec, n] = co_await bhttp::async_read(*stream, buffer, parser, asio::as_tuple(use_awaitable));
        (void)n;
        outgoing_response out;
        bool head = false;
        if (rec) {
            if (rec == beast::error::timeout || rec == bhttp::error::end_of_stream || stopped) {
                close(stream);
                co_return;
            }
            out = {400, "text/plain; charset=utf-8", "Bad request\n"};
        } else {
            answering.insert(stream);
            const auto& req = parser.get();
            head = req.method() == bhttp::verb::head;
            if (req.method() != bhttp::verb::get && !head) {
                out = {405, "text/plain; charset=utf-8", "Only GET is supported here\n"};
            } else {
                // Named, not a braced temporary: GCC 12 destroys a temporary
                // inside a co_await operand twice.
                incoming_request in;
                in.method = std::string(req.method_string());
                in.target = std::string(req.target());
                const std::string target = in.target;
                try {
                    out = co_await handler(std::move(in));
                } catch (const std::exception& e) {
                    log_handler_exception(target, e);
                    out = {500, "text/plain; charset=utf-8", "Internal error\n"};
                }
            }
        }
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(out.status), 11};
        res.set(bhttp::field::content_type, out.content_type);
        res.set(bhttp::field::cache_control, "no-store");
        res.set("Referrer-Policy", "no-referrer");
        res.set("X-Content-Type-Options", "nosniff");
        res.set("Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
        res.set(bhttp::field::connection, "close");
        res.body() = head ? std::string() : std::move(out.body);
        res.prepare_payload();
        if (head) res.content_length(out.body.size());
        stream->expires_after(opts.write_timeout);
        co_await bhttp::async_write(*stream, res, asio::as_tuple(use_awaitable));
        close(stream);
    }

    // A handler broke its contract: say so before the 500, so that a failing
    // /metrics or callback page leaves a trace (STYLE.md: every exception is
    // logged). The path names the endpoint; the query is never logged.
    void log_handler_exception(std::string_view target, const std::exception& e) const {
        if (!opts.log) return;
        const auto q = target.find('?');
        const std::string_view path = target.substr(0, q);
        const std::string_view query =
            q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
        opts.log->error("listener: the handler for {} threw {} ({}); answered 500", loggable_what(path, {}),
                        type_name(e), loggable_what(e.what(), query));
    }

    void close(const std::shared_ptr<beast::tcp_stream>& stream) {
        beast::error_code ignored;
        stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream->socket().close(ignored);
        open.erase(stream);
        answering.erase(stream);
    }
};

listener::listener(asio::any_io_executor ex, request_handler handler, listener_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(handler), opts)) {}

listener::~listener() { stop(); }

result<std::uint16_t> listener::start(const std::string& host_port) {
    const auto hp = split_host_port(host_port);
    if (!hp) return error{errc::bad_address, "not a host:port address: " + host_port};
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(hp->first, ec);
    if (ec) return error{errc::bad_address, "not an IP address (use an IP, or localhost): " + hp->first};
    const tcp::endpoint ep(address, hp->second);
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        // A separate code for close(): reusing `ec` made every refusal
        // read "…: Success" instead of naming the cause.
        boost::system::error_code ignored;
        a.close(ignored);
        return error{errc::listen, "cannot listen on " + host_port + ": " + ec.message()};
    }
    impl_->bound_port = a.local_endpoint().port();
    auto self = impl_;
    auto loop = [self]() -> asio::awaitable<void> { co_await self->accept_loop(); };
    asio::co_spawn(impl_->ex, std::move(loop), asio::detached);
    return impl_->bound_port;
}

void listener::stop() {
    auto self = impl_;
    if (self->stopped) return;
    self->stopped = true;
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    auto open = self->open;
    for (const auto& s : open)
        if (!self->answering.contains(s)) self->close(s);
}

std::uint16_t listener::port() const { return impl_->bound_port; }

}  // namespace headachemd::http
