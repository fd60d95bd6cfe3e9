// Runs the real headachemd-sync binary and captures what it printed.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
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
// this process's environment for the child only.
inline pid_t spawn_binary(const std::vector<std::string>& args, const std::filesystem::path& out_path,
                          const std::filesystem::path& err_path, std::vector<std::string> extra_env = {}) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
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

}  // namespace headachemd::test
