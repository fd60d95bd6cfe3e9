#include "headachemd/sync/audit_report.hpp"

#include <algorithm>
#include <array>

#include "headachemd/core/json.hpp"
#include "headachemd/store/database.hpp"

namespace headachemd::sync {
namespace {

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

std::string render_audit_json(const std::vector<store::audit_event>& events) {
    std::string out;
    for (const auto& e : events)
        out += "{\"time\":" + json_string(e.time) + ",\"patient_key\":" + json_text_or_null(e.patient_key) +
               ",\"ehr\":" + json_text_or_null(e.ehr) + ",\"action\":" + json_string(e.action) +
               ",\"resource_type\":" + json_text_or_null(e.resource_type) +
               ",\"page\":" + json_int_or_null(e.page) +
               ",\"http_status\":" + json_int_or_null(e.http_status) +
               ",\"count\":" + json_int_or_null(e.count) + ",\"outcome\":" + json_string(e.outcome) + "}\n";
    return out;
}

std::string render_audit_tsv(const std::vector<store::audit_event>& events) {
    std::string out = "time\tpatient_key\tehr\taction\tresource_type\tpage\thttp_status\tcount\toutcome\n";
    for (const auto& e : events)
        out += e.time + '\t' + no_tabs(e.patient_key) + '\t' + no_tabs(e.ehr) + '\t' + e.action + '\t' +
               e.resource_type + '\t' + int_or(e.page, "") + '\t' + int_or(e.http_status, "") + '\t' +
               int_or(e.count, "") + '\t' + no_tabs(e.outcome) + '\n';
    return out;
}

std::string render_audit_table(const std::vector<store::audit_event>& events) {
    std::vector<std::array<std::string, 9>> rows;
    rows.push_back({"TIME (UTC)", "PATIENT", "EHR", "ACTION", "TYPE", "PAGE", "STATUS", "COUNT", "OUTCOME"});
    for (const auto& e : events)
        rows.push_back({e.time, text_or(e.patient_key, "-"), text_or(e.ehr, "-"), e.action,
                        text_or(e.resource_type, "-"), int_or(e.page, "-"), int_or(e.http_status, "-"),
                        int_or(e.count, "-"), e.outcome});
    std::array<std::size_t, 9> width{};
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    std::string out;
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < r.size(); ++i) {
            out += r[i];
            if (i + 1 < r.size()) out += std::string(width[i] - r[i].size() + 2, ' ');
        }
        out += "\n";
    }
    out += std::to_string(events.size()) + " event(s)\n";
    return out;
}

}  // namespace headachemd::sync
