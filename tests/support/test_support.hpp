// Small helpers shared by every test: a private temporary directory per
// test, file helpers, and where the third-party test data lives.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

#include "log_capture.hpp"

namespace headachemd::test {

// ../shared/data beside the checkout; HEADACHEMD_SHARED_DATA in the
// environment overrides it. Tests that need it skip when it is absent,
// except under CI=true, where they fail (HEADACHEMD_REQUIRE_SHARED).
inline std::filesystem::path shared_data() {
    if (const char* env = std::getenv("HEADACHEMD_SHARED_DATA"); env && *env) return env;
    return HEADACHEMD_SHARED_DATA;
}

// CI=true (.ci/run sets it): a test whose input or precondition is missing
// fails instead of skipping, because a skipped test proves nothing and a
// green run would hide it (issue 18).
inline bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string_view(ci) == "true";
}

inline std::filesystem::path fixtures() { return HEADACHEMD_FIXTURES; }

// A fresh directory, removed when the object goes out of scope.
class temp_dir {
public:
    temp_dir() {
        std::random_device rd;
        auto base = std::filesystem::temp_directory_path();
        for (;;) {
            path_ = base / ("headachemd-test-" + std::to_string(rd()) + std::to_string(rd()));
            if (std::filesystem::create_directory(path_)) break;
        }
    }
    ~temp_dir() {
        capture_databases(path_);  // under ctest only: the log scan reads them too
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// A new file is made 0600, as an admin makes a secret file (the daemon
// refuses a secret file others can read, lib/files); an existing file keeps
// its owner and mode.
inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
    std::error_code ec;
    const bool existed = std::filesystem::exists(p, ec);
    {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    if (!existed)
        std::filesystem::permissions(
            p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
}

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace headachemd::test

// Skips the current test with a clear message when shared data is missing;
// under CI=true the test fails instead, naming the missing input.
#define HEADACHEMD_REQUIRE_SHARED(sub)                                                                    \
    do {                                                                                                  \
        if (!std::filesystem::exists(::headachemd::test::shared_data() / (sub))) {                        \
            if (::headachemd::test::in_ci())                                                              \
                GTEST_FAIL() << "third-party test data not found at "                                     \
                             << (::headachemd::test::shared_data() / (sub)).string()                      \
                             << " and CI=true: a missing input fails in CI (set HEADACHEMD_SHARED_DATA)"; \
            GTEST_SKIP() << "third-party test data not found at "                                         \
                         << (::headachemd::test::shared_data() / (sub)).string()                          \
                         << " (set HEADACHEMD_SHARED_DATA; CI=true makes this a failure); skipping";      \
        }                                                                                                 \
    } while (0)
