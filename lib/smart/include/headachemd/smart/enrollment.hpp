// Browser enrollment (SMART App Launch 2.x standalone launch, authorization
// code + PKCE), client side: the pure pieces between the authorize URL and
// the stored token. The network and the vault live in lib/sync/enroll.
//
// Contract: no function here logs, throws on bad input, or puts a code,
// token or state value into an error message.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "headachemd/core/result.hpp"

namespace headachemd::smart {

// What came back on the redirect URI (RFC 6749 §4.1.2 and §4.1.2.1).
struct callback_params {
    std::optional<std::string> code;
    std::optional<std::string> state;
    std::optional<std::string> error;  // the OAuth error code, e.g. access_denied
    std::optional<std::string> error_description;
};

// Reads the query of a redirect: a whole URL as pasted from the browser's
// address bar, a request target ("/callback?code=…"), or a bare query.
// Surrounding whitespace and quotes (copy and paste) are ignored. Fails
// when there is neither a code nor an error, or a parameter is repeated
// (RFC 6749 §3.1: parameters MUST NOT be included more than once).
result<callback_params> parse_callback(std::string_view url_or_query);

// The request target's path: "/cb?x=1" → "/cb"; "https://h/cb?x" → "/cb".
std::string path_of(std::string_view url_or_target);

// Compares in time independent of where the inputs differ (CRYPTO_memcmp),
// so the state check does not leak how much of a guess was right.
bool constant_time_equal(std::string_view a, std::string_view b);

// The scopes enrollment asks for: the configured ones, plus what a
// standalone patient launch with a refresh token needs (SMART App Launch
// 2.x §"Scopes"): launch/patient, openid fhirUser (the patient id in the
// id_token), offline_access. Order kept, duplicates dropped.
std::string enrollment_scope(const std::vector<std::string>& configured);

// Requested scopes the server did not grant (token response `scope`,
// RFC 6749 §5.1). An absent granted scope means "as requested" (§3.3).
std::vector<std::string> missing_scopes(std::string_view requested, std::string_view granted);

// The patient id from an id_token's `fhirUser` claim ("Patient/123" or an
// absolute URL ending in it). The id_token came over TLS straight from the
// token endpoint, so OpenID Connect Core §3.1.3.7 lets the TLS server check
// stand in for the signature check; nothing else in the token is trusted.
// nullopt when it is not a JWT, has no fhirUser, or fhirUser is not a Patient.
std::optional<std::string> patient_from_id_token(std::string_view id_token);

// A plain-words explanation of an OAuth error code from the callback
// (RFC 6749 §4.1.2.1) or the token endpoint (§5.2), with what to do. Any
// code that is not one of those (a transport failure, an unknown code)
// gets the "does not know" text.
std::string explain_oauth_error(const error_code& code);
// The same for the text of an `error` parameter as the redirect carried it.
std::string explain_oauth_error(std::string_view code);

// An id usable as a FHIR logical id (FHIR R4 §2.24.0.1: [A-Za-z0-9\-\.]{1,64}).
bool valid_fhir_id(std::string_view id);

}  // namespace headachemd::smart
