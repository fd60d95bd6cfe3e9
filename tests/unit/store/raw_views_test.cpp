// `view run --db` in the store: the kept JSON of the view's type (raw_frame
// since schema 12, resource_raw rows written before), the deleted and
// superseded ones left out, key columns mapped to the stored patient_key,
// and a damaged frame or row or an unknown patient named without the
// resource's data.
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/normalize/sha256.hpp"
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
    c.h.raw = R"({"resourceType":"Condition","id":")" + id + R"(","subject":{"reference":"Patient/)" +
              patient_id + R"("},"code":{"text":"SECRET-)" + id + R"("}})";
    c.h.raw_hash = nz::sha256_hex(c.h.raw);
    return c;
}

// Writes `records` in one transaction, flushing the frames as write_page does.
void write(st::analytics_db& db, st::resource_writer& w,
           const std::vector<std::pair<nz::record, const char*>>& records) {
    st::write_transaction tx(db.sql());
    for (const auto& [r, key] : records) w.upsert(r, "ehr", key, "2026-01-01T00:00:00Z");
    w.flush_raw();
    tx.commit();
}

int count_rows(st::analytics_db& db, const char* sql) {
    SQLite::Statement q(db.sql(), sql);
    int n = 0;
    while (q.executeStep()) ++n;
    return n;
}

struct fixture {
    temp_dir dir;
    st::analytics_db db{dir / "h.db"};
    // legacy: as a database written before schema 12 holds them: the rows
    // without a pointer, the JSON in resource_raw ('json' rows).
    explicit fixture(bool legacy = false) {
        st::resource_writer w(db, !legacy, st::identity_policy{.keep_fhir_patient_id = true});
        write(db, w,
              {{patient("p1"), "key-one"},
               {condition("c1", "p1"), "key-one"},
               {condition("c2", "p1"), "key-one"},
               {condition("c3", "p9"), "key-nine"}});  // p9 has no patient row
        if (!legacy) return;
        SQLite::Statement ins(db.sql(),
                              "INSERT INTO resource_raw (source, resource_type, id, raw_hash, encoding, raw) "
                              "VALUES ('ehr', 'Condition', ?1, ?2, 'json', ?3)");
        for (const auto& [id, pid] : {std::pair{"c1", "p1"}, std::pair{"c2", "p1"}, std::pair{"c3", "p9"}}) {
            const auto c = std::get<nz::condition_record>(condition(id, pid));
            ins.reset();
            ins.bind(1, id);
            ins.bind(2, c.h.raw_hash);
            ins.bind(3, c.h.raw);
            ins.exec();
        }
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
    for (bool legacy : {false, true}) {
        fixture f(legacy);
        EXPECT_EQ(st::count_raw_rows(f.db.sql(), "Condition"), 3u);
        EXPECT_EQ(st::count_raw_rows(f.db.sql(), "Observation"), 0u);
        const auto out = f.run(keyed);
        EXPECT_EQ(out.rows, (std::vector<std::string>{"c1,key-one\r\n", "c2,key-one\r\n"}));
        ASSERT_EQ(out.problems.size(), 1u);
        const std::string named = legacy ? "resource_raw row (source 'ehr', Condition/c3)"
                                         : "kept JSON of (source 'ehr', Condition/c3)";
        EXPECT_EQ(out.problems[0].rfind(named + ": a key column names a Patient", 0), 0u) << out.problems[0];
        EXPECT_EQ(out.problems[0].find("p9"), std::string::npos);
        EXPECT_EQ(out.result.resources, 3u);
        EXPECT_EQ(out.result.problems, 1);
    }
}

TEST(raw_views, deleted_resources_are_left_out) {
    for (bool legacy : {false, true}) {
        fixture f(legacy);
        f.db.sql().exec("UPDATE condition SET deleted_at = '2026-02-01T00:00:00Z' WHERE id IN ('c2', 'c3')");
        const auto out = f.run(keyed);
        EXPECT_EQ(out.rows, std::vector<std::string>{"c1,key-one\r\n"});
        EXPECT_TRUE(out.problems.empty());
        EXPECT_EQ(out.result.resources, 1u);
    }
}

TEST(raw_views, a_damaged_row_is_named_without_its_content_and_the_others_run) {
    fixture f(true);
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

TEST(raw_views, a_damaged_frame_or_resource_in_it_is_named_without_its_content_and_the_others_run) {
    // Setup: frame 1 holds c1 and c2 (key-one), frame 2 c3 (key-nine).
    fixture f;
    ASSERT_EQ(count_rows(f.db, "SELECT frame FROM raw_frame"), 2);
    // Run 1: frame 2 torn.
    f.db.sql().exec("UPDATE raw_frame SET raw = substr(raw, 1, length(raw) - 3) WHERE frame = 2");
    const char* ids = R"({"resource":"Condition","select":[{"column":[{"name":"id","path":"id"}]}]})";
    auto out = f.run(ids);
    EXPECT_EQ(out.rows, (std::vector<std::string>{"c1\r\n", "c2\r\n"}));
    ASSERT_EQ(out.problems.size(), 1u);
    EXPECT_EQ(
        out.problems[0].rfind(
            "raw_frame 2 (source 'ehr', Condition, 1 resource(s)): the zstd frame is truncated or corrupt",
            0),
        0u)
        << out.problems[0];
    // Run 2: frame 1 rewritten so that c1's JSON does not parse; c2 still reads.
    const auto c2 = std::get<nz::condition_record>(condition("c2", "p1")).h.raw;
    const std::string broken = R"({"resourceType":)";
    st::raw_compressor z;
    const std::string packed(z.compress(broken + c2));
    std::string sizes;
    for (std::size_t n : {broken.size(), c2.size()})
        for (int i = 0; i < 4; ++i) sizes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    SQLite::Statement upd(f.db.sql(), "UPDATE raw_frame SET raw = ?1, sizes = ?2 WHERE frame = 1");
    upd.bind(1, packed.data(), static_cast<int>(packed.size()));
    upd.bind(2, sizes.data(), static_cast<int>(sizes.size()));
    upd.exec();
    f.db.sql().exec("UPDATE condition SET raw_at = " + std::to_string(broken.size()) + " WHERE id = 'c2'");
    out = f.run(ids);
    EXPECT_EQ(out.rows, std::vector<std::string>{"c2\r\n"});
    ASSERT_EQ(out.problems.size(), 2u);
    EXPECT_EQ(out.problems[0].rfind("raw_frame 1, resource 1: its JSON does not parse", 0), 0u)
        << out.problems[0];
    for (const auto& p : out.problems) EXPECT_EQ(p.find("SECRET"), std::string::npos) << p;
}

TEST(raw_views, a_resource_updated_since_is_read_once_in_its_new_version) {
    // Setup: c2 changes; its old JSON stays in frame 1 beside c1's.
    fixture f;
    {
        st::resource_writer w(f.db, true, st::identity_policy{.keep_fhir_patient_id = true});
        auto c2 = condition("c2", "p1");
        auto& h = std::get<nz::condition_record>(c2).h;
        h.raw = R"({"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"},"v":2})";
        h.raw_hash = nz::sha256_hex(h.raw);
        write(f.db, w, {{c2, "key-one"}});
    }
    // Run
    const auto out = f.run(R"({"resource":"Condition","select":[{"column":[{"name":"id","path":"id"},
        {"name":"v","path":"v","type":"integer"}]}]})");
    // Check: c1 and c3 from the first frames, c2 once, from its new frame.
    EXPECT_EQ(out.rows, (std::vector<std::string>{"c1,\r\n", "c3,\r\n", "c2,2\r\n"}));
    EXPECT_EQ(out.result.resources, 3u);
}

TEST(raw_views, an_older_kept_json_is_named_and_left_out) {
    // Setup: c2 updated while store_raw was off, in a database from before
    // schema 12 whose resource_raw row was then not removed.
    fixture f(true);
    f.db.sql().exec("UPDATE condition SET raw_hash = 'h-c2-v2' WHERE id = 'c2'");
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
        b.h.raw = R"({"resourceType":"AllergyIntolerance","id":")" + id +
                  R"(","patient":{"reference":"Patient/p1"}})";
        b.h.raw_hash = nz::sha256_hex(b.h.raw);
        return nz::record{b};
    };
    {
        st::resource_writer w(f.db, true, st::identity_policy{.keep_fhir_patient_id = true});
        write(f.db, w, {{allergy("a1"), "key-one"}, {allergy("a2"), "key-one"}});
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
