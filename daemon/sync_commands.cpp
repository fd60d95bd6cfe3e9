#include "sync_commands.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>

#include <unistd.h>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "audit_command.hpp"
#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/http/listener.hpp"
#include "headachemd/logging/escape.hpp"
#include "headachemd/smart/enrollment.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/enroll.hpp"
#include "headachemd/sync/metrics.hpp"
#include "headachemd/sync/policy.hpp"
#include "headachemd/sync/scheduler.hpp"
#include "http_options.hpp"
#include "logging.hpp"
#include "notify.hpp"
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
        std::cerr << errors->size() << " error(s) in " << logging::line_escaped(path)
                  << "; nothing was started\n";
        return std::nullopt;
    }
    return std::get<config::config>(std::move(loaded));
}

// check-config: the secret files the config names, read as the daemon
// reads them at start (lib/files: the one mode rule, regular files only,
// size caps, not empty; then the key formats). A file that does not exist
// yet is a note, not an error: the shipped example names paths an admin
// creates later, and a systemd credential exists only inside the unit.
struct secret_file_report {
    std::vector<std::string> notes;
    std::vector<std::string> errors;
};

secret_file_report check_secret_files(const config::config& cfg) {
    secret_file_report out;
    const auto present = [&out](const fs::path& p, std::string_view role) {
        std::error_code ec;
        if (fs::exists(p, ec)) return true;
        out.notes.push_back("the " + std::string(role) + " " + p.string() +
                            " does not exist here; not checked");
        return false;
    };
    for (const auto& e : cfg.ehrs) {
        bool all_present = true;
        if (e.client_secret_file) all_present &= present(*e.client_secret_file, "client secret file");
        if (e.client_auth == config::client_auth_method::private_key_jwt && e.private_key_file)
            all_present &= present(*e.private_key_file, "private key file");
        if (!all_present) continue;
        try {
            (void)sync::load_client_credentials(e);
        } catch (const std::runtime_error& ex) {
            out.errors.push_back("[[ehr]] \"" + e.name + "\": " + ex.what());
        }
    }
    std::optional<fs::path> key = cfg.daemon.token_key_file;
    if (!key) {
        if (const char* creds = std::getenv("CREDENTIALS_DIRECTORY"); creds && *creds)
            key = fs::path(creds) / token_key_credential;
    }
    if (key && present(*key, "token key file")) {
        try {
            (void)store::load_token_key(*key);
        } catch (const store::key_error& ex) {
            out.errors.push_back(ex.what());
        }
    }
    return out;
}

// Everything a sync command needs, opened from the config.
struct runtime {
    config::config cfg;
    std::shared_ptr<spdlog::logger> log;
    std::unique_ptr<store::analytics_db> db;
    std::unique_ptr<store::vault> vault;
};

std::optional<runtime> open_runtime(const std::string& config_path, const std::string& log_level,
                                    const std::string& log_format, int& exit_code) {
    auto cfg = load_or_report(config_path);
    if (!cfg) {
        exit_code = exit_code::config;
        return std::nullopt;
    }
    runtime rt;
    rt.log = make_logger(log_level.empty() ? cfg->daemon.log_level : log_level,
                         log_format.empty() ? cfg->daemon.log_format : log_format);
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
            line +=
                p.needs_reauth_reason == "interrupted_refresh"
                    ? "NEEDS RE-ENROLLMENT (interrupted refresh: the EHR refused the token after a refresh "
                      "that never finished here)"
                    : "NEEDS RE-ENROLLMENT";
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

// Each listed patient with what the vault and sync_status say about them,
// for `status` and /metrics. Throws store::store_error.
struct patient_report {
    const config::patient_settings* patient = nullptr;
    sync::patient_facts facts;
    sync::patient_health health;
};

std::vector<patient_report> gather_reports(runtime& rt, sync::sys_time now) {
    std::map<std::pair<std::string, std::string>, store::status_row> whole;
    store::sync_state state(*rt.db);
    for (auto& s : state.all_status())
        if (s.resource_type == "*") whole[{s.patient_key, s.source}] = std::move(s);
    std::map<std::pair<std::string, std::string>, store::enrollment> enrolled;
    for (auto& e : rt.vault->enrollments()) enrolled[{e.patient_key, e.ehr}] = std::move(e);
    std::vector<patient_report> out;
    for (const auto& p : rt.cfg.patients) {
        patient_report r;
        r.patient = &p;
        if (auto it = enrolled.find({p.key, p.ehr}); it != enrolled.end()) {
            r.facts.enrolled = true;
            r.facts.needs_reauth = it->second.needs_reauth;
            r.facts.needs_reauth_reason = it->second.needs_reauth_reason;
            r.facts.token_obtained_at = it->second.token_obtained_at;
        }
        if (auto it = whole.find({p.key, p.ehr}); it != whole.end()) r.facts.whole = it->second;
        r.health = sync::assess_patient(r.facts, rt.cfg.find_ehr(p.ehr), now);
        out.push_back(std::move(r));
    }
    return out;
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
    std::string log_format;  // empty: the config's log_format
};

void add_common(CLI::App* cmd, common_args& a) {
    cmd->add_option("-c,--config", a.config, "configuration file")->capture_default_str();
    cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn, error (default: from the config)");
    cmd->add_option("--log-format", a.log_format,
                    "auto, journald, text or json lines on stderr (default: from the config)")
        ->check(CLI::IsMember(log_format_names()));
}

int check_config(const common_args& a) {
    auto cfg = load_or_report(a.config);
    if (!cfg) return exit_code::config;
    // Values are validated by now, but what is echoed is escaped all the
    // same: one value, one line, no terminal control sequence.
    const auto esc = [](std::string_view v) { return logging::line_escaped(v); };
    const auto secrets = check_secret_files(*cfg);
    if (!secrets.errors.empty()) {
        for (const auto& e : secrets.errors) std::cerr << "error: " << esc(e) << "\n";
        std::cerr << secrets.errors.size() << " error(s) in the files " << esc(a.config) << " names\n";
        return exit_code::config;
    }
    std::cout << esc(a.config) << ": ok\n";
    for (const auto& e : cfg->ehrs) {
        int patients = 0;
        for (const auto& p : cfg->patients) patients += p.ehr == e.name;
        std::cout << fmt::format("  ehr {:<16} {} profile={} patients={} every {}s, {} requests/min\n",
                                 esc(e.name), esc(e.fhir_base), esc(e.profile), patients, e.interval.count(),
                                 e.requests_per_minute);
    }
    for (const auto& n : secrets.notes) std::cout << "  note: " << esc(n) << "\n";
    return exit_code::ok;
}

int sync_once(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, a.log_format, rc);
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
        purge_audit_or_log(*rt->vault, rt->cfg.daemon.audit_retention_days, *rt->log);
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
// written or abandoned; SIGHUP reloads the config between passes. What runs
// when is sync::scheduler's decision (pure, tested step by step); this shell
// performs its actions and owns the I/O: signals, timers, the listeners,
// the engine, sd_notify and the writes of due times to sync_status.
class daemon_loop {
public:
    daemon_loop(runtime& rt, std::string config_path)
        : rt_(rt),
          config_path_(std::move(config_path)),
          rng_(std::random_device{}()),
          notify_(notifier::from_environment()),
          watchdog_(io_.get_executor(), notify_),
          schedule_(scheduler_options(rt.cfg), [this] { return rng_(); }),
          idle_(io_),
          signals_(io_, SIGINT, SIGTERM, SIGHUP) {
        engine_opts_.pass_details = false;  // on_patient_done reads them; the pass log needs counts only
        engine_opts_.on_patient_done = [this](const sync::patient_result& p) { job_done(p); };
        make_engine();
    }

    int run() {
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) { on_signal(ec, sig); });
        if (const int rc = start_listeners(); rc != exit_code::ok) return rc;
        run_on_io(io_, [this]() -> awaitable<void> { co_await loop(); });
        rt_.log->info("stopped");
        return exit_code::ok;
    }

private:
    static sync::scheduler::options scheduler_options(const config::config& cfg) {
        sync::scheduler::options o;
        o.idle_close_after = http_options_for(cfg).idle_timeout;
        return o;
    }

    void make_engine() {
        http_ = std::make_unique<http::client>(io_.get_executor(), http_options_for(rt_.cfg));
        engine_ = std::make_unique<sync::engine>(io_.get_executor(), rt_.cfg, *http_, *rt_.db, *rt_.vault,
                                                 clk_, rt_.log, engine_opts_);
    }

    void on_signal(const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            rt_.log->info("SIGHUP: the config will be reloaded after the running jobs");
            reload_requested_ = true;
        } else {
            rt_.log->info("stopping: no new requests; the open page is finished or rolled back");
            notify_.stopping("stopping: finishing the open page");
            stop_requested_ = true;
            loop_running_ = false;
            engine_->stop();
        }
        idle_.cancel();
        signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
    }

    // The due times an earlier process wrote (every job writes its next
    // run to sync_status): a restart keeps them (sync::scheduler::configure).
    std::map<sync::patient_ref, sync::sys_time> stored_due_times() {
        std::map<sync::patient_ref, sync::sys_time> out;
        try {
            for (const auto& s : store::sync_state(*rt_.db).all_status()) {
                if (s.resource_type != "*" || !s.next_run_at) continue;
                if (auto t = sync::parse_utc_timestamp(*s.next_run_at)) out[{s.patient_key, s.source}] = *t;
            }
        } catch (const std::exception& e) {
            rt_.log->error("cannot read the stored schedule, so every patient is due now: {}", e.what());
        }
        return out;
    }

    // Due times go to sync_status too, so that `status` in another process
    // shows the real schedule.
    void publish() {
        for (const auto& c : schedule_.take_changes()) {
            try {
                store::sync_state(*rt_.db).set_next_run(c.who.ehr, c.who.key, store::utc_timestamp(c.due));
            } catch (const std::exception& e) {
                rt_.log->error("cannot record the next run of patient {}: {}", c.who.key, e.what());
            }
        }
    }

    // After each job: the regular run, or earlier to keep the refresh token
    // alive (DESIGN.md "Tokens"; sync::keepalive_planner).
    void job_done(const sync::patient_result& p) {
        ++progress_done_;
        progress_failed_ += p.failed() ? 1 : 0;
        notify_.status(
            pass_status(pass_no_, progress_done_, static_cast<int>(pass_total_), progress_failed_));
        metrics_.record_job(p);
        const auto now = clk_.now();
        std::optional<sync::sys_time> lapse;
        try {
            const auto* e = rt_.cfg.find_ehr(p.ehr);
            if (e && !p.needs_reauth) {
                auto enr = rt_.vault->find_enrollment(p.patient_key, p.ehr);
                if (enr && !enr->needs_reauth)
                    lapse = sync::refresh_token_lapse(enr->token_obtained_at, e->refresh_token_lifetime);
            }
        } catch (const std::exception& e) {
            // The vault could not be read: keep the patient scheduled anyway.
            rt_.log->error("patient {} at {}: {}", p.patient_key, p.ehr, e.what());
            schedule_.job_unplanned(p, now);
            publish();
            return;
        }
        const auto d = schedule_.job_done(p, lapse, now);
        publish();
        if (d.keepalive)
            rt_.log->info("patient {} at {}: next job at {} renews the refresh token, which lapses at {}",
                          p.patient_key, p.ehr, store::utc_timestamp(d.due), store::utc_timestamp(*lapse));
        if (d.warn)
            rt_.log->warn(
                "patient {} at {}: the refresh token lapses at {} and was not renewed (the refresh "
                "failed, or the EHR issued no new token); unless a later sync renews it, enroll the "
                "patient again before then",
                p.patient_key, p.ehr, store::utc_timestamp(*lapse));
    }

    int start_listeners() {
        if (rt_.cfg.daemon.callback_listen) {
            callback_.emplace(io_.get_executor(),
                              [this](http::incoming_request req) { return on_callback(std::move(req)); });
            auto bound = callback_->start(*rt_.cfg.daemon.callback_listen);
            if (!bound) {
                rt_.log->error("[daemon] callback_listen: {}", bound.err().message);
                return exit_code::unavailable;
            }
            rt_.log->info("enrollment redirects are caught on {}", *rt_.cfg.daemon.callback_listen);
        }
        if (rt_.cfg.daemon.metrics_listen) {
            metrics_listener_.emplace(io_.get_executor(), [this](http::incoming_request req) {
                return on_metrics(std::move(req));
            });
            auto bound = metrics_listener_->start(*rt_.cfg.daemon.metrics_listen);
            if (!bound) {
                rt_.log->error("[daemon] metrics_listen: {}", bound.err().message);
                return exit_code::unavailable;
            }
            const std::string& where = *rt_.cfg.daemon.metrics_listen;
            rt_.log->info("metrics are served on http://{}:{}/metrics (health: /healthz)",
                          where.substr(0, where.rfind(':')), *bound);
        }
        return exit_code::ok;
    }

    // Browser enrollment while the daemon runs ([daemon] callback_listen):
    // `enroll KEY` stored the pending row and printed the URL; the redirect
    // comes here, and the new patient's first sync starts at once.
    awaitable<http::outgoing_response> on_callback(http::incoming_request req) {
        bool ours = false;
        for (const auto& e : rt_.cfg.ehrs)
            ours = ours || (e.redirect_uri && smart::path_of(*e.redirect_uri) == smart::path_of(req.target));
        if (!ours) co_return http::outgoing_response{404, "text/plain; charset=utf-8", "Not found\n"};
        auto cb = smart::parse_callback(req.target);
        if (!cb)
            co_return http::outgoing_response{400, "text/plain; charset=utf-8",
                                              "This is not an authorization redirect.\n"};
        // A copy: a SIGHUP reload may replace the config while the code
        // exchange is in flight.
        const auto cfg_now = std::make_shared<const config::config>(rt_.cfg);
        auto outcome = co_await sync::complete_enrollment(*http_, *cfg_now, *rt_.vault, *cb, clk_.now());
        if (!outcome.audit_error.empty()) rt_.log->error("audit log: {}", outcome.audit_error);
        if (outcome.ok) {
            rt_.log->info("patient {} enrolled at {} by browser authorization; first sync queued",
                          outcome.patient_key, outcome.ehr);
            schedule_.enrolled({outcome.patient_key, outcome.ehr}, clk_.now());
            publish();
            idle_.cancel();
        } else {
            rt_.log->error("enrollment{}{} failed: {}{}{}", outcome.patient_key.empty() ? "" : " of ",
                           outcome.patient_key, outcome.headline,
                           outcome.raw_error.empty() ? "" : "; EHR said: ", outcome.raw_error);
        }
        co_return http::outgoing_response{outcome.ok ? 200 : 400, "text/html; charset=utf-8",
                                          sync::callback_page(outcome)};
    }

    // Prometheus metrics and a health check ([daemon] metrics_listen,
    // loopback only): read-only, and nothing in it names a patient.
    awaitable<http::outgoing_response> on_metrics(http::incoming_request req) {
        auto snapshot = [this] {
            std::vector<std::string> ehr_names;
            for (const auto& e : rt_.cfg.ehrs) ehr_names.push_back(e.name);
            std::vector<std::pair<std::string, sync::patient_health>> patients;
            for (auto& r : gather_reports(rt_, clk_.now())) patients.emplace_back(r.patient->ehr, r.health);
            return metrics_.collect(engine_->counters(), ehr_names, patients, loop_running_);
        };
        try {
            co_return sync::answer_metrics_request(req.target, loop_running_, snapshot);
        } catch (const std::exception& e) {
            rt_.log->error("/metrics: {}", e.what());
            co_return http::outgoing_response{500, "text/plain; charset=utf-8",
                                              "cannot read the sync state; see the daemon's log\n"};
        }
    }

    void reload() {
        reload_requested_ = false;
        notify_.reloading("reloading the config");
        auto fresh = load_or_report(config_path_);
        if (!fresh) {
            rt_.log->error("config reload failed; keeping the running config");
            notify_.ready("config reload failed; running with the previous config");
            return;
        }
        metrics_.retire_engine(engine_->counters());  // counters must not go down
        rt_.cfg = std::move(*fresh);
        make_engine();
        schedule_.configure(rt_.cfg, clk_.now());
        publish();
        rt_.log->info("config reloaded: {} patients", rt_.cfg.patients.size());
        notify_.ready(fmt::format("config reloaded: {} patients", rt_.cfg.patients.size()));
    }

    awaitable<void> run_pass(const std::vector<sync::patient_ref>& due) {
        ++pass_no_;
        pass_total_ = due.size();
        progress_done_ = progress_failed_ = 0;
        notify_.status(pass_status(pass_no_, 0, static_cast<int>(pass_total_), 0));
        std::vector<std::pair<std::string, std::string>> who;
        for (const auto& p : due) who.emplace_back(p.key, p.ehr);
        // Each finished job is rescheduled as it ends (on_patient_done).
        auto pass = co_await engine_->run_patients(who);
        rt_.log->info("pass {} done: {} patients, {} failed", pass_no_, pass.patients.size(), pass.failed());
        for (const auto& lost : schedule_.pass_done(due, stop_requested_, clk_.now()))
            rt_.log->error("patient {} at {}: the job ended without a result; next try at {}", lost.who.key,
                           lost.who.ehr, store::utc_timestamp(lost.due));
        publish();
    }

    awaitable<void> loop() {
        // However the loop ends (stop, or an exception), nothing may keep
        // io.run() going: above all no WATCHDOG=1 for a daemon that no
        // longer syncs.
        struct on_exit {
            std::function<void()> release;
            ~on_exit() { release(); }
        } cleanup{[this] {
            loop_running_ = false;
            signals_.cancel();
            watchdog_.stop();
            if (callback_) callback_->stop();
            if (metrics_listener_) metrics_listener_->stop();
            http_->close_idle();
        }};
        const auto started = clk_.now();
        schedule_.configure(rt_.cfg, started, stored_due_times());
        publish();
        std::size_t due_now = 0;
        for (const auto& p : rt_.cfg.patients)
            due_now += schedule_.due_of({p.key, p.ehr}).value_or(started) <= started;
        rt_.log->info("{} of {} patients due now; the others keep the due times the last run wrote", due_now,
                      rt_.cfg.patients.size());
        const auto running =
            fmt::format("running: {} patients at {} EHRs", rt_.cfg.patients.size(), rt_.cfg.ehrs.size());
        rt_.log->info("{}", running);
        notify_.ready(running);
        watchdog_.start();
        loop_running_ = !stop_requested_;
        while (!stop_requested_) {
            if (reload_requested_) reload();
            const auto a = schedule_.next(clk_.now());
            switch (a.what) {
                case sync::scheduler::action::kind::purge_audit:
                    purge_audit_or_log(*rt_.vault, rt_.cfg.daemon.audit_retention_days, *rt_.log);
                    break;
                case sync::scheduler::action::kind::run_pass:
                    co_await run_pass(a.patients);
                    break;
                case sync::scheduler::action::kind::sleep:
                    if (a.close_idle) http_->close_idle();
                    idle_.expires_after(a.sleep);
                    co_await idle_.async_wait(asio::as_tuple(use_awaitable));
                    break;
            }
        }
    }

    runtime& rt_;
    std::string config_path_;
    asio::io_context io_;
    system_clock clk_;
    std::mt19937_64 rng_;
    notifier notify_;  // systemd Type=notify: READY, STATUS, WATCHDOG, STOPPING, RELOADING
    watchdog_timer watchdog_;
    sync::scheduler schedule_;
    sync::metrics_registry metrics_;
    sync::engine_options engine_opts_;
    std::unique_ptr<http::client> http_;
    std::unique_ptr<sync::engine> engine_;
    asio::steady_timer idle_;
    asio::signal_set signals_;
    std::optional<http::listener> callback_, metrics_listener_;
    bool stop_requested_ = false, reload_requested_ = false;
    bool loop_running_ = false;  // /healthz
    int pass_no_ = 0;
    std::size_t pass_total_ = 0;
    // Counts only: a whole pass_result would hold every patient's outcome
    // until the pass ends (bench/soak: memory must not grow with patients).
    int progress_done_ = 0, progress_failed_ = 0;
};

int run_daemon(const common_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, a.log_format, rc);
    if (!rt) return rc;
    try {
        daemon_loop loop(*rt, a.config);
        return loop.run();
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
    switch (imported.status) {
        case sync::import_status::imported:
            break;
        case sync::import_status::not_a_token:
            rt.log->error("{} does not hold a single refresh token", a.refresh_token_file);
            return exit_code::data_error;
        case sync::import_status::no_patient_id:
            rt.log->error(
                "the FHIR patient id of {} is unknown: set fhir_patient_id in the config or pass "
                "--fhir-patient-id",
                a.patient_key);
            return exit_code::usage;
        case sync::import_status::store_failed:
            rt.log->error("{}", imported.error);
            return exit_code::io_error;
        case sync::import_status::audit_failed:
            rt.log->error("patient {} is enrolled at {}, but the audit log could not record it: {}",
                          patient.key, patient.ehr, imported.error);
            return exit_code::io_error;
    }
    rt.log->info("patient {} enrolled at {}; the next sync pulls their data", patient.key, patient.ehr);
    return exit_code::ok;
}

// What the admin sees at the end of a browser enrollment.
int report_outcome(runtime& rt, const sync::enrollment_outcome& o) {
    if (!o.audit_error.empty()) rt.log->error("audit log: {}", o.audit_error);
    if (o.ok) {
        rt.log->info("patient {} enrolled at {} by browser authorization", o.patient_key, o.ehr);
        std::cout << fmt::format(
            "Enrolled {} at {}. The next sync pulls their data (a running daemon within "
            "15 minutes, or at once after `systemctl reload headachemd-sync`).\n",
            o.patient_key, o.ehr);
        if (!o.not_granted.empty()) {
            std::string list;
            for (const auto& s : o.not_granted) list += (list.empty() ? "" : " ") + s;
            rt.log->warn("patient {}: the EHR did not grant: {}", o.patient_key, list);
            std::cout << "Not granted (these types will not sync): " << list << "\n";
        }
        return exit_code::ok;
    }
    rt.log->error("enrollment{}{} failed: {}", o.patient_key.empty() ? "" : " of ", o.patient_key,
                  o.headline);
    std::cerr << o.headline << "\n" << o.explanation << "\n";
    if (!o.raw_error.empty()) std::cerr << "EHR said: " << o.raw_error << "\n";
    return exit_code::data_error;
}

// Browser enrollment: authorization code + PKCE (SMART App Launch 2.x).
int browser_enroll(runtime& rt, const config::patient_settings& patient, const enroll_args& a) {
    const config::ehr_settings* ehr = rt.cfg.find_ehr(patient.ehr);
    enum class mode { listen, paste, daemon } how;
    if (!a.listen.empty())
        how = mode::listen;
    else if (a.paste)
        how = mode::paste;
    else if (rt.cfg.daemon.callback_listen)
        how = mode::daemon;
    else {
        rt.log->error(
            "say how the redirect comes back: --listen HOST:PORT (a listener here), --paste (paste the final "
            "URL), or set [daemon] callback_listen so the running daemon catches it");
        return exit_code::usage;
    }
    asio::io_context io;
    int rc = exit_code::ok;
    try {
        http::client http(io.get_executor(), http_options_for(rt.cfg, ehr));
        std::optional<http::listener> listener;
        std::optional<asio::steady_timer> expiry;
        run_on_io(io, [&]() -> awaitable<void> {
            const auto now = std::chrono::system_clock::now();
            auto start = co_await sync::begin_enrollment(http, *ehr, patient, now);
            if (!start) {
                rt.log->error("{}", start.err().message);
                rc = exit_code::unavailable;
                co_return;
            }
            store::pending_enrollments pending(*rt.vault);
            pending.purge_expired(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
            if (how == mode::listen) {
                // Bound before the URL is shown, so the redirect cannot come
                // back to a port nobody listens on.
                const std::string callback_path = smart::path_of(start->pending.redirect_uri);
                auto on_request =
                    [&, callback_path](http::incoming_request req) -> awaitable<http::outgoing_response> {
                    if (smart::path_of(req.target) != callback_path)
                        co_return http::outgoing_response{404, "text/plain; charset=utf-8", "Not found\n"};
                    auto cb = smart::parse_callback(req.target);
                    if (!cb)
                        co_return http::outgoing_response{400, "text/plain; charset=utf-8",
                                                          "This is not an authorization redirect.\n"};
                    auto outcome = co_await sync::complete_enrollment(http, rt.cfg, *rt.vault, *cb,
                                                                      std::chrono::system_clock::now());
                    rc = report_outcome(rt, outcome);
                    // stop() lets this answer be written, then the context runs dry.
                    listener->stop();
                    if (expiry) expiry->cancel();
                    http.close_idle();
                    co_return http::outgoing_response{outcome.ok ? 200 : 400, "text/html; charset=utf-8",
                                                      sync::callback_page(outcome)};
                };
                listener.emplace(io.get_executor(), on_request);
                auto bound = listener->start(a.listen);
                if (!bound) {
                    rt.log->error("{}", bound.err().message);
                    rc = exit_code::unavailable;
                    co_return;
                }
            }
            pending.put(start->pending);
            if (isatty(STDERR_FILENO)) {
                std::cerr << fmt::format(
                    "Open this address in a browser on a device where the patient can sign in to {}'s "
                    "patient "
                    "portal. They will sign in, see what HeadacheMD asks to read, and approve it; the "
                    "browser "
                    "then returns to the redirect URI. The link works once, for 10 minutes.\n\n",
                    ehr->name);
            }
            std::cout << start->authorize_url << std::endl;
            if (how == mode::daemon) {
                std::cout << fmt::format(
                    "The running daemon completes the enrollment at {} when the browser "
                    "returns; `headachemd-sync status` then shows {} as enrolled.\n",
                    *rt.cfg.daemon.callback_listen, patient.key);
                co_return;
            }
            if (how == mode::paste) {
                std::cerr << "After approving, the browser lands on the redirect URI (the page may not load; "
                             "that is fine). Paste that page's full address here and press Enter:\n";
                std::string line;
                if (!std::getline(std::cin, line)) {
                    rt.log->error("no redirect URL was pasted; nothing was stored");
                    rc = exit_code::data_error;
                    co_return;
                }
                auto cb = smart::parse_callback(line);
                if (!cb) {
                    rt.log->error("{}; nothing was stored", cb.err().message);
                    rc = exit_code::data_error;
                    co_return;
                }
                auto outcome = co_await sync::complete_enrollment(http, rt.cfg, *rt.vault, *cb,
                                                                  std::chrono::system_clock::now());
                rc = report_outcome(rt, outcome);
                http.close_idle();
                co_return;
            }
            // --listen: wait for the redirect, or the end of the link's life.
            expiry.emplace(io, sync::pending_lifetime + std::chrono::seconds(5));
            auto expire = [&](boost::system::error_code ec) {
                if (ec) return;
                rt.log->error(
                    "no redirect arrived within 10 minutes; the enrollment expired, nothing was stored");
                rc = exit_code::temp_fail;
                listener->stop();
                http.close_idle();
            };
            expiry->async_wait(expire);
            std::cerr << fmt::format("Waiting for the redirect on {} …\n", a.listen);
            co_return;
        });
    } catch (const store::store_error& e) {
        rt.log->error("{}", e.what());
        return exit_code::io_error;
    } catch (const std::runtime_error& e) {
        rt.log->error("{}", e.what());
        return exit_code::config;
    }
    return rc;
}

int enroll(const enroll_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, a.log_format, rc);
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

// A JSON string literal (RFC 8259 §7): quotes, backslashes and control
// characters escaped; other bytes as they are (our texts are UTF-8).
std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\')
            out += {'\\', c};
        else if (c == '\n')
            out += "\\n";
        else if (u < 0x20)
            out += fmt::format("\\u{:04x}", u);
        else
            out += c;
    }
    return out + "\"";
}

std::string json_opt(const std::optional<std::string>& s) { return s ? json_string(*s) : "null"; }

// The state column: upper case when the patient needs someone's attention.
std::string state_text(const sync::patient_health& h) {
    if (h.state == sync::patient_state::ok && h.lapsing) return "LAPSING";
    std::string t(sync::to_string(h.state));
    if (h.needs_attention())
        std::transform(t.begin(), t.end(), t.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return t;
}

// The last-error column. A patient marked after an interrupted refresh says
// so, whatever the last job wrote: the admin's next step differs (docs/admin/
// operations.md, "When a patient needs re-enrollment").
std::string last_error_text(const patient_report& r, const store::status_row* w) {
    if (r.health.reauth_reason == "interrupted_refresh")
        return "interrupted refresh: the EHR refused the token after a refresh that never finished here; "
               "enroll the patient again";
    return w && w->last_error ? *w->last_error : "";
}

// Each listed patient: last success, next run, rows changed by the last job,
// when the refresh token lapses, last error. Exit 75 when any patient needs
// attention, so a monitoring check can run it.
int status(const status_args& a) {
    int rc = exit_code::ok;
    auto rt = open_runtime(a.config, a.log_level, a.log_format, rc);
    if (!rt) return rc;
    std::vector<patient_report> reports;
    try {
        reports = gather_reports(*rt, std::chrono::system_clock::now());
    } catch (const std::exception& e) {
        rt->log->error("{}", e.what());
        return exit_code::io_error;
    }
    bool attention = false;
    for (const auto& r : reports) attention = attention || r.health.needs_attention();
    auto lapse_text = [](const sync::patient_health& h) -> std::optional<std::string> {
        if (!h.token_lapse) return std::nullopt;
        return store::utc_timestamp(*h.token_lapse);
    };
    if (a.json) {
        std::string out = "{\"attention\":" + std::string(attention ? "true" : "false") + ",\"patients\":[";
        for (std::size_t i = 0; i < reports.size(); ++i) {
            const auto& r = reports[i];
            const auto* w = r.facts.whole ? &*r.facts.whole : nullptr;
            out += fmt::format(
                "{}{{\"patient_key\":{},\"ehr\":{},\"state\":{},\"attention\":{},\"needs_reauth\":{},"
                "\"last_attempt_at\":{},\"last_success_at\":{},\"next_run_at\":{},\"rows_changed\":{},"
                "\"last_error\":{},\"token_lapses_at\":{},\"token_lapsing\":{},\"needs_reauth_reason\":{}}}",
                i ? "," : "", json_string(r.patient->key), json_string(r.patient->ehr),
                json_string(sync::to_string(r.health.state)), r.health.needs_attention(),
                r.facts.needs_reauth, json_opt(w ? w->last_attempt_at : std::nullopt),
                json_opt(w ? w->last_success_at : std::nullopt), json_opt(w ? w->next_run_at : std::nullopt),
                w ? w->rows_changed : 0, json_opt(w ? w->last_error : std::nullopt),
                json_opt(lapse_text(r.health)), r.health.lapsing,
                r.health.reauth_reason.empty() ? std::string("null") : json_string(r.health.reauth_reason));
        }
        std::cout << out << "]}\n";
        return attention ? exit_code::temp_fail : exit_code::ok;
    }
    const auto row = [](std::string_view key, std::string_view ehr, std::string_view state,
                        std::string_view ok, std::string_view next, std::string_view rows,
                        std::string_view lapse, std::string_view err) {
        return fmt::format("{:<24} {:<14} {:<12} {:<21} {:<21} {:>5} {:<21} {}\n", key, ehr, state, ok, next,
                           rows, lapse, err);
    };
    std::cout << row("patient", "ehr", "state", "last success", "next run", "rows", "token lapses",
                     "last error");
    for (const auto& r : reports) {
        const auto* w = r.facts.whole ? &*r.facts.whole : nullptr;
        std::cout << row(r.patient->key, r.patient->ehr, state_text(r.health),
                         w && w->last_success_at ? *w->last_success_at : "-",
                         w && w->next_run_at ? *w->next_run_at : "-",
                         w && w->last_attempt_at ? std::to_string(w->rows_changed) : "-",
                         lapse_text(r.health).value_or("-"), last_error_text(r, w));
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
        auto args = std::make_shared<status_args>();
        CLI::App* cmd = app.add_subcommand("status", "Show each patient's sync state");
        cmd->footer(
            "Example:\n  headachemd-sync status --config /etc/headachemd/sync.toml\n"
            "State: ok, pending (enrolled, first sync not run yet); in capitals when it needs attention:\n"
            "FAILING, NEEDS_REAUTH (enroll again), NOT_ENROLLED, LAPSING (the refresh token lapses within\n"
            "keepalive_before).\n"
            "Exit status: 0 all fine, 75 some patient needs attention (monitoring checks use this).");
        add_common(cmd, *args);
        cmd->add_flag("--json", args->json, "one JSON object on stdout, for monitoring tools");
        cmd->callback([args, exit_code] { *exit_code = status(*args); });
    }
}

}  // namespace headachemd::daemon
