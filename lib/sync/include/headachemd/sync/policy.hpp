// Pure scheduling policies: backoff, rate limits, run times. No I/O; time
// comes in as arguments so that tests can drive a day in microseconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace headachemd::sync {

using sys_time = std::chrono::system_clock::time_point;

// Exponential backoff with full jitter (the delay is uniform in
// [0, min(cap, base * 2^attempt)]), so that many patients failing together
// do not retry together.
struct backoff_policy {
    std::chrono::milliseconds base{500};
    std::chrono::milliseconds cap{60000};
    int max_attempts = 5;  // attempts per request before the job fails
};

// `random` is any uniformly distributed 64-bit value.
std::chrono::milliseconds backoff_delay(const backoff_policy& p, int attempt, std::uint64_t random);

// The retries of one request share a time budget (issue 12, defect 7):
// max_attempts alone let a server that stalls every answer until the
// deadline hold a job for max_attempts × http_timeout (over 150 s at the
// default), plus the waits. The budget is 3 × http_timeout of time spent
// in the transport and in backoff after failures; waits a rate limit asked
// for (429/503 with Retry-After, eCW's minute boundary, our own limiter)
// are not counted, since they have caps of their own. A retry is made only
// when its wait and one more whole attempt still end within the budget, so
// a request that keeps stalling gets two attempts and ends within
// 3 × http_timeout; quick 5xx answers and resets still get all
// max_attempts (their backoff is far shorter).
std::chrono::milliseconds retry_budget(std::chrono::milliseconds http_timeout);

// Whether a retry after `wait` fits: `spent` is the time already counted
// against the budget, `attempt` the deadline of one whole attempt.
bool retry_fits(std::chrono::nanoseconds spent, std::chrono::nanoseconds wait,
                std::chrono::milliseconds attempt, std::chrono::milliseconds budget);

// eClinicalWorks answers 429 without Retry-After and counts calls per
// minute, so the wait is until the next minute boundary (DESIGN.md).
sys_time next_minute_boundary(sys_time now);

// Per-EHR request budget shared by all its patients; token and FHIR calls
// both count (eCW: 250 calls a minute per practice, /token included).
//
// fixed_window: at most `per_minute` calls in each wall-clock minute, the
// way eCW counts. Otherwise a token bucket refilling per_minute/60 a second
// with a burst of a tenth of a minute's budget.
class rate_limiter {
public:
    rate_limiter(int per_minute, bool fixed_window);

    // Takes one call from the budget. Returns how long the caller must wait
    // before making it (zero when it may go now). The call is counted in
    // the window or at the time it will be made.
    std::chrono::nanoseconds acquire(sys_time now);

    // After a 429: nothing more before `until`.
    void hold_until(sys_time until);

    int per_minute() const { return per_minute_; }
    bool fixed_window() const { return fixed_window_; }

private:
    int per_minute_;
    bool fixed_window_;
    // fixed window: calls granted per minute number. A call told to wait
    // for a later window is counted there, while calls that still fit the
    // current one go on being counted in it.
    std::map<std::int64_t, int> used_;
    // token bucket
    double tokens_ = 0;
    sys_time last_refill_{};
    bool started_ = false;
    sys_time hold_until_{};
};

// When the next regular run of a patient is due: interval plus up to 10%
// jitter, so that patients enrolled together spread out.
sys_time next_run(sys_time last_run, std::chrono::seconds interval, std::uint64_t random);

// When the run loop starts a patient's next job after one that failed (or
// ended without a result). A rate-limit hold (`retry_at`, the end of a
// Retry-After beyond max_retry_after) is honoured: the job starts then.
// Otherwise sooner than the regular run, so that a passing fault heals
// within minutes, but never in a tight loop, whatever the config says or
// however fast the job failed: min(interval, 15 min), at least 1 minute,
// plus next_run's jitter.
inline constexpr std::chrono::seconds failure_retry_ceiling{900};
inline constexpr std::chrono::seconds failure_retry_floor{60};
sys_time next_run_after_failure(sys_time now, std::chrono::seconds interval, std::optional<sys_time> retry_at,
                                std::uint64_t random);

// ----- Refresh-token lifetime and keep-alive (DESIGN.md, "Tokens")

// "YYYY-MM-DDThh:mm:ssZ" (store::utc_timestamp's form) as a time; nullopt
// for anything else, so a row written by an older version shows as unknown.
std::optional<sys_time> parse_utc_timestamp(std::string_view text);

// When a refresh token obtained at `obtained_at` lapses: obtained_at +
// lifetime (eCW: 90 days; a rotated token starts a new lifetime). nullopt
// when the lifetime is unknown (0) or the time does not parse.
std::optional<sys_time> refresh_token_lapse(std::string_view obtained_at, std::chrono::seconds lifetime);

// True when the token lapses within `window` of `now` (or has lapsed).
bool lapses_within(std::optional<sys_time> lapse, std::chrono::seconds window, sys_time now);

// The run loop's keep-alive decisions, one patient at a time. Pure apart
// from remembering which lapse it already warned about.
//
// After each job the loop asks when the patient runs next. Normally that is
// the regular run (interval plus jitter); when the refresh token would lapse
// within keepalive_before before then, the job comes earlier, at lapse −
// keepalive_before, and that job refreshes the token (the engine forces a
// refresh inside the window). A token that is still inside the window after
// its job (the EHR did not issue a new one, or the refresh failed) is
// reported: `warn` is true once per patient and lapse time, and the patient
// keeps its regular schedule (a failed job's retry is already sooner).
class keepalive_planner {
public:
    struct decision {
        sys_time due;            // when the patient's next job starts
        bool keepalive = false;  // earlier than the regular run, to renew the token
        bool lapsing = false;    // the token lapses within keepalive_before even now
        bool warn = false;       // lapsing, and not yet warned about this lapse
    };

    // `who` identifies the patient (e.g. ehr + '\n' + key). `lapse` is
    // nullopt when unknown, or when the patient cannot be refreshed anyway
    // (needs re-enrollment).
    decision next_job(const std::string& who, sys_time now, sys_time regular_next,
                      std::optional<sys_time> lapse, std::chrono::seconds keepalive_before);

private:
    std::map<std::string, sys_time> warned_;  // who → the lapse already warned about
};

}  // namespace headachemd::sync
