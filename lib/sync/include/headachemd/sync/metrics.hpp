// What `status` and the Prometheus /metrics endpoint say about the daemon:
// each patient's state, and running totals per EHR.
//
// Contract
// - Pure: no I/O, no clock reads; the daemon gathers the facts (vault,
//   sync_status, the engine's counters) and calls these functions.
// - Labels carry EHR names, states and HTTP statuses only, never a patient
//   key: bounded cardinality, and nothing about a person reaches a scraper.
// - render_prometheus writes the text exposition format 0.0.4
//   (https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and
//   TYPE once per family, label values escaped, histogram buckets cumulative
//   with le="+Inf", counters never decreasing while the process lives.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/http/listener.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/backend_jwks.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/policy.hpp"

namespace headachemd::sync {

// One listed patient, as `status` and the patients gauge see them.
enum class patient_state {
    ok,            // the last job succeeded
    failing,       // the last job failed; the daemon retries
    needs_reauth,  // the EHR refused the refresh token: enroll again
    not_enrolled,  // listed in the config, no token in the vault
    pending,       // enrolled, waiting for its first job (not a problem)
};
inline constexpr std::array<patient_state, 5> all_patient_states{
    patient_state::ok, patient_state::failing, patient_state::needs_reauth, patient_state::not_enrolled,
    patient_state::pending};

// "ok", "failing", "needs_reauth", "not_enrolled", "pending".
std::string_view to_string(patient_state s);

// What the vault and sync_status hold about one listed patient.
struct patient_facts {
    bool enrolled = false;
    bool needs_reauth = false;
    std::string token_obtained_at;           // the vault's text; "" when not enrolled
    std::optional<store::status_row> whole;  // its "*" row of sync_status
    std::string needs_reauth_reason{};       // the vault's: invalid_grant, interrupted_refresh, or ""
};

struct patient_health {
    patient_state state = patient_state::pending;
    std::optional<sys_time> token_lapse;  // nullopt: the EHR's refresh_token_lifetime is unknown
    bool lapsing = false;                 // lapses within the EHR's keepalive_before
    // With state needs_reauth: why ("invalid_grant", "interrupted_refresh",
    // or "unknown" for a mark an older binary set).
    std::string reauth_reason;
    // A monitoring check should look at this patient: a failing job, a
    // refused token, no token, or a token about to lapse. Waiting for the
    // first job is not a problem.
    bool needs_attention() const {
        return (state != patient_state::ok && state != patient_state::pending) || lapsing;
    }
};

// `ehr` may be null (an EHR no longer configured): no lapse is computed.
patient_health assess_patient(const patient_facts& f, const config::ehr_settings* ehr, sys_time now);

// Job durations in seconds. Buckets from half a second (a patient with
// nothing new at a fast server) to an hour (eCW's 250 calls a minute and a
// long history).
struct duration_histogram {
    static constexpr std::array<double, 10> bounds{0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
    std::array<std::uint64_t, bounds.size()> in_bucket{};  // not cumulative; above the last: count − Σ
    std::uint64_t count = 0;
    double sum = 0;

    void observe(double seconds);
};

struct ehr_metrics {
    ehr_counters http;  // requests by status, transport errors, token refreshes
    std::uint64_t rows_written = 0;
    duration_histogram job_seconds;
    std::map<patient_state, int> patients;  // every state present, 0 when none
    int tokens_lapsing = 0;
    // Patients who must enroll again, by reason (invalid_grant and
    // interrupted_refresh always present).
    std::map<std::string, int, std::less<>> needs_reauth_by_reason;
    // The end of the EHR's last rate-limit hold beyond max_retry_after
    // (engine_counters::rate_limited_until); nullopt: none since start.
    std::optional<sys_time> rate_limited_until;
};

// One EHR's Bulk Data exports (issue 15), as the daemon saw them since it
// started; the phase is the job's now (the vault's record).
struct bulk_metrics {
    std::string phase = "none";  // to_string(bulk_phase), or "none" before any job
    std::size_t files_total = 0;
    std::size_t files_applied = 0;
    std::uint64_t done = 0, failed = 0, cancelled = 0;  // exports ended since start
    std::uint64_t requests = 0;                         // calls of those exports, /token included
};

struct metrics_snapshot {
    bool scheduler_running = false;
    std::map<std::string, ehr_metrics, std::less<>> ehrs;
    std::map<std::string, bulk_metrics, std::less<>> bulk;  // EHRs with [ehr.bulk]
};

// The daemon's running totals. Counters must not go down while the process
// lives, and the engine (with its counters) is replaced on every SIGHUP
// reload: retire_engine folds the old one in first.
class metrics_registry {
public:
    void record_job(const patient_result& p);
    void retire_engine(const engine_counters& old);

    // `ehr_names`: every configured EHR (each gets a series, zeros included);
    // `patients`: (EHR name, health) for every listed patient.
    metrics_snapshot collect(const engine_counters& live, const std::vector<std::string>& ehr_names,
                             const std::vector<std::pair<std::string, patient_health>>& patients,
                             bool scheduler_running) const;

private:
    std::map<std::string, ehr_counters, std::less<>> retired_;
    std::map<std::string, std::uint64_t, std::less<>> rows_;
    std::map<std::string, duration_histogram, std::less<>> durations_;
};

// A label value per the exposition format: \ → \\, " → \", newline → \n.
std::string escape_label_value(std::string_view v);

std::string render_prometheus(const metrics_snapshot& m);

inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// The metrics listener's answer: GET /metrics → the text above; GET
// /healthz → 200 "ok" while the scheduler loop runs, else 503; GET
// /.well-known/jwks.json → the backend keys' public JWK Set (built at
// start-up), or 404 saying no backend key is configured; anything else
// 404. `snapshot` is called only for /metrics.
http::outgoing_response answer_metrics_request(std::string_view target, bool scheduler_running,
                                               const std::function<metrics_snapshot()>& snapshot,
                                               const backend_jwks& jwks);

}  // namespace headachemd::sync
