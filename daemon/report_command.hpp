// `headachemd-sync report`: the clinic report as one self-contained HTML file.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_report_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
