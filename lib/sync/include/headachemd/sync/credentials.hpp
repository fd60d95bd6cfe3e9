// The client credentials of one [[ehr]], read from the files the config
// names (DESIGN.md "Security model": secrets come from files or systemd
// credentials, never from the config text). Shared by the sync engine
// (refresh) and browser enrollment (code exchange).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/smart/client_assertion.hpp"
#include "headachemd/smart/smart.hpp"

namespace headachemd::sync {

// Throws std::runtime_error naming the file when a secret cannot be read.
// The message never contains the secret.
smart::client_credentials load_client_credentials(const config::ehr_settings& ehr);

// One [ehr.bulk] key (`file` is its private_key_file or its
// next_private_key_file): read under the secret file rule, unencrypted, and
// of the type the section's `algorithm` signs with. The error names the file
// and what was wrong, never the key bytes.
result<smart::signing_key> load_bulk_signing_key(const config::ehr_settings& ehr,
                                                 const std::filesystem::path& file);

// check-config: the secret files the config names, read as the daemon
// reads them at start (lib/files: the one mode rule, regular files only,
// size caps, not empty; then the key formats). A file that does not exist
// yet is a note, not an error: the shipped example names paths an admin
// creates later, and a systemd credential exists only inside the unit.
struct secret_file_report {
    std::vector<std::string> notes;
    std::vector<std::string> warnings;  // shown, but the config is still ok
    std::vector<std::string> errors;
};

// `credentials_directory`: $CREDENTIALS_DIRECTORY, where systemd puts
// token.key when [daemon] token_key_file is not set (empty: none).
secret_file_report check_secret_files(const config::config& cfg, const std::string& credentials_directory);

}  // namespace headachemd::sync
