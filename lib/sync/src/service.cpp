#include "headachemd/sync/service.hpp"

#include <map>
#include <random>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "headachemd/http/client.hpp"
#include "headachemd/http/listener.hpp"
#include "headachemd/smart/enrollment.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/backend_jwks.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "headachemd/sync/engine.hpp"
#include "headachemd/sync/enroll.hpp"
#include "headachemd/sync/http_options.hpp"
#include "headachemd/sync/metrics.hpp"
#include "headachemd/sync/policy.hpp"
#include "headachemd/sync/scheduler.hpp"
#include "headachemd/sync/status_report.hpp"

namespace headachemd::sync {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

void call(const std::function<void(std::string_view)>& hook, std::string_view text) {
    if (hook) hook(text);
}

void call(const std::function<void()>& hook) {
    if (hook) hook();
}

}  // namespace

struct service::impl {
    impl(asio::io_context& io, config::config& cfg, store::analytics_db& db, store::vault& vault,
         const clock& clk, std::shared_ptr<spdlog::logger> log, service_hooks hooks)
        : io_(io),
          cfg_(cfg),
          db_(db),
          vault_(vault),
          clk_(clk),
          log_(std::move(log)),
          hooks_(std::move(hooks)),
          rng_(std::random_device{}()),
          schedule_(scheduler_options(cfg), [this] { return rng_(); }),
          idle_(io),
          bulk_idle_(io) {
        engine_opts_.pass_details = false;  // on_patient_done reads them; the pass log needs counts only
        engine_opts_.on_patient_done = [this](const patient_result& p) { job_done(p); };
        make_engine();
    }

    static scheduler::options scheduler_options(const config::config& cfg) {
        scheduler::options o;
        o.idle_close_after = http_options_for(cfg).idle_timeout;
        return o;
    }

    // One request budget per EHR, shared by its per-patient jobs and its
    // Bulk Data exports (eCW counts every call of the practice), and kept
    // across a reload unless the EHR's rate settings changed.
    void share_limiters() {
        std::map<std::string, std::shared_ptr<rate_limiter>> next;
        for (const auto& e : cfg_.ehrs) {
            const auto it = limiters_.find(e.name);
            if (it != limiters_.end() && it->second->per_minute() == e.requests_per_minute &&
                it->second->fixed_window() == e.rate_window_fixed_minute)
                next[e.name] = it->second;
            else
                next[e.name] =
                    std::make_shared<rate_limiter>(e.requests_per_minute, e.rate_window_fixed_minute);
        }
        limiters_ = std::move(next);
        engine_opts_.limiters = limiters_;
    }

    void make_engine() {
        share_limiters();
        http_ = std::make_unique<http::client>(io_.get_executor(), http_options_for(cfg_));
        engine_ =
            std::make_unique<engine>(io_.get_executor(), cfg_, *http_, db_, vault_, clk_, log_, engine_opts_);
    }

    void request_stop() {
        log_->info("stopping: no new requests; the open page is finished or rolled back");
        call(hooks_.stopping, "stopping: finishing the open page");
        stop_requested_ = true;
        loop_running_ = false;
        engine_->stop();
        idle_.cancel();
        bulk_idle_.cancel();
    }

    void request_reload() {
        log_->info("SIGHUP: the config will be reloaded after the running jobs");
        reload_requested_ = true;
        idle_.cancel();
    }

    // The due times an earlier process wrote (every job writes its next
    // run to sync_status): a restart keeps them (scheduler::configure).
    std::map<patient_ref, sys_time> stored_due_times() {
        std::map<patient_ref, sys_time> out;
        try {
            for (const auto& s : store::sync_state(db_).all_status()) {
                if (s.resource_type != "*" || !s.next_run_at) continue;
                if (auto t = parse_utc_timestamp(*s.next_run_at)) out[{s.patient_key, s.source}] = *t;
            }
        } catch (const std::exception& e) {
            log_->error("cannot read the stored schedule, so every patient is due now: {}", e.what());
        }
        return out;
    }

    // Due times go to sync_status too, so that `status` in another process
    // shows the real schedule.
    void publish() {
        for (const auto& c : schedule_.take_changes()) {
            try {
                store::sync_state(db_).set_next_run(c.who.ehr, c.who.key, store::utc_timestamp(c.due));
            } catch (const std::exception& e) {
                log_->error("cannot record the next run of patient {}: {}", c.who.key, e.what());
            }
        }
    }

    // When the refresh token of a patient whose job just ended lapses, or
    // nullopt when it does not matter (no lifetime configured, needs
    // re-enrollment). Throws when the vault cannot be read.
    std::optional<sys_time> token_lapse(const patient_result& p) {
        const auto* e = cfg_.find_ehr(p.ehr);
        if (!e || p.needs_reauth) return std::nullopt;
        auto enr = vault_.find_enrollment(p.patient_key, p.ehr);
        if (!enr || enr->needs_reauth) return std::nullopt;
        return refresh_token_lapse(enr->token_obtained_at, e->refresh_token_lifetime);
    }

    // After each job: the regular run, or earlier to keep the refresh token
    // alive (DESIGN.md "Tokens"; keepalive_planner).
    void job_done(const patient_result& p) {
        ++progress_done_;
        progress_failed_ += p.failed() ? 1 : 0;
        pass_text_ = pass_status(pass_no_, progress_done_, static_cast<int>(pass_total_), progress_failed_);
        publish_status();
        metrics_.record_job(p);
        const auto now = clk_.now();
        std::optional<sys_time> lapse;
        try {
            lapse = token_lapse(p);
        } catch (const std::exception& e) {
            // The vault could not be read: keep the patient scheduled anyway.
            log_->error("patient {} at {}: {}", p.patient_key, p.ehr, e.what());
            schedule_.job_unplanned(p, now);
            publish();
            return;
        }
        const auto d = schedule_.job_done(p, lapse, now);
        publish();
        if (d.keepalive)
            log_->info("patient {} at {}: next job at {} renews the refresh token, which lapses at {}",
                       p.patient_key, p.ehr, store::utc_timestamp(d.due), store::utc_timestamp(*lapse));
        if (d.warn)
            log_->warn(
                "patient {} at {}: the refresh token lapses at {} and was not renewed (the refresh "
                "failed, or the EHR issued no new token); unless a later sync renews it, enroll the "
                "patient again before then",
                p.patient_key, p.ehr, store::utc_timestamp(*lapse));
    }

    result<ok_t> start_listeners() {
        if (cfg_.daemon.callback_listen) {
            callback_.emplace(
                io_.get_executor(),
                [this](http::incoming_request req) { return on_callback(std::move(req)); },
                http::listener_options{.log = log_});
            auto bound = callback_->start(*cfg_.daemon.callback_listen);
            if (!bound) return error{errc::listen, "[daemon] callback_listen: " + bound.err().message};
            log_->info("enrollment redirects are caught on {}", *cfg_.daemon.callback_listen);
        }
        if (cfg_.daemon.metrics_listen) {
            // The backend JWKS is served on this listener only: its keys
            // are read now, once, not per request (and again on a reload).
            auto jwks = load_backend_jwks(cfg_);
            if (!jwks) return jwks.err();
            jwks_ = std::move(*jwks);
            metrics_listener_.emplace(
                io_.get_executor(), [this](http::incoming_request req) { return on_metrics(std::move(req)); },
                http::listener_options{.log = log_});
            auto bound = metrics_listener_->start(*cfg_.daemon.metrics_listen);
            if (!bound) return error{errc::listen, "[daemon] metrics_listen: " + bound.err().message};
            const std::string& where = *cfg_.daemon.metrics_listen;
            log_->info("metrics are served on http://{}:{}/metrics (health: /healthz)",
                       where.substr(0, where.rfind(':')), *bound);
            if (jwks_.keys > 0)
                log_->info("the backend JWKS ({} key{}) is served on http://{}:{}{}", jwks_.keys,
                           jwks_.keys == 1 ? "" : "s", where.substr(0, where.rfind(':')), *bound, jwks_path);
        }
        return ok_v;
    }

    // Browser enrollment while the daemon runs ([daemon] callback_listen):
    // `enroll KEY` stored the pending row and printed the URL; the redirect
    // comes here, and the new patient's first sync starts at once.
    awaitable<http::outgoing_response> on_callback(http::incoming_request req) {
        bool ours = false;
        for (const auto& e : cfg_.ehrs)
            ours = ours || (e.redirect_uri && smart::path_of(*e.redirect_uri) == smart::path_of(req.target));
        if (!ours) co_return http::outgoing_response{404, "text/plain; charset=utf-8", "Not found\n"};
        auto cb = smart::parse_callback(req.target);
        if (!cb)
            co_return http::outgoing_response{400, "text/plain; charset=utf-8",
                                              "This is not an authorization redirect.\n"};
        // A copy: a reload may replace the config while the code exchange is
        // in flight.
        const auto cfg_now = std::make_shared<const config::config>(cfg_);
        auto outcome = co_await complete_enrollment(*http_, *cfg_now, vault_, *cb, clk_.now());
        if (!outcome.audit_error.empty()) log_->error("audit log: {}", outcome.audit_error);
        if (outcome.ok) {
            log_->info("patient {} enrolled at {} by browser authorization; first sync queued",
                       outcome.patient_key, outcome.ehr);
            schedule_.enrolled({outcome.patient_key, outcome.ehr}, clk_.now());
            publish();
            idle_.cancel();
        } else {
            log_->error("enrollment{}{} failed: {}{}{}", outcome.patient_key.empty() ? "" : " of ",
                        outcome.patient_key, outcome.headline,
                        outcome.raw_error.empty() ? "" : "; EHR said: ", outcome.raw_error);
        }
        co_return http::outgoing_response{outcome.ok ? 200 : 400, "text/html; charset=utf-8",
                                          callback_page(outcome)};
    }

    // Prometheus metrics and a health check ([daemon] metrics_listen,
    // loopback only): read-only, and nothing in it names a patient.
    awaitable<http::outgoing_response> on_metrics(http::incoming_request req) {
        auto snapshot = [this] {
            std::vector<std::string> ehr_names;
            for (const auto& e : cfg_.ehrs) ehr_names.push_back(e.name);
            std::vector<std::pair<std::string, patient_health>> patients;
            for (auto& r : gather_reports(cfg_, db_, vault_, clk_.now()))
                patients.emplace_back(r.patient->ehr, r.health);
            auto m = metrics_.collect(engine_->counters(), ehr_names, patients, loop_running_);
            for (const auto& e : cfg_.ehrs)
                if (e.bulk) m.bulk[e.name] = bulk_metrics_[e.name];
            return m;
        };
        try {
            co_return answer_metrics_request(req.target, loop_running_, snapshot, jwks_);
        } catch (const std::exception& e) {
            log_->error("/metrics: {}", e.what());
            co_return http::outgoing_response{500, "text/plain; charset=utf-8",
                                              "cannot read the sync state; see the daemon's log\n"};
        }
    }

    void reload() {
        reload_requested_ = false;
        call(hooks_.reloading, "reloading the config");
        auto fresh = hooks_.reload_config ? hooks_.reload_config() : std::nullopt;
        if (!fresh) {
            log_->error("config reload failed; keeping the running config");
            call(hooks_.ready, "config reload failed; running with the previous config");
            return;
        }
        if (metrics_listener_) {
            // A rotation adds or removes a key by a reload; a key that cannot
            // be read keeps the whole running config, JWKS included.
            auto jwks = load_backend_jwks(*fresh);
            if (!jwks) {
                log_->error("config reload failed; keeping the running config: {}", jwks.err().message);
                call(hooks_.ready, "config reload failed; running with the previous config");
                return;
            }
            if (jwks->body != jwks_.body) log_->info("the backend JWKS now has {} key(s)", jwks->keys);
            jwks_ = std::move(*jwks);
        }
        metrics_.retire_engine(engine_->counters());  // counters must not go down
        cfg_ = std::move(*fresh);
        make_engine();
        schedule_.configure(cfg_, clk_.now());
        publish();
        // New intervals or [ehr.bulk] sections take effect now; a running
        // export finishes under the config it started with.
        bulk_idle_.cancel();
        start_bulk();
        log_->info("config reloaded: {} patients", cfg_.patients.size());
        call(hooks_.ready, fmt::format("config reloaded: {} patients", cfg_.patients.size()));
    }

    awaitable<void> run_pass(const std::vector<patient_ref>& due) {
        ++pass_no_;
        pass_total_ = due.size();
        progress_done_ = progress_failed_ = 0;
        pass_text_ = pass_status(pass_no_, 0, static_cast<int>(pass_total_), 0);
        publish_status();
        std::vector<std::pair<std::string, std::string>> who;
        for (const auto& p : due) who.emplace_back(p.key, p.ehr);
        // Each finished job is rescheduled as it ends (on_patient_done).
        auto pass = co_await engine_->run_patients(who);
        log_->info("pass {} done: {} patients, {} failed", pass_no_, pass.patients.size(), pass.failed());
        for (const auto& lost : schedule_.pass_done(due, stop_requested_, clk_.now()))
            log_->error("patient {} at {}: the job ended without a result; next try at {}", lost.who.key,
                        lost.who.ehr, store::utc_timestamp(lost.due));
        publish();
    }

    // The first schedule: due times kept from the last run, READY=1.
    void start_schedule() {
        const auto started = clk_.now();
        schedule_.configure(cfg_, started, stored_due_times());
        publish();
        std::size_t due_now = 0;
        for (const auto& p : cfg_.patients)
            due_now += schedule_.due_of({p.key, p.ehr}).value_or(started) <= started;
        log_->info("{} of {} patients due now; the others keep the due times the last run wrote", due_now,
                   cfg_.patients.size());
        const auto running =
            fmt::format("running: {} patients at {} EHRs", cfg_.patients.size(), cfg_.ehrs.size());
        log_->info("{}", running);
        call(hooks_.ready, running);
        call(hooks_.start_watchdog);
        loop_running_ = !stop_requested_;
        start_bulk();
    }

    // ---- Bulk Data exports ([ehr.bulk], issue 15) -------------------------
    //
    // One coroutine beside the per-patient passes, one export at a time:
    // the next due EHR (next_export_due: a job left unfinished resumes at
    // once) runs to its end, with its own HTTP client and a copy of the
    // config (a reload does not pull either from under it), the EHR's
    // shared request budget, and stop_requested_ as `stopping` (a stop
    // leaves the job recorded, and the next start resumes it).

    void start_bulk() {
        if (bulk_running_ || stop_requested_) return;
        bool any = false;
        for (const auto& e : cfg_.ehrs) any = any || e.bulk.has_value();
        if (!any) return;
        bulk_running_ = true;
        asio::co_spawn(io_, bulk_loop(), [this](std::exception_ptr ep) {
            bulk_running_ = false;
            if (!ep) return;
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                log_->error("bulk export: stopped by an error; it resumes at the next start: {}", e.what());
            }
        });
    }

    // The EHR whose export is due first, and when.
    std::optional<std::pair<sys_time, std::string>> next_bulk(const config::config& cfg) {
        std::optional<std::pair<sys_time, std::string>> next;
        const auto now = clk_.now();
        for (const auto& e : cfg.ehrs) {
            if (!e.bulk) continue;
            std::optional<bulk_phase> phase;
            std::optional<sys_time> written;
            try {
                if (auto rec = load_bulk_job(vault_.sql(), e.name)) phase = rec->phase;
                written = load_bulk_job_updated_at(vault_.sql(), e.name);
            } catch (const std::exception& ex) {
                log_->error("bulk export of EHR '{}': cannot read its job: {}", e.name, ex.what());
                phase = bulk_phase::failed;
                written = now;
            }
            auto due = next_export_due(phase, written, e.bulk->interval, now);
            if (const auto it = bulk_not_before_.find(e.name); it != bulk_not_before_.end())
                due = std::max(due, it->second);
            if (!next || due < next->first) next = std::make_pair(due, e.name);
        }
        return next;
    }

    awaitable<void> bulk_loop() {
        while (!stop_requested_) {
            const auto cfg = std::make_shared<const config::config>(cfg_);
            const auto next = next_bulk(*cfg);
            if (!next) co_return;  // no [ehr.bulk] left; a reload that adds one starts the loop again
            if (next->first > clk_.now()) {
                bulk_idle_.expires_after(next->first - clk_.now());
                co_await bulk_idle_.async_wait(asio::as_tuple(use_awaitable));
                continue;  // due, stopped or reloaded: look again
            }
            co_await run_export(cfg, next->second);
        }
    }

    awaitable<void> run_export(std::shared_ptr<const config::config> cfg, std::string ehr) {
        http::client http(io_.get_executor(), http_options_for(*cfg));
        const auto limiter = limiters_[ehr];
        auto& m = bulk_metrics_[ehr];
        export_context ctx{http,
                           *cfg,
                           db_,
                           vault_,
                           clk_,
                           log_,
                           limiter.get(),
                           {},
                           [this] { return stop_requested_; },
                           [this, ehr](const bulk_job_record& r) { bulk_progress(ehr, r); }};
        export_request req;
        req.ehr = ehr;
        result<bulk_run_result> r = error{errc::internal_error, "not run"};
        try {
            r = co_await run_configured_export(ctx, req);
        } catch (const std::exception& e) {
            r = error{errc::store_failed, e.what()};
        }
        http.close_idle();
        if (!r) {
            bulk_text_.clear();
            // Nothing ran (a key, the token endpoint, the store): an hour
            // before the next try, not a loop.
            log_->error("bulk export of EHR '{}' could not run: {}; next try in an hour", ehr,
                        r.err().message);
            bulk_not_before_[ehr] = clk_.now() + std::chrono::hours(1);
            publish_status();
            co_return;
        }
        bulk_not_before_.erase(ehr);
        m.requests += r->calls.total();
        bulk_progress(ehr, r->record);
        if (r->stopped) co_return;
        switch (r->end.what) {
            case bulk_action::kind::done:
                ++m.done;
                break;
            case bulk_action::kind::cancelled:
                ++m.cancelled;
                break;
            default:
                ++m.failed;
                break;
        }
        bulk_text_.clear();
        publish_status();
    }

    // The job's phase and files, for /metrics and the STATUS= line.
    void bulk_progress(const std::string& ehr, const bulk_job_record& r) {
        auto& m = bulk_metrics_[ehr];
        m.phase = std::string(to_string(r.phase));
        m.files_total = r.manifest ? r.manifest->files.size() : 0;
        m.files_applied = r.applied.size();
        bulk_text_ = fmt::format("bulk export {}: {}", ehr, to_string(r.phase));
        if (r.manifest)
            bulk_text_ += fmt::format(" {}/{} files", r.applied.size(), r.manifest->files.size());
        else if (!r.progress.empty())
            bulk_text_ += " (" + r.progress + ")";
        publish_status();
    }

    // STATUS= holds the pass and, while one runs, the export.
    void publish_status() {
        if (bulk_text_.empty())
            call(hooks_.status, pass_text_);
        else if (pass_text_.empty())
            call(hooks_.status, bulk_text_);
        else
            call(hooks_.status, pass_text_ + "; " + bulk_text_);
    }

    // However the loop ends (stop, or an exception), nothing may keep
    // io.run() going: above all no WATCHDOG=1 for a daemon that no longer
    // syncs.
    void release() {
        loop_running_ = false;
        call(hooks_.stop_watchdog);
        if (callback_) callback_->stop();
        if (metrics_listener_) metrics_listener_->stop();
        http_->close_idle();
    }

    awaitable<void> run() {
        struct on_exit {
            impl* self;
            ~on_exit() { self->release(); }
        } cleanup{this};
        start_schedule();
        while (!stop_requested_) {
            if (reload_requested_) reload();
            const auto a = schedule_.next(clk_.now());
            switch (a.what) {
                case scheduler::action::kind::purge_audit:
                    purge_audit_or_log(vault_, cfg_.daemon.audit_retention_days, *log_);
                    break;
                case scheduler::action::kind::run_pass:
                    co_await run_pass(a.patients);
                    break;
                case scheduler::action::kind::sleep:
                    if (a.close_idle) http_->close_idle();
                    idle_.expires_after(a.sleep);
                    co_await idle_.async_wait(asio::as_tuple(use_awaitable));
                    break;
            }
        }
    }

    asio::io_context& io_;
    config::config& cfg_;
    store::analytics_db& db_;
    store::vault& vault_;
    const clock& clk_;
    std::shared_ptr<spdlog::logger> log_;
    service_hooks hooks_;
    std::mt19937_64 rng_;
    scheduler schedule_;
    metrics_registry metrics_;
    engine_options engine_opts_;
    std::unique_ptr<http::client> http_;
    std::unique_ptr<engine> engine_;
    asio::steady_timer idle_;
    asio::steady_timer bulk_idle_;
    std::map<std::string, std::shared_ptr<rate_limiter>> limiters_;
    bool bulk_running_ = false;
    std::map<std::string, sys_time> bulk_not_before_;  // an export that could not run: its next try
    std::map<std::string, bulk_metrics> bulk_metrics_;
    std::string pass_text_, bulk_text_;  // the two halves of STATUS=
    std::optional<http::listener> callback_, metrics_listener_;
    backend_jwks jwks_;  // served on the metrics listener; built at start-up and on a reload
    bool stop_requested_ = false, reload_requested_ = false;
    bool loop_running_ = false;  // /healthz
    int pass_no_ = 0;
    std::size_t pass_total_ = 0;
    // Counts only: a whole pass_result would hold every patient's outcome
    // until the pass ends (bench/soak: memory must not grow with patients).
    int progress_done_ = 0, progress_failed_ = 0;
};

service::service(asio::io_context& io, config::config& cfg, store::analytics_db& db, store::vault& vault,
                 const clock& clk, std::shared_ptr<spdlog::logger> log, service_hooks hooks)
    : impl_(std::make_unique<impl>(io, cfg, db, vault, clk, std::move(log), std::move(hooks))) {}

service::~service() = default;

result<ok_t> service::start_listeners() { return impl_->start_listeners(); }

awaitable<void> service::run() { return impl_->run(); }

void service::request_stop() { impl_->request_stop(); }

void service::request_reload() { impl_->request_reload(); }

std::string pass_status(int pass, int done, int total, int failed) {
    return fmt::format("pass {}: {}/{} patients, {} failed", pass, done, total, failed);
}

void purge_audit_or_log(store::vault& vault, int retention_days, spdlog::logger& log) {
    try {
        const auto n = store::purge_audit(vault, retention_days);
        if (n > 0)
            log.info("audit log: deleted {} event(s) older than {} days (audit_retention_days)", n,
                     retention_days);
    } catch (const store::store_error& e) {
        log.error("audit log: the retention purge failed: {}; it is retried later", e.what());
    }
}

}  // namespace headachemd::sync
