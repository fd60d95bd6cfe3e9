#include "logging.hpp"

#include "headachemd/logging/logging.hpp"

namespace headachemd::daemon {

std::shared_ptr<spdlog::logger> make_logger(const std::string& level, const std::string& format) {
    const auto choice = logging::parse_format_choice(format).value_or(logging::format_choice::automatic);
    return logging::make_stderr_logger("headachemd", level, choice);
}

}  // namespace headachemd::daemon
