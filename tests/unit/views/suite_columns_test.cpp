// The official suite's FHIRPath cases (fhirpath.json, where.json, logic.json,
// fhirpath_numbers.json, constant_types.json and the fn_*.json files that
// need no boundary function: 50 cases, every case of each file), run with
// a throwaway flat evaluator: one row per resource of the view's type, kept
// when every `where` path is true, one value per column. These views use
// only flat select/column, so this tests the FHIRPath layer against the
// suite's exact rows before the ViewDefinition engine exists. It is not the
// engine: issue 16, item 2 replaces it with the full suite.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "headachemd/views/fhirpath.hpp"

namespace {

namespace fs = std::filesystem;
namespace v = headachemd::views;
using simdjson::dom::element;

std::string render(const v::item& x) {
    if (const auto* s = std::get_if<std::string>(&x)) return "\"" + *s + "\"";
    if (const auto* n = std::get_if<std::int64_t>(&x)) return std::to_string(*n);
    if (const auto* d = std::get_if<double>(&x)) {
        std::string t = std::to_string(*d);
        t.erase(t.find_last_not_of('0') + 1);
        if (!t.empty() && t.back() == '.') t.pop_back();
        return t;
    }
    if (const auto* b = std::get_if<bool>(&x)) return *b ? "true" : "false";
    if (const auto* dt = std::get_if<v::date_value>(&x)) return "\"" + dt->text + "\"";
    return simdjson::minify(std::get<element>(x));
}

// An expected cell in the same notation: scalars through the same
// rendering, arrays item by item, null as null.
std::string render_expected(element e) {
    if (e.is_null()) return "null";
    simdjson::dom::array arr;
    if (e.get(arr) == simdjson::SUCCESS) {
        std::string out = "[";
        for (element x : arr) out += (out.size() > 1 ? "," : "") + render_expected(x);
        return out + "]";
    }
    std::string_view s;
    std::int64_t i = 0;
    double d = 0;
    bool b = false;
    if (e.get(s) == simdjson::SUCCESS) return render(v::item{std::string(s)});
    if (e.get(i) == simdjson::SUCCESS) return render(v::item{i});
    if (e.get(d) == simdjson::SUCCESS) return render(v::item{d});
    if (e.get(b) == simdjson::SUCCESS) return render(v::item{b});
    return simdjson::minify(e);
}

// The view's `constant` entries: name plus one value[x] (ViewDefinition
// constant), as FHIRPath items.
v::constant_map constants_of(element view) {
    v::constant_map out;
    simdjson::dom::array list;
    if (view["constant"].get(list) != simdjson::SUCCESS) return out;
    for (element c : list) {
        std::string_view name;
        EXPECT_EQ(c["name"].get(name), simdjson::SUCCESS);
        for (auto field : c.get_object()) {
            if (!field.key.starts_with("value")) continue;
            std::string_view s;
            std::int64_t i = 0;
            double d = 0;
            bool b = false;
            v::item x = field.value;
            if (field.value.get(s) == simdjson::SUCCESS) {
                x = std::string(s);
            } else if (field.value.get(i) == simdjson::SUCCESS) {
                x = i;
            } else if (field.value.get(d) == simdjson::SUCCESS) {
                x = d;
            } else if (field.value.get(b) == simdjson::SUCCESS) {
                x = b;
            }
            out[std::string(name)] = {x};
        }
    }
    return out;
}

std::string eval_text(const std::string& expr, element resource, bool collection, std::string& error,
                      const v::constant_map& constants) {
    auto p = v::parse(expr);
    if (p.error) {
        error = expr + ": parse error at " + std::to_string(p.error->offset);
        return {};
    }
    auto r = v::evaluate(*p.ast, {resource}, constants);
    if (r.error) {
        error = expr + ": " + r.error->message;
        return {};
    }
    if (collection) {
        std::string out = "[";
        for (const auto& x : r.value) out += (out.size() > 1 ? "," : "") + render(x);
        return out + "]";
    }
    if (r.value.empty()) return "null";
    if (r.value.size() > 1) {
        error = expr + ": more than one value in a non-collection column";
        return {};
    }
    return render(r.value[0]);
}

// Rows as text, "name=value;..." in column order, one string per row.
std::vector<std::string> run_view(element view, simdjson::dom::array resources, std::string& error) {
    std::string_view type;
    EXPECT_EQ(view["resource"].get(type), simdjson::SUCCESS);
    std::vector<std::string> rows;
    v::constant_map constants = constants_of(view);
    for (element res : resources) {
        std::string_view rt;
        if (res["resourceType"].get(rt) != simdjson::SUCCESS || rt != type) continue;
        bool keep = true;
        simdjson::dom::array wheres;
        if (view["where"].get(wheres) == simdjson::SUCCESS) {
            for (element w : wheres) {
                std::string_view path;
                EXPECT_EQ(w["path"].get(path), simdjson::SUCCESS);
                keep = keep && eval_text(std::string(path), res, false, error, constants) == "true";
            }
        }
        if (!keep) continue;
        std::string row;
        for (element sel : view["select"].get_array()) {
            for (element col : sel["column"].get_array()) {
                std::string_view name, path;
                bool collection = false;
                EXPECT_EQ(col["name"].get(name), simdjson::SUCCESS);
                EXPECT_EQ(col["path"].get(path), simdjson::SUCCESS);
                // Absent means false (ViewDefinition column.collection).
                if (col["collection"].get(collection) != simdjson::SUCCESS) collection = false;
                row += std::string(name) + "=" +
                       eval_text(std::string(path), res, collection, error, constants) + ";";
            }
        }
        rows.push_back(row);
    }
    return rows;
}

std::vector<std::string> expected_rows(element test, element view) {
    std::vector<std::string> rows;
    for (element want : test["expect"].get_array()) {
        std::string row;
        // In the view's column order: the expected objects list the same names.
        for (element sel : view["select"].get_array()) {
            for (element col : sel["column"].get_array()) {
                std::string_view name;
                EXPECT_EQ(col["name"].get(name), simdjson::SUCCESS);
                element cell;
                std::string text =
                    want[name].get(cell) == simdjson::SUCCESS ? render_expected(cell) : "<missing>";
                row += std::string(name) + "=" + text + ";";
            }
        }
        rows.push_back(row);
    }
    return rows;
}

class sof_columns : public ::testing::TestWithParam<const char*> {};

TEST_P(sof_columns, rows_match) {
    fs::path file = fs::path(HEADACHEMD_SHARED_DATA) / "sof-tests" / GetParam();
    if (!fs::exists(file)) {
        if (std::getenv("CI") != nullptr) FAIL() << file << " is missing";
        GTEST_SKIP() << file << " is missing";
    }
    simdjson::dom::parser parser;
    element root;
    ASSERT_EQ(parser.load(file.string()).get(root), simdjson::SUCCESS);
    simdjson::dom::array resources = root["resources"].get_array();
    for (element test : root["tests"].get_array()) {
        std::string_view title;
        ASSERT_EQ(test["title"].get(title), simdjson::SUCCESS);
        SCOPED_TRACE(std::string(title));
        element view = test["view"];
        std::string error;
        auto got = run_view(view, resources, error);
        EXPECT_EQ(error, "");
        EXPECT_EQ(got, expected_rows(test, view));
    }
}

INSTANTIATE_TEST_SUITE_P(flat_fhirpath_cases, sof_columns,
                         ::testing::Values("fhirpath.json", "where.json", "logic.json", "fn_empty.json",
                                           "fn_first.json", "fn_join.json", "fn_oftype.json",
                                           "fn_extension.json", "fhirpath_numbers.json",
                                           "constant_types.json", "fn_reference_keys.json"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                             std::string n = p.param;
                             return n.substr(0, n.find('.'));
                         });

}  // namespace
