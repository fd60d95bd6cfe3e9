// `unenroll`: revoking an enrollment's refresh token at the EHR (RFC 7009),
// the I/O shell around smart::make_revocation_request and
// smart::parse_revocation_response.
//
// Contract
// - The revocation endpoint is the [[ehr]]'s revocation_endpoint, else
//   discovery's ({fhir_base}/.well-known/smart-configuration, or the
//   CapabilityStatement's oauth-uris `revoke`).
// - The refresh token is only ever sent to the origin of the token endpoint
//   (the authorization server that issued it): a revocation endpoint on
//   another origin is refused before anything is sent. TLS and the
//   loopback-only rule for http:// are the transport's, as for every call.
// - Every call has the transport's deadlines. Outcomes never carry the
//   token, the client secret or the assertion.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "headachemd/config/config.hpp"
#include "headachemd/core/result.hpp"
#include "headachemd/http/client.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/vault.hpp"

namespace headachemd::sync {

enum class revocation_status {
    revoked,      // the server answered 200 (RFC 7009 §2.2)
    no_endpoint,  // the EHR advertises no revocation endpoint
    failed,       // network, 5xx, refused: the grant may still be valid
};

struct revocation_outcome {
    revocation_status status = revocation_status::failed;
    std::string endpoint;          // the revocation URL used or tried (no token in it)
    std::optional<error> failure;  // when failed: what went wrong, for the admin
};

boost::asio::awaitable<revocation_outcome> revoke_refresh_token(http::transport& http,
                                                                const config::ehr_settings& ehr,
                                                                const smart::client_credentials& creds,
                                                                std::string refresh_token,
                                                                std::chrono::system_clock::time_point now);

// `unenroll KEY [--ehr E] [--purge] [--force]`: the whole workflow, so that
// the daemon only parses, prints and maps to exit codes (issue 14).
//
//   1. revoke the refresh token at the EHR (RFC 7009) while it is still
//      held: once deleted here nobody can revoke it; a failure stops
//      everything unless `force`
//   2. with `purge`: the patient's rows in headache.db, one transaction
//   3. the enrollment and any pending browser enrollment in vault.db
//
// Audit events (issue 5): `revoke` with ok / no_endpoint / failed for every
// attempt, and `unenroll` (ok, or purged with the row count) at the end. A
// vault that cannot take an event does not undo a change already made at
// the EHR: the failure is reported in the result instead.
struct unenroll_request {
    std::string key;
    std::string ehr;  // empty: the one EHR the vault or the config knows the key at
    bool purge = false;
    bool force = false;
};

enum class unenroll_status {
    done,                // steps 1–3 ran (step 1 maybe forced past)
    unknown_patient,     // no EHR could be picked, or nothing is stored: nothing changed
    ehr_not_configured,  // enrolled at an EHR the config no longer lists, no force: nothing changed
    revocation_failed,   // the EHR did not revoke, no force: nothing changed
};

struct unenroll_result {
    unenroll_status status = unenroll_status::unknown_patient;
    std::string ehr;      // the EHR picked (empty when none could be)
    std::string problem;  // unknown_patient: what to tell the admin
    bool had_enrollment = false;
    bool ehr_missing = false;                      // enrolled at an EHR the config no longer lists
    std::optional<revocation_outcome> revocation;  // when a revocation was tried
    bool purged_db = false;                        // headache.db rows were deleted
    long long purged_rows = 0;
    int pending_removed = 0;
    bool server_grant_may_live = false;  // the grant at the EHR may still be valid
    std::string revoke_audit_error;      // empty: recorded
};

// The EHR of an unenrollment: the request's, else the one EHR the vault or
// the config knows the key at. Empty, with `problem` set for the admin, when
// there is none or more than one.
std::string unenroll_ehr(const unenroll_request& req, const config::config& cfg, store::vault& vault,
                         std::string& problem);

// Runs the workflow above. `http` reaches the EHR (its deadlines are the
// transport's); `cfg.daemon.database` is opened only with `purge` and when
// it exists (a missing file holds no rows and is not created for nothing).
// Throws store::store_error (store::key_error) when a database fails and
// std::runtime_error when the client credentials cannot be read.
boost::asio::awaitable<unenroll_result> unenroll_patient(http::transport& http, const config::config& cfg,
                                                         store::vault& vault, const unenroll_request& req,
                                                         std::chrono::system_clock::time_point now);

// unenroll_patient for the command line: on its own io_context, with an
// http::client whose default deadline is the http_timeout of the EHR
// unenroll_ehr picks (the defaults when none is picked), reading the clock
// when the workflow starts. Returns when it is done; throws what
// unenroll_patient throws.
unenroll_result unenroll_patient_blocking(const config::config& cfg, store::vault& vault,
                                          const unenroll_request& req);

}  // namespace headachemd::sync
