// `headachemd-sync ingest`: load FHIR files from disk into headache.db.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

// Adds the subcommand to `app`; returns the exit code through `*exit_code`
// when the subcommand runs.
void add_ingest_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
