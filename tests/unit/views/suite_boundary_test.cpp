// The official suite's fn_boundary.json (8 cases) against the FHIRPath layer
// alone, with exact values: every column path of every case evaluated on
// every resource of the view's type, with the file's text as the
// source_text (a decimal's precision is its JSON digits). A decimal cell must
// equal the expected JSON number as a double, a date/time cell its text,
// and an empty result a null. These views are flat (one select of columns,
// no where), so no engine is needed; the sof suite runner replaces this
// file when the ViewDefinition engine lands (issue 16, item 2).
#include <gtest/gtest.h>

#include <simdjson.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "headachemd/views/fhirpath.hpp"

namespace {

namespace fs = std::filesystem;
namespace v = headachemd::views;
using simdjson::dom::element;

// Doubles with 17 significant digits, so two cells are equal only when the
// doubles are.
std::string number(double d) {
    std::array<char, 40> buf{};
    int n = std::snprintf(buf.data(), buf.size(), "%.17g", d);
    return "number:" + std::string(buf.data(), static_cast<std::size_t>(n));
}

// A result as the expected cell's JSON: null, a number or a string.
std::string cell(const v::collection& c) {
    if (c.empty()) return "null";
    if (c.size() > 1) return "<" + std::to_string(c.size()) + " values>";
    if (const auto* d = std::get_if<double>(&c[0])) return number(*d);
    if (const auto* t = std::get_if<v::date_value>(&c[0])) return "string:" + t->text;
    if (const auto* s = std::get_if<std::string>(&c[0])) return "string:" + *s;
    return "<other>";
}

std::string expected_cell(element e) {
    double d = 0;
    std::string_view s;
    if (e.is_null()) return "null";
    if (e.get(d) == simdjson::SUCCESS) return number(d);
    if (e.get(s) == simdjson::SUCCESS) return "string:" + std::string(s);
    return "<unexpected " + std::string(simdjson::minify(e)) + ">";
}

TEST(sof_boundary, fn_boundary_json_exact) {
    fs::path file = fs::path(HEADACHEMD_SHARED_DATA) / "sof-tests" / "fn_boundary.json";
    if (!fs::exists(file)) {
        if (std::getenv("CI") != nullptr) FAIL() << file << " is missing";
        GTEST_SKIP() << file << " is missing";
    }
    simdjson::padded_string text;
    ASSERT_EQ(simdjson::padded_string::load(file.string()).get(text), simdjson::SUCCESS);
    simdjson::dom::parser parser;
    element root;
    ASSERT_EQ(parser.parse(text).get(root), simdjson::SUCCESS);
    v::source_text source{root, std::string_view(text)};
    int cases = 0;
    for (element test : root["tests"].get_array()) {
        std::string_view title, type;
        ASSERT_EQ(test["title"].get(title), simdjson::SUCCESS);
        SCOPED_TRACE(std::string(title));
        element view = test["view"];
        ASSERT_EQ(view["resource"].get(type), simdjson::SUCCESS);
        simdjson::dom::array expect = test["expect"].get_array();
        std::size_t row = 0;
        for (element res : root["resources"].get_array()) {
            std::string_view rt;
            if (res["resourceType"].get(rt) != simdjson::SUCCESS || rt != type) continue;
            ASSERT_LT(row, expect.size());
            element want = expect.at(row++).value();
            for (element col : view["select"].at(0)["column"].get_array()) {
                std::string_view name, path;
                ASSERT_EQ(col["name"].get(name), simdjson::SUCCESS);
                ASSERT_EQ(col["path"].get(path), simdjson::SUCCESS);
                auto p = v::parse(path);
                ASSERT_FALSE(p.error) << path;
                auto r = v::evaluate(*p.ast, {res}, {}, &source);
                ASSERT_FALSE(r.error) << path << ": " << r.error->message;
                // id columns come back as strings; the rest as the suite's types.
                EXPECT_EQ(cell(r.value), expected_cell(want[name].value())) << path;
            }
        }
        EXPECT_EQ(row, expect.size());
        ++cases;
    }
    EXPECT_EQ(cases, 8);
}

}  // namespace
