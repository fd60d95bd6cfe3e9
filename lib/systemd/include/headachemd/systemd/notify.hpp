// The daemon's side of the systemd notify protocol (sd_notify(3)): READY=1
// once the first schedule is built, STATUS= progress lines, WATCHDOG=1 on a
// timer, STOPPING=1 and RELOADING=1 around SIGTERM and SIGHUP.
//
// Contract
// - Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
// - Messages go through a sink (default: sd_notify), so a test can capture
//   them; a failed send is ignored, as sd_notify(3) recommends: the daemon
//   must work the same with or without a service manager listening.
// - Not thread-safe; the daemon calls it from its one io_context thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace headachemd::systemd {

class notifier {
public:
    // Receives one datagram's text, e.g. "READY=1\nSTATUS=...".
    using sink = std::function<void(const std::string& message)>;

    // sd_notify(3) to $NOTIFY_SOCKET; the watchdog interval from
    // sd_watchdog_enabled(3) ($WATCHDOG_USEC, and $WATCHDOG_PID when set).
    static notifier from_environment();
    notifier(sink s, std::optional<std::chrono::microseconds> watchdog_timeout);

    void ready(std::string_view status);
    void status(std::string_view status);
    void watchdog();
    void stopping(std::string_view status);
    // RELOADING=1 carries MONOTONIC_USEC= (required from systemd 253 on,
    // ignored by 252): the reload is over at the next ready().
    void reloading(std::string_view status);

    // Half of the service manager's WatchdogSec=, as systemd.service(5)
    // advises; nullopt when no watchdog is configured.
    std::optional<std::chrono::microseconds> watchdog_interval() const;

private:
    sink sink_;
    std::optional<std::chrono::microseconds> watchdog_timeout_;
};

// Sends WATCHDOG=1 every watchdog_interval() from a timer on the daemon's
// io_context: while the scheduler's thread is stuck (a blocked call, a
// deadlock) no ping goes out and systemd restarts the service. Idle costs
// one timer wake-up per interval, no polling. Does nothing without a
// watchdog.
class watchdog_timer {
public:
    watchdog_timer(boost::asio::any_io_executor ex, notifier& n);
    void start();
    // Cancels the timer so the io_context can run out of work.
    void stop();

private:
    void arm();
    notifier& notifier_;
    boost::asio::steady_timer timer_;
    bool running_ = false;
};

}  // namespace headachemd::systemd
