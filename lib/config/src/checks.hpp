// Small pure checks the loader applies to single values. Internal to
// headachemd_config; each returns a message for a person, or nothing.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "headachemd/config/config.hpp"

namespace headachemd::config::detail {

// Levenshtein distance, ASCII case-insensitive (so "observation" is 0 from
// "Observation" and the suggestion shows the right case).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `typo`, if it is close enough to be a likely typo.
std::optional<std::string_view> closest_match(std::string_view typo,
                                              std::span<const std::string_view> candidates);

// " (did you mean 'x'?)"-style helper: "; did you mean 'x'?" or "".
std::string did_you_mean(std::string_view typo, std::span<const std::string_view> candidates,
                         char quote = '\'');

// "'a', 'b' or 'c'" (or with another quote character).
std::string one_of(std::span<const std::string_view> items, char quote = '\'');

// Names that appear in logs and rows (patient keys, EHR names):
// [A-Za-z0-9._-], 1–64 characters. Returns the problem, or nullopt. The
// value itself is never quoted back, because a rejected patient key is
// likely a person's name.
std::optional<std::string> identifier_problem(std::string_view key_name, std::string_view value);

// A [[view]] name: ^[a-z][a-z0-9_]{0,47}$ (it becomes the table view_<name>).
bool is_view_name(std::string_view value);

// FHIR R4 id: [A-Za-z0-9\-\.]{1,64} (R4 datatypes, "id").
bool is_fhir_id(std::string_view value);

enum class url_use { fhir_base, endpoint };

// Checks an https:// URL (http:// only for a loopback host). Returns the
// complete message (starting with the key name), or nullopt when valid.
std::optional<std::string> url_problem(std::string_view key_name, std::string_view url, url_use use);

// True for localhost, 127.0.0.0/8 and [::1]: the only hosts plain http may reach.
bool is_loopback_host(std::string_view host);

// What a listen address ("host:port", IPv6 in brackets) may be. One rule for
// callback_listen and metrics_listen: a loopback host unless
// [daemon] allow_non_loopback_listen = true.
struct listen_rule {
    bool port_zero_allowed = false;     // metrics_listen: an ephemeral port, named in the log
    bool non_loopback_allowed = false;  // [daemon] allow_non_loopback_listen
    std::string_view example = "127.0.0.1:8765";
};

// Returns the complete message (starting with the key name), or nullopt.
std::optional<std::string> listen_problem(std::string_view key_name, std::string_view value,
                                          const listen_rule& rule);

// Replaces each "${NAME}" with the variable's value. On failure returns the
// problem (an unset variable, a "${" without "}") in `problem`.
std::optional<std::string> expand_environment(std::string_view text, const env_lookup& env,
                                              std::string& problem);

}  // namespace headachemd::config::detail
