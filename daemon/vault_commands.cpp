#include "vault_commands.hpp"

#include <iostream>

#include "exit_codes.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/sync/vault_access.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

namespace fs = std::filesystem;

struct rekey_args {
    std::string config = default_config;
    std::string new_key_file;
};

int rekey(const rekey_args& a) {
    auto cfg = load_or_report(a.config, "nothing was changed");
    if (!cfg) return exit_code::config;
    try {
        const auto r = sync::rekey_vault(cfg->daemon, a.new_key_file);
        if (r.same_key) {
            std::cerr << "error: " << a.new_key_file
                      << " holds the key the vault is already sealed with (key id " << r.old_id
                      << "); create a new one with `headachemd-sync keygen --token-key PATH`\n";
            return exit_code::usage;
        }
        std::cout << "re-sealed " << r.resealed << " secret(s) in " << cfg->daemon.vault.string()
                  << " under key id " << r.new_id << " (was " << r.old_id << ").\n"
                  << "Now set [daemon] token_key_file = \"" << a.new_key_file
                  << "\" (or LoadCredential=token.key:" << a.new_key_file
                  << ") and start the daemon; the old key opens nothing any more.\n";
        return exit_code::ok;
    } catch (const sync::vault_busy& e) {
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
