// The one walker of FHIR files (ingest and `view run`): which files, in
// which order, and what a reader reports for each document.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "headachemd/ingest/fhir_files.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace in = headachemd::ingest;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

TEST(fhir_files, kind_by_extension_ignoring_case) {
    EXPECT_EQ(in::kind_of("a.json"), in::file_kind::json);
    EXPECT_EQ(in::kind_of("A.JSON"), in::file_kind::json);
    EXPECT_EQ(in::kind_of("b.ndjson"), in::file_kind::ndjson);
    EXPECT_EQ(in::kind_of("b.JsonL"), in::file_kind::ndjson);
    EXPECT_EQ(in::kind_of("c.txt"), in::file_kind::other);
    EXPECT_EQ(in::kind_of("json"), in::file_kind::other);
}

TEST(fhir_files, a_directory_in_path_order_without_hidden_files) {
    temp_dir d;
    fs::create_directories(d / "z" / "deep");
    fs::create_directories(d / ".git");
    write_file(d / "z" / "deep" / "b.ndjson", "{}\n");
    write_file(d / "a.json", "{}");
    write_file(d / "notes.txt", "x");
    write_file(d / ".hidden.json", "{}");
    write_file(d / ".git" / "c.json", "{}");
    const auto w = in::walk_input(d.path());
    EXPECT_FALSE(w.missing);
    EXPECT_EQ(w.directory_error, "");
    ASSERT_EQ(w.files.size(), 3u);
    EXPECT_EQ(w.files[0].path, d / "a.json");
    EXPECT_EQ(w.files[0].kind, in::file_kind::json);
    EXPECT_EQ(w.files[0].size, 2u);
    EXPECT_EQ(w.files[1].path, d / "notes.txt");
    EXPECT_EQ(w.files[1].kind, in::file_kind::other);  // the caller decides
    EXPECT_EQ(w.files[2].path, d / "z" / "deep" / "b.ndjson");
    for (const auto& f : w.files) EXPECT_TRUE(f.in_directory) << f.path;
}

TEST(fhir_files, a_named_file_and_a_missing_one) {
    temp_dir d;
    write_file(d / "x.txt", "{}");
    const auto named = in::walk_input(d / "x.txt");
    ASSERT_EQ(named.files.size(), 1u);
    EXPECT_FALSE(named.files[0].in_directory);
    EXPECT_EQ(named.files[0].kind, in::file_kind::other);
    const auto missing = in::walk_input(d / "nope");
    EXPECT_TRUE(missing.missing);
    EXPECT_TRUE(missing.files.empty());
}

struct seen {
    std::vector<std::string> docs, problems;
};

seen read(const in::found_file& f) {
    seen s;
    simdjson::dom::parser parser;
    in::read_documents(
        f, parser,
        [&s](simdjson::dom::element, std::string_view text, const std::string& where) {
            s.docs.push_back(where + "=" + std::string(text));
        },
        [&s](const std::string& where, std::string_view message) {
            s.problems.push_back(where + ": " + std::string(message));
        });
    return s;
}

TEST(fhir_files, ndjson_lines_are_numbered_and_blank_lines_skipped) {
    temp_dir d;
    write_file(d / "r.ndjson", "{\"a\":1}\n\n  \n{\"a\":\n{\"b\":2}\r\n");
    const auto s = read({d / "r.ndjson", in::file_kind::ndjson, 0, false});
    const std::string p = (d / "r.ndjson").string();
    EXPECT_EQ(s.docs, (std::vector<std::string>{p + ":1={\"a\":1}", p + ":5={\"b\":2}"}));
    ASSERT_EQ(s.problems.size(), 1u);
    EXPECT_EQ(s.problems[0].rfind(p + ":4: ", 0), 0u) << s.problems[0];
}

TEST(fhir_files, a_json_file_is_one_document_and_a_broken_one_a_problem) {
    temp_dir d;
    write_file(d / "ok.json", "{\"resourceType\":\"Observation\"}");
    write_file(d / "bad.json", "{\"resourceType\":");
    const auto ok = read({d / "ok.json", in::file_kind::json, 0, false});
    EXPECT_EQ(ok.docs,
              std::vector<std::string>{(d / "ok.json").string() + "={\"resourceType\":\"Observation\"}"});
    EXPECT_TRUE(ok.problems.empty());
    const auto bad = read({d / "bad.json", in::file_kind::json, 0, false});
    EXPECT_TRUE(bad.docs.empty());
    ASSERT_EQ(bad.problems.size(), 1u);
    EXPECT_EQ(bad.problems[0].rfind((d / "bad.json").string() + ": ", 0), 0u);
    const auto gone = read({d / "gone.json", in::file_kind::json, 0, false});
    EXPECT_EQ(gone.problems.size(), 1u);
}

}  // namespace
