// Resources of a type we do not normalize that a materialized view reads
// (issue 16): a bare_record reaches commit_page with its header and JSON,
// keeps the typed tables' bookkeeping in bare_resource, and its view rows
// follow it through update, delete detection and purge.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "headachemd/normalize/sha256.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/raw_json.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/store/view_tables.hpp"
#include "store_test_support.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;

// One row per coding of AllergyIntolerance.code, with its clinical status.
constexpr const char* allergy_view = R"json({
  "resourceType": "ViewDefinition", "resource": "AllergyIntolerance", "status": "active",
  "select": [
    {"column": [{"name": "allergy_id", "path": "id", "type": "id"},
                {"name": "clinical_status", "path": "clinicalStatus.coding.code.first()", "type": "code"}]},
    {"forEach": "code.coding", "column": [{"name": "code", "path": "code", "type": "code"}]}
  ]})json";

std::string allergy_json(const std::string& id, const std::string& status,
                         const std::vector<std::string>& codes) {
    std::string codings;
    for (const auto& c : codes)
        codings += std::string(codings.empty() ? "" : ",") +
                   R"({"system":"http://snomed.info/sct","code":")" + c + "\"}";
    return R"({"resourceType":"AllergyIntolerance","id":")" + id +
           R"(","clinicalStatus":{"coding":[{"code":")" + status + R"("}]},"code":{"coding":[)" + codings +
           R"(]},"patient":{"reference":"Patient/p1"}})";
}

nz::record bare(const std::string& type, const std::string& id, const std::string& json) {
    nz::bare_record b;
    b.resource_type = type;
    b.h.id = id;
    b.h.patient_ref = "p1";
    b.h.raw_hash = nz::sha256_hex(json);  // as the normalizer: the reader checks it
    b.h.raw = json;
    return b;
}
nz::record allergy(const std::string& id, const std::string& status, const std::vector<std::string>& codes) {
    return bare("AllergyIntolerance", id, allergy_json(id, status, codes));
}

struct BareResource : headachemd::test::view_store_fixture {};

TEST_F(BareResource, AViewOverAnUnnormalizedTypeGetsRowsAndTheResourceItsBookkeeping) {
    // Setup
    st::resource_writer writer{db, false, st::identity_policy{}};
    st::view_tables views(db, load("allergies", allergy_view), "t0");
    hooks.views = &views;
    // Run
    const auto counts = st::commit_page(
        db, writer, std::vector<nz::record>{allergy("a1", "active", {"91936005", "300916003"})}, "ehr", "t1",
        hooks);
    // Check
    EXPECT_EQ(counts.inserted, 1);
    EXPECT_EQ(rows("SELECT allergy_id, clinical_status, code, _source, _resource_type, _resource_id, "
                   "_patient_key FROM view_allergies ORDER BY code"),
              (std::vector<std::string>{"a1|active|300916003|ehr|AllergyIntolerance|a1|pk1",
                                        "a1|active|91936005|ehr|AllergyIntolerance|a1|pk1"}));
    EXPECT_EQ(
        rows("SELECT source, resource_type, id, patient_key, ingested_at, deleted_at FROM bare_resource"),
        (std::vector<std::string>{"ehr|AllergyIntolerance|a1|pk1|t1|NULL"}));
}

TEST_F(BareResource, UnchangedIsNotEvaluatedAndAnUpdateReplacesTheRows) {
    // Setup
    st::resource_writer writer{db, false, st::identity_policy{}};
    st::view_tables views(db, load("allergies", allergy_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{allergy("a1", "active", {"x", "y"}), allergy("a2", "active", {"z"})}, "ehr",
        "t1", hooks);
    // Run: a1 changed; a2 comes with its old hash but other bytes, which
    // only an evaluation of an unchanged resource would see
    auto a2_same_hash = allergy("a2", "inactive", {"zzz"});
    nz::header_of(a2_same_hash).raw_hash = nz::header_of(allergy("a2", "active", {"z"})).raw_hash;
    const auto counts =
        st::commit_page(db, writer, std::vector<nz::record>{allergy("a1", "resolved", {"w"}), a2_same_hash},
                        "ehr", "t2", hooks);
    // Check
    EXPECT_EQ(counts.updated, 1);
    EXPECT_EQ(counts.unchanged, 1);
    EXPECT_EQ(rows("SELECT allergy_id, clinical_status, code FROM view_allergies ORDER BY allergy_id, code"),
              (std::vector<std::string>{"a1|resolved|w", "a2|active|z"}));
    EXPECT_EQ(rows("SELECT id, ingested_at FROM bare_resource ORDER BY id"),
              (std::vector<std::string>{"a1|t2", "a2|t1"}));
}

TEST_F(BareResource, TheSameIdInTwoTypesIsTwoResources) {
    // Setup: FHIR ids are unique per type only
    st::resource_writer writer{db, false, st::identity_policy{}};
    auto both = load("allergies", allergy_view);
    auto plans =
        load("plans", R"json({"resourceType": "ViewDefinition", "resource": "CarePlan", "status": "active",
      "select": [{"column": [{"name": "plan_id", "path": "id", "type": "id"},
                             {"name": "status", "path": "status", "type": "code"}]}]})json");
    both.push_back(std::move(plans[0]));
    st::view_tables views(db, std::move(both), "t0");
    hooks.views = &views;
    // Run
    const auto counts = st::commit_page(
        db, writer,
        std::vector<nz::record>{
            allergy("x1", "active", {"a"}),
            bare("CarePlan", "x1", R"({"resourceType":"CarePlan","id":"x1","status":"active"})")},
        "ehr", "t1", hooks);
    // Check
    EXPECT_EQ(counts.inserted, 2);
    EXPECT_EQ(rows("SELECT resource_type, id FROM bare_resource ORDER BY resource_type"),
              (std::vector<std::string>{"AllergyIntolerance|x1", "CarePlan|x1"}));
    EXPECT_EQ(rows("SELECT plan_id, status FROM view_plans"), (std::vector<std::string>{"x1|active"}));
    EXPECT_EQ(rows("SELECT allergy_id FROM view_allergies"), (std::vector<std::string>{"x1"}));
}

TEST_F(BareResource, ADeleteFoundByAFullPullRemovesTheRowsOfThatTypeOnly) {
    // Setup
    st::resource_writer writer{db, false, st::identity_policy{}};
    st::view_tables views(db, load("allergies", allergy_view), "t0");
    hooks.views = &views;
    st::commit_page(
        db, writer,
        std::vector<nz::record>{allergy("a1", "active", {"x"}), allergy("a2", "active", {"y"}),
                                bare("CarePlan", "c1", R"({"resourceType":"CarePlan","id":"c1"})")},
        "ehr", "t1", hooks);
    st::sync_state state(db);
    // Run: the next full pull of AllergyIntolerance returned only a2
    const int deleted =
        state.mark_deleted_except("ehr", key, "bare_resource", {"a2"}, "t2", "AllergyIntolerance");
    // Check
    EXPECT_EQ(deleted, 1);
    EXPECT_EQ(rows("SELECT allergy_id FROM view_allergies"), (std::vector<std::string>{"a2"}));
    EXPECT_EQ(rows("SELECT resource_type, id, deleted_at FROM bare_resource ORDER BY resource_type, id"),
              (std::vector<std::string>{"AllergyIntolerance|a1|t2", "AllergyIntolerance|a2|NULL",
                                        "CarePlan|c1|NULL"}));
    EXPECT_EQ(state.live_rows("ehr", key, "bare_resource", "AllergyIntolerance"), 1);
    EXPECT_EQ(state.live_rows("ehr", key, "bare_resource", "CarePlan"), 1);
    EXPECT_THROW(state.live_rows("ehr", key, "bare_resource"), std::invalid_argument);
    // and a resource that comes back gets its rows back
    st::commit_page(db, writer, std::vector<nz::record>{allergy("a1", "active", {"x"})}, "ehr", "t3", hooks);
    EXPECT_EQ(rows("SELECT allergy_id FROM view_allergies ORDER BY allergy_id"),
              (std::vector<std::string>{"a1", "a2"}));
    EXPECT_EQ(rows("SELECT deleted_at FROM bare_resource WHERE id = 'a1'"),
              (std::vector<std::string>{"NULL"}));
}

TEST_F(BareResource, RawIsStoredWithStoreRawAndPurgeRemovesEverything) {
    // Setup
    st::identity_policy minimal;
    minimal.keep_fhir_patient_id = true;
    st::resource_writer writer{db, true, minimal};
    st::view_tables views(db, load("allergies", allergy_view), "t0");
    hooks.views = &views;
    const auto a1 = allergy("a1", "active", {"x"});
    st::commit_page(db, writer, std::vector<nz::record>{a1}, "ehr", "t1", hooks);
    // Check: the JSON kept, as for a typed resource
    const auto raw = st::read_raw_json(db.sql(), "ehr", "AllergyIntolerance", "a1");
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(*raw, nz::header_of(a1).raw);
    st::sync_state state(db);
    EXPECT_EQ(state.patient_rows("ehr", key), 3);  // bare_resource, its raw_frame, the view row
    // Run
    EXPECT_EQ(state.purge_patient("ehr", key), 3);
    // Check
    EXPECT_TRUE(rows("SELECT 1 FROM view_allergies").empty());
    EXPECT_TRUE(rows("SELECT 1 FROM bare_resource").empty());
    EXPECT_TRUE(rows("SELECT 1 FROM raw_frame").empty());
}

TEST_F(BareResource, AViewMadeAfterBareResourcesWereStoredIsPending) {
    // Setup
    st::resource_writer writer{db, false, st::identity_policy{}};
    {
        st::view_tables views(db, load("allergies", allergy_view), "t0");
        hooks.views = &views;
        st::commit_page(db, writer, std::vector<nz::record>{allergy("a1", "active", {"x"})}, "ehr", "t1",
                        hooks);
    }
    // Run: a second view over the same type
    st::view_tables views(db, load("allergies2", allergy_view), "t2");
    // Check
    EXPECT_EQ(rows("SELECT name, backfill_state FROM view_definition ORDER BY name"),
              (std::vector<std::string>{"allergies|complete", "allergies2|pending"}));
}

TEST_F(BareResource, ASecondViewOverABareTypeIsBackFilledFromResourceRaw) {
    // Setup: allergies stored (with their JSON) while one view read the type
    st::identity_policy minimal;
    minimal.keep_fhir_patient_id = true;
    st::resource_writer writer{db, true, minimal};
    {
        st::view_tables views(db, load("allergies", allergy_view), "t0");
        hooks.views = &views;
        st::commit_page(
            db, writer,
            std::vector<nz::record>{allergy("a1", "active", {"x"}), allergy("a2", "inactive", {"y"})}, "ehr",
            "t1", hooks);
    }
    hooks.views = nullptr;
    st::view_tables views(db, load("allergies2", allergy_view), "t2");
    const st::source_key_mapper keys = [](std::string_view, std::string_view id) {
        return "pk:" + std::string(id);
    };
    // Run
    const auto results = views.backfill("t3", keys);
    // Check: the back-fill reads bare_resource, not only the typed tables
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].resources, 2);
    EXPECT_TRUE(results[0].complete);
    EXPECT_EQ(
        rows("SELECT allergy_id, clinical_status, code, _resource_id, _patient_key FROM view_allergies2 "
             "ORDER BY allergy_id"),
        (std::vector<std::string>{"a1|active|x|a1|pk1", "a2|inactive|y|a2|pk1"}));
    EXPECT_EQ(rows("SELECT backfill_state FROM view_definition WHERE name = 'allergies2'"),
              (std::vector<std::string>{"complete"}));
}

}  // namespace
