// The audit log end to end (issue 5 item 3): the real binary's sync-once
// against the sandbox EHR over loopback TLS, with a 500 and a 429 injected
// and one patient's grant revoked, then `headachemd-sync audit`.
//
// - one event per request the sandbox served, with the status it sent;
// - a needs_reauth event for the revoked patient;
// - `audit --patient KEY --since DATE` prints that patient's events only;
// - no token the sandbox issued and no FHIR patient id is in any event.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::temp_dir;

struct audit_setup {
    temp_dir dir;
    headachemd::sandbox::background_server ehr;
    std::vector<std::string> ids;

    // `patients` listed and enrolled; the last `revoked` of them have had
    // their grant revoked at the EHR.
    audit_setup(int patients, int revoked)
        : ehr([patients] {
              headachemd::sandbox::options so;
              so.patients = patients;
              return so;
          }()) {
        ehr->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", ehr->config().client_secret);
        std::string toml = "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                           (dir / "vault.db").string() + "\"\nlog_level = \"info\"\n" +
                           headachemd::test::token_key_toml(dir.path()) +
                           "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                           ehr->fhir_base() + "\"\nclient_id = \"" + ehr->config().client_id +
                           "\"\nclient_secret_file = \"" + (dir / "client.secret").string() +
                           "\"\nca_file = \"" + (dir / "ca.pem").string() +
                           "\"\nrequests_per_minute = 60000\npage_size = 5\ncount_check_every = \"0s\"\n";
        ids = ehr->patient_ids();
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
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

struct row {
    std::string patient_key, action, resource_type, outcome;
    int http_status = -1;  // -1: NULL
};

std::vector<row> audit_rows(const std::filesystem::path& vault) {
    SQLite::Database db(vault, SQLite::OPEN_READONLY);
    SQLite::Statement q(db,
                        "SELECT coalesce(patient_key, ''), action, coalesce(resource_type, ''), outcome, "
                        "coalesce(http_status, -1) FROM audit_event ORDER BY id");
    std::vector<row> out;
    while (q.executeStep())
        out.push_back({q.getColumn(0).getString(), q.getColumn(1).getString(), q.getColumn(2).getString(),
                       q.getColumn(3).getString(), q.getColumn(4).getInt()});
    return out;
}

// Every value of every audit row, as text, for searching.
std::string all_values(const std::filesystem::path& vault) {
    SQLite::Database db(vault, SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT * FROM audit_event");
    std::string out;
    while (q.executeStep())
        for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "\x1f";
    return out;
}

std::vector<std::vector<std::string>> tsv_lines(const std::string& text) {
    std::vector<std::vector<std::string>> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> cells;
        std::size_t start = 0;
        for (;;) {
            const auto tab = line.find('\t', start);
            cells.push_back(line.substr(start, tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        out.push_back(std::move(cells));
    }
    return out;
}

TEST(AuditLogCli, SyncOnceRecordsOneEventPerRequestTheSandboxServedWithItsStatus) {
    // Setup: three patients, hmd-3 revoked; the first Condition search
    // answers 500 once and the first Observation search 429 once.
    audit_setup s(3, 1);
    headachemd::sandbox::scripted_fault f500;
    f500.status = 500;
    f500.type = "Condition";
    f500.page = 1;
    s.ehr->add_scripted_fault(f500);
    headachemd::sandbox::scripted_fault f429;
    f429.status = 429;
    f429.retry_after = "0";
    f429.type = "Observation";
    f429.page = 1;
    s.ehr->add_scripted_fault(f429);

    // Run
    const auto r = headachemd::test::run_binary({"sync-once", "--config", s.config()}, s.dir.path());
    // A second pass is incremental: _lastUpdated searches and count checks.
    const auto r2 = headachemd::test::run_binary({"sync-once", "--config", s.config()}, s.dir.path());
    const auto stats = s.ehr->stats();
    const auto rows = audit_rows(s.dir / "vault.db");

    // Check: sync-once reports the revoked patient (75), and the audit log
    // has exactly one event per request served, status by status.
    EXPECT_EQ(r.exit_code, 75) << r.err;
    EXPECT_EQ(r2.exit_code, 75) << r2.err;
    EXPECT_GT(stats.requests, 20u);  // three patients, seven types, pages of 5
    if (const char* dump = std::getenv("HEADACHEMD_AUDIT_TEST_DUMP"); dump && *dump) {
        const auto printed = headachemd::test::run_binary({"audit", "--config", s.config()}, s.dir.path());
        std::cout << printed.out << printed.err;
    }
    std::size_t http_events = 0;
    std::map<int, std::uint64_t> by_status;
    for (const auto& e : rows) {
        if (e.http_status >= 0) {
            ++http_events;
            ++by_status[e.http_status];
        }
    }
    EXPECT_EQ(http_events, stats.requests);
    EXPECT_EQ(by_status, stats.by_status);
    EXPECT_EQ(by_status[500], 1u);
    EXPECT_EQ(by_status[429], 1u);
    bool saw_500 = false, saw_429 = false, saw_reauth = false, saw_refused_refresh = false;
    for (const auto& e : rows) {
        if (e.http_status == 500) {
            saw_500 = e.resource_type == "Condition" && e.action == "fhir.search" && e.outcome == "http_500";
        }
        if (e.http_status == 429) {
            saw_429 = e.resource_type == "Observation" && e.outcome == "http_429";
        }
        if (e.action == "needs_reauth") {
            saw_reauth = e.patient_key == "hmd-3" && e.outcome == "invalid_grant";
        }
        if (e.action == "token.refresh" && e.patient_key == "hmd-3") {
            saw_refused_refresh = e.outcome == "invalid_grant" && e.http_status == 400;
        }
    }
    EXPECT_TRUE(saw_500);
    EXPECT_TRUE(saw_429);
    EXPECT_TRUE(saw_reauth);
    EXPECT_TRUE(saw_refused_refresh);
    // Discovery and metadata are the EHR's, not a patient's.
    std::size_t ehr_wide = 0;
    for (const auto& e : rows) ehr_wide += e.patient_key.empty() ? 1 : 0;
    EXPECT_EQ(ehr_wide, stats.discovery_calls);
    // Every FHIR answer with data says how much it held (a page its
    // resources, a count check the server's total).
    SQLite::Database vault(s.dir / "vault.db", SQLite::OPEN_READONLY);
    SQLite::Statement fhir(
        vault,
        "SELECT count(*) FROM audit_event WHERE action LIKE 'fhir.%' AND http_status = 200 "
        "AND count IS NULL");
    fhir.executeStep();
    EXPECT_EQ(fhir.getColumn(0).getInt(), 0);
    SQLite::Statement checks(vault,
                             "SELECT count(*) FROM audit_event WHERE action = 'fhir.count' AND count >= 0");
    checks.executeStep();
    EXPECT_GT(checks.getColumn(0).getInt(), 0);

    // Check: no token the sandbox issued and no FHIR patient id in any row.
    const std::string values = all_values(s.dir / "vault.db");
    for (const auto& token : s.ehr->issued_tokens()) {
        EXPECT_EQ(values.find(token), std::string::npos) << "a token in the audit log";
    }
    for (const auto& id : s.ids) {
        EXPECT_EQ(values.find(id), std::string::npos) << "FHIR patient id " << id << " in the audit log";
    }
    EXPECT_EQ(values.find("://"), std::string::npos) << "a URL in the audit log";
}

TEST(AuditLogCli, AuditCommandFiltersByPatientAndSinceWithoutTheTokenKey) {
    // Setup: one sync-once of two patients; then the token key is moved
    // away, which `audit` must not need.
    audit_setup s(2, 0);
    const auto sync = headachemd::test::run_binary({"sync-once", "--config", s.config()}, s.dir.path());
    ASSERT_EQ(sync.exit_code, 0) << sync.err;
    std::filesystem::rename(headachemd::test::token_key_file(s.dir.path()), s.dir / "elsewhere.key");

    // Run
    const auto mine = headachemd::test::run_binary(
        {"audit", "--config", s.config(), "--patient", "hmd-1", "--since", "2000-01-01"}, s.dir.path());
    const auto future = headachemd::test::run_binary(
        {"audit", "--config", s.config(), "--patient", "hmd-1", "--since", "2999-01-01"}, s.dir.path());
    const auto json = headachemd::test::run_binary(
        {"audit", "--config", s.config(), "--json", "--limit", "3"}, s.dir.path());
    const auto bad = headachemd::test::run_binary(
        {"audit", "--config", s.config(), "--since", "last tuesday"}, s.dir.path());

    // Check: tab-separated (stdout is not a terminal), a header, then
    // hmd-1's events only, each an EHR call or enrollment change of hmd-1.
    ASSERT_EQ(mine.exit_code, 0) << mine.err;
    const auto lines = tsv_lines(mine.out);
    ASSERT_GT(lines.size(), 3u) << mine.out;
    EXPECT_EQ(lines[0][0], "time");
    EXPECT_EQ(lines[0][1], "patient_key");
    for (std::size_t i = 1; i < lines.size(); ++i) {
        ASSERT_EQ(lines[i].size(), 9u) << mine.out;
        EXPECT_EQ(lines[i][1], "hmd-1") << mine.out;
    }
    std::size_t expected = 0;
    for (const auto& e : audit_rows(s.dir / "vault.db")) expected += e.patient_key == "hmd-1" ? 1 : 0;
    EXPECT_EQ(lines.size() - 1, expected);
    ASSERT_EQ(future.exit_code, 0) << future.err;
    EXPECT_EQ(tsv_lines(future.out).size(), 1u) << future.out;  // the header alone
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_EQ(tsv_lines(json.out).size(), 3u) << json.out;
    EXPECT_EQ(json.out.rfind("{\"time\":\"", 0), 0u) << json.out;
    EXPECT_EQ(bad.exit_code, 64);
    EXPECT_NE(bad.err.find("--since"), std::string::npos) << bad.err;
}

TEST(AuditLogCli, AuditCommandSaysSoWhenThereIsNoVault) {
    // Setup: a config whose vault was never created.
    temp_dir dir;
    headachemd::test::write_file(dir / "sync.toml", "[daemon]\ndatabase = \"" + (dir / "h.db").string() +
                                                        "\"\nvault = \"" + (dir / "v.db").string() + "\"\n");

    // Run
    const auto r =
        headachemd::test::run_binary({"audit", "--config", (dir / "sync.toml").string()}, dir.path());

    // Check: a clear error naming the file, and no file created.
    EXPECT_EQ(r.exit_code, 66);
    EXPECT_NE(r.err.find((dir / "v.db").string()), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "v.db"));
}

}  // namespace

namespace {

TEST(AuditLogCli, AnImportedTokenAndARekeyAreRecorded) {
    // Setup: two enrolled patients; a new token file for hmd-1 and a new key.
    audit_setup s(2, 0);
    const std::string token = s.ehr->issue_refresh_token(s.ids[0]);
    headachemd::test::write_file(s.dir / "rt.txt", token + "\n");

    // Run
    const auto imported = headachemd::test::run_binary(
        {"enroll", "hmd-1", "--config", s.config(), "--refresh-token-file", (s.dir / "rt.txt").string()},
        s.dir.path());
    const auto keygen =
        headachemd::test::run_binary({"keygen", "--token-key", (s.dir / "new.key").string()}, s.dir.path());
    const auto rekey = headachemd::test::run_binary(
        {"rekey", "--config", s.config(), "--new-key-file", (s.dir / "new.key").string()}, s.dir.path());

    // Check: an enroll event for hmd-1, then a rekey event counting the
    // secrets re-sealed (two tokens and the pseudonymization key, or two
    // when that key was never made), with no token anywhere.
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
    ASSERT_EQ(rekey.exit_code, 0) << rekey.err;
    SQLite::Database db(s.dir / "vault.db", SQLite::OPEN_READONLY);
    SQLite::Statement q(
        db,
        "SELECT action, coalesce(patient_key, '-'), coalesce(ehr, '-'), coalesce(count, -1), outcome "
        "FROM audit_event ORDER BY id");
    std::vector<std::string> got;
    while (q.executeStep())
        got.push_back(q.getColumn(0).getString() + " " + q.getColumn(1).getString() + " " +
                      q.getColumn(2).getString() + " " + q.getColumn(4).getString());
    const std::vector<std::string> expected{"enroll hmd-1 sandbox ok", "rekey - - ok"};
    EXPECT_EQ(got, expected);
    SQLite::Statement n(db, "SELECT count FROM audit_event WHERE action = 'rekey'");
    ASSERT_TRUE(n.executeStep());
    EXPECT_GE(n.getColumn(0).getInt(), 2);
    EXPECT_EQ(all_values(s.dir / "vault.db").find(token), std::string::npos);
}

}  // namespace

namespace {

TEST(AuditLogCli, SyncOncePurgesEventsOlderThanTheRetention) {
    // Setup: retention 30 days; an event from 31 days ago and one from 29.
    audit_setup s(1, 0);
    {
        std::string toml = headachemd::test::read_file(s.dir / "sync.toml");
        toml.insert(toml.find("[daemon]\n") + 9, "audit_retention_days = 30\n");
        headachemd::test::write_file(s.dir / "sync.toml", toml);
        headachemd::store::vault vault(s.dir / "vault.db", headachemd::test::token_key_in(s.dir.path()));
        const auto day = std::chrono::hours(24);
        const auto now = std::chrono::system_clock::now();
        headachemd::store::append_audit(vault, headachemd::store::enrollment_event(
                                                   headachemd::store::utc_timestamp(now - 31 * day), "old",
                                                   "sandbox", headachemd::store::audit_action::enroll));
        headachemd::store::append_audit(vault, headachemd::store::enrollment_event(
                                                   headachemd::store::utc_timestamp(now - 29 * day), "young",
                                                   "sandbox", headachemd::store::audit_action::enroll));
    }

    // Run
    const auto r = headachemd::test::run_binary({"sync-once", "--config", s.config()}, s.dir.path());

    // Check: the old event is gone, the young one and the pass's are there.
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, int> by_patient;
    for (const auto& e : audit_rows(s.dir / "vault.db")) ++by_patient[e.patient_key];
    EXPECT_EQ(by_patient.count("old"), 0u);
    EXPECT_EQ(by_patient["young"], 1);
    EXPECT_GT(by_patient["hmd-1"], 3);
    EXPECT_NE(r.err.find("deleted 1 event(s) older than 30 days"), std::string::npos) << r.err;
}

}  // namespace
