// What the ingest view tests share (ingest_views_test,
// ingest_bare_views_test): headache.db and a pseudonymization key in a
// fresh directory, and ingest run into them with a [[view]] configured.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include "headachemd/ingest/ingest.hpp"
#include "store_test_support.hpp"
#include "test_support.hpp"

namespace headachemd::test {

struct ingest_fixture : ::testing::Test {
    temp_dir dir;
    // A test that reads the log lines replaces it with one on its own sink.
    std::shared_ptr<spdlog::logger> log =
        std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
    store::analytics_db db{dir / "headache.db"};
    store::pseudonym_key key{};

    // Ingest options with the one view `name`, its definition written to
    // <dir>/<name>.json.
    headachemd::ingest::options with_view(const std::string& name, const char* definition) {
        write_file(dir / (name + ".json"), definition);
        headachemd::ingest::options o;
        o.views.push_back({name, dir / (name + ".json")});
        return o;
    }
    headachemd::ingest::report ingest(const std::vector<std::filesystem::path>& inputs,
                                      const headachemd::ingest::options& o) {
        headachemd::ingest::ingester ing(db, key, o, log);
        ing.run(inputs);
        return ing.result();
    }
    std::vector<std::string> rows(const std::string& sql) { return query_rows(db.sql(), sql); }
};

}  // namespace headachemd::test
