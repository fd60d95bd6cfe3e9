// The error codes (core/result.hpp): an enumerator's text is what users see
// in the audit log, `status`, --json and metrics, so each one must print as
// its own name and read back as itself (issue 14, item 5).
#include <gtest/gtest.h>

#include <string>

#include "headachemd/core/result.hpp"

namespace {

using headachemd::errc;
using headachemd::error_code;

TEST(errc, every_enumerator_round_trips_through_its_name) {
    for (std::size_t i = 0; i < headachemd::errc_count; ++i) {
        const errc c = headachemd::errc_at(i);
        const std::string_view name = to_string(c);
        ASSERT_FALSE(name.empty()) << i;
        EXPECT_EQ(headachemd::errc_from_string(name), c) << name;
    }
}

TEST(errc, names_are_the_strings_users_have_always_seen) {
    // A few that the audit log, `status` and the docs name.
    EXPECT_EQ(to_string(errc::timeout), "timeout");
    EXPECT_EQ(to_string(errc::invalid_grant), "invalid_grant");
    EXPECT_EQ(to_string(errc::bad_page), "bad_page");
    EXPECT_EQ(to_string(errc::tls_verify), "tls_verify");
    EXPECT_EQ(to_string(errc::rate_limited), "rate_limited");
    EXPECT_EQ(to_string(errc::token_patient_mismatch), "token_patient_mismatch");
}

TEST(errc, unknown_text_is_not_an_enumerator) {
    EXPECT_FALSE(headachemd::errc_from_string(""));
    EXPECT_FALSE(headachemd::errc_from_string("Timeout"));
    EXPECT_FALSE(headachemd::errc_from_string("timeout "));
    EXPECT_FALSE(headachemd::errc_from_string("made_up"));
}

TEST(error_code, every_plain_code_round_trips_through_its_text) {
    for (std::size_t i = 0; i < headachemd::errc_count; ++i) {
        const errc c = headachemd::errc_at(i);
        if (c == errc::http_status || c == errc::oauth_other) continue;
        const error_code code(c);
        EXPECT_EQ(to_string(code), to_string(c));
        EXPECT_EQ(headachemd::error_code_from_string(to_string(code)), code) << to_string(c);
    }
}

TEST(error_code, http_statuses_print_as_http_and_the_number) {
    for (int status : {100, 302, 400, 401, 404, 429, 500, 503, 599}) {
        const error_code code = error_code::http(status);
        EXPECT_EQ(code, errc::http_status);
        EXPECT_EQ(code.http_status(), status);
        const std::string text = to_string(code);
        EXPECT_EQ(text, "http_" + std::to_string(status));
        EXPECT_EQ(headachemd::error_code_from_string(text), code) << text;
    }
    EXPECT_NE(error_code::http(500), error_code::http(503));
    // Not a status: kept as text.
    EXPECT_EQ(headachemd::error_code_from_string("http_"), errc::oauth_other);
    EXPECT_EQ(headachemd::error_code_from_string("http_5x3"), errc::oauth_other);
    EXPECT_EQ(headachemd::error_code_from_string("http_12345"), errc::oauth_other);
}

TEST(error_code, registered_oauth_codes_become_enumerators) {
    // RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1.
    for (const char* name :
         {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
          "unsupported_grant_type", "invalid_scope", "access_denied", "unsupported_response_type",
          "server_error", "temporarily_unavailable", "unsupported_token_type"}) {
        const error_code code = error_code::oauth(name);
        EXPECT_NE(code, errc::oauth_other) << name;
        EXPECT_EQ(to_string(code), name);
    }
}

TEST(error_code, other_oauth_codes_keep_their_text_and_never_become_ours) {
    // A server's own code prints as sent (lib/smart has checked it is a
    // safe identifier) but is never taken for one of our decisions.
    for (const char* name : {"consent_required", "timeout", "stopped", "rate_limited", "http_503"}) {
        const error_code code = error_code::oauth(name);
        EXPECT_EQ(code, errc::oauth_other) << name;
        EXPECT_EQ(to_string(code), name);
    }
    EXPECT_EQ(headachemd::error_code_from_string("consent_required"), error_code::oauth("consent_required"));
}

}  // namespace
