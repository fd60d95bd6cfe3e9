// The token key and the vault: where the daemon finds the key, how every
// command opens vault.db with it, `rekey`, and the key-file writer that
// `keygen --token-key PATH` calls.
#pragma once

#include <filesystem>
#include <memory>

#include <CLI/CLI.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::daemon {

// The systemd credential name: LoadCredential=token.key:/etc/headachemd/credentials/token.key
inline constexpr const char* token_key_credential = "token.key";

// Another process holds the vault in a way that excludes this one (rekey
// while the daemon runs, or the reverse).
class vault_busy : public store::store_error {
public:
    using store::store_error::store_error;
};

// The token key the config names: [daemon] token_key_file when set, else
// $CREDENTIALS_DIRECTORY/token.key. Throws store::key_error saying how to
// provide one when neither exists, or what is wrong with the file.
store::token_key load_configured_token_key(const config::daemon_settings& d);

// Opens d.vault with the configured key, holding a shared lock that keeps
// `rekey` out until this process exits. Throws store::key_error (missing or
// wrong key, a row that does not open: vault.db is left byte-identical),
// vault_busy (rekey is running) or store::store_error.
std::unique_ptr<store::vault> open_configured_vault(const config::daemon_settings& d);

// Opens the vault at `path` with `key`, holding the same shared lock (for
// commands such as ingest that name the vault without a config).
std::unique_ptr<store::vault> open_locked_vault(const std::filesystem::path& path, store::token_key key);

// Writes a new random token key to `path` (mode 0600, never overwriting),
// prints its key id and what to do next. Returns an exit code: ok, or
// cant_create with the reason on stderr.
int write_token_key(const std::filesystem::path& path);

// `rekey --new-key-file PATH [--config FILE]`.
void add_vault_commands(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
