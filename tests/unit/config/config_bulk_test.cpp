// [ehr.bulk] (issue 15): the Bulk Data export settings of an [[ehr]], their
// presets, and an error naming the key for every bad value.
#include <gtest/gtest.h>

#include <string>

#include "config_test_helpers.hpp"

namespace {

using namespace headachemd::config;
using namespace headachemd::config::test;
using namespace std::chrono_literals;

// Lines 1-7: the [[ehr]] and the [ehr.bulk] header; `body` starts at line 8.
std::string with_bulk(std::string_view profile, std::string_view body) {
    std::string t = "[[ehr]]\nname = \"ecw\"\nprofile = \"";
    t.append(profile).append("\"\n");
    t += "fhir_base = \"https://ehr.example.org/fhir\"\nclient_id = \"client-1\"\n"
         "client_secret_file = \"/etc/headachemd/ecw.secret\"\n[ehr.bulk]\n";
    t.append(body);
    return t;
}

// Lines 8-11: a complete registration; a test's own key goes on line 12.
constexpr std::string_view registration =
    "client_id = \"backend-1\"\n"
    "private_key_file = \"/etc/headachemd/ecw-bulk-key.pem\"\n"
    "key_id = \"k-2026\"\n"
    "group_id = \"registry-7\"\n";

std::string registration_and(std::string_view line12) { return std::string(registration).append(line12); }

const bulk_settings* bulk_of(const parse_result& r) {
    const auto* c = config_of(r);
    if (c == nullptr || c->ehrs.empty()) return nullptr;
    EXPECT_TRUE(c->ehrs[0].bulk.has_value());
    return c->ehrs[0].bulk ? &*c->ehrs[0].bulk : nullptr;
}

// One error, on `line`, under the [ehr.bulk] label, saying `fragment`.
::testing::AssertionResult bulk_error(const parse_result& r, int line, std::string_view fragment) {
    const auto errors = errors_of(r);
    if (errors.size() != 1)
        return ::testing::AssertionFailure() << "expected one error:\n" << describe(errors);
    const auto& e = errors[0];
    if (e.line != line || e.message.find("[[ehr]] \"ecw\" [ehr.bulk]: ") != 0 ||
        e.message.find(fragment) == std::string::npos)
        return ::testing::AssertionFailure()
               << "expected line " << line << " saying \"" << fragment << "\":\n"
               << describe(errors);
    return ::testing::AssertionSuccess();
}

TEST(config_bulk, absent_means_per_patient_only) {
    const auto r = parse(valid_ehr);
    const auto* c = config_of(r);
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->ehrs[0].bulk);
}

TEST(config_bulk, eclinicalworks_preset_is_group_rs384_and_group_read) {
    const auto r = parse(with_bulk("eclinicalworks", registration));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->client_id, "backend-1");
    EXPECT_EQ(b->private_key_file, "/etc/headachemd/ecw-bulk-key.pem");
    EXPECT_EQ(b->key_id, "k-2026");
    EXPECT_EQ(b->group_id, "registry-7");
    EXPECT_EQ(b->level, bulk_level::group);
    EXPECT_EQ(b->algorithm, bulk_algorithm::rs384);
    EXPECT_TRUE(b->group_only);
    EXPECT_TRUE(b->rs384_only);
    // The types follow the [[ehr]]'s resources (eCW's have no Appointment).
    EXPECT_EQ(b->types, (std::vector<std::string>{"Patient", "Condition", "MedicationRequest", "Encounter",
                                                  "Observation", "Procedure"}));
    EXPECT_EQ(b->scopes, (std::vector<std::string>{"system/Patient.read", "system/Condition.read",
                                                   "system/MedicationRequest.read", "system/Encounter.read",
                                                   "system/Observation.read", "system/Procedure.read",
                                                   "system/Group.read"}));
    EXPECT_EQ(b->since_overlap, 300s);
    EXPECT_EQ(b->interval, 24h);
    EXPECT_EQ(b->max_retry_after, 1h);
    EXPECT_EQ(b->job_deadline, 72h);
    EXPECT_EQ(b->max_line_bytes, std::size_t{8} << 20);
}

TEST(config_bulk, epic_and_generic_presets) {
    const auto epic = parse(with_bulk("epic", registration));
    const auto* e = bulk_of(epic);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->group_only);
    EXPECT_FALSE(e->rs384_only);
    EXPECT_TRUE(e->required_scopes.empty());
    EXPECT_EQ(e->types.size(), 7u);
    const auto generic = parse(with_bulk("generic", registration));
    const auto* g = bulk_of(generic);
    ASSERT_NE(g, nullptr);
    EXPECT_FALSE(g->group_only);
    EXPECT_FALSE(g->rs384_only);
    EXPECT_EQ(g->scopes.size(), 7u);
}

TEST(config_bulk, explicit_keys_override_the_preset) {
    const auto r =
        parse(with_bulk("eclinicalworks", registration_and("types = [\"Condition\", \"Observation\"]\n"
                                                           "since_overlap = \"10m\"\n"
                                                           "interval = \"12h\"\n"
                                                           "max_retry_after = \"2h\"\n"
                                                           "job_deadline = \"7d\"\n"
                                                           "max_line_bytes = 1048576\n")));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->types, (std::vector<std::string>{"Condition", "Observation"}));
    // The scopes follow the types, and eCW's system/Group.read stays.
    EXPECT_EQ(b->scopes, (std::vector<std::string>{"system/Condition.read", "system/Observation.read",
                                                   "system/Group.read"}));
    EXPECT_EQ(b->since_overlap, 600s);
    EXPECT_EQ(b->interval, 12h);
    EXPECT_EQ(b->max_retry_after, 2h);
    EXPECT_EQ(b->job_deadline, 24h * 7);
    EXPECT_EQ(b->max_line_bytes, 1048576u);
}

TEST(config_bulk, explicit_scopes_still_get_the_required_ones) {
    const auto r = parse(with_bulk("eclinicalworks", registration_and("scopes = \"system/*.read\"\n")));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->scopes, (std::vector<std::string>{"system/*.read", "system/Group.read"}));
    const auto g = parse(with_bulk("generic", registration_and("scopes = [\"system/*.rs\"]\n")));
    ASSERT_NE(bulk_of(g), nullptr);
    EXPECT_EQ(bulk_of(g)->scopes, (std::vector<std::string>{"system/*.rs"}));
}

TEST(config_bulk, generic_takes_es384_a_system_export_and_a_credential) {
    const auto r = parse(with_bulk("generic",
                                   "client_id = \"backend-1\"\n"
                                   "private_key_file = \"${CREDENTIALS_DIRECTORY}/bulk-key.pem\"\n"
                                   "key_id = \"k\"\n"
                                   "algorithm = \"ES384\"\n"
                                   "level = \"system\"\n"),
                         fake_env({{"CREDENTIALS_DIRECTORY", "/run/credentials/headachemd.service"}}));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->algorithm, bulk_algorithm::es384);
    EXPECT_EQ(b->level, bulk_level::system);
    EXPECT_EQ(b->private_key_file, "/run/credentials/headachemd.service/bulk-key.pem");
    EXPECT_TRUE(b->group_id.empty());
}

TEST(config_bulk, missing_registration_keys_name_the_key) {
    EXPECT_TRUE(bulk_error(parse(with_bulk("generic",
                                           "private_key_file = \"k.pem\"\nkey_id = \"k\"\n"
                                           "group_id = \"g\"\n")),
                           7, "missing required key 'client_id'"));
    EXPECT_TRUE(
        bulk_error(parse(with_bulk("generic", "client_id = \"c\"\nkey_id = \"k\"\ngroup_id = \"g\"\n")), 7,
                   "missing required key 'private_key_file'"));
    EXPECT_TRUE(bulk_error(parse(with_bulk("generic",
                                           "client_id = \"c\"\nprivate_key_file = \"k.pem\"\n"
                                           "group_id = \"g\"\n")),
                           7, "missing required key 'key_id'"));
    EXPECT_TRUE(bulk_error(parse(with_bulk("epic",
                                           "client_id = \"c\"\nprivate_key_file = \"k.pem\"\n"
                                           "key_id = \"k\"\n")),
                           7, "missing required key 'group_id'"));
}

struct bad_value {
    const char* profile;
    const char* line12;
    const char* says;
};

TEST(config_bulk, every_bad_value_is_an_error_naming_its_key) {
    const bad_value cases[] = {
        {"generic", "algorithm = \"HS256\"\n", "algorithm must be one of \"RS384\" or \"ES384\""},
        {"eclinicalworks", "algorithm = \"ES384\"\n",
         "algorithm = \"ES384\" is not accepted by eclinicalworks"},
        {"eclinicalworks", "level = \"system\"\n", "level = \"system\" is not offered by eclinicalworks"},
        {"epic", "level = \"patient\"\n", "level = \"patient\" is not offered by epic"},
        {"generic", "level = \"everything\"\n", "level must be one of"},
        {"generic", "types = []\n", "types must be a non-empty array"},
        {"generic", "types = \"Patient\"\n", "types must be a non-empty array"},
        {"generic", "types = [\"Observaton\"]\n", "unknown resource type \"Observaton\"; did you mean"},
        {"generic", "types = [\"Patient\", \"Patient\"]\n", "resource type \"Patient\" is listed twice"},
        {"generic", "types = [7]\n", "each type must be a resource type name"},
        {"generic", "scopes = \"\"\n", "scopes must not be empty"},
        {"generic", "scopes = [\"system/Patient.read\\\\x\"]\n", "is not a valid OAuth scope"},
        {"generic", "since_overlap = \"8d\"\n", "since_overlap must be at most 604800s"},
        {"generic", "since_overlap = -5\n", "since_overlap must not be negative"},
        {"generic", "interval = \"10s\"\n", "interval must be at least 60s"},
        {"generic", "interval = \"often\"\n", "interval must be a duration"},
        {"generic", "job_deadline = \"31d\"\n", "job_deadline must be at most 2592000s"},
        {"generic", "job_deadline = \"30m\"\n", "job_deadline must be at least 3600s"},
        {"generic", "max_retry_after = \"2d\"\n", "max_retry_after must be at most 86400s"},
        {"generic", "max_retry_after = 0\n", "max_retry_after must be at least 1s"},
        {"generic", "max_line_bytes = 100\n", "max_line_bytes must be between 4096 and 33554432"},
        {"generic", "max_line_bytes = \"8MiB\"\n", "max_line_bytes must be an integer"},
        {"generic", "groupid = \"x\"\n", "unknown key 'groupid'; did you mean 'group_id'"},
        {"generic", "private_key = \"x\"\n", "'private_key' must not be written in the config file"},
        {"generic", "client_secret = \"x\"\n", "'client_secret' must not be written in the config file"},
    };
    for (const auto& c : cases) {
        const auto r = parse(with_bulk(c.profile, registration_and(c.line12)));
        EXPECT_TRUE(bulk_error(r, 12, c.says)) << c.profile << ": " << c.line12;
    }
}

TEST(config_bulk, bad_registration_values_name_their_key) {
    const auto bad = [](std::string_view key_line, int line, std::string_view says) {
        std::string body;
        for (const char* l : {"client_id = \"backend-1\"\n", "private_key_file = \"k.pem\"\n",
                              "key_id = \"k\"\n", "group_id = \"g\"\n"}) {
            const std::string_view lv(l);
            body += lv.substr(0, lv.find(' ')) == key_line.substr(0, key_line.find(' ')) ? key_line : lv;
        }
        EXPECT_TRUE(bulk_error(parse(with_bulk("generic", body)), line, says)) << key_line;
    };
    bad("client_id = \"\"\n", 8, "client_id must not be empty");
    bad("private_key_file = \"\"\n", 9, "private_key_file must not be empty");
    bad("private_key_file = \"${NOPE}/k.pem\"\n", 9, "private_key_file");
    bad("key_id = \"k 1\"\n", 10, "key_id must be 1-256 printable characters");
    bad("key_id = 5\n", 10, "key_id must be a string");
    bad("group_id = \"bad id!\"\n", 11, "group_id must be a FHIR id");
}

TEST(config_bulk, group_id_without_a_group_export_is_refused) {
    const auto r = parse(with_bulk("generic", registration_and("level = \"system\"\n")));
    EXPECT_TRUE(bulk_error(r, 11, "group_id is used only with level = \"group\""));
}

TEST(config_bulk, retry_after_must_fit_in_the_deadline) {
    const auto r =
        parse(with_bulk("generic", registration_and("job_deadline = \"4h\"\nmax_retry_after = \"5h\"\n")));
    EXPECT_TRUE(bulk_error(r, 13, "max_retry_after (18000s) must be shorter than job_deadline (14400s)"));
}

TEST(config_bulk, a_next_key_is_read_for_rotation) {
    const auto r =
        parse(with_bulk("eclinicalworks", registration_and("next_private_key_file = "
                                                           "\"/etc/headachemd/ecw-bulk-key-2.pem\"\n"
                                                           "next_key_id = \"k-2027\"\n")));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr) << describe(errors_of(r));
    ASSERT_TRUE(b->next_key);
    EXPECT_EQ(b->next_key->private_key_file, "/etc/headachemd/ecw-bulk-key-2.pem");
    EXPECT_EQ(b->next_key->key_id, "k-2027");
    EXPECT_EQ(b->key_id, "k-2026");
    EXPECT_FALSE(bulk_of(parse(with_bulk("eclinicalworks", registration)))->next_key);
}

TEST(config_bulk, a_jwks_url_is_read_and_must_be_https) {
    const auto r = parse(
        with_bulk("eclinicalworks",
                  registration_and("jwks_url = \"https://sync.clinic.example/.well-known/jwks.json\"\n")));
    const auto* b = bulk_of(r);
    ASSERT_NE(b, nullptr) << describe(errors_of(r));
    EXPECT_EQ(b->jwks_url, "https://sync.clinic.example/.well-known/jwks.json");
    EXPECT_FALSE(bulk_of(parse(with_bulk("eclinicalworks", registration)))->jwks_url);
    // The EHR fetches it from the internet: plain http only on loopback.
    EXPECT_TRUE(
        bulk_error(parse(with_bulk(
                       "generic", registration_and("jwks_url = \"http://sync.clinic.example/jwks.json\"\n"))),
                   12, "jwks_url"));
    EXPECT_TRUE(bulk_error(parse(with_bulk("generic", registration_and("jwks_url = \"not a url\"\n"))), 12,
                           "jwks_url"));
}

TEST(config_bulk, a_next_key_needs_both_keys_and_its_own_kid) {
    EXPECT_TRUE(
        bulk_error(parse(with_bulk("generic", registration_and("next_private_key_file = \"n.pem\"\n"))), 12,
                   "next_private_key_file needs next_key_id"));
    EXPECT_TRUE(bulk_error(parse(with_bulk("generic", registration_and("next_key_id = \"k-2027\"\n"))), 12,
                           "next_key_id needs next_private_key_file"));
    EXPECT_TRUE(bulk_error(
        parse(with_bulk("generic",
                        registration_and("next_private_key_file = \"n.pem\"\nnext_key_id = \"k-2026\"\n"))),
        13, "next_key_id \"k-2026\" is the kid of the current key"));
    EXPECT_TRUE(bulk_error(
        parse(with_bulk("generic",
                        registration_and("next_private_key_file = \"n.pem\"\nnext_key_id = \"a b\"\n"))),
        13, "next_key_id must be 1-256 printable characters"));
}

// Two [[ehr]]s, each with [ehr.bulk]: "ecw" on lines 1-13 (a next key on
// 12-13), a blank line, then "epic" on lines 15-23; `second_keys` starts
// at line 24.
std::string two_bulk_ehrs(std::string_view second_keys) {
    std::string t =
        with_bulk("generic", registration_and("next_private_key_file = \"/etc/headachemd/next.pem\"\n"
                                              "next_key_id = \"k-next\"\n"));
    t += "\n[[ehr]]\nname = \"epic\"\nprofile = \"generic\"\n"
         "fhir_base = \"https://epic.example.org/fhir\"\nclient_id = \"client-2\"\n"
         "client_secret_file = \"/etc/headachemd/epic.secret\"\n[ehr.bulk]\n"
         "client_id = \"backend-2\"\ngroup_id = \"g2\"\n";
    t.append(second_keys);
    return t;
}

TEST(config_bulk, a_kid_of_two_key_files_is_refused_naming_both) {
    // The second EHR's current key reuses the first's next kid with another file.
    const auto r =
        parse(two_bulk_ehrs("private_key_file = \"/etc/headachemd/epic.pem\"\nkey_id = \"k-next\"\n"));
    const auto errors = errors_of(r);
    ASSERT_EQ(errors.size(), 1u) << describe(errors);
    EXPECT_EQ(errors[0].line, 25);
    const std::string& m = errors[0].message;
    EXPECT_EQ(m.find("[[ehr]] \"epic\" [ehr.bulk]: key_id \"k-next\" is also the kid of [[ehr]] \"ecw\" "
                     "[ehr.bulk] next_key_id (line 13, /etc/headachemd/next.pem)"),
              0u)
        << m;
    // Its next kid reusing the first's current kid is refused the same way.
    const auto r2 = parse(
        two_bulk_ehrs("private_key_file = \"/etc/headachemd/epic.pem\"\nkey_id = \"e1\"\n"
                      "next_private_key_file = \"/etc/headachemd/epic2.pem\"\nnext_key_id = \"k-2026\"\n"));
    const auto errors2 = errors_of(r2);
    ASSERT_EQ(errors2.size(), 1u) << describe(errors2);
    EXPECT_EQ(errors2[0].line, 27);
    EXPECT_NE(errors2[0].message.find("next_key_id \"k-2026\" is also the kid of [[ehr]] \"ecw\" [ehr.bulk] "
                                      "key_id (line 10, /etc/headachemd/ecw-bulk-key.pem)"),
              std::string::npos)
        << errors2[0].message;
}

TEST(config_bulk, one_key_file_under_one_kid_may_serve_two_ehrs) {
    // One backend key pair registered with two EHRs: one key, published once.
    const auto r = parse(
        two_bulk_ehrs("private_key_file = \"/etc/headachemd/ecw-bulk-key.pem\"\nkey_id = \"k-2026\"\n"));
    const auto* c = config_of(r);
    ASSERT_NE(c, nullptr) << describe(errors_of(r));
    EXPECT_EQ(c->ehrs[1].bulk->key_id, "k-2026");
}

TEST(config_bulk, bulk_must_be_a_table) {
    const auto r = parse(std::string(valid_ehr).append("bulk = \"yes\"\n"));
    const auto errors = errors_of(r);
    ASSERT_EQ(errors.size(), 1u) << describe(errors);
    EXPECT_EQ(errors[0].line, 6);
    EXPECT_NE(errors[0].message.find("bulk must be a table"), std::string::npos) << describe(errors);
}

}  // namespace
