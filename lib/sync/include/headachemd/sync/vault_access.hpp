// Where every command finds the token key, and how it opens vault.db with
// it: one place, so that `run`, `enroll`, `unenroll`, `ingest` and `rekey`
// cannot disagree about the key or the lock.
#pragma once

#include <filesystem>
#include <memory>

#include "headachemd/config/config.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::sync {

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

// rekey must not run beside a process that still seals with the old key.
// Every process that opens the vault holds a flock(2) on "<vault>.lock"
// until it exits: shared for the commands, exclusive for rekey. Throws
// vault_busy when the other kind is held, store::store_error when the lock
// file cannot be opened. One vault per process.
void lock_vault(const std::filesystem::path& vault, bool exclusive);

// Opens d.vault with the configured key, holding a shared lock that keeps
// `rekey` out until this process exits. Throws store::key_error (missing or
// wrong key, a row that does not open: vault.db is left byte-identical),
// vault_busy (rekey is running) or store::store_error.
std::unique_ptr<store::vault> open_configured_vault(const config::daemon_settings& d);

// Opens the vault at `path` with `key`, holding the same shared lock (for
// commands such as ingest that name the vault without a config).
std::unique_ptr<store::vault> open_locked_vault(const std::filesystem::path& path, store::token_key key);

}  // namespace headachemd::sync
