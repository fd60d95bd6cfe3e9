#include "headachemd/sync/request_policy.hpp"

#include <string>
#include <utility>

#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"

namespace headachemd::sync {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

bool never_sent(const error& e) {
    return e.code == errc::resolve || e.code == errc::connect || e.code == errc::insecure_scheme ||
           e.code == errc::invalid_url;
}

bool transient(const error& e) {
    return never_sent(e) || e.code == errc::timeout || e.code == errc::reset || e.code == errc::truncated ||
           e.code == errc::tls;
}

namespace {

request_step fail_with(error e, bool refresh_failed = false) {
    request_step s;
    s.action = request_action::fail;
    s.failure = std::move(e);
    s.refresh_failed = refresh_failed;
    return s;
}

request_step retry_after(nanoseconds wait) {
    request_step s;
    s.action = request_action::retry;
    s.wait = wait;
    return s;
}

request_step of(request_action a) {
    request_step s;
    s.action = a;
    return s;
}

error http_error(int status, std::string message) {
    return error{error_code::http(status), std::move(message)};
}

}  // namespace

request_policy::request_policy(request_kind kind, const request_limits& limits,
                               const std::function<std::uint64_t()>& random, bool refreshed_for_401)
    : kind_(kind), limits_(limits), random_(&random), refreshed_for_401_(refreshed_for_401) {}

bool request_policy::last() const { return attempt_ + 1 >= limits_.backoff.max_attempts; }

error request_policy::over_budget(error last) const {
    last.message += "; not retried: another try would pass the retry budget of " +
                    std::to_string(retry_budget(limits_.http_timeout).count()) + " ms (3 x http_timeout)";
    return last;
}

// A GET that failed in a way worth another try: backoff, counted against
// the retry budget (issue 12, defect 7). `e` is the failure when no retry
// fits.
request_step request_policy::backoff_or_fail(error e) {
    const nanoseconds d = backoff_delay(limits_.backoff, attempt_++, (*random_)());
    if (!retry_fits(spent_, d, limits_.http_timeout, retry_budget(limits_.http_timeout)))
        return fail_with(over_budget(std::move(e)));
    spent_ += d;
    return retry_after(d);
}

// The wait a 429 or 503 asks for: Retry-After when given, else (eCW sends
// none) the next minute boundary for a per-minute budget, else backoff. Not
// counted against the retry budget: it is the server's to ask for, capped
// by max_retry_after. A longer Retry-After (RFC 9110 §10.2.3 sets no upper
// bound, and an HTTP-date can name any time) holds the EHR until then, and
// its jobs end as rate-limited instead of sleeping.
request_step request_policy::rate_limit_wait(std::optional<std::string_view> retry_after_value,
                                             sys_time now) {
    std::optional<nanoseconds> d;
    if (retry_after_value) {
        if (auto s = http::parse_retry_after(*retry_after_value, now)) {
            if (*s > limits_.max_retry_after) {
                request_step hold = of(request_action::hold);
                hold.hold_until = now + *s;
                hold.asked = *s;
                return hold;
            }
            d = *s;
        }
    }
    if (!d && limits_.bare_429_waits_for_minute)
        d = next_minute_boundary(now) - now +
            milliseconds(250);  // a little past it: the server's clock is not ours
    if (!d) d = backoff_delay(limits_.backoff, attempt_, (*random_)());
    ++attempt_;
    request_step s = retry_after(*d);
    s.limiter_hold_until = now + duration_cast<seconds>(*d);
    return s;
}

// Discovery and metadata: a 429/503 is waited out and a 5xx backed off
// while attempts remain; any other answer, or the last one, is the
// caller's to judge (a 5xx that does not fit the budget too).
request_step request_policy::public_answer(int status, std::optional<std::string_view> retry_after_value,
                                           sys_time now) {
    const auto act = fhir::classify_status(status);
    if (last() || (act != fhir::action::wait_and_retry && act != fhir::action::retry))
        return of(request_action::use);
    if (act == fhir::action::wait_and_retry) return rate_limit_wait(retry_after_value, now);
    const nanoseconds d = backoff_delay(limits_.backoff, attempt_, (*random_)());
    if (!retry_fits(spent_, d, limits_.http_timeout, retry_budget(limits_.http_timeout)))
        return of(request_action::use);
    ++attempt_;
    spent_ += d;
    return retry_after(d);
}

// A FHIR read: 2xx, 403 and 404 are the caller's; a 401 refreshes the
// access token once per job (each refresh spends a single-use token, and a
// token refused right after it was issued will not do better); 429/503
// waits, 5xx backs off, anything else fails the job.
request_step request_policy::fhir_answer(int status, std::optional<std::string_view> retry_after_value,
                                         sys_time now) {
    const std::string code = std::to_string(status);
    switch (fhir::classify_status(status)) {
        case fhir::action::use:
        case fhir::action::not_permitted:
        case fhir::action::not_found:
            return of(request_action::use);
        case fhir::action::refresh_token:
            if (refreshed_for_401_)
                return fail_with(
                    error{errc::unauthorized, "the EHR answered 401 again after a token refresh"});
            refreshed_for_401_ = true;
            return of(request_action::refresh_access);
        case fhir::action::wait_and_retry:
            if (last()) return fail_with(http_error(status, "rate limited too often"));
            return rate_limit_wait(retry_after_value, now);
        case fhir::action::retry: {
            error kept_failing = http_error(status, "the EHR kept failing (HTTP " + code + ")");
            if (last()) return fail_with(std::move(kept_failing));
            return backoff_or_fail(std::move(kept_failing));
        }
        case fhir::action::fail:
            break;
    }
    return fail_with(http_error(status, "the EHR answered HTTP " + code));
}

request_step request_policy::on_response(int status, std::optional<std::string_view> retry_after_value,
                                         sys_time now, nanoseconds in_transport) {
    spent_ += in_transport;
    switch (kind_) {
        case request_kind::public_get:
            return public_answer(status, retry_after_value, now);
        case request_kind::fhir_get:
            return fhir_answer(status, retry_after_value, now);
        case request_kind::token_refresh:
            // The token endpoint's 429/503 is waited out like any other
            // (eCW counts /token in its per-minute budget); every other
            // answer is the token response's to judge.
            if (fhir::classify_status(status) == fhir::action::wait_and_retry && !last())
                return rate_limit_wait(retry_after_value, now);
            return of(request_action::use);
    }
    return of(request_action::use);
}

request_step request_policy::on_error(const error& e, nanoseconds in_transport) {
    spent_ += in_transport;
    if (kind_ != request_kind::token_refresh) {
        if (!transient(e) || last()) return fail_with(e);
        return backoff_or_fail(e);
    }
    // A refresh request that may have reached the server is not sent
    // again: with a single-use token the replay would be refused and, at
    // strict servers, revoke the whole grant (issue 18 item 1). Only a
    // failure that proves the request never left is retried.
    if (never_sent(e) && !last())
        return retry_after(backoff_delay(limits_.backoff, attempt_++, (*random_)()));
    if (e.code == errc::rate_limited) return fail_with(e);  // held, not sent: no failed refresh
    return fail_with(error{e.code, "token refresh failed: " + e.message}, e.code != errc::stopped);
}

request_step request_policy::on_token_rotated_meanwhile(error give_up) {
    if (last()) return fail_with(std::move(give_up));
    ++attempt_;
    return of(request_action::resend_now);
}

}  // namespace headachemd::sync
