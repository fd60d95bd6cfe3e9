#include "sync_commands.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/engine.hpp"
#include "logging.hpp"
#include "vault_commands.hpp"

namespace headachemd::daemon {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;
using asio::use_awaitable;

constexpr const char* default_config = "/etc/headachemd/sync.toml";

// Loads and validates the config, printing every error with file:line:col.
std::optional<config::config> load_or_report(const std::string& path) {
    auto loaded = config::load_config(path);
    if (auto* errors = std::get_if<std::vector<config::config_error>>(&loaded)) {
        for (const auto& e : *errors) std::cerr << "error: " << e.to_string() << "\n";
        std::cerr << errors->size() << " error(s) in " << path << "; nothing was started\n";
        return std::nullopt;
    }
    return std::get<config::config>(std::move(loaded));
}

http::client_options http_options_for(const config::config& cfg) {
    http::client_options o;
    for (const auto& e : cfg.ehrs) {
        if (e.ca_file) o.extra_ca_files.push_back(*e.ca_file);
        o.request_timeout = std::max(o.request_timeout, std::chrono::milliseconds(e.http_timeout));
    }
    return o;
}

// Everything a sync command needs, opened from the config.
struct runtime {
    config::config cfg;
    std::shared_ptr<spdlog::logger> log;
    std::unique_ptr<store::analytics_db> db;
    std::unique_ptr<store::vault> vault;
};

std::optional<runtime> open_runtime(const std::string& config_path, const std::string& log_level,
                                    int& exit_code) {
    auto cfg = load_or_report(config_path);
    if (!cfg) {
        exit_code = exit_code::config;
        return std::nullopt;
    }
    runtime rt;
    rt.log = make_logger(log_level.empty() ? cfg->daemon.log_level : log_level);
    try {
        // The vault first: a missing or wrong token key stops us before
        // either file is written.
        rt.vault = open_configured_vault(cfg->daemon);
        rt.db = std::make_unique<store::analytics_db>(cfg->daemon.database);
    } catch (const store::key_error& e) {
        rt.log->error("{}", e.what());
        exit_code = exit_code::config;
        return std::nullopt;
    } catch (const store::store_error& e) {
        rt.log->error("{}", e.what());
        exit_code = exit_code::cant_create;
        return std::nullopt;
    }
    rt.cfg = std::move(*cfg);
    return rt;
}

void print_pass(const sync::pass_result& pass) {
    for (const auto& p : pass.patients) {
        std::string line = fmt::format("{:<24} {:<14} ", p.patient_key, p.ehr);
        if (p.needs_reauth)
            line += "NEEDS RE-ENROLLMENT";
        else if (p.skipped)
            line += "skipped: " + (p.failure ? p.failure->message : std::string());
        else if (p.ok)
            line += fmt::format("ok, {} rows changed", p.rows_changed());
        else
            line += "FAILED: " + (p.failure ? p.failure->message : std::string("unknown"));
        std::cout << line << "\n";
    }
    std::cout << fmt::format("{} patients: {} ok, {} failed\n", pass.patients.size(), pass.succeeded(),
                             pass.failed());
}

// Runs `body` on a fresh io_context until it finishes; exceptions propagate.
template <class F>
void run_on_io(asio::io_context& io, F&& body) {
    std::exception_ptr failure;
    auto main_task = std::forward<F>(body);
    asio::co_spawn(io, std::move(main_task), [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
}

struct common_args {
    std::string config = default_config;
    std::string log_level;
};

void add_common(CLI::App* cmd, common_args& a) {
    cmd->add_option("-c,--config", a.config, "configuration file")->capture_default_str();
    cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error (default: from the config)");
}

int check_config(const common_args& a) {
    auto cfg = load_or_report(a.config);
    if (!cfg) return exit_code::config;
    std::cout << a.config << ": ok\n";
    for (const auto& e : cfg->ehrs) {
        int patients = 0;
        for (const auto& p : cfg->patients) patients += p.ehr == e.name;
        std::cout << fmt::format("  ehr {:<16} {} profile={} patients={} every {}s, {} requests/min\n",
                                 e.name, e.fhir_base, e.profile, patients, e.interval.count(),
                                 e.requests_per_minute);
    }
    return exit_code::ok;
}

int sync_once(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, rc);
    if (!rt) return rc;
    asio::io_context io;
    try {
        http::client http(io.get_executor(), http_options_for(rt->cfg));
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
        print_pass(pass);
        return pass.failed() == 0 ? exit_code::ok : exit_code::temp_fail;
    } catch (const store::store_error& e) {
        rt->log->error("{}", e.what());
        return exit_code::io_error;
    } catch (const std::runtime_error& e) {
        rt->log->error("{}", e.what());
        return exit_code::config;
    }
}

// The daemon: every patient is synced when due (its EHR's interval, with
// jitter); SIGTERM stops new requests and exits 0 once the open page is
// written or abandoned; SIGHUP reloads the config between passes.
int run_daemon(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, rc);
    if (!rt) return rc;
    asio::io_context io;
    system_clock clk;
    std::mt19937_64 rng(std::random_device{}());
    bool stop_requested = false, reload_requested = false;
    try {
        auto http = std::make_unique<http::client>(io.get_executor(), http_options_for(rt->cfg));
        auto engine = std::make_unique<sync::engine>(io.get_executor(), rt->cfg, *http, *rt->db, *rt->vault,
                                                     clk, rt->log);
        asio::steady_timer idle(io);
        asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal;
        on_signal = [&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                rt->log->info("SIGHUP: the config will be reloaded after the running jobs");
                reload_requested = true;
            } else {
                rt->log->info("stopping: no new requests; the open page is finished or rolled back");
                stop_requested = true;
                engine->stop();
            }
            idle.cancel();
            signals.async_wait(on_signal);
        };
        signals.async_wait(on_signal);

        run_on_io(io, [&]() -> awaitable<void> {
            std::map<std::pair<std::string, std::string>, sync::sys_time> due;
            auto schedule_all = [&] {
                std::map<std::pair<std::string, std::string>, sync::sys_time> next;
                for (const auto& p : rt->cfg.patients) {
                    auto key = std::make_pair(p.key, p.ehr);
                    auto it = due.find(key);
                    next[key] = it != due.end() ? it->second : clk.now();
                }
                due = std::move(next);
            };
            schedule_all();
            rt->log->info("running: {} patients at {} EHRs", rt->cfg.patients.size(), rt->cfg.ehrs.size());
            while (!stop_requested) {
                if (reload_requested) {
                    reload_requested = false;
                    if (auto fresh = load_or_report(a.config)) {
                        auto new_cfg = std::make_unique<config::config>(std::move(*fresh));
                        rt->cfg = std::move(*new_cfg);
                        http = std::make_unique<http::client>(io.get_executor(), http_options_for(rt->cfg));
                        engine = std::make_unique<sync::engine>(io.get_executor(), rt->cfg, *http, *rt->db,
                                                                *rt->vault, clk, rt->log);
                        schedule_all();
                        rt->log->info("config reloaded: {} patients", rt->cfg.patients.size());
                    } else {
                        rt->log->error("config reload failed; keeping the running config");
                    }
                }
                std::vector<std::pair<std::string, std::string>> now_due;
                auto earliest = sync::sys_time::max();
                for (const auto& [who, when] : due) {
                    if (when <= clk.now())
                        now_due.push_back(who);
                    else
                        earliest = std::min(earliest, when);
                }
                if (!now_due.empty()) {
                    auto pass = co_await engine->run_patients(now_due);
                    for (const auto& p : pass.patients) {
                        const auto* e = rt->cfg.find_ehr(p.ehr);
                        const auto interval = e ? e->interval : std::chrono::seconds(std::chrono::hours(6));
                        // A failed job is retried sooner than a successful one
                        // repeats, but not in a tight loop.
                        const auto wait = p.ok ? interval : std::min(interval, std::chrono::seconds(900));
                        due[{p.patient_key, p.ehr}] = sync::next_run(clk.now(), wait, rng());
                    }
                    continue;
                }
                // Nothing due: sleep until the earliest, or a signal. No polling.
                idle.expires_after(earliest == sync::sys_time::max() ? std::chrono::hours(24)
                                                                     : earliest - clk.now());
                co_await idle.async_wait(asio::as_tuple(use_awaitable));
            }
            signals.cancel();
            http->close_idle();
        });
        rt->log->info("stopped");
        return exit_code::ok;
    } catch (const store::store_error& e) {
        rt->log->error("{}", e.what());
        return exit_code::io_error;
    } catch (const std::runtime_error& e) {
        rt->log->error("{}", e.what());
        return exit_code::config;
    }
}

struct enroll_args : common_args {
    std::string patient_key;
    std::string refresh_token_file;
    std::string fhir_patient_id;
    std::string ehr;
};

// Imports a refresh token that the HeadacheMD web app obtained. Browser
// enrollment (authorization code + PKCE) arrives with a later release.
int enroll(const enroll_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, rc);
    if (!rt) return rc;
    const config::patient_settings* patient = nullptr;
    for (const auto& p : rt->cfg.patients)
        if (p.key == a.patient_key && (a.ehr.empty() || p.ehr == a.ehr)) patient = &p;
    if (!patient) {
        rt->log->error("patient {} is not listed in {}: add a [[patient]] with this key first", a.patient_key,
                       a.config);
        return exit_code::config;
    }
    if (a.refresh_token_file.empty()) {
        rt->log->error(
            "browser enrollment is not available yet: pass --refresh-token-file with a refresh token "
            "obtained by the HeadacheMD web app");
        return exit_code::usage;
    }
    std::ifstream in(a.refresh_token_file, std::ios::binary);
    if (!in) {
        rt->log->error("cannot read {}", a.refresh_token_file);
        return exit_code::no_input;
    }
    std::string token{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
        token.pop_back();
    if (token.empty() || token.find_first_of(" \t\r\n") != std::string::npos) {
        rt->log->error("{} does not hold a single refresh token", a.refresh_token_file);
        return exit_code::data_error;
    }
    const std::string fhir_id =
        !a.fhir_patient_id.empty() ? a.fhir_patient_id : patient->fhir_patient_id.value_or("");
    if (fhir_id.empty()) {
        rt->log->error(
            "the FHIR patient id of {} is unknown: set fhir_patient_id in the config or pass "
            "--fhir-patient-id",
            a.patient_key);
        return exit_code::usage;
    }
    const std::string now = store::utc_timestamp(std::chrono::system_clock::now());
    try {
        rt->vault->put_enrollment({patient->key, patient->ehr, fhir_id, token, "", now, false}, now);
    } catch (const store::store_error& e) {
        rt->log->error("{}", e.what());
        return exit_code::io_error;
    }
    rt->log->info("patient {} enrolled at {}; the next sync pulls their data", patient->key, patient->ehr);
    return exit_code::ok;
}

int status(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, rc);
    if (!rt) return rc;
    store::sync_state state(*rt->db);
    std::map<std::pair<std::string, std::string>, store::status_row> whole;
    for (auto& s : state.all_status())
        if (s.resource_type == "*") whole[{s.patient_key, s.source}] = std::move(s);
    bool attention = false;
    std::cout << fmt::format("{:<24} {:<14} {:<10} {:<21} {:<21} {}\n", "patient", "ehr", "state",
                             "last success", "next run", "last error");
    for (const auto& p : rt->cfg.patients) {
        auto enr = rt->vault->find_enrollment(p.key, p.ehr);
        auto it = whole.find({p.key, p.ehr});
        std::string state_text = !enr ? "not-enrolled" : enr->needs_reauth ? "REAUTH" : "enrolled";
        std::string last_ok = "-", next = "-", err;
        if (it != whole.end()) {
            last_ok = it->second.last_success_at.value_or("-");
            next = it->second.next_run_at.value_or("-");
            err = it->second.last_error.value_or("");
            if (!it->second.last_success_at || it->second.last_error) attention = true;
        }
        if (!enr || enr->needs_reauth) attention = true;
        std::cout << fmt::format("{:<24} {:<14} {:<10} {:<21} {:<21} {}\n", p.key, p.ehr, state_text, last_ok,
                                 next, err);
    }
    return attention ? exit_code::temp_fail : exit_code::ok;
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
            "Example:\n  headachemd-sync enroll hmd-000123 --refresh-token-file /run/hmd/rt.txt\n"
            "The token file holds one refresh token obtained by the HeadacheMD web app.");
        add_common(cmd, *args);
        cmd->add_option("key", args->patient_key, "the patient's HeadacheMD key, as in [[patient]] key")
            ->required();
        cmd->add_option("--refresh-token-file", args->refresh_token_file, "file holding the refresh token");
        cmd->add_option("--fhir-patient-id", args->fhir_patient_id,
                        "the patient's FHIR id (else from the config)");
        cmd->add_option("--ehr", args->ehr, "the EHR, when the key is listed for several");
        cmd->callback([args, exit_code] { *exit_code = enroll(*args); });
    }
    {
        auto args = std::make_shared<common_args>();
        CLI::App* cmd = app.add_subcommand("status", "Show each patient's sync state");
        cmd->footer(
            "Example:\n  headachemd-sync status --config /etc/headachemd/sync.toml\n"
            "Exit status: 0 all fine, 75 some patient needs attention (monitoring checks use this).");
        add_common(cmd, *args);
        cmd->callback([args, exit_code] { *exit_code = status(*args); });
    }
}

}  // namespace headachemd::daemon
