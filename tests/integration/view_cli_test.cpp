// `headachemd-sync view run` end to end (issue 16 item 5): the real binary
// over a small fixture written here, over the third-party Synthea Bulk
// Data export, and on definitions it must refuse.
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include "run_command.hpp"
#include "test_support.hpp"
#include "vault_support.hpp"

namespace {

namespace fs = std::filesystem;
using headachemd::test::read_file;
using headachemd::test::run_binary;
using headachemd::test::shared_data;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

std::vector<std::string> lines_of(const std::string& text, const std::string& end = "\n") {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < text.size()) {
        auto next = text.find(end, at);
        if (next == std::string::npos) next = text.size();
        out.push_back(text.substr(at, next - at));
        at = next + end.size();
    }
    return out;
}

// A Bundle with a Patient and an Observation, and NDJSON with two more.
struct fixture {
    temp_dir dir;
    fixture() {
        fs::create_directories(dir.path() / "data");
        write_file(dir.path() / "data" / "bundle.json",
                   R"({"resourceType":"Bundle","type":"collection","entry":[
 {"resource":{"resourceType":"Patient","id":"pat-1","gender":"female","name":[{"family":"Doe"}]}},
 {"resource":{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/pat-1"},
  "code":{"coding":[{"code":"8867-4"}],"text":"Heart rate, \"resting\""},"valueQuantity":{"value":61}}}]})");
        write_file(
            dir.path() / "data" / "obs.ndjson",
            R"({"resourceType":"Observation","id":"o2","status":"final","subject":{"reference":"Patient/pat-1"},"code":{"coding":[{"code":"8480-6"},{"code":"x,y"}]},"valueQuantity":{"value":120.5}})"
            "\n\n"
            R"({"resourceType":"Observation","id":"o3","status":"final","subject":{"reference":"Patient/pat-2"},"code":{"text":"two\nlines"}})"
            "\n");
        write_file(dir.path() / "data" / ".hidden.json", R"({"resourceType":"Observation","id":"hidden"})");
    }
    fs::path def(const std::string& name, const std::string& json) const {
        write_file(dir.path() / name, json);
        return dir.path() / name;
    }
};

const char* plain_view = R"j({"resource":"Observation","select":[{"column":[
  {"name":"id","path":"id"},{"name":"code","path":"code.coding.code","collection":true},
  {"name":"text","path":"code.text"},{"name":"value","path":"value.ofType(Quantity).value"}]}]})j";

TEST(ViewRunCli, CsvOverABundleAndNdjsonIsByteExact) {
    fixture f;
    const auto r =
        run_binary({"view", "run", f.def("v.json", plain_view).string(), (f.dir.path() / "data").string()},
                   f.dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Name order: bundle.json, then obs.ndjson; the hidden file is skipped.
    EXPECT_EQ(r.out,
              "id,code,text,value\r\n"
              "o1,\"[\"\"8867-4\"\"]\",\"Heart rate, \"\"resting\"\"\",61\r\n"
              "o2,\"[\"\"8480-6\"\",\"\"x,y\"\"]\",,120.5\r\n"
              "o3,[],\"two\nlines\",\r\n");
    EXPECT_EQ(r.err, "");
}

TEST(ViewRunCli, NdjsonFormat) {
    fixture f;
    const auto r = run_binary({"view", "run", f.def("v.json", plain_view).string(),
                               (f.dir.path() / "data" / "obs.ndjson").string(), "--format", "ndjson"},
                              f.dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "{\"id\":\"o2\",\"code\":[\"8480-6\",\"x,y\"],\"text\":null,\"value\":120.5}\n"
              "{\"id\":\"o3\",\"code\":[],\"text\":\"two\\nlines\",\"value\":null}\n");
}

TEST(ViewRunCli, PatientKeysArePseudonymsNeverTheFhirId) {
    fixture f;
    const auto def = f.def("k.json", R"j({"resource":"Observation","select":[{"column":[
      {"name":"id","path":"id"},{"name":"patient","path":"subject.getReferenceKey(Patient)"}]}]})j");
    const auto r = run_binary({"view", "run", def.string(), (f.dir.path() / "data").string()}, f.dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto rows = lines_of(r.out, "\r\n");
    ASSERT_EQ(rows.size(), 4u) << r.out;
    EXPECT_EQ(r.out.find("pat-"), std::string::npos) << r.out;
    auto key = [&](std::size_t i) { return rows[i].substr(rows[i].find(',') + 1); };
    EXPECT_EQ(key(1).size(), 32u) << rows[1];
    EXPECT_EQ(key(1), key(2));  // the same patient, the same key within a run
    EXPECT_NE(key(1), key(3));
    // The key is random per run: it links nothing outside this output.
    const auto again =
        run_binary({"view", "run", def.string(), (f.dir.path() / "data").string()}, f.dir.path());
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(lines_of(again.out, "\r\n").at(1), rows[1]);
}

// A transaction Bundle's urn:uuid subject resolves through the entry's
// fullUrl to the Patient's id (R4 Bundle §"Resolving references in
// Bundles"), so its key is the key "Patient/pat-u" gets from an NDJSON line;
// a urn no entry has gives no key; the resolution does not leak into the
// next file.
TEST(ViewRunCli, UrnSubjectsInABundleResolveToThePatientsKey) {
    temp_dir dir;
    fs::create_directories(dir.path() / "data");
    write_file(dir.path() / "data" / "a.json", R"({"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:6a3e2f10-8d4b-4c2a-9e1f-0b7c5d9e2a11","resource":{"resourceType":"Patient","id":"pat-u"}},
 {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Observation","id":"u1",
  "subject":{"reference":"urn:uuid:6a3e2f10-8d4b-4c2a-9e1f-0b7c5d9e2a11"}}},
 {"fullUrl":"urn:uuid:c2","resource":{"resourceType":"Observation","id":"u2",
  "subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000000"}}}]})");
    write_file(
        dir.path() / "data" / "b.ndjson",
        R"({"resourceType":"Observation","id":"u3","subject":{"reference":"Patient/pat-u"}})"
        "\n"
        R"({"resourceType":"Observation","id":"u4","subject":{"reference":"urn:uuid:6a3e2f10-8d4b-4c2a-9e1f-0b7c5d9e2a11"}})"
        "\n");
    write_file(dir.path() / "k.json", R"j({"resource":"Observation","select":[{"column":[
      {"name":"id","path":"id"},{"name":"patient","path":"subject.getReferenceKey(Patient)"}]}]})j");
    const auto r = run_binary(
        {"view", "run", (dir.path() / "k.json").string(), (dir.path() / "data").string()}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto rows = lines_of(r.out, "\r\n");
    ASSERT_EQ(rows.size(), 5u) << r.out;
    EXPECT_EQ(r.out.find("pat-u"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("6a3e2f10"), std::string::npos) << r.out;
    const std::string k1 = rows[1].substr(3), k3 = rows[3].substr(3);
    EXPECT_EQ(rows[1].substr(0, 3), "u1,");
    EXPECT_EQ(k1.size(), 32u) << r.out;
    EXPECT_EQ(k1, k3);          // resolved to pat-u, keyed as pat-u
    EXPECT_EQ(rows[2], "u2,");  // a urn no entry has: no key
    EXPECT_EQ(rows[4], "u4,");  // outside the Bundle a urn has no key
}

TEST(ViewRunCli, ARefusedDefinitionExits65AndNamesThePath) {
    fixture f;
    const auto def = f.def("bad.json", R"({"resource":"Patient","select":[{"column":[
      {"name":"g","path":"gender"},{"name":"n","path":"%resource.name.family"}]}]})");
    const auto r = run_binary({"view", "run", def.string(), (f.dir.path() / "data").string()}, f.dir.path());
    EXPECT_EQ(r.exit_code, 65);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("refused at select[0].column[1].path (offset 10)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("identifiers = \"none\""), std::string::npos) << r.err;
}

TEST(ViewRunCli, UsageAndInputErrors) {
    fixture f;
    const auto def = f.def("v.json", plain_view);
    const auto none = run_binary({"view", "run", def.string()}, f.dir.path());
    EXPECT_EQ(none.exit_code, 64);
    EXPECT_NE(none.err.find("or --db"), std::string::npos) << none.err;
    const auto missing_def =
        run_binary({"view", "run", (f.dir.path() / "nope.json").string(), "x"}, f.dir.path());
    EXPECT_EQ(missing_def.exit_code, 66) << missing_def.err;
    const auto format = run_binary({"view", "run", def.string(), "x", "--format", "xml"}, f.dir.path());
    EXPECT_EQ(format.exit_code, 64);
    // A broken line is reported with its line number; the other rows still print.
    write_file(f.dir.path() / "data" / "obs.ndjson",
               "{\"resourceType\":\"Observation\",\"id\":\"ok\"}\n{\"resourceType\":\n");
    const auto broken = run_binary(
        {"view", "run", def.string(), (f.dir.path() / "data" / "obs.ndjson").string()}, f.dir.path());
    EXPECT_EQ(broken.exit_code, 65);
    EXPECT_EQ(broken.out, "id,code,text,value\r\nok,[],,\r\n");
    EXPECT_NE(broken.err.find("obs.ndjson:2:"), std::string::npos) << broken.err;
}

TEST(ViewRunCli, ConfigPrivacyDecidesTheRule) {
    fixture f;
    const auto def = f.def("k.json", R"j({"resource":"Observation","select":[{"column":[
      {"name":"patient","path":"subject.getReferenceKey(Patient)"},{"name":"ref","path":"subject.reference"}]}]})j");
    const auto data = (f.dir.path() / "data" / "obs.ndjson").string();
    write_file(f.dir.path() / "minimal.toml", "[privacy]\nidentifiers = \"minimal\"\n");
    write_file(f.dir.path() / "none.toml", "[privacy]\nidentifiers = \"none\"\n");
    write_file(f.dir.path() / "wrong.toml", "[privacy]\nidentifiers = \"all\"\n");
    // minimal: the FHIR id, as the analytics tables allow it.
    const auto minimal =
        run_binary({"view", "run", def.string(), data, "--config", (f.dir.path() / "minimal.toml").string()},
                   f.dir.path());
    ASSERT_EQ(minimal.exit_code, 0) << minimal.err;
    EXPECT_EQ(minimal.out, "patient,ref\r\nPatient/pat-1,Patient/pat-1\r\nPatient/pat-2,Patient/pat-2\r\n");
    // none, from the config and by default: `reference` is refused.
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--config", (f.dir.path() / "none.toml").string()},
          std::vector<std::string>{}}) {
        std::vector<std::string> args{"view", "run", def.string(), data};
        args.insert(args.end(), extra.begin(), extra.end());
        const auto none = run_binary(args, f.dir.path());
        EXPECT_EQ(none.exit_code, 65);
        EXPECT_NE(none.err.find("select[0].column[1].path (offset 8)"), std::string::npos) << none.err;
    }
    const auto wrong =
        run_binary({"view", "run", def.string(), data, "--config", (f.dir.path() / "wrong.toml").string()},
                   f.dir.path());
    EXPECT_EQ(wrong.exit_code, 78);
    EXPECT_EQ(wrong.out, "");
}

// --db: the resources `ingest --store-raw` kept in headache.db's
// resource_raw. Two patients and three Observations; pat-2's Observation
// o2 has a component the definition does not read.
struct db_fixture {
    temp_dir dir;
    fs::path db = dir / "h.db";
    fs::path def = dir / "k.json";
    db_fixture(bool store_raw = true) {
        write_file(
            dir / "in.ndjson",
            R"({"resourceType":"Patient","id":"pat-1","gender":"female"})"
            "\n"
            R"({"resourceType":"Patient","id":"pat-2","gender":"male"})"
            "\n"
            R"({"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/pat-1"},"code":{"coding":[{"code":"8867-4"}]},"valueQuantity":{"value":61}})"
            "\n"
            R"({"resourceType":"Observation","id":"o2","status":"final","subject":{"reference":"Patient/pat-2"},"code":{"coding":[{"code":"8480-6"}]},"valueQuantity":{"value":120.5}})"
            "\n"
            R"({"resourceType":"Observation","id":"o3","status":"final","subject":{"reference":"Patient/pat-1"},"code":{"coding":[{"code":"8480-6"}]}})"
            "\n");
        write_file(def, R"j({"resource":"Observation","select":[{"column":[
          {"name":"id","path":"id"},{"name":"patient","path":"subject.getReferenceKey(Patient)"},
          {"name":"code","path":"code.coding.code"},{"name":"value","path":"value.ofType(Quantity).value"}]}]})j");
        std::vector<std::string> args{
            "ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
            "--db",   db.string(),        "--source",
            "clinic", "--identifiers",    "minimal"};
        if (store_raw) args.push_back("--store-raw");
        args.push_back((dir / "in.ndjson").string());
        const auto r = run_binary(args, dir.path());
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    // The key headache.db stored, read from the analyst table itself.
    std::string stored_key(const std::string& observation_id) const {
        SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(d, "SELECT patient_key FROM observation WHERE source = 'clinic' AND id = ?1");
        q.bind(1, observation_id);
        return q.executeStep() ? q.getColumn(0).getString() : "";
    }
    void exec(const std::string& sql) const {
        SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
        d.exec(sql);
    }
    headachemd::test::command_result view(std::vector<std::string> extra) const {
        std::vector<std::string> args{"view", "run", def.string()};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_binary(args, dir.path());
    }
};

TEST(ViewRunCli, DbGivesTheStoredRowsWithTheStoredPatientKey) {
    db_fixture f;
    const std::string k1 = f.stored_key("o1"), k2 = f.stored_key("o2");
    ASSERT_EQ(k1.size(), 32u);
    ASSERT_EQ(k2.size(), 32u);
    ASSERT_NE(k1, k2);
    ASSERT_EQ(f.stored_key("o3"), k1);
    const auto r = f.view({"--db", f.db.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // In the order stored: o1 and o3 are one patient's frame, o2 the other's.
    EXPECT_EQ(r.out,
              "id,patient,code,value\r\n"
              "o1," +
                  k1 +
                  ",8867-4,61\r\n"
                  "o3," +
                  k1 +
                  ",8480-6,\r\n"
                  "o2," +
                  k2 + ",8480-6,120.5\r\n");
    EXPECT_EQ(r.out.find("pat-"), std::string::npos) << r.out;
    EXPECT_EQ(r.err, "");
    // The same rows again: the key is the stored one, not a per-run pseudonym.
    EXPECT_EQ(f.view({"--db", f.db.string()}).out, r.out);
    // --db without a path: the config's [daemon] database.
    write_file(f.dir / "sync.toml", "[daemon]\ndatabase = \"" + f.db.string() + "\"\n");
    const auto via_config =
        f.view({"--db", "--config", (f.dir / "sync.toml").string(), "--format", "ndjson"});
    ASSERT_EQ(via_config.exit_code, 0) << via_config.err;
    EXPECT_EQ(lines_of(via_config.out).at(0),
              "{\"id\":\"o1\",\"patient\":\"" + k1 + "\",\"code\":\"8867-4\",\"value\":61}");
}

TEST(ViewRunCli, DbLeavesOutDeletedResources) {
    db_fixture f;
    const std::string k1 = f.stored_key("o1");
    f.exec("UPDATE observation SET deleted_at = '2026-12-01T00:00:00Z' WHERE id = 'o2'");
    const auto r = f.view({"--db", f.db.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "id,patient,code,value\r\no1," + k1 + ",8867-4,61\r\no3," + k1 + ",8480-6,\r\n");
    f.exec("UPDATE observation SET deleted_at = '2026-12-01T00:00:00Z'");
    const auto none = f.view({"--db", f.db.string()});
    EXPECT_EQ(none.exit_code, 0) << none.err;
    EXPECT_EQ(none.out, "id,patient,code,value\r\n");
}

TEST(ViewRunCli, DbAndFilesTogetherIsAUsageError) {
    db_fixture f;
    for (const auto& args : {std::vector<std::string>{"--db", f.db.string(), (f.dir / "in.ndjson").string()},
                             std::vector<std::string>{(f.dir / "in.ndjson").string(), "--db"}}) {
        const auto r = f.view(args);
        EXPECT_EQ(r.exit_code, 64) << r.err;
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
    }
}

TEST(ViewRunCli, DbWithoutStoreRawSaysSoAndHowToTurnItOn) {
    db_fixture f(/*store_raw=*/false);
    ASSERT_EQ(f.stored_key("o1").size(), 32u);  // the typed rows are there
    const auto r = f.view({"--db", f.db.string()});
    EXPECT_EQ(r.exit_code, 66) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("no JSON of Observation resources is kept: store_raw was off"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("--store-raw --identifiers minimal"), std::string::npos) << r.err;
}

TEST(ViewRunCli, DbARefusedDefinitionExits65BeforeOpeningAnything) {
    db_fixture f;
    write_file(
        f.def,
        R"j({"resource":"Observation","select":[{"column":[{"name":"r","path":"subject.reference"}]}]})j");
    const fs::path absent = f.dir / "absent.db";
    const auto r = f.view({"--db", absent.string()});
    EXPECT_EQ(r.exit_code, 65) << r.err;  // not 66: the database was never looked for
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("refused at select[0].column[0].path"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(absent));
    write_file(f.def, plain_view);
    const auto no_db = f.view({"--db", absent.string()});
    EXPECT_EQ(no_db.exit_code, 66) << no_db.err;
    EXPECT_FALSE(fs::exists(absent));
}

TEST(ViewRunCli, DbADamagedRawRowIsNamedAndTheOthersStillPrint) {
    db_fixture f;
    const std::string k1 = f.stored_key("o1");
    // o2 is the other patient's: its frame alone (schema 12).
    f.exec(
        "UPDATE raw_frame SET raw = X'28B52FFD00' WHERE frame = (SELECT raw_frame FROM observation WHERE id "
        "= 'o2')");
    const auto r = f.view({"--db", f.db.string()});
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_EQ(r.out, "id,patient,code,value\r\no1," + k1 + ",8867-4,61\r\no3," + k1 + ",8480-6,\r\n");
    EXPECT_NE(r.err.find("error: raw_frame 2 (source 'clinic', Observation, 1 resource(s)): the zstd frame"),
              std::string::npos)
        << r.err;
}

// The Synthea Bulk Data export: one row per Condition, counted
// independently, and no FHIR patient id anywhere in the output.
TEST(ViewRunCli, SyntheaBulkConditionsOneRowEachAndNoFhirPatientId) {
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson");
    const fs::path dir = shared_data() / "synthea-bulk10-ndjson";
    temp_dir scratch;
    write_file(scratch.path() / "c.json", R"j({"resource":"Condition","select":[{"column":[
      {"name":"id","path":"id"},{"name":"patient","path":"subject.getReferenceKey(Patient)"},
      {"name":"code","path":"code.coding.first().code"}]}]})j");
    const auto r =
        run_binary({"view", "run", (scratch.path() / "c.json").string(), dir.string()}, scratch.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;

    simdjson::dom::parser parser;
    std::size_t conditions = 0;
    std::set<std::string> patient_ids;
    for (const auto& line : lines_of(read_file(dir / "Condition.000.ndjson"))) {
        if (!line.empty()) ++conditions;
    }
    for (const auto& line : lines_of(read_file(dir / "Patient.000.ndjson"))) {
        std::string_view id;
        if (!line.empty() && !parser.parse(line)["id"].get(id)) patient_ids.emplace(id);
    }
    ASSERT_GT(conditions, 0u);
    ASSERT_FALSE(patient_ids.empty());
    const auto rows = lines_of(r.out, "\r\n");
    EXPECT_EQ(rows.size(), conditions + 1);
    for (const auto& id : patient_ids)
        EXPECT_EQ(r.out.find(id), std::string::npos) << "FHIR id in the output";
    for (std::size_t i = 1; i < rows.size(); ++i) {
        const auto first = rows[i].find(',');
        const auto second = rows[i].find(',', first + 1);
        EXPECT_EQ(second - first - 1, 32u) << "row " << i << " has no patient key";
    }
}

}  // namespace
