// The clinic report: read-only access, what the summary counts, escaping,
// self-containment, and size at clinic scale.
#include <chrono>
#include <filesystem>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <gtest/gtest.h>

#include "headachemd/report/report.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "test_support.hpp"

namespace {

namespace rp = headachemd::report;
namespace st = headachemd::store;
using headachemd::test::temp_dir;
using headachemd::test::write_file;

std::size_t occurrences(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
}

// `n` synthetic patients: a diagnosis, two years of monthly triptan fills
// (10 days each, so every one of them is at MOH risk), two adequate
// preventive trials, monthly pain scores and visit MIDAS/HIT-6 scores.
void synthesize(SQLite::Database& db, int n, const std::string& key_prefix = "pt-") {
    db.exec("BEGIN");
    SQLite::Statement set(db, "UPDATE analyst_setting SET value = '2024-12-31' WHERE key = 'as_of'");
    set.exec();
    const char* sql[] = {
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2) "
        "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at, birth_year, sex) "
        "SELECT 'ehr', 'p' || i, ?1 || printf('%05d', i), 'h', '2024-12-30T00:00:00Z', 1950 + i % 50, "
        "CASE i % 2 WHEN 0 THEN 'female' ELSE 'male' END FROM k",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2) "
        "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, clinical_status, "
        "headache_type) "
        "SELECT 'ehr', 'c' || i, ?1 || printf('%05d', i), 'h', 'x', 'active', "
        "CASE i % 3 WHEN 0 THEN 'chronic_migraine' WHEN 1 THEN 'migraine_without_aura' ELSE 'tension_type' "
        "END FROM k",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2), m(j) AS (SELECT 0 "
        "UNION ALL "
        "SELECT j + 1 FROM m WHERE j < 23) "
        "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
        "authored_on, "
        "ingredient, drug_class, therapy_role, days_supply) "
        "SELECT 'ehr', 'rx' || i || '-' || j, ?1 || printf('%05d', i), 'h', 'x', 'completed', 'order', "
        "date('2023-01-01', '+' || j || ' months'), 'sumatriptan', 'triptan', 'acute', 10 FROM k, m",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2), m(j) AS (SELECT 0 "
        "UNION ALL "
        "SELECT j + 1 FROM m WHERE j < 5) "
        "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
        "authored_on, "
        "ingredient, drug_class, therapy_role, days_supply) "
        "SELECT 'ehr', 'pv' || i || '-' || j, ?1 || printf('%05d', i), 'h', 'x', 'completed', 'order', "
        "date('2023-01-01', '+' || (j * 30) || ' days'), CASE WHEN j < 3 THEN 'topiramate' ELSE "
        "'propranolol' END, "
        "CASE WHEN j < 3 THEN 'anticonvulsant' ELSE 'beta_blocker' END, 'preventive', 30 FROM k, m",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2), m(j) AS (SELECT 0 "
        "UNION ALL "
        "SELECT j + 1 FROM m WHERE j < 23) "
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, status, value_num, "
        "effective_at, "
        "instrument) SELECT 'ehr', 'o' || i || '-' || j, ?1 || printf('%05d', i), 'h', 'x', 'final', (i + j) "
        "% 11, "
        "date('2023-01-15', '+' || j || ' months'), 'pain_nrs' FROM k, m",
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2), m(j) AS (SELECT 0 "
        "UNION ALL "
        "SELECT j + 1 FROM m WHERE j < 7) "
        "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, status, value_num, "
        "effective_at, "
        "instrument) SELECT 'ehr', 'q' || i || '-' || j || '-' || t.v, ?1 || printf('%05d', i), 'h', 'x', "
        "'final', "
        "CASE t.v WHEN 'midas' THEN (i + j) % 30 ELSE 40 + (i + j) % 30 END, "
        "date('2023-01-20', '+' || (j * 3) || ' months'), t.v FROM k, m, (SELECT 'midas' AS v UNION ALL "
        "SELECT 'hit6') t",
    };
    for (const char* s : sql) {
        SQLite::Statement q(db, s);
        q.bind(1, key_prefix);
        q.bind(2, n);
        q.exec();
    }
    db.exec("COMMIT");
}

std::string render(const std::filesystem::path& path) {
    SQLite::Database db = rp::open_read_only(path);
    return rp::render_html(rp::load(db), rp::options{"2025-01-01T00:00:00Z", 25});
}

TEST(ReportEscaping, HtmlAndScriptJson) {
    EXPECT_EQ(rp::html_escape(R"(<a href="x">'&'</a>)"),
              "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    EXPECT_EQ(rp::json_string("</script><!--\"\\\n\xE2\x80\xA8"),
              R"("\u003c/script\u003e\u003c!--\"\\\u000a\u2028")");
}

TEST(ReportOpen, RefusesMissingForeignAndOldFiles) {
    temp_dir dir;
    try {
        (void)rp::open_read_only(dir / "nope.db");
        FAIL() << "a missing file was opened";
    } catch (const rp::report_error& e) {
        EXPECT_NE(std::string(e.what()).find("nope.db"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "nope.db"));  // read-only never creates
    {
        SQLite::Database other((dir / "other.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        other.exec("CREATE TABLE t (x)");
    }
    EXPECT_THROW((void)rp::open_read_only(dir / "other.db"), rp::report_error);
    {
        st::analytics_db db(dir / "headache.db");
        db.sql().exec("PRAGMA user_version = 2");  // as if written before the views existed
    }
    try {
        (void)rp::open_read_only(dir / "headache.db");
        FAIL() << "a version-2 database was accepted";
    } catch (const rp::report_error& e) {
        EXPECT_NE(std::string(e.what()).find("migrate"), std::string::npos) << e.what();
    }
}

TEST(ReportOpen, ReadsWhileTheDaemonHoldsAWriteTransactionAndCannotWrite) {
    // Setup: a writer (the daemon) with an open, uncommitted transaction.
    temp_dir dir;
    st::analytics_db writer(dir / "headache.db");
    synthesize(writer.sql(), 2);
    st::write_transaction tx(writer.sql());
    writer.sql().exec(
        "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at) VALUES ('ehr', 'late', "
        "'pt-late', "
        "'h', 'x')");
    // Run
    SQLite::Database db = rp::open_read_only(dir / "headache.db");
    const auto data = rp::load(db);
    // Check: WAL gives the reader the last committed state, and the reader
    // itself cannot write.
    EXPECT_EQ(data.clinic.patients, 2);
    EXPECT_THROW(db.exec("DELETE FROM patient"), SQLite::Exception);
    // And the reader's snapshot does not block the writer's commit.
    EXPECT_NO_THROW(tx.commit());
    EXPECT_EQ(rp::load(db).clinic.patients, 3);
}

TEST(ReportRender, SummaryCountsComeFromTheViews) {
    // Setup: 6 synthetic patients (all at MOH risk and CGRP-ready), one of
    // them then on an active CGRP antibody and one with no triptans.
    temp_dir dir;
    {
        st::analytics_db db(dir / "headache.db");
        synthesize(db.sql(), 6);
        db.sql().exec(
            "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
            "authored_on, ingredient, drug_class, therapy_role, days_supply) VALUES ('ehr', 'mab', "
            "'pt-00001', 'h', "
            "'x', 'active', 'order', '2024-12-01', 'erenumab', 'cgrp_mab', 'preventive', 30)");
        db.sql().exec(
            "DELETE FROM medication_request WHERE patient_key = 'pt-00002' AND drug_class = 'triptan'");
    }
    // Run
    SQLite::Database db = rp::open_read_only(dir / "headache.db");
    const auto data = rp::load(db);
    const std::string html = rp::render_html(data, rp::options{"now", 25});
    // Check
    EXPECT_EQ(data.clinic.patients, 6);
    EXPECT_EQ(data.clinic.moh_risk_patients, 5);
    EXPECT_EQ(data.clinic.moh_risk_recent, 5);  // the synthetic fills run to the as-of month
    EXPECT_EQ(data.clinic.cgrp_ready_patients, 5);
    ASSERT_EQ(data.clinic.by_headache_type.size(), 3u);
    EXPECT_EQ(data.clinic.by_headache_type[0].n, 2);
    EXPECT_EQ(data.patients[0].key, "pt-00001");
    EXPECT_FALSE(data.patients[0].cgrp_ready);
    EXPECT_TRUE(data.patients[0].moh_risk);
    EXPECT_FALSE(data.patients[1].moh_risk);
    EXPECT_EQ(data.patients[0].exposure.size(), 24u);
    EXPECT_EQ(data.patients[0].exposure[0].days, 10);
    EXPECT_EQ(data.patients[0].scores.size(), 24u + 16u);
    EXPECT_NE(html.find("Chronic migraine"), std::string::npos);
    EXPECT_NE(html.find("<b>5</b>"), std::string::npos);
}

TEST(ReportRender, EscapesEverythingFromTheDatabase) {
    // Setup: hostile text in every field that reaches the page.
    temp_dir dir;
    {
        st::analytics_db db(dir / "headache.db");
        synthesize(db.sql(), 1, "<script>alert(1)</script>");
        db.sql().exec("INSERT INTO analyst_headache_type VALUES ('x', 0, '<img src=x onerror=alert(2)>')");
        db.sql().exec("UPDATE condition SET headache_type = 'x'");
        db.sql().exec(
            "UPDATE medication_request SET status = 'active', ingredient = '</script><b>', "
            "drug_class = 'triptan\"<i>' WHERE drug_class = 'triptan'");
        db.sql().exec("UPDATE patient SET sex = '\"><svg onload=alert(3)>'");
    }
    // Run
    const std::string html = render(dir / "headache.db");
    // Check: no injected markup survives; the text is there, escaped.
    EXPECT_EQ(html.find("<script>alert"), std::string::npos);
    EXPECT_EQ(html.find("<img src=x"), std::string::npos);
    EXPECT_EQ(html.find("</script><b>"), std::string::npos);
    EXPECT_EQ(html.find("<svg onload"), std::string::npos);
    EXPECT_EQ(html.find("<i>"), std::string::npos);
    EXPECT_NE(html.find("&lt;img src=x onerror=alert(2)&gt;"), std::string::npos);
    EXPECT_NE(html.find(R"(\u003cscript\u003ealert(1)\u003c/script\u003e00001)"), std::string::npos);
    // Exactly our three script elements: the error hook, the data, the page script.
    EXPECT_EQ(occurrences(html, "<script"), 3u);
    EXPECT_EQ(occurrences(html, "</script>"), 3u);
}

TEST(ReportRender, SelfContainedForOnePatientAndForNone) {
    temp_dir dir;
    {
        st::analytics_db db(dir / "one.db");
        synthesize(db.sql(), 1);
        st::analytics_db empty(dir / "empty.db");
    }
    for (const char* name : {"one.db", "empty.db"}) {
        const std::string html = render(dir / name);
        // Nothing loads from anywhere: no src/href attributes, no CSS url() or
        // @import, and "http" only in the SVG namespace the script names.
        EXPECT_EQ(html.find(" src="), std::string::npos) << name;
        EXPECT_EQ(html.find(" href="), std::string::npos) << name;
        EXPECT_EQ(html.find("url("), std::string::npos) << name;
        EXPECT_EQ(html.find("@import"), std::string::npos) << name;
        EXPECT_EQ(occurrences(html, "http"), occurrences(html, "http://www.w3.org/2000/svg") + 1)
            << name;  // + the http-equiv of the CSP meta
        EXPECT_NE(html.find("default-src 'none'"), std::string::npos) << name;
    }
    EXPECT_NE(render(dir / "one.db").find("pt-00001"), std::string::npos);
}

TEST(ReportRender, AThousandPatientsStayUnderThreeMegabytes) {
    // Setup
    temp_dir dir;
    {
        st::analytics_db db(dir / "headache.db");
        synthesize(db.sql(), 1000);
    }
    // Run
    const auto start = std::chrono::steady_clock::now();
    const std::string html = render(dir / "headache.db");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Check
    EXPECT_LT(html.size(), 3u * 1024 * 1024);
    EXPECT_EQ(occurrences(html, "{\"k\":"), 1000u);
    std::printf("1,000 patients: %.1f kB of HTML in %.2f s\n", static_cast<double>(html.size()) / 1024,
                seconds);
}

}  // namespace
