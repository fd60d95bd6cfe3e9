// The daemon (`run`): every enrolled patient is synced when due, the config
// is reloaded between passes on request, the callback and metrics listeners
// answer, and the audit log is purged once a day. What runs when is
// sync::scheduler's decision (pure, tested step by step); the service is the
// coroutine shell that performs its actions and owns their I/O: timers, the
// listeners, the engine, and the writes of due times to sync_status.
//
// Contract
// - Process concerns stay with the caller: signals call request_stop() or
//   request_reload(); the service manager is told through `service_hooks`
//   (daemon/notify.cpp maps them onto sd_notify), and a reload asks the
//   hooks for the new config, so that reading and reporting a config file is
//   the command line's business.
// - request_stop(): no new requests; the open page is written or rolled back
//   (sync::engine::stop), then run() returns. Nothing keeps the io_context
//   busy afterwards: listeners, timers and pooled connections are closed,
//   however run() ends.
// - Single-threaded: everything runs on the io_context given.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include <spdlog/logger.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::sync {

// How the service tells the service manager what it does (systemd's
// READY=1, STATUS=, RELOADING=1, STOPPING=1 and the watchdog). Each may be
// empty.
struct service_hooks {
    std::function<void(std::string_view status)> ready;
    std::function<void(std::string_view status)> status;
    std::function<void(std::string_view status)> reloading;
    std::function<void(std::string_view status)> stopping;
    std::function<void()> start_watchdog;
    std::function<void()> stop_watchdog;
    // The reloaded config, or nullopt when it is invalid (the caller has
    // reported why); the service then keeps the running one.
    std::function<std::optional<config::config>()> reload_config;
};

class service {
public:
    // `cfg` is replaced in place by a reload; `db`, `vault`, `clk` and `log`
    // must outlive the service.
    service(boost::asio::io_context& io, config::config& cfg, store::analytics_db& db, store::vault& vault,
            const clock& clk, std::shared_ptr<spdlog::logger> log, service_hooks hooks);
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    // Binds [daemon] callback_listen and metrics_listen; with the metrics
    // listener it first reads the [ehr.bulk] keys whose public JWKS it
    // serves (sync/backend_jwks.hpp). The error's message names the setting
    // (errc::listen: the caller exits with EX_UNAVAILABLE) or the key file
    // (errc::bad_key: EX_CONFIG).
    result<ok_t> start_listeners();

    // Runs until request_stop(); exceptions (a store that cannot be read)
    // propagate after the cleanup.
    boost::asio::awaitable<void> run();

    void request_stop();
    void request_reload();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// "pass 3: 12/40 patients, 0 failed": the STATUS= text during a pass.
std::string pass_status(int pass, int done, int total, int failed);

// Deletes audit events older than `retention_days` and logs how many; a
// failure is logged, never thrown: the daemon goes on (the next purge
// retries), since keeping events longer harms no one.
void purge_audit_or_log(store::vault& vault, int retention_days, spdlog::logger& log);

}  // namespace headachemd::sync
