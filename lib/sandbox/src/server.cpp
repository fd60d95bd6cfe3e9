// The sandbox's transport: an acceptor and one coroutine per connection
// (TLS or plain), with keep-alive, a deadline on every phase, a body limit,
// and the injected latency, resets and truncations. All request logic is in
// app.cpp; this file only moves bytes.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "app.hpp"
#include "codec.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "secret_ledger.hpp"
#include "tls_material.hpp"

namespace headachemd::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto handshake_timeout = 10s;
constexpr auto idle_timeout = 30s;  // keep-alive: waiting for the next request
constexpr auto write_timeout = 30s;
constexpr auto shutdown_timeout = 2s;
constexpr std::size_t body_limit = 64 * 1024;  // form bodies are small

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

template <class Stream>
struct connection {
    template <class... Args>
    explicit connection(Args&&... args) : stream(std::forward<Args>(args)...), timer(stream.get_executor()) {}
    Stream stream;
    asio::steady_timer timer;  // the injected latency
};

}  // namespace

namespace detail {

// The server's state. server::impl derives from it, so that the coroutines
// below can name it (server::impl is private).
struct server_core {
    server_core(asio::io_context& ctx, options o)
        : ioc(ctx),
          logic(o),
          opts(detail::normalized(std::move(o))),
          acceptor_strand(asio::make_strand(ctx)),
          acceptor(acceptor_strand),
          file_acceptor(acceptor_strand) {}

    void log(std::string_view line) const {
        if (opts.log) opts.log(line);
    }

    // Registers a way to close a connection from stop(); returns its key,
    // or 0 when the server is already stopping.
    std::uint64_t add_closer(std::function<void()> close) {
        std::lock_guard lock(sessions_mu);
        if (stopping) return 0;
        const std::uint64_t key = ++next_session;
        closers.emplace(key, std::move(close));
        return key;
    }
    void remove_closer(std::uint64_t key) {
        {
            std::lock_guard lock(sessions_mu);
            closers.erase(key);
        }
        sessions_closed.notify_all();
    }

    asio::io_context& ioc;
    detail::app logic;
    const options opts;
    std::optional<ssl::context> tls;
    std::string ca_pem;
    asio::strand<asio::io_context::executor_type> acceptor_strand;
    tcp::acceptor acceptor;
    // The second loopback origin (another port) that serves bulk files by
    // capability URL, where a 307 from the first origin sends the client
    // (issue 15: Oracle Health's file URLs redirect to another host).
    tcp::acceptor file_acceptor;
    std::atomic<std::uint16_t> bound_port{0};
    std::atomic<bool> started{false};

    // The crash-test observer (sandbox.hpp), copied out under its lock and
    // called without it.
    void observe(std::string_view target, server::exchange_phase phase) {
        std::shared_ptr<const server::exchange_observer> o;
        {
            std::lock_guard lock(observer_mu);
            o = observer;
        }
        if (o && *o) (*o)(target.substr(0, target.find('?')), phase);
    }
    std::mutex observer_mu;
    std::shared_ptr<const server::exchange_observer> observer;

    std::mutex sessions_mu;
    bool stopping = false;
    std::uint64_t next_session = 0;
    std::unordered_map<std::uint64_t, std::function<void()>> closers;
    std::condition_variable sessions_closed;  // notified whenever a connection ends
};

}  // namespace detail

struct server::impl final : detail::server_core {
    using server_core::server_core;
};

namespace {

using detail::server_core;

// Every co_spawn completes here: an exception in a session is a bug, so it
// is logged (never silently dropped, never allowed to escape run()).
auto completion(std::weak_ptr<server_core> weak, std::string_view what) {
    return [weak = std::move(weak), what](std::exception_ptr e) {
        if (!e) return;
        std::string message;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            message = ex.what();
        } catch (...) {
            message = "unknown exception";
        }
        if (auto self = weak.lock())
            self->log("sandbox: " + std::string(what) + " ended with an exception: " + message);
    };
}

template <class Stream>
asio::awaitable<void> close_gracefully(connection<Stream>& c) {
    auto& lowest = beast::get_lowest_layer(c.stream);
    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
        // TLS close_notify; a peer that just drops the connection gives
        // stream_truncated or eof here, which is normal.
        lowest.expires_after(shutdown_timeout);
        co_await c.stream.async_shutdown(use_tuple);
    }
    beast::error_code ec;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest.close();
}

// 413 for a body over the limit. False when the reply could not be
// written (the connection is then simply dropped).
template <class Stream>
asio::awaitable<bool> reject_too_large(connection<Stream>& c) {
    auto& lowest = beast::get_lowest_layer(c.stream);
    const std::string reply =
        "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    lowest.expires_after(write_timeout);
    auto [wec, written] = co_await asio::async_write(c.stream, asio::buffer(reply), use_tuple);
    if (wec) co_return false;
    // Lingering close: read what the client is still sending, so that
    // closing with unread data does not RST away the 413 itself.
    std::array<char, 4096> scratch;
    lowest.expires_after(2s);
    for (;;) {
        auto [dec, n] = co_await c.stream.async_read_some(asio::buffer(scratch), use_tuple);
        if (dec) break;
    }
    co_return true;
}

// The scripted transport faults: each ends the connection its own way.
// False for a response with no fault, which is written whole.
template <class Stream>
asio::awaitable<bool> write_with_fault(server_core& self, connection<Stream>& c,
                                       const detail::http_response& response, const std::string& head) {
    auto& lowest = beast::get_lowest_layer(c.stream);
    if (response.fault == detail::transport_fault::truncate) {
        // Content-Length promises the whole body; half of it arrives,
        // then the connection closes (the client sees a partial message).
        const std::string part = head + response.body.substr(0, response.body.size() / 2);
        auto [wec, written] = co_await asio::async_write(c.stream, asio::buffer(part), use_tuple);
        self.logic.note_reset_or_truncation(response.fault);
        if (!wec) co_await close_gracefully(c);
        co_return true;
    }
    if (response.fault == detail::transport_fault::reset) {
        // Part of the head, then an RST (SO_LINGER 0): a connection reset
        // mid-response, as a crashing proxy produces.
        co_await asio::async_write(c.stream, asio::buffer(head.data(), head.size() / 2), use_tuple);
        self.logic.note_reset_or_truncation(response.fault);
        beast::error_code ec;
        lowest.socket().set_option(tcp::socket::linger(true, 0), ec);
        lowest.socket().close(ec);
        co_return true;
    }
    if (response.fault == detail::transport_fault::stall ||
        response.fault == detail::transport_fault::interim_flood) {
        // Issue 12, defect 7: a server that keeps a request alive
        // without ever finishing it. The timer waits between writes
        // (never a sleep); the client's hang-up ends it when a write
        // fails, stop() when it closes the socket.
        const bool flood = response.fault == detail::transport_fault::interim_flood;
        self.logic.note_reset_or_truncation(response.fault);
        if (!flood) {
            auto [wec, written] = co_await asio::async_write(c.stream, asio::buffer(head), use_tuple);
            if (wec) co_return true;
        }
        // One 102, or one byte of the body, per interval; a stall stops
        // a byte short of the body, so it never completes.
        const std::size_t pieces = flood                      ? std::size_t(-1)
                                   : response.interval <= 0ms ? 0
                                   : response.body.empty()    ? 0
                                                              : response.body.size() - 1;
        for (std::size_t i = 0; i < pieces; ++i) {
            c.timer.expires_after(response.interval);
            auto [tec] = co_await c.timer.async_wait(use_tuple);
            if (tec || !lowest.socket().is_open()) co_return true;
            const std::string piece =
                flood ? std::string("HTTP/1.1 102 Processing\r\n\r\n") : std::string(1, response.body[i]);
            lowest.expires_after(write_timeout);
            auto [wec, written] = co_await asio::async_write(c.stream, asio::buffer(piece), use_tuple);
            if (wec) co_return true;  // the client gave up
        }
        // Hold the connection until the client hangs up (or stop()).
        lowest.expires_never();
        std::array<char, 256> scratch;
        for (;;) {
            auto [dec, n] = co_await c.stream.async_read_some(asio::buffer(scratch), use_tuple);
            if (dec) co_return true;
        }
    }
    if (response.fault == detail::transport_fault::reset_mid_body) {
        // The head and half the body, then an RST: the client has begun
        // reading the body when the connection dies.
        const std::string part = head + response.body.substr(0, response.body.size() / 2);
        co_await asio::async_write(c.stream, asio::buffer(part), use_tuple);
        self.logic.note_reset_or_truncation(detail::transport_fault::reset);
        beast::error_code ec;
        lowest.socket().set_option(tcp::socket::linger(true, 0), ec);
        lowest.socket().close(ec);
        co_return true;
    }
    co_return false;
}

template <class Stream>
asio::awaitable<void> serve(std::shared_ptr<server_core> self, std::shared_ptr<connection<Stream>> c,
                            bool file_origin) {
    auto& lowest = beast::get_lowest_layer(c->stream);
    // stop() closes the socket on the connection's strand; that fails the
    // pending operation and ends this coroutine.
    const auto exec = c->stream.get_executor();
    std::weak_ptr<connection<Stream>> weak = c;
    const std::uint64_t key = self->add_closer([weak, exec] {
        asio::post(exec, [weak] {
            if (auto conn = weak.lock()) {
                beast::get_lowest_layer(conn->stream).close();
                conn->timer.cancel();
            }
        });
    });
    if (key == 0) co_return;
    struct unregister {
        server_core& s;
        std::uint64_t k;
        ~unregister() { s.remove_closer(k); }
    } guard{*self, key};

    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
        lowest.expires_after(handshake_timeout);
        auto [ec] = co_await c->stream.async_handshake(ssl::stream_base::server, use_tuple);
        self->logic.note_handshake(!ec);
        if (ec) {
            self->log("sandbox: TLS handshake failed: " + ec.message());
            co_return;
        }
    }

    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        lowest.expires_after(idle_timeout);
        auto [rec, nread] = co_await http::async_read(c->stream, buffer, parser, use_tuple);
        if (rec == http::error::body_limit) {
            if (!co_await reject_too_large(*c)) co_return;
            break;
        }
        if (rec) co_return;  // eof, timeout, reset or stop(): nothing more to say

        auto& req = parser.get();
        detail::http_request request;
        request.method = std::string(req.method_string());
        request.target = std::string(req.target());
        request.authorization = std::string(req[http::field::authorization]);
        request.accept_encoding = std::string(req[http::field::accept_encoding]);
        request.accept = std::string(req[http::field::accept]);
        request.prefer = std::string(req["Prefer"]);
        request.body = std::move(req.body());
        request.file_origin = file_origin;
        bool keep_alive = req.keep_alive();

        self->observe(request.target, server::exchange_phase::received);
        detail::http_response response = self->logic.handle(request);
        if (response.delay > 0ms) {
            // A timer, not a sleep: other connections go on meanwhile.
            c->timer.expires_after(response.delay);
            auto [tec] = co_await c->timer.async_wait(use_tuple);
            if (tec || !lowest.socket().is_open()) co_return;
        }
        if (response.fault != detail::transport_fault::none) keep_alive = false;
        const std::string head = detail::serialize_head(response, keep_alive);
        lowest.expires_after(write_timeout);

        if (co_await write_with_fault(*self, *c, response, head)) co_return;
        // One contiguous buffer: with Beast 1.81's ssl_stream a two-buffer
        // sequence (head, body) stalled after the head in our tests.
        const std::string whole = head + response.body;
        auto [wec, n] = co_await asio::async_write(c->stream, asio::buffer(whole), use_tuple);
        if (wec) co_return;
        self->observe(request.target, server::exchange_phase::sent);
        if (!keep_alive) break;
    }
    co_await close_gracefully(*c);
}

asio::awaitable<void> session(std::shared_ptr<server_core> self, tcp::socket socket, bool file_origin) {
    if (self->tls) {
        using tls_stream = beast::ssl_stream<beast::tcp_stream>;
        auto c = std::make_shared<connection<tls_stream>>(beast::tcp_stream(std::move(socket)), *self->tls);
        co_await serve(self, std::move(c), file_origin);
    } else {
        auto c = std::make_shared<connection<beast::tcp_stream>>(std::move(socket));
        co_await serve(self, std::move(c), file_origin);
    }
}

asio::awaitable<void> accept_loop(std::shared_ptr<server_core> self, bool file_origin) {
    tcp::acceptor& acceptor = file_origin ? self->file_acceptor : self->acceptor;
    for (;;) {
        // Each connection gets its own strand, so the io_context may be run
        // by several threads.
        auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(self->ioc), use_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
            // EMFILE and the like: pause instead of spinning on the error.
            self->log("sandbox: accept failed: " + ec.message());
            asio::steady_timer pause(self->acceptor_strand, 100ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        // Responses go out in one write; Nagle would only hold back the
        // tail of a multi-record TLS response until the client's delayed ACK.
        beast::error_code opt_ec;
        socket.set_option(tcp::no_delay(true), opt_ec);
        const auto exec = socket.get_executor();
        // GCC 12: the handler is a named variable, not a temporary in the call.
        auto on_done = completion(self, "session");
        asio::co_spawn(exec, session(self, std::move(socket), file_origin), std::move(on_done));
    }
}

}  // namespace

namespace {
options with_secret(options opts) {
    if (opts.client_secret.empty()) opts.client_secret = detail::random_token();
    opts.secret_observer = detail::with_ledger(std::move(opts.secret_observer));
    return opts;
}
}  // namespace

server::server(asio::io_context& ioc, options opts)
    : impl_(std::make_shared<impl>(ioc, with_secret(std::move(opts)))) {}

server::~server() { stop(); }

void server::start() {
    impl& s = *impl_;
    if (s.started.exchange(true)) return;
    try {
        if (s.opts.tls) {
            const detail::tls_material m =
                detail::make_tls_material(s.opts.host, s.opts.certificate_host, s.opts.certificate_expired);
            s.tls.emplace(ssl::context::tls_server);
            s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
            s.tls->use_certificate_chain(asio::buffer(m.server_cert_pem));
            s.tls->use_private_key(asio::buffer(m.server_key_pem), ssl::context::pem);
            s.ca_pem = m.ca_cert_pem;
        }
        // Bound synchronously, so port() and base_url() are right on return.
        const tcp::endpoint endpoint{asio::ip::make_address(s.opts.host), s.opts.port};
        s.acceptor.open(endpoint.protocol());
        s.acceptor.set_option(tcp::acceptor::reuse_address(true));
        s.acceptor.bind(endpoint);
        s.acceptor.listen(asio::socket_base::max_listen_connections);
        // The file origin: same address and certificate (SAN 127.0.0.1), an
        // ephemeral port, so a different origin (RFC 6454: scheme, host, port).
        const tcp::endpoint file_endpoint{endpoint.address(), 0};
        s.file_acceptor.open(file_endpoint.protocol());
        s.file_acceptor.bind(file_endpoint);
        s.file_acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (...) {
        beast::error_code ec;
        s.acceptor.close(ec);
        s.file_acceptor.close(ec);
        s.tls.reset();
        s.ca_pem.clear();
        s.started = false;
        throw;
    }
    s.bound_port = s.acceptor.local_endpoint().port();
    const std::string scheme = s.opts.tls ? "https://" : "http://";
    s.logic.set_base_url(scheme + s.opts.host + ":" + std::to_string(s.bound_port.load()));
    s.logic.set_file_origin_url(scheme + s.opts.host + ":" +
                                std::to_string(s.file_acceptor.local_endpoint().port()));

    auto on_done = completion(impl_, "accept loop");
    asio::co_spawn(s.acceptor_strand, accept_loop(impl_, false), std::move(on_done));
    auto on_file_done = completion(impl_, "file-origin accept loop");
    asio::co_spawn(s.acceptor_strand, accept_loop(impl_, true), std::move(on_file_done));
}

void server::stop() {
    std::vector<std::function<void()>> to_close;
    {
        std::lock_guard lock(impl_->sessions_mu);
        if (impl_->stopping) return;
        impl_->stopping = true;
        for (auto& [key, close] : impl_->closers) to_close.push_back(close);
    }
    if (impl_->started) {
        asio::post(impl_->acceptor_strand, [self = impl_] {
            beast::error_code ec;
            self->acceptor.close(ec);
            self->file_acceptor.close(ec);
        });
    }
    for (auto& close : to_close) close();
}

std::uint16_t server::port() const { return impl_->bound_port.load(); }
std::string server::base_url() const { return impl_->logic.base_url(); }
std::string server::file_origin_url() const { return impl_->logic.file_origin_url(); }
std::string server::fhir_base() const { return impl_->logic.fhir_base(); }
std::string server::ca_certificate_pem() const { return impl_->ca_pem; }
const options& server::config() const { return impl_->opts; }

void server::write_ca_pem(const std::filesystem::path& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << impl_->ca_pem;
    out.close();
    if (!out) throw std::runtime_error("sandbox: cannot write the CA certificate to " + path.string());
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                  std::filesystem::perms::group_read | std::filesystem::perms::others_read);
}

std::string server::issue_refresh_token(const std::string& patient_id, std::string scope) {
    return impl_->logic.issue_refresh_token(patient_id, std::move(scope));
}
void server::revoke_patient_grants(const std::string& patient_id) {
    impl_->logic.revoke_patient_grants(patient_id);
}
void server::expire_access_tokens() { impl_->logic.expire_access_tokens(); }
void server::set_authorize_patient(const std::string& patient_id) {
    impl_->logic.set_authorize_patient(patient_id);
}
void server::set_refresh_reuse_grace(bool on) { impl_->logic.set_refresh_reuse_grace(on); }
void server::set_fault_rates(double rate_429, double rate_500, double rate_reset, double rate_truncated) {
    impl_->logic.set_fault_rates(rate_429, rate_500, rate_reset, rate_truncated);
}
void server::set_latency(std::chrono::milliseconds latency) { impl_->logic.set_latency(latency); }
void server::set_gzip(bool on) { impl_->logic.set_gzip(on); }
void server::set_next_link_override(std::string url) { impl_->logic.set_next_link_override(std::move(url)); }
void server::set_bad_json_page(int n) { impl_->logic.set_bad_json_page(n); }
void server::add_scripted_fault(scripted_fault f) { impl_->logic.add_scripted_fault(std::move(f)); }
void server::clear_scripted_faults() { impl_->logic.clear_scripted_faults(); }
void server::script_bulk_polls(bulk_poll_fault f) { impl_->logic.script_bulk_polls(std::move(f)); }
void server::script_bulk_file_redirects(int count) { impl_->logic.script_bulk_file_redirects(count); }
void server::script_bulk_error_files(int count) { impl_->logic.script_bulk_error_files(count); }
void server::fail_token_requests(int status, std::string error, int count) {
    impl_->logic.fail_token_requests(status, std::move(error), count);
}

void server::echo_token_requests(int status, std::string error, int count) {
    impl_->logic.echo_token_requests(status, std::move(error), count);
}

void server::fail_revocations(int status, int count) { impl_->logic.fail_revocations(status, count); }
counters server::stats() const { return impl_->logic.stats(); }
void server::set_exchange_observer(exchange_observer observer) {
    auto shared = std::make_shared<const exchange_observer>(std::move(observer));
    std::lock_guard lock(impl_->observer_mu);
    impl_->observer = std::move(shared);
}
void server::reset_counters() { impl_->logic.reset_counters(); }
bool server::wait_until_no_connections(std::chrono::milliseconds timeout) {
    std::unique_lock lock(impl_->sessions_mu);
    return impl_->sessions_closed.wait_for(lock, timeout, [this] { return impl_->closers.empty(); });
}
std::vector<std::string> server::issued_tokens() const { return impl_->logic.issued_tokens(); }
std::string server::last_refresh_patient() const { return impl_->logic.last_refresh_patient(); }
server::refresh_token_state server::refresh_token_state_of(const std::string& token) const {
    return impl_->logic.refresh_token_state_of(token);
}

std::vector<std::string> server::patient_ids() const { return impl_->logic.patient_ids(); }
std::map<std::string, std::size_t> server::count_by_type() const { return impl_->logic.count_by_type(); }
std::size_t server::count_for(const std::string& patient_id, const std::string& type) const {
    return impl_->logic.count_for(patient_id, type);
}
std::vector<std::string> server::ids_of(const std::string& type, const std::string& patient_id) const {
    return impl_->logic.ids_of(type, patient_id);
}
void server::update_resource(const std::string& type, const std::string& id) {
    impl_->logic.update_resource(type, id);
}
void server::delete_resource(const std::string& type, const std::string& id) {
    impl_->logic.delete_resource(type, id);
}
std::string server::add_resource(const std::string& type, const std::string& patient_id) {
    return impl_->logic.add_resource(type, patient_id);
}

}  // namespace headachemd::sandbox
