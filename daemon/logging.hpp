// The process logger, in the form `log_format` asks for (lib/logging:
// journald "<N>" priority prefixes, text, or JSON lines; "auto" picks
// journald when stderr is systemd's journal stream, text otherwise).
// Loggers are passed down explicitly; nothing below daemon/ uses a global
// logger.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

namespace headachemd::daemon {

// The accepted --log-format / log_format values, for CLI11's checks.
inline std::vector<std::string> log_format_names() { return {"auto", "journald", "text", "json"}; }

// `format` is one of log_format_names; anything else is taken as "auto"
// (the config and the CLI have checked it before).
std::shared_ptr<spdlog::logger> make_logger(const std::string& level, const std::string& format = "auto");

}  // namespace headachemd::daemon
