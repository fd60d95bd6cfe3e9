// The loader: toml++ parses (keeping source positions), then one pass per
// section reads each known key, checks it, and records every problem with
// the position of the offending key or value. Nothing stops at the first
// error, so an admin fixes a config in one round (DESIGN.md: "clear errors
// that name the line").
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "checks.hpp"
#include "headachemd/config/config.hpp"
#include "headachemd/files/protected_file.hpp"
#include "headachemd/normalize/normalize.hpp"

namespace headachemd::config {

namespace {

using namespace std::chrono_literals;
using detail::did_you_mean;
using detail::one_of;

constexpr std::array<std::string_view, 5> root_keys{"daemon", "privacy", "ehr", "patient", "view"};
// clang-format off
constexpr std::array<std::string_view, 10> daemon_keys{
    "database",        "vault",          "log_level",      "log_format",          "default_interval",
    "callback_listen", "token_key_file", "metrics_listen", "audit_retention_days", "allow_non_loopback_listen"};
// clang-format on
constexpr std::array<std::string_view, 1> privacy_keys{"identifiers"};
// clang-format off
constexpr std::array<std::string_view, 36> ehr_keys{
    "name", "profile", "fhir_base",
    // OAuth: endpoints and client registration
    "discovery", "authorize_endpoint", "token_endpoint", "client_id", "client_auth", "client_secret_file",
    "private_key_file", "key_id", "scopes", "ca_file", "redirect_uri", "revocation_endpoint",
    // what to search, and how
    "resources", "search_params", "patient_param", "page_size", "page_param", "use_last_updated",
    "last_updated_overlap",
    // pacing
    "requests_per_minute", "max_concurrent", "interval", "reconcile_every", "count_check_every", "backfill_since", "http_timeout",
    // bounds on what a server can make a pass do
    "max_retry_after", "max_pages_per_search", "max_resources_per_patient",
    // tokens
    "refresh_token_lifetime", "refresh_token_rotates", "keepalive_before",
    // [ehr.bulk]: Bulk Data export
    "bulk"};
constexpr std::array<std::string_view, 16> bulk_keys{
    "client_id", "private_key_file", "key_id", "algorithm", "next_private_key_file", "next_key_id", "jwks_url",
    "level", "group_id", "types", "scopes",
    "since_overlap", "interval", "max_retry_after", "job_deadline", "max_line_bytes"};
// clang-format on
constexpr std::array<std::string_view, 2> bulk_algorithms{"RS384", "ES384"};
constexpr std::array<std::string_view, 3> bulk_levels{"group", "patient", "system"};
constexpr std::array<std::string_view, 3> patient_keys{"key", "ehr", "fhir_patient_id"};
constexpr std::array<std::string_view, 2> view_keys{"name", "file"};

// spdlog's level names (both spellings of warning are accepted by spdlog).
constexpr std::array<std::string_view, 8> log_levels{"trace",   "debug", "info",     "warn",
                                                     "warning", "error", "critical", "off"};
// journald: "<N>" priority prefixes for systemd; text: for a terminal;
// json: one object a line; auto: journald under systemd, else text.
constexpr std::array<std::string_view, 4> log_formats{"auto", "journald", "text", "json"};
constexpr std::array<std::string_view, 2> identifier_policies{"none", "minimal"};
constexpr std::array<std::string_view, 4> auth_methods{"client_secret_basic", "client_secret_post",
                                                       "private_key_jwt", "none"};

// Keys that would put a secret into the config text. Each is refused, with
// where the secret belongs instead; the value is never quoted back.
struct secret_key {
    std::string_view name;
    std::string_view instead;
};
constexpr std::array<secret_key, 7> secret_keys{{
    {"client_secret",
     "put it in a file readable only by the daemon and write client_secret_file = "
     "\"/etc/headachemd/@.secret\", or load it with LoadCredential= and write client_secret_file = "
     "\"${CREDENTIALS_DIRECTORY}/@.secret\""},
    {"private_key",
     "write private_key_file = \"/etc/headachemd/@-key.pem\" or private_key_file = "
     "\"${CREDENTIALS_DIRECTORY}/@-key.pem\""},
    {"token_key",
     "write token_key_file = \"/etc/headachemd/token.key\" in [daemon] (`headachemd-sync keygen` writes "
     "one), or load it with LoadCredential="},
    {"refresh_token",
     "import it with `headachemd-sync enroll KEY --refresh-token-file FILE`; it is kept encrypted in "
     "vault.db"},
    {"access_token", "access tokens are obtained at run time and kept in memory only"},
    {"password", "name a file that holds it, or use a systemd credential ($CREDENTIALS_DIRECTORY)"},
    {"secret", "name a file that holds it, or use a systemd credential ($CREDENTIALS_DIRECTORY)"},
}};

const secret_key* find_secret_key(std::string_view name) {
    for (const auto& s : secret_keys) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

// `stem` names the example files ("/etc/headachemd/<stem>.secret"): the
// [[ehr]] name where there is one.
std::string secret_message(const secret_key& s, std::string_view stem) {
    std::string instead(s.instead);
    for (auto at = instead.find('@'); at != std::string::npos; at = instead.find('@', at + stem.size())) {
        instead.replace(at, 1, stem);
    }
    return "'" + std::string(s.name) +
           "' must not be written in the config file: secrets come from files or systemd credentials, "
           "never from the config text; " +
           instead;
}

std::string_view type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

// A search parameter name as it goes into a URL: FHIR names are letters,
// digits, '_', '-', '.', and ':' for modifiers ("code:text").
bool is_param_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-' || c == '.' || c == ':';
    });
}

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
bool is_scope_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u == 0x21 || (u >= 0x23 && u <= 0x5b) || (u >= 0x5d && u <= 0x7e);
    });
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// "; did you mean \"Observation\"?" for a near miss, else the whole list.
std::string type_hint(std::string_view type) {
    if (auto hint = did_you_mean(type, known_resource_types, '"'); !hint.empty()) return hint;
    return "; the types HeadacheMD normalizes are " + one_of(known_resource_types, '"');
}

int line_of(const toml::source_region& r) { return static_cast<int>(r.begin.line); }

// A table plus the label its errors start with: "[daemon]", "[[ehr]] \"ecw\"".
struct section {
    const toml::table& table;
    std::string label;
    std::string stem = "ehr";  // for example file names in messages
};

class loader {
public:
    loader(std::string_view file_name, const env_lookup& env)
        : file_(file_name), env_(env), base_dir_(std::filesystem::path(file_name).parent_path()) {}

    parse_result run(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, std::string_view(file_));
        } catch (const toml::parse_error& e) {
            // toml++ stops at the first syntax error: it is the only one.
            config_error err;
            err.file = file_;
            err.line = line_of(e.source());
            err.column = static_cast<int>(e.source().begin.column);
            err.message = "TOML syntax error: " + std::string(e.description());
            return std::vector<config_error>{std::move(err)};
        }

        config out;
        out.file = std::filesystem::path(file_);
        scan_for_pem(root);
        check_keys(section{root, "top level"}, root_keys);
        if (const auto* t = single_table(root, "daemon")) out.daemon = read_daemon(*t);
        if (const auto* t = single_table(root, "privacy")) out.privacy = read_privacy(*t);

        std::map<std::string, int, std::less<>> ehr_lines;  // name → line of its [[ehr]]
        const auto ehr_tables = array_of_tables(root, "ehr");
        for (std::size_t i = 0; i < ehr_tables.size(); ++i) {
            auto e = read_ehr(*ehr_tables[i], i, out.daemon.default_interval);
            if (!e.name.empty()) {
                const auto* name_node = ehr_tables[i]->get("name");
                auto [it, inserted] = ehr_lines.emplace(e.name, line_of(ehr_tables[i]->source()));
                if (!inserted) {
                    error_at(name_node->source(), "[[ehr]] " + in_quotes(e.name),
                             "name " + in_quotes(e.name) + " is already used by the [[ehr]] at line " +
                                 std::to_string(it->second) + "; each EHR needs its own name");
                }
            }
            out.ehrs.push_back(std::move(e));
        }
        check_backend_kids(ehr_tables, out.ehrs);

        std::vector<std::string_view> ehr_names;
        for (const auto& [name, line] : ehr_lines) ehr_names.push_back(name);
        std::map<std::string, int, std::less<>> patient_lines;             // key → line of its [[patient]]
        std::map<std::pair<std::string, std::string>, int> fhir_id_lines;  // (ehr, id) → line
        const auto patient_tables = array_of_tables(root, "patient");
        for (std::size_t i = 0; i < patient_tables.size(); ++i) {
            const auto& t = *patient_tables[i];
            auto p = read_patient(t, i, ehr_names);
            const std::string label = "[[patient]] " + in_quotes(p.key);
            if (!p.key.empty()) {
                auto [it, inserted] = patient_lines.emplace(p.key, line_of(t.source()));
                if (!inserted) {
                    error_at(t.get("key")->source(), label,
                             "key " + in_quotes(p.key) + " is already used by the [[patient]] at line " +
                                 std::to_string(it->second) + "; each patient key must be unique");
                }
            }
            if (p.fhir_patient_id && !p.ehr.empty()) {
                auto [it, inserted] =
                    fhir_id_lines.emplace(std::pair{p.ehr, *p.fhir_patient_id}, line_of(t.source()));
                if (!inserted) {
                    error_at(t.get("fhir_patient_id")->source(), label,
                             "the [[patient]] at line " + std::to_string(it->second) +
                                 " already has this fhir_patient_id at EHR " + in_quotes(p.ehr) +
                                 "; one FHIR patient must have one key, or its rows would be split");
                }
            }
            out.patients.push_back(std::move(p));
        }

        std::map<std::string, int, std::less<>> view_lines;  // name → line of its [[view]]
        const auto view_tables = array_of_tables(root, "view");
        for (std::size_t i = 0; i < view_tables.size(); ++i) {
            auto v = read_view(*view_tables[i], i);
            if (!v.name.empty()) {
                auto [it, inserted] = view_lines.emplace(v.name, line_of(view_tables[i]->source()));
                if (!inserted)
                    error_at(view_tables[i]->get("name")->source(), "[[view]] " + in_quotes(v.name),
                             "name " + in_quotes(v.name) + " is already used by the [[view]] at line " +
                                 std::to_string(it->second) + "; each view is its own table view_<name>");
            }
            out.views.push_back(std::move(v));
        }

        if (!errors_.empty()) {
            std::stable_sort(errors_.begin(), errors_.end(),
                             [](const config_error& a, const config_error& b) {
                                 return std::pair{a.line, a.column} < std::pair{b.line, b.column};
                             });
            return std::move(errors_);
        }
        return out;
    }

private:
    void error_at(const toml::source_region& where, std::string_view label, std::string message) {
        config_error e;
        e.file = file_;
        e.line = line_of(where);
        e.column = static_cast<int>(where.begin.column);
        e.message = label.empty() ? std::move(message) : std::string(label) + ": " + std::move(message);
        errors_.push_back(std::move(e));
    }

    // A key that is missing: the error points at the table's header line.
    void require(const section& s, std::string_view key, std::string_view hint) {
        if (s.table.get(key) == nullptr) {
            error_at(s.table.source(), s.label,
                     "missing required key '" + std::string(key) + "'" + std::string(hint));
        }
    }

    void type_error(const section& s, std::string_view key, const toml::node& n, std::string_view expected) {
        error_at(
            n.source(), s.label,
            std::string(key) + " must be " + std::string(expected) + "; got " + std::string(type_name(n)));
    }

    // Unknown keys (with a suggestion) and inline secrets. A subtree under an
    // unknown key is still searched for secret keys, so that a secret never
    // passes just because its table was misspelt.
    void check_keys(const section& s, std::span<const std::string_view> allowed) {
        for (auto&& [key, value] : s.table) {
            const std::string_view name = key.str();
            if (const auto* secret = find_secret_key(name)) {
                error_at(key.source(), s.label, secret_message(*secret, s.stem));
                continue;
            }
            if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
            std::string message = "unknown key '" + std::string(name) + "'";
            if (auto hint = did_you_mean(name, allowed); !hint.empty()) {
                message += hint;
            } else {
                message += "; valid keys here: " + one_of(allowed);
            }
            error_at(key.source(), s.label, std::move(message));
            scan_for_secrets(value, s);
        }
    }

    void scan_for_secrets(const toml::node& node, const section& s) {
        if (const auto* t = node.as_table()) {
            for (auto&& [key, value] : *t) {
                if (const auto* secret = find_secret_key(key.str())) {
                    error_at(key.source(), s.label, secret_message(*secret, s.stem));
                } else {
                    scan_for_secrets(value, s);
                }
            }
        } else if (const auto* a = node.as_array()) {
            for (const auto& element : *a) scan_for_secrets(element, s);
        }
    }

    // A PEM block pasted as any value is a private key (or at best a
    // certificate) in the config text: refuse it without quoting it.
    void scan_for_pem(const toml::node& node) {
        if (const auto* t = node.as_table()) {
            for (auto&& [key, value] : *t) scan_for_pem(value);
        } else if (const auto* a = node.as_array()) {
            for (const auto& element : *a) scan_for_pem(element);
        } else if (const auto* s = node.as_string()) {
            if (s->get().find("-----BEGIN") != std::string::npos) {
                error_at(
                    node.source(), "",
                    "this value looks like a PEM key or certificate pasted into the config; secrets come "
                    "from files or systemd credentials: name the file instead (private_key_file, ca_file)");
            }
        }
    }

    // [daemon] / [privacy]: a single table, or absent.
    const toml::table* single_table(const toml::table& root, std::string_view key) {
        const auto* n = root.get(key);
        if (n == nullptr) return nullptr;
        if (const auto* t = n->as_table()) return t;
        if (n->is_array_of_tables()) {
            error_at(n->source(), "top level",
                     std::string(key) + " must be a single [" + std::string(key) + "] table, not [[" +
                         std::string(key) + "]]");
        } else {
            error_at(n->source(), "top level",
                     std::string(key) + " must be a table ([" + std::string(key) + "]); got " +
                         std::string(type_name(*n)));
        }
        return nullptr;
    }

    // [[ehr]] / [[patient]]: an array of tables, or absent.
    std::vector<const toml::table*> array_of_tables(const toml::table& root, std::string_view key) {
        std::vector<const toml::table*> out;
        const auto* n = root.get(key);
        if (n == nullptr) return out;
        const std::string header = "[[" + std::string(key) + "]]";
        const auto* a = n->as_array();
        if (a == nullptr) {
            error_at(n->source(), "top level",
                     std::string(key) + " must be written " + header + " (one block per " + std::string(key) +
                         "), not [" + std::string(key) + "] or " + std::string(key) + " = …");
            return out;
        }
        for (const auto& element : *a) {
            if (const auto* t = element.as_table()) {
                out.push_back(t);
            } else {
                error_at(element.source(), "top level",
                         "each " + std::string(key) + " must be a table (" + header + "); got " +
                             std::string(type_name(element)));
            }
        }
        return out;
    }

    // ----- typed getters: nullopt when absent or wrong (the error is recorded)

    std::optional<std::string> get_string(const section& s, std::string_view key) {
        const auto* n = s.table.get(key);
        if (n == nullptr) return std::nullopt;
        if (const auto* v = n->as_string()) return v->get();
        type_error(s, key, *n, "a string");
        return std::nullopt;
    }

    std::optional<std::string> get_nonempty_string(const section& s, std::string_view key) {
        auto v = get_string(s, key);
        if (v && v->empty()) {
            error_at(s.table.get(key)->source(), s.label, std::string(key) + " must not be empty");
            return std::nullopt;
        }
        return v;
    }

    std::optional<bool> get_bool(const section& s, std::string_view key) {
        const auto* n = s.table.get(key);
        if (n == nullptr) return std::nullopt;
        if (const auto* v = n->as_boolean()) return v->get();
        type_error(s, key, *n, "true or false");
        return std::nullopt;
    }

    std::optional<int> get_int(const section& s, std::string_view key, int min, int max,
                               std::string_view why) {
        const auto* n = s.table.get(key);
        if (n == nullptr) return std::nullopt;
        const auto* v = n->as_integer();
        if (v == nullptr) {
            type_error(s, key, *n, "an integer");
            return std::nullopt;
        }
        const std::int64_t value = v->get();
        if (value < min || value > max) {
            error_at(n->source(), s.label,
                     std::string(key) + " must be between " + std::to_string(min) + " and " +
                         std::to_string(max) + std::string(why) + "; got " + std::to_string(value));
            return std::nullopt;
        }
        return static_cast<int>(value);
    }

    // A duration: "90s", "30m", "6h", "7d" (or sums such as "1h30m"), or an
    // integer number of seconds.
    std::optional<std::chrono::seconds> get_duration(const section& s, std::string_view key,
                                                     std::chrono::seconds min) {
        const auto* n = s.table.get(key);
        if (n == nullptr) return std::nullopt;
        const std::string name(key);
        std::optional<std::chrono::seconds> value;
        if (const auto* i = n->as_integer()) {
            if (i->get() < 0) {
                error_at(n->source(), s.label,
                         name + " must not be negative; got " + std::to_string(i->get()));
                return std::nullopt;
            }
            value = parse_duration(std::to_string(i->get()) + "s");
            if (!value) {
                error_at(n->source(), s.label, name + " is too long (more than 100 years)");
                return std::nullopt;
            }
        } else if (const auto* str = n->as_string()) {
            value = parse_duration(str->get());
            if (!value) {
                error_at(
                    n->source(), s.label,
                    name +
                        " must be a duration such as \"90s\", \"30m\", \"6h\" or \"7d\" (or a whole number "
                        "of seconds); got " +
                        in_quotes(str->get()));
                return std::nullopt;
            }
        } else {
            type_error(s, key, *n, "a duration such as \"30m\" or a whole number of seconds");
            return std::nullopt;
        }
        if (*value < min) {
            error_at(n->source(), s.label,
                     name + " must be at least " + std::to_string(min.count()) + "s; got " +
                         std::to_string(value->count()) + "s");
            return std::nullopt;
        }
        return value;
    }

    // A file path: "${NAME}" expanded from the environment, and a relative
    // path taken from the config file's directory. The value is not quoted
    // back, in case a secret was pasted where its file name belongs.
    std::optional<std::filesystem::path> get_path(const section& s, std::string_view key) {
        auto text = get_nonempty_string(s, key);
        if (!text) return std::nullopt;
        std::string problem;
        auto expanded = detail::expand_environment(*text, env_, problem);
        if (!expanded) {
            error_at(s.table.get(key)->source(), s.label, std::string(key) + " " + problem);
            return std::nullopt;
        }
        std::filesystem::path p(*expanded);
        if (p.is_relative() && !base_dir_.empty()) p = base_dir_ / p;
        return p.lexically_normal();
    }

    // One of a fixed set of words, with a suggestion for a near miss.
    std::optional<std::string> get_choice(const section& s, std::string_view key,
                                          std::span<const std::string_view> choices) {
        auto v = get_string(s, key);
        if (!v) return std::nullopt;
        if (std::find(choices.begin(), choices.end(), *v) != choices.end()) return v;
        std::string message =
            std::string(key) + " must be one of " + one_of(choices, '"') + "; got " + in_quotes(*v);
        if (auto match = detail::closest_match(*v, choices))
            message += " (did you mean " + in_quotes(*match) + "?)";
        error_at(s.table.get(key)->source(), s.label, std::move(message));
        return std::nullopt;
    }

    std::optional<std::string> get_url(const section& s, std::string_view key, detail::url_use use) {
        auto v = get_string(s, key);
        if (!v) return std::nullopt;
        if (auto problem = detail::url_problem(key, *v, use)) {
            error_at(s.table.get(key)->source(), s.label, std::move(*problem));
            return std::nullopt;
        }
        return v;
    }

    // ----- sections

    daemon_settings read_daemon(const toml::table& t) {
        const section s{t, "[daemon]"};
        check_keys(s, daemon_keys);
        daemon_settings d;
        if (auto v = get_path(s, "database")) d.database = *v;
        if (auto v = get_path(s, "vault")) d.vault = *v;
        if (d.database == d.vault) {
            // headache.db is readable by the analysts' group; vault.db must stay 0600.
            error_at(t.get(t.contains("vault") ? "vault" : "database")->source(), s.label,
                     "vault and database must be different files: the analysts may read the database, "
                     "while the vault holds the tokens");
        }
        if (auto v = get_choice(s, "log_level", log_levels)) d.log_level = *v;
        if (auto v = get_choice(s, "log_format", log_formats)) d.log_format = *v;
        if (auto v = get_duration(s, "default_interval", 1s)) d.default_interval = *v;
        // Read before the two listen addresses it governs.
        if (auto v = get_bool(s, "allow_non_loopback_listen")) d.allow_non_loopback_listen = *v;
        // The redirect URI registered at the EHR names a fixed port: no port 0.
        const detail::listen_rule callback_rule{false, d.allow_non_loopback_listen, "127.0.0.1:8765"};
        if (auto v = get_string(s, "callback_listen")) {
            if (auto problem = detail::listen_problem("callback_listen", *v, callback_rule)) {
                error_at(t.get("callback_listen")->source(), s.label, std::move(*problem));
            } else {
                d.callback_listen = *v;
            }
        }
        if (auto v = get_path(s, "token_key_file")) d.token_key_file = *v;
        const detail::listen_rule metrics_rule{true, d.allow_non_loopback_listen, "127.0.0.1:9464"};
        if (auto v = get_string(s, "metrics_listen")) {
            if (auto problem = detail::listen_problem("metrics_listen", *v, metrics_rule)) {
                error_at(t.get("metrics_listen")->source(), s.label, std::move(*problem));
            } else {
                d.metrics_listen = *v;
            }
        }
        // Up to 100 years; below one day the purge would race the events it keeps.
        if (auto v = get_int(s, "audit_retention_days", 1, 36500, " (days; HIPAA asks for 6 years: 2190)"))
            d.audit_retention_days = *v;
        return d;
    }

    privacy_settings read_privacy(const toml::table& t) {
        const section s{t, "[privacy]"};
        check_keys(s, privacy_keys);
        privacy_settings p;
        if (auto v = get_choice(s, "identifiers", identifier_policies)) {
            p.identifiers = *v == "minimal" ? identifier_policy::minimal : identifier_policy::none;
        }
        return p;
    }

    ehr_settings read_ehr(const toml::table& t, std::size_t index, std::chrono::seconds default_interval) {
        section s{t, "[[ehr]] #" + std::to_string(index + 1)};
        if (const auto* n = t.get("name"); n && n->is_string() && !n->as_string()->get().empty()) {
            const std::string& name = n->as_string()->get();
            s.label = "[[ehr]] " + in_quotes(name);
            if (!detail::identifier_problem("name", name)) s.stem = name;
        }
        check_keys(s, ehr_keys);

        // The preset first; each explicit key below overrides its field.
        std::string profile = get_choice(s, "profile", known_profiles).value_or("generic");
        ehr_settings e = *profile_preset(profile, default_interval);

        require(s, "name", " (a short name such as \"ecw\", used in every row and in [[patient]] ehr)");
        if (auto v = get_string(s, "name")) {
            if (auto problem = detail::identifier_problem("name", *v)) {
                error_at(t.get("name")->source(), s.label, std::move(*problem));
            } else {
                e.name = *v;
            }
        }
        require(s, "fhir_base",
                " (the FHIR R4 base URL, e.g. \"https://fhir.example.org/fhir/r4/PRACTICE\")");
        if (auto v = get_url(s, "fhir_base", detail::url_use::fhir_base)) e.fhir_base = *v;
        const bool auth_ok = read_endpoints_and_client(s, e);
        read_scopes(s, e.scopes, "at least offline_access and patient/*.read");
        if (auto v = get_path(s, "ca_file")) e.ca_file = *v;
        read_search_params(s, e);
        read_resources(s, e);
        read_schedule_and_limits(s, e);
        read_bulk(s, e);

        check_endpoints(s, e);
        if (auth_ok) check_client_auth(s, e);
        return e;
    }

    // The endpoints and this app's client registration. False when
    // client_auth names no known method, so its checks are skipped.
    bool read_endpoints_and_client(const section& s, ehr_settings& e) {
        if (auto v = get_bool(s, "discovery")) e.discovery = *v;
        if (auto v = get_url(s, "authorize_endpoint", detail::url_use::endpoint)) e.authorize_endpoint = *v;
        if (auto v = get_url(s, "token_endpoint", detail::url_use::endpoint)) e.token_endpoint = *v;
        if (auto v = get_url(s, "revocation_endpoint", detail::url_use::endpoint)) e.revocation_endpoint = *v;
        // RFC 6749 §3.1.2: an absolute URI without a fragment; https, or
        // http on loopback (RFC 8252 §7.3), like every other endpoint here.
        if (auto v = get_url(s, "redirect_uri", detail::url_use::endpoint)) e.redirect_uri = *v;
        require(s, "client_id", " (the client id of this app's registration at the EHR)");
        if (auto v = get_nonempty_string(s, "client_id")) e.client_id = *v;
        if (auto v = get_path(s, "client_secret_file")) e.client_secret_file = *v;
        if (auto v = get_path(s, "private_key_file")) e.private_key_file = *v;
        if (auto v = get_nonempty_string(s, "key_id")) e.key_id = *v;
        const bool auth_ok = !s.table.contains("client_auth") || get_choice(s, "client_auth", auth_methods);
        if (auth_ok && s.table.contains("client_auth")) {
            const auto name = s.table.get("client_auth")->as_string()->get();
            for (std::size_t i = 0; i < auth_methods.size(); ++i) {
                if (auth_methods[i] == name) e.client_auth = static_cast<client_auth_method>(i);
            }
        }
        return auth_ok;
    }

    // How searches are sent: the patient parameter and paging.
    void read_search_params(const section& s, ehr_settings& e) {
        if (auto v = get_nonempty_string(s, "patient_param")) {
            if (is_param_name(*v)) {
                e.patient_param = *v;
            } else {
                error_at(s.table.get("patient_param")->source(), s.label,
                         "patient_param must be a search parameter name such as \"patient\" or \"subject\"; "
                         "got " +
                             in_quotes(*v));
            }
        }
        if (auto v = get_int(s, "page_size", 0, 1000, " (0: send no _count)")) {
            e.page_size = *v == 0 ? std::nullopt : std::optional<int>(*v);
        }
        if (auto v = get_string(s, "page_param")) {
            if (v->empty()) {
                e.page_param = std::nullopt;  // "" switches a preset's page_param off
            } else if (is_param_name(*v)) {
                e.page_param = *v;
            } else {
                error_at(s.table.get("page_param")->source(), s.label,
                         "page_param must be a search parameter name such as \"page\"; got " + in_quotes(*v));
            }
        }
    }

    // Incremental sync, pacing, the token's life and the per-search limits.
    void read_schedule_and_limits(const section& s, ehr_settings& e) {
        if (auto v = get_bool(s, "use_last_updated")) e.use_last_updated = *v;
        if (auto v = get_duration(s, "last_updated_overlap", 0s)) e.last_updated_overlap = *v;
        if (auto v = get_int(s, "requests_per_minute", 1, 60000, "")) e.requests_per_minute = *v;
        if (auto v = get_int(s, "max_concurrent", 1, 64, "")) e.max_concurrent = *v;
        if (auto v = get_duration(s, "interval", 1s)) e.interval = *v;
        if (auto v = get_duration(s, "reconcile_every", 1s)) e.reconcile_every = *v;
        if (auto v = get_duration(s, "count_check_every", 0s)) e.count_check_every = *v;
        read_backfill_since(s, e);
        if (auto v = get_duration(s, "refresh_token_lifetime", 0s)) e.refresh_token_lifetime = *v;
        if (auto v = get_bool(s, "refresh_token_rotates")) e.refresh_token_rotates = *v;
        if (auto v = get_duration(s, "keepalive_before", 1h)) e.keepalive_before = *v;
        check_keepalive(s, e);
        if (auto v = get_duration(s, "http_timeout", 1s)) e.http_timeout = *v;
        if (auto v = get_duration(s, "max_retry_after", 1s)) {
            // A sync-once that sleeps for hours looks hung; past a day the
            // hold is better ended and the jobs retried by `run` at its end.
            if (*v > 24h)
                error_at(s.table.get("max_retry_after")->source(), s.label,
                         "max_retry_after must be at most 24h (a longer Retry-After ends the jobs as "
                         "rate-limited instead of sleeping); got " +
                             std::to_string(v->count()) + "s");
            else
                e.max_retry_after = *v;
        }
        if (auto v = get_int(s, "max_pages_per_search", 1, 1000000, "")) e.max_pages_per_search = *v;
        if (auto v = get_int(s, "max_resources_per_patient", 1, 100000000, ""))
            e.max_resources_per_patient = *v;
    }

    // A keep-alive window as long as the token's whole life would renew the
    // token at every sync and warn forever; say so instead.
    void check_keepalive(const section& s, const ehr_settings& e) {
        if (e.refresh_token_lifetime.count() == 0 || e.keepalive_before < e.refresh_token_lifetime) return;
        const auto* n = s.table.get("keepalive_before");
        if (n == nullptr) n = s.table.get("refresh_token_lifetime");
        error_at(n ? n->source() : s.table.source(), s.label,
                 "keepalive_before (" + std::to_string(e.keepalive_before.count()) +
                     "s) must be shorter than refresh_token_lifetime (" +
                     std::to_string(e.refresh_token_lifetime.count()) +
                     "s): the token is renewed when it would lapse within keepalive_before; e.g. "
                     "keepalive_before = \"" +
                     std::to_string(std::max<long long>(1, e.refresh_token_lifetime.count() / 3600 / 4)) +
                     "h\"");
    }

    void check_endpoints(const section& s, const ehr_settings& e) {
        if (e.discovery || s.table.contains("token_endpoint")) return;
        error_at(s.table.get("discovery")->source(), s.label,
                 "discovery = false needs token_endpoint (and authorize_endpoint for browser enrollment); "
                 "otherwise leave discovery on to read {fhir_base}/.well-known/smart-configuration");
    }

    // Each client_auth needs its credential, and a credential it would not
    // use is refused rather than silently ignored.
    void check_client_auth(const section& s, const ehr_settings& e) {
        const auto& t = s.table;
        const auto* auth_node = t.get("client_auth");
        const auto& at = auth_node ? auth_node->source() : t.source();
        const std::string method = std::string(to_string(e.client_auth));
        const std::string stated = "client_auth = " + in_quotes(method) + (auth_node ? "" : " (the default)");
        const std::string& base = s.stem;
        const bool wants_secret = e.client_auth == client_auth_method::client_secret_basic ||
                                  e.client_auth == client_auth_method::client_secret_post;
        const bool wants_key = e.client_auth == client_auth_method::private_key_jwt;
        // An inline client_secret was already refused with this same advice.
        if (wants_secret && !t.contains("client_secret_file") && !t.contains("client_secret")) {
            error_at(
                at, s.label,
                stated + " needs client_secret_file = \"/etc/headachemd/" + base +
                    ".secret\" (or \"${CREDENTIALS_DIRECTORY}/" + base +
                    ".secret\"); for a key pair set client_auth = \"private_key_jwt\" and private_key_file");
        }
        if (wants_key && !t.contains("private_key_file")) {
            error_at(at, s.label,
                     stated + " needs private_key_file = \"/etc/headachemd/" + base +
                         "-key.pem\" (or \"${CREDENTIALS_DIRECTORY}/" + base + "-key.pem\")");
        }
        if (!wants_secret && t.contains("client_secret_file")) {
            error_at(
                t.get("client_secret_file")->source(), s.label,
                "client_secret_file is not used with " + stated +
                    "; remove it, or set client_auth = \"client_secret_basic\" or \"client_secret_post\"");
        }
        if (!wants_key && t.contains("private_key_file")) {
            error_at(t.get("private_key_file")->source(), s.label,
                     "private_key_file is not used with " + stated +
                         "; remove it, or set client_auth = \"private_key_jwt\"");
        }
        if (!wants_key && t.contains("key_id")) {
            error_at(t.get("key_id")->source(), s.label,
                     "key_id is used only with client_auth = \"private_key_jwt\"; got " + stated);
        }
        if (e.client_auth == client_auth_method::none && e.refresh_needs_confidential_client) {
            // eCW issues refresh tokens to confidential clients only, and the
            // daemon lives on refresh tokens.
            error_at(
                at, s.label,
                "client_auth = \"none\" (a public client) gets no refresh token from eClinicalWorks, which "
                "issues them to confidential clients only; use client_secret_basic or private_key_jwt");
        }
    }

    // ----- [ehr.bulk]

    // Every [ehr.bulk] key (current and next) is published in the one JWKS
    // the daemon serves at /.well-known/jwks.json, and a verifier picks the
    // key by kid (RFC 7517 §4.5: kids within a JWK Set should be distinct),
    // so one kid may name one key file only. The same file under the same
    // kid in two [[ehr]]s is one key, published once (one backend key pair
    // registered with two EHRs).
    void check_backend_kids(const std::vector<const toml::table*>& tables,
                            const std::vector<ehr_settings>& ehrs) {
        struct first_use {
            std::string where;
            int line;
            std::filesystem::path file;
        };
        std::map<std::string, first_use, std::less<>> seen;  // kid → its first key
        const auto use = [&](const toml::table& bulk, const std::string& label, std::string_view kid_key,
                             const std::string& kid, const std::filesystem::path& file) {
            const auto* node = bulk.get(kid_key);
            if (node == nullptr || kid.empty()) return;
            const std::string where = label + " " + std::string(kid_key);
            auto [it, inserted] = seen.emplace(kid, first_use{where, line_of(node->source()), file});
            if (inserted || it->second.file == file) return;
            error_at(node->source(), label,
                     std::string(kid_key) + " " + in_quotes(kid) + " is also the kid of " + it->second.where +
                         " (line " + std::to_string(it->second.line) + ", " + it->second.file.string() +
                         "), another key file; each key in the served JWKS needs its own kid");
        };
        for (std::size_t i = 0; i < ehrs.size() && i < tables.size(); ++i) {
            const auto& b = ehrs[i].bulk;
            const auto* n = tables[i]->get("bulk");
            if (!b || n == nullptr || n->as_table() == nullptr) continue;
            const std::string label = (ehrs[i].name.empty() ? "[[ehr]] #" + std::to_string(i + 1)
                                                            : "[[ehr]] " + in_quotes(ehrs[i].name)) +
                                      " [ehr.bulk]";
            use(*n->as_table(), label, "key_id", b->key_id, b->private_key_file);
            if (b->next_key)
                use(*n->as_table(), label, "next_key_id", b->next_key->key_id, b->next_key->private_key_file);
        }
    }

    // [ehr.bulk] (or bulk = { … }): read after resources, whose types are
    // the preset's _type and scopes.
    void read_bulk(const section& s, ehr_settings& e) {
        const auto* n = s.table.get("bulk");
        if (n == nullptr) return;
        const auto* t = n->as_table();
        if (t == nullptr) {
            type_error(s, "bulk", *n, "a table ([ehr.bulk] under its [[ehr]])");
            return;
        }
        const section b{*t, s.label + " [ehr.bulk]", s.stem + "-bulk"};
        check_keys(b, bulk_keys);
        auto bulk = bulk_preset(e.profile, e.resources).value_or(bulk_settings{});
        read_bulk_registration(b, e, bulk);
        read_bulk_export(b, e, bulk);
        read_bulk_timing(b, bulk);
        e.bulk = std::move(bulk);
    }

    // The backend app's registration: SMART Backend Services needs a
    // client id, a private key and the `kid` the JWKS publishes it under.
    void read_bulk_registration(const section& b, const ehr_settings& e, bulk_settings& bulk) {
        require(b, "client_id",
                " (the client id of the backend app's registration, separate from the patient app's)");
        if (auto v = get_nonempty_string(b, "client_id")) bulk.client_id = *v;
        require(b, "private_key_file",
                " (e.g. private_key_file = \"/etc/headachemd/" + b.stem +
                    "-key.pem\" or \"${CREDENTIALS_DIRECTORY}/" + b.stem +
                    "-key.pem\"; `headachemd-sync keygen --jwks` makes one)");
        if (auto v = get_path(b, "private_key_file")) bulk.private_key_file = *v;
        require(b, "key_id", " (the kid of the key in the JWKS registered at the EHR)");
        if (auto v = get_kid(b, "key_id")) bulk.key_id = *v;
        read_next_bulk_key(b, bulk);
        if (auto v = get_url(b, "jwks_url", detail::url_use::endpoint)) bulk.jwks_url = *v;
        if (auto v = get_choice(b, "algorithm", bulk_algorithms))
            bulk.algorithm = *v == "ES384" ? bulk_algorithm::es384 : bulk_algorithm::rs384;
        if (bulk.rs384_only && bulk.algorithm != bulk_algorithm::rs384)
            error_at(b.table.get("algorithm")->source(), b.label,
                     "algorithm = \"ES384\" is not accepted by " + e.profile +
                         ", which verifies RS384 assertions only; use algorithm = \"RS384\" with an RSA key "
                         "(`headachemd-sync keygen --jwks --alg RS384`)");
    }

    // RFC 7515 §4.1.4: kid is a string; it goes into every assertion's
    // header and must match the JWKS, so no spaces or controls that a copy
    // and paste could have added.
    std::optional<std::string> get_kid(const section& b, std::string_view key) {
        auto v = get_nonempty_string(b, key);
        if (!v) return std::nullopt;
        const bool printable = std::all_of(v->begin(), v->end(), [](char c) { return c > 0x20 && c < 0x7f; });
        if (printable && v->size() <= 256) return v;
        error_at(
            b.table.get(key)->source(), b.label,
            std::string(key) + " must be 1-256 printable characters without spaces (the kid in the JWKS)");
        return std::nullopt;
    }

    // Key rotation: next_private_key_file and next_key_id name the key that
    // signs next; both or neither. Its kid must differ from key_id: the EHR
    // picks the verifying key by the assertion's kid (RFC 7515 §4.1.4), so
    // two keys under one kid would fail half the token requests.
    void read_next_bulk_key(const section& b, bulk_settings& bulk) {
        const auto* file_node = b.table.get("next_private_key_file");
        const auto* kid_node = b.table.get("next_key_id");
        if (file_node == nullptr && kid_node == nullptr) return;
        if (file_node == nullptr || kid_node == nullptr) {
            const bool has_file = file_node != nullptr;
            error_at((has_file ? file_node : kid_node)->source(), b.label,
                     std::string(has_file ? "next_private_key_file" : "next_key_id") + " needs " +
                         (has_file ? "next_key_id" : "next_private_key_file") +
                         ": the next key is published under its own kid (both, or neither)");
            return;
        }
        auto file = get_path(b, "next_private_key_file");
        auto kid = get_kid(b, "next_key_id");
        if (!file || !kid) return;
        if (*kid == bulk.key_id) {
            error_at(kid_node->source(), b.label,
                     "next_key_id " + in_quotes(*kid) +
                         " is the kid of the current key (key_id); the next key needs its own kid, or the "
                         "EHR cannot tell the two keys apart");
            return;
        }
        bulk.next_key = next_bulk_key{std::move(*file), std::move(*kid)};
    }

    // What is exported: the level, the Group, _type, and the token's scopes.
    void read_bulk_export(const section& b, const ehr_settings& e, bulk_settings& bulk) {
        if (auto v = get_choice(b, "level", bulk_levels))
            bulk.level = *v == "system"    ? bulk_level::system
                         : *v == "patient" ? bulk_level::patient
                                           : bulk_level::group;
        if (bulk.group_only && bulk.level != bulk_level::group) {
            error_at(b.table.get("level")->source(), b.label,
                     "level = " + in_quotes(to_string(bulk.level)) + " is not offered by " + e.profile +
                         ", which exports a Group only; use level = \"group\" and group_id");
            bulk.level = bulk_level::group;  // one error: group_id is then checked as for a Group
        }
        if (bulk.level == bulk_level::group) {
            require(b, "group_id", " (the FHIR id of the Group to export; at eCW and Epic, the registry's)");
        } else if (b.table.contains("group_id")) {
            error_at(b.table.get("group_id")->source(), b.label,
                     "group_id is used only with level = \"group\"; got level = " +
                         in_quotes(to_string(bulk.level)));
        }
        if (auto v = get_nonempty_string(b, "group_id")) {
            if (detail::is_fhir_id(*v))
                bulk.group_id = *v;
            else
                error_at(b.table.get("group_id")->source(), b.label,
                         "group_id must be a FHIR id (letters, digits, '-' and '.', at most 64); got " +
                             in_quotes(*v));
        }
        if (read_bulk_types(b, bulk) && !b.table.contains("scopes")) {
            bulk.scopes.clear();
            for (const auto& t : bulk.types) bulk.scopes.push_back("system/" + t + ".read");
        }
        read_scopes(b, bulk.scopes, "system/<Type>.read for each type exported");
        for (const auto& required : bulk.required_scopes)
            if (std::find(bulk.scopes.begin(), bulk.scopes.end(), required) == bulk.scopes.end())
                bulk.scopes.push_back(required);
    }

    // types = ["Patient", …]: the _type list. True when it replaced the preset's.
    bool read_bulk_types(const section& b, bulk_settings& bulk) {
        const auto* n = b.table.get("types");
        if (n == nullptr) return false;
        const auto* a = n->as_array();
        if (a == nullptr || a->empty()) {
            error_at(n->source(), b.label,
                     "types must be a non-empty array of resource types, e.g. [\"Patient\", \"Condition\"]");
            return false;
        }
        std::vector<std::string> types;
        for (const auto& element : *a) {
            const auto* v = element.as_string();
            if (v == nullptr) {
                type_error(b, "each type", element, "a resource type name such as \"Observation\"");
                return false;
            }
            const std::string& type = v->get();
            if (std::find(known_resource_types.begin(), known_resource_types.end(), type) ==
                known_resource_types.end()) {
                error_at(element.source(), b.label,
                         "unknown resource type " + in_quotes(type) + type_hint(type));
                return false;
            }
            if (std::find(types.begin(), types.end(), type) != types.end()) {
                error_at(element.source(), b.label, "resource type " + in_quotes(type) + " is listed twice");
                return false;
            }
            types.push_back(type);
        }
        bulk.types = std::move(types);
        return true;
    }

    // A duration with an upper bound as well as a lower one.
    std::optional<std::chrono::seconds> get_bounded_duration(const section& s, std::string_view key,
                                                             std::chrono::seconds min,
                                                             std::chrono::seconds max, std::string_view why) {
        auto v = get_duration(s, key, min);
        if (v && *v > max) {
            error_at(s.table.get(key)->source(), s.label,
                     std::string(key) + " must be at most " + std::to_string(max.count()) + "s" +
                         std::string(why) + "; got " + std::to_string(v->count()) + "s");
            return std::nullopt;
        }
        return v;
    }

    void read_bulk_timing(const section& b, bulk_settings& bulk) {
        if (auto v = get_bounded_duration(b, "since_overlap", 0s, 24h * 7, " (7d)")) bulk.since_overlap = *v;
        if (auto v = get_bounded_duration(b, "interval", 1min, 24h * 365, " (365d)")) bulk.interval = *v;
        if (auto v = get_bounded_duration(b, "job_deadline", 1h, 24h * 30,
                                          " (30d: eCW keeps an export's files about 30 days)"))
            bulk.job_deadline = *v;
        if (auto v = get_bounded_duration(b, "max_retry_after", 1s, 24h, " (24h)")) {
            if (*v >= bulk.job_deadline)
                error_at(b.table.get("max_retry_after")->source(), b.label,
                         "max_retry_after (" + std::to_string(v->count()) +
                             "s) must be shorter than job_deadline (" +
                             std::to_string(bulk.job_deadline.count()) + "s), or one wait would end the job");
            else
                bulk.max_retry_after = *v;
        }
        // 4 KiB holds any real resource line; 32 MiB keeps one line within
        // the download's memory budget (issue 15: 64 MiB peak for a 1 GB file).
        if (auto v = get_int(b, "max_line_bytes", 4096, 32 << 20,
                             " (bytes; 32 MiB keeps a download within its memory budget)"))
            bulk.max_line_bytes = static_cast<std::size_t>(*v);
    }

    // scopes: an array of strings, or one space-separated string as in the
    // OAuth `scope` parameter.
    void read_scopes(const section& s, std::vector<std::string>& out, std::string_view at_least) {
        const auto* n = s.table.get("scopes");
        if (n == nullptr) return;
        std::vector<std::pair<std::string, const toml::node*>> items;
        if (const auto* str = n->as_string()) {
            const std::string& text = str->get();
            std::size_t i = 0;
            while (i < text.size()) {
                const auto start = text.find_first_not_of(' ', i);
                if (start == std::string::npos) break;
                const auto end = std::min(text.find(' ', start), text.size());
                items.emplace_back(text.substr(start, end - start), n);
                i = end;
            }
        } else if (const auto* a = n->as_array()) {
            for (const auto& element : *a) {
                if (const auto* v = element.as_string()) {
                    items.emplace_back(v->get(), &element);
                } else {
                    type_error(s, "each scope", element, "a string");
                    return;
                }
            }
        } else {
            type_error(s, "scopes", *n, "an array of strings or one space-separated string");
            return;
        }
        if (items.empty()) {
            error_at(n->source(), s.label, "scopes must not be empty (" + std::string(at_least) + ")");
            return;
        }
        std::vector<std::string> scopes;
        bool ok = true;
        for (auto& [scope, node] : items) {
            if (!is_scope_token(scope)) {
                error_at(node->source(), s.label,
                         "scope " + in_quotes(scope) +
                             " is not a valid OAuth scope (RFC 6749 §3.3: no spaces, quotes or backslashes)");
                ok = false;
            }
            scopes.push_back(std::move(scope));
        }
        if (ok) out = std::move(scopes);
    }

    // resources = ["Patient", …] replaces the preset's list; search_params
    // then replaces the preset's parameters of the types it names.
    void read_resources(const section& s, ehr_settings& e) {
        const auto& t = s.table;
        if (const auto* n = t.get("resources")) {
            const auto* a = n->as_array();
            if (a == nullptr) {
                type_error(s, "resources", *n,
                           "an array of resource types, e.g. [\"Patient\", \"Condition\"]");
            } else if (a->empty()) {
                error_at(n->source(), s.label, "resources must name at least one resource type");
            } else {
                std::vector<resource_setting> chosen;
                bool ok = true;
                for (const auto& element : *a) {
                    const auto* v = element.as_string();
                    if (v == nullptr) {
                        error_at(element.source(), s.label,
                                 "each resource must be a resource type name such as \"Observation\"; got " +
                                     std::string(type_name(element)) +
                                     " (per-type search parameters go in [ehr.search_params])");
                        ok = false;
                        continue;
                    }
                    const std::string& type = v->get();
                    // Any R4 type may be searched: a type HeadacheMD does
                    // not normalize is stored only for the [[view]]s that
                    // read it (issue 16; check-config warns when none does).
                    if (std::find(known_resource_types.begin(), known_resource_types.end(), type) ==
                            known_resource_types.end() &&
                        !normalize::is_r4_resource_type(type)) {
                        error_at(element.source(), s.label,
                                 "unknown resource type " + in_quotes(type) + type_hint(type) +
                                     " (or any FHIR R4 resource type a [[view]] reads)");
                        ok = false;
                        continue;
                    }
                    if (std::any_of(chosen.begin(), chosen.end(),
                                    [&](const auto& r) { return r.type == type; })) {
                        error_at(element.source(), s.label,
                                 "resource type " + in_quotes(type) + " is listed twice");
                        ok = false;
                        continue;
                    }
                    resource_setting r{type, {}};
                    for (const auto& preset : e.resources) {
                        if (preset.type == type) r.params = preset.params;
                    }
                    chosen.push_back(std::move(r));
                }
                if (ok) e.resources = std::move(chosen);
            }
        }
        const auto* params_node = t.get("search_params");
        if (params_node == nullptr) return;
        const auto* params = params_node->as_table();
        if (params == nullptr) {
            type_error(s, "search_params", *params_node,
                       "a table of resource type → parameters, e.g. search_params.Observation = "
                       "{ category = \"vital-signs\" }");
            return;
        }
        for (auto&& [key, value] : *params) {
            const std::string type(key.str());
            if (std::find(known_resource_types.begin(), known_resource_types.end(), type) ==
                    known_resource_types.end() &&
                !normalize::is_r4_resource_type(type)) {
                error_at(key.source(), s.label,
                         "search_params names unknown resource type " + in_quotes(type) + type_hint(type));
                continue;
            }
            auto target = std::find_if(e.resources.begin(), e.resources.end(),
                                       [&](const auto& r) { return r.type == type; });
            if (target == e.resources.end()) {
                error_at(key.source(), s.label,
                         "search_params." + type + " is set, but " + type +
                             " is not in resources, so it is never searched");
                continue;
            }
            if (auto p = read_params(s, type, value, e)) target->params = std::move(*p);
        }
    }

    std::optional<std::vector<std::pair<std::string, std::string>>> read_params(const section& s,
                                                                                const std::string& type,
                                                                                const toml::node& node,
                                                                                const ehr_settings& e) {
        const auto* table = node.as_table();
        if (table == nullptr) {
            type_error(s, "search_params." + type, node,
                       "a table of parameter = value, e.g. { category = \"vital-signs\" }");
            return std::nullopt;
        }
        std::vector<std::pair<std::string, std::string>> out;
        bool ok = true;
        for (auto&& [key, value] : *table) {
            const std::string name(key.str());
            const std::string where = "search_params." + type + "." + name;
            if (const auto* secret = find_secret_key(name)) {
                error_at(key.source(), s.label, secret_message(*secret, s.stem));
                ok = false;
                continue;
            }
            std::string reserved;
            if (name == "_count") reserved = "use page_size";
            if (name == "_lastUpdated") reserved = "use use_last_updated and last_updated_overlap";
            if (name == e.patient_param) reserved = "the daemon adds it from patient_param";
            if (e.page_param && name == *e.page_param) reserved = "the daemon adds it from page_param";
            if (!is_param_name(name)) {
                error_at(key.source(), s.label, where + " is not a valid search parameter name");
                ok = false;
                continue;
            }
            if (!reserved.empty()) {
                error_at(key.source(), s.label, where + " is set by the daemon itself; " + reserved);
                ok = false;
                continue;
            }
            std::vector<const toml::node*> values;
            if (const auto* a = value.as_array()) {
                for (const auto& element : *a) values.push_back(&element);
                if (values.empty()) {
                    error_at(value.source(), s.label, where + " must not be an empty array");
                    ok = false;
                }
            } else {
                values.push_back(&value);
            }
            for (const auto* v : values) {
                const auto* str = v->as_string();
                if (str == nullptr || str->get().empty()) {
                    error_at(v->source(), s.label,
                             where +
                                 " must be a non-empty string, or an array of them to repeat the parameter; "
                                 "got " +
                                 (str ? std::string("an empty string") : std::string(type_name(*v))));
                    ok = false;
                    continue;
                }
                out.emplace_back(name, str->get());
            }
        }
        if (!ok) return std::nullopt;
        return out;
    }

    // backfill_since: a TOML date (midnight UTC) or an offset date-time.
    void read_backfill_since(const section& s, ehr_settings& e) {
        const auto* n = s.table.get("backfill_since");
        if (n == nullptr) return;
        auto days_of = [](const toml::date& d) {
            return std::chrono::sys_days{std::chrono::year{d.year} / std::chrono::month{d.month} /
                                         std::chrono::day{d.day}};
        };
        if (const auto* d = n->as_date()) {
            e.backfill_since = std::chrono::sys_seconds{days_of(d->get())};
            return;
        }
        if (const auto* dt = n->as_date_time()) {
            const auto& v = dt->get();
            if (!v.offset) {
                error_at(n->source(), s.label,
                         "backfill_since needs a UTC offset (e.g. 2024-01-01T00:00:00Z) or a plain date "
                         "(2024-01-01); a local time is ambiguous");
                return;
            }
            e.backfill_since = std::chrono::sys_seconds{days_of(v.date)} + std::chrono::hours{v.time.hour} +
                               std::chrono::minutes{v.time.minute} + std::chrono::seconds{v.time.second} -
                               std::chrono::minutes{v.offset->minutes};
            return;
        }
        if (n->is_string()) {
            error_at(n->source(), s.label,
                     "backfill_since must be a TOML date without quotes, e.g. backfill_since = 2024-01-01");
            return;
        }
        type_error(s, "backfill_since", *n, "a date such as 2024-01-01");
    }

    patient_settings read_patient(const toml::table& t, std::size_t index,
                                  std::span<const std::string_view> ehrs) {
        patient_settings p;
        std::string label = "[[patient]] #" + std::to_string(index + 1);
        const auto* key_node = t.get("key");
        // The label shows the key only once it is known to be a valid key:
        // an invalid one may well be a name, which must not reach a log.
        if (key_node && key_node->is_string() &&
            !detail::identifier_problem("key", key_node->as_string()->get())) {
            label = "[[patient]] " + in_quotes(key_node->as_string()->get());
        }
        const section s{t, label};
        check_keys(s, patient_keys);
        require(s, "key", " (the patient's pseudonymous HeadacheMD key, never a name or MRN)");
        if (auto v = get_string(s, "key")) {
            if (auto problem = detail::identifier_problem("key", *v)) {
                error_at(
                    key_node->source(), s.label,
                    std::move(*problem) +
                        "; it is the pseudonymous HeadacheMD key that appears in logs, never a name or MRN");
            } else {
                p.key = *v;
            }
        }
        require(s, "ehr", " (the name of an [[ehr]] block)");
        if (auto v = get_string(s, "ehr")) {
            if (std::find(ehrs.begin(), ehrs.end(), *v) != ehrs.end()) {
                p.ehr = *v;
            } else {
                std::string message = "ehr " + in_quotes(*v) + " is not the name of any [[ehr]]";
                if (auto hint = did_you_mean(*v, ehrs, '"'); !hint.empty()) {
                    message += hint;
                } else if (!ehrs.empty()) {
                    message += "; defined: " + one_of(ehrs, '"');
                }
                error_at(t.get("ehr")->source(), s.label, std::move(message));
            }
        }
        if (auto v = get_string(s, "fhir_patient_id")) {
            if (detail::is_fhir_id(*v)) {
                p.fhir_patient_id = *v;
            } else {
                error_at(t.get("fhir_patient_id")->source(), s.label,
                         "fhir_patient_id must be a FHIR id: 1-64 characters from A-Z a-z 0-9 - . "
                         "(FHIR R4 datatypes, id)");
            }
        }
        return p;
    }

    // [[view]]: the name becomes part of a table name (view_<name>), so it
    // is held to lower-case letters, digits and '_': SQLite compares table
    // names case-insensitively, and "BP" and "bp" would be one table.
    view_settings read_view(const toml::table& t, std::size_t index) {
        view_settings v;
        std::string label = "[[view]] #" + std::to_string(index + 1);
        const auto* name_node = t.get("name");
        const bool valid_name =
            name_node && name_node->is_string() && detail::is_view_name(name_node->as_string()->get());
        if (valid_name) label = "[[view]] " + in_quotes(name_node->as_string()->get());
        const section s{t, label};
        check_keys(s, view_keys);
        require(s, "name", " (the table becomes view_<name>)");
        if (auto n = get_string(s, "name")) {
            if (auto problem = view_name_problem(*n))
                error_at(name_node->source(), s.label, *problem);
            else
                v.name = *n;
        }
        require(s, "file", " (the ViewDefinition JSON file)");
        if (auto p = get_path(s, "file")) v.file = *p;
        return v;
    }

    std::string file_;
    const env_lookup& env_;
    std::filesystem::path base_dir_;
    std::vector<config_error> errors_;
};

}  // namespace

parse_result parse_config(std::string_view toml_text, std::string_view file_name, const env_lookup& env) {
    return loader(file_name, env).run(toml_text);
}

parse_result load_config(const std::filesystem::path& file, const env_lookup& env) {
    const std::string name = file.string();
    // The config decides where the client secret and the refresh tokens are
    // sent (token_endpoint, fhir_base): anyone who may write it may collect
    // them, so it gets the same ownership and write rule as a secret file
    // (lib/files). A config file is a few KiB; the cap catches /dev/zero
    // and the wrong file alike.
    auto read =
        files::read_protected_file(file, files::file_kind::config, "config file", files::max_config_bytes);
    if (read.problem) {
        std::string message = read.problem->kind == files::problem_kind::missing
                                  ? "cannot read the config file: " + std::string(std::strerror(ENOENT))
                                  : read.problem->message();
        return std::vector<config_error>{config_error{name, 0, 0, std::move(message)}};
    }
    auto parsed = parse_config(*read.content, name, env);
    // A ca_file is a trust anchor for the token endpoint and the FHIR base:
    // anyone who may rewrite it can put their own CA there and read every
    // secret and token sent over "verified" TLS. It gets the config's rule
    // (owner, not writable by group or others; readable is fine, it holds
    // no secret). A file that is not there yet is left to the HTTP client,
    // which refuses to start without it.
    if (auto* cfg = std::get_if<config>(&parsed)) {
        std::vector<config_error> errors;
        for (const auto& e : cfg->ehrs) {
            if (!e.ca_file) continue;
            const auto ca = files::read_protected_file(*e.ca_file, files::file_kind::config, "CA file",
                                                       files::max_config_bytes);
            if (ca.problem && ca.problem->kind != files::problem_kind::missing)
                errors.push_back(config_error{
                    name, 0, 0, "[[ehr]] \"" + e.name + "\": ca_file: " + ca.problem->message()});
        }
        if (!errors.empty()) return errors;
    }
    return parsed;
}

std::optional<std::string> view_name_problem(std::string_view name) {
    if (!detail::is_view_name(name))
        return "name must be 1-48 characters of a-z, 0-9 and '_', starting with a letter (it becomes the "
               "table name view_<name>)";
    // view_definition is the table that records the views (schema 9)
    if (name == "definition")
        return "name \"definition\" is reserved: view_definition is HeadacheMD's own table";
    return std::nullopt;
}

}  // namespace headachemd::config
