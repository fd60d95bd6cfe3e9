#include "unenroll_command.hpp"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/unenroll.hpp"
#include "headachemd/sync/unenroll_report.hpp"
#include "headachemd/sync/vault_access.hpp"
#include "logging.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

struct unenroll_args {
    std::string config = "/etc/headachemd/sync.toml";
    std::string log_level;
    std::string key;
    std::string ehr;
    bool purge = false;
    bool force = false;
};

// Logs and prints what sync::describe_unenroll says about `r` (log lines on
// stderr, the rest on stdout, each in its own order) and maps its status to
// the exit code.
int report(const sync::unenroll_request& req, const config::config& cfg, const sync::unenroll_result& r,
           spdlog::logger& log) {
    const auto rep = sync::describe_unenroll(req, cfg, r);
    using level = sync::unenroll_message::level;
    for (const auto& m : rep.log)
        log.log(m.lvl == level::error  ? spdlog::level::err
                : m.lvl == level::warn ? spdlog::level::warn
                                       : spdlog::level::info,
                "{}", m.text);
    std::cout << rep.out;
    switch (rep.exit) {
        case sync::unenroll_exit::usage:
            return exit_code::usage;
        case sync::unenroll_exit::config:
            return exit_code::config;
        case sync::unenroll_exit::unavailable:
            return exit_code::unavailable;
        case sync::unenroll_exit::ok:
            break;
    }
    return exit_code::ok;
}

int run_unenroll(const unenroll_args& a) {
    const auto loaded = load_or_report(a.config, "nothing was changed");
    if (!loaded) return exit_code::config;
    const config::config& cfg = *loaded;
    auto log = make_logger(a.log_level.empty() ? cfg.daemon.log_level : a.log_level);

    const auto opened = sync::try_open_configured_vault(cfg.daemon);
    if (!opened.vault) {
        log->error("{}", opened.message);
        return exit_code_for(opened.failure);
    }
    store::vault* vault = opened.vault.get();

    try {
        const sync::unenroll_request req{a.key, a.ehr, a.purge, a.force};
        return report(req, cfg, sync::unenroll_patient_blocking(cfg, *vault, req), *log);
    } catch (const store::key_error& e) {
        log->error("{}", e.what());
        return exit_code::config;
    } catch (const store::store_error& e) {
        log->error("{}", e.what());
        return exit_code::io_error;
    } catch (const std::runtime_error& e) {
        // An unreadable client secret or key file (the message names it).
        log->error("{}", e.what());
        return exit_code::config;
    }
}

}  // namespace

void add_unenroll_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<unenroll_args>();
    CLI::App* cmd = app.add_subcommand(
        "unenroll",
        "End a patient's enrollment: revoke its refresh token at the EHR and remove it from vault.db");
    cmd->footer(
        "Examples:\n"
        "  headachemd-sync unenroll hmd-0042\n"
        "  headachemd-sync unenroll hmd-0042 --ehr clinic-ecw --purge\n"
        "\nThe refresh token is revoked at the EHR's revocation_endpoint (RFC 7009) before it is\n"
        "deleted here. When that fails, nothing is changed (retry later) unless --force is given.\n"
        "--purge also deletes the patient's rows (all tables, cursors, status) from headache.db.\n"
        "\nExit status: 0 done, 64 unknown patient or EHR, 69 revocation failed (nothing changed),\n"
        "74 a database failed, 75 rekey is running, 78 configuration or token key problem.");
    cmd->add_option("-c,--config", args->config, "configuration file")->capture_default_str();
    cmd->add_option("--log-level", args->log_level,
                    "trace, debug, info, warn, error (default: from the config)");
    cmd->add_option("key", args->key, "the patient key (as in [[patient]] key)")->required();
    cmd->add_option("--ehr", args->ehr,
                    "the EHR to unenroll from (needed when the key is enrolled at several)");
    cmd->add_flag("--purge", args->purge, "also delete the patient's rows from headache.db");
    cmd->add_flag("--force", args->force,
                  "remove the enrollment even when the token cannot be revoked at the EHR");
    cmd->callback([args, exit_code] { *exit_code = run_unenroll(*args); });
}

}  // namespace headachemd::daemon
