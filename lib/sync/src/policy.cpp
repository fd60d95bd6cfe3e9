#include "headachemd/sync/policy.hpp"

#include <algorithm>
#include <charconv>

namespace headachemd::sync {

using namespace std::chrono;

milliseconds backoff_delay(const backoff_policy& p, int attempt, std::uint64_t random) {
    const int shift = std::clamp(attempt, 0, 30);
    const long long ceiling = std::min<long long>(p.cap.count(), p.base.count() << shift);
    if (ceiling <= 0) return milliseconds(0);
    return milliseconds(static_cast<long long>(random % static_cast<std::uint64_t>(ceiling + 1)));
}

milliseconds retry_budget(milliseconds http_timeout) { return 3 * http_timeout; }

bool retry_fits(nanoseconds spent, nanoseconds wait, milliseconds attempt, milliseconds budget) {
    return spent + wait + attempt <= budget;
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

sys_time next_run_after_failure(sys_time now, seconds interval, std::optional<sys_time> retry_at,
                                std::uint64_t random) {
    if (retry_at && *retry_at > now) return *retry_at;
    const seconds wait = std::max(failure_retry_floor, std::min(interval, failure_retry_ceiling));
    return next_run(now, wait, random);
}

namespace {

// Digits at text[pos, pos + n) as a number, or -1.
int digits(std::string_view text, std::size_t pos, std::size_t n) {
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (text[i] < '0' || text[i] > '9') return -1;
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

}  // namespace

std::optional<sys_time> parse_utc_timestamp(std::string_view text) {
    // 0123456789012345678 9
    // YYYY-MM-DDThh:mm:ss Z
    if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
        text[16] != ':' || text[19] != 'Z')
        return std::nullopt;
    const int y = digits(text, 0, 4), mo = digits(text, 5, 2), d = digits(text, 8, 2);
    const int h = digits(text, 11, 2), mi = digits(text, 14, 2), s = digits(text, 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || h > 23 || mi > 59 || s > 60)
        return std::nullopt;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    return sys_time{sys_days{ymd}} + hours(h) + minutes(mi) + seconds(s);
}

std::optional<sys_time> refresh_token_lapse(std::string_view obtained_at, seconds lifetime) {
    if (lifetime <= seconds::zero()) return std::nullopt;
    const auto at = parse_utc_timestamp(obtained_at);
    if (!at) return std::nullopt;
    return *at + lifetime;
}

bool lapses_within(std::optional<sys_time> lapse, seconds window, sys_time now) {
    return lapse && *lapse - window <= now;
}

keepalive_planner::decision keepalive_planner::next_job(const std::string& who, sys_time now,
                                                        sys_time regular_next, std::optional<sys_time> lapse,
                                                        seconds keepalive_before) {
    decision d;
    d.due = regular_next;
    if (!lapse) {
        warned_.erase(who);
        return d;
    }
    const sys_time renew_at = *lapse - keepalive_before;
    if (renew_at > now) {
        // Outside the window: the regular run, unless it comes too late.
        if (renew_at < regular_next) {
            d.due = renew_at;
            d.keepalive = true;
        }
        warned_.erase(who);
        return d;
    }
    // Inside the window right after a job: that job should have renewed the
    // token. It did not, so say so (once for this lapse) and keep going.
    d.lapsing = true;
    auto it = warned_.find(who);
    d.warn = it == warned_.end() || it->second != *lapse;
    warned_[who] = *lapse;
    return d;
}

}  // namespace headachemd::sync
