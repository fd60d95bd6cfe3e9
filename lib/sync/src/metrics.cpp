#include "headachemd/sync/metrics.hpp"

#include <fmt/format.h>

namespace headachemd::sync {

std::string_view to_string(patient_state s) {
    switch (s) {
        case patient_state::ok:
            return "ok";
        case patient_state::failing:
            return "failing";
        case patient_state::needs_reauth:
            return "needs_reauth";
        case patient_state::not_enrolled:
            return "not_enrolled";
        case patient_state::pending:
            return "pending";
    }
    return "failing";
}

patient_health assess_patient(const patient_facts& f, const config::ehr_settings* ehr, sys_time now) {
    patient_health h;
    if (!f.enrolled) {
        h.state = patient_state::not_enrolled;
        return h;
    }
    // The vault's flag is the truth: it is set where invalid_grant is seen.
    if (f.needs_reauth) {
        h.state = patient_state::needs_reauth;
        h.reauth_reason = f.needs_reauth_reason.empty() ? "unknown" : f.needs_reauth_reason;
    } else if (!f.whole || !f.whole->last_attempt_at)
        h.state = patient_state::pending;
    else if (f.whole->last_error)
        h.state = patient_state::failing;
    else
        h.state = patient_state::ok;
    // A patient who must enroll again has no token left to lapse or keep
    // alive; the state says so already.
    if (ehr && !f.needs_reauth) {
        h.token_lapse = refresh_token_lapse(f.token_obtained_at, ehr->refresh_token_lifetime);
        h.lapsing = lapses_within(h.token_lapse, ehr->keepalive_before, now);
    }
    return h;
}

void duration_histogram::observe(double seconds) {
    ++count;
    sum += seconds;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (seconds <= bounds[i]) {
            ++in_bucket[i];
            return;
        }
    }
}

void metrics_registry::record_job(const patient_result& p) {
    rows_[p.ehr] += static_cast<std::uint64_t>(std::max(0, p.rows_changed()));
    durations_[p.ehr].observe(std::chrono::duration<double>(p.elapsed).count());
}

void metrics_registry::retire_engine(const engine_counters& old) {
    for (const auto& [ehr, c] : old.by_ehr) retired_[ehr].add(c);
}

metrics_snapshot metrics_registry::collect(
    const engine_counters& live, const std::vector<std::string>& ehr_names,
    const std::vector<std::pair<std::string, patient_health>>& patients, bool scheduler_running) const {
    metrics_snapshot m;
    m.scheduler_running = scheduler_running;
    for (const auto& name : ehr_names) {
        auto& e = m.ehrs[name];
        for (auto s : all_patient_states) e.patients[s] = 0;
        e.needs_reauth_by_reason = {{"interrupted_refresh", 0}, {"invalid_grant", 0}};
    }
    // Totals of EHRs since removed from the config stay: a counter that
    // vanished would read as a reset.
    auto ehr = [&m](const std::string& name) -> ehr_metrics& {
        auto it = m.ehrs.find(name);
        if (it != m.ehrs.end()) return it->second;
        auto& e = m.ehrs[name];
        for (auto s : all_patient_states) e.patients[s] = 0;
        e.needs_reauth_by_reason = {{"interrupted_refresh", 0}, {"invalid_grant", 0}};
        return e;
    };
    for (const auto& [name, c] : retired_) ehr(name).http.add(c);
    for (const auto& [name, c] : live.by_ehr) ehr(name).http.add(c);
    for (const auto& [name, until] : live.rate_limited_until) ehr(name).rate_limited_until = until;
    for (const auto& [name, n] : rows_) ehr(name).rows_written = n;
    for (const auto& [name, h] : durations_) ehr(name).job_seconds = h;
    for (const auto& [name, health] : patients) {
        auto& e = ehr(name);
        ++e.patients[health.state];
        if (health.state == patient_state::needs_reauth) ++e.needs_reauth_by_reason[health.reauth_reason];
        if (health.lapsing) ++e.tokens_lapsing;
    }
    return m;
}

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

namespace {

// The le label of each bucket, written out so that no float formatting
// decides what a scraper sees.
constexpr std::array<std::string_view, duration_histogram::bounds.size()> bucket_labels{
    "0.5", "1", "2.5", "5", "10", "30", "60", "300", "900", "3600"};

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Requests to the EHR and its rate limiting.
void render_http_families(std::string& out, const metrics_snapshot& m) {
    family(out, "headachemd_sync_http_requests_total", "counter",
           "Requests sent to the EHR (token and FHIR), by HTTP status; status=\"error\": no response "
           "(timeout, reset, TLS).");
    for (const auto& [name, e] : m.ehrs) {
        const std::string ehr = escape_label_value(name);
        for (const auto& [status, n] : e.http.responses)
            out += fmt::format("headachemd_sync_http_requests_total{{ehr=\"{}\",status=\"{}\"}} {}\n", ehr,
                               status, n);
        if (e.http.transport_errors > 0)
            out += fmt::format("headachemd_sync_http_requests_total{{ehr=\"{}\",status=\"error\"}} {}\n", ehr,
                               e.http.transport_errors);
    }

    family(out, "headachemd_sync_rate_limited_total", "counter",
           "429 Too Many Requests answers from the EHR (eClinicalWorks: 250 calls a minute per practice).");
    for (const auto& [name, e] : m.ehrs) {
        const auto it = e.http.responses.find(429);
        out += fmt::format("headachemd_sync_rate_limited_total{{ehr=\"{}\"}} {}\n", escape_label_value(name),
                           it == e.http.responses.end() ? 0 : it->second);
    }

    family(out, "headachemd_sync_rate_limited_until_seconds", "gauge",
           "Unix time until which the EHR asked not to be called (a Retry-After beyond max_retry_after); "
           "its jobs end as rate-limited and run again then. 0: no such hold since start.");
    for (const auto& [name, e] : m.ehrs) {
        const long long until =
            e.rate_limited_until
                ? std::chrono::duration_cast<std::chrono::seconds>(e.rate_limited_until->time_since_epoch())
                      .count()
                : 0;
        out += fmt::format("headachemd_sync_rate_limited_until_seconds{{ehr=\"{}\"}} {}\n",
                           escape_label_value(name), until);
    }
}

// Token refreshes, rows written and job durations.
void render_sync_families(std::string& out, const metrics_snapshot& m) {
    family(out, "headachemd_sync_token_refreshes_total", "counter",
           "refresh_token grants by outcome: ok, invalid_grant (the patient must enroll again), "
           "interrupted_refresh (refused after a refresh of the same token was interrupted: the patient must "
           "enroll again), failed.");
    for (const auto& [name, e] : m.ehrs) {
        const std::string ehr = escape_label_value(name);
        out += fmt::format("headachemd_sync_token_refreshes_total{{ehr=\"{}\",outcome=\"ok\"}} {}\n", ehr,
                           e.http.refresh_ok);
        out +=
            fmt::format("headachemd_sync_token_refreshes_total{{ehr=\"{}\",outcome=\"invalid_grant\"}} {}\n",
                        ehr, e.http.refresh_invalid_grant - e.http.refresh_interrupted);
        out += fmt::format(
            "headachemd_sync_token_refreshes_total{{ehr=\"{}\",outcome=\"interrupted_refresh\"}} {}\n", ehr,
            e.http.refresh_interrupted);
        out += fmt::format("headachemd_sync_token_refreshes_total{{ehr=\"{}\",outcome=\"failed\"}} {}\n", ehr,
                           e.http.refresh_failed);
    }

    family(out, "headachemd_sync_rows_written_total", "counter",
           "Rows inserted, updated or marked deleted in headache.db.");
    for (const auto& [name, e] : m.ehrs)
        out += fmt::format("headachemd_sync_rows_written_total{{ehr=\"{}\"}} {}\n", escape_label_value(name),
                           e.rows_written);

    family(out, "headachemd_sync_job_duration_seconds", "histogram", "Duration of one patient's sync job.");
    for (const auto& [name, e] : m.ehrs) {
        const std::string ehr = escape_label_value(name);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < bucket_labels.size(); ++i) {
            cumulative += e.job_seconds.in_bucket[i];
            out += fmt::format("headachemd_sync_job_duration_seconds_bucket{{ehr=\"{}\",le=\"{}\"}} {}\n",
                               ehr, bucket_labels[i], cumulative);
        }
        out += fmt::format("headachemd_sync_job_duration_seconds_bucket{{ehr=\"{}\",le=\"+Inf\"}} {}\n", ehr,
                           e.job_seconds.count);
        out += fmt::format("headachemd_sync_job_duration_seconds_sum{{ehr=\"{}\"}} {:.6f}\n", ehr,
                           e.job_seconds.sum);
        out += fmt::format("headachemd_sync_job_duration_seconds_count{{ehr=\"{}\"}} {}\n", ehr,
                           e.job_seconds.count);
    }
}

// The listed patients by state, and the ones whose tokens need attention.
void render_patient_families(std::string& out, const metrics_snapshot& m) {
    family(out, "headachemd_sync_patients", "gauge",
           "Listed patients by state: ok, failing, needs_reauth, not_enrolled, pending.");
    for (const auto& [name, e] : m.ehrs) {
        const std::string ehr = escape_label_value(name);
        for (const auto& [state, n] : e.patients)
            out += fmt::format("headachemd_sync_patients{{ehr=\"{}\",state=\"{}\"}} {}\n", ehr,
                               to_string(state), n);
    }

    family(out, "headachemd_sync_patients_needing_reauth", "gauge",
           "Listed patients who must enroll again, by reason: invalid_grant (the EHR refused the token), "
           "interrupted_refresh (refused after a refresh that never finished here), unknown (marked by an "
           "older version).");
    for (const auto& [name, e] : m.ehrs) {
        const std::string ehr = escape_label_value(name);
        for (const auto& [reason, n] : e.needs_reauth_by_reason)
            out += fmt::format("headachemd_sync_patients_needing_reauth{{ehr=\"{}\",reason=\"{}\"}} {}\n",
                               ehr, escape_label_value(reason), n);
    }

    family(out, "headachemd_sync_refresh_tokens_lapsing", "gauge",
           "Enrolled patients whose refresh token lapses within keepalive_before: the keep-alive did not "
           "renew it.");
    for (const auto& [name, e] : m.ehrs)
        out += fmt::format("headachemd_sync_refresh_tokens_lapsing{{ehr=\"{}\"}} {}\n",
                           escape_label_value(name), e.tokens_lapsing);
}

// Bulk Data exports: the job's phase as a state set, its files, and the
// ends and calls since start.
void render_bulk_families(std::string& out, const metrics_snapshot& m) {
    if (m.bulk.empty()) return;
    static constexpr std::array<std::string_view, 9> phases{
        "none", "kickoff", "polling", "downloading", "storing", "releasing", "done", "failed", "cancelled"};
    family(
        out, "headachemd_sync_bulk_phase", "gauge",
        "The phase of the EHR's Bulk Data export job (1 for the current one): none before any job, kickoff, "
        "polling, downloading, storing, releasing, done, failed, cancelled.");
    for (const auto& [name, b] : m.bulk)
        for (const auto p : phases)
            out += fmt::format("headachemd_sync_bulk_phase{{ehr=\"{}\",phase=\"{}\"}} {}\n",
                               escape_label_value(name), p, p == b.phase ? 1 : 0);
    family(out, "headachemd_sync_bulk_files", "gauge",
           "Files of the current export's manifest: total, and applied to headache.db.");
    for (const auto& [name, b] : m.bulk) {
        const std::string ehr = escape_label_value(name);
        out +=
            fmt::format("headachemd_sync_bulk_files{{ehr=\"{}\",state=\"total\"}} {}\n", ehr, b.files_total);
        out += fmt::format("headachemd_sync_bulk_files{{ehr=\"{}\",state=\"applied\"}} {}\n", ehr,
                           b.files_applied);
    }
    family(out, "headachemd_sync_bulk_exports_total", "counter",
           "Bulk Data exports ended since start, by result: done, failed, cancelled.");
    for (const auto& [name, b] : m.bulk) {
        const std::string ehr = escape_label_value(name);
        out +=
            fmt::format("headachemd_sync_bulk_exports_total{{ehr=\"{}\",result=\"done\"}} {}\n", ehr, b.done);
        out += fmt::format("headachemd_sync_bulk_exports_total{{ehr=\"{}\",result=\"failed\"}} {}\n", ehr,
                           b.failed);
        out += fmt::format("headachemd_sync_bulk_exports_total{{ehr=\"{}\",result=\"cancelled\"}} {}\n", ehr,
                           b.cancelled);
    }
    family(out, "headachemd_sync_bulk_requests_total", "counter",
           "Requests of Bulk Data exports since start (token, kick-off, polls, files, release); they count "
           "against the EHR's budget with the per-patient calls.");
    for (const auto& [name, b] : m.bulk)
        out += fmt::format("headachemd_sync_bulk_requests_total{{ehr=\"{}\"}} {}\n", escape_label_value(name),
                           b.requests);
}

}  // namespace

std::string render_prometheus(const metrics_snapshot& m) {
    std::string out;
    family(out, "headachemd_sync_scheduler_up", "gauge",
           "1 while the scheduler loop runs, 0 before it starts and while it stops.");
    out += fmt::format("headachemd_sync_scheduler_up {}\n", m.scheduler_running ? 1 : 0);

    render_http_families(out, m);
    render_sync_families(out, m);
    render_patient_families(out, m);
    render_bulk_families(out, m);
    return out;
}

http::outgoing_response answer_metrics_request(std::string_view target, bool scheduler_running,
                                               const std::function<metrics_snapshot()>& snapshot,
                                               const backend_jwks& jwks) {
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/metrics")
        return http::outgoing_response{200, std::string(prometheus_content_type),
                                       render_prometheus(snapshot())};
    if (path == "/healthz") {
        if (scheduler_running) return http::outgoing_response{200, "text/plain; charset=utf-8", "ok\n"};
        return http::outgoing_response{503, "text/plain; charset=utf-8",
                                       "the scheduler loop is not running\n"};
    }
    if (path == jwks_path) {
        // RFC 7517 §8.5 registers application/jwk-set+json, but the JWKS
        // fetchers of EHRs and OAuth libraries commonly expect
        // application/json, which the body also is.
        if (jwks.keys > 0) return http::outgoing_response{200, "application/json", jwks.body};
        return http::outgoing_response{
            404, "text/plain; charset=utf-8",
            "No backend keys are configured: no [ehr.bulk] private_key_file in the "
            "config, so there is no JWKS to publish\n"};
    }
    return http::outgoing_response{404, "text/plain; charset=utf-8", "Not found: try /metrics or /healthz\n"};
}

}  // namespace headachemd::sync
