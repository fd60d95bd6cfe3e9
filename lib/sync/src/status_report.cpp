#include "headachemd/sync/status_report.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "headachemd/core/json.hpp"
#include "headachemd/logging/escape.hpp"
#include "headachemd/store/sync_state.hpp"
#include "headachemd/sync/bulk_export.hpp"
#include "headachemd/sync/bulk_store.hpp"

namespace headachemd::sync {
namespace {

std::string json_opt(const std::optional<std::string>& s) { return s ? json_string(*s) : "null"; }

// The state column: upper case when the patient needs someone's attention.
std::string state_text(const patient_health& h) {
    if (h.state == patient_state::ok && h.lapsing) return "LAPSING";
    std::string t(to_string(h.state));
    if (h.needs_attention())
        std::transform(t.begin(), t.end(), t.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return t;
}

// The last-error column. A patient marked after an interrupted refresh says
// so, whatever the last job wrote: the admin's next step differs (docs/admin/
// operations.md, "When a patient needs re-enrollment").
std::string last_error_text(const patient_report& r, const store::status_row* w) {
    if (r.health.reauth_reason == "interrupted_refresh")
        return "interrupted refresh: the EHR refused the token after a refresh that never finished here; "
               "enroll the patient again";
    return w && w->last_error ? *w->last_error : "";
}

std::optional<std::string> lapse_text(const patient_health& h) {
    if (!h.token_lapse) return std::nullopt;
    return store::utc_timestamp(*h.token_lapse);
}

}  // namespace

std::vector<patient_report> gather_reports(const config::config& cfg, store::analytics_db& db,
                                           store::vault& vault, sys_time now) {
    std::map<std::pair<std::string, std::string>, store::status_row> whole;
    store::sync_state state(db);
    for (auto& s : state.all_status())
        if (s.resource_type == "*") whole[{s.patient_key, s.source}] = std::move(s);
    std::map<std::pair<std::string, std::string>, store::enrollment> enrolled;
    for (auto& e : vault.enrollments()) enrolled[{e.patient_key, e.ehr}] = std::move(e);
    std::vector<patient_report> out;
    for (const auto& p : cfg.patients) {
        patient_report r;
        r.patient = &p;
        if (auto it = enrolled.find({p.key, p.ehr}); it != enrolled.end()) {
            r.facts.enrolled = true;
            r.facts.needs_reauth = it->second.needs_reauth;
            r.facts.needs_reauth_reason = it->second.needs_reauth_reason;
            r.facts.token_obtained_at = it->second.token_obtained_at;
        }
        if (auto it = whole.find({p.key, p.ehr}); it != whole.end()) r.facts.whole = it->second;
        r.health = assess_patient(r.facts, cfg.find_ehr(p.ehr), now);
        out.push_back(std::move(r));
    }
    return out;
}

bool any_needs_attention(const std::vector<patient_report>& reports) {
    return std::any_of(reports.begin(), reports.end(),
                       [](const patient_report& r) { return r.health.needs_attention(); });
}

std::string render_status_table(const std::vector<patient_report>& reports) {
    const auto row = [](std::string_view key, std::string_view ehr, std::string_view state,
                        std::string_view ok, std::string_view next, std::string_view rows,
                        std::string_view lapse, std::string_view err) {
        return fmt::format("{:<24} {:<14} {:<12} {:<21} {:<21} {:>5} {:<21} {}\n", key, ehr, state, ok, next,
                           rows, lapse, err);
    };
    std::string out =
        row("patient", "ehr", "state", "last success", "next run", "rows", "token lapses", "last error");
    for (const auto& r : reports) {
        const auto* w = r.facts.whole ? &*r.facts.whole : nullptr;
        out += row(r.patient->key, r.patient->ehr, state_text(r.health),
                   w && w->last_success_at ? *w->last_success_at : "-",
                   w && w->next_run_at ? *w->next_run_at : "-",
                   w && w->last_attempt_at ? std::to_string(w->rows_changed) : "-",
                   lapse_text(r.health).value_or("-"), last_error_text(r, w));
    }
    return out;
}

std::vector<bulk_report> gather_bulk_reports(const config::config& cfg, store::vault& vault, sys_time now) {
    std::vector<bulk_report> out;
    for (const auto& e : cfg.ehrs) {
        if (!e.bulk) continue;
        bulk_report r;
        r.ehr = e.name;
        r.job = load_bulk_job(vault.sql(), e.name);
        r.written = load_bulk_job_updated_at(vault.sql(), e.name);
        r.since = load_bulk_since(vault.sql(), e.name);
        r.next_due = next_export_due(r.job ? std::optional<bulk_phase>(r.job->phase) : std::nullopt,
                                     r.written, e.bulk->interval, now);
        out.push_back(std::move(r));
    }
    return out;
}

std::string render_bulk_status(const std::vector<bulk_report>& bulk) {
    std::string out;
    const auto esc = [](std::string_view s) { return logging::line_escaped(s); };
    for (const auto& b : bulk) {
        out += "bulk export " + esc(b.ehr) + ": ";
        if (!b.job) {
            out += "none yet; the daemon starts the first (a full export) at once\n";
            continue;
        }
        const auto& j = *b.job;
        out += b.needs_attention() ? "FAILED" : std::string(to_string(j.phase));
        if (j.manifest)
            out += fmt::format(", {}/{} files applied", j.applied.size(), j.manifest->files.size());
        if (b.written) out += ", at " + store::utc_timestamp(*b.written);
        if (j.failure) out += "; " + std::string(to_string(j.failure->code)) + ": " + esc(j.failure->message);
        out += ended(j.phase) ? "; next at " + store::utc_timestamp(b.next_due)
                              : "; unfinished: the daemon (or `export --resume`) goes on with it";
        out += "\n";
    }
    return out;
}

namespace {

std::string render_bulk_json(const std::vector<bulk_report>& bulk) {
    std::string out = "[";
    for (std::size_t i = 0; i < bulk.size(); ++i) {
        const auto& b = bulk[i];
        const auto* j = b.job ? &*b.job : nullptr;
        out += fmt::format(
            "{}{{\"ehr\":{},\"phase\":{},\"files_total\":{},\"files_applied\":{},\"updated_at\":{},"
            "\"next_due\":{},\"since\":{},\"failure_code\":{},\"failure_message\":{},\"attention\":{}}}",
            i ? "," : "", json_string(b.ehr), j ? json_string(to_string(j->phase)) : std::string("null"),
            j && j->manifest ? j->manifest->files.size() : 0, j ? j->applied.size() : 0,
            json_opt(b.written ? std::optional<std::string>(store::utc_timestamp(*b.written)) : std::nullopt),
            json_string(store::utc_timestamp(b.next_due)), json_opt(b.since),
            json_opt(j && j->failure ? std::optional<std::string>(std::string(to_string(j->failure->code)))
                                     : std::nullopt),
            json_opt(j && j->failure ? std::optional<std::string>(j->failure->message) : std::nullopt),
            b.needs_attention());
    }
    return out + "]";
}

}  // namespace

std::string render_status_json(const std::vector<patient_report>& reports,
                               const std::vector<store::view_state>& views,
                               const std::vector<bulk_report>& bulk) {
    const bool attention =
        any_needs_attention(reports) ||
        std::any_of(bulk.begin(), bulk.end(), [](const auto& b) { return b.needs_attention(); });
    std::string out = "{\"attention\":" + std::string(attention ? "true" : "false") + ",\"patients\":[";
    for (std::size_t i = 0; i < reports.size(); ++i) {
        const auto& r = reports[i];
        const auto* w = r.facts.whole ? &*r.facts.whole : nullptr;
        out += fmt::format(
            "{}{{\"patient_key\":{},\"ehr\":{},\"state\":{},\"attention\":{},\"needs_reauth\":{},"
            "\"last_attempt_at\":{},\"last_success_at\":{},\"next_run_at\":{},\"rows_changed\":{},"
            "\"last_error\":{},\"token_lapses_at\":{},\"token_lapsing\":{},\"needs_reauth_reason\":{}}}",
            i ? "," : "", json_string(r.patient->key), json_string(r.patient->ehr),
            json_string(to_string(r.health.state)), r.health.needs_attention(), r.facts.needs_reauth,
            json_opt(w ? w->last_attempt_at : std::nullopt), json_opt(w ? w->last_success_at : std::nullopt),
            json_opt(w ? w->next_run_at : std::nullopt), w ? w->rows_changed : 0,
            json_opt(w ? w->last_error : std::nullopt), json_opt(lapse_text(r.health)), r.health.lapsing,
            r.health.reauth_reason.empty() ? std::string("null") : json_string(r.health.reauth_reason));
    }
    return out + "],\"views\":" + render_views_json(views) + ",\"bulk\":" + render_bulk_json(bulk) + "}\n";
}

namespace {

// What a view holds, as one keyword (for --json) and as a sentence.
std::string_view view_state_keyword(const store::view_state& v) {
    if (v.backfill_state == "complete") return v.backfilled_at.empty() ? "complete" : "backfilled";
    if (!v.backfilled_at.empty()) return "pending_full_pull";
    return v.backfill_under_way ? "backfill_under_way" : "pending_backfill";
}

std::string view_state_text(const store::view_state& v) {
    const auto esc = [](std::string_view s) { return logging::line_escaped(s); };
    const std::string_view k = view_state_keyword(v);
    if (k == "complete") return "complete";
    if (k == "backfilled") return "complete (back-filled from the kept JSON at " + esc(v.backfilled_at) + ")";
    if (k == "pending_full_pull")
        return "pending until the next full pull (or a re-ingest): " +
               std::to_string(v.backfill_missing_raw) +
               " stored resource(s) had no raw JSON to back-fill from (store_raw was off); rows for the rest "
               "and for resources written since " +
               esc(v.created_at);
    if (k == "backfill_under_way")
        return "back-fill from the kept JSON interrupted; the next start (sync-once, run or ingest) goes on";
    return "pending: back-fill from the kept JSON runs at the next start (sync-once, run or ingest); rows "
           "only "
           "for resources written since " +
           esc(v.created_at);
}

}  // namespace

std::string render_view_status(const std::vector<store::view_state>& views) {
    if (views.empty()) return {};
    const auto esc = [](std::string_view v) { return logging::line_escaped(v); };
    std::string out = "views:\n";
    for (const auto& v : views)
        out += fmt::format("  view_{:<24} {:<20} {}\n", esc(v.name), esc(v.resource), view_state_text(v));
    return out;
}

std::string render_views_json(const std::vector<store::view_state>& views) {
    std::string out = "[";
    for (std::size_t i = 0; i < views.size(); ++i) {
        const auto& v = views[i];
        out += fmt::format(
            "{}{{\"name\":{},\"table\":{},\"resource\":{},\"state\":{},\"created_at\":{},"
            "\"backfilled_at\":{},\"missing_raw\":{}}}",
            i ? "," : "", json_string(v.name), json_string("view_" + v.name), json_string(v.resource),
            json_string(view_state_keyword(v)), json_string(v.created_at),
            v.backfilled_at.empty() ? std::string("null") : json_string(v.backfilled_at),
            v.backfill_missing_raw);
    }
    return out + "]";
}

}  // namespace headachemd::sync
