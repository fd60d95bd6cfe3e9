// view_runner: a resource's rows, a Bundle's entries, and a failing
// resource counted and named without its data.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "headachemd/views/render.hpp"
#include "headachemd/views/run.hpp"

namespace {

namespace v = headachemd::views;

struct collected {
    std::vector<std::string> rows, problems;
};

void run(std::string_view definition, const std::string& json, collected& out) {
    auto compiled = v::compile(definition);
    ASSERT_TRUE(std::holds_alternative<v::view>(compiled));
    const v::view& plan = std::get<v::view>(compiled);
    v::view_runner runner(
        plan, {}, [&out](const v::row& r) { out.rows.push_back(v::csv_record(r)); },
        [&out](const std::string& where, std::string_view m) {
            out.problems.push_back(where + ": " + std::string(m));
        });
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS);
    runner.document(root, json, "in.json");
    EXPECT_EQ(runner.problems(), static_cast<int>(out.problems.size()));
}

TEST(view_runner, a_bundle_gives_the_rows_of_its_entries) {
    collected c;
    run(R"({"resource":"Observation","select":[{"column":[{"name":"id","path":"id"}]}]})",
        R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a"}},
            {"fullUrl":"x"},{"resource":{"resourceType":"Condition","id":"b"}},
            {"resource":{"resourceType":"Observation","id":"c"}}]})",
        c);
    EXPECT_EQ(c.rows, (std::vector<std::string>{"a\r\n", "c\r\n"}));
    EXPECT_TRUE(c.problems.empty());
}

TEST(view_runner, a_failing_entry_is_named_and_the_others_still_give_rows) {
    collected c;
    // Two codings where the column allows one value.
    run(R"({"resource":"Observation","select":[{"column":[{"name":"c","path":"code.coding.code"}]}]})",
        R"({"resourceType":"Bundle","entry":[
            {"resource":{"resourceType":"Observation","code":{"coding":[{"code":"SECRET1"},{"code":"SECRET2"}]}}},
            {"resource":{"resourceType":"Observation","code":{"coding":[{"code":"k"}]}}}]})",
        c);
    EXPECT_EQ(c.rows, std::vector<std::string>{"k\r\n"});
    ASSERT_EQ(c.problems.size(), 1u);
    EXPECT_EQ(c.problems[0].rfind("in.json entry[0]: select[0].column[0].path: ", 0), 0u) << c.problems[0];
    EXPECT_EQ(c.problems[0].find("SECRET"), std::string::npos);
}

}  // namespace
