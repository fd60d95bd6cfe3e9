#include "headachemd/sync/policy.hpp"

#include <algorithm>

namespace headachemd::sync {

using namespace std::chrono;

milliseconds backoff_delay(const backoff_policy& p, int attempt, std::uint64_t random) {
    const int shift = std::clamp(attempt, 0, 30);
    const long long ceiling = std::min<long long>(p.cap.count(), p.base.count() << shift);
    if (ceiling <= 0) return milliseconds(0);
    return milliseconds(static_cast<long long>(random % static_cast<std::uint64_t>(ceiling + 1)));
}

sys_time next_minute_boundary(sys_time now) {
    const auto minutes = duration_cast<std::chrono::minutes>(now.time_since_epoch());
    return sys_time(minutes + std::chrono::minutes(1));
}

rate_limiter::rate_limiter(int per_minute, bool fixed_window)
    : per_minute_(std::max(1, per_minute)), fixed_window_(fixed_window) {}

nanoseconds rate_limiter::acquire(sys_time now) {
    sys_time at = std::max(now, hold_until_);
    if (fixed_window_) {
        // Windows that have ended can hold no more calls.
        const std::int64_t current = duration_cast<minutes>(now.time_since_epoch()).count();
        used_.erase(used_.begin(), used_.lower_bound(current));
        for (;;) {
            const std::int64_t w = duration_cast<minutes>(at.time_since_epoch()).count();
            int& used = used_[w];
            if (used < per_minute_) {
                ++used;
                break;
            }
            // Budget spent: the first moment of the next minute. A little
            // past it, because the server's clock is not ours.
            at = next_minute_boundary(at) + milliseconds(250);
        }
        return duration_cast<nanoseconds>(at - now);
    }
    const double rate = per_minute_ / 60.0;  // tokens per second
    const double burst = std::max(1.0, per_minute_ / 10.0);
    if (!started_) {
        started_ = true;
        tokens_ = burst;
        last_refill_ = at;
    }
    if (at > last_refill_) {
        tokens_ = std::min(burst, tokens_ + duration<double>(at - last_refill_).count() * rate);
        last_refill_ = at;
    }
    tokens_ -= 1.0;
    if (tokens_ >= 0) return duration_cast<nanoseconds>(at - now);
    // In debt: the call may go once the debt is refilled.
    const auto wait = duration_cast<nanoseconds>(duration<double>(-tokens_ / rate));
    return duration_cast<nanoseconds>(at - now) + wait;
}

void rate_limiter::hold_until(sys_time until) { hold_until_ = std::max(hold_until_, until); }

sys_time next_run(sys_time last_run, seconds interval, std::uint64_t random) {
    const long long jitter_span = std::max<long long>(1, interval.count() / 10);
    return last_run + interval +
           seconds(static_cast<long long>(random % static_cast<std::uint64_t>(jitter_span)));
}

}  // namespace headachemd::sync
