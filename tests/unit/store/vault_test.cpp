// The token vault (issue 5): the key file, AES-256-GCM sealing, the
// start-up key check, tampering, rekey, the migration of plain-text rows,
// and the file modes of both databases.
#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "headachemd/schema/migrations.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/token_key.hpp"
#include "headachemd/store/vault.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = headachemd::store;
using headachemd::test::read_file;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

unsigned file_mode(const fs::path& p) {
    struct stat s {};
    ::stat(p.c_str(), &s);
    return s.st_mode & 0777;
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

// What a thief copying the directory gets: the file and its -wal.
std::string vault_bytes(const fs::path& db) {
    return read_file(db) + read_file(fs::path(db.string() + "-wal"));
}

std::string blob(SQLite::Database& db, const std::string& patient_key) {
    SQLite::Statement q(db, "SELECT refresh_token FROM enrollment WHERE patient_key = ?1");
    q.bind(1, patient_key);
    if (!q.executeStep()) return {};
    return {static_cast<const char*>(q.getColumn(0).getBlob()),
            static_cast<std::size_t>(q.getColumn(0).getBytes())};
}

void set_blob(SQLite::Database& db, const std::string& patient_key, const std::string& bytes) {
    SQLite::Statement q(db, "UPDATE enrollment SET refresh_token = ?2 WHERE patient_key = ?1");
    q.bind(1, patient_key);
    q.bind(2, bytes.data(), static_cast<int>(bytes.size()));
    ASSERT_EQ(q.exec(), 1);
}

// Three enrolled patients at two EHRs, and the pseudonymization key.
void fill(st::vault& v) {
    v.put_enrollment({"hmd-1", "ecw", "f1", "rt-one-AAAAAAAAAAAAAAAAAAAA", "s", "t", false}, "t");
    v.put_enrollment({"hmd-2", "ecw", "f2", "rt-two-BBBBBBBBBBBBBBBBBBBB", "s", "t", false}, "t");
    v.put_enrollment({"hmd-3", "epic", "f3", "rt-three-CCCCCCCCCCCCCCCCCC", "s", "t", false}, "t");
    (void)v.pseudonymization_key();
}

// ---- first run ----------------------------------------------------------

// Two processes starting on a new vault at once (the daemon and a
// cron-started sync-once, issue 12): both find no pseudonymization key, and
// the one that takes the write lock second must read the other's key back
// instead of failing with "UNIQUE constraint failed: secret.name" (exit 74).
TEST(VaultFirstRun, TwoHandlesCreatingTheKeyAtOnceAgreeOnIt) {
    // Setup: a third connection holds the write lock, as the first process
    // does while it inserts. When the second handle finds it busy, its busy
    // handler lets go and has the first handle create the key, which is
    // exactly the interleaving of two processes, without threads or sleeps.
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault first(dir / "vault.db", key);
    st::vault second(dir / "vault.db", key);
    SQLite::Database blocker(dir / "vault.db", SQLite::OPEN_READWRITE);
    blocker.exec("BEGIN IMMEDIATE");
    struct interleaving {
        SQLite::Database* blocker;
        st::vault* first;
        std::optional<st::pseudonym_key> made;
        int calls = 0;
    } step{&blocker, &first, std::nullopt};
    sqlite3_busy_handler(
        second.sql().getHandle(),
        [](void* p, int) -> int {
            auto& s = *static_cast<interleaving*>(p);
            if (s.calls++ == 0) {
                s.blocker->exec("ROLLBACK");
                s.made = s.first->pseudonymization_key();
            }
            return s.calls < 100;  // retry; a bound so a bug cannot spin forever
        },
        &step);

    // Run
    const auto got = second.pseudonymization_key();

    // Check: one key, the first one's, in both handles and in the file.
    ASSERT_TRUE(step.made) << "the interleaving did not happen";
    EXPECT_EQ(got, *step.made);
    EXPECT_EQ(first.pseudonymization_key(), got);
    st::vault third(dir / "vault.db", key);
    EXPECT_EQ(third.pseudonymization_key(), got);
}

// ---- the key file -------------------------------------------------------

TEST(TokenKeyFile, WrittenWithMode0600As64HexDigitsAndReadBack) {
    temp_dir dir;
    const auto written = st::write_new_token_key(dir / "k");
    EXPECT_EQ(file_mode(dir / "k"), 0600u);
    const std::string text = read_file(dir / "k");
    ASSERT_EQ(text.size(), 65u);
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(text.find_first_not_of("0123456789abcdef"), 64u);
    const auto loaded = st::load_token_key(dir / "k");
    EXPECT_EQ(loaded.bytes(), written.bytes());
    EXPECT_EQ(loaded.id(), written.id());
    // The id names the key without being it.
    EXPECT_EQ(loaded.id().size(), 16u);
    EXPECT_FALSE(contains(text, loaded.id()));
    EXPECT_NE(st::token_key::generate().id(), written.id());
}

TEST(TokenKeyFile, AnExistingFileIsNeverOverwritten) {
    temp_dir dir;
    st::write_new_token_key(dir / "k");
    const std::string before = read_file(dir / "k");
    try {
        st::write_new_token_key(dir / "k");
        FAIL() << "overwrote a key file";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "refusing to overwrite")) << e.what();
    }
    EXPECT_EQ(read_file(dir / "k"), before);
}

TEST(TokenKeyFile, AKeyFileOthersCanReadIsRefusedWithTheFix) {
    temp_dir dir;
    st::write_new_token_key(dir / "k");
    // The one secret file rule (lib/files): others get nothing, the group
    // may read but never write.
    for (const auto mode : {fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read,
                            fs::perms::owner_read | fs::perms::group_read | fs::perms::group_write}) {
        fs::permissions(dir / "k", mode);
        try {
            st::load_token_key(dir / "k");
            FAIL() << "accepted a key file with mode " << file_mode(dir / "k");
        } catch (const st::key_error& e) {
            EXPECT_TRUE(contains(e.what(), "chmod 600 " + (dir / "k").string())) << e.what();
        }
    }
    fs::permissions(dir / "k", fs::perms::owner_read);  // 0400, a credential without ACL support
    EXPECT_NO_THROW(st::load_token_key(dir / "k"));
    // 0440 root-owned (here: owned by us): a systemd credential, whose group
    // bits are the mask of the ACL that grants the service user read access.
    fs::permissions(dir / "k", fs::perms::owner_read | fs::perms::group_read);
    EXPECT_NO_THROW(st::load_token_key(dir / "k"));
}

TEST(TokenKeyFile, MissingOrMalformedIsAClearError) {
    temp_dir dir;
    EXPECT_THROW(st::load_token_key(dir / "absent"), st::key_error);
    const std::string good(64, 'a');
    for (const std::string& text : {good.substr(0, 63) + "\n", good + "a\n", good.substr(0, 63) + "g\n",
                                    std::string("short\n"), good + "\n\n"}) {
        write_file(dir / "bad", text);
        fs::permissions(dir / "bad", fs::perms::owner_read | fs::perms::owner_write);
        try {
            st::load_token_key(dir / "bad");
            FAIL() << "accepted " << text.size() << " bytes";
        } catch (const st::key_error& e) {
            EXPECT_TRUE(contains(e.what(), "64 hexadecimal digits")) << e.what();
        }
    }
    write_file(dir / "ok", good);  // no newline is fine too
    fs::permissions(dir / "ok", fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_NO_THROW(st::load_token_key(dir / "ok"));
}

// ---- sealing ----------------------------------------------------------------

TEST(Seal, OpensOnlyWithTheSameKeyAndAssociatedData) {
    const auto k = st::token_key::generate();
    const auto other = st::token_key::generate();
    const std::string box = st::seal(k, "row-1", "secret token");
    // format byte, 12-byte nonce, ciphertext, 16-byte tag
    EXPECT_EQ(box.size(), 1 + 12 + 12 + 16u);
    EXPECT_FALSE(contains(box, "secret token"));
    EXPECT_EQ(st::open_sealed(k, "row-1", box), "secret token");
    EXPECT_FALSE(st::open_sealed(k, "row-2", box));
    EXPECT_FALSE(st::open_sealed(other, "row-1", box));
    for (std::size_t i = 0; i < box.size(); ++i) {
        std::string flipped = box;
        flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
        EXPECT_FALSE(st::open_sealed(k, "row-1", flipped)) << "byte " << i;
    }
    EXPECT_FALSE(st::open_sealed(k, "row-1", box.substr(0, 28)));
    EXPECT_EQ(st::open_sealed(k, "", st::seal(k, "", "")), "");
}

TEST(Seal, EverySealHasAFreshNonce) {
    const auto k = st::token_key::generate();
    const std::string a = st::seal(k, "ad", "same"), b = st::seal(k, "ad", "same");
    EXPECT_NE(a.substr(1, 12), b.substr(1, 12));
    EXPECT_NE(a, b);
}

// ---- the vault ----------------------------------------------------------------

TEST(VaultSealing, TheFileHoldsNoTokenOrKeyBytes) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    fill(v);
    v.replace_refresh_token("hmd-1", "ecw", "rt-rotated-DDDDDDDDDDDDDDDDDD", "t2");
    const auto pk = v.pseudonymization_key();
    const std::string bytes = vault_bytes(dir / "vault.db");
    for (const char* token : {"rt-one-AAAAAAAAAAAAAAAAAAAA", "rt-two-BBBBBBBBBBBBBBBBBBBB",
                              "rt-three-CCCCCCCCCCCCCCCCCC", "rt-rotated-DDDDDDDDDDDDDDDDDD"})
        EXPECT_FALSE(contains(bytes, token)) << token;
    EXPECT_FALSE(contains(bytes, std::string_view(reinterpret_cast<const char*>(pk.data()), pk.size())));
    EXPECT_FALSE(contains(bytes, std::string_view(reinterpret_cast<const char*>(key.bytes().data()), 32)));
    // Every row names its key by id.
    SQLite::Statement q(v.sql(),
                        "SELECT token_key_id FROM enrollment UNION ALL SELECT token_key_id FROM secret");
    int n = 0;
    while (q.executeStep()) {
        EXPECT_EQ(q.getColumn(0).getString(), key.id());
        ++n;
    }
    EXPECT_EQ(n, 4);
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->refresh_token, "rt-rotated-DDDDDDDDDDDDDDDDDD");
}

TEST(VaultSealing, SwappedCiphertextsFailToOpenNamingBothRowsAndStay) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        fill(v);
        // Run: swap two rows' sealed tokens (same key id, so only the
        // associated data can tell).
        const std::string one = blob(v.sql(), "hmd-1"), two = blob(v.sql(), "hmd-2");
        set_blob(v.sql(), "hmd-1", two);
        set_blob(v.sql(), "hmd-2", one);
        // Check, on the open vault: each read is an error naming its row.
        for (const auto& [pk, ehr] : {std::pair{"hmd-1", "ecw"}, std::pair{"hmd-2", "ecw"}}) {
            try {
                (void)v.find_enrollment(pk, ehr);
                FAIL() << pk << " opened";
            } catch (const st::key_error& e) {
                EXPECT_TRUE(contains(e.what(), std::string("patient ") + pk + " at EHR " + ehr)) << e.what();
                EXPECT_TRUE(contains(e.what(), "wrong key or tampered row")) << e.what();
            }
        }
        EXPECT_THROW((void)v.enrollments(), st::key_error);  // never a silently shorter list
        EXPECT_EQ(v.find_enrollment("hmd-3", "epic")->refresh_token, "rt-three-CCCCCCCCCCCCCCCCCC");
        // Nothing was dropped or overwritten.
        EXPECT_EQ(blob(v.sql(), "hmd-1"), two);
        EXPECT_EQ(blob(v.sql(), "hmd-2"), one);
    }
    // And at start-up: refused, naming both, the file unchanged.
    const std::string before = vault_bytes(dir / "vault.db");
    try {
        st::vault again(dir / "vault.db", key);
        FAIL() << "opened a vault with swapped rows";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "patient hmd-1 at EHR ecw")) << e.what();
        EXPECT_TRUE(contains(e.what(), "patient hmd-2 at EHR ecw")) << e.what();
        EXPECT_TRUE(contains(e.what(), "wrong key or tampered row")) << e.what();
        EXPECT_FALSE(contains(e.what(), "hmd-3")) << e.what();
    }
    EXPECT_EQ(vault_bytes(dir / "vault.db"), before);
}

TEST(VaultSealing, ATokenCopiedOntoAnotherPatientDoesNotOpen) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    fill(v);
    set_blob(v.sql(), "hmd-2", blob(v.sql(), "hmd-1"));
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->refresh_token, "rt-one-AAAAAAAAAAAAAAAAAAAA");
    EXPECT_THROW((void)v.find_enrollment("hmd-2", "ecw"), st::key_error);
    // The same patient key at another EHR is another row too.
    SQLite::Statement q(v.sql(), "UPDATE enrollment SET ehr = 'epic2' WHERE patient_key = 'hmd-1'");
    q.exec();
    EXPECT_THROW((void)v.find_enrollment("hmd-1", "epic2"), st::key_error);
}

TEST(VaultKey, AWrongKeyIsRefusedAndTheVaultStaysByteIdentical) {
    temp_dir dir;
    const auto right = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", right);
        fill(v);
    }
    const std::string before = read_file(dir / "vault.db");
    const auto wrong = st::token_key::generate();
    try {
        st::vault v(dir / "vault.db", wrong);
        FAIL() << "opened with a wrong key";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "wrong key or tampered row")) << e.what();
        EXPECT_TRUE(contains(e.what(), "patient hmd-1 at EHR ecw")) << e.what();
        EXPECT_TRUE(contains(e.what(), right.id())) << e.what();  // the key it needs
        EXPECT_TRUE(contains(e.what(), "not changed")) << e.what();
    }
    EXPECT_EQ(read_file(dir / "vault.db"), before);
    // The right key still opens everything.
    st::vault v(dir / "vault.db", right);
    EXPECT_EQ(v.enrollments().size(), 3u);
}

TEST(VaultKey, AWrongKeyLeavesAnUncheckpointedWalUntouchedToo) {
    // Setup: a vault whose last writes are still in its -wal file (as after
    // a crash): copy both files while the writer is open.
    temp_dir dir;
    const auto right = st::token_key::generate();
    fs::create_directory(dir / "copy");
    {
        st::vault v(dir / "vault.db", right);
        fill(v);
        ASSERT_GT(fs::file_size(dir / "vault.db-wal"), 0u);
        fs::copy_file(dir / "vault.db", dir / "copy" / "vault.db");
        fs::copy_file(dir / "vault.db-wal", dir / "copy" / "vault.db-wal");
    }
    const auto db = dir / "copy" / "vault.db";
    const std::string main_before = read_file(db), wal_before = read_file(dir / "copy" / "vault.db-wal");
    // Run
    EXPECT_THROW(st::vault(db, st::token_key::generate()), st::key_error);
    // Check: closing the refused connection did not checkpoint the WAL.
    EXPECT_EQ(read_file(db), main_before);
    EXPECT_EQ(read_file(dir / "copy" / "vault.db-wal"), wal_before);
    st::vault v(db, right);
    EXPECT_EQ(v.find_enrollment("hmd-3", "epic")->refresh_token, "rt-three-CCCCCCCCCCCCCCCCCC");
}

TEST(VaultRekey, RotatesEveryRowAndTheOldKeyOpensNone) {
    temp_dir dir;
    const auto old_key = st::token_key::generate();
    const auto new_key = st::token_key::generate();
    st::pseudonym_key pk{};
    {
        st::vault v(dir / "vault.db", old_key);
        fill(v);
        pk = v.pseudonymization_key();
        const std::string before = blob(v.sql(), "hmd-1");
        const std::vector<std::string> old_boxes = {before, blob(v.sql(), "hmd-2"), blob(v.sql(), "hmd-3")};
        // Run
        EXPECT_EQ(v.rekey(new_key), 4u);  // three tokens and the pseudonymization key
        // No box sealed under the old key is left in the file or its WAL,
        // where a leaked old key could still open it.
        const std::string bytes = vault_bytes(dir / "vault.db");
        for (const auto& box : old_boxes) EXPECT_FALSE(contains(bytes, box));
        EXPECT_EQ(v.key_id(), new_key.id());
        EXPECT_NE(blob(v.sql(), "hmd-1"), before);
        // The same object keeps working, under the new key.
        EXPECT_EQ(v.find_enrollment("hmd-2", "ecw")->refresh_token, "rt-two-BBBBBBBBBBBBBBBBBBBB");
        SQLite::Statement q(v.sql(),
                            "SELECT count(*) FROM (SELECT token_key_id k FROM enrollment UNION ALL "
                            "SELECT token_key_id FROM secret) WHERE k = ?1");
        q.bind(1, new_key.id());
        q.executeStep();
        EXPECT_EQ(q.getColumn(0).getInt(), 4);
    }
    // Check: the old key opens no row, and says which key is needed.
    const std::string before = read_file(dir / "vault.db");
    try {
        st::vault v(dir / "vault.db", old_key);
        FAIL() << "the old key still opens the vault";
    } catch (const st::key_error& e) {
        for (const char* row : {"patient hmd-1 at EHR ecw", "patient hmd-2 at EHR ecw",
                                "patient hmd-3 at EHR epic", "'pseudonymization_key'"})
            EXPECT_TRUE(contains(e.what(), row)) << e.what();
        EXPECT_TRUE(contains(e.what(), new_key.id())) << e.what();
    }
    EXPECT_EQ(read_file(dir / "vault.db"), before);
    // Even with the key id forged to the old key's, no box opens with it.
    {
        SQLite::Database raw(dir / "vault.db", SQLite::OPEN_READWRITE);
        SQLite::Statement e(raw, "UPDATE enrollment SET token_key_id = ?1");
        e.bind(1, old_key.id());
        e.exec();
        SQLite::Statement s(raw, "UPDATE secret SET token_key_id = ?1");
        s.bind(1, old_key.id());
        s.exec();
    }
    EXPECT_THROW(st::vault(dir / "vault.db", old_key), st::key_error);
}

TEST(VaultRekey, ARowThatDoesNotOpenStopsRekeyAndNothingChanges) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    fill(v);
    std::string tampered = blob(v.sql(), "hmd-3");
    tampered[20] = static_cast<char>(tampered[20] ^ 0x40);
    set_blob(v.sql(), "hmd-3", tampered);
    const std::string one = blob(v.sql(), "hmd-1");
    try {
        v.rekey(st::token_key::generate());
        FAIL() << "rekeyed over a tampered row";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "patient hmd-3 at EHR epic")) << e.what();
    }
    EXPECT_EQ(blob(v.sql(), "hmd-1"), one);
    EXPECT_EQ(v.key_id(), key.id());
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->refresh_token, "rt-one-AAAAAAAAAAAAAAAAAAAA");
}

// Issue 18: rekey's audit row is written by `in_transaction`, inside the
// re-sealing's transaction. A failure there rolls the re-sealing back, so a
// vault is never rekeyed without its record (a SIGKILL between two commits
// did that before: KillPoints.RekeyLeavesTheVaultUnderExactlyOneKeyAndResumes).
TEST(VaultRekey, TheCallersRowCommitsWithTheResealingOrNotAtAll) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    fill(v);
    v.sql().exec("CREATE TABLE note (n INTEGER)");
    const std::string one = blob(v.sql(), "hmd-1");
    EXPECT_THROW(v.rekey(st::token_key::generate(),
                         [](SQLite::Database& db, std::size_t n) {
                             db.exec("INSERT INTO note VALUES (" + std::to_string(n) + ")");
                             throw st::store_error("the audit log is full");
                         }),
                 st::store_error);
    EXPECT_EQ(blob(v.sql(), "hmd-1"), one);
    EXPECT_EQ(v.key_id(), key.id());
    EXPECT_EQ(v.sql().execAndGet("SELECT count(*) FROM note").getInt(), 0);
    const auto new_key = st::token_key::generate();
    std::size_t seen = 0;
    EXPECT_EQ(v.rekey(new_key,
                      [&seen](SQLite::Database& db, std::size_t n) {
                          seen = n;
                          db.exec("INSERT INTO note VALUES (" + std::to_string(n) + ")");
                      }),
              4u);
    EXPECT_EQ(seen, 4u);
    EXPECT_EQ(v.key_id(), new_key.id());
    EXPECT_EQ(v.sql().execAndGet("SELECT n FROM note").getInt(), 4);
}

// A vault as version 2 of the schema left it: plain-text tokens.
void make_version2_vault(const fs::path& path) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    for (const auto& m : headachemd::schema::vault_migrations())
        if (m.version <= 2) db.exec(std::string(m.sql));
    db.exec("PRAGMA application_id=" + std::to_string(0x48444d56));
    db.exec("PRAGMA user_version=2");
    db.exec(
        "INSERT INTO enrollment (patient_key, ehr, fhir_patient_id, refresh_token, scope, token_obtained_at, "
        "needs_reauth, updated_at) VALUES ('hmd-1', 'ecw', 'f1', CAST('legacy-token-EEEEEEEEEEEEEEEE' AS "
        "BLOB), "
        "'', 't', 0, 't'), ('hmd-2', 'ecw', 'f2', CAST('legacy-token-FFFFFFFFFFFFFFFF' AS BLOB), '', 't', 1, "
        "'t')");
    db.exec(
        "INSERT INTO secret (name, value, created_at) VALUES ('pseudonymization_key', "
        "CAST('0123456789abcdef0123456789ABCDEF' AS BLOB), 't')");
}

TEST(VaultMigration, PlainTextRowsAreSealedOnFirstOpenAndNoPlainByteRemains) {
    temp_dir dir;
    make_version2_vault(dir / "vault.db");
    fs::permissions(dir / "vault.db", fs::perms::owner_read | fs::perms::owner_write);
    ASSERT_TRUE(contains(vault_bytes(dir / "vault.db"), "legacy-token-EEEEEEEEEEEEEEEE"));
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        // The deployment keeps its tokens, flags and key.
        EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->refresh_token, "legacy-token-EEEEEEEEEEEEEEEE");
        EXPECT_TRUE(v.find_enrollment("hmd-2", "ecw")->needs_reauth);
        const auto pk = v.pseudonymization_key();
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(pk.data()), pk.size()),
                  "0123456789abcdef0123456789ABCDEF");
        // No plain byte is left in the file, its free pages or its WAL.
        const std::string bytes = vault_bytes(dir / "vault.db");
        EXPECT_FALSE(contains(bytes, "legacy-token-EEEEEEEEEEEEEEEE"));
        EXPECT_FALSE(contains(bytes, "legacy-token-FFFFFFFFFFFFFFFF"));
        EXPECT_FALSE(contains(bytes, "0123456789abcdef0123456789ABCDEF"));
    }
    // From now on the key is checked like any other.
    EXPECT_THROW(st::vault(dir / "vault.db", st::token_key::generate()), st::key_error);
    st::vault again(dir / "vault.db", key);
    EXPECT_EQ(again.enrollments().size(), 2u);
}

TEST(VaultMigration, AfterVersion3APlainRowIsRefusedAsTampered) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        fill(v);
        // Someone slips a plain-text token in, as version 2 stored them.
        SQLite::Statement q(
            v.sql(),
            "UPDATE enrollment SET refresh_token = CAST('planted' AS BLOB), token_key_id = NULL "
            "WHERE patient_key = 'hmd-2'");
        q.exec();
    }
    try {
        st::vault v(dir / "vault.db", key);
        FAIL() << "accepted a plain-text row";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "patient hmd-2 at EHR ecw")) << e.what();
        EXPECT_TRUE(contains(e.what(), "wrong key or tampered row")) << e.what();
    }
}

// ---- file modes ---------------------------------------------------------------

TEST(FileModes, VaultIs0600AndRefusedOnceOthersMayReadIt) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    { st::vault v(dir / "vault.db", key); }
    EXPECT_EQ(file_mode(dir / "vault.db"), 0600u);
    for (const auto extra : {fs::perms::others_read, fs::perms::group_read}) {
        fs::permissions(dir / "vault.db", fs::perms::owner_read | fs::perms::owner_write | extra);
        const std::string before = read_file(dir / "vault.db");
        try {
            st::vault v(dir / "vault.db", key);
            FAIL() << "opened a vault with mode " << file_mode(dir / "vault.db");
        } catch (const st::store_error& e) {
            EXPECT_TRUE(contains(e.what(), "chmod 600 " + (dir / "vault.db").string())) << e.what();
        }
        EXPECT_EQ(read_file(dir / "vault.db"), before);
    }
}

TEST(FileModes, AnalyticsDbIs0640AndRefusedWhenWorldReadable) {
    temp_dir dir;
    { st::analytics_db db(dir / "headache.db"); }
    EXPECT_EQ(file_mode(dir / "headache.db"), 0640u);
    fs::permissions(dir / "headache.db", fs::perms::others_read, fs::perm_options::add);
    const std::string before = read_file(dir / "headache.db");
    try {
        st::analytics_db db(dir / "headache.db");
        FAIL() << "opened a world-readable headache.db";
    } catch (const st::store_error& e) {
        EXPECT_TRUE(contains(e.what(), "chmod 640 " + (dir / "headache.db").string())) << e.what();
        EXPECT_TRUE(contains(e.what(), "every user")) << e.what();
    }
    EXPECT_EQ(read_file(dir / "headache.db"), before);
    // The analysts' group may read it: that is what 0640 is for.
    fs::permissions(dir / "headache.db", fs::perms::others_read, fs::perm_options::remove);
    EXPECT_NO_THROW(st::analytics_db(dir / "headache.db"));
}

}  // namespace

// ---- access tokens and the refresh journal (issue 17) --------------------

namespace {

const st::stored_access_token access_one{"at-one-EEEEEEEEEEEEEEEEEEEEEEEE", "2026-12-05T12:00:00Z",
                                         "patient/*.read"};

}  // namespace

TEST(VaultAccessTokens, AStoredAccessTokenIsSealedAndComesBackWithItsExpiryAndScope) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    st::vault v(dir / "vault.db", key);
    fill(v);
    v.begin_refresh("hmd-1", "ecw", "rt-one-AAAAAAAAAAAAAAAAAAAA", "2026-12-05T11:00:00Z");
    v.finish_refresh("hmd-1", "ecw", std::string("rt-rotated-DDDDDDDDDDDDDDDDDD"), "2026-12-05T11:00:01Z",
                     access_one);

    const auto e = v.find_enrollment("hmd-1", "ecw");
    ASSERT_TRUE(e->access);
    EXPECT_EQ(e->access->token, access_one.token);
    EXPECT_EQ(e->access->expires_at, access_one.expires_at);
    EXPECT_EQ(e->access->scope, access_one.scope);
    EXPECT_EQ(e->refresh_token, "rt-rotated-DDDDDDDDDDDDDDDDDD");
    EXPECT_TRUE(e->interrupted_refresh_since.empty());  // the answer cleared the journal
    EXPECT_FALSE(v.find_enrollment("hmd-2", "ecw")->access);
    EXPECT_FALSE(contains(vault_bytes(dir / "vault.db"), access_one.token));
}

TEST(VaultAccessTokens, AnEditedExpiryDoesNotOpenAndIsRefusedAtStart) {
    temp_dir dir;
    const auto key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", key);
        fill(v);
        v.finish_refresh("hmd-1", "ecw", std::nullopt, "t", access_one);
        // Someone extends the token's life by editing the plain column.
        v.sql().exec(
            "UPDATE enrollment SET access_expires_at = '2099-01-01T00:00:00Z' WHERE patient_key = 'hmd-1'");
    }
    try {
        st::vault v(dir / "vault.db", key);
        FAIL() << "an access token with an edited expiry opened";
    } catch (const st::key_error& e) {
        EXPECT_TRUE(contains(e.what(), "the access token of patient hmd-1 at EHR ecw")) << e.what();
    }
}

TEST(VaultAccessTokens, TheJournalNamesOnlyTheStoredTokenAndClearsWithTheAnswer) {
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    fill(v);
    v.begin_refresh("hmd-1", "ecw", "rt-one-AAAAAAAAAAAAAAAAAAAA", "2026-12-05T11:00:00Z");
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->interrupted_refresh_since, "2026-12-05T11:00:00Z");
    EXPECT_TRUE(v.find_enrollment("hmd-2", "ecw")->interrupted_refresh_since.empty());
    // The journal holds a hash, never the token.
    EXPECT_FALSE(contains(vault_bytes(dir / "vault.db"), "rt-one-AAAAAAAAAAAAAAAAAAAA"));
    // An entry for a token that is no longer stored means nothing.
    v.begin_refresh("hmd-2", "ecw", "rt-some-other-token-XXXXXXXXXXX", "2026-12-05T11:00:00Z");
    EXPECT_TRUE(v.find_enrollment("hmd-2", "ecw")->interrupted_refresh_since.empty());
    // A rotated token's arrival clears it, an OAuth error answer too.
    v.replace_refresh_token("hmd-1", "ecw", "rt-rotated-DDDDDDDDDDDDDDDDDD", "t2");
    EXPECT_TRUE(v.find_enrollment("hmd-1", "ecw")->interrupted_refresh_since.empty());
    v.begin_refresh("hmd-3", "epic", "rt-three-CCCCCCCCCCCCCCCCCC", "2026-12-05T11:00:00Z");
    v.clear_refresh_journal("hmd-3", "epic");
    EXPECT_TRUE(v.find_enrollment("hmd-3", "epic")->interrupted_refresh_since.empty());
}

TEST(VaultAccessTokens, MarkingForReenrollmentOrEnrollingAgainDropsTheAccessToken) {
    temp_dir dir;
    st::vault v(dir / "vault.db", st::token_key::generate());
    fill(v);
    v.finish_refresh("hmd-1", "ecw", std::nullopt, "t", access_one);
    v.finish_refresh("hmd-2", "ecw", std::nullopt, "t", access_one);
    v.begin_refresh("hmd-1", "ecw", "rt-one-AAAAAAAAAAAAAAAAAAAA", "t");
    v.set_needs_reauth("hmd-1", "ecw", true, "t", "interrupted_refresh");
    auto e = v.find_enrollment("hmd-1", "ecw");
    EXPECT_TRUE(e->needs_reauth);
    EXPECT_EQ(e->needs_reauth_reason, "interrupted_refresh");
    EXPECT_FALSE(e->access);
    EXPECT_TRUE(e->interrupted_refresh_since.empty());
    v.put_enrollment({"hmd-2", "ecw", "f2", "rt-new-FFFFFFFFFFFFFFFFFFFFFF", "s", "t", false}, "t");
    EXPECT_FALSE(v.find_enrollment("hmd-2", "ecw")->access);
    // A refused access token is dropped only while it is still the stored one.
    v.finish_refresh("hmd-3", "epic", std::nullopt, "t", access_one);
    v.forget_access_token("hmd-3", "epic", "at-some-other-one");
    EXPECT_TRUE(v.find_enrollment("hmd-3", "epic")->access);
    v.forget_access_token("hmd-3", "epic", access_one.token);
    EXPECT_FALSE(v.find_enrollment("hmd-3", "epic")->access);
}

TEST(VaultAccessTokens, RekeyReSealsAccessTokensAndTheOldKeyOpensNone) {
    temp_dir dir;
    const auto old_key = st::token_key::generate();
    const auto new_key = st::token_key::generate();
    {
        st::vault v(dir / "vault.db", old_key);
        fill(v);
        v.finish_refresh("hmd-1", "ecw", std::nullopt, "t", access_one);
        EXPECT_EQ(v.rekey(new_key), 5u);  // three refresh tokens, one access token, the pseudonymization key
    }
    st::vault v(dir / "vault.db", new_key);
    EXPECT_EQ(v.find_enrollment("hmd-1", "ecw")->access->token, access_one.token);
    EXPECT_THROW(st::vault(dir / "vault.db", old_key), st::key_error);
}
