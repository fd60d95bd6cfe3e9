// The sandbox's FHIR Bulk Data export (Bulk Data Access IG v2.0.0, generic
// server; issue 15): kick-off, polls, manifest, NDJSON files and DELETE over
// the wire with a backend token got as the daemon gets it, and the pure
// checks of bulk_export.hpp. Jobs finish after a number of polls, not after
// time, so nothing here sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../../lib/sandbox/src/bulk_export.hpp"
#include "backend_keys.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/smart/smart.hpp"
#include "sandbox_client.hpp"

namespace sbx = headachemd::sandbox;
namespace smart = headachemd::smart;
namespace d = headachemd::sandbox::detail;
using sbx::test::reply;
using sbx::test::running_sandbox;
using namespace std::chrono_literals;

namespace {

constexpr const char* backend_id = "bulk-app";

using headachemd::test::backend_ec_key;
using headachemd::test::backend_rsa_key;

// A sandbox with a backend registration, a client, and the requests of an
// export. `tweak` adjusts the options (ecw_mode and the like) before start.
struct bulk_sandbox {
    explicit bulk_sandbox(int pending_polls = 1, const std::function<void(sbx::options&)>& tweak = {}) {
        sbx::options o;
        o.patients = 6;
        o.backend_client_id = backend_id;
        o.bulk_pending_polls = pending_polls;
        if (tweak) tweak(o);
        ecw = o.ecw_mode;
        o.backend_jwks = key().public_jwks("bulk-1");
        s = std::make_unique<running_sandbox>(o);
        c = s->make_client();
    }
    bool ecw = false;
    const smart::signing_key& key() const { return ecw ? backend_rsa_key() : backend_ec_key(); }
    std::unique_ptr<running_sandbox> s;
    std::unique_ptr<sbx::test::client> c;

    // A system access token for `scope` (client_credentials, as the daemon asks).
    std::string system_token(const std::string& scope = "system/*.read") {
        smart::client_credentials creds;
        creds.client_id = backend_id;
        creds.auth = smart::client_auth::private_key_jwt;
        creds.key = std::make_shared<smart::signing_key>(key());
        creds.key_id = "bulk-1";
        const auto req = smart::make_backend_token_request(
            scope, creds, {s->srv().base_url() + "/token", s->clock().now()});
        const reply r = c->post_form("/token", req.body, req.headers);
        EXPECT_EQ(r.status, 200) << r.body;
        return r.status == 200 ? std::string(r.json().at("access_token").as_string()) : std::string();
    }

    reply kickoff(const std::string& target, const std::string& token, bool prefer = true,
                  const std::string& accept = "application/fhir+json") {
        std::vector<std::pair<std::string, std::string>> h = {{"Authorization", "Bearer " + token},
                                                              {"Accept", accept}};
        if (prefer) h.emplace_back("Prefer", "respond-async");
        return c->request("GET", target, h, "");
    }
    reply call(const std::string& method, const std::string& url, const std::string& token) {
        return c->request(method, url, {{"Authorization", "Bearer " + token}}, "");
    }
    std::string group_export() const { return "/fhir/Group/" + s->srv().config().bulk_group_id + "/$export"; }
};

// Polls until 200, at most `limit` times; returns the manifest reply and
// the X-Progress of each 202.
reply poll_to_manifest(bulk_sandbox& b, const std::string& status_url, const std::string& token,
                       std::vector<std::string>& progress, int limit = 10) {
    progress.clear();
    for (int i = 0; i < limit; ++i) {
        reply r = b.call("GET", status_url, token);
        if (r.status != 202) return r;
        progress.push_back(r.header("x-progress"));
    }
    return {};
}

// Every line of an NDJSON body parsed; the resourceType of each, counted.
std::map<std::string, std::size_t> parse_ndjson(const std::string& body,
                                                std::vector<std::string>* ids = nullptr) {
    std::map<std::string, std::size_t> types;
    std::size_t start = 0;
    EXPECT_TRUE(body.empty() || body.back() == '\n') << "the last line ends with a newline";
    while (start < body.size()) {
        const auto end = body.find('\n', start);
        const std::string line = body.substr(start, end - start);
        start = end == std::string::npos ? body.size() : end + 1;
        boost::system::error_code ec;
        const auto v = boost::json::parse(line, ec);
        EXPECT_FALSE(ec) << "not JSON: " << line.substr(0, 80);
        if (ec) continue;
        ++types[std::string(v.at("resourceType").as_string())];
        if (ids) ids->emplace_back(v.at("id").as_string());
    }
    return types;
}

// What the sandbox holds of `type`, over every patient.
std::size_t held(running_sandbox& s, const std::string& type) {
    std::size_t n = 0;
    for (const auto& p : s.srv().patient_ids()) n += s.srv().count_for(p, type);
    return n;
}

}  // namespace

TEST(SandboxBulkExport, GroupExportDeliversEveryResourceOfEveryTypeAsNdjson) {
    // Setup
    bulk_sandbox b(2);
    const std::string token = b.system_token();
    const auto kicked_at = b.s->clock().now();
    // Run
    const reply k = b.kickoff(b.group_export(), token);
    ASSERT_EQ(k.status, 202) << k.body;
    const std::string status_url = k.header("content-location");
    ASSERT_EQ(status_url.rfind(b.s->srv().base_url() + "/", 0), 0u) << "absolute: " << status_url;
    b.s->clock().advance(2min);  // transactionTime is the kick-off's, not the poll's (the token lasts 5)
    std::vector<std::string> progress;
    const reply m = poll_to_manifest(b, status_url, token, progress);
    // Check
    ASSERT_EQ(m.status, 200) << m.body;
    EXPECT_EQ(progress, (std::vector<std::string>{"in progress, poll 1 of 2", "in progress, poll 2 of 2"}));
    const auto manifest = m.json().as_object();
    EXPECT_EQ(manifest.at("transactionTime").as_string(), d::format_instant(kicked_at));
    EXPECT_EQ(manifest.at("request").as_string(), b.s->srv().base_url() + b.group_export());
    EXPECT_TRUE(manifest.at("requiresAccessToken").as_bool());
    EXPECT_TRUE(manifest.at("error").as_array().empty());
    EXPECT_TRUE(manifest.at("deleted").as_array().empty());
    std::map<std::string, std::size_t> listed;
    for (const auto& entry : manifest.at("output").as_array()) {
        const std::string type(entry.at("type").as_string());
        const reply f = b.call("GET", std::string(entry.at("url").as_string()), token);
        ASSERT_EQ(f.status, 200) << type << ": " << f.body;
        EXPECT_EQ(f.header("content-type"), "application/fhir+ndjson");
        const auto lines = parse_ndjson(f.body);
        ASSERT_EQ(lines.size(), 1u) << type << ": one type per file";
        EXPECT_EQ(lines.begin()->first, type);
        EXPECT_EQ(lines.begin()->second, entry.at("count").as_int64()) << type;
        listed[type] = lines.begin()->second;
    }
    // Every type the sandbox holds resources of, with what it holds; no other.
    std::map<std::string, std::size_t> expected;
    for (const auto& [type, n] : b.s->srv().count_by_type())
        if (held(*b.s, type) > 0) expected[type] = held(*b.s, type);
    EXPECT_EQ(listed, expected);
    EXPECT_GT(listed.count("Patient"), 0u);
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_kickoffs, 1u);
    EXPECT_EQ(stats.bulk_status_polls, 3u);
    EXPECT_EQ(stats.bulk_file_downloads, listed.size());
}

// options::bulk_fill_bytes (bench/bulk): the Observation file is filled to
// the size asked for, every line a distinct id, and the manifest's count,
// the file's lines and stats().bulk_output_resources agree; other types
// are as the clinic holds them.
TEST(SandboxBulkExport, FillBytesGrowsTheObservationFileWithDistinctIds) {
    // Setup
    constexpr std::size_t fill = 256 * 1024;
    bulk_sandbox b(0, [](sbx::options& o) { o.bulk_fill_bytes = fill; });
    const std::string token = b.system_token();
    // Run
    const reply k = b.kickoff(b.group_export() + "?_type=Observation,Condition", token);
    ASSERT_EQ(k.status, 202) << k.body;
    std::vector<std::string> progress;
    const reply m = poll_to_manifest(b, k.header("content-location"), token, progress);
    ASSERT_EQ(m.status, 200) << m.body;
    std::map<std::string, std::size_t> counts, sizes;
    std::vector<std::string> observation_ids;
    const auto manifest = m.json();  // named: a range-for over a temporary's member dangles (C++20)
    for (const auto& entry : manifest.at("output").as_array()) {
        const std::string type(entry.at("type").as_string());
        const reply f = b.call("GET", std::string(entry.at("url").as_string()), token);
        ASSERT_EQ(f.status, 200) << type;
        const auto lines = parse_ndjson(f.body, type == "Observation" ? &observation_ids : nullptr);
        EXPECT_EQ(lines.at(type), entry.at("count").as_int64()) << type;
        counts[type] = lines.at(type);
        sizes[type] = f.body.size();
    }
    // Check
    EXPECT_GE(sizes["Observation"], fill);
    EXPECT_GT(counts["Observation"], held(*b.s, "Observation"));
    EXPECT_EQ(counts["Condition"], held(*b.s, "Condition"));
    std::sort(observation_ids.begin(), observation_ids.end());
    EXPECT_EQ(std::adjacent_find(observation_ids.begin(), observation_ids.end()), observation_ids.end())
        << "every copy has its own id";
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_output_resources,
              (std::map<std::string, std::uint64_t>{{"Condition", counts["Condition"]},
                                                    {"Observation", counts["Observation"]}}));
}

TEST(SandboxBulkExport, TypeSubsetAndSinceNarrowTheExport) {
    // Setup: after kick-off time t0, one Observation changes and one Condition is added.
    bulk_sandbox b(0);
    const std::string token = b.system_token("system/Observation.read system/Condition.rs");
    const auto patient = b.s->srv().patient_ids().front();
    const std::string since = d::format_instant(b.s->clock().now());
    b.s->clock().advance(1min);
    const std::string changed = b.s->srv().ids_of("Observation", patient).front();
    b.s->srv().update_resource("Observation", changed);
    const std::string added = b.s->srv().add_resource("Condition", patient);
    // Run
    const reply subset = b.kickoff("/fhir/Patient/$export?_type=Observation", token);
    const reply incremental =
        b.kickoff("/fhir/$export?_type=Observation,Condition&_since=" + sbx::test::form_encode(since), token);
    // Check: the subset has every Observation and nothing else.
    ASSERT_EQ(subset.status, 202) << subset.body;
    const reply m1 = b.call("GET", subset.header("content-location"), token);
    ASSERT_EQ(m1.status, 200) << m1.body;
    const auto j1 = m1.json();
    const auto& out1 = j1.at("output").as_array();
    ASSERT_EQ(out1.size(), 1u) << m1.body;
    EXPECT_EQ(out1[0].at("type").as_string(), "Observation");
    EXPECT_EQ(out1[0].at("count").as_int64(), static_cast<std::int64_t>(held(*b.s, "Observation")));
    // _since: only what changed after it.
    ASSERT_EQ(incremental.status, 202) << incremental.body;
    const reply m2 = b.call("GET", incremental.header("content-location"), token);
    ASSERT_EQ(m2.status, 200) << m2.body;
    std::vector<std::string> ids;
    const auto j2 = m2.json();
    for (const auto& entry : j2.at("output").as_array()) {
        const reply f = b.call("GET", std::string(entry.at("url").as_string()), token);
        ASSERT_EQ(f.status, 200);
        parse_ndjson(f.body, &ids);
    }
    EXPECT_EQ(ids, (std::vector<std::string>{changed, added}));
}

TEST(SandboxBulkExport, KickOffRefusals) {
    // Setup
    bulk_sandbox b;
    const std::string token = b.system_token("system/Observation.read");
    const auto patient = b.s->srv().patient_ids().front();
    const std::string patient_token = sbx::test::access_token_for(*b.s, *b.c, patient);
    // Run / Check: each is refused with an OperationOutcome and starts no job.
    const auto outcome_status = [](const reply& r) {
        EXPECT_EQ(r.json().at("resourceType").as_string(), "OperationOutcome") << r.body;
        return r.status;
    };
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export(), token, false)), 400);  // no Prefer
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export(), token, true, "application/json")), 400);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export() + "?_type=Observation&_type=Condition", token)), 400);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export() + "?_type=Observation,Medication", token)), 400);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export() + "?_since=2024-01-01", token)), 400);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export() + "?_typeFilter=x", token)), 400);
    EXPECT_EQ(outcome_status(b.kickoff("/fhir/Group/other-clinic/$export", token)), 404);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export() + "?_type=Condition", token)), 403);  // not in scope
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export(), patient_token)), 403);
    EXPECT_EQ(outcome_status(b.kickoff(b.group_export(), "not-a-token")), 401);
    EXPECT_EQ(b.s->srv().stats().bulk_kickoffs, 10u);
    // The same request with what was missing is accepted.
    EXPECT_EQ(b.kickoff(b.group_export(), token).status, 202);
}

TEST(SandboxBulkExport, DeleteReleasesTheJobAndItsFiles) {
    // Setup
    bulk_sandbox b(0);
    const std::string token = b.system_token();
    const reply k = b.kickoff(b.group_export() + "?_type=Patient", token);
    ASSERT_EQ(k.status, 202) << k.body;
    const std::string status_url = k.header("content-location");
    const reply m = b.call("GET", status_url, token);
    ASSERT_EQ(m.status, 200) << m.body;
    const std::string file_url(m.json().at("output").as_array().at(0).at("url").as_string());
    ASSERT_EQ(b.call("GET", file_url, token).status, 200);
    // Run
    const reply del = b.call("DELETE", status_url, token);
    // Check
    EXPECT_EQ(del.status, 202) << del.body;
    EXPECT_EQ(b.call("GET", status_url, token).status, 404);
    EXPECT_EQ(b.call("GET", file_url, token).status, 404);
    EXPECT_EQ(b.call("DELETE", status_url, token).status, 404);
    EXPECT_EQ(b.s->srv().stats().bulk_deletes, 2u);
}

TEST(SandboxBulkExport, StatusAndFilesNeedASystemBearer) {
    // Setup
    bulk_sandbox b(0);
    const std::string token = b.system_token();
    const std::string patient_token =
        sbx::test::access_token_for(*b.s, *b.c, b.s->srv().patient_ids().front());
    const reply k = b.kickoff(b.group_export() + "?_type=Patient", token);
    ASSERT_EQ(k.status, 202) << k.body;
    const std::string status_url = k.header("content-location");
    // Run / Check: neither an absent nor a patient token gets the manifest.
    EXPECT_EQ(b.c->get(status_url).status, 401);
    EXPECT_EQ(b.call("GET", status_url, patient_token).status, 403);
    const reply m = b.call("GET", status_url, token);
    ASSERT_EQ(m.status, 200) << m.body;
    const std::string file_url(m.json().at("output").as_array().at(0).at("url").as_string());
    EXPECT_EQ(b.c->get(file_url).status, 401);
    EXPECT_EQ(b.call("GET", file_url, patient_token).status, 403);
    // A backend token lasts 5 minutes; an expired one is 401 and a fresh
    // one (no refresh token: a new assertion) gets the same file.
    b.s->clock().advance(6min);
    EXPECT_EQ(b.call("GET", file_url, token).status, 401);
    EXPECT_EQ(b.call("GET", file_url, b.system_token()).status, 200);
}

TEST(SandboxBulkExport, MetadataNamesTheExportOperations) {
    // Setup
    bulk_sandbox b;
    running_sandbox plain;
    // Run
    const auto j = b.c->get("/fhir/metadata").json();
    const auto without = plain.make_client()->get("/fhir/metadata").json();
    // Check: the IG's bulk-data CapabilityStatement and its three operations.
    const std::string defs = "http://hl7.org/fhir/uv/bulkdata/";
    EXPECT_EQ(j.at("instantiates").as_array().at(0).as_string(), defs + "CapabilityStatement/bulk-data");
    const auto& rest = j.at("rest").as_array().at(0);
    EXPECT_EQ(rest.at("operation").as_array().at(0).at("definition").as_string(),
              defs + "OperationDefinition/export");
    std::map<std::string, std::string> by_type;
    for (const auto& res : rest.at("resource").as_array())
        if (const auto* op = res.as_object().if_contains("operation"))
            by_type[std::string(res.at("type").as_string())] =
                op->as_array().at(0).at("definition").as_string();
    EXPECT_EQ(by_type,
              (std::map<std::string, std::string>{{"Group", defs + "OperationDefinition/group-export"},
                                                  {"Patient", defs + "OperationDefinition/patient-export"}}));
    EXPECT_FALSE(without.as_object().contains("instantiates"));
    EXPECT_FALSE(without.at("rest").as_array().at(0).as_object().contains("operation"));
}

// ---- eClinicalWorks mode ------------------------------------------------------

TEST(SandboxBulkExportEcw, GroupOnlyPollLocationRetryAfterAndV1Manifest) {
    // Setup
    bulk_sandbox b(2, [](sbx::options& o) { o.ecw_mode = true; });
    const std::string token = b.system_token("system/Group.read system/Patient.read");
    // Run
    const reply patient_level = b.kickoff("/fhir/Patient/$export", token);
    const reply system_level = b.kickoff("/fhir/$export", token);
    const reply k = b.kickoff(b.group_export(), token);
    // Check: only the Group export exists.
    EXPECT_EQ(patient_level.status, 404) << patient_level.body;
    EXPECT_EQ(patient_level.json().at("issue").as_array().at(0).at("code").as_string(), "not-supported");
    EXPECT_EQ(system_level.status, 404) << system_level.body;
    ASSERT_EQ(k.status, 202) << k.body;
    // The status URL has eCW's form and is polled where it says.
    const std::string status_url = k.header("content-location");
    EXPECT_EQ(status_url, b.s->srv().fhir_base() + "/$export-poll-location?job_id=job-1");
    std::vector<std::string> retry_after;
    reply m;
    for (int i = 0; i < 5; ++i) {
        m = b.call("GET", status_url, token);
        if (m.status != 202) break;
        retry_after.push_back(m.header("retry-after"));
    }
    EXPECT_EQ(retry_after, (std::vector<std::string>{"120", "120"}));
    ASSERT_EQ(m.status, 200) << m.body;
    const auto j = m.json();
    EXPECT_TRUE(j.at("error").as_array().empty());
    EXPECT_FALSE(j.as_object().contains("deleted")) << "Bulk v1.0.1 has no deleted[]";
    const auto& out = j.at("output").as_array();
    ASSERT_EQ(out.size(), 1u) << m.body;
    const reply f = b.call("GET", std::string(out[0].at("url").as_string()), token);
    EXPECT_EQ(f.status, 200);
    EXPECT_EQ(parse_ndjson(f.body).at("Patient"), b.s->srv().patient_ids().size());
    // The generic status path is not served in eCW mode; DELETE works at the poll location.
    EXPECT_EQ(b.call("GET", b.s->srv().base_url() + "/bulk/status/job-1", token).status, 404);
    EXPECT_EQ(b.call("GET", b.s->srv().fhir_base() + "/$export-poll-location?job_id=job-9", token).status,
              404);
    EXPECT_EQ(b.call("DELETE", status_url, token).status, 202);
    EXPECT_EQ(b.call("GET", status_url, token).status, 404);
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_kickoffs, 3u);
    EXPECT_EQ(stats.bulk_status_polls, 5u);
    EXPECT_EQ(stats.bulk_deletes, 1u);
    EXPECT_EQ(stats.bulk_retry_after_seconds, 2u);
    EXPECT_EQ(stats.bulk_manifests, 1u);
}

TEST(SandboxBulkExportEcw, RetryAfterIsConfigurableAndAbsentByDefaultOutsideEcw) {
    // Setup
    bulk_sandbox generic(1);
    bulk_sandbox ecw_none(1, [](sbx::options& o) {
        o.ecw_mode = true;
        o.bulk_poll_retry_after = std::chrono::seconds(0);
    });
    bulk_sandbox generic_30(1, [](sbx::options& o) { o.bulk_poll_retry_after = std::chrono::seconds(30); });
    // Run
    const auto first_poll = [](bulk_sandbox& b, const std::string& scope) {
        const std::string token = b.system_token(scope);
        const reply k = b.kickoff(b.group_export(), token);
        EXPECT_EQ(k.status, 202) << k.body;
        return b.call("GET", k.header("content-location"), token);
    };
    const reply g = first_poll(generic, "system/*.read");
    const reply e = first_poll(ecw_none, "system/Group.read system/Patient.read");
    const reply g30 = first_poll(generic_30, "system/*.read");
    // Check
    EXPECT_EQ(g.status, 202);
    EXPECT_FALSE(g.has_header("retry-after"));
    EXPECT_EQ(e.status, 202);
    EXPECT_FALSE(e.has_header("retry-after"));
    EXPECT_EQ(g30.header("retry-after"), "30");
}

TEST(SandboxBulkExportEcw, MetadataNamesOnlyGroupExport) {
    // Setup
    bulk_sandbox b(1, [](sbx::options& o) { o.ecw_mode = true; });
    // Run
    const auto j = b.c->get("/fhir/metadata").json();
    // Check
    const auto& rest = j.at("rest").as_array().at(0);
    EXPECT_FALSE(rest.as_object().contains("operation"));
    std::vector<std::string> with_ops;
    for (const auto& res : rest.at("resource").as_array())
        if (res.as_object().contains("operation")) with_ops.emplace_back(res.at("type").as_string());
    EXPECT_EQ(with_ops, std::vector<std::string>{"Group"});
}

// ---- scripted faults -----------------------------------------------------------

namespace {

// Kicks off a Group export and returns its status URL.
std::string kick(bulk_sandbox& b, const std::string& token, const std::string& query = {}) {
    const reply k = b.kickoff(b.group_export() + query, token);
    EXPECT_EQ(k.status, 202) << k.body;
    return k.header("content-location");
}

std::string issue_code(const reply& r) {
    return std::string(r.json().at("issue").as_array().at(0).at("code").as_string());
}

}  // namespace

TEST(SandboxBulkExportFaults, ScriptedPollAnswersComeInOrderAndDoNotAdvanceTheJob) {
    // Setup: a job that needs one plain poll, and five scripted answers before it.
    bulk_sandbox b(1);
    const std::string token = b.system_token();
    const std::string status_url = kick(b, token);
    using k = sbx::bulk_poll_fault::kind;
    b.s->srv().script_bulk_polls({k::retry_after_seconds, 1, 500, 90s, {}});
    b.s->srv().script_bulk_polls({k::retry_after_date, 1, 500, 3600s, {}});
    b.s->srv().script_bulk_polls({k::too_many_requests, 1, 500, 30s, {}});
    b.s->srv().script_bulk_polls({k::transient, 1, 503, 0s, "transient"});
    b.s->srv().script_bulk_polls({k::transient, 1, 500, 5s, "throttled"});
    const auto now = b.s->clock().now();
    // Run
    std::vector<reply> polls;
    for (int i = 0; i < 7; ++i) polls.push_back(b.call("GET", status_url, token));
    // Check
    EXPECT_EQ(polls[0].status, 202);
    EXPECT_EQ(polls[0].header("retry-after"), "90");
    EXPECT_EQ(polls[1].status, 202);
    // RFC 9110 §10.2.3: an HTTP-date, an hour after the sandbox's clock.
    EXPECT_EQ(polls[1].header("retry-after"), d::format_http_date(now + 1h));
    EXPECT_EQ(polls[2].status, 429);
    EXPECT_EQ(issue_code(polls[2]), "throttled");
    EXPECT_EQ(polls[2].header("retry-after"), "30") << "only the scripted Retry-After, not the sandbox's 1";
    EXPECT_EQ(polls[3].status, 503);
    EXPECT_EQ(issue_code(polls[3]), "transient");
    EXPECT_FALSE(polls[3].has_header("retry-after"));
    EXPECT_EQ(polls[4].status, 500);
    EXPECT_EQ(issue_code(polls[4]), "throttled");
    EXPECT_EQ(polls[4].header("retry-after"), "5");
    // The scripts spent, the job goes on where it was: one in-progress poll, then the manifest.
    EXPECT_EQ(polls[5].status, 202);
    EXPECT_EQ(polls[5].header("x-progress"), "in progress, poll 1 of 1");
    EXPECT_EQ(polls[6].status, 200) << polls[6].body;
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_status_polls, 7u);
    EXPECT_EQ(stats.bulk_retry_after_seconds, 1u);
    EXPECT_EQ(stats.bulk_retry_after_dates, 1u);
    EXPECT_EQ(stats.bulk_poll_429s, 1u);
    EXPECT_EQ(stats.bulk_poll_transient_errors, 2u);
    EXPECT_EQ(stats.bulk_poll_fatal_errors, 0u);
    EXPECT_EQ(stats.bulk_manifests, 1u);
}

TEST(SandboxBulkExportFaults, FatalPollAndClearing) {
    // Setup
    bulk_sandbox b(0);
    const std::string token = b.system_token();
    const std::string status_url = kick(b, token);
    b.s->srv().script_bulk_polls({sbx::bulk_poll_fault::kind::fatal, 2, 500, 0s, {}});
    // Run
    const reply first = b.call("GET", status_url, token);
    b.s->srv().clear_scripted_faults();
    const reply after_clear = b.call("GET", status_url, token);
    // Check
    EXPECT_EQ(first.status, 500);
    EXPECT_EQ(issue_code(first), "exception");
    EXPECT_EQ(after_clear.status, 200) << after_clear.body;
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_poll_fatal_errors, 1u) << "the second scripted fatal was cleared";
    EXPECT_EQ(stats.bulk_manifests, 1u);
}

TEST(SandboxBulkExportFaults, RedirectToTheFileOriginWithACapabilityUrl) {
    // Setup
    bulk_sandbox b(0);
    const std::string token = b.system_token();
    const std::string status_url = kick(b, token, "?_type=Patient");
    const reply m = b.call("GET", status_url, token);
    ASSERT_EQ(m.status, 200) << m.body;
    const std::string file_url(m.json().at("output").as_array().at(0).at("url").as_string());
    const reply direct = b.call("GET", file_url, token);
    ASSERT_EQ(direct.status, 200);
    const std::string origin = b.s->srv().file_origin_url();
    ASSERT_NE(origin, b.s->srv().base_url());
    const auto port = static_cast<std::uint16_t>(std::stoi(origin.substr(origin.rfind(':') + 1)));
    sbx::test::client files(port, b.s->srv().ca_certificate_pem());
    b.s->srv().script_bulk_file_redirects(1);
    // Run
    const reply redirect = b.call("GET", file_url, token);
    const std::string location = redirect.header("location");
    const reply unauthenticated =
        b.c->get(file_url);                     // the redirect still needs the bearer at the FHIR origin
    const reply fetched = files.get(location);  // no Authorization: the URL is the credential
    const reply not_redirected = b.call("GET", file_url, token);  // the script is spent
    // Check
    EXPECT_EQ(redirect.status, 307);
    EXPECT_EQ(location.rfind(origin + "/files/", 0), 0u) << location;
    EXPECT_EQ(unauthenticated.status, 401);
    EXPECT_EQ(fetched.status, 200) << fetched.body;
    EXPECT_EQ(fetched.header("content-type"), "application/fhir+ndjson");
    EXPECT_EQ(fetched.body, direct.body);
    EXPECT_EQ(not_redirected.status, 200);
    auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.file_origin_requests, 1u);
    EXPECT_EQ(stats.file_origin_authorization_headers, 0u);
    EXPECT_EQ(stats.file_origin_downloads, 1u);
    EXPECT_EQ(stats.bulk_file_redirects, 1u);
    // A client that forwards its bearer across origins is counted.
    EXPECT_EQ(files.get(location, token).status, 200);
    EXPECT_EQ(b.s->srv().stats().file_origin_authorization_headers, 1u);
    // The file origin serves nothing else, and the capability dies with the job.
    EXPECT_EQ(files.get("/fhir/metadata").status, 404);
    EXPECT_EQ(files.get(origin + "/files/not-a-capability").status, 404);
    EXPECT_EQ(b.call("DELETE", status_url, token).status, 202);
    EXPECT_EQ(files.get(location).status, 404);
    stats = b.s->srv().stats();
    EXPECT_EQ(stats.file_origin_requests, 5u);
    EXPECT_EQ(stats.file_origin_downloads, 2u);
    EXPECT_EQ(stats.by_path.count("/fhir/metadata"), 0u) << "file-origin requests are not FHIR requests";
}

TEST(SandboxBulkExportFaults, ErrorAndDeletedFiles) {
    // Setup: one Observation and one Condition deleted after _since, one Condition before it.
    bulk_sandbox b(0);
    const std::string token = b.system_token();
    const auto patient = b.s->srv().patient_ids().front();
    const std::string early = b.s->srv().ids_of("Condition", patient).front();
    b.s->srv().delete_resource("Condition", early);
    b.s->clock().advance(1min);
    const std::string since = d::format_instant(b.s->clock().now());
    b.s->clock().advance(1min);
    const std::string obs = b.s->srv().ids_of("Observation", patient).front();
    const std::string cond = b.s->srv().ids_of("Condition", patient).front();
    b.s->srv().delete_resource("Observation", obs);
    b.s->srv().delete_resource("Condition", cond);
    b.s->srv().script_bulk_error_files(1);
    // Run
    const std::string incremental =
        kick(b, token, "?_type=Condition,Observation,Patient&_since=" + sbx::test::form_encode(since));
    const std::string full = kick(b, token);  // the error script is spent; no _since, no deleted[]
    const reply m = b.call("GET", incremental, token);
    const reply m_full = b.call("GET", full, token);
    // Check
    ASSERT_EQ(m.status, 200) << m.body;
    const auto j = m.json();
    const auto& errors = j.at("error").as_array();
    ASSERT_EQ(errors.size(), 1u) << m.body;
    EXPECT_EQ(errors[0].at("type").as_string(), "OperationOutcome");
    const reply ef = b.call("GET", std::string(errors[0].at("url").as_string()), token);
    ASSERT_EQ(ef.status, 200);
    EXPECT_EQ(parse_ndjson(ef.body).at("OperationOutcome"), 2u);
    std::vector<std::string> severities;
    for (std::size_t at = 0; at < ef.body.size();) {
        const auto end = ef.body.find('\n', at);
        const auto line = boost::json::parse(ef.body.substr(at, end - at));
        at = end + 1;
        severities.emplace_back(line.at("issue").as_array().at(0).at("severity").as_string());
    }
    EXPECT_EQ(severities, (std::vector<std::string>{"warning", "error"}));
    const auto& deleted = j.at("deleted").as_array();
    ASSERT_EQ(deleted.size(), 1u) << m.body;
    EXPECT_EQ(deleted[0].at("type").as_string(), "Bundle");
    EXPECT_EQ(deleted[0].at("count").as_int64(), 2);
    const reply df = b.call("GET", std::string(deleted[0].at("url").as_string()), token);
    ASSERT_EQ(df.status, 200);
    std::vector<std::string> urls;
    std::size_t start = 0;
    while (start < df.body.size()) {
        const auto end = df.body.find('\n', start);
        const auto bundle = boost::json::parse(df.body.substr(start, end - start));
        start = end + 1;
        EXPECT_EQ(bundle.at("type").as_string(), "transaction");
        for (const auto& e : bundle.at("entry").as_array()) {
            EXPECT_EQ(e.at("request").at("method").as_string(), "DELETE");
            urls.emplace_back(e.at("request").at("url").as_string());
        }
    }
    EXPECT_EQ(urls, (std::vector<std::string>{"Condition/" + cond, "Observation/" + obs}))
        << "only deletions after _since, of the exported types";
    ASSERT_EQ(m_full.status, 200);
    EXPECT_TRUE(m_full.json().at("error").as_array().empty());
    EXPECT_TRUE(m_full.json().at("deleted").as_array().empty());
    const auto stats = b.s->srv().stats();
    EXPECT_EQ(stats.bulk_error_file_downloads, 1u);
    EXPECT_EQ(stats.bulk_deleted_file_downloads, 1u);
    EXPECT_EQ(stats.bulk_manifests, 2u);
}

// ---- the pure parts ---------------------------------------------------------

TEST(SandboxBulkExportPure, ParsesTheThreeKickOffPaths) {
    // Setup / Run / Check
    EXPECT_EQ(d::parse_export_path("/fhir/$export")->level, d::export_level::system);
    EXPECT_EQ(d::parse_export_path("/fhir/Patient/$export")->level, d::export_level::patient);
    const auto g = d::parse_export_path("/fhir/Group/abc/$export");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->level, d::export_level::group);
    EXPECT_EQ(g->group_id, "abc");
    EXPECT_FALSE(d::parse_export_path("/fhir/Group//$export"));
    EXPECT_FALSE(d::parse_export_path("/fhir/Group/abc"));
    EXPECT_FALSE(d::parse_export_path("/fhir/Observation/$export"));
}

TEST(SandboxBulkExportPure, KickOffChecks) {
    // Setup
    const std::vector<d::rtype> served = {d::rtype::patient, d::rtype::observation};
    const auto check = [&](std::string_view accept, std::string_view prefer, const d::params& q) {
        return d::check_kickoff(accept, prefer, q, served);
    };
    // Run / Check
    const auto ok = check("application/fhir+json", "respond-async",
                          {{"_type", "Observation, Patient"}, {"_since", "2024-05-01T10:00:00+02:00"}});
    ASSERT_TRUE(std::holds_alternative<d::export_params>(ok));
    const auto& p = std::get<d::export_params>(ok);
    EXPECT_EQ(p.types, (std::vector<d::rtype>{d::rtype::observation, d::rtype::patient}));
    ASSERT_TRUE(p.since);
    EXPECT_EQ(d::format_instant(*p.since), "2024-05-01T08:00:00.000Z");
    // Lenient handling ignores what the sandbox does not implement.
    EXPECT_TRUE(std::holds_alternative<d::export_params>(
        check("application/fhir+json", "respond-async, handling=lenient", {{"_elements", "id"}})));
    EXPECT_TRUE(std::holds_alternative<d::export_refusal>(check("", "respond-async", {})));
    EXPECT_TRUE(std::holds_alternative<d::export_refusal>(check("application/fhir+json", "", {})));
    EXPECT_TRUE(std::holds_alternative<d::export_refusal>(
        check("application/fhir+json", "respond-async", {{"_type", "Condition"}})));
    // An unencoded '+' arrives as a space: not an instant.
    EXPECT_TRUE(std::holds_alternative<d::export_refusal>(
        check("application/fhir+json", "respond-async", {{"_since", "2024-05-01T10:00:00 02:00"}})));
    EXPECT_TRUE(std::holds_alternative<d::export_refusal>(
        check("application/fhir+json", "respond-async", {{"_outputFormat", "text/csv"}})));
}

TEST(SandboxBulkExportPure, SystemScopesCoverTypes) {
    // Setup / Run / Check
    EXPECT_TRUE(d::scope_reads("system/*.read", "system", d::rtype::condition));
    EXPECT_TRUE(d::scope_reads("system/Group.read system/Condition.rs", "system", d::rtype::condition));
    EXPECT_FALSE(d::scope_reads("system/Condition.c", "system", d::rtype::condition));
    EXPECT_FALSE(d::scope_reads("patient/Condition.read", "system", d::rtype::condition));
    EXPECT_FALSE(d::scope_reads("system/Observation.read", "system", d::rtype::condition));
    EXPECT_TRUE(d::scope_reads("launch/patient patient/*.read", "patient", d::rtype::condition));
    EXPECT_FALSE(d::scope_reads("patient/*.read", "user", d::rtype::condition));
    EXPECT_FALSE(d::scope_reads("systemx/*.read", "system", d::rtype::condition));
}

// options::bulk_fill_bytes (bench/bulk's 1 GB file): whole rounds of
// copies, each line under a new id and otherwise byte for byte the same,
// until the file holds the size asked for; nothing to copy, nothing added.
TEST(SandboxBulkExportPure, FillCopiesEveryLineUnderNewIdsUpToTheSize) {
    // Setup
    const std::string originals =
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"subject\":{\"reference\":\"Patient/p\"}}\n"
        "{\"resourceType\":\"Observation\",\"id\":\"o2\"}\n";
    std::string out = originals;
    std::size_t count = 2;
    std::string untouched = "x";
    std::size_t none = 0;
    // Run
    // One round of copies makes 2 x originals + 6 bytes (two "-c1"): one more byte needs a second.
    d::append_copies(out, count, originals, originals.size() * 2 + 7);
    d::append_copies(untouched, none, "{\"resourceType\":\"Observation\"}\n", 1000);
    // Check: the second round is whole, though its first line was enough.
    EXPECT_EQ(count, 6u);
    EXPECT_GE(out.size(), originals.size() * 2 + 7);
    EXPECT_EQ(
        out.substr(originals.size()),
        "{\"resourceType\":\"Observation\",\"id\":\"o1-c1\",\"subject\":{\"reference\":\"Patient/p\"}}\n"
        "{\"resourceType\":\"Observation\",\"id\":\"o2-c1\"}\n"
        "{\"resourceType\":\"Observation\",\"id\":\"o1-c2\",\"subject\":{\"reference\":\"Patient/p\"}}\n"
        "{\"resourceType\":\"Observation\",\"id\":\"o2-c2\"}\n");
    EXPECT_EQ(untouched, "x");
    EXPECT_EQ(none, 0u);
}

TEST(SandboxBulkExportPure, ManifestAndNdjsonLines) {
    // Setup
    std::string nd;
    d::append_ndjson_line(nd, R"({"resourceType":"Patient","id":"a"})");
    d::append_ndjson_line(nd, R"({"resourceType":"Patient","id":"b"})");
    // Run
    d::manifest in;
    in.transaction_time = d::time_point{std::chrono::seconds{1717200000}};
    in.request = "https://h/fhir/$export";
    in.output = {{"Patient", "https://h/bulk/files/job-1/Patient.ndjson", 2}};
    const auto m = boost::json::parse(d::render_manifest(in));
    in.form = d::manifest_form::v1_0_1;
    const auto v1 = boost::json::parse(d::render_manifest(in));
    // Check
    EXPECT_EQ(nd,
              "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n");
    EXPECT_EQ(m.at("transactionTime").as_string(), "2024-06-01T00:00:00.000Z");
    EXPECT_EQ(m.at("request").as_string(), "https://h/fhir/$export");
    EXPECT_TRUE(m.at("requiresAccessToken").as_bool());
    EXPECT_EQ(m.at("output").as_array().at(0).at("count").as_int64(), 2);
    EXPECT_TRUE(m.at("error").as_array().empty());
    EXPECT_TRUE(m.at("deleted").as_array().empty());
    // The line renderers of error[] and deleted[] files.
    const auto oo = boost::json::parse(d::operation_outcome_json("warning", "informational", "w"));
    EXPECT_EQ(oo.at("issue").as_array().at(0).at("severity").as_string(), "warning");
    const auto bundle = boost::json::parse(d::delete_bundle("Condition", {"c1", "c2"}));
    EXPECT_EQ(bundle.at("type").as_string(), "transaction");
    EXPECT_EQ(bundle.at("entry").as_array().at(1).at("request").at("url").as_string(), "Condition/c2");
    // v1.0.1 (eClinicalWorks): error[] but no deleted[].
    EXPECT_TRUE(v1.at("error").as_array().empty());
    EXPECT_FALSE(v1.as_object().contains("deleted"));
    EXPECT_EQ(v1.at("output"), m.at("output"));
}
