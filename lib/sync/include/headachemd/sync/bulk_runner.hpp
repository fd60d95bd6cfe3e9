// The coroutine shell of a Bulk Data export (issue 15, items 3 and 4): it
// performs each action the pure bulk_job asks for and feeds the outcome
// back, and nothing else decides anything. One EHR, one job at a time.
//
//   send_kickoff, poll, release  → one HTTP request each (send())
//   download                     → send_streaming() into a spool file
//   apply                        → the spool file through bulk_file_apply,
//                                  then mark_bulk_file_applied (vault)
//   persist, store_since         → bulk_store.hpp
//
// Why a spool file between download and apply: applying a file is one
// headache.db write transaction (bulk_apply.hpp), and streaming a download
// into it would hold the database's write lock for as long as the server
// takes to send a gigabyte, while the per-patient passes of every EHR wait
// on it (busy_timeout) and fail. Spooled, the lock is held only as long as
// the rows take to write. The spool file lives in the daemon's private
// state directory (mode 0600: it is PHI), one at a time, and is removed
// once applied; a crash leaves one partial file that the resumed job's
// download truncates.
//
// The bearer token: sent only when the action says so (bulk_job decides:
// the FHIR base's origin, and files only when requiresAccessToken). The
// client follows no redirect on its own; this shell follows up to five for
// a poll or a file (Oracle Health answers file URLs with 307 to another
// host) and drops the Authorization header as soon as a hop leaves the
// origin the token was sent to (RFC 9110 §15.4 leaves it to the client;
// the Bulk Data IG says the token must not go elsewhere).
//
// Every request, token requests included, is taken from the EHR's
// rate_limiter first when one is given (eCW counts /token in its budget).
//
// Logs name the EHR, the phase, file indexes, counts and error codes:
// never a URL (status and file URLs can be capability URLs), a token, or a
// line of a file.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/awaitable.hpp>

#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/bulk_apply.hpp"
#include "headachemd/sync/bulk_job.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

// Waits and the rate budget of one EHR's export, as one seam: tests give
// on_wait (a manual clock advanced by each wait, no sleeping), the daemon
// leaves it empty (an asio::steady_timer).
struct bulk_pacing {
    const clock& clk;
    rate_limiter* limiter = nullptr;                        // nullptr: no budget
    std::function<void(std::chrono::nanoseconds)> on_wait;  // nullptr: really wait
    // Asked at least once a second during a real wait, and by the download
    // for each piece: true ends the wait (or the transfer) early, so a
    // stopping daemon does not sit out an hour's Retry-After. Optional.
    std::function<bool()> stopping;

    boost::asio::awaitable<void> wait(std::chrono::nanoseconds d) const;
    boost::asio::awaitable<void> wait_until(sys_time t) const;
    // Takes one call from the budget, waiting as long as it says.
    boost::asio::awaitable<void> before_call() const;
};

// SMART Backend Services access tokens for one EHR (client_credentials
// with a fresh private_key_jwt assertion each time). They last minutes and
// come without a refresh token, so a new one is asked for when the cached
// one is about to expire, or when the caller saw a 401 (`fresh`).
class backend_token_source {
public:
    backend_token_source(http::transport& http, const bulk_pacing& pacing, smart::client_credentials creds,
                         std::string token_endpoint, std::string scope,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

    // An access token; errors name the token endpoint's answer (the OAuth
    // error code or the HTTP status), never a token or the assertion.
    boost::asio::awaitable<result<std::string>> get(bool fresh);

    std::size_t requests() const { return requests_; }

private:
    http::transport& http_;
    const bulk_pacing& pacing_;
    smart::client_credentials creds_;
    std::string endpoint_;
    std::string scope_;
    std::chrono::milliseconds timeout_;
    std::optional<std::string> token_;
    sys_time renew_at_{};
    std::size_t requests_ = 0;
};

struct bulk_run_options {
    std::string ehr;  // the [[ehr]] name: the vault's job row and every row's source
    bulk_job::options job;
    std::chrono::milliseconds http_timeout{30000};  // kick-off, poll, release; a file's header
    std::filesystem::path spool_dir;                // private (0700); created if missing
    int max_redirects = 5;
};

struct bulk_run_deps {
    http::transport& http;
    store::vault& vault;
    bulk_applier& applier;
    backend_token_source& tokens;
    const bulk_pacing& pacing;
    std::shared_ptr<spdlog::logger> log;
    // Asked between actions: true leaves the job where it is (persisted,
    // resumable) and returns; the daemon stopping. Optional.
    std::function<bool()> stopping;
    // After each action, for status lines. Optional.
    std::function<void(const bulk_job_record&)> on_progress;
};

struct bulk_run_counts {
    std::size_t token = 0;
    std::size_t kickoff = 0;
    std::size_t poll = 0;
    std::size_t download = 0;  // redirect hops included
    std::size_t release = 0;
    std::size_t total() const { return token + kickoff + poll + download + release; }
};

struct bulk_run_result {
    bulk_action end;  // done, failed or cancelled; `what` = persist when stopped early
    bool stopped = false;
    bool resumed = false;  // the vault held an unfinished job, and this continued it
    bulk_job_record record;
    std::vector<bulk_apply_report> files;  // files applied by this run, in order
    bulk_run_counts calls;
};

// Runs the EHR's export to its end. A job left unfinished in the vault is
// resumed (never kicked off again); otherwise a new one kicks off at
// `kickoff_url` (build_kickoff). The final record is saved, so `status`
// shows the last job and the next run starts a new one. Throws only for
// bugs and for a vault that cannot be read.
boost::asio::awaitable<bulk_run_result> run_bulk_export(bulk_run_deps deps, bulk_run_options opts,
                                                        std::string kickoff_url);

}  // namespace headachemd::sync
