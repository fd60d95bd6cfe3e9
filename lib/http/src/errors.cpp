// Error classification: see headachemd/http/detail/errors.hpp.
#include "headachemd/http/detail/errors.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace headachemd::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

std::string_view phase_name(phase p) {
    switch (p) {
        case phase::resolve:
            return "resolving the host";
        case phase::connect:
            return "connecting";
        case phase::handshake:
            return "TLS handshake";
        case phase::write:
            return "writing the request";
        case phase::read_header:
            return "reading the response header";
        case phase::read_body:
            return "reading the response body";
    }
    return "?";
}

errc classify(phase p, const boost::system::error_code& ec) {
    // beast::tcp_stream reports an expired expires_after/expires_at as
    // beast::error::timeout; the kernel's own give-up is ETIMEDOUT.
    if (ec == beast::error::timeout || ec == asio::error::timed_out) return errc::timeout;
    if (ec == asio::error::operation_aborted) return errc::cancelled;
    if (ec == beast::http::error::body_limit) return errc::body_too_large;

    switch (p) {
        case phase::resolve:
            return errc::resolve;
        case phase::connect:
            return errc::connect;
        case phase::handshake:
            // Any failure while the TLS session is being set up, including the
            // peer hanging up on us after a fatal alert.
            return errc::tls;
        case phase::write:
        case phase::read_header:
        case phase::read_body:
            break;
    }

    const bool in_body = p == phase::read_body;

    // The peer closed the connection. Before the header was complete this
    // is a reset (the stale keep-alive case); within the body the message
    // is cut short (RFC 9112 §8: an incomplete message).
    // stream_truncated is a TLS close without close_notify (RFC 8446 §6.1).
    if (ec == beast::http::error::end_of_stream) return errc::reset;
    if (ec == beast::http::error::partial_message || ec == asio::error::eof ||
        ec == asio::ssl::error::stream_truncated)
        return in_body ? errc::truncated : errc::reset;
    if (ec == asio::error::connection_reset || ec == asio::error::connection_aborted ||
        ec == asio::error::broken_pipe || ec == asio::error::not_connected || ec == asio::error::shut_down)
        return errc::reset;

    // Everything else Beast's parser rejects: a bad status line or field,
    // a bad chunk, a header over header_limit.
    if (ec.category() == make_error_code(beast::http::error::bad_version).category()) return errc::protocol;
    if (ec.category() == asio::error::get_ssl_category() ||
        ec.category() == asio::ssl::error::get_stream_category())
        return errc::tls;
    return errc::reset;
}

}  // namespace headachemd::http::detail
