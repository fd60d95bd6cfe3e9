// `rekey`, and the token-key writer that `keygen --token-key PATH` calls.
// Opening the vault with the configured key: headachemd/sync/vault_access.hpp.
#pragma once

#include <filesystem>
#include <memory>

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

// Writes a new random token key to `path` (mode 0600, never overwriting),
// prints its key id and what to do next. Returns an exit code: ok, or
// cant_create with the reason on stderr.
int write_token_key(const std::filesystem::path& path);

// `rekey --new-key-file PATH [--config FILE]`.
void add_vault_commands(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
