#include "headachemd/sync/vault_access.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "headachemd/store/audit.hpp"
#include "headachemd/store/database.hpp"

namespace headachemd::sync {

namespace fs = std::filesystem;

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

opened_vault try_open_configured_vault(const config::daemon_settings& d) {
    opened_vault out;
    try {
        out.vault = open_configured_vault(d);
    } catch (const vault_busy& e) {
        out.failure = vault_failure::busy;
        out.message = e.what();
    } catch (const store::key_error& e) {
        out.failure = vault_failure::key;
        out.message = e.what();
    } catch (const store::store_error& e) {
        out.failure = vault_failure::store;
        out.message = e.what();
    }
    return out;
}

rekey_outcome rekey_vault(const config::daemon_settings& d, const fs::path& new_key_file,
                          const std::function<std::chrono::system_clock::time_point()>& now) {
    lock_vault(d.vault, true);
    auto vault = open_configured_vault(d);
    const auto new_key = store::load_token_key(new_key_file);
    rekey_outcome out;
    out.old_id = vault->key_id();
    out.new_id = new_key.id();
    if (out.new_id == out.old_id) {
        out.same_key = true;
        return out;
    }
    out.resealed = vault->rekey(new_key, [&now](SQLite::Database& db, std::size_t resealed) {
        const auto event =
            store::enrollment_event(store::utc_timestamp(now()), {}, {}, store::audit_action::rekey, "ok",
                                    static_cast<int>(resealed));
        store::insert_audit(db, {&event, 1});
    });
    return out;
}

}  // namespace headachemd::sync
