// The config loader on bad input: every rule gives an error at the
// offending key or value (line:column), says what would be valid, and all
// errors of a file come back together. Secrets are refused and never echoed.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "config_test_helpers.hpp"
#include "headachemd/config/config.hpp"
#include "test_support.hpp"

namespace {

namespace cfg = headachemd::config;
using cfg::test::describe;
using cfg::test::errors_of;
using cfg::test::fake_env;
using cfg::test::has_error;
using cfg::test::parse;

std::string ehr_with(std::string_view extra_lines) {
    return std::string(cfg::test::valid_ehr) + std::string(extra_lines);
}

// ----- keys

TEST(config_validation, unknown_key_suggests_the_nearest) {
    // Setup: line 3 has the typo, so fhir_base is also missing.
    auto text =
        "[[ehr]]\n"
        "name = \"ecw\"\n"
        "fhir_bse = \"https://ehr.example.org/fhir\"\n"
        "client_id = \"c\"\n"
        "client_secret_file = \"/s\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 3, 1, "[[ehr]] \"ecw\": unknown key 'fhir_bse'; did you mean 'fhir_base'?"));
    EXPECT_TRUE(has_error(result, 1, 1, "missing required key 'fhir_base'"));
    EXPECT_EQ(errors_of(result).size(), 2u) << describe(errors_of(result));
}

TEST(config_validation, unknown_key_far_from_any_lists_the_valid_ones) {
    // Setup / Run
    auto result = parse("[privacy]\nshare_everything = true\n");

    // Check
    EXPECT_TRUE(
        has_error(result, 2, 1, "[privacy]: unknown key 'share_everything'; valid keys here: 'identifiers'"));
}

TEST(config_validation, unknown_keys_in_every_section) {
    // Setup
    auto text =
        "colour = 1\n"
        "[daemon]\n"
        "databse = \"/x.db\"\n" +
        ehr_with("\n[[patient]]\nkey = \"p1\"\nehr = \"ecw\"\nfhir_id = \"1\"\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 1, 1, "top level: unknown key 'colour'"));
    EXPECT_TRUE(has_error(result, 3, 1, "[daemon]: unknown key 'databse'; did you mean 'database'?"));
    EXPECT_TRUE(has_error(result, 13, 1, "[[patient]] \"p1\": unknown key 'fhir_id'"));
    EXPECT_EQ(errors_of(result).size(), 3u) << describe(errors_of(result));
}

TEST(config_validation, single_bracket_ehr_is_explained) {
    // Setup / Run
    auto result = parse("[ehr]\nname = \"x\"\n");

    // Check
    EXPECT_TRUE(has_error(result, 1, 1, "ehr must be written [[ehr]]"));
}

TEST(config_validation, double_bracket_daemon_is_explained) {
    // Setup / Run
    auto result = parse("[[daemon]]\nlog_level = \"info\"\n");

    // Check
    EXPECT_TRUE(has_error(result, 1, 1, "daemon must be a single [daemon] table, not [[daemon]]"));
}

// ----- types

TEST(config_validation, a_key_written_twice_is_a_toml_error) {
    // Setup / Run
    auto result = parse(ehr_with("client_id = \"again\"\n"));

    // Check: toml++ refuses the redefinition; it is reported alone.
    auto errors = errors_of(result);
    ASSERT_EQ(errors.size(), 1u) << describe(errors);
    EXPECT_EQ(errors[0].line, 6);
    EXPECT_NE(errors[0].message.find("TOML syntax error"), std::string::npos) << describe(errors);
}

TEST(config_validation, wrong_types) {
    // Setup: lines 6-9
    auto text = ehr_with(
                    "requests_per_minute = \"fast\"\n"
                    "discovery = \"yes\"\n"
                    "page_size = 2.5\n"
                    "scopes = 3\n") +
                "[[patient]]\nkey = 12\nehr = \"ecw\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 6, 23, "requests_per_minute must be an integer; got a string"));
    EXPECT_TRUE(has_error(result, 7, 13, "discovery must be true or false; got a string"));
    EXPECT_TRUE(has_error(result, 8, 13, "page_size must be an integer; got a floating-point number"));
    EXPECT_TRUE(has_error(result, 9, 10, "scopes must be an array of strings or one space-separated string"));
    EXPECT_TRUE(has_error(result, 11, 7, "[[patient]] #1: key must be a string; got an integer"));
    EXPECT_EQ(errors_of(result).size(), 5u) << describe(errors_of(result));
}

// ----- required keys

TEST(config_validation, missing_required_keys_point_at_the_table_header) {
    // Setup
    auto text =
        "[daemon]\n"
        "log_level = \"info\"\n"
        "\n"
        "[[ehr]]\n"
        "profile = \"generic\"\n"
        "\n"
        "[[patient]]\n"
        "fhir_patient_id = \"abc\"\n";

    // Run
    auto result = parse(text);

    // Check: one error per missing key, all at the header's line.
    auto errors = errors_of(result);
    int at_ehr = 0;
    int at_patient = 0;
    for (const auto& e : errors) {
        if (e.line == 4 && e.column == 1) ++at_ehr;
        if (e.line == 7 && e.column == 1) ++at_patient;
    }
    EXPECT_EQ(at_ehr, 4) << describe(errors);  // name, fhir_base, client_id, client_secret_file
    EXPECT_EQ(at_patient, 2) << describe(errors);
    for (auto key : {"'name'", "'fhir_base'", "'client_id'"}) {
        bool found = false;
        for (const auto& e : errors)
            found |= e.line == 4 &&
                     e.message.find(std::string("missing required key ") + key) != std::string::npos;
        EXPECT_TRUE(found) << key << "\n" << describe(errors);
    }
    for (auto key : {"'key'", "'ehr'"}) {
        bool found = false;
        for (const auto& e : errors)
            found |= e.line == 7 && e.message.find(std::string("[[patient]] #1: missing required key ") +
                                                   key) != std::string::npos;
        EXPECT_TRUE(found) << key << "\n" << describe(errors);
    }
    for (const auto& e : errors) EXPECT_EQ(e.file, "sync.toml");
}

// ----- duplicates and references

TEST(config_validation, duplicate_ehr_name) {
    // Setup: the second block starts at line 6.
    auto text = std::string(cfg::test::valid_ehr) + std::string(cfg::test::valid_ehr);

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 7, 8, "name \"ecw\" is already used by the [[ehr]] at line 1"));
    EXPECT_EQ(errors_of(result).size(), 1u) << describe(errors_of(result));
}

TEST(config_validation, duplicate_patient_key_and_fhir_id) {
    // Setup
    auto text = ehr_with(
        "[[patient]]\n"                 // 6
        "key = \"p1\"\n"                // 7
        "ehr = \"ecw\"\n"               // 8
        "fhir_patient_id = \"f1\"\n"    // 9
        "[[patient]]\n"                 // 10
        "key = \"p1\"\n"                // 11
        "ehr = \"ecw\"\n"               // 12
        "[[patient]]\n"                 // 13
        "key = \"p2\"\n"                // 14
        "ehr = \"ecw\"\n"               // 15
        "fhir_patient_id = \"f1\"\n");  // 16

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 11, 7, "key \"p1\" is already used by the [[patient]] at line 6"));
    EXPECT_TRUE(has_error(result, 16, 19, "the [[patient]] at line 6 already has this fhir_patient_id"));
    EXPECT_EQ(errors_of(result).size(), 2u) << describe(errors_of(result));
}

TEST(config_validation, patient_names_an_unknown_ehr) {
    // Setup
    auto text = ehr_with(
        "[[patient]]\nkey = \"p1\"\nehr = \"ecv\"\n"
        "[[patient]]\nkey = \"p2\"\nehr = \"cerner\"\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 8, 7, "ehr \"ecv\" is not the name of any [[ehr]]; did you mean \"ecw\"?"));
    EXPECT_TRUE(has_error(result, 11, 7, "ehr \"cerner\" is not the name of any [[ehr]]; defined: \"ecw\""));
}

// ----- URLs

TEST(config_validation, fhir_base_must_be_https_except_loopback) {
    // Setup
    auto text =
        "[[ehr]]\n"
        "name = \"ecw\"\n"
        "fhir_base = \"http://ehr.example.org\"\n"
        "client_id = \"c\"\n"
        "client_secret_file = \"/s\"\n";

    // Run
    auto result = parse(text);

    // Check: the message of the design brief, at the value.
    auto errors = errors_of(result);
    ASSERT_EQ(errors.size(), 1u) << describe(errors);
    EXPECT_EQ(errors[0].to_string(),
              "sync.toml:3:13: [[ehr]] \"ecw\": fhir_base must be https:// (plain http is allowed only for "
              "loopback: 127.0.0.0/8, [::1], localhost); got \"http://ehr.example.org\"");
}

TEST(config_validation, hosts_that_only_look_like_loopback_are_refused) {
    for (std::string_view base :
         {"http://127.0.0.1.evil.example/fhir", "http://128.0.0.1/fhir", "http://127.0.0.256/fhir",
          "http://[::2]/fhir", "http://localhost.evil.example/x", "ftp://127.0.0.1/fhir",
          "http://localhost./fhir", "ehr.example.org/fhir"}) {
        // Setup
        std::string text = "[[ehr]]\nname = \"s\"\nfhir_base = \"" + std::string(base) +
                           "\"\nclient_id = \"x\"\nclient_auth = \"none\"\n";

        // Run
        auto result = parse(text);

        // Check
        EXPECT_TRUE(has_error(result, 3, 13, "fhir_base must be")) << base;
    }
}

TEST(config_validation, fhir_base_trailing_slash_is_explained) {
    // Setup
    auto text =
        "[[ehr]]\nname = \"ecw\"\nfhir_base = \"https://ehr.example.org/fhir/\"\n"
        "client_id = \"c\"\nclient_secret_file = \"/s\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 3, 13,
                  "fhir_base must not end with '/': SMART sends it verbatim as the `aud` parameter and the "
                  "server compares it exactly; write \"https://ehr.example.org/fhir\""));
}

TEST(config_validation, malformed_urls) {
    // Setup: lines 6-9
    auto text = ehr_with(
                    "token_endpoint = \"https://:443/token\"\n"
                    "authorize_endpoint = \"https://a.example:99999/auth\"\n") +
                "[[ehr]]\nname = \"b\"\nfhir_base = \"https://b.example/fhir?x=1\"\nclient_id = \"c\"\n"
                "client_auth = \"none\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 6, 18, "token_endpoint has no valid host"));
    EXPECT_TRUE(has_error(result, 7, 22, "authorize_endpoint has an invalid port"));
    EXPECT_TRUE(has_error(result, 10, 13, "fhir_base must not contain a query"));
}

// What the HTTP client would refuse must not load (found by fuzz_config:
// "https://063.0.0.1:8443/fhir" loaded, and origin_of refused it).
TEST(config_validation, hosts_the_client_refuses_do_not_load) {
    const auto with_base = [](const std::string& base) {
        return "[[ehr]]\nname = \"a\"\nfhir_base = \"" + base +
               "\"\nclient_id = \"c\"\nclient_auth = \"none\"\n";
    };
    for (const char* base : {"https://063.0.0.1:8443/fhir", "https://127.0.0.1.evil.example/fhir",
                             "https://ehr.127/fhir", "https://127.1/fhir"}) {
        auto result = parse(with_base(base));
        EXPECT_TRUE(has_error(result, 3, 13, "fhir_base has a host the HTTP client refuses")) << base;
    }
    EXPECT_FALSE(has_error(parse(with_base("https://10.0.0.7:8443/fhir")), 3, 13, "fhir_base"));
}

TEST(config_validation, redirect_uri_must_be_https_or_loopback_http_without_fragment) {
    // Setup: lines 6 and 11
    auto text = ehr_with("redirect_uri = \"http://clinic.example/cb\"\n") +
                "[[ehr]]\nname = \"b\"\nfhir_base = \"https://b.example/fhir\"\nclient_id = \"c\"\n"
                "redirect_uri = \"https://clinic.example/cb#x\"\nclient_auth = \"none\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 6, 16, "redirect_uri must be https://"));
    EXPECT_TRUE(has_error(result, 11, 16, "redirect_uri must not contain a fragment"));
}

// Found by tests/fuzz/fuzz_config: these passed the config check but the
// HTTP client (lib/http origin_of) refuses them, so the EHR failed at
// every sync instead of at load time with a line number.
TEST(config_validation, urls_the_http_client_would_refuse_are_errors) {
    // A TOML basic string holding `v`.
    auto ehr_at = [](std::string_view v) {
        std::string quoted = "\"";
        for (char c : v) {
            if (c == '"' || c == '\\') quoted += '\\';
            quoted += c;
        }
        return "[[ehr]]\nname = \"s\"\nfhir_base = " + quoted +
               "\"\nclient_id = \"x\"\nclient_auth = \"none\"\n";
    };
    for (std::string_view base :
         {"https://fh'ir.example.org/fhir", "https://a%2Eexample.org/fhir", "https://[fe80::zz]/fhir",
          "https://ehr.example.org/r4/\"x\"", "https://ehr.example.org/r4/a%zz",
          "https://ehr.example.org/[r4]", "https://ehr.example.org/r\xC3\xA9", "http://127.000.0.1/fhir"}) {
        // Setup
        const std::string text = ehr_at(base);

        // Run
        auto result = parse(text);

        // Check
        EXPECT_TRUE(has_error(result, 3, 13, "fhir_base")) << base;
    }
    // Still valid: IPv6 literals, ports, escapes, sub-delims, '_' in a name.
    for (std::string_view base :
         {"https://[2001:db8::1]:8443/fhir", "http://[::1]:9/fhir", "https://ehr.example.org/r4/a%2Fb;v=1",
          "https://my_ehr.example.org/fhir"}) {
        auto result = parse(ehr_at(base));
        EXPECT_TRUE(errors_of(result).empty()) << base << ": " << describe(errors_of(result));
    }
}

TEST(config_validation, credentials_in_a_url_are_refused_without_echo) {
    // Setup
    auto text =
        "[[ehr]]\nname = \"ecw\"\nfhir_base = \"https://admin:hunter2@ehr.example.org/fhir\"\n"
        "client_id = \"c\"\nclient_secret_file = \"/s\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 3, 13, "fhir_base must not contain a user name or password"));
    for (const auto& e : errors_of(result)) EXPECT_EQ(e.to_string().find("hunter2"), std::string::npos);
}

// ----- choices

TEST(config_validation, unknown_profile_auth_and_enums) {
    // Setup
    auto text =
        "[daemon]\nlog_level = \"verbose\"\nlog_format = \"xml\"\n"  // 2, 3
        "[privacy]\nidentifiers = \"all\"\n" +                       // 5
        ehr_with(
            "profile = \"ecllinicalworks\"\n"          // 11
            "client_auth = \"client_secret_jwt\"\n");  // 12

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 2, 13, "[daemon]: log_level must be one of \"trace\", \"debug\""));
    EXPECT_TRUE(
        has_error(result, 3, 14,
                  "log_format must be one of \"auto\", \"journald\", \"text\" or \"json\"; got \"xml\""));
    EXPECT_TRUE(has_error(result, 5, 15,
                          "[privacy]: identifiers must be one of \"none\" or \"minimal\"; got \"all\""));
    EXPECT_TRUE(
        has_error(result, 11, 11,
                  "[[ehr]] \"ecw\": profile must be one of \"eclinicalworks\", \"epic\" or \"generic\"; "
                  "got \"ecllinicalworks\" (did you mean \"eclinicalworks\"?)"));
    EXPECT_TRUE(has_error(result, 12, 15,
                          "client_auth must be one of \"client_secret_basic\", \"client_secret_post\", "
                          "\"private_key_jwt\" or \"none\"; got \"client_secret_jwt\" (did you mean "
                          "\"client_secret_post\"?)"));
    EXPECT_EQ(errors_of(result).size(), 5u) << describe(errors_of(result));
}

// ----- resources and search parameters

TEST(config_validation, unknown_and_duplicate_resource_types) {
    // Setup: line 6
    auto text =
        ehr_with("resources = [\"Patient\", \"observation\", \"AllergyIntolerancx\", \"Patient\", 3]\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 6, 25, "unknown resource type \"observation\"; did you mean \"Observation\"?"));
    EXPECT_TRUE(has_error(result, 6, 40,
                          "unknown resource type \"AllergyIntolerancx\"; the types HeadacheMD "
                          "normalizes are \"Patient\", \"Condition\""));
    EXPECT_TRUE(has_error(result, 6, 40, "(or any FHIR R4 resource type a [[view]] reads)"));
    EXPECT_TRUE(has_error(result, 6, 62, "resource type \"Patient\" is listed twice"));
    EXPECT_TRUE(has_error(result, 6, 73, "each resource must be a resource type name"));
    EXPECT_EQ(errors_of(result).size(), 4u) << describe(errors_of(result));
}

// A type HeadacheMD does not normalize may be searched for the [[view]]s
// that read it (issue 16); it keeps its search parameters.
TEST(config_validation, any_r4_type_may_be_searched_for_a_view) {
    // Setup
    auto text = ehr_with(
        "resources = [\"Patient\", \"AllergyIntolerance\"]\n"
        "[ehr.search_params]\n"
        "AllergyIntolerance = { clinical-status = \"active\" }\n");

    // Run
    auto result = parse(text);

    // Check
    ASSERT_TRUE(std::holds_alternative<cfg::config>(result)) << describe(errors_of(result));
    const auto& e = std::get<cfg::config>(result).ehrs.at(0);
    ASSERT_EQ(e.resources.size(), 2u);
    EXPECT_EQ(e.resources[1].type, "AllergyIntolerance");
    ASSERT_EQ(e.resources[1].params.size(), 1u);
    EXPECT_EQ(e.resources[1].params[0].first, "clinical-status");
}

TEST(config_validation, empty_resources) {
    // Setup / Run
    auto result = parse(ehr_with("resources = []\n"));

    // Check
    EXPECT_TRUE(has_error(result, 6, 13, "resources must name at least one resource type"));
}

TEST(config_validation, search_params_problems) {
    // Setup
    auto text = ehr_with(
        "resources = [\"Patient\", \"Observation\"]\n"  // 6
        "[ehr.search_params]\n"                         // 7
        "Observaton = { category = \"x\" }\n"           // 8
        "Appointment = { status = \"booked\" }\n"       // 9
        "Patient = { _count = \"5\", patient = \"1\", \"a b\" = \"c\", active = [], x = 1 }\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 8, 1,
                          "search_params names unknown resource type \"Observaton\"; did you mean "
                          "\"Observation\"?"));
    EXPECT_TRUE(
        has_error(result, 9, 1, "search_params.Appointment is set, but Appointment is not in resources"));
    EXPECT_TRUE(
        has_error(result, 10, 13, "search_params.Patient._count is set by the daemon itself; use page_size"));
    EXPECT_TRUE(has_error(result, 10, 27, "search_params.Patient.patient is set by the daemon itself"));
    EXPECT_TRUE(has_error(result, 10, 42, "search_params.Patient.a b is not a valid search parameter name"));
    EXPECT_TRUE(has_error(result, 10, 64, "search_params.Patient.active must not be an empty array"));
    EXPECT_TRUE(has_error(result, 10, 72, "search_params.Patient.x must be a non-empty string"));
    EXPECT_EQ(errors_of(result).size(), 7u) << describe(errors_of(result));
}

// ----- numbers and durations

TEST(config_validation, rate_and_concurrency_must_be_positive) {
    // Setup: lines 6-9
    auto text = ehr_with(
        "requests_per_minute = 0\n"
        "max_concurrent = -1\n"
        "page_size = 5000\n"
        "last_updated_overlap = -3\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 6, 23, "requests_per_minute must be between 1 and 60000; got 0"));
    EXPECT_TRUE(has_error(result, 7, 18, "max_concurrent must be between 1 and 64; got -1"));
    EXPECT_TRUE(
        has_error(result, 8, 13, "page_size must be between 0 and 1000 (0: send no _count); got 5000"));
    EXPECT_TRUE(has_error(result, 9, 24, "last_updated_overlap must not be negative; got -3"));
}

TEST(config_validation, bad_durations) {
    // Setup
    auto text = "[daemon]\ndefault_interval = \"6 hours\"\n" +  // 2
                ehr_with(
                    "interval = \"0s\"\n"        // 8
                    "reconcile_every = 1.5\n"    // 9
                    "http_timeout = \"30\"\n");  // 10

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 2, 20,
                  "default_interval must be a duration such as \"90s\", \"30m\", \"6h\" or \"7d\" (or a "
                  "whole number of seconds); got \"6 hours\""));
    EXPECT_TRUE(has_error(result, 8, 12, "interval must be at least 1s; got 0s"));
    EXPECT_TRUE(has_error(result, 9, 19, "reconcile_every must be a duration such as \"30m\""));
    EXPECT_TRUE(has_error(result, 10, 16, "http_timeout must be a duration"));
}

TEST(config_validation, bounds_on_what_a_server_can_make_a_pass_do) {
    // Setup: lines 6-8, then a valid set
    auto bad =
        parse(ehr_with("max_retry_after = \"2d\"\n"
                       "max_pages_per_search = 0\n"
                       "max_resources_per_patient = -5\n"));
    auto good =
        parse(ehr_with("max_retry_after = \"90s\"\n"
                       "max_pages_per_search = 10\n"
                       "max_resources_per_patient = 500\n"));

    // Check
    EXPECT_TRUE(has_error(bad, 6, 19, "max_retry_after must be at most 24h"));
    EXPECT_TRUE(has_error(bad, 7, 24, "max_pages_per_search must be between 1 and 1000000; got 0"));
    EXPECT_TRUE(has_error(bad, 8, 29, "max_resources_per_patient must be between 1 and 100000000; got -5"));
    const auto* c = cfg::test::config_of(good);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->ehrs.at(0).max_retry_after, std::chrono::seconds(90));
    EXPECT_EQ(c->ehrs.at(0).max_pages_per_search, 10);
    EXPECT_EQ(c->ehrs.at(0).max_resources_per_patient, 500);
}

TEST(config_validation, backfill_since_forms) {
    // Setup
    auto local = parse(ehr_with("backfill_since = 2020-01-01T00:00:00\n"));
    auto quoted = parse(ehr_with("backfill_since = \"2020-01-01\"\n"));
    auto number = parse(ehr_with("backfill_since = 2020\n"));

    // Check
    EXPECT_TRUE(has_error(local, 6, 18, "backfill_since needs a UTC offset"));
    EXPECT_TRUE(has_error(quoted, 6, 18, "backfill_since must be a TOML date without quotes"));
    EXPECT_TRUE(has_error(number, 6, 18, "backfill_since must be a date such as 2024-01-01; got an integer"));
}

// ----- client authentication

TEST(config_validation, client_auth_needs_its_credential_and_refuses_others) {
    // Setup
    auto text =
        "[[ehr]]\nname = \"a\"\nfhir_base = \"https://a.example/fhir\"\nclient_id = \"c\"\n"  // 1-4
        "[[ehr]]\nname = \"b\"\nfhir_base = \"https://b.example/fhir\"\nclient_id = \"c\"\n"  // 5-8
        "client_auth = \"private_key_jwt\"\n"                                                 // 9
        "client_secret_file = \"/s\"\n"                                                       // 10
        "[[ehr]]\nname = \"c\"\nfhir_base = \"https://c.example/fhir\"\nclient_id = \"c\"\n"  // 11-14
        "client_secret_file = \"/s\"\n"                                                       // 15
        "private_key_file = \"/k.pem\"\n"                                                     // 16
        "key_id = \"k\"\n";                                                                   // 17

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 1, 1,
                          "client_auth = \"client_secret_basic\" (the default) needs client_secret_file = "
                          "\"/etc/headachemd/a.secret\""));
    EXPECT_TRUE(has_error(result, 9, 15, "client_auth = \"private_key_jwt\" needs private_key_file"));
    EXPECT_TRUE(
        has_error(result, 10, 22, "client_secret_file is not used with client_auth = \"private_key_jwt\""));
    EXPECT_TRUE(
        has_error(result, 16, 20, "private_key_file is not used with client_auth = \"client_secret_basic\""));
    EXPECT_TRUE(has_error(result, 17, 10, "key_id is used only with client_auth = \"private_key_jwt\""));
    EXPECT_EQ(errors_of(result).size(), 5u) << describe(errors_of(result));
}

TEST(config_validation, eclinicalworks_refuses_a_public_client) {
    // Setup
    auto text =
        "[[ehr]]\nname = \"ecw\"\nprofile = \"eclinicalworks\"\nfhir_base = \"https://a.example/fhir\"\n"
        "client_id = \"c\"\nclient_auth = \"none\"\n";

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 6, 15, "confidential clients only"));
}

TEST(config_validation, discovery_off_needs_a_token_endpoint) {
    // Setup / Run
    auto result = parse(ehr_with("discovery = false\n"));

    // Check
    EXPECT_TRUE(has_error(result, 6, 13, "discovery = false needs token_endpoint"));
}

TEST(config_validation, bad_scopes) {
    // Setup / Run
    auto as_string = parse(ehr_with("scopes = \"   \"\n"));
    auto as_array = parse(ehr_with("scopes = [\"openid\", \"patient/\\\"x\\\".read\", 5]\n"));
    auto quote = parse(ehr_with("scopes = [\"openid\", \"a\\\\b\"]\n"));

    // Check
    EXPECT_TRUE(has_error(as_string, 6, 10, "scopes must not be empty"));
    EXPECT_TRUE(has_error(as_array, 6, 43, "each scope must be a string; got an integer"));
    EXPECT_TRUE(has_error(quote, 6, 21, "is not a valid OAuth scope (RFC 6749 §3.3"));
}

// ----- secrets

TEST(config_validation, inline_client_secret_is_refused_without_echo) {
    // Setup
    auto text = ehr_with("client_secret = \"s3cr3t-D0-n0t-echo\"\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 6, 1,
                  "[[ehr]] \"ecw\": 'client_secret' must not be written in the config file: secrets come "
                  "from files or systemd credentials"));
    auto errors = errors_of(result);
    ASSERT_EQ(errors.size(), 1u) << describe(errors);
    EXPECT_NE(errors[0].message.find("client_secret_file = \"/etc/headachemd/ecw.secret\""),
              std::string::npos);
    EXPECT_NE(errors[0].message.find("${CREDENTIALS_DIRECTORY}"), std::string::npos);
    EXPECT_EQ(errors[0].to_string().find("s3cr3t"), std::string::npos) << errors[0].to_string();
}

TEST(config_validation, every_secret_key_is_refused_anywhere_without_echo) {
    // Setup: secrets at the top level, in [daemon], in an unknown table, in
    // search parameters (they would be sent to the EHR), and as a PEM blob.
    // Built at run time so that no PEM header stands in the repository.
    const std::string pem_header = std::string("-----BEGIN ") + "PRIVATE KEY-----";
    auto text =
        "refresh_token = \"TOPSECRET-1\"\n"          // 1
        "[daemon]\ntoken_key = \"TOPSECRET-2\"\n" +  // 3
        ehr_with(
            "private_key = \"TOPSECRET-3\"\n"   // 9
            "access_token = \"TOPSECRET-4\"\n"  // 10
            "ca_file = \"" +
            pem_header +
            "TOPSECRET-5\"\n"                                    // 11
            "[ehr.oauth]\n"                                      // 12
            "password = \"TOPSECRET-6\"\n"                       // 13
            "[ehr.search_params]\n"                              // 14
            "Patient = { client_secret = \"TOPSECRET-7\" }\n");  // 15

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 1, 1, "top level: 'refresh_token' must not be written in the config file"));
    EXPECT_TRUE(has_error(result, 3, 1, "[daemon]: 'token_key' must not be written in the config file"));
    EXPECT_TRUE(has_error(result, 9, 1, "'private_key' must not be written"));
    EXPECT_TRUE(has_error(result, 10, 1, "'access_token' must not be written"));
    EXPECT_TRUE(has_error(result, 11, 11, "looks like a PEM key or certificate"));
    EXPECT_TRUE(has_error(result, 13, 1, "'password' must not be written"));
    EXPECT_TRUE(has_error(result, 15, 13, "'client_secret' must not be written"));
    for (const auto& e : errors_of(result)) {
        EXPECT_EQ(e.to_string().find("TOPSECRET"), std::string::npos) << e.to_string();
    }
}

// ----- patients

TEST(config_validation, patient_key_rules_never_echo_the_key) {
    // Setup
    auto text = ehr_with(
        "[[patient]]\nkey = \"Jane Doe\"\nehr = \"ecw\"\n"  // 7
        "[[patient]]\nkey = \"\"\nehr = \"ecw\"\n"          // 10
        "[[patient]]\nkey = \"" +
        std::string(65, 'k') +
        "\"\nehr = \"ecw\"\n"                                                            // 13
        "[[patient]]\nkey = \"p/1\"\nehr = \"ecw\"\n"                                    // 16
        "[[patient]]\nkey = \"ok\"\nehr = \"ecw\"\nfhir_patient_id = \"MRN 12345\"\n");  // 21

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 7, 7,
                          "[[patient]] #1: key may contain only A-Z a-z 0-9 . _ - (found a space); it is the "
                          "pseudonymous HeadacheMD key that appears in logs, never a name or MRN"));
    EXPECT_TRUE(has_error(result, 10, 7, "[[patient]] #2: key must not be empty"));
    EXPECT_TRUE(has_error(result, 13, 7, "[[patient]] #3: key is 65 characters long; the limit is 64"));
    EXPECT_TRUE(
        has_error(result, 16, 7, "[[patient]] #4: key may contain only A-Z a-z 0-9 . _ - (found '/')"));
    EXPECT_TRUE(has_error(result, 21, 19, "[[patient]] \"ok\": fhir_patient_id must be a FHIR id"));
    for (const auto& e : errors_of(result)) {
        EXPECT_EQ(e.message.find("Jane"), std::string::npos) << e.message;
        EXPECT_EQ(e.message.find("12345"), std::string::npos) << e.message;
    }
}

// ----- daemon

TEST(config_validation, daemon_problems) {
    // Setup
    auto text =
        "[daemon]\n"
        "database = \"/var/lib/x.db\"\n"
        "vault = \"/var/lib/x.db\"\n"   // 3
        "callback_listen = \"8765\"\n"  // 4
        "token_key_file = \"\"\n";      // 5

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 3, 9, "vault and database must be different files"));
    EXPECT_TRUE(has_error(result, 4, 19, "callback_listen must be \"host:port\""));
    EXPECT_TRUE(has_error(result, 5, 18, "token_key_file must not be empty"));
}

TEST(config_validation, unset_environment_variable_in_a_path) {
    // Setup
    auto text =
        "[daemon]\ntoken_key_file = \"${CREDENTIALS_DIRECTORY}/token.key\"\nvault = \"${BROKEN/v.db\"\n";

    // Run
    auto result = parse(text, fake_env());

    // Check
    EXPECT_TRUE(
        has_error(result, 2, 18,
                  "token_key_file uses ${CREDENTIALS_DIRECTORY}, but that environment variable is not set "
                  "(systemd sets it for a unit with LoadCredential="));
    EXPECT_TRUE(has_error(result, 3, 9, "vault has \"${\" without a closing \"}\""));
}

// ----- the whole file

TEST(config_validation, all_errors_come_back_together_in_file_order) {
    // Setup: five independent mistakes spread over the file.
    auto text =
        "[daemon]\n"
        "log_level = \"loud\"\n"  // 2
        "[[ehr]]\n"               // 3
        "name = \"ecw\"\n"
        "fhir_base = \"https://ehr.example.org/fhir/\"\n"  // 5
        "client_id = \"c\"\n"
        "client_secret_file = \"/s\"\n"
        "max_concurrent = 0\n"  // 8
        "[[patient]]\n"
        "key = \"p1\"\n"
        "ehr = \"nope\"\n"  // 11
        "[[patient]]\n"
        "key = \"p1\"\n"  // 13
        "ehr = \"ecw\"\n";

    // Run
    auto result = parse(text);

    // Check
    auto errors = errors_of(result);
    ASSERT_EQ(errors.size(), 5u) << describe(errors);
    std::vector<int> lines;
    for (const auto& e : errors) lines.push_back(e.line);
    EXPECT_EQ(lines, (std::vector<int>{2, 5, 8, 11, 13}));
}

TEST(config_validation, toml_syntax_error_names_its_position) {
    // Setup / Run
    auto result = parse("[daemon]\nlog_level = \"info\n");

    // Check
    auto errors = errors_of(result);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].file, "sync.toml");
    EXPECT_EQ(errors[0].line, 2);
    EXPECT_GT(errors[0].column, 0);
    EXPECT_NE(errors[0].message.find("TOML syntax error"), std::string::npos);
}

TEST(config_validation, unreadable_file_is_one_error_naming_it) {
    // Setup
    headachemd::test::temp_dir dir;
    const auto missing = dir / "missing.toml";

    // Run
    auto not_there = cfg::load_config(missing, fake_env());
    auto a_directory = cfg::load_config(dir.path(), fake_env());

    // Check
    auto errors = errors_of(not_there);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].file, missing.string());
    EXPECT_EQ(errors[0].line, 0);
    EXPECT_EQ(errors[0].to_string(),
              missing.string() + ": cannot read the config file: No such file or directory");
    ASSERT_EQ(errors_of(a_directory).size(), 1u);
    EXPECT_NE(errors_of(a_directory)[0].message.find("directory"), std::string::npos);
}

}  // namespace

namespace {

using cfg::test::config_of;
using cfg::test::valid_ehr;

TEST(config_validation, metrics_listen_must_be_loopback) {
    // Setup: a public address, a wildcard, a bad port, and no port.
    const auto text = [](std::string_view v) {
        return "[daemon]\nmetrics_listen = \"" + std::string(v) + "\"\n";
    };

    // Run + Check: the listener has no TLS and no authentication.
    EXPECT_TRUE(has_error(parse(text("0.0.0.0:9464")), 2, 18, "metrics_listen must be a loopback address"));
    EXPECT_TRUE(has_error(parse(text("192.0.2.7:9464")), 2, 18, "must be a loopback address"));
    EXPECT_TRUE(has_error(parse(text("[::]:9464")), 2, 18, "must be a loopback address"));
    EXPECT_TRUE(has_error(parse(text("127.0.0.1:70000")), 2, 18, "metrics_listen has an invalid port"));
    EXPECT_TRUE(has_error(parse(text("9464")), 2, 18, "metrics_listen must be \"host:port\""));
    for (std::string_view ok : {"127.0.0.1:9464", "[::1]:9464", "localhost:9464", "127.0.0.1:0"}) {
        const auto result = parse(text(ok));
        const auto* c = config_of(result);
        ASSERT_NE(c, nullptr) << ok;
        EXPECT_EQ(c->daemon.metrics_listen, std::string(ok));
    }
    const auto empty = parse("");
    const auto* none = config_of(empty);
    ASSERT_NE(none, nullptr);
    EXPECT_FALSE(none->daemon.metrics_listen);
}

TEST(config_validation, audit_retention_days_defaults_to_six_years_and_is_bounded) {
    // Setup
    const auto text = [](std::string_view v) {
        return "[daemon]\naudit_retention_days = " + std::string(v) + "\n";
    };

    // Run
    const auto defaulted = parse("");
    const auto set = parse(text("30"));

    // Check: 2190 days = the 6 years HIPAA asks documentation to be kept.
    const auto* d = config_of(defaulted);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->daemon.audit_retention_days, 2190);
    const auto* s = config_of(set);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->daemon.audit_retention_days, 30);
    EXPECT_TRUE(has_error(parse(text("0")), 2, 24, "audit_retention_days must be between 1 and 36500"));
    EXPECT_TRUE(has_error(parse(text("-5")), 2, 24, "audit_retention_days must be between 1 and 36500"));
    EXPECT_TRUE(has_error(parse(text("\"6y\"")), 2, 24, "audit_retention_days"));
}

TEST(config_validation, keepalive_before_defaults_to_14_days_and_must_be_shorter_than_the_lifetime) {
    // Setup
    const std::string ecw = std::string(valid_ehr) + "profile = \"eclinicalworks\"\n";  // lifetime 90d

    // Run
    const auto defaulted = parse(ecw);
    const auto set = parse(ecw + "keepalive_before = \"30d\"\n");
    const auto too_long = parse(ecw + "keepalive_before = \"90d\"\n");  // line 7
    const auto too_short = parse(ecw + "keepalive_before = \"10m\"\n");
    const auto short_life = parse(std::string(valid_ehr) + "refresh_token_lifetime = \"7d\"\n");  // line 6

    // Check
    const auto* c = config_of(defaulted);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->ehrs[0].keepalive_before, std::chrono::hours(24 * 14));
    const auto* c30 = config_of(set);
    ASSERT_NE(c30, nullptr);
    EXPECT_EQ(c30->ehrs[0].keepalive_before, std::chrono::hours(24 * 30));
    EXPECT_TRUE(has_error(too_long, 7, 20, "keepalive_before (7776000s) must be shorter than"));
    EXPECT_TRUE(has_error(too_short, 7, 20, "keepalive_before must be at least 3600s"));
    // The 14-day default against a 7-day lifetime: the error points at the lifetime.
    EXPECT_TRUE(has_error(short_life, 6, 26, "keepalive_before (1209600s) must be shorter than"));
    // Unknown lifetime (generic preset): no keep-alive, any window is fine.
    EXPECT_NE(config_of(parse(std::string(valid_ehr) + "keepalive_before = \"400d\"\n")), nullptr);
}

}  // namespace

// ----- [[view]] (issue 16: materialized ViewDefinitions)

TEST(config_validation, views_parse_with_paths_from_the_config_directory) {
    // Setup
    auto text = std::string(
        "[[view]]\n"
        "name = \"blood_pressure\"\n"
        "file = \"views/bp.json\"\n"
        "[[view]]\n"
        "name = \"allergies\"\n"
        "file = \"/srv/views/allergies.json\"\n");

    // Run
    auto result = cfg::parse_config(text, "/etc/headachemd/sync.toml", cfg::test::fake_env());

    // Check
    const auto* c = cfg::test::config_of(result);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->views.size(), 2u);
    EXPECT_EQ(c->views[0].name, "blood_pressure");
    EXPECT_EQ(c->views[0].file, std::filesystem::path("/etc/headachemd/views/bp.json"));
    EXPECT_EQ(c->views[1].name, "allergies");
    EXPECT_EQ(c->views[1].file, std::filesystem::path("/srv/views/allergies.json"));
}

TEST(config_validation, view_names_must_be_sql_safe_and_unique) {
    // Setup
    auto text = std::string(
        "[[view]]\n"             // 1
        "name = \"bp\"\n"        // 2
        "file = \"a.json\"\n"    // 3
        "[[view]]\n"             // 4
        "name = \"bp\"\n"        // 5
        "file = \"b.json\"\n"    // 6
        "[[view]]\n"             // 7
        "name = \"BP; DROP\"\n"  // 8
        "file = \"c.json\"\n"    // 9
        "[[view]]\n"             // 10
        "name = \"Bp\"\n"        // 11
        "file = \"d.json\"\n"    // 12
        "[[view]]\n"             // 13
        "name = \"1bp\"\n"       // 14
        "file = \"e.json\"\n");  // 15

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(
        has_error(result, 5, 8, "[[view]] \"bp\": name \"bp\" is already used by the [[view]] at line 1"));
    EXPECT_TRUE(has_error(result, 8, 8, "[[view]] #3: name must be 1-48 characters of a-z"));
    EXPECT_TRUE(has_error(result, 11, 8, "[[view]] #4: name must be"));
    EXPECT_TRUE(has_error(result, 14, 8, "[[view]] #5: name must be"));
    EXPECT_EQ(errors_of(result).size(), 4u) << describe(errors_of(result));
}

TEST(config_validation, view_needs_name_and_file_and_knows_no_other_key) {
    // Setup
    auto text = std::string(
        "[[view]]\n"                  // 1
        "name = \"bp\"\n"             // 2
        "[[view]]\n"                  // 3
        "file = \"x.json\"\n"         // 4
        "[[view]]\n"                  // 5
        "name = \"ok\"\n"             // 6
        "file = \"x.json\"\n"         // 7
        "resource = \"Patient\"\n");  // 8

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 1, 1, "[[view]] \"bp\": missing required key 'file'"));
    EXPECT_TRUE(has_error(result, 3, 1, "[[view]] #2: missing required key 'name'"));
    EXPECT_TRUE(has_error(result, 8, 1, "[[view]] \"ok\": unknown key 'resource'"));
    EXPECT_EQ(errors_of(result).size(), 3u) << describe(errors_of(result));
}

TEST(config_validation, view_name_definition_is_reserved) {
    // Setup: view_definition is the table that records the views
    auto text = std::string(
        "[[view]]\n"
        "name = \"definition\"\n"
        "file = \"a.json\"\n");

    // Run
    auto result = parse(text);

    // Check
    EXPECT_TRUE(has_error(result, 2, 8, "name \"definition\" is reserved"));
    EXPECT_EQ(errors_of(result).size(), 1u) << describe(errors_of(result));
}
