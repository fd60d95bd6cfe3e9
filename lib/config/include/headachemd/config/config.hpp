// sync.toml → a validated, fully defaulted config.
//
// Contract: `parse_config` and `load_config` return either a config in
// which every field holds its final value (profile presets applied, each
// explicit key overriding its preset, paths expanded), or every error found
// in the text, each naming file:line:column and saying what would be valid.
// They never throw for bad input (only std::bad_alloc), never log, and
// never touch the network. `load_config` reads the one file it is given;
// no other file (secret files, CA files, databases) is opened here, so a
// path that does not exist yet is not an error at this stage.
//
// Secrets (client secret, private key, token key) are never accepted in the
// config text: only paths to files or systemd credentials (DESIGN.md,
// "Security model"). No error message echoes the value of a rejected secret.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace headachemd::config {

struct daemon_settings {
    std::filesystem::path database = "/var/lib/headachemd/headache.db";  // analytics DB (analysts read it)
    std::filesystem::path vault = "/var/lib/headachemd/vault.db";        // tokens and audit, mode 0600
    std::string log_level = "info";   // trace | debug | info | warn | warning | error | critical | off
    std::string log_format = "auto";  // auto | journald | text | json
    std::chrono::seconds default_interval{std::chrono::hours{6}};  // each [[ehr]]'s `interval` default
    std::optional<std::string> callback_listen;           // "host:port" of the enroll redirect listener
    std::optional<std::filesystem::path> token_key_file;  // vault encryption key (issue 5)
    // "host:port" of the Prometheus /metrics and /healthz listener; loopback
    // only (plain HTTP, no authentication). Port 0: an ephemeral port, named
    // in the log. nullopt: no listener.
    std::optional<std::string> metrics_listen;
    // Both listeners (callback_listen, metrics_listen) speak plain HTTP
    // without authentication, so each must be on a loopback host unless this
    // is set: for a TLS reverse proxy on another machine, by explicit choice.
    bool allow_non_loopback_listen = false;
    // Days an audit event (vault.db audit_event) is kept before the purge
    // may delete it. HIPAA (45 CFR 164.316(b)(2)(i)) requires policies,
    // procedures and records of required actions, such as audit reviews, to
    // be retained 6 years: 6 x 365 = 2190 days. Shorter only where a
    // clinic's own records policy says so.
    int audit_retention_days = 2190;

    bool operator==(const daemon_settings&) const = default;
};

// [privacy] identifiers: what the analytics DB may hold about a patient.
// none (default): birth year and sex only. minimal: also the FHIR patient id.
enum class identifier_policy { none, minimal };

struct privacy_settings {
    identifier_policy identifiers = identifier_policy::none;

    bool operator==(const privacy_settings&) const = default;
};

// How the client authenticates at the token endpoint (SMART App Launch,
// "confidential clients"; RFC 6749 §2.3.1; RFC 7523 for private_key_jwt).
enum class client_auth_method { client_secret_basic, client_secret_post, private_key_jwt, none };

// The TOML spelling of a method: "client_secret_basic", …
std::string_view to_string(client_auth_method method);

// The FHIR resource types the normalizer turns into tables.
inline constexpr std::array<std::string_view, 7> known_resource_types{
    "Patient", "Condition", "MedicationRequest", "Appointment", "Encounter", "Observation", "Procedure"};

// One resource type to search, with the extra search parameters this EHR
// needs for it (Epic: Observation needs `category`). A name may repeat:
// FHIR ANDs repeated parameters, and a comma inside one value ORs.
struct resource_setting {
    std::string type;
    std::vector<std::pair<std::string, std::string>> params;

    bool operator==(const resource_setting&) const = default;
};

// [ehr.bulk]: FHIR Bulk Data export of this EHR's Group (issue 15), with
// SMART Backend Services (client_credentials and a private_key_jwt
// assertion). A separate registration from the patient-facing app: its own
// client id, key pair and `kid`, published as a JWKS the EHR fetches.
enum class bulk_level { group, patient, system };  // Group/[id]/$export, Patient/$export, $export
enum class bulk_algorithm { rs384, es384 };        // the assertion's JWS alg (SMART Backend Services)
std::string_view to_string(bulk_level level);
std::string_view to_string(bulk_algorithm alg);

// Key rotation: the key that signs next. Its public key is published in
// the JWKS beside the current one, so the EHR has fetched it before it
// signs (docs/admin/configuration.md "Rotating the key").
struct next_bulk_key {
    std::filesystem::path private_key_file;  // next_private_key_file
    std::string key_id;                      // next_key_id: differs from key_id
    bool operator==(const next_bulk_key&) const = default;
};

struct bulk_settings {
    std::string client_id;                   // the backend app's registration
    std::filesystem::path private_key_file;  // PEM; a file or "${CREDENTIALS_DIRECTORY}/…"
    std::string key_id;                      // the JWS `kid`, as in the published JWKS
    std::optional<next_bulk_key> next_key;   // published, never used to sign
    // The JWK Set URL registered with the backend app (eCW requires one):
    // the clinic's proxy in front of the daemon's /.well-known/jwks.json.
    // Only `doctor` reads it, to check that the EHR finds the keys there.
    std::optional<std::string> jwks_url;
    bulk_algorithm algorithm = bulk_algorithm::rs384;
    bulk_level level = bulk_level::group;
    std::string group_id;             // level = group: the FHIR id of the Group (eCW: the registry)
    std::vector<std::string> types;   // _type; the preset: the [[ehr]]'s resource types
    std::vector<std::string> scopes;  // the token request's; the preset: system/<Type>.read each
    // _since = the last transactionTime minus this (a server's clock and
    // its indexing lag; resources seen twice are upserts, not duplicates).
    std::chrono::seconds since_overlap{300};
    std::chrono::seconds interval{std::chrono::hours{24}};  // between the ends of two exports
    // The longest Retry-After a status poll honours (Oracle Health has sent
    // hours); a longer one is capped, not obeyed.
    std::chrono::seconds max_retry_after{std::chrono::hours{1}};
    // The whole job from kick-off to release (Epic exports have taken days).
    std::chrono::seconds job_deadline{std::chrono::hours{24 * 3}};
    // One NDJSON line (one resource) longer than this is an error for that
    // line, not for the file: attachments can make lines huge, and the
    // download's memory is bounded by it.
    std::size_t max_line_bytes = std::size_t{8} << 20;

    // EHR facts the profile preset sets, not config keys.
    bool group_only = false;  // eCW and Epic export a Group (a registry) only
    bool rs384_only = false;  // eCW verifies RS384 assertions only
    // Scopes added to every token request even when `scopes` is given:
    // eCW wants system/Group.read in every bulk token request.
    std::vector<std::string> required_scopes;

    bool operator==(const bulk_settings&) const = default;
};

struct ehr_settings {
    std::string name;     // [A-Za-z0-9._-], ≤ 64; stored in every row's `ehr` column
    std::string profile;  // "eclinicalworks" | "epic" | "generic": the preset the defaults came from
    // https://…, no trailing slash, no query. It is SMART's `aud`, compared
    // exactly by the server. http:// only for loopback (127.0.0.0/8, [::1], localhost).
    std::string fhir_base;
    bool discovery = true;                          // read {fhir_base}/.well-known/smart-configuration
    std::optional<std::string> authorize_endpoint;  // overrides discovery
    std::optional<std::string> token_endpoint;      // overrides discovery; required without it
    std::string client_id;
    // RFC 7009, where `unenroll` revokes a refresh token; overrides discovery.
    std::optional<std::string> revocation_endpoint;
    // The redirect URI registered for this app at the EHR, sent verbatim at
    // /authorize and /token. Browser enrollment needs it; it must reach
    // `enroll --listen`, the daemon's callback_listen (e.g. through the
    // clinic's reverse proxy), or a page whose URL the person pastes back.
    std::optional<std::string> redirect_uri;
    std::optional<std::filesystem::path> client_secret_file;  // client_secret_basic / _post
    std::optional<std::filesystem::path> private_key_file;    // private_key_jwt (PEM)
    std::optional<std::string> key_id;                        // JWS `kid` for private_key_jwt
    client_auth_method client_auth = client_auth_method::client_secret_basic;
    std::vector<std::string> scopes;
    std::optional<std::filesystem::path> ca_file;  // extra trust anchor beside the system CAs
    std::vector<resource_setting> resources;       // in the order they are synced
    std::string patient_param = "patient";         // search parameter naming the patient
    std::optional<int> page_size;                  // sent as _count; nullopt: not sent
    std::optional<std::string> page_param;         // eCW's non-standard paging parameter ("page")
    bool use_last_updated = true;  // incremental _lastUpdated search where the server declares it
    std::chrono::seconds last_updated_overlap{300};  // _lastUpdated=gt{cursor − overlap}
    int requests_per_minute = 600;                   // token and FHIR calls both count
    int max_concurrent = 4;                          // patients synced at once
    std::chrono::seconds interval{std::chrono::hours{6}};
    std::chrono::seconds reconcile_every{std::chrono::hours{24 * 7}};  // full pull that finds deletes
    // Between full pulls, the _summary=count check that notices deletes runs
    // at most this often per patient and type (issue 17); 0: every pass.
    std::chrono::seconds count_check_every{std::chrono::hours{24}};
    std::optional<std::chrono::sys_seconds> backfill_since;  // first sync starts here (UTC)
    std::chrono::seconds refresh_token_lifetime{0};          // 0: unknown; eCW 90 days
    // DESIGN "Tokens": a refresh token that would lapse within this time is
    // renewed even when no sync is due, so an idle patient does not lapse.
    std::chrono::seconds keepalive_before{std::chrono::hours{24 * 14}};
    bool refresh_token_rotates = false;     // eCW: single-use refresh tokens
    std::chrono::seconds http_timeout{30};  // deadline of each whole request (issue 12, defect 7)
    // What a server sends is data, never trusted (issue 12): bounds on what
    // an EHR can make one pass do. Reaching one is a recorded failure of
    // that patient's job (exit 75), never a sleep or a loop.
    // The longest Retry-After (RFC 9110 §10.2.3) the engine waits out. A
    // longer one ends the EHR's remaining jobs as "rate-limited until T";
    // `run` starts them again at T. eCW's budget is per minute and a
    // throttled Epic asks for seconds, so 5 minutes is never legitimately hit.
    std::chrono::seconds max_retry_after{300};
    // Pages of one search (next links followed, empty pages included).
    // 2000 pages at eCW's fixed page or _count = 100 hold 40,000–200,000
    // resources of one type for one patient; the longest outpatient records
    // hold a few thousand.
    int max_pages_per_search = 2000;
    // Resources (all entries, every type) one patient's job reads in one pass.
    int max_resources_per_patient = 200000;

    // EHR behaviour the profile preset knows, not config keys (DESIGN.md
    // "EHR realities": per-EHR settings, not branches in the code).
    // The rate limiter counts calls per wall-clock minute instead of a
    // token bucket: eCW's 250 calls a minute are counted that way.
    bool rate_window_fixed_minute = false;
    // A 429 or 503 without Retry-After waits until the next minute
    // boundary instead of backing off: eCW sends no Retry-After, and its
    // budget refills at the minute.
    bool bare_429_waits_for_minute = false;
    // The token endpoint verifies private_key_jwt assertions signed with
    // RS384 only, so an EC key (ES384) is refused at start-up rather than
    // at every refresh: eCW's backend-services guide lists RS384 alone.
    bool assertion_rs384_only = false;
    // Refresh tokens go to confidential clients only, so client_auth =
    // "none" is a configuration error: the daemon lives on refresh tokens.
    bool refresh_needs_confidential_client = false;

    // [ehr.bulk]; nullopt: this EHR is synced per patient only.
    std::optional<bulk_settings> bulk;

    bool operator==(const ehr_settings&) const = default;
};

struct patient_settings {
    // The pseudonymous HeadacheMD key: [A-Za-z0-9._-], 1–64 characters. It
    // appears in logs, `status` and every row's patient_key, so it must never
    // be a name, an MRN or anything else that identifies the person.
    std::string key;
    std::string ehr;                             // an [[ehr]] name
    std::optional<std::string> fhir_patient_id;  // else learnt from the token response at enrollment

    bool operator==(const patient_settings&) const = default;
};

// [[view]]: a SQL on FHIR v2 ViewDefinition materialized as table
// view_<name> in headache.db (issue 16). The file is compiled when the
// store opens (and by check-config), not here: config parsing reads no
// file but the config itself.
struct view_settings {
    std::string name;            // ^[a-z][a-z0-9_]{0,47}$, unique: the table is view_<name>
    std::filesystem::path file;  // the ViewDefinition JSON; relative to sync.toml's directory

    bool operator==(const view_settings&) const = default;
};

struct config {
    daemon_settings daemon;
    privacy_settings privacy;
    std::vector<ehr_settings> ehrs;
    std::vector<patient_settings> patients;
    std::vector<view_settings> views;
    std::filesystem::path file;  // where the config came from, as given

    // The [[ehr]] with this name, or nullptr. The pointer lives as long as
    // this config and its `ehrs` are not modified.
    const ehr_settings* find_ehr(std::string_view name) const;

    bool operator==(const config&) const = default;
};

struct config_error {
    std::string file;
    int line = 0;    // 1-based; 0 when the error concerns the whole file
    int column = 0;  // 1-based; 0 when the error concerns the whole file
    std::string message;

    // "sync.toml:12:5: [[ehr]] \"ecw\": fhir_base must be https:// …", or
    // "sync.toml: cannot read …" when line is 0. Always one printable line:
    // control characters in the file name or message (a value quoted back)
    // are escaped ("\n", "\r", "\x1b").
    std::string to_string() const;

    bool operator==(const config_error&) const = default;
};

// Looks up an environment variable for "${NAME}" in path values; nullopt
// when unset. Injected so that tests need not change the process environment.
using env_lookup = std::function<std::optional<std::string>(std::string_view name)>;

// std::getenv. An empty value counts as unset.
std::optional<std::string> process_environment(std::string_view name);

using parse_result = std::variant<config, std::vector<config_error>>;

// Parses and validates TOML text. `file_name` labels the errors and is kept
// in config::file; a relative path in the text is resolved against its
// directory (the directory of sync.toml, not the working directory, which
// is / under systemd). Errors come sorted by position. A TOML syntax error
// stops toml++ at the first one, so it is reported alone.
parse_result parse_config(std::string_view toml_text, std::string_view file_name,
                          const env_lookup& env = process_environment);

// Reads `file` and parses it. An unreadable file gives one error naming it,
// and so does a file the config rule of lib/files refuses: not a regular
// file (after following symlinks), over 1 MiB, writable by group or others,
// or owned by neither root nor the process's user (whoever may write the
// config decides where secrets and tokens are sent). Every command loads
// its config through here.
parse_result load_config(const std::filesystem::path& file, const env_lookup& env = process_environment);

// The defaults of a profile preset, before any explicit key. nullopt for an
// unknown profile. name, fhir_base and client_id are empty.
std::optional<ehr_settings> profile_preset(std::string_view profile,
                                           std::chrono::seconds default_interval = std::chrono::hours{6});

// The [ehr.bulk] defaults of a profile for an [[ehr]] syncing `resources`
// (types and scopes follow them). nullopt for an unknown profile. The
// registration (client_id, private_key_file, key_id, group_id) is empty.
std::optional<bulk_settings> bulk_preset(std::string_view profile,
                                         const std::vector<resource_setting>& resources);

inline constexpr std::array<std::string_view, 3> known_profiles{"eclinicalworks", "epic", "generic"};

// "90s", "30m", "6h", "7d", or a sum such as "1h30m". nullopt when the text
// is not of that form or exceeds 100 years.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// Why `name` cannot name a [[view]] (its table is view_<name>), or nullopt
// when it can: ^[a-z][a-z0-9_]{0,47}$ (lower case only, since SQLite
// compares table names without case) and not "definition" (view_definition
// is HeadacheMD's own table). The config and `ingest --view` share it.
std::optional<std::string> view_name_problem(std::string_view name);

}  // namespace headachemd::config
