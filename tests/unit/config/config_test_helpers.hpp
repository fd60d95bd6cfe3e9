// Helpers for the config tests: parse text under the name "sync.toml" with
// a controlled environment, and look errors up by position.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/config/config.hpp"

namespace headachemd::config::test {

// An environment with only the given variables, so no test depends on (or
// changes) the process environment.
inline env_lookup fake_env(std::map<std::string, std::string, std::less<>> vars = {}) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        if (auto it = vars.find(name); it != vars.end()) return it->second;
        return std::nullopt;
    };
}

inline parse_result parse(std::string_view text, const env_lookup& env = fake_env()) {
    return parse_config(text, "sync.toml", env);
}

inline std::vector<config_error> errors_of(const parse_result& r) {
    if (const auto* errors = std::get_if<std::vector<config_error>>(&r)) return *errors;
    return {};
}

inline std::string describe(const std::vector<config_error>& errors) {
    std::string out;
    for (const auto& e : errors) out += "  " + e.to_string() + "\n";
    return out.empty() ? "  (no errors)\n" : out;
}

// The parsed config, or a test failure that lists the errors.
inline const config* config_of(const parse_result& r) {
    const auto* c = std::get_if<config>(&r);
    EXPECT_NE(c, nullptr) << "expected a valid config; errors:\n" << describe(errors_of(r));
    return c;
}

// Asserts that exactly one error sits at line:column and that its message
// contains `fragment`.
inline ::testing::AssertionResult has_error(const parse_result& r, int line, int column,
                                            std::string_view fragment) {
    const auto errors = errors_of(r);
    int found = 0;
    for (const auto& e : errors) {
        if (e.line == line && e.column == column) {
            if (e.message.find(fragment) == std::string::npos) {
                return ::testing::AssertionFailure()
                       << "error at " << line << ":" << column << " does not say \"" << fragment << "\":\n"
                       << describe(errors);
            }
            ++found;
        }
    }
    if (found == 1) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << found << " errors at " << line << ":" << column
                                         << " (expected 1 saying \"" << fragment << "\"):\n"
                                         << describe(errors);
}

// A valid [[ehr]] block (5 lines) that a test can prepend or append to.
inline constexpr std::string_view valid_ehr =
    "[[ehr]]\n"
    "name = \"ecw\"\n"
    "fhir_base = \"https://ehr.example.org/fhir\"\n"
    "client_id = \"client-1\"\n"
    "client_secret_file = \"/etc/headachemd/ecw.secret\"\n";

}  // namespace headachemd::config::test
