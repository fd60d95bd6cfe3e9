// `headachemd-sync audit`: prints the audit log kept in vault.db (issue 5),
// and the purge the daemon runs at start-up, daily, and after sync-once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "headachemd/store/audit.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::daemon {

// Adds the subcommand to `app`; returns the exit code through `*exit_code`.
void add_audit_command(CLI::App& app, int* exit_code);

// --since: a date (2026-11-01, midnight UTC), a UTC time
// (2026-11-01T08:00:00Z), or a duration back from `now` (7d, 12h, 30m,
// 90s). nullopt when it is none of these.
std::optional<std::string> parse_since(std::string_view text, std::chrono::system_clock::time_point now);

// Deletes audit events older than `retention_days` and logs how many; a
// failure is logged, never thrown: the daemon goes on (the next purge
// retries), since keeping events longer harms no one.
void purge_audit_or_log(store::vault& vault, int retention_days, spdlog::logger& log);

}  // namespace headachemd::daemon
