// `headachemd-sync doctor [EHR]` and `doctor --authorize-url URL [--probe]`.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_doctor_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
