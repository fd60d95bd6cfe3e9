// The Bulk Data export job (issue 15, item 3), stepped event by event with
// exact expected actions: no io_context, no network, time as arguments
// (headachemd::manual_clock's start and offsets from it).
#include <gtest/gtest.h>

#include <set>

#include <stdexcept>

#include "headachemd/core/clock.hpp"
#include "headachemd/sync/bulk_job.hpp"

namespace {

namespace sy = headachemd::sync;
using headachemd::errc;
using namespace std::chrono;
using namespace std::chrono_literals;
using kind = sy::bulk_action::kind;

// Sunday 2026-12-06 01:00:00 UTC, so that an HTTP-date can be written out.
const sy::sys_time t0 = sys_days{2026y / December / 6} + 1h;

const std::string kickoff_url = "https://ehr.example/fhir/Group/g1/$export?_type=Patient,Observation";
const std::string status_url = "https://ehr.example/fhir/bulkstatus/42";

sy::bulk_job::options opts() {
    sy::bulk_job::options o;
    o.max_retry_after = 3600s;
    o.min_poll_interval = 5s;
    o.first_poll_after = 10s;
    o.poll_backoff_cap = 600s;
    o.job_deadline = 72h;
    o.max_poll_errors = 3;
    o.max_attempts = 3;
    o.retry_base = 1s;
    return o;
}

sy::http_answer answer(int status, std::optional<std::string> retry_after = std::nullopt,
                       std::string body = "") {
    sy::http_answer a;
    a.status = status;
    a.retry_after = std::move(retry_after);
    a.body = std::move(body);
    return a;
}

sy::http_answer accepted(std::optional<std::string> location = status_url) {
    auto a = answer(202);
    a.content_location = std::move(location);
    return a;
}

// Two output files (the second on another origin, as Oracle Health's are),
// a deleted file and an error file.
const std::string manifest = R"({
  "transactionTime": "2026-12-06T00:59:00Z",
  "requiresAccessToken": true,
  "output": [
    {"type": "Patient", "url": "https://ehr.example/fhir/files/1.ndjson", "count": 2},
    {"type": "Observation", "url": "https://files.example/2.ndjson"}
  ],
  "deleted": [{"type": "Bundle", "url": "https://ehr.example/fhir/files/3.ndjson"}],
  "error": [{"type": "OperationOutcome", "url": "https://ehr.example/fhir/files/4.ndjson"}]
})";

// Built with append: GCC 12 at -O2 warns falsely (-Warray-bounds) on
// chains of std::string operator+.
std::string outcome_of(const char* severity, const char* code) {
    std::string s = R"({"resourceType":"OperationOutcome","issue":[{"severity":")";
    s.append(severity)
        .append(R"(","code":")")
        .append(code)
        .append(R"(","diagnostics":"Patient Jane Roe"}]})");
    return s;
}

// A job stepped to its first poll: kicked off, accepted, persisted.
struct polling_job {
    sy::bulk_job job{opts(), sy::new_bulk_record(kickoff_url, t0)};
    sy::bulk_action first_poll;
    polling_job() {
        (void)job.start(t0);
        (void)job.next(accepted(), t0 + 1s);
        first_poll = job.next(sy::persisted{}, t0 + 1s);
    }
};

// A job stepped to its first download.
struct downloading_job : polling_job {
    sy::bulk_action first_download;
    downloading_job() {
        (void)job.next(answer(200, std::nullopt, manifest), t0 + 20s);
        first_download = job.next(sy::persisted{}, t0 + 20s);
    }
};

void expect_failed_after_release(sy::bulk_job& job, sy::bulk_action step, sy::sys_time now, errc code,
                                 const std::string& says) {
    // Every end of a job with a status URL goes through persist, then DELETE.
    ASSERT_EQ(step.what, kind::persist);
    EXPECT_EQ(job.phase(), sy::bulk_phase::releasing);
    ASSERT_TRUE(job.record().failure);
    const auto release = job.next(sy::persisted{}, now);
    ASSERT_EQ(release.what, kind::release);
    EXPECT_EQ(release.url, *job.record().status_url);
    const auto end = job.next(answer(202), now);
    ASSERT_EQ(end.what, kind::failed);
    EXPECT_TRUE(end.released);
    ASSERT_TRUE(end.failure);
    EXPECT_TRUE(end.failure->code == code) << to_string(end.failure->code);
    EXPECT_NE(end.failure->message.find(says), std::string::npos) << end.failure->message;
    EXPECT_EQ(end.failure->message.find("Jane"), std::string::npos);
    EXPECT_EQ(job.phase(), sy::bulk_phase::failed);
}

TEST(BulkJob, AWholeExportStepsThroughKickoffPersistPollDownloadApplySinceAndRelease) {
    // Setup
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));

    // Run / Check, step by step.
    const auto kick = job.start(t0);
    EXPECT_EQ(kick.what, kind::send_kickoff);
    EXPECT_EQ(kick.url, kickoff_url);
    EXPECT_EQ(kick.at, t0);
    EXPECT_TRUE(kick.bearer);

    auto a = accepted();
    a.x_progress = "queued";
    const auto persist = job.next(a, t0 + 1s);
    EXPECT_EQ(persist.what, kind::persist);
    EXPECT_EQ(job.record().status_url, status_url);
    EXPECT_EQ(job.record().status_origin, "https://ehr.example:443");
    EXPECT_TRUE(job.record().status_on_fhir_origin);
    EXPECT_EQ(job.record().progress, "queued");

    const auto poll = job.next(sy::persisted{}, t0 + 2s);
    EXPECT_EQ(poll.what, kind::poll);
    EXPECT_EQ(poll.url, status_url);
    EXPECT_EQ(poll.at, t0 + 1s + 10s);  // first_poll_after from the 202
    EXPECT_TRUE(poll.bearer);

    auto progress = answer(202, "120");
    progress.x_progress = "50%";
    const auto poll2 = job.next(progress, t0 + 11s);
    EXPECT_EQ(poll2.what, kind::poll);
    EXPECT_EQ(poll2.at, t0 + 11s + 120s);
    EXPECT_EQ(job.record().progress, "50%");

    const auto persist2 = job.next(answer(200, std::nullopt, manifest), t0 + 131s);
    EXPECT_EQ(persist2.what, kind::persist);
    ASSERT_TRUE(job.record().manifest);
    EXPECT_EQ(job.record().manifest->files.size(), 4u);
    EXPECT_EQ(job.phase(), sy::bulk_phase::downloading);

    // Files in order; the bearer only to the FHIR origin.
    const sy::sys_time t = t0 + 132s;
    auto step = job.next(sy::persisted{}, t);
    const std::vector<std::pair<std::string, bool>> expected{
        {"https://ehr.example/fhir/files/1.ndjson", true},
        {"https://files.example/2.ndjson", false},
        {"https://ehr.example/fhir/files/3.ndjson", true},
        {"https://ehr.example/fhir/files/4.ndjson", true}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(step.what, kind::download) << i;
        EXPECT_EQ(step.file, i);
        EXPECT_EQ(step.url, expected[i].first);
        EXPECT_EQ(step.bearer, expected[i].second) << i;
        EXPECT_EQ(step.at, t);
        const auto apply = job.next(sy::file_downloaded{i}, t);
        ASSERT_EQ(apply.what, kind::apply) << i;
        EXPECT_EQ(apply.file, i);
        EXPECT_FALSE(job.record().since_stored);
        step = job.next(sy::file_applied{i}, t);
    }

    // transactionTime only after every file was applied.
    ASSERT_EQ(step.what, kind::store_since);
    EXPECT_EQ(step.since, "2026-12-06T00:59:00Z");
    EXPECT_EQ(job.record().applied, (std::set<std::size_t>{0, 1, 2, 3}));
    const auto release = job.next(sy::since_stored{}, t);
    EXPECT_EQ(release.what, kind::release);
    EXPECT_EQ(release.url, status_url);
    EXPECT_TRUE(job.record().since_stored);

    const auto done = job.next(answer(202), t);
    EXPECT_EQ(done.what, kind::done);
    EXPECT_TRUE(done.released);
    EXPECT_FALSE(done.failure);
    EXPECT_EQ(job.phase(), sy::bulk_phase::done);
    EXPECT_THROW((void)job.next(answer(200), t), std::logic_error);
}

TEST(BulkJob, TheStatusUrlIsPersistedBeforeTheFirstPoll) {
    // Setup
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)job.start(t0);

    // Run
    const auto step = job.next(accepted(), t0);

    // Check: no poll until the shell says the record is written.
    ASSERT_EQ(step.what, kind::persist);
    EXPECT_EQ(job.record().status_url, status_url);
    EXPECT_THROW((void)job.next(answer(202), t0), std::logic_error);
    EXPECT_THROW((void)job.next(sy::since_stored{}, t0), std::logic_error);
    EXPECT_EQ(job.next(sy::persisted{}, t0).what, kind::poll);
}

TEST(BulkJob, AStatusUrlThatCannotBeSavedIsNeverPolledButCancelled) {
    // Setup
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)job.start(t0);
    ASSERT_EQ(job.next(accepted(), t0).what, kind::persist);

    // Run: the store refuses the record.
    const auto step = job.next(sy::persist_failed{{errc::store_failed, "disk full"}}, t0);

    // Check: DELETE at once, no poll, then failed with the store's reason.
    ASSERT_EQ(step.what, kind::release);
    EXPECT_EQ(step.url, status_url);
    const auto end = job.next(answer(202), t0);
    ASSERT_EQ(end.what, kind::failed);
    EXPECT_TRUE(end.released);
    EXPECT_TRUE(end.failure->code == errc::store_failed);
    EXPECT_NE(end.failure->message.find("record could not be saved: disk full"), std::string::npos);
}

TEST(BulkJob, ARestartWithAStatusUrlPollsAtOnceAndNeverKicksOffAgain) {
    // Setup: what was persisted before the first poll; the process died.
    polling_job before;
    const auto stored = before.job.record();

    // Run
    sy::bulk_job after(opts(), stored);
    const auto step = after.start(t0 + 5h);

    // Check
    EXPECT_EQ(step.what, kind::poll);
    EXPECT_EQ(step.url, status_url);
    EXPECT_EQ(step.at, t0 + 5h);
    // Even a record that still says kickoff: the status URL decides.
    auto odd = stored;
    odd.phase = sy::bulk_phase::kickoff;
    EXPECT_EQ(sy::bulk_job(opts(), odd).start(t0 + 5h).what, kind::poll);
    // Without a status URL the kick-off is sent (a crash before persist).
    EXPECT_EQ(sy::bulk_job(opts(), sy::new_bulk_record(kickoff_url, t0)).start(t0 + 5h).what,
              kind::send_kickoff);
}

TEST(BulkJob, ARestartMidDownloadResumesWithTheFirstFileNotApplied) {
    // Setup: files 0 and 2 applied, then the process died.
    downloading_job before;
    auto stored = before.job.record();
    stored.applied = {0, 2};

    // Run
    sy::bulk_job after(opts(), stored);
    const auto first = after.start(t0 + 1h);
    (void)after.next(sy::file_downloaded{1}, t0 + 1h);
    const auto second = after.next(sy::file_applied{1}, t0 + 1h);
    (void)after.next(sy::file_downloaded{3}, t0 + 1h);
    const auto last = after.next(sy::file_applied{3}, t0 + 1h);

    // Check
    ASSERT_EQ(first.what, kind::download);
    EXPECT_EQ(first.file, 1u);
    ASSERT_EQ(second.what, kind::download);
    EXPECT_EQ(second.file, 3u);
    EXPECT_EQ(last.what, kind::store_since);

    // Every file applied but _since not stored: store it, then release.
    auto all = stored;
    all.applied = {0, 1, 2, 3};
    sy::bulk_job storing(opts(), all);
    EXPECT_EQ(storing.start(t0 + 1h).what, kind::store_since);
    // _since stored, the DELETE not answered: release again.
    all.since_stored = true;
    sy::bulk_job releasing(opts(), all);
    EXPECT_EQ(releasing.start(t0 + 1h).what, kind::release);
    EXPECT_EQ(releasing.next(answer(404), t0 + 1h).what, kind::done);
    // A job that had ended repeats its end and asks for nothing.
    auto ended = all;
    ended.phase = sy::bulk_phase::done;
    EXPECT_EQ(sy::bulk_job(opts(), ended).start(t0 + 1h).what, kind::done);
}

// The normalizer resolves medicationReference from the Medication
// resources it has read, and that index lives in memory only.
TEST(BulkJob, MedicationFilesGoFirstAndAgainAfterARestartWithOutputLeft) {
    // Setup: a manifest that lists Medication after MedicationRequest.
    polling_job j;
    const std::string meds = R"({
      "transactionTime": "2026-12-06T00:59:00Z", "requiresAccessToken": true,
      "output": [
        {"type": "MedicationRequest", "url": "https://ehr.example/fhir/files/1.ndjson"},
        {"type": "Patient", "url": "https://ehr.example/fhir/files/2.ndjson"},
        {"type": "Medication", "url": "https://ehr.example/fhir/files/3.ndjson"}
      ]})";
    (void)j.job.next(answer(200, std::nullopt, meds), t0 + 20s);

    // Run
    const auto first = j.job.next(sy::persisted{}, t0 + 20s);
    (void)j.job.next(sy::file_downloaded{2}, t0 + 21s);
    const auto second = j.job.next(sy::file_applied{2}, t0 + 21s);

    // Check: Medication, then the manifest's order.
    ASSERT_EQ(first.what, kind::download);
    EXPECT_EQ(first.file, 2u);
    ASSERT_EQ(second.what, kind::download);
    EXPECT_EQ(second.file, 0u);

    // A restart with MedicationRequest still to apply applies Medication again first.
    auto stored = j.job.record();
    ASSERT_EQ(stored.applied, (std::set<std::size_t>{2}));
    sy::bulk_job resumed(opts(), stored);
    const auto again = resumed.start(t0 + 1h);
    ASSERT_EQ(again.what, kind::download);
    EXPECT_EQ(again.file, 2u);
    // Every output file applied: nothing is applied again.
    stored.applied = {0, 1, 2};
    sy::bulk_job finished(opts(), stored);
    EXPECT_EQ(finished.start(t0 + 1h).what, kind::store_since);
}

TEST(BulkJob, RetryAfterAsAnHttpDateIsWaitedToThatTime) {
    polling_job p;
    const auto step = p.job.next(answer(202, "Sun, 06 Dec 2026 01:07:30 GMT"), t0 + 30s);
    ASSERT_EQ(step.what, kind::poll);
    EXPECT_EQ(step.at, t0 + 7min + 30s);
}

TEST(BulkJob, RetryAfterIsCappedAndGarbageOrNegativeFallsBackToBackoff) {
    polling_job p;
    auto& job = p.job;
    sy::sys_time now = t0 + 11s;
    // Absurdly large (delta or a date decades ahead): capped.
    auto step = job.next(answer(202, "99999999999999999999"), now);
    EXPECT_EQ(step.at, now + 3600s);
    step = job.next(answer(202, "Fri, 01 Jan 2100 00:00:00 GMT"), now);
    EXPECT_EQ(step.at, now + 3600s);
    // 0 or a date in the past: not a tight loop.
    step = job.next(answer(202, "0"), now);
    EXPECT_EQ(step.at, now + 5s);
    step = job.next(answer(202, "Sun, 06 Nov 1994 08:49:37 GMT"), now);
    EXPECT_EQ(step.at, now + 5s);
    // Negative, garbage, fractional: as if absent, so the backoff doubles
    // (the first step, 10 s, was the wait after the 202 of the kick-off).
    for (const auto& [value, wait] : std::vector<std::pair<std::string, seconds>>{
             {"-5", 20s}, {"soon", 40s}, {"1.5", 80s}, {"", 160s}, {"120 seconds", 320s}, {"x", 600s}}) {
        step = job.next(answer(202, value), now);
        ASSERT_EQ(step.what, kind::poll) << value;
        EXPECT_EQ(step.at, now + wait) << value;
    }
    step = job.next(answer(202), now);
    EXPECT_EQ(step.at, now + 600s);  // poll_backoff_cap
}

TEST(BulkJob, A429OnThePollBacksOffEvenWhenItAsksForLess) {
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    // No Retry-After: the next backoff step (20 s; 10 s went to the first).
    auto step = p.job.next(answer(429), now);
    ASSERT_EQ(step.what, kind::poll);
    EXPECT_EQ(step.at, now + 20s);
    // Retry-After 1 s: still the backoff step, now 40 s.
    step = p.job.next(answer(429, "1"), now);
    EXPECT_EQ(step.at, now + 40s);
    // A longer Retry-After wins.
    step = p.job.next(answer(429, "300"), now);
    EXPECT_EQ(step.at, now + 300s);
    // 429s never count as errors: the job goes on.
    for (int i = 0; i < 10; ++i) step = p.job.next(answer(429), now);
    EXPECT_EQ(step.what, kind::poll);
}

TEST(BulkJob, ATransientOutcomeIsRetriedAndAnyOtherFailsTheJob) {
    // Setup / Run: 500 and 503 with transient codes, and a gateway's 502
    // without an OperationOutcome, are retried.
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    auto step = p.job.next(answer(500, std::nullopt, outcome_of("error", "transient")), now);
    EXPECT_EQ(step.what, kind::poll);
    EXPECT_EQ(step.at, now + 20s);
    step = p.job.next(answer(503, "30", outcome_of("error", "throttled")), now);
    EXPECT_EQ(step.at, now + 40s);  // the backoff step is longer than 30 s
    step = p.job.next(answer(502, std::nullopt, "<html>Bad Gateway</html>"), now);
    EXPECT_EQ(step.what, kind::poll);
    // A 202 resets the count of errors in a row.
    (void)p.job.next(answer(202, "10"), now);
    for (int i = 0; i < 3; ++i)
        step = p.job.next(answer(500, std::nullopt, outcome_of("error", "lock-error")), now);
    EXPECT_EQ(step.what, kind::poll);

    // Check: a fatal code fails the job, the DELETE is still sent.
    step = p.job.next(answer(500, std::nullopt, outcome_of("error", "too-costly")), now);
    expect_failed_after_release(p.job, step, now, errc::export_failed, "error too-costly");

    // A 4xx without an outcome is fatal too.
    polling_job q;
    expect_failed_after_release(q.job, q.job.next(answer(400), now), now, errc::export_failed, "HTTP 400");
}

TEST(BulkJob, TransientErrorsWithoutEndFailTheJobAfterTheLimit) {
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    sy::bulk_action step;
    for (int i = 0; i < 3; ++i) {
        step = p.job.next(answer(500, std::nullopt, outcome_of("error", "exception")), now);
        ASSERT_EQ(step.what, kind::poll) << i;
    }
    step = p.job.next(answer(500, std::nullopt, outcome_of("error", "exception")), now);
    expect_failed_after_release(p.job, step, now, errc::http_status,
                                "kept failing (HTTP 500): error exception");

    // Transport errors count the same; a refused certificate at once.
    polling_job q;
    step = q.job.next(sy::transport_failed{{errc::reset, "reset by peer"}}, now);
    EXPECT_EQ(step.what, kind::poll);
    step = q.job.next(sy::transport_failed{{errc::tls_verify, "unknown CA"}}, now);
    expect_failed_after_release(q.job, step, now, errc::tls_verify, "unknown CA");
}

TEST(BulkJob, TheWholeJobHasADeadline) {
    // Setup: a job started 71 h 59 min ago.
    polling_job p;
    const sy::sys_time now = t0 + 72h - 1min;

    // Run: the server asks to come back in an hour, past the deadline.
    const auto step = p.job.next(answer(202, "3600"), now);

    // Check: given up now, the server's export cancelled.
    expect_failed_after_release(p.job, step, now, errc::deadline_exceeded, "job deadline of 259200 s");

    // A restarted job past its deadline does not poll either.
    polling_job q;
    auto stored = q.job.record();
    sy::bulk_job after(opts(), stored);
    const auto first = after.start(t0 + 73h);
    EXPECT_EQ(first.what, kind::persist);
    EXPECT_TRUE(after.record().failure->code == errc::deadline_exceeded);

    // Downloads too; but a job whose files are all in still stores _since.
    downloading_job d;
    const auto late = d.job.next(sy::transport_failed{{errc::timeout, "slow"}}, t0 + 72h);
    EXPECT_EQ(late.what, kind::persist);
    EXPECT_TRUE(d.job.record().failure->code == errc::deadline_exceeded);
    auto done = d.job.record();
    done.failure.reset();
    done.phase = sy::bulk_phase::downloading;
    done.applied = {0, 1, 2, 3};
    EXPECT_EQ(sy::bulk_job(opts(), done).start(t0 + 100h).what, kind::store_since);
}

TEST(BulkJob, ReleaseAcceptsA404AndNeverTurnsSuccessIntoFailure) {
    // Setup: a finished job at its DELETE.
    auto rec = downloading_job().job.record();
    rec.applied = {0, 1, 2, 3};
    rec.since_stored = true;

    // 404: already released.
    sy::bulk_job a(opts(), rec);
    ASSERT_EQ(a.start(t0).what, kind::release);
    const auto gone = a.next(answer(404), t0);
    EXPECT_EQ(gone.what, kind::done);
    EXPECT_TRUE(gone.released);

    // 500s: retried with backoff, then done anyway, marked not released.
    sy::bulk_job b(opts(), rec);
    (void)b.start(t0);
    auto step = b.next(answer(500), t0);
    ASSERT_EQ(step.what, kind::release);
    EXPECT_EQ(step.at, t0 + 1s);
    step = b.next(sy::transport_failed{{errc::reset, "reset"}}, t0 + 1s);
    ASSERT_EQ(step.what, kind::release);
    EXPECT_EQ(step.at, t0 + 1s + 2s);
    step = b.next(answer(503), t0 + 3s);
    EXPECT_EQ(step.what, kind::done);
    EXPECT_FALSE(step.released);
    EXPECT_FALSE(step.failure);
}

TEST(BulkJob, ACancelDeletesTheStatusUrlOrEndsAtOnceWithoutOne) {
    // With a status URL: persisted (a restart would cancel too), then DELETE.
    polling_job p;
    auto step = p.job.next(sy::cancel_requested{}, t0 + 30s);
    ASSERT_EQ(step.what, kind::persist);
    EXPECT_TRUE(p.job.record().cancel_requested);
    sy::bulk_job resumed(opts(), p.job.record());
    EXPECT_EQ(resumed.start(t0 + 1h).what, kind::release);
    step = p.job.next(sy::persisted{}, t0 + 30s);
    ASSERT_EQ(step.what, kind::release);
    step = p.job.next(answer(202), t0 + 31s);
    EXPECT_EQ(step.what, kind::cancelled);
    EXPECT_TRUE(step.released);
    EXPECT_EQ(p.job.phase(), sy::bulk_phase::cancelled);

    // Before the kick-off was answered: nothing to delete.
    sy::bulk_job fresh(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)fresh.start(t0);
    step = fresh.next(sy::cancel_requested{}, t0);
    EXPECT_EQ(step.what, kind::cancelled);
    EXPECT_FALSE(step.released);
}

TEST(BulkJob, ContentLocationRelativeIsResolvedCrossOriginGetsNoBearerAndTheRestIsRefused) {
    const sy::sys_time now = t0 + 1s;
    // Relative (RFC 9110 §8.7): resolved against the kick-off URL.
    {
        sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
        (void)job.start(t0);
        EXPECT_EQ(job.next(accepted("/fhir/status/7?job=1"), now).what, kind::persist);
        EXPECT_EQ(job.record().status_url, "https://ehr.example/fhir/status/7?job=1");
        EXPECT_TRUE(job.record().status_on_fhir_origin);
    }
    // Another origin: accepted and recorded; the bearer never goes there,
    // and a 401 from it fails the job instead of sending a token.
    {
        sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
        (void)job.start(t0);
        (void)job.next(accepted("https://poll.example:8443/export-poll-location?job_id=9"), now);
        EXPECT_EQ(job.record().status_origin, "https://poll.example:8443");
        EXPECT_FALSE(job.record().status_on_fhir_origin);
        const auto poll = job.next(sy::persisted{}, now);
        EXPECT_FALSE(poll.bearer);
        const auto step = job.next(answer(401), now);
        ASSERT_EQ(step.what, kind::persist);
        EXPECT_TRUE(job.record().failure->code == errc::unauthorized);
        EXPECT_NE(job.record().failure->message.find("not on the FHIR server's origin"), std::string::npos);
        EXPECT_FALSE(job.next(sy::persisted{}, now).bearer);  // the DELETE neither
    }
    // Refused: absent, empty, plain http, another scheme, garbage, huge. No
    // status URL, so nothing to release; the value is not repeated.
    for (const std::optional<std::string>& loc :
         {std::optional<std::string>{}, std::optional<std::string>{""},
          std::optional<std::string>{"http://ehr.example/secret-status"},
          std::optional<std::string>{"ftp://ehr.example/secret-status"},
          std::optional<std::string>{"https://[bad/secret-status"},
          std::optional<std::string>{"https://ehr.example/" + std::string(5000, 'x')}}) {
        sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
        (void)job.start(t0);
        const auto step = job.next(accepted(loc), now);
        ASSERT_EQ(step.what, kind::failed) << loc.value_or("(absent)");
        EXPECT_TRUE(step.failure->code == errc::bad_status_url);
        EXPECT_EQ(step.failure->message.find("secret"), std::string::npos);
        EXPECT_FALSE(job.record().status_url);
    }
    // Plain http to loopback is the sandbox: accepted.
    sy::bulk_job local(opts(), sy::new_bulk_record("http://127.0.0.1:8443/fhir/$export", t0));
    (void)local.start(t0);
    EXPECT_EQ(local.next(accepted("http://127.0.0.1:8443/status/1"), now).what, kind::persist);
}

TEST(BulkJob, XProgressIsKeptSanitizedAndBounded) {
    polling_job p;
    auto a = answer(202);
    std::string progress(100000, '9');
    progress.append("\n");
    a.x_progress = progress;
    (void)p.job.next(a, t0 + 11s);
    std::string cut(64, '9');
    cut.append("...");
    EXPECT_EQ(p.job.record().progress, cut);
}

TEST(BulkJob, TheKickoffIsRetriedOnlyWhenItCertainlyNeverLeftOrTheServerSaidSo) {
    const sy::sys_time now = t0;
    // Connection refused: never sent, so sent again after 1 s.
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)job.start(now);
    auto step = job.next(sy::transport_failed{{errc::connect, "refused"}}, now);
    ASSERT_EQ(step.what, kind::send_kickoff);
    EXPECT_EQ(step.at, now + 1s);
    // 429 with Retry-After: that long.
    step = job.next(answer(429, "45"), now);
    ASSERT_EQ(step.what, kind::send_kickoff);
    EXPECT_EQ(step.at, now + 45s);
    // The third failure ends it (max_attempts 3).
    step = job.next(answer(503, std::nullopt, outcome_of("error", "transient")), now);
    ASSERT_EQ(step.what, kind::failed);
    EXPECT_EQ(to_string(step.failure->code), "http_503");

    // A timeout may have reached the server: not repeated.
    sy::bulk_job timed(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)timed.start(now);
    step = timed.next(sy::transport_failed{{errc::timeout, "no answer in 30 s"}}, now);
    ASSERT_EQ(step.what, kind::failed);
    EXPECT_NE(step.failure->message.find("not repeated"), std::string::npos);

    // A refusal with an outcome: failed, the outcome's codes named.
    sy::bulk_job refused(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)refused.start(now);
    step = refused.next(answer(400, std::nullopt, outcome_of("error", "not-supported")), now);
    ASSERT_EQ(step.what, kind::failed);
    EXPECT_EQ(to_string(step.failure->code), "http_400");
    EXPECT_NE(step.failure->message.find("error not-supported"), std::string::npos);
    EXPECT_EQ(step.failure->message.find("Jane"), std::string::npos);

    // 200 instead of 202: no asynchronous export.
    sy::bulk_job sync_answer(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)sync_answer.start(now);
    step = sync_answer.next(answer(200), now);
    ASSERT_EQ(step.what, kind::failed);
    EXPECT_TRUE(step.failure->code == errc::export_failed);
}

TEST(BulkJob, A401GetsOneFreshTokenThenFails) {
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    auto step = p.job.next(answer(401), now);
    ASSERT_EQ(step.what, kind::poll);
    EXPECT_TRUE(step.fresh_token);
    EXPECT_EQ(step.at, now);
    // A success in between earns a new chance.
    step = p.job.next(answer(202, "10"), now);
    EXPECT_FALSE(step.fresh_token);
    step = p.job.next(answer(401), now);
    EXPECT_TRUE(step.fresh_token);
    step = p.job.next(answer(401), now);
    expect_failed_after_release(p.job, step, now, errc::unauthorized, "again with a fresh access token");

    // A file on another origin gets no token, so a 401 there is final.
    downloading_job d;
    (void)d.job.next(sy::file_downloaded{0}, now);
    step = d.job.next(sy::file_applied{0}, now);
    ASSERT_EQ(step.file, 1u);
    ASSERT_FALSE(step.bearer);
    step = d.job.next(answer(401), now);
    expect_failed_after_release(d.job, step, now, errc::unauthorized, "bulk file 1 (output, Observation)");
}

TEST(BulkJob, FilesAreRetriedOnTransientFailuresAndAnExpiredOneFailsTheJob) {
    downloading_job d;
    const sy::sys_time now = t0 + 30s;
    EXPECT_EQ(d.first_download.file, 0u);
    auto step = d.job.next(answer(503, "7"), now);
    ASSERT_EQ(step.what, kind::download);
    EXPECT_EQ(step.file, 0u);
    EXPECT_EQ(step.at, now + 7s);
    step = d.job.next(sy::transport_failed{{errc::reset, "reset"}}, now);
    EXPECT_EQ(step.at, now + 2s);
    step = d.job.next(sy::transport_failed{{errc::truncated, "short"}}, now);
    expect_failed_after_release(d.job, step, now, errc::truncated,
                                "bulk file 0 (output, Patient) failed: short");

    downloading_job e;
    step = e.job.next(answer(404), now);
    expect_failed_after_release(e.job, step, now, errc::http_status, "expired or were released");

    // A file that cannot be applied (the store failed) fails the job and
    // leaves _since where it was.
    downloading_job f;
    (void)f.job.next(sy::file_downloaded{0}, now);
    EXPECT_THROW((void)f.job.next(sy::file_applied{1}, now), std::logic_error);
    step = f.job.next(sy::apply_failed{0, {errc::store_failed, "disk full"}}, now);
    EXPECT_FALSE(f.job.record().since_stored);
    EXPECT_TRUE(f.job.record().applied.empty());
    expect_failed_after_release(f.job, step, now, errc::store_failed, "could not be applied: disk full");
}

TEST(BulkJob, ABadManifestFailsTheJobAndReleasesTheExport) {
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    const auto step =
        p.job.next(answer(200, std::nullopt, R"({"requiresAccessToken":true,"output":[]})"), now);
    EXPECT_FALSE(p.job.record().manifest);
    expect_failed_after_release(p.job, step, now, errc::bad_manifest, "transactionTime is missing");
}

TEST(BulkJob, AnEmptyExportStoresSinceAtOnce) {
    polling_job p;
    const sy::sys_time now = t0 + 11s;
    (void)p.job.next(
        answer(200, std::nullopt,
               R"({"transactionTime":"2026-12-06T01:00:00Z","requiresAccessToken":false,"output":[]})"),
        now);
    const auto step = p.job.next(sy::persisted{}, now);
    ASSERT_EQ(step.what, kind::store_since);
    EXPECT_EQ(step.since, "2026-12-06T01:00:00Z");
}

TEST(BulkJob, ManualClockStepsAJobThroughAnHourOfPollingWithoutSleeping) {
    // The shell's view: wait until `at` (the clock moves), send, report.
    headachemd::manual_clock clock(t0);
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, clock.now()));
    auto step = job.start(clock.now());
    step = job.next(accepted(), clock.now());
    step = job.next(sy::persisted{}, clock.now());
    int polls = 0;
    while (step.what == kind::poll && clock.now() < t0 + 1h) {
        clock.advance(step.at - clock.now());
        ++polls;
        step = job.next(answer(202), clock.now());
    }
    // 10, 20, 40, …, 600 s: the backoff reaches its cap and stays there.
    EXPECT_EQ(polls, 11);
    EXPECT_EQ(step.what, kind::poll);
    EXPECT_EQ(step.at - clock.now(), 600s);
}

TEST(BulkJob, AKickoffRetryPastTheDeadlineFailsWithoutAStatusUrlToRelease) {
    // Setup: a job started three days less a second ago, its kick-off refused.
    sy::bulk_job job(opts(), sy::new_bulk_record(kickoff_url, t0));
    (void)job.start(t0 + 72h - 1s);

    // Run: the retry would come after the deadline.
    const auto step = job.next(answer(503, "60"), t0 + 72h - 1s);

    // Check: nothing on the server to cancel, so failed at once.
    ASSERT_EQ(step.what, kind::failed);
    EXPECT_TRUE(step.failure->code == errc::deadline_exceeded);
    EXPECT_FALSE(step.released);
}

TEST(BulkJob, EventsThatDoNotAnswerTheLastActionAreBugs) {
    downloading_job d;
    const sy::sys_time now = t0 + 30s;
    // The download in flight is file 0: news of file 2 is a shell bug.
    EXPECT_THROW((void)d.job.next(sy::file_downloaded{2}, now), std::logic_error);
    EXPECT_THROW((void)d.job.next(sy::since_stored{}, now), std::logic_error);
    EXPECT_THROW((void)d.job.next(sy::persisted{}, now), std::logic_error);
    // The job is unchanged by them.
    const auto apply = d.job.next(sy::file_downloaded{0}, now);
    EXPECT_EQ(apply.what, kind::apply);
    EXPECT_EQ(apply.file, 0u);
}

TEST(BulkJob, ACancelDuringTheReleaseSendsTheSameDeleteAgain) {
    auto rec = downloading_job().job.record();
    rec.applied = {0, 1, 2, 3};
    rec.since_stored = true;
    sy::bulk_job job(opts(), rec);
    ASSERT_EQ(job.start(t0).what, kind::release);

    const auto step = job.next(sy::cancel_requested{}, t0);
    ASSERT_EQ(step.what, kind::release);
    EXPECT_EQ(step.url, status_url);
    // The files were applied and _since stored before the cancel: the job
    // ends as cancelled, its data kept.
    EXPECT_EQ(job.next(answer(204), t0).what, kind::cancelled);
    EXPECT_TRUE(job.record().since_stored);
}

TEST(BulkJob, PhasesHaveStableNamesForStatusAndMetrics) {
    const std::vector<std::pair<sy::bulk_phase, std::string>> names{
        {sy::bulk_phase::kickoff, "kickoff"},         {sy::bulk_phase::polling, "polling"},
        {sy::bulk_phase::downloading, "downloading"}, {sy::bulk_phase::storing, "storing"},
        {sy::bulk_phase::releasing, "releasing"},     {sy::bulk_phase::done, "done"},
        {sy::bulk_phase::failed, "failed"},           {sy::bulk_phase::cancelled, "cancelled"}};
    for (const auto& [p, name] : names) EXPECT_EQ(sy::to_string(p), name);
}

}  // namespace
