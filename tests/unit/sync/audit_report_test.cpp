// What `audit` prints, without a vault: --since parsing against a fixed
// now, and the exact text of the three forms for two events (one with
// every field, one with the optional fields empty).
#include <gtest/gtest.h>

#include "headachemd/sync/audit_report.hpp"

namespace {

namespace st = headachemd::store;
namespace sy = headachemd::sync;
using namespace std::chrono;
using namespace std::chrono_literals;

const system_clock::time_point now = sys_days{2026y / 11 / 8} + 12h;

std::vector<st::audit_event> two_events() {
    st::audit_event full;
    full.time = "2026-11-01T08:00:00Z";
    full.patient_key = "hmd-1";
    full.ehr = "ecw";
    full.action = "fhir.search";
    full.resource_type = "Observation";
    full.page = 1;
    full.http_status = 200;
    full.count = 25;
    full.outcome = "ok";
    st::audit_event bare;
    bare.time = "2026-11-01T08:00:05Z";
    bare.action = "rekey";
    bare.count = 3;
    bare.outcome = "ok";
    return {full, bare};
}

TEST(ParseSince, ADateIsMidnightUtc) {
    EXPECT_EQ(sy::parse_since("2026-11-01", now), "2026-11-01T00:00:00Z");
}

TEST(ParseSince, AUtcTimeIsTakenAsStored) {
    EXPECT_EQ(sy::parse_since("2026-11-01T08:30:15Z", now), "2026-11-01T08:30:15Z");
}

TEST(ParseSince, ADurationCountsBackFromNow) {
    EXPECT_EQ(sy::parse_since("7d", now), "2026-11-01T12:00:00Z");
    EXPECT_EQ(sy::parse_since("12h", now), "2026-11-08T00:00:00Z");
    EXPECT_EQ(sy::parse_since("30m", now), "2026-11-08T11:30:00Z");
    EXPECT_EQ(sy::parse_since("90s", now), "2026-11-08T11:58:30Z");
    EXPECT_EQ(sy::parse_since("0d", now), "2026-11-08T12:00:00Z");
    // Seven digits and a unit is the longest duration taken.
    EXPECT_EQ(sy::parse_since("1000000s", now), "2026-10-27T22:13:20Z");
}

TEST(ParseSince, AnythingElseIsRefused) {
    for (const char* bad :
         {"", "last tuesday", "d", "7", "7w", "7D", "-7d", "10000000s", "2026-1-01", "2026-11-1", "26-11-01",
          "2026/11/01", "2026-11-01T08:00:00", "2026-11-01 08:00:00Z", "2026-11-01T8:00:00Z",
          "2026-11-0xT08:00:00Z", "2026-11-01T08:0a:00Z"})
        EXPECT_EQ(sy::parse_since(bad, now), std::nullopt) << bad;
}

TEST(AuditReport, JsonIsOneObjectPerLineWithNullForAnEmptyField) {
    EXPECT_EQ(sy::render_audit_json(two_events()),
              "{\"time\":\"2026-11-01T08:00:00Z\",\"patient_key\":\"hmd-1\",\"ehr\":\"ecw\","
              "\"action\":\"fhir.search\",\"resource_type\":\"Observation\",\"page\":1,\"http_status\":200,"
              "\"count\":25,\"outcome\":\"ok\"}\n"
              "{\"time\":\"2026-11-01T08:00:05Z\",\"patient_key\":null,\"ehr\":null,\"action\":\"rekey\","
              "\"resource_type\":null,\"page\":null,\"http_status\":null,\"count\":3,\"outcome\":\"ok\"}\n");
}

TEST(AuditReport, JsonEscapesAValue) {
    auto events = two_events();
    events.resize(1);
    events[0].outcome = "a\"b\tc";
    const auto out = sy::render_audit_json(events);
    EXPECT_NE(out.find(",\"outcome\":\"a\\\"b\\tc\"}\n"), std::string::npos) << out;
}

TEST(AuditReport, NoEventsIsNoJsonLine) { EXPECT_EQ(sy::render_audit_json({}), ""); }

TEST(AuditReport, TsvHasAHeaderAndEmptyFieldsAndNoTabOrNewlineInsideAValue) {
    auto events = two_events();
    events[0].patient_key = "hmd\t1";
    events[0].ehr = "e\rcw";
    events[1].outcome = "timeout\tconnect\nretry";
    EXPECT_EQ(sy::render_audit_tsv(events),
              "time\tpatient_key\tehr\taction\tresource_type\tpage\thttp_status\tcount\toutcome\n"
              "2026-11-01T08:00:00Z\thmd 1\te cw\tfhir.search\tObservation\t1\t200\t25\tok\n"
              "2026-11-01T08:00:05Z\t\t\trekey\t\t\t\t3\ttimeout connect retry\n");
}

TEST(AuditReport, TsvOfNoEventsIsTheHeaderOnly) {
    EXPECT_EQ(sy::render_audit_tsv({}),
              "time\tpatient_key\tehr\taction\tresource_type\tpage\thttp_status\tcount\toutcome\n");
}

TEST(AuditReport, TableAlignsEachColumnToItsWidestValueTwoSpacesApart) {
    // Columns: 20, 7, 3, 11, 11, 4, 6, 5 characters, then OUTCOME unpadded.
    EXPECT_EQ(sy::render_audit_table(two_events()),
              "TIME (UTC)            PATIENT  EHR  ACTION       TYPE         PAGE  STATUS  COUNT  OUTCOME\n"
              "2026-11-01T08:00:00Z  hmd-1    ecw  fhir.search  Observation  1     200     25     ok\n"
              "2026-11-01T08:00:05Z  -        -    rekey        -            -     -       3      ok\n"
              "2 event(s)\n");
}

TEST(AuditReport, TableOfNoEventsIsTheHeaderAndACountOfZero) {
    EXPECT_EQ(sy::render_audit_table({}),
              "TIME (UTC)  PATIENT  EHR  ACTION  TYPE  PAGE  STATUS  COUNT  OUTCOME\n"
              "0 event(s)\n");
}

}  // namespace
