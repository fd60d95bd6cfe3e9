#include "headachemd/sync/enroll.hpp"

#include <boost/asio/use_awaitable.hpp>

#include "discovery.hpp"
#include "headachemd/core/html.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/smart/smart.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/sync/credentials.hpp"

namespace headachemd::sync {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Keeps an EHR-supplied description printable and short: it is shown to
// people and written to logs, and it comes from outside.
std::string printable(std::string_view s, std::size_t max = 300) {
    std::string out;
    for (char c : s) {
        if (out.size() >= max) {
            out += "…";
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    return out;
}

enrollment_outcome failed(std::string kind, std::string headline, std::string explanation,
                          std::string raw = {}) {
    enrollment_outcome o;
    o.error_kind = std::move(kind);
    o.headline = std::move(headline);
    o.explanation = std::move(explanation);
    o.raw_error = std::move(raw);
    return o;
}

}  // namespace

awaitable<result<enrollment_start>> begin_enrollment(http::transport& http, const config::ehr_settings& ehr,
                                                     const config::patient_settings& patient,
                                                     std::chrono::system_clock::time_point now) {
    if (!ehr.redirect_uri)
        co_return error{errc::no_redirect_uri,
                        "[[ehr]] \"" + ehr.name +
                            "\" has no redirect_uri: set it to the redirect URI registered "
                            "for this app at the EHR"};
    std::string authorize = ehr.authorize_endpoint.value_or("");
    std::string token = ehr.token_endpoint.value_or("");
    if (ehr.discovery && (authorize.empty() || token.empty())) {
        // SMART App Launch 2.x: per-tenant {fhir_base}/.well-known/smart-configuration;
        // the CapabilityStatement's oauth-uris extension is the older way.
        // Named URLs: GCC 12 mishandles temporaries inside a co_await operand.
        std::string well_known = ehr.fhir_base + "/.well-known/smart-configuration";
        std::string metadata = ehr.fhir_base + "/metadata";
        auto c = co_await detail::fetch_configuration(http, std::move(well_known), false);
        if (!c) c = co_await detail::fetch_configuration(http, std::move(metadata), true);
        if (c) {
            if (authorize.empty()) authorize = c->authorization_endpoint;
            if (token.empty()) token = c->token_endpoint;
        }
    }
    if (authorize.empty() || token.empty())
        co_return error{errc::discovery_failed,
                        "EHR " + ehr.name + ": no authorize or token endpoint (discovery at " +
                            ehr.fhir_base +
                            "/.well-known/smart-configuration failed; run `headachemd-sync doctor " +
                            ehr.name + "`, or set authorize_endpoint and token_endpoint)"};
    if (!http::origin_of(authorize) || !http::origin_of(token))
        co_return error{errc::discovery_failed,
                        "EHR " + ehr.name + ": the authorize or token endpoint is not a URL"};

    const auto pkce = smart::make_pkce();
    const std::string state = smart::random_state();
    const std::string scope = smart::enrollment_scope(ehr.scopes);
    enrollment_start out;
    out.authorize_url = smart::authorize_url(
        {authorize, ehr.client_id, *ehr.redirect_uri, scope, state, ehr.fhir_base, pkce.challenge});
    out.pending.state_hash = store::state_hash(state);
    out.pending.patient_key = patient.key;
    out.pending.ehr = ehr.name;
    out.pending.code_verifier = pkce.verifier;
    out.pending.redirect_uri = *ehr.redirect_uri;
    out.pending.scope = scope;
    out.pending.token_endpoint = token;
    out.pending.created_at = store::utc_timestamp(now);
    out.pending.expires_at = unix_seconds(now + pending_lifetime);
    co_return out;
}

namespace {

// The redirect matched to the enrollment it completes: an OAuth error
// answer, no state, an unknown or used state, or an expired link end here
// with the outcome to show. `p` is the pending row taken for the state.
std::optional<enrollment_outcome> refuse_redirect(const smart::callback_params& callback,
                                                  const std::optional<store::pending_enrollment>& p,
                                                  std::chrono::system_clock::time_point now) {
    if (callback.error) {
        // RFC 6749 §4.1.2.1: server free text; shown and logged only
        // sanitized (a token-shaped run or the state never goes out).
        std::string raw = *callback.error;
        if (callback.error_description) raw += ": " + *callback.error_description;
        // known_secrets holds views: the strings they view must outlive it
        // (value_or("") would return temporaries, gone after this line).
        const std::string state = callback.state.value_or("");
        const std::string code = callback.code.value_or("");
        const smart::known_secrets secrets = {state, code};
        auto o = failed("authorization_refused",
                        "The EHR did not authorize HeadacheMD (" +
                            smart::sanitize_server_text(*callback.error, secrets, 60) + ")",
                        smart::explain_oauth_error(*callback.error),
                        smart::sanitize_server_text(raw, secrets, 300));
        if (p) o.patient_key = p->patient_key, o.ehr = p->ehr;
        return o;
    }
    if (!callback.state || callback.state->empty())
        return failed("no_state", "The redirect carried no state",
                      "Without the state this redirect cannot be matched to an enrollment that was started "
                      "here, so it was ignored. Nothing was stored. Start again with `headachemd-sync "
                      "enroll`.");
    if (!p)
        return failed("unknown_state", "This sign-in link is unknown or was already used",
                      "The state in the redirect matches no pending enrollment: it was already completed, "
                      "replayed, or did not come from an enrollment started here. Nothing was stored; "
                      "existing enrollments are unchanged. Start again with `headachemd-sync enroll`.");
    if (p->expires_at <= unix_seconds(now)) {
        auto o =
            failed("expired", "This enrollment expired",
                   "A browser enrollment must be completed within 10 minutes of starting it. Nothing was "
                   "stored. Start again with `headachemd-sync enroll " +
                       p->patient_key + "`.");
        o.patient_key = p->patient_key, o.ehr = p->ehr;
        return o;
    }
    return std::nullopt;
}

// A token answer that cannot complete the enrollment: a malformed or
// missing refresh token, no patient in context, or another patient than
// the one this key is pinned to (the caller adds the patient key). Sets
// `fhir_id` to the patient the grant is for.
std::optional<enrollment_outcome> refuse_token_answer(const smart::token_response& tok,
                                                      const config::patient_settings& pinned,
                                                      std::optional<std::string>& fhir_id) {
    if (tok.refresh_token_malformed)
        return failed(
            "bad_refresh_token", "The EHR granted a malformed refresh token",
            "The token response's refresh_token was empty, blank, too long or held characters a token "
            "cannot have (RFC 6749 Appendix A.17), so HeadacheMD cannot use it. Nothing was stored. "
            "This is an "
            "EHR fault: report it to the EHR's support.");
    if (!tok.refresh_token || tok.refresh_token->empty())
        return failed(
            "no_refresh_token", "The EHR granted no refresh token",
            "Without a refresh token HeadacheMD cannot sync after the first hour. The EHR must grant "
            "offline_access: check that it is in `scopes`, that the person approved it, and that this app is "
            "registered as a confidential client (eClinicalWorks gives refresh tokens to confidential "
            "clients only). Nothing was stored.");
    // SMART App Launch: the patient in context comes in the token response's
    // `patient`, or in the id_token's fhirUser claim (openid fhirUser).
    fhir_id = tok.patient;
    if (!fhir_id && tok.id_token) fhir_id = smart::patient_from_id_token(*tok.id_token);
    if (!fhir_id || !smart::valid_fhir_id(*fhir_id))
        return failed(
            "no_patient_in_token", "The EHR did not say which patient was authorized",
            "The token response had no `patient` and no usable id_token fhirUser claim. Check that the "
            "scopes include launch/patient, openid and fhirUser. Nothing was stored.");
    if (pinned.fhir_patient_id && *pinned.fhir_patient_id != *fhir_id)
        return failed(
            "different_patient", "A different patient's record was authorized",
            "The person signed in to a patient record other than the one this key is pinned to "
            "(fhir_patient_id in the config). Nothing was stored. Check that the right person is signing in, "
            "or correct fhir_patient_id.");
    return std::nullopt;
}

// complete_enrollment without its audit events and without storing:
// `exchange` gets the token-endpoint call when one was made, `to_store` the
// enrollment when every check passed (the outcome is then ok).
awaitable<enrollment_outcome> complete(http::transport& http, const config::config& cfg, store::vault& vault,
                                       const smart::callback_params& callback,
                                       std::chrono::system_clock::time_point now,
                                       std::optional<store::audit_event>& exchange,
                                       std::optional<store::enrollment>& to_store) {
    store::pending_enrollments pending(vault);
    // The row is taken out before anything else, whatever the outcome: a
    // state serves one redirect, so a replay or a second tab finds nothing.
    std::optional<store::pending_enrollment> p;
    if (callback.state && !callback.state->empty()) p = pending.take(store::state_hash(*callback.state));

    if (auto refused = refuse_redirect(callback, p, now)) co_return *refused;
    const config::patient_settings* patient = nullptr;
    for (const auto& q : cfg.patients)
        if (q.key == p->patient_key && q.ehr == p->ehr) patient = &q;
    const config::ehr_settings* ehr = cfg.find_ehr(p->ehr);
    const auto with_patient = [&](enrollment_outcome o) {
        o.patient_key = p->patient_key;
        o.ehr = p->ehr;
        return o;
    };
    if (!patient || !ehr)
        co_return with_patient(failed("not_configured", "This patient is no longer in the configuration",
                                      "The enrollment was started for a patient that the config no longer "
                                      "lists. Nothing was stored."));
    if (!callback.code || callback.code->empty())
        co_return with_patient(failed("no_code", "The redirect carried no authorization code",
                                      "The EHR redirected back without a code. Nothing was stored. Start "
                                      "again with `headachemd-sync enroll`."));

    smart::client_credentials creds;
    try {
        creds = load_client_credentials(*ehr);
    } catch (const std::exception& e) {
        co_return with_patient(
            failed("credentials_unreadable", "The client credentials cannot be read", e.what()));
    }
    // private_key_jwt: a fresh assertion whose aud is this token endpoint.
    const auto tr = smart::make_code_exchange_request(*callback.code, p->redirect_uri, p->code_verifier,
                                                      creds, {p->token_endpoint, now});
    http::request req;
    req.method = boost::beast::http::verb::post;
    req.url = p->token_endpoint;
    for (const auto& [n, v] : tr.headers) req.headers.push_back({n, v});
    req.body = tr.body;
    // Sent once: an authorization code is single-use (RFC 6749 §4.1.2), so a
    // retry after a lost answer could only fail.
    auto r = co_await http.send(std::move(req));
    exchange.emplace();
    exchange->patient_key = p->patient_key;
    exchange->ehr = p->ehr;
    exchange->action = std::string(store::audit_action::token_exchange);
    if (r) exchange->http_status = r->status;
    exchange->outcome =
        r ? (r->status < 400 ? "ok" : "http_" + std::to_string(r->status)) : to_string(r.err().code);
    if (!r)
        co_return with_patient(failed("token_endpoint_unreachable",
                                      "The EHR's token endpoint could not be reached",
                                      "The code could not be exchanged (" + r.err().message +
                                          "). Nothing was stored; start again with `headachemd-sync enroll` "
                                          "in a moment."));
    // The code, verifier and client credentials are cut out of any echo.
    auto t = smart::parse_token_response(r->status, r->body, tr.secret_views());
    if (!t) exchange->outcome = store::audit_outcome_code(to_string(t.err().code));
    if (!t) {
        const std::string raw =
            to_string(t.err().code) + (t.err().message.empty() ? "" : ": " + t.err().message);
        co_return with_patient(
            failed("code_refused",
                   "The EHR refused the authorization code (" + printable(to_string(t.err().code), 60) + ")",
                   smart::explain_oauth_error(t.err().code), printable(raw)));
    }
    std::optional<std::string> fhir_id;
    if (auto refused = refuse_token_answer(*t, *patient, fhir_id)) co_return with_patient(*refused);

    // Stored by complete_enrollment, through store_enrollment with its audit.
    store::enrollment& e = to_store.emplace();
    e.patient_key = p->patient_key;
    e.ehr = p->ehr;
    e.fhir_patient_id = *fhir_id;
    e.refresh_token = *t->refresh_token;
    e.scope = t->scope.empty() ? p->scope : t->scope;
    e.token_obtained_at = store::utc_timestamp(now);
    enrollment_outcome o;
    o.ok = true;
    o.patient_key = p->patient_key;
    o.ehr = p->ehr;
    o.not_granted = smart::missing_scopes(p->scope, t->scope);
    o.headline = "HeadacheMD is connected";
    o.explanation =
        "The authorization worked. HeadacheMD will now keep this patient's headache data up to date "
        "on its own; nothing else needs to be done.";
    co_return o;
}

}  // namespace

awaitable<enrollment_outcome> complete_enrollment(http::transport& http, const config::config& cfg,
                                                  store::vault& vault, const smart::callback_params& callback,
                                                  std::chrono::system_clock::time_point now) {
    std::optional<store::audit_event> exchange;
    std::optional<store::enrollment> to_store;
    enrollment_outcome o = co_await complete(http, cfg, vault, callback, now, exchange, to_store);
    // The audit log (issue 5): the token-endpoint call, then the enrollment
    // or its refusal, also when no pending enrollment matched (a replayed or
    // forged redirect is worth a record). Never the code, state or token.
    std::vector<store::audit_event> events;
    const std::string time = store::utc_timestamp(now);
    if (exchange) {
        exchange->time = time;
        events.push_back(std::move(*exchange));
    }
    if (o.ok && to_store) {
        // A copy: when nothing is stored, the batch was not written and the
        // token exchange is audited with the refusal below.
        auto stored = store_enrollment(vault, *to_store, events, now);
        if (stored.stored) {
            o.audit_error = std::move(stored.audit_error);
            co_return o;
        }
        enrollment_outcome refused = failed("store_failed", "The token could not be stored",
                                            stored.store_error + ". Enroll again once it is fixed.");
        refused.patient_key = o.patient_key;
        refused.ehr = o.ehr;
        o = std::move(refused);
    }
    store::audit_event change;
    change.time = time;
    change.patient_key = o.patient_key;
    change.ehr = o.ehr;
    change.action = std::string(o.ok ? store::audit_action::enroll : store::audit_action::enroll_refused);
    change.outcome = o.ok ? "ok" : o.error_kind;
    events.push_back(std::move(change));
    try {
        store::append_audit(vault, events);
    } catch (const std::exception& failure) {
        o.audit_error = failure.what();
    }
    co_return o;
}

stored_enrollment store_enrollment(store::vault& vault, const store::enrollment& e,
                                   std::vector<store::audit_event> before,
                                   std::chrono::system_clock::time_point now) {
    stored_enrollment out;
    const std::string time = store::utc_timestamp(now);
    try {
        vault.put_enrollment(e, time);
    } catch (const std::exception& failure) {
        out.store_error = failure.what();
        return out;
    }
    out.stored = true;
    before.push_back(store::enrollment_event(time, e.patient_key, e.ehr, store::audit_action::enroll));
    try {
        store::append_audit(vault, before);
    } catch (const std::exception& failure) {
        out.audit_error = failure.what();
    }
    return out;
}

import_outcome import_refresh_token(store::vault& vault, const config::patient_settings& patient,
                                    std::string token, const std::string& fhir_patient_id,
                                    std::chrono::system_clock::time_point now) {
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
        token.pop_back();
    if (token.empty() || token.find_first_of(" \t\r\n") != std::string::npos)
        return {import_status::not_a_token, {}};
    const std::string fhir_id =
        !fhir_patient_id.empty() ? fhir_patient_id : patient.fhir_patient_id.value_or("");
    if (fhir_id.empty()) return {import_status::no_patient_id, {}};
    // The web app knows no granted scope: empty, as before the import moved.
    const store::enrollment e{
        patient.key, patient.ehr, fhir_id, std::move(token), "", store::utc_timestamp(now), false};
    auto stored = store_enrollment(vault, e, {}, now);
    if (!stored.stored) return {import_status::store_failed, std::move(stored.store_error)};
    if (!stored.audit_error.empty()) return {import_status::audit_failed, std::move(stored.audit_error)};
    return {import_status::imported, {}};
}

std::string callback_page(const enrollment_outcome& o) {
    std::string body =
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>HeadacheMD: " +
        html_escape(o.ok ? "connected" : "not connected") +
        "</title><style>body{font:17px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;"
        "color:#222}h1{font-size:1.4em}.ok{color:#176b2c}.bad{color:#a32020}code{background:#f3f3f3;"
        "padding:0 .2em}</style></head><body>";
    body += std::string("<h1 class=\"") + (o.ok ? "ok" : "bad") + "\">" + html_escape(o.headline) + "</h1>";
    body += "<p>" + html_escape(o.explanation) + "</p>";
    if (o.ok) {
        body += "<p>You can close this window.</p>";
        if (!o.not_granted.empty()) {
            body += "<p>Some access was not granted, so some data will not be synced:</p><ul>";
            for (const auto& s : o.not_granted) body += "<li><code>" + html_escape(s) + "</code></li>";
            body += "</ul>";
        }
    } else {
        body +=
            "<p>Nothing was stored. Please tell the clinic staff member who started this; they can start "
            "it again.</p>";
        if (!o.raw_error.empty())
            body += "<p>Details from the EHR: <code>" + html_escape(o.raw_error) + "</code></p>";
    }
    body += "</body></html>\n";
    return body;
}

}  // namespace headachemd::sync
