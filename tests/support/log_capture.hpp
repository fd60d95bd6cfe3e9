// Log capture for the integration suite's log scan (tests/logscan).
//
// ctest runs every integration test with HEADACHEMD_LOG_CAPTURE_DIR set
// (tests/CMakeLists.txt); it is unset when a test binary runs by hand, and
// then nothing here does anything. When set:
//   - every child started by run_binary / spawn_binary / spawn_piped writes
//     its stdout and stderr to a fresh file under DIR/captured, and the
//     path the test asked for (stdout.txt, stderr.txt in its scratch
//     directory) becomes a symbolic link to it, so the test reads it as
//     before and the bytes outlive its temporary directory;
//   - a stream a test reads through a pipe is captured as read_line_containing
//     reads it (bytes the test never reads are not captured);
//   - test_logger() (test_logger.hpp) adds a sink writing to DIR/captured;
//   - HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR is set to DIR/secrets for this
//     process and its children, so every sandbox server records its
//     tokens, codes, client secret and patient identifiers there.
// File names carry the pid and a serial, so concurrent test processes
// (ctest -j) never share a file.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace headachemd::test {

inline std::optional<std::filesystem::path> log_capture_dir() {
    const char* dir = std::getenv("HEADACHEMD_LOG_CAPTURE_DIR");
    if (!dir || !*dir) return std::nullopt;
    return std::filesystem::path(dir);
}

namespace detail {

// Runs once per test binary, before main: children inherit the variable.
inline const bool sandbox_ledger_configured = [] {
    if (const auto dir = log_capture_dir())
        ::setenv("HEADACHEMD_SANDBOX_SECRET_LEDGER_DIR", (*dir / "secrets").c_str(), 1);
    return true;
}();

inline std::string current_test_label() {
    std::string label = "no-test";
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
        label = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : label)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
    return label;
}

// fd of a pipe from a child → the capture file its bytes are appended to.
struct pipe_captures {
    std::mutex mu;
    std::map<int, std::filesystem::path> files;
};
inline pipe_captures& pipes() {
    static pipe_captures p;
    return p;
}

}  // namespace detail

// A new, empty file under DIR/captured named after this process, a serial,
// the running test and `stream`; nullopt when capture is off.
inline std::optional<std::filesystem::path> new_capture_file(std::string_view stream) {
    const auto dir = log_capture_dir();
    if (!dir) return std::nullopt;
    static std::atomic<unsigned> serial{0};
    const auto captured = *dir / "captured";
    std::filesystem::create_directories(captured);
    auto path = captured / (std::to_string(::getpid()) + "-" + std::to_string(serial.fetch_add(1)) + "-" +
                            detail::current_test_label() + "." + std::string(stream) + ".log");
    std::ofstream(path, std::ios::binary | std::ios::trunc);
    return path;
}

// Where a child's output stream should go: `visible` itself when capture is
// off; else a new capture file, with `visible` replaced by a symbolic link
// to it. Throws std::filesystem::filesystem_error when the link cannot be
// made, so a test never silently escapes the scan.
inline std::filesystem::path capture_output(const std::filesystem::path& visible, std::string_view stream) {
    const auto target = new_capture_file(stream);
    if (!target) return visible;
    std::filesystem::remove(visible);
    std::filesystem::create_symlink(*target, visible);
    return *target;
}

// A pipe read end whose bytes the capture should get, as it reads them.
inline void capture_pipe(int fd, std::string_view stream) {
    if (fd < 0) return;
    const auto target = new_capture_file(stream);
    if (!target) return;
    std::lock_guard lock(detail::pipes().mu);
    detail::pipes().files[fd] = *target;
}

// Copies the SQLite files a test leaves under `dir` (headache.db and any
// other database, with its -wal and -journal) into DIR/captured as they are
// on disk, so the scan searches them byte for byte: sync_status.last_error,
// every other column, and free pages too (issue 12: a token endpoint's echo
// reached headache.db, which the analysts' group can read). The vault is
// left out: its tokens are sealed on purpose, and its audit log is checked
// by its own tests. temp_dir calls this before it removes its directory.
inline void capture_databases(const std::filesystem::path& dir) {
    if (!log_capture_dir()) return;
    namespace fs = std::filesystem;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        const auto ends = [&](std::string_view suffix) {
            return name.size() >= suffix.size() &&
                   name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
        };
        if (name.find("vault") != std::string::npos || !it->is_regular_file(ec)) continue;
        if (!ends(".db") && !ends(".db-wal") && !ends(".db-journal")) continue;
        try {
            const auto target = new_capture_file("sqlite-" + name);
            if (target) fs::copy_file(it->path(), *target, fs::copy_options::overwrite_existing);
        } catch (const std::exception& e) {
            // Called from a destructor: a failure to capture is a test
            // failure (a database that escapes the scan), never a throw.
            ADD_FAILURE() << "cannot copy " << it->path() << " for the log scan: " << e.what();
        }
    }
}

inline void capture_pipe_bytes(int fd, std::string_view bytes) {
    std::lock_guard lock(detail::pipes().mu);
    const auto it = detail::pipes().files.find(fd);
    if (it == detail::pipes().files.end()) return;
    std::ofstream(it->second, std::ios::binary | std::ios::app)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace headachemd::test
