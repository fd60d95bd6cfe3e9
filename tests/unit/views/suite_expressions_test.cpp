// Every FHIRPath expression of the official SQL on FHIR v2 suite
// (../shared/data/sof-tests, MIT) parses, except in the cases the suite
// marks expectError. This checks the parser's coverage of the subset until
// the full suite runs as a test (issue 16, item 2). It evaluates nothing.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <filesystem>
#include <string>
#include <vector>

#include "headachemd/views/fhirpath.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;

// Collects the string values of "path", "forEach" and "forEachOrNull"
// anywhere in a view: columns, where clauses, nested selects.
void expressions(simdjson::dom::element e, std::vector<std::string>& out) {
    simdjson::dom::object obj;
    simdjson::dom::array arr;
    if (e.get(obj) == simdjson::SUCCESS) {
        for (auto field : obj) {
            std::string_view s;
            bool is_expr = field.key == "path" || field.key == "forEach" || field.key == "forEachOrNull";
            if (is_expr && field.value.get(s) == simdjson::SUCCESS) {
                out.emplace_back(s);
            } else {
                expressions(field.value, out);
            }
        }
    } else if (e.get(arr) == simdjson::SUCCESS) {
        for (auto x : arr) expressions(x, out);
    }
}

TEST(sof_suite, every_expression_parses) {
    fs::path dir = fs::path(HEADACHEMD_SHARED_DATA) / "sof-tests";
    if (!fs::is_directory(dir)) {
        // CI must have the suite; a developer machine may not.
        if (headachemd::test::in_ci()) FAIL() << dir << " is missing";
        GTEST_SKIP() << dir << " is missing";
    }
    std::size_t parsed = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".json") continue;
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        ASSERT_EQ(parser.load(entry.path().string()).get(root), simdjson::SUCCESS) << entry.path();
        simdjson::dom::array tests;
        ASSERT_EQ(root["tests"].get(tests), simdjson::SUCCESS) << entry.path();
        for (auto t : tests) {
            bool expect_error = false;
            if (t["expectError"].get(expect_error) == simdjson::SUCCESS && expect_error) continue;
            std::vector<std::string> exprs;
            expressions(t["view"].value(), exprs);
            for (const auto& x : exprs) {
                auto p = headachemd::views::parse(x);
                EXPECT_FALSE(p.error) << entry.path().filename() << ": " << x << " at " << p.error->offset
                                      << ": " << p.error->message;
                ++parsed;
            }
        }
    }
    EXPECT_GT(parsed, 100u);
}

}  // namespace
