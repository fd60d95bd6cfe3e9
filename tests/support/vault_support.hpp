// Token keys for tests that open a vault: made at run time (never a fixed
// key in the repository), one file per test directory.
#pragma once

#include <filesystem>
#include <string>

#include <SQLiteCpp/Database.h>

#include "headachemd/store/token_key.hpp"

namespace headachemd::test {

// `dir`/token.key, created (mode 0600) on first use.
inline std::filesystem::path token_key_file(const std::filesystem::path& dir) {
    const auto p = dir / "token.key";
    if (!std::filesystem::exists(p)) headachemd::store::write_new_token_key(p);
    return p;
}

// The key in `dir`/token.key, created on first use.
inline headachemd::store::token_key token_key_in(const std::filesystem::path& dir) {
    return headachemd::store::load_token_key(token_key_file(dir));
}

// A `token_key_file = "…"` line for a [daemon] section.
inline std::string token_key_toml(const std::filesystem::path& dir) {
    return "token_key_file = \"" + token_key_file(dir).string() + "\"\n";
}

// Drops every stored access token (vault version 6), as their expiry would:
// the next job of any process must refresh.
inline void expire_access_tokens(SQLite::Database& vault_db) {
    vault_db.exec("UPDATE enrollment SET access_token = NULL, access_expires_at = NULL, access_scope = NULL");
}

inline void expire_access_tokens(const std::filesystem::path& vault_path) {
    SQLite::Database db(vault_path.string(), SQLite::OPEN_READWRITE);
    expire_access_tokens(db);
}

}  // namespace headachemd::test
