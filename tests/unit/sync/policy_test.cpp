// Backoff, rate limits and run times, driven by explicit time values.
#include <gtest/gtest.h>

#include "headachemd/sync/policy.hpp"

namespace {

namespace sy = headachemd::sync;
using namespace std::chrono;
using namespace std::chrono_literals;

const sy::sys_time t0 = sy::sys_time{} + hours(24 * 365 * 56) + 10s;  // 10 s into a minute

TEST(Backoff, FullJitterStaysWithinTheExponentialCeilingAndTheCap) {
    const sy::backoff_policy p{500ms, 8000ms, 5};
    for (int attempt = 0; attempt < 10; ++attempt) {
        const auto ceiling = std::min(8000ms, 500ms * (1 << attempt));
        EXPECT_EQ(sy::backoff_delay(p, attempt, ~std::uint64_t{0} - 7),
                  sy::backoff_delay(p, attempt, ~std::uint64_t{0} - 7));
        for (std::uint64_t r : {0ull, 1ull, 12345ull, 987654321ull, ~0ull}) {
            const auto d = sy::backoff_delay(p, attempt, r);
            EXPECT_GE(d, 0ms);
            EXPECT_LE(d, ceiling);
        }
    }
    EXPECT_EQ(sy::backoff_delay(p, 3, 4000), 4000ms);  // r mod (4000 + 1)
}

TEST(NextMinute, IsTheNextBoundary) {
    EXPECT_EQ(sy::next_minute_boundary(t0) - t0, 50s);
    EXPECT_EQ(sy::next_minute_boundary(t0 + 50s) - t0, 110s);  // at a boundary: the next one
}

TEST(RateLimiter, FixedWindowAllowsTheBudgetThenWaitsForTheNextMinute) {
    sy::rate_limiter rl(250, true);
    for (int i = 0; i < 250; ++i) ASSERT_EQ(rl.acquire(t0), 0ns) << i;
    const auto wait = rl.acquire(t0);
    EXPECT_GE(wait, nanoseconds(50s));
    EXPECT_LE(wait, nanoseconds(51s));
    // The waiting call was counted in the next window.
    for (int i = 1; i < 250; ++i) ASSERT_EQ(rl.acquire(t0 + 51s), 0ns) << i;
    EXPECT_GT(rl.acquire(t0 + 51s), 0ns);
}

TEST(RateLimiter, AWaiterForTheNextWindowDoesNotReopenTheCurrentOne) {
    // Found by bench/sync: a caller sent to the next minute used to reset
    // the count, and the callers after it went out as calls 251, 252, …
    sy::rate_limiter rl(250, true);
    for (int i = 0; i < 250; ++i) ASSERT_EQ(rl.acquire(t0), 0ns);
    EXPECT_GT(rl.acquire(t0), nanoseconds(49s));  // waits for the next minute
    for (int i = 0; i < 10; ++i) EXPECT_GT(rl.acquire(t0 + 1s), nanoseconds(48s)) << i;
    // In the next minute: 250 in all, the 11 waiters included.
    int granted_now = 0;
    for (int i = 0; i < 300; ++i) granted_now += rl.acquire(t0 + 51s) == 0ns;
    EXPECT_EQ(granted_now, 250 - 11);
}

TEST(RateLimiter, TokenBucketSpreadsCallsAtTheRate) {
    sy::rate_limiter rl(600, false);  // 10 a second, burst 60
    for (int i = 0; i < 60; ++i) ASSERT_EQ(rl.acquire(t0), 0ns) << i;
    EXPECT_EQ(duration_cast<milliseconds>(rl.acquire(t0)), 100ms);
    EXPECT_EQ(duration_cast<milliseconds>(rl.acquire(t0)), 200ms);
    // After a quiet second the bucket has ten more.
    sy::rate_limiter fresh(600, false);
    for (int i = 0; i < 60; ++i) fresh.acquire(t0);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(fresh.acquire(t0 + 1s), 0ns) << i;
}

TEST(RateLimiter, HoldUntilDelaysEverything) {
    sy::rate_limiter rl(600, false);
    rl.hold_until(t0 + 5s);
    EXPECT_EQ(rl.acquire(t0), nanoseconds(5s));
}

TEST(NextRun, IntervalPlusAtMostTenPercent) {
    for (std::uint64_t r : {0ull, 7ull, 99999ull, ~0ull}) {
        const auto n = sy::next_run(t0, 6h, r);
        EXPECT_GE(n - t0, 6h);
        EXPECT_LT(n - t0, 6h + 36min);
    }
}

}  // namespace
