// The HTTPS client: HTTP/1.1 over TLS (Beast over OpenSSL) with pooled
// keep-alive connections, one deadline for each whole request, and a
// body-size cap; and a streaming GET for bodies of any size (the Bulk Data
// download, issue 15), whose body goes to a body_sink piece by piece.
//
// Contract
// - send() returns an HTTP response for every status, 4xx and 5xx included:
//   classifying a status is the caller's job. Transport failures are
//   values: result<response> holds an error whose `code` is one of
//     "invalid_url"     not an absolute http(s) URL, or it carries userinfo
//     "insecure_scheme" http:// to a host that is not loopback (refused
//                       before anything is resolved or connected)
//     "invalid_request" a header name or value that would break the framing
//                       (CR, LF, NUL), e.g. a token that came from a server
//     "resolve"         the host name did not resolve
//     "connect"         no TCP connection (refused, unreachable)
//     "tls_verify"      the server's certificate was refused: not from a
//                       trusted CA (unknown CA, self-signed), not for the
//                       host name, expired or not yet valid. The message
//                       says which. Retrying cannot help: nothing changes
//                       until the server's certificate or our trust does.
//     "tls"             any other handshake failure (protocol or version
//                       mismatch, the peer hanging up mid-handshake)
//     "timeout"         the request's deadline passed (see
//                       request::timeout), in whatever phase it was
//     "reset"           the connection was closed before the response header
//                       was complete, or reset (RST) at any point
//     "truncated"       the body ended early (short of Content-Length, or a
//                       chunked body without its last chunk)
//     "body_too_large"  the body exceeds client_options::max_body_bytes, as
//                       received or once gzip is decoded
//     "protocol"        the server sent something that is not HTTP/1.1,
//                       or a transfer coding other than chunked
//     "bad_encoding"    a Content-Encoding we did not ask for (anything but
//                       gzip, x-gzip and identity), or gzip data that is
//                       corrupt, truncated, has a wrong CRC-32 or length,
//                       or bytes after its last member. The message names
//                       the coding or the defect, never the data.
//     "cancelled"       the calling coroutine was cancelled from outside
//   and a `message` naming the method and scheme://host:port/path. The
//   message never contains the query string (it may hold patient ids),
//   header values (Authorization: Bearer …) or bodies.
// - send_streaming() has the same codes, with these differences for a 2xx
//   body (see client::send_streaming):
//     "timeout"         also: no body byte within
//                       client_options::stream_idle_timeout, or the whole
//                       transfer past client_options::stream_timeout. The
//                       message says which deadline it was.
//     "body_too_large"  only with client_options::max_stream_bytes set
//   and the body_sink's own error, code as the sink gave it, when the sink
//   stopped the transfer (its message follows ours; keeping it free of
//   payloads is the sink's job).
// - Nothing is thrown for network failures; std::bad_alloc and bugs throw.
// - The client is not tied to one thread: the connection pool is locked.
//   Each connection is used by one request at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include "headachemd/core/result.hpp"

namespace headachemd::http {

struct header_field {
    std::string name;
    std::string value;
};

struct request {
    boost::beast::http::verb method = boost::beast::http::verb::get;
    std::string url;  // absolute https:// (or loopback http://) URL
    // Sent as given, in order. Host and User-Agent given here replace the
    // defaults; Content-Length and Transfer-Encoding are ignored because
    // the client frames the body itself (RFC 9112 §6).
    std::vector<header_field> headers;
    std::string body;
    // The deadline of this whole request: resolve, connect and TLS when a
    // new connection is needed, writing the request, every interim 1xx
    // response, the header and the body, and the one retry on a stale
    // pooled connection, all together. A server that trickles or stalls
    // after the header, or sends 1xx after 1xx, cannot stretch it (issue
    // 12, defect 7). nullopt: client_options::request_timeout. The engine
    // sets it from each EHR's http_timeout.
    std::optional<std::chrono::milliseconds> timeout;
};

struct response {
    int status = 0;
    std::vector<header_field> headers;  // in the order received
    std::string body;

    // The first field named `name`, compared case-insensitively (field
    // names are case-insensitive, RFC 9110 §5.1). The view points into
    // `headers`.
    std::optional<std::string_view> header(std::string_view name) const;
};

struct client_options {
    // A bound of its own for resolve + TCP connect + TLS handshake, inside
    // the request's deadline (whichever ends first applies).
    std::chrono::milliseconds connect_timeout{10000};
    // The deadline of a whole request that does not set request::timeout.
    std::chrono::milliseconds request_timeout{30000};
    std::size_t max_body_bytes = 64 << 20;
    // PEM files of CAs to trust in addition to (or, with use_system_cas
    // off, instead of) the system store: an EHR's ca_file, a test CA.
    std::vector<std::filesystem::path> extra_ca_files;
    bool use_system_cas = true;
    // Idle keep-alive connections kept per origin; 0 disables reuse.
    std::size_t max_idle_per_origin = 4;
    // An idle connection older than this is closed instead of reused.
    std::chrono::seconds idle_timeout{60};
    std::string user_agent = "headachemd-sync/0.1";
    // GET requests carry `Accept-Encoding: gzip` unless the request sets
    // Accept-Encoding itself (off: identity is asked for by saying nothing).
    // Whatever this says, a response with Content-Encoding gzip or x-gzip
    // is decoded, identity passes, and any other coding is bad_encoding.
    bool accept_gzip = true;

    // send_streaming() only, for the body of a 2xx response (the header
    // phase keeps request::timeout). STYLE.md §8: every network operation
    // has a deadline. A body of gigabytes takes as long as it takes, so the
    // body is bounded by inactivity: the transfer fails with `timeout` when
    // no byte arrives for this long.
    std::chrono::milliseconds stream_idle_timeout{60000};
    // An overall bound on a whole send_streaming() call, header included,
    // when set: a server that trickles a byte just inside the inactivity
    // deadline cannot hold the transfer past it. nullopt: none.
    std::optional<std::chrono::milliseconds> stream_timeout;
    // The largest streamed body, counted as received and once decoded
    // (body_too_large past it). nullopt: no cap; the sink bounds its memory
    // by its own unit (an NDJSON line), not the body's size.
    std::optional<std::uint64_t> max_stream_bytes;
};

// Receives a streamed body (send_streaming). Bytes come decoded (gzip
// undone), in order, in pieces of at most stream_piece_bytes; the view is
// valid only during the call. Returning an error stops the transfer:
// send_streaming returns that error and the connection is closed, not
// reused (the rest of the body was never read).
class body_sink {
public:
    virtual ~body_sink() = default;
    virtual result<ok_t> on_data(std::string_view piece) = 0;
};

// The largest piece a body_sink is given by client::send_streaming, and
// the read buffer it uses: memory per transfer is a few of these.
inline constexpr std::size_t stream_piece_bytes = 64 * 1024;

// The seam between the sync code and the network: tests of the FHIR and
// SMART layers substitute a fake.
class transport {
public:
    virtual ~transport() = default;
    virtual boost::asio::awaitable<result<response>> send(request req) = 0;

    // A GET whose 2xx body goes to `sink` as it arrives; the response
    // returned holds the status and header fields and an empty body. Any
    // other status comes back whole in response::body, as send() gives it
    // (an OperationOutcome is small, and the caller parses it); the sink is
    // then not called. `sink` must outlive the call.
    //
    // This default sends with send() and hands a 2xx body to the sink in one
    // piece, so a fake transport works unchanged; client streams for real.
    virtual boost::asio::awaitable<result<response>> send_streaming(request req, body_sink& sink);
};

class client final : public transport {
public:
    // Throws std::runtime_error when an extra CA file cannot be loaded (a
    // configuration error, reported at startup rather than per request).
    client(boost::asio::any_io_executor ex, client_options opts);
    ~client() override;
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    // Sends one request and reads the whole response. A request that may
    // run while the client is destroyed keeps the client's state alive.
    //
    // Connection reuse: a connection goes back to the pool only when the
    // whole body was read and both sides allow keep-alive. A reused
    // connection that turns out to be stale is replaced by a fresh one
    // once: for idempotent methods (RFC 9110 §9.2.2) when the failure came
    // before any response byte; for POST and PATCH only when writing the
    // request failed, because a request that was written may have been
    // applied (and an eCW refresh token is single-use).
    boost::asio::awaitable<result<response>> send(request req) override;

    // Streams a 2xx body to `sink` with bounded memory, whatever its size:
    // a buffer of stream_piece_bytes is read at a time, gzip (or x-gzip) is
    // decoded incrementally, and the sink sees pieces of at most
    // stream_piece_bytes. Content-Encoding and Content-Length are dropped
    // from the response's fields after gzip is undone, as send() does.
    //
    // Deadlines: connecting, writing the request and reading the final
    // header keep request::timeout; the body has stream_idle_timeout per
    // read, and everything stream_timeout when set. A non-2xx body is read
    // whole under the request's deadline and max_body_bytes, exactly as
    // send() reads it.
    //
    // Connection reuse as for send(): after a body read to its end with
    // keep-alive on both sides. A transfer stopped by the sink, the
    // decoder or a failure closes the connection. The one retry on a stale
    // pooled connection happens before any response byte, so the sink has
    // seen nothing when it does.
    boost::asio::awaitable<result<response>> send_streaming(request req, body_sink& sink) override;

    // Closes every idle pooled connection (TLS close_notify under a short
    // deadline). Connections in use are not affected.
    void close_idle();

    // Idle connections currently pooled, over all origins (for tests and
    // `status`).
    std::size_t idle_count() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace headachemd::http
