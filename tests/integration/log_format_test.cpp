// The real binary's log forms (docs/admin/monitoring.md "Logs"): `--log-format json` gives
// one parsable object per line even at trace level and on error paths,
// `journald` gives a priority prefix on every line, and a newline inside
// text the EHR sent cannot forge a log line.
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "headachemd/sandbox/sandbox.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::temp_dir;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// Setup shared by the tests: a sandbox with three enrolled patients, the
// third one's grant revoked (invalid_grant: an error path that logs).
struct log_fixture : ::testing::Test {
    temp_dir dir;
    std::unique_ptr<headachemd::sandbox::background_server> ehr;

    void SetUp() override {
        headachemd::sandbox::options so;
        so.patients = 3;
        ehr = std::make_unique<headachemd::sandbox::background_server>(so);
        (*ehr)->write_ca_pem(dir / "ca.pem");
        headachemd::test::write_file(dir / "client.secret", (*ehr)->config().client_secret);
        std::string toml =
            "[daemon]\ndatabase = \"" + (dir / "headache.db").string() + "\"\nvault = \"" +
            (dir / "vault.db").string() + "\"\n" + headachemd::test::token_key_toml(dir.path()) +
            "\n[[ehr]]\nname = \"sandbox\"\nprofile = \"generic\"\nfhir_base = \"" + (*ehr)->fhir_base() +
            "\"\nclient_id = \"" + (*ehr)->config().client_id + "\"\nclient_secret_file = \"" +
            (dir / "client.secret").string() + "\"\nca_file = \"" + (dir / "ca.pem").string() +
            "\"\nrequests_per_minute = 60000\n";
        headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
        int i = 0;
        for (const auto& id : (*ehr)->patient_ids()) {
            const std::string key = "hmd-" + std::to_string(++i);
            toml +=
                "\n[[patient]]\nkey = \"" + key + "\"\nehr = \"sandbox\"\nfhir_patient_id = \"" + id + "\"\n";
            vault.put_enrollment({key, "sandbox", id, (*ehr)->issue_refresh_token(id), "", "t", false}, "t");
        }
        (*ehr)->revoke_patient_grants((*ehr)->patient_ids().at(2));
        headachemd::test::write_file(dir / "sync.toml", toml);
    }

    headachemd::test::command_result sync_once(const std::vector<std::string>& extra) {
        std::vector<std::string> args{"sync-once", "--config", (dir / "sync.toml").string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return headachemd::test::run_binary(args, dir.path());
    }
};

TEST_F(log_fixture, JsonAtTraceLevelIsOneParsableObjectPerLine) {
    const auto r = sync_once({"--log-format", "json", "--log-level", "trace"});
    EXPECT_EQ(r.exit_code, 75) << r.err << r.out;  // hmd-3 needs re-enrollment

    const auto lines = lines_of(r.err);
    ASSERT_FALSE(lines.empty());
    simdjson::dom::parser parser;
    const std::regex ts_form(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    bool saw_reauth_error = false;
    for (const auto& line : lines) {
        simdjson::dom::object obj;
        ASSERT_EQ(parser.parse(line).get(obj), simdjson::SUCCESS) << "not one JSON object: " << line;
        std::string_view ts, level, logger, msg;
        ASSERT_EQ(obj["ts"].get(ts), simdjson::SUCCESS) << line;
        ASSERT_EQ(obj["level"].get(level), simdjson::SUCCESS) << line;
        ASSERT_EQ(obj["logger"].get(logger), simdjson::SUCCESS) << line;
        ASSERT_EQ(obj["msg"].get(msg), simdjson::SUCCESS) << line;
        EXPECT_TRUE(std::regex_match(std::string(ts), ts_form)) << line;
        EXPECT_EQ(logger, "headachemd");
        if (level == "error" && msg.find("hmd-3") != std::string_view::npos &&
            msg.find("invalid_grant") != std::string_view::npos)
            saw_reauth_error = true;
    }
    EXPECT_TRUE(saw_reauth_error) << r.err;
}

TEST_F(log_fixture, JournaldFormPrefixesEveryLineWithItsPriority) {
    const auto r = sync_once({"--log-format", "journald"});
    EXPECT_EQ(r.exit_code, 75) << r.err << r.out;
    const auto lines = lines_of(r.err);
    ASSERT_FALSE(lines.empty());
    bool saw_error = false;
    for (const auto& line : lines) {
        EXPECT_TRUE(
            std::regex_search(line, std::regex("^<[2-7]>(critical|error|warning|info|debug|trace): ")))
            << line;
        saw_error = saw_error || line.rfind("<3>error: patient hmd-3", 0) == 0;
    }
    EXPECT_TRUE(saw_error) << r.err;
}

// stderr is a file here, not the journal: "auto" is text, even with a
// JOURNAL_STREAM inherited from somewhere else.
TEST_F(log_fixture, AutoIsTextWhenStderrIsNotTheJournalStream) {
    const pid_t pid =
        headachemd::test::spawn_binary({"sync-once", "--config", (dir / "sync.toml").string()},
                                       dir / "out.txt", dir / "err.txt", {"JOURNAL_STREAM=1:1"});
    ASSERT_GT(pid, 0);
    EXPECT_EQ(headachemd::test::wait_exit(pid), 75);
    const auto lines = lines_of(headachemd::test::read_file(dir / "err.txt"));
    ASSERT_FALSE(lines.empty());
    for (const auto& line : lines) {
        EXPECT_TRUE(std::regex_search(
            line, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warning|info): )")))
            << line;
    }
}

// Text from outside that reaches a log line (here a file name, which may
// hold any byte but '/' and NUL) with a newline and a fake entry in it: in
// every form it stays inside the one line that reports it.
TEST(LogForms, ANewlineInLoggedTextCannotForgeALogLine) {
    temp_dir dir;
    const auto evil = dir / "bad\n<2>critical: FORGED.json";
    headachemd::test::write_file(
        evil, R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"x"}]})");
    for (const std::string form : {"journald", "text", "json"}) {
        const auto r = headachemd::test::run_binary({"ingest", "--log-format", form, "--token-key-file",
                                                     headachemd::test::token_key_file(dir.path()).string(),
                                                     "--db", (dir / "h.db").string(), evil.string()},
                                                    dir.path());
        EXPECT_EQ(r.exit_code, 65) << r.err;
        ASSERT_NE(r.err.find("FORGED"), std::string::npos) << form << ": the file name is not logged:\n"
                                                           << r.err;
        for (const auto& line : lines_of(r.err)) {
            EXPECT_NE(line.rfind("<2>", 0), 0u) << form << ": a forged line: " << line;
            if (line.find("FORGED") != std::string::npos) {
                EXPECT_NE(line.find("bad\\n<2>critical: FORGED"), std::string::npos) << form << ": " << line;
            }
        }
    }
}

}  // namespace
