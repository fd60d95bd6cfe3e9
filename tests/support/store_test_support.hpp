// What the store's view tests share (bare_resource_test, view_tables_test,
// view_backfill_test) and the ingest view tests reuse: query results as
// text rows, a ViewDefinition file loaded as the config would load it, and
// a record that carries its JSON as commit_page needs it for the views.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/normalize/records.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/view_tables.hpp"
#include "test_support.hpp"

namespace headachemd::test {

// Every row of `sql` as "col|col|…", NULL spelled NULL.
inline std::vector<std::string> query_rows(SQLite::Database& db, const std::string& sql) {
    std::vector<std::string> out;
    SQLite::Statement q(db, sql);
    while (q.executeStep()) {
        std::string line;
        for (int i = 0; i < q.getColumnCount(); ++i) {
            if (i) line += "|";
            line += q.getColumn(i).isNull() ? "NULL" : q.getColumn(i).getString();
        }
        out.push_back(line);
    }
    return out;
}

// `json` written to <dir>/<name>.json and loaded as the [[view]] `name`,
// under [privacy] identifiers = "none" (key columns then need a mapping to
// patient keys). A load error fails the test.
inline std::vector<store::loaded_view> load_view(const std::filesystem::path& dir, const std::string& name,
                                                 const std::string& json) {
    write_file(dir / (name + ".json"), json);
    const std::vector<store::view_file> files{{name, dir / (name + ".json")}};
    auto loaded = store::load_views(files, headachemd::views::privacy::none);
    EXPECT_TRUE(loaded.errors.empty()) << (loaded.errors.empty() ? "" : loaded.errors[0]);
    return std::move(loaded.views);
}

// An Observation of patient p1 whose JSON the views read; its raw_hash
// changes with the JSON, as the normalizer's would.
inline normalize::record observation_with_json(const std::string& id, const std::string& json) {
    normalize::observation_record o;
    o.h.id = id;
    o.h.patient_ref = "p1";
    o.h.raw_hash = std::to_string(std::hash<std::string>{}(json));
    o.h.raw = json;
    return o;
}

// headache.db in a fresh directory, and the page hooks that give every
// record the patient key `key`.
struct view_store_fixture : ::testing::Test {
    temp_dir dir;
    store::analytics_db db{dir / "headache.db"};
    std::string key = "pk1";
    store::page_hooks hooks;

    view_store_fixture() {
        hooks.patient_key = [this](const normalize::record&) -> const std::string& { return key; };
    }

    std::vector<store::loaded_view> load(const std::string& name, const std::string& json) {
        return load_view(dir.path(), name, json);
    }
    std::vector<std::string> rows(const std::string& sql) { return query_rows(db.sql(), sql); }
};

}  // namespace headachemd::test
