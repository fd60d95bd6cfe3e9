// The ViewDefinition engine beyond the official suite: every refusal rule
// with the JSON path it names, the row shapes (cross products, null rows,
// stacked unions), typed cells, and the limits that protect the stack and
// memory from a hostile resource.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "headachemd/views/view.hpp"

namespace {

namespace v = headachemd::views;

// Setup helpers: a compiled view (the test fails if it is refused) and the
// refusal of a definition (nullopt if it compiles).
v::view compiled(const std::string& json) {
    auto r = v::compile(json);
    if (auto* e = std::get_if<v::compile_error>(&r)) {
        ADD_FAILURE() << "refused at " << e->json_path << ": " << e->message;
        return {};
    }
    return std::move(std::get<v::view>(r));
}

std::optional<v::compile_error> refusal(const std::string& json) {
    auto r = v::compile(json);
    if (auto* e = std::get_if<v::compile_error>(&r)) return *e;
    return std::nullopt;
}

struct parsed {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    explicit parsed(const std::string& json) { EXPECT_EQ(parser.parse(json).get(root), simdjson::SUCCESS); }
};

// A cell as short text: null, 1, 2.500000, true, 'x', {json}, [a,b].
std::string text(const v::scalar& s) {
    if (std::holds_alternative<std::monostate>(s)) return "null";
    if (const auto* b = std::get_if<bool>(&s)) return *b ? "true" : "false";
    if (const auto* i = std::get_if<std::int64_t>(&s)) return std::to_string(*i);
    if (const auto* d = std::get_if<double>(&s)) return std::to_string(*d);
    if (const auto* t = std::get_if<std::string>(&s)) return "'" + *t + "'";
    return std::get<v::json_text>(s).text;
}
std::string text(const v::cell& c) {
    if (const auto* list = std::get_if<std::vector<v::scalar>>(&c)) {
        std::string out = "[";
        for (const auto& s : *list) out += (out.size() > 1 ? "," : "") + text(s);
        return out + "]";
    }
    return std::visit(
        [](const auto& x) -> std::string {
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::vector<v::scalar>>) {
                return {};
            } else {
                return text(v::scalar{x});
            }
        },
        c);
}

std::vector<std::string> rows_of(const v::view& view, const std::string& resource) {
    parsed p(resource);
    auto r = v::evaluate(view, p.root);
    EXPECT_FALSE(r.error) << (r.error ? r.error->json_path + ": " + r.error->message : "");
    std::vector<std::string> out;
    for (const auto& row : r.rows) {
        std::string s;
        for (const auto& c : row) s += (s.empty() ? "" : "|") + text(c);
        out.push_back(s);
    }
    return out;
}

v::view_error eval_error(const v::view& view, const std::string& resource) {
    parsed p(resource);
    auto r = v::evaluate(view, p.root);
    EXPECT_TRUE(r.error);
    EXPECT_TRUE(r.rows.empty());
    return r.error.value_or(v::view_error{});
}

const std::string patient = R"j({"resourceType":"Patient","id":"p1","active":true,
  "name":[{"family":"A","given":["a1","a2"]},{"family":"B"}],
  "telecom":[{"system":"phone","value":"1"},{"system":"email","value":"e"}]})j";

// One definition per refusal rule, with the JSON path (and, inside an
// expression, the offset) the refusal must name.
struct refusal_case {
    const char* rule;
    std::string json;
    std::string path;
    std::optional<std::size_t> offset;
};

std::string view_with(const std::string& members) {
    return R"j({"resourceType":"ViewDefinition","resource":"Patient","status":"active",)j" + members + "}";
}
const std::string id_select = R"j("select":[{"column":[{"name":"id","path":"id"}]}])j";

// "select":[{"select":[{... {"column":[...]}]}]}, `levels` selects deep.
std::string nested_selects(std::size_t levels) {
    std::string s = R"j("select":[)j";
    for (std::size_t i = 1; i < levels; ++i) s += R"j({"select":[)j";
    s += R"j({"column":[{"name":"id","path":"id"}]})j";
    for (std::size_t i = 1; i < levels; ++i) s += "]}";
    return s + "]";
}

std::vector<refusal_case> refusal_cases() {
    return {
        {"not JSON", "{", "", {}},
        {"not an object", "[]", "", {}},
        {"resource missing", R"j({"select":[{"column":[{"name":"id","path":"id"}]}]})j", "resource", {}},
        {"resource not a type name", R"j({"resource":"patient",)j" + id_select + "}", "resource", {}},
        {"resource not a string", R"j({"resource":1,)j" + id_select + "}", "resource", {}},
        {"status unknown", R"j({"resource":"Patient","status":"final",)j" + id_select + "}", "status", {}},
        {"view name not SQL", view_with(R"j("name":"my-view",)j" + id_select), "name", {}},
        {"select missing", view_with(R"j("name":"v")j"), "select", {}},
        {"select empty", view_with(R"j("select":[])j"), "select", {}},
        {"select not an array", view_with(R"j("select":{})j"), "select", {}},
        {"select not an object", view_with(R"j("select":[1])j"), "select[0]", {}},
        {"column name not SQL",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id"},{"name":"1st","path":"id"}]}])j"),
         "select[0].column[1].name",
         {}},
        {"column name with a dash",
         view_with(R"j("select":[{"column":[{"name":"a-b","path":"id"}]}])j"),
         "select[0].column[0].name",
         {}},
        {"column name twice",
         view_with(
             R"j("select":[{"column":[{"name":"id","path":"id"}]},{"column":[{"name":"id","path":"id"}]}])j"),
         "select[1].column[0].name",
         {}},
        {"column without name",
         view_with(R"j("select":[{"column":[{"path":"id"}]}])j"),
         "select[0].column[0].name",
         {}},
        {"column without path",
         view_with(R"j("select":[{"column":[{"name":"id"}]}])j"),
         "select[0].column[0].path",
         {}},
        {"column path not a string",
         view_with(R"j("select":[{"column":[{"name":"id","path":true}]}])j"),
         "select[0].column[0].path",
         {}},
        {"column type not a FHIR type",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id","type":"strng"}]}])j"),
         "select[0].column[0].type",
         {}},
        {"selects nested too deep",
         view_with(nested_selects(v::max_select_depth + 1)),
         "select[0]" + std::string([] {
             std::string p;
             for (std::size_t i = 1; i <= v::max_select_depth; ++i) p += ".select[0]";
             return p;
         }()),
         {}},
        {"column type empty",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id","type":""}]}])j"),
         "select[0].column[0].type",
         {}},
        {"collection not boolean",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id","collection":"yes"}]}])j"),
         "select[0].column[0].collection",
         {}},
        {"unknown column member",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id","colection":true}]}])j"),
         "select[0].column[0].colection",
         {}},
        {"unknown select member",
         view_with(R"j("select":[{"colum":[{"name":"id","path":"id"}]}])j"),
         "select[0].colum",
         {}},
        {"FHIRPath that does not parse",
         view_with(R"j("select":[{"column":[{"name":"id","path":"id"},{"name":"x","path":"name.("}]}])j"),
         "select[0].column[1].path", 5},
        {"undefined constant",
         view_with(R"j("select":[{"column":[{"name":"x","path":"name.where(use = %nope)"}]}])j"),
         "select[0].column[0].path", 17},
        {"constant without value",
         view_with(R"j("constant":[{"name":"c"}],)j" + id_select),
         "constant[0]",
         {}},
        {"constant with two values",
         view_with(R"j("constant":[{"name":"c","valueString":"x","valueInteger":1}],)j" + id_select),
         "constant[0].valueInteger",
         {}},
        {"constant of a complex type",
         view_with(R"j("constant":[{"name":"c","valueQuantity":{"value":1}}],)j" + id_select),
         "constant[0].valueQuantity",
         {}},
        {"constant value of the wrong JSON kind",
         view_with(R"j("constant":[{"name":"c","valueString":{}}],)j" + id_select),
         "constant[0].valueString",
         {}},
        {"constant shadowing resource",
         view_with(R"j("constant":[{"name":"resource","valueString":"x"}],)j" + id_select),
         "constant[0].name",
         {}},
        {"constant name not SQL",
         view_with(R"j("constant":[{"name":"a b","valueString":"x"}],)j" + id_select),
         "constant[0].name",
         {}},
        {"constant twice",
         view_with(R"j("constant":[{"name":"c","valueString":"x"},{"name":"c","valueString":"y"}],)j" +
                   id_select),
         "constant[1].name",
         {}},
        {"forEach and forEachOrNull together",
         view_with(
             R"j("select":[{"forEach":"name","forEachOrNull":"name","column":[{"name":"f","path":"family"}]}])j"),
         "select[0]",
         {}},
        {"forEach and repeat together",
         view_with(
             R"j("select":[{"forEach":"name","repeat":["item"],"column":[{"name":"f","path":"family"}]}])j"),
         "select[0]",
         {}},
        {"forEach not a string", view_with(R"j("select":[{"forEach":1}])j"), "select[0].forEach", {}},
        {"forEach that does not parse", view_with(R"j("select":[{"forEach":"@@"}])j"), "select[0].forEach",
         0},
        {"repeat not an array", view_with(R"j("select":[{"repeat":"item"}])j"), "select[0].repeat", {}},
        {"repeat item not a string",
         view_with(R"j("select":[{"repeat":["item",2]}])j"),
         "select[0].repeat[1]",
         {}},
        {"unionAll names differ",
         view_with(
             R"j("select":[{"unionAll":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"b","path":"id"}]}]}])j"),
         "select[0].unionAll[1]",
         {}},
        {"unionAll order differs",
         view_with(
             R"j("select":[{"unionAll":[{"column":[{"name":"a","path":"id"},{"name":"b","path":"id"}]},{"column":[{"name":"b","path":"id"},{"name":"a","path":"id"}]}]}])j"),
         "select[0].unionAll[1]",
         {}},
        {"unionAll branch with an extra column",
         view_with(
             R"j("select":[{"unionAll":[{"column":[{"name":"a","path":"id"}]},{"column":[{"name":"a","path":"id"},{"name":"b","path":"id"}]}]}])j"),
         "select[0].unionAll[1]",
         {}},
        {"where without path",
         view_with(R"j("where":[{"description":"x"}],)j" + id_select),
         "where[0].path",
         {}},
        {"where with unknown member",
         view_with(R"j("where":[{"path":"active","expr":"x"}],)j" + id_select),
         "where[0].expr",
         {}},
        {"where that does not parse", view_with(R"j("where":[{"path":"active and"}],)j" + id_select),
         "where[0].path", 10},
    };
}

class view_refusal : public ::testing::TestWithParam<refusal_case> {};

TEST_P(view_refusal, names_the_path) {
    const auto& c = GetParam();
    auto e = refusal(c.json);
    ASSERT_TRUE(e) << c.rule << ": compiled";
    EXPECT_EQ(e->json_path, c.path) << c.rule << ": " << e->message;
    EXPECT_EQ(e->expr_offset, c.offset) << c.rule << ": " << e->message;
    EXPECT_FALSE(e->message.empty());
}

std::string rule_name(const ::testing::TestParamInfo<refusal_case>& param) {
    std::string s = param.param.rule;
    for (char& ch : s) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
    }
    return s;
}

INSTANTIATE_TEST_SUITE_P(rules, view_refusal, ::testing::ValuesIn(refusal_cases()), rule_name);

TEST(view_compile, accepts_a_full_definition_and_keeps_column_order_and_types) {
    auto view = compiled(view_with(R"j("name":"pt_names","constant":[{"name":"use","valueCode":"official"}],
      "where":[{"path":"active"}],
      "select":[{"column":[{"name":"id","path":"getResourceKey()","type":"string"}],
                 "select":[{"forEach":"name","column":[{"name":"family","path":"family","type":"string"},
                   {"name":"given","path":"given","type":"string","collection":true}]}]},
                {"unionAll":[{"column":[{"name":"tel","path":"telecom.first().value","type":"string"}]},
                             {"column":[{"name":"tel","path":"'none'","type":"string"}]}]}])j"));
    EXPECT_EQ(view.resource(), "Patient");
    EXPECT_EQ(view.name(), "pt_names");
    ASSERT_EQ(view.columns().size(), 4u);
    EXPECT_EQ(view.columns()[0].name, "id");
    EXPECT_EQ(view.columns()[1].name, "family");
    EXPECT_EQ(view.columns()[2].name, "given");
    EXPECT_TRUE(view.columns()[2].collection);
    EXPECT_FALSE(view.columns()[1].collection);
    EXPECT_EQ(view.columns()[3].name, "tel");
    EXPECT_EQ(view.columns()[3].type, "string");
}

TEST(view_compile, selects_nest_up_to_the_bound) {
    auto view = compiled(view_with(nested_selects(v::max_select_depth)));
    EXPECT_EQ(rows_of(view, patient), (std::vector<std::string>{"'p1'"}));
}

TEST(view_eval, nested_selects_give_the_cross_product) {
    auto view = compiled(view_with(R"j("select":[{"column":[{"name":"id","path":"id"}]},
        {"forEach":"name","column":[{"name":"family","path":"family"}]},
        {"forEach":"telecom","column":[{"name":"system","path":"system"}]}])j"));
    EXPECT_EQ(rows_of(view, patient), (std::vector<std::string>{"'p1'|'A'|'phone'", "'p1'|'A'|'email'",
                                                                "'p1'|'B'|'phone'", "'p1'|'B'|'email'"}));
}

TEST(view_eval, for_each_over_nothing_removes_the_row_and_for_each_or_null_keeps_a_null_row) {
    const std::string bare = R"j({"resourceType":"Patient","id":"p2"})j";
    auto inner = compiled(view_with(R"j("select":[{"column":[{"name":"id","path":"id"}]},
        {"forEach":"name","column":[{"name":"family","path":"family"}]}])j"));
    EXPECT_TRUE(rows_of(inner, bare).empty());
    auto outer = compiled(view_with(R"j("select":[{"column":[{"name":"id","path":"id"}]},
        {"forEachOrNull":"name","column":[{"name":"family","path":"family"},{"name":"i","path":"%rowIndex"}],
         "select":[{"forEach":"given","column":[{"name":"g","path":"$this"}]}]}])j"));
    EXPECT_EQ(rows_of(outer, bare), (std::vector<std::string>{"'p2'|null|0|null"}));
    EXPECT_EQ(rows_of(outer, patient), (std::vector<std::string>{"'p1'|'A'|0|'a1'", "'p1'|'A'|0|'a2'"}));
}

TEST(view_eval, union_all_stacks_its_branches) {
    auto view = compiled(view_with(R"j("select":[{"column":[{"name":"id","path":"id"}]},
        {"unionAll":[{"forEach":"name","column":[{"name":"v","path":"family"}]},
                     {"forEach":"telecom","column":[{"name":"v","path":"value"}]}]}])j"));
    EXPECT_EQ(rows_of(view, patient),
              (std::vector<std::string>{"'p1'|'A'", "'p1'|'B'", "'p1'|'1'", "'p1'|'e'"}));
}

TEST(view_eval, a_column_with_two_values_needs_collection_true) {
    auto single = compiled(view_with(
        R"j("select":[{"column":[{"name":"id","path":"id"},{"name":"f","path":"name.family"}]}])j"));
    auto e = eval_error(single, patient);
    EXPECT_EQ(e.json_path, "select[0].column[1].path");
    auto list = compiled(view_with(
        R"j("select":[{"column":[{"name":"f","path":"name.family","collection":true},
                                 {"name":"n","path":"name.suffix","collection":true}]}])j"));
    EXPECT_EQ(rows_of(list, patient), (std::vector<std::string>{"['A','B']|[]"}));
}

TEST(view_eval, where_filters_and_refuses_a_non_boolean) {
    auto active = compiled(view_with(R"j("where":[{"path":"active"}],)j" + id_select));
    EXPECT_EQ(rows_of(active, patient), (std::vector<std::string>{"'p1'"}));
    EXPECT_TRUE(rows_of(active, R"j({"resourceType":"Patient","id":"p3","active":false})j").empty());
    EXPECT_TRUE(rows_of(active, R"j({"resourceType":"Patient","id":"p3"})j").empty());
    auto family =
        compiled(view_with(R"j("where":[{"path":"active"},{"path":"name.family.first()"}],)j" + id_select));
    EXPECT_EQ(eval_error(family, patient).json_path, "where[1].path");
}

TEST(view_eval, another_resource_type_gives_no_rows) {
    auto view = compiled(view_with(id_select));
    EXPECT_TRUE(rows_of(view, R"j({"resourceType":"Observation","id":"o1"})j").empty());
}

TEST(view_eval, cells_keep_their_types_and_variables_are_defined) {
    auto view =
        compiled(view_with(R"j("constant":[{"name":"n","valueInteger":7},{"name":"d","valueDecimal":2.5}],
      "select":[{"forEach":"name","column":[
        {"name":"active","path":"%resource.active"},{"name":"root","path":"%rootResource.id"},
        {"name":"n","path":"%n"},{"name":"d","path":"%d"},{"name":"i","path":"%rowIndex"},
        {"name":"no_given","path":"$this.given.exists().not()"}]}])j"));
    EXPECT_EQ(rows_of(view, patient),
              (std::vector<std::string>{"true|'p1'|7|2.500000|0|false", "true|'p1'|7|2.500000|1|true"}));
    auto complex =
        compiled(view_with(R"j("select":[{"column":[{"name":"first_name","path":"name.first()"}]}])j"));
    EXPECT_EQ(rows_of(complex, patient),
              (std::vector<std::string>{R"j({"family":"A","given":["a1","a2"]})j"}));
}

TEST(view_eval, the_plan_outlives_the_definition_text) {
    std::optional<v::view> view;
    {
        std::string text = view_with(R"j("constant":[{"name":"c","valueString":"kept"}],
            "select":[{"column":[{"name":"c","path":"%c"}]}])j");
        auto r = v::compile(text);
        ASSERT_TRUE(std::holds_alternative<v::view>(r));
        view = std::move(std::get<v::view>(r));
        text.assign(text.size(), 'x');  // the plan must not point into it
    }
    EXPECT_EQ(rows_of(*view, patient), (std::vector<std::string>{"'kept'"}));
}

// {"item":[{"linkId":"1","item":[{"linkId":"2",...}]}]}, `levels` deep.
std::string nested_items(std::size_t levels) {
    std::string s = R"j({"resourceType":"QuestionnaireResponse","id":"q")j";
    for (std::size_t i = 0; i < levels; ++i) s += R"j(,"item":[{"linkId":")j" + std::to_string(i + 1) + "\"";
    for (std::size_t i = 0; i < levels; ++i) s += "}]";
    return s + "}";
}

const std::string repeat_view = R"j({"resource":"QuestionnaireResponse",
    "select":[{"repeat":["item"],"column":[{"name":"link","path":"linkId"},{"name":"i","path":"%rowIndex"}]}]})j";

TEST(view_eval, repeat_walks_every_level_in_order) {
    auto view = compiled(repeat_view);
    EXPECT_EQ(rows_of(view, nested_items(3)), (std::vector<std::string>{"'1'|0", "'2'|1", "'3'|2"}));
    // At the bound itself every level still gives its row.
    EXPECT_EQ(rows_of(view, nested_items(v::max_repeat_depth)).size(), v::max_repeat_depth);
}

TEST(view_eval, repeat_deeper_than_the_bound_is_an_error_not_a_stack_overflow) {
    auto view = compiled(repeat_view);
    auto e = eval_error(view, nested_items(v::max_repeat_depth + 1));
    EXPECT_EQ(e.json_path, "select[0].repeat[0]");
    // A hostile resource far deeper than any real one: refused the same way.
    EXPECT_EQ(eval_error(view, nested_items(500)).json_path, "select[0].repeat[0]");
    // A path that never gets smaller ($this) would recurse forever.
    auto self = compiled(
        R"j({"resource":"Patient","select":[{"repeat":["$this"],"column":[{"name":"id","path":"id"}]}]})j");
    EXPECT_EQ(eval_error(self, patient).json_path, "select[0].repeat[0]");
}

TEST(view_eval, rows_per_resource_are_bounded) {
    // 400 names x 400 telecoms = 160,000 rows, over max_rows_per_resource.
    std::string names, telecoms;
    for (int i = 0; i < 400; ++i) {
        names += std::string(i ? "," : "") + R"j({"family":"f"})j";
        telecoms += std::string(i ? "," : "") + R"j({"value":"t"})j";
    }
    std::string big =
        R"j({"resourceType":"Patient","id":"p","name":[)j" + names + R"j(],"telecom":[)j" + telecoms + "]}";
    auto view = compiled(view_with(R"j("select":[{"forEach":"name","column":[{"name":"f","path":"family"}]},
        {"forEach":"telecom","column":[{"name":"t","path":"value"}]}])j"));
    auto e = eval_error(view, big);
    EXPECT_NE(e.message.find("rows"), std::string::npos) << e.message;
}

}  // namespace
