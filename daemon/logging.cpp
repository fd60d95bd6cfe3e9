#include "logging.hpp"

#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace headachemd::daemon {
namespace {

// "<N>" with N the syslog priority of the spdlog level; journald turns
// that prefix into the entry's PRIORITY field (sd-daemon(3)).
class syslog_priority_flag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        static constexpr char digits[] = {'7', '7', '6', '4', '3', '2', '6'};  // trace..critical, off
        dest.push_back('<');
        dest.push_back(digits[static_cast<int>(msg.level)]);
        dest.push_back('>');
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<syslog_priority_flag>();
    }
};

}  // namespace

std::shared_ptr<spdlog::logger> make_logger(const std::string& level) {
    std::shared_ptr<spdlog::logger> log;
    if (::isatty(STDERR_FILENO)) {
        log = std::make_shared<spdlog::logger>("headachemd",
                                               std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
        log->set_pattern("%^%l%$: %v");
    } else {
        log =
            std::make_shared<spdlog::logger>("headachemd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<syslog_priority_flag>('*').set_pattern("%*%l: %v");
        log->set_formatter(std::move(formatter));
    }
    log->set_level(spdlog::level::from_str(level));
    return log;
}

}  // namespace headachemd::daemon
