// The Bulk Data protocol's pure pieces (issue 15): the kick-off request,
// the completion manifest, the OperationOutcome of a failed poll and
// X-Progress, with hostile inputs. Plain values: no network.
#include <gtest/gtest.h>

#include "headachemd/sync/bulk_data.hpp"

namespace {

namespace sy = headachemd::sync;
using headachemd::errc;

// ---- kick-off ----------------------------------------------------------------

sy::kickoff_spec group_spec() {
    sy::kickoff_spec s;
    s.fhir_base = "https://ehr.example/fhir/";
    s.group_id = "headache-registry.1";
    return s;
}

TEST(BulkKickoff, GroupExportWithTypesSinceAndFiltersIsOneGetWithTheRequiredHeaders) {
    // Setup
    auto s = group_spec();
    s.types = {"Patient", "Observation", "MedicationRequest"};
    s.since = "2026-01-02T03:04:05.123+02:00";
    s.type_filters = {"MedicationRequest?status=active,completed&_lastUpdated=gt2026-01-01"};

    // Run
    const auto r = sy::build_kickoff(s);

    // Check: _type is one comma list; '+' of the zone is %2B (a literal '+'
    // is a space); the filter is escaped whole, its ',' and '&' included.
    ASSERT_TRUE(r) << r.err().message;
    EXPECT_EQ(r->method, "GET");
    EXPECT_EQ(r->url,
              "https://ehr.example/fhir/Group/headache-registry.1/$export"
              "?_type=Patient,Observation,MedicationRequest"
              "&_since=2026-01-02T03:04:05.123%2B02:00"
              "&_typeFilter=MedicationRequest%3Fstatus%3Dactive%2Ccompleted%26_lastUpdated%3Dgt2026-01-01");
    const std::vector<std::pair<std::string, std::string>> headers{{"Accept", "application/fhir+json"},
                                                                   {"Prefer", "respond-async"}};
    EXPECT_EQ(r->headers, headers);
}

TEST(BulkKickoff, PatientAndSystemLevelsAndNoParameters) {
    auto s = group_spec();
    s.level = sy::export_level::patient;
    EXPECT_EQ(sy::build_kickoff(s)->url, "https://ehr.example/fhir/Patient/$export");
    s.level = sy::export_level::system;
    s.types = {"Condition"};
    EXPECT_EQ(sy::build_kickoff(s)->url, "https://ehr.example/fhir/$export?_type=Condition");
    // Loopback http is allowed (the sandbox); two filters are two parameters.
    s.fhir_base = "http://127.0.0.1:8443/fhir";
    s.types = {};
    s.type_filters = {"Observation?category=vital-signs", "Condition?clinical-status=active"};
    EXPECT_EQ(sy::build_kickoff(s)->url,
              "http://127.0.0.1:8443/fhir/$export?_typeFilter=Observation%3Fcategory%3Dvital-signs"
              "&_typeFilter=Condition%3Fclinical-status%3Dactive");
}

TEST(BulkKickoff, BadInputIsRefusedNamingTheField) {
    struct bad_case {
        const char* name;
        void (*edit)(sy::kickoff_spec&);
        const char* says;
    };
    const bad_case cases[] = {
        {"relative base", [](sy::kickoff_spec& s) { s.fhir_base = "/fhir"; }, "fhir_base is not an absolute"},
        {"plain http", [](sy::kickoff_spec& s) { s.fhir_base = "http://ehr.example/fhir"; }, "must be https"},
        {"query in base", [](sy::kickoff_spec& s) { s.fhir_base = "https://ehr.example/fhir?x=1"; },
         "query or fragment"},
        {"group id with a slash", [](sy::kickoff_spec& s) { s.group_id = "a/../b"; }, "group id"},
        {"empty group id", [](sy::kickoff_spec& s) { s.group_id = ""; }, "group id"},
        {"type with a comma",
         [](sy::kickoff_spec& s) {
             s.types = {"Patient", "Observation,Condition"};
         },
         "_type entry 1"},
        {"lower-case type", [](sy::kickoff_spec& s) { s.types = {"patient"}; }, "_type entry 0"},
        {"date for _since", [](sy::kickoff_spec& s) { s.since = "2026-01-02"; },
         "_since is not a FHIR instant"},
        {"since without zone", [](sy::kickoff_spec& s) { s.since = "2026-01-02T03:04:05"; }, "_since"},
        {"filter without ?", [](sy::kickoff_spec& s) { s.type_filters = {"Observation"}; },
         "_typeFilter entry 0"},
        {"filter of no type", [](sy::kickoff_spec& s) { s.type_filters = {"?code=1"}; },
         "_typeFilter entry 0"},
    };
    for (const auto& c : cases) {
        auto s = group_spec();
        c.edit(s);
        const auto r = sy::build_kickoff(s);
        ASSERT_FALSE(r) << c.name;
        EXPECT_TRUE(r.err().code == errc::bad_export_request) << c.name;
        EXPECT_NE(r.err().message.find(c.says), std::string::npos) << c.name << ": " << r.err().message;
    }
}

TEST(BulkKickoff, InstantsFollowTheFhirGrammar) {
    for (const char* ok : {"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.1Z",
                           "2026-01-02T03:04:05.123456789-05:00", "2016-12-31T23:59:60Z"})
        EXPECT_TRUE(sy::is_fhir_instant(ok)) << ok;
    for (const char* bad :
         {"2026-01-02", "2026-01-02T03:04Z", "2026-13-02T03:04:05Z", "2026-01-02T24:04:05Z",
          "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05.1234567890Z", "2026-01-02T03:04:05+2:00",
          "2026-01-02T03:04:05+15:00", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05z"})
        EXPECT_FALSE(sy::is_fhir_instant(bad)) << bad;
}

// ---- manifest ----------------------------------------------------------------

const char* const good_manifest = R"({
  "transactionTime": "2026-12-05T10:00:00.000Z",
  "request": "https://ehr.example/fhir/Group/g/$export",
  "requiresAccessToken": true,
  "output": [
    {"type": "Patient", "url": "https://ehr.example/files/1.ndjson", "count": 10000},
    {"type": "Observation", "url": "https://files.example:8443/2.ndjson"}
  ],
  "error": [{"type": "OperationOutcome", "url": "https://ehr.example/files/err.ndjson"}],
  "deleted": [{"type": "Bundle", "url": "http://127.0.0.1:9/del.ndjson", "count": 0}],
  "extension": {"x": 1}
})";

TEST(BulkManifest, ReadsEveryListInApplyOrder) {
    // Run
    const auto m = sy::parse_manifest(good_manifest);

    // Check: output, then deleted, then error.
    ASSERT_TRUE(m) << m.err().message;
    EXPECT_EQ(m->transaction_time, "2026-12-05T10:00:00.000Z");
    EXPECT_TRUE(m->requires_access_token);
    ASSERT_EQ(m->files.size(), 4u);
    EXPECT_EQ(m->files[0], (sy::bulk_file{sy::bulk_file_kind::output, "Patient",
                                          "https://ehr.example/files/1.ndjson", 10000}));
    EXPECT_EQ(m->files[1], (sy::bulk_file{sy::bulk_file_kind::output, "Observation",
                                          "https://files.example:8443/2.ndjson", std::nullopt}));
    EXPECT_EQ(m->files[2].kind, sy::bulk_file_kind::deleted);
    EXPECT_EQ(m->files[2].count, 0u);
    EXPECT_EQ(m->files[3].kind, sy::bulk_file_kind::error);
    EXPECT_EQ(m->files[3].type, "OperationOutcome");
}

TEST(BulkManifest, AnEmptyExportAndAV1ManifestWithoutErrorOrDeletedAreFine) {
    const auto m = sy::parse_manifest(
        R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":false,"output":[]})");
    ASSERT_TRUE(m) << m.err().message;
    EXPECT_FALSE(m->requires_access_token);
    EXPECT_TRUE(m->files.empty());
}

std::string with_output(const std::string& entry) {
    return R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":true,"output":[)" + entry +
           "]}";
}

TEST(BulkManifest, BadInputIsRefusedNamingTheFieldButNotItsValue) {
    const std::pair<std::string, std::string> cases[] = {
        {"", "not valid JSON"},
        {"[]", "not a JSON object"},
        {R"({"requiresAccessToken":true,"output":[]})", "transactionTime is missing"},
        {R"({"transactionTime":12,"requiresAccessToken":true,"output":[]})",
         "transactionTime is missing or not a string"},
        {R"({"transactionTime":"2026-12-05","requiresAccessToken":true,"output":[]})",
         "transactionTime is not a FHIR instant"},
        {R"({"transactionTime":"2026-12-05T10:00:00Z","output":[]})", "requiresAccessToken is missing"},
        {R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":"yes","output":[]})",
         "requiresAccessToken is missing or not a boolean"},
        {R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":true})", "output is missing"},
        {R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":true,"output":{}})",
         "output is not an array"},
        {R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":true,"output":[],"error":"x"})",
         "error is not an array"},
        {with_output(R"("https://ehr.example/1.ndjson")"), "output[0] is not an object"},
        {with_output(R"({"url":"https://ehr.example/1.ndjson"})"), "output[0].type is missing"},
        {with_output(R"({"type":"Observation; DROP","url":"https://ehr.example/1.ndjson"})"),
         "output[0].type is not a resource type name"},
        {with_output(R"({"type":"Patient"})"), "output[0].url is missing"},
        {with_output(R"({"type":"Patient","url":"/files/secret-token-1.ndjson"})"),
         "output[0].url is not an absolute http(s) URL"},
        {with_output(R"({"type":"Patient","url":"ftp://ehr.example/secret-token-1.ndjson"})"),
         "output[0].url is not an absolute http(s) URL"},
        {with_output(R"({"type":"Patient","url":"http://ehr.example/secret-token-1.ndjson"})"),
         "output[0].url is not https"},
        {with_output(
             R"({"type":"Patient","url":"https://a/1"},{"type":"Patient","url":"https://a/2","count":-1})"),
         "output[1].count is not a non-negative integer"},
        {with_output(R"({"type":"Patient","url":"https://a/1","count":1.5})"),
         "output[0].count is not a non-negative integer"},
        {with_output(R"({"type":"Patient","url":"https://a/1","count":"7"})"),
         "output[0].count is not a non-negative integer"},
        {with_output(R"({"type":"Patient","url":"https://a/1","count":1000000000001})"),
         "output[0].count is over the limit"},
        {with_output(R"({"type":"Patient","url":"https://a/1","count":18446744073709551615})"),
         "output[0].count is over the limit"},
    };
    for (const auto& [body, says] : cases) {
        const auto m = sy::parse_manifest(body);
        ASSERT_FALSE(m) << body;
        EXPECT_TRUE(m.err().code == errc::bad_manifest) << body;
        EXPECT_NE(m.err().message.find(says), std::string::npos) << body << "\n" << m.err().message;
        EXPECT_EQ(m.err().message.find("secret-token"), std::string::npos) << m.err().message;
    }
}

TEST(BulkManifest, ThousandsOfEntriesAndHugeBodiesAreBounded) {
    // Setup: limits small enough to reach in a test.
    sy::manifest_limits limits;
    limits.max_files = 3;
    std::string entries;
    for (int i = 0; i < 4; ++i)
        entries += std::string(i ? "," : "") + R"({"type":"Patient","url":"https://a/)" + std::to_string(i) +
                   R"("})";
    const std::string four = with_output(entries);

    // Run / Check: the fourth entry is over the limit, across lists too.
    const auto m = sy::parse_manifest(four, limits);
    ASSERT_FALSE(m);
    EXPECT_NE(m.err().message.find("more than 3 files"), std::string::npos) << m.err().message;
    limits.max_files = 4;
    EXPECT_TRUE(sy::parse_manifest(four, limits));
    limits.max_files = 3;
    const std::string split =
        R"({"transactionTime":"2026-12-05T10:00:00Z","requiresAccessToken":true,)"
        R"("output":[{"type":"Patient","url":"https://a/1"},{"type":"Patient","url":"https://a/2"}],)"
        R"("error":[{"type":"OperationOutcome","url":"https://a/3"},)"
        R"({"type":"OperationOutcome","url":"https://a/4"}]})";
    EXPECT_FALSE(sy::parse_manifest(split, limits));

    limits.max_bytes = 100;
    const auto big = sy::parse_manifest(four, limits);
    ASSERT_FALSE(big);
    EXPECT_NE(big.err().message.find("larger than 100 bytes"), std::string::npos);

    sy::manifest_limits url_limit;
    url_limit.max_url_length = 20;
    const auto long_url = sy::parse_manifest(
        with_output(R"({"type":"Patient","url":"https://ehr.example/123456"})"), url_limit);
    ASSERT_FALSE(long_url);
    EXPECT_NE(long_url.err().message.find("output[0].url is longer than 20 bytes"), std::string::npos);
}

// ---- OperationOutcome --------------------------------------------------------

std::string outcome(const std::string& issues) {
    return R"({"resourceType":"OperationOutcome","issue":[)" + issues + "]}";
}

TEST(BulkOutcome, EveryTransientIssueTypeMeansRetry) {
    for (const char* code :
         {"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"}) {
        const auto r = sy::read_operation_outcome(outcome(std::string(R"({"severity":"error","code":")") +
                                                          code + R"(","diagnostics":"try later"})"));
        EXPECT_EQ(r.verdict, sy::outcome_class::transient) << code;
        EXPECT_EQ(r.summary, std::string("error ") + code);
        EXPECT_TRUE(sy::is_transient_issue_code(code));
    }
    for (const char* code :
         {"processing", "not-supported", "too-costly", "forbidden", "security", "Transient", ""})
        EXPECT_FALSE(sy::is_transient_issue_code(code)) << code;
}

TEST(BulkOutcome, AnyNonTransientErrorIsFatalAndWarningsDoNotDecide) {
    // A fatal error next to a transient one: retrying will not help.
    const auto mixed = sy::read_operation_outcome(
        outcome(R"({"severity":"error","code":"transient"},{"severity":"fatal","code":"too-costly"})"));
    EXPECT_EQ(mixed.verdict, sy::outcome_class::fatal);
    EXPECT_EQ(mixed.summary, "error transient; fatal too-costly");
    // A warning with a non-transient code next to a transient error.
    const auto warned = sy::read_operation_outcome(
        outcome(R"({"severity":"warning","code":"informational"},{"severity":"error","code":"throttled"})"));
    EXPECT_EQ(warned.verdict, sy::outcome_class::transient);
    // Warnings only: nothing says what failed.
    EXPECT_EQ(sy::read_operation_outcome(outcome(R"({"severity":"warning","code":"processing"})")).verdict,
              sy::outcome_class::unknown);
}

TEST(BulkOutcome, NotAnOutcomeIsUnknownAndTheSummaryNeverCarriesPayload) {
    for (const char* body : {"", "<html>502 Bad Gateway</html>", R"({"resourceType":"Bundle","issue":[]})",
                             R"({"resourceType":"OperationOutcome"})", "{"})
        EXPECT_EQ(sy::read_operation_outcome(body).verdict, sy::outcome_class::unknown) << body;

    // Free text and a code stuffed with payload are not repeated.
    const auto r = sy::read_operation_outcome(
        outcome(R"({"severity":"error","code":"processing","diagnostics":"Patient Jane Roe, MRN 12345",)"
                R"("details":{"text":"Jane Roe"}},{"severity":"error","code":"Jane Roe 12345"})"));
    EXPECT_EQ(r.verdict, sy::outcome_class::fatal);
    EXPECT_EQ(r.summary, "error processing; error ?");
    EXPECT_EQ(r.summary.find("Jane"), std::string::npos);

    // Many issues: eight are shown and the rest counted.
    std::string many;
    for (int i = 0; i < 20; ++i)
        many += std::string(i ? "," : "") + R"({"severity":"error","code":"timeout"})";
    const auto bounded = sy::read_operation_outcome(outcome(many));
    EXPECT_EQ(bounded.verdict, sy::outcome_class::transient);
    EXPECT_NE(bounded.summary.find("; and 12 more"), std::string::npos) << bounded.summary;
    EXPECT_LT(bounded.summary.size(), 200u);
}

// ---- X-Progress ----------------------------------------------------------------

TEST(BulkProgress, IsPrintableAsciiAndBounded) {
    EXPECT_EQ(sy::sanitize_progress("42% (3 of 7 types)"), "42% (3 of 7 types)");
    EXPECT_EQ(sy::sanitize_progress("a\r\nb\x1b[31m\xc3\xa9"), "a??b?[31m??");
    const std::string huge(1 << 20, 'x');
    // (Built with append: GCC 12 -O2 warns falsely on string(n, c) + "...".)
    std::string cut(64, 'x');
    cut.append("...");
    EXPECT_EQ(sy::sanitize_progress(huge), cut);
}

}  // namespace
