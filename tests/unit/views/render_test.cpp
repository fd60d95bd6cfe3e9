// The text forms of `view run`, byte for byte: RFC 4180 CSV and NDJSON.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "headachemd/views/render.hpp"

namespace {

namespace v = headachemd::views;

const std::vector<v::column_info> columns{{"a", "", false}, {"b", "", false}, {"c", "", true}};

TEST(view_render, csv_header_and_plain_record) {
    EXPECT_EQ(v::csv_header(columns), "a,b,c\r\n");
    v::row r{std::string("x"), std::int64_t{-7}, std::vector<v::scalar>{std::string("p"), std::int64_t{1}}};
    EXPECT_EQ(v::csv_record(r), "x,-7,\"[\"\"p\"\",1]\"\r\n");
}

TEST(view_render, csv_quotes_commas_quotes_and_line_breaks) {
    v::row r{std::string("a,b"), std::string("say \"hi\""), std::string("l1\r\nl2")};
    EXPECT_EQ(v::csv_record(r), "\"a,b\",\"say \"\"hi\"\"\",\"l1\r\nl2\"\r\n");
}

TEST(view_render, csv_nulls_booleans_numbers_and_json) {
    v::row r{std::monostate{},
             true,
             2.5,
             v::json_text{"{\"v\":1}"},
             std::numeric_limits<double>::infinity(),
             std::vector<v::scalar>{}};
    EXPECT_EQ(v::csv_record(r), ",true,2.5,\"{\"\"v\"\":1}\",,[]\r\n");
}

TEST(view_render, ndjson_record_in_column_order) {
    v::row r{std::string("q\"\\\n\x01"), std::monostate{},
             std::vector<v::scalar>{v::json_text{"{\"x\":[1]}"}, false, 0.1, std::monostate{}}};
    EXPECT_EQ(v::ndjson_record(columns, r),
              "{\"a\":\"q\\\"\\\\\\n\\u0001\",\"b\":null,\"c\":[{\"x\":[1]},false,0.1,null]}\n");
}

TEST(view_render, ndjson_non_finite_number_is_null) {
    std::vector<v::column_info> one{{"n", "", false}};
    EXPECT_EQ(v::ndjson_record(one, v::row{std::numeric_limits<double>::quiet_NaN()}), "{\"n\":null}\n");
    EXPECT_EQ(v::ndjson_record(one, v::row{std::int64_t{9007199254740993}}), "{\"n\":9007199254740993}\n");
}

}  // namespace
