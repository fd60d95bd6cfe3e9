// The request policy: after each attempt of one request, what happens next
// (use the answer, retry after a wait, refresh the access token, hold the
// EHR, or fail). Pure: no I/O, no Asio; time and randomness come in as
// arguments, so tests step through it with plain values. The engine's
// coroutines only send, feed the outcome back and wait as told.
//
// It holds, in one place, the rules that three hand-written retry loops
// used to repeat: backoff with full jitter (backoff_delay), the retry
// budget shared by a request's retries (retry_budget/retry_fits; waits a
// rate limit asked for are not counted), Retry-After (RFC 9110 §10.2.3)
// up to max_retry_after, eCW's minute boundary, and "a token refresh that
// may have reached the server is never sent again".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "headachemd/core/result.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

// Transport failures after which the request certainly never reached the
// server (name resolution, connect, a URL refused before sending), so even
// a refresh (single-use token!) may be sent again.
bool never_sent(const error& e);

// Transport failures worth another try for an idempotent GET. Not
// "tls_verify": a refused certificate (unknown CA, wrong host, expired) is
// refused again on every try until someone changes it (issue 12, 10a).
// Nor "body_too_large" or "bad_encoding" (a gzip bomb, corrupt gzip, a
// coding we did not ask for): the message was read whole, and the server
// would send the same bytes again.
bool transient(const error& e);

enum class request_kind {
    public_get,     // discovery and metadata: no bearer token
    fhir_get,       // a FHIR read with the patient's access token
    token_refresh,  // refresh_token grant: spends a single-use token
};

// What the policy needs to know of the EHR and the engine.
struct request_limits {
    backoff_policy backoff;  // engine_options::backoff (max_attempts per request)
    std::chrono::milliseconds http_timeout{30000};
    std::chrono::seconds max_retry_after{300};
    // eClinicalWorks answers 429 (and 503) with no Retry-After and counts
    // calls per wall-clock minute: wait for the next minute instead of
    // backing off (config preset field, DESIGN.md "EHR realities").
    bool bare_429_waits_for_minute = false;
};

enum class request_action {
    use,             // the answer is the caller's (a response to read)
    retry,           // send again after `wait` (zero included: still a stop point)
    resend_now,      // send again at once, no wait (a refresh raced by another refresher)
    refresh_access,  // 401: drop the access token, refresh it, send again (once per job)
    hold,            // Retry-After beyond max_retry_after: hold the EHR until `hold_until`
    fail,            // give up with `failure`
};

struct request_step {
    request_action action = request_action::use;
    std::chrono::nanoseconds wait{0};  // retry
    // retry after a 429/503: the wait was the server's to ask for, and the
    // EHR's rate limiter sends nothing before this time either.
    std::optional<sys_time> limiter_hold_until;
    // hold: the time the EHR asked for, and how long that was (for the log).
    sys_time hold_until{};
    std::chrono::seconds asked{0};
    std::optional<error> failure;  // fail
    // fail of a refresh: counted as a failed refresh in the EHR's counters
    // (not when stopping or when the request was never sent for a hold).
    bool refresh_failed = false;
};

class request_policy {
public:
    // `random` yields uniformly distributed values for the backoff's jitter;
    // it must outlive the policy. `refreshed_for_401`: this job already
    // refreshed after a 401 (docs/admin/operations.md: one refresh per job).
    request_policy(request_kind kind, const request_limits& limits,
                   const std::function<std::uint64_t()>& random, bool refreshed_for_401 = false);

    // The attempt ended with an HTTP answer. `retry_after`: the header's
    // value when present; `in_transport`: the time the attempt took (counted
    // against the retry budget).
    request_step on_response(int status, std::optional<std::string_view> retry_after, sys_time now,
                             std::chrono::nanoseconds in_transport = {});

    // The attempt ended without an answer (a transport error, or the
    // request was not sent: "stopped", "rate_limited").
    request_step on_error(const error& e, std::chrono::nanoseconds in_transport = {});

    // A refresh was refused with invalid_grant for a token that another
    // refresher rotated meanwhile: the stored token may be sent at once,
    // unless the attempts are used up; then the request fails with `give_up`.
    request_step on_token_rotated_meanwhile(error give_up);

    int attempt() const { return attempt_; }
    std::chrono::nanoseconds spent() const { return spent_; }

private:
    bool last() const;
    request_step backoff_or_fail(error e);
    request_step rate_limit_wait(std::optional<std::string_view> retry_after, sys_time now);
    request_step public_answer(int status, std::optional<std::string_view> retry_after, sys_time now);
    request_step fhir_answer(int status, std::optional<std::string_view> retry_after, sys_time now);
    error over_budget(error last) const;

    request_kind kind_;
    request_limits limits_;
    const std::function<std::uint64_t()>* random_;
    bool refreshed_for_401_;
    int attempt_ = 0;                    // attempts made before the current one
    std::chrono::nanoseconds spent_{0};  // transport time and backoff waits (the retry budget)
};

}  // namespace headachemd::sync
