// What `ingest` opens before the first batch: the vault (for the
// pseudonymization key), headache.db bound to that key, and the ingester.
// One function, so that the daemon only parses the arguments, runs the
// batches and prints (issue 14).
#pragma once

#include <filesystem>
#include <memory>

#include <spdlog/logger.h>

#include "headachemd/ingest/ingest.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::ingest {

struct session_paths {
    std::filesystem::path db;
    std::filesystem::path vault;           // empty: vault.db beside `db`
    std::filesystem::path token_key_file;  // empty: the systemd credential token.key
};

// `paths.vault`, or vault.db in the directory of `paths.db`: ingest reads no
// config file, and the daemon's default layout keeps the two side by side.
std::filesystem::path vault_path_of(const session_paths& paths);

// Destroyed in reverse order: the ingester before the database it writes,
// the database before the vault (and its lock).
struct session {
    std::unique_ptr<store::vault> vault;
    std::unique_ptr<store::analytics_db> db;
    std::unique_ptr<ingester> loader;
};

// Opens the vault with the token key (holding the shared lock that keeps
// `rekey` out), opens or creates headache.db, binds it to the fingerprint
// of the vault's pseudonymization key and builds the ingester. Nothing is
// ingested yet. Throws store::key_error (the token key is missing or does
// not open the vault) or store::store_error (a file that cannot be opened
// or created, a database bound to another key).
session open_session(const session_paths& paths, const options& opts, std::shared_ptr<spdlog::logger> log);

}  // namespace headachemd::ingest
