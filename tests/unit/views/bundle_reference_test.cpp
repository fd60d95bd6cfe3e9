// getReferenceKey() inside a Bundle: FHIR R4 Bundle §"Resolving references
// in Bundles" says a reference equal to an entry's fullUrl (urn:uuid:,
// urn:oid:, or an absolute URL) names that entry's resource. The engine
// resolves only through the caller's eval_options::resolve_reference; the
// index comes from views::index_bundle() here and in `view run`, and from
// the normalizer's fullUrl map in ingest (tests/unit/ingest).
//
// The Patient's id ("p-1") differs from its fullUrl's uuid on purpose: a key
// of "Patient/<uuid>" would mean the urn was read, not resolved.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <string>
#include <variant>
#include <vector>

#include "headachemd/views/view.hpp"

namespace {

namespace v = headachemd::views;

constexpr const char* patient_urn = "urn:uuid:0b1c7a52-3e7d-4c1a-9c55-6d1f1f0a4e01";

// A collection Bundle: a Patient, a Practitioner, and Observations whose
// subject is the Patient's urn, an unknown urn, an urn:oid Patient, an
// absolute fullUrl, the Practitioner, and a plain relative reference.
const char* bundle_json = R"({"resourceType":"Bundle","type":"collection","entry":[
  {"fullUrl":"urn:uuid:0b1c7a52-3e7d-4c1a-9c55-6d1f1f0a4e01",
   "resource":{"resourceType":"Patient","id":"p-1"}},
  {"fullUrl":"urn:uuid:77777777-0000-4000-8000-000000000007",
   "resource":{"resourceType":"Practitioner","id":"dr-7"}},
  {"fullUrl":"urn:oid:1.2.840.113619.2.1",
   "resource":{"resourceType":"Patient","id":"p-oid"}},
  {"fullUrl":"https://ehr.example/fhir/Patient/ABC",
   "resource":{"resourceType":"Patient","id":"p-abs"}},
  {"fullUrl":"urn:uuid:a1","resource":{"resourceType":"Observation","id":"o-resolved",
   "subject":{"reference":"urn:uuid:0b1c7a52-3e7d-4c1a-9c55-6d1f1f0a4e01"}}},
  {"fullUrl":"urn:uuid:a2","resource":{"resourceType":"Observation","id":"o-unknown",
   "subject":{"reference":"urn:uuid:99999999-9999-4999-8999-999999999999"}}},
  {"fullUrl":"urn:uuid:a3","resource":{"resourceType":"Observation","id":"o-oid",
   "subject":{"reference":"urn:oid:1.2.840.113619.2.1"}}},
  {"fullUrl":"urn:uuid:a4","resource":{"resourceType":"Observation","id":"o-abs",
   "subject":{"reference":"https://ehr.example/fhir/Patient/ABC"}}},
  {"fullUrl":"urn:uuid:a5","resource":{"resourceType":"Observation","id":"o-practitioner",
   "subject":{"reference":"urn:uuid:77777777-0000-4000-8000-000000000007"}}},
  {"fullUrl":"urn:uuid:a6","resource":{"resourceType":"Observation","id":"o-relative",
   "subject":{"reference":"Patient/p-rel"}}}
]})";

const char* key_view = R"j({"resource":"Observation","select":[{"column":[
    {"name":"id","path":"id"},
    {"name":"patient","path":"subject.getReferenceKey(Patient)"},
    {"name":"any","path":"subject.getReferenceKey()"}]}]})j";

const char* key_only_view = R"j({"resource":"Observation","select":[{"column":[
    {"name":"patient","path":"subject.getReferenceKey(Patient)"}]}]})j";

v::view compiled(const char* def, v::privacy rule) {
    auto r = v::compile(def, v::compile_options{rule});
    if (auto* e = std::get_if<v::compile_error>(&r)) {
        ADD_FAILURE() << e->json_path << ": " << e->message;
        return {};
    }
    return std::move(std::get<v::view>(r));
}

std::string text(const v::cell& c) {
    if (std::holds_alternative<std::monostate>(c)) return "null";
    if (const auto* s = std::get_if<std::string>(&c)) return *s;
    return "?";
}

// Rows of every Observation entry, each as "id|patient|any" or "patient".
std::vector<std::string> rows_of(const v::view& view, simdjson::dom::element bundle,
                                 const v::eval_options& opts) {
    std::vector<std::string> out;
    simdjson::dom::array entries;
    EXPECT_EQ(bundle["entry"].get(entries), simdjson::SUCCESS);
    for (auto e : entries) {
        simdjson::dom::element r;
        if (e["resource"].get(r)) continue;
        auto got = v::evaluate(view, r, opts);
        EXPECT_FALSE(got.error) << got.error->json_path << ": " << got.error->message;
        for (const auto& row : got.rows) {
            std::string line;
            for (std::size_t i = 0; i < row.size(); ++i) line += (i ? "|" : "") + text(row[i]);
            out.push_back(line);
        }
    }
    return out;
}

class bundle_references : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(parser_.parse(std::string(bundle_json)).get(root_), simdjson::SUCCESS);
    }
    simdjson::dom::parser parser_;
    simdjson::dom::element root_;
};

TEST_F(bundle_references, index_maps_each_full_url_to_type_and_id) {
    const auto index = v::index_bundle(root_);
    ASSERT_EQ(index.size(), 10u);
    const auto& p = index.at(patient_urn);
    EXPECT_EQ(p.type, "Patient");
    EXPECT_EQ(p.id, "p-1");
    EXPECT_EQ(index.at("https://ehr.example/fhir/Patient/ABC").id, "p-abs");
    EXPECT_EQ(index.at("urn:uuid:77777777-0000-4000-8000-000000000007").type, "Practitioner");
}

TEST_F(bundle_references, off_resolves_through_the_bundle_and_never_guesses) {
    const auto view = compiled(key_view, v::privacy::off);
    const auto index = v::index_bundle(root_);
    v::eval_options opts;
    opts.resolve_reference = v::resolver_of(index);
    EXPECT_EQ(rows_of(view, root_, opts), (std::vector<std::string>{
                                              // the entry's id, not the uuid
                                              "o-resolved|Patient/p-1|Patient/p-1",
                                              // no entry has this fullUrl: no key
                                              "o-unknown|null|null",
                                              "o-oid|Patient/p-oid|Patient/p-oid",
                                              // the entry's id wins over the URL's last segment
                                              "o-abs|Patient/p-abs|Patient/p-abs",
                                              // resolved, but not a Patient: the type filter drops it
                                              "o-practitioner|null|Practitioner/dr-7",
                                              // no fullUrl is "Patient/p-rel": read as Type/id
                                              "o-relative|Patient/p-rel|Patient/p-rel",
                                          }));
}

TEST_F(bundle_references, without_a_resolver_urns_have_no_key_and_the_rest_is_unchanged) {
    const auto view = compiled(key_view, v::privacy::off);
    EXPECT_EQ(rows_of(view, root_, {}), (std::vector<std::string>{
                                            "o-resolved|null|null",
                                            "o-unknown|null|null",
                                            "o-oid|null|null",
                                            "o-abs|Patient/ABC|Patient/ABC",
                                            "o-practitioner|null|null",
                                            "o-relative|Patient/p-rel|Patient/p-rel",
                                        }));
}

TEST_F(bundle_references, minimal_keeps_the_resolved_fhir_id) {
    const auto view = compiled(key_only_view, v::privacy::minimal);
    const auto index = v::index_bundle(root_);
    v::eval_options opts;
    opts.resolve_reference = v::resolver_of(index);
    opts.map_patient_key = [](std::string_view) { return std::string("must not be used"); };
    EXPECT_EQ(rows_of(view, root_, opts),
              (std::vector<std::string>{"Patient/p-1", "null", "Patient/p-oid", "Patient/p-abs", "null",
                                        "Patient/p-rel"}));
}

TEST_F(bundle_references, none_gives_the_patient_key_of_the_resolved_id_not_of_the_uuid) {
    const auto view = compiled(key_only_view, v::privacy::none);
    const auto index = v::index_bundle(root_);
    v::eval_options opts;
    opts.resolve_reference = v::resolver_of(index);
    std::vector<std::string> asked;
    opts.map_patient_key = [&](std::string_view id) {
        asked.emplace_back(id);
        return "pk:" + std::string(id);
    };
    EXPECT_EQ(rows_of(view, root_, opts),
              (std::vector<std::string>{"pk:p-1", "null", "pk:p-oid", "pk:p-abs", "null", "pk:p-rel"}));
    // The mapper never sees a urn or its uuid.
    EXPECT_EQ(asked, (std::vector<std::string>{"p-1", "p-oid", "p-abs", "p-rel"}));
}

// A transaction's resource may have no id yet; its urn:uuid is then its id
// (R4 Bundle.entry.fullUrl), as the normalizer stores it. Outside a
// transaction or batch such an entry names nothing, and is left out.
TEST(bundle_index, an_id_less_transaction_entry_takes_its_uuid) {
    simdjson::dom::parser parser;
    const std::string tx = R"({"resourceType":"Bundle","type":"transaction","entry":[
      {"fullUrl":"urn:uuid:11111111-2222-4333-8444-555555555555","resource":{"resourceType":"Patient"}},
      {"fullUrl":"urn:uuid:x","resource":{"resourceType":"Observation","id":"o"}},
      {"resource":{"resourceType":"Observation","id":"no-full-url"}},
      {"fullUrl":"urn:uuid:y","request":{"method":"DELETE","url":"Patient/1"}}]})";
    simdjson::dom::element root;
    ASSERT_EQ(parser.parse(tx).get(root), simdjson::SUCCESS);
    const auto index = v::index_bundle(root);
    ASSERT_EQ(index.size(), 2u);
    EXPECT_EQ(index.at("urn:uuid:11111111-2222-4333-8444-555555555555").id,
              "11111111-2222-4333-8444-555555555555");
    EXPECT_EQ(index.at("urn:uuid:x").id, "o");

    const std::string collection = R"({"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"urn:uuid:11111111-2222-4333-8444-555555555555","resource":{"resourceType":"Patient"}}]})";
    ASSERT_EQ(parser.parse(collection).get(root), simdjson::SUCCESS);
    EXPECT_TRUE(v::index_bundle(root).empty());

    ASSERT_EQ(parser.parse(std::string(R"({"resourceType":"Patient","id":"p"})")).get(root),
              simdjson::SUCCESS);
    EXPECT_TRUE(v::index_bundle(root).empty());
}

// A fullUrl given twice names its first entry, as in the normalizer.
TEST(bundle_index, a_repeated_full_url_keeps_its_first_entry) {
    simdjson::dom::parser parser;
    const std::string json = R"({"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"urn:uuid:d","resource":{"resourceType":"Patient","id":"first"}},
      {"fullUrl":"urn:uuid:d","resource":{"resourceType":"Patient","id":"second"}}]})";
    simdjson::dom::element root;
    ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS);
    EXPECT_EQ(v::index_bundle(root).at("urn:uuid:d").id, "first");
}

}  // namespace
