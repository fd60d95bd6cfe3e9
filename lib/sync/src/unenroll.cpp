#include "headachemd/sync/unenroll.hpp"

#include <exception>
#include <filesystem>
#include <memory>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "discovery.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/store/analytics_db.hpp"
#include "headachemd/store/audit.hpp"
#include "headachemd/store/pending.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/http_options.hpp"

namespace headachemd::sync {
namespace {

using boost::asio::awaitable;

struct endpoints {
    std::string token, revocation;
};

// Appends one audit event; the store's complaint, or empty.
std::string audit(store::vault& vault, std::chrono::system_clock::time_point now, const unenroll_request& a,
                  const std::string& ehr, std::string_view action, std::string outcome,
                  std::optional<int> count) {
    try {
        store::append_audit(vault, store::enrollment_event(store::utc_timestamp(now), a.key, ehr, action,
                                                           std::move(outcome), count));
    } catch (const store::store_error& e) {
        return e.what();
    }
    return {};
}

revocation_outcome failure(std::string endpoint, error_code code, std::string message) {
    return {revocation_status::failed, std::move(endpoint), error{std::move(code), std::move(message)}};
}

}  // namespace

awaitable<revocation_outcome> revoke_refresh_token(http::transport& http, const config::ehr_settings& ehr,
                                                   const smart::client_credentials& creds,
                                                   std::string refresh_token,
                                                   std::chrono::system_clock::time_point now) {
    std::string token = ehr.token_endpoint.value_or("");
    std::string revocation = ehr.revocation_endpoint.value_or("");  // the config wins
    if (ehr.discovery && (token.empty() || revocation.empty())) {
        // Named URLs: GCC 12 mishandles temporaries inside a co_await operand.
        // The well-known document is where SMART App Launch 2.x (and RFC
        // 8414) name a revocation endpoint; the CapabilityStatement's
        // oauth-uris extension has `revoke` too (SMART 1.0).
        std::string well_known = ehr.fhir_base + "/.well-known/smart-configuration";
        std::string metadata = ehr.fhir_base + "/metadata";
        auto c = co_await detail::fetch_configuration(http, std::move(well_known), false);
        if (!c || !c->revocation_endpoint) {
            auto m = co_await detail::fetch_configuration(http, std::move(metadata), true);
            if (m && (!c || m->revocation_endpoint)) c = std::move(m);
        }
        if (!c)
            co_return failure({}, errc::discovery_failed,
                              "EHR " + ehr.name + ": discovery at " + ehr.fhir_base +
                                  "/.well-known/smart-configuration failed, so where to revoke is "
                                  "unknown (run `headachemd-sync doctor " +
                                  ehr.name + "`)");
        if (token.empty()) token = c->token_endpoint;
        if (revocation.empty() && c->revocation_endpoint) revocation = *c->revocation_endpoint;
    }
    if (revocation.empty()) co_return revocation_outcome{revocation_status::no_endpoint, {}, {}};
    if (!http::origin_of(revocation))
        co_return failure(revocation, errc::bad_endpoint,
                          "EHR " + ehr.name + ": the advertised revocation endpoint is not a URL");
    // The refresh token goes where refresh tokens go: the authorization
    // server's origin, never a third party a discovery document names.
    if (token.empty() || !http::same_origin(revocation, token))
        co_return failure(revocation, errc::foreign_origin,
                          "EHR " + ehr.name + ": the revocation endpoint " + revocation +
                              " is not on the token endpoint's origin; the refresh token was not sent");

    auto built = smart::make_revocation_request(refresh_token, creds, {token, now});
    http::request req;
    req.method = boost::beast::http::verb::post;
    req.url = revocation;
    for (auto& [n, v] : built.headers) req.headers.push_back({n, v});
    req.body = std::move(built.body);
    auto r = co_await http.send(std::move(req));
    if (!r)
        co_return failure(
            revocation, r.err().code,
            "EHR " + ehr.name + ": revocation at " + revocation + " failed: " + r.err().message);
    auto parsed = smart::parse_revocation_response(r->status, r->body);
    if (!parsed)
        co_return failure(revocation, parsed.err().code, "EHR " + ehr.name + ": " + parsed.err().message);
    co_return revocation_outcome{revocation_status::revoked, revocation, {}};
}

std::string unenroll_ehr(const unenroll_request& a, const config::config& cfg, store::vault& vault,
                         std::string& problem) {
    if (!a.ehr.empty()) return a.ehr;
    std::set<std::string> seen;
    for (const auto& e : vault.enrollments())
        if (e.patient_key == a.key) seen.insert(e.ehr);
    for (const auto& p : cfg.patients)
        if (p.key == a.key) seen.insert(p.ehr);
    if (seen.size() == 1) return *seen.begin();
    if (seen.empty()) {
        problem = "patient " + a.key + " is not enrolled: vault.db holds no enrollment for it and " +
                  cfg.file.string() + " lists no [[patient]] with that key; nothing was changed";
    } else {
        std::string list;
        for (const auto& e : seen) list += (list.empty() ? "" : ", ") + e;
        problem = "patient " + a.key + " is known at several EHRs (" + list +
                  "): name one with --ehr; nothing was changed";
    }
    return {};
}

awaitable<unenroll_result> unenroll_patient(http::transport& http, const config::config& cfg,
                                            store::vault& vault, const unenroll_request& a,
                                            std::chrono::system_clock::time_point now) {
    unenroll_result out;
    out.ehr = unenroll_ehr(a, cfg, vault, out.problem);
    if (out.ehr.empty()) co_return out;
    const config::ehr_settings* ehr = cfg.find_ehr(out.ehr);
    const std::optional<store::enrollment> enr = vault.find_enrollment(a.key, out.ehr);
    out.had_enrollment = enr.has_value();
    store::pending_enrollments pending(vault);
    const int pending_rows = pending.count_for(a.key, out.ehr);

    // headache.db only with --purge: without it nothing there changes.
    std::unique_ptr<store::analytics_db> db;
    long long rows = 0;
    if (a.purge && std::filesystem::exists(cfg.daemon.database)) {
        db = std::make_unique<store::analytics_db>(cfg.daemon.database);
        rows = store::sync_state(*db).patient_rows(out.ehr, a.key);
    }
    if (!enr && pending_rows == 0 && rows == 0) {
        out.problem = "patient " + a.key + " has no enrollment at " + out.ehr + " in " +
                      cfg.daemon.vault.string() +
                      (a.purge ? " and no rows in " + cfg.daemon.database.string() : std::string()) +
                      "; nothing was changed";
        co_return out;
    }

    // 1. Revoke at the EHR while we still hold the token.
    if (enr && !ehr) {
        out.ehr_missing = true;
        if (!a.force) {
            out.status = unenroll_status::ehr_not_configured;
            co_return out;
        }
        out.server_grant_may_live = true;
    } else if (enr) {
        const auto creds = load_client_credentials(*ehr);
        out.revocation = co_await revoke_refresh_token(http, *ehr, creds, enr->refresh_token, now);
        switch (out.revocation->status) {
            case revocation_status::revoked:
                out.revoke_audit_error =
                    audit(vault, now, a, out.ehr, store::audit_action::revoke, "ok", std::nullopt);
                break;
            case revocation_status::no_endpoint:
                out.server_grant_may_live = true;
                out.revoke_audit_error =
                    audit(vault, now, a, out.ehr, store::audit_action::revoke, "no_endpoint", std::nullopt);
                break;
            case revocation_status::failed:
                out.revoke_audit_error =
                    audit(vault, now, a, out.ehr, store::audit_action::revoke, "failed", std::nullopt);
                if (!a.force) {
                    out.status = unenroll_status::revocation_failed;
                    co_return out;
                }
                out.server_grant_may_live = true;
                break;
        }
    }

    // 2. headache.db, one transaction: all or nothing of this patient.
    if (db && rows > 0) {
        out.purged_rows = store::sync_state(*db).purge_patient(out.ehr, a.key);
        out.purged_db = true;
    }

    // 3. vault.db: the enrollment and any browser enrollment in flight,
    // and the audit row that records it, in one transaction. Written
    // apart, a crash after the removal lost the row for good: run again,
    // unenroll finds nothing left to do (issue 18, found by
    // KillPoints.UnenrollPurgeResumesAndTouchesNoOtherPatient). A vault
    // that refuses throws store_error with nothing removed.
    {
        store::write_transaction tx(vault.sql());
        if (enr) vault.remove_enrollment(a.key, out.ehr);
        out.pending_removed = pending.remove_for(a.key, out.ehr);
        const auto event =
            store::enrollment_event(store::utc_timestamp(now), a.key, out.ehr, store::audit_action::unenroll,
                                    a.purge ? "purged" : "ok", static_cast<int>(out.purged_rows));
        store::insert_audit(vault.sql(), {&event, 1});
        tx.commit();
    }
    out.status = unenroll_status::done;
    co_return out;
}

unenroll_result unenroll_patient_blocking(const config::config& cfg, store::vault& vault,
                                          const unenroll_request& req) {
    namespace asio = boost::asio;
    // The client's default deadline is this EHR's http_timeout: the
    // picked one when the key is known at a single EHR.
    std::string ignored;  // unenroll_patient reports it
    const config::ehr_settings* timeout_ehr = cfg.find_ehr(unenroll_ehr(req, cfg, vault, ignored));
    asio::io_context io;
    http::client http(io.get_executor(), http_options_for(cfg, timeout_ehr));
    unenroll_result r;
    std::exception_ptr failure;
    auto task = [&]() -> asio::awaitable<void> {
        r = co_await unenroll_patient(http, cfg, vault, req, std::chrono::system_clock::now());
        http.close_idle();
    };
    asio::co_spawn(io, std::move(task), [&failure](std::exception_ptr ep) { failure = ep; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return r;
}

}  // namespace headachemd::sync
