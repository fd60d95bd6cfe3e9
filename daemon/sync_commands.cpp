#include "sync_commands.hpp"

#include <algorithm>
#include <csignal>
#include <iostream>
#include <memory>

#include <unistd.h>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/browser_enrollment.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/config_check_report.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/enroll.hpp"
#include "headachemd/sync/enroll_report.hpp"
#include "headachemd/sync/http_options.hpp"
#include "headachemd/sync/pass_report.hpp"
#include "headachemd/sync/service.hpp"
#include "headachemd/sync/status_report.hpp"
#include "headachemd/sync/vault_access.hpp"
#include "headachemd/sync/views_setup.hpp"
#include "headachemd/systemd/notify.hpp"
#include "logging.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

int check_config(const common_args& a) {
    auto cfg = load_or_report(a.config);
    if (!cfg) return exit_code::config;
    const char* creds = std::getenv("CREDENTIALS_DIRECTORY");
    auto files = sync::check_secret_files(*cfg, creds ? creds : "");
    // Each [[view]] definition compiled, as the daemon will at start.
    auto views = sync::check_views(*cfg);
    files.errors.insert(files.errors.end(), views.errors.begin(), views.errors.end());
    files.notes.insert(files.notes.end(), views.notes.begin(), views.notes.end());
    files.warnings.insert(files.warnings.end(), views.warnings.begin(), views.warnings.end());
    const auto text = sync::render_config_check(a.config, *cfg, files);
    std::cerr << text.err;
    std::cout << text.out;
    return text.ok ? exit_code::ok : exit_code::config;
}

int sync_once(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a, rc);
    if (!rt) return rc;
    return exit_code_of(*rt->log, [&] {
        asio::io_context io;
        http::client http(io.get_executor(), sync::http_options_for(rt->cfg));
        system_clock clk;
        sync::engine engine(io.get_executor(), rt->cfg, http, *rt->db, *rt->vault, clk, rt->log);
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&engine](const boost::system::error_code& ec, int) {
            if (!ec) engine.stop();
        });
        sync::pass_result pass;
        run_on_io(io, [&]() -> awaitable<void> {
            pass = co_await engine.run_pass();
            signals.cancel();
            http.close_idle();
        });
        sync::purge_audit_or_log(*rt->vault, rt->cfg.daemon.audit_retention_days, *rt->log);
        std::cout << sync::render_pass(pass);
        return pass.failed() == 0 ? exit_code::ok : exit_code::temp_fail;
    });
}

// The daemon: sync::service does the work; this shell owns what belongs to
// the process: SIGTERM stops it (exit 0 once the open page is written or
// abandoned), SIGHUP reloads the config between passes, and systemd hears
// READY, STATUS, RELOADING, STOPPING and the watchdog through notifier.
int run_daemon(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a, rc);
    if (!rt) return rc;
    return exit_code_of(*rt->log, [&] {
        asio::io_context io;
        auto notify = systemd::notifier::from_environment();
        systemd::watchdog_timer watchdog(io.get_executor(), notify);
        sync::service_hooks hooks;
        hooks.ready = [&notify](std::string_view s) { notify.ready(s); };
        hooks.status = [&notify](std::string_view s) { notify.status(s); };
        hooks.reloading = [&notify](std::string_view s) { notify.reloading(s); };
        hooks.stopping = [&notify](std::string_view s) { notify.stopping(s); };
        hooks.start_watchdog = [&watchdog] { watchdog.start(); };
        hooks.stop_watchdog = [&watchdog] { watchdog.stop(); };
        hooks.reload_config = [&a] { return load_or_report(a.config); };
        system_clock clk;
        sync::service svc(io, rt->cfg, *rt->db, *rt->vault, clk, rt->log, std::move(hooks));
        asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec) return;
                if (sig == SIGHUP)
                    svc.request_reload();
                else
                    svc.request_stop();
                signals.async_wait(on_signal);
            };
        signals.async_wait(on_signal);
        if (auto bound = svc.start_listeners(); !bound) {
            rt->log->error("{}", bound.err().message);
            return bound.err().code == errc::bad_key ? exit_code::config : exit_code::unavailable;
        }
        run_on_io(io, [&]() -> awaitable<void> {
            // However run() ends, the signal wait must not keep io.run() going.
            struct on_exit {
                asio::signal_set& s;
                ~on_exit() { s.cancel(); }
            } cleanup{signals};
            co_await svc.run();
        });
        rt->log->info("stopped");
        return exit_code::ok;
    });
}

// Writes what sync::describe_* says, in its order, and maps its end to
// the exit status.
int finish(runtime& rt, const sync::enroll_report& r) {
    using enum sync::message_target;
    for (const auto& m : r.messages) {
        if (m.to == log_error)
            rt.log->error("{}", m.text);
        else if (m.to == log_warn)
            rt.log->warn("{}", m.text);
        else if (m.to == log_info)
            rt.log->info("{}", m.text);
        else
            (m.to == out ? std::cout : std::cerr) << m.text;
    }
    using enum sync::enroll_end;
    return r.end == ok         ? exit_code::ok
           : r.end == usage    ? exit_code::usage
           : r.end == io_error ? exit_code::io_error
                               : exit_code::data_error;
}

struct enroll_args : common_args {
    std::string patient_key;
    std::string refresh_token_file;
    std::string fhir_patient_id;
    std::string ehr;
    std::string listen;
    bool paste = false;
};

// Imports a refresh token that the HeadacheMD web app obtained.
int import_refresh_token(runtime& rt, const config::patient_settings& patient, const enroll_args& a) {
    // A refresh token is a secret file like the others (lib/files): a
    // regular file others cannot read, read with a cap, so a wrong path
    // (/dev/zero, a FIFO, a directory) is a clear error, not a hang or an
    // abort.
    auto read = files::read_protected_file(a.refresh_token_file, files::file_kind::secret,
                                           "refresh token file", files::max_secret_bytes);
    if (read.problem) {
        rt.log->error("{}", read.problem->message());
        return exit_code::no_input;
    }
    auto imported = sync::import_refresh_token(*rt.vault, patient, std::move(*read.content),
                                               a.fhir_patient_id, std::chrono::system_clock::now());
    return finish(rt, sync::describe_import(imported, a.refresh_token_file, patient));
}

// What the admin sees at the end of a browser enrollment.
int report_outcome(runtime& rt, const sync::enrollment_outcome& o) {
    return finish(rt, sync::describe_outcome(o));
}

// Browser enrollment: authorization code + PKCE (SMART App Launch 2.x).
// sync::browser_enrollment does the work; this shows the URL and the
// prompts, reads the pasted address, and maps each end to an exit code.
int browser_enroll(runtime& rt, const config::patient_settings& patient, const enroll_args& a) {
    const auto how = sync::redirect_mode_of(a.listen, a.paste, rt.cfg);
    if (!how) {
        rt.log->error(
            "say how the redirect comes back: --listen HOST:PORT (a listener here), --paste (paste the final "
            "URL), or set [daemon] callback_listen so the running daemon catches it");
        return exit_code::usage;
    }
    const config::ehr_settings* ehr = rt.cfg.find_ehr(patient.ehr);
    return exit_code_of(*rt.log, [&] {
        asio::io_context io;
        http::client http(io.get_executor(), sync::http_options_for(rt.cfg, ehr));
        system_clock clk;
        int rc = exit_code::ok;
        const auto fail = [&](std::string_view why, int code) {
            rt.log->error("{}", why);
            rc = code;
        };
        sync::browser_enrollment session(
            io.get_executor(), http, rt.cfg, *rt.vault, clk,
            {.listen = a.listen,
             .log = rt.log,
             .close_idle = [&http] { http.close_idle(); },
             .on_outcome = [&](const sync::enrollment_outcome& o) { rc = report_outcome(rt, o); }});
        run_on_io(io, [&]() -> awaitable<void> {
            const auto url = co_await session.begin(*ehr, patient);
            if (!url) co_return fail(url.err().message, exit_code::unavailable);
            if (isatty(STDERR_FILENO))
                std::cerr << fmt::format(
                    "Open this address in a browser on a device where the patient can sign in to {}'s "
                    "patient portal. They will sign in, see what HeadacheMD asks to read, and approve it; "
                    "the browser then returns to the redirect URI. The link works once, for 10 minutes.\n\n",
                    ehr->name);
            std::cout << *url << std::endl;
            if (*how == sync::redirect_mode::daemon) {
                std::cout << fmt::format(
                    "The running daemon completes the enrollment at {} when the browser returns; "
                    "`headachemd-sync status` then shows {} as enrolled.\n",
                    *rt.cfg.daemon.callback_listen, patient.key);
            } else if (*how == sync::redirect_mode::listen) {
                std::cerr << fmt::format("Waiting for the redirect on {} …\n", a.listen);
                if (co_await session.wait_for_redirect() == sync::listen_end::expired)
                    fail("no redirect arrived within 10 minutes; the enrollment expired, nothing was stored",
                         exit_code::temp_fail);
            } else {
                std::cerr << "After approving, the browser lands on the redirect URI (the page may not "
                             "load; that is fine). Paste that page's full address here and press Enter:\n";
                std::string line;
                if (!std::getline(std::cin, line))
                    co_return fail("no redirect URL was pasted; nothing was stored", exit_code::data_error);
                const auto outcome = co_await session.complete_from_redirect(line);
                if (!outcome)
                    co_return fail(outcome.err().message + "; nothing was stored", exit_code::data_error);
                rc = report_outcome(rt, *outcome);
            }
        });
        return rc;
    });
}

int enroll(const enroll_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a, rc);
    if (!rt) return rc;
    const config::patient_settings* patient = nullptr;
    for (const auto& p : rt->cfg.patients)
        if (p.key == a.patient_key && (a.ehr.empty() || p.ehr == a.ehr)) patient = &p;
    if (!patient) {
        rt->log->error("patient {} is not listed in {}: add a [[patient]] with this key first", a.patient_key,
                       a.config);
        return exit_code::config;
    }
    if (!a.refresh_token_file.empty()) return import_refresh_token(*rt, *patient, a);
    return browser_enroll(*rt, *patient, a);
}

struct status_args : common_args {
    bool json = false;
};

// Each listed patient: last success, next run, rows changed by the last job,
// when the refresh token lapses, last error. Exit 75 when any patient needs
// attention, so a monitoring check can run it.
int status(const status_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a, rc);
    if (!rt) return rc;
    std::vector<sync::patient_report> reports;
    std::vector<store::view_state> views;
    std::vector<sync::bulk_report> bulk;
    try {
        const auto now = std::chrono::system_clock::now();
        reports = sync::gather_reports(rt->cfg, *rt->db, *rt->vault, now);
        views = store::read_view_states(*rt->db);
        bulk = sync::gather_bulk_reports(rt->cfg, *rt->vault, now);
    } catch (const std::exception& e) {
        rt->log->error("{}", e.what());
        return exit_code::io_error;
    }
    std::cout << (a.json ? sync::render_status_json(reports, views, bulk)
                         : sync::render_status_table(reports) + sync::render_view_status(views) +
                               sync::render_bulk_status(bulk));
    const bool export_failed =
        std::any_of(bulk.begin(), bulk.end(), [](const auto& b) { return b.needs_attention(); });
    return sync::any_needs_attention(reports) || export_failed ? exit_code::temp_fail : exit_code::ok;
}

struct export_args : common_args {
    std::string ehr;
    std::string since;
    bool resume = false;
    bool cancel = false;
};

// Why an export could not start, as an exit code.
int export_exit_code(const error& e) {
    switch (e.code.value()) {
        case errc::bad_export_request:
        case errc::export_failed:  // nothing to resume or cancel
            return exit_code::usage;
        case errc::discovery_failed:
        case errc::resolve:
        case errc::connect:
        case errc::timeout:
        case errc::tls:
        case errc::tls_verify:
            return exit_code::unavailable;
        default:  // unknown_ehr, bad_key, …
            return exit_code::config;
    }
}

// One Bulk Data export by hand (issue 15): resumes the EHR's unfinished
// job, else kicks off a new one. SIGINT/SIGTERM leave the job where it is
// (recorded in the vault) for --resume or the daemon to finish.
int export_once(const export_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a, rc);
    if (!rt) return rc;
    return exit_code_of(*rt->log, [&] {
        asio::io_context io;
        http::client http(io.get_executor(), sync::http_options_for(rt->cfg));
        system_clock clk;
        bool stop = false;
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&stop](const boost::system::error_code& ec, int) {
            if (!ec) stop = true;
        });
        sync::export_request req;
        req.ehr = a.ehr;
        if (!a.since.empty()) req.since = a.since;
        req.mode = a.cancel   ? sync::export_mode::cancel
                   : a.resume ? sync::export_mode::resume_only
                              : sync::export_mode::start_or_resume;
        result<sync::bulk_run_result> r = error{errc::internal_error, "not run"};
        run_on_io(io, [&]() -> awaitable<void> {
            sync::export_context ctx{
                http, rt->cfg, *rt->db, *rt->vault, clk, rt->log, nullptr, {}, [&stop] { return stop; }, {}};
            r = co_await sync::run_configured_export(ctx, req);
            signals.cancel();
            http.close_idle();
        });
        if (!r) {
            rt->log->error("{}", r.err().message);
            return export_exit_code(r.err());
        }
        const std::string ehr = a.ehr.empty() ? (*sync::bulk_ehr_of(rt->cfg, ""))->name : a.ehr;
        std::cout << sync::render_export(ehr, *r);
        if (r->stopped || r->end.what == sync::bulk_action::kind::failed) return exit_code::temp_fail;
        return exit_code::ok;
    });
}

}  // namespace

void add_sync_commands(CLI::App& app, int* exit_code) {
    {
        auto args = std::make_shared<common_args>();
        CLI::App* cmd =
            app.add_subcommand("check-config", "Validate the configuration file without starting");
        cmd->footer(
            "Example:\n  headachemd-sync check-config --config /etc/headachemd/sync.toml\n"
            "Exit status: 0 valid, 78 invalid (each error names file:line:col).");
        add_common(cmd, *args);
        cmd->callback([args, exit_code] { *exit_code = check_config(*args); });
    }
    {
        auto args = std::make_shared<common_args>();
        CLI::App* cmd = app.add_subcommand("sync-once", "Sync every enrolled patient once, then exit");
        cmd->footer(
            "Example:\n  headachemd-sync sync-once --config /etc/headachemd/sync.toml\n"
            "Exit status: 0 every patient synced, 75 some failed (see the table), 78 bad config.");
        add_common(cmd, *args);
        cmd->callback([args, exit_code] { *exit_code = sync_once(*args); });
    }
    {
        auto args = std::make_shared<common_args>();
        CLI::App* cmd = app.add_subcommand("run", "Run the sync daemon (systemd starts this)");
        cmd->footer(
            "Example:\n  headachemd-sync run --config /etc/headachemd/sync.toml\n"
            "SIGTERM stops it cleanly; SIGHUP reloads the config between passes.");
        add_common(cmd, *args);
        cmd->callback([args, exit_code] { *exit_code = run_daemon(*args); });
    }
    {
        auto args = std::make_shared<enroll_args>();
        CLI::App* cmd = app.add_subcommand("enroll", "Enroll a patient listed in the config");
        cmd->footer(
            "Examples:\n"
            "  headachemd-sync enroll hmd-000123 --listen 127.0.0.1:8765   # redirect URI reaches this host\n"
            "  headachemd-sync enroll hmd-000123 --paste                    # paste the final URL back\n"
            "  headachemd-sync enroll hmd-000123          # the running daemon's callback_listen catches it\n"
            "  headachemd-sync enroll hmd-000123 --refresh-token-file /run/hmd/rt.txt   # from the web app\n"
            "Prints the authorize URL to open in the patient's browser; the link works once, for 10 "
            "minutes.\nExit status: 0 enrolled (or handed to the daemon), 65 refused or failed (nothing "
            "stored), 64 usage, 69 EHR unreachable.");
        add_common(cmd, *args);
        cmd->add_option("key", args->patient_key, "the patient's HeadacheMD key, as in [[patient]] key")
            ->required();
        cmd->add_option("--refresh-token-file", args->refresh_token_file, "file holding the refresh token");
        cmd->add_option("--fhir-patient-id", args->fhir_patient_id,
                        "the patient's FHIR id (else from the config)");
        cmd->add_option("--ehr", args->ehr, "the EHR, when the key is listed for several");
        cmd->add_option("--listen", args->listen,
                        "catch the redirect on this host:port (the redirect URI must lead here)");
        cmd->add_flag("--paste", args->paste, "paste the browser's final redirect URL on stdin");
        cmd->callback([args, exit_code] { *exit_code = enroll(*args); });
    }
    {
        auto args = std::make_shared<export_args>();
        CLI::App* cmd =
            app.add_subcommand("export", "Run one Bulk Data export of an EHR ([ehr.bulk]) by hand");
        cmd->footer(
            "Examples:\n"
            "  headachemd-sync export                      # the one [[ehr]] with [ehr.bulk]\n"
            "  headachemd-sync export --ehr clinic --since 2026-01-01T00:00:00Z\n"
            "  headachemd-sync export --resume             # finish a job a stop or crash left\n"
            "  headachemd-sync export --cancel             # cancel it at the server (DELETE)\n"
            "An unfinished job is always resumed, never kicked off twice. Without --since a new job\n"
            "asks for what changed since the last complete export (minus since_overlap), or for\n"
            "everything the first time.\n"
            "Exit status: 0 done or cancelled, 75 the job failed or was stopped (it resumes), 64 usage\n"
            "(nothing to resume or cancel, a bad --since), 69 EHR unreachable, 78 bad config or key.");
        add_common(cmd, *args);
        cmd->add_option("--ehr", args->ehr, "the [[ehr]] (needed when several have [ehr.bulk])");
        cmd->add_option("--since", args->since, "_since of a new job: a FHIR instant with a time zone");
        auto* resume = cmd->add_flag("--resume", args->resume, "only resume the unfinished job");
        cmd->add_flag("--cancel", args->cancel, "cancel the unfinished job at the server")->excludes(resume);
        cmd->callback([args, exit_code] { *exit_code = export_once(*args); });
    }
    {
        auto args = std::make_shared<status_args>();
        CLI::App* cmd = app.add_subcommand("status", "Show each patient's sync state");
        cmd->footer(
            "Example:\n  headachemd-sync status --config /etc/headachemd/sync.toml\n"
            "State: ok, pending (enrolled, first sync not run yet); in capitals when it needs attention:\n"
            "FAILING, NEEDS_REAUTH (enroll again), NOT_ENROLLED, LAPSING (the refresh token lapses within\n"
            "keepalive_before).\n"
            "Exit status: 0 all fine, 75 some patient needs attention or the last Bulk Data export failed\n"
            "(monitoring checks use this).");
        add_common(cmd, *args);
        cmd->add_flag("--json", args->json, "one JSON object on stdout, for monitoring tools");
        cmd->callback([args, exit_code] { *exit_code = status(*args); });
    }
}

}  // namespace headachemd::daemon
