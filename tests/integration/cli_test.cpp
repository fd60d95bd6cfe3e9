// The command line: demo, check-config, enroll --refresh-token-file, status.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

using headachemd::test::read_file;
using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

TEST(Cli, DemoRunsWithNoSetupAndFillsEveryTable) {
    temp_dir dir;
    const auto r = run_binary({"demo", "--patients", "3", "--dir", (dir / "demo").string()}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("Enrolled 3 sandbox patients"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Synced 3 of 3"), std::string::npos) << r.out;
    SQLite::Database db((dir / "demo" / "headache.db").string());
    for (const char* t :
         {"patient", "condition", "medication_request", "encounter", "observation", "appointment"}) {
        SQLite::Statement q(db, std::string("SELECT count(*) FROM ") + t);
        q.executeStep();
        EXPECT_GT(q.getColumn(0).getInt(), 0) << t;
    }
    // The synthetic names never reach the analytics database or the output.
    EXPECT_EQ(r.out.find("Test Patient"), std::string::npos);
    EXPECT_EQ(read_file(dir / "demo" / "headache.db").find("Test Patient"), std::string::npos);
}

TEST(Cli, CheckConfigNamesTheLineAndExits78) {
    temp_dir dir;
    write_file(dir / "sync.toml",
               "[daemon]\ndatabase = \"/tmp/x.db\"\n\n[[ehr]]\nname = \"e\"\nfhir_base = "
               "\"http://ehr.example.org/fhir\"\nclient_id = \"c\"\n");
    const auto r = run_binary({"check-config", "--config", (dir / "sync.toml").string()}, dir.path());
    EXPECT_EQ(r.exit_code, 78);
    EXPECT_NE(r.err.find("sync.toml:6:"), std::string::npos) << r.err;
}

TEST(Cli, CheckConfigAcceptsTheShippedExample) {
    temp_dir dir;
    const auto example = headachemd::test::fixtures().parent_path().parent_path() / "config.example.toml";
    const auto r = run_binary({"check-config", "--config", example.string()}, dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cli, EnrollImportsARefreshTokenIntoTheVaultOnly) {
    temp_dir dir;
    write_file(dir / "sync.toml",
               "[daemon]\ndatabase = \"" + (dir / "h.db").string() + "\"\nvault = \"" +
                   (dir / "v.db").string() + "\"\n" + headachemd::test::token_key_toml(dir.path()) +
                   "\n[[ehr]]\nname = \"e\"\nfhir_base = \"https://127.0.0.1:9/fhir\"\nclient_id = \"c\"\n"
                   "client_auth = \"none\"\n\n[[patient]]\nkey = \"hmd-1\"\nehr = \"e\"\nfhir_patient_id = "
                   "\"p1\"\n");
    write_file(dir / "rt.txt", "refresh-token-value-123\n");
    const auto r = run_binary({"enroll", "hmd-1", "--config", (dir / "sync.toml").string(),
                               "--refresh-token-file", (dir / "rt.txt").string()},
                              dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    headachemd::store::vault v(dir / "v.db", headachemd::test::token_key_in(dir.path()));
    const auto e = v.find_enrollment("hmd-1", "e");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->refresh_token, "refresh-token-value-123");
    EXPECT_EQ(e->fhir_patient_id, "p1");
    EXPECT_EQ(r.err.find("refresh-token-value-123"), std::string::npos);
    EXPECT_EQ(read_file(dir / "h.db").find("refresh-token-value-123"), std::string::npos);

    // A key not in the config is refused.
    const auto bad = run_binary({"enroll", "hmd-9", "--config", (dir / "sync.toml").string(),
                                 "--refresh-token-file", (dir / "rt.txt").string()},
                                dir.path());
    EXPECT_EQ(bad.exit_code, 78);
    // status: enrolled and waiting for its first sync is not a problem (0);
    // a patient marked for re-enrollment is (75).
    const auto st = run_binary({"status", "--config", (dir / "sync.toml").string()}, dir.path());
    EXPECT_EQ(st.exit_code, 0) << st.out;
    EXPECT_NE(st.out.find("hmd-1"), std::string::npos);
    EXPECT_NE(st.out.find("pending"), std::string::npos);  // enrolled, first sync not run yet
    v.set_needs_reauth("hmd-1", "e", true, "t");
    const auto st2 = run_binary({"status", "--config", (dir / "sync.toml").string()}, dir.path());
    EXPECT_EQ(st2.exit_code, 75) << st2.out;
    EXPECT_NE(st2.out.find("REAUTH"), std::string::npos);
}

}  // namespace
