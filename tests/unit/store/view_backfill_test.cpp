// Back-fill of a pending materialized view from resource_raw (issue 16 item
// 3): the rows apply() would have written, from the stored JSON, in bounded
// and resumable write transactions.
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/view_tables.hpp"
#include "store_test_support.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::observation_with_json;
using headachemd::test::temp_dir;

// One row per coding, with a key column: exercises forEach, collections,
// decimals and the patient-key mapping at once.
constexpr const char* codes_view = R"j({
  "resourceType": "ViewDefinition", "resource": "Observation", "status": "active",
  "select": [
    {"column": [{"name": "obs_id", "path": "id", "type": "id"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                {"name": "categories", "path": "category.coding.code", "type": "code", "collection": true}]},
    {"forEach": "code.coding",
     "column": [{"name": "code", "path": "code", "type": "code"}]}
  ]})j";

std::string observation_json(const std::string& id, const std::string& patient, double value,
                             const std::vector<std::string>& codes) {
    std::string codings;
    for (const auto& c : codes)
        codings +=
            std::string(codings.empty() ? "" : ",") + R"({"system":"http://loinc.org","code":")" + c + "\"}";
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","subject":{"reference":"Patient/)" + patient +
           R"("},"category":[{"coding":[{"code":"vital-signs"}]}],"code":{"coding":[)" + codings +
           R"(]},"valueQuantity":{"value":)" + std::to_string(value) + "}}";
}

// Eleven observations of two patients and two sources' worth of shapes.
std::vector<nz::record> observations() {
    std::vector<nz::record> out;
    for (int i = 0; i < 11; ++i) {
        const std::string id = "o" + std::to_string(10 + i);
        std::vector<std::string> codes{"c" + std::to_string(i)};
        if (i % 3 == 0) codes.push_back("d" + std::to_string(i));
        out.push_back(
            observation_with_json(id, observation_json(id, i % 2 ? "fhir-1" : "fhir-2", 1.5 + i, codes)));
    }
    return out;
}

// A database with its writer, the key of its records and the view's mapping.
struct store_under_test {
    explicit store_under_test(const std::filesystem::path& file, bool store_raw = true)
        // "minimal": the only rule under which resource_raw may be kept
        : db(file), writer(db, store_raw, st::identity_policy{{}, true}) {
        hooks.patient_key = [this](const nz::record&) -> const std::string& { return key; };
        hooks.view_patient_key = [](std::string_view id) { return mapped("ehr", id); };
    }
    static std::string mapped(std::string_view source, std::string_view id) {
        return "key-of-" + std::string(source) + "/" + std::string(id);
    }
    st::analytics_db db;
    st::resource_writer writer;
    std::string key = "pk1";
    st::page_hooks hooks;
};

const st::source_key_mapper mapper = [](std::string_view source, std::string_view id) {
    return store_under_test::mapped(source, id);
};

struct ViewBackfill : ::testing::Test {
    temp_dir dir;

    // The view "codes", under "none": key columns must be mapped to patient keys.
    std::vector<st::loaded_view> load(const std::string& json = codes_view) {
        return headachemd::test::load_view(dir.path(), "codes", json);
    }

    static std::vector<std::string> rows(st::analytics_db& db, const std::string& sql) {
        return headachemd::test::query_rows(db.sql(), sql);
    }

    // Every column of the view, bookkeeping included, in a fixed order.
    static std::vector<std::string> table(st::analytics_db& db) {
        return rows(db, "SELECT * FROM view_codes ORDER BY _source, _resource_id, code");
    }

    static std::string definition(st::analytics_db& db, const std::string& columns) {
        const auto r = rows(db, "SELECT " + columns + " FROM view_definition WHERE name = 'codes'");
        return r.empty() ? "(none)" : r[0];
    }

    // The reference: the view existed before the pages, so apply() wrote
    // every row.
    std::vector<std::string> applied_from_the_start(const std::vector<nz::record>& page) {
        store_under_test s(dir / "reference.db");
        st::view_tables views(s.db, load(), "t0");
        s.hooks.views = &views;
        st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
        return table(s.db);
    }
};

TEST_F(ViewBackfill, FillsExactlyTheRowsApplyWouldHaveWrittenAndCompletesTheView) {
    // Setup: resources stored with their JSON, then the view is configured
    const auto page = observations();
    const auto expected = applied_from_the_start(page);
    store_under_test s(dir / "headache.db");
    st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
    st::view_tables views(s.db, load(), "t2");
    ASSERT_EQ(definition(s.db, "backfill_state"), "pending");
    ASSERT_TRUE(table(s.db).empty());
    // Run: batches of 4 resources: 3 transactions over the JSON frames, and
    // one that finds no stored resource without JSON (schema 12)
    int batches = 0;
    const auto results = views.backfill("t3", mapper, st::backfill_options{4, [&batches] { ++batches; }});
    // Check
    EXPECT_EQ(batches, 4);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].resources, 11);
    EXPECT_EQ(results[0].missing_raw, 0);
    EXPECT_TRUE(results[0].complete);
    EXPECT_EQ(expected.size(), 15u);  // 11 + 4 second codings
    EXPECT_EQ(table(s.db), expected);
    EXPECT_EQ(definition(s.db, "backfill_state, backfilled_at, backfill_missing_raw, backfill_after_source"),
              "complete|t3|0|NULL");
    EXPECT_TRUE(views.take_failures().empty());
    // A complete view is not back-filled again, and no longer evaluates unchanged resources
    EXPECT_TRUE(views.backfill("t4", mapper).empty());
}

TEST_F(ViewBackfill, KeyColumnsHoldThePatientKeyAndTheStoredPatientKeyIsKept) {
    // Setup
    store_under_test s(dir / "headache.db");
    s.key = "the-stored-key";
    st::commit_page(
        s.db, s.writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "fhir-77", 1, {"a"}))},
        "ehr", "t1", s.hooks);
    st::view_tables views(s.db, load(), "t2");
    // Run
    views.backfill("t3", mapper);
    // Check: the key column is the mapped key of (source, FHIR id), never the FHIR id
    EXPECT_EQ(
        rows(s.db, "SELECT patient, _patient_key, _source, _resource_type, _resource_id FROM view_codes"),
        (std::vector<std::string>{"key-of-ehr/fhir-77|the-stored-key|ehr|Observation|o1"}));
    // Run: without a mapping the key column cannot be filled: a failure, no row
    store_under_test other(dir / "other.db");
    st::commit_page(
        other.db, other.writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "fhir-77", 1, {"a"}))},
        "ehr", "t1", other.hooks);
    st::view_tables unmapped(other.db, load(), "t2");
    unmapped.backfill("t3", nullptr);
    EXPECT_TRUE(table(other.db).empty());
    const auto failures = unmapped.take_failures();
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0].resource_id, "o1");
    EXPECT_EQ(failures[0].json_path, "select[0].column[1].path");
    EXPECT_EQ(failures[0].message.find("fhir-77"), std::string::npos) << failures[0].message;
}

TEST_F(ViewBackfill, ADeletedResourceGetsNoRows) {
    // Setup: o10 is marked deleted, and (say, from an older binary) still has a row
    const auto page = observations();
    store_under_test s(dir / "headache.db");
    st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
    s.db.sql().exec("UPDATE observation SET deleted_at = 't1' WHERE id IN ('o10', 'o15')");
    st::view_tables views(s.db, load(), "t2");
    s.db.sql().exec(
        "INSERT INTO view_codes (obs_id, _source, _resource_type, _resource_id) VALUES "
        "('o10', 'ehr', 'Observation', 'o10')");
    // Run
    const auto results = views.backfill("t3", mapper, st::backfill_options{3, nullptr});
    // Check
    EXPECT_EQ(rows(s.db, "SELECT DISTINCT _resource_id FROM view_codes WHERE _resource_id IN ('o10', 'o15')"),
              std::vector<std::string>{});
    EXPECT_EQ(rows(s.db, "SELECT count(DISTINCT _resource_id) FROM view_codes"),
              std::vector<std::string>{"9"});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].complete);  // a deleted resource needs no JSON
}

TEST_F(ViewBackfill, ResourcesWithoutRawJsonLeaveTheViewPendingWithTheReason) {
    // Setup: o1 stored with store_raw off; o2 with it on; o3 with it on, then
    // updated with it off (the kept JSON is of the older version)
    store_under_test on(dir / "headache.db", true);
    st::commit_page(
        on.db, on.writer,
        std::vector<nz::record>{observation_with_json("o2", observation_json("o2", "fhir-1", 2, {"b"})),
                                observation_with_json("o3", observation_json("o3", "fhir-1", 3, {"c"}))},
        "ehr", "t1", on.hooks);
    st::resource_writer off(on.db, false, st::identity_policy{{}, true});
    st::commit_page(
        on.db, off,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "fhir-1", 1, {"a"})),
                                observation_with_json("o3", observation_json("o3", "fhir-1", 3, {"new"}))},
        "ehr", "t1", on.hooks);
    {
        st::view_tables views(on.db, load(), "t2");
        // Run
        const auto results = views.backfill("t3", mapper);
        // Check: o2 only; pending, with the count of resources left for the next full pull
        ASSERT_EQ(results.size(), 1u);
        EXPECT_FALSE(results[0].complete);
        EXPECT_EQ(results[0].missing_raw, 2);
        EXPECT_EQ(rows(on.db, "SELECT _resource_id, code FROM view_codes"),
                  (std::vector<std::string>{"o2|b"}));
        EXPECT_EQ(definition(on.db, "backfill_state, backfilled_at, backfill_missing_raw"), "pending|t3|2");
        const auto states = st::read_view_states(on.db);
        ASSERT_EQ(states.size(), 1u);
        EXPECT_EQ(states[0].backfill_state, "pending");
        EXPECT_EQ(states[0].backfilled_at, "t3");
        EXPECT_EQ(states[0].backfill_missing_raw, 2);
        EXPECT_FALSE(states[0].backfill_under_way);
        // Still pending: the next page evaluates unchanged resources, as a full pull needs
        on.hooks.views = &views;
        st::commit_page(
            on.db, off,
            std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "fhir-1", 1, {"a"}))},
            "ehr", "t4", on.hooks);
        EXPECT_EQ(rows(on.db, "SELECT _resource_id FROM view_codes ORDER BY 1"),
                  (std::vector<std::string>{"o1", "o2"}));
    }
    // Run: the next start does not go over the same resources again
    st::view_tables again(on.db, load(), "t5");
    const auto second = again.backfill("t5", mapper);
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].resources, 0);
    EXPECT_EQ(definition(on.db, "backfilled_at"), "t3");
}

TEST_F(ViewBackfill, AnInterruptedBackfillResumesToTheTableOfAnUninterruptedOne) {
    // Setup
    const auto page = observations();
    const auto expected = applied_from_the_start(page);
    store_under_test s(dir / "headache.db");
    st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
    {
        st::view_tables views(s.db, load(), "t2");
        // Run: stopped (as by a crash) after the second batch of 3 committed
        int batches = 0;
        const auto stop = [&batches] {
            if (++batches == 2) throw std::runtime_error("stopped");
        };
        EXPECT_THROW(views.backfill("t3", mapper, st::backfill_options{3, stop}), std::runtime_error);
        // Check: six resources done and the place to go on recorded with
        // them: after the 6th resource (index 5) of the page's frame
        EXPECT_EQ(rows(s.db, "SELECT count(DISTINCT _resource_id) FROM view_codes"),
                  std::vector<std::string>{"6"});
        EXPECT_EQ(
            definition(s.db, "backfill_state, backfill_after_frame, backfill_after_item, backfilled_at"),
            "pending|1|5|NULL");
        EXPECT_TRUE(st::read_view_states(s.db).at(0).backfill_under_way);
    }
    // Run: the next start goes on after the 6th
    st::view_tables views(s.db, load(), "t4");
    const auto results = views.backfill("t5", mapper, st::backfill_options{3, nullptr});
    // Check
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].resources, 5);
    EXPECT_TRUE(results[0].complete);
    EXPECT_EQ(table(s.db), expected);
    EXPECT_EQ(definition(s.db, "backfill_state, backfill_after_source, backfill_after_frame, backfilled_at"),
              "complete|NULL|NULL|t5");
}

TEST_F(ViewBackfill, ACrashInsideABatchRollsItBackAndTheRedoGivesTheSameTable) {
    // Setup: rows of a batch in the making are visible to nobody until COMMIT;
    // a failure from SQLite (here: the view table made read-only by a trigger)
    // rolls the batch back with its progress
    const auto page = observations();
    const auto expected = applied_from_the_start(page);
    store_under_test s(dir / "headache.db");
    st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
    {
        st::view_tables views(s.db, load(), "t2");
        s.db.sql().exec(
            "CREATE TRIGGER stop_o16 BEFORE INSERT ON view_codes WHEN NEW._resource_id = 'o16' "
            "BEGIN SELECT RAISE(ABORT, 'stopped'); END");
        EXPECT_THROW(views.backfill("t3", mapper, st::backfill_options{4, nullptr}), st::store_error);
        // Check: the first batch (o10..o13) stayed, the second left nothing
        EXPECT_EQ(rows(s.db, "SELECT count(DISTINCT _resource_id) FROM view_codes"),
                  std::vector<std::string>{"4"});
        EXPECT_EQ(definition(s.db, "backfill_after_frame || '/' || backfill_after_item"), "1/3");
        s.db.sql().exec("DROP TRIGGER stop_o16");
    }
    st::view_tables views(s.db, load(), "t4");
    views.backfill("t5", mapper, st::backfill_options{4, nullptr});
    EXPECT_EQ(table(s.db), expected);
    EXPECT_EQ(definition(s.db, "backfill_state"), "complete");
}

TEST_F(ViewBackfill, AChangedDefinitionStartsItsBackfillAfresh) {
    // Setup: a back-fill left half done under the old definition
    const auto page = observations();
    store_under_test s(dir / "headache.db");
    st::commit_page(s.db, s.writer, page, "ehr", "t1", s.hooks);
    {
        st::view_tables views(s.db, load(), "t2");
        EXPECT_THROW(views.backfill("t3", mapper,
                                    st::backfill_options{2, [] { throw std::runtime_error("stopped"); }}),
                     std::runtime_error);
    }
    // Run: edited definition (no value column)
    std::string edited = codes_view;
    const std::string value_col =
        R"({"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},)";
    edited.erase(edited.find(value_col), value_col.size());
    st::view_tables views(s.db, load(edited), "t4");
    ASSERT_EQ(definition(s.db, "backfill_after_id, backfilled_at, backfill_missing_raw"), "NULL|NULL|0");
    const auto results = views.backfill("t5", mapper);
    // Check: every resource, not only those after the old place
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].resources, 11);
    EXPECT_EQ(rows(s.db, "SELECT count(DISTINCT _resource_id) FROM view_codes"),
              std::vector<std::string>{"11"});
}

}  // namespace
