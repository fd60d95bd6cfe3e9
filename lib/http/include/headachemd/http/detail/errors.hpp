// How a failed I/O step maps to the stable error codes of client.hpp. Kept
// apart from the I/O so that the mapping is tested without sockets.
#pragma once

#include <string_view>

#include <boost/system/error_code.hpp>

#include "headachemd/core/result.hpp"

namespace headachemd::http::detail {

// The step of an exchange that failed.
enum class phase {
    resolve,
    connect,
    handshake,    // TLS handshake, certificate checks included
    write,        // writing the request
    read_header,  // reading the status line and header fields
    read_body,    // reading the body after a complete header
};

std::string_view phase_name(phase p);

// The error code for a failure `ec` during `p`: timeout, resolve, connect,
// tls, reset, truncated, body_too_large, protocol or cancelled (the
// caller's coroutine was cancelled from outside). A handshake tls is
// refined by the client into tls_verify when the
// certificate's verify result says why it was refused (client.hpp).
errc classify(phase p, const boost::system::error_code& ec);

}  // namespace headachemd::http::detail
