#include "headachemd/sync/unenroll_report.hpp"

#include <string_view>

#include <fmt/format.h>

#include "headachemd/store/audit.hpp"

namespace headachemd::sync {

unenroll_report describe_unenroll(const unenroll_request& req, const config::config& cfg,
                                  const unenroll_result& r) {
    using lvl = unenroll_message::level;
    unenroll_report rep;
    const std::string& key = req.key;
    const std::string& ehr_name = r.ehr;
    const auto say = [&](lvl l, std::string text) { rep.log.push_back({l, std::move(text)}); };
    const auto audit_failed = [&](std::string_view action, const std::string& why) {
        if (!why.empty())
            say(lvl::error,
                fmt::format("the audit log could not record {} of patient {}: {}", action, key, why));
    };
    switch (r.status) {
        case unenroll_status::unknown_patient:
            say(lvl::error, r.problem);
            rep.exit = unenroll_exit::usage;
            return rep;
        case unenroll_status::ehr_not_configured:
        case unenroll_status::revocation_failed:
        case unenroll_status::done:
            break;
    }
    if (r.ehr_missing)
        say(lvl::error,
            fmt::format(
                "patient {} is enrolled at {}, which {} no longer lists, so its refresh token cannot be "
                "revoked; add the [[ehr]] back, or pass --force to remove the enrollment here anyway",
                key, ehr_name, cfg.file.string()));
    if (r.status == unenroll_status::ehr_not_configured) {
        rep.exit = unenroll_exit::config;
        return rep;
    }
    if (r.revocation) {
        audit_failed(store::audit_action::revoke, r.revoke_audit_error);
        switch (r.revocation->status) {
            case revocation_status::revoked:
                rep.out += fmt::format("Revoked the refresh token of {} at {} ({}).\n", key, ehr_name,
                                       r.revocation->endpoint);
                say(lvl::info, fmt::format("revoked the refresh token of patient {} at {}", key, ehr_name));
                break;
            case revocation_status::no_endpoint:
                say(lvl::warn,
                    fmt::format(
                        "{} advertises no revocation_endpoint: the refresh token of patient {} is "
                        "deleted here but stays valid at the EHR until it expires; to end the grant "
                        "now, revoke HeadacheMD's access in the EHR (patient portal or admin console)",
                        ehr_name, key));
                break;
            case revocation_status::failed:
                if (r.status == unenroll_status::revocation_failed) {
                    say(lvl::error,
                        fmt::format(
                            "could not revoke the refresh token of patient {} at {}: {}. Nothing was "
                            "changed: the enrollment stays so that the revocation can be retried (run "
                            "unenroll again later), or pass --force to remove it here anyway (the grant "
                            "at the EHR then stays valid until it expires)",
                            key, ehr_name, r.revocation->failure->message));
                    rep.exit = unenroll_exit::unavailable;
                    return rep;
                }
                say(lvl::warn,
                    fmt::format(
                        "could not revoke the refresh token of patient {} at {}: {}. --force: removing "
                        "the enrollment anyway; the grant at the EHR stays valid until it expires",
                        key, ehr_name, r.revocation->failure->message));
                break;
        }
    }
    if (r.purged_db) {
        rep.out += fmt::format("Deleted {} row(s) of {} at {} from {}.\n", r.purged_rows, key, ehr_name,
                               cfg.daemon.database.string());
        say(lvl::info,
            fmt::format("purged patient {} at {} from headache.db ({} rows)", key, ehr_name, r.purged_rows));
    }
    if (r.had_enrollment || r.pending_removed > 0)
        rep.out += fmt::format(
            "Removed {} of {} at {} from {}.\n",
            r.had_enrollment
                ? (r.pending_removed > 0 ? "the enrollment and pending sign-in link(s)" : "the enrollment")
                : "the pending sign-in link(s)",
            key, ehr_name, cfg.daemon.vault.string());
    say(lvl::info, fmt::format("unenrolled patient {} at {}", key, ehr_name));
    if (r.server_grant_may_live)
        rep.out +=
            "The grant at the EHR may still be valid until it expires: revoke HeadacheMD's access "
            "there to end it now.\n";
    for (const auto& p : cfg.patients) {
        if (p.key != key || p.ehr != ehr_name) continue;
        rep.out += fmt::format(
            "Now remove the [[patient]] entry with key = \"{}\" from {} (and reload the daemon): "
            "until then `status` shows it as not enrolled.\n",
            key, cfg.file.string());
    }
    if (!req.purge)
        rep.out += fmt::format("Its rows stay in {}; `unenroll {} --ehr {} --purge` deletes them.\n",
                               cfg.daemon.database.string(), key, ehr_name);
    return rep;
}

}  // namespace headachemd::sync
