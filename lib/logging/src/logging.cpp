#include "headachemd/logging/logging.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "headachemd/logging/escape.hpp"

namespace headachemd::logging {
namespace {

// syslog priorities (RFC 5424 §6.2.1) for spdlog's trace..critical, off:
// what journald stores as PRIORITY from a "<N>" prefix (sd-daemon(3)).
constexpr char syslog_digit[] = {'7', '7', '6', '4', '3', '2', '6'};
// Level words as syslog(3) and journalctl name them.
constexpr std::string_view level_word[] = {"trace", "debug", "info", "warning", "error", "critical", "off"};

std::string_view level_name(spdlog::level::level_enum l) {
    const auto i = static_cast<std::size_t>(l);
    return i < std::size(level_word) ? level_word[i] : "unknown";
}

// RFC 3339 in UTC with milliseconds: 2026-01-02T03:04:05.678Z.
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(t.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(floor<seconds>(ms).count());
    const auto millis = static_cast<int>(ms.count() - floor<seconds>(ms).count() * 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
}

class line_formatter final : public spdlog::formatter {
public:
    line_formatter(logging::format f, bool color) : format_(f), color_(color) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        switch (format_) {
            case format::journald:
                line.push_back('<');
                line.push_back(syslog_digit[static_cast<std::size_t>(msg.level) % std::size(syslog_digit)]);
                line.push_back('>');
                line += level_name(msg.level);
                line += ": ";
                append_line_escaped(line, payload);
                break;
            case format::text:
                append_utc_timestamp(line, msg.time);
                line.push_back(' ');
                if (color_) msg.color_range_start = dest.size() + line.size();
                line += level_name(msg.level);
                if (color_) msg.color_range_end = dest.size() + line.size();
                line += ": ";
                append_line_escaped(line, payload);
                break;
            case format::json:
                line += "{\"ts\":\"";
                append_utc_timestamp(line, msg.time);
                line += "\",\"level\":\"";
                line += level_name(msg.level);
                line += "\",\"logger\":\"";
                append_json_escaped(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
                line += "\",\"msg\":\"";
                append_json_escaped(line, payload);
                line += "\"}";
                break;
        }
        line.push_back('\n');
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<line_formatter>(format_, color_);
    }

private:
    logging::format format_;
    bool color_;
};

}  // namespace

std::optional<format_choice> parse_format_choice(std::string_view s) {
    if (s == "auto") return format_choice::automatic;
    if (s == "journald") return format_choice::journald;
    if (s == "text") return format_choice::text;
    if (s == "json") return format_choice::json;
    return std::nullopt;
}

std::optional<file_id> parse_journal_stream(std::string_view s) {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    file_id id;
    const auto parse = [](std::string_view part, std::uint64_t& v) {
        if (part.empty()) return false;
        const auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        return ec == std::errc{} && p == part.data() + part.size();
    };
    if (!parse(s.substr(0, colon), id.dev) || !parse(s.substr(colon + 1), id.ino)) return std::nullopt;
    return id;
}

format resolve_format(format_choice choice, std::optional<std::string_view> journal_stream,
                      std::optional<file_id> stderr_id) {
    switch (choice) {
        case format_choice::journald:
            return format::journald;
        case format_choice::text:
            return format::text;
        case format_choice::json:
            return format::json;
        case format_choice::automatic:
            break;
    }
    // systemd.exec(5): JOURNAL_STREAM is set when stdout or stderr is
    // connected to the journal; a program should compare it with fstat() of
    // the fd, since the variable is inherited by children whose output may
    // go elsewhere.
    if (journal_stream && stderr_id) {
        if (const auto journal = parse_journal_stream(*journal_stream); journal && *journal == *stderr_id)
            return format::journald;
    }
    return format::text;
}

std::unique_ptr<spdlog::formatter> make_formatter(format f, bool color) {
    return std::make_unique<line_formatter>(f, color && f == format::text);
}

std::shared_ptr<spdlog::logger> make_stderr_logger(const std::string& name, const std::string& level,
                                                   format_choice choice) {
    std::optional<std::string_view> journal_stream;
    if (const char* env = std::getenv("JOURNAL_STREAM")) journal_stream = env;
    std::optional<file_id> stderr_id;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) == 0)
        stderr_id = file_id{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    const format f = resolve_format(choice, journal_stream, stderr_id);
    std::shared_ptr<spdlog::logger> log;
    if (tty && f == format::text) {
        log = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
        log->set_formatter(make_formatter(f, true));
    } else {
        log = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
        log->set_formatter(make_formatter(f, false));
    }
    log->set_level(spdlog::level::from_str(level));
    return log;
}

}  // namespace headachemd::logging
