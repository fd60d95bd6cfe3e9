// The request policy (issue 14 item 2), stepped attempt by attempt with
// plain values: no io_context, no network, time as arguments.
#include <gtest/gtest.h>

#include "headachemd/sync/request_policy.hpp"

namespace {

namespace sy = headachemd::sync;
using headachemd::error;
using namespace std::chrono;
using namespace std::chrono_literals;
using sy::request_action;
using sy::request_kind;

// On a minute boundary, like headachemd::manual_clock's start.
const sy::sys_time t0 = sy::sys_time{} + hours(24 * 365 * 56);

struct RequestPolicy : ::testing::Test {
    // Setup shared by every test: the engine's defaults (500 ms base,
    // 60 s cap, 5 attempts), a 30 s http_timeout (budget 90 s), and a
    // fixed "random" value so each backoff is known.
    sy::request_limits limits{sy::backoff_policy{500ms, 60000ms, 5}, 30000ms, 300s, false};
    std::function<std::uint64_t()> random = [] { return std::uint64_t{1000}; };

    sy::request_policy policy(request_kind kind, bool refreshed_for_401 = false) const {
        return sy::request_policy(kind, limits, random, refreshed_for_401);
    }
    milliseconds backoff(int attempt) const { return sy::backoff_delay(limits.backoff, attempt, 1000); }
};

TEST_F(RequestPolicy, AServerErrorIsRetriedAfterTheBackoffThenTheAnswerIsUsed) {
    for (auto kind : {request_kind::fhir_get, request_kind::public_get}) {
        // Setup
        auto p = policy(kind);

        // Run
        const auto first = p.on_response(500, std::nullopt, t0, 20ms);
        const auto second = p.on_response(502, std::nullopt, t0, 20ms);
        const auto third = p.on_response(200, std::nullopt, t0, 20ms);

        // Check: two backoff waits growing with the attempt, counted against
        // the budget with the transport time; then the answer is used.
        ASSERT_EQ(first.action, request_action::retry);
        EXPECT_EQ(first.wait, backoff(0));
        EXPECT_GT(first.wait, 0ns);
        EXPECT_FALSE(first.limiter_hold_until);  // not a rate limit
        ASSERT_EQ(second.action, request_action::retry);
        EXPECT_EQ(second.wait, backoff(1));
        EXPECT_EQ(third.action, request_action::use);
        EXPECT_EQ(p.spent(), 60ms + backoff(0) + backoff(1));
    }
}

// Issue 18 item 1: a refresh that may have reached the server spent the
// single-use token there; sending it again is refused and may revoke the
// grant. Only a failure before anything left is retried.
TEST_F(RequestPolicy, ARefreshFailedAfterSendingIsNeverSentAgain) {
    for (const auto code : {headachemd::errc::reset, headachemd::errc::timeout, headachemd::errc::truncated,
                            headachemd::errc::tls}) {
        // Setup
        auto p = policy(request_kind::token_refresh);

        // Run
        const auto step = p.on_error(error{code, "cut off"});

        // Check
        ASSERT_EQ(step.action, request_action::fail) << to_string(code);
        ASSERT_TRUE(step.failure);
        EXPECT_TRUE(step.failure->code == code);
        EXPECT_EQ(step.failure->message, "token refresh failed: cut off");
        EXPECT_TRUE(step.refresh_failed) << to_string(code);
    }
}

TEST_F(RequestPolicy, ARefreshThatNeverLeftIsRetriedAfterTheBackoff) {
    for (const auto code : {headachemd::errc::connect, headachemd::errc::resolve}) {
        // Setup
        auto p = policy(request_kind::token_refresh);

        // Run
        const auto first = p.on_error(error{code, "no route"});
        const auto second = p.on_response(200, std::nullopt, t0);

        // Check
        ASSERT_EQ(first.action, request_action::retry) << to_string(code);
        EXPECT_EQ(first.wait, backoff(0));
        EXPECT_EQ(second.action, request_action::use);
    }
}

TEST_F(RequestPolicy, AResetGetIsRetriedButARefusedCertificateIsNot) {
    // Setup: the same failure that ends a refresh is retried for a GET.
    auto get = policy(request_kind::fhir_get);
    auto other = policy(request_kind::fhir_get);

    // Run
    const auto reset = get.on_error(error{headachemd::errc::reset, "reset by peer"}, 5ms);
    const auto refused = other.on_error(error{headachemd::errc::tls_verify, "unknown CA"});

    // Check
    ASSERT_EQ(reset.action, request_action::retry);
    EXPECT_EQ(reset.wait, backoff(0));
    ASSERT_EQ(refused.action, request_action::fail);
    EXPECT_EQ(to_string(refused.failure->code), "tls_verify");
    EXPECT_EQ(refused.failure->message, "unknown CA");  // as the transport said it
}

TEST_F(RequestPolicy, AGzipBombOrABadContentCodingIsNotRetried) {
    // Issue 15: the whole message was read; the server would send the same
    // bytes again, so another try only spends the EHR's call budget.
    for (const auto code : {headachemd::errc::body_too_large, headachemd::errc::bad_encoding}) {
        // Setup
        auto get = policy(request_kind::fhir_get);
        // Run
        const auto step = get.on_error(error{code, "gzip data: …"}, 5ms);
        // Check
        ASSERT_EQ(step.action, request_action::fail) << to_string(code);
        EXPECT_EQ(step.failure->code, code);
    }
}

TEST_F(RequestPolicy, RetryAfterSecondsIsWaitedAndNotCountedInTheBudget) {
    for (auto kind : {request_kind::fhir_get, request_kind::public_get, request_kind::token_refresh}) {
        // Setup: a 1 s http_timeout makes a 3 s budget; the server asks for 7 s.
        limits.http_timeout = 1000ms;
        auto p = policy(kind);

        // Run
        const auto first = p.on_response(429, "7", t0, 100ms);
        const auto second = p.on_response(503, "7", t0, 100ms);

        // Check: both waited in full although 14 s is far over the budget;
        // the rate limiter is held as long; only transport time is counted.
        ASSERT_EQ(first.action, request_action::retry);
        EXPECT_EQ(first.wait, 7s);
        EXPECT_EQ(first.limiter_hold_until, t0 + 7s);
        ASSERT_EQ(second.action, request_action::retry);
        EXPECT_EQ(second.wait, 7s);
        EXPECT_EQ(p.spent(), 200ms);
    }
}

TEST_F(RequestPolicy, RetryAfterBeyondMaxRetryAfterHoldsTheEhrInsteadOfWaiting) {
    // Setup
    auto p = policy(request_kind::fhir_get);

    // Run
    const auto step = p.on_response(429, "301", t0);

    // Check
    ASSERT_EQ(step.action, request_action::hold);
    EXPECT_EQ(step.hold_until, t0 + 301s);
    EXPECT_EQ(step.asked, 301s);
}

// eClinicalWorks answers 429 with no Retry-After and counts calls per
// wall-clock minute: the wait is until the next minute boundary plus
// 250 ms for the server's clock.
TEST_F(RequestPolicy, AnEcwBare429WaitsForTheNextMinuteBoundary) {
    // Setup: 100 ms before a minute boundary.
    limits.bare_429_waits_for_minute = true;
    auto ecw = policy(request_kind::fhir_get);
    limits.bare_429_waits_for_minute = false;
    auto generic = policy(request_kind::fhir_get);
    const auto now = t0 + 59'900ms;

    // Run
    const auto at_ecw = ecw.on_response(429, std::nullopt, now);
    const auto at_generic = generic.on_response(429, std::nullopt, now);

    // Check: eCW waits 350 ms, a generic EHR backs off.
    ASSERT_EQ(at_ecw.action, request_action::retry);
    EXPECT_EQ(at_ecw.wait, 350ms);
    ASSERT_EQ(at_generic.action, request_action::retry);
    EXPECT_EQ(at_generic.wait, backoff(0));
}

// Issue 12, defect 7: a server that stalls every answer until the deadline
// gets two attempts, so the request ends within 3 x http_timeout.
TEST_F(RequestPolicy, StallingAnswersGetTwoAttemptsWithinTheRetryBudget) {
    for (bool transport_timeout : {true, false}) {
        // Setup
        auto p = policy(request_kind::fhir_get);
        const auto attempt = [&] {
            return transport_timeout
                       ? p.on_error(error{headachemd::errc::timeout, "no answer within 30 s"}, 30s)
                       : p.on_response(500, std::nullopt, t0, 30s);
        };

        // Run
        const auto first = attempt();
        const auto second = attempt();

        // Check
        ASSERT_EQ(first.action, request_action::retry);
        ASSERT_EQ(second.action, request_action::fail);
        const std::string why =
            "; not retried: another try would pass the retry budget of 90000 ms (3 x http_timeout)";
        if (transport_timeout) {
            EXPECT_EQ(to_string(second.failure->code), "timeout");
            EXPECT_EQ(second.failure->message, "no answer within 30 s" + why);
        } else {
            EXPECT_EQ(to_string(second.failure->code), "http_500");
            EXPECT_EQ(second.failure->message, "the EHR kept failing (HTTP 500)" + why);
        }
    }
}

TEST_F(RequestPolicy, APublicGetOverTheBudgetGivesTheAnswerBack) {
    // Setup
    auto p = policy(request_kind::public_get);

    // Run
    const auto first = p.on_response(500, std::nullopt, t0, 30s);
    const auto second = p.on_response(500, std::nullopt, t0, 30s);

    // Check: discovery judges the 500 itself.
    EXPECT_EQ(first.action, request_action::retry);
    EXPECT_EQ(second.action, request_action::use);
}

TEST_F(RequestPolicy, MaxAttemptsBoundsEveryKindOfRetry) {
    // Setup: three attempts.
    limits.backoff.max_attempts = 3;
    auto server = policy(request_kind::fhir_get);
    auto limited = policy(request_kind::fhir_get);
    auto reset = policy(request_kind::fhir_get);
    auto discovery = policy(request_kind::public_get);
    auto token = policy(request_kind::token_refresh);

    // Run / Check: two retries, then the third answer ends the request.
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(server.on_response(500, std::nullopt, t0).action, request_action::retry);
        EXPECT_EQ(limited.on_response(429, "1", t0).action, request_action::retry);
        EXPECT_EQ(reset.on_error(error{headachemd::errc::reset, "reset"}).action, request_action::retry);
        EXPECT_EQ(discovery.on_response(503, std::nullopt, t0).action, request_action::retry);
        EXPECT_EQ(token.on_error(error{headachemd::errc::connect, "refused"}).action, request_action::retry);
    }
    const auto s = server.on_response(500, std::nullopt, t0);
    ASSERT_EQ(s.action, request_action::fail);
    EXPECT_EQ(to_string(s.failure->code), "http_500");
    EXPECT_EQ(s.failure->message, "the EHR kept failing (HTTP 500)");
    const auto l = limited.on_response(429, "1", t0);
    ASSERT_EQ(l.action, request_action::fail);
    EXPECT_EQ(to_string(l.failure->code), "http_429");
    EXPECT_EQ(l.failure->message, "rate limited too often");
    const auto r = reset.on_error(error{headachemd::errc::reset, "reset"});
    ASSERT_EQ(r.action, request_action::fail);
    EXPECT_EQ(r.failure->message, "reset");
    EXPECT_EQ(discovery.on_response(503, std::nullopt, t0).action, request_action::use);
    const auto t = token.on_error(error{headachemd::errc::connect, "refused"});
    ASSERT_EQ(t.action, request_action::fail);
    EXPECT_EQ(t.failure->message, "token refresh failed: refused");
    EXPECT_EQ(token.attempt(), 2);
}

// docs/admin/operations.md: a 401 gets one refresh per job; a second 401
// in the same job fails it. The refresh does not use up an attempt.
TEST_F(RequestPolicy, A401RefreshesOncePerJobWithoutUsingAnAttempt) {
    // Setup: two attempts.
    limits.backoff.max_attempts = 2;
    auto p = policy(request_kind::fhir_get);
    auto later_request = policy(request_kind::fhir_get, /*refreshed_for_401=*/true);

    // Run
    const auto first = p.on_response(401, std::nullopt, t0);
    const auto after_refresh = p.on_response(500, std::nullopt, t0);
    const auto again = p.on_response(401, std::nullopt, t0);
    const auto in_same_job = later_request.on_response(401, std::nullopt, t0);

    // Check
    EXPECT_EQ(first.action, request_action::refresh_access);
    EXPECT_EQ(after_refresh.action, request_action::retry);  // the 401 was not an attempt
    for (const auto& s : {again, in_same_job}) {
        ASSERT_EQ(s.action, request_action::fail);
        EXPECT_EQ(to_string(s.failure->code), "unauthorized");
        EXPECT_EQ(s.failure->message, "the EHR answered 401 again after a token refresh");
    }
}

TEST_F(RequestPolicy, OtherAnswersOfAFhirReadAreUsedOrFailTheJob) {
    auto p = policy(request_kind::fhir_get);
    EXPECT_EQ(p.on_response(403, std::nullopt, t0).action, request_action::use);
    EXPECT_EQ(p.on_response(404, std::nullopt, t0).action, request_action::use);
    const auto gone = p.on_response(410, std::nullopt, t0);
    ASSERT_EQ(gone.action, request_action::fail);
    EXPECT_EQ(to_string(gone.failure->code), "http_410");
    EXPECT_EQ(gone.failure->message, "the EHR answered HTTP 410");
}

TEST_F(RequestPolicy, ARefreshNotSentOrStoppedIsNoFailedRefresh) {
    // Setup
    auto held = policy(request_kind::token_refresh);
    auto stopped = policy(request_kind::token_refresh);

    // Run
    const auto h = held.on_error(error{headachemd::errc::rate_limited, "rate-limited until T"});
    const auto s = stopped.on_error(error{headachemd::errc::stopped, "stopping: request not sent"});

    // Check
    ASSERT_EQ(h.action, request_action::fail);
    EXPECT_EQ(h.failure->message, "rate-limited until T");  // as `status` shows it
    EXPECT_FALSE(h.refresh_failed);
    ASSERT_EQ(s.action, request_action::fail);
    EXPECT_EQ(s.failure->message, "token refresh failed: stopping: request not sent");
    EXPECT_FALSE(s.refresh_failed);
}

TEST_F(RequestPolicy, ARefreshAnswerIsTheTokenResponsesToJudgeAndARaceIsSentAgainAtOnce) {
    // Setup: two attempts.
    limits.backoff.max_attempts = 2;
    auto p = policy(request_kind::token_refresh);

    // Run
    const auto refused = p.on_response(400, std::nullopt, t0);
    const auto raced = p.on_token_rotated_meanwhile(error{headachemd::errc::refresh_raced, "kept rotating"});
    const auto limited_last = p.on_response(429, "1", t0);
    const auto raced_last =
        p.on_token_rotated_meanwhile(error{headachemd::errc::refresh_raced, "kept rotating"});

    // Check
    EXPECT_EQ(refused.action, request_action::use);
    EXPECT_EQ(raced.action, request_action::resend_now);
    EXPECT_EQ(raced.wait, 0ns);
    EXPECT_EQ(limited_last.action, request_action::use);  // the last 429 is parsed as a refusal
    ASSERT_EQ(raced_last.action, request_action::fail);
    EXPECT_EQ(to_string(raced_last.failure->code), "refresh_raced");
    EXPECT_FALSE(raced_last.refresh_failed);  // counted where the race was seen
}

}  // namespace
