// The scanner itself: it must catch a planted secret (or the suite-wide
// scan could pass while blind), and must refuse to pass with nothing to scan.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "log_scan.hpp"
#include "test_support.hpp"

namespace {

using namespace headachemd::logscan;

std::string hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        out.push_back(digits[static_cast<unsigned char>(c) >> 4]);
        out.push_back(digits[static_cast<unsigned char>(c) & 0xF]);
    }
    return out;
}

// A full, plausible ledger with one planted value of each required kind.
std::string ledger(std::string_view token) {
    return "access_token " + hex(token) + "\nrefresh_token " + hex("rt-0123456789abcdef") +
           "\nclient_secret " + hex("cs-0123456789abcdef") + "\npatient_name " + hex("Test Patient 0007") +
           "\n";
}

TEST(LedgerParse, ReadsHexValuesAndCountsBadLines) {
    std::size_t bad = 0;
    const auto s =
        parse_ledger("access_token 6162\npatient_name 54 65\nx zz\nnohex\n\nclient_secret 41\n", bad);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ(s[0].kind, "access_token");
    EXPECT_EQ(s[0].value, "ab");
    EXPECT_EQ(s[1].value, "A");
    EXPECT_EQ(bad, 3u);
}

TEST(Matcher, FindsEverySecretAnywhereInALine) {
    const matcher m(with_encoded_forms({{"access_token", "tok_AAAAAAAAAAAAAAAAAAAAAAAA"},
                                        {"patient_name", "Test Patient 0001"},
                                        {"patient_mrn", "SBX-0001"}}));
    const std::string text =
        "info: ok\n"
        "warning: GET /fhir/Patient?x=1 Authorization: Bearer tok_AAAAAAAAAAAAAAAAAAAAAAAA\n"
        "error: name=Test+Patient+0001 mrn=SBX-0001\n"
        "info: Test%20Patient%200001\n"
        "info: tok_AAAAAAAAAAAAAAAAAAAAAAA (one short) and SBX-000 and Test Patient 000\n";
    const auto f = scan_text(m, "f.log", text);
    ASSERT_EQ(f.size(), 4u);
    EXPECT_EQ(f[0].line, 2u);
    EXPECT_EQ(f[0].kind, "access_token");
    EXPECT_EQ(f[1].line, 3u);
    EXPECT_EQ(f[2].line, 3u);
    EXPECT_EQ(f[3].line, 4u);
    EXPECT_EQ(f[3].kind, "patient_name");
}

TEST(Matcher, ShortAndLongSecretsTogether) {
    const matcher m({{"a", "abc"}, {"b", "abcdefghijklmnop"}, {"c", "zzzzzzzzzz"}});
    const auto hits = m.find_all("xxabcdefghijklmnopxx zzzzzzzzzz");
    ASSERT_EQ(hits.size(), 3u);
}

TEST(ScanCaptureDir, CatchesAPlantedTokenAndSaysWhereNotWhat) {
    headachemd::test::temp_dir dir;
    std::filesystem::create_directories(dir / "secrets");
    std::filesystem::create_directories(dir / "captured");
    const std::string token = "planted-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    headachemd::test::write_file(dir / "secrets" / "sandbox-1-0.ledger", ledger(token));
    headachemd::test::write_file(dir / "captured" / "1-0-clean.stderr.log", "<6>info: synced hmd-1\n");
    headachemd::test::write_file(dir / "captured" / "1-1-leaky.stderr.log",
                                 "<6>info: fine\n<3>error: refresh with " + token + " failed\n");
    const auto r = scan_capture_dir(dir.path());
    EXPECT_FALSE(r.passed());
    EXPECT_TRUE(r.problems.empty());
    ASSERT_EQ(r.findings.size(), 1u);
    EXPECT_EQ(r.findings[0].file, "1-1-leaky.stderr.log");
    EXPECT_EQ(r.findings[0].line, 2u);
    EXPECT_EQ(r.findings[0].kind, "access_token");
    EXPECT_EQ(r.files, 2u);
    EXPECT_EQ(r.lines, 3u);
}

TEST(ScanCaptureDir, PassesWhenCleanAndFailsWhenVacuous) {
    headachemd::test::temp_dir dir;
    // Nothing at all: no lines, no secrets.
    auto r = scan_capture_dir(dir.path());
    EXPECT_FALSE(r.passed());
    EXPECT_GE(r.problems.size(), 2u);

    std::filesystem::create_directories(dir / "secrets");
    std::filesystem::create_directories(dir / "captured");
    headachemd::test::write_file(dir / "captured" / "1-0-x.stderr.log", "<6>info: synced hmd-1\n");
    r = scan_capture_dir(dir.path());
    EXPECT_FALSE(r.passed()) << "no secrets recorded must not pass";

    headachemd::test::write_file(dir / "secrets" / "sandbox-1-0.ledger", "access_token 4142434445464748\n");
    r = scan_capture_dir(dir.path());
    EXPECT_FALSE(r.passed()) << "a ledger without refresh tokens, client secret and names must not pass";

    headachemd::test::write_file(dir / "secrets" / "sandbox-1-0.ledger", ledger("tok-0123456789abcdef"));
    r = scan_capture_dir(dir.path());
    EXPECT_TRUE(r.passed());
    EXPECT_EQ(r.secrets_by_kind["access_token"], 1u);

    headachemd::test::write_file(dir / "secrets" / "sandbox-1-1.ledger", "access_token 4g\n");
    r = scan_capture_dir(dir.path());
    EXPECT_FALSE(r.passed()) << "a malformed ledger must not pass";
}

// Issue 12: the scan covers headache.db too. Under ctest a test's temp_dir
// hands the SQLite files it leaves (not the vault) to the capture, and a
// secret in them fails the scan like one in a log line.
TEST(CaptureDatabases, ATempDirsSqliteFilesAreScannedButNotTheVault) {
    // Setup: capture on for this test only.
    headachemd::test::temp_dir capture;
    const char* before = std::getenv("HEADACHEMD_LOG_CAPTURE_DIR");
    const std::optional<std::string> saved = before ? std::optional<std::string>(before) : std::nullopt;
    ::setenv("HEADACHEMD_LOG_CAPTURE_DIR", capture.path().c_str(), 1);
    const std::string token = "rt-0123456789abcdef";  // the ledger's refresh token
    // Run: a test directory with a database that holds a token goes away.
    {
        headachemd::test::temp_dir work;
        std::filesystem::create_directories(work / "sub");
        headachemd::test::write_file(work / "sub" / "headache.db",
                                     std::string("SQLite format 3\0\x01\x02", 18) + "last_error " + token);
        headachemd::test::write_file(work / "sub" / "headache.db-wal", "wal without secrets");
        headachemd::test::write_file(work / "vault.db", "sealed " + token);
        headachemd::test::write_file(work / "notes.txt", token);
    }
    if (saved)
        ::setenv("HEADACHEMD_LOG_CAPTURE_DIR", saved->c_str(), 1);
    else
        ::unsetenv("HEADACHEMD_LOG_CAPTURE_DIR");
    // Check: the two database files were captured, the vault and the text not.
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(capture / "captured"))
        names.push_back(e.path().filename().string());
    ASSERT_EQ(names.size(), 2u);
    // The copy of headache.db first (the serial in the names follows the walk).
    if (names[0].find("sqlite-headache.db.log") == std::string::npos) std::swap(names[0], names[1]);
    EXPECT_NE(names[0].find("sqlite-headache.db.log"), std::string::npos) << names[0];
    EXPECT_NE(names[1].find("sqlite-headache.db-wal.log"), std::string::npos) << names[1];
    std::filesystem::create_directories(capture / "secrets");
    headachemd::test::write_file(capture / "secrets" / "sandbox-1-0.ledger", ledger("tok-0123456789abcdef"));
    const auto r = scan_capture_dir(capture.path());
    EXPECT_FALSE(r.passed());
    ASSERT_EQ(r.findings.size(), 1u);
    EXPECT_EQ(r.findings[0].kind, "refresh_token");
    EXPECT_EQ(r.findings[0].file, names[0]);
}

}  // namespace
