// SMART App Launch 2.x, client side, as pure functions over bytes.
//
// Contract: parsers take the response body as received and return values or
// a headachemd::error; they never throw on bad input, and error messages
// never contain token values.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "headachemd/core/result.hpp"
#include "headachemd/smart/client_assertion.hpp"

namespace headachemd::smart {

// {fhir_base}/.well-known/smart-configuration (SMART App Launch 2.x §
// "Conformance"), or the oauth-uris extension of the CapabilityStatement.
struct configuration {
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::optional<std::string> revocation_endpoint;
    std::vector<std::string> token_endpoint_auth_methods_supported;
    std::vector<std::string> scopes_supported;
    std::vector<std::string> code_challenge_methods_supported;
    std::vector<std::string> capabilities;
    // The JWS algorithms the token endpoint verifies a private_key_jwt
    // assertion with (SMART App Launch 2.x); nullopt when the document does
    // not say, which is not the same as an empty list.
    std::optional<std::vector<std::string>> token_endpoint_auth_signing_alg_values_supported;
};

result<configuration> parse_configuration(std::string_view json);
// Fallback for servers without the well-known document: the extension
// http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris.
result<configuration> parse_capability_oauth_uris(std::string_view json);

// What a token response may hold, in bytes. A value over its cap is data
// from a broken or hostile server, refused before anything uses it (docs/dev/
// testing.md "Fault matrix"). Real EHR access tokens are JWTs of a few KiB (Epic's are
// the largest we know, about 2-3 KiB); 16 KiB leaves room for that and stays
// far below what an HTTP header can carry (Beast refuses a field value over
// 64 KiB with "field value too large", and many servers 8 KiB of headers).
struct token_caps {
    static constexpr std::size_t access_token = 16 * 1024;
    static constexpr std::size_t refresh_token = 16 * 1024;  // stored in the vault, sent in a form body
    static constexpr std::size_t id_token = 16 * 1024;
    static constexpr std::size_t scope = 8 * 1024;         // dozens of per-type scopes fit
    static constexpr std::size_t patient = 64;             // FHIR R4 id: [A-Za-z0-9.-]{1,64}
    static constexpr std::size_t error_code = 64;          // RFC 6749 §5.2 codes are short words
    static constexpr std::size_t error_description = 200;  // after sanitize_server_text
};

// A successful token endpoint answer (RFC 6749 §5.1 plus SMART's `patient`).
// Every field holds a value that passed its check (see parse_token_response).
struct token_response {
    std::string access_token;
    std::string token_type;
    std::optional<std::chrono::seconds> expires_in;
    std::optional<std::string> refresh_token;  // present when the server rotates
    std::string scope;
    std::optional<std::string> patient;
    std::optional<std::string> id_token;
    // The answer had a refresh_token that is not one (empty, whitespace,
    // a control character, over its cap): it is left out of refresh_token
    // and the caller keeps the token it has, and should log a warning.
    bool refresh_token_malformed = false;
};

// Secret values the caller sent in the request (the refresh token or code,
// the client secret, a client assertion, a PKCE verifier). A token endpoint
// may echo its request in error_description; these are cut out of any text
// taken from its answer. Empty strings are ignored.
using known_secrets = std::vector<std::string_view>;

// Server free text made fit to store and print (STYLE "what a server sends
// is data"): every known secret (also in its form-encoded spelling) and
// every token-shaped run (20 or more of [A-Za-z0-9._~+/=-] holding a digit,
// an upper-case letter, '+' or '=', so plain words like
// "unsupported_grant_type" and most URLs stay readable) becomes "<redacted>"; each byte
// outside printable ASCII and the backslash are escaped (\xNN, \\); the
// result is at most `max` bytes plus "...". Never throws on any input.
std::string sanitize_server_text(std::string_view text, const known_secrets& secrets = {},
                                 std::size_t max = token_caps::error_description);

// True for an RFC 6749 §5.2 error code we keep as an error's code: 1 to
// token_caps::error_code NQSCHAR (%x20-21 / %x23-5B / %x5D-7E) without a
// space or a backslash, and not token-shaped.
bool valid_oauth_error_code(std::string_view code);

// Parses the token endpoint's answer. Never throws; messages never hold a
// token value.
//  - An RFC 6749 §5.2 error becomes an error whose code is the OAuth error
//    code ("invalid_grant", "invalid_client", …; "invalid_error_code" when
//    the server's code is malformed, see valid_oauth_error_code) and whose
//    message carries error_description through sanitize_server_text with
//    `secrets`.
//  - access_token must be 1 to token_caps::access_token characters of
//    RFC 6750 §2.1 b64token (it goes into an Authorization header as is:
//    a CR, LF, space or control character must never be sent); token_type
//    must be Bearer (case-insensitive); patient must be a FHIR id; scope
//    NQCHAR words and spaces (RFC 6749 §3.3); id_token base64url and dots;
//    each within its cap. Else the error is "bad_token_response".
//  - refresh_token must be 1 to token_caps::refresh_token VSCHAR (RFC 6749
//    Appendix A.17, %x20-7E) neither starting nor ending with a space; else
//    it is absent and refresh_token_malformed is set. Some servers send ""
//    when they do not rotate: that must never replace a stored token.
result<token_response> parse_token_response(int http_status, std::string_view body,
                                            const known_secrets& secrets = {});

// A 2xx answer that parse_token_response refused (an access token over its
// cap, another field malformed) may still carry the rotated refresh token:
// with single-use refresh tokens the server has already spent the old one,
// so dropping the new one would strand the patient. Returns it when the
// answer is a 2xx JSON object without an `error` and its refresh_token is
// well-formed (as parse_token_response checks it); else nullopt.
std::optional<std::string> rotated_refresh_token(int http_status, std::string_view body);

enum class client_auth { client_secret_basic, client_secret_post, none, private_key_jwt };

struct client_credentials {
    std::string client_id;
    std::string client_secret;  // empty for a public client
    client_auth auth = client_auth::client_secret_basic;
    // private_key_jwt: the key that signs every assertion, and the `kid`
    // the EHR registered it under (empty: no kid header).
    std::shared_ptr<const signing_key> key{};
    std::string key_id{};
};

// Where and when a token request goes. private_key_jwt signs both into a
// fresh assertion (aud = the token URL, exp from `now`); the secret-based
// methods ignore it, so callers of those may leave it empty.
struct token_call {
    std::string_view token_endpoint;
    std::chrono::system_clock::time_point now{};
};

// The headers and form body of a token request (RFC 6749 §6 refresh).
struct token_request {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  // application/x-www-form-urlencoded
    // Every secret value this request carries (the refresh token or code,
    // the PKCE verifier, the client secret, the client assertion, the Basic
    // credentials): what must be cut out of the server's answer text if it
    // echoes the request (parse_token_response's `secrets`).
    std::vector<std::string> secrets;
    known_secrets secret_views() const { return {secrets.begin(), secrets.end()}; }
};

// With private_key_jwt the body carries client_id, client_assertion_type
// (RFC 7523 jwt-bearer) and a new client_assertion on every call: SMART
// App Launch and eClinicalWorks refuse a reused jti. Throws
// std::invalid_argument when private_key_jwt lacks the key or the token
// endpoint (a caller bug).
token_request make_refresh_request(std::string_view refresh_token, const client_credentials& creds,
                                   const token_call& call = {});

// --- SMART Backend Services (client_credentials) -------------------------

// The token request of a backend app (SMART App Launch 2.x "SMART Backend
// Services", RFC 6749 §4.4): grant_type=client_credentials, the `scope`
// (system/ scopes, space-separated, as the config holds them) and a fresh
// private_key_jwt assertion, the only client authentication Backend
// Services defines. No refresh token comes back: the bulk export asks again
// when its access token (about five minutes) runs out. Throws
// std::invalid_argument, a caller bug, when creds.auth is not
// private_key_jwt, when the key or the token endpoint is missing, or when
// `scope` is empty (the server would grant its own default, which may
// exceed what the clinic registered).
token_request make_backend_token_request(std::string_view scope, const client_credentials& creds,
                                         const token_call& call);

// --- Token revocation (RFC 7009) -----------------------------------------

// POST to the revocation endpoint: token=…&token_type_hint=refresh_token,
// with the same client authentication as the token endpoint (RFC 7009 §2.1:
// "the client also includes its authentication credentials as described in
// Section 2.3 of RFC 6749"). A private_key_jwt assertion's aud stays the
// token endpoint (`call.token_endpoint`), as SMART App Launch defines it;
// the revocation URL is the caller's. Throws as make_refresh_request.
token_request make_revocation_request(std::string_view refresh_token, const client_credentials& creds,
                                      const token_call& call = {});

// The revocation endpoint's answer: 200 is revoked (also for a token the
// server did not know, RFC 7009 §2.2). Anything else is an error whose code
// is the OAuth error ("unsupported_token_type", "invalid_client", …) or
// "http_NNN", and whose message never holds the token.
result<ok_t> parse_revocation_response(int http_status, std::string_view body);

// --- Authorization code + PKCE (SMART App Launch 2.x, RFC 7636) ----------

struct pkce_pair {
    std::string verifier;   // 43 characters of base64url (32 random bytes)
    std::string challenge;  // BASE64URL(SHA-256(verifier)), method S256
};

// SMART 2.x requires S256; servers SHALL NOT support plain.
pkce_pair make_pkce();
std::string pkce_challenge(std::string_view verifier);

// 32 random bytes as base64url: far above the 122 bits SMART asks of state.
std::string random_state();

struct authorize_request {
    std::string authorization_endpoint;
    std::string client_id;
    std::string redirect_uri;
    std::string scope;
    std::string state;
    std::string aud;  // the exact FHIR base, no trailing slash
    std::string code_challenge;
};

std::string authorize_url(const authorize_request& r);

token_request make_code_exchange_request(std::string_view code, std::string_view redirect_uri,
                                         std::string_view code_verifier, const client_credentials& creds,
                                         const token_call& call = {});

// The access token of one patient, in memory only.
class access_token_state {
public:
    // Refresh this long before expires_in runs out (DESIGN.md, "Tokens").
    static constexpr std::chrono::seconds refresh_margin{60};

    // True while the token has more than the margin of life left. The
    // margin is refresh_margin, or half the token's lifetime when that is
    // shorter: a server issuing 30-second tokens would otherwise have every
    // request refresh (and spend a single-use refresh token).
    bool usable(std::chrono::system_clock::time_point now) const;
    void set(const token_response& t, std::chrono::system_clock::time_point now);
    // A token kept from an earlier refresh (the vault, issue 17): its
    // lifetime is unknown, so the full refresh_margin applies.
    void restore(std::string token, std::chrono::system_clock::time_point expires_at);
    void invalidate() { token_.clear(); }
    const std::string& token() const { return token_; }
    std::chrono::system_clock::time_point expires_at() const { return expires_at_; }

private:
    std::string token_;
    std::chrono::system_clock::time_point expires_at_{};
    std::chrono::system_clock::duration margin_ = refresh_margin;
};

}  // namespace headachemd::smart
