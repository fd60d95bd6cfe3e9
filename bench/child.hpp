#pragma once
// A benchmark's child process: the real `headachemd-sync` binary, measured
// from outside (its own peak RSS through wait4, its own file descriptors),
// as systemd would run it. bench/soak runs the daemon, bench/bulk `export`.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace headachemd::bench {

// Starts args[0] with args (args[0] a path), stdin /dev/null, stdout and
// stderr appended to log_path, and no inherited descriptor beyond those;
// the child gets SIGTERM when this process dies. Returns its pid.
inline pid_t spawn_child(std::vector<std::string> args, const std::filesystem::path& log_path) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Not under systemd: no NOTIFY_SOCKET and no watchdog, whose WATCHDOG=1
    // every WatchdogSec/2 would be the daemon's only (intended) wake-up.
    std::vector<char*> envp;
    for (char** e = environ; *e; ++e) {
        const std::string_view v(*e);
        if (v.rfind("NOTIFY_SOCKET=", 0) == 0 || v.rfind("WATCHDOG_", 0) == 0) continue;
        envp.push_back(*e);
    }
    envp.push_back(nullptr);
    const int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0) throw std::runtime_error("cannot open " + log_path.string());
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("cannot fork");
    if (pid == 0) {
        // The child goes when the bench goes (killed, or an exception that
        // skipped the bench's own SIGTERM), instead of syncing on, orphaned.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        // Asio's sockets are not close-on-exec: without this the child
        // would inherit the sandbox's listening socket, and count it.
        const long max_fd = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
        for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(out);
    ::close(in);
    return pid;
}

}  // namespace headachemd::bench
