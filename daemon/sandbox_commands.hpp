// `sandbox` (serve the built-in SMART/FHIR EHR) and `demo` (sandbox +
// enrollment + one sync + a summary, with no setup).
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_sandbox_commands(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
