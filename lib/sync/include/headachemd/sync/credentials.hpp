// The client credentials of one [[ehr]], read from the files the config
// names (DESIGN.md "Security model": secrets come from files or systemd
// credentials, never from the config text). Shared by the sync engine
// (refresh) and browser enrollment (code exchange).
#pragma once

#include "headachemd/config/config.hpp"
#include "headachemd/smart/smart.hpp"

namespace headachemd::sync {

// Throws std::runtime_error naming the file when a secret cannot be read.
// The message never contains the secret.
smart::client_credentials load_client_credentials(const config::ehr_settings& ehr);

}  // namespace headachemd::sync
