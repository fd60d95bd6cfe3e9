#include "unenroll_command.hpp"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/unenroll.hpp"
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

// What the admin sees, and the exit status, for what sync::unenroll_patient did.
int report(const unenroll_args& a, const config::config& cfg, const sync::unenroll_result& r,
           spdlog::logger& log) {
    const std::string& ehr_name = r.ehr;
    const auto audit_failed = [&](std::string_view action, const std::string& why) {
        if (!why.empty())
            log.error("the audit log could not record {} of patient {}: {}", action, a.key, why);
    };
    switch (r.status) {
        case sync::unenroll_status::unknown_patient:
            log.error("{}", r.problem);
            return exit_code::usage;
        case sync::unenroll_status::ehr_not_configured:
        case sync::unenroll_status::revocation_failed:
        case sync::unenroll_status::done:
            break;
    }
    if (r.ehr_missing)
        log.error(
            "patient {} is enrolled at {}, which {} no longer lists, so its refresh token cannot be "
            "revoked; add the [[ehr]] back, or pass --force to remove the enrollment here anyway",
            a.key, ehr_name, cfg.file.string());
    if (r.status == sync::unenroll_status::ehr_not_configured) return exit_code::config;
    if (r.revocation) {
        audit_failed(store::audit_action::revoke, r.revoke_audit_error);
        switch (r.revocation->status) {
            case sync::revocation_status::revoked:
                std::cout << fmt::format("Revoked the refresh token of {} at {} ({}).\n", a.key, ehr_name,
                                         r.revocation->endpoint);
                log.info("revoked the refresh token of patient {} at {}", a.key, ehr_name);
                break;
            case sync::revocation_status::no_endpoint:
                log.warn(
                    "{} advertises no revocation_endpoint: the refresh token of patient {} is "
                    "deleted "
                    "here but stays valid at the EHR until it expires; to end the grant now, revoke "
                    "HeadacheMD's access in the EHR (patient portal or admin console)",
                    ehr_name, a.key);
                break;
            case sync::revocation_status::failed:
                if (r.status == sync::unenroll_status::revocation_failed) {
                    log.error(
                        "could not revoke the refresh token of patient {} at {}: {}. Nothing was "
                        "changed: the enrollment stays so that the revocation can be retried (run "
                        "unenroll again later), or pass --force to remove it here anyway (the grant "
                        "at "
                        "the EHR then stays valid until it expires)",
                        a.key, ehr_name, r.revocation->failure->message);
                    return exit_code::unavailable;
                }
                log.warn(
                    "could not revoke the refresh token of patient {} at {}: {}. --force: removing "
                    "the "
                    "enrollment anyway; the grant at the EHR stays valid until it expires",
                    a.key, ehr_name, r.revocation->failure->message);
                break;
        }
    }
    if (r.purged_db) {
        std::cout << fmt::format("Deleted {} row(s) of {} at {} from {}.\n", r.purged_rows, a.key, ehr_name,
                                 cfg.daemon.database.string());
        log.info("purged patient {} at {} from headache.db ({} rows)", a.key, ehr_name, r.purged_rows);
    }
    if (r.had_enrollment || r.pending_removed > 0)
        std::cout << fmt::format(
            "Removed {} of {} at {} from {}.\n",
            r.had_enrollment
                ? (r.pending_removed > 0 ? "the enrollment and pending sign-in link(s)" : "the enrollment")
                : "the pending sign-in link(s)",
            a.key, ehr_name, cfg.daemon.vault.string());
    log.info("unenrolled patient {} at {}", a.key, ehr_name);
    if (r.server_grant_may_live)
        std::cout << "The grant at the EHR may still be valid until it expires: revoke HeadacheMD's access "
                     "there to end it now.\n";
    for (const auto& p : cfg.patients) {
        if (p.key != a.key || p.ehr != ehr_name) continue;
        std::cout << fmt::format(
            "Now remove the [[patient]] entry with key = \"{}\" from {} (and reload the daemon): "
            "until then `status` shows it as not enrolled.\n",
            a.key, cfg.file.string());
    }
    if (!a.purge)
        std::cout << fmt::format("Its rows stay in {}; `unenroll {} --ehr {} --purge` deletes them.\n",
                                 cfg.daemon.database.string(), a.key, ehr_name);
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
        return opened.failure == sync::vault_failure::busy  ? exit_code::temp_fail
               : opened.failure == sync::vault_failure::key ? exit_code::config
                                                            : exit_code::cant_create;
    }
    store::vault* vault = opened.vault.get();

    try {
        const auto r = sync::unenroll_patient_blocking(cfg, *vault, {a.key, a.ehr, a.purge, a.force});
        return report(a, cfg, r, *log);
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
