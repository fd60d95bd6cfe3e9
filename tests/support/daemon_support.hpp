// For tests that run the daemon (`run`) as a child and read its /metrics.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>

#include "run_command.hpp"

namespace headachemd::test {

// The number after `series ` on its own line of a Prometheus text, or -1.
inline double metrics_sample(const std::string& text, const std::string& series) {
    const auto at = ("\n" + text).find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 1));
}

// The port in "… metrics are served on http://127.0.0.1:PORT/metrics …".
inline int metrics_port_in(const std::string& line) {
    const std::string marker = "http://127.0.0.1:";
    const auto at = line.find(marker);
    if (at == std::string::npos) return -1;
    return std::stoi(line.substr(at + marker.size()));
}

// Kills and reaps the daemon if a failed assertion leaves it running.
struct daemon_reaper {
    pid_t& pid;
    ~daemon_reaper() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        wait_exit(pid);
    }
};

}  // namespace headachemd::test
