// Issue 12, defect 4, end to end: a token endpoint that echoes its request
// (the refresh token, the client secret or its Basic credentials) in
// error_description. The real binary's sync-once and status against the
// sandbox EHR over loopback TLS; neither their output, the log, nor
// headache.db's sync_status may hold any of it. Under ctest the log scan
// (tests/logscan) searches the same output and headache.db once more, for
// every secret the sandbox recorded.
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/core/base64.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::temp_dir;

// Every text of headache.db's sync_status, one row a line.
std::string sync_status_text(const std::filesystem::path& db) {
    SQLite::Database d(db, SQLite::OPEN_READONLY);
    SQLite::Statement q(d, "SELECT * FROM sync_status");
    std::string out;
    while (q.executeStep()) {
        for (int i = 0; i < q.getColumnCount(); ++i) out += q.getColumn(i).getString() + "\x1f";
        out += "\n";
    }
    return out;
}

TEST(TokenEndpointEcho, TheEchoedRequestReachesNeitherOutputNorStatusNorHeadacheDb) {
    // Setup: one patient enrolled with a token the sandbox issued.
    temp_dir dir;
    headachemd::sandbox::background_server ehr(headachemd::sandbox::options{});
    ehr->write_ca_pem(dir / "ca.pem");
    const std::string secret = ehr->config().client_secret;
    headachemd::test::write_file(dir / "client.secret", secret);
    const std::string id = ehr->patient_ids().front();
    const std::string token = ehr->issue_refresh_token(id);
    {
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        const std::string now = "2026-01-01T00:00:00Z";
        vault.put_enrollment({"hmd-1", "sandbox", id, token, "", now, false}, now);
    }
    const auto write_config = [&](const std::string& client_auth) {
        headachemd::test::write_file(
            dir / "sync.toml",
            "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
                (dir / "vault.db").string() + "\"\nlog_level = \"info\"\n" +
                headachemd::test::token_key_toml(dir.path()) +
                "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" + ehr->fhir_base() +
                "\"\nclient_id = \"" + ehr->config().client_id + "\"\nclient_auth = \"" + client_auth +
                "\"\nclient_secret_file = \"" + (dir / "client.secret").string() + "\"\nca_file = \"" +
                (dir / "ca.pem").string() + "\"\nrequests_per_minute = 60000\n" +
                "\n[[patient]]\nkey = \"hmd-1\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + id + "\"\n");
    };
    const std::string config = (dir / "sync.toml").string();
    // What a leak would look like: each secret, also as the request carried it.
    const std::vector<std::string> secrets = {
        token, secret, headachemd::http::percent_encode(secret),
        headachemd::base64_encode(ehr->config().client_id + ":" + secret)};

    for (const std::string& auth : std::vector<std::string>{"client_secret_basic", "client_secret_post"}) {
        write_config(auth);
        ehr->echo_token_requests(400, "invalid_request", 1);
        // Run
        const auto sync = headachemd::test::run_binary({"sync-once", "--config", config}, dir.path());
        const auto status = headachemd::test::run_binary({"status", "--config", config}, dir.path());
        // Check: the failure is visible by its OAuth code ...
        ASSERT_GE(sync.exit_code, 0) << sync.err;
        EXPECT_NE(sync.exit_code, 0) << sync.out << sync.err;
        EXPECT_NE(status.out.find("invalid_request"), std::string::npos) << status.out << status.err;
        const std::string rows = sync_status_text(dir / "headache.db");
        EXPECT_NE(rows.find("invalid_request"), std::string::npos) << rows;
        // ... and nothing the request carried is anywhere.
        for (const auto& s : secrets) {
            SCOPED_TRACE(auth);
            EXPECT_EQ(sync.out.find(s), std::string::npos);
            EXPECT_EQ(sync.err.find(s), std::string::npos);
            EXPECT_EQ(status.out.find(s), std::string::npos);
            EXPECT_EQ(status.err.find(s), std::string::npos);
            EXPECT_EQ(rows.find(s), std::string::npos);
        }
        for (const std::string& text : {sync.out, sync.err, status.out, rows})
            EXPECT_EQ(text.find('\r'), std::string::npos) << auth;
        // The echo spent nothing: the enrollment is intact.
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        const auto enr = vault.find_enrollment("hmd-1", "sandbox");
        ASSERT_TRUE(enr);
        EXPECT_EQ(enr->refresh_token, token);
        EXPECT_FALSE(enr->needs_reauth);
    }
    EXPECT_EQ(ehr->stats().token_calls, 2u);
}

}  // namespace
