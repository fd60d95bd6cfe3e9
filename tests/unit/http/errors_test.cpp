// detail::classify: how each I/O failure maps to a stable error code,
// without sockets.
#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "headachemd/http/detail/errors.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using headachemd::http::detail::classify;
using headachemd::http::detail::phase;

boost::system::error_code ec(beast::http::error e) { return beast::http::make_error_code(e); }

TEST(classify, deadlines_are_timeouts_in_every_phase) {
    for (auto p : {phase::resolve, phase::connect, phase::handshake, phase::write, phase::read_header,
                   phase::read_body}) {
        EXPECT_EQ(to_string(classify(p, beast::error::timeout)), "timeout");
        EXPECT_EQ(to_string(classify(p, asio::error::timed_out)), "timeout");
    }
}

TEST(classify, setup_phases) {
    EXPECT_EQ(to_string(classify(phase::resolve, asio::error::host_not_found)), "resolve");
    EXPECT_EQ(to_string(classify(phase::connect, asio::error::connection_refused)), "connect");
    EXPECT_EQ(to_string(classify(phase::connect, asio::error::network_unreachable)), "connect");
    EXPECT_EQ(to_string(classify(phase::handshake, asio::ssl::error::stream_truncated)), "tls");
    EXPECT_EQ(to_string(classify(phase::handshake, asio::error::eof)), "tls");
    EXPECT_EQ(to_string(classify(phase::handshake, asio::error::connection_reset)), "tls");
}

TEST(classify, closed_before_the_header_is_reset_within_the_body_truncated) {
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::end_of_stream))), "reset");
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::partial_message))), "reset");
    EXPECT_EQ(to_string(classify(phase::read_header, asio::ssl::error::stream_truncated)), "reset");
    EXPECT_EQ(to_string(classify(phase::read_body, ec(beast::http::error::partial_message))), "truncated");
    EXPECT_EQ(to_string(classify(phase::read_body, asio::ssl::error::stream_truncated)), "truncated");
    EXPECT_EQ(to_string(classify(phase::read_body, asio::error::eof)), "truncated");
    EXPECT_EQ(to_string(classify(phase::read_body, asio::error::connection_reset)), "reset");
    EXPECT_EQ(to_string(classify(phase::write, asio::error::broken_pipe)), "reset");
    EXPECT_EQ(to_string(classify(phase::write, asio::error::connection_reset)), "reset");
}

TEST(classify, body_limit_anywhere_is_body_too_large) {
    // Beast rejects an over-long Content-Length while parsing the header.
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::body_limit))), "body_too_large");
    EXPECT_EQ(to_string(classify(phase::read_body, ec(beast::http::error::body_limit))), "body_too_large");
}

TEST(classify, parser_rejections_are_protocol_errors) {
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::bad_version))), "protocol");
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::header_limit))), "protocol");
    EXPECT_EQ(to_string(classify(phase::read_body, ec(beast::http::error::bad_chunk))), "protocol");
    EXPECT_EQ(to_string(classify(phase::read_header, ec(beast::http::error::bad_content_length))),
              "protocol");
}

TEST(classify, outside_cancellation_is_cancelled) {
    EXPECT_EQ(to_string(classify(phase::read_body, asio::error::operation_aborted)), "cancelled");
}

}  // namespace
