// Ingest with materialized views (issue 16 item 3): a Synthea-like
// transaction Bundle gives exact rows in view_<name>, written in the same
// transaction as the Bundle's rows.
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include "headachemd/ingest/ingest.hpp"
#include "ingest_test_support.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

// As Synthea writes them: a transaction Bundle, urn:uuid references, blood
// pressure as LOINC 85354-9 with systolic (8480-6) and diastolic (8462-4)
// components, and a body weight that the view must leave out.
constexpr const char* synthea_bundle = R"({"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:7f0c","resource":{"resourceType":"Patient","id":"7f0c","gender":"female","birthDate":"1984-03-02",
   "name":[{"family":"Doe"}]},"request":{"method":"POST","url":"Patient"}},
 {"fullUrl":"urn:uuid:bp1","resource":{"resourceType":"Observation","id":"bp1","status":"final",
   "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
   "code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},
   "subject":{"reference":"urn:uuid:7f0c"},"effectiveDateTime":"2019-05-31T09:12:00-04:00",
   "component":[
     {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":81,"unit":"mm[Hg]"}},
     {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":128.5,"unit":"mm[Hg]"}}]},
   "request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:w1","resource":{"resourceType":"Observation","id":"w1","status":"final",
   "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"urn:uuid:7f0c"},
   "effectiveDateTime":"2019-05-31T09:12:00-04:00","valueQuantity":{"value":61.2,"unit":"kg"}},
   "request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:bp2","resource":{"resourceType":"Observation","id":"bp2","status":"final",
   "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"urn:uuid:7f0c"},
   "effectiveDateTime":"2020-01-02T10:00:00-05:00",
   "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":140,"unit":"mm[Hg]"}}]},
   "request":{"method":"POST","url":"Observation"}}
]})";

constexpr const char* bp_view = R"json({"resourceType":"ViewDefinition","name":"blood_pressure",
 "resource":"Observation","status":"active",
 "where":[{"path":"code.coding.exists(system = 'http://loinc.org' and code = '85354-9')"}],
 "select":[{"column":[
   {"name":"obs_id","path":"id","type":"id"},
   {"name":"effective","path":"effective.ofType(dateTime)","type":"dateTime"},
   {"name":"systolic","path":"component.where(code.coding.code = '8480-6').value.ofType(Quantity).value",
    "type":"decimal"},
   {"name":"diastolic","path":"component.where(code.coding.code = '8462-4').value.ofType(Quantity).value",
    "type":"decimal"}]}]})json";

// Fails on a resource with more than one coding (code is no collection).
constexpr const char* strict_view =
    R"({"resourceType":"ViewDefinition","resource":"Observation","status":"active",
 "select":[{"column":[{"name":"code","path":"code.coding.code"}]}]})";

// Keys of the subject (issue 16, getReferenceKey in a Bundle): under the
// default [privacy] identifiers = "none" the column holds the patient_key.
constexpr const char* key_view = R"json({"resourceType":"ViewDefinition","name":"keys",
 "resource":"Observation","status":"active",
 "select":[{"column":[
   {"name":"obs_id","path":"id","type":"id"},
   {"name":"patient","path":"subject.getReferenceKey(Patient)"}]}]})json";

// A collection Bundle whose Patient's id ("pat-9") is not its fullUrl's
// uuid, so a key made from the uuid would differ from the typed rows'; and
// an Observation whose urn:uuid subject no entry has.
constexpr const char* collection_bundle = R"({"resourceType":"Bundle","type":"collection","entry":[
 {"fullUrl":"urn:uuid:5d1f6a2e-0c4b-4e7a-9a51-3b7e0d2c9f10","resource":{"resourceType":"Patient","id":"pat-9"}},
 {"fullUrl":"urn:uuid:o1","resource":{"resourceType":"Observation","id":"o1","status":"final",
   "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
   "subject":{"reference":"urn:uuid:5d1f6a2e-0c4b-4e7a-9a51-3b7e0d2c9f10"}}},
 {"fullUrl":"urn:uuid:o2","resource":{"resourceType":"Observation","id":"o2","status":"final",
   "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
   "subject":{"reference":"urn:uuid:00000000-dead-4bad-8bad-000000000000"}}}
]})";

struct IngestViews : headachemd::test::ingest_fixture {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
        std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(200);

    IngestViews() { log = std::make_shared<spdlog::logger>("test", sink); }
    std::string logged() {
        std::string all;
        for (const auto& l : sink->last_formatted()) all += l;
        return all;
    }
};

TEST_F(IngestViews, ASyntheaBundleGivesExactRows) {
    // Setup
    write_file(dir / "bundle.json", synthea_bundle);
    // Run
    const auto r = ingest({dir / "bundle.json"}, with_view("bp", bp_view));
    // Check
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(rows("SELECT obs_id, effective, systolic, diastolic, _source, _resource_type FROM view_bp "
                   "ORDER BY obs_id"),
              (std::vector<std::string>{"bp1|2019-05-31T09:12:00-04:00|128.5|81.0|file|Observation",
                                        "bp2|2020-01-02T10:00:00-05:00|140.0|NULL|file|Observation"}));
    // keyed like the typed rows: the urn:uuid subject resolved to the patient's key
    EXPECT_EQ(rows("SELECT count(*) FROM view_bp v JOIN observation o ON o.id = v._resource_id "
                   "AND o.patient_key = v._patient_key"),
              (std::vector<std::string>{"2"}));
    // the raw JSON kept for the view is not stored (store_raw is off)
    EXPECT_EQ(rows("SELECT count(*) FROM resource_raw"), (std::vector<std::string>{"0"}));
}

TEST_F(IngestViews, NdjsonLinesAreMaterializedToo) {
    // Setup
    write_file(
        dir / "Observation.ndjson",
        R"({"resourceType":"Observation","id":"n1","status":"final","subject":{"reference":"Patient/p"},)"
        R"("code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},)"
        R"("component":[{"code":{"coding":[{"code":"8480-6"}]},"valueQuantity":{"value":110}}]})"
        "\n");
    // Run
    ingest({dir / "Observation.ndjson"}, with_view("bp", bp_view));
    // Check
    EXPECT_EQ(rows("SELECT obs_id, systolic FROM view_bp"), (std::vector<std::string>{"n1|110.0"}));
}

TEST_F(IngestViews, ARefusedDefinitionStopsTheIngesterBeforeAnythingIsWritten) {
    // Setup
    auto o = with_view("bad", R"({"resourceType":"ViewDefinition","resource":"Observation",
        "select":[{"column":[{"name":"x","path":"id..id"}]}]})");
    // Run / Check
    try {
        headachemd::ingest::ingester ing(db, key, o, log);
        ADD_FAILURE() << "a refused definition was accepted";
    } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        EXPECT_NE(
            what.find("[[view]] \"bad\": " + (dir / "bad.json").string() + ": select[0].column[0].path"),
            std::string::npos)
            << what;
    }
    EXPECT_TRUE(rows("SELECT name FROM sqlite_master WHERE name GLOB 'view_*' AND name <> 'view_definition'")
                    .empty());
}

TEST_F(IngestViews, AnEvaluationErrorIsLoggedWithoutThePayloadAndTheFileIsKept) {
    // Setup: w1 has one coding, bp1 has one, a third has two
    write_file(dir / "bundle.json",
               R"({"resourceType":"Bundle","type":"collection","entry":[
 {"resource":{"resourceType":"Observation","id":"two","status":"final","subject":{"reference":"Patient/p"},
   "code":{"coding":[{"code":"secret-code-1"},{"code":"secret-code-2"}]}}},
 {"resource":{"resourceType":"Observation","id":"one","status":"final","subject":{"reference":"Patient/p"},
   "code":{"coding":[{"code":"c"}]}}}]})");
    // Run
    const auto r = ingest({dir / "bundle.json"}, with_view("strict", strict_view));
    // Check
    EXPECT_EQ(r.per_type.at("Observation").inserted, 2u);
    EXPECT_EQ(rows("SELECT _resource_id, code FROM view_strict"), (std::vector<std::string>{"one|c"}));
    const std::string text = logged();
    EXPECT_NE(text.find("view strict: Observation/two has no rows: select[0].column[0].path"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("secret-code"), std::string::npos) << text;
}

// An ingest-only database has no full pull: a view configured after the
// files were ingested is back-filled from resource_raw at the next ingest's
// start, to the rows an ingest with the view would have written.
TEST_F(IngestViews, AViewAddedLaterIsBackfilledFromTheKeptJsonAtTheNextIngest) {
    // Setup: the reference (view from the start), and the bundle ingested
    // with --store-raw ("minimal") and no view
    write_file(dir / "bundle.json", synthea_bundle);
    fs::create_directory(dir / "empty");
    auto raw = with_view("bp", bp_view);
    raw.views.clear();
    raw.store_raw = true;
    raw.keep_fhir_patient_id = true;
    ingest({dir / "bundle.json"}, raw);
    std::vector<std::string> want;
    {
        temp_dir other;
        st::analytics_db ref_db{other / "headache.db"};
        auto o = with_view("bp", bp_view);
        o.keep_fhir_patient_id = true;
        headachemd::ingest::ingester ing(ref_db, key, o, log);
        ing.run({dir / "bundle.json"});
        SQLite::Statement q(ref_db.sql(), "SELECT * FROM view_bp ORDER BY obs_id");
        while (q.executeStep()) {
            std::string line;
            for (int i = 0; i < q.getColumnCount(); ++i)
                line += (i ? "|" : "") +
                        (q.getColumn(i).isNull() ? std::string("NULL") : q.getColumn(i).getString());
            want.push_back(line);
        }
    }
    ASSERT_EQ(want.size(), 2u);
    // Run: an ingest of nothing, with the view
    auto later = with_view("bp", bp_view);
    later.keep_fhir_patient_id = true;
    ingest({dir / "empty"}, later);
    // Check
    EXPECT_EQ(rows("SELECT * FROM view_bp ORDER BY obs_id"), want);
    EXPECT_EQ(rows("SELECT backfill_state, backfill_missing_raw FROM view_definition"),
              (std::vector<std::string>{"complete|0"}));
    EXPECT_NE(
        logged().find("view bp: back-filled 3 stored Observation resource(s) from the kept JSON; complete"),
        std::string::npos)
        << logged();
}

// Without kept JSON (store_raw off) the back-fill can do nothing: the view
// stays pending and says why.
TEST_F(IngestViews, WithoutKeptJsonTheViewStaysPendingUntilTheFilesComeAgain) {
    // Setup
    write_file(dir / "bundle.json", synthea_bundle);
    fs::create_directory(dir / "empty");
    ingest({dir / "bundle.json"}, headachemd::ingest::options{});
    // Run
    ingest({dir / "empty"}, with_view("bp", bp_view));
    // Check
    EXPECT_TRUE(rows("SELECT 1 FROM view_bp").empty());
    EXPECT_EQ(rows("SELECT backfill_state, backfill_missing_raw FROM view_definition"),
              (std::vector<std::string>{"pending|3"}));
    EXPECT_NE(
        logged().find("3 have no stored JSON of their current version (stored while store_raw was off)"),
        std::string::npos)
        << logged();
    // Run: the files again fill it (a pending view evaluates unchanged resources)
    ingest({dir / "bundle.json"}, with_view("bp", bp_view));
    EXPECT_EQ(rows("SELECT obs_id FROM view_bp ORDER BY 1"), (std::vector<std::string>{"bp1", "bp2"}));
}

}  // namespace

namespace {

// The key column of a view row is the typed row's patient_key: the
// urn:uuid subject resolved through the Bundle (R4 Bundle §"Resolving
// references in Bundles") to the Patient entry, then keyed as ingest keys it.
TEST_F(IngestViews, AUrnSubjectGivesTheTypedRowsPatientKey) {
    // Setup
    write_file(dir / "bundle.json", synthea_bundle);
    // Run
    const auto r = ingest({dir / "bundle.json"}, with_view("keys", key_view));
    // Check
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(rows("SELECT v.obs_id, v.patient = o.patient_key, v.patient = v._patient_key, "
                   "v.patient = p.patient_key FROM view_keys v JOIN observation o ON o.id = v._resource_id "
                   "JOIN patient p ON p.patient_key = o.patient_key ORDER BY v.obs_id"),
              (std::vector<std::string>{"bp1|1|1|1", "bp2|1|1|1", "w1|1|1|1"}));
    // a pseudonym, never the FHIR id or the urn
    EXPECT_EQ(rows("SELECT count(*) FROM view_keys WHERE patient IS NULL OR patient = '7f0c' OR "
                   "patient LIKE 'Patient/%' OR patient LIKE 'urn:%'"),
              (std::vector<std::string>{"0"}));
}

TEST_F(IngestViews, AUrnResolvesToTheEntrysIdAndAnUnknownUrnStaysNull) {
    // Setup
    write_file(dir / "bundle.json", collection_bundle);
    // Run
    const auto r = ingest({dir / "bundle.json"}, with_view("keys", key_view));
    // Check
    EXPECT_TRUE(r.clean());
    EXPECT_EQ(rows("SELECT v.obs_id, v.patient = o.patient_key, v.patient IS NULL FROM view_keys v "
                   "JOIN observation o ON o.id = v._resource_id ORDER BY v.obs_id"),
              (std::vector<std::string>{"o1|1|0", "o2|NULL|1"}));
    // o1's key is the key of the Patient pat-9 stored from this Bundle
    EXPECT_EQ(rows("SELECT count(*) FROM view_keys v JOIN patient p ON p.patient_key = v.patient"),
              (std::vector<std::string>{"1"}));
}

// Under [privacy] identifiers = "minimal" the key is the resolved FHIR id.
TEST_F(IngestViews, UnderMinimalAUrnSubjectGivesThePatientsFhirId) {
    // Setup
    write_file(dir / "bundle.json", collection_bundle);
    auto o = with_view("keys", key_view);
    o.keep_fhir_patient_id = true;
    // Run
    ingest({dir / "bundle.json"}, o);
    // Check
    EXPECT_EQ(rows("SELECT obs_id, patient FROM view_keys ORDER BY obs_id"),
              (std::vector<std::string>{"o1|Patient/pat-9", "o2|NULL"}));
}

// A real Synthea R4 transaction Bundle from ../shared/data: every view row
// has the patient_key of its typed observation row.
TEST_F(IngestViews, ARealSyntheaBundleKeysEveryViewRowLikeItsTypedRow) {
    HEADACHEMD_REQUIRE_SHARED("synthea-r4/patients");
    // Setup
    fs::path bundle;
    for (const auto& e : fs::directory_iterator(headachemd::test::shared_data() / "synthea-r4" / "patients"))
        if (e.path().filename().string().starts_with("Luigi_Wiegand_")) bundle = e.path();
    ASSERT_FALSE(bundle.empty());
    // Run
    const auto r = ingest({bundle}, with_view("keys", key_view));
    // Check
    EXPECT_TRUE(r.clean());
    const auto counts = rows(
        "SELECT count(*), sum(v.patient = o.patient_key), count(DISTINCT v.patient) FROM view_keys v "
        "JOIN observation o ON o.id = v._resource_id");
    ASSERT_EQ(counts.size(), 1u);
    const auto total = rows("SELECT count(*) FROM observation");
    EXPECT_EQ(counts[0], total.at(0) + "|" + total.at(0) + "|1");
    EXPECT_NE(total.at(0), "0");
}

}  // namespace
