// What `audit` prints: the audit log's events (store::read_audit_log) as
// JSON lines, tab-separated text or an aligned table, and its --since
// argument. All pure: the daemon reads the log, chooses the form and
// prints the string.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "headachemd/store/audit.hpp"

namespace headachemd::sync {

// --since: a date (2026-11-01, midnight UTC), a UTC time
// (2026-11-01T08:00:00Z), or a duration back from `now` (7d, 12h, 30m,
// 90s), as the UTC timestamp store::audit_query::since compares with.
// nullopt when it is none of these.
std::optional<std::string> parse_since(std::string_view text, std::chrono::system_clock::time_point now);

// `audit --json`: one object per event and line; an empty field is null.
std::string render_audit_json(const std::vector<store::audit_event>& events);

// Not a terminal: a header line, then one tab-separated line per event (an
// empty field is empty), for sort, awk and spreadsheets.
std::string render_audit_tsv(const std::vector<store::audit_event>& events);

// A terminal: a header and one line per event in columns two spaces apart
// (an empty field is "-"), then the count of events.
std::string render_audit_table(const std::vector<store::audit_event>& events);

}  // namespace headachemd::sync
