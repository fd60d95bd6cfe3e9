#include "sandbox_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>

#include <cctype>
#include <cstdio>
#include <optional>
#include <thread>

namespace headachemd::sandbox::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string reply::header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
}

boost::json::value reply::json() const { return boost::json::parse(body); }

struct client::impl {
    impl(std::uint16_t p, std::string ca) : port(p), ca_pem(std::move(ca)), ctx(ssl::context::tls_client) {
        if (!ca_pem.empty()) {
            ctx.add_certificate_authority(asio::buffer(ca_pem));
            ctx.set_verify_mode(ssl::verify_peer);
        }
    }

    void drop() {
        tls.reset();
        plain.reset();
        buffer.clear();
    }

    template <class Stream>
    asio::awaitable<reply> exchange(Stream& stream, http::request<http::string_body>& req) {
        reply r;
        auto& lowest = beast::get_lowest_layer(stream);
        lowest.expires_after(10s);
        auto [wec, w] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
        if (wec) {
            r.error = "write: " + wec.message();
            co_return r;
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        lowest.expires_after(read_deadline);
        auto [rec, n] =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
        if (rec) {
            r.error = "read: " + rec.message();
            if (rec == http::error::partial_message) r.error = "partial_message";
            if (rec == asio::error::connection_reset) r.error = "connection_reset";
            if (parser.is_header_done()) r.status = static_cast<int>(parser.get().result_int());
            co_return r;
        }
        auto& res = parser.get();
        r.status = static_cast<int>(res.result_int());
        for (const auto& f : res) {
            std::string name(f.name_string());
            for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            r.headers[name] = std::string(f.value());
        }
        r.body = std::move(res.body());
        if (!res.keep_alive()) r.headers["x-test-closed"] = "1";
        co_return r;
    }

    asio::awaitable<reply> run(http::request<http::string_body> req) {
        reply r;
        if (!tls && !plain) {
            beast::tcp_stream stream(ioc);
            stream.expires_after(10s);
            auto [cec] =
                co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                              asio::as_tuple(asio::use_awaitable));
            if (cec) {
                r.error = "connect: " + cec.message();
                co_return r;
            }
            if (ca_pem.empty()) {
                plain.emplace(std::move(stream));
            } else {
                tls.emplace(std::move(stream), ctx);
                // Check the name the way a careful client does (STYLE: SNI
                // plus host_name_verification).
                tls->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
                beast::get_lowest_layer(*tls).expires_after(10s);
                auto [hec] = co_await tls->async_handshake(ssl::stream_base::client,
                                                           asio::as_tuple(asio::use_awaitable));
                if (hec) {
                    r.error = "handshake: " + hec.message();
                    drop();
                    co_return r;
                }
            }
        }
        if (tls)
            r = co_await exchange(*tls, req);
        else
            r = co_await exchange(*plain, req);
        if (!r.ok() || r.headers.count("x-test-closed")) drop();
        co_return r;
    }

    std::uint16_t port;
    std::string ca_pem;
    asio::io_context ioc;
    ssl::context ctx;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
    std::optional<beast::tcp_stream> plain;
    beast::flat_buffer buffer;
    std::chrono::milliseconds read_deadline{10s};
};

client::client(std::uint16_t port, std::string ca_pem)
    : impl_(std::make_unique<impl>(port, std::move(ca_pem))) {}
client::~client() = default;

void client::set_read_deadline(std::chrono::milliseconds d) { impl_->read_deadline = d; }

reply client::request(const std::string& method, const std::string& target,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const std::string& body) {
    std::string path = target;
    if (path.rfind("http", 0) == 0) {
        // An absolute URL must be on this sandbox (tests check the origin
        // themselves before they follow a link elsewhere).
        const std::string origin = (impl_->ca_pem.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") +
                                   std::to_string(impl_->port);
        if (path.rfind(origin, 0) != 0) {
            reply r;
            r.error = "refused: other origin";
            return r;
        }
        path = path.substr(origin.size());
        if (path.empty()) path = "/";
    }
    http::request<http::string_body> req{http::string_to_verb(method), path, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(impl_->port));
    req.set(http::field::accept, "application/fhir+json");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST") {
        req.body() = body;
        req.prepare_payload();
    }
    reply out;
    bool done = false;
    auto on_done = [&](std::exception_ptr e, reply r) {
        done = true;
        if (e) {
            out.error = "exception";
            return;
        }
        out = std::move(r);
    };
    impl_->ioc.restart();
    asio::co_spawn(impl_->ioc, impl_->run(std::move(req)), std::move(on_done));
    impl_->ioc.run();
    if (!done) out.error = "did not complete";
    return out;
}

reply client::get(const std::string& target, const std::string& bearer) {
    std::vector<std::pair<std::string, std::string>> h;
    if (!bearer.empty()) h.emplace_back("Authorization", "Bearer " + bearer);
    return request("GET", target, h, {});
}

reply client::post_form(const std::string& target, const std::string& body,
                        std::vector<std::pair<std::string, std::string>> headers) {
    headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    return request("POST", target, headers, body);
}

struct running_sandbox::runner {
    runner(options o) : srv(ioc, std::move(o)) {}
    asio::io_context ioc;
    server srv;
    std::thread thread;
};

running_sandbox::running_sandbox(options opts) : clock_(std::make_shared<test_clock>()) {
    std::shared_ptr<test_clock> clk = clock_;
    opts.now = [clk] { return clk->now(); };
    // A failed handshake is expected in one test; anything else here is a
    // bug worth seeing in the test output.
    if (!opts.log)
        opts.log = [](std::string_view line) {
            std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
        };
    runner_ = std::make_unique<runner>(std::move(opts));
    server_ = &runner_->srv;
    server_->start();
    runner_->thread = std::thread([r = runner_.get()] { r->ioc.run(); });
}

running_sandbox::~running_sandbox() {
    server_->stop();
    runner_->thread.join();
}

std::unique_ptr<client> running_sandbox::make_client() {
    return std::make_unique<client>(server_->port(), server_->ca_certificate_pem());
}

std::string form_encode(const std::string& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(c);
        } else if (c == ' ') {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(hex[static_cast<unsigned char>(c) >> 4]);
            out.push_back(hex[static_cast<unsigned char>(c) & 15]);
        }
    }
    return out;
}

std::string form(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [k, v] : fields) out += (out.empty() ? "" : "&") + form_encode(k) + "=" + form_encode(v);
    return out;
}

std::string basic_auth(const std::string& id, const std::string& secret) {
    // RFC 6749 §2.3.1: form-encode each part before base64.
    const std::string raw = form_encode(id) + ":" + form_encode(secret);
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < raw.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(raw[i]) << 16 |
                           static_cast<unsigned char>(raw[i + 1]) << 8 |
                           static_cast<unsigned char>(raw[i + 2]);
        for (int s = 18; s >= 0; s -= 6) out.push_back(alphabet[v >> s & 63]);
    }
    if (raw.size() - i == 1) {
        const unsigned v = static_cast<unsigned char>(raw[i]) << 16;
        out += std::string{alphabet[v >> 18 & 63], alphabet[v >> 12 & 63], '=', '='};
    } else if (raw.size() - i == 2) {
        const unsigned v = static_cast<unsigned char>(raw[i]) << 16 | static_cast<unsigned char>(raw[i + 1])
                                                                          << 8;
        out += std::string{alphabet[v >> 18 & 63], alphabet[v >> 12 & 63], alphabet[v >> 6 & 63], '='};
    }
    return "Basic " + out;
}

std::string query_param(const std::string& url, const std::string& name) {
    const auto q = url.find('?');
    if (q == std::string::npos) return {};
    std::string_view rest = std::string_view(url).substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const auto eq = part.find('=');
        if (part.substr(0, eq) != name) continue;
        std::string out;
        const std::string_view v = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '+')
                out.push_back(' ');
            else if (v[i] == '%' && i + 2 < v.size()) {
                out.push_back(static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16)));
                i += 2;
            } else
                out.push_back(v[i]);
        }
        return out;
    }
    return {};
}

reply refresh(client& c, const options& o, const std::string& refresh_token) {
    return c.post_form("/token", form({{"grant_type", "refresh_token"},
                                       {"refresh_token", refresh_token},
                                       {"client_id", o.client_id},
                                       {"client_secret", o.client_secret}}));
}

std::string access_token_for(running_sandbox& s, client& c, const std::string& patient_id,
                             const std::string& scope) {
    const std::string rt = s.srv().issue_refresh_token(patient_id, scope);
    const reply r = refresh(c, s.srv().config(), rt);
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    if (r.status != 200) return {};
    return std::string(r.json().at("access_token").as_string());
}

std::string next_link(const reply& r) {
    const boost::json::value bundle = r.json();  // the links below point into it
    for (const auto& l : bundle.at("link").as_array())
        if (l.at("relation").as_string() == "next") return std::string(l.at("url").as_string());
    return {};
}

walk_result walk(client& c, const std::string& first, const std::string& bearer) {
    walk_result out;
    std::string url = first;
    while (!url.empty()) {
        const reply r = c.get(url, bearer);
        if (r.status != 200 || !r.ok()) {
            ADD_FAILURE() << "page " << out.pages + 1 << " of " << first << ": " << r.status << " " << r.error
                          << " (" << r.body.size()
                          << " bytes: " << r.body.substr(r.body.size() > 300 ? r.body.size() - 300 : 0)
                          << ")";
            break;
        }
        ++out.pages;
        out.bodies.push_back(r.body);
        const auto bundle = r.json().as_object();
        if (out.pages == 1) out.total = static_cast<std::size_t>(bundle.at("total").as_int64());
        if (const auto* entries = bundle.if_contains("entry")) {
            for (const auto& e : entries->as_array())
                out.ids.emplace_back(e.at("resource").at("id").as_string());
        }
        url.clear();
        for (const auto& l : bundle.at("link").as_array())
            if (l.at("relation").as_string() == "next") url = std::string(l.at("url").as_string());
        if (out.pages > 10000) {
            ADD_FAILURE() << "paging does not end";
            break;
        }
    }
    return out;
}

}  // namespace headachemd::sandbox::test
