#include "audit_command.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "exit_codes.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/core/json.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/database.hpp"
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

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

std::string json_text_or_null(const std::string& s) { return s.empty() ? "null" : json_string(s); }
std::string json_int_or_null(const std::optional<int>& v) { return v ? std::to_string(*v) : "null"; }
std::string text_or(const std::string& s, const char* none) { return s.empty() ? none : s; }
std::string int_or(const std::optional<int>& v, const char* none) { return v ? std::to_string(*v) : none; }

// A tab in a value would shift the columns of the tab-separated output.
std::string no_tabs(std::string s) {
    for (auto& c : s)
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return s;
}

void print_json(const std::vector<store::audit_event>& events) {
    for (const auto& e : events)
        std::cout << "{\"time\":" << json_string(e.time)
                  << ",\"patient_key\":" << json_text_or_null(e.patient_key)
                  << ",\"ehr\":" << json_text_or_null(e.ehr) << ",\"action\":" << json_string(e.action)
                  << ",\"resource_type\":" << json_text_or_null(e.resource_type)
                  << ",\"page\":" << json_int_or_null(e.page)
                  << ",\"http_status\":" << json_int_or_null(e.http_status)
                  << ",\"count\":" << json_int_or_null(e.count) << ",\"outcome\":" << json_string(e.outcome)
                  << "}\n";
}

void print_tsv(const std::vector<store::audit_event>& events) {
    std::cout << "time\tpatient_key\tehr\taction\tresource_type\tpage\thttp_status\tcount\toutcome\n";
    for (const auto& e : events)
        std::cout << e.time << '\t' << no_tabs(e.patient_key) << '\t' << no_tabs(e.ehr) << '\t' << e.action
                  << '\t' << e.resource_type << '\t' << int_or(e.page, "") << '\t'
                  << int_or(e.http_status, "") << '\t' << int_or(e.count, "") << '\t' << no_tabs(e.outcome)
                  << '\n';
}

void print_table(const std::vector<store::audit_event>& events) {
    std::vector<std::array<std::string, 9>> rows;
    rows.push_back({"TIME (UTC)", "PATIENT", "EHR", "ACTION", "TYPE", "PAGE", "STATUS", "COUNT", "OUTCOME"});
    for (const auto& e : events)
        rows.push_back({e.time, text_or(e.patient_key, "-"), text_or(e.ehr, "-"), e.action,
                        text_or(e.resource_type, "-"), int_or(e.page, "-"), int_or(e.http_status, "-"),
                        int_or(e.count, "-"), e.outcome});
    std::array<std::size_t, 9> width{};
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        std::cout << line << "\n";
    }
    std::cout << events.size() << " event(s)\n";
}

int run_audit(const audit_args& a) {
    const auto cfg = load_or_report(a.config, "");
    if (!cfg) return exit_code::config;
    store::audit_query q;
    if (!a.since.empty()) {
        q.since = parse_since(a.since, std::chrono::system_clock::now());
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
            print_json(events);
        else if (::isatty(STDOUT_FILENO))
            print_table(events);
        else
            print_tsv(events);
        return exit_code::ok;
    } catch (const store::store_error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_code::no_input;
    }
}

}  // namespace

std::optional<std::string> parse_since(std::string_view text, std::chrono::system_clock::time_point now) {
    // YYYY-MM-DD, midnight UTC.
    if (text.size() == 10 && text[4] == '-' && text[7] == '-' && all_digits(text.substr(0, 4)) &&
        all_digits(text.substr(5, 2)) && all_digits(text.substr(8, 2)))
        return std::string(text) + "T00:00:00Z";
    // YYYY-MM-DDThh:mm:ssZ, as stored.
    if (text.size() == 20 && text[10] == 'T' && text[13] == ':' && text[16] == ':' && text[19] == 'Z' &&
        parse_since(text.substr(0, 10), now) && all_digits(text.substr(11, 2)) &&
        all_digits(text.substr(14, 2)) && all_digits(text.substr(17, 2)))
        return std::string(text);
    // A duration back from now.
    if (text.size() >= 2 && all_digits(text.substr(0, text.size() - 1)) && text.size() <= 8) {
        const long n = std::stol(std::string(text.substr(0, text.size() - 1)));
        std::chrono::seconds unit{0};
        switch (text.back()) {
            case 'd':
                unit = std::chrono::hours(24);
                break;
            case 'h':
                unit = std::chrono::hours(1);
                break;
            case 'm':
                unit = std::chrono::minutes(1);
                break;
            case 's':
                unit = std::chrono::seconds(1);
                break;
            default:
                return std::nullopt;
        }
        return store::utc_timestamp(now - unit * n);
    }
    return std::nullopt;
}

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
