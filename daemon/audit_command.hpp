// `headachemd-sync audit`: prints the audit log kept in vault.db (issue 5).
// The rendering and --since are sync/audit_report.hpp; the retention
// purge is sync::purge_audit_or_log.
#pragma once

#include <CLI/CLI.hpp>

namespace headachemd::daemon {

// Adds the subcommand to `app`; returns the exit code through `*exit_code`.
void add_audit_command(CLI::App& app, int* exit_code);

}  // namespace headachemd::daemon
