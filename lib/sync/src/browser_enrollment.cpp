#include "headachemd/sync/browser_enrollment.hpp"

#include <stdexcept>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "headachemd/http/listener.hpp"
#include "headachemd/smart/enrollment.hpp"
#include "headachemd/store/pending.hpp"

namespace headachemd::sync {

namespace asio = boost::asio;
using asio::awaitable;

std::optional<redirect_mode> redirect_mode_of(std::string_view listen, bool paste,
                                              const config::config& cfg) {
    if (!listen.empty()) return redirect_mode::listen;
    if (paste) return redirect_mode::paste;
    if (cfg.daemon.callback_listen) return redirect_mode::daemon;
    return std::nullopt;
}

struct browser_enrollment::impl {
    asio::any_io_executor ex;
    http::transport& http;
    const config::config& cfg;
    store::vault& vault;
    const clock& clk;
    browser_enrollment_options opts;
    std::optional<http::listener> listener;
    std::optional<asio::steady_timer> expiry;
    bool completed = false;  // a redirect was completed: the wait is over

    void close_idle() const {
        if (opts.close_idle) opts.close_idle();
    }

    awaitable<http::outgoing_response> on_request(std::string callback_path, http::incoming_request req) {
        if (smart::path_of(req.target) != callback_path)
            co_return http::outgoing_response{404, "text/plain; charset=utf-8", "Not found\n"};
        auto cb = smart::parse_callback(req.target);
        if (!cb)
            co_return http::outgoing_response{400, "text/plain; charset=utf-8",
                                              "This is not an authorization redirect.\n"};
        auto outcome = co_await complete_enrollment(http, cfg, vault, *cb, clk.now());
        completed = true;
        if (opts.on_outcome) opts.on_outcome(outcome);
        // stop() lets this answer be written, then the context runs dry.
        listener->stop();
        if (expiry) expiry->cancel();
        close_idle();
        co_return http::outgoing_response{outcome.ok ? 200 : 400, "text/html; charset=utf-8",
                                          callback_page(outcome)};
    }

    result<std::uint16_t> bind(const std::string& redirect_uri) {
        listener.emplace(
            ex,
            [this, path = smart::path_of(redirect_uri)](http::incoming_request req) {
                return on_request(path, std::move(req));
            },
            http::listener_options{.log = opts.log});
        return listener->start(opts.listen);
    }
};

browser_enrollment::browser_enrollment(asio::any_io_executor ex, http::transport& http,
                                       const config::config& cfg, store::vault& vault, const clock& clk,
                                       browser_enrollment_options opts)
    : impl_(new impl{std::move(ex), http, cfg, vault, clk, std::move(opts), std::nullopt, std::nullopt}) {}

browser_enrollment::~browser_enrollment() = default;

awaitable<result<std::string>> browser_enrollment::begin(const config::ehr_settings& ehr,
                                                         const config::patient_settings& patient) {
    auto& s = *impl_;
    const auto now = s.clk.now();
    auto start = co_await begin_enrollment(s.http, ehr, patient, now);
    if (!start) co_return start.err();
    store::pending_enrollments pending(s.vault);
    pending.purge_expired(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
    // Bound before the URL is shown, so the redirect cannot come back to a
    // port nobody listens on.
    if (!s.opts.listen.empty())
        if (auto bound = s.bind(start->pending.redirect_uri); !bound) co_return bound.err();
    try {
        pending.put(start->pending);
    } catch (...) {
        // The vault refused the row (disk full, locked): without this the
        // bound listener kept the command waiting for a redirect that can
        // never complete.
        if (s.listener) s.listener->stop();
        s.close_idle();
        throw;
    }
    co_return std::move(start->authorize_url);
}

awaitable<listen_end> browser_enrollment::wait_for_redirect() {
    auto& s = *impl_;
    if (!s.listener) throw std::logic_error("browser_enrollment: wait_for_redirect without a listener");
    if (!s.completed) {
        s.expiry.emplace(s.ex, s.opts.expiry);
        co_await s.expiry->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // The timer may have fired just as a redirect completed; that redirect
    // stored the enrollment, so it is not an expiry.
    if (s.completed) co_return listen_end::completed;
    s.listener->stop();
    s.close_idle();
    co_return listen_end::expired;
}

awaitable<result<enrollment_outcome>> browser_enrollment::complete_from_redirect(std::string_view pasted) {
    auto& s = *impl_;
    auto cb = smart::parse_callback(pasted);
    if (!cb) co_return cb.err();
    auto outcome = co_await complete_enrollment(s.http, s.cfg, s.vault, *cb, s.clk.now());
    s.close_idle();
    co_return outcome;
}

std::uint16_t browser_enrollment::port() const { return impl_->listener ? impl_->listener->port() : 0; }

}  // namespace headachemd::sync
