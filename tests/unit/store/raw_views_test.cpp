// `view run --db` in the store: resource_raw rows of the view's type, the
// deleted ones left out, key columns mapped to the stored patient_key, and
// a damaged row or an unknown patient named without the resource's data.
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <gtest/gtest.h>

#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/raw_views.hpp"
#include "headachemd/views/render.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
namespace v = headachemd::views;
using headachemd::test::temp_dir;

nz::record patient(std::string id) {
    nz::patient_record p;
    p.h.id = std::move(id);
    p.h.raw_hash = "h-" + p.h.id;
    return p;
}

nz::record condition(std::string id, std::string patient_id) {
    nz::condition_record c;
    c.h.id = id;
    c.h.patient_ref = patient_id;
    c.h.raw_hash = "h-" + id;
    c.h.raw = R"({"resourceType":"Condition","id":")" + id + R"(","subject":{"reference":"Patient/)" +
              patient_id + R"("},"code":{"text":"SECRET-)" + id + R"("}})";
    return c;
}

struct fixture {
    temp_dir dir;
    st::analytics_db db{dir / "h.db"};
    fixture() {
        st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
        st::write_transaction tx(db.sql());
        w.upsert(patient("p1"), "ehr", "key-one", "2026-01-01T00:00:00Z");
        w.upsert(condition("c1", "p1"), "ehr", "key-one", "2026-01-01T00:00:00Z");
        w.upsert(condition("c2", "p1"), "ehr", "key-one", "2026-01-01T00:00:00Z");
        w.upsert(condition("c3", "p9"), "ehr", "key-nine", "2026-01-01T00:00:00Z");  // p9 has no patient row
        tx.commit();
    }
    struct output {
        std::vector<std::string> rows, problems;
        st::raw_view_result result;
    };
    output run(std::string_view definition) {
        auto compiled = v::compile(definition, v::compile_options{v::privacy::none});
        EXPECT_TRUE(std::holds_alternative<v::view>(compiled));
        output out;
        out.result = st::run_view_over_raw(
            db.sql(), std::get<v::view>(compiled),
            [&out](const v::row& r) { out.rows.push_back(v::csv_record(r)); },
            [&out](const std::string& where, std::string_view m) {
                out.problems.push_back(where + ": " + std::string(m));
            });
        return out;
    }
};

const char* keyed = R"j({"resource":"Condition","select":[{"column":[{"name":"id","path":"id"},
    {"name":"patient","path":"subject.getReferenceKey(Patient)"}]}]})j";

TEST(raw_views, stored_keys_and_a_patient_without_a_row_is_named) {
    fixture f;
    EXPECT_EQ(st::count_raw_rows(f.db.sql(), "Condition"), 3u);
    EXPECT_EQ(st::count_raw_rows(f.db.sql(), "Observation"), 0u);
    const auto out = f.run(keyed);
    EXPECT_EQ(out.rows, (std::vector<std::string>{"c1,key-one\r\n", "c2,key-one\r\n"}));
    ASSERT_EQ(out.problems.size(), 1u);
    EXPECT_EQ(out.problems[0].rfind(
                  "resource_raw row (source 'ehr', Condition/c3): a key column names a Patient", 0),
              0u)
        << out.problems[0];
    EXPECT_EQ(out.problems[0].find("p9"), std::string::npos);
    EXPECT_EQ(out.result.resources, 3u);
    EXPECT_EQ(out.result.problems, 1);
}

TEST(raw_views, deleted_resources_are_left_out) {
    fixture f;
    f.db.sql().exec("UPDATE condition SET deleted_at = '2026-02-01T00:00:00Z' WHERE id IN ('c2', 'c3')");
    const auto out = f.run(keyed);
    EXPECT_EQ(out.rows, std::vector<std::string>{"c1,key-one\r\n"});
    EXPECT_TRUE(out.problems.empty());
    EXPECT_EQ(out.result.resources, 1u);
}

TEST(raw_views, a_damaged_row_is_named_without_its_content_and_the_others_run) {
    fixture f;
    f.db.sql().exec("UPDATE resource_raw SET encoding = 'json', raw = '{\"resourceType\":' WHERE id = 'c1'");
    f.db.sql().exec("UPDATE resource_raw SET encoding = 'zstd', raw = X'28B52FFD00' WHERE id = 'c2'");
    const auto out = f.run(R"({"resource":"Condition","select":[{"column":[{"name":"id","path":"id"}]}]})");
    EXPECT_EQ(out.rows, std::vector<std::string>{"c3\r\n"});
    ASSERT_EQ(out.problems.size(), 2u);
    EXPECT_EQ(
        out.problems[0].rfind("resource_raw row (source 'ehr', Condition/c1): its JSON does not parse", 0),
        0u)
        << out.problems[0];
    EXPECT_EQ(out.problems[1].rfind("resource_raw row (source 'ehr', Condition/c2): the zstd frame", 0), 0u)
        << out.problems[1];
    for (const auto& p : out.problems) EXPECT_EQ(p.find("SECRET"), std::string::npos) << p;
}

TEST(raw_views, an_older_kept_json_is_named_and_left_out) {
    // Setup: c2 updated while store_raw was off, so resource_raw keeps the
    // JSON of the version before.
    fixture f;
    {
        st::resource_writer w(f.db, false, st::identity_policy{.keep_fhir_patient_id = true});
        st::write_transaction tx(f.db.sql());
        auto c2 = condition("c2", "p1");
        std::get<nz::condition_record>(c2).h.raw_hash = "h-c2-v2";
        w.upsert(c2, "ehr", "key-one", "2026-01-02T00:00:00Z");
        tx.commit();
    }
    // Run
    const auto out = f.run(keyed);
    // Check
    EXPECT_EQ(out.rows, (std::vector<std::string>{"c1,key-one\r\n"}));
    ASSERT_EQ(out.problems.size(), 2u);
    EXPECT_EQ(
        out.problems[0].rfind("resource_raw row (source 'ehr', Condition/c2): the kept JSON is of an older "
                              "version",
                              0),
        0u)
        << out.problems[0];
}

TEST(raw_views, a_deleted_resource_of_a_type_we_do_not_normalize_is_left_out) {
    // Setup: two allergies kept in bare_resource with their JSON, one deleted
    fixture f;
    const auto allergy = [](const std::string& id) {
        nz::bare_record b;
        b.resource_type = "AllergyIntolerance";
        b.h.id = id;
        b.h.patient_ref = "p1";
        b.h.raw_hash = "h-" + id;
        b.h.raw = R"({"resourceType":"AllergyIntolerance","id":")" + id +
                  R"(","patient":{"reference":"Patient/p1"}})";
        return nz::record{b};
    };
    {
        st::resource_writer w(f.db, true, st::identity_policy{.keep_fhir_patient_id = true});
        st::write_transaction tx(f.db.sql());
        w.upsert(allergy("a1"), "ehr", "key-one", "2026-01-01T00:00:00Z");
        w.upsert(allergy("a2"), "ehr", "key-one", "2026-01-01T00:00:00Z");
        tx.commit();
    }
    f.db.sql().exec("UPDATE bare_resource SET deleted_at = '2026-02-01T00:00:00Z' WHERE id = 'a2'");
    // Run
    const auto out =
        f.run(R"j({"resource":"AllergyIntolerance","select":[{"column":[{"name":"id","path":"id"},
        {"name":"patient","path":"patient.getReferenceKey(Patient)"}]}]})j");
    // Check
    EXPECT_EQ(out.rows, (std::vector<std::string>{"a1,key-one\r\n"}));
    EXPECT_TRUE(out.problems.empty());
    EXPECT_EQ(out.result.resources, 1u);
}

}  // namespace
