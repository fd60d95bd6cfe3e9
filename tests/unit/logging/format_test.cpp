// The three log forms, line by line, and what "auto" picks.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include <chrono>
#include <regex>
#include <sstream>
#include <string>

#include <simdjson.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "headachemd/logging/logging.hpp"

namespace {

using namespace headachemd::logging;

std::string render(format f, spdlog::level::level_enum level, std::string_view text,
                   std::chrono::system_clock::time_point t = std::chrono::system_clock::time_point{
                       std::chrono::milliseconds{1767323045678}}) {  // 2026-01-02T03:04:05.678Z
    spdlog::details::log_msg msg(t, spdlog::source_loc{}, "headachemd", level,
                                 spdlog::string_view_t(text.data(), text.size()));
    spdlog::memory_buf_t buf;
    make_formatter(f)->format(msg, buf);
    return std::string(buf.data(), buf.size());
}

TEST(LogFormat, JournaldCarriesTheSyslogPriority) {
    EXPECT_EQ(render(format::journald, spdlog::level::info, "started"), "<6>info: started\n");
    EXPECT_EQ(render(format::journald, spdlog::level::warn, "w"), "<4>warning: w\n");
    EXPECT_EQ(render(format::journald, spdlog::level::err, "e"), "<3>error: e\n");
    EXPECT_EQ(render(format::journald, spdlog::level::critical, "c"), "<2>critical: c\n");
    EXPECT_EQ(render(format::journald, spdlog::level::debug, "d"), "<7>debug: d\n");
}

TEST(LogFormat, TextHasAUtcTimestampWithMilliseconds) {
    EXPECT_EQ(render(format::text, spdlog::level::warn, "slow EHR"),
              "2026-01-02T03:04:05.678Z warning: slow EHR\n");
}

TEST(LogFormat, JsonIsOneParsableObjectPerLine) {
    const std::string line = render(format::json, spdlog::level::err, "token refresh failed: \"bad\" \\ x");
    EXPECT_EQ(line,
              "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"level\":\"error\",\"logger\":\"headachemd\","
              "\"msg\":\"token refresh failed: \\\"bad\\\" \\\\ x\"}\n");
}

// A message that tries to end its line and start a forged entry stays one
// line in every form; in JSON the message reads back exactly as logged.
TEST(LogFormat, ANewlineInAMessageNeverForgesALine) {
    const std::string evil =
        "EHR said: oops\n<2>critical: forged\r\n{\"level\":\"critical\",\"msg\":\"forged\"}\n";
    for (const format f : {format::journald, format::text, format::json}) {
        const std::string out = render(f, spdlog::level::info, evil);
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
        EXPECT_EQ(out.find('\r'), std::string::npos) << out;
    }
    const std::string json = render(format::json, spdlog::level::info, evil);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
    std::string_view msg;
    ASSERT_EQ(doc["msg"].get(msg), simdjson::SUCCESS);
    EXPECT_EQ(msg, evil);
}

TEST(LogFormat, JsonStaysValidForEveryByte) {
    simdjson::dom::parser parser;
    std::string all;
    for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
    for (const std::string& text : {all, std::string("\xC3"), std::string("end\\"), std::string("\"")}) {
        const std::string line = render(format::json, spdlog::level::info, text);
        EXPECT_EQ(line.find('\n'), line.size() - 1);
        simdjson::dom::element doc;
        ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
        std::string_view ts, level, logger;
        EXPECT_EQ(doc["ts"].get(ts), simdjson::SUCCESS);
        EXPECT_EQ(doc["level"].get(level), simdjson::SUCCESS);
        EXPECT_EQ(doc["logger"].get(logger), simdjson::SUCCESS);
        EXPECT_TRUE(
            std::regex_match(std::string(ts), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
            << ts;
        EXPECT_EQ(level, "info");
        EXPECT_EQ(logger, "headachemd");
    }
}

// Through a real logger and sink: fmt arguments are escaped too.
TEST(LogFormat, ArgumentsOfAFormattedCallAreEscaped) {
    std::ostringstream out;
    auto log =
        std::make_shared<spdlog::logger>("headachemd", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    log->set_formatter(make_formatter(format::journald));
    log->warn("server answered {}", "400\n<3>error: forged");
    EXPECT_EQ(out.str(), "<4>warning: server answered 400\\n<3>error: forged\n");
}

TEST(LogFormatChoice, Parse) {
    EXPECT_EQ(parse_format_choice("auto"), format_choice::automatic);
    EXPECT_EQ(parse_format_choice("journald"), format_choice::journald);
    EXPECT_EQ(parse_format_choice("text"), format_choice::text);
    EXPECT_EQ(parse_format_choice("json"), format_choice::json);
    EXPECT_EQ(parse_format_choice("JSON"), std::nullopt);
    EXPECT_EQ(parse_format_choice(""), std::nullopt);
}

TEST(JournalStream, ParsesDeviceAndInode) {
    EXPECT_EQ(parse_journal_stream("8:12345"), (file_id{8, 12345}));
    EXPECT_EQ(parse_journal_stream("0:0"), (file_id{0, 0}));
    EXPECT_EQ(parse_journal_stream("8:"), std::nullopt);
    EXPECT_EQ(parse_journal_stream(":8"), std::nullopt);
    EXPECT_EQ(parse_journal_stream("8-12"), std::nullopt);
    EXPECT_EQ(parse_journal_stream("8:12x"), std::nullopt);
    EXPECT_EQ(parse_journal_stream("-1:2"), std::nullopt);
}

TEST(ResolveFormat, AutoIsJournaldOnlyWhenStderrIsTheJournalStream) {
    const file_id stderr_id{8, 4242};
    // systemd with StandardError=journal: the variable names our stderr.
    EXPECT_EQ(resolve_format(format_choice::automatic, "8:4242", stderr_id), format::journald);
    // Inherited from a parent whose stream it was; ours goes elsewhere.
    EXPECT_EQ(resolve_format(format_choice::automatic, "8:4243", stderr_id), format::text);
    EXPECT_EQ(resolve_format(format_choice::automatic, "garbage", stderr_id), format::text);
    EXPECT_EQ(resolve_format(format_choice::automatic, std::nullopt, stderr_id), format::text);
    EXPECT_EQ(resolve_format(format_choice::automatic, "8:4242", std::nullopt), format::text);
    // An explicit choice wins over everything.
    EXPECT_EQ(resolve_format(format_choice::json, "8:4242", stderr_id), format::json);
    EXPECT_EQ(resolve_format(format_choice::journald, std::nullopt, stderr_id), format::journald);
    EXPECT_EQ(resolve_format(format_choice::text, "8:4242", stderr_id), format::text);
}

}  // namespace

namespace {

// Runs `body` with this process's stderr pointing at a fresh file and
// $JOURNAL_STREAM set to `journal_stream(dev, ino of that file)`; returns
// what was written there.
template <typename F, typename J>
std::string with_stderr_in_a_file(J journal_stream, F body) {
    char path[] = "/tmp/headachemd-stderr-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) return "mkstemp failed";
    struct stat st {};
    ::fstat(fd, &st);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::setenv("JOURNAL_STREAM", journal_stream(st.st_dev, st.st_ino).c_str(), 1);
    body();
    ::unsetenv("JOURNAL_STREAM");
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(fd);
    std::ifstream in(path);
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    ::unlink(path);
    return text;
}

// The real fstat(2) path: systemd.exec(5)'s JOURNAL_STREAM check.
TEST(StderrLogger, AutoIsJournaldExactlyWhenJournalStreamNamesStderr) {
    const auto same = [](dev_t d, ino_t i) { return std::to_string(d) + ":" + std::to_string(i); };
    const auto other = [](dev_t d, ino_t i) { return std::to_string(d) + ":" + std::to_string(i + 1); };
    const std::string journald = with_stderr_in_a_file(same, [] {
        auto log = make_stderr_logger("headachemd", "info", format_choice::automatic);
        log->warn("to the journal");
        log->flush();
    });
    EXPECT_EQ(journald, "<4>warning: to the journal\n");
    const std::string text = with_stderr_in_a_file(other, [] {
        auto log = make_stderr_logger("headachemd", "info", format_choice::automatic);
        log->warn("to a file");
        log->flush();
    });
    EXPECT_TRUE(
        std::regex_match(text, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warning: to a file\n)")))
        << text;
    const std::string json = with_stderr_in_a_file(same, [] {
        auto log = make_stderr_logger("headachemd", "info", format_choice::json);
        log->info("asked for");
        log->debug("below the level");
        log->flush();
    });
    EXPECT_EQ(json.find("\"level\":\"info\",\"logger\":\"headachemd\",\"msg\":\"asked for\"}\n"),
              33u)  // after {"ts":"<24 characters>",
        << json;
    EXPECT_EQ(json.find("below the level"), std::string::npos);
}

}  // namespace
