// The HTTPS client: see headachemd/http/client.hpp for the contract.
//
// Shape: send() validates and builds the message (pure), takes a pooled
// connection or opens one (resolve → TCP → TLS), then runs one exchange
// (write, read header, read body). One deadline, fixed when send() starts,
// bounds all of it (beast::tcp_stream::expires_at before each step, never a
// fresh expires_after): a deadline per phase let a server that stalls after
// the header, or sends 1xx after 1xx, hold a request for many times the
// configured timeout (issue 12, defect 7). Every failure is turned into a
// stable code by detail::classify and a message that names the method and
// scheme://host:port/path only.
//
// send_streaming() shares the header phase (write_and_read_header) and the
// pool; a 2xx body is then read a fixed buffer at a time under an
// inactivity deadline and handed through the incremental decoder to the
// caller's sink, so memory does not grow with the body (issue 15).
#include "headachemd/http/client.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "headachemd/core/text.hpp"
#include "headachemd/http/detail/content_coding.hpp"
#include "headachemd/http/detail/errors.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using detail::is_token;
using detail::phase;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Beast's default is 8 KiB; FHIR servers send long Link and
// Content-Security-Policy fields, so allow more, but keep a bound.
constexpr std::uint32_t max_header_bytes = 64 * 1024;

// The TLS close_notify exchange of a connection we are done with. The peer
// often just closes TCP, so this is short (RFC 8446 §6.1 allows closing
// without waiting for the peer's close_notify).
constexpr std::chrono::milliseconds shutdown_limit{2000};

// RFC 9110 §15.2: a client must accept any number of 1xx interim responses
// before the final one. The request's one deadline already bounds the time
// they take; this bounds their number, since a run of them is never what a
// FHIR or token endpoint means to send.
constexpr int max_interim_responses = 8;

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

using message_t = bhttp::request<bhttp::string_body>;
using reply_t = bhttp::response<bhttp::string_body>;

// The longest field name or value Beast's basic_fields stores (its offsets
// are uint16_t, and it adds 2 bytes).
constexpr std::size_t max_field_bytes = 65533;

// RFC 9110 §5.5: CR, LF and NUL are never valid in a field value, and
// letting them through would let a value (say, a token from a hostile
// server) inject fields or a second request.
bool is_safe_field_value(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool is_ip_literal(std::string_view host) {
    return static_cast<bool>(boost::urls::parse_ipv4_address(host)) ||
           static_cast<bool>(boost::urls::parse_ipv6_address(host));
}

// RFC 9110 §9.2.2.
bool is_idempotent(bhttp::verb v) {
    switch (v) {
        case bhttp::verb::get:
        case bhttp::verb::head:
        case bhttp::verb::options:
        case bhttp::verb::trace:
        case bhttp::verb::put:
        case bhttp::verb::delete_:
            return true;
        default:
            return false;
    }
}

// Where a request goes. `location` is what messages may show.
struct target_info {
    origin where;
    std::string target;    // origin-form request-target (RFC 9112 §3.2.1)
    std::string location;  // scheme://host:port/path: no query, no fragment
};

error fail(headachemd::error_code code, std::string_view method, std::string_view location,
           std::string_view detail) {
    std::string msg(method);
    msg += ' ';
    msg += location;
    msg += ": ";
    msg += detail;
    return error{code, std::move(msg)};
}

result<target_info> parse_target(std::string_view url, std::string_view method) {
    // The URL itself is never echoed: its query may name a patient.
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) return fail(errc::invalid_url, method, "<url>", "not an absolute URI (RFC 3986 §4.3)");
    const boost::urls::url_view& u = *parsed;
    std::string scheme(u.scheme());
    for (char& c : scheme) c = ascii_lower(c);
    if (scheme != "https" && scheme != "http")
        return fail(errc::invalid_url, method, "<url>",
                    "scheme '" + scheme + "' is not supported (https only)");
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is deprecated and
    // a credential in a URL ends up in logs.
    if (u.has_userinfo())
        return fail(errc::invalid_url, method, scheme + "://<url>", "the URL carries userinfo");
    auto o = origin_of(url);
    if (!o) return fail(errc::invalid_url, method, scheme + "://<url>", "the host or port is not valid");

    std::string path(u.encoded_path());
    if (path.empty()) path = "/";
    target_info t;
    t.location = o->to_string() + path;
    t.target = path;
    if (u.has_query()) {
        t.target += '?';
        t.target += u.encoded_query();
    }
    // SMART App Launch 2.2 and our security model: plain HTTP is for
    // loopback only (the sandbox, a local test server), and the check is
    // made before anything is resolved or connected.
    if (o->scheme == "http" && !is_loopback_host(o->host))
        return fail(errc::insecure_scheme, method, t.location,
                    "plain http:// is refused for a host that is not loopback; use https://");
    t.where = std::move(*o);
    return t;
}

// RFC 9110 §7.2: Host is uri-host [":" port], the port left out when it
// is the scheme's default.
std::string host_field(const origin& o) {
    std::string h = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
    const std::uint16_t default_port = o.scheme == "https" ? 443 : 80;
    if (o.port != default_port) h += ":" + std::to_string(o.port);
    return h;
}

result<message_t> build_message(request& req, const target_info& t, const client_options& opts,
                                std::string_view method) {
    if (req.method == bhttp::verb::unknown)
        return fail(errc::invalid_request, method, t.location, "the request method is unknown");
    message_t msg{req.method, t.target, 11};
    msg.set(bhttp::field::host, host_field(t.where));
    msg.set(bhttp::field::user_agent, opts.user_agent);
    for (const auto& h : req.headers) {
        // The field name may be shown; the value never is.
        if (!is_token(h.name))
            return fail(errc::invalid_request, method, t.location,
                        "a header field name is not a valid token");
        if (!is_safe_field_value(h.value))
            return fail(errc::invalid_request, method, t.location,
                        "header '" + h.name + "' has a value with CR, LF or NUL");
        // Beast keeps a field's offsets in 16 bits and throws
        // std::length_error ("field value too large") past 65533 bytes; an
        // access token from a hostile server can be that long. An error
        // value, like every other bad request.
        if (h.name.size() > max_field_bytes || h.value.size() > max_field_bytes)
            return fail(errc::invalid_request, method, t.location,
                        "header '" + (h.name.size() > 64 ? h.name.substr(0, 64) + "…" : h.name) +
                            "' is too large (" + std::to_string(h.name.size() + h.value.size()) +
                            " bytes; at most " + std::to_string(max_field_bytes) + ")");
        const auto f = bhttp::string_to_field(h.name);
        // The body is framed by us (prepare_payload below); a caller's
        // Content-Length or Transfer-Encoding could only contradict it.
        if (f == bhttp::field::content_length || f == bhttp::field::transfer_encoding) continue;
        if (f == bhttp::field::host || f == bhttp::field::user_agent)
            msg.set(f, h.value);
        else
            msg.insert(h.name, h.value);
    }
    // Only GET asks for gzip (RFC 9110 §12.5.3): FHIR searches and reads,
    // discovery, Bulk Data files, where JSON shrinks several times over.
    // A POST does not: the one we send is the token request, whose answer
    // is a few hundred bytes holding the access and refresh tokens.
    // Compressing secrets lets their length leak what else shares the
    // compression window (BREACH, RFC 7457 §2.6), and there is nothing to
    // save. A gzip answer that comes unasked is still decoded (send()).
    if (opts.accept_gzip && req.method == bhttp::verb::get &&
        msg.find(bhttp::field::accept_encoding) == msg.end())
        msg.set(bhttp::field::accept_encoding, "gzip");
    msg.body() = std::move(req.body);
    msg.prepare_payload();
    return msg;
}

// A request checked and built, ready to go on any connection to its origin.
struct prepared {
    std::string method;  // for messages
    target_info target;
    message_t msg;
    std::string key;  // the pool's: origin::to_string()
    bool idempotent = false;
};

result<prepared> prepare(request& req, const client_options& opts) {
    prepared p;
    p.method = std::string(bhttp::to_string(req.method));
    auto target = parse_target(req.url, p.method);
    if (!target) return target.err();
    p.target = std::move(*target);
    auto built = build_message(req, p.target, opts, p.method);
    if (!built) return built.err();
    p.msg = std::move(*built);
    p.key = p.target.where.to_string();
    p.idempotent = is_idempotent(req.method);
    return p;
}

// The field values named `name`, in order (a list may span several fields).
std::vector<std::string_view> field_values(const response& r, std::string_view name) {
    std::vector<std::string_view> out;
    for (const auto& h : r.headers)
        if (iequals(h.name, name)) out.emplace_back(h.value);
    return out;
}

// Once the content coding is undone, Content-Encoding and Content-Length
// describe bytes the caller never sees.
void drop_coding_fields(response& r) {
    std::erase_if(r.headers, [](const header_field& h) {
        return iequals(h.name, "Content-Encoding") || iequals(h.name, "Content-Length");
    });
}

// Undoes the response's content coding in place (RFC 9110 §8.4), under the
// body cap: a decoded body counts against max_body_bytes as a received one
// does. A response that has no body (to HEAD, 204, 304), or whose body is
// empty, has nothing decoded and is left as it is. After gzip is undone
// the Content-Encoding and Content-Length fields go, since they described
// the bytes on the wire; the caller sees the representation as identity.
result<ok_t> decode_content(response& r, bhttp::verb method, std::size_t max_body_bytes) {
    const auto transfer = field_values(r, "Transfer-Encoding");
    if (auto ok = detail::check_transfer_encoding(transfer); !ok) return ok.err();
    if (method == bhttp::verb::head || r.status == 204 || r.status == 304 || r.body.empty()) return ok_v;
    const auto codings = field_values(r, "Content-Encoding");
    auto coding = detail::parse_content_encoding(codings);
    if (!coding) return coding.err();
    if (*coding == detail::content_coding::identity) return ok_v;
    auto decoded = detail::gunzip(r.body, max_body_bytes);
    if (!decoded) return decoded.err();
    r.body = std::move(*decoded);
    drop_coding_fields(r);
    return ok_v;
}

// A response read whole, its content coding undone (decode_content), or
// the error that names the request.
result<response> decoded(response r, bhttp::verb verb, std::size_t max_body_bytes, std::string_view method,
                         std::string_view location) {
    if (auto ok = decode_content(r, verb, max_body_bytes); !ok)
        return fail(ok.err().code, method, location, "decoding the response body: " + ok.err().message);
    return r;
}

response to_response(reply_t& r) {
    response out;
    out.status = static_cast<int>(r.result_int());
    for (const auto& f : r) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    out.body = std::move(r.body());
    return out;
}

// One connection; exactly one of `plain` and `tls` is engaged.
struct connection {
    std::optional<beast::tcp_stream> plain;
    std::optional<ssl::stream<beast::tcp_stream>> tls;
    // Survives between exchanges on a kept-alive connection; it is empty
    // whenever the connection sits in the pool (see exchange()).
    beast::flat_buffer buffer;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    void close_now() {
        beast::error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }
};

// A pooled connection that the server has closed (FIN, RST, or a TLS
// close_notify waiting to be read) is discarded before we write on it, so
// the common stale-keep-alive case never costs a failed request. Any
// readable byte on an idle HTTP/1.1 connection means it is unusable.
bool looks_alive(connection& c) {
    auto& sock = c.lowest().socket();
    if (!sock.is_open()) return false;
    beast::error_code ec;
    sock.non_blocking(true, ec);
    if (ec) return false;
    std::array<char, 1> probe{};
    sock.receive(asio::buffer(probe), tcp::socket::message_peek, ec);
    const bool alive = ec == asio::error::would_block;
    beast::error_code ignored;
    sock.non_blocking(false, ignored);
    return alive;
}

// How one exchange ended.
struct exchange_outcome {
    beast::error_code ec;
    phase failed_at = phase::write;
    bool response_started = false;  // at least one response byte arrived
    bool reusable = false;
};

// Writes the request and reads the header of the final response into
// `parser`, emplaced afresh for each interim 1xx response. Every step runs
// under `deadline`: expires_at, never a fresh expires_after per step.
// False: the exchange failed, and `r` says where.
template <class Stream, class Body>
asio::awaitable<bool> write_and_read_header(Stream& stream, connection& c, const message_t& msg,
                                            steady::time_point deadline,
                                            boost::optional<std::uint64_t> body_limit,
                                            std::optional<bhttp::response_parser<Body>>& parser,
                                            exchange_outcome& r) {
    beast::tcp_stream& lowest = c.lowest();

    lowest.expires_at(deadline);
    auto [write_ec, written] = co_await bhttp::async_write(stream, msg, use_tuple);
    (void)written;
    if (write_ec) {
        r.ec = write_ec;
        r.failed_at = phase::write;
        co_return false;
    }

    for (int interim = 0;; ++interim) {
        parser.emplace();
        parser->header_limit(max_header_bytes);
        parser->body_limit(body_limit);
        // RFC 9110 §9.3.2: a response to HEAD has no body whatever its
        // Content-Length says.
        if (msg.method() == bhttp::verb::head) parser->skip(true);

        lowest.expires_at(deadline);
        auto [header_ec, header_n] = co_await bhttp::async_read_header(stream, c.buffer, *parser, use_tuple);
        (void)header_n;
        r.response_started = r.response_started || parser->got_some() || c.buffer.size() > 0;
        if (header_ec) {
            r.ec = header_ec;
            r.failed_at = phase::read_header;
            co_return false;
        }
        const unsigned status = parser->get().result_int();
        if (status >= 100 && status < 200 && status != 101) {
            if (interim + 1 >= max_interim_responses) {
                r.ec = bhttp::error::bad_status;
                r.failed_at = phase::read_header;
                co_return false;
            }
            continue;
        }
        co_return true;
    }
}

// Reuse only after the whole message was read and both sides allow it
// (RFC 9112 §9.3); leftover bytes would be an unsolicited response, so such
// a connection is not reused either. 101 would switch protocols, which we
// never ask for.
template <class Parser>
bool may_reuse(const Parser& parser, const message_t& msg, const connection& c) {
    return parser.is_done() && parser.keep_alive() && msg.keep_alive() && c.buffer.size() == 0 &&
           parser.get().result_int() != 101;
}

template <class Stream>
asio::awaitable<exchange_outcome> exchange(Stream& stream, connection& c, const message_t& msg,
                                           const client_options& opts, steady::time_point deadline,
                                           reply_t& out) {
    exchange_outcome r;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser;
    if (!co_await write_and_read_header(stream, c, msg, deadline, opts.max_body_bytes, parser, r))
        co_return r;
    if (!parser->is_done()) {
        c.lowest().expires_at(deadline);
        auto [body_ec, body_n] = co_await bhttp::async_read(stream, c.buffer, *parser, use_tuple);
        (void)body_n;
        if (body_ec) {
            r.ec = body_ec;
            r.failed_at = phase::read_body;
            co_return r;
        }
    }
    r.reusable = may_reuse(*parser, msg, c);
    out = parser->release();
    c.lowest().expires_never();
    co_return r;
}

// The deadlines of one send_streaming() call.
struct stream_deadlines {
    steady::time_point header;  // the request's deadline, or `total` if sooner
    std::optional<steady::time_point> total;
    milliseconds idle{0};
};

// How a streaming exchange ended, beyond exchange_outcome.
struct stream_outcome : exchange_outcome {
    response head;  // status and fields; the whole body when not 2xx
    // The decoder or the sink ended the transfer: its code, and a detail
    // for the message (the sink's or the decoder's own text).
    std::optional<error> stopped;
    bool idle_expired = false;  // a body timeout came from the inactivity deadline
};

response head_of(const bhttp::response_header<>& h) {
    response out;
    out.status = static_cast<int>(h.result_int());
    for (const auto& f : h) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    return out;
}

bool is_success(int status) { return status >= 200 && status <= 299; }

// The header phase as exchange() runs it; then a 2xx body is read a buffer
// at a time (Beast's buffer_body) and goes through the incremental decoder
// to the sink; any other body is read whole, as send() reads it.
template <class Stream>
asio::awaitable<stream_outcome> stream_exchange(Stream& stream, connection& c, const message_t& msg,
                                                const client_options& opts, const stream_deadlines& when,
                                                body_sink& sink) {
    stream_outcome r;
    beast::tcp_stream& lowest = c.lowest();
    std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
    // No body limit yet: it depends on the status.
    if (!co_await write_and_read_header(stream, c, msg, when.header, boost::none, parser, r)) co_return r;
    r.head = head_of(parser->get());
    const std::uint64_t declared = parser->content_length().value_or(0);

    if (!is_success(r.head.status)) {
        if (declared > opts.max_body_bytes) {
            r.ec = bhttp::error::body_limit;
            r.failed_at = phase::read_body;
            co_return r;
        }
        // Beast's documented way to change the body type once the header is
        // read and before any body byte is parsed.
        bhttp::response_parser<bhttp::string_body> whole{std::move(*parser)};
        parser.reset();
        whole.body_limit(opts.max_body_bytes);
        if (!whole.is_done()) {
            lowest.expires_at(when.header);
            auto [body_ec, body_n] = co_await bhttp::async_read(stream, c.buffer, whole, use_tuple);
            (void)body_n;
            if (body_ec) {
                r.ec = body_ec;
                r.failed_at = phase::read_body;
                co_return r;
            }
        }
        r.reusable = may_reuse(whole, msg, c);
        r.head.body = std::move(whole.get().body());
        lowest.expires_never();
        co_return r;
    }

    // 2xx. The codings are checked before the first body byte, so a body
    // we cannot decode is never half delivered.
    if (auto ok = detail::check_transfer_encoding(field_values(r.head, "Transfer-Encoding")); !ok) {
        r.stopped = ok.err();
        co_return r;
    }
    auto coding = detail::parse_content_encoding(field_values(r.head, "Content-Encoding"));
    if (!coding) {
        r.stopped = coding.err();
        co_return r;
    }
    const std::uint64_t cap = opts.max_stream_bytes.value_or(std::numeric_limits<std::uint64_t>::max());
    if (declared > cap) {
        r.ec = bhttp::error::body_limit;
        r.failed_at = phase::read_body;
        co_return r;
    }
    if (opts.max_stream_bytes) parser->body_limit(*opts.max_stream_bytes);
    auto decoder = detail::make_content_decoder(
        *coding, {stream_piece_bytes, static_cast<std::size_t>(std::min<std::uint64_t>(
                                          cap, std::numeric_limits<std::size_t>::max()))});

    std::vector<char> buf(stream_piece_bytes);
    bool fed = false;
    while (!parser->is_done()) {
        auto& body = parser->get().body();
        body.data = buf.data();
        body.size = buf.size();
        body.more = true;
        // A fresh inactivity deadline for each read, never past the total.
        const auto idle_end = steady::now() + when.idle;
        r.idle_expired = !when.total || idle_end < *when.total;
        lowest.expires_at(r.idle_expired ? idle_end : *when.total);
        auto [ec, n] = co_await bhttp::async_read_some(stream, c.buffer, *parser, use_tuple);
        (void)n;
        // need_buffer: our buffer is full, which is the point of reading.
        if (ec && ec != bhttp::error::need_buffer) {
            r.ec = ec;
            r.failed_at = phase::read_body;
            co_return r;
        }
        const std::size_t got = buf.size() - parser->get().body().size;
        if (got == 0) continue;
        fed = true;
        decoder->feed(std::string_view(buf.data(), got));
        for (;;) {
            auto piece = decoder->next();
            if (!piece) {
                r.stopped = error{piece.err().code, "decoding the response body: " + piece.err().message};
                co_return r;
            }
            if (piece->empty()) break;
            if (auto taken = sink.on_data(*piece); !taken) {
                r.stopped =
                    error{taken.err().code, "the body sink stopped the transfer: " + taken.err().message};
                co_return r;
            }
        }
    }
    lowest.expires_never();
    // As send() does: an empty body has nothing to decode (a gzip decoder
    // would call no bytes at all an error).
    if (fed) {
        if (auto done = decoder->finish(); !done) {
            r.stopped = error{done.err().code, "decoding the response body: " + done.err().message};
            co_return r;
        }
        // The sink had the representation as identity; these fields
        // described the bytes on the wire.
        if (*coding == detail::content_coding::gzip) drop_coding_fields(r.head);
    }
    r.reusable = may_reuse(*parser, msg, c);
    co_return r;
}

// The server closed a kept-alive connection as we used it (RFC 9112
// §9.3.1 allows retrying then). Writing failed: the request never reached
// the server whole, so any method may be retried. Nothing came back after a
// full write: only idempotent methods (RFC 9110 §9.2.2), since the server
// may have acted. `first_reused`: the first attempt, on a pooled connection.
bool is_stale(const exchange_outcome& x, errc code, bool first_reused, bool idempotent) {
    return first_reused && code == errc::reset &&
           (x.failed_at == phase::write ||
            (x.failed_at == phase::read_header && !x.response_started && idempotent));
}

// A name check that leaves a reason behind: ssl::host_name_verification
// just answers false, so OpenSSL would report "certificate verify failed"
// with verify result X509_V_OK. Recording HOSTNAME_MISMATCH lets the
// message say what was wrong.
struct verify_host {
    ssl::host_name_verification check;
    bool operator()(bool preverified, ssl::verify_context& ctx) const {
        const bool ok = check(preverified, ctx);
        if (preverified && !ok) X509_STORE_CTX_set_error(ctx.native_handle(), X509_V_ERR_HOSTNAME_MISMATCH);
        return ok;
    }
};

// What an X509 verify result means for the admin, in words that point at
// the fix. OpenSSL's own string follows in parentheses.
std::string_view verify_reason(long verify) {
    switch (verify) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
            return "the certificate is for another host name";
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "the certificate has expired";
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "the certificate is not valid yet (check this machine's clock)";
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            return "the certificate is self-signed and not trusted (set ca_file for a private CA)";
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return "the certificate is not from a trusted CA (unknown CA; set ca_file for a private CA)";
        default:
            return "the certificate was refused";
    }
}

// The code and detail of a failed handshake. A certificate that failed
// verification leaves its reason in the verify result (verify_host makes
// sure a name mismatch does too); without one the handshake failed
// otherwise (protocol, version, the peer hanging up).
std::pair<errc, std::string> tls_failure(ssl::stream<beast::tcp_stream>& s, const std::string& host,
                                         const beast::error_code& ec) {
    const long verify = SSL_get_verify_result(s.native_handle());
    if (verify != X509_V_OK)
        return {errc::tls_verify, "TLS certificate verification failed for host " + host + ": " +
                                      std::string(verify_reason(verify)) + " (" +
                                      X509_verify_cert_error_string(verify) + ")"};
    return {errc::tls, "TLS handshake failed: " + ec.message()};
}

// The deadline that applied to a failed step and how to name it.
struct limit_info {
    milliseconds value{0};
    bool whole_request = true;  // false: the connect_timeout inside it
};

std::string failure_detail(phase p, const beast::error_code& ec, errc code, limit_info limit,
                           std::size_t max_body_bytes) {
    std::string d(detail::phase_name(p));
    d += ": ";
    if (code == errc::timeout) {
        d += limit.whole_request ? "the request was not complete within its deadline of " +
                                       std::to_string(limit.value.count()) + " ms"
                                 : "not complete within the connect timeout of " +
                                       std::to_string(limit.value.count()) + " ms";
    } else if (code == errc::body_too_large) {
        d += "the body exceeds the limit of " + std::to_string(max_body_bytes) + " bytes";
    } else {
        d += ec.message();
    }
    return d;
}

// State shared between a resolve and the coroutine waiting for it with a
// deadline. getaddrinfo cannot be interrupted, so on timeout the coroutine
// stops waiting and this state lives on until the lookup returns.
struct resolve_state {
    explicit resolve_state(const asio::any_io_executor& ex) : resolver(ex), timer(ex) {}
    std::mutex mutex;
    tcp::resolver resolver;
    asio::steady_timer timer;
    bool done = false;
    beast::error_code ec;
    tcp::resolver::results_type results;
};

}  // namespace

std::optional<std::string_view> response::header(std::string_view name) const {
    for (const auto& h : headers)
        if (iequals(h.name, name)) return std::string_view(h.value);
    return std::nullopt;
}

struct client::impl {
    impl(asio::any_io_executor ex, client_options opts)
        : ex_(std::move(ex)), opts_(std::move(opts)), tls_(ssl::context::tls_client) {
        tls_.set_verify_mode(ssl::verify_peer);
        // RFC 9325 §3.1.1: TLS 1.2 at least.
        SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
        beast::error_code ec;
        if (opts_.use_system_cas) {
            tls_.set_default_verify_paths(ec);
            if (ec) throw std::runtime_error("cannot load the system CA store: " + ec.message());
        }
        for (const auto& file : opts_.extra_ca_files) {
            tls_.load_verify_file(file.string(), ec);
            if (ec) throw std::runtime_error("cannot load CA file " + file.string() + ": " + ec.message());
        }
    }

    static asio::awaitable<result<response>> run(std::shared_ptr<impl> self, request req);
    static asio::awaitable<result<response>> run_streaming(std::shared_ptr<impl> self, request req,
                                                           body_sink& sink);

    // Resolve, connect and (https) handshake, ending by connect_timeout or
    // the request's deadline, whichever comes first.
    asio::awaitable<result<std::unique_ptr<connection>>> open(const target_info& t, std::string_view method,
                                                              steady::time_point request_deadline,
                                                              milliseconds request_limit);

    // A pooled connection on the first attempt, else a new one; `reused`
    // says which.
    asio::awaitable<result<std::unique_ptr<connection>>> connection_for(const prepared& p, int attempt,
                                                                        bool& reused,
                                                                        steady::time_point deadline,
                                                                        milliseconds limit);

    std::unique_ptr<connection> checkout(const std::string& key);
    void checkin(const std::string& key, std::unique_ptr<connection> c);
    // Back to the pool when `reusable`, else closed.
    void release(const std::string& key, std::unique_ptr<connection> c, bool reusable) {
        if (reusable)
            checkin(key, std::move(c));
        else
            retire(std::move(c));
    }
    void retire(std::unique_ptr<connection> c);

    asio::any_io_executor ex_;
    client_options opts_;
    ssl::context tls_;

    struct idle_connection {
        std::unique_ptr<connection> conn;
        std::chrono::steady_clock::time_point since;
    };
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<idle_connection>> idle_;  // key: origin::to_string()
};

namespace {

asio::awaitable<void> close_gracefully(std::unique_ptr<connection> c) {
    if (c->tls) {
        c->lowest().expires_after(shutdown_limit);
        // stream_truncated (the peer closed TCP without its close_notify),
        // eof and timeout are all normal endings here.
        auto [ec] = co_await c->tls->async_shutdown(use_tuple);
        (void)ec;
    }
    c->close_now();
}

}  // namespace

void client::impl::retire(std::unique_ptr<connection> c) {
    if (!c) return;
    if (!c->tls) {
        c->close_now();
        return;
    }
    auto task = close_gracefully(std::move(c));
    // Only std::bad_alloc could escape; rethrow it out of run() rather
    // than lose it.
    auto on_done = [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    };
    asio::co_spawn(ex_, std::move(task), on_done);
}

std::unique_ptr<connection> client::impl::checkout(const std::string& key) {
    std::vector<std::unique_ptr<connection>> expired;
    std::unique_ptr<connection> found;
    {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        // Idle expiry is lazy: every checkout sweeps all origins.
        for (auto it = idle_.begin(); it != idle_.end();) {
            auto& list = it->second;
            for (auto c = list.begin(); c != list.end();) {
                if (now - c->since >= opts_.idle_timeout) {
                    expired.push_back(std::move(c->conn));
                    c = list.erase(c);
                } else {
                    ++c;
                }
            }
            it = list.empty() ? idle_.erase(it) : std::next(it);
        }
        if (auto it = idle_.find(key); it != idle_.end()) {
            auto& list = it->second;
            // Most recently used first: the likeliest to be alive.
            while (!list.empty() && !found) {
                auto c = std::move(list.back().conn);
                list.pop_back();
                if (looks_alive(*c)) found = std::move(c);
                // else: dropped here, a hard close of a dead socket
            }
            if (list.empty()) idle_.erase(it);
        }
    }
    for (auto& c : expired) retire(std::move(c));
    return found;
}

void client::impl::checkin(const std::string& key, std::unique_ptr<connection> c) {
    {
        std::lock_guard lock(mutex_);
        auto& list = idle_[key];
        if (list.size() < opts_.max_idle_per_origin) {
            list.push_back({std::move(c), std::chrono::steady_clock::now()});
            return;
        }
        if (list.empty()) idle_.erase(key);
    }
    retire(std::move(c));
}

asio::awaitable<result<std::unique_ptr<connection>>> client::impl::open(const target_info& t,
                                                                        std::string_view method,
                                                                        steady::time_point request_deadline,
                                                                        milliseconds request_limit) {
    const auto connect_deadline = steady::now() + opts_.connect_timeout;
    const bool connect_binds = connect_deadline < request_deadline;
    const auto deadline = connect_binds ? connect_deadline : request_deadline;
    const limit_info limit =
        connect_binds ? limit_info{opts_.connect_timeout, false} : limit_info{request_limit, true};
    const auto failed = [&](phase p, const beast::error_code& ec) {
        const auto code = detail::classify(p, ec);
        return fail(code, method, t.location, failure_detail(p, ec, code, limit, opts_.max_body_bytes));
    };

    // 1. Resolve, abandoning the lookup at the deadline.
    auto st = std::make_shared<resolve_state>(ex_);
    st->timer.expires_at(deadline);
    auto on_resolved = [st](beast::error_code ec, tcp::resolver::results_type results) {
        std::lock_guard lock(st->mutex);
        st->done = true;
        st->ec = ec;
        st->results = std::move(results);
        st->timer.cancel();
    };
    st->resolver.async_resolve(t.where.host, std::to_string(t.where.port), tcp::resolver::numeric_service,
                               on_resolved);
    co_await st->timer.async_wait(use_tuple);
    std::vector<tcp::endpoint> endpoints;
    {
        std::lock_guard lock(st->mutex);
        if (!st->done) {
            st->resolver.cancel();
            co_return failed(phase::resolve, beast::error::timeout);
        }
        if (st->ec) co_return failed(phase::resolve, st->ec);
        for (const auto& entry : st->results) {
            // "localhost" passed the loopback check by name; make sure it
            // also resolved to loopback before plain text goes out.
            if (t.where.scheme == "http" && !entry.endpoint().address().is_loopback()) continue;
            endpoints.push_back(entry.endpoint());
        }
    }
    if (endpoints.empty()) {
        if (t.where.scheme == "http")
            co_return fail(errc::insecure_scheme, method, t.location,
                           "the host did not resolve to a loopback address; plain http:// is refused");
        co_return fail(errc::resolve, method, t.location, "resolving the host: no addresses");
    }

    // 2. TCP.
    auto c = std::make_unique<connection>();
    if (t.where.scheme == "https")
        c->tls.emplace(ex_, tls_);
    else
        c->plain.emplace(ex_);
    beast::tcp_stream& lowest = c->lowest();
    lowest.expires_at(deadline);
    auto [connect_ec, endpoint] = co_await lowest.async_connect(endpoints, use_tuple);
    (void)endpoint;
    if (connect_ec) co_return failed(phase::connect, connect_ec);
    beast::error_code ignored;
    lowest.socket().set_option(tcp::no_delay(true), ignored);
    if (!c->tls) co_return std::move(c);

    // 3. TLS. SNI carries the name (RFC 6066 §3; not for IP literals, which
    // it does not allow), and the certificate must match it (RFC 9110
    // §4.3.4, RFC 6125).
    if (!is_ip_literal(t.where.host) &&
        SSL_set_tlsext_host_name(c->tls->native_handle(), t.where.host.c_str()) != 1)
        co_return fail(errc::tls, method, t.location, "TLS handshake: cannot set the server name (SNI)");
    c->tls->set_verify_mode(ssl::verify_peer);
    c->tls->set_verify_callback(verify_host{ssl::host_name_verification(t.where.host)});
    lowest.expires_at(deadline);
    auto [handshake_ec] = co_await c->tls->async_handshake(ssl::stream_base::client, use_tuple);
    if (handshake_ec) {
        const auto code = detail::classify(phase::handshake, handshake_ec);
        if (code == errc::tls) {
            auto [tls_code, tls_detail] = tls_failure(*c->tls, t.where.host, handshake_ec);
            if (tls_code == errc::tls)
                tls_detail = std::string(detail::phase_name(phase::handshake)) + ": " + tls_detail;
            co_return fail(tls_code, method, t.location, tls_detail);
        }
        co_return failed(phase::handshake, handshake_ec);
    }
    lowest.expires_never();
    co_return std::move(c);
}

asio::awaitable<result<std::unique_ptr<connection>>> client::impl::connection_for(const prepared& p,
                                                                                  int attempt, bool& reused,
                                                                                  steady::time_point deadline,
                                                                                  milliseconds limit) {
    std::unique_ptr<connection> conn;
    if (attempt == 0) conn = checkout(p.key);
    reused = conn != nullptr;
    if (conn) co_return std::move(conn);
    co_return co_await open(p.target, p.method, deadline, limit);
}

asio::awaitable<result<response>> client::impl::run(std::shared_ptr<impl> self, request req) {
    auto ready = prepare(req, self->opts_);
    if (!ready) co_return ready.err();
    const prepared& p = *ready;
    const std::string& method = p.method;
    const target_info& t = p.target;
    const message_t& msg = p.msg;
    const std::string& key = p.key;
    const bool idempotent = p.idempotent;
    // One deadline for the whole request, fixed before anything is sent.
    const milliseconds limit = req.timeout.value_or(self->opts_.request_timeout);
    const steady::time_point deadline = steady::now() + limit;

    // At most two attempts: the second only after a reused connection
    // turned out to be stale.
    for (int attempt = 0;; ++attempt) {
        bool reused = false;
        auto got = co_await self->connection_for(p, attempt, reused, deadline, limit);
        if (!got) co_return got.err();
        std::unique_ptr<connection> conn = std::move(got.value());

        reply_t reply;
        exchange_outcome x;
        if (conn->tls)
            x = co_await exchange(*conn->tls, *conn, msg, self->opts_, deadline, reply);
        else
            x = co_await exchange(*conn->plain, *conn, msg, self->opts_, deadline, reply);

        if (!x.ec) {
            response out = to_response(reply);
            // The message was read whole, so the connection is as good
            // as its keep-alive says, whatever its content turns out to be.
            self->release(key, std::move(conn), x.reusable);
            co_return decoded(std::move(out), req.method, self->opts_.max_body_bytes, method, t.location);
        }

        // A failed connection is in an unknown state: closed, not reused.
        conn->close_now();
        conn.reset();
        const auto code = detail::classify(x.failed_at, x.ec);
        if (is_stale(x, code, reused && attempt == 0, idempotent)) continue;
        co_return fail(
            code, method, t.location,
            failure_detail(x.failed_at, x.ec, code, limit_info{limit, true}, self->opts_.max_body_bytes));
    }
}

asio::awaitable<result<response>> client::impl::run_streaming(std::shared_ptr<impl> self, request req,
                                                              body_sink& sink) {
    auto ready = prepare(req, self->opts_);
    if (!ready) co_return ready.err();
    const prepared& p = *ready;
    const std::string& method = p.method;
    const target_info& t = p.target;
    const auto start = steady::now();
    const milliseconds limit = req.timeout.value_or(self->opts_.request_timeout);
    stream_deadlines when;
    when.header = start + limit;
    when.idle = self->opts_.stream_idle_timeout;
    if (self->opts_.stream_timeout) when.total = start + *self->opts_.stream_timeout;
    // The header phase ends by the request's deadline or the overall one,
    // whichever is sooner; a timeout message names the one that applied.
    limit_info header_limit{limit, true};
    if (when.total && *when.total < when.header) {
        when.header = *when.total;
        header_limit.value = *self->opts_.stream_timeout;
    }

    // Attempts as in run().
    for (int attempt = 0;; ++attempt) {
        bool reused = false;
        auto got = co_await self->connection_for(p, attempt, reused, when.header, header_limit.value);
        if (!got) co_return got.err();
        std::unique_ptr<connection> conn = std::move(got.value());

        stream_outcome x;
        if (conn->tls)
            x = co_await stream_exchange(*conn->tls, *conn, p.msg, self->opts_, when, sink);
        else
            x = co_await stream_exchange(*conn->plain, *conn, p.msg, self->opts_, when, sink);

        if (!x.ec && !x.stopped) {
            self->release(p.key, std::move(conn), x.reusable);
            // A non-2xx body was read whole; it is decoded as send() does.
            if (!is_success(x.head.status))
                co_return decoded(std::move(x.head), req.method, self->opts_.max_body_bytes, method,
                                  t.location);
            co_return std::move(x.head);
        }

        // Stopped or failed: the rest of the body is unread, so the
        // connection is closed, never reused.
        conn->close_now();
        conn.reset();
        if (x.stopped) co_return fail(x.stopped->code, method, t.location, x.stopped->message);
        const auto code = detail::classify(x.failed_at, x.ec);
        if (is_stale(x, code, reused && attempt == 0, p.idempotent)) continue;
        if (code == errc::timeout && x.failed_at == phase::read_body && is_success(x.head.status)) {
            const bool idle = x.idle_expired;
            const auto ms = idle ? when.idle : *self->opts_.stream_timeout;
            co_return fail(code, method, t.location,
                           std::string(detail::phase_name(phase::read_body)) + ": " +
                               (idle ? "no data within the inactivity deadline of "
                                     : "the transfer was not complete within its overall deadline of ") +
                               std::to_string(ms.count()) + " ms");
        }
        const std::size_t cap = is_success(x.head.status) && self->opts_.max_stream_bytes
                                    ? static_cast<std::size_t>(*self->opts_.max_stream_bytes)
                                    : self->opts_.max_body_bytes;
        co_return fail(code, method, t.location, failure_detail(x.failed_at, x.ec, code, header_limit, cap));
    }
}

// A transport without streaming of its own (a test fake) sends as usual
// and hands a 2xx body over in one piece.
asio::awaitable<result<response>> transport::send_streaming(request req, body_sink& sink) {
    auto r = co_await send(std::move(req));
    if (!r || !is_success(r->status) || r->body.empty()) co_return r;
    const std::string body = std::move(r->body);
    r->body.clear();
    if (auto taken = sink.on_data(body); !taken) co_return taken.err();
    co_return r;
}

client::client(asio::any_io_executor ex, client_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

client::~client() = default;

asio::awaitable<result<response>> client::send(request req) { return impl::run(impl_, std::move(req)); }

asio::awaitable<result<response>> client::send_streaming(request req, body_sink& sink) {
    return impl::run_streaming(impl_, std::move(req), sink);
}

void client::close_idle() {
    std::map<std::string, std::vector<impl::idle_connection>> all;
    {
        std::lock_guard lock(impl_->mutex_);
        all.swap(impl_->idle_);
    }
    for (auto& [key, list] : all)
        for (auto& entry : list) impl_->retire(std::move(entry.conn));
}

std::size_t client::idle_count() const {
    std::lock_guard lock(impl_->mutex_);
    std::size_t n = 0;
    for (const auto& [key, list] : impl_->idle_) n += list.size();
    return n;
}

}  // namespace headachemd::http
