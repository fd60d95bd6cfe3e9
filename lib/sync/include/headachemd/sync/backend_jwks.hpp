// The public JWK Set of the Bulk Data backend keys, served by the daemon at
// /.well-known/jwks.json on its metrics listener, for the clinic's reverse
// proxy to expose as the JWKS URL the EHR registers (eClinicalWorks fetches
// the backend app's keys from one; SMART Backend Services "Registering a
// SMART Backend Service": the JWK Set URL).
//
// Contract
// - load_backend_jwks reads every [ehr.bulk] private_key_file and
//   next_private_key_file once; the daemon calls it at start-up and on a
//   config reload, never per request. The keys are dropped once their public
//   JWKs are written: the body holds public members only
//   (smart::public_jwk_set).
// - A key that cannot be read, or whose type does not sign the section's
//   `algorithm`, is an error naming the [[ehr]] and the file; the JWKS is
//   all or nothing, since a set missing a key fails that EHR's token calls.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "headachemd/config/config.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/smart/client_assertion.hpp"

namespace headachemd::sync {

// The path the JWKS is served at (RFC 8615 well-known prefix; the file
// name many JWKS URLs use). A fixed path, so the proxy's rule is one line.
inline constexpr std::string_view jwks_path = "/.well-known/jwks.json";

struct backend_jwks {
    std::size_t keys = 0;  // 0: no [ehr.bulk] key is configured
    std::string body;      // {"keys":[…]}; empty when keys == 0
};

// One key to publish: the config's kid and the key read from its file.
struct backend_key {
    std::string kid;
    std::filesystem::path file;  // for de-duplication: one file under one kid is one key
    smart::signing_key key;
};

// The pure part: the set of `keys` in order, a key listed twice under the
// same kid and file published once. (config::load refuses one kid on two
// files.)
backend_jwks build_backend_jwks(const std::vector<backend_key>& keys);

// Reads the keys of `cfg` (each [[ehr]]'s current key, then its next key)
// and builds the set.
result<backend_jwks> load_backend_jwks(const config::config& cfg);

}  // namespace headachemd::sync
