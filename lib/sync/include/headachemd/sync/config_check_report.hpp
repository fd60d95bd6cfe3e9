// What `check-config` prints once the config has parsed: the secret files'
// errors on stderr, or "PATH: ok", each EHR and the notes on stdout. Pure:
// the daemon loads the config, checks the files and writes the texts.
#pragma once

#include <string>
#include <string_view>

#include "headachemd/config/config.hpp"
#include "headachemd/sync/credentials.hpp"

namespace headachemd::sync {

struct config_check_text {
    bool ok = false;  // no error: the daemon exits 0, else as for a bad config
    std::string out;  // for stdout; empty when not ok
    std::string err;  // for stderr; empty when ok
};

// Every value echoed (the path, EHR names, URLs, profiles, errors, notes) is
// line-escaped: the config is validated by now, but one value must stay one
// line and no terminal control sequence may get through.
config_check_text render_config_check(std::string_view config_path, const config::config& cfg,
                                      const secret_file_report& secrets);

}  // namespace headachemd::sync
