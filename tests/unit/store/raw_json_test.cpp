// Kept JSON (store_raw): since schema 12 the writer puts a page's JSON for
// one patient and type into one raw_frame and points each row into it;
// resource_raw rows of schema 8 ('zstd') and before ('json') stay readable;
// damaged frames, rows and pointers are refused with the resource named;
// and the migrations of databases that hold raw rows.
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/normalize/sha256.hpp"
#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/commit_page.hpp"
#include "headachemd/store/raw_json.hpp"
#include "test_support.hpp"

namespace {

namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::temp_dir;

std::string text(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    if (!q.executeStep() || q.getColumn(0).isNull()) return "<null>";
    return q.getColumn(0).getString();
}

// Exact bytes as an EHR sends them: indentation, non-ASCII, escapes. The
// round trip must give back these bytes, not an equivalent JSON.
const std::string condition_json =
    "{\n  \"resourceType\" : \"Condition\",\n  \"id\": \"c1\",\n  \"code\": {\"text\": \"Migr\xC3\xA4ne "
    "\\u00e4 \\\"chronic\\\"\"},\n  \"subject\": {\"reference\": \"Patient/p1\"}\n}";

// raw_hash as the normalizer computes it: the SHA-256 of the exact bytes
// (the reader checks it against the bytes a row points to).
nz::condition_record condition(std::string id, std::string json) {
    nz::condition_record c;
    c.h.id = std::move(id);
    c.h.patient_ref = "p1";
    c.h.raw_hash = nz::sha256_hex(json);
    c.h.raw = std::move(json);
    c.code = "G43.709";
    return c;
}

// One page, as sync and ingest write it.
void write_all(st::analytics_db& db, st::resource_writer& w, const std::vector<nz::record>& records) {
    st::page_hooks hooks;
    static const std::string key = "pk1";
    hooks.patient_key = [](const nz::record&) -> const std::string& { return key; };
    st::commit_page(db, w, records, "ehr", "2026-01-01T00:00:00Z", hooks);
}
void write(st::analytics_db& db, st::resource_writer& w, const nz::record& r) { write_all(db, w, {r}); }

st::raw_row row_of(std::string_view encoding, std::string_view stored) {
    return st::raw_row{"ehr", "Condition", "c1", encoding, stored};
}

std::string compressed(std::string_view json) {
    st::raw_compressor c;
    return std::string(c.compress(json));
}

// The message of the raw_decode_error that decoding `row` throws.
std::string decode_error(const st::raw_row& row) {
    try {
        (void)st::raw_json_text(row);
    } catch (const st::raw_decode_error& e) {
        return e.what();
    }
    return "<no error>";
}

constexpr const char* row_named = "resource_raw row (source 'ehr', Condition/c1)";

// --- round trip -----------------------------------------------------------------

TEST(RawJson, TheWriterStoresZstdAndReadRawJsonGivesBackTheExactBytes) {
    // Setup
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    std::string big = condition_json;
    for (int i = 0; i < 200; ++i) big.insert(big.size() - 1, ",\n  \"note" + std::to_string(i) + "\": \"x\"");
    // Run
    write(db, w, condition("c1", condition_json));
    write(db, w, condition("c2", big));
    // Check: a frame per page, compressed (not the text), and the same bytes back.
    EXPECT_EQ(
        text(db.sql(), "SELECT group_concat(frame || ':' || resources || ':' || typeof(raw)) FROM raw_frame"),
        "1:1:blob,2:1:blob");
    EXPECT_LT(std::stoul(text(db.sql(), "SELECT length(raw) FROM raw_frame WHERE frame = 2")),
              big.size() / 4);
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM resource_raw"), "0");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"), big);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "absent"), std::nullopt);
    EXPECT_EQ(st::read_raw_json(db.sql(), "other", "Condition", "c1"), std::nullopt);
}

TEST(RawJson, APagesResourcesOfOnePatientAndTypeShareOneFrame) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    const std::string j2 = R"({"resourceType":"Condition","id":"c2"})";
    const std::string j3 = R"({"resourceType":"Condition","id":"c3","x":"\u00e4"})";
    // Run
    write_all(db, w, {condition("c1", condition_json), condition("c2", j2), condition("c3", j3)});
    // Check: one frame of three, the rows pointing at consecutive slices.
    EXPECT_EQ(text(db.sql(),
                   "SELECT group_concat(source || ':' || patient_key || ':' || resource_type || ':' || "
                   "resources || ':' || length(sizes)) FROM raw_frame"),
              "ehr:pk1:Condition:3:12");
    EXPECT_EQ(text(db.sql(),
                   "SELECT group_concat(id || '@' || raw_frame || '/' || raw_at || '+' || raw_len, ' ') "
                   "FROM (SELECT * FROM condition ORDER BY raw_at)"),
              "c1@1/0+" + std::to_string(condition_json.size()) + " c2@1/" +
                  std::to_string(condition_json.size()) + "+" + std::to_string(j2.size()) + " c3@1/" +
                  std::to_string(condition_json.size() + j2.size()) + "+" + std::to_string(j3.size()));
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"), j2);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c3"), j3);
}

TEST(RawJson, AChangedResourcePointsAtItsNewJsonAndAFrameNothingPointsIntoGoes) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    const std::string j2 = R"({"resourceType":"Condition","id":"c2"})";
    write_all(db, w, {condition("c1", condition_json), condition("c2", j2)});
    // Run 1: c1 changes; frame 1 keeps c2's JSON.
    write(db, w, condition("c1", R"({"resourceType":"Condition","id":"c1","v":2})"));
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(frame || ':' || resources) FROM raw_frame"), "1:1,2:1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"),
              R"({"resourceType":"Condition","id":"c1","v":2})");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"), j2);
    // Run 2: c2 changes too: nothing points into frame 1 any more.
    write(db, w, condition("c2", R"({"resourceType":"Condition","id":"c2","v":2})"));
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(frame || ':' || resources) FROM raw_frame"), "2:1,3:1");
    // Run 3: unchanged: nothing is written.
    write(db, w, condition("c2", R"({"resourceType":"Condition","id":"c2","v":2})"));
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(frame || ':' || resources) FROM raw_frame"), "2:1,3:1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"),
              R"({"resourceType":"Condition","id":"c2","v":2})");
}

TEST(RawJson, AnUpdateWithStoreRawOffKeepsNoOlderJson) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    {
        st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
        write(db, w, condition("c1", condition_json));
    }
    st::resource_writer off(db, false, st::identity_policy{.keep_fhir_patient_id = true});
    // Run
    write(db, off, condition("c1", R"({"resourceType":"Condition","id":"c1","v":2})"));
    // Check: no pointer, no frame, nothing to read (not the older version).
    EXPECT_EQ(text(db.sql(), "SELECT raw_frame IS NULL FROM condition"), "1");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM raw_frame"), "0");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), std::nullopt);
}

TEST(RawJson, TheSameResourceTwiceInOnePageKeepsTheLastAndCountsOnce) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    const std::string v2 = R"({"resourceType":"Condition","id":"c1","v":2})";
    // Run
    write_all(db, w, {condition("c1", condition_json), condition("c1", v2)});
    // Check
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(frame || ':' || resources) FROM raw_frame"), "1:1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), v2);
}

TEST(RawJson, ACommitWithFramesNotWrittenIsRefusedAndARollbackForgetsThem) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    // Run 1: a caller that forgets flush_raw() before COMMIT.
    {
        st::write_transaction tx(db.sql());
        w.upsert(condition("c1", condition_json), "ehr", "pk1", "2026-01-01T00:00:00Z");
        EXPECT_THROW(tx.commit(), SQLite::Exception);
    }
    // Check: the row did not land without its JSON.
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM condition"), "0");
    // Run 2: rolled back, then a good page: its frame is numbered afresh.
    {
        st::write_transaction tx(db.sql());
        w.upsert(condition("c9", condition_json), "ehr", "pk1", "2026-01-01T00:00:00Z");
    }
    write(db, w, condition("c1", condition_json));
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(id) FROM condition"), "c1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
}

TEST(RawJson, AFrameIsClosedAtItsSizeAndTheNextOneOpened) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    // 3 resources of 400 KiB each: two fit under 1 MiB, the third opens frame 2.
    std::vector<nz::record> page;
    for (int i = 1; i <= 3; ++i) {
        std::string json = R"({"resourceType":"Condition","id":"c)" + std::to_string(i) + R"(","n":")";
        json += std::string(400 * 1024, static_cast<char>('a' + i)) + "\"}";
        page.push_back(condition("c" + std::to_string(i), json));
    }
    // Run
    write_all(db, w, page);
    // Check
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(frame || ':' || resources) FROM raw_frame"), "1:2,2:1");
    for (int i = 1; i <= 3; ++i)
        EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c" + std::to_string(i)),
                  std::get<nz::condition_record>(page[static_cast<std::size_t>(i - 1)]).h.raw);
}

TEST(RawJson, AnEmptyResourceTextRoundTrips) {
    // Edge of the frame format: zero content bytes still make a frame.
    EXPECT_EQ(st::raw_json_text(row_of("zstd", compressed(""))), "");
}

TEST(RawJson, TheCompressorGivesBackALargeResourcesBufferAndStillRoundTrips) {
    st::raw_compressor c;
    std::string large = "{\"resourceType\":\"Binary\",\"data\":\"";
    for (std::uint64_t i = 0; large.size() < (std::size_t{3} << 20); ++i)
        large += std::to_string(i * 7919 % 104729);
    large += "\"}";
    // Run / Check: the large one needs a buffer above 1 MiB...
    const std::string packed_large(c.compress(large));
    EXPECT_GT(c.held_bytes(), std::size_t{1} << 20);
    // ...which the next small one gives back.
    const std::string packed_small(c.compress(condition_json));
    EXPECT_LE(c.held_bytes(), std::size_t{1} << 20);
    EXPECT_EQ(st::raw_json_text(row_of("zstd", packed_large)), large);
    EXPECT_EQ(st::raw_json_text(row_of("zstd", packed_small)), condition_json);
}

// --- old rows -------------------------------------------------------------------

TEST(RawJson, JsonRowsAreReturnedAsTheyAre) {
    EXPECT_EQ(st::raw_json_text(row_of("json", condition_json)), condition_json);
}

TEST(RawJson, AnOldRawRowIsReadUntilTheResourceChangesAndThenGoes) {
    // Setup: a typed row and its resource_raw row as schema 11 left them
    // (no pointer), here as the 'json' text of schema 7.
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    {
        st::resource_writer off(db, false, st::identity_policy{.keep_fhir_patient_id = true});
        write(db, off, condition("c1", condition_json));
    }
    SQLite::Statement ins(db.sql(),
                          "INSERT INTO resource_raw (source, resource_type, id, raw_hash, encoding, raw) "
                          "VALUES ('ehr', 'Condition', 'c1', ?2, 'json', ?1)");
    ins.bind(1, condition_json);
    ins.bind(2, nz::sha256_hex(condition_json));
    ins.exec();
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
    // Run: a new version arrives with store_raw on.
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    write(db, w, condition("c1", R"({"resourceType":"Condition","id":"c1","v":2})"));
    // Check: the old row is gone; the new JSON is in a frame.
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM resource_raw"), "0");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"),
              R"({"resourceType":"Condition","id":"c1","v":2})");
}

TEST(RawJson, AnUnknownEncodingIsRefusedBySchemaAndByTheReader) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    EXPECT_THROW(
        db.sql().exec("INSERT INTO resource_raw (source, resource_type, id, raw_hash, encoding, raw) "
                      "VALUES ('ehr', 'Condition', 'c1', 'h', 'brotli', x'00')"),
        SQLite::Exception);
    const std::string msg = decode_error(row_of("brotli", "x"));
    EXPECT_NE(msg.find(row_named), std::string::npos) << msg;
    EXPECT_NE(msg.find("unknown encoding 'brotli'"), std::string::npos) << msg;
}

// --- damaged rows -----------------------------------------------------------------

struct damage_case {
    const char* name;
    std::string stored;
    const char* says;
};

TEST(RawJson, DamagedZstdIsRefusedNamingTheRow) {
    const std::string good = compressed(condition_json);
    ASSERT_GT(good.size(), 20u);
    std::string flipped = good;
    flipped[good.size() / 2] =
        static_cast<char>(flipped[good.size() / 2] ^ 0x5a);  // checksum no longer matches
    std::string bad_sum = good;
    bad_sum.back() = static_cast<char>(bad_sum.back() ^ 0x01);  // the XXH64 checksum's last byte
    // A frame header that claims 2^32 bytes of content (RFC 8878 3.1.1.1:
    // descriptor 0xE0 = single segment, 8-byte content size).
    std::string huge = {'\x28', '\xb5', '\x2f', '\xfd', '\xe0', 0, 0, 0, 0, 1, 0, 0, 0};
    const std::vector<damage_case> cases = {
        {"truncated", good.substr(0, good.size() - 7), "truncated or corrupt"},
        {"cut to the header", good.substr(0, 6), "truncated or corrupt"},
        {"a payload byte flipped", flipped, "corrupt"},
        {"checksum wrong", bad_sum, "corrupt"},
        {"trailing bytes", good + "xyz", "bytes after its zstd frame"},
        {"two frames", good + good, "bytes after its zstd frame"},
        {"plain JSON marked zstd", condition_json, "not a zstd frame"},
        {"empty", "", "not a zstd frame"},
        {"a skippable frame", std::string("\x50\x2a\x4d\x18\x00\x00\x00\x00", 8), "not a zstd frame"},
        {"claims 4 GiB", huge, "more than the"},
    };
    for (const auto& c : cases) {
        const std::string msg = decode_error(row_of("zstd", c.stored));
        EXPECT_NE(msg.find(row_named), std::string::npos) << c.name << ": " << msg;
        EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
        // Never the payload in the message: it may reach a log.
        EXPECT_EQ(msg.find("Migr"), std::string::npos) << c.name;
    }
}

TEST(RawJson, AChangedByteThatOnlyTheChecksumCanTellIsRefused) {
    // Setup: incompressible bytes, which zstd stores as a raw block, so they
    // appear in the frame as they are; a change to one of them still makes
    // a well-formed frame, and only the frame's XXH64 checksum (RFC 8878
    // 3.1.1) tells the row is not what was written.
    std::string noisy;
    std::uint32_t x = 12345;
    for (int i = 0; i < 512; ++i) {
        x = x * 1664525u + 1013904223u;  // a fixed LCG: the same bytes every run
        noisy.push_back(static_cast<char>(x >> 24));
    }
    std::string frame = compressed(noisy);
    const auto at = frame.find(noisy.substr(100, 32));
    ASSERT_NE(at, std::string::npos) << "zstd compressed the noise; pick other bytes";
    frame[at] = static_cast<char>(frame[at] ^ 0x01);
    // Run / Check
    const std::string msg = decode_error(row_of("zstd", frame));
    EXPECT_NE(msg.find(row_named), std::string::npos) << msg;
    EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;
}

TEST(RawJson, ADamagedFrameOrPointerInTheDatabaseIsRefusedNamingTheResource) {
    const std::string j2 = R"({"resourceType":"Condition","id":"c2"})";
    struct damage {
        const char* name;
        const char* sql;
        const char* says;
    };
    const std::vector<damage> cases = {
        // a torn copy, a bad restore
        {"frame cut", "UPDATE raw_frame SET raw = substr(raw, 1, length(raw) - 5)", "truncated or corrupt"},
        {"sizes cut", "UPDATE raw_frame SET sizes = substr(sizes, 1, 6)", "whole number"},
        {"sizes short", "UPDATE raw_frame SET sizes = substr(sizes, 1, 4)", "fewer bytes"},
        {"sizes long", "UPDATE raw_frame SET sizes = sizes || x'01000000'", "more bytes"},
        {"frame gone", "DELETE FROM raw_frame", "does not exist"},
        {"pointer past the end", "UPDATE condition SET raw_at = raw_at + 1000 WHERE id = 'c1'",
         "past the end"},
        {"pointer negative", "UPDATE condition SET raw_at = -1 WHERE id = 'c1'", "past the end"},
        {"pointer at the neighbour", "UPDATE condition SET raw_at = raw_at + 1 WHERE id = 'c1'",
         "not the stored version"},
    };
    for (const auto& c : cases) {
        temp_dir dir;
        st::analytics_db db(dir / "headache.db");
        st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
        write_all(db, w, {condition("c1", condition_json), condition("c2", j2)});
        // Run
        db.sql().exec(c.sql);
        // Check
        try {
            (void)st::read_raw_json(db.sql(), "ehr", "Condition", "c1");
            ADD_FAILURE() << c.name << ": no error";
        } catch (const st::raw_decode_error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("kept JSON of (source 'ehr', Condition/c1): ", 0), 0u)
                << c.name << ": " << msg;
            EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
            EXPECT_EQ(msg.find("Migr"), std::string::npos) << c.name;
        }
    }
}

// --- migration 8 --------------------------------------------------------------------

TEST(RawJsonMigration, AVersionSevenDatabaseKeepsItsRawRowsReadable) {
    // Setup: a database written by the previous release (schema 7), with
    // raw rows in the old WITHOUT ROWID table, raw as TEXT.
    temp_dir dir;
    const auto path = dir / "headache.db";
    const auto all = headachemd::schema::analytics_migrations();
    ASSERT_GE(all.size(), 8u);
    ASSERT_EQ(std::string(all[7].name), "0008_raw_zstd.sql");
    {
        SQLite::Database old = st::open_database(
            path, st::database_kind{"analytics database", 0x48444d41, all.first(7), "NORMAL", 0640});
        SQLite::Statement ins(old,
                              "INSERT INTO resource_raw (source, resource_type, id, raw_hash, raw) "
                              "VALUES ('ehr', 'Condition', ?1, ?2, ?3)");
        for (const auto& [id, hash, json] :
             {std::tuple{"c1", "h1", condition_json},
              std::tuple{"c2", "h2", std::string(R"({"resourceType":"Condition"})")}}) {
            ins.reset();
            ins.bind(1, id);
            ins.bind(2, hash);
            ins.bind(3, json);
            ins.exec();
        }
    }
    // Run
    st::analytics_db db(path);
    // Check: version 8, a rowid table, the old rows as 'json' text, unchanged.
    EXPECT_EQ(db.schema_version(), all.back().version);
    EXPECT_EQ(
        text(db.sql(), "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_schema WHERE name = 'resource_raw'"),
        "0");
    EXPECT_EQ(text(db.sql(),
                   "SELECT group_concat(id || ':' || raw_hash || ':' || encoding || ':' || typeof(raw), ' ') "
                   "FROM (SELECT * FROM resource_raw ORDER BY id)"),
              "c1:h1:json:text c2:h2:json:text");
    // Analysts' SQL on old rows works as before.
    EXPECT_EQ(
        text(db.sql(), "SELECT json_extract(raw, '$.subject.reference') FROM resource_raw WHERE id = 'c1'"),
        "Patient/p1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"), R"({"resourceType":"Condition"})");
    // The key still refuses a duplicate.
    EXPECT_THROW(db.sql().exec("INSERT INTO resource_raw (source, resource_type, id, raw_hash, raw) "
                               "VALUES ('ehr', 'Condition', 'c1', 'h', 'x')"),
                 SQLite::Exception);
    // New resources beside the old rows go into a frame (schema 12).
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    write(db, w, condition("c3", condition_json));
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM resource_raw"), "2");
    EXPECT_EQ(text(db.sql(), "SELECT resources FROM raw_frame"), "1");
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c3"), condition_json);
}

// --- page size --------------------------------------------------------------------

int page_size(SQLite::Database& db) {
    SQLite::Statement q(db, "PRAGMA page_size");
    q.executeStep();
    return q.getColumn(0).getInt();
}

TEST(AnalyticsPageSize, ANewFileGetsEightKilobytePages) {
    // Setup
    temp_dir dir;
    // Run
    st::analytics_db db(dir / "headache.db");
    // Check
    EXPECT_EQ(page_size(db.sql()), 8192);
}

TEST(AnalyticsPageSize, AnExistingFileKeepsItsPageSizeAndItsRawRowsRead) {
    // Setup: a current-schema file made with SQLite's default 4096-byte
    // pages (every headache.db before 8 KiB pages), holding zstd raw rows.
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        SQLite::Database old = st::open_database(
            path, st::database_kind{"analytics database", 0x48444d41,
                                    headachemd::schema::analytics_migrations(), "NORMAL", 0640});
        ASSERT_EQ(page_size(old), 4096);
        SQLite::Statement ins(old,
                              "INSERT INTO resource_raw (source, resource_type, id, raw_hash, encoding, raw) "
                              "VALUES ('ehr', 'Condition', 'c1', 'h1', 'zstd', ?1)");
        const std::string packed = compressed(condition_json);
        ins.bind(1, packed.data(), static_cast<int>(packed.size()));
        ins.exec();
    }
    // Run
    st::analytics_db db(path);
    st::resource_writer w(db, true, st::identity_policy{.keep_fhir_patient_id = true});
    write(db, w, condition("c2", condition_json));
    // Check: still 4096, the old row and a new one read back exactly.
    EXPECT_EQ(page_size(db.sql()), 4096);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c1"), condition_json);
    EXPECT_EQ(st::read_raw_json(db.sql(), "ehr", "Condition", "c2"), condition_json);
    EXPECT_EQ(text(db.sql(), "PRAGMA integrity_check"), "ok");
}

}  // namespace
