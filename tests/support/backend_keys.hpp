// Signing keys of a test's backend app (SMART Backend Services, issue 15):
// generated once per test process, never stored in the repository.
#pragma once

#include "headachemd/smart/client_assertion.hpp"

namespace headachemd::test {

inline const smart::signing_key& backend_ec_key() {
    static const smart::signing_key k = smart::signing_key::generate(smart::jws_alg::es384);
    return k;
}

// eClinicalWorks verifies RS384 assertions only.
inline const smart::signing_key& backend_rsa_key() {
    static const smart::signing_key k = smart::signing_key::generate(smart::jws_alg::rs384, 2048);
    return k;
}

}  // namespace headachemd::test
