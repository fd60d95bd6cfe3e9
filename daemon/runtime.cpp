#include "runtime.hpp"

#include <iostream>
#include <variant>

#include "headachemd/logging/escape.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/sync/vault_access.hpp"
#include "logging.hpp"

namespace headachemd::daemon {

std::optional<config::config> load_or_report(const std::string& path, std::string_view consequence) {
    auto loaded = config::load_config(path);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        std::cerr << errors->size() << " error(s) in " << logging::line_escaped(path)
                  << (consequence.empty() ? "" : "; ") << consequence << "\n";
        return std::nullopt;
    }
    return std::get<config::config>(std::move(loaded));
}

void add_common(CLI::App* cmd, common_args& a) {
    cmd->add_option("-c,--config", a.config, "configuration file")->capture_default_str();
    cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error (default: from the config)");
    cmd->add_option("--log-format", a.log_format,
                    "auto, journald, text or json lines on stderr (default: from the config)")
        ->check(CLI::IsMember(log_format_names()));
}

int exit_code_for(sync::vault_failure why) {
    switch (why) {
        case sync::vault_failure::busy:
            // rekey holds the vault: a passing state, EX_TEMPFAIL.
            return exit_code::temp_fail;
        case sync::vault_failure::key:
            return exit_code::config;
        case sync::vault_failure::store:
            break;
    }
    return exit_code::cant_create;
}

std::optional<runtime> open_runtime(const common_args& a, int& exit_code) {
    auto cfg = load_or_report(a.config);
    if (!cfg) {
        exit_code = exit_code::config;
        return std::nullopt;
    }
    runtime rt;
    rt.log = make_logger(a.log_level.empty() ? cfg->daemon.log_level : a.log_level,
                         a.log_format.empty() ? cfg->daemon.log_format : a.log_format);
    auto opened = sync::try_open_configured_vault(cfg->daemon);
    if (!opened.vault) {
        rt.log->error("{}", opened.message);
        exit_code = exit_code_for(opened.failure);
        return std::nullopt;
    }
    rt.vault = std::move(opened.vault);
    try {
        rt.db = std::make_unique<store::analytics_db>(cfg->daemon.database);
    } catch (const store::store_error& e) {
        rt.log->error("{}", e.what());
        exit_code = exit_code::cant_create;
        return std::nullopt;
    }
    rt.cfg = std::move(*cfg);
    return rt;
}

}  // namespace headachemd::daemon
