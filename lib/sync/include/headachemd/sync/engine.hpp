// The sync engine: for each enrolled patient, keep an access token fresh
// and pull the configured resource types page by page into headache.db.
//
// Data flow (DESIGN.md): token manager → FHIR search and paging →
// normalizer → one write transaction per page (rows + cursor) → status.
//
// Contract
// - Runs on one executor (a single-threaded io_context); not thread-safe.
// - Every network call goes through the http::transport given, under the
//   EHR's rate limit, with the deadlines of the transport.
// - A bearer token is only ever sent to the origin of the EHR's fhir_base:
//   a next link to another origin fails the job before anything is sent.
// - A rotated refresh token is written to the vault (fsynced) before the
//   new access token is used. invalid_grant marks the patient needs_reauth;
//   other patients go on.
// - One refresher per patient across processes: a refresh holds the
//   patient's refresh lock (store::refresh_locks) from reading the stored
//   token to storing the rotated one, and reads the token again once it
//   holds the lock. invalid_grant for a token the vault no longer holds
//   (another refresher rotated it) is not a reason for needs_reauth: the
//   stored token is used instead.
// - Nothing from a rejected page is written. Pages already committed stay;
//   the next run repeats them harmlessly (upserts).
// - Each job is a failure boundary: an exception thrown inside one patient's
//   job fails that patient (sync_status, audit event, pass_result), never
//   the pass or the other patients.
// - What a server sends is bounded: a Retry-After beyond the EHR's
//   max_retry_after ends its jobs as rate-limited (patient_result::retry_at)
//   instead of sleeping; a search stops after max_pages_per_search pages, a
//   job after max_resources_per_patient resources.
// - stop(): no new requests; a job stops at the next page boundary. A
//   write transaction never spans an await, so there is never a half page.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/refresh_lock.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

struct type_result {
    std::string type;
    int pages = 0;
    int inserted = 0, updated = 0, unchanged = 0, deleted = 0;
    bool incremental = false;
    bool not_permitted = false;  // 403 for this type
    bool not_served = false;     // the server does not offer this type
    std::optional<error> failure;
    int count_checks = 0;  // _summary=count requests (delete detection, count_check_every)
};

struct patient_result {
    std::string patient_key, ehr;
    bool ok = false;
    bool needs_reauth = false;
    // Why, when needs_reauth: "invalid_grant", "interrupted_refresh", or
    // empty (marked by an older binary).
    std::string needs_reauth_reason;
    bool skipped = false;  // not enrolled, or already needs_reauth
    std::optional<error> failure;
    std::vector<type_result> types;
    // The EHR asked for a wait longer than its max_retry_after (failure
    // code "rate_limited"): no request to it before this time. `run`
    // starts the job again then; sync-once reports it and exits 75.
    std::optional<std::chrono::system_clock::time_point> retry_at;
    // Wall time of the job on the engine's steady clock (metrics).
    std::chrono::steady_clock::duration elapsed{};
    int rows_changed() const;
    // The job failed (needs_reauth included; a skip for another reason is
    // not a failure): what pass_result::failed() counts.
    bool failed() const;
};

struct pass_result {
    std::vector<patient_result> patients;
    int failed() const;  // jobs that failed (needs_reauth included)
    int succeeded() const;
};

struct engine_options {
    backoff_policy backoff;
    bool store_raw = false;
    std::function<std::uint64_t()> random;  // default: a seeded std::mt19937_64
    // Called after each patient's job in run_pass/run_patients, on the
    // engine's executor (the daemon's STATUS= progress lines). Optional.
    std::function<void(const patient_result&)> on_patient_done;
    // false: the pass_result of run_pass/run_patients keeps each patient's
    // outcome without its per-type details (`types` empty, so rows_changed()
    // is 0 there); on_patient_done still sees the whole result. A daemon
    // that reads the details in on_patient_done need not hold them (about a
    // kilobyte per patient, 10 MB at 10,000 patients) until the pass ends.
    bool pass_details = true;
    // The per-patient refresh lock. nullptr: the engine opens
    // store::file_refresh_locks beside the vault ("<vault>.refresh.lock"),
    // which is what excludes other processes; tests inject contention here.
    std::shared_ptr<store::refresh_locks> refresh_locks;
    // While another holder has a patient's refresh lock, try again every
    // refresh_lock_poll, at most refresh_lock_wait in all (nullopt: twice the
    // EHR's http_timeout plus 30 s, about one token request of the other
    // holder with its retries); then the job fails with a message naming
    // the other process, and the patient is not marked needs_reauth.
    std::chrono::milliseconds refresh_lock_poll{50};
    std::optional<std::chrono::milliseconds> refresh_lock_wait;
    // The timer seam (issue 18). nullptr: each wait (backoff after a
    // failure, a wait a 429/503 asked for, the rate limiter, refresh-lock
    // polling) is an asio::steady_timer. Set: it is called, on the engine's
    // executor, with each wait longer than zero instead of sleeping, and
    // the wait counts as done when it returns. A test with a manual_clock
    // records the waits and advances its clock by them, so backoff is
    // asserted by value and takes no real time.
    std::function<void(std::chrono::nanoseconds)> on_wait;
    // Per [[ehr]] name: the request budget to take from, shared with the
    // daemon's Bulk Data exports of that EHR (eClinicalWorks counts every
    // call of the practice, /token included). Missing: the engine makes its
    // own from requests_per_minute.
    std::map<std::string, std::shared_ptr<rate_limiter>> limiters;
    // Extra CA files are the transport's business; client secrets are read
    // from the files the config names, when the engine is built.
};

// Per EHR, for /metrics. Keys are EHR names, never patient keys.
struct ehr_counters {
    std::map<int, std::uint64_t> responses;   // HTTP status → responses received
    std::uint64_t transport_errors = 0;       // requests sent that got no response
    std::uint64_t refresh_ok = 0;             // refresh_token grants that succeeded
    std::uint64_t refresh_invalid_grant = 0;  // … refused: the patient needs re-enrollment
    std::uint64_t refresh_failed = 0;         // … failed otherwise (network, 5xx, bad answer)
    // Of refresh_invalid_grant: refused after a refresh of the same token
    // was interrupted (a process died with the request in flight).
    std::uint64_t refresh_interrupted = 0;
    std::uint64_t access_token_reused = 0;  // jobs that used a stored access token instead of refreshing

    void add(const ehr_counters& other);
};

struct engine_counters {
    int requests = 0;        // HTTP requests sent (token and FHIR)
    int token_requests = 0;  // of which to the token endpoint
    int http_429 = 0;
    int refused_origin = 0;  // next links to another origin that were refused
    std::map<std::string, ehr_counters, std::less<>> by_ehr;
    // Refresh windows (issue 17): from sending a refresh_token grant to its
    // answer being durable in the vault, for the refreshes that succeeded.
    std::int64_t refresh_windows = 0;
    std::int64_t refresh_window_total_us = 0;
    std::int64_t refresh_window_max_us = 0;
    // Per EHR: the end of a rate-limit hold beyond max_retry_after (a gauge
    // for /metrics; the time may be past once the hold is over).
    std::map<std::string, std::chrono::system_clock::time_point, std::less<>> rate_limited_until;
};

class engine {
public:
    // Throws std::runtime_error when a configured secret file cannot be
    // read, or a private_key_jwt key file is unreadable or of a type that
    // cannot sign RS384/ES384 (the message names the file).
    engine(boost::asio::any_io_executor ex, const config::config& cfg, http::transport& http,
           store::analytics_db& db, store::vault& vault, const clock& clk,
           std::shared_ptr<spdlog::logger> log, engine_options opts = {});
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // Every patient listed in the config and enrolled in the vault, once,
    // with each EHR's max_concurrent jobs at a time.
    boost::asio::awaitable<pass_result> run_pass();

    // The given patients (key, ehr) once, with the same concurrency limits.
    boost::asio::awaitable<pass_result> run_patients(
        std::vector<std::pair<std::string, std::string>> patients);

    boost::asio::awaitable<patient_result> sync_patient(std::string patient_key, std::string ehr);

    void stop();
    bool stopping() const;
    const engine_counters& counters() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace headachemd::sync
