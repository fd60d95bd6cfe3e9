#include "headachemd/sync/bulk_export.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "discovery.hpp"
#include "headachemd/fhir/fhir.hpp"
#include "headachemd/http/url.hpp"
#include "headachemd/store/database.hpp"
#include "headachemd/store/pseudonym.hpp"
#include "headachemd/sync/bulk_apply.hpp"
#include "headachemd/sync/bulk_data.hpp"
#include "headachemd/sync/bulk_store.hpp"
#include "headachemd/sync/credentials.hpp"
#include "headachemd/sync/views_setup.hpp"

namespace headachemd::sync {

namespace asio = boost::asio;

result<const config::ehr_settings*> bulk_ehr_of(const config::config& cfg, std::string_view name) {
    std::vector<const config::ehr_settings*> bulk;
    for (const auto& e : cfg.ehrs)
        if (e.bulk) bulk.push_back(&e);
    std::string names;
    for (const auto* e : bulk) names += (names.empty() ? "" : ", ") + e->name;
    if (bulk.empty())
        return error{errc::unknown_ehr,
                     "no [[ehr]] has an [ehr.bulk] section: Bulk Data export is not configured "
                     "(docs/admin/backend-registration.md)"};
    if (name.empty()) {
        if (bulk.size() == 1) return bulk.front();
        return error{errc::unknown_ehr,
                     "more than one [[ehr]] has [ehr.bulk] (" + names + "): name one with --ehr"};
    }
    for (const auto* e : bulk)
        if (e->name == name) return e;
    return error{errc::unknown_ehr, "[[ehr]] \"" + std::string(name) +
                                        "\" has no [ehr.bulk] section (those with one: " + names + ")"};
}

result<std::optional<std::string>> next_since(store::vault& vault, const config::ehr_settings& ehr,
                                              const std::optional<std::string>& since) {
    if (since) {
        // The same check the kick-off's _since gets (FHIR instant, with a zone).
        if (fhir::last_updated_with_overlap(*since, std::chrono::seconds(0)).empty())
            return error{errc::bad_export_request,
                         "--since is not a FHIR instant with a time zone (e.g. 2026-01-31T00:00:00Z)"};
        return std::optional<std::string>(*since);
    }
    const auto stored = load_bulk_since(vault.sql(), ehr.name);
    if (!stored) return std::optional<std::string>();
    // Minus the overlap: the server's clock and its indexing lag; what comes
    // twice is an upsert, not a duplicate.
    std::string with = fhir::last_updated_with_overlap(*stored, ehr.bulk->since_overlap);
    if (with.empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::move(with));
}

sys_time next_export_due(std::optional<bulk_phase> last, std::optional<sys_time> last_written,
                         std::chrono::seconds interval, sys_time now) {
    if (!last || !last_written) return now;
    switch (*last) {
        case bulk_phase::done:
        case bulk_phase::cancelled:
            return *last_written + interval;
        case bulk_phase::failed:
            return *last_written + std::min<std::chrono::seconds>(interval, std::chrono::hours(1));
        default:
            return now;  // unfinished: resume it
    }
}

std::filesystem::path bulk_spool_dir(const config::config& cfg) {
    return cfg.daemon.vault.parent_path() / "bulk-spool";
}

namespace {

export_level level_of(config::bulk_level l) {
    switch (l) {
        case config::bulk_level::patient:
            return export_level::patient;
        case config::bulk_level::system:
            return export_level::system;
        case config::bulk_level::group:
            break;
    }
    return export_level::group;
}

// The section's scopes and the preset's required ones (eCW: system/Group.read
// in every request), each once.
std::string scope_of(const config::bulk_settings& b) {
    std::vector<std::string> all = b.scopes;
    for (const auto& s : b.required_scopes)
        if (std::find(all.begin(), all.end(), s) == all.end()) all.push_back(s);
    std::string out;
    for (const auto& s : all) out += (out.empty() ? "" : " ") + s;
    return out;
}

asio::awaitable<result<std::string>> token_endpoint_of(http::transport& http,
                                                       const config::ehr_settings& ehr) {
    if (ehr.token_endpoint) co_return *ehr.token_endpoint;
    if (ehr.discovery) {
        // Named URLs: GCC 12 mishandles temporaries inside a co_await operand.
        std::string well_known = ehr.fhir_base + "/.well-known/smart-configuration";
        std::string metadata = ehr.fhir_base + "/metadata";
        auto c = co_await detail::fetch_configuration(http, std::move(well_known), false);
        if (!c) c = co_await detail::fetch_configuration(http, std::move(metadata), true);
        if (c && http::origin_of(c->token_endpoint)) co_return c->token_endpoint;
    }
    co_return error{errc::discovery_failed,
                    "EHR " + ehr.name +
                        ": no token endpoint (discovery failed; run `headachemd-sync doctor " + ehr.name +
                        "`, or set token_endpoint)"};
}

}  // namespace

asio::awaitable<result<bulk_run_result>> run_configured_export(export_context ctx, export_request req) {
    auto which = bulk_ehr_of(ctx.cfg, req.ehr);
    if (!which) co_return which.err();
    const config::ehr_settings& ehr = **which;
    const config::bulk_settings& b = *ehr.bulk;

    // What the vault holds decides what may happen: never a second kick-off
    // while a job is unfinished (bulk_job.hpp).
    auto rec = load_bulk_job(ctx.vault.sql(), ehr.name);
    const bool unfinished = rec && !ended(rec->phase);
    if (req.mode != export_mode::start_or_resume && !unfinished)
        co_return error{errc::export_failed, "EHR " + ehr.name + " has no unfinished export to " +
                                                 (req.mode == export_mode::cancel ? "cancel" : "resume")};
    if (unfinished && req.since)
        co_return error{errc::bad_export_request,
                        "EHR " + ehr.name +
                            " has an unfinished export, which keeps its own _since: resume it, or "
                            "cancel it first (--cancel)"};
    if (req.mode == export_mode::cancel) {
        rec->cancel_requested = true;
        save_bulk_job(ctx.vault.sql(), ehr.name, *rec, ctx.clk.now());
    }

    auto key = load_bulk_signing_key(ehr, b.private_key_file);
    if (!key) co_return error{errc::bad_key, "[[ehr]] \"" + ehr.name + "\" [ehr.bulk]: " + key.err().message};
    smart::client_credentials creds;
    creds.client_id = b.client_id;
    creds.auth = smart::client_auth::private_key_jwt;
    creds.key = std::make_shared<const smart::signing_key>(std::move(*key));
    creds.key_id = b.key_id;

    std::string kickoff_url;
    if (!unfinished) {
        auto since = next_since(ctx.vault, ehr, req.since);
        if (!since) co_return since.err();
        kickoff_spec spec;
        spec.fhir_base = ehr.fhir_base;
        spec.level = level_of(b.level);
        spec.group_id = b.group_id;
        spec.types = b.types;
        spec.since = std::move(*since);
        auto k = build_kickoff(spec);
        if (!k) co_return k.err();
        kickoff_url = std::move(k->url);
    }

    rate_limiter own(ehr.requests_per_minute, ehr.rate_window_fixed_minute);
    const bulk_pacing pacing{ctx.clk, ctx.limiter ? ctx.limiter : &own, ctx.on_wait, ctx.stopping};
    const std::chrono::milliseconds timeout = ehr.http_timeout;
    auto endpoint = co_await token_endpoint_of(ctx.http, ehr);
    if (!endpoint) co_return endpoint.err();
    backend_token_source tokens(ctx.http, pacing, std::move(creds), std::move(*endpoint), scope_of(b),
                                timeout);

    // The same pseudonym key and [privacy] rule as the per-patient sync, so
    // a patient is one patient whichever path brought the rows.
    const store::pseudonym_key pkey = ctx.vault.pseudonymization_key();
    ctx.db.bind_pseudonym_fingerprint(store::fingerprint(pkey));
    bulk_apply_options ao;
    ao.ehr = ehr.name;
    ao.max_line_bytes = b.max_line_bytes;
    ao.keep_fhir_patient_id = ctx.cfg.privacy.identifiers == config::identifier_policy::minimal;
    auto views = open_views(ctx.db, ctx.cfg, store::utc_timestamp(ctx.clk.now()));
    bulk_applier applier(ctx.db, pkey, ao, enrolled_at(ctx.vault, ehr.name), std::move(views));

    bulk_run_options ro;
    ro.ehr = ehr.name;
    ro.job.max_retry_after = b.max_retry_after;
    ro.job.job_deadline = b.job_deadline;
    ro.http_timeout = timeout;
    ro.spool_dir = bulk_spool_dir(ctx.cfg);
    bulk_run_deps deps{ctx.http, ctx.vault, applier, tokens, pacing, ctx.log, ctx.stopping, ctx.on_progress};
    co_return co_await run_bulk_export(deps, std::move(ro), std::move(kickoff_url));
}

std::string render_export(std::string_view ehr, const bulk_run_result& r) {
    std::string out;
    const auto& rec = r.record;
    if (r.stopped) {
        out +=
            fmt::format("export of EHR {}: stopped in phase {}; `headachemd-sync export --resume` goes on\n",
                        ehr, to_string(rec.phase));
    } else if (r.end.what == bulk_action::kind::done) {
        out += fmt::format("export of EHR {}: done{}\n", ehr, r.resumed ? " (resumed)" : "");
    } else if (r.end.what == bulk_action::kind::cancelled) {
        out += fmt::format("export of EHR {}: cancelled{}\n", ehr,
                           r.end.released ? "; the server's export was deleted" : "");
    } else {
        out += fmt::format("export of EHR {}: FAILED: {}\n", ehr,
                           r.end.failure ? r.end.failure->message : std::string("unknown"));
        out += r.end.released ? "  the server's export was released\n"
                              : "  the server's export may still exist; it expires on its own\n";
    }
    std::size_t inserted = 0, updated = 0, unchanged = 0, deleted = 0, line_errors = 0, outcome_errors = 0;
    for (const auto& f : r.files) {
        inserted += f.inserted;
        updated += f.updated;
        unchanged += f.unchanged;
        deleted += f.deleted;
        line_errors += f.line_error_count;
        outcome_errors += f.outcome_failures;
    }
    if (rec.manifest)
        out += fmt::format("  files: {} applied of {} (this run: {})\n", rec.applied.size(),
                           rec.manifest->files.size(), r.files.size());
    if (!r.files.empty())
        out += fmt::format("  rows: {} new, {} changed, {} unchanged, {} marked deleted\n", inserted, updated,
                           unchanged, deleted);
    if (line_errors > 0)
        out += fmt::format("  lines refused: {} (the log names file and line)\n", line_errors);
    if (outcome_errors > 0)
        out += fmt::format("  the server reported {} error issue(s) in its error files\n", outcome_errors);
    std::size_t shown = 0;
    for (const auto& f : r.files)
        for (const auto& e : f.line_errors)
            if (shown++ < 10)
                out += fmt::format("  file {} line {}: {}\n", e.file, e.line, to_string(e.reason));
    if (!rec.manifest && rec.progress.size() > 0) out += fmt::format("  progress: {}\n", rec.progress);
    out +=
        fmt::format("  requests: {} ({} token, {} kick-off, {} poll, {} file, {} release)\n", r.calls.total(),
                    r.calls.token, r.calls.kickoff, r.calls.poll, r.calls.download, r.calls.release);
    return out;
}

}  // namespace headachemd::sync
