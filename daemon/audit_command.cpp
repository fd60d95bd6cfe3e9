#include "audit_command.hpp"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/sync/audit_report.hpp"
#include "runtime.hpp"

namespace headachemd::daemon {
namespace {

struct audit_args {
    std::string config = default_config;
    std::string since;
    std::string patient;
    std::string ehr;
    bool json = false;
    std::size_t limit = 0;
};

int run_audit(const audit_args& a) {
    const auto cfg = load_or_report(a.config, "");
    if (!cfg) return exit_code::config;
    store::audit_query q;
    if (!a.since.empty()) {
        q.since = sync::parse_since(a.since, std::chrono::system_clock::now());
        if (!q.since) {
            std::cerr << "error: --since " << a.since
                      << ": expected a date (2026-11-01), a UTC time (2026-11-01T08:00:00Z) or a duration "
                         "(7d, 12h, 30m)\n";
            return exit_code::usage;
        }
    }
    if (!a.patient.empty()) q.patient_key = a.patient;
    if (!a.ehr.empty()) q.ehr = a.ehr;
    q.limit = a.limit;
    try {
        // Read-only and without the token key: the audit rows are not
        // sealed and hold no secret; whoever can read vault.db (its owner,
        // mode 0600) may read them.
        const auto events = store::read_audit_log(cfg->daemon.vault, q);
        if (a.json)
            std::cout << sync::render_audit_json(events);
        else if (::isatty(STDOUT_FILENO))
            std::cout << sync::render_audit_table(events);
        else
            std::cout << sync::render_audit_tsv(events);
        return exit_code::ok;
    } catch (const store::store_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::no_input;
    }
}

}  // namespace

void add_audit_command(CLI::App& app, int* exit_code) {
    auto args = std::make_shared<audit_args>();
    CLI::App* cmd = app.add_subcommand("audit", "Print the audit log: every EHR call and enrollment change");
    cmd->footer(
        "Examples:\n"
        "  headachemd-sync audit --since 7d\n"
        "  headachemd-sync audit --patient hmd-000123 --since 2026-11-01\n"
        "  headachemd-sync audit --json --since 1d | jq 'select(.outcome != \"ok\")'\n"
        "One line per event, oldest first: an aligned table on a terminal, tab-separated with a header\n"
        "line otherwise (for sort, awk, spreadsheets), or JSON lines with --json. Reads vault.db\n"
        "read-only; needs no token key. Columns: docs/admin/monitoring.md \"Audit log\".\n"
        "Exit status: 0 printed, 64 bad option, 66 no vault or no audit log, 78 bad config.");
    cmd->add_option("-c,--config", args->config, "configuration file")->capture_default_str();
    cmd->add_option("--since", args->since, "events from this date, UTC time, or duration ago (7d, 12h)");
    cmd->add_option("--patient", args->patient, "only this patient key");
    cmd->add_option("--ehr", args->ehr, "only this [[ehr]] name");
    cmd->add_option("--limit", args->limit, "only the newest N events (still printed oldest first)");
    cmd->add_flag("--json", args->json, "JSON lines, one object per event");
    cmd->callback([args, exit_code] { *exit_code = run_audit(*args); });
}

}  // namespace headachemd::daemon
