// [privacy] identifiers in the store: what "none" and "minimal" keep of a
// patient's FHIR id, and how rows already stored follow a change of policy.
#include <filesystem>
#include <string>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/vault.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace nz = headachemd::normalize;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::temp_dir;

// Distinctive so that a byte search of the file cannot hit by chance.
constexpr const char* fhir_id = "fhir-patient-4711-zq";

st::pseudonym_key test_key() {
    st::pseudonym_key k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return k;
}

nz::patient_record patient(std::string hash) {
    nz::patient_record p;
    p.h.id = fhir_id;
    p.h.patient_ref = fhir_id;
    p.h.raw_hash = std::move(hash);
    p.h.raw = R"({"resourceType":"Patient","id":"fhir-patient-4711-zq","name":[{"family":"Zqxwv"}]})";
    p.birth_year = 1980;
    p.sex = "female";
    return p;
}

nz::condition_record condition() {
    nz::condition_record c;
    c.h.id = "c1";
    c.h.patient_ref = fhir_id;
    c.h.raw_hash = "hc";
    c.h.raw = R"({"resourceType":"Condition","subject":{"reference":"Patient/fhir-patient-4711-zq"}})";
    return c;
}

std::string text(SQLite::Database& db, const char* sql) {
    SQLite::Statement q(db, sql);
    if (!q.executeStep() || q.getColumn(0).isNull()) return "<null>";
    return q.getColumn(0).getString();
}

// The database file and its -wal, as bytes: what an analyst's copy holds.
bool file_holds(const fs::path& db, const std::string& needle) {
    for (const fs::path& p : {db, fs::path(db.string() + "-wal")})
        if (fs::exists(p) && read_file(p).find(needle) != std::string::npos) return true;
    return false;
}

void write_one(st::analytics_db& db, st::resource_writer& w, const nz::record& r, const char* pk) {
    st::write_transaction tx(db.sql());
    w.upsert(r, "ehr", pk, "2026-01-01T00:00:00Z");
    w.flush_raw();
    tx.commit();
}

TEST(Identifiers, NoneStoresAKeyedHashAsPatientIdAndNoFhirId) {
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        st::analytics_db db(path);
        const st::identity_policy none{test_key(), false};
        db.enforce_identifier_policy(none);
        st::resource_writer w(db, false, none);
        write_one(db, w, patient("h1"), "pk1");
        // Run: the same patient again is the same row.
        st::write_transaction tx(db.sql());
        EXPECT_EQ(w.upsert(patient("h1"), "ehr", "pk1", "t"), st::upsert_outcome::unchanged);
        tx.commit();
        // Check
        EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM patient"), "1");
        EXPECT_EQ(text(db.sql(), "SELECT id FROM patient"), st::patient_key_for(test_key(), "ehr", fhir_id));
        EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), "<null>");
        EXPECT_EQ(text(db.sql(), "SELECT birth_year FROM patient"), "1980");
    }
    EXPECT_FALSE(file_holds(path, fhir_id));
}

TEST(Identifiers, MinimalAddsTheFhirIdInItsOwnColumn) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    const st::identity_policy minimal{test_key(), true};
    st::resource_writer w(db, false, minimal);
    write_one(db, w, patient("h1"), "pk1");
    EXPECT_EQ(text(db.sql(), "SELECT id FROM patient"), st::patient_key_for(test_key(), "ehr", fhir_id));
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), fhir_id);
}

TEST(Identifiers, StoreRawIsRefusedUnderNone) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    EXPECT_THROW(st::resource_writer(db, true, st::identity_policy{test_key(), false}),
                 std::invalid_argument);
}

TEST(Identifiers, StoreRawUnderMinimalNeverKeepsAPatientsJson) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    st::resource_writer w(db, true, st::identity_policy{test_key(), true});
    write_one(db, w, patient("h1"), "pk1");
    write_one(db, w, condition(), "pk1");
    EXPECT_EQ(text(db.sql(), "SELECT group_concat(resource_type) FROM raw_frame"), "Condition");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM resource_raw"), "0");
}

TEST(Identifiers, SwitchingFromMinimalToNoneRemovesStoredFhirIdsFromTheFile) {
    // Setup: a database written under "minimal" with store_raw on.
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        st::analytics_db db(path);
        st::resource_writer w(db, true, st::identity_policy{test_key(), true});
        write_one(db, w, patient("h1"), "pk1");
        write_one(db, w, condition(), "pk1");
    }
    ASSERT_TRUE(file_holds(path, fhir_id));
    // Run: the next run is under "none".
    st::analytics_db db(path);
    const auto changed = db.enforce_identifier_policy(st::identity_policy{test_key(), false});
    // Check: no FHIR id left anywhere in the file or the WAL; the rows stay.
    EXPECT_EQ(changed.fhir_ids_cleared, 1);
    EXPECT_EQ(changed.raw_rows_removed, 1);
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM raw_frame"), "0");
    EXPECT_EQ(
        text(db.sql(), "SELECT raw_frame IS NULL AND raw_at IS NULL AND raw_len IS NULL FROM condition"),
        "1");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM patient"), "1");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM condition"), "1");
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), "<null>");
    EXPECT_FALSE(file_holds(path, fhir_id));
    // A steady state changes nothing.
    EXPECT_FALSE(db.enforce_identifier_policy(st::identity_policy{test_key(), false}).any());
}

TEST(Identifiers, MinimalToNoneToMinimalRefillsOnTheNextPull) {
    temp_dir dir;
    st::analytics_db db(dir / "headache.db");
    {
        st::resource_writer w(db, false, st::identity_policy{test_key(), false});
        write_one(db, w, patient("h1"), "pk1");
    }
    // Back to "minimal": the stored row gets its FHIR id when the EHR sends
    // the Patient again, even if the resource itself did not change.
    db.enforce_identifier_policy(st::identity_policy{test_key(), true});
    st::resource_writer w(db, false, st::identity_policy{test_key(), true});
    write_one(db, w, patient("h1"), "pk1");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM patient"), "1");
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), fhir_id);
}

TEST(Identifiers, RowsFromSchemaVersion3ArePseudonymizedOnTheNextRun) {
    // Setup: a version-3 database whose patient.id is the FHIR id.
    temp_dir dir;
    const auto path = dir / "headache.db";
    {
        const auto all = headachemd::schema::analytics_migrations();
        ASSERT_GE(all.size(), 4u);
        SQLite::Database old = st::open_database(
            path, st::database_kind{"analytics database", 0x48444d41, all.first(3), "NORMAL", 0640});
        old.exec(
            "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at, birth_year) VALUES "
            "('ehr', 'fhir-patient-4711-zq', 'pk1', 'h', 't', 1980)");
    }
    // Run
    st::analytics_db db(path);
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), fhir_id);  // 0004 moved it aside
    const auto changed = db.enforce_identifier_policy(st::identity_policy{test_key(), false});
    // Check
    EXPECT_EQ(changed.ids_pseudonymized, 1);
    EXPECT_EQ(text(db.sql(), "SELECT id FROM patient"), st::patient_key_for(test_key(), "ehr", fhir_id));
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), "<null>");
    EXPECT_EQ(text(db.sql(), "SELECT birth_year FROM patient"), "1980");
    EXPECT_FALSE(file_holds(path, fhir_id));
    // The writer now finds the same row.
    st::resource_writer w(db, false, st::identity_policy{test_key(), false});
    st::write_transaction tx(db.sql());
    EXPECT_NE(w.upsert(patient("h2"), "ehr", "pk1", "t2"), st::upsert_outcome::inserted);
    tx.commit();
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM patient"), "1");
}

}  // namespace

namespace {

TEST(Identifiers, ASteadyStateTakesNoWriteLockSoAnAnalystsWriteDoesNotStopARun) {
    // Setup: a database in line with "minimal" (a raw Condition, no raw
    // Patient), and an analyst holding the write lock.
    temp_dir dir;
    const auto path = dir / "headache.db";
    st::analytics_db db(path);
    st::resource_writer w(db, true, st::identity_policy{test_key(), true});
    write_one(db, w, patient("h1"), "pk1");
    write_one(db, w, condition(), "pk1");
    db.sql().setBusyTimeout(20);
    SQLite::Database analyst(path.string(), SQLite::OPEN_READWRITE);
    analyst.exec("BEGIN IMMEDIATE");
    analyst.exec("CREATE TABLE scratch (x)");
    // Run / Check: nothing to change under "minimal": nothing written, no error.
    EXPECT_FALSE(db.enforce_identifier_policy(st::identity_policy{test_key(), true}).any());
    // Work to do under the lock ("none" removes the raw row) is a store_error, not a half change.
    EXPECT_THROW((void)db.enforce_identifier_policy(st::identity_policy{test_key(), false}), st::store_error);
    analyst.exec("ROLLBACK");
    EXPECT_EQ(text(db.sql(), "SELECT count(*) FROM raw_frame"), "1");
    EXPECT_EQ(text(db.sql(), "SELECT fhir_patient_id FROM patient"), fhir_id);
}

}  // namespace
