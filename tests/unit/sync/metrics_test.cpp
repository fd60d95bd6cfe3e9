// Patient states for `status` and /metrics, and the Prometheus text
// rendering (exposition format 0.0.4), without sockets.
#include <gtest/gtest.h>

#include "headachemd/core/clock.hpp"
#include "headachemd/sync/metrics.hpp"

namespace {

namespace cfg = headachemd::config;
namespace st = headachemd::store;
namespace sy = headachemd::sync;
using namespace std::chrono;
using namespace std::chrono_literals;

const sy::sys_time day0 = sy::sys_time{sys_days{2026y / 1 / 1}};

st::status_row whole_row(std::optional<std::string> error) {
    st::status_row r;
    r.source = "ecw";
    r.patient_key = "hmd-1";
    r.resource_type = "*";
    r.last_attempt_at = "2026-01-01T00:00:00Z";
    r.last_error = std::move(error);
    return r;
}

// The number after `series ` on its own line, or -1 when the line is absent.
double sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

TEST(PatientHealth, StatesFollowTheVaultThenTheLastJob) {
    // Setup: eCW's 90-day tokens and 14-day window.
    headachemd::manual_clock clk(day0 + 10 * 24h);
    cfg::ehr_settings ecw = *cfg::profile_preset("eclinicalworks");
    const std::string fresh = "2026-01-01T00:00:00Z";

    // Run + Check
    EXPECT_EQ(sy::assess_patient({}, &ecw, clk.now()).state, sy::patient_state::not_enrolled);
    const auto pending = sy::assess_patient({true, false, fresh, std::nullopt}, &ecw, clk.now());
    EXPECT_EQ(pending.state, sy::patient_state::pending);
    EXPECT_FALSE(pending.needs_attention());  // waiting for the first job is not a problem
    EXPECT_TRUE(sy::assess_patient({}, &ecw, clk.now()).needs_attention());
    st::status_row scheduled_only;  // set_next_run made it; no attempt yet
    scheduled_only.next_run_at = "2026-01-02T00:00:00Z";
    EXPECT_EQ(sy::assess_patient({true, false, fresh, scheduled_only}, &ecw, clk.now()).state,
              sy::patient_state::pending);
    const auto ok = sy::assess_patient({true, false, fresh, whole_row(std::nullopt)}, &ecw, clk.now());
    EXPECT_EQ(ok.state, sy::patient_state::ok);
    EXPECT_FALSE(ok.needs_attention());
    EXPECT_EQ(ok.token_lapse, day0 + 90 * 24h);
    EXPECT_EQ(sy::assess_patient({true, false, fresh, whole_row("boom")}, &ecw, clk.now()).state,
              sy::patient_state::failing);
    const auto reauth = sy::assess_patient({true, true, fresh, whole_row(std::nullopt)}, &ecw, clk.now());
    EXPECT_EQ(reauth.state, sy::patient_state::needs_reauth);
    EXPECT_TRUE(reauth.needs_attention());
    EXPECT_FALSE(reauth.token_lapse);  // the refused token has no lifetime left to show

    // 80 days on, the token lapses within 14 days: attention, though the job is fine.
    clk.advance(70 * 24h);
    const auto lapsing = sy::assess_patient({true, false, fresh, whole_row(std::nullopt)}, &ecw, clk.now());
    EXPECT_EQ(lapsing.state, sy::patient_state::ok);
    EXPECT_TRUE(lapsing.lapsing);
    EXPECT_TRUE(lapsing.needs_attention());

    // Unknown lifetime (generic preset): no lapse, never lapsing.
    cfg::ehr_settings generic = *cfg::profile_preset("generic");
    const auto unknown =
        sy::assess_patient({true, false, fresh, whole_row(std::nullopt)}, &generic, clk.now());
    EXPECT_FALSE(unknown.token_lapse);
    EXPECT_FALSE(unknown.lapsing);
}

TEST(Metrics, LabelValuesAreEscapedPerTheExpositionFormat) {
    EXPECT_EQ(sy::escape_label_value("ecw"), "ecw");
    EXPECT_EQ(sy::escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    sy::metrics_snapshot m;
    m.ehrs["we\"ird"].rows_written = 3;
    const auto text = sy::render_prometheus(m);
    EXPECT_NE(text.find("headachemd_sync_rows_written_total{ehr=\"we\\\"ird\"} 3\n"), std::string::npos)
        << text;
}

TEST(Metrics, RendersEveryFamilyPerEhrWithCumulativeBuckets) {
    // Setup: two jobs at ecw, counters from a live engine and a retired one
    // (a SIGHUP reload), and three patients.
    sy::metrics_registry reg;
    sy::patient_result fast;
    fast.ehr = "ecw";
    fast.types.push_back({"Condition", 1, 4, 1, 0, 0, false, false, false, std::nullopt});
    fast.elapsed = 800ms;
    sy::patient_result slow = fast;
    slow.types.clear();
    slow.elapsed = 45s;
    reg.record_job(fast);
    reg.record_job(slow);
    sy::engine_counters retired;
    retired.by_ehr["ecw"].responses[200] = 10;
    retired.by_ehr["ecw"].refresh_ok = 2;
    reg.retire_engine(retired);
    sy::engine_counters live;
    live.by_ehr["ecw"].responses[200] = 5;
    live.by_ehr["ecw"].responses[429] = 2;
    live.by_ehr["ecw"].transport_errors = 1;
    live.by_ehr["ecw"].refresh_invalid_grant = 1;
    sy::patient_health ok, reauth, lapsing;
    reauth.state = sy::patient_state::needs_reauth;
    lapsing.lapsing = true;
    lapsing.state = sy::patient_state::ok;
    ok.state = sy::patient_state::ok;

    // Run
    const auto snap =
        reg.collect(live, {"ecw", "epic"}, {{"ecw", ok}, {"ecw", reauth}, {"ecw", lapsing}}, true);
    const auto text = "\n" + sy::render_prometheus(snap);

    // Check: totals survive the reload; 429s have their own counter.
    EXPECT_EQ(sample(text, "headachemd_sync_scheduler_up"), 1);
    EXPECT_EQ(sample(text, "headachemd_sync_http_requests_total{ehr=\"ecw\",status=\"200\"}"), 15);
    EXPECT_EQ(sample(text, "headachemd_sync_http_requests_total{ehr=\"ecw\",status=\"429\"}"), 2);
    EXPECT_EQ(sample(text, "headachemd_sync_http_requests_total{ehr=\"ecw\",status=\"error\"}"), 1);
    EXPECT_EQ(sample(text, "headachemd_sync_rate_limited_total{ehr=\"ecw\"}"), 2);
    EXPECT_EQ(sample(text, "headachemd_sync_rate_limited_total{ehr=\"epic\"}"), 0);
    EXPECT_EQ(sample(text, "headachemd_sync_token_refreshes_total{ehr=\"ecw\",outcome=\"ok\"}"), 2);
    EXPECT_EQ(sample(text, "headachemd_sync_token_refreshes_total{ehr=\"ecw\",outcome=\"invalid_grant\"}"),
              1);
    EXPECT_EQ(sample(text, "headachemd_sync_rows_written_total{ehr=\"ecw\"}"), 5);
    // Histogram: 0.8 s falls in le=1, 45 s in le=60; buckets are cumulative.
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_bucket{ehr=\"ecw\",le=\"0.5\"}"), 0);
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_bucket{ehr=\"ecw\",le=\"1\"}"), 1);
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_bucket{ehr=\"ecw\",le=\"30\"}"), 1);
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_bucket{ehr=\"ecw\",le=\"60\"}"), 2);
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_bucket{ehr=\"ecw\",le=\"+Inf\"}"), 2);
    EXPECT_DOUBLE_EQ(sample(text, "headachemd_sync_job_duration_seconds_sum{ehr=\"ecw\"}"), 45.8);
    EXPECT_EQ(sample(text, "headachemd_sync_job_duration_seconds_count{ehr=\"ecw\"}"), 2);
    // Every state has a series, zeros included, for every configured EHR.
    EXPECT_EQ(sample(text, "headachemd_sync_patients{ehr=\"ecw\",state=\"ok\"}"), 2);
    EXPECT_EQ(sample(text, "headachemd_sync_patients{ehr=\"ecw\",state=\"needs_reauth\"}"), 1);
    EXPECT_EQ(sample(text, "headachemd_sync_patients{ehr=\"ecw\",state=\"failing\"}"), 0);
    EXPECT_EQ(sample(text, "headachemd_sync_patients{ehr=\"epic\",state=\"not_enrolled\"}"), 0);
    EXPECT_EQ(sample(text, "headachemd_sync_refresh_tokens_lapsing{ehr=\"ecw\"}"), 1);
    // HELP and TYPE once per family, before its samples.
    for (const char* fam : {"headachemd_sync_http_requests_total", "headachemd_sync_job_duration_seconds",
                            "headachemd_sync_patients"}) {
        const std::string type = "\n# TYPE " + std::string(fam) + " ";
        const auto first = text.find(type);
        ASSERT_NE(first, std::string::npos) << fam;
        EXPECT_EQ(text.find(type, first + 1), std::string::npos) << fam;
        EXPECT_LT(first, text.find("\n" + std::string(fam) + "{")) << fam;
    }
    EXPECT_NE(text.find("# TYPE headachemd_sync_job_duration_seconds histogram\n"), std::string::npos);
    EXPECT_EQ(text.back(), '\n');
}

TEST(Metrics, BulkExportsAreAStateSetFilesAndCounters) {
    sy::metrics_snapshot m;
    sy::bulk_metrics b;
    b.phase = "downloading";
    b.files_total = 7;
    b.files_applied = 3;
    b.done = 2;
    b.requests = 55;
    m.bulk["north"] = b;
    const std::string text = sy::render_prometheus(m);
    EXPECT_NE(text.find("headachemd_sync_bulk_phase{ehr=\"north\",phase=\"downloading\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("headachemd_sync_bulk_phase{ehr=\"north\",phase=\"polling\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("headachemd_sync_bulk_files{ehr=\"north\",state=\"applied\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("headachemd_sync_bulk_files{ehr=\"north\",state=\"total\"} 7\n"), std::string::npos);
    EXPECT_NE(text.find("headachemd_sync_bulk_exports_total{ehr=\"north\",result=\"done\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("headachemd_sync_bulk_requests_total{ehr=\"north\"} 55\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE headachemd_sync_bulk_exports_total counter"), std::string::npos);
    // Without [ehr.bulk] anywhere, no bulk family at all.
    EXPECT_EQ(sy::render_prometheus(sy::metrics_snapshot{}).find("bulk"), std::string::npos);
}

TEST(Metrics, NoPatientKeyEverReachesTheText) {
    sy::metrics_registry reg;
    sy::patient_result p;
    p.patient_key = "hmd-secret-key-1";
    p.ehr = "ecw";
    reg.record_job(p);
    sy::patient_health h;
    const auto text = sy::render_prometheus(reg.collect({}, {"ecw"}, {{"ecw", h}}, true));
    EXPECT_EQ(text.find("hmd-secret-key-1"), std::string::npos);
}

TEST(MetricsEndpoint, ServesMetricsAndHealthAndNothingElse) {
    int snapshots = 0;
    auto snap = [&snapshots] {
        ++snapshots;
        return sy::metrics_snapshot{};
    };
    const sy::backend_jwks no_keys;
    const auto metrics = sy::answer_metrics_request("/metrics", true, snap, no_keys);
    EXPECT_EQ(metrics.status, 200);
    EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(metrics.body.find("headachemd_sync_scheduler_up 0"), std::string::npos);
    EXPECT_EQ(sy::answer_metrics_request("/healthz", true, snap, no_keys).status, 200);
    EXPECT_EQ(sy::answer_metrics_request("/healthz", true, snap, no_keys).body, "ok\n");
    EXPECT_EQ(sy::answer_metrics_request("/healthz?x=1", false, snap, no_keys).status, 503);
    EXPECT_EQ(sy::answer_metrics_request("/", true, snap, no_keys).status, 404);
    EXPECT_EQ(sy::answer_metrics_request("/metrics/../vault.db", true, snap, no_keys).status, 404);
    EXPECT_EQ(snapshots, 1);  // /healthz and 404s read nothing
}

TEST(MetricsEndpoint, ServesTheBackendJwksBuiltAtStartUpOrSaysNoKeys) {
    // Setup: a set built once, as the service does at start-up.
    auto snap = [] { return sy::metrics_snapshot{}; };
    const sy::backend_jwks jwks{1, R"({"keys":[{"kty":"EC"}]})"};
    const sy::backend_jwks none;

    // Run
    const auto served = sy::answer_metrics_request("/.well-known/jwks.json", true, snap, jwks);
    const auto with_query = sy::answer_metrics_request("/.well-known/jwks.json?x=1", false, snap, jwks);
    const auto no_keys = sy::answer_metrics_request("/.well-known/jwks.json", true, snap, none);
    const auto other = sy::answer_metrics_request("/.well-known/other", true, snap, jwks);

    // Check: the body as built, JSON; 404 with a reason when there is none.
    EXPECT_EQ(served.status, 200);
    EXPECT_EQ(served.content_type, "application/json");
    EXPECT_EQ(served.body, jwks.body);
    EXPECT_EQ(with_query.status, 200) << "the scheduler's state does not matter to the JWKS";
    EXPECT_EQ(no_keys.status, 404);
    EXPECT_EQ(no_keys.content_type, "text/plain; charset=utf-8");
    EXPECT_NE(no_keys.body.find("No backend keys are configured"), std::string::npos) << no_keys.body;
    EXPECT_EQ(other.status, 404);
    EXPECT_EQ(other.body, "Not found: try /metrics or /healthz\n");
}

TEST(metrics, ARateLimitHoldIsAGaugeOfItsEndPerEhr) {
    // Setup: the live engine holds "ecw" until a known time (issue 12,
    // defect 5); "epic" was never held.
    sy::metrics_registry reg;
    sy::engine_counters live;
    const sy::sys_time until{seconds(1'800'000'000)};
    live.rate_limited_until["ecw"] = until;

    // Run
    const auto text = "\n" + sy::render_prometheus(reg.collect(live, {"ecw", "epic"}, {}, true));

    // Check
    EXPECT_EQ(sample(text, "headachemd_sync_rate_limited_until_seconds{ehr=\"ecw\"}"), 1'800'000'000);
    EXPECT_EQ(sample(text, "headachemd_sync_rate_limited_until_seconds{ehr=\"epic\"}"), 0);
    EXPECT_NE(text.find("# TYPE headachemd_sync_rate_limited_until_seconds gauge\n"), std::string::npos);
}

// Issue 17: a patient marked after an interrupted refresh is counted apart
// from one whose grant the EHR refused, in the gauge and the refresh counter.
TEST(metrics, PatientsNeedingReenrollmentAreCountedByReason) {
    // Setup
    sy::metrics_registry reg;
    sy::engine_counters live;
    live.by_ehr["ecw"].refresh_invalid_grant = 3;  // of which one after an interrupted refresh
    live.by_ehr["ecw"].refresh_interrupted = 1;
    sy::patient_facts interrupted{true, true, "2026-12-01T00:00:00Z", std::nullopt, "interrupted_refresh"};
    sy::patient_facts refused{true, true, "2026-12-01T00:00:00Z", std::nullopt, "invalid_grant"};
    sy::patient_facts older{true, true, "2026-12-01T00:00:00Z", std::nullopt, ""};
    const auto now = sy::sys_time{seconds(1'800'000'000)};
    std::vector<std::pair<std::string, sy::patient_health>> patients;
    for (const auto* f : {&interrupted, &refused, &refused, &older})
        patients.emplace_back("ecw", sy::assess_patient(*f, nullptr, now));

    // Run
    const auto text = "\n" + sy::render_prometheus(reg.collect(live, {"ecw", "epic"}, patients, true));

    // Check
    EXPECT_EQ(patients[0].second.reauth_reason, "interrupted_refresh");
    EXPECT_EQ(
        sample(text, "headachemd_sync_patients_needing_reauth{ehr=\"ecw\",reason=\"interrupted_refresh\"}"),
        1);
    EXPECT_EQ(sample(text, "headachemd_sync_patients_needing_reauth{ehr=\"ecw\",reason=\"invalid_grant\"}"),
              2);
    EXPECT_EQ(sample(text, "headachemd_sync_patients_needing_reauth{ehr=\"ecw\",reason=\"unknown\"}"), 1);
    EXPECT_EQ(
        sample(text, "headachemd_sync_patients_needing_reauth{ehr=\"epic\",reason=\"interrupted_refresh\"}"),
        0);
    EXPECT_EQ(sample(text, "headachemd_sync_token_refreshes_total{ehr=\"ecw\",outcome=\"invalid_grant\"}"),
              2);
    EXPECT_EQ(
        sample(text, "headachemd_sync_token_refreshes_total{ehr=\"ecw\",outcome=\"interrupted_refresh\"}"),
        1);
}

}  // namespace
