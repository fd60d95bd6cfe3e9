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
#include "headachemd/store/audit.hpp"
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

// What store_enrollment did: `stored` false means the vault refused the
// enrollment (nothing changed, `store_error` says why); `audit_error` not
// empty means the enrollment is stored but its audit events are not.
struct stored_enrollment {
    bool stored = false;
    std::string store_error;
    std::string audit_error;
};

// The one place a new enrollment's refresh token is written into the vault
// (issue 14: browser enrollment, token import and `demo` all come here, so
// none can skip the audit log). Writes `e` (its token_obtained_at is the
// caller's), then appends `before` (e.g. the token-endpoint call) and the
// `enroll` event at `now` in one batch (issue 5). Throws nothing a store can
// throw: failures come back as text.
stored_enrollment store_enrollment(store::vault& vault, const store::enrollment& e,
                                   std::vector<store::audit_event> before,
                                   std::chrono::system_clock::time_point now);

enum class import_status {
    imported,       // stored and audited
    not_a_token,    // the text is not one refresh token
    no_patient_id,  // neither the override nor the config gives a FHIR id
    store_failed,   // the vault refused it: nothing changed
    audit_failed,   // stored, but the audit log could not record it
};

struct import_outcome {
    import_status status = import_status::store_failed;
    std::string error;  // store_failed / audit_failed: the store's message
};

// Imports a refresh token that the HeadacheMD web app obtained (`enroll
// --refresh-token-file`): `token_text` is the file's content (one token,
// trailing newlines and spaces allowed); the FHIR patient id is
// `fhir_patient_id` when not empty, else the config's. Stored through
// store_enrollment.
import_outcome import_refresh_token(store::vault& vault, const config::patient_settings& patient,
                                    std::string token_text, const std::string& fhir_patient_id,
                                    std::chrono::system_clock::time_point now);

// The page the person's browser shows after the redirect: says plainly
// whether it worked and what to do next; holds no token, code or state.
std::string callback_page(const enrollment_outcome& outcome);

}  // namespace headachemd::sync
