// The config loader on valid input: every key lands in its field, presets
// fill what is not written, explicit keys override them, and the shipped
// config.example.toml is itself valid and complete.
#include <algorithm>
#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include "config_test_helpers.hpp"
#include "headachemd/config/config.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace cfg = headachemd::config;
using namespace std::chrono_literals;
using cfg::test::config_of;
using cfg::test::describe;
using cfg::test::errors_of;
using cfg::test::fake_env;
using cfg::test::parse;

fs::path example_path() {
    return headachemd::test::fixtures().parent_path().parent_path() / "config.example.toml";
}

std::chrono::sys_seconds utc(int y, unsigned m, unsigned d, int hour = 0) {
    return std::chrono::sys_seconds{std::chrono::sys_days{std::chrono::year{y} / m / d}} +
           std::chrono::hours{hour};
}

constexpr std::string_view full_config = R"toml([daemon]
database = "/srv/hmd/headache.db"
vault = "/srv/hmd/vault.db"
log_level = "debug"
log_format = "json"
default_interval = "2h"
callback_listen = "[::1]:9000"
token_key_file = "${CREDENTIALS_DIRECTORY}/token.key"

[privacy]
identifiers = "minimal"

[[ehr]]
name = "clinic-ecw"
profile = "eclinicalworks"
fhir_base = "https://fhir4.example.org/fhir/r4/ABC"
discovery = false
authorize_endpoint = "https://oauth.example.org/authorize"
token_endpoint = "https://oauth.example.org/token?tenant=abc"
revocation_endpoint = "https://oauth.example.org/revoke"
client_id = "client-xyz"
client_auth = "private_key_jwt"
private_key_file = "keys/ecw.pem"
key_id = "kid-1"
scopes = "launch/patient openid  offline_access patient/Patient.read"
ca_file = "/etc/hmd/ca.pem"
resources = ["Patient", "Observation", "Appointment"]
patient_param = "subject"
page_size = 25
page_param = "pg"
use_last_updated = true
last_updated_overlap = 120
requests_per_minute = 100
max_concurrent = 2
interval = "1h30m"
reconcile_every = "3d"
backfill_since = 2021-06-15T12:00:00+02:00
refresh_token_lifetime = "30d"
refresh_token_rotates = false
http_timeout = "45s"
[ehr.search_params]
Observation = { category = ["vital-signs", "survey"], code = "http://loinc.org|8302-2" }
Appointment = { status = "booked" }

[[ehr]]
name = "sandbox"
fhir_base = "http://127.0.0.1:8080/fhir"
client_id = "sandbox-client"
client_auth = "client_secret_post"
client_secret_file = "/etc/hmd/sandbox.secret"

[[patient]]
key = "hmd-1"
ehr = "clinic-ecw"
fhir_patient_id = "abc-123"

[[patient]]
key = "hmd-2"
ehr = "sandbox"
)toml";

TEST(config_parse, every_key_lands_in_its_field) {
    // Setup: the expected value of every field, none of them a default.
    cfg::config expected;
    expected.file = "/etc/hmd/sync.toml";
    expected.daemon.database = "/srv/hmd/headache.db";
    expected.daemon.vault = "/srv/hmd/vault.db";
    expected.daemon.log_level = "debug";
    expected.daemon.log_format = "json";
    expected.daemon.default_interval = 2h;
    expected.daemon.callback_listen = "[::1]:9000";
    expected.daemon.token_key_file = "/run/credentials/headachemd-sync.service/token.key";
    expected.privacy.identifiers = cfg::identifier_policy::minimal;

    cfg::ehr_settings ecw;
    ecw.name = "clinic-ecw";
    ecw.profile = "eclinicalworks";
    ecw.fhir_base = "https://fhir4.example.org/fhir/r4/ABC";
    ecw.discovery = false;
    ecw.authorize_endpoint = "https://oauth.example.org/authorize";
    ecw.token_endpoint = "https://oauth.example.org/token?tenant=abc";
    ecw.revocation_endpoint = "https://oauth.example.org/revoke";
    ecw.client_id = "client-xyz";
    ecw.client_auth = cfg::client_auth_method::private_key_jwt;
    ecw.private_key_file = "/etc/hmd/keys/ecw.pem";  // relative to the config file's directory
    ecw.key_id = "kid-1";
    ecw.scopes = {"launch/patient", "openid", "offline_access", "patient/Patient.read"};
    ecw.ca_file = "/etc/hmd/ca.pem";
    ecw.resources = {
        {"Patient", {}},
        {"Observation",
         {{"category", "vital-signs"}, {"category", "survey"}, {"code", "http://loinc.org|8302-2"}}},
        {"Appointment", {{"status", "booked"}}},
    };
    ecw.patient_param = "subject";
    ecw.page_size = 25;
    ecw.page_param = "pg";
    ecw.use_last_updated = true;
    ecw.last_updated_overlap = 120s;
    ecw.requests_per_minute = 100;
    ecw.max_concurrent = 2;
    ecw.interval = 90min;
    ecw.reconcile_every = 72h;
    ecw.backfill_since = utc(2021, 6, 15, 10);  // 12:00 at +02:00
    ecw.refresh_token_lifetime = 30 * 24h;
    ecw.refresh_token_rotates = false;
    ecw.http_timeout = 45s;
    // Not keys: what the eclinicalworks preset knows of eCW's rate limit.
    ecw.rate_window_fixed_minute = true;
    ecw.bare_429_waits_for_minute = true;
    ecw.assertion_rs384_only = true;
    ecw.refresh_needs_confidential_client = true;
    expected.ehrs.push_back(ecw);

    auto sandbox = *cfg::profile_preset("generic", 2h);  // interval from [daemon] default_interval
    sandbox.name = "sandbox";
    sandbox.fhir_base = "http://127.0.0.1:8080/fhir";
    sandbox.client_id = "sandbox-client";
    sandbox.client_auth = cfg::client_auth_method::client_secret_post;
    sandbox.client_secret_file = "/etc/hmd/sandbox.secret";
    expected.ehrs.push_back(sandbox);
    expected.patients = {{"hmd-1", "clinic-ecw", "abc-123"}, {"hmd-2", "sandbox", std::nullopt}};

    // Run
    auto result =
        cfg::parse_config(full_config, "/etc/hmd/sync.toml",
                          fake_env({{"CREDENTIALS_DIRECTORY", "/run/credentials/headachemd-sync.service"}}));

    // Check: field by field first, for a readable failure, then everything.
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->daemon, expected.daemon);
    EXPECT_EQ(c->privacy, expected.privacy);
    ASSERT_EQ(c->ehrs.size(), 2u);
    EXPECT_EQ(c->ehrs[0].resources, ecw.resources);
    EXPECT_EQ(c->ehrs[0].backfill_since, ecw.backfill_since);
    EXPECT_EQ(c->ehrs[0], ecw);
    EXPECT_EQ(c->ehrs[1], sandbox);
    EXPECT_EQ(c->patients, expected.patients);
    EXPECT_EQ(*c, expected);
}

TEST(config_parse, empty_file_gives_the_documented_defaults) {
    // Setup / Run
    auto result = parse("");

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->daemon.database, "/var/lib/headachemd/headache.db");
    EXPECT_EQ(c->daemon.vault, "/var/lib/headachemd/vault.db");
    EXPECT_EQ(c->daemon.log_level, "info");
    EXPECT_EQ(c->daemon.log_format, "auto");
    EXPECT_EQ(c->daemon.default_interval, 6h);
    EXPECT_FALSE(c->daemon.callback_listen);
    EXPECT_FALSE(c->daemon.token_key_file);
    EXPECT_EQ(c->privacy.identifiers, cfg::identifier_policy::none);
    EXPECT_TRUE(c->ehrs.empty());
    EXPECT_TRUE(c->patients.empty());
    EXPECT_EQ(c->file, "sync.toml");
}

TEST(config_parse, eclinicalworks_preset) {
    // Setup
    std::string text = std::string(cfg::test::valid_ehr) + "profile = \"eclinicalworks\"\n";

    // Run
    auto result = parse(text);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    const auto& e = c->ehrs.at(0);
    EXPECT_EQ(e.profile, "eclinicalworks");
    EXPECT_EQ(e.requests_per_minute, 250);
    EXPECT_EQ(e.max_concurrent, 4);
    EXPECT_FALSE(e.use_last_updated);
    EXPECT_EQ(e.page_param, "page");
    EXPECT_FALSE(e.page_size);
    EXPECT_EQ(e.refresh_token_lifetime, 2160h);
    EXPECT_TRUE(e.refresh_token_rotates);
    // eCW counts its budget per wall-clock minute and sends no Retry-After.
    EXPECT_TRUE(e.rate_window_fixed_minute);
    EXPECT_TRUE(e.bare_429_waits_for_minute);
    EXPECT_EQ(e.client_auth, cfg::client_auth_method::client_secret_basic);
    EXPECT_EQ(e.interval, 6h);
    EXPECT_EQ(e.reconcile_every, 7 * 24h);
    EXPECT_EQ(e.last_updated_overlap, 300s);
    EXPECT_EQ(e.http_timeout, 30s);
    EXPECT_EQ(e.max_retry_after, 300s);
    EXPECT_EQ(e.max_pages_per_search, 2000);
    EXPECT_EQ(e.max_resources_per_patient, 200000);
    EXPECT_EQ(e.patient_param, "patient");
    EXPECT_TRUE(e.discovery);
    std::vector<std::string> types;
    for (const auto& r : e.resources) {
        types.push_back(r.type);
        EXPECT_TRUE(r.params.empty()) << r.type;
    }
    EXPECT_EQ(types, (std::vector<std::string>{"Patient", "Condition", "MedicationRequest", "Encounter",
                                               "Observation", "Procedure"}));
    EXPECT_EQ(e.scopes, (std::vector<std::string>{"launch/patient", "openid", "fhirUser", "offline_access",
                                                  "patient/Patient.read", "patient/Condition.read",
                                                  "patient/MedicationRequest.read", "patient/Encounter.read",
                                                  "patient/Observation.read", "patient/Procedure.read"}));
}

TEST(config_parse, epic_preset_asks_observation_for_a_category) {
    // Setup
    std::string text = std::string(cfg::test::valid_ehr) + "profile = \"epic\"\n";

    // Run
    auto result = parse(text);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    const auto& e = c->ehrs.at(0);
    EXPECT_EQ(e.requests_per_minute, 120);
    EXPECT_TRUE(e.use_last_updated);
    EXPECT_EQ(e.page_size, 100);
    EXPECT_FALSE(e.page_param);
    EXPECT_FALSE(e.refresh_token_rotates);
    ASSERT_EQ(e.resources.size(), 7u);
    for (const auto& r : e.resources) {
        if (r.type == "Observation") {
            EXPECT_EQ(r.params, (std::vector<std::pair<std::string, std::string>>{
                                    {"category", "vital-signs,laboratory,survey"}}));
        } else {
            EXPECT_TRUE(r.params.empty()) << r.type;
        }
    }
}

TEST(config_parse, generic_is_the_default_profile) {
    // Setup / Run
    auto result = parse(cfg::test::valid_ehr);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    const auto& e = c->ehrs.at(0);
    EXPECT_EQ(e.profile, "generic");
    EXPECT_EQ(e.requests_per_minute, 600);
    EXPECT_EQ(e.max_concurrent, 4);
    EXPECT_EQ(e.page_size, 100);
    EXPECT_TRUE(e.use_last_updated);
    EXPECT_FALSE(e.refresh_token_rotates);
    EXPECT_EQ(e.refresh_token_lifetime, 0s);
    std::vector<std::string> types;
    for (const auto& r : e.resources) types.push_back(r.type);
    EXPECT_EQ(types,
              (std::vector<std::string>(cfg::known_resource_types.begin(), cfg::known_resource_types.end())));
    EXPECT_NE(std::find(e.scopes.begin(), e.scopes.end(), "patient/Appointment.read"), e.scopes.end());
}

TEST(config_parse, explicit_keys_override_the_preset_and_only_their_field) {
    // Setup
    std::string text = std::string(cfg::test::valid_ehr) +
                       "profile = \"eclinicalworks\"\n"
                       "requests_per_minute = 100\n"
                       "page_param = \"\"\n"
                       "page_size = 50\n"
                       "refresh_token_rotates = false\n"
                       "interval = 3600\n";

    // Run
    auto result = parse(text);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    const auto& e = c->ehrs.at(0);
    EXPECT_EQ(e.requests_per_minute, 100);
    EXPECT_FALSE(e.page_param);  // "" switches the preset's "page" off
    EXPECT_EQ(e.page_size, 50);
    EXPECT_FALSE(e.refresh_token_rotates);
    EXPECT_EQ(e.interval, 1h);
    // Untouched preset values stay.
    EXPECT_EQ(e.refresh_token_lifetime, 2160h);
    EXPECT_FALSE(e.use_last_updated);
    EXPECT_EQ(e.resources.size(), 6u);
}

TEST(config_parse, page_size_zero_sends_no_count) {
    // Setup / Run
    auto result = parse(std::string(cfg::test::valid_ehr) + "page_size = 0\n");

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_FALSE(c->ehrs.at(0).page_size);
}

TEST(config_parse, resources_override_keeps_preset_params_and_search_params_replace_them) {
    // Setup: Epic's Observation category survives a new resource list; a
    // second EHR replaces it, a third removes it with an empty table.
    std::string text =
        "[[ehr]]\nname = \"a\"\nprofile = \"epic\"\nfhir_base = \"https://a.example/fhir\"\n"
        "client_id = \"x\"\nclient_secret_file = \"/s\"\n"
        "resources = [\"Observation\", \"Patient\"]\n"
        "[[ehr]]\nname = \"b\"\nprofile = \"epic\"\nfhir_base = \"https://b.example/fhir\"\n"
        "client_id = \"x\"\nclient_secret_file = \"/s\"\n"
        "[ehr.search_params]\nObservation = { category = \"laboratory\" }\n"
        "MedicationRequest = { intent = \"order\" }\n"
        "[[ehr]]\nname = \"c\"\nprofile = \"epic\"\nfhir_base = \"https://c.example/fhir\"\n"
        "client_id = \"x\"\nclient_secret_file = \"/s\"\n"
        "search_params = { Observation = {} }\n";

    // Run
    auto result = parse(text);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    using params = std::vector<std::pair<std::string, std::string>>;
    const auto& a = c->ehrs.at(0).resources;
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(a[0].type, "Observation");  // the order given
    EXPECT_EQ(a[0].params, (params{{"category", "vital-signs,laboratory,survey"}}));
    EXPECT_EQ(a[1].type, "Patient");
    const auto* b = c->find_ehr("b");
    ASSERT_NE(b, nullptr);
    for (const auto& r : b->resources) {
        if (r.type == "Observation") {
            EXPECT_EQ(r.params, (params{{"category", "laboratory"}}));
        } else if (r.type == "MedicationRequest") {
            EXPECT_EQ(r.params, (params{{"intent", "order"}}));
        } else {
            EXPECT_TRUE(r.params.empty()) << r.type;
        }
    }
    for (const auto& r : c->find_ehr("c")->resources) EXPECT_TRUE(r.params.empty()) << r.type;
    EXPECT_EQ(c->find_ehr("nope"), nullptr);
}

TEST(config_parse, scopes_as_an_array) {
    // Setup / Run
    auto result = parse(std::string(cfg::test::valid_ehr) + "scopes = [\"openid\", \"offline_access\"]\n");

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->ehrs.at(0).scopes, (std::vector<std::string>{"openid", "offline_access"}));
}

TEST(config_parse, backfill_since_as_a_date_is_midnight_utc) {
    // Setup / Run
    auto result = parse(std::string(cfg::test::valid_ehr) + "backfill_since = 2020-02-29\n");

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->ehrs.at(0).backfill_since, utc(2020, 2, 29));
}

TEST(config_parse, loopback_http_is_allowed) {
    for (std::string_view base :
         {"http://127.0.0.1:8080/fhir", "http://localhost/fhir", "http://[::1]:9/fhir",
          "http://127.200.3.4/r4", "https://127.0.0.1:8443/fhir"}) {
        // Setup
        std::string text = "[[ehr]]\nname = \"s\"\nfhir_base = \"" + std::string(base) +
                           "\"\nclient_id = \"x\"\nclient_auth = \"none\"\n";

        // Run
        auto result = parse(text);

        // Check
        EXPECT_TRUE(std::holds_alternative<cfg::config>(result)) << base << "\n"
                                                                 << describe(errors_of(result));
    }
}

TEST(config_parse, credentials_directory_is_expanded_in_every_path) {
    // Setup
    std::string text =
        "[daemon]\ndatabase = \"${STATE_DIRECTORY}/headache.db\"\n"
        "token_key_file = \"${CREDENTIALS_DIRECTORY}/token.key\"\n" +
        std::string(cfg::test::valid_ehr) + "ca_file = \"${CREDENTIALS_DIRECTORY}/ca.pem\"\n";
    auto env =
        fake_env({{"CREDENTIALS_DIRECTORY", "/run/credentials/x"}, {"STATE_DIRECTORY", "/var/lib/hmd"}});

    // Run
    auto result = parse(text, env);

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->daemon.database, "/var/lib/hmd/headache.db");
    EXPECT_EQ(c->daemon.token_key_file, "/run/credentials/x/token.key");
    EXPECT_EQ(c->ehrs.at(0).ca_file, "/run/credentials/x/ca.pem");
}

TEST(config_parse, load_config_resolves_relative_paths_against_the_file) {
    // Setup
    headachemd::test::temp_dir dir;
    fs::create_directory(dir / "etc");
    headachemd::test::write_file(dir / "etc" / "sync.toml",
                                 "[daemon]\ndatabase = \"data/headache.db\"\nvault = \"../vault.db\"\n");

    // Run
    auto result = cfg::load_config(dir / "etc" / "sync.toml", fake_env());

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->daemon.database, dir.path() / "etc" / "data" / "headache.db");
    EXPECT_EQ(c->daemon.vault, dir.path() / "vault.db");
    EXPECT_EQ(c->file, dir.path() / "etc" / "sync.toml");
}

TEST(config_parse, profile_preset_function) {
    // Setup / Run
    auto ecw = cfg::profile_preset("eclinicalworks", 1h);
    auto unknown = cfg::profile_preset("cerner");

    // Check
    ASSERT_TRUE(ecw);
    EXPECT_EQ(ecw->interval, 1h);
    EXPECT_EQ(ecw->profile, "eclinicalworks");
    EXPECT_TRUE(ecw->name.empty());
    EXPECT_FALSE(unknown);
    for (auto p : cfg::known_profiles) EXPECT_TRUE(cfg::profile_preset(p)) << p;
}

// EHR behaviour that only the preset knows (no config key sets it): the
// eCW preset's minute rules, RS384-only assertions and confidential-only
// refresh tokens; the token bucket, backoff and any client elsewhere.
TEST(config_parse, only_the_eclinicalworks_preset_follows_the_minute) {
    for (auto p : cfg::known_profiles) {
        // Setup / Run
        const auto e = cfg::profile_preset(p);

        // Check
        ASSERT_TRUE(e) << p;
        const bool ecw = p == "eclinicalworks";
        EXPECT_EQ(e->rate_window_fixed_minute, ecw) << p;
        EXPECT_EQ(e->bare_429_waits_for_minute, ecw) << p;
        EXPECT_EQ(e->assertion_rs384_only, ecw) << p;
        EXPECT_EQ(e->refresh_needs_confidential_client, ecw) << p;
    }
    const auto generic = parse(std::string(cfg::test::valid_ehr));
    ASSERT_NE(config_of(generic), nullptr);
    EXPECT_FALSE(config_of(generic)->ehrs.at(0).rate_window_fixed_minute);
    EXPECT_FALSE(config_of(generic)->ehrs.at(0).bare_429_waits_for_minute);
    EXPECT_FALSE(config_of(generic)->ehrs.at(0).assertion_rs384_only);
    EXPECT_FALSE(config_of(generic)->ehrs.at(0).refresh_needs_confidential_client);
}

TEST(config_parse, durations) {
    EXPECT_EQ(cfg::parse_duration("90s"), 90s);
    EXPECT_EQ(cfg::parse_duration("30m"), 30min);
    EXPECT_EQ(cfg::parse_duration("6h"), 6h);
    EXPECT_EQ(cfg::parse_duration("7d"), 7 * 24h);
    EXPECT_EQ(cfg::parse_duration("1h30m"), 90min);
    EXPECT_EQ(cfg::parse_duration("0s"), 0s);
    for (std::string_view bad : {"", "6", "h", "6x", "-5s", "+5s", "6 h", "1.5h", "6hh", "99999999999999d"}) {
        EXPECT_FALSE(cfg::parse_duration(bad)) << bad;
    }
}

TEST(config_parse, error_to_string) {
    EXPECT_EQ((cfg::config_error{"sync.toml", 12, 5, "[[ehr]] \"ecw\": bad"}.to_string()),
              "sync.toml:12:5: [[ehr]] \"ecw\": bad");
    EXPECT_EQ((cfg::config_error{"/etc/x.toml", 0, 0, "cannot read"}.to_string()),
              "/etc/x.toml: cannot read");
}

TEST(config_example, parses_with_zero_errors) {
    // Setup
    const auto path = example_path();
    ASSERT_TRUE(fs::exists(path)) << path;

    // Run
    auto result = cfg::load_config(path, fake_env());

    // Check
    const auto* c = config_of(result);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->ehrs.size(), 3u);
    EXPECT_EQ(c->ehrs[0].profile, "eclinicalworks");
    EXPECT_EQ(c->ehrs[1].profile, "epic");
    EXPECT_EQ(c->ehrs[1].client_auth, cfg::client_auth_method::private_key_jwt);
    const auto* sandbox = c->find_ehr("sandbox");
    ASSERT_NE(sandbox, nullptr);
    EXPECT_EQ(sandbox->profile, "generic");
    EXPECT_EQ(sandbox->fhir_base, "https://127.0.0.1:8443/fhir");
    EXPECT_FALSE(c->patients.empty());
    // The eCW block must not ask for what eCW's facade does not serve.
    for (const auto& r : c->ehrs[0].resources) EXPECT_NE(r.type, "Appointment");
}

TEST(config_example, documents_every_key) {
    // Setup: every key the loader accepts, whatever section it is in.
    const std::vector<std::string> keys{"database",
                                        "vault",
                                        "log_level",
                                        "log_format",
                                        "default_interval",
                                        "callback_listen",
                                        "token_key_file",
                                        "metrics_listen",
                                        "audit_retention_days",
                                        "allow_non_loopback_listen",
                                        "identifiers",
                                        "name",
                                        "profile",
                                        "fhir_base",
                                        "discovery",
                                        "authorize_endpoint",
                                        "token_endpoint",
                                        "revocation_endpoint",
                                        "client_id",
                                        "client_secret_file",
                                        "private_key_file",
                                        "key_id",
                                        "client_auth",
                                        "scopes",
                                        "ca_file",
                                        "redirect_uri",
                                        "resources",
                                        "search_params",
                                        "patient_param",
                                        "page_size",
                                        "page_param",
                                        "use_last_updated",
                                        "last_updated_overlap",
                                        "requests_per_minute",
                                        "max_concurrent",
                                        "interval",
                                        "reconcile_every",
                                        "backfill_since",
                                        "refresh_token_lifetime",
                                        "refresh_token_rotates",
                                        "keepalive_before",
                                        "http_timeout",
                                        "max_retry_after",
                                        "max_pages_per_search",
                                        "max_resources_per_patient",
                                        "key",
                                        "ehr",
                                        "fhir_patient_id"};
    const std::string text = headachemd::test::read_file(example_path());
    ASSERT_FALSE(text.empty());

    for (const auto& key : keys) {
        // Run: an assignment (possibly commented out) at the start of a line,
        // or a [ehr.key] header.
        const bool shown = text.find("\n" + key + " = ") != std::string::npos ||
                           text.find("\n# " + key + " = ") != std::string::npos ||
                           text.find("[ehr." + key + "]") != std::string::npos;

        // Check
        EXPECT_TRUE(shown) << "config.example.toml does not show '" << key << "'";
    }
}

}  // namespace
