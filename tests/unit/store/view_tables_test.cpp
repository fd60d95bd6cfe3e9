// Materialized ViewDefinitions (issue 16 item 3): view_<name> tables filled
// inside commit_page's transaction, replaced on update, emptied on delete,
// and made again when the definition changes.
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/view_tables.hpp"
#include "store_test_support.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::observation_with_json;
using headachemd::test::write_file;

// One row per coding of Observation.code, with the value and a flag.
constexpr const char* codes_view = R"({
  "resourceType": "ViewDefinition", "name": "obs_codes", "resource": "Observation", "status": "active",
  "select": [
    {"column": [{"name": "obs_id", "path": "id", "type": "id"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                {"name": "final", "path": "status = 'final'", "type": "boolean"},
                {"name": "categories", "path": "category.coding.code", "type": "code", "collection": true}]},
    {"forEach": "code.coding",
     "column": [{"name": "system", "path": "system", "type": "uri"},
                {"name": "code", "path": "code", "type": "code"}]}
  ]})";

// One row per Observation: fails on an Observation with two codings,
// because `code` is not a collection column.
constexpr const char* strict_view = R"({
  "resourceType": "ViewDefinition", "resource": "Observation", "status": "active",
  "select": [{"column": [{"name": "code", "path": "code.coding.code"}]}]})";

std::string observation_json(const std::string& id, const std::string& status, double value,
                             const std::vector<std::string>& codes) {
    std::string codings;
    for (const auto& c : codes)
        codings +=
            std::string(codings.empty() ? "" : ",") + R"({"system":"http://loinc.org","code":")" + c + "\"}";
    return R"({"resourceType":"Observation","id":")" + id + R"(","status":")" + status +
           R"(","category":[{"coding":[{"code":"vital-signs"},{"code":"x\"y"}]}],"code":{"coding":[)" +
           codings + R"(]},"valueQuantity":{"value":)" + std::to_string(value) + "}}";
}

struct ViewTables : headachemd::test::view_store_fixture {
    st::resource_writer writer{db, false, st::identity_policy{}};

    std::string state(const std::string& name) {
        SQLite::Statement q(db.sql(), "SELECT backfill_state FROM view_definition WHERE name = ?1");
        q.bind(1, name);
        return q.executeStep() ? q.getColumn(0).getString() : "(none)";
    }
};

TEST_F(ViewTables, LoadRefusesABadDefinitionNamingTheFileAndJsonPath) {
    // Setup
    write_file(
        dir / "bad.json",
        R"({"resourceType":"ViewDefinition","resource":"Observation","select":[{"column":[{"name":"a"}]}]})");
    write_file(dir / "ok.json", strict_view);
    const std::vector<st::view_file> files{
        {"bad", dir / "bad.json"}, {"missing", dir / "missing.json"}, {"ok", dir / "ok.json"}};
    // Run
    const auto loaded = st::load_views(files, headachemd::views::privacy::none);
    // Check
    ASSERT_EQ(loaded.errors.size(), 2u);
    EXPECT_EQ(loaded.errors[0].rfind(
                  "[[view]] \"bad\": " + (dir / "bad.json").string() + ": select[0].column[0]", 0),
              0u)
        << loaded.errors[0];
    EXPECT_NE(loaded.errors[1].find("[[view]] \"missing\": "), std::string::npos) << loaded.errors[1];
    ASSERT_EQ(loaded.views.size(), 1u);
    EXPECT_EQ(loaded.views[0].name, "ok");
    EXPECT_EQ(loaded.views[0].definition_sha256.size(), 64u);
}

TEST_F(ViewTables, LoadRefusesANameThatIsNoSafeTableName) {
    // Setup
    write_file(dir / "ok.json", strict_view);
    const std::vector<st::view_file> files{{"definition", dir / "ok.json"}, {"a\"b", dir / "ok.json"}};
    // Run
    const auto loaded = st::load_views(files, headachemd::views::privacy::none);
    // Check
    EXPECT_EQ(loaded.errors.size(), 2u);
    EXPECT_TRUE(loaded.views.empty());
}

TEST_F(ViewTables, LoadRefusesADefinitionOthersMayWrite) {
    // Setup: a definition decides what lands in headache.db, like the config.
    write_file(dir / "ok.json", strict_view);
    std::filesystem::permissions(dir / "ok.json", std::filesystem::perms::others_write,
                                 std::filesystem::perm_options::add);
    const std::vector<st::view_file> files{{"ok", dir / "ok.json"}};
    // Run
    const auto loaded = st::load_views(files, headachemd::views::privacy::none);
    // Check
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_TRUE(loaded.views.empty());
}

TEST_F(ViewTables, ColumnTypesMapToSqliteAndBookkeepingColumnsAreIndexed) {
    // Run
    st::view_tables views(db, load("codes", codes_view), "2026-01-01T00:00:00Z");
    // Check
    EXPECT_EQ(rows("SELECT name, type FROM pragma_table_info('view_codes') ORDER BY cid"),
              (std::vector<std::string>{"obs_id|TEXT", "value|REAL", "final|INTEGER", "categories|TEXT",
                                        "system|TEXT", "code|TEXT", "_source|TEXT", "_resource_type|TEXT",
                                        "_resource_id|TEXT", "_patient_key|TEXT"}));
    EXPECT_EQ(rows("SELECT name FROM pragma_index_list('view_codes') ORDER BY name"),
              (std::vector<std::string>{"view_codes__patient", "view_codes__resource"}));
    EXPECT_EQ(state("codes"), "complete");  // nothing of its type was stored yet
}

TEST_F(ViewTables, RowsAreWrittenInsideThePageTransaction) {
    // Setup
    st::view_tables views(db, load("codes", codes_view), "t0");
    hooks.views = &views;
    std::vector<std::string> seen_before_commit;
    hooks.before_commit = [&] {
        seen_before_commit = rows("SELECT obs_id, code FROM view_codes ORDER BY code");
    };
    const std::vector<nz::record> page{
        observation_with_json("o1", observation_json("o1", "final", 120.5, {"8480-6", "85354-9"}))};
    // Run
    st::commit_page(db, writer, page, "ehr", "t1", hooks);
    // Check: present before COMMIT, in the same transaction as the row
    EXPECT_EQ(seen_before_commit, (std::vector<std::string>{"o1|8480-6", "o1|85354-9"}));
    EXPECT_EQ(rows("SELECT obs_id, value, final, categories, system, code, _source, _resource_type, "
                   "_resource_id, _patient_key FROM view_codes ORDER BY code"),
              (std::vector<std::string>{
                  R"(o1|120.5|1|["vital-signs","x\"y"]|http://loinc.org|8480-6|ehr|Observation|o1|pk1)",
                  R"(o1|120.5|1|["vital-signs","x\"y"]|http://loinc.org|85354-9|ehr|Observation|o1|pk1)"}));
    EXPECT_EQ(rows("SELECT typeof(value), typeof(final) FROM view_codes LIMIT 1"),
              (std::vector<std::string>{"real|integer"}));
}

TEST_F(ViewTables, AHookThatThrowsAfterTheViewRowsRollsEverythingBack) {
    // Setup
    st::view_tables views(db, load("codes", codes_view), "t0");
    hooks.views = &views;
    int view_rows_in_tx = 0;
    hooks.before_commit = [&] {
        view_rows_in_tx = static_cast<int>(rows("SELECT 1 FROM view_codes").size());
        throw std::runtime_error("disk full");
    };
    const std::vector<nz::record> page{
        observation_with_json("o1", observation_json("o1", "final", 1, {"a", "b"}))};
    // Run
    EXPECT_THROW(st::commit_page(db, writer, page, "ehr", "t1", hooks), std::runtime_error);
    // Check: the rows were written, and rolled back with the page
    EXPECT_EQ(view_rows_in_tx, 2);
    EXPECT_TRUE(rows("SELECT 1 FROM view_codes").empty());
    EXPECT_TRUE(rows("SELECT 1 FROM observation").empty());
}

TEST_F(ViewTables, AnUpdateReplacesTheRowsAndAnUnchangedResourceIsNotEvaluated) {
    // Setup
    st::view_tables views(db, load("codes", codes_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a", "b"})),
                                observation_with_json("o2", observation_json("o2", "final", 2, {"c"}))},
        "ehr", "t1", hooks);
    // Run: o1 changed (one coding now); o2 arrives with the same hash but
    // other bytes, which only an evaluation of an unchanged resource would see
    auto o2_same_hash = observation_with_json("o2", observation_json("o2", "final", 2, {"zzz"}));
    nz::header_of(o2_same_hash).raw_hash =
        nz::header_of(observation_with_json("o2", observation_json("o2", "final", 2, {"c"}))).raw_hash;
    const auto counts = st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "amended", 3, {"d"})),
                                o2_same_hash},
        "ehr", "t2", hooks);
    // Check
    EXPECT_EQ(counts.updated, 1);
    EXPECT_EQ(counts.unchanged, 1);
    EXPECT_EQ(rows("SELECT obs_id, value, final, code FROM view_codes ORDER BY obs_id, code"),
              (std::vector<std::string>{"o1|3.0|0|d", "o2|2.0|1|c"}));
}

TEST_F(ViewTables, ADeleteFoundByAFullPullRemovesTheRows) {
    // Setup
    st::view_tables views(db, load("codes", codes_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"})),
                                observation_with_json("o2", observation_json("o2", "final", 2, {"b"}))},
        "ehr", "t1", hooks);
    st::sync_state state(db);
    // Run: the next full pull returned only o2
    const int deleted = state.mark_deleted_except("ehr", key, "observation", {"o2"}, "t2");
    // Check
    EXPECT_EQ(deleted, 1);
    EXPECT_EQ(rows("SELECT obs_id FROM view_codes"), (std::vector<std::string>{"o2"}));
    // and a resource that comes back gets its rows back
    st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"}))},
        "ehr", "t3", hooks);
    EXPECT_EQ(rows("SELECT obs_id FROM view_codes ORDER BY obs_id"), (std::vector<std::string>{"o1", "o2"}));
}

TEST_F(ViewTables, PurgingAPatientRemovesItsViewRows) {
    // Setup
    st::view_tables views(db, load("codes", codes_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"}))},
        "ehr", "t1", hooks);
    st::sync_state state(db);
    EXPECT_EQ(state.patient_rows("ehr", key), 2);  // the observation and its view row
    // Run
    state.purge_patient("ehr", key);
    // Check
    EXPECT_TRUE(rows("SELECT 1 FROM view_codes").empty());
}

TEST_F(ViewTables, AChangedDefinitionResetsTheTableAndFillsOnTheNextFullPull) {
    // Setup
    {
        st::view_tables views(db, load("codes", codes_view), "t0");
        hooks.views = &views;
        st::commit_page(
            db, writer,
            std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"}))},
            "ehr", "t1", hooks);
    }
    {
        // The same definition again: kept, rows and all
        st::view_tables same(db, load("codes", codes_view), "t2");
        EXPECT_EQ(rows("SELECT obs_id FROM view_codes"), (std::vector<std::string>{"o1"}));
        EXPECT_EQ(state("codes"), "complete");
    }
    // Run: the definition is edited (one column fewer)
    std::string edited = codes_view;
    edited.replace(
        edited.find(R"({"name": "value")"),
        std::string(R"({"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},)")
            .size(),
        "");
    st::view_tables views(db, load("codes", edited), "2026-01-02T00:00:00Z");
    hooks.views = &views;
    // Check: made again, empty, pending since observations are stored
    EXPECT_TRUE(rows("SELECT 1 FROM view_codes").empty());
    EXPECT_TRUE(rows("SELECT 1 FROM pragma_table_info('view_codes') WHERE name = 'value'").empty());
    EXPECT_EQ(state("codes"), "pending");
    EXPECT_EQ(rows("SELECT created_at FROM view_definition"),
              (std::vector<std::string>{"2026-01-02T00:00:00Z"}));
    // A pending view evaluates even unchanged resources, so the next full pull fills it
    const auto counts = st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"}))},
        "ehr", "2026-01-02T00:01:00Z", hooks);
    EXPECT_EQ(counts.unchanged, 1);
    EXPECT_EQ(rows("SELECT obs_id, code FROM view_codes"), (std::vector<std::string>{"o1|a"}));
    // Once every cursor of the type records a full pull since, it is complete
    st::sync_state sync(db);
    st::cursor c;
    c.last_full_pull_at = "2026-01-02T00:01:00Z";
    sync.write_cursor("ehr", key, "Observation", c);
    st::view_tables reopened(db, load("codes", edited), "2026-01-03T00:00:00Z");
    EXPECT_EQ(state("codes"), "complete");
}

TEST_F(ViewTables, AnEvaluationErrorKeepsThePageAndIsReported) {
    // Setup
    st::view_tables views(db, load("strict", strict_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a"}))},
        "ehr", "t1", hooks);
    EXPECT_EQ(rows("SELECT code FROM view_strict"), (std::vector<std::string>{"a"}));
    // Run: o1 now has two codings (an error for this view); o2 is fine
    const auto counts = st::commit_page(
        db, writer,
        std::vector<nz::record>{observation_with_json("o1", observation_json("o1", "final", 1, {"a", "b"})),
                                observation_with_json("o2", observation_json("o2", "final", 1, {"c"}))},
        "ehr", "t2", hooks);
    // Check: the page is stored; o1's stale row is gone; the failure says where
    EXPECT_EQ(counts.updated, 1);
    EXPECT_EQ(counts.inserted, 1);
    EXPECT_EQ(rows("SELECT _resource_id, code FROM view_strict"), (std::vector<std::string>{"o2|c"}));
    const auto failures = views.take_failures();
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0].view, "strict");
    EXPECT_EQ(failures[0].resource_type, "Observation");
    EXPECT_EQ(failures[0].resource_id, "o1");
    EXPECT_EQ(failures[0].json_path, "select[0].column[0].path");
    EXPECT_TRUE(views.take_failures().empty());
}

// Issue 16 item 4: the config's identifier rule applies to a definition
// before any table is made, so no view can put a name into headache.db.
TEST_F(ViewTables, UnderEitherIdentifierRuleAViewOfPatientNamesIsRefusedBeforeAnyTable) {
    // Setup
    write_file(dir / "names.json", R"({"resourceType":"ViewDefinition","resource":"Patient",
        "select":[{"column":[{"name":"family","path":"name.family"}]}]})");
    const std::vector<st::view_file> files{{"names", dir / "names.json"}};
    for (auto rule : {headachemd::views::privacy::none, headachemd::views::privacy::minimal}) {
        // Run
        const auto loaded = st::load_views(files, rule);
        // Check: refused, naming the file and the column path
        ASSERT_EQ(loaded.errors.size(), 1u);
        EXPECT_NE(loaded.errors[0].find((dir / "names.json").string() + ": select[0].column[0].path"),
                  std::string::npos)
            << loaded.errors[0];
        EXPECT_TRUE(loaded.views.empty());
    }
    // Check: privacy off (tests only) compiles it, so the refusal is the rule's
    EXPECT_TRUE(st::load_views(files, headachemd::views::privacy::off).errors.empty());
}

// Under "none" a key column holds the patient_key the fixed tables join on,
// never the FHIR id; without a mapping the view fails rather than leak it.
TEST_F(ViewTables, UnderNoneKeyColumnsHoldThePatientKeyNeverTheFhirId) {
    // Setup
    st::view_tables views(db, load("subjects", R"j({"resourceType":"ViewDefinition","resource":"Observation",
        "select":[{"column":[{"name":"patient","path":"subject.getReferenceKey(Patient)"}]
}]
})j"),
                          "t0");
    hooks.views = &views;
    hooks.view_patient_key = [](std::string_view id) { return "key-of-" + std::string(id); };
    const std::string json =
        R"({"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/fhir-77"}})";
    // Run
    st::commit_page(db, writer, std::vector<nz::record>{observation_with_json("o1", json)}, "ehr", "t1",
                    hooks);
    // Check
    EXPECT_EQ(rows("SELECT patient FROM view_subjects"), (std::vector<std::string>{"key-of-fhir-77"}));
    // Run: no mapping
    hooks.view_patient_key = nullptr;
    const std::string changed =
        R"({"resourceType":"Observation","id":"o1","status":"amended","subject":{"reference":"Patient/fhir-77"}})";
    st::commit_page(db, writer, std::vector<nz::record>{observation_with_json("o1", changed)}, "ehr", "t2",
                    hooks);
    // Check: no row, a failure, and the FHIR id nowhere in the table
    EXPECT_TRUE(rows("SELECT patient FROM view_subjects").empty());
    EXPECT_EQ(views.take_failures().size(), 1u);
}

}  // namespace
