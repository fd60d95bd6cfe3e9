// The clinic report: read-only access, what the summary counts, escaping,
// self-containment, and size at clinic scale.
#include <chrono>
#include <filesystem>
#include <map>
#include <stdexcept>

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

// A small clinic, one row at a time: the facts the views read.
class clinic {
public:
    explicit clinic(const std::filesystem::path& path, const std::string& as_of = "2024-05-31") : db_(path) {
        SQLite::Statement q(db_.sql(), "UPDATE analyst_setting SET value = ?1 WHERE key = 'as_of'");
        q.bind(1, as_of);
        q.exec();
    }
    void patient(const std::string& key, const std::string& headache_type,
                 const std::string& deceased_at = "") {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO patient (source, id, patient_key, raw_hash, ingested_at, birth_year, sex, "
            "deceased, deceased_at) VALUES ('ehr', ?1, ?1, 'h', 'x', 1980, 'female', ?2, ?3)");
        q.bind(1, key);
        q.bind(2, deceased_at.empty() ? 0 : 1);
        if (deceased_at.empty())
            q.bind(3);
        else
            q.bind(3, deceased_at);
        q.exec();
        if (headache_type.empty()) return;
        SQLite::Statement c(
            db_.sql(),
            "INSERT INTO condition (source, id, patient_key, raw_hash, ingested_at, clinical_status, "
            "headache_type, onset) VALUES ('ehr', ?1 || '-dx', ?1, 'h', 'x', 'active', ?2, '2020-01-01')");
        c.bind(1, key);
        c.bind(2, headache_type);
        c.exec();
    }
    // An as-needed acute order: `units` tablets, 1 a dose, at most `per_day` a day.
    void prn(const std::string& key, const std::string& date, const std::string& ingredient,
             const std::string& cls, double units, double per_day, int butalbital = 0) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
            "authored_on, ingredient, drug_class, therapy_role, as_needed, dose_quantity, quantity, "
            "days_supply, "
            "max_units_per_day, route, contains_opioid, contains_butalbital) VALUES ('ehr', ?1 || '-' || ?2 "
            "|| '-' "
            "|| ?3, ?1, 'h', 'x', 'completed', 'order', ?2, ?3, ?4, 'acute', 1, 1, ?5, 30, ?6, 'oral', 0, "
            "?7)");
        q.bind(1, key);
        q.bind(2, date);
        q.bind(3, ingredient);
        q.bind(4, cls);
        q.bind(5, units);
        q.bind(6, per_day);
        q.bind(7, butalbital);
        q.exec();
    }
    // A scheduled preventive: 30 days with `refills` refills.
    void preventive(const std::string& key, const std::string& date, const std::string& ingredient,
                    const std::string& cls, int refills) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO medication_request (source, id, patient_key, raw_hash, ingested_at, status, intent, "
            "authored_on, ingredient, drug_class, therapy_role, as_needed, dose_quantity, doses_per_day, "
            "quantity, "
            "days_supply, refills, route) VALUES ('ehr', ?1 || '-' || ?2, ?1, 'h', 'x', 'active', 'order', "
            "?2, ?3, "
            "?4, 'preventive', 0, 1, 2, 60, 30, ?5, 'oral')");
        q.bind(1, key);
        q.bind(2, date);
        q.bind(3, ingredient);
        q.bind(4, cls);
        q.bind(5, refills);
        q.exec();
    }
    void score(const std::string& key, const std::string& date, const std::string& instrument, double value) {
        SQLite::Statement q(
            db_.sql(),
            "INSERT INTO observation (source, id, patient_key, raw_hash, ingested_at, status, "
            "value_num, effective_at, instrument) VALUES ('ehr', ?1 || '-' || ?2 || '-' || ?3, ?1, "
            "'h', 'x', 'final', ?4, ?2, ?3)");
        q.bind(1, key);
        q.bind(2, date);
        q.bind(3, instrument);
        q.bind(4, value);
        q.exec();
    }
    void months(const std::string& key, int year, int from, int to, const std::string& ingredient,
                const std::string& cls, double units, double per_day, int butalbital = 0) {
        for (int m = from; m <= to; ++m)
            prn(key, std::to_string(year) + (m < 10 ? "-0" : "-") + std::to_string(m) + "-01", ingredient,
                cls, units, per_day, butalbital);
    }

private:
    st::analytics_db db_;
};

rp::report_data load_from(const std::filesystem::path& path) {
    SQLite::Database db = rp::open_read_only(path);
    return rp::load(db);
}

const rp::patient& by_key(const rp::report_data& d, const std::string& key) {
    for (const auto& p : d.patients)
        if (p.key == key) return p;
    throw std::runtime_error("no patient " + key);
}

}  // namespace

TEST(ReportGrades, MidasGradesAndHit6Bands) {
    // MIDAS grades I 0-5, II 6-10, III 11-20, IV 21 and over.
    EXPECT_EQ(rp::midas_grade(0), "I");
    EXPECT_EQ(rp::midas_grade(5), "I");
    EXPECT_EQ(rp::midas_grade(6), "II");
    EXPECT_EQ(rp::midas_grade(10), "II");
    EXPECT_EQ(rp::midas_grade(11), "III");
    EXPECT_EQ(rp::midas_grade(20), "III");
    EXPECT_EQ(rp::midas_grade(21), "IV");
    EXPECT_EQ(rp::midas_grade(90), "IV");
    // HIT-6: 49 or less little or no impact, 50-55 some, 56-59 substantial, 60 and over severe.
    EXPECT_EQ(rp::hit6_band(36), "little or no impact");
    EXPECT_EQ(rp::hit6_band(49), "little or no impact");
    EXPECT_EQ(rp::hit6_band(50), "some impact");
    EXPECT_EQ(rp::hit6_band(55), "some impact");
    EXPECT_EQ(rp::hit6_band(56), "substantial impact");
    EXPECT_EQ(rp::hit6_band(59), "substantial impact");
    EXPECT_EQ(rp::hit6_band(60), "severe impact");
    EXPECT_EQ(rp::hit6_band(78), "severe impact");
    // The page draws the same tables.
    temp_dir dir;
    { st::analytics_db db(dir / "headache.db"); }
    const std::string html = render(dir / "headache.db");
    EXPECT_NE(html.find(R"("midas":[[0,5,"I"],[6,10,"II"],[11,20,"III"],[21,null,"IV"]])"),
              std::string::npos);
    EXPECT_NE(html.find(R"("hit6":[[36,49,"little or no impact"],[50,55,"some impact"],[56,59,"substantial )"
                        R"(impact"],[60,null,"severe impact"]])"),
              std::string::npos);
}

TEST(ReportLoad, MohTilesCountTheCurrentWindowMeetsAndPossibleSeparately) {
    // Setup: as of 2024-05-31, the current window is 2024-02 to 2024-05.
    temp_dir dir;
    {
        clinic c(dir / "headache.db");
        // 3 boxes of sumatriptan a month, at most 2 a day: at least 13.5 days a month, 6 months.
        c.patient("meets", "chronic_migraine");
        c.months("meets", 2023, 12, 12, "sumatriptan", "triptan", 27, 2);
        c.months("meets", 2024, 1, 5, "sumatriptan", "triptan", 27, 2);
        // 30 butalbital-combination tablets a month, every 4 hours: 5 to 30 days a month.
        c.patient("possible", "migraine_without_aura");
        c.months("possible", 2024, 1, 5, "acetaminophen / butalbital / caffeine", "combination_analgesic", 30,
                 6, 1);
        // Overuse in 2022 only: it met the criteria once, not now ("ever" is not "now").
        c.patient("past", "migraine_without_aura");
        c.months("past", 2022, 1, 6, "sumatriptan", "triptan", 27, 2);
        // One box a month: below.
        c.patient("below", "migraine_with_aura");
        c.months("below", 2024, 1, 5, "sumatriptan", "triptan", 9, 2);
        // Deceased, with the same overuse as "meets": never counted.
        c.patient("dead", "chronic_migraine", "2024-05-20");
        c.months("dead", 2024, 1, 5, "sumatriptan", "triptan", 27, 2);
    }
    // Run
    const auto data = load_from(dir / "headache.db");
    const std::string html = rp::render_html(data, rp::options{"now", 25});
    // Check
    EXPECT_EQ(data.clinic.patients, 4);
    EXPECT_EQ(data.clinic.deceased_patients, 1);
    EXPECT_EQ(data.clinic.moh_meets, 1);
    EXPECT_EQ(data.clinic.moh_possible, 1);
    EXPECT_EQ(by_key(data, "meets").moh_current_state, "meets");
    EXPECT_EQ(by_key(data, "possible").moh_current_state, "possible");
    EXPECT_EQ(by_key(data, "past").moh_state, "meets");
    EXPECT_EQ(by_key(data, "past").moh_current_state, "below");
    EXPECT_EQ(by_key(data, "below").moh_current_state, "below");
    EXPECT_TRUE(by_key(data, "dead").deceased);
    EXPECT_EQ(by_key(data, "dead").deceased_at, "2024-05-20");
    EXPECT_NE(html.find(R"(id="tile-moh-meets">MOH: meets now<b>1</b>)"), std::string::npos);
    EXPECT_NE(html.find(R"(id="tile-moh-possible">MOH: possible now<b>1</b>)"), std::string::npos);
    EXPECT_NE(html.find(R"(id="tile-patients">Patients<b>4</b><span class="note">living; 1 deceased)"),
              std::string::npos);
    EXPECT_NE(
        html.find(R"("k":"dead","t":"Chronic migraine","s":"female","b":1980,"a":"","v":"","la":"","ls":"",)"
                  R"("d":1,"da":"2024-05-20","dd":)" +
                  std::to_string(rp::day_number("2024-05-20"))),
        std::string::npos);
}

TEST(ReportLoad, ExposureIsARangePerClassAgainstItsThresholdNeverAboveTheMonth) {
    // Setup: 90 ibuprofen tablets in February 2024 (29 days), at most 3 a
    // day: at least 30 days by the units, more than February has; and one
    // box of sumatriptan in the same month.
    temp_dir dir;
    {
        clinic c(dir / "headache.db");
        c.patient("a", "tension_type");
        c.prn("a", "2024-02-01", "ibuprofen", "nsaid", 90, 3);
        c.prn("a", "2024-02-01", "sumatriptan", "triptan", 9, 2);
    }
    // Run
    const auto data = load_from(dir / "headache.db");
    // Check: every row within its month; the exact February rows.
    const auto& p = by_key(data, "a");
    ASSERT_FALSE(p.exposure.empty());
    for (const auto& e : p.exposure) {
        EXPECT_LE(e.max_days + e.unknown_days, e.days_in_month) << e.month;
        EXPECT_LE(e.min_days, e.max_days) << e.month;
    }
    std::map<std::string, rp::month_exposure> feb;
    for (const auto& e : p.exposure)
        if (e.month == 2024 * 12 + 1) feb[data.acute_classes[static_cast<std::size_t>(e.acute_class)]] = e;
    ASSERT_EQ(feb.size(), 3u);  // the two classes and "any"
    const auto& nsaid = feb.at("simple_analgesic_nsaid");
    EXPECT_EQ(nsaid.days_in_month, 29);
    EXPECT_EQ(nsaid.min_days, 29);
    EXPECT_EQ(nsaid.max_days, 29);
    EXPECT_EQ(nsaid.threshold_days, 15);
    const auto& triptan = feb.at("triptan");
    EXPECT_EQ(triptan.threshold_days, 10);
    EXPECT_EQ(triptan.max_days, 9);
    EXPECT_EQ(triptan.min_days, 4);
    EXPECT_EQ(feb.at("any").max_days, 29);
    EXPECT_EQ(p.acute_drugs.at(triptan.acute_class), "sumatriptan");
    EXPECT_EQ(p.acute_drugs.at(nsaid.acute_class), "ibuprofen");
}

TEST(ReportLoad, OneTimeAxisForExposureTrialsAndScores) {
    // Setup: a score in October 2023, a preventive from 2023-11-15 and
    // triptans from January 2024; as of 2024-05-31.
    temp_dir dir;
    {
        clinic c(dir / "headache.db");
        c.patient("a", "chronic_migraine");
        c.score("a", "2023-10-20", "midas", 30);
        c.score("a", "2024-02-20", "midas", 12);
        c.preventive("a", "2023-11-15", "topiramate", "anticonvulsant", 5);
        c.months("a", 2024, 1, 3, "sumatriptan", "triptan", 9, 2);
    }
    // Run
    const auto data = load_from(dir / "headache.db");
    const std::string html = rp::render_html(data, rp::options{"now", 25});
    // Check: from the first of the first event's month to as_of, one axis in the data of the page.
    const auto& p = by_key(data, "a");
    EXPECT_EQ(p.axis_from, rp::day_number("2023-10-01"));
    EXPECT_EQ(p.axis_to, rp::day_number("2024-05-31"));
    ASSERT_EQ(p.trials.size(), 1u);
    EXPECT_EQ(p.trials[0].drugs, "topiramate");
    EXPECT_NE(html.find("\"x\":[" + std::to_string(rp::day_number("2023-10-01")) + "," +
                        std::to_string(rp::day_number("2024-05-31")) + "]"),
              std::string::npos);
    // The header states the data's dates and as_of.
    EXPECT_NE(html.find("Clinical records from 2023-10-20 to 2024-03-01; as of 2024-05-31"),
              std::string::npos);
}

TEST(ReportLoad, CandidatesAndSafetyFlagsInTheClinicSummary) {
    // Setup: a woman of 30 on topiramate with migraine and MIDAS 24 (a
    // candidate and a safety flag); a tension-type-only patient with the
    // same MIDAS (neither).
    temp_dir dir;
    {
        clinic c(dir / "headache.db");
        c.patient("m", "migraine_without_aura");
        c.preventive("m", "2024-03-01", "topiramate", "anticonvulsant", 5);
        c.score("m", "2024-03-01", "midas", 24);
        c.patient("t", "tension_type");
        c.score("t", "2024-03-01", "midas", 24);
    }
    {
        SQLite::Database rw((dir / "headache.db").string(), SQLite::OPEN_READWRITE);
        rw.exec("UPDATE patient SET birth_year = 1994");
    }
    // Run
    const auto data = load_from(dir / "headache.db");
    const std::string html = rp::render_html(data, rp::options{"now", 25});
    // Check
    EXPECT_EQ(data.clinic.cgrp_candidates, 1);
    EXPECT_TRUE(by_key(data, "m").cgrp_candidate);
    EXPECT_FALSE(by_key(data, "t").cgrp_candidate);
    EXPECT_EQ(data.clinic.safety_flag_patients, 1);
    ASSERT_EQ(data.clinic.safety_flags.size(), 1u);
    EXPECT_EQ(data.clinic.safety_flags[0].n, 1);
    EXPECT_EQ(by_key(data, "m").safety_flags, std::vector<std::string>{data.clinic.safety_flags[0].label});
    EXPECT_NE(html.find(R"(id="tile-cgrp">CGRP candidates<b>1</b>)"), std::string::npos);
    EXPECT_NE(html.find(R"(id="tile-safety">Safety flags<b>1</b>)"), std::string::npos);
}

TEST(ReportLoad, TreatmentResponseBeforeAndAboutThreeAndSixMonthsAfterAStart) {
    // Setup: topiramate from 2024-01-01; MIDAS 30 eleven days before, 20 at
    // day 91 and 10 at day 182.
    temp_dir dir;
    {
        clinic c(dir / "headache.db", "2024-07-31");
        c.patient("a", "chronic_migraine");
        c.preventive("a", "2024-01-01", "topiramate", "anticonvulsant", 5);
        c.score("a", "2023-12-21", "midas", 30);
        c.score("a", "2024-04-01", "midas", 20);
        c.score("a", "2024-07-01", "midas", 10);
    }
    // Run
    const auto data = load_from(dir / "headache.db");
    const std::string html = rp::render_html(data, rp::options{"now", 25});
    // Check
    const auto& p = by_key(data, "a");
    ASSERT_EQ(p.responses.size(), 1u);
    EXPECT_EQ(p.responses[0].drugs, "topiramate");
    EXPECT_EQ(p.responses[0].instrument, "midas");
    EXPECT_EQ(p.responses[0].start, rp::day_number("2024-01-01"));
    EXPECT_EQ(p.responses[0].baseline, 30);
    EXPECT_EQ(p.responses[0].month3, 20);
    EXPECT_EQ(p.responses[0].month6, 10);
    EXPECT_NE(html.find("\"rs\":[[\"topiramate\"," + std::to_string(rp::day_number("2024-01-01")) +
                        ",\"midas\",30,20,10]]"),
              std::string::npos);
}

TEST(ReportLoad, ExposureIsClampedToTheMonthWhateverTheViewSays) {
    // Setup: a view that breaks its own caps (in February 35 of 29 days, the
    // minimum above the maximum, unknown days past the month's end; in March
    // 20 + 45 of 31), standing in for a future bug.
    temp_dir dir;
    {
        clinic c(dir / "headache.db");
        c.patient("a", "migraine_without_aura");
    }
    // A temporary view on the report's own connection shadows the real one.
    SQLite::Database db = rp::open_read_only(dir / "headache.db");
    db.exec(
        "CREATE TEMP VIEW v_acute_exposure_monthly AS SELECT 'a' AS patient_key, '2024-02' AS month, "
        "'triptan' "
        "AS acute_class, 40 AS min_days, 35 AS known_max_days, 10 AS threshold_days, 29 AS days_in_month, 1 "
        "AS "
        "unknown_quantity_prescriptions, 12 AS unknown_days UNION ALL SELECT 'a', '2024-03', 'opioid', 5, "
        "20, "
        "10, 31, 2, 45");
    // Run
    const auto data = rp::load(db);
    // Check
    const auto& p = by_key(data, "a");
    ASSERT_EQ(p.exposure.size(), 2u);
    EXPECT_EQ(p.exposure[0].max_days, 29);
    EXPECT_EQ(p.exposure[0].min_days, 29);
    EXPECT_EQ(p.exposure[0].unknown_days, 0);
    EXPECT_EQ(p.exposure[1].min_days, 5);
    EXPECT_EQ(p.exposure[1].max_days, 20);
    EXPECT_EQ(p.exposure[1].unknown_days, 11);
    EXPECT_EQ(p.exposure[1].unknown_prescriptions, 2);
}
