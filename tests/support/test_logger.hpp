// Loggers for tests that run the engine in-process: the test's own sink
// (usually a ring buffer it asserts on) plus, under ctest, a sink that
// writes every line to the log capture (log_capture.hpp), so the log scan
// sees in-process lines as well as those of spawned binaries.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/sink.h>

#include "log_capture.hpp"

namespace headachemd::test {

// One capture file per test process, shared by every test_logger().
inline std::shared_ptr<spdlog::sinks::sink> capture_sink() {
    static std::mutex mu;
    static std::shared_ptr<spdlog::sinks::sink> sink;
    std::lock_guard lock(mu);
    if (!sink) {
        const auto path = new_capture_file("inprocess");
        if (!path) return nullptr;
        sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path->string());
        sink->set_pattern("%l [%n] %v");
    }
    return sink;
}

inline std::shared_ptr<spdlog::logger> test_logger(const std::string& name,
                                                   std::shared_ptr<spdlog::sinks::sink> sink) {
    auto log = std::make_shared<spdlog::logger>(name, std::move(sink));
    if (auto capture = capture_sink()) {
        log->sinks().push_back(std::move(capture));
        log->flush_on(spdlog::level::trace);  // a crashed test keeps its lines
    }
    return log;
}

}  // namespace headachemd::test
