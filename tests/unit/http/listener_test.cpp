// http::listener: a handler that throws answers 500, and the exception is
// logged (issue 14, item 5) as one line without the request's query, which
// holds the authorization code on the enrollment callback.
#include <gtest/gtest.h>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "headachemd/http/listener.hpp"
#include "test_logger.hpp"

namespace {

namespace asio = boost::asio;
namespace http = headachemd::http;
using asio::ip::tcp;

// Sends `request` to 127.0.0.1:`port` and returns everything the listener
// wrote before it closed the connection (one request per connection).
std::string exchange(asio::io_context& io, http::listener& l, std::uint16_t port, std::string request) {
    std::string reply;
    auto client = [&]() -> asio::awaitable<void> {
        tcp::socket s(io);
        co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
        co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
        char buf[4096];
        for (;;) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
            reply.append(buf, n);
            if (ec) break;
        }
        l.stop();
    };
    asio::co_spawn(io, client, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run();
    return reply;
}

// A port already taken is refused with the cause, so the admin can act on
// it (the message read "Success" when close() overwrote the error).
TEST(listener, a_port_in_use_is_refused_with_its_cause) {
    // Setup
    asio::io_context io;
    const auto handler = [](http::incoming_request) -> asio::awaitable<http::outgoing_response> {
        co_return http::outgoing_response{200, "text/plain", "ok"};
    };
    http::listener first(io.get_executor(), handler);
    const auto port = first.start("127.0.0.1:0");
    ASSERT_TRUE(port) << port.err().message;
    http::listener second(io.get_executor(), handler);
    // Run
    const auto again = second.start("127.0.0.1:" + std::to_string(*port));
    // Check
    ASSERT_FALSE(again);
    EXPECT_EQ(again.err().code, headachemd::errc::listen);
    EXPECT_NE(again.err().message.find("in use"), std::string::npos) << again.err().message;
    EXPECT_EQ(again.err().message.find("Success"), std::string::npos) << again.err().message;
    first.stop();
}

TEST(listener, a_throwing_handler_answers_500_and_logs_one_line_without_the_query) {
    // Setup: a handler that quotes the authorization code in its exception.
    asio::io_context io;
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    auto log = headachemd::test::test_logger("listener", ring);
    auto handler = [](http::incoming_request in) -> asio::awaitable<http::outgoing_response> {
        if (!in.target.empty())
            throw std::runtime_error("cannot finish " + in.target + " for code s3cr3t-c0de");
        co_return http::outgoing_response{};
    };
    http::listener l(io.get_executor(), handler, http::listener_options{.log = log});
    auto port = l.start("127.0.0.1:0");
    ASSERT_TRUE(port) << port.err().message;

    // Run
    const std::string reply =
        exchange(io, l, *port, "GET /callback?code=s3cr3t-c0de&state=st4te HTTP/1.1\r\nHost: x\r\n\r\n");

    // Check: the 500, and one line that names the endpoint and the
    // exception but holds neither the code nor the state.
    EXPECT_EQ(reply.rfind("HTTP/1.1 500", 0), 0u) << reply;
    const auto lines = ring->last_formatted();
    ASSERT_EQ(lines.size(), 1u);
    const std::string& line = lines[0];
    EXPECT_NE(line.find("/callback"), std::string::npos) << line;
    EXPECT_NE(line.find("std::runtime_error"), std::string::npos) << line;
    EXPECT_NE(line.find("cannot finish"), std::string::npos) << line;
    EXPECT_EQ(line.find("s3cr3t"), std::string::npos) << line;
    EXPECT_EQ(line.find("st4te"), std::string::npos) << line;
}

TEST(listener, without_a_logger_a_throwing_handler_still_answers_500) {
    // Setup
    asio::io_context io;
    auto handler = [](http::incoming_request in) -> asio::awaitable<http::outgoing_response> {
        if (!in.target.empty()) throw std::logic_error("broken");
        co_return http::outgoing_response{};
    };
    http::listener l(io.get_executor(), handler);
    auto port = l.start("127.0.0.1:0");
    ASSERT_TRUE(port) << port.err().message;

    // Run
    const std::string reply = exchange(io, l, *port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");

    // Check
    EXPECT_EQ(reply.rfind("HTTP/1.1 500", 0), 0u) << reply;
}

}  // namespace
