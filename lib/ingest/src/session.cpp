#include "headachemd/ingest/session.hpp"

#include <utility>

#include "headachemd/store/pseudonym.hpp"
#include "headachemd/sync/vault_access.hpp"

namespace headachemd::ingest {

namespace fs = std::filesystem;

fs::path vault_path_of(const session_paths& paths) {
    return paths.vault.empty() ? paths.db.parent_path() / "vault.db" : paths.vault;
}

session open_session(const session_paths& paths, const options& opts, std::shared_ptr<spdlog::logger> log) {
    // The vault first: a missing or wrong token key stops us before
    // headache.db is created.
    config::daemon_settings key_source;
    if (!paths.token_key_file.empty()) key_source.token_key_file = paths.token_key_file;
    session s;
    s.vault = sync::open_locked_vault(vault_path_of(paths), sync::load_configured_token_key(key_source));
    s.db = std::make_unique<store::analytics_db>(paths.db);
    const auto key = s.vault->pseudonymization_key();
    s.db->bind_pseudonym_fingerprint(store::fingerprint(key));
    s.loader = std::make_unique<ingester>(*s.db, key, opts, std::move(log));
    return s;
}

}  // namespace headachemd::ingest
