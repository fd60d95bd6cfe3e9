// Browser enrollment of one patient (SMART App Launch 2.x standalone
// launch: authorization code + PKCE S256), from the authorize URL to the
// refresh token in the vault.
//
// The flow, whoever catches the redirect:
//   begin_enrollment   discovery → PKCE pair, state, authorize URL, and the
//                      pending row to store (vault: pending_enrollment)
//   (the person signs in and approves in a browser; the EHR redirects)
//   complete_enrollment the redirect's parameters → pending row taken out by
//                      its state → code exchanged with the verifier → patient
//                      id checked → enrollment stored
//
// Contract
// - complete_enrollment stores nothing unless every check passes, and it
//   never changes another patient's enrollment. A state is good for one
//   redirect (its pending row is taken out on first use) and for 10 minutes.
// - Outcomes carry plain-words text for the person at the browser and for
//   the admin at the terminal, and the raw OAuth error; never a code, token,
//   state or verifier.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/smart/enrollment.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::sync {

// SMART leaves the lifetime of a pending authorization to the app; ten
// minutes covers a sign-in with a forgotten password, and no more.
inline constexpr std::chrono::minutes pending_lifetime{10};

struct enrollment_start {
    std::string authorize_url;          // to open in a browser; holds the state
    store::pending_enrollment pending;  // to store before the URL is shown
};

// Discovery (config endpoints win), then the authorize URL with
// response_type=code, client_id, redirect_uri, scope (enrollment_scope),
// state (256 random bits), aud = the exact FHIR base, code_challenge S256.
// Fails when the EHR has no redirect_uri configured or discovery finds no
// endpoints.
boost::asio::awaitable<result<enrollment_start>> begin_enrollment(http::transport& http,
                                                                  const config::ehr_settings& ehr,
                                                                  const config::patient_settings& patient,
                                                                  std::chrono::system_clock::time_point now);

struct enrollment_outcome {
    bool ok = false;
    std::string patient_key, ehr;          // empty when the state matched nothing
    std::string headline;                  // one line: what happened
    std::string explanation;               // what it means and what to do
    std::string raw_error;                 // the EHR's error code and description, verbatim
    std::vector<std::string> not_granted;  // requested scopes the EHR did not grant
    std::string error_kind;                // a short code for the audit log; empty when ok
    std::string audit_error;               // why the audit events could not be written; empty: they were
};

// Completes the enrollment that `callback` answers. `cfg` must list the
// patient; `now` decides expiry.
boost::asio::awaitable<enrollment_outcome> complete_enrollment(http::transport& http,
                                                               const config::config& cfg, store::vault& vault,
                                                               const smart::callback_params& callback,
                                                               std::chrono::system_clock::time_point now);

// The page the person's browser shows after the redirect: says plainly
// whether it worked and what to do next; holds no token, code or state.
std::string callback_page(const enrollment_outcome& outcome);

}  // namespace headachemd::sync
