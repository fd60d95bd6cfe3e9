// `doctor`: checks a SMART registration against what the server publishes
// and explains each problem in plain words with its fix (DESIGN.md, "EHR
// realities"; issue 4).
//
// Two layers:
// - Pure checks (checks.cpp): functions over values (a discovery document,
//   a parsed authorize URL, a file's stat result, a Date header, an HTTP
//   answer) that append findings. No I/O, no clock, no randomness.
// - Two drivers (driver.cpp): coroutines that fetch discovery and metadata,
//   optionally send one authorize request (never following a redirect), and
//   run the checks. Every request goes through the given transport, whose
//   deadlines bound it (lib/http: connect and per-phase timeouts).
//
// Contract: nothing here throws for bad input or a failing server; those are
// findings. No finding ever contains a secret, a client secret file's
// content, an authorization code or a token: the authorize probe's Location
// is reported by its path and its `error`/`error_description` only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/clock.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/smart/smart.hpp"

namespace headachemd::doctor {

// ok: checked and fine. info: worth knowing, not a problem. warning: may
// cause trouble, or could not be checked. error: will make enrollment or
// sync fail (or breaks a SHALL of SMART App Launch / RFC 6749).
enum class severity { ok, info, warning, error };
std::string_view to_string(severity s);

// The group a finding is printed under, in this order.
enum class topic { discovery, server, request, client, files, clock, authorize, bulk };
std::string_view to_string(topic t);

struct finding {
    severity level = severity::ok;
    topic area = topic::discovery;
    std::string what;  // one line: what was found
    std::string why;   // plain words: why it matters (may be empty for ok)
    std::string fix;   // what to do (empty when nothing is to be done)
    // An error the server can see in the request and may refuse it for
    // (listed among the likely causes of a rejection). False for problems
    // only the client suffers from, such as a guessable state.
    bool server_visible = true;
};

struct report {
    std::vector<finding> findings;
    // Neither the smart-configuration nor the CapabilityStatement could be
    // read: the server (or our route to it) is down, so little was checked.
    bool unreachable = false;

    std::size_t count(severity s) const;
    // No error and the server was reached. Warnings and infos do not fail a run.
    bool passed() const { return !unreachable && count(severity::error) == 0; }
};

using findings = std::vector<finding>;

// The report as `doctor` prints it: the findings grouped by topic (each
// not-ok one with its why and fix), then the counts. `color`: ANSI colors
// for a terminal; `width`: wrap at that many columns (0: one line per
// paragraph, easy to grep).
std::string render_report(const report& rep, bool color, std::size_t width);
using params = std::vector<std::pair<std::string, std::string>>;

// ---- What the server publishes ---------------------------------------------

// One GET as the driver saw it: the URL, and either the response or the
// transport failure.
struct fetched {
    std::string url;
    std::optional<http::response> response;
    std::optional<error> failure;
};

// The Bulk Data kick-off operations a CapabilityStatement names (Bulk Data
// Access IG v2.0.0, "Server Capability Documentation"): `export` on the
// Group resource (group-export), on Patient (patient-export), or on rest
// itself (system export, or either of the others by its definition).
struct export_operations {
    bool group = false;
    bool patient = false;
    bool system = false;
};
// From a CapabilityStatement's JSON; nullopt when it is not one.
std::optional<export_operations> parse_export_operations(std::string_view json);

struct server_facts {
    std::string fhir_base;
    std::optional<smart::configuration> smart;  // nullopt: no discovery at all
    std::string smart_source;                   // the URL the configuration came from
    bool from_well_known = false;               // false: CapabilityStatement oauth-uris fallback
    std::optional<fhir::capabilities> capability;
    // CapabilityStatement.implementation.url: where the server says its FHIR
    // base is (optional in FHIR R4).
    std::optional<std::string> implementation_url;
    // The well-known document's token_endpoint_auth_signing_alg_values_supported
    // (SMART App Launch 2.x, for private_key_jwt); nullopt when it does not
    // say (absent, or discovery came from the oauth-uris fallback).
    std::optional<std::vector<std::string>> signing_algs;
    std::optional<export_operations> exports;  // nullopt: no CapabilityStatement
};

// Reads {fhir_base}/.well-known/smart-configuration, falling back to the
// oauth-uris extension of {fhir_base}/metadata, and reports which worked.
// `metadata` may be null when it was not fetched.
server_facts interpret_discovery(std::string_view fhir_base, const fetched& well_known,
                                 const fetched* metadata, findings& out);

// The configured FHIR base (what enrollment sends as aud) against the base
// the server names in its CapabilityStatement, when it names one.
void check_base_against_server(std::string_view fhir_base, const server_facts& facts, findings& out);

// eClinicalWorks/healow knowledge (profile "eclinicalworks"): unlisted
// scopes are refused with a 403, Appointment lives in the healow Scheduling
// API, refresh tokens go to confidential clients only.
struct server_kind {
    bool eclinicalworks = false;
};
// The kind of an [[ehr]]'s server: from the preset its defaults came from.
server_kind kind_of(const config::ehr_settings& ehr);

// ---- Pure checks --------------------------------------------------------------

// `aud` must be exactly the FHIR base: same scheme, host, port and path, no
// trailing slash (SMART App Launch: the server compares it exactly).
void check_aud(std::optional<std::string_view> aud, std::string_view fhir_base, findings& out);

// Server side: S256 in code_challenge_methods_supported (SMART 2.x: SHALL
// include S256, SHALL NOT include plain).
void check_pkce_server(const smart::configuration& conf, findings& out);
// Request side: a 43-character S256 challenge with method S256.
void check_pkce_request(const std::string* challenge, const std::string* method, findings& out);

// Each requested scope against scopes_supported, and each patient/ or user/
// resource type against the types the CapabilityStatement serves.
void check_scopes(const std::vector<std::string>& requested, const smart::configuration& conf,
                  const fhir::capabilities* capability, server_kind kind, findings& out);

// offline_access requested, and the permission-offline capability present.
void check_offline(const std::vector<std::string>& requested, const smart::configuration& conf,
                   findings& out);

// The client's token endpoint authentication against
// token_endpoint_auth_methods_supported and the SMART capabilities.
void check_client_auth(config::client_auth_method method, const smart::configuration& conf, server_kind kind,
                       findings& out);

// https, or http on a loopback host (RFC 8252 §7.3); absolute; no fragment
// (RFC 6749 §3.1.2).
void check_redirect_uri(std::optional<std::string_view> redirect_uri, findings& out);

// SMART App Launch 2.x: state SHALL carry at least 122 bits of entropy.
void check_state(const std::string* state, findings& out);

// Parameters SMART App Launch and OAuth do not define, duplicates (RFC 6749
// §3.1), and OpenID Connect parameters such as nonce.
void check_parameters(const params& p, findings& out);

// A config's resource types against the types the server serves.
void check_resources(const std::vector<config::resource_setting>& resources,
                     const fhir::capabilities& capability, server_kind kind, findings& out);

// What stat() said about a secret or key file.
struct file_facts {
    std::filesystem::path path;
    bool exists = false;
    bool regular = false;
    bool readable = false;  // we could open it for reading
    bool empty = false;
    unsigned mode = 0;         // permission bits
    unsigned file_type = 0;    // st_mode & S_IFMT (after following symlinks)
    unsigned owner = 0;        // st_uid
    unsigned process_uid = 0;  // our effective uid, which the owner rule compares with
    std::uintmax_t size = 0;
};
// Inspects `path` (stat, following symlinks, and a trial open of a regular
// file only, so a FIFO cannot hang doctor; the content is never read into
// anything that is printed). The only I/O among the checks.
file_facts inspect_file(const std::filesystem::path& path);

// `secret`: a client secret, private key or vault key, judged by the one
// secret file rule of lib/files (owned by root or us, no group write, no
// access for others, not empty, at most 64 KiB). Otherwise (a CA file)
// readable is enough.
void check_file(const file_facts& f, std::string_view role, bool secret, findings& out);

// sync.toml itself under the config rule of lib/files: owned by root or us
// and not writable by group or others (it says where secrets are sent).
void check_config_file(const file_facts& f, findings& out);

// The server's Date header against our clock at the moment the answer
// arrived. Beyond 60 s: warning; beyond 300 s (the lifetime of a
// private_key_jwt assertion): error.
void check_clock(std::optional<std::string_view> date_header, std::chrono::system_clock::time_point local,
                 findings& out);
// IMF-fixdate (RFC 9110 §5.6.7), the form a server sends in Date.
std::optional<std::chrono::system_clock::time_point> parse_imf_fixdate(std::string_view v);

// The answer to one authorize request sent without following redirects.
// `earlier` are the findings of the other checks: their errors become the
// first likely causes of a rejection.
void interpret_authorize(const http::response& r, std::string_view redirect_uri, const findings& earlier,
                         server_kind kind, findings& out);

// ---- Bulk export registration ([ehr.bulk], issue 15) ---------------------------

// The configured assertion algorithm against the server's
// token_endpoint_auth_signing_alg_values_supported. Unlisted: a warning that
// it is unknown, not an error.
void check_bulk_algorithm(config::bulk_algorithm alg, const server_facts& facts, findings& out);

// The private key's own algorithm (RSA signs RS384, EC P-384 ES384) against
// the configured one.
void check_bulk_key_algorithm(config::bulk_algorithm configured, smart::jws_alg key, findings& out);

// The configured export level (Group, Patient or system $export) against the
// operations the CapabilityStatement names.
void check_bulk_export(const config::bulk_settings& bulk, const std::optional<export_operations>& ops,
                       findings& out);

// The answer to one SMART Backend Services token request (client_credentials
// with a private_key_jwt assertion) that asked for `requested`. `secrets` are
// the request's (the assertion), cut out of any server text. Nothing of the
// access token is ever put into a finding.
void interpret_backend_token(const http::response& r, const std::vector<std::string>& requested,
                             const config::bulk_settings& bulk, const smart::known_secrets& secrets,
                             findings& out);

// One key the registered JWKS URL ([ehr.bulk] jwks_url) must publish: its
// kid, the public JWK of its key file (smart::signing_key::public_jwk), and
// the config key that names it ("key_id" or "next_key_id").
struct expected_jwk {
    std::string kid;
    std::string public_jwk;
    std::string config_key;
};

// The answer to a GET of jwks_url: a JWK Set (RFC 7517 §5) listing each of
// `keys` under its kid with the same public key (RSA n and e, EC crv, x and
// y). A current key missing or different is an error (every token request
// fails); a next key missing is a warning (it must be published before it
// signs); any private member ("d" and the RSA CRT members) is an error. No
// server text is quoted: the body is the clinic's own page.
void interpret_published_jwks(std::string_view url, const http::response& r,
                              const std::vector<expected_jwk>& keys, findings& out);

// ---- Authorize URLs -----------------------------------------------------------

struct authorize_url_parts {
    std::string endpoint;  // scheme://authority/path, no query
    params query;          // decoded, in order, duplicates kept
    const std::string* get(std::string_view name) const;
};
result<authorize_url_parts> parse_authorize_url(std::string_view url);

// The scope list enrollment requests for an [[ehr]]: the configured scopes,
// then launch/patient, openid, fhirUser and offline_access where missing
// (issue 4: standalone launch with a patient context, the patient id from
// the id_token's fhirUser, and a refresh token).
std::vector<std::string> enrollment_scopes(const config::ehr_settings& ehr);
std::vector<std::string> split_scopes(std::string_view scope);

// ---- Drivers ----------------------------------------------------------------

struct config_check {
    const config::config* cfg = nullptr;  // for daemon-level files (token_key_file)
    config::ehr_settings ehr;
    std::optional<std::string> redirect_uri;  // the one registered at the EHR
    bool probe = true;                        // send one authorize request
};

// `doctor [EHR]`: every check for one [[ehr]].
boost::asio::awaitable<report> check_registration(http::transport& http, const config_check& in,
                                                  const clock& clk);

struct url_check {
    std::string authorize_url;
    std::optional<std::string> fhir_base;  // else derived from aud
    std::optional<std::string> client_id;  // from the config, when an [[ehr]] is known
    server_kind kind;
    bool probe = false;
};

// `doctor --authorize-url URL [--probe]`.
boost::asio::awaitable<report> check_authorize_url(http::transport& http, const url_check& in,
                                                   const clock& clk);

}  // namespace headachemd::doctor
