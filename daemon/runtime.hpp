// What every command shares at start-up: the config loaded or every error
// reported, the logger, the databases opened, the io_context run, and the
// exceptions every command maps alike onto an exit code.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/logger.h>
#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "headachemd/sync/vault_access.hpp"

namespace headachemd::daemon {

inline constexpr const char* default_config = "/etc/headachemd/sync.toml";

// Loads and validates the config, printing every error with file:line:col
// and then "N error(s) in PATH; <consequence>" (no "; " when empty).
std::optional<config::config> load_or_report(const std::string& path,
                                             std::string_view consequence = "nothing was started");

// -c/--config, --log-level and --log-format.
struct common_args {
    std::string config = default_config;
    std::string log_level;
    std::string log_format;  // empty: the config's log_format
};

void add_common(CLI::App* cmd, common_args& a);

// Everything a sync command needs, opened from the config.
struct runtime {
    config::config cfg;
    std::shared_ptr<spdlog::logger> log;
    std::unique_ptr<store::analytics_db> db;
    std::unique_ptr<store::vault> vault;
};

// Why the vault did not open, as an exit code: rekey holds it (75), the
// token key is missing or wrong (78), anything else (73).
int exit_code_for(sync::vault_failure why);

// The vault first: a missing or wrong token key stops us before either file
// is written. On failure, `exit_code` says why (exit_code_for, or 73 for
// headache.db).
std::optional<runtime> open_runtime(const common_args& a, int& exit_code);

// Runs `body` (a coroutine factory) on `io` until it finishes; its
// exception propagates.
template <class F>
void run_on_io(boost::asio::io_context& io, F&& body) {
    std::exception_ptr failure;
    auto main_task = std::forward<F>(body);
    boost::asio::co_spawn(io, std::move(main_task), [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
}

// Runs `body` (returning an exit code), logging and mapping the failures
// every command treats alike: the store failed (74), anything else the
// config or the environment made impossible (78).
template <class F>
int exit_code_of(spdlog::logger& log, F&& body) {
    try {
        return std::forward<F>(body)();
    } catch (const store::store_error& e) {
        log.error("{}", e.what());
        return exit_code::io_error;
    } catch (const std::runtime_error& e) {
        log.error("{}", e.what());
        return exit_code::config;
    }
}

}  // namespace headachemd::daemon
