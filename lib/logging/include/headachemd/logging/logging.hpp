// The process logger's output forms (docs/admin/monitoring.md "Logs"):
//   journald  "<N>level: message": N is the syslog priority, which journald
//             stores as PRIORITY (sd-daemon(3)); journald adds the time.
//   text      "2026-01-02T03:04:05.678Z warning: message", the level in
//             colour on a terminal.
//   json      one object per line:
//             {"ts":"…Z","level":"warning","logger":"headachemd","msg":"…"}
// Every form escapes the message (escape.hpp), so a newline inside it cannot
// forge a second log line. Loggers are passed down explicitly; nothing
// below daemon/ uses a global logger.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

namespace headachemd::logging {

enum class format { journald, text, json };
// The config's `log_format`: "auto" picks one of the three at start.
enum class format_choice { automatic, journald, text, json };

// "auto", "journald", "text" or "json"; nullopt for anything else.
std::optional<format_choice> parse_format_choice(std::string_view s);

// A file's identity as fstat(2) gives it.
struct file_id {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    bool operator==(const file_id&) const = default;
};

// $JOURNAL_STREAM is "DEVICE:INODE" in decimal (systemd.exec(5)); nullopt
// when it is not exactly that.
std::optional<file_id> parse_journal_stream(std::string_view s);

// What "auto" means, as a pure decision: journald when stderr is the very
// stream systemd connected to the journal (JOURNAL_STREAM names stderr's
// device and inode; a child that inherited the variable but whose stderr
// was redirected does not match), text otherwise: on a terminal, and also
// in a file or a pipe, where a "<N>" prefix means nothing and the
// timestamp does. An explicit choice is returned as it is.
format resolve_format(format_choice choice, std::optional<std::string_view> journal_stream,
                      std::optional<file_id> stderr_id);

// The spdlog formatter for a form. `color`: mark the level for a colour
// sink (text only).
std::unique_ptr<spdlog::formatter> make_formatter(format f, bool color = false);

// A logger named `name` writing to stderr in the chosen form (resolved
// from this process's stderr and environment for automatic), at `level`
// (spdlog names: trace, debug, info, warn, error, critical, off).
std::shared_ptr<spdlog::logger> make_stderr_logger(const std::string& name, const std::string& level,
                                                   format_choice choice);

}  // namespace headachemd::logging
