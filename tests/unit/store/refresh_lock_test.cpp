// The per-patient refresh lock (issue 12, defect 1): one refresher per
// patient between processes. Two file_refresh_locks objects on one file are
// two open file descriptions, which is what two processes have; a forked
// child checks the real cross-process case.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "headachemd/store/database.hpp"
#include "headachemd/store/refresh_lock.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

TEST(RefreshLock, ASecondHolderOnTheSameFileIsExcludedUntilTheFirstReleases) {
    // Setup: two handles, as the daemon and a sync-once have.
    temp_dir dir;
    const fs::path file = st::file_refresh_locks::beside(dir / "vault.db");
    st::file_refresh_locks daemon(file);
    st::file_refresh_locks sync_once(file);

    // Run / Check
    auto held = daemon.try_acquire("ecw", "hmd-1");
    ASSERT_TRUE(held);
    EXPECT_FALSE(sync_once.try_acquire("ecw", "hmd-1")) << "two refreshers of one patient";
    // Other patients, and the same key at another EHR, are not held up.
    EXPECT_TRUE(sync_once.try_acquire("ecw", "hmd-2"));
    EXPECT_TRUE(sync_once.try_acquire("epic", "hmd-1"));
    held->reset();
    EXPECT_TRUE(sync_once.try_acquire("ecw", "hmd-1"));
}

TEST(RefreshLock, TwoJobsOfOneHandleExcludeEachOther) {
    // The daemon's own workers (a scheduled job and one started by an
    // enrollment) share one description, which never conflicts with itself.
    temp_dir dir;
    st::file_refresh_locks locks(st::file_refresh_locks::beside(dir / "vault.db"));
    auto first = locks.try_acquire("ecw", "hmd-1");
    ASSERT_TRUE(first);
    EXPECT_FALSE(locks.try_acquire("ecw", "hmd-1"));
    first.reset();  // the lease's destructor releases
    EXPECT_TRUE(locks.try_acquire("ecw", "hmd-1"));
}

TEST(RefreshLock, ClosingAnotherDescriptorOfTheFileKeepsTheLock) {
    // POSIX process locks would be dropped by this close; OFD locks are not.
    temp_dir dir;
    const fs::path file = st::file_refresh_locks::beside(dir / "vault.db");
    st::file_refresh_locks holder(file);
    auto held = holder.try_acquire("ecw", "hmd-1");
    ASSERT_TRUE(held);
    { st::file_refresh_locks passing_by(file); }
    st::file_refresh_locks other(file);
    EXPECT_FALSE(other.try_acquire("ecw", "hmd-1"));
}

TEST(RefreshLock, AnotherProcessIsExcludedAndAHandleGoneReleasesItsLocks) {
    temp_dir dir;
    const fs::path file = st::file_refresh_locks::beside(dir / "vault.db");
    auto probe = [&file]() {
        // A child process: exit 0 when it got the lock, 1 when it was busy.
        const pid_t pid = ::fork();
        if (pid == 0) {
            int code = 2;
            try {
                st::file_refresh_locks child(file);
                code = child.try_acquire("ecw", "hmd-1") ? 0 : 1;
            } catch (...) {
            }
            ::_exit(code);
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    {
        st::file_refresh_locks parent(file);
        auto held = parent.try_acquire("ecw", "hmd-1");
        ASSERT_TRUE(held);
        EXPECT_EQ(probe(), 1) << "the other process got the lock";
        held.reset();
        held = parent.try_acquire("ecw", "hmd-1");
        ASSERT_TRUE(held);
    }  // the handle closes with the lease still held: the kernel releases it
    EXPECT_EQ(probe(), 0);
}

TEST(RefreshLock, TheFileIsPrivateAndASymlinkIsRefused) {
    temp_dir dir;
    const fs::path file = st::file_refresh_locks::beside(dir / "vault.db");
    EXPECT_EQ(file, dir / "vault.db.refresh.lock");
    { st::file_refresh_locks locks(file); }
    struct stat s {};
    ASSERT_EQ(::stat(file.c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 0077, 0u);

    fs::create_symlink(dir / "elsewhere", dir / "link.refresh.lock");
    try {
        st::file_refresh_locks locks(dir / "link.refresh.lock");
        FAIL() << "followed a symlink";
    } catch (const st::store_error& e) {
        EXPECT_NE(std::string(e.what()).find("link.refresh.lock"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "elsewhere"));
}

TEST(RefreshLock, SlotsAreStableAndSeparateEhrFromKey) {
    EXPECT_EQ(st::file_refresh_locks::slot("ecw", "hmd-1"), st::file_refresh_locks::slot("ecw", "hmd-1"));
    EXPECT_NE(st::file_refresh_locks::slot("ab", "c"), st::file_refresh_locks::slot("a", "bc"));
    EXPECT_GE(st::file_refresh_locks::slot("ecw", "hmd-1"), 0);
}

}  // namespace
