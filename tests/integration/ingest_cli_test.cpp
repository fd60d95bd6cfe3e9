// `headachemd-sync ingest` end to end: the real binary on the third-party
// Synthea and Bulk Data files, and on inputs it must refuse.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include "headachemd/store/vault.hpp"
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

const std::map<std::string, std::string> table_of_type = {
    {"Patient", "patient"},         {"Condition", "condition"}, {"MedicationRequest", "medication_request"},
    {"Appointment", "appointment"}, {"Encounter", "encounter"}, {"Observation", "observation"},
    {"Procedure", "procedure"}};

std::vector<fs::path> files_under(const fs::path& dir, std::string_view ext) {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path());
    return out;
}

// Counts resources per type with simdjson's DOM API: a different code path
// from the normalizer's On-Demand parsing, so a miscount there shows here.
struct independent_counts {
    std::map<std::string, std::size_t> per_type;
    std::set<std::string> chronic_migraine_patients;  // FHIR patient ids with SNOMED 124171000119105
};

bool has_chronic_migraine_code(simdjson::dom::element resource) {
    simdjson::dom::array codings;
    if (resource["code"]["coding"].get(codings)) return false;
    for (auto c : codings) {
        std::string_view code;
        if (!c["code"].get(code) && code == "124171000119105") return true;
    }
    return false;
}

void count_resource(simdjson::dom::element res, std::string_view bundle_patient, independent_counts& out) {
    std::string_view type;
    ASSERT_FALSE(res["resourceType"].get(type));
    ++out.per_type[std::string(type)];
    if (type == "Condition" && has_chronic_migraine_code(res)) {
        std::string_view ref;
        ASSERT_FALSE(res["subject"]["reference"].get(ref));
        if (ref.starts_with("Patient/"))
            out.chronic_migraine_patients.insert(std::string(ref.substr(8)));
        else
            out.chronic_migraine_patients.insert(std::string(bundle_patient));
    }
}

independent_counts count_independently(const std::vector<fs::path>& bundles,
                                       const std::vector<fs::path>& ndjson) {
    independent_counts out;
    simdjson::dom::parser parser;
    for (const auto& f : bundles) {
        simdjson::dom::element doc;
        EXPECT_FALSE(parser.load(f.string()).get(doc)) << f;
        std::string_view patient;  // a Synthea bundle holds one patient
        for (auto e : doc["entry"].get_array()) {
            std::string_view t;
            if (!e["resource"]["resourceType"].get(t) && t == "Patient")
                patient = e["resource"]["id"].get_string();
        }
        const std::string patient_id(patient);
        for (auto e : doc["entry"].get_array()) count_resource(e["resource"], patient_id, out);
    }
    for (const auto& f : ndjson) {
        simdjson::padded_string text = simdjson::padded_string::load(f.string());
        simdjson::dom::document_stream stream;
        EXPECT_FALSE(parser.parse_many(text).get(stream));
        for (auto doc : stream) {
            simdjson::dom::element res = doc.value();
            std::string_view t;
            if (res["resourceType"].get(t)) continue;  // the export's log.ndjson: not FHIR
            count_resource(res, "", out);
        }
    }
    return out;
}

int table_count(SQLite::Database& db, const std::string& table) {
    SQLite::Statement q(db, "SELECT count(*) FROM \"" + table + "\"");
    q.executeStep();
    return q.getColumn(0).getInt();
}

std::string table_digest(SQLite::Database& db, const std::string& table) {
    SQLite::Statement q(
        db,
        "SELECT group_concat(source || '|' || id || '|' || raw_hash || '|' || ingested_at, ';') "
        "FROM (SELECT * FROM \"" +
            table + "\" ORDER BY source, id)");
    q.executeStep();
    return q.getColumn(0).isNull() ? "" : q.getColumn(0).getString();
}

TEST(IngestSharedData, EveryResourceLandsOnceAndASecondRunChangesNothing) {
    HEADACHEMD_REQUIRE_SHARED("synthea-r4");
    HEADACHEMD_REQUIRE_SHARED("synthea-bulk10-ndjson");
    // Setup
    temp_dir dir;
    const auto bundles = files_under(shared_data() / "synthea-r4", ".json");
    const auto ndjson = files_under(shared_data() / "synthea-bulk10-ndjson", ".ndjson");
    const independent_counts expected = count_independently(bundles, ndjson);
    const std::string db_path = (dir / "headache.db").string();
    const std::vector<std::string> args = {"ingest",
                                           "--token-key-file",
                                           headachemd::test::token_key_file(dir.path()).string(),
                                           "--db",
                                           db_path,
                                           "--source",
                                           "synthea",
                                           (shared_data() / "synthea-r4").string(),
                                           (shared_data() / "synthea-bulk10-ndjson").string()};
    // Run
    const auto first = run_binary(args, dir.path());
    // Check: the only rejected input is the export's log, which is not FHIR.
    EXPECT_EQ(first.exit_code, 65) << first.err;
    for (std::size_t pos = 0; (pos = first.err.find("error: ", pos)) != std::string::npos; ++pos) {
        const auto line = first.err.substr(pos, first.err.find('\n', pos) - pos);
        EXPECT_NE(line.find("log.ndjson"), std::string::npos) << line;
    }
    SQLite::Database db(db_path);
    std::map<std::string, std::string> digests;
    for (const auto& [type, table] : table_of_type) {
        const auto it = expected.per_type.find(type);
        const std::size_t want = it == expected.per_type.end() ? 0 : it->second;
        EXPECT_EQ(static_cast<std::size_t>(table_count(db, table)), want) << table;
        digests[table] = table_digest(db, table);
    }
    EXPECT_GT(expected.per_type.at("Observation"), 1000u);  // the data really was there

    // Run again: nothing may change, not even ingested_at.
    const auto second = run_binary(args, dir.path());
    EXPECT_EQ(second.exit_code, 65);
    EXPECT_NE(second.out.find("total"), std::string::npos);
    for (const auto& [type, table] : table_of_type)
        EXPECT_EQ(table_digest(db, table), digests[table]) << table;
    const auto total_line = second.out.substr(second.out.find("\ntotal"));
    std::size_t read = 0, inserted = 1, updated = 1;
    ASSERT_EQ(std::sscanf(total_line.c_str(), "\ntotal %zu %zu %zu", &read, &inserted, &updated), 3)
        << second.out;
    EXPECT_GT(read, 0u);
    EXPECT_EQ(inserted, 0u);
    EXPECT_EQ(updated, 0u);
}

TEST(IngestSharedData, EverySyntheaChronicMigrainePatientIsClassified) {
    HEADACHEMD_REQUIRE_SHARED("synthea-r4");
    // Setup: who has SNOMED 124171000119105, found without our normalizer.
    temp_dir dir;
    const auto bundles = files_under(shared_data() / "synthea-r4", ".json");
    std::vector<fs::path> ndjson;
    if (fs::exists(shared_data() / "synthea-bulk10-ndjson"))
        ndjson = files_under(shared_data() / "synthea-bulk10-ndjson", ".ndjson");
    const independent_counts expected = count_independently(bundles, ndjson);
    ASSERT_FALSE(expected.chronic_migraine_patients.empty());
    const std::string db_path = (dir / "headache.db").string();
    std::vector<std::string> args = {"ingest",
                                     "--token-key-file",
                                     headachemd::test::token_key_file(dir.path()).string(),
                                     "--db",
                                     db_path,
                                     "--source",
                                     "synthea",
                                     (shared_data() / "synthea-r4").string()};
    if (!ndjson.empty()) args.push_back((shared_data() / "synthea-bulk10-ndjson").string());
    // Run
    run_binary(args, dir.path());
    // Check: each of those patients has a condition row typed chronic_migraine.
    headachemd::store::vault vault(dir / "vault.db", headachemd::test::token_key_in(dir.path()));
    const auto key = vault.pseudonymization_key();
    SQLite::Database db(db_path);
    SQLite::Statement q(
        db,
        "SELECT count(*) FROM condition WHERE patient_key = ?1 AND headache_type = 'chronic_migraine' "
        "AND code = '124171000119105'");
    for (const auto& fhir_id : expected.chronic_migraine_patients) {
        q.reset();
        q.bind(1, headachemd::store::patient_key_for(key, "synthea", fhir_id));
        ASSERT_TRUE(q.executeStep());
        EXPECT_GE(q.getColumn(0).getInt(), 1) << "patient " << fhir_id;
    }
}

TEST(IngestCli, RejectedInputExits65AndNamesTheFile) {
    temp_dir dir;
    write_file(dir / "broken.json",
               R"({"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"x"}]})");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "h.db").string(), (dir / "broken.json").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("broken.json: entry 0"), std::string::npos) << r.err;
}

TEST(IngestCli, CleanInputExits0AndPrintsCountsAndThroughput) {
    temp_dir dir;
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"male\"}\n");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "h.db").string(), (dir / "p.ndjson").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Patient"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("MB/s"), std::string::npos) << r.out;
}

TEST(IngestCli, DatabaseThatIsNotSqliteIsRefusedUntouched) {
    temp_dir dir;
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
    const std::string junk = "name,dob\nnot,a database\n";
    write_file(dir / "h.db", junk);
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "h.db").string(), (dir / "p.ndjson").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 73) << r.err;  // EX_CANTCREAT: cannot be opened, nothing written
    EXPECT_NE(r.err.find("not an SQLite database"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(dir / "h.db"), junk);
}

TEST(IngestCli, ReadOnlyDatabaseIsRefusedUntouched) {
    temp_dir dir;
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
    const std::string db = (dir / "h.db").string();
    ASSERT_EQ(run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                          "--db", db, (dir / "p.ndjson").string()},
                         dir.path())
                  .exit_code,
              0);
    const std::string before = read_file(db);
    fs::permissions(db, fs::perms::owner_read | fs::perms::group_read);
    write_file(dir / "q.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"b\"}\n");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", db, (dir / "q.ndjson").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 73) << r.err;  // EX_CANTCREAT: cannot be opened, nothing written
    EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(db), before);
}

// The exit codes of docs/admin/ingest.md: 73 when the database
// cannot be opened or created (nothing written), 74 when it failed while
// writing (the open batch rolled back).

std::vector<std::string> ingest_args(const temp_dir& dir, const fs::path& input) {
    return {"ingest", "--token-key-file",      headachemd::test::token_key_file(dir.path()).string(),
            "--db",   (dir / "h.db").string(), input.string()};
}

// One Patient, so that the database exists, is migrated and carries the
// key's fingerprint: the runs below fail in their batch, not in opening.
void create_database(const temp_dir& dir) {
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
    const auto r = run_binary(ingest_args(dir, dir / "p.ndjson"), dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

// One Bundle (one transaction) of `n` Observations of patient a.
std::string observation_bundle(int n) {
    std::string out = R"({"resourceType":"Bundle","type":"collection","entry":[)";
    for (int i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        out += R"({"resource":{"resourceType":"Observation","id":"o)" + std::to_string(i) +
               R"(","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4",)"
               R"("display":"Heart rate"}],"text":"Heart rate, measured at rest in the clinic"},)"
               R"("subject":{"reference":"Patient/a"},"effectiveDateTime":"2024-01-02T03:04:05Z",)"
               R"("valueQuantity":{"value":)" +
               std::to_string(60 + i % 40) + R"(,"unit":"/min"}}})";
    }
    return out + "]}";
}

std::map<std::string, int> row_counts(const fs::path& db_path) {
    SQLite::Database db(db_path.string());
    std::map<std::string, int> out;
    for (const auto& [type, table] : table_of_type) out[table] = table_count(db, table);
    return out;
}

TEST(IngestCli, DatabaseWithANewerSchemaExits73Untouched) {
    temp_dir dir;
    create_database(dir);
    {
        SQLite::Database db((dir / "h.db").string(), SQLite::OPEN_READWRITE);
        db.exec("PRAGMA user_version = 999");
        db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    const std::string before = read_file(dir / "h.db");
    write_file(dir / "q.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"b\"}\n");
    const auto r = run_binary(ingest_args(dir, dir / "q.ndjson"), dir.path());
    EXPECT_EQ(r.exit_code, 73) << r.err;
    EXPECT_NE(r.err.find("newer than this binary"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(dir / "h.db"), before);
}

TEST(IngestCli, DatabaseInADirectoryThatDoesNotExistExits73) {
    temp_dir dir;
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "missing" / "h.db").string(), (dir / "p.ndjson").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 73) << r.err;
    EXPECT_FALSE(fs::exists(dir / "missing"));
}

// Runs the binary with a file-size limit (RLIMIT_FSIZE) and SIGXFSZ
// ignored: a write past the limit then fails with EFBIG, as a write on a
// full disk fails with ENOSPC, and SQLite reports it as an I/O error on the
// write (os_unix.c, unixWrite). No root, no small file system needed.
// fork + exec, because posix_spawn cannot set a resource limit; between
// the two only async-signal-safe calls (the test process has threads).
headachemd::test::command_result run_with_file_size_limit(std::vector<std::string> args, rlim_t limit,
                                                          const temp_dir& dir) {
    const std::string out_path = (dir / "stdout.txt").string(), err_path = (dir / "stderr.txt").string();
    std::vector<std::string> all{HEADACHEMD_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int in = ::open("/dev/null", O_RDONLY);
        const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0)
            ::_exit(127);
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;  // an ignored signal stays ignored across execve
        ::sigaction(SIGXFSZ, &ignore, nullptr);
        const struct rlimit rl { limit, limit };
        if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(127);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    headachemd::test::command_result r;
    if (pid < 0) return r;
    r.exit_code = headachemd::test::wait_exit(pid);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

TEST(IngestCli, DiskFullDuringABatchRollsItBackAndExits74) {
    temp_dir dir;
    create_database(dir);
    const auto before = row_counts(dir / "h.db");
    // 20,000 rows in one Bundle need megabytes of WAL; every file the run
    // opens is far smaller than the limit, so only the batch hits it.
    write_file(dir / "big.json", observation_bundle(20000));
    std::uintmax_t largest = 0;
    for (const auto& e : fs::directory_iterator(dir.path()))
        if (e.path().filename() != "big.json") largest = std::max(largest, e.file_size());
    const rlim_t limit = largest + (512u << 10);
    ASSERT_LT(limit, fs::file_size(dir / "big.json") / 2);
    const auto r = run_with_file_size_limit(ingest_args(dir, dir / "big.json"), limit, dir);
    EXPECT_EQ(r.exit_code, 74) << r.err;  // EX_IOERR: failed while writing
    EXPECT_NE(r.err.find("big.json"), std::string::npos) << r.err;
    EXPECT_EQ(row_counts(dir / "h.db"), before);
    // The same input loads once the disk has room: the failure left nothing half done.
    const auto again = run_binary(ingest_args(dir, dir / "big.json"), dir.path());
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(row_counts(dir / "h.db").at("observation"), before.at("observation") + 20000);
}

TEST(IngestCli, DatabaseLockedPastTheBusyTimeoutRollsBackTheBatchAndExits74) {
    temp_dir dir;
    create_database(dir);
    const auto before = row_counts(dir / "h.db");
    write_file(dir / "q.ndjson",
               "{\"resourceType\":\"Patient\",\"id\":\"b\"}\n{\"resourceType\":\"Patient\",\"id\":\"c\"}\n");
    // An analyst's open write transaction, held for the whole run: ingest
    // opens (WAL readers do not wait for a writer), then its batch waits
    // out busy_timeout (5 s, lib/store database.cpp) for the write lock.
    // No sleep: the lock is held until the child has exited.
    SQLite::Database analyst((dir / "h.db").string(), SQLite::OPEN_READWRITE);
    analyst.exec("BEGIN IMMEDIATE");
    const auto r = run_binary(ingest_args(dir, dir / "q.ndjson"), dir.path());
    analyst.exec("ROLLBACK");
    EXPECT_EQ(r.exit_code, 74) << r.err;  // EX_IOERR: failed while writing
    EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
    EXPECT_EQ(row_counts(dir / "h.db"), before);
}

TEST(IngestCli, NoArgumentsIsAUsageError) {
    temp_dir dir;
    const auto r = run_binary({"ingest"}, dir.path());
    EXPECT_EQ(r.exit_code, 64);
}

// `--view NAME=FILE`: the [[view]] of sync.toml for a clinic that only
// ingests files (issue 16 item 3).
constexpr const char* code_view = R"j({"resourceType":"ViewDefinition","resource":"Observation",
  "status":"active","select":[{"column":[{"name":"obs_id","path":"getResourceKey()"},
  {"name":"code","path":"code.coding.first().code"},
  {"name":"value","path":"value.ofType(Quantity).value","type":"decimal"}]}]})j";

std::vector<std::string> sql_rows(const fs::path& db, const std::string& sql) {
    SQLite::Database d(db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement q(d, sql);
    std::vector<std::string> out;
    while (q.executeStep()) {
        std::string line;
        for (int i = 0; i < q.getColumnCount(); ++i) line += (i ? "|" : "") + q.getColumn(i).getString();
        out.push_back(line);
    }
    return out;
}

TEST(IngestCli, AViewNamedOnTheCommandLineIsFilledWithTheFiles) {
    temp_dir dir;
    write_file(dir / "codes.json", code_view);
    write_file(
        dir / "o.ndjson",
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"subject\":{\"reference\":"
        "\"Patient/p\"},\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8302-2\"}]},"
        "\"valueQuantity\":{\"value\":172.5,\"unit\":\"cm\"}}\n");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "h.db").string(), "--identifiers", "minimal", "--view",
                    "codes=" + (dir / "codes.json").string(), (dir / "o.ndjson").string()},
                   dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(sql_rows(dir / "h.db", "SELECT obs_id, code, value, _resource_id FROM view_codes"),
              (std::vector<std::string>{"Observation/o1|8302-2|172.5|o1"}));
    EXPECT_EQ(sql_rows(dir / "h.db", "SELECT name, backfill_state FROM view_definition"),
              (std::vector<std::string>{"codes|complete"}));
}

// `--view` takes one value each time: the inputs after it stay inputs,
// however many there are (it took all but the last before).
TEST(IngestCli, InputsAfterAViewAreInputsAndViewsRepeat) {
    temp_dir dir;
    write_file(dir / "codes.json", code_view);
    write_file(dir / "again.json", code_view);
    const std::string obs =
        "{\"resourceType\":\"Observation\",\"id\":\"ID\",\"status\":\"final\",\"subject\":{\"reference\":"
        "\"Patient/p\"},\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8302-2\"}]},"
        "\"valueQuantity\":{\"value\":172.5,\"unit\":\"cm\"}}\n";
    const auto with_id = [&obs](const std::string& id) {
        std::string s = obs;
        s.replace(s.find("ID"), 2, id);
        return s;
    };
    write_file(dir / "one.ndjson", with_id("o1"));
    write_file(dir / "two.ndjson", with_id("o2"));
    const auto r = run_binary(
        {"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(), "--db",
         (dir / "h.db").string(), "--identifiers", "minimal", "--view",
         "codes=" + (dir / "codes.json").string(), "--view", "again=" + (dir / "again.json").string(),
         (dir / "one.ndjson").string(), (dir / "two.ndjson").string()},
        dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(sql_rows(dir / "h.db", "SELECT _resource_id FROM view_codes ORDER BY 1"),
              (std::vector<std::string>{"o1", "o2"}));
    EXPECT_EQ(sql_rows(dir / "h.db", "SELECT _resource_id FROM view_again ORDER BY 1"),
              (std::vector<std::string>{"o1", "o2"}));
}

TEST(IngestCli, ARefusedViewExits65WithItsPathAndMakesNoTable) {
    temp_dir dir;
    write_file(dir / "names.json",
               R"j({"resourceType":"ViewDefinition","resource":"Patient","status":"active",
      "select":[{"column":[{"name":"family","path":"name.family"}]}]})j");
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"male\"}\n");
    const auto r =
        run_binary({"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(),
                    "--db", (dir / "h.db").string(), "--view", "names=" + (dir / "names.json").string(),
                    (dir / "p.ndjson").string()},
                   dir.path());
    EXPECT_EQ(r.exit_code, 65) << r.err;
    EXPECT_NE(r.err.find("select[0].column[0].path"), std::string::npos) << r.err;
    if (fs::exists(dir / "h.db")) {
        EXPECT_TRUE(
            sql_rows(dir / "h.db", "SELECT name FROM sqlite_master WHERE name LIKE 'view_names%'").empty());
        EXPECT_EQ(sql_rows(dir / "h.db", "SELECT count(*) FROM patient"), (std::vector<std::string>{"0"}));
    }
}

TEST(IngestCli, AViewNameTheConfigWouldRefuseIsAUsageError) {
    temp_dir dir;
    write_file(dir / "codes.json", code_view);
    write_file(dir / "p.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"male\"}\n");
    for (const std::string spec : {"BP=", "definition=", "Blood=", "codes"}) {
        const auto r = run_binary(
            {"ingest", "--token-key-file", headachemd::test::token_key_file(dir.path()).string(), "--db",
             (dir / "h.db").string(), "--view",
             spec.ends_with("=") ? spec + (dir / "codes.json").string() : spec, (dir / "p.ndjson").string()},
            dir.path());
        EXPECT_EQ(r.exit_code, 64) << spec << ": " << r.err;
        EXPECT_NE(r.err.find("--view"), std::string::npos) << r.err;
    }
    EXPECT_FALSE(fs::exists(dir / "h.db"));
}

}  // namespace
