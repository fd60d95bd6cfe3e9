// `headachemd-sync audit`: prints the audit log kept in vault.db (issue 5).
// The retention purge is sync::purge_audit_or_log.
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

}  // namespace headachemd::daemon
