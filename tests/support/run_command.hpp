// Runs the real headachemd-sync binary and captures what it printed.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "test_support.hpp"

extern char** environ;

namespace headachemd::test {

struct command_result {
    int exit_code = -1;
    std::string out, err;
};

// Starts HEADACHEMD_BINARY with `args` and returns its pid (-1 when it
// could not start). stdin is /dev/null; stdout and stderr go to files, so
// nothing can block on a full pipe. `extra_env` ("NAME=value") is added to
// this process's environment for the child only. Under ctest both files are
// symbolic links into the log capture (log_capture.hpp).
inline pid_t spawn_binary(const std::vector<std::string>& args, const std::filesystem::path& out_path,
                          const std::filesystem::path& err_path, std::vector<std::string> extra_env = {}) {
    const auto out_file = capture_output(out_path, "stdout");
    const auto err_file = capture_output(err_path, "stderr");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all{HEADACHEMD_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : extra_env) envp.push_back(e.data());
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

// Runs HEADACHEMD_BINARY with `args` to completion; the output files are
// stdout.txt and stderr.txt in `scratch`.
inline command_result run_binary(const std::vector<std::string>& args, const std::filesystem::path& scratch) {
    const auto out_path = scratch / "stdout.txt";
    const auto err_path = scratch / "stderr.txt";
    command_result r;
    const pid_t pid = spawn_binary(args, out_path, err_path);
    if (pid < 0) return r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

// A child whose chosen standard streams are pipes, for tests that talk to
// the binary while it runs (paste a URL, wait for a log line). Streams that
// are not piped go to stdin: /dev/null, stdout.txt and stderr.txt in `scratch`.
struct piped_child {
    pid_t pid = -1;
    int in = -1;   // write end of the child's stdin, when piped
    int out = -1;  // read end of the child's stdout, when piped
    int err = -1;  // read end of the child's stderr, when piped
};

inline piped_child spawn_piped(const std::vector<std::string>& args, const std::filesystem::path& scratch,
                               bool pipe_in, bool pipe_out, bool pipe_err) {
    piped_child c;
    const auto out_file =
        pipe_out ? std::filesystem::path() : capture_output(scratch / "stdout.txt", "stdout");
    const auto err_file =
        pipe_err ? std::filesystem::path() : capture_output(scratch / "stderr.txt", "stderr");
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    if ((pipe_in && pipe2(in_p, O_CLOEXEC) != 0) || (pipe_out && pipe2(out_p, O_CLOEXEC) != 0) ||
        (pipe_err && pipe2(err_p, O_CLOEXEC) != 0))
        return c;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipe_in)
        posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (pipe_out)
        posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (pipe_err)
        posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all{HEADACHEMD_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    for (int fd : {in_p[0], out_p[1], err_p[1]})
        if (fd >= 0) close(fd);
    c.in = in_p[1];
    c.out = out_p[0];
    c.err = err_p[0];
    capture_pipe(c.out, "stdout-pipe");
    capture_pipe(c.err, "stderr-pipe");
    if (rc == 0) c.pid = pid;
    return c;
}

// Reads lines from `fd` until one contains `needle`; returns it, or nullopt
// at end of file or when `deadline` passes with nothing new (the child hung).
// Every line read is appended to `seen`, for the failure message.
inline std::optional<std::string> read_line_containing(
    int fd, std::string_view needle, std::string& seen,
    std::chrono::seconds deadline = std::chrono::seconds(60)) {
    std::string line;
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        char c = 0;
        if (poll(&p, 1, static_cast<int>(deadline.count() * 1000)) <= 0 || read(fd, &c, 1) <= 0) {
            capture_pipe_bytes(fd, line);  // a last line without its newline
            return std::nullopt;
        }
        seen.push_back(c);
        if (c != '\n') {
            line.push_back(c);
            continue;
        }
        capture_pipe_bytes(fd, line + "\n");
        if (line.find(needle) != std::string::npos) return line;
        line.clear();
    }
}

// Waits for the child; its exit code, or 128 + signal.
inline int wait_exit(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace headachemd::test
