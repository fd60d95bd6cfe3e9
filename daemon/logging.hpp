// The process logger: human-readable on a terminal, "<N>"-prefixed levels
// (sd-daemon(3) priorities) for journald otherwise. Loggers are passed
// down explicitly; nothing below daemon/ uses a global logger.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace headachemd::daemon {

std::shared_ptr<spdlog::logger> make_logger(const std::string& level);

}  // namespace headachemd::daemon
