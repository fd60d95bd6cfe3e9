// check-config, sync-once, run, enroll, status: the commands that work from
// the config file.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_sync_commands(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
