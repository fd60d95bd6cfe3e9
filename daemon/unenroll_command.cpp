#include "unenroll_command.hpp"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/unenroll.hpp"
#include "http_options.hpp"
#include "logging.hpp"
#include "vault_commands.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;

struct unenroll_args {
    std::string config = "/etc/headachemd/sync.toml";
    std::string log_level;
    std::string key;
    std::string ehr;
    bool purge = false;
    bool force = false;
};

// The EHR of this unenrollment: --ehr, else the one EHR the vault or the
// config knows the key at. Empty with a message when there is none or more.
std::string pick_ehr(const unenroll_args& a, const config::config& cfg, store::vault& vault,
                     std::string& problem) {
    if (!a.ehr.empty()) return a.ehr;
    std::set<std::string> seen;
    for (const auto& e : vault.enrollments())
        if (e.patient_key == a.key) seen.insert(e.ehr);
    for (const auto& p : cfg.patients)
        if (p.key == a.key) seen.insert(p.ehr);
    if (seen.size() == 1) return *seen.begin();
    if (seen.empty()) {
        problem = fmt::format(
            "patient {} is not enrolled: vault.db holds no enrollment for it and {} lists no [[patient]] "
            "with that key; nothing was changed",
            a.key, cfg.file.string());
    } else {
        std::string list;
        for (const auto& e : seen) list += (list.empty() ? "" : ", ") + e;
        problem =
            fmt::format("patient {} is known at several EHRs ({}): name one with --ehr; nothing was changed",
                        a.key, list);
    }
    return {};
}

int run_unenroll(const unenroll_args& a) {
    auto loaded = config::load_config(a.config);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        std::cerr << errors->size() << " error(s) in " << a.config << "; nothing was changed\n";
        return exit_code::config;
    }
    const config::config cfg = std::get<config::config>(std::move(loaded));
    auto log = make_logger(a.log_level.empty() ? cfg.daemon.log_level : a.log_level);

    std::unique_ptr<store::vault> vault;
    try {
        vault = open_configured_vault(cfg.daemon);
    } catch (const vault_busy& e) {
        log->error("{}", e.what());
        return exit_code::temp_fail;
    } catch (const store::key_error& e) {
        log->error("{}", e.what());
        return exit_code::config;
    } catch (const store::store_error& e) {
        log->error("{}", e.what());
        return exit_code::cant_create;
    }

    try {
        std::string problem;
        const std::string ehr_name = pick_ehr(a, cfg, *vault, problem);
        if (ehr_name.empty()) {
            log->error("{}", problem);
            return exit_code::usage;
        }
        const config::ehr_settings* ehr = cfg.find_ehr(ehr_name);
        const std::optional<store::enrollment> enr = vault->find_enrollment(a.key, ehr_name);
        store::pending_enrollments pending(*vault);
        const int pending_rows = pending.count_for(a.key, ehr_name);
        // The audit log (issue 5): every revocation attempt and the removal
        // itself. A vault that cannot take the event does not undo a change
        // already made at the EHR; it is reported instead.
        const auto audit = [&](std::string_view action, std::string outcome, std::optional<int> count) {
            try {
                store::append_audit(
                    *vault, store::enrollment_event(store::utc_timestamp(std::chrono::system_clock::now()),
                                                    a.key, ehr_name, action, std::move(outcome), count));
            } catch (const store::store_error& e) {
                log->error("the audit log could not record {} of patient {}: {}", action, a.key, e.what());
            }
        };

        // headache.db only with --purge: without it nothing there changes.
        std::unique_ptr<store::analytics_db> db;
        long long rows = 0;
        // A missing file holds no rows, and is not created for nothing.
        if (a.purge && std::filesystem::exists(cfg.daemon.database)) {
            db = std::make_unique<store::analytics_db>(cfg.daemon.database);
            rows = store::sync_state(*db).patient_rows(ehr_name, a.key);
        }
        if (!enr && pending_rows == 0 && rows == 0) {
            log->error("patient {} has no enrollment at {} in {}{}; nothing was changed", a.key, ehr_name,
                       cfg.daemon.vault.string(),
                       a.purge ? fmt::format(" and no rows in {}", cfg.daemon.database.string()) : "");
            return exit_code::usage;
        }

        // 1. Revoke at the EHR while we still hold the token: once it is
        //    deleted here, nobody can revoke it any more.
        bool server_grant_may_live = false;
        if (enr) {
            if (!ehr) {
                log->error(
                    "patient {} is enrolled at {}, which {} no longer lists, so its refresh token cannot be "
                    "revoked; add the [[ehr]] back, or pass --force to remove the enrollment here anyway",
                    a.key, ehr_name, cfg.file.string());
                if (!a.force) return exit_code::config;
                server_grant_may_live = true;
            } else {
                asio::io_context io;
                http::client http(io.get_executor(), http_options_for(cfg, ehr));
                const auto creds = sync::load_client_credentials(*ehr);
                sync::revocation_outcome outcome;
                std::exception_ptr thrown;
                auto task = [&]() -> asio::awaitable<void> {
                    outcome = co_await sync::revoke_refresh_token(http, *ehr, creds, enr->refresh_token,
                                                                  std::chrono::system_clock::now());
                    http.close_idle();
                };
                asio::co_spawn(io, task, [&thrown](std::exception_ptr ep) { thrown = ep; });
                io.run();
                if (thrown) std::rethrow_exception(thrown);
                switch (outcome.status) {
                    case sync::revocation_status::revoked:
                        audit(store::audit_action::revoke, "ok", std::nullopt);
                        std::cout << fmt::format("Revoked the refresh token of {} at {} ({}).\n", a.key,
                                                 ehr_name, outcome.endpoint);
                        log->info("revoked the refresh token of patient {} at {}", a.key, ehr_name);
                        break;
                    case sync::revocation_status::no_endpoint:
                        server_grant_may_live = true;
                        audit(store::audit_action::revoke, "no_endpoint", std::nullopt);
                        log->warn(
                            "{} advertises no revocation_endpoint: the refresh token of patient {} is "
                            "deleted "
                            "here but stays valid at the EHR until it expires; to end the grant now, revoke "
                            "HeadacheMD's access in the EHR (patient portal or admin console)",
                            ehr_name, a.key);
                        break;
                    case sync::revocation_status::failed:
                        audit(store::audit_action::revoke, "failed", std::nullopt);
                        if (!a.force) {
                            log->error(
                                "could not revoke the refresh token of patient {} at {}: {}. Nothing was "
                                "changed: the enrollment stays so that the revocation can be retried (run "
                                "unenroll again later), or pass --force to remove it here anyway (the grant "
                                "at "
                                "the EHR then stays valid until it expires)",
                                a.key, ehr_name, outcome.failure.message);
                            return exit_code::unavailable;
                        }
                        server_grant_may_live = true;
                        log->warn(
                            "could not revoke the refresh token of patient {} at {}: {}. --force: removing "
                            "the "
                            "enrollment anyway; the grant at the EHR stays valid until it expires",
                            a.key, ehr_name, outcome.failure.message);
                        break;
                }
            }
        }

        // 2. headache.db, one transaction: all or nothing of this patient.
        long long purged = 0;
        if (db && rows > 0) {
            purged = store::sync_state(*db).purge_patient(ehr_name, a.key);
            std::cout << fmt::format("Deleted {} row(s) of {} at {} from {}.\n", purged, a.key, ehr_name,
                                     cfg.daemon.database.string());
            log->info("purged patient {} at {} from headache.db ({} rows)", a.key, ehr_name, purged);
        }

        // 3. vault.db: the enrollment and any browser enrollment in flight,
        // and the audit row that records it, in one transaction. Written
        // apart, a crash after the removal lost the row for good: run again,
        // unenroll finds nothing left to do (issue 18, found by
        // KillPoints.UnenrollPurgeResumesAndTouchesNoOtherPatient).
        int pending_removed = 0;
        {
            store::write_transaction tx(vault->sql());
            if (enr) vault->remove_enrollment(a.key, ehr_name);
            pending_removed = pending.remove_for(a.key, ehr_name);
            const auto event = store::enrollment_event(store::utc_timestamp(std::chrono::system_clock::now()),
                                                       a.key, ehr_name, store::audit_action::unenroll,
                                                       a.purge ? "purged" : "ok", static_cast<int>(purged));
            store::insert_audit(vault->sql(), {&event, 1});
            tx.commit();
        }
        if (enr || pending_removed > 0)
            std::cout << fmt::format(
                "Removed {} of {} at {} from {}.\n",
                enr ? (pending_removed > 0 ? "the enrollment and pending sign-in link(s)" : "the enrollment")
                    : "the pending sign-in link(s)",
                a.key, ehr_name, cfg.daemon.vault.string());
        log->info("unenrolled patient {} at {}", a.key, ehr_name);
        if (server_grant_may_live)
            std::cout
                << "The grant at the EHR may still be valid until it expires: revoke HeadacheMD's access "
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
