// `headachemd-sync keygen`: makes the key material the daemon needs, so no
// one has to remember an openssl command line. Today: --jwks, the key pair
// for private_key_jwt client authentication (SMART App Launch asymmetric).
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

// Adds the subcommand to `app`; returns the exit code through `*exit_code`
// when the subcommand runs.
void add_keygen_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
