// The command line: demo, check-config, enroll --refresh-token-file, status.
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/token_key.hpp"
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

// `demo --bulk` (issue 15): the binary exports the sandbox's clinic as a
// backend app, prints what `export` prints, and exits 0. It waits the
// product's 10 s before the first status poll (a wait in the product, not
// the test's synchronization).
TEST(Cli, DemoBulkExportsTheClinicWithNoSetup) {
    temp_dir dir;
    const auto r =
        run_binary({"demo", "--bulk", "--patients", "2", "--dir", (dir / "demo").string()}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("export of EHR sandbox: done"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1 kick-off"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("Enrolled"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("http"), std::string::npos) << r.out;  // no status or file URL
    SQLite::Database db((dir / "demo" / "headache.db").string());
    SQLite::Statement q(db, "SELECT count(*) FROM patient");
    q.executeStep();
    EXPECT_EQ(q.getColumn(0).getInt(), 2);
    EXPECT_TRUE(r.err.empty()) << r.err;
}

// A --dir that cannot be made is the admin's typo: exit 73 (EX_CANTCREAT)
// and a message naming the path, not an abort (it exited 134 before).
TEST(Cli, DemoWithADirBlockedByAFileSaysWhichPathAndExits73) {
    temp_dir dir;
    write_file(dir / "taken", "x");
    const auto r =
        run_binary({"demo", "--patients", "1", "--dir", (dir / "taken" / "demo").string()}, dir.path());
    EXPECT_EQ(r.exit_code, 73) << r.err << r.out;
    EXPECT_NE(r.err.find("cannot create the directory " + (dir / "taken" / "demo").string()),
              std::string::npos)
        << r.err;
}

// `demo` enrolls like a real patient (issue 14): a pending row per patient,
// taken out by the redirect, and the audit events a browser enrollment
// leaves (the token-endpoint call, then `enroll`).
TEST(Cli, DemoEnrollsThroughTheProductionPathWithAuditAndNoPendingRows) {
    // Setup / Run
    temp_dir dir;
    const auto r = run_binary({"demo", "--patients", "3", "--dir", (dir / "demo").string()}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    // Check
    headachemd::store::vault vault(dir / "demo" / "vault.db",
                                   headachemd::store::load_token_key(dir / "demo" / "token.key"));
    headachemd::store::pending_enrollments pending(vault);
    const auto events = headachemd::store::query_audit(vault, {});
    for (const char* key : {"demo-001", "demo-002", "demo-003"}) {
        EXPECT_EQ(pending.count_for(key, "sandbox"), 0) << key;
        std::vector<std::string> actions;
        for (const auto& e : events)
            if (e.patient_key == key && (e.action == "token.exchange" || e.action.rfind("enroll", 0) == 0))
                actions.push_back(e.action + ":" + e.outcome);  // the sync's own events follow
        EXPECT_EQ(actions, (std::vector<std::string>{"token.exchange:ok", "enroll:ok"})) << key;
    }
}

TEST(Cli, DemoWritesTheReportBesideTheDatabaseAndPrintsItsPath) {
    // Setup / Run
    temp_dir dir;
    const auto r = run_binary({"demo", "--patients", "4", "--dir", (dir / "demo").string()}, dir.path());
    // Check: the report is there, its absolute path is printed last, and the
    // views' "today" is the last day of the sandbox's history (2024-05-31), so
    // that its "current" medications and MOH window are the data's own.
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto report = std::filesystem::absolute(dir / "demo" / "report.html");
    EXPECT_NE(r.out.find("Open the report: " + report.string() + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("as_of set to 2024-05-31"), std::string::npos) << r.out;
    const std::string html = read_file(report);
    EXPECT_NE(html.find("demo-004"), std::string::npos);
    EXPECT_EQ(html.find("Test Patient"), std::string::npos);
    SQLite::Database db((dir / "demo" / "headache.db").string());
    SQLite::Statement q(db, "SELECT value FROM analyst_setting WHERE key = 'as_of'");
    ASSERT_TRUE(q.executeStep());
    EXPECT_EQ(q.getColumn(0).getString(), "2024-05-31");
}

// The demo's scripted cases (lib/sandbox data.cpp clinical_cases()) through
// the whole product: sandbox EHR, sync, classification, the views. Each side
// of each threshold shows, as a headache specialist would read the orders.
TEST(Cli, DemoCasesShowBothSidesOfEveryThreshold) {
    // Setup / Run
    temp_dir dir;
    const auto r = run_binary({"demo", "--patients", "10", "--dir", (dir / "demo").string()}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    SQLite::Database db((dir / "demo" / "headache.db").string());
    const auto rows = [&db](const std::string& sql) {
        std::vector<std::string> out;
        SQLite::Statement q(db, sql);
        while (q.executeStep()) out.push_back(q.getColumn(0).getString());
        return out;
    };
    // Check: 3 boxes of sumatriptan a month (demo-001) and 90 ibuprofen a month
    // (demo-003) meet ICHD-3 8.2 now; oxycodone/APAP (demo-006, ended in April)
    // was possible, butalbital (demo-007) is possible now; one box a month, eye
    // drops and aspirin 81 mg stay below; the deceased demo-004 has no current state.
    EXPECT_EQ(
        rows("SELECT patient_key || ' ' || state || ' ' || COALESCE(current_state, '-') FROM v_moh_risk "
             "ORDER BY patient_key"),
        (std::vector<std::string>{"demo-001 meets meets", "demo-002 below below", "demo-003 meets meets",
                                  "demo-004 below -", "demo-005 below below", "demo-006 possible below",
                                  "demo-007 possible possible", "demo-008 below below",
                                  "demo-009 below below", "demo-010 below below"}));
    EXPECT_EQ(rows("SELECT patient_key || ' ' || flag FROM v_safety_flags ORDER BY patient_key, flag"),
              (std::vector<std::string>{
                  "demo-001 teratogen_childbearing_age", "demo-002 aura_estrogen_contraceptive",
                  "demo-006 opioid_or_butalbital", "demo-007 opioid_or_butalbital",
                  "demo-008 teratogen_childbearing_age", "demo-010 triptan_ergot_vascular_disease"}));
    // Tension-type only (demo-003), on erenumab (demo-009) and the deceased
    // demo-004 are never candidates.
    EXPECT_EQ(rows("SELECT patient_key FROM v_cgrp_candidates ORDER BY patient_key"),
              (std::vector<std::string>{"demo-001", "demo-006", "demo-007"}));
    // Timolol eye drops and bladder botulinum toxin make no trial.
    EXPECT_EQ(rows("SELECT count(*) FROM v_preventive_history WHERE patient_key = 'demo-005'"),
              std::vector<std::string>{"0"});
    EXPECT_EQ(rows("SELECT patient_key FROM v_patient_summary WHERE deceased = 1"),
              std::vector<std::string>{"demo-004"});
    // Scores before and about 3 and 6 months after topiramate (demo-001).
    EXPECT_EQ(rows("SELECT instrument || ' ' || baseline_value || ' ' || month3_value || ' ' || month6_value "
                   "FROM v_treatment_response WHERE patient_key = 'demo-001' AND instrument <> 'pain_nrs' "
                   "ORDER BY instrument"),
              (std::vector<std::string>{"hit6 67.0 64.0 62.0", "midas 42.0 31.0 24.0"}));
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

// While rekey holds the vault (its exclusive lock on vault.db.lock), the
// commands that open it say so and exit 75 (try again), as unenroll does;
// they answered 73 ("cannot create") before.
TEST(Cli, CommandsWhileRekeyHoldsTheVaultExit75AndSayWhy) {
    temp_dir dir;
    write_file(dir / "sync.toml", "[daemon]\ndatabase = \"" + (dir / "h.db").string() + "\"\nvault = \"" +
                                      (dir / "v.db").string() + "\"\n" +
                                      headachemd::test::token_key_toml(dir.path()) +
                                      "\n[[ehr]]\nname = \"e\"\nfhir_base = \"https://127.0.0.1:9/fhir\"\n"
                                      "client_id = \"c\"\nclient_auth = \"none\"\n");
    // What rekey takes: an exclusive flock on the lock file beside the vault.
    const int fd = ::open((dir / "v.db.lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    for (const char* command : {"sync-once", "status"}) {
        const auto r = run_binary({command, "--config", (dir / "sync.toml").string()}, dir.path());
        EXPECT_EQ(r.exit_code, 75) << command << ": " << r.err;
        EXPECT_NE(r.err.find("rekey is re-sealing"), std::string::npos) << command << ": " << r.err;
    }
    ::close(fd);
    EXPECT_FALSE(std::filesystem::exists(dir / "h.db")) << "nothing is created while the vault is held";
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

// ---- issue 12: config and secret files (items 8, 9), escaping (10e) -------------

// Runs the binary with extra environment variables ("NAME=value").
headachemd::test::command_result run_with_env(const std::vector<std::string>& args,
                                              const std::filesystem::path& scratch,
                                              std::vector<std::string> env) {
    headachemd::test::command_result r;
    const pid_t pid =
        headachemd::test::spawn_binary(args, scratch / "stdout.txt", scratch / "stderr.txt", std::move(env));
    if (pid < 0) return r;
    r.exit_code = headachemd::test::wait_exit(pid);
    r.out = read_file(scratch / "stdout.txt");
    r.err = read_file(scratch / "stderr.txt");
    return r;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A config whose one [[ehr]] uses `auth_lines` (client_auth and its file).
std::string config_with(const std::filesystem::path& dir, const std::string& auth_lines,
                        const std::string& daemon_extra = "") {
    return "[daemon]\ndatabase = \"" + (dir / "h.db").string() + "\"\nvault = \"" + (dir / "v.db").string() +
           "\"\n" + daemon_extra + "\n[[ehr]]\nname = \"e\"\nfhir_base = \"https://127.0.0.1:9/fhir\"\n" +
           "client_id = \"c\"\n" + auth_lines;
}

std::string secret_line(const std::filesystem::path& p) {
    return "client_secret_file = \"" + p.string() + "\"\n";
}

TEST(CliFiles, CheckConfigRefusesAConfigOthersCanWrite) {
    // Setup: anyone could point token_endpoint elsewhere in this file.
    temp_dir dir;
    const auto cfg = dir / "sync.toml";
    write_file(cfg, config_with(dir.path(), "client_auth = \"none\"\n"));
    ::chmod(cfg.c_str(), 0666);

    // Run
    const auto r = run_binary({"check-config", "--config", cfg.string()}, dir.path());

    // Check: refused, naming the file, the problem and the fix; every
    // command loads the config the same way (load_config), sync-once too.
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has(r.err, cfg.string())) << r.err;
    EXPECT_TRUE(has(r.err, "writable by other users (mode 0666)")) << r.err;
    EXPECT_TRUE(has(r.err, "chmod go-w " + cfg.string())) << r.err;
    const auto s = run_binary({"sync-once", "--config", cfg.string()}, dir.path());
    EXPECT_EQ(s.exit_code, 78) << s.err;
    EXPECT_TRUE(has(s.err, "chmod go-w " + cfg.string())) << s.err;
    // A 0644 config is fine: only secrets must not be readable by others.
    ::chmod(cfg.c_str(), 0644);
    EXPECT_EQ(run_binary({"check-config", "--config", cfg.string()}, dir.path()).exit_code, 0);
}

TEST(CliFiles, CheckConfigReportsEverySecretFileOthersCanRead) {
    // Setup: the client secret, a private_key_jwt key and the token key, each 0644.
    temp_dir dir;
    write_file(dir / "e.secret", "s3cret-value\n");
    write_file(dir / "key.pem", "not read: the mode is refused first\n");
    const auto key = headachemd::test::token_key_file(dir.path());
    for (const auto& p : {dir / "e.secret", dir / "key.pem", key}) ::chmod(p.c_str(), 0644);
    write_file(dir / "secret.toml", config_with(dir.path(), secret_line(dir / "e.secret"),
                                                headachemd::test::token_key_toml(dir.path())));
    write_file(dir / "jwt.toml",
               config_with(dir.path(), "client_auth = \"private_key_jwt\"\nprivate_key_file = \"" +
                                           (dir / "key.pem").string() + "\"\n"));

    // Run
    const auto a = run_binary({"check-config", "--config", (dir / "secret.toml").string()}, dir.path());
    const auto b = run_binary({"check-config", "--config", (dir / "jwt.toml").string()}, dir.path());

    // Check
    EXPECT_EQ(a.exit_code, 78) << a.out << a.err;
    EXPECT_TRUE(has(a.err, "client secret file '" + (dir / "e.secret").string() + "'")) << a.err;
    EXPECT_TRUE(has(a.err, "chmod 600 " + (dir / "e.secret").string())) << a.err;
    EXPECT_TRUE(has(a.err, "token key file '" + key.string() + "'")) << a.err;
    EXPECT_TRUE(has(a.err, "chmod 600 " + key.string())) << a.err;
    EXPECT_FALSE(has(a.out + a.err, "s3cret-value"));
    EXPECT_EQ(b.exit_code, 78) << b.out << b.err;
    EXPECT_TRUE(has(b.err, "private key file '" + (dir / "key.pem").string() + "'")) << b.err;
    EXPECT_TRUE(has(b.err, "accessible to other users (mode 0644)")) << b.err;
}

TEST(CliFiles, SystemdCredentialModesAreAccepted) {
    // Setup: what systemd makes of LoadCredential= with an ACL: root-owned
    // 0440 files (the group bits are the ACL mask) in $CREDENTIALS_DIRECTORY.
    temp_dir dir;
    std::filesystem::create_directory(dir / "creds");
    write_file(dir / "creds" / "e.secret", "s3cret\n");
    headachemd::store::write_new_token_key(dir / "creds" / "token.key");
    for (const char* f : {"e.secret", "token.key"}) ::chmod((dir / "creds" / f).c_str(), 0440);
    write_file(dir / "sync.toml",
               config_with(dir.path(), "client_secret_file = \"${CREDENTIALS_DIRECTORY}/e.secret\"\n"));
    const std::vector<std::string> env{"CREDENTIALS_DIRECTORY=" + (dir / "creds").string()};

    // Run: check-config reads both; status opens the vault with the key.
    const auto c = run_with_env({"check-config", "--config", (dir / "sync.toml").string()}, dir.path(), env);
    const auto s = run_with_env({"status", "--config", (dir / "sync.toml").string()}, dir.path(), env);

    // Check
    EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
    EXPECT_EQ(s.exit_code, 0) << s.out << s.err;  // was 78: a 0440 token key was refused
}

TEST(CliFiles, OddSecretTargetsAreRefusedNamingTheFile) {
    // Setup: /dev/zero behind a symlink (read without limit, the process
    // died of bad_alloc), a directory ("basic_filebuf::underflow error"
    // without the name), an empty file (an empty secret was sent).
    temp_dir dir;
    std::filesystem::create_symlink("/dev/zero", dir / "zero.secret");
    std::filesystem::create_directory(dir / "dir.secret");
    write_file(dir / "empty.secret", "");
    write_file(dir / "blank.secret", "\n");
    const std::vector<std::pair<std::string, std::string>> cases{
        {"zero.secret", "is a character device, not a regular file"},
        {"dir.secret", "is a directory, not a regular file"},
        {"empty.secret", "is empty"},
        {"blank.secret", "holds only white space"}};
    for (const auto& [name, says] : cases) {
        const auto cfg = dir / (name + ".toml");
        write_file(cfg, config_with(dir.path(), secret_line(dir / name),
                                    headachemd::test::token_key_toml(dir.path())));

        // Run: check-config, and sync-once, which reads the secret at start.
        const auto c = run_binary({"check-config", "--config", cfg.string()}, dir.path());
        const auto s = run_binary({"sync-once", "--config", cfg.string()}, dir.path());

        // Check: a clear error with the file's name, exit 78 (EX_CONFIG), no abort.
        EXPECT_EQ(c.exit_code, 78) << name << c.out << c.err;
        EXPECT_TRUE(has(c.err, (dir / name).string())) << c.err;
        EXPECT_TRUE(has(c.err, says)) << c.err;
        EXPECT_EQ(s.exit_code, 78) << name << s.out << s.err;
        EXPECT_TRUE(has(s.err, (dir / name).string())) << s.err;
        EXPECT_TRUE(has(s.err, says)) << s.err;
    }
}

TEST(CliFiles, CheckConfigEscapesControlCharactersFromValues) {
    // Setup: ESC, CR and LF in values the loader quotes back.
    temp_dir dir;
    write_file(dir / "sync.toml",
               "[daemon]\nlog_level = \"info\"\ncallback_listen = \"\\u001b[2J\\r\\nerror: forged:1\"\n"
               "\n[[ehr]]\nname = \"e\"\nfhir_base = \"ftp://\\u001b]0;title\\u0007x\"\nclient_id = \"c\"\n"
               "client_auth = \"none\"\n");

    // Run
    const auto r = run_binary({"check-config", "--config", (dir / "sync.toml").string()}, dir.path());

    // Check: the values appear escaped, and no raw control byte reaches the terminal.
    EXPECT_EQ(r.exit_code, 78) << r.err;
    EXPECT_TRUE(has(r.err, "\\x1b[2J\\r\\nerror: forged:1")) << r.err;
    EXPECT_TRUE(has(r.err, "\\x1b]0;title\\x07x")) << r.err;
    for (char ch : r.out + r.err) {
        const auto u = static_cast<unsigned char>(ch);
        EXPECT_TRUE(u == '\n' || (u >= 0x20 && u != 0x7f)) << "raw byte " << int(u) << " in:\n" << r.err;
    }
    // Each error is one line: three lines, two errors and the count.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 3) << r.err;
}

TEST(CliFiles, CheckConfigRefusesACallbackListenerOffLoopback) {
    // Setup: metrics_listen always refused 0.0.0.0; callback_listen did not.
    temp_dir dir;
    write_file(dir / "sync.toml", "[daemon]\ncallback_listen = \"0.0.0.0:8765\"\n");
    write_file(dir / "allowed.toml",
               "[daemon]\nallow_non_loopback_listen = true\ncallback_listen = \"0.0.0.0:8765\"\n");

    // Run
    const auto r = run_binary({"check-config", "--config", (dir / "sync.toml").string()}, dir.path());
    const auto ok = run_binary({"check-config", "--config", (dir / "allowed.toml").string()}, dir.path());

    // Check: the same rule as metrics_listen, and the explicit way out.
    EXPECT_EQ(r.exit_code, 78) << r.out << r.err;
    EXPECT_TRUE(has(r.err, "sync.toml:2:19: [daemon]: callback_listen must be a loopback address")) << r.err;
    EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
}

}  // namespace
