#include "headachemd/systemd/notify.hpp"

#include <time.h>

#include <cstdint>
#include <utility>

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

namespace headachemd::systemd {

notifier notifier::from_environment() {
    std::optional<std::chrono::microseconds> timeout;
    std::uint64_t usec = 0;
    // > 0: WATCHDOG_USEC is set (and WATCHDOG_PID, when set, is our pid).
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) timeout = std::chrono::microseconds(usec);
    // unset_environment = 0: $NOTIFY_SOCKET stays set for every later message.
    auto send = [](const std::string& message) { (void)sd_notify(0, message.c_str()); };
    return notifier(send, timeout);
}

notifier::notifier(sink s, std::optional<std::chrono::microseconds> watchdog_timeout)
    : sink_(std::move(s)), watchdog_timeout_(watchdog_timeout) {}

void notifier::ready(std::string_view status) { sink_(fmt::format("READY=1\nSTATUS={}", status)); }

void notifier::status(std::string_view status) { sink_(fmt::format("STATUS={}", status)); }

void notifier::watchdog() { sink_("WATCHDOG=1"); }

void notifier::stopping(std::string_view status) { sink_(fmt::format("STOPPING=1\nSTATUS={}", status)); }

void notifier::reloading(std::string_view status) {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec =
        static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    sink_(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}", usec, status));
}

std::optional<std::chrono::microseconds> notifier::watchdog_interval() const {
    if (!watchdog_timeout_) return std::nullopt;
    return std::max(std::chrono::microseconds(1), *watchdog_timeout_ / 2);
}

watchdog_timer::watchdog_timer(boost::asio::any_io_executor ex, notifier& n)
    : notifier_(n), timer_(std::move(ex)) {}

void watchdog_timer::start() {
    if (running_ || !notifier_.watchdog_interval()) return;
    running_ = true;
    // A first ping at once: the service manager's clock started at fork.
    notifier_.watchdog();
    arm();
}

void watchdog_timer::stop() {
    running_ = false;
    timer_.cancel();
}

void watchdog_timer::arm() {
    timer_.expires_after(*notifier_.watchdog_interval());
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || !running_) return;
        notifier_.watchdog();
        arm();
    });
}

}  // namespace headachemd::systemd
