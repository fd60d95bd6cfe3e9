// lib/files writers: a new private file is 0600 whatever the umask and never
// replaces one; an atomic write leaves the old file or the new one.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "headachemd/files/write_file.hpp"
#include "test_support.hpp"

namespace {

namespace files = headachemd::files;
namespace fs = std::filesystem;

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
}

struct umask_guard {
    mode_t old;
    explicit umask_guard(mode_t m) : old(::umask(m)) {}
    ~umask_guard() { ::umask(old); }
};

TEST(WriteFile, NewPrivateFileIsExactly0600EvenUnderAPermissiveUmask) {
    headachemd::test::temp_dir dir;
    const umask_guard permissive(0);
    EXPECT_FALSE(files::write_new_private_file(dir / "k", "secret\n"));
    EXPECT_EQ(read_all(dir / "k"), "secret\n");
    EXPECT_EQ(mode_of(dir / "k"), 0600u);
}

TEST(WriteFile, NewPrivateFileNeverReplacesOne) {
    headachemd::test::temp_dir dir;
    ASSERT_FALSE(files::write_new_private_file(dir / "k", "first"));
    const auto again = files::write_new_private_file(dir / "k", "second");
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->already_exists);
    EXPECT_EQ(read_all(dir / "k"), "first");
}

TEST(WriteFile, NewPrivateFileDoesNotFollowAPlantedLink) {
    headachemd::test::temp_dir dir;
    fs::create_symlink(dir / "elsewhere", dir / "k");
    const auto r = files::write_new_private_file(dir / "k", "secret");
    ASSERT_TRUE(r);
    EXPECT_FALSE(fs::exists(dir / "elsewhere"));
}

TEST(WriteFile, AtomicWriteReplacesWholeAndLeavesNoTemporary) {
    headachemd::test::temp_dir dir;
    ASSERT_FALSE(files::write_file_atomically(dir / "r.html", "old", 0640));
    ASSERT_FALSE(files::write_file_atomically(dir / "r.html", "new contents", 0640));
    EXPECT_EQ(read_all(dir / "r.html"), "new contents");
    EXPECT_FALSE(fs::exists(dir / "r.html.tmp"));
}

TEST(WriteFile, AtomicWriteIntoAMissingDirectoryFailsWithAReason) {
    headachemd::test::temp_dir dir;
    const auto r = files::write_file_atomically(dir / "no-such-dir" / "r.html", "x", 0640);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->opened);
    EXPECT_FALSE(r->reason.empty());
}

}  // namespace
