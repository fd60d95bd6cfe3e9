// `headachemd-sync view run`: evaluates one ViewDefinition over FHIR files
// and prints its rows (issue 16 item 5), so an analyst can try a definition
// before adding it to the config.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

void add_view_commands(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
