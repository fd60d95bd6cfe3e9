// The sd_notify(3) messages the daemon sends, captured through the sink:
// the exact fields systemd reads, and a watchdog that pings only when the
// service manager asked for one.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "headachemd/systemd/notify.hpp"

namespace {

namespace sd = headachemd::systemd;
using std::chrono::microseconds;

struct capture {
    std::vector<std::string> sent;
    sd::notifier make(std::optional<microseconds> watchdog = std::nullopt) {
        return sd::notifier([this](const std::string& m) { sent.push_back(m); }, watchdog);
    }
};

TEST(Notify, ReadyStatusAndStoppingCarryTheirStatusLine) {
    capture c;
    auto n = c.make();
    n.ready("running: 2 patients at 1 EHRs");
    n.status("pass 1: 0/2 patients, 0 failed");
    n.stopping("stopping: finishing the open page");
    ASSERT_EQ(c.sent.size(), 3u);
    EXPECT_EQ(c.sent[0], "READY=1\nSTATUS=running: 2 patients at 1 EHRs");
    EXPECT_EQ(c.sent[1], "STATUS=pass 1: 0/2 patients, 0 failed");
    EXPECT_EQ(c.sent[2], "STOPPING=1\nSTATUS=stopping: finishing the open page");
}

TEST(Notify, ReloadingCarriesAMonotonicTimestamp) {
    // systemd 253+ refuses RELOADING=1 without MONOTONIC_USEC
    // (systemd.service(5), Type=notify-reload).
    capture c;
    c.make().reloading("reloading the config");
    ASSERT_EQ(c.sent.size(), 1u);
    EXPECT_EQ(c.sent[0].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << c.sent[0];
    EXPECT_NE(c.sent[0].find("\nSTATUS=reloading the config"), std::string::npos);
}

TEST(Notify, WatchdogPingsAtHalfTheTimeoutAndOnlyWhenAsked) {
    capture c;
    auto none = c.make();
    EXPECT_FALSE(none.watchdog_interval());
    auto n = c.make(microseconds(20'000'000));
    EXPECT_EQ(n.watchdog_interval(), microseconds(10'000'000));

    boost::asio::io_context io;
    sd::watchdog_timer off(io.get_executor(), none);
    off.start();
    EXPECT_TRUE(c.sent.empty());  // no WatchdogSec=: no WATCHDOG=1 ever
    sd::watchdog_timer on(io.get_executor(), n);
    on.start();
    ASSERT_EQ(c.sent.size(), 1u);  // the first ping at once: systemd's clock started at fork
    EXPECT_EQ(c.sent[0], "WATCHDOG=1");
    on.stop();
    io.run();  // the cancelled timer must not ping again
    EXPECT_EQ(c.sent.size(), 1u);
}

}  // namespace
