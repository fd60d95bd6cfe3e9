// What `unenroll` tells the admin about an unenroll_result: the log lines
// (stderr), the stdout text and the exit status. Pure, so that every branch
// is pinned by unit tests; the daemon only logs, prints and maps the status
// to its exit codes (issue 14).
#pragma once

#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/sync/unenroll.hpp"

namespace headachemd::sync {

struct unenroll_message {
    enum class level { info, warn, error };
    level lvl = level::info;
    std::string text;

    bool operator==(const unenroll_message&) const = default;
};

// The daemon maps these to sysexits codes (daemon/exit_codes.hpp).
enum class unenroll_exit {
    ok,           // unenrolled (a revocation maybe forced past)
    usage,        // unknown patient or EHR: nothing changed
    config,       // enrolled at an EHR the config no longer lists, no --force
    unavailable,  // the EHR did not revoke, no --force: nothing changed
};

struct unenroll_report {
    unenroll_exit exit = unenroll_exit::ok;
    std::vector<unenroll_message> log;  // in order, at their levels
    std::string out;                    // stdout, each line ending in '\n'
};

// `req` is what the admin asked (its key and --purge are named in the
// texts), `cfg` the configuration unenroll_patient ran with (file paths,
// [[patient]] entries), `r` what it did.
unenroll_report describe_unenroll(const unenroll_request& req, const config::config& cfg,
                                  const unenroll_result& r);

}  // namespace headachemd::sync
