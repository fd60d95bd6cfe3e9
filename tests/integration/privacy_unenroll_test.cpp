// Issue 5, item 2, with the real binary against the sandbox EHR on loopback:
// [privacy] identifiers ("none" keeps no FHIR patient id, name, telecom or
// MRN anywhere in headache.db; "minimal" adds the FHIR id in its column),
// and `unenroll` (RFC 7009 revocation at the sandbox, vault removal,
// --purge of exactly one patient's rows).
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/http/client.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

headachemd::store::vault open_vault(const fs::path& path) {
    return headachemd::store::vault(path, headachemd::test::token_key_in(path.parent_path()));
}

// The sandbox, a sync.toml naming it and `patients` patients hmd-1…, each
// enrolled in the vault with a fresh refresh token.
struct setup {
    temp_dir dir;
    headachemd::sandbox::background_server ehr;
    std::vector<std::string> ids;
    std::map<std::string, std::string> issued;  // patient key → refresh token put in the vault

    setup(int patients, const std::string& privacy)
        : ehr([patients] {
              headachemd::sandbox::options so;
              so.patients = patients;
              return so;
          }()) {
        ehr->write_ca_pem(dir / "ca.pem");
        write_file(dir / "client.secret", ehr->config().client_secret);
        std::string toml = "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                           (dir / "vault.db").string() + "\"\nlog_level = \"info\"\n" +
                           headachemd::test::token_key_toml(dir.path()) + privacy +
                           "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" +
                           ehr->fhir_base() + "\"\nclient_id = \"" + ehr->config().client_id +
                           "\"\nclient_secret_file = \"" + (dir / "client.secret").string() +
                           "\"\nca_file = \"" + (dir / "ca.pem").string() +
                           "\"\nrequests_per_minute = 60000\n";
        ids = ehr->patient_ids();
        auto vault = open_vault(dir / "vault.db");
        const std::string now = "2026-01-01T00:00:00Z";
        for (int i = 0; i < patients; ++i) {
            const auto& id = ids[static_cast<std::size_t>(i)];
            const std::string key = "hmd-" + std::to_string(i + 1);
            toml +=
                "\n[[patient]]\nkey = \"" + key + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + id + "\"\n";
            issued[key] = ehr->issue_refresh_token(id);
            vault.put_enrollment({key, "sandbox", id, issued[key], "", now, false}, now);
        }
        write_file(dir / "sync.toml", toml);
    }

    std::string config() const { return (dir / "sync.toml").string(); }
    headachemd::test::command_result run(std::vector<std::string> args) {
        args.push_back("-c");
        args.push_back(config());
        return run_binary(args, dir.path());
    }
    void set_privacy(const std::string& privacy) {
        std::string toml = read_file(dir / "sync.toml");
        const auto at = toml.find("[privacy]");
        if (at != std::string::npos) toml.erase(at, toml.find('\n', toml.find('\n', at) + 1) + 1 - at);
        const auto ehr_at = toml.find("\n[[ehr]]");
        toml.insert(ehr_at, privacy);
        write_file(dir / "sync.toml", toml);
    }
    // headache.db and its -wal, the bytes an analyst's copy would hold.
    std::string db_bytes() const {
        std::string all = read_file(dir / "headache.db");
        if (fs::exists(dir / "headache.db-wal")) all += read_file(dir / "headache.db-wal");
        return all;
    }
};

// The identifying strings the sandbox puts in patient i's Patient resource
// (lib/sandbox/src/data.cpp render_patient): the FHIR id first, then the
// name ("Test Patient NNNN"), the MRN ("SBX-NNNN") and the phone (555-01NN).
std::vector<std::string> identifiers_of(const setup& s, int i) {
    return {s.ids[static_cast<std::size_t>(i)], "Test Patient", "SBX-", "555-01"};
}

std::string scalar(const fs::path& db, const std::string& sql) {
    SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(d, sql);
    if (!q.executeStep() || q.getColumn(0).isNull()) return "<null>";
    return q.getColumn(0).getString();
}

// ---- [privacy] identifiers ---------------------------------------------------

TEST(Privacy, NoneByDefaultLeavesNoFhirIdNameOrMrnAnywhereInHeadacheDb) {
    // Setup: no [privacy] section: "none" is the default.
    setup s(3, "");
    // Run
    const auto r = s.run({"sync-once"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Check: the patients are there (birth year and sex), their identifiers are not.
    EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient WHERE birth_year IS NOT NULL"),
              "3");
    EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient WHERE fhir_patient_id IS NOT NULL"),
              "0");
    EXPECT_NE(scalar(s.dir / "headache.db", "SELECT count(*) FROM condition"), "0");
    const std::string bytes = s.db_bytes();
    ASSERT_GT(bytes.size(), 4096u);
    for (int i = 0; i < 3; ++i) {
        for (const auto& needle : identifiers_of(s, i)) {
            EXPECT_EQ(bytes.find(needle), std::string::npos) << "headache.db holds \"" << needle << "\"";
        }
    }
}

TEST(Privacy, MinimalAddsTheFhirIdInItsColumnAndStillNoNames) {
    setup s(2, "[privacy]\nidentifiers = \"minimal\"\n");
    const auto r = s.run({"sync-once"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient WHERE fhir_patient_id = '" +
                                                    s.ids[static_cast<std::size_t>(i)] + "'"),
                  "1");
        // The key column is the pseudonym in both settings, so a switch keeps one row.
        EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient WHERE id = '" +
                                                    s.ids[static_cast<std::size_t>(i)] + "'"),
                  "0");
    }
    const std::string bytes = s.db_bytes();
    for (int i = 0; i < 2; ++i) {
        const auto needles = identifiers_of(s, i);
        for (std::size_t n = 1; n < needles.size(); ++n) {
            EXPECT_EQ(bytes.find(needles[n]), std::string::npos)
                << "headache.db holds \"" << needles[n] << "\"";
        }
    }
}

TEST(Privacy, SwitchingFromMinimalToNoneRemovesTheStoredFhirIds) {
    // Setup: a database synced under "minimal".
    setup s(2, "[privacy]\nidentifiers = \"minimal\"\n");
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    ASSERT_NE(s.db_bytes().find(s.ids[0]), std::string::npos);
    // Run: the admin switches to "none"; the next run applies it.
    s.set_privacy("[privacy]\nidentifiers = \"none\"\n");
    const auto r = s.run({"sync-once"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Check: same rows, no FHIR id left in the file or its WAL.
    EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient"), "2");
    EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient WHERE fhir_patient_id IS NOT NULL"),
              "0");
    const std::string bytes = s.db_bytes();
    for (const auto& id : s.ids) EXPECT_EQ(bytes.find(id), std::string::npos) << id;
}

TEST(Privacy, AFailedPatientReadLeavesNoFhirIdInSyncStatus) {
    // Setup: the read GET /fhir/Patient/{id} fails every time, and the
    // transport's error names the request's path, which ends in the id.
    setup s(1, "");
    headachemd::sandbox::scripted_fault f;
    f.what = headachemd::sandbox::scripted_fault::kind::truncated_body;
    f.type = "Patient";
    f.count = 1000;
    s.ehr->add_scripted_fault(f);
    // Run
    const auto r = s.run({"sync-once"});
    // Check: the failure is recorded, with the id replaced.
    EXPECT_EQ(r.exit_code, 75) << r.err;
    const std::string error =
        scalar(s.dir / "headache.db", "SELECT last_error FROM sync_status WHERE resource_type = 'Patient'");
    EXPECT_NE(error, "<null>");
    EXPECT_NE(error.find("/Patient/<patient>"), std::string::npos) << error;
    EXPECT_EQ(s.db_bytes().find(s.ids[0]), std::string::npos);
}

// A Bundle as an export would carry it: one patient with every identifier
// "none" must keep out, and a Condition that references it.
constexpr const char* ingest_bundle = R"({"resourceType":"Bundle","type":"collection","entry":[
{"resource":{"resourceType":"Patient","id":"ingest-pt-9931","identifier":[{"system":"urn:mrn","value":"MRN-778812"}],
 "name":[{"family":"Qwertyson","given":["Zelda"]}],"telecom":[{"system":"phone","value":"555-0177"}],
 "address":[{"line":["12 Elmwood Lane"],"city":"Springfield"}],"gender":"female","birthDate":"1981-04-02"}},
{"resource":{"resourceType":"Condition","id":"ingest-c-1","subject":{"reference":"Patient/ingest-pt-9931"},
 "code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"G43.709"}]}}}]})";

TEST(Privacy, IngestUnderNoneKeepsNoIdentifierAndMinimalAddsTheId) {
    temp_dir dir;
    write_file(dir / "bundle.json", ingest_bundle);
    const std::string key = headachemd::test::token_key_file(dir.path()).string();
    const std::vector<std::string> secrets = {"ingest-pt-9931", "MRN-778812", "Qwertyson", "Zelda",
                                              "555-0177",       "Elmwood",    "1981-04-02"};
    // Run: "none" is the default.
    auto r = run_binary({"ingest", "--db", (dir / "headache.db").string(), "--token-key-file", key,
                         (dir / "bundle.json").string()},
                        dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Check
    EXPECT_EQ(scalar(dir / "headache.db", "SELECT birth_year || sex FROM patient"), "1981female");
    // The patient row and the condition share the pseudonymous key.
    EXPECT_EQ(
        scalar(dir / "headache.db", "SELECT count(*) FROM patient p JOIN condition c USING (patient_key)"),
        "1");
    {
        std::string bytes = read_file(dir / "headache.db");
        if (fs::exists(dir / "headache.db-wal")) bytes += read_file(dir / "headache.db-wal");
        for (const auto& s : secrets) EXPECT_EQ(bytes.find(s), std::string::npos) << s;
    }
    // Raw JSON names the patient: refused under "none", before anything is opened.
    r = run_binary({"ingest", "--db", (dir / "other.db").string(), "--token-key-file", key, "--store-raw",
                    (dir / "bundle.json").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 64);
    EXPECT_NE(r.err.find("--identifiers minimal"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "other.db"));
    // "minimal": the FHIR id lands in fhir_patient_id, on the same row.
    r = run_binary({"ingest", "--db", (dir / "headache.db").string(), "--token-key-file", key,
                    "--identifiers", "minimal", (dir / "bundle.json").string()},
                   dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(scalar(dir / "headache.db", "SELECT group_concat(fhir_patient_id) FROM patient"),
              "ingest-pt-9931");
    std::string bytes = read_file(dir / "headache.db");
    if (fs::exists(dir / "headache.db-wal")) bytes += read_file(dir / "headache.db-wal");
    for (std::size_t i = 1; i < secrets.size(); ++i)
        EXPECT_EQ(bytes.find(secrets[i]), std::string::npos) << secrets[i];
}

// ---- unenroll ------------------------------------------------------------------

// POSTs a refresh_token grant to the sandbox as a client would: the answer's
// OAuth error code, or "ok".
std::string try_refresh(setup& s, const std::string& refresh_token) {
    asio::io_context io;
    headachemd::http::client_options o;
    o.extra_ca_files.push_back(s.dir / "ca.pem");
    headachemd::http::client c(io.get_executor(), o);
    std::string outcome = "no answer";
    auto go = [&]() -> asio::awaitable<void> {
        const auto built = headachemd::smart::make_refresh_request(
            refresh_token, {s.ehr->config().client_id, s.ehr->config().client_secret,
                            headachemd::smart::client_auth::client_secret_basic});
        headachemd::http::request req;
        req.method = boost::beast::http::verb::post;
        req.url = s.ehr->base_url() + "/token";
        for (const auto& [n, v] : built.headers) req.headers.push_back({n, v});
        req.body = built.body;
        auto r = co_await c.send(std::move(req));
        if (r) {
            auto t = headachemd::smart::parse_token_response(r->status, r->body);
            outcome = t ? "ok" : to_string(t.err().code);
        }
        c.close_idle();
    };
    asio::co_spawn(io, go, [](std::exception_ptr ep) {
        if (ep) std::rethrow_exception(ep);
    });
    io.run();
    return outcome;
}

// Every row of every table for one patient key, as text: what must stay
// byte-identical for the patient who is not unenrolled.
std::string rows_of(const fs::path& db, const std::string& key) {
    SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
    std::string out;
    for (const char* t : {"patient", "condition", "medication_request", "appointment", "encounter",
                          "observation", "procedure", "sync_cursor", "sync_status"}) {
        SQLite::Statement q(
            d, std::string("SELECT * FROM \"") + t + "\" WHERE patient_key = ?1 ORDER BY 1, 2, 3");
        q.bind(1, key);
        while (q.executeStep()) {
            out += t;
            for (int c = 0; c < q.getColumnCount(); ++c)
                out += "|" + (q.getColumn(c).isNull() ? std::string("<null>") : q.getColumn(c).getString());
            out += "\n";
        }
    }
    return out;
}

long long count_rows_of(const fs::path& db, const std::string& key) {
    const std::string rows = rows_of(db, key);
    return std::count(rows.begin(), rows.end(), '\n');
}

TEST(Unenroll, RevokesAtTheEhrAndRemovesTheEnrollmentKeepingRowsWithoutPurge) {
    // Setup
    setup s(2, "");
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    const auto token = open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox")->refresh_token;
    const auto rows_before = count_rows_of(s.dir / "headache.db", "hmd-1");
    ASSERT_GT(rows_before, 0);
    // Run
    const auto r = s.run({"unenroll", "hmd-1"});
    // Check: revoked at the sandbox, gone from the vault, rows kept, guidance printed.
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(s.ehr->stats().revocations, 1u);
    EXPECT_EQ(try_refresh(s, token), "invalid_grant");
    auto vault = open_vault(s.dir / "vault.db");
    EXPECT_FALSE(vault.find_enrollment("hmd-1", "sandbox"));
    EXPECT_TRUE(vault.find_enrollment("hmd-2", "sandbox"));
    EXPECT_EQ(count_rows_of(s.dir / "headache.db", "hmd-1"), rows_before);
    EXPECT_NE(r.out.find("[[patient]]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--purge"), std::string::npos) << r.out;
    // Logs name the key, never the token.
    EXPECT_NE(r.err.find("hmd-1"), std::string::npos) << r.err;
    EXPECT_EQ((r.out + r.err).find(token), std::string::npos);
    // The audit log holds the revocation and the removal, in that order.
    {
        std::vector<std::string> seen;
        for (const auto& e : st::read_audit_log(s.dir / "vault.db", st::audit_query{.patient_key = "hmd-1"}))
            if (e.action == "revoke" || e.action == "unenroll") seen.push_back(e.action + ":" + e.outcome);
        EXPECT_EQ(seen, (std::vector<std::string>{"revoke:ok", "unenroll:ok"}));
    }
    // The other patient still syncs.
    const auto again = s.run({"sync-once"});
    EXPECT_NE(again.out.find("hmd-2"), std::string::npos);
    EXPECT_EQ(s.ehr->stats().revocations, 1u);
}

TEST(Unenroll, PurgeRemovesExactlyThatPatientsRowsAndLeavesTheOtherByteIdentical) {
    // Setup: two patients synced.
    setup s(2, "");
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    const std::string other_before = rows_of(s.dir / "headache.db", "hmd-2");
    ASSERT_GT(count_rows_of(s.dir / "headache.db", "hmd-1"), 5);
    ASSERT_GT(count_rows_of(s.dir / "headache.db", "hmd-2"), 5);
    // Run
    const auto r = s.run({"unenroll", "hmd-1", "--ehr", "sandbox", "--purge"});
    // Check
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(count_rows_of(s.dir / "headache.db", "hmd-1"), 0);
    EXPECT_EQ(rows_of(s.dir / "headache.db", "hmd-2"), other_before);
    EXPECT_EQ(scalar(s.dir / "headache.db", "SELECT count(*) FROM patient"), "1");
    EXPECT_FALSE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
    {
        const auto events = st::read_audit_log(s.dir / "vault.db", st::audit_query{.patient_key = "hmd-1"});
        ASSERT_FALSE(events.empty());
        EXPECT_EQ(events.back().action, "unenroll");
        EXPECT_EQ(events.back().outcome, "purged");
        EXPECT_GT(events.back().count.value_or(0), 5);
    }
    // Again: nothing is left to remove, so the key is unknown now.
    const auto again = s.run({"unenroll", "hmd-1", "--purge"});
    EXPECT_EQ(again.exit_code, 64) << again.err;
    EXPECT_EQ(rows_of(s.dir / "headache.db", "hmd-2"), other_before);
}

TEST(Unenroll, UnknownKeyIsAClearErrorAndChangesNothing) {
    setup s(1, "");
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    const std::string vault_before = read_file(s.dir / "vault.db");
    const std::string rows_before = rows_of(s.dir / "headache.db", "hmd-1");
    const auto r = s.run({"unenroll", "hmd-404", "--purge"});
    EXPECT_EQ(r.exit_code, 64);
    EXPECT_NE(r.err.find("hmd-404"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
    EXPECT_EQ(s.ehr->stats().revocation_calls, 0u);
    EXPECT_EQ(rows_of(s.dir / "headache.db", "hmd-1"), rows_before);
    EXPECT_TRUE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
    // A known key at an EHR it is not enrolled at is unknown too.
    const auto wrong_ehr = s.run({"unenroll", "hmd-1", "--ehr", "elsewhere"});
    EXPECT_EQ(wrong_ehr.exit_code, 64) << wrong_ehr.err;
    EXPECT_TRUE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
}

TEST(Unenroll, WithoutARevocationEndpointTheEnrollmentGoesAndTheWarningSaysTheGrantLives) {
    // Setup: discovery off, a token endpoint, and no revocation_endpoint.
    setup s(1, "");
    {
        std::string toml = read_file(s.dir / "sync.toml");
        toml.insert(toml.find("requests_per_minute"),
                    "discovery = false\ntoken_endpoint = \"" + s.ehr->base_url() + "/token\"\n");
        write_file(s.dir / "sync.toml", toml);
    }
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    const auto token = open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox")->refresh_token;
    // Run
    const auto r = s.run({"unenroll", "hmd-1"});
    // Check: removed here, nothing sent to the EHR, and said so.
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("no revocation_endpoint"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("may still be valid"), std::string::npos) << r.out;
    EXPECT_EQ(s.ehr->stats().revocation_calls, 0u);
    EXPECT_FALSE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
    EXPECT_EQ(try_refresh(s, token), "ok");
}

TEST(Unenroll, RevocationEndpointDownChangesNothingUnlessForced) {
    // Setup
    setup s(1, "");
    ASSERT_EQ(s.run({"sync-once"}).exit_code, 0);
    const auto token = open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox")->refresh_token;
    const std::string rows_before = rows_of(s.dir / "headache.db", "hmd-1");
    s.ehr->fail_revocations(503, 2);
    // Run: without --force
    const auto refused = s.run({"unenroll", "hmd-1", "--purge"});
    // Check: exit 69, the enrollment and the rows stay, so it can be retried.
    EXPECT_EQ(refused.exit_code, 69) << refused.err;
    EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
    EXPECT_TRUE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
    EXPECT_EQ(rows_of(s.dir / "headache.db", "hmd-1"), rows_before);
    // Run: --force removes it here and says the grant may live on.
    const auto forced = s.run({"unenroll", "hmd-1", "--purge", "--force"});
    EXPECT_EQ(forced.exit_code, 0) << forced.err;
    EXPECT_NE(forced.out.find("may still be valid"), std::string::npos) << forced.out;
    EXPECT_FALSE(open_vault(s.dir / "vault.db").find_enrollment("hmd-1", "sandbox"));
    EXPECT_EQ(count_rows_of(s.dir / "headache.db", "hmd-1"), 0);
    // The server never revoked it: the token still works there (what the warning says).
    EXPECT_EQ(try_refresh(s, token), "ok");
}

}  // namespace
