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
#include "headachemd/http/client.hpp"

#include <array>
#include <cstdint>
#include <exception>
#include <iterator>
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

error fail(errc code, std::string_view method, std::string_view location, std::string_view detail) {
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

// The field values named `name`, in order (a list may span several fields).
std::vector<std::string_view> field_values(const response& r, std::string_view name) {
    std::vector<std::string_view> out;
    for (const auto& h : r.headers)
        if (iequals(h.name, name)) out.emplace_back(h.value);
    return out;
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
    std::erase_if(r.headers, [](const header_field& h) {
        return iequals(h.name, "Content-Encoding") || iequals(h.name, "Content-Length");
    });
    return ok_v;
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

// Every step runs under the request's one `deadline`: expires_at, never a
// fresh expires_after per step.
template <class Stream>
asio::awaitable<exchange_outcome> exchange(Stream& stream, connection& c, const message_t& msg,
                                           const client_options& opts, steady::time_point deadline,
                                           reply_t& out) {
    exchange_outcome r;
    beast::tcp_stream& lowest = c.lowest();

    lowest.expires_at(deadline);
    auto [write_ec, written] = co_await bhttp::async_write(stream, msg, use_tuple);
    (void)written;
    if (write_ec) {
        r.ec = write_ec;
        r.failed_at = phase::write;
        co_return r;
    }

    for (int interim = 0;; ++interim) {
        bhttp::response_parser<bhttp::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(opts.max_body_bytes);
        // RFC 9110 §9.3.2: a response to HEAD has no body whatever its
        // Content-Length says.
        if (msg.method() == bhttp::verb::head) parser.skip(true);

        lowest.expires_at(deadline);
        auto [header_ec, header_n] = co_await bhttp::async_read_header(stream, c.buffer, parser, use_tuple);
        (void)header_n;
        r.response_started = r.response_started || parser.got_some() || c.buffer.size() > 0;
        if (header_ec) {
            r.ec = header_ec;
            r.failed_at = phase::read_header;
            co_return r;
        }
        const unsigned status = parser.get().result_int();
        if (status >= 100 && status < 200 && status != 101) {
            if (interim + 1 >= max_interim_responses) {
                r.ec = bhttp::error::bad_status;
                r.failed_at = phase::read_header;
                co_return r;
            }
            continue;
        }

        if (!parser.is_done()) {
            lowest.expires_at(deadline);
            auto [body_ec, body_n] = co_await bhttp::async_read(stream, c.buffer, parser, use_tuple);
            (void)body_n;
            if (body_ec) {
                r.ec = body_ec;
                r.failed_at = phase::read_body;
                co_return r;
            }
        }
        // Reuse only after the whole message was read and both sides allow
        // it (RFC 9112 §9.3); leftover bytes would be an unsolicited
        // response, so such a connection is not reused either. 101 would
        // switch protocols, which we never ask for.
        r.reusable = parser.keep_alive() && msg.keep_alive() && c.buffer.size() == 0 && status != 101;
        out = parser.release();
        lowest.expires_never();
        co_return r;
    }
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

    // Resolve, connect and (https) handshake, ending by connect_timeout or
    // the request's deadline, whichever comes first.
    asio::awaitable<result<std::unique_ptr<connection>>> open(const target_info& t, std::string_view method,
                                                              steady::time_point request_deadline,
                                                              milliseconds request_limit);

    std::unique_ptr<connection> checkout(const std::string& key);
    void checkin(const std::string& key, std::unique_ptr<connection> c);
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

asio::awaitable<result<response>> client::impl::run(std::shared_ptr<impl> self, request req) {
    const std::string method(bhttp::to_string(req.method));
    auto target = parse_target(req.url, method);
    if (!target) co_return target.err();
    const target_info& t = *target;
    auto built = build_message(req, t, self->opts_, method);
    if (!built) co_return built.err();
    const message_t& msg = *built;
    const std::string key = t.where.to_string();
    const bool idempotent = is_idempotent(req.method);
    // One deadline for the whole request, fixed before anything is sent.
    const milliseconds limit = req.timeout.value_or(self->opts_.request_timeout);
    const steady::time_point deadline = steady::now() + limit;

    // At most two attempts: the second only after a reused connection
    // turned out to be stale.
    for (int attempt = 0;; ++attempt) {
        std::unique_ptr<connection> conn;
        if (attempt == 0) conn = self->checkout(key);
        const bool reused = conn != nullptr;
        if (!conn) {
            auto opened = co_await self->open(t, method, deadline, limit);
            if (!opened) co_return opened.err();
            conn = std::move(opened.value());
        }

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
            if (x.reusable)
                self->checkin(key, std::move(conn));
            else
                self->retire(std::move(conn));
            if (auto decoded = decode_content(out, req.method, self->opts_.max_body_bytes); !decoded)
                co_return fail(decoded.err().code.value(), method, t.location,
                               "decoding the response body: " + decoded.err().message);
            co_return out;
        }

        // A failed connection is in an unknown state: closed, not reused.
        conn->close_now();
        conn.reset();
        const auto code = detail::classify(x.failed_at, x.ec);
        // The server closed a kept-alive connection as we used it
        // (RFC 9112 §9.3.1 allows retrying then). Writing failed: the
        // request never reached the server whole, so any method may be
        // retried. Nothing came back after a full write: only idempotent
        // methods (RFC 9110 §9.2.2), since the server may have acted.
        const bool stale = reused && attempt == 0 && code == errc::reset &&
                           (x.failed_at == phase::write ||
                            (x.failed_at == phase::read_header && !x.response_started && idempotent));
        if (stale) continue;
        co_return fail(
            code, method, t.location,
            failure_detail(x.failed_at, x.ec, code, limit_info{limit, true}, self->opts_.max_body_bytes));
    }
}

client::client(asio::any_io_executor ex, client_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {}

client::~client() = default;

asio::awaitable<result<response>> client::send(request req) { return impl::run(impl_, std::move(req)); }

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
