// Where every command finds the token key, and how it opens vault.db with
// it: one place, so that `run`, `enroll`, `unenroll`, `ingest` and `rekey`
// cannot disagree about the key or the lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

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

// Why the vault did not open, for the commands that give each reason its
// own exit status.
enum class vault_failure {
    busy,   // vault_busy: rekey is running
    key,    // store::key_error: the token key is missing or wrong
    store,  // any other store::store_error
};

struct opened_vault {
    std::unique_ptr<store::vault> vault;           // null when it did not open
    vault_failure failure = vault_failure::store;  // when null: why
    std::string message;                           // when null: the error's text, for the admin
};

// open_configured_vault with its typed errors returned as a value. Throws
// nothing else that open_configured_vault would not.
opened_vault try_open_configured_vault(const config::daemon_settings& d);

// `rekey --new-key-file PATH`.
struct rekey_outcome {
    bool same_key = false;  // the new key already seals the vault: nothing was changed
    std::string old_id;     // key ids, never keys
    std::string new_id;
    std::size_t resealed = 0;
};

// Takes the vault lock exclusively (no process may still seal with the old
// key), opens the vault with the configured key (the start-up check refuses
// a wrong key or a row that does not open before anything is written),
// loads the new key and re-seals every secret under it. The audit row
// (issue 5: which key ids, never the keys) is written in the re-sealing's
// transaction: a crash between two commits left a rekeyed vault whose log
// did not record the rekey (issue 18). `now` is read inside that
// transaction. Throws vault_busy, store::key_error (a key missing or wrong:
// nothing changed) or store::store_error.
rekey_outcome rekey_vault(
    const config::daemon_settings& d, const std::filesystem::path& new_key_file,
    const std::function<std::chrono::system_clock::time_point()>& now = std::chrono::system_clock::now);

}  // namespace headachemd::sync
