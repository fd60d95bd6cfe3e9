// The numbered migrations in schema/NNNN_name.sql (headache.db) and
// schema/vault/NNNN_name.sql (vault.db), embedded at build time by
// cmake/embed_schema.cmake.
#pragma once

#include <span>
#include <string_view>

namespace headachemd::schema {

struct migration {
    int version;            // NNNN from the file name; becomes PRAGMA user_version
    std::string_view name;  // the file name
    std::string_view sql;   // the file's text
};

// Ascending version order, versions 1..N without gaps (the build checks).
std::span<const migration> analytics_migrations();
std::span<const migration> vault_migrations();

}  // namespace headachemd::schema
