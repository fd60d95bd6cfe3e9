// The real binary and the token key (issue 5): a missing key, a wrong key,
// the systemd credential, `rekey`, and a vault others may read.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::run_binary;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

// A config with two patients at one (unreachable) EHR; `key_line` is the
// token_key_file line or empty.
fs::path write_config(const temp_dir& dir, const std::string& name, const std::string& key_line) {
    const auto path = dir / name;
    write_file(path,
               "[daemon]\ndatabase = \"" + (dir / "h.db").string() + "\"\nvault = \"" +
                   (dir / "v.db").string() + "\"\n" + key_line +
                   "\n[[ehr]]\nname = \"e\"\nfhir_base = \"https://127.0.0.1:9/fhir\"\nclient_id = \"c\"\n"
                   "client_auth = \"none\"\n\n[[patient]]\nkey = \"hmd-1\"\nehr = \"e\"\nfhir_patient_id = "
                   "\"p1\"\n\n[[patient]]\nkey = \"hmd-2\"\nehr = \"e\"\nfhir_patient_id = \"p2\"\n");
    return path;
}

std::string key_line(const fs::path& key_file) { return "token_key_file = \"" + key_file.string() + "\"\n"; }

// Enrolls hmd-1 and hmd-2 through the binary.
void enroll_both(const temp_dir& dir, const fs::path& config) {
    for (const char* who : {"hmd-1", "hmd-2"}) {
        write_file(dir / "rt.txt", std::string("refresh-token-of-") + who + "-0123456789\n");
        const auto r = run_binary(
            {"enroll", who, "--config", config.string(), "--refresh-token-file", (dir / "rt.txt").string()},
            dir.path());
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    fs::remove(dir / "rt.txt");
}

// The daemon looks at $CREDENTIALS_DIRECTORY; these tests set it themselves.
struct no_credentials_env {
    no_credentials_env() { ::unsetenv("CREDENTIALS_DIRECTORY"); }
    ~no_credentials_env() { ::unsetenv("CREDENTIALS_DIRECTORY"); }
};

TEST(VaultCli, KeygenWritesATokenKeyOnceWithMode0600ThatOpensAVault) {
    temp_dir dir;
    const auto key = dir / "token.key";
    const auto first = run_binary({"keygen", "--token-key", key.string()}, dir.path());
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_EQ(fs::status(key).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    const std::string text = read_file(key);
    EXPECT_EQ(text.size(), 65u);  // 64 hex digits and a newline
    // Never over an existing key: losing it loses every token.
    const auto again = run_binary({"keygen", "--token-key", key.string()}, dir.path());
    EXPECT_NE(again.exit_code, 0);
    EXPECT_EQ(read_file(key), text);
    st::vault v(dir / "vault.db", st::load_token_key(key));
    EXPECT_FALSE(v.key_id().empty());
}

TEST(VaultCli, AMissingKeyIsRefusedWithTheFixAndNothingIsCreated) {
    no_credentials_env env;
    temp_dir dir;
    const auto config = write_config(dir, "sync.toml", "");
    for (const char* command : {"status", "sync-once", "run"}) {
        const auto r = run_binary({command, "--config", config.string()}, dir.path());
        EXPECT_EQ(r.exit_code, 78) << command << ": " << r.err;
        EXPECT_TRUE(contains(r.err, "set [daemon] token_key_file or LoadCredential=token.key:")) << r.err;
        EXPECT_TRUE(contains(r.err, "headachemd-sync keygen --token-key PATH")) << r.err;
    }
    EXPECT_FALSE(fs::exists(dir / "v.db"));
    EXPECT_FALSE(fs::exists(dir / "h.db"));
    // A credentials directory without the credential says which file it missed.
    fs::create_directory(dir / "creds");
    ::setenv("CREDENTIALS_DIRECTORY", (dir / "creds").c_str(), 1);
    const auto r = run_binary({"status", "--config", config.string()}, dir.path());
    EXPECT_EQ(r.exit_code, 78);
    EXPECT_TRUE(contains(r.err, (dir / "creds" / "token.key").string())) << r.err;
}

TEST(VaultCli, TheSystemdCredentialIsTheKeyWhenNoFileIsSet) {
    no_credentials_env env;
    temp_dir dir;
    fs::create_directory(dir / "creds");
    const auto key = st::write_new_token_key(dir / "creds" / "token.key");
    ::setenv("CREDENTIALS_DIRECTORY", (dir / "creds").c_str(), 1);
    const auto config = write_config(dir, "sync.toml", "");
    enroll_both(dir, config);
    st::vault v(dir / "v.db", key);
    EXPECT_EQ(v.find_enrollment("hmd-2", "e")->refresh_token, "refresh-token-of-hmd-2-0123456789");
}

TEST(VaultCli, AWrongKeyRefusesToStartAndLeavesTheVaultByteIdentical) {
    no_credentials_env env;
    temp_dir dir;
    const auto right =
        write_config(dir, "right.toml", key_line(headachemd::test::token_key_file(dir.path())));
    enroll_both(dir, right);
    ASSERT_EQ(run_binary({"status", "--config", right.string()}, dir.path()).exit_code, 0);
    const std::string before = read_file(dir / "v.db");
    ASSERT_FALSE(fs::exists(dir / "v.db-wal"));  // closed cleanly: everything is in the file
    st::write_new_token_key(dir / "other.key");
    const auto wrong = write_config(dir, "wrong.toml", key_line(dir / "other.key"));
    for (const char* command : {"status", "sync-once", "run"}) {
        const auto r = run_binary({command, "--config", wrong.string()}, dir.path());
        EXPECT_EQ(r.exit_code, 78) << command << ": " << r.err;
        EXPECT_TRUE(contains(r.err, "wrong key or tampered row")) << r.err;
        EXPECT_TRUE(contains(r.err, "patient hmd-1 at EHR e")) << r.err;
        EXPECT_EQ(read_file(dir / "v.db"), before) << command;
    }
    write_file(dir / "rt.txt", "another-token-9876543210\n");
    const auto r = run_binary(
        {"enroll", "hmd-1", "--config", wrong.string(), "--refresh-token-file", (dir / "rt.txt").string()},
        dir.path());
    EXPECT_EQ(r.exit_code, 78) << r.err;
    EXPECT_EQ(read_file(dir / "v.db"), before);
    // The right key still opens both tokens.
    st::vault v(dir / "v.db", headachemd::test::token_key_in(dir.path()));
    EXPECT_EQ(v.find_enrollment("hmd-1", "e")->refresh_token, "refresh-token-of-hmd-1-0123456789");
}

TEST(VaultCli, RekeyRotatesEveryRowAndTheOldKeyOpensNone) {
    no_credentials_env env;
    temp_dir dir;
    const auto old_key_file = headachemd::test::token_key_file(dir.path());
    const auto old_config = write_config(dir, "old.toml", key_line(old_key_file));
    enroll_both(dir, old_config);
    const auto new_key = st::write_new_token_key(dir / "new.key");
    // Run
    const auto r = run_binary(
        {"rekey", "--config", old_config.string(), "--new-key-file", (dir / "new.key").string()}, dir.path());
    // Check: both tokens were re-sealed (the sync commands make no
    // pseudonymization key; ingest does), the old key opens nothing, the
    // new one everything.
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "re-sealed 2 secret(s)")) << r.out;
    EXPECT_TRUE(contains(r.out, new_key.id())) << r.out;
    const auto old_status = run_binary({"status", "--config", old_config.string()}, dir.path());
    EXPECT_EQ(old_status.exit_code, 78) << old_status.err;
    EXPECT_TRUE(contains(old_status.err, "patient hmd-1 at EHR e")) << old_status.err;
    EXPECT_TRUE(contains(old_status.err, "patient hmd-2 at EHR e")) << old_status.err;
    EXPECT_THROW(st::vault(dir / "v.db", st::load_token_key(old_key_file)), st::key_error);
    const auto new_config = write_config(dir, "new.toml", key_line(dir / "new.key"));
    EXPECT_EQ(run_binary({"status", "--config", new_config.string()}, dir.path()).exit_code, 0);
    st::vault v(dir / "v.db", new_key);
    EXPECT_EQ(v.find_enrollment("hmd-1", "e")->refresh_token, "refresh-token-of-hmd-1-0123456789");
    EXPECT_EQ(v.find_enrollment("hmd-2", "e")->refresh_token, "refresh-token-of-hmd-2-0123456789");
}

TEST(VaultCli, RekeyRefusesTheSameKeyAndAMissingOneAndChangesNothing) {
    no_credentials_env env;
    temp_dir dir;
    const auto config =
        write_config(dir, "sync.toml", key_line(headachemd::test::token_key_file(dir.path())));
    enroll_both(dir, config);
    const std::string before = read_file(dir / "v.db");
    const auto same = run_binary(
        {"rekey", "--config", config.string(), "--new-key-file", (dir / "token.key").string()}, dir.path());
    EXPECT_EQ(same.exit_code, 64) << same.err;
    EXPECT_TRUE(contains(same.err, "already sealed with")) << same.err;
    const auto missing = run_binary(
        {"rekey", "--config", config.string(), "--new-key-file", (dir / "nope.key").string()}, dir.path());
    EXPECT_EQ(missing.exit_code, 78) << missing.err;
    EXPECT_EQ(read_file(dir / "v.db"), before);
}

TEST(VaultCli, RekeyIsRefusedWhileTheDaemonRunsAndChangesNothing) {
    // Setup: the daemon running on the vault (its EHR is unreachable, so it
    // fails the patients and waits for their retry time).
    no_credentials_env env;
    temp_dir dir;
    const auto config =
        write_config(dir, "sync.toml", key_line(headachemd::test::token_key_file(dir.path())));
    enroll_both(dir, config);
    const pid_t pid = headachemd::test::spawn_binary({"run", "--config", config.string()}, dir / "run.out",
                                                     dir / "run.err");
    ASSERT_GT(pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!contains(read_file(dir / "run.err"), "running:") && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();  // waiting on a condition with a deadline, not sleeping to synchronize
    ASSERT_TRUE(contains(read_file(dir / "run.err"), "running:")) << read_file(dir / "run.err");
    st::write_new_token_key(dir / "new.key");
    // Run
    const auto r = run_binary(
        {"rekey", "--config", config.string(), "--new-key-file", (dir / "new.key").string()}, dir.path());
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    // Check: refused with the way out; the old key still opens everything.
    EXPECT_EQ(r.exit_code, 75) << r.err;
    EXPECT_TRUE(contains(r.err, "stop it first")) << r.err;
    st::vault v(dir / "v.db", headachemd::test::token_key_in(dir.path()));
    EXPECT_EQ(v.find_enrollment("hmd-1", "e")->refresh_token, "refresh-token-of-hmd-1-0123456789");
}

TEST(VaultCli, AVaultOthersMayReadStopsTheDaemonWithTheChmodFix) {
    no_credentials_env env;
    temp_dir dir;
    const auto config =
        write_config(dir, "sync.toml", key_line(headachemd::test::token_key_file(dir.path())));
    enroll_both(dir, config);
    fs::permissions(dir / "v.db", fs::perms::others_read, fs::perm_options::add);
    const auto r = run_binary({"status", "--config", config.string()}, dir.path());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains(r.err, "chmod 600 " + (dir / "v.db").string())) << r.err;
}

}  // namespace
