// One browser enrollment driven from the `enroll` command: begin it, store
// its pending row, and catch the redirect (a listener here, `--listen`) or
// take it as pasted (`--paste`). The third way, the running daemon's
// callback_listen, needs only begin() here; sync::service completes it.
//
// What stays with the caller: showing the authorize URL, prompts, reading
// stdin, reporting the outcome and mapping it to an exit code. This class
// prints nothing and logs nothing itself (the listener logs a throwing
// handler to options.log).
//
// Contract
// - begin() stores the pending row only once everything that can refuse is
//   done: the authorize URL is worthless without a row, and a row whose URL
//   was never shown is harmless (it expires). In listen mode the listener is
//   bound before begin() returns, so the redirect can never come back to a
//   port nobody listens on.
// - Listen mode: a request to another path gets 404 and one that is not an
//   authorization redirect 400; both leave the wait going. A redirect is
//   completed (complete_enrollment), handed to options.on_outcome, and only
//   then answered with callback_page; it stops the listener. Every redirect
//   being completed reaches on_outcome, also one still in flight when the
//   wait ends, so the object and the on_outcome captures must outlive the
//   io_context's run().
// - Not thread-safe: run it on one io_context (its executor is `ex`).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/enroll.hpp"

namespace spdlog {
class logger;
}

namespace headachemd::sync {

// How the redirect comes back to us.
enum class redirect_mode {
    listen,  // a listener of this command, on `listen`
    paste,   // the person pastes the browser's final address
    daemon,  // the running daemon's [daemon] callback_listen
};

// `--listen` wins over `--paste`, which wins over the daemon's
// callback_listen; nullopt when none of them is given.
std::optional<redirect_mode> redirect_mode_of(std::string_view listen, bool paste, const config::config& cfg);

// How long listen mode waits: the pending row's life, and a little more
// for a redirect already on its way when the row expires (complete then
// says "expired" to the browser rather than the port saying nothing).
inline constexpr std::chrono::milliseconds listen_expiry = pending_lifetime + std::chrono::seconds(5);

struct browser_enrollment_options {
    std::string listen;  // "host:port": listen mode binds here in begin(); empty: no listener
    std::chrono::milliseconds expiry = listen_expiry;  // listen mode's wait (tests shorten it)
    std::shared_ptr<spdlog::logger> log;               // the listener logs a throwing handler here
    // Closes the HTTP client's pooled connections once no more requests
    // will be sent (the wait ended, a redirect was completed), so that they
    // do not keep the io_context running. Empty: nothing to close.
    std::function<void()> close_idle;
    // Listen mode: each completed redirect, before the browser is answered.
    std::function<void(const enrollment_outcome&)> on_outcome;
};

// How listen mode's wait ended.
enum class listen_end {
    completed,  // a redirect was completed (its outcome went to on_outcome)
    expired,    // none came within options.expiry; nothing was stored
};

class browser_enrollment {
public:
    // Keeps references to http, cfg, vault and clk: they must outlive it.
    browser_enrollment(boost::asio::any_io_executor ex, http::transport& http, const config::config& cfg,
                       store::vault& vault, const clock& clk, browser_enrollment_options opts);
    ~browser_enrollment();
    browser_enrollment(const browser_enrollment&) = delete;
    browser_enrollment& operator=(const browser_enrollment&) = delete;

    // begin_enrollment at clk.now(), then: pending rows expired by then
    // purged, the listener bound (listen mode), the pending row stored.
    // Returns the authorize URL to show. Fails with begin_enrollment's error
    // (no redirect_uri, discovery) or the listener's (address in use, not an
    // address); no pending row is stored then. Throws store_error.
    boost::asio::awaitable<result<std::string>> begin(const config::ehr_settings& ehr,
                                                      const config::patient_settings& patient);

    // Listen mode, after begin(): until a redirect is completed or
    // options.expiry has passed. Either way the listener is stopped and
    // close_idle called. Throws std::logic_error without a listener.
    boost::asio::awaitable<listen_end> wait_for_redirect();

    // Paste mode: completes the enrollment from the browser's final address
    // as pasted (whitespace and quotes around it allowed). Fails when the
    // text is not an authorization redirect; nothing is stored then.
    boost::asio::awaitable<result<enrollment_outcome>> complete_from_redirect(std::string_view pasted);

    // The listener's port (0 before begin() or outside listen mode).
    std::uint16_t port() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace headachemd::sync
