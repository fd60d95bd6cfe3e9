// The real binary: `run` with [daemon] metrics_listen against the sandbox
// EHR, one patient of two revoked so that it ends in needs_reauth. /metrics
// (scraped with the project's own HTTP client over loopback) and /healthz
// say so while it runs; after SIGTERM, `status` shows the patient as needing
// re-enrollment and exits 75. Synchronized on the daemon's log lines, never
// by sleeping.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "daemon_support.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/policy.hpp"
#include "loopback_get.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::metrics_port_in;
using headachemd::test::metrics_sample;
using reaper = headachemd::test::daemon_reaper;

namespace asio = boost::asio;
namespace http = headachemd::http;
using namespace std::chrono_literals;
using headachemd::test::temp_dir;

// The one place these tests open the vault, with the key in its directory.
headachemd::store::vault open_vault(const std::filesystem::path& path) {
    return headachemd::store::vault(path, headachemd::test::token_key_in(path.parent_path()));
}

std::optional<http::response> http_get(const std::string& url, std::string& why) {
    return headachemd::test::loopback_get(url, why);
}

// The line of `text` that starts with `key` followed by a space.
std::string line_of(const std::string& text, const std::string& key) {
    const auto at = ("\n" + text).find("\n" + key + " ");
    if (at == std::string::npos) return {};
    return text.substr(at, text.find('\n', at) - at);
}

// A JSON string field's value in `text` after `from` ("" when absent or null).
std::string json_field(const std::string& text, std::size_t from, const std::string& name) {
    const std::string needle = "\"" + name + "\":\"";
    const auto at = text.find(needle, from);
    if (at == std::string::npos) return {};
    const auto start = at + needle.size();
    return text.substr(start, text.find('"', start) - start);
}

struct daemon_setup {
    temp_dir dir;
    headachemd::sandbox::background_server ehr;
    std::vector<std::string> ids;

    // `patients` listed and enrolled; the last `revoked` of them
    // have had their grant revoked at the EHR.
    daemon_setup(int patients, int revoked, const std::string& ehr_extra)
        : ehr([patients] {
              headachemd::sandbox::options so;
              so.patients = patients;
              return so;
          }()) {
        ehr->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", ehr->config().client_secret);
        std::string toml =
            "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
            (dir / "vault.db").string() + "\"\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:0\"\n" +
            headachemd::test::token_key_toml(dir.path()) +
            "\n[[ehr]]\nname = "
            "\"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
            ehr->fhir_base() + "\"\nclient_id = \"" + ehr->config().client_id +
            "\"\nclient_secret_file = \"" + (dir / "client.secret").string() + "\"\nca_file = \"" +
            (dir / "ca.pem").string() + "\"\nrequests_per_minute = 60000\n" + ehr_extra;
        ids = ehr->patient_ids();
        auto vault = open_vault(dir / "vault.db");
        const std::string now = "2026-01-01T00:00:00Z";
        for (int i = 0; i < patients; ++i) {
            const auto& id = ids[static_cast<std::size_t>(i)];
            const std::string key = "hmd-" + std::to_string(i + 1);
            toml +=
                "\n[[patient]]\nkey = \"" + key + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + id + "\"\n";
            vault.put_enrollment({key, "sandbox", id, ehr->issue_refresh_token(id), "", now, false}, now);
            if (i >= patients - revoked) ehr->revoke_patient_grants(id);
        }
        headachemd::test::write_file(dir / "sync.toml", toml);
    }

    std::string config() const { return (dir / "sync.toml").string(); }
};

TEST(StatusAndMetrics, ARevokedPatientShowsInMetricsAndStatusAndStatusExits75) {
    // Setup: two patients; hmd-2's grant is revoked at the EHR. 90-day
    // refresh tokens, so `status` can say when hmd-1's lapses.
    daemon_setup s(2, 1, "refresh_token_lifetime = \"90d\"\n");

    // Run: the daemon, until its first pass is done.
    auto child =
        headachemd::test::spawn_piped({"run", "--config", s.config()}, s.dir.path(), false, false, true);
    ASSERT_GT(child.pid, 0);
    reaper guard{child.pid};
    std::string seen;
    const auto listening = headachemd::test::read_line_containing(child.err, "metrics are served on", seen);
    ASSERT_TRUE(listening) << seen;
    const int port = metrics_port_in(*listening);
    ASSERT_GT(port, 0) << *listening;
    ASSERT_TRUE(headachemd::test::read_line_containing(child.err, "pass 1 done", seen)) << seen;
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    std::string why;
    const auto metrics = http_get(base + "/metrics", why);
    const auto health = http_get(base + "/healthz", why);
    const auto other = http_get(base + "/vault.db", why);
    const auto no_jwks = http_get(base + "/.well-known/jwks.json", why);
    ::kill(child.pid, SIGTERM);
    const bool stopped = headachemd::test::read_line_containing(child.err, "stopped", seen).has_value();
    const int exit_code = headachemd::test::wait_exit(std::exchange(child.pid, -1));
    ::close(child.err);

    // Check: /metrics, per EHR, with the revoked patient in needs_reauth.
    ASSERT_TRUE(metrics) << why;
    EXPECT_EQ(metrics->status, 200);
    EXPECT_EQ(metrics->header("Content-Type").value_or(""), "text/plain; version=0.0.4; charset=utf-8");
    const std::string& m = metrics->body;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_patients{ehr=\"sandbox\",state=\"needs_reauth\"}"), 1) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_patients{ehr=\"sandbox\",state=\"ok\"}"), 1) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_patients{ehr=\"sandbox\",state=\"failing\"}"), 0) << m;
    EXPECT_GT(metrics_sample(m, "headachemd_sync_http_requests_total{ehr=\"sandbox\",status=\"200\"}"), 5)
        << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_http_requests_total{ehr=\"sandbox\",status=\"400\"}"), 1)
        << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_token_refreshes_total{ehr=\"sandbox\",outcome=\"ok\"}"), 1)
        << m;
    EXPECT_EQ(
        metrics_sample(m, "headachemd_sync_token_refreshes_total{ehr=\"sandbox\",outcome=\"invalid_grant\"}"),
        1)
        << m;
    EXPECT_GT(metrics_sample(m, "headachemd_sync_rows_written_total{ehr=\"sandbox\"}"), 0) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_job_duration_seconds_count{ehr=\"sandbox\"}"), 2) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_rate_limited_total{ehr=\"sandbox\"}"), 0) << m;
    EXPECT_EQ(metrics_sample(m, "headachemd_sync_scheduler_up"), 1) << m;
    EXPECT_EQ(m.find("hmd-"), std::string::npos) << "a patient key in the metrics:\n" << m;
    ASSERT_TRUE(health) << why;
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(health->body, "ok\n");
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, 404);
    ASSERT_TRUE(no_jwks) << why;
    EXPECT_EQ(no_jwks->status, 404) << "no [ehr.bulk]: no JWKS";
    EXPECT_NE(no_jwks->body.find("No backend keys are configured"), std::string::npos) << no_jwks->body;
    EXPECT_TRUE(stopped) << seen;
    EXPECT_EQ(exit_code, 0) << seen;

    // Run: `status`, as a table and as JSON, after the daemon stopped.
    const auto table = headachemd::test::run_binary({"status", "--config", s.config()}, s.dir.path());
    const auto json =
        headachemd::test::run_binary({"status", "--json", "--config", s.config()}, s.dir.path());

    // Check: exit 75 (a patient needs attention); hmd-2 must enroll again,
    // hmd-1 is fine, with a next run and a token lapse 90 days out.
    EXPECT_EQ(table.exit_code, 75) << table.out << table.err;
    const std::string one = line_of(table.out, "hmd-1"), two = line_of(table.out, "hmd-2");
    EXPECT_NE(two.find("NEEDS_REAUTH"), std::string::npos) << table.out;
    EXPECT_NE(one.find(" ok "), std::string::npos) << table.out;
    EXPECT_EQ(one.find(" - "), std::string::npos) << "hmd-1 lacks a column:\n" << table.out;
    EXPECT_EQ(json.exit_code, 75) << json.out << json.err;
    const std::string& j = json.out;
    EXPECT_EQ(j.rfind("{\"attention\":true,", 0), 0u) << j;
    const auto at1 = j.find("\"patient_key\":\"hmd-1\"");
    const auto at2 = j.find("\"patient_key\":\"hmd-2\"");
    ASSERT_NE(at1, std::string::npos) << j;
    ASSERT_NE(at2, std::string::npos) << j;
    EXPECT_EQ(json_field(j, at2, "state"), "needs_reauth") << j;
    EXPECT_NE(j.find("\"needs_reauth\":true", at2), std::string::npos) << j;
    EXPECT_EQ(json_field(j, at1, "state"), "ok") << j;
    const auto last_ok = headachemd::sync::parse_utc_timestamp(json_field(j, at1, "last_success_at"));
    const auto next = headachemd::sync::parse_utc_timestamp(json_field(j, at1, "next_run_at"));
    const auto lapse = headachemd::sync::parse_utc_timestamp(json_field(j, at1, "token_lapses_at"));
    ASSERT_TRUE(last_ok && next && lapse) << j;
    // The daemon's own schedule: the 6-hour interval plus up to 10% jitter.
    EXPECT_GE(*next - *last_ok, 6h - 2s) << j;
    EXPECT_LE(*next - *last_ok, 6h + 36min + 2s) << j;
    // The token rotated at the refresh: 90 days from then.
    EXPECT_GE(*lapse - *last_ok, 90 * 24h - 60s) << j;
    EXPECT_LE(*lapse - *last_ok, 90 * 24h + 60s) << j;
}

// The JWK Set that keygen --jwks printed for one key, without the set
// around it: the key's JWK object.
std::string jwk_in(const std::string& keygen_out) {
    const std::string head = "{\"keys\":[";
    const auto end = keygen_out.rfind("]}");
    if (keygen_out.rfind(head, 0) != 0 || end == std::string::npos) return "not a JWKS: " + keygen_out;
    return keygen_out.substr(head.size(), end - head.size());
}

// `keygen --jwks` (RS384) writing `file` in the test's directory under
// `kid`; the key's JWK as it printed it.
std::string keygen_jwk(const daemon_setup& s, const std::string& file, const std::string& kid) {
    const auto made = headachemd::test::run_binary(
        {"keygen", "--jwks", "--alg", "RS384", "--key-out", (s.dir / file).string(), "--kid", kid},
        s.dir.path());
    EXPECT_EQ(made.exit_code, 0) << made.err;
    return jwk_in(made.out);
}

// `run` on `s`, read until it logs where it serves the JWKS (a line with
// `served`); the JWKS URL, or "" with what it logged in `seen`.
std::string start_and_find_jwks(const daemon_setup& s, headachemd::test::piped_child& child,
                                const std::string& served, std::string& seen) {
    child = headachemd::test::spawn_piped({"run", "--config", s.config()}, s.dir.path(), false, false, true);
    if (child.pid <= 0) return {};
    const auto line = headachemd::test::read_line_containing(child.err, served, seen);
    if (!line || metrics_port_in(*line) <= 0) return {};
    return "http://127.0.0.1:" + std::to_string(metrics_port_in(*line)) + "/.well-known/jwks.json";
}

// SIGTERM, then whether it logged "stopped", and its exit code.
std::pair<bool, int> stop(headachemd::test::piped_child& child, std::string& seen) {
    ::kill(child.pid, SIGTERM);
    const bool stopped = headachemd::test::read_line_containing(child.err, "stopped", seen).has_value();
    const int exit_code = headachemd::test::wait_exit(std::exchange(child.pid, -1));
    ::close(child.err);
    return {stopped, exit_code};
}

TEST(StatusAndMetrics, TheBackendJwksIsServedOnTheMetricsListenerWithPublicKeysOnly) {
    // Setup: [ehr.bulk] during a rotation: the current key and the next,
    // both made by keygen --jwks (relative paths: the config's directory).
    daemon_setup s(1, 0,
                   "[ehr.bulk]\nclient_id = \"backend-1\"\nprivate_key_file = \"bulk-key.pem\"\n"
                   "key_id = \"k-2026\"\nnext_private_key_file = \"bulk-key-next.pem\"\n"
                   "next_key_id = \"k-2027\"\ngroup_id = \"registry-1\"\n");
    const std::string current_jwk = keygen_jwk(s, "bulk-key.pem", "k-2026");
    const std::string next_jwk = keygen_jwk(s, "bulk-key-next.pem", "k-2027");

    // Run: the daemon, until it says where the JWKS is; one GET over loopback.
    headachemd::test::piped_child child;
    reaper guard{child.pid};
    std::string seen, why;
    const std::string url = start_and_find_jwks(s, child, "backend JWKS (2 keys)", seen);
    ASSERT_FALSE(url.empty()) << seen;
    const auto got = http_get(url, why);
    const auto [stopped, exit_code] = stop(child, seen);

    // Check: both keys, current first, each exactly what keygen printed.
    ASSERT_TRUE(got) << why;
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->header("Content-Type").value_or(""), "application/json");
    EXPECT_EQ(got->body, "{\"keys\":[" + current_jwk + "," + next_jwk + "]}");
    // Parsed: no private member in any key (RFC 7518 §6.3.2 RSA d, p, q,
    // dp, dq, qi; §6.2.2 EC d), and the public members a verifier needs.
    simdjson::dom::parser parser;
    simdjson::dom::element set;
    ASSERT_FALSE(parser.parse(got->body).get(set)) << got->body;
    simdjson::dom::array keys;
    ASSERT_FALSE(set["keys"].get(keys)) << got->body;
    ASSERT_EQ(keys.size(), 2u) << got->body;
    const char* kids[] = {"k-2026", "k-2027"};
    for (std::size_t i = 0; i < 2; ++i) {
        const simdjson::dom::element k = keys.at(i);
        for (const char* priv : {"d", "p", "q", "dp", "dq", "qi"})
            EXPECT_TRUE(k[priv].error()) << "private member " << priv << " served: " << got->body;
        std::string_view v;
        EXPECT_FALSE(k["kid"].get(v));
        EXPECT_EQ(v, kids[i]);
        EXPECT_FALSE(k["alg"].get(v));
        EXPECT_EQ(v, "RS384");
        EXPECT_FALSE(k["use"].get(v));
        EXPECT_EQ(v, "sig");
        EXPECT_FALSE(k["n"].error());
        EXPECT_FALSE(k["e"].error());
    }
    EXPECT_TRUE(stopped) << seen;
    EXPECT_EQ(exit_code, 0) << seen;
}

// Rotation steps 2-3 (docs/admin/configuration.md "Rotating the key"): the
// next key is added and the daemon reloaded; the set then holds both. A
// reload naming a key file that cannot be read keeps the running set.
TEST(StatusAndMetrics, AReloadPublishesTheNextKeyAndABadOneKeepsTheRunningSet) {
    // Setup: one current key; the next made but not yet in the config.
    const std::string current_only =
        "[ehr.bulk]\nclient_id = \"backend-1\"\nprivate_key_file = \"bulk-key.pem\"\nkey_id = \"k-2026\"\n"
        "group_id = \"registry-1\"\n";
    daemon_setup s(1, 0, current_only);
    const std::string toml = headachemd::test::read_file(s.dir / "sync.toml");
    const auto with_next = [&](const std::string& file) {
        std::string t = toml;
        const std::string after = "key_id = \"k-2026\"\n";
        t.insert(t.find(after) + after.size(),
                 "next_private_key_file = \"" + file + "\"\nnext_key_id = \"k-2027\"\n");
        return t;
    };
    const std::string current_jwk = keygen_jwk(s, "bulk-key.pem", "k-2026");
    const std::string next_jwk = keygen_jwk(s, "bulk-key-next.pem", "k-2027");

    // Run: start; reload with a missing next key file; reload with the next key.
    headachemd::test::piped_child child;
    reaper guard{child.pid};
    std::string seen, why;
    const std::string url = start_and_find_jwks(s, child, "backend JWKS (1 key)", seen);
    ASSERT_FALSE(url.empty()) << seen;
    const auto before = http_get(url, why);
    headachemd::test::write_file(s.dir / "sync.toml", with_next("absent.pem"));
    ::kill(child.pid, SIGHUP);
    const auto refused = headachemd::test::read_line_containing(child.err, "config reload failed", seen);
    const auto after_bad = http_get(url, why);
    headachemd::test::write_file(s.dir / "sync.toml", with_next("bulk-key-next.pem"));
    ::kill(child.pid, SIGHUP);
    const bool reloaded =
        headachemd::test::read_line_containing(child.err, "config reloaded", seen).has_value();
    const auto after = http_get(url, why);
    const auto [stopped, exit_code] = stop(child, seen);

    // Check: one key, still one after the bad reload (which names the
    // file), then both: the current one first, each as keygen printed it.
    const std::string one = "{\"keys\":[" + current_jwk + "]}";
    ASSERT_TRUE(before && after_bad && after) << why;
    EXPECT_EQ(before->body, one);
    ASSERT_TRUE(refused) << seen;
    EXPECT_NE(refused->find((s.dir / "absent.pem").string()), std::string::npos) << *refused;
    EXPECT_EQ(after_bad->body, one);
    EXPECT_TRUE(reloaded) << seen;
    EXPECT_EQ(after->status, 200);
    EXPECT_EQ(after->body, "{\"keys\":[" + current_jwk + "," + next_jwk + "]}");
    EXPECT_TRUE(stopped) << seen;
    EXPECT_EQ(exit_code, 0) << seen;
}

TEST(StatusAndMetrics, AnIdlePatientIsScheduledToRenewItsTokenBeforeItLapses) {
    // Setup: tokens that live a day, renewed when they would lapse within
    // 23 hours: the keep-alive (in 1 h) comes before the 6-hour interval.
    daemon_setup s(1, 0, "refresh_token_lifetime = \"1d\"\nkeepalive_before = \"23h\"\n");

    // Run
    auto child =
        headachemd::test::spawn_piped({"run", "--config", s.config()}, s.dir.path(), false, false, true);
    ASSERT_GT(child.pid, 0);
    reaper guard{child.pid};
    std::string seen;
    const auto planned = headachemd::test::read_line_containing(child.err, "renews the refresh token", seen);
    ASSERT_TRUE(headachemd::test::read_line_containing(child.err, "pass 1 done", seen)) << seen;
    ::kill(child.pid, SIGTERM);
    headachemd::test::read_line_containing(child.err, "stopped", seen);
    EXPECT_EQ(headachemd::test::wait_exit(std::exchange(child.pid, -1)), 0) << seen;
    ::close(child.err);
    const auto json =
        headachemd::test::run_binary({"status", "--json", "--config", s.config()}, s.dir.path());

    // Check: the next run is exactly lapse − keepalive_before; all is well.
    ASSERT_TRUE(planned) << seen;
    EXPECT_NE(planned->find("patient hmd-1 at sandbox"), std::string::npos) << *planned;
    EXPECT_EQ(json.exit_code, 0) << json.out << json.err;
    const auto next = headachemd::sync::parse_utc_timestamp(json_field(json.out, 0, "next_run_at"));
    const auto lapse = headachemd::sync::parse_utc_timestamp(json_field(json.out, 0, "token_lapses_at"));
    ASSERT_TRUE(next && lapse) << json.out;
    EXPECT_EQ(*lapse - *next, 23h) << json.out;
    EXPECT_NE(json.out.find("\"token_lapsing\":false"), std::string::npos) << json.out;
}

}  // namespace
