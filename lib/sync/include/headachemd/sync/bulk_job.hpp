// One Bulk Data export (issue 15, item 3) as a pure state machine:
// kick-off → persist → poll → persist → download/apply each file →
// store _since → release, with cancel, failure and a whole-job deadline.
// No I/O and no clock of its own: every event carries `now`, and the
// coroutine shell (later) performs each action and feeds the outcome back
// with next(). Tests step through every rule with plain values.
//
// The rules it holds (Bulk Data IG v2.0.0 and issue 15):
// - the status URL is persisted BEFORE the first poll: after a 202 the
//   action is `persist`, and no poll is asked for until `persisted`;
// - a job whose record has a status URL never kicks off again, after a
//   restart included (resume() continues polling or downloading);
// - Retry-After is delta-seconds or an HTTP-date (http::parse_retry_after),
//   capped by options::max_retry_after; 429 on a poll backs off;
// - a 4xx/5xx whose OperationOutcome is transient is retried, any other
//   error fails the job; 401 gets one fresh token, then fails;
// - the whole job has a deadline (options::job_deadline from started_at);
// - transactionTime becomes the next _since only after every file has been
//   applied (`store_since` comes after the last `apply`);
// - once a status URL exists every end goes through DELETE on it (release
//   after success, cancel otherwise; Epic runs one export per client and
//   group, so a forgotten one blocks the next); 404 to it is fine.
// - the bearer token goes only to the FHIR base's origin: a status URL or
//   file URL on another origin is requested without it (Oracle Health sends
//   file URLs on another host), and files only when requiresAccessToken.
//
// What is persisted is bulk_job_record, a plain struct, kept in vault.db by
// sync/bulk_store. The shell writes it when told (`persist`), marks a file
// applied after that file's rows have committed (`apply`; the rows are in
// headache.db, so the two are ordered rather than one transaction, and a
// crash in between re-applies one file, which upserts make harmless: see
// bulk_store.hpp), and stores the cursor with since_stored in one
// transaction (`store_since`).
//
// What no machine can close: a crash after the server accepted the kick-off
// and before the record was written leaves an export the next job cannot
// see, so that job kicks off again (the server's copy expires on its own;
// at Epic the new kick-off may be refused until then).
//
// Events that do not fit the action asked for are bugs: next() throws
// std::logic_error.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "headachemd/core/result.hpp"
#include "headachemd/sync/bulk_data.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

enum class bulk_phase {
    kickoff,      // no status URL yet: the kick-off is (re)sent
    polling,      // a status URL, no manifest yet
    downloading,  // a manifest; files being downloaded and applied
    storing,      // every file applied; transactionTime to be stored as _since
    releasing,    // DELETE on the status URL (after success, failure or cancel)
    done,
    failed,
    cancelled,
};
std::string_view to_string(bulk_phase p);

// done, failed or cancelled: the job asks for nothing more, and the EHR's
// next export is a new job.
constexpr bool ended(bulk_phase p) {
    return p == bulk_phase::done || p == bulk_phase::failed || p == bulk_phase::cancelled;
}

// What survives a restart.
struct bulk_job_record {
    bulk_phase phase = bulk_phase::kickoff;
    std::string kickoff_url;  // the request's URL; its origin is the FHIR base's
    sys_time started_at{};    // the job deadline counts from here
    std::optional<std::string> status_url;
    std::string status_origin;           // origin of status_url (http::origin::to_string)
    bool status_on_fhir_origin = false;  // the bearer may go to the status URL
    std::optional<bulk_manifest> manifest;
    std::set<std::size_t> applied;  // indexes into manifest->files
    bool since_stored = false;
    std::string progress;          // the last X-Progress, sanitized
    std::optional<error> failure;  // why the job fails (kept through the release)
    bool cancel_requested = false;
    bool operator==(const bulk_job_record&) const = default;
};

// A new job's record.
bulk_job_record new_bulk_record(std::string kickoff_url, sys_time now);

// ---- events ------------------------------------------------------------------

// The answer to the request the last action asked for (kick-off, poll,
// download, release), reduced to what the rules read. `body` matters for a
// poll's 200 (the manifest) and for 4xx/5xx (an OperationOutcome); the
// shell bounds it.
struct http_answer {
    int status = 0;
    std::optional<std::string> content_location;
    std::optional<std::string> retry_after;
    std::optional<std::string> x_progress;
    std::string body;
};
// The request got no answer (lib/http's errc: connect, timeout, reset, …).
struct transport_failed {
    error failure;
};
struct persisted {};
// The record could not be written (the store failed). The job does not go
// on unrecorded: it cancels the server's export and fails.
struct persist_failed {
    error failure;
};
struct file_downloaded {
    std::size_t file = 0;
};
struct file_applied {
    std::size_t file = 0;
};
struct apply_failed {
    std::size_t file = 0;
    error failure;
};
struct since_stored {};
// `export --cancel`, or the daemon giving the job up.
struct cancel_requested {};

using bulk_event = std::variant<http_answer, transport_failed, persisted, persist_failed, file_downloaded,
                                file_applied, apply_failed, since_stored, cancel_requested>;

// ---- actions -----------------------------------------------------------------

struct bulk_action {
    enum class kind {
        send_kickoff,  // GET url (the kick-off request) at or after `at`
        persist,       // write record() durably, then report persisted
        poll,          // GET url (the status URL) at or after `at`
        download,      // GET url (file `file`) at or after `at`
        apply,         // apply file `file`, then mark it applied (order: bulk_store.hpp)
        store_since,   // store `since` as the next _since; mark since_stored in the same transaction
        release,       // DELETE url (the status URL) at or after `at`
        done,
        failed,     // `failure` says why
        cancelled,  // ended by cancel_requested
    };
    kind what = kind::send_kickoff;
    sys_time at{};
    std::string url;
    bool bearer = false;       // the Authorization header may go with this request
    bool fresh_token = false;  // a 401 came back: acquire a new access token first
    std::size_t file = 0;
    std::string since;
    std::optional<error> failure;
    // done, failed, cancelled: the DELETE was answered 2xx or 404 (false
    // when none was sent or the server kept failing it).
    bool released = false;
};

class bulk_job {
public:
    struct options {
        std::chrono::seconds max_retry_after{std::chrono::hours(1)};  // the largest wait a server gets
        std::chrono::seconds min_poll_interval{5};                    // Retry-After: 0 is not a tight loop
        std::chrono::seconds first_poll_after{10};                    // no Retry-After: 10 s, 20 s, 40 s …
        std::chrono::seconds poll_backoff_cap{std::chrono::minutes(10)};
        std::chrono::seconds job_deadline{std::chrono::hours(24 * 3)};
        int max_poll_errors = 10;            // transient errors in a row while polling
        int max_attempts = 5;                // per kick-off, file and release
        std::chrono::seconds retry_base{1};  // kick-off, file and release retries: 1 s, 2 s, 4 s …
        manifest_limits manifest;
    };

    // A new job (new_bulk_record) or one read back after a restart.
    bulk_job(options o, bulk_job_record record);

    // The first action: a new job kicks off; a resumed one polls at once
    // (with a status URL), downloads the first file not yet applied, stores
    // _since, releases, or repeats its end. Never a kick-off when the record
    // has a status URL.
    bulk_action start(sys_time now);

    // The outcome of the last action.
    bulk_action next(const bulk_event& e, sys_time now);

    const bulk_job_record& record() const { return rec_; }
    bulk_phase phase() const { return rec_.phase; }

private:
    enum class awaiting { nothing, kickoff, persist, poll, download, apply, since, release };

    bulk_action on_kickoff(const bulk_event& e, sys_time now);
    bulk_action on_poll(const bulk_event& e, sys_time now);
    bulk_action on_poll_answer(const http_answer& a, sys_time now);
    bulk_action on_manifest(const http_answer& a, sys_time now);
    bulk_action on_download(const bulk_event& e, sys_time now);
    bulk_action on_release(const bulk_event& e, sys_time now);
    bulk_action on_persisted(sys_time now);
    bulk_action on_persist_failed(const error& e, sys_time now);

    bulk_action send_kickoff(sys_time at);
    bulk_action poll_at(sys_time at);
    std::optional<std::size_t> next_file() const;
    bulk_action download_next(sys_time now);
    bulk_action download(std::size_t file, sys_time at);
    bulk_action release(sys_time at);
    bulk_action fail(error e, sys_time now);
    bulk_action finish(bool released);
    bulk_action persist();

    std::chrono::seconds poll_wait(const std::optional<std::string>& retry_after, bool back_off,
                                   sys_time now);
    std::chrono::seconds retry_wait(const std::optional<std::string>& retry_after, int attempt,
                                    sys_time now) const;
    bool past_deadline(sys_time t) const;
    bool same_origin_as_fhir(std::string_view url) const;
    std::optional<bulk_action> unauthorized(bool bearer, const char* what, sys_time now);

    options opts_;
    bulk_job_record rec_;
    awaiting awaiting_ = awaiting::nothing;
    bulk_action last_{};      // the request in flight, to resend
    int attempts_ = 0;        // kick-off, current file, or release
    int poll_errors_ = 0;     // transient poll errors in a row
    int poll_backoff_ = 0;    // polls waited without Retry-After (the exponent)
    bool refreshed_ = false;  // a fresh token was asked for the request in flight
    sys_time first_poll_at_{};
};

}  // namespace headachemd::sync
