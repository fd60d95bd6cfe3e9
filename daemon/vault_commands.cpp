#include "vault_commands.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "exit_codes.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"

namespace headachemd::daemon {
namespace {

namespace fs = std::filesystem;

constexpr const char* default_config = "/etc/headachemd/sync.toml";

std::optional<config::config> load_or_report(const std::string& path) {
    auto loaded = config::load_config(path);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        std::cerr << errors->size() << " error(s) in " << path << "; nothing was changed\n";
        return std::nullopt;
    }
    return std::get<config::config>(std::move(loaded));
}

// rekey must not run beside a process that still seals with the old key:
// a token that process rotated afterwards would be sealed with a key the
// vault no longer uses. Every command that opens the vault holds a shared
// flock(2) on "<vault>.lock" until it exits; rekey takes it exclusively.
// A separate file, because closing any descriptor of vault.db itself would
// drop SQLite's POSIX locks on it (https://sqlite.org/howtocorrupt.html §2.2).
void lock_vault(const fs::path& vault, bool exclusive) {
    static int held = -1;  // one vault per process, held until exit
    if (held >= 0) return;
    const fs::path lock = vault.string() + ".lock";
    const int fd = ::open(lock.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        throw store::store_error("cannot open the lock file '" + lock.string() +
                                 "': " + std::strerror(errno));
    if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        ::close(fd);
        throw vault_busy(exclusive
                             ? "another headachemd-sync process (the daemon?) has " + vault.string() +
                                   " open; stop it first (systemctl stop headachemd-sync), then run rekey"
                             : "rekey is re-sealing " + vault.string() + "; try again when it has finished");
    }
    held = fd;
}

struct rekey_args {
    std::string config = default_config;
    std::string new_key_file;
};

int rekey(const rekey_args& a) {
    auto cfg = load_or_report(a.config);
    if (!cfg) return exit_code::config;
    try {
        // Open with the current key first: the start-up check refuses a
        // wrong key or a row that does not open before anything is written.
        lock_vault(cfg->daemon.vault, true);
        auto vault = open_configured_vault(cfg->daemon);
        const auto new_key = store::load_token_key(a.new_key_file);
        const std::string old_id = vault->key_id();
        if (new_key.id() == old_id) {
            std::cerr << "error: " << a.new_key_file
                      << " holds the key the vault is already sealed with (key id " << old_id
                      << "); create a new one with `headachemd-sync keygen --token-key PATH`\n";
            return exit_code::usage;
        }
        // The audit log (issue 5): which key ids, never the keys. Its row is
        // written in the re-sealing's transaction: a crash between two
        // commits left a rekeyed vault whose log did not record the rekey
        // (issue 18, found by KillPoints.RekeyLeavesTheVaultUnderExactlyOneKeyAndResumes).
        const auto n = vault->rekey(new_key, [](SQLite::Database& db, std::size_t resealed) {
            const auto event =
                store::enrollment_event(store::utc_timestamp(std::chrono::system_clock::now()), {}, {},
                                        store::audit_action::rekey, "ok", static_cast<int>(resealed));
            store::insert_audit(db, {&event, 1});
        });
        std::cout << "re-sealed " << n << " secret(s) in " << cfg->daemon.vault.string() << " under key id "
                  << new_key.id() << " (was " << old_id << ").\n"
                  << "Now set [daemon] token_key_file = \"" << a.new_key_file
                  << "\" (or LoadCredential=token.key:" << a.new_key_file
                  << ") and start the daemon; the old key opens nothing any more.\n";
        return exit_code::ok;
    } catch (const vault_busy& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::temp_fail;
    } catch (const store::key_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::config;
    } catch (const store::store_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::io_error;
    }
}

}  // namespace

store::token_key load_configured_token_key(const config::daemon_settings& d) {
    if (d.token_key_file) return store::load_token_key(*d.token_key_file);
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    const std::string fix =
        "set [daemon] token_key_file or LoadCredential=token.key:…; create one with "
        "`headachemd-sync keygen --token-key PATH`";
    if (!creds || !*creds)
        throw store::key_error(
            "no token key to open the vault with (it seals the refresh tokens in vault.db): " + fix);
    const fs::path p = fs::path(creds) / token_key_credential;
    std::error_code ec;
    if (!fs::exists(p, ec))
        throw store::key_error("no token key to open the vault with: the systemd credential " + p.string() +
                               " does not exist; " + fix);
    return store::load_token_key(p);
}

std::unique_ptr<store::vault> open_configured_vault(const config::daemon_settings& d) {
    return open_locked_vault(d.vault, load_configured_token_key(d));
}

std::unique_ptr<store::vault> open_locked_vault(const fs::path& path, store::token_key key) {
    lock_vault(path, false);
    return std::make_unique<store::vault>(path, std::move(key));
}

int write_token_key(const fs::path& path) {
    try {
        const auto key = store::write_new_token_key(path);
        std::cout << "wrote a new token key to " << path.string() << " (mode 0600, key id " << key.id()
                  << ").\nPoint [daemon] token_key_file at it, or load it with LoadCredential=token.key:"
                  << path.string() << "; to move an existing vault onto it, run `headachemd-sync rekey "
                  << "--new-key-file " << path.string() << "`. Back it up: without it the tokens in vault.db "
                  << "cannot be opened.\n";
        return exit_code::ok;
    } catch (const store::store_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::cant_create;
    }
}

void add_vault_commands(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<rekey_args>();
    CLI::App* cmd = app.add_subcommand("rekey", "Re-seal every secret in the vault under a new token key");
    cmd->footer(
        "Example:\n"
        "  systemctl stop headachemd-sync\n"
        "  headachemd-sync keygen --token-key /etc/headachemd/token-2.key\n"
        "  headachemd-sync rekey --new-key-file /etc/headachemd/token-2.key\n"
        "  (set token_key_file to the new file, then) systemctl start headachemd-sync\n"
        "Opens vault.db with the current key (from the config), re-seals every row under the new key in\n"
        "one transaction, and syncs it to disk. Run it while the daemon is stopped.\n"
        "Exit status: 0 done, 78 a key is missing or wrong (nothing changed), 74 the vault failed.");
    cmd->add_option("-c,--config", args->config, "configuration file")->capture_default_str();
    cmd->add_option("--new-key-file", args->new_key_file, "the new key (64 hex digits, mode 0600)")
        ->required();
    cmd->callback([args, exit_code] { *exit_code = rekey(*args); });
}

}  // namespace headachemd::daemon
